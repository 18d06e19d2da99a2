//! AudioSource (placeholder until the audio module lands).
