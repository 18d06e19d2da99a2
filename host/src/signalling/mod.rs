//! Pub/sub client (placeholder until it lands).
