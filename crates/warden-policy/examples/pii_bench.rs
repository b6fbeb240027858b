//! Personal-data detection, measured: the false-alarm rate on a corpus of ordinary API JSON (ids,
//! timestamps, prices, UUIDs, versions, hashes, SKUs, coordinates), the detection rate on valid
//! personal data, and the in-process throughput of `Policy::protect_json`.
//!
//! Run: `cargo run --release -p warden-policy --example pii_bench [DOCS=20000]`
//! The corpora are generated from a fixed seed, so every run sees the same values.

use std::time::Instant;

use warden_policy::json::{self, Event, Scalar};
use warden_policy::pii::detect::{scan_number, scan_str, KeyHint, Match};
use warden_policy::pii::{Audience, Confidence, DataClass, Policy};

/// xorshift64*: deterministic and dependency-free; statistical quality is not the point here.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_F491_4F6C_DD1D)
    }
    fn below(&mut self, n: u64) -> u64 {
        self.next() % n
    }
    fn digits(&mut self, n: usize) -> String {
        let mut s: String = (0..n)
            .map(|_| char::from(b'0' + self.below(10) as u8))
            .collect();
        if s.starts_with('0') {
            s.replace_range(0..1, &((1 + self.below(9)).to_string()));
        }
        s
    }
    fn hex(&mut self, n: usize) -> String {
        (0..n)
            .map(|_| char::from(b"0123456789abcdef"[self.below(16) as usize]))
            .collect()
    }
    fn pick<'a>(&mut self, items: &[&'a str]) -> &'a str {
        items[self.below(items.len() as u64) as usize]
    }
}

/// One ordinary API document: what an orders, catalogue or telemetry API returns.
fn ordinary_doc(r: &mut Rng) -> String {
    let uuid = format!(
        "{}-{}-4{}-a{}-{}",
        r.hex(8),
        r.hex(4),
        r.hex(3),
        r.hex(3),
        r.hex(12)
    );
    let ts_ms = 1_600_000_000_000 + r.below(200_000_000_000);
    let order_len = 6 + r.below(14) as usize; // 6..19 digits, Luhn-valid one time in ten
    let tracking_len = 12 + r.below(8) as usize;
    let words = [
        "shipped",
        "pending",
        "the parcel left the depot",
        "call me maybe",
        "select one",
        "union station",
    ];
    serde_json::json!({
        "order_id": r.digits(order_len),
        "invoice": format!("INV-{}", r.digits(10)),
        "tracking_number": r.digits(tracking_len),
        "customer_ref": r.digits(16),
        "id": r.below(10_000_000_000),
        "uuid": uuid,
        "created_at": format!("2026-{:02}-{:02}T{:02}:{:02}:{:02}.{}Z", 1 + r.below(12), 1 + r.below(28), r.below(24), r.below(60), r.below(60), r.digits(3)),
        "timestamp": ts_ms,
        "epoch_ns": format!("{}", ts_ms * 1_000_000 + r.below(1_000_000)),
        "price": format!("{}.{:02}", r.below(5000), r.below(100)),
        "amount_cents": r.below(10_000_000_000_000),
        "version": format!("{}.{}.{}", r.below(20), r.below(50), r.below(200)),
        "build": r.digits(8),
        "sku": format!("SKU-{}-{}", r.digits(4), r.digits(4)),
        "sha256": r.hex(64),
        "etag": format!("W/\"{}\"", r.hex(16)),
        "status": r.pick(&words),
        "note": format!("Order {} of {} items, ref {}", r.digits(6), r.below(20), r.digits(18)),
        "lat": format!("{}.{}", r.below(90), r.digits(15)),
        "lon": format!("-{}.{}", r.below(180), r.digits(15)),
        "count": r.below(1_000_000),
        "phone_ext": r.digits(4),
        "page": {"offset": r.below(10_000), "limit": 50, "total": r.below(1_000_000_000)},
        "zip": r.digits(5),
        "isbn": format!("978{}", r.digits(10)),
        "gtin": r.digits(14),
        "session": format!("s_{}", r.hex(32)),
        "color": format!("#{}", r.hex(6)),
    })
    .to_string()
}

fn luhn_complete(partial: &str) -> String {
    for d in 0..10 {
        let s = format!("{partial}{d}");
        if warden_policy::pii::checks::luhn(s.as_bytes()) {
            return s;
        }
    }
    unreachable!("one check digit always fits")
}

fn cn_id_complete(first17: &str) -> String {
    const W: [u32; 17] = [7, 9, 10, 5, 8, 4, 2, 1, 6, 3, 7, 9, 10, 5, 8, 4, 2];
    let sum: u32 = first17
        .bytes()
        .zip(W)
        .map(|(d, w)| u32::from(d - b'0') * w)
        .sum();
    format!("{first17}{}", b"10X98765432"[(sum % 11) as usize] as char)
}

/// Valid personal data, in the fields and free text where APIs leak it.
fn personal_values(r: &mut Rng) -> Vec<(DataClass, Option<&'static str>, String)> {
    let card_prefixes = ["4", "51", "52", "55", "2221", "34", "37", "6011", "62"];
    let prefix = r.pick(&card_prefixes);
    let len = match prefix {
        "34" | "37" => 15,
        _ => 16,
    };
    let card = luhn_complete(&format!("{prefix}{}", r.digits(len - prefix.len() - 1)));
    let provinces = ["11", "31", "44", "51", "65", "33"];
    let id = cn_id_complete(&format!(
        "{}{}{}{:02}{:02}{}",
        r.pick(&provinces),
        r.digits(4),
        1950 + r.below(60),
        1 + r.below(12),
        1 + r.below(28),
        r.digits(3)
    ));
    let spaced = card
        .as_bytes()
        .chunks(4)
        .map(|c| std::str::from_utf8(c).unwrap())
        .collect::<Vec<_>>()
        .join(" ");
    vec![
        (DataClass::Card, Some("card_number"), card.clone()),
        (
            DataClass::Card,
            Some("comment"),
            format!("please charge {spaced} today"),
        ),
        (DataClass::CnId, Some("id_card"), id.clone()),
        (
            DataClass::CnId,
            Some("remark"),
            format!("身份证{id}，已核验"),
        ),
        (
            DataClass::Iban,
            Some("iban"),
            "DE89 3704 0044 0532 0130 00".to_string(),
        ),
        (DataClass::Secret, Some("password"), r.hex(12)),
        (
            DataClass::ApiKey,
            Some("config"),
            format!("AKIA{}", "ABCDEFGHIJKLMNOP"),
        ),
    ]
}

fn scan(value: &str, key: Option<&str>, is_number: bool) -> Vec<Match> {
    let mut out = Vec::new();
    let hint = KeyHint::of(key);
    if is_number {
        scan_number(value, hint, 2026, &mut out);
    } else {
        scan_str(value, hint, 2026, &mut out);
    }
    out
}

fn main() {
    let docs: usize = std::env::args()
        .nth(1)
        .and_then(|a| a.parse().ok())
        .unwrap_or(20_000);
    let mut r = Rng(0x5eed_1234_abcd_0001);

    // 1. False alarms on ordinary JSON, per leaf value.
    let corpus: Vec<String> = (0..docs).map(|_| ordinary_doc(&mut r)).collect();
    let (mut leaves, mut reported, mut masked) = (0usize, 0usize, 0usize);
    let mut examples: Vec<String> = Vec::new();
    for doc in &corpus {
        json::walk(doc, 64, |e| {
            if let Event::Leaf { path, value, .. } = e {
                let (text, num) = match value {
                    Scalar::Str(s) => (s.to_string(), false),
                    Scalar::Num(n) => (n.to_string(), true),
                    _ => return,
                };
                leaves += 1;
                let found = scan(&text, path.last_key(), num);
                let acted: Vec<_> = found
                    .iter()
                    .filter(|m| m.confidence >= Confidence::Medium)
                    .collect();
                if !acted.is_empty() {
                    reported += 1;
                    if examples.len() < 5 {
                        examples.push(format!("{}={} ({})", path, text, acted[0].class.id()));
                    }
                }
                if acted
                    .iter()
                    .any(|m| m.class.verified() && m.confidence == Confidence::High)
                {
                    masked += 1;
                }
            }
        })
        .unwrap();
    }

    // 2. Detection of valid personal data.
    let mut per_class: std::collections::BTreeMap<&str, (usize, usize)> = Default::default();
    for _ in 0..docs.min(5000) {
        for (class, key, value) in personal_values(&mut r) {
            let hit = scan(&value, key, false)
                .iter()
                .any(|m| m.class == class && m.confidence == Confidence::High);
            let e = per_class.entry(class.id()).or_default();
            e.0 += 1;
            e.1 += usize::from(hit);
        }
    }

    // 3. Throughput of the whole protection on a typical ~2 KB response with some personal data.
    let typical = {
        let mut d: serde_json::Value = serde_json::from_str(&ordinary_doc(&mut r)).unwrap();
        d["customer"] = serde_json::json!({"name": "Li Lei", "id_card": "11010519491231002X",
            "card": "4111111111111111", "email": "li@example.com", "phone": "+8613812345678"});
        d["items"] = serde_json::Value::Array(
            (0..6)
                .map(|_| serde_json::from_str(&ordinary_doc(&mut r)).unwrap())
                .take(2)
                .collect(),
        );
        d.to_string()
    };
    let policy = Policy::default();
    let aud = Audience {
        route: "api",
        scopes: &[],
    };
    let rounds = 20_000;
    let t = Instant::now();
    let mut changed = 0;
    for _ in 0..rounds {
        changed += usize::from(policy.protect_json(&typical, aud).unwrap().body.is_some());
    }
    let secs = t.elapsed().as_secs_f64();
    let t = Instant::now();
    for doc in &corpus {
        std::hint::black_box(policy.protect_json(doc, aud).unwrap());
    }
    let corpus_secs = t.elapsed().as_secs_f64();
    let corpus_bytes: usize = corpus.iter().map(String::len).sum();

    println!("## False alarms on ordinary JSON ({docs} documents, {leaves} values)\n");
    println!("| measure | values | rate |");
    println!("| --- | ---: | ---: |");
    println!(
        "| reported (medium or high confidence) | {reported} | {:.3}% |",
        100.0 * reported as f64 / leaves as f64
    );
    println!(
        "| changed by the default policy (masked) | {masked} | {:.3}% |",
        100.0 * masked as f64 / leaves as f64
    );
    if !examples.is_empty() {
        println!(
            "\nExamples of reported ordinary values: {}",
            examples.join("; ")
        );
    }
    println!("\n## Detection of valid personal data\n");
    println!("| class | values | detected (high confidence) |");
    println!("| --- | ---: | ---: |");
    for (class, (n, hit)) in &per_class {
        println!(
            "| {class} | {n} | {:.1}% |",
            100.0 * *hit as f64 / *n as f64
        );
    }
    println!("\n## Throughput of `protect_json` (one core)\n");
    println!("| input | size | per document | MB/s |");
    println!("| --- | ---: | ---: | ---: |");
    println!(
        "| typical response with personal data (rewritten: {}) | {} B | {:.1} µs | {:.0} |",
        changed == rounds,
        typical.len(),
        secs / rounds as f64 * 1e6,
        (typical.len() * rounds) as f64 / secs / 1e6
    );
    println!(
        "| ordinary corpus documents | {} B avg | {:.1} µs | {:.0} |",
        corpus_bytes / corpus.len(),
        corpus_secs / corpus.len() as f64 * 1e6,
        corpus_bytes as f64 / corpus_secs / 1e6
    );
}
