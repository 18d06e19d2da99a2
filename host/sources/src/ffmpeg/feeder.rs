//! The feeder: one thread per FFmpeg-backed player that demuxes and decodes
//! the input and writes into the player's tracks.
//!
//! The tracks pace themselves (each on its own, on one shared [`Anchor`]);
//! the feeder only keeps them supplied:
//! - **files** preroll until a consumer starts (both queues bounded), then
//!   decode at most [`LEAD`] ahead of the playhead, so a track nobody reads
//!   never stalls the other (its frames are dropped instead);
//! - **live** sources (RTSP, devices) push as media arrives, drop the oldest
//!   when a consumer stalls, and reconnect with backoff while the tracks
//!   stay live (silence; the last picture held).
//!
//! Timestamps are rebased onto one timeline starting at 0: continuous across
//! loops (each loop starts where the longer of audio and video ended),
//! seeks and reconnects.

use std::sync::Arc;
use std::time::{Duration, Instant};

use ffmpeg_next as ff;
use metered_audio::{AudioSource, AudioSourceOptions, InputLayout};
use metered_media::{Anchor, AudioFrame, ChannelLayout, Overflow, SampleFormat, VideoSource, VideoSourceOptions};

use super::convert::{self, VideoConverter};
use super::open::{self, Deadline, Target};
use crate::error::SourceError;
use crate::player::{self, Control, EndReason, Feed, Player, PlayerState};

/// How far ahead of the playhead a file is decoded once playing.
pub(crate) const LEAD: Duration = Duration::from_millis(500);
/// Audio queued per track at most (the preroll of a file).
const AUDIO_BUFFER_SECS: f64 = 2.0;
/// A live source's audio beyond this much queued is dropped (latency bound).
const LIVE_AUDIO_MAX_SECS: f64 = 0.3;
/// Video frames queued per track at most.
const VIDEO_QUEUE: usize = 30;
/// Longest silence inserted for a gap in the audio timeline.
const MAX_GAP: f64 = 10.0;
/// Undecodable packets in a row before the source counts as broken.
const MAX_BAD_PACKETS: u32 = 500;

/// How a feeder runs.
#[derive(Debug, Clone)]
pub(crate) struct FeedConfig {
    /// The source as shown.
    pub(crate) label: String,
    /// A live source (no read-ahead; reconnects; drops the oldest).
    pub(crate) live: bool,
    /// Repeat a seekable file.
    pub(crate) looping: bool,
    /// Reopen a live source that drops.
    pub(crate) reconnect: bool,
    /// Bound on opening.
    pub(crate) open_timeout: Duration,
    /// Bound on one read.
    pub(crate) read_timeout: Duration,
    /// Video output size (`None`: the source's).
    pub(crate) video_size: Option<(u32, u32)>,
}

/// What the first open found, reported before the player is built.
#[derive(Debug, Clone, Copy)]
struct Found {
    audio: bool,
    video: bool,
    duration: Option<Duration>,
    seekable: bool,
}

struct Decoders {
    audio: Option<(usize, f64, ff::decoder::Audio)>,
    video: Option<(usize, f64, ff::decoder::Video, f64)>,
    origin: Option<f64>,
}

fn seconds(r: ff::Rational) -> f64 {
    if r.denominator() == 0 { 0.0 } else { f64::from(r.numerator()) / f64::from(r.denominator()) }
}

fn decoders(input: &ff::format::context::Input, label: &str) -> Result<Decoders, SourceError> {
    let unsupported = |reason: String| SourceError::Unsupported { location: label.to_owned(), reason };
    let threads = ff::codec::threading::Config { count: 1, ..Default::default() };
    let audio = match input.streams().best(ff::media::Type::Audio) {
        Some(s) => {
            let mut ctx = ff::codec::context::Context::from_parameters(s.parameters())
                .map_err(|e| unsupported(format!("audio stream: {e}")))?;
            ctx.set_threading(threads);
            let dec = ctx.decoder().audio().map_err(|e| unsupported(format!("audio decoder: {e}")))?;
            let (ch, rate) = (dec.channels(), dec.rate());
            if ch > convert::MAX_CHANNELS || (rate != 0 && !convert::RATES.contains(&rate)) {
                return Err(unsupported(format!("audio with {ch} channels at {rate} Hz")));
            }
            Some((s.index(), seconds(s.time_base()), dec))
        }
        None => None,
    };
    let video = match input.streams().best(ff::media::Type::Video) {
        Some(s) => {
            let mut ctx = ff::codec::context::Context::from_parameters(s.parameters())
                .map_err(|e| unsupported(format!("video stream: {e}")))?;
            ctx.set_threading(threads);
            let dec = ctx.decoder().video().map_err(|e| unsupported(format!("video decoder: {e}")))?;
            let (w, h) = (dec.width(), dec.height());
            if w > metered_media::VideoFrame::MAX_SIDE || h > metered_media::VideoFrame::MAX_SIDE {
                return Err(unsupported(format!("video of {w}x{h}")));
            }
            let fps = [s.avg_frame_rate(), s.rate()].into_iter().map(seconds).find(|f| (1.0..=240.0).contains(f));
            Some((s.index(), seconds(s.time_base()), dec, 1.0 / fps.unwrap_or(30.0)))
        }
        None => None,
    };
    if audio.is_none() && video.is_none() {
        return Err(unsupported("no audio or video stream".into()));
    }
    // The timeline's zero: the earliest stream start (files), or the first
    // frame (live, and streams without a start time).
    let start = |index: Option<usize>| {
        let s = input.stream(index?)?;
        (s.start_time() != ff::ffi::AV_NOPTS_VALUE).then(|| s.start_time() as f64 * seconds(s.time_base()))
    };
    let starts: Vec<f64> =
        [start(audio.as_ref().map(|a| a.0)), start(video.as_ref().map(|v| v.0))].into_iter().flatten().collect();
    let origin = starts.into_iter().reduce(f64::min);
    Ok(Decoders { audio, video, origin })
}

/// Opens `target` and finds its decoders: the first open, a reconnect, a
/// loop's reopen.
fn open_input(
    target: &mut Target,
    control: &Arc<Control>,
    deadline: &Deadline,
    origin: Instant,
    cfg: &FeedConfig,
) -> Result<(ff::format::context::Input, Decoders), SourceError> {
    let input = open::open(target, control, deadline, origin, cfg.open_timeout, &cfg.label)?;
    let decs = decoders(&input, &cfg.label)?;
    Ok((input, decs))
}

impl Decoders {
    /// Drops what the decoders hold (after a seek).
    fn flush(&mut self) {
        if let Some((_, _, d)) = self.audio.as_mut() {
            d.flush();
        }
        if let Some((_, _, d, _)) = self.video.as_mut() {
            d.flush();
        }
    }
}

/// Opens `target` on a thread of its own and returns the player once the
/// first open has worked (or its typed error).
pub(crate) async fn start(mut target: Target, config: FeedConfig) -> Result<Player, SourceError> {
    let (found_tx, found_rx) = tokio::sync::oneshot::channel();
    let (feed_tx, feed_rx) = std::sync::mpsc::channel::<(Feed, Option<tokio::sync::oneshot::Sender<()>>)>();
    // The player's control exists before the player: the open (and every
    // read after it) checks its stop flag; dropping this future trips it.
    let control = Control::new();
    let cancel = CancelOnDrop(control.clone());
    let thread_control = control.clone();
    let cfg = config.clone();
    std::thread::Builder::new()
        .name("metered-source".into())
        .spawn(move || {
            let origin = Instant::now();
            let deadline = Deadline::default();
            let (input, decs) = match open_input(&mut target, &thread_control, &deadline, origin, &cfg) {
                Ok(x) => x,
                Err(e) => {
                    let _ = found_tx.send(Err(e));
                    return;
                }
            };
            let duration = (input.duration() > 0).then(|| Duration::from_micros(input.duration() as u64));
            let found = Found {
                audio: decs.audio.is_some(),
                video: decs.video.is_some(),
                duration,
                seekable: !cfg.live && duration.is_some(),
            };
            if found_tx.send(Ok(found)).is_err() {
                return;
            }
            let Ok((feed, primed)) = feed_rx.recv() else { return };
            let run = std::panic::AssertUnwindSafe(|| {
                let mut session = Session::new(target, cfg, feed, deadline, origin);
                session.primed = primed;
                session.run(input, decs);
            });
            if std::panic::catch_unwind(run).is_err() {
                tracing::error!(target: "metered_sources", "a source's feeder panicked; its player ended");
            }
        })
        .map_err(|e| SourceError::Open { location: config.label.clone(), reason: format!("no thread: {e}") })?;
    let found = found_rx.await.map_err(|_| SourceError::Open {
        location: config.label.clone(),
        reason: "the source's thread ended while opening".into(),
    })??;
    let control = cancel.disarm();
    let anchor = Anchor::new();
    let audio = found.audio.then(|| {
        let opts = AudioSourceOptions {
            input_rate: 48_000,
            input_layout: InputLayout::Stereo,
            max_buffered_seconds: AUDIO_BUFFER_SECS,
            ..AudioSourceOptions::default()
        };
        let a = AudioSource::new(opts).expect("valid fixed options");
        a.share_anchor(anchor.clone());
        a
    });
    let video = found.video.then(|| {
        VideoSource::new(VideoSourceOptions {
            max_buffered_frames: VIDEO_QUEUE,
            overflow: if config.live { Overflow::DropOldest } else { Overflow::Wait },
            anchor: anchor.clone(),
            origin_pts: Some(0),
            ..VideoSourceOptions::default()
        })
    });
    let (player, feed) = player::assemble(config.label.clone(), audio, video, anchor, control);
    feed.control.set_duration(found.duration);
    feed.control.set_seekable(found.seekable);
    feed.control.set_state(PlayerState::Live);
    let (primed_tx, primed_rx) = tokio::sync::oneshot::channel();
    let _ = feed_tx.send((feed, (!config.live).then_some(primed_tx)));
    if !config.live {
        // A file's tracks start with its first frames, not with silence: wait
        // until the read-ahead has begun before handing them out (or the
        // feeder ended: the sender is dropped; reads are bounded).
        let _ = primed_rx.await;
    }
    Ok(player)
}

/// Audio a file's track holds before its player is handed out.
const PRIMED_AUDIO_SECS: f64 = 0.1;

/// Stops an open in progress if the future awaiting it is dropped.
struct CancelOnDrop(Arc<Control>);

impl CancelOnDrop {
    fn disarm(self) -> Arc<Control> {
        let c = self.0.clone();
        std::mem::forget(self);
        c
    }
}

impl Drop for CancelOnDrop {
    fn drop(&mut self) {
        self.0.stop();
    }
}

/// How a pass over an input ended.
enum Pass {
    EndOfStream,
    Stopped,
    Failed(SourceError),
}

/// The feeder's state across passes (loops, seeks, reconnects).
struct Session {
    target: Target,
    cfg: FeedConfig,
    feed: Feed,
    deadline: Deadline,
    origin_instant: Instant,
    /// Timeline = `offset + (pts_seconds − origin)`.
    offset: f64,
    origin: Option<f64>,
    /// Timeline ends of what this pass pushed.
    audio_end: f64,
    video_end: f64,
    /// Timeline end of the audio pushed so far.
    audio_pushed: f64,
    /// Frames before this media time are decoded but not emitted (seek).
    skip_before: Option<f64>,
    frame: AudioFrame,
    silence: AudioFrame,
    converter: VideoConverter,
    dropping: bool,
    bad_packets: u32,
    /// A looping file's length: each pass is cut there (an encoder's end
    /// padding would otherwise be a gap at every seam) and the next starts
    /// exactly there, on both tracks (no A/V drift however long it loops).
    pass_len: Option<f64>,
    /// Told once the tracks hold their first frames (files).
    primed: Option<tokio::sync::oneshot::Sender<()>>,
}

impl Session {
    fn new(target: Target, cfg: FeedConfig, feed: Feed, deadline: Deadline, origin_instant: Instant) -> Self {
        Self {
            target,
            cfg,
            feed,
            deadline,
            origin_instant,
            offset: 0.0,
            origin: None,
            audio_end: 0.0,
            video_end: 0.0,
            audio_pushed: 0.0,
            skip_before: None,
            frame: AudioFrame::empty(),
            silence: AudioFrame::empty(),
            converter: VideoConverter::default(),
            dropping: false,
            bad_packets: 0,
            pass_len: None,
            primed: None,
        }
    }

    fn control(&self) -> &Arc<Control> {
        &self.feed.control
    }

    /// Tells the opener to hand the tracks out now.
    fn release_primed(&mut self) {
        if let Some(tx) = self.primed.take() {
            let _ = tx.send(());
        }
    }

    /// Tells the opener the tracks hold their first frames, once they do.
    fn check_primed(&mut self) {
        if self.primed.is_none() {
            return;
        }
        let audio = self.feed.audio.as_ref().is_none_or(|a| a.buffered_seconds() >= PRIMED_AUDIO_SECS);
        let video = self.feed.video.as_ref().is_none_or(|v| v.queued_frames() > 0);
        if audio && video {
            self.release_primed();
        }
    }

    /// The playhead's timeline position, once a track has started.
    fn playhead(&self) -> Option<f64> {
        self.feed.anchor.get().map(|a| Instant::now().saturating_duration_since(a).as_secs_f64())
    }

    fn run(mut self, mut input: ff::format::context::Input, mut decs: Decoders) {
        // A live stream's timeline starts at its first frame: its streams'
        // start times (RTCP wall clocks, device epochs) say nothing about now.
        self.origin = if self.cfg.live { None } else { decs.origin };
        if self.cfg.looping && !self.cfg.live {
            self.pass_len = self.control().duration().map(|d| d.as_secs_f64()).filter(|d| *d > 0.05);
        }
        self.control().add_segment(0.0, 0.0);
        let mut attempt = 0u32;
        loop {
            let pass = self.pass(&mut input, &mut decs);
            let reason = match pass {
                Pass::EndOfStream => EndReason::EndOfStream,
                Pass::Stopped => EndReason::Stopped,
                Pass::Failed(e) if self.cfg.reconnect && !self.control().is_stopped() => {
                    // Live: keep the tracks, reopen with backoff.
                    if let Some(v) = &self.feed.video {
                        v.set_hold(Some(Duration::from_secs_f64(decs.video.as_ref().map_or(1.0 / 30.0, |v| v.3))));
                    }
                    match self.reconnect(&mut attempt, e) {
                        Some((i, d)) => {
                            input = i;
                            decs = d;
                            continue;
                        }
                        None => EndReason::Stopped,
                    }
                }
                Pass::Failed(e) => EndReason::Failed(e),
            };
            if let Some(v) = &self.feed.video {
                v.set_hold(None);
            }
            self.feed.finish(reason);
            return;
        }
    }

    fn reconnect(&mut self, attempt: &mut u32, mut why: SourceError) -> Option<(ff::format::context::Input, Decoders)> {
        loop {
            *attempt += 1;
            tracing::info!(target: "metered_sources", source = %self.cfg.label, attempt, "source dropped ({why}); reconnecting");
            self.control().set_state(PlayerState::Reconnecting { attempt: *attempt, reason: why.to_string() });
            let backoff =
                Duration::from_millis(250u64.saturating_mul(1 << (*attempt - 1).min(5))).min(Duration::from_secs(5));
            self.control().sleep(backoff);
            if self.control().is_stopped() {
                return None;
            }
            let control = self.control().clone();
            match open_input(&mut self.target, &control, &self.deadline, self.origin_instant, &self.cfg) {
                Ok((input, decs)) => {
                    *attempt = 0;
                    // The new stream's clock starts where the playhead is.
                    let now = self.playhead().unwrap_or(self.audio_end.max(self.video_end));
                    self.offset = now;
                    self.origin = None;
                    self.audio_end = now;
                    self.video_end = now;
                    self.control().add_segment(now, 0.0);
                    self.control().set_state(PlayerState::Live);
                    return Some((input, decs));
                }
                Err(SourceError::Stopped) => return None,
                Err(e) => why = e,
            }
        }
    }

    /// Demuxes and decodes until the end, a stop or an error.
    fn pass(&mut self, input: &mut ff::format::context::Input, decs: &mut Decoders) -> Pass {
        let mut packet = ff::Packet::empty();
        let mut frame_a = ff::frame::Audio::empty();
        let mut frame_v = ff::frame::Video::empty();
        loop {
            if self.control().is_stopped() {
                return Pass::Stopped;
            }
            if let Some(to) = self.control().take_seek()
                && let Err(e) = self.seek(input, decs, to)
            {
                return Pass::Failed(e);
            }
            self.deadline.arm(self.origin_instant, self.cfg.read_timeout);
            let read = packet.read(input);
            self.deadline.disarm();
            match read {
                Ok(()) => {
                    let idx = packet.stream();
                    if let Some((ai, tb, dec)) = decs.audio.as_mut()
                        && *ai == idx
                    {
                        let tb = *tb;
                        if dec.send_packet(&packet).is_err() {
                            self.bad_packet();
                        }
                        while dec.receive_frame(&mut frame_a).is_ok() {
                            self.on_audio(&frame_a, tb);
                        }
                    } else if let Some((vi, tb, dec, interval)) = decs.video.as_mut()
                        && *vi == idx
                    {
                        let (tb, interval) = (*tb, *interval);
                        if dec.send_packet(&packet).is_err() {
                            self.bad_packet();
                        }
                        while dec.receive_frame(&mut frame_v).is_ok() {
                            if let Err(e) = self.on_video(&frame_v, tb, interval) {
                                return Pass::Failed(e);
                            }
                        }
                    }
                    if self.bad_packets > MAX_BAD_PACKETS {
                        return Pass::Failed(SourceError::Open {
                            location: self.cfg.label.clone(),
                            reason: format!("{MAX_BAD_PACKETS} undecodable packets in a row"),
                        });
                    }
                }
                Err(ff::Error::Eof) if self.cfg.live && self.cfg.reconnect => {
                    // A live stream has no end: the server went away.
                    return Pass::Failed(SourceError::Open {
                        location: self.cfg.label.clone(),
                        reason: "the stream ended".into(),
                    });
                }
                Err(ff::Error::Eof) => {
                    self.drain(decs, &mut frame_a, &mut frame_v);
                    if self.cfg.looping && !self.cfg.live {
                        if let Err(e) = self.restart(input, decs) {
                            return Pass::Failed(e);
                        }
                        continue;
                    }
                    return Pass::EndOfStream;
                }
                Err(ff::Error::Exit) if self.control().is_stopped() => return Pass::Stopped,
                Err(ff::Error::Exit) => {
                    return Pass::Failed(SourceError::Timeout {
                        location: self.cfg.label.clone(),
                        after: self.cfg.read_timeout,
                    });
                }
                Err(ff::Error::Other { errno: 11 }) => std::thread::sleep(Duration::from_millis(2)),
                Err(ff::Error::InvalidData) => self.bad_packet(),
                Err(e) => {
                    return Pass::Failed(SourceError::Open { location: self.cfg.label.clone(), reason: e.to_string() });
                }
            }
        }
    }

    fn bad_packet(&mut self) {
        self.bad_packets += 1;
    }

    fn drain(&mut self, decs: &mut Decoders, fa: &mut ff::frame::Audio, fv: &mut ff::frame::Video) {
        if let Some((_, tb, dec)) = decs.audio.as_mut() {
            let tb = *tb;
            let _ = dec.send_eof();
            while dec.receive_frame(fa).is_ok() {
                self.on_audio(fa, tb);
            }
        }
        if let Some((_, tb, dec, interval)) = decs.video.as_mut() {
            let (tb, interval) = (*tb, *interval);
            let _ = dec.send_eof();
            while dec.receive_frame(fv).is_ok() {
                let _ = self.on_video(fv, tb, interval);
            }
        }
    }

    /// Back to the start for the next loop: it begins where the longer of
    /// audio and video ended.
    fn restart(&mut self, input: &mut ff::format::context::Input, decs: &mut Decoders) -> Result<(), SourceError> {
        let end = match self.pass_len {
            Some(len) if self.audio_end.max(self.video_end) > self.offset => self.offset + len,
            _ => self.audio_end.max(self.video_end),
        };
        if end <= self.offset {
            return Err(SourceError::Unsupported {
                location: self.cfg.label.clone(),
                reason: "nothing decoded to loop".into(),
            });
        }
        if matches!(self.target, Target::Url { .. }) {
            // Reopened rather than sought: a seek to 0 skips a codec's
            // priming packet (AAC's pre-roll) and the pass then starts from
            // a cold decoder, a 10 ms dip at every seam. A reopen replays
            // the start exactly as the first pass heard it (a local open
            // takes about a millisecond, inside the read-ahead).
            let control = self.control().clone();
            (*input, *decs) = open_input(&mut self.target, &control, &self.deadline, self.origin_instant, &self.cfg)?;
            self.origin = decs.origin;
        } else {
            input.seek(0, ..).map_err(|_| SourceError::NotSeekable { location: self.cfg.label.clone() })?;
            decs.flush();
        }
        self.offset = end;
        self.control().add_segment(end, 0.0);
        Ok(())
    }

    fn seek(
        &mut self,
        input: &mut ff::format::context::Input,
        decs: &mut Decoders,
        to: Duration,
    ) -> Result<(), SourceError> {
        let origin = self.origin.unwrap_or(0.0);
        let target = origin + to.as_secs_f64();
        let ts = (target * 1e6) as i64;
        input.seek(ts, ..ts).map_err(|_| SourceError::NotSeekable { location: self.cfg.label.clone() })?;
        decs.flush();
        if let Some(a) = &self.feed.audio {
            a.clear();
        }
        if let Some(v) = &self.feed.video {
            v.clear();
        }
        // The sought position plays a moment from now on the same schedule.
        let resume = self.playhead().map_or(self.audio_pushed, |p| p + 0.05);
        self.offset = resume - to.as_secs_f64();
        self.audio_end = resume;
        self.video_end = resume;
        self.audio_pushed = self.audio_pushed.min(resume);
        self.skip_before = Some(target);
        self.control().add_segment(resume, to.as_secs_f64());
        Ok(())
    }

    /// The timeline position of a frame at `pts` ticks of `tb` seconds.
    fn timeline(&mut self, pts: Option<i64>, tb: f64, fallback: f64) -> Option<f64> {
        let Some(pts) = pts else { return Some(fallback) };
        let s = pts as f64 * tb;
        if let Some(before) = self.skip_before {
            if s + 0.005 < before {
                return None;
            }
            self.skip_before = None;
        }
        let origin = *self.origin.get_or_insert(s);
        let t = self.offset + (s - origin);
        if self.cfg.live && self.feed.anchor.get().is_none() {
            // A live source's schedule starts with its first frame.
            let at = Instant::now().checked_sub(Duration::from_secs_f64(t.max(0.0))).unwrap_or_else(Instant::now);
            self.feed.anchor.get_or_set(at);
        }
        Some(t.max(0.0))
    }

    /// Waits until a frame at timeline `t` is within [`LEAD`] of the playhead
    /// (files, once playing).
    fn pace(&self, t: f64) {
        if self.cfg.live {
            return;
        }
        while let Some(playhead) = self.playhead() {
            let ahead = t - playhead - LEAD.as_secs_f64();
            if ahead <= 0.0 || self.control().is_stopped() {
                return;
            }
            self.control().sleep(Duration::from_secs_f64(ahead.min(0.05)));
            if self.control().has_seek() {
                return;
            }
        }
    }

    fn on_audio(&mut self, src: &ff::frame::Audio, tb: f64) {
        let Some(audio) = self.feed.audio.clone() else { return };
        let mut frame = std::mem::take(&mut self.frame);
        if !convert::audio(src, &mut frame) {
            self.frame = frame;
            return;
        }
        let Some(mut t) = self.timeline(src.timestamp(), tb, self.audio_pushed) else {
            self.frame = frame;
            return;
        };
        if let Some(len) = self.pass_len {
            // Cut the pass at the file's length (see `pass_len`).
            let left = len - (t - self.offset);
            let keep = (left * f64::from(frame.sample_rate)).round();
            if keep < 1.0 {
                self.frame = frame;
                return;
            }
            convert::truncate(&mut frame, keep as usize);
        }
        let d = frame.duration_secs();
        // A gap (a later start, a loop whose video was longer, a reconnect):
        // fill it with silence so audio stays on the timeline.
        let played = audio.played_samples() as f64 / 48_000.0;
        let gap = t - self.audio_pushed.max(played);
        if self.cfg.live && gap > LIVE_AUDIO_MAX_SECS {
            // A live stream jumped ahead (a camera's clock, streams that
            // start apart): follow it rather than queue silence that would
            // hold its audio back; both tracks shift, so A/V stay together.
            self.offset -= gap;
            t -= gap;
        } else if gap > 0.02 {
            self.push_silence(&audio, gap.min(MAX_GAP));
        }
        self.pace(t);
        if self.cfg.live && audio.buffered_seconds() > LIVE_AUDIO_MAX_SECS {
            self.frame = frame;
            return; // drop: keep a live source's audio near real time
        }
        if self.push_audio(&audio, &frame) {
            self.audio_pushed = self.audio_pushed.max(t) + d;
        }
        self.check_primed();
        self.audio_end = self.audio_end.max(t + d);
        self.frame = frame;
    }

    fn push_silence(&mut self, audio: &AudioSource, secs: f64) {
        let samples = (secs * 48_000.0) as usize;
        let mut left = samples;
        while left > 0 {
            let n = left.min(960);
            let mut s = std::mem::take(&mut self.silence);
            s.sample_rate = 48_000;
            s.layout = ChannelLayout::Stereo;
            s.format = SampleFormat::S16;
            s.planar = false;
            s.data.clear();
            s.data.resize(n * 4, 0);
            let ok = self.push_audio(audio, &s);
            self.silence = s;
            if !ok {
                break;
            }
            self.audio_pushed += n as f64 / 48_000.0;
            left -= n;
        }
    }

    /// Queues audio: waits for room while prerolling, drops once playing
    /// (a consumer that reads keeps room; one that doesn't must not stall
    /// the video).
    fn push_audio(&mut self, audio: &AudioSource, frame: &AudioFrame) -> bool {
        loop {
            match audio.try_push_frame(frame) {
                Ok(true) => return true,
                Ok(false) if self.cfg.live || self.feed.anchor.get().is_some() || self.control().is_stopped() => {
                    return false;
                }
                Ok(false) => {
                    // Full before the other track started: primed enough.
                    self.release_primed();
                    self.control().sleep(Duration::from_millis(5));
                }
                Err(_) => return false,
            }
            if self.control().has_seek() {
                return false;
            }
        }
    }

    fn on_video(&mut self, src: &ff::frame::Video, tb: f64, interval: f64) -> Result<(), SourceError> {
        let Some(video) = self.feed.video.clone() else { return Ok(()) };
        let Some(t) = self.timeline(src.timestamp(), tb, self.video_end) else { return Ok(()) };
        if self.pass_len.is_some_and(|len| t - self.offset >= len - 0.001) {
            return Ok(()); // past the file's length: the next pass starts here
        }
        self.pace(t);
        let mut frame = video.spare_frame();
        self.converter
            .convert(src, self.cfg.video_size, &mut frame)
            .map_err(|reason| SourceError::Unsupported { location: self.cfg.label.clone(), reason })?;
        frame.pts = (t * 90_000.0).round() as u64;
        video.set_hold(None);
        loop {
            match video.try_push(frame) {
                Ok(None) => break,
                Ok(Some(back)) => {
                    frame = back;
                    if self.feed.anchor.get().is_some() && !self.dropping {
                        // Playing: a full queue means nobody reads this
                        // track; drop its oldest instead of stalling.
                        video.set_overflow(Overflow::DropOldest);
                        self.dropping = true;
                        continue;
                    }
                    if self.control().is_stopped() || self.control().has_seek() {
                        break;
                    }
                    self.release_primed();
                    self.control().sleep(Duration::from_millis(5));
                }
                Err(e) => {
                    return Err(SourceError::Unsupported { location: self.cfg.label.clone(), reason: e.to_string() });
                }
            }
        }
        self.video_end = self.video_end.max(t + interval);
        self.check_primed();
        Ok(())
    }
}
