//! SMPP time (SMPP 3.4 §7.1.1): vectors from the spec's field definitions
//! and the vendor seeds (Infobip's relative example), conversions checked
//! against Unix times computed independently (`date -u -d … +%s`), and
//! properties: no input panics, formatting reproduces what was parsed.

use proptest::prelude::*;
use tern_codec::time::{
    AbsoluteTime, OffsetSign, RelativeTime, SmppTime, TimeError, TimeField, TimeProblem, UtcOffset,
};

/// 2024-01-01T00:00:00Z
const JAN_1_2024: i64 = 1_704_067_200_000;
/// 2023-01-31T10:00:00Z
const JAN_31_2023_10H: i64 = 1_675_159_200_000;
/// 2024-01-31T00:00:00Z
const JAN_31_2024: i64 = 1_706_659_200_000;
const HOUR: i64 = 3_600_000;
const DAY: i64 = 24 * HOUR;

fn absolute(s: &str) -> AbsoluteTime {
    match SmppTime::parse(s.as_bytes()) {
        Ok(SmppTime::Absolute(t)) => t,
        other => panic!("{s}: expected an absolute time, got {other:?}"),
    }
}

fn relative(s: &str) -> RelativeTime {
    match SmppTime::parse(s.as_bytes()) {
        Ok(SmppTime::Relative(t)) => t,
        other => panic!("{s}: expected a relative time, got {other:?}"),
    }
}

fn problem(s: &[u8]) -> TimeProblem {
    match SmppTime::parse(s) {
        Err(TimeError::Parse { problem, .. }) => problem,
        other => panic!("{s:?}: expected a parse error, got {other:?}"),
    }
}

#[test]
fn absolute_fields_are_read_as_written() {
    let t = absolute("240229235958732-");
    assert_eq!(
        (
            t.year(),
            t.month(),
            t.day(),
            t.hour(),
            t.minute(),
            t.second()
        ),
        (2024, 2, 29, 23, 59, 58)
    );
    assert_eq!(t.tenths(), 7);
    assert_eq!(t.offset().quarters(), 32);
    assert_eq!(t.offset().sign(), OffsetSign::Minus);
    assert_eq!(t.offset().minutes(), -480);
}

#[test]
fn years_00_to_99_are_2000_to_2099() {
    assert_eq!(absolute("000101000000000+").year(), 2000);
    assert_eq!(absolute("991231235959900+").year(), 2099);
}

#[test]
fn utc_offset_in_quarter_hours_both_directions() {
    // Local midnight, 8 hours ahead of UTC: 16:00 UTC the day before.
    assert_eq!(
        absolute("240101000000032+").to_unix_millis(),
        JAN_1_2024 - 8 * HOUR
    );
    // Local midnight, 8 hours behind UTC: 08:00 UTC.
    assert_eq!(
        absolute("240101000000032-").to_unix_millis(),
        JAN_1_2024 + 8 * HOUR
    );
    // One quarter hour, and the 48-quarter (12 h) maximum.
    assert_eq!(
        absolute("240101000000001+").to_unix_millis(),
        JAN_1_2024 - HOUR / 4
    );
    assert_eq!(
        absolute("240101000000048-").to_unix_millis(),
        JAN_1_2024 + 12 * HOUR
    );
    assert_eq!(absolute("240101000000000+").to_unix_millis(), JAN_1_2024);
    assert_eq!(absolute("240101000000000-").to_unix_millis(), JAN_1_2024);
}

#[test]
fn tenths_count_in_unix_time() {
    assert_eq!(
        absolute("240101000000500+").to_unix_millis(),
        JAN_1_2024 + 500
    );
}

#[test]
fn offset_above_48_quarters_is_rejected() {
    assert_eq!(
        problem(b"240101000000049+"),
        TimeProblem::OutOfRange {
            field: TimeField::Offset,
            value: 49
        }
    );
}

#[test]
fn leap_years() {
    absolute("240229120000000+");
    absolute("000229120000000+"); // 2000 is a leap year (divisible by 400)
    assert_eq!(
        problem(b"230229120000000+"),
        TimeProblem::OutOfRange {
            field: TimeField::Day,
            value: 29
        }
    );
    assert!(matches!(
        problem(b"240230120000000+"),
        TimeProblem::OutOfRange {
            field: TimeField::Day,
            ..
        }
    ));
}

#[test]
fn every_field_is_range_checked() {
    let cases: [(&[u8], TimeField); 7] = [
        (b"241301000000000+", TimeField::Month),
        (b"240001000000000+", TimeField::Month),
        (b"240100000000000+", TimeField::Day),
        (b"240431000000000+", TimeField::Day),
        (b"240101240000000+", TimeField::Hour),
        (b"240101006000000+", TimeField::Minute),
        (b"240101000060000+", TimeField::Second),
    ];
    for (input, field) in cases {
        assert!(
            matches!(problem(input), TimeProblem::OutOfRange { field: f, .. } if f == field),
            "{input:?}"
        );
    }
}

#[test]
fn malformed_text_is_an_error_naming_the_problem() {
    assert_eq!(problem(b""), TimeProblem::Length(0));
    assert_eq!(problem(b"24010100000000+"), TimeProblem::Length(15));
    assert_eq!(problem(b"240101000000000+\0"), TimeProblem::Length(17));
    assert_eq!(problem(b"240101000000000X"), TimeProblem::Direction);
    assert_eq!(problem(b"240101000000000 "), TimeProblem::Direction);
    assert_eq!(
        problem(b"2401010000000 0+"),
        TimeProblem::NotDigits(TimeField::Offset)
    );
    assert_eq!(
        problem(b"-40101000000000+"),
        TimeProblem::NotDigits(TimeField::Year)
    );
    assert_eq!(
        problem(b"240101000000x00+"),
        TimeProblem::NotDigits(TimeField::Tenths)
    );
}

#[test]
fn errors_show_the_offending_bytes() {
    let err = SmppTime::parse(b"241301000000000+")
        .err()
        .map(|e| e.to_string());
    let msg = err.unwrap_or_default();
    assert!(msg.contains("241301000000000+"), "{msg}");
    assert!(msg.contains("month"), "{msg}");
    let err = SmppTime::parse(b"\xff\x00").err().map(|e| e.to_string());
    assert!(err.unwrap_or_default().contains("\\xff\\x00"));
}

#[test]
fn empty_field_means_not_given() {
    assert_eq!(SmppTime::parse_optional(b""), Ok(None));
    assert!(matches!(
        SmppTime::parse_optional(b"000001000000000R"),
        Ok(Some(SmppTime::Relative(_)))
    ));
    assert!(SmppTime::parse_optional(b"0").is_err());
}

#[test]
fn relative_one_day() {
    let t = relative("000001000000000R");
    assert_eq!((t.years(), t.months(), t.days()), (0, 0, 1));
    assert_eq!(t.resolve(JAN_1_2024), Ok(JAN_1_2024 + DAY));
    let abs = t.to_absolute(JAN_1_2024, UtcOffset::UTC);
    assert_eq!(
        abs.map(|a| a.to_string()).as_deref(),
        Ok("240102000000000+")
    );
}

#[test]
fn relative_months_clamp_to_the_month_length() {
    let one_month = relative("000100000000000R");
    // 2023-01-31T10:00Z + 1 month = 2023-02-28T10:00Z (no Feb 29 in 2023).
    assert_eq!(
        one_month.resolve(JAN_31_2023_10H),
        Ok(JAN_31_2023_10H + 28 * DAY)
    );
    // 2024-01-31 + 1 month = 2024-02-29 (leap year).
    let abs = one_month.to_absolute(JAN_31_2024, UtcOffset::UTC);
    assert_eq!(
        abs.map(|a| a.to_string()).as_deref(),
        Ok("240229000000000+")
    );
    // Years count on the calendar too: 2024-02-29 + 1 year = 2025-02-28.
    let feb29 = absolute("240229000000000+").to_unix_millis();
    let abs = relative("010000000000000R").to_absolute(feb29, UtcOffset::UTC);
    assert_eq!(
        abs.map(|a| a.to_string()).as_deref(),
        Ok("250228000000000+")
    );
}

#[test]
fn infobip_relative_example() {
    // Seed 004: "070605040302100R" - 7 years, 6 months, 5 days, 4 hours,
    // 3 minutes, 2 seconds and 1 tenth of a second from now.
    let t = relative("070605040302100R");
    assert_eq!(
        (
            t.years(),
            t.months(),
            t.days(),
            t.hours(),
            t.minutes(),
            t.seconds(),
            t.tenths()
        ),
        (7, 6, 5, 4, 3, 2, 1)
    );
    assert_eq!(&t.to_bytes(), b"070605040302100R");
    let abs = t.to_absolute(JAN_1_2024, UtcOffset::UTC);
    assert_eq!(
        abs.map(|a| a.to_string()).as_deref(),
        Ok("310706040302100+")
    );
}

#[test]
fn relative_offset_digits_must_be_00() {
    assert_eq!(problem(b"000001000000010R"), TimeProblem::RelativeOffset);
    assert_eq!(problem(b"000001000000001R"), TimeProblem::RelativeOffset);
}

#[test]
fn relative_fields_are_spans_not_calendar_positions() {
    // 48 hours is a valid span; it resolves to 2 days.
    let t = relative("000000480000000R");
    assert_eq!(t.resolve(JAN_1_2024), Ok(JAN_1_2024 + 2 * DAY));
    assert_eq!(&t.to_bytes(), b"000000480000000R");
}

#[test]
fn display_and_from_str_round_trip() {
    for s in ["240229235958732-", "000101000000000+", "070605040302100R"] {
        let t: SmppTime = s.parse().unwrap_or_else(|e| panic!("{s}: {e}"));
        assert_eq!(t.to_string(), s);
        assert_eq!(&t.to_bytes(), s.as_bytes());
    }
}

#[test]
fn smpp_time_resolves_either_form() {
    let abs = SmppTime::Absolute(absolute("240101000000000+"));
    assert_eq!(abs.to_unix_millis(0), Ok(JAN_1_2024));
    let rel = SmppTime::Relative(relative("000000010000000R"));
    assert_eq!(rel.to_unix_millis(JAN_1_2024), Ok(JAN_1_2024 + HOUR));
}

#[test]
fn from_unix_millis_writes_local_time_at_the_offset() {
    let plus_one_hour = UtcOffset::new(4, OffsetSign::Plus).unwrap_or(UtcOffset::UTC);
    let t = AbsoluteTime::from_unix_millis(JAN_1_2024 + 123, plus_one_hour);
    assert_eq!(t.map(|t| t.to_string()).as_deref(), Ok("240101010000104+"));
    let minus = UtcOffset::from_quarter_hours(-2).unwrap_or(UtcOffset::UTC);
    let t = AbsoluteTime::from_unix_millis(JAN_1_2024, minus);
    assert_eq!(t.map(|t| t.to_string()).as_deref(), Ok("231231233000002-"));
}

#[test]
fn from_unix_millis_outside_2000_2099_is_an_error() {
    assert!(matches!(
        AbsoluteTime::from_unix_millis(0, UtcOffset::UTC),
        Err(TimeError::Unrepresentable { unix_ms: 0 })
    ));
    assert!(AbsoluteTime::from_unix_millis(i64::MAX, UtcOffset::UTC).is_err());
    assert!(AbsoluteTime::from_unix_millis(i64::MIN, UtcOffset::UTC).is_err());
    // 2099-12-31T23:00Z is 2100 at +01:00.
    let late = absolute("991231230000000+").to_unix_millis();
    let plus_one_hour = UtcOffset::new(4, OffsetSign::Plus).unwrap_or(UtcOffset::UTC);
    assert!(AbsoluteTime::from_unix_millis(late, plus_one_hour).is_err());
}

#[test]
fn relative_arithmetic_near_i64_limits_is_an_error_not_a_panic() {
    let t = relative("999999999999900R");
    assert!(t.resolve(i64::MAX).is_err());
    assert!(t.resolve(i64::MIN).is_ok());
}

#[test]
fn to_relative_is_normalised_calendar_wise() {
    // 2024-01-31 -> 2024-03-01: one month (to Feb 29) and one day.
    let target = absolute("240301000000000+");
    let rel = target.to_relative(JAN_31_2024);
    assert_eq!(
        rel.map(|r| r.to_string()).as_deref(),
        Ok("000101000000000R")
    );
    // 40 days and a bit from 2024-01-01: 1 month, 9 days, 3h 2m 1s.
    let target = absolute("240210030201000+");
    let rel = target.to_relative(JAN_1_2024);
    assert_eq!(
        rel.map(|r| r.to_string()).as_deref(),
        Ok("000109030201000R")
    );
    // An offset counts: 01:00 at +01:00 is midnight UTC.
    let rel = absolute("240101010000004+").to_relative(JAN_1_2024);
    assert_eq!(
        rel.map(|r| r.to_string()).as_deref(),
        Ok("000000000000000R")
    );
}

#[test]
fn to_relative_of_the_past_is_an_error() {
    let t = absolute("231231235959900+");
    assert_eq!(
        t.to_relative(JAN_1_2024),
        Err(TimeError::InPast {
            target_ms: JAN_1_2024 - 100,
            now_ms: JAN_1_2024
        })
    );
}

#[test]
fn to_relative_beyond_99_years_is_an_error() {
    let t = absolute("991231235959900+");
    assert!(matches!(
        t.to_relative(JAN_1_2024 - 100 * 366 * DAY),
        Err(TimeError::TooFar { .. })
    ));
    assert!(matches!(
        t.to_relative(i64::MIN),
        Err(TimeError::TooFar { .. })
    ));
}

#[test]
fn to_relative_drops_tenths_as_the_spec_asks() {
    let rel = absolute("240101000001900+").to_relative(JAN_1_2024);
    assert_eq!(
        rel.map(|r| r.to_string()).as_deref(),
        Ok("000000000001000R")
    );
}

#[test]
fn constructors_validate() {
    let ok = AbsoluteTime::new(2024, 2, 29, 23, 59, 59, UtcOffset::UTC);
    assert_eq!(ok.map(|t| t.to_string()).as_deref(), Ok("240229235959000+"));
    assert!(AbsoluteTime::new(2023, 2, 29, 0, 0, 0, UtcOffset::UTC).is_err());
    assert!(AbsoluteTime::new(1999, 1, 1, 0, 0, 0, UtcOffset::UTC).is_err());
    assert!(AbsoluteTime::new(2100, 1, 1, 0, 0, 0, UtcOffset::UTC).is_err());
    assert!(RelativeTime::new(0, 0, 100, 0, 0, 0).is_err());
    let rel = RelativeTime::new(0, 0, 7, 0, 0, 0).and_then(|r| r.with_tenths(3));
    assert_eq!(
        rel.map(|r| r.to_string()).as_deref(),
        Ok("000007000000300R")
    );
    assert!(RelativeTime::new(0, 0, 0, 0, 0, 0)
        .and_then(|r| r.with_tenths(10))
        .is_err());
    assert!(UtcOffset::new(49, OffsetSign::Plus).is_err());
    assert!(UtcOffset::from_quarter_hours(-49).is_err());
    assert!(UtcOffset::from_quarter_hours(i8::MIN).is_err());
    assert_eq!(
        UtcOffset::from_quarter_hours(-48).map(|o| o.minutes()),
        Ok(-720)
    );
}

/// A valid absolute time's text, from independently chosen fields.
fn valid_absolute() -> impl Strategy<Value = String> {
    (
        0u32..100,
        1u32..13,
        1u32..32,
        0u32..24,
        0u32..60,
        0u32..60,
        0u32..10,
        0u32..49,
        prop::bool::ANY,
    )
        .prop_filter("day must exist in the month", |(y, m, d, ..)| {
            let leap = y % 4 == 0; // 2000-2099: every 4th year, 2000 included
            let len = match m {
                2 if leap => 29,
                2 => 28,
                4 | 6 | 9 | 11 => 30,
                _ => 31,
            };
            *d <= len
        })
        .prop_map(|(y, m, d, h, mi, s, t, nn, plus)| {
            let p = if plus { '+' } else { '-' };
            format!("{y:02}{m:02}{d:02}{h:02}{mi:02}{s:02}{t}{nn:02}{p}")
        })
}

proptest! {
    #[test]
    fn parse_never_panics_on_16_bytes(bytes in prop::array::uniform16(any::<u8>())) {
        let _ = SmppTime::parse(&bytes);
    }

    #[test]
    fn parse_never_panics_on_any_length(bytes in prop::collection::vec(any::<u8>(), 0..40)) {
        let _ = SmppTime::parse_optional(&bytes);
    }

    #[test]
    fn parse_never_panics_on_near_valid_text(s in "[0-9]{15}[-+R0-9 ]") {
        if let Ok(t) = SmppTime::parse(s.as_bytes()) {
            prop_assert_eq!(t.to_string(), s);
        }
    }

    #[test]
    fn conversions_never_panic_at_any_now(
        rel in "[0-9]{13}00R",
        abs in valid_absolute(),
        now in any::<i64>(),
    ) {
        if let Ok(SmppTime::Relative(r)) = SmppTime::parse(rel.as_bytes()) {
            let _ = r.to_absolute(now, UtcOffset::UTC);
        }
        if let Ok(SmppTime::Absolute(a)) = SmppTime::parse(abs.as_bytes()) {
            let _ = a.to_relative(now);
        }
        let _ = AbsoluteTime::from_unix_millis(now, UtcOffset::UTC);
    }

    #[test]
    fn absolute_text_round_trips(s in valid_absolute()) {
        let t = SmppTime::parse(s.as_bytes());
        prop_assert!(t.is_ok(), "{s}: {t:?}");
        let t = t.map_err(|e| TestCaseError::fail(e.to_string()))?;
        prop_assert_eq!(&t.to_bytes(), s.as_bytes());
    }

    #[test]
    fn relative_text_round_trips(s in "[0-9]{13}00R") {
        let t = SmppTime::parse(s.as_bytes());
        prop_assert!(matches!(t, Ok(SmppTime::Relative(_))), "{s}: {t:?}");
        let t = t.map_err(|e| TestCaseError::fail(e.to_string()))?;
        prop_assert_eq!(t.to_string(), s);
    }

    #[test]
    fn absolute_unix_absolute_round_trips(s in valid_absolute()) {
        let t = SmppTime::parse(s.as_bytes());
        if let Ok(SmppTime::Absolute(t)) = t {
            let back = AbsoluteTime::from_unix_millis(t.to_unix_millis(), t.offset());
            prop_assert_eq!(back, Ok(t));
        } else {
            prop_assert!(false, "{s}: {t:?}");
        }
    }

    #[test]
    fn unix_absolute_unix_keeps_tenths(
        // 2000-01-02 .. 2099-12-30, so every offset stays within 2000-2099.
        ms in 946_771_200_000i64..4_102_185_600_000,
        quarters in -48i8..=48,
    ) {
        let offset = UtcOffset::from_quarter_hours(quarters)
            .map_err(|e| TestCaseError::fail(e.to_string()))?;
        let t = AbsoluteTime::from_unix_millis(ms, offset)
            .map_err(|e| TestCaseError::fail(e.to_string()))?;
        prop_assert_eq!(t.to_unix_millis(), ms - ms.rem_euclid(100));
        prop_assert_eq!(t.offset(), offset);
    }

    #[test]
    fn to_relative_then_resolve_comes_back(
        s in valid_absolute(),
        now in 946_771_200_000i64..4_102_185_600_000,
    ) {
        if let Ok(SmppTime::Absolute(t)) = SmppTime::parse(s.as_bytes()) {
            let target = t.to_unix_millis();
            match t.to_relative(now) {
                Ok(rel) => {
                    prop_assert!(rel.months() < 12 && rel.days() < 31 && rel.hours() < 24);
                    prop_assert!(rel.minutes() < 60 && rel.seconds() < 60 && rel.tenths() == 0);
                    let back = rel.resolve(now).map_err(|e| TestCaseError::fail(e.to_string()))?;
                    prop_assert!(back <= target && target - back < 1_000, "{s} now={now} {rel}");
                }
                Err(TimeError::InPast { .. }) => prop_assert!(target < now),
                Err(e) => prop_assert!(false, "{s} now={now}: {e}"),
            }
        }
    }
}
