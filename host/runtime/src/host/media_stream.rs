//! `metered:realtime/media-stream`: the track and media-stream resources
//! ([`TrackRep`], [`StreamRep`]: the media module's `MediaStreamTrack` and
//! [`MediaStream`]).

use wasmtime::component::Resource;

use super::types::kind_to_wit;
use crate::bindings::media_stream::{Host, HostMediaStream, HostTrack, MediaKind};
use crate::exit::truncate;
use crate::reps::{StreamRep, TrackRep};
use crate::state::GuestState;
use metered_media::MediaStream;

/// Longest stream id a guest may choose.
const STREAM_ID_BYTES: usize = 256;

impl Host for GuestState {}

impl HostTrack for GuestState {
    fn id(&mut self, this: Resource<TrackRep>) -> wasmtime::Result<String> {
        self.enter()?;
        Ok(self.table.get(&this)?.track.id().to_owned())
    }

    fn kind(&mut self, this: Resource<TrackRep>) -> wasmtime::Result<MediaKind> {
        self.enter()?;
        Ok(kind_to_wit(self.table.get(&this)?.track.kind()))
    }

    fn stop(&mut self, this: Resource<TrackRep>) -> wasmtime::Result<()> {
        self.enter()?;
        self.table.get(&this)?.track.stop();
        Ok(())
    }

    fn drop(&mut self, this: Resource<TrackRep>) -> wasmtime::Result<()> {
        self.delete(this)?;
        Ok(())
    }
}

impl HostMediaStream for GuestState {
    fn new(&mut self, id: Option<String>) -> wasmtime::Result<Resource<StreamRep>> {
        self.enter()?;
        let stream = match id {
            Some(id) => MediaStream::with_id(truncate(id, STREAM_ID_BYTES)),
            None => MediaStream::new(),
        };
        self.push(StreamRep { stream })
    }

    fn id(&mut self, this: Resource<StreamRep>) -> wasmtime::Result<String> {
        self.enter()?;
        Ok(self.table.get(&this)?.stream.id().to_owned())
    }

    fn get_tracks(&mut self, this: Resource<StreamRep>) -> wasmtime::Result<Vec<Resource<TrackRep>>> {
        self.enter()?;
        let tracks = self.table.get(&this)?.stream.get_tracks();
        tracks.into_iter().map(|track| self.push(TrackRep { track })).collect()
    }

    fn add_track(&mut self, this: Resource<StreamRep>, track: Resource<TrackRep>) -> wasmtime::Result<()> {
        self.enter()?;
        let track = self.table.get(&track)?.track.clone();
        self.table.get(&this)?.stream.add_track(track);
        Ok(())
    }

    fn remove_track(&mut self, this: Resource<StreamRep>, track: Resource<TrackRep>) -> wasmtime::Result<()> {
        self.enter()?;
        let track = self.table.get(&track)?.track.clone();
        self.table.get(&this)?.stream.remove_track(&*track);
        Ok(())
    }

    fn drop(&mut self, this: Resource<StreamRep>) -> wasmtime::Result<()> {
        self.delete(this)?;
        Ok(())
    }
}
