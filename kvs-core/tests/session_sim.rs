//! Deterministic simulation of the PutMedia producer session against an in-process ingest model
//! (MkvReader decodes what the session transmits; the ACK writer answers), on a fake clock, with
//! fault injection; then the GetMedia consumer cursor reads back what was persisted, through
//! cut connections.
//!
//! The ingest model completes a fragment when the next Cluster starts, an end-of-fragment tag
//! arrives or the body ends cleanly; an aborted connection discards its incomplete fragment. It
//! is idempotent: a replayed fragment whose timecode is already stored is checked to be
//! byte-identical and acknowledged with the stored fragment number, not stored twice.

use std::collections::{BTreeMap, HashMap};

use bytes::Bytes;
use kvs_core::ack::{AckEvent, ErrorId};
use kvs_core::api::{StartSelector, StartSelectorType, Timestamp};
use kvs_core::fragment::{FragmentNumber, tag};
use kvs_core::mkv::getmedia::{FragmentDocument, ProducerHeader, Trailer};
use kvs_core::mkv::reader::{Event as MkvEvent, MkvReader};
use kvs_core::mkv::writer::{StreamConfig, TimecodeMode};
use kvs_core::mkv::{Frame, TrackInfo, TrackType, codec};
use kvs_core::session::consumer::{ConsumerEvent, CursorConfig, Delivery, GetMediaCursor};
use kvs_core::session::{
    AckLevel, ConnectionId, Disconnect, Event, FrameId, FullPolicy, Millis, PushError,
    PutMediaSession, SessionConfig,
};
use proptest::prelude::*;

const EPOCH_MS: u64 = 1_700_000_000_000;

#[derive(Debug, Clone, Default)]
struct Faults {
    /// Cut connection `.0` (by order of opening) after `.1` body bytes.
    cut: Option<(u64, usize)>,
    /// Connections with an index below this suffer the random faults below.
    faulty_conns: u64,
    /// Per-mille chance to drop / duplicate an ACK line.
    drop_ack: u32,
    dup_ack: u32,
    /// Max extra ACK delay, ms.
    ack_delay: u64,
    /// Refuse (HTTP 503) connection requests before this time.
    refuse_until: u64,
    /// Fragment index (by store order of first completion) answered with a retriable ERROR
    /// the first time it completes.
    retriable_error_at: Option<usize>,
    /// Fragment ordinal answered with a non-retriable ERROR.
    fatal_error_at: Option<usize>,
}

#[derive(Debug, Clone)]
struct Run {
    frames: usize,
    gop: usize,
    payload: usize,
    relative: bool,
    received_level: bool,
    max_bytes: usize,
    policy: FullPolicy,
    faults: Faults,
    seed: u64,
    /// Rotate connections every this many ms (0: default).
    rotation_ms: u64,
}

impl Run {
    fn small() -> Self {
        Run {
            frames: 12,
            gop: 4,
            payload: 16,
            relative: false,
            received_level: false,
            max_bytes: 1 << 20,
            policy: FullPolicy::Refuse,
            faults: Faults::default(),
            seed: 1,
            rotation_ms: 0,
        }
    }
}

struct StoredFragment {
    timecode: u64,
    number: FragmentNumber,
    frames: Vec<Frame>,
    raw: Bytes,
}

struct ServerConn {
    index: u64,
    reader: MkvReader,
    raw: Vec<u8>,
    received: usize,
    open: Option<(u64, u64, Vec<Frame>)>, // (timecode, cluster offset, frames)
    alive: bool,
    header_ok: Option<bool>,
}

#[derive(Debug)]
enum Action {
    Connected(ConnectionId, u16),
    Ack(ConnectionId, Vec<u8>),
    Disconnect(ConnectionId),
}

struct Sim {
    run: Run,
    now: u64,
    session: PutMediaSession,
    header: Bytes,
    conns: HashMap<ConnectionId, ServerConn>,
    opened: u64,
    store: Vec<StoredFragment>,
    by_tc: HashMap<u64, usize>,
    completions: usize,
    queue: BTreeMap<(u64, u64), Action>,
    qseq: u64,
    rng: u64,
    pushed: Vec<(FrameId, Frame)>,
    dropped: HashMap<u64, String>,
    closed: bool,
    max_buffered: usize,
    minted: u64,
}

fn frame_for(i: usize, run: &Run) -> Frame {
    let mut data = (i as u64).to_le_bytes().to_vec();
    data.extend((0..run.payload).map(|k| (i * 7 + k) as u8));
    let base_ns = if run.relative {
        0
    } else {
        EPOCH_MS as i64 * 1_000_000
    };
    Frame::new(
        1,
        base_ns + i as i64 * 100_000_000,
        i.is_multiple_of(run.gop),
        data,
    )
}

impl Sim {
    fn new(run: Run) -> Self {
        let mut stream = StreamConfig::new([7; 16]);
        if run.relative {
            stream.timecode_mode = TimecodeMode::Relative;
        }
        let mut track = TrackInfo::new(1, 1, TrackType::Video, codec::H264);
        track.codec_private = Bytes::from_static(&[1, 0x64, 0, 0x1f, 0xff, 0xe0, 0]);
        let mut cfg = SessionConfig::new("sim", stream, vec![track], Timestamp(EPOCH_MS));
        if run.received_level {
            cfg.ack_level = AckLevel::Received;
        }
        cfg.buffer.max_bytes = run.max_bytes;
        cfg.buffer.policy = run.policy;
        cfg.timeouts.stale_ms = 3_000;
        cfg.timeouts.ack_ms = 3_000;
        cfg.timeouts.idle_ms = 20_000;
        cfg.timeouts.drain_ms = 3_000;
        cfg.timeouts.finish_ms = 600_000;
        if run.rotation_ms > 0 {
            cfg.timeouts.rotation_ms = run.rotation_ms;
        }
        cfg.backoff.jitter_seed = run.seed;
        let session = PutMediaSession::new(cfg, Millis(0)).unwrap();
        let header = session.writer().header().clone();
        let rng = run.seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1;
        Sim {
            run,
            now: 0,
            session,
            header,
            conns: HashMap::new(),
            opened: 0,
            store: Vec::new(),
            by_tc: HashMap::new(),
            completions: 0,
            queue: BTreeMap::new(),
            qseq: 0,
            rng,
            pushed: Vec::new(),
            dropped: HashMap::new(),
            closed: false,
            max_buffered: 0,
            minted: 0,
        }
    }

    fn rand(&mut self, n: u64) -> u64 {
        self.rng ^= self.rng << 13;
        self.rng ^= self.rng >> 7;
        self.rng ^= self.rng << 17;
        self.rng % n.max(1)
    }

    fn schedule(&mut self, at: u64, action: Action) {
        self.qseq += 1;
        self.queue.insert((at, self.qseq), action);
    }

    fn faulty(&self, id: ConnectionId) -> bool {
        self.conns
            .get(&id)
            .is_some_and(|c| c.index < self.run.faults.faulty_conns)
    }

    fn send_ack(&mut self, id: ConnectionId, ack: AckEvent) {
        let faulty = self.faulty(id);
        let f = self.run.faults.clone();
        if faulty && self.rand(1000) < u64::from(f.drop_ack) {
            return;
        }
        let delay = 1 + if faulty {
            self.rand(f.ack_delay + 1)
        } else {
            0
        };
        let bytes = ack.to_vec();
        // Split the line in two to exercise partial records.
        let cut = self.rand(bytes.len() as u64) as usize;
        self.schedule(self.now + delay, Action::Ack(id, bytes[..cut].to_vec()));
        self.schedule(self.now + delay, Action::Ack(id, bytes[cut..].to_vec()));
        if faulty && self.rand(1000) < u64::from(f.dup_ack) {
            self.schedule(self.now + delay + 1, Action::Ack(id, bytes));
        }
    }

    /// Server side: the body of `id` received `data`.
    fn receive(&mut self, id: ConnectionId, data: &[u8]) {
        let Some(conn) = self.conns.get_mut(&id) else {
            return;
        };
        if !conn.alive {
            return;
        }
        let mut data = data;
        let mut cut_now = false;
        if let Some((idx, at)) = self.run.faults.cut
            && idx == conn.index
        {
            let room = at.saturating_sub(conn.received);
            if data.len() >= room {
                data = &data[..room];
                cut_now = true;
            }
        }
        conn.received += data.len();
        conn.raw.extend_from_slice(data);
        if conn.header_ok.is_none() && conn.raw.len() >= self.header.len() {
            conn.header_ok = Some(conn.raw[..self.header.len()] == self.header[..]);
            assert_eq!(
                conn.header_ok,
                Some(true),
                "connection body must start with the header"
            );
        }
        conn.reader.push(Bytes::copy_from_slice(data)).unwrap();
        self.pump(id, false);
        if cut_now {
            self.abort(id);
            self.schedule(self.now + 1, Action::Disconnect(id));
        }
    }

    fn pump(&mut self, id: ConnectionId, at_end: bool) {
        let mut events = Vec::new();
        if let Some(conn) = self.conns.get_mut(&id) {
            if at_end {
                conn.reader.finish();
            }
            while let Some(e) = conn.reader.poll_event() {
                events.push(e.expect("the session transmits valid MKV"));
            }
        }
        for e in events {
            match e {
                MkvEvent::ClusterStart { offset, timecode } => {
                    self.complete(id, Some(offset));
                    let tc = timecode.unwrap();
                    let number = self.number_for(tc);
                    if let Some(c) = self.conns.get_mut(&id) {
                        c.open = Some((tc, offset, Vec::new()));
                    }
                    self.send_ack(id, AckEvent::buffering(tc, number));
                }
                MkvEvent::Frame(f) => {
                    if let Some((_, _, frames)) =
                        self.conns.get_mut(&id).and_then(|c| c.open.as_mut())
                    {
                        frames.push(f);
                    }
                }
                MkvEvent::Tags(t) if t.tags.iter().any(|s| s.name == tag::END_OF_FRAGMENT) => {
                    self.complete(id, Some(t.offset));
                }
                _ => {}
            }
        }
        if at_end {
            let len = self.conns.get(&id).map(|c| c.raw.len() as u64);
            self.complete(id, len);
        }
    }

    fn number_for(&mut self, tc: u64) -> FragmentNumber {
        if let Some(&i) = self.by_tc.get(&tc) {
            return self.store[i].number.clone();
        }
        self.minted += 1;
        FragmentNumber::mint(self.minted, EPOCH_MS + self.now, 0x123_4567)
    }

    /// The open fragment of `id` is complete (its bytes end at `end`).
    fn complete(&mut self, id: ConnectionId, end: Option<u64>) {
        let Some(conn) = self.conns.get_mut(&id) else {
            return;
        };
        let Some((tc, start, frames)) = conn.open.take() else {
            return;
        };
        let end = end.unwrap_or(conn.raw.len() as u64) as usize;
        let raw = Bytes::copy_from_slice(&conn.raw[start as usize..end]);
        if let Some(&i) = self.by_tc.get(&tc) {
            let stored = &self.store[i];
            assert_eq!(
                stored.raw, raw,
                "a replayed fragment differs from the stored copy"
            );
            let n = stored.number.clone();
            self.send_ack(id, AckEvent::received(tc, n.clone()));
            if !self.run.received_level {
                self.send_ack(id, AckEvent::persisted(tc, n));
            }
            return;
        }
        let ordinal = self.completions;
        self.completions += 1;
        let f = self.run.faults.clone();
        let error = if f.retriable_error_at == Some(ordinal) {
            Some(ErrorId::from_code(5000))
        } else if f.fatal_error_at == Some(ordinal) {
            Some(ErrorId::from_code(4002))
        } else {
            None
        };
        let number = self.number_for(tc);
        if let Some(e) = error {
            assert_eq!(e.is_retriable(), f.retriable_error_at == Some(ordinal));
            self.send_ack(id, AckEvent::error(e, Some(tc), Some(number)));
            // The service closes the connection after an ERROR.
            self.abort(id);
            self.schedule(self.now + 50, Action::Disconnect(id));
            return;
        }
        self.by_tc.insert(tc, self.store.len());
        self.store.push(StoredFragment {
            timecode: tc,
            number: number.clone(),
            frames,
            raw,
        });
        self.send_ack(id, AckEvent::received(tc, number.clone()));
        if !self.run.received_level {
            self.send_ack(id, AckEvent::persisted(tc, number));
        }
    }

    fn abort(&mut self, id: ConnectionId) {
        if let Some(c) = self.conns.get_mut(&id) {
            c.alive = false;
            c.open = None;
        }
    }

    fn drain(&mut self) {
        loop {
            let mut progress = false;
            while let Some(ev) = self.session.poll_event() {
                progress = true;
                if std::env::var_os("SIM_TRACE").is_some() {
                    eprintln!("{:>7} {ev:?}", self.now);
                }
                match ev {
                    Event::Connect { connection, .. } => {
                        let index = self.opened;
                        self.opened += 1;
                        self.conns.insert(
                            connection,
                            ServerConn {
                                index,
                                reader: MkvReader::new(),
                                raw: Vec::new(),
                                received: 0,
                                open: None,
                                alive: true,
                                header_ok: None,
                            },
                        );
                        let status = if self.now < self.run.faults.refuse_until {
                            503
                        } else {
                            200
                        };
                        let at = self.now + 5 + self.rand(20);
                        self.schedule(at, Action::Connected(connection, status));
                    }
                    Event::EndBody { connection }
                        if self.conns.get(&connection).is_some_and(|c| c.alive) =>
                    {
                        self.pump(connection, true);
                        if let Some(c) = self.conns.get_mut(&connection) {
                            c.alive = false;
                        }
                        self.schedule(self.now + 100, Action::Disconnect(connection));
                    }
                    Event::CloseConnection { connection, .. } => self.abort(connection),
                    Event::Dropped(r) => {
                        for id in r.first.0..r.first.0 + r.frames {
                            let prev = self.dropped.insert(id, format!("{:?}", r.reason));
                            assert!(prev.is_none(), "frame {id} reported dropped twice");
                        }
                    }
                    Event::Closed => self.closed = true,
                    _ => {}
                }
            }
            while let Some(t) = self.session.poll_transmit() {
                progress = true;
                self.receive(t.connection, &t.data);
            }
            self.max_buffered = self.max_buffered.max(self.session.buffered_bytes());
            assert!(self.session.buffered_bytes() <= self.run.max_bytes);
            if !progress {
                return;
            }
        }
    }

    fn run(mut self) -> Self {
        let mut next_frame = 0usize;
        let mut next_push = 0u64;
        let mut finished = false;
        for _step in 0..200_000 {
            self.drain();
            if self.closed {
                break;
            }
            let timer = self.session.poll_timeout().map(|m| m.0);
            let queued = self.queue.keys().next().map(|k| k.0);
            let push = (next_frame < self.run.frames || !finished).then_some(next_push);
            let Some(t) = [timer, queued, push].into_iter().flatten().min() else {
                panic!("nothing left to do but the session is not closed");
            };
            assert!(t >= self.now, "time went backwards");
            self.now = t;
            let now = Millis(t);
            if let Some((&key, _)) = self.queue.iter().next()
                && key.0 <= t
            {
                let action = self.queue.remove(&key).unwrap();
                match action {
                    Action::Connected(id, status) => {
                        if status == 200 && self.conns.get(&id).is_some_and(|c| !c.alive) {
                            continue;
                        }
                        self.session.handle_connected(now, id, status)
                    }
                    Action::Ack(id, bytes) => self.session.handle_ack_bytes(now, id, &bytes),
                    Action::Disconnect(id) => {
                        self.abort(id);
                        self.session.handle_disconnected(now, id, Disconnect::Error)
                    }
                }
                continue;
            }
            if push == Some(t) {
                if next_frame < self.run.frames {
                    let frame = frame_for(next_frame, &self.run);
                    match self.session.push_frame(now, frame.clone()) {
                        Ok(id) => {
                            assert_eq!(id.0 as usize, self.pushed.len());
                            self.pushed.push((id, frame));
                            next_frame += 1;
                            next_push = t + 100;
                        }
                        Err(PushError::Full { .. }) => next_push = t + 50,
                        Err(e) => panic!("unexpected push error {e}"),
                    }
                } else {
                    self.session.finish(now);
                    finished = true;
                }
                continue;
            }
            if timer == Some(t) {
                self.session.handle_timeout(now);
                let after = self.session.poll_timeout();
                assert!(
                    after.is_none_or(|a| a.0 > t),
                    "a timer due at {t} did not fire (next {after:?})"
                );
            }
        }
        assert!(
            self.closed,
            "the session did not close within the step bound"
        );
        self
    }

    /// The invariants every run must keep.
    fn check(&self) {
        assert_eq!(self.session.poll_timeout(), None);
        let mut persisted: HashMap<u64, &Frame> = HashMap::new();
        let mut last_id = None;
        for f in &self.store {
            for fr in &f.frames {
                let id = u64::from_le_bytes(fr.data[..8].try_into().unwrap());
                assert!(
                    last_id.is_none_or(|l| id > l),
                    "frames persisted out of order"
                );
                last_id = Some(id);
                assert!(
                    persisted.insert(id, fr).is_none(),
                    "frame {id} persisted twice"
                );
            }
        }
        for (id, frame) in &self.pushed {
            match (persisted.get(&id.0), self.dropped.get(&id.0)) {
                (Some(p), None) => {
                    assert_eq!(p.data, frame.data, "frame {} payload", id.0);
                    assert_eq!(
                        p.timestamp_ns, frame.timestamp_ns,
                        "frame {} timestamp",
                        id.0
                    );
                    assert_eq!(p.keyframe, frame.keyframe);
                }
                (None, Some(_)) => {}
                (Some(_), Some(r)) => panic!("frame {} persisted and reported dropped ({r})", id.0),
                (None, None) => panic!("frame {} neither persisted nor reported", id.0),
            }
        }
        assert_eq!(persisted.len() + self.dropped.len(), self.pushed.len());
        assert!(self.max_buffered <= self.run.max_bytes);
        let m = self.session.metrics();
        assert_eq!(m.frames_pushed as usize, self.pushed.len());
        assert_eq!(m.frames_dropped as usize, self.dropped.len());
    }

    /// Builds GetMedia documents from the store.
    fn documents(&self) -> (Vec<u8>, Vec<usize>) {
        let header = ProducerHeader::parse(self.header.clone()).unwrap();
        let mut out = Vec::new();
        let mut ends = Vec::new();
        for (i, f) in self.store.iter().enumerate() {
            let trailer = Trailer {
                millis_behind_now: 10 * i as u64,
                continuation_token: f.number.as_str().to_owned(),
            };
            let doc = FragmentDocument {
                header: &header,
                fragment_number: f.number.as_str(),
                server_timestamp_ms: EPOCH_MS + i as u64,
                producer_timestamp_ms: EPOCH_MS + f.timecode,
                cluster: &f.raw,
                trailer: Some(&trailer),
            };
            doc.write(&mut out).unwrap();
            ends.push(out.len());
        }
        (out, ends)
    }
}

/// Reads the store back through GetMedia documents, cutting every response after `cuts[k]`
/// bytes (then serving to the end), with `chunk`-byte reads.
fn consume(sim: &Sim, cuts: &[usize], chunk: usize, delivery: Delivery) {
    let (stream, ends) = sim.documents();
    let starts: Vec<usize> = std::iter::once(0).chain(ends.iter().copied()).collect();
    let mut cursor = GetMediaCursor::new(CursorConfig {
        delivery,
        ..CursorConfig::new("sim", StartSelector::new(StartSelectorType::Earliest))
    });
    let mut seen: Vec<(String, Vec<Frame>)> = Vec::new();
    let mut live: Vec<Frame> = Vec::new();
    for k in 0..10_000 {
        let req = cursor.request();
        let s = &req.start_selector;
        let from = match s.start_selector_type {
            StartSelectorType::Earliest => 0,
            StartSelectorType::ContinuationToken | StartSelectorType::FragmentNumber => {
                let n = s
                    .continuation_token
                    .as_deref()
                    .or(s.after_fragment_number.as_deref())
                    .unwrap();
                sim.store
                    .iter()
                    .position(|f| f.number.as_str() == n)
                    .unwrap()
                    + 1
            }
            other => panic!("unexpected selector {other:?}"),
        };
        if from >= sim.store.len() {
            break;
        }
        let body = &stream[starts[from]..];
        let cut = cuts.get(k).copied().unwrap_or(usize::MAX).min(body.len());
        for piece in body[..cut].chunks(chunk.max(1)) {
            cursor.handle_data(Bytes::copy_from_slice(piece)).unwrap();
            drain_cursor(&mut cursor, &mut seen, &mut live);
        }
        cursor.handle_end();
        drain_cursor(&mut cursor, &mut seen, &mut live);
    }
    assert_eq!(seen.len(), sim.store.len(), "every fragment exactly once");
    for (got, want) in seen.iter().zip(&sim.store) {
        assert_eq!(got.0, want.number.as_str());
        assert_eq!(got.1.len(), want.frames.len());
        for (a, b) in got.1.iter().zip(&want.frames) {
            assert_eq!(a.data, b.data);
            assert_eq!(a.timestamp_ns, b.timestamp_ns);
        }
    }
}

fn drain_cursor(
    cursor: &mut GetMediaCursor,
    seen: &mut Vec<(String, Vec<Frame>)>,
    live: &mut Vec<Frame>,
) {
    while let Some(e) = cursor.poll_event() {
        match e {
            ConsumerEvent::Frame(f) => live.push(f),
            ConsumerEvent::FragmentAborted { .. } => live.clear(),
            ConsumerEvent::Fragment(s) => seen.push((
                s.metadata.fragment_number.clone().unwrap(),
                std::mem::take(live),
            )),
            ConsumerEvent::Decode(e) => panic!("decode error {e}"),
            ConsumerEvent::Repeated { fragment_number } => panic!("repeated {fragment_number}"),
            _ => {}
        }
    }
}

#[test]
fn clean_run_persists_every_frame() {
    for relative in [false, true] {
        for received_level in [false, true] {
            let sim = Sim::new(Run {
                relative,
                received_level,
                frames: 40,
                ..Run::small()
            })
            .run();
            sim.check();
            assert!(sim.dropped.is_empty());
            assert_eq!(sim.store.len(), 10);
            if relative {
                assert_eq!(sim.store[0].timecode, 0);
                assert_eq!(sim.store[1].timecode, 400);
            } else {
                assert_eq!(sim.store[0].timecode, EPOCH_MS);
            }
            consume(&sim, &[], 4096, Delivery::Complete);
            let m = sim.session.metrics();
            assert_eq!(m.connections, 1);
            assert_eq!(m.bytes_retransmitted, 0);
            assert_eq!(m.fragments_acked, 10);
        }
    }
}

#[test]
fn cut_at_every_byte_offset() {
    let clean = Sim::new(Run::small()).run();
    let total = clean.conns.values().map(|c| c.received).sum::<usize>();
    assert!(total > 200);
    for at in 0..=total {
        let mut run = Run::small();
        run.faults.cut = Some((0, at));
        let sim = Sim::new(run).run();
        sim.check();
        assert!(sim.dropped.is_empty(), "cut at {at}: nothing may be lost");
        assert_eq!(sim.store.len(), 3, "cut at {at}");
    }
}

#[test]
fn retriable_and_fatal_error_acks() {
    let mut run = Run::small();
    run.frames = 20;
    run.faults.retriable_error_at = Some(1);
    let sim = Sim::new(run).run();
    sim.check();
    assert!(sim.dropped.is_empty());
    assert!(sim.session.metrics().rewinds >= 1);

    let mut run = Run::small();
    run.frames = 20;
    run.faults.fatal_error_at = Some(2);
    let sim = Sim::new(run).run();
    sim.check();
    // Fragment 2 (frames 8..12) failed; the stream went on.
    let failed: Vec<u64> = (8..12).collect();
    for id in &failed {
        assert!(sim.dropped[id].starts_with("Failed"), "{:?}", sim.dropped);
    }
    assert_eq!(sim.dropped.len(), 4);
    assert_eq!(sim.store.len(), 4);
    consume(&sim, &[100, 300, 7], 13, Delivery::Live);
}

#[test]
fn refused_connections_then_recovery() {
    let mut run = Run::small();
    run.frames = 30;
    run.faults.refuse_until = 5_000;
    let sim = Sim::new(run).run();
    sim.check();
    assert!(sim.dropped.is_empty());
    assert!(sim.session.metrics().connections > 2);
}

#[test]
fn drop_oldest_policy_reports_drops_and_keeps_bound() {
    let mut run = Run::small();
    run.frames = 60;
    run.payload = 200;
    run.max_bytes = 2_000;
    run.policy = FullPolicy::DropOldest;
    run.faults.refuse_until = 3_000;
    let sim = Sim::new(run).run();
    sim.check();
    assert!(!sim.dropped.is_empty());
    assert!(sim.dropped.values().all(|r| r == "BufferFull"));
    assert!(sim.max_buffered <= 2_000);
}

#[test]
fn refuse_policy_applies_backpressure() {
    let mut run = Run::small();
    run.frames = 60;
    run.payload = 200;
    run.max_bytes = 2_000;
    run.faults.refuse_until = 3_000;
    let sim = Sim::new(run).run();
    sim.check();
    assert!(sim.dropped.is_empty());
    assert!(sim.session.metrics().backpressure_events >= 1);
}

#[test]
fn rotation_without_gap() {
    let mut run = Run::small();
    run.frames = 100;
    run.rotation_ms = 2_000;
    let sim = Sim::new(run).run();
    sim.check();
    assert!(sim.dropped.is_empty());
    let m = sim.session.metrics();
    assert!(m.rotations >= 3, "{m:?}");
    assert_eq!(m.bytes_retransmitted, 0, "a rotation replays nothing");
    consume(&sim, &[500, 1000, 50], 64, Delivery::Complete);
}

#[test]
fn regression_finish_after_lost_acks() {
    let mut run = Run::small();
    run.seed = 251693253975849762;
    run.frames = 5;
    run.gop = 1;
    run.payload = 40;
    run.faults.faulty_conns = 3;
    run.faults.drop_ack = 41;
    run.faults.refuse_until = 1;
    run.faults.retriable_error_at = Some(0);
    Sim::new(run).run().check();
}

#[test]
fn late_ack_bytes_of_old_connection_are_ignored() {
    let mut run = Run::small();
    run.frames = 20;
    run.faults.faulty_conns = 3;
    run.faults.ack_delay = 5_000;
    let sim = Sim::new(run).run();
    sim.check();
    assert!(sim.dropped.is_empty());
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 64, ..ProptestConfig::default() })]

    #[test]
    fn random_fault_scripts(
        seed in 1u64..u64::MAX,
        frames in 1usize..50,
        gop in 1usize..8,
        relative in any::<bool>(),
        received_level in any::<bool>(),
        drop_oldest in any::<bool>(),
        small_buffer in any::<bool>(),
        cut in proptest::option::of((0u64..3, 0usize..3000)),
        faulty_conns in 0u64..4,
        drop_ack in 0u32..300,
        dup_ack in 0u32..300,
        ack_delay in 0u64..4000,
        refuse_until in 0u64..4000,
        retriable in proptest::option::of(0usize..6),
        fatal in proptest::option::of(0usize..6),
        rotation in proptest::option::of(1_000u64..5_000),
        cuts in proptest::collection::vec(0usize..3000, 0..6),
        chunk in 1usize..700,
        live in any::<bool>(),
    ) {
        let run = Run {
            frames,
            gop,
            payload: 40,
            relative,
            received_level,
            max_bytes: if small_buffer { 3_000 } else { 1 << 20 },
            policy: if drop_oldest { FullPolicy::DropOldest } else { FullPolicy::Refuse },
            faults: Faults {
                cut,
                faulty_conns,
                drop_ack,
                dup_ack,
                ack_delay,
                refuse_until,
                retriable_error_at: retriable,
                fatal_error_at: fatal,
            },
            seed,
            rotation_ms: rotation.unwrap_or(0),
        };
        let sim = Sim::new(run).run();
        sim.check();
        consume(&sim, &cuts, chunk, if live { Delivery::Live } else { Delivery::Complete });
    }
}
