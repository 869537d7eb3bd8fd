-- Per-model serving settings (JSON), such as the tensor dynamic batcher's.
CREATE TABLE model_settings (
    model       TEXT PRIMARY KEY NOT NULL REFERENCES models(name),
    batching    TEXT NOT NULL,
    updated_at  TEXT NOT NULL
);

-- Statistics of a version's reference data (JSON): per-feature bins for drift, a background
-- sample for explanations.
CREATE TABLE reference_data (
    model       TEXT NOT NULL,
    version     BIGINT NOT NULL,
    stats       TEXT NOT NULL,
    created_at  TEXT NOT NULL,
    PRIMARY KEY (model, version),
    FOREIGN KEY (model, version) REFERENCES versions(model, version)
);
