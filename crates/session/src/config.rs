//! Per-session settings: window, timers, queue sizes.
//!
//! Defaults follow what the vendors ask (VENDORS.md): enquire_link every
//! 30 s (OVH, Telesign, Infobip), responses within 30 s, a bind within 10 s
//! (Telesign, the Russian provider), 10 requests in flight (OVH).

use std::time::Duration;

use tern_codec::DEFAULT_MAX_COMMAND_LENGTH;

/// How one session behaves.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SessionConfig {
    /// Requests this side may have in flight; a full window makes the sender
    /// wait, it never drops.
    pub window: usize,
    /// How long a request waits for its response before the waiter gets a
    /// timeout (a response arriving later is counted and dropped).
    pub response_timeout: Duration,
    /// Send enquire_link when nothing has arrived for this long; `None`
    /// sends none.
    pub enquire_link_interval: Option<Duration>,
    /// Close when nothing has arrived for this long; `None` never does.
    pub inactivity_timeout: Option<Duration>,
    /// SMSC role: close a connection that has not bound within this time.
    pub session_init_timeout: Duration,
    /// How long a graceful close waits for in-flight responses and the
    /// unbind handshake.
    pub close_grace: Duration,
    /// Largest `command_length` accepted from the peer.
    pub max_command_length: usize,
    /// Peer requests buffered for the application; when full, the peer is
    /// answered `ESME_RMSGQFUL` instead of the session stalling.
    pub event_queue: usize,
    /// PDUs buffered for the writer.
    pub outbound_queue: usize,
}

impl Default for SessionConfig {
    fn default() -> Self {
        Self {
            window: 10,
            response_timeout: Duration::from_secs(30),
            enquire_link_interval: Some(Duration::from_secs(30)),
            inactivity_timeout: Some(Duration::from_secs(120)),
            session_init_timeout: Duration::from_secs(10),
            close_grace: Duration::from_secs(5),
            max_command_length: DEFAULT_MAX_COMMAND_LENGTH,
            event_queue: 1024,
            outbound_queue: 1024,
        }
    }
}
