//! `metered token`: mint a JWT from a secret key.

use std::path::PathBuf;
use std::time::{SystemTime, UNIX_EPOCH};

use anyhow::{Context, bail};
use metered_realtime::server::{Action, ChannelPattern, ServerConfig, TokenRequest, mint_token};
use serde_json::{Map, Value};

/// Options of `metered token`.
#[derive(clap::Args)]
pub(crate) struct TokenArgs {
    /// TOML configuration holding the secret key.
    #[arg(long, short, env = "METERED_CONFIG")]
    config: PathBuf,
    /// Secret key id (`kid`); defaults to the first secret key.
    #[arg(long)]
    key_id: Option<String>,
    /// The peer id (`sub`).
    #[arg(long)]
    peer_id: String,
    /// Channel patterns (comma-separated); default: the key's.
    #[arg(long, value_delimiter = ',')]
    channels: Option<Vec<String>>,
    /// Permissions (comma-separated: publish,subscribe,presence,send); default: the key's.
    #[arg(long, value_delimiter = ',')]
    permissions: Option<Vec<String>>,
    /// Lifetime in seconds (at most 86400).
    #[arg(long, default_value_t = 3600)]
    expires_in: u64,
    /// Connection-private metadata (a JSON object).
    #[arg(long)]
    metadata: Option<String>,
    /// Peer metadata stamped on presence and messages (a JSON object).
    #[arg(long)]
    peer_metadata: Option<String>,
}

fn object(flag: &str, text: Option<&str>) -> anyhow::Result<Option<Map<String, Value>>> {
    match text {
        None => Ok(None),
        Some(t) => match serde_json::from_str::<Value>(t).with_context(|| format!("--{flag} is not JSON"))? {
            Value::Object(m) => Ok(Some(m)),
            _ => bail!("--{flag} must be a JSON object"),
        },
    }
}

pub(crate) fn run(args: TokenArgs) -> anyhow::Result<()> {
    let config = ServerConfig::from_file(&args.config)?;
    let key = match &args.key_id {
        Some(id) => config.secret_keys.iter().find(|k| &k.id == id).with_context(|| format!("no secret key {id:?}"))?,
        None => config.secret_keys.first().context("the configuration has no secret_keys")?,
    };
    let channels = args
        .channels
        .map(|cs| cs.into_iter().map(ChannelPattern::try_from).collect::<Result<Vec<_>, _>>())
        .transpose()
        .map_err(anyhow::Error::msg)?;
    let permissions = args
        .permissions
        .map(|ps| {
            ps.iter()
                .map(|p| serde_json::from_value::<Action>(Value::String(p.trim().to_owned())))
                .collect::<Result<Vec<_>, _>>()
        })
        .transpose()
        .context("--permissions takes publish, subscribe, presence, send")?;
    let req = TokenRequest {
        peer_id: args.peer_id,
        channels,
        permissions,
        expires_in_secs: args.expires_in,
        metadata: object("metadata", args.metadata.as_deref())?,
        peer_metadata: object("peer-metadata", args.peer_metadata.as_deref())?,
    };
    let now = SystemTime::now().duration_since(UNIX_EPOCH)?.as_secs() as i64;
    let (token, _) = mint_token(key, &req, &config.limits, now)?;
    println!("{token}");
    Ok(())
}
