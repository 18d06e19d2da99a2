//! Client options: credential, base URL, reconnect schedule, watchdog.

use std::fmt;
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::time::Duration;

use super::error::ConfigError;
use super::url::validate_base_url;

/// A boxed error from a token provider (its text is scrubbed of `key=`/`token=`
/// values before it reaches an event or a log).
pub type BoxError = Box<dyn std::error::Error + Send + Sync>;

/// Supplies a fresh JWT for each connection attempt (mint it on your backend).
///
/// Any `Fn() -> impl Future<Output = Result<String, BoxError>>` closure is a
/// provider. Each call is bounded by [`ClientOptions::token_provider_timeout`];
/// an error, a timeout or an empty token fails the attempt (the first connect
/// fails; later attempts back off and retry, and from the third consecutive
/// failure each one is reported as `ClientEvent::TokenProviderError`).
pub trait TokenProvider: Send + Sync + 'static {
    /// Returns a token; called once per connect attempt.
    fn token(&self) -> Pin<Box<dyn Future<Output = Result<String, BoxError>> + Send>>;
}

impl<F, Fut> TokenProvider for F
where
    F: Fn() -> Fut + Send + Sync + 'static,
    Fut: Future<Output = Result<String, BoxError>> + Send + 'static,
{
    fn token(&self) -> Pin<Box<dyn Future<Output = Result<String, BoxError>> + Send>> {
        Box::pin(self())
    }
}

/// The credential a client connects with. Its `Debug` never shows the secret.
#[derive(Clone)]
pub enum Credential {
    /// A publishable key (`pk_live_…`), sent as `?key=`.
    ApiKey(String),
    /// A token provider; tokens are sent as `?token=`.
    TokenProvider(Arc<dyn TokenProvider>),
}

impl fmt::Debug for Credential {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Credential::ApiKey(_) => f.write_str("ApiKey(<redacted>)"),
            Credential::TokenProvider(_) => f.write_str("TokenProvider(..)"),
        }
    }
}

/// Exponential backoff with jitter between reconnect attempts.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct ReconnectOptions {
    /// Delay before the first retry (default 0.5 s).
    pub initial_delay: Duration,
    /// Growth factor per attempt (≥ 1; default 2).
    pub multiplier: f64,
    /// Upper bound of the delay (default 30 s).
    pub max_delay: Duration,
    /// Random spread, as a fraction of the delay (0..=1; default 0.2).
    pub jitter_ratio: f64,
    /// Consecutive failed attempts before giving up (default 100).
    pub max_attempts: u32,
}

impl Default for ReconnectOptions {
    fn default() -> Self {
        Self {
            initial_delay: Duration::from_millis(500),
            multiplier: 2.0,
            max_delay: Duration::from_secs(30),
            jitter_ratio: 0.2,
            max_attempts: 100,
        }
    }
}

/// Everything a [`super::SignallingClient`] is built from.
#[derive(Debug, Clone)]
#[non_exhaustive]
pub struct ClientOptions {
    /// The credential.
    pub credential: Credential,
    /// Base URL without path (`wss://host` or `ws://127.0.0.1:8787`; default [`DEFAULT_URL`]).
    pub url: String,
    /// Reconnect schedule; `None` disables reconnecting (default: [`ReconnectOptions::default`]).
    pub reconnect: Option<ReconnectOptions>,
    /// Close (4000) and reconnect when no text frame arrived for this long; a
    /// heartbeat `ping` is sent after each third of it in silence (default 60 s).
    /// Unlike the SDK, the heartbeat interval has no 1 s floor, so short
    /// timeouts work.
    pub inactivity_timeout: Duration,
    /// Re-subscribe to every tracked channel after a reconnect (default true).
    pub auto_resubscribe: bool,
    /// Bound on one token-provider call (default 10 s).
    pub token_provider_timeout: Duration,
    /// Bound on waiting for an ack (default 15 s).
    pub ack_timeout: Duration,
    /// Bound on opening the socket, and on `welcome` after it opened (default 10 s).
    pub welcome_timeout: Duration,
    /// Capacity of the event channel (default 1024, at least 16); a consumer
    /// that falls further behind misses events and is told how many.
    pub event_capacity: usize,
}

/// The hosted service's endpoint.
pub const DEFAULT_URL: &str = "wss://rms.metered.ca";

impl ClientOptions {
    fn new(credential: Credential) -> Self {
        Self {
            credential,
            url: DEFAULT_URL.to_owned(),
            reconnect: Some(ReconnectOptions::default()),
            inactivity_timeout: Duration::from_secs(60),
            auto_resubscribe: true,
            token_provider_timeout: Duration::from_secs(10),
            ack_timeout: Duration::from_secs(15),
            welcome_timeout: Duration::from_secs(10),
            event_capacity: 1024,
        }
    }

    /// Options for a publishable key.
    pub fn with_api_key(key: impl Into<String>) -> Self {
        Self::new(Credential::ApiKey(key.into()))
    }

    /// Options for a token provider.
    pub fn with_token_provider(provider: impl TokenProvider) -> Self {
        Self::new(Credential::TokenProvider(Arc::new(provider)))
    }

    /// Sets the base URL.
    pub fn url(mut self, url: impl Into<String>) -> Self {
        self.url = url.into();
        self
    }

    /// Sets (or with `None`, disables) reconnecting.
    pub fn reconnect(mut self, reconnect: Option<ReconnectOptions>) -> Self {
        self.reconnect = reconnect;
        self
    }

    /// Sets the inactivity timeout (at least 30 ms).
    pub fn inactivity_timeout(mut self, timeout: Duration) -> Self {
        self.inactivity_timeout = timeout;
        self
    }

    /// Sets whether channels are re-subscribed after a reconnect.
    pub fn auto_resubscribe(mut self, on: bool) -> Self {
        self.auto_resubscribe = on;
        self
    }

    /// Sets the token-provider timeout.
    pub fn token_provider_timeout(mut self, timeout: Duration) -> Self {
        self.token_provider_timeout = timeout;
        self
    }

    /// Sets the ack timeout (default 15 s).
    pub fn ack_timeout(mut self, timeout: Duration) -> Self {
        self.ack_timeout = timeout;
        self
    }

    /// Sets the bound on opening the socket and on receiving `welcome` (default 10 s).
    pub fn welcome_timeout(mut self, timeout: Duration) -> Self {
        self.welcome_timeout = timeout;
        self
    }

    /// Sets the capacity of the event channel (default 1024, at least 16).
    pub fn event_capacity(mut self, capacity: usize) -> Self {
        self.event_capacity = capacity;
        self
    }

    /// Checks every option; returns the validated base URL's origin.
    pub(crate) fn validate(&self) -> Result<String, ConfigError> {
        if let Credential::ApiKey(key) = &self.credential
            && key.is_empty()
        {
            return Err(ConfigError::option("api_key", "must be a non-empty string"));
        }
        let origin = validate_base_url(&self.url)?;
        if let Some(r) = &self.reconnect {
            r.validate()?;
        }
        for (name, value) in [
            ("inactivity_timeout", self.inactivity_timeout),
            ("token_provider_timeout", self.token_provider_timeout),
            ("ack_timeout", self.ack_timeout),
            ("welcome_timeout", self.welcome_timeout),
        ] {
            if value < MIN_TIMEOUT {
                return Err(ConfigError::option(name, format!("must be at least {MIN_TIMEOUT:?}")));
            }
        }
        Ok(origin)
    }
}

/// The smallest accepted timeout.
const MIN_TIMEOUT: Duration = Duration::from_millis(30);

impl ReconnectOptions {
    /// The SDK's constraints: `initial_delay > 0`, finite `multiplier >= 1`,
    /// `max_delay >= initial_delay`, `jitter_ratio` in `[0, 1]`.
    fn validate(&self) -> Result<(), ConfigError> {
        if self.initial_delay.is_zero() {
            return Err(ConfigError::option("reconnect.initial_delay", "must be > 0"));
        }
        if !(self.multiplier.is_finite() && self.multiplier >= 1.0) {
            return Err(ConfigError::option("reconnect.multiplier", "must be a finite number >= 1"));
        }
        if self.max_delay < self.initial_delay {
            return Err(ConfigError::option("reconnect.max_delay", "must be >= initial_delay"));
        }
        if !(0.0..=1.0).contains(&self.jitter_ratio) {
            return Err(ConfigError::option("reconnect.jitter_ratio", "must be in [0, 1]"));
        }
        Ok(())
    }
}

/// Options of one subscription.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct SubscribeOptions {
    /// Ask the server to attach the sender's peer metadata to each message.
    pub include_sender_metadata: bool,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn debug_never_shows_the_credential() {
        let o = ClientOptions::with_api_key("pk_live_secret123").url("ws://127.0.0.1:1");
        let text = format!("{o:?}");
        assert!(!text.contains("secret123"), "{text}");
        assert!(text.contains("<redacted>"));
        let t = ClientOptions::with_token_provider(|| async { Ok::<_, BoxError>("tok_secret".to_owned()) });
        assert!(!format!("{t:?}").contains("tok_secret"));
    }

    #[test]
    fn validation() {
        let ok = ClientOptions::with_api_key("k").url("ws://localhost:9");
        assert_eq!(ok.validate().unwrap(), "ws://localhost:9");
        assert!(matches!(ClientOptions::with_api_key("").validate(), Err(ConfigError::Option { name: "api_key", .. })));
        assert!(matches!(ok.clone().url("ws://example.com").validate(), Err(ConfigError::Url(_))));
        let bad = [
            ReconnectOptions { initial_delay: Duration::ZERO, ..Default::default() },
            ReconnectOptions { multiplier: 0.5, ..Default::default() },
            ReconnectOptions { multiplier: f64::NAN, ..Default::default() },
            ReconnectOptions { multiplier: f64::INFINITY, ..Default::default() },
            ReconnectOptions { max_delay: Duration::from_millis(1), ..Default::default() },
            ReconnectOptions { jitter_ratio: 1.5, ..Default::default() },
            ReconnectOptions { jitter_ratio: f64::NAN, ..Default::default() },
        ];
        for r in bad {
            assert!(ok.clone().reconnect(Some(r)).validate().is_err(), "{r:?}");
        }
        assert!(ok.clone().reconnect(None).validate().is_ok());
        assert!(ok.clone().inactivity_timeout(Duration::from_millis(5)).validate().is_err());
        assert!(ok.clone().ack_timeout(Duration::ZERO).validate().is_err());
        assert!(ok.welcome_timeout(Duration::from_millis(29)).validate().is_err());
    }
}
