//! Tern, the daemon and its tools: the node (`daemon`), its configuration
//! (`config`, `check`), the admin listener (`admin`), systemd notifications
//! (`notify`), the operator commands (`cli`, `decode`) and the sandbox
//! simulators (`sandbox`, behind the default `sandbox` feature). The binary
//! (`main.rs`) is the command line over this library.

#![forbid(unsafe_code)]

pub mod admin;
pub mod check;
pub mod cli;
pub mod config;
pub mod daemon;
pub mod decode;
pub mod notify;
pub mod sandbox;
