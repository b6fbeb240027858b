//! Traffic control decisions that need no I/O: the circuit breaker's state machine and the
//! calendar windows quotas count in. The gateway owns the counters and clocks and calls in here.

pub mod breaker;
pub mod window;
