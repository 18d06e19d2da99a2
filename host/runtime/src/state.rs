//! [`GuestState`]: the data of one guest's `Store` — its WASI context (nothing
//! inherited), resource table, limits, CPU meter, room access and metadata
//! gate — and how a failed guest call becomes an [`AgentExit`]
//! ([`GuestState::classify`], from what the store recorded).

use std::future::Future;
use std::sync::Arc;

use wasmtime::component::{Resource, ResourceTable};
use wasmtime::{ResourceLimiter, Trap, UpdateDeadline};
use wasmtime_wasi::{WasiCtx, WasiCtxView, WasiView};

use super::config::AgentLimits;
use super::exit::{AgentExit, truncate};
use super::gate::MetadataGate;
use super::room_host::{AgentInfo, RoomHost};
use super::source_host::SourceHost;
use super::stdio::GuestOutput;
use metered_audio::PacingTimer;

/// Counts guest CPU and host calls since the guest last waited.
///
/// The CPU budget is counted in epoch ticks *observed while the guest runs*: the
/// epoch callback fires at most once per tick while guest code executes, and a
/// guest that yielded (or was descheduled) counts one tick on resuming, so a
/// loaded machine doesn't eat a guest's budget. Waiting in a host call (one that
/// really blocked) refills it.
#[derive(Debug)]
pub(crate) struct Meter {
    ticks: u32,
    budget_ticks: u32,
    calls: u32,
    max_calls: u32,
    waited: bool,
    /// `log` bytes left until the next wait.
    pub(crate) log_bytes: usize,
    log_budget: usize,
}

impl Meter {
    pub(crate) fn new(budget_ticks: u32, max_calls: u32, log_budget: usize) -> Self {
        Self { ticks: 0, budget_ticks, calls: 0, max_calls, waited: false, log_bytes: log_budget, log_budget }
    }

    /// A host call was made; `Err` once the guest floods calls without waiting.
    pub(crate) fn call(&mut self) -> Result<(), AgentExit> {
        self.calls += 1;
        if self.calls > self.max_calls { Err(AgentExit::CallFlood { calls: self.max_calls }) } else { Ok(()) }
    }

    /// A host call blocked: the guest was idle, its budgets refill.
    pub(crate) fn waited(&mut self) {
        self.ticks = 0;
        self.calls = 0;
        self.waited = true;
        self.log_bytes = self.log_budget;
    }

    /// Starts a new guest call (an export call) with a full budget.
    pub(crate) fn reset(&mut self) {
        self.ticks = 0;
        self.calls = 0;
        self.waited = false;
    }

    /// The epoch reached this guest's deadline while it ran.
    fn on_epoch(&mut self) -> Option<UpdateDeadline> {
        if std::mem::take(&mut self.waited) {
            // First tick after a wait: cheap, no yield.
            self.ticks = 1;
            return Some(UpdateDeadline::Continue(1));
        }
        self.ticks += 1;
        // Yield so a spinning guest never holds an executor thread for more
        // than a tick: other agents keep their schedule.
        (self.ticks <= self.budget_ticks).then_some(UpdateDeadline::Yield(1))
    }
}

/// Runs `fut`, and says whether it blocked (returned `Pending` at least once).
///
/// The future runs outside tokio's cooperative budget, so a `Pending` always
/// means a real wait, never a forced yield that a call flood could use to
/// refill its budget.
pub(crate) async fn tracked<F: Future>(fut: F) -> (F::Output, bool) {
    let mut fut = std::pin::pin!(tokio::task::unconstrained(fut));
    let mut waited = false;
    let out = std::future::poll_fn(|cx| {
        let poll = fut.as_mut().poll(cx);
        waited |= poll.is_pending();
        poll
    })
    .await;
    (out, waited)
}

/// Memory, table and instance limits of one store. Unlike
/// `StoreLimits::memory_size`, the memory cap is on the total of all the
/// store's linear memories.
#[derive(Debug)]
pub(crate) struct Limiter {
    memory_total: usize,
    memory_limit: usize,
    /// Total a refused growth asked for.
    pub(crate) memory_denied: Option<usize>,
    table_elements: usize,
    instances: usize,
    tables: usize,
    memories: usize,
}

impl Limiter {
    pub(crate) fn new(limits: &AgentLimits) -> Self {
        Self {
            memory_total: 0,
            memory_limit: limits.memory_bytes,
            memory_denied: None,
            table_elements: limits.table_elements,
            instances: limits.instances,
            tables: limits.tables,
            memories: limits.memories,
        }
    }
}

impl Limiter {
    /// Linear memory of every memory of the store, bytes.
    pub(crate) fn memory_total(&self) -> usize {
        self.memory_total
    }
}

impl ResourceLimiter for Limiter {
    fn memory_growing(&mut self, current: usize, desired: usize, _maximum: Option<usize>) -> wasmtime::Result<bool> {
        let total = self.memory_total.saturating_sub(current).saturating_add(desired);
        if total > self.memory_limit {
            self.memory_denied = Some(total);
            return Ok(false);
        }
        self.memory_total = total;
        Ok(true)
    }

    fn table_growing(&mut self, _current: usize, desired: usize, _maximum: Option<usize>) -> wasmtime::Result<bool> {
        Ok(desired <= self.table_elements)
    }

    fn instances(&self) -> usize {
        self.instances
    }

    fn tables(&self) -> usize {
        self.tables
    }

    fn memories(&self) -> usize {
        self.memories
    }
}

/// Table slots beyond [`AgentLimits::resources`] for what the host pushes
/// itself (pollables, WASI streams).
const TABLE_HEADROOM: usize = 64;

/// Live resources of each kind this agent holds (for per-agent caps).
#[derive(Debug, Default)]
pub(crate) struct Counts {
    pub(crate) resources: usize,
    pub(crate) audio_sources: usize,
    pub(crate) players: usize,
    pub(crate) frame_iterators: usize,
}

/// The data of one guest's store.
pub(crate) struct GuestState {
    pub(crate) agent: AgentInfo,
    wasi: WasiCtx,
    pub(crate) table: ResourceTable,
    pub(crate) limiter: Limiter,
    pub(crate) meter: Meter,
    pub(crate) limits: Arc<AgentLimits>,
    pub(crate) room: Arc<dyn RoomHost>,
    /// Where `player.open` goes.
    pub(crate) sources: Arc<dyn SourceHost>,
    /// The agent's metadata policy (none: metadata passes after shape and
    /// size checks).
    pub(crate) policy: Option<Box<dyn MetadataGate>>,
    pub(crate) counts: Counts,
    pub(crate) stderr: GuestOutput,
    /// Which clock paces the agent's audio sources.
    pub(crate) pacing: PacingTimer,
    /// Why the guest must end, recorded by whoever trapped it.
    pub(crate) exit: Option<AgentExit>,
    /// Table indices of the rooms and frame iterators the guest holds, in
    /// the order it made them: what a `reactor` agent is delivered from.
    pub(crate) live: Live,
}

/// The rooms and frame iterators a guest holds (table indices).
#[derive(Debug, Default)]
pub(crate) struct Live {
    pub(crate) rooms: Vec<u32>,
    pub(crate) iterators: Vec<u32>,
    /// Where the next delivery scan starts (round robin).
    pub(crate) next: usize,
}

impl GuestState {
    pub(crate) fn new(
        agent: AgentInfo,
        limits: Arc<AgentLimits>,
        budget_ticks: u32,
        room: Arc<dyn RoomHost>,
        sources: Arc<dyn SourceHost>,
        policy: Option<Box<dyn MetadataGate>>,
        pacing: PacingTimer,
    ) -> Self {
        let stdout = GuestOutput::new(agent.id.clone(), "stdout");
        let stderr = GuestOutput::new(agent.id.clone(), "stderr");
        // Nothing inherited: no environment, arguments, preopened directories or
        // network; stdin is closed; stdout/stderr go to `tracing`.
        let wasi = WasiCtx::builder()
            .stdout(stdout)
            .stderr(stderr.clone())
            .allow_tcp(false)
            .allow_udp(false)
            .allow_ip_name_lookup(false)
            .build();
        // Every resource counts, including the pollables and WASI handles the
        // host hands out on the guest's behalf (a guest leaking pollables must
        // hit a wall, not grow host memory): the typed cap plus some headroom.
        let mut table = ResourceTable::new();
        table.set_max_capacity(limits.resources.saturating_add(TABLE_HEADROOM));
        Self {
            agent,
            wasi,
            table,
            limiter: Limiter::new(&limits),
            meter: Meter::new(budget_ticks, limits.calls_per_event, limits.message_bytes * 16),
            limits,
            room,
            sources,
            policy,
            counts: Counts::default(),
            stderr,
            pacing,
            exit: None,
            live: Live::default(),
        }
    }

    /// Every host call starts here: counts it, and traps a call flood.
    pub(crate) fn enter(&mut self) -> wasmtime::Result<()> {
        match self.meter.call() {
            Ok(()) => Ok(()),
            Err(exit) => Err(self.end_with(exit)),
        }
    }

    /// Records why the guest ends and returns the trap that ends it.
    pub(crate) fn end_with(&mut self, exit: AgentExit) -> wasmtime::Error {
        let message = exit.to_string();
        self.exit.get_or_insert(exit);
        wasmtime::Error::msg(message)
    }

    /// Runs a host future that may block the guest; if it did, the guest's
    /// budgets refill.
    pub(crate) async fn blocking<F: Future>(&mut self, fut: F) -> F::Output {
        let (out, waited) = tracked(fut).await;
        if waited {
            self.meter.waited();
        }
        out
    }

    /// The epoch callback: `Err` ends the guest with [`AgentExit::Deadline`].
    pub(crate) fn on_epoch(&mut self, budget: std::time::Duration) -> wasmtime::Result<UpdateDeadline> {
        match self.meter.on_epoch() {
            Some(update) => Ok(update),
            None => Err(self.end_with(AgentExit::Deadline { budget })),
        }
    }

    /// Why a guest call failed, from what the host recorded (an exit, a
    /// refused memory growth) and the error itself (a stack overflow, a full
    /// table, any other trap, with the guest's last stderr lines).
    pub(crate) fn classify(&mut self, err: &wasmtime::Error) -> AgentExit {
        if let Some(exit) = self.exit.take() {
            return exit;
        }
        if let Some(requested) = self.limiter.memory_denied {
            return AgentExit::MemoryLimit { requested, limit: self.limits.memory_bytes };
        }
        if let Some(Trap::StackOverflow) = err.downcast_ref::<Trap>() {
            return AgentExit::StackOverflow;
        }
        if let Some(wasmtime::component::ResourceTableError::Full) =
            err.chain().find_map(|e| e.downcast_ref::<wasmtime::component::ResourceTableError>())
        {
            let what = format!("more than {} live resources (pollables included)", self.limits.resources);
            return AgentExit::ResourceLimit { what };
        }
        // The root cause says what happened ("unknown handle index 3", a trap
        // code); the top error is wasmtime's wasm backtrace.
        let mut message = match err.downcast_ref::<Trap>() {
            Some(trap) => format!("{trap}"),
            None => err.root_cause().to_string(),
        };
        let stderr = self.stderr.tail();
        if !stderr.is_empty() {
            message.push_str("; guest stderr: ");
            message.push_str(&stderr);
        }
        AgentExit::Trap { message: truncate(message, 2048) }
    }

    /// Adds a resource to the table, within the per-agent cap on live resources.
    pub(crate) fn push<T: Send + 'static>(&mut self, rep: T) -> wasmtime::Result<Resource<T>> {
        if self.counts.resources >= self.limits.resources {
            let what = format!("more than {} live resources", self.limits.resources);
            return Err(self.end_with(AgentExit::ResourceLimit { what }));
        }
        let res = self.table.push(rep)?;
        self.counts.resources += 1;
        Ok(res)
    }

    /// Removes a resource the guest dropped.
    pub(crate) fn delete<T: 'static>(&mut self, res: Resource<T>) -> wasmtime::Result<T> {
        let rep = self.table.delete(res)?;
        self.counts.resources = self.counts.resources.saturating_sub(1);
        Ok(rep)
    }
}

impl WasiView for GuestState {
    fn ctx(&mut self) -> WasiCtxView<'_> {
        WasiCtxView { ctx: &mut self.wasi, table: &mut self.table }
    }
}

impl wasmtime_wasi_io::IoView for GuestState {
    fn table(&mut self) -> &mut ResourceTable {
        &mut self.table
    }
}
