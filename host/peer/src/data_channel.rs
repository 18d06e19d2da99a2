//! [`DataChannel`]: a WebRTC data channel to one remote peer, with the SDKs'
//! backpressure contract — `send` waits while the channel's buffered bytes
//! would pass `max_buffered_amount` (1 MiB), concurrent sends go out in FIFO
//! order, and past `max_queued_sends` (256) waiting sends a send fails with
//! [`PeerError::DataChannelOverflow`] instead of growing the heap.
//!
//! A channel belongs to one connection generation: after a reconnect (ICE
//! recovery or signalling rebuild) it is closed; open a new one when the peer's
//! state is `Connected` again (the SDKs' contract).

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::time::Duration;

use bytes::Bytes;
use tokio::sync::{Mutex, Notify, mpsc};

use super::error::PeerError;
use super::rtc::{BoundChannel, ChannelEvent, ChannelInit, RtcChannel};

/// The SDKs' default cap on a channel's buffered bytes.
pub const DEFAULT_MAX_BUFFERED_AMOUNT: usize = 1 << 20;
/// The SDKs' default cap on sends waiting for buffer room.
pub const DEFAULT_MAX_QUEUED_SENDS: usize = 256;
/// The largest message a channel carries (the stack's read buffer; browsers
/// interoperate up to this size).
pub const MAX_MESSAGE_BYTES: usize = 65_535;
/// A fallback re-check while waiting for buffer room: the low-buffer event
/// only fires on a downward crossing, so a buffer that settles below it
/// without crossing must not strand a waiting send.
const BUFFER_POLL: Duration = Duration::from_millis(100);

/// How to open a data channel (`RTCDataChannelInit` plus the wrapper's caps).
#[derive(Debug, Clone)]
pub struct DataChannelOptions {
    /// In-order delivery (default `true`).
    pub ordered: bool,
    /// Partial reliability: give up on a message after this many ms.
    pub max_packet_life_time: Option<u16>,
    /// Partial reliability: give up after this many retransmissions.
    pub max_retransmits: Option<u16>,
    /// Sub-protocol name.
    pub protocol: String,
    /// Out-of-band negotiated channel with this SCTP stream id (both sides
    /// create it with the same id; no `DataChannelOpened` fires).
    pub negotiated_id: Option<u16>,
    /// Send cap in bytes (default 1 MiB).
    pub max_buffered_amount: usize,
    /// Sends that may wait for room before `send` fails (default 256).
    pub max_queued_sends: usize,
}

impl Default for DataChannelOptions {
    fn default() -> Self {
        Self {
            ordered: true,
            max_packet_life_time: None,
            max_retransmits: None,
            protocol: String::new(),
            negotiated_id: None,
            max_buffered_amount: DEFAULT_MAX_BUFFERED_AMOUNT,
            max_queued_sends: DEFAULT_MAX_QUEUED_SENDS,
        }
    }
}

impl DataChannelOptions {
    pub(crate) fn init(&self) -> ChannelInit {
        ChannelInit {
            ordered: self.ordered,
            max_packet_life_time: self.max_packet_life_time,
            max_retransmits: self.max_retransmits,
            protocol: self.protocol.clone(),
            negotiated_id: self.negotiated_id,
            low_threshold: self.max_buffered_amount / 2,
        }
    }
}

/// A message on a data channel.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum DataChannelMessage {
    /// A string message.
    Text(String),
    /// A binary message.
    Binary(Bytes),
}

impl DataChannelMessage {
    /// Payload size in bytes.
    pub fn len(&self) -> usize {
        match self {
            DataChannelMessage::Text(s) => s.len(),
            DataChannelMessage::Binary(b) => b.len(),
        }
    }

    /// Whether the payload is empty.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

impl From<&str> for DataChannelMessage {
    fn from(s: &str) -> Self {
        DataChannelMessage::Text(s.to_owned())
    }
}

impl From<String> for DataChannelMessage {
    fn from(s: String) -> Self {
        DataChannelMessage::Text(s)
    }
}

impl From<Vec<u8>> for DataChannelMessage {
    fn from(b: Vec<u8>) -> Self {
        DataChannelMessage::Binary(b.into())
    }
}

impl From<&[u8]> for DataChannelMessage {
    fn from(b: &[u8]) -> Self {
        DataChannelMessage::Binary(Bytes::copy_from_slice(b))
    }
}

/// What happened on a data channel.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum DataChannelEvent {
    /// The channel opened (sends are accepted).
    Open,
    /// A message from the remote (untrusted input).
    Message(DataChannelMessage),
    /// The transport reported an error.
    Error(String),
    /// The channel closed; no more events follow.
    Close,
}

struct Inner {
    label: String,
    channel: RtcChannel,
    events: Mutex<mpsc::Receiver<ChannelEvent>>,
    low: Arc<Notify>,
    /// Serializes sends in arrival order (tokio's mutex is FIFO-fair).
    send_chain: Mutex<()>,
    queued: AtomicUsize,
    closed: AtomicBool,
    max_buffered: usize,
    max_queued: usize,
}

/// A data channel to one remote peer. Cheap to clone; clones share the channel.
#[derive(Clone)]
pub struct DataChannel {
    inner: Arc<Inner>,
}

impl std::fmt::Debug for DataChannel {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("DataChannel").field("label", &self.inner.label).field("state", &self.ready_state()).finish()
    }
}

impl DataChannel {
    pub(crate) fn new(bound: BoundChannel, max_buffered: usize, max_queued: usize) -> Self {
        Self {
            inner: Arc::new(Inner {
                label: bound.channel.label().to_owned(),
                channel: bound.channel,
                events: Mutex::new(bound.events),
                low: bound.low,
                send_chain: Mutex::new(()),
                queued: AtomicUsize::new(0),
                closed: AtomicBool::new(false),
                max_buffered: max_buffered.max(1),
                max_queued,
            }),
        }
    }

    /// The label it was created with.
    pub fn label(&self) -> &str {
        &self.inner.label
    }

    /// The SCTP stream id.
    pub fn id(&self) -> u16 {
        self.inner.channel.id()
    }

    /// Whether delivery is ordered.
    pub fn ordered(&self) -> bool {
        self.inner.channel.ordered()
    }

    /// The sub-protocol.
    pub fn protocol(&self) -> &str {
        self.inner.channel.protocol()
    }

    /// `connecting`, `open`, `closing` or `closed`.
    pub fn ready_state(&self) -> &'static str {
        if self.inner.closed.load(Ordering::Acquire) { "closed" } else { self.inner.channel.ready_state() }
    }

    /// Bytes queued in the transport, not yet sent.
    pub async fn buffered_amount(&self) -> usize {
        self.inner.channel.buffered_amount().await
    }

    /// The next event; `None` after [`DataChannelEvent::Close`] (or once
    /// [`DataChannel::close`] was called). One reader at a time: concurrent
    /// callers take turns.
    pub async fn recv(&self) -> Option<DataChannelEvent> {
        if self.inner.closed.load(Ordering::Acquire) {
            return None;
        }
        let ev = self.inner.events.lock().await.recv().await?;
        Some(match ev {
            ChannelEvent::Open => DataChannelEvent::Open,
            ChannelEvent::Message { text: true, data } => match String::from_utf8(data.to_vec()) {
                Ok(s) => DataChannelEvent::Message(DataChannelMessage::Text(s)),
                // A peer that labels bytes as text: deliver them, as bytes.
                Err(_) => DataChannelEvent::Message(DataChannelMessage::Binary(data)),
            },
            ChannelEvent::Message { text: false, data } => DataChannelEvent::Message(DataChannelMessage::Binary(data)),
            ChannelEvent::Error(e) => DataChannelEvent::Error(e),
            ChannelEvent::Close => {
                self.mark_closed();
                DataChannelEvent::Close
            }
        })
    }

    /// Waits until the channel is open (`Ok`), or closed first (`Err`).
    /// Events other than `Open` seen meanwhile are consumed: call this before
    /// reading messages.
    pub async fn wait_open(&self) -> Result<(), PeerError> {
        if self.inner.channel.ready_state() == "open" {
            return Ok(());
        }
        loop {
            match self.recv().await {
                Some(DataChannelEvent::Open) => return Ok(()),
                Some(_) if self.inner.channel.ready_state() == "open" => return Ok(()),
                Some(_) => {}
                None => return Err(PeerError::DataChannelClosed),
            }
        }
    }

    /// Sends a message once the transport has room for it.
    ///
    /// Suspends while buffered bytes plus this message would pass
    /// `max_buffered_amount`; sends complete in call order. Errors:
    /// [`PeerError::DataChannelOverflow`] when `max_queued_sends` sends are
    /// already waiting; [`PeerError::Oversized`] for a message over the cap or
    /// over [`MAX_MESSAGE_BYTES`]; [`PeerError::DataChannelClosed`] when the
    /// channel is not open or closes while the send waits.
    pub async fn send(&self, message: impl Into<DataChannelMessage>) -> Result<(), PeerError> {
        let message = message.into();
        let inner = &self.inner;
        if inner.closed.load(Ordering::Acquire) {
            return Err(PeerError::DataChannelClosed);
        }
        let size = message.len();
        let max = inner.max_buffered.min(MAX_MESSAGE_BYTES);
        if size > max {
            return Err(PeerError::Oversized { size, max });
        }
        let waiting = inner.queued.fetch_add(1, Ordering::AcqRel);
        let _queued = QueuedGuard(&inner.queued);
        if waiting >= inner.max_queued {
            return Err(PeerError::DataChannelOverflow { queued: waiting, max: inner.max_queued });
        }
        let _turn = inner.send_chain.lock().await;
        loop {
            if inner.closed.load(Ordering::Acquire) || inner.channel.ready_state() != "open" {
                return Err(PeerError::DataChannelClosed);
            }
            // Register before checking, so a drain between the check and the
            // wait is not missed.
            let drained = inner.low.notified();
            if inner.channel.buffered_amount().await + size <= inner.max_buffered {
                break;
            }
            let _ = tokio::time::timeout(BUFFER_POLL, drained).await;
        }
        let (text, data) = match message {
            DataChannelMessage::Text(s) => (true, Bytes::from(s)),
            DataChannelMessage::Binary(b) => (false, b),
        };
        inner.channel.send(text, data).await
    }

    /// Closes the channel (idempotent). Waiting sends fail; `recv` ends.
    pub async fn close(&self) {
        if !self.mark_closed() {
            return;
        }
        self.inner.channel.close().await;
    }

    fn mark_closed(&self) -> bool {
        let first = !self.inner.closed.swap(true, Ordering::AcqRel);
        self.inner.low.notify_waiters();
        first
    }
}

struct QueuedGuard<'a>(&'a AtomicUsize);

impl Drop for QueuedGuard<'_> {
    fn drop(&mut self) {
        self.0.fetch_sub(1, Ordering::AcqRel);
    }
}
