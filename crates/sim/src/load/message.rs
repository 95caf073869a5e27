//! The submit_sm every load worker sends: built once, cloned per send
//! (its octets are shared `Bytes`, so a clone copies no text).

use tern_codec::pdu::SubmitSm;
use tern_codec::text::{self, Encoding, Unrepresentable};
use tern_codec::{
    Address, Body, COctetString, DataCoding, Npi, RegisteredDelivery, ShortMessage, Tlv, Ton,
};

use super::{LoadConfig, LoadError, TextCoding};

/// Characters the GSM 7-bit text is made of (all in the default alphabet,
/// none needing an escape).
const GSM_TEXT: &str = "Tern load test, message body 0123456789. ";
/// Characters the UCS-2 text is made of (Cyrillic and a dash: not GSM).
const UCS2_TEXT: &str = "Терн – нагрузочный тест, сообщение. ";

/// `len` characters cycled from the coding's sample text.
pub(crate) fn text(coding: TextCoding, len: usize) -> String {
    let sample = match coding {
        TextCoding::Gsm7 => GSM_TEXT,
        TextCoding::Ucs2 => UCS2_TEXT,
    };
    sample.chars().cycle().take(len).collect()
}

/// The submit_sm of a run. Text longer than short_message allows goes in
/// `message_payload`, as Telesign asks for long messages.
pub(crate) fn submit(config: &LoadConfig) -> Result<Body, LoadError> {
    let (encoding, data_coding) = match config.coding {
        TextCoding::Gsm7 => (Encoding::Gsm7Unpacked, DataCoding::DEFAULT),
        TextCoding::Ucs2 => (Encoding::Ucs2, DataCoding::UCS2),
    };
    let octets = text::encode(
        &text(config.coding, config.text_len),
        encoding,
        Unrepresentable::Error,
    )?;
    let address = |field: &'static str, value: &str| -> Result<Address<21>, LoadError> {
        let addr = COctetString::try_from(value).map_err(|err| LoadError::Invalid {
            field,
            reason: err.to_string(),
        })?;
        let digits = value.bytes().all(|b| b.is_ascii_digit());
        Ok(if digits {
            Address::new(Ton::INTERNATIONAL, Npi::ISDN, addr)
        } else {
            Address::new(Ton::ALPHANUMERIC, Npi::UNKNOWN, addr)
        })
    };
    let mut sm = SubmitSm {
        source: address("source", &config.source)?,
        destination: address("destination", &config.destination)?,
        registered_delivery: if config.registered_delivery {
            RegisteredDelivery::ALWAYS
        } else {
            RegisteredDelivery::NONE
        },
        data_coding,
        ..SubmitSm::default()
    };
    match ShortMessage::new(octets.clone()) {
        Ok(short) => sm.short_message = short,
        Err(_) => sm.tlvs.push(
            Tlv::message_payload(octets).map_err(|err| LoadError::Invalid {
                field: "text_len",
                reason: err.to_string(),
            })?,
        ),
    }
    Ok(Body::SubmitSm(sm))
}
