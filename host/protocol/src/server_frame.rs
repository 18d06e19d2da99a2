//! Server → client frames: typed builder (server side) and the defensive parser
//! (client side) that turns anything unexpected into an error, never a panic.

use serde::Serialize;
use serde_json::value::RawValue;
use serde_json::{Map, Value};

/// A peer listed in a `presence` frame.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct PresencePeer {
    /// The peer's id.
    pub peer_id: String,
    /// The peer's `peerMetadata` (from its JWT), if any.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub metadata: Option<Map<String, Value>>,
}

/// A server → client frame.
#[derive(Debug, Clone, Serialize)]
#[serde(tag = "type", rename_all = "snake_case", rename_all_fields = "camelCase")]
#[non_exhaustive]
pub enum ServerFrame {
    /// The first frame on every connection.
    Welcome {
        /// The connection's peer id.
        peer_id: String,
        /// When the credential expires (ms since the epoch), `null` for keys.
        expires_at: Option<i64>,
        /// The server's clock (ms since the epoch).
        server_time: i64,
        /// Largest inbound frame the server accepts, in bytes.
        max_message_size: u64,
        /// Connection-private metadata from the token (`iceServers` live here).
        #[serde(skip_serializing_if = "Option::is_none")]
        metadata: Option<Map<String, Value>>,
    },
    /// A request succeeded.
    Ack {
        /// The request's id.
        request_id: String,
    },
    /// A request failed, or an uncorrelated error.
    Error {
        /// The error code (unknown codes are kept verbatim).
        code: String,
        /// The failed request's id, if it had one.
        #[serde(skip_serializing_if = "Option::is_none")]
        request_id: Option<String>,
        /// A human-readable explanation.
        #[serde(skip_serializing_if = "Option::is_none")]
        message: Option<String>,
    },
    /// A channel message from another peer.
    Message {
        /// The channel.
        channel: String,
        /// The sender's peer id.
        from: String,
        /// The published data, verbatim.
        data: Box<RawValue>,
        /// The sender's peer metadata, for subscribers that asked for it.
        #[serde(skip_serializing_if = "Option::is_none")]
        from_metadata: Option<Map<String, Value>>,
    },
    /// A direct message.
    Direct {
        /// The sender's peer id.
        from: String,
        /// The sent data, verbatim.
        data: Box<RawValue>,
        /// The sender's peer metadata, if it has any.
        #[serde(skip_serializing_if = "Option::is_none")]
        from_metadata: Option<Map<String, Value>>,
    },
    /// Presence snapshot (after subscribe) or delta.
    Presence {
        /// The channel.
        channel: String,
        /// Peers that joined (or are present, in a snapshot).
        joined: Vec<PresencePeer>,
        /// Peers that left.
        left: Vec<PresencePeer>,
    },
    /// The server is shutting down; reconnect after the delay.
    GoingAway {
        /// Suggested reconnect delay in milliseconds.
        retry_after_ms: u64,
    },
    /// Answer to `ping`.
    Pong,
}

/// Longest `going_away` delay a client honours (a hostile value must not become an
/// absurd sleep).
const MAX_RETRY_AFTER_MS: u64 = 5 * 60 * 1000;

impl ServerFrame {
    /// Serializes the frame compactly.
    pub fn to_json(&self) -> String {
        // Serializing these types cannot fail: every map key is a string and
        // RawValue holds valid JSON by construction.
        serde_json::to_string(self).unwrap_or_else(|_| String::from(r#"{"type":"error","code":"internal_error"}"#))
    }

    /// Parses a server frame defensively; `Err` carries why it was refused.
    ///
    /// Unknown error codes pass through; unknown frame types are refused.
    pub fn parse(text: &str) -> Result<ServerFrame, String> {
        let Value::Object(mut env) = serde_json::from_str::<Value>(text).map_err(|_| "invalid JSON".to_owned())? else {
            return Err("envelope must be an object".into());
        };
        let ty = match env.get("type") {
            Some(Value::String(t)) => t.clone(),
            _ => return Err("missing or non-string type".into()),
        };
        let take_str = |env: &mut Map<String, Value>, key: &str| match env.remove(key) {
            Some(Value::String(s)) => Ok(s),
            _ => Err(format!("{ty}.{key} missing")),
        };
        let object = |v: Option<Value>| match v {
            Some(Value::Object(m)) => Some(m),
            _ => None,
        };
        let raw = |v: Value| -> Result<Box<RawValue>, String> {
            serde_json::value::to_raw_value(&v).map_err(|e| e.to_string())
        };
        let finite = |v: Option<&Value>| v.and_then(Value::as_f64).filter(|f| f.is_finite());

        Ok(match ty.as_str() {
            "welcome" => {
                let peer_id = take_str(&mut env, "peerId")?;
                let expires_at = match env.get("expiresAt") {
                    None | Some(Value::Null) => None,
                    v => Some(finite(v).ok_or("welcome.expiresAt must be number or null")? as i64),
                };
                let server_time = finite(env.get("serverTime")).ok_or("welcome.serverTime missing")? as i64;
                let max =
                    finite(env.get("maxMessageSize")).filter(|m| *m > 0.0).ok_or("welcome.maxMessageSize invalid")?;
                ServerFrame::Welcome {
                    peer_id,
                    expires_at,
                    server_time,
                    max_message_size: max as u64,
                    metadata: object(env.remove("metadata")),
                }
            }
            "ack" => ServerFrame::Ack { request_id: take_str(&mut env, "requestId")? },
            "error" => {
                let code = take_str(&mut env, "code")?;
                if code.is_empty() {
                    return Err("error.code missing".into());
                }
                let request_id = match env.remove("requestId") {
                    Some(Value::String(s)) => Some(s),
                    _ => None,
                };
                let message = match env.remove("message") {
                    Some(Value::String(s)) => Some(s),
                    _ => None,
                };
                ServerFrame::Error { code, request_id, message }
            }
            "message" => {
                let channel = take_str(&mut env, "channel")?;
                let from = take_str(&mut env, "from")?;
                let data = env.remove("data").ok_or("message.data missing")?;
                ServerFrame::Message {
                    channel,
                    from,
                    data: raw(data)?,
                    from_metadata: object(env.remove("fromMetadata")),
                }
            }
            "direct" => {
                let from = take_str(&mut env, "from")?;
                let data = env.remove("data").ok_or("direct.data missing")?;
                ServerFrame::Direct { from, data: raw(data)?, from_metadata: object(env.remove("fromMetadata")) }
            }
            "presence" => {
                let channel = take_str(&mut env, "channel")?;
                let joined = presence_peers(env.remove("joined")).ok_or("presence.joined invalid")?;
                let left = presence_peers(env.remove("left")).ok_or("presence.left invalid")?;
                ServerFrame::Presence { channel, joined, left }
            }
            "going_away" => {
                let retry_after_ms = finite(env.get("retryAfterMs"))
                    .filter(|r| *r > 0.0)
                    .map(|r| (r as u64).min(MAX_RETRY_AFTER_MS))
                    .unwrap_or(1000);
                ServerFrame::GoingAway { retry_after_ms }
            }
            "pong" => ServerFrame::Pong,
            other => return Err(format!("unknown type: {}", other.chars().take(64).collect::<String>())),
        })
    }
}

fn presence_peers(v: Option<Value>) -> Option<Vec<PresencePeer>> {
    let Some(Value::Array(entries)) = v else { return None };
    entries
        .into_iter()
        .map(|entry| {
            let Value::Object(mut m) = entry else { return None };
            let Some(Value::String(peer_id)) = m.remove("peerId") else { return None };
            let metadata = match m.remove("metadata") {
                Some(Value::Object(meta)) => Some(meta),
                _ => None,
            };
            Some(PresencePeer { peer_id, metadata })
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn welcome_serializes_null_expiry() {
        let f = ServerFrame::Welcome {
            peer_id: "p".into(),
            expires_at: None,
            server_time: 5,
            max_message_size: 65536,
            metadata: None,
        };
        assert_eq!(
            f.to_json(),
            r#"{"type":"welcome","peerId":"p","expiresAt":null,"serverTime":5,"maxMessageSize":65536}"#
        );
    }

    #[test]
    fn round_trips() {
        let frames = [
            ServerFrame::Ack { request_id: "r".into() },
            ServerFrame::Error { code: "peer_not_found".into(), request_id: Some("r".into()), message: None },
            ServerFrame::Message {
                channel: "c".into(),
                from: "p".into(),
                data: serde_json::value::to_raw_value(&json!({"a": [1, null]})).unwrap(),
                from_metadata: Some(json!({"name": "x"}).as_object().cloned().unwrap()),
            },
            ServerFrame::Presence {
                channel: "c".into(),
                joined: vec![PresencePeer { peer_id: "a".into(), metadata: None }],
                left: vec![],
            },
            ServerFrame::GoingAway { retry_after_ms: 250 },
            ServerFrame::Pong,
        ];
        for f in frames {
            let text = f.to_json();
            let back = ServerFrame::parse(&text).unwrap();
            assert_eq!(back.to_json(), text);
        }
        assert_eq!(ServerFrame::Pong.to_json(), r#"{"type":"pong"}"#);
        assert_eq!(ServerFrame::GoingAway { retry_after_ms: 3 }.to_json(), r#"{"type":"going_away","retryAfterMs":3}"#);
    }

    #[test]
    fn parser_refuses_bad_shapes() {
        for bad in [
            "",
            "[]",
            r#"{"type":"welcome","peerId":"p","serverTime":1,"maxMessageSize":0}"#,
            r#"{"type":"message","channel":"c","from":"p"}"#,
            r#"{"type":"presence","channel":"c","joined":[{"x":1}],"left":[]}"#,
            r#"{"type":"new_thing"}"#,
        ] {
            assert!(ServerFrame::parse(bad).is_err(), "{bad}");
        }
        match ServerFrame::parse(r#"{"type":"going_away","retryAfterMs":1e12}"#).unwrap() {
            ServerFrame::GoingAway { retry_after_ms } => assert_eq!(retry_after_ms, MAX_RETRY_AFTER_MS),
            f => panic!("{f:?}"),
        }
    }
}
