//! `metered run`: one agent component, either in a room (`--channel`) or
//! offline against a WAV file (`--input`/`--output`, on a virtual clock).

use std::path::PathBuf;

use anyhow::{Context, bail};
use metered_realtime::runtime::offline::{OfflineOptions, run_offline_file};
use metered_realtime::runtime::{AgentExit, CacheConfig, RuntimeConfig};
use serde_json::Value;

/// Options of `metered run`.
#[derive(clap::Args)]
pub(crate) struct RunArgs {
    /// The agent: a WebAssembly component of the `metered:realtime/agent` world.
    agent: PathBuf,
    /// Join this channel as a peer (live mode).
    #[arg(long, conflicts_with_all = ["input", "output"], required_unless_present = "input")]
    channel: Option<String>,
    /// The messaging service (`metered serve`, or the hosted service).
    #[arg(long, env = "METERED_URL", default_value = "ws://127.0.0.1:8787")]
    url: String,
    /// A publishable key.
    #[arg(long, env = "METERED_KEY", conflicts_with = "token", required_unless_present_any = ["token", "input"])]
    key: Option<String>,
    /// A JWT instead of a key (e.g. from `metered token`).
    #[arg(long, env = "METERED_TOKEN")]
    token: Option<String>,
    /// The agent's config: JSON text passed to its `run`. In live mode
    /// `"channel"` is set to `--channel` unless the config names one.
    #[arg(long, default_value = "{}")]
    config: String,
    /// Offline mode: the input, a 16-bit PCM WAV file (any rate, mono or stereo).
    #[arg(long, requires = "output")]
    input: Option<PathBuf>,
    /// Offline mode: where the agent's first published track is written (48 kHz stereo WAV).
    #[arg(long, requires = "input")]
    output: Option<PathBuf>,
    /// The agent's memory cap in MiB (default 128).
    #[arg(long)]
    memory_mib: Option<usize>,
    /// Keep compiled components here (default: the user cache,
    /// `~/.cache/metered-realtime/components`).
    #[arg(long, env = "METERED_CACHE_DIR", conflicts_with = "no_disk_cache")]
    cache_dir: Option<PathBuf>,
    /// Compile the component on every start (no disk cache).
    #[arg(long)]
    no_disk_cache: bool,
    #[cfg(all(feature = "sources", feature = "hosting"))]
    #[command(flatten)]
    sources: crate::source_flags::SourceFlags,
}

impl RunArgs {
    /// The engine for one agent: its memory cap and the compiled-component cache.
    fn runtime_config(&self) -> RuntimeConfig {
        let mut config = RuntimeConfig::default();
        config.max_agents = 8;
        if let Some(mib) = self.memory_mib {
            config.limits.memory_bytes = mib << 20;
        }
        config.cache = match (&self.cache_dir, self.no_disk_cache) {
            (_, true) => CacheConfig::Memory,
            (Some(dir), false) => CacheConfig::Dir(dir.clone()),
            (None, false) => CacheConfig::user_default(),
        };
        config
    }
}

pub(crate) fn run(args: RunArgs) -> anyhow::Result<()> {
    let mut config: Value = serde_json::from_str(&args.config).context("--config is not JSON")?;
    if !config.is_object() {
        bail!("--config must be a JSON object");
    }
    if let (Some(input), Some(output)) = (&args.input, &args.output) {
        let mut opts = OfflineOptions::default();
        opts.config = config.to_string();
        let out = run_offline_file(&args.agent, input, output, opts, args.runtime_config())?;
        eprintln!(
            "metered run: agent {}; wrote {} (agent memory {:.1} MiB)",
            out.exit,
            output.display(),
            out.memory_bytes as f64 / f64::from(1 << 20)
        );
        return check(&out.exit);
    }
    let channel = args.channel.clone().context("--channel is required (or --input/--output)")?;
    if let Some(obj) = config.as_object_mut() {
        obj.entry("channel").or_insert_with(|| Value::String(channel.clone()));
    }
    live(&args, &channel, config.to_string())
}

fn check(exit: &AgentExit) -> anyhow::Result<()> {
    match exit {
        AgentExit::Finished | AgentExit::Stopped => Ok(()),
        other => bail!("agent ended: {other}"),
    }
}

#[cfg(feature = "hosting")]
fn live(args: &RunArgs, channel: &str, config: String) -> anyhow::Result<()> {
    use std::sync::Arc;

    use metered_realtime::hosting::PeerRoomHost;
    use metered_realtime::runtime::{AgentSpec, Runtime};

    let peer = crate::room::peer_options(&args.url, args.key.as_deref(), args.token.as_deref())?;
    let rt_config = args.runtime_config();
    let tokio = tokio::runtime::Builder::new_multi_thread().enable_all().build()?;
    tokio.block_on(async move {
        let runtime = Runtime::new(rt_config)?;
        let component = runtime.load_agent_file(&args.agent)?;
        let host = Arc::new(PeerRoomHost::new(peer).only(channel));
        let spec = AgentSpec::new(config).room(host);
        #[cfg(feature = "sources")]
        let spec = spec.sources(args.sources.host()?);
        let handle = component.spawn(spec).await?;
        eprintln!("metered run: agent {} joining {channel} at {}", handle.id(), args.url);
        let stopper = handle.stopper();
        tokio::spawn(async move {
            if tokio::signal::ctrl_c().await.is_ok() {
                stopper.stop();
            }
        });
        let report = handle.join().await;
        eprintln!("metered run: agent {}: {}", report.id, report.exit);
        check(&report.exit)
    })
}

#[cfg(not(feature = "hosting"))]
fn live(_: &RunArgs, _: &str, _: String) -> anyhow::Result<()> {
    bail!("this build has no WebRTC peer (feature `webrtc`): only offline mode (--input/--output) works")
}
