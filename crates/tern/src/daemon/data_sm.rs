//! data_sm from clients (SMPP 3.4 §4.7): taken as the submit_sm it stands
//! for, so it is stored, routed, adapted to each upstream's profile and
//! receipted exactly like one, and answered with data_sm_resp.
//!
//! What does not carry over is refused with the status SMPP has for it,
//! not dropped: data_sm addresses may be 64 characters, submit_sm's 20.
//! `qos_time_to_live` (seconds) becomes the validity period, since no
//! upstream takes that TLV in a submit_sm.

use tern_codec::pdu::{DataSm, SubmitSm};
use tern_codec::time::{AbsoluteTime, UtcOffset};
use tern_codec::tlv::tags;
use tern_codec::{Address, COctetString, CommandStatus, ShortMessage, TimeString};

/// The submit_sm `data` stands for, at `now_ms` (for the validity its
/// time to live gives), or the status to refuse it with.
pub fn as_submit(data: DataSm, now_ms: u64) -> Result<SubmitSm, CommandStatus> {
    let source = narrow(&data.source).ok_or(CommandStatus::InvalidSourceAddress)?;
    let destination = narrow(&data.destination).ok_or(CommandStatus::InvalidDestinationAddress)?;
    let mut tlvs = data.tlvs;
    let validity_period = match tlvs.qos_time_to_live().copied() {
        Some(seconds) => expiry(now_ms, seconds).ok_or(CommandStatus::InvalidExpiry)?,
        None => TimeString::default(),
    };
    tlvs.remove(tags::QOS_TIME_TO_LIVE);
    Ok(SubmitSm {
        service_type: data.service_type,
        source,
        destination,
        esm_class: data.esm_class,
        registered_delivery: data.registered_delivery,
        data_coding: data.data_coding,
        validity_period,
        // The text stays in message_payload; the adapter moves it where
        // each upstream's profile wants it.
        short_message: ShortMessage::default(),
        tlvs,
        ..SubmitSm::default()
    })
}

/// A data_sm address as a submit_sm one, if its digits fit in 20.
fn narrow(address: &Address<65>) -> Option<Address<21>> {
    let addr = COctetString::new(address.addr.as_bytes().to_vec()).ok()?;
    Some(Address::new(address.ton, address.npi, addr))
}

/// `seconds` from now as an absolute SMPP time in UTC.
fn expiry(now_ms: u64, seconds: u32) -> Option<TimeString> {
    let at = i64::try_from(now_ms).ok()? + i64::from(seconds) * 1000;
    let offset = UtcOffset::from_quarter_hours(0).ok()?;
    let time = AbsoluteTime::from_unix_millis(at, offset).ok()?;
    let text = std::str::from_utf8(&time.to_bytes()).ok()?.to_owned();
    TimeString::try_from(text.as_str()).ok()
}

#[cfg(test)]
mod tests {
    use super::*;
    use tern_codec::Tlv;
    use tern_codec::{Npi, RegisteredDelivery, Ton};

    fn data(destination: &str) -> DataSm {
        let mut tlvs = tern_codec::Tlvs::default();
        tlvs.push(Tlv::message_payload(b"hello".to_vec()).expect("payload"));
        DataSm {
            source: Address::new(
                Ton::ALPHANUMERIC,
                Npi::UNKNOWN,
                COctetString::new("ACME").expect("fits"),
            ),
            destination: Address::new(
                Ton::INTERNATIONAL,
                Npi::ISDN,
                COctetString::new(destination.to_owned()).expect("fits"),
            ),
            registered_delivery: RegisteredDelivery::ALWAYS,
            tlvs,
            ..DataSm::default()
        }
    }

    #[test]
    fn the_fields_carry_over_and_the_text_stays_in_message_payload() {
        let sm = as_submit(data("34600000001"), 0).expect("converts");
        assert_eq!(sm.source.addr.as_bytes(), b"ACME");
        assert_eq!(sm.source.ton, Ton::ALPHANUMERIC);
        assert_eq!(sm.destination.addr.as_bytes(), b"34600000001");
        assert_eq!(sm.destination.npi, Npi::ISDN);
        assert_eq!(sm.registered_delivery, RegisteredDelivery::ALWAYS);
        assert!(sm.short_message.as_bytes().is_empty());
        assert_eq!(
            sm.tlvs.message_payload().map(|p| p.as_ref()),
            Some(&b"hello"[..])
        );
        assert!(sm.validity_period.as_bytes().is_empty());
    }

    #[test]
    fn an_address_longer_than_submit_sm_allows_is_refused_precisely() {
        let long = "3".repeat(21);
        assert_eq!(
            as_submit(data(&long), 0).map(drop),
            Err(CommandStatus::InvalidDestinationAddress)
        );
        let mut from_long = data("34600000001");
        from_long.source.addr = COctetString::new(long).expect("fits 64");
        assert_eq!(
            as_submit(from_long, 0).map(drop),
            Err(CommandStatus::InvalidSourceAddress)
        );
        assert!(as_submit(data(&"3".repeat(20)), 0).is_ok());
    }

    #[test]
    fn time_to_live_becomes_the_validity_period() {
        let mut sm = data("34600000001");
        sm.tlvs.push(Tlv::QosTimeToLive(90));
        // 2026-11-22 00:00:00 UTC.
        let now = 1_795_305_600_000;
        let converted = as_submit(sm, now).expect("converts");
        assert_eq!(converted.validity_period.as_bytes(), b"261122000130000+");
        assert!(converted.tlvs.get(tags::QOS_TIME_TO_LIVE).is_none());
    }
}
