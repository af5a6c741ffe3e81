//! Encryption at rest against a real server on loopback: nothing recognisable is stored in the
//! clear; altered, swapped or moved records fail with an error tag and are never served as other
//! media (a damaged record head loses nothing after it); restarts need the right master key
//! file; KmsKeyId selects the key (ERROR 4506 for an unknown one); a data directory of the
//! earlier layout is refused.

mod common;

use std::collections::{BTreeMap, HashSet};
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};

use bytes::{Bytes, BytesMut};
use common::*;
use kvs_core::ack::{AckEventType, ErrorId};
use kvs_core::api::*;
use kvs_core::mkv::writer::{StreamConfig, StreamWriter};
use kvs_core::mkv::{Frame, TrackInfo, TrackType, codec};

const TRACK_NAME: &str = "TRACKNAME-lobby-cam-7";
const TAG_VALUE: &str = "TAGVALUE-owner-alice-secret-project-orion";
const TAG_VALUE_2: &str = "TAGVALUE2-added-by-tagstream-building-42";
const DEVICE_NAME: &str = "DEVICENAME-front-door-serial-889977";
const FRAGMENT_TAG: &str = "FRAGMENTTAG-plate-number-XYZ-12345";

/// Reads go to disk: no cache of recent fragments.
fn limits() -> kvs_server::Limits {
    kvs_server::Limits {
        cache_bytes: 0,
        ..fast_limits()
    }
}

/// A producer with a named track whose frames carry recognisable text.
struct TextProducer {
    writer: StreamWriter,
    ts_ns: i64,
    counter: usize,
}

impl TextProducer {
    fn new() -> Self {
        let mut track = TrackInfo::new(1, 1, TrackType::Video, codec::H264);
        track.name = Some(TRACK_NAME.into());
        TextProducer {
            writer: StreamWriter::new(StreamConfig::new([3u8; 16]), vec![track]).unwrap(),
            ts_ns: (now_ms() as i64 - 60_000) * 1_000_000,
            counter: 0,
        }
    }

    /// One fragment of 3 frames of `size` bytes, each a repetition of a line unique to the
    /// frame; returns its bytes and frame payloads.
    fn fragment(&mut self, text: &str, size: usize) -> (Bytes, Vec<Vec<u8>>) {
        let mut out = BytesMut::new();
        let mut frames = Vec::new();
        for i in 0..3 {
            self.counter += 1;
            let line = format!("{text}-frame-{:06}|", self.counter);
            let data: Vec<u8> = line.bytes().cycle().take(size).collect();
            let f = Frame::new(1, self.ts_ns, i == 0, data.clone());
            self.writer.encode_frame(&f, &mut out).unwrap();
            frames.push(data);
            self.ts_ns += 33_000_000;
        }
        self.writer.end_fragment(&mut out).unwrap();
        (out.freeze(), frames)
    }
}

/// Streams `fragments` (after the header, and `before` ahead of the first one) and waits for a
/// PERSISTED per fragment; returns their fragment numbers.
async fn put_persisted(
    ep: &Endpoint,
    name: &str,
    header: &Bytes,
    before: &[u8],
    fragments: &[Bytes],
) -> Vec<String> {
    let mut pm = PutMedia::open(ep, &absolute(name)).await;
    assert_eq!(pm.status, 200, "{}", pm.head);
    assert!(pm.send(header).await);
    assert!(pm.send(before).await);
    for f in fragments {
        assert!(pm.send(f).await);
    }
    pm.finish().await;
    let mut persisted = Vec::new();
    while persisted.len() < fragments.len() {
        let a = pm.next_ack(20).await.expect("an ACK");
        match a.event_type {
            AckEventType::Persisted => {
                persisted.push(a.fragment_number.unwrap().as_str().to_owned())
            }
            AckEventType::Error => panic!("error ACK {a:?}"),
            _ => {}
        }
    }
    persisted
}

async fn create(ep: &Endpoint, name: &str, kms: Option<&str>, tags: Option<(&str, &str)>) {
    let req = CreateStreamRequest {
        device_name: Some(DEVICE_NAME.into()),
        stream_name: name.into(),
        media_type: Some("video/h264".into()),
        kms_key_id: kms.map(str::to_owned),
        data_retention_in_hours: Some(24),
        tags: tags.map(|(k, v)| BTreeMap::from([(k.to_owned(), v.to_owned())])),
        stream_storage_configuration: None,
    };
    call(ep, &req).await.unwrap();
}

/// GetMediaForFragmentList of `numbers`: per document, (error id, frame payloads).
async fn read_list(
    ep: &Endpoint,
    name: &str,
    numbers: &[String],
) -> Vec<(Option<u64>, Vec<Vec<u8>>)> {
    let req = GetMediaForFragmentListRequest {
        stream_name: Some(name.into()),
        stream_arn: None,
        fragments: numbers.to_vec(),
    };
    let r = call_raw(ep, &req).await;
    assert_eq!(r.status(), 200);
    decode(r.body())
        .fragments
        .into_iter()
        .map(|(s, frames)| {
            (
                s.metadata.error_id,
                frames.into_iter().map(|f| f.data.to_vec()).collect(),
            )
        })
        .collect()
}

/// GetMedia EARLIEST: per document, (error id, frame payloads).
async fn read_earliest(ep: &Endpoint, name: &str) -> Vec<(Option<u64>, Vec<Vec<u8>>)> {
    let req = GetMediaRequest {
        stream_name: Some(name.into()),
        stream_arn: None,
        start_selector: StartSelector::new(StartSelectorType::Earliest),
    };
    let r = call_raw(ep, &req).await;
    assert_eq!(r.status(), 200);
    decode(r.body())
        .fragments
        .into_iter()
        .map(|(s, frames)| {
            (
                s.metadata.error_id,
                frames.into_iter().map(|f| f.data.to_vec()).collect(),
            )
        })
        .collect()
}

async fn list(ep: &Endpoint, name: &str) -> Vec<String> {
    let mut f = list_all_fragments(ep, name).await;
    f.sort_by_key(|f| f.server_timestamp.as_millis());
    f.into_iter().map(|f| f.fragment_number).collect()
}

/// Every file under `root`.
fn files(root: &Path) -> Vec<PathBuf> {
    let mut out = Vec::new();
    let mut todo = vec![root.to_owned()];
    while let Some(d) = todo.pop() {
        for e in std::fs::read_dir(&d).unwrap().flatten() {
            let p = e.path();
            if p.is_dir() {
                todo.push(p);
            } else {
                out.push(p);
            }
        }
    }
    out
}

/// Files under `root` holding any 16-byte window of `needle`.
fn files_containing(root: &Path, needle: &[u8]) -> Vec<PathBuf> {
    let windows: HashSet<&[u8]> = needle.windows(16).collect();
    files(root)
        .into_iter()
        .filter(|p| {
            let bytes = std::fs::read(p).unwrap();
            bytes.windows(16).any(|w| windows.contains(w))
        })
        .collect()
}

fn write_key_file(path: &Path, lines: &[(&str, [u8; 32])]) {
    let text: String = lines
        .iter()
        .map(|(id, k)| format!("{id} {}\n", hex::encode(k)))
        .collect();
    std::fs::write(path, format!("# test keys\n{text}")).unwrap();
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o600)).unwrap();
}

async fn bind_err(config: kvs_server::ServerConfig) -> String {
    match kvs_server::Server::bind(config).await {
        Ok(_) => panic!("the server started"),
        Err(e) => e.to_string(),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn nothing_recognisable_is_stored_in_the_clear() {
    let (server, dir) = start(limits()).await;
    let ep = Endpoint::of(&server);
    create(&ep, "secret-cam", None, Some(("owner", TAG_VALUE))).await;
    let tag = TagStreamRequest {
        stream_arn: None,
        stream_name: Some("secret-cam".into()),
        tags: BTreeMap::from([("site".to_owned(), TAG_VALUE_2.to_owned())]),
    };
    call(&ep, &tag).await.unwrap();
    let mut p = TextProducer::new();
    let header = p.writer.header().clone();
    let mut sent = Vec::new();
    let mut bytes = Vec::new();
    for i in 0..4 {
        let (b, frames) = p.fragment(&format!("PAYLOAD-confidential-footage-{i}"), 3000);
        bytes.push(b);
        sent.push(frames);
    }
    let fragment_tags = tags_el(&[("plate", FRAGMENT_TAG)]);
    let numbers = put_persisted(&ep, "secret-cam", &header, &fragment_tags, &bytes).await;
    assert_eq!(numbers.len(), 4);

    // The media reads back (from disk: no cache) and really carries the needles.
    let back = read_list(&ep, "secret-cam", &numbers).await;
    let frames: Vec<Vec<Vec<u8>>> = back.into_iter().map(|(_, f)| f).collect();
    assert_eq!(frames, sent);
    let data = dir.join("data");
    let raw_get = call_raw(
        &ep,
        &GetMediaForFragmentListRequest {
            stream_name: Some("secret-cam".into()),
            stream_arn: None,
            fragments: numbers.clone(),
        },
    )
    .await;
    let body = raw_get.body();
    for needle in [
        TRACK_NAME.as_bytes(),
        FRAGMENT_TAG.as_bytes(),
        &sent[0][0][..200],
    ] {
        assert!(body.windows(16).any(|w| needle.windows(16).any(|n| n == w)));
    }
    // The scanner finds what is there (a control file with a needle in it).
    let control = dir.join("control.bin");
    std::fs::write(&control, [&b"xx"[..], &sent[2][1][..40]].concat()).unwrap();
    assert_eq!(files_containing(&dir, &sent[2][1]), vec![control.clone()]);
    std::fs::remove_file(&control).unwrap();

    let mut needles: Vec<Vec<u8>> = vec![
        TRACK_NAME.into(),
        TAG_VALUE.into(),
        TAG_VALUE_2.into(),
        DEVICE_NAME.into(),
        FRAGMENT_TAG.into(),
    ];
    needles.extend(sent.iter().flatten().cloned());
    for needle in &needles {
        let found = files_containing(&data, needle);
        assert!(
            found.is_empty(),
            "{:?} is stored in the clear in {found:?}",
            String::from_utf8_lossy(&needle[..needle.len().min(40)])
        );
    }
    // The key file is owner-only; the format marker is there.
    let mode = std::fs::metadata(data.join("master-keys"))
        .unwrap()
        .permissions()
        .mode();
    assert_eq!(mode & 0o777, 0o600);
    assert_eq!(
        std::fs::read_to_string(data.join("FORMAT")).unwrap().trim(),
        "kvs-data 2"
    );
    server.shutdown().await;

    // The same holds after a restart (catalog and logs rewritten), which reads everything back.
    let (server, dir) = start_in(dir, limits()).await;
    let ep = Endpoint::of(&server);
    let back = read_list(&ep, "secret-cam", &numbers).await;
    let frames: Vec<Vec<Vec<u8>>> = back.into_iter().map(|(_, f)| f).collect();
    assert_eq!(frames, sent);
    let d = call(
        &ep,
        &DescribeStreamRequest {
            stream_name: Some("secret-cam".into()),
            stream_arn: None,
        },
    )
    .await
    .unwrap();
    assert_eq!(d.stream_info.device_name.as_deref(), Some(DEVICE_NAME));
    for needle in &needles {
        assert!(files_containing(&dir.join("data"), needle).is_empty());
    }
    server.shutdown().await;
    let _ = std::fs::remove_dir_all(&dir);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_altered_record_fails_with_an_error_and_loses_nothing_else() {
    let (server, dir) = start(limits()).await;
    let ep = Endpoint::of(&server);
    create(&ep, "tamper", None, None).await;
    let mut p = TextProducer::new();
    let header = p.writer.header().clone();
    let (bytes, sent): (Vec<Bytes>, Vec<Vec<Vec<u8>>>) =
        (0..5).map(|i| p.fragment(&format!("t{i}"), 2000)).unzip();
    let numbers = put_persisted(&ep, "tamper", &header, &[], &bytes).await;
    let seg = only_segment(&dir, "tamper");
    let recs = segment_records(&seg);
    assert_eq!(recs.len(), 5);

    // Flipped while running: reads go to disk.
    flip(&seg, recs[2].1.start + 100);
    let got = read_list(&ep, "tamper", &numbers).await;
    assert_eq!(got.len(), 5);
    for (i, (err, frames)) in got.iter().enumerate() {
        if i == 2 {
            assert_eq!(*err, Some(5000), "fragment {i}");
            assert!(frames.is_empty());
        } else {
            assert_eq!((*err, frames), (None, &sent[i]), "fragment {i}");
        }
    }
    // GetMedia ends at the altered fragment with the error tag.
    let live = read_earliest(&ep, "tamper").await;
    assert_eq!(live.len(), 3, "two fragments, then the error");
    assert_eq!(live[0], (None, sent[0].clone()));
    assert_eq!(live[1], (None, sent[1].clone()));
    assert_eq!(live[2], (Some(5000), vec![]));
    assert_eq!(list(&ep, "tamper").await, numbers);
    server.shutdown().await;

    // Flipped while stopped; the restart cuts nothing acknowledged.
    flip(&seg, recs[3].1.end - 5);
    let (server, dir) = start_in(dir, limits()).await;
    let ep = Endpoint::of(&server);
    assert_eq!(list(&ep, "tamper").await, numbers);
    let got = read_list(&ep, "tamper", &numbers).await;
    for (i, (err, frames)) in got.iter().enumerate() {
        if i == 2 || i == 3 {
            assert_eq!((*err, frames.len()), (Some(5000), 0), "fragment {i}");
        } else {
            assert_eq!((*err, frames), (None, &sent[i]), "fragment {i}");
        }
    }
    assert_eq!(segment_records(&seg).len(), 5);
    server.shutdown().await;
    let _ = std::fs::remove_dir_all(&dir);
}

/// A flipped byte in the head or the clear metadata of a record in the middle of a segment
/// (issue #9): the restart keeps every later record (nothing is cut), the fragment stays listed
/// (its index record is intact) and fails with the error tag, and a second restart gives the
/// same result.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_damaged_record_head_loses_nothing_after_it() {
    let (server, dir) = start(limits()).await;
    let ep = Endpoint::of(&server);
    create(&ep, "resync", None, None).await;
    let mut p = TextProducer::new();
    let header = p.writer.header().clone();
    let (bytes, sent): (Vec<Bytes>, Vec<Vec<Vec<u8>>>) =
        (0..5).map(|i| p.fragment(&format!("r{i}"), 2000)).unzip();
    let numbers = put_persisted(&ep, "resync", &header, &[], &bytes).await;
    server.shutdown().await;
    let seg = only_segment(&dir, "resync");
    let pristine = std::fs::read(&seg).unwrap();
    let recs = segment_records(&seg);
    assert_eq!(recs.len(), 5);
    // Fragment 2 (index 1): a byte of its head (the body length), then of its clear metadata.
    let mut dir = dir;
    for (what, at) in [("head", recs[1].0 + 10), ("metadata", recs[1].0 + 21 + 30)] {
        std::fs::write(&seg, &pristine).unwrap();
        flip(&seg, at);
        for round in 0..2 {
            let ctx = format!("{what}, restart {round}");
            let (server, d) = start_in(dir, limits()).await;
            dir = d;
            let ep = Endpoint::of(&server);
            assert_eq!(list(&ep, "resync").await, numbers, "{ctx}");
            let got = read_list(&ep, "resync", &numbers).await;
            assert_eq!(got.len(), 5, "{ctx}");
            for (i, (err, frames)) in got.iter().enumerate() {
                if i == 1 {
                    assert_eq!((*err, frames.len()), (Some(5000), 0), "{ctx}: fragment {i}");
                } else {
                    assert_eq!((*err, frames), (None, &sent[i]), "{ctx}: fragment {i}");
                }
            }
            // GetMedia serves fragment 1, then ends with the error tag at fragment 2.
            let live = read_earliest(&ep, "resync").await;
            assert_eq!(live.len(), 2, "{ctx}");
            assert_eq!(live[0], (None, sent[0].clone()), "{ctx}");
            assert_eq!(live[1], (Some(5000), vec![]), "{ctx}");
            server.shutdown().await;
            // Nothing was cut or rewritten.
            assert_eq!(std::fs::read(&seg).unwrap().len(), pristine.len(), "{ctx}");
        }
    }
    let _ = std::fs::remove_dir_all(&dir);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn swapped_records_fail_and_never_serve_other_media() {
    let (server, dir) = start(limits()).await;
    let ep = Endpoint::of(&server);
    let mut sent = BTreeMap::new();
    let mut numbers = BTreeMap::new();
    for name in ["cam-a", "cam-b"] {
        create(&ep, name, None, None).await;
        let mut p = TextProducer::new();
        let header = p.writer.header().clone();
        let (bytes, frames): (Vec<Bytes>, Vec<Vec<Vec<u8>>>) = (0..5)
            .map(|i| p.fragment(&format!("{name}-{i}"), 2000))
            .unzip();
        numbers.insert(name, put_persisted(&ep, name, &header, &[], &bytes).await);
        sent.insert(name, frames);
    }
    let (seg_a, seg_b) = (only_segment(&dir, "cam-a"), only_segment(&dir, "cam-b"));
    let (ra, rb) = (segment_records(&seg_a), segment_records(&seg_b));
    assert_eq!(ra, rb, "same sizes, same layout");
    let (mut a, mut b) = (
        std::fs::read(&seg_a).unwrap(),
        std::fs::read(&seg_b).unwrap(),
    );
    // Record 1 (head, metadata, body) swapped between the streams.
    let r1 = ra[1].0..ra[1].1.end;
    let tmp = a[r1.clone()].to_vec();
    a[r1.clone()].copy_from_slice(&b[r1.clone()]);
    b[r1.clone()].copy_from_slice(&tmp);
    // Bodies of records 2 and 3 of cam-a swapped (positions within the stream).
    let (b2, b3) = (ra[2].1.clone(), ra[3].1.clone());
    assert_eq!(b2.len(), b3.len());
    let body2 = a[b2.clone()].to_vec();
    a.copy_within(b3.clone(), b2.start);
    a[b3.clone()].copy_from_slice(&body2);
    std::fs::write(&seg_a, &a).unwrap();
    std::fs::write(&seg_b, &b).unwrap();

    for name in ["cam-a", "cam-b"] {
        let got = read_list(&ep, name, &numbers[name]).await;
        for (i, (err, frames)) in got.iter().enumerate() {
            let moved = i == 1 || (name == "cam-a" && (i == 2 || i == 3));
            if moved {
                assert_eq!((*err, frames.len()), (Some(5000), 0), "{name} {i}");
            } else {
                assert_eq!((*err, frames), (None, &sent[name][i]), "{name} {i}");
            }
        }
    }
    server.shutdown().await;

    // After a restart: whatever is listed reads as its own stream's media or fails.
    let (server, dir) = start_in(dir, limits()).await;
    let ep = Endpoint::of(&server);
    for name in ["cam-a", "cam-b"] {
        let listed = list(&ep, name).await;
        let got = read_list(&ep, name, &listed).await;
        let mut errors = 0;
        for (err, frames) in &got {
            match err {
                Some(id) => {
                    assert_eq!(*id, 5000);
                    errors += 1;
                }
                None => assert!(sent[name].contains(frames), "{name}: other media served"),
            }
        }
        // cam-a's swapped bodies keep their own metadata: listed, and failing. (The record from
        // the other stream may drop out of the rebuilt index: its timestamps are not in order.)
        if name == "cam-a" {
            assert!(errors >= 2, "{name}: {errors} errors");
        }
        // The intact ones are still there (cam-a: 0 and 4; cam-b: at least three of its own).
        assert!(
            got.len() - errors >= 2,
            "{name}: {} read",
            got.len() - errors
        );
    }
    server.shutdown().await;
    let _ = std::fs::remove_dir_all(&dir);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn restarts_need_the_master_key_file_of_the_data() {
    let dir = temp_dir("enc-keys");
    let keys = dir.join("keys");
    write_key_file(
        &keys,
        &[
            ("alias/aws/kinesisvideo", [1; 32]),
            ("alias/extra", [2; 32]),
        ],
    );
    let mut config = config_in(&dir, limits());
    config.master_key_file = Some(keys.clone());
    let server = kvs_server::Server::bind(config.clone()).await.unwrap();
    let ep = Endpoint::of(&server);
    create(&ep, "default-key", None, None).await;
    create(&ep, "extra-key", Some("alias/extra"), None).await;
    let mut sent = BTreeMap::new();
    let mut numbers = BTreeMap::new();
    for name in ["default-key", "extra-key"] {
        let mut p = TextProducer::new();
        let header = p.writer.header().clone();
        let (bytes, frames): (Vec<Bytes>, Vec<Vec<Vec<u8>>>) = (0..3)
            .map(|i| p.fragment(&format!("{name}{i}"), 1000))
            .unzip();
        numbers.insert(name, put_persisted(&ep, name, &header, &[], &bytes).await);
        sent.insert(name, frames);
    }
    // No key file was created in the data directory: the given one is used.
    assert!(!dir.join("data/master-keys").exists());
    server.shutdown().await;

    // The same key file: everything reads back byte for byte.
    let server = kvs_server::Server::bind(config.clone()).await.unwrap();
    let ep = Endpoint::of(&server);
    for name in ["default-key", "extra-key"] {
        let live = read_earliest(&ep, name).await;
        let frames: Vec<Vec<Vec<u8>>> = live.into_iter().map(|(_, f)| f).collect();
        assert_eq!(frames, sent[name]);
    }
    server.shutdown().await;

    // Another key file: refused, saying so.
    let other = dir.join("other-keys");
    write_key_file(
        &other,
        &[
            ("alias/aws/kinesisvideo", [9; 32]),
            ("alias/extra", [2; 32]),
        ],
    );
    let mut wrong = config.clone();
    wrong.master_key_file = Some(other.clone());
    let e = bind_err(wrong).await;
    assert!(e.contains("does not open this data directory"), "{e}");

    // A key id missing from the file: refused, naming it.
    let missing = dir.join("missing-keys");
    write_key_file(&missing, &[("alias/aws/kinesisvideo", [1; 32])]);
    let mut lacking = config.clone();
    lacking.master_key_file = Some(missing);
    let e = bind_err(lacking).await;
    assert!(e.contains("alias/extra") && e.contains("extra-key"), "{e}");

    // A key file others may read: refused.
    std::fs::set_permissions(&keys, std::fs::Permissions::from_mode(0o644)).unwrap();
    let e = bind_err(config.clone()).await;
    assert!(e.contains("chmod 600"), "{e}");
    std::fs::set_permissions(&keys, std::fs::Permissions::from_mode(0o600)).unwrap();

    // And still fine with the right one.
    let server = kvs_server::Server::bind(config.clone()).await.unwrap();
    let ep = Endpoint::of(&server);
    let got = read_list(&ep, "extra-key", &numbers["extra-key"]).await;
    assert!(got.iter().all(|(e, _)| e.is_none()));
    server.shutdown().await;

    // A stream's data key lost while its media is stored: refused, naming the file (a key minted
    // at the next PutMedia would split the stream across two keys).
    let stream_dir = stream_dir_path(&dir, "extra-key").unwrap();
    let data_key = stream_dir.join("data-key");
    let saved = std::fs::read(&data_key).unwrap();
    std::fs::remove_file(&data_key).unwrap();
    let e = bind_err(config.clone()).await;
    assert!(e.contains("data-key") && e.contains("extra-key"), "{e}");
    std::fs::write(&data_key, saved).unwrap();
    let server = kvs_server::Server::bind(config).await.unwrap();
    let ep = Endpoint::of(&server);
    let got = read_list(&ep, "extra-key", &numbers["extra-key"]).await;
    assert!(got.iter().all(|(e, _)| e.is_none()));
    server.shutdown().await;
    let _ = std::fs::remove_dir_all(&dir);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kms_key_id_selects_the_master_key() {
    let dir = temp_dir("enc-kms");
    let keys = dir.join("keys");
    let uuid = "1234abcd-12ab-34cd-56ef-1234567890ab";
    let key_id = format!("key/{uuid}");
    write_key_file(
        &keys,
        &[
            ("alias/aws/kinesisvideo", [1; 32]),
            ("alias/cams", [2; 32]),
            (&key_id, [3; 32]),
        ],
    );
    let mut config = config_in(&dir, limits());
    config.master_key_file = Some(keys);
    let server = kvs_server::Server::bind(config).await.unwrap();
    let ep = Endpoint::of(&server);
    let streams = [
        ("by-alias", "alias/cams".to_owned(), "alias/cams"),
        (
            "by-alias-arn",
            "arn:aws:kms:us-east-1:000000000000:alias/cams".to_owned(),
            "alias/cams",
        ),
        (
            "by-key-arn",
            format!("arn:aws:kms:us-east-1:000000000000:{key_id}"),
            key_id.as_str(),
        ),
        ("by-key-id", uuid.to_owned(), key_id.as_str()),
    ];
    for (name, kms, master) in &streams {
        create(&ep, name, Some(kms), None).await;
        let d = call(
            &ep,
            &DescribeStreamRequest {
                stream_name: Some((*name).into()),
                stream_arn: None,
            },
        )
        .await
        .unwrap();
        assert_eq!(d.stream_info.kms_key_id.as_deref(), Some(kms.as_str()));
        let mut p = TextProducer::new();
        let header = p.writer.header().clone();
        let (bytes, frames): (Vec<Bytes>, Vec<Vec<Vec<u8>>>) = (0..2)
            .map(|i| p.fragment(&format!("{name}{i}"), 800))
            .unzip();
        let numbers = put_persisted(&ep, name, &header, &[], &bytes).await;
        let got = read_list(&ep, name, &numbers).await;
        assert_eq!(
            got.into_iter().map(|(_, f)| f).collect::<Vec<_>>(),
            frames,
            "{name}"
        );
        let wrapped = std::fs::read_to_string(stream_dir(&dir, name).join("data-key")).unwrap();
        assert!(wrapped.contains(&format!("master {master}\n")), "{wrapped}");
    }

    // An unknown key: CreateStream succeeds, DescribeStream shows it, PutMedia fails with 4506.
    create(&ep, "no-such-key", Some("alias/nope"), None).await;
    let d = call(
        &ep,
        &DescribeStreamRequest {
            stream_name: Some("no-such-key".into()),
            stream_arn: None,
        },
    )
    .await
    .unwrap();
    assert_eq!(d.stream_info.kms_key_id.as_deref(), Some("alias/nope"));
    let mut p = TextProducer::new();
    let mut pm = PutMedia::open(&ep, &absolute("no-such-key")).await;
    assert_eq!(pm.status, 200);
    assert!(pm.send(p.writer.header()).await);
    assert!(pm.send(&p.fragment("x", 500).0).await);
    let acks = pm.acks_until(|a| a.event_type == AckEventType::Error).await;
    let err = acks.last().unwrap();
    assert_eq!(err.event_type, AckEventType::Error, "{acks:?}");
    assert_eq!(err.error_id, Some(ErrorId::KMS_KEY_NOT_FOUND));
    assert!(err.fragment_number.is_some() && err.fragment_timecode.is_some());
    assert!(!acks.iter().any(|a| a.event_type == AckEventType::Persisted));
    assert!(list(&ep, "no-such-key").await.is_empty());
    server.shutdown().await;
    let _ = std::fs::remove_dir_all(&dir);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn data_directories_of_other_formats_are_refused() {
    // The earlier, unencrypted layout.
    let dir = temp_dir("enc-old");
    std::fs::create_dir_all(dir.join("data/streams/1-abc")).unwrap();
    std::fs::write(dir.join("data/streams.json"), "[]").unwrap();
    let e = bind_err(config_in(&dir, limits())).await;
    assert!(
        e.contains("earlier kvs layout") && e.contains("move it away"),
        "{e}"
    );
    // Nothing was written into it.
    assert!(!dir.join("data/FORMAT").exists());
    assert!(!dir.join("data/master-keys").exists());
    // A newer format.
    let newer = temp_dir("enc-newer");
    std::fs::create_dir_all(newer.join("data")).unwrap();
    std::fs::write(newer.join("data/FORMAT"), "kvs-data 3\n").unwrap();
    let e = bind_err(config_in(&newer, limits())).await;
    assert!(e.contains("newer kvs"), "{e}");
    let _ = std::fs::remove_dir_all(&dir);
    let _ = std::fs::remove_dir_all(&newer);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_streams_directory_is_owner_only_even_when_it_existed() {
    let dir = temp_dir("streams-mode");
    let streams = dir.join("data/streams");
    std::fs::create_dir_all(&streams).unwrap();
    std::fs::set_permissions(&streams, std::fs::Permissions::from_mode(0o755)).unwrap();
    let server = kvs_server::Server::bind(config_in(&dir, limits()))
        .await
        .unwrap();
    let mode = std::fs::metadata(&streams).unwrap().permissions().mode() & 0o777;
    assert_eq!(mode, 0o700, "{mode:o}");
    server.shutdown().await;
    let _ = std::fs::remove_dir_all(&dir);
}
