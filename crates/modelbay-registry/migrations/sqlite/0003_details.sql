-- Facts an engine read from the artifact at push time (for GGUF language models: architecture,
-- parameter count, context length, quantization, whether a chat template is present).
ALTER TABLE versions ADD COLUMN details TEXT NOT NULL DEFAULT '{}';
