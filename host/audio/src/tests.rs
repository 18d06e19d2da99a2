//! AudioSource behaviour under paused (virtual) time, and measured resampling
//! quality. No wall-clock assertions.

use std::sync::Arc;
use std::time::Duration;

use futures_util::StreamExt;

use super::resample::StereoResampler;
use super::*;
use metered_media::{AudioFrame, ChannelLayout, Frame, MediaStreamTrack, SampleFormat, iter_frames};

fn source(rate: u32, layout: InputLayout, max_buffered_seconds: f64) -> AudioSource {
    AudioSource::new(AudioSourceOptions {
        input_rate: rate,
        input_layout: layout,
        max_buffered_seconds,
        timer: PacingTimer::Tokio,
    })
    .unwrap()
}

fn pcm(samples: impl IntoIterator<Item = i16>) -> Vec<u8> {
    samples.into_iter().flat_map(i16::to_le_bytes).collect()
}

fn sine(rate: u32, freq: f64, amplitude: f64, secs: f64) -> Vec<i16> {
    let n = (f64::from(rate) * secs) as usize;
    (0..n)
        .map(|i| {
            (amplitude * 32767.0 * (2.0 * std::f64::consts::PI * freq * i as f64 / f64::from(rate)).sin()).round()
                as i16
        })
        .collect()
}

async fn frame(s: &AudioSource) -> Option<Vec<i16>> {
    let mut f = AudioFrame::from_s16(48_000, ChannelLayout::Stereo, 0, &[]);
    s.recv_into(&mut f).await.ok()?;
    assert_eq!(f.data.len(), FRAME_SAMPLES * 4);
    Some(f.to_s16_interleaved())
}

#[tokio::test(start_paused = true)]
async fn frames_are_paced_every_20ms_from_the_first() {
    let s = source(48_000, InputLayout::Stereo, 5.0);
    let t0 = tokio::time::Instant::now();
    for n in 0..50u32 {
        frame(&s).await.unwrap();
        assert_eq!(tokio::time::Instant::now() - t0, Duration::from_millis(20) * n, "frame {n}");
    }
}

#[tokio::test(start_paused = true)]
async fn underrun_emits_silence_and_audio_resumes() {
    let s = source(48_000, InputLayout::Mono, 5.0);
    for _ in 0..3 {
        assert!(frame(&s).await.unwrap().iter().all(|v| *v == 0));
    }
    assert_eq!(s.underruns(), 3);
    s.push(&pcm(std::iter::repeat_n(1000, 960))).await;
    let f = frame(&s).await.unwrap();
    assert!(f.iter().all(|v| *v == 1000), "mono duplicated to both channels at 0 dB");
    assert!(frame(&s).await.unwrap().iter().all(|v| *v == 0));
}

#[tokio::test(start_paused = true)]
async fn backpressure_suspends_inside_one_oversized_push() {
    let s = source(16_000, InputLayout::Mono, 0.1);
    let one_second = pcm(sine(16_000, 440.0, 0.5, 1.0));
    let pusher = {
        let s = s.clone();
        tokio::spawn(async move { s.push(&one_second).await })
    };
    tokio::time::sleep(Duration::from_millis(1)).await;
    assert!(!pusher.is_finished(), "push must suspend at the cap");
    let buffered = s.buffered_seconds();
    assert!((0.1..=0.125).contains(&buffered), "cap 0.1 s plus at most one 20 ms slice, got {buffered}");
    // Draining lets it continue; it finishes once ~0.9 s have been emitted.
    let mut frames = 0;
    while !pusher.is_finished() {
        frame(&s).await.unwrap();
        frames += 1;
        assert!(s.buffered_seconds() <= 0.125);
        tokio::task::yield_now().await;
    }
    assert!((40..=50).contains(&frames), "{frames}");
}

#[tokio::test(start_paused = true)]
async fn partial_samples_split_at_every_byte_offset_give_identical_output() {
    for (rate, layout, secs) in
        [(48_000, InputLayout::Stereo, 0.004), (16_000, InputLayout::Mono, 0.03), (16_000, InputLayout::Stereo, 0.012)]
    {
        let channels = if layout == InputLayout::Stereo { 2 } else { 1 };
        let input: Vec<u8> = pcm(sine(rate, 1000.0, 0.5, secs * f64::from(channels)));
        let reference = {
            let s = source(rate, layout, 5.0);
            s.push(&input).await;
            s.end();
            collect(&s).await
        };
        assert!(!reference.is_empty());
        // Every byte offset, with an empty push in between.
        for cut in 0..=input.len() {
            let s = source(rate, layout, 5.0);
            s.push(&input[..cut]).await;
            s.push(&[]).await;
            s.push(&input[cut..]).await;
            s.end();
            assert_same_stream(&collect(&s).await, &reference, &format!("split at byte {cut}, {rate} Hz {layout:?}"));
        }
        // One byte at a time.
        let s = source(rate, layout, 5.0);
        for b in input.chunks(1) {
            s.push(b).await;
        }
        s.end();
        assert_same_stream(&collect(&s).await, &reference, "one byte at a time");
    }
}

#[tokio::test(start_paused = true)]
async fn concurrent_pushes_are_not_interleaved() {
    let s = source(48_000, InputLayout::Mono, 0.05);
    // Each push is larger than the cap, so both suspend mid-push.
    let a = tokio::spawn({
        let s = s.clone();
        async move { s.push(&pcm(std::iter::repeat_n(1, 4800))).await }
    });
    tokio::task::yield_now().await;
    let b = tokio::spawn({
        let s = s.clone();
        async move { s.push(&pcm(std::iter::repeat_n(2, 4800))).await }
    });
    let mut out = Vec::new();
    while !(a.is_finished() && b.is_finished()) || s.buffered_seconds() > 0.0 {
        out.extend(frame(&s).await.unwrap());
        tokio::task::yield_now().await;
    }
    let audio: Vec<i16> = out.into_iter().filter(|v| *v != 0).collect();
    assert_eq!(audio.len(), 2 * 4800 * 2);
    assert!(audio[..9600].iter().all(|v| *v == 1) && audio[9600..].iter().all(|v| *v == 2));
}

#[tokio::test(start_paused = true)]
async fn raw_pcm_and_frames_keep_push_order() {
    let s = source(16_000, InputLayout::Mono, 5.0);
    s.push(&pcm(std::iter::repeat_n(4000, 1600))).await; // 100 ms at 16 kHz
    s.push_frame(&AudioFrame::from_s16(48_000, ChannelLayout::Mono, 0, &[-4000; 4800])).await.unwrap();
    s.end();
    let left: Vec<i16> = collect(&s).await.chunks_exact(2).map(|f| f[0]).collect();
    // The raw audio (with its resampler's tail) comes out first, then the frame.
    assert!(left[2400..4500].iter().all(|v| (i32::from(*v) - 4000).abs() < 8));
    assert!(left[5000..9500].iter().all(|v| *v == -4000));
    assert_eq!(left.len(), 9600, "100 ms + 100 ms, nothing more");
}

#[tokio::test(start_paused = true)]
async fn push_after_stop_is_a_no_op() {
    let s = source(48_000, InputLayout::Mono, 5.0);
    s.stop();
    s.push(&pcm([1, 2, 3])).await;
    s.push_frame(&AudioFrame::from_s16(48_000, ChannelLayout::Mono, 0, &[1; 960])).await.unwrap();
    assert_eq!(s.buffered_seconds(), 0.0);
    assert!(frame(&s).await.is_none());
    s.wait_for_playout().await;
}

/// Bit-identical streams (compared without printing thousands of samples).
fn assert_same_stream(got: &[i16], want: &[i16], what: &str) {
    assert_eq!(got.len(), want.len(), "{what}: length");
    let first = got.iter().zip(want).position(|(a, b)| a != b);
    assert!(first.is_none(), "{what}: first difference at sample {first:?}");
}

async fn collect(s: &AudioSource) -> Vec<i16> {
    let mut out = Vec::new();
    while let Some(f) = frame(s).await {
        out.extend(f);
    }
    out
}

#[tokio::test(start_paused = true)]
async fn end_drains_then_ends_and_is_idempotent() {
    let s = source(48_000, InputLayout::Mono, 5.0);
    s.push(&pcm(std::iter::repeat_n(7, 960 * 2 + 100))).await;
    s.end();
    s.end();
    s.push(&pcm([1, 2, 3])).await; // no-op after end
    let a = frame(&s).await.unwrap();
    let b = frame(&s).await.unwrap();
    let c = frame(&s).await.unwrap();
    assert!(a.iter().chain(&b).all(|v| *v == 7));
    assert!(c[..200].iter().all(|v| *v == 7) && c[200..].iter().all(|v| *v == 0), "tail padded with silence");
    assert!(frame(&s).await.is_none());
    assert!(frame(&s).await.is_none(), "stays ended");
    let track: Arc<dyn MediaStreamTrack> = Arc::new(s);
    assert!(track.recv().await.is_err());
}

#[tokio::test(start_paused = true)]
async fn end_flushes_the_resampler_tail() {
    let s = source(16_000, InputLayout::Mono, 5.0);
    // 100 ms at 16 kHz → exactly 4800 output frames plus the filter delay.
    s.push(&pcm(sine(16_000, 1000.0, 0.5, 0.1))).await;
    s.end();
    let out = collect(&s).await;
    let nonzero_end = out.chunks(2).rposition(|f| f[0] != 0).unwrap() + 1;
    assert!((4800..=4800 + 96 + 2).contains(&nonzero_end), "{nonzero_end}");
}

#[tokio::test(start_paused = true)]
async fn clear_drops_queued_audio_and_resolves_playout() {
    let s = source(48_000, InputLayout::Mono, 5.0);
    s.push(&pcm(std::iter::repeat_n(500, 48_000))).await;
    assert!((s.buffered_seconds() - 1.0).abs() < 1e-9);
    let waiter = {
        let s = s.clone();
        tokio::spawn(async move { s.wait_for_playout().await })
    };
    tokio::task::yield_now().await;
    assert!(!waiter.is_finished());
    s.clear();
    assert_eq!(s.buffered_seconds(), 0.0);
    waiter.await.unwrap();
    assert!(frame(&s).await.unwrap().iter().all(|v| *v == 0));
}

#[tokio::test(start_paused = true)]
async fn wait_for_playout_resolves_when_everything_pushed_was_emitted() {
    let s = source(48_000, InputLayout::Mono, 5.0);
    s.push(&pcm(std::iter::repeat_n(9, 960 * 5))).await;
    let waiter = {
        let s = s.clone();
        tokio::spawn(async move {
            s.wait_for_playout().await;
            tokio::time::Instant::now()
        })
    };
    let t0 = tokio::time::Instant::now();
    for _ in 0..5 {
        tokio::task::yield_now().await;
        assert!(!waiter.is_finished());
        frame(&s).await.unwrap();
    }
    let done = waiter.await.unwrap();
    assert_eq!(done - t0, Duration::from_millis(80), "the 5th frame is emitted at t0 + 80 ms");
}

#[tokio::test(start_paused = true)]
async fn a_stall_reanchors_without_a_burst() {
    let s = source(48_000, InputLayout::Mono, 5.0);
    frame(&s).await.unwrap();
    tokio::time::sleep(Duration::from_millis(500)).await;
    let t = tokio::time::Instant::now();
    frame(&s).await.unwrap();
    assert_eq!(tokio::time::Instant::now(), t, "one frame at once");
    frame(&s).await.unwrap();
    assert_eq!(tokio::time::Instant::now() - t, Duration::from_millis(20), "then back to 20 ms pacing");
    assert_eq!(s.resyncs(), 1);
}

#[test]
fn bad_options_are_typed_errors() {
    assert!(matches!("5.1".parse::<InputLayout>(), Err(AudioSourceError::InvalidLayout(l)) if l == "5.1"));
    for m in [0.0, -1.0, f64::NAN, f64::INFINITY, 1e9] {
        let r = AudioSource::new(AudioSourceOptions { max_buffered_seconds: m, ..Default::default() });
        assert!(matches!(r, Err(AudioSourceError::InvalidMaxBuffered(_))), "{m}");
    }
    let r = AudioSource::new(AudioSourceOptions { input_rate: 0, ..Default::default() });
    assert!(matches!(r, Err(AudioSourceError::Resample(_))));
}

#[tokio::test(start_paused = true)]
async fn frames_of_other_rates_formats_and_layouts() {
    let s = source(16_000, InputLayout::Mono, 5.0);
    // 44.1 kHz planar f32 stereo, left 0.25, right -0.25.
    let n = 441 * 4;
    let mut data = Vec::new();
    for v in std::iter::repeat_n(0.25f32, n).chain(std::iter::repeat_n(-0.25f32, n)) {
        data.extend_from_slice(&v.to_le_bytes());
    }
    let f = AudioFrame {
        sample_rate: 44_100,
        layout: ChannelLayout::Stereo,
        format: SampleFormat::F32,
        planar: true,
        pts: 0,
        data,
    };
    s.push_frame(&f).await.unwrap();
    let bad = AudioFrame { data: vec![0; 3], ..f.clone() };
    assert!(matches!(s.push_frame(&bad).await, Err(AudioSourceError::InvalidFrame(_))));
    s.end();
    let out = collect(&s).await;
    let mid = &out[1000 * 2..1001 * 2];
    assert!((i32::from(mid[0]) - 8192).abs() < 40 && (i32::from(mid[1]) + 8192).abs() < 40, "{mid:?}");
    // Six channels downmix to stereo.
    let six = AudioFrame::from_s16(48_000, ChannelLayout::Other(6), 0, &[600; 6 * 960]);
    let s = source(16_000, InputLayout::Mono, 5.0);
    s.push_frame(&six).await.unwrap();
    assert!(frame(&s).await.unwrap().iter().all(|v| *v == 600));
}

#[tokio::test(start_paused = true)]
async fn iter_frames_ends_cleanly_when_the_track_ends() {
    let s = source(48_000, InputLayout::Mono, 5.0);
    s.push(&pcm(std::iter::repeat_n(3, 960 * 3))).await;
    s.end();
    let track: Arc<dyn MediaStreamTrack> = Arc::new(s);
    let frames: Vec<Frame> = iter_frames(track.clone()).collect().await;
    assert_eq!(frames.len(), 3);
    let stopped = source(48_000, InputLayout::Mono, 5.0);
    let t: Arc<dyn MediaStreamTrack> = Arc::new(stopped);
    t.stop();
    assert_eq!(iter_frames(t).count().await, 0);
}

#[test]
fn resampling_16k_to_48k_meets_the_quality_goals() {
    use super::analysis::{resampled_sine_quality, resampler_latency_ms};
    for freq in [1000.0, 7000.0] {
        let q = resampled_sine_quality(freq);
        assert!(q.thd_n_db <= -85.0, "{freq} Hz: THD+N {:.1} dB", q.thd_n_db);
        assert!(q.channels_identical, "mono must be duplicated to both channels");
        assert!(q.gain_db.abs() < 0.05, "{freq} Hz gain {:.3} dB", q.gain_db);
    }
    let latency_ms = resampler_latency_ms();
    let nominal = StereoResampler::new(16_000, 1).unwrap().delay_frames() as f64 / 48.0;
    assert!((latency_ms - nominal).abs() < 0.05, "measured {latency_ms} ms, nominal {nominal} ms");
    assert!(latency_ms <= 2.0, "added latency {latency_ms} ms");
}

#[tokio::test]
async fn the_precise_timer_paces_a_real_source_to_its_end() {
    // Real time, but no timing assertion: three frames come out, then the end.
    let s = AudioSource::new(AudioSourceOptions { input_rate: 48_000, ..Default::default() }).unwrap();
    assert_eq!(s.options().timer, PacingTimer::Precise);
    s.push(&pcm(std::iter::repeat_n(5, 960 * 3))).await;
    s.end();
    let frames: Vec<Frame> = iter_frames(s.track()).collect().await;
    assert_eq!(frames.len(), 3);
    assert_eq!(s.resyncs(), 0);
}
