//! What a [`crate::Runtime`] shares with every component and agent it made
//! ([`Inner`]): the wasmtime `Engine` and its epoch ticker, the configuration
//! and limits, the linkers of the two worlds, the component cache, and the
//! count of live stores ([`LiveGuard`]); and how a guest's `Store` is made
//! ([`Inner::new_store`]: its limits, CPU meter and epoch callback).
//!
//! Below the façade (`engine.rs`) and the components (`agent.rs`,
//! `policy.rs`): they all hold an `Arc<Inner>`, and this file knows none of
//! them.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::time::Duration;

use wasmtime::component::Linker;
use wasmtime::{Engine, Store};

use super::cache::ComponentCache;
use super::config::{AgentLimits, RuntimeConfig};
use super::state::GuestState;

/// Stops the epoch ticker when the runtime's last user is gone.
struct Ticker {
    stop: Option<std::sync::mpsc::Sender<()>>,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl Ticker {
    fn start(engine: &Engine, tick: Duration) -> Self {
        let engine = engine.weak();
        let (stop, stopped) = std::sync::mpsc::channel::<()>();
        let thread = std::thread::Builder::new()
            .name("metered-epoch".into())
            .spawn(move || {
                while let Err(std::sync::mpsc::RecvTimeoutError::Timeout) = stopped.recv_timeout(tick) {
                    match engine.upgrade() {
                        Some(engine) => engine.increment_epoch(),
                        None => return,
                    }
                }
            })
            .ok();
        Self { stop: Some(stop), thread }
    }
}

impl Drop for Ticker {
    fn drop(&mut self) {
        drop(self.stop.take());
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

/// Shared by the runtime and every component and agent it made.
pub(crate) struct Inner {
    pub(crate) engine: Engine,
    pub(crate) config: RuntimeConfig,
    pub(crate) limits: Arc<AgentLimits>,
    pub(crate) agent_linker: Linker<GuestState>,
    pub(crate) policy_linker: Linker<GuestState>,
    pub(crate) cache: ComponentCache,
    live: AtomicUsize,
    next_id: AtomicU64,
    _ticker: Ticker,
}

/// Counts a live store; decrements on drop.
pub(crate) struct LiveGuard(Arc<Inner>);

impl Drop for LiveGuard {
    fn drop(&mut self) {
        self.0.live.fetch_sub(1, Ordering::Relaxed);
    }
}

impl Inner {
    /// The shared state of a new runtime over `engine`; starts its epoch
    /// ticker (stopped when the last holder drops it).
    pub(crate) fn new(
        engine: Engine,
        config: RuntimeConfig,
        agent_linker: Linker<GuestState>,
        policy_linker: Linker<GuestState>,
        cache: ComponentCache,
    ) -> Self {
        let ticker = Ticker::start(&engine, config.epoch_tick);
        Self {
            limits: Arc::new(config.limits.clone()),
            engine,
            config,
            agent_linker,
            policy_linker,
            cache,
            live: AtomicUsize::new(0),
            next_id: AtomicU64::new(1),
            _ticker: ticker,
        }
    }

    /// A store for one guest, with its limits, CPU meter and epoch callback.
    pub(crate) fn new_store(self: &Arc<Self>, state: GuestState, budget: Duration) -> (Store<GuestState>, LiveGuard) {
        let mut store = Store::new(&self.engine, state);
        store.limiter(|s| &mut s.limiter);
        store.epoch_deadline_callback(move |mut ctx| ctx.data_mut().on_epoch(budget));
        store.set_epoch_deadline(1);
        self.live.fetch_add(1, Ordering::Relaxed);
        (store, LiveGuard(self.clone()))
    }

    /// A fresh guest id: `<prefix>-<n>` (`agent-1`, `policy-2`; one counter).
    pub(crate) fn agent_id(&self, prefix: &str) -> Arc<str> {
        Arc::from(format!("{prefix}-{}", self.next_id.fetch_add(1, Ordering::Relaxed)))
    }

    /// Budget ticks for a duration.
    pub(crate) fn ticks(&self, budget: Duration) -> u32 {
        self.config.ticks(budget)
    }

    /// Guest stores alive right now (agents and policy instances).
    pub(crate) fn live_stores(&self) -> usize {
        self.live.load(Ordering::Relaxed)
    }
}
