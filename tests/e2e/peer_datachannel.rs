//! WebRTC data channels: a Rust `MeteredPeer` and the official Python SDK open
//! channels to each other and exchange text and binary messages both ways; two
//! Rust peers show the send-side backpressure contract (FIFO order under a
//! small buffer cap, typed overflow past the queued-send cap, no loss).
#![cfg(feature = "webrtc")]

use crate::peer_common as common;

use std::time::Duration;

use common::{peer, wait_for};
use e2e_support::{TestServer, repo_root, run_python};
use metered_realtime::peer::{
    DataChannel, DataChannelEvent, DataChannelMessage, DataChannelOptions, PeerError, PeerEvent, RemotePeer,
};
use serde_json::{Value, json};

async fn next_message(ch: &DataChannel) -> DataChannelMessage {
    let wait = async {
        loop {
            match ch.recv().await {
                Some(DataChannelEvent::Message(m)) => return m,
                Some(_) => continue,
                None => panic!("channel {} closed before a message", ch.label()),
            }
        }
    };
    tokio::time::timeout(Duration::from_secs(20), wait).await.expect("a data channel message within 20 s")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn rust_and_python_exchange_messages_on_channels_both_open() {
    assert!(e2e_support::python_sdk_available(), "run scripts/setup: the official Python SDK is missing");
    let server = TestServer::start().await;
    let rust = peer(&server.base_url(), server.key());
    let mut events = rust.events();
    rust.join("dc").await.unwrap();
    let args = json!({"url": server.base_url(), "key": server.key(), "channel": "dc"}).to_string();
    let python = tokio::spawn(async move {
        run_python(&repo_root().join("tests/python/peer_datachannel.py"), &[&args], Duration::from_secs(90)).await
    });

    // Python's channel: never surfaced as room data, arrives as DataChannelOpened.
    let (remote, theirs): (RemotePeer, DataChannel) = wait_for(&mut events, "DataChannelOpened", |ev| match ev {
        PeerEvent::DataChannelOpened { peer, channel } => Some((peer.clone(), channel.clone())),
        _ => None,
    })
    .await;
    assert_eq!(theirs.label(), "py-chan");
    assert_eq!(next_message(&theirs).await, DataChannelMessage::Text("hello from py".into()));
    let DataChannelMessage::Binary(bin) = next_message(&theirs).await else { panic!("expected binary") };
    assert_eq!(bin.len(), 1024);
    assert!(bin.iter().enumerate().all(|(i, &b)| b == (i % 256) as u8), "binary payload intact");
    theirs.send("rust got it").await.unwrap();
    theirs.send(vec![7u8; 3000]).await.unwrap();

    // Ours: Python answers each message on it.
    let ours = remote.create_data_channel("rust-chan", DataChannelOptions::default()).await.unwrap();
    tokio::time::timeout(Duration::from_secs(20), ours.wait_open()).await.expect("open within 20 s").unwrap();
    assert_eq!(ours.ready_state(), "open");
    ours.send("ping 1").await.unwrap();
    assert_eq!(next_message(&ours).await, DataChannelMessage::Text("py:ping 1".into()));
    let big: Vec<u8> = (0..60_000u32).map(|i| (i * 7 % 251) as u8).collect();
    let sum: u64 = big.iter().map(|&b| u64::from(b)).sum();
    ours.send(big).await.unwrap();
    let DataChannelMessage::Text(reply) = next_message(&ours).await else { panic!("expected text") };
    assert_eq!(serde_json::from_str::<Value>(&reply).unwrap(), json!({"bytes": 60_000, "sum": sum}));
    ours.send("done").await.unwrap();

    let out = python.await.unwrap();
    assert_eq!(out.code, Some(0), "python failed:\nstdout: {}\nstderr: {}", out.stdout, out.stderr);
    let py: Value = serde_json::from_str(out.stdout.lines().last().unwrap_or_default()).expect("python JSON");
    assert_eq!(py["replies"], json!(["rust got it", {"bytes": 3000, "sum": 21_000}]));
    assert_eq!(py["their_label"], "rust-chan");
    assert_eq!(py["received"], json!(["ping 1", {"bytes": 60_000, "sum": sum}]));

    // The peer closed: our channel ends (recv returns None after Close).
    let ended = async { while ours.recv().await.is_some() {} };
    tokio::time::timeout(Duration::from_secs(20), ended).await.expect("the channel closes when python leaves");
    assert_eq!(ours.ready_state(), "closed");
    assert_eq!(ours.send("late").await, Err(PeerError::DataChannelClosed));
    rust.close().await;
    server.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn sends_wait_for_buffer_room_keep_order_and_overflow_is_typed() {
    let server = TestServer::start().await;
    let a = peer(&server.base_url(), server.key());
    let b = peer(&server.base_url(), server.key());
    let (mut a_events, mut b_events) = (a.events(), b.events());
    a.join("dc-bp").await.unwrap();
    b.join("dc-bp").await.unwrap();
    let to_b = wait_for(&mut a_events, "PeerJoined", |ev| match ev {
        PeerEvent::PeerJoined { peer } => Some(peer.clone()),
        _ => None,
    })
    .await;
    let opts = DataChannelOptions { max_buffered_amount: 64 << 10, max_queued_sends: 8, ..Default::default() };
    let ch = to_b.create_data_channel("bulk", opts).await.unwrap();
    tokio::time::timeout(Duration::from_secs(20), ch.wait_open()).await.expect("open").unwrap();
    let rx = wait_for(&mut b_events, "DataChannelOpened", |ev| match ev {
        PeerEvent::DataChannelOpened { channel, .. } => Some(channel.clone()),
        _ => None,
    })
    .await;

    // Over the cap: refused up front, nothing sent.
    let too_big = ch.send(vec![0u8; (64 << 10) + 1]).await;
    assert!(matches!(too_big, Err(PeerError::Oversized { .. })), "{too_big:?}");

    // 40 concurrent 30 KB sends through a 64 KiB buffer with 8 waiting slots:
    // some overflow (typed), the rest arrive complete and in call order.
    // (join_all first-polls them in index order: that is the call order.)
    let sends = (0..40u8).map(|i| {
        let ch = ch.clone();
        async move { (i, ch.send(vec![i; 30_000]).await) }
    });
    let results = tokio::time::timeout(Duration::from_secs(30), futures_util::future::join_all(sends))
        .await
        .expect("sends complete within 30 s");
    let mut accepted = Vec::new();
    let mut overflowed = 0;
    for r in results {
        match r {
            (i, Ok(())) => accepted.push(i),
            (_, Err(PeerError::DataChannelOverflow { max: 8, .. })) => overflowed += 1,
            (i, Err(e)) => panic!("send {i}: {e}"),
        }
    }
    assert!(overflowed > 0, "8 waiting slots must overflow with 40 concurrent 30 KB sends");
    assert!(accepted.len() >= 8, "{} accepted", accepted.len());
    ch.send("end").await.unwrap();
    let mut got = Vec::new();
    loop {
        match next_message(&rx).await {
            DataChannelMessage::Binary(b) => {
                assert_eq!(b.len(), 30_000);
                assert!(b.iter().all(|&x| x == b[0]), "a message arrived mixed");
                got.push(b[0]);
            }
            DataChannelMessage::Text(t) => {
                assert_eq!(t, "end");
                break;
            }
        }
    }
    assert_eq!(got, accepted, "accepted sends arrive once each, in call order");
    a.close().await;
    b.close().await;
    server.shutdown().await;
}
