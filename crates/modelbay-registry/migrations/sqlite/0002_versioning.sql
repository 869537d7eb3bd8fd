-- Aliases: named pointers to versions. Each alias keeps a stack of the versions it pointed to
-- before, so rollback can step back any number of times.
CREATE TABLE aliases (
    model       TEXT NOT NULL REFERENCES models(name),
    alias       TEXT NOT NULL,
    version     INTEGER NOT NULL,
    updated_at  TEXT NOT NULL,
    PRIMARY KEY (model, alias),
    FOREIGN KEY (model, version) REFERENCES versions(model, version)
);

CREATE TABLE alias_history (
    seq      INTEGER PRIMARY KEY AUTOINCREMENT,
    model    TEXT NOT NULL,
    alias    TEXT NOT NULL,
    version  INTEGER NOT NULL
);
CREATE INDEX alias_history_by_alias ON alias_history(model, alias, seq);

-- One routing policy per model (JSON: weighted split, sticky header, shadow target).
CREATE TABLE policies (
    model       TEXT PRIMARY KEY NOT NULL REFERENCES models(name),
    policy      TEXT NOT NULL,
    updated_at  TEXT NOT NULL
);

-- Archived versions stay in the registry but are never served.
ALTER TABLE versions ADD COLUMN archived_at TEXT;
