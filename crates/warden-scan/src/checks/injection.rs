//! SQL, NoSQL and OS command injection through query and path parameters: error-based (a database error
//! appears that the plain value never caused), boolean-based (a true condition answers like the
//! plain value, a false one differently, twice), output-based (`id` prints a uid), and time-based
//! (the answer is late by the asked delay, is prompt when asked for no delay, and late again).

use std::time::Duration;

use warden_policy::leaks::{self, Leak};

use super::crawl::{concrete, encode, required_query};
use crate::client::{Exchange, Identity, Req};
use crate::spec::{In, Operation};
use crate::{comparable, Scan};

/// One place a value goes: a query parameter, or a path parameter.
struct Point {
    op: Operation,
    name: String,
    place: In,
    base: String,
    numeric: bool,
}

impl Point {
    fn req(&self, scan: &Scan, value: &str) -> Req {
        let path = match self.place {
            In::Path => {
                let mut probe = self.op.clone();
                probe.path = self
                    .op
                    .path
                    .replace(&format!("{{{}}}", self.name), &encode(value));
                concrete(scan, &probe)
                    .into_iter()
                    .next()
                    .unwrap_or(probe.path)
            }
            _ => {
                let path = concrete(scan, &self.op)
                    .into_iter()
                    .next()
                    .unwrap_or_else(|| self.op.path.clone());
                let path = path.split('?').next().unwrap_or("").to_string();
                format!(
                    "{path}{}",
                    required_query(&self.op, Some((&self.name, value)))
                )
            }
        };
        Req::new(self.op.method.clone(), path)
    }
}

impl Point {
    /// The query parameter sent as an operator object, `name[$ne]=value`, the way Express (`qs`)
    /// and PHP parse brackets into objects that reach a MongoDB query.
    fn operator_req(&self, scan: &Scan, op: &str) -> Req {
        let slot = "wardenscan-operator-slot";
        let req = self.req(scan, slot);
        let plain = format!("{}={slot}", encode(&self.name));
        let path = req.path.replace(
            &plain,
            &format!("{}[{op}]={}", encode(&self.name), encode(&self.base)),
        );
        Req::new(self.op.method.clone(), path)
    }
}

fn points(scan: &Scan) -> Vec<Point> {
    let mut out = Vec::new();
    for op in scan.api.ops.iter().filter(|o| o.safe() && !o.login) {
        for p in &op.params {
            if !matches!(p.place, In::Path | In::Query) || !(p.is_string() || p.is_integer()) {
                continue;
            }
            let base = match p.place {
                In::Path => crate::checks::crawl::candidates(scan, op, &p.name, p.is_integer())
                    .into_iter()
                    .next(),
                _ => Some(crate::checks::crawl::scalar(&crate::spec::example(
                    &p.schema,
                    "wardenscan",
                ))),
            };
            let Some(base) = base else { continue };
            out.push(Point {
                op: op.clone(),
                name: p.name.clone(),
                place: p.place,
                base,
                numeric: p.is_integer(),
            });
        }
    }
    out
}

const SQL_ERRORS: &[&str] = &["'", "\"", "')", "`"];
const SQL_BOOLEAN: &[(&str, &str)] = &[
    ("' AND '1'='1", "' AND '1'='2"),
    ("\" AND \"1\"=\"1", "\" AND \"1\"=\"2"),
];
const NUMERIC_BOOLEAN: (&str, &str) = (" AND 1=1", " AND 1=2");
const SQL_SLEEP: &[&str] = &[
    "' AND SLEEP({d})-- -",
    "' OR SLEEP({d})-- -",
    "'; SELECT pg_sleep({d})--",
    "' || pg_sleep({d})--",
    "'; WAITFOR DELAY '0:0:{d}'--",
    " AND SLEEP({d})",
];
const CMD_OUTPUT: &[&str] = &[";id", "|id", "$(id)", "`id`", "&&id", "\nid"];
const CMD_SLEEP: &[&str] = &[
    ";sleep {d}",
    "|sleep {d}",
    "$(sleep {d})",
    "`sleep {d}`",
    "&&sleep {d}",
];

pub async fn injection(scan: &mut Scan) {
    let who = scan.users.first().cloned();
    for point in points(scan) {
        if scan.client.exhausted() {
            return;
        }
        probe_point(scan, &point, who.as_ref()).await;
    }
}

async fn probe_point(scan: &mut Scan, point: &Point, who: Option<&Identity>) {
    let op = &point.op;
    let mut base = Vec::new();
    for _ in 0..3 {
        if let Some(x) = scan.send(&point.req(scan, &point.base), who).await {
            base.push(x);
        }
    }
    if base.len() < 3 {
        return;
    }
    let base_sql = base
        .iter()
        .any(|x| leaks::all(x.body.as_bytes()).contains(&Leak::SqlError));
    let stable = base
        .windows(2)
        .all(|w| w[0].status == w[1].status && w[0].body == w[1].body);
    let at = format!(
        "{} `{}`",
        if point.place == In::Path {
            "path parameter"
        } else {
            "query parameter"
        },
        point.name
    );

    // Error-based.
    if !base_sql {
        for suffix in SQL_ERRORS {
            let v = format!("{}{suffix}", point.base);
            let Some(x) = scan.send(&point.req(scan, &v), who).await else {
                continue;
            };
            if leaks::all(x.body.as_bytes()).contains(&Leak::SqlError) {
                let msg = format!(
                    "{}: a {suffix} in the {at} makes the database report a syntax error",
                    op.label()
                );
                scan.report("sql-injection", Some(op), msg, vec![x]);
                break;
            }
        }
    }
    // Boolean-based.
    if stable && !scan.has("sql-injection", op) {
        let pairs: Vec<(&str, &str)> = if point.numeric {
            vec![NUMERIC_BOOLEAN]
        } else {
            SQL_BOOLEAN.to_vec()
        };
        'pairs: for (t, f) in pairs {
            let mut evidence = Vec::new();
            for _ in 0..2 {
                let tv = format!("{}{t}", point.base);
                let fv = format!("{}{f}", point.base);
                let (Some(xt), Some(xf)) = (
                    scan.send(&point.req(scan, &tv), who).await,
                    scan.send(&point.req(scan, &fv), who).await,
                ) else {
                    continue 'pairs;
                };
                let like_base = xt.status == base[0].status
                    && comparable(&xt.body) == comparable(&base[0].body);
                let differs = xf.status != base[0].status
                    || comparable(&xf.body) != comparable(&base[0].body);
                if !(like_base && differs) {
                    continue 'pairs;
                }
                evidence = vec![xt, xf];
            }
            let msg = format!("{}: the {at} runs SQL conditions: `{t}` answers like the plain value, `{f}` differently (twice)", op.label());
            scan.report("sql-injection", Some(op), msg, evidence);
            break;
        }
    }
    // NoSQL operators in the query: `[$eq]` answers like the plain value, `[$ne]` differently.
    if stable && point.place == In::Query && !point.numeric {
        let mut evidence = Vec::new();
        for _ in 0..2 {
            let (Some(eq), Some(ne)) = (
                scan.send(&point.operator_req(scan, "$eq"), who).await,
                scan.send(&point.operator_req(scan, "$ne"), who).await,
            ) else {
                break;
            };
            let like_base =
                eq.status == base[0].status && comparable(&eq.body) == comparable(&base[0].body);
            let differs = ne.ok() && comparable(&ne.body) != comparable(&base[0].body);
            if !(like_base && differs) {
                evidence.clear();
                break;
            }
            evidence = vec![eq, ne];
        }
        if !evidence.is_empty() {
            let msg = format!(
                "{}: the {at} reaches a NoSQL query as an operator: `{}[$eq]` answers like the plain value, `{}[$ne]` differently (twice)",
                op.label(),
                point.name,
                point.name
            );
            scan.report("nosql-injection", Some(op), msg, evidence);
        }
    }
    let mean = base.iter().map(|x| x.elapsed.as_secs_f64()).sum::<f64>() / base.len() as f64;
    let sd = (base
        .iter()
        .map(|x| (x.elapsed.as_secs_f64() - mean).powi(2))
        .sum::<f64>()
        / base.len() as f64)
        .sqrt();
    if !scan.has("sql-injection", op) {
        if let Some(e) = timed(scan, point, who, SQL_SLEEP, mean, sd).await {
            let msg = format!("{}: a SQL sleep in the {at} delays the answer by the asked time, and no sleep does not", op.label());
            scan.report("sql-injection", Some(op), msg, e);
        }
    }
    // Command output, then command timing.
    for suffix in CMD_OUTPUT {
        let v = format!("{}{suffix}", point.base);
        let Some(x) = scan.send(&point.req(scan, &v), who).await else {
            continue;
        };
        if uid_line(&x.body) && !base.iter().any(|b| uid_line(&b.body)) {
            let msg = format!(
                "{}: `{}` in the {at} runs `id` on the server",
                op.label(),
                suffix.escape_debug()
            );
            scan.report("command-injection", Some(op), msg, vec![x]);
            return;
        }
    }
    if let Some(e) = timed(scan, point, who, CMD_SLEEP, mean, sd).await {
        let msg = format!("{}: a shell `sleep` in the {at} delays the answer by the asked time, and `sleep 0` does not", op.label());
        scan.report("command-injection", Some(op), msg, e);
    }
}

/// `uid=0(root) gid=0(root)`, as `id` prints it.
fn uid_line(body: &str) -> bool {
    body.match_indices("uid=").any(|(i, _)| {
        let rest = &body[i + 4..];
        let digits = rest.bytes().take_while(u8::is_ascii_digit).count();
        digits > 0 && rest[digits..].starts_with('(') && rest.contains("gid=")
    })
}

/// Tries each sleep payload; one that is late by the delay, prompt with no delay, and late
/// again is a finding. Lateness is judged against the plain value's timing: at least the delay,
/// and beyond the mean plus four standard deviations.
async fn timed(
    scan: &mut Scan,
    point: &Point,
    who: Option<&Identity>,
    payloads: &[&str],
    mean: f64,
    sd: f64,
) -> Option<Vec<Exchange>> {
    let delay = scan.config.delay;
    let secs = delay.as_secs().max(1);
    let late = |x: &Exchange| {
        let t = x.elapsed.as_secs_f64();
        t >= secs as f64 * 0.9 && t > mean + 4.0 * sd + 0.5 * secs as f64
    };
    let prompt =
        |x: &Exchange| x.elapsed < Duration::from_secs_f64(mean + 4.0 * sd + 0.5 * secs as f64);
    for p in payloads {
        let with = |d: u64| format!("{}{}", point.base, p.replace("{d}", &d.to_string()));
        let x1 = scan.send(&point.req(scan, &with(secs)), who).await?;
        if !late(&x1) {
            continue;
        }
        let x0 = scan.send(&point.req(scan, &with(0)), who).await?;
        if !prompt(&x0) {
            continue;
        }
        let x2 = scan.send(&point.req(scan, &with(secs)), who).await?;
        if late(&x2) {
            return Some(vec![x1, x0, x2]);
        }
    }
    None
}
