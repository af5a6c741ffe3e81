//! Fuzz the PutMedia producer session with an arbitrary script of inputs: frames (any track,
//! timestamp, flags, size), connection results, ACK bytes (well-formed or not, on any
//! connection id), disconnects, timeouts and finish. It must never panic, and it must keep its
//! invariants: the buffer stays within its bound, `poll_timeout` never reports a deadline at
//! or before `now` right after `handle_timeout(now)`, and every accepted frame is reported at
//! most once as dropped.
#![no_main]

use std::collections::HashSet;

use bytes::Bytes;
use kvs_core::ack::{AckEvent, ErrorId};
use kvs_core::api::Timestamp;
use kvs_core::fragment::FragmentNumber;
use kvs_core::mkv::writer::StreamConfig;
use kvs_core::mkv::{Frame, TrackInfo, TrackType, codec};
use kvs_core::session::{
    ConnectionId, Disconnect, Event, FullPolicy, Millis, PutMediaSession, SessionConfig,
};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let mut cfg = SessionConfig::new(
        "fuzz",
        StreamConfig::new([3; 16]),
        vec![TrackInfo::new(1, 1, TrackType::Video, codec::H264)],
        Timestamp(1_700_000_000_000),
    );
    cfg.buffer.max_bytes = 4096;
    cfg.buffer.policy = if data.first().is_some_and(|b| b & 1 == 1) {
        FullPolicy::DropOldest
    } else {
        FullPolicy::Refuse
    };
    let Ok(mut s) = PutMediaSession::new(cfg, Millis(0)) else {
        return;
    };
    let mut now = 0u64;
    let mut pts: i64 = 0;
    let mut dropped = HashSet::new();
    let mut last_conn = 0u64;
    for op in data.chunks(4) {
        let [a, b, c, d] = [0, 1, 2, 3].map(|i| op.get(i).copied().unwrap_or(0));
        now += u64::from(b) * 10;
        let t = Millis(now);
        match a % 8 {
            0 | 1 => {
                pts += i64::from(c) * 1_000_000 - if d & 0x40 != 0 { 5_000_000 } else { 0 };
                let frame = Frame::new(
                    u64::from(d & 3),
                    pts,
                    d & 0x80 != 0,
                    vec![c; usize::from(b) * 8 + 1],
                );
                let _ = s.push_frame(t, frame);
            }
            2 => s.handle_connected(
                t,
                ConnectionId(u64::from(c % 4) + last_conn.saturating_sub(2)),
                if d & 1 == 0 { 200 } else { 503 },
            ),
            3 => {
                let tc = 1_700_000_000_000 + u64::from(c) * 100;
                let n = FragmentNumber::mint(u64::from(c), now, 7);
                let ack = match d % 5 {
                    0 => AckEvent::buffering(tc, n),
                    1 => AckEvent::received(tc, n),
                    2 => AckEvent::persisted(tc, n),
                    3 => AckEvent::error(
                        ErrorId::from_code(4000 + u32::from(c % 12)),
                        Some(tc),
                        Some(n),
                    ),
                    _ => AckEvent::idle(),
                };
                s.handle_ack_bytes(t, ConnectionId(last_conn), &ack.to_vec());
            }
            4 => s.handle_ack_bytes(t, ConnectionId(last_conn), op),
            5 => s.handle_disconnected(
                t,
                ConnectionId(u64::from(c % 4) + last_conn.saturating_sub(2)),
                Disconnect::Error,
            ),
            6 => {
                if let Some(deadline) = s.poll_timeout() {
                    now = now.max(deadline.0);
                }
                s.handle_timeout(Millis(now));
                assert!(s.poll_timeout().is_none_or(|d| d.0 > now));
            }
            _ => {
                if c == 0xFF {
                    s.finish(t);
                }
            }
        }
        while let Some(e) = s.poll_event() {
            match e {
                Event::Connect { connection, .. } => last_conn = connection.0,
                Event::Dropped(r) => {
                    for id in r.first.0..r.first.0 + r.frames {
                        assert!(dropped.insert(id), "frame {id} dropped twice");
                    }
                }
                _ => {}
            }
        }
        while let Some(tx) = s.poll_transmit() {
            let _: Bytes = tx.data;
        }
        assert!(s.buffered_bytes() <= 4096);
    }
});
