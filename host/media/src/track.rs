//! The [`MediaStreamTrack`] trait and [`iter_frames`].

use std::sync::Arc;
use std::task::{Context, Poll};

use futures_util::Stream;

use super::frame::{AudioFrame, VideoFrame};

/// Audio or video.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum MediaKind {
    /// Audio.
    Audio,
    /// Video.
    Video,
}

impl MediaKind {
    /// `"audio"` or `"video"`, as on the wire.
    pub fn as_str(self) -> &'static str {
        match self {
            MediaKind::Audio => "audio",
            MediaKind::Video => "video",
        }
    }
}

/// A frame from a track.
#[derive(Debug, Clone, PartialEq)]
pub enum Frame {
    /// An audio frame.
    Audio(AudioFrame),
    /// A video frame.
    Video(VideoFrame),
}

impl Frame {
    /// An empty frame of `kind`: a buffer for [`MediaStreamTrack::poll_recv_into`].
    pub fn empty(kind: MediaKind) -> Self {
        match kind {
            MediaKind::Audio => Frame::Audio(AudioFrame::empty()),
            MediaKind::Video => Frame::Video(VideoFrame::default()),
        }
    }

    /// Audio or video.
    pub fn kind(&self) -> MediaKind {
        match self {
            Frame::Audio(_) => MediaKind::Audio,
            Frame::Video(_) => MediaKind::Video,
        }
    }
}

/// The track has ended: it was stopped, or its source finished.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("track ended")]
pub struct TrackEnded;

/// A source of frames: an `AudioSource` (crate `metered-audio`), a file or device source,
/// a remote WebRTC track. Object-safe: tracks travel as `Arc<dyn MediaStreamTrack>`.
///
/// [`MediaStreamTrack::poll_recv_into`] is the main API: it fills a frame the
/// caller owns and reuses, so a sender reading a track every 20 ms allocates
/// nothing. [`MediaStreamTrack::poll_recv`] (a fresh frame per call) and the
/// async `recv` / `recv_into` on `dyn MediaStreamTrack` are wrappers.
pub trait MediaStreamTrack: Send + Sync + 'static {
    /// Audio or video.
    fn kind(&self) -> MediaKind;
    /// The track id (unique per track).
    fn id(&self) -> &str;
    /// Polls for the next frame, written into `out` (its buffers reused; an
    /// `out` of the other kind is replaced). `Err(TrackEnded)` once the track
    /// has ended, and forever after; `out` is then unspecified.
    fn poll_recv_into(&self, cx: &mut Context<'_>, out: &mut Frame) -> Poll<Result<(), TrackEnded>>;
    /// Polls for the next frame as a new [`Frame`] (allocates one per frame).
    fn poll_recv(&self, cx: &mut Context<'_>) -> Poll<Result<Frame, TrackEnded>> {
        let mut frame = Frame::empty(self.kind());
        self.poll_recv_into(cx, &mut frame).map_ok(|()| frame)
    }
    /// Stops the track: pending and later `recv`s end. Idempotent.
    fn stop(&self);
}

impl dyn MediaStreamTrack {
    /// The next frame, or `Err(TrackEnded)`.
    pub async fn recv(&self) -> Result<Frame, TrackEnded> {
        std::future::poll_fn(|cx| self.poll_recv(cx)).await
    }

    /// The next frame into `out`, reusing its buffers, or `Err(TrackEnded)`.
    pub async fn recv_into(&self, out: &mut Frame) -> Result<(), TrackEnded> {
        std::future::poll_fn(|cx| self.poll_recv_into(cx, out)).await
    }
}

/// An async stream of a track's frames that ends cleanly when the track stops —
/// no error for the caller to handle.
///
/// The caller owns the track's lifecycle: dropping the stream does not stop the
/// track; call [`MediaStreamTrack::stop`] to release its source.
pub fn iter_frames(track: Arc<dyn MediaStreamTrack>) -> impl Stream<Item = Frame> + Send + Unpin {
    let mut ended = false;
    futures_util::stream::poll_fn(move |cx| {
        if ended {
            return Poll::Ready(None);
        }
        match track.poll_recv(cx) {
            Poll::Ready(Ok(frame)) => Poll::Ready(Some(frame)),
            Poll::Ready(Err(TrackEnded)) => {
                ended = true;
                Poll::Ready(None)
            }
            Poll::Pending => Poll::Pending,
        }
    })
}
