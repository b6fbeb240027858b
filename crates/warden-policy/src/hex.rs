//! Lower-case hex, for digests, keys and signatures in config, logs and the audit trail.

pub fn encode(bytes: &[u8]) -> String {
    const DIGITS: &[u8; 16] = b"0123456789abcdef";
    let mut s = String::with_capacity(bytes.len() * 2);
    for b in bytes {
        s.push(DIGITS[usize::from(b >> 4)] as char);
        s.push(DIGITS[usize::from(b & 15)] as char);
    }
    s
}

/// Hex (either case) to bytes; `None` for an odd length or a non-hex character.
pub fn decode(s: &str) -> Option<Vec<u8>> {
    // Checked first: from_str_radix would take a `+` sign as part of a digit pair.
    if !s.len().is_multiple_of(2) || !s.bytes().all(|b| b.is_ascii_hexdigit()) {
        return None;
    }
    (0..s.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(s.get(i..i + 2)?, 16).ok())
        .collect()
}

#[cfg(test)]
mod tests {
    proptest::proptest! {
        #[test]
        fn round_trip(bytes in proptest::collection::vec(proptest::num::u8::ANY, 0..64)) {
            let s = super::encode(&bytes);
            proptest::prop_assert_eq!(super::decode(&s), Some(bytes));
            proptest::prop_assert_eq!(super::decode(&s.to_uppercase()).map(|b| super::encode(&b)), Some(s));
        }
    }

    #[test]
    fn bad_hex_is_refused() {
        assert_eq!(super::decode("abc"), None);
        assert_eq!(super::decode("zz"), None);
        assert_eq!(super::decode("+1"), None);
    }
}
