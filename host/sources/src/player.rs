//! [`Player`]: what opening a source gives — its audio and video tracks
//! (either may be absent), its state as events, position and duration, and
//! `stop()`. The seed's word: "You own the player."
//!
//! Whoever decodes or captures (a thread per source) holds a [`Feed`]: the
//! sinks the tracks read from and the [`Control`] it checks for stop and
//! seek requests. The decoder, device or socket is released when the player
//! is stopped, when every track has been stopped, or when the player and
//! all its tracks are dropped.

use std::fmt;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::task::{Context, Poll};
use std::time::{Duration, Instant};

use metered_audio::AudioSource;
use metered_media::{Anchor, Frame, MediaKind, MediaStreamTrack, TrackEnded, VideoSource};
use parking_lot::{Condvar, Mutex};
use tokio::sync::watch;

use super::error::SourceError;

/// Where a player is in its life.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum PlayerState {
    /// Opening the source.
    Connecting,
    /// Media is flowing.
    Live,
    /// A live source dropped; reopening with backoff while the tracks stay
    /// live (silence, the last picture held).
    Reconnecting {
        /// Attempts so far (1 on the first retry).
        attempt: u32,
        /// Why the stream dropped.
        reason: String,
    },
    /// Finished; the tracks have ended.
    Ended {
        /// Why.
        reason: EndReason,
    },
}

/// Why a player ended.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum EndReason {
    /// The end of the file (not looping).
    EndOfStream,
    /// `stop()` on the player, every track stopped, or everything dropped.
    Stopped,
    /// The source failed and could not be reopened.
    Failed(SourceError),
}

/// The shared state between a player, its tracks and its feeder.
pub(crate) struct Control {
    stopped: AtomicBool,
    state: watch::Sender<PlayerState>,
    /// Tracks not yet stopped; at zero the feeder stops.
    live_tracks: AtomicUsize,
    seek: Mutex<Option<Duration>>,
    /// Wakes a feeder sleeping in [`Control::sleep`].
    wake: Condvar,
    wake_lock: Mutex<()>,
    /// Where the timeline maps to media positions: `(timeline, media)`
    /// pairs, one per pass (start, loop, seek, reconnect), newest last.
    segments: Mutex<std::collections::VecDeque<(f64, f64)>>,
    /// Duration (µs, `u64::MAX` = unknown).
    duration_us: AtomicU64,
    seekable: AtomicBool,
}

impl Control {
    pub(crate) fn new() -> Arc<Self> {
        Arc::new(Self {
            stopped: AtomicBool::new(false),
            state: watch::channel(PlayerState::Connecting).0,
            live_tracks: AtomicUsize::new(0),
            seek: Mutex::new(None),
            wake: Condvar::new(),
            wake_lock: Mutex::new(()),
            segments: Mutex::new(std::collections::VecDeque::new()),
            duration_us: AtomicU64::new(u64::MAX),
            seekable: AtomicBool::new(false),
        })
    }

    /// Whether the feeder must stop.
    pub(crate) fn is_stopped(&self) -> bool {
        self.stopped.load(Ordering::Acquire)
    }

    /// Asks the feeder to stop (idempotent).
    pub(crate) fn stop(&self) {
        if !self.stopped.swap(true, Ordering::AcqRel) {
            let _g = self.wake_lock.lock();
            self.wake.notify_all();
        }
    }

    /// Sleeps up to `d`, or less if the player is stopped or a seek is
    /// requested meanwhile.
    pub(crate) fn sleep(&self, d: Duration) {
        let mut g = self.wake_lock.lock();
        if self.is_stopped() || self.seek.lock().is_some() {
            return;
        }
        let _ = self.wake.wait_for(&mut g, d);
    }

    /// Sets the state (and logs the transition).
    pub(crate) fn set_state(&self, state: PlayerState) {
        self.state.send_if_modified(|s| {
            if *s == state || matches!(s, PlayerState::Ended { .. }) {
                return false;
            }
            *s = state;
            true
        });
    }

    /// The final state: ended, for `reason` (later states are ignored).
    pub(crate) fn finish(&self, reason: EndReason) {
        tracing::debug!(target: "metered_sources", ?reason, "player ended");
        self.state.send_replace(PlayerState::Ended { reason });
    }

    /// The pending seek request, taken.
    pub(crate) fn take_seek(&self) -> Option<Duration> {
        self.seek.lock().take()
    }

    /// Whether a seek is waiting.
    pub(crate) fn has_seek(&self) -> bool {
        self.seek.lock().is_some()
    }

    /// From timeline position `timeline` on, the media position is `media`
    /// plus the time since.
    pub(crate) fn add_segment(&self, timeline: f64, media: f64) {
        let mut s = self.segments.lock();
        s.push_back((timeline, media));
        while s.len() > 8 {
            s.pop_front();
        }
    }

    /// The media position at timeline position `playhead`.
    fn media_at(&self, playhead: Option<f64>) -> f64 {
        let s = self.segments.lock();
        match playhead {
            None => s.front().map_or(0.0, |(_, m)| *m),
            Some(p) => s.iter().rev().find(|(t, _)| *t <= p).or(s.front()).map_or(0.0, |(t, m)| m + (p - t).max(0.0)),
        }
    }

    pub(crate) fn set_duration(&self, d: Option<Duration>) {
        self.duration_us.store(d.map_or(u64::MAX, |d| d.as_micros() as u64), Ordering::Relaxed);
    }

    pub(crate) fn duration(&self) -> Option<Duration> {
        match self.duration_us.load(Ordering::Relaxed) {
            u64::MAX => None,
            us => Some(Duration::from_micros(us)),
        }
    }

    pub(crate) fn set_seekable(&self, seekable: bool) {
        self.seekable.store(seekable, Ordering::Relaxed);
    }

    fn track_stopped(&self) {
        if self.live_tracks.fetch_sub(1, Ordering::AcqRel) == 1 {
            self.stop();
        }
    }
}

/// Keeps the feeder alive while any handle (the player, a track) exists.
struct Owner {
    control: Arc<Control>,
}

impl Drop for Owner {
    fn drop(&mut self) {
        self.control.stop();
    }
}

/// One handle's share of the ownership: counted once, however it is stopped.
struct Share {
    owner: Arc<Owner>,
    stopped: AtomicBool,
}

impl Share {
    fn stop(&self) {
        if !self.stopped.swap(true, Ordering::AcqRel) {
            self.owner.control.track_stopped();
        }
    }
}

/// A player's audio track: 48 kHz stereo 20 ms frames, paced like every
/// `AudioSource`. Cheap to clone (clones are the same track).
#[derive(Clone)]
pub struct AudioTrack {
    source: AudioSource,
    share: Arc<Share>,
}

/// A player's video track: I420 frames paced by their timestamps. Cheap to
/// clone (clones are the same track).
#[derive(Clone)]
pub struct VideoTrack {
    source: VideoSource,
    share: Arc<Share>,
}

impl fmt::Debug for AudioTrack {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("AudioTrack").field("id", &self.source.id()).finish()
    }
}

impl fmt::Debug for VideoTrack {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("VideoTrack").field("id", &MediaStreamTrack::id(&self.source)).finish()
    }
}

impl AudioTrack {
    /// The track as a generic track (for `MediaStream`, a peer, `iter_frames`).
    pub fn track(&self) -> Arc<dyn MediaStreamTrack> {
        Arc::new(self.clone())
    }

    /// Frames emitted as silence because the decoder or the network was late.
    pub fn underruns(&self) -> u64 {
        self.source.underruns()
    }
}

impl VideoTrack {
    /// The track as a generic track (for `MediaStream`, a peer, `iter_frames`).
    pub fn track(&self) -> Arc<dyn MediaStreamTrack> {
        Arc::new(self.clone())
    }

    /// Frames dropped because the consumer fell behind (live sources).
    pub fn dropped_frames(&self) -> u64 {
        self.source.dropped_frames()
    }

    /// Frames emitted, and how many of those repeated a held picture.
    pub fn emitted_frames(&self) -> (u64, u64) {
        self.source.emitted_frames()
    }
}

impl MediaStreamTrack for AudioTrack {
    fn kind(&self) -> MediaKind {
        MediaKind::Audio
    }
    fn id(&self) -> &str {
        self.source.id()
    }
    fn poll_recv_into(&self, cx: &mut Context<'_>, out: &mut Frame) -> Poll<Result<(), TrackEnded>> {
        MediaStreamTrack::poll_recv_into(&self.source, cx, out)
    }
    fn stop(&self) {
        MediaStreamTrack::stop(&self.source);
        self.share.stop();
    }
}

impl MediaStreamTrack for VideoTrack {
    fn kind(&self) -> MediaKind {
        MediaKind::Video
    }
    fn id(&self) -> &str {
        MediaStreamTrack::id(&self.source)
    }
    fn poll_recv_into(&self, cx: &mut Context<'_>, out: &mut Frame) -> Poll<Result<(), TrackEnded>> {
        self.source.poll_recv_into(cx, out)
    }
    fn stop(&self) {
        self.source.stop();
        self.share.stop();
    }
}

/// An opened source. `audio` / `video` are its tracks, either may be
/// `None` when the source lacks that media — check before `add_track`.
pub struct Player {
    /// The audio track, if the source has audio.
    pub audio: Option<AudioTrack>,
    /// The video track, if the source has video.
    pub video: Option<VideoTrack>,
    control: Arc<Control>,
    anchor: Anchor,
    _owner: Arc<Owner>,
    label: String,
}

impl fmt::Debug for Player {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Player")
            .field("source", &self.label)
            .field("audio", &self.audio.is_some())
            .field("video", &self.video.is_some())
            .field("state", &self.state())
            .finish()
    }
}

impl Player {
    /// Stops the player: the decoder, device or socket is released and the
    /// tracks end. Idempotent.
    pub fn stop(&self) {
        if let Some(a) = &self.audio {
            MediaStreamTrack::stop(a);
        }
        if let Some(v) = &self.video {
            MediaStreamTrack::stop(v);
        }
        self.control.stop();
    }

    /// The state now.
    pub fn state(&self) -> PlayerState {
        self.control.state.borrow().clone()
    }

    /// State changes, from the current one on.
    pub fn states(&self) -> watch::Receiver<PlayerState> {
        self.control.state.subscribe()
    }

    /// Waits until the player has ended; why.
    pub async fn ended(&self) -> EndReason {
        let mut rx = self.states();
        loop {
            if let PlayerState::Ended { reason } = &*rx.borrow_and_update() {
                return reason.clone();
            }
            if rx.changed().await.is_err() {
                return EndReason::Stopped;
            }
        }
    }

    /// The media position playing now (where the tracks' shared schedule
    /// is; a loop starts again at zero).
    pub fn position(&self) -> Duration {
        let playhead = self.anchor.get().map(|a| Instant::now().saturating_duration_since(a).as_secs_f64());
        let media = self.control.media_at(playhead);
        let media = self.duration().map_or(media, |d| media.min(d.as_secs_f64()));
        Duration::from_secs_f64(media.max(0.0))
    }

    /// The media's duration, when known (files; not live streams).
    pub fn duration(&self) -> Option<Duration> {
        match self.control.duration_us.load(Ordering::Relaxed) {
            u64::MAX => None,
            us => Some(Duration::from_micros(us)),
        }
    }

    /// Jumps to `position` (files): queued media is dropped and playback
    /// continues from there on the same tracks, on the same schedule.
    pub fn seek(&self, position: Duration) -> Result<(), SourceError> {
        if !self.control.seekable.load(Ordering::Relaxed) {
            return Err(SourceError::NotSeekable { location: self.label.clone() });
        }
        if self.control.is_stopped() {
            return Err(SourceError::Stopped);
        }
        *self.control.seek.lock() = Some(position);
        let _g = self.control.wake_lock.lock();
        self.control.wake.notify_all();
        Ok(())
    }

    /// The source as shown in logs and errors.
    pub fn source(&self) -> &str {
        &self.label
    }
}

/// What a feeder (decoder or capture thread) writes into: the player's
/// sinks, their shared schedule, and its control.
pub(crate) struct Feed {
    pub(crate) audio: Option<AudioSource>,
    pub(crate) video: Option<VideoSource>,
    pub(crate) anchor: Anchor,
    pub(crate) control: Arc<Control>,
}

impl Feed {
    /// Ends both tracks and the player with `reason`.
    pub(crate) fn finish(&self, reason: EndReason) {
        if let Some(a) = &self.audio {
            a.end();
        }
        if let Some(v) = &self.video {
            v.end();
        }
        self.control.finish(reason);
    }
}

/// Builds a player around the sinks a feeder fills. `audio` / `video` are
/// the sinks for the media the source has (the others are `None`).
pub(crate) fn assemble(
    label: String,
    audio: Option<AudioSource>,
    video: Option<VideoSource>,
    anchor: Anchor,
    control: Arc<Control>,
) -> (Player, Feed) {
    let owner = Arc::new(Owner { control: control.clone() });
    let share = || {
        control.live_tracks.fetch_add(1, Ordering::AcqRel);
        Arc::new(Share { owner: owner.clone(), stopped: AtomicBool::new(false) })
    };
    let audio_track = audio.clone().map(|source| AudioTrack { source, share: share() });
    let video_track = video.clone().map(|source| VideoTrack { source, share: share() });
    let player = Player {
        audio: audio_track,
        video: video_track,
        control: control.clone(),
        anchor: anchor.clone(),
        _owner: owner,
        label,
    };
    let feed = Feed { audio, video, anchor, control };
    (player, feed)
}

#[cfg(test)]
mod tests {
    use super::*;
    use metered_audio::AudioSourceOptions;
    use metered_media::VideoSourceOptions;

    fn player() -> (Player, Feed) {
        let audio = AudioSource::new(AudioSourceOptions::default()).unwrap();
        let video = VideoSource::new(VideoSourceOptions::default());
        assemble("test".into(), Some(audio), Some(video), Anchor::new(), Control::new())
    }

    #[test]
    fn stopping_every_track_stops_the_feeder() {
        let (p, feed) = player();
        let (a, v) = (p.audio.clone().unwrap(), p.video.clone().unwrap());
        MediaStreamTrack::stop(&a);
        MediaStreamTrack::stop(&a); // counted once
        assert!(!feed.control.is_stopped(), "the video track still plays");
        MediaStreamTrack::stop(&v);
        assert!(feed.control.is_stopped());
    }

    #[test]
    fn dropping_the_player_and_its_tracks_stops_the_feeder_but_a_kept_track_keeps_it() {
        let (p, feed) = player();
        let kept = p.video.clone().unwrap().track();
        drop(p);
        assert!(!feed.control.is_stopped(), "a peer still holds the video track");
        drop(kept);
        assert!(feed.control.is_stopped());
    }

    #[test]
    fn stop_ends_the_state_once_and_seek_needs_a_seekable_source() {
        let (p, feed) = player();
        assert_eq!(p.state(), PlayerState::Connecting);
        assert!(matches!(p.seek(Duration::from_secs(1)), Err(SourceError::NotSeekable { .. })));
        feed.control.set_seekable(true);
        p.seek(Duration::from_secs(1)).unwrap();
        assert_eq!(feed.control.take_seek(), Some(Duration::from_secs(1)));
        p.stop();
        assert!(feed.control.is_stopped());
        feed.finish(EndReason::Stopped);
        feed.control.set_state(PlayerState::Live);
        assert_eq!(p.state(), PlayerState::Ended { reason: EndReason::Stopped }, "ended is final");
    }
}
