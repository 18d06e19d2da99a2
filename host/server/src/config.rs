//! `metered serve` configuration: TOML file, defaults that match the hosted
//! service, and validation that names the offending field.

use std::collections::HashSet;
use std::net::SocketAddr;
use std::path::Path;
use std::time::Duration;

use serde::{Deserialize, Serialize};

use metered_protocol::{Action, ChannelPattern};

/// The whole server configuration.
#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
#[non_exhaustive]
pub struct ServerConfig {
    /// Address to listen on (HTTP + WebSocket on one port).
    #[serde(default = "default_listen")]
    pub listen: SocketAddr,
    /// Publishable keys: the key string is the credential.
    #[serde(default)]
    pub publishable_keys: Vec<PublishableKey>,
    /// Secret key pairs: mint JWTs and authenticate the REST control plane.
    #[serde(default)]
    pub secret_keys: Vec<SecretKey>,
    /// Limits, defaulting to the hosted service's.
    #[serde(default)]
    pub limits: Limits,
    /// ICE servers handed to every connection in `welcome.metadata.iceServers`.
    #[serde(default)]
    pub ice: IceConfig,
    /// The browser room page served at `/`.
    #[serde(default)]
    pub web: WebConfig,
}

/// The browser room page.
#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields, default)]
#[non_exhaustive]
pub struct WebConfig {
    /// Serve the page at `/` (and `/room.js`, `/sdk/realtime.mjs`, `/room-config.json`).
    pub enabled: bool,
    /// The official browser SDK's ES module (`@metered-ca/realtime/dist/index.mjs`),
    /// served at `/sdk/realtime.mjs`.
    pub browser_sdk: Option<std::path::PathBuf>,
    /// A publishable key the page pre-fills (must be one of `publishable_keys`).
    pub publishable_key: Option<String>,
}

impl Default for WebConfig {
    fn default() -> Self {
        Self { enabled: true, browser_sdk: None, publishable_key: None }
    }
}

/// A publishable key (`pk_live_…`).
#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
#[non_exhaustive]
pub struct PublishableKey {
    /// The key itself.
    pub key: String,
    /// The tenant (account) the key belongs to; channels and peer ids are
    /// namespaced per tenant.
    #[serde(default = "default_tenant")]
    pub tenant: String,
    /// Channels the key may touch (`room-*`, `app/*`, `**` for everything).
    pub channel_patterns: Vec<ChannelPattern>,
    /// Actions the key grants.
    pub actions: Vec<Action>,
    /// When set, the WebSocket `Origin` header must be one of these.
    #[serde(default)]
    pub allowed_origins: Option<Vec<String>>,
}

/// A secret key pair (`sk_id_…` + `sk_secret_…`).
#[derive(Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
#[non_exhaustive]
pub struct SecretKey {
    /// The key id: the JWT header's `kid`.
    pub id: String,
    /// The HMAC secret (HS256).
    pub secret: String,
    /// The tenant (account) the key belongs to.
    #[serde(default = "default_tenant")]
    pub tenant: String,
    /// Channels tokens minted by this key may cover.
    pub channel_patterns: Vec<ChannelPattern>,
    /// Actions tokens minted by this key may grant.
    pub actions: Vec<Action>,
}

impl std::fmt::Debug for SecretKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SecretKey")
            .field("id", &self.id)
            .field("secret", &"<redacted>")
            .field("tenant", &self.tenant)
            .field("channel_patterns", &self.channel_patterns)
            .field("actions", &self.actions)
            .finish()
    }
}

/// ICE (STUN/TURN) servers for WebRTC peers.
#[derive(Debug, Clone, Default, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
#[non_exhaustive]
pub struct IceConfig {
    /// Entries shaped like `RTCIceServer`.
    #[serde(default)]
    pub servers: Vec<IceServer>,
}

/// One `RTCIceServer` entry.
#[derive(Debug, Clone, Deserialize, Serialize, PartialEq)]
#[serde(deny_unknown_fields)]
#[non_exhaustive]
pub struct IceServer {
    /// `stun:`/`stuns:`/`turn:`/`turns:` URLs.
    pub urls: Vec<String>,
    /// TURN username.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub username: Option<String>,
    /// TURN credential.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub credential: Option<String>,
}

/// Limits. Defaults are the hosted service's.
#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields, default)]
#[non_exhaustive]
pub struct Limits {
    /// Largest inbound WebSocket frame in bytes (close 1009 above it); also
    /// `welcome.maxMessageSize`.
    pub max_frame_bytes: usize,
    /// Channels one connection may be subscribed to at once.
    pub max_channels_per_connection: usize,
    /// Serialized `peerMetadata` cap in bytes.
    pub max_peer_metadata_bytes: usize,
    /// Serialized token `metadata` cap in bytes.
    pub max_metadata_bytes: usize,
    /// Sustained messages per second per connection (token bucket refill).
    pub messages_per_second: u32,
    /// Burst size of the per-connection token bucket.
    pub message_burst: u32,
    /// Connection attempts per source IP per 60 s; 0 turns the limit off.
    pub connections_per_ip_per_minute: u32,
    /// Whether loopback addresses are subject to the per-IP connection rate
    /// (off by default: local agents connect from loopback).
    pub rate_limit_loopback: bool,
    /// Concurrent connections per tenant (close 4010 above it); 0 = unlimited.
    pub max_connections_per_tenant: usize,
    /// Messages (publish + send) per tenant per quota period; 0 = unlimited.
    pub message_quota: u64,
    /// Length of the quota period in seconds.
    pub quota_period_secs: u64,
    /// Frames queued for one slow connection before it is closed (1008).
    pub outbound_queue_frames: usize,
    /// Send a WebSocket ping after this many seconds without inbound traffic.
    pub ping_interval_secs: u64,
    /// Close a connection after this many seconds without any inbound traffic
    /// (pongs included).
    pub idle_timeout_secs: u64,
    /// `going_away.retryAfterMs` sent on graceful shutdown.
    pub going_away_retry_ms: u64,
    /// REST request body cap in bytes (413 above it).
    pub max_rest_body_bytes: usize,
}

impl Default for Limits {
    fn default() -> Self {
        Self {
            max_frame_bytes: 64 * 1024,
            max_channels_per_connection: 100,
            max_peer_metadata_bytes: 4 * 1024,
            max_metadata_bytes: 8 * 1024,
            messages_per_second: 100,
            message_burst: 200,
            connections_per_ip_per_minute: 60,
            rate_limit_loopback: false,
            max_connections_per_tenant: 10_000,
            message_quota: 0,
            quota_period_secs: 30 * 24 * 3600,
            outbound_queue_frames: 4096,
            ping_interval_secs: 30,
            idle_timeout_secs: 75,
            going_away_retry_ms: 1000,
            max_rest_body_bytes: 32 * 1024,
        }
    }
}

impl Limits {
    pub(crate) fn ping_interval(&self) -> Duration {
        Duration::from_secs(self.ping_interval_secs)
    }
    pub(crate) fn idle_timeout(&self) -> Duration {
        Duration::from_secs(self.idle_timeout_secs)
    }
}

/// A configuration that was refused, naming the field.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ConfigError {
    /// The file could not be read.
    #[error("cannot read {path}: {source}")]
    Read {
        /// The path.
        path: String,
        /// The I/O error.
        source: std::io::Error,
    },
    /// The TOML is malformed or has an unknown/mistyped field.
    #[error("{0}")]
    Parse(String),
    /// A field holds a value that cannot work.
    #[error("invalid `{field}`: {reason}")]
    Invalid {
        /// Dotted path of the field, e.g. `publishable_keys[1].key`.
        field: String,
        /// Why.
        reason: String,
    },
}

fn invalid(field: impl Into<String>, reason: impl Into<String>) -> ConfigError {
    ConfigError::Invalid { field: field.into(), reason: reason.into() }
}

fn default_listen() -> SocketAddr {
    SocketAddr::from(([127, 0, 0, 1], 8787))
}

fn default_tenant() -> String {
    "default".to_owned()
}

impl Default for ServerConfig {
    fn default() -> Self {
        Self {
            listen: default_listen(),
            publishable_keys: Vec::new(),
            secret_keys: Vec::new(),
            limits: Limits::default(),
            ice: IceConfig::default(),
            web: WebConfig::default(),
        }
    }
}

impl ServerConfig {
    /// Parses and validates a TOML configuration.
    pub fn from_toml(text: &str) -> Result<Self, ConfigError> {
        let de = toml::Deserializer::parse(text).map_err(|e| ConfigError::Parse(e.to_string()))?;
        let config: ServerConfig = serde_path_to_error::deserialize(de).map_err(|e| {
            let path = e.path().to_string();
            let inner = e.into_inner().to_string();
            ConfigError::Parse(if path == "." { inner } else { format!("invalid `{path}`: {inner}") })
        })?;
        config.validate()?;
        Ok(config)
    }

    /// Reads, parses and validates a TOML file.
    pub fn from_file(path: &Path) -> Result<Self, ConfigError> {
        let text = std::fs::read_to_string(path)
            .map_err(|source| ConfigError::Read { path: path.display().to_string(), source })?;
        Self::from_toml(&text).map_err(|e| match e {
            ConfigError::Parse(msg) => ConfigError::Parse(format!("{}: {msg}", path.display())),
            other => other,
        })
    }

    /// A development configuration: one freshly generated publishable key and one
    /// secret key pair, each granting every action on every channel.
    pub fn dev(listen: SocketAddr) -> Self {
        let hex = || {
            let bytes: [u8; 12] = rand::random();
            bytes.iter().map(|b| format!("{b:02x}")).collect::<String>()
        };
        let all_actions = Action::ALL.to_vec();
        let everything = vec![ChannelPattern::everything()];
        let dev_key = format!("pk_live_dev_{}", hex());
        Self {
            listen,
            publishable_keys: vec![PublishableKey {
                key: dev_key.clone(),
                tenant: default_tenant(),
                channel_patterns: everything.clone(),
                actions: all_actions.clone(),
                allowed_origins: None,
            }],
            secret_keys: vec![SecretKey {
                id: format!("sk_id_dev_{}", hex()),
                secret: format!("sk_secret_{}{}", hex(), hex()),
                tenant: default_tenant(),
                channel_patterns: everything,
                actions: all_actions,
            }],
            limits: Limits::default(),
            ice: IceConfig::default(),
            web: WebConfig { publishable_key: Some(dev_key), ..WebConfig::default() },
        }
    }

    /// Checks every field; the error names the first bad one.
    pub fn validate(&self) -> Result<(), ConfigError> {
        let mut seen = HashSet::new();
        for (i, k) in self.publishable_keys.iter().enumerate() {
            let f = |name: &str| format!("publishable_keys[{i}].{name}");
            check_credential_string(&k.key, &f("key"))?;
            if !k.key.starts_with("pk_") {
                return Err(invalid(f("key"), "publishable keys start with `pk_`"));
            }
            if !seen.insert(k.key.as_str()) {
                return Err(invalid(f("key"), "duplicate key"));
            }
            check_tenant(&k.tenant, &f("tenant"))?;
            check_scope(&k.channel_patterns, &k.actions, &f("channel_patterns"), &f("actions"))?;
            if let Some(origins) = &k.allowed_origins {
                for (j, o) in origins.iter().enumerate() {
                    let ok = url::Url::parse(o)
                        .map(|u| u.origin().is_tuple() && u.path() == "/" && !o.ends_with('/'))
                        .unwrap_or(false);
                    if !ok {
                        return Err(invalid(
                            format!("publishable_keys[{i}].allowed_origins[{j}]"),
                            format!("{o:?} is not an origin like \"https://example.com\""),
                        ));
                    }
                }
            }
        }
        for (i, k) in self.secret_keys.iter().enumerate() {
            let f = |name: &str| format!("secret_keys[{i}].{name}");
            check_credential_string(&k.id, &f("id"))?;
            if !seen.insert(k.id.as_str()) {
                return Err(invalid(f("id"), "duplicate key id"));
            }
            check_credential_string(&k.secret, &f("secret"))?;
            if k.secret.len() < 8 {
                return Err(invalid(f("secret"), "secret must be at least 8 bytes"));
            }
            check_tenant(&k.tenant, &f("tenant"))?;
            check_scope(&k.channel_patterns, &k.actions, &f("channel_patterns"), &f("actions"))?;
        }
        let l = &self.limits;
        let positive: [(&str, u64); 9] = [
            ("max_frame_bytes", l.max_frame_bytes as u64),
            ("max_channels_per_connection", l.max_channels_per_connection as u64),
            ("max_peer_metadata_bytes", l.max_peer_metadata_bytes as u64),
            ("max_metadata_bytes", l.max_metadata_bytes as u64),
            ("messages_per_second", u64::from(l.messages_per_second)),
            ("message_burst", u64::from(l.message_burst)),
            ("outbound_queue_frames", l.outbound_queue_frames as u64),
            ("ping_interval_secs", l.ping_interval_secs),
            ("max_rest_body_bytes", l.max_rest_body_bytes as u64),
        ];
        for (name, v) in positive {
            if v == 0 {
                return Err(invalid(format!("limits.{name}"), "must be greater than 0"));
            }
        }
        if l.max_frame_bytes > 16 * 1024 * 1024 {
            return Err(invalid("limits.max_frame_bytes", "must be at most 16 MiB"));
        }
        if l.idle_timeout_secs <= l.ping_interval_secs {
            return Err(invalid("limits.idle_timeout_secs", "must be greater than limits.ping_interval_secs"));
        }
        if l.message_quota > 0 && l.quota_period_secs == 0 {
            return Err(invalid("limits.quota_period_secs", "must be greater than 0 when message_quota is set"));
        }
        if let Some(k) = &self.web.publishable_key
            && !self.publishable_keys.iter().any(|p| &p.key == k)
        {
            return Err(invalid("web.publishable_key", "must be one of publishable_keys"));
        }
        for (i, s) in self.ice.servers.iter().enumerate() {
            if s.urls.is_empty() {
                return Err(invalid(format!("ice.servers[{i}].urls"), "must list at least one URL"));
            }
            for (j, u) in s.urls.iter().enumerate() {
                let scheme = u.split(':').next().unwrap_or("").to_ascii_lowercase();
                if !matches!(scheme.as_str(), "stun" | "stuns" | "turn" | "turns") || u.len() > 512 {
                    return Err(invalid(
                        format!("ice.servers[{i}].urls[{j}]"),
                        "must be a stun:, stuns:, turn: or turns: URL of at most 512 bytes",
                    ));
                }
            }
        }
        Ok(())
    }

    /// The `iceServers` JSON handed out in `welcome.metadata`, if any are configured.
    pub(crate) fn ice_servers_json(&self) -> Option<serde_json::Value> {
        (!self.ice.servers.is_empty()).then(|| serde_json::to_value(&self.ice.servers).unwrap_or_default())
    }
}

fn check_credential_string(s: &str, field: &str) -> Result<(), ConfigError> {
    if s.is_empty() {
        return Err(invalid(field, "must not be empty"));
    }
    if s.len() > 256 || !s.bytes().all(|b| b.is_ascii_graphic()) || s.contains(':') {
        return Err(invalid(field, "must be at most 256 printable ASCII characters without spaces or ':'"));
    }
    Ok(())
}

fn check_tenant(s: &str, field: &str) -> Result<(), ConfigError> {
    if s.is_empty() || s.len() > 128 || !s.bytes().all(|b| b.is_ascii_graphic()) {
        return Err(invalid(field, "must be 1..=128 printable ASCII characters"));
    }
    Ok(())
}

fn check_scope(patterns: &[ChannelPattern], actions: &[Action], pf: &str, af: &str) -> Result<(), ConfigError> {
    if patterns.is_empty() {
        return Err(invalid(pf, "must list at least one channel pattern (`**` for all)"));
    }
    if actions.is_empty() {
        return Err(invalid(af, "must list at least one action"));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    const SAMPLE: &str = r#"
listen = "127.0.0.1:9000"
[[publishable_keys]]
key = "pk_live_dev"
channel_patterns = ["*"]
actions = ["publish", "subscribe", "presence", "send"]
[[secret_keys]]
id = "sk_id_dev"
secret = "sk_secret_dev"
channel_patterns = ["*"]
actions = ["publish", "subscribe", "presence", "send"]
[limits]
messages_per_second = 50
[ice]
servers = [{ urls = ["stun:127.0.0.1:3478"] }]
"#;

    #[test]
    fn the_documented_sample_parses() {
        let c = ServerConfig::from_toml(SAMPLE).unwrap();
        assert_eq!(c.listen.port(), 9000);
        assert_eq!(c.limits.messages_per_second, 50);
        assert_eq!(c.limits.message_burst, 200);
        assert_eq!(c.publishable_keys[0].tenant, "default");
        assert!(c.ice_servers_json().is_some());
    }

    #[test]
    fn errors_name_the_field() {
        let bad = SAMPLE.replace(
            r#""send"]
[[secret_keys]]"#,
            r#""sned"]
[[secret_keys]]"#,
        );
        let e = ServerConfig::from_toml(&bad).unwrap_err().to_string();
        assert!(e.contains("actions") && e.contains("sned"), "{e}");

        let e = ServerConfig::from_toml(&SAMPLE.replace("messages_per_second = 50", "messages_per_second = 0"))
            .unwrap_err()
            .to_string();
        assert!(e.contains("limits.messages_per_second"), "{e}");

        let e = ServerConfig::from_toml(&SAMPLE.replace("[limits]", "[limits]\nbogus = 1")).unwrap_err().to_string();
        assert!(e.contains("bogus"), "{e}");

        let e = ServerConfig::from_toml(&SAMPLE.replace(r#"key = "pk_live_dev""#, r#"key = "live_dev""#))
            .unwrap_err()
            .to_string();
        assert!(e.contains("publishable_keys[0].key"), "{e}");

        let e = ServerConfig::from_toml(&SAMPLE.replace("stun:127", "http:127")).unwrap_err().to_string();
        assert!(e.contains("ice.servers[0].urls[0]"), "{e}");

        let e = ServerConfig::from_toml(&SAMPLE.replace(
            r#"channel_patterns = ["*"]
actions = ["publish", "subscribe", "presence", "send"]
[limits]"#,
            r#"channel_patterns = ["a\nb"]
actions = ["publish"]
[limits]"#,
        ))
        .unwrap_err()
        .to_string();
        assert!(e.contains("channel"), "{e}");
    }

    #[test]
    fn dev_config_is_valid() {
        ServerConfig::dev(default_listen()).validate().unwrap();
    }

    #[test]
    fn secrets_do_not_leak_through_debug() {
        let c = ServerConfig::dev(default_listen());
        let dbg = format!("{c:?}");
        assert!(!dbg.contains(&c.secret_keys[0].secret));
    }
}
