//! Validation of the identifiers that travel in frames.

use super::limits::{MAX_CHANNEL_BYTES, MAX_PEER_ID_BYTES, MAX_REQUEST_ID_BYTES, RESERVED_CHANNEL_PREFIXES};

/// Why an identifier was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum ValidationError {
    /// The value is empty.
    #[error("{what} must not be empty")]
    Empty {
        /// Which identifier.
        what: &'static str,
    },
    /// The value is longer than its cap.
    #[error("{what} is {len} bytes, over the {max}-byte cap")]
    TooLong {
        /// Which identifier.
        what: &'static str,
        /// Its length in bytes.
        len: usize,
        /// The cap.
        max: usize,
    },
    /// The value contains a control character or, for peer ids, non-printable ASCII.
    #[error("{what} contains a forbidden character")]
    BadCharacter {
        /// Which identifier.
        what: &'static str,
    },
}

/// True when `s` contains U+0000–U+001F or U+007F–U+009F.
pub fn has_control_chars(s: &str) -> bool {
    s.chars().any(|c| (c as u32) <= 0x1F || (0x7F..=0x9F).contains(&(c as u32)))
}

/// A channel name: 1..=256 bytes, no control characters.
pub fn validate_channel(channel: &str) -> Result<(), ValidationError> {
    const WHAT: &str = "channel";
    if channel.is_empty() {
        return Err(ValidationError::Empty { what: WHAT });
    }
    if channel.len() > MAX_CHANNEL_BYTES {
        return Err(ValidationError::TooLong { what: WHAT, len: channel.len(), max: MAX_CHANNEL_BYTES });
    }
    if has_control_chars(channel) {
        return Err(ValidationError::BadCharacter { what: WHAT });
    }
    Ok(())
}

/// A peer id: 1..=128 bytes of printable ASCII (0x20..=0x7E).
pub fn validate_peer_id(peer_id: &str) -> Result<(), ValidationError> {
    const WHAT: &str = "peer id";
    if peer_id.is_empty() {
        return Err(ValidationError::Empty { what: WHAT });
    }
    if peer_id.len() > MAX_PEER_ID_BYTES {
        return Err(ValidationError::TooLong { what: WHAT, len: peer_id.len(), max: MAX_PEER_ID_BYTES });
    }
    if !peer_id.bytes().all(|b| (0x20..=0x7E).contains(&b)) {
        return Err(ValidationError::BadCharacter { what: WHAT });
    }
    Ok(())
}

/// A request id: 1..=128 bytes.
pub fn validate_request_id(request_id: &str) -> Result<(), ValidationError> {
    const WHAT: &str = "requestId";
    if request_id.is_empty() {
        return Err(ValidationError::Empty { what: WHAT });
    }
    if request_id.len() > MAX_REQUEST_ID_BYTES {
        return Err(ValidationError::TooLong { what: WHAT, len: request_id.len(), max: MAX_REQUEST_ID_BYTES });
    }
    Ok(())
}

/// True when the channel starts with a reserved prefix, ignoring ASCII case.
pub fn is_reserved_channel(channel: &str) -> bool {
    RESERVED_CHANNEL_PREFIXES.iter().any(|prefix| {
        channel.len() >= prefix.len() && channel.as_bytes()[..prefix.len()].eq_ignore_ascii_case(prefix.as_bytes())
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn channels() {
        assert!(validate_channel("room-1").is_ok());
        assert!(validate_channel("ünïcode/ok").is_ok());
        assert_eq!(validate_channel(""), Err(ValidationError::Empty { what: "channel" }));
        assert!(matches!(validate_channel(&"a".repeat(257)), Err(ValidationError::TooLong { len: 257, .. })));
        assert!(validate_channel(&"a".repeat(256)).is_ok());
        for bad in ["a\u{0}", "a\nb", "\u{7f}", "x\u{85}y", "\u{9f}"] {
            assert!(matches!(validate_channel(bad), Err(ValidationError::BadCharacter { .. })), "{bad:?}");
        }
        assert!(validate_channel("a\u{a0}b").is_ok());
    }

    #[test]
    fn peer_ids() {
        assert!(validate_peer_id("4b7c0a7e-1c9f-4a7a-9d1e-0f5a2b3c4d5e").is_ok());
        assert!(validate_peer_id("agent bob~!").is_ok());
        assert!(validate_peer_id("é").is_err());
        assert!(validate_peer_id("a\tb").is_err());
        assert!(validate_peer_id(&"p".repeat(129)).is_err());
        assert!(validate_peer_id("").is_err());
    }

    #[test]
    fn reserved_prefixes_ignore_case() {
        assert!(is_reserved_channel("_metered/x"));
        assert!(is_reserved_channel("_METERED/x"));
        assert!(is_reserved_channel("_Internal/"));
        assert!(is_reserved_channel("_system/a/b"));
        assert!(!is_reserved_channel("_metered"));
        assert!(!is_reserved_channel("metered/_system/"));
        assert!(!is_reserved_channel("_sys"));
        // A multi-byte char at the prefix boundary must not panic.
        assert!(!is_reserved_channel("_metereé/x"));
    }
}
