//! `wasi:io/poll`, wrapped: waiting on pollables (frame iterators, rooms, clock
//! timers) counts as the guest waiting, so its CPU budget refills exactly as when
//! it blocks in `next`.

use wasmtime::component::{Resource, ResourceTable};
use wasmtime_wasi_io::bindings::wasi::io::poll::{Host, HostPollable};
use wasmtime_wasi_io::poll::DynPollable;

use crate::state::{GuestState, tracked};

impl Host for GuestState {
    async fn poll(&mut self, pollables: Vec<Resource<DynPollable>>) -> wasmtime::Result<Vec<u32>> {
        self.enter()?;
        let GuestState { table, meter, .. } = self;
        let (ready, waited) = tracked(<ResourceTable as Host>::poll(table, pollables)).await;
        if waited {
            meter.waited();
        }
        ready
    }
}

impl HostPollable for GuestState {
    async fn ready(&mut self, this: Resource<DynPollable>) -> wasmtime::Result<bool> {
        self.enter()?;
        <ResourceTable as HostPollable>::ready(&mut self.table, this).await
    }

    async fn block(&mut self, this: Resource<DynPollable>) -> wasmtime::Result<()> {
        self.enter()?;
        let GuestState { table, meter, .. } = self;
        let (done, waited) = tracked(<ResourceTable as HostPollable>::block(table, this)).await;
        if waited {
            meter.waited();
        }
        done
    }

    fn drop(&mut self, this: Resource<DynPollable>) -> wasmtime::Result<()> {
        <ResourceTable as HostPollable>::drop(&mut self.table, this)
    }
}
