//! `metered:realtime/media-stream`: track and media-stream resources over the
//! media module's [`MediaStreamTrack`] and [`MediaStream`].

use std::sync::Arc;

use wasmtime::component::Resource;

use super::super::bindings::media_stream::{Host, HostMediaStream, HostTrack, MediaKind};
use super::super::state::GuestState;
use super::types::kind_to_wit;
use metered_media::{MediaStream, MediaStreamTrack};

/// Longest stream id a guest may choose.
const STREAM_ID_BYTES: usize = 256;

/// A guest's handle on a track. Several handles may share one track; dropping
/// a handle doesn't stop it.
pub struct TrackRep {
    pub(crate) track: Arc<dyn MediaStreamTrack>,
}

/// A guest's media stream.
pub struct StreamRep {
    pub(crate) stream: MediaStream,
}

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
            Some(id) => MediaStream::with_id(super::super::exit::truncate(id, STREAM_ID_BYTES)),
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
