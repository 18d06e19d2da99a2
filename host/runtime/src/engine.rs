//! [`Runtime`]: one wasmtime `Engine` (pooling allocator, copy-on-write memory
//! images, epoch interruption driven by a ticker thread), the linkers of the two
//! worlds, and the compiled-component cache.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::time::Duration;

use wasmtime::component::Linker;
use wasmtime::{Config, Engine, InstanceAllocationStrategy, PoolingAllocationConfig, Store};

use super::agent::AgentComponent;
use super::cache::ComponentCache;
use super::config::{AgentLimits, RuntimeConfig};
use super::exit::RuntimeError;
use super::host;
use super::policy::PolicyComponent;
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
    cache: ComponentCache,
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
    /// A store for one guest, with its limits, CPU meter and epoch callback.
    pub(crate) fn new_store(self: &Arc<Self>, state: GuestState, budget: Duration) -> (Store<GuestState>, LiveGuard) {
        let mut store = Store::new(&self.engine, state);
        store.limiter(|s| &mut s.limiter);
        store.epoch_deadline_callback(move |mut ctx| ctx.data_mut().on_epoch(budget));
        store.set_epoch_deadline(1);
        self.live.fetch_add(1, Ordering::Relaxed);
        (store, LiveGuard(self.clone()))
    }

    /// A fresh agent id: `agent-<n>`.
    pub(crate) fn agent_id(&self, prefix: &str) -> Arc<str> {
        Arc::from(format!("{prefix}-{}", self.next_id.fetch_add(1, Ordering::Relaxed)))
    }

    /// Budget ticks for a duration.
    pub(crate) fn ticks(&self, budget: Duration) -> u32 {
        self.config.ticks(budget)
    }
}

/// The agent runtime: load components once, run many agents, each in its own
/// store with its own limits. Cheap to clone.
#[derive(Clone)]
pub struct Runtime {
    inner: Arc<Inner>,
}

impl std::fmt::Debug for Runtime {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Runtime").field("config", &self.inner.config).field("live", &self.live_guests()).finish()
    }
}

impl Runtime {
    /// Builds the engine and starts its epoch ticker.
    pub fn new(config: RuntimeConfig) -> Result<Self, RuntimeError> {
        let limits = &config.limits;
        let n = config.max_agents.max(1);
        // Agents and the policy instances that serve them share the pool.
        let slots = n.saturating_mul(2);
        let per = |x: usize| u32::try_from(x).unwrap_or(u32::MAX);
        let mut pool = PoolingAllocationConfig::new();
        pool.total_component_instances(slots)
            .total_core_instances(slots.saturating_mul(per(limits.instances).min(16)))
            .total_memories(slots)
            .total_tables(slots.saturating_mul(4))
            .total_stacks(slots)
            .max_core_instances_per_component(per(limits.instances))
            .max_memories_per_component(per(limits.memories))
            .max_tables_per_component(per(limits.tables))
            .table_elements(limits.table_elements)
            .max_memory_size(limits.memory_bytes);
        let mut wasm = Config::new();
        wasm.wasm_component_model(true)
            .epoch_interruption(true)
            .memory_init_cow(true)
            .max_wasm_stack(config.max_wasm_stack)
            .async_stack_size(config.max_wasm_stack + (256 << 10))
            .allocation_strategy(InstanceAllocationStrategy::Pooling(pool));
        let engine = Engine::new(&wasm).map_err(|e| RuntimeError::Engine(format!("{e:?}")))?;

        let link = |e: wasmtime::Error| RuntimeError::Engine(format!("linker: {e:?}"));
        let mut agent_linker = Linker::new(&engine);
        host::add_wasi(&mut agent_linker).map_err(link)?;
        host::add_logging(&mut agent_linker).map_err(link)?;
        host::add_media(&mut agent_linker).map_err(link)?;
        let mut policy_linker = Linker::new(&engine);
        host::add_wasi(&mut policy_linker).map_err(link)?;
        host::add_logging(&mut policy_linker).map_err(link)?;

        let cache = ComponentCache::new(config.cache.clone(), &engine)?;
        let ticker = Ticker::start(&engine, config.epoch_tick);
        Ok(Self {
            inner: Arc::new(Inner {
                limits: Arc::new(config.limits.clone()),
                engine,
                config,
                agent_linker,
                policy_linker,
                cache,
                live: AtomicUsize::new(0),
                next_id: AtomicU64::new(1),
                _ticker: ticker,
            }),
        })
    }

    /// Compiles (or fetches from the cache) an agent component and prepares it
    /// for instantiation (`InstancePre`). CPU-heavy on a cache miss: call it
    /// from a blocking context.
    pub fn load_agent(&self, bytes: &[u8]) -> Result<AgentComponent, RuntimeError> {
        let (component, hash) = self.inner.cache.get_or_compile(&self.inner.engine, bytes)?;
        AgentComponent::new(self.inner.clone(), &component, hash)
    }

    /// Compiles (or fetches) a metadata-policy component (`policy` world).
    pub fn load_policy(&self, bytes: &[u8]) -> Result<PolicyComponent, RuntimeError> {
        let (component, _) = self.inner.cache.get_or_compile(&self.inner.engine, bytes)?;
        PolicyComponent::new(self.inner.clone(), &component)
    }

    /// Reads and loads an agent component file.
    pub fn load_agent_file(&self, path: impl AsRef<std::path::Path>) -> Result<AgentComponent, RuntimeError> {
        let path = path.as_ref();
        let bytes =
            std::fs::read(path).map_err(|source| RuntimeError::Io { path: path.display().to_string(), source })?;
        self.load_agent(&bytes)
    }

    /// Guest stores alive right now (agents and policy instances). Back to its
    /// baseline once every agent has ended: nothing leaks per agent.
    pub fn live_guests(&self) -> usize {
        self.inner.live.load(Ordering::Relaxed)
    }

    /// The configuration it was built with.
    pub fn config(&self) -> &RuntimeConfig {
        &self.inner.config
    }
}
