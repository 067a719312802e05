//! Shared helpers for integration tests (each test binary does `mod support;`).
#![allow(dead_code)]

pub mod dns_server;
