//! ACK parser and writer tests: every split of a recorded stream, malformed records, round trips
//! and the ErrorId table.

use kvs_core::ack::{
    AckError, AckEvent, AckEventType, AckParser, AckParserConfig, DEFAULT_MAX_LINE_LEN,
    ERROR_TABLE, ErrorId, parse_ack,
};
use kvs_core::fragment::FragmentNumber;
use proptest::prelude::*;

/// A realistic ACK stream: the reference's captured lines, then a session with every event kind,
/// IDLE keep-alives, CRLF and blank lines, an `Acknowledgement` wrapper, two objects on one line,
/// unknown keys, and a final ERROR.
const STREAM: &str = concat!(
    "{\"EventType\":\"BUFFERING\",\"FragmentTimecode\":1631530102146,\"FragmentNumber\":\"91343852333181714687576861120838395174634006751\"}\n",
    "{\"EventType\":\"RECEIVED\",\"FragmentTimecode\":1631530098173,\"FragmentNumber\":\"91343852333181714682625100963696872342906958423\"}\n",
    "{\"EventType\":\"IDLE\"}\n",
    "{\"EventType\":\"BUFFERING\",\"FragmentTimecode\":0,\"FragmentNumber\":\"91343852333181714687576861120838395174634006752\"}\r\n",
    "\r\n",
    "{\"EventType\":\"RECEIVED\",\"FragmentTimecode\":0,\"FragmentNumber\":\"91343852333181714687576861120838395174634006752\"}\n",
    "\n",
    "{\"EventType\":\"PERSISTED\",\"FragmentTimecode\":0,\"FragmentNumber\":\"91343852333181714687576861120838395174634006752\"}\n",
    "{ \"EventType\" : \"BUFFERING\" , \"FragmentTimecode\" : 2000 , \"FragmentNumber\" : \"91343852333181714687576861120838395174634006753\" }\n",
    "{\"Acknowledgement\":{\"EventType\":\"RECEIVED\",\"FragmentTimecode\":2000,\"FragmentNumber\":\"91343852333181714687576861120838395174634006753\"}}\n",
    "{\"EventType\":\"PERSISTED\",\"FragmentTimecode\":2000,\"FragmentNumber\":\"91343852333181714687576861120838395174634006753\"}{\"EventType\":\"IDLE\"}\n",
    "{\"EventType\":\"BUFFERING\",\"FragmentTimecode\":\"4000\",\"FragmentNumber\":\"91343852333181714687576861120838395174634006754\",\"Extra\":{\"a\":[1,2,{\"b\":null}],\"c\":\"}\\\"{\"}}\n",
    "{\"EventType\":\"ERROR\",\"FragmentTimecode\":4000,\"FragmentNumber\":\"91343852333181714687576861120838395174634006754\",\"ErrorId\":4004,\"ErrorCode\":\"FRAGMENT_TIMECODE_NOT_MONOTONIC\"}\n",
);

fn num(s: &str) -> FragmentNumber {
    s.parse().unwrap()
}

fn expected() -> Vec<AckEvent> {
    let n1 = num("91343852333181714687576861120838395174634006751");
    let n0 = num("91343852333181714682625100963696872342906958423");
    let n2 = num("91343852333181714687576861120838395174634006752");
    let n3 = num("91343852333181714687576861120838395174634006753");
    let n4 = num("91343852333181714687576861120838395174634006754");
    vec![
        AckEvent::buffering(1631530102146, n1),
        AckEvent::received(1631530098173, n0),
        AckEvent::idle(),
        AckEvent::buffering(0, n2.clone()),
        AckEvent::received(0, n2.clone()),
        AckEvent::persisted(0, n2),
        AckEvent::buffering(2000, n3.clone()),
        AckEvent::received(2000, n3.clone()),
        AckEvent::persisted(2000, n3),
        AckEvent::idle(),
        AckEvent::buffering(4000, n4.clone()),
        AckEvent::error(
            ErrorId::FRAGMENT_TIMECODE_NOT_MONOTONIC,
            Some(4000),
            Some(n4),
        ),
    ]
}

fn drain(parser: &mut AckParser) -> Vec<Result<AckEvent, AckError>> {
    std::iter::from_fn(|| parser.poll_event()).collect()
}

fn parse_chunks(chunks: &[&[u8]]) -> Vec<Result<AckEvent, AckError>> {
    let mut parser = AckParser::new();
    let mut out = Vec::new();
    for chunk in chunks {
        parser.push(chunk);
        out.extend(drain(&mut parser));
    }
    parser.finish();
    out.extend(drain(&mut parser));
    out
}

fn split_at_points(data: &[u8], mut points: Vec<usize>) -> Vec<&[u8]> {
    points.iter_mut().for_each(|p| *p %= data.len() + 1);
    points.sort_unstable();
    let mut chunks = Vec::new();
    let mut last = 0;
    for p in points {
        chunks.push(&data[last..p]);
        last = p;
    }
    chunks.push(&data[last..]);
    chunks
}

#[test]
fn recorded_stream_parses_in_one_push() {
    let got: Vec<AckEvent> = parse_chunks(&[STREAM.as_bytes()])
        .into_iter()
        .map(Result::unwrap)
        .collect();
    assert_eq!(got, expected());
}

#[test]
fn recorded_stream_byte_by_byte() {
    let bytes = STREAM.as_bytes();
    let chunks: Vec<&[u8]> = bytes.chunks(1).collect();
    let got: Vec<AckEvent> = parse_chunks(&chunks)
        .into_iter()
        .map(Result::unwrap)
        .collect();
    assert_eq!(got, expected());
}

#[test]
fn every_two_way_split_gives_the_same_events() {
    let bytes = STREAM.as_bytes();
    let whole = parse_chunks(&[bytes]);
    for cut in 0..=bytes.len() {
        assert_eq!(
            parse_chunks(&[&bytes[..cut], &bytes[cut..]]),
            whole,
            "cut at {cut}"
        );
    }
}

proptest! {
    #[test]
    fn any_split_gives_the_same_events(points in proptest::collection::vec(any::<usize>(), 0..40)) {
        let bytes = STREAM.as_bytes();
        let got = parse_chunks(&split_at_points(bytes, points));
        let want: Vec<Result<AckEvent, AckError>> = expected().into_iter().map(Ok).collect();
        prop_assert_eq!(got, want);
    }

    #[test]
    fn any_split_of_a_stream_with_errors_matches_one_push(
        points in proptest::collection::vec(any::<usize>(), 0..40),
    ) {
        let bytes = MALFORMED.as_bytes();
        let small = AckParserConfig { max_line_len: 200 };
        let run = |chunks: &[&[u8]]| {
            let mut p = AckParser::with_config(small);
            let mut out = Vec::new();
            for c in chunks {
                p.push(c);
                out.extend(drain(&mut p));
            }
            p.finish();
            out.extend(drain(&mut p));
            out
        };
        prop_assert_eq!(run(&split_at_points(bytes, points)), run(&[bytes]));
    }

    #[test]
    fn arbitrary_bytes_never_panic_and_split_invariant(
        data in proptest::collection::vec(prop_oneof![
            Just(b'{'), Just(b'}'), Just(b'"'), Just(b'\n'), Just(b'\\'), Just(b':'), Just(b','),
            any::<u8>()
        ], 0..300),
        points in proptest::collection::vec(any::<usize>(), 0..10),
    ) {
        let whole = parse_chunks(&[&data]);
        prop_assert_eq!(parse_chunks(&split_at_points(&data, points)), whole);
    }

    #[test]
    fn writer_parser_round_trip(
        kind in 0usize..5,
        tc in any::<u64>(),
        digits in "[1-9][0-9]{0,127}",
        code in any::<u32>(),
        with_fields in any::<bool>(),
    ) {
        let n: FragmentNumber = digits.parse().unwrap();
        let event = match AckEventType::ALL[kind] {
            AckEventType::Buffering => AckEvent::buffering(tc, n),
            AckEventType::Received => AckEvent::received(tc, n),
            AckEventType::Persisted => AckEvent::persisted(tc, n),
            AckEventType::Error if with_fields => AckEvent::error(ErrorId::from_code(code), Some(tc), Some(n)),
            AckEventType::Error => AckEvent::error(ErrorId::from_code(code), None, None),
            AckEventType::Idle => AckEvent::idle(),
        };
        let bytes = event.to_vec();
        prop_assert_eq!(parse_ack(&bytes).unwrap(), event.clone());
        let mut parser = AckParser::new();
        parser.push(&bytes);
        prop_assert_eq!(parser.poll_event(), Some(Ok(event)));
        prop_assert_eq!(parser.poll_event(), None);
    }
}

/// Lines that must each yield one typed error, followed by a valid line the parser must still read.
const MALFORMED: &str = concat!(
    "{\"EventType\":\"BUFFERING\",\"FragmentTimecode\":1,\"FragmentNumber\":\"1\"\n", // 0: no '}'
    "not json at all\n",                                                              // 1
    "{\"FragmentTimecode\":1,\"FragmentNumber\":\"1\"}\n", // 2: no EventType
    "{\"EventType\":\"SHIPPED\",\"FragmentTimecode\":1}\n", // 3: unknown type
    "{\"EventType\":\"ERROR\",\"FragmentTimecode\":1}\n",  // 4: ERROR, no ErrorId
    "{\"EventType\":\"IDLE\",\"EventType\":\"IDLE\"}\n",   // 5: duplicate key
    "{\"EventType\":\"RECEIVED\",\"FragmentTimecode\":-5}\n", // 6: negative
    "{\"EventType\":\"RECEIVED\",\"FragmentTimecode\":18446744073709551616}\n", // 7: > u64
    "{\"EventType\":\"RECEIVED\",\"FragmentNumber\":\"12a\"}\n", // 8: not digits
    "{\"EventType\":\"IDLE\",\"x\":[1,,2]}\n",             // 9: bad skipped value
    "{\"EventType\":\"IDLE\",\"FragmentTimecode\":1.5}\n", // 10: not an integer
    "{\"EventType\":\"IDLE\"}}\n",                         // 11: ok, then stray '}'
    "{\"EventType\":\"IDLE\",\"pad\":\"",
    "xxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxx\"} trailing {\"EventType\":\"IDLE\"}\n",
    "{\"EventType\":\"PERSISTED\",\"FragmentTimecode\":7,\"FragmentNumber\":\"7\"}\n",
);

#[test]
fn malformed_lines_give_typed_errors_and_parsing_continues() {
    let mut parser = AckParser::with_config(AckParserConfig { max_line_len: 200 });
    parser.push(MALFORMED.as_bytes());
    parser.finish();
    let got = drain(&mut parser);
    let line_start = |n: usize| -> u64 {
        MALFORMED
            .split_inclusive('\n')
            .take(n)
            .map(str::len)
            .sum::<usize>() as u64
    };
    let mut it = got.into_iter();
    let mut next_err = || it.next().unwrap().unwrap_err();

    let e = next_err();
    assert!(matches!(e, AckError::Syntax { .. }), "{e}");
    assert!(e.to_string().contains("missing '}'"), "{e}");
    assert_eq!(e.offset(), line_start(1) - 1);
    let e = next_err();
    assert_eq!(
        e,
        AckError::Syntax {
            offset: line_start(1),
            reason: "expected '{' at the start of an ACK"
        }
    );
    assert_eq!(
        next_err(),
        AckError::MissingEventType {
            offset: line_start(2)
        }
    );
    assert_eq!(
        next_err(),
        AckError::UnknownEventType {
            offset: line_start(3) + 13,
            value: "SHIPPED".into()
        }
    );
    assert_eq!(
        next_err(),
        AckError::MissingErrorId {
            offset: line_start(4)
        }
    );
    assert_eq!(
        next_err(),
        AckError::DuplicateKey {
            offset: line_start(5) + 32,
            key: "EventType"
        }
    );
    assert!(matches!(
        next_err(),
        AckError::InvalidValue {
            key: "FragmentTimecode",
            ..
        }
    ));
    let e = next_err();
    assert!(
        matches!(
            e,
            AckError::InvalidValue {
                key: "FragmentTimecode",
                reason: "does not fit in 64 bits",
                ..
            }
        ),
        "{e}"
    );
    assert!(matches!(
        next_err(),
        AckError::InvalidValue {
            key: "FragmentNumber",
            ..
        }
    ));
    assert!(matches!(next_err(), AckError::Syntax { .. }));
    assert!(matches!(
        next_err(),
        AckError::InvalidValue {
            key: "FragmentTimecode",
            ..
        }
    ));
    // Line 11: a valid IDLE, then the stray '}' forms its own malformed record.
    assert_eq!(it.next().unwrap().unwrap(), AckEvent::idle());
    let mut next_err = || it.next().unwrap().unwrap_err();
    assert!(matches!(next_err(), AckError::Syntax { .. }));
    // Line 12: overlong; the IDLE hidden at its end is skipped with it.
    assert_eq!(
        next_err(),
        AckError::LineTooLong {
            offset: line_start(12),
            limit: 200
        }
    );
    assert_eq!(
        it.next().unwrap().unwrap(),
        AckEvent::persisted(7, num("7"))
    );
    assert!(it.next().is_none());
}

#[test]
fn overlong_line_is_not_buffered() {
    let mut parser = AckParser::with_config(AckParserConfig { max_line_len: 64 });
    parser.push(b"{\"EventType\":\"IDLE\",\"pad\":\"");
    // Push 10 MB of padding in 1 KiB pieces: nothing is kept, one error is reported.
    let pad = [b'x'; 1024];
    for _ in 0..10 * 1024 {
        parser.push(&pad);
    }
    assert!(!parser.in_record());
    parser.push(b"\"}\n{\"EventType\":\"IDLE\"}\n");
    assert!(matches!(
        parser.poll_event(),
        Some(Err(AckError::LineTooLong {
            offset: 0,
            limit: 64
        }))
    ));
    assert_eq!(parser.poll_event(), Some(Ok(AckEvent::idle())));
    assert_eq!(parser.poll_event(), None);
    assert_eq!(DEFAULT_MAX_LINE_LEN, 4096);
}

#[test]
fn truncated_stream_is_reported_by_finish() {
    let mut parser = AckParser::new();
    parser.push(b"{\"EventType\":\"IDLE\"}\n  {\"EventType\":\"REC");
    assert_eq!(parser.poll_event(), Some(Ok(AckEvent::idle())));
    assert_eq!(parser.poll_event(), None);
    assert!(parser.in_record());
    parser.finish();
    assert_eq!(
        parser.poll_event(),
        Some(Err(AckError::Truncated { offset: 23 }))
    );
    assert_eq!(parser.bytes_pushed(), 40);
}

#[test]
fn escapes_and_quoted_numbers_are_accepted() {
    let e = parse_ack(
        br#"{"Event\u0054ype":"P\u0045RSISTED","FragmentTimecode":"12","FragmentNumber":12,"ErrorId":"5000"}"#,
    )
    .unwrap();
    assert_eq!(e.event_type, AckEventType::Persisted);
    assert_eq!(e.fragment_timecode, Some(12));
    assert_eq!(e.fragment_number, Some(num("12")));
    assert_eq!(e.error_id, Some(ErrorId::ACK_INTERNAL_ERROR));
    assert!(parse_ack(br#"{"EventType":"IDLE","s":"\ud83d\ude00"}"#).is_ok());
    assert!(matches!(
        parse_ack(br#"{"EventType":"IDLE","s":"\ud83d"}"#),
        Err(AckError::Syntax { .. })
    ));
    assert!(matches!(
        parse_ack(b"{\"EventType\":\"IDLE\",\"s\":\"a\tb\"}"),
        Err(AckError::Syntax { .. })
    ));
    let deep = format!(
        "{{\"EventType\":\"IDLE\",\"d\":{}{}}}",
        "[".repeat(40),
        "]".repeat(40)
    );
    assert!(matches!(
        parse_ack(deep.as_bytes()),
        Err(AckError::Syntax {
            reason: "values nested too deeply",
            ..
        })
    ));
}

#[test]
fn writer_emits_the_service_bytes() {
    let n = num("91343852333181714687576861120838395174634006751");
    assert_eq!(
        AckEvent::buffering(1631530102146, n.clone()).to_vec(),
        b"{\"EventType\":\"BUFFERING\",\"FragmentTimecode\":1631530102146,\"FragmentNumber\":\"91343852333181714687576861120838395174634006751\"}\n"
    );
    assert_eq!(AckEvent::idle().to_vec(), b"{\"EventType\":\"IDLE\"}\n");
    assert_eq!(
        AckEvent::error(ErrorId::FRAGMENT_TIMECODE_NOT_MONOTONIC, Some(0), Some(n)).to_vec(),
        b"{\"EventType\":\"ERROR\",\"FragmentTimecode\":0,\"FragmentNumber\":\"91343852333181714687576861120838395174634006751\",\"ErrorId\":4004}\n"
    );
    assert_eq!(
        AckEvent::error(ErrorId::from_code(u32::MAX), None, None).to_vec(),
        b"{\"EventType\":\"ERROR\",\"ErrorId\":4294967295}\n"
    );
    // Every event kind written and re-parsed, through one stream.
    let events: Vec<AckEvent> = expected();
    let mut wire = Vec::new();
    for e in &events {
        e.encode(&mut wire);
    }
    let got: Vec<AckEvent> = parse_chunks(&[&wire])
        .into_iter()
        .map(Result::unwrap)
        .collect();
    assert_eq!(got, events);
    assert_eq!(
        AckEvent::buffering(u64::MAX, num("1")).to_vec(),
        b"{\"EventType\":\"BUFFERING\",\"FragmentTimecode\":18446744073709551615,\"FragmentNumber\":\"1\"}\n"
    );
}

#[test]
fn error_id_table() {
    let names: Vec<(u32, &str, bool)> = ERROR_TABLE
        .iter()
        .map(|r| (r.code, r.name, r.retriable))
        .collect();
    assert_eq!(
        names,
        vec![
            (4000, "STREAM_READ_ERROR", true),
            (4001, "FRAGMENT_SIZE_REACHED", false),
            (4002, "FRAGMENT_DURATION_REACHED", false),
            (4003, "CONNECTION_DURATION_REACHED", true),
            (4004, "FRAGMENT_TIMECODE_NOT_MONOTONIC", false),
            (4005, "MULTI_TRACK_MKV", false),
            (4006, "INVALID_MKV_DATA", false),
            (4007, "INVALID_PRODUCER_TIMESTAMP", false),
            (4008, "STREAM_NOT_ACTIVE", false),
            (4009, "FRAGMENT_METADATA_LIMIT_REACHED", false),
            (4010, "TRACK_NUMBER_MISMATCH", false),
            (4011, "FRAMES_MISSING_FOR_TRACK", false),
            (4012, "MORE_THAN_ALLOWED_TRACKS_FOUND", false),
            (4500, "KMS_KEY_ACCESS_DENIED", false),
            (4501, "KMS_KEY_DISABLED", false),
            (4502, "KMS_KEY_VALIDATION_ERROR", false),
            (4503, "KMS_KEY_UNAVAILABLE", false),
            (4504, "KMS_KEY_INVALID_USAGE", false),
            (4505, "KMS_KEY_INVALID_STATE", false),
            (4506, "KMS_KEY_NOT_FOUND", false),
            (4507, "STREAM_DELETED", false),
            (5000, "ACK_INTERNAL_ERROR", true),
            (5001, "FRAGMENT_ARCHIVAL_ERROR", true),
        ]
    );
    for row in ERROR_TABLE {
        let id = ErrorId::from_code(row.code);
        assert!(id.is_known());
        assert_eq!(id.code(), row.code);
        assert_eq!(id.name(), row.name);
        assert_eq!(id.is_retriable(), row.retriable);
        assert!(!id.description().is_empty());
        assert!(id.to_string().starts_with(&row.code.to_string()));
    }
    let unknown = ErrorId::from_code(4242);
    assert!(!unknown.is_known());
    assert_eq!(unknown.code(), 4242);
    assert_eq!(unknown.name(), "UNKNOWN_ACK_ERROR");
    assert!(unknown.is_retriable());
    assert!(matches!(
        ErrorId::from(4001),
        ErrorId::FRAGMENT_SIZE_REACHED
    ));
    assert_eq!(ErrorId::KMS_KEY_NOT_FOUND.code(), 4506);
}
