//! Integration tests: the real `modelbay` binary on 127.0.0.1 port 0, real models, real clients.

mod bad_input;
mod batching;
mod cli;
mod clients;
mod common;
mod crash;
mod drift;
mod embeddings;
mod explain;
mod gguf_edit;
mod grpc;
mod inference;
mod lifecycle;
mod llm;
mod llm_features;
mod llm_reasoning;
mod logs;
mod memory;
mod metrics;
mod otel;
mod prom;
mod registry;
mod security;
mod tensors;
mod transport;
mod versioning;
