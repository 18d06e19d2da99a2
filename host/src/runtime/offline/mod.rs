//! Offline harness.
