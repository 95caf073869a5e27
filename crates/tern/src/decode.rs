//! `tern decode`: what a run of SMPP octets says, PDU by PDU, with the
//! status a server would answer to anything malformed.

use std::io::Read;
use std::process::ExitCode;

use anyhow::{bail, Context};
use bytes::BytesMut;
use tern_codec::{Frame, SmppCodec};

/// Decodes the hex in `args` (or standard input) and prints each PDU.
/// Exits 1 when any PDU is malformed or the octets cannot be framed.
pub fn run(args: &[String]) -> anyhow::Result<ExitCode> {
    let text = if args.is_empty() {
        let mut input = String::new();
        std::io::stdin()
            .read_to_string(&mut input)
            .context("reading standard input")?;
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
fn parse_hex(text: &str) -> anyhow::Result<Vec<u8>> {
    let digits: String = text
        .split_whitespace()
        .map(|word| word.trim_start_matches("0x"))
        .collect::<String>()
        .replace(':', "");
    if digits.len() % 2 != 0 {
        bail!("odd number of hex digits ({})", digits.len());
    }
    (0..digits.len())
        .step_by(2)
        .map(|i| {
            u8::from_str_radix(&digits[i..i + 2], 16)
                .with_context(|| format!("not hex: {:?}", &digits[i..i + 2]))
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::parse_hex;

    #[test]
    fn hex_with_separators() {
        assert_eq!(
            parse_hex("00 00:00 10 0x15").expect("valid"),
            vec![0, 0, 0, 0x10, 0x15]
        );
        assert!(parse_hex("0").is_err());
        assert!(parse_hex("zz").is_err());
    }
}
