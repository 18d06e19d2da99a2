//! [`Runtime`], the façade: builds one wasmtime `Engine` (pooling allocator,
//! copy-on-write memory images, epoch interruption driven by a ticker thread),
//! the linkers of the two worlds and the compiled-component cache, and loads
//! components from it. What the runtime shares with the components and agents
//! it makes is in `shared.rs`.

use std::sync::Arc;

use wasmtime::component::Linker;
use wasmtime::{Config, Engine, InstanceAllocationStrategy, PoolingAllocationConfig};

use super::agent::AgentComponent;
use super::cache::ComponentCache;
use super::config::RuntimeConfig;
use super::exit::RuntimeError;
use super::host;
use super::policy::PolicyComponent;
use super::shared::Inner;

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
        Ok(Self { inner: Arc::new(Inner::new(engine, config, agent_linker, policy_linker, cache)) })
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
        self.inner.live_stores()
    }

    /// The configuration it was built with.
    pub fn config(&self) -> &RuntimeConfig {
        &self.inner.config
    }
}
