//! The sandbox: SMSC simulators (crates/sim) that stand in for vendors, so
//! Tern can be tried, and benchmarked, without an account anywhere. They are
//! the `[[simulator]]` upstreams of the embedded default configuration, and
//! what `tern sim` and `tern bench` run.
//!
//! A production node never needs them, so they sit behind the `sandbox`
//! cargo feature (on by default): `cargo build -p tern --no-default-features`
//! gives a daemon without the simulator linked in. Such a build must still
//! say, when asked for the sandbox, what is missing and what to do instead,
//! rather than fail with an unknown key or an unknown subcommand: that is
//! [`Missing`].

use std::fmt;

/// Whether this build has the sandbox simulator (the `sandbox` feature).
pub const BUILT_IN: bool = cfg!(feature = "sandbox");

/// What needs the sandbox simulator.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Needs {
    /// A subcommand (`run`, `route-test`) given no `--config`: the embedded
    /// default configuration's upstreams are sandbox simulators.
    DefaultConfig(&'static str),
    /// A `[[simulator]]` section of a configuration file.
    Section,
    /// A subcommand that runs the simulator (`sim`, `bench`).
    Command(&'static str),
}

/// This build has no sandbox simulator, and `needs` asked for it.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub struct Missing {
    /// What asked for the simulator.
    pub needs: Needs,
}

/// What is missing, the same in every message.
const MISSING: &str = "this build of tern has no sandbox simulator \
                       (it was built without the `sandbox` cargo feature)";

/// How to get a build with the simulator, the same in every message.
const REBUILD: &str = "build tern with it: `cargo build -p tern --features sandbox`";

impl fmt::Display for Missing {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.needs {
            Needs::DefaultConfig(command) => write!(
                f,
                "without --config, `tern {command}` uses the embedded default \
                 configuration, whose upstreams are sandbox simulators, but {MISSING}. \
                 Give a configuration file with real upstreams, `tern {command} --config \
                 FILE` (config/production.toml is a starting point), or {REBUILD}"
            ),
            Needs::Section => write!(
                f,
                "{MISSING} to start here; point the upstreams at real SMSCs and remove \
                 this [[simulator]] section, or {REBUILD}"
            ),
            Needs::Command(command) => write!(
                f,
                "`tern {command}` runs the sandbox simulator, but {MISSING}; {REBUILD}"
            ),
        }
    }
}

/// Whether `needs` can be met by this build: `Err` with the explanation
/// when the simulator was left out.
pub fn require(needs: Needs) -> Result<(), Missing> {
    if BUILT_IN {
        Ok(())
    } else {
        Err(Missing { needs })
    }
}

/// A `[[simulator]]` could not start (its certificate unreadable, say).
#[derive(Debug, thiserror::Error)]
#[error("starting simulator {name} on {address}: {source}")]
pub struct SandboxError {
    /// The `[[simulator]]` name.
    pub name: String,
    /// Its configured address.
    pub address: std::net::SocketAddr,
    /// What the simulator said (boxed: it is large, and errors travel).
    #[cfg(feature = "sandbox")]
    #[source]
    pub source: Box<tern_sim::SimError>,
    /// Never built without the simulator: nothing is started then.
    #[cfg(not(feature = "sandbox"))]
    #[source]
    pub source: std::convert::Infallible,
}

/// The sandbox SMSCs a configuration started, serving until dropped.
#[derive(Debug, Default)]
pub struct Simulators {
    /// Held: dropping a handle stops its simulator.
    #[cfg(feature = "sandbox")]
    handles: Vec<(String, tern_sim::SimHandle)>,
}

impl Simulators {
    /// Where each simulator listens, by its `[[simulator]]` name: what an
    /// upstream that names one connects to.
    #[cfg(feature = "sandbox")]
    pub fn addresses(&self) -> Vec<(String, std::net::SocketAddr)> {
        self.handles
            .iter()
            .map(|(name, handle)| (name.clone(), handle.addr()))
            .collect()
    }

    /// None without the simulator.
    #[cfg(not(feature = "sandbox"))]
    pub fn addresses(&self) -> Vec<(String, std::net::SocketAddr)> {
        Vec::new()
    }

    /// Stops them: last, once the node's upstream sessions to them closed.
    pub fn stop(self) {}
}

/// Starts the configuration's `[[simulator]]` upstreams on `sockets`
/// (bound from the same config, one per section in order) before
/// anything connects to them.
#[cfg(feature = "sandbox")]
pub fn start(
    config: &crate::config::Config,
    sockets: Vec<tokio::net::TcpListener>,
) -> Result<Simulators, SandboxError> {
    use tern_sim::smsc::{SimConfig, Simulator};

    let mut handles = Vec::new();
    for (sim, socket) in config.simulators.iter().zip(sockets) {
        let handle = Simulator::start_on(
            SimConfig {
                listen: sim.address,
                behaviour: sim.behaviour.clone(),
                tls: sim.tls.clone(),
                ..SimConfig::default()
            },
            socket,
        )
        .map_err(|source| SandboxError {
            name: sim.name.clone(),
            address: sim.address,
            source: Box::new(source),
        })?;
        tracing::info!(name = sim.name, address = %handle.addr(), "sandbox simulator started");
        handles.push((sim.name.clone(), handle));
    }
    Ok(Simulators { handles })
}

/// Without the simulator there is nothing to start: the configuration
/// compiler refused every `[[simulator]]` section already.
#[cfg(not(feature = "sandbox"))]
pub fn start(
    _config: &crate::config::Config,
    _sockets: Vec<tokio::net::TcpListener>,
) -> Result<Simulators, SandboxError> {
    Ok(Simulators::default())
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Every message says what is missing (the simulator, the feature) and
    /// how to get on: the feature to build with, and for `run` the option
    /// that takes real upstreams instead.
    #[test]
    fn each_message_names_the_feature_and_the_way_out() {
        for needs in [
            Needs::DefaultConfig("run"),
            Needs::Section,
            Needs::Command("bench"),
        ] {
            let text = Missing { needs }.to_string();
            assert!(text.contains("no sandbox simulator"), "{text}");
            assert!(text.contains("`sandbox` cargo feature"), "{text}");
            assert!(text.contains("--features sandbox"), "{text}");
        }
        let run = Missing {
            needs: Needs::DefaultConfig("run"),
        }
        .to_string();
        assert!(run.contains("tern run --config FILE"), "{run}");
        let bench = Missing {
            needs: Needs::Command("bench"),
        }
        .to_string();
        assert!(bench.contains("`tern bench`"), "{bench}");
    }

    /// The build under test answers for itself: with the feature, nothing
    /// is missing; without it, everything that needs the simulator is.
    #[test]
    fn require_follows_the_feature() {
        for needs in [
            Needs::DefaultConfig("route-test"),
            Needs::Section,
            Needs::Command("sim"),
        ] {
            assert_eq!(
                require(needs).is_ok(),
                cfg!(feature = "sandbox"),
                "{needs:?}"
            );
        }
    }
}
