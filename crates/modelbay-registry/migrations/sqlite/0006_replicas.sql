-- Serving processes report here every few seconds (cluster view). A row whose heartbeat is
-- old belongs to a replica that is gone; rows are kept so the view can say so.
CREATE TABLE replicas (
    id              TEXT PRIMARY KEY NOT NULL,
    address         TEXT NOT NULL,
    binary_version  TEXT NOT NULL,
    started_at      TEXT NOT NULL,
    heartbeat_at    TEXT NOT NULL,
    last_event      INTEGER NOT NULL,
    -- 1 when the replica's readiness probe answers ready.
    ready           INTEGER NOT NULL,
    -- JSON array of {model, version, kind}: the versions loaded there.
    loaded          TEXT NOT NULL
);
