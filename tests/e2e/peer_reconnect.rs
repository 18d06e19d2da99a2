//! Reconnect: `metered serve` restarts (same port, same keys) mid-call between two
//! Rust `MeteredPeer`s. Media resumes on a fresh track with the same stream id
//! and metadata, the old track's iterator ends, and the new connection fires one
//! `Track`. (With api-key auth each connection gets a new peer id, so the peer
//! that reconnects first sees the other leave and re-join.)
#![cfg(feature = "webrtc")]

use crate::peer_common as common;

use std::time::Duration;

use common::{measure, tone, until_end, wait_for};
use e2e_support::TestServer;
use metered_realtime::media::{MediaStream, StreamMetadata};
use metered_realtime::peer::{IcePolicy, MeteredPeer, PeerEvent, PeerOptions};
use metered_realtime::signalling::{ClientOptions, ReconnectOptions};

fn peer(server: &TestServer) -> MeteredPeer {
    let reconnect = ReconnectOptions {
        initial_delay: Duration::from_millis(50),
        max_delay: Duration::from_millis(200),
        ..ReconnectOptions::default()
    };
    let client = ClientOptions::with_api_key(server.key()).url(server.base_url()).reconnect(Some(reconnect));
    MeteredPeer::with_options(PeerOptions::new(client).ice(IcePolicy::LoopbackOnly)).expect("peer")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn media_resumes_after_a_server_restart_with_the_same_stream_id() {
    let server = TestServer::start().await;
    let config = server.config.clone();
    let (a, b) = (peer(&server), peer(&server));
    let mut eb = b.events();
    let (src, feeder) = tone(440.0, 0.5);
    a.add_stream(
        &MediaStream::with_tracks(Some("a-voice".into()), [src.track()]),
        Some(StreamMetadata::role_label("agent", "A").unwrap()),
    )
    .unwrap();
    a.join("room").await.unwrap();
    b.join("room").await.unwrap();
    let track_of = |ev: &PeerEvent| match ev {
        PeerEvent::Track { track, streams, metadata, .. } => Some((
            track.clone(),
            streams.first().map(|s| s.id().to_owned()),
            metadata.as_ref().and_then(|m| m.label().map(str::to_owned)),
        )),
        _ => None,
    };
    let (first, sid, label) = wait_for(&mut eb, "first Track", track_of).await;
    assert_eq!((sid.as_deref(), label.as_deref()), (Some("a-voice"), Some("A")));
    let (f, _) = measure(first.clone(), 5, 25).await;
    assert!((f - 440.0).abs() < 10.0, "{f}");

    server.shutdown().await;
    let server =
        TestServer { server: metered_realtime::server::Server::bind(config.clone()).await.expect("rebind"), config };

    let (second, sid, label) = wait_for(&mut eb, "Track after the restart", track_of).await;
    assert_eq!((sid.as_deref(), label.as_deref()), (Some("a-voice"), Some("A")), "same stream id and metadata");
    until_end(first, Duration::from_secs(5)).await;
    let (f, _) = measure(second, 5, 50).await;
    assert!((f - 440.0).abs() < 10.0, "after the restart b hears {f} Hz");
    // No duplicate Track for the same connection.
    let extra = tokio::time::timeout(Duration::from_secs(2), wait_for(&mut eb, "extra Track", track_of)).await;
    assert!(extra.is_err(), "a duplicate Track event arrived");

    feeder.abort();
    a.close().await;
    b.close().await;
    server.shutdown().await;
}
