//! The alert detectors never panic, raise at most one alert per detector, subject and pattern
//! within the cooldown, and path shapes are stable (a shaped path shapes to itself).
#![no_main]
use std::collections::HashSet;

use libfuzzer_sys::fuzz_target;
use warden_policy::alerts::{shape, Call, Detectors, Rule, Rules};

fuzz_target!(|data: &[u8]| {
    let rule = |t| Rule {
        threshold: t,
        window_ms: 1_000,
    };
    let rules = Rules {
        auth_failures: rule(3),
        object_probing: rule(3),
        path_sweep: rule(3),
        large_responses: rule(200_000),
        cooldown_ms: 1_000_000,
    };
    let mut d = Detectors::default();
    let mut raised = HashSet::new();
    let mut now = 0u64;
    for chunk in data.chunks(6) {
        let [a, b, c, rest @ ..] = chunk else { break };
        now += u64::from(*a % 16) * 50;
        let status = [200, 401, 403, 404, 500][usize::from(*b % 5)];
        let ip = format!("10.0.0.{}", c % 4);
        let path: String = rest
            .iter()
            .map(|x| match x % 6 {
                0 => '/',
                1 => '1',
                2 => 'a',
                3 => '-',
                4 => 'f',
                _ => char::from(b'0' + x % 10),
            })
            .collect();
        let (shaped, _) = shape(&path);
        assert_eq!(shape(&shaped).0, shaped, "{path:?}");
        let call = Call {
            now_ms: now,
            client_ip: &ip,
            consumer: None,
            path: &path,
            status,
            bytes_out: u64::from(*b) * 1024,
            request_id: "r",
        };
        for alert in d.observe(&rules, &call) {
            // Within one cooldown (longer than any input's time span), one alert per detector,
            // subject and pattern.
            let key = (alert.kind, alert.subject.clone(), alert.pattern.clone());
            assert!(raised.insert(key), "{alert:?}");
        }
    }
});
