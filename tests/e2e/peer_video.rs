//! Video between two Rust `MeteredPeer`s on an in-process `metered serve`:
//! each sends a `VideoSource` of one colour, in VP8 and in H.264 (forced
//! through `PeerOptions::video_codecs`), and checks the colour, size and
//! stream id of what it decodes; a flood of PLIs costs at most one keyframe
//! per 300 ms.
#![cfg(feature = "video")]

use std::sync::Arc;
use std::time::Duration;

use crate::peer_common::wait_for;
use e2e_support::TestServer;
use futures_util::StreamExt;
use metered_realtime::media::{
    Frame, MediaStream, MediaStreamTrack, StreamMetadata, VideoFrame, VideoSource, VideoSourceOptions, iter_frames,
};
use metered_realtime::peer::{IcePolicy, MeteredPeer, PeerEvent, PeerOptions};
use metered_realtime::signalling::ClientOptions;
use tokio::task::JoinHandle;

fn peer(server: &TestServer, codecs: &[&str]) -> MeteredPeer {
    let opts = PeerOptions::new(ClientOptions::with_api_key(server.key()).url(server.base_url()))
        .ice(IcePolicy::LoopbackOnly)
        .video_codecs(codecs.iter().copied());
    MeteredPeer::with_options(opts).expect("peer")
}

/// A 30 fps `VideoSource` of one colour (Y, U, V), 320x240.
fn coloured(yuv: (u8, u8, u8)) -> (VideoSource, JoinHandle<()>) {
    let source = VideoSource::new(VideoSourceOptions { max_buffered_frames: 3, ..Default::default() });
    let s = source.clone();
    let feeder = tokio::spawn(async move {
        for n in 0u64.. {
            let mut f = s.spare_frame();
            f.reshape(320, 240);
            f.pts = n * 3000;
            f.plane_mut(0).fill(yuv.0);
            f.plane_mut(1).fill(yuv.1);
            f.plane_mut(2).fill(yuv.2);
            if s.push(f).await.is_err() {
                break;
            }
        }
    });
    (source, feeder)
}

/// The first `n` frames after skipping `skip`: the last one's centre colour and size.
async fn look(track: Arc<dyn MediaStreamTrack>, skip: usize, n: usize) -> ((u8, u8, u8), (u32, u32)) {
    let mut frames = iter_frames(track);
    let mut last: Option<VideoFrame> = None;
    let got = tokio::time::timeout(Duration::from_secs(20), async {
        let mut seen = 0;
        while let Some(frame) = frames.next().await {
            let Frame::Video(v) = frame else { panic!("an audio frame on a video track") };
            seen += 1;
            if seen > skip {
                last = Some(v);
            }
            if seen >= skip + n {
                break;
            }
        }
        seen
    })
    .await
    .expect("frames within 20 s");
    assert!(got >= skip + n, "only {got} frames");
    let v = last.expect("a frame");
    (v.yuv_at(v.width / 2, v.height / 2).expect("centre"), (v.width, v.height))
}

fn close(a: (u8, u8, u8), b: (u8, u8, u8)) -> bool {
    let d = |x: u8, y: u8| (i16::from(x) - i16::from(y)).abs();
    d(a.0, b.0) <= 10 && d(a.1, b.1) <= 10 && d(a.2, b.2) <= 10
}

async fn both_ways(codecs: &[&str], expect: &str) {
    let server = TestServer::start().await;
    let (a, b) = (peer(&server, codecs), peer(&server, codecs));
    let (mut ea, mut eb) = (a.events(), b.events());
    const RED: (u8, u8, u8) = (81, 90, 240);
    const BLUE: (u8, u8, u8) = (41, 240, 110);
    let (src_a, feed_a) = coloured(RED);
    let (src_b, feed_b) = coloured(BLUE);
    a.add_stream(
        &MediaStream::with_tracks(Some("a-cam".into()), [src_a.track()]),
        Some(StreamMetadata::role_label("agent", "Alice cam").unwrap()),
    )
    .unwrap();
    a.join("room").await.unwrap();
    b.join("room").await.unwrap();
    b.add_stream(&MediaStream::with_tracks(Some("b-cam".into()), [src_b.track()]), None).unwrap();

    let pick = |ev: &PeerEvent| match ev {
        PeerEvent::Track { track, streams, metadata, .. } => {
            Some((track.clone(), streams.iter().map(|s| s.id().to_owned()).collect::<Vec<_>>(), metadata.clone()))
        }
        _ => None,
    };
    let (ta, sa, _) = wait_for(&mut ea, "a: Track", pick).await;
    let (tb, sb, mb) = wait_for(&mut eb, "b: Track", pick).await;
    assert_eq!(sa, ["b-cam"]);
    assert_eq!(sb, ["a-cam"]);
    assert_eq!(mb.and_then(|m| m.label().map(str::to_owned)).as_deref(), Some("Alice cam"));
    assert_eq!(ta.kind(), metered_realtime::media::MediaKind::Video);

    let ((ca, sza), (cb, szb)) = tokio::join!(look(ta.clone(), 5, 30), look(tb.clone(), 5, 30));
    eprintln!("{expect}: a sees {ca:?} {sza:?}; b sees {cb:?} {szb:?}");
    assert!(close(ca, BLUE), "a sees {ca:?}, b sent {BLUE:?}");
    assert!(close(cb, RED), "b sees {cb:?}, a sent {RED:?}");
    assert_eq!((sza, szb), ((320, 240), (320, 240)));
    feed_a.abort();
    feed_b.abort();
    a.close().await;
    b.close().await;
    server.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn rust_peers_see_each_other_in_vp8() {
    both_ways(&["video/VP8"], "vp8").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn rust_peers_see_each_other_in_h264() {
    both_ways(&["video/H264"], "h264").await;
}

#[test]
fn an_unknown_video_codec_is_a_typed_error() {
    let opts = PeerOptions::new(ClientOptions::with_api_key("pk").url("ws://127.0.0.1:9")).video_codecs(["video/AV1"]);
    let err = MeteredPeer::with_options(opts).expect_err("AV1 is not offered");
    assert!(err.to_string().contains("video/AV1"), "{err}");
}

/// The official Python SDK (aiortc) and a Rust peer exchange video in `codec`
/// (both sides narrowed to it): each checks the other's colour, and the
/// stream id and metadata arrive.
async fn with_python(codec: &str) {
    assert!(
        e2e_support::python_sdk_available(),
        "run scripts/setup: the project venv with the official SDK is missing"
    );
    const RUST: (u8, u8, u8) = (81, 90, 240);
    const PY: (u8, u8, u8) = (145, 54, 34); // green
    let server = TestServer::start().await;
    let rust = peer(&server, &[&format!("video/{codec}")]);
    let mut events = rust.events();
    let (source, feeder) = coloured(RUST);
    rust.add_stream(
        &MediaStream::with_tracks(Some("rust-cam".into()), [source.track()]),
        Some(StreamMetadata::role_label("agent", "Rust cam").unwrap()),
    )
    .unwrap();
    rust.join("video").await.unwrap();
    let args = serde_json::json!({"url": server.base_url(), "key": server.key(), "channel": "video",
        "codec": codec, "yuv": [PY.0, PY.1, PY.2]})
    .to_string();
    let python = tokio::spawn(async move {
        e2e_support::run_python(
            &e2e_support::repo_root().join("tests/python/peer_video.py"),
            &[&args],
            Duration::from_secs(90),
        )
        .await
    });
    let (track, streams, metadata) = wait_for(&mut events, "Track from python", |ev| match ev {
        PeerEvent::Track { track, streams, metadata, .. } => {
            Some((track.clone(), streams.iter().map(|s| s.id().to_owned()).collect::<Vec<_>>(), metadata.clone()))
        }
        _ => None,
    })
    .await;
    assert_eq!(streams, ["py-cam"]);
    let m = metadata.expect("python's metadata");
    assert_eq!((m.role(), m.label()), (Some("camera"), Some("Py cam")));
    let (colour, size) = look(track, 5, 20).await;
    eprintln!("{codec}: rust sees python's {colour:?} {size:?}");
    assert!(close(colour, PY), "rust sees {colour:?}, python sent {PY:?}");
    assert_eq!(size, (320, 240));
    let py = wait_for(&mut events, "python's report", |ev| match ev {
        PeerEvent::Data { data, .. } => data.get("py").cloned(),
        _ => None,
    })
    .await;
    eprintln!("{codec}: python reports {py}");
    assert_eq!(py["kind"], "video");
    assert_eq!(py["stream_ids"], serde_json::json!(["rust-cam"]));
    assert_eq!(py["metadata"]["label"], "Rust cam");
    let seen = &py["seen"]["yuv"];
    let got = (seen[0].as_u64().unwrap() as u8, seen[1].as_u64().unwrap() as u8, seen[2].as_u64().unwrap() as u8);
    assert!(close(got, RUST), "python sees {got:?}, rust sent {RUST:?}");
    assert_eq!(py["seen"]["size"], serde_json::json!([320, 240]));
    rust.close().await;
    let out = python.await.unwrap();
    assert_eq!(out.code, Some(0), "python failed:\nstdout: {}\nstderr: {}", out.stdout, out.stderr);
    feeder.abort();
    server.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn python_sdk_and_rust_see_each_other_in_vp8() {
    with_python("VP8").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn python_sdk_and_rust_see_each_other_in_h264() {
    with_python("H264").await;
}
