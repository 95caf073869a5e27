//! Receipts end to end, vendor by vendor: the real `tern` binary between a
//! client and SMSCs in this test process that behave as each vendor's seed
//! says (message id form, receipt text layout, `err` radix, TLVs).
//!
//! Each upstream runs with its vendor's profile. For every row of the
//! vendor's code table (and every `stat` it lists) the client submits one
//! message, the SMSC answers with an id in the vendor's form and sends the
//! receipt the row describes, and the client must get a receipt with Tern's
//! id (text `id:` and `receipted_message_id`), the canonical `stat:` and
//! three-digit `err:`, `message_state`, `network_error_code` for GSM MAP
//! reasons only, and the vendor's own code in TLV 0x1520.
//!
//! The expected values are written from the seeds (shared/seeds/), mapped
//! per DESIGN.md "Errors" — not read from the profiles — so a profile that
//! drifts from its seed fails here.
//!
//! Intermediate states (ENROUTE, ACCEPTD, "pending") reach a client only
//! if its registered_delivery asked for them (bit 4): every such row is
//! submitted twice, with and without, and the SMSC follows the intermediate
//! receipt with a final DELIVRD one.
//!
//! Messages Tern splits: one receipt for the client's one id once every
//! part is final, the worst part's outcome; or one per part for an account
//! with `receipts_per_part`.

use tern_testkit as common;

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use bytes::Bytes;
use common::{
    accept_submit, ack, bare_smsc, client, next_submit, submit_id, Admin, BareSmsc, Daemon,
};
use tern_codec::pdu::{DeliverSm, SubmitSm};
use tern_codec::receipt::ReceiptDate;
use tern_codec::tlv::NetworkErrorCode;
use tern_codec::{
    Body, CommandStatus, EsmClass, MessageState, RegisteredDelivery, ShortMessage, Tlv,
};
use tern_session::esme;
use tern_session::smsc::SmscConfig;
use tern_session::SessionHandle;

/// Tag of the TLV carrying the vendor's own code in client receipts.
const VENDOR_CODE_TLV: u16 = 0x1520;

/// Telesign's receipt TLVs (seed 003, "Tagged length values"):
/// mobile_country_code, mobile_network_code, price ("Example: 0.0075 USD").
const TELESIGN_TLVS: [(u16, &[u8]); 3] =
    [(0x0410, b"214"), (0x0411, b"07"), (0x0412, b"0.0075 USD")];

/// The service_type Tern's Telesign upstream is configured to send: the
/// data centre its receipts must come back to.
const DATA_CENTRE: &str = "dc-eu";

// ---------------------------------------------------------------------
// The vendors, as their seeds describe their receipts.
// ---------------------------------------------------------------------

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
enum Vendor {
    /// seeds/000 (Spanish): `dlvr`, decimal err, text only.
    Mensatek,
    /// seeds/002: standard text with the PTT code, `receipted_message_id`,
    /// its own 0x1401 outgoing_id.
    Ovh,
    /// seeds/003: text with a hex err and the TLVs `receipted_message_id`,
    /// `message_state`, `network_error_code`; 32-hex ids.
    Telesign,
    /// seeds/004: `dlvrld`, its own stat spellings.
    Infobip,
    /// seeds/001 (Russian): `dlvrd`, `err:E`, `Text:`, 10-character ids.
    Seed001,
    /// SMPP 3.4 Appendix B, for an SMSC Tern knows nothing more about.
    Generic,
}

impl Vendor {
    const ALL: [Vendor; 6] = [
        Vendor::Mensatek,
        Vendor::Ovh,
        Vendor::Telesign,
        Vendor::Infobip,
        Vendor::Seed001,
        Vendor::Generic,
    ];

    /// The profile name, also the upstream's name in the config.
    fn name(self) -> &'static str {
        match self {
            Vendor::Mensatek => "mensatek",
            Vendor::Ovh => "ovh",
            Vendor::Telesign => "telesign",
            Vendor::Infobip => "infobip",
            Vendor::Seed001 => "seed001",
            Vendor::Generic => "generic",
        }
    }

    /// The destination prefix routed to this vendor.
    fn prefix(self) -> &'static str {
        match self {
            Vendor::Mensatek => "3461",
            Vendor::Ovh => "3362",
            Vendor::Telesign => "1555",
            Vendor::Infobip => "4219",
            Vendor::Seed001 => "7916",
            Vendor::Generic => "4420",
        }
    }

    /// The n-th message id, in the vendor's form.
    fn id(self, n: u64) -> String {
        match self {
            // Not stated in the seed: decimal, as most SMSCs.
            Vendor::Mensatek => (700_000 + n).to_string(),
            // "OVHcloud internal ID": opaque.
            Vendor::Ovh => format!("5e0c7a1f-{n:04x}-4b2d-9c3e-00000000a{n:03x}"),
            // "a 32-digit hex value ... randomly generated".
            Vendor::Telesign => format!(
                "{:016x}{:016x}",
                0x9f3b_27c4_51d0_e86au64,
                n.wrapping_mul(0x9E37_79B9_7F4A_7C15)
            ),
            Vendor::Infobip => (2_000_000_000_000 + n).to_string(),
            // "id:IIIIIIIIII": ten characters.
            Vendor::Seed001 => format!("{n:010}"),
            Vendor::Generic => (90_000 + n).to_string(),
        }
    }

    /// The receipt for `id` with `stat` and `err` (and, for Telesign, a
    /// `network_error_code`), in the vendor's layout.
    fn receipt(self, id: &str, row: &Row, submit: &SubmitSm, submitted_ms: i64) -> DeliverSm {
        let date = |ms| {
            ReceiptDate::from_unix_millis(ms, false)
                .expect("a date this century")
                .to_string()
        };
        let (submitted, done) = (date(submitted_ms), date(now_ms()));
        let delivered = if row.stat == "DELIVRD" { "001" } else { "000" };
        let preview: String = String::from_utf8_lossy(submit.text_octets())
            .chars()
            .take(20)
            .collect();
        // The layouts as the seeds print them, line breaks included (the
        // parser must not care where a vendor breaks its lines).
        let text = match self {
            Vendor::Mensatek => format!(
                "id:{id} sub:001 dlvr:{delivered} submit\ndate:{submitted} done date:{done}\nstat:{} err:{:03}",
                row.stat, row.err
            ),
            // SMPP 3.4 Appendix B's layout.
            Vendor::Ovh | Vendor::Generic => format!(
                "id:{id} sub:001 dlvrd:{delivered} submit date:{submitted} done date:{done} stat:{} err:{:03} text:{preview}",
                row.stat, row.err
            ),
            // The text's id in upper case: the TLV carries the id as given,
            // and case must not matter.
            Vendor::Telesign => format!(
                "id:{} sub:001 dlvrd:{delivered} submit date:{submitted} done date:{done} stat:{} err:{:03X} text:{preview}",
                id.to_ascii_uppercase(),
                row.stat,
                row.err
            ),
            Vendor::Infobip => format!(
                "id:{id} sub:001 dlvrld:{delivered}  \nsubmit date:{submitted} done date:{done}  \nstat:{} err:{:03}",
                row.stat, row.err
            ),
            Vendor::Seed001 => format!(
                "id:{id} sub:001 dlvrd:{delivered} submit date:{submitted} done date:{done}\nstat:{} err:{} Text:{preview}",
                row.stat, row.err
            ),
        };
        let mut sm = DeliverSm {
            source: submit.destination.clone(),
            destination: submit.source.clone(),
            esm_class: EsmClass::DELIVERY_RECEIPT,
            short_message: ShortMessage::new(text.into_bytes()).expect("fits"),
            ..DeliverSm::default()
        };
        match self {
            Vendor::Ovh => {
                sm.tlvs
                    .push(Tlv::receipted_message_id(id.as_bytes()).expect("short"));
                let mut outgoing = format!("ovh-{id}").into_bytes();
                outgoing.push(0);
                sm.tlvs.push(Tlv::Other {
                    tag: 0x1401,
                    value: Bytes::from(outgoing),
                });
            }
            Vendor::Telesign => {
                sm.tlvs
                    .push(Tlv::receipted_message_id(id.as_bytes()).expect("short"));
                sm.tlvs
                    .push(Tlv::MessageState(MessageState(message_state(row.stat))));
                sm.tlvs.push(Tlv::NetworkErrorCode(NetworkErrorCode {
                    network_type: NetworkErrorCode::GSM,
                    error_code: row.network.unwrap_or(0),
                }));
                // "Tagged length values": MCC, MNC and price in DLRs.
                for (tag, value) in TELESIGN_TLVS {
                    sm.tlvs.push(Tlv::Other {
                        tag,
                        value: Bytes::from_static(value),
                    });
                }
            }
            _ => {}
        }
        sm
    }

    /// `err` as the vendor writes it, for the vendor-code TLV.
    fn err_text(self, err: u32) -> String {
        match self {
            Vendor::Telesign => format!("{err:03X}"),
            Vendor::Seed001 => err.to_string(),
            _ => format!("{err:03}"),
        }
    }

    /// The final receipt that follows an intermediate one.
    fn delivered(self) -> Row {
        row("DELIVRD", 0, "DELIVRD", 0)
    }
}

/// Telesign's table: message_state value and stat (seed 003).
fn message_state(stat: &str) -> u8 {
    match stat {
        "DELIVRD" => 2,
        "EXPIRED" => 3,
        "DELETED" => 4,
        "UNDELIV" => 5,
        "ACCEPTD" => 6,
        "UNKNOWN" => 7,
        "REJECTD" => 8,
        "SKIPPED" => 9,
        "ENROUTE" => 1,
        other => panic!("no message_state for {other}"),
    }
}

fn now_ms() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as i64)
}

/// One receipt a vendor sends, and what the client must be told.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Row {
    /// The vendor's `stat`, as it spells it.
    stat: &'static str,
    /// The vendor's `err` code (written in its radix).
    err: u32,
    /// A GSM `network_error_code` (Telesign sends one with every receipt).
    network: Option<u16>,
    /// The canonical `stat` the client must get.
    want_stat: &'static str,
    /// The canonical three-digit `err`.
    want_err: u16,
}

const fn row(stat: &'static str, err: u32, want_stat: &'static str, want_err: u16) -> Row {
    Row {
        stat,
        err,
        network: None,
        want_stat,
        want_err,
    }
}

impl Row {
    fn intermediate(&self) -> bool {
        matches!(self.want_stat, "ENROUTE" | "ACCEPTD")
    }
}

/// Canonical codes (DESIGN.md "Errors"; crates/router/src/canonical.rs).
const NONE: u16 = 0;
const UNKNOWN_SUBSCRIBER: u16 = 1;
const CALL_BARRED: u16 = 13;
const ABSENT: u16 = 27;
const DELIVERY_FAILURE: u16 = 32;
const SYSTEM_FAILURE: u16 = 34;
const EXPIRED: u16 = 900;
const REJECTED: u16 = 901;
const BLACKLISTED: u16 = 902;
const CONTENT: u16 = 903;
const NO_CREDIT: u16 = 904;
const THROTTLED: u16 = 905;
const INVALID_DESTINATION: u16 = 906;
const NO_ROUTE: u16 = 907;
const SENDER: u16 = 908;
const INVALID_MESSAGE: u16 = 909;
const ACCOUNT: u16 = 910;
const UNKNOWN: u16 = 999;

/// Seed 000, §5 "Error (message_err)": every code, with the stat Mensatek
/// sends beside it (000 "en caso de entrega o en proceso"; waiting and
/// retrying codes are in process; the expired ones EXPIRED), then every
/// listed `stat` with err 000.
fn mensatek() -> Vec<Row> {
    vec![
        row("DELIVRD", 0, "DELIVRD", NONE),
        row("ENROUTE", 0, "ENROUTE", NONE), // Esperando entrega
        row("ENROUTE", 1, "ENROUTE", NONE), // Programado
        row("ENROUTE", 2, "ENROUTE", NONE), // Esperando entrega
        row("ENROUTE", 10, "ENROUTE", NONE),
        row("DELIVRD", 11, "DELIVRD", NONE), // Entregado al teléfono
        row("ENROUTE", 12, "ENROUTE", NONE),
        row("DELIVRD", 13, "DELIVRD", NONE),
        row("DELIVRD", 14, "DELIVRD", NONE), // Entregado y Certificado
        // Error Fatal: "Error Indeterminado en la Operadora".
        row("UNDELIV", 22, "UNDELIV", UNKNOWN),
        row("UNDELIV", 23, "UNDELIV", UNKNOWN),
        row("UNDELIV", 24, "UNDELIV", UNKNOWN),
        // Error Fatal: "Hay un problema en el envío de sus mensajes" (our account).
        row("UNDELIV", 25, "UNDELIV", ACCOUNT),
        row("UNDELIV", 26, "UNDELIV", ACCOUNT),
        row("UNDELIV", 27, "UNDELIV", ACCOUNT),
        row("UNDELIV", 28, "UNDELIV", ACCOUNT),
        // Mensaje Cancelado: a scheduled message cancelled, not an error.
        row("UNDELIV", 29, "DELETED", NONE),
        row("ENROUTE", 31, "ENROUTE", NONE),
        // La Red responde que el teléfono no existe.
        row("UNDELIV", 50, "UNDELIV", UNKNOWN_SUBSCRIBER),
        row("UNDELIV", 51, "UNDELIV", DELIVERY_FAILURE), // Falló la entrega al teléfono
        row("UNDELIV", 52, "UNDELIV", SYSTEM_FAILURE),   // Falló la entrega a la red
        row("EXPIRED", 53, "EXPIRED", ABSENT),
        row("UNDELIV", 54, "UNDELIV", BLACKLISTED), // Número en Lista Negra
        row("UNDELIV", 55, "UNDELIV", BLACKLISTED), // Número Bloqueado
        row("DELIVRD", 70, "DELIVRD", NONE),
        row("EXPIRED", 101, "EXPIRED", ABSENT),
        row("UNDELIV", 102, "UNDELIV", UNKNOWN_SUBSCRIBER), // Usuario dado de baja
        row("EXPIRED", 103, "EXPIRED", ABSENT),
        row("UNDELIV", 104, "UNDELIV", INVALID_DESTINATION), // El teléfono no es correcto
        row("DELIVRD", 106, "DELIVRD", NONE),
        row("UNDELIV", 110, "UNDELIV", UNKNOWN_SUBSCRIBER),
        row("UNDELIV", 111, "UNDELIV", UNKNOWN_SUBSCRIBER),
        row("UNDELIV", 112, "UNDELIV", UNKNOWN_SUBSCRIBER),
        row("EXPIRED", 113, "EXPIRED", ABSENT),
        // Fallo / congestión en el SMSC destino: "el mensaje se retiene",
        // "reintentando": still in process.
        row("ENROUTE", 120, "ENROUTE", SYSTEM_FAILURE),
        row("ENROUTE", 121, "ENROUTE", SYSTEM_FAILURE),
        row("ENROUTE", 122, "ENROUTE", SYSTEM_FAILURE),
        row("UNDELIV", 130, "UNDELIV", UNKNOWN_SUBSCRIBER),
        row("UNDELIV", 131, "UNDELIV", DELIVERY_FAILURE), // memoria llena
        row("UNDELIV", 132, "UNDELIV", DELIVERY_FAILURE),
        row("UNDELIV", 133, "UNDELIV", UNKNOWN_SUBSCRIBER),
        row("ENROUTE", 134, "ENROUTE", DELIVERY_FAILURE), // Reintentando...
        row("ENROUTE", 135, "ENROUTE", SYSTEM_FAILURE),   // Reintentando...
        row("UNDELIV", 136, "UNDELIV", UNKNOWN_SUBSCRIBER),
        row("UNDELIV", 137, "UNDELIV", UNKNOWN_SUBSCRIBER),
        row("UNDELIV", 140, "UNDELIV", NO_ROUTE), // Error de destino
        row("UNDELIV", 141, "UNDELIV", NO_ROUTE),
        row("UNDELIV", 150, "UNDELIV", NO_ROUTE), // red de destino cerrada
        row("REJECTD", 200, "REJECTD", REJECTED), // Rechazado por la operadora
        // A "still trying" code under a final stat: the message has ended
        // (a profile entry never makes a final receipt intermediate), with
        // the code's reason.
        row("UNDELIV", 120, "UNDELIV", SYSTEM_FAILURE),
        row("UNDELIV", 134, "UNDELIV", DELIVERY_FAILURE),
        // Every stat of §5 with err 000.
        row("EXPIRED", 0, "EXPIRED", EXPIRED),
        row("UNDELIV", 0, "UNDELIV", UNKNOWN),
        row("ACCEPTD", 0, "ACCEPTD", NONE),
        row("UNKNOWN", 0, "UNKNOWN", UNKNOWN),
        row("REJECTD", 0, "REJECTD", REJECTED),
    ]
}

/// Seed 002, "Acknowledgement Error Codes (DLR)": every PTT code.
fn ovh() -> Vec<Row> {
    vec![
        row("DELIVRD", 0, "DELIVRD", NONE),
        row("UNDELIV", 1, "UNDELIV", SYSTEM_FAILURE), // Internal Error
        row("UNDELIV", 2, "UNDELIV", SYSTEM_FAILURE), // Network Error
        row("UNDELIV", 3, "UNDELIV", ABSENT),         // Unreachable Destination
        row("UNDELIV", 4, "UNDELIV", DELIVERY_FAILURE), // Equipment Error
        row("UNDELIV", 5, "UNDELIV", REJECTED),       // Subscriber / Credit Related
        row("UNDELIV", 6, "UNDELIV", SYSTEM_FAILURE), // Timeout
        row("UNDELIV", 7, "UNDELIV", SYSTEM_FAILURE), // Operator Related
        row("UNDELIV", 8, "UNDELIV", CALL_BARRED),    // Parental Lock
        row("UNDELIV", 9, "UNDELIV", UNKNOWN),        // Undeliverable
        row("UNDELIV", 10, "UNDELIV", NO_CREDIT),     // Account Credit
        row("UNDELIV", 50, "UNDELIV", SYSTEM_FAILURE),
        row("UNDELIV", 51, "UNDELIV", SYSTEM_FAILURE),
        row("UNDELIV", 52, "UNDELIV", ACCOUNT), // Missing Template
        row("UNDELIV", 53, "UNDELIV", BLACKLISTED), // STOP
        row("UNDELIV", 54, "UNDELIV", NO_ROUTE), // Forbidden destination
        row("UNDELIV", 55, "UNDELIV", THROTTLED), // Sender Temporarily Ratelimited
        row("UNDELIV", 100, "UNDELIV", INVALID_DESTINATION),
        row("UNDELIV", 101, "UNDELIV", CONTENT),
        // Invalid GSM7 coding: the account's packed/unpacked setting
        // ("Data Coding Scheme": contact support to change the format).
        row("UNDELIV", 102, "UNDELIV", ACCOUNT),
        row("UNDELIV", 103, "UNDELIV", INVALID_MESSAGE), // too long
        row("ENROUTE", 254, "ENROUTE", NONE),            // Pending
        // "Pending" under a final stat: ended, and the code says nothing.
        row("UNDELIV", 254, "UNDELIV", UNKNOWN),
        row("UNDELIV", 255, "UNDELIV", UNKNOWN),
        row("UNDELIV", 800, "UNDELIV", UNKNOWN), // Undeliverable
        row("EXPIRED", 801, "EXPIRED", EXPIRED),
        row("DELETED", 802, "DELETED", REJECTED),
        row("REJECTD", 803, "REJECTD", REJECTED),
        row("UNKNOWN", 804, "UNKNOWN", UNKNOWN),
    ]
}

/// Seed 003, "Error codes" (hex err, 3 octets): every code with the
/// message_state that goes with it; then every message_state 2–9 with
/// err 000; and a failure whose err says nothing, where the
/// network_error_code names the reason.
fn telesign() -> Vec<Row> {
    let mut rows = vec![
        row("DELIVRD", 0x000, "DELIVRD", NONE),
        row("UNDELIV", 0x008, "UNDELIV", SYSTEM_FAILURE),
        row("REJECTD", 0x00A, "REJECTD", SENDER),
        row("REJECTD", 0x00B, "REJECTD", INVALID_DESTINATION),
        row("UNDELIV", 0x014, "UNDELIV", THROTTLED), // Message Queue Full
        row("UNDELIV", 0x0FF, "UNDELIV", UNKNOWN),
        row("UNDELIV", 0x401, "UNDELIV", SYSTEM_FAILURE), // Send error
        row("UNDELIV", 0x402, "UNDELIV", ABSENT),         // Other party is not connected
        row("UNDELIV", 0x403, "UNDELIV", SYSTEM_FAILURE), // Unknown provider error
        row("UNDELIV", 0x404, "UNDELIV", UNKNOWN),        // Unknown user error
        row("REJECTD", 0x405, "REJECTD", INVALID_MESSAGE),
        row("UNDELIV", 0x407, "UNDELIV", ABSENT),
        row("UNDELIV", 0x408, "UNDELIV", SYSTEM_FAILURE),
        row("UNDELIV", 0x4A0, "UNDELIV", DELIVERY_FAILURE), // Temporary phone error
        row("UNDELIV", 0x4A1, "UNDELIV", DELIVERY_FAILURE), // Permanent phone error
        row("UNDELIV", 0x4A2, "UNDELIV", NO_ROUTE),
        row("EXPIRED", 0x4A3, "EXPIRED", EXPIRED),
        row("UNDELIV", 0x4A4, "UNDELIV", DELIVERY_FAILURE), // SMS not supported
        row("REJECTD", 0x4A5, "REJECTD", BLACKLISTED),      // blocked by customer request
        row("REJECTD", 0x4A6, "REJECTD", REJECTED),         // blocked by Telesign
        row("REJECTD", 0x4A7, "REJECTD", CONTENT),
        row("UNDELIV", 0x4A8, "UNDELIV", REJECTED), // Transaction not attempted
        row("REJECTD", 0x4A9, "REJECTD", ACCOUNT),  // Not authorized
        row("UNKNOWN", 0x4AA, "UNKNOWN", UNKNOWN),  // Status not available
        row("UNKNOWN", 0x4AB, "UNKNOWN", UNKNOWN),
        row("REJECTD", 0x4AC, "REJECTD", ACCOUNT), // product not enabled
        row("REJECTD", 0x4AD, "REJECTD", ACCOUNT), // Not allowed host
        row("REJECTD", 0x4AE, "REJECTD", NO_CREDIT), // transaction hard cap
        row("REJECTD", 0x4AF, "REJECTD", INVALID_DESTINATION), // Invalid country code
        row("REJECTD", 0x4B0, "REJECTD", ACCOUNT), // Campaign error
        row("UNDELIV", 0x4B1, "UNDELIV", SYSTEM_FAILURE), // Carrier rejected - temporary
        row("UNDELIV", 0x4B2, "UNDELIV", REJECTED), // Carrier rejected - permanent
        row("UNDELIV", 0x4B3, "UNDELIV", SYSTEM_FAILURE), // gateway, temporary
        row("UNDELIV", 0x4B4, "UNDELIV", SYSTEM_FAILURE), // gateway, permanent
        row("REJECTD", 0x4B5, "REJECTD", INVALID_MESSAGE), // Parameters problem
        row("UNDELIV", 0x4B6, "UNDELIV", BLACKLISTED), // blocked by subscriber
        row("UNDELIV", 0x4B7, "UNDELIV", CALL_BARRED), // Subscriber low on credit
        row("UNDELIV", 0x4B8, "UNDELIV", SYSTEM_FAILURE), // Roaming error
        row("UNDELIV", 0x4B9, "UNDELIV", NO_ROUTE), // number portability
        row("REJECTD", 0x4BA, "REJECTD", CONTENT), // Suspected spam
        row("REJECTD", 0x4BC, "REJECTD", REJECTED), // high risk
        row("EXPIRED", 0x4BD, "EXPIRED", EXPIRED), // only with EXPIRED
        row("REJECTD", 0x4BF, "REJECTD", ACCOUNT), // price above our maximum
        row("REJECTD", 0x4C0, "REJECTD", NO_ROUTE), // Destination blocked by prefix
        row("REJECTD", 0x4C1, "REJECTD", CONTENT), // Content not allowed
        row("REJECTD", 0x4C2, "REJECTD", SENDER),  // Sender ID cannot be used
        // message_state 2-9 ("Error codes" table) with err 000.
        row("EXPIRED", 0, "EXPIRED", EXPIRED),
        row("DELETED", 0, "DELETED", REJECTED),
        row("UNDELIV", 0, "UNDELIV", UNKNOWN),
        row("ACCEPTD", 0, "ACCEPTD", NONE),
        row("UNKNOWN", 0, "UNKNOWN", UNKNOWN),
        row("REJECTD", 0, "REJECTD", REJECTED),
        row("SKIPPED", 0, "SKIPPED", REJECTED),
    ];
    // "Additional error context can also be found in the network_error_code
    // field": MAP 27, absent subscriber, when err says nothing more.
    rows.push(Row {
        network: Some(27),
        ..row("UNDELIV", 0, "UNDELIV", ABSENT)
    });
    rows
}

/// A receipt `err` read as a GSM MAP error code (3GPP TS 29.002 §17.6):
/// the vendors whose documents give no `err` table of their own, or name
/// the GSM codes. Each code with the stat it comes under, and the
/// canonical reason (DESIGN.md "Errors": MAP codes keep their number).
fn map_rows() -> Vec<Row> {
    vec![
        row("UNDELIV", 1, "UNDELIV", UNKNOWN_SUBSCRIBER), // unknownSubscriber
        row("UNDELIV", 5, "UNDELIV", UNKNOWN_SUBSCRIBER), // unidentifiedSubscriber
        row("UNDELIV", 6, "UNDELIV", ABSENT),             // absentSubscriberSM
        row("UNDELIV", 11, "UNDELIV", CALL_BARRED),       // teleservice not provisioned
        row("UNDELIV", 13, "UNDELIV", CALL_BARRED),       // callBarred
        row("UNDELIV", 27, "UNDELIV", ABSENT),            // absentSubscriber
        row("UNDELIV", 31, "UNDELIV", 31),                // subscriberBusyForMT-SMS
        row("UNDELIV", 32, "UNDELIV", DELIVERY_FAILURE),  // sm-DeliveryFailure
        row("UNDELIV", 34, "UNDELIV", SYSTEM_FAILURE),    // systemFailure
        row("UNDELIV", 36, "UNDELIV", SYSTEM_FAILURE),    // unexpectedDataValue
        row("UNDELIV", 250, "UNDELIV", UNKNOWN),          // no MAP meaning
        // The reason stands under EXPIRED too: the handset stayed absent.
        row("EXPIRED", 27, "EXPIRED", ABSENT),
    ]
}

/// Seed 004, "Delivery statuses": every stat as Infobip spells it (no code
/// table is given; err 000); then "COMMAND STATUS & GSM ERROR CODES": the
/// err is a GSM error code.
fn infobip() -> Vec<Row> {
    let mut rows = vec![
        row("DELIVRD", 0, "DELIVRD", NONE),
        row("EXPIRED", 0, "EXPIRED", EXPIRED),
        row("DELETED", 0, "DELETED", REJECTED),
        row("UNDELIV", 0, "UNDELIV", UNKNOWN),
        row("ACCEPTD", 0, "ACCEPTD", NONE),
        row("DELIVERY UNKNOWN", 0, "UNKNOWN", UNKNOWN),
        row("REJECTED", 0, "REJECTD", REJECTED),
    ];
    rows.extend(map_rows());
    rows
}

/// Seed 001, "Формат Delivery Receipt": no stat or err values are listed,
/// so the SMPP 3.4 states, err 0; and err as SMPP 3.4 leaves it to the
/// network (the seed sends the reader to the specification): GSM MAP.
fn seed001() -> Vec<Row> {
    let mut rows = vec![
        row("DELIVRD", 0, "DELIVRD", NONE),
        row("EXPIRED", 0, "EXPIRED", EXPIRED),
        row("DELETED", 0, "DELETED", REJECTED),
        row("UNDELIV", 0, "UNDELIV", UNKNOWN),
        row("ACCEPTD", 0, "ACCEPTD", NONE),
        row("UNKNOWN", 0, "UNKNOWN", UNKNOWN),
        row("REJECTD", 0, "REJECTD", REJECTED),
        row("ENROUTE", 0, "ENROUTE", NONE),
    ];
    rows.extend(map_rows());
    rows
}

/// SMPP 3.4 Appendix B: the standard states with err 000, and err as a GSM
/// MAP code.
fn generic() -> Vec<Row> {
    let mut rows = vec![
        row("DELIVRD", 0, "DELIVRD", NONE),
        row("EXPIRED", 0, "EXPIRED", EXPIRED),
        row("UNDELIV", 0, "UNDELIV", UNKNOWN),
        row("REJECTD", 0, "REJECTD", REJECTED),
        row("ENROUTE", 0, "ENROUTE", NONE),
    ];
    rows.extend(map_rows());
    rows
}

fn rows(vendor: Vendor) -> Vec<Row> {
    match vendor {
        Vendor::Mensatek => mensatek(),
        Vendor::Ovh => ovh(),
        Vendor::Telesign => telesign(),
        Vendor::Infobip => infobip(),
        Vendor::Seed001 => seed001(),
        Vendor::Generic => generic(),
    }
}

// ---------------------------------------------------------------------
// An SMSC in the test process.
// ---------------------------------------------------------------------

/// One part Tern submitted, as the SMSC saw it.
#[derive(Debug, Clone)]
struct Seen {
    /// The id the SMSC gave it.
    id: String,
    /// The submit.
    submit: SubmitSm,
    /// Its concatenation (reference, total, sequence), from the UDH.
    udh: Option<(u16, u8, u8)>,
}

/// What to send back for a message (all its parts answered): the receipts
/// for each part, in order, each waiting for Tern's deliver_sm_resp.
type Plan = Arc<dyn Fn(&[Seen]) -> Vec<(usize, Row)> + Send + Sync>;

struct Smsc {
    port: u16,
    /// Every part submitted, in arrival order.
    seen: Arc<Mutex<Vec<Seen>>>,
    _stop: tokio_util::sync::DropGuard,
}

/// The concatenation of a UDH part: (reference, total, sequence).
fn udh_of(sm: &SubmitSm) -> Option<(u16, u8, u8)> {
    if !sm.esm_class.udhi() {
        return None;
    }
    let octets = sm.short_message.as_bytes();
    let len = usize::from(*octets.first()?);
    let mut ies = octets.get(1..1 + len)?;
    while let [iei, ie_len, rest @ ..] = ies {
        let ie_len = usize::from(*ie_len);
        let value = rest.get(..ie_len)?;
        match (iei, value) {
            (0x00, [reference, total, seq]) => return Some((u16::from(*reference), *total, *seq)),
            (0x08, [hi, lo, total, seq]) => {
                return Some((u16::from_be_bytes([*hi, *lo]), *total, *seq))
            }
            _ => ies = &rest[ie_len..],
        }
    }
    None
}

/// The text of a submit without its UDH.
fn body_of(sm: &SubmitSm) -> String {
    let octets = sm.text_octets();
    let skip = if sm.esm_class.udhi() {
        octets.first().map_or(0, |l| usize::from(*l) + 1)
    } else {
        0
    };
    String::from_utf8_lossy(octets.get(skip..).unwrap_or_default()).into_owned()
}

async fn start_smsc(vendor: Vendor, plan: Plan) -> Smsc {
    start_smsc_answering(vendor, plan, false).await
}

/// [`start_smsc`]; with `receipts_first`, the SMSC sends a message's
/// receipts (each once Tern answered it) before it answers the submit that
/// completed the message, as an SMSC may whose receipt path is faster than
/// its submit path.
async fn start_smsc_answering(vendor: Vendor, plan: Plan, receipts_first: bool) -> Smsc {
    let BareSmsc {
        port,
        mut sessions,
        stop,
    } = bare_smsc(SmscConfig {
        system_id: vendor.name().try_into().expect("short"),
        ..SmscConfig::default()
    })
    .await;
    let seen: Arc<Mutex<Vec<Seen>>> = Arc::default();
    let counter = Arc::new(std::sync::atomic::AtomicU64::new(1));
    {
        let seen = seen.clone();
        tokio::spawn(async move {
            while let Some(mut bound) = sessions.recv().await {
                let (seen, plan, counter) = (seen.clone(), plan.clone(), counter.clone());
                tokio::spawn(async move {
                    let handle = bound.handle.clone();
                    while let Some((submit, responder)) = next_submit(&mut bound.requests).await {
                        let n = counter.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                        let id = vendor.id(n);
                        let part = Seen {
                            id: id.clone(),
                            udh: udh_of(&submit),
                            submit,
                        };
                        let responder = if receipts_first {
                            Some(responder)
                        } else {
                            accept_submit(responder, &id).await;
                            None
                        };
                        let message = {
                            let mut seen = seen.lock().expect("lock");
                            seen.push(part.clone());
                            complete(&seen, &part)
                        };
                        if let Some(parts) = message {
                            let receipts = plan(&parts);
                            let sending = send_receipts(vendor, handle.clone(), parts, receipts);
                            if receipts_first {
                                sending.await;
                            } else {
                                tokio::spawn(sending);
                            }
                        }
                        if let Some(responder) = responder {
                            accept_submit(responder, &id).await;
                        }
                    }
                });
            }
        });
    }
    Smsc {
        port,
        seen,
        _stop: stop,
    }
}

/// The parts of `part`'s message once all are in, in sequence order.
fn complete(seen: &[Seen], part: &Seen) -> Option<Vec<Seen>> {
    let Some((reference, total, _)) = part.udh else {
        return Some(vec![part.clone()]);
    };
    let mut parts: Vec<Seen> = seen
        .iter()
        .filter(|s| matches!(s.udh, Some((r, t, _)) if r == reference && t == total))
        .cloned()
        .collect();
    parts.sort_by_key(|s| s.udh.map(|(_, _, seq)| seq));
    (parts.len() == usize::from(total)).then_some(parts)
}

/// Sends each receipt in turn, each once Tern answered the one before.
async fn send_receipts(
    vendor: Vendor,
    handle: SessionHandle,
    parts: Vec<Seen>,
    receipts: Vec<(usize, Row)>,
) {
    let submitted = now_ms();
    for (index, row) in receipts {
        let part = &parts[index];
        let sm = vendor.receipt(&part.id, &row, &part.submit, submitted);
        let resp = handle
            .request(Body::DeliverSm(sm))
            .await
            .expect("tern answers receipts");
        assert_eq!(resp.command_status, CommandStatus::Ok, "{row:?}");
    }
}

// ---------------------------------------------------------------------
// Tern and its client.
// ---------------------------------------------------------------------

/// Starts tern with one upstream per (vendor, port), routed by the
/// vendor's prefix, clients `acme` and `parts` (per-part receipts), and an
/// admin listener.
fn start_tern(client_port: u16, admin_port: u16, upstreams: &[(Vendor, u16)]) -> Daemon {
    let mut config = format!(
        r#"
[[listener]]
address = "127.0.0.1:{client_port}"
[admin]
address = "127.0.0.1:{admin_port}"
[storage]
path = "data"
durability = "fast"
flush_interval = "20ms"
[[client]]
system_id = "acme"
passwords = ["pw"]
[[client]]
system_id = "parts"
passwords = ["pw"]
receipts_per_part = true
[[client]]
system_id = "extras"
passwords = ["pw"]
vendor_tlvs = true
[router]
retry_initial = "200ms"
"#
    );
    for (vendor, port) in upstreams {
        let name = vendor.name();
        if *vendor == Vendor::Telesign {
            config.push_str(&format!(
                "[[upstream]]\nreceipt_data_centre = \"{DATA_CENTRE}\"\n"
            ));
        } else {
            config.push_str("[[upstream]]\n");
        }
        config.push_str(&format!(
            r#"
name = "{name}"
profile = "{name}"
host = "127.0.0.1"
port = {port}
system_id = "tern"
password = "x"
[[route]]
name = "{name}"
prefixes = ["{prefix}"]
upstreams = ["{name}"]
"#,
            prefix = vendor.prefix()
        ));
    }
    Daemon::start(&format!("vendor-receipts-{client_port}"), &config)
}

async fn bind(port: u16, account: &str) -> esme::UpstreamSession {
    client(port, account, "pw").window(32).bind().await
}

/// A receipt as the client got it.
#[derive(Debug, Clone)]
struct Got {
    esm_class: EsmClass,
    text: String,
    receipted_id: Option<String>,
    message_state: Option<u8>,
    network_error: Option<(u8, u16)>,
    vendor_code: Option<String>,
    sar: Option<tern_codec::tlv::Sar>,
    /// Telesign's MCC, MNC and price TLVs, if relayed.
    vendor_tlvs: Vec<(u16, Vec<u8>)>,
}

impl Got {
    fn of(sm: &DeliverSm) -> Got {
        Got {
            esm_class: sm.esm_class,
            text: String::from_utf8_lossy(sm.short_message.as_bytes()).into_owned(),
            receipted_id: sm
                .tlvs
                .receipted_message_id()
                .map(|id| String::from_utf8_lossy(id).into_owned()),
            message_state: sm.tlvs.message_state().map(|s| s.0),
            network_error: sm
                .tlvs
                .network_error_code()
                .map(|n| (n.network_type, n.error_code)),
            vendor_code: match sm.tlvs.get(VENDOR_CODE_TLV) {
                Some(Tlv::Other { value, .. }) => Some(String::from_utf8_lossy(value).into_owned()),
                _ => None,
            },
            sar: sm.tlvs.sar(),
            vendor_tlvs: sm
                .tlvs
                .iter()
                .filter_map(|tlv| match tlv {
                    Tlv::Other { tag, value } if (0x0410..=0x0412).contains(tag) => {
                        Some((*tag, value.to_vec()))
                    }
                    _ => None,
                })
                .collect(),
        }
    }

    /// The value of a `key:` in the text.
    fn field(&self, key: &str) -> Option<&str> {
        let at = self.text.find(&format!("{key}:"))? + key.len() + 1;
        self.text[at..].split(' ').next()
    }

    /// Checks everything the client must be told for `want`.
    fn check(&self, tern_id: &str, want_stat: &str, want_err: u16, vendor: &str, context: &str) {
        assert_eq!(
            self.field("id"),
            Some(tern_id),
            "text id: {context}: {self:?}"
        );
        assert_eq!(
            self.receipted_id.as_deref(),
            Some(tern_id),
            "receipted_message_id: {context}"
        );
        assert_eq!(
            self.field("stat"),
            Some(want_stat),
            "stat: {context}: {self:?}"
        );
        let err = format!("{want_err:03}");
        assert_eq!(
            self.field("err"),
            Some(err.as_str()),
            "err: {context}: {self:?}"
        );
        assert_eq!(
            self.message_state,
            Some(message_state(want_stat)),
            "message_state: {context}"
        );
        // DESIGN.md: network_error_code carries the same code, type GSM,
        // for MAP codes (001-899) only.
        let map = (1..900).contains(&want_err);
        assert_eq!(
            self.network_error,
            map.then_some((3, want_err)),
            "network_error_code: {context}"
        );
        assert_eq!(
            self.vendor_code.as_deref(),
            Some(vendor),
            "vendor code TLV: {context}"
        );
        let intermediate = matches!(want_stat, "ENROUTE" | "ACCEPTD");
        assert_eq!(
            self.esm_class,
            if intermediate {
                EsmClass::INTERMEDIATE_NOTIFICATION
            } else {
                EsmClass::DELIVERY_RECEIPT
            },
            "esm_class: {context}"
        );
    }
}

/// Takes receipts until `count` came (acknowledging each), then any that
/// come within `quiet` more; by Tern id, in arrival order.
async fn collect(
    client: &mut esme::UpstreamSession,
    count: usize,
    quiet: Duration,
) -> HashMap<String, Vec<Got>> {
    match gather(client, count, quiet).await {
        Ok(got) => got,
        Err((total, _)) => panic!("only {total} of {count} receipts in 30 s"),
    }
}

/// [`collect`], but a shortfall after 30 s is the caller's to report:
/// `Err` with how many came and what they were, so a test can name the
/// messages whose receipts are missing.
async fn gather(
    client: &mut esme::UpstreamSession,
    count: usize,
    quiet: Duration,
) -> Result<HashMap<String, Vec<Got>>, (usize, HashMap<String, Vec<Got>>)> {
    let mut got: HashMap<String, Vec<Got>> = HashMap::new();
    let mut total = 0;
    let deadline = tokio::time::Instant::now() + Duration::from_secs(30);
    loop {
        let wait = if total < count {
            tokio::time::timeout_at(deadline, client.requests.recv()).await
        } else {
            tokio::time::timeout(quiet, client.requests.recv()).await
        };
        let request = match wait {
            Ok(Some(request)) => request,
            Ok(None) => panic!("tern closed the client session"),
            Err(_) if total < count => return Err((total, got)),
            Err(_) => break,
        };
        let Body::DeliverSm(sm) = &request.pdu.body else {
            panic!("{:?}", request.pdu)
        };
        let receipt = Got::of(sm);
        let id = receipt
            .receipted_id
            .clone()
            .or_else(|| receipt.field("id").map(str::to_owned))
            .expect("a receipt names its message");
        got.entry(id).or_default().push(receipt);
        total += 1;
        ack(request).await;
    }
    Ok(got)
}

/// The text that tells the SMSC which row a message is (the last word
/// keeps the two submissions of an intermediate row apart).
fn marker(vendor: Vendor, index: usize, intermediate_asked: bool) -> String {
    let asked = if intermediate_asked { "i" } else { "f" };
    format!("{} {index} {asked}", vendor.name())
}

/// One submission of the table test.
struct Case {
    vendor: Vendor,
    /// The row's place in its vendor's table.
    index: usize,
    row: Row,
    intermediate_asked: bool,
    tern_id: String,
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_vendor_code_comes_back_as_its_canonical_receipt_with_terns_id() {
    // Each SMSC plays its vendor's table: the message's text says the row.
    let mut smscs = Vec::new();
    for vendor in Vendor::ALL {
        let table = rows(vendor);
        let plan: Plan = Arc::new(move |parts: &[Seen]| {
            let text = body_of(&parts[0].submit);
            let mut words = text.split(' ');
            let _vendor = words.next();
            match words.next() {
                // A long message: the vendor's own delivered receipt.
                Some("long") => vec![(0, vendor.delivered())],
                Some(index) => {
                    let row = table[index.parse::<usize>().expect("row index")];
                    if row.intermediate() {
                        vec![(0, row), (0, vendor.delivered())]
                    } else {
                        vec![(0, row)]
                    }
                }
                None => panic!("no row in {text:?}"),
            }
        });
        smscs.push((vendor, start_smsc(vendor, plan).await));
    }
    let (port, admin) = (0, 0);
    let upstreams: Vec<(Vendor, u16)> = smscs.iter().map(|(v, s)| (*v, s.port)).collect();
    let mut _tern = start_tern(port, admin, &upstreams);
    let (port, admin) = (_tern.client_port(), _tern.admin().0.port());
    let mut client = bind(port, "acme").await;

    // Every row; intermediate rows with and without bit 4.
    let mut pending = Vec::new();
    for vendor in Vendor::ALL {
        for (index, row) in rows(vendor).into_iter().enumerate() {
            let asks: &[bool] = if row.intermediate() {
                &[false, true]
            } else {
                &[false]
            };
            for &intermediate_asked in asks {
                let delivery = if intermediate_asked {
                    RegisteredDelivery(0x11)
                } else {
                    RegisteredDelivery::ALWAYS
                };
                let destination = format!("{}{:07}", vendor.prefix(), index);
                let text = marker(vendor, index, intermediate_asked);
                let sm = common::submit_sm(&destination, text.as_bytes(), delivery);
                let handle = client.handle.clone();
                pending.push((
                    vendor,
                    index,
                    row,
                    intermediate_asked,
                    tokio::spawn(async move { submit_id(&handle, sm).await }),
                ));
            }
        }
    }
    // A long message to Telesign goes whole in message_payload (the vendor
    // splits it and reports the first part only): one receipt.
    let mut long = b"telesign long ".to_vec();
    long.resize(300, b'x');
    let long_id = submit_id(
        &client.handle,
        common::submit_sm(
            &format!("{}9999999", Vendor::Telesign.prefix()),
            &long,
            RegisteredDelivery::ALWAYS,
        ),
    )
    .await;

    let mut cases = Vec::new();
    for (vendor, index, row, intermediate_asked, task) in pending {
        cases.push(Case {
            vendor,
            index,
            row,
            intermediate_asked,
            tern_id: task.await.expect("task"),
        });
    }
    let expected = cases
        .iter()
        .map(|c| if c.intermediate_asked { 2 } else { 1 })
        .sum::<usize>()
        + 1;
    let got = match gather(&mut client, expected, Duration::from_millis(500)).await {
        Ok(got) => got,
        Err((total, got)) => {
            // Name the rows whose receipts did not all come, and what came.
            let mut missing: Vec<String> = cases
                .iter()
                .map(|c| {
                    let want = if c.intermediate_asked { 2 } else { 1 };
                    (c, want, got.get(&c.tern_id).map_or(&[][..], Vec::as_slice))
                })
                .filter(|(_, want, came)| came.len() < *want)
                .map(|(c, want, came)| {
                    let came: Vec<&str> = came.iter().map(|r| r.text.as_str()).collect();
                    format!(
                        "{} (id {}, intermediate asked: {}): {} of {want}: {came:?}",
                        marker(c.vendor, c.index, c.intermediate_asked),
                        c.tern_id,
                        c.intermediate_asked,
                        came.len(),
                    )
                })
                .collect();
            if !got.contains_key(&long_id) {
                missing.push(format!("telesign long (id {long_id}): 0 of 1"));
            }
            panic!(
                "only {total} of {expected} receipts in 30 s; missing:\n{}",
                missing.join("\n")
            );
        }
    };

    for case in &cases {
        let vendor = case.vendor;
        let row = case.row;
        let context = format!(
            "{} stat:{} err:{} (intermediate asked: {})",
            vendor.name(),
            row.stat,
            vendor.err_text(row.err),
            case.intermediate_asked
        );
        let receipts = got
            .get(&case.tern_id)
            .unwrap_or_else(|| panic!("no receipt for {context}"));
        let vendor_code = |row: &Row| {
            format!(
                "{} stat:{} err:{}",
                vendor.name(),
                row.stat,
                vendor.err_text(row.err)
            )
        };
        if row.intermediate() {
            let delivered = vendor.delivered();
            let finals: Vec<&Got> = receipts
                .iter()
                .filter(|r| r.esm_class == EsmClass::DELIVERY_RECEIPT)
                .collect();
            assert_eq!(
                finals.len(),
                1,
                "one final receipt: {context}: {receipts:?}"
            );
            finals[0].check(
                &case.tern_id,
                "DELIVRD",
                0,
                &vendor_code(&delivered),
                &context,
            );
            let notes: Vec<&Got> = receipts
                .iter()
                .filter(|r| r.esm_class != EsmClass::DELIVERY_RECEIPT)
                .collect();
            if case.intermediate_asked {
                assert_eq!(notes.len(), 1, "one intermediate: {context}: {receipts:?}");
                notes[0].check(
                    &case.tern_id,
                    row.want_stat,
                    row.want_err,
                    &vendor_code(&row),
                    &context,
                );
            } else {
                assert!(
                    notes.is_empty(),
                    "no intermediate unless asked: {context}: {receipts:?}"
                );
            }
        } else {
            assert_eq!(receipts.len(), 1, "one receipt: {context}: {receipts:?}");
            receipts[0].check(
                &case.tern_id,
                row.want_stat,
                row.want_err,
                &vendor_code(&row),
                &context,
            );
        }
    }

    // OVH's own TLV (its outgoing id, 0x1401) is kept with the message as
    // received, for `tern trace`.
    let ovh_case = cases
        .iter()
        .find(|c| c.vendor == Vendor::Ovh)
        .expect("an OVH row");
    let message = final_message(admin, &ovh_case.tern_id).await;
    let tlvs = message["receipts_received"][0]["vendor_tlvs"].to_string();
    assert!(
        tlvs.contains("0x1401") && tlvs.contains("6f76682d"),
        "{message}"
    );

    let long_receipts = got.get(&long_id).expect("a receipt for the long message");
    assert_eq!(long_receipts.len(), 1, "{long_receipts:?}");
    long_receipts[0].check(
        &long_id,
        "DELIVRD",
        0,
        "telesign stat:DELIVRD err:000",
        "telesign long",
    );
    // It went as one submit, whole in message_payload with sm_length 0.
    let telesign = &smscs
        .iter()
        .find(|(v, _)| *v == Vendor::Telesign)
        .expect("telesign")
        .1;
    let seen = telesign.seen.lock().expect("lock");
    let long_parts: Vec<&Seen> = seen
        .iter()
        .filter(|s| body_of(&s.submit).starts_with("telesign long"))
        .collect();
    assert_eq!(long_parts.len(), 1);
    assert!(long_parts[0].submit.short_message.as_bytes().is_empty());
    assert_eq!(
        long_parts[0].submit.tlvs.message_payload().map(|p| p.len()),
        Some(300)
    );
}

/// An SMSC that sends a message's receipts before its submit_sm_resp:
/// the intermediate ENROUTE and then the final DELIVRD both come while
/// Tern does not know the id yet, so both are held. A client that asked
/// for intermediate notifications gets the ENROUTE and then the DELIVRD;
/// one that did not, the DELIVRD alone. (Holding one receipt per id, the
/// DELIVRD replaced the ENROUTE it had already acknowledged: the race
/// behind the table test's occasional "only N-1 of N receipts".)
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn receipts_that_come_before_the_submit_sm_resp_are_all_kept_and_relayed_in_order() {
    let enroute = row("ENROUTE", 2, "ENROUTE", NONE);
    let plan: Plan =
        Arc::new(move |_: &[Seen]| vec![(0, enroute), (0, Vendor::Mensatek.delivered())]);
    let smsc = start_smsc_answering(Vendor::Mensatek, plan, true).await;
    let (port, admin) = (0, 0);
    let mut _tern = start_tern(port, admin, &[(Vendor::Mensatek, smsc.port)]);
    let (port, admin) = (_tern.client_port(), _tern.admin().0.port());
    let mut client = bind(port, "acme").await;
    let asked = submit_id(
        &client.handle,
        common::submit_sm("34610000001", b"asked", RegisteredDelivery(0x11)),
    )
    .await;
    let plain = submit_id(
        &client.handle,
        common::submit_sm("34610000002", b"plain", RegisteredDelivery::ALWAYS),
    )
    .await;
    let got = collect(&mut client, 3, Duration::from_millis(500)).await;
    let receipts = &got[&asked];
    assert_eq!(receipts.len(), 2, "ENROUTE then DELIVRD: {receipts:?}");
    receipts[0].check(
        &asked,
        "ENROUTE",
        NONE,
        "mensatek stat:ENROUTE err:002",
        "held intermediate",
    );
    receipts[1].check(
        &asked,
        "DELIVRD",
        NONE,
        "mensatek stat:DELIVRD err:000",
        "held final",
    );
    let receipts = &got[&plain];
    assert_eq!(receipts.len(), 1, "DELIVRD only: {receipts:?}");
    receipts[0].check(
        &plain,
        "DELIVRD",
        NONE,
        "mensatek stat:DELIVRD err:000",
        "not asked",
    );
    // Both are in the message's history, in the order they came.
    for id in [&asked, &plain] {
        let message = final_message(admin, id).await;
        let stats: Vec<&str> = message["receipts_received"]
            .as_array()
            .expect("receipts")
            .iter()
            .filter_map(|r| r["vendor_stat"].as_str())
            .collect();
        assert_eq!(stats, ["ENROUTE", "DELIVRD"], "{message}");
    }
}

/// The message's JSON from the admin API once it is final.
async fn final_message(admin: u16, id: &str) -> serde_json::Value {
    Admin::at(admin)
        .until(
            &format!("/api/messages/{id}"),
            Duration::from_secs(5),
            &format!("message {id} final"),
            |message| message["state"] == "final",
        )
        .await
}

/// Part 1 is delivered and part 2 is not, told in that order, part 2's
/// receipt only once Tern has answered part 1's.
fn part_two_fails() -> Plan {
    Arc::new(|parts: &[Seen]| {
        assert_eq!(parts.len(), 2, "300 characters are two parts");
        vec![
            (0, row("DELIVRD", 0, "DELIVRD", NONE)),
            (1, row("UNDELIV", 3, "UNDELIV", ABSENT)),
        ]
    })
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_failed_part_fails_the_message_in_its_one_receipt() {
    let smsc = start_smsc(Vendor::Ovh, part_two_fails()).await;
    let (port, admin) = (0, 0);
    let mut _tern = start_tern(port, admin, &[(Vendor::Ovh, smsc.port)]);
    let (port, admin) = (_tern.client_port(), _tern.admin().0.port());
    let mut client = bind(port, "acme").await;
    let text = vec![b'x'; 300];
    let id = submit_id(
        &client.handle,
        common::submit_sm("33620000001", &text, RegisteredDelivery::ALWAYS),
    )
    .await;
    let got = collect(&mut client, 1, Duration::from_millis(500)).await;
    let receipts = &got[&id];
    assert_eq!(
        receipts.len(),
        1,
        "one receipt for the one id: {receipts:?}"
    );
    // Part 1's DELIVRD came first; the message waited for part 2.
    receipts[0].check(
        &id,
        "UNDELIV",
        ABSENT,
        "ovh stat:UNDELIV err:003",
        "part 2 failed",
    );
    assert!(receipts[0].sar.is_none());
    let message = final_message(admin, &id).await;
    assert_eq!(message["outcome"]["stat"], "UNDELIV");
    assert_eq!(
        message["receipts_received"].as_array().map(Vec::len),
        Some(2)
    );
    assert_eq!(
        message["receipts_relayed"].as_array().map(Vec::len),
        Some(1)
    );
    let parts = message["parts"].as_array().expect("parts");
    assert_eq!(parts.len(), 2);
    assert_eq!(parts[0]["outcome"]["stat"], "DELIVRD");
    assert_eq!(parts[1]["outcome"]["stat"], "UNDELIV");
    assert_eq!(smsc.seen.lock().expect("lock").len(), 2);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_account_asking_for_per_part_receipts_gets_one_per_part() {
    let smsc = start_smsc(Vendor::Ovh, part_two_fails()).await;
    let (port, admin) = (0, 0);
    let mut _tern = start_tern(port, admin, &[(Vendor::Ovh, smsc.port)]);
    let (port, admin) = (_tern.client_port(), _tern.admin().0.port());
    let mut client = bind(port, "parts").await;
    let text = vec![b'y'; 300];
    let id = submit_id(
        &client.handle,
        common::submit_sm("33620000002", &text, RegisteredDelivery::ALWAYS),
    )
    .await;
    let got = collect(&mut client, 2, Duration::from_millis(500)).await;
    let mut receipts = got[&id].clone();
    assert_eq!(receipts.len(), 2, "{receipts:?}");
    receipts.sort_by_key(|r| r.sar.map(|s| s.sequence));
    let (one, two) = (&receipts[0], &receipts[1]);
    one.check(&id, "DELIVRD", NONE, "ovh stat:DELIVRD err:000", "part 1");
    two.check(&id, "UNDELIV", ABSENT, "ovh stat:UNDELIV err:003", "part 2");
    let (sar1, sar2) = (
        one.sar.expect("SAR on part 1"),
        two.sar.expect("SAR on part 2"),
    );
    assert_eq!((sar1.total, sar1.sequence), (2, 1));
    assert_eq!((sar2.total, sar2.sequence), (2, 2));
    assert_eq!(sar1.reference, sar2.reference);
    // The message itself ends with the worst part.
    let message = final_message(admin, &id).await;
    assert_eq!(message["outcome"]["stat"], "UNDELIV");
    assert_eq!(message["outcome"]["err"], 27);
}

/// Runs `tern trace` off the async runtime's threads; its text.
async fn trace_text(admin: u16, id: &str) -> String {
    let args = [
        "trace".to_owned(),
        id.to_owned(),
        "--admin".to_owned(),
        format!("127.0.0.1:{admin}"),
    ];
    let out = tokio::task::spawn_blocking(move || {
        std::process::Command::new(common::TERN)
            .args(args)
            .output()
            .expect("run tern trace")
    })
    .await
    .expect("task");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// Two OVH upstreams on one route that resubmits on absent subscriber.
/// The first fails each message as its text says: "absent" (PTT 3,
/// unreachable: absent subscriber, the route's reason), "forbidden" (PTT
/// 54, forbidden destination: no route at this vendor, a code the profile
/// marks as concerning OVH only) and "stop" (PTT 53, the recipient's STOP:
/// about the message). The second delivers everything.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_failed_receipt_the_route_resubmits_on_goes_to_the_next_upstream_and_the_client_hears_once(
) {
    let first_plan: Plan = Arc::new(|parts: &[Seen]| {
        let row = match body_of(&parts[0].submit).as_str() {
            "absent" => row("UNDELIV", 3, "UNDELIV", ABSENT),
            "forbidden" => row("UNDELIV", 54, "UNDELIV", NO_ROUTE),
            "stop" => row("UNDELIV", 53, "UNDELIV", BLACKLISTED),
            other => panic!("no plan for {other:?}"),
        };
        vec![(0, row)]
    });
    let second_plan: Plan = Arc::new(|_: &[Seen]| vec![(0, Vendor::Ovh.delivered())]);
    let first = start_smsc(Vendor::Ovh, first_plan).await;
    let second = start_smsc(Vendor::Ovh, second_plan).await;
    let (port, admin) = (0, 0);
    let config = format!(
        r#"
[[listener]]
address = "127.0.0.1:{port}"
[admin]
address = "127.0.0.1:{admin}"
[storage]
path = "data"
durability = "fast"
flush_interval = "20ms"
[[client]]
system_id = "acme"
passwords = ["pw"]
[router]
retry_initial = "200ms"
[[upstream]]
name = "ovh-a"
profile = "ovh"
host = "127.0.0.1"
port = {first}
system_id = "tern"
password = "x"
[[upstream]]
name = "ovh-b"
profile = "ovh"
host = "127.0.0.1"
port = {second}
system_id = "tern"
password = "x"
[[route]]
name = "france"
prefixes = ["33"]
upstreams = ["ovh-a", {{ name = "ovh-b", priority = 5 }}]
resubmit_on = ["absent_subscriber"]
"#,
        first = first.port,
        second = second.port,
    );
    let mut tern = Daemon::start("resubmit", &config);
    let (port, admin) = (tern.client_port(), tern.admin().0.port());
    let mut client = bind(port, "acme").await;
    // The first upstream must be bound before the messages go, so that
    // the route's first choice takes them.
    common::wait_until("both upstreams bound", Duration::from_secs(10), || async {
        Admin::at(admin)
            .get("/api/upstreams")
            .await
            .as_array()
            .is_some_and(|ups| {
                ups.len() == 2
                    && ups
                        .iter()
                        .all(|u| u["bound"].as_u64().is_some_and(|b| b > 0))
            })
    })
    .await;
    let mut ids = HashMap::new();
    for (n, text) in ["absent", "forbidden", "stop"].into_iter().enumerate() {
        let sm = common::submit_sm(
            &format!("3361000000{n}"),
            text.as_bytes(),
            RegisteredDelivery::ALWAYS,
        );
        ids.insert(text, submit_id(&client.handle, sm).await);
    }
    let got = collect(&mut client, 3, Duration::from_secs(1)).await;
    for text in ["absent", "forbidden"] {
        let id = &ids[text];
        let receipts = &got[id];
        assert_eq!(receipts.len(), 1, "one receipt for {text}: {receipts:?}");
        receipts[0].check(
            id,
            "DELIVRD",
            NONE,
            "ovh-b stat:DELIVRD err:000",
            &format!("{text}: resubmitted to ovh-b"),
        );
        let message = final_message(admin, id).await;
        let attempts: Vec<&str> = message["attempts"]
            .as_array()
            .expect("attempts")
            .iter()
            .filter_map(|a| a["upstream"].as_str())
            .collect();
        assert_eq!(attempts, ["ovh-a", "ovh-b"], "{message}");
        let trace = trace_text(admin, id).await;
        assert!(trace.contains("Route and attempts (2)"), "{trace}");
        let (a, b) = (
            trace
                .find("upstream ovh-a")
                .expect("ovh-a's attempt in the trace"),
            trace
                .find("upstream ovh-b")
                .expect("ovh-b's attempt in the trace"),
        );
        assert!(a < b, "{trace}");
    }
    // A STOP is about the message: it ends there.
    let stop = &ids["stop"];
    let receipts = &got[stop];
    assert_eq!(receipts.len(), 1, "{receipts:?}");
    receipts[0].check(
        stop,
        "UNDELIV",
        BLACKLISTED,
        "ovh-a stat:UNDELIV err:053",
        "stop",
    );
    let to_second: Vec<String> = second
        .seen
        .lock()
        .expect("lock")
        .iter()
        .map(|s| body_of(&s.submit))
        .collect();
    assert_eq!(to_second.len(), 2, "{to_second:?}");
    assert!(!to_second.contains(&"stop".to_owned()), "{to_second:?}");
    assert_eq!(first.seen.lock().expect("lock").len(), 3);
}

/// Telesign's receipt TLVs (MCC, MNC, price) reach the client that asked
/// for them (`vendor_tlvs = true`) as the vendor sent them, and no other;
/// they are kept with the message. Every submit to the Telesign upstream
/// names the configured data centre in its service_type, so that the
/// vendor routes the receipt back to it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn telesign_receipt_tlvs_reach_clients_that_asked_and_submits_name_the_data_centre() {
    let plan: Plan = Arc::new(|_: &[Seen]| vec![(0, Vendor::Telesign.delivered())]);
    let smsc = start_smsc(Vendor::Telesign, plan).await;
    let (port, admin) = (0, 0);
    let mut _tern = start_tern(port, admin, &[(Vendor::Telesign, smsc.port)]);
    let (port, admin) = (_tern.client_port(), _tern.admin().0.port());
    let mut plain = bind(port, "acme").await;
    let mut extras = bind(port, "extras").await;
    let plain_id = submit_id(
        &plain.handle,
        common::submit_sm("15550000001", b"plain", RegisteredDelivery::ALWAYS),
    )
    .await;
    let extras_id = submit_id(
        &extras.handle,
        common::submit_sm("15550000002", b"extras", RegisteredDelivery::ALWAYS),
    )
    .await;
    let got_plain = collect(&mut plain, 1, Duration::from_millis(300)).await;
    let got_extras = collect(&mut extras, 1, Duration::from_millis(300)).await;

    let receipt = &got_extras[&extras_id][0];
    receipt.check(
        &extras_id,
        "DELIVRD",
        NONE,
        "telesign stat:DELIVRD err:000",
        "extras",
    );
    let want: Vec<(u16, Vec<u8>)> = TELESIGN_TLVS
        .iter()
        .map(|(tag, value)| (*tag, value.to_vec()))
        .collect();
    assert_eq!(receipt.vendor_tlvs, want);
    let receipt = &got_plain[&plain_id][0];
    receipt.check(
        &plain_id,
        "DELIVRD",
        NONE,
        "telesign stat:DELIVRD err:000",
        "plain",
    );
    assert!(receipt.vendor_tlvs.is_empty(), "{receipt:?}");

    // Stored with the receipt.
    let message = final_message(admin, &plain_id).await;
    let stored = message["receipts_received"][0]["vendor_tlvs"].to_string();
    assert!(
        stored.contains("0x0410") && stored.contains("0x0412"),
        "{message}"
    );

    let seen = smsc.seen.lock().expect("lock");
    assert_eq!(seen.len(), 2);
    for part in seen.iter() {
        assert_eq!(part.submit.service_type.as_bytes(), DATA_CENTRE.as_bytes());
    }
}
