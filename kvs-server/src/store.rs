//! Durable fragment storage: per stream, an append-only header log, append-only segment files of
//! fragment records and the append-only index log of kvs-core's [`FragmentIndex`] (its
//! [`codec`] records), written by one writer thread that group-commits (one `fsync` per touched
//! header log and segment per batch, across streams) and reports completion only after the data
//! is durable. The index log is synced lazily (on segment rotation and close): recovery re-adds
//! fragments whose index records were lost from the segments.
//!
//! The index log is compacted online by the writer thread (its only appender, so no record
//! appended meanwhile is lost): once a stream's log exceeds twice the size of a snapshot of the
//! index it describes plus [`WriterConfig::index_compact_floor`] bytes (checked after the log
//! grew by half again, so reading it stays amortized), the snapshot is written to
//! `index.log.tmp`, fsynced, renamed over `index.log` and the directory fsynced. A crash at any
//! step leaves the old log or the new one (both describe the same index); recovery removes a
//! leftover `index.log.tmp`. Recovery also compacts, when the log differs from the index.
//!
//! A failed write (disk full included) fails that fragment, and a failed fsync every fragment of
//! the batch in that stream: their callers get an error (PutMedia an ERROR ACK, never
//! PERSISTED), a partial record is cut from the segment (and a partial index record from the
//! index log), and later writes to the same stream proceed normally once space is back.
//!
//! An index record's `location` is the offset of the fragment's sealed body inside its segment
//! file; the segment is the one whose id (the sequence of its first fragment) is the greatest not
//! above the fragment's sequence. Recovery rebuilds the index from its log (cutting a torn tail)
//! and cross-checks it against the segments, which are the ground truth.
//!
//! Record layout (format 2, little endian): `"KVS2"`, kind (1 = header, 2 = fragment), clear
//! length (u32), body length (u32), CRC-32 of the body (u32), CRC-32 of the head (u32: the 17
//! bytes before it and the clear part), the clear part, the body. The clear part is the header id
//! (8 bytes) or the fragment metadata ([`FragmentRecord::meta`], 52 bytes: sequence, timestamps,
//! duration, header id, timecode, random part of the fragment number); the body is sealed
//! ([`crate::seal`]: nonce, AES-256-GCM ciphertext, tag), so media bytes are never stored in the
//! clear. The store itself never sees keys.
//!
//! Recovery reads records in order. A record whose head is bad (magic, impossible lengths, or
//! head CRC over the head and clear part) is skipped when a valid record follows it: the scan
//! searches forward (in bounded chunks) for the next offset holding a head that passes its CRC
//! and fits the file, records the damaged byte range and continues there. Only when no valid
//! record follows is it a torn tail, and the file is cut there. The tail records of a fully
//! scanned file must also pass their body CRC (a torn write): trailing records that fail it are
//! cut. A record with a bad body, head or clear part followed by good records was altered (or
//! rotted) after it was acknowledged: it is kept (its index record stays listed when the index
//! log has it) and fails when read ([`read_fragment`] checks the head and the body CRC, and the
//! body is authenticated when opened), so nothing acknowledged after it is lost and nothing
//! altered is served. The header log is recovered the same way.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::fs::{self, File, OpenOptions};
use std::io::{self, Read, Write};
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};
use std::sync::mpsc;

use bytes::{BufMut, Bytes, BytesMut};
use kvs_core::index::{Fragment, FragmentIndex, Rebuilder, codec};

const MAGIC: &[u8; 4] = b"KVS2";
/// Bytes of a record head (magic, kind, clear length, body length, body CRC, head CRC).
const RECORD_HEADER_LEN: usize = 21;
const KIND_HEADER: u8 = crate::seal::KIND_HEADER;
const KIND_FRAGMENT: u8 = crate::seal::KIND_FRAGMENT;
/// Largest record body written or accepted on recovery.
const MAX_RECORD_LEN: u32 = 64 * 1024 * 1024;
/// Largest clear part of a record.
const MAX_CLEAR_LEN: u32 = 256;
/// Largest fragment a segment record can hold (the body limit less the sealing overhead): the
/// ceiling of [`crate::Limits::max_fragment_bytes`].
pub const MAX_FRAGMENT_BYTES: u64 = MAX_RECORD_LEN as u64 - crate::seal::OVERHEAD as u64;
const SEAL_OVERHEAD: u64 = crate::seal::OVERHEAD as u64;
const HEADERS_FILE: &str = "headers.log";
const INDEX_FILE: &str = "index.log";
/// The snapshot of a compaction before it is renamed over [`INDEX_FILE`].
const INDEX_TMP_FILE: &str = "index.log.tmp";
/// Default [`WriterConfig::index_compact_floor`]: a log below twice its live snapshot plus this
/// many bytes is left as it is.
pub const INDEX_COMPACT_FLOOR: u64 = 1024 * 1024;

/// Where a fragment's bytes are on disk.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Location {
    /// Segment id (the sequence number of its first fragment).
    pub segment: u64,
    /// Offset of the fragment's sealed body in the segment file (its clear metadata is the
    /// [`META_LEN`] bytes before it).
    pub offset: u64,
    /// Length of the fragment bytes (clear; the sealed body is [`crate::seal::OVERHEAD`] longer).
    pub len: u64,
}

/// The fixed fields of a stored fragment.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FragmentRecord {
    /// Sequence number within the stream.
    pub seq: u64,
    /// Server timestamp, epoch ms.
    pub server_ms: u64,
    /// Producer timestamp, epoch ms.
    pub producer_ms: u64,
    /// Duration in ms.
    pub duration_ms: u64,
    /// Which producer header the fragment needs.
    pub header_id: u64,
    /// The raw cluster timecode.
    pub timecode: u64,
    /// The random part of the fragment number.
    pub random: u32,
}

/// A fragment found on disk at recovery.
#[derive(Debug, Clone)]
pub struct RecoveredFragment {
    /// Its fields.
    pub record: FragmentRecord,
    /// Where its bytes are.
    pub location: Location,
}

impl RecoveredFragment {
    /// Its index entry; `None` when its length or duration does not fit the index (never
    /// for records this server wrote).
    pub fn index_entry(&self) -> Option<Fragment> {
        Some(Fragment {
            sequence: self.record.seq,
            server_timestamp_ms: self.record.server_ms,
            producer_timestamp_ms: self.record.producer_ms,
            location: self.location.offset,
            size_bytes: u32::try_from(self.location.len).ok()?,
            duration_ms: u32::try_from(self.record.duration_ms).ok()?,
            random: self.record.random,
        })
    }
}

/// How the index log compared with the segments at recovery.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct IndexRecovery {
    /// Fragments the index log held (after its torn tail was cut).
    pub from_log: usize,
    /// Bytes cut from the end of the index log.
    pub log_truncated_bytes: u64,
    /// Fragments found in segments after the log's last one (their index records were lost).
    pub appended_from_segments: usize,
    /// True when the log disagreed with the segments and the index was rebuilt from them.
    pub rebuilt_from_segments: bool,
    /// Segments read in full with CRC checks (the newest one, or all when the log disagreed).
    pub segments_fully_scanned: usize,
    /// Records of fully scanned files whose body failed its CRC, or whose head or clear part
    /// was damaged, but that were followed by good records (altered after they were written):
    /// kept, and refused when read.
    pub damaged_records: usize,
}

/// Everything recovered for one stream directory.
#[derive(Debug, Default)]
pub struct Recovered {
    /// Producer headers by id, sealed (as stored; open them with the stream's data key).
    pub headers: HashMap<u64, Vec<u8>>,
    /// The fragment index (locations are offsets in segment files).
    pub index: FragmentIndex,
    /// Producer header id by the first sequence that uses it.
    pub header_runs: BTreeMap<u64, u64>,
    /// Segment files on disk.
    pub segments: BTreeSet<u64>,
    /// Highest sequence seen anywhere (also in trimmed fragments), if any.
    pub last_seq: Option<u64>,
    /// Latest server timestamp seen.
    pub last_server_ms: u64,
    /// Bytes cut from partial tails of the header log and segments.
    pub truncated_bytes: u64,
    /// The index log's recovery.
    pub index_recovery: IndexRecovery,
    /// Byte ranges (start, end) of damaged records (bad head or clear metadata) that valid
    /// records follow, by segment: skipped and kept (never cut), so nothing after them is lost.
    /// Fragments the index log places in them stay listed and fail when read.
    pub damaged_ranges: BTreeMap<u64, Vec<(u64, u64)>>,
    /// Damaged ranges of the header log (their header ids are unknown): fragments whose header
    /// is missing are then kept (they fail when read) rather than taken as never acknowledged.
    pub damaged_header_ranges: Vec<(u64, u64)>,
}

fn encode_record(kind: u8, clear: &[u8], body: &[u8]) -> io::Result<Bytes> {
    let body_len = u32::try_from(body.len())
        .ok()
        .filter(|l| *l <= MAX_RECORD_LEN)
        .ok_or_else(|| {
            io::Error::other(format!(
                "record of {} bytes exceeds the {MAX_RECORD_LEN}-byte record limit",
                body.len()
            ))
        })?;
    let clear_len = u32::try_from(clear.len())
        .ok()
        .filter(|l| *l <= MAX_CLEAR_LEN)
        .ok_or_else(|| io::Error::other("clear record part too long"))?;
    let mut out = BytesMut::with_capacity(RECORD_HEADER_LEN + clear.len() + body.len());
    out.put_slice(MAGIC);
    out.put_u8(kind);
    out.put_u32_le(clear_len);
    out.put_u32_le(body_len);
    out.put_u32_le(kvs_core::crc32::crc32(body));
    let mut crc = kvs_core::crc32::Crc32::new();
    crc.update(&out);
    crc.update(clear);
    out.put_u32_le(crc.finalize());
    out.put_slice(clear);
    out.put_slice(body);
    Ok(out.freeze())
}

/// Length of a fragment's clear metadata ([`FragmentRecord::meta`]).
pub const META_LEN: usize = 52;

impl FragmentRecord {
    /// The clear metadata stored in front of the sealed body (and bound into its AAD).
    pub fn meta(&self) -> Vec<u8> {
        let mut m = Vec::with_capacity(META_LEN);
        for v in [
            self.seq,
            self.server_ms,
            self.producer_ms,
            self.duration_ms,
            self.header_id,
            self.timecode,
        ] {
            m.put_u64_le(v);
        }
        m.put_u32_le(self.random);
        m
    }

    /// Parses [`FragmentRecord::meta`] bytes; `None` unless exactly [`META_LEN`] bytes.
    pub fn parse_meta(p: &[u8]) -> Option<FragmentRecord> {
        if p.len() != META_LEN {
            return None;
        }
        let mut vals = [0u64; 6];
        for (i, v) in vals.iter_mut().enumerate() {
            let b: [u8; 8] = p.get(i * 8..i * 8 + 8)?.try_into().ok()?;
            *v = u64::from_le_bytes(b);
        }
        let random: [u8; 4] = p.get(48..52)?.try_into().ok()?;
        Some(FragmentRecord {
            seq: vals[0],
            server_ms: vals[1],
            producer_ms: vals[2],
            duration_ms: vals[3],
            header_id: vals[4],
            timecode: vals[5],
            random: u32::from_le_bytes(random),
        })
    }
}

/// One record read back.
struct RawRecord {
    kind: u8,
    /// Offset of the record in the file.
    start: u64,
    /// The clear part.
    clear: Vec<u8>,
    /// Offset of the body.
    body_offset: u64,
    /// Length of the body.
    body_len: u64,
    /// Whether the body passed its CRC (`None`: not checked, light scan).
    body_ok: Option<bool>,
    /// The body, when asked for.
    body: Option<Vec<u8>>,
}

/// The fixed fields of a record head that parsed, passed its CRC and fits the file.
struct Head {
    kind: u8,
    clear: Vec<u8>,
    body_len: u32,
    body_crc: u32,
}

/// Reads the record head at `pos` and its clear part; `None` unless the magic is there, the
/// lengths are possible and fit the `total` bytes of the file, and the head CRC holds.
fn read_head(file: &File, pos: u64, total: u64) -> io::Result<Option<Head>> {
    let Some(room) = total
        .checked_sub(pos)
        .and_then(|r| r.checked_sub(RECORD_HEADER_LEN as u64))
    else {
        return Ok(None);
    };
    let mut head = [0u8; RECORD_HEADER_LEN];
    file.read_exact_at(&mut head, pos)?;
    if &head[..4] != MAGIC {
        return Ok(None);
    }
    let word = |i: usize| u32::from_le_bytes([head[i], head[i + 1], head[i + 2], head[i + 3]]);
    let (clear_len, body_len, body_crc, head_crc) = (word(5), word(9), word(13), word(17));
    if clear_len > MAX_CLEAR_LEN
        || body_len > MAX_RECORD_LEN
        || room < u64::from(clear_len) + u64::from(body_len)
    {
        return Ok(None);
    }
    let mut clear = vec![0u8; clear_len as usize];
    file.read_exact_at(&mut clear, pos + RECORD_HEADER_LEN as u64)?;
    let mut crc = kvs_core::crc32::Crc32::new();
    crc.update(&head[..17]);
    crc.update(&clear);
    if crc.finalize() != head_crc {
        return Ok(None);
    }
    Ok(Some(Head {
        kind: head[4],
        clear,
        body_len,
        body_crc,
    }))
}

/// Bytes read per step when searching for the next record after a damaged one.
const RESYNC_CHUNK: usize = 64 * 1024;

/// The first offset at or after `from` that holds a valid record head ([`read_head`]), searched
/// in [`RESYNC_CHUNK`]-byte reads (bounded memory); `None` when none follows.
fn next_valid_head(file: &File, from: u64, total: u64) -> io::Result<Option<u64>> {
    let mut buf = vec![0u8; RESYNC_CHUNK];
    let mut at = from;
    while total.saturating_sub(at) >= RECORD_HEADER_LEN as u64 {
        let n = usize::try_from(total - at).map_or(RESYNC_CHUNK, |l| l.min(RESYNC_CHUNK));
        let window = buf.get_mut(..n).unwrap_or_default();
        file.read_exact_at(window, at)?;
        for (i, w) in window.windows(MAGIC.len()).enumerate() {
            if w == MAGIC && read_head(file, at + i as u64, total)?.is_some() {
                return Ok(Some(at + i as u64));
            }
        }
        // The next window overlaps this one by a magic less one byte (a magic split across).
        at += (n - (MAGIC.len() - 1)) as u64;
    }
    Ok(None)
}

/// What [`scan_records`] found in a file.
struct Scan {
    /// The records in file order.
    records: Vec<RawRecord>,
    /// Length of the valid prefix: the file is cut there (a torn tail) when it is shorter than
    /// `total`.
    valid: u64,
    /// The file length.
    total: u64,
    /// Byte ranges (start, end) of damaged records (bad head or clear part) that valid records
    /// follow: skipped, never cut.
    damaged: Vec<(u64, u64)>,
}

/// Reads the records of `path`. A record whose head is bad (magic, lengths or head CRC) is
/// skipped when a valid record follows it (the scan resyncs on the next valid head and records
/// the damaged range); when none follows, the file is a torn tail from there and `valid` ends
/// before it. A full scan also reads and CRC-checks every body and cuts trailing records whose
/// body fails (a torn tail; with damaged ranges right before them); a light scan (sealed,
/// fsynced segments) reads only heads and clear parts. `keep_bodies` (full scans) returns the
/// bodies.
fn scan_records(path: &Path, full: bool, keep_bodies: bool) -> io::Result<Scan> {
    let file = File::open(path)?;
    let total = file.metadata()?.len();
    let mut records: Vec<RawRecord> = Vec::new();
    let mut damaged: Vec<(u64, u64)> = Vec::new();
    let mut pos = 0u64;
    let mut chunk = Vec::new();
    while pos < total {
        let Some(Head {
            kind,
            clear,
            body_len,
            body_crc,
        }) = read_head(&file, pos, total)?
        else {
            match next_valid_head(&file, pos + 1, total)? {
                Some(next) => {
                    damaged.push((pos, next));
                    pos = next;
                    continue;
                }
                None => break,
            }
        };
        let body_offset = pos + RECORD_HEADER_LEN as u64 + clear.len() as u64;
        let mut body_ok = None;
        let mut body = None;
        if full {
            if keep_bodies {
                let mut b = vec![0u8; body_len as usize];
                file.read_exact_at(&mut b, body_offset)?;
                body_ok = Some(kvs_core::crc32::crc32(&b) == body_crc);
                body = Some(b);
            } else {
                // Bounded memory: the CRC runs over 1 MiB chunks.
                let mut crc = kvs_core::crc32::Crc32::new();
                let mut left = body_len as usize;
                let mut at = body_offset;
                chunk.resize((1 << 20).min(left), 0);
                while left > 0 {
                    let n = left.min(chunk.len());
                    let part = chunk.get_mut(..n).unwrap_or_default();
                    file.read_exact_at(part, at)?;
                    crc.update(part);
                    left -= n;
                    at += n as u64;
                }
                body_ok = Some(crc.finalize() == body_crc);
            }
        }
        records.push(RawRecord {
            kind,
            start: pos,
            clear,
            body_offset,
            body_len: u64::from(body_len),
            body_ok,
            body,
        });
        pos = body_offset + u64::from(body_len);
    }
    // A torn tail: trailing records whose body did not make it to disk, and damaged ranges
    // that only such records follow.
    loop {
        let last_damage = damaged.last().map(|d| d.0);
        match records.last() {
            Some(last) if last_damage.is_none_or(|d| last.start > d) => {
                if last.body_ok != Some(false) {
                    break;
                }
                pos = last.start;
                records.pop();
            }
            _ => match damaged.pop() {
                Some((start, _)) => pos = start,
                None => break,
            },
        }
    }
    Ok(Scan {
        records,
        valid: pos,
        total,
        damaged,
    })
}

/// Rebuilds an index from the log at `path`, read in 64 KiB chunks (bounded memory); also
/// returns how many bytes the log holds.
fn read_index_log(path: &Path) -> io::Result<(kvs_core::index::Rebuilt, u64)> {
    let mut rebuilder = Rebuilder::default();
    let mut len = 0u64;
    let mut file = File::open(path)?;
    let mut chunk = vec![0u8; 64 * 1024];
    loop {
        let n = file.read(&mut chunk)?;
        if n == 0 {
            break;
        }
        rebuilder.push(chunk.get(..n).unwrap_or_default());
        len += n as u64;
    }
    Ok((rebuilder.finish(), len))
}

fn truncate_to(path: &Path, len: u64) -> io::Result<()> {
    let f = OpenOptions::new().write(true).open(path)?;
    f.set_len(len)?;
    f.sync_all()
}

/// Writes `bytes` to `path` as an owner-only (0600) file, replacing what it held, and fsyncs
/// it: the first step of publishing a secret by rename or hard link.
pub(crate) fn write_private(path: &Path, bytes: &[u8]) -> io::Result<()> {
    use std::os::unix::fs::OpenOptionsExt;
    let mut f = OpenOptions::new()
        .create(true)
        .write(true)
        .truncate(true)
        .mode(0o600)
        .open(path)?;
    f.write_all(bytes)?;
    f.sync_all()
}

/// Fsyncs a directory so created, renamed or removed entries are durable.
pub fn sync_dir(dir: &Path) -> io::Result<()> {
    File::open(dir)?.sync_all()
}

/// A non-empty file of stored media (producer headers, a segment, the index log) in a stream
/// directory, if there is one.
pub(crate) fn stored_media_file(dir: &Path) -> Option<PathBuf> {
    let entries = fs::read_dir(dir).ok()?;
    entries.flatten().map(|e| e.path()).find(|p| {
        let name = p.file_name().map(|n| n.to_string_lossy().into_owned());
        let media = name.is_some_and(|n| {
            n == HEADERS_FILE || n == INDEX_FILE || (n.starts_with("seg-") && n.ends_with(".log"))
        });
        media && fs::metadata(p).is_ok_and(|m| m.len() > 0)
    })
}

fn segment_name(id: u64) -> String {
    format!("seg-{id:020}.log")
}

fn segment_ids(dir: &Path) -> io::Result<Vec<u64>> {
    let mut ids = Vec::new();
    for entry in fs::read_dir(dir)? {
        let name = entry?.file_name();
        let name = name.to_string_lossy();
        if let Some(id) = name
            .strip_prefix("seg-")
            .and_then(|r| r.strip_suffix(".log"))
            .and_then(|n| n.parse::<u64>().ok())
        {
            ids.push(id);
        }
    }
    ids.sort_unstable();
    Ok(ids)
}

/// Recovers a stream directory: cuts partial tails of the header log, the segments and the index
/// log, rebuilds the [`FragmentIndex`] from its log and cross-checks it against the segments.
/// Fragments with a server timestamp before `cutoff_ms` (retention; 0 for none) are left out.
pub fn recover(dir: &Path, cutoff_ms: u64) -> io::Result<Recovered> {
    let mut out = Recovered::default();
    let mut header_damage = 0;
    // A compaction interrupted before its rename: the index log is still the whole truth.
    match fs::remove_file(dir.join(INDEX_TMP_FILE)) {
        Ok(()) => sync_dir(dir)?,
        Err(e) if e.kind() == io::ErrorKind::NotFound => {}
        Err(e) => return Err(e),
    }
    let headers_path = dir.join(HEADERS_FILE);
    if headers_path.exists() {
        let scan = scan_records(&headers_path, true, true)?;
        if scan.valid < scan.total {
            truncate_to(&headers_path, scan.valid)?;
            out.truncated_bytes += scan.total - scan.valid;
        }
        header_damage += scan.damaged.len();
        out.damaged_header_ranges = scan.damaged;
        for r in scan.records {
            let Ok(id) = <[u8; 8]>::try_from(r.clear.as_slice()) else {
                continue;
            };
            if r.kind != KIND_HEADER {
                continue;
            }
            let id = u64::from_le_bytes(id);
            let ok = r.body_ok == Some(true);
            if !ok {
                header_damage += 1;
            }
            // A header written again (after a failed write) wins, unless it is the damaged one.
            if ok || !out.headers.contains_key(&id) {
                out.headers.insert(id, r.body.unwrap_or_default());
            }
        }
    }
    // The segments are the ground truth: every complete record in them was written before its
    // index record, and the index log is fsynced lazily (its lost tail is re-added from them).
    // Sealed segments were fsynced when they were rotated out: only their record heads are read
    // unless the index log disagrees with them.
    let mut rec = IndexRecovery::default();
    let mut on_disk = scan_segments(dir, &mut out, false, &mut rec)?;
    rec.damaged_records += header_damage;
    // The index log.
    let index_path = dir.join(INDEX_FILE);
    let (rebuilt, log_len) = if index_path.exists() {
        read_index_log(&index_path)?
    } else {
        (Rebuilder::default().finish(), 0)
    };
    rec.from_log = rebuilt.index.len();
    rec.log_truncated_bytes = log_len - rebuilt.valid_bytes.min(log_len);
    let agrees = |on_disk: &[RecoveredFragment], out: &Recovered| {
        rebuilt.index.iter().all(|f| {
            match on_disk.binary_search_by_key(&f.sequence, |d| d.record.seq) {
                Ok(i) => on_disk.get(i).is_some_and(|d| d.index_entry() == Some(*f)),
                // Not readable from the segments: fine when its whole record lies in a damaged
                // range of its segment (it stays listed and fails when read).
                Err(_) => in_damaged_range(out, f),
            }
        })
    };
    let mut consistent = agrees(&on_disk, &out);
    if !consistent {
        // Verify every segment before trusting (or rebuilding from) them.
        out.last_seq = None;
        out.last_server_ms = 0;
        out.header_runs.clear();
        rec.segments_fully_scanned = 0;
        rec.damaged_records = header_damage;
        out.damaged_ranges.clear();
        on_disk = scan_segments(dir, &mut out, true, &mut rec)?;
        consistent = agrees(&on_disk, &out);
    }
    let mut index = if consistent {
        rebuilt.index
    } else {
        rec.rebuilt_from_segments = true;
        FragmentIndex::new()
    };
    let after = index.last().map(|f| f.sequence);
    let floor = index.last().map_or(0, |f| f.server_timestamp_ms);
    let candidates: Vec<Fragment> = on_disk
        .iter()
        .filter(|f| after.is_none_or(|a| f.record.seq > a))
        .filter_map(RecoveredFragment::index_entry)
        .filter(|e| e.server_timestamp_ms >= floor)
        .collect();
    // Server timestamps never decrease along the sequence; a record whose timestamps are out of
    // order (moved in from elsewhere) must not hide the ones after it: the longest run in order
    // is kept.
    let times: Vec<u64> = candidates.iter().map(|e| e.server_timestamp_ms).collect();
    for i in longest_non_decreasing(&times) {
        if let Some(entry) = candidates.get(i)
            && index.append(*entry).is_ok()
            && !rec.rebuilt_from_segments
        {
            rec.appended_from_segments += 1;
        }
    }
    // Rewrite the log compacted when it differs from the index (torn tail, lost records, trim
    // records or a rebuild); otherwise keep it as it is.
    let records = rebuilt.records;
    let clean = consistent
        && rec.log_truncated_bytes == 0
        && rec.appended_from_segments == 0
        && records == index.len() as u64;
    if !clean && (index_path.exists() || !index.is_empty()) {
        let mut buf = BytesMut::with_capacity(index.len() * codec::FRAGMENT_RECORD_LEN);
        index.encode_snapshot(&mut buf);
        let tmp = dir.join(INDEX_TMP_FILE);
        let mut f = File::create(&tmp)?;
        f.write_all(&buf)?;
        f.sync_all()?;
        fs::rename(&tmp, &index_path)?;
        sync_dir(dir)?;
    }
    // Retention: what expired while the server was down is never served.
    if cutoff_ms > 0 {
        index.trim_before(cutoff_ms);
    }
    out.index_recovery = rec;
    out.index = index;
    Ok(out)
}

/// Whether the whole record of index entry `f` (head, clear metadata and sealed body) lies in a
/// damaged range of its segment.
fn in_damaged_range(out: &Recovered, f: &Fragment) -> bool {
    let Some(seg) = out.segments.range(..=f.sequence).next_back() else {
        return false;
    };
    let start = f
        .location
        .checked_sub((RECORD_HEADER_LEN + META_LEN) as u64);
    let end = f
        .location
        .checked_add(u64::from(f.size_bytes) + SEAL_OVERHEAD);
    let (Some(start), Some(end)) = (start, end) else {
        return false;
    };
    out.damaged_ranges
        .get(seg)
        .is_some_and(|ranges| ranges.iter().any(|(a, b)| *a <= start && end <= *b))
}

/// Indices of a longest non-decreasing subsequence of `v` (patience sorting, O(n log n)).
fn longest_non_decreasing(v: &[u64]) -> Vec<usize> {
    // tails[k]: index of the smallest last value of a run of length k + 1.
    let mut tails: Vec<usize> = Vec::new();
    let mut prev: Vec<Option<usize>> = vec![None; v.len()];
    for (i, x) in v.iter().enumerate() {
        let k = tails.partition_point(|&t| v.get(t).is_some_and(|y| y <= x));
        prev[i] = k.checked_sub(1).and_then(|p| tails.get(p).copied());
        if k == tails.len() {
            tails.push(i);
        } else if let Some(slot) = tails.get_mut(k) {
            *slot = i;
        }
    }
    let mut out = Vec::with_capacity(tails.len());
    let mut cur = tails.last().copied();
    while let Some(i) = cur {
        out.push(i);
        cur = prev.get(i).copied().flatten();
    }
    out.reverse();
    out
}

/// Scans the segments of `dir` (the newest one always fully, with CRCs; the others fully only
/// when `full`), cutting torn tails, and returns their fragments in sequence order.
fn scan_segments(
    dir: &Path,
    out: &mut Recovered,
    full: bool,
    rec: &mut IndexRecovery,
) -> io::Result<Vec<RecoveredFragment>> {
    let mut on_disk: Vec<RecoveredFragment> = Vec::new();
    let ids = segment_ids(dir)?;
    let newest = ids.last().copied();
    for seg in ids {
        out.segments.insert(seg);
        let path = dir.join(segment_name(seg));
        let full_scan = full || Some(seg) == newest;
        if full_scan {
            rec.segments_fully_scanned += 1;
        }
        let scan = scan_records(&path, full_scan, false)?;
        if !full_scan && (scan.valid < scan.total || !scan.damaged.is_empty()) {
            // A sealed segment that does not parse: verify everything.
            rec.segments_fully_scanned = 0;
            rec.damaged_records = 0;
            out.damaged_ranges.clear();
            return scan_segments(dir, out, true, rec);
        }
        if scan.valid < scan.total {
            truncate_to(&path, scan.valid)?;
            out.truncated_bytes += scan.total - scan.valid;
        }
        if !scan.damaged.is_empty() {
            rec.damaged_records += scan.damaged.len();
            out.damaged_ranges.insert(seg, scan.damaged);
        }
        for r in scan.records {
            if r.kind != KIND_FRAGMENT || r.body_len < SEAL_OVERHEAD {
                continue;
            }
            let Some(record) = FragmentRecord::parse_meta(&r.clear) else {
                continue;
            };
            if r.body_ok == Some(false) {
                rec.damaged_records += 1;
            }
            let header_known = out.headers.contains_key(&record.header_id)
                || !out.damaged_header_ranges.is_empty();
            if record.seq < seg || !header_known {
                // Misplaced, or its header never became durable: never acknowledged. (When the
                // header log has damaged records, a missing header may be one of them: the
                // fragment is kept and fails when read.)
                continue;
            }
            out.last_seq = out.last_seq.max(Some(record.seq));
            out.last_server_ms = out.last_server_ms.max(record.server_ms);
            let location = Location {
                segment: seg,
                offset: r.body_offset,
                len: r.body_len - SEAL_OVERHEAD,
            };
            on_disk.push(RecoveredFragment { record, location });
        }
    }
    on_disk.sort_by_key(|f| f.record.seq);
    on_disk.dedup_by_key(|f| f.record.seq);
    for f in &on_disk {
        if out.header_runs.values().next_back() != Some(&f.record.header_id) {
            out.header_runs.insert(f.record.seq, f.record.header_id);
        }
    }

    Ok(on_disk)
}

/// A fragment record read back: its clear metadata and its sealed body.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StoredFragment {
    /// The clear metadata ([`FragmentRecord::meta`]) as stored.
    pub meta: Vec<u8>,
    /// The sealed body (open it with the stream's data key and `meta`).
    pub sealed: Vec<u8>,
}

/// Reads a fragment's clear metadata and sealed body, after checking its record: the head in
/// front of it must be a fragment head for exactly this body whose CRC holds, and the body must
/// pass its CRC. A record that does not (damaged, or `loc` is not where a record is) fails with
/// [`io::ErrorKind::InvalidData`]; other errors are the file's (missing, shorter).
pub fn read_fragment(dir: &Path, loc: Location) -> io::Result<StoredFragment> {
    let file = File::open(dir.join(segment_name(loc.segment)))?;
    let len = loc
        .len
        .checked_add(SEAL_OVERHEAD)
        .filter(|l| *l <= u64::from(MAX_RECORD_LEN))
        .and_then(|l| usize::try_from(l).ok())
        .ok_or_else(|| io::Error::other("fragment too large"))?;
    let meta_at = loc
        .offset
        .checked_sub(META_LEN as u64)
        .ok_or_else(|| io::Error::other("fragment location before its metadata"))?;
    let head_at = meta_at
        .checked_sub(RECORD_HEADER_LEN as u64)
        .ok_or_else(|| io::Error::other("fragment location before its record head"))?;
    let mut head = vec![0u8; RECORD_HEADER_LEN + META_LEN];
    file.read_exact_at(&mut head, head_at)?;
    let mut sealed = vec![0u8; len];
    file.read_exact_at(&mut sealed, loc.offset)?;
    let word = |i: usize| {
        head.get(i..i + 4)
            .and_then(|w| <[u8; 4]>::try_from(w).ok())
            .map(u32::from_le_bytes)
    };
    // The CRC covers the head's first 17 bytes and the clear part: hash them around the stored
    // CRC field (bytes 17..21).
    let mut head_crc = kvs_core::crc32::Crc32::new();
    head_crc.update(head.get(..17).unwrap_or_default());
    head_crc.update(head.get(RECORD_HEADER_LEN..).unwrap_or_default());
    let valid = head.get(..4) == Some(MAGIC.as_slice())
        && head.get(4) == Some(&KIND_FRAGMENT)
        && word(5) == Some(META_LEN as u32)
        && word(9).map(u64::from) == Some(len as u64)
        && word(17) == Some(head_crc.finalize())
        && word(13) == Some(kvs_core::crc32::crc32(&sealed));
    if !valid {
        return Err(io::Error::new(
            io::ErrorKind::InvalidData,
            format!(
                "the record of the fragment at offset {} of segment {} is damaged (its head, \
                 metadata or body fails its check); it is never served",
                loc.offset, loc.segment
            ),
        ));
    }
    let meta = head.split_off(RECORD_HEADER_LEN);
    Ok(StoredFragment { meta, sealed })
}

/// Completion callback of a write.
pub type Done = Box<dyn FnOnce(io::Result<Option<Location>>) + Send>;

enum Job {
    Header {
        dir: PathBuf,
        id: u64,
        bytes: Bytes,
        done: Done,
    },
    Fragment {
        dir: PathBuf,
        record: FragmentRecord,
        entry: Fragment,
        data: Bytes,
        done: Done,
    },
    Trim {
        dir: PathBuf,
        cutoff_ms: u64,
    },
    DeleteSegments {
        dir: PathBuf,
        segments: Vec<u64>,
    },
    Forget {
        dir: PathBuf,
        done: Box<dyn FnOnce() + Send>,
    },
}

/// Handle to the writer thread.
#[derive(Clone)]
pub struct Writer {
    tx: mpsc::Sender<Job>,
}

#[derive(Default)]
struct OpenStream {
    headers: Option<File>,
    segment: Option<(u64, File, u64)>,
    index: Option<File>,
    /// Bytes in the index log (its length when opened plus what was appended since).
    index_len: u64,
    /// The log is next checked for compaction once it reaches this many bytes.
    index_check_at: u64,
    /// Headers whose write or sync failed: fragments that need them fail too (until the header
    /// is written again successfully).
    failed_headers: std::collections::HashSet<u64>,
    /// Batch number of the last job that used these files (LRU).
    used: u64,
}

impl OpenStream {
    /// Syncs and closes every file (LRU eviction, Forget).
    fn close(self) {
        if let Some((_, f, _)) = &self.segment {
            let _ = f.sync_data();
        }
        if let Some(f) = &self.index {
            let _ = f.sync_data();
        }
        if let Some(f) = &self.headers {
            let _ = f.sync_data();
        }
    }
}

/// The newest segment of `dir` for fragment `seq` to continue, when it has room.
fn reopen_segment(dir: &Path, seq: u64, limit: u64) -> io::Result<Option<(u64, File, u64)>> {
    if !dir.is_dir() {
        return Ok(None);
    }
    let Some(id) = segment_ids(dir)?.into_iter().rev().find(|id| *id <= seq) else {
        return Ok(None);
    };
    let f = open_append(&dir.join(segment_name(id)))?;
    let size = f.metadata()?.len();
    Ok((size < limit).then_some((id, f, size)))
}

/// Where the next compaction check of an index log of `len` bytes goes: after at least half as
/// many bytes again (or `floor`) were appended, so reading the log to check stays amortized O(1)
/// per appended byte.
fn next_check(len: u64, floor: u64) -> u64 {
    len.saturating_add((len / 2).max(floor).max(1))
}

impl OpenStream {
    /// Appends `rec` to the stream's index log (opened on first use). A failed write is cut
    /// back so the log never holds a partial record followed by good ones.
    fn append_index(&mut self, dir: &Path, rec: &[u8], floor: u64) -> io::Result<()> {
        if self.index.is_none() {
            fs::create_dir_all(dir)?;
            let f = open_append(&dir.join(INDEX_FILE))?;
            sync_dir(dir)?;
            self.index_len = f.metadata()?.len();
            self.index_check_at = next_check(self.index_len, floor);
            self.index = Some(f);
        }
        let len = self.index_len;
        let Some(f) = self.index.as_mut() else {
            return Err(io::Error::other("index log not open"));
        };
        if let Err(e) = f.write_all(rec) {
            let _ = f.set_len(len);
            return Err(e);
        }
        self.index_len += rec.len() as u64;
        Ok(())
    }

    /// Online compaction of the index log: once the log is larger than twice a snapshot of the
    /// index it describes plus `floor` bytes, the snapshot is written to [`INDEX_TMP_FILE`],
    /// fsynced, renamed over [`INDEX_FILE`] and the directory fsynced. A crash at any step
    /// leaves the old log (and maybe a stale snapshot file, which [`recover`] removes) or the
    /// new one, and both describe the same index. Runs in the writer thread, the log's only
    /// appender, so no record appended meanwhile can be lost. Returns whether it compacted.
    fn compact_index(
        &mut self,
        dir: &Path,
        floor: u64,
        faults: &Option<Faults>,
    ) -> io::Result<bool> {
        if self.index.is_none() || self.index_len < self.index_check_at {
            return Ok(false);
        }
        let path = dir.join(INDEX_FILE);
        let (rebuilt, read) = read_index_log(&path)?;
        let len = self.index_len;
        let snapshot_len = rebuilt.index.len() as u64 * codec::FRAGMENT_RECORD_LEN as u64;
        // A log that does not parse to its end (or that changed behind the writer's back) is
        // left for recovery to repair.
        let intact = rebuilt.defect.is_none() && read == len;
        if !intact || len <= snapshot_len.saturating_mul(2).saturating_add(floor) {
            self.index_check_at =
                next_check(len, floor).max(snapshot_len.saturating_mul(2).saturating_add(floor));
            return Ok(false);
        }
        let tmp = dir.join(INDEX_TMP_FILE);
        let written = (|| {
            let mut out = io::BufWriter::with_capacity(64 * 1024, File::create(&tmp)?);
            let mut buf = BytesMut::with_capacity(codec::FRAGMENT_RECORD_LEN);
            for f in rebuilt.index.iter() {
                buf.clear();
                f.encode_record(&mut buf);
                out.write_all(&buf)?;
            }
            let f = out.into_inner().map_err(|e| e.into_error())?;
            f.sync_all()?;
            check(faults, FaultPoint::IndexCompactRename, dir)?;
            fs::rename(&tmp, &path)
        })();
        if let Err(e) = written {
            let _ = fs::remove_file(&tmp);
            self.index_check_at = next_check(len, floor);
            return Err(e);
        }
        // The open handle is the replaced file's: appends continue in the new one (reopened on
        // the next append if this fails).
        self.index = None;
        self.index_len = snapshot_len;
        self.index_check_at = snapshot_len.saturating_mul(2).saturating_add(floor);
        let reopened = open_append(&path);
        sync_dir(dir)?;
        self.index = Some(reopened?);
        Ok(true)
    }
}

/// A write or sync the writer performs (for fault injection in tests).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum FaultPoint {
    /// Appending a header record.
    HeaderWrite,
    /// The per-batch fsync of a header log.
    HeaderSync,
    /// Appending a fragment record.
    SegmentWrite,
    /// The per-batch fsync of a segment.
    SegmentSync,
    /// The fsync of a segment that is being rotated out.
    RotateSync,
    /// Index log compaction, between writing (and fsyncing) the snapshot to `index.log.tmp`
    /// and renaming it over `index.log`.
    IndexCompactRename,
}

/// Fault injection: called before each [`FaultPoint`] with the stream directory; an error
/// makes that operation fail as if the file system had failed it.
#[derive(Clone)]
pub struct Faults(pub std::sync::Arc<FaultHook>);

/// The fault-injection callback of [`Faults`].
pub type FaultHook = dyn Fn(FaultPoint, &Path) -> io::Result<()> + Send + Sync;

impl std::fmt::Debug for Faults {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Faults(..)")
    }
}

fn check(faults: &Option<Faults>, point: FaultPoint, dir: &Path) -> io::Result<()> {
    match faults {
        Some(Faults(f)) => f(point, dir),
        None => Ok(()),
    }
}

/// Writer settings.
#[derive(Debug, Clone)]
pub struct WriterConfig {
    /// A new segment starts once the current one exceeds this many bytes.
    pub segment_bytes: u64,
    /// Fault injection (tests); `None` in production.
    pub faults: Option<Faults>,
    /// Most streams whose files stay open (up to 3 descriptors each); the least recently used
    /// ones beyond it are synced and closed.
    pub max_open_streams: usize,
    /// Online index log compaction: a stream's index log is rewritten as a snapshot once it
    /// exceeds twice the snapshot's size plus this many bytes ([`INDEX_COMPACT_FLOOR`]).
    pub index_compact_floor: u64,
}

impl Writer {
    /// Starts the writer thread.
    pub fn start(config: WriterConfig) -> io::Result<Writer> {
        let (tx, rx) = mpsc::channel::<Job>();
        std::thread::Builder::new()
            .name("kvs-writer".into())
            .spawn(move || writer_loop(rx, config))?;
        Ok(Writer { tx })
    }

    /// Appends a producer header (`bytes`: sealed, see [`crate::seal::DataKey::seal_header`]);
    /// `done` runs once it is durable.
    pub fn append_header(&self, dir: PathBuf, id: u64, bytes: Bytes, done: Done) {
        let _ = self.tx.send(Job::Header {
            dir,
            id,
            bytes,
            done,
        });
    }

    /// Appends a fragment to a segment and its index `entry` (with `location` set to the offset
    /// of the body in the segment) to the index log; `done` gets its location once both are
    /// durable. `data` is the sealed body ([`crate::seal::DataKey::seal_fragment`] over
    /// `record.meta()`), at least [`crate::seal::OVERHEAD`] bytes.
    pub fn append_fragment(
        &self,
        dir: PathBuf,
        record: FragmentRecord,
        entry: Fragment,
        data: Bytes,
        done: Done,
    ) {
        let _ = self.tx.send(Job::Fragment {
            dir,
            record,
            entry,
            data,
            done,
        });
    }

    /// Appends a trim record (retention cutoff) to the stream's index log.
    pub fn trim(&self, dir: PathBuf, cutoff_ms: u64) {
        let _ = self.tx.send(Job::Trim { dir, cutoff_ms });
    }

    /// Deletes whole segment files (retention).
    pub fn delete_segments(&self, dir: PathBuf, segments: Vec<u64>) {
        let _ = self.tx.send(Job::DeleteSegments { dir, segments });
    }

    /// Closes the stream's files (before its directory is removed); `done` runs after.
    pub fn forget(&self, dir: PathBuf, done: Box<dyn FnOnce() + Send>) {
        let _ = self.tx.send(Job::Forget { dir, done });
    }
}

fn open_append(path: &Path) -> io::Result<File> {
    OpenOptions::new().create(true).append(true).open(path)
}

fn writer_loop(rx: mpsc::Receiver<Job>, config: WriterConfig) {
    let mut open: HashMap<PathBuf, OpenStream> = HashMap::new();
    let mut batch_no = 0u64;
    while let Ok(first) = rx.recv() {
        batch_no += 1;
        let mut batch = vec![first];
        while batch.len() < 256 {
            match rx.try_recv() {
                Ok(job) => batch.push(job),
                Err(_) => break,
            }
        }
        let mut pending: Vec<(Done, io::Result<Option<Location>>)> = Vec::new();
        let mut touched_headers: Vec<PathBuf> = Vec::new();
        let mut touched_segments: Vec<PathBuf> = Vec::new();
        // Streams whose index log grew in this batch (checked for compaction after it).
        let mut touched_index: Vec<PathBuf> = Vec::new();
        let mut after: Vec<Box<dyn FnOnce() + Send>> = Vec::new();
        // Streams whose durability failed in this batch: every job of the batch fails.
        let mut failed: Vec<PathBuf> = Vec::new();
        // Headers written in this batch, by stream (failed too when their sync fails).
        let mut batch_headers: Vec<(PathBuf, u64)> = Vec::new();
        let faults = &config.faults;
        for job in batch {
            match job {
                Job::Header {
                    dir,
                    id,
                    bytes,
                    done,
                } => {
                    let result = (|| {
                        let s = open.entry(dir.clone()).or_default();
                        if s.headers.is_none() {
                            fs::create_dir_all(&dir)?;
                            s.headers = Some(open_append(&dir.join(HEADERS_FILE))?);
                            sync_dir(&dir)?;
                        }
                        let rec = encode_record(KIND_HEADER, &id.to_le_bytes(), &bytes)?;
                        check(faults, FaultPoint::HeaderWrite, &dir)?;
                        if let Some(f) = s.headers.as_mut() {
                            f.write_all(&rec)?;
                        }
                        Ok(None)
                    })();
                    let s = open.entry(dir.clone()).or_default();
                    if result.is_ok() {
                        s.failed_headers.remove(&id);
                        batch_headers.push((dir.clone(), id));
                    } else {
                        s.failed_headers.insert(id);
                    }
                    if result.is_ok() && !touched_headers.contains(&dir) {
                        touched_headers.push(dir);
                    }
                    pending.push((done, result));
                }
                Job::Fragment {
                    dir,
                    record,
                    mut entry,
                    data,
                    done,
                } => {
                    let result = (|| {
                        let s = open.entry(dir.clone()).or_default();
                        if s.segment.is_none() {
                            // Files closed by the LRU (or a restart): continue the newest
                            // segment rather than starting a small one.
                            s.segment = reopen_segment(&dir, record.seq, config.segment_bytes)?;
                        }
                        if s.failed_headers.contains(&record.header_id) {
                            return Err(io::Error::other(format!(
                                "producer header {} of this fragment was not stored",
                                record.header_id
                            )));
                        }
                        let rotate = match &s.segment {
                            None => true,
                            Some((_, _, size)) => *size >= config.segment_bytes,
                        };
                        if rotate {
                            fs::create_dir_all(&dir)?;
                            if let Some((_, f, _)) = s.segment.take() {
                                let synced = check(faults, FaultPoint::RotateSync, &dir)
                                    .and_then(|()| f.sync_data())
                                    .and_then(|()| match &s.index {
                                        Some(ix) => ix.sync_data(),
                                        None => Ok(()),
                                    });
                                if let Err(e) = synced {
                                    // Earlier jobs of this batch wrote to that segment too.
                                    failed.push(dir.clone());
                                    return Err(e);
                                }
                            }
                            let path = dir.join(segment_name(record.seq));
                            let f = open_append(&path)?;
                            let size = f.metadata()?.len();
                            sync_dir(&dir)?;
                            s.segment = Some((record.seq, f, size));
                        }
                        let meta = record.meta();
                        let rec = encode_record(KIND_FRAGMENT, &meta, &data)?;
                        let Some((seg, f, size)) = s.segment.as_mut() else {
                            return Err(io::Error::other("no open segment"));
                        };
                        let offset = *size + (RECORD_HEADER_LEN + meta.len()) as u64;
                        if let Err(e) = check(faults, FaultPoint::SegmentWrite, &dir)
                            .and_then(|()| f.write_all(&rec))
                        {
                            // Cut what may have been written so the segment stays consistent.
                            let _ = f.set_len(*size);
                            return Err(e);
                        }
                        *size += rec.len() as u64;
                        let (seg, offset) = (*seg, offset);
                        entry.location = offset;
                        let mut log = BytesMut::with_capacity(codec::FRAGMENT_RECORD_LEN);
                        entry.encode_record(&mut log);
                        s.append_index(&dir, &log, config.index_compact_floor)?;
                        Ok(Some(Location {
                            segment: seg,
                            offset,
                            len: (data.len() as u64).saturating_sub(SEAL_OVERHEAD),
                        }))
                    })();
                    if result.is_ok() && !touched_index.contains(&dir) {
                        touched_index.push(dir.clone());
                    }
                    if result.is_ok() && !touched_segments.contains(&dir) {
                        touched_segments.push(dir);
                    }
                    pending.push((done, result));
                }
                Job::Trim { dir, cutoff_ms } => {
                    let s = open.entry(dir.clone()).or_default();
                    let mut log = BytesMut::with_capacity(16);
                    codec::encode_trim(cutoff_ms, &mut log);
                    // Durable with the next batch that touches this stream; losing it only
                    // means the trim is redone after a restart.
                    let _ = s.append_index(&dir, &log, config.index_compact_floor);
                    if !touched_index.contains(&dir) {
                        touched_index.push(dir);
                    }
                }
                Job::DeleteSegments { dir, segments } => {
                    let current = open
                        .get(&dir)
                        .and_then(|s| s.segment.as_ref().map(|(id, _, _)| *id));
                    for seg in segments {
                        if Some(seg) != current {
                            let _ = fs::remove_file(dir.join(segment_name(seg)));
                        }
                    }
                    let _ = sync_dir(&dir);
                }
                Job::Forget { dir, done } => {
                    if let Some(s) = open.remove(&dir) {
                        s.close();
                    }
                    touched_headers.retain(|d| d != &dir);
                    touched_segments.retain(|d| d != &dir);
                    touched_index.retain(|d| d != &dir);
                    after.push(done);
                }
            }
        }
        // Headers first: a fragment must never be durable without its header.
        for dir in &touched_headers {
            if let Some(s) = open.get_mut(dir)
                && let Some(f) = s.headers.as_ref()
                && check(faults, FaultPoint::HeaderSync, dir)
                    .and_then(|()| f.sync_data())
                    .is_err()
            {
                failed.push(dir.clone());
                for (_, id) in batch_headers.iter().filter(|(d, _)| d == dir) {
                    s.failed_headers.insert(*id);
                }
            }
        }
        for dir in &touched_segments {
            if let Some((_, f, _)) = open.get(dir).and_then(|s| s.segment.as_ref())
                && check(faults, FaultPoint::SegmentSync, dir)
                    .and_then(|()| f.sync_data())
                    .is_err()
            {
                failed.push(dir.clone());
            }
        }
        // The index log is not fsynced per batch: the segments are the ground truth, and
        // recovery re-adds fragments whose index records were lost (see `recover`). It is synced
        // when a segment rotates and when the stream's files are closed.
        for (done, result) in pending {
            let result = if failed.is_empty() {
                result
            } else {
                result.and(Err(io::Error::other("fsync failed")))
            };
            done(result);
        }
        for f in after {
            f();
        }
        // After the completions, so compaction never delays an acknowledgement. A failed
        // compaction leaves the log as it was (it is retried once the log grew further).
        for dir in &touched_index {
            if let Some(s) = open.get_mut(dir) {
                let _ = s.compact_index(dir, config.index_compact_floor, faults);
            }
        }
        for s in open.values_mut() {
            if s.used == 0 {
                s.used = batch_no;
            }
        }
        for dir in touched_headers.iter().chain(&touched_segments) {
            if let Some(s) = open.get_mut(dir) {
                s.used = batch_no;
            }
        }
        // Bounded descriptors: close the least recently used streams' files.
        while open.len() > config.max_open_streams.max(1) {
            // Streams with a failed header keep their state (their fragments must keep failing).
            let Some(lru) = open
                .iter()
                .filter(|(_, s)| s.failed_headers.is_empty())
                .min_by_key(|(_, s)| s.used)
                .map(|(d, _)| d.clone())
            else {
                break;
            };
            if let Some(s) = open.remove(&lru) {
                s.close();
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::seal::OVERHEAD;

    #[test]
    fn records_round_trip_and_tail_is_cut() {
        let dir = std::env::temp_dir().join(format!("kvs-store-test-{}", std::process::id()));
        let _ = fs::remove_dir_all(&dir);
        let writer = Writer::start(WriterConfig {
            segment_bytes: 100,
            faults: None,
            max_open_streams: 8,
            index_compact_floor: INDEX_COMPACT_FLOOR,
        })
        .unwrap();
        let (tx, rx) = mpsc::channel();
        let t = tx.clone();
        writer.append_header(
            dir.clone(),
            7,
            Bytes::from_static(b"head"),
            Box::new(move |r| t.send(r.map(|_| None)).unwrap()),
        );
        for seq in 0..5u64 {
            let t = tx.clone();
            let record = FragmentRecord {
                seq,
                server_ms: 1000 + seq,
                producer_ms: 2000 + seq,
                duration_ms: 10,
                header_id: 7,
                timecode: seq * 10,
                random: seq as u32,
            };
            let entry = Fragment {
                sequence: seq,
                server_timestamp_ms: 1000 + seq,
                producer_timestamp_ms: 2000 + seq,
                location: 0,
                size_bytes: 60,
                duration_ms: 10,
                random: seq as u32,
            };
            writer.append_fragment(
                dir.clone(),
                record,
                entry,
                Bytes::from(vec![seq as u8; 60 + OVERHEAD]),
                Box::new(move |r| t.send(r).unwrap()),
            );
        }
        let mut locs = Vec::new();
        for _ in 0..6 {
            if let Some(l) = rx.recv().unwrap().unwrap() {
                locs.push(l);
            }
        }
        assert_eq!(locs.len(), 5);
        // A torn record at the end of the last segment.
        let last = *segment_ids(&dir).unwrap().last().unwrap();
        let mut f = open_append(&dir.join(segment_name(last))).unwrap();
        f.write_all(b"KVS2\x02\x34\x00\x00\x00\xff\x00\x00\x00garbage")
            .unwrap();
        let (tx2, rx2) = mpsc::channel();
        writer.forget(dir.clone(), Box::new(move || tx2.send(()).unwrap()));
        rx2.recv().unwrap();
        // And a torn index record.
        let mut f = open_append(&dir.join(INDEX_FILE)).unwrap();
        f.write_all(&[codec::RECORD_FRAGMENT, 44, 1, 2, 3]).unwrap();
        let rec = recover(&dir, 0).unwrap();
        assert_eq!(rec.index.len(), 5);
        assert!(rec.truncated_bytes > 0);
        assert_eq!(rec.index_recovery.from_log, 5);
        assert_eq!(rec.index_recovery.log_truncated_bytes, 5);
        assert!(!rec.index_recovery.rebuilt_from_segments);
        assert_eq!(
            rec.segments.len(),
            locs.iter()
                .map(|l| l.segment)
                .collect::<BTreeSet<_>>()
                .len()
        );
        for (i, f) in rec.index.iter().enumerate() {
            let seg = *rec.segments.range(..=f.sequence).next_back().unwrap();
            assert_eq!(seg, locs[i].segment);
            assert_eq!(f.location, locs[i].offset);
            assert_eq!(u64::from(f.size_bytes), locs[i].len);
            let data = read_fragment(&dir, locs[i]).unwrap();
            assert_eq!(data.sealed, vec![i as u8; 60 + OVERHEAD]);
            assert_eq!(
                FragmentRecord::parse_meta(&data.meta).unwrap().seq,
                i as u64
            );
        }
        assert_eq!(rec.headers[&7], b"head");
        assert_eq!(rec.header_runs.get(&0), Some(&7));
        // The log was rewritten clean: a second recovery changes nothing.
        let again = recover(&dir, 0).unwrap();
        assert_eq!(again.index_recovery.log_truncated_bytes, 0);
        assert_eq!(again.index.len(), 5);
        // A lost index log is rebuilt from the segments.
        fs::remove_file(dir.join(INDEX_FILE)).unwrap();
        let lost = recover(&dir, 0).unwrap();
        assert_eq!(lost.index.len(), 5);
        assert_eq!(lost.index_recovery.appended_from_segments, 5);
        // An index record disagreeing with the data makes the segments win.
        let mut bad = BytesMut::new();
        let mut wrong = *lost.index.first().unwrap();
        wrong.location += 1;
        wrong.encode_record(&mut bad);
        fs::write(dir.join(INDEX_FILE), &bad).unwrap();
        let fixed = recover(&dir, 0).unwrap();
        assert!(fixed.index_recovery.rebuilt_from_segments);
        assert_eq!(fixed.index.len(), 5);
        assert_eq!(fixed.index.first().unwrap().location, locs[0].offset);
        fs::remove_dir_all(&dir).unwrap();
    }

    fn record(seq: u64, header_id: u64) -> (FragmentRecord, Fragment) {
        let record = FragmentRecord {
            seq,
            server_ms: 1000 + seq,
            producer_ms: 2000 + seq,
            duration_ms: 10,
            header_id,
            timecode: seq * 10,
            random: 0,
        };
        let entry = Fragment {
            sequence: seq,
            server_timestamp_ms: 1000 + seq,
            producer_timestamp_ms: 2000 + seq,
            location: 0,
            size_bytes: 60,
            duration_ms: 10,
            random: 0,
        };
        (record, entry)
    }

    type Results = mpsc::Receiver<(u64, bool)>;

    fn send_fragment(
        w: &Writer,
        dir: &Path,
        seq: u64,
        header: u64,
        tx: &mpsc::Sender<(u64, bool)>,
    ) {
        let (record, entry) = record(seq, header);
        let t = tx.clone();
        w.append_fragment(
            dir.to_owned(),
            record,
            entry,
            Bytes::from(vec![1u8; 60 + OVERHEAD]),
            Box::new(move |r| t.send((seq, r.is_ok())).unwrap()),
        );
    }

    fn send_header(w: &Writer, dir: &Path, id: u64, tx: &mpsc::Sender<(u64, bool)>) {
        let t = tx.clone();
        w.append_header(
            dir.to_owned(),
            id,
            Bytes::from_static(b"head"),
            Box::new(move |r| t.send((u64::MAX - id, r.is_ok())).unwrap()),
        );
    }

    fn collect(rx: &Results, n: usize) -> BTreeMap<u64, bool> {
        (0..n).map(|_| rx.recv().unwrap()).collect()
    }

    fn faulty(
        segment_bytes: u64,
        hook: impl Fn(FaultPoint, &Path) -> io::Result<()> + Send + Sync + 'static,
    ) -> Writer {
        Writer::start(WriterConfig {
            segment_bytes,
            faults: Some(Faults(std::sync::Arc::new(hook))),
            max_open_streams: 8,
            index_compact_floor: INDEX_COMPACT_FLOOR,
        })
        .unwrap()
    }

    #[test]
    fn one_record_out_of_order_does_not_hide_the_rest() {
        assert_eq!(
            longest_non_decreasing(&[1, 9, 2, 3, 3, 4]),
            vec![0, 2, 3, 4, 5]
        );
        assert_eq!(longest_non_decreasing(&[5, 1, 2]), vec![1, 2]);
        assert!(longest_non_decreasing(&[]).is_empty());
        assert_eq!(longest_non_decreasing(&[7, 7]), vec![0, 1]);
    }

    #[test]
    fn fragments_fail_when_their_header_was_not_stored() {
        use std::sync::atomic::{AtomicBool, Ordering};
        let dir = std::env::temp_dir().join(format!("kvs-store-hdr-{}", std::process::id()));
        let _ = fs::remove_dir_all(&dir);
        let broken = std::sync::Arc::new(AtomicBool::new(true));
        let b = broken.clone();
        let w = faulty(1 << 20, move |p, _| {
            if p == FaultPoint::HeaderSync && b.load(Ordering::SeqCst) {
                Err(io::Error::other("injected header fsync failure"))
            } else {
                Ok(())
            }
        });
        let (tx, rx) = mpsc::channel();
        send_header(&w, &dir, 7, &tx);
        assert!(!collect(&rx, 1)[&(u64::MAX - 7)]);
        // A later batch: the fragment needs header 7, which never became durable.
        send_fragment(&w, &dir, 0, 7, &tx);
        assert!(!collect(&rx, 1)[&0]);
        // Written again successfully: fragments that need it are stored.
        broken.store(false, Ordering::SeqCst);
        send_header(&w, &dir, 7, &tx);
        assert!(collect(&rx, 1)[&(u64::MAX - 7)]);
        send_fragment(&w, &dir, 1, 7, &tx);
        assert!(collect(&rx, 1)[&1]);
        let _ = fs::remove_dir_all(&dir);
    }

    #[test]
    fn failed_rotation_sync_fails_every_job_of_the_batch() {
        let dir = std::env::temp_dir().join(format!("kvs-store-rot-{}", std::process::id()));
        let _ = fs::remove_dir_all(&dir);
        let w = faulty(100, |p, _| match p {
            // Holds the writer so the next jobs queue up into one batch.
            FaultPoint::HeaderWrite => {
                std::thread::sleep(std::time::Duration::from_millis(200));
                Ok(())
            }
            FaultPoint::RotateSync => Err(io::Error::other("injected rotation fsync failure")),
            _ => Ok(()),
        });
        let (tx, rx) = mpsc::channel();
        send_header(&w, &dir, 7, &tx);
        std::thread::sleep(std::time::Duration::from_millis(50));
        // One batch: fragment 0 opens a segment, fragment 1 rotates it out (its sync fails).
        send_fragment(&w, &dir, 0, 7, &tx);
        send_fragment(&w, &dir, 1, 7, &tx);
        let r = collect(&rx, 3);
        assert!(r[&(u64::MAX - 7)]);
        assert!(!r[&1], "{r:?}");
        assert!(
            !r[&0],
            "fragment 0 was written to the segment whose sync failed: {r:?}"
        );
        let _ = fs::remove_dir_all(&dir);
    }

    /// Open descriptors of this process under `root`.
    fn fds_under(root: &Path) -> usize {
        fs::read_dir("/proc/self/fd")
            .unwrap()
            .flatten()
            .filter_map(|e| fs::read_link(e.path()).ok())
            .filter(|p| p.starts_with(root))
            .count()
    }

    #[test]
    fn open_files_are_bounded_by_an_lru() {
        let root = std::env::temp_dir().join(format!("kvs-store-lru-{}", std::process::id()));
        let _ = fs::remove_dir_all(&root);
        let w = Writer::start(WriterConfig {
            segment_bytes: 1 << 20,
            faults: None,
            max_open_streams: 2,
            index_compact_floor: INDEX_COMPACT_FLOOR,
        })
        .unwrap();
        let (tx, rx) = mpsc::channel();
        let dirs: Vec<PathBuf> = (0..6).map(|i| root.join(format!("s{i}"))).collect();
        for round in 0..2u64 {
            for d in &dirs {
                if round == 0 {
                    send_header(&w, d, 7, &tx);
                    collect(&rx, 1);
                }
                send_fragment(&w, d, round, 7, &tx);
                assert!(collect(&rx, 1)[&round]);
            }
        }
        // At most two streams' files (3 each) stay open.
        assert!(
            fds_under(&root) <= 6,
            "{} descriptors open",
            fds_under(&root)
        );
        for d in &dirs {
            // Reopened streams continued their segment instead of starting a new one.
            assert_eq!(segment_ids(d).unwrap(), vec![0]);
            let rec = recover(d, 0).unwrap();
            assert_eq!(rec.index.len(), 2);
        }
        let _ = fs::remove_dir_all(&root);
    }

    /// Writes header 7 (and 8 when `two_headers`) and fragments `0..n` (bodies of byte
    /// `10 + seq`, fragment 1 under header 8 when `two_headers`) to one segment of `dir`; returns
    /// their locations.
    fn write_stream(dir: &Path, n: u64, two_headers: bool) -> Vec<Location> {
        let _ = fs::remove_dir_all(dir);
        let w = Writer::start(WriterConfig {
            segment_bytes: 1 << 20,
            faults: None,
            max_open_streams: 8,
            index_compact_floor: INDEX_COMPACT_FLOOR,
        })
        .unwrap();
        let (tx, rx) = mpsc::channel();
        send_header(&w, dir, 7, &tx);
        collect(&rx, 1);
        if two_headers {
            send_header(&w, dir, 8, &tx);
            collect(&rx, 1);
        }
        let (ltx, lrx) = mpsc::channel();
        let mut locs = Vec::new();
        for seq in 0..n {
            let header = if two_headers && seq == 1 { 8 } else { 7 };
            let (record, entry) = record(seq, header);
            let t = ltx.clone();
            w.append_fragment(
                dir.to_owned(),
                record,
                entry,
                Bytes::from(vec![10 + seq as u8; 60 + OVERHEAD]),
                Box::new(move |r| t.send(r).unwrap()),
            );
            locs.push(lrx.recv().unwrap().unwrap().unwrap());
        }
        let (tx2, rx2) = mpsc::channel();
        w.forget(dir.to_owned(), Box::new(move || tx2.send(()).unwrap()));
        rx2.recv().unwrap();
        locs
    }

    /// Start of the record of the fragment at `loc`.
    fn record_start(loc: Location) -> u64 {
        loc.offset - (RECORD_HEADER_LEN + META_LEN) as u64
    }

    fn xor_byte(path: &Path, at: u64, mask: u8) {
        let mut b = fs::read(path).unwrap();
        b[at as usize] ^= mask;
        fs::write(path, b).unwrap();
    }

    fn seqs(rec: &Recovered) -> Vec<u64> {
        rec.index.iter().map(|f| f.sequence).collect()
    }

    #[test]
    fn a_damaged_head_mid_segment_keeps_every_later_record() {
        let dir = std::env::temp_dir().join(format!("kvs-store-resync-{}", std::process::id()));
        let locs = write_stream(&dir, 3, false);
        let seg = dir.join(segment_name(0));
        let len = fs::metadata(&seg).unwrap().len();
        for (what, at) in [
            ("head", record_start(locs[1]) + 10),
            ("magic", record_start(locs[1])),
            ("metadata", locs[1].offset - 20),
        ] {
            let pristine = fs::read(&seg).unwrap();
            xor_byte(&seg, at, 0x40);
            for round in 0..2 {
                let rec = recover(&dir, 0).unwrap();
                // Nothing cut; the index log keeps listing fragment 1.
                assert_eq!(rec.truncated_bytes, 0, "{what} {round}");
                assert_eq!(fs::metadata(&seg).unwrap().len(), len, "{what}");
                assert_eq!(seqs(&rec), vec![0, 1, 2], "{what} {round}");
                assert!(!rec.index_recovery.rebuilt_from_segments, "{what}");
                assert_eq!(rec.index_recovery.damaged_records, 1, "{what}");
                assert_eq!(
                    rec.damaged_ranges[&0],
                    vec![(record_start(locs[1]), record_start(locs[2]))],
                    "{what}"
                );
                let e = read_fragment(&dir, locs[1]).unwrap_err();
                assert_eq!(e.kind(), io::ErrorKind::InvalidData, "{what}");
                for i in [0, 2] {
                    let data = read_fragment(&dir, locs[i]).unwrap();
                    assert_eq!(data.sealed, vec![10 + i as u8; 60 + OVERHEAD]);
                }
            }
            fs::write(&seg, pristine).unwrap();
        }
        // The index log lost as well: fragment 1 is gone (nothing lists it), 2 is kept.
        xor_byte(&seg, record_start(locs[1]) + 7, 0x01);
        fs::remove_file(dir.join(INDEX_FILE)).unwrap();
        let rec = recover(&dir, 0).unwrap();
        assert_eq!(seqs(&rec), vec![0, 2]);
        assert_eq!(seqs(&recover(&dir, 0).unwrap()), vec![0, 2]);
        // The writer appends after the real end of the file.
        let w = Writer::start(WriterConfig {
            segment_bytes: 1 << 20,
            faults: None,
            max_open_streams: 8,
            index_compact_floor: INDEX_COMPACT_FLOOR,
        })
        .unwrap();
        let (tx, rx) = mpsc::channel();
        send_fragment(&w, &dir, 3, 7, &tx);
        assert!(collect(&rx, 1)[&3]);
        let (tx2, rx2) = mpsc::channel();
        w.forget(dir.clone(), Box::new(move || tx2.send(()).unwrap()));
        rx2.recv().unwrap();
        assert_eq!(fs::metadata(&seg).unwrap().len(), len + 161);
        let rec = recover(&dir, 0).unwrap();
        assert_eq!(seqs(&rec), vec![0, 2, 3]);
        let last = rec.index.last().unwrap();
        assert_eq!(last.location, len + (RECORD_HEADER_LEN + META_LEN) as u64);
        let _ = fs::remove_dir_all(&dir);
    }

    #[test]
    fn a_damaged_head_at_the_tail_is_cut() {
        let dir = std::env::temp_dir().join(format!("kvs-store-tailhd-{}", std::process::id()));
        let locs = write_stream(&dir, 3, false);
        let seg = dir.join(segment_name(0));
        xor_byte(&seg, record_start(locs[2]) + 12, 0x40);
        let rec = recover(&dir, 0).unwrap();
        assert_eq!(seqs(&rec), vec![0, 1]);
        assert_eq!(rec.truncated_bytes, 161);
        assert!(rec.damaged_ranges.is_empty());
        assert_eq!(fs::metadata(&seg).unwrap().len(), record_start(locs[2]));
        let again = recover(&dir, 0).unwrap();
        assert_eq!(seqs(&again), vec![0, 1]);
        assert_eq!(again.truncated_bytes, 0);
        let _ = fs::remove_dir_all(&dir);
    }

    #[test]
    fn a_damaged_header_record_does_not_cut_later_headers() {
        let dir = std::env::temp_dir().join(format!("kvs-store-hdrdmg-{}", std::process::id()));
        let locs = write_stream(&dir, 3, true);
        let headers = dir.join(HEADERS_FILE);
        let len = fs::metadata(&headers).unwrap().len();
        // Header 7's record is first: damage its head.
        xor_byte(&headers, 6, 0x40);
        for _ in 0..2 {
            let rec = recover(&dir, 0).unwrap();
            assert_eq!(fs::metadata(&headers).unwrap().len(), len);
            assert!(!rec.headers.contains_key(&7));
            assert_eq!(rec.headers[&8], b"head");
            // Fragments under the lost header stay listed (they fail when read).
            assert_eq!(seqs(&rec), vec![0, 1, 2]);
            assert_eq!(rec.damaged_header_ranges.len(), 1);
        }
        assert!(read_fragment(&dir, locs[1]).is_ok());
        let _ = fs::remove_dir_all(&dir);
    }

    #[test]
    fn any_single_byte_flip_loses_only_the_damaged_record() {
        let dir = std::env::temp_dir().join(format!("kvs-store-flips-{}", std::process::id()));
        let locs = write_stream(&dir, 3, false);
        let seg = dir.join(segment_name(0));
        let index = dir.join(INDEX_FILE);
        let (seg_bytes, index_bytes) = (fs::read(&seg).unwrap(), fs::read(&index).unwrap());
        let bounds: Vec<(u64, u64)> = locs
            .iter()
            .map(|l| (record_start(*l), l.offset + l.len + SEAL_OVERHEAD))
            .collect();
        for at in 0..seg_bytes.len() as u64 {
            for mask in [0x01u8, 0xff] {
                fs::write(&seg, &seg_bytes).unwrap();
                fs::write(&index, &index_bytes).unwrap();
                xor_byte(&seg, at, mask);
                let damaged = bounds.iter().position(|(a, b)| (*a..*b).contains(&at));
                let rec = recover(&dir, 0).unwrap();
                let listed = seqs(&rec);
                for (i, loc) in locs.iter().enumerate() {
                    let ctx = format!("flip {mask:#x} at {at} (record {damaged:?}), record {i}");
                    if Some(i) != damaged {
                        assert!(listed.contains(&(i as u64)), "{ctx}: {listed:?}");
                        let data = read_fragment(&dir, *loc).unwrap();
                        assert_eq!(data.sealed, vec![10 + i as u8; 60 + OVERHEAD], "{ctx}");
                        continue;
                    }
                    if let Some(f) = rec.index.iter().find(|f| f.sequence == i as u64) {
                        let loc = Location {
                            segment: 0,
                            offset: f.location,
                            len: u64::from(f.size_bytes),
                        };
                        // A damaged record never reads back as other bytes.
                        if let Ok(data) = read_fragment(&dir, loc) {
                            assert_eq!(data.sealed, vec![10 + i as u8; 60 + OVERHEAD], "{ctx}");
                            assert_eq!(data.meta, record(i as u64, 7).0.meta(), "{ctx}");
                        }
                    }
                }
                // Idempotent.
                let again = recover(&dir, 0).unwrap();
                assert_eq!(seqs(&again), listed, "flip at {at}");
                assert_eq!(again.truncated_bytes, 0, "flip at {at}");
            }
        }
        let _ = fs::remove_dir_all(&dir);
    }

    /// A fresh directory (named by `tag`) holding stream 7's header and fragments 0..6 in
    /// 200-byte segments (161-byte records: two fragments per segment), the writer forgotten.
    fn six_fragments_in_small_segments(tag: &str) -> PathBuf {
        let dir = std::env::temp_dir().join(format!("kvs-store-{tag}-{}", std::process::id()));
        let _ = fs::remove_dir_all(&dir);
        // 161-byte records, 200-byte segments: two fragments per segment.
        let w = Writer::start(WriterConfig {
            segment_bytes: 200,
            faults: None,
            max_open_streams: 8,
            index_compact_floor: INDEX_COMPACT_FLOOR,
        })
        .unwrap();
        let (tx, rx) = mpsc::channel();
        send_header(&w, &dir, 7, &tx);
        collect(&rx, 1);
        for seq in 0..6 {
            send_fragment(&w, &dir, seq, 7, &tx);
            assert!(collect(&rx, 1)[&seq]);
        }
        let (tx2, rx2) = mpsc::channel();
        w.forget(dir.clone(), Box::new(move || tx2.send(()).unwrap()));
        rx2.recv().unwrap();
        dir
    }

    #[test]
    fn a_damaged_head_in_a_sealed_segment_is_skipped_too() {
        let dir = six_fragments_in_small_segments("sealdmg");
        // The first record of the oldest (sealed) segment.
        xor_byte(&dir.join(segment_name(0)), 3, 0x40);
        for _ in 0..2 {
            let rec = recover(&dir, 0).unwrap();
            assert_eq!(seqs(&rec), vec![0, 1, 2, 3, 4, 5]);
            assert_eq!(rec.truncated_bytes, 0);
            assert_eq!(rec.damaged_ranges[&0], vec![(0, 161)]);
            assert_eq!(rec.index_recovery.segments_fully_scanned, 3);
            assert!(!rec.index_recovery.rebuilt_from_segments);
        }
        let _ = fs::remove_dir_all(&dir);
    }

    #[test]
    fn recovery_reads_sealed_segments_lightly_and_applies_retention() {
        let dir = six_fragments_in_small_segments("rec");
        assert_eq!(segment_ids(&dir).unwrap().len(), 3);
        let rec = recover(&dir, 0).unwrap();
        assert_eq!(rec.index.len(), 6);
        // Only the newest segment was read in full.
        assert_eq!(rec.index_recovery.segments_fully_scanned, 1);
        assert!(!rec.index_recovery.rebuilt_from_segments);
        // A log that disagrees makes every segment verified.
        fs::remove_file(dir.join(INDEX_FILE)).unwrap();
        let mut bad = BytesMut::new();
        let mut wrong = *rec.index.first().unwrap();
        wrong.size_bytes += 1;
        wrong.encode_record(&mut bad);
        fs::write(dir.join(INDEX_FILE), &bad).unwrap();
        let fixed = recover(&dir, 0).unwrap();
        assert_eq!(fixed.index.len(), 6);
        assert_eq!(fixed.index_recovery.segments_fully_scanned, 3);
        // Retention: server timestamps are 1000 + seq; a cutoff of 1003 keeps 3..=5.
        let kept = recover(&dir, 1003).unwrap();
        let seqs: Vec<u64> = kept.index.iter().map(|f| f.sequence).collect();
        assert_eq!(seqs, vec![3, 4, 5]);
        let _ = fs::remove_dir_all(&dir);
    }

    /// Runs `rounds` rounds of 10 fragments followed by a trim keeping the last 5 through
    /// `w`, and returns the index those operations describe (with the writer's locations).
    fn appends_and_trims(w: &Writer, dir: &Path, rounds: u64) -> FragmentIndex {
        let (tx, rx) = mpsc::channel();
        let t = tx.clone();
        w.append_header(
            dir.to_owned(),
            7,
            Bytes::from_static(b"head"),
            Box::new(move |r| t.send((u64::MAX, r.unwrap())).unwrap()),
        );
        assert_eq!(rx.recv().unwrap(), (u64::MAX, None));
        let mut expected = FragmentIndex::new();
        for round in 0..rounds {
            for seq in round * 10..round * 10 + 10 {
                let (record, entry) = record(seq, 7);
                let t = tx.clone();
                w.append_fragment(
                    dir.to_owned(),
                    record,
                    entry,
                    Bytes::from(vec![1u8; 60 + OVERHEAD]),
                    Box::new(move |r| t.send((seq, r.unwrap())).unwrap()),
                );
                let (got, loc) = rx.recv().unwrap();
                assert_eq!(got, seq);
                let mut e = entry;
                e.location = loc.unwrap().offset;
                expected.append(e).unwrap();
            }
            // Keep the last 5 fragments (server time 1000 + seq).
            let cutoff = 1000 + round * 10 + 5;
            w.trim(dir.to_owned(), cutoff);
            expected.trim_before(cutoff);
        }
        // Every job before it (and the compaction after its batch) is done once this runs.
        let (tx2, rx2) = mpsc::channel();
        w.forget(dir.to_owned(), Box::new(move || tx2.send(()).unwrap()));
        rx2.recv().unwrap();
        expected
    }

    fn entries(index: &FragmentIndex) -> Vec<Fragment> {
        index.iter().copied().collect()
    }

    #[test]
    fn index_log_is_compacted_while_running() {
        let dir = std::env::temp_dir().join(format!("kvs-store-compact-{}", std::process::id()));
        let _ = fs::remove_dir_all(&dir);
        let w = Writer::start(WriterConfig {
            segment_bytes: 1 << 20,
            faults: None,
            max_open_streams: 8,
            index_compact_floor: 1000,
        })
        .unwrap();
        let rounds = 200;
        let expected = appends_and_trims(&w, &dir, rounds);
        assert_eq!(expected.len(), 5);
        // 2000 fragment records and 200 trims were appended (over 100 KB); the log stays near
        // twice its live snapshot (5 records) plus the floor.
        let appended = rounds * (10 * codec::FRAGMENT_RECORD_LEN as u64 + 14);
        let len = fs::metadata(dir.join(INDEX_FILE)).unwrap().len();
        assert!(
            len < 3000,
            "index log of {len} bytes after {appended} appended"
        );
        assert!(!dir.join(INDEX_TMP_FILE).exists());
        let log = fs::read(dir.join(INDEX_FILE)).unwrap();
        let rebuilt = Rebuilder::rebuild(&log, Default::default());
        assert!(rebuilt.defect.is_none());
        assert_eq!(entries(&rebuilt.index), entries(&expected));
        // Recovery from the compacted log gives the same index, with nothing to repair.
        let rec = recover(&dir, 0).unwrap();
        assert_eq!(entries(&rec.index), entries(&expected));
        assert!(!rec.index_recovery.rebuilt_from_segments);
        assert_eq!(rec.index_recovery.appended_from_segments, 0);
        assert_eq!(rec.index_recovery.log_truncated_bytes, 0);
        // Fragments appended after a compaction land in the new log (the writer reopened it).
        let last = rec.index.last().unwrap();
        assert!(
            read_fragment(
                &dir,
                Location {
                    segment: *rec.segments.range(..=last.sequence).next_back().unwrap(),
                    offset: last.location,
                    len: u64::from(last.size_bytes),
                }
            )
            .is_ok()
        );
        let _ = fs::remove_dir_all(&dir);
    }

    /// A crash between writing the compacted snapshot and renaming it: the directory as it is
    /// at that point (copied by the fault hook) recovers the same index, and the stale snapshot
    /// is removed; the writer carries on and compacts later.
    #[test]
    fn crash_before_compaction_rename_recovers() {
        use std::sync::atomic::{AtomicUsize, Ordering};
        let base = std::env::temp_dir().join(format!("kvs-store-crash-{}", std::process::id()));
        let _ = fs::remove_dir_all(&base);
        let dir = base.join("live");
        let crashed = base.join("crashed");
        let calls = std::sync::Arc::new(AtomicUsize::new(0));
        let c = calls.clone();
        let copy_to = crashed.clone();
        let w = Writer::start(WriterConfig {
            segment_bytes: 1 << 20,
            faults: Some(Faults(std::sync::Arc::new(move |p, d: &Path| {
                if p != FaultPoint::IndexCompactRename {
                    return Ok(());
                }
                if c.fetch_add(1, Ordering::SeqCst) == 0 {
                    // The disk as a crash here would leave it.
                    fs::create_dir_all(&copy_to).unwrap();
                    for e in fs::read_dir(d).unwrap() {
                        let e = e.unwrap();
                        fs::copy(e.path(), copy_to.join(e.file_name())).unwrap();
                    }
                    return Err(io::Error::other("injected crash before the rename"));
                }
                Ok(())
            }))),
            max_open_streams: 8,
            index_compact_floor: 1000,
        })
        .unwrap();
        let expected = appends_and_trims(&w, &dir, 100);
        assert!(
            calls.load(Ordering::SeqCst) >= 2,
            "no compaction after the crash"
        );
        // The crashed copy: the old log and a complete snapshot of the same index.
        let tmp = crashed.join(INDEX_TMP_FILE);
        let old = Rebuilder::rebuild(
            &fs::read(crashed.join(INDEX_FILE)).unwrap(),
            Default::default(),
        );
        let snapshot = Rebuilder::rebuild(&fs::read(&tmp).unwrap(), Default::default());
        assert!(old.defect.is_none() && snapshot.defect.is_none());
        assert!(snapshot.valid_bytes < old.valid_bytes);
        assert_eq!(entries(&snapshot.index), entries(&old.index));
        let rec = recover(&crashed, 0).unwrap();
        assert!(!tmp.exists(), "recovery leaves the interrupted snapshot");
        assert_eq!(entries(&rec.index), entries(&old.index));
        assert!(!rec.index_recovery.rebuilt_from_segments);
        assert_eq!(rec.index_recovery.appended_from_segments, 0);
        // The failed attempt removed its snapshot; the live directory recovers everything.
        assert!(!dir.join(INDEX_TMP_FILE).exists());
        let live = recover(&dir, 0).unwrap();
        assert_eq!(entries(&live.index), entries(&expected));
        let _ = fs::remove_dir_all(&base);
    }
}
