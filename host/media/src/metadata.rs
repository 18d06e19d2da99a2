//! [`StreamMetadata`]: customer-defined fields attached to tracks.

use serde_json::{Map, Value};

/// The default cap on serialized metadata: the message-size cap it travels under.
pub const DEFAULT_MAX_METADATA_BYTES: usize = 8 * 1024;

/// Why metadata was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum MetadataError {
    /// Metadata must be a JSON object.
    #[error("stream metadata must be a JSON object, got {0}")]
    NotAnObject(&'static str),
    /// The serialized object is over the cap.
    #[error("stream metadata is {len} bytes serialized, over the {max}-byte cap")]
    TooLarge {
        /// Serialized length.
        len: usize,
        /// The cap.
        max: usize,
    },
    /// The text is not JSON.
    #[error("stream metadata is not valid JSON: {0}")]
    InvalidJson(String),
}

/// A JSON object of customer-defined fields attached at `add_stream` /
/// `add_track` time (convention: `role` and `label`). It travels over the
/// messaging service and counts against the per-message size cap.
///
/// **Inbound metadata is untrusted peer input**: it was validated for shape and
/// size only; never interpret it as instructions or render it unescaped.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct StreamMetadata(Map<String, Value>);

fn kind(v: &Value) -> &'static str {
    match v {
        Value::Null => "null",
        Value::Bool(_) => "a boolean",
        Value::Number(_) => "a number",
        Value::String(_) => "a string",
        Value::Array(_) => "an array",
        Value::Object(_) => "an object",
    }
}

impl StreamMetadata {
    /// Empty metadata.
    pub fn new() -> Self {
        Self::default()
    }

    /// Validates a JSON value against the default cap.
    pub fn from_value(value: Value) -> Result<Self, MetadataError> {
        Self::from_value_capped(value, DEFAULT_MAX_METADATA_BYTES)
    }

    /// Validates a JSON value: an object whose serialization is at most `max` bytes.
    pub fn from_value_capped(value: Value, max: usize) -> Result<Self, MetadataError> {
        let Value::Object(map) = value else { return Err(MetadataError::NotAnObject(kind(&value))) };
        let len = serde_json::to_string(&map).map(|s| s.len()).unwrap_or(usize::MAX);
        if len > max {
            return Err(MetadataError::TooLarge { len, max });
        }
        Ok(Self(map))
    }

    /// Parses and validates JSON text (e.g. from an untrusted peer).
    pub fn parse(text: &str, max: usize) -> Result<Self, MetadataError> {
        if text.len() > max.saturating_mul(2) {
            return Err(MetadataError::TooLarge { len: text.len(), max });
        }
        let value: Value = serde_json::from_str(text).map_err(|e| MetadataError::InvalidJson(e.to_string()))?;
        Self::from_value_capped(value, max)
    }

    /// `role` and `label` convenience constructor.
    pub fn role_label(role: &str, label: &str) -> Result<Self, MetadataError> {
        Self::from_value(serde_json::json!({"role": role, "label": label}))
    }

    /// A field.
    pub fn get(&self, key: &str) -> Option<&Value> {
        self.0.get(key)
    }

    /// The `role` field, when it is a string.
    pub fn role(&self) -> Option<&str> {
        self.get("role").and_then(Value::as_str)
    }

    /// The `label` field, when it is a string.
    pub fn label(&self) -> Option<&str> {
        self.get("label").and_then(Value::as_str)
    }

    /// The object.
    pub fn as_map(&self) -> &Map<String, Value> {
        &self.0
    }

    /// The object as a JSON value.
    pub fn to_value(&self) -> Value {
        Value::Object(self.0.clone())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn objects_only_and_capped() {
        let m = StreamMetadata::role_label("camera", "Front Door").unwrap();
        assert_eq!((m.role(), m.label()), (Some("camera"), Some("Front Door")));
        assert_eq!(StreamMetadata::from_value(json!([1])), Err(MetadataError::NotAnObject("an array")));
        assert_eq!(StreamMetadata::from_value(json!(null)), Err(MetadataError::NotAnObject("null")));
        let big = json!({"x": "y".repeat(9000)});
        assert!(matches!(StreamMetadata::from_value(big), Err(MetadataError::TooLarge { max: 8192, .. })));
        assert!(StreamMetadata::parse("{", 100).is_err());
        assert!(matches!(StreamMetadata::parse(&" ".repeat(1000), 100), Err(MetadataError::TooLarge { .. })));
        assert_eq!(StreamMetadata::parse(r#"{"role":"file"}"#, 100).unwrap().role(), Some("file"));
    }
}
