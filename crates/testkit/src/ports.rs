//! Loopback ports for a config to name before the daemon binds them.

use std::net::TcpListener;
use std::sync::atomic::{AtomicU32, Ordering};

/// Lowest port handed out.
const LOW: u32 = 10_000;
/// How many ports from `LOW`: up to 21 999, so a Redis cluster bus port
/// (+10 000) stays below 32 768 too.
const SPAN: u32 = 12_000;

/// A loopback port nothing listens on right now.
///
/// Taken below the kernel's ephemeral range (`ip_local_port_range`,
/// 32 768–60 999 by default), where the local end of every outgoing
/// connection lands: a port asked of the kernel with `bind(":0")` comes
/// from that range, and one of the tests' own connections could take it
/// before the daemon binds it (CI saw an admin listener fail so). Never
/// the same port twice in one test process; another process could still
/// take it in between, which on a test machine is rare enough to accept.
pub fn free_port() -> u16 {
    for _ in 0..SPAN {
        let port = next_port();
        if TcpListener::bind(("127.0.0.1", port)).is_ok() {
            return port;
        }
    }
    panic!("no free loopback port in {LOW}..{}", LOW + SPAN);
}

/// The next port of this process's walk through `LOW..LOW + SPAN`, not
/// probed: the Redis launcher lets its server bind it and tries the next
/// on conflict. One walk for both, so this process never hands the same
/// port to two users (a Redis server and a daemon's config, say).
pub(crate) fn next_port() -> u16 {
    static NEXT: AtomicU32 = AtomicU32::new(0);
    // Processes start at different places, so two test binaries run at
    // once (by hand) seldom walk the same ports.
    let start = std::process::id().wrapping_mul(7_919) % SPAN;
    let n = NEXT.fetch_add(1, Ordering::Relaxed);
    u16::try_from(LOW + (start + n) % SPAN).unwrap_or(10_000)
}
