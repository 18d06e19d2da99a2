//! The metadata gate: [`MetadataGate`], what the host asks before stream
//! metadata crosses the boundary (inbound from a remote peer to the guest,
//! outbound from the guest to the room), and [`Verdict`], its answer.
//!
//! A guest's state holds its gate as `Box<dyn MetadataGate>` and knows nothing
//! else of policies; the one implementation is the agent's metadata-policy
//! component (`policy.rs`), which instantiates itself on first use and fails
//! closed.

use super::room_host::BoxFuture;
use metered_media::{MediaKind, StreamMetadata};

/// A policy's decision.
#[derive(Debug, Clone, PartialEq)]
#[non_exhaustive]
pub enum Verdict {
    /// Deliver / announce this metadata (validated: a JSON object within the cap).
    Accept(StreamMetadata),
    /// Don't.
    Reject {
        /// The policy's reason, or why the policy failed.
        reason: String,
    },
}

/// Decides which stream metadata crosses the boundary, for one agent. Called
/// by the host's `room` interface (and the reactor's deliveries through it);
/// the returned futures run inside the guest's host call.
pub(crate) trait MetadataGate: Send + 'static {
    /// Checks metadata announced by an untrusted remote peer for its track:
    /// [`Verdict::Accept`] delivers the track (with the metadata accepted),
    /// [`Verdict::Reject`] drops the event.
    fn check_inbound<'a>(
        &'a mut self,
        peer_id: &'a str,
        stream_id: &'a str,
        kind: MediaKind,
        metadata: &'a StreamMetadata,
    ) -> BoxFuture<'a, Verdict>;

    /// Decides the metadata the agent announces for `stream_id`:
    /// [`Verdict::Accept`] publishes with the metadata accepted,
    /// [`Verdict::Reject`] refuses the publish with `denied`.
    fn decide_outbound<'a>(&'a mut self, stream_id: &'a str, proposed: &'a StreamMetadata) -> BoxFuture<'a, Verdict>;
}
