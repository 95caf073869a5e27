//! SMPP sessions for Tern over TCP or TLS, in both roles: the SMSC side
//! towards client applications and the ESME side towards upstreams.
//!
//! [`session`] is the engine (window, correlation, timers, keep-alive, the
//! operation matrix of [`ops`]); [`smsc`] adds listeners and the bind
//! handshake; [`esme`] connects, binds and reconnects.

#![forbid(unsafe_code)]
#![warn(missing_docs)]

pub mod abuse;
pub mod backoff;
pub mod config;
pub mod esme;
pub mod observer;
pub mod ops;
pub mod ratelog;
pub mod sequence;
pub mod session;
pub mod smsc;
pub mod throttle;
pub mod tls;

pub use config::SessionConfig;
pub use observer::{NoopObserver, SessionObserver};
pub use ops::{BindType, BindTypes, Role, SessionState};
pub use session::{
    spawn, spawn_observed, CloseReason, Request, RequestError, Requests, Responder, SessionHandle,
    SessionStats,
};
