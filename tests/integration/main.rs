//! One integration test binary: the real `s3cache` binary, running the real guest in wasmtime,
//! against real S3 servers on loopback (see `s3cache_tests::servers`).

mod action;
mod admin;
mod cli;
mod credentials;
mod endpoints;
mod faults;
mod foreign_hosts;
mod formats;
mod hostile;
mod interrupts;
mod library;
mod names;
mod paths;
mod plugins;
mod roundtrip;
mod sandbox;
mod scopes;
mod semaphore;
mod serve;
mod serve_admin;
mod serve_protocol;
mod signing;
