//! Thread-per-core request handling. The accept loop hands each new connection to one worker thread,
//! and everything about that connection runs there: the client connection, the pipeline, and the
//! upstream connection from that worker's own pool. A proxied request therefore never wakes a task
//! on another thread; with one shared work-stealing runtime it did so twice per request (client task
//! to upstream-connection task and back), which cost a third of the throughput (bench/README.md).

use std::cell::Cell;
use std::future::Future;
use std::pin::Pin;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Mutex;

use tokio::sync::mpsc;

type Job = Pin<Box<dyn Future<Output = ()> + Send>>;

thread_local! {
    static WORKER_INDEX: Cell<usize> = const { Cell::new(0) };
}

/// The index of the worker thread running the caller (0 outside workers), used to pick that
/// worker's upstream pool.
pub fn current() -> usize {
    WORKER_INDEX.with(Cell::get)
}

pub struct Workers {
    /// Emptied by `stop`; a worker ends once its sender is gone.
    senders: Mutex<Vec<mpsc::UnboundedSender<Job>>>,
    count: usize,
    next: AtomicUsize,
}

impl Workers {
    /// Starts `n` threads, each with a single-threaded tokio runtime.
    pub fn spawn(n: usize) -> std::io::Result<Workers> {
        let mut senders = Vec::with_capacity(n);
        for index in 0..n.max(1) {
            let (tx, mut rx) = mpsc::unbounded_channel::<Job>();
            let rt = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()?;
            std::thread::Builder::new()
                .name(format!("warden-worker-{index}"))
                .spawn(move || {
                    WORKER_INDEX.with(|w| w.set(index));
                    rt.block_on(async move {
                        // Idle upstream connections have no task of their own to notice a close.
                        tokio::spawn(async {
                            let mut tick = tokio::time::interval(crate::upstream::SWEEP_EVERY);
                            loop {
                                tick.tick().await;
                                crate::upstream::sweep_idle_pools();
                            }
                        });
                        while let Some(job) = rx.recv().await {
                            tokio::spawn(job);
                        }
                    });
                    // Dropping the runtime here cancels whatever outlived the shutdown grace period.
                })?;
            senders.push(tx);
        }
        Ok(Workers {
            count: senders.len(),
            senders: Mutex::new(senders),
            next: AtomicUsize::new(0),
        })
    }

    /// Ends the workers: each finishes its loop and drops its runtime, cancelling what still runs.
    pub fn stop(&self) {
        self.senders.lock().expect("workers lock").clear();
    }

    /// Runs `job` on the next worker in turn. Connections are long-lived and similar, so round robin
    /// spreads them as well as anything smarter would.
    pub fn dispatch(&self, job: impl Future<Output = ()> + Send + 'static) {
        let i = self.next.fetch_add(1, Ordering::Relaxed) % self.count;
        // Once stopped (shutdown), the job and its connection are dropped, which closes the socket.
        if let Some(tx) = self.senders.lock().expect("workers lock").get(i) {
            let _ = tx.send(Box::pin(job));
        }
    }
}
