//! X-Forwarded-For is attacker-written: resolving it must never panic, and from an untrusted peer
//! the answer is always the peer.
#![no_main]
use libfuzzer_sys::fuzz_target;
use std::net::IpAddr;

fuzz_target!(|data: (&str, [u8; 4], bool)| {
    let (xff, peer, trust) = data;
    let peer = IpAddr::from(peer);
    let trusted: Vec<ipnet::IpNet> = if trust { vec!["0.0.0.0/0".parse().unwrap()] } else { vec![] };
    let got = warden_policy::client_ip::resolve(peer, [xff], &trusted);
    if !trust {
        assert_eq!(got, peer);
    }
});
