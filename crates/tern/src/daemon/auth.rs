//! Client binds checked against the configured accounts, which a reload
//! may replace while the listeners run.

use std::collections::hash_map::RandomState;
use std::hash::BuildHasher;
use std::sync::Arc;

use arc_swap::ArcSwap;
use tern_codec::CommandStatus;
use tern_session::smsc::{Admission, Authenticator, BindRequest, Refusal};
use tern_session::BindType;

use crate::admin::Metrics;
use crate::config::ClientAccount;

/// The configured client accounts, swappable on reload.
#[derive(Debug, Clone)]
pub struct Accounts {
    accounts: Arc<ArcSwap<Vec<ClientAccount>>>,
    /// Keys the credential tags: they identify a password within this
    /// process only, and say nothing about it outside.
    tags: Arc<RandomState>,
    /// Where refused binds are counted (none in unit tests).
    metrics: Option<Arc<Metrics>>,
}

impl Accounts {
    /// Accounts as configured.
    pub fn new(accounts: Vec<ClientAccount>) -> Self {
        Self {
            accounts: Arc::new(ArcSwap::from_pointee(accounts)),
            tags: Arc::new(RandomState::new()),
            metrics: None,
        }
    }

    /// Counts refused binds in `metrics`.
    pub fn counting(mut self, metrics: Arc<Metrics>) -> Self {
        self.metrics = Some(metrics);
        self
    }

    /// Whether `account` (still configured) may be bound as `bind_type`.
    pub fn allows(&self, account: &str, bind_type: BindType) -> bool {
        self.current()
            .iter()
            .find(|a| a.system_id == account)
            .is_some_and(|a| a.binds.contains(bind_type))
    }

    /// The accounts now in force.
    pub fn current(&self) -> Arc<Vec<ClientAccount>> {
        self.accounts.load_full()
    }

    /// Puts reloaded accounts in force for the next bind.
    pub fn replace(&self, accounts: Vec<ClientAccount>) {
        self.accounts.store(Arc::new(accounts));
    }

    /// The tag of `password` (what [`Admission::credential`] carries).
    pub fn credential(&self, password: &str) -> u64 {
        self.tags.hash_one(password)
    }

    /// Whether a session of `account` bound with the credential `tag` may
    /// stay bound under the accounts now in force: the account still exists
    /// and one of its passwords is the one the session used (a rotation
    /// lists both, so neither old nor new sessions drop during it).
    pub fn still_valid(&self, account: &str, tag: u64) -> bool {
        self.current()
            .iter()
            .find(|a| a.system_id == account)
            .is_some_and(|a| {
                a.passwords
                    .iter()
                    .any(|p| self.credential(p.expose()) == tag)
            })
    }

    /// The admission a bind of `account` gets now (rates may have changed).
    pub fn admission(&self, account: &ClientAccount, credential: u64) -> Admission {
        Admission {
            account: account.system_id.clone(),
            max_binds: account.max_binds,
            session_rate: account.session_rate,
            account_rate: account.rate,
            account_window: account.window,
            bind_types: account.binds,
            credential,
        }
    }
}

impl Authenticator for Accounts {
    fn authenticate(&self, bind: &BindRequest) -> Result<Admission, CommandStatus> {
        let accounts = self.accounts.load();
        let account = accounts
            .iter()
            .find(|a| a.system_id == bind.system_id)
            .ok_or(CommandStatus::InvalidSystemId)?;
        // Any of the listed passwords: two are valid during a rotation.
        let password = account
            .passwords
            .iter()
            .find(|p| p.expose() == bind.password.expose())
            .ok_or(CommandStatus::InvalidPassword)?;
        if let Some(peer) = bind.peer {
            // An IPv4 client reaching a dual-stack listener shows as
            // ::ffff:a.b.c.d; its rules are written in IPv4.
            let ip = peer.ip().to_canonical();
            if !account.allowed_ips.is_empty()
                && !account.allowed_ips.iter().any(|net| net.contains(&ip))
            {
                return Err(CommandStatus::BindFailed);
            }
        }
        Ok(self.admission(account, self.credential(password.expose())))
    }

    fn refused(&self, bind: &BindRequest, refusal: Refusal) {
        let Some(metrics) = &self.metrics else {
            return;
        };
        let reason = match refusal {
            Refusal::LockedOut => "locked_out",
            Refusal::Authenticator(CommandStatus::InvalidSystemId) => "system_id",
            Refusal::Authenticator(CommandStatus::InvalidPassword) => "password",
            // The only other refusal `authenticate` makes.
            Refusal::Authenticator(_) => "address",
            Refusal::BindType => "bind_type",
            Refusal::MaxBinds => "max_binds",
        };
        let known = self
            .accounts
            .load()
            .iter()
            .any(|a| a.system_id == bind.system_id);
        let client = if known {
            bind.system_id.as_str()
        } else {
            "unknown"
        };
        metrics.bind_refused(client, reason);
    }
}
