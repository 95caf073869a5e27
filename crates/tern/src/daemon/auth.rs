//! Client binds checked against the configured accounts.

use tern_codec::CommandStatus;
use tern_session::smsc::{Admission, Authenticator, BindRequest};

use crate::config::ClientAccount;

/// The configured client accounts.
#[derive(Debug, Clone)]
pub struct Accounts(pub Vec<ClientAccount>);

impl Authenticator for Accounts {
    fn authenticate(&self, bind: &BindRequest) -> Result<Admission, CommandStatus> {
        let account = self
            .0
            .iter()
            .find(|a| a.system_id == bind.system_id)
            .ok_or(CommandStatus::InvalidSystemId)?;
        // Any of the listed passwords: two are valid during a rotation.
        if !account
            .passwords
            .iter()
            .any(|p| p.expose() == bind.password.expose())
        {
            return Err(CommandStatus::InvalidPassword);
        }
        if let Some(peer) = bind.peer {
            if !account.allowed_ips.is_empty() && !account.allowed_ips.contains(&peer.ip()) {
                return Err(CommandStatus::BindFailed);
            }
        }
        Ok(Admission {
            account: account.system_id.clone(),
            max_binds: account.max_binds,
            session_rate: account.session_rate,
            account_rate: account.rate,
        })
    }
}
