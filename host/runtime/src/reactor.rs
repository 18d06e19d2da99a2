//! The host side of the `reactor` world (`wit/handler.wit`): instead of the
//! guest blocking in `run`, the host waits for the next thing that happens
//! among the rooms and frame iterators the guest holds, and calls the guest's
//! `handler` export with it. The guest returns after each call, which lets
//! language runtimes that reclaim memory only between calls (JavaScript)
//! stay bounded.

use std::task::Poll;

use wasmtime::Store;
use wasmtime::component::Resource;

use super::bindings::handler::{Flow, Guest};
use super::host::types::frame_to_wit;
use super::reps::{IteratorRep, RoomRep};
use super::room_host::RoomEvent;
use super::state::GuestState;
use metered_media::Frame;

/// The next thing to hand a reactor guest.
pub(crate) enum Delivery {
    /// An event of a room the guest holds.
    Event(RoomEvent),
    /// A frame of a track a guest's iterator follows.
    Frame { track_id: String, frame: Frame },
    /// That track ended.
    Ended { track_id: String },
}

impl GuestState {
    /// Waits for the next delivery, scanning rooms then iterators round
    /// robin so that no busy source starves another. `None` once nothing is
    /// live (every room closed or dropped, every iterator ended or dropped).
    /// A closed room or an ended track leaves the live set as it is seen.
    pub(crate) async fn next_delivery(&mut self) -> Option<Delivery> {
        std::future::poll_fn(|cx| {
            loop {
                let (rooms, iterators) = (self.live.rooms.len(), self.live.iterators.len());
                let n = rooms + iterators;
                if n == 0 {
                    return Poll::Ready(None);
                }
                let start = self.live.next % n;
                let mut gone = None;
                for k in 0..n {
                    let i = (start + k) % n;
                    if i < rooms {
                        let rep = self.live.rooms[i];
                        let Ok(room) = self.table.get_mut(&Resource::<RoomRep>::new_borrow(rep)) else {
                            gone = Some(i);
                            break;
                        };
                        match room.poll_next(cx) {
                            Poll::Ready(Some(event)) => {
                                self.live.next = i + 1;
                                return Poll::Ready(Some(Delivery::Event(event)));
                            }
                            Poll::Ready(None) => {
                                gone = Some(i);
                                break;
                            }
                            Poll::Pending => {}
                        }
                    } else {
                        let rep = self.live.iterators[i - rooms];
                        let Ok(it) = self.table.get_mut(&Resource::<IteratorRep>::new_borrow(rep)) else {
                            gone = Some(i);
                            break;
                        };
                        match it.poll_next(cx) {
                            Poll::Ready(Some(frame)) => {
                                self.live.next = i + 1;
                                let track_id = it.track_id().to_owned();
                                return Poll::Ready(Some(Delivery::Frame { track_id, frame }));
                            }
                            Poll::Ready(None) => {
                                let track_id = it.track_id().to_owned();
                                self.live.iterators.remove(i - rooms);
                                return Poll::Ready(Some(Delivery::Ended { track_id }));
                            }
                            Poll::Pending => {}
                        }
                    }
                }
                match gone {
                    // A closed room leaves quietly; scan again without it.
                    Some(i) if i < rooms => {
                        self.live.rooms.remove(i);
                    }
                    Some(i) => {
                        self.live.iterators.remove(i - rooms);
                    }
                    None => return Poll::Pending,
                }
            }
        })
        .await
    }
}

/// Drives a reactor guest: `start`, then one call per delivery, until a call
/// says `finish` or fails, or nothing is left to deliver. `Ok(Err(_))` is the
/// guest's own failure; `Err(_)` a trap.
pub(crate) async fn react(
    store: &mut Store<GuestState>,
    guest: &Guest,
    config: &str,
) -> wasmtime::Result<Result<(), String>> {
    let handler = guest;
    fresh_budget(store);
    if let Some(done) = done(handler.call_start(&mut *store, config).await?) {
        return Ok(done);
    }
    loop {
        let Some(delivery) = store.data_mut().next_delivery().await else { return Ok(Ok(())) };
        let outcome = match delivery {
            Delivery::Event(event) => {
                // The metadata policy may drop a track event.
                let Some(event) = store.data_mut().deliver(event).await? else { continue };
                fresh_budget(store);
                handler.call_on_room_event(&mut *store, &event).await?
            }
            Delivery::Frame { track_id, frame } => {
                fresh_budget(store);
                handler.call_on_frame(&mut *store, &track_id, &frame_to_wit(frame)).await?
            }
            Delivery::Ended { track_id } => {
                fresh_budget(store);
                handler.call_on_track_ended(&mut *store, &track_id).await?
            }
        };
        if let Some(done) = done(outcome) {
            return Ok(done);
        }
    }
}

/// Each call is an event of its own: a full CPU budget and call allowance.
fn fresh_budget(store: &mut Store<GuestState>) {
    store.data_mut().meter.reset();
    store.set_epoch_deadline(1);
}

/// `Some` when the agent ends after this call.
fn done(outcome: Result<Flow, String>) -> Option<Result<(), String>> {
    match outcome {
        Ok(Flow::More) => None,
        Ok(Flow::Finish) => Some(Ok(())),
        Err(message) => Some(Err(message)),
    }
}
