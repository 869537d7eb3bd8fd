-- Serving processes report here every few seconds (cluster view). A row whose heartbeat is
-- old belongs to a replica that is gone; rows are kept so the view can say so.
CREATE TABLE replicas (
    id              TEXT PRIMARY KEY NOT NULL,
    address         TEXT NOT NULL,
    binary_version  TEXT NOT NULL,
    started_at      TEXT NOT NULL,
    heartbeat_at    TEXT NOT NULL,
    last_event      BIGINT NOT NULL,
    ready           BIGINT NOT NULL,
    loaded          TEXT NOT NULL
);

-- Every committed event wakes the replicas that LISTEN on this channel. The notification is a
-- hint only: followers read the events table by sequence number, and poll as well.
CREATE FUNCTION modelbay_notify_event() RETURNS trigger AS $$
BEGIN
    PERFORM pg_notify('modelbay_events', NEW.seq::text);
    RETURN NEW;
END;
$$ LANGUAGE plpgsql;

CREATE TRIGGER events_notify AFTER INSERT ON events
    FOR EACH ROW EXECUTE FUNCTION modelbay_notify_event();
