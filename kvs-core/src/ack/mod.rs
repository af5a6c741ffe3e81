//! The PutMedia acknowledgement stream: an incremental parser and the writer the server uses.
//!
//! While a PutMedia upload runs, the service streams back one small JSON object per event, each
//! on its own line (producer reference §2.4):
//!
//! ```text
//! {"EventType":"BUFFERING","FragmentTimecode":1631530102146,"FragmentNumber":"91343852333181714687576861120838395174634006751"}
//! {"EventType":"ERROR","FragmentTimecode":1631530102146,"FragmentNumber":"913...","ErrorId":4004}
//! {"EventType":"IDLE"}
//! ```
//!
//! [`AckParser`] takes the response body in chunks of any size ([`AckParser::push`]) and yields
//! one [`AckEvent`] or [`AckError`] per record ([`AckParser::poll_event`]). Framing:
//!
//! - a record ends at a newline, or at the `}` that closes its outer object, so objects written
//!   back to back on one line are split too; blank lines, spaces and `\r` between records are
//!   skipped;
//! - a record longer than [`AckParserConfig::max_line_len`] (default
//!   [`DEFAULT_MAX_LINE_LEN`]) yields [`AckError::LineTooLong`], and the rest of that line is
//!   skipped without being buffered;
//! - a malformed record yields a typed error carrying its stream byte offset, and parsing goes on
//!   with the next record.
//!
//! Memory is bounded: the parser keeps at most one partial record (≤ `max_line_len` bytes) across
//! pushes, plus the results of the latest push until they are polled. Drain `poll_event` after
//! every `push`.
//!
//! Records may also use the documented `{"Acknowledgement":{...}}` wrapper. Unknown keys are
//! skipped, integers may be bare or quoted, and a repeated known key is an error (as in the official
//! producer's parser). The writer, [`AckEvent::encode`], produces the flat form with keys in the
//! order `EventType`, `FragmentTimecode`, `FragmentNumber`, `ErrorId`, and a `\n` terminator.

mod error_id;
mod json;

use std::collections::VecDeque;
use std::fmt;

use bytes::BufMut;

pub use error_id::{ERROR_TABLE, ErrorId, ErrorInfo};

use crate::fragment::FragmentNumber;

/// Default cap on one ACK record, in bytes (real ACKs are about 130 bytes).
pub const DEFAULT_MAX_LINE_LEN: usize = 4096;

/// The kind of an acknowledgement.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum AckEventType {
    /// The first byte of the fragment has arrived.
    Buffering,
    /// The whole fragment has arrived.
    Received,
    /// The fragment is durably stored (only sent when the stream's retention is above zero).
    Persisted,
    /// The service rejected the fragment or the upload; it closes the connection afterwards.
    Error,
    /// Keep-alive, sent periodically while no data arrives.
    Idle,
}

impl AckEventType {
    /// Every event type, in wire-name order of the reference.
    pub const ALL: [AckEventType; 5] = [
        AckEventType::Buffering,
        AckEventType::Received,
        AckEventType::Persisted,
        AckEventType::Error,
        AckEventType::Idle,
    ];

    /// The wire name (`"BUFFERING"`, ...).
    pub const fn as_str(self) -> &'static str {
        match self {
            AckEventType::Buffering => "BUFFERING",
            AckEventType::Received => "RECEIVED",
            AckEventType::Persisted => "PERSISTED",
            AckEventType::Error => "ERROR",
            AckEventType::Idle => "IDLE",
        }
    }

    /// The event type for an exact wire name, or `None`.
    pub fn from_wire(name: &[u8]) -> Option<Self> {
        Self::ALL
            .into_iter()
            .find(|t| t.as_str().as_bytes() == name)
    }
}

impl fmt::Display for AckEventType {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// One acknowledgement.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct AckEvent {
    /// What happened.
    pub event_type: AckEventType,
    /// The fragment's raw cluster Timecode (in timecode-scale units), as the producer wrote it.
    pub fragment_timecode: Option<u64>,
    /// The fragment number the service assigned.
    pub fragment_number: Option<FragmentNumber>,
    /// Why the service failed the upload; always present on a parsed `ERROR`.
    pub error_id: Option<ErrorId>,
}

impl AckEvent {
    /// A BUFFERING ack for the fragment with this cluster timecode and number.
    pub fn buffering(timecode: u64, number: FragmentNumber) -> Self {
        Self::fragment(AckEventType::Buffering, timecode, number)
    }

    /// A RECEIVED ack for the fragment with this cluster timecode and number.
    pub fn received(timecode: u64, number: FragmentNumber) -> Self {
        Self::fragment(AckEventType::Received, timecode, number)
    }

    /// A PERSISTED ack for the fragment with this cluster timecode and number.
    pub fn persisted(timecode: u64, number: FragmentNumber) -> Self {
        Self::fragment(AckEventType::Persisted, timecode, number)
    }

    /// An ERROR ack; the timecode and number are those of the failing fragment, when known.
    pub fn error(error_id: ErrorId, timecode: Option<u64>, number: Option<FragmentNumber>) -> Self {
        AckEvent {
            event_type: AckEventType::Error,
            fragment_timecode: timecode,
            fragment_number: number,
            error_id: Some(error_id),
        }
    }

    /// An IDLE keep-alive, with no fragment fields.
    pub fn idle() -> Self {
        AckEvent {
            event_type: AckEventType::Idle,
            fragment_timecode: None,
            fragment_number: None,
            error_id: None,
        }
    }

    fn fragment(event_type: AckEventType, timecode: u64, number: FragmentNumber) -> Self {
        AckEvent {
            event_type,
            fragment_timecode: Some(timecode),
            fragment_number: Some(number),
            error_id: None,
        }
    }

    /// Writes the record exactly as the service sends it, `\n` included: keys in the order
    /// `EventType`, `FragmentTimecode`, `FragmentNumber` (quoted), `ErrorId`, absent fields left out.
    pub fn encode(&self, out: &mut impl BufMut) {
        out.put_slice(b"{\"EventType\":\"");
        out.put_slice(self.event_type.as_str().as_bytes());
        out.put_u8(b'"');
        if let Some(tc) = self.fragment_timecode {
            out.put_slice(b",\"FragmentTimecode\":");
            put_decimal(out, tc);
        }
        if let Some(number) = &self.fragment_number {
            // A FragmentNumber holds only digits, so it needs no escaping.
            out.put_slice(b",\"FragmentNumber\":\"");
            out.put_slice(number.as_str().as_bytes());
            out.put_u8(b'"');
        }
        if let Some(id) = self.error_id {
            out.put_slice(b",\"ErrorId\":");
            put_decimal(out, u64::from(id.code()));
        }
        out.put_slice(b"}\n");
    }

    /// The encoded record as a vector (see [`AckEvent::encode`]).
    pub fn to_vec(&self) -> Vec<u8> {
        let mut out = Vec::with_capacity(160);
        self.encode(&mut out);
        out
    }
}

fn put_decimal(out: &mut impl BufMut, mut value: u64) {
    let mut digits = [0u8; 20];
    let mut start = digits.len();
    loop {
        start -= 1;
        if let Some(slot) = digits.get_mut(start) {
            *slot = b'0' + (value % 10) as u8;
        }
        value /= 10;
        if value == 0 || start == 0 {
            break;
        }
    }
    out.put_slice(digits.get(start..).unwrap_or_default());
}

/// A record of the ACK stream that could not be turned into an [`AckEvent`].
///
/// Every variant carries the stream byte offset (counted from the first byte pushed) of the record
/// or of the offending byte. The parser continues with the next record after any of them.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum AckError {
    /// The record starting at `offset` is longer than the configured cap; the rest of its line
    /// was skipped.
    #[error(
        "ACK record at byte {offset} is longer than {limit} bytes; skipped to the next newline"
    )]
    LineTooLong {
        /// Stream offset of the record's first byte.
        offset: u64,
        /// The configured cap.
        limit: usize,
    },
    /// The record is not valid JSON (or not an object).
    #[error("malformed ACK JSON at byte {offset}: {reason}")]
    Syntax {
        /// Stream offset of the offending byte.
        offset: u64,
        /// What was expected.
        reason: &'static str,
    },
    /// The object has no `EventType`.
    #[error("ACK at byte {offset} has no EventType")]
    MissingEventType {
        /// Stream offset of the record.
        offset: u64,
    },
    /// `EventType` is not one of BUFFERING, RECEIVED, PERSISTED, ERROR, IDLE.
    #[error("ACK value at byte {offset} is an unknown EventType {value:?}")]
    UnknownEventType {
        /// Stream offset of the value.
        offset: u64,
        /// The value (first 64 bytes, lossily decoded).
        value: String,
    },
    /// An `ERROR` ack without an `ErrorId`.
    #[error("ERROR ACK at byte {offset} has no ErrorId")]
    MissingErrorId {
        /// Stream offset of the record.
        offset: u64,
    },
    /// A known key appears twice.
    #[error("ACK value at byte {offset} repeats the key {key}")]
    DuplicateKey {
        /// Stream offset of the repeated value.
        offset: u64,
        /// The key.
        key: &'static str,
    },
    /// A known key has a value of the wrong type or range.
    #[error("ACK value at byte {offset}: {key} {reason}")]
    InvalidValue {
        /// Stream offset of the value.
        offset: u64,
        /// The key.
        key: &'static str,
        /// What is wrong.
        reason: &'static str,
    },
    /// [`AckParser::finish`] was called inside a record.
    #[error("ACK stream ended inside the record starting at byte {offset}")]
    Truncated {
        /// Stream offset of the record.
        offset: u64,
    },
}

impl AckError {
    /// The stream byte offset the error points at.
    pub fn offset(&self) -> u64 {
        match *self {
            AckError::LineTooLong { offset, .. }
            | AckError::Syntax { offset, .. }
            | AckError::MissingEventType { offset }
            | AckError::UnknownEventType { offset, .. }
            | AckError::MissingErrorId { offset }
            | AckError::DuplicateKey { offset, .. }
            | AckError::InvalidValue { offset, .. }
            | AckError::Truncated { offset } => offset,
        }
    }
}

/// Limits of an [`AckParser`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct AckParserConfig {
    /// Longest record accepted, in bytes (the terminating newline not counted).
    pub max_line_len: usize,
}

impl Default for AckParserConfig {
    fn default() -> Self {
        AckParserConfig {
            max_line_len: DEFAULT_MAX_LINE_LEN,
        }
    }
}

/// Parses one complete ACK record (an object with or without the trailing newline).
///
/// Offsets in errors count from the start of `record`. Use [`AckParser`] for a stream.
pub fn parse_ack(record: &[u8]) -> Result<AckEvent, AckError> {
    let trimmed = match record {
        [rest @ .., b'\n'] => rest,
        other => other,
    };
    json::parse_record(trimmed, 0)
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum State {
    /// Between records: whitespace is skipped.
    Between,
    /// Inside a record.
    Record {
        depth: u32,
        in_string: bool,
        escape: bool,
    },
    /// Skipping the rest of an overlong line.
    Skipping,
}

/// The incremental ACK stream parser (sans-IO: bytes in, events out).
///
/// ```
/// use kvs_core::ack::{AckEventType, AckParser};
/// let mut parser = AckParser::new();
/// parser.push(b"{\"EventType\":\"IDLE\"}\n{\"EventType\":\"BUFF");
/// assert_eq!(parser.poll_event().unwrap().unwrap().event_type, AckEventType::Idle);
/// assert!(parser.poll_event().is_none()); // waiting for the rest
/// parser.push(b"ERING\",\"FragmentTimecode\":0,\"FragmentNumber\":\"1\"}\n");
/// assert_eq!(parser.poll_event().unwrap().unwrap().event_type, AckEventType::Buffering);
/// ```
#[derive(Debug, Clone)]
pub struct AckParser {
    config: AckParserConfig,
    state: State,
    /// The part of the current record received in earlier pushes.
    partial: Vec<u8>,
    /// Stream offset of the current record's first byte.
    record_start: u64,
    /// Stream offset of the next byte to be pushed.
    offset: u64,
    queue: VecDeque<Result<AckEvent, AckError>>,
}

impl Default for AckParser {
    fn default() -> Self {
        Self::new()
    }
}

impl AckParser {
    /// A parser with the default limits.
    pub fn new() -> Self {
        Self::with_config(AckParserConfig::default())
    }

    /// A parser with the given limits.
    pub fn with_config(config: AckParserConfig) -> Self {
        AckParser {
            config,
            state: State::Between,
            partial: Vec::new(),
            record_start: 0,
            offset: 0,
            queue: VecDeque::new(),
        }
    }

    /// Total bytes pushed so far.
    pub fn bytes_pushed(&self) -> u64 {
        self.offset
    }

    /// Whether a record has started but not ended yet.
    pub fn in_record(&self) -> bool {
        matches!(self.state, State::Record { .. })
    }

    /// Feeds the next bytes of the response body (any split). Then drain [`AckParser::poll_event`].
    pub fn push(&mut self, data: &[u8]) {
        let mut i = 0;
        while i < data.len() {
            match self.state {
                State::Between => match data.get(i) {
                    Some(b' ' | b'\t' | b'\r' | b'\n') => i += 1,
                    _ => {
                        self.state = State::Record {
                            depth: 0,
                            in_string: false,
                            escape: false,
                        };
                        self.record_start = self.offset + i as u64;
                        self.partial.clear();
                    }
                },
                State::Skipping => match data
                    .get(i..)
                    .and_then(|d| d.iter().position(|&b| b == b'\n'))
                {
                    Some(nl) => {
                        i += nl + 1;
                        self.state = State::Between;
                    }
                    None => i = data.len(),
                },
                State::Record { .. } => i = self.scan_record(data, i),
            }
        }
        self.offset += data.len() as u64;
    }

    /// Scans the current record from `data[start..]`; returns where scanning stopped.
    fn scan_record(&mut self, data: &[u8], start: usize) -> usize {
        let State::Record {
            mut depth,
            mut in_string,
            mut escape,
        } = self.state
        else {
            return data.len();
        };
        // (end of the record's content, index after its terminator)
        let mut end: Option<(usize, usize)> = None;
        let mut i = start;
        // Jumps straight to the next byte that can change the state (a tight search loop rather
        // than a state machine step per byte).
        while let Some(rest) = data.get(i..).filter(|r| !r.is_empty()) {
            if in_string {
                if escape {
                    // The escaped byte, whatever it is, is consumed.
                    escape = false;
                    i += 1;
                    continue;
                }
                let Some(p) = rest.iter().position(|&b| matches!(b, b'\\' | b'"' | b'\n')) else {
                    break;
                };
                i += p;
                match data.get(i) {
                    Some(b'\\') => escape = true,
                    Some(b'"') => in_string = false,
                    _ => {
                        end = Some((i, i + 1));
                        break;
                    }
                }
            } else {
                let Some(p) = rest
                    .iter()
                    .position(|&b| matches!(b, b'"' | b'{' | b'[' | b'}' | b']' | b'\n'))
                else {
                    break;
                };
                i += p;
                match data.get(i) {
                    Some(b'"') => in_string = true,
                    Some(b'{' | b'[') => depth = depth.saturating_add(1),
                    Some(b'}' | b']') => {
                        if depth == 1 {
                            end = Some((i + 1, i + 1));
                            break;
                        }
                        depth = depth.saturating_sub(1);
                    }
                    _ => {
                        end = Some((i, i + 1));
                        break;
                    }
                }
            }
            i += 1;
        }
        let content_end = end.map_or(data.len(), |(content, _)| content);
        let segment = data.get(start..content_end).unwrap_or_default();
        let limit = self.config.max_line_len;
        if self.partial.len() + segment.len() > limit {
            self.queue.push_back(Err(AckError::LineTooLong {
                offset: self.record_start,
                limit,
            }));
            self.partial.clear();
            return match end {
                // The line ended at a newline: nothing left to skip.
                Some((content, next)) if next > content => {
                    self.state = State::Between;
                    next
                }
                // Ended at '}' or not yet ended: skip the rest of the line.
                Some((_, next)) => {
                    self.state = State::Skipping;
                    next
                }
                None => {
                    self.state = State::Skipping;
                    data.len()
                }
            };
        }
        match end {
            Some((_, next)) => {
                let result = if self.partial.is_empty() {
                    json::parse_record(segment, self.record_start)
                } else {
                    self.partial.extend_from_slice(segment);
                    json::parse_record(&self.partial, self.record_start)
                };
                self.partial.clear();
                self.queue.push_back(result);
                self.state = State::Between;
                next
            }
            None => {
                self.partial.extend_from_slice(segment);
                self.state = State::Record {
                    depth,
                    in_string,
                    escape,
                };
                data.len()
            }
        }
    }

    /// The next parsed acknowledgement or record error, in stream order; `None` when all pushed
    /// bytes have been consumed.
    pub fn poll_event(&mut self) -> Option<Result<AckEvent, AckError>> {
        self.queue.pop_front()
    }

    /// Marks the end of the stream: a record left unfinished becomes [`AckError::Truncated`].
    pub fn finish(&mut self) {
        if let State::Record { .. } = self.state {
            self.queue.push_back(Err(AckError::Truncated {
                offset: self.record_start,
            }));
        }
        self.partial.clear();
        self.state = State::Between;
    }
}
