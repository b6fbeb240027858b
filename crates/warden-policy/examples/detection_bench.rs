//! Attack detection, measured: the detection rate on public attack corpora and the false-alarm
//! rate on harmless traffic, per attack class and paranoia level, and the cost per request.
//!
//! Run: `cargo run --release -p warden-policy --example detection_bench -- [CORPUS_DIR] [--misses]`
//! CORPUS_DIR defaults to `../shared/corpus` (libinjection's samples and the OWASP CRS
//! regression tests); `bench/corpus/legit-values.txt` is Warden's own harmless corpus.
//!
//! What is counted:
//! - libinjection `sqli-*`/`xss-*` lines: attacks, each sent as a query parameter value.
//! - CRS regression tests of the application-attack rule files (930 LFI, 931 RFI, 932 RCE,
//!   933 PHP, 934 generic, 941 XSS, 942 SQLi, 943 session fixation, 944 Java, 921 protocol
//!   attacks): a test that expects its rule to fire is an attack, one that only lists rules that
//!   must not fire is harmless. Each test's request (path, query, headers, cookies, body) goes
//!   through the same inspection as in the gateway. Left out: 911 (methods), 913 (scanner
//!   user agents), 920 (HTTP protocol enforcement, the HTTP layer's job), 922 (multipart, not
//!   parsed), the scoring and response rule files, and tests given as raw encoded requests.
//! - harmless: libinjection's `false_positives.txt` (as query values), Warden's own
//!   `legit-values.txt` (as JSON string values), and generated ordinary JSON documents.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::time::Instant;

use warden_policy::attack::{Inspector, Settings};

fn inspect_header(name: &str) -> bool {
    warden_policy::attack::engine::inspect_header(name)
}

/// Every byte but letters and digits as `%XX`, as a client sends a value in a query or a form.
fn percent_encode(s: &str) -> String {
    s.bytes()
        .map(|b| {
            if b.is_ascii_alphanumeric() {
                (b as char).to_string()
            } else {
                format!("%{b:02X}")
            }
        })
        .collect()
}

/// A request as the corpus describes it.
struct Req {
    uri: String,
    headers: Vec<(String, String)>,
    body: String,
}

fn inspect(req: &Req, settings: &Settings) -> u32 {
    inspect_with_budget(req, settings, 1 << 20)
}

fn inspect_with_budget(req: &Req, settings: &Settings, budget: usize) -> u32 {
    inspect_with(req, settings, budget, None)
}

fn inspect_with(
    req: &Req,
    settings: &Settings,
    budget: usize,
    seen: Option<&mut warden_policy::attack::CleanValues>,
) -> u32 {
    let mut i = Inspector::new(settings, budget);
    if let Some(seen) = seen {
        i = i.with_clean_values(seen);
    }
    let (path, query) = req.uri.split_once('?').unwrap_or((&req.uri, ""));
    i.path(path);
    i.params(query, false);
    let mut content_type = String::new();
    for (k, v) in &req.headers {
        let k = k.to_ascii_lowercase();
        if k == "cookie" {
            i.cookies(v);
        } else if k == "content-type" {
            content_type = v.to_ascii_lowercase();
            i.header(&k, v);
        } else if inspect_header(&k) {
            i.header(&k, v);
        }
    }
    if !req.body.is_empty() {
        if content_type.contains("json") {
            if !i.json(&req.body) {
                i.unparsed(&req.body);
            }
        } else if content_type.contains("xml")
            || content_type.contains("multipart")
            || content_type.starts_with("text/")
        {
            i.text(&req.body);
        } else {
            i.params(&req.body, true);
        }
    }
    i.finish().score
}

fn table_head(what: &str) {
    println!("| {what} | requests | PL1 | PL2 | PL3 | PL4 |");
    println!("| --- | ---: | ---: | ---: | ---: | ---: |");
}

/// One table row: the share flagged at each paranoia level, with `decimals` digits.
fn row(label: &str, t: &Tally, decimals: usize) {
    let pct = |n: usize| {
        if t.total == 0 {
            0.0
        } else {
            100.0 * n as f64 / t.total as f64
        }
    };
    let cells: Vec<String> = t
        .flagged
        .iter()
        .map(|n| format!("{:.decimals$}%", pct(*n)))
        .collect();
    println!("| {label} | {} | {} |", t.total, cells.join(" | "));
}

fn sum<'a>(tallies: impl Iterator<Item = &'a Tally>) -> Tally {
    let mut all = Tally::default();
    for t in tallies {
        all.total += t.total;
        for i in 0..4 {
            all.flagged[i] += t.flagged[i];
        }
    }
    all
}

fn lines(p: &Path) -> Vec<String> {
    std::fs::read_to_string(p)
        .unwrap_or_default()
        .lines()
        .filter(|l| !l.trim().is_empty() && !l.starts_with('#'))
        .map(str::to_owned)
        .collect()
}

#[derive(Default)]
struct Tally {
    total: usize,
    flagged: [usize; 4],
    misses: Vec<String>,
}

/// The SQLi rules CRS 4 runs at paranoia level 1 (the rest of REQUEST-942 is PL2-4).
const CRS_SQLI_PL1: [&str; 20] = [
    "942100", "942140", "942151", "942160", "942170", "942190", "942220", "942230", "942240",
    "942250", "942270", "942280", "942290", "942320", "942350", "942360", "942500", "942540",
    "942550", "942560",
];

fn crs_class(folder: &str) -> Option<&'static str> {
    Some(match folder.split('-').nth(1)? {
        "930" => "lfi",
        "931" => "rfi",
        "932" => "rce",
        "933" => "php",
        "934" => "generic",
        "941" => "xss",
        "942" => "sqli",
        "943" => "session-fixation",
        "944" => "java",
        "921" => "protocol-attack",
        _ => return None,
    })
}

fn yaml_str(v: &serde_yaml::Value) -> String {
    match v {
        serde_yaml::Value::String(s) => s.clone(),
        serde_yaml::Value::Number(n) => n.to_string(),
        serde_yaml::Value::Bool(b) => b.to_string(),
        _ => String::new(),
    }
}

/// (class, is_attack, request) for every usable CRS test.
fn crs_tests(dir: &Path) -> (Vec<(&'static str, bool, Req, String)>, usize) {
    let mut out = Vec::new();
    let mut skipped = 0;
    let Ok(folders) = std::fs::read_dir(dir) else {
        return (out, 0);
    };
    let mut folders: Vec<PathBuf> = folders.filter_map(|e| e.ok().map(|e| e.path())).collect();
    folders.sort();
    for folder in folders {
        let name = folder
            .file_name()
            .unwrap_or_default()
            .to_string_lossy()
            .to_string();
        let Some(class) = crs_class(&name) else {
            continue;
        };
        let mut files: Vec<PathBuf> = std::fs::read_dir(&folder)
            .into_iter()
            .flatten()
            .filter_map(|e| e.ok().map(|e| e.path()))
            .filter(|p| p.extension().is_some_and(|e| e == "yaml"))
            .collect();
        files.sort();
        for f in files {
            let Ok(doc) = serde_yaml::from_str::<serde_yaml::Value>(
                &std::fs::read_to_string(&f).unwrap_or_default(),
            ) else {
                continue;
            };
            let rule = yaml_str(&doc["rule_id"]);
            for test in doc["tests"].as_sequence().into_iter().flatten() {
                for stage in test["stages"].as_sequence().into_iter().flatten() {
                    let stage = if stage["stage"].is_mapping() {
                        &stage["stage"]
                    } else {
                        stage
                    };
                    let input = &stage["input"];
                    let log = &stage["output"]["log"];
                    if !input["encoded_request"].is_null() {
                        skipped += 1;
                        continue;
                    }
                    let expect = log["expect_ids"]
                        .as_sequence()
                        .is_some_and(|s| !s.is_empty());
                    let no_expect = log["no_expect_ids"]
                        .as_sequence()
                        .is_some_and(|s| !s.is_empty());
                    if !expect && !no_expect {
                        skipped += 1;
                        continue;
                    }
                    let headers = input["headers"]
                        .as_mapping()
                        .map(|m| m.iter().map(|(k, v)| (yaml_str(k), yaml_str(v))).collect())
                        .unwrap_or_default();
                    let req = Req {
                        uri: yaml_str(&input["uri"]).trim().to_string(),
                        headers,
                        body: yaml_str(&input["data"]),
                    };
                    out.push((class, expect, req, rule.clone()));
                }
            }
        }
    }
    (out, skipped)
}

/// Ordinary API documents (orders, catalogue items, profiles, telemetry), generated.
fn ordinary_docs(n: usize) -> Vec<String> {
    let mut seed = 0x9e37_79b9_7f4a_7c15u64;
    let mut next = move || {
        seed ^= seed << 13;
        seed ^= seed >> 7;
        seed ^= seed << 17;
        seed
    };
    let words = [
        "shipped",
        "pending review",
        "Can you deliver before Friday?",
        "Leave it at the door, please.",
        "Great product, would buy again!",
        "Size M fits well; colour as shown.",
        "It's a gift -- no price tag please",
        "Order #4711 and #4712 together",
        "Call me at +1 (415) 555-0101 on arrival",
        "Price was 20% off (promo SPRING)",
    ];
    (0..n)
        .map(|i| {
            let r = next();
            let name = ["O'Brien", "Zoë", "Jean-Luc", "王小明"][(next() % 4) as usize];
            serde_json::json!({
                "id": r % 100_000,
                "uuid": format!("{:08x}-{:04x}-4{:03x}-a{:03x}-{:012x}", next() as u32, next() as u16, next() % 4096, next() % 4096, next() % (1 << 48)),
                "status": words[(r % 2) as usize],
                "note": words[(next() % words.len() as u64) as usize],
                "customer": {"name": name, "email": format!("user{i}@example.com")},
                "created_at": format!("2026-{:02}-{:02}T10:00:00Z", 1 + next() % 12, 1 + next() % 28),
                "items": [{"sku": format!("SKU-{}", next() % 10_000), "qty": next() % 5, "price": format!("{}.{:02}", next() % 500, next() % 100)}],
                "links": {"self": format!("https://api.example.com/v1/orders/{}", r % 100_000)},
                "tags": ["gift", "priority"],
            })
            .to_string()
        })
        .collect()
}

fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let show_misses = args.iter().any(|a| a == "--misses");
    let cost_only = args.iter().any(|a| a == "--cost-only");
    let corpus = args
        .iter()
        .take_while(|a| *a != "--explain")
        .find(|a| !a.starts_with("--"))
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from("../shared/corpus"));
    let own = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../bench/corpus/legit-values.txt");
    let lib = corpus.join("libinjection");
    if !lib.exists() {
        eprintln!(
            "no corpus at {}: pass its folder as the first argument",
            corpus.display()
        );
        std::process::exit(2);
    }

    let levels: Vec<Settings> = (1..=4)
        .map(|p| Settings {
            paranoia: p,
            ..Settings::default()
        })
        .collect();
    if cost_only {
        cost(&levels[0]);
        return;
    }
    if let Some(i) = args.iter().position(|a| a == "--explain") {
        // `--explain 'q=...&r=...' [PARANOIA] [--form]`: the findings for one query string
        // (or form body).
        let p = args.get(i + 2).and_then(|p| p.parse().ok()).unwrap_or(1);
        let settings = Settings {
            paranoia: p,
            ..Settings::default()
        };
        let mut insp = Inspector::new(&settings, 1 << 20);
        // `--form`: read it as a form body instead.
        // `header:NAME:VALUE`: one request header instead.
        let form = args.iter().any(|a| a == "--form");
        let what = args.get(i + 1).map_or("", String::as_str);
        match what.strip_prefix("header:").and_then(|h| h.split_once(':')) {
            Some((name, value)) => insp.header(name, value),
            None => insp.params(what, form),
        }
        println!("{:#?}", insp.finish());
        return;
    }
    if args.iter().any(|a| a == "--linearity") {
        linearity(&levels[3]);
        return;
    }
    let mut attacks: BTreeMap<String, Tally> = BTreeMap::new();
    let mut subsets: BTreeMap<String, Tally> = BTreeMap::new();
    let mut legit: BTreeMap<String, Tally> = BTreeMap::new();
    let mut crs_negative: BTreeMap<String, Tally> = BTreeMap::new();
    // MISSES_AT=PL: the misses and false alarms listed are those at that paranoia level (1).
    let listed = std::env::var("MISSES_AT")
        .ok()
        .and_then(|v| v.parse::<usize>().ok())
        .map_or(0, |p| p.clamp(1, 4) - 1);
    let count = |table: &mut BTreeMap<String, Tally>, key: &str, req: &Req, label: &str| {
        let t = table.entry(key.to_string()).or_default();
        t.total += 1;
        for (i, s) in levels.iter().enumerate() {
            if inspect(req, s) >= s.threshold {
                t.flagged[i] += 1;
            } else if i == listed && t.misses.len() < 400 {
                t.misses.push(label.to_string());
            }
        }
    };

    let mut files: Vec<PathBuf> = std::fs::read_dir(&lib)
        .unwrap()
        .filter_map(|e| e.ok().map(|e| e.path()))
        .collect();
    files.sort();
    for f in &files {
        let name = f.file_name().unwrap().to_string_lossy().to_string();
        let class = if name.starts_with("sqli-") {
            "sqli (libinjection)"
        } else if name.starts_with("xss-") {
            "xss (libinjection)"
        } else {
            continue;
        };
        for l in lines(f) {
            let req = Req {
                uri: format!("/search?q={l}"),
                headers: vec![],
                body: String::new(),
            };
            count(&mut attacks, class, &req, &l);
        }
    }
    let (tests, skipped) = crs_tests(&corpus.join("crs-regression"));
    // DETECTION_TSV=FILE: one line per CRS test (rule, class, attack?, flagged at PL1..4), for
    // looking at the results by rule.
    let mut tsv = std::env::var_os("DETECTION_TSV").map(|p| std::fs::File::create(p).unwrap());
    for (class, attack, req, rule) in &tests {
        if let Some(f) = tsv.as_mut() {
            use std::io::Write;
            let flags: Vec<String> = levels
                .iter()
                .map(|s| u8::from(inspect(req, s) >= s.threshold).to_string())
                .collect();
            let body: String = req.body.chars().take(300).collect();
            writeln!(
                f,
                "{rule}\t{class}\t{attack}\t{}\t{}\t{}",
                flags.join("\t"),
                req.uri,
                body.replace(['\n', '\r', '\t'], " ")
            )
            .unwrap();
        }
        let label = format!(
            "[{rule}] {} {} | {}",
            req.uri,
            req.headers
                .iter()
                .map(|(k, v)| format!("{k}: {v}"))
                .collect::<Vec<_>>()
                .join(" | "),
            req.body
        );
        if *attack {
            count(&mut attacks, &format!("{class} (CRS)"), req, &label);
            // The same tests restricted to the rules CRS itself runs at its default paranoia
            // level, where the rule files say so (only for SQLi, read off
            // REQUEST-942-APPLICATION-ATTACK-SQLI.conf); not added to the total.
            if CRS_SQLI_PL1.contains(&rule.as_str()) {
                count(
                    &mut subsets,
                    "sqli (CRS), rules CRS runs at PL1",
                    req,
                    &label,
                );
            }
        } else {
            // "This rule must not fire": harmless for that rule, but often an attack of another
            // class (a `169.254.169.254` URL in an LFI rule's test). Shown apart, not counted in
            // the harmless total.
            let t = crs_negative
                .entry("CRS tests expecting a rule not to fire".into())
                .or_default();
            t.total += 1;
            for (i, s) in levels.iter().enumerate() {
                if inspect(req, s) >= s.threshold {
                    t.flagged[i] += 1;
                    if i == listed && t.misses.len() < 400 {
                        t.misses.push(label.clone());
                    }
                }
            }
        }
    }
    let mut legit_count = |name: &str, reqs: Vec<(Req, String)>| {
        let t = legit.entry(name.to_string()).or_default();
        for (req, label) in reqs {
            t.total += 1;
            for (i, s) in levels.iter().enumerate() {
                if inspect(&req, s) >= s.threshold {
                    t.flagged[i] += 1;
                    if i == listed && t.misses.len() < 400 {
                        t.misses.push(label.clone());
                    }
                }
            }
        }
    };
    legit_count(
        "libinjection false_positives",
        lines(&lib.join("false_positives.txt"))
            .into_iter()
            .map(|l| {
                (
                    Req {
                        uri: format!("/search?q={l}"),
                        headers: vec![],
                        body: String::new(),
                    },
                    l,
                )
            })
            .collect(),
    );
    let json = vec![("content-type".to_string(), "application/json".to_string())];
    legit_count(
        "Warden legit-values (JSON)",
        lines(&own)
            .into_iter()
            .map(|l| {
                (
                    Req {
                        uri: "/notes".into(),
                        headers: json.clone(),
                        body: serde_json::json!({"text": l}).to_string(),
                    },
                    l,
                )
            })
            .collect(),
    );
    legit_count(
        "Warden legit-values (query)",
        lines(&own)
            .into_iter()
            .map(|l| {
                let enc = percent_encode(&l);
                (
                    Req {
                        uri: format!("/search?q={enc}"),
                        headers: vec![],
                        body: String::new(),
                    },
                    l,
                )
            })
            .collect(),
    );
    legit_count(
        "generated API documents",
        ordinary_docs(2000)
            .into_iter()
            .map(|d| {
                (
                    Req {
                        uri: "/orders".into(),
                        headers: json.clone(),
                        body: d.clone(),
                    },
                    d,
                )
            })
            .collect(),
    );

    println!("## Detection rate on attacks (requests refused at the default threshold of 5)\n");
    table_head("attack corpus");
    for (k, t) in &attacks {
        row(k, t, 1);
    }
    for (k, t) in &subsets {
        row(&format!("({k}: a subset of the above)"), t, 1);
    }
    row("**all attacks**", &sum(attacks.values()), 1);
    println!("\n## False alarms on harmless traffic\n");
    table_head("harmless corpus");
    for (k, t) in &legit {
        row(k, t, 2);
    }
    row("**all harmless**", &sum(legit.values()), 2);
    for (k, t) in &crs_negative {
        row(&format!("({k}: not a harmless corpus, see above)"), t, 2);
    }
    println!("\n{skipped} CRS test stages skipped (raw encoded requests, or no expectation).");

    cost(&levels[0]);
    linearity(&levels[3]);
    if show_misses {
        // MISSES=N lists up to N per corpus (400 are kept); newlines shown as ⏎.
        let shown = std::env::var("MISSES")
            .ok()
            .and_then(|v| v.parse().ok())
            .unwrap_or(60);
        let one_line = |m: &str| m.chars().take(300).collect::<String>().replace('\n', "⏎");
        for (k, t) in &attacks {
            println!("\n### missed at PL{}: {k}", listed + 1);
            for m in t.misses.iter().take(shown) {
                println!("  {}", one_line(m));
            }
        }
        for (k, t) in legit.iter().chain(crs_negative.iter()) {
            println!("\n### false alarms at PL{}: {k}", listed + 1);
            for m in t.misses.iter().take(shown) {
                println!("  {}", one_line(m));
            }
        }
    }
}

/// The cost of inspecting a typical request with a 1 KB JSON body, with its request line and
/// headers.
fn cost(settings: &Settings) {
    // The requests bench/detection.sh sends through the proxy: a GET with a query and browser
    // headers, and a POST of a ~1 KB JSON order (bench/corpus/order.json).
    let order = std::fs::read_to_string(
        Path::new(env!("CARGO_MANIFEST_DIR")).join("../../bench/corpus/order.json"),
    )
    .expect("bench/corpus/order.json");
    let browser = |extra: Vec<(String, String)>| {
        let mut h: Vec<(String, String)> = vec![
            ("user-agent".into(), "Mozilla/5.0 (X11; Linux x86_64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/130.0 Safari/537.36".into()),
            ("referer".into(), "https://shop.example.com/orders?page=2".into()),
            ("cookie".into(), "session=6f1c2d9e8a7b; theme=dark; consent=analytics%2Cads".into()),
        ];
        h.extend(extra);
        h
    };
    let get = Req {
        uri: "/v1/orders?status=shipped&sort=-created_at&q=O%27Brien%20blue%20shirt&page=2".into(),
        headers: browser(vec![]),
        body: String::new(),
    };
    let post = Req {
        uri: "/v1/orders".into(),
        headers: browser(vec![("content-type".into(), "application/json".into())]),
        body: order,
    };
    println!();
    // COST_ONLY=post (or get) times one request alone, for a profiler.
    let only = std::env::var("COST_ONLY").unwrap_or_default();
    for (what, req) in [
        ("GET with a query and browser headers", &get),
        ("POST of a JSON order", &post),
    ]
    .into_iter()
    .filter(|(_, r)| only.is_empty() || r.uri.contains('?') == (only == "get"))
    {
        // COST_CACHED=1 skips the first timing, so a profile shows what the gateway pays.
        let first = if std::env::var_os("COST_CACHED").is_some() {
            0.0
        } else {
            time_inspection(req, settings, false)
        };
        let repeated = time_inspection(req, settings, true);
        println!(
            "Cost of inspecting a {what} ({} B body), paranoia 1: {first:.1} µs; with its headers \
             and names already seen clean (as the gateway remembers them): {repeated:.1} µs (one core).",
            req.body.len()
        );
    }
}

fn time_inspection(req: &Req, settings: &Settings, remember: bool) -> f64 {
    let n: usize = std::env::var("COST_ROUNDS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(20_000);
    let mut seen = warden_policy::attack::CleanValues::new(4096);
    let t = Instant::now();
    for _ in 0..n {
        let cache = if remember { Some(&mut seen) } else { None };
        std::hint::black_box(inspect_with(req, settings, 1 << 20, cache));
    }
    t.elapsed().as_secs_f64() / n as f64 * 1e6
}

/// Time per byte on adversarial inputs (long runs of what detectors look for), small and large:
/// a detector that backtracked or rescanned would show a growing ratio.
fn linearity(settings: &Settings) {
    println!("\n## Time per byte on adversarial values, paranoia 4 (linear: ratio near 1)\n");
    println!(
        "| repeated unit | JSON 32 KiB: ns/byte | JSON 256 KiB: ns/byte | JSON ratio | form ratio |"
    );
    println!("| --- | ---: | ---: | ---: | ---: |");
    // As a JSON string (free text) and as a form value (where the token shapes apply).
    let per_byte = |body: &str, form: bool| {
        let req = if form {
            let enc = percent_encode(body);
            Req {
                uri: "/x".into(),
                headers: vec![(
                    "content-type".into(),
                    "application/x-www-form-urlencoded".into(),
                )],
                body: format!("v={enc}"),
            }
        } else {
            Req {
                uri: "/x".into(),
                headers: vec![("content-type".into(), "application/json".into())],
                body: serde_json::json!({ "v": body }).to_string(),
            }
        };
        let rounds = (4 << 20) / body.len().max(1);
        let t = Instant::now();
        for _ in 0..rounds {
            std::hint::black_box(inspect_with_budget(&req, settings, 1 << 20));
        }
        t.elapsed().as_secs_f64() * 1e9 / (rounds * body.len()) as f64
    };
    for unit in [
        "'",
        "' or ",
        "<a ",
        "<script>",
        "%25",
        "&#x3c;",
        "\\u003c",
        "${",
        "${jndi:",
        "../",
        "{{",
        "$(",
        "; cat ",
        "http://127.0.0.1/",
        "--",
        "/*",
        "exec/*",
        "$a[",
        "while(",
        ":(){ ",
        "a)(",
        "self[\"",
        "cnVudGltZQ",
        "a",
        "é",
        "<img src=",
        "x' or '",
        "\\'",
        ") as x from ",
        "console.log(",
        "[a](",
        "alias -p ",
    ] {
        // Past one 16 KiB window at both sizes: a value read in one window may be decided at
        // its first bytes, where later windows start mid-payload and are read through.
        let small = unit.repeat((32 << 10) / unit.len());
        let large = unit.repeat((256 << 10) / unit.len());
        let (a, b) = (per_byte(&small, false), per_byte(&large, false));
        let form = per_byte(&large, true) / per_byte(&small, true);
        println!(
            "| `{}` | {a:.1} | {b:.1} | {:.2} | {form:.2} |",
            unit.replace('|', "\\|"),
            b / a
        );
    }
}
