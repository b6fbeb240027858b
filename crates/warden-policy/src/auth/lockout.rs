//! Brute-force protection: failed authentications are counted per client IP and per claimed
//! identity (key id, token subject, username). Past `max_failures` within `window`, that IP or
//! identity is locked out for `lock_for`, doubling with each further lockout (up to `max_lock`),
//! and every attempt meanwhile fails without being checked, so guessing gains nothing.
//!
//! Pure state with the clock passed in; the gateway keeps it in process or in Redis.

use std::collections::HashMap;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Policy {
    pub max_failures: u32,
    pub window_secs: i64,
    pub lock_secs: i64,
    pub max_lock_secs: i64,
}

impl Default for Policy {
    fn default() -> Self {
        Policy {
            max_failures: 10,
            window_secs: 600,
            lock_secs: 900,
            max_lock_secs: 86_400,
        }
    }
}

#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Counter {
    pub failures: u32,
    pub window_start: i64,
    pub locked_until: i64,
    /// Lockouts so far, for the backoff.
    pub lockouts: u32,
}

impl Counter {
    pub fn locked(&self, now: i64) -> Option<i64> {
        (self.locked_until > now).then(|| self.locked_until - now)
    }

    /// Counts one failure; returns the lock length if this failure locked the key.
    pub fn fail(&mut self, now: i64, p: &Policy) -> Option<i64> {
        if now - self.window_start >= p.window_secs {
            self.window_start = now;
            self.failures = 0;
        }
        self.failures += 1;
        if self.failures < p.max_failures {
            return None;
        }
        let factor = 1i64 << self.lockouts.min(20);
        let lock = p.lock_secs.saturating_mul(factor).min(p.max_lock_secs);
        self.lockouts += 1;
        self.failures = 0;
        self.window_start = now;
        self.locked_until = now + lock;
        Some(lock)
    }
}

/// Counters by key (`ip:203.0.113.9`, `id:alice`).
#[derive(Debug, Default)]
pub struct Lockouts {
    counters: HashMap<String, Counter>,
}

impl Lockouts {
    /// The longest remaining lock among `keys`, in seconds.
    pub fn locked(&self, keys: &[String], now: i64) -> Option<i64> {
        keys.iter()
            .filter_map(|k| self.counters.get(k)?.locked(now))
            .max()
    }

    pub fn fail(&mut self, keys: &[String], now: i64, p: &Policy) {
        for k in keys {
            self.counters.entry(k.clone()).or_default().fail(now, p);
        }
    }

    /// A success clears the identity's failures, not the IP's: one good key must not launder an
    /// IP that is guessing others.
    pub fn succeed(&mut self, identity_key: &str) {
        if let Some(c) = self.counters.get_mut(identity_key) {
            if c.locked_until == 0 || c.failures > 0 {
                c.failures = 0;
            }
        }
    }

    /// Drops counters with nothing left to remember.
    pub fn prune(&mut self, now: i64, p: &Policy) {
        self.counters.retain(|_, c| {
            c.locked_until > now || now - c.window_start < p.window_secs.max(p.max_lock_secs)
        });
    }

    pub fn len(&self) -> usize {
        self.counters.len()
    }

    pub fn is_empty(&self) -> bool {
        self.counters.is_empty()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn locks_after_the_threshold_and_backs_off() {
        let p = Policy {
            max_failures: 3,
            window_secs: 60,
            lock_secs: 10,
            max_lock_secs: 25,
        };
        let mut l = Lockouts::default();
        let keys = vec!["ip:1".to_string()];
        for _ in 0..2 {
            l.fail(&keys, 0, &p);
        }
        assert_eq!(l.locked(&keys, 1), None);
        l.fail(&keys, 1, &p);
        assert_eq!(l.locked(&keys, 1), Some(10));
        assert_eq!(l.locked(&keys, 11), None);
        for t in 12..15 {
            l.fail(&keys, t, &p);
        }
        assert_eq!(l.locked(&keys, 14), Some(20), "doubled");
        for t in 40..43 {
            l.fail(&keys, t, &p);
        }
        assert_eq!(l.locked(&keys, 42), Some(25), "capped");
    }

    #[test]
    fn failures_outside_the_window_do_not_add_up() {
        let p = Policy {
            max_failures: 3,
            window_secs: 10,
            ..Policy::default()
        };
        let mut l = Lockouts::default();
        let keys = vec!["id:alice".to_string()];
        for t in [0, 5, 11, 16, 22] {
            l.fail(&keys, t, &p);
        }
        assert_eq!(l.locked(&keys, 22), None);
    }
}
