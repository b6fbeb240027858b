//! Which address is the client's: the socket peer, unless that peer is a proxy we trust, in which
//! case we walk `X-Forwarded-For` from the right and take the first address that is not a trusted
//! proxy. Walking from the right matters: everything left of our own trusted hop is written by the
//! client and can be forged, so taking the leftmost entry would let anyone pick their IP.

use std::net::IpAddr;

use ipnet::IpNet;

/// `forwarded_for` are the values of every `X-Forwarded-For` header, in order.
pub fn resolve<'a>(
    peer: IpAddr,
    forwarded_for: impl IntoIterator<Item = &'a str>,
    trusted_proxies: &[IpNet],
) -> IpAddr {
    let peer = peer.to_canonical();
    let trusted = |ip: &IpAddr| trusted_proxies.iter().any(|n| n.contains(ip));
    if !trusted(&peer) {
        return peer;
    }
    let hops: Vec<&str> = forwarded_for
        .into_iter()
        .flat_map(|v| v.split(','))
        .collect();
    let mut client = peer;
    for hop in hops.iter().rev() {
        match parse_hop(hop) {
            Some(ip) => {
                client = ip;
                if !trusted(&ip) {
                    break;
                }
            }
            // A garbled entry ends the walk: we cannot tell who wrote anything left of it.
            None => break,
        }
    }
    client
}

fn parse_hop(hop: &str) -> Option<IpAddr> {
    let hop = hop.trim();
    if let Ok(ip) = hop.parse::<IpAddr>() {
        return Some(ip.to_canonical());
    }
    // `[2001:db8::1]:443` and `203.0.113.1:80` appear in the wild.
    hop.parse::<std::net::SocketAddr>()
        .ok()
        .map(|s| s.ip().to_canonical())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ip(s: &str) -> IpAddr {
        s.parse().unwrap()
    }

    #[test]
    fn untrusted_peer_is_the_client_whatever_the_header_says() {
        assert_eq!(
            resolve(ip("203.0.113.5"), ["10.0.0.1"], &[]),
            ip("203.0.113.5")
        );
    }

    #[test]
    fn trusted_peer_hands_over_to_rightmost_untrusted_hop() {
        let trusted = vec!["10.0.0.0/8".parse().unwrap()];
        let got = resolve(
            ip("10.0.0.2"),
            ["1.1.1.1, 198.51.100.7, 10.0.0.9"],
            &trusted,
        );
        assert_eq!(got, ip("198.51.100.7"));
    }

    #[test]
    fn garbage_hop_stops_the_walk() {
        let trusted = vec!["10.0.0.0/8".parse().unwrap()];
        assert_eq!(
            resolve(ip("10.0.0.2"), ["1.1.1.1, nonsense"], &trusted),
            ip("10.0.0.2")
        );
    }

    #[test]
    fn ports_and_brackets_are_accepted() {
        let trusted = vec!["127.0.0.0/8".parse().unwrap()];
        assert_eq!(
            resolve(ip("127.0.0.1"), ["[2001:db8::1]:443"], &trusted),
            ip("2001:db8::1")
        );
    }
}
