//! What the upstream entries using one vendor account share: its pacer,
//! its window and its session cap.
//!
//! A vendor counts per account, not per entry of Tern's config: Infobip
//! allows 4 sessions per account over its primary, secondary and TLS
//! endpoints, OVH 10 messages in flight per account over its zones,
//! Mensatek 1 session per server and port. Two entries naming one account
//! (the same host, port and system_id, or the same explicit `account`)
//! therefore get the same [`Account`], and the same [`BindCap`] where they
//! bind to the same server (or everywhere, when the vendor counts sessions
//! per account rather than per server and port).

use std::sync::Arc;

use tern_session::throttle::{with_margin, AdaptiveConfig, AdaptiveConfigError, AdaptiveRate};
use tokio::sync::Semaphore;

use crate::profile::Limits;

/// The limits of one vendor account, as the config and profile give them.
/// Two entries agreeing on these share one [`Account`]; a reload that
/// changes them starts a new one.
#[derive(Debug, Clone, PartialEq)]
pub struct AccountLimits {
    /// Messages per second the config asks for (the whole account), if any.
    pub configured_rate: Option<f64>,
    /// The vendor's messages per second per session, if stated.
    pub rate_per_session: Option<u32>,
    /// The vendor's messages per second per account, if stated.
    pub rate_per_account: Option<u32>,
    /// The vendor's requests in flight per account, if stated.
    pub window_per_account: Option<u32>,
    /// Sessions the account's entries may bind together.
    pub sessions: usize,
}

impl AccountLimits {
    /// The limits of `profile_limits` for an account whose entries bind
    /// `sessions` sessions together (after the vendor's cap).
    pub fn new(profile_limits: &Limits, configured_rate: Option<f64>, sessions: usize) -> Self {
        Self {
            configured_rate,
            rate_per_session: profile_limits.rate_per_session,
            rate_per_account: profile_limits.rate_per_account,
            window_per_account: profile_limits.window_per_account,
            sessions: sessions.max(1),
        }
    }

    /// The highest rate the vendor allows the account, before margin:
    /// its per-account rate, or its per-session rate times the sessions,
    /// whichever is lower; `None` when the profile states neither.
    pub fn vendor_rate(&self) -> Option<f64> {
        let per_sessions = self
            .rate_per_session
            .map(|r| f64::from(r) * self.sessions as f64);
        let per_account = self.rate_per_account.map(f64::from);
        match (per_sessions, per_account) {
            (Some(a), Some(b)) => Some(a.min(b)),
            (a, b) => a.or(b),
        }
    }

    /// How the account's pacer works: at the configured rate or the
    /// vendor's, whichever is lower, with [`with_margin`]; never faster than
    /// the per-session rate (with margin) times the sessions bound; with no
    /// rate known at all, unpaced until the upstream first throttles.
    pub fn pacer_config(&self) -> AdaptiveConfig {
        let ceiling = match (self.configured_rate, self.vendor_rate()) {
            (Some(a), Some(b)) => Some(a.min(b)),
            (a, b) => a.or(b),
        };
        let mut config = match ceiling {
            Some(limit) => AdaptiveConfig::new(with_margin(limit)),
            None => AdaptiveConfig::unknown_ceiling(),
        };
        config.per_session = self.rate_per_session.map(|r| with_margin(f64::from(r)));
        config
    }
}

/// The shared state of one vendor account on this node.
#[derive(Debug)]
pub struct Account {
    /// Its key: the explicit account name, or `host:port/system_id`.
    pub key: String,
    /// What it was built from.
    pub limits: AccountLimits,
    /// Paces every session of every entry of the account.
    pub pacer: Arc<AdaptiveRate>,
    /// Requests in flight over all of them, when the vendor counts them
    /// per account.
    pub window: Option<Arc<Semaphore>>,
}

impl Account {
    /// The account `key` with `limits`.
    pub fn new(key: String, limits: AccountLimits) -> Result<Self, AdaptiveConfigError> {
        let pacer = Arc::new(AdaptiveRate::new(limits.pacer_config())?);
        let window = limits
            .window_per_account
            .map(|w| Arc::new(Semaphore::new((w as usize).max(1))));
        Ok(Self {
            key,
            limits,
            pacer,
            window,
        })
    }
}

/// The sessions one account may have bound at once on one server (or on
/// all, see the module doc): each session slot of each entry holds a
/// permit while its client runs, so no bind beyond the cap is attempted.
#[derive(Debug, Clone)]
pub struct BindCap {
    /// The key: the account's, with `@host:port` when the vendor counts
    /// per server and port.
    pub key: String,
    /// The cap.
    pub sessions: usize,
    /// One permit per session.
    pub permits: Arc<Semaphore>,
}

impl BindCap {
    /// A cap of `sessions` under `key`.
    pub fn new(key: String, sessions: usize) -> Self {
        Self {
            key,
            sessions,
            permits: Arc::new(Semaphore::new(sessions.max(1))),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn limits(per_session: Option<u32>, per_account: Option<u32>) -> Limits {
        Limits {
            rate_per_session: per_session,
            rate_per_account: per_account,
            ..Limits::default()
        }
    }

    #[test]
    fn the_pacer_runs_below_the_lowest_rate_known() {
        // OVH: 20 per session, one session: 18/s (20 less 10 %).
        let ovh = AccountLimits::new(&limits(Some(20), None), None, 1);
        assert_eq!(ovh.vendor_rate(), Some(20.0));
        let config = ovh.pacer_config();
        assert_eq!(config.max_per_second, 18.0);
        assert_eq!(config.per_session, Some(18.0));
        // A configured rate at the limit gets the margin too.
        let at = AccountLimits::new(&limits(Some(20), None), Some(20.0), 1);
        assert_eq!(at.pacer_config().max_per_second, 18.0);
        // A lower configured rate wins, with its margin (9 = 10 less 1).
        let low = AccountLimits::new(&limits(Some(20), None), Some(10.0), 1);
        assert_eq!(low.pacer_config().max_per_second, 9.0);
        // Per session times sessions, capped by the per-account rate.
        let both = AccountLimits::new(&limits(Some(20), Some(30)), None, 4);
        assert_eq!(both.vendor_rate(), Some(30.0));
        assert_eq!(both.pacer_config().max_per_second, 27.0);
    }

    #[test]
    fn with_no_rate_known_the_pacer_has_no_ceiling() {
        let none = AccountLimits::new(&limits(None, None), None, 2);
        assert_eq!(none.vendor_rate(), None);
        let config = none.pacer_config();
        assert!(config.max_per_second.is_infinite());
        assert_eq!(config.per_session, None);
        assert!(Account::new("a".into(), none).is_ok());
    }

    #[test]
    fn an_account_window_is_one_semaphore() {
        let mut l = limits(Some(20), None);
        l.window_per_account = Some(10);
        let account = Account::new("ovh".into(), AccountLimits::new(&l, None, 1)).expect("valid");
        assert_eq!(account.window.map(|w| w.available_permits()), Some(10));
    }
}
