//! Field types that carry the specification's limits, over shared [`Bytes`].
//!
//! A C-octet string (SMPP 3.4 §3.1) is a run of octets ended by NUL. The type
//! keeps the octets *without* the terminator, knows its maximum length (NUL
//! included, as the specification counts it) and can only be built within it,
//! so encoding a PDU cannot produce a field a peer would reject. Decoding is
//! zero-copy: the octets are a slice of the frame's buffer.

use bytes::Bytes;

use crate::error::FieldError;

/// A NUL-terminated string of at most `MAX` octets, terminator included.
#[derive(Clone, PartialEq, Eq, Hash, Default, PartialOrd, Ord)]
pub struct COctetString<const MAX: usize>(Bytes);

impl<const MAX: usize> COctetString<MAX> {
    /// The empty string (encoded as a single NUL).
    pub const fn empty() -> Self {
        Self(Bytes::new())
    }

    /// Checks that `value` has no NUL and fits `MAX` with its terminator.
    pub fn new(value: impl Into<Bytes>) -> Result<Self, FieldError> {
        let value = value.into();
        if let Some(at) = value.iter().position(|&b| b == 0) {
            return Err(FieldError::InteriorNul(at));
        }
        if value.len() + 1 > MAX {
            return Err(FieldError::TooLong {
                len: value.len() + 1,
                max: MAX,
            });
        }
        Ok(Self(value))
    }

    /// Built by the decoder, which has already checked the invariants.
    pub(crate) const fn from_checked(value: Bytes) -> Self {
        Self(value)
    }

    /// The octets, without the terminator.
    pub fn as_bytes(&self) -> &[u8] {
        &self.0
    }

    /// The octets as UTF-8, if they are (SMPP strings are ASCII in practice).
    pub fn to_str(&self) -> Option<&str> {
        std::str::from_utf8(&self.0).ok()
    }

    /// The shared buffer, without the terminator.
    pub fn into_bytes(self) -> Bytes {
        self.0
    }

    /// Octets without the terminator.
    pub fn len(&self) -> usize {
        self.0.len()
    }

    /// True for the empty string.
    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    /// Octets on the wire, terminator included.
    pub(crate) fn encoded_len(&self) -> usize {
        self.0.len() + 1
    }
}

impl<const MAX: usize> std::fmt::Debug for COctetString<MAX> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{:?}", String::from_utf8_lossy(&self.0))
    }
}

impl<const MAX: usize> std::fmt::Display for COctetString<MAX> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&String::from_utf8_lossy(&self.0))
    }
}

impl<const MAX: usize> TryFrom<&str> for COctetString<MAX> {
    type Error = FieldError;
    fn try_from(value: &str) -> Result<Self, FieldError> {
        Self::new(Bytes::copy_from_slice(value.as_bytes()))
    }
}

impl<const MAX: usize> TryFrom<String> for COctetString<MAX> {
    type Error = FieldError;
    fn try_from(value: String) -> Result<Self, FieldError> {
        Self::new(Bytes::from(value))
    }
}

impl<const MAX: usize> PartialEq<str> for COctetString<MAX> {
    fn eq(&self, other: &str) -> bool {
        self.0 == other.as_bytes()
    }
}

impl<const MAX: usize> PartialEq<&str> for COctetString<MAX> {
    fn eq(&self, other: &&str) -> bool {
        self.0 == other.as_bytes()
    }
}

/// `schedule_delivery_time`, `validity_period`, `final_date`: a C-octet string
/// that is either empty or exactly 16 characters (SMPP 3.4 §7.1.1).
///
/// The text is kept as received; [`TimeString::parse`] interprets it.
#[derive(Clone, PartialEq, Eq, Hash, Default)]
pub struct TimeString(COctetString<17>);

impl TimeString {
    /// Characters in a non-empty time.
    pub const LEN: usize = 16;

    /// The empty time: "immediately" or "the SMSC's default".
    pub const fn empty() -> Self {
        Self(COctetString::empty())
    }

    /// Checks the length rule; the content is checked by [`TimeString::parse`].
    pub fn new(value: impl Into<Bytes>) -> Result<Self, FieldError> {
        let value = COctetString::new(value)?;
        match value.len() {
            0 | Self::LEN => Ok(Self(value)),
            len => Err(FieldError::TimeLength(len)),
        }
    }

    pub(crate) const fn from_checked(value: COctetString<17>) -> Self {
        Self(value)
    }

    /// The 16 characters, or an empty slice.
    pub fn as_bytes(&self) -> &[u8] {
        self.0.as_bytes()
    }

    /// True when no time is given.
    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    /// The time, or `None` when the field is empty.
    pub fn parse(&self) -> Option<Result<crate::time::SmppTime, crate::time::TimeError>> {
        (!self.is_empty()).then(|| crate::time::SmppTime::parse(self.as_bytes()))
    }

    pub(crate) fn inner(&self) -> &COctetString<17> {
        &self.0
    }
}

impl std::fmt::Debug for TimeString {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        self.0.fmt(f)
    }
}

impl TryFrom<&str> for TimeString {
    type Error = FieldError;
    fn try_from(value: &str) -> Result<Self, FieldError> {
        Self::new(Bytes::copy_from_slice(value.as_bytes()))
    }
}

/// `short_message` (SMPP 3.4 §5.2.22): 0–254 octets, its length sent before it
/// in `sm_length`.
#[derive(Clone, PartialEq, Eq, Hash, Default)]
pub struct ShortMessage(Bytes);

impl ShortMessage {
    /// The most octets `short_message` may hold.
    pub const MAX: usize = 254;

    /// Checks the 254-octet limit. Longer texts go in `message_payload` or in parts.
    pub fn new(value: impl Into<Bytes>) -> Result<Self, FieldError> {
        let value = value.into();
        if value.len() > Self::MAX {
            return Err(FieldError::TooLong {
                len: value.len(),
                max: Self::MAX,
            });
        }
        Ok(Self(value))
    }

    pub(crate) const fn from_checked(value: Bytes) -> Self {
        Self(value)
    }

    /// The octets as sent (with the UDH first when esm_class says so).
    pub fn as_bytes(&self) -> &[u8] {
        &self.0
    }

    /// The shared buffer.
    pub fn into_bytes(self) -> Bytes {
        self.0
    }

    /// `sm_length`.
    pub fn len(&self) -> usize {
        self.0.len()
    }

    /// True when the text is elsewhere or absent.
    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }
}

impl std::fmt::Debug for ShortMessage {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{:?}", String::from_utf8_lossy(&self.0))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn c_octet_string_limits_count_the_terminator() {
        assert!(COctetString::<16>::try_from("123456789012345").is_ok());
        assert_eq!(
            COctetString::<16>::try_from("1234567890123456"),
            Err(FieldError::TooLong { len: 17, max: 16 })
        );
        assert_eq!(
            COctetString::<16>::new(&b"a\0b"[..]),
            Err(FieldError::InteriorNul(1))
        );
    }

    #[test]
    fn time_strings_are_empty_or_sixteen() {
        assert!(TimeString::try_from("").is_ok());
        assert!(TimeString::try_from("000001000000000R").is_ok());
        assert_eq!(TimeString::try_from("0001"), Err(FieldError::TimeLength(4)));
    }

    #[test]
    fn short_message_limit() {
        assert!(ShortMessage::new(vec![b'a'; 254]).is_ok());
        assert!(ShortMessage::new(vec![b'a'; 255]).is_err());
    }
}
