//! Cluster tests: several replicas, a private PostgreSQL, moto's S3 and nginx on loopback. A
//! test binary of its own, so that cargo runs it apart from (never beside) the single-server tests:
//! both measure things that load on a small machine would distort.

#[allow(dead_code)]
#[path = "../integration/common.rs"]
mod common;

#[path = "../integration/clients.rs"]
mod clients;
mod scenarios;
mod services;
