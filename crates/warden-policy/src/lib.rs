//! Warden's security checks as pure functions: plain views of a request in, a [`Verdict`] out.
//!
//! Nothing here does I/O or needs an async runtime, so every check can be unit tested, property
//! tested and fuzzed on its own. The gateway (`warden-gateway`) owns sockets, timers and state and
//! calls into this crate from its phase pipeline.
#![forbid(unsafe_code)]

pub mod alerts;
pub mod attack;
pub mod auth;
pub mod client_ip;
pub mod hex;
pub mod ip_rules;
pub mod json;
pub mod leaks;
pub mod pii;
pub mod syslog;
pub mod traffic;
pub mod verdict;
pub mod yaml_lines;

pub use ip_rules::IpRules;
pub use verdict::{ProblemKind, Rejection, Verdict, Violation};
