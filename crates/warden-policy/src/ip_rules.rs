//! Per-route IP allow and deny lists (CIDRs).
//!
//! Deny wins over allow, and a non-empty allow list turns the route into "only these": that is what
//! an operator means when writing both, and it keeps a typo in the allow list from opening a route.
//! IPv4-mapped IPv6 addresses (`::ffff:10.0.0.1`) are matched as the IPv4 address they carry, so a
//! dual-stack listener cannot be used to slip past an IPv4 deny rule.

use std::net::IpAddr;

use ipnet::IpNet;

use crate::verdict::{ProblemKind, Verdict};

#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct IpRules {
    allow: Vec<IpNet>,
    deny: Vec<IpNet>,
}

impl IpRules {
    pub fn new(allow: Vec<IpNet>, deny: Vec<IpNet>) -> Self {
        // Store networks in canonical form so that `10.0.0.1/8` behaves like `10.0.0.0/8`.
        let canon = |v: Vec<IpNet>| v.into_iter().map(|n| n.trunc()).collect();
        IpRules {
            allow: canon(allow),
            deny: canon(deny),
        }
    }

    pub fn is_empty(&self) -> bool {
        self.allow.is_empty() && self.deny.is_empty()
    }

    pub fn evaluate(&self, client: IpAddr) -> Verdict {
        let ip = client.to_canonical();
        if self.deny.iter().any(|n| n.contains(&ip)) {
            return Verdict::reject(ProblemKind::Forbidden, "ip-denied");
        }
        if !self.allow.is_empty() && !self.allow.iter().any(|n| n.contains(&ip)) {
            return Verdict::reject(ProblemKind::Forbidden, "ip-not-allowed");
        }
        Verdict::Continue
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn net(s: &str) -> IpNet {
        s.parse().unwrap()
    }

    fn ip(s: &str) -> IpAddr {
        s.parse().unwrap()
    }

    #[test]
    fn empty_rules_allow_everyone() {
        assert_eq!(
            IpRules::default().evaluate(ip("203.0.113.9")),
            Verdict::Continue
        );
    }

    #[test]
    fn deny_wins_over_allow() {
        let r = IpRules::new(vec![net("10.0.0.0/8")], vec![net("10.1.2.3/32")]);
        assert_eq!(r.evaluate(ip("10.9.9.9")), Verdict::Continue);
        assert_eq!(
            r.evaluate(ip("10.1.2.3")),
            Verdict::reject(ProblemKind::Forbidden, "ip-denied")
        );
        assert_eq!(
            r.evaluate(ip("192.168.1.1")),
            Verdict::reject(ProblemKind::Forbidden, "ip-not-allowed")
        );
    }

    #[test]
    fn ipv4_mapped_ipv6_matches_ipv4_rules() {
        let r = IpRules::new(vec![], vec![net("198.51.100.0/24")]);
        assert!(matches!(
            r.evaluate(ip("::ffff:198.51.100.7")),
            Verdict::Reject(_)
        ));
        let allow_only_v4 = IpRules::new(vec![net("127.0.0.0/8")], vec![]);
        assert_eq!(
            allow_only_v4.evaluate(ip("::ffff:127.0.0.1")),
            Verdict::Continue
        );
    }

    #[test]
    fn ipv6_networks() {
        let r = IpRules::new(vec![net("2001:db8::/32")], vec![]);
        assert_eq!(r.evaluate(ip("2001:db8::1")), Verdict::Continue);
        assert!(matches!(r.evaluate(ip("2001:db9::1")), Verdict::Reject(_)));
    }

    #[test]
    fn host_bits_in_config_are_ignored() {
        let r = IpRules::new(vec![], vec![net("10.0.0.1/8")]);
        assert!(matches!(r.evaluate(ip("10.200.0.1")), Verdict::Reject(_)));
    }

    proptest! {
        #[test]
        fn a_denied_network_is_always_rejected(a: u32, prefix in 0u8..=32, host: u32) {
            let n = IpNet::V4(ipnet::Ipv4Net::new(a.into(), prefix).unwrap()).trunc();
            let r = IpRules::new(vec![n], vec![n]);
            let mask = if prefix == 0 { 0 } else { u32::MAX << (32 - prefix) };
            let inside = (a & mask) | (host & !mask);
            let inside_ip = IpAddr::V4(inside.into());
            prop_assert!(matches!(r.evaluate(inside_ip), Verdict::Reject(_)));
            // And its IPv4-mapped IPv6 spelling is rejected too.
            let mapped = IpAddr::V6(std::net::Ipv4Addr::from(inside).to_ipv6_mapped());
            prop_assert!(matches!(r.evaluate(mapped), Verdict::Reject(_)));
        }

        #[test]
        fn allow_list_admits_exactly_its_members(a: u32, b: u32, prefix in 1u8..=32) {
            let n = IpNet::V4(ipnet::Ipv4Net::new(a.into(), prefix).unwrap()).trunc();
            let r = IpRules::new(vec![n], vec![]);
            let probe = IpAddr::V4(b.into());
            prop_assert_eq!(r.evaluate(probe) == Verdict::Continue, n.contains(&probe));
        }
    }
}
