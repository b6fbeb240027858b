//! A circuit breaker for one upstream target: it opens after consecutive failures or a high error
//! rate, refuses calls while open (the caller answers 503 at once instead of waiting on a dead
//! target), lets one probe through at a time once `open_for` has passed, and closes on the first
//! probe that succeeds.
//!
//! A probe whose outcome never arrives (its client went away) must not wedge the breaker half-open:
//! after `open_for` without news, another probe is let through.

/// When to open and how long to stay open. Times in milliseconds.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Policy {
    /// Open after this many failures in a row; 0 turns the rule off.
    pub consecutive_failures: u32,
    /// Open when failures reach this share of calls in `window_ms` (0.0 turns the rule off)…
    pub error_rate: f64,
    /// …once the window holds at least this many calls.
    pub min_requests: u32,
    pub window_ms: u64,
    pub open_ms: u64,
}

/// What the breaker says to a call about to be made.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Admission {
    Allowed,
    /// Allowed as the probe of a half-open breaker; report its outcome with `probe: true`.
    Probe,
    /// Refused: the breaker is open for this many more milliseconds (at least 1).
    Refused {
        retry_after_ms: u64,
    },
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum State {
    Closed,
    Open,
    HalfOpen,
}

impl State {
    pub fn label(self) -> &'static str {
        match self {
            State::Closed => "closed",
            State::Open => "open",
            State::HalfOpen => "half-open",
        }
    }
}

const BUCKETS: usize = 10;

#[derive(Debug, Clone)]
pub struct Breaker {
    policy: Policy,
    state: State,
    /// Open: until when. Half-open: when the current probe started (0: none in flight).
    mark_ms: u64,
    consecutive: u32,
    /// The error-rate window as BUCKETS slots: (slot number, calls, failures).
    buckets: [(u64, u32, u32); BUCKETS],
}

impl Breaker {
    pub fn new(policy: Policy) -> Breaker {
        Breaker {
            policy,
            state: State::Closed,
            mark_ms: 0,
            consecutive: 0,
            buckets: [(u64::MAX, 0, 0); BUCKETS],
        }
    }

    pub fn policy(&self) -> Policy {
        self.policy
    }

    pub fn state(&self) -> State {
        self.state
    }

    pub fn admit(&mut self, now_ms: u64) -> Admission {
        match self.state {
            State::Closed => Admission::Allowed,
            State::Open if now_ms < self.mark_ms => Admission::Refused {
                retry_after_ms: (self.mark_ms - now_ms).max(1),
            },
            State::Open => {
                self.state = State::HalfOpen;
                self.mark_ms = now_ms.max(1);
                Admission::Probe
            }
            State::HalfOpen => {
                let stale = now_ms.saturating_sub(self.mark_ms) >= self.policy.open_ms;
                if self.mark_ms == 0 || stale {
                    self.mark_ms = now_ms.max(1);
                    Admission::Probe
                } else {
                    Admission::Refused {
                        retry_after_ms: (self.mark_ms + self.policy.open_ms - now_ms).max(1),
                    }
                }
            }
        }
    }

    /// Reports a call's outcome; returns the new state when this report changed it.
    pub fn record(&mut self, now_ms: u64, ok: bool, probe: bool) -> Option<State> {
        match self.state {
            State::HalfOpen if probe => {
                if ok {
                    self.close();
                    Some(State::Closed)
                } else {
                    self.open(now_ms);
                    Some(State::Open)
                }
            }
            // Stragglers sent before the breaker opened say nothing about the target now.
            State::Open | State::HalfOpen => None,
            State::Closed => {
                self.count(now_ms, ok);
                if ok {
                    self.consecutive = 0;
                    return None;
                }
                self.consecutive += 1;
                let p = self.policy;
                let by_run =
                    p.consecutive_failures > 0 && self.consecutive >= p.consecutive_failures;
                let by_rate = p.error_rate > 0.0 && {
                    let (calls, fails) = self.window_totals(now_ms);
                    calls >= p.min_requests.max(1) && fails as f64 >= p.error_rate * calls as f64
                };
                if by_run || by_rate {
                    self.open(now_ms);
                    Some(State::Open)
                } else {
                    None
                }
            }
        }
    }

    fn open(&mut self, now_ms: u64) {
        self.state = State::Open;
        self.mark_ms = now_ms + self.policy.open_ms.max(1);
    }

    fn close(&mut self) {
        self.state = State::Closed;
        self.mark_ms = 0;
        self.consecutive = 0;
        self.buckets = [(u64::MAX, 0, 0); BUCKETS];
    }

    fn slot_len(&self) -> u64 {
        (self.policy.window_ms / BUCKETS as u64).max(1)
    }

    fn count(&mut self, now_ms: u64, ok: bool) {
        let slot = now_ms / self.slot_len();
        let b = &mut self.buckets[(slot % BUCKETS as u64) as usize];
        if b.0 != slot {
            *b = (slot, 0, 0);
        }
        b.1 += 1;
        if !ok {
            b.2 += 1;
        }
    }

    fn window_totals(&self, now_ms: u64) -> (u32, u32) {
        let slot = now_ms / self.slot_len();
        self.buckets
            .iter()
            .filter(|b| b.0 != u64::MAX && b.0 + (BUCKETS as u64) > slot && b.0 <= slot)
            .fold((0, 0), |(c, f), b| (c + b.1, f + b.2))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn policy() -> Policy {
        Policy {
            consecutive_failures: 3,
            error_rate: 0.5,
            min_requests: 10,
            window_ms: 10_000,
            open_ms: 1_000,
        }
    }

    #[test]
    fn opens_on_consecutive_failures_probes_and_closes() {
        let mut b = Breaker::new(policy());
        assert_eq!(b.record(0, false, false), None);
        assert_eq!(b.record(1, true, false), None, "a success resets the run");
        assert_eq!(b.record(2, false, false), None);
        assert_eq!(b.record(3, false, false), None);
        assert_eq!(b.record(4, false, false), Some(State::Open));
        assert_eq!(
            b.admit(500),
            Admission::Refused {
                retry_after_ms: 504
            }
        );
        // Open time over: one probe, others wait for it.
        assert_eq!(b.admit(1_004), Admission::Probe);
        assert!(matches!(b.admit(1_005), Admission::Refused { .. }));
        // The probe fails: open again for a full period.
        assert_eq!(b.record(1_010, false, true), Some(State::Open));
        assert!(matches!(b.admit(2_000), Admission::Refused { .. }));
        assert_eq!(b.admit(2_010), Admission::Probe);
        assert_eq!(b.record(2_020, true, true), Some(State::Closed));
        assert_eq!(b.admit(2_021), Admission::Allowed);
    }

    #[test]
    fn opens_on_error_rate_only_with_enough_calls() {
        let mut b = Breaker::new(Policy {
            consecutive_failures: 0,
            ..policy()
        });
        // Alternate: 50% failures, never 3 in a row.
        for i in 0..9 {
            assert_eq!(b.record(i, i % 2 == 0, false), None, "call {i}");
        }
        assert_eq!(b.record(9, false, false), Some(State::Open));
    }

    #[test]
    fn old_failures_leave_the_window() {
        let mut b = Breaker::new(Policy {
            consecutive_failures: 0,
            ..policy()
        });
        for i in 0..9 {
            b.record(i, false, false);
        }
        // 20 s later those nine are gone; ten fresh calls with one failure stay closed.
        for i in 0..10 {
            assert_eq!(b.record(20_000 + i, i != 0, false), None);
        }
        assert_eq!(b.state(), State::Closed);
    }

    #[test]
    fn a_lost_probe_does_not_wedge_the_breaker() {
        let mut b = Breaker::new(policy());
        for i in 0..3 {
            b.record(i, false, false);
        }
        assert_eq!(b.admit(1_002), Admission::Probe);
        // Its outcome never comes; after another open period a new probe goes.
        assert!(matches!(b.admit(1_500), Admission::Refused { .. }));
        assert_eq!(b.admit(2_002), Admission::Probe);
    }

    proptest::proptest! {
        #[test]
        fn an_open_breaker_always_probes_again(events in proptest::collection::vec((0u64..50, proptest::bool::ANY, proptest::bool::ANY), 0..200)) {
            let mut b = Breaker::new(policy());
            let mut now = 0;
            for (dt, ok, ask) in events {
                now += dt;
                if ask {
                    let a = b.admit(now);
                    let probe = a == Admission::Probe;
                    if !matches!(a, Admission::Refused { .. }) {
                        b.record(now, ok, probe);
                    }
                } else {
                    b.record(now, ok, false);
                }
            }
            // Whatever happened, within two open periods a call gets through.
            let later = now + 2 * policy().open_ms + 1;
            let refused = matches!(b.admit(later), Admission::Refused { .. });
            proptest::prop_assert!(!refused);
        }
    }
}
