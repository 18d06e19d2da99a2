//! [`AgentExit`]: why an agent stopped, and [`RuntimeError`]: why the runtime
//! could not load or start one.

use std::time::Duration;

/// Why an agent stopped. Every way a guest can end is one of these; none of them
/// affects the host or other agents.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum AgentExit {
    /// `run` returned `ok`.
    #[error("finished")]
    Finished,
    /// `run` returned `err` with this text.
    #[error("failed: {message}")]
    Failed {
        /// The guest's reason (truncated).
        message: String,
    },
    /// The guest trapped (a panic, `unreachable`, an out-of-bounds access, an
    /// invalid resource handle, a host contract violation).
    #[error("trapped: {message}")]
    Trap {
        /// The trap and, when the guest printed one, its last stderr lines.
        message: String,
    },
    /// The guest computed for longer than its budget without waiting once.
    #[error("CPU deadline: ran {budget:?} without waiting")]
    Deadline {
        /// The budget it exceeded.
        budget: Duration,
    },
    /// The guest tried to grow its memory past the limit.
    #[error("memory limit: wanted {requested} bytes, limit {limit}")]
    MemoryLimit {
        /// Bytes of linear memory it asked for in total.
        requested: usize,
        /// The limit.
        limit: usize,
    },
    /// The guest recursed past its stack.
    #[error("stack overflow")]
    StackOverflow,
    /// The guest made too many host calls without waiting once.
    #[error("host-call flood: {calls} calls without waiting")]
    CallFlood {
        /// The cap it hit.
        calls: u32,
    },
    /// The guest exceeded a resource limit the host enforces by trapping (live
    /// resources, iterators).
    #[error("resource limit: {what}")]
    ResourceLimit {
        /// Which limit.
        what: String,
    },
    /// The host stopped the agent.
    #[error("stopped by the host")]
    Stopped,
}

/// Why the runtime could not be built, or a component loaded or instantiated.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum RuntimeError {
    /// The engine configuration was refused.
    #[error("engine: {0}")]
    Engine(String),
    /// The bytes are not a valid component, or compiling it failed.
    #[error("compiling the component: {0}")]
    Compile(String),
    /// The component imports something this host doesn't provide, or doesn't
    /// export the world's interface.
    #[error("linking the component: {0}")]
    Link(String),
    /// Instantiation failed (pool exhausted, a limit hit during start-up, a trap
    /// in the component's start function).
    #[error("instantiating the component: {0}")]
    Instantiate(String),
    /// Reading a component file or the cache directory failed.
    #[error("{path}: {source}")]
    Io {
        /// The file.
        path: String,
        /// The error.
        source: std::io::Error,
    },
}

/// Truncates `s` to at most `max` bytes on a char boundary.
pub(crate) fn truncate(mut s: String, max: usize) -> String {
    if s.len() > max {
        let mut end = max;
        while !s.is_char_boundary(end) {
            end -= 1;
        }
        s.truncate(end);
        s.push('…');
    }
    s
}
