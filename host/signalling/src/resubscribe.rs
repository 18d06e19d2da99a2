//! Subscription replay after a reconnect, with the SDK's retry: a replay whose
//! ack is lost or that the server refuses is retried on the same connection a
//! few times, spaced apart; a connection change ends it (the next `welcome`
//! replays everything with a fresh budget), and when retries run out the
//! channel stays tracked for the next reconnect.

use std::sync::Arc;
use std::time::Duration;

use tracing::{debug, warn};

use super::shared::{Shared, encode, request_id};
use metered_protocol::ClientFrame;

/// Retries of one channel's replay per connection.
const MAX_RETRIES: u32 = 3;
/// Spacing between retries.
const RETRY_DELAY: Duration = Duration::from_secs(2);

/// Re-subscribes `channel` on connection `generation`.
pub(crate) async fn replay(shared: Arc<Shared>, channel: String, generation: u64) {
    let mut retries = 0;
    loop {
        // Read fresh at each attempt: a later subscribe's options win, an
        // unsubscribe cancels the replay.
        let Some(opts) = shared.tracked_options(&channel) else { return };
        let rid = request_id();
        let frame = ClientFrame::Subscribe {
            channel: &channel,
            request_id: Some(&rid),
            include_sender_metadata: opts.include_sender_metadata,
        };
        let text = match encode(&frame) {
            Ok(text) => text,
            Err(error) => {
                warn!(%error, "subscription replay skipped: channel failed validation");
                return;
            }
        };
        let error = match shared.request(rid, text, Some(generation)).await {
            Ok(()) => {
                debug!("subscription replayed");
                return;
            }
            Err(error) => error,
        };
        // A failure caused by the connection going away schedules nothing.
        if !shared.is_current(generation) {
            return;
        }
        if retries >= MAX_RETRIES {
            warn!(attempts = retries + 1, %error, "subscription replay failed; retries exhausted");
            return;
        }
        retries += 1;
        warn!(retry = retries, %error, "subscription replay failed; scheduling retry");
        tokio::time::sleep(RETRY_DELAY).await;
        if !shared.is_current(generation) {
            return;
        }
    }
}
