//! Replacements for characters a coding lacks (`Unrepresentable::Replace`).
//!
//! Follows what Mensatek documents for GSM 7-bit: acute accents other than
//! é are not in the alphabet and become the most similar character, i.e.
//! the unaccented letter (á→a, Ó→O); letters the alphabet has (é, ñ, ü, Ç,
//! à…) are kept; € is kept and costs two septets. The same table serves
//! IA5 and Latin-1 by trying each candidate in order (ç→Ç in GSM, c in
//! IA5). Anything with no sensible replacement becomes '?', which every
//! coding has.
//!
//! Invariant: `substitute` returns only text the coding can represent.

use super::Encoding;

/// Replacement text for `ch` in `encoding`: the first candidate the coding
/// can represent, else "?".
pub fn substitute(ch: char, encoding: Encoding) -> &'static str {
    candidates(ch)
        .iter()
        .copied()
        .find(|candidate| candidate.chars().all(|c| encoding.represents(c)))
        .unwrap_or("?")
}

/// Candidates in order of preference; empty when there is no sensible one.
fn candidates(ch: char) -> &'static [&'static str] {
    match ch {
        // Accented Latin letters. Those GSM has (é, à, Ä, ñ, Ç…) are listed
        // too because IA5 lacks them; GSM never asks for them.
        'À' | 'Á' | 'Â' | 'Ã' | 'Ä' | 'Å' | 'Ā' | 'Ă' | 'Ą' => &["A"],
        'à' | 'á' | 'â' | 'ã' | 'ä' | 'å' | 'ā' | 'ă' | 'ą' => &["a"],
        'Æ' => &["AE"],
        'æ' => &["ae"],
        'Ç' | 'Ć' | 'Ĉ' | 'Ċ' | 'Č' => &["C"],
        'ç' => &["Ç", "c"],
        'ć' | 'ĉ' | 'ċ' | 'č' => &["c"],
        'Ð' | 'Ď' | 'Đ' => &["D"],
        'ð' | 'ď' | 'đ' => &["d"],
        'È' | 'É' | 'Ê' | 'Ë' | 'Ē' | 'Ĕ' | 'Ė' | 'Ę' | 'Ě' => &["E"],
        'è' | 'é' | 'ê' | 'ë' | 'ē' | 'ĕ' | 'ė' | 'ę' | 'ě' => &["e"],
        'Ĝ' | 'Ğ' | 'Ġ' | 'Ģ' => &["G"],
        'ĝ' | 'ğ' | 'ġ' | 'ģ' => &["g"],
        'Ĥ' | 'Ħ' => &["H"],
        'ĥ' | 'ħ' => &["h"],
        'Ì' | 'Í' | 'Î' | 'Ï' | 'Ĩ' | 'Ī' | 'Ĭ' | 'Į' | 'İ' => &["I"],
        'ì' | 'í' | 'î' | 'ï' | 'ĩ' | 'ī' | 'ĭ' | 'į' | 'ı' => &["i"],
        'Ĵ' => &["J"],
        'ĵ' => &["j"],
        'Ķ' => &["K"],
        'ķ' => &["k"],
        'Ĺ' | 'Ļ' | 'Ľ' | 'Ŀ' | 'Ł' => &["L"],
        'ĺ' | 'ļ' | 'ľ' | 'ŀ' | 'ł' => &["l"],
        'Ñ' | 'Ń' | 'Ņ' | 'Ň' => &["N"],
        'ñ' | 'ń' | 'ņ' | 'ň' => &["n"],
        'Ò' | 'Ó' | 'Ô' | 'Õ' | 'Ö' | 'Ø' | 'Ō' | 'Ŏ' => &["O"],
        'Ő' => &["Ö", "O"],
        'ò' | 'ó' | 'ô' | 'õ' | 'ö' | 'ø' | 'ō' | 'ŏ' => &["o"],
        'ő' => &["ö", "o"],
        'Œ' => &["OE"],
        'œ' => &["oe"],
        'Ŕ' | 'Ŗ' | 'Ř' => &["R"],
        'ŕ' | 'ŗ' | 'ř' => &["r"],
        'Ś' | 'Ŝ' | 'Ş' | 'Š' | 'Ș' => &["S"],
        'ś' | 'ŝ' | 'ş' | 'š' | 'ș' => &["s"],
        'ß' => &["ss"],
        'Ţ' | 'Ť' | 'Ŧ' | 'Ț' => &["T"],
        'ţ' | 'ť' | 'ŧ' | 'ț' => &["t"],
        'Ù' | 'Ú' | 'Û' | 'Ü' | 'Ũ' | 'Ū' | 'Ŭ' | 'Ů' | 'Ų' => &["U"],
        'Ű' => &["Ü", "U"],
        'ù' | 'ú' | 'û' | 'ü' | 'ũ' | 'ū' | 'ŭ' | 'ů' | 'ų' => &["u"],
        'ű' => &["ü", "u"],
        'Ŵ' => &["W"],
        'ŵ' => &["w"],
        'Ý' | 'Ŷ' | 'Ÿ' => &["Y"],
        'ý' | 'ÿ' | 'ŷ' => &["y"],
        'Ź' | 'Ż' | 'Ž' => &["Z"],
        'ź' | 'ż' | 'ž' => &["z"],
        // Spanish ordinals (1ª, 2º) and inverted punctuation.
        'ª' => &["a"],
        'º' => &["o"],
        '¡' => &["!"],
        '¿' => &["?"],
        // Quotes, dashes and spaces that word processors put in text.
        '‘' | '’' | '‚' | '‛' | '′' | '´' | '`' => &["'"],
        '“' | '”' | '„' | '‟' | '″' | '«' | '»' => &["\""],
        '‐' | '‑' | '‒' | '–' | '—' | '―' | '−' | '\u{AD}' => &["-"],
        '…' => &["..."],
        '\u{A0}' | '\u{2002}'..='\u{200A}' | '\u{202F}' | '\t' => &[" "],
        '·' | '•' => &["."],
        '×' => &["x"],
        '÷' => &["/"],
        '¦' => &["|"],
        '€' => &["EUR"],
        '\u{0C}' => &["\n"],
        _ => &[],
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_candidate_result_is_representable() {
        let encodings = [
            Encoding::Gsm7Unpacked,
            Encoding::Ia5,
            Encoding::Latin1,
            Encoding::Ucs2,
        ];
        for code in 0..0x3000u32 {
            let Some(ch) = char::from_u32(code) else {
                continue;
            };
            for encoding in encodings {
                let replaced = substitute(ch, encoding);
                assert!(
                    replaced.chars().all(|c| encoding.represents(c)),
                    "{ch:?} -> {replaced:?} in {encoding}"
                );
            }
        }
    }

    #[test]
    fn candidates_are_tried_in_order() {
        assert_eq!(substitute('ç', Encoding::Gsm7Packed), "Ç");
        assert_eq!(substitute('ç', Encoding::Ia5), "c");
        assert_eq!(substitute('ő', Encoding::Gsm7Unpacked), "ö");
        assert_eq!(substitute('ő', Encoding::Latin1), "ö");
        assert_eq!(substitute('ő', Encoding::Ia5), "o");
        assert_eq!(substitute('€', Encoding::Latin1), "EUR");
        assert_eq!(substitute('Δ', Encoding::Ia5), "?");
        assert_eq!(substitute('中', Encoding::Gsm7Unpacked), "?");
    }
}
