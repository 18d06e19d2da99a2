//! Credentials: publishable keys, secret-key JWTs (HS256), channel patterns and
//! actions. Pure: no sockets.

use std::sync::Arc;

use jsonwebtoken::{Algorithm, DecodingKey, EncodingKey, Header, Validation};
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

use super::config::{Limits, SecretKey, ServerConfig};
use metered_protocol::validate_peer_id;
pub use metered_protocol::{Action, Actions, ChannelPattern};

/// What an authenticated connection may do.
#[derive(Debug, Clone)]
pub struct Grant {
    /// The tenant namespace.
    pub tenant: Arc<str>,
    /// The peer id: from the token's `sub`, or a fresh UUID for publishable keys.
    pub peer_id: Arc<str>,
    /// Channel patterns of the credential (a token's are already intersected
    /// with its key's at verification).
    pub channels: Arc<[ChannelPattern]>,
    /// Allowed actions.
    pub actions: Actions,
    /// Token expiry, ms since the epoch.
    pub expires_at_ms: Option<i64>,
    /// Connection-private metadata (`welcome.metadata`).
    pub metadata: Option<Map<String, Value>>,
    /// Peer metadata stamped on presence, directs and opted-in messages.
    pub peer_metadata: Option<Arc<Map<String, Value>>>,
    /// Allowed WebSocket origins (publishable keys only).
    pub allowed_origins: Option<Arc<[String]>>,
}

impl Grant {
    /// Whether the grant covers the channel.
    pub fn covers_channel(&self, channel: &str) -> bool {
        self.channels.iter().any(|p| p.matches(channel))
    }
}

/// Why a credential was refused (maps to close 4001 / 4002 / 4003).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum AuthError {
    /// No `key` or `token` query parameter.
    #[error("no credential: pass ?key= or ?token=")]
    Missing,
    /// Unknown key, bad signature, malformed token or claims.
    #[error("invalid credential: {0}")]
    Invalid(String),
    /// The token's `exp` is in the past.
    #[error("token expired")]
    Expired,
    /// The token claims channels its key does not cover.
    #[error("token claims channels its key does not cover")]
    ChannelNotAuthorized,
}

/// The JWT claims this server reads and mints.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct Claims {
    /// The peer id.
    pub sub: String,
    /// Expiry, seconds since the epoch.
    pub exp: i64,
    /// Issued-at, seconds since the epoch.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub iat: Option<i64>,
    /// Channel patterns (a subset of the key's); absent = the key's.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub channels: Option<Vec<ChannelPattern>>,
    /// Actions (a subset of the key's); absent = the key's.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub permissions: Option<Vec<Action>>,
    /// Connection-private metadata, delivered in `welcome`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub metadata: Option<Map<String, Value>>,
    /// Peer metadata stamped on presence and messages.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub peer_metadata: Option<Map<String, Value>>,
}

/// A request to mint a token (CLI and `POST /v1/tokens`).
#[derive(Debug, Clone, Default)]
pub struct TokenRequest {
    /// The peer id (`sub`).
    pub peer_id: String,
    /// Channel patterns; `None` = the key's.
    pub channels: Option<Vec<ChannelPattern>>,
    /// Actions; `None` = the key's.
    pub permissions: Option<Vec<Action>>,
    /// Lifetime in seconds (1..=86 400).
    pub expires_in_secs: u64,
    /// Connection-private metadata.
    pub metadata: Option<Map<String, Value>>,
    /// Peer metadata.
    pub peer_metadata: Option<Map<String, Value>>,
}

/// Why a token could not be minted.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum MintError {
    /// A field is invalid (the REST API answers 400 `invalid_request`).
    #[error("{0}")]
    InvalidRequest(String),
    /// The channels are not covered by the key (403 `channel_not_authorized`).
    #[error("channels not covered by the key")]
    ChannelNotAuthorized,
    /// The permissions exceed the key's (403 `action_not_permitted`).
    #[error("permissions exceed the key's")]
    ActionNotPermitted,
}

/// Longest token lifetime, seconds.
pub const MAX_TOKEN_LIFETIME_SECS: u64 = 86_400;

fn serialized_len(m: &Map<String, Value>) -> usize {
    serde_json::to_string(m).map(|s| s.len()).unwrap_or(usize::MAX)
}

/// Mints an HS256 token with `kid` = the key id.
pub fn mint_token(
    key: &SecretKey,
    req: &TokenRequest,
    limits: &Limits,
    now_secs: i64,
) -> Result<(String, i64), MintError> {
    validate_peer_id(&req.peer_id).map_err(|e| MintError::InvalidRequest(format!("peerId: {e}")))?;
    if req.expires_in_secs == 0 || req.expires_in_secs > MAX_TOKEN_LIFETIME_SECS {
        return Err(MintError::InvalidRequest(format!("expiresInSec must be 1..={MAX_TOKEN_LIFETIME_SECS}")));
    }
    if let Some(channels) = &req.channels {
        if channels.is_empty() {
            return Err(MintError::InvalidRequest("channels must not be empty".into()));
        }
        if !channels.iter().all(|c| key.channel_patterns.iter().any(|k| k.covers(c))) {
            return Err(MintError::ChannelNotAuthorized);
        }
    }
    if let Some(perms) = &req.permissions {
        let key_actions: Actions = key.actions.iter().copied().collect();
        if !perms.iter().copied().collect::<Actions>().is_subset_of(key_actions) {
            return Err(MintError::ActionNotPermitted);
        }
    }
    if req.metadata.as_ref().is_some_and(|m| serialized_len(m) > limits.max_metadata_bytes) {
        return Err(MintError::InvalidRequest(format!("metadata exceeds {} bytes", limits.max_metadata_bytes)));
    }
    if req.peer_metadata.as_ref().is_some_and(|m| serialized_len(m) > limits.max_peer_metadata_bytes) {
        return Err(MintError::InvalidRequest(format!(
            "peerMetadata exceeds {} bytes",
            limits.max_peer_metadata_bytes
        )));
    }
    let exp = now_secs + req.expires_in_secs as i64;
    let claims = Claims {
        sub: req.peer_id.clone(),
        exp,
        iat: Some(now_secs),
        channels: req.channels.clone(),
        permissions: req.permissions.clone(),
        metadata: req.metadata.clone(),
        peer_metadata: req.peer_metadata.clone(),
    };
    let mut header = Header::new(Algorithm::HS256);
    header.kid = Some(key.id.clone());
    let token = jsonwebtoken::encode(&header, &claims, &EncodingKey::from_secret(key.secret.as_bytes()))
        .map_err(|e| MintError::InvalidRequest(e.to_string()))?;
    Ok((token, exp * 1000))
}

/// Resolves a publishable key or a token to a [`Grant`].
pub struct Authenticator {
    config: Arc<ServerConfig>,
}

/// Longest token accepted, bytes (metadata caps bound a real one well below).
const MAX_TOKEN_BYTES: usize = 32 * 1024;

impl Authenticator {
    /// An authenticator over the configured keys.
    pub fn new(config: Arc<ServerConfig>) -> Self {
        Self { config }
    }

    /// Authenticates a publishable key; the connection gets a fresh UUID peer id.
    pub fn publishable_key(&self, key: &str) -> Result<Grant, AuthError> {
        let k = self
            .config
            .publishable_keys
            .iter()
            .find(|k| k.key == key)
            .ok_or_else(|| AuthError::Invalid("unknown publishable key".into()))?;
        Ok(Grant {
            tenant: Arc::from(k.tenant.as_str()),
            peer_id: Arc::from(uuid::Uuid::new_v4().to_string()),
            channels: Arc::from(k.channel_patterns.clone()),
            actions: k.actions.iter().copied().collect(),
            expires_at_ms: None,
            metadata: None,
            peer_metadata: None,
            allowed_origins: k.allowed_origins.clone().map(Arc::from),
        })
    }

    /// Finds a secret key by id.
    pub fn secret_key(&self, id: &str) -> Option<&SecretKey> {
        self.config.secret_keys.iter().find(|k| k.id == id)
    }

    /// Authenticates a REST `Authorization: Bearer sk_id:sk_secret` value.
    pub fn rest_bearer(&self, header: &str) -> Option<&SecretKey> {
        let creds = header.strip_prefix("Bearer ")?.trim();
        let (id, secret) = creds.split_once(':')?;
        let key = self.secret_key(id)?;
        constant_time_eq(key.secret.as_bytes(), secret.as_bytes()).then_some(key)
    }

    /// Verifies an HS256 token against its `kid`'s secret.
    pub fn token(&self, token: &str, now_secs: i64) -> Result<Grant, AuthError> {
        if token.len() > MAX_TOKEN_BYTES {
            return Err(AuthError::Invalid("token too large".into()));
        }
        let header = jsonwebtoken::decode_header(token).map_err(|_| AuthError::Invalid("malformed token".into()))?;
        if header.alg != Algorithm::HS256 {
            return Err(AuthError::Invalid("token must be HS256".into()));
        }
        let kid = header.kid.ok_or_else(|| AuthError::Invalid("token has no kid".into()))?;
        let key = self.secret_key(&kid).ok_or_else(|| AuthError::Invalid("unknown kid".into()))?;
        let mut validation = Validation::new(Algorithm::HS256);
        validation.validate_exp = false; // checked below against the injected clock
        validation.required_spec_claims = ["exp", "sub"].into_iter().map(String::from).collect();
        validation.validate_aud = false;
        let data = jsonwebtoken::decode::<Claims>(token, &DecodingKey::from_secret(key.secret.as_bytes()), &validation)
            .map_err(|e| AuthError::Invalid(format!("{:?}", e.kind())))?;
        let claims = data.claims;
        if claims.exp <= now_secs {
            return Err(AuthError::Expired);
        }
        validate_peer_id(&claims.sub).map_err(|e| AuthError::Invalid(format!("sub: {e}")))?;
        let limits = &self.config.limits;
        if claims.metadata.as_ref().is_some_and(|m| serialized_len(m) > limits.max_metadata_bytes) {
            return Err(AuthError::Invalid("metadata too large".into()));
        }
        if claims.peer_metadata.as_ref().is_some_and(|m| serialized_len(m) > limits.max_peer_metadata_bytes) {
            return Err(AuthError::Invalid("peerMetadata too large".into()));
        }
        let channels: Vec<ChannelPattern> = match claims.channels {
            None => key.channel_patterns.clone(),
            Some(c) => {
                if c.is_empty() || !c.iter().all(|t| key.channel_patterns.iter().any(|k| k.covers(t))) {
                    return Err(AuthError::ChannelNotAuthorized);
                }
                c
            }
        };
        let key_actions: Actions = key.actions.iter().copied().collect();
        let actions = match claims.permissions {
            None => key_actions,
            Some(p) => p.iter().copied().collect::<Actions>().intersection(key_actions),
        };
        Ok(Grant {
            tenant: Arc::from(key.tenant.as_str()),
            peer_id: Arc::from(claims.sub),
            channels: Arc::from(channels),
            actions,
            expires_at_ms: Some(claims.exp.saturating_mul(1000)),
            metadata: claims.metadata,
            peer_metadata: claims.peer_metadata.map(Arc::new),
            allowed_origins: None,
        })
    }
}

fn constant_time_eq(a: &[u8], b: &[u8]) -> bool {
    a.len() == b.len() && a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

#[cfg(test)]
mod tests {
    use super::*;

    fn pat(s: &str) -> ChannelPattern {
        ChannelPattern::try_from(s.to_owned()).unwrap()
    }

    fn auth() -> (Authenticator, SecretKey) {
        let mut config = ServerConfig::dev("127.0.0.1:0".parse().unwrap());
        config.secret_keys[0].channel_patterns = vec![pat("room-*")];
        config.secret_keys[0].actions = vec![Action::Subscribe, Action::Publish];
        let key = config.secret_keys[0].clone();
        (Authenticator::new(Arc::new(config)), key)
    }

    fn req(peer: &str) -> TokenRequest {
        TokenRequest { peer_id: peer.into(), expires_in_secs: 60, ..Default::default() }
    }

    #[test]
    fn mint_and_verify() {
        let (a, key) = auth();
        let mut r = req("agent-1");
        r.peer_metadata = Some(serde_json::json!({"name": "Ada"}).as_object().cloned().unwrap());
        r.channels = Some(vec![pat("room-1")]);
        let (token, exp_ms) = mint_token(&key, &r, &Limits::default(), 1000).unwrap();
        assert_eq!(exp_ms, 1_060_000);
        let g = a.token(&token, 1001).unwrap();
        assert_eq!(&*g.peer_id, "agent-1");
        assert!(g.covers_channel("room-1") && !g.covers_channel("room-2"));
        assert!(g.actions.allows(Action::Publish) && !g.actions.allows(Action::Send));
        assert!(matches!(a.token(&token, 1060), Err(AuthError::Expired)));
    }

    #[test]
    fn token_refusals() {
        let (a, key) = auth();
        let (token, _) = mint_token(&key, &req("p"), &Limits::default(), 1000).unwrap();
        let mut tampered = token.clone();
        tampered.pop();
        assert!(matches!(a.token(&tampered, 1000), Err(AuthError::Invalid(_))));
        assert!(matches!(a.token("garbage", 1000), Err(AuthError::Invalid(_))));
        let mut other = key.clone();
        other.secret = "another-secret-value".into();
        let (forged, _) = mint_token(&other, &req("p"), &Limits::default(), 1000).unwrap();
        assert!(matches!(a.token(&forged, 1000), Err(AuthError::Invalid(_))));
        // A token claiming more channels than its key (minted by a key with a broader scope).
        let mut broad = key.clone();
        broad.channel_patterns = vec![ChannelPattern::everything()];
        let mut r = req("p");
        r.channels = Some(vec![pat("secret-*")]);
        let (wide, _) = mint_token(&broad, &r, &Limits::default(), 1000).unwrap();
        assert!(matches!(a.token(&wide, 1000), Err(AuthError::ChannelNotAuthorized)));
    }

    #[test]
    fn mint_refusals() {
        let (_, key) = auth();
        let l = Limits::default();
        let mut r = req("p");
        r.channels = Some(vec![pat("other")]);
        assert_eq!(mint_token(&key, &r, &l, 0), Err(MintError::ChannelNotAuthorized));
        let mut r = req("p");
        r.permissions = Some(vec![Action::Send]);
        assert_eq!(mint_token(&key, &r, &l, 0), Err(MintError::ActionNotPermitted));
        let mut r = req("p");
        r.expires_in_secs = MAX_TOKEN_LIFETIME_SECS + 1;
        assert!(matches!(mint_token(&key, &r, &l, 0), Err(MintError::InvalidRequest(_))));
        assert!(matches!(mint_token(&key, &req("bad\u{7}"), &l, 0), Err(MintError::InvalidRequest(_))));
        let mut r = req("p");
        r.peer_metadata = Some(serde_json::json!({"x": "y".repeat(5000)}).as_object().cloned().unwrap());
        assert!(matches!(mint_token(&key, &r, &l, 0), Err(MintError::InvalidRequest(_))));
    }

    #[test]
    fn rest_bearer() {
        let (a, key) = auth();
        assert!(a.rest_bearer(&format!("Bearer {}:{}", key.id, key.secret)).is_some());
        assert!(a.rest_bearer(&format!("Bearer {}:wrong", key.id)).is_none());
        assert!(a.rest_bearer(&format!("Basic {}:{}", key.id, key.secret)).is_none());
        assert!(a.rest_bearer("Bearer pk_live_x").is_none());
    }
}
