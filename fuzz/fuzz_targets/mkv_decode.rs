//! Feeds arbitrary bytes to the MKV push decoder, split at arbitrary points, drains every event,
//! and checks that the result equals decoding the same bytes in one piece.
#![no_main]

use bytes::Bytes;
use kvs_core::mkv::reader::{MkvReader, ReaderLimits, decode_all};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|input: &[u8]| {
    // The first byte seeds the split positions; the rest is the stream.
    let Some((&seed, data)) = input.split_first() else {
        return;
    };
    let whole = decode_all(data);
    let bytes = Bytes::copy_from_slice(data);
    let mut reader = MkvReader::with_limits(ReaderLimits::default());
    let mut events = Vec::new();
    let mut start = 0usize;
    let mut step = usize::from(seed % 61) + 1;
    while start < bytes.len() {
        let end = (start + step).min(bytes.len());
        reader
            .push(bytes.slice(start..end))
            .expect("within max_buffered_bytes");
        events.extend(reader.events());
        start = end;
        step = (step * 7 + usize::from(seed)) % 97 + 1;
    }
    reader.finish();
    events.extend(reader.events());
    assert_eq!(events, whole, "splitting changed the events");
});
