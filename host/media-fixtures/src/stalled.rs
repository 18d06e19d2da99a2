//! A server that accepts connections and never answers.

use std::io::ErrorKind;
use std::net::{TcpListener, TcpStream};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::thread::{self, JoinHandle};
use std::time::Duration;

/// A TCP listener on 127.0.0.1 that accepts every connection and holds it open
/// without reading or writing a byte: a camera or server that hangs after the TCP
/// handshake. Dropping it stops the accept thread and closes every socket.
pub struct StalledServer {
    port: u16,
    stop: Arc<AtomicBool>,
    accepted: Arc<AtomicUsize>,
    thread: Option<JoinHandle<()>>,
}

impl StalledServer {
    /// Binds 127.0.0.1:0 and starts accepting.
    pub fn start() -> Result<StalledServer, String> {
        let listener = TcpListener::bind("127.0.0.1:0").map_err(|e| format!("bind 127.0.0.1:0: {e}"))?;
        listener.set_nonblocking(true).map_err(|e| format!("set_nonblocking: {e}"))?;
        let port = listener.local_addr().map_err(|e| format!("local_addr: {e}"))?.port();
        let stop = Arc::new(AtomicBool::new(false));
        let accepted = Arc::new(AtomicUsize::new(0));
        let thread = {
            let stop = Arc::clone(&stop);
            let accepted = Arc::clone(&accepted);
            thread::Builder::new()
                .name("stalled-server".into())
                .spawn(move || {
                    let mut held: Vec<TcpStream> = Vec::new();
                    while !stop.load(Ordering::Relaxed) {
                        match listener.accept() {
                            Ok((stream, _)) => {
                                held.push(stream);
                                accepted.fetch_add(1, Ordering::Relaxed);
                            }
                            Err(e) if e.kind() == ErrorKind::WouldBlock => thread::sleep(Duration::from_millis(5)),
                            Err(_) => thread::sleep(Duration::from_millis(5)),
                        }
                    }
                    // `held` and `listener` close here.
                })
                .map_err(|e| format!("spawn stalled-server thread: {e}"))?
        };
        Ok(StalledServer { port, stop, accepted, thread: Some(thread) })
    }

    /// The listening port.
    pub fn port(&self) -> u16 {
        self.port
    }

    /// `SCHEME://127.0.0.1:PORT/stream` (e.g. `url("rtsp")`).
    pub fn url(&self, scheme: &str) -> String {
        format!("{scheme}://127.0.0.1:{}/stream", self.port)
    }

    /// How many connections were accepted so far.
    pub fn accepted(&self) -> usize {
        self.accepted.load(Ordering::Relaxed)
    }
}

impl Drop for StalledServer {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        if let Some(thread) = self.thread.take() {
            // The loop checks the flag every 5 ms.
            let _ = thread.join();
        }
    }
}
