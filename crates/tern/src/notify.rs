//! Telling systemd how the daemon is (sd_notify): READY once listeners and
//! store are up, RELOADING/READY around a reload, STOPPING at shutdown, and
//! watchdog pings while the runtime is healthy. Outside systemd
//! (`NOTIFY_SOCKET` unset) every call does nothing.

use std::future::Future;
use std::time::Duration;

use sd_notify::NotifyState;
use tracing::{debug, warn};

fn send(states: &[NotifyState<'_>]) {
    // Never unset the environment: reloads and the watchdog notify again.
    if let Err(err) = sd_notify::notify(false, states) {
        warn!(%err, "cannot notify systemd");
    }
}

/// The node serves: listeners bound, store open.
pub fn ready(status: &str) {
    send(&[NotifyState::Ready, NotifyState::Status(status)]);
}

/// A reload starts. systemd wants the monotonic time with it (for
/// Type=notify-reload; harmless with Type=notify).
pub fn reloading() {
    match NotifyState::monotonic_usec_now() {
        Ok(now) => send(&[NotifyState::Reloading, now]),
        Err(_) => send(&[NotifyState::Reloading]),
    }
}

/// Shutdown starts: systemd waits (TimeoutStopSec) while the node drains.
pub fn stopping() {
    send(&[NotifyState::Stopping, NotifyState::Status("draining")]);
}

/// A free-form status line (`systemctl status` shows it).
pub fn status(status: &str) {
    send(&[NotifyState::Status(status)]);
}

/// The watchdog interval systemd asked for (`WatchdogSec=`), if any.
pub fn watchdog_interval() -> Option<Duration> {
    let mut usec = 0;
    sd_notify::watchdog_enabled(false, &mut usec).then(|| Duration::from_micros(usec))
}

/// Pings the watchdog at half its interval for as long as `healthy`
/// answers true in time; a runtime that stalls or a node that reports
/// itself unhealthy stops the pings, and systemd restarts the service.
pub async fn watchdog<F, Fut>(healthy: F)
where
    F: Fn() -> Fut,
    Fut: Future<Output = bool>,
{
    let Some(interval) = watchdog_interval() else {
        return;
    };
    let period = interval / 2;
    debug!(?interval, "systemd watchdog enabled");
    loop {
        tokio::time::sleep(period).await;
        match tokio::time::timeout(period, healthy()).await {
            Ok(true) => send(&[NotifyState::Watchdog]),
            Ok(false) => warn!("unhealthy: watchdog ping withheld"),
            Err(_) => warn!("health check did not answer: watchdog ping withheld"),
        }
    }
}
