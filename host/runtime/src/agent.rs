//! Agents: [`AgentComponent`] (a compiled agent with its `InstancePre`),
//! [`Agent`] (one instance in its own store) and [`AgentHandle`] (a running
//! agent on a tokio task).

use std::sync::Arc;

use tokio::sync::Notify;
use wasmtime::Store;
use wasmtime::component::{Component, InstancePre};

use super::bindings::{handler, run};
use super::cache::ComponentHash;
use super::exit::{AgentExit, RuntimeError, truncate};
use super::gate::MetadataGate;
use super::policy::{PolicyComponent, PolicyGate};
use super::room_host::{AgentInfo, NoRoom, RoomHost};
use super::shared::{Inner, LiveGuard};
use super::source_host::{NoSources, SourceHost};
use super::state::GuestState;
use metered_audio::PacingTimer;

/// What to run an agent with.
#[derive(Clone)]
pub struct AgentSpec {
    /// The operator's JSON config text, passed to `run` as is.
    pub config: String,
    /// Where `room.join` goes.
    pub room: Arc<dyn RoomHost>,
    /// Where `player.open` goes (default [`NoSources`]: every open refused).
    pub sources: Arc<dyn SourceHost>,
    /// The metadata policy applied to the agent's inbound and outbound
    /// metadata (none: metadata passes after shape and size checks).
    pub policy: Option<PolicyComponent>,
    /// The clock that paces the agent's audio sources: the precise real-time
    /// timer (default), or tokio's clock, which follows `tokio::time::pause`
    /// (the offline harness runs agents on virtual time this way).
    pub pacing: PacingTimer,
}

impl std::fmt::Debug for AgentSpec {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("AgentSpec").field("config", &self.config).field("policy", &self.policy.is_some()).finish()
    }
}

impl AgentSpec {
    /// A spec with this config, no room and no policy.
    pub fn new(config: impl Into<String>) -> Self {
        Self {
            config: config.into(),
            room: Arc::new(NoRoom),
            sources: Arc::new(NoSources),
            policy: None,
            pacing: PacingTimer::Precise,
        }
    }

    /// Sets the room host.
    pub fn room(mut self, room: Arc<dyn RoomHost>) -> Self {
        self.room = room;
        self
    }

    /// Sets the source host.
    pub fn sources(mut self, sources: Arc<dyn SourceHost>) -> Self {
        self.sources = sources;
        self
    }

    /// Sets the metadata policy.
    pub fn policy(mut self, policy: PolicyComponent) -> Self {
        self.policy = Some(policy);
        self
    }
}

/// How an agent ended.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct AgentReport {
    /// The agent's id (as in its log records).
    pub id: Arc<str>,
    /// Why it stopped.
    pub exit: AgentExit,
    /// The agent's linear memory when it stopped, bytes (all its memories;
    /// they never shrink, so this is also its peak).
    pub memory_bytes: usize,
}

/// A compiled agent, linked and ready to instantiate. Cheap to clone.
#[derive(Clone)]
pub struct AgentComponent {
    inner: Arc<Inner>,
    pre: InstancePre<GuestState>,
    indices: Arc<Indices>,
    hash: ComponentHash,
}

/// Which entry point a component exports.
enum Indices {
    /// `run` (world `agent`): the guest blocks in its own loop.
    Run(run::GuestIndices),
    /// `handler` (world `reactor`): the host calls the guest per event.
    Reactor(handler::GuestIndices),
}

/// An instance's entry point.
enum Entry {
    Run(run::Guest),
    Reactor(handler::Guest),
}

impl std::fmt::Debug for AgentComponent {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let hash: String = self.hash[..8].iter().map(|b| format!("{b:02x}")).collect();
        f.debug_struct("AgentComponent").field("sha256", &hash).finish_non_exhaustive()
    }
}

impl AgentComponent {
    pub(crate) fn new(inner: Arc<Inner>, component: &Component, hash: ComponentHash) -> Result<Self, RuntimeError> {
        super::host::check_imports(&inner.engine, component).map_err(RuntimeError::Link)?;
        let pre = inner.agent_linker.instantiate_pre(component).map_err(|e| RuntimeError::Link(format!("{e:?}")))?;
        let indices = match (run::GuestIndices::new(&pre), handler::GuestIndices::new(&pre)) {
            (Ok(run), _) => Indices::Run(run),
            (Err(_), Ok(reactor)) => Indices::Reactor(reactor),
            (Err(e), Err(_)) => {
                return Err(RuntimeError::Link(format!(
                    "the component exports neither `metered:realtime/run` (world agent) nor \
                     `metered:realtime/handler` (world reactor): {e:?}"
                )));
            }
        };
        Ok(Self { inner, pre, indices: Arc::new(indices), hash })
    }

    /// SHA-256 of the component's bytes.
    pub fn sha256(&self) -> [u8; 32] {
        self.hash
    }

    /// A fresh instance in its own store (pool slot, limits, CPU meter).
    pub async fn instantiate(&self, spec: AgentSpec) -> Result<Agent, RuntimeError> {
        let agent = AgentInfo { id: self.inner.agent_id("agent") };
        let budget = self.inner.limits.event_budget;
        let policy = spec.policy.map(|p| Box::new(PolicyGate::new(p)) as Box<dyn MetadataGate>);
        let ticks = self.inner.ticks(budget);
        let state = GuestState::new(
            agent.clone(),
            self.inner.limits.clone(),
            ticks,
            spec.room,
            spec.sources,
            policy,
            spec.pacing,
        );
        let (mut store, live) = self.inner.new_store(state, budget);
        let instance = match self.pre.instantiate_async(&mut store).await {
            Ok(instance) => instance,
            Err(e) => {
                let exit = store.data_mut().classify(&e);
                return Err(RuntimeError::Instantiate(format!("{exit}")));
            }
        };
        let link = |e: wasmtime::Error| RuntimeError::Link(format!("{e:?}"));
        let guest = match &*self.indices {
            Indices::Run(i) => Entry::Run(i.load(&mut store, &instance).map_err(link)?),
            Indices::Reactor(i) => Entry::Reactor(i.load(&mut store, &instance).map_err(link)?),
        };
        Ok(Agent { id: agent.id, config: spec.config, store, guest, _live: live })
    }

    /// Instantiates and runs the agent to its end in the current task.
    pub async fn run(&self, spec: AgentSpec) -> Result<AgentReport, RuntimeError> {
        Ok(self.instantiate(spec).await?.run().await)
    }

    /// Instantiates the agent and runs it on a new tokio task.
    pub async fn spawn(&self, spec: AgentSpec) -> Result<AgentHandle, RuntimeError> {
        let agent = self.instantiate(spec).await?;
        let id = agent.id.clone();
        let stop = Arc::new(Notify::new());
        let stopped = stop.clone();
        let task = tokio::spawn(async move { agent.run_until(stopped.notified()).await });
        Ok(AgentHandle { id, stop, task })
    }
}

/// One agent instance, not yet running.
pub struct Agent {
    id: Arc<str>,
    config: String,
    store: Store<GuestState>,
    guest: Entry,
    _live: LiveGuard,
}

impl std::fmt::Debug for Agent {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Agent").field("id", &self.id).finish_non_exhaustive()
    }
}

impl Agent {
    /// The agent's id.
    pub fn id(&self) -> &str {
        &self.id
    }

    /// Runs `run(config)` to its end; the store (and its pool slot) is released
    /// when this returns.
    pub async fn run(self) -> AgentReport {
        self.run_until(std::future::pending()).await
    }

    /// Runs until the guest ends or `stop` resolves.
    pub async fn run_until(mut self, stop: impl std::future::Future<Output = ()>) -> AgentReport {
        self.store.data_mut().meter.reset();
        self.store.set_epoch_deadline(1);
        let outcome = {
            let call = async {
                match &self.guest {
                    Entry::Run(guest) => guest.call_run(&mut self.store, &self.config).await,
                    Entry::Reactor(guest) => super::reactor::react(&mut self.store, guest, &self.config).await,
                }
            };
            tokio::select! {
                outcome = call => Some(outcome),
                () = stop => None,
            }
        };
        let exit = match outcome {
            None => AgentExit::Stopped,
            Some(Ok(Ok(()))) => AgentExit::Finished,
            Some(Ok(Err(message))) => AgentExit::Failed { message: truncate(message, 1024) },
            Some(Err(e)) => self.store.data_mut().classify(&e),
        };
        let memory_bytes = self.store.data().limiter.memory_total();
        match &exit {
            AgentExit::Finished | AgentExit::Stopped => {
                tracing::debug!(agent = %self.id, memory_bytes, "agent ended: {exit}")
            }
            _ => tracing::info!(agent = %self.id, memory_bytes, "agent ended: {exit}"),
        }
        AgentReport { id: self.id, exit, memory_bytes }
    }
}

/// Stops one agent (see [`AgentHandle::stopper`]). Cheap to clone.
#[derive(Debug, Clone)]
pub struct AgentStopper(Arc<Notify>);

impl AgentStopper {
    /// Asks the agent to stop, as [`AgentHandle::stop`] does.
    pub fn stop(&self) {
        self.0.notify_one();
    }
}

/// A running agent.
#[derive(Debug)]
pub struct AgentHandle {
    id: Arc<str>,
    stop: Arc<Notify>,
    task: tokio::task::JoinHandle<AgentReport>,
}

impl AgentHandle {
    /// The agent's id.
    pub fn id(&self) -> &str {
        &self.id
    }

    /// Asks the agent to stop: its call is abandoned at the next suspension
    /// point and its store dropped. [`AgentHandle::join`] then reports
    /// [`AgentExit::Stopped`].
    pub fn stop(&self) {
        self.stop.notify_one();
    }

    /// A handle that can stop the agent from elsewhere (a signal handler, a
    /// supervisor) while this one waits in [`AgentHandle::join`].
    pub fn stopper(&self) -> AgentStopper {
        AgentStopper(self.stop.clone())
    }

    /// Whether the agent has ended.
    pub fn is_finished(&self) -> bool {
        self.task.is_finished()
    }

    /// Waits for the agent to end.
    pub async fn join(self) -> AgentReport {
        let id = self.id.clone();
        match self.task.await {
            Ok(report) => report,
            Err(e) => AgentReport {
                id,
                exit: AgentExit::Trap { message: format!("agent task failed: {e}") },
                memory_bytes: 0,
            },
        }
    }
}
