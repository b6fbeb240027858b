//! Check digits and structural rules that turn "looks like a number" into "is one": they are what
//! keeps the false-alarm rate of the personal-data detectors low.

/// Luhn (ISO/IEC 7812-1) over ASCII digits.
pub fn luhn(digits: &[u8]) -> bool {
    if digits.is_empty() || !digits.iter().all(u8::is_ascii_digit) {
        return false;
    }
    let mut sum = 0u32;
    for (i, d) in digits.iter().rev().enumerate() {
        let mut v = u32::from(d - b'0');
        if i % 2 == 1 {
            v *= 2;
            if v > 9 {
                v -= 9;
            }
        }
        sum += v;
    }
    sum.is_multiple_of(10)
}

/// Whether `digits` (13–19 of them) start with an issuer range of a card network that issues that
/// length: Visa, Mastercard (51–55, 2221–2720), American Express, Discover, UnionPay, JCB, Diners,
/// Maestro, Mir.
pub fn card_issuer(digits: &[u8]) -> Option<&'static str> {
    let len = digits.len();
    let prefix = |n: usize| -> u32 {
        digits[..n]
            .iter()
            .fold(0, |acc, d| acc * 10 + u32::from(d - b'0'))
    };
    if !(13..=19).contains(&len) {
        return None;
    }
    let p2 = prefix(2);
    let p3 = prefix(3);
    let p4 = prefix(4);
    let p6 = prefix(6);
    match () {
        _ if digits[0] == b'4' && matches!(len, 13 | 16 | 19) => Some("visa"),
        _ if (51..=55).contains(&p2) && len == 16 => Some("mastercard"),
        _ if (2221..=2720).contains(&p4) && len == 16 => Some("mastercard"),
        _ if (p2 == 34 || p2 == 37) && len == 15 => Some("amex"),
        _ if (p4 == 6011 || p2 == 65 || (644..=649).contains(&p3)) && (16..=19).contains(&len) => {
            Some("discover")
        }
        _ if (622126..=622925).contains(&p6) && (16..=19).contains(&len) => Some("discover"),
        _ if p2 == 62 && (16..=19).contains(&len) => Some("unionpay"),
        _ if (3528..=3589).contains(&p4) && (16..=19).contains(&len) => Some("jcb"),
        _ if ((300..=305).contains(&p3) || p2 == 36 || p2 == 38 || p2 == 39 || p3 == 309)
            && (14..=19).contains(&len) =>
        {
            Some("diners")
        }
        _ if matches!(
            p4,
            5018 | 5020 | 5038 | 5893 | 6304 | 6759 | 6761 | 6762 | 6763
        ) && (12..=19).contains(&len) =>
        {
            Some("maestro")
        }
        _ if (2200..=2204).contains(&p4) && (16..=19).contains(&len) => Some("mir"),
        _ => None,
    }
}

/// Province-level codes of the mainland resident identity card (GB/T 2260), plus Hong Kong, Macao
/// and Taiwan residents' permits (81, 82, 83).
const CN_PROVINCES: [u8; 35] = [
    11, 12, 13, 14, 15, 21, 22, 23, 31, 32, 33, 34, 35, 36, 37, 41, 42, 43, 44, 45, 46, 50, 51, 52,
    53, 54, 61, 62, 63, 64, 65, 71, 81, 82, 83,
];

/// A PRC resident identity number (GB 11643-1999): 17 digits and an ISO 7064 MOD 11-2 check
/// character (digit or X), a known province code and a real birth date between 1900 and `max_year`.
pub fn cn_resident_id(id: &[u8], max_year: u32) -> bool {
    if id.len() != 18 || !id[..17].iter().all(u8::is_ascii_digit) {
        return false;
    }
    let num = |r: std::ops::Range<usize>| {
        id[r]
            .iter()
            .fold(0u32, |acc, d| acc * 10 + u32::from(d - b'0'))
    };
    if !CN_PROVINCES.contains(&(num(0..2) as u8)) {
        return false;
    }
    let (year, month, day) = (num(6..10), num(10..12), num(12..14));
    if !(1900..=max_year).contains(&year) || !(1..=12).contains(&month) {
        return false;
    }
    let leap = (year % 4 == 0 && year % 100 != 0) || year % 400 == 0;
    let days = match month {
        2 if leap => 29,
        2 => 28,
        4 | 6 | 9 | 11 => 30,
        _ => 31,
    };
    if day == 0 || day > days {
        return false;
    }
    const WEIGHTS: [u32; 17] = [7, 9, 10, 5, 8, 4, 2, 1, 6, 3, 7, 9, 10, 5, 8, 4, 2];
    const CHECK: &[u8; 11] = b"10X98765432";
    let sum: u32 = id[..17]
        .iter()
        .zip(WEIGHTS)
        .map(|(d, w)| u32::from(d - b'0') * w)
        .sum();
    CHECK[(sum % 11) as usize] == id[17].to_ascii_uppercase()
}

/// Mainland mobile numbers: 11 digits in an allocated 1xx block.
pub fn cn_mobile(d: &[u8]) -> bool {
    if d.len() != 11 || d[0] != b'1' || !d.iter().all(u8::is_ascii_digit) {
        return false;
    }
    matches!(
        (d[1], d[2]),
        (b'3', _)
            | (b'4', b'5'..=b'9')
            | (b'5', b'0'..=b'3' | b'5'..=b'9')
            | (b'6', b'2' | b'5' | b'6' | b'7')
            | (b'7', b'0'..=b'8')
            | (b'8', _)
            | (b'9', b'0'..=b'3' | b'5'..=b'9')
    )
}

/// IBAN lengths by country (ISO 13616 registry).
fn iban_length(country: &[u8]) -> Option<usize> {
    Some(match country {
        b"AD" => 24,
        b"AE" => 23,
        b"AL" => 28,
        b"AT" => 20,
        b"AZ" => 28,
        b"BA" => 20,
        b"BE" => 16,
        b"BG" => 22,
        b"BH" => 22,
        b"BR" => 29,
        b"CH" => 21,
        b"CR" => 22,
        b"CY" => 28,
        b"CZ" => 24,
        b"DE" => 22,
        b"DK" => 18,
        b"DO" => 28,
        b"EE" => 20,
        b"EG" => 29,
        b"ES" => 24,
        b"FI" => 18,
        b"FO" => 18,
        b"FR" => 27,
        b"GB" => 22,
        b"GE" => 22,
        b"GI" => 23,
        b"GL" => 18,
        b"GR" => 27,
        b"GT" => 28,
        b"HR" => 21,
        b"HU" => 28,
        b"IE" => 22,
        b"IL" => 23,
        b"IQ" => 23,
        b"IS" => 26,
        b"IT" => 27,
        b"JO" => 30,
        b"KW" => 30,
        b"KZ" => 20,
        b"LB" => 28,
        b"LC" => 32,
        b"LI" => 21,
        b"LT" => 20,
        b"LU" => 20,
        b"LV" => 21,
        b"MC" => 27,
        b"MD" => 24,
        b"ME" => 22,
        b"MK" => 19,
        b"MR" => 27,
        b"MT" => 31,
        b"MU" => 30,
        b"NL" => 18,
        b"NO" => 15,
        b"PK" => 24,
        b"PL" => 28,
        b"PS" => 29,
        b"PT" => 25,
        b"QA" => 29,
        b"RO" => 24,
        b"RS" => 22,
        b"SA" => 24,
        b"SC" => 31,
        b"SE" => 24,
        b"SI" => 19,
        b"SK" => 24,
        b"SM" => 27,
        b"ST" => 25,
        b"SV" => 28,
        b"TL" => 23,
        b"TN" => 24,
        b"TR" => 26,
        b"UA" => 29,
        b"VA" => 22,
        b"VG" => 24,
        b"XK" => 20,
        _ => return None,
    })
}

/// An IBAN (spaces already removed, upper case): registered country, its length, mod 97 == 1.
pub fn iban(s: &[u8]) -> bool {
    if s.len() < 15
        || !s[..2].iter().all(u8::is_ascii_uppercase)
        || !s[2..4].iter().all(u8::is_ascii_digit)
        || !s
            .iter()
            .all(|b| b.is_ascii_digit() || b.is_ascii_uppercase())
        || iban_length(&s[..2]) != Some(s.len())
    {
        return false;
    }
    let mut rem = 0u32;
    for &b in s[4..].iter().chain(&s[..4]) {
        let v = if b.is_ascii_digit() {
            u32::from(b - b'0')
        } else {
            u32::from(b - b'A') + 10
        };
        rem = if v >= 10 {
            (rem * 100 + v) % 97
        } else {
            (rem * 10 + v) % 97
        };
    }
    rem == 1
}

/// A US Social Security number in its usual `AAA-GG-SSSS` form, within the ranges ever issued
/// (no area 000, 666 or 9xx, no group 00, no serial 0000).
pub fn us_ssn(area: u32, group: u32, serial: u32) -> bool {
    area != 0 && area != 666 && area < 900 && group != 0 && serial != 0
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn luhn_and_issuers() {
        assert!(luhn(b"4111111111111111") && card_issuer(b"4111111111111111") == Some("visa"));
        assert!(luhn(b"5500005555555559") && card_issuer(b"5500005555555559").is_some());
        assert!(luhn(b"378282246310005") && card_issuer(b"378282246310005") == Some("amex"));
        assert!(luhn(b"6011111111111117") && card_issuer(b"6011111111111117").is_some());
        assert!(luhn(b"6212345678901265") && card_issuer(b"6212345678901265") == Some("unionpay"));
        assert!(!luhn(b"4111111111111112"));
        // Luhn-valid but no network issues cards starting with 9 or of this length.
        assert!(card_issuer(b"9111111111111111").is_none());
        assert!(card_issuer(b"41111111111111").is_none());
    }

    /// Appends the MOD 11-2 check character to 17 digits.
    pub(crate) fn with_check(first17: &str) -> String {
        const WEIGHTS: [u32; 17] = [7, 9, 10, 5, 8, 4, 2, 1, 6, 3, 7, 9, 10, 5, 8, 4, 2];
        let sum: u32 = first17
            .bytes()
            .zip(WEIGHTS)
            .map(|(d, w)| u32::from(d - b'0') * w)
            .sum();
        format!("{first17}{}", b"10X98765432"[(sum % 11) as usize] as char)
    }

    #[test]
    fn resident_ids() {
        assert!(cn_resident_id(b"11010519491231002X", 2026));
        assert!(cn_resident_id(b"11010519491231002x", 2026));
        assert!(!cn_resident_id(b"110105194912310021", 2026)); // wrong check character
        assert!(cn_resident_id(
            with_check("44052419900101001").as_bytes(),
            2026
        ));
        // Right check character, but no such province, date or year.
        assert!(!cn_resident_id(
            with_check("99052419900101001").as_bytes(),
            2026
        ));
        assert!(!cn_resident_id(
            with_check("44052419900231001").as_bytes(),
            2026
        ));
        assert!(!cn_resident_id(
            with_check("44052418800101001").as_bytes(),
            2026
        ));
        assert!(!cn_resident_id(
            with_check("44052420300101001").as_bytes(),
            2026
        ));
        assert!(cn_resident_id(
            with_check("44052420000229001").as_bytes(),
            2026
        ));
        assert!(!cn_resident_id(b"1101051949123100", 2026));
    }

    #[test]
    fn mobiles_ibans_ssns() {
        assert!(cn_mobile(b"13812345678") && cn_mobile(b"19912345678"));
        assert!(!cn_mobile(b"12812345678") && !cn_mobile(b"1381234567"));
        assert!(iban(b"GB82WEST12345698765432"));
        assert!(iban(b"DE89370400440532013000"));
        assert!(!iban(b"GB82WEST12345698765433"));
        assert!(!iban(b"GB82WEST1234569876543"));
        assert!(us_ssn(123, 45, 6789) && !us_ssn(666, 45, 6789) && !us_ssn(123, 0, 6789));
    }
}
