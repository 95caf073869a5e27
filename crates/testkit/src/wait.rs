//! Bounded waits: every helper that waits takes its limit or states it,
//! and panics naming what it waited for, so a hung daemon fails a test
//! instead of hanging the suite.

use std::future::Future;
use std::time::Duration;

use tokio::net::TcpStream;

/// How often the waits below look again.
pub(crate) const POLL: Duration = Duration::from_millis(50);

/// Polls `check` every 50 ms until it gives a value; panics naming `what`
/// after `within`. The limit is counted in polls, so a slow check (an HTTP
/// round trip) stretches the wait instead of eating into it.
pub async fn wait_for<T, F, Fut>(what: &str, within: Duration, mut check: F) -> T
where
    F: FnMut() -> Fut,
    Fut: Future<Output = Option<T>>,
{
    let polls = (within.as_millis() / POLL.as_millis()).max(1);
    for _ in 0..polls {
        if let Some(value) = check().await {
            return value;
        }
        tokio::time::sleep(POLL).await;
    }
    panic!("{what}: not within {within:?}");
}

/// [`wait_for`] a condition.
pub async fn wait_until<F, Fut>(what: &str, within: Duration, mut check: F)
where
    F: FnMut() -> Fut,
    Fut: Future<Output = bool>,
{
    wait_for(what, within, || {
        let holds = check();
        async move { holds.await.then_some(()) }
    })
    .await;
}

/// Connects to Tern's client listener on `port`, retrying while the daemon
/// starts (5 s at most): tests start it and connect at once.
pub async fn connect(port: u16) -> TcpStream {
    wait_for(
        &format!("tern listening on port {port}"),
        Duration::from_secs(5),
        || async move { TcpStream::connect(("127.0.0.1", port)).await.ok() },
    )
    .await
}
