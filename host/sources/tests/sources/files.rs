//! `from_file`: every container the Debian FFmpeg decodes, looping without
//! a gap, seeking within a frame, the end of file, a reader.

use std::time::{Duration, Instant};

use metered_media_fixtures::{Container, MediaSpec, make_file};
use metered_sources::{EndReason, PlayerState, Sources, from_reader};

use crate::support::*;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_container_plays_its_tone_and_colour_in_real_time_then_ends() {
    let dir = Scratch::new("containers");
    let spec = MediaSpec::default(); // 2 s, 440 Hz, red 320x240@30
    let sources = Sources::operator();
    for container in Container::ALL {
        let path = make_file(&dir.0, container, &spec).expect("ffmpeg makes the file");
        let started = Instant::now();
        let player =
            sources.from_file(path.to_str().unwrap(), false).await.unwrap_or_else(|e| panic!("{container:?}: {e}"));
        assert_eq!(player.video.is_some(), container.has_video(), "{container:?}: video track");
        let duration = player.duration().expect("a file has a duration");
        assert!((duration.as_secs_f64() - 2.0).abs() < 0.15, "{container:?}: duration {duration:?}");
        let audio = player.audio.as_ref().expect("an audio track").track();
        let video = player.video.as_ref().map(|v| v.track());
        let watching = video.map(|v| tokio::spawn(watch(v, 1000, BOUND)));
        let heard = hear(audio, 10.0, BOUND).await;
        let wall = started.elapsed();
        let secs = heard.samples.len() as f64 / 48_000.0;
        assert!((1.9..=2.2).contains(&secs), "{container:?}: {secs} s of audio");
        assert!(wall >= Duration::from_millis(1800), "{container:?}: paced in real time, not {wall:?}");
        let hz = tone(&heard.samples[4800..heard.samples.len() - 4800]);
        assert!((hz - 440.0).abs() < 3.0, "{container:?}: heard {hz} Hz");
        for w in heard.pts.windows(2) {
            assert_eq!(w[1] - w[0], 960, "{container:?}: audio pts are contiguous");
        }
        if let Some(watching) = watching {
            let frames = watching.await.unwrap();
            assert!((57..=63).contains(&frames.len()), "{container:?}: {} video frames", frames.len());
            for f in &frames {
                assert_eq!((f.width, f.height), (320, 240));
                assert!(near(centre(f), RED, 8), "{container:?}: centre {:?}", centre(f));
            }
            for w in frames.windows(2) {
                // 30 fps on the 90 kHz clock, give or take the container's
                // own rounding (WebM keeps milliseconds: 33/34 ms steps).
                let step = w[1].pts - w[0].pts;
                assert!(step.abs_diff(3000) <= 90, "{container:?}: a step of {step} ticks");
            }
        }
        // The tracks ended, so the player did, at the end of the stream.
        let end = state_becomes(&player, Duration::from_secs(5), |s| matches!(s, PlayerState::Ended { .. })).await;
        assert_eq!(end, PlayerState::Ended { reason: EndReason::EndOfStream }, "{container:?}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_looped_two_second_file_plays_twenty_seconds_with_no_gap_at_the_seams() {
    let dir = Scratch::new("loop");
    let spec = MediaSpec::default();
    let path = make_file(&dir.0, Container::Mp4H264Aac, &spec).unwrap();
    let player = Sources::operator().from_file(path.to_str().unwrap(), true).await.unwrap();
    let audio = player.audio.as_ref().unwrap().track();
    let video = player.video.as_ref().unwrap().track();
    let watching = tokio::spawn(watch(video, 600, BOUND));
    let heard = hear(audio, 20.0, BOUND).await;
    let frames = watching.await.unwrap();
    assert!(heard.samples.len() >= 20 * 48_000, "20 s of looped audio, got {}", heard.samples.len());
    assert_eq!(frames.len(), 600, "20 s of looped video");
    // Audio: contiguous timestamps and no silent frame but the very first
    // (encoder priming) — a gap would be silence at a seam.
    for w in heard.pts.windows(2) {
        assert_eq!(w[1] - w[0], 960, "audio pts are contiguous across seams");
    }
    let gaps = silences(&heard.samples);
    eprintln!("silences (start sample, length): {gaps:?}");
    let longest = gaps.iter().map(|g| g.1).max().unwrap_or(0);
    assert!(longest <= 960, "no gap longer than one frame at the seams: {gaps:?}");
    let hz = tone(&heard.samples);
    assert!((hz - 440.0).abs() < 3.0, "heard {hz} Hz");
    // Video: no step between frames longer than one frame.
    let longest = frames.windows(2).map(|w| w[1].pts - w[0].pts).max().unwrap();
    assert!(longest <= 3000 + 30, "the longest video step is {longest} ticks (one frame is 3000)");
    let last = frames.last().unwrap().pts as f64 / 90_000.0;
    assert!((last - (20.0 - 1.0 / 30.0)).abs() < 0.05, "the 600th frame is at {last} s");
    // A/V: the 20 s mark of each track lands together.
    let audio_end = *heard.pts.last().unwrap() as f64 / 48_000.0;
    assert!((audio_end - last).abs() < 0.05, "audio at {audio_end} s, video at {last} s");
    player.stop();
    let end = state_becomes(&player, Duration::from_secs(5), |s| matches!(s, PlayerState::Ended { .. })).await;
    assert_eq!(end, PlayerState::Ended { reason: EndReason::Stopped });
}

/// Runs of silence (|x| < 0.002 for at least 0.5 ms) in a tone: gaps.
fn silences(samples: &[f32]) -> Vec<(usize, usize)> {
    let mut out = Vec::new();
    let mut run = 0;
    for (i, x) in samples.iter().enumerate() {
        if x.abs() < 0.002 {
            run += 1;
        } else {
            if run >= 24 {
                out.push((i - run, run));
            }
            run = 0;
        }
    }
    if run >= 24 {
        out.push((samples.len() - run, run));
    }
    out
}

/// A file whose frame N has luma 16 + 2N (so a frame says where it is).
fn counting_file(dir: &std::path::Path) -> std::path::PathBuf {
    let path = dir.join("counting.mp4");
    let status = std::process::Command::new("ffmpeg")
        .args(["-nostdin", "-y", "-loglevel", "error", "-f", "lavfi", "-i"])
        .arg("nullsrc=size=160x120:rate=30,geq=lum='16+2*N':cb=128:cr=128")
        .args(["-f", "lavfi", "-i", "sine=frequency=440:sample_rate=48000", "-t", "3.5", "-ac", "2"])
        .args(["-c:v", "libx264", "-crf", "4", "-g", "15", "-pix_fmt", "yuv420p", "-c:a", "aac"])
        .arg(&path)
        .status()
        .expect("ffmpeg runs");
    assert!(status.success());
    path
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn seek_lands_within_one_frame() {
    let dir = Scratch::new("seek");
    let path = counting_file(&dir.0);
    let player = Sources::operator().from_file(path.to_str().unwrap(), false).await.unwrap();
    let video = player.video.as_ref().unwrap().track();
    let first = watch(video.clone(), 3, BOUND).await;
    let frame_of = |f: &metered_media::VideoFrame| (f64::from(centre(f).0) - 16.0) / 2.0;
    assert!(frame_of(&first[0]).abs() < 1.0, "starts at frame 0: {}", frame_of(&first[0]));
    for (to, want) in [(2.5, 75.0), (0.5, 15.0), (3.0, 90.0)] {
        player.seek(Duration::from_secs_f64(to)).unwrap();
        // Frames already queued before the seek are dropped by it; the
        // next one is the sought position.
        let next = watch(video.clone(), 1, BOUND).await;
        let got = frame_of(&next[0]);
        assert!((got - want).abs() <= 1.0, "seek to {to} s gave frame {got}, want {want}");
        let pos = player.position().as_secs_f64();
        assert!((pos - to).abs() < 0.2, "position {pos} s after seeking to {to} s");
    }
    player.stop();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_reader_plays_like_a_file_and_looping_a_live_reader_is_refused_cleanly() {
    let dir = Scratch::new("reader");
    let path = make_file(&dir.0, Container::WebmVp8Opus, &MediaSpec { seconds: 1.0, ..MediaSpec::default() }).unwrap();
    let bytes = std::fs::read(&path).unwrap();
    let player = from_reader(std::io::Cursor::new(bytes), false).await.unwrap();
    let heard = hear(player.audio.as_ref().unwrap().track(), 5.0, BOUND).await;
    assert!((0.9..=1.2).contains(&(heard.samples.len() as f64 / 48_000.0)));
    let hz = tone(&heard.samples[2400..heard.samples.len() - 2400]);
    assert!((hz - 440.0).abs() < 3.0, "heard {hz} Hz");
    // A reader that is not media is a typed error.
    let err = from_reader(std::io::Cursor::new(vec![7u8; 4096]), false).await.unwrap_err();
    assert!(matches!(err, metered_sources::SourceError::Open { .. }), "{err:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn stopping_a_player_or_its_tracks_releases_the_decoder() {
    let _lock = LEAK_LOCK.lock().await;
    let dir = Scratch::new("release");
    let path = make_file(&dir.0, Container::Mp4H264Aac, &MediaSpec { seconds: 5.0, ..MediaSpec::default() }).unwrap();
    let sources = Sources::operator();
    // Warm-up (FFmpeg's one-time initialisation opens nothing lasting).
    sources.from_file(path.to_str().unwrap(), false).await.unwrap().stop();
    tokio::time::sleep(Duration::from_millis(200)).await;
    let baseline = resources();
    // 1. stop() on the player.
    let player = sources.from_file(path.to_str().unwrap(), true).await.unwrap();
    let _ = hear(player.audio.as_ref().unwrap().track(), 0.2, BOUND).await;
    player.stop();
    assert_released(baseline, "after stop()").await;
    // 2. Stopping every track (the player kept).
    let player = sources.from_file(path.to_str().unwrap(), true).await.unwrap();
    player.audio.as_ref().unwrap().track().stop();
    player.video.as_ref().unwrap().track().stop();
    assert_released(baseline, "after stopping both tracks").await;
    let end = state_becomes(&player, Duration::from_secs(5), |s| matches!(s, PlayerState::Ended { .. })).await;
    assert_eq!(end, PlayerState::Ended { reason: EndReason::Stopped });
    // 3. Dropping everything.
    let player = sources.from_file(path.to_str().unwrap(), true).await.unwrap();
    let track = player.video.as_ref().unwrap().track();
    drop(player);
    let _ = watch(track.clone(), 2, BOUND).await;
    drop(track);
    assert_released(baseline, "after dropping the player and its tracks").await;
}
