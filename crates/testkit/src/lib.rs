//! What Tern's tests share, in one place instead of copied per test file:
//!
//! - [`TempDir`]: scratch directories, removed on drop (the `tempfile`
//!   crate);
//! - [`redis`]: a Redis server or a three-primary Redis Cluster of the
//!   test's own, killed with the test process;
//! - [`metrics`]: samples read from Prometheus text;
//! - with the `daemon` feature (on by default): the real `tern run` as a
//!   child process ([`Daemon`], [`Launch`]), bounded waits, SMPP clients
//!   that bind to it, their messages and receipts, the admin listener
//!   ([`Admin`]) and a bare SMSC ([`BareSmsc`]) for tests that script an
//!   upstream PDU by PDU, and a port held for an upstream that comes up
//!   later ([`HeldPort`]), and certificates for the TLS tests ([`Pki`]).
//!
//! No helper probes for a free port: the daemon, simulators and test
//! servers bind port 0 and say which port they got (the daemon in its
//! `--listening-file`, see [`Daemon::listening`]); a restarted daemon
//! comes back on the ports it had ([`Daemon::respawn`]).
//!
//! A dev-dependency only: the tern binary never links it.
//!
//! Every wait here is bounded, as the tests promise: a helper that waits
//! either takes its limit or states it, and panics naming what it waited
//! for, so a hung daemon fails a test instead of hanging the suite.
//!
//! The end-to-end tests in crates/tern/tests once had these helpers as a
//! `mod common;` of their own; `use tern_testkit as common;` keeps every
//! `common::name` they use.

pub mod metrics;
pub mod redis;
mod tempdir;

#[cfg(feature = "daemon")]
mod admin;
#[cfg(feature = "daemon")]
mod daemon;
#[cfg(feature = "daemon")]
mod held;
#[cfg(feature = "daemon")]
mod pki;
#[cfg(feature = "daemon")]
mod smpp;
#[cfg(feature = "daemon")]
mod smsc;
#[cfg(feature = "daemon")]
mod wait;

pub use metrics::{sample, total};
pub use tempdir::TempDir;

#[cfg(feature = "daemon")]
pub use admin::Admin;
#[cfg(feature = "daemon")]
pub use daemon::{
    check_config, signal, Daemon, Launch, Listening, TernBinary, LISTENING, LOG, TERN,
};
#[cfg(feature = "daemon")]
pub use held::HeldPort;
#[cfg(feature = "daemon")]
pub use pki::Pki;
#[cfg(feature = "daemon")]
pub use smpp::{
    accept_deliver_sm, ack, alphanumeric, client, deliver_sm_before, expect_deliver_sm,
    international, message_id, next_deliver_sm, next_receipt, query_sm, query_sm_answer,
    receipted_id, submit_id, submit_sm, ClientBind,
};
#[cfg(feature = "daemon")]
pub use smsc::{accept_submit, bare_smsc, next_submit, AnyBind, BareSmsc};
#[cfg(feature = "daemon")]
pub use wait::{connect, wait_for, wait_until};
