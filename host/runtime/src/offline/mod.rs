//! The offline harness: runs an agent against a PCM input on a virtual clock,
//! as fast as the CPU allows, and records what it publishes — what
//! `metered run AGENT.wasm --input in.wav --output out.wav` does, so guest
//! authors can test without a room. The same room works on the real clock
//! (tests run agents side by side with it).
//!
//! The virtual clock is a [`VirtualClock`] that moves to its next deadline
//! whenever the run's single-threaded executor has nothing left to do
//! ([`block_on_virtual`]): what tokio's paused time does, without
//! `tokio/test-util` in the binary.
//!
//! [`OfflineRoom`] has one virtual peer, `offline-input`, whose one audio track
//! plays the input (48 kHz stereo 20 ms frames, like a remote WebRTC track);
//! when it has played out the peer leaves and the room closes. Every audio
//! track an agent publishes is recorded as 48 kHz stereo s16.

mod wav;

use std::collections::VecDeque;
use std::path::Path;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Duration;

use parking_lot::Mutex;

pub use wav::{Pcm, WavError, read_wav, write_wav};

use super::agent::{AgentComponent, AgentSpec};
use super::config::RuntimeConfig;
use super::engine::Runtime;
use super::exit::{AgentExit, RuntimeError};
use super::policy::PolicyComponent;
use super::room_host::{AgentInfo, BoxFuture, RoomError, RoomEvent, RoomHost, RoomSession};
use metered_audio::{AudioSource, AudioSourceOptions, InputLayout, PacingTimer};
use metered_media::{Frame, MediaKind, MediaStreamTrack, StreamMetadata, Timer, VirtualClock};

/// The virtual peer's id.
pub const INPUT_PEER: &str = "offline-input";
/// Output rate of recordings.
pub const OUTPUT_RATE: u32 = 48_000;
/// Recorders start half a frame after the room opens, so an agent's frame
/// deadlines never tie with the input's on the virtual clock (deterministic
/// output), plus a jitter allowance of three frames on the real clock.
const RECORD_OFFSET: Duration = Duration::from_millis(70);

/// A published track and what it played.
#[derive(Debug, Clone, PartialEq)]
#[non_exhaustive]
pub struct Recording {
    /// The stream id it was published under.
    pub stream_id: String,
    /// The metadata it was published with.
    pub metadata: StreamMetadata,
    /// 48 kHz stereo s16 samples, from the moment recording started.
    pub pcm: Pcm,
}

struct Recorder {
    stream_id: String,
    metadata: StreamMetadata,
    samples: Arc<Mutex<Vec<i16>>>,
    task: tokio::task::JoinHandle<()>,
}

struct Shared {
    recorders: Vec<Recorder>,
}

/// A room with one virtual peer playing `input`; records what agents publish.
pub struct OfflineRoom {
    input: Arc<Pcm>,
    pacing: PacingTimer,
    timer: Arc<dyn Timer>,
    max_samples: usize,
    shared: Arc<Mutex<Shared>>,
}

impl std::fmt::Debug for OfflineRoom {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("OfflineRoom").field("input_secs", &self.input.duration_secs()).finish_non_exhaustive()
    }
}

impl OfflineRoom {
    /// A room playing `input` (mono or stereo), paced by `pacing`, recording at
    /// most `max_record` of each published track.
    pub fn new(input: Pcm, pacing: PacingTimer, max_record: Duration) -> Self {
        let max_samples = (max_record.as_secs_f64() * f64::from(OUTPUT_RATE)) as usize * 2;
        Self {
            input: Arc::new(input),
            timer: pacing.timer(),
            pacing,
            max_samples,
            shared: Arc::new(Mutex::new(Shared { recorders: vec![] })),
        }
    }

    /// Waits for every recorder to finish (its track ended or the cap was
    /// reached) and returns the recordings, in publication order.
    pub async fn recordings(&self) -> Vec<Recording> {
        let recorders = std::mem::take(&mut self.shared.lock().recorders);
        let mut out = Vec::with_capacity(recorders.len());
        for r in recorders {
            let _ = r.task.await;
            let samples = std::mem::take(&mut *r.samples.lock());
            out.push(Recording {
                stream_id: r.stream_id,
                metadata: r.metadata,
                pcm: Pcm { sample_rate: OUTPUT_RATE, channels: 2, samples },
            });
        }
        out
    }

    /// The recording so far of the `n`th published track (for live checks).
    pub fn snapshot(&self, n: usize) -> Option<Vec<i16>> {
        self.shared.lock().recorders.get(n).map(|r| r.samples.lock().clone())
    }

    fn input_track(&self) -> Result<AudioSource, RoomError> {
        let layout = if self.input.channels == 2 { InputLayout::Stereo } else { InputLayout::Mono };
        let opts = AudioSourceOptions {
            input_rate: self.input.sample_rate,
            input_layout: layout,
            max_buffered_seconds: (self.input.duration_secs() * 1.1 + 1.0).min(3600.0),
            timer: self.pacing.clone(),
        };
        AudioSource::new(opts).map_err(|e| RoomError::Unsupported(format!("input: {e}")))
    }
}

impl RoomHost for OfflineRoom {
    fn join<'a>(
        &'a self,
        _agent: &'a AgentInfo,
        _channel: &'a str,
    ) -> BoxFuture<'a, Result<Box<dyn RoomSession>, RoomError>> {
        Box::pin(async move {
            let source = self.input_track()?;
            source.push(&self.input.to_le_bytes()).await;
            source.end();
            let metadata = StreamMetadata::role_label("file", "offline input").unwrap_or_default();
            let track: Arc<dyn MediaStreamTrack> = Arc::new(source.clone());
            let events = VecDeque::from([
                RoomEvent::PeerJoined { peer_id: INPUT_PEER.into() },
                RoomEvent::Track { peer_id: INPUT_PEER.into(), stream_id: INPUT_PEER.into(), track, metadata },
            ]);
            let played: BoxFuture<'static, ()> = Box::pin(async move { source.wait_for_playout().await });
            let session = OfflineSession {
                events,
                played: Some(played),
                left: false,
                shared: self.shared.clone(),
                max_samples: self.max_samples,
                timer: self.timer.clone(),
            };
            Ok(Box::new(session) as Box<dyn RoomSession>)
        })
    }
}

struct OfflineSession {
    events: VecDeque<RoomEvent>,
    played: Option<BoxFuture<'static, ()>>,
    left: bool,
    shared: Arc<Mutex<Shared>>,
    max_samples: usize,
    timer: Arc<dyn Timer>,
}

async fn record(track: Arc<dyn MediaStreamTrack>, samples: Arc<Mutex<Vec<i16>>>, max: usize, timer: Arc<dyn Timer>) {
    timer.sleep(RECORD_OFFSET).await;
    let mut frame = Frame::empty(MediaKind::Audio);
    while track.recv_into(&mut frame).await.is_ok() {
        let Frame::Audio(frame) = &frame else { continue };
        let pcm = frame.to_s16_interleaved();
        let mut out = samples.lock();
        if frame.layout.channels() == 2 {
            out.extend_from_slice(&pcm);
        } else {
            out.extend(pcm.iter().flat_map(|&s| [s, s]));
        }
        if out.len() >= max {
            out.truncate(max);
            return;
        }
    }
}

impl RoomSession for OfflineSession {
    fn peer_id(&self) -> &str {
        "offline-agent"
    }

    fn add_track(
        &mut self,
        track: Arc<dyn MediaStreamTrack>,
        stream_id: &str,
        metadata: StreamMetadata,
    ) -> Result<(), RoomError> {
        if track.kind() != MediaKind::Audio {
            return Err(RoomError::Unsupported("the offline room records audio only".into()));
        }
        let samples = Arc::new(Mutex::new(Vec::new()));
        let task = tokio::spawn(record(track, samples.clone(), self.max_samples, self.timer.clone()));
        self.shared.lock().recorders.push(Recorder { stream_id: stream_id.to_owned(), metadata, samples, task });
        Ok(())
    }

    fn replace_track(&mut self, _old: &str, _new: Option<Arc<dyn MediaStreamTrack>>) -> Result<(), RoomError> {
        Err(RoomError::Unsupported("replace-track in the offline room".into()))
    }

    fn send_data(&mut self, _to: Option<&str>, _payload: &str) -> Result<(), RoomError> {
        Ok(())
    }

    fn poll_event(&mut self, cx: &mut Context<'_>) -> Poll<Option<RoomEvent>> {
        if let Some(event) = self.events.pop_front() {
            return Poll::Ready(Some(event));
        }
        if let Some(played) = self.played.as_mut() {
            if played.as_mut().poll(cx).is_pending() {
                return Poll::Pending;
            }
            self.played = None;
        }
        if !std::mem::replace(&mut self.left, true) {
            return Poll::Ready(Some(RoomEvent::PeerLeft { peer_id: INPUT_PEER.into() }));
        }
        Poll::Ready(None)
    }
}

/// What an offline run produced.
#[derive(Debug, Clone, PartialEq)]
#[non_exhaustive]
pub struct OfflineOutput {
    /// How the agent ended.
    pub exit: AgentExit,
    /// Every audio track it published.
    pub recordings: Vec<Recording>,
    /// The agent's linear memory at its end, bytes (see
    /// [`crate::AgentReport::memory_bytes`]).
    pub memory_bytes: usize,
}

/// Options of an offline run.
#[derive(Debug, Clone, Default)]
#[non_exhaustive]
pub struct OfflineOptions {
    /// The agent's config (JSON text; `"{}"` when empty).
    pub config: String,
    /// Extra time recorded after the input's duration (default 2 s).
    pub tail: Option<Duration>,
    /// A metadata policy to apply.
    pub policy: Option<PolicyComponent>,
}

/// Runs `fut` to completion on a single-threaded executor whose idle
/// moments advance `clock` to its next deadline: every task waiting on the
/// clock runs as soon as nothing else can, so a run takes as long as its CPU
/// work, and (everything being on one thread) the same every time. Tasks
/// waiting on anything else (a socket, another thread) simply wait.
pub fn block_on_virtual<F: std::future::Future>(clock: &VirtualClock, fut: F) -> std::io::Result<F::Output> {
    let idle = clock.clone();
    let executor = tokio::runtime::Builder::new_current_thread()
        .enable_time()
        .on_thread_park(move || {
            idle.advance_to_next();
        })
        .build()?;
    Ok(executor.block_on(fut))
}

/// Runs `agent` against `input` in an [`OfflineRoom`] on a fresh
/// [`VirtualClock`], on the calling thread (see [`block_on_virtual`]): the
/// output is the same on every run. Blocking; from async code use
/// [`run_offline`].
pub fn run_offline_blocking(
    agent: &AgentComponent,
    input: Pcm,
    opts: OfflineOptions,
) -> Result<OfflineOutput, RuntimeError> {
    let clock = VirtualClock::new();
    let pacing = PacingTimer::from(clock.clone());
    let run = async move {
        let max_record = Duration::from_secs_f64(input.duration_secs()) + opts.tail.unwrap_or(Duration::from_secs(2));
        let room = Arc::new(OfflineRoom::new(input, pacing.clone(), max_record));
        let config = if opts.config.trim().is_empty() { "{}".to_owned() } else { opts.config };
        let mut spec = AgentSpec::new(config).room(room.clone());
        spec.pacing = pacing;
        spec.policy = opts.policy;
        let report = agent.run(spec).await?;
        let recordings = room.recordings().await;
        Ok(OfflineOutput { exit: report.exit, recordings, memory_bytes: report.memory_bytes })
    };
    block_on_virtual(&clock, run).map_err(|e| RuntimeError::Engine(format!("offline executor: {e}")))?
}

/// [`run_offline_blocking`] from async code: the run gets a thread (and a
/// virtual clock) of its own, so it is deterministic whatever runtime the
/// caller is on.
pub async fn run_offline(
    agent: &AgentComponent,
    input: Pcm,
    opts: OfflineOptions,
) -> Result<OfflineOutput, RuntimeError> {
    let agent = agent.clone();
    let (tx, rx) = tokio::sync::oneshot::channel();
    std::thread::Builder::new()
        .name("metered-offline".into())
        .spawn(move || {
            let _ = tx.send(run_offline_blocking(&agent, input, opts));
        })
        .map_err(|e| RuntimeError::Engine(format!("offline thread: {e}")))?;
    rx.await.map_err(|_| RuntimeError::Engine("the offline run panicked".into()))?
}

/// Why an offline file run failed.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum OfflineError {
    /// Building the runtime or loading the agent failed.
    #[error(transparent)]
    Runtime(#[from] RuntimeError),
    /// The input is not a usable WAV file.
    #[error("{path}: {source}")]
    Wav {
        /// The file.
        path: String,
        /// Why.
        source: WavError,
    },
    /// Reading or writing a file failed.
    #[error("{path}: {source}")]
    Io {
        /// The file.
        path: String,
        /// The error.
        source: std::io::Error,
    },
    /// The agent published no audio track, so there is nothing to write.
    #[error("the agent published no audio track (it ended: {0})")]
    NoOutput(AgentExit),
}

fn io(path: &Path) -> impl FnOnce(std::io::Error) -> OfflineError + '_ {
    move |source| OfflineError::Io { path: path.display().to_string(), source }
}

/// `metered run AGENT.wasm --input in.wav --output out.wav`: runs the agent
/// offline on a virtual clock and writes its first published audio track to
/// `output` (48 kHz stereo s16 WAV). `runtime` sets the engine (limits, the
/// compiled-component cache). Blocking: builds its own runtimes. Returns
/// what the run produced (the written track is `recordings[0]`).
pub fn run_offline_file(
    agent: &Path,
    input: &Path,
    output: &Path,
    opts: OfflineOptions,
    runtime: RuntimeConfig,
) -> Result<OfflineOutput, OfflineError> {
    let bytes = std::fs::read(input).map_err(io(input))?;
    let pcm = read_wav(&bytes).map_err(|source| OfflineError::Wav { path: input.display().to_string(), source })?;
    let runtime = Runtime::new(runtime)?;
    let component = runtime.load_agent_file(agent)?;
    let out = run_offline_blocking(&component, pcm, opts)?;
    let first = out.recordings.first().ok_or_else(|| OfflineError::NoOutput(out.exit.clone()))?;
    std::fs::write(output, write_wav(&first.pcm)).map_err(io(output))?;
    Ok(out)
}
