//! Detectors that turn patterns in finished calls into alerts: bursts of authentication failures
//! from one client, one caller walking through object ids and getting 403/404, scanner-like sweeps
//! of paths that do not exist, and unusually large amounts of data sent to one caller.
//!
//! Counting is per fixed window and per key (client IP or caller); a detector raises at most one
//! alert per key per cooldown, so one attack is one alert, not ten thousand. Memory is bounded:
//! distinct paths are remembered as hashes, only up to the threshold.

use std::collections::{HashMap, HashSet};

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Kind {
    AuthFailures,
    ObjectProbing,
    PathSweep,
    LargeResponses,
}

impl Kind {
    pub fn id(self) -> &'static str {
        match self {
            Kind::AuthFailures => "auth-failures",
            Kind::ObjectProbing => "object-probing",
            Kind::PathSweep => "path-sweep",
            Kind::LargeResponses => "large-responses",
        }
    }
}

/// One detector's threshold within its window (ms); `threshold: 0` turns it off.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Rule {
    pub threshold: u64,
    pub window_ms: u64,
}

#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Rules {
    /// 401 answers per client IP.
    pub auth_failures: Rule,
    /// Distinct object paths of one shape (`/orders/{id}`) answered 403 or 404, per caller.
    pub object_probing: Rule,
    /// Distinct path shapes answered 404, per client IP.
    pub path_sweep: Rule,
    /// Response bytes per caller (counting responses of 64 KiB or more).
    pub large_responses: Rule,
    pub cooldown_ms: u64,
}

/// What a detector needs to know about a finished call.
#[derive(Debug, Clone, Copy)]
pub struct Call<'a> {
    pub now_ms: u64,
    pub client_ip: &'a str,
    /// The authenticated consumer, if any.
    pub consumer: Option<&'a str>,
    pub path: &'a str,
    pub status: u16,
    pub bytes_out: u64,
    pub request_id: &'a str,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Alert {
    pub kind: Kind,
    /// Who: `ip:203.0.113.7` or `consumer:alice`.
    pub subject: String,
    /// For object probing, the path shape walked (`/orders/{id}`).
    pub pattern: Option<String>,
    /// How many calls (or distinct paths, or bytes) in the window when it was raised.
    pub count: u64,
    pub window_ms: u64,
    /// A few of the calls that made it (request ids, never content).
    pub samples: Vec<String>,
}

/// Responses smaller than this never count as large (keeps ordinary calls out of the books).
pub const LARGE_RESPONSE: u64 = 64 * 1024;
const SAMPLES: usize = 5;

#[derive(Default)]
struct Window {
    start_ms: u64,
    count: u64,
    distinct: HashSet<u64>,
    samples: Vec<String>,
}

#[derive(Default)]
pub struct Detectors {
    windows: HashMap<(Kind, String), Window>,
    raised: HashMap<(Kind, String), u64>,
}

impl Detectors {
    /// Feeds one finished call; returns the alerts it raised (usually none).
    pub fn observe(&mut self, rules: &Rules, c: &Call<'_>) -> Vec<Alert> {
        let mut out = Vec::new();
        let caller = match c.consumer {
            Some(name) => format!("consumer:{name}"),
            None => format!("ip:{}", c.client_ip),
        };
        if c.status == 401 {
            self.count(
                rules,
                Kind::AuthFailures,
                rules.auth_failures,
                format!("ip:{}", c.client_ip),
                c,
                None,
                &mut out,
            );
        }
        if matches!(c.status, 403 | 404) {
            let (shape, ids) = shape(c.path);
            if ids > 0 {
                // One key per caller and object shape: walking /orders/{id} is one pattern.
                let key = format!("{caller} {shape}");
                self.count(
                    rules,
                    Kind::ObjectProbing,
                    rules.object_probing,
                    key,
                    c,
                    Some(hash(c.path)),
                    &mut out,
                );
            }
            if c.status == 404 {
                self.count(
                    rules,
                    Kind::PathSweep,
                    rules.path_sweep,
                    format!("ip:{}", c.client_ip),
                    c,
                    Some(hash(&shape)),
                    &mut out,
                );
            }
        }
        if c.bytes_out >= LARGE_RESPONSE {
            self.add_bytes(rules, caller, c, &mut out);
        }
        if self.windows.len() > 100_000 {
            self.prune(rules, c.now_ms);
        }
        out
    }

    #[allow(clippy::too_many_arguments)]
    fn count(
        &mut self,
        rules: &Rules,
        kind: Kind,
        rule: Rule,
        key: String,
        c: &Call<'_>,
        distinct: Option<u64>,
        out: &mut Vec<Alert>,
    ) {
        if rule.threshold == 0 {
            return;
        }
        let w = self.windows.entry((kind, key.clone())).or_default();
        if c.now_ms >= w.start_ms + rule.window_ms {
            *w = Window {
                start_ms: c.now_ms,
                ..Window::default()
            };
        }
        let n = match distinct {
            Some(h) => {
                if (w.distinct.len() as u64) < rule.threshold {
                    w.distinct.insert(h);
                }
                w.distinct.len() as u64
            }
            None => {
                w.count += 1;
                w.count
            }
        };
        if w.samples.len() < SAMPLES {
            w.samples.push(c.request_id.to_string());
        }
        if n >= rule.threshold {
            let samples = w.samples.clone();
            self.raise(rules, kind, key, n, rule.window_ms, samples, c.now_ms, out);
        }
    }

    fn add_bytes(&mut self, rules: &Rules, caller: String, c: &Call<'_>, out: &mut Vec<Alert>) {
        let rule = rules.large_responses;
        if rule.threshold == 0 {
            return;
        }
        let w = self
            .windows
            .entry((Kind::LargeResponses, caller.clone()))
            .or_default();
        if c.now_ms >= w.start_ms + rule.window_ms {
            *w = Window {
                start_ms: c.now_ms,
                ..Window::default()
            };
        }
        w.count += c.bytes_out;
        if w.samples.len() < SAMPLES {
            w.samples.push(c.request_id.to_string());
        }
        if w.count >= rule.threshold {
            let (n, samples) = (w.count, w.samples.clone());
            self.raise(
                rules,
                Kind::LargeResponses,
                caller,
                n,
                rule.window_ms,
                samples,
                c.now_ms,
                out,
            );
        }
    }

    #[allow(clippy::too_many_arguments)]
    fn raise(
        &mut self,
        rules: &Rules,
        kind: Kind,
        key: String,
        count: u64,
        window_ms: u64,
        samples: Vec<String>,
        now: u64,
        out: &mut Vec<Alert>,
    ) {
        let last = self.raised.entry((kind, key.clone())).or_insert(0);
        if *last != 0 && now < *last + rules.cooldown_ms {
            return;
        }
        *last = now.max(1);
        // The subject is the caller; an object-probing key also names the shape walked.
        let (subject, pattern) = match key.split_once(' ') {
            Some((caller, shape)) => (caller.to_string(), Some(shape.to_string())),
            None => (key, None),
        };
        out.push(Alert {
            kind,
            subject,
            pattern,
            count,
            window_ms,
            samples,
        });
    }

    fn prune(&mut self, rules: &Rules, now: u64) {
        let longest = [
            rules.auth_failures.window_ms,
            rules.object_probing.window_ms,
            rules.path_sweep.window_ms,
            rules.large_responses.window_ms,
        ]
        .into_iter()
        .max()
        .unwrap_or(0);
        self.windows.retain(|_, w| now < w.start_ms + longest);
        self.raised.retain(|_, t| now < *t + rules.cooldown_ms);
    }
}

/// A path with its object ids replaced by `{id}` (numbers, UUIDs, long hex or mixed tokens), and
/// how many it replaced.
pub fn shape(path: &str) -> (String, usize) {
    let mut ids = 0;
    let shaped: Vec<&str> = path
        .split('/')
        .map(|seg| {
            let digits = seg.bytes().filter(u8::is_ascii_digit).count();
            let idlike = !seg.is_empty()
                && (seg.bytes().all(|b| b.is_ascii_digit())
                    || (seg.len() >= 8
                        && seg.bytes().all(|b| b.is_ascii_hexdigit() || b == b'-')
                        && digits > 0)
                    || (seg.len() >= 16
                        && digits >= 4
                        && seg
                            .bytes()
                            .all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'-')));
            if idlike {
                ids += 1;
                "{id}"
            } else {
                seg
            }
        })
        .collect();
    (shaped.join("/"), ids)
}

fn hash(s: &str) -> u64 {
    use std::hash::{Hash, Hasher};
    let mut h = std::collections::hash_map::DefaultHasher::new();
    s.hash(&mut h);
    h.finish()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rules() -> Rules {
        let r = |threshold| Rule {
            threshold,
            window_ms: 60_000,
        };
        Rules {
            auth_failures: r(10),
            object_probing: r(10),
            path_sweep: r(10),
            large_responses: r(1_000_000),
            cooldown_ms: 600_000,
        }
    }

    fn call<'a>(now_ms: u64, ip: &'a str, path: &'a str, status: u16) -> Call<'a> {
        Call {
            now_ms,
            client_ip: ip,
            consumer: None,
            path,
            status,
            bytes_out: 100,
            request_id: "r",
        }
    }

    #[test]
    fn shapes() {
        assert_eq!(shape("/orders/123"), ("/orders/{id}".into(), 1));
        assert_eq!(
            shape("/users/0193a1b2-7c3d-7e4f-8a9b-0123456789ab/cards"),
            ("/users/{id}/cards".into(), 1)
        );
        assert_eq!(shape("/admin/login.php"), ("/admin/login.php".into(), 0));
        assert_eq!(shape("/v1/orders"), ("/v1/orders".into(), 0));
    }

    #[test]
    fn one_alert_per_burst_then_quiet_until_the_cooldown() {
        let (r, mut d) = (rules(), Detectors::default());
        let mut alerts = Vec::new();
        for i in 0..50 {
            alerts.extend(d.observe(&r, &call(i, "198.51.100.4", "/x", 401)));
        }
        assert_eq!(alerts.len(), 1);
        assert_eq!(alerts[0].kind, Kind::AuthFailures);
        assert_eq!(alerts[0].subject, "ip:198.51.100.4");
        assert_eq!(alerts[0].count, 10);
        // After the cooldown, a new burst is a new alert.
        let later: Vec<_> = (0..10)
            .flat_map(|i| d.observe(&r, &call(700_000 + i, "198.51.100.4", "/x", 401)))
            .collect();
        assert_eq!(later.len(), 1);
    }

    #[test]
    fn probing_and_sweeps_are_told_apart_and_ordinary_traffic_is_quiet() {
        let (r, mut d) = (rules(), Detectors::default());
        let paths: Vec<String> = (0..30).map(|i| format!("/orders/{i}")).collect();
        let probing: Vec<_> = paths
            .iter()
            .flat_map(|p| d.observe(&r, &call(1, "192.0.2.1", p, 404)))
            .collect();
        assert_eq!(
            probing.iter().map(|a| a.kind).collect::<Vec<_>>(),
            [Kind::ObjectProbing]
        );
        let scanner = [
            "/.env",
            "/admin",
            "/wp-login.php",
            "/.git/config",
            "/phpmyadmin",
            "/server-status",
            "/actuator",
            "/console",
            "/debug",
            "/backup.zip",
            "/config.json",
        ];
        let sweep: Vec<_> = scanner
            .iter()
            .flat_map(|p| d.observe(&r, &call(1, "192.0.2.2", p, 404)))
            .collect();
        assert_eq!(
            sweep.iter().map(|a| a.kind).collect::<Vec<_>>(),
            [Kind::PathSweep]
        );
        // A user reading their own orders, a few typos, some failed logins: nothing.
        let mut quiet = Vec::new();
        for i in 0..200 {
            quiet.extend(d.observe(&r, &call(2, "192.0.2.3", &paths[i % 30], 200)));
        }
        for p in ["/ordrs", "/favicon.ico", "/orders/9999"] {
            quiet.extend(d.observe(&r, &call(2, "192.0.2.3", p, 404)));
        }
        for _ in 0..5 {
            quiet.extend(d.observe(&r, &call(2, "192.0.2.3", "/login", 401)));
        }
        assert!(quiet.is_empty(), "{quiet:?}");
    }

    proptest::proptest! {
        // Mirrors the `alert_detect` fuzz target.
        #[test]
        fn one_alert_per_pattern_within_a_cooldown(calls in proptest::collection::vec((0u64..500, 0usize..5, 0u8..4, "[/1af-]{0,24}", 0u64..400_000), 0..300)) {
            let (r, mut d) = (rules(), Detectors::default());
            let mut raised = HashSet::new();
            let mut now = 0;
            for (dt, st, ip, path, bytes) in calls {
                now += dt;
                let (shaped, _) = shape(&path);
                proptest::prop_assert_eq!(&shape(&shaped).0, &shaped);
                let ip = format!("10.0.0.{ip}");
                let mut c = call(now, &ip, &path, [200, 401, 403, 404, 500][st]);
                c.bytes_out = bytes;
                for a in d.observe(&r, &c) {
                    proptest::prop_assert!(raised.insert((a.kind, a.subject.clone(), a.pattern.clone())), "{:?}", a);
                }
            }
        }
    }

    #[test]
    fn large_responses_add_up_per_caller() {
        let (r, mut d) = (rules(), Detectors::default());
        let mut big = call(1, "192.0.2.9", "/export", 200);
        big.consumer = Some("mallory");
        big.bytes_out = 400_000;
        let alerts: Vec<_> = (0..5).flat_map(|_| d.observe(&r, &big)).collect();
        assert_eq!(alerts.len(), 1);
        assert_eq!(
            (alerts[0].kind, alerts[0].subject.as_str()),
            (Kind::LargeResponses, "consumer:mallory")
        );
        let mut small = call(1, "192.0.2.9", "/export", 200);
        small.bytes_out = LARGE_RESPONSE - 1;
        assert!((0..1000).all(|_| d.observe(&r, &small).is_empty()));
    }
}
