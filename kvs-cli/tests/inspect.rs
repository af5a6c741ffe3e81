//! `kvs inspect` against the bundled sample and a GetMedia stream built from it, through the real
//! binary: the `--json` contract of design.md, standard input, and the exit status on bad input.

use std::io::Write;
use std::process::{Command, Output, Stdio};

use bytes::Bytes;
use kvs_core::fragment::FragmentNumber;
use kvs_core::mkv::getmedia::{FragmentDocument, ProducerHeader, Trailer};
use kvs_core::mkv::reader::{Event, decode_all};
use serde_json::Value;

fn sample() -> Vec<u8> {
    std::fs::read(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../examples/media/sample.mkv"
    ))
    .unwrap()
}

fn kvs(args: &[&str], stdin: Option<&[u8]>) -> Output {
    let mut child = Command::new(env!("CARGO_BIN_EXE_kvs"))
        .args(args)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut input = child.stdin.take().unwrap();
    if let Some(data) = stdin {
        input.write_all(data).unwrap();
    }
    drop(input);
    child.wait_with_output().unwrap()
}

fn records(out: &Output) -> Vec<Value> {
    String::from_utf8(out.stdout.clone())
        .unwrap()
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect()
}

/// The sample as the service would return it from GetMedia: one MKV document per fragment, with
/// the KVS leading and trailing tags.
fn getmedia_stream() -> (Vec<u8>, Vec<String>) {
    let stream = Bytes::from(sample());
    let mut clusters = Vec::new();
    for event in decode_all(&stream) {
        if let Event::FragmentEnd(f) = event.unwrap() {
            let start = f.offset as usize;
            clusters.push(stream.slice(start..start + f.bytes as usize));
        }
    }
    let first_cluster = stream.len() - clusters.iter().map(|c| c.len()).sum::<usize>() - 84;
    let header = ProducerHeader::parse(stream.slice(..first_cluster)).unwrap();
    let mut out = Vec::new();
    let mut numbers = Vec::new();
    for (i, cluster) in clusters.iter().enumerate() {
        let number = FragmentNumber::mint(i as u64 + 1, 1_767_225_700_123 + i as u64 * 2000, 99);
        let trailer = Trailer {
            millis_behind_now: 4000 - i as u64 * 1000,
            continuation_token: number.to_string(),
        };
        FragmentDocument {
            header: &header,
            fragment_number: number.as_str(),
            server_timestamp_ms: 1_767_225_700_123 + i as u64 * 2000,
            producer_timestamp_ms: 1_767_225_600_000 + i as u64 * 2000,
            cluster,
            trailer: Some(&trailer),
        }
        .write(&mut out)
        .unwrap();
        numbers.push(number.to_string());
    }
    (out, numbers)
}

#[test]
fn json_contract_on_the_bundled_sample() {
    let path = concat!(env!("CARGO_MANIFEST_DIR"), "/../examples/media/sample.mkv");
    let out = kvs(&["inspect", "--json", path], None);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let recs = records(&out);
    let kinds: Vec<&str> = recs.iter().map(|r| r["type"].as_str().unwrap()).collect();
    assert_eq!(
        kinds,
        [
            "track", "track", "fragment", "fragment", "fragment", "fragment", "fragment", "summary"
        ]
    );
    let video = &recs[0];
    assert_eq!(video["codec_id"], "V_MPEG4/ISO/AVC");
    assert_eq!(
        (video["width"].as_u64(), video["height"].as_u64()),
        (Some(320), Some(240))
    );
    assert_eq!(video["codec_private_len"], 40);
    assert_eq!(video["sampling_frequency"], Value::Null);
    let audio = &recs[1];
    assert_eq!(audio["sampling_frequency"], 16000.0);
    assert_eq!(audio["channels"], 1);
    for key in [
        "number",
        "uid",
        "codec_id",
        "name",
        "width",
        "height",
        "sampling_frequency",
        "channels",
        "codec_private_len",
    ] {
        assert!(video.get(key).is_some(), "track record lacks {key}");
    }
    let fragment = &recs[2];
    for key in [
        "index",
        "fragment_number",
        "server_timestamp",
        "producer_timestamp",
        "millis_behind_now",
        "continuation_token",
        "error_code",
        "error_id",
        "cluster_timecode",
        "frames",
        "keyframes",
        "frames_per_track",
        "tags",
        "bytes",
    ] {
        assert!(fragment.get(key).is_some(), "fragment record lacks {key}");
    }
    assert_eq!(fragment["cluster_timecode"], 1_767_225_600_000u64);
    assert_eq!(fragment["frames_per_track"]["1"], 50);
    assert_eq!(fragment["keyframes"], 1);
    assert_eq!(fragment["fragment_number"], Value::Null);
    let summary = recs.last().unwrap();
    assert_eq!(summary["documents"], 1);
    assert_eq!(summary["fragments"], 5);
    assert_eq!(summary["frames_per_track"]["1"], 250);
    assert_eq!(summary["frames_per_track"]["2"], 158);
    assert_eq!(summary["frames"], 408);
    assert_eq!(summary["errors"], Value::Array(vec![]));

    let human = kvs(&["inspect", path], None);
    assert!(human.status.success());
    let text = String::from_utf8(human.stdout).unwrap();
    assert!(text.contains("track 1: V_MPEG4/ISO/AVC"), "{text}");
    assert!(
        text.contains("1 documents, 5 fragments, 408 frames (5 key)"),
        "{text}"
    );
}

#[test]
fn getmedia_stream_from_stdin() {
    let (stream, numbers) = getmedia_stream();
    let out = kvs(&["inspect", "--json", "-"], Some(&stream));
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let recs = records(&out);
    // Tracks repeat in every document but are printed once.
    assert_eq!(recs.iter().filter(|r| r["type"] == "track").count(), 2);
    let fragments: Vec<&Value> = recs.iter().filter(|r| r["type"] == "fragment").collect();
    assert_eq!(fragments.len(), 5);
    for (i, f) in fragments.iter().enumerate() {
        assert_eq!(f["fragment_number"], numbers[i].as_str());
        assert_eq!(f["continuation_token"], numbers[i].as_str());
        assert_eq!(f["millis_behind_now"], 4000 - i as u64 * 1000);
        // Seconds with millisecond precision, as numbers.
        let server = f["server_timestamp"].as_f64().unwrap();
        assert!(
            (server - (1_767_225_700.123 + i as f64 * 2.0)).abs() < 1e-6,
            "{server}"
        );
        let text = serde_json::to_string(&f["producer_timestamp"]).unwrap();
        assert_eq!(text, format!("{}.0", 1_767_225_600 + i * 2));
    }
    let summary = recs.last().unwrap();
    assert_eq!(summary["documents"], 5);
    assert_eq!(summary["frames"], 408);
}

#[test]
fn truncated_stream_reports_complete_fragments_then_fails() {
    let (stream, _) = getmedia_stream();
    let cut = &stream[..stream.len() - 5000];
    let out = kvs(&["inspect", "--json", "-"], Some(cut));
    assert_eq!(out.status.code(), Some(1));
    let stderr = String::from_utf8(out.stderr.clone()).unwrap();
    assert_eq!(stderr.lines().count(), 1, "one line: {stderr}");
    assert!(stderr.contains("byte"), "names the offset: {stderr}");
    let recs = records(&out);
    let fragments = recs.iter().filter(|r| r["type"] == "fragment").count();
    assert_eq!(fragments, 5, "four complete fragments and the partial one");
    assert_eq!(recs.last().unwrap()["errors"].as_array().unwrap().len(), 1);
}

#[test]
fn bad_inputs_exit_1_with_one_line() {
    let garbage = kvs(&["inspect", "-"], Some(b"this is not matroska at all"));
    assert_eq!(garbage.status.code(), Some(1));
    let empty = kvs(&["inspect", "-"], Some(b""));
    assert_eq!(empty.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&empty.stderr).contains("empty"));
    let missing = kvs(&["inspect", "/nonexistent/file.mkv"], None);
    assert_eq!(missing.status.code(), Some(1));
    let stderr = String::from_utf8(missing.stderr).unwrap();
    assert!(
        stderr.starts_with("kvs: cannot open /nonexistent/file.mkv"),
        "{stderr}"
    );
    assert_eq!(stderr.lines().count(), 1);
}
