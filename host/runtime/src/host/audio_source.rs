//! `metered:realtime/audio-source`: the guest's output, over the media module's
//! [`AudioSource`]. `push` blocks the guest (an async host function) while the
//! source is at its cap.

use std::sync::Arc;

use wasmtime::component::Resource;

use super::types::audio_from_wit;
use crate::bindings::audio_source::{Error, Host, HostAudioSource, InputLayout as WitLayout, Options};
use crate::bindings::types::AudioFrame as WitAudioFrame;
use crate::reps::{SourceRep, TrackRep};
use crate::state::GuestState;
use metered_audio::{AudioSource, AudioSourceOptions, InputLayout};

impl Host for GuestState {}

impl GuestState {
    /// The source behind a handle, or why a push must be refused.
    fn pushable(&mut self, this: &Resource<SourceRep>, bytes: usize) -> wasmtime::Result<Result<AudioSource, Error>> {
        self.enter()?;
        if bytes > self.limits.push_bytes {
            let msg = format!("push of {bytes} bytes is over the {}-byte cap per call", self.limits.push_bytes);
            return Ok(Err(Error::LimitExceeded(msg)));
        }
        let rep = self.table.get(this)?;
        Ok(if rep.ended { Err(Error::Closed) } else { Ok(rep.source.clone()) })
    }
}

impl HostAudioSource for GuestState {
    fn create(&mut self, options: Options) -> wasmtime::Result<Result<Resource<SourceRep>, Error>> {
        self.enter()?;
        if self.counts.audio_sources >= self.limits.audio_sources {
            let msg = format!("at most {} audio sources per agent", self.limits.audio_sources);
            return Ok(Err(Error::LimitExceeded(msg)));
        }
        let m = options.max_buffered_seconds;
        if !(m.is_finite() && m > 0.0 && m <= 3600.0) {
            return Ok(Err(Error::InvalidArgument(format!("max-buffered-seconds must be in (0, 3600], got {m}"))));
        }
        if !(8_000..=192_000).contains(&options.input_rate) {
            return Ok(Err(Error::InvalidArgument(format!(
                "input-rate {} is outside 8000..=192000",
                options.input_rate
            ))));
        }
        let opts = AudioSourceOptions {
            input_rate: options.input_rate,
            input_layout: match options.input_layout {
                WitLayout::Mono => InputLayout::Mono,
                WitLayout::Stereo => InputLayout::Stereo,
            },
            max_buffered_seconds: m.min(self.limits.max_buffered_seconds),
            timer: self.pacing.clone(),
        };
        match AudioSource::new(opts) {
            Ok(source) => {
                let res = self.push(SourceRep::new(source))?;
                self.counts.audio_sources += 1;
                Ok(Ok(res))
            }
            Err(e) => Ok(Err(Error::InvalidArgument(e.to_string()))),
        }
    }

    async fn push(&mut self, this: Resource<SourceRep>, pcm: Vec<u8>) -> wasmtime::Result<Result<(), Error>> {
        let source = match self.pushable(&this, pcm.len())? {
            Ok(source) => source,
            Err(e) => return Ok(Err(e)),
        };
        self.blocking(async move { source.push(&pcm).await }).await;
        Ok(Ok(()))
    }

    async fn push_frame(
        &mut self,
        this: Resource<SourceRep>,
        frame: WitAudioFrame,
    ) -> wasmtime::Result<Result<(), Error>> {
        let source = match self.pushable(&this, frame.samples.len())? {
            Ok(source) => source,
            Err(e) => return Ok(Err(e)),
        };
        let frame = match audio_from_wit(frame) {
            Ok(frame) => frame,
            Err(msg) => return Ok(Err(Error::InvalidArgument(msg))),
        };
        let pushed = self.blocking(async move { source.push_frame(&frame).await }).await;
        Ok(pushed.map_err(|e| Error::InvalidArgument(e.to_string())))
    }

    fn end(&mut self, this: Resource<SourceRep>) -> wasmtime::Result<()> {
        self.enter()?;
        let rep = self.table.get_mut(&this)?;
        rep.ended = true;
        rep.source.end();
        Ok(())
    }

    fn buffered_seconds(&mut self, this: Resource<SourceRep>) -> wasmtime::Result<f64> {
        self.enter()?;
        Ok(self.table.get(&this)?.source.buffered_seconds())
    }

    fn clear(&mut self, this: Resource<SourceRep>) -> wasmtime::Result<()> {
        self.enter()?;
        self.table.get(&this)?.source.clear();
        Ok(())
    }

    async fn wait_for_playout(&mut self, this: Resource<SourceRep>) -> wasmtime::Result<()> {
        self.enter()?;
        let source = self.table.get(&this)?.source.clone();
        self.blocking(async move { source.wait_for_playout().await }).await;
        Ok(())
    }

    fn track(&mut self, this: Resource<SourceRep>) -> wasmtime::Result<Resource<TrackRep>> {
        self.enter()?;
        let track = Arc::new(self.table.get(&this)?.source.clone());
        self.push(TrackRep { track })
    }

    fn drop(&mut self, this: Resource<SourceRep>) -> wasmtime::Result<()> {
        self.delete(this)?;
        self.counts.audio_sources = self.counts.audio_sources.saturating_sub(1);
        Ok(())
    }
}
