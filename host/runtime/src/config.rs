//! [`RuntimeConfig`] and [`AgentLimits`]: the engine's capacity and what one
//! agent may use.

use std::path::PathBuf;
use std::time::Duration;

/// Where compiled components are kept between loads.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
#[non_exhaustive]
pub enum CacheConfig {
    /// Compile every time.
    None,
    /// Keep compiled components in memory for the life of the [`super::Runtime`].
    #[default]
    Memory,
    /// Also keep them on disk in this directory (created if missing), as
    /// `Component::serialize` artifacts keyed by the component's SHA-256 and the
    /// engine's configuration. The directory must be as trusted as the binary.
    Dir(PathBuf),
}

/// What one agent (one `Store`) may use. Exceeding any of these ends that agent
/// with a typed [`super::AgentExit`]; other agents are not affected.
#[derive(Debug, Clone, PartialEq)]
#[non_exhaustive]
pub struct AgentLimits {
    /// Total linear memory across the agent's memories, in bytes (default
    /// 128 MiB). The pooling allocator's per-memory slot is sized to this.
    pub memory_bytes: usize,
    /// Core instances per store (default 32; a Python component uses 14).
    pub instances: usize,
    /// Tables per store (default 32).
    pub tables: usize,
    /// Memories per store (default 4).
    pub memories: usize,
    /// Elements per table (default 20 000).
    pub table_elements: usize,
    /// CPU the guest may use between two waits (a host call that actually
    /// blocked), e.g. to handle one frame or one room event (default 100 ms:
    /// a JavaScript engine's full garbage collection takes 10-20 ms here and
    /// several times that on a loaded machine, which must not end the agent).
    pub event_budget: Duration,
    /// CPU a metadata-policy guest may use per call (default 10 ms).
    pub policy_call_budget: Duration,
    /// Host calls the guest may make without waiting once (default 10 000): a
    /// flood of calls that never block ends the agent.
    pub calls_per_event: u32,
    /// Bytes one `push` / `push-frame` may carry (default 1 MiB).
    pub push_bytes: usize,
    /// Cap on an audio source's `max-buffered-seconds` (default 10 s): with
    /// `push_bytes`, this bounds the pending audio an agent can queue.
    pub max_buffered_seconds: f64,
    /// Live audio sources per agent (default 8).
    pub audio_sources: usize,
    /// Live players (`sources.player`) per agent (default 4): each holds a
    /// decoder thread, a device or a socket.
    pub players: usize,
    /// Live frame iterators per agent (default 16).
    pub frame_iterators: usize,
    /// Live resources of any kind in the agent's table (default 1 024).
    pub resources: usize,
    /// Serialized stream metadata, bytes (default 8 KiB, the message cap).
    pub metadata_bytes: usize,
    /// Bytes of one `log` record or `send-data` payload (default 16 KiB).
    pub message_bytes: usize,
}

impl CacheConfig {
    /// The per-user disk cache the CLI uses: `$XDG_CACHE_HOME/metered-realtime/components`
    /// (else `$HOME/.cache/...`); in memory when neither is set. Compiling a
    /// Python or JS component takes seconds; loading it from here, milliseconds.
    pub fn user_default() -> Self {
        let base = std::env::var_os("XDG_CACHE_HOME")
            .filter(|v| !v.is_empty())
            .map(PathBuf::from)
            .or_else(|| std::env::var_os("HOME").filter(|v| !v.is_empty()).map(|h| PathBuf::from(h).join(".cache")));
        base.map_or(Self::Memory, |b| Self::Dir(b.join("metered-realtime").join("components")))
    }
}

impl Default for AgentLimits {
    fn default() -> Self {
        Self {
            memory_bytes: 128 << 20,
            instances: 32,
            tables: 32,
            memories: 4,
            table_elements: 20_000,
            event_budget: Duration::from_millis(100),
            policy_call_budget: Duration::from_millis(10),
            calls_per_event: 10_000,
            push_bytes: 1 << 20,
            max_buffered_seconds: 10.0,
            audio_sources: 8,
            players: 4,
            frame_iterators: 16,
            resources: 1_024,
            metadata_bytes: 8 << 10,
            message_bytes: 16 << 10,
        }
    }
}

/// The engine's configuration: capacity of the instance pool, timing and cache.
#[derive(Debug, Clone, PartialEq)]
#[non_exhaustive]
pub struct RuntimeConfig {
    /// Agents (component instances) that may be live at once (default 2 048):
    /// the pooling allocator reserves this many slots up front (virtual address
    /// space only; pages are committed on use).
    pub max_agents: u32,
    /// Limits of each agent.
    pub limits: AgentLimits,
    /// Epoch tick: the granularity of CPU deadlines (default 1 ms).
    pub epoch_tick: Duration,
    /// Native stack a guest may use, bytes (default 512 KiB); deeper recursion
    /// ends the agent with [`super::AgentExit::StackOverflow`].
    pub max_wasm_stack: usize,
    /// Compiled-component cache.
    pub cache: CacheConfig,
}

impl Default for RuntimeConfig {
    fn default() -> Self {
        Self {
            max_agents: 2_048,
            limits: AgentLimits::default(),
            epoch_tick: Duration::from_millis(1),
            max_wasm_stack: 512 << 10,
            cache: CacheConfig::Memory,
        }
    }
}

impl RuntimeConfig {
    /// Ticks of [`RuntimeConfig::epoch_tick`] in `budget`, at least 1.
    pub(crate) fn ticks(&self, budget: Duration) -> u32 {
        let tick = self.epoch_tick.as_nanos().max(1);
        u32::try_from(budget.as_nanos().div_ceil(tick)).unwrap_or(u32::MAX).max(1)
    }
}
