//! The sockets a node serves on, bound before [`super::run`] starts it.
//!
//! Binding is separate from running so that the caller decides: `tern run`
//! binds what the configuration names ([`Listeners::bind`]; port 0 takes
//! any free port, and `--listening-file` tells where), and a test in this
//! process can bind port 0 itself and pass the sockets in, with no free
//! port to guess. One field per kind of listener: a new kind is one more
//! field, bound and passed the same way.

use std::net::SocketAddr;

use tokio::net::TcpListener;

use super::DaemonError;
use crate::config::Config;

/// Bound, not yet accepting: connections wait in the kernel's backlog
/// until the node serves them.
#[derive(Debug)]
pub struct Listeners {
    /// One per `[[listener]]`, in the configuration's order (each gets
    /// that listener's TLS settings).
    pub clients: Vec<TcpListener>,
    /// The `[admin]` listener, when configured.
    pub admin: Option<TcpListener>,
    /// One per `[[http_listener]]`, in the configuration's order.
    pub http: Vec<TcpListener>,
    /// One per `[[simulator]]`, in the configuration's order (none
    /// without the `sandbox` feature): bound here with the rest, so that
    /// a simulator on port 0 is reported with them, and its upstreams
    /// are pointed at the port it got.
    pub simulators: Vec<TcpListener>,
}

impl Listeners {
    /// Binds every address `config` names.
    pub async fn bind(config: &Config) -> Result<Listeners, DaemonError> {
        let mut clients = Vec::with_capacity(config.listeners.len());
        for listener in &config.listeners {
            clients.push(bind("client", listener.address).await?);
        }
        let admin = match config.admin {
            Some(address) => Some(bind("admin", address).await?),
            None => None,
        };
        let mut http = Vec::with_capacity(config.http_listeners.len());
        for listener in &config.http_listeners {
            http.push(bind("HTTP", listener.address).await?);
        }
        #[cfg(feature = "sandbox")]
        let simulators = {
            let mut sockets = Vec::with_capacity(config.simulators.len());
            for sim in &config.simulators {
                sockets.push(bind("simulator", sim.address).await?);
            }
            sockets
        };
        #[cfg(not(feature = "sandbox"))]
        let simulators = Vec::new();
        Ok(Listeners {
            clients,
            admin,
            http,
            simulators,
        })
    }

    /// Where each socket is bound, one line each: `client ADDRESS` per
    /// client listener in order, then `admin ADDRESS`, then `http ADDRESS`
    /// per HTTP listener in order, then `simulator ADDRESS` per
    /// `[[simulator]]` in order. What
    /// `tern run --listening-file` writes, for whoever configured port 0.
    pub fn describe(&self) -> String {
        let mut text = String::new();
        let mut line = |kind: &str, socket: &TcpListener| {
            if let Ok(address) = socket.local_addr() {
                text.push_str(&format!("{kind} {address}\n"));
            }
        };
        for socket in &self.clients {
            line("client", socket);
        }
        if let Some(socket) = &self.admin {
            line("admin", socket);
        }
        for socket in &self.http {
            line("http", socket);
        }
        for socket in &self.simulators {
            line("simulator", socket);
        }
        text
    }

    /// The error when these sockets do not match `config` (a caller that
    /// bound them itself): one client socket per `[[listener]]`, an admin
    /// socket exactly when `[admin]` is configured, one HTTP socket per
    /// `[[http_listener]]`.
    pub(super) fn check(&self, config: &Config) -> Result<(), DaemonError> {
        #[cfg(feature = "sandbox")]
        let configured = config.simulators.len();
        #[cfg(not(feature = "sandbox"))]
        let configured = 0;
        if self.simulators.len() != configured {
            return Err(DaemonError::SimulatorListeners {
                configured,
                given: self.simulators.len(),
            });
        }
        if self.http.len() != config.http_listeners.len() {
            return Err(DaemonError::HttpListeners {
                configured: config.http_listeners.len(),
                given: self.http.len(),
            });
        }
        if self.clients.len() != config.listeners.len()
            || self.admin.is_some() != config.admin.is_some()
        {
            return Err(DaemonError::Listeners {
                configured: config.listeners.len(),
                given: self.clients.len(),
                admin_configured: config.admin.is_some(),
                admin_given: self.admin.is_some(),
            });
        }
        Ok(())
    }
}

/// `listener`'s TLS acceptor, its certificate and key read now, or `None`
/// for plain TCP. Client and HTTP listeners load theirs alike; an error
/// names the listener.
pub(super) fn acceptor(
    listener: &crate::config::Listener,
) -> Result<Option<tokio_rustls::TlsAcceptor>, DaemonError> {
    let Some(tls) = &listener.tls else {
        return Ok(None);
    };
    tls.load()
        .map(Some)
        .map_err(|source| DaemonError::ListenerTls {
            address: listener.address,
            source,
        })
}

async fn bind(kind: &'static str, address: SocketAddr) -> Result<TcpListener, DaemonError> {
    TcpListener::bind(address)
        .await
        .map_err(|source| DaemonError::Bind {
            kind,
            address,
            source,
        })
}

#[cfg(test)]
mod tests {
    use std::path::Path;

    use super::*;

    const TEXT: &str = r#"
[[listener]]
address = "127.0.0.1:0"
[[listener]]
address = "127.0.0.1:0"
[admin]
address = "127.0.0.1:0"
[[http_listener]]
address = "127.0.0.1:0"
[[client]]
system_id = "acme"
passwords = ["pw"]
[[upstream]]
name = "a"
host = "127.0.0.1"
port = 1000
system_id = "tern"
password = "p"
[[route]]
name = "all"
upstreams = ["a"]
"#;

    fn config() -> Config {
        Config::from_text(Path::new("t.toml"), TEXT).expect("valid")
    }

    #[tokio::test]
    async fn port_0_binds_a_port_the_kernel_picks_and_says_which() {
        let config = config();
        let listeners = Listeners::bind(&config).await.expect("binds");
        listeners.check(&config).expect("matches its config");
        let text = listeners.describe();
        let lines: Vec<&str> = text.lines().collect();
        assert_eq!(lines.len(), 4, "{text}");
        for (line, kind) in lines.iter().zip(["client", "client", "admin", "http"]) {
            let (said, address) = line.split_once(' ').expect("kind and address");
            assert_eq!(said, kind, "{text}");
            let address: SocketAddr = address.parse().expect("an address");
            assert_ne!(address.port(), 0, "{text}");
        }
    }

    /// A `[[simulator]]` on port 0 is bound with the listeners and said
    /// last, and a socket short for it is refused like any other.
    #[cfg(feature = "sandbox")]
    #[tokio::test]
    async fn a_simulator_on_port_0_is_bound_and_said() {
        let text = format!("{TEXT}[[simulator]]\nname = \"s\"\naddress = \"127.0.0.1:0\"\n");
        let config = Config::from_text(Path::new("t.toml"), &text).expect("valid");
        let mut listeners = Listeners::bind(&config).await.expect("binds");
        listeners.check(&config).expect("matches its config");
        let text = listeners.describe();
        let last = text.lines().last().expect("lines");
        let address: SocketAddr = last
            .strip_prefix("simulator ")
            .unwrap_or_else(|| panic!("a simulator line last: {text}"))
            .parse()
            .expect("an address");
        assert_ne!(address.port(), 0, "{text}");
        listeners.simulators.clear();
        let err = listeners.check(&config).expect_err("no simulator socket");
        assert!(
            matches!(
                err,
                DaemonError::SimulatorListeners {
                    configured: 1,
                    given: 0
                }
            ),
            "{err}"
        );
    }

    #[tokio::test]
    async fn sockets_that_do_not_match_the_config_are_refused() {
        let config = config();
        let mut listeners = Listeners::bind(&config).await.expect("binds");
        let http = listeners.http.pop().expect("one HTTP socket");
        let err = listeners.check(&config).expect_err("no HTTP socket");
        assert!(
            matches!(
                err,
                DaemonError::HttpListeners {
                    configured: 1,
                    given: 0
                }
            ),
            "{err}"
        );
        listeners.http.push(http);
        listeners.clients.pop();
        let err = listeners
            .check(&config)
            .expect_err("one client socket short");
        assert!(
            err.to_string()
                .starts_with("1 client listener socket(s) given for 2"),
            "{err}"
        );
        listeners.admin = None;
        listeners.clients.clear();
        let err = super::super::run(
            config,
            listeners,
            tokio_util::sync::CancellationToken::new(),
        )
        .await
        .expect_err("refused before it starts");
        assert!(
            matches!(err, DaemonError::Listeners { given: 0, .. }),
            "{err}"
        );
    }

    #[tokio::test]
    async fn a_port_in_use_names_the_listener_and_its_address() {
        let taken = std::net::TcpListener::bind("127.0.0.1:0").expect("binds");
        let port = taken.local_addr().expect("address").port();
        let text = TEXT.replacen("127.0.0.1:0", &format!("127.0.0.1:{port}"), 1);
        let config = Config::from_text(Path::new("t.toml"), &text).expect("valid");
        let err = Listeners::bind(&config).await.expect_err("in use");
        assert!(
            err.to_string()
                .starts_with(&format!("client listener on 127.0.0.1:{port}: ")),
            "{err}"
        );
    }
}
