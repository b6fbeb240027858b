//! Personal and secret data in API responses: detectors ([`detect`]), the check digits behind them
//! ([`checks`]), and the policy that masks, hashes, drops, encrypts or reports what they find
//! ([`protect`]).

pub mod checks;
pub mod detect;
pub mod protect;

pub use detect::{Confidence, DataClass};
pub use protect::{Action, Audience, FieldPattern, Finding, Keys, Policy, Protected, Rule};
