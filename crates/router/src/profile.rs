//! Vendor profiles: everything Tern must know to be correct with one
//! upstream, as data. Built-in profiles live in `profiles/*.toml` (compiled
//! in); a configuration can override them or add new ones, so a provider can
//! be added without a release.
//!
//! Each profile is written from its vendor's document (the seeds in
//! `shared/seeds/`): limits, timers, TLS, addresses, codings, long-message
//! handling, validity format, system_type use, message id form, and the
//! vendor's code tables, every code with a canonical reason and class.

use std::collections::BTreeMap;

use serde::Deserialize;

use crate::canonical::{Canonical, Class, FinalState, Reason};

/// A vendor profile as written in TOML.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Profile {
    /// Short name used in configuration (`ovh`, `telesign`, …).
    pub name: String,
    /// One line for `tern check-config`.
    pub description: String,
    /// Where the facts come from (the seed file, a section).
    #[serde(default)]
    pub source: String,
    /// SMPP versions the vendor speaks: "3.3", "3.4", "5.0".
    pub versions: Vec<String>,
    /// Bind types it accepts: "transmitter", "receiver", "transceiver".
    pub bind_types: Vec<String>,
    /// How many sessions, how fast.
    #[serde(default)]
    pub limits: Limits,
    /// Timers the vendor asks for.
    #[serde(default)]
    pub timers: Timers,
    /// TLS.
    #[serde(default)]
    pub tls: Tls,
    /// Address rules.
    #[serde(default)]
    pub addresses: Addresses,
    /// Data codings and GSM 7-bit carriage.
    #[serde(default)]
    pub coding: Coding,
    /// Long messages.
    #[serde(default)]
    pub long_messages: LongMessages,
    /// Schedule and validity times.
    #[serde(default)]
    pub times: Times,
    /// What system_type means at this vendor.
    #[serde(default)]
    pub system_type: SystemType,
    /// The ids it gives messages.
    #[serde(default)]
    pub message_id: MessageId,
    /// How its receipts look.
    #[serde(default)]
    pub receipts: Receipts,
    /// What each `command_status` it sends means (codes absent from the
    /// table fall back to the SMPP 3.4 meaning, see `generic`).
    #[serde(default)]
    pub command_status: Vec<StatusEntry>,
    /// What each receipt `err` (or network error code) means.
    #[serde(default)]
    pub receipt_error: Vec<ErrorEntry>,
    /// Receipt `stat` spellings beyond the standard ones.
    #[serde(default)]
    pub receipt_stat: Vec<StatEntry>,
    /// Anything the seed says that has no field yet, for people.
    #[serde(default)]
    pub notes: Vec<String>,
}

/// Session and rate limits (absent: no limit stated).
#[derive(Debug, Clone, Default, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Limits {
    /// Binds allowed per credential (and server/port where the vendor says so).
    pub sessions_per_credential: Option<u32>,
    /// Whether the limit counts per server and port.
    #[serde(default)]
    pub per_server_port: bool,
    /// Requests in flight per session.
    pub window: Option<u32>,
    /// Messages per second per session.
    pub rate_per_session: Option<u32>,
    /// Messages per second per account.
    pub rate_per_account: Option<u32>,
    /// Requests in flight per account, over all its sessions (OVH: 10).
    pub window_per_account: Option<u32>,
    /// Longest `short_message` accepted, octets.
    pub short_message_max: Option<u32>,
    /// Longest `message_payload` accepted, octets.
    pub message_payload_max: Option<u32>,
    /// Longest system_id, characters.
    pub system_id_max: Option<u32>,
    /// Longest password, characters.
    pub password_max: Option<u32>,
}

/// Timers in seconds.
#[derive(Debug, Clone, Default, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Timers {
    /// enquire_link interval the vendor expects.
    pub enquire_link_secs: Option<u64>,
    /// How long the vendor waits for a response (so Tern must answer sooner).
    pub response_timeout_secs: Option<u64>,
    /// Bind within this after connecting.
    pub session_init_secs: Option<u64>,
    /// The vendor unbinds periodically (OVH: 24 h): reconnect, do not alarm.
    pub periodic_unbind_hours: Option<u64>,
}

/// TLS requirements.
#[derive(Debug, Clone, Default, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Tls {
    /// Whether plain TCP is refused.
    #[serde(default)]
    pub required: bool,
    /// Minimum version: "1.2" or "1.3".
    pub minimum: Option<String>,
    /// IANA cipher suite names, when the vendor lists them.
    #[serde(default)]
    pub cipher_suites: Vec<String>,
    /// TLS port, when it differs from the plain one.
    pub port: Option<u16>,
}

/// TON/NPI and length rules for one kind of address.
#[derive(Debug, Clone, Default, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AddressRule {
    /// Type of number to send.
    pub ton: Option<u8>,
    /// Numbering plan to send.
    pub npi: Option<u8>,
    /// Shortest accepted, characters.
    pub min_len: Option<u32>,
    /// Longest accepted, characters.
    pub max_len: Option<u32>,
    /// Whether a leading '+' is kept (most vendors want digits only).
    #[serde(default)]
    pub plus: bool,
    /// Characters allowed beyond letters and digits (Mensatek: "_").
    #[serde(default)]
    pub extra_chars: String,
}

/// Address rules by kind.
#[derive(Debug, Clone, Default, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Addresses {
    /// Alphanumeric sender ids.
    pub alphanumeric: Option<AddressRule>,
    /// Short codes.
    pub shortcode: Option<AddressRule>,
    /// International (E.164) senders.
    pub international: Option<AddressRule>,
    /// Destinations.
    pub destination: Option<AddressRule>,
    /// Whether sender ids must be registered with the vendor first.
    #[serde(default)]
    pub sender_whitelisted: bool,
}

/// Data codings.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Coding {
    /// `data_coding` values accepted.
    pub accepted: Vec<u8>,
    /// What data_coding 0 means: "gsm7", "ia5", "latin1".
    pub default_alphabet: String,
    /// GSM 7-bit carried "unpacked" (one septet per octet) or "packed".
    pub gsm7_carriage: String,
    /// What happens to characters the coding lacks: "error" or "replace".
    pub unrepresentable: String,
}

impl Default for Coding {
    fn default() -> Self {
        Self {
            accepted: vec![0, 8],
            default_alphabet: "gsm7".to_owned(),
            gsm7_carriage: "unpacked".to_owned(),
            unrepresentable: "error".to_owned(),
        }
    }
}

/// Long messages.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct LongMessages {
    /// "udh" (Tern splits, 8-bit reference), "udh16", "sar", "payload"
    /// (one message_payload, the vendor splits), or "none".
    pub method: String,
    /// For "payload": the vendor reports only the first part ("first") or
    /// every part ("all").
    #[serde(default = "all")]
    pub receipts_for: String,
    /// Most parts one message may have.
    pub max_parts: Option<u32>,
}

fn all() -> String {
    "all".to_owned()
}

impl Default for LongMessages {
    fn default() -> Self {
        Self {
            method: "udh".to_owned(),
            receipts_for: all(),
            max_parts: None,
        }
    }
}

/// Schedule and validity formats.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Times {
    /// "absolute", "relative" or "both".
    pub schedule: String,
    /// "absolute", "relative" or "both".
    pub validity: String,
}

impl Default for Times {
    fn default() -> Self {
        Self {
            schedule: "both".to_owned(),
            validity: "both".to_owned(),
        }
    }
}

/// Uses of system_type.
#[derive(Debug, Clone, Default, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SystemType {
    /// Value to bind with, if the vendor needs one.
    pub bind: Option<String>,
    /// Bind system_type that makes messages flash (Infobip: "NSMS").
    pub flash: Option<String>,
    /// Template for a route code in bind system_type (Infobip: "r:{route}").
    pub route_template: Option<String>,
    /// What service_type in submit_sm selects (Telesign: receipt data centre).
    pub submit_service_type: Option<String>,
}

/// Message id form.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct MessageId {
    /// "decimal", "hex", "hex32" or "opaque".
    pub form: String,
    /// The vendor's receipts write the id in the other base than its
    /// submit_sm_resp (hex one way, decimal the other): match across bases.
    /// Off by default: with sequential ids, "12" read as hex is another
    /// message's "18".
    #[serde(default)]
    pub receipt_id_any_base: bool,
}

impl Default for MessageId {
    fn default() -> Self {
        Self {
            form: "opaque".to_owned(),
            receipt_id_any_base: false,
        }
    }
}

/// Receipt format.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Receipts {
    /// Base of the receipt text's `err`: "decimal" or "hex".
    pub err_radix: String,
    /// Whether the text form is sent.
    pub text: bool,
    /// Whether the receipt TLVs are sent (receipted_message_id, message_state).
    pub tlvs: bool,
    /// Spelling of the delivered-count key: "dlvrd", "dlvr", "dlvrld".
    pub dlvrd_key: String,
    /// Digits of the dates: 10 (YYMMDDhhmm) or 12 (with seconds).
    pub date_digits: u8,
    /// Receipts arrive only on receiver/transceiver sessions.
    #[serde(default = "yes")]
    pub on_receiving_sessions: bool,
}

fn yes() -> bool {
    true
}

impl Default for Receipts {
    fn default() -> Self {
        Self {
            err_radix: "decimal".to_owned(),
            text: true,
            tlvs: false,
            dlvrd_key: "dlvrd".to_owned(),
            date_digits: 10,
            on_receiving_sessions: true,
        }
    }
}

/// One vendor `command_status`.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct StatusEntry {
    /// The code.
    pub code: u32,
    /// Its canonical reason.
    pub reason: Reason,
    /// Temporary or permanent.
    pub class: Class,
    /// What the seed says, in the seed's words or a faithful translation.
    pub meaning: String,
}

/// One vendor receipt error code.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ErrorEntry {
    /// The code, as a number (hex receipts are read with `err_radix`).
    pub code: u32,
    /// The state this code implies, when the code alone says it
    /// (Mensatek's "delivered" codes); otherwise the receipt's `stat` rules.
    pub state: Option<FinalState>,
    /// Its canonical reason.
    pub reason: Reason,
    /// Temporary or permanent.
    pub class: Class,
    /// What the seed says.
    pub meaning: String,
}

/// A receipt `stat` spelling.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct StatEntry {
    /// As the vendor writes it ("DELIVERY UNKNOWN", "REJECTED").
    pub stat: String,
    /// What it means.
    pub state: FinalState,
}

/// A profile that cannot be used, with where.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{origin}:{line}:{column}: {message}")]
pub struct ProfileError {
    /// The file (or "built-in ovh").
    pub origin: String,
    /// 1-based line.
    pub line: usize,
    /// 1-based column.
    pub column: usize,
    /// What is wrong and what was expected.
    pub message: String,
}

/// The built-in profiles, by name.
pub const BUILTIN: &[(&str, &str)] = &[
    ("generic", include_str!("../profiles/generic.toml")),
    ("mensatek", include_str!("../profiles/mensatek.toml")),
    ("ovh", include_str!("../profiles/ovh.toml")),
    ("telesign", include_str!("../profiles/telesign.toml")),
    ("infobip", include_str!("../profiles/infobip.toml")),
    ("seed001", include_str!("../profiles/seed001.toml")),
];

/// 1-based line and column of a byte offset in `text`.
pub(crate) fn position(text: &str, offset: usize) -> (usize, usize) {
    let before = &text[..offset.min(text.len())];
    let line = before.matches('\n').count() + 1;
    let column = before.rsplit('\n').next().map_or(0, |l| l.chars().count()) + 1;
    (line, column)
}

impl Profile {
    /// Parses and validates a profile; errors say file, line and column.
    pub fn from_toml(text: &str, origin: &str) -> Result<Profile, ProfileError> {
        Profile::checked(toml::from_str(text), text, origin)
    }

    /// Validates a deserialised profile. The deserialisation error's span,
    /// and the texts `validate` looks for, are positions in `text`; errors
    /// are reported against `origin`. Also used by [`crate::profiles`] for
    /// profiles merged from several files.
    pub(crate) fn checked(
        parsed: Result<Profile, toml::de::Error>,
        text: &str,
        origin: &str,
    ) -> Result<Profile, ProfileError> {
        let profile = parsed.map_err(|e| {
            let (line, column) = e.span().map_or((1, 1), |s| position(text, s.start));
            ProfileError {
                origin: origin.to_owned(),
                line,
                column,
                message: e.message().to_owned(),
            }
        })?;
        profile.validate().map_err(|(needle, message)| {
            let (line, column) = text.find(&needle).map_or((1, 1), |at| position(text, at));
            ProfileError {
                origin: origin.to_owned(),
                line,
                column,
                message,
            }
        })?;
        Ok(profile)
    }

    /// A built-in profile.
    pub fn builtin(name: &str) -> Option<Result<Profile, ProfileError>> {
        BUILTIN
            .iter()
            .find(|(n, _)| *n == name)
            .map(|(n, text)| Profile::from_toml(text, &format!("built-in profile {n}")))
    }

    /// Checks what serde cannot: enumerated strings and duplicate codes.
    /// Errors carry a text to find in the file for the position.
    fn validate(&self) -> Result<(), (String, String)> {
        fn one_of(field: &str, value: &str, allowed: &[&str]) -> Result<(), (String, String)> {
            if allowed.contains(&value) {
                Ok(())
            } else {
                Err((
                    format!("\"{value}\""),
                    format!("{field} is {value:?}; expected one of {allowed:?}"),
                ))
            }
        }
        for v in &self.versions {
            one_of("versions", v, &["3.3", "3.4", "5.0"])?;
        }
        for b in &self.bind_types {
            one_of("bind_types", b, &["transmitter", "receiver", "transceiver"])?;
        }
        if let Some(min) = &self.tls.minimum {
            one_of("tls.minimum", min, &["1.2", "1.3"])?;
        }
        one_of(
            "coding.default_alphabet",
            &self.coding.default_alphabet,
            &["gsm7", "ia5", "latin1"],
        )?;
        one_of(
            "coding.gsm7_carriage",
            &self.coding.gsm7_carriage,
            &["unpacked", "packed"],
        )?;
        one_of(
            "coding.unrepresentable",
            &self.coding.unrepresentable,
            &["error", "replace"],
        )?;
        one_of(
            "long_messages.method",
            &self.long_messages.method,
            &["udh", "udh16", "sar", "payload", "none"],
        )?;
        one_of(
            "long_messages.receipts_for",
            &self.long_messages.receipts_for,
            &["all", "first"],
        )?;
        one_of(
            "times.schedule",
            &self.times.schedule,
            &["absolute", "relative", "both"],
        )?;
        one_of(
            "times.validity",
            &self.times.validity,
            &["absolute", "relative", "both"],
        )?;
        one_of(
            "message_id.form",
            &self.message_id.form,
            &["decimal", "hex", "hex32", "opaque"],
        )?;
        one_of(
            "receipts.err_radix",
            &self.receipts.err_radix,
            &["decimal", "hex"],
        )?;
        one_of(
            "receipts.dlvrd_key",
            &self.receipts.dlvrd_key,
            &["dlvrd", "dlvr", "dlvrld"],
        )?;
        if ![10, 12].contains(&self.receipts.date_digits) {
            return Err((
                "date_digits".to_owned(),
                format!(
                    "receipts.date_digits is {}; expected 10 or 12",
                    self.receipts.date_digits
                ),
            ));
        }
        let mut seen = BTreeMap::new();
        for entry in &self.command_status {
            if seen.insert(entry.code, ()).is_some() {
                return Err((
                    format!("0x{:X}", entry.code),
                    format!("command_status 0x{:X} is listed twice", entry.code),
                ));
            }
        }
        let mut seen = BTreeMap::new();
        for entry in &self.receipt_error {
            if seen.insert(entry.code, ()).is_some() {
                return Err((
                    format!("code = {}", entry.code),
                    format!("receipt_error {} is listed twice", entry.code),
                ));
            }
        }
        Ok(())
    }

    /// What a `command_status` from this vendor means, or `None` when the
    /// profile does not list it (the caller falls back to `generic`).
    pub fn status(&self, code: u32) -> Option<&StatusEntry> {
        self.command_status.iter().find(|e| e.code == code)
    }

    /// What a receipt error code from this vendor means.
    pub fn receipt_error(&self, code: u32) -> Option<&ErrorEntry> {
        self.receipt_error.iter().find(|e| e.code == code)
    }

    /// The state a receipt `stat` spelling means, standard or the vendor's.
    pub fn stat(&self, stat: &str) -> Option<FinalState> {
        let stat = stat.trim();
        self.receipt_stat
            .iter()
            .find(|e| e.stat.eq_ignore_ascii_case(stat))
            .map(|e| e.state)
            .or_else(|| stat.to_ascii_uppercase().parse().ok())
    }

    /// A refused submit: the canonical outcome of a `command_status`.
    pub fn submit_outcome(&self, code: u32) -> Option<Canonical> {
        self.status(code).map(|e| Canonical {
            state: match e.class {
                Class::Temporary => FinalState::Undeliv,
                Class::Permanent => FinalState::Rejectd,
            },
            reason: e.reason,
            class: e.class,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_builtin_profile_loads() {
        for (name, _) in BUILTIN {
            let profile = Profile::builtin(name)
                .expect("listed")
                .unwrap_or_else(|e| panic!("{e}"));
            assert_eq!(&profile.name, name);
        }
    }

    #[test]
    fn errors_name_the_line_and_column() {
        let text = "name = \"x\"\ndescription = \"d\"\nversions = [\"3.4\"]\nbind_types = [\"transceiver\"]\nwindow = 3\n";
        let err = Profile::from_toml(text, "my.toml").expect_err("unknown key");
        assert_eq!(
            (err.origin.as_str(), err.line, err.column),
            ("my.toml", 5, 1),
            "{err}"
        );
        let text = "name = \"x\"\ndescription = \"d\"\nversions = [\"3.4\"]\nbind_types = [\"transceiver\"]\n[tls]\nminimum = \"1.1\"\n";
        let err = Profile::from_toml(text, "my.toml").expect_err("bad version");
        assert_eq!((err.line, err.column), (6, 11), "{err}");
        assert!(err.message.contains("\"1.2\""), "{err}");
    }
}
