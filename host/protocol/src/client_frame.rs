//! Client → server frames: the hostile-input parser the server runs on every
//! inbound text frame, and the typed builder clients send.

use std::borrow::Cow;

use serde::{Deserialize, Deserializer, Serialize};
use serde_json::value::RawValue;

use super::codes::ErrorCode;
use super::validate::{validate_channel, validate_peer_id, validate_request_id};

/// A frame the server refused, with the code and correlation id to answer with.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{code}: {message}")]
pub struct FrameError {
    /// The wire error code.
    pub code: ErrorCode,
    /// The frame's `requestId`, when it carried a valid one.
    pub request_id: Option<String>,
    /// A human-readable explanation (never echoes the offending payload).
    pub message: Cow<'static, str>,
}

impl FrameError {
    fn new(code: ErrorCode, request_id: Option<&str>, message: impl Into<Cow<'static, str>>) -> Self {
        Self { code, request_id: request_id.map(str::to_owned), message: message.into() }
    }
}

/// A validated client request, borrowing from the inbound text.
///
/// Exhaustive on purpose: the wire's request kinds are fixed, and a server
/// matching on them must fail to compile, not fall through, if one is added.
#[derive(Debug, Clone)]
pub enum ClientRequest<'a> {
    /// `subscribe`: join a channel and start receiving its messages and presence.
    Subscribe {
        /// The channel, validated (length, control characters). Authorization and
        /// reserved prefixes are the server's business.
        channel: Cow<'a, str>,
        /// Attach the sender's peer metadata to each `message`.
        include_sender_metadata: bool,
    },
    /// `unsubscribe`: leave a channel.
    Unsubscribe {
        /// The channel.
        channel: Cow<'a, str>,
    },
    /// `publish`: fan `data` out to the channel's other subscribers.
    Publish {
        /// The channel.
        channel: Cow<'a, str>,
        /// Any JSON value, forwarded verbatim.
        data: &'a RawValue,
    },
    /// `send`: a direct message to one peer.
    Send {
        /// The target peer id, validated.
        to: Cow<'a, str>,
        /// Any JSON value, forwarded verbatim.
        data: &'a RawValue,
    },
    /// `ping`: the server answers `pong`.
    Ping,
}

#[derive(Deserialize)]
struct Envelope<'a> {
    #[serde(rename = "type", default, borrow, deserialize_with = "present")]
    ty: Option<&'a RawValue>,
    #[serde(rename = "requestId", default, borrow, deserialize_with = "present")]
    request_id: Option<&'a RawValue>,
    #[serde(default, borrow, deserialize_with = "present")]
    channel: Option<&'a RawValue>,
    #[serde(default, borrow, deserialize_with = "present")]
    to: Option<&'a RawValue>,
    #[serde(default, borrow, deserialize_with = "present")]
    data: Option<&'a RawValue>,
    #[serde(rename = "includeSenderMetadata", default, borrow, deserialize_with = "present")]
    include_sender_metadata: Option<&'a RawValue>,
}

/// A present field is `Some`, even when its value is JSON `null` (serde's `Option`
/// would fold `null` into `None`, turning `"data": null` into `missing_data`).
fn present<'de, D: Deserializer<'de>>(d: D) -> Result<Option<&'de RawValue>, D::Error> {
    <&'de RawValue>::deserialize(d).map(Some)
}

/// Deepest array/object nesting accepted in `data`. serde_json skips a raw value
/// without recursion, but the receiving SDKs parse it recursively (Python's `json`
/// raises `RecursionError` near 1000 levels), so the server refuses what would
/// crash a receiver.
pub const MAX_DATA_DEPTH: usize = 64;

/// Maximum array/object nesting of a valid JSON text, counted without recursion.
pub fn nesting_depth(json: &str) -> usize {
    let (mut depth, mut max, mut in_string, mut escaped) = (0usize, 0usize, false, false);
    for b in json.bytes() {
        if in_string {
            match (escaped, b) {
                (true, _) => escaped = false,
                (false, b'\\') => escaped = true,
                (false, b'"') => in_string = false,
                _ => {}
            }
            continue;
        }
        match b {
            b'"' => in_string = true,
            b'[' | b'{' => {
                depth += 1;
                max = max.max(depth);
            }
            b']' | b'}' => depth = depth.saturating_sub(1),
            _ => {}
        }
    }
    max
}

#[derive(Deserialize)]
struct Str<'a>(#[serde(borrow)] Cow<'a, str>);

fn as_str(raw: &RawValue) -> Option<Cow<'_, str>> {
    serde_json::from_str::<Str<'_>>(raw.get()).ok().map(|s| s.0)
}

impl<'a> ClientRequest<'a> {
    /// Parses and validates one inbound text frame.
    ///
    /// Returns the request and its `requestId`, or the error frame to answer with.
    /// Unknown fields are ignored; duplicate fields, non-objects and wrong types are
    /// `malformed_message`.
    pub fn parse(text: &'a str) -> Result<(Option<Cow<'a, str>>, ClientRequest<'a>), FrameError> {
        let env: Envelope<'a> = serde_json::from_str(text).map_err(|e| {
            let msg = if e.is_syntax() || e.is_eof() {
                "frame is not valid JSON"
            } else {
                "frame must be a JSON object with unique fields"
            };
            FrameError::new(ErrorCode::MalformedMessage, None, msg)
        })?;

        let request_id = match env.request_id {
            None => None,
            Some(raw) => {
                let id = as_str(raw)
                    .ok_or_else(|| FrameError::new(ErrorCode::MalformedMessage, None, "requestId must be a string"))?;
                validate_request_id(&id)
                    .map_err(|e| FrameError::new(ErrorCode::MalformedMessage, None, e.to_string()))?;
                Some(id)
            }
        };
        let rid = request_id.as_deref();
        let ty = env
            .ty
            .and_then(as_str)
            .ok_or_else(|| FrameError::new(ErrorCode::MalformedMessage, rid, "type must be a string"))?;

        let channel = || -> Result<Cow<'a, str>, FrameError> {
            let raw =
                env.channel.ok_or_else(|| FrameError::new(ErrorCode::InvalidChannel, rid, "channel is required"))?;
            let channel = as_str(raw)
                .ok_or_else(|| FrameError::new(ErrorCode::InvalidChannel, rid, "channel must be a string"))?;
            validate_channel(&channel).map_err(|e| FrameError::new(ErrorCode::InvalidChannel, rid, e.to_string()))?;
            Ok(channel)
        };
        let data = || {
            let data = env.data.ok_or_else(|| FrameError::new(ErrorCode::MissingData, rid, "data is required"))?;
            if nesting_depth(data.get()) > MAX_DATA_DEPTH {
                return Err(FrameError::new(ErrorCode::MalformedMessage, rid, "data is nested too deeply"));
            }
            Ok(data)
        };

        let request = match ty.as_ref() {
            "subscribe" => {
                let include_sender_metadata = match env.include_sender_metadata {
                    None => false,
                    Some(raw) => match raw.get() {
                        "true" => true,
                        "false" | "null" => false,
                        _ => {
                            return Err(FrameError::new(
                                ErrorCode::MalformedMessage,
                                rid,
                                "includeSenderMetadata must be a boolean",
                            ));
                        }
                    },
                };
                ClientRequest::Subscribe { channel: channel()?, include_sender_metadata }
            }
            "unsubscribe" => ClientRequest::Unsubscribe { channel: channel()? },
            "publish" => {
                let channel = channel()?;
                ClientRequest::Publish { channel, data: data()? }
            }
            "send" => {
                let raw = env.to.ok_or_else(|| FrameError::new(ErrorCode::InvalidPeerId, rid, "to is required"))?;
                let to =
                    as_str(raw).ok_or_else(|| FrameError::new(ErrorCode::InvalidPeerId, rid, "to must be a string"))?;
                validate_peer_id(&to).map_err(|e| FrameError::new(ErrorCode::InvalidPeerId, rid, e.to_string()))?;
                ClientRequest::Send { to, data: data()? }
            }
            "ping" => ClientRequest::Ping,
            _ => return Err(FrameError::new(ErrorCode::UnknownType, rid, "unknown frame type")),
        };
        Ok((request_id, request))
    }
}

/// A client → server frame, for clients to send. [`ClientFrame::encode`] validates
/// identifiers first so a bad argument fails at the call site, not as a server
/// `error` frame a round trip later.
#[derive(Debug, Clone, Serialize)]
#[serde(tag = "type", rename_all = "snake_case", rename_all_fields = "camelCase")]
#[non_exhaustive]
pub enum ClientFrame<'a> {
    /// Subscribe to a channel.
    Subscribe {
        /// The channel.
        channel: &'a str,
        /// Correlation id for the ack.
        #[serde(skip_serializing_if = "Option::is_none")]
        request_id: Option<&'a str>,
        /// Ask for `fromMetadata` on each message.
        #[serde(skip_serializing_if = "std::ops::Not::not")]
        include_sender_metadata: bool,
    },
    /// Unsubscribe from a channel.
    Unsubscribe {
        /// The channel.
        channel: &'a str,
        /// Correlation id for the ack.
        #[serde(skip_serializing_if = "Option::is_none")]
        request_id: Option<&'a str>,
    },
    /// Publish to a channel.
    Publish {
        /// The channel.
        channel: &'a str,
        /// Any JSON value.
        data: &'a serde_json::Value,
        /// Correlation id for the ack.
        #[serde(skip_serializing_if = "Option::is_none")]
        request_id: Option<&'a str>,
    },
    /// Send a direct message.
    Send {
        /// The target peer id.
        to: &'a str,
        /// Any JSON value.
        data: &'a serde_json::Value,
        /// Correlation id for the ack.
        #[serde(skip_serializing_if = "Option::is_none")]
        request_id: Option<&'a str>,
    },
    /// Application-level heartbeat (browsers cannot send WebSocket pings).
    Ping {
        /// Optional correlation id.
        #[serde(skip_serializing_if = "Option::is_none")]
        request_id: Option<&'a str>,
    },
}

impl ClientFrame<'_> {
    /// Validates the frame's identifiers and serializes it compactly.
    pub fn encode(&self) -> Result<String, FrameError> {
        let (channel, to, rid) = match self {
            Self::Subscribe { channel, request_id, .. }
            | Self::Unsubscribe { channel, request_id }
            | Self::Publish { channel, request_id, .. } => (Some(*channel), None, *request_id),
            Self::Send { to, request_id, .. } => (None, Some(*to), *request_id),
            Self::Ping { request_id } => (None, None, *request_id),
        };
        if let Some(rid) = rid {
            validate_request_id(rid).map_err(|e| FrameError::new(ErrorCode::MalformedMessage, None, e.to_string()))?;
        }
        if let Some(channel) = channel {
            validate_channel(channel).map_err(|e| FrameError::new(ErrorCode::InvalidChannel, rid, e.to_string()))?;
        }
        if let Some(to) = to {
            validate_peer_id(to).map_err(|e| FrameError::new(ErrorCode::InvalidPeerId, rid, e.to_string()))?;
        }
        serde_json::to_string(self).map_err(|e| FrameError::new(ErrorCode::MalformedMessage, rid, e.to_string()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn code(text: &str) -> ErrorCode {
        match ClientRequest::parse(text) {
            Ok(_) => panic!("accepted: {}", text.chars().take(80).collect::<String>()),
            Err(e) => e.code,
        }
    }

    #[test]
    fn parses_every_type() {
        let (rid, req) =
            ClientRequest::parse(r#"{"type":"subscribe","channel":"a","requestId":"r1","includeSenderMetadata":true}"#)
                .unwrap();
        assert_eq!(rid.as_deref(), Some("r1"));
        assert!(matches!(req, ClientRequest::Subscribe { channel, include_sender_metadata: true } if channel == "a"));

        let (_, req) = ClientRequest::parse(r#"{"type":"publish","channel":"a","data":{"x":[1,2]}}"#).unwrap();
        match req {
            ClientRequest::Publish { data, .. } => assert_eq!(data.get(), r#"{"x":[1,2]}"#),
            other => panic!("{other:?}"),
        }
        let (_, req) = ClientRequest::parse(r#"{"type":"send","to":"p-1","data":null}"#).unwrap();
        match req {
            ClientRequest::Send { to, data } => {
                assert_eq!(to, "p-1");
                assert_eq!(data.get(), "null");
            }
            other => panic!("{other:?}"),
        }
        assert!(matches!(ClientRequest::parse(r#"{"type":"ping"}"#).unwrap().1, ClientRequest::Ping));
        assert!(matches!(
            ClientRequest::parse(r#"{"type":"unsubscribe","channel":"a\u00e9"}"#).unwrap().1,
            ClientRequest::Unsubscribe { .. }
        ));
    }

    #[test]
    fn escaped_strings_are_decoded() {
        let (_, req) = ClientRequest::parse(r#"{"type":"subscribe","channel":"a\/b"}"#).unwrap();
        assert!(
            matches!(req, ClientRequest::Subscribe { channel, include_sender_metadata: false } if channel == "a/b")
        );
    }

    #[test]
    fn hostile_frames_get_typed_errors() {
        assert_eq!(code("not json"), ErrorCode::MalformedMessage);
        assert_eq!(code("[1,2]"), ErrorCode::MalformedMessage);
        assert_eq!(code("\"str\""), ErrorCode::MalformedMessage);
        assert_eq!(code(r#"{"type":"ping","type":"ping"}"#), ErrorCode::MalformedMessage);
        assert_eq!(code(r#"{"type":5}"#), ErrorCode::MalformedMessage);
        assert_eq!(code(r#"{}"#), ErrorCode::MalformedMessage);
        assert_eq!(code(r#"{"type":"nope"}"#), ErrorCode::UnknownType);
        assert_eq!(code(r#"{"type":"subscribe"}"#), ErrorCode::InvalidChannel);
        assert_eq!(code(r#"{"type":"subscribe","channel":7}"#), ErrorCode::InvalidChannel);
        assert_eq!(code(r#"{"type":"subscribe","channel":"a\nb"}"#), ErrorCode::InvalidChannel);
        assert_eq!(
            code(r#"{"type":"subscribe","channel":"a","includeSenderMetadata":"yes"}"#),
            ErrorCode::MalformedMessage
        );
        assert_eq!(code(r#"{"type":"publish","channel":"a"}"#), ErrorCode::MissingData);
        assert_eq!(code(r#"{"type":"send","to":"","data":1}"#), ErrorCode::InvalidPeerId);
        assert_eq!(code(r#"{"type":"send","data":1}"#), ErrorCode::InvalidPeerId);
        assert_eq!(code(r#"{"type":"send","to":"x"}"#), ErrorCode::MissingData);
        let long = format!(r#"{{"type":"ping","requestId":"{}"}}"#, "r".repeat(129));
        assert_eq!(code(&long), ErrorCode::MalformedMessage);
        assert_eq!(code(r#"{"type":"ping","requestId":""}"#), ErrorCode::MalformedMessage);
        assert_eq!(code(r#"{"type":"ping","requestId":1}"#), ErrorCode::MalformedMessage);
    }

    #[test]
    fn errors_carry_the_request_id() {
        let e = ClientRequest::parse(r#"{"type":"publish","channel":"a","requestId":"abc"}"#).unwrap_err();
        assert_eq!(e.request_id.as_deref(), Some("abc"));
        let e = ClientRequest::parse(r#"{"type":"bogus","requestId":"q"}"#).unwrap_err();
        assert_eq!((e.code, e.request_id.as_deref()), (ErrorCode::UnknownType, Some("q")));
    }

    #[test]
    fn nesting_depth_ignores_brackets_in_strings() {
        assert_eq!(nesting_depth(r#"{"a":"[[[{{\"]]"}"#), 1);
        assert_eq!(nesting_depth(r#"[[1],[[2]]]"#), 3);
        assert_eq!(nesting_depth("5"), 0);
        let ok = format!(r#"{{"type":"publish","channel":"a","data":{}{}}}"#, "[".repeat(64), "]".repeat(64));
        assert!(ClientRequest::parse(&ok).is_ok());
    }

    #[test]
    fn deep_nesting_is_refused_not_a_stack_overflow() {
        let deep =
            format!(r#"{{"type":"publish","channel":"a","data":{}{}}}"#, "[".repeat(100_000), "]".repeat(100_000));
        assert_eq!(code(&deep), ErrorCode::MalformedMessage);
    }

    #[test]
    fn every_byte_prefix_of_a_frame_is_handled() {
        let frame = r#"{"type":"publish","channel":"é","data":{"k":"v\u00e9"},"requestId":"1"}"#;
        for cut in 0..frame.len() {
            if let Some(prefix) = frame.get(..cut) {
                let _ = ClientRequest::parse(prefix);
            }
        }
    }

    #[test]
    fn builder_matches_sdk_shape() {
        let data = serde_json::json!({"a": 1});
        let s = ClientFrame::Publish { channel: "c", data: &data, request_id: Some("r") }.encode().unwrap();
        assert_eq!(s, r#"{"type":"publish","channel":"c","data":{"a":1},"requestId":"r"}"#);
        let s =
            ClientFrame::Subscribe { channel: "c", request_id: None, include_sender_metadata: false }.encode().unwrap();
        assert_eq!(s, r#"{"type":"subscribe","channel":"c"}"#);
        assert_eq!(ClientFrame::Ping { request_id: None }.encode().unwrap(), r#"{"type":"ping"}"#);
        assert!(
            ClientFrame::Subscribe { channel: "", request_id: None, include_sender_metadata: true }.encode().is_err()
        );
        assert!(ClientFrame::Send { to: "a\u{1}", data: &data, request_id: None }.encode().is_err());
    }
}
