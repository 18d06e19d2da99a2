//! Inbound track metadata: the `__meteredTrackMeta` messages a remote peer sent,
//! cached per remote peer and matched to received tracks the way the official
//! SDKs do it. Pure: no I/O.

use metered_media::StreamMetadata;
use metered_protocol::TrackMeta;

/// Most metadata entries kept per remote peer (a hostile peer can send ids
/// forever); the oldest is evicted past this.
pub const MAX_TRACK_METADATA_ENTRIES: usize = 512;

#[derive(Debug, Clone)]
struct Entry {
    track_id: String,
    metadata: StreamMetadata,
    stream_id: Option<String>,
    kind: Option<String>,
}

/// What a received track is known by, for the lookup.
#[derive(Debug, Clone, Copy)]
pub struct TrackKeys<'a> {
    /// The track id the sender signalled in `a=msid` for this track's mid.
    pub msid_track_id: Option<&'a str>,
    /// The stream id from that msid.
    pub stream_id: Option<&'a str>,
    /// `audio` or `video`.
    pub kind: &'a str,
    /// Every track id the current remote description signals.
    pub signalled_track_ids: &'a [String],
}

/// One remote peer's inbound track metadata, insertion-ordered and bounded.
#[derive(Debug, Default)]
pub struct InboundTrackMeta {
    entries: Vec<Entry>,
}

/// Why an inbound metadata message was not stored.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Rejected {
    /// Serialized metadata over the message-size cap.
    Oversized {
        /// Serialized length.
        len: usize,
    },
}

impl InboundTrackMeta {
    /// An empty cache.
    pub fn new() -> Self {
        Self::default()
    }

    /// Number of entries.
    pub fn len(&self) -> usize {
        self.entries.len()
    }

    /// Whether the cache is empty.
    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }

    /// Applies a set or clear message. Metadata over `max_bytes` serialized is
    /// refused (symmetric with the outbound check).
    pub fn apply(&mut self, msg: TrackMeta, max_bytes: usize) -> Result<(), Rejected> {
        let Some(map) = msg.metadata else {
            self.entries.retain(|e| e.track_id != msg.track_id);
            return Ok(());
        };
        let value = serde_json::Value::Object(map);
        let len = serde_json::to_string(&value).map(|s| s.len()).unwrap_or(usize::MAX);
        let metadata = StreamMetadata::from_value_capped(value, max_bytes).map_err(|_| Rejected::Oversized { len })?;
        let entry = Entry { track_id: msg.track_id, metadata, stream_id: msg.stream_id, kind: msg.kind };
        if let Some(existing) = self.entries.iter_mut().find(|e| e.track_id == entry.track_id) {
            *existing = entry;
            return Ok(());
        }
        if self.entries.len() >= MAX_TRACK_METADATA_ENTRIES {
            self.entries.remove(0);
        }
        self.entries.push(entry);
        Ok(())
    }

    /// Forgets everything (the peer left).
    pub fn clear(&mut self) {
        self.entries.clear();
    }

    /// The metadata of a received track, most precise key first: the msid track
    /// id, then stream id + kind — skipping entries for track ids the description
    /// signals (those tracks have their own section) and giving nothing when the
    /// remaining candidates disagree.
    pub fn lookup(&self, keys: TrackKeys<'_>) -> Option<StreamMetadata> {
        if let Some(id) = keys.msid_track_id
            && let Some(e) = self.entries.iter().find(|e| e.track_id == id)
        {
            return Some(e.metadata.clone());
        }
        if let Some(stream_id) = keys.stream_id {
            let by_stream = self.entries.iter().filter(|e| {
                e.stream_id.as_deref() == Some(stream_id)
                    && e.kind.as_deref() == Some(keys.kind)
                    && !keys.signalled_track_ids.contains(&e.track_id)
            });
            if let Some(m) = agreed(by_stream) {
                return Some(m);
            }
        }
        // The browser SDK sends only `trackId`, and Chromium may signal a
        // sender id of its own in the msid (a transceiver it created from our
        // offer, its track attached later): an entry the description does not
        // signal, with no stream or kind to contradict, is that track's.
        agreed(self.entries.iter().filter(|e| {
            e.stream_id.is_none()
                && e.kind.as_deref().is_none_or(|k| k == keys.kind)
                && !keys.signalled_track_ids.contains(&e.track_id)
        }))
    }
}

/// The metadata all `candidates` agree on (`None` when none or they differ).
fn agreed<'a>(mut candidates: impl Iterator<Item = &'a Entry>) -> Option<StreamMetadata> {
    let first = candidates.next()?;
    if candidates.any(|c| c.metadata != first.metadata) {
        return None;
    }
    Some(first.metadata.clone())
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    fn set(track: &str, stream: Option<&str>, kind: &str, meta: serde_json::Value) -> TrackMeta {
        TrackMeta {
            track_id: track.into(),
            metadata: meta.as_object().cloned(),
            kind: Some(kind.into()),
            stream_id: stream.map(Into::into),
        }
    }

    fn keys<'a>(msid: Option<&'a str>, stream: Option<&'a str>, signalled: &'a [String]) -> TrackKeys<'a> {
        TrackKeys { msid_track_id: msid, stream_id: stream, kind: "audio", signalled_track_ids: signalled }
    }

    #[test]
    fn by_track_id_then_stream_and_kind() {
        let mut c = InboundTrackMeta::new();
        c.apply(set("t1", Some("s1"), "audio", json!({"label": "Voice"})), 8192).unwrap();
        let got = c.lookup(keys(Some("t1"), Some("s1"), &[])).unwrap();
        assert_eq!(got.label(), Some("Voice"));
        // A browser minted its own track id: fall back to stream id + kind.
        let got = c.lookup(keys(Some("firefox-made-up"), Some("s1"), &[])).unwrap();
        assert_eq!(got.label(), Some("Voice"));
        assert!(c.lookup(keys(Some("x"), Some("other"), &[])).is_none());
        assert!(c.lookup(keys(Some("x"), None, &[])).is_none());
        // The fallback never borrows from a track the description signals itself.
        assert!(c.lookup(keys(Some("x"), Some("s1"), &["t1".to_owned()])).is_none());
    }

    #[test]
    fn disagreeing_fallback_candidates_give_nothing() {
        let mut c = InboundTrackMeta::new();
        c.apply(set("a", Some("s"), "audio", json!({"label": "A"})), 8192).unwrap();
        c.apply(set("b", Some("s"), "audio", json!({"label": "B"})), 8192).unwrap();
        assert!(c.lookup(keys(Some("x"), Some("s"), &[])).is_none());
        c.apply(TrackMeta { track_id: "b".into(), metadata: None, kind: None, stream_id: None }, 8192).unwrap();
        assert_eq!(c.lookup(keys(Some("x"), Some("s"), &[])).unwrap().label(), Some("A"), "clear removes");
    }

    #[test]
    fn a_browser_entry_without_stream_matches_a_track_signalled_under_another_id() {
        let browser = |id: &str, label: &str| TrackMeta {
            track_id: id.into(),
            metadata: json!({"label": label}).as_object().cloned(),
            kind: None,
            stream_id: None,
        };
        let mut c = InboundTrackMeta::new();
        c.apply(browser("real", "Mic"), 8192).unwrap();
        let signalled = ["chromium-sender".to_owned()];
        let got = c.lookup(keys(Some("chromium-sender"), Some("s"), &signalled)).unwrap();
        assert_eq!(got.label(), Some("Mic"));
        // Not when the entry's own track is signalled (it has its own section).
        assert!(c.lookup(keys(Some("other"), Some("s"), &["real".to_owned(), "other".to_owned()])).is_none());
        // Not when two unsignalled entries disagree.
        c.apply(browser("real2", "Screen"), 8192).unwrap();
        assert!(c.lookup(keys(Some("chromium-sender"), Some("s"), &signalled)).is_none());
    }

    #[test]
    fn bounded_and_size_capped() {
        let mut c = InboundTrackMeta::new();
        for i in 0..(MAX_TRACK_METADATA_ENTRIES + 10) {
            c.apply(set(&format!("t{i}"), None, "audio", json!({"i": i})), 8192).unwrap();
        }
        assert_eq!(c.len(), MAX_TRACK_METADATA_ENTRIES);
        assert!(c.lookup(keys(Some("t0"), None, &[])).is_none(), "oldest evicted");
        assert!(c.lookup(keys(Some("t521"), None, &[])).is_some());
        // In-place updates don't grow it.
        c.apply(set("t521", None, "audio", json!({"i": "again"})), 8192).unwrap();
        assert_eq!(c.len(), MAX_TRACK_METADATA_ENTRIES);
        let big = set("big", None, "audio", json!({"x": "y".repeat(100)}));
        assert!(matches!(c.apply(big, 50), Err(Rejected::Oversized { .. })));
        c.clear();
        assert!(c.is_empty());
    }
}
