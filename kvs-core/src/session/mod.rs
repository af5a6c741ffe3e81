//! Session state machines: the PutMedia producer ([`PutMediaSession`]) and the GetMedia consumer
//! cursor ([`consumer::GetMediaCursor`]).
//!
//! Both are sans-IO. They never read a clock, open a socket or draw random numbers: the caller
//! passes a monotonic `now` ([`Millis`]) with every input, hands them the bytes it received, and
//! carries out what they ask for (open a connection, send these bytes, close that connection).
//!
//! # Three clocks
//!
//! - `now: Millis` is a monotonic millisecond count chosen by the caller (for example the time
//!   since the process started). It drives every timer and nothing else.
//! - The frame timestamps (`Frame::timestamp_ns`) are media time. In ABSOLUTE mode they are
//!   epoch-based and become the Cluster timecodes; in RELATIVE mode they are relative to the
//!   stream's first fragment.
//! - Wall-clock time appears only in [`producer::SessionConfig::producer_start`] (the
//!   `x-amzn-producer-start-timestamp` header) and in the SigV4 signature the caller adds.
//!
//! # The drain contract (producer)
//!
//! A *mutation* is any call to [`PutMediaSession::push_frame`], `put_metadata`,
//! `handle_connected`, `handle_ack_bytes`, `handle_disconnected`, `handle_timeout` or `finish`.
//! After every mutation the caller runs this loop, and only then waits for I/O:
//!
//! 1. call [`PutMediaSession::poll_event`] until it returns `None`, acting on each event:
//!    - [`Event::Connect`]: sign the request (time given explicitly), open a chunked HTTP/1.1
//!      `POST /putMedia`, and report the result with `handle_connected(now, id, status)` (or
//!      `handle_disconnected` if it could not be opened);
//!    - [`Event::EndBody`]: finish that connection's request body (the terminating chunk) and keep
//!      reading its response; ACKs still arrive on it;
//!    - [`Event::CloseConnection`]: abort that connection now; feed nothing more from it;
//!    - the others (ACKs, errors, rewinds, drops, backpressure, metrics-worthy facts) are
//!      reports;
//! 2. call [`PutMediaSession::poll_transmit`] until it returns `None`, writing every chunk, in
//!    order, to the body of the connection it names (each chunk may be sent as one HTTP chunk);
//! 3. if step 2 returned anything, go back to step 1 (sending can emit events, e.g. `EndBody` on
//!    a connection rotation);
//! 4. read [`PutMediaSession::poll_timeout`] and wait until that instant, the next response bytes
//!    (`handle_ack_bytes`), a connection event or a new frame, whichever comes first; when the
//!    deadline passes call `handle_timeout(now)`.
//!
//! Response bytes carry the [`ConnectionId`] of the connection they came from, so bytes that a
//! closed connection delivers late are ignored. `poll_timeout` is a pure read: it never changes
//! state, and after `handle_timeout(now)` every deadline it reported at or before `now` has been
//! handled (it then reports a later one or none).
//!
//! # Guarantees
//!
//! - Every frame `push_frame` accepted (it returns a [`FrameId`]) is, in the end, acknowledged
//!   as part of a fragment (PERSISTED, or RECEIVED when the stream keeps no data), or reported by
//!   exactly one [`Event::Dropped`] with a [`DropReason`].
//! - The bytes buffered never exceed [`producer::BufferLimits::max_bytes`]; a frame is never
//!   dropped after any byte of it went out on the live connection.
//! - Each connection's body starts with the stream header (same SegmentUID, same tracks) followed
//!   by whole fragments, so replays are byte-identical to the first transmission.

pub mod buffer;
pub mod consumer;
pub mod metrics;
pub mod producer;

pub use metrics::SessionMetrics;
pub use producer::{
    AckLevel, BackoffConfig, BufferLimits, CloseReason, Disconnect, DropReason, DropReport, Event,
    FullPolicy, PushError, PutMediaSession, SessionConfig, SessionError, Timeouts, Transmit,
};

/// A monotonic instant in milliseconds, supplied by the caller (never read inside kvs-core).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Default)]
pub struct Millis(pub u64);

impl Millis {
    /// `self + ms`, saturating.
    pub const fn add(self, ms: u64) -> Millis {
        Millis(self.0.saturating_add(ms))
    }

    /// Milliseconds from `earlier` to `self` (0 when `earlier` is later).
    pub const fn since(self, earlier: Millis) -> u64 {
        self.0.saturating_sub(earlier.0)
    }
}

/// Identifies one connection attempt of a session (never reused).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct ConnectionId(pub u64);

/// Identifies one frame accepted by [`PutMediaSession::push_frame`] (0, 1, 2, … per session).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct FrameId(pub u64);
