-- Models: one row per name. last_version only ever grows, so version numbers are never reused.
CREATE TABLE models (
    name          TEXT PRIMARY KEY NOT NULL,
    last_version  INTEGER NOT NULL,
    created_at    TEXT NOT NULL,
    updated_at    TEXT NOT NULL
);

-- Versions are immutable once inserted.
CREATE TABLE versions (
    model        TEXT NOT NULL REFERENCES models(name),
    version      INTEGER NOT NULL,
    digest       TEXT NOT NULL,
    size         INTEGER NOT NULL,
    format       TEXT NOT NULL,
    signature    TEXT NOT NULL,
    description  TEXT NOT NULL,
    labels       TEXT NOT NULL,
    created_at   TEXT NOT NULL,
    created_by   TEXT NOT NULL,
    PRIMARY KEY (model, version)
);

-- Append-only log of every registry mutation: the audit trail and the change feed.
CREATE TABLE events (
    seq     INTEGER PRIMARY KEY AUTOINCREMENT,
    at      TEXT NOT NULL,
    actor   TEXT NOT NULL,
    kind    TEXT NOT NULL,
    model   TEXT NOT NULL,
    before  TEXT,
    after   TEXT
);
CREATE INDEX events_by_model ON events(model, seq);
