//! Adapting a client's `submit_sm` to one upstream, by its vendor profile.
//!
//! Clients write messages their way (their TON/NPI habits, their
//! `data_coding`, one long text or parts of their own, absolute or relative
//! times); each upstream wants them its way. [`adapt`] turns one client
//! `submit_sm` into the `submit_sm`s one upstream should receive: addresses
//! (TON/NPI, '+', lengths, characters), text coding, segmentation, TLVs and
//! time formats. Pure: no I/O, and the clock is a parameter.
//!
//! Invariants:
//! - no input panics, and nothing is unwrapped;
//! - problems that make the message wrong for every upstream (a malformed
//!   destination, an unreadable time, bytes that are not the coding the
//!   client named) are reported before those of this upstream alone, so
//!   [`AdaptError::try_next_upstream`] is false whenever another upstream
//!   would fail too;
//! - the text is only altered under the profile's `unrepresentable =
//!   "replace"`, and only for a client that wrote in a one-octet alphabet: a
//!   UCS-2 client asked for Unicode, where Mensatek's seed says replacement
//!   does not apply;
//! - every part keeps the client's other fields (registered_delivery,
//!   esm_class mode and type, priority, protocol_id, …); `message_payload`
//!   and the SAR TLVs are consumed and only come back if the upstream's
//!   method uses them; a 3.3-only upstream gets no TLVs at all.

use tern_codec::pdu::SubmitSm;
use tern_codec::text::{self, Concat, Encoding, TextError, Udh, Unrepresentable};
use tern_codec::time::{SmppTime, TimeError, UtcOffset};
use tern_codec::tlv::{tags, Sar};
use tern_codec::{
    Address, COctetString, CommandStatus, DataCoding, Npi, ShortMessage, TimeString, Tlv, Ton,
};

use crate::profile::{
    AddressRule, Addresses, Alphabet, Carriage, Coding, LongMethod, OnUnrepresentable, Profile,
    TimeForm,
};

/// How Tern's clients write text.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ClientText {
    /// What `data_coding` 0 means in a client's submit. Tern presents itself
    /// as a GSM SMSC, so GSM 7-bit unpacked unless configured otherwise.
    pub default_alphabet: Encoding,
}

impl Default for ClientText {
    fn default() -> Self {
        Self {
            default_alphabet: Encoding::Gsm7Unpacked,
        }
    }
}

/// What one upstream's sessions are, beyond its profile: facts of the bind,
/// not of the vendor.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Link {
    /// Whether TLVs reach the vendor: its bind response announced 3.4 or
    /// later, or announced nothing and the profile says TLVs are taken
    /// anyway. Without them Tern never sends `message_payload` or SAR: it
    /// splits with a UDH.
    pub tlvs: bool,
    /// Bound with the profile's flash system_type (Infobip `NSMS`): such a
    /// session carries flash messages, and nothing else.
    pub flash: bool,
}

impl Default for Link {
    /// A session that takes TLVs, bound without the flash system_type.
    fn default() -> Self {
        Self {
            tlvs: true,
            flash: false,
        }
    }
}

/// Whether `data_coding` asks for a flash message: message class 0 in the
/// GSM coding groups (3GPP TS 23.038 §4, as SMPP 3.4 §5.2.19 carries them):
/// `00x1 xx00` (e.g. 0x10 GSM 7-bit, 0x14 8-bit, 0x18 UCS-2) or `1111 xx00`.
pub fn is_flash(data_coding: u8) -> bool {
    let class0 = data_coding & 0x03 == 0;
    let general = data_coding & 0xD0 == 0x10;
    let data = data_coding & 0xF0 == 0xF0;
    class0 && (general || data)
}

/// The data_coding with the same alphabet and no message class: what a
/// flash message is written in over a session that makes it flash itself
/// (Infobip: "exactly the same as for normal SMS").
fn without_class(data_coding: u8) -> u8 {
    let alphabet = if data_coding & 0xF0 == 0xF0 {
        // Bit 2: 8-bit data, else the default alphabet.
        data_coding & 0x04
    } else {
        data_coding & 0x0C
    };
    match alphabet {
        0x04 => 0x04,
        0x08 => 0x08,
        _ => 0x00,
    }
}

/// A message rewritten for one upstream.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Adapted {
    /// What to submit, in order: one PDU unless the text was split.
    pub parts: Vec<SubmitSm>,
    /// The concatenation reference on the wire (in the UDH or the SAR TLVs),
    /// when the parts carry one; `None` for a lone message or a
    /// `message_payload`. With an 8-bit UDH it is the low octet of the
    /// reference given.
    pub reference: Option<u16>,
}

/// Which time field an error is about.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum TimeParam {
    /// `schedule_delivery_time`.
    Schedule,
    /// `validity_period`.
    Validity,
}

impl std::fmt::Display for TimeParam {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            TimeParam::Schedule => "schedule_delivery_time",
            TimeParam::Validity => "validity_period",
        })
    }
}

/// What is wrong with an address.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum AddressProblem {
    /// A destination is needed.
    #[error("it is empty")]
    Empty,
    /// A number holds something other than digits.
    #[error("{0:?} is not a digit")]
    NotDigit(char),
    /// An E.164 number has at most 15 digits.
    #[error("{0} digits: an E.164 number has at most 15")]
    NotE164(usize),
    /// A character the upstream does not allow in this kind of address.
    #[error("{0:?} is not allowed")]
    Character(char),
    /// Shorter than the upstream's rule.
    #[error("{len} characters, at least {min} expected")]
    TooShort {
        /// Characters (digits for numbers) given.
        len: usize,
        /// The rule's minimum.
        min: usize,
    },
    /// Longer than the upstream's rule.
    #[error("{len} characters, at most {max} allowed")]
    TooLong {
        /// Characters (digits for numbers) given.
        len: usize,
        /// The rule's maximum.
        max: usize,
    },
}

/// Why a message cannot go to this upstream as it is.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum AdaptError {
    /// The sender breaks the upstream's rule for its kind.
    #[error("source_addr {addr:?}: {problem}")]
    Source {
        /// The client's address, lossily decoded.
        addr: String,
        /// What is wrong.
        problem: AddressProblem,
    },
    /// The destination is not a number, or breaks the upstream's rule.
    #[error("destination_addr {addr:?}: {problem}")]
    Destination {
        /// The client's address, lossily decoded.
        addr: String,
        /// What is wrong.
        problem: AddressProblem,
    },
    /// A time that does not parse, or cannot be written the way the upstream
    /// wants (a validity already past, a span beyond 99 years).
    #[error("{param} {value:?}: {source}")]
    Time {
        /// Which field.
        param: TimeParam,
        /// The client's value, escaped.
        value: String,
        /// What is wrong.
        source: TimeError,
    },
    /// The client's octets are not valid in the coding its `data_coding` names.
    #[error("short_message is not valid for data_coding 0x{data_coding:02X}: {source}")]
    Undecodable {
        /// The client's data_coding.
        data_coding: u8,
        /// What is wrong.
        source: TextError,
    },
    /// The client's SAR TLVs number its parts impossibly.
    #[error("SAR TLVs say part {} of {}", .0.sequence, .0.total)]
    BadSar(Sar),
    /// UDHI is set but the user data header is malformed.
    #[error("the user data header is malformed: {0}")]
    BadUdh(TextError),
    /// The upstream does not take this `data_coding` (binary data, or parts
    /// the client split itself, which are sent as they are).
    #[error(
        "data_coding 0x{data_coding:02X} is not among those the upstream accepts {accepted:?}"
    )]
    CodingRefused {
        /// The client's data_coding.
        data_coding: u8,
        /// The profile's `coding.accepted`.
        accepted: Vec<u8>,
    },
    /// No coding the upstream accepts can carry the text.
    #[error("no data_coding the upstream accepts {accepted:?} can carry the text (first missing character: {missing:?})")]
    NoCoding {
        /// The profile's `coding.accepted`.
        accepted: Vec<u8>,
        /// The first character none of them has, if a single one is to blame.
        missing: Option<char>,
    },
    /// More parts than the upstream takes (1 when it takes no long messages).
    #[error("the message needs {parts} parts; the upstream takes at most {max}")]
    TooManyParts {
        /// Parts needed.
        parts: usize,
        /// The upstream's maximum.
        max: usize,
    },
    /// A flash message (class 0) for a vendor that makes messages flash by
    /// the session's bind system_type, on a session bound without it.
    #[error("a flash message (data_coding 0x{data_coding:02X}) goes only over a session bound with system_type {system_type:?}")]
    FlashNeedsSession {
        /// The client's data_coding.
        data_coding: u8,
        /// The profile's flash system_type.
        system_type: String,
    },
    /// A message that is not flash, on a session that makes every message
    /// flash.
    #[error("data_coding 0x{data_coding:02X} is not a flash message; this session (system_type {system_type:?}) makes every message flash")]
    NotFlash {
        /// The client's data_coding.
        data_coding: u8,
        /// The profile's flash system_type.
        system_type: String,
    },
    /// A flash message that needs more than one part (Infobip: "Long SMS
    /// feature is not supported for Flash notifications").
    #[error("a flash message must fit one part; this one needs {parts}")]
    LongFlash {
        /// Parts needed.
        parts: usize,
    },
    /// A field longer than the upstream takes.
    #[error("{field} would hold {octets} octets; the upstream takes at most {max}")]
    TooLong {
        /// `short_message` or `message_payload`.
        field: &'static str,
        /// Octets needed.
        octets: usize,
        /// The upstream's maximum.
        max: usize,
    },
}

impl AdaptError {
    /// The status to answer the client with when no upstream takes it.
    pub fn command_status(&self) -> CommandStatus {
        match self {
            AdaptError::Source { .. } => CommandStatus::InvalidSourceAddress,
            AdaptError::Destination { .. } => CommandStatus::InvalidDestinationAddress,
            AdaptError::Time {
                param: TimeParam::Schedule,
                ..
            } => CommandStatus::InvalidScheduleTime,
            AdaptError::Time {
                param: TimeParam::Validity,
                ..
            } => CommandStatus::InvalidExpiry,
            AdaptError::Undecodable { .. }
            | AdaptError::CodingRefused { .. }
            | AdaptError::NoCoding { .. } => CommandStatus::InvalidDataCoding,
            AdaptError::BadUdh(_) => CommandStatus::InvalidEsmClass,
            AdaptError::BadSar(_) => CommandStatus::InvalidTlvValue,
            AdaptError::TooManyParts { .. }
            | AdaptError::TooLong { .. }
            | AdaptError::LongFlash { .. } => CommandStatus::InvalidMessageLength,
            AdaptError::FlashNeedsSession { .. } | AdaptError::NotFlash { .. } => {
                CommandStatus::InvalidDataCoding
            }
        }
    }

    /// Whether another upstream, with another profile, might take the
    /// message: false when the message itself is wrong for everyone.
    pub fn try_next_upstream(&self) -> bool {
        match self {
            AdaptError::Destination { problem, .. } => !matches!(
                problem,
                AddressProblem::Empty | AddressProblem::NotDigit(_) | AddressProblem::NotE164(_)
            ),
            AdaptError::Time { .. }
            | AdaptError::Undecodable { .. }
            | AdaptError::BadUdh(_)
            | AdaptError::BadSar(_) => false,
            AdaptError::Source { .. }
            | AdaptError::CodingRefused { .. }
            | AdaptError::NoCoding { .. }
            | AdaptError::TooManyParts { .. }
            | AdaptError::TooLong { .. }
            | AdaptError::FlashNeedsSession { .. }
            | AdaptError::NotFlash { .. }
            | AdaptError::LongFlash { .. } => true,
        }
    }
}

/// User data octets of one SMS on the air (3GPP TS 23.040).
const AIR_OCTETS: usize = 140;

/// A TLV in Tern's own range (vendor-specific tags, 0x1400-0x3FFF) that a
/// stored client submit carries for Tern alone: the callback URL of an
/// HTTP API submit. Never sent upstream.
pub const TERN_CALLBACK_TAG: u16 = 0x3F7E;

/// Digits of the longest E.164 number.
const E164_MAX: usize = 15;

/// Longest sender taken for a short code when the profile's shortcode rule
/// gives no maximum (OVH's seed: 3 to 8 digits).
const SHORTCODE_MAX: usize = 8;

/// Rewrites `submit` for the upstream `profile` describes. `reference`
/// ties the parts if Tern splits the text (the caller keeps it unique per
/// destination); `now_unix_ms` is the instant relative and absolute times
/// are converted at.
pub fn adapt(
    submit: &SubmitSm,
    profile: &Profile,
    client: &ClientText,
    reference: u16,
    now_unix_ms: i64,
) -> Result<Adapted, AdaptError> {
    adapt_over(
        submit,
        profile,
        Link::default(),
        client,
        reference,
        now_unix_ms,
    )
}

/// [`adapt`] for one upstream's sessions as they are bound (`link`): no
/// TLVs where they do not reach the vendor, and flash messages only over
/// a flash session where the vendor makes them flash by system_type.
pub fn adapt_over(
    submit: &SubmitSm,
    profile: &Profile,
    link: Link,
    client: &ClientText,
    reference: u16,
    now_unix_ms: i64,
) -> Result<Adapted, AdaptError> {
    // Faults of the message itself first, then this upstream's refusals.
    let destination =
        adapt_destination(&submit.destination, profile.addresses.destination.as_ref())?;
    let schedule = adapt_time(
        &submit.schedule_delivery_time,
        &profile.times.schedule,
        TimeParam::Schedule,
        now_unix_ms,
    )?;
    let validity = adapt_time(
        &submit.validity_period,
        &profile.times.validity,
        TimeParam::Validity,
        now_unix_ms,
    )?;
    // A vendor that makes messages flash by the bind's system_type: flash
    // messages go over its flash sessions only, written as normal ones.
    let flash = is_flash(submit.data_coding.0);
    let unclassed;
    let mut submit = submit;
    if let Some(system_type) = &profile.system_type.flash {
        let data_coding = submit.data_coding.0;
        match (flash, link.flash) {
            (true, false) => {
                return Err(AdaptError::FlashNeedsSession {
                    data_coding,
                    system_type: system_type.clone(),
                })
            }
            (false, true) => {
                return Err(AdaptError::NotFlash {
                    data_coding,
                    system_type: system_type.clone(),
                })
            }
            (true, true) => {
                unclassed = SubmitSm {
                    data_coding: DataCoding(without_class(data_coding)),
                    ..submit.clone()
                };
                submit = &unclassed;
            }
            (false, false) => {}
        }
    }
    let one_part = profile.system_type.flash.is_some() && flash;
    let content = read_content(submit, client)?;
    let source = adapt_source(&submit.source, &profile.addresses)?;

    let mut base = submit.clone();
    base.source = source;
    base.destination = destination;
    base.schedule_delivery_time = schedule;
    base.validity_period = validity;
    base.esm_class = base.esm_class.with_udhi(false);
    base.short_message = ShortMessage::default();
    let mut upstream = Upstream::new(profile, link);
    if one_part {
        upstream.method = LongMethod::None;
    }
    if upstream.tlvs {
        for tag in [
            tags::MESSAGE_PAYLOAD,
            tags::SAR_MSG_REF_NUM,
            tags::SAR_TOTAL_SEGMENTS,
            tags::SAR_SEGMENT_SEQNUM,
            TERN_CALLBACK_TAG,
        ] {
            base.tlvs.remove(tag);
        }
    } else {
        base.tlvs.clear();
    }

    let adapted = match content {
        Content::Text {
            text,
            wide,
            sar: None,
        } => upstream.whole_text(base, &text, wide, reference),
        Content::Text {
            text,
            wide,
            sar: Some(sar),
        } => upstream.client_sar_part(base, &text, wide, sar),
        Content::ClientUdh {
            data_coding,
            encoding,
            data,
        } => upstream.client_udh_part(base, data_coding, encoding, data),
        Content::Opaque {
            data_coding,
            data,
            sar,
        } => upstream.opaque(base, data_coding, data, sar, reference),
    };
    match adapted {
        Err(AdaptError::TooManyParts { parts, .. }) if one_part => {
            Err(AdaptError::LongFlash { parts })
        }
        other => other,
    }
}

/// The client's message, read.
enum Content<'a> {
    /// Text in a coding Tern knows; `sar` when the client split it with SAR
    /// TLVs and this is one part.
    Text {
        text: String,
        wide: bool,
        sar: Option<Sar>,
    },
    /// A part the client split itself, UDH first: sent as it is.
    ClientUdh {
        data_coding: u8,
        encoding: Option<Encoding>,
        data: &'a [u8],
    },
    /// Binary or a coding Tern does not transcode: sent as it is; `sar`
    /// as for text.
    Opaque {
        data_coding: u8,
        data: &'a [u8],
        sar: Option<Sar>,
    },
}

/// The `text:` of a client's receipt: the first 20 characters of what it
/// sent (SMPP 3.4 Appendix B), read in its data_coding after any UDH, with
/// anything outside printable ASCII as `?`, since the receipt's own text is
/// read as ASCII by every client library. Binary messages give "".
pub fn receipt_text(submit: &SubmitSm, client: &ClientText) -> String {
    let mut data = submit.text_octets();
    if submit.esm_class.udhi() {
        match Udh::parse(data) {
            Ok((_, rest)) => data = rest,
            Err(_) => return String::new(),
        }
    }
    let Some(encoding) = client_encoding(submit.data_coding.0, client) else {
        return String::new();
    };
    let Ok(text) = tern_codec::text::decode(data, encoding) else {
        return String::new();
    };
    text.chars()
        .take(20)
        .map(|c| {
            if c.is_ascii_graphic() || c == ' ' {
                c
            } else {
                '?'
            }
        })
        .collect()
}

fn client_encoding(data_coding: u8, client: &ClientText) -> Option<Encoding> {
    match data_coding {
        0x00 => Some(client.default_alphabet),
        0x01 => Some(Encoding::Ia5),
        0x03 => Some(Encoding::Latin1),
        0x08 => Some(Encoding::Ucs2),
        _ => None,
    }
}

fn read_content<'a>(submit: &'a SubmitSm, client: &ClientText) -> Result<Content<'a>, AdaptError> {
    let data_coding = submit.data_coding.0;
    let data = submit.text_octets();
    let encoding = client_encoding(data_coding, client);
    if submit.esm_class.udhi() {
        Udh::parse(data).map_err(AdaptError::BadUdh)?;
        return Ok(Content::ClientUdh {
            data_coding,
            encoding,
            data,
        });
    }
    let sar = submit.tlvs.sar();
    if let Some(sar) = sar {
        if sar.total == 0 || sar.sequence == 0 || sar.sequence > sar.total {
            return Err(AdaptError::BadSar(sar));
        }
    }
    let Some(encoding) = encoding else {
        return Ok(Content::Opaque {
            data_coding,
            data,
            sar: sar.filter(|sar| sar.total > 1),
        });
    };
    let text = text::decode(data, encoding).map_err(|source| AdaptError::Undecodable {
        data_coding,
        source,
    })?;
    Ok(Content::Text {
        text,
        wide: encoding == Encoding::Ucs2,
        // Part 1 of 1 is a whole message.
        sar: sar.filter(|sar| sar.total > 1),
    })
}

/// The profile's facts the text and segmentation need, resolved once.
struct Upstream<'p> {
    profile: &'p Profile,
    /// Accepted `data_coding` values Tern can write text in, with their coding.
    codings: Vec<(u8, Encoding)>,
    policy: Unrepresentable,
    /// Whether the upstream speaks a version with TLVs.
    tlvs: bool,
    /// Longest short_message, octets.
    short_message_max: usize,
    /// Longest message_payload, octets.
    payload_max: usize,
    /// Most parts of one message.
    max_parts: usize,
    method: LongMethod,
}

/// The coding a vendor's `data_coding` stands for, for text.
fn vendor_encoding(data_coding: u8, coding: &Coding) -> Option<Encoding> {
    match data_coding {
        0x00 => Some(match (coding.default_alphabet, coding.gsm7_carriage) {
            (Alphabet::Gsm7, Carriage::Packed) => Encoding::Gsm7Packed,
            (Alphabet::Gsm7, Carriage::Unpacked) => Encoding::Gsm7Unpacked,
            (Alphabet::Ia5, _) => Encoding::Ia5,
            (Alphabet::Latin1, _) => Encoding::Latin1,
        }),
        0x01 => Some(Encoding::Ia5),
        0x03 => Some(Encoding::Latin1),
        0x08 => Some(Encoding::Ucs2),
        _ => None,
    }
}

/// Tie-break between codings that need as many parts: GSM, IA5, Latin-1, UCS-2.
fn preference(encoding: Encoding) -> u8 {
    match encoding {
        Encoding::Gsm7Unpacked | Encoding::Gsm7Packed => 0,
        Encoding::Ia5 => 1,
        Encoding::Latin1 => 2,
        Encoding::Ucs2 => 3,
    }
}

fn to_usize(value: Option<u32>, default: usize) -> usize {
    value.map_or(default, |v| usize::try_from(v).unwrap_or(usize::MAX))
}

impl<'p> Upstream<'p> {
    fn new(profile: &'p Profile, link: Link) -> Self {
        let coding = &profile.coding;
        let mut codings: Vec<(u8, Encoding)> = Vec::new();
        for &dc in &coding.accepted {
            if let Some(encoding) = vendor_encoding(dc, coding) {
                if !codings.iter().any(|(_, e)| *e == encoding) {
                    codings.push((dc, encoding));
                }
            }
        }
        // IA5 reaches the handset as GSM 7-bit, so it is never really
        // cheaper, and vendors that take both document data_coding 1 as
        // GSM 7-bit too (Mensatek, Infobip): with GSM available, no IA5.
        if codings.iter().any(|(_, e)| e.is_gsm7()) {
            codings.retain(|(_, e)| *e != Encoding::Ia5);
        }
        let method = profile.long_messages.method;
        Self {
            profile,
            codings,
            policy: match coding.unrepresentable {
                OnUnrepresentable::Replace => Unrepresentable::Replace,
                OnUnrepresentable::Error => Unrepresentable::Error,
            },
            tlvs: link.tlvs && profile.versions.iter().any(|v| v.takes_tlvs()),
            short_message_max: to_usize(profile.limits.short_message_max, ShortMessage::MAX)
                .min(ShortMessage::MAX),
            payload_max: to_usize(profile.limits.message_payload_max, usize::from(u16::MAX))
                .min(usize::from(u16::MAX)),
            max_parts: to_usize(profile.long_messages.max_parts, 255).min(255),
            method,
        }
    }

    /// How Tern ties the parts it makes, or `None` when it does not split
    /// ("payload": the vendor splits; "none"). SAR and payload need TLVs:
    /// where they do not reach the vendor (a 3.3-only upstream, a session
    /// whose bind response announced no version) Tern makes UDH parts
    /// instead, the one form SMPP 3.3 can carry.
    fn splits(&self) -> Option<Concat> {
        match self.method {
            LongMethod::Udh => Some(Concat::Udh8),
            LongMethod::Udh16 => Some(Concat::Udh16),
            LongMethod::Sar if self.tlvs => Some(Concat::Sar),
            LongMethod::Sar | LongMethod::Payload if !self.tlvs => Some(Concat::Udh8),
            LongMethod::Sar | LongMethod::Payload | LongMethod::None => None,
        }
    }

    /// How parts are counted: as Tern ties them, else as 8-bit UDH parts
    /// (what a vendor splitting a payload makes).
    fn concat(&self) -> Concat {
        self.splits().unwrap_or(Concat::Udh8)
    }

    fn accepted(&self) -> Vec<u8> {
        self.profile.coding.accepted.clone()
    }

    fn data_coding(&self, encoding: Encoding) -> u8 {
        self.codings
            .iter()
            .find(|(_, e)| *e == encoding)
            .map_or(encoding.data_coding(), |(dc, _)| *dc)
    }

    /// The coding to send `text` in, and whether characters are replaced.
    ///
    /// The cheapest accepted coding that carries the text exactly, unless
    /// only UCS-2 does, the client wrote in a one-octet alphabet and the
    /// profile says the vendor replaces what its alphabet lacks: then the
    /// cheapest one-octet coding where every missing character has a real
    /// replacement (ó→o, not '?'). A UCS-2 client keeps Unicode when the
    /// upstream takes it.
    fn choose(
        &self,
        text: &str,
        wide: bool,
        concat: Concat,
    ) -> Result<(Encoding, Unrepresentable), AdaptError> {
        let all: Vec<Encoding> = self.codings.iter().map(|(_, e)| *e).collect();
        let exact = text::cheapest_encoding(text, &all, concat);
        if let Some(encoding) = exact.filter(|e| *e != Encoding::Ucs2) {
            return Ok((encoding, Unrepresentable::Error));
        }
        if self.policy == Unrepresentable::Replace && (exact.is_none() || !wide) {
            let replaced = all
                .iter()
                .enumerate()
                .filter(|(_, e)| **e != Encoding::Ucs2 && replaces_sensibly(text, **e))
                .filter_map(|(index, &e)| {
                    let parts = text::segments_with(text, e, concat, Unrepresentable::Replace);
                    Some(((parts.ok()?, preference(e), index), e))
                })
                .min_by_key(|(key, _)| *key);
            if let Some((_, encoding)) = replaced {
                return Ok((encoding, Unrepresentable::Replace));
            }
        }
        exact
            .map(|e| (e, Unrepresentable::Error))
            .ok_or_else(|| AdaptError::NoCoding {
                accepted: self.accepted(),
                missing: text.chars().find(|&c| !all.iter().any(|e| e.represents(c))),
            })
    }

    /// A text Tern may split.
    fn whole_text(
        &self,
        mut base: SubmitSm,
        text: &str,
        wide: bool,
        reference: u16,
    ) -> Result<Adapted, AdaptError> {
        let concat = self.concat();
        let (encoding, policy) = self.choose(text, wide, concat)?;
        base.data_coding = DataCoding(self.data_coding(encoding));
        let (whole, count) = text::encode_counting(text, encoding, concat, policy)
            .map_err(|e| self.text_error(e))?;
        if count == 1 && whole.len() <= self.short_message_max {
            return Ok(Adapted {
                parts: vec![self.with_short_message(base, &whole)?],
                reference: None,
            });
        }
        if self.splits().is_some() {
            self.check_parts(count)?;
            let parts = text::split(text, encoding, concat, reference, policy)
                .map_err(|e| self.text_error(e))?;
            let mut out = Vec::with_capacity(parts.len());
            for part in &parts {
                let mut sm = base.clone();
                sm.esm_class = sm.esm_class.with_udhi(part.udhi());
                if let Some(sar) = part.sar {
                    sm.tlvs.set_sar(Sar {
                        reference: sar.reference,
                        total: sar.total,
                        sequence: sar.sequence,
                    });
                }
                out.push(self.with_short_message(sm, &part.short_message())?);
            }
            let reference = match concat {
                Concat::Udh8 => reference & 0xFF,
                Concat::Udh16 | Concat::Sar => reference,
            };
            Ok(Adapted {
                reference: (out.len() > 1).then_some(reference),
                parts: out,
            })
        } else if self.method == LongMethod::Payload && self.tlvs {
            self.check_parts(count)?;
            self.payload(base, &whole)
        } else {
            // No long messages: "none", or a payload on a 3.3-only upstream.
            Err(AdaptError::TooManyParts {
                parts: count,
                max: 1,
            })
        }
    }

    /// One part of a text the client split with SAR TLVs: re-coded, and
    /// tied the way the upstream ties parts.
    fn client_sar_part(
        &self,
        mut base: SubmitSm,
        text: &str,
        wide: bool,
        sar: Sar,
    ) -> Result<Adapted, AdaptError> {
        let concat = self.concat();
        let (encoding, policy) = self.choose(text, wide, concat)?;
        base.data_coding = DataCoding(self.data_coding(encoding));
        let units = text::unit_count(text, encoding, policy).map_err(|e| self.text_error(e))?;
        if units > encoding.max_part(concat) {
            return Err(AdaptError::TooLong {
                field: "user data on the air",
                octets: concat.air_udh_len() + (units * encoding.unit_bits()).div_ceil(8),
                max: AIR_OCTETS,
            });
        }
        self.tie_client_part(base, sar, |udh_len| {
            if encoding == Encoding::Gsm7Packed {
                let fill = if udh_len == 0 {
                    0
                } else {
                    text::fill_bits_for_udh(udh_len)
                };
                text::encode_packed(text, fill, policy)
            } else {
                text::encode(text, encoding, policy)
            }
            .map(|octets| octets.to_vec())
            .map_err(|e| self.text_error(e))
        })
    }

    /// A part the client tied with SAR TLVs, its user data made by `body`
    /// given the length of the UDH before it (0 when none): with SAR TLVs
    /// where the upstream takes them, else with a UDH holding the same
    /// numbers.
    fn tie_client_part(
        &self,
        mut base: SubmitSm,
        sar: Sar,
        body: impl Fn(usize) -> Result<Vec<u8>, AdaptError>,
    ) -> Result<Adapted, AdaptError> {
        let total = usize::from(sar.total);
        if self.method == LongMethod::None {
            return Err(AdaptError::TooManyParts {
                parts: total,
                max: 1,
            });
        }
        self.check_parts(total)?;
        let concat = self.concat();
        if concat == Concat::Sar {
            base.tlvs.set_sar(sar);
            return Ok(Adapted {
                parts: vec![self.with_short_message(base, &body(0)?)?],
                reference: Some(sar.reference),
            });
        }
        let (udh, reference) = if concat == Concat::Udh16 {
            (
                Udh::concat16(sar.reference, sar.total, sar.sequence),
                sar.reference,
            )
        } else {
            let low = sar.reference.to_be_bytes()[1];
            (Udh::concat8(low, sar.total, sar.sequence), u16::from(low))
        };
        let mut short_message = udh.encode().map_err(|e| self.text_error(e))?.to_vec();
        short_message.extend_from_slice(&body(short_message.len())?);
        base.esm_class = base.esm_class.with_udhi(true);
        Ok(Adapted {
            parts: vec![self.with_short_message(base, &short_message)?],
            reference: Some(reference),
        })
    }

    /// A part the client split with a UDH: sent as it is, if the upstream
    /// reads its data_coding the way the client meant it.
    fn client_udh_part(
        &self,
        mut base: SubmitSm,
        data_coding: u8,
        encoding: Option<Encoding>,
        data: &[u8],
    ) -> Result<Adapted, AdaptError> {
        let same_meaning = match encoding {
            Some(e) => vendor_encoding(data_coding, &self.profile.coding) == Some(e),
            None => true,
        };
        if !self.profile.coding.accepted.contains(&data_coding) || !same_meaning {
            return Err(AdaptError::CodingRefused {
                data_coding,
                accepted: self.accepted(),
            });
        }
        // Parsed once already by `read_content`; only the numbers are read here.
        let concat = Udh::parse(data)
            .and_then(|(udh, _)| udh.concat())
            .map_err(AdaptError::BadUdh)?;
        if let Some(info) = concat {
            let max = if self.method == LongMethod::None {
                1
            } else {
                self.max_parts
            };
            if usize::from(info.total) > max {
                return Err(AdaptError::TooManyParts {
                    parts: info.total.into(),
                    max,
                });
            }
        }
        base.esm_class = base.esm_class.with_udhi(true);
        Ok(Adapted {
            parts: vec![self.with_short_message(base, data)?],
            reference: concat.map(|info| info.reference),
        })
    }

    /// Binary data or a coding Tern does not transcode: sent as it is,
    /// split by octets if it does not fit one message.
    fn opaque(
        &self,
        base: SubmitSm,
        data_coding: u8,
        data: &[u8],
        sar: Option<Sar>,
        reference: u16,
    ) -> Result<Adapted, AdaptError> {
        if !self.profile.coding.accepted.contains(&data_coding) {
            return Err(AdaptError::CodingRefused {
                data_coding,
                accepted: self.accepted(),
            });
        }
        if let Some(sar) = sar {
            let octets = self.concat().air_udh_len() + data.len();
            if octets > AIR_OCTETS {
                return Err(AdaptError::TooLong {
                    field: "user data on the air",
                    octets,
                    max: AIR_OCTETS,
                });
            }
            return self.tie_client_part(base, sar, |_| Ok(data.to_vec()));
        }
        if data.len() <= AIR_OCTETS.min(self.short_message_max) {
            return Ok(Adapted {
                parts: vec![self.with_short_message(base, data)?],
                reference: None,
            });
        }
        let concat = self.concat();
        let room = AIR_OCTETS - concat.air_udh_len();
        let count = data.len().div_ceil(room);
        if self.splits().is_some() {
            self.check_parts(count)?;
            let total = u8::try_from(count).map_err(|_| AdaptError::TooManyParts {
                parts: count,
                max: 255,
            })?;
            let mut out = Vec::with_capacity(count);
            for (sequence, chunk) in (1..=total).zip(data.chunks(room)) {
                let mut sm = base.clone();
                let short_message = match concat {
                    Concat::Sar => {
                        sm.tlvs.set_sar(Sar {
                            reference,
                            total,
                            sequence,
                        });
                        chunk.to_vec()
                    }
                    Concat::Udh8 | Concat::Udh16 => {
                        let udh = if concat == Concat::Udh8 {
                            Udh::concat8(reference.to_be_bytes()[1], total, sequence)
                        } else {
                            Udh::concat16(reference, total, sequence)
                        };
                        let mut octets = udh.encode().map_err(|e| self.text_error(e))?.to_vec();
                        octets.extend_from_slice(chunk);
                        sm.esm_class = sm.esm_class.with_udhi(true);
                        octets
                    }
                };
                out.push(self.with_short_message(sm, &short_message)?);
            }
            Ok(Adapted {
                parts: out,
                reference: Some(if concat == Concat::Udh8 {
                    reference & 0xFF
                } else {
                    reference
                }),
            })
        } else if self.method == LongMethod::Payload && self.tlvs {
            self.check_parts(count)?;
            self.payload(base, data)
        } else {
            Err(AdaptError::TooManyParts {
                parts: count,
                max: 1,
            })
        }
    }

    fn check_parts(&self, parts: usize) -> Result<(), AdaptError> {
        if parts > self.max_parts {
            return Err(AdaptError::TooManyParts {
                parts,
                max: self.max_parts,
            });
        }
        Ok(())
    }

    /// The whole message in `message_payload`, `sm_length` 0.
    fn payload(&self, mut base: SubmitSm, octets: &[u8]) -> Result<Adapted, AdaptError> {
        let too_long = AdaptError::TooLong {
            field: "message_payload",
            octets: octets.len(),
            max: self.payload_max,
        };
        if octets.len() > self.payload_max {
            return Err(too_long);
        }
        let tlv = Tlv::message_payload(octets.to_vec()).map_err(|_| too_long)?;
        base.short_message = ShortMessage::default();
        base.tlvs.push(tlv);
        Ok(Adapted {
            parts: vec![base],
            reference: None,
        })
    }

    fn with_short_message(&self, mut sm: SubmitSm, octets: &[u8]) -> Result<SubmitSm, AdaptError> {
        let too_long = || AdaptError::TooLong {
            field: "short_message",
            octets: octets.len(),
            max: self.short_message_max,
        };
        if octets.len() > self.short_message_max {
            return Err(too_long());
        }
        sm.short_message = ShortMessage::new(octets.to_vec()).map_err(|_| too_long())?;
        Ok(sm)
    }

    /// A text error after the coding was chosen: cannot happen short of a
    /// text needing more than 255 parts, but is mapped rather than unwrapped.
    fn text_error(&self, error: TextError) -> AdaptError {
        match error {
            TextError::TooManyParts { parts } => AdaptError::TooManyParts { parts, max: 255 },
            TextError::Unrepresentable { ch, .. } => AdaptError::NoCoding {
                accepted: self.accepted(),
                missing: Some(ch),
            },
            _ => AdaptError::NoCoding {
                accepted: self.accepted(),
                missing: None,
            },
        }
    }
}

/// Whether every character of `text` that `encoding` lacks has a real
/// replacement in it (a similar letter or sign), not the last-resort '?'.
fn replaces_sensibly(text: &str, encoding: Encoding) -> bool {
    let probe = if encoding.is_gsm7() {
        Encoding::Gsm7Unpacked
    } else {
        encoding
    };
    text.chars().filter(|&c| !probe.represents(c)).all(|c| {
        let mut buffer = [0u8; 4];
        text::encode(c.encode_utf8(&mut buffer), probe, Unrepresentable::Replace)
            .ok()
            .and_then(|octets| text::decode(&octets, probe).ok())
            .is_some_and(|replaced| replaced != "?")
    })
}

/// Kinds of sender.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum SenderKind {
    Alphanumeric,
    Shortcode,
    International,
}

/// A number with its international prefix ('+' or "00") taken off, and
/// whether there was one.
fn strip_international(addr: &str) -> (&str, bool) {
    if let Some(rest) = addr.strip_prefix('+') {
        (rest, true)
    } else if let Some(rest) = addr.strip_prefix("00") {
        (rest, true)
    } else {
        (addr, false)
    }
}

fn lossy(octets: &[u8]) -> String {
    String::from_utf8_lossy(octets).into_owned()
}

fn check_length(len: usize, rule: &AddressRule) -> Result<(), AddressProblem> {
    let min = to_usize(rule.min_len, 0);
    let max = to_usize(rule.max_len, usize::MAX);
    if len < min {
        return Err(AddressProblem::TooShort { len, min });
    }
    if len > max {
        return Err(AddressProblem::TooLong { len, max });
    }
    Ok(())
}

/// Alphanumeric if it is not a number (an optional '+' then digits), a
/// short code if a number no longer than the profile's short codes, else an
/// international number.
fn classify(addr: &str, shortcode: Option<&AddressRule>) -> SenderKind {
    let digits = addr.strip_prefix('+').unwrap_or(addr);
    if digits.is_empty() || !digits.bytes().all(|b| b.is_ascii_digit()) {
        return SenderKind::Alphanumeric;
    }
    if addr.starts_with('+') || addr.starts_with("00") {
        return SenderKind::International;
    }
    match shortcode {
        Some(rule) if addr.len() <= to_usize(rule.max_len, SHORTCODE_MAX) => SenderKind::Shortcode,
        _ => SenderKind::International,
    }
}

/// The sender by the profile's rule for its kind; as the client sent it
/// when there is no rule (or no sender: the upstream's default applies).
fn adapt_source(source: &Address<21>, rules: &Addresses) -> Result<Address<21>, AdaptError> {
    let raw = source.addr.as_bytes();
    let error = |problem| AdaptError::Source {
        addr: lossy(raw),
        problem,
    };
    if raw.is_empty() {
        return Ok(source.clone());
    }
    let addr = std::str::from_utf8(raw)
        .map_err(|_| error(AddressProblem::Character(char::REPLACEMENT_CHARACTER)))?;
    let kind = classify(addr, rules.shortcode.as_ref());
    let rule = match kind {
        SenderKind::Alphanumeric => rules.alphanumeric.as_ref(),
        SenderKind::Shortcode => rules.shortcode.as_ref(),
        SenderKind::International => rules.international.as_ref(),
    };
    let Some(rule) = rule else {
        return Ok(source.clone());
    };
    let (out, prefixed) = match kind {
        SenderKind::Alphanumeric => {
            let allowed = |c: char| c.is_ascii_alphanumeric() || rule.extra_chars.contains(c);
            if let Some(c) = addr.chars().find(|&c| !allowed(c)) {
                return Err(error(AddressProblem::Character(c)));
            }
            check_length(addr.chars().count(), rule).map_err(error)?;
            (addr.to_owned(), false)
        }
        SenderKind::Shortcode => {
            check_length(addr.len(), rule).map_err(error)?;
            (addr.to_owned(), false)
        }
        SenderKind::International => {
            let (digits, prefixed) = strip_international(addr);
            if let Some(c) = digits.chars().find(|c| !c.is_ascii_digit()) {
                return Err(error(AddressProblem::NotDigit(c)));
            }
            check_length(digits.len(), rule).map_err(error)?;
            let out = if rule.plus {
                addr.to_owned()
            } else {
                digits.to_owned()
            };
            (out, prefixed)
        }
    };
    let addr = COctetString::try_from(out).map_err(|_| {
        error(AddressProblem::TooLong {
            len: raw.len(),
            max: 20,
        })
    })?;
    Ok(Address::new(
        pick_ton(rule, source.ton, prefixed),
        pick_npi(rule, source.npi, prefixed),
        addr,
    ))
}

/// The rule's TON; else international when Tern took an international
/// prefix off (the digits alone no longer say so); else the client's.
fn pick_ton(rule: &AddressRule, client: Ton, prefixed: bool) -> Ton {
    match rule.ton {
        Some(ton) => Ton(ton),
        None if prefixed => Ton::INTERNATIONAL,
        None => client,
    }
}

/// As [`pick_ton`], for the numbering plan (ISDN/E.164 for international).
fn pick_npi(rule: &AddressRule, client: Npi, prefixed: bool) -> Npi {
    match rule.npi {
        Some(npi) => Npi(npi),
        None if prefixed => Npi::ISDN,
        None => client,
    }
}

/// Whether a destination is a number at all, whatever upstream carries it:
/// the check every message's destination meets before it is sent (digits,
/// after an optional '+' or '00', at most 15 of them), without any vendor's
/// own length rule. Intake uses it where the client must be told at once
/// (a submit_multi's unsuccess_sme), rather than by a receipt.
pub fn check_destination(destination: &Address<21>) -> Result<(), AdaptError> {
    adapt_destination(destination, None).map(|_| ())
}

/// The destination as digits (international prefix taken off unless the
/// rule keeps '+'), with the rule's TON/NPI.
fn adapt_destination(
    destination: &Address<21>,
    rule: Option<&AddressRule>,
) -> Result<Address<21>, AdaptError> {
    let raw = destination.addr.as_bytes();
    let error = |problem| AdaptError::Destination {
        addr: lossy(raw),
        problem,
    };
    let addr = std::str::from_utf8(raw)
        .map_err(|_| error(AddressProblem::NotDigit(char::REPLACEMENT_CHARACTER)))?;
    let (digits, prefixed) = strip_international(addr);
    if digits.is_empty() {
        return Err(error(AddressProblem::Empty));
    }
    if let Some(c) = digits.chars().find(|c| !c.is_ascii_digit()) {
        return Err(error(AddressProblem::NotDigit(c)));
    }
    if digits.len() > E164_MAX {
        return Err(error(AddressProblem::NotE164(digits.len())));
    }
    let default = AddressRule::default();
    let rule = rule.unwrap_or(&default);
    check_length(digits.len(), rule).map_err(error)?;
    let out = if rule.plus && prefixed {
        format!("+{digits}")
    } else {
        digits.to_owned()
    };
    let addr =
        COctetString::try_from(out).map_err(|_| error(AddressProblem::NotE164(digits.len())))?;
    Ok(Address::new(
        pick_ton(rule, destination.ton, prefixed),
        pick_npi(rule, destination.npi, prefixed),
        addr,
    ))
}

/// A time in the form the upstream takes: "relative" turns an absolute
/// time into a span from `now` (a schedule already past becomes "now", a
/// validity already past is refused); "absolute" turns a span into a UTC
/// time; "both" keeps it. Every non-empty time must parse.
fn adapt_time(
    value: &TimeString,
    format: &TimeForm,
    param: TimeParam,
    now_unix_ms: i64,
) -> Result<TimeString, AdaptError> {
    let Some(parsed) = value.parse() else {
        return Ok(TimeString::empty());
    };
    let error = |source| AdaptError::Time {
        param,
        value: value.as_bytes().escape_ascii().to_string(),
        source,
    };
    let converted = match (format, parsed.map_err(error)?) {
        (TimeForm::Relative, SmppTime::Absolute(time)) => match time.to_relative(now_unix_ms) {
            Ok(span) => SmppTime::Relative(span),
            Err(TimeError::InPast { .. }) if param == TimeParam::Schedule => {
                return Ok(TimeString::empty())
            }
            Err(e) => return Err(error(e)),
        },
        (TimeForm::Absolute, SmppTime::Relative(span)) => SmppTime::Absolute(
            span.to_absolute(now_unix_ms, UtcOffset::UTC)
                .map_err(error)?,
        ),
        _ => return Ok(value.clone()),
    };
    TimeString::new(converted.to_bytes().to_vec()).map_err(|_| {
        error(TimeError::Unrepresentable {
            unix_ms: now_unix_ms,
        })
    })
}
