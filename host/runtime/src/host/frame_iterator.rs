//! `metered:realtime/frame-iterator`: the guest's input ([`IteratorRep`], over
//! the media module's `MediaStreamTrack`); `next` blocks the guest (an async
//! host function) and `subscribe` gives a `wasi:io/poll` pollable.

use wasmtime::component::Resource;
use wasmtime_wasi_io::poll::{DynPollable, subscribe};

use super::types::frame_to_wit;
use crate::bindings::frame_iterator::{Host, HostFrameIterator};
use crate::bindings::types::Frame as WitFrame;
use crate::exit::AgentExit;
use crate::reps::{IteratorRep, TrackRep};
use crate::state::GuestState;

impl Host for GuestState {}

impl HostFrameIterator for GuestState {
    fn new(&mut self, track: Resource<TrackRep>) -> wasmtime::Result<Resource<IteratorRep>> {
        self.enter()?;
        if self.counts.frame_iterators >= self.limits.frame_iterators {
            let what = format!("more than {} live frame iterators", self.limits.frame_iterators);
            return Err(self.end_with(AgentExit::ResourceLimit { what }));
        }
        let track = self.table.get(&track)?.track.clone();
        let res = self.push(IteratorRep::new(track))?;
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
