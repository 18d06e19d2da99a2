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
use metered_media::{Frame, MediaStreamTrack};

/// A guest's iterator: the track, and a frame received while polling.
pub struct IteratorRep {
    track: Arc<dyn MediaStreamTrack>,
    ready: Option<Frame>,
    ended: bool,
}

impl IteratorRep {
    /// The id of the track it follows.
    pub(crate) fn track_id(&self) -> &str {
        self.track.id()
    }

    /// Polls for the next frame: `Ready(None)` once the track has ended.
    pub(crate) fn poll_next(&mut self, cx: &mut std::task::Context<'_>) -> std::task::Poll<Option<Frame>> {
        if let Some(frame) = self.ready.take() {
            return std::task::Poll::Ready(Some(frame));
        }
        if self.ended {
            return std::task::Poll::Ready(None);
        }
        match self.track.poll_recv(cx) {
            std::task::Poll::Ready(Ok(frame)) => std::task::Poll::Ready(Some(frame)),
            std::task::Poll::Ready(Err(_)) => {
                self.ended = true;
                std::task::Poll::Ready(None)
            }
            std::task::Poll::Pending => std::task::Poll::Pending,
        }
    }
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
        self.live.iterators.push(res.rep());
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
        let rep = this.rep();
        self.delete(this)?;
        self.live.iterators.retain(|&r| r != rep);
        self.counts.frame_iterators = self.counts.frame_iterators.saturating_sub(1);
        Ok(())
    }
}
