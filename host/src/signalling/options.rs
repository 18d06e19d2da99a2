//! Client options: credential, base URL, reconnect schedule, watchdog.

use std::fmt;
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::time::Duration;

/// A boxed error from a token provider.
pub type BoxError = Box<dyn std::error::Error + Send + Sync>;

/// Supplies a fresh JWT for each connection attempt (mint it on your backend).
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
    /// Delay before the first retry.
    pub initial_delay: Duration,
    /// Growth factor per attempt (≥ 1).
    pub multiplier: f64,
    /// Upper bound of the delay.
    pub max_delay: Duration,
    /// Random spread, as a fraction of the delay (0..=1).
    pub jitter_ratio: f64,
    /// Attempts before giving up.
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
    /// Base URL without path (`wss://host` or `ws://127.0.0.1:8787`).
    pub url: String,
    /// Reconnect schedule; `None` disables reconnecting.
    pub reconnect: Option<ReconnectOptions>,
    /// Close and reconnect when no frame arrived for this long; a heartbeat
    /// `ping` is sent after a third of it.
    pub inactivity_timeout: Duration,
    /// Re-subscribe to every tracked channel after a reconnect.
    pub auto_resubscribe: bool,
    /// Bound on one token-provider call.
    pub token_provider_timeout: Duration,
    /// Bound on waiting for an ack.
    pub ack_timeout: Duration,
    /// Bound on waiting for `welcome` after the socket opens.
    pub welcome_timeout: Duration,
    /// Capacity of the event channel (a consumer that falls further behind
    /// misses events and is told how many).
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

    /// Sets the inactivity timeout.
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

    /// Sets the ack timeout.
    pub fn ack_timeout(mut self, timeout: Duration) -> Self {
        self.ack_timeout = timeout;
        self
    }
}

/// Options of one subscription.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct SubscribeOptions {
    /// Ask the server to attach the sender's peer metadata to each message.
    pub include_sender_metadata: bool,
}
