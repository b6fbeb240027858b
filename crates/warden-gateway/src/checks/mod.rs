//! The security checks plugged into the pipeline, one file each. Their decisions come from the pure
//! `warden-policy` crate; these adapters only pick the inputs out of the request and the config.

pub mod ip_rules;
