//! The security checks plugged into the pipeline, one file each. Their decisions come from the pure
//! `warden-policy` crate; these adapters only pick the inputs out of the request and the config.

pub mod alerting;
pub mod attack_detection;
pub mod authorization;
pub mod contract;
pub mod cors;
pub mod data_protection;
pub mod error_scrubbing;
pub mod identity;
pub mod ip_rules;
pub mod login;
pub mod security_headers;
pub mod traffic;
pub mod validation;
