//! `kvs serve` as a process: the banner contract, and crash safety. The server is killed with
//! SIGKILL at random moments while several producers stream; after each restart every PERSISTED
//! fragment reads back intact, and every fragment served is complete.

#[path = "../../kvs-server/tests/common/mod.rs"]
mod common;

use std::collections::HashMap;
use std::io::{BufRead, BufReader};
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use bytes::Bytes;
use common::*;
use kvs_core::ack::AckEventType;
use kvs_core::api::*;

struct Running {
    child: Child,
    ep: Endpoint,
    banner: Vec<String>,
}

fn spawn_server(data: &std::path::Path) -> Running {
    let mut child = Command::new(env!("CARGO_BIN_EXE_kvs"))
        .args(["serve", "--port", "0", "--data-dir"])
        .arg(data)
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .spawn()
        .unwrap();
    let mut lines = BufReader::new(child.stdout.take().unwrap()).lines();
    let mut banner = Vec::new();
    let export = loop {
        let line = lines.next().expect("banner").unwrap();
        banner.push(line.clone());
        if line.starts_with("export ") {
            break line;
        }
    };
    let var = |name: &str| {
        export
            .split_whitespace()
            .find_map(|kv| kv.strip_prefix(&format!("{name}=")))
            .unwrap()
            .to_owned()
    };
    let url = var("AWS_ENDPOINT_URL");
    let ep = Endpoint {
        addr: url.trim_start_matches("http://").parse().unwrap(),
        access_key_id: var("AWS_ACCESS_KEY_ID"),
        secret: var("AWS_SECRET_ACCESS_KEY"),
        region: var("AWS_REGION"),
    };
    Running { child, ep, banner }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn banner_and_defaults() {
    let dir = temp_dir("banner");
    let mut s = spawn_server(&dir.join("data"));
    let export = s.banner.last().unwrap().clone();
    assert!(
        export.starts_with("export AWS_ENDPOINT_URL=http://127.0.0.1:"),
        "{export}"
    );
    for v in [
        "AWS_ACCESS_KEY_ID=",
        "AWS_SECRET_ACCESS_KEY=",
        "AWS_REGION=us-east-1",
    ] {
        assert!(export.contains(v), "{export}");
    }
    use std::os::unix::fs::PermissionsExt;
    let mode = std::fs::metadata(dir.join("data/credentials"))
        .unwrap()
        .permissions()
        .mode();
    assert_eq!(mode & 0o777, 0o600);
    // The generated pair works, and survives a restart.
    let req = ListStreamsRequest {
        max_results: None,
        next_token: None,
        stream_name_condition: None,
    };
    call(&s.ep, &req).await.unwrap();
    let key = s.ep.access_key_id.clone();
    s.child.kill().unwrap();
    s.child.wait().unwrap();
    let mut s = spawn_server(&dir.join("data"));
    assert_eq!(s.ep.access_key_id, key);
    s.child.kill().unwrap();
    s.child.wait().unwrap();
}

/// A tiny deterministic PRNG (xorshift).
struct Rng(u64);
impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0
    }
}

/// Streams fragments until the connection fails; returns (timecode → frame payloads) of every
/// fragment it sent whole, and the numbers of the PERSISTED ones with their timecodes.
/// Timestamps start at `start_ms`: each round gets its own stretch of the timeline, so a cluster
/// timecode names one fragment across every round.
async fn produce(
    ep: Endpoint,
    name: String,
    start_ms: u64,
) -> (HashMap<u64, Vec<Bytes>>, Vec<(String, u64)>) {
    let mut sent = HashMap::new();
    let mut persisted = Vec::new();
    let mut producer = Producer::new(start_ms, false);
    let mut pm = PutMedia::open(&ep, &absolute(&name)).await;
    if pm.status != 200 {
        return (sent, persisted);
    }
    if !pm.send(&producer.header()).await {
        return (sent, persisted);
    }
    for _ in 0..400 {
        let before = producer.sent_frames.len();
        let tc = (producer.next_ts_ns / 1_000_000) as u64;
        let frag = producer.fragment(8, 3000);
        let frames: Vec<Bytes> = producer.sent_frames[before..]
            .iter()
            .map(|f| f.data.clone())
            .collect();
        // Split in two chunks so a kill can land inside a fragment.
        let (a, b) = frag.split_at(frag.len() / 2);
        if !pm.send(a).await {
            break;
        }
        tokio::time::sleep(Duration::from_millis(2)).await;
        if !pm.send(b).await {
            break;
        }
        sent.insert(tc, frames);
        while let Ok(a) = pm.acks.try_recv() {
            if a.event_type == AckEventType::Persisted {
                persisted.push((
                    a.fragment_number.unwrap().as_str().to_owned(),
                    a.fragment_timecode.unwrap(),
                ));
            }
        }
        if *pm.ended.borrow() {
            break;
        }
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    // Drain what arrived before the connection died.
    while let Some(a) = pm.next_ack(1).await {
        if a.event_type == AckEventType::Persisted {
            persisted.push((
                a.fragment_number.unwrap().as_str().to_owned(),
                a.fragment_timecode.unwrap(),
            ));
        }
    }
    (sent, persisted)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kill_9_during_put_media_loses_nothing_persisted() {
    let dir = temp_dir("crash");
    let data = dir.join("data");
    let streams = ["c0", "c1", "c2"];
    let mut rng = Rng(now_ms() | 1);
    // Every fragment sent whole, per stream, keyed by cluster timecode.
    let mut sent: HashMap<&str, HashMap<u64, Vec<Bytes>>> = HashMap::new();
    let mut persisted: HashMap<&str, Vec<(String, u64)>> = HashMap::new();
    // Rounds use disjoint 10-minute stretches of the past (a round sends at most ~2 minutes).
    let timeline_start = now_ms() - 60_000 - 4 * 600_000;
    for round in 0..4 {
        let round_start = timeline_start + round * 600_000;
        let mut s = spawn_server(&data);
        if round == 0 {
            for name in streams {
                create_stream(&s.ep, name, 1).await;
            }
        }
        let tasks: Vec<_> = streams
            .iter()
            .map(|name| tokio::spawn(produce(s.ep.clone(), name.to_string(), round_start)))
            .collect();
        tokio::time::sleep(Duration::from_millis(300 + rng.next() % 700)).await;
        s.child.kill().unwrap(); // SIGKILL
        s.child.wait().unwrap();
        for (name, t) in streams.iter().zip(tasks) {
            let (snt, per) = t.await.unwrap();
            sent.entry(name).or_default().extend(snt);
            persisted.entry(name).or_default().extend(per);
        }
    }
    let total: usize = persisted.values().map(Vec::len).sum();
    eprintln!("PERSISTED fragments across rounds: {total}");
    assert!(
        total > 10,
        "too few PERSISTED fragments to prove anything: {total}"
    );
    let mut s = spawn_server(&data);
    for name in streams {
        let r = call_raw(
            &s.ep,
            &GetMediaRequest {
                stream_name: Some(name.into()),
                stream_arn: None,
                start_selector: StartSelector::new(StartSelectorType::Earliest),
            },
        )
        .await;
        assert_eq!(r.status(), 200);
        let d = decode(r.body());
        let served: HashMap<String, (u64, Vec<Bytes>)> = d
            .fragments
            .iter()
            .map(|(s, frames)| {
                (
                    s.metadata.fragment_number.clone().unwrap(),
                    (
                        s.cluster_timecode.unwrap(),
                        frames.iter().map(|f| f.data.clone()).collect(),
                    ),
                )
            })
            .collect();
        // No partial fragment: everything served is a fragment a producer sent whole.
        for (number, (tc, frames)) in &served {
            let expected = sent[name].get(tc).unwrap_or_else(|| {
                panic!("{name}: served fragment {number} (tc {tc}) never sent whole")
            });
            assert_eq!(frames, expected, "{name}: fragment {number} differs");
        }
        // Nothing PERSISTED is lost.
        for (number, tc) in &persisted[name] {
            let (got_tc, frames) = served
                .get(number)
                .unwrap_or_else(|| panic!("{name}: PERSISTED fragment {number} lost"));
            assert_eq!(got_tc, tc);
            assert_eq!(frames, &sent[name][tc]);
        }
    }
    s.child.kill().unwrap();
    s.child.wait().unwrap();
    let _ = std::fs::remove_dir_all(&dir);
}
