//! Sources against real counterparts on this machine: media files made by
//! the `ffmpeg` CLI, GStreamer's RTSP server, a stalled TCP listener, the
//! lavfi test pattern through the camera's libavdevice path, Xvfb for the
//! screen and a private PulseAudio for the microphone. One binary.

mod devices;
mod files;
mod hostile;
mod rtsp;
mod support;
