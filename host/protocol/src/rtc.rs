//! The WebRTC layer's payloads, which ride `send` → `direct` as opaque JSON:
//! `rtc-description`, `rtc-ice` and the `__meteredTrackMeta` control message,
//! plus the SDP facts a receiver reads (ICE ufrag, msid by mid).
//!
//! Everything inbound here comes from an untrusted peer: parsers return `None`
//! for anything that is not exactly the expected shape, and apply the same
//! hygiene caps as the official SDKs (ids ≤ 256 bytes, ≤ 256 msid entries).

use serde_json::{Map, Value, json};

/// The reserved key of the track-metadata control message.
pub const TRACK_META_KEY: &str = "__meteredTrackMeta";
/// Longest track id, stream id or kind accepted inbound.
pub const MAX_RTC_ID_BYTES: usize = 256;
/// Most msid entries read from one SDP.
pub const MAX_MSID_ENTRIES: usize = 256;
/// Longest `a=ice-ufrag` accepted (RFC 5245 caps it at 256 characters).
pub const MAX_UFRAG_BYTES: usize = 256;

/// `offer` or `answer`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SdpKind {
    /// An offer.
    Offer,
    /// An answer.
    Answer,
}

impl SdpKind {
    /// The wire string.
    pub fn as_str(self) -> &'static str {
        match self {
            SdpKind::Offer => "offer",
            SdpKind::Answer => "answer",
        }
    }
}

/// An `RTCIceCandidateInit`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct IceCandidateInit {
    /// The `candidate:` line (empty = end of candidates, as some browsers send).
    pub candidate: String,
    /// The media section id.
    pub sdp_mid: Option<String>,
    /// The media section index.
    pub sdp_m_line_index: Option<u16>,
    /// The ICE username fragment.
    pub username_fragment: Option<String>,
}

/// A WebRTC signalling payload.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RtcSignal {
    /// `{"type":"rtc-description","description":{"type","sdp"}}`.
    Description {
        /// Offer or answer.
        kind: SdpKind,
        /// The SDP.
        sdp: String,
    },
    /// `{"type":"rtc-ice","candidate": init | null}`; `None` ends the candidates.
    Ice(Option<IceCandidateInit>),
}

fn short(v: Option<&Value>) -> Option<Option<String>> {
    match v {
        None | Some(Value::Null) => Some(None),
        Some(Value::String(s)) if s.len() <= MAX_RTC_ID_BYTES => Some(Some(s.clone())),
        _ => None,
    }
}

impl RtcSignal {
    /// Parses a `direct` payload; `None` when it is not an rtc signal (then it is
    /// application data, or garbage).
    pub fn parse(data: &Value) -> Option<RtcSignal> {
        let obj = data.as_object()?;
        match obj.get("type")?.as_str()? {
            "rtc-description" => {
                let d = obj.get("description")?.as_object()?;
                let kind = match d.get("type")?.as_str()? {
                    "offer" => SdpKind::Offer,
                    "answer" => SdpKind::Answer,
                    _ => return None,
                };
                Some(RtcSignal::Description { kind, sdp: d.get("sdp")?.as_str()?.to_owned() })
            }
            "rtc-ice" => match obj.get("candidate")? {
                Value::Null => Some(RtcSignal::Ice(None)),
                Value::Object(c) => {
                    let candidate = match c.get("candidate") {
                        Some(Value::String(s)) if s.len() <= 2048 => s.clone(),
                        None | Some(Value::Null) => String::new(),
                        _ => return None,
                    };
                    let sdp_m_line_index = match c.get("sdpMLineIndex") {
                        None | Some(Value::Null) => None,
                        Some(v) => Some(u16::try_from(v.as_u64()?).ok()?),
                    };
                    Some(RtcSignal::Ice(Some(IceCandidateInit {
                        candidate,
                        sdp_mid: short(c.get("sdpMid"))?,
                        sdp_m_line_index,
                        username_fragment: short(c.get("usernameFragment"))?,
                    })))
                }
                _ => None,
            },
            _ => None,
        }
    }

    /// The payload, byte-compatible with the SDKs' builders.
    pub fn to_value(&self) -> Value {
        match self {
            RtcSignal::Description { kind, sdp } => {
                json!({"type": "rtc-description", "description": {"type": kind.as_str(), "sdp": sdp}})
            }
            RtcSignal::Ice(None) => json!({"type": "rtc-ice", "candidate": null}),
            RtcSignal::Ice(Some(c)) => {
                let mut init = Map::new();
                init.insert("candidate".into(), Value::String(c.candidate.clone()));
                if let Some(mid) = &c.sdp_mid {
                    init.insert("sdpMid".into(), Value::String(mid.clone()));
                }
                if let Some(i) = c.sdp_m_line_index {
                    init.insert("sdpMLineIndex".into(), Value::from(i));
                }
                if let Some(u) = &c.username_fragment {
                    init.insert("usernameFragment".into(), Value::String(u.clone()));
                }
                json!({"type": "rtc-ice", "candidate": Value::Object(init)})
            }
        }
    }
}

/// A `__meteredTrackMeta` control message: metadata for one sent track, sent
/// ahead of the media. `metadata: None` clears it.
#[derive(Debug, Clone, PartialEq)]
pub struct TrackMeta {
    /// The sender's track id.
    pub track_id: String,
    /// The metadata object, or `None` to clear.
    pub metadata: Option<Map<String, Value>>,
    /// `audio` or `video` (fallback matching when the receiver's track id differs).
    pub kind: Option<String>,
    /// The sender's stream id (fallback matching).
    pub stream_id: Option<String>,
}

fn id_ok(s: &str) -> bool {
    !s.is_empty() && s.len() <= MAX_RTC_ID_BYTES
}

impl TrackMeta {
    /// Parses a `direct` payload; `None` when it is not a (valid) track-meta message.
    pub fn parse(data: &Value) -> Option<TrackMeta> {
        let body = data.as_object()?.get(TRACK_META_KEY)?.as_object()?;
        let track_id = body.get("trackId")?.as_str().filter(|s| !s.is_empty())?.to_owned();
        let opt = |key: &str| -> Option<Option<String>> {
            match body.get(key) {
                None | Some(Value::Null) => Some(None),
                Some(Value::String(s)) if id_ok(s) => Some(Some(s.clone())),
                _ => None,
            }
        };
        let metadata = match body.get("metadata") {
            None | Some(Value::Null) => None,
            Some(Value::Object(m)) => Some(m.clone()),
            _ => return None,
        };
        Some(TrackMeta { track_id, metadata, kind: opt("kind")?, stream_id: opt("streamId")? })
    }

    /// Whether a `direct` payload uses the reserved key (never surfaced as data).
    pub fn is_reserved(data: &Value) -> bool {
        data.as_object().is_some_and(|o| o.contains_key(TRACK_META_KEY))
    }

    /// The payload. A clear carries only `trackId`, as the SDKs send it.
    pub fn to_value(&self) -> Value {
        let mut body = Map::new();
        body.insert("trackId".into(), Value::String(self.track_id.clone()));
        if let Some(m) = &self.metadata {
            body.insert("metadata".into(), Value::Object(m.clone()));
            if let Some(k) = &self.kind {
                body.insert("kind".into(), Value::String(k.clone()));
            }
            if let Some(s) = &self.stream_id {
                body.insert("streamId".into(), Value::String(s.clone()));
            }
        }
        json!({ TRACK_META_KEY: Value::Object(body) })
    }
}

/// Perfect negotiation's politeness rule: the peer whose id sorts lower is polite.
pub fn is_polite(local_peer_id: &str, remote_peer_id: &str) -> bool {
    local_peer_id < remote_peer_id
}

/// The first `a=ice-ufrag` of an SDP (a changed remote ufrag means the remote
/// rebuilt its connection); `None` if absent or over the cap.
pub fn ice_ufrag(sdp: &str) -> Option<&str> {
    sdp.lines()
        .find_map(|l| l.trim_end_matches('\r').strip_prefix("a=ice-ufrag:"))
        .map(str::trim)
        .filter(|u| !u.is_empty() && u.len() <= MAX_UFRAG_BYTES && !u.contains(char::is_whitespace))
}

/// One media section's stream association.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MsidEntry {
    /// The section's `a=mid`.
    pub mid: String,
    /// The stream id (`None` for `-`: no stream association, RFC 8830).
    pub stream_id: Option<String>,
    /// The track id.
    pub track_id: String,
}

/// `a=msid` (or the legacy `a=ssrc:N msid:`) of each media section, keyed by its
/// `a=mid` — browsers list only their first stream in `a=msid-semantic`, so the
/// mid is the reliable key. Sections without both are skipped; so is anything
/// past the caps.
pub fn msids_by_mid(sdp: &str) -> Vec<MsidEntry> {
    let mut out = Vec::new();
    for section in sdp.split("\nm=").skip(1) {
        if out.len() >= MAX_MSID_ENTRIES {
            break;
        }
        let mut mid = None;
        let mut msid = None;
        for line in section.lines().map(|l| l.trim_end_matches('\r')) {
            if mid.is_none()
                && let Some(m) = line.strip_prefix("a=mid:")
            {
                mid = Some(m.trim());
                continue;
            }
            if msid.is_none() {
                let rest = line.strip_prefix("a=msid:").or_else(|| {
                    let s = line.strip_prefix("a=ssrc:")?;
                    let (ssrc, rest) = s.split_once(' ')?;
                    ssrc.bytes().all(|b| b.is_ascii_digit()).then_some(rest)?.strip_prefix("msid:")
                });
                if let Some((stream, track)) = rest.and_then(|r| r.trim().split_once(' ')) {
                    msid = Some((stream, track.trim()));
                }
            }
        }
        if let (Some(mid), Some((stream, track))) = (mid, msid) {
            if mid.is_empty() || !id_ok(stream) || !id_ok(track) || track.contains(' ') {
                continue;
            }
            out.push(MsidEntry {
                mid: mid.to_owned(),
                stream_id: (stream != "-").then(|| stream.to_owned()),
                track_id: track.to_owned(),
            });
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn signals_round_trip_in_the_sdk_shape() {
        let d = RtcSignal::Description { kind: SdpKind::Offer, sdp: "v=0\r\n".into() };
        assert_eq!(
            d.to_value(),
            json!({"type": "rtc-description", "description": {"type": "offer", "sdp": "v=0\r\n"}})
        );
        assert_eq!(RtcSignal::parse(&d.to_value()), Some(d));
        let end = RtcSignal::Ice(None);
        assert_eq!(end.to_value().to_string(), r#"{"candidate":null,"type":"rtc-ice"}"#);
        let c = RtcSignal::Ice(Some(IceCandidateInit {
            candidate: "candidate:1 1 udp 2122260223 127.0.0.1 50000 typ host".into(),
            sdp_mid: Some("0".into()),
            sdp_m_line_index: Some(0),
            username_fragment: None,
        }));
        assert_eq!(RtcSignal::parse(&c.to_value()), Some(c));
    }

    #[test]
    fn hostile_signals_are_not_signals() {
        for bad in [
            json!(null),
            json!("rtc-ice"),
            json!({"type": "rtc-description"}),
            json!({"type": "rtc-description", "description": {"type": "pranswer", "sdp": ""}}),
            json!({"type": "rtc-description", "description": {"type": "offer", "sdp": 5}}),
            json!({"type": "rtc-ice"}),
            json!({"type": "rtc-ice", "candidate": "x"}),
            json!({"type": "rtc-ice", "candidate": {"candidate": 1}}),
            json!({"type": "rtc-ice", "candidate": {"candidate": "c", "sdpMLineIndex": 70000}}),
            json!({"type": "rtc-ice", "candidate": {"candidate": "c", "sdpMid": "m".repeat(300)}}),
            json!({"type": "hello"}),
        ] {
            assert_eq!(RtcSignal::parse(&bad), None, "{bad}");
        }
        // Some browsers end candidates with an empty candidate string.
        assert!(matches!(
            RtcSignal::parse(&json!({"type": "rtc-ice", "candidate": {"candidate": ""}})),
            Some(RtcSignal::Ice(Some(c))) if c.candidate.is_empty()
        ));
    }

    #[test]
    fn track_meta() {
        let m = TrackMeta {
            track_id: "t1".into(),
            metadata: json!({"role": "agent", "label": "Voice"}).as_object().cloned(),
            kind: Some("audio".into()),
            stream_id: Some("agent-voice".into()),
        };
        let v = m.to_value();
        assert_eq!(
            v,
            json!({"__meteredTrackMeta": {"trackId": "t1", "metadata": {"role": "agent", "label": "Voice"}, "kind": "audio", "streamId": "agent-voice"}})
        );
        assert_eq!(TrackMeta::parse(&v), Some(m));
        let clear = TrackMeta { track_id: "t1".into(), metadata: None, kind: Some("audio".into()), stream_id: None };
        assert_eq!(clear.to_value(), json!({"__meteredTrackMeta": {"trackId": "t1"}}));
        assert!(TrackMeta::is_reserved(&json!({"__meteredTrackMeta": 1})));
        for bad in [
            json!({"__meteredTrackMeta": {"trackId": ""}}),
            json!({"__meteredTrackMeta": {"trackId": 5}}),
            json!({"__meteredTrackMeta": {"trackId": "t", "metadata": [1]}}),
            json!({"__meteredTrackMeta": {"trackId": "t", "streamId": "s".repeat(257)}}),
            json!({"__meteredTrackMeta": "t"}),
        ] {
            assert_eq!(TrackMeta::parse(&bad), None, "{bad}");
        }
    }

    #[test]
    fn politeness() {
        assert!(is_polite("a", "b"));
        assert!(!is_polite("b", "a"));
    }

    const SDP: &str = "v=0\r\no=- 1 2 IN IP4 127.0.0.1\r\ns=-\r\na=msid-semantic: WMS first\r\n\
m=audio 9 UDP/TLS/RTP/SAVPF 111\r\na=ice-ufrag:abcd\r\na=mid:0\r\na=msid:first t-audio\r\n\
m=audio 9 UDP/TLS/RTP/SAVPF 111\r\na=mid:1\r\na=ssrc:1234 msid:second t-two\r\n\
m=video 9 UDP/TLS/RTP/SAVPF 96\r\na=mid:2\r\na=msid:- t-none\r\n\
m=application 9 UDP/DTLS/SCTP webrtc-datachannel\r\na=mid:3\r\n";

    #[test]
    fn sdp_facts() {
        assert_eq!(ice_ufrag(SDP), Some("abcd"));
        assert_eq!(ice_ufrag("v=0\r\n"), None);
        assert_eq!(ice_ufrag(&format!("a=ice-ufrag:{}\r\n", "u".repeat(300))), None);
        let m = msids_by_mid(SDP);
        assert_eq!(
            m,
            vec![
                MsidEntry { mid: "0".into(), stream_id: Some("first".into()), track_id: "t-audio".into() },
                MsidEntry { mid: "1".into(), stream_id: Some("second".into()), track_id: "t-two".into() },
                MsidEntry { mid: "2".into(), stream_id: None, track_id: "t-none".into() },
            ]
        );
        let huge: String =
            (0..400).map(|i| format!("\nm=audio 9 RTP 0\r\na=mid:{i}\r\na=msid:s{i} t{i}\r\n")).collect();
        assert_eq!(msids_by_mid(&huge).len(), MAX_MSID_ENTRIES);
        let long_id = format!("v=0\nm=audio 9 RTP 0\na=mid:0\na=msid:{} t\n", "s".repeat(300));
        assert!(msids_by_mid(&long_id).is_empty());
        // Garbage never panics.
        for junk in
            ["", "\nm=", "\nm=\na=mid:", "\nm=x\na=ssrc:x msid:a b\na=mid:1", "\nm=\u{0}\na=msid:\u{feff} \u{feff}"]
        {
            let _ = msids_by_mid(junk);
            let _ = ice_ufrag(junk);
        }
    }
}
