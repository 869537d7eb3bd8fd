-- A language-model version's generation defaults as its publisher set them (JSON, the fields
-- of GenerationParams); used for every field a request leaves out.
CREATE TABLE generation_defaults (
    model       TEXT NOT NULL,
    version     BIGINT NOT NULL,
    params      TEXT NOT NULL,
    updated_at  TEXT NOT NULL,
    PRIMARY KEY (model, version),
    FOREIGN KEY (model, version) REFERENCES versions(model, version)
);
