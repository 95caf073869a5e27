//! The routing table: which rule a message falls under.
//!
//! Rules match on the client (system_id or group), the destination prefix,
//! the source address (exact, prefix, pattern, alphanumeric, numeric), the
//! data coding, the service_type, the priority_flag, the esm_class UDH
//! indicator, flash (class 0) messages and a weekly time window in a named
//! time zone. The longest matching destination prefix wins; among rules
//! with prefixes of the same length (or none), the first in the
//! configuration whose other conditions hold wins. A digit trie keeps a
//! lookup to one walk down the destination's digits, whatever the number
//! of prefixes: each node holds the rules whose prefix ends there, in
//! configuration order, and the walk tries the deepest node first. The
//! other conditions are compiled to masks and fixed-size values, so
//! checking them allocates nothing.

use std::collections::{BTreeMap, BTreeSet};

use jiff::tz::TimeZone;
use jiff::Timestamp;

use crate::strategy::Strategy;

/// How a rule matches the source address.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SourceMatch {
    /// Exactly this address.
    Exact(String),
    /// Starting with these characters.
    Prefix(String),
    /// A wildcard pattern: `*` any run of characters (also none), `?` any
    /// one character, anything else itself.
    Pattern(String),
    /// Any alphanumeric sender id (with a letter in it).
    Alphanumeric,
    /// Any numeric sender.
    Numeric,
}

/// Why a source pattern is refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum PatternError {
    /// Nothing to match.
    #[error("the pattern is empty")]
    Empty,
    /// A character a source address cannot hold.
    #[error("{0:?} cannot appear in a source address (printable ASCII, no spaces)")]
    BadCharacter(char),
    /// More fixed characters than a source_addr holds.
    #[error("the pattern needs {0} characters, a source_addr holds at most 20")]
    TooLong(usize),
}

impl SourceMatch {
    /// A `pattern:` source condition, checked: printable ASCII without
    /// spaces, and at most 20 characters besides the `*`s (source_addr is a
    /// C-Octet String of 21), so a pattern that can never match is refused.
    pub fn pattern(text: &str) -> Result<SourceMatch, PatternError> {
        if text.is_empty() {
            return Err(PatternError::Empty);
        }
        if let Some(c) = text.chars().find(|c| !c.is_ascii_graphic()) {
            return Err(PatternError::BadCharacter(c));
        }
        let fixed = text.bytes().filter(|&b| b != b'*').count();
        if fixed > 20 {
            return Err(PatternError::TooLong(fixed));
        }
        Ok(SourceMatch::Pattern(text.to_owned()))
    }

    fn matches(&self, source: &str) -> bool {
        match self {
            Self::Exact(s) => source == s,
            Self::Prefix(p) => source.starts_with(p.as_str()),
            Self::Pattern(p) => wildcard(p.as_bytes(), source.as_bytes()),
            Self::Alphanumeric => source.chars().any(|c| c.is_ascii_alphabetic()),
            Self::Numeric => {
                let digits = source.trim_start_matches('+');
                !digits.is_empty() && digits.bytes().all(|b| b.is_ascii_digit())
            }
        }
    }
}

/// Whether `text` matches `pattern` (`*` any run, `?` any one byte). Greedy
/// with a return to the last `*`: linear in practice, no allocation.
fn wildcard(pattern: &[u8], text: &[u8]) -> bool {
    let (mut p, mut t) = (0, 0);
    // The last `*` seen and the text position it was tried from.
    let mut star: Option<(usize, usize)> = None;
    while t < text.len() {
        match pattern.get(p) {
            Some(b'*') => {
                star = Some((p, t));
                p += 1;
            }
            Some(&c) if c == b'?' || c == text[t] => {
                p += 1;
                t += 1;
            }
            _ => match star {
                // Let the last `*` take one more character.
                Some((sp, st)) => {
                    star = Some((sp, st + 1));
                    p = sp + 1;
                    t = st + 1;
                }
                None => return false,
            },
        }
    }
    pattern[p.min(pattern.len())..].iter().all(|&b| b == b'*')
}

/// Whether a data_coding marks a flash message (GSM 03.38 message class
/// 0): the general data coding groups (bit 7 clear) with the class bit
/// (0x10) set and class bits 00, or the 0xF0 group with class bits 00.
pub fn is_flash(data_coding: u8) -> bool {
    let class0 = data_coding & 0x03 == 0;
    class0 && (data_coding & 0xF0 == 0xF0 || (data_coding & 0x80 == 0 && data_coding & 0x10 != 0))
}

/// esm_class bit saying the short message starts with a user data header.
pub const ESM_UDHI: u8 = 0x40;

/// The names of the week's days as written in the configuration, Monday
/// first (the bit order of [`TimeWindow`]'s day mask).
pub const DAY_NAMES: [&str; 7] = ["mon", "tue", "wed", "thu", "fri", "sat", "sun"];

/// Why a time window is refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum WindowError {
    /// Not a name in the time zone database.
    #[error("unknown time zone {0:?} (an IANA name such as \"Europe/Madrid\" or \"UTC\")")]
    Zone(String),
    /// From and to equal: empty or whole day, ambiguous.
    #[error("from and to are equal; for the whole day write from = \"00:00\", to = \"24:00\"")]
    Empty,
    /// No day.
    #[error("days is empty: the window would never open")]
    NoDay,
    /// A bound past the end of the day (only `to` may be 24:00).
    #[error("from must be before 24:00 and to at most 24:00")]
    Bounds,
}

/// A weekly window of local time in a named zone: the rule applies from
/// `from` to `to` (end excluded) on the listed days. A window whose `to`
/// is before its `from` crosses midnight: it opens on a listed day and
/// closes the next morning, whatever that day is. Local time comes from
/// the zone's rules (the tz database), so daylight saving moves the window
/// with the clocks.
#[derive(Debug, Clone, PartialEq)]
pub struct TimeWindow {
    /// Bit d set: the window opens on day d (0 Monday .. 6 Sunday).
    days: u8,
    /// Minutes after local midnight, 0..1440.
    from: u16,
    /// Minutes after local midnight, 0..=1440 (0: until midnight).
    to: u16,
    zone: TimeZone,
}

impl TimeWindow {
    /// A window. `days` is a mask (bit 0 Monday); `from` and `to` are
    /// minutes after midnight (`to` up to 1440); `zone` an IANA name.
    pub fn new(days: u8, from: u16, to: u16, zone: &str) -> Result<TimeWindow, WindowError> {
        let zone = TimeZone::get(zone).map_err(|_| WindowError::Zone(zone.to_owned()))?;
        if days & 0x7F == 0 {
            return Err(WindowError::NoDay);
        }
        if from >= 1440 || to > 1440 {
            return Err(WindowError::Bounds);
        }
        if from == to {
            return Err(WindowError::Empty);
        }
        Ok(TimeWindow {
            days: days & 0x7F,
            from,
            to,
            zone,
        })
    }

    /// A day's bit in the mask, from its name ("mon" .. "sun", any case,
    /// or the full English name).
    pub fn day(name: &str) -> Option<u8> {
        let lower = name.to_ascii_lowercase();
        DAY_NAMES
            .iter()
            .position(|d| lower == *d || (lower.len() > 3 && full_day(d) == lower))
            .map(|i| 1 << i)
    }

    /// Minutes after midnight from "HH:MM" (00:00 to 24:00).
    pub fn clock(text: &str) -> Option<u16> {
        let (h, m) = text.split_once(':')?;
        if h.len() != 2 || m.len() != 2 {
            return None;
        }
        let (h, m): (u16, u16) = (h.parse().ok()?, m.parse().ok()?);
        ((h < 24 && m < 60) || (h, m) == (24, 0)).then_some(h * 60 + m)
    }

    /// Whether the window is open at `now`.
    pub fn contains(&self, now: Timestamp) -> bool {
        let local = self.zone.to_offset(now).to_datetime(now);
        let minute = i32::from(local.hour()) * 60 + i32::from(local.minute());
        let minute = minute as u16;
        let day = local.weekday().to_monday_zero_offset() as u8;
        let opens = |d: u8| self.days & (1 << d) != 0;
        if self.from < self.to {
            opens(day) && minute >= self.from && minute < self.to
        } else {
            (opens(day) && minute >= self.from) || (opens((day + 6) % 7) && minute < self.to)
        }
    }
}

impl std::fmt::Display for TimeWindow {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let days: Vec<&str> = (0..7)
            .filter(|d| self.days & (1 << d) != 0)
            .map(|d| DAY_NAMES[d])
            .collect();
        write!(
            f,
            "{} {:02}:{:02}-{:02}:{:02} {}",
            days.join(","),
            self.from / 60,
            self.from % 60,
            self.to / 60,
            self.to % 60,
            self.zone.iana_name().unwrap_or("(zone)")
        )
    }
}

fn full_day(short: &str) -> &'static str {
    match short {
        "mon" => "monday",
        "tue" => "tuesday",
        "wed" => "wednesday",
        "thu" => "thursday",
        "fri" => "friday",
        "sat" => "saturday",
        _ => "sunday",
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
    /// for every client. Ordered, so two equal sets print alike (the
    /// config diff compares the printed fields).
    pub clients: Option<BTreeSet<String>>,
    /// Destination prefixes (digits, `+` and `00` allowed); empty for every
    /// destination.
    pub prefixes: Vec<String>,
    /// Source address condition.
    pub source: Option<SourceMatch>,
    /// data_coding values; `None` for any.
    pub data_codings: Option<Vec<u8>>,
    /// service_type; `None` for any.
    pub service_type: Option<String>,
    /// priority_flag values as a mask (bit p for priority p); `None` for
    /// any.
    pub priority_flags: Option<u8>,
    /// Whether the esm_class UDHI bit must be set (`Some(true)`) or clear
    /// (`Some(false)`); `None` for either.
    pub udh: Option<bool>,
    /// Whether the message must be flash (class 0, see [`is_flash`]) or
    /// must not be; `None` for either.
    pub flash: Option<bool>,
    /// When the rule applies; `None` for always.
    pub time_window: Option<TimeWindow>,
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
    /// The priority_flag.
    pub priority_flag: u8,
    /// The esm_class (its UDHI bit is what rules look at).
    pub esm_class: u8,
    /// The instant the message is routed at (time windows), given by the
    /// caller so tests can choose it.
    pub now: Timestamp,
}

/// One condition of a rule besides the destination prefix, named as in
/// the configuration: what `tern route-test` says failed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Condition {
    /// `clients`.
    Client,
    /// `source`.
    Source,
    /// `data_codings`.
    DataCoding,
    /// `service_type`.
    ServiceType,
    /// `priority_flags`.
    PriorityFlag,
    /// `udh`.
    Udh,
    /// `flash`.
    Flash,
    /// `time_window`.
    TimeWindow,
}

impl Condition {
    /// The configuration key.
    pub fn key(self) -> &'static str {
        match self {
            Condition::Client => "clients",
            Condition::Source => "source",
            Condition::DataCoding => "data_codings",
            Condition::ServiceType => "service_type",
            Condition::PriorityFlag => "priority_flags",
            Condition::Udh => "udh",
            Condition::Flash => "flash",
            Condition::TimeWindow => "time_window",
        }
    }
}

/// One rule a lookup tried, for `tern route-test`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Tried {
    /// The rule's position in the configuration.
    pub index: usize,
    /// The prefix of the destination it was found under (digits); empty
    /// for a rule with no prefix.
    pub prefix: String,
    /// The first of its conditions that did not hold; `None` for the rule
    /// chosen.
    pub failed: Option<Condition>,
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
    /// A weighted rule whose weights add up to 0: nothing to share by.
    #[error("route {0:?}: strategy \"weighted\" needs weights that add up to more than 0")]
    ZeroWeights(String),
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
            } else if rule.strategy == Strategy::Weighted
                && rule.upstreams.iter().all(|u| u.weight == 0)
            {
                errors.push(TableError::ZeroWeights(rule.name.clone()));
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
        let (path, depth) = self.path(key.destination);
        path[..depth]
            .iter()
            .rev()
            .flat_map(|&node| self.nodes[node as usize].rules.iter())
            .map(|&i| (i as usize, &self.rules[i as usize]))
            .find(|(_, rule)| rule.accepts(key))
    }

    /// The rules a lookup tries, in its order, up to the one it picks
    /// (the last, with `failed: None`), or all of them when none matches.
    pub fn explain(&self, key: &MessageKey<'_>) -> Vec<Tried> {
        let (path, depth) = self.path(key.destination);
        let digits = normalise_number(key.destination).unwrap_or("");
        let mut tried = Vec::new();
        for level in (0..depth).rev() {
            for &i in &self.nodes[path[level] as usize].rules {
                let failed = self.rules[i as usize].first_failure(key);
                tried.push(Tried {
                    index: i as usize,
                    prefix: digits[..level].to_owned(),
                    failed,
                });
                if failed.is_none() {
                    return tried;
                }
            }
        }
        tried
    }

    /// Nodes on the destination's path, root first, and how many. At most
    /// 20 digits deep for any real number, so a fixed buffer avoids
    /// allocating; node `path[d]` ends a prefix of `d` digits.
    fn path(&self, destination: &str) -> ([u32; 24], usize) {
        let mut path = [0u32; 24];
        let mut depth = 1;
        if let Some(digits) = normalise_number(destination) {
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
        (path, depth)
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
        self.first_failure(key).is_none()
    }

    /// The first condition other than the prefix that does not hold, the
    /// cheapest checked first and the time window (a zone conversion) last.
    pub fn first_failure(&self, key: &MessageKey<'_>) -> Option<Condition> {
        if self
            .priority_flags
            .is_some_and(|m| key.priority_flag > 7 || m & (1 << key.priority_flag) == 0)
        {
            return Some(Condition::PriorityFlag);
        }
        if self
            .udh
            .is_some_and(|u| u != (key.esm_class & ESM_UDHI != 0))
        {
            return Some(Condition::Udh);
        }
        if self.flash.is_some_and(|f| f != is_flash(key.data_coding)) {
            return Some(Condition::Flash);
        }
        if self
            .data_codings
            .as_ref()
            .is_some_and(|d| !d.contains(&key.data_coding))
        {
            return Some(Condition::DataCoding);
        }
        if self
            .service_type
            .as_ref()
            .is_some_and(|s| s != key.service_type)
        {
            return Some(Condition::ServiceType);
        }
        if self
            .clients
            .as_ref()
            .is_some_and(|c| !c.contains(key.client))
        {
            return Some(Condition::Client);
        }
        if self.source.as_ref().is_some_and(|s| !s.matches(key.source)) {
            return Some(Condition::Source);
        }
        if self
            .time_window
            .as_ref()
            .is_some_and(|w| !w.contains(key.now))
        {
            return Some(Condition::TimeWindow);
        }
        None
    }

    /// The conditions this rule sets, each with its value as configured,
    /// in the order [`Rule::first_failure`] checks them.
    pub fn conditions(&self) -> Vec<(Condition, String)> {
        let mut out = Vec::new();
        if let Some(m) = self.priority_flags {
            let values: Vec<String> = (0..8)
                .filter(|p| m & (1 << p) != 0)
                .map(|p| p.to_string())
                .collect();
            out.push((Condition::PriorityFlag, values.join(",")));
        }
        if let Some(u) = self.udh {
            out.push((Condition::Udh, u.to_string()));
        }
        if let Some(f) = self.flash {
            out.push((Condition::Flash, f.to_string()));
        }
        if let Some(d) = &self.data_codings {
            let values: Vec<String> = d.iter().map(|v| v.to_string()).collect();
            out.push((Condition::DataCoding, values.join(",")));
        }
        if let Some(s) = &self.service_type {
            out.push((Condition::ServiceType, format!("{s:?}")));
        }
        if let Some(c) = &self.clients {
            let mut names: Vec<&str> = c.iter().map(String::as_str).collect();
            names.sort_unstable();
            out.push((Condition::Client, names.join(",")));
        }
        if let Some(s) = &self.source {
            let text = match s {
                SourceMatch::Exact(e) => format!("{e:?}"),
                SourceMatch::Prefix(p) => format!("prefix:{p}"),
                SourceMatch::Pattern(p) => format!("pattern:{p}"),
                SourceMatch::Alphanumeric => "alphanumeric".to_owned(),
                SourceMatch::Numeric => "numeric".to_owned(),
            };
            out.push((Condition::Source, text));
        }
        if let Some(w) = &self.time_window {
            out.push((Condition::TimeWindow, w.to_string()));
        }
        out
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
            priority_flags: None,
            udh: None,
            flash: None,
            time_window: None,
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
            priority_flag: 0,
            esm_class: 0,
            now: Timestamp::UNIX_EPOCH,
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

    fn at(instant: &str) -> Timestamp {
        instant.parse().expect("RFC 3339 instant")
    }

    #[test]
    fn priority_flags_pick_the_route() {
        let mut urgent = rule("urgent", &["34"]);
        urgent.priority_flags = Some(0b1110);
        let table = Table::compile(vec![urgent, rule("default", &[])]).expect("valid");
        for (priority, expected) in [(0, "default"), (1, "urgent"), (3, "urgent"), (9, "default")] {
            let k = MessageKey {
                priority_flag: priority,
                ..key("c", "34600", "")
            };
            assert_eq!(pick(&table, k), Some(expected), "priority {priority}");
        }
    }

    #[test]
    fn udh_follows_the_esm_class_udhi_bit() {
        let mut with = rule("udh", &[]);
        with.udh = Some(true);
        let mut without = rule("plain", &[]);
        without.udh = Some(false);
        let table = Table::compile(vec![with, without]).expect("valid");
        let k = |esm_class| MessageKey {
            esm_class,
            ..key("c", "34600", "")
        };
        assert_eq!(pick(&table, k(0x40)), Some("udh"));
        assert_eq!(pick(&table, k(0x43)), Some("udh"));
        assert_eq!(pick(&table, k(0x00)), Some("plain"));
        assert_eq!(pick(&table, k(0x03)), Some("plain"));
    }

    #[test]
    fn flash_is_message_class_0() {
        for (dc, flash) in [
            (0x10, true),
            (0x14, true),
            (0x18, true),
            (0xF0, true),
            (0xF4, true),
            (0x00, false),
            (0x08, false),
            (0x11, false),
            (0xF1, false),
            (0x03, false),
        ] {
            assert_eq!(is_flash(dc), flash, "data_coding 0x{dc:02x}");
        }
        let mut flash = rule("flash", &[]);
        flash.flash = Some(true);
        let mut normal = rule("normal", &[]);
        normal.flash = Some(false);
        let table = Table::compile(vec![flash, normal]).expect("valid");
        let k = |data_coding| MessageKey {
            data_coding,
            ..key("c", "34600", "")
        };
        assert_eq!(pick(&table, k(0x10)), Some("flash"));
        assert_eq!(pick(&table, k(0xF0)), Some("flash"));
        assert_eq!(pick(&table, k(0x00)), Some("normal"));
        assert_eq!(pick(&table, k(0xF1)), Some("normal"));
    }

    #[test]
    fn source_patterns_take_star_and_question_mark() {
        let p = |text: &str| SourceMatch::pattern(text).expect("valid pattern");
        assert!(p("+3460*").matches("+34600111222"));
        assert!(p("+3460*").matches("+3460"));
        assert!(!p("+3460*").matches("34600111222"));
        assert!(!p("+3460*").matches("+3470"));
        assert!(p("Shop?").matches("Shop1"));
        assert!(!p("Shop?").matches("Shop"));
        assert!(!p("Shop?").matches("Shop12"));
        assert!(p("*Bank*").matches("MyBankES"));
        assert!(p("a*b*c").matches("axxbyybzc"));
        assert!(!p("a*b*c").matches("axxbyybz"));
        assert!(p("*").matches(""));
        assert_eq!(SourceMatch::pattern(""), Err(PatternError::Empty));
        assert_eq!(
            SourceMatch::pattern("a b"),
            Err(PatternError::BadCharacter(' '))
        );
        assert_eq!(
            SourceMatch::pattern("123456789012345678901*"),
            Err(PatternError::TooLong(21))
        );
        let mut spain = rule("spain-senders", &[]);
        spain.source = Some(p("+34??0*"));
        let table = Table::compile(vec![spain, rule("default", &[])]).expect("valid");
        assert_eq!(
            pick(&table, key("c", "1", "+34600123")),
            Some("spain-senders")
        );
        assert_eq!(pick(&table, key("c", "1", "+34612123")), Some("default"));
    }

    fn window_table(window: TimeWindow) -> Table {
        let mut day = rule("window", &["34"]);
        day.time_window = Some(window);
        Table::compile(vec![day, rule("default", &[])]).expect("valid")
    }

    fn picked_at(table: &Table, instant: &str) -> &'static str {
        let k = MessageKey {
            now: at(instant),
            ..key("c", "34600", "")
        };
        match pick(table, k) {
            Some("window") => "window",
            Some("default") => "default",
            other => panic!("unexpected {other:?}"),
        }
    }

    #[test]
    fn time_windows_follow_daylight_saving_in_their_zone() {
        // Every day, 08:00 to 20:00 in Madrid: UTC+1 in winter, UTC+2 in
        // summer; the clocks change on the last Sundays of March and
        // October (2026-03-29 and 2026-10-25) at 01:00 UTC.
        let table =
            window_table(TimeWindow::new(0x7F, 8 * 60, 20 * 60, "Europe/Madrid").expect("valid"));
        // Saturday before the change: 07:30Z is 08:30 CET.
        assert_eq!(picked_at(&table, "2026-03-28T07:30:00Z"), "window");
        assert_eq!(picked_at(&table, "2026-03-28T06:30:00Z"), "default");
        // The Sunday of the change: 06:30Z is 08:30 CEST (07:30 at UTC+1).
        assert_eq!(picked_at(&table, "2026-03-29T06:30:00Z"), "window");
        // 18:30Z is 20:30 CEST, closed (19:30 at UTC+1).
        assert_eq!(picked_at(&table, "2026-03-29T18:30:00Z"), "default");
        assert_eq!(picked_at(&table, "2026-03-29T17:59:00Z"), "window");
        // October: the Saturday before is still CEST, the Sunday is CET.
        assert_eq!(picked_at(&table, "2026-10-24T06:30:00Z"), "window");
        assert_eq!(picked_at(&table, "2026-10-25T06:30:00Z"), "default");
        assert_eq!(picked_at(&table, "2026-10-25T07:00:00Z"), "window");
        assert_eq!(picked_at(&table, "2026-10-25T19:30:00Z"), "default");
        assert_eq!(picked_at(&table, "2026-10-25T18:59:00Z"), "window");
    }

    #[test]
    fn time_window_days_are_local_days() {
        // Mondays only, in Tokyo (UTC+9): Sunday 20:00Z is Monday 05:00 there.
        let monday = TimeWindow::day("mon").expect("a day");
        let table = window_table(TimeWindow::new(monday, 0, 1440, "Asia/Tokyo").expect("valid"));
        assert_eq!(picked_at(&table, "2026-12-06T20:00:00Z"), "window");
        assert_eq!(picked_at(&table, "2026-12-06T14:00:00Z"), "default");
        assert_eq!(picked_at(&table, "2026-12-07T14:59:00Z"), "window");
        assert_eq!(picked_at(&table, "2026-12-07T15:00:00Z"), "default");
    }

    #[test]
    fn a_window_crossing_midnight_closes_the_next_morning() {
        // Fridays 22:00 to 06:00 UTC: Friday night into Saturday morning.
        let friday = TimeWindow::day("fri").expect("a day");
        let table = window_table(TimeWindow::new(friday, 22 * 60, 6 * 60, "UTC").expect("valid"));
        assert_eq!(picked_at(&table, "2026-01-02T21:59:00Z"), "default");
        assert_eq!(picked_at(&table, "2026-01-02T22:00:00Z"), "window");
        assert_eq!(picked_at(&table, "2026-01-02T23:59:00Z"), "window");
        assert_eq!(picked_at(&table, "2026-01-03T00:00:00Z"), "window");
        assert_eq!(picked_at(&table, "2026-01-03T05:59:00Z"), "window");
        assert_eq!(picked_at(&table, "2026-01-03T06:00:00Z"), "default");
        // Friday early morning belongs to Thursday's window: not listed.
        assert_eq!(picked_at(&table, "2026-01-02T05:00:00Z"), "default");
        // Saturday night opens no window.
        assert_eq!(picked_at(&table, "2026-01-03T23:00:00Z"), "default");
    }

    #[test]
    fn time_window_values_are_checked() {
        assert_eq!(TimeWindow::clock("08:00"), Some(480));
        assert_eq!(TimeWindow::clock("24:00"), Some(1440));
        assert_eq!(TimeWindow::clock("24:01"), None);
        assert_eq!(TimeWindow::clock("8:00"), None);
        assert_eq!(TimeWindow::clock("12:60"), None);
        assert_eq!(TimeWindow::day("Sun"), Some(1 << 6));
        assert_eq!(TimeWindow::day("tuesday"), Some(1 << 1));
        assert_eq!(TimeWindow::day("mo"), None);
        assert!(matches!(
            TimeWindow::new(1, 0, 60, "Europe/Madird"),
            Err(WindowError::Zone(_))
        ));
        assert_eq!(TimeWindow::new(1, 60, 60, "UTC"), Err(WindowError::Empty));
        assert_eq!(TimeWindow::new(0, 0, 60, "UTC"), Err(WindowError::NoDay));
        assert_eq!(
            TimeWindow::new(1, 1440, 60, "UTC"),
            Err(WindowError::Bounds)
        );
        // "to = 00:00" closes at midnight.
        let evening = TimeWindow::new(0x7F, 20 * 60, 0, "UTC").expect("valid");
        assert!(evening.contains(at("2026-01-02T23:59:00Z")));
        assert!(!evening.contains(at("2026-01-03T00:00:00Z")));
        assert!(!evening.contains(at("2026-01-02T19:59:00Z")));
    }

    #[test]
    fn weights_adding_up_to_zero_are_refused() {
        let mut weighted = rule("split", &[]);
        weighted.strategy = Strategy::Weighted;
        weighted.upstreams[0].weight = 0;
        let errors = Table::compile(vec![weighted.clone()]).expect_err("invalid");
        assert_eq!(errors, vec![TableError::ZeroWeights("split".to_owned())]);
        weighted.upstreams.push(RouteUpstream {
            name: "other".to_owned(),
            priority: 1,
            weight: 2,
        });
        assert!(Table::compile(vec![weighted]).is_ok());
    }

    #[test]
    fn explain_lists_the_rules_tried_and_what_failed() {
        let mut urgent = rule("urgent", &["346"]);
        urgent.priority_flags = Some(0b10);
        let mut night = rule("night", &["34"]);
        night.time_window = Some(TimeWindow::new(0x7F, 22 * 60, 6 * 60, "UTC").expect("valid"));
        let table = Table::compile(vec![rule("default", &[]), urgent, night]).expect("valid");
        let k = MessageKey {
            now: at("2026-01-02T12:00:00Z"),
            ..key("c", "34600", "")
        };
        let tried = table.explain(&k);
        assert_eq!(
            tried,
            vec![
                Tried {
                    index: 1,
                    prefix: "346".to_owned(),
                    failed: Some(Condition::PriorityFlag)
                },
                Tried {
                    index: 2,
                    prefix: "34".to_owned(),
                    failed: Some(Condition::TimeWindow)
                },
                Tried {
                    index: 0,
                    prefix: String::new(),
                    failed: None
                },
            ]
        );
        assert_eq!(
            table.rules()[2].conditions(),
            vec![(
                Condition::TimeWindow,
                "mon,tue,wed,thu,fri,sat,sun 22:00-06:00 UTC".to_owned()
            )]
        );
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
