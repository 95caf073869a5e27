//! What changes between two configurations: what a reload would do
//! (`tern check-config --diff`, the reload log line) and what it cannot do
//! without a restart. Secrets are compared, never shown.
//!
//! The fields compared are not listed here: they are read from each
//! compiled type's derived `Debug` (one generic walk, [`fields`]), so a
//! field added to an account, upstream, route or to [`Config`] shows in
//! the diff by construction. Only the names shown differently from the
//! field (several fields under one word) and the secrets, which `Debug`
//! hides, are named below.

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

/// Account fields shown under another word; any other field by its name.
const ACCOUNT_WORDS: &[(&str, &str)] = &[
    ("rate", "rates"),
    ("session_rate", "rates"),
    ("mo_routes", "mo routes"),
    ("mo_reassemble", "mo reassembly"),
    ("mo_reassembly_timeout", "mo reassembly"),
    ("transaction", "submit_mode"),
];

/// Upstream fields shown under another word.
const UPSTREAM_WORDS: &[(&str, &str)] = &[("host", "address"), ("port", "address")];

/// Route fields shown under another word: what a message must be to match.
const ROUTE_WORDS: &[(&str, &str)] = &[
    ("clients", "match"),
    ("source", "match"),
    ("data_codings", "match"),
    ("service_type", "match"),
];

/// [`Config`] fields shown as one setting, and whether changing it takes
/// a restart; a field not listed is shown by its name and takes one.
/// Accounts, upstreams and routes (and the profiles they use) are compared
/// item by item instead, `source` is where the file is and `source_text`
/// what it held.
const SETTINGS: &[(&str, &str, bool)] = &[
    ("router", "router settings", false),
    ("node_id", "node", true),
    ("system_id", "node", true),
    ("store_path", "storage", true),
    ("store", "storage", true),
    ("backend", "storage", true),
    ("retention", "storage", true),
    ("unmatched_grace", "storage", true),
    ("outbox_max_age", "storage", true),
];

/// [`Config`] fields not compared as settings.
const NOT_SETTINGS: &[&str] = &[
    "source",
    "source_text",
    "profiles",
    "clients",
    "upstreams",
    "table",
];

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
            // Debug shows every password and token as "<secret>": compare
            // them here.
            let secrets = [
                (a.passwords != b.passwords).then_some("passwords"),
                (a.http_tokens != b.http_tokens).then_some("http_tokens"),
                (a.webhook_secret != b.webhook_secret).then_some("webhook_secret"),
            ];
            differing(a, b, "system_id", ACCOUNT_WORDS, &secrets)
        },
    );
    named(
        &mut changes,
        "upstream",
        &old.upstreams,
        &new.upstreams,
        |u| &u.name,
        |a, b| {
            // The codec redacts the bind's password in Debug but for its
            // length: compare it here, and the rest of the bind without it.
            let secret = (a.bind.password != b.bind.password).then_some("password");
            let mut b = b.clone();
            b.bind.password = a.bind.password.clone();
            // The default account is the address: its change is that one.
            if [a, &b].iter().all(|u| u.account == default_account(u)) {
                b.account = a.account.clone();
            }
            differing(a, &b, "name", UPSTREAM_WORDS, &[secret])
        },
    );
    named(
        &mut changes,
        "route",
        old.table.rules(),
        new.table.rules(),
        |r| &r.name,
        |a, b| differing(a, b, "name", ROUTE_WORDS, &[]),
    );
    route_order(&mut changes, old, new);
    settings(&mut changes, old, new);
    changes
}

/// The account an upstream uses when it names none (see
/// [`super::UpstreamSpec::account`]).
fn default_account(u: &super::UpstreamSpec) -> String {
    super::compile::default_account(u.simulator.as_deref(), &u.host, u.port, &u.bind.system_id)
}

/// A change of the order of the routes kept in both files.
fn route_order(changes: &mut Vec<Change>, old: &Config, new: &Config) {
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
}

/// The settings of [`Config`] outside accounts, upstreams and routes, each
/// changed one once, in the order of the fields.
fn settings(changes: &mut Vec<Change>, old: &Config, new: &Config) {
    let mut shown: Vec<String> = Vec::new();
    for field in changed_fields(old, new) {
        if NOT_SETTINGS.contains(&field.as_str()) {
            continue;
        }
        let (word, restart) = SETTINGS
            .iter()
            .find(|(name, _, _)| *name == field)
            .map_or((field.as_str(), true), |(_, word, restart)| {
                (*word, *restart)
            });
        if !shown.iter().any(|s| s == word) {
            changes.push(setting(word, restart));
            shown.push(word.to_owned());
        }
    }
}

/// The words for what differs between two items: the secrets first, then
/// every field whose printed value differs (but `key`, the item's name),
/// under its word from `words` or its own name, each once.
fn differing<T: fmt::Debug>(
    a: &T,
    b: &T,
    key: &str,
    words: &[(&str, &'static str)],
    secrets: &[Option<&'static str>],
) -> Vec<String> {
    let mut what: Vec<String> = secrets.iter().flatten().map(|s| (*s).to_owned()).collect();
    for field in changed_fields(a, b) {
        if field == key {
            continue;
        }
        let word = words
            .iter()
            .find(|(name, _)| *name == field)
            .map_or(field, |(_, word)| (*word).to_owned());
        if !what.contains(&word) {
            what.push(word);
        }
    }
    what
}

/// The names of the fields whose printed values differ, in field order.
fn changed_fields<T: fmt::Debug>(a: &T, b: &T) -> Vec<String> {
    let before = fields(a);
    let after = fields(b);
    let mut names: Vec<String> = Vec::new();
    for (name, value) in &after {
        if before.iter().find(|(n, _)| n == name).map(|(_, v)| v) != Some(value) {
            names.push(name.clone());
        }
    }
    for (name, _) in &before {
        if !after.iter().any(|(n, _)| n == name) {
            names.push(name.clone());
        }
    }
    names
}

/// The top-level fields of a struct's derived `{:#?}`, name and printed
/// value: the one walk that finds every field of a compiled type. Pretty
/// Debug puts each field of the outer struct on a line of its own,
/// indented four spaces; what is indented deeper belongs to it.
fn fields<T: fmt::Debug>(value: &T) -> Vec<(String, String)> {
    let text = format!("{value:#?}");
    let mut fields: Vec<(String, String)> = Vec::new();
    for line in text.lines().skip(1) {
        let top = line
            .strip_prefix("    ")
            .filter(|rest| !rest.starts_with(' '))
            .and_then(|rest| rest.split_once(": "));
        match (top, fields.last_mut()) {
            (Some((name, rest)), _) => fields.push((name.to_owned(), rest.to_owned())),
            (None, Some((_, value))) => {
                value.push('\n');
                value.push_str(line);
            }
            (None, None) => {}
        }
    }
    fields
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
    differ: impl Fn(&T, &T) -> Vec<String>,
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

    /// The diff from `old` to `new` as `check-config --diff` prints it.
    fn shown(old: &str, new: &str) -> Vec<String> {
        diff(&config(old), &config(new))
            .iter()
            .map(ToString::to_string)
            .collect()
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
        let changes = shown(BASE, &new);
        assert_eq!(changes, ["~ account acme: distribution_lists"]);
    }

    #[test]
    fn client_session_settings_take_a_restart() {
        let new = format!("{BASE}[client_sessions]\ninactivity_timeout = \"10m\"\n");
        let changes = shown(BASE, &new);
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
        let changes = shown(BASE, &new);
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

    /// HTTP tokens are secrets: a changed one shows by name only, once,
    /// and a new `[[http_listener]]` takes a restart.
    #[test]
    fn http_tokens_show_by_name_and_http_listeners_take_a_restart() {
        let before = BASE.replace(
            "passwords = [\"one\"]",
            "passwords = [\"one\"]\nhttp_tokens = [\"tok-a\"]",
        );
        let rotated = before.replace("[\"tok-a\"]", "[\"tok-a\", \"tok-b\"]");
        let changes = shown(&before, &rotated);
        assert_eq!(changes, ["~ account acme: http_tokens"]);
        assert!(!changes.concat().contains("tok-b"), "{changes:?}");
        let same_count = before.replace("[\"tok-a\"]", "[\"tok-c\"]");
        assert_eq!(shown(&before, &same_count), ["~ account acme: http_tokens"]);
        let listening = format!("{before}[[http_listener]]\naddress = \"127.0.0.1:8080\"\n");
        assert_eq!(
            shown(&before, &listening),
            ["~ http_listeners (takes effect at restart)"]
        );
    }

    #[test]
    fn an_id_format_change_is_shown_on_its_account() {
        let new = BASE.replace(
            "passwords = [\"one\"]",
            "passwords = [\"one\"]\nid_format = \"decimal\"",
        );
        let changes = shown(BASE, &new);
        assert_eq!(changes, ["~ account acme: id_format"]);
    }
    /// `flash` and `time_window` of a route, `account` of an upstream and
    /// the `bind_guard` setting are named nowhere in this file: they show because every field of
    /// the compiled type is compared.
    #[test]
    fn a_field_named_nowhere_here_shows_when_changed() {
        for field in ["flash", "time_window", "bind_guard"] {
            assert!(
                !include_str!("diff.rs")
                    .split("#[cfg(test)]")
                    .next()
                    .unwrap_or_default()
                    .contains(field),
                "{field} is named in diff.rs"
            );
        }
        let new = BASE
            .replace(
                "prefixes = [\"34\"]",
                "prefixes = [\"34\"]\nflash = true\ntime_window = { from = \"08:00\", to = \"20:00\" }",
            )
            .replace("port = 1001", "port = 1001\naccount = \"shared\"")
            .replace(
                "[[listener]]",
                "[bind_guard]\nlock_after = 30\n[[listener]]",
            );
        let changes = shown(BASE, &new);
        assert_eq!(
            changes,
            [
                "~ upstream b: account",
                "~ route spain: flash, time_window",
                "~ bind_guard (takes effect at restart)",
            ]
        );
    }

    #[test]
    fn route_clients_in_another_order_are_no_change() {
        let with = |clients: &str| {
            BASE.replace(
                "prefixes = [\"34\"]",
                &format!("prefixes = [\"34\"]\nclients = [{clients}]"),
            )
        };
        let (a, b) = (with("\"acme\", \"gone\""), with("\"gone\", \"acme\""));
        assert_eq!(diff(&config(&a), &config(&b)), Vec::new());
        let changes = shown(&a, &with("\"acme\""));
        assert_eq!(changes, ["~ route spain: match"]);
    }
}
