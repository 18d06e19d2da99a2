//! Hostile inbound signalling: a raw `SignallingClient` in the room sends a
//! `MeteredPeer` garbage SDP, oversized and flooding candidates, malformed and
//! oversized track metadata. The peer reports typed errors, never surfaces the
//! reserved key as data, never panics, and still hears an honest peer afterwards.
#![cfg(feature = "webrtc")]

use crate::peer_common as common;

use std::time::Duration;

use common::{measure, peer, tone, wait_for};
use e2e_support::TestServer;
use metered_realtime::media::MediaStream;
use metered_realtime::peer::{PeerEvent, PeerState};
use metered_realtime::signalling::{ClientOptions, SignallingClient};
use serde_json::json;

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn garbage_signalling_is_refused_and_the_peer_keeps_working() {
    let server = TestServer::start().await;
    let victim = peer(&server.base_url(), server.key());
    let mut ev = victim.events();
    victim.join("room").await.unwrap();
    let attacker =
        SignallingClient::connect_with(ClientOptions::with_api_key(server.key()).url(server.base_url())).await.unwrap();
    attacker.subscribe("room").await.unwrap();
    let victim_id = victim.peer_id().unwrap();
    wait_for(&mut ev, "attacker joins", |e| matches!(e, PeerEvent::PeerJoined { .. }).then_some(())).await;

    let desc = |kind: &str, sdp: String| json!({"type": "rtc-description", "description": {"type": kind, "sdp": sdp}});
    let many_sections: String =
        (0..2000).map(|i| format!("m=audio 9 UDP/TLS/RTP/SAVPF 111\r\na=mid:{i}\r\n")).collect();
    let payloads = vec![
        desc("offer", String::new()),
        desc("offer", "v=0\r\n".into()),
        desc("offer", "\u{0}\u{feff}garbage\r\nm=\r\na=mid:\r\n".into()),
        desc("offer", format!("v=0\r\no=- 1 1 IN IP4 0.0.0.0\r\ns=-\r\nt=0 0\r\n{many_sections}")),
        desc("answer", "v=0\r\n".into()),
        json!({"type": "rtc-ice", "candidate": {"candidate": "x".repeat(5000), "sdpMid": "0"}}),
        json!({"type": "rtc-ice", "candidate": {"candidate": "candidate:garbage", "sdpMid": "0"}}),
        json!({"__meteredTrackMeta": {"trackId": "t", "metadata": [1, 2]}}),
        json!({"__meteredTrackMeta": {"trackId": 5}}),
        json!({"__meteredTrackMeta": "nope"}),
    ];
    for p in payloads {
        // Oversized frames are refused by the client or server; both are fine here.
        let _ = attacker.send(&victim_id, p).await;
    }
    // Past the 200-per-generation cap, paced under the server's message rate limit.
    for i in 0..250 {
        tokio::time::sleep(Duration::from_millis(12)).await;
        let c = json!({"type": "rtc-ice", "candidate": {"candidate": format!("candidate:{i} 1 udp 1 127.0.0.1 {} typ host", 1000 + i), "sdpMid": "0"}});
        let _ = attacker.send(&victim_id, c).await;
    }
    attacker.send(&victim_id, json!({"hello": "still data"})).await.unwrap();
    let data = wait_for(&mut ev, "ordinary data after the garbage", |e| match e {
        PeerEvent::Data { data, .. } => Some(data.clone()),
        _ => None,
    })
    .await;
    // (`{"type":"rtc-ice","candidate":7}` is not signal-shaped: the SDKs surface it as data.)
    assert_eq!(data, json!({"hello": "still data"}), "signals and reserved-key payloads are never surfaced as data");
    assert_eq!(victim.state(), PeerState::Joined);

    // An honest peer joins and is heard.
    let honest = peer(&server.base_url(), server.key());
    let (src, feeder) = tone(500.0, 0.5);
    honest.add_stream(&MediaStream::with_tracks(Some("honest".into()), [src.track()]), None).unwrap();
    honest.join("room").await.unwrap();
    let track = wait_for(&mut ev, "honest Track", |e| match e {
        PeerEvent::Track { track, streams, .. } if streams.first().is_some_and(|s| s.id() == "honest") => {
            Some(track.clone())
        }
        _ => None,
    })
    .await;
    let (f, _) = measure(track, 5, 25).await;
    assert!((f - 500.0).abs() < 10.0, "{f}");

    feeder.abort();
    attacker.close().await;
    honest.close().await;
    tokio::time::timeout(Duration::from_secs(5), victim.close()).await.expect("close is bounded");
    server.shutdown().await;
}
