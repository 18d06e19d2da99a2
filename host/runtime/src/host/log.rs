//! `metered:realtime/log`: guest records into `tracing`, tagged with the agent.

use crate::bindings::log::{Host, Level};
use crate::exit::truncate;
use crate::state::GuestState;

impl Host for GuestState {
    fn log(&mut self, level: Level, message: String) -> wasmtime::Result<()> {
        self.enter()?;
        // A byte budget refilled whenever the guest waits: a chatty guest loses
        // records, never the host's log.
        if message.len() > self.meter.log_bytes {
            return Ok(());
        }
        self.meter.log_bytes -= message.len();
        let message = truncate(message, self.limits.message_bytes);
        let agent = &*self.agent.id;
        match level {
            Level::Trace => tracing::trace!(agent, "{message}"),
            Level::Debug => tracing::debug!(agent, "{message}"),
            Level::Info => tracing::info!(agent, "{message}"),
            Level::Warn => tracing::warn!(agent, "{message}"),
            Level::Error => tracing::error!(agent, "{message}"),
        }
        Ok(())
    }
}
