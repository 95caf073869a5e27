//! `tern decode`: what a run of SMPP octets says, PDU by PDU, with the
//! status a server would answer to anything malformed.

use std::io::Read;
use std::process::ExitCode;

use bytes::BytesMut;
use tern_codec::{Frame, SmppCodec};

/// Why `tern decode` could not read its hex: what it read, and where the
/// text stops being hex.
#[derive(Debug, thiserror::Error)]
pub enum DecodeError {
    /// Standard input could not be read (or was not UTF-8).
    #[error("reading standard input: {0}")]
    Stdin(#[source] std::io::Error),
    /// The digits do not pair up into octets.
    #[error("odd number of hex digits ({0})")]
    OddDigits(usize),
    /// Two characters that are not a hex octet, and where they are.
    #[error("not hex: {pair:?} (octet {octet})")]
    NotHex {
        /// The two characters.
        pair: String,
        /// The octet's position, from 0.
        octet: usize,
    },
}

/// Decodes the hex in `args` (or standard input) and prints each PDU.
/// Exits 1 when any PDU is malformed or the octets cannot be framed.
pub fn run(args: &[String]) -> Result<ExitCode, DecodeError> {
    let text = if args.is_empty() {
        let mut input = String::new();
        std::io::stdin()
            .read_to_string(&mut input)
            .map_err(DecodeError::Stdin)?;
        input
    } else {
        args.join(" ")
    };
    let mut buf = BytesMut::from(&parse_hex(&text)?[..]);
    let codec = SmppCodec::new();
    let mut clean = true;
    loop {
        match codec.decode_frame(&mut buf) {
            Ok(Some(Frame::Pdu(pdu))) => println!("{pdu:#?}"),
            Ok(Some(Frame::Malformed(m))) => {
                clean = false;
                println!("malformed: {m}; a server answers {}", m.command_status());
            }
            Ok(None) if buf.is_empty() => break,
            Ok(None) => {
                clean = false;
                println!("incomplete: {} octets left over", buf.len());
                break;
            }
            Err(err) => {
                clean = false;
                println!(
                    "cannot frame: {err}; a server answers {} and closes",
                    err.command_status()
                );
                break;
            }
        }
    }
    Ok(if clean {
        ExitCode::SUCCESS
    } else {
        ExitCode::from(1)
    })
}

/// Hex digits with optional whitespace, `:` or `0x` prefixes between octets.
/// Works on characters, not octets: a non-ASCII character in the input
/// is reported, never split.
fn parse_hex(text: &str) -> Result<Vec<u8>, DecodeError> {
    let digits: Vec<char> = text
        .split_whitespace()
        .map(|word| word.trim_start_matches("0x"))
        .collect::<String>()
        .replace(':', "")
        .chars()
        .collect();
    if digits.len() % 2 != 0 {
        return Err(DecodeError::OddDigits(digits.len()));
    }
    digits
        .chunks(2)
        .enumerate()
        .map(|(octet, pair)| {
            let pair: String = pair.iter().collect();
            u8::from_str_radix(&pair, 16)
                .ok()
                .filter(|_| pair.chars().all(|c| c.is_ascii_hexdigit()))
                .ok_or(DecodeError::NotHex { pair, octet })
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::{parse_hex, DecodeError};

    #[test]
    fn hex_with_separators() {
        assert_eq!(
            parse_hex("00 00:00 10 0x15").expect("valid"),
            vec![0, 0, 0, 0x10, 0x15]
        );
        assert!(matches!(parse_hex("0"), Err(DecodeError::OddDigits(1))));
        assert_eq!(
            parse_hex("00 zz").expect_err("not hex").to_string(),
            r#"not hex: "zz" (octet 1)"#
        );
        // A sign from_str_radix would take is not a hex digit.
        assert!(parse_hex("+1").is_err());
        // A character of several octets is reported, not split.
        assert!(matches!(
            parse_hex("é0"),
            Err(DecodeError::NotHex { octet: 0, .. })
        ));
    }
}
