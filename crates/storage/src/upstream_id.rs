//! Upstream message ids in their many forms. Case and leading zeros never
//! matter; reading an id in the other base is only for vendors whose
//! profile says so, because with sequential ids "12" read as hex is another
//! message's "18".
//!
//! An SMSC may give an id in `submit_sm_resp` as hexadecimal and report it
//! in a receipt as decimal, or change its case or leading zeros (VENDORS.md:
//! Telesign's 32 hex digits, others decimal or opaque). Tern indexes each id
//! under one normal form and looks a receipt's id up under every form it
//! could be the same number in.

/// The normal form: trimmed, lower case, leading zeros dropped (an id of
/// only zeros stays "0").
pub fn normalise(id: &str) -> String {
    let lower = id.trim().to_ascii_lowercase();
    let trimmed = lower.trim_start_matches('0');
    if trimmed.is_empty() && !lower.is_empty() {
        "0".to_owned()
    } else {
        trimmed.to_owned()
    }
}

/// The forms to look `id` up under: its normal form, and with `any_base`
/// also the other base's (see [`candidates`]).
pub fn forms(id: &str, any_base: bool) -> Vec<String> {
    if any_base {
        candidates(id)
    } else {
        vec![normalise(id)]
    }
}

/// The normal forms `id` may have been indexed under: itself, and, when it
/// reads as a number, the same number written in the other base.
pub fn candidates(id: &str) -> Vec<String> {
    let own = normalise(id);
    let mut forms = vec![own.clone()];
    let digits = own.as_str();
    if !digits.is_empty() && digits.len() <= 32 {
        if digits.bytes().all(|b| b.is_ascii_digit()) {
            if let Ok(n) = digits.parse::<u128>() {
                push_new(&mut forms, format!("{n:x}"));
            }
        }
        if digits.bytes().all(|b| b.is_ascii_hexdigit()) {
            if let Ok(n) = u128::from_str_radix(digits, 16) {
                push_new(&mut forms, n.to_string());
            }
        }
    }
    forms
}

fn push_new(forms: &mut Vec<String>, form: String) {
    if !forms.contains(&form) {
        forms.push(form);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn case_zeros_and_spaces_do_not_matter() {
        assert_eq!(normalise(" 00AbC "), "abc");
        assert_eq!(normalise("000"), "0");
        assert_eq!(normalise(""), "");
    }

    #[test]
    fn a_number_is_looked_up_in_both_bases() {
        assert_eq!(candidates("2748"), vec!["2748", "abc", "10056"]);
        assert_eq!(candidates("ABC"), vec!["abc", "2748"]);
        // Telesign's 32 hex digits fit a u128.
        let telesign = "0123456789ABCDEF0123456789ABCDEF";
        assert!(candidates(telesign).contains(&"123456789abcdef0123456789abcdef".to_owned()));
        // An opaque id is only itself.
        assert_eq!(candidates("msg-42"), vec!["msg-42"]);
    }
}
