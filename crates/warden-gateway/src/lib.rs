//! Warden's gateway: listeners, TLS, the phase pipeline, upstreams, config load and hot reload, and
//! the admin API. Where to look:
//!
//! - a request's whole path: [`proxy::handle`];
//! - which checks run, in which order: [`pipeline::Pipeline::build`];
//! - connection limits, slowloris and idle handling, graceful shutdown: [`server`];
//! - every config field and its default: [`config`];
//! - rate limits, quotas, concurrency caps, circuit breakers and their shared state: [`checks::traffic`], [`traffic`];
//! - where a call is recorded in the audit trail: [`audit`] (called from `proxy::finish`);
//! - how a refusal becomes `application/problem+json`: [`problem`].
#![forbid(unsafe_code)]

pub mod admin;
pub mod alerts;
pub mod audit;
pub mod body;
pub mod checks;
pub mod config;
pub mod context;
pub mod fetch;
pub mod gateway;
pub mod headers;
pub mod metrics;
pub mod pipeline;
pub mod problem;
pub mod proxy;
pub mod router;
pub mod runtime;
pub mod server;
pub mod services;
pub mod shared;
pub mod syslog;
pub mod tls;
pub mod traffic;
pub mod upstream;
pub mod workers;

pub use config::{Config, ConfigError};
pub use gateway::{Gateway, StartError};
pub use runtime::Runtime;
