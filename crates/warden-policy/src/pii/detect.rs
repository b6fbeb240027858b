//! Finds personal and secret data in one value. Every detector is a hand-written linear scan with a
//! structural check behind it (check digit, registered range, decodable header), and the field name
//! the value sits under raises or lowers confidence: `card_number` makes a Luhn-valid number more
//! likely a card, `order_id` makes it more likely an order id.

use std::ops::Range;

use super::checks;

/// The kinds of data the detectors know. The names are the ones used in config and in findings.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum DataClass {
    /// Payment card number (PAN): Luhn and a known issuer range.
    Card,
    /// PRC resident identity number: GB 11643 check character, province, birth date.
    CnId,
    /// Mainland China mobile number.
    CnMobile,
    Email,
    Iban,
    UsSsn,
    /// International phone number in E.164 form (`+` and 8–15 digits).
    Phone,
    Ip,
    Jwt,
    PrivateKey,
    /// A credential in a vendor's recognisable format (AWS, GitHub, Stripe, Slack, Google).
    ApiKey,
    /// Whatever sits in a field named like a password or secret.
    Secret,
}

impl DataClass {
    pub const ALL: [DataClass; 12] = [
        DataClass::Card,
        DataClass::CnId,
        DataClass::CnMobile,
        DataClass::Email,
        DataClass::Iban,
        DataClass::UsSsn,
        DataClass::Phone,
        DataClass::Ip,
        DataClass::Jwt,
        DataClass::PrivateKey,
        DataClass::ApiKey,
        DataClass::Secret,
    ];

    pub fn id(self) -> &'static str {
        match self {
            DataClass::Card => "card",
            DataClass::CnId => "cn_id",
            DataClass::CnMobile => "cn_mobile",
            DataClass::Email => "email",
            DataClass::Iban => "iban",
            DataClass::UsSsn => "us_ssn",
            DataClass::Phone => "phone",
            DataClass::Ip => "ip",
            DataClass::Jwt => "jwt",
            DataClass::PrivateKey => "private_key",
            DataClass::ApiKey => "api_key",
            DataClass::Secret => "secret",
        }
    }

    pub fn parse(s: &str) -> Option<DataClass> {
        DataClass::ALL.into_iter().find(|c| c.id() == s)
    }

    /// Classes whose detection is backed by a check digit or an unmistakable format: these are
    /// masked by default; the rest are only reported unless a rule says otherwise.
    pub fn verified(self) -> bool {
        matches!(
            self,
            DataClass::Card
                | DataClass::CnId
                | DataClass::Iban
                | DataClass::PrivateKey
                | DataClass::ApiKey
                | DataClass::Secret
        )
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Confidence {
    Low,
    Medium,
    High,
}

impl Confidence {
    fn up(self) -> Confidence {
        match self {
            Confidence::Low => Confidence::Medium,
            _ => Confidence::High,
        }
    }
    fn down(self) -> Confidence {
        match self {
            Confidence::High => Confidence::Medium,
            _ => Confidence::Low,
        }
    }
    pub fn id(self) -> &'static str {
        match self {
            Confidence::Low => "low",
            Confidence::Medium => "medium",
            Confidence::High => "high",
        }
    }
}

/// One detection: which class, where in the value, how sure.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Match {
    pub class: DataClass,
    pub range: Range<usize>,
    pub confidence: Confidence,
}

/// What a field name says about its value.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct KeyHint {
    /// The name announces this class (`email`, `mobile`, `id_card`).
    pub expects: Option<DataClass>,
    /// The name announces something that is not personal data (`order_id`, `timestamp`).
    pub not_personal: bool,
    /// The name announces a secret (`password`, `api_key`): the value is one, whatever its shape.
    pub secret: bool,
}

thread_local! {
    /// `KeyHint::of` for the names this thread has seen. Bounded (emptied when full); SipHash,
    /// since names in an upstream's answer may come from clients.
    static KEY_HINTS: std::cell::RefCell<std::collections::HashMap<Box<str>, KeyHint>> =
        std::cell::RefCell::new(std::collections::HashMap::new());
}

impl KeyHint {
    /// `of`, remembered per thread: an API's answers repeat the same field names on every call,
    /// and working one out (words, stems, lookups) cost more than the rest of scanning its value.
    pub fn cached(key: Option<&str>) -> KeyHint {
        const MAX_NAMES: usize = 4096;
        let Some(k) = key.filter(|k| k.len() <= 64) else {
            return KeyHint::of(key);
        };
        KEY_HINTS.with(|memo| {
            let mut memo = memo.borrow_mut();
            if let Some(h) = memo.get(k) {
                return *h;
            }
            let h = KeyHint::of(key);
            if memo.len() >= MAX_NAMES {
                memo.clear();
            }
            memo.insert(k.into(), h);
            h
        })
    }

    pub fn of(key: Option<&str>) -> KeyHint {
        let Some(key) = key else {
            return KeyHint::default();
        };
        // Words, so that `card_number`, `cardNumber` and `Card-Number` read alike, and so that
        // `secretary` or `footprint` are not taken for `secret` or `otp`.
        let mut buf = [0u8; 64];
        let mut bounds: [(usize, usize); 8] = [(0, 0); 8];
        let (mut len, mut words) = (0usize, 0usize);
        let mut prev: Option<char> = None;
        for c in key.chars() {
            let boundary = match prev {
                None => true,
                Some(p) => {
                    !p.is_ascii_alphanumeric()
                        || (p.is_ascii_lowercase() && c.is_ascii_uppercase())
                        || (p.is_ascii_alphabetic() && c.is_ascii_digit())
                }
            };
            prev = Some(c);
            if !c.is_ascii_alphanumeric() {
                continue;
            }
            if len == buf.len() {
                break;
            }
            if boundary || words == 0 {
                if words == bounds.len() {
                    break;
                }
                bounds[words] = (len, len);
                words += 1;
            }
            buf[len] = c.to_ascii_lowercase() as u8;
            len += 1;
            bounds[words - 1].1 = len;
        }
        let word = |i: usize| std::str::from_utf8(&buf[bounds[i].0..bounds[i].1]).unwrap_or("");
        // Single words, pairs of neighbours (`api`+`key`), and the whole name.
        let mut terms: Vec<&str> = (0..words).map(word).collect();
        for i in 1..words {
            terms.push(std::str::from_utf8(&buf[bounds[i - 1].0..bounds[i].1]).unwrap_or(""));
        }
        if words > 2 {
            terms.push(std::str::from_utf8(&buf[..len]).unwrap_or(""));
        }
        let last = if words > 0 { word(words - 1) } else { "" };
        let stems = stems();
        let (mut secret, mut expects, mut not_personal) = (false, None::<DataClass>, false);
        for t in &terms {
            let found = stems
                .get(t)
                .or_else(|| t.strip_suffix('s').and_then(|u| stems.get(u)));
            match found {
                Some(Stem::Secret) => secret = true,
                // The most specific class wins: `id_card_no` is an identity number, not a card.
                Some(Stem::Class(c)) if expects.is_none_or(|e| priority(*c) < priority(e)) => {
                    expects = Some(*c)
                }
                Some(Stem::NotPersonal) => not_personal = true,
                _ => {}
            }
        }
        const NOT_A_VALUE: [&str; 16] = [
            "hint", "policy", "set", "length", "min", "max", "required", "changed", "updated",
            "at", "expiry", "expires", "id", "type", "strength", "enabled",
        ];
        if secret && !NOT_A_VALUE.contains(&last) {
            return KeyHint {
                secret: true,
                ..KeyHint::default()
            };
        }
        KeyHint {
            expects,
            not_personal: expects.is_none() && (not_personal || last == "id"),
            secret: false,
        }
    }

    fn adjust(&self, class: DataClass, base: Confidence) -> Confidence {
        let expected = match (self.expects, class) {
            (Some(DataClass::Phone), DataClass::CnMobile | DataClass::Phone) => true,
            (Some(e), c) => e == c,
            (None, _) => false,
        };
        if expected {
            base.up()
        } else if self.not_personal {
            base.down()
        } else {
            base
        }
    }
}

#[derive(Clone, Copy)]
enum Stem {
    Secret,
    Class(DataClass),
    NotPersonal,
}

fn priority(c: DataClass) -> u8 {
    match c {
        DataClass::CnId => 0,
        DataClass::Card => 1,
        DataClass::Iban => 2,
        DataClass::UsSsn => 3,
        DataClass::Phone => 4,
        DataClass::Email => 5,
        _ => 6,
    }
}

/// Words (and joined word pairs) of field names, and what they announce.
fn stems() -> &'static std::collections::HashMap<&'static str, Stem> {
    static S: std::sync::OnceLock<std::collections::HashMap<&'static str, Stem>> =
        std::sync::OnceLock::new();
    S.get_or_init(|| {
        let mut m = std::collections::HashMap::new();
        for w in [
            "password",
            "passwd",
            "passphrase",
            "pwd",
            "secret",
            "apikey",
            "privatekey",
            "secretkey",
            "accesskey",
            "credential",
            "cvv",
            "cvc",
            "cvv2",
            "securitycode",
            "otp",
            "mfacode",
            "recoverycode",
            "clientsecret",
        ] {
            m.insert(w, Stem::Secret);
        }
        let classes: [(DataClass, &[&str]); 7] = [
            (
                DataClass::CnId,
                &[
                    "idcard",
                    "idno",
                    "idnumber",
                    "idcardno",
                    "residentid",
                    "citizenid",
                    "nationalid",
                    "sfz",
                    "sfzh",
                    "shenfenzheng",
                ],
            ),
            (
                DataClass::Card,
                &[
                    "card",
                    "cardno",
                    "cardnumber",
                    "pan",
                    "ccnumber",
                    "creditcard",
                    "debitcard",
                    "bankcard",
                ],
            ),
            (DataClass::Iban, &["iban"]),
            (
                DataClass::UsSsn,
                &["ssn", "socialsecurity", "socialsecuritynumber"],
            ),
            (
                DataClass::Phone,
                &[
                    "mobile",
                    "phone",
                    "tel",
                    "telephone",
                    "cellphone",
                    "cell",
                    "shouji",
                    "msisdn",
                ],
            ),
            (DataClass::Email, &["email", "mail", "emailaddress"]),
            (
                DataClass::Ip,
                &[
                    "ip",
                    "ipaddress",
                    "ipaddr",
                    "clientip",
                    "remoteaddr",
                    "remoteip",
                    "sourceip",
                    "ipv4",
                    "ipv6",
                ],
            ),
        ];
        for (class, words) in classes {
            for w in words {
                m.insert(*w, Stem::Class(class));
            }
        }
        for w in [
            "uuid",
            "guid",
            "time",
            "timestamp",
            "ts",
            "date",
            "epoch",
            "created",
            "updated",
            "count",
            "total",
            "amount",
            "price",
            "cost",
            "version",
            "sku",
            "seq",
            "sequence",
            "nonce",
            "hash",
            "checksum",
            "size",
            "length",
            "offset",
            "page",
            "order",
            "invoice",
            "tracking",
            "reference",
            "ref",
            "serial",
            "code",
            "build",
            "revision",
            "index",
            "isbn",
            "gtin",
            "ean",
            "upc",
            "zip",
            "postcode",
            "lat",
            "lon",
            "latitude",
            "longitude",
            "trace",
            "span",
        ] {
            m.insert(w, Stem::NotPersonal);
        }
        m
    })
}

/// The current calendar year, for birth dates in identity numbers.
pub fn current_year() -> u32 {
    let secs = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs());
    1970 + (secs / 31_556_952) as u32
}

/// Scans a string value found under `hint` and appends what it finds to `out`.
pub fn scan_str(s: &str, hint: KeyHint, max_year: u32, out: &mut Vec<Match>) {
    if hint.secret {
        if !s.is_empty() && !looks_masked(s) {
            out.push(Match {
                class: DataClass::Secret,
                range: 0..s.len(),
                confidence: Confidence::High,
            });
        }
        return;
    }
    let b = s.as_bytes();
    // Cheap gates first: most values have nothing any detector could use.
    let digits = b.iter().filter(|c| c.is_ascii_digit()).count();
    if digits >= 7 {
        digit_runs(s, hint, max_year, out);
    }
    if b.contains(&b'@') {
        emails(s, hint, out);
    }
    if s.len() >= 15 {
        // One pass finds which of the long-value detectors have anything to look at.
        let (mut pem, mut jwt, mut key) = (false, false, false);
        for m in markers().find_iter(s) {
            match m.pattern().as_usize() {
                0 => pem = true,
                1 => jwt = true,
                _ => key = true,
            }
        }
        if pem {
            private_keys(s, out);
        }
        if jwt {
            jwts(s, hint, out);
        }
        if key {
            api_keys(s, out);
        }
        if b.windows(4).any(|w| {
            w[0].is_ascii_uppercase()
                && w[1].is_ascii_uppercase()
                && w[2].is_ascii_digit()
                && w[3].is_ascii_digit()
        }) {
            ibans(s, out);
        }
    }
    let ip_shaped = s.len() <= 45
        && s.len() >= 3
        && s.bytes()
            .all(|c| c.is_ascii_hexdigit() || c == b'.' || c == b':')
        && (s.contains('.') || s.contains(':'));
    if hint.expects == Some(DataClass::Ip) || ip_shaped {
        if let Ok(ip) = s.trim().parse::<std::net::IpAddr>() {
            if !(ip.is_loopback() || ip.is_unspecified()) {
                let confidence = hint.adjust(DataClass::Ip, Confidence::Low);
                out.push(Match {
                    class: DataClass::Ip,
                    range: 0..s.len(),
                    confidence,
                });
            }
        }
    }
}

/// Scans a JSON number (as written) found under `hint`: an identity or card number stored as a
/// number is still one, and a `cvv` stored as a number is still a secret.
pub fn scan_number(n: &str, hint: KeyHint, max_year: u32, out: &mut Vec<Match>) {
    if hint.secret {
        out.push(Match {
            class: DataClass::Secret,
            range: 0..n.len(),
            confidence: Confidence::High,
        });
        return;
    }
    if n.len() >= 9 && n.bytes().all(|b| b.is_ascii_digit()) {
        classify_digits(n.as_bytes(), 0..n.len(), None, false, hint, max_year, out);
    }
}

/// Values that are already masked (`****`, `[REDACTED]`) are not secrets any more.
fn looks_masked(s: &str) -> bool {
    s.bytes()
        .all(|b| b == b'*' || b == b'x' || b == b'X' || b == b'#')
        || s == "[REDACTED]"
        || s.starts_with("enc:v1:")
}

/// Finds runs of digits, possibly grouped by single spaces or dashes (`4111 1111 1111 1111`,
/// `123-45-6789`) or led by `+` (`+8613812345678`), that stand alone (not inside a longer word or
/// number), and classifies each.
fn digit_runs(s: &str, hint: KeyHint, max_year: u32, out: &mut Vec<Match>) {
    let b = s.as_bytes();
    let mut i = 0;
    while i < b.len() {
        let plus = b[i] == b'+' && b.get(i + 1).is_some_and(u8::is_ascii_digit);
        if !(b[i].is_ascii_digit() || plus) {
            i += 1;
            continue;
        }
        let start = i;
        if i > 0 && (b[i - 1].is_ascii_alphanumeric() || b[i - 1] == b'_') {
            // Inside a word or a hex string: skip the whole token. Past the current byte first:
            // a `+` (`X+0`) is not part of a word, and the loop below would not move.
            i += 1;
            while i < b.len() && (b[i].is_ascii_alphanumeric() || b[i] == b'_') {
                i += 1;
            }
            continue;
        }
        if plus {
            i += 1;
        }
        let mut digits = Vec::with_capacity(20);
        let mut sep: Option<u8> = None;
        while i < b.len() {
            let c = b[i];
            if c.is_ascii_digit() {
                digits.push(c);
                i += 1;
            } else if (c == b' ' || c == b'-')
                && b.get(i + 1).is_some_and(u8::is_ascii_digit)
                && sep.is_none_or(|s| s == c)
                && digits.len() < 20
            {
                sep = Some(c);
                i += 1;
            } else {
                break;
            }
        }
        let mut end = i;
        // A trailing check character X on 17 digits (identity numbers).
        if digits.len() == 17 && sep.is_none() && matches!(b.get(i), Some(b'X' | b'x')) {
            digits.push(b'X');
            end = i + 1;
        }
        i = end;
        if b.get(end)
            .is_some_and(|c| c.is_ascii_alphanumeric() || *c == b'_')
        {
            // `4111111111111111abc` is an identifier, not a card.
            while i < b.len() && (b[i].is_ascii_alphanumeric() || b[i] == b'_') {
                i += 1;
            }
            continue;
        }
        classify_digits(&digits, start..end, sep, plus, hint, max_year, out);
    }
}

/// Decides what a standalone run of digits is.
fn classify_digits(
    digits: &[u8],
    range: Range<usize>,
    sep: Option<u8>,
    plus: bool,
    hint: KeyHint,
    max_year: u32,
    out: &mut Vec<Match>,
) {
    let n = digits.len();
    let push = |out: &mut Vec<Match>, class, base| {
        out.push(Match {
            class,
            range: range.clone(),
            confidence: hint.adjust(class, base),
        })
    };
    if plus {
        if n >= 13 && digits.starts_with(b"86") && checks::cn_mobile(&digits[2..]) {
            push(out, DataClass::CnMobile, Confidence::Medium);
        } else if (8..=15).contains(&n) {
            push(out, DataClass::Phone, Confidence::Low);
        }
        return;
    }
    if n == 18 && sep.is_none() && checks::cn_resident_id(digits, max_year) {
        push(out, DataClass::CnId, Confidence::High);
        return;
    }
    if (13..=19).contains(&n) && checks::luhn(digits) && checks::card_issuer(digits).is_some() {
        push(out, DataClass::Card, Confidence::High);
        return;
    }
    if n == 11 && sep.is_none() && checks::cn_mobile(digits) {
        push(out, DataClass::CnMobile, Confidence::Medium);
        return;
    }
    if n == 9 {
        let num = |r: Range<usize>| {
            digits[r]
                .iter()
                .fold(0u32, |a, d| a * 10 + u32::from(d - b'0'))
        };
        let dashed = sep == Some(b'-');
        if (dashed || hint.expects == Some(DataClass::UsSsn))
            && checks::us_ssn(num(0..3), num(3..5), num(5..9))
        {
            push(out, DataClass::UsSsn, Confidence::Medium);
        }
    }
}

fn emails(s: &str, hint: KeyHint, out: &mut Vec<Match>) {
    let b = s.as_bytes();
    let local_ok = |c: u8| c.is_ascii_alphanumeric() || b"._%+-".contains(&c);
    let domain_ok = |c: u8| c.is_ascii_alphanumeric() || c == b'.' || c == b'-';
    let mut from = 0;
    while let Some(at) = s[from..].find('@').map(|p| p + from) {
        from = at + 1;
        let mut l = at;
        while l > 0 && local_ok(b[l - 1]) && at - l < 64 {
            l -= 1;
        }
        let mut r = at + 1;
        while r < b.len() && domain_ok(b[r]) && r - at < 254 {
            r += 1;
        }
        // Trailing dots belong to the sentence, not the address.
        while r > at + 1 && b[r - 1] == b'.' {
            r -= 1;
        }
        let domain = &s[at + 1..r];
        let tld_ok = domain.rsplit_once('.').is_some_and(|(head, tld)| {
            !head.is_empty() && tld.len() >= 2 && tld.bytes().all(|c| c.is_ascii_alphabetic())
        });
        if l < at && tld_ok && !domain.starts_with(['.', '-']) && !domain.contains("..") {
            out.push(Match {
                class: DataClass::Email,
                range: l..r,
                confidence: hint.adjust(DataClass::Email, Confidence::Medium),
            });
            from = r;
        }
    }
}

fn private_keys(s: &str, out: &mut Vec<Match>) {
    let mut from = 0;
    while let Some(start) = s[from..].find("-----BEGIN ").map(|p| p + from) {
        let header_end = s[start + 11..].find("-----").map(|p| p + start + 11);
        let Some(header_end) = header_end else {
            return;
        };
        let label = &s[start + 11..header_end];
        from = header_end + 5;
        if !label.ends_with("PRIVATE KEY") {
            continue;
        }
        let end = s[from..]
            .find("-----END ")
            .and_then(|p| {
                s[from + p + 9..]
                    .find("-----")
                    .map(|q| from + p + 9 + q + 5)
            })
            .unwrap_or(s.len());
        out.push(Match {
            class: DataClass::PrivateKey,
            range: start..end,
            confidence: Confidence::High,
        });
        from = end;
    }
}

fn b64url(c: u8) -> bool {
    c.is_ascii_alphanumeric() || c == b'-' || c == b'_'
}

fn jwts(s: &str, hint: KeyHint, out: &mut Vec<Match>) {
    let b = s.as_bytes();
    let mut from = 0;
    while let Some(start) = s[from..].find("eyJ").map(|p| p + from) {
        from = start + 3;
        if start > 0 && b64url(b[start - 1]) {
            continue;
        }
        let mut i = start;
        let mut dots = 0;
        let mut seg_len = 0;
        let mut ok = true;
        while i < b.len() && (b64url(b[i]) || b[i] == b'.') {
            if b[i] == b'.' {
                if seg_len < 4 {
                    ok = false;
                    break;
                }
                dots += 1;
                seg_len = 0;
            } else {
                seg_len += 1;
            }
            i += 1;
        }
        if ok
            && dots == 2
            && b[start..i]
                .split(|c| *c == b'.')
                .nth(1)
                .is_some_and(|p| p.len() >= 4)
        {
            out.push(Match {
                class: DataClass::Jwt,
                range: start..i,
                confidence: hint.adjust(DataClass::Jwt, Confidence::Medium),
            });
            from = i;
        }
    }
}

/// A vendor key format: prefix, body length, body alphabet.
type KeyFormat = (&'static str, usize, fn(u8) -> bool);

/// Vendor key formats: a fixed prefix and a body of known length and alphabet.
const KEY_FORMATS: [KeyFormat; 9] = [
    ("AKIA", 16, |c| c.is_ascii_uppercase() || c.is_ascii_digit()),
    ("ASIA", 16, |c| c.is_ascii_uppercase() || c.is_ascii_digit()),
    ("ghp_", 36, |c| c.is_ascii_alphanumeric()),
    ("gho_", 36, |c| c.is_ascii_alphanumeric()),
    ("ghs_", 36, |c| c.is_ascii_alphanumeric()),
    ("github_pat_", 82, |c| {
        c.is_ascii_alphanumeric() || c == b'_'
    }),
    ("sk_live_", 24, |c| c.is_ascii_alphanumeric()),
    ("xoxb-", 24, |c| c.is_ascii_alphanumeric() || c == b'-'),
    ("AIza", 35, |c| {
        c.is_ascii_alphanumeric() || c == b'-' || c == b'_'
    }),
];

/// Marker 0 starts a PEM block, 1 a JWT, the rest a vendor key (in `KEY_FORMATS` order).
fn markers() -> &'static aho_corasick::AhoCorasick {
    static M: std::sync::OnceLock<aho_corasick::AhoCorasick> = std::sync::OnceLock::new();
    M.get_or_init(|| {
        let patterns = ["-----BEGIN ", "eyJ"]
            .into_iter()
            .chain(KEY_FORMATS.iter().map(|(p, _, _)| *p));
        aho_corasick::AhoCorasick::new(patterns).expect("static patterns build")
    })
}

fn api_keys(s: &str, out: &mut Vec<Match>) {
    let b = s.as_bytes();
    for (prefix, min_len, alphabet) in KEY_FORMATS {
        let mut from = 0;
        while let Some(start) = s[from..].find(prefix).map(|p| p + from) {
            from = start + prefix.len();
            if start > 0 && b[start - 1].is_ascii_alphanumeric() {
                continue;
            }
            let mut end = from;
            while end < b.len() && alphabet(b[end]) {
                end += 1;
            }
            let body = end - from;
            // AWS ids are exactly 16; the others are at least their stated length.
            let fixed = prefix == "AKIA" || prefix == "ASIA";
            if (fixed && body == min_len) || (!fixed && body >= min_len) {
                out.push(Match {
                    class: DataClass::ApiKey,
                    range: start..end,
                    confidence: Confidence::High,
                });
            }
            from = end;
        }
    }
}

/// IBANs as written: two letters, two digits, then letters and digits, in groups of four or not.
fn ibans(s: &str, out: &mut Vec<Match>) {
    let b = s.as_bytes();
    let mut i = 0;
    while i + 15 <= b.len() {
        let starts = b[i].is_ascii_uppercase()
            && b[i + 1].is_ascii_uppercase()
            && b[i + 2].is_ascii_digit()
            && b[i + 3].is_ascii_digit()
            && (i == 0 || !b[i - 1].is_ascii_alphanumeric());
        if !starts {
            i += 1;
            continue;
        }
        let mut compact = Vec::with_capacity(34);
        let mut j = i;
        while j < b.len() && compact.len() < 34 {
            if b[j].is_ascii_uppercase() || b[j].is_ascii_digit() {
                compact.push(b[j]);
                j += 1;
            } else if b[j] == b' ' && b.get(j + 1).is_some_and(|c| c.is_ascii_alphanumeric()) {
                j += 1;
            } else {
                break;
            }
        }
        if checks::iban(&compact) && !b.get(j).is_some_and(u8::is_ascii_alphanumeric) {
            out.push(Match {
                class: DataClass::Iban,
                range: i..j,
                confidence: Confidence::High,
            });
            i = j;
        } else {
            i += 2;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_plus_right_after_a_word_does_not_stall_the_scan() {
        // Found by the pii_protect fuzz target: `XX+0` looped forever.
        let mut out = Vec::new();
        scan_str("0XX+0 XX7000 X77wI", KeyHint::of(None), 2026, &mut out);
        scan_str(
            "id+4111111111111111 and a+86 138 0013 8000",
            KeyHint::of(None),
            2026,
            &mut out,
        );
    }

    fn found<'a>(s: &'a str, key: Option<&str>) -> Vec<(DataClass, &'a str, Confidence)> {
        let mut out = Vec::new();
        scan_str(s, KeyHint::of(key), 2026, &mut out);
        out.iter()
            .map(|m| (m.class, &s[m.range.clone()], m.confidence))
            .collect()
    }

    fn classes(s: &str, key: Option<&str>) -> Vec<DataClass> {
        found(s, key).into_iter().map(|f| f.0).collect()
    }

    #[test]
    fn cards_valid_and_near_misses() {
        assert_eq!(
            found("paid with 4111 1111 1111 1111.", None),
            vec![(DataClass::Card, "4111 1111 1111 1111", Confidence::High)]
        );
        assert_eq!(classes("4111-1111-1111-1111", None), vec![DataClass::Card]);
        assert_eq!(
            classes("378282246310005", Some("pan")),
            vec![DataClass::Card]
        );
        assert!(classes("4111111111111112", None).is_empty(), "wrong Luhn");
        assert!(
            classes("x4111111111111111", None).is_empty(),
            "inside a word"
        );
        assert!(
            classes("4111111111111111ab", None).is_empty(),
            "inside a word"
        );
        assert!(classes("9111111111111111", None).is_empty(), "no issuer");
        // A Luhn-valid number under an id field is reported, but not with high confidence.
        assert_eq!(
            found("4111111111111111", Some("order_id"))[0].2,
            Confidence::Medium
        );
    }

    #[test]
    fn resident_ids_valid_and_near_misses() {
        assert_eq!(
            found("身份证号11010519491231002X已登记", None),
            vec![(DataClass::CnId, "11010519491231002X", Confidence::High)]
        );
        assert!(
            classes("110105194912310021", None).is_empty(),
            "wrong check digit"
        );
        assert!(classes("11010519491231002", None).is_empty(), "17 digits");
    }

    #[test]
    fn mobiles_phones_ssns_emails_ibans() {
        assert_eq!(found("13812345678", None)[0].0, DataClass::CnMobile);
        assert_eq!(found("13812345678", Some("mobile"))[0].2, Confidence::High);
        assert!(classes("12812345678", None).is_empty());
        assert_eq!(found("call +14155550101", None)[0].0, DataClass::Phone);
        assert_eq!(
            found("+14155550101", Some("phone"))[0].2,
            Confidence::Medium
        );
        assert_eq!(classes("SSN 123-45-6789", None), vec![DataClass::UsSsn]);
        assert!(classes("666-45-6789", None).is_empty());
        assert!(classes("123456789", None).is_empty(), "bare 9 digits");
        assert_eq!(classes("123456789", Some("ssn")), vec![DataClass::UsSsn]);
        assert_eq!(
            found("write to jane.doe+x@mail.example.org.", None),
            vec![(
                DataClass::Email,
                "jane.doe+x@mail.example.org",
                Confidence::Medium
            )]
        );
        assert_eq!(found("a@b.io", Some("email"))[0].2, Confidence::High);
        assert!(classes("user@localhost", None).is_empty());
        assert!(classes("@handle and a @ sign", None).is_empty());
        assert_eq!(
            classes("IBAN GB82 WEST 1234 5698 7654 32", None),
            vec![DataClass::Iban]
        );
        assert!(
            classes("GB82WEST12345698765433", None).is_empty(),
            "wrong mod 97"
        );
    }

    #[test]
    fn secrets_keys_and_tokens() {
        assert_eq!(
            classes("hunter2", Some("password")),
            vec![DataClass::Secret]
        );
        assert_eq!(
            classes("$2b$12$abc", Some("password_hash")),
            vec![DataClass::Secret]
        );
        assert!(classes("********", Some("password")).is_empty());
        assert!(classes("hunter2", Some("password_hint")).is_empty());
        assert_eq!(classes("v", Some("clientSecret")), vec![DataClass::Secret]);
        assert_eq!(classes("v", Some("X-Api-Key")), vec![DataClass::Secret]);
        assert_eq!(classes("v", Some("newPassword")), vec![DataClass::Secret]);
        assert!(classes("Jane", Some("secretary")).is_empty());
        assert!(classes("42 kg", Some("footprint")).is_empty());
        assert!(classes("2026-01-01", Some("password_changed_at")).is_empty());
        assert_eq!(
            classes("key AKIAIOSFODNN7EXAMPLE here", None),
            vec![DataClass::ApiKey]
        );
        assert!(
            classes("AKIAIOSFODNN7EXAMPLEX", None).is_empty(),
            "AWS ids are 20 chars"
        );
        let pem = "-----BEGIN PRIVATE KEY-----\nMIIE\n-----END PRIVATE KEY-----";
        assert_eq!(
            found(pem, None),
            vec![(DataClass::PrivateKey, pem, Confidence::High)]
        );
        assert!(classes(
            "-----BEGIN PUBLIC KEY-----\nMII\n-----END PUBLIC KEY-----",
            None
        )
        .is_empty());
        let jwt = "eyJhbGciOiJIUzI1NiJ9.eyJzdWIiOiIxIn0.c2lnbmF0dXJl";
        assert_eq!(
            classes(&format!("Bearer {jwt}"), None),
            vec![DataClass::Jwt]
        );
    }

    #[test]
    fn ordinary_values_are_quiet() {
        for v in [
            "2026-11-23T10:15:30Z",
            "550e8400-e29b-41d4-a716-446655440000",
            "v1.2.3",
            "Order 1234 shipped",
            "1700000000000",
            "price 19.99 USD",
            "SKU-4111-1111",
            "0.0.0.0",
            "ab12cd34ef56ab12cd34ef56ab12cd34",
            "The quick brown fox",
        ] {
            assert!(
                classes(v, None).iter().all(|c| *c == DataClass::Ip),
                "{v}: {:?}",
                classes(v, None)
            );
        }
    }

    #[test]
    fn numbers() {
        let mut out = Vec::new();
        scan_number(
            "4111111111111111",
            KeyHint::of(Some("card")),
            2026,
            &mut out,
        );
        assert_eq!(out[0].class, DataClass::Card);
        out.clear();
        scan_number("123", KeyHint::of(Some("cvv")), 2026, &mut out);
        assert_eq!(out[0].class, DataClass::Secret);
        out.clear();
        scan_number(
            "1700000000000",
            KeyHint::of(Some("created")),
            2026,
            &mut out,
        );
        assert!(out.is_empty());
    }

    #[test]
    fn remembered_hints_are_the_hints() {
        let names = [
            "email",
            "cardNumber",
            "api_key",
            "order_id",
            "password_hint",
            "x",
            "",
        ];
        for _ in 0..3 {
            for n in names {
                assert_eq!(KeyHint::cached(Some(n)), KeyHint::of(Some(n)), "{n}");
            }
        }
        // Past the bound the memory starts over, and still answers the same.
        for i in 0..5000 {
            let n = format!("field_{i}_email");
            assert_eq!(KeyHint::cached(Some(&n)), KeyHint::of(Some(&n)));
        }
        assert_eq!(KeyHint::cached(Some("email")), KeyHint::of(Some("email")));
        assert_eq!(KeyHint::cached(None), KeyHint::default());
        let long = "secret_".repeat(20);
        assert_eq!(KeyHint::cached(Some(&long)), KeyHint::of(Some(&long)));
    }

    proptest::proptest! {
        #[test]
        fn a_remembered_hint_is_the_hint_worked_out(key in "\\PC{0,20}") {
            let first = KeyHint::cached(Some(&key));
            proptest::prop_assert_eq!(first, KeyHint::of(Some(&key)));
            proptest::prop_assert_eq!(KeyHint::cached(Some(&key)), first);
        }

        #[test]
        fn never_panics_and_ranges_are_in_bounds(s in "\\PC{0,80}", key in proptest::option::of("[a-z_]{0,12}")) {
            let mut out = Vec::new();
            scan_str(&s, KeyHint::of(key.as_deref()), 2026, &mut out);
            for m in out {
                proptest::prop_assert!(m.range.end <= s.len() && s.is_char_boundary(m.range.start) && s.is_char_boundary(m.range.end));
            }
        }
    }
}
