//! Two Rust `MeteredPeer`s in one channel on an in-process `metered serve`:
//! each hears the other's tone (frequency and level measured on the decoded
//! frames), metadata and stream ids arrive, and a peer that leaves ends the
//! other side's iterators.
#![cfg(feature = "webrtc")]

use crate::peer_common as common;

use std::time::Duration;

use common::{measure, peer, tone, until_end, wait_for};
use e2e_support::TestServer;
use metered_realtime::media::{MediaStream, StreamMetadata};
use metered_realtime::peer::PeerEvent;

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn rust_peers_hear_each_other_with_metadata_and_stream_ids() {
    let server = TestServer::start().await;
    let (a, b) = (peer(&server.base_url(), server.key()), peer(&server.base_url(), server.key()));
    let (mut ea, mut eb) = (a.events(), b.events());
    let (src_a, feed_a) = tone(440.0, 0.5);
    let (src_b, feed_b) = tone(880.0, 0.25);
    a.add_stream(
        &MediaStream::with_tracks(Some("a-voice".into()), [src_a.track()]),
        Some(StreamMetadata::role_label("agent", "Alice").unwrap()),
    )
    .unwrap();
    a.join("room").await.unwrap();
    b.join("room").await.unwrap();
    // Added after joining: reaches the peer already there.
    b.add_stream(
        &MediaStream::with_tracks(Some("b-voice".into()), [src_b.track()]),
        Some(StreamMetadata::role_label("listener", "Bob").unwrap()),
    )
    .unwrap();

    let pick = |ev: &PeerEvent| match ev {
        PeerEvent::Track { track, streams, metadata, .. } => {
            Some((track.clone(), streams.iter().map(|s| s.id().to_owned()).collect::<Vec<_>>(), metadata.clone()))
        }
        _ => None,
    };
    let (ta, sa, ma) = wait_for(&mut ea, "a: Track", pick).await;
    let (tb, sb, mb) = wait_for(&mut eb, "b: Track", pick).await;
    assert_eq!(sa, ["b-voice"]);
    assert_eq!(sb, ["a-voice"]);
    assert_eq!(ma.and_then(|m| m.label().map(str::to_owned)).as_deref(), Some("Bob"));
    assert_eq!(mb.and_then(|m| m.label().map(str::to_owned)).as_deref(), Some("Alice"));

    let ((fa, la), (fb, lb)) = tokio::join!(measure(ta.clone(), 10, 50), measure(tb.clone(), 10, 50));
    eprintln!("a hears {fa:.1} Hz at {la:.1} dBFS; b hears {fb:.1} Hz at {lb:.1} dBFS");
    assert!((fa - 880.0).abs() < 10.0, "a hears {fa} Hz");
    assert!((fb - 440.0).abs() < 10.0, "b hears {fb} Hz");
    assert!((la - -15.1).abs() < 2.0, "a level {la} dBFS");
    assert!((lb - -9.0).abs() < 2.0, "b level {lb} dBFS");

    // b leaves: a sees PeerLeft and its iterator ends cleanly.
    b.close().await;
    wait_for(&mut ea, "a: PeerLeft", |ev| matches!(ev, PeerEvent::PeerLeft { .. }).then_some(())).await;
    until_end(ta, Duration::from_secs(5)).await;
    feed_a.abort();
    feed_b.abort();
    a.close().await;
    server.shutdown().await;
}
