//! The PutMedia session (`kvs_session_*`) and the standalone ACK parser (`kvs_ack_parser_*`).
//!
//! # The drain contract
//!
//! After every *mutation* (`kvs_session_push_frame`, `_put_metadata`, `_finish`,
//! `_handle_connected`, `_handle_ack_bytes`, `_handle_disconnected`, `_handle_timeout`) the
//! firmware runs this loop, and only then waits for I/O:
//!
//! 1. call `kvs_session_poll_event` until it returns `KVS_RESULT_WOULD_BLOCK`, acting on each
//!    event: `CONNECT` → build the request head with `kvs_session_connect_request`, sign it, open
//!    the connection, send the head and report the status with `kvs_session_handle_connected`
//!    (or `kvs_session_handle_disconnected` when it could not be opened); `END_BODY` → send the
//!    terminating chunk of that connection's body and keep reading its ACKs;
//!    `CLOSE_CONNECTION` → close it now; the others are reports;
//! 2. call `kvs_session_poll_transmit` until it returns `KVS_RESULT_WOULD_BLOCK`, sending every
//!    chunk, in order, on the connection it names (one HTTP chunk each is fine);
//! 3. if step 2 gave anything, go back to step 1;
//! 4. wait until `kvs_session_next_timeout_ms`, the next response bytes, a connection event or a
//!    new frame; when the deadline passes call `kvs_session_handle_timeout`.

use std::ffi::c_char;

use bytes::Bytes;
use kvs_core::ack::{AckEvent, AckEventType, AckParser};
use kvs_core::api::{PutMediaRequest, Timestamp};
use kvs_core::session::{
    AckLevel, CloseReason, ConnectionId, Disconnect, DropReason, Event, FullPolicy, Millis,
    PushError, PutMediaSession, SessionConfig, SessionError,
};

use crate::mkv::{
    frame_from, kvs_frame, kvs_stream_config, kvs_track_config, stream_config, track_list,
};
use crate::{
    Fail, Res, boundary, boundary_or, check_out, free_box, give_box, kvs_result, opt_str, try_mut,
    try_ref, try_slice, try_slice_mut, try_str, write_out,
};

/// Size of the inline fragment-number strings (the API allows 1 to 128 digits, plus the NUL).
pub const KVS_FRAGMENT_NUMBER_SIZE: usize = 129;

/// Which ACK releases a fragment from the session's buffer.
#[repr(u32)]
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum kvs_ack_level {
    /// PERSISTED (the default, 0).
    Persisted = 0,
    /// RECEIVED (streams with no retention).
    Received = 1,
}

/// PutMedia ACK types.
#[repr(u32)]
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum kvs_ack_type {
    /// The first byte of the fragment arrived.
    Buffering = 1,
    /// The whole fragment arrived.
    Received = 2,
    /// The fragment is durably stored.
    Persisted = 3,
    /// The service rejected the fragment or the upload.
    Error = 4,
    /// Keep-alive.
    Idle = 5,
}

fn ack_type(t: AckEventType) -> u32 {
    (match t {
        AckEventType::Buffering => kvs_ack_type::Buffering,
        AckEventType::Received => kvs_ack_type::Received,
        AckEventType::Persisted => kvs_ack_type::Persisted,
        AckEventType::Error => kvs_ack_type::Error,
        AckEventType::Idle => kvs_ack_type::Idle,
    }) as u32
}

/// How a connection ended, as the firmware saw it.
#[repr(u32)]
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum kvs_disconnect {
    /// The server ended the response normally.
    Closed = 0,
    /// A network error, reset or I/O timeout.
    Error = 1,
    /// The connection could not be opened.
    ConnectFailed = 2,
}

/// Kinds of session events.
#[repr(u32)]
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum kvs_session_event_kind {
    /// Open PutMedia connection `connection` (see `kvs_session_connect_request`).
    Connect = 1,
    /// End the body of `connection` (terminating chunk); keep reading its ACKs.
    EndBody = 2,
    /// Close `connection` now (`reason` is a `kvs_close_reason`).
    CloseConnection = 3,
    /// An ACK matched to a fragment: `ack_type`, `fragment_timecode`, `fragment_number`,
    /// `first_frame`, `frames`, `latency_ms`.
    Ack = 4,
    /// A problem the session handles itself: `error_kind`, `http_status`, `error_id`,
    /// `retriable`, `reason` (the text goes to the log callback).
    Error = 5,
    /// Unacknowledged fragments will be replayed from `fragment_timecode` (`frames` holds the
    /// number of fragments).
    Rewind = 6,
    /// Frames `first_frame .. first_frame + frames` were dropped (`reason` is a
    /// `kvs_drop_reason`, `error_id` set for failed fragments).
    Dropped = 7,
    /// Backpressure on (`backpressure` true: push_frame refuses) or off.
    Backpressure = 8,
    /// The session ended after `kvs_session_finish`; nothing more will happen.
    Closed = 9,
}

/// Why the session closes a connection (`reason` of CLOSE_CONNECTION and of errors).
#[repr(u32)]
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum kvs_close_reason {
    /// An ERROR ACK arrived.
    ErrorAck = 1,
    /// No ACK in time.
    Stale = 2,
    /// No answer to the connection request in time.
    ConnectTimeout = 3,
    /// Nothing to send for a while.
    Idle = 4,
    /// A rewind needs a fresh connection.
    Rewind = 5,
    /// A rotated-out connection finished.
    Drained = 6,
    /// The service refused the request head.
    HttpStatus = 7,
    /// The session closed.
    SessionClosed = 8,
    /// A reason this header does not know.
    Other = 99,
}

/// Why frames were dropped.
#[repr(u32)]
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum kvs_drop_reason {
    /// A non-key frame with no fragment open.
    AwaitingKeyFrame = 1,
    /// Evicted by the drop-oldest policy.
    BufferFull = 2,
    /// The service failed the fragment (`error_id`).
    Failed = 3,
    /// Frames of a failed fragment pushed after the failure.
    AfterFailedFragment = 4,
    /// `finish` timed out.
    FinishTimeout = 5,
    /// A reason this header does not know.
    Other = 99,
}

/// Kinds of session errors (`error_kind` of ERROR events).
#[repr(u32)]
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum kvs_session_error_kind {
    /// A non-2xx PutMedia status (`http_status`).
    Http = 1,
    /// An ERROR ACK (`error_id`, `retriable`, `fragment_timecode`).
    ErrorAck = 2,
    /// A malformed ACK record (skipped).
    BadAck = 3,
    /// The connection closed or failed.
    Disconnected = 4,
    /// The session closed a connection itself (`reason`).
    Closed = 5,
    /// An error this header does not know.
    Other = 99,
}

fn close_reason(r: CloseReason) -> u32 {
    (match r {
        CloseReason::ErrorAck => kvs_close_reason::ErrorAck,
        CloseReason::Stale => kvs_close_reason::Stale,
        CloseReason::ConnectTimeout => kvs_close_reason::ConnectTimeout,
        CloseReason::Idle => kvs_close_reason::Idle,
        CloseReason::Rewind => kvs_close_reason::Rewind,
        CloseReason::Drained => kvs_close_reason::Drained,
        CloseReason::HttpStatus => kvs_close_reason::HttpStatus,
        CloseReason::SessionClosed => kvs_close_reason::SessionClosed,
        _ => kvs_close_reason::Other,
    }) as u32
}

/// Settings of a PutMedia session. A zeroed struct plus a stream name (or ARN), a SegmentUID and
/// the producer start time is a valid configuration: 0 means "default" everywhere.
#[repr(C)]
#[derive(Debug, Clone, Copy)]
pub struct kvs_session_config {
    /// Stream name (or NULL and give `stream_arn`).
    pub stream_name: *const c_char,
    /// Stream ARN (or NULL).
    pub stream_arn: *const c_char,
    /// MKV settings.
    pub stream: kvs_stream_config,
    /// Wall-clock start of the stream in epoch ms (`x-amzn-producer-start-timestamp`), the same
    /// for every connection.
    pub producer_start_epoch_ms: u64,
    /// A [`kvs_ack_level`] value.
    pub ack_level: u32,
    /// Most encoded bytes buffered until their ACK (0: 64 MiB).
    pub max_buffer_bytes: usize,
    /// Most media time buffered in ms (0: 120 s).
    pub max_buffer_duration_ms: u64,
    /// When full: false refuses new frames (backpressure), true drops the oldest unsent fragment.
    pub drop_oldest_when_full: bool,
    /// Seed of the reconnect-backoff jitter (0: a fixed default).
    pub jitter_seed: u64,
    /// No ACK for this long makes a connection stale, in ms (0: 20 s).
    pub stale_timeout_ms: u64,
    /// Delay before the first reconnect, in ms (0: 200 ms).
    pub reconnect_initial_ms: u64,
}

/// One session event. Only the fields its kind names are meaningful.
#[repr(C)]
#[derive(Debug, Clone, Copy)]
pub struct kvs_session_event {
    /// A [`kvs_session_event_kind`] value.
    pub kind: u32,
    /// The connection it concerns (0 when none).
    pub connection: u64,
    /// A [`kvs_ack_type`] value (ACK events).
    pub ack_type: u32,
    /// Fragment timecode (ACK, error, rewind, dropped).
    pub fragment_timecode: u64,
    /// Whether `fragment_timecode` is set.
    pub has_fragment_timecode: bool,
    /// The service's fragment number, NUL-terminated (empty when none).
    pub fragment_number: [c_char; KVS_FRAGMENT_NUMBER_SIZE],
    /// First frame id of the fragment or dropped run.
    pub first_frame: u64,
    /// Frames in the fragment or dropped run (fragments for a rewind).
    pub frames: u64,
    /// ms from the first byte sent to the releasing ACK (0 when not set).
    pub latency_ms: u64,
    /// A [`kvs_session_error_kind`] value (ERROR events).
    pub error_kind: u32,
    /// HTTP status (HTTP errors).
    pub http_status: u16,
    /// The PutMedia ErrorId (ERROR ACKs, failed fragments).
    pub error_id: u32,
    /// Whether the failed fragment is replayed.
    pub retriable: bool,
    /// A [`kvs_close_reason`], [`kvs_drop_reason`] or [`kvs_disconnect`] value, by kind.
    pub reason: u32,
    /// Backpressure state (BACKPRESSURE events).
    pub backpressure: bool,
}

impl Default for kvs_session_event {
    fn default() -> Self {
        kvs_session_event {
            kind: 0,
            connection: 0,
            ack_type: 0,
            fragment_timecode: 0,
            has_fragment_timecode: false,
            fragment_number: [0; KVS_FRAGMENT_NUMBER_SIZE],
            first_frame: 0,
            frames: 0,
            latency_ms: 0,
            error_kind: 0,
            http_status: 0,
            error_id: 0,
            retriable: false,
            reason: 0,
            backpressure: false,
        }
    }
}

fn set_fragment_number(dst: &mut [c_char; KVS_FRAGMENT_NUMBER_SIZE], text: &str) {
    for (d, s) in dst
        .iter_mut()
        .zip(text.bytes().take(KVS_FRAGMENT_NUMBER_SIZE - 1))
    {
        *d = s as c_char;
    }
}

/// The PutMedia producer session (opaque): frames in, request bodies out, ACKs back, replay on
/// failure. See the drain contract in the header's introduction.
pub struct kvs_session {
    inner: PutMediaSession,
    /// The rest of a transmit chunk the caller's buffer could not take.
    pending: Option<(ConnectionId, Bytes)>,
    /// The request of the latest Connect event, per connection.
    connects: Vec<(u64, PutMediaRequest)>,
}

impl kvs_session {
    pub(crate) fn connect_request(&self, connection: u64) -> Option<&PutMediaRequest> {
        self.connects
            .iter()
            .find(|(c, _)| *c == connection)
            .map(|(_, r)| r)
    }
}

fn session_config(
    c: &kvs_session_config,
    tracks: Vec<kvs_core::mkv::TrackInfo>,
) -> Res<SessionConfig> {
    let stream = stream_config(&c.stream)?;
    let start = Timestamp::from_millis(c.producer_start_epoch_ms);
    let mut config = SessionConfig::new("", stream, tracks, start);
    // SAFETY: the exported function's caller guarantees the string pointers.
    config.stream_name = unsafe { opt_str(c.stream_name, "stream_name") }?.map(str::to_owned);
    // SAFETY: as above.
    config.stream_arn = unsafe { opt_str(c.stream_arn, "stream_arn") }?.map(str::to_owned);
    if config.stream_name.is_none() && config.stream_arn.is_none() {
        return Err(Fail::new(
            kvs_result::Config,
            "give stream_name or stream_arn",
        ));
    }
    config.ack_level = match c.ack_level {
        0 => AckLevel::Persisted,
        1 => AckLevel::Received,
        other => {
            return Err(Fail::new(
                kvs_result::InvalidParameter,
                format!("ack_level {other} is not a kvs_ack_level"),
            ));
        }
    };
    if c.max_buffer_bytes != 0 {
        config.buffer.max_bytes = c.max_buffer_bytes;
    }
    if c.max_buffer_duration_ms != 0 {
        config.buffer.max_duration_ms = c.max_buffer_duration_ms;
    }
    if c.drop_oldest_when_full {
        config.buffer.policy = FullPolicy::DropOldest;
    }
    if c.jitter_seed != 0 {
        config.backoff.jitter_seed = c.jitter_seed;
    }
    if c.stale_timeout_ms != 0 {
        config.timeouts.stale_ms = c.stale_timeout_ms;
    }
    if c.reconnect_initial_ms != 0 {
        config.backoff.initial_ms = c.reconnect_initial_ms;
        config.backoff.max_ms = config.backoff.max_ms.max(c.reconnect_initial_ms);
    }
    Ok(config)
}

/// Creates a session. Nothing happens until the first frame.
///
/// # Safety
/// `config` and `tracks[0..n_tracks]` are valid (with valid pointers inside); `session_out` is
/// writable. Free the session with [`kvs_session_free`].
#[unsafe(no_mangle)]
pub unsafe extern "C" fn kvs_session_new(
    config: *const kvs_session_config,
    tracks: *const kvs_track_config,
    n_tracks: usize,
    now_ms: u64,
    session_out: *mut *mut kvs_session,
) -> kvs_result {
    boundary(|| {
        check_out(session_out, "session_out")?;
        // SAFETY: per the contract above.
        let c = unsafe { try_ref(config, "config") }?;
        // SAFETY: per the contract above.
        let tracks = unsafe { track_list(tracks, n_tracks) }?;
        let config = session_config(c, tracks)?;
        let inner = PutMediaSession::new(config, Millis(now_ms))
            .map_err(|e| Fail::new(kvs_result::Config, e.to_string()))?;
        let session = kvs_session {
            inner,
            pending: None,
            connects: Vec::new(),
        };
        // SAFETY: checked non-NULL.
        unsafe { give_box(session, session_out) };
        Ok(())
    })
}

/// Frees a session (NULL is ignored).
///
/// # Safety
/// `session` is NULL or came from [`kvs_session_new`] and is not used again.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn kvs_session_free(session: *mut kvs_session) {
    // SAFETY: per the contract above.
    unsafe { free_box(session) }
}

/// Offers a frame (its payload is copied). On success `*frame_id_out` (may be NULL) gets its id.
/// `KVS_RESULT_FULL` is backpressure (retry after ACKs free room), `KVS_RESULT_WRITER` a frame
/// the encoder refuses, `KVS_RESULT_CLOSED` a finishing session.
///
/// # Safety
/// `session` and `frame` are valid; `frame_id_out` is NULL or writable.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn kvs_session_push_frame(
    session: *mut kvs_session,
    now_ms: u64,
    frame: *const kvs_frame,
    frame_id_out: *mut u64,
) -> kvs_result {
    boundary(|| {
        // SAFETY: per the contract above.
        let s = unsafe { try_mut(session, "session") }?;
        // SAFETY: per the contract above.
        let frame = unsafe { frame_from(frame) }?;
        let id = s.inner.push_frame(Millis(now_ms), frame).map_err(|e| {
            let code = match e {
                PushError::Full { .. } | PushError::FrameTooLarge(_) => kvs_result::Full,
                PushError::Closed => kvs_result::Closed,
                _ => kvs_result::Writer,
            };
            Fail::new(code, e.to_string())
        })?;
        if !frame_id_out.is_null() {
            // SAFETY: non-NULL and writable per the contract.
            unsafe { write_out(frame_id_out, id.0) };
        }
        Ok(())
    })
}

/// Queues a fragment metadata item, as `kvs_writer_put_metadata` does.
///
/// # Safety
/// `session` is valid; `name` and `value` are NUL-terminated strings.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn kvs_session_put_metadata(
    session: *mut kvs_session,
    name: *const c_char,
    value: *const c_char,
    persistent: bool,
) -> kvs_result {
    boundary(|| {
        // SAFETY: per the contract above.
        let s = unsafe { try_mut(session, "session") }?;
        // SAFETY: per the contract above.
        let name = unsafe { try_str(name, "name") }?;
        // SAFETY: per the contract above.
        let value = unsafe { try_str(value, "value") }?;
        s.inner
            .put_metadata(name, value, persistent)
            .map_err(|e| Fail::new(kvs_result::Writer, e.to_string()))
    })
}

/// Ends the stream: the open fragment is closed, everything buffered is sent and acknowledged
/// (or times out), then a CLOSED event comes.
///
/// # Safety
/// `session` is valid.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn kvs_session_finish(session: *mut kvs_session, now_ms: u64) -> kvs_result {
    boundary(|| {
        // SAFETY: per the contract above.
        let s = unsafe { try_mut(session, "session") }?;
        s.inner.finish(Millis(now_ms));
        Ok(())
    })
}

/// Reports the HTTP status of the PutMedia response head on `connection` (200 to stream).
///
/// # Safety
/// `session` is valid.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn kvs_session_handle_connected(
    session: *mut kvs_session,
    now_ms: u64,
    connection: u64,
    http_status: u16,
) -> kvs_result {
    boundary(|| {
        // SAFETY: per the contract above.
        let s = unsafe { try_mut(session, "session") }?;
        s.inner
            .handle_connected(Millis(now_ms), ConnectionId(connection), http_status);
        Ok(())
    })
}

/// Feeds response-body bytes (ACK lines, any split, de-chunked) received on `connection`.
///
/// # Safety
/// `session` is valid; `data` has `len` readable bytes.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn kvs_session_handle_ack_bytes(
    session: *mut kvs_session,
    now_ms: u64,
    connection: u64,
    data: *const u8,
    len: usize,
) -> kvs_result {
    boundary(|| {
        // SAFETY: per the contract above.
        let s = unsafe { try_mut(session, "session") }?;
        // SAFETY: per the contract above.
        let data = unsafe { try_slice(data, len, "data") }?;
        s.inner
            .handle_ack_bytes(Millis(now_ms), ConnectionId(connection), data);
        Ok(())
    })
}

/// Reports that `connection` ended (`cause` is a [`kvs_disconnect`] value).
///
/// # Safety
/// `session` is valid.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn kvs_session_handle_disconnected(
    session: *mut kvs_session,
    now_ms: u64,
    connection: u64,
    cause: u32,
) -> kvs_result {
    boundary(|| {
        // SAFETY: per the contract above.
        let s = unsafe { try_mut(session, "session") }?;
        let cause = match cause {
            0 => Disconnect::Closed,
            1 => Disconnect::Error,
            2 => Disconnect::ConnectFailed,
            other => {
                return Err(Fail::new(
                    kvs_result::InvalidParameter,
                    format!("cause {other} is not a kvs_disconnect"),
                ));
            }
        };
        if s.pending.as_ref().is_some_and(|(c, _)| c.0 == connection) {
            s.pending = None;
        }
        s.inner
            .handle_disconnected(Millis(now_ms), ConnectionId(connection), cause);
        Ok(())
    })
}

/// Runs the timers due at `now_ms`.
///
/// # Safety
/// `session` is valid.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn kvs_session_handle_timeout(
    session: *mut kvs_session,
    now_ms: u64,
) -> kvs_result {
    boundary(|| {
        // SAFETY: per the contract above.
        let s = unsafe { try_mut(session, "session") }?;
        s.inner.handle_timeout(Millis(now_ms));
        Ok(())
    })
}

/// The next deadline (monotonic ms) in `*deadline_out`, or `KVS_RESULT_WOULD_BLOCK` when no
/// timer is armed. Does not change the session.
///
/// # Safety
/// `session` is valid; `deadline_out` is writable.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn kvs_session_next_timeout_ms(
    session: *const kvs_session,
    deadline_out: *mut u64,
) -> kvs_result {
    boundary(|| {
        check_out(deadline_out, "deadline_out")?;
        // SAFETY: per the contract above.
        let s = unsafe { try_ref(session, "session") }?;
        let deadline = s.inner.poll_timeout().ok_or_else(Fail::would_block)?;
        // SAFETY: checked non-NULL.
        unsafe { write_out(deadline_out, deadline.0) };
        Ok(())
    })
}

/// Whether the session has closed (after `kvs_session_finish` and its CLOSED event). False for
/// a NULL session.
///
/// # Safety
/// `session` is NULL or valid.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn kvs_session_is_closed(session: *const kvs_session) -> bool {
    boundary_or(false, || {
        // SAFETY: per the contract above.
        unsafe { session.as_ref() }.is_some_and(|s| s.inner.is_closed())
    })
}

/// Bytes held by the session's buffer (0 for a NULL session).
///
/// # Safety
/// `session` is NULL or valid.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn kvs_session_buffered_bytes(session: *const kvs_session) -> usize {
    boundary_or(0, || {
        // SAFETY: per the contract above.
        unsafe { session.as_ref() }.map_or(0, |s| s.inner.buffered_bytes())
    })
}

/// The next event in `*event_out`, or `KVS_RESULT_WOULD_BLOCK` when there is none.
///
/// # Safety
/// `session` is valid; `event_out` is writable.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn kvs_session_poll_event(
    session: *mut kvs_session,
    event_out: *mut kvs_session_event,
) -> kvs_result {
    boundary(|| {
        check_out(event_out, "event_out")?;
        // SAFETY: per the contract above.
        let s = unsafe { try_mut(session, "session") }?;
        let event = s.inner.poll_event().ok_or_else(Fail::would_block)?;
        let mut ev = kvs_session_event::default();
        match event {
            Event::Connect {
                connection,
                request,
            } => {
                ev.kind = kvs_session_event_kind::Connect as u32;
                ev.connection = connection.0;
                s.connects.retain(|(c, _)| *c != connection.0);
                if s.connects.len() >= 8 {
                    s.connects.remove(0);
                }
                s.connects.push((connection.0, request));
            }
            Event::EndBody { connection } => {
                ev.kind = kvs_session_event_kind::EndBody as u32;
                ev.connection = connection.0;
            }
            Event::CloseConnection { connection, reason } => {
                ev.kind = kvs_session_event_kind::CloseConnection as u32;
                ev.connection = connection.0;
                ev.reason = close_reason(reason);
                if s.pending.as_ref().is_some_and(|(c, _)| *c == connection) {
                    s.pending = None;
                }
            }
            Event::Ack {
                connection,
                kind,
                fragment_timecode,
                fragment_number,
                first_frame,
                frames,
                latency_ms,
            } => {
                ev.kind = kvs_session_event_kind::Ack as u32;
                ev.connection = connection.0;
                ev.ack_type = ack_type(kind);
                ev.fragment_timecode = fragment_timecode;
                ev.has_fragment_timecode = true;
                if let Some(n) = fragment_number {
                    set_fragment_number(&mut ev.fragment_number, n.as_str());
                }
                ev.first_frame = first_frame.0;
                ev.frames = frames;
                ev.latency_ms = latency_ms.unwrap_or(0);
            }
            Event::Error(e) => {
                ev.kind = kvs_session_event_kind::Error as u32;
                crate::log(crate::kvs_log_level::Warn, &e.to_string());
                match e {
                    SessionError::Http { connection, status } => {
                        ev.error_kind = kvs_session_error_kind::Http as u32;
                        ev.connection = connection.0;
                        ev.http_status = status;
                    }
                    SessionError::ErrorAck {
                        connection,
                        error_id,
                        fragment_timecode,
                        retriable,
                    } => {
                        ev.error_kind = kvs_session_error_kind::ErrorAck as u32;
                        ev.connection = connection.0;
                        ev.error_id = error_id.code();
                        ev.retriable = retriable;
                        ev.fragment_timecode = fragment_timecode.unwrap_or(0);
                        ev.has_fragment_timecode = fragment_timecode.is_some();
                    }
                    SessionError::BadAck { connection, .. } => {
                        ev.error_kind = kvs_session_error_kind::BadAck as u32;
                        ev.connection = connection.0;
                    }
                    SessionError::Disconnected { connection, cause } => {
                        ev.error_kind = kvs_session_error_kind::Disconnected as u32;
                        ev.connection = connection.0;
                        ev.reason = match cause {
                            Disconnect::Closed => kvs_disconnect::Closed as u32,
                            Disconnect::ConnectFailed => kvs_disconnect::ConnectFailed as u32,
                            _ => kvs_disconnect::Error as u32,
                        };
                    }
                    SessionError::Closed { connection, reason } => {
                        ev.error_kind = kvs_session_error_kind::Closed as u32;
                        ev.connection = connection.0;
                        ev.reason = close_reason(reason);
                    }
                    _ => ev.error_kind = kvs_session_error_kind::Other as u32,
                }
            }
            Event::Rewind {
                from_timecode,
                fragments,
            } => {
                ev.kind = kvs_session_event_kind::Rewind as u32;
                ev.fragment_timecode = from_timecode;
                ev.has_fragment_timecode = true;
                ev.frames = fragments as u64;
            }
            Event::Dropped(d) => {
                ev.kind = kvs_session_event_kind::Dropped as u32;
                ev.first_frame = d.first.0;
                ev.frames = d.frames;
                ev.fragment_timecode = d.fragment_timecode.unwrap_or(0);
                ev.has_fragment_timecode = d.fragment_timecode.is_some();
                ev.reason = (match d.reason {
                    DropReason::AwaitingKeyFrame => kvs_drop_reason::AwaitingKeyFrame,
                    DropReason::BufferFull => kvs_drop_reason::BufferFull,
                    DropReason::Failed(id) => {
                        ev.error_id = id.code();
                        kvs_drop_reason::Failed
                    }
                    DropReason::AfterFailedFragment(id) => {
                        ev.error_id = id.code();
                        kvs_drop_reason::AfterFailedFragment
                    }
                    DropReason::FinishTimeout => kvs_drop_reason::FinishTimeout,
                    _ => kvs_drop_reason::Other,
                }) as u32;
            }
            Event::Backpressure(on) => {
                ev.kind = kvs_session_event_kind::Backpressure as u32;
                ev.backpressure = on;
            }
            Event::Closed => ev.kind = kvs_session_event_kind::Closed as u32,
            _ => return Err(Fail::would_block()),
        }
        // SAFETY: checked non-NULL.
        unsafe { write_out(event_out, ev) };
        Ok(())
    })
}

/// Copies the next bytes to send into `buf` (at most `len`), with the connection they belong
/// to, or `KVS_RESULT_WOULD_BLOCK` when there is nothing to send. A chunk larger than `len` is
/// handed out over several calls.
///
/// # Safety
/// `session` is valid; `buf` has `len` writable bytes; the outputs are writable.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn kvs_session_poll_transmit(
    session: *mut kvs_session,
    buf: *mut u8,
    len: usize,
    connection_out: *mut u64,
    out_n: *mut usize,
) -> kvs_result {
    boundary(|| {
        check_out(connection_out, "connection_out")?;
        check_out(out_n, "out_n")?;
        // SAFETY: per the contract above.
        let s = unsafe { try_mut(session, "session") }?;
        // SAFETY: per the contract above.
        let out = unsafe { try_slice_mut(buf, len, "buf") }?;
        if out.is_empty() {
            return Err(Fail::new(kvs_result::BufferTooSmall, "len is 0"));
        }
        let (connection, mut data) = match s.pending.take() {
            Some(p) => p,
            None => {
                let t = s.inner.poll_transmit().ok_or_else(Fail::would_block)?;
                (t.connection, t.data)
            }
        };
        let n = data.len().min(out.len());
        let chunk = data.split_to(n);
        if let Some(dst) = out.get_mut(..n) {
            dst.copy_from_slice(&chunk);
        }
        if !data.is_empty() {
            s.pending = Some((connection, data));
        }
        // SAFETY: checked non-NULL.
        unsafe {
            write_out(connection_out, connection.0);
            write_out(out_n, n);
        }
        Ok(())
    })
}

/// One parsed ACK.
#[repr(C)]
#[derive(Debug, Clone, Copy)]
pub struct kvs_ack {
    /// A [`kvs_ack_type`] value.
    pub ack_type: u32,
    /// The fragment's timecode, when present.
    pub fragment_timecode: u64,
    /// Whether `fragment_timecode` is set.
    pub has_fragment_timecode: bool,
    /// The fragment number, NUL-terminated (empty when absent).
    pub fragment_number: [c_char; KVS_FRAGMENT_NUMBER_SIZE],
    /// The ErrorId of an ERROR ACK (0 otherwise).
    pub error_id: u32,
    /// Whether the official producer retries after this ErrorId.
    pub retriable: bool,
}

fn ack_to_c(a: &AckEvent) -> kvs_ack {
    let mut out = kvs_ack {
        ack_type: ack_type(a.event_type),
        fragment_timecode: a.fragment_timecode.unwrap_or(0),
        has_fragment_timecode: a.fragment_timecode.is_some(),
        fragment_number: [0; KVS_FRAGMENT_NUMBER_SIZE],
        error_id: a.error_id.map_or(0, |e| e.code()),
        retriable: a.error_id.is_some_and(|e| e.is_retriable()),
    };
    if let Some(n) = &a.fragment_number {
        set_fragment_number(&mut out.fragment_number, n.as_str());
    }
    out
}

/// The incremental PutMedia ACK parser (opaque).
pub struct kvs_ack_parser {
    inner: AckParser,
}

/// Creates an ACK parser.
///
/// # Safety
/// `parser_out` is writable. Free the parser with [`kvs_ack_parser_free`].
#[unsafe(no_mangle)]
pub unsafe extern "C" fn kvs_ack_parser_new(parser_out: *mut *mut kvs_ack_parser) -> kvs_result {
    boundary(|| {
        check_out(parser_out, "parser_out")?;
        let parser = kvs_ack_parser {
            inner: AckParser::new(),
        };
        // SAFETY: checked non-NULL.
        unsafe { give_box(parser, parser_out) };
        Ok(())
    })
}

/// Frees an ACK parser (NULL is ignored).
///
/// # Safety
/// `parser` is NULL or came from [`kvs_ack_parser_new`] and is not used again.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn kvs_ack_parser_free(parser: *mut kvs_ack_parser) {
    // SAFETY: per the contract above.
    unsafe { free_box(parser) }
}

/// Pushes response-body bytes (any split). Drain [`kvs_ack_parser_poll`] after each push.
///
/// # Safety
/// `parser` is valid; `data` has `len` readable bytes.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn kvs_ack_parser_push(
    parser: *mut kvs_ack_parser,
    data: *const u8,
    len: usize,
) -> kvs_result {
    boundary(|| {
        // SAFETY: per the contract above.
        let p = unsafe { try_mut(parser, "parser") }?;
        // SAFETY: per the contract above.
        let data = unsafe { try_slice(data, len, "data") }?;
        p.inner.push(data);
        Ok(())
    })
}

/// The next ACK in `*ack_out`; `KVS_RESULT_WOULD_BLOCK` when none is complete;
/// `KVS_RESULT_ACK` for a malformed record (skipped; the message says what and at which byte;
/// keep polling).
///
/// # Safety
/// `parser` is valid; `ack_out` is writable.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn kvs_ack_parser_poll(
    parser: *mut kvs_ack_parser,
    ack_out: *mut kvs_ack,
) -> kvs_result {
    boundary(|| {
        check_out(ack_out, "ack_out")?;
        // SAFETY: per the contract above.
        let p = unsafe { try_mut(parser, "parser") }?;
        match p.inner.poll_event() {
            None => Err(Fail::would_block()),
            Some(Err(e)) => Err(Fail::new(kvs_result::Ack, e.to_string())),
            Some(Ok(a)) => {
                // SAFETY: checked non-NULL.
                unsafe { write_out(ack_out, ack_to_c(&a)) };
                Ok(())
            }
        }
    })
}
