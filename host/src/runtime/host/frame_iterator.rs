//! `metered:realtime/frame-iterator`: the guest's input, over the media
//! module's [`MediaStreamTrack`]; `next` blocks the guest (an async host
//! function) and `subscribe` gives a `wasi:io/poll` pollable.

use std::sync::Arc;

use wasmtime::component::Resource;
use wasmtime_wasi_io::poll::{DynPollable, Pollable, subscribe};

use super::super::bindings::frame_iterator::{Host, HostFrameIterator};
use super::super::bindings::types::Frame as WitFrame;
use super::super::exit::AgentExit;
use super::super::state::GuestState;
use super::media_stream::TrackRep;
use super::types::frame_to_wit;
use crate::media::{Frame, MediaStreamTrack};

/// A guest's iterator: the track, and a frame received while polling.
pub struct IteratorRep {
    track: Arc<dyn MediaStreamTrack>,
    ready: Option<Frame>,
    ended: bool,
}

#[wasmtime_wasi::async_trait]
impl Pollable for IteratorRep {
    async fn ready(&mut self) {
        if self.ready.is_some() || self.ended {
            return;
        }
        // Cancel-safe: a track only hands out a frame when the poll completes.
        match self.track.recv().await {
            Ok(frame) => self.ready = Some(frame),
            Err(_) => self.ended = true,
        }
    }
}

impl Host for GuestState {}

impl HostFrameIterator for GuestState {
    fn new(&mut self, track: Resource<TrackRep>) -> wasmtime::Result<Resource<IteratorRep>> {
        self.enter()?;
        if self.counts.frame_iterators >= self.limits.frame_iterators {
            let what = format!("more than {} live frame iterators", self.limits.frame_iterators);
            return Err(self.end_with(AgentExit::ResourceLimit { what }));
        }
        let track = self.table.get(&track)?.track.clone();
        let res = self.push(IteratorRep { track, ready: None, ended: false })?;
        self.counts.frame_iterators += 1;
        Ok(res)
    }

    async fn next(&mut self, this: Resource<IteratorRep>) -> wasmtime::Result<Option<WitFrame>> {
        self.enter()?;
        let it = self.table.get_mut(&this)?;
        if let Some(frame) = it.ready.take() {
            return Ok(Some(frame_to_wit(frame)));
        }
        if it.ended {
            return Ok(None);
        }
        let track = it.track.clone();
        match self.blocking(async move { track.recv().await }).await {
            Ok(frame) => Ok(Some(frame_to_wit(frame))),
            Err(_) => {
                self.table.get_mut(&this)?.ended = true;
                Ok(None)
            }
        }
    }

    fn subscribe(&mut self, this: Resource<IteratorRep>) -> wasmtime::Result<Resource<DynPollable>> {
        self.enter()?;
        subscribe(&mut self.table, this)
    }

    fn drop(&mut self, this: Resource<IteratorRep>) -> wasmtime::Result<()> {
        self.delete(this)?;
        self.counts.frame_iterators = self.counts.frame_iterators.saturating_sub(1);
        Ok(())
    }
}
