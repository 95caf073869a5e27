//! `Pdu::decode` on arbitrary octets.
//!
//! Properties:
//! - never panics;
//! - a PDU that decodes re-encodes to exactly the input (byte-exact round
//!   trip, a documented property of the codec), with `encoded_len` agreeing;
//! - the re-encoded octets decode to an equal `Pdu`;
//! - an error always yields a `command_status` (and, for a malformed body,
//!   a response) without panicking.
#![no_main]

use bytes::Bytes;
use libfuzzer_sys::fuzz_target;
use tern_codec::{Pdu, PduError};

fuzz_target!(|data: &[u8]| {
    match Pdu::decode(Bytes::copy_from_slice(data)) {
        Ok(pdu) => {
            let encoded = pdu.to_bytes();
            assert_eq!(
                pdu.encoded_len(),
                encoded.len(),
                "encoded_len disagrees with encode for {pdu:?}"
            );
            assert!(
                encoded[..] == data[..],
                "round trip changed the octets\n  input:  {}\n  output: {}\n  pdu: {pdu:?}",
                hex(data),
                hex(&encoded),
            );
            let again = Pdu::decode(encoded).expect("re-encoded PDU must decode");
            assert_eq!(again, pdu, "decode(encode(pdu)) != pdu");
        }
        Err(err) => {
            let _ = err.command_status();
            if let PduError::Malformed(m) = &err {
                let _ = m.command_status();
                if let Some(resp) = m.response() {
                    let _ = resp.to_bytes();
                }
            }
        }
    }
});

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}
