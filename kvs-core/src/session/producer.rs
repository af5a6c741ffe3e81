//! The PutMedia producer session: frames in, PutMedia bodies out, ACKs back, replay on failure.
//!
//! See the [module docs](super) for the drain contract. In short:
//!
//! ```text
//! push_frame / put_metadata / finish            ─┐
//! handle_connected / handle_ack_bytes            ├─ inputs, each with `now`
//! handle_disconnected / handle_timeout          ─┘
//! poll_event → Connect, EndBody, CloseConnection, Ack, Error, Rewind, Dropped, Backpressure, Closed
//! poll_transmit → (connection, Bytes) chunks of the request body
//! poll_timeout → the next deadline
//! ```
//!
//! Behaviour:
//! - fragments are cut by the [`StreamWriter`] (a fragment per key frame, or by duration), and
//!   every fragment is kept in a bounded buffer until its final ACK (PERSISTED, or RECEIVED with
//!   [`AckLevel::Received`] for streams without retention);
//! - ACKs are matched to fragments by `FragmentTimecode` (the raw Cluster timecode) and by the
//!   connection that carried them;
//! - after a disconnect, a stale connection or a retriable ERROR ACK, the session rewinds to the
//!   first unacknowledged fragment and replays it on the next connection, which starts with the
//!   stream header again (same SegmentUID, same bytes);
//! - a non-retriable ERROR ACK fails that fragment (reported as [`Event::Dropped`] with
//!   [`DropReason::Failed`]); if it was still open the rest of it is dropped and the stream
//!   continues at the next key frame;
//! - connections are rotated before the service's 45-minute limit: a fresh connection is opened
//!   while the old one streams, the switch happens at a fragment boundary, and the old one ends
//!   its body and stays open for its last ACKs (no gap);
//! - a connection that sends without getting a BUFFERING ACK for
//!   [`Timeouts::stale_ms`], or that waits longer than [`Timeouts::ack_ms`] for the final ACK
//!   of a complete fragment, is closed as stale; a connection with nothing to send for
//!   [`Timeouts::idle_ms`] is closed before the service's 30 s idle limit and reopened when data
//!   comes;
//! - reconnects back off exponentially with jitter drawn from a caller-given seed.

use bytes::{Bytes, BytesMut};

use super::buffer::{ACK_BUFFERING, ACK_PERSISTED, ACK_RECEIVED, FragmentBuffer};
use super::metrics::SessionMetrics;
use super::{ConnectionId, FrameId, Millis};
use crate::ack::{AckError, AckEvent, AckEventType, AckParser, ErrorId};
use crate::api::{FragmentTimecodeType, PutMediaRequest, Timestamp};
use crate::fragment::{FragmentNumber, tag};
use crate::mkv::writer::{
    ConfigError, END_OF_FRAGMENT_LEN, StreamConfig, StreamWriter, TimecodeMode, WriterError,
    write_tag_chain,
};
use crate::mkv::{Frame, TrackInfo};

/// Which ACK releases a fragment from the buffer.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum AckLevel {
    /// PERSISTED (streams with retention above zero).
    #[default]
    Persisted,
    /// RECEIVED (streams with zero retention get no PERSISTED).
    Received,
}

/// What `push_frame` does when a frame does not fit the buffer.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum FullPolicy {
    /// Refuse the frame with [`PushError::Full`] and signal [`Event::Backpressure`].
    #[default]
    Refuse,
    /// Drop the oldest complete fragment that has no byte on the live connection, report it,
    /// and retry; refuse when there is none.
    DropOldest,
}

/// Bounds on the buffer.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct BufferLimits {
    /// Most encoded bytes held.
    pub max_bytes: usize,
    /// Most media time held (oldest fragment start to newest frame), in ms. Keep it above the
    /// fragment duration, or a single open fragment fills it.
    pub max_duration_ms: u64,
    /// What to do when full.
    pub policy: FullPolicy,
}

impl Default for BufferLimits {
    fn default() -> Self {
        BufferLimits {
            max_bytes: 64 << 20,
            max_duration_ms: 120_000,
            policy: FullPolicy::Refuse,
        }
    }
}

/// Timer settings, in ms.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Timeouts {
    /// From [`Event::Connect`] to `handle_connected`.
    pub connect_ms: u64,
    /// Sending without a BUFFERING ACK for this long makes the connection stale.
    pub stale_ms: u64,
    /// A complete, fully sent fragment without its final ACK for this long makes the connection
    /// stale.
    pub ack_ms: u64,
    /// A connection with nothing to send for this long is closed (the service closes at 30 s).
    pub idle_ms: u64,
    /// Connection age at which a fresh connection replaces it (the service limit is 45 min).
    pub rotation_ms: u64,
    /// How long an ended (rotated-out) connection may wait for its last ACKs.
    pub drain_ms: u64,
    /// How long `finish` waits for the last ACKs before dropping what is left.
    pub finish_ms: u64,
}

impl Default for Timeouts {
    fn default() -> Self {
        Timeouts {
            connect_ms: 5_000,
            stale_ms: 20_000,
            ack_ms: 30_000,
            idle_ms: 25_000,
            rotation_ms: 40 * 60_000,
            drain_ms: 30_000,
            finish_ms: 120_000,
        }
    }
}

/// Reconnect backoff: `min(max, initial × 2^attempt)`, then a uniform draw from its upper half.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct BackoffConfig {
    /// First delay, ms.
    pub initial_ms: u64,
    /// Largest delay, ms.
    pub max_ms: u64,
    /// Seed of the jitter generator (the core draws no randomness; give it one).
    pub jitter_seed: u64,
}

impl Default for BackoffConfig {
    fn default() -> Self {
        BackoffConfig {
            initial_ms: 200,
            max_ms: 30_000,
            jitter_seed: 0x9E37_79B9_7F4A_7C15,
        }
    }
}

/// Everything a session needs.
#[derive(Debug, Clone)]
pub struct SessionConfig {
    /// `x-amzn-stream-name` (give this or `stream_arn`).
    pub stream_name: Option<String>,
    /// `x-amzn-stream-arn`.
    pub stream_arn: Option<String>,
    /// The MKV stream settings (SegmentUID, timecode scale and mode, fragmentation).
    pub stream: StreamConfig,
    /// The tracks.
    pub tracks: Vec<TrackInfo>,
    /// Wall-clock start of the stream (`x-amzn-producer-start-timestamp`), the same on every
    /// connection so RELATIVE timecodes keep their meaning across reconnects.
    pub producer_start: Timestamp,
    /// Which ACK releases a fragment.
    pub ack_level: AckLevel,
    /// Buffer bounds.
    pub buffer: BufferLimits,
    /// Timers.
    pub timeouts: Timeouts,
    /// Reconnect backoff.
    pub backoff: BackoffConfig,
}

impl SessionConfig {
    /// A configuration with the defaults for stream `name`.
    pub fn new(
        name: &str,
        stream: StreamConfig,
        tracks: Vec<TrackInfo>,
        producer_start: Timestamp,
    ) -> Self {
        SessionConfig {
            stream_name: Some(name.to_owned()),
            stream_arn: None,
            stream,
            tracks,
            producer_start,
            ack_level: AckLevel::Persisted,
            buffer: BufferLimits::default(),
            timeouts: Timeouts::default(),
            backoff: BackoffConfig::default(),
        }
    }
}

/// Why `push_frame` refused a frame (the frame got no id and is not the session's concern).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum PushError {
    /// The buffer is full: backpressure. Retry after ACKs free room.
    #[error(
        "buffer full: {need} more bytes would exceed {buffered}/{max_bytes} bytes or the duration bound"
    )]
    Full {
        /// Encoded size of the refused frame.
        need: usize,
        /// Bytes buffered.
        buffered: usize,
        /// The byte bound.
        max_bytes: usize,
    },
    /// The frame alone is larger than the buffer.
    #[error("frame of {0} encoded bytes is larger than the whole buffer")]
    FrameTooLarge(usize),
    /// The encoder rejected the frame (unknown track, empty, negative or backwards timestamp,
    /// block offset overflow…).
    #[error("frame rejected by the encoder: {0}")]
    Encode(#[from] WriterError),
    /// `finish` was called.
    #[error("the session is finishing or closed")]
    Closed,
}

/// How a connection ended, as the caller saw it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum Disconnect {
    /// The server ended the response normally.
    Closed,
    /// A network error, reset or I/O timeout.
    Error,
    /// The connection could not be opened.
    ConnectFailed,
}

/// Why the session asks for a connection to be closed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum CloseReason {
    /// An ERROR ACK arrived (the service closes the connection after one).
    ErrorAck,
    /// No BUFFERING or final ACK in time.
    Stale,
    /// No answer to the connection request in time.
    ConnectTimeout,
    /// Nothing to send for [`Timeouts::idle_ms`].
    Idle,
    /// A rewind needs a fresh connection.
    Rewind,
    /// A rotated-out connection finished (or gave up) waiting for its last ACKs.
    Drained,
    /// The service refused the request head (non-2xx status).
    HttpStatus,
    /// The session closed.
    SessionClosed,
}

/// Why frames were dropped.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum DropReason {
    /// A non-key frame with no fragment open (stream start, or after a failed fragment).
    AwaitingKeyFrame,
    /// Evicted unsent by [`FullPolicy::DropOldest`].
    BufferFull,
    /// The service failed the fragment with a non-retriable ERROR ACK.
    Failed(ErrorId),
    /// Frames of a failed fragment pushed after the failure, before the next key frame.
    AfterFailedFragment(ErrorId),
    /// `finish` timed out before the fragment was acknowledged.
    FinishTimeout,
}

/// A run of dropped frames.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct DropReport {
    /// First frame id.
    pub first: FrameId,
    /// Number of frames (ids `first .. first + frames`).
    pub frames: u64,
    /// The fragment's timecode, when the frames formed (part of) a fragment.
    pub fragment_timecode: Option<u64>,
    /// Why.
    pub reason: DropReason,
}

/// Problems the session reports (it keeps going after each of them).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum SessionError {
    /// The service answered the PutMedia request with a non-2xx status.
    #[error("connection {connection:?}: PutMedia answered HTTP {status}")]
    Http {
        /// The connection.
        connection: ConnectionId,
        /// The status.
        status: u16,
    },
    /// An ERROR ACK.
    #[error("connection {connection:?}: ERROR ACK {} ({}) for fragment timecode {fragment_timecode:?}; retriable: {retriable}", error_id.code(), error_id.name())]
    ErrorAck {
        /// The connection.
        connection: ConnectionId,
        /// The error.
        error_id: ErrorId,
        /// The fragment it names, if any.
        fragment_timecode: Option<u64>,
        /// Whether the fragment is replayed.
        retriable: bool,
    },
    /// A malformed ACK record (skipped).
    #[error("connection {connection:?}: {error}")]
    BadAck {
        /// The connection.
        connection: ConnectionId,
        /// The parse error.
        error: AckError,
    },
    /// The connection closed or failed.
    #[error("connection {connection:?} lost ({cause:?})")]
    Disconnected {
        /// The connection.
        connection: ConnectionId,
        /// How.
        cause: Disconnect,
    },
    /// The session closed a connection itself.
    #[error("connection {connection:?} closed: {reason:?}")]
    Closed {
        /// The connection.
        connection: ConnectionId,
        /// Why.
        reason: CloseReason,
    },
}

/// What the caller must do or may want to know.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum Event {
    /// Open a PutMedia connection: sign `request` and send its head, then report the status with
    /// `handle_connected`.
    Connect {
        /// Id of the new connection.
        connection: ConnectionId,
        /// The unsigned request parameters.
        request: PutMediaRequest,
    },
    /// End this connection's request body cleanly; keep reading its ACKs.
    EndBody {
        /// The connection.
        connection: ConnectionId,
    },
    /// Abort this connection now.
    CloseConnection {
        /// The connection.
        connection: ConnectionId,
        /// Why.
        reason: CloseReason,
    },
    /// An ACK matched to a buffered fragment.
    Ack {
        /// The connection it came on.
        connection: ConnectionId,
        /// BUFFERING, RECEIVED or PERSISTED.
        kind: AckEventType,
        /// The fragment's timecode.
        fragment_timecode: u64,
        /// The service's fragment number.
        fragment_number: Option<FragmentNumber>,
        /// First frame of the fragment.
        first_frame: FrameId,
        /// Frames in the fragment.
        frames: u64,
        /// Set on the releasing ACK: ms from the first byte sent to this ACK.
        latency_ms: Option<u64>,
    },
    /// Something went wrong; the session handles it (see [`SessionError`]).
    Error(SessionError),
    /// Unacknowledged fragments will be sent again from this one on the next connection.
    Rewind {
        /// Timecode of the first fragment to replay.
        from_timecode: u64,
        /// Fragments to replay.
        fragments: usize,
    },
    /// Frames were dropped.
    Dropped(DropReport),
    /// Backpressure on (`true`: `push_frame` refuses) or off.
    Backpressure(bool),
    /// The session ended (after `finish`); nothing more will happen.
    Closed,
}

/// A chunk of a request body.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Transmit {
    /// The connection whose body it belongs to.
    pub connection: ConnectionId,
    /// The bytes (a shared, zero-copy slice).
    pub data: Bytes,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum ConnState {
    Connecting,
    Streaming,
}

#[derive(Debug)]
struct Conn {
    id: ConnectionId,
    state: ConnState,
    parser: AckParser,
    opened_at: Millis,
    header_pending: bool,
    last_tx: Millis,
    /// Since when a sent fragment lacks its BUFFERING ACK.
    unbuffered_since: Option<Millis>,
    /// Since when a complete, fully sent fragment lacks its final ACK.
    ack_wait_since: Option<Millis>,
}

impl Conn {
    fn new(id: ConnectionId, now: Millis) -> Self {
        Conn {
            id,
            state: ConnState::Connecting,
            parser: AckParser::new(),
            opened_at: now,
            header_pending: false,
            last_tx: now,
            unbuffered_since: None,
            ack_wait_since: None,
        }
    }
}

#[derive(Debug)]
struct Draining {
    conn: Conn,
    deadline: Millis,
}

/// Where the next chunk comes from: fragment `seq`, chunk index `chunk`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Cursor {
    seq: u64,
    chunk: usize,
}

/// The producer session (see the [module docs](self)).
#[derive(Debug)]
pub struct PutMediaSession {
    config: SessionConfig,
    writer: StreamWriter,
    scratch: BytesMut,
    buffer: FragmentBuffer,
    cursor: Cursor,
    active: Option<Conn>,
    next: Option<Conn>,
    draining: Vec<Draining>,
    next_conn_id: u64,
    next_frame: u64,
    events: std::collections::VecDeque<Event>,
    metrics: SessionMetrics,
    backoff_attempt: u32,
    backoff_until: Option<Millis>,
    rotation_retry_at: Option<Millis>,
    rng: u64,
    backpressure: bool,
    /// A non-retriable error failed the open fragment: frames until the next key frame drop.
    failed_open: Option<ErrorId>,
    /// Closed for idleness: no reconnect until new data.
    idle_parked: bool,
    finish_deadline: Option<Millis>,
    closed: bool,
    last_now: Millis,
    /// The end-of-fragment Tags chain.
    end_marker: Bytes,
    /// Reused list of the ACKs parsed from one `handle_ack_bytes` call.
    ack_scratch: Vec<Result<AckEvent, AckError>>,
}

const CHUNK_RESERVE: usize = 4096;

impl PutMediaSession {
    /// A session for `config`; nothing happens until the first frame.
    pub fn new(config: SessionConfig, now: Millis) -> Result<Self, ConfigError> {
        let writer = StreamWriter::new(config.stream.clone(), config.tracks.clone())?;
        let rng = config.backoff.jitter_seed | 1;
        Ok(PutMediaSession {
            config,
            writer,
            scratch: BytesMut::with_capacity(CHUNK_RESERVE),
            buffer: FragmentBuffer::new(),
            cursor: Cursor { seq: 0, chunk: 0 },
            active: None,
            next: None,
            draining: Vec::new(),
            next_conn_id: 0,
            next_frame: 0,
            events: std::collections::VecDeque::new(),
            metrics: SessionMetrics::default(),
            backoff_attempt: 0,
            backoff_until: None,
            rotation_retry_at: None,
            rng,
            backpressure: false,
            failed_open: None,
            idle_parked: false,
            finish_deadline: None,
            closed: false,
            last_now: now,
            end_marker: {
                let mut v = Vec::with_capacity(END_OF_FRAGMENT_LEN);
                let _ = write_tag_chain(&mut v, tag::END_OF_FRAGMENT, "");
                Bytes::from(v)
            },
            ack_scratch: Vec::new(),
        })
    }

    /// The configuration.
    pub fn config(&self) -> &SessionConfig {
        &self.config
    }

    /// The encoder (for its header, fragment count, relative origin).
    pub fn writer(&self) -> &StreamWriter {
        &self.writer
    }

    /// Counters, with the buffer gauges up to date.
    pub fn metrics(&self) -> SessionMetrics {
        let mut m = self.metrics.clone();
        m.buffer_bytes = self.buffer.bytes() as u64;
        m.buffer_fragments = self.buffer.len() as u64;
        m.buffer_duration_ms = self.buffer.duration() / 1_000_000;
        m
    }

    /// Bytes buffered now.
    pub fn buffered_bytes(&self) -> usize {
        self.buffer.bytes()
    }

    /// Whether the session has closed (after `finish`).
    pub fn is_closed(&self) -> bool {
        self.closed
    }

    /// The connection currently carrying the stream, once connected.
    pub fn active_connection(&self) -> Option<ConnectionId> {
        self.active.as_ref().map(|c| c.id)
    }

    // ---------------------------------------------------------------- inputs

    /// Queues a fragment metadata item for the next fragment (see
    /// [`StreamWriter::put_metadata`]).
    pub fn put_metadata(
        &mut self,
        name: &str,
        value: &str,
        persistent: bool,
    ) -> Result<(), WriterError> {
        self.writer.put_metadata(name, value, persistent)
    }

    /// Encodes `frame` into the buffer. Returns its id; the frame is then either acknowledged as
    /// part of a fragment or reported by an [`Event::Dropped`]. Errors leave the session as it
    /// was (the frame has no id).
    pub fn push_frame(&mut self, now: Millis, frame: Frame) -> Result<FrameId, PushError> {
        self.last_now = self.last_now.max(now);
        if self.closed || self.finish_deadline.is_some() {
            return Err(PushError::Closed);
        }
        // One plan serves both the bound check and the encoding (nothing below touches the
        // writer before it is emitted).
        let Some(plan) = self.writer.plan_frame(&frame)? else {
            let id = self.take_frame_id();
            let reason = self.failed_open.map_or(
                DropReason::AwaitingKeyFrame,
                DropReason::AfterFailedFragment,
            );
            self.report_drop(id, 1, None, reason);
            return Ok(FrameId(id));
        };
        let header_len = plan.header_len();
        let need = header_len + frame.data.len();
        let limits = self.config.buffer;
        if need + END_OF_FRAGMENT_LEN > limits.max_bytes {
            return Err(PushError::FrameTooLarge(need));
        }
        while self.would_overflow(need, frame.timestamp_ns) {
            let victim = match limits.policy {
                FullPolicy::Refuse => None,
                FullPolicy::DropOldest => self.droppable(),
            };
            let Some(index) = victim else {
                if !self.backpressure {
                    self.backpressure = true;
                    self.metrics.backpressure_events += 1;
                    self.events.push_back(Event::Backpressure(true));
                }
                return Err(PushError::Full {
                    need,
                    buffered: self.buffer.bytes(),
                    max_bytes: limits.max_bytes,
                });
            };
            if let Some(f) = self.buffer.remove(index) {
                self.metrics.fragments_dropped += 1;
                self.report_drop(
                    f.first_frame,
                    f.frames,
                    Some(f.timecode),
                    DropReason::BufferFull,
                );
            }
        }
        // Headers of many frames share one scratch block: it is replaced (by a block of at
        // least CHUNK_RESERVE bytes, the size it was created with) only when the rest of the
        // current one is too short, not for every frame.
        if self.scratch.capacity() < header_len {
            self.scratch = BytesMut::with_capacity(header_len.max(CHUNK_RESERVE));
        }
        let written = self.writer.emit_planned(&plan, &mut self.scratch);
        let header = self.scratch.split().freeze();
        let id = self.take_frame_id();
        if let Some(start) = written.fragment {
            self.failed_open = None;
            self.close_open_fragment();
            self.buffer
                .open(start.cluster_timecode, frame.timestamp_ns, id);
            self.metrics.fragments_started += 1;
        }
        if !self
            .buffer
            .append_frame(header, frame.data, frame.timestamp_ns)
        {
            self.report_drop(id, 1, None, DropReason::AwaitingKeyFrame);
            return Ok(FrameId(id));
        }
        self.metrics.bytes_pushed += need as u64;
        self.metrics.buffer_bytes_peak = self
            .metrics
            .buffer_bytes_peak
            .max(self.buffer.bytes() as u64);
        self.idle_parked = false;
        self.drive(now);
        Ok(FrameId(id))
    }

    /// Ends the stream: closes the open fragment with the end-of-stream tags, sends what is
    /// left, waits for the last ACKs (at most [`Timeouts::finish_ms`]), then ends the body and
    /// emits [`Event::Closed`].
    pub fn finish(&mut self, now: Millis) {
        self.last_now = self.last_now.max(now);
        if self.closed || self.finish_deadline.is_some() {
            return;
        }
        self.finish_deadline = Some(now.add(self.config.timeouts.finish_ms));
        if self.buffer.back().is_some_and(|b| !b.closed) {
            let mut tail = Vec::new();
            // Cannot fail on a Vec (it grows).
            let _ = self.writer.finish(&mut tail);
            self.buffer.close_with(Bytes::from(tail));
            self.remove_if_released_back();
        } else {
            let mut discard = Vec::new();
            let _ = self.writer.finish(&mut discard);
        }
        self.idle_parked = false;
        self.drive(now);
    }

    /// The connection `connection` answered its request head with `status`.
    pub fn handle_connected(&mut self, now: Millis, connection: ConnectionId, status: u16) {
        self.last_now = self.last_now.max(now);
        let ok = (200..300).contains(&status);
        let is_active = self.active.as_ref().is_some_and(|c| c.id == connection);
        let is_next = self.next.as_ref().is_some_and(|c| c.id == connection);
        if !is_active && !is_next {
            return;
        }
        let slot = if is_active {
            &mut self.active
        } else {
            &mut self.next
        };
        let Some(conn) = slot.as_mut().filter(|c| c.state == ConnState::Connecting) else {
            return;
        };
        if ok {
            conn.state = ConnState::Streaming;
            conn.header_pending = true;
            conn.last_tx = now;
        } else {
            self.events
                .push_back(Event::Error(SessionError::Http { connection, status }));
            self.events.push_back(Event::CloseConnection {
                connection,
                reason: CloseReason::HttpStatus,
            });
            self.lose(now, connection, true);
        }
        self.drive(now);
    }

    /// Response bytes (ACK lines, any split) from `connection`. Bytes of a connection the
    /// session has closed are ignored.
    pub fn handle_ack_bytes(&mut self, now: Millis, connection: ConnectionId, bytes: &[u8]) {
        self.last_now = self.last_now.max(now);
        // A reused list: no allocation per ACK push.
        let mut acks = std::mem::take(&mut self.ack_scratch);
        acks.clear();
        {
            let Some(conn) = self.conn_mut(connection) else {
                self.metrics.acks_ignored += 1;
                self.ack_scratch = acks;
                return;
            };
            conn.parser.push(bytes);
            while let Some(a) = conn.parser.poll_event() {
                acks.push(a);
            }
        }
        for ack in acks.drain(..) {
            if self.conn_mut(connection).is_none() {
                self.metrics.acks_ignored += 1;
                continue;
            }
            match ack {
                Err(error) => self
                    .events
                    .push_back(Event::Error(SessionError::BadAck { connection, error })),
                Ok(ack) => self.on_ack(now, connection, ack),
            }
        }
        // Keep a small list for reuse; give back what a burst of ACKs grew.
        if acks.capacity() <= 64 {
            self.ack_scratch = acks;
        }
        self.drive(now);
    }

    /// `connection` ended (or could not be opened). Unacknowledged fragments it carried are
    /// replayed on a new connection after a backoff.
    pub fn handle_disconnected(
        &mut self,
        now: Millis,
        connection: ConnectionId,
        cause: Disconnect,
    ) {
        self.last_now = self.last_now.max(now);
        if self.conn_mut(connection).is_none() {
            return;
        }
        let quiet = self
            .draining
            .iter()
            .any(|d| d.conn.id == connection && !self.carries_unacked(connection));
        if !quiet {
            self.events
                .push_back(Event::Error(SessionError::Disconnected {
                    connection,
                    cause,
                }));
        }
        self.lose(now, connection, true);
        self.drive(now);
    }

    /// Runs the timers due at `now`.
    pub fn handle_timeout(&mut self, now: Millis) {
        self.last_now = self.last_now.max(now);
        let t = self.config.timeouts;
        // Connect timeouts.
        for id in [
            self.active.as_ref().map(|c| (c.id, c.state, c.opened_at)),
            self.next.as_ref().map(|c| (c.id, c.state, c.opened_at)),
        ]
        .into_iter()
        .flatten()
        .filter(|&(_, s, at)| s == ConnState::Connecting && now >= at.add(t.connect_ms))
        .map(|(id, _, _)| id)
        .collect::<Vec<_>>()
        {
            self.close(now, id, CloseReason::ConnectTimeout, true);
        }
        // Stale and idle on the active connection.
        if let Some(c) = self
            .active
            .as_ref()
            .filter(|c| c.state == ConnState::Streaming)
        {
            let id = c.id;
            let stale = c.unbuffered_since.is_some_and(|s| now >= s.add(t.stale_ms))
                || c.ack_wait_since.is_some_and(|s| now >= s.add(t.ack_ms));
            if stale {
                self.metrics.stale_connections += 1;
                self.close(now, id, CloseReason::Stale, true);
            } else if self.idle_deadline().is_some_and(|d| now >= d) {
                self.close(now, id, CloseReason::Idle, false);
                self.idle_parked = true;
            }
        }
        // Drained connections.
        let expired: Vec<ConnectionId> = self
            .draining
            .iter()
            .filter(|d| now >= d.deadline)
            .map(|d| d.conn.id)
            .collect();
        for id in expired {
            self.close(now, id, CloseReason::Drained, false);
        }
        // Finish timeout: drop what is left.
        if self.finish_deadline.is_some_and(|d| now >= d) && !self.closed {
            while let Some(f) = self.buffer.remove(0) {
                self.metrics.fragments_dropped += 1;
                self.report_drop(
                    f.first_frame,
                    f.frames,
                    Some(f.timecode),
                    DropReason::FinishTimeout,
                );
            }
        }
        if self.backoff_until.is_some_and(|b| now >= b) {
            self.backoff_until = None;
        }
        self.drive(now);
    }

    // ---------------------------------------------------------------- outputs

    /// The next event, if any. Drain after every input.
    pub fn poll_event(&mut self) -> Option<Event> {
        self.events.pop_front()
    }

    /// The next chunk of a request body, if any. Drain after every input (see the module docs).
    pub fn poll_transmit(&mut self) -> Option<Transmit> {
        let now = self.last_now;
        self.maybe_rotate(now);
        let conn = self.active.as_mut()?;
        if conn.state != ConnState::Streaming {
            return None;
        }
        let connection = conn.id;
        if conn.header_pending {
            conn.header_pending = false;
            conn.last_tx = now;
            let data = self.writer.header().clone();
            self.metrics.bytes_sent += data.len() as u64;
            return Some(Transmit { connection, data });
        }
        loop {
            let index = self.buffer.index_from(self.cursor.seq);
            let total = self.buffer.len();
            let frag = self.buffer.get_mut(index)?;
            if frag.seq != self.cursor.seq {
                self.cursor = Cursor {
                    seq: frag.seq,
                    chunk: 0,
                };
            }
            if let Some(data) = frag.chunk_to_send(self.cursor.chunk) {
                let first = self.cursor.chunk == 0;
                if first {
                    frag.sent_on = Some(connection);
                    frag.first_sent_at = Some(now);
                    self.metrics.fragments_sent += 1;
                }
                if self.cursor.chunk < frag.chunks_ever_sent {
                    self.metrics.bytes_retransmitted += data.len() as u64;
                }
                self.cursor.chunk += 1;
                frag.chunks_ever_sent = frag.chunks_ever_sent.max(self.cursor.chunk);
                let complete = frag.closed && self.cursor.chunk == frag.chunks.len();
                let unbuffered = !frag.has(ACK_BUFFERING);
                self.metrics.bytes_sent += data.len() as u64;
                if let Some(c) = self.active.as_mut() {
                    c.last_tx = now;
                    if first && unbuffered && c.unbuffered_since.is_none() {
                        c.unbuffered_since = Some(now);
                    }
                    if complete && c.ack_wait_since.is_none() {
                        c.ack_wait_since = Some(now);
                    }
                }
                return Some(Transmit { connection, data });
            }
            if !frag.closed {
                return None;
            }
            // A complete fragment with nothing after it (its successors were acknowledged, so
            // this is a replay) would stay open on the service side: end it explicitly.
            let last = index + 1 >= total;
            let marker = last && !frag.ends_with_marker;
            let next_seq = frag.seq + 1;
            if let Some(c) = self.active.as_mut()
                && c.ack_wait_since.is_none()
            {
                c.ack_wait_since = Some(now);
            }
            self.cursor = Cursor {
                seq: next_seq,
                chunk: 0,
            };
            if marker {
                let data = self.end_marker.clone();
                self.metrics.bytes_sent += data.len() as u64;
                return Some(Transmit { connection, data });
            }
        }
    }

    /// The next deadline, if any timer is running. Pure: calling it changes nothing.
    pub fn poll_timeout(&self) -> Option<Millis> {
        if self.closed {
            return None;
        }
        let t = self.config.timeouts;
        let mut best: Option<Millis> = None;
        let mut consider = |m: Option<Millis>| {
            if let Some(m) = m {
                best = Some(best.map_or(m, |b| b.min(m)));
            }
        };
        for c in [self.active.as_ref(), self.next.as_ref()]
            .into_iter()
            .flatten()
        {
            if c.state == ConnState::Connecting {
                consider(Some(c.opened_at.add(t.connect_ms)));
            }
        }
        if let Some(c) = self
            .active
            .as_ref()
            .filter(|c| c.state == ConnState::Streaming)
        {
            consider(c.unbuffered_since.map(|s| s.add(t.stale_ms)));
            consider(c.ack_wait_since.map(|s| s.add(t.ack_ms)));
            consider(self.idle_deadline());
            if self.next.is_none() {
                consider(Some(self.rotation_deadline(c)));
            }
        }
        for d in &self.draining {
            consider(Some(d.deadline));
        }
        consider(self.finish_deadline);
        consider(self.backoff_until);
        best
    }

    // ---------------------------------------------------------------- internals

    fn take_frame_id(&mut self) -> u64 {
        let id = self.next_frame;
        self.next_frame += 1;
        self.metrics.frames_pushed += 1;
        id
    }

    fn report_drop(&mut self, first: u64, frames: u64, timecode: Option<u64>, reason: DropReason) {
        self.metrics.frames_dropped += frames;
        self.events.push_back(Event::Dropped(DropReport {
            first: FrameId(first),
            frames,
            fragment_timecode: timecode,
            reason,
        }));
    }

    fn would_overflow(&self, need: usize, pts_ns: i64) -> bool {
        let l = self.config.buffer;
        // Room is kept for the end-of-stream tags `finish` appends.
        self.buffer.bytes() + need + END_OF_FRAGMENT_LEN > l.max_bytes
            || self.buffer.duration_to(pts_ns) > l.max_duration_ms.saturating_mul(1_000_000)
    }

    /// The oldest complete fragment with no byte on the live connection.
    fn droppable(&self) -> Option<usize> {
        // Every rewind clears `sent_on`, so a set one always names a live or draining
        // connection.
        // Only fragments that never went out are dropped: one that did may have been stored.
        self.buffer
            .iter()
            .position(|f| f.closed && f.sent_on.is_none() && f.chunks_ever_sent == 0)
    }

    fn conn_mut(&mut self, id: ConnectionId) -> Option<&mut Conn> {
        if let Some(c) = self.active.as_mut().filter(|c| c.id == id) {
            return Some(c);
        }
        if let Some(c) = self.next.as_mut().filter(|c| c.id == id) {
            return Some(c);
        }
        self.draining
            .iter_mut()
            .find(|d| d.conn.id == id)
            .map(|d| &mut d.conn)
    }

    fn carries_unacked(&self, id: ConnectionId) -> bool {
        self.buffer.iter().any(|f| f.sent_on == Some(id))
    }

    fn release_flag(&self) -> u8 {
        match self.config.ack_level {
            AckLevel::Persisted => ACK_PERSISTED,
            AckLevel::Received => ACK_RECEIVED,
        }
    }

    fn close_open_fragment(&mut self) {
        self.buffer.close_with(Bytes::new());
        self.remove_if_released_back();
    }

    /// A fragment acknowledged while still open is released once it closes.
    fn remove_if_released_back(&mut self) {
        let flag = self.release_flag();
        let n = self.buffer.len();
        if n > 0
            && self
                .buffer
                .get(n - 1)
                .is_some_and(|f| f.closed && f.has(flag))
        {
            self.buffer.remove(n - 1);
        }
        self.update_backpressure();
    }

    fn update_backpressure(&mut self) {
        if !self.backpressure {
            return;
        }
        let l = self.config.buffer;
        let bytes_ok = self.buffer.bytes() <= l.max_bytes / 4 * 3;
        let dur_ok = self.buffer.duration() <= l.max_duration_ms.saturating_mul(750_000);
        if bytes_ok && dur_ok {
            self.backpressure = false;
            self.events.push_back(Event::Backpressure(false));
        }
    }

    fn on_ack(&mut self, now: Millis, connection: ConnectionId, ack: AckEvent) {
        let flag = match ack.event_type {
            AckEventType::Buffering => ACK_BUFFERING,
            AckEventType::Received => ACK_RECEIVED,
            AckEventType::Persisted => ACK_PERSISTED,
            AckEventType::Idle => {
                self.metrics.acks_idle += 1;
                return;
            }
            AckEventType::Error => {
                self.on_error_ack(now, connection, ack);
                return;
            }
        };
        let Some(tc) = ack.fragment_timecode else {
            self.metrics.acks_ignored += 1;
            return;
        };
        let Some(index) = self
            .buffer
            .iter()
            .position(|f| f.timecode == tc && f.sent_on == Some(connection) && !f.has(flag))
        else {
            self.metrics.acks_ignored += 1;
            return;
        };
        self.backoff_attempt = 0;
        let release = self.release_flag();
        let Some(frag) = self.buffer.get_mut(index) else {
            return;
        };
        frag.acks |= flag;
        // PERSISTED implies RECEIVED and BUFFERING.
        if flag == ACK_PERSISTED {
            frag.acks |= ACK_RECEIVED | ACK_BUFFERING;
        } else if flag == ACK_RECEIVED {
            frag.acks |= ACK_BUFFERING;
        }
        let released = frag.has(release);
        let latency = released.then(|| now.since(frag.first_sent_at.unwrap_or(now)));
        let (first, frames, closed) = (frag.first_frame, frag.frames, frag.closed);
        match flag {
            ACK_BUFFERING => self.metrics.acks_buffering += 1,
            ACK_RECEIVED => self.metrics.acks_received += 1,
            _ => self.metrics.acks_persisted += 1,
        }
        if let Some(l) = latency {
            self.metrics.fragments_acked += 1;
            self.metrics.ack_latency_sum_ms += l;
            self.metrics.ack_latency_max_ms = self.metrics.ack_latency_max_ms.max(l);
            self.metrics.ack_latency_last_ms = l;
        }
        self.events.push_back(Event::Ack {
            connection,
            kind: ack.event_type,
            fragment_timecode: tc,
            fragment_number: ack.fragment_number,
            first_frame: FrameId(first),
            frames,
            latency_ms: latency,
        });
        if released && closed {
            self.buffer.remove(index);
            self.update_backpressure();
        }
        // Refresh the connection's timers.
        let still_unbuffered = self
            .buffer
            .iter()
            .any(|f| f.sent_on == Some(connection) && !f.has(ACK_BUFFERING));
        let still_waiting = self
            .buffer
            .iter()
            .any(|f| f.sent_on == Some(connection) && f.closed && !f.has(release));
        if let Some(c) = self.conn_mut(connection) {
            c.unbuffered_since = still_unbuffered.then_some(now);
            c.ack_wait_since = still_waiting.then_some(now);
        }
        // A drained connection with nothing left to acknowledge is done.
        if self.draining.iter().any(|d| d.conn.id == connection)
            && !self.carries_unacked(connection)
        {
            self.close(now, connection, CloseReason::Drained, false);
        }
    }

    fn on_error_ack(&mut self, now: Millis, connection: ConnectionId, ack: AckEvent) {
        self.metrics.acks_error += 1;
        let error_id = ack.error_id.unwrap_or(ErrorId::from_code(0));
        let retriable = error_id.is_retriable();
        self.events.push_back(Event::Error(SessionError::ErrorAck {
            connection,
            error_id,
            fragment_timecode: ack.fragment_timecode,
            retriable,
        }));
        if !retriable {
            let index = match ack.fragment_timecode {
                Some(tc) => self
                    .buffer
                    .iter()
                    .position(|f| f.timecode == tc && f.sent_on == Some(connection)),
                None => self
                    .buffer
                    .iter()
                    .position(|f| f.sent_on == Some(connection) && !f.has(ACK_RECEIVED)),
            };
            if let Some(index) = index {
                let was_open = self.buffer.get(index).is_some_and(|f| !f.closed);
                if was_open {
                    let mut discard = Vec::new();
                    let _ = self.writer.finish(&mut discard);
                    self.failed_open = Some(error_id);
                }
                if let Some(f) = self.buffer.remove(index) {
                    self.metrics.fragments_failed += 1;
                    self.report_drop(
                        f.first_frame,
                        f.frames,
                        Some(f.timecode),
                        DropReason::Failed(error_id),
                    );
                }
                self.update_backpressure();
            }
        }
        // The service closes the connection after an ERROR ACK.
        self.close(now, connection, CloseReason::ErrorAck, retriable);
    }

    /// Closes `id` from the session's side, then handles its loss.
    fn close(&mut self, now: Millis, id: ConnectionId, reason: CloseReason, backoff: bool) {
        if reason != CloseReason::Drained {
            self.events.push_back(Event::Error(SessionError::Closed {
                connection: id,
                reason,
            }));
        }
        self.events.push_back(Event::CloseConnection {
            connection: id,
            reason,
        });
        self.lose(now, id, backoff);
    }

    /// Forgets connection `id` and rewinds when fragments it carried are unacknowledged.
    fn lose(&mut self, now: Millis, id: ConnectionId, backoff: bool) {
        let was_active = self.active.as_ref().is_some_and(|c| c.id == id);
        let was_next = self.next.as_ref().is_some_and(|c| c.id == id);
        let mut needs_rewind = self.carries_unacked(id);
        if was_active {
            self.active = None;
            // The successor has sent nothing but maybe the header; start over cleanly.
            if let Some(n) = self.next.take() {
                self.events.push_back(Event::CloseConnection {
                    connection: n.id,
                    reason: CloseReason::Rewind,
                });
            }
            needs_rewind = true;
        } else if was_next {
            self.next = None;
            self.rotation_retry_at = Some(now.add(self.backoff_delay()));
            return;
        } else {
            self.draining.retain(|d| d.conn.id != id);
            if needs_rewind {
                // Fragments after the unacknowledged ones went out on the active connection:
                // replaying them on it would break timecode order, so it starts over too.
                if let Some(a) = self.active.take() {
                    self.events.push_back(Event::CloseConnection {
                        connection: a.id,
                        reason: CloseReason::Rewind,
                    });
                }
                if let Some(n) = self.next.take() {
                    self.events.push_back(Event::CloseConnection {
                        connection: n.id,
                        reason: CloseReason::Rewind,
                    });
                }
            }
        }
        if needs_rewind {
            self.rewind();
            self.backoff_until = if backoff {
                Some(now.add(self.backoff_delay()))
            } else {
                None
            };
        }
    }

    fn rewind(&mut self) {
        let mut sent = 0usize;
        let mut from = None;
        for f in self.buffer.iter_mut() {
            if f.sent_on.is_some() || f.chunks_ever_sent > 0 {
                sent += 1;
                from.get_or_insert(f.timecode);
            }
            f.sent_on = None;
            f.first_sent_at = None;
            f.acks &= ACK_PERSISTED;
        }
        // Draining connections are closed too: everything replays from the oldest, and their
        // late ACKs must not match the replayed copies.
        for d in std::mem::take(&mut self.draining) {
            self.events.push_back(Event::CloseConnection {
                connection: d.conn.id,
                reason: CloseReason::Rewind,
            });
        }
        self.cursor = Cursor {
            seq: self.buffer.front().map_or(self.cursor.seq, |f| f.seq),
            chunk: 0,
        };
        if let Some(from_timecode) = from {
            self.metrics.rewinds += 1;
            self.events.push_back(Event::Rewind {
                from_timecode,
                fragments: sent,
            });
        }
    }

    fn backoff_delay(&mut self) -> u64 {
        let b = self.config.backoff;
        let shift = self.backoff_attempt.min(20);
        self.backoff_attempt = self.backoff_attempt.saturating_add(1);
        let full = b
            .initial_ms
            .saturating_mul(1u64 << shift)
            .min(b.max_ms)
            .max(1);
        // xorshift64*
        self.rng ^= self.rng >> 12;
        self.rng ^= self.rng << 25;
        self.rng ^= self.rng >> 27;
        let r = self.rng.wrapping_mul(0x2545_F491_4F6C_DD1D);
        full / 2 + r % (full - full / 2 + 1)
    }

    fn rotation_deadline(&self, c: &Conn) -> Millis {
        let due = c.opened_at.add(self.config.timeouts.rotation_ms);
        self.rotation_retry_at.map_or(due, |r| due.max(r))
    }

    fn idle_deadline(&self) -> Option<Millis> {
        let c = self.active.as_ref()?;
        if c.state != ConnState::Streaming
            || c.header_pending
            || self.has_unsent()
            || c.ack_wait_since.is_some()
            || c.unbuffered_since.is_some()
            || self.finish_deadline.is_some()
        {
            return None;
        }
        Some(c.last_tx.add(self.config.timeouts.idle_ms))
    }

    /// Whether any chunk waits to be sent on the active connection.
    fn has_unsent(&self) -> bool {
        let index = self.buffer.index_from(self.cursor.seq);
        let mut it = (index..self.buffer.len()).filter_map(|i| self.buffer.get(i));
        it.any(|f| {
            let start = if f.seq == self.cursor.seq {
                self.cursor.chunk
            } else {
                0
            };
            start < f.chunks.len()
        })
    }

    /// Opens the successor connection when the active one is due for rotation, and switches to
    /// it at a fragment boundary once it is up.
    fn maybe_rotate(&mut self, now: Millis) {
        let Some(active) = self.active.as_ref() else {
            return;
        };
        if active.state != ConnState::Streaming || active.header_pending {
            return;
        }
        let ready = self
            .next
            .as_ref()
            .is_some_and(|n| n.state == ConnState::Streaming);
        // Only searched for when a successor is ready (rare): the search is per chunk otherwise.
        let at_boundary = ready
            && (self.cursor.chunk == 0
                || self
                    .buffer
                    .position(self.cursor.seq)
                    .and_then(|i| self.buffer.get(i))
                    .is_some_and(|f| f.closed && self.cursor.chunk >= f.chunks.len()));
        if ready
            && at_boundary
            && self.has_unsent()
            && let (Some(old), Some(new)) = (self.active.take(), self.next.take())
        {
            {
                self.events.push_back(Event::EndBody { connection: old.id });
                self.metrics.rotations += 1;
                let carries = self.carries_unacked(old.id);
                if carries {
                    self.draining.push(Draining {
                        deadline: now.add(self.config.timeouts.drain_ms),
                        conn: old,
                    });
                } else {
                    self.events.push_back(Event::CloseConnection {
                        connection: old.id,
                        reason: CloseReason::Drained,
                    });
                }
                self.active = Some(new);
                self.rotation_retry_at = None;
            }
        }
    }

    /// Opens connections as needed and closes the session when finished.
    fn drive(&mut self, now: Millis) {
        if self.closed {
            return;
        }
        if self.finish_deadline.is_some() && self.buffer.is_empty() {
            let ids: Vec<ConnectionId> = self
                .active
                .iter()
                .chain(self.next.iter())
                .map(|c| c.id)
                .collect();
            for (i, id) in ids.into_iter().enumerate() {
                let streaming = i == 0
                    && self
                        .active
                        .as_ref()
                        .is_some_and(|c| c.state == ConnState::Streaming);
                self.events.push_back(if streaming {
                    Event::EndBody { connection: id }
                } else {
                    Event::CloseConnection {
                        connection: id,
                        reason: CloseReason::SessionClosed,
                    }
                });
            }
            for d in std::mem::take(&mut self.draining) {
                self.events.push_back(Event::CloseConnection {
                    connection: d.conn.id,
                    reason: CloseReason::SessionClosed,
                });
            }
            self.active = None;
            self.next = None;
            self.closed = true;
            self.events.push_back(Event::Closed);
            return;
        }
        if self.backoff_until.is_some_and(|b| now >= b) {
            self.backoff_until = None;
        }
        if self.active.is_none() && self.backoff_until.is_none() && !self.idle_parked {
            let rewound_unsent = self.has_unsent();
            if rewound_unsent {
                let conn = self.open_conn(now);
                self.active = Some(conn);
            }
        }
        if self.next.is_none()
            && let Some(c) = self
                .active
                .as_ref()
                .filter(|c| c.state == ConnState::Streaming)
            && now >= self.rotation_deadline(c)
        {
            let conn = self.open_conn(now);
            self.next = Some(conn);
        }
    }

    fn open_conn(&mut self, now: Millis) -> Conn {
        let id = ConnectionId(self.next_conn_id);
        self.next_conn_id += 1;
        self.metrics.connections += 1;
        let mode = match self.config.stream.timecode_mode {
            TimecodeMode::Absolute => FragmentTimecodeType::Absolute,
            TimecodeMode::Relative => FragmentTimecodeType::Relative,
        };
        let request = PutMediaRequest {
            stream_name: self.config.stream_name.clone(),
            stream_arn: self.config.stream_arn.clone(),
            fragment_timecode_type: mode,
            producer_start_timestamp: Some(self.config.producer_start),
            fragment_acknowledgment_required: Some(true),
        };
        self.events.push_back(Event::Connect {
            connection: id,
            request,
        });
        Conn::new(id, now)
    }
}
