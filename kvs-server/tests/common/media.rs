//! Media helpers shared by the playback tests: the bundled H.264 + AAC sample, split into
//! fragments and put with PutMedia; external tools found on PATH.

use std::path::{Path, PathBuf};

use bytes::BytesMut;
use kvs_core::client::Client;
use kvs_core::credentials::Credentials;
use kvs_core::mkv::reader::{Event, decode_all};
use kvs_core::mkv::writer::{StreamConfig, StreamWriter};
use kvs_core::mkv::{Frame, TrackInfo};

use super::{Endpoint, PutMedia, absolute, now_ms};

/// Whether missing external tools fail the test (`KVS_REQUIRE_TOOLS=1`).
pub fn required() -> bool {
    std::env::var("KVS_REQUIRE_TOOLS").is_ok_and(|v| v == "1")
}

/// Prints why a part is skipped; fails instead under `KVS_REQUIRE_TOOLS=1`.
pub fn skip(why: &str) {
    assert!(!required(), "{why} (KVS_REQUIRE_TOOLS=1)");
    eprintln!("skipping: {why}");
}

/// An executable on PATH.
pub fn find_tool(name: &str) -> Option<PathBuf> {
    let paths = std::env::var_os("PATH")?;
    std::env::split_paths(&paths)
        .map(|d| d.join(name))
        .find(|p| p.is_file())
}

/// The sample's tracks and frames, timestamps moved so the last frame is `ago_ms` ago.
pub fn sample_ending(ago_ms: u64) -> (Vec<TrackInfo>, Vec<Frame>) {
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("../examples/media/sample.mkv");
    let data = std::fs::read(path).unwrap();
    let mut tracks = Vec::new();
    let mut frames = Vec::new();
    for e in decode_all(&data) {
        match e.unwrap() {
            Event::Track(t) => tracks.push(*t),
            Event::Frame(f) => frames.push(f),
            _ => {}
        }
    }
    let last = frames.iter().map(|f| f.timestamp_ns).max().unwrap();
    let offset = (now_ms() - ago_ms) as i64 * 1_000_000 - last;
    for f in &mut frames {
        f.timestamp_ns += offset;
    }
    (tracks, frames)
}

/// Frames grouped into fragments, a new one at each video key frame.
pub fn split_at_key_frames(frames: &[Frame]) -> Vec<Vec<Frame>> {
    let mut out: Vec<Vec<Frame>> = Vec::new();
    for f in frames {
        if out.is_empty() || (f.track == 1 && f.keyframe) {
            out.push(Vec::new());
        }
        out.last_mut().unwrap().push(f.clone());
    }
    out
}

/// A PutMedia connection that sends whole fragments and waits for each one's PERSISTED ACK.
pub struct SamplePutter {
    writer: StreamWriter,
    pm: PutMedia,
}

impl SamplePutter {
    /// Opens PutMedia (absolute timecodes) on `name` and sends the header.
    pub async fn open(ep: &Endpoint, name: &str, tracks: &[TrackInfo]) -> SamplePutter {
        let writer = StreamWriter::new(StreamConfig::new([3u8; 16]), tracks.to_vec()).unwrap();
        let mut pm = PutMedia::open(ep, &absolute(name)).await;
        assert_eq!(pm.status, 200, "{}", pm.head);
        pm.send(&writer.header().clone()).await;
        SamplePutter { writer, pm }
    }

    /// Sends one fragment; its PERSISTED fragment number.
    pub async fn put(&mut self, frames: &[Frame]) -> String {
        let mut out = BytesMut::new();
        for f in frames {
            self.writer.encode_frame(f, &mut out).unwrap();
        }
        self.writer.end_fragment(&mut out).unwrap();
        self.pm.send(&out).await;
        let acks = self
            .pm
            .acks_until(|a| a.event_type == kvs_core::ack::AckEventType::Persisted)
            .await;
        let last = acks.last().expect("an ACK");
        assert_eq!(last.event_type, kvs_core::ack::AckEventType::Persisted);
        last.fragment_number.clone().unwrap().as_str().to_owned()
    }

    /// Ends the upload.
    pub async fn finish(mut self) {
        self.pm.finish().await;
    }
}

/// kvs-core's client for `server`, with its first key pair.
pub fn client_of(server: &kvs_server::Server) -> Client {
    let creds = server.credentials();
    Client::builder()
        .endpoint_url(server.base_url())
        .region(server.region())
        .credentials(Credentials::new(
            creds.access_key_id.clone(),
            creds.secret_access_key.clone(),
        ))
        .build()
        .unwrap()
}
