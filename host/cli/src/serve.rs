//! `metered serve`.

use std::net::SocketAddr;
use std::path::PathBuf;

use anyhow::Context;
use metered_realtime::server::{Server, ServerConfig};

/// Options of `metered serve`; flags override the configuration file.
#[derive(clap::Args)]
pub(crate) struct ServeArgs {
    /// TOML configuration file. Without one, a development key pair is generated.
    #[arg(long, short, env = "METERED_CONFIG")]
    config: Option<PathBuf>,
    /// Address to listen on (overrides `listen`).
    #[arg(long, env = "METERED_LISTEN")]
    listen: Option<SocketAddr>,
    /// Write the bound address to this file once listening (for scripts and
    /// tests; written whole, through a rename).
    #[arg(long)]
    ready_file: Option<PathBuf>,
    /// The official browser SDK module served to the room page (overrides
    /// `[web] browser_sdk`; default: `.local/node/.../@metered-ca/realtime/dist/index.mjs`
    /// under the current directory, if present).
    #[arg(long, env = "METERED_BROWSER_SDK")]
    browser_sdk: Option<PathBuf>,
    /// Run an agent in every channel matching a pattern while the channel has
    /// peers: `AGENT.wasm@PATTERN` (e.g. `echo.wasm@room-*`). Repeatable.
    /// Agents join with the first publishable key of the configuration.
    #[cfg(feature = "hosting")]
    #[arg(long = "agent", value_name = "AGENT.wasm@PATTERN")]
    agents: Vec<String>,
    /// The agents' config (a JSON object; `"channel"` is set per channel).
    #[cfg(feature = "hosting")]
    #[arg(long, default_value = "{}")]
    agent_config: String,
    #[cfg(all(feature = "sources", feature = "hosting"))]
    #[command(flatten)]
    sources: crate::source_flags::SourceFlags,
}

const LOCAL_BROWSER_SDK: &str = ".local/node/node_modules/@metered-ca/realtime/dist/index.mjs";

pub(crate) fn run(args: ServeArgs) -> anyhow::Result<()> {
    let dev = args.config.is_none();
    let mut config = match &args.config {
        Some(path) => ServerConfig::from_file(path)?,
        None => ServerConfig::dev("127.0.0.1:8787".parse().context("default listen address")?),
    };
    if let Some(listen) = args.listen {
        config.listen = listen;
    }
    if let Some(sdk) = args.browser_sdk.clone() {
        config.web.browser_sdk = Some(sdk);
    } else if config.web.browser_sdk.is_none() && std::path::Path::new(LOCAL_BROWSER_SDK).exists() {
        config.web.browser_sdk = Some(PathBuf::from(LOCAL_BROWSER_SDK));
    }
    let runtime = tokio::runtime::Builder::new_multi_thread().enable_all().build()?;
    runtime.block_on(async move {
        let banner_config = config.clone();
        let server = Server::bind(config).await?;
        let addr = server.local_addr();
        print_banner(&banner_config, addr, dev);
        #[cfg(feature = "hosting")]
        let dispatcher = agents::start(&args, &banner_config, &server)?;
        if let Some(path) = &args.ready_file {
            // Atomically: a watcher that sees the file sees the whole address.
            let tmp = path.with_extension("tmp");
            std::fs::write(&tmp, addr.to_string()).with_context(|| format!("writing {}", tmp.display()))?;
            std::fs::rename(&tmp, path).with_context(|| format!("writing {}", path.display()))?;
        }
        server.run_until_signal().await;
        #[cfg(feature = "hosting")]
        if let Some(s) = dispatcher {
            s.shutdown().await;
        }
        anyhow::Ok(())
    })
}

fn print_banner(config: &ServerConfig, addr: SocketAddr, dev: bool) {
    let url = format!("ws://{addr}");
    println!("metered serve: listening on {url}  (WebSocket {url}/v1, REST http://{addr}/v1/...)");
    if config.web.enabled {
        println!("room page: http://{addr}/  (open it in a browser to join a channel)");
    }
    if let Some(k) = config.publishable_keys.first() {
        if dev {
            println!("dev mode: generated credentials (pass --config FILE for fixed keys)");
        }
        println!("  publishable key: {}", k.key);
        if let Some(s) = config.secret_keys.first() {
            if dev {
                println!("  secret key:      {}:{}   (REST: Authorization: Bearer <id>:<secret>)", s.id, s.secret);
            } else {
                println!("  secret key id:   {}", s.id);
            }
        }
        println!();
        println!("Connect with the official Python SDK (pip install metered-realtime):");
        println!();
        println!("    import asyncio");
        println!("    from metered_realtime import SignallingClient");
        println!();
        println!("    async def main():");
        println!("        client = SignallingClient(api_key=\"{}\", url=\"{url}\")", k.key);
        println!("        await client.connect()");
        println!("        await client.subscribe(\"room-1\")");
        println!("        await client.publish(\"room-1\", {{\"hello\": \"world\"}})");
        println!("        await client.close()");
        println!();
        println!("    asyncio.run(main())");
        println!();
    }
}

#[cfg(feature = "hosting")]
mod agents {
    use anyhow::{Context, bail};
    use std::sync::Arc;

    use metered_realtime::hosting::{AgentRule, Dispatcher, PeerRoomHost, Presence, PresenceChange};
    use metered_realtime::peer::{IcePolicy, PeerOptions};
    use metered_realtime::runtime::{CacheConfig, Runtime, RuntimeConfig};
    use metered_realtime::server::{ChannelPattern, PresenceView, Server, ServerConfig};
    use metered_realtime::signalling::ClientOptions;
    use serde_json::Value;

    /// The server's presence, as the dispatcher reads it.
    struct ServerPresence(PresenceView);

    impl Presence for ServerPresence {
        fn changes(&self) -> tokio::sync::broadcast::Receiver<PresenceChange> {
            self.0.changes()
        }
        fn channel_peers(&self, tenant: &str, channel: &str) -> Vec<String> {
            self.0.channel_peers(tenant, channel)
        }
    }

    /// Starts the `--agent` dispatcher, if any rule was given.
    pub(super) fn start(
        args: &super::ServeArgs,
        config: &ServerConfig,
        server: &Server,
    ) -> anyhow::Result<Option<Dispatcher>> {
        if args.agents.is_empty() {
            return Ok(None);
        }
        let agent_config: Value = serde_json::from_str(&args.agent_config).context("--agent-config is not JSON")?;
        if !agent_config.is_object() {
            bail!("--agent-config must be a JSON object");
        }
        let key = config.publishable_keys.first().context("--agent needs a publishable key in the configuration")?;
        let mut rt_config = RuntimeConfig::default();
        rt_config.cache = CacheConfig::user_default();
        let runtime = Runtime::new(rt_config)?;
        #[cfg(feature = "sources")]
        let sources = args.sources.host()?;
        #[cfg(not(feature = "sources"))]
        let sources: Arc<dyn metered_realtime::runtime::SourceHost> = Arc::new(metered_realtime::runtime::NoSources);
        let mut rules = Vec::new();
        for spec in &args.agents {
            let (path, pattern) = spec.rsplit_once('@').context("--agent takes AGENT.wasm@CHANNEL_PATTERN")?;
            let pattern = ChannelPattern::try_from(pattern.to_owned())
                .map_err(|e| anyhow::anyhow!("--agent {spec}: bad channel pattern: {e}"))?;
            let component = runtime.load_agent_file(path).with_context(|| format!("--agent {spec}"))?;
            // The file and its folder (`python/echo_agent.wasm`): enough to
            // tell same-named agents of different languages apart in logs.
            let p = std::path::Path::new(path);
            let name = match (p.parent().and_then(|d| d.file_name()), p.file_name()) {
                (Some(dir), Some(file)) => format!("{}/{}", dir.to_string_lossy(), file.to_string_lossy()),
                _ => path.to_owned(),
            };
            rules.push(AgentRule { component, pattern, config: agent_config.clone(), name, sources: sources.clone() });
        }
        let addr = server.local_addr();
        let client = ClientOptions::with_api_key(key.key.clone()).url(format!("ws://{addr}"));
        let mut peer = PeerOptions::new(client);
        if addr.ip().is_loopback() {
            peer = peer.ice(IcePolicy::LoopbackOnly);
        }
        for r in &rules {
            println!("agent {} in channels matching {}", r.name, r.pattern.as_str());
        }
        let presence = Arc::new(ServerPresence(server.presence()));
        Ok(Some(Dispatcher::start(presence, key.tenant.clone(), PeerRoomHost::new(peer), rules)))
    }
}
