//! Delivery receipt text: the `short_message` of a `deliver_sm` whose
//! esm_class says "SMSC delivery receipt" (SMPP 3.4 §5.2.12, Appendix B).
//!
//! Appendix B suggests
//! `id:IIIIIIIIII sub:SSS dlvrd:DDD submit date:YYMMDDhhmm done date:YYMMDDhhmm stat:DDDDDDD err:E text:...`
//! but calls the format vendor-specific, and vendors do vary: `dlvr:`
//! (Mensatek), `dlvrld:` (Infobip), `Text:` (Appendix B itself and the
//! Russian provider), 12-digit dates with seconds, `err` in hex (Telesign),
//! stats with a space (`DELIVERY UNKNOWN`, Infobip), line breaks and double
//! spaces between fields. So [`Receipt::parse`] is tolerant:
//!
//! - keys are matched case-insensitively, wherever they start a word and are
//!   followed by `:` (spaces allowed before the colon), in any order;
//! - a value runs to the next key, trimmed; it may contain spaces
//!   (`stat:DELIVERY UNKNOWN`) and colons when not preceded by a space;
//! - `text:` is last: its value is everything after the colon, kept raw;
//! - only `id` is required, because a receipt without it cannot be matched to
//!   a message; everything else is optional (Telesign also carries the state
//!   in TLVs, and TLVs win where both are present). Keys Tern does not know
//!   are kept, in order, in [`Receipt::extra`];
//! - the text must start with a `key:` field, so an ordinary message is an
//!   error, never a receipt by accident; no input panics.
//!
//! Values are kept exactly as the SMSC wrote them (`stat`, `err`, dates,
//! key spellings of `dlvrd` and `text`); typed readings are methods, because
//! how to read some of them (`err` radix, date time zone) is a vendor-profile
//! decision. Octets are read as Latin-1, which maps every byte to one `char`,
//! so [`Receipt::to_bytes`] gives back the octets read.

use std::fmt;

use bytes::Bytes;

use crate::time::{AbsoluteTime, TimeError, UtcOffset};

/// How many characters of the original message a receipt's `text` carries
/// (SMPP 3.4 Appendix B).
pub const TEXT_PREVIEW_CHARS: usize = 20;

/// Why a receipt, or one of its values, could not be read.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ReceiptError {
    /// The text does not start with a `key:value` field.
    #[error("not a delivery receipt: `{preview}` does not start with a `key:value` field")]
    NotAReceipt {
        /// The first octets, escaped for logs.
        preview: String,
    },
    /// No `id` field, or an empty one: the receipt cannot be matched.
    #[error("delivery receipt has no message id")]
    MissingId,
    /// A date is not 10 (`YYMMDDhhmm`) or 12 (`YYMMDDhhmmss`) digits.
    #[error("receipt date `{raw}` is not YYMMDDhhmm or YYMMDDhhmmss")]
    DateFormat {
        /// The date as written.
        raw: String,
    },
    /// A date has the right shape but names no real time.
    #[error("receipt date `{raw}` is invalid")]
    DateValue {
        /// The date as written (or built).
        raw: String,
        /// What is wrong with it.
        #[source]
        source: TimeError,
    },
    /// `err` is not a number in the radix the vendor profile says.
    #[error("receipt err `{raw}` is not a {radix} number")]
    Err {
        /// The value as written.
        raw: String,
        /// The radix it was read in.
        radix: ErrRadix,
    },
}

/// The final (or intermediate) state a receipt reports in `stat`.
///
/// [`Stat::parse`] accepts the seven-letter codes of SMPP 3.4 Appendix B
/// and the spellings vendors use instead (see there); anything else is kept
/// as [`Stat::Other`] for the vendor profile to map.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum Stat {
    /// `DELIVRD`
    Delivered,
    /// `EXPIRED`
    Expired,
    /// `DELETED`
    Deleted,
    /// `UNDELIV`
    Undeliverable,
    /// `ACCEPTD`
    Accepted,
    /// `UNKNOWN`
    Unknown,
    /// `REJECTD`
    Rejected,
    /// `ENROUTE`
    Enroute,
    /// `SKIPPED` (SMPP 5.0)
    Skipped,
    /// Any other text, trimmed, as the SMSC wrote it.
    Other(String),
}

impl Stat {
    /// Reads a `stat` value, ignoring case and the amount of inner spaces.
    ///
    /// Besides the Appendix B codes: `DELIVERED`, `UNDELIVERABLE`,
    /// `ACCEPTED`, `REJECTED` (the SMPP message_state names, which Telesign
    /// lists and Infobip sends for `REJECTED`) and `DELIVERY UNKNOWN`
    /// (Infobip).
    pub fn parse(raw: &str) -> Stat {
        let normal = raw
            .split_ascii_whitespace()
            .collect::<Vec<_>>()
            .join(" ")
            .to_ascii_uppercase();
        match normal.as_str() {
            "DELIVRD" | "DELIVERED" => Stat::Delivered,
            "EXPIRED" => Stat::Expired,
            "DELETED" => Stat::Deleted,
            "UNDELIV" | "UNDELIVERABLE" => Stat::Undeliverable,
            "ACCEPTD" | "ACCEPTED" => Stat::Accepted,
            "UNKNOWN" | "DELIVERY UNKNOWN" => Stat::Unknown,
            "REJECTD" | "REJECTED" => Stat::Rejected,
            "ENROUTE" => Stat::Enroute,
            "SKIPPED" => Stat::Skipped,
            _ => Stat::Other(raw.trim().to_owned()),
        }
    }

    /// The Appendix B code Tern sends to its clients (`Other` as it came).
    pub fn code(&self) -> &str {
        match self {
            Stat::Delivered => "DELIVRD",
            Stat::Expired => "EXPIRED",
            Stat::Deleted => "DELETED",
            Stat::Undeliverable => "UNDELIV",
            Stat::Accepted => "ACCEPTD",
            Stat::Unknown => "UNKNOWN",
            Stat::Rejected => "REJECTD",
            Stat::Enroute => "ENROUTE",
            Stat::Skipped => "SKIPPED",
            Stat::Other(raw) => raw,
        }
    }

    /// The matching `message_state` TLV value (SMPP 3.4 §5.2.28; SKIPPED = 9
    /// from SMPP 5.0), so text and TLV can be compared.
    pub fn message_state(&self) -> Option<u8> {
        Some(match self {
            Stat::Enroute => 1,
            Stat::Delivered => 2,
            Stat::Expired => 3,
            Stat::Deleted => 4,
            Stat::Undeliverable => 5,
            Stat::Accepted => 6,
            Stat::Unknown => 7,
            Stat::Rejected => 8,
            Stat::Skipped => 9,
            Stat::Other(_) => return None,
        })
    }

    /// The state a `message_state` TLV value names, if it names one.
    pub fn from_message_state(state: u8) -> Option<Stat> {
        Some(match state {
            1 => Stat::Enroute,
            2 => Stat::Delivered,
            3 => Stat::Expired,
            4 => Stat::Deleted,
            5 => Stat::Undeliverable,
            6 => Stat::Accepted,
            7 => Stat::Unknown,
            8 => Stat::Rejected,
            9 => Stat::Skipped,
            _ => return None,
        })
    }
}

impl fmt::Display for Stat {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.code())
    }
}

/// How a vendor writes `err`: most in decimal, Telesign in hex (`00B`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum ErrRadix {
    /// Decimal digits only.
    Decimal,
    /// Hex digits, with or without a `0x` prefix.
    Hex,
}

impl ErrRadix {
    /// Reads an `err` value in this radix.
    pub fn parse(self, raw: &str) -> Result<u32, ReceiptError> {
        let bad = || ReceiptError::Err {
            raw: raw.to_owned(),
            radix: self,
        };
        let digits = raw.trim();
        let (digits, radix) = match self {
            ErrRadix::Decimal => (digits, 10),
            ErrRadix::Hex => (
                digits
                    .strip_prefix("0x")
                    .or_else(|| digits.strip_prefix("0X"))
                    .unwrap_or(digits),
                16,
            ),
        };
        // from_str_radix would also take a sign; vendors never send one.
        if digits.is_empty() || !digits.chars().all(|c| c.is_digit(radix)) {
            return Err(bad());
        }
        u32::from_str_radix(digits, radix).map_err(|_| bad())
    }
}

impl fmt::Display for ErrRadix {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            ErrRadix::Decimal => "decimal",
            ErrRadix::Hex => "hexadecimal",
        })
    }
}

/// A receipt's `submit date` / `done date`: `YYMMDDhhmm` or `YYMMDDhhmmss`.
///
/// Receipt dates carry no offset; they are in the SMSC's local time, which
/// only the vendor profile knows, hence the offset argument of
/// [`ReceiptDate::to_unix_millis`]. `YY` is 2000–2099, as in [`crate::time`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct ReceiptDate {
    /// The local date and time, written with offset `00+`; second 0 when
    /// the date had no seconds.
    time: AbsoluteTime,
    /// 12 digits (with seconds) rather than 10, so formatting keeps the form.
    with_seconds: bool,
}

impl ReceiptDate {
    /// Reads 10 or 12 digits.
    pub fn parse(raw: &str) -> Result<Self, ReceiptError> {
        let bytes = raw.as_bytes();
        if !(bytes.len() == 10 || bytes.len() == 12) || !bytes.iter().all(u8::is_ascii_digit) {
            return Err(ReceiptError::DateFormat {
                raw: raw.to_owned(),
            });
        }
        let pair = |at: usize| {
            bytes
                .get(at..at + 2)
                .map_or(0, |p| (p[0] - b'0') * 10 + (p[1] - b'0'))
        };
        let with_seconds = bytes.len() == 12;
        let second = if with_seconds { pair(10) } else { 0 };
        AbsoluteTime::new(
            2000 + u16::from(pair(0)),
            pair(2),
            pair(4),
            pair(6),
            pair(8),
            second,
            UtcOffset::UTC,
        )
        .map(|time| ReceiptDate { time, with_seconds })
        .map_err(|source| ReceiptError::DateValue {
            raw: raw.to_owned(),
            source,
        })
    }

    /// The date of `unix_ms` in UTC, to the minute or to the second. Tern
    /// writes its own receipts' dates in UTC.
    pub fn from_unix_millis(unix_ms: i64, with_seconds: bool) -> Result<Self, ReceiptError> {
        let invalid = |source| ReceiptError::DateValue {
            raw: format!("unix {unix_ms} ms"),
            source,
        };
        let t = AbsoluteTime::from_unix_millis(unix_ms, UtcOffset::UTC).map_err(invalid)?;
        let second = if with_seconds { t.second() } else { 0 };
        AbsoluteTime::new(
            t.year(),
            t.month(),
            t.day(),
            t.hour(),
            t.minute(),
            second,
            UtcOffset::UTC,
        )
        .map(|time| ReceiptDate { time, with_seconds })
        .map_err(invalid)
    }

    /// Whether the date has seconds (12 digits).
    pub fn has_seconds(&self) -> bool {
        self.with_seconds
    }

    /// The local date and time, written with offset `00+`.
    pub fn local(&self) -> AbsoluteTime {
        self.time
    }

    /// The instant, reading the date as local time at `offset` (pass
    /// [`UtcOffset::UTC`] when the vendor's time zone is unknown).
    pub fn to_unix_millis(&self, offset: UtcOffset) -> i64 {
        self.time.to_unix_millis() - i64::from(offset.minutes()) * 60_000
    }
}

impl ReceiptDate {
    /// The digits [`fmt::Display`] writes, without the formatter.
    fn write_digits(&self, out: &mut Vec<u8>) {
        let t = &self.time;
        push_pair(out, (t.year() % 100) as u8);
        push_pair(out, t.month());
        push_pair(out, t.day());
        push_pair(out, t.hour());
        push_pair(out, t.minute());
        if self.with_seconds {
            push_pair(out, t.second());
        }
    }
}

impl fmt::Display for ReceiptDate {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let t = &self.time;
        write!(
            f,
            "{:02}{:02}{:02}{:02}{:02}",
            t.year() % 100,
            t.month(),
            t.day(),
            t.hour(),
            t.minute()
        )?;
        if self.with_seconds {
            write!(f, "{:02}", t.second())?;
        }
        Ok(())
    }
}

/// A delivery receipt, its values as the SMSC wrote them.
///
/// Fields are public: the simulator builds vendor-flavoured receipts with
/// them, and Tern builds its own with [`Receipt::canonical`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Receipt {
    /// `id`: the SMSC's message id, as written (case and base vary by
    /// vendor; matching normalises, this keeps the original).
    pub id: String,
    /// `sub`: number of messages submitted (spec: 3 digits; Mensatek `001`).
    pub sub: Option<String>,
    /// `dlvrd` (or `dlvr`, `dlvrld`): number delivered, as written.
    pub dlvrd: Option<String>,
    /// The key `dlvrd` was written with, so formatting reproduces a
    /// vendor's spelling (the simulator needs this).
    pub dlvrd_key: String,
    /// `submit date`, as written; see [`Receipt::submitted_at`].
    pub submit_date: Option<String>,
    /// `done date`, as written; see [`Receipt::done_at`].
    pub done_date: Option<String>,
    /// `stat`, as written; see [`Receipt::status`].
    pub stat: Option<String>,
    /// `err`, as written; see [`Receipt::err_code`].
    pub err: Option<String>,
    /// `text`: the start of the original message, everything after the
    /// colon up to the end, unchanged (leading space included).
    pub text: Option<String>,
    /// The key `text` was written with (`text`, `Text`).
    pub text_key: String,
    /// Fields Tern does not know, `(key, value)` in the order read.
    pub extra: Vec<(String, String)>,
}

impl Receipt {
    /// Reads a receipt from a `short_message` (octets taken as Latin-1).
    pub fn parse(short_message: &[u8]) -> Result<Receipt, ReceiptError> {
        let fields = split_fields(short_message).ok_or_else(|| ReceiptError::NotAReceipt {
            preview: short_message
                .iter()
                .take(40)
                .flat_map(|b| b.escape_ascii())
                .map(char::from)
                .collect(),
        })?;
        let mut receipt = Receipt {
            id: String::new(),
            sub: None,
            dlvrd: None,
            dlvrd_key: "dlvrd".to_owned(),
            submit_date: None,
            done_date: None,
            stat: None,
            err: None,
            text: None,
            text_key: "text".to_owned(),
            extra: Vec::new(),
        };
        let mut id = None;
        for field in fields {
            // The key as written is kept only where it is needed (text,
            // dlvrd, unknown and repeated keys): one String less per field
            // for the rest, on every receipt an upstream sends.
            let name = || latin1(&short_message[field.name.0..field.name.1]);
            let value = latin1(&short_message[field.value.0..field.value.1]);
            // The first non-empty occurrence of a known key wins; repeats are
            // kept as extras so nothing is lost.
            let slot = match field.key {
                Key::Id => &mut id,
                Key::Sub => &mut receipt.sub,
                Key::Dlvrd => &mut receipt.dlvrd,
                Key::SubmitDate => &mut receipt.submit_date,
                Key::DoneDate => &mut receipt.done_date,
                Key::Stat => &mut receipt.stat,
                Key::Err => &mut receipt.err,
                Key::Text => {
                    receipt.text = Some(value);
                    receipt.text_key = name();
                    continue;
                }
                Key::Other => {
                    receipt.extra.push((name(), value));
                    continue;
                }
            };
            if value.is_empty() {
                continue;
            }
            if slot.is_some() {
                receipt.extra.push((name(), value));
                continue;
            }
            *slot = Some(value);
            if field.key == Key::Dlvrd {
                receipt.dlvrd_key = name();
            }
        }
        receipt.id = id.ok_or(ReceiptError::MissingId)?;
        Ok(receipt)
    }

    /// A receipt in the standard layout, as Tern sends to its clients:
    /// `sub:001`, `dlvrd:001` when delivered else `000`, `err:000`, empty
    /// `text`; adjust with the `with_*` methods.
    pub fn canonical(
        id: impl Into<String>,
        stat: Stat,
        submitted: ReceiptDate,
        done: ReceiptDate,
    ) -> Receipt {
        let delivered = if stat == Stat::Delivered { 1 } else { 0 };
        Receipt {
            id: id.into(),
            sub: Some("001".to_owned()),
            dlvrd: Some(format!("{delivered:03}")),
            dlvrd_key: "dlvrd".to_owned(),
            submit_date: Some(submitted.to_string()),
            done_date: Some(done.to_string()),
            stat: Some(stat.code().to_owned()),
            err: Some("000".to_owned()),
            text: Some(String::new()),
            text_key: "text".to_owned(),
            extra: Vec::new(),
        }
    }

    /// The octets of `Receipt::canonical(id, stat, submitted, done)
    /// .with_err(err).with_text(original_message).to_bytes()`, written
    /// straight into one buffer. Tern builds one of these per client
    /// receipt; the composed form made nine `String`s, a formatting pass
    /// and a copy per character on that path.
    pub fn canonical_bytes(
        id: &str,
        stat: &Stat,
        submitted: ReceiptDate,
        done: ReceiptDate,
        err: u16,
        original_message: &str,
    ) -> Bytes {
        let mut out = Vec::with_capacity(112 + id.len());
        out.extend_from_slice(b"id:");
        push_latin1(&mut out, id.chars());
        out.extend_from_slice(b" sub:001 dlvrd:");
        out.extend_from_slice(if *stat == Stat::Delivered {
            b"001"
        } else {
            b"000"
        });
        out.extend_from_slice(b" submit date:");
        submitted.write_digits(&mut out);
        out.extend_from_slice(b" done date:");
        done.write_digits(&mut out);
        out.extend_from_slice(b" stat:");
        push_latin1(&mut out, stat.code().chars());
        out.extend_from_slice(b" err:");
        push_padded3(&mut out, err);
        out.extend_from_slice(b" text:");
        push_latin1(&mut out, original_message.chars().take(TEXT_PREVIEW_CHARS));
        out.into()
    }

    /// Sets `err` to `code`, three digits zero-padded (Tern's canonical
    /// codes are 000–999).
    pub fn with_err(mut self, code: u16) -> Receipt {
        self.err = Some(format!("{code:03}"));
        self
    }

    /// Sets `sub` and `dlvrd`, three digits zero-padded.
    pub fn with_counts(mut self, sub: u16, dlvrd: u16) -> Receipt {
        self.sub = Some(format!("{sub:03}"));
        self.dlvrd = Some(format!("{dlvrd:03}"));
        self
    }

    /// Sets `text` to the first 20 characters of the original message.
    pub fn with_text(mut self, original_message: &str) -> Receipt {
        self.text = Some(original_message.chars().take(TEXT_PREVIEW_CHARS).collect());
        self
    }

    /// The reported state, if `stat` is present.
    pub fn status(&self) -> Option<Stat> {
        self.stat.as_deref().map(Stat::parse)
    }

    /// `err` read in `radix` (the vendor profile says which), if present.
    pub fn err_code(&self, radix: ErrRadix) -> Result<Option<u32>, ReceiptError> {
        self.err.as_deref().map(|raw| radix.parse(raw)).transpose()
    }

    /// `submit date` read as a date, if present.
    pub fn submitted_at(&self) -> Result<Option<ReceiptDate>, ReceiptError> {
        self.submit_date
            .as_deref()
            .map(ReceiptDate::parse)
            .transpose()
    }

    /// `done date` read as a date, if present.
    pub fn done_at(&self) -> Result<Option<ReceiptDate>, ReceiptError> {
        self.done_date
            .as_deref()
            .map(ReceiptDate::parse)
            .transpose()
    }

    /// The receipt as `short_message` octets (Latin-1; a character beyond
    /// U+00FF, which no parsed receipt holds, becomes `?`).
    pub fn to_bytes(&self) -> Bytes {
        self.to_string()
            .chars()
            .map(|c| u8::try_from(u32::from(c)).unwrap_or(b'?'))
            .collect::<Vec<u8>>()
            .into()
    }
}

/// Each character as one Latin-1 octet, `?` for those beyond it (as
/// [`Receipt::to_bytes`] writes them).
fn push_latin1(out: &mut Vec<u8>, chars: impl Iterator<Item = char>) {
    out.extend(chars.map(|c| u8::try_from(u32::from(c)).unwrap_or(b'?')));
}

/// `{value:03}`: at least three digits, zero-padded.
fn push_padded3(out: &mut Vec<u8>, value: u16) {
    let mut digits = [b'0'; 5];
    let mut rest = value;
    let mut start = digits.len();
    while rest > 0 {
        start -= 1;
        digits[start] = b'0' + (rest % 10) as u8;
        rest /= 10;
    }
    out.extend_from_slice(&digits[start.min(digits.len() - 3)..]);
}

/// Two decimal digits of a value below 100.
fn push_pair(out: &mut Vec<u8>, value: u8) {
    out.push(b'0' + (value / 10) % 10);
    out.push(b'0' + value % 10);
}

/// The standard layout, one space between fields, absent fields left out,
/// unknown fields before `text` (which must stay last).
impl fmt::Display for Receipt {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "id:{}", self.id)?;
        let known = [
            ("sub", &self.sub),
            (self.dlvrd_key.as_str(), &self.dlvrd),
            ("submit date", &self.submit_date),
            ("done date", &self.done_date),
            ("stat", &self.stat),
            ("err", &self.err),
        ];
        for (key, value) in known {
            if let Some(value) = value {
                write!(f, " {key}:{value}")?;
            }
        }
        for (key, value) in &self.extra {
            write!(f, " {key}:{value}")?;
        }
        if let Some(text) = &self.text {
            write!(f, " {}:{text}", self.text_key)?;
        }
        Ok(())
    }
}

/// Which field a key names.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Key {
    Id,
    Sub,
    Dlvrd,
    SubmitDate,
    DoneDate,
    Stat,
    Err,
    Text,
    Other,
}

/// One-word keys and what they name; `dlvr` is Mensatek's spelling of
/// `dlvrd`, `dlvrld` Infobip's.
const KEYS: [(&[u8], Key); 8] = [
    (b"id", Key::Id),
    (b"sub", Key::Sub),
    (b"dlvrd", Key::Dlvrd),
    (b"dlvr", Key::Dlvrd),
    (b"dlvrld", Key::Dlvrd),
    (b"stat", Key::Stat),
    (b"err", Key::Err),
    (b"text", Key::Text),
];

/// A `key:value` found in the text; ranges are `(start, end)` offsets.
#[derive(Debug, Clone, Copy)]
struct Field {
    key: Key,
    name: (usize, usize),
    value: (usize, usize),
}

/// A key found at some offset: what it is, where its name lies, and where
/// its value starts (just after the colon).
#[derive(Debug, Clone, Copy)]
struct KeyAt {
    key: Key,
    name: (usize, usize),
    value_start: usize,
}

/// Splits the text into fields; `None` when it does not start with a key.
fn split_fields(b: &[u8]) -> Option<Vec<Field>> {
    let mut current = key_at(b, skip_space(b, 0))?;
    let mut fields = Vec::new();
    loop {
        if current.key == Key::Text {
            fields.push(Field {
                key: current.key,
                name: current.name,
                value: (current.value_start, b.len()),
            });
            return Some(fields);
        }
        let next = next_key(b, current.value_start);
        let end = next.map_or(b.len(), |k| k.name.0);
        fields.push(Field {
            key: current.key,
            name: current.name,
            value: trim(b, current.value_start, end),
        });
        match next {
            Some(k) => current = k,
            None => return Some(fields),
        }
    }
}

/// The first key starting at or after `from`. A key starts only at the
/// text's start or after a space, so only `from` and the places after a
/// space are tried: about 15 tries a receipt instead of 55, one sixth of
/// its parse (callgrind, BENCHMARKS.md "Session 21").
fn next_key(b: &[u8], from: usize) -> Option<KeyAt> {
    let mut at = from;
    while at < b.len() {
        if let Some(key) = key_at(b, at) {
            return Some(key);
        }
        at += b[at..].iter().position(|c| is_space(*c))? + 1;
    }
    None
}

/// The key starting at `at`, if one does: a word at the start of the text
/// or after a space, then optional spaces and `:`. `submit date` and
/// `done date` are two words, with any spaces (even a line break) between.
fn key_at(b: &[u8], at: usize) -> Option<KeyAt> {
    if at > 0 && !b.get(at - 1).is_some_and(|c| is_space(*c)) {
        return None;
    }
    let end = word_end(b, at)?;
    let word = &b[at..end];
    let dated = if word.eq_ignore_ascii_case(b"submit") {
        Some(Key::SubmitDate)
    } else if word.eq_ignore_ascii_case(b"done") {
        Some(Key::DoneDate)
    } else {
        None
    };
    if let Some(key) = dated {
        let second = skip_space(b, end);
        if second > end {
            if let Some(second_end) = word_end(b, second) {
                if b[second..second_end].eq_ignore_ascii_case(b"date") {
                    if let Some(value_start) = colon_after(b, second_end) {
                        return Some(KeyAt {
                            key,
                            name: (at, second_end),
                            value_start,
                        });
                    }
                }
            }
        }
    }
    let value_start = colon_after(b, end)?;
    let key = KEYS
        .iter()
        .find(|(name, _)| word.eq_ignore_ascii_case(name))
        .map_or(Key::Other, |(_, key)| *key);
    Some(KeyAt {
        key,
        name: (at, end),
        value_start,
    })
}

/// End of the word starting at `at`: a letter, then letters, digits or `_`.
fn word_end(b: &[u8], at: usize) -> Option<usize> {
    if !b.get(at)?.is_ascii_alphabetic() {
        return None;
    }
    let len = b[at..]
        .iter()
        .take_while(|c| c.is_ascii_alphanumeric() || **c == b'_')
        .count();
    Some(at + len)
}

/// Offset just after the `:` that follows `at` (after optional spaces).
fn colon_after(b: &[u8], at: usize) -> Option<usize> {
    let colon = skip_space(b, at);
    (b.get(colon) == Some(&b':')).then_some(colon + 1)
}

fn skip_space(b: &[u8], at: usize) -> usize {
    at + b
        .get(at..)
        .map_or(0, |rest| rest.iter().take_while(|c| is_space(**c)).count())
}

/// `(start, end)` narrowed past spaces on both sides.
fn trim(b: &[u8], start: usize, end: usize) -> (usize, usize) {
    let start = skip_space(b, start).min(end);
    let trailing = b[start..end]
        .iter()
        .rev()
        .take_while(|c| is_space(**c))
        .count();
    (start, end - trailing)
}

/// Spaces between receipt fields: blanks, line breaks, and NUL (some SMSCs
/// count the C-string terminator in sm_length).
fn is_space(c: u8) -> bool {
    c.is_ascii_whitespace() || c == 0
}

/// Octets as Latin-1: each byte is the `char` of the same number. ASCII
/// (every field of the receipts seen so far) is copied whole: collecting
/// `char`s pushed and re-checked the room for each octet, ten fields a
/// receipt (half of `Receipt::parse`).
fn latin1(b: &[u8]) -> String {
    match std::str::from_utf8(b) {
        Ok(ascii) if b.is_ascii() => ascii.to_owned(),
        _ => b.iter().map(|c| char::from(*c)).collect(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn latin1_reads_each_octet_as_its_char_ascii_or_not() {
        assert_eq!(latin1(b"id:12 stat:DELIVRD"), "id:12 stat:DELIVRD");
        assert_eq!(latin1(b"caf\xe9 \x80\xff"), "caf\u{e9} \u{80}\u{ff}");
        // Valid UTF-8 that is not ASCII is still read octet by octet.
        assert_eq!(latin1(b"\xc3\xa9"), "\u{c3}\u{a9}");
        assert_eq!(latin1(b""), "");
    }

    #[test]
    fn keys_are_found_only_at_word_starts() {
        let b = b"id:a:b sub:1";
        assert!(key_at(b, 0).is_some());
        assert!(key_at(b, 3).is_none());
        assert!(key_at(b, 5).is_none());
        assert_eq!(key_at(b, 7).map(|k| k.key), Some(Key::Sub));
    }

    #[test]
    fn two_word_keys_span_line_breaks() {
        let b = b"submit\r\n date :2401011200";
        let k = key_at(b, 0);
        assert_eq!(k.map(|k| k.key), Some(Key::SubmitDate));
        assert_eq!(k.map(|k| k.value_start), Some(15));
    }

    proptest::proptest! {
        /// Trying only the places after a space finds the same next key
        /// as trying every octet, in texts dense with spaces, colons and
        /// key words.
        #[test]
        fn the_next_key_is_the_first_found_trying_every_octet(
            parts in proptest::collection::vec(
                proptest::sample::select(vec![
                    "id", "sub", "submit", "date", "done", "stat", "x_1", "text",
                    ":", " ", "\r\n", "\0", "a", "7",
                ]),
                0..40,
            ),
            from in 0usize..60,
        ) {
            let b = parts.concat().into_bytes();
            let every = (from..b.len()).find_map(|at| key_at(&b, at));
            let found = next_key(&b, from);
            proptest::prop_assert_eq!(
                every.map(|k| (k.key, k.name, k.value_start)),
                found.map(|k| (k.key, k.name, k.value_start))
            );
        }
    }

    #[test]
    fn trim_handles_all_space_and_empty_ranges() {
        assert_eq!(trim(b"   ", 0, 3), (3, 3));
        assert_eq!(trim(b"", 0, 0), (0, 0));
        assert_eq!(trim(b" a ", 0, 3), (1, 2));
    }
}
