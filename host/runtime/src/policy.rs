//! Metadata policies: a `policy`-world component, run in its own store with a
//! small CPU budget per call, that decides which stream metadata crosses the
//! boundary. It fails closed: a trap, a deadline, an exhausted limit or
//! malformed output all reject. An agent's [`PolicyGate`] is its
//! [`MetadataGate`].

use std::sync::Arc;

use wasmtime::Store;
use wasmtime::component::{Component, InstancePre};

use super::bindings::metadata_policy::{Guest, GuestIndices, Inbound};
use super::exit::{AgentExit, RuntimeError, truncate};
use super::gate::{MetadataGate, Verdict};
use super::host::types::kind_to_wit;
use super::room_host::{AgentInfo, BoxFuture, NoRoom};
use super::shared::{Inner, LiveGuard};
use super::source_host::NoSources;
use super::state::GuestState;
use metered_audio::PacingTimer;
use metered_media::{MediaKind, StreamMetadata};

/// A compiled metadata-policy component, ready to instantiate. Cheap to clone.
#[derive(Clone)]
pub struct PolicyComponent {
    inner: Arc<Inner>,
    pre: InstancePre<GuestState>,
    indices: Arc<GuestIndices>,
}

impl std::fmt::Debug for PolicyComponent {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PolicyComponent").finish_non_exhaustive()
    }
}

impl PolicyComponent {
    pub(crate) fn new(inner: Arc<Inner>, component: &Component) -> Result<Self, RuntimeError> {
        super::host::check_imports(&inner.engine, component).map_err(RuntimeError::Link)?;
        let pre = inner.policy_linker.instantiate_pre(component).map_err(|e| RuntimeError::Link(format!("{e:?}")))?;
        let indices = GuestIndices::new(&pre).map_err(|e| RuntimeError::Link(format!("{e:?}")))?;
        Ok(Self { inner, pre, indices: Arc::new(indices) })
    }

    /// A fresh instance in its own store.
    pub async fn instantiate(&self) -> Result<PolicyInstance, RuntimeError> {
        let agent = AgentInfo { id: self.inner.agent_id("policy") };
        let budget = self.inner.limits.policy_call_budget;
        let state = GuestState::new(
            agent,
            self.inner.limits.clone(),
            self.inner.ticks(budget),
            Arc::new(NoRoom),
            Arc::new(NoSources),
            None,
            PacingTimer::Precise,
        );
        let (mut store, live) = self.inner.new_store(state, budget);
        let instance =
            self.pre.instantiate_async(&mut store).await.map_err(|e| RuntimeError::Instantiate(format!("{e:?}")))?;
        let guest = self.indices.load(&mut store, &instance).map_err(|e| RuntimeError::Link(format!("{e:?}")))?;
        Ok(PolicyInstance { store, guest, failed: None, _live: live })
    }
}

/// One instance of a policy. After a failure it refuses everything; make a new
/// one (the gate an agent checks metadata through does this itself).
pub struct PolicyInstance {
    store: Store<GuestState>,
    guest: Guest,
    failed: Option<AgentExit>,
    _live: LiveGuard,
}

impl std::fmt::Debug for PolicyInstance {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PolicyInstance").field("failed", &self.failed).finish_non_exhaustive()
    }
}

impl PolicyInstance {
    /// Why the instance failed, if it did.
    pub fn failure(&self) -> Option<&AgentExit> {
        self.failed.as_ref()
    }

    /// The instance's linear memory, bytes (all its memories).
    pub fn memory_bytes(&self) -> usize {
        self.store.data().limiter.memory_total()
    }

    fn start_call(&mut self) -> Result<(), Verdict> {
        if let Some(exit) = &self.failed {
            return Err(Verdict::Reject { reason: format!("policy failed earlier: {exit}") });
        }
        self.store.data_mut().meter.reset();
        self.store.set_epoch_deadline(1);
        Ok(())
    }

    /// The verdict for a call's outcome; a trap poisons the instance.
    fn finish(&mut self, outcome: wasmtime::Result<Result<String, String>>) -> Verdict {
        match outcome {
            Ok(Ok(text)) => match StreamMetadata::parse(&text, self.store.data().limits.metadata_bytes) {
                Ok(m) => Verdict::Accept(m),
                Err(e) => Verdict::Reject { reason: format!("policy returned invalid metadata: {e}") },
            },
            Ok(Err(reason)) => Verdict::Reject { reason: truncate(reason, 512) },
            Err(e) => {
                let exit = self.store.data_mut().classify(&e);
                let reason = format!("policy failed: {exit}");
                self.failed = Some(exit);
                Verdict::Reject { reason }
            }
        }
    }

    /// Checks metadata announced by an untrusted remote peer.
    pub async fn check_inbound(
        &mut self,
        peer_id: &str,
        stream_id: &str,
        kind: MediaKind,
        metadata: &StreamMetadata,
    ) -> Verdict {
        if let Err(v) = self.start_call() {
            return v;
        }
        let announced = Inbound {
            peer_id: peer_id.to_owned(),
            stream_id: stream_id.to_owned(),
            kind: kind_to_wit(kind),
            metadata: serde_json::to_string(metadata.as_map()).unwrap_or_default(),
        };
        let outcome = self.guest.call_check_inbound(&mut self.store, &announced).await;
        self.finish(outcome)
    }

    /// Decides the metadata this side announces for `stream_id`.
    pub async fn decide_outbound(&mut self, stream_id: &str, proposed: &StreamMetadata) -> Verdict {
        if let Err(v) = self.start_call() {
            return v;
        }
        let proposed = serde_json::to_string(proposed.as_map()).unwrap_or_default();
        let outcome = self.guest.call_decide_outbound(&mut self.store, stream_id, &proposed).await;
        self.finish(outcome)
    }
}

/// An agent's policy, as its [`MetadataGate`]: instantiated on first use,
/// replaced after a failure.
pub(crate) struct PolicyGate {
    component: PolicyComponent,
    instance: Option<PolicyInstance>,
}

impl PolicyGate {
    /// A gate over `component`; nothing is instantiated until the first check.
    pub(crate) fn new(component: PolicyComponent) -> Self {
        Self { component, instance: None }
    }

    /// The live instance: a new one when there is none or the last one failed.
    async fn instance(&mut self) -> Result<&mut PolicyInstance, Verdict> {
        if self.instance.as_ref().is_some_and(|i| i.failed.is_some()) {
            self.instance = None;
        }
        if self.instance.is_none() {
            let instance = self
                .component
                .instantiate()
                .await
                .map_err(|e| Verdict::Reject { reason: format!("policy unavailable: {e}") })?;
            self.instance = Some(instance);
        }
        self.instance.as_mut().ok_or_else(|| Verdict::Reject { reason: "policy unavailable".into() })
    }
}

impl MetadataGate for PolicyGate {
    fn check_inbound<'a>(
        &'a mut self,
        peer_id: &'a str,
        stream_id: &'a str,
        kind: MediaKind,
        metadata: &'a StreamMetadata,
    ) -> BoxFuture<'a, Verdict> {
        Box::pin(async move {
            match self.instance().await {
                Ok(i) => i.check_inbound(peer_id, stream_id, kind, metadata).await,
                Err(v) => v,
            }
        })
    }

    fn decide_outbound<'a>(&'a mut self, stream_id: &'a str, proposed: &'a StreamMetadata) -> BoxFuture<'a, Verdict> {
        Box::pin(async move {
            match self.instance().await {
                Ok(i) => i.decide_outbound(stream_id, proposed).await,
                Err(v) => v,
            }
        })
    }
}
