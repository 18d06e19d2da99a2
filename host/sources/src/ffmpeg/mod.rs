//! Everything that touches FFmpeg: opening inputs under their whitelists
//! and bounds, decoding, converting, and the feeder thread that keeps a
//! player's tracks supplied. Nothing outside this folder names ffmpeg-next.

mod convert;
pub(crate) mod feeder;
pub(crate) mod open;
