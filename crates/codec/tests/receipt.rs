//! Delivery receipt text: every receipt layout the vendor seeds show (copied
//! from `shared/seeds/`, placeholders and line breaks included), the SMPP 3.4
//! Appendix B form, concrete receipts in each vendor's flavour with the
//! meaning the seed gives them, and properties (no input panics; standard
//! receipts re-format to the same text).

use proptest::prelude::*;
use tern_codec::receipt::{ErrRadix, Receipt, ReceiptDate, ReceiptError, Stat};
use tern_codec::time::UtcOffset;

fn parse(text: &str) -> Receipt {
    Receipt::parse(text.as_bytes()).unwrap_or_else(|e| panic!("{text:?}: {e}"))
}

fn s(v: &str) -> Option<String> {
    Some(v.to_owned())
}

// --- Seed 000, Mensatek (Spanish): `dlvr`, no text, decimal err 0-200 ---

/// The layout as printed in seed 000, line breaks included.
const MENSATEK_LAYOUT: &str = "id:<message_id> sub:<message_sub> dlvr:<message_dlvr> submit\ndate:<message_submit_date> done date:<message_done_date>\nstat:<message_stat> err:<message_err>";

#[test]
fn mensatek_layout_from_the_seed() {
    let r = parse(MENSATEK_LAYOUT);
    assert_eq!(r.id, "<message_id>");
    assert_eq!(r.sub, s("<message_sub>"));
    assert_eq!(r.dlvrd, s("<message_dlvr>"));
    assert_eq!(r.dlvrd_key, "dlvr");
    assert_eq!(r.submit_date, s("<message_submit_date>"));
    assert_eq!(r.done_date, s("<message_done_date>"));
    assert_eq!(r.stat, s("<message_stat>"));
    assert_eq!(r.err, s("<message_err>"));
    assert_eq!(r.text, None);
    assert!(r.extra.is_empty());
    assert!(r.submitted_at().is_err());
}

#[test]
fn mensatek_delivered() {
    // sub 001; dlvr 001 when delivered; err 000 when delivered or in progress.
    let r = parse("id:8716354 sub:001 dlvr:001 submit date:2405141230 done date:2405141231 stat:DELIVRD err:000");
    assert_eq!(r.id, "8716354");
    assert_eq!(r.dlvrd, s("001"));
    assert_eq!(r.status(), Some(Stat::Delivered));
    assert_eq!(r.err_code(ErrRadix::Decimal), Ok(Some(0)));
    // Mensatek omits text; formatting keeps its `dlvr` spelling.
    assert_eq!(
        r.to_string(),
        "id:8716354 sub:001 dlvr:001 submit date:2405141230 done date:2405141231 stat:DELIVRD err:000"
    );
}

#[test]
fn mensatek_failure_codes_are_decimal() {
    // 131: handset memory full; 54: number blacklisted; 200: operator rejected.
    for (stat, err, state, code) in [
        ("UNDELIV", "131", Stat::Undeliverable, 131),
        ("REJECTD", "54", Stat::Rejected, 54),
        ("REJECTD", "200", Stat::Rejected, 200),
        ("EXPIRED", "053", Stat::Expired, 53),
        ("ENROUTE", "000", Stat::Enroute, 0),
        ("ACCEPTD", "000", Stat::Accepted, 0),
        ("UNKNOWN", "255", Stat::Unknown, 255),
    ] {
        let r = parse(&format!(
            "id:99 sub:001 dlvr:000 submit date:2405141230 done date:2405150000 stat:{stat} err:{err}"
        ));
        assert_eq!(r.status(), Some(state));
        assert_eq!(r.err_code(ErrRadix::Decimal), Ok(Some(code)));
    }
}

#[test]
fn mensatek_dlvr_with_both_values_is_kept_raw() {
    // The vendor digest abbreviates the dlvr values as `001/000`; should one
    // arrive like that, it is kept as written rather than refused.
    let r = parse("id:5 sub:001 dlvr:001/000 submit date: done date: stat:DELIVRD err:000");
    assert_eq!(r.dlvrd, s("001/000"));
    assert_eq!(r.submit_date, None);
    assert_eq!(r.done_date, None);
    assert_eq!(r.status(), Some(Stat::Delivered));
}

// --- Seed 001, Russian provider: Appendix B layout with `Text:` ---

/// The layout as printed in seed 001 (also SMPP 3.4 Appendix B's example).
const APPENDIX_B_LAYOUT: &str = "id:IIIIIIIIII sub:SSS dlvrd:DDD submit date:YYMMDDhhmm done date:YYMMDDhhmm\nstat:DDDDDDD err:E Text: . . . . . . . . .";

#[test]
fn russian_provider_layout_from_the_seed() {
    let r = parse(APPENDIX_B_LAYOUT);
    assert_eq!(r.id, "IIIIIIIIII");
    assert_eq!(r.sub, s("SSS"));
    assert_eq!(r.dlvrd, s("DDD"));
    assert_eq!(r.dlvrd_key, "dlvrd");
    assert_eq!(r.submit_date, s("YYMMDDhhmm"));
    assert_eq!(r.done_date, s("YYMMDDhhmm"));
    assert_eq!(r.stat, s("DDDDDDD"));
    assert_eq!(r.status(), Some(Stat::Other("DDDDDDD".to_owned())));
    assert_eq!(r.err, s("E"));
    assert_eq!(r.text_key, "Text");
    assert_eq!(r.text, s(" . . . . . . . . ."));
    assert!(matches!(r.done_at(), Err(ReceiptError::DateFormat { .. })));
    assert!(r.err_code(ErrRadix::Decimal).is_err());
}

#[test]
fn russian_provider_concrete_receipt() {
    let r = parse("id:2113974291 sub:001 dlvrd:001 submit date:2405141230 done date:2405141232 stat:DELIVRD err:0 Text:Kod: 4711, vhod v LK");
    assert_eq!(r.id, "2113974291");
    assert_eq!(r.status(), Some(Stat::Delivered));
    assert_eq!(r.err_code(ErrRadix::Decimal), Ok(Some(0)));
    // The text runs to the end, colons and spaces included.
    assert_eq!(r.text, s("Kod: 4711, vhod v LK"));
    assert_eq!(r.text_key, "Text");
    let done = r.done_at().ok().flatten();
    assert_eq!(done.map(|d| d.to_string()).as_deref(), Some("2405141232"));
}

// --- Seed 002, OVHcloud: standard text, decimal PTT codes ---

#[test]
fn ovh_standard_receipt_with_ptt_code() {
    // PTT 53: blacklisted (the recipient sent STOP).
    let r = parse("id:4f1e0c2a-77b1 sub:001 dlvrd:000 submit date:2405141230 done date:2405141230 stat:UNDELIV err:053 text:Promo -20% this week");
    assert_eq!(r.id, "4f1e0c2a-77b1");
    assert_eq!(r.status(), Some(Stat::Undeliverable));
    assert_eq!(r.err_code(ErrRadix::Decimal), Ok(Some(53)));
    assert_eq!(r.text, s("Promo -20% this week"));
    // PTT 254: pending.
    let r = parse("id:1 sub:001 dlvrd:000 submit date:2405141230 done date:2405141230 stat:ENROUTE err:254 text:");
    assert_eq!(r.status(), Some(Stat::Enroute));
    assert_eq!(r.err_code(ErrRadix::Decimal), Ok(Some(254)));
    assert_eq!(r.text, s(""));
}

// --- Seed 003, Telesign: 32-hex ids, hex err, SKIPPED ---

#[test]
fn telesign_hex_err() {
    let r = parse("id:0123456789ABCDEF0123456789ABCDEF sub:001 dlvrd:000 submit date:240514123005 done date:240514123107 stat:UNDELIV err:00B text:Your code is 123456");
    assert_eq!(r.id, "0123456789ABCDEF0123456789ABCDEF");
    assert_eq!(r.status(), Some(Stat::Undeliverable));
    // 0x0B: invalid destination address.
    assert_eq!(r.err_code(ErrRadix::Hex), Ok(Some(0x0B)));
    // Read as decimal, a hex err is refused rather than misread.
    assert!(matches!(
        r.err_code(ErrRadix::Decimal),
        Err(ReceiptError::Err {
            radix: ErrRadix::Decimal,
            ..
        })
    ));
    // 12-digit dates keep their seconds.
    let submitted = r.submitted_at().ok().flatten();
    assert_eq!(submitted.map(|d| d.has_seconds()), Some(true));
    assert_eq!(submitted.map(|d| d.local().second()), Some(5));
}

#[test]
fn telesign_err_values_from_the_table() {
    for (err, code) in [
        ("4BA", 0x4BA),        // suspected spam
        ("4b6", 0x4B6),        // blocked by subscriber
        ("000", 0),            // successful delivery
        ("0FF", 0xFF),         // unknown error
        ("0x000004A0", 0x4A0), // written as in the seed's table
    ] {
        let r = parse(&format!("id:a stat:UNDELIV err:{err}"));
        assert_eq!(r.err_code(ErrRadix::Hex), Ok(Some(code)), "{err}");
    }
}

#[test]
fn telesign_stat_values_and_message_state() {
    // Seed 003's table: message_state 2-9 and the matching stat.
    for (state, stat) in [
        (2, "DELIVRD"),
        (3, "EXPIRED"),
        (4, "DELETED"),
        (5, "UNDELIV"),
        (6, "ACCEPTD"),
        (7, "UNKNOWN"),
        (8, "REJECTD"),
        (9, "SKIPPED"),
    ] {
        let r = parse(&format!("id:ab12 stat:{stat} err:000"));
        let parsed = r.status();
        assert_eq!(parsed.as_ref().and_then(Stat::message_state), Some(state));
        assert_eq!(Stat::from_message_state(state), parsed);
        assert_eq!(parsed.map(|p| p.to_string()).as_deref(), Some(stat));
    }
    // The table's description column spells some states out.
    assert_eq!(Stat::parse("DELIVERED"), Stat::Delivered);
    assert_eq!(Stat::parse("UNDELIVERABLE"), Stat::Undeliverable);
    assert_eq!(Stat::parse("ACCEPTED"), Stat::Accepted);
    assert_eq!(Stat::from_message_state(0), None);
    assert_eq!(Stat::Enroute.message_state(), Some(1));
}

// --- Seed 004, Infobip / O2: `dlvrld`, stats with a space ---

/// The layout as printed in seed 004 (its double spaces and line breaks).
const INFOBIP_LAYOUT: &str = "id:<message_id> sub:<message_sub> dlvrld:<message_dlvrld>  \nsubmit date:<message_submit_date> done date:<message_done_date>  \nstat:<message_stat> err:<message_err>";

#[test]
fn infobip_layout_from_the_seed() {
    let r = parse(INFOBIP_LAYOUT);
    assert_eq!(r.id, "<message_id>");
    assert_eq!(r.sub, s("<message_sub>"));
    assert_eq!(r.dlvrd, s("<message_dlvrld>"));
    assert_eq!(r.dlvrd_key, "dlvrld");
    assert_eq!(r.submit_date, s("<message_submit_date>"));
    assert_eq!(r.done_date, s("<message_done_date>"));
    assert_eq!(r.stat, s("<message_stat>"));
    assert_eq!(r.err, s("<message_err>"));
    assert_eq!(r.text, None);
}

#[test]
fn infobip_stat_with_a_space() {
    let r = parse("id:40072141823503569 sub:001 dlvrld:000  \nsubmit date:2405141230 done date:2405141300  \nstat:DELIVERY UNKNOWN err:000");
    assert_eq!(r.stat, s("DELIVERY UNKNOWN"));
    assert_eq!(r.status(), Some(Stat::Unknown));
    assert_eq!(r.err, s("000"));
    assert_eq!(r.dlvrd_key, "dlvrld");
}

#[test]
fn infobip_statuses_from_the_seed() {
    for (stat, expected) in [
        ("DELIVRD", Stat::Delivered),
        ("EXPIRED", Stat::Expired),
        ("DELETED", Stat::Deleted),
        ("UNDELIV", Stat::Undeliverable),
        ("ACCEPTD", Stat::Accepted),
        ("DELIVERY UNKNOWN", Stat::Unknown),
        ("REJECTED", Stat::Rejected),
    ] {
        let r = parse(&format!(
            "id:1 sub:001 dlvrld:000 submit date:2405141230 done date:2405141300 stat:{stat} err:000"
        ));
        assert_eq!(r.status(), Some(expected), "{stat}");
        assert_eq!(r.stat.as_deref(), Some(stat));
    }
}

// --- SMPP 3.4 Appendix B and general tolerance ---

const STANDARD: &str = "id:0123456789 sub:001 dlvrd:001 submit date:0610190000 done date:0610190001 stat:DELIVRD err:000 text:Hello world, this is";

#[test]
fn appendix_b_layout() {
    let r = parse(APPENDIX_B_LAYOUT.replace('\n', " ").as_str());
    assert_eq!(r.id, "IIIIIIIIII");
    assert_eq!(r.text, s(" . . . . . . . . ."));
}

#[test]
fn standard_receipt_fields() {
    let r = parse(STANDARD);
    assert_eq!(r.id, "0123456789");
    assert_eq!(r.sub, s("001"));
    assert_eq!(r.dlvrd, s("001"));
    assert_eq!(r.status(), Some(Stat::Delivered));
    assert_eq!(r.err_code(ErrRadix::Decimal), Ok(Some(0)));
    assert_eq!(r.text, s("Hello world, this is"));
    let done = r.done_at().ok().flatten();
    // 2006-10-19T00:01 read as UTC.
    assert_eq!(
        done.map(|d| d.to_unix_millis(UtcOffset::UTC)),
        Some(1_161_216_060_000)
    );
    let plus_two = UtcOffset::from_quarter_hours(8).unwrap_or(UtcOffset::UTC);
    assert_eq!(
        done.map(|d| d.to_unix_millis(plus_two)),
        Some(1_161_216_060_000 - 7_200_000)
    );
    assert_eq!(done.map(|d| d.has_seconds()), Some(false));
}

#[test]
fn standard_receipt_round_trips() {
    let r = parse(STANDARD);
    assert_eq!(r.to_string(), STANDARD);
    assert_eq!(&r.to_bytes()[..], STANDARD.as_bytes());
    let twelve = "id:abc sub:001 dlvrd:000 submit date:240514123005 done date:240514123107 stat:EXPIRED err:4A3 Text:";
    assert_eq!(parse(twelve).to_string(), twelve);
}

#[test]
fn keys_are_case_insensitive_and_fields_in_any_order() {
    let r = parse("STAT:delivrd  ERR:000 Submit Date:2405141230 ID:XyZ dlvrd:001 SUB:001 done DATE:2405141231 TEXT:Hi");
    assert_eq!(r.id, "XyZ");
    assert_eq!(r.status(), Some(Stat::Delivered));
    assert_eq!(r.stat, s("delivrd"));
    assert_eq!(r.submit_date, s("2405141230"));
    assert_eq!(r.done_date, s("2405141231"));
    assert_eq!(r.text_key, "TEXT");
    assert_eq!(r.text, s("Hi"));
}

#[test]
fn spaces_around_colons_and_between_fields() {
    let r = parse("  id : 77\t sub:001\r\n\r\nstat :  DELIVRD   err:   000  ");
    assert_eq!(r.id, "77");
    assert_eq!(r.stat, s("DELIVRD"));
    assert_eq!(r.err, s("000"));
}

#[test]
fn missing_fields_are_allowed_but_not_the_id() {
    let r = parse("id:42");
    assert_eq!(r.id, "42");
    assert_eq!(
        (r.stat.clone(), r.err.clone(), r.text.clone()),
        (None, None, None)
    );
    assert_eq!(r.status(), None);
    assert_eq!(r.err_code(ErrRadix::Hex), Ok(None));
    assert_eq!(r.submitted_at(), Ok(None));
    assert_eq!(
        Receipt::parse(b"sub:001 stat:DELIVRD err:000"),
        Err(ReceiptError::MissingId)
    );
    assert_eq!(
        Receipt::parse(b"id: stat:DELIVRD"),
        Err(ReceiptError::MissingId)
    );
}

#[test]
fn text_is_last_and_may_hold_keys() {
    let r = parse("id:1 stat:DELIVRD text:id:2 stat:REJECTD err:9");
    assert_eq!(r.id, "1");
    assert_eq!(r.status(), Some(Stat::Delivered));
    assert_eq!(r.err, None);
    assert_eq!(r.text, s("id:2 stat:REJECTD err:9"));
}

#[test]
fn unknown_fields_are_kept_in_order() {
    let r = parse("id:1 sub:001 mcc:214 dlvrd:001 stat:DELIVRD price:0.0075 USD err:000 text:x");
    assert_eq!(
        r.extra,
        vec![
            ("mcc".to_owned(), "214".to_owned()),
            ("price".to_owned(), "0.0075 USD".to_owned()),
        ]
    );
    assert_eq!(
        r.to_string(),
        "id:1 sub:001 dlvrd:001 stat:DELIVRD err:000 mcc:214 price:0.0075 USD text:x"
    );
}

#[test]
fn repeated_known_fields_keep_the_first_and_lose_nothing() {
    let r = parse("id:1 id:2 stat:DELIVRD");
    assert_eq!(r.id, "1");
    assert_eq!(r.extra, vec![("id".to_owned(), "2".to_owned())]);
}

#[test]
fn colons_inside_values_do_not_start_keys() {
    let r = parse("id:urn:msg:17 stat:DELIVRD");
    assert_eq!(r.id, "urn:msg:17");
}

#[test]
fn ordinary_messages_are_not_receipts() {
    for text in ["Hello, see you at 10:30", "", "   ", ":", "id", "123 id:4"] {
        assert!(
            matches!(
                Receipt::parse(text.as_bytes()),
                Err(ReceiptError::NotAReceipt { .. })
            ),
            "{text:?}"
        );
    }
    // A message that looks like one `key:` but has no id.
    assert_eq!(
        Receipt::parse(b"Note: call me"),
        Err(ReceiptError::MissingId)
    );
}

#[test]
fn octets_are_latin1_and_come_back_unchanged() {
    let raw = b"id:7 stat:DELIVRD text:caf\xe9 \x00\x1b\xff";
    let r = Receipt::parse(raw).unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(r.text, s("caf\u{e9} \u{0}\u{1b}\u{ff}"));
    assert_eq!(&r.to_bytes()[..], &raw[..]);
}

#[test]
fn trailing_nul_is_not_part_of_a_value() {
    let r = parse("id:7 stat:DELIVRD err:000\0");
    assert_eq!(r.err, s("000"));
}

// --- Receipts Tern builds for its clients ---

#[test]
fn canonical_receipt_layout() {
    let submitted = ReceiptDate::parse("2405141230");
    let done = ReceiptDate::parse("2405141231");
    let (Ok(submitted), Ok(done)) = (submitted, done) else {
        panic!("dates");
    };
    let r = Receipt::canonical("T000000042", Stat::Undeliverable, submitted, done)
        .with_err(27)
        .with_text("Your verification code is 123456");
    assert_eq!(
        r.to_string(),
        "id:T000000042 sub:001 dlvrd:000 submit date:2405141230 done date:2405141231 stat:UNDELIV err:027 text:Your verification co"
    );
    assert_eq!(Receipt::parse(&r.to_bytes()), Ok(r));
}

#[test]
fn canonical_receipt_defaults() {
    let Ok(at) = ReceiptDate::from_unix_millis(1_715_689_805_000, true) else {
        panic!("date");
    };
    let r = Receipt::canonical("abc", Stat::Delivered, at, at).with_counts(2, 2);
    assert_eq!(
        r.to_string(),
        "id:abc sub:002 dlvrd:002 submit date:240514123005 done date:240514123005 stat:DELIVRD err:000 text:"
    );
    let Ok(minute) = ReceiptDate::from_unix_millis(1_715_689_805_000, false) else {
        panic!("date");
    };
    assert_eq!(minute.to_string(), "2405141230");
    assert_eq!(minute.to_unix_millis(UtcOffset::UTC), 1_715_689_800_000);
    assert!(ReceiptDate::from_unix_millis(0, false).is_err());
}

#[test]
fn receipt_dates_are_validated_when_read() {
    assert!(ReceiptDate::parse("2402291200").is_ok());
    assert!(matches!(
        ReceiptDate::parse("2302291200"),
        Err(ReceiptError::DateValue { .. })
    ));
    assert!(matches!(
        ReceiptDate::parse("24051412300"),
        Err(ReceiptError::DateFormat { .. })
    ));
    assert!(matches!(
        ReceiptDate::parse("24-05-1412"),
        Err(ReceiptError::DateFormat { .. })
    ));
    assert!(matches!(
        ReceiptDate::parse("240514123060"),
        Err(ReceiptError::DateValue { .. })
    ));
}

#[test]
fn err_radix_refuses_signs_and_junk() {
    for raw in ["", "+5", "-5", "1 2", "0x"] {
        assert!(ErrRadix::Decimal.parse(raw).is_err(), "{raw:?}");
        assert!(ErrRadix::Hex.parse(raw).is_err(), "{raw:?}");
    }
    assert!(ErrRadix::Hex.parse("12G").is_err());
    assert!(ErrRadix::Hex.parse("100000000").is_err());
    assert_eq!(ErrRadix::Decimal.parse("0027"), Ok(27));
    assert_eq!(ErrRadix::Hex.parse("0X1f"), Ok(31));
}

#[test]
fn stat_parsing_normalises_case_and_spaces_only() {
    assert_eq!(Stat::parse(" delivery   unknown "), Stat::Unknown);
    assert_eq!(Stat::parse("Rejectd"), Stat::Rejected);
    assert_eq!(Stat::parse(" FAILED "), Stat::Other("FAILED".to_owned()));
    assert_eq!(Stat::Other("FAILED".to_owned()).message_state(), None);
}

/// Pieces receipts are made of, to steer random inputs into the parser's
/// corners (two-word keys cut short, empty values, NULs, text anywhere).
fn receipt_like() -> impl Strategy<Value = Vec<u8>> {
    let piece = prop::sample::select(vec![
        "id",
        "id:",
        "sub:",
        "dlvrd",
        "dlvr:",
        "submit",
        "done",
        "date",
        "date:",
        "stat:",
        "err:",
        "text:",
        "Text",
        ":",
        " ",
        "  ",
        "\n",
        "\0",
        "x",
        "DELIVERY UNKNOWN",
        "0",
        "\u{ff}",
    ]);
    prop::collection::vec(piece, 0..24).prop_map(|pieces| {
        pieces
            .concat()
            .chars()
            .map(|c| u8::try_from(u32::from(c)).unwrap_or(b'?'))
            .collect()
    })
}

proptest! {
    #[test]
    fn parse_never_panics(bytes in prop::collection::vec(any::<u8>(), 0..300)) {
        if let Ok(r) = Receipt::parse(&bytes) {
            prop_assert!(!r.id.is_empty());
            let _ = (r.status(), r.err_code(ErrRadix::Hex), r.submitted_at(), r.to_bytes());
        }
    }

    #[test]
    fn parse_never_panics_on_receipt_like_text(bytes in receipt_like()) {
        if let Ok(r) = Receipt::parse(&bytes) {
            prop_assert!(!r.id.is_empty());
            let _ = (r.err_code(ErrRadix::Decimal), r.done_at(), r.to_bytes());
        }
    }

    #[test]
    fn standard_receipts_round_trip(
        id in "[0-9A-Za-z]{1,32}",
        sub in "[0-9]{3}",
        dlvrd in "[0-9]{3}",
        submit in "[0-9]{10}|[0-9]{12}",
        done in "[0-9]{10}|[0-9]{12}",
        stat in prop::sample::select(vec![
            "DELIVRD", "EXPIRED", "DELETED", "UNDELIV", "ACCEPTD", "UNKNOWN", "REJECTD",
            "ENROUTE", "SKIPPED",
        ]),
        err in "[0-9A-F]{3}",
        text in "[ -~]{0,20}",
    ) {
        let input = format!(
            "id:{id} sub:{sub} dlvrd:{dlvrd} submit date:{submit} done date:{done} stat:{stat} err:{err} text:{text}"
        );
        let r = Receipt::parse(input.as_bytes());
        prop_assert!(r.is_ok(), "{input}: {r:?}");
        let r = r.map_err(|e| TestCaseError::fail(e.to_string()))?;
        prop_assert_eq!(r.to_string(), input);
        prop_assert_eq!(r.text.as_deref(), Some(text.as_str()));
    }

    /// The one-buffer form Tern sends writes the same octets as the
    /// composed receipt, for any id, state, dates, err (four- and
    /// five-digit codes too) and text (beyond Latin-1 too).
    #[test]
    fn canonical_bytes_are_the_composed_receipts_octets(
        id in "\\PC{1,40}",
        state in 1u8..=9,
        submitted_ms in 946_684_800_000i64..4_102_444_800_000,
        done_ms in 946_684_800_000i64..4_102_444_800_000,
        seconds in any::<bool>(),
        err in any::<u16>(),
        message in "\\PC{0,40}",
    ) {
        let stat = Stat::from_message_state(state).unwrap_or(Stat::Unknown);
        let submitted = ReceiptDate::from_unix_millis(submitted_ms, seconds)
            .map_err(|e| TestCaseError::fail(e.to_string()))?;
        let done = ReceiptDate::from_unix_millis(done_ms, !seconds)
            .map_err(|e| TestCaseError::fail(e.to_string()))?;
        let composed = Receipt::canonical(id.as_str(), stat.clone(), submitted, done)
            .with_err(err)
            .with_text(&message)
            .to_bytes();
        prop_assert_eq!(
            Receipt::canonical_bytes(&id, &stat, submitted, done, err, &message),
            composed
        );
    }

    #[test]
    fn canonical_receipts_read_back(
        id in "[0-9A-Za-z_-]{1,64}",
        state in 1u8..=9,
        ms in 946_684_800_000i64..4_102_444_800_000,
        seconds in any::<bool>(),
        err in 0u16..1000,
        message in "\\PC{0,40}",
    ) {
        let stat = Stat::from_message_state(state).unwrap_or(Stat::Unknown);
        let at = ReceiptDate::from_unix_millis(ms, seconds)
            .map_err(|e| TestCaseError::fail(e.to_string()))?;
        let r = Receipt::canonical(id, stat, at, at).with_err(err).with_text(&message);
        prop_assert!(r.text.as_ref().is_some_and(|t| t.chars().count() <= 20));
        prop_assert_eq!(r.submitted_at(), Ok(Some(at)));
        prop_assert_eq!(r.err_code(ErrRadix::Decimal), Ok(Some(u32::from(err))));
        if message.chars().all(|c| u32::from(c) <= 0xff) {
            prop_assert_eq!(Receipt::parse(&r.to_bytes()), Ok(r));
        }
    }
}
