-- The PostgreSQL schema is the SQLite one (migrations/sqlite) column for column: timestamps
-- and JSON are text in both, so one set of queries reads both alike.

-- Models: one row per name. last_version only ever grows, so version numbers are never reused.
-- A write to a model locks its row: changes to one model queue up across every replica.
CREATE TABLE models (
    name          TEXT PRIMARY KEY NOT NULL,
    last_version  BIGINT NOT NULL,
    created_at    TEXT NOT NULL,
    updated_at    TEXT NOT NULL
);

-- Versions are immutable once inserted.
CREATE TABLE versions (
    model        TEXT NOT NULL REFERENCES models(name),
    version      BIGINT NOT NULL,
    digest       TEXT NOT NULL,
    size         BIGINT NOT NULL,
    format       TEXT NOT NULL,
    signature    TEXT NOT NULL,
    description  TEXT NOT NULL,
    labels       TEXT NOT NULL,
    created_at   TEXT NOT NULL,
    created_by   TEXT NOT NULL,
    PRIMARY KEY (model, version)
);

-- Append-only log of every registry mutation: the audit trail and the change feed replicas
-- follow. Appends are serialised (an advisory lock held to commit), so sequence numbers
-- become visible in order and a follower reading "after n" never skips one.
CREATE TABLE events (
    seq     BIGSERIAL PRIMARY KEY,
    at      TEXT NOT NULL,
    actor   TEXT NOT NULL,
    kind    TEXT NOT NULL,
    model   TEXT NOT NULL,
    before  TEXT,
    after   TEXT
);
CREATE INDEX events_by_model ON events(model, seq);
