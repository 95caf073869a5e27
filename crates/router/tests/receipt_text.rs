//! The `text:` field of the receipts Tern sends its clients: the first 20
//! characters of the message as the client wrote it, never its raw octets.

use tern_codec::pdu::SubmitSm;
use tern_codec::text::{encode, Encoding, Unrepresentable};
use tern_codec::{DataCoding, EsmClass, ShortMessage};
use tern_router::adapt::{receipt_text, ClientText};

fn submit(data_coding: u8, octets: Vec<u8>, udhi: bool) -> SubmitSm {
    let mut sm = SubmitSm {
        data_coding: DataCoding(data_coding),
        short_message: ShortMessage::new(octets).expect("short"),
        ..SubmitSm::default()
    };
    if udhi {
        sm.esm_class = EsmClass(0x40);
    }
    sm
}

#[test]
fn gsm_text_is_cut_at_twenty_characters() {
    let octets = encode(
        "Hello from Tern, the broker",
        Encoding::Gsm7Unpacked,
        Unrepresentable::Error,
    )
    .expect("gsm");
    let text = receipt_text(&submit(0, octets.to_vec(), false), &ClientText::default());
    assert_eq!(text, "Hello from Tern, the");
}

#[test]
fn ucs2_is_decoded_and_what_ascii_cannot_show_is_a_question_mark() {
    let octets = encode("Привет, Tern", Encoding::Ucs2, Unrepresentable::Error).expect("ucs2");
    let text = receipt_text(&submit(8, octets.to_vec(), false), &ClientText::default());
    assert_eq!(text, "??????, Tern");
}

#[test]
fn the_udh_of_a_part_is_not_text() {
    let mut octets = vec![0x05, 0x00, 0x03, 0x2A, 0x02, 0x01];
    octets.extend_from_slice(b"part one");
    let text = receipt_text(&submit(0, octets, true), &ClientText::default());
    assert_eq!(text, "part one");
}

#[test]
fn binary_messages_have_no_text() {
    let text = receipt_text(
        &submit(0x04, vec![0xDE, 0xAD], false),
        &ClientText::default(),
    );
    assert_eq!(text, "");
}
