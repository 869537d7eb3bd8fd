-- API keys. Only the SHA-256 digest of each secret is kept; the secret is shown once, at
-- creation. Revoked keys stay (for the audit trail) and never authenticate again.
CREATE TABLE api_keys (
    id          TEXT PRIMARY KEY NOT NULL,
    label       TEXT NOT NULL,
    role        TEXT NOT NULL,
    -- JSON array of model-name patterns the key is limited to; [] means every model.
    models      TEXT NOT NULL,
    digest      TEXT NOT NULL UNIQUE,
    -- JSON object of the key's own limits; each one left out is the server's default.
    limits      TEXT NOT NULL,
    created_at  TEXT NOT NULL,
    created_by  TEXT NOT NULL,
    expires_at  TEXT,
    revoked_at  TEXT,
    -- Hex SHA-256 of the DER client certificate that stands for this key over mTLS, if any.
    client_cert TEXT
);
-- A certificate stands for at most one live key; once that key is revoked it can be bound anew.
CREATE UNIQUE INDEX api_keys_live_client_cert ON api_keys (client_cert)
    WHERE client_cert IS NOT NULL AND revoked_at IS NULL;
