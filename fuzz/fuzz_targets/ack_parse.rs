//! Fuzz the PutMedia ACK parser: any bytes, any split.
//!
//! The first input byte picks the chunk size; the rest is the stream. The events from the chunked
//! feed must equal those from a single push, and every event must survive a write → parse round
//! trip.
#![no_main]

use kvs_core::ack::{AckParser, parse_ack};
use libfuzzer_sys::fuzz_target;

fn run(data: &[u8], chunk: usize) -> Vec<String> {
    let mut parser = AckParser::new();
    let mut out = Vec::new();
    for piece in data.chunks(chunk.max(1)) {
        parser.push(piece);
        while let Some(event) = parser.poll_event() {
            out.push(format!("{event:?}"));
            if let Ok(ack) = event {
                assert_eq!(parse_ack(&ack.to_vec()), Ok(ack));
            }
        }
    }
    parser.finish();
    while let Some(event) = parser.poll_event() {
        out.push(format!("{event:?}"));
    }
    out
}

fuzz_target!(|data: &[u8]| {
    let Some((&first, stream)) = data.split_first() else {
        return;
    };
    let whole = run(stream, stream.len());
    let split = run(stream, usize::from(first) + 1);
    assert_eq!(whole, split);
    let _ = parse_ack(stream);
});
