//! Metrics hooks: what a session reports as it runs. The daemon installs an
//! observer that feeds Prometheus; tests and tools use the no-op one and
//! read [`SessionStats`](crate::SessionStats) instead.

use std::time::Duration;

use tern_codec::{CommandId, CommandStatus};

use crate::session::CloseReason;

/// Called from the session's tasks; implementations must be cheap and must
/// not block.
pub trait SessionObserver: Send + Sync + 'static {
    /// A request left.
    fn request_sent(&self, _command_id: CommandId) {}
    /// A response matched a request, after `latency`.
    fn response_received(
        &self,
        _command_id: CommandId,
        _status: CommandStatus,
        _latency: Duration,
    ) {
    }
    /// A response matched nothing in flight.
    fn late_response(&self, _command_id: CommandId) {}
    /// A request's waiter gave up.
    fn request_timed_out(&self, _command_id: CommandId) {}
    /// A malformed PDU arrived.
    fn malformed(&self, _status: CommandStatus) {}
    /// Requests in flight after a new one was added.
    fn in_flight(&self, _count: usize) {}
    /// The session ended.
    fn closed(&self, _reason: &CloseReason) {}
}

/// Reports nothing.
#[derive(Debug, Clone, Copy, Default)]
pub struct NoopObserver;

impl SessionObserver for NoopObserver {}
