//! What changes between two configurations: what a reload would do
//! (`tern check-config --diff`, the reload log line) and what it cannot do
//! without a restart. Secrets are compared, never shown.

use std::fmt;

use serde::Serialize;

use super::Config;

/// One difference.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Change {
    /// "added", "removed" or "changed".
    pub kind: &'static str,
    /// What: "account acme", "upstream ovh", "route spain", "listeners".
    pub what: String,
    /// How, for a change ("passwords, rate"); empty otherwise.
    pub detail: String,
    /// Whether it takes a restart (listeners, store, node, admin, log,
    /// simulators) rather than a reload.
    pub restart: bool,
}

impl fmt::Display for Change {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let sign = match self.kind {
            "added" => '+',
            "removed" => '-',
            _ => '~',
        };
        write!(f, "{sign} {}", self.what)?;
        if !self.detail.is_empty() {
            write!(f, ": {}", self.detail)?;
        }
        if self.restart {
            f.write_str(" (takes effect at restart)")?;
        }
        Ok(())
    }
}

/// Every difference from `old` to `new`, accounts first, then upstreams,
/// routes, and the settings that need a restart.
pub fn diff(old: &Config, new: &Config) -> Vec<Change> {
    let mut changes = Vec::new();
    named(
        &mut changes,
        "account",
        &old.clients,
        &new.clients,
        |c| &c.system_id,
        |a, b| {
            let mut what = Vec::new();
            if a.passwords != b.passwords {
                what.push("passwords");
            }
            if a.allowed_ips != b.allowed_ips {
                what.push("allowed_ips");
            }
            if a.max_binds != b.max_binds {
                what.push("max_binds");
            }
            if a.rate != b.rate || a.session_rate != b.session_rate {
                what.push("rates");
            }
            if a.mo_routes != b.mo_routes {
                what.push("mo routes");
            }
            if a.mo_reassemble != b.mo_reassemble
                || a.mo_reassembly_timeout != b.mo_reassembly_timeout
            {
                what.push("mo reassembly");
            }
            if a.receipts_per_part != b.receipts_per_part {
                what.push("receipts_per_part");
            }
            if a.vendor_tlvs != b.vendor_tlvs {
                what.push("vendor_tlvs");
            }
            if a.transaction != b.transaction {
                what.push("submit_mode");
            }
            if a.id_format != b.id_format {
                what.push("id_format");
            }
            if a.binds != b.binds {
                what.push("binds");
            }
            if a.window != b.window {
                what.push("window");
            }
            if a.distribution_lists != b.distribution_lists {
                what.push("distribution_lists");
            }
            what
        },
    );
    named(
        &mut changes,
        "upstream",
        &old.upstreams,
        &new.upstreams,
        |u| &u.name,
        |a, b| {
            let mut what = Vec::new();
            if a.host != b.host || a.port != b.port {
                what.push("address");
            }
            if a.bind.password != b.bind.password {
                what.push("password");
            }
            if a.bind != b.bind && a.bind.password == b.bind.password {
                what.push("bind");
            }
            if a.profile != b.profile {
                what.push("profile");
            }
            if a.sessions != b.sessions {
                what.push("sessions");
            }
            if a.window != b.window {
                what.push("window");
            }
            if a.rate != b.rate {
                what.push("rate");
            }
            if a.tls != b.tls {
                what.push("tls");
            }
            what
        },
    );
    named(
        &mut changes,
        "route",
        old.table.rules(),
        new.table.rules(),
        |r| &r.name,
        |a, b| {
            let mut what = Vec::new();
            if a.prefixes != b.prefixes {
                what.push("prefixes");
            }
            if a.clients != b.clients || a.source != b.source {
                what.push("match");
            }
            if a.data_codings != b.data_codings || a.service_type != b.service_type {
                what.push("match");
            }
            if a.upstreams != b.upstreams {
                what.push("upstreams");
            }
            if a.strategy != b.strategy {
                what.push("strategy");
            }
            if a.resubmit_on != b.resubmit_on {
                what.push("resubmit_on");
            }
            what.dedup();
            what
        },
    );
    let old_order: Vec<&str> = old.table.rules().iter().map(|r| r.name.as_str()).collect();
    let new_order: Vec<&str> = new.table.rules().iter().map(|r| r.name.as_str()).collect();
    let kept_old: Vec<&str> = old_order
        .iter()
        .copied()
        .filter(|n| new_order.contains(n))
        .collect();
    let kept_new: Vec<&str> = new_order
        .iter()
        .copied()
        .filter(|n| old_order.contains(n))
        .collect();
    if kept_old != kept_new {
        changes.push(Change {
            kind: "changed",
            what: "route order".to_owned(),
            detail: kept_new.join(", "),
            restart: false,
        });
    }
    if format!("{:?}", old.router) != format!("{:?}", new.router) {
        changes.push(setting("router settings", false));
    }
    let listeners = |c: &Config| {
        c.listeners
            .iter()
            .map(|l| format!("{} {:?}", l.address, l.tls))
            .collect::<Vec<_>>()
    };
    if listeners(old) != listeners(new) {
        changes.push(setting("listeners", true));
    }
    if old.store_path != new.store_path
        || format!("{:?}", old.store) != format!("{:?}", new.store)
        || format!("{:?}", old.backend) != format!("{:?}", new.backend)
        || old.retention != new.retention
    {
        changes.push(setting("storage", true));
    }
    if old.node_id != new.node_id || old.system_id != new.system_id {
        changes.push(setting("node", true));
    }
    if old.admin != new.admin {
        changes.push(setting("admin", true));
    }
    if old.bind_guard != new.bind_guard {
        changes.push(setting("bind_guard", true));
    }
    if old.client_sessions != new.client_sessions {
        changes.push(setting("client_sessions", true));
    }
    if old.log != new.log {
        changes.push(setting("log", true));
    }
    #[cfg(feature = "sandbox")]
    let sims = |c: &Config| {
        c.simulators
            .iter()
            .map(|s| format!("{} {} {:?}", s.name, s.address, s.behaviour))
            .collect::<Vec<_>>()
    };
    #[cfg(feature = "sandbox")]
    if sims(old) != sims(new) {
        changes.push(setting("simulators", true));
    }
    changes
}

fn setting(what: &str, restart: bool) -> Change {
    Change {
        kind: "changed",
        what: what.to_owned(),
        detail: String::new(),
        restart,
    }
}

/// Added, removed and changed items of two lists keyed by name.
fn named<T>(
    changes: &mut Vec<Change>,
    noun: &str,
    old: &[T],
    new: &[T],
    name: impl Fn(&T) -> &String,
    differ: impl Fn(&T, &T) -> Vec<&'static str>,
) {
    for item in new {
        match old.iter().find(|o| name(o) == name(item)) {
            None => changes.push(Change {
                kind: "added",
                what: format!("{noun} {}", name(item)),
                detail: String::new(),
                restart: false,
            }),
            Some(before) => {
                let what = differ(before, item);
                if !what.is_empty() {
                    changes.push(Change {
                        kind: "changed",
                        what: format!("{noun} {}", name(item)),
                        detail: what.join(", "),
                        restart: false,
                    });
                }
            }
        }
    }
    for item in old {
        if !new.iter().any(|n| name(n) == name(item)) {
            changes.push(Change {
                kind: "removed",
                what: format!("{noun} {}", name(item)),
                detail: String::new(),
                restart: false,
            });
        }
    }
}

#[cfg(test)]
mod tests {
    use std::path::Path;

    use super::*;

    const BASE: &str = r#"
[[listener]]
address = "127.0.0.1:2775"
[[client]]
system_id = "acme"
passwords = ["one"]
[[client]]
system_id = "gone"
passwords = ["x"]
[[upstream]]
name = "a"
host = "127.0.0.1"
port = 1000
system_id = "tern"
password = "p"
[[upstream]]
name = "b"
host = "127.0.0.1"
port = 1001
system_id = "tern"
password = "p"
[[route]]
name = "spain"
prefixes = ["34"]
upstreams = ["a", "b"]
"#;

    fn config(text: &str) -> Config {
        Config::from_text(Path::new("t.toml"), text).expect("valid")
    }

    #[test]
    fn the_same_file_has_no_changes() {
        assert_eq!(diff(&config(BASE), &config(BASE)), Vec::new());
    }

    #[test]
    fn a_changed_distribution_list_is_a_change_of_the_account() {
        let new = BASE.replace(
            "passwords = [\"one\"]\n",
            "passwords = [\"one\"]\ndistribution_lists = { team = [\"34600000001\"] }\n",
        );
        let changes: Vec<String> = diff(&config(BASE), &config(&new))
            .iter()
            .map(ToString::to_string)
            .collect();
        assert_eq!(changes, ["~ account acme: distribution_lists"]);
    }

    #[test]
    fn client_session_settings_take_a_restart() {
        let new = format!("{BASE}[client_sessions]\ninactivity_timeout = \"10m\"\n");
        let changes: Vec<String> = diff(&config(BASE), &config(&new))
            .iter()
            .map(ToString::to_string)
            .collect();
        assert_eq!(changes, ["~ client_sessions (takes effect at restart)"]);
    }

    #[test]
    fn accounts_upstreams_and_routes_are_compared_by_name() {
        let new = BASE
            .replace("passwords = [\"one\"]", "passwords = [\"one\", \"two\"]")
            .replace(
                "[[client]]\nsystem_id = \"gone\"\npasswords = [\"x\"]\n",
                "[[client]]\nsystem_id = \"fresh\"\npasswords = [\"y\"]\n",
            )
            .replace("port = 1001", "port = 1002")
            .replace("upstreams = [\"a\", \"b\"]", "upstreams = [\"b\"]");
        let changes: Vec<String> = diff(&config(BASE), &config(&new))
            .iter()
            .map(ToString::to_string)
            .collect();
        assert_eq!(
            changes,
            [
                "~ account acme: passwords",
                "+ account fresh",
                "- account gone",
                "~ upstream b: address",
                "~ route spain: upstreams",
            ]
        );
    }

    #[test]
    fn listener_changes_need_a_restart_and_secrets_are_not_shown() {
        let new = BASE.replace("127.0.0.1:2775", "127.0.0.1:2776").replace(
            "password = \"p\"\n[[upstream]]",
            "password = \"q\"\n[[upstream]]",
        );
        let changes = diff(&config(BASE), &config(&new));
        let text: Vec<String> = changes.iter().map(ToString::to_string).collect();
        assert_eq!(
            text,
            [
                "~ upstream a: password",
                "~ listeners (takes effect at restart)"
            ]
        );
        assert!(!text.concat().contains('q'), "{text:?}");
    }

    #[test]
    fn an_id_format_change_is_shown_on_its_account() {
        let new = BASE.replace(
            "passwords = [\"one\"]",
            "passwords = [\"one\"]\nid_format = \"decimal\"",
        );
        let changes: Vec<String> = diff(&config(BASE), &config(&new))
            .iter()
            .map(ToString::to_string)
            .collect();
        assert_eq!(changes, ["~ account acme: id_format"]);
    }
}
