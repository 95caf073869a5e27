//! Which account an HTTP request is from: a bearer token, or basic auth
//! with the system_id as user name, checked against each account's
//! `http_tokens` (two during a rotation), then the account's
//! `allowed_ips` and bind types, as a bind would be.

use std::net::SocketAddr;

use axum::http::{header, HeaderMap, StatusCode};
use tern_codec::CommandStatus;
use tern_session::BindType;

use super::problem::Problem;
use crate::admin::{base64_decode, same_secret};
use crate::config::ClientAccount;

/// What an `Authorization` header presents.
#[derive(Debug, PartialEq, Eq)]
enum Presented {
    /// `Bearer TOKEN`: the token alone names the account.
    Bearer(String),
    /// `Basic base64(user:password)`: the system_id and one of its tokens.
    Basic { user: String, password: String },
}

/// The account `headers` authenticate as, if `peer` may use it: 401
/// (ESME_RINVPASWD) without valid credentials, 403 when the account may
/// not be used from `peer` (ESME_RBINDFAIL, as a bind from there) or may
/// not submit at all (ESME_RINVBNDSTS: no transmitting bind type).
pub fn authenticate(
    accounts: &[ClientAccount],
    headers: &HeaderMap,
    peer: SocketAddr,
) -> Result<ClientAccount, Problem> {
    let unauthorized = || {
        Problem::new(
            StatusCode::UNAUTHORIZED,
            CommandStatus::InvalidPassword,
            "a bearer token or basic auth (system_id and token) of an account is required",
        )
    };
    let presented = headers
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(presented)
        .ok_or_else(unauthorized)?;
    let account = accounts
        .iter()
        .find(|a| matches(a, &presented))
        .ok_or_else(unauthorized)?;
    let ip = peer.ip().to_canonical();
    if !account.allowed_ips.is_empty() && !account.allowed_ips.iter().any(|n| n.contains(&ip)) {
        return Err(Problem::new(
            StatusCode::FORBIDDEN,
            CommandStatus::BindFailed,
            format!("account {} may not be used from {ip}", account.system_id),
        ));
    }
    if ![BindType::Transmitter, BindType::Transceiver]
        .into_iter()
        .any(|b| account.binds.contains(b))
    {
        return Err(Problem::new(
            StatusCode::FORBIDDEN,
            CommandStatus::InvalidBindStatus,
            format!("account {} may not submit (binds)", account.system_id),
        ));
    }
    Ok(account.clone())
}

/// Whether `account` holds the presented credentials. Every token is
/// compared in full (constant time each), so timing tells little.
fn matches(account: &ClientAccount, presented: &Presented) -> bool {
    let (user, given) = match presented {
        Presented::Bearer(token) => (None, token),
        Presented::Basic { user, password } => (Some(user), password),
    };
    let known = account.http_tokens.iter().fold(false, |found, t| {
        found | same_secret(given.as_bytes(), t.expose().as_bytes())
    });
    known && user.is_none_or(|u| *u == account.system_id)
}

/// The credentials in an `Authorization` value; `None` for another scheme
/// or a value that does not decode.
fn presented(value: &str) -> Option<Presented> {
    let (scheme, rest) = value.trim().split_once(' ')?;
    if scheme.eq_ignore_ascii_case("bearer") {
        let token = rest.trim();
        return (!token.is_empty()).then(|| Presented::Bearer(token.to_owned()));
    }
    if scheme.eq_ignore_ascii_case("basic") {
        let decoded = String::from_utf8(base64_decode(rest.trim())?).ok()?;
        let (user, password) = decoded.split_once(':')?;
        return Some(Presented::Basic {
            user: user.to_owned(),
            password: password.to_owned(),
        });
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bearer_and_basic_credentials_are_read() {
        assert_eq!(
            presented("Bearer abc"),
            Some(Presented::Bearer("abc".to_owned()))
        );
        // "acme:t:k" in base64: the password keeps its colon.
        assert_eq!(
            presented("Basic YWNtZTp0Oms="),
            Some(Presented::Basic {
                user: "acme".to_owned(),
                password: "t:k".to_owned()
            })
        );
        assert_eq!(presented("Bearer "), None);
        assert_eq!(presented("Digest x"), None);
        assert_eq!(presented("Basic !!"), None);
    }
}
