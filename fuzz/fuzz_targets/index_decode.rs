//! Fuzz the fragment index's log decoder and rebuild: any bytes, any split, must never panic.
//!
//! The first input byte picks the chunk size; the rest is the log. The chunked rebuild must equal
//! the one-shot rebuild and the one-shot record decoder, the valid prefix must re-encode to the
//! same bytes, and the rebuilt index must answer queries. The same bytes are also tried as a
//! ListFragments NextToken.
#![no_main]

use kvs_core::index::codec::{Record, decode_records};
use kvs_core::index::{IndexLimits, PageToken, RangeQuery, Rebuilder, TimestampKind};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Some((&first, log)) = data.split_first() else {
        return;
    };
    let limits = IndexLimits { max_fragments: 1024 };
    let chunk = usize::from(first).max(1);
    let mut r = Rebuilder::new(limits);
    for piece in log.chunks(chunk) {
        r.push(piece);
    }
    let chunked = r.finish();
    let whole = Rebuilder::rebuild(log, limits);
    assert_eq!(chunked.records, whole.records);
    assert_eq!(chunked.valid_bytes, whole.valid_bytes);
    assert_eq!(chunked.defect, whole.defect);
    assert!(chunked.index.iter().eq(whole.index.iter()));
    assert!(whole.valid_bytes <= log.len() as u64);

    // The decoder alone reads at least the records the rebuild applied, and they re-encode to
    // the same bytes.
    let (records, _) = decode_records(log);
    assert!(records.len() as u64 >= whole.records);
    let mut again = Vec::new();
    for rec in records.iter().take(whole.records as usize) {
        match rec {
            Record::Fragment(f) => f.encode_record(&mut again),
            Record::Trim(c) => kvs_core::index::codec::encode_trim(*c, &mut again),
        }
    }
    assert_eq!(&again[..], &log[..whole.valid_bytes as usize]);

    for kind in [TimestampKind::Producer, TimestampKind::Server] {
        let q = RangeQuery { kind, start_ms: 0, end_ms: u64::MAX };
        let page = whole.index.list(q, 10);
        assert!(page.fragments.len() <= 10);
        if let Some(t) = page.next_token {
            let _ = whole.index.list_next(&PageToken::decode(&t.encode()).unwrap(), 10);
        }
    }
    let _ = PageToken::decode(&String::from_utf8_lossy(log));
});
