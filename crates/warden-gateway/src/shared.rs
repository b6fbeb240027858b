//! State that outlives config generations: the current runtime (swapped on reload), metrics and the
//! counters behind the gateway's own limits.

use std::sync::atomic::{AtomicBool, AtomicUsize};

use arc_swap::ArcSwap;

use crate::metrics::Metrics;
use crate::runtime::Runtime;

pub struct Shared {
    pub runtime: ArcSwap<Runtime>,
    pub metrics: Metrics,
    pub in_flight: AtomicUsize,
    pub open_connections: AtomicUsize,
    /// Set once shutdown starts: `/readyz` turns 503 so load balancers stop sending traffic.
    pub draining: AtomicBool,
}

impl Shared {
    pub fn new(runtime: Runtime) -> Shared {
        Shared {
            runtime: ArcSwap::from_pointee(runtime),
            metrics: Metrics::new(),
            in_flight: AtomicUsize::new(0),
            open_connections: AtomicUsize::new(0),
            draining: AtomicBool::new(false),
        }
    }
}
