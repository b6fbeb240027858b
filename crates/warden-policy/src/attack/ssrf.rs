//! Server-side request forgery: URL values that point the server at itself, at the private
//! network, or at a cloud metadata service, in any spelling of the address: `127.1`,
//! `2130706433`, `0x7f000001`, `0177.0.0.1`, `[::ffff:127.0.0.1]`, `localhost.`, `user@` tricks,
//! wildcard DNS names embedding an IP (`127.0.0.1.nip.io`). Schemes that only serve as SSRF
//! gadgets (`gopher:`, `dict:`) count wherever they point.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

use super::{Detector, Hit, Normalized, Place, CRITICAL, ERROR};

const METADATA_HOSTS: [&str; 8] = [
    "metadata.google.internal",
    "metadata",
    "metadata.azure.internal",
    "instance-data",
    "instance-data.ec2.internal",
    "metadata.packet.net",
    "metadata.tencentyun.com",
    "metadata.platformequinix.com",
];

/// The loopback names `/etc/hosts` files and wildcard DNS services give out.
const LOOPBACK_NAMES: [&str; 11] = [
    "localhost.localdomain",
    "localhost4",
    "localhost6",
    "localhost4.localdomain4",
    "localhost6.localdomain6",
    "ip6-localhost",
    "ip6-loopback",
    "ipv6-localhost",
    "ipv6-loopback",
    "localtest.me",
    "lvh.me",
];

const CONTAINER_HOSTS: [&str; 7] = [
    "host.docker.internal",
    "gateway.docker.internal",
    "kubernetes.docker.internal",
    "host.containers.internal",
    "host.minikube.internal",
    "kubernetes.default",
    "kubernetes.default.svc",
];

/// An IPv4 address in the spellings `inet_aton` accepts: dotted with 1 to 4 parts, each decimal,
/// octal (`0` prefix) or hexadecimal (`0x`).
pub fn parse_ipv4_loose(host: &str) -> Option<Ipv4Addr> {
    // Every spelling below is made of digits, dots, and `x` with hex digits: a host name
    // (`shop.example.com`) is refused without splitting it.
    if !host
        .bytes()
        .all(|b| b.is_ascii_hexdigit() || b == b'.' || b == b'x' || b == b'X')
    {
        return None;
    }
    let parts: Vec<&str> = host.split('.').collect();
    if parts.is_empty() || parts.len() > 4 || parts.iter().any(|p| p.is_empty()) {
        return None;
    }
    let num = |p: &str| -> Option<u64> {
        if let Some(h) = p.strip_prefix("0x") {
            if !h.bytes().all(|b| b.is_ascii_hexdigit()) {
                return None;
            }
            u64::from_str_radix(h, 16).ok().or_else(|| {
                // Longer than 64 bits: keep the low 32, as a truncating parser would.
                let tail = &h[h.len().saturating_sub(8)..];
                u64::from_str_radix(tail, 16).ok()
            })
        } else if p.len() > 1 && p.starts_with('0') {
            u64::from_str_radix(&p[1..], 8).ok()
        } else {
            p.parse().ok()
        }
    };
    let vals: Vec<u64> = parts.iter().map(|p| num(p)).collect::<Option<_>>()?;
    let (last, init) = vals.split_last()?;
    if init.iter().any(|v| *v > 255) {
        return None;
    }
    let room = 8 * (4 - init.len() as u32);
    // A single number past 32 bits: some URL parsers keep its low 32 bits (`7147006462` is
    // 169.254.169.254 to them).
    let last = if init.is_empty() && *last >= 1u64 << 32 {
        &(*last & 0xffff_ffff)
    } else {
        last
    };
    if *last >= 1u64 << room {
        return None;
    }
    let mut n: u64 = 0;
    for (i, v) in init.iter().enumerate() {
        n |= v << (24 - 8 * i as u32);
    }
    Some(Ipv4Addr::from((n | last) as u32))
}

fn internal_v4(ip: Ipv4Addr) -> Option<&'static str> {
    let o = ip.octets();
    if ip == Ipv4Addr::new(169, 254, 169, 254)
        || ip == Ipv4Addr::new(169, 254, 170, 2)
        || ip == Ipv4Addr::new(100, 100, 100, 200)
        || ip == Ipv4Addr::new(192, 0, 0, 192)
    {
        return Some("metadata");
    }
    if ip.is_loopback() || ip.is_unspecified() {
        return Some("loopback");
    }
    if ip.is_private()
        || ip.is_link_local()
        || (o[0] == 100 && (64..128).contains(&o[1]))
        || o[0] == 0
    {
        return Some("private");
    }
    None
}

fn internal_v6(ip: Ipv6Addr) -> Option<&'static str> {
    // IPv4-mapped (`::ffff:a.b.c.d`) and the old IPv4-compatible form (`::a.b.c.d`).
    if let Some(v4) = ip
        .to_ipv4_mapped()
        .or_else(|| ip.to_ipv4().filter(|v| !v.is_unspecified()))
    {
        return internal_v4(v4);
    }
    if ip == "fd00:ec2::254".parse::<Ipv6Addr>().expect("literal") {
        return Some("metadata");
    }
    if ip.is_loopback() || ip.is_unspecified() {
        return Some("loopback");
    }
    let first = ip.segments()[0];
    if first & 0xfe00 == 0xfc00 || first & 0xffc0 == 0xfe80 {
        return Some("private");
    }
    None
}

/// What kind of internal address a host names, if it names one.
pub fn internal_host(host: &str) -> Option<&'static str> {
    // Dots that are not ASCII (`169。254。169。254`) and backslashes (`\l\o\c\a\l\h\o\s\t`)
    // are read past by some resolvers.
    let cleaned: String;
    let host = if host.contains(['\u{3002}', '\u{ff0e}', '\u{ff61}', '\\']) {
        cleaned = host
            .replace(['\u{3002}', '\u{ff0e}', '\u{ff61}'], ".")
            .replace('\\', "");
        cleaned.as_str()
    } else {
        host
    };
    let h = host.trim_end_matches('.');
    if let Some(inner) = h.strip_prefix('[').and_then(|x| x.strip_suffix(']')) {
        let inner = inner.split('%').next().unwrap_or(inner);
        return inner.parse::<Ipv6Addr>().ok().and_then(internal_v6);
    }
    if h == "localhost" || h.ends_with(".localhost") || LOOPBACK_NAMES.contains(&h) {
        return Some("loopback");
    }
    // The names containers and clusters give the host and the control plane.
    if CONTAINER_HOSTS.contains(&h) || h.ends_with(".svc.cluster.local") {
        return Some("private");
    }
    if METADATA_HOSTS.contains(&h) {
        return Some("metadata");
    }
    if let Some(ip) = parse_ipv4_loose(h) {
        return internal_v4(ip);
    }
    if let Ok(IpAddr::V6(ip)) = h.parse::<IpAddr>() {
        return internal_v6(ip);
    }
    // Wildcard DNS services that resolve `127.0.0.1.nip.io` to 127.0.0.1.
    for suffix in [
        ".nip.io",
        ".xip.io",
        ".sslip.io",
        ".localtest.me",
        ".lvh.me",
    ] {
        if let Some(prefix) = h.strip_suffix(suffix) {
            if suffix == ".localtest.me" || suffix == ".lvh.me" {
                return Some("loopback");
            }
            let ip_part: String = prefix
                .rsplit(['.', '-'])
                .take(4)
                .collect::<Vec<_>>()
                .into_iter()
                .rev()
                .collect::<Vec<_>>()
                .join(".");
            if let Some(ip) = parse_ipv4_loose(&ip_part) {
                return internal_v4(ip).or(Some("private"));
            }
        }
    }
    None
}

/// The host of a URL-shaped value, after stripping userinfo (`http://good@evil/`). Any scheme
/// counts (`rsync://`, `xri://` reach internal hosts too), and `http:host` without slashes.
fn url_host(l: &str) -> Option<(&str, &str)> {
    let colon = l.find(':')?;
    let scheme = &l[..colon];
    if scheme.is_empty()
        || scheme.len() > 16
        || !scheme
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'+' | b'-' | b'.'))
    {
        return None;
    }
    let after = &l[colon + 1..];
    let rest = match after.strip_prefix("//") {
        Some(r) => r,
        None if matches!(scheme, "http" | "https") => after,
        None => return None,
    };
    let scheme = &l[..colon + 3.min(l.len() - colon)];
    let authority = rest.split(['/', '?', '#']).next().unwrap_or("");
    let hostport = authority.rsplit('@').next().unwrap_or(authority);
    let host = if hostport.starts_with('[') {
        hostport.split_inclusive(']').next().unwrap_or(hostport)
    } else {
        hostport.split(':').next().unwrap_or(hostport)
    };
    Some((scheme, host))
}

/// `localhost/admin`, `host.docker.internal:2375/`: an internal host named with a path or a port
/// but no scheme, for the APIs that put `http://` in front themselves. Only names: an address
/// followed by `/` is as often a network (`10.0.0.0/8`), and a one-label name (`metadata/v1`)
/// as often a relative path, unless it is a loopback name.
fn schemeless(l: &str) -> Option<&'static str> {
    let end = memchr::memchr2(b'/', b':', l.as_bytes())?;
    let (host, rest) = l.split_at(end);
    let loopback_label = ["localhost", "ip6-", "ipv6-"]
        .iter()
        .any(|p| host.starts_with(p));
    let named = host.bytes().any(|b| b.is_ascii_alphabetic())
        && (host.contains('.') || loopback_label)
        && host
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'-' | b'_'));
    let shaped = rest.starts_with('/') || rest.as_bytes().get(1).is_some_and(u8::is_ascii_digit);
    if named && shaped {
        internal_host(host)
    } else {
        None
    }
}

pub fn check(v: &Normalized<'_>, place: Place, out: &mut Vec<Hit>) {
    let l = v.lower.trim();
    if let Some(kind) = schemeless(l) {
        let rule = match kind {
            "metadata" => "cloud-metadata",
            "loopback" => "loopback",
            _ => "private-address",
        };
        out.push(Hit::new(Detector::Ssrf, rule, CRITICAL, 1));
        return;
    }
    if l.len() < 8 || !l.contains(':') {
        return;
    }
    // URLs embedded after `=` or in text are checked too (`url=http://169.254.169.254/`).
    let mut starts: Vec<usize> = std::iter::once(0)
        .chain(l.match_indices(':').filter_map(|(p, _)| {
            l[..p]
                .char_indices()
                .rev()
                .find(|(_, c)| !c.is_ascii_alphanumeric())
                .map(|(i, c)| i + c.len_utf8())
                .or(Some(0))
        }))
        .collect();
    // `https://host` gives 0 twice (the value's start, and the scheme before its colon).
    starts.dedup();
    for start in starts {
        let Some((scheme, host)) = url_host(&l[start..]) else {
            continue;
        };
        if scheme.starts_with("gopher:") || scheme.starts_with("dict:") {
            out.push(Hit::new(Detector::Ssrf, "gadget-scheme", CRITICAL, 1));
            return;
        }
        match internal_host(host) {
            Some("metadata") => {
                out.push(Hit::new(Detector::Ssrf, "cloud-metadata", CRITICAL, 1));
                return;
            }
            Some(kind) => {
                let rule = if kind == "loopback" {
                    "loopback"
                } else {
                    "private-address"
                };
                // A lone mention in prose is weaker than a URL-valued field.
                let score = if start == 0 || place != Place::JsonString {
                    CRITICAL
                } else {
                    ERROR
                };
                out.push(Hit::new(Detector::Ssrf, rule, score, 1));
                return;
            }
            None => {}
        }
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn hex_parts_with_other_characters_are_not_addresses() {
        // Found by the attack_detect fuzz target: a multi-byte character in a long `0x` part
        // made the low-32-bit fallback slice inside it.
        assert_eq!(parse_ipv4_loose("0xa\u{745}\u{745}\u{745}\u{745}v"), None);
        assert_eq!(
            parse_ipv4_loose("0x7f.1"),
            Some(std::net::Ipv4Addr::new(127, 0, 0, 1))
        );
    }

    use super::*;
    use crate::attack::normalize::{normalize, Encoding};

    fn blocked(s: &str) -> bool {
        let mut out = Vec::new();
        check(&normalize(s, Encoding::Plain), Place::JsonString, &mut out);
        out.iter().any(|h| h.score >= 5)
    }

    #[test]
    fn internal_targets_in_every_spelling() {
        for s in [
            "http://169.254.169.254/latest/meta-data/iam/security-credentials/",
            "http://metadata.google.internal/computeMetadata/v1/",
            "http://127.0.0.1:8080/admin",
            "http://127.1/",
            "http://2130706433/",
            "http://0x7f000001/",
            "http://0177.0.0.1/",
            "http://[::1]/",
            "http://[::ffff:127.0.0.1]/",
            "http://[fd00:ec2::254]/latest/",
            "http://localhost./",
            "http://example.com@127.0.0.1/",
            "http://10.0.0.5/internal",
            "http://192.168.1.1/",
            "http://127.0.0.1.nip.io/",
            "gopher://example.com:25/_HELO",
            "https://0.0.0.0:22",
            "localhost/admin",
            "localhost:8080/",
            "localhost4.localdomain4/",
            "ip6-loopback/",
            "host.docker.internal/",
            "host.docker.internal:2375/containers/json",
            "kubernetes.default.svc.cluster.local/api/v1/secrets",
            "http://redis.prod.svc.cluster.local:6379/",
            "metadata.google.internal/computemetadata/v1/",
            "lvh.me/",
        ] {
            assert!(blocked(s), "{s}");
        }
    }

    #[test]
    fn public_urls_pass() {
        for s in [
            "https://example.com/callback",
            "https://api.github.com/repos",
            "http://8.8.8.8/",
            "https://1.2.3.4.example.com/",
            "see http://en.wikipedia.org/wiki/Localhost for details",
            "metadata/v1/items",
            "kubernetes/kubernetes",
            "10.0.0.0/8",
            "192.168.1.0/24",
            "docs/localhost.md",
            "run it on localhost/8 cores",
        ] {
            assert!(!blocked(s), "{s}");
        }
    }

    #[test]
    fn loose_ipv4() {
        assert_eq!(parse_ipv4_loose("127.1"), Some(Ipv4Addr::new(127, 0, 0, 1)));
        assert_eq!(
            parse_ipv4_loose("0x7f.0.0.1"),
            Some(Ipv4Addr::new(127, 0, 0, 1))
        );
        assert_eq!(
            parse_ipv4_loose("3232235777"),
            Some(Ipv4Addr::new(192, 168, 1, 1))
        );
        assert_eq!(parse_ipv4_loose("256.1.1.1"), None);
        assert_eq!(parse_ipv4_loose("example"), None);
    }
}
