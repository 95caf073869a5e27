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
use std::time::Duration;

use serde::Deserialize;
use tern_session::SessionConfig;

use crate::canonical::{Canonical, Class, FinalState, Reason, Scope};

/// A vendor profile as written in TOML.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Profile {
    /// Short name used in configuration (`ovh`, `telesign`, …).
    pub name: String,
    /// One line for people reading the profile; Tern decides nothing by
    /// it (like `source` and `notes`, it documents the data, as a comment
    /// would, but survives a profile merge and is checked by the tests).
    pub description: String,
    /// Where the facts come from (the seed file, a section), for people
    /// checking a profile against its document.
    #[serde(default)]
    pub source: String,
    /// SMPP versions the vendor speaks: "3.3", "3.4", "5.0".
    pub versions: Vec<SmppVersion>,
    /// Bind types it accepts: "transmitter", "receiver", "transceiver".
    /// An upstream configured with another is a configuration error.
    pub bind_types: Vec<BindKind>,
    /// What a bind response without `sc_interface_version` means.
    #[serde(default)]
    pub version: Version,
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
    /// What the seed says that Tern has nothing to decide by (host names,
    /// onboarding, a timer Tern always meets, cipher suites rustls picks
    /// from the server's list), for people. A fact Tern acts on is a field.
    #[serde(default)]
    pub notes: Vec<String>,
}

/// An SMPP version.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
pub enum SmppVersion {
    /// 3.3: no TLVs.
    #[serde(rename = "3.3")]
    V33,
    /// 3.4.
    #[serde(rename = "3.4")]
    V34,
    /// 5.0.
    #[serde(rename = "5.0")]
    V50,
}

impl SmppVersion {
    /// As written in profiles ("3.4").
    pub fn as_str(self) -> &'static str {
        match self {
            SmppVersion::V33 => "3.3",
            SmppVersion::V34 => "3.4",
            SmppVersion::V50 => "5.0",
        }
    }

    /// Whether this version carries TLVs (3.4 and later).
    pub fn takes_tlvs(self) -> bool {
        self != SmppVersion::V33
    }
}

/// A bind type, as profiles name them.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum BindKind {
    /// Sends only.
    Transmitter,
    /// Receives only.
    Receiver,
    /// Both.
    Transceiver,
}

impl BindKind {
    /// As written in profiles and configuration.
    pub fn as_str(self) -> &'static str {
        match self {
            BindKind::Transmitter => "transmitter",
            BindKind::Receiver => "receiver",
            BindKind::Transceiver => "transceiver",
        }
    }
}

/// Reading the version a bind response announces.
#[derive(Debug, Clone, Default, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Version {
    /// Whether the vendor takes TLVs (message_payload, SAR) on a session
    /// whose bind response carries no `sc_interface_version`. SMPP 3.4
    /// §5.3.2.25 says such an SMSC takes none, and that is the default: Tern
    /// then splits long messages with a UDH. True only where the vendor's
    /// document says its SMSC speaks nothing older than 3.4.
    #[serde(default)]
    pub tlvs_without_interface_version: bool,
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
}

/// Timers in seconds. A vendor's session init timer (bind within 10 s of
/// connecting: Telesign, seed 001) has no field: Tern sends its bind as soon
/// as the connection (and TLS) is up, so there is nothing to choose.
#[derive(Debug, Clone, Default, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Timers {
    /// enquire_link interval the vendor expects: Tern's interval towards it.
    pub enquire_link_secs: Option<u64>,
    /// The vendor's response timer: a request unanswered for this long has
    /// failed (Telesign, Infobip: 30 s; seed 001: 60 s, then it closes the
    /// connection). Tern gives up waiting no later than that.
    pub response_timeout_secs: Option<u64>,
}

impl Timers {
    /// Tern's session settings towards this vendor, from Tern's own
    /// (`base`): the vendor's enquire_link interval, and a response timeout
    /// no longer than the vendor's response timer, since past it the vendor
    /// counts the operation failed.
    pub fn session_config(&self, base: SessionConfig) -> SessionConfig {
        let response_timeout = self
            .response_timeout_secs
            .map_or(base.response_timeout, |s| {
                base.response_timeout.min(Duration::from_secs(s))
            });
        SessionConfig {
            enquire_link_interval: self
                .enquire_link_secs
                .map(Duration::from_secs)
                .or(base.enquire_link_interval),
            response_timeout,
            ..base
        }
    }
}

/// TLS requirements.
#[derive(Debug, Clone, Default, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Tls {
    /// Whether plain TCP is refused (Telesign): an upstream entry without
    /// `tls = true` is a configuration error, unless its host is this
    /// machine (a simulator, or a local TLS tunnel).
    #[serde(default)]
    pub required: bool,
    /// Minimum version: "1.2" or "1.3". Tern's TLS floor towards the vendor
    /// unless the entry's `tls_min_version` raises it; lowering it is a
    /// configuration error. The cipher suites vendors list are not a
    /// field: rustls takes the suite from the server's list, and has none of
    /// the CBC or static-RSA suites (Telesign lists four of them).
    pub minimum: Option<TlsMinimum>,
}

/// A TLS version a vendor requires at least.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
pub enum TlsMinimum {
    /// TLS 1.2.
    #[serde(rename = "1.2")]
    V12,
    /// TLS 1.3.
    #[serde(rename = "1.3")]
    V13,
}

impl TlsMinimum {
    /// As written in profiles and configuration ("1.2", "1.3").
    pub fn as_str(self) -> &'static str {
        match self {
            TlsMinimum::V12 => "1.2",
            TlsMinimum::V13 => "1.3",
        }
    }
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
}

/// Data codings.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Coding {
    /// `data_coding` values accepted.
    pub accepted: Vec<u8>,
    /// What data_coding 0 means: "gsm7", "ia5", "latin1".
    pub default_alphabet: Alphabet,
    /// GSM 7-bit carried "unpacked" (one septet per octet) or "packed".
    pub gsm7_carriage: Carriage,
    /// What happens to characters the coding lacks: "error" or "replace".
    pub unrepresentable: OnUnrepresentable,
}

impl Default for Coding {
    fn default() -> Self {
        Self {
            accepted: vec![0, 8],
            default_alphabet: Alphabet::Gsm7,
            gsm7_carriage: Carriage::Unpacked,
            unrepresentable: OnUnrepresentable::Error,
        }
    }
}

/// The alphabet behind data_coding 0.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Alphabet {
    /// GSM 03.38.
    Gsm7,
    /// IA5 (ASCII).
    Ia5,
    /// ISO-8859-1.
    Latin1,
}

/// How GSM 7-bit text is carried in octets.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Carriage {
    /// One septet per octet.
    Unpacked,
    /// Eight septets in seven octets.
    Packed,
}

/// What the vendor does with characters its coding lacks.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum OnUnrepresentable {
    /// Refuses the message.
    Error,
    /// Replaces them (ó→o).
    Replace,
}

/// Long messages.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct LongMessages {
    /// "udh" (Tern splits, 8-bit reference), "udh16", "sar", "payload"
    /// (one message_payload, the vendor splits), or "none".
    pub method: LongMethod,
    /// For "payload": the vendor reports only the first part ("first") or
    /// every part ("all").
    #[serde(default)]
    pub receipts_for: ReceiptsFor,
    /// Most parts one message may have.
    pub max_parts: Option<u32>,
}

impl Default for LongMessages {
    fn default() -> Self {
        Self {
            method: LongMethod::Udh,
            receipts_for: ReceiptsFor::All,
            max_parts: None,
        }
    }
}

/// How a long message reaches the vendor.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum LongMethod {
    /// Tern splits, 8-bit UDH reference.
    Udh,
    /// Tern splits, 16-bit UDH reference.
    Udh16,
    /// Tern splits, SAR TLVs.
    Sar,
    /// One message_payload; the vendor splits.
    Payload,
    /// No long messages.
    None,
}

/// Which parts of a message the vendor split itself it reports.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum ReceiptsFor {
    /// Every part.
    #[default]
    All,
    /// The first part only.
    First,
}

/// Schedule and validity formats.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Times {
    /// "absolute", "relative" or "both".
    pub schedule: TimeForm,
    /// "absolute", "relative" or "both".
    pub validity: TimeForm,
}

impl Default for Times {
    fn default() -> Self {
        Self {
            schedule: TimeForm::Both,
            validity: TimeForm::Both,
        }
    }
}

/// The SMPP time form a vendor takes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum TimeForm {
    /// Absolute times only: relative ones are converted.
    Absolute,
    /// Relative times only: absolute ones are converted.
    Relative,
    /// Either, as the client wrote it.
    Both,
}

/// Uses of system_type.
#[derive(Debug, Clone, Default, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SystemType {
    /// Bind system_type that makes messages flash (Infobip: "NSMS"). An
    /// upstream bound with it carries flash messages (message class 0)
    /// only, in one part; the vendor's other upstreams never carry them.
    pub flash: Option<String>,
    /// What service_type in submit_sm selects (Telesign: receipt data centre).
    pub submit_service_type: Option<String>,
}

/// Message id form.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct MessageId {
    /// "decimal", "hex", "hex32" or "opaque". Tern keeps ids as the vendor
    /// wrote them; `tern sim --profile` gives its ids this form.
    pub form: IdForm,
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
            form: IdForm::Opaque,
            receipt_id_any_base: false,
        }
    }
}

/// The form of a vendor's message ids.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum IdForm {
    /// Decimal digits.
    Decimal,
    /// Hex digits.
    Hex,
    /// 32 hex digits.
    Hex32,
    /// Not stated.
    Opaque,
}

/// Receipt format.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Receipts {
    /// Base of the receipt text's `err`: "decimal" or "hex".
    pub err_radix: Radix,
    /// Whether the text form is sent. Tern reads either form; `tern sim
    /// --profile` sends the forms the vendor sends.
    pub text: bool,
    /// Whether the receipt TLVs are sent (receipted_message_id, message_state).
    pub tlvs: bool,
    /// The receipt `err` is a GSM MAP error code (3GPP TS 29.002: 1
    /// unknown subscriber, 27 absent subscriber, …), as SMPP 3.4 Appendix B
    /// leaves it to the network: vendors that give no `err` table of their
    /// own, or say their codes are the GSM ones. Read after the profile's
    /// `receipt_error` table, before the `network_error_code` TLV.
    #[serde(default)]
    pub err_is_gsm_map: bool,
    /// Final failed receipts with these reasons send the message again
    /// through the next upstream of its route (besides the route's own
    /// `resubmit_on` and the codes marked `scope = "upstream"`).
    #[serde(default)]
    pub resubmit_on: Vec<Reason>,
    /// Tags of the vendor's own receipt TLVs outside the range SMPP
    /// reserves for vendors (0x1400-0x3FFF, always kept): Telesign's MCC
    /// 0x0410, MNC 0x0411 and price 0x0412. Kept with the message and
    /// relayed to clients that ask for vendor TLVs.
    #[serde(default)]
    pub vendor_tlvs: Vec<u16>,
}

impl Default for Receipts {
    fn default() -> Self {
        Self {
            err_radix: Radix::Decimal,
            text: true,
            tlvs: false,
            err_is_gsm_map: false,
            resubmit_on: Vec::new(),
            vendor_tlvs: Vec::new(),
        }
    }
}

/// The base a number is written in.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Radix {
    /// Base 10.
    Decimal,
    /// Base 16.
    Hex,
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
    /// Whether the refusal concerns this vendor only (a temporary code:
    /// the next upstream is tried at once, this one not again).
    #[serde(default)]
    pub scope: Scope,
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
    /// Whether the failure concerns this vendor only (a temporary code:
    /// the message is sent again through the next upstream of its route).
    #[serde(default)]
    pub scope: Scope,
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

/// The key of a `key = value` line whose value starts at `offset`, if the
/// value is on the same line as its key.
fn key_before(text: &str, offset: usize) -> Option<&str> {
    let before = text.get(..offset)?;
    let line = before.rsplit('\n').next()?;
    let (key, _) = line.split_once('=')?;
    let key = key.trim();
    let bare = |c: char| c.is_ascii_alphanumeric() || c == '_' || c == '-' || c == '.';
    (!key.is_empty() && key.chars().all(bare)).then_some(key)
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
            // serde names the bad value, not its key: "unknown variant
            // `zipped`, expected `unpacked` or `packed`". The key is the
            // one before the value on its line.
            let key = e.span().and_then(|s| key_before(text, s.start));
            let message = match key {
                Some(key) if !e.message().contains(key) => format!("{key}: {}", e.message()),
                _ => e.message().to_owned(),
            };
            ProfileError {
                origin: origin.to_owned(),
                line,
                column,
                message,
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

    /// Checks what serde cannot: duplicate codes, and scope against class.
    /// Errors carry a text to find in the file for the position.
    fn validate(&self) -> Result<(), (String, String)> {
        let mut seen = BTreeMap::new();
        for entry in &self.command_status {
            if entry.scope == Scope::Upstream && entry.class != Class::Temporary {
                return Err((
                    format!("0x{:X}", entry.code),
                    format!(
                        "command_status 0x{:X} has scope \"upstream\" but class \"permanent\"; a code that concerns one vendor lets another try: class \"temporary\"",
                        entry.code
                    ),
                ));
            }
            if seen.insert(entry.code, ()).is_some() {
                return Err((
                    format!("0x{:X}", entry.code),
                    format!("command_status 0x{:X} is listed twice", entry.code),
                ));
            }
        }
        let mut seen = BTreeMap::new();
        for entry in &self.receipt_error {
            if entry.scope == Scope::Upstream && entry.class != Class::Temporary {
                return Err((
                    format!("code = {}", entry.code),
                    format!(
                        "receipt_error {} has scope \"upstream\" but class \"permanent\"; a code that concerns one vendor lets another try: class \"temporary\"",
                        entry.code
                    ),
                ));
            }
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
        assert!(err.message.contains("1.2"), "{err}");
    }

    #[test]
    fn the_session_never_waits_longer_than_the_vendors_response_timer() {
        let base = SessionConfig::default();
        assert_eq!(base.response_timeout, Duration::from_secs(30));
        let timers = |text: &str| {
            let text = format!("name = \"x\"\ndescription = \"d\"\nversions = [\"3.4\"]\nbind_types = [\"transceiver\"]\n[timers]\n{text}");
            Profile::from_toml(&text, "t.toml").expect("valid").timers
        };
        // A vendor that waits 5 s: Tern gives up at 5 s, not at its own 30.
        let quick = timers("response_timeout_secs = 5\nenquire_link_secs = 15");
        let config = quick.session_config(base.clone());
        assert_eq!(config.response_timeout, Duration::from_secs(5));
        assert_eq!(config.enquire_link_interval, Some(Duration::from_secs(15)));
        assert_eq!(config.window, base.window, "the rest is Tern's");
        // seed 001 waits 60 s: Tern's own 30 s is already shorter.
        let seed001 = Profile::builtin("seed001").expect("listed").expect("valid");
        assert_eq!(
            seed001.timers.session_config(base.clone()).response_timeout,
            Duration::from_secs(30)
        );
        // No timers stated: Tern's own.
        let none = timers("").session_config(base.clone());
        assert_eq!(
            (none.response_timeout, none.enquire_link_interval),
            (base.response_timeout, base.enquire_link_interval)
        );
    }

    #[test]
    fn a_code_that_concerns_one_vendor_must_be_temporary() {
        let text = "name = \"x\"\ndescription = \"d\"\nversions = [\"3.4\"]\nbind_types = [\"transceiver\"]\n\n[[command_status]]\ncode = 0x401\nreason = \"invalid_message\"\nclass = \"permanent\"\nscope = \"upstream\"\nmeaning = \"m\"\n";
        let err = Profile::from_toml(text, "my.toml").expect_err("permanent and upstream");
        assert_eq!((err.line, err.column), (7, 8), "{err}");
        assert!(err.message.contains("class \"temporary\""), "{err}");
        let text = text.replace("\"permanent\"", "\"temporary\"");
        let profile = Profile::from_toml(&text, "my.toml").expect("valid");
        assert_eq!(profile.command_status[0].scope, Scope::Upstream);
    }
}
