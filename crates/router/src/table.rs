//! The routing table: which rule a message falls under.
//!
//! Rules match on the client (system_id or group), the destination prefix,
//! the source address, the data coding and the service_type. The longest
//! matching destination prefix wins; among rules with prefixes of the same
//! length (or none), the first in the configuration wins. A digit trie keeps
//! a lookup to one walk down the destination's digits, whatever the number
//! of prefixes: each node holds the rules whose prefix ends there, in
//! configuration order, and the walk tries the deepest node first.

use std::collections::{BTreeMap, HashSet};

use crate::strategy::Strategy;

/// How a rule matches the source address.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SourceMatch {
    /// Exactly this address.
    Exact(String),
    /// Starting with these characters.
    Prefix(String),
    /// Any alphanumeric sender id (with a letter in it).
    Alphanumeric,
    /// Any numeric sender.
    Numeric,
}

impl SourceMatch {
    fn matches(&self, source: &str) -> bool {
        match self {
            Self::Exact(s) => source == s,
            Self::Prefix(p) => source.starts_with(p.as_str()),
            Self::Alphanumeric => source.chars().any(|c| c.is_ascii_alphabetic()),
            Self::Numeric => {
                let digits = source.trim_start_matches('+');
                !digits.is_empty() && digits.bytes().all(|b| b.is_ascii_digit())
            }
        }
    }
}

/// One upstream of a route.
#[derive(Debug, Clone, PartialEq)]
pub struct RouteUpstream {
    /// The upstream's name.
    pub name: String,
    /// Lower goes first (failover).
    pub priority: u32,
    /// Share of traffic (weighted).
    pub weight: u32,
}

/// A rule as configured.
#[derive(Debug, Clone, PartialEq)]
pub struct Rule {
    /// Its name, for logs and `tern trace`.
    pub name: String,
    /// Client system_ids this rule is for (groups already expanded); `None`
    /// for every client.
    pub clients: Option<HashSet<String>>,
    /// Destination prefixes (digits, `+` and `00` allowed); empty for every
    /// destination.
    pub prefixes: Vec<String>,
    /// Source address condition.
    pub source: Option<SourceMatch>,
    /// data_coding values; `None` for any.
    pub data_codings: Option<Vec<u8>>,
    /// service_type; `None` for any.
    pub service_type: Option<String>,
    /// Where the messages go.
    pub upstreams: Vec<RouteUpstream>,
    /// How one is picked.
    pub strategy: Strategy,
    /// Final receipts with one of these reasons send the message again
    /// through the next upstream (e.g. the vendor had no route, the
    /// operator refused it); empty for never.
    pub resubmit_on: Vec<crate::canonical::Reason>,
}

/// What a lookup is about.
#[derive(Debug, Clone, Copy)]
pub struct MessageKey<'a> {
    /// The client's system_id.
    pub client: &'a str,
    /// The destination address as the client gave it.
    pub destination: &'a str,
    /// The source address.
    pub source: &'a str,
    /// The data coding.
    pub data_coding: u8,
    /// The service type.
    pub service_type: &'a str,
}

/// A configuration problem in the table.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum TableError {
    /// A prefix that is not digits.
    #[error("rule {rule}: prefix {prefix:?} is not digits (a leading + or 00 is allowed)")]
    BadPrefix {
        /// The rule.
        rule: String,
        /// The prefix.
        prefix: String,
    },
    /// A rule with nowhere to send.
    #[error("rule {0}: no upstream")]
    NoUpstream(String),
}

/// Digits of an E.164 number: a leading `+` or `00` dropped; `None` when
/// anything else than digits remains.
pub fn normalise_number(address: &str) -> Option<&str> {
    let trimmed = address.trim();
    let digits = trimmed
        .strip_prefix('+')
        .or_else(|| trimmed.strip_prefix("00"))
        .unwrap_or(trimmed);
    (!digits.is_empty() && digits.bytes().all(|b| b.is_ascii_digit())).then_some(digits)
}

#[derive(Debug, Default, Clone)]
struct Node {
    children: [Option<u32>; 10],
    /// Rules whose prefix ends here, in configuration order.
    rules: Vec<u32>,
}

/// The compiled table.
#[derive(Debug, Clone)]
pub struct Table {
    /// Where the rules come from (the configuration file), for logs.
    name: String,
    rules: Vec<Rule>,
    nodes: Vec<Node>,
}

impl Table {
    /// Compiles rules (in configuration order) into a table.
    pub fn compile(rules: Vec<Rule>) -> Result<Table, Vec<TableError>> {
        let mut nodes = vec![Node::default()];
        let mut errors = Vec::new();
        for (index, rule) in rules.iter().enumerate() {
            if rule.upstreams.is_empty() {
                errors.push(TableError::NoUpstream(rule.name.clone()));
            }
            let index = index as u32;
            if rule.prefixes.is_empty() {
                nodes[0].rules.push(index);
            }
            for prefix in &rule.prefixes {
                let Some(digits) = normalise_number(prefix) else {
                    errors.push(TableError::BadPrefix {
                        rule: rule.name.clone(),
                        prefix: prefix.clone(),
                    });
                    continue;
                };
                let mut at = 0usize;
                for d in digits.bytes().map(|b| usize::from(b - b'0')) {
                    at = match nodes[at].children[d] {
                        Some(next) => next as usize,
                        None => {
                            nodes.push(Node::default());
                            let next = nodes.len() - 1;
                            nodes[at].children[d] = Some(next as u32);
                            next
                        }
                    };
                }
                if !nodes[at].rules.contains(&index) {
                    nodes[at].rules.push(index);
                }
            }
        }
        if errors.is_empty() {
            Ok(Table {
                name: "routes".to_owned(),
                rules,
                nodes,
            })
        } else {
            Err(errors)
        }
    }

    /// The rule for a message: longest prefix first, then configuration order.
    pub fn lookup(&self, key: &MessageKey<'_>) -> Option<&Rule> {
        self.lookup_indexed(key).map(|(_, rule)| rule)
    }

    /// [`Table::lookup`] with the rule's position in the configuration.
    pub fn lookup_indexed(&self, key: &MessageKey<'_>) -> Option<(usize, &Rule)> {
        // Nodes on the destination's path, root first; at most 20 digits deep
        // for any real number, so a fixed buffer avoids allocating.
        let mut path = [0u32; 24];
        let mut depth = 1;
        if let Some(digits) = normalise_number(key.destination) {
            let mut at = 0usize;
            for d in digits.bytes().map(|b| usize::from(b - b'0')) {
                match self.nodes[at].children[d] {
                    Some(next) if depth < path.len() => {
                        path[depth] = next;
                        depth += 1;
                        at = next as usize;
                    }
                    _ => break,
                }
            }
        }
        path[..depth]
            .iter()
            .rev()
            .flat_map(|&node| self.nodes[node as usize].rules.iter())
            .map(|&i| (i as usize, &self.rules[i as usize]))
            .find(|(_, rule)| rule.accepts(key))
    }

    /// Names the rule set (its configuration file), for log lines.
    pub fn named(mut self, name: impl Into<String>) -> Table {
        self.name = name.into();
        self
    }

    /// The rule set's name.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// The rules, in configuration order.
    pub fn rules(&self) -> &[Rule] {
        &self.rules
    }
}

impl Rule {
    /// Whether the conditions other than the prefix hold.
    fn accepts(&self, key: &MessageKey<'_>) -> bool {
        self.clients.as_ref().is_none_or(|c| c.contains(key.client))
            && self.source.as_ref().is_none_or(|s| s.matches(key.source))
            && self
                .data_codings
                .as_ref()
                .is_none_or(|d| d.contains(&key.data_coding))
            && self
                .service_type
                .as_ref()
                .is_none_or(|s| s == key.service_type)
    }
}

/// Prices per destination prefix for one upstream (least cost).
#[derive(Debug, Clone, Default)]
pub struct PriceList {
    by_prefix: BTreeMap<String, f64>,
}

impl PriceList {
    /// A price list from (prefix, price) pairs.
    pub fn new(entries: impl IntoIterator<Item = (String, f64)>) -> Self {
        Self {
            by_prefix: entries
                .into_iter()
                .filter_map(|(p, price)| normalise_number(&p).map(|d| (d.to_owned(), price)))
                .collect(),
        }
    }

    /// The price for the longest listed prefix of `destination`.
    pub fn price(&self, destination: &str) -> Option<f64> {
        let digits = normalise_number(destination)?;
        (1..=digits.len())
            .rev()
            .find_map(|n| self.by_prefix.get(&digits[..n]).copied())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rule(name: &str, prefixes: &[&str]) -> Rule {
        Rule {
            name: name.to_owned(),
            clients: None,
            prefixes: prefixes.iter().map(|p| p.to_string()).collect(),
            source: None,
            data_codings: None,
            service_type: None,
            upstreams: vec![RouteUpstream {
                name: "up".to_owned(),
                priority: 0,
                weight: 1,
            }],
            strategy: Strategy::Failover,
            resubmit_on: Vec::new(),
        }
    }

    fn key<'a>(client: &'a str, destination: &'a str, source: &'a str) -> MessageKey<'a> {
        MessageKey {
            client,
            destination,
            source,
            data_coding: 0,
            service_type: "",
        }
    }

    fn pick<'t>(table: &'t Table, k: MessageKey<'_>) -> Option<&'t str> {
        table.lookup(&k).map(|r| r.name.as_str())
    }

    #[test]
    fn longest_prefix_wins_then_configuration_order() {
        let table = Table::compile(vec![
            rule("default", &[]),
            rule("spain", &["34"]),
            rule("spain-mobile", &["346", "347"]),
            rule("spain-again", &["34"]),
        ])
        .expect("valid");
        assert_eq!(
            pick(&table, key("c", "34600000001", "")),
            Some("spain-mobile")
        );
        assert_eq!(pick(&table, key("c", "+34910000000", "")), Some("spain"));
        assert_eq!(
            pick(&table, key("c", "0034700000000", "")),
            Some("spain-mobile")
        );
        assert_eq!(pick(&table, key("c", "4477", "")), Some("default"));
        assert_eq!(
            pick(&table, key("c", "Tern", "")),
            Some("default"),
            "non-numeric destination"
        );
    }

    #[test]
    fn other_conditions_narrow_and_fall_back_to_shorter_prefixes() {
        let mut acme = rule("acme-fr", &["33"]);
        acme.clients = Some(["acme".to_owned()].into());
        let mut alpha = rule("alpha-fr", &["33"]);
        alpha.source = Some(SourceMatch::Alphanumeric);
        let mut ucs2 = rule("ucs2", &["33"]);
        ucs2.data_codings = Some(vec![8]);
        let mut otp = rule("otp", &[]);
        otp.service_type = Some("OTP".to_owned());
        let table = Table::compile(vec![acme, alpha, ucs2, otp, rule("any", &[])]).expect("valid");
        assert_eq!(pick(&table, key("acme", "33600", "123")), Some("acme-fr"));
        assert_eq!(pick(&table, key("beta", "33600", "Shop")), Some("alpha-fr"));
        assert_eq!(pick(&table, key("beta", "33600", "123")), Some("any"));
        let k = MessageKey {
            data_coding: 8,
            ..key("beta", "33600", "123")
        };
        assert_eq!(pick(&table, k), Some("ucs2"));
        let k = MessageKey {
            service_type: "OTP",
            ..key("beta", "44", "1")
        };
        assert_eq!(pick(&table, k), Some("otp"));
    }

    #[test]
    fn no_rule_no_route() {
        let table = Table::compile(vec![rule("spain", &["34"])]).expect("valid");
        assert_eq!(pick(&table, key("c", "44", "")), None);
    }

    #[test]
    fn bad_rules_are_all_reported() {
        let mut empty = rule("empty", &["1"]);
        empty.upstreams.clear();
        let errors = Table::compile(vec![rule("bad", &["34x"]), empty]).expect_err("invalid");
        assert_eq!(errors.len(), 2);
        assert!(errors[0].to_string().contains("34x"));
    }

    #[test]
    fn prices_by_longest_prefix() {
        let prices = PriceList::new([
            ("34".to_owned(), 0.05),
            ("346".to_owned(), 0.04),
            ("+44".to_owned(), 0.03),
        ]);
        assert_eq!(prices.price("34600"), Some(0.04));
        assert_eq!(prices.price("34900"), Some(0.05));
        assert_eq!(prices.price("0044123"), Some(0.03));
        assert_eq!(prices.price("1"), None);
    }
}
