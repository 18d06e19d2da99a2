//! `from_rtsp` against GStreamer's RTSP server on 127.0.0.1: tcp and udp,
//! a server killed and restarted mid-stream, a camera that never answers.

use std::time::{Duration, Instant};

use metered_media_fixtures::{MediaSpec, RtspServer, StalledServer};
use metered_sources::{EndReason, PlayerState, RtspTransport, SourceError, SourceOptions, Sources};

use crate::support::*;

fn spec() -> MediaSpec {
    MediaSpec { width: 320, height: 240, ..MediaSpec::default() }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rtsp_over_tcp_and_udp_carries_the_tone_and_the_picture() {
    let server = RtspServer::start(&spec()).expect("the RTSP server starts");
    let sources = Sources::operator();
    for transport in [RtspTransport::Tcp, RtspTransport::Udp] {
        let started = Instant::now();
        let player = sources.from_rtsp(&server.url(), transport).await.unwrap_or_else(|e| panic!("{transport:?}: {e}"));
        let opened = started.elapsed();
        assert_eq!(player.state(), PlayerState::Live);
        assert_eq!(player.duration(), None, "a live stream has no duration");
        let video = player.video.as_ref().expect("video").track();
        let first = watch(video.clone(), 1, Duration::from_secs(10)).await;
        let first_frame = started.elapsed();
        assert_eq!(first.len(), 1, "{transport:?}: a first frame");
        eprintln!("rtsp {transport:?}: open {opened:?}, first frame {first_frame:?}");
        let watching = tokio::spawn(watch(video, 30, Duration::from_secs(10)));
        let heard = hear(player.audio.as_ref().expect("audio").track(), 1.5, Duration::from_secs(10)).await;
        let frames = watching.await.unwrap();
        assert!(heard.samples.len() >= 48_000, "{transport:?}: {} samples", heard.samples.len());
        let tail = &heard.samples[heard.samples.len() - 48_000..];
        let hz = tone(tail);
        assert!((hz - 440.0).abs() < 3.0, "{transport:?}: heard {hz} Hz");
        assert!(frames.len() >= 20, "{transport:?}: {} frames in a second", frames.len());
        let last = frames.last().unwrap();
        assert_eq!((last.width, last.height), (320, 240));
        assert!(near(centre(last), RED, 10), "{transport:?}: centre {:?}", centre(last));
        player.stop();
        let end = state_becomes(&player, Duration::from_secs(5), |s| matches!(s, PlayerState::Ended { .. })).await;
        assert_eq!(end, PlayerState::Ended { reason: EndReason::Stopped });
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_dropped_stream_reconnects_on_the_same_live_tracks() {
    let mut server = RtspServer::start(&spec()).expect("the RTSP server starts");
    let options = SourceOptions {
        read_timeout: Duration::from_secs(1),
        open_timeout: Duration::from_secs(2),
        ..SourceOptions::default()
    };
    let player = Sources::operator().open("rtsp", &server.url(), &options).await.unwrap();
    let audio = player.audio.as_ref().unwrap().track();
    let video = player.video.as_ref().unwrap().track();
    let (audio_id, video_id) = (audio.id().to_owned(), video.id().to_owned());
    let before = hear(audio.clone(), 1.0, Duration::from_secs(10)).await;
    assert!((tone(&before.samples) - 440.0).abs() < 3.0);

    server.kill();
    let s = state_becomes(&player, Duration::from_secs(10), |s| matches!(s, PlayerState::Reconnecting { .. })).await;
    eprintln!("while down: {s:?}");
    // Meanwhile the tracks stay live: silence, and the last picture held.
    let watching = tokio::spawn(watch(video.clone(), 10, Duration::from_secs(5)));
    let gap = hear(audio.clone(), 1.0, Duration::from_secs(5)).await;
    assert!(gap.samples.len() >= 40_000, "audio keeps flowing while down: {}", gap.samples.len());
    assert!(metered_media_fixtures::rms(&gap.samples[gap.samples.len() - 9600..]) < 0.01, "silence while down");
    let held = watching.await.unwrap();
    assert!(held.len() >= 3, "the last picture is held while down ({} frames)", held.len());
    assert!(near(centre(held.last().unwrap()), RED, 10));

    server.restart().expect("the server restarts on its port");
    state_becomes(&player, Duration::from_secs(20), |s| *s == PlayerState::Live).await;
    let after = hear(audio.clone(), 1.5, Duration::from_secs(10)).await;
    let tail = &after.samples[after.samples.len() - 24_000..];
    let hz = tone(tail);
    assert!((hz - 440.0).abs() < 3.0, "media resumes on the same track: {hz} Hz");
    assert_eq!((audio.id(), video.id()), (audio_id.as_str(), video_id.as_str()), "the same tracks");
    // Timestamps never went back (no renegotiation, one timeline).
    assert!(after.pts.first().unwrap() > before.pts.last().unwrap());
    player.stop();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_camera_that_accepts_and_never_answers_times_out_within_its_bound() {
    let _lock = LEAK_LOCK.lock().await;
    let stalled = StalledServer::start().unwrap();
    let sources = Sources::operator();
    let bound = Duration::from_secs(2);
    let options = SourceOptions { open_timeout: bound, read_timeout: bound, ..SourceOptions::default() };
    let url = stalled.url("rtsp");
    let _ = sources.open("rtsp", &url, &options).await; // warm-up
    let baseline = resources();
    for transport in [RtspTransport::Tcp, RtspTransport::Udp, RtspTransport::Http] {
        let started = Instant::now();
        let e =
            sources.open("rtsp", &url, &SourceOptions { transport, ..options.clone() }).await.map(|_| ()).unwrap_err();
        let took = started.elapsed();
        assert!(matches!(e, SourceError::Timeout { after, .. } if after == bound), "{transport:?}: {e:?}");
        assert!(took < bound + Duration::from_secs(2), "{transport:?}: gave up after {took:?} (bound {bound:?})");
    }
    // Refused connections are an open error, not a hang.
    let free = std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
    let e = sources.open("rtsp", &format!("rtsp://127.0.0.1:{free}/x"), &options).await.map(|_| ()).unwrap_err();
    assert!(matches!(e, SourceError::Open { .. } | SourceError::Timeout { .. }), "{e:?}");
    drop(stalled);
    assert_released(baseline, "after timeouts").await;
}
