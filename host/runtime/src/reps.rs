//! The host-side representations of the WIT resources a guest holds: what a
//! `Resource<T>` in its table points at. `bindings.rs` maps each WIT resource
//! onto one of these (its `with:` table); the host side of each interface
//! (`host/<interface>.rs`) implements the WIT `Host…` traits over them.
//!
//! A leaf: it knows the media types and the [`RoomSession`] boundary, not the
//! bindings, so the bindings can point at it without pointing back at the host
//! impls.

use std::sync::Arc;
use std::task::{Context, Poll};

use wasmtime_wasi_io::poll::Pollable;

use super::room_host::{RoomEvent, RoomSession};
use super::source_host::OpenedSource;
use metered_audio::AudioSource;
use metered_media::{Frame, MediaStream, MediaStreamTrack};

/// A guest's handle on a track (`media-stream.track`). Several handles may
/// share one track; dropping a handle doesn't stop it.
pub struct TrackRep {
    /// The track.
    pub(crate) track: Arc<dyn MediaStreamTrack>,
}

/// A guest's media stream (`media-stream.media-stream`).
pub struct StreamRep {
    /// The stream.
    pub(crate) stream: MediaStream,
}

/// A guest's audio source (`audio-source.audio-source`). Dropping the handle
/// ends the source: what is buffered still plays, then its track ends.
pub struct SourceRep {
    /// The source.
    pub(crate) source: AudioSource,
    /// The guest called `end`: further pushes are refused with `closed`.
    pub(crate) ended: bool,
}

impl SourceRep {
    /// A source the guest may push to.
    pub(crate) fn new(source: AudioSource) -> Self {
        Self { source, ended: false }
    }
}

impl Drop for SourceRep {
    fn drop(&mut self) {
        self.source.end();
    }
}

/// A guest's player (`sources.player`). Dropping the handle drops the host's
/// player; its tracks play on while a track handle (the guest's, or a room's
/// sender) holds them.
pub struct PlayerRep {
    /// The opened source.
    pub(crate) source: Box<dyn OpenedSource>,
}

/// A guest's iterator (`frame-iterator.frame-iterator`): the track, and a
/// frame received while polling.
pub struct IteratorRep {
    /// The track it follows.
    pub(crate) track: Arc<dyn MediaStreamTrack>,
    /// A frame received by a poll (`subscribe`, the reactor's scan) and not yet
    /// handed to the guest.
    pub(crate) ready: Option<Frame>,
    /// The track has ended: `next` returns `none` from now on.
    pub(crate) ended: bool,
}

impl IteratorRep {
    /// An iterator over `track`, from its next frame.
    pub(crate) fn new(track: Arc<dyn MediaStreamTrack>) -> Self {
        Self { track, ready: None, ended: false }
    }

    /// The id of the track it follows.
    pub(crate) fn track_id(&self) -> &str {
        self.track.id()
    }

    /// Polls for the next frame: `Ready(None)` once the track has ended.
    pub(crate) fn poll_next(&mut self, cx: &mut Context<'_>) -> Poll<Option<Frame>> {
        if let Some(frame) = self.ready.take() {
            return Poll::Ready(Some(frame));
        }
        if self.ended {
            return Poll::Ready(None);
        }
        match self.track.poll_recv(cx) {
            Poll::Ready(Ok(frame)) => Poll::Ready(Some(frame)),
            Poll::Ready(Err(_)) => {
                self.ended = true;
                Poll::Ready(None)
            }
            Poll::Pending => Poll::Pending,
        }
    }
}

#[wasmtime_wasi::async_trait]
impl Pollable for IteratorRep {
    async fn ready(&mut self) {
        if self.ready.is_some() || self.ended {
            return;
        }
        // Cancel-safe: a track only hands out a frame when the poll completes.
        match self.track.recv().await {
            Ok(frame) => self.ready = Some(frame),
            Err(_) => self.ended = true,
        }
    }
}

/// A guest's membership of a channel (`room.room`).
pub struct RoomRep {
    /// The room host's session.
    pub(crate) session: Box<dyn RoomSession>,
    /// An event received by a poll (`subscribe`) and not yet handed on.
    ready: Option<RoomEvent>,
    /// The session has closed: no more events.
    closed: bool,
}

impl RoomRep {
    /// A membership over a freshly joined session.
    pub(crate) fn new(session: Box<dyn RoomSession>) -> Self {
        Self { session, ready: None, closed: false }
    }

    /// Polls for the next event: `Ready(None)` once the room has closed.
    pub(crate) fn poll_next(&mut self, cx: &mut Context<'_>) -> Poll<Option<RoomEvent>> {
        if let Some(event) = self.ready.take() {
            return Poll::Ready(Some(event));
        }
        if self.closed {
            return Poll::Ready(None);
        }
        let polled = self.session.poll_event(cx);
        if let Poll::Ready(None) = polled {
            self.closed = true;
        }
        polled
    }

    /// The next event; `None` once the room has closed.
    pub(crate) async fn next(&mut self) -> Option<RoomEvent> {
        if let Some(event) = self.ready.take() {
            return Some(event);
        }
        if self.closed {
            return None;
        }
        let event = std::future::poll_fn(|cx| self.session.poll_event(cx)).await;
        self.closed = event.is_none();
        event
    }
}

#[wasmtime_wasi::async_trait]
impl Pollable for RoomRep {
    async fn ready(&mut self) {
        if self.ready.is_none() && !self.closed {
            self.ready = self.next().await;
        }
    }
}
