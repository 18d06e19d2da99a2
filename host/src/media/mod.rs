//! Media core (placeholder until the media module lands).
