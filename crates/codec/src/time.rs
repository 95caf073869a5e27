//! SMPP time values (SMPP 3.4 §7.1.1): `schedule_delivery_time`,
//! `validity_period` and the dates `query_sm_resp` reports.
//!
//! On the wire a time is a C-octet string of 17 octets (16 characters and the
//! NUL) or of one octet (NUL only: "immediately" / "the SMSC's default"). The
//! PDU layer strips the NUL and hands this module the 16 characters:
//!
//! - absolute `YYMMDDhhmmsstnnp`: local time, `t` tenths of a second, `nn` the
//!   distance from UTC in quarter hours (00–48) and `p` its direction, `+`
//!   (local time ahead of UTC) or `-`;
//! - relative `YYMMDDhhmmsstnnR`: a span counted from the SMSC's "now".
//!
//! Invariants:
//! - every value held by [`AbsoluteTime`] / [`RelativeTime`] is in range, so
//!   formatting always yields 16 valid characters;
//! - parsing keeps every field as given (offset direction of `00`, tenths), so
//!   [`SmppTime::to_bytes`] of a parsed value is the parsed input, byte for byte;
//! - absolute fields are checked strictly (month 1–12, a day the month has,
//!   leap years included, hour < 24, minute and second < 60, `nn` ≤ 48);
//!   relative ones are spans, any 00–99 each; a relative time's `nn` must be
//!   `00`, but its `t` may be any digit and counts as tenths, because Infobip
//!   documents `070605040302100R` that way;
//! - `YY` is always read as 2000–2099: SMPP has no century, and every date a
//!   broker sees today falls there;
//! - conversions use Unix time in milliseconds (UTC) as `i64` and need no
//!   calendar crate; the calendar is the proleptic Gregorian one.
//!
//! No input panics: arithmetic on caller-supplied instants is checked.

use std::fmt;
use std::str::FromStr;

/// Length of an SMPP time without its terminating NUL.
pub const TIME_LEN: usize = 16;

const MS_PER_SECOND: i64 = 1_000;
const MS_PER_MINUTE: i64 = 60 * MS_PER_SECOND;
const MS_PER_HOUR: i64 = 60 * MS_PER_MINUTE;
const MS_PER_DAY: i64 = 24 * MS_PER_HOUR;

/// The largest UTC offset SMPP can express: 48 quarter hours = 12 hours.
const MAX_OFFSET_QUARTERS: u8 = 48;

/// Which part of an SMPP time a [`TimeProblem`] is about.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum TimeField {
    /// `YY`
    Year,
    /// `MM`
    Month,
    /// `DD`
    Day,
    /// `hh`
    Hour,
    /// `mm`
    Minute,
    /// `ss`
    Second,
    /// `t`
    Tenths,
    /// `nn`
    Offset,
}

impl fmt::Display for TimeField {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            TimeField::Year => "year (YY)",
            TimeField::Month => "month (MM)",
            TimeField::Day => "day (DD)",
            TimeField::Hour => "hour (hh)",
            TimeField::Minute => "minute (mm)",
            TimeField::Second => "second (ss)",
            TimeField::Tenths => "tenths of a second (t)",
            TimeField::Offset => "UTC offset in quarter hours (nn)",
        })
    }
}

/// What is wrong with a time's text or with the fields given to a constructor.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum TimeProblem {
    /// The text is not 16 characters long.
    #[error("expected 16 characters, got {0}")]
    Length(usize),
    /// A field holds something other than decimal digits.
    #[error("{0} is not decimal digits")]
    NotDigits(TimeField),
    /// A field is outside its range (including a day the month does not have).
    #[error("{field} {value} is out of range")]
    OutOfRange {
        /// The offending field.
        field: TimeField,
        /// Its value as read or given.
        value: u16,
    },
    /// The last character is none of `+`, `-`, `R`.
    #[error("last character must be '+', '-' or 'R'")]
    Direction,
    /// A relative time whose `nn` is not `00`.
    #[error("a relative time must have \"00\" as its UTC offset digits (nn)")]
    RelativeOffset,
}

/// Why an SMPP time could not be read, built or converted.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum TimeError {
    /// The text handed to [`SmppTime::parse`] is not a valid SMPP time.
    #[error("invalid SMPP time `{input}`: {problem}")]
    Parse {
        /// The offending bytes, escaped for logs (first 40 at most).
        input: String,
        /// What is wrong with them.
        problem: TimeProblem,
    },
    /// A constructor was given a field out of range.
    #[error("invalid SMPP time value: {0}")]
    Value(TimeProblem),
    /// The instant falls outside 2000–2099 (in the requested offset), or the
    /// arithmetic left the range of `i64` milliseconds.
    #[error("unix time {unix_ms} ms cannot be expressed as an SMPP time (years 2000-2099 only)")]
    Unrepresentable {
        /// The instant, or the "now" the computation started from.
        unix_ms: i64,
    },
    /// A relative time cannot point into the past.
    #[error("time {target_ms} ms is before now ({now_ms} ms): a relative time cannot be negative")]
    InPast {
        /// The absolute time, as Unix milliseconds.
        target_ms: i64,
        /// The "now" it was compared with.
        now_ms: i64,
    },
    /// The span does not fit in a relative time's 99 years.
    #[error("{target_ms} ms is more than 99 years after now ({now_ms} ms)")]
    TooFar {
        /// The absolute time, as Unix milliseconds.
        target_ms: i64,
        /// The "now" it was compared with.
        now_ms: i64,
    },
}

impl TimeError {
    fn parse(input: &[u8], problem: TimeProblem) -> Self {
        TimeError::Parse {
            input: escape(input),
            problem,
        }
    }
}

/// Escapes at most 40 bytes for an error message: the input may be anything.
fn escape(input: &[u8]) -> String {
    input
        .iter()
        .take(40)
        .flat_map(|b| b.escape_ascii())
        .map(char::from)
        .collect()
}

/// Direction of a UTC offset: the `p` character of an absolute time.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum OffsetSign {
    /// `+`: local time is ahead of UTC.
    Plus,
    /// `-`: local time is behind UTC.
    Minus,
}

/// A UTC offset as SMPP writes it: quarter hours (0–48) and a direction.
///
/// The direction is kept even for `00`, because `00+` and `00-` are both seen
/// on the wire and re-formatting must reproduce what was read.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct UtcOffset {
    quarters: u8,
    sign: OffsetSign,
}

impl UtcOffset {
    /// UTC itself, written `00+`.
    pub const UTC: UtcOffset = UtcOffset {
        quarters: 0,
        sign: OffsetSign::Plus,
    };

    /// An offset of `quarters` quarter hours (0–48) in direction `sign`.
    pub fn new(quarters: u8, sign: OffsetSign) -> Result<Self, TimeError> {
        if quarters > MAX_OFFSET_QUARTERS {
            return Err(TimeError::Value(TimeProblem::OutOfRange {
                field: TimeField::Offset,
                value: quarters.into(),
            }));
        }
        Ok(UtcOffset { quarters, sign })
    }

    /// A signed number of quarter hours (−48..=48); zero becomes `00+`.
    pub fn from_quarter_hours(quarters: i8) -> Result<Self, TimeError> {
        let sign = if quarters < 0 {
            OffsetSign::Minus
        } else {
            OffsetSign::Plus
        };
        UtcOffset::new(quarters.unsigned_abs(), sign)
    }

    /// Quarter hours, 0–48.
    pub fn quarters(self) -> u8 {
        self.quarters
    }

    /// The direction as written.
    pub fn sign(self) -> OffsetSign {
        self.sign
    }

    /// Signed minutes to add to UTC to get local time.
    pub fn minutes(self) -> i32 {
        let minutes = i32::from(self.quarters) * 15;
        match self.sign {
            OffsetSign::Plus => minutes,
            OffsetSign::Minus => -minutes,
        }
    }
}

/// An SMPP time: either a point in time or a span from the SMSC's "now".
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum SmppTime {
    /// `YYMMDDhhmmsstnn+` / `…-`
    Absolute(AbsoluteTime),
    /// `YYMMDDhhmmsstnnR`
    Relative(RelativeTime),
}

impl SmppTime {
    /// Reads the 16 characters of a non-empty time field (without its NUL).
    pub fn parse(input: &[u8]) -> Result<Self, TimeError> {
        if input.len() != TIME_LEN {
            return Err(TimeError::parse(input, TimeProblem::Length(input.len())));
        }
        let fields = read_fields(input).map_err(|p| TimeError::parse(input, p))?;
        match input[15] {
            b'+' | b'-' => {
                let sign = if input[15] == b'+' {
                    OffsetSign::Plus
                } else {
                    OffsetSign::Minus
                };
                if fields.offset > MAX_OFFSET_QUARTERS {
                    let problem = TimeProblem::OutOfRange {
                        field: TimeField::Offset,
                        value: fields.offset.into(),
                    };
                    return Err(TimeError::parse(input, problem));
                }
                let offset = UtcOffset {
                    quarters: fields.offset,
                    sign,
                };
                AbsoluteTime::checked(fields, offset)
                    .map(SmppTime::Absolute)
                    .map_err(|p| TimeError::parse(input, p))
            }
            b'R' => {
                // Strict on `nn` (the spec fixes it to 00), lenient on `t`:
                // Infobip documents `070605040302100R` with a tenth of a second.
                if fields.offset != 0 {
                    return Err(TimeError::parse(input, TimeProblem::RelativeOffset));
                }
                Ok(SmppTime::Relative(RelativeTime {
                    years: fields.year,
                    months: fields.month,
                    days: fields.day,
                    hours: fields.hour,
                    minutes: fields.minute,
                    seconds: fields.second,
                    tenths: fields.tenths,
                }))
            }
            _ => Err(TimeError::parse(input, TimeProblem::Direction)),
        }
    }

    /// Reads a time field that may be empty: empty means "not given"
    /// (immediate delivery, or the SMSC's default validity).
    pub fn parse_optional(input: &[u8]) -> Result<Option<Self>, TimeError> {
        if input.is_empty() {
            Ok(None)
        } else {
            SmppTime::parse(input).map(Some)
        }
    }

    /// The 16 characters of the field, without the NUL.
    pub fn to_bytes(&self) -> [u8; TIME_LEN] {
        match self {
            SmppTime::Absolute(t) => t.to_bytes(),
            SmppTime::Relative(t) => t.to_bytes(),
        }
    }

    /// The instant this time designates, as Unix milliseconds (UTC); a
    /// relative time counts from `now_unix_ms`.
    pub fn to_unix_millis(&self, now_unix_ms: i64) -> Result<i64, TimeError> {
        match self {
            SmppTime::Absolute(t) => Ok(t.to_unix_millis()),
            SmppTime::Relative(t) => t.resolve(now_unix_ms),
        }
    }
}

impl FromStr for SmppTime {
    type Err = TimeError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        SmppTime::parse(s.as_bytes())
    }
}

impl fmt::Display for SmppTime {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write_ascii(f, &self.to_bytes())
    }
}

/// A point in time: local date and time plus its offset from UTC.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct AbsoluteTime {
    /// Two-digit year: 0 stands for 2000.
    yy: u8,
    month: u8,
    day: u8,
    hour: u8,
    minute: u8,
    second: u8,
    tenths: u8,
    offset: UtcOffset,
}

impl AbsoluteTime {
    /// A local date and time (year 2000–2099) at `offset` from UTC, with no
    /// tenths; see [`AbsoluteTime::with_tenths`].
    pub fn new(
        year: u16,
        month: u8,
        day: u8,
        hour: u8,
        minute: u8,
        second: u8,
        offset: UtcOffset,
    ) -> Result<Self, TimeError> {
        let yy = year
            .checked_sub(2000)
            .filter(|yy| *yy <= 99)
            .and_then(|yy| u8::try_from(yy).ok())
            .ok_or(TimeError::Value(TimeProblem::OutOfRange {
                field: TimeField::Year,
                value: year,
            }))?;
        let fields = Fields {
            year: yy,
            month,
            day,
            hour,
            minute,
            second,
            tenths: 0,
            offset: offset.quarters,
        };
        AbsoluteTime::checked(fields, offset).map_err(TimeError::Value)
    }

    /// The same time with `tenths` (0–9) tenths of a second.
    pub fn with_tenths(self, tenths: u8) -> Result<Self, TimeError> {
        if tenths > 9 {
            return Err(TimeError::Value(TimeProblem::OutOfRange {
                field: TimeField::Tenths,
                value: tenths.into(),
            }));
        }
        Ok(AbsoluteTime { tenths, ..self })
    }

    /// Validates fields read from text or given to [`AbsoluteTime::new`].
    fn checked(f: Fields, offset: UtcOffset) -> Result<Self, TimeProblem> {
        let year = 2000 + i64::from(f.year);
        let out = |field, value: u8| TimeProblem::OutOfRange {
            field,
            value: value.into(),
        };
        if f.year > 99 {
            return Err(out(TimeField::Year, f.year));
        }
        if !(1..=12).contains(&f.month) {
            return Err(out(TimeField::Month, f.month));
        }
        if f.day == 0 || f.day > days_in_month(year, f.month) {
            return Err(out(TimeField::Day, f.day));
        }
        if f.hour > 23 {
            return Err(out(TimeField::Hour, f.hour));
        }
        if f.minute > 59 {
            return Err(out(TimeField::Minute, f.minute));
        }
        if f.second > 59 {
            return Err(out(TimeField::Second, f.second));
        }
        if f.tenths > 9 {
            return Err(out(TimeField::Tenths, f.tenths));
        }
        Ok(AbsoluteTime {
            yy: f.year,
            month: f.month,
            day: f.day,
            hour: f.hour,
            minute: f.minute,
            second: f.second,
            tenths: f.tenths,
            offset,
        })
    }

    /// Full year, 2000–2099.
    pub fn year(&self) -> u16 {
        2000 + u16::from(self.yy)
    }

    /// Month, 1–12.
    pub fn month(&self) -> u8 {
        self.month
    }

    /// Day of the month, 1–31.
    pub fn day(&self) -> u8 {
        self.day
    }

    /// Hour, 0–23.
    pub fn hour(&self) -> u8 {
        self.hour
    }

    /// Minute, 0–59.
    pub fn minute(&self) -> u8 {
        self.minute
    }

    /// Second, 0–59.
    pub fn second(&self) -> u8 {
        self.second
    }

    /// Tenths of a second, 0–9.
    pub fn tenths(&self) -> u8 {
        self.tenths
    }

    /// Offset of the local time from UTC.
    pub fn offset(&self) -> UtcOffset {
        self.offset
    }

    /// The instant as Unix milliseconds (UTC). Always representable: every
    /// valid value lies in 1999–2100 UTC.
    pub fn to_unix_millis(&self) -> i64 {
        let days = days_from_civil(i64::from(self.year()), self.month, self.day);
        let local = days * MS_PER_DAY
            + i64::from(self.hour) * MS_PER_HOUR
            + i64::from(self.minute) * MS_PER_MINUTE
            + i64::from(self.second) * MS_PER_SECOND
            + i64::from(self.tenths) * 100;
        local - i64::from(self.offset.minutes()) * MS_PER_MINUTE
    }

    /// The instant `unix_ms` written as local time at `offset`. Milliseconds
    /// below a tenth are dropped (rounded towards the past).
    pub fn from_unix_millis(unix_ms: i64, offset: UtcOffset) -> Result<Self, TimeError> {
        let unrepresentable = TimeError::Unrepresentable { unix_ms };
        let local = unix_ms
            .checked_add(i64::from(offset.minutes()) * MS_PER_MINUTE)
            .ok_or_else(|| unrepresentable.clone())?;
        let (year, month, day) = civil_from_days(local.div_euclid(MS_PER_DAY));
        if !(2000..=2099).contains(&year) {
            return Err(unrepresentable);
        }
        let in_day = local.rem_euclid(MS_PER_DAY);
        // Every quotient below is bounded by the rem_euclid above.
        let part = |div: i64, modulo: i64| u8::try_from(in_day / div % modulo).unwrap_or(0);
        let yy = u8::try_from(year - 2000).map_err(|_| unrepresentable)?;
        Ok(AbsoluteTime {
            yy,
            month,
            day,
            hour: part(MS_PER_HOUR, 24),
            minute: part(MS_PER_MINUTE, 60),
            second: part(MS_PER_SECOND, 60),
            tenths: part(100, 10),
            offset,
        })
    }

    /// This time as a span from `now_unix_ms`, for SMSCs that take relative
    /// times only (Infobip's scheduled delivery).
    ///
    /// The span is normalised calendar-wise: the most whole months (written
    /// as years and months) that fit, then days (0–30), hours, minutes and
    /// seconds, so every field stays within the ranges strict SMSCs check,
    /// and [`RelativeTime::resolve`] at the same `now` gives back this instant
    /// rounded down to the second. Tenths are written as `0`, as the spec
    /// asks. A time before `now` is [`TimeError::InPast`] (the caller decides
    /// whether that means "now" or a rejection); one more than 99 years ahead
    /// is [`TimeError::TooFar`].
    pub fn to_relative(&self, now_unix_ms: i64) -> Result<RelativeTime, TimeError> {
        let target_ms = self.to_unix_millis();
        if target_ms < now_unix_ms {
            return Err(TimeError::InPast {
                target_ms,
                now_ms: now_unix_ms,
            });
        }
        let too_far = TimeError::TooFar {
            target_ms,
            now_ms: now_unix_ms,
        };
        let month_index = |ms: i64| {
            let (y, m, _) = civil_from_days(ms.div_euclid(MS_PER_DAY));
            y * 12 + i64::from(m) - 1
        };
        // The calendar month difference is never too small; step down until
        // adding the months no longer passes the target (at most twice).
        let mut months = month_index(target_ms) - month_index(now_unix_ms);
        let mut base = add_months(now_unix_ms, months).ok_or_else(|| too_far.clone())?;
        while base > target_ms && months > 0 {
            months -= 1;
            base = add_months(now_unix_ms, months).ok_or_else(|| too_far.clone())?;
        }
        let years = u8::try_from(months / 12)
            .ok()
            .filter(|y| *y <= 99)
            .ok_or_else(|| too_far.clone())?;
        let rest = target_ms - base;
        let part = |div: i64, modulo: i64| u8::try_from(rest / div % modulo).ok();
        let days = u8::try_from(rest / MS_PER_DAY).ok();
        match (
            days,
            part(MS_PER_HOUR, 24),
            part(MS_PER_MINUTE, 60),
            part(MS_PER_SECOND, 60),
        ) {
            (Some(days), Some(hours), Some(minutes), Some(seconds)) => Ok(RelativeTime {
                years,
                months: u8::try_from(months % 12).unwrap_or(0),
                days,
                hours,
                minutes,
                seconds,
                tenths: 0,
            }),
            _ => Err(too_far),
        }
    }

    /// The 16 characters `YYMMDDhhmmsstnnp`.
    pub fn to_bytes(&self) -> [u8; TIME_LEN] {
        let sign = match self.offset.sign {
            OffsetSign::Plus => b'+',
            OffsetSign::Minus => b'-',
        };
        encode(
            [
                self.yy,
                self.month,
                self.day,
                self.hour,
                self.minute,
                self.second,
            ],
            self.tenths,
            self.offset.quarters,
            sign,
        )
    }
}

impl fmt::Display for AbsoluteTime {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write_ascii(f, &self.to_bytes())
    }
}

/// A span of time counted from the SMSC's "now".
///
/// Each field is whatever two digits were given (00–99): a span is a sum, and
/// clients do send e.g. 48 hours; [`AbsoluteTime::to_relative`] only produces
/// normalised spans.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct RelativeTime {
    years: u8,
    months: u8,
    days: u8,
    hours: u8,
    minutes: u8,
    seconds: u8,
    tenths: u8,
}

impl RelativeTime {
    /// A span; each field 0–99. Tenths are 0, see [`RelativeTime::with_tenths`].
    pub fn new(
        years: u8,
        months: u8,
        days: u8,
        hours: u8,
        minutes: u8,
        seconds: u8,
    ) -> Result<Self, TimeError> {
        let fields = [
            (TimeField::Year, years),
            (TimeField::Month, months),
            (TimeField::Day, days),
            (TimeField::Hour, hours),
            (TimeField::Minute, minutes),
            (TimeField::Second, seconds),
        ];
        if let Some((field, value)) = fields.into_iter().find(|(_, v)| *v > 99) {
            return Err(TimeError::Value(TimeProblem::OutOfRange {
                field,
                value: value.into(),
            }));
        }
        Ok(RelativeTime {
            years,
            months,
            days,
            hours,
            minutes,
            seconds,
            tenths: 0,
        })
    }

    /// The same span plus `tenths` (0–9) tenths of a second. The spec says
    /// `t` is unused in relative times, but Infobip documents it as tenths.
    pub fn with_tenths(self, tenths: u8) -> Result<Self, TimeError> {
        if tenths > 9 {
            return Err(TimeError::Value(TimeProblem::OutOfRange {
                field: TimeField::Tenths,
                value: tenths.into(),
            }));
        }
        Ok(RelativeTime { tenths, ..self })
    }

    /// Years, 0–99.
    pub fn years(&self) -> u8 {
        self.years
    }

    /// Months, 0–99.
    pub fn months(&self) -> u8 {
        self.months
    }

    /// Days, 0–99.
    pub fn days(&self) -> u8 {
        self.days
    }

    /// Hours, 0–99.
    pub fn hours(&self) -> u8 {
        self.hours
    }

    /// Minutes, 0–99.
    pub fn minutes(&self) -> u8 {
        self.minutes
    }

    /// Seconds, 0–99.
    pub fn seconds(&self) -> u8 {
        self.seconds
    }

    /// Tenths of a second, 0–9.
    pub fn tenths(&self) -> u8 {
        self.tenths
    }

    /// The instant this span ends at, counted from `now_unix_ms` (UTC).
    ///
    /// Years and months are added on the calendar first (in UTC), clamping
    /// the day to the length of the month reached (Jan 31 + 1 month = Feb 28
    /// or 29); then days, hours, minutes, seconds and tenths are added as
    /// fixed durations.
    pub fn resolve(&self, now_unix_ms: i64) -> Result<i64, TimeError> {
        let months = i64::from(self.years) * 12 + i64::from(self.months);
        let span = i64::from(self.days) * MS_PER_DAY
            + i64::from(self.hours) * MS_PER_HOUR
            + i64::from(self.minutes) * MS_PER_MINUTE
            + i64::from(self.seconds) * MS_PER_SECOND
            + i64::from(self.tenths) * 100;
        add_months(now_unix_ms, months)
            .and_then(|base| base.checked_add(span))
            .ok_or(TimeError::Unrepresentable {
                unix_ms: now_unix_ms,
            })
    }

    /// The absolute time this span ends at, written at `offset`.
    pub fn to_absolute(
        &self,
        now_unix_ms: i64,
        offset: UtcOffset,
    ) -> Result<AbsoluteTime, TimeError> {
        AbsoluteTime::from_unix_millis(self.resolve(now_unix_ms)?, offset)
    }

    /// The 16 characters `YYMMDDhhmmsst00R`.
    pub fn to_bytes(&self) -> [u8; TIME_LEN] {
        encode(
            [
                self.years,
                self.months,
                self.days,
                self.hours,
                self.minutes,
                self.seconds,
            ],
            self.tenths,
            0,
            b'R',
        )
    }
}

impl fmt::Display for RelativeTime {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write_ascii(f, &self.to_bytes())
    }
}

/// The numeric fields of a time's text, before their meaning is known.
#[derive(Debug, Clone, Copy)]
struct Fields {
    year: u8,
    month: u8,
    day: u8,
    hour: u8,
    minute: u8,
    second: u8,
    tenths: u8,
    offset: u8,
}

/// Reads the 15 digits of a 16-byte time. The caller checked the length.
fn read_fields(input: &[u8]) -> Result<Fields, TimeProblem> {
    let digit = |at: usize, field| match input.get(at) {
        Some(b) if b.is_ascii_digit() => Ok(b - b'0'),
        _ => Err(TimeProblem::NotDigits(field)),
    };
    let pair = |at: usize, field| Ok(digit(at, field)? * 10 + digit(at + 1, field)?);
    Ok(Fields {
        year: pair(0, TimeField::Year)?,
        month: pair(2, TimeField::Month)?,
        day: pair(4, TimeField::Day)?,
        hour: pair(6, TimeField::Hour)?,
        minute: pair(8, TimeField::Minute)?,
        second: pair(10, TimeField::Second)?,
        tenths: digit(12, TimeField::Tenths)?,
        offset: pair(13, TimeField::Offset)?,
    })
}

/// Writes six two-digit fields, the tenths digit, `nn` and the direction.
/// Callers hold every value below 100 (tenths below 10).
fn encode(pairs: [u8; 6], tenths: u8, offset: u8, direction: u8) -> [u8; TIME_LEN] {
    let mut out = [b'0'; TIME_LEN];
    for (i, value) in pairs.into_iter().enumerate() {
        out[2 * i] = b'0' + value / 10 % 10;
        out[2 * i + 1] = b'0' + value % 10;
    }
    out[12] = b'0' + tenths % 10;
    out[13] = b'0' + offset / 10 % 10;
    out[14] = b'0' + offset % 10;
    out[15] = direction;
    out
}

fn write_ascii(f: &mut fmt::Formatter<'_>, bytes: &[u8]) -> fmt::Result {
    bytes
        .iter()
        .try_for_each(|b| fmt::Write::write_char(f, char::from(*b)))
}

fn is_leap_year(year: i64) -> bool {
    (year % 4 == 0 && year % 100 != 0) || year % 400 == 0
}

/// Days in `month` (1–12) of `year`; 0 for a month out of range.
fn days_in_month(year: i64, month: u8) -> u8 {
    match month {
        1 | 3 | 5 | 7 | 8 | 10 | 12 => 31,
        4 | 6 | 9 | 11 => 30,
        2 if is_leap_year(year) => 29,
        2 => 28,
        _ => 0,
    }
}

/// Days since 1970-01-01 of a proleptic Gregorian date (month 1–12).
///
/// Counts in 400-year eras starting on March 1st, so that the leap day is
/// the last day of its year and each month's first day follows a linear rule.
fn days_from_civil(year: i64, month: u8, day: u8) -> i64 {
    let month = i64::from(month);
    let year = if month <= 2 { year - 1 } else { year };
    let era = year.div_euclid(400);
    let year_of_era = year - era * 400;
    let month_from_march = (month + 9) % 12;
    let day_of_year = (153 * month_from_march + 2) / 5 + i64::from(day) - 1;
    let day_of_era = year_of_era * 365 + year_of_era / 4 - year_of_era / 100 + day_of_year;
    era * 146_097 + day_of_era - 719_468
}

/// The proleptic Gregorian date of a day count since 1970-01-01; the inverse
/// of [`days_from_civil`].
fn civil_from_days(days: i64) -> (i64, u8, u8) {
    let shifted = days + 719_468;
    let era = shifted.div_euclid(146_097);
    let day_of_era = shifted - era * 146_097;
    let year_of_era =
        (day_of_era - day_of_era / 1_460 + day_of_era / 36_524 - day_of_era / 146_096) / 365;
    let day_of_year = day_of_era - (365 * year_of_era + year_of_era / 4 - year_of_era / 100);
    let month_from_march = (5 * day_of_year + 2) / 153;
    let day = day_of_year - (153 * month_from_march + 2) / 5 + 1;
    let month = if month_from_march < 10 {
        month_from_march + 3
    } else {
        month_from_march - 9
    };
    let year = year_of_era + era * 400 + i64::from(month <= 2);
    // Both are bounded by construction (1–12, 1–31).
    (
        year,
        u8::try_from(month).unwrap_or(1),
        u8::try_from(day).unwrap_or(1),
    )
}

/// `unix_ms` plus `months` calendar months (UTC), the day clamped to the
/// length of the month reached; `None` on overflow.
fn add_months(unix_ms: i64, months: i64) -> Option<i64> {
    let in_day = unix_ms.rem_euclid(MS_PER_DAY);
    let (year, month, day) = civil_from_days(unix_ms.div_euclid(MS_PER_DAY));
    let index = year.checked_mul(12)?.checked_add(i64::from(month) - 1)?;
    let index = index.checked_add(months)?;
    let new_year = index.div_euclid(12);
    let new_month = u8::try_from(index.rem_euclid(12) + 1).ok()?;
    let new_day = day.min(days_in_month(new_year, new_month));
    days_from_civil(new_year, new_month, new_day)
        .checked_mul(MS_PER_DAY)?
        .checked_add(in_day)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn civil_round_trips_around_epoch_and_leap_days() {
        for days in [-1_000_000, -1, 0, 1, 11_016, 19_782, 47_482, 1_000_000] {
            let (y, m, d) = civil_from_days(days);
            assert_eq!(days_from_civil(y, m, d), days);
        }
        assert_eq!(days_from_civil(1970, 1, 1), 0);
        assert_eq!(civil_from_days(19_782), (2024, 2, 29));
    }

    #[test]
    fn add_months_clamps_and_keeps_time_of_day() {
        let jan31 = days_from_civil(2023, 1, 31) * MS_PER_DAY + 5 * MS_PER_HOUR;
        let feb28 = days_from_civil(2023, 2, 28) * MS_PER_DAY + 5 * MS_PER_HOUR;
        assert_eq!(add_months(jan31, 1), Some(feb28));
        assert_eq!(add_months(i64::MAX, 1), None);
    }

    #[test]
    fn february_length_follows_gregorian_rules() {
        assert_eq!(days_in_month(2024, 2), 29);
        assert_eq!(days_in_month(2023, 2), 28);
        assert_eq!(days_in_month(2000, 2), 29);
        assert_eq!(days_in_month(2100, 2), 28);
    }
}
