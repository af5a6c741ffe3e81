//! The streaming MKV decoder: push bytes in chunks of any size, pull [`Event`]s out.
//!
//! [`MkvReader`] is sans-IO: [`MkvReader::push`] takes input as it arrives (a file read, an HTTP
//! body chunk), [`MkvReader::poll_event`] hands out what that input completed, and
//! [`MkvReader::finish`] says the input is over. The same bytes split at any positions give the
//! same events.
//!
//! What it reads: concatenated EBML documents (GetMedia returns one per fragment), unknown-size
//! Segments and Clusters (closed by the next element that cannot be their child, RFC 8794 §6.2, or
//! by the next EBML header), level-1 Tags before and after Clusters, SimpleBlock and BlockGroup,
//! Xiph, EBML and fixed-size lacing, CRC-32 (checked on the elements it holds whole) and Void.
//! Unknown elements, SeekHead, Cues, Chapters and Attachments are skipped without being buffered.
//!
//! Frames are sent as soon as their block is complete; their payloads are zero-copy slices of the
//! pushed [`Bytes`] when a block lies inside one pushed chunk (a block spanning chunks is joined
//! once). Errors carry the absolute byte offset; after one the reader skips the bad element when
//! its extent is known, or scans for the next Cluster, EBML header, Segment or other level-1 ID,
//! and goes on.
//!
//! Laced frames: each gets the block's flags; when a per-frame duration is known (BlockDuration
//! split evenly, or the track's DefaultDuration) frame `i` is stamped `block time + i × duration`,
//! as ffmpeg does; otherwise they share the block timestamp.
//!
//! A fragment is a Cluster with the tags around it; [`Event::FragmentEnd`] carries everything
//! `kvs inspect --json` prints about it (see [`FragmentSummary`]). KVS leading tags
//! (fragment number, timestamps) and user tags written before a Cluster belong to it; after a
//! Cluster, the KVS trailing tags (`MILLIS_BEHIND_NOW`, `CONTINUATION_TOKEN`, error tags) belong to
//! it while other tags wait for the next Cluster, as producers write them.

mod block;
mod input;
mod parse;
mod types;

pub use types::{
    DecodeError, EbmlHeader, Event, FragmentSummary, ReaderLimits, SegmentInfo, SimpleTag,
    TagsEvent, Warning,
};

use bytes::{Buf, Bytes};

use self::input::Input;
use self::parse::Out;
use crate::ebml::{self, Size, id};
use crate::fragment::{FragmentMetadata, tag};
use crate::mkv::{Frame, TrackInfo};

/// Decodes a whole input held in memory and returns every event (a convenience for tests, tools
/// and fuzzing: `fn(&[u8])`).
pub fn decode_all(data: &[u8]) -> Vec<Result<Event, DecodeError>> {
    let mut reader = MkvReader::new();
    let mut events = Vec::new();
    if let Err(e) = reader.push(Bytes::copy_from_slice(data)) {
        events.push(Err(e));
    }
    reader.finish();
    events.extend(reader.events());
    events
}

/// What kind of master an open element is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Kind {
    Segment,
    Cluster,
    Tracks,
    /// An unknown element of unknown size, read through as a master whose children are skipped.
    Other,
}

/// A master element being read.
#[derive(Debug, Clone, Copy)]
struct Open {
    kind: Kind,
    level: u8,
    offset: u64,
    /// Absolute end offset; `None` for unknown size.
    end: Option<u64>,
}

/// Tags seen since the last Cluster that belong to the next one.
#[derive(Debug, Default)]
struct Pending {
    metadata: FragmentMetadata,
    tags: Vec<(String, String)>,
    offset: Option<u64>,
    any_kvs: bool,
}

/// The fragment being read (or just read, waiting for its trailing tags).
#[derive(Debug)]
struct Fragment {
    summary: FragmentSummary,
    in_cluster: bool,
    started: bool,
}

/// IDs the reader looks for after an error: the EBML header, Segment, and the 4-byte level-1
/// IDs (Cluster first among them), whose 32 bits make false matches rare.
const SYNC_IDS: [u32; 10] = [
    id::CLUSTER,
    id::EBML,
    id::SEGMENT,
    id::INFO,
    id::TRACKS,
    id::TAGS,
    id::CUES,
    id::SEEK_HEAD,
    id::CHAPTERS,
    id::ATTACHMENTS,
];

/// Tag names that come after the Cluster they describe.
fn is_trailing_tag(name: &str) -> bool {
    matches!(
        name,
        tag::MILLIS_BEHIND_NOW
            | tag::CONTINUATION_TOKEN
            | tag::ERROR_CODE
            | tag::EXCEPTION_ERROR_CODE
            | tag::ERROR_ID
    )
}

/// The push decoder. See the [module documentation](self).
#[derive(Debug)]
pub struct MkvReader {
    limits: ReaderLimits,
    input: Input,
    /// Absolute offset of the first unconsumed byte.
    pos: u64,
    /// Bytes of a skipped element still to drop.
    skip: u64,
    /// Set while scanning for a sync point: where the skipped region began.
    resync: Option<u64>,
    /// Bytes the element being waited for needs in total, when known.
    need: Option<u64>,
    finished: bool,
    done: bool,
    stack: Vec<Open>,
    out: Out,
    timecode_scale: u64,
    tracks: Vec<TrackInfo>,
    max_size_length: u64,
    size_width_warned: bool,
    documents: u64,
    fragments: u64,
    pending: Pending,
    current: Option<Fragment>,
}

impl Default for MkvReader {
    fn default() -> Self {
        Self::new()
    }
}

/// What a request for a whole element gave.
enum Whole {
    Ready(Bytes),
    Wait,
    Handled,
}

impl MkvReader {
    /// A reader with the default [`ReaderLimits`].
    pub fn new() -> Self {
        Self::with_limits(ReaderLimits::default())
    }

    /// A reader with the given limits.
    pub fn with_limits(limits: ReaderLimits) -> Self {
        MkvReader {
            limits,
            input: Input::default(),
            pos: 0,
            skip: 0,
            resync: None,
            need: None,
            finished: false,
            done: false,
            stack: Vec::new(),
            out: Out::new(),
            timecode_scale: 1_000_000,
            tracks: Vec::new(),
            max_size_length: 8,
            size_width_warned: false,
            documents: 0,
            fragments: 0,
            pending: Pending::default(),
            current: None,
        }
    }

    /// Takes in the next bytes of the input (no copy). Drain [`poll_event`](Self::poll_event)
    /// after each push. Fails with [`DecodeError::BufferFull`] (and keeps nothing) when the
    /// unconsumed input would exceed [`ReaderLimits::max_buffered_bytes`]. Bytes pushed after
    /// [`finish`](Self::finish) are ignored.
    pub fn push(&mut self, data: impl Into<Bytes>) -> Result<(), DecodeError> {
        let data = data.into();
        if self.finished {
            return Ok(());
        }
        let held = self.input.len();
        if held.saturating_add(data.len()) > self.limits.max_buffered_bytes {
            return Err(DecodeError::BufferFull {
                buffered: held,
                pushed: data.len(),
                limit: self.limits.max_buffered_bytes,
            });
        }
        self.input.push(data);
        Ok(())
    }

    /// Takes in the next bytes of the input by copying them.
    pub fn push_slice(&mut self, data: &[u8]) -> Result<(), DecodeError> {
        self.push(Bytes::copy_from_slice(data))
    }

    /// Says the input is over: the remaining events follow, ending open fragments and segments,
    /// and a [`DecodeError::Truncated`] when the input stopped inside an element (the fragment it
    /// belonged to is then marked truncated).
    pub fn finish(&mut self) {
        self.finished = true;
    }

    /// The next event, or `None` when the input pushed so far holds no more.
    pub fn poll_event(&mut self) -> Option<Result<Event, DecodeError>> {
        loop {
            if let Some(event) = self.out.pop_front() {
                return Some(event);
            }
            if let Some(frame) = self.fast_frame() {
                return Some(Ok(Event::Frame(frame)));
            }
            if !self.step() {
                return None;
            }
        }
    }

    /// The common case on a short path: the next element is a whole SimpleBlock in the first
    /// pushed chunk, inside an open Cluster of a started fragment, with a one-byte track number,
    /// no lacing and no limit reached. Returns its frame, having done exactly what
    /// [`step`](Self::step) would do for it (which would emit that frame and nothing else);
    /// returns `None`, changing nothing, in every other case, which `step` then handles.
    #[inline]
    fn fast_frame(&mut self) -> Option<Frame> {
        if self.done || self.skip > 0 || self.resync.is_some() {
            return None;
        }
        let top = *self.stack.last()?;
        if top.kind != Kind::Cluster {
            return None;
        }
        let pos = self.pos;
        // `step` would first close a master that ends here.
        if self
            .stack
            .iter()
            .any(|o| o.end.is_some_and(|end| end <= pos))
        {
            return None;
        }
        let front = self.input.front();
        let (&[0xA3, s0], rest) = front.split_first_chunk::<2>()? else {
            return None;
        };
        // The size: a known-size vint no wider than the document allows (else `step` warns).
        let width = s0.leading_zeros() as usize + 1;
        if width > 8 || width as u64 > self.max_size_length {
            return None;
        }
        let value_mask = (1u64 << (7 * width as u32)) - 1;
        let size = match front.first_chunk::<10>() {
            // One load: the `width` bytes from `s0` on, the marker bit masked off.
            Some(&[_, a, b, c, d, e, f, g, h, _]) => {
                (u64::from_be_bytes([a, b, c, d, e, f, g, h]) >> (8 * (8 - width))) & value_mask
            }
            _ => {
                let size_rest = rest.get(..width - 1)?;
                size_rest
                    .iter()
                    .fold(u64::from(s0) & value_mask, |acc, &b| {
                        (acc << 8) | u64::from(b)
                    })
            }
        };
        if size == value_mask || size > self.limits.max_element_size {
            return None;
        }
        let hlen = 1 + width;
        let total = (hlen as u64).checked_add(size)?;
        let body = front.get(hlen..usize::try_from(total).ok()?)?;
        if top.end.is_some_and(|end| pos.saturating_add(total) > end) {
            return None;
        }
        // Start loading the next element's header now (it is usually a cache miss when frames
        // are large), so that the miss overlaps the work on this frame and the caller's.
        let next = usize::try_from(total).ok().and_then(|end| front.get(end));
        std::hint::black_box(next.copied());
        // The block header: one-byte track number, timecode, flags without lacing.
        let &[t, c0, c1, flags, ..] = body else {
            return None;
        };
        if t & 0x80 == 0 || flags & 0x06 != 0 {
            return None;
        }
        let track = u64::from(t & 0x7F);
        let keyframe = flags & 0x80 != 0;
        let limits = self.limits;
        let f = self.current.as_mut().filter(|f| f.started)?;
        let s = &mut f.summary;
        if s.frames + 1 > limits.max_frames_per_fragment {
            return None;
        }
        let entry = s.frames_per_track.iter_mut().find(|(n, _)| *n == track)?;
        // Committed: nothing below can fail.
        entry.1 += 1;
        s.frames += 1;
        if keyframe {
            s.keyframes += 1;
        }
        let ticks =
            i128::from(s.cluster_timecode.unwrap_or(0)) + i128::from(i16::from_be_bytes([c0, c1]));
        let timestamp_ns = scaled_ns(ticks, self.timecode_scale);
        let duration_ns = self
            .tracks
            .iter()
            .find(|t| t.number == track)
            .and_then(|t| t.default_duration_ns);
        self.need = None;
        let data = self.input.take_from_front(hlen + 4, size as usize - 4);
        self.pos += total;
        Some(Frame {
            track,
            timestamp_ns,
            duration_ns,
            keyframe,
            invisible: flags & 0x08 != 0,
            discardable: flags & 0x01 != 0,
            data,
        })
    }

    /// Iterates over [`poll_event`](Self::poll_event) until it returns `None`.
    pub fn events(&mut self) -> impl Iterator<Item = Result<Event, DecodeError>> + '_ {
        std::iter::from_fn(move || self.poll_event())
    }

    /// Absolute offset of the first byte not yet consumed.
    pub fn offset(&self) -> u64 {
        self.pos
    }

    /// Unconsumed bytes held.
    pub fn buffered(&self) -> usize {
        self.input.len()
    }

    /// The tracks of the current document.
    pub fn tracks(&self) -> &[TrackInfo] {
        &self.tracks
    }

    /// The TimestampScale in force (ns per tick).
    pub fn timecode_scale(&self) -> u64 {
        self.timecode_scale
    }

    /// The limits in force.
    pub fn limits(&self) -> &ReaderLimits {
        &self.limits
    }

    fn emit(&mut self, event: Event) {
        self.out.push_back(Ok(event));
    }

    fn error(&mut self, error: DecodeError) {
        self.out.push_back(Err(error));
    }

    fn warn(&mut self, warning: Warning) {
        self.out.push_back(Ok(Event::Warning(warning)));
    }

    /// Reports `error` for the element at `self.pos` and scans for the next sync point.
    fn fail_resync(&mut self, error: DecodeError) {
        self.error(error);
        self.resync = Some(self.pos);
        self.input.advance(1);
        self.pos += 1;
    }

    /// Makes one step of progress. `false` when it needs more input (or is done).
    // Kept out of `poll_event`, whose frame fast path then stays small.
    #[inline(never)]
    fn step(&mut self) -> bool {
        if self.done {
            return false;
        }
        if self.skip > 0 {
            let n = self.skip.min(self.input.len() as u64);
            if n == 0 {
                return self.end_of_input();
            }
            self.input.advance(n as usize);
            self.pos += n;
            self.skip -= n;
            return true;
        }
        if let Some(from) = self.resync {
            return match self.input.find_any(&SYNC_IDS) {
                Some(i) => {
                    self.input.advance(i);
                    self.pos += i as u64;
                    self.resync = None;
                    self.warn(Warning::Skipped {
                        offset: from,
                        bytes: self.pos - from,
                    });
                    // A Cluster found this way belongs to the Segment, if one is open.
                    while self.stack.last().is_some_and(|o| o.kind != Kind::Segment) {
                        self.close_top();
                    }
                    true
                }
                None => {
                    let drop = self.input.len().saturating_sub(3);
                    if drop > 0 {
                        self.input.advance(drop);
                        self.pos += drop as u64;
                        true
                    } else {
                        self.end_of_input()
                    }
                }
            };
        }
        let pos = self.pos;
        if self
            .stack
            .iter()
            .any(|o| o.end.is_some_and(|end| end <= pos))
        {
            self.close_top();
            return true;
        }
        let mut head = [0u8; 12];
        let n = self.input.peek(&mut head);
        let head = head.get(..n).unwrap_or_default();
        if head.is_empty() {
            return self.end_of_input();
        }
        let (eid, id_len) = match ebml::read_id(head) {
            Ok(Some(v)) => v,
            Ok(None) => return self.end_of_input(),
            Err(source) => {
                self.fail_resync(DecodeError::Vint {
                    offset: pos,
                    source,
                });
                return true;
            }
        };
        let (size, size_len) = match ebml::read_size(head.get(id_len..).unwrap_or_default()) {
            Ok(Some(v)) => v,
            Ok(None) => return self.end_of_input(),
            Err(source) => {
                self.fail_resync(DecodeError::Vint {
                    offset: pos,
                    source,
                });
                return true;
            }
        };
        self.element(eid, size, id_len + size_len, size_len)
    }

    /// Handles the element whose header starts at `self.pos`.
    fn element(&mut self, eid: u32, size: Size, hlen: usize, size_len: usize) -> bool {
        let offset = self.pos;
        let data_start = offset + hlen as u64;
        if size_len as u64 > self.max_size_length && !self.size_width_warned {
            self.size_width_warned = true;
            self.warn(Warning::SizeWiderThanDeclared {
                offset,
                width: size_len,
                max: self.max_size_length,
            });
        }
        if eid == id::EBML || eid == id::SEGMENT {
            while !self.stack.is_empty() {
                self.close_top();
            }
            if eid == id::EBML {
                self.document_end();
            }
        } else if let Some(level) = id::level(eid) {
            while self
                .stack
                .last()
                .is_some_and(|o| o.end.is_none() && level <= o.level)
            {
                self.close_top();
            }
        }
        if let (Some(parent), Size::Known(n)) = (self.stack.last(), size)
            && let Some(parent_end) = parent.end
        {
            let end = data_start.saturating_add(n);
            if end > parent_end {
                let parent_id = match parent.kind {
                    Kind::Segment => id::SEGMENT,
                    Kind::Cluster => id::CLUSTER,
                    Kind::Tracks => id::TRACKS,
                    Kind::Other => 0,
                };
                self.fail_resync(DecodeError::ChildOverflow {
                    offset,
                    id: eid,
                    end,
                    parent: parent_id,
                    parent_end,
                });
                return true;
            }
        }
        let parent = self.stack.last().map(|o| o.kind);
        match (eid, parent) {
            (id::EBML, _) => match self.whole(eid, size, hlen) {
                Whole::Ready(data) => {
                    self.documents += 1;
                    self.max_size_length = 8;
                    self.size_width_warned = false;
                    match parse::ebml_header(&data, offset, data_start, &mut self.out) {
                        Ok(h) => {
                            self.max_size_length = h.max_size_length.clamp(1, 8);
                            self.emit(Event::EbmlHeader(Box::new(h)));
                        }
                        Err(e) => self.error(e),
                    }
                    true
                }
                Whole::Wait => self.end_of_input(),
                Whole::Handled => true,
            },
            (id::SEGMENT, _) => {
                if self.push_master(Kind::Segment, 0, size, hlen) {
                    self.timecode_scale = 1_000_000;
                    self.emit(Event::SegmentStart {
                        offset,
                        size: size.known(),
                    });
                }
                true
            }
            (id::CLUSTER, _) => {
                if self.push_master(Kind::Cluster, 1, size, hlen) {
                    self.start_fragment(offset);
                }
                true
            }
            (id::TRACKS, _) => {
                if self.push_master(Kind::Tracks, 1, size, hlen) {
                    self.tracks.clear();
                }
                true
            }
            (id::INFO, _) => self.with_whole(eid, size, hlen, |r, data| {
                match parse::info(&data, offset, data_start, &mut r.out) {
                    Ok(info) => {
                        r.timecode_scale = info.timecode_scale;
                        if let Some(f) = r.current.as_mut().filter(|f| f.in_cluster) {
                            f.summary.timecode_scale = info.timecode_scale;
                        }
                        r.emit(Event::Info(Box::new(info)));
                    }
                    Err(e) => r.error(e),
                }
            }),
            (id::TAGS, _) => self.with_whole(eid, size, hlen, |r, data| {
                match parse::tags(&data, offset, data_start, &r.limits, &mut r.out) {
                    Ok(tags) => r.handle_tags(tags),
                    Err(e) => r.error(e),
                }
            }),
            (id::TRACK_ENTRY, Some(Kind::Tracks)) => self.with_whole(eid, size, hlen, |r, data| {
                match parse::track_entry(&data, offset, data_start, &r.limits, &mut r.out) {
                    Ok(track) => r.add_track(track, offset),
                    Err(e) => r.error(e),
                }
            }),
            (id::CLUSTER_TIMECODE, Some(Kind::Cluster)) => {
                self.with_whole(eid, size, hlen, |r, data| match ebml::read_uint(&data) {
                    Ok(tc) => r.set_cluster_timecode(tc),
                    Err(source) => r.error(DecodeError::Value {
                        offset,
                        id: eid,
                        source,
                    }),
                })
            }
            (id::SIMPLE_BLOCK, Some(Kind::Cluster)) => {
                self.with_whole(eid, size, hlen, |r, data| r.block(offset, data, None))
            }
            (id::BLOCK_GROUP, Some(Kind::Cluster)) => {
                self.with_whole(eid, size, hlen, |r, data| {
                    match parse::block_group(&data, offset, data_start, &mut r.out) {
                        Ok(g) => {
                            r.block(g.block_offset, g.block, Some((g.duration, g.has_reference)))
                        }
                        Err(e) => r.error(e),
                    }
                })
            }
            _ => {
                if eid == id::CRC32 && self.stack.is_empty() {
                    self.warn(Warning::CrcAtTopLevel { offset });
                }
                match size {
                    Size::Known(n) => {
                        self.skip = (hlen as u64).saturating_add(n);
                        true
                    }
                    Size::Unknown => {
                        if id::level(eid).is_some() || eid == id::VOID || eid == id::CRC32 {
                            // A known element of unknown size that is not a master we stream.
                            self.fail_resync(DecodeError::UnknownSizeNotAllowed {
                                offset,
                                id: eid,
                            });
                            return true;
                        }
                        let level = self.stack.last().map_or(1, |o| o.level.saturating_add(1));
                        self.push_master(Kind::Other, level, size, hlen);
                        true
                    }
                }
            }
        }
    }

    /// Enters a master element streamed child by child. `false` when it was refused.
    fn push_master(&mut self, kind: Kind, level: u8, size: Size, hlen: usize) -> bool {
        let offset = self.pos;
        if self.stack.len() >= self.limits.max_depth {
            let error = DecodeError::TooDeep {
                offset,
                limit: self.limits.max_depth,
            };
            match size {
                Size::Known(n) => {
                    self.error(error);
                    self.skip = (hlen as u64).saturating_add(n);
                }
                Size::Unknown => self.fail_resync(error),
            }
            return false;
        }
        let data_start = offset + hlen as u64;
        self.input.advance(hlen);
        self.pos = data_start;
        self.stack.push(Open {
            kind,
            level,
            offset,
            end: size.known().map(|n| data_start.saturating_add(n)),
        });
        true
    }

    /// Asks for the element at `self.pos` whole.
    fn whole(&mut self, eid: u32, size: Size, hlen: usize) -> Whole {
        let offset = self.pos;
        let Size::Known(n) = size else {
            self.fail_resync(DecodeError::UnknownSizeNotAllowed { offset, id: eid });
            return Whole::Handled;
        };
        if n > self.limits.max_element_size {
            self.error(DecodeError::ElementTooLarge {
                offset,
                id: eid,
                size: n,
                limit: self.limits.max_element_size,
            });
            self.skip = (hlen as u64).saturating_add(n);
            return Whole::Handled;
        }
        let total = hlen as u64 + n;
        if (self.input.len() as u64) < total {
            self.need = Some(total);
            return Whole::Wait;
        }
        self.need = None;
        self.input.advance(hlen);
        let data = self.input.take(n as usize);
        self.pos += total;
        Whole::Ready(data)
    }

    fn with_whole(
        &mut self,
        eid: u32,
        size: Size,
        hlen: usize,
        then: impl FnOnce(&mut Self, Bytes),
    ) -> bool {
        match self.whole(eid, size, hlen) {
            Whole::Ready(data) => {
                then(self, data);
                true
            }
            Whole::Wait => self.end_of_input(),
            Whole::Handled => true,
        }
    }

    /// Leaves the innermost open master.
    fn close_top(&mut self) {
        let Some(open) = self.stack.pop() else {
            return;
        };
        match open.kind {
            Kind::Cluster => {
                let end = open.end.map_or(self.pos, |e| e.min(self.pos));
                let mut start_event = None;
                if let Some(f) = self.current.as_mut().filter(|f| f.in_cluster) {
                    f.in_cluster = false;
                    f.summary.bytes = end.saturating_sub(open.offset);
                    if !f.started {
                        f.started = true;
                        start_event = Some(Event::ClusterStart {
                            offset: open.offset,
                            timecode: f.summary.cluster_timecode,
                        });
                    }
                }
                if let Some(e) = start_event {
                    self.emit(e);
                }
            }
            Kind::Segment => {
                self.document_end();
                self.emit(Event::SegmentEnd { offset: self.pos });
            }
            Kind::Tracks | Kind::Other => {}
        }
    }

    fn start_fragment(&mut self, offset: u64) {
        self.finish_fragment();
        let pending = std::mem::take(&mut self.pending);
        self.current = Some(Fragment {
            summary: FragmentSummary {
                index: self.fragments,
                document: self.documents.saturating_sub(1),
                offset,
                bytes: 0,
                has_cluster: true,
                cluster_timecode: None,
                timecode_scale: self.timecode_scale,
                metadata: pending.metadata,
                tags: pending.tags,
                frames: 0,
                keyframes: 0,
                frames_per_track: Vec::new(),
                truncated: false,
            },
            in_cluster: true,
            started: false,
        });
        self.fragments += 1;
    }

    fn finish_fragment(&mut self) {
        if let Some(mut f) = self.current.take() {
            f.summary.frames_per_track.sort_unstable();
            self.emit(Event::FragmentEnd(Box::new(f.summary)));
        }
    }

    /// The end of an EBML document (or Segment): ends its fragment and drops its pending tags.
    fn document_end(&mut self) {
        if self.current.is_some() {
            self.finish_fragment();
        } else if self.pending.any_kvs {
            let pending = std::mem::take(&mut self.pending);
            let summary = FragmentSummary {
                index: self.fragments,
                document: self.documents.saturating_sub(1),
                offset: pending.offset.unwrap_or(self.pos),
                bytes: 0,
                has_cluster: false,
                cluster_timecode: None,
                timecode_scale: self.timecode_scale,
                metadata: pending.metadata,
                tags: pending.tags,
                frames: 0,
                keyframes: 0,
                frames_per_track: Vec::new(),
                truncated: false,
            };
            self.fragments += 1;
            self.emit(Event::FragmentEnd(Box::new(summary)));
        }
        self.pending = Pending::default();
    }

    fn handle_tags(&mut self, event: TagsEvent) {
        let offset = event.offset;
        let mut over_limit = false;
        for t in &event.tags {
            if let Some(f) = self.current.as_mut().filter(|f| !f.in_cluster)
                && is_trailing_tag(&t.name)
            {
                f.summary.metadata.apply_tag(&t.name, &t.value);
                continue;
            }
            self.pending.offset.get_or_insert(offset);
            if self.pending.metadata.apply_tag(&t.name, &t.value) {
                self.pending.any_kvs = true;
            } else if !t.name.starts_with("AWS_KINESISVIDEO_") {
                if self.pending.tags.len() >= self.limits.max_tags {
                    over_limit = true;
                } else {
                    self.pending.tags.push((t.name.clone(), t.value.clone()));
                }
            }
        }
        self.emit(Event::Tags(Box::new(event)));
        if over_limit {
            self.error(DecodeError::Limit {
                offset,
                what: "number of user tags for one fragment",
                limit: self.limits.max_tags as u64,
            });
        }
        let complete = self.current.as_ref().is_some_and(|f| {
            !f.in_cluster && (f.summary.metadata.is_complete() || f.summary.metadata.is_error())
        });
        if complete {
            self.finish_fragment();
        }
    }

    fn add_track(&mut self, track: TrackInfo, offset: u64) {
        if let Some(slot) = self.tracks.iter_mut().find(|t| t.number == track.number) {
            *slot = track.clone();
        } else if self.tracks.len() >= self.limits.max_tracks {
            self.error(DecodeError::Limit {
                offset,
                what: "number of tracks",
                limit: self.limits.max_tracks as u64,
            });
            return;
        } else {
            self.tracks.push(track.clone());
        }
        self.emit(Event::Track(Box::new(track)));
    }

    fn set_cluster_timecode(&mut self, tc: u64) {
        let mut start_event = None;
        if let Some(f) = self.current.as_mut().filter(|f| f.in_cluster) {
            f.summary.cluster_timecode = Some(tc);
            if !f.started {
                f.started = true;
                start_event = Some(Event::ClusterStart {
                    offset: f.summary.offset,
                    timecode: Some(tc),
                });
            }
        }
        if let Some(e) = start_event {
            self.emit(e);
        }
    }

    /// Emits the frames of one Block or SimpleBlock. `group` is `(BlockDuration, has
    /// ReferenceBlock)` for a Block inside a BlockGroup.
    fn block(&mut self, offset: u64, mut data: Bytes, group: Option<(Option<u64>, bool)>) {
        let header = match block::parse_header(&data) {
            Ok(h) => h,
            Err(reason) => {
                self.error(DecodeError::InvalidBlock { offset, reason });
                return;
            }
        };
        let scale = self.timecode_scale;
        let Some(f) = self.current.as_mut() else {
            return;
        };
        let mut warn_missing = None;
        if !f.started {
            f.started = true;
            warn_missing = Some(f.summary.offset);
        }
        let cluster_tc = f.summary.cluster_timecode.unwrap_or(0);
        if let Some(at) = warn_missing {
            self.warn(Warning::MissingClusterTimecode { offset: at });
            self.emit(Event::ClusterStart {
                offset: at,
                timecode: None,
            });
        }
        let ticks = i128::from(cluster_tc) + i128::from(header.rel_timecode);
        let timestamp_ns = scaled_ns(ticks, scale);
        let (keyframe, discardable) = match group {
            None => (header.flags & 0x80 != 0, header.flags & 0x01 != 0),
            Some((_, has_reference)) => (!has_reference, false),
        };
        let invisible = header.flags & 0x08 != 0;
        let default_duration = self
            .tracks
            .iter()
            .find(|t| t.number == header.track)
            .and_then(|t| t.default_duration_ns);
        let block_duration_ns = group
            .and_then(|(d, _)| d)
            .map(|d| u64::try_from(u128::from(d) * u128::from(scale)).unwrap_or(u64::MAX));
        data.advance(header.len);
        let lacing = header.lacing();
        if lacing == block::Lacing::None {
            if !self.count_frames(offset, header.track, 1, keyframe) {
                return;
            }
            self.emit(Event::Frame(Frame {
                track: header.track,
                timestamp_ns,
                duration_ns: block_duration_ns.or(default_duration),
                keyframe,
                invisible,
                discardable,
                data,
            }));
            return;
        }
        let mut sizes = [0usize; block::MAX_LACED];
        let (count, lace_len) = match block::lace_sizes(&data, lacing, &mut sizes) {
            Ok(v) => v,
            Err(reason) => {
                self.error(DecodeError::InvalidBlock { offset, reason });
                return;
            }
        };
        if !self.count_frames(offset, header.track, count as u64, keyframe) {
            return;
        }
        let per_frame = match block_duration_ns {
            Some(total) => Some(total / count as u64),
            None => default_duration,
        };
        data.advance(lace_len);
        let step = i128::from(per_frame.unwrap_or(0));
        for (i, &size) in sizes.iter().take(count).enumerate() {
            let part = data.split_to(size.min(data.len()));
            self.emit(Event::Frame(Frame {
                track: header.track,
                timestamp_ns: clamp_i64(i128::from(timestamp_ns) + step * i as i128),
                duration_ns: per_frame,
                keyframe,
                invisible,
                discardable,
                data: part,
            }));
        }
    }

    /// Counts frames into the current fragment; `false` (with an error) when a limit is hit.
    fn count_frames(&mut self, offset: u64, track: u64, count: u64, keyframe: bool) -> bool {
        let limits = self.limits;
        let Some(f) = self.current.as_mut() else {
            return true;
        };
        let s = &mut f.summary;
        let error = if s.frames + count > limits.max_frames_per_fragment {
            Some(DecodeError::Limit {
                offset,
                what: "number of frames in one fragment",
                limit: limits.max_frames_per_fragment,
            })
        } else if let Some(entry) = s.frames_per_track.iter_mut().find(|(t, _)| *t == track) {
            entry.1 += count;
            None
        } else if s.frames_per_track.len() >= limits.max_tracks {
            Some(DecodeError::Limit {
                offset,
                what: "number of distinct track numbers in one fragment",
                limit: limits.max_tracks as u64,
            })
        } else {
            s.frames_per_track.push((track, count));
            None
        };
        if let Some(e) = error {
            self.error(e);
            return false;
        }
        s.frames += count;
        if keyframe {
            s.keyframes += count;
        }
        true
    }

    /// Called when no progress is possible without more input: at the end of input, reports a
    /// partial element and closes everything. Returns whether events were produced.
    fn end_of_input(&mut self) -> bool {
        if !self.finished || self.done {
            return false;
        }
        self.done = true;
        let held = self.input.len() as u64;
        let mut truncated = None;
        if let Some(from) = self.resync.take() {
            self.warn(Warning::Skipped {
                offset: from,
                bytes: self.pos + held - from,
            });
        } else if self.skip > 0 {
            truncated = Some(DecodeError::Truncated {
                offset: self.pos,
                buffered: 0,
                missing: self.skip,
            });
        } else if held > 0 {
            truncated = Some(DecodeError::Truncated {
                offset: self.pos,
                buffered: held,
                missing: self.need.map_or(0, |n| n.saturating_sub(held)),
            });
        } else if let Some(end) = self
            .stack
            .iter()
            .filter_map(|o| o.end)
            .find(|&e| e > self.pos)
        {
            truncated = Some(DecodeError::Truncated {
                offset: self.pos,
                buffered: 0,
                missing: end - self.pos,
            });
        }
        self.input.advance(self.input.len());
        if let Some(e) = truncated {
            self.error(e);
            if let Some(f) = self.current.as_mut().filter(|f| f.in_cluster) {
                f.summary.truncated = true;
            }
        }
        while !self.stack.is_empty() {
            self.close_top();
        }
        self.document_end();
        true
    }
}

fn clamp_i64(v: i128) -> i64 {
    i64::try_from(v).unwrap_or(if v < 0 { i64::MIN } else { i64::MAX })
}

/// `ticks × scale` in ns, saturated: both come from the input (a cluster timecode and a
/// TimestampScale may each be up to 2^64 − 1, whose product overflows even an i128).
fn scaled_ns(ticks: i128, scale: u64) -> i64 {
    clamp_i64(ticks.saturating_mul(i128::from(scale)))
}

#[cfg(test)]
mod scale_tests {
    use super::scaled_ns;

    #[test]
    fn hostile_timecodes_and_scales_saturate() {
        let max_ticks = i128::from(u64::MAX) + i128::from(i16::MAX);
        assert_eq!(scaled_ns(max_ticks, u64::MAX), i64::MAX);
        assert_eq!(scaled_ns(i128::from(i16::MIN), u64::MAX), i64::MIN);
        assert_eq!(scaled_ns(1_000, 1_000_000), 1_000_000_000);
        assert_eq!(scaled_ns(-5, 1_000_000), -5_000_000);
    }
}
