//! Tern, the daemon and its tools: `run`, configuration, `check-config`, `decode`.
//! The binary (`main.rs`) is the command line over this library.

#![forbid(unsafe_code)]

pub mod admin;
pub mod check;
pub mod cli;
pub mod config;
pub mod daemon;
pub mod decode;
pub mod notify;
