//! [`Dispatcher`]: `metered serve --agent AGENT.wasm@PATTERN` — starts an
//! agent in each channel matching a pattern when its first peer joins, and
//! stops it when the last one (other than agents) leaves.

use std::collections::{HashMap, HashSet};
use std::sync::Arc;
use std::time::Duration;

use parking_lot::Mutex;
use serde_json::Value;
use tokio::sync::broadcast::error::RecvError;

use super::PeerRoomHost;
use super::Presence;
use metered_protocol::ChannelPattern;
use metered_runtime::{
    AgentComponent, AgentInfo, AgentReport, AgentSpec, AgentStopper, BoxFuture, RoomError, RoomHost, RoomSession,
    SourceHost,
};

/// How often the dispatcher re-checks every channel it manages (covers a
/// lagged presence feed and agents that ended on their own).
const SWEEP: Duration = Duration::from_secs(2);

/// One `--agent` rule.
#[derive(Clone)]
pub struct AgentRule {
    /// The compiled agent.
    pub component: AgentComponent,
    /// Channels it serves.
    pub pattern: ChannelPattern,
    /// Its config (a JSON object; `"channel"` is set per channel).
    pub config: Value,
    /// A name for logs (the file name).
    pub name: String,
    /// Where its `player.open` goes (`NoSources`: every open refused).
    pub sources: Arc<dyn SourceHost>,
}

struct Running {
    stopper: AgentStopper,
    task: tokio::task::JoinHandle<AgentReport>,
}

/// Watches presence and runs agents per [`AgentRule`].
pub struct Dispatcher {
    task: tokio::task::JoinHandle<()>,
}

/// Records the peer ids agents join with (they don't count as occupants).
struct Recording {
    inner: PeerRoomHost,
    agents: Arc<Mutex<HashSet<String>>>,
}

impl RoomHost for Recording {
    fn join<'a>(
        &'a self,
        agent: &'a AgentInfo,
        channel: &'a str,
    ) -> BoxFuture<'a, Result<Box<dyn RoomSession>, RoomError>> {
        Box::pin(async move {
            let session = self.inner.join(agent, channel).await?;
            self.agents.lock().insert(session.peer_id().to_owned());
            Ok(session)
        })
    }
}

impl Dispatcher {
    /// Starts dispatching agents to `tenant`'s channels as `presence`
    /// reports peers; agents join with `host` (credential and URL of the
    /// server).
    pub fn start(presence: Arc<dyn Presence>, tenant: String, host: PeerRoomHost, rules: Vec<AgentRule>) -> Self {
        let task = tokio::spawn(run(presence, tenant, host, rules));
        Self { task }
    }

    /// Stops dispatching and stops every agent (bounded).
    pub async fn shutdown(self) {
        self.task.abort();
        let _ = self.task.await;
    }
}

async fn run(presence: Arc<dyn Presence>, tenant: String, host: PeerRoomHost, rules: Vec<AgentRule>) {
    let agents = Arc::new(Mutex::new(HashSet::new()));
    let mut owned = Owned(HashMap::new());
    let running = &mut owned.0;
    let mut changes = presence.changes();
    let mut sweep = tokio::time::interval(SWEEP);
    loop {
        let touched: Vec<Arc<str>> = tokio::select! {
            change = changes.recv() => match change {
                Ok(c) if *c.tenant == *tenant => vec![c.channel],
                Ok(_) => continue,
                Err(RecvError::Lagged(n)) => {
                    tracing::warn!(target: "metered_realtime::hosting", missed = n, "presence feed lagged; re-checking");
                    running.keys().map(|(_, c)| c.clone()).collect()
                }
                Err(RecvError::Closed) => break,
            },
            _ = sweep.tick() => running.keys().map(|(_, c)| c.clone()).collect(),
        };
        for channel in touched {
            let occupants: Vec<String> = presence.channel_peers(&tenant, &channel);
            let humans = {
                let agents = agents.lock();
                occupants.iter().filter(|p| !agents.contains(*p)).count()
            };
            for (i, rule) in rules.iter().enumerate().filter(|(_, r)| r.pattern.matches(&channel)) {
                let key = (i, channel.clone());
                if running.get(&key).is_some_and(|r| r.task.is_finished())
                    && let Some(done) = running.remove(&key)
                    && let Ok(report) = done.task.await
                {
                    tracing::info!(target: "metered_realtime::hosting", agent = %report.id, channel = %channel, exit = %report.exit, "agent ended");
                }
                match (humans > 0, running.get(&key)) {
                    (true, None) => {
                        let mut config = rule.config.clone();
                        if let Some(obj) = config.as_object_mut() {
                            obj.insert("channel".into(), Value::String(channel.to_string()));
                        }
                        let room = Arc::new(Recording { inner: host.clone().only(&channel), agents: agents.clone() });
                        match rule
                            .component
                            .spawn(AgentSpec::new(config.to_string()).room(room).sources(rule.sources.clone()))
                            .await
                        {
                            Ok(handle) => {
                                tracing::info!(target: "metered_realtime::hosting", agent = %handle.id(), rule = %rule.name, channel = %channel, "agent started");
                                let stopper = handle.stopper();
                                running.insert(key, Running { stopper, task: tokio::spawn(handle.join()) });
                            }
                            Err(e) => {
                                tracing::warn!(target: "metered_realtime::hosting", rule = %rule.name, channel = %channel, "agent not started: {e}");
                            }
                        }
                    }
                    (false, Some(r)) => {
                        tracing::info!(target: "metered_realtime::hosting", rule = %rule.name, channel = %channel, "last peer left: stopping the agent");
                        r.stopper.stop();
                    }
                    _ => {}
                }
            }
        }
        // Forget agent peer ids no longer present anywhere we manage.
        if agents.lock().len() > 4 * running.len() + 16 {
            let present: HashSet<String> =
                running.keys().flat_map(|(_, c)| presence.channel_peers(&tenant, c)).collect();
            agents.lock().retain(|p| present.contains(p));
        }
    }
}

/// The running agents; stopped when the dispatcher goes away.
struct Owned(HashMap<(usize, Arc<str>), Running>);

impl Drop for Owned {
    fn drop(&mut self) {
        for r in self.0.values() {
            r.stopper.stop();
        }
    }
}
