//! Messaging service (placeholder).
