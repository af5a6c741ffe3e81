//! In-memory stream registry: metadata (persisted sealed in the catalog, see [`crate::keys`]),
//! the fragment index, the producer headers, the stream's data key, live-tail notification and
//! connection counts.

use std::collections::{BTreeMap, BTreeSet, HashMap, VecDeque};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};

use bytes::Bytes;
use kvs_core::api::{DefaultStorageTier, ResourceArn, StreamInfo, StreamStatus, Timestamp};
use kvs_core::index::{Fragment, FragmentIndex};
use kvs_core::mkv::getmedia::ProducerHeader;
use serde::{Deserialize, Serialize};
use tokio::sync::watch;

use crate::keys::{KeyError, Vault};
use crate::seal::{DataKey, stream_identity};

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
    pub status: StreamStatus,
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
        self.status
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

    /// Directory name of the stream's data: creation millis and a short hash of the name (names
    /// of up to 256 characters would overflow the 255-byte file name limit; the name itself is
    /// in the metadata file).
    pub fn dir_name(&self) -> String {
        let hash = kvs_core::sigv4::canonical::sha256_hex(self.name.as_bytes());
        format!(
            "{}-{}",
            self.creation_ms,
            hash.get(..16).unwrap_or_default()
        )
    }
}

/// Where a [`PendingFragment`] is on its way into the [`FragmentIndex`].
pub enum PendingState {
    /// Reserved when its cluster opened: not readable yet, and every later fragment waits for
    /// it (fragments enter the index in sequence order even when two connections of a rotating
    /// producer overlap).
    Open,
    /// Complete and readable from the cache. `Some` holds the job that hands it to the writer
    /// (retention > 0); `None` means it enters the index directly (retention 0).
    Ready(Option<Box<dyn FnOnce() + Send>>),
    /// Handed to the writer; entered into the index when the write completes.
    Submitted,
}

impl std::fmt::Debug for PendingState {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            PendingState::Open => "Open",
            PendingState::Ready(Some(_)) => "Ready(write)",
            PendingState::Ready(None) => "Ready(memory)",
            PendingState::Submitted => "Submitted",
        })
    }
}

/// A fragment not yet in the index: open, complete, or being written.
#[derive(Debug)]
pub struct PendingFragment {
    /// The index entry (its `location` is set when the write completes).
    pub fragment: Fragment,
    /// Its progress.
    pub state: PendingState,
}

/// Fragment data of one stream.
///
/// Per fragment only the kvs-core [`FragmentIndex`] entry is kept
/// ([`FragmentIndex::BYTES_PER_FRAGMENT`] bytes). Everything else is per producer connection
/// (`header_runs`), per segment file (`segments`), or bounded by bytes (`cache`).
#[derive(Debug, Default)]
pub struct StreamData {
    /// The durable (or, at retention 0, buffered) fragments. `Fragment::location` is the offset
    /// of the fragment bytes in its segment file ([`NOT_ON_DISK`] at retention 0).
    pub index: FragmentIndex,
    /// Received, not yet durable fragments in sequence order.
    pub pending: VecDeque<PendingFragment>,
    /// Recent fragment bytes by sequence (all of them at retention 0), oldest first.
    pub cache: VecDeque<(u64, Bytes)>,
    /// Bytes held in `cache`.
    pub cached_bytes: u64,
    /// Producer header id by the first sequence that uses it.
    pub header_runs: BTreeMap<u64, u64>,
    /// Producer headers by id.
    pub headers: HashMap<u64, Arc<ProducerHeader>>,
    /// Headers durable on disk (marked when their write completed successfully).
    pub durable_headers: std::collections::HashSet<u64>,
    /// Headers handed to the writer and not failed (a failed one is written again by the next
    /// fragment that needs it; the writer fails fragments whose header failed).
    pub submitted_headers: std::collections::HashSet<u64>,
    /// Segment files on disk, by id (the sequence of the first fragment stored in each).
    pub segments: BTreeSet<u64>,
    /// Next sequence number.
    pub next_seq: u64,
    /// Next header id.
    pub next_header_id: u64,
    /// Last server timestamp handed out (server timestamps never go backwards).
    pub last_server_ms: u64,
}

/// `Fragment::location` of a fragment that lives only in memory.
pub const NOT_ON_DISK: u64 = u64::MAX;

impl StreamData {
    /// The first readable fragment (indexed or pending) whose sequence is `>= seq`; `None`
    /// while the next one is still open (readers never skip a fragment that is on its way).
    pub fn next_from(&self, seq: u64) -> Option<Fragment> {
        let indexed = self.index.iter_from_sequence(seq).next().copied();
        let i = self.pending.partition_point(|p| p.fragment.sequence < seq);
        let pending = self
            .pending
            .get(i)
            .filter(|p| !matches!(p.state, PendingState::Open))
            .map(|p| p.fragment);
        match (indexed, pending) {
            (Some(a), Some(b)) => Some(if a.sequence <= b.sequence { a } else { b }),
            (a, b) => a.or(b),
        }
    }

    /// The position of pending fragment `seq`.
    pub fn pending_position(&self, seq: u64) -> Option<usize> {
        let i = self.pending.partition_point(|p| p.fragment.sequence < seq);
        self.pending
            .get(i)
            .is_some_and(|p| p.fragment.sequence == seq)
            .then_some(i)
    }

    /// Moves complete fragments along in sequence order: hands ready ones to the writer, and
    /// enters ready in-memory ones into the index once nothing before them is pending. Stops at
    /// the first open fragment. Returns whether anything became readable in the index.
    pub fn flush_pending(&mut self) -> bool {
        let mut indexed = false;
        let mut i = 0;
        while let Some(p) = self.pending.get_mut(i) {
            match &mut p.state {
                PendingState::Open => break,
                PendingState::Submitted => i += 1,
                PendingState::Ready(job) => match job.take() {
                    Some(job) => {
                        p.state = PendingState::Submitted;
                        job();
                        i += 1;
                    }
                    None if i == 0 => {
                        if let Some(p) = self.pending.pop_front() {
                            // Sequences are appended in order here, so the index accepts it.
                            indexed |= self.index.append(p.fragment).is_ok();
                        }
                    }
                    None => break,
                },
            }
        }
        indexed
    }

    /// Forgets a reserved fragment that will never complete (its connection broke or failed).
    pub fn abandon(&mut self, seq: u64) {
        if let Some(i) = self.pending_position(seq)
            && matches!(
                self.pending.get(i).map(|p| &p.state),
                Some(PendingState::Open)
            )
        {
            self.pending.remove(i);
        }
        self.flush_pending();
    }

    /// The header id fragment `seq` was produced with.
    pub fn header_of(&self, seq: u64) -> Option<u64> {
        self.header_runs.range(..=seq).next_back().map(|(_, h)| *h)
    }

    /// The header fragment `seq` was produced with.
    pub fn header_for(&self, seq: u64) -> Option<Arc<ProducerHeader>> {
        self.headers.get(&self.header_of(seq)?).cloned()
    }

    /// The segment file holding fragment `seq`.
    pub fn segment_of(&self, seq: u64) -> Option<u64> {
        self.segments.range(..=seq).next_back().copied()
    }

    /// Cached bytes of fragment `seq`.
    pub fn cached(&self, seq: u64) -> Option<Bytes> {
        let i = self.cache.partition_point(|(s, _)| *s < seq);
        self.cache
            .get(i)
            .filter(|(s, _)| *s == seq)
            .map(|(_, b)| b.clone())
    }

    /// Adds fragment bytes to the cache.
    pub fn cache_push(&mut self, seq: u64, bytes: Bytes) {
        self.cached_bytes += bytes.len() as u64;
        // Overlapping connections may complete fragments out of order: keep it sorted.
        let i = self.cache.partition_point(|(s, _)| *s < seq);
        self.cache.insert(i, (seq, bytes));
    }

    /// Drops cached bytes of every fragment with a sequence below `seq`.
    pub fn cache_drop_before(&mut self, seq: u64) {
        while let Some((s, b)) = self.cache.front() {
            if *s >= seq {
                break;
            }
            self.cached_bytes = self.cached_bytes.saturating_sub(b.len() as u64);
            self.cache.pop_front();
        }
    }

    /// Drops cached bytes of the oldest durable fragments until at most `limit` bytes remain.
    pub fn cache_evict(&mut self, limit: u64) {
        let first_pending = self
            .pending
            .front()
            .map_or(u64::MAX, |p| p.fragment.sequence);
        while self.cached_bytes > limit {
            match self.cache.front() {
                Some((s, b)) if *s < first_pending => {
                    self.cached_bytes = self.cached_bytes.saturating_sub(b.len() as u64);
                    self.cache.pop_front();
                }
                _ => break,
            }
        }
    }

    /// Drops every fragment, cached byte and pending entry (DeleteStream).
    pub fn clear(&mut self) {
        self.index = FragmentIndex::new();
        self.pending.clear();
        self.cache.clear();
        self.cached_bytes = 0;
    }

    /// Forgets header runs and headers that no retained fragment needs any more.
    pub fn forget_headers_before(&mut self, first_seq: u64) {
        // Keep the run that covers `first_seq` and every later one.
        let keep_from = self
            .header_runs
            .range(..=first_seq)
            .next_back()
            .map_or(first_seq, |(s, _)| *s);
        let dead: Vec<u64> = self
            .header_runs
            .range(..keep_from)
            .map(|(s, _)| *s)
            .collect();
        for s in dead {
            if let Some(h) = self.header_runs.remove(&s)
                && !self.header_runs.values().any(|v| *v == h)
            {
                self.headers.remove(&h);
            }
        }
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
    /// The data key sealing the stream's records on disk: loaded at start, or created at the
    /// first PutMedia (never while its KmsKeyId names an unknown key).
    pub key: tokio::sync::OnceCell<Arc<DataKey>>,
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
            key: tokio::sync::OnceCell::new(),
        }
    }

    /// What binds the stream's sealed records to it (creation time and name).
    pub fn identity(&self) -> Vec<u8> {
        let m = lock(&self.meta);
        stream_identity(m.creation_ms, &m.name)
    }

    /// The stream's data key, created (and durably stored, wrapped under the master key its
    /// KmsKeyId selects) when it has none yet. Concurrent callers get the same key.
    pub async fn data_key(&self, vault: &Arc<Vault>) -> Result<Arc<DataKey>, KeyError> {
        self.key
            .get_or_try_init(|| async {
                let kms = lock(&self.meta).kms_key_id.clone();
                // Fails fast, without touching the disk, for an unknown key.
                vault.master(&kms)?;
                let (vault, dir, identity) = (vault.clone(), self.dir.clone(), self.identity());
                tokio::task::spawn_blocking(move || vault.create_data_key(&dir, identity, &kms))
                    .await
                    .map_err(|e| KeyError::Io(std::io::Error::other(e.to_string())))?
                    .map(Arc::new)
            })
            .await
            .cloned()
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
        // Never backwards (fragments of overlapping connections complete out of order), but
        // always wake readers: an earlier fragment may just have become readable.
        self.published.send_modify(|v| *v = (*v).max(seq + 1));
    }
}

/// Which per-stream connection count a [`Slot`] holds.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SlotKind {
    /// GetMedia.
    GetMedia,
    /// GetMediaForFragmentList.
    FragmentList,
}

/// A counted connection slot on a stream, released on drop.
#[derive(Debug)]
pub struct Slot {
    stream: Arc<Stream>,
    kind: SlotKind,
}

impl Slot {
    fn counter(stream: &Stream, kind: SlotKind) -> &AtomicUsize {
        match kind {
            SlotKind::GetMedia => &stream.consumers,
            SlotKind::FragmentList => &stream.list_consumers,
        }
    }

    /// Takes a slot if fewer than `max` are taken.
    pub fn acquire(stream: &Arc<Stream>, kind: SlotKind, max: usize) -> Option<Slot> {
        let counter = Self::counter(stream, kind);
        let mut cur = counter.load(Ordering::SeqCst);
        loop {
            if cur >= max {
                return None;
            }
            match counter.compare_exchange(cur, cur + 1, Ordering::SeqCst, Ordering::SeqCst) {
                Ok(_) => {
                    return Some(Slot {
                        stream: stream.clone(),
                        kind,
                    });
                }
                Err(now) => cur = now,
            }
        }
    }

    /// The stream.
    pub fn stream(&self) -> &Arc<Stream> {
        &self.stream
    }
}

impl Drop for Slot {
    fn drop(&mut self) {
        Self::counter(&self.stream, self.kind).fetch_sub(1, Ordering::SeqCst);
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn status_is_stored_as_the_api_string() {
        let text = r#"{"name":"a","creation_ms":1,"version":"v","status":"DELETING",
            "device_name":null,"media_type":null,"kms_key_id":"k","retention_hours":0,
            "tags":{},"storage_tier":"HOT"}"#;
        let meta: StreamMeta = serde_json::from_str(text).unwrap();
        assert_eq!(meta.status, StreamStatus::Deleting);
        let back = serde_json::to_value(&meta).unwrap();
        assert_eq!(back["status"], "DELETING");
    }
}
