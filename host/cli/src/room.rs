//! Joining a room from the command line: `--url` with `--key` or `--token`
//! (`metered run --channel`, `metered stream`).

use anyhow::bail;
use metered_realtime::peer::{IcePolicy, PeerOptions};
use metered_realtime::signalling::ClientOptions;

/// Peer options for `url` with a key or a token; ICE stays on 127.0.0.1
/// when the service is on this machine.
pub(crate) fn peer_options(url: &str, key: Option<&str>, token: Option<&str>) -> anyhow::Result<PeerOptions> {
    let client = match (key, token) {
        (Some(key), _) => ClientOptions::with_api_key(key.to_owned()),
        (None, Some(token)) => {
            let token = token.to_owned();
            ClientOptions::with_token_provider(move || {
                let token = token.clone();
                async move { Ok::<_, metered_realtime::signalling::BoxError>(token) }
            })
        }
        (None, None) => bail!("--key or --token is required"),
    }
    .url(url.to_owned());
    let mut peer = PeerOptions::new(client);
    if is_loopback(url) {
        peer = peer.ice(IcePolicy::LoopbackOnly);
    }
    Ok(peer)
}

/// A peer for `url` (see [`peer_options`]).
#[cfg(feature = "sources")]
pub(crate) fn peer(
    url: &str,
    key: Option<&str>,
    token: Option<&str>,
) -> anyhow::Result<metered_realtime::peer::MeteredPeer> {
    Ok(metered_realtime::peer::MeteredPeer::with_options(peer_options(url, key, token)?)?)
}

/// Whether the URL's host is this machine (ICE then uses 127.0.0.1 only).
fn is_loopback(url: &str) -> bool {
    let host = url.split("://").nth(1).unwrap_or(url);
    let host = host.split(['/', '?']).next().unwrap_or(host);
    let host = host.rsplit_once(':').map_or(host, |(h, _)| h);
    matches!(host, "127.0.0.1" | "localhost" | "[::1]")
}

#[cfg(test)]
mod tests {
    #[test]
    fn loopback_urls_are_recognised() {
        assert!(super::is_loopback("ws://127.0.0.1:8787"));
        assert!(super::is_loopback("ws://localhost/v1"));
        assert!(super::is_loopback("ws://[::1]:1"));
        assert!(!super::is_loopback("wss://rtc.example.com"));
    }
}
