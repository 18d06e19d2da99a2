//! The reconnect loop: one task per `connect()` owning connect → backoff →
//! reconnect. Decisions come from the pure [`ReconnectPolicy`]; this file only
//! sequences I/O (token provider, one [`connection`] at a time, backoff sleeps)
//! and reports outcomes. Subscriptions are replayed by the connection on each
//! reconnect's `welcome` (see `resubscribe`).

use std::sync::Arc;
use std::sync::atomic::Ordering;

use tokio::sync::{oneshot, watch};
use tracing::{Instrument, debug, info_span, warn};

use super::backoff::ReconnectPolicy;
use super::connection;
use super::error::ClientError;
use super::events::{ClientEvent, ClientState};
use super::options::Credential;
use super::shared::{Ready, Shared, closed};
use super::url::{connect_url, scrub};

/// Runs the reconnect loop until the client is closed for good, then settles
/// the client (`Closed`, pending requests failed) and resolves `ready` if the
/// first `connect()` never succeeded.
pub(crate) async fn run(shared: Arc<Shared>, ready: oneshot::Sender<Result<(), ClientError>>) {
    let span = info_span!("signalling", peer = tracing::field::Empty, url = %shared.origin);
    let mut ready = Some(ready);
    let failure = connect_loop(&shared, &mut ready).instrument(span).await;
    *shared.link.lock() = None;
    shared.fail_pending(1000);
    shared.transition(ClientState::Closed);
    shared.running.store(false, Ordering::Release);
    // Last, so a caller seeing the error also sees `Closed` (and may connect again).
    resolve(&mut ready, Err(failure));
}

/// The connect → reconnect loop; returns why the first `connect()` failed if
/// it never succeeded.
async fn connect_loop(shared: &Arc<Shared>, ready: &mut Ready) -> ClientError {
    let mut close_rx = shared.close_tx.subscribe();
    let mut policy = ReconnectPolicy::new(shared.opts.reconnect);
    loop {
        if shared.is_explicitly_closed() {
            return ClientError::Closed;
        }
        shared.transition(policy.attempt_state());
        let ended = match credential_url(shared).await {
            Ok(url) => {
                policy.on_token();
                connection::run(shared, &url, &mut policy, ready, &mut close_rx).await
            }
            Err(reason) => {
                let outcome = policy.on_token_failure(shared.is_explicitly_closed());
                warn!(%reason, attempt = policy.attempts(), "token provider failed");
                if let Some(consecutive_failures) = outcome.report {
                    shared.emit(ClientEvent::TokenProviderError { consecutive_failures, error: reason.clone() });
                }
                if !outcome.retry {
                    if policy.was_ever_connected() {
                        // The final signal a disconnect-watching consumer gets.
                        shared.emit(ClientEvent::Disconnected {
                            code: policy.last_close_code().unwrap_or(1006),
                            reason: "token provider failed".into(),
                            will_reconnect: false,
                        });
                    }
                    return ClientError::TokenProvider { reason };
                }
                backoff(&mut policy, &mut close_rx).await;
                continue;
            }
        };
        *shared.link.lock() = None;
        // Fail in-flight requests now rather than after their ack timeout.
        shared.fail_pending(ended.code);
        let will_reconnect = policy.on_close(ended.code, shared.is_explicitly_closed());
        debug!(code = ended.code, reason = %ended.reason, will_reconnect, "connection ended");
        if ended.opened && policy.was_ever_connected() {
            shared.emit(ClientEvent::Disconnected { code: ended.code, reason: ended.reason.clone(), will_reconnect });
        }
        if !will_reconnect {
            return if shared.is_explicitly_closed() {
                ClientError::Closed
            } else {
                ClientError::Connect { close_code: ended.code, reason: ended.reason }
            };
        }
        shared.transition(ClientState::Reconnecting);
        backoff(&mut policy, &mut close_rx).await;
    }
}

/// Sleeps the next backoff delay (cut short by `close()`).
async fn backoff(policy: &mut ReconnectPolicy, close_rx: &mut watch::Receiver<bool>) {
    let delay = policy.next_delay(rand::random::<f64>());
    debug!(attempt = policy.attempts(), ?delay, "reconnecting after backoff");
    tokio::select! {
        () = tokio::time::sleep(delay) => {}
        () = closed(close_rx) => {}
    }
}

fn resolve(ready: &mut Ready, result: Result<(), ClientError>) {
    if let Some(tx) = ready.take() {
        let _ = tx.send(result);
    }
}

/// The connect URL with this attempt's credential (the token provider is
/// called once per attempt, bounded by its timeout). Errors are scrubbed.
async fn credential_url(shared: &Shared) -> Result<String, String> {
    match &shared.opts.credential {
        Credential::ApiKey(key) => Ok(connect_url(&shared.origin, false, key)),
        Credential::TokenProvider(provider) => {
            match tokio::time::timeout(shared.opts.token_provider_timeout, provider.token()).await {
                Ok(Ok(token)) if !token.is_empty() => Ok(connect_url(&shared.origin, true, &token)),
                Ok(Ok(_)) => Err("token provider returned an empty token".into()),
                Ok(Err(e)) => Err(scrub(&format!("token provider failed: {e}"))),
                Err(_) => Err(format!("token provider timed out after {:?}", shared.opts.token_provider_timeout)),
            }
        }
    }
}
