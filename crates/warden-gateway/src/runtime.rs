//! One config generation: the parsed config compiled into what the hot path needs (router, pipeline,
//! upstream clients). Hot reload builds a new `Runtime` off to the side and swaps it in atomically;
//! requests already running finish on the generation they started with.

use std::sync::Arc;

use ipnet::IpNet;
use sha2::{Digest, Sha256};

use crate::config::{Config, PathPrefix};
use crate::pipeline::Pipeline;
use crate::router::Router;
use crate::services::Services;
use crate::upstream::Upstream;

pub struct Runtime {
    pub config: Config,
    /// State shared with every other generation (keys, counters, caches).
    pub services: Arc<Services>,
    /// SHA-256 of the config text, hex: what reload logs and the audit trail record.
    pub config_hash: String,
    pub router: Router,
    pub pipeline: Pipeline,
    pub routes: Vec<RouteRuntime>,
}

pub struct RouteRuntime {
    pub name: Arc<str>,
    pub prefix: PathPrefix,
    pub strip_prefix: bool,
    pub max_body_bytes: u64,
    pub upstream: Arc<Upstream>,
}

impl Runtime {
    pub fn new(config: Config, text: &str, services: Arc<Services>) -> Runtime {
        let pipeline = Pipeline::build(&config, &services);
        Self::with_pipeline(config, text, services, pipeline)
    }

    /// Like `new`, with a custom pipeline (tests, embedders).
    pub fn with_pipeline(
        config: Config,
        text: &str,
        services: Arc<Services>,
        pipeline: Pipeline,
    ) -> Runtime {
        let routes = config
            .routes
            .iter()
            .enumerate()
            .map(|(i, r)| RouteRuntime {
                name: config.route_name(i).into(),
                prefix: r.path_prefix.clone(),
                strip_prefix: r.strip_prefix,
                max_body_bytes: r.max_body_bytes.unwrap_or(config.limits.max_body_bytes).0,
                upstream: Arc::new(Upstream::new(
                    &r.upstream,
                    &config.upstreams[&r.upstream],
                    r.connect_timeout,
                    r.read_timeout,
                    config.worker_count(),
                    &services.traffic,
                )),
            })
            .collect();
        Runtime {
            config_hash: hex(&Sha256::digest(text.as_bytes())),
            router: Router::new(&config),
            pipeline,
            routes,
            config,
            services,
        }
    }

    pub fn trusted_proxies(&self) -> &[IpNet] {
        &self.config.trusted_proxies
    }
}

pub(crate) fn hex(bytes: &[u8]) -> String {
    warden_policy::hex::encode(bytes)
}
