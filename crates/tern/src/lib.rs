//! Tern, the daemon and its tools: configuration, `check-config`, `decode`.
//! The binary (`main.rs`) is the command line over this library.

#![forbid(unsafe_code)]

pub mod check;
pub mod config;
pub mod decode;
