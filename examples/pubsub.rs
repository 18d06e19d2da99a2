//! Pub/sub with the Rust `SignallingClient`, against `metered serve` or the
//! hosted service:
//!
//! ```sh
//! scripts/serve &                      # prints a dev publishable key
//! cargo run --example pubsub -- ws://127.0.0.1:8787 pk_live_dev_… room-1
//! ```
//!
//! It joins the channel, prints presence and messages, and publishes one
//! message a second until Ctrl-C.

use std::time::Duration;

use metered_realtime::signalling::{ClientEvent, ClientOptions, SignallingClient, SubscribeOptions};
use serde_json::json;

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let mut args = std::env::args().skip(1);
    let (Some(url), Some(key)) = (args.next(), args.next()) else {
        anyhow::bail!("usage: pubsub <ws-url> <publishable-key> [channel]");
    };
    let channel = args.next().unwrap_or_else(|| "room-1".to_owned());

    let client = SignallingClient::new(ClientOptions::with_api_key(key).url(url))?;
    let mut events = client.events();
    client.connect().await?;
    println!("connected as {}", client.peer_id().unwrap_or_default());
    client.subscribe_with(&channel, SubscribeOptions { include_sender_metadata: true }).await?;

    let publisher = {
        let client = client.clone();
        let channel = channel.clone();
        tokio::spawn(async move {
            for n in 0u64.. {
                tokio::time::sleep(Duration::from_secs(1)).await;
                if let Err(e) = client.publish(&channel, json!({"n": n, "text": "hello from Rust"})).await {
                    eprintln!("publish failed: {e}");
                }
            }
        })
    };

    loop {
        tokio::select! {
            _ = tokio::signal::ctrl_c() => break,
            event = events.recv() => match event {
                Ok(ClientEvent::Message { sender_peer_id, data, .. }) => println!("{sender_peer_id}: {data}"),
                Ok(ClientEvent::Presence { joined, left, .. }) => {
                    for p in joined { println!("+ {}", p.peer_id); }
                    for p in left { println!("- {}", p.peer_id); }
                }
                Ok(ClientEvent::Disconnected { code, will_reconnect, .. }) => {
                    println!("disconnected ({code}), reconnecting: {will_reconnect}");
                }
                Ok(_) => {}
                Err(tokio::sync::broadcast::error::RecvError::Lagged(n)) => eprintln!("missed {n} events"),
                Err(_) => break,
            },
        }
    }
    publisher.abort();
    client.close().await;
    Ok(())
}
