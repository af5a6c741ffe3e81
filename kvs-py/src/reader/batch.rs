//! `MkvReader.batches()` and `kvs.FrameBatch`: frames decoded in batches, as columns.
//!
//! A Python loop that makes one object per frame costs more per frame than the whole Rust
//! decode, so the columnar API hands Python one object per batch of up to `max_frames` frames.
//! The batch is decoded with the GIL released straight into little-endian packed columns
//! (`bytes` objects, no `unsafe`: `np.frombuffer` and `memoryview.cast` view them without a
//! copy). Payloads are not copied: a frame is `(chunk, offset, size)`, where `chunk` indexes the
//! batch's tuple of input `bytes` objects. A frame spanning two input chunks (rare) gets a `bytes`
//! of its own in that tuple. `Frame` objects are made only on demand (`batch.frame(i)`,
//! iteration), sharing the same chunk objects.

use std::collections::VecDeque;
use std::sync::Arc;
use std::sync::atomic::AtomicUsize;
use std::sync::atomic::Ordering::Relaxed;

use bytes::Bytes;
use kvs_core::mkv::TrackInfo;
use kvs_core::mkv::reader::{DecodeError, Event};
use pyo3::exceptions::{PyIndexError, PyValueError};
use pyo3::prelude::*;
use pyo3::types::{PyBytes, PyDict, PyMemoryView, PyTuple};

use super::{
    Chunk, DISCARDABLE, Frame, HAS_DURATION, INVISIBLE, Item, KEYFRAME, MAX_WARNINGS, MkvReader,
    Payload, Scalars, Source,
};

/// Default `max_frames` of `MkvReader.batches()`.
pub const DEFAULT_MAX_FRAMES: usize = 65536;
/// Frames reserved up front (a batch grows past it only when asked for more frames).
const RESERVE: usize = 65536;

/// The columns' names, numpy dtypes and `memoryview.cast` formats (all little-endian packed).
const COLUMNS: [(&str, &str, &str); 6] = [
    ("track", "<u8", "Q"),
    ("timestamp_ns", "<i8", "q"),
    ("keyframe", "?", "?"),
    ("size", "<u4", "I"),
    ("offset", "<u8", "Q"),
    ("chunk", "<u4", "I"),
];

/// Where the payloads of a batch's frames lie.
enum PayloadSource {
    /// An input chunk (a Python `bytes`).
    Chunk(Arc<Chunk>),
    /// A frame that spans two input chunks, joined by the core reader.
    Owned(Bytes),
}

/// A batch being filled (no Python object is touched while it is: it is filled without the GIL).
///
/// One typed vector per column, so that handing the batch over reads each column once (a batch
/// of 65536 frames is megabytes: one pass per column keeps the memory traffic low). The vectors
/// keep their memory from batch to batch.
#[derive(Default)]
struct Columns {
    tracks: Vec<u64>,
    timestamps: Vec<i64>,
    sizes: Vec<u32>,
    offsets: Vec<u64>,
    chunk_ids: Vec<u32>,
    /// [`KEYFRAME`], [`INVISIBLE`], [`DISCARDABLE`], [`HAS_DURATION`].
    flags: Vec<u8>,
    /// (frame, duration in ns) of the frames that have a duration (few have one).
    durations: Vec<(u32, u64)>,
    sources: Vec<PayloadSource>,
    /// (first frame, tracks in force from it on).
    track_runs: Vec<(usize, Arc<[TrackInfo]>)>,
    /// The source of the last chunk frame: (index in `sources`, the chunk).
    current: Option<(u32, Arc<Chunk>)>,
}

/// A column as packed little-endian values (`N` bytes each), written straight into a `bytes`.
fn column<T: Copy, const N: usize>(
    py: Python<'_>,
    values: &[T],
    to_le: impl Fn(T) -> [u8; N],
) -> PyResult<Py<PyBytes>> {
    let len = values.len().saturating_mul(N);
    let b = PyBytes::new_with(py, len, |buf| {
        for (dst, v) in buf.chunks_exact_mut(N).zip(values) {
            dst.copy_from_slice(&to_le(*v));
        }
        Ok(())
    })?;
    Ok(b.unbind())
}

impl Columns {
    /// Empties the batch, keeping the vectors' memory for the next one.
    fn clear(&mut self, max: usize) {
        let n = max.min(RESERVE);
        self.tracks.clear();
        self.tracks.reserve(n);
        self.timestamps.clear();
        self.timestamps.reserve(n);
        self.sizes.clear();
        self.sizes.reserve(n);
        self.offsets.clear();
        self.offsets.reserve(n);
        self.chunk_ids.clear();
        self.chunk_ids.reserve(n);
        self.flags.clear();
        self.flags.reserve(n);
        self.durations.clear();
        self.sources.clear();
        self.track_runs.clear();
        self.current = None;
    }

    fn len(&self) -> usize {
        self.tracks.len()
    }

    fn push(
        &mut self,
        s: Scalars,
        source: u32,
        offset: usize,
        len: usize,
        tracks: &Arc<[TrackInfo]>,
    ) {
        if !self
            .track_runs
            .last()
            .is_some_and(|(_, t)| Arc::ptr_eq(t, tracks))
        {
            self.track_runs
                .push((self.tracks.len(), Arc::clone(tracks)));
        }
        self.tracks.push(s.track);
        self.timestamps.push(s.timestamp_ns);
        // Frames are at most `ReaderLimits::max_element_size` (64 MiB) long.
        self.sizes.push(u32::try_from(len).unwrap_or(u32::MAX));
        self.offsets.push(offset as u64);
        self.chunk_ids.push(source);
        if s.flags & HAS_DURATION != 0 {
            let i = u32::try_from(self.flags.len()).unwrap_or(u32::MAX);
            self.durations.push((i, s.duration_ns));
        }
        self.flags.push(s.flags);
    }

    /// Adds a frame lying at `offset` in `chunk`.
    fn push_in_chunk(
        &mut self,
        s: Scalars,
        chunk: &Arc<Chunk>,
        offset: usize,
        len: usize,
        tracks: &Arc<[TrackInfo]>,
    ) {
        let id = match &self.current {
            Some((id, c)) if Arc::ptr_eq(c, chunk) || c.obj.as_ptr() == chunk.obj.as_ptr() => *id,
            _ => {
                let id = u32::try_from(self.sources.len()).unwrap_or(u32::MAX);
                self.sources.push(PayloadSource::Chunk(Arc::clone(chunk)));
                self.current = Some((id, Arc::clone(chunk)));
                id
            }
        };
        self.push(s, id, offset, len, tracks);
    }

    /// Adds a frame with a payload of its own.
    fn push_owned(&mut self, frame: &kvs_core::mkv::Frame, tracks: &Arc<[TrackInfo]>) {
        let id = u32::try_from(self.sources.len()).unwrap_or(u32::MAX);
        self.sources.push(PayloadSource::Owned(frame.data.clone()));
        self.push(Scalars::of(frame), id, 0, frame.data.len(), tracks);
    }

    /// Adds a decoded core frame, finding the input chunk its payload lies in.
    fn push_core(
        &mut self,
        frame: &kvs_core::mkv::Frame,
        chunks: &VecDeque<Arc<Chunk>>,
        tracks: &Arc<[TrackInfo]>,
    ) {
        let p = frame.data.as_ptr() as usize;
        let len = frame.data.len();
        let inside =
            |c: &Chunk| p >= c.base && p.saturating_add(len) <= c.base.saturating_add(c.len);
        // Most frames lie in the chunk of the frame before them (no reference count touched).
        if let Some((id, c)) = &self.current
            && inside(c)
        {
            let (id, offset) = (*id, p - c.base);
            self.push(Scalars::of(frame), id, offset, len, tracks);
            return;
        }
        match chunks.iter().rev().find(|c| inside(c)) {
            Some(c) => {
                let c = Arc::clone(c);
                self.push_in_chunk(Scalars::of(frame), &c, p - c.base, len, tracks);
            }
            None => self.push_owned(frame, tracks),
        }
    }

    /// Hands the batch over as a [`FrameBatch`] (the vectors keep their memory for reuse).
    fn take_batch(&mut self, py: Python<'_>) -> PyResult<FrameBatch> {
        let sources = self.sources.iter().map(|s| match s {
            PayloadSource::Chunk(c) => c.obj.clone_ref(py).into_bound(py),
            PayloadSource::Owned(b) => PyBytes::new(py, b),
        });
        let chunks = PyTuple::new(py, sources)?.unbind();
        Ok(FrameBatch {
            len: self.len(),
            tracks: column(py, &self.tracks, u64::to_le_bytes)?,
            timestamps_ns: column(py, &self.timestamps, i64::to_le_bytes)?,
            keyframes: column(py, &self.flags, |f| [u8::from(f & KEYFRAME != 0)])?,
            sizes: column(py, &self.sizes, u32::to_le_bytes)?,
            offsets: column(py, &self.offsets, u64::to_le_bytes)?,
            chunk_ids: column(py, &self.chunk_ids, u32::to_le_bytes)?,
            chunks,
            flags: self.flags.clone(),
            durations: self.durations.clone(),
            track_runs: std::mem::take(&mut self.track_runs),
        })
    }
}

/// Why decoding without the GIL stopped.
enum Stop {
    /// The batch is full.
    Full,
    /// The core reader has no event and nothing is staged: more input is needed.
    Dry,
    /// A decoding error (its frame position is where the batch ends).
    Decode(DecodeError),
    /// The core reader refused input.
    Push(DecodeError),
}

impl MkvReader {
    /// Makes the tracks in force those of the next frame (unless they are unchanged in content).
    fn update_frame_tracks(&mut self) {
        if !Arc::ptr_eq(&self.tracks, &self.frame_tracks) {
            if *self.tracks == *self.frame_tracks {
                // The same tracks again (GetMedia repeats them in every fragment): share one
                // object so that the next frames compare pointers only.
                self.tracks = Arc::clone(&self.frame_tracks);
            } else {
                self.frame_tracks = Arc::clone(&self.tracks);
            }
        }
    }

    /// Decodes events into `cols` until it holds `max` frames, the input runs dry or an error
    /// comes. Runs without the GIL: it touches no Python object (only `Arc`s of chunks).
    fn fill(&mut self, cols: &mut Columns, max: usize) -> Stop {
        while cols.len() < max {
            let Some(event) = self.reader.poll_event() else {
                if self.staged.is_empty() {
                    return Stop::Dry;
                }
                let n = self.chunk_size.min(self.staged.len());
                let piece = self.staged.split_to(n);
                if let Err(e) = self.reader.push(piece) {
                    return Stop::Push(e);
                }
                self.fed += n as u64;
                continue;
            };
            match event {
                Ok(Event::Frame(frame)) => {
                    self.update_frame_tracks();
                    cols.push_core(&frame, &self.chunks, &self.frame_tracks);
                }
                Ok(Event::Track(_)) => {
                    let now = self.reader.tracks();
                    if now != &self.tracks[..] {
                        self.tracks = if now == &self.frame_tracks[..] {
                            // Back to the tracks of the frames so far (GetMedia repeats them).
                            Arc::clone(&self.frame_tracks)
                        } else {
                            Arc::from(now.to_vec())
                        };
                    }
                }
                Ok(Event::Warning(w)) => {
                    if self.warnings.len() < MAX_WARNINGS {
                        self.warnings.push(w.to_string());
                    }
                }
                Ok(_) => {}
                Err(e) => return Stop::Decode(e),
            }
        }
        Stop::Full
    }

    /// Moves the items decoded for frame iteration (read ahead, or left by a mixed use of the
    /// reader) into `cols`, up to `max` frames. A strict-mode error ends the batch.
    fn drain_pending(&mut self, py: Python<'_>, cols: &mut Columns, max: usize) -> PyResult<()> {
        while cols.len() < max {
            let Some(item) = self.pending.pop_front() else {
                return Ok(());
            };
            match item {
                Item::Chunk(c) => self.frame_chunk = Some(c),
                Item::Tracks(t) => self.next_tracks = Some(t),
                Item::FragmentEnd(_) => {}
                Item::Error(e) => self.on_error(py, *e)?,
                Item::ChunkFrame {
                    scalars,
                    offset,
                    len,
                } => {
                    self.take_next_tracks();
                    // Always a chunk: every batch sends the chunk before its first frame.
                    if let Some(c) = &self.frame_chunk {
                        cols.push_in_chunk(scalars, c, offset, len, &self.frame_tracks);
                    }
                }
                Item::OwnedFrame(f) => {
                    self.take_next_tracks();
                    cols.push_owned(&f, &self.frame_tracks);
                }
            }
        }
        Ok(())
    }

    /// Applies a pending [`Item::Tracks`] (as [`MkvReader::next_item`] does before a frame).
    fn take_next_tracks(&mut self) {
        if let Some(tracks) = self.next_tracks.take()
            && *tracks != *self.frame_tracks
        {
            self.frame_tracks = tracks;
        }
    }

    /// The next batch of at most `max` frames; `None` at the end of the input. An error that
    /// comes after some frames of the batch were decoded is stored in `deferred` (raised by the
    /// next call) so that the batch holds every frame before it, as frame iteration yields them.
    fn next_batch(
        &mut self,
        py: Python<'_>,
        max: usize,
        cols: &mut Columns,
        deferred: &mut Option<PyErr>,
    ) -> PyResult<Option<FrameBatch>> {
        if let Some(e) = deferred.take() {
            return Err(e);
        }
        cols.clear(max);
        match self.fill_batch(py, cols, max) {
            Ok(()) => {}
            Err(e) if cols.len() > 0 => *deferred = Some(e),
            Err(e) => return Err(e),
        }
        if cols.len() == 0 {
            return Ok(None);
        }
        Ok(Some(cols.take_batch(py)?))
    }

    fn fill_batch(&mut self, py: Python<'_>, cols: &mut Columns, max: usize) -> PyResult<()> {
        self.settle(py)?;
        self.drain_pending(py, cols, max)?;
        // Frames decoded from here on are not in `pending`: stop tracking the iteration state.
        self.next_tracks = None;
        while cols.len() < max {
            let stop = py.detach(|| self.fill(cols, max));
            self.after_batch();
            match stop {
                Stop::Full => {}
                Stop::Decode(e) => self.on_error(py, e)?,
                Stop::Push(e) => return Err(crate::errors::decode_error(py, &e)),
                Stop::Dry => {
                    if self.core_finished {
                        return Ok(());
                    }
                    if !self.pull(py)? {
                        if matches!(self.source, Source::Push) {
                            return Ok(());
                        }
                        self.reader.finish();
                        self.core_finished = true;
                    }
                }
            }
        }
        Ok(())
    }
}

/// Iterator over the [`FrameBatch`]es of an [`MkvReader`] (`MkvReader.batches()`).
#[pyclass(module = "kvs._kvs")]
pub struct BatchIterator {
    reader: Py<MkvReader>,
    max_frames: usize,
    /// An error met after the frames of the last batch, raised by the next call.
    deferred: Option<PyErr>,
    /// The batch being filled (its vectors are reused from batch to batch).
    cols: Columns,
}

impl BatchIterator {
    /// Batches of at most `max_frames` frames of `reader`.
    pub fn new(reader: Py<MkvReader>, max_frames: usize) -> PyResult<Self> {
        if max_frames == 0 {
            return Err(PyValueError::new_err("max_frames must be at least 1"));
        }
        Ok(BatchIterator {
            reader,
            max_frames,
            deferred: None,
            cols: Columns::default(),
        })
    }
}

#[pymethods]
impl BatchIterator {
    fn __iter__(slf: Py<Self>) -> Py<Self> {
        slf
    }

    fn __next__(&mut self, py: Python<'_>) -> PyResult<Option<FrameBatch>> {
        self.reader.bind(py).borrow_mut().next_batch(
            py,
            self.max_frames,
            &mut self.cols,
            &mut self.deferred,
        )
    }
}

/// Up to `max_frames` decoded frames as columns of little-endian packed `bytes`.
///
/// `tracks` (u64), `timestamps_ns` (i64, as `Frame.timestamp_ns`), `keyframes` (one byte, 0 or
/// 1), `sizes` (u32), `offsets` (u64) and `chunk_ids` (u32): frame `i`'s payload is
/// `chunks[chunk_ids[i]][offsets[i]:offsets[i] + sizes[i]]`. `to_numpy()` and `views()` give
/// typed views without a copy; `frame(i)` and iteration make `Frame` objects on demand.
#[pyclass(module = "kvs._kvs", frozen, sequence)]
pub struct FrameBatch {
    len: usize,
    tracks: Py<PyBytes>,
    timestamps_ns: Py<PyBytes>,
    keyframes: Py<PyBytes>,
    sizes: Py<PyBytes>,
    offsets: Py<PyBytes>,
    chunk_ids: Py<PyBytes>,
    chunks: Py<PyTuple>,
    flags: Vec<u8>,
    /// (frame, duration in ns) of the frames that have a duration, in frame order.
    durations: Vec<(u32, u64)>,
    track_runs: Vec<(usize, Arc<[TrackInfo]>)>,
}

/// Element `i` of a packed little-endian column of `N`-byte values (0 when out of range).
fn element<const N: usize>(column: &[u8], i: usize) -> [u8; N] {
    i.checked_mul(N)
        .and_then(|start| column.get(start..start.checked_add(N)?))
        .and_then(|b| <[u8; N]>::try_from(b).ok())
        .unwrap_or([0; N])
}

impl FrameBatch {
    fn columns<'py>(&self, py: Python<'py>) -> [&Bound<'py, PyBytes>; 6] {
        [
            self.tracks.bind(py),
            self.timestamps_ns.bind(py),
            self.keyframes.bind(py),
            self.sizes.bind(py),
            self.offsets.bind(py),
            self.chunk_ids.bind(py),
        ]
    }

    /// Frame `i` (0-based, already checked against the length).
    fn make_frame(&self, py: Python<'_>, i: usize) -> PyResult<Frame> {
        let u64_at = |b: &Py<PyBytes>| u64::from_le_bytes(element(b.bind(py).as_bytes(), i));
        let u32_at = |b: &Py<PyBytes>| u32::from_le_bytes(element(b.bind(py).as_bytes(), i));
        let s = Scalars {
            track: u64_at(&self.tracks),
            timestamp_ns: i64::from_le_bytes(element(self.timestamps_ns.bind(py).as_bytes(), i)),
            duration_ns: u32::try_from(i)
                .ok()
                .and_then(|i| self.durations.binary_search_by_key(&i, |d| d.0).ok())
                .and_then(|k| self.durations.get(k))
                .map_or(0, |d| d.1),
            flags: self.flags.get(i).copied().unwrap_or(0)
                & (KEYFRAME | INVISIBLE | DISCARDABLE | HAS_DURATION),
        };
        let offset = usize::try_from(u64_at(&self.offsets)).unwrap_or(usize::MAX);
        let len = u32_at(&self.sizes) as usize;
        let chunk = self
            .chunks
            .bind(py)
            .get_item(u32_at(&self.chunk_ids) as usize)?
            .cast_into::<PyBytes>()?
            .unbind();
        let run = self.track_runs.partition_point(|(start, _)| *start <= i);
        let tracks = run
            .checked_sub(1)
            .and_then(|r| self.track_runs.get(r))
            .map(|(_, t)| Arc::clone(t));
        Ok(Frame::build(s, offset, len, Payload::Chunk(chunk), tracks))
    }

    fn index(&self, i: isize) -> PyResult<usize> {
        let len = self.len as isize;
        let j = if i < 0 { i + len } else { i };
        if j < 0 || j >= len {
            return Err(PyIndexError::new_err(format!(
                "frame index {i} out of range for a batch of {len} frames"
            )));
        }
        Ok(j as usize)
    }
}

#[pymethods]
impl FrameBatch {
    fn __len__(&self) -> usize {
        self.len
    }

    /// Frame `i` of the batch as a `Frame` (its `data` a view of the input chunk).
    fn frame(&self, py: Python<'_>, i: isize) -> PyResult<Frame> {
        self.make_frame(py, self.index(i)?)
    }

    fn __getitem__(&self, py: Python<'_>, i: isize) -> PyResult<Frame> {
        self.frame(py, i)
    }

    fn __iter__(slf: Py<Self>) -> FrameBatchIterator {
        FrameBatchIterator {
            batch: slf,
            next: AtomicUsize::new(0),
        }
    }

    /// Track numbers: little-endian u64 (`np.frombuffer(b.tracks, "<u8")`).
    #[getter]
    fn tracks(&self, py: Python<'_>) -> Py<PyBytes> {
        self.tracks.clone_ref(py)
    }
    /// Timestamps in ns, as `Frame.timestamp_ns`: little-endian i64 (`"<i8"`).
    #[getter]
    fn timestamps_ns(&self, py: Python<'_>) -> Py<PyBytes> {
        self.timestamps_ns.clone_ref(py)
    }
    /// Key frame flags: one byte per frame, 0 or 1 (`np.frombuffer(b.keyframes, np.bool_)`).
    #[getter]
    fn keyframes(&self, py: Python<'_>) -> Py<PyBytes> {
        self.keyframes.clone_ref(py)
    }
    /// Payload sizes in bytes: little-endian u32 (`"<u4"`).
    #[getter]
    fn sizes(&self, py: Python<'_>) -> Py<PyBytes> {
        self.sizes.clone_ref(py)
    }
    /// Payload offsets in their chunk: little-endian u64 (`"<u8"`).
    #[getter]
    fn offsets(&self, py: Python<'_>) -> Py<PyBytes> {
        self.offsets.clone_ref(py)
    }
    /// Index in `chunks` of each payload's chunk: little-endian u32 (`"<u4"`).
    #[getter]
    fn chunk_ids(&self, py: Python<'_>) -> Py<PyBytes> {
        self.chunk_ids.clone_ref(py)
    }
    /// The `bytes` objects the payloads lie in (input chunks, not copies).
    #[getter]
    fn chunks(&self, py: Python<'_>) -> Py<PyTuple> {
        self.chunks.clone_ref(py)
    }

    /// Typed `memoryview`s of the columns (no copy), by name: `track`, `timestamp_ns`,
    /// `keyframe`, `size`, `offset`, `chunk`. They use the machine's byte order, which is the
    /// columns' (little-endian) on x86-64 and ARM; use `to_numpy()` elsewhere.
    fn views<'py>(&self, py: Python<'py>) -> PyResult<Bound<'py, PyDict>> {
        let d = PyDict::new(py);
        for ((name, _, format), column) in COLUMNS.iter().zip(self.columns(py)) {
            let view = PyMemoryView::from(column.as_any())?.call_method1("cast", (*format,))?;
            d.set_item(*name, view)?;
        }
        Ok(d)
    }

    /// The columns as read-only numpy arrays viewing the column `bytes` (no copy), by name:
    /// `track` (uint64), `timestamp_ns` (int64), `keyframe` (bool), `size` (uint32), `offset`
    /// (uint64), `chunk` (uint32). Needs numpy.
    fn to_numpy<'py>(&self, py: Python<'py>) -> PyResult<Bound<'py, PyDict>> {
        let frombuffer = py.import("numpy")?.getattr("frombuffer")?;
        let d = PyDict::new(py);
        for ((name, dtype, _), column) in COLUMNS.iter().zip(self.columns(py)) {
            d.set_item(*name, frombuffer.call1((column, *dtype))?)?;
        }
        Ok(d)
    }

    /// A pandas `DataFrame`, one row per frame: the `to_numpy()` columns plus `timestamp`
    /// (`datetime64[ns, UTC]`). Needs pandas (the columns are copied into the frame).
    fn to_pandas<'py>(&self, py: Python<'py>) -> PyResult<Bound<'py, PyAny>> {
        let pd = py.import("pandas")?;
        let columns = self.to_numpy(py)?;
        let ts = columns.get_item("timestamp_ns")?;
        let kwargs = PyDict::new(py);
        kwargs.set_item("unit", "ns")?;
        kwargs.set_item("utc", true)?;
        let stamps = pd.getattr("to_datetime")?.call((ts,), Some(&kwargs))?;
        let data = PyDict::new(py);
        for (name, _, _) in COLUMNS.iter().take(2) {
            data.set_item(*name, columns.get_item(*name)?)?;
        }
        data.set_item("timestamp", stamps)?;
        for (name, _, _) in COLUMNS.iter().skip(2) {
            data.set_item(*name, columns.get_item(*name)?)?;
        }
        pd.getattr("DataFrame")?.call1((data,))
    }

    fn __repr__(&self, py: Python<'_>) -> String {
        format!(
            "FrameBatch(frames={}, chunks={})",
            self.len,
            self.chunks.bind(py).len()
        )
    }
}

/// Iterator over the frames of a [`FrameBatch`], made one at a time.
#[pyclass(module = "kvs._kvs", frozen)]
pub struct FrameBatchIterator {
    batch: Py<FrameBatch>,
    next: AtomicUsize,
}

#[pymethods]
impl FrameBatchIterator {
    fn __iter__(slf: Py<Self>) -> Py<Self> {
        slf
    }

    fn __next__(&self, py: Python<'_>) -> PyResult<Option<Frame>> {
        let batch = self.batch.get();
        let i = self.next.load(Relaxed);
        if i >= batch.len {
            return Ok(None);
        }
        self.next.store(i + 1, Relaxed);
        batch.make_frame(py, i).map(Some)
    }
}
