//! [`MediaStream`]: a grouping of tracks under one stream id.

use std::sync::Arc;

use parking_lot::Mutex;

use super::track::{MediaKind, MediaStreamTrack};

/// A lightweight grouping of tracks under one stream id — the counterpart of the
/// browser's `MediaStream`. A receiving peer sees the sender's `id`, stable across
/// reconnects; the object itself is fresh per remote stream and per reconnect, so
/// key any bookkeeping by [`MediaStream::id`], not by object identity.
///
/// Clones share the same grouping.
#[derive(Clone)]
pub struct MediaStream {
    id: Arc<str>,
    tracks: Arc<Mutex<Vec<Arc<dyn MediaStreamTrack>>>>,
}

impl std::fmt::Debug for MediaStream {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let ids: Vec<String> = self.tracks.lock().iter().map(|t| t.id().to_owned()).collect();
        f.debug_struct("MediaStream").field("id", &self.id).field("tracks", &ids).finish()
    }
}

fn random_hex_id() -> String {
    let bytes: [u8; 16] = rand::random();
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

impl Default for MediaStream {
    fn default() -> Self {
        Self::new()
    }
}

impl MediaStream {
    /// An empty stream with a random hex id.
    pub fn new() -> Self {
        Self::with_id(random_hex_id())
    }

    /// An empty stream with an explicit, stable id (`"agent-voice"`).
    pub fn with_id(id: impl Into<String>) -> Self {
        Self { id: Arc::from(id.into()), tracks: Arc::default() }
    }

    /// A stream seeded with tracks.
    pub fn with_tracks(id: Option<String>, tracks: impl IntoIterator<Item = Arc<dyn MediaStreamTrack>>) -> Self {
        let s = id.map_or_else(Self::new, Self::with_id);
        for t in tracks {
            s.add_track(t);
        }
        s
    }

    /// The stream id receivers see.
    pub fn id(&self) -> &str {
        &self.id
    }

    /// Snapshot of the tracks.
    pub fn get_tracks(&self) -> Vec<Arc<dyn MediaStreamTrack>> {
        self.tracks.lock().clone()
    }

    /// Tracks whose kind is audio.
    pub fn get_audio_tracks(&self) -> Vec<Arc<dyn MediaStreamTrack>> {
        self.of_kind(MediaKind::Audio)
    }

    /// Tracks whose kind is video.
    pub fn get_video_tracks(&self) -> Vec<Arc<dyn MediaStreamTrack>> {
        self.of_kind(MediaKind::Video)
    }

    fn of_kind(&self, kind: MediaKind) -> Vec<Arc<dyn MediaStreamTrack>> {
        self.tracks.lock().iter().filter(|t| t.kind() == kind).cloned().collect()
    }

    /// Adds a track to the grouping (no effect on already-negotiated senders; a
    /// track already present by id is not added twice).
    pub fn add_track(&self, track: Arc<dyn MediaStreamTrack>) {
        let mut tracks = self.tracks.lock();
        if !tracks.iter().any(|t| t.id() == track.id()) {
            tracks.push(track);
        }
    }

    /// Removes a track (by id) from the grouping.
    pub fn remove_track(&self, track: &dyn MediaStreamTrack) {
        self.tracks.lock().retain(|t| t.id() != track.id());
    }
}

#[cfg(test)]
mod tests {
    use std::task::{Context, Poll};

    use super::*;
    use crate::{Frame, TrackEnded};

    struct Fake(&'static str, MediaKind);

    impl MediaStreamTrack for Fake {
        fn kind(&self) -> MediaKind {
            self.1
        }
        fn id(&self) -> &str {
            self.0
        }
        fn poll_recv_into(&self, _: &mut Context<'_>, _: &mut Frame) -> Poll<Result<(), TrackEnded>> {
            Poll::Ready(Err(TrackEnded))
        }
        fn stop(&self) {}
    }

    #[test]
    fn ids_are_random_hex_unless_given() {
        let (a, b) = (MediaStream::new(), MediaStream::new());
        assert_eq!(a.id().len(), 32);
        assert!(a.id().chars().all(|c| c.is_ascii_hexdigit()));
        assert_ne!(a.id(), b.id());
        assert_eq!(MediaStream::with_id("agent-voice").id(), "agent-voice");
        assert_eq!(MediaStream::with_tracks(Some("cam".into()), []).id(), "cam");
    }

    #[test]
    fn tracks_are_grouped_by_kind_added_once_and_removed() {
        let mic: Arc<dyn MediaStreamTrack> = Arc::new(Fake("mic", MediaKind::Audio));
        let cam: Arc<dyn MediaStreamTrack> = Arc::new(Fake("cam", MediaKind::Video));
        let s = MediaStream::with_tracks(None, [mic.clone()]);
        s.add_track(cam.clone());
        s.add_track(mic.clone());
        let ids = |v: Vec<Arc<dyn MediaStreamTrack>>| v.iter().map(|t| t.id().to_owned()).collect::<Vec<_>>();
        assert_eq!(ids(s.get_tracks()), ["mic", "cam"]);
        assert_eq!(ids(s.get_audio_tracks()), ["mic"]);
        assert_eq!(ids(s.get_video_tracks()), ["cam"]);
        let snapshot = s.get_tracks();
        s.remove_track(&*mic);
        assert_eq!(ids(s.get_tracks()), ["cam"]);
        assert_eq!(snapshot.len(), 2, "get_tracks is a snapshot");
        let clone = s.clone();
        clone.remove_track(&*cam);
        assert!(s.get_tracks().is_empty(), "clones share the grouping");
    }
}
