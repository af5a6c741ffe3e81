//! Durable fragment storage: per stream, an append-only header log and append-only segment
//! files of fragment records, written by one writer thread that group-commits (one `fsync` per
//! touched file per batch, across streams) and reports completion only after the data is durable.
//!
//! Record layout (little endian): `"KVSF"`, kind (1 = header, 2 = fragment), payload length
//! (u32), CRC-32 of the payload (u32), payload. Recovery reads records until the first one that is
//! truncated or fails its CRC and cuts the file there, so a crash never leaves a partial fragment
//! visible.

use std::collections::HashMap;
use std::fs::{self, File, OpenOptions};
use std::io::{self, Read, Seek, SeekFrom, Write};
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};
use std::sync::mpsc;

use bytes::{BufMut, Bytes, BytesMut};

const MAGIC: &[u8; 4] = b"KVSF";
const RECORD_HEADER_LEN: usize = 13;
const KIND_HEADER: u8 = 1;
const KIND_FRAGMENT: u8 = 2;
/// Largest record accepted on recovery (a fragment is at most 50 MB plus its metadata).
const MAX_RECORD_LEN: u32 = 64 * 1024 * 1024;
const HEADERS_FILE: &str = "headers.log";

/// Where a fragment's bytes are on disk.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Location {
    /// Segment id (the sequence number of its first fragment).
    pub segment: u64,
    /// Offset of the fragment bytes in the segment file.
    pub offset: u64,
    /// Length of the fragment bytes.
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
    /// The fragment number.
    pub number: String,
}

/// A fragment found on disk at recovery.
#[derive(Debug, Clone)]
pub struct RecoveredFragment {
    /// Its fields.
    pub record: FragmentRecord,
    /// Where its bytes are.
    pub location: Location,
}

/// Everything recovered for one stream directory.
#[derive(Debug, Default)]
pub struct Recovered {
    /// Producer headers by id.
    pub headers: HashMap<u64, Bytes>,
    /// Fragments in sequence order.
    pub fragments: Vec<RecoveredFragment>,
    /// Bytes cut from partial tails.
    pub truncated_bytes: u64,
}

fn encode_record(kind: u8, payload_parts: &[&[u8]]) -> Bytes {
    let len: usize = payload_parts.iter().map(|p| p.len()).sum();
    let mut crc = kvs_core::crc32::Crc32::new();
    for p in payload_parts {
        crc.update(p);
    }
    let mut out = BytesMut::with_capacity(RECORD_HEADER_LEN + len);
    out.put_slice(MAGIC);
    out.put_u8(kind);
    out.put_u32_le(u32::try_from(len).unwrap_or(u32::MAX));
    out.put_u32_le(crc.finalize());
    for p in payload_parts {
        out.put_slice(p);
    }
    out.freeze()
}

fn fragment_meta(r: &FragmentRecord) -> Vec<u8> {
    let mut m = Vec::with_capacity(49 + r.number.len());
    for v in [
        r.seq,
        r.server_ms,
        r.producer_ms,
        r.duration_ms,
        r.header_id,
        r.timecode,
    ] {
        m.put_u64_le(v);
    }
    m.put_u8(u8::try_from(r.number.len()).unwrap_or(u8::MAX));
    m.put_slice(r.number.as_bytes());
    m
}

fn parse_fragment_meta(p: &[u8]) -> Option<(FragmentRecord, usize)> {
    let mut vals = [0u64; 6];
    for (i, v) in vals.iter_mut().enumerate() {
        let b: [u8; 8] = p.get(i * 8..i * 8 + 8)?.try_into().ok()?;
        *v = u64::from_le_bytes(b);
    }
    let n = usize::from(*p.get(48)?);
    let number = std::str::from_utf8(p.get(49..49 + n)?).ok()?.to_owned();
    Some((
        FragmentRecord {
            seq: vals[0],
            server_ms: vals[1],
            producer_ms: vals[2],
            duration_ms: vals[3],
            header_id: vals[4],
            timecode: vals[5],
            number,
        },
        49 + n,
    ))
}

/// Reads records from `file` until the end or the first bad one; returns (records with their
/// payload offsets, the length of the valid prefix).
/// One record read back: kind, offset of its payload, payload.
type RawRecord = (u8, u64, Vec<u8>);

fn scan_records(path: &Path) -> io::Result<(Vec<RawRecord>, u64, u64)> {
    let mut file = File::open(path)?;
    let total = file.metadata()?.len();
    let mut records = Vec::new();
    let mut pos = 0u64;
    loop {
        let mut head = [0u8; RECORD_HEADER_LEN];
        if total - pos < RECORD_HEADER_LEN as u64 {
            break;
        }
        file.seek(SeekFrom::Start(pos))?;
        file.read_exact(&mut head)?;
        if &head[..4] != MAGIC {
            break;
        }
        let kind = head[4];
        let len = u32::from_le_bytes([head[5], head[6], head[7], head[8]]);
        let crc = u32::from_le_bytes([head[9], head[10], head[11], head[12]]);
        if len > MAX_RECORD_LEN || total - pos - (RECORD_HEADER_LEN as u64) < u64::from(len) {
            break;
        }
        let mut payload = vec![0u8; len as usize];
        file.read_exact(&mut payload)?;
        if kvs_core::crc32::crc32(&payload) != crc {
            break;
        }
        records.push((kind, pos + RECORD_HEADER_LEN as u64, payload));
        pos += RECORD_HEADER_LEN as u64 + u64::from(len);
    }
    Ok((records, pos, total))
}

fn truncate_to(path: &Path, len: u64) -> io::Result<()> {
    let f = OpenOptions::new().write(true).open(path)?;
    f.set_len(len)?;
    f.sync_all()
}

/// Fsyncs a directory so created, renamed or removed entries are durable.
pub fn sync_dir(dir: &Path) -> io::Result<()> {
    File::open(dir)?.sync_all()
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

/// Recovers a stream directory: cuts partial tails and returns its headers and fragments.
pub fn recover(dir: &Path) -> io::Result<Recovered> {
    let mut out = Recovered::default();
    let headers_path = dir.join(HEADERS_FILE);
    if headers_path.exists() {
        let (records, valid, total) = scan_records(&headers_path)?;
        if valid < total {
            truncate_to(&headers_path, valid)?;
            out.truncated_bytes += total - valid;
        }
        for (kind, _, payload) in records {
            if kind == KIND_HEADER && payload.len() >= 8 {
                let mut id = [0u8; 8];
                id.copy_from_slice(&payload[..8]);
                out.headers.insert(
                    u64::from_le_bytes(id),
                    Bytes::copy_from_slice(&payload[8..]),
                );
            }
        }
    }
    for seg in segment_ids(dir)? {
        let path = dir.join(segment_name(seg));
        let (records, valid, total) = scan_records(&path)?;
        if valid < total {
            truncate_to(&path, valid)?;
            out.truncated_bytes += total - valid;
        }
        for (kind, payload_offset, payload) in records {
            if kind != KIND_FRAGMENT {
                continue;
            }
            let Some((record, meta_len)) = parse_fragment_meta(&payload) else {
                continue;
            };
            if !out.headers.contains_key(&record.header_id) {
                // Its header never became durable: the fragment was never acknowledged.
                continue;
            }
            let location = Location {
                segment: seg,
                offset: payload_offset + meta_len as u64,
                len: (payload.len() - meta_len) as u64,
            };
            out.fragments.push(RecoveredFragment { record, location });
        }
    }
    out.fragments.sort_by_key(|f| f.record.seq);
    Ok(out)
}

/// Reads a fragment's bytes.
pub fn read_fragment(dir: &Path, loc: Location) -> io::Result<Bytes> {
    let file = File::open(dir.join(segment_name(loc.segment)))?;
    let len = usize::try_from(loc.len).map_err(|_| io::Error::other("fragment too large"))?;
    let mut buf = vec![0u8; len];
    file.read_exact_at(&mut buf, loc.offset)?;
    Ok(Bytes::from(buf))
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
        data: Bytes,
        done: Done,
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

struct OpenStream {
    headers: Option<File>,
    segment: Option<(u64, File, u64)>,
}

/// Rotation size of segment files.
#[derive(Debug, Clone, Copy)]
pub struct WriterConfig {
    /// A new segment starts once the current one exceeds this many bytes.
    pub segment_bytes: u64,
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

    /// Appends a producer header; `done` runs once it is durable.
    pub fn append_header(&self, dir: PathBuf, id: u64, bytes: Bytes, done: Done) {
        let _ = self.tx.send(Job::Header {
            dir,
            id,
            bytes,
            done,
        });
    }

    /// Appends a fragment; `done` gets its location once it is durable.
    pub fn append_fragment(&self, dir: PathBuf, record: FragmentRecord, data: Bytes, done: Done) {
        let _ = self.tx.send(Job::Fragment {
            dir,
            record,
            data,
            done,
        });
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
    while let Ok(first) = rx.recv() {
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
        let mut after: Vec<Box<dyn FnOnce() + Send>> = Vec::new();
        for job in batch {
            match job {
                Job::Header {
                    dir,
                    id,
                    bytes,
                    done,
                } => {
                    let result = (|| {
                        let s = open.entry(dir.clone()).or_insert(OpenStream {
                            headers: None,
                            segment: None,
                        });
                        if s.headers.is_none() {
                            fs::create_dir_all(&dir)?;
                            s.headers = Some(open_append(&dir.join(HEADERS_FILE))?);
                            sync_dir(&dir)?;
                        }
                        let rec = encode_record(KIND_HEADER, &[&id.to_le_bytes(), &bytes]);
                        if let Some(f) = s.headers.as_mut() {
                            f.write_all(&rec)?;
                        }
                        Ok(None)
                    })();
                    if result.is_ok() && !touched_headers.contains(&dir) {
                        touched_headers.push(dir);
                    }
                    pending.push((done, result));
                }
                Job::Fragment {
                    dir,
                    record,
                    data,
                    done,
                } => {
                    let result = (|| {
                        let s = open.entry(dir.clone()).or_insert(OpenStream {
                            headers: None,
                            segment: None,
                        });
                        let rotate = match &s.segment {
                            None => true,
                            Some((_, _, size)) => *size >= config.segment_bytes,
                        };
                        if rotate {
                            fs::create_dir_all(&dir)?;
                            if let Some((_, f, _)) = s.segment.take() {
                                f.sync_data()?;
                            }
                            let path = dir.join(segment_name(record.seq));
                            let f = open_append(&path)?;
                            let size = f.metadata()?.len();
                            sync_dir(&dir)?;
                            s.segment = Some((record.seq, f, size));
                        }
                        let meta = fragment_meta(&record);
                        let rec = encode_record(KIND_FRAGMENT, &[&meta, &data]);
                        let Some((seg, f, size)) = s.segment.as_mut() else {
                            return Err(io::Error::other("no open segment"));
                        };
                        let offset = *size + (RECORD_HEADER_LEN + meta.len()) as u64;
                        if let Err(e) = f.write_all(&rec) {
                            // Cut what may have been written so the segment stays consistent.
                            let _ = f.set_len(*size);
                            return Err(e);
                        }
                        *size += rec.len() as u64;
                        Ok(Some(Location {
                            segment: *seg,
                            offset,
                            len: data.len() as u64,
                        }))
                    })();
                    if result.is_ok() && !touched_segments.contains(&dir) {
                        touched_segments.push(dir);
                    }
                    pending.push((done, result));
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
                    open.remove(&dir);
                    touched_headers.retain(|d| d != &dir);
                    touched_segments.retain(|d| d != &dir);
                    after.push(done);
                }
            }
        }
        // Headers first: a fragment must never be durable without its header.
        let mut failed: Vec<PathBuf> = Vec::new();
        for dir in &touched_headers {
            if let Some(f) = open.get(dir).and_then(|s| s.headers.as_ref())
                && f.sync_data().is_err()
            {
                failed.push(dir.clone());
            }
        }
        for dir in &touched_segments {
            if let Some((_, f, _)) = open.get(dir).and_then(|s| s.segment.as_ref())
                && f.sync_data().is_err()
            {
                failed.push(dir.clone());
            }
        }
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
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn records_round_trip_and_tail_is_cut() {
        let dir = std::env::temp_dir().join(format!("kvs-store-test-{}", std::process::id()));
        let _ = fs::remove_dir_all(&dir);
        let writer = Writer::start(WriterConfig { segment_bytes: 100 }).unwrap();
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
                number: format!("{seq}"),
            };
            writer.append_fragment(
                dir.clone(),
                record,
                Bytes::from(vec![seq as u8; 60]),
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
        f.write_all(b"KVSF\x02\xff\x00\x00\x00garbage").unwrap();
        let (tx2, rx2) = mpsc::channel();
        writer.forget(dir.clone(), Box::new(move || tx2.send(()).unwrap()));
        rx2.recv().unwrap();
        let rec = recover(&dir).unwrap();
        assert_eq!(rec.fragments.len(), 5);
        assert!(rec.truncated_bytes > 0);
        for (i, f) in rec.fragments.iter().enumerate() {
            assert_eq!(f.location, locs[i]);
            let data = read_fragment(&dir, f.location).unwrap();
            assert_eq!(data, vec![i as u8; 60]);
        }
        assert_eq!(rec.headers[&7], Bytes::from_static(b"head"));
        fs::remove_dir_all(&dir).unwrap();
    }
}
