//! In-memory stream registry: metadata (persisted as `streams.json`), the fragment index, the
//! producer headers, live-tail notification and connection counts.

use std::collections::{BTreeMap, HashMap, VecDeque};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};

use bytes::Bytes;
use kvs_core::api::{DefaultStorageTier, ResourceArn, StreamInfo, StreamStatus, Timestamp};
use kvs_core::mkv::getmedia::ProducerHeader;
use serde::{Deserialize, Serialize};
use tokio::sync::watch;

use crate::store::Location;

/// The KMS key DescribeStream reports when none was given.
pub fn default_kms_key(region: &str, account: &str) -> String {
    format!("arn:aws:kms:{region}:{account}:alias/aws/kinesisvideo")
}

/// Persisted metadata of one stream.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct StreamMeta {
    /// Name.
    pub name: String,
    /// Creation time, epoch ms (also the ARN suffix).
    pub creation_ms: u64,
    /// Version, rotated on every metadata change.
    pub version: String,
    /// Lifecycle status.
    pub status: String,
    /// Device name.
    pub device_name: Option<String>,
    /// Media type.
    pub media_type: Option<String>,
    /// KMS key.
    pub kms_key_id: String,
    /// Retention hours.
    pub retention_hours: i64,
    /// Tags.
    pub tags: BTreeMap<String, String>,
    /// Storage tier (`HOT`/`WARM`).
    pub storage_tier: String,
}

impl StreamMeta {
    /// The stream ARN.
    pub fn arn(&self, region: &str, account: &str) -> String {
        ResourceArn::stream(region, account, &self.name, self.creation_ms).to_string()
    }

    /// The status as the API enum.
    pub fn status(&self) -> StreamStatus {
        self.status.parse().unwrap_or(StreamStatus::Active)
    }

    /// The storage tier as the API enum.
    pub fn tier(&self) -> DefaultStorageTier {
        self.storage_tier.parse().unwrap_or(DefaultStorageTier::Hot)
    }

    /// `StreamInfo` for DescribeStream / ListStreams.
    pub fn info(&self, region: &str, account: &str) -> StreamInfo {
        StreamInfo {
            device_name: self.device_name.clone(),
            stream_name: self.name.clone(),
            stream_arn: self.arn(region, account),
            media_type: self.media_type.clone(),
            kms_key_id: Some(self.kms_key_id.clone()),
            version: self.version.clone(),
            status: self.status(),
            creation_time: Timestamp::from_millis(self.creation_ms),
            data_retention_in_hours: self.retention_hours,
        }
    }

    /// Directory name of the stream's data: creation millis first, so no name can form `..`.
    pub fn dir_name(&self) -> String {
        format!("{}-{}", self.creation_ms, self.name)
    }
}

/// One fragment in the index.
#[derive(Debug, Clone)]
pub struct FragmentEntry {
    /// Sequence number.
    pub seq: u64,
    /// Fragment number (47 digits).
    pub number: String,
    /// Server timestamp, ms.
    pub server_ms: u64,
    /// Producer timestamp, ms.
    pub producer_ms: u64,
    /// Duration, ms.
    pub duration_ms: u64,
    /// Raw cluster timecode.
    pub timecode: u64,
    /// Producer header id.
    pub header_id: u64,
    /// Fragment bytes length.
    pub size: u64,
    /// On disk, once persisted.
    pub location: Option<Location>,
    /// In memory (retention 0, or recent fragments).
    pub cache: Option<Bytes>,
}

/// Fragment data of one stream.
#[derive(Debug, Default)]
pub struct StreamData {
    /// Fragments in sequence order.
    pub fragments: VecDeque<FragmentEntry>,
    /// Producer headers by id.
    pub headers: HashMap<u64, Arc<ProducerHeader>>,
    /// Headers already durable on disk.
    pub durable_headers: std::collections::HashSet<u64>,
    /// Next sequence number.
    pub next_seq: u64,
    /// Next header id.
    pub next_header_id: u64,
    /// Last server timestamp handed out (server timestamps never go backwards).
    pub last_server_ms: u64,
    /// Bytes held in `cache` fields.
    pub cached_bytes: u64,
}

impl StreamData {
    /// Index of the first fragment with `seq > after`.
    pub fn position_after_seq(&self, after: u64) -> usize {
        self.fragments.partition_point(|f| f.seq <= after)
    }

    /// Index of the fragment with this sequence number.
    pub fn find_seq(&self, seq: u64) -> Option<usize> {
        let i = self.fragments.partition_point(|f| f.seq < seq);
        self.fragments.get(i).filter(|f| f.seq == seq).map(|_| i)
    }
}

/// One stream.
#[derive(Debug)]
pub struct Stream {
    /// Metadata.
    pub meta: Mutex<StreamMeta>,
    /// Fragments.
    pub data: Mutex<StreamData>,
    /// Data directory.
    pub dir: PathBuf,
    /// Latest published sequence number + 1 (0 = none); bumped on every new fragment.
    pub published: watch::Sender<u64>,
    /// Active PutMedia connection id (0 = none).
    pub producer: AtomicU64,
    /// Active GetMedia connections.
    pub consumers: AtomicUsize,
    /// Active GetMediaForFragmentList connections.
    pub list_consumers: AtomicUsize,
}

/// Locks a mutex, recovering from poisoning (a panicked holder leaves consistent data here).
pub fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|e| e.into_inner())
}

impl Stream {
    /// A stream with no fragments.
    pub fn new(meta: StreamMeta, data_root: &Path) -> Stream {
        let dir = data_root.join("streams").join(meta.dir_name());
        Stream {
            meta: Mutex::new(meta),
            data: Mutex::new(StreamData::default()),
            dir,
            published: watch::channel(0).0,
            producer: AtomicU64::new(0),
            consumers: AtomicUsize::new(0),
            list_consumers: AtomicUsize::new(0),
        }
    }

    /// Current status.
    pub fn status(&self) -> StreamStatus {
        lock(&self.meta).status()
    }

    /// Whether data operations may see the stream.
    pub fn is_readable(&self) -> bool {
        !matches!(self.status(), StreamStatus::Deleting)
    }

    /// Retention hours.
    pub fn retention_hours(&self) -> i64 {
        lock(&self.meta).retention_hours
    }

    /// Tells live readers that fragments up to `seq` are published.
    pub fn notify(&self, seq: u64) {
        self.published.send_replace(seq + 1);
    }
}

/// A counted connection slot, released on drop.
pub struct Slot<'a>(&'a AtomicUsize);

impl<'a> Slot<'a> {
    /// Takes a slot if fewer than `max` are taken.
    pub fn acquire(counter: &'a AtomicUsize, max: usize) -> Option<Slot<'a>> {
        let mut cur = counter.load(Ordering::SeqCst);
        loop {
            if cur >= max {
                return None;
            }
            match counter.compare_exchange(cur, cur + 1, Ordering::SeqCst, Ordering::SeqCst) {
                Ok(_) => return Some(Slot(counter)),
                Err(now) => cur = now,
            }
        }
    }
}

impl Drop for Slot<'_> {
    fn drop(&mut self) {
        self.0.fetch_sub(1, Ordering::SeqCst);
    }
}

/// The registry: streams by name.
#[derive(Debug, Default)]
pub struct Registry {
    /// Streams by name.
    pub streams: Mutex<BTreeMap<String, Arc<Stream>>>,
}

impl Registry {
    /// The stream named `name`.
    pub fn get(&self, name: &str) -> Option<Arc<Stream>> {
        lock(&self.streams).get(name).cloned()
    }

    /// Every stream's metadata, sorted by name.
    pub fn snapshot(&self) -> Vec<StreamMeta> {
        lock(&self.streams)
            .values()
            .map(|s| lock(&s.meta).clone())
            .collect()
    }
}

/// A fresh 20-character alphanumeric version.
pub fn new_version() -> String {
    const ALPHABET: &[u8] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789";
    let mut raw = [0u8; 20];
    crate::random_bytes(&mut raw);
    raw.iter()
        .map(|b| char::from(ALPHABET[usize::from(*b) % ALPHABET.len()]))
        .collect()
}
