//! A guest's stdout and stderr: routed to `tracing` line by line (tagged with the
//! agent id), capped per agent, with the last lines of stderr kept so a trap's
//! reason can include the guest's panic message.

use std::sync::Arc;

use bytes::Bytes;
use parking_lot::Mutex;
use wasmtime_wasi::cli::{IsTerminal, StdoutStream};
use wasmtime_wasi_io::poll::Pollable;
use wasmtime_wasi_io::streams::{OutputStream, StreamError};

/// Bytes of a guest's output that are logged; the rest is dropped.
const LOGGED_BYTES: usize = 64 << 10;
/// Bytes of stderr kept for the trap message.
const TAIL_BYTES: usize = 1024;
/// Longest line logged as one record.
const LINE_BYTES: usize = 1024;

#[derive(Debug, Default)]
struct State {
    line: Vec<u8>,
    logged: usize,
    dropped: bool,
    tail: Vec<u8>,
}

/// One of a guest's output streams. Clones share the state.
#[derive(Debug, Clone)]
pub(crate) struct GuestOutput {
    agent: Arc<str>,
    stream: &'static str,
    state: Arc<Mutex<State>>,
}

impl GuestOutput {
    pub(crate) fn new(agent: Arc<str>, stream: &'static str) -> Self {
        Self { agent, stream, state: Arc::default() }
    }

    /// The last bytes written (lossily decoded), for a trap message.
    pub(crate) fn tail(&self) -> String {
        let st = self.state.lock();
        let mut text = String::from_utf8_lossy(&st.tail).into_owned();
        text.extend(std::str::from_utf8(&st.line).ok());
        text.trim().to_owned()
    }

    fn write(&self, bytes: &[u8]) {
        let mut st = self.state.lock();
        for &b in bytes {
            if b == b'\n' || st.line.len() >= LINE_BYTES {
                self.emit(&mut st);
                if b == b'\n' {
                    continue;
                }
            }
            st.line.push(b);
        }
    }

    fn emit(&self, st: &mut State) {
        let line = std::mem::take(&mut st.line);
        if self.stream == "stderr" {
            st.tail.extend_from_slice(&line);
            st.tail.push(b'\n');
            let excess = st.tail.len().saturating_sub(TAIL_BYTES);
            st.tail.drain(..excess);
        }
        if st.logged + line.len() > LOGGED_BYTES {
            if !st.dropped {
                st.dropped = true;
                tracing::warn!(agent = %self.agent, stream = self.stream, "guest output over {LOGGED_BYTES} bytes; dropping the rest");
            }
        } else {
            st.logged += line.len();
            let text = String::from_utf8_lossy(&line);
            tracing::info!(agent = %self.agent, stream = self.stream, "{text}");
        }
        st.line = line;
        st.line.clear();
    }
}

impl IsTerminal for GuestOutput {
    fn is_terminal(&self) -> bool {
        false
    }
}

impl StdoutStream for GuestOutput {
    fn p2_stream(&self) -> Box<dyn OutputStream> {
        Box::new(self.clone())
    }

    fn async_stream(&self) -> Box<dyn tokio::io::AsyncWrite + Send + Sync> {
        Box::new(self.clone())
    }
}

#[wasmtime_wasi::async_trait]
impl OutputStream for GuestOutput {
    fn write(&mut self, bytes: Bytes) -> Result<(), StreamError> {
        GuestOutput::write(self, &bytes);
        Ok(())
    }

    fn flush(&mut self) -> Result<(), StreamError> {
        Ok(())
    }

    fn check_write(&mut self) -> Result<usize, StreamError> {
        Ok(LINE_BYTES * 4)
    }
}

#[wasmtime_wasi::async_trait]
impl Pollable for GuestOutput {
    async fn ready(&mut self) {}
}

impl tokio::io::AsyncWrite for GuestOutput {
    fn poll_write(
        self: std::pin::Pin<&mut Self>,
        _cx: &mut std::task::Context<'_>,
        buf: &[u8],
    ) -> std::task::Poll<std::io::Result<usize>> {
        GuestOutput::write(&self, buf);
        std::task::Poll::Ready(Ok(buf.len()))
    }

    fn poll_flush(
        self: std::pin::Pin<&mut Self>,
        _cx: &mut std::task::Context<'_>,
    ) -> std::task::Poll<std::io::Result<()>> {
        std::task::Poll::Ready(Ok(()))
    }

    fn poll_shutdown(
        self: std::pin::Pin<&mut Self>,
        _cx: &mut std::task::Context<'_>,
    ) -> std::task::Poll<std::io::Result<()>> {
        std::task::Poll::Ready(Ok(()))
    }
}
