//! The EBML/Matroska invalid-file corpus (`shared/vectors/matroska-invalid`, from
//! ietf-wg-cellar/matroska-test-files `invalid_ebml`): one test per file, each stating what the
//! decoder does with the defect. Every defective file is `reference.mkv` (0.5 s FFV1 + FLAC, 18
//! frames) with one defect in its header area, so after the reported error or warning every file
//! still yields the reference's 18 frames: no file panics, hangs or stops the decoder.
//!
//! Policy: a typed error where the file breaks a rule the reader relies on (EBML header without a
//! usable DocType, read versions it does not implement, a malformed or unknown-size element
//! header); a warning where real muxers and readers (ffmpeg, mkvinfo) carry on and so can we
//! (CRC mismatch, out-of-range version values, unknown or repeated header elements). Values the
//! reader does not surface (Language, FlagLacing) are not validated.

mod support;

use std::path::{Path, PathBuf};
use std::process::Command;

use bytes::Bytes;
use kvs_core::mkv::reader::{DecodeError, Event, MkvReader, Warning, decode_all};
use support::have_tool;

fn corpus(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../../shared/vectors/matroska-invalid")
        .join(name)
}

/// The corpus directory: beside the checkout in CI (`../shared`), or the machine's `/work/shared`.
fn read(name: &str) -> Option<Vec<u8>> {
    for path in [
        corpus(name),
        Path::new("/work/shared/vectors/matroska-invalid").join(name),
    ] {
        if let Ok(data) = std::fs::read(&path) {
            return Some(data);
        }
    }
    if std::env::var("KVS_REQUIRE_TOOLS").as_deref() == Ok("1") {
        panic!("corpus file {name} not found");
    }
    eprintln!("corpus file {name} not found; skipping");
    None
}

struct Outcome {
    events: Vec<Result<Event, DecodeError>>,
}

impl Outcome {
    fn errors(&self) -> Vec<&DecodeError> {
        self.events
            .iter()
            .filter_map(|e| e.as_ref().err())
            .collect()
    }
    fn warnings(&self) -> Vec<&Warning> {
        self.events
            .iter()
            .filter_map(|e| match e {
                Ok(Event::Warning(w)) => Some(w),
                _ => None,
            })
            .collect()
    }
    fn frames(&self) -> usize {
        self.events
            .iter()
            .filter(|e| matches!(e, Ok(Event::Frame(_))))
            .count()
    }
    fn tracks(&self) -> usize {
        self.events
            .iter()
            .filter(|e| matches!(e, Ok(Event::Track(_))))
            .count()
    }
    fn header(&self) -> bool {
        self.events
            .iter()
            .any(|e| matches!(e, Ok(Event::EbmlHeader(_))))
    }
}

/// Decodes a corpus file whole and in 4093-byte chunks (both must agree), and checks that the
/// reference content (2 tracks, 18 frames) came through.
fn decode(name: &str) -> Option<Outcome> {
    let data = read(name)?;
    let events = decode_all(&data);
    let bytes = Bytes::from(data);
    let mut reader = MkvReader::new();
    let mut chunked = Vec::new();
    for start in (0..bytes.len()).step_by(4093) {
        reader
            .push(bytes.slice(start..(start + 4093).min(bytes.len())))
            .unwrap();
        chunked.extend(reader.events());
    }
    reader.finish();
    chunked.extend(reader.events());
    assert_eq!(chunked, events, "{name}: chunked decoding differs");
    let outcome = Outcome { events };
    assert_eq!(outcome.frames(), 18, "{name}: frames");
    assert_eq!(outcome.tracks(), 2, "{name}: tracks");
    Some(outcome)
}

/// Valid file: decodes with no error and no warning; 13 FFV1 + 5 FLAC frames, as ffprobe counts.
#[test]
fn reference() {
    let Some(o) = decode("reference.mkv") else {
        return;
    };
    assert!(o.errors().is_empty() && o.warnings().is_empty());
    assert!(o.header());
    let per_track = |t: u64| {
        o.events
            .iter()
            .filter(|e| matches!(e, Ok(Event::Frame(f)) if f.track == t))
            .count()
    };
    assert_eq!((per_track(1), per_track(2)), (13, 5));
}

/// Cross-check reference.mkv against `ffprobe -show_packets`: count, timestamps, sizes.
#[test]
fn reference_matches_ffprobe() {
    let Some(data) = read("reference.mkv") else {
        return;
    };
    if !have_tool("ffprobe") {
        return;
    }
    let path = corpus("reference.mkv");
    let path = if path.exists() {
        path
    } else {
        Path::new("/work/shared/vectors/matroska-invalid/reference.mkv").to_path_buf()
    };
    let out = Command::new("ffprobe")
        .args(["-v", "error", "-show_packets", "-of", "json"])
        .arg(&path)
        .output()
        .unwrap();
    assert!(out.status.success());
    let json: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    let packets = json["packets"].as_array().unwrap();
    let frames: Vec<_> = decode_all(&data)
        .into_iter()
        .filter_map(|e| match e {
            Ok(Event::Frame(f)) => Some(f),
            _ => None,
        })
        .collect();
    assert_eq!(frames.len(), packets.len());
    for (f, p) in frames.iter().zip(packets) {
        assert_eq!(f.track - 1, p["stream_index"].as_u64().unwrap());
        assert_eq!(
            f.data.len() as u64,
            p["size"].as_str().unwrap().parse::<u64>().unwrap()
        );
        assert_eq!(f.timestamp_ns / 1_000_000, p["pts"].as_i64().unwrap());
    }
}

fn is_header_error(e: &DecodeError, needle: &str) -> bool {
    matches!(e, DecodeError::InvalidHeader { offset: 0, reason } if reason.contains(needle))
}

/// Error: the mandatory DocType is missing, so the document type is unknown. The header is
/// dropped (no EbmlHeader event); the Segment is still read.
#[test]
fn no_doctype() {
    let Some(o) = decode("no_DocType.mkv") else {
        return;
    };
    assert!(matches!(o.errors()[..], [e] if is_header_error(e, "missing")));
    assert!(!o.header());
}

/// Error: an empty DocType names no document type.
#[test]
fn empty_doctype() {
    let Some(o) = decode("empty_DocType.mkv") else {
        return;
    };
    assert!(matches!(o.errors()[..], [e] if is_header_error(e, "empty")));
}

/// Error: DocTypeReadVersion 5 asks for a Matroska reader newer than version 4.
/// (That it also exceeds DocTypeVersion would only be a warning.)
#[test]
fn doctype_read_version_greater_than_doctype_version() {
    let Some(o) = decode("docTypeReadVersion_greaterthan_docTypeVersion.mkv") else {
        return;
    };
    assert!(matches!(o.errors()[..], [e] if is_header_error(e, "DocTypeReadVersion 5")));
}

/// Error: EBMLReadVersion 2 needs an EBML reader version this decoder does not implement.
#[test]
fn ebml_read_version_greater_than_ebml_version() {
    let Some(o) = decode("EBMLReadVersion_greaterthan_EBMLVersion.mkv") else {
        return;
    };
    assert!(matches!(o.errors()[..], [e] if is_header_error(e, "EBMLReadVersion 2")));
}

/// Warning: EBMLVersion 255 is undefined, but EBMLReadVersion (1) is what decides readability.
#[test]
fn currently_undefined_ebml_version() {
    let Some(o) = decode("currently_undefined_EBMLVersion.mkv") else {
        return;
    };
    assert!(o.errors().is_empty());
    assert!(matches!(
        o.warnings()[..],
        [Warning::HeaderValue {
            what: "EBMLVersion",
            value: 255,
            ..
        }]
    ));
    assert!(o.header());
}

/// Warning: DocTypeVersion 255 is undefined; DocTypeReadVersion (2) is readable.
#[test]
fn currently_undefined_doctype_version() {
    let Some(o) = decode("currently_undefined_DocTypeVersion.mkv") else {
        return;
    };
    assert!(o.errors().is_empty());
    assert!(matches!(
        o.warnings()[..],
        [Warning::HeaderValue {
            what: "DocTypeVersion",
            value: 255,
            ..
        }]
    ));
}

/// Tolerated silently: a Void at level 0 (between the EBML header and the Segment) is legal,
/// Void being a global element. The corpus's level_0_crc.mkv is byte-identical to
/// level_0_void.mkv (it holds a Void, not a CRC-32); a real level-0 CRC-32 gives
/// `Warning::CrcAtTopLevel` (see the unit below).
#[test]
fn level_0_void_and_crc() {
    for name in ["level_0_void.mkv", "level_0_crc.mkv"] {
        let Some(o) = decode(name) else { return };
        assert!(o.errors().is_empty() && o.warnings().is_empty(), "{name}");
    }
    // A real CRC-32 at level 0.
    let Some(mut data) = read("reference.mkv") else {
        return;
    };
    data.splice(47..47, [0xBF, 0x84, 0, 0, 0, 0]);
    let events = decode_all(&data);
    assert!(
        events
            .iter()
            .any(|e| matches!(e, Ok(Event::Warning(Warning::CrcAtTopLevel { offset: 47 }))))
    );
    assert!(events.iter().all(Result::is_ok));
}

/// Warning: DocTypeVersion twice; the first value is kept (maxOccurs 1).
#[test]
fn too_many_copies_of_doctype_version() {
    let Some(o) = decode("too_many_copies_of_DocTypeVersion.mkv") else {
        return;
    };
    assert!(o.errors().is_empty());
    assert!(matches!(
        o.warnings()[..],
        [Warning::DuplicateElement {
            id: 0x4287,
            offset: 43
        }]
    ));
}

/// Warning: DocTypeVersion twice with conflicting values (4, then 3); the first value is kept.
#[test]
fn too_many_copies_of_doctype_version_conflicting() {
    let Some(o) = decode("too_many_copies_of_DocTypeVersion_and_conflicting_values.mkv") else {
        return;
    };
    assert!(o.errors().is_empty());
    assert!(matches!(
        o.warnings()[..],
        [Warning::DuplicateElement { id: 0x4287, .. }]
    ));
    let version = o.events.iter().find_map(|e| match e {
        Ok(Event::EbmlHeader(h)) => Some(h.doc_type_version),
        _ => None,
    });
    assert_eq!(version, Some(4));
}

/// Tolerated silently: a 5-octet data size on DocType. Sizes wider than needed are legal EBML
/// (KVS producers write 8-octet sizes everywhere) and within EBMLMaxSizeLength 8.
#[test]
fn invalid_ebml_element_data_size_in_header() {
    let Some(o) = decode("invalid_EBML_ElementDataSize_in_EBMLHeader.mkv") else {
        return;
    };
    assert!(o.errors().is_empty() && o.warnings().is_empty());
    assert!(o.header());
}

/// Error: a 9-octet size (first byte 0x00) is not a variable-length integer. The EBML header
/// is dropped with a typed error at the size's offset; reading goes on with the Segment.
#[test]
fn really_invalid_ebml_element_data_size_in_header() {
    let Some(o) = decode("really_invalid_EBML_ElementDataSize_in_EBMLHeader.mkv") else {
        return;
    };
    assert!(matches!(
        o.errors()[..],
        [DecodeError::Vint { offset: 28, .. }]
    ));
    assert!(!o.header());
}

/// Warning: EBMLMaxIDLength 3 contradicts Matroska's 4; IDs are read up to 4 bytes regardless.
#[test]
fn invalid_ebml_max_id_length() {
    let Some(o) = decode("invalid_EBMLMaxIDLength.mkv") else {
        return;
    };
    assert!(o.errors().is_empty());
    assert!(matches!(
        o.warnings()[..],
        [Warning::HeaderValue { value: 3, .. }]
    ));
}

/// Warning: EBMLMaxSizeLength 9 exceeds Matroska's 8; sizes are read up to 8 bytes regardless.
#[test]
fn higher_ebml_max_size_length_than_matroska_allows() {
    let Some(o) = decode("higher_EBMLMaxSizeLength_than_matroska_allows.mkv") else {
        return;
    };
    assert!(o.errors().is_empty());
    assert!(matches!(
        o.warnings()[..],
        [Warning::HeaderValue { value: 9, .. }]
    ));
}

/// Warning then error: EBMLMaxSizeLength 4 while the Segment uses an 8-octet size (warned once
/// per document); the shortened Void then leaves the reader on zero bytes at 278, a typed error,
/// and it resynchronises on the Info element at 282 (mkvinfo does exactly the same).
#[test]
fn lower_ebml_max_size_length_than_elements_are_using() {
    let Some(o) = decode("lower_EBMLMaxSizeLength_than_elements_are_using.mkv") else {
        return;
    };
    assert!(matches!(
        o.errors()[..],
        [DecodeError::Vint { offset: 278, .. }]
    ));
    assert!(matches!(
        o.warnings()[..],
        [
            Warning::SizeWiderThanDeclared {
                offset: 47,
                width: 8,
                max: 4
            },
            Warning::Skipped {
                offset: 278,
                bytes: 4
            }
        ]
    ));
}

/// Warning: the EBMLVersion ID written non-minimally (0x200286) is a different, unknown ID; it is
/// skipped and EBMLVersion takes its default (1).
#[test]
fn inefficient_element_id() {
    let Some(o) = decode("inefficient_elementid.mkv") else {
        return;
    };
    assert!(o.errors().is_empty());
    assert!(matches!(
        o.warnings()[..],
        [Warning::UnknownHeaderElement {
            id: 0x20_0286,
            offset: 12
        }]
    ));
}

/// Warning: an unknown element (ID 0x81) in the EBML header is skipped.
#[test]
fn unknown_element() {
    let Some(o) = decode("unknown_element.mkv") else {
        return;
    };
    assert!(o.errors().is_empty());
    assert!(matches!(
        o.warnings()[..],
        [Warning::UnknownHeaderElement {
            id: 0x81,
            offset: 12
        }]
    ));
}

/// Error: DocType (a string, not a master) with an unknown size cannot be delimited. The header is
/// dropped; reading goes on with the Segment.
#[test]
fn unknown_sized_non_master_element() {
    let Some(o) = decode("unknown_sized_non_master_element.mkv") else {
        return;
    };
    assert!(matches!(
        o.errors()[..],
        [DecodeError::UnknownSizeNotAllowed {
            id: 0x4282,
            offset: 28
        }]
    ));
}

/// Warning: the EBML header's CRC-32 does not match. Tolerated, as ffmpeg and mkvinfo do: the
/// values are used and the mismatch reported. (The file's other CRC-32 elements verify.)
#[test]
fn crc_element_has_invalid_hash() {
    let Some(o) = decode("crc_element_has_invalid_hash.mkv") else {
        return;
    };
    assert!(o.errors().is_empty());
    assert!(matches!(
        o.warnings()[..],
        [Warning::CrcMismatch {
            parent: 0x1A45_DFA3,
            stored: 0xEDEF_CDAB,
            offset: 0,
            ..
        }]
    ));
}

/// Warning: a CRC-32 that is not its parent's first child is reported and not checked.
#[test]
fn crc_element_is_not_first() {
    let Some(o) = decode("crc_element_is_not_first.mkv") else {
        return;
    };
    assert!(o.errors().is_empty());
    assert!(matches!(
        o.warnings()[..],
        [Warning::CrcNotFirst { offset: 16 }]
    ));
}

/// Tolerated silently: the byte 0x19 is in the track's Language, which the reader does not
/// surface (TrackInfo has no language) and so does not validate.
#[test]
fn non_ascii_in_string_element() {
    let Some(o) = decode("non_ascii_in_string_element.mkv") else {
        return;
    };
    assert!(o.errors().is_empty() && o.warnings().is_empty());
}

/// Tolerated silently: FlagLacing holds a non-boolean value; the reader splits laced blocks by
/// their own lacing bits and never reads FlagLacing.
#[test]
fn invalid_boolean() {
    let Some(o) = decode("invalid_boolean.mkv") else {
        return;
    };
    assert!(o.errors().is_empty() && o.warnings().is_empty());
}

/// Warning: SegmentUID is 8 bytes instead of 16; it is passed on as written.
#[test]
fn element_outside_of_size_range() {
    let Some(o) = decode("element_outside_of_size_range.mkv") else {
        return;
    };
    assert!(o.errors().is_empty());
    assert!(matches!(
        o.warnings()[..],
        [Warning::OddValue { id: 0x73A4, .. }]
    ));
    let uid_len = o.events.iter().find_map(|e| match e {
        Ok(Event::Info(i)) => i.segment_uid.as_ref().map(Bytes::len),
        _ => None,
    });
    assert_eq!(uid_len, Some(8));
}
