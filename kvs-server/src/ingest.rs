//! PutMedia: header validation, then a full-duplex exchange: the MKV body is decoded as it
//! arrives while ACK lines stream back (BUFFERING, RECEIVED, PERSISTED, IDLE, ERROR).

use std::collections::HashMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Instant;

use bytes::{Bytes, BytesMut};
use http_body_util::BodyExt;
use hyper::body::Incoming;
use kvs_core::ack::{AckEvent, ErrorId};
use kvs_core::api::{ApiError, FragmentTimecodeType, PutMediaRequest, StreamStatus};
use kvs_core::ebml::{Size, read_id, read_size};
use kvs_core::fragment::{FragmentNumber, tag};
use kvs_core::index::Fragment;
use kvs_core::mkv::getmedia::ProducerHeader;
use kvs_core::mkv::reader::{Event, MkvReader};
use tokio::sync::mpsc;

use crate::http_service::{AckBody, Body, Ctx, error_response, full, trim_buffer};
use crate::state::{NOT_ON_DISK, PendingFragment, PendingState, Stream, lock};
use crate::store::FragmentRecord;

type AckTx = mpsc::UnboundedSender<Bytes>;

/// Most bytes of the producer header (everything before the first cluster).
const MAX_HEADER_BYTES: u64 = 1024 * 1024;
/// Most bytes between two fragments (tags, Void) kept while no fragment is open.
const MAX_GAP_BYTES: u64 = 64 * 1024;
/// Bytes of the ingest budget a reading connection holds ahead for the next chunk of its body
/// (which costs twice its size: the ingest buffer's copy and the reader's). hyper's read buffer
/// is capped at half of it, so a chunk is always covered before it is read.
pub(crate) const READ_WINDOW: u64 = 64 * 1024;

/// Bytes of the ingest budget kept as the finisher's reserve (see [`crate::budget`]): what one
/// connection may need at most (a largest fragment in the ingest buffer and, partly, in the
/// reader's, the producer header or the gap before a fragment, and read windows). The budget
/// keeps at most half of itself as the reserve.
pub(crate) fn reserve_bytes(limits: &crate::Limits) -> u64 {
    limits
        .max_fragment_bytes
        .saturating_mul(2)
        .saturating_add(MAX_HEADER_BYTES.max(MAX_GAP_BYTES))
        .saturating_add(READ_WINDOW.saturating_mul(2))
}

/// Handles `POST /putMedia` (already authenticated).
pub(crate) async fn put_media(
    ctx: Arc<Ctx>,
    parts: http::request::Parts,
    body: Incoming,
    rid: String,
) -> http::Response<Body> {
    let req = match PutMediaRequest::from_headers(&parts.headers) {
        Ok(r) => r,
        Err(e) => return error_response(&e, &rid),
    };
    if req.fragment_timecode_type == FragmentTimecodeType::Relative
        && req.producer_start_timestamp.is_none()
    {
        return error_response(
            &ApiError::invalid_argument(
                "RELATIVE fragment timecodes need x-amzn-producer-start-timestamp.",
            ),
            &rid,
        );
    }
    let stream =
        match crate::control::find(&ctx, req.stream_name.as_deref(), req.stream_arn.as_deref()) {
            Ok(s) => s,
            Err(e) => return error_response(&e, &rid),
        };
    if stream.status() == StreamStatus::Creating {
        return error_response(&ApiError::stream_not_found(), &rid);
    }
    // The data key sealing what this connection stores: created at the stream's first PutMedia.
    // Without one (an unknown KmsKeyId) fragments still stream at retention 0, and fail with
    // ERROR 4506 (KMS key not found) when they would be stored.
    let key = match stream.data_key(&ctx.vault).await {
        Ok(k) => Ok(k),
        Err(crate::keys::KeyError::UnknownKey { .. }) => Err(ErrorId::KMS_KEY_NOT_FOUND),
        Err(_) => Err(ErrorId::FRAGMENT_ARCHIVAL_ERROR),
    };
    let conn_id = ctx.conn_ids.fetch_add(1, Ordering::SeqCst);
    // The newest connection wins: a rotating producer opens its successor while the current
    // connection still streams. The older one may finish its open fragment and wait for its
    // ACKs, but opens no new fragment. (Under --enforce-quotas a second connection is refused.)
    if let Err(e) = ctx.admit_put_media(&stream, conn_id) {
        return error_response(&e, &rid);
    }
    let (tx, rx) = mpsc::unbounded_channel();
    let queued = Arc::new(AtomicUsize::new(0));
    let drained = Arc::new(tokio::sync::Notify::new());
    let mut ingest = Ingest::new(ctx, stream, &req, conn_id, tx);
    ingest.key = key;
    ingest.queued_acks = queued.clone();
    ingest.acks_drained = drained.clone();
    tokio::spawn(ingest.run(body));
    let head = PutMediaRequest::response_head(&rid);
    let (mut parts, _) = full(head).into_parts();
    parts.headers.insert(
        http::header::CONTENT_TYPE,
        http::HeaderValue::from_static("application/json"),
    );
    let body = AckBody {
        rx,
        queued,
        drained,
    };
    http::Response::from_parts(parts, BodyExt::boxed_unsync(body))
}

/// Why ingest stopped with an ERROR ACK.
struct Fail(ErrorId);

struct Open {
    seq: u64,
    number: FragmentNumber,
    random: u32,
    timecode: u64,
    tc_ns: u128,
    producer_ms: u64,
    server_ms: u64,
    cluster_offset: u64,
    frames: HashMap<u64, u64>,
    last_ns: i64,
}

struct PersistedAck {
    result: std::io::Result<()>,
    timecode: u64,
    number: FragmentNumber,
}

struct Ingest {
    ctx: Arc<Ctx>,
    stream: Arc<Stream>,
    mode: FragmentTimecodeType,
    start_ms: u64,
    conn_id: u64,
    tx: AckTx,
    reader: MkvReader,
    buf: BytesMut,
    base: u64,
    frag_start: u64,
    header_id: Option<u64>,
    seen_ebml: bool,
    seen_segment: bool,
    tracks: Vec<u64>,
    open: Option<Open>,
    pending_tags: usize,
    last_tc_ns: Option<u128>,
    started: Instant,
    persist_tx: mpsc::UnboundedSender<PersistedAck>,
    persist_rx: mpsc::UnboundedReceiver<PersistedAck>,
    in_flight: usize,
    /// A newer connection took over the stream: no new fragment is opened here.
    superseded: bool,
    /// ACK lines sent and not yet taken by the response body.
    queued_acks: Arc<AtomicUsize>,
    /// Signalled when the response body takes an ACK line.
    acks_drained: Arc<tokio::sync::Notify>,
    /// The stream's data key, or the ERROR ACK of fragments that would be stored without one.
    key: Result<Arc<crate::seal::DataKey>, ErrorId>,
    /// This connection's share of the global ingest budget for what it buffers (see
    /// [`crate::budget`]); each complete fragment takes its bytes along until persisted.
    held: crate::budget::Reservation,
    /// The finisher token (see [`crate::budget`]): held from when this connection, the oldest
    /// waiter, got it until its current fragment is complete.
    finisher: Option<tokio::sync::OwnedSemaphorePermit>,
}

impl Ingest {
    fn new(
        ctx: Arc<Ctx>,
        stream: Arc<Stream>,
        req: &PutMediaRequest,
        conn_id: u64,
        tx: AckTx,
    ) -> Self {
        let (persist_tx, persist_rx) = mpsc::unbounded_channel();
        let held = ctx.ingest_budget.empty();
        Ingest {
            ctx,
            stream,
            mode: req.fragment_timecode_type,
            start_ms: req.producer_start_timestamp.map_or(0, |t| t.as_millis()),
            conn_id,
            tx,
            reader: MkvReader::new(),
            buf: BytesMut::new(),
            base: 0,
            frag_start: 0,
            header_id: None,
            seen_ebml: false,
            seen_segment: false,
            tracks: Vec::new(),
            open: None,
            pending_tags: 0,
            last_tc_ns: None,
            started: Instant::now(),
            persist_tx,
            persist_rx,
            in_flight: 0,
            superseded: false,
            queued_acks: Arc::new(AtomicUsize::new(0)),
            acks_drained: Arc::new(tokio::sync::Notify::new()),
            key: Err(ErrorId::KMS_KEY_NOT_FOUND),
            held,
            finisher: None,
        }
    }

    /// Bytes of the ingest budget the connection must hold before it goes on: what it buffers
    /// (the ingest buffer and the reader's), plus room for `next` (a received chunk, copied into
    /// the buffer and held by the reader) or, while it reads, a window for the next chunk.
    fn budget_need(&self, next: Option<&Bytes>, reading: bool) -> u64 {
        let buffered = (self.buf.len() as u64).saturating_add(self.reader.buffered() as u64);
        let room = match next {
            Some(d) => (d.len() as u64).saturating_mul(2),
            None if reading => READ_WINDOW,
            None => 0,
        };
        buffered.saturating_add(room)
    }

    fn send(&self, ack: AckEvent) {
        // Counted before it can be taken, so the count never wraps below zero.
        self.queued_acks.fetch_add(1, Ordering::SeqCst);
        if self.tx.send(Bytes::from(ack.to_vec())).is_err() {
            self.queued_acks.fetch_sub(1, Ordering::SeqCst);
        }
    }

    /// Whether the connection's queues are full: the request body is not read meanwhile.
    fn backlogged(&self) -> bool {
        self.in_flight >= self.limits().max_pending_fragments
            || self.queued_acks.load(Ordering::SeqCst) >= self.limits().max_queued_acks
    }

    fn limits(&self) -> &crate::Limits {
        &self.ctx.config.limits
    }

    async fn run(mut self, mut body: Incoming) {
        let idle_every = self.limits().idle_ack_interval;
        let idle_timeout = self.limits().idle_timeout;
        let mut last_data = Instant::now();
        let mut body_done = false;
        // One deadline for the whole connection: it fires even while data keeps flowing.
        let max_age = tokio::time::sleep_until(
            tokio::time::Instant::from_std(self.started) + self.limits().max_connection_duration,
        );
        tokio::pin!(max_age);
        let budget_max = self.ctx.ingest_budget.max();
        let reserve_max = self.ctx.ingest_budget.reserve();
        let wait_timeout = self.limits().ingest_wait_timeout;
        // A chunk received and not yet processed: it waits for its bytes of the budget.
        let mut next: Option<Bytes> = None;
        // Our place in line for budget bytes, while we wait (the body is not read meanwhile).
        let mut grant: Option<crate::budget::Grant> = None;
        // Our place in line for the finisher token, while we wait for bytes of the main pool.
        let mut token: Option<crate::budget::Token> = None;
        let mut blocked_since = tokio::time::Instant::now();
        // The pool's release count when `blocked_since` was last set.
        let mut releases = 0;
        loop {
            if body_done && self.in_flight == 0 {
                break;
            }
            if body_done {
                // Nothing more to finish: let the next waiter draw from the reserve.
                self.finisher = None;
            }
            // The global budget: hold what is buffered plus room for the next chunk first.
            let need = self.budget_need(next.as_ref(), !body_done);
            if need > budget_max {
                // Even the whole budget cannot hold this fragment: waiting would never end.
                self.fail(ErrorId::FRAGMENT_SIZE_REACHED);
                return;
            }
            let short = need.saturating_sub(self.held.bytes());
            if short == 0 {
                grant = None;
                token = None;
                self.held.shrink_to(need);
                if let Some(data) = next.take() {
                    last_data = Instant::now();
                    if let Err(Fail(id)) = self.on_data(data) {
                        self.fail(id);
                        return;
                    }
                    if self.superseded {
                        // Stop reading: what follows belongs to the successor.
                        body_done = true;
                    }
                    continue;
                }
            } else if grant.is_none() {
                if self.held.try_grow(short) {
                    continue;
                }
                let room = reserve_max.saturating_sub(self.held.reserve_bytes());
                if self.finisher.is_some() && room > 0 {
                    // The finisher: the reserve is ours (its bytes return as fragments persist).
                    grant = Some(self.held.acquire(short.min(room), true));
                } else {
                    grant = Some(self.held.acquire(short, false));
                    if self.finisher.is_none() {
                        // Whichever comes first: bytes of the pool, or our turn to finish.
                        token = Some(self.ctx.ingest_budget.finisher());
                    }
                }
                blocked_since = tokio::time::Instant::now();
                releases = self.ctx.ingest_budget.releases();
            }
            let wait = idle_every.min(idle_timeout);
            let backlogged = self.backlogged();
            if self.in_flight >= self.limits().max_pending_fragments || grant.is_some() {
                // Waiting for the disk or for memory is not idling (a producer that reads no
                // ACKs is).
                last_data = Instant::now();
            }
            let drained = self.acks_drained.clone();
            tokio::select! {
                _ = drained.notified(), if backlogged => {}
                permit = async {
                    match grant.as_mut() {
                        Some(g) => g.await,
                        None => std::future::pending().await,
                    }
                }, if grant.is_some() => {
                    grant = None;
                    // Not blocked any more: give up our place in line for the finisher token.
                    token = None;
                    match permit {
                        Ok(p) => self.held.absorb(p),
                        // The pool is never closed; fail safe if it were.
                        Err(_) => {
                            self.fail(ErrorId::ACK_INTERNAL_ERROR);
                            return;
                        }
                    }
                }
                t = async {
                    match token.as_mut() {
                        Some(t) => t.await,
                        None => std::future::pending().await,
                    }
                }, if token.is_some() => {
                    token = None;
                    match t {
                        Ok(p) => {
                            // Our turn to finish: ask the reserve instead of the pool.
                            self.finisher = Some(p);
                            grant = None;
                        }
                        Err(_) => {
                            self.fail(ErrorId::ACK_INTERNAL_ERROR);
                            return;
                        }
                    }
                }
                _ = tokio::time::sleep_until(blocked_since + wait_timeout), if grant.is_some() => {
                    let now = self.ctx.ingest_budget.releases();
                    if now != releases {
                        // Bytes were freed meanwhile (others are finishing): still in line.
                        releases = now;
                        blocked_since = tokio::time::Instant::now();
                        continue;
                    }
                    // Memory stayed exhausted: give up, retriably, and free what we hold.
                    self.fail(ErrorId::ACK_INTERNAL_ERROR);
                    return;
                }
                frame = body.frame(), if !body_done && !backlogged && grant.is_none() => {
                    match frame {
                        Some(Ok(f)) => {
                            if let Ok(data) = f.into_data() {
                                // Processed at the top of the loop once its bytes are held.
                                next = Some(data);
                            }
                        }
                        Some(Err(_)) => {
                            // The connection broke: the open fragment is incomplete and dropped.
                            self.abandon();
                            body_done = true;
                        }
                        None => {
                            body_done = true;
                            if let Err(Fail(id)) = self.on_end() {
                                self.fail(id);
                                return;
                            }
                        }
                    }
                }
                p = self.persist_rx.recv() => {
                    if let Some(p) = p {
                        self.in_flight = self.in_flight.saturating_sub(1);
                        match p.result {
                            Ok(()) => self.send(AckEvent::persisted(p.timecode, p.number)),
                            Err(_) => {
                                self.send(AckEvent::error(
                                    ErrorId::FRAGMENT_ARCHIVAL_ERROR,
                                    Some(p.timecode),
                                    Some(p.number),
                                ));
                                return;
                            }
                        }
                    }
                }
                _ = &mut max_age, if !body_done => {
                    self.fail(ErrorId::CONNECTION_DURATION_REACHED);
                    return;
                }
                _ = tokio::time::sleep(wait) => {
                    if body_done {
                        // Waiting only for PERSISTED of what was received.
                        if last_data.elapsed() > idle_timeout {
                            break;
                        }
                        continue;
                    }
                    if last_data.elapsed() >= idle_timeout {
                        break;
                    }
                    if last_data.elapsed() >= idle_every {
                        self.send(AckEvent::idle());
                    }
                }
            }
        }
    }

    fn fail(&mut self, id: ErrorId) {
        let (tc, number) = match &self.open {
            Some(o) => (Some(o.timecode), Some(o.number.clone())),
            None => (None, None),
        };
        self.abandon();
        self.send(AckEvent::error(id, tc, number));
    }

    /// Drops the open fragment (incomplete) and its reservation.
    fn abandon(&mut self) {
        self.finisher = None;
        if let Some(o) = self.open.take() {
            let mut d = lock(&self.stream.data);
            d.abandon(o.seq);
            drop(d);
            self.stream.notify(o.seq);
        }
    }

    fn on_data(&mut self, data: Bytes) -> Result<(), Fail> {
        if self.superseded {
            return Ok(());
        }
        self.buf.extend_from_slice(&data);
        // A producer stream starts with an EBML header, nothing else.
        if !self.seen_ebml && self.base == 0 {
            let n = self.buf.len().min(4);
            if self.buf.get(..n) != kvs_core::mkv::writer::EBML_HEADER.get(..n) {
                return Err(Fail(ErrorId::INVALID_MKV_DATA));
            }
        }
        if self.reader.push(data).is_err() {
            return Err(Fail(ErrorId::INVALID_MKV_DATA));
        }
        self.drain(false)?;
        let held = self.base + self.buf.len() as u64;
        match (&self.open, self.header_id) {
            (Some(o), _) if held - o.cluster_offset > self.limits().max_fragment_bytes => {
                return Err(Fail(ErrorId::FRAGMENT_SIZE_REACHED));
            }
            (Some(_), _) => {}
            // Everything before the first cluster is kept as the producer header.
            (None, None)
                if held > MAX_HEADER_BYTES
                    || crate::mkv_guard::header_overflows(&self.buf, MAX_HEADER_BYTES) =>
            {
                return Err(Fail(ErrorId::INVALID_MKV_DATA));
            }
            // Between fragments only small elements (tags) are expected.
            (None, Some(_)) if held.saturating_sub(self.frag_start) > MAX_GAP_BYTES => {
                return Err(Fail(ErrorId::INVALID_MKV_DATA));
            }
            _ => {}
        }
        Ok(())
    }

    fn on_end(&mut self) -> Result<(), Fail> {
        self.reader.finish();
        self.drain(true)
    }

    fn drain(&mut self, at_end: bool) -> Result<(), Fail> {
        while let Some(event) = self.reader.poll_event() {
            if self.superseded {
                break;
            }
            match event {
                Ok(e) => self.on_event(e, at_end)?,
                Err(_) if at_end => {
                    // The body ended inside an element: what is open is incomplete.
                    self.abandon();
                }
                Err(_) => return Err(Fail(ErrorId::INVALID_MKV_DATA)),
            }
        }
        Ok(())
    }

    fn on_event(&mut self, event: Event, at_end: bool) -> Result<(), Fail> {
        use ErrorId as E;
        match event {
            Event::EbmlHeader(_) => {
                if self.seen_ebml {
                    return Err(Fail(E::INVALID_MKV_DATA));
                }
                self.seen_ebml = true;
            }
            Event::SegmentStart { .. } => {
                if self.seen_segment {
                    return Err(Fail(E::INVALID_MKV_DATA));
                }
                self.seen_segment = true;
            }
            Event::Track(t) => {
                if self.header_id.is_some() {
                    return Err(Fail(E::INVALID_MKV_DATA));
                }
                if !self.tracks.contains(&t.number) {
                    self.tracks.push(t.number);
                }
                if self.tracks.len() > self.limits().max_tracks {
                    return Err(Fail(E::MORE_THAN_ALLOWED_TRACKS_FOUND));
                }
            }
            Event::Tags(t) => {
                let max = self.limits().max_fragment_metadata;
                let mut user = 0;
                for st in &t.tags {
                    if st.name.starts_with("AWS_KINESISVIDEO_") {
                        continue;
                    }
                    if st.name.starts_with(tag::RESERVED_PREFIX)
                        || st.name.len() > 128
                        || st.value.len() > 256
                    {
                        return Err(Fail(E::FRAGMENT_METADATA_LIMIT_REACHED));
                    }
                    user += 1;
                }
                if self.header_id.is_none() && !self.tracks.is_empty() {
                    self.set_header(t.offset)?;
                }
                if self.open.is_some() {
                    // Tags end the open fragment; their metadata belongs to the next one.
                    let end = self.element_end(t.offset);
                    self.close(end)?;
                }
                if self.header_id.is_some() {
                    self.pending_tags += user;
                    if self.pending_tags > max {
                        return Err(Fail(E::FRAGMENT_METADATA_LIMIT_REACHED));
                    }
                }
            }
            Event::ClusterStart { offset, timecode } => {
                if self.tracks.is_empty() {
                    return Err(Fail(E::INVALID_MKV_DATA));
                }
                if self.header_id.is_none() {
                    self.set_header(offset)?;
                }
                if self.open.is_some() {
                    self.close(offset)?;
                }
                if self.stream.producer.load(Ordering::SeqCst) != self.conn_id {
                    self.superseded = true;
                    return Ok(());
                }
                let timecode = timecode.ok_or(Fail(E::INVALID_MKV_DATA))?;
                self.open_fragment(offset, timecode)?;
            }
            Event::Frame(f) => {
                let max_ms = self.limits().max_fragment_duration_ms;
                if !self.tracks.contains(&f.track) {
                    return Err(Fail(E::TRACK_NUMBER_MISMATCH));
                }
                let Some(o) = self.open.as_mut() else {
                    return Err(Fail(E::INVALID_MKV_DATA));
                };
                *o.frames.entry(f.track).or_insert(0) += 1;
                o.last_ns = o.last_ns.max(f.timestamp_ns);
                let span_ms = (i128::from(f.timestamp_ns) - o.tc_ns as i128) / 1_000_000;
                if span_ms > i128::from(max_ms) {
                    return Err(Fail(E::FRAGMENT_DURATION_REACHED));
                }
            }
            Event::Warning(
                kvs_core::mkv::reader::Warning::Skipped { .. }
                | kvs_core::mkv::reader::Warning::MissingClusterTimecode { .. },
            ) => return Err(Fail(E::INVALID_MKV_DATA)),
            Event::FragmentEnd(s) => {
                if let Some(o) = &self.open
                    && s.offset == o.cluster_offset
                {
                    if s.truncated && at_end {
                        self.abandon();
                    } else {
                        let end = if s.bytes > 0 {
                            s.offset + s.bytes
                        } else {
                            self.base + self.buf.len() as u64
                        };
                        self.close(end)?;
                    }
                }
            }
            _ => {}
        }
        Ok(())
    }

    /// End offset of the element starting at `offset` (from its size field).
    fn element_end(&self, offset: u64) -> u64 {
        let fallback = self.base + self.buf.len() as u64;
        let Some(rel) = offset.checked_sub(self.base) else {
            return fallback;
        };
        let bytes = self.buf.get(rel as usize..).unwrap_or_default();
        let Ok(Some((_, id_len))) = read_id(bytes) else {
            return fallback;
        };
        match read_size(bytes.get(id_len..).unwrap_or_default()) {
            Ok(Some((Size::Known(n), size_len))) => offset + (id_len + size_len) as u64 + n,
            _ => fallback,
        }
    }

    fn set_header(&mut self, end: u64) -> Result<(), Fail> {
        let len = usize::try_from(end.saturating_sub(self.base)).unwrap_or(usize::MAX);
        let bytes = self
            .buf
            .get(..len)
            .map(Bytes::copy_from_slice)
            .ok_or(Fail(ErrorId::INVALID_MKV_DATA))?;
        let header = ProducerHeader::parse(bytes).map_err(|_| Fail(ErrorId::INVALID_MKV_DATA))?;
        let id = {
            let mut d = lock(&self.stream.data);
            let id = d.next_header_id;
            d.next_header_id += 1;
            d.headers.insert(id, Arc::new(header));
            id
        };
        self.header_id = Some(id);
        self.frag_start = end;
        Ok(())
    }

    fn open_fragment(&mut self, offset: u64, timecode: u64) -> Result<(), Fail> {
        use ErrorId as E;
        let scale = u128::from(self.reader.timecode_scale().max(1));
        let tc_ns = u128::from(timecode) * scale;
        if let Some(last) = self.last_tc_ns
            && tc_ns < last
        {
            return Err(Fail(E::FRAGMENT_TIMECODE_NOT_MONOTONIC));
        }
        self.last_tc_ns = Some(tc_ns);
        let tc_ms = tc_ns / 1_000_000;
        let producer_ms = match self.mode {
            FragmentTimecodeType::Absolute => tc_ms,
            FragmentTimecodeType::Relative => u128::from(self.start_ms) + tc_ms,
        };
        let now = self.ctx.now_ms();
        if producer_ms > u128::from(now + self.limits().max_future_ms) {
            return Err(Fail(E::INVALID_PRODUCER_TIMESTAMP));
        }
        let producer_ms = producer_ms as u64;
        if self.stream.status() == StreamStatus::Deleting {
            return Err(Fail(E::STREAM_NOT_ACTIVE));
        }
        if self.started.elapsed() > self.limits().max_connection_duration {
            return Err(Fail(E::CONNECTION_DURATION_REACHED));
        }
        let mut r = [0u8; 4];
        crate::random_bytes(&mut r);
        let random = u32::from_le_bytes(r) & kvs_core::index::RANDOM_MASK;
        let header_id = self.header_id.unwrap_or(0);
        let (seq, server_ms) = {
            let mut d = lock(&self.stream.data);
            let seq = d.next_seq;
            d.next_seq += 1;
            // Strictly increasing within a stream: a selection by server timestamp (ListFragments,
            // GetClip, HLS, whose same-start rule keeps only the newest) never sees two
            // fragments of one stream at the same server time, however fast they arrive.
            let server_ms = now.max(d.last_server_ms.saturating_add(1));
            d.last_server_ms = server_ms;
            if d.header_runs.values().next_back() != Some(&header_id) {
                d.header_runs.insert(seq, header_id);
            }
            // Reserved in sequence order: readers and the index wait for it.
            d.pending.push_back(PendingFragment {
                fragment: Fragment {
                    sequence: seq,
                    server_timestamp_ms: server_ms,
                    producer_timestamp_ms: producer_ms,
                    location: NOT_ON_DISK,
                    size_bytes: 0,
                    duration_ms: 0,
                    random,
                },
                state: PendingState::Open,
            });
            (seq, server_ms)
        };
        let number = FragmentNumber::mint(seq, server_ms, random);
        // The metadata received so far belongs to this fragment; count afresh for the next.
        self.pending_tags = 0;
        self.send(AckEvent::buffering(timecode, number.clone()));
        self.open = Some(Open {
            seq,
            number,
            random,
            timecode,
            tc_ns,
            producer_ms,
            server_ms,
            cluster_offset: offset,
            frames: HashMap::new(),
            last_ns: i64::try_from(tc_ns).unwrap_or(i64::MAX),
        });
        Ok(())
    }

    fn close(&mut self, end: u64) -> Result<(), Fail> {
        use ErrorId as E;
        let Some(o) = self.open.take() else {
            return Ok(());
        };
        for t in &self.tracks {
            if o.frames.get(t).copied().unwrap_or(0) == 0 {
                self.open = Some(o);
                return Err(Fail(E::FRAMES_MISSING_FOR_TRACK));
            }
        }
        let cut = usize::try_from(end.saturating_sub(self.base)).unwrap_or(usize::MAX);
        if cut > self.buf.len() {
            self.open = Some(o);
            return Err(Fail(E::INVALID_MKV_DATA));
        }
        let chunk = self.buf.split_to(cut).freeze();
        // The fragment's bytes leave the buffer: charged on their own until persisted.
        let charge = self.held.split(chunk.len() as u64);
        if self.held.reserve_bytes() == 0 {
            // The reserve bytes we drew leave with this fragment: the next waiter may finish.
            self.finisher = None;
        }
        let skip = usize::try_from(self.frag_start.saturating_sub(self.base)).unwrap_or(0);
        let data = chunk.slice(skip.min(chunk.len())..);
        self.base = end;
        self.frag_start = end;
        let duration_ms =
            u64::try_from((i128::from(o.last_ns) - o.tc_ns as i128).max(0) / 1_000_000)
                .unwrap_or(0);
        if self.stream.status() == StreamStatus::Deleting {
            self.open = Some(o);
            return Err(Fail(E::STREAM_NOT_ACTIVE));
        }
        // Both bounded by the limits (checked against the index's u32 fields at start-up).
        let size_bytes = u32::try_from(data.len())
            .ok()
            .filter(|n| u64::from(*n) <= self.limits().max_fragment_bytes);
        let Some(size_bytes) = size_bytes else {
            self.open = Some(o);
            return Err(Fail(E::FRAGMENT_SIZE_REACHED));
        };
        let Ok(duration_u32) = u32::try_from(duration_ms) else {
            self.open = Some(o);
            return Err(Fail(E::FRAGMENT_DURATION_REACHED));
        };
        let header_id = self.header_id.unwrap_or(0);
        let retention = self.stream.retention_hours();
        // Stored fragments are sealed (only disk is encrypted; the cache below stays clear).
        let sealed = if retention > 0 {
            let key = match &self.key {
                Ok(k) => k.clone(),
                Err(id) => {
                    let id = *id;
                    self.open = Some(o);
                    return Err(Fail(id));
                }
            };
            let record = FragmentRecord {
                seq: o.seq,
                server_ms: o.server_ms,
                producer_ms: o.producer_ms,
                duration_ms,
                header_id,
                timecode: o.timecode,
                random: o.random,
            };
            match key.seal_fragment(&record.meta(), &data) {
                Ok(b) => Some((key, record, Bytes::from(b))),
                Err(_) => {
                    self.open = Some(o);
                    return Err(Fail(E::ACK_INTERNAL_ERROR));
                }
            }
        } else {
            None
        };
        self.send(AckEvent::received(o.timecode, o.number.clone()));
        let entry = Fragment {
            sequence: o.seq,
            server_timestamp_ms: o.server_ms,
            producer_timestamp_ms: o.producer_ms,
            location: NOT_ON_DISK,
            size_bytes,
            duration_ms: duration_u32,
            random: o.random,
        };
        let header_to_persist = if retention > 0 {
            let mut d = lock(&self.stream.data);
            if !d.durable_headers.contains(&header_id) && d.submitted_headers.insert(header_id) {
                d.headers.get(&header_id).cloned()
            } else {
                None
            }
        } else {
            None
        };
        let dir = self.stream.dir.clone();
        if let Some(h) = header_to_persist {
            let mut bytes = BytesMut::new();
            let sealed_header = match &sealed {
                Some((key, _, _)) if h.write_document_start(&mut bytes).is_ok() => {
                    key.seal_header(header_id, &bytes).ok()
                }
                _ => None,
            };
            if sealed_header.is_none() {
                // Not submitted: the next fragment that needs it tries again; this one is
                // never acknowledged.
                lock(&self.stream.data).submitted_headers.remove(&header_id);
                self.open = Some(o);
                return Err(Fail(E::ACK_INTERNAL_ERROR));
            }
            if let Some(bytes) = sealed_header {
                // Stored as EBML header + Segment + header elements: ProducerHeader::parse reads
                // it back. Written before any fragment job that needs it.
                let stream = self.stream.clone();
                self.ctx.writer.append_header(
                    dir.clone(),
                    header_id,
                    Bytes::from(bytes),
                    Box::new(move |result| {
                        let mut d = lock(&stream.data);
                        if result.is_ok() {
                            d.durable_headers.insert(header_id);
                        } else {
                            d.submitted_headers.remove(&header_id);
                        }
                    }),
                );
            }
        }
        let job: Option<Box<dyn FnOnce() + Send>> = if let Some((_, record, body)) = sealed {
            let stream = self.stream.clone();
            let ptx = self.persist_tx.clone();
            let cache_limit = self.limits().cache_bytes;
            let writer = self.ctx.writer.clone();
            let (timecode, number, seq) = (o.timecode, o.number.clone(), o.seq);
            let done: crate::store::Done = Box::new(move |result| {
                let mut d = lock(&stream.data);
                let pending = d
                    .pending_position(seq)
                    .and_then(|i| d.pending.remove(i))
                    .map(|p| p.fragment);
                let result = result.and_then(|loc| {
                    let loc = loc.ok_or_else(|| std::io::Error::other("no location"))?;
                    // Gone already when the stream was deleted meanwhile.
                    if let Some(mut f) = pending {
                        f.location = loc.offset;
                        d.segments.insert(loc.segment);
                        d.index.append(f).map_err(std::io::Error::other)?;
                    }
                    Ok(())
                });
                if result.is_err() {
                    // Never acknowledged: unreadable from now on.
                    let i = d.cache.partition_point(|(s, _)| *s < seq);
                    if d.cache.get(i).is_some_and(|(s, _)| *s == seq)
                        && let Some((_, b)) = d.cache.remove(i)
                    {
                        d.cached_bytes = d.cached_bytes.saturating_sub(b.len() as u64);
                    }
                }
                d.flush_pending();
                d.cache_evict(cache_limit);
                drop(d);
                // Persisted (or failed): what stays in memory is the stream's bounded cache.
                drop(charge);
                stream.notify(seq);
                let _ = ptx.send(PersistedAck {
                    result,
                    timecode,
                    number,
                });
            });
            Some(Box::new(move || {
                writer.append_fragment(dir, record, entry, body, done);
            }))
        } else {
            None
        };
        let has_job = job.is_some();
        let reserved = {
            let mut d = lock(&self.stream.data);
            let reserved = match d.pending_position(o.seq).and_then(|i| d.pending.get_mut(i)) {
                Some(p) => {
                    p.fragment = entry;
                    p.state = PendingState::Ready(job);
                    d.cache_push(o.seq, data);
                    true
                }
                // The stream was deleted meanwhile.
                None => false,
            };
            d.flush_pending();
            if retention == 0 {
                trim_buffer(self.limits(), &mut d, self.ctx.now_ms());
            }
            reserved
        };
        if reserved && has_job {
            self.in_flight += 1;
        }
        self.stream.notify(o.seq);
        Ok(())
    }
}

impl Drop for Ingest {
    fn drop(&mut self) {
        self.abandon();
        let _ = self.stream.producer.compare_exchange(
            self.conn_id,
            0,
            Ordering::SeqCst,
            Ordering::SeqCst,
        );
        // Wake live readers so they can notice the producer left.
        self.stream.published.send_modify(|_| {});
    }
}
