//! State that outlives config generations: the current runtime (swapped on reload), metrics and the
//! counters behind the gateway's own limits.

use std::cell::RefCell;
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::sync::Arc;

use arc_swap::ArcSwap;

use crate::metrics::Metrics;
use crate::runtime::Runtime;

/// A request's hold on its config generation. The outer `Arc` is private to one worker thread (see
/// [`Shared::runtime`]), so taking and dropping it per request never writes a cache line that
/// another core also writes.
pub type RuntimeRef = Arc<Arc<Runtime>>;

pub struct Shared {
    current: ArcSwap<Runtime>,
    /// Bumped on every swap; workers compare it with their cached copy.
    generation: AtomicU64,
    /// Tells apart the `Shared` of several gateways in one process (tests) in the per-thread cache.
    id: u64,
    pub metrics: Metrics,
    pub in_flight: AtomicUsize,
    pub open_connections: AtomicUsize,
    /// Set once shutdown starts: `/readyz` turns 503 so load balancers stop sending traffic.
    pub draining: AtomicBool,
}

static NEXT_ID: AtomicU64 = AtomicU64::new(1);

thread_local! {
    /// (gateway id, generation, handle) of the runtime this thread used last.
    static CACHED: RefCell<Option<(u64, u64, RuntimeRef)>> = const { RefCell::new(None) };
}

impl Shared {
    pub fn new(runtime: Runtime) -> Shared {
        Shared {
            current: ArcSwap::from_pointee(runtime),
            generation: AtomicU64::new(0),
            id: NEXT_ID.fetch_add(1, Ordering::Relaxed),
            metrics: Metrics::new(),
            in_flight: AtomicUsize::new(0),
            open_connections: AtomicUsize::new(0),
            draining: AtomicBool::new(false),
        }
    }

    /// The current config generation, for a request to hold until it is finished.
    pub fn runtime(&self) -> RuntimeRef {
        let generation = self.generation.load(Ordering::Acquire);
        CACHED.with(|c| {
            let mut c = c.borrow_mut();
            match &*c {
                Some((id, g, rt)) if *id == self.id && *g == generation => rt.clone(),
                _ => {
                    let rt = Arc::new(self.current.load_full());
                    *c = Some((self.id, generation, rt.clone()));
                    rt
                }
            }
        })
    }

    /// A look at the current generation without holding it (control thread, admin).
    pub fn peek(&self) -> arc_swap::Guard<Arc<Runtime>> {
        self.current.load()
    }

    /// Makes `runtime` current; requests already running keep the generation they started with.
    pub fn swap(&self, runtime: Runtime) {
        self.current.store(Arc::new(runtime));
        self.generation.fetch_add(1, Ordering::AcqRel);
    }
}
