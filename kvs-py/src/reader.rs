//! `kvs.MkvReader`, `kvs.Frame`, `kvs.Fragment` and `kvs.Track`: the streaming MKV decoder of
//! kvs-core behind Python's iterator protocol.
//!
//! Zero copy: every chunk the reader is given is a Python `bytes` object (other buffers are
//! copied into one once). The core reader slices frames out of the chunks without copying, and
//! `Frame.data` is a read-only `memoryview` of the chunk's memory at the frame's place, so
//! `np.frombuffer(frame.data, np.uint8)` copies nothing. A frame whose block spans two chunks is
//! joined once by the core reader and copied once more into its own `bytes` when `data` is read.
//!
//! Read-ahead: once an input holds more than one batch of events, the reader decodes the next
//! batch on a helper thread (no GIL) while Python consumes the current one, so the decoding and
//! the Python loop overlap. At most one batch (and one input chunk) is decoded ahead: memory
//! stays bounded, and the frames come out in order, exactly as without read-ahead.

use std::collections::VecDeque;
use std::sync::atomic::Ordering::Relaxed;
use std::sync::atomic::{AtomicI64, AtomicU8, AtomicU64, AtomicUsize};
use std::sync::mpsc;
use std::sync::{Arc, Mutex};

use bytes::Bytes;
use kvs_core::fragment::FragmentMetadata;
use kvs_core::mkv::reader::{DecodeError, Event, FragmentSummary, MkvReader as CoreReader};
use kvs_core::mkv::{TrackInfo, TrackType};
use pyo3::exceptions::{PyRuntimeError, PyTypeError, PyValueError};
use pyo3::prelude::*;
use pyo3::pybacked::PyBackedBytes;
use pyo3::sync::PyOnceLock;
use pyo3::types::{PyBytes, PyDict, PyInt, PyIterator, PyList, PyMemoryView, PySlice, PyString};

use crate::errors::decode_error;

mod batch;
pub use batch::{BatchIterator, DEFAULT_MAX_FRAMES, FrameBatch, FrameBatchIterator};

/// Default number of bytes read from a file or pushed into the decoder at once.
pub const DEFAULT_CHUNK_SIZE: usize = 1 << 20;
/// Events decoded per release of the GIL.
const BATCH: usize = 512;
/// Events decoded per batch on the read-ahead thread: large enough that handing a batch over
/// (two thread wake-ups) costs little per frame, small enough to bound what is decoded ahead.
const AHEAD_BATCH: usize = 4096;

/// A Python `bytes` object given to the reader, and where its memory lies.
///
/// Cloning shares the object (one atomic increment). Each batch of frames shares a clone of its
/// own, so the decoding thread and the Python thread never update the same reference count.
#[derive(Debug, Clone)]
pub struct Chunk {
    obj: Arc<Py<PyBytes>>,
    base: usize,
    len: usize,
    /// Absolute stream offset just past this chunk.
    end: u64,
}

/// Converts nanoseconds since the epoch into an aware UTC `datetime` (microsecond precision).
pub fn datetime_from_ns(py: Python<'_>, ns: i64) -> PyResult<Py<PyAny>> {
    static EPOCH: PyOnceLock<(Py<PyAny>, Py<PyAny>)> = PyOnceLock::new();
    let (epoch, timedelta) = EPOCH.get_or_try_init(py, || -> PyResult<_> {
        let dt = py.import("datetime")?;
        let utc = dt.getattr("timezone")?.getattr("utc")?;
        let epoch = dt
            .getattr("datetime")?
            .call((1970, 1, 1, 0, 0, 0, 0, utc), None)?;
        Ok((epoch.unbind(), dt.getattr("timedelta")?.unbind()))
    })?;
    let kwargs = PyDict::new(py);
    kwargs.set_item("microseconds", ns.div_euclid(1000))?;
    let delta = timedelta.bind(py).call((), Some(&kwargs))?;
    Ok(epoch.bind(py).add(delta)?.unbind())
}

fn datetime_from_ms(py: Python<'_>, ms: Option<u64>) -> PyResult<Option<Py<PyAny>>> {
    ms.map(|ms| {
        datetime_from_ns(
            py,
            i64::try_from(ms).unwrap_or(i64::MAX / 1_000_000) * 1_000_000,
        )
    })
    .transpose()
}

fn track_type_name(t: TrackType) -> String {
    match t {
        TrackType::Video => "video".into(),
        TrackType::Audio => "audio".into(),
        TrackType::Complex => "complex".into(),
        TrackType::Subtitle => "subtitle".into(),
        TrackType::Metadata => "metadata".into(),
        other => format!("other({})", other.code()),
    }
}

fn track_type_from(name: Option<&str>, codec_id: &str) -> PyResult<TrackType> {
    Ok(match name {
        None if codec_id.starts_with("A_") => TrackType::Audio,
        None if codec_id.starts_with("S_") => TrackType::Subtitle,
        None if codec_id.starts_with("V_") => TrackType::Video,
        None => TrackType::Complex,
        Some("video") => TrackType::Video,
        Some("audio") => TrackType::Audio,
        Some("complex") => TrackType::Complex,
        Some("subtitle") => TrackType::Subtitle,
        Some("metadata") => TrackType::Metadata,
        Some(other) => {
            return Err(PyValueError::new_err(format!(
                "track_type {other:?}: expected video, audio, complex, subtitle or metadata"
            )));
        }
    })
}

/// A bytes-like Python object as a `bytes` (the object itself when it already is one).
pub fn as_pybytes<'py>(obj: &Bound<'py, PyAny>) -> PyResult<Bound<'py, PyBytes>> {
    if let Ok(b) = obj.cast::<PyBytes>() {
        return Ok(b.clone());
    }
    if obj.is_instance_of::<PyInt>() || obj.is_instance_of::<PyString>() {
        return Err(PyTypeError::new_err(format!(
            "expected a bytes-like object, got {}",
            obj.get_type().name()?
        )));
    }
    let bytes = obj.py().get_type::<PyBytes>().call1((obj,))?;
    Ok(bytes.cast_into::<PyBytes>()?)
}

/// A `bytes` object as a zero-copy [`Bytes`] (it keeps the object alive).
pub fn bytes_of(obj: &Bound<'_, PyBytes>) -> Bytes {
    Bytes::from_owner(PyBackedBytes::from(obj.clone()))
}

/// One track of a stream, as declared in its TrackEntry.
#[pyclass(module = "kvs._kvs", frozen)]
#[derive(Clone)]
pub struct Track {
    pub(crate) info: TrackInfo,
}

#[pymethods]
impl Track {
    /// A track description for `MkvWriter` (the type follows the codec id when not given).
    #[new]
    #[pyo3(signature = (codec_id, codec_private = None, *, number = 1, uid = None, track_type = None,
        name = None, width = None, height = None, sampling_frequency = None, channels = None,
        default_duration_ns = None))]
    #[allow(clippy::too_many_arguments)]
    fn new(
        codec_id: &str,
        codec_private: Option<&Bound<'_, PyAny>>,
        number: u64,
        uid: Option<u64>,
        track_type: Option<&str>,
        name: Option<String>,
        width: Option<u32>,
        height: Option<u32>,
        sampling_frequency: Option<f64>,
        channels: Option<u32>,
        default_duration_ns: Option<u64>,
    ) -> PyResult<Self> {
        let kind = track_type_from(track_type, codec_id)?;
        let mut info = TrackInfo::new(number, uid.unwrap_or(number), kind, codec_id);
        info.name = name;
        if let Some(cp) = codec_private {
            info.codec_private = bytes_of(&as_pybytes(cp)?);
        }
        if width.is_some() || height.is_some() {
            info.video = Some(kvs_core::mkv::VideoSettings {
                width: width.unwrap_or(0),
                height: height.unwrap_or(0),
            });
        }
        if sampling_frequency.is_some() || channels.is_some() {
            info.audio = Some(kvs_core::mkv::AudioSettings {
                sampling_frequency: sampling_frequency.unwrap_or(0.0),
                channels: channels.unwrap_or(1),
                bit_depth: None,
            });
        }
        info.default_duration_ns = default_duration_ns;
        Ok(Track { info })
    }

    /// TrackNumber (what frames refer to).
    #[getter]
    fn number(&self) -> u64 {
        self.info.number
    }
    /// TrackUID.
    #[getter]
    fn uid(&self) -> u64 {
        self.info.uid
    }
    /// `"video"`, `"audio"`, `"complex"`, `"subtitle"`, `"metadata"` or `"other(N)"`.
    #[getter]
    fn track_type(&self) -> String {
        track_type_name(self.info.track_type)
    }
    /// CodecID, such as `V_MPEG4/ISO/AVC`.
    #[getter]
    fn codec_id(&self) -> &str {
        &self.info.codec_id
    }
    /// Track name, when present.
    #[getter]
    fn name(&self) -> Option<&str> {
        self.info.name.as_deref()
    }
    /// CodecPrivate (empty when absent): avcC for H.264, hvcC for H.265.
    #[getter]
    fn codec_private<'py>(&self, py: Python<'py>) -> Bound<'py, PyBytes> {
        PyBytes::new(py, &self.info.codec_private)
    }
    /// PixelWidth of a video track.
    #[getter]
    fn width(&self) -> Option<u32> {
        self.info.video.map(|v| v.width)
    }
    /// PixelHeight of a video track.
    #[getter]
    fn height(&self) -> Option<u32> {
        self.info.video.map(|v| v.height)
    }
    /// SamplingFrequency of an audio track, in Hz.
    #[getter]
    fn sampling_frequency(&self) -> Option<f64> {
        self.info.audio.map(|a| a.sampling_frequency)
    }
    /// Channels of an audio track.
    #[getter]
    fn channels(&self) -> Option<u32> {
        self.info.audio.map(|a| a.channels)
    }
    /// DefaultDuration in ns, when present.
    #[getter]
    fn default_duration_ns(&self) -> Option<u64> {
        self.info.default_duration_ns
    }
    fn __repr__(&self) -> String {
        format!(
            "Track(number={}, codec_id={:?}, track_type={:?}, codec_private={} bytes{})",
            self.info.number,
            self.info.codec_id,
            track_type_name(self.info.track_type),
            self.info.codec_private.len(),
            self.info
                .video
                .map(|v| format!(", width={}, height={}", v.width, v.height))
                .unwrap_or_default()
        )
    }
}

/// One media frame. `data` is a zero-copy read-only `memoryview` of the input.
///
/// Iterating over a reader reuses a `Frame` object that Python has dropped (see
/// [`MkvReader::yield_frame`]): its scalar fields are therefore atomics (plain loads and stores
/// on the hot path, `Sync` as a frozen pyclass must be), while what keeps the payload alive (the
/// input chunk) and the tracks never change for one object. A free list recycles the objects of
/// frames that were dropped by everyone.
#[pyclass(module = "kvs._kvs", frozen, freelist = 64)]
pub struct Frame {
    track: AtomicU64,
    timestamp_ns: AtomicI64,
    /// Valid when `flags` has [`HAS_DURATION`].
    duration_ns: AtomicU64,
    /// [`KEYFRAME`], [`INVISIBLE`], [`DISCARDABLE`], [`HAS_DURATION`].
    flags: AtomicU8,
    /// Offset of the payload in a [`Payload::Chunk`] (0 for an owned payload).
    offset: AtomicUsize,
    /// Payload size in bytes.
    len: AtomicUsize,
    payload: Payload,
    tracks: Option<Arc<[TrackInfo]>>,
}

/// Where a [`Frame`]'s payload lies.
enum Payload {
    /// In a Python `bytes` object (an input chunk, or the bytes given to `Frame()`): `data` is a
    /// view of it, which holds a reference to the `bytes`, never to the frame.
    Chunk(Py<PyBytes>),
    /// Owned by Rust (a frame spanning two input chunks, or one from the client).
    Owned(Bytes),
}

const KEYFRAME: u8 = 1;
const INVISIBLE: u8 = 2;
const DISCARDABLE: u8 = 4;
const HAS_DURATION: u8 = 8;

/// The scalar fields of a core frame, packed as [`Frame`] stores them.
#[derive(Debug, Clone, Copy)]
struct Scalars {
    track: u64,
    timestamp_ns: i64,
    duration_ns: u64,
    flags: u8,
}

impl Scalars {
    fn of(f: &kvs_core::mkv::Frame) -> Self {
        let flag = |on: bool, bit: u8| if on { bit } else { 0 };
        Scalars {
            track: f.track,
            timestamp_ns: f.timestamp_ns,
            duration_ns: f.duration_ns.unwrap_or(0),
            flags: flag(f.keyframe, KEYFRAME)
                | flag(f.invisible, INVISIBLE)
                | flag(f.discardable, DISCARDABLE)
                | flag(f.duration_ns.is_some(), HAS_DURATION),
        }
    }
}

impl Frame {
    fn build(
        s: Scalars,
        offset: usize,
        len: usize,
        payload: Payload,
        tracks: Option<Arc<[TrackInfo]>>,
    ) -> Self {
        Frame {
            track: AtomicU64::new(s.track),
            timestamp_ns: AtomicI64::new(s.timestamp_ns),
            duration_ns: AtomicU64::new(s.duration_ns),
            flags: AtomicU8::new(s.flags),
            offset: AtomicUsize::new(offset),
            len: AtomicUsize::new(len),
            payload,
            tracks,
        }
    }

    /// Wraps a core frame (payload owned by Rust: `data` copies it once into a `bytes`).
    pub fn from_core(frame: kvs_core::mkv::Frame, tracks: Option<Arc<[TrackInfo]>>) -> Self {
        let len = frame.data.len();
        Frame::build(
            Scalars::of(&frame),
            0,
            len,
            Payload::Owned(frame.data),
            tracks,
        )
    }

    /// Overwrites the scalar fields (the payload object stays): only for an object nobody but
    /// the reader can see.
    fn overwrite(&self, s: Scalars, offset: usize, len: usize) {
        self.track.store(s.track, Relaxed);
        self.timestamp_ns.store(s.timestamp_ns, Relaxed);
        self.duration_ns.store(s.duration_ns, Relaxed);
        self.flags.store(s.flags, Relaxed);
        self.offset.store(offset, Relaxed);
        self.len.store(len, Relaxed);
    }

    fn flag(&self, bit: u8) -> bool {
        self.flags.load(Relaxed) & bit != 0
    }

    /// The payload's place in a chunk: (offset, end).
    fn range(&self) -> (usize, usize) {
        let off = self.offset.load(Relaxed);
        (off, off.saturating_add(self.len.load(Relaxed)))
    }

    /// The payload's bytes (no copy).
    fn payload<'a>(&'a self, py: Python<'a>) -> &'a [u8] {
        match &self.payload {
            Payload::Chunk(obj) => {
                let (off, end) = self.range();
                obj.bind(py).as_bytes().get(off..end).unwrap_or_default()
            }
            Payload::Owned(data) => data,
        }
    }

    /// The core frame with its payload (a zero-copy slice of the chunk), for the writer and the
    /// producer.
    pub fn core_frame(&self, py: Python<'_>) -> kvs_core::mkv::Frame {
        let data = match &self.payload {
            Payload::Chunk(obj) => {
                let all = bytes_of(obj.bind(py));
                let (off, end) = self.range();
                let end = end.min(all.len());
                all.slice(off.min(end)..end)
            }
            Payload::Owned(data) => data.clone(),
        };
        let mut frame = kvs_core::mkv::Frame::new(
            self.track.load(Relaxed),
            self.timestamp_ns.load(Relaxed),
            self.flag(KEYFRAME),
            data,
        );
        frame.duration_ns = self.duration();
        frame.invisible = self.flag(INVISIBLE);
        frame.discardable = self.flag(DISCARDABLE);
        frame
    }

    fn duration(&self) -> Option<u64> {
        self.flag(HAS_DURATION)
            .then(|| self.duration_ns.load(Relaxed))
    }
}

#[pymethods]
impl Frame {
    /// A frame to write (`MkvWriter.write`, `Client.put_media`). A `bytes` payload is not copied.
    #[new]
    #[pyo3(signature = (data, timestamp_ns, *, track = 1, keyframe = false, duration_ns = None))]
    fn new(
        data: &Bound<'_, PyAny>,
        timestamp_ns: i64,
        track: u64,
        keyframe: bool,
        duration_ns: Option<u64>,
    ) -> PyResult<Self> {
        let obj = as_pybytes(data)?;
        let len = obj.as_bytes().len();
        let mut frame = kvs_core::mkv::Frame::new(track, timestamp_ns, keyframe, Bytes::new());
        frame.duration_ns = duration_ns;
        Ok(Frame::build(
            Scalars::of(&frame),
            0,
            len,
            Payload::Chunk(obj.unbind()),
            None,
        ))
    }

    /// Track number.
    #[getter]
    fn track(&self) -> u64 {
        self.track.load(Relaxed)
    }
    /// Presentation timestamp in nanoseconds (epoch-based in absolute-timecode streams).
    #[getter]
    fn timestamp_ns(&self) -> i64 {
        self.timestamp_ns.load(Relaxed)
    }
    /// Presentation timestamp as an aware UTC `datetime` (microsecond precision).
    #[getter]
    fn timestamp(&self, py: Python<'_>) -> PyResult<Py<PyAny>> {
        datetime_from_ns(py, self.timestamp_ns.load(Relaxed))
    }
    /// Duration in nanoseconds, when known.
    #[getter]
    fn duration_ns(&self) -> Option<u64> {
        self.duration()
    }
    /// Key frame flag.
    #[getter]
    fn keyframe(&self) -> bool {
        self.flag(KEYFRAME)
    }
    /// Invisible flag.
    #[getter]
    fn invisible(&self) -> bool {
        self.flag(INVISIBLE)
    }
    /// Discardable flag.
    #[getter]
    fn discardable(&self) -> bool {
        self.flag(DISCARDABLE)
    }
    /// Payload size in bytes.
    #[getter]
    fn size(&self) -> usize {
        self.len.load(Relaxed)
    }
    /// The payload as a read-only `memoryview` (no copy when the frame lies inside one input
    /// chunk). The view refers to the input chunk, not to the frame.
    #[getter]
    fn data<'py>(&self, py: Python<'py>) -> PyResult<Bound<'py, PyAny>> {
        match &self.payload {
            Payload::Chunk(obj) => {
                let (off, end) = self.range();
                let obj = obj.bind(py);
                let view = PyMemoryView::from(obj.as_any())?;
                if off == 0 && end == obj.as_bytes().len() {
                    return Ok(view.into_any());
                }
                let slice = PySlice::new(py, off as isize, end as isize, 1);
                view.get_item(slice)
            }
            Payload::Owned(data) => {
                Ok(PyMemoryView::from(PyBytes::new(py, data).as_any())?.into_any())
            }
        }
    }
    /// The track this frame belongs to, when the reader has seen its TrackEntry.
    #[getter]
    fn track_info(&self) -> Option<Track> {
        let tracks = self.tracks.as_ref()?;
        let number = self.track.load(Relaxed);
        tracks
            .iter()
            .find(|t| t.number == number)
            .map(|t| Track { info: t.clone() })
    }
    fn __len__(&self) -> usize {
        self.len.load(Relaxed)
    }
    fn __bytes__<'py>(&self, py: Python<'py>) -> Bound<'py, PyBytes> {
        PyBytes::new(py, self.payload(py))
    }
    fn __repr__(&self) -> String {
        format!(
            "Frame(track={}, timestamp_ns={}, keyframe={}, size={})",
            self.track.load(Relaxed),
            self.timestamp_ns.load(Relaxed),
            if self.flag(KEYFRAME) { "True" } else { "False" },
            self.len.load(Relaxed)
        )
    }
}

/// One fragment (a Cluster and the tags around it) with its frames.
#[pyclass(module = "kvs._kvs", frozen)]
pub struct Fragment {
    summary: FragmentSummary,
    frames: Vec<Py<Frame>>,
    tracks: Arc<[TrackInfo]>,
}

impl Fragment {
    /// A fragment from its summary, frames and the tracks in force (GetMedia through the client).
    pub fn from_parts(
        summary: FragmentSummary,
        frames: Vec<Py<Frame>>,
        tracks: Arc<[TrackInfo]>,
    ) -> Self {
        Fragment {
            summary,
            frames,
            tracks,
        }
    }

    fn meta(&self) -> &FragmentMetadata {
        &self.summary.metadata
    }
}

#[pymethods]
impl Fragment {
    /// Index of the fragment in the input (0-based).
    #[getter]
    fn index(&self) -> u64 {
        self.summary.index
    }
    /// Index of the EBML document it belongs to (GetMedia: one per fragment).
    #[getter]
    fn document(&self) -> u64 {
        self.summary.document
    }
    /// Byte offset of the fragment in the input.
    #[getter]
    fn offset(&self) -> u64 {
        self.summary.offset
    }
    /// Size in bytes of the fragment in the input.
    #[getter]
    fn size(&self) -> u64 {
        self.summary.bytes
    }
    /// `AWS_KINESISVIDEO_FRAGMENT_NUMBER`, when present.
    #[getter]
    fn fragment_number(&self) -> Option<&str> {
        self.meta().fragment_number.as_deref()
    }
    /// `AWS_KINESISVIDEO_SERVER_TIMESTAMP` in epoch ms.
    #[getter]
    fn server_timestamp_ms(&self) -> Option<u64> {
        self.meta().server_timestamp_ms
    }
    /// `AWS_KINESISVIDEO_PRODUCER_TIMESTAMP` in epoch ms.
    #[getter]
    fn producer_timestamp_ms(&self) -> Option<u64> {
        self.meta().producer_timestamp_ms
    }
    /// Server timestamp as an aware UTC `datetime`.
    #[getter]
    fn server_timestamp(&self, py: Python<'_>) -> PyResult<Option<Py<PyAny>>> {
        datetime_from_ms(py, self.meta().server_timestamp_ms)
    }
    /// Producer timestamp as an aware UTC `datetime`.
    #[getter]
    fn producer_timestamp(&self, py: Python<'_>) -> PyResult<Option<Py<PyAny>>> {
        datetime_from_ms(py, self.meta().producer_timestamp_ms)
    }
    /// `AWS_KINESISVIDEO_MILLIS_BEHIND_NOW`.
    #[getter]
    fn millis_behind_now(&self) -> Option<u64> {
        self.meta().millis_behind_now
    }
    /// `AWS_KINESISVIDEO_CONTINUATION_TOKEN` (resume GetMedia after this fragment).
    #[getter]
    fn continuation_token(&self) -> Option<&str> {
        self.meta().continuation_token.as_deref()
    }
    /// In-band error code (`AWS_KINESISVIDEO_ERROR_CODE`), when the service sent one.
    #[getter]
    fn error_code(&self) -> Option<&str> {
        self.meta().error_code.as_deref()
    }
    /// In-band error id (`AWS_KINESISVIDEO_ERROR_ID`).
    #[getter]
    fn error_id(&self) -> Option<u64> {
        self.meta().error_id
    }
    /// Cluster Timecode in ticks.
    #[getter]
    fn cluster_timecode(&self) -> Option<u64> {
        self.summary.cluster_timecode
    }
    /// TimecodeScale in force (ns per tick).
    #[getter]
    fn timecode_scale(&self) -> u64 {
        self.summary.timecode_scale
    }
    /// User tags of the fragment (KVS tags excluded).
    #[getter]
    fn tags<'py>(&self, py: Python<'py>) -> PyResult<Bound<'py, PyDict>> {
        let d = PyDict::new(py);
        for (k, v) in &self.summary.tags {
            d.set_item(k, v)?;
        }
        Ok(d)
    }
    /// Number of key frames.
    #[getter]
    fn keyframes(&self) -> u64 {
        self.summary.keyframes
    }
    /// The input ended inside this fragment.
    #[getter]
    fn truncated(&self) -> bool {
        self.summary.truncated
    }
    /// The fragment's frames, in input order.
    #[getter]
    fn frames<'py>(&self, py: Python<'py>) -> PyResult<Bound<'py, PyList>> {
        PyList::new(py, self.frames.iter().map(|f| f.clone_ref(py)))
    }
    /// The tracks in force for this fragment.
    #[getter]
    fn tracks(&self) -> Vec<Track> {
        self.tracks
            .iter()
            .map(|t| Track { info: t.clone() })
            .collect()
    }
    fn __len__(&self) -> usize {
        self.frames.len()
    }
    fn __iter__<'py>(&self, py: Python<'py>) -> PyResult<Bound<'py, PyIterator>> {
        PyIterator::from_object(self.frames(py)?.as_any())
    }
    fn __repr__(&self) -> String {
        format!(
            "Fragment(index={}, fragment_number={}, frames={}, size={})",
            self.summary.index,
            self.meta()
                .fragment_number
                .as_deref()
                .map_or("None".to_owned(), |n| format!("{n:?}")),
            self.frames.len(),
            self.summary.bytes
        )
    }
}

/// Where the reader's input comes from.
enum Source {
    /// Fed by `feed()` / `finish()`.
    Push,
    /// A file object: `read(chunk_size)` until it returns nothing; closed at the end when the
    /// reader opened it.
    File { file: Py<PyAny>, close: bool },
    /// An iterator of bytes-like chunks.
    Iter(Py<PyIterator>),
    /// Everything has been staged.
    Done,
}

/// What a batch of decoding produced.
enum Item {
    /// A frame whose payload is `len` bytes at `offset` in the current chunk (the last
    /// [`Item::Chunk`] before it); its core `data` was dropped on the decoding thread.
    ChunkFrame {
        scalars: Scalars,
        offset: usize,
        len: usize,
    },
    /// A frame with a payload of its own (it spans two input chunks).
    OwnedFrame(Box<kvs_core::mkv::Frame>),
    /// The chunk the following [`Item::ChunkFrame`]s lie in.
    Chunk(Arc<Chunk>),
    /// The tracks in force from here on.
    Tracks(Arc<[TrackInfo]>),
    FragmentEnd(Box<FragmentSummary>),
    Error(Box<DecodeError>),
}

/// Most warnings kept per reader.
const MAX_WARNINGS: usize = 1000;

/// Decodes up to `max` events of `reader` into `out`; returns how many events it polled.
///
/// A frame lying inside an input chunk is sent as its scalars and place; an [`Item::Chunk`]
/// (with a reference count private to this batch, so that the decoding thread and the Python
/// thread never update the same one) precedes the first frame of each chunk in the batch. The
/// core frame's `data` is dropped here, on the decoding thread. An [`Item::Tracks`] precedes the
/// first frame after the tracks changed.
fn decode_batch(
    max: usize,
    reader: &mut CoreReader,
    chunks: &VecDeque<Arc<Chunk>>,
    tracks: &mut Arc<[TrackInfo]>,
    warnings: &mut Vec<String>,
    out: &mut VecDeque<Item>,
) -> usize {
    let mut current: Option<usize> = None;
    let mut n = 0;
    while n < max {
        let Some(event) = reader.poll_event() else {
            break;
        };
        n += 1;
        match event {
            Ok(Event::Frame(frame)) => {
                let p = frame.data.as_ptr() as usize;
                let len = frame.data.len();
                let inside = |c: &Chunk| p >= c.base && p + len <= c.base + c.len;
                let found = match current.and_then(|i| chunks.get(i).map(|c| (i, c))) {
                    Some((i, c)) if inside(c) => Some((i, c)),
                    _ => chunks.iter().enumerate().rev().find(|(_, c)| inside(c)),
                };
                match found {
                    Some((i, c)) => {
                        if current != Some(i) {
                            current = Some(i);
                            out.push_back(Item::Chunk(Arc::new(Chunk::clone(c))));
                        }
                        out.push_back(Item::ChunkFrame {
                            scalars: Scalars::of(&frame),
                            offset: p - c.base,
                            len,
                        });
                    }
                    None => out.push_back(Item::OwnedFrame(Box::new(frame))),
                }
            }
            Ok(Event::FragmentEnd(s)) => out.push_back(Item::FragmentEnd(s)),
            Ok(Event::Track(_)) => {
                if reader.tracks() != &tracks[..] {
                    *tracks = Arc::from(reader.tracks().to_vec());
                    out.push_back(Item::Tracks(Arc::from(reader.tracks().to_vec())));
                }
            }
            Ok(Event::Warning(w)) => {
                if warnings.len() < MAX_WARNINGS {
                    warnings.push(w.to_string());
                }
            }
            Ok(_) => {}
            Err(e) => out.push_back(Item::Error(Box::new(e))),
        }
    }
    n
}

/// One batch of decoding, sent to the read-ahead thread and back.
struct Job {
    reader: CoreReader,
    chunks: VecDeque<Arc<Chunk>>,
    tracks: Arc<[TrackInfo]>,
    warnings: Vec<String>,
    items: VecDeque<Item>,
    events: usize,
}

/// The read-ahead thread of one reader: it decodes the batches it is sent and sends them back.
/// It ends when the reader drops its end of the channels.
struct ReadAhead {
    jobs: mpsc::Sender<Job>,
    /// In a mutex only because a pyclass must be `Sync`; one thread at a time uses it.
    done: Mutex<mpsc::Receiver<Job>>,
}

impl ReadAhead {
    fn spawn() -> Option<Self> {
        let (jobs, job_rx) = mpsc::channel::<Job>();
        let (done_tx, done) = mpsc::channel::<Job>();
        std::thread::Builder::new()
            .name("kvs-mkv-read-ahead".into())
            .spawn(move || {
                while let Ok(mut job) = job_rx.recv() {
                    job.events = decode_batch(
                        AHEAD_BATCH,
                        &mut job.reader,
                        &job.chunks,
                        &mut job.tracks,
                        &mut job.warnings,
                        &mut job.items,
                    );
                    if done_tx.send(job).is_err() {
                        break;
                    }
                }
            })
            .ok()?;
        Some(ReadAhead {
            jobs,
            done: Mutex::new(done),
        })
    }
}

/// Decodes MKV (a file, a producer stream or a GetMedia / GetMediaForFragmentList body) and
/// iterates over its frames, or over its fragments with `fragments()`.
#[pyclass(module = "kvs._kvs")]
pub struct MkvReader {
    reader: CoreReader,
    source: Source,
    /// Part of the current chunk not pushed yet (pushed `chunk_size` bytes at a time).
    staged: Bytes,
    chunk_size: usize,
    strict: bool,
    chunks: VecDeque<Arc<Chunk>>,
    pushed: u64,
    pending: VecDeque<Item>,
    tracks: Arc<[TrackInfo]>,
    core_finished: bool,
    errors: Vec<String>,
    warnings: Vec<String>,
    fragment_frames: Vec<Py<Frame>>,
    /// Bytes pushed into the core reader so far.
    fed: u64,
    /// The core reader's offset after the last batch that came back.
    decoded_offset: u64,
    /// The read-ahead thread, started once an input proves longer than one batch.
    ahead: Option<ReadAhead>,
    /// The core reader is on the read-ahead thread (`reader` holds a placeholder).
    in_flight: bool,
    /// Whether read-ahead may be used (false after the thread could not be started).
    ahead_allowed: bool,
    /// The chunk of the next [`Item::ChunkFrame`]s (the last [`Item::Chunk`] taken).
    frame_chunk: Option<Arc<Chunk>>,
    /// The tracks of the next frames.
    frame_tracks: Arc<[TrackInfo]>,
    /// The last [`Item::Tracks`] taken, until the next item (the tracks may pass through
    /// partial states while a Tracks element is read).
    next_tracks: Option<Arc<[TrackInfo]>>,
    /// The last two frame objects iterating returned, for reuse once Python dropped them (they
    /// keep their input chunk alive until they are replaced or the reader is dropped).
    recent: [Option<Py<Frame>>; 2],
    /// The slot of `recent` to try next (the older one).
    recent_next: usize,
}

impl MkvReader {
    /// A reader over `source` (see the Python docstring for what it accepts).
    pub fn create(
        py: Python<'_>,
        source: Option<&Bound<'_, PyAny>>,
        chunk_size: usize,
        strict: bool,
        read_ahead: bool,
    ) -> PyResult<Self> {
        if chunk_size == 0 {
            return Err(PyValueError::new_err("chunk_size must be at least 1"));
        }
        let mut me = MkvReader {
            reader: CoreReader::new(),
            source: Source::Push,
            staged: Bytes::new(),
            chunk_size,
            strict,
            chunks: VecDeque::new(),
            pushed: 0,
            pending: VecDeque::new(),
            tracks: Arc::from(Vec::new()),
            core_finished: false,
            errors: Vec::new(),
            warnings: Vec::new(),
            fragment_frames: Vec::new(),
            fed: 0,
            decoded_offset: 0,
            ahead: None,
            in_flight: false,
            ahead_allowed: read_ahead,
            frame_chunk: None,
            frame_tracks: Arc::from(Vec::new()),
            next_tracks: None,
            recent: [None, None],
            recent_next: 0,
        };
        let Some(src) = source else {
            return Ok(me);
        };
        let is_buffer = || !src.hasattr("read").unwrap_or(false) && PyMemoryView::from(src).is_ok();
        if src.cast::<PyBytes>().is_ok() || is_buffer() {
            let b = as_pybytes(src)?;
            me.stage(&b);
            me.source = Source::Done;
        } else if src.is_instance_of::<PyString>() || src.hasattr("__fspath__")? {
            let file = py.import("io")?.getattr("open")?.call1((src, "rb"))?;
            me.source = Source::File {
                file: file.unbind(),
                close: true,
            };
        } else if src.hasattr("read")? {
            me.source = Source::File {
                file: src.clone().unbind(),
                close: false,
            };
        } else {
            let it = PyIterator::from_object(src).map_err(|_| {
                PyTypeError::new_err(
                    "MkvReader source must be bytes-like, a path, a binary file or an iterable of bytes chunks",
                )
            })?;
            me.source = Source::Iter(it.unbind());
        }
        Ok(me)
    }

    /// Makes `obj` the chunk being pushed.
    fn stage(&mut self, obj: &Bound<'_, PyBytes>) {
        let slice = obj.as_bytes();
        self.pushed += slice.len() as u64;
        self.chunks.push_back(Arc::new(Chunk {
            obj: Arc::new(obj.clone().unbind()),
            base: slice.as_ptr() as usize,
            len: slice.len(),
            end: self.pushed,
        }));
        self.staged = bytes_of(obj);
    }

    /// Pushes the next piece of input into the core reader; false when the source is dry.
    fn pull(&mut self, py: Python<'_>) -> PyResult<bool> {
        loop {
            if !self.staged.is_empty() {
                let n = self.chunk_size.min(self.staged.len());
                let piece = self.staged.split_to(n);
                self.reader.push(piece).map_err(|e| decode_error(py, &e))?;
                self.fed += n as u64;
                return Ok(true);
            }
            let next = match &self.source {
                Source::Push | Source::Done => return Ok(false),
                Source::File { file, .. } => {
                    let data = file.bind(py).call_method1("read", (self.chunk_size,))?;
                    if data.is_none() {
                        // A non-blocking file with nothing available: treat as the end.
                        None
                    } else {
                        Some(as_pybytes(&data)?)
                    }
                }
                Source::Iter(it) => match it.bind(py).clone().next() {
                    Some(item) => Some(as_pybytes(&item?)?),
                    None => None,
                },
            };
            match next {
                Some(b) if b.as_bytes().is_empty() => {
                    if matches!(self.source, Source::File { .. }) {
                        self.close_source(py)?;
                    }
                }
                Some(b) => self.stage(&b),
                None => self.close_source(py)?,
            }
        }
    }

    fn close_source(&mut self, py: Python<'_>) -> PyResult<()> {
        let source = std::mem::replace(&mut self.source, Source::Done);
        if let Source::File { file, close: true } = source {
            file.bind(py).call_method0("close")?;
        }
        Ok(())
    }

    /// Decodes up to [`BATCH`] events with the GIL released; returns how many.
    fn poll_batch(&mut self, py: Python<'_>) -> PyResult<usize> {
        self.settle(py)?;
        let reader = &mut self.reader;
        let pending = &mut self.pending;
        let chunks = &self.chunks;
        let tracks = &mut self.tracks;
        let warnings = &mut self.warnings;
        let n = py.detach(move || decode_batch(BATCH, reader, chunks, tracks, warnings, pending));
        self.after_batch();
        Ok(n)
    }

    /// Bookkeeping after a batch: the offset, and the chunks no future frame can lie in.
    fn after_batch(&mut self) {
        let consumed = self.reader.offset();
        self.decoded_offset = consumed;
        while self.chunks.len() > 1 && self.chunks.front().is_some_and(|c| c.end <= consumed) {
            self.chunks.pop_front();
        }
    }

    /// Sends the core reader to the read-ahead thread to decode the next batch, after making
    /// sure it holds input (at most one chunk beyond what it has not decoded yet).
    fn read_ahead(&mut self, py: Python<'_>) -> PyResult<()> {
        if self.in_flight || !self.ahead_allowed {
            return Ok(());
        }
        if !self.core_finished
            && self.fed.saturating_sub(self.reader.offset()) < self.chunk_size as u64
        {
            self.pull(py)?;
        }
        if self.ahead.is_none() {
            self.ahead = ReadAhead::spawn();
        }
        let Some(ahead) = &self.ahead else {
            self.ahead_allowed = false;
            return Ok(());
        };
        let job = Job {
            reader: std::mem::take(&mut self.reader),
            chunks: self.chunks.clone(),
            tracks: Arc::clone(&self.tracks),
            warnings: std::mem::take(&mut self.warnings),
            items: VecDeque::new(),
            events: 0,
        };
        match ahead.jobs.send(job) {
            Ok(()) => self.in_flight = true,
            Err(mpsc::SendError(job)) => {
                // The thread is gone: carry on without it.
                self.reader = job.reader;
                self.warnings = job.warnings;
                self.ahead = None;
                self.ahead_allowed = false;
            }
        }
        Ok(())
    }

    /// Waits (GIL released) for the batch in flight, if any, and takes its items and the core
    /// reader back; returns how many events it polled.
    fn settle(&mut self, py: Python<'_>) -> PyResult<usize> {
        if !self.in_flight {
            return Ok(0);
        }
        self.in_flight = false;
        let Some(ahead) = &self.ahead else {
            return Ok(0);
        };
        let received = py.detach(|| {
            ahead
                .done
                .lock()
                .unwrap_or_else(std::sync::PoisonError::into_inner)
                .recv()
        });
        match received {
            Ok(job) => {
                self.reader = job.reader;
                self.tracks = job.tracks;
                self.warnings = job.warnings;
                let mut items = job.items;
                if self.pending.is_empty() {
                    self.pending = items;
                } else {
                    self.pending.append(&mut items);
                }
                self.after_batch();
                Ok(job.events)
            }
            Err(_) => {
                // The thread ended with the core reader: decoding returns errors as items and
                // never panics on input, so this is a bug. Stop here rather than guess.
                self.ahead = None;
                self.ahead_allowed = false;
                self.core_finished = true;
                self.source = Source::Done;
                Err(PyRuntimeError::new_err(
                    "the MKV read-ahead thread stopped unexpectedly (a kvs bug): please report it",
                ))
            }
        }
    }

    /// The next decoded item; `None` at the end of the input (or, when fed, of what was fed).
    fn next_item(&mut self, py: Python<'_>) -> PyResult<Option<Item>> {
        loop {
            match self.pending.pop_front() {
                Some(Item::Chunk(chunk)) => {
                    self.frame_chunk = Some(chunk);
                    continue;
                }
                Some(Item::Tracks(tracks)) => {
                    self.next_tracks = Some(tracks);
                    continue;
                }
                Some(item) => {
                    if let Some(tracks) = self.next_tracks.take()
                        && *tracks != *self.frame_tracks
                    {
                        // Only a real change: a GetMedia stream repeats the same Tracks in
                        // every fragment, and frames that share one tracks object can reuse
                        // each other's `Frame` object.
                        self.frame_tracks = tracks;
                    }
                    return Ok(Some(item));
                }
                None => {}
            }
            let events = if self.in_flight {
                self.settle(py)?
            } else {
                self.poll_batch(py)?
            };
            if events > 0 {
                // A full batch: the input is long, so decode the next batch while Python
                // consumes this one.
                if events == BATCH || self.ahead.is_some() {
                    self.read_ahead(py)?;
                }
                continue;
            }
            if self.core_finished {
                return Ok(None);
            }
            if !self.pull(py)? {
                if matches!(self.source, Source::Push) {
                    return Ok(None);
                }
                self.reader.finish();
                self.core_finished = true;
            }
        }
    }

    /// Handles a decode error: raised in strict mode, recorded otherwise.
    fn on_error(&mut self, py: Python<'_>, e: DecodeError) -> PyResult<()> {
        if self.strict {
            return Err(decode_error(py, &e));
        }
        if self.errors.len() < 1000 {
            self.errors.push(e.to_string());
        }
        Ok(())
    }

    /// A new `Frame` for a decoded frame item.
    fn new_frame(&self, py: Python<'_>, item: Item) -> Option<Frame> {
        let tracks = Some(Arc::clone(&self.frame_tracks));
        match item {
            Item::ChunkFrame {
                scalars,
                offset,
                len,
            } => {
                let payload = match &self.frame_chunk {
                    Some(chunk) => Payload::Chunk(chunk.obj.clone_ref(py)),
                    // Unreachable: every batch sends the chunk before its first frame.
                    None => Payload::Owned(Bytes::new()),
                };
                Some(Frame::build(scalars, offset, len, payload, tracks))
            }
            Item::OwnedFrame(frame) => Some(Frame::from_core(*frame, tracks)),
            _ => None,
        }
    }

    /// The object for the next frame: the older of the last two frame objects returned when
    /// only the reader holds it any more (Python dropped it: nothing can observe the change)
    /// and it lies in the same chunk with the same tracks, its fields overwritten; a new
    /// object otherwise. A `for` loop holds the previous frame while it asks for the next one,
    /// hence two objects. A `memoryview` of an earlier frame's `data` refers to the chunk, not
    /// to the frame, so it keeps its bytes.
    // `get_refcnt` is deprecated for `ffi::Py_REFCNT`, which needs `unsafe` (forbidden here).
    #[allow(deprecated)]
    fn yield_frame(&mut self, py: Python<'_>, item: Item) -> PyResult<Option<Py<Frame>>> {
        let slot = self.recent_next & 1;
        self.recent_next = slot ^ 1;
        if let Item::ChunkFrame {
            scalars,
            offset,
            len,
        } = &item
            && let (Some(old), Some(chunk)) = (&self.recent[slot], &self.frame_chunk)
            && old.get_refcnt(py) == 1
        {
            let f = old.get();
            if let Payload::Chunk(obj) = &f.payload
                && obj.as_ptr() == chunk.obj.as_ptr()
                && f.tracks
                    .as_ref()
                    .is_some_and(|t| Arc::ptr_eq(t, &self.frame_tracks))
            {
                f.overwrite(*scalars, *offset, *len);
                return Ok(Some(old.clone_ref(py)));
            }
        }
        let Some(frame) = self.new_frame(py, item) else {
            return Ok(None);
        };
        let obj = Py::new(py, frame)?;
        if matches!(obj.get().payload, Payload::Chunk(_)) {
            self.recent[slot] = Some(obj.clone_ref(py));
        }
        Ok(Some(obj))
    }

    /// The next frame.
    pub fn next_frame(&mut self, py: Python<'_>) -> PyResult<Option<Py<Frame>>> {
        // Fast path: the next item is a frame in the current chunk, with the tracks in force.
        if self.next_tracks.is_none()
            && matches!(self.pending.front(), Some(Item::ChunkFrame { .. }))
            && let Some(item) = self.pending.pop_front()
        {
            return self.yield_frame(py, item);
        }
        while let Some(item) = self.next_item(py)? {
            match item {
                Item::ChunkFrame { .. } | Item::OwnedFrame(_) => {
                    return self.yield_frame(py, item);
                }
                Item::Error(e) => self.on_error(py, *e)?,
                _ => {}
            }
        }
        Ok(None)
    }

    /// The next whole fragment.
    pub fn next_fragment(&mut self, py: Python<'_>) -> PyResult<Option<Fragment>> {
        while let Some(item) = self.next_item(py)? {
            match item {
                Item::FragmentEnd(summary) => {
                    return Ok(Some(Fragment {
                        summary: *summary,
                        frames: std::mem::take(&mut self.fragment_frames),
                        tracks: Arc::clone(&self.frame_tracks),
                    }));
                }
                Item::Error(e) => self.on_error(py, *e)?,
                item => {
                    if let Some(f) = self.new_frame(py, item) {
                        self.fragment_frames.push(Py::new(py, f)?);
                    }
                }
            }
        }
        Ok(None)
    }
}

#[pymethods]
impl MkvReader {
    /// `MkvReader(source=None, *, chunk_size=1 MiB, strict=True, read_ahead=True)`; see
    /// `kvs.read_mkv`.
    #[new]
    #[pyo3(signature = (source = None, *, chunk_size = 1048576, strict = true, read_ahead = true))]
    fn new(
        py: Python<'_>,
        source: Option<&Bound<'_, PyAny>>,
        chunk_size: usize,
        strict: bool,
        read_ahead: bool,
    ) -> PyResult<Self> {
        Self::create(py, source, chunk_size, strict, read_ahead)
    }

    /// Gives the reader more input (only for a reader made without a source).
    fn feed(&mut self, py: Python<'_>, data: &Bound<'_, PyAny>) -> PyResult<()> {
        if !matches!(self.source, Source::Push) || self.core_finished {
            return Err(PyValueError::new_err(
                "feed() is only for a reader made without a source, before finish()",
            ));
        }
        let b = as_pybytes(data)?;
        self.settle(py)?;
        if !self.staged.is_empty() {
            // Push the previous feed's remainder before staging the new chunk.
            while self.pull(py)? && !self.staged.is_empty() {
                self.poll_batch(py)?;
            }
        }
        self.stage(&b);
        Ok(())
    }

    /// Says the fed input is complete: the reader then ends its last fragment.
    fn finish(&mut self) {
        if matches!(self.source, Source::Push) {
            self.source = Source::Done;
        }
    }

    /// Closes the file the reader opened from a path (if any).
    fn close(&mut self, py: Python<'_>) -> PyResult<()> {
        if !matches!(self.source, Source::Push) {
            self.close_source(py)?;
        }
        Ok(())
    }

    fn __enter__(slf: Py<Self>) -> Py<Self> {
        slf
    }

    #[pyo3(signature = (*_args))]
    fn __exit__(
        &mut self,
        py: Python<'_>,
        _args: &Bound<'_, pyo3::types::PyTuple>,
    ) -> PyResult<bool> {
        self.close(py)?;
        Ok(false)
    }

    fn __iter__(slf: Py<Self>) -> Py<Self> {
        slf
    }

    fn __next__(&mut self, py: Python<'_>) -> PyResult<Option<Py<Frame>>> {
        self.next_frame(py)
    }

    /// Iterates over frames (the same as iterating over the reader).
    fn frames(slf: Py<Self>) -> Py<Self> {
        slf
    }

    /// Iterates over whole fragments, each with its frames and KVS metadata.
    fn fragments(slf: Py<Self>) -> FragmentIterator {
        FragmentIterator { reader: slf }
    }

    /// Iterates over `FrameBatch`es of at most `max_frames` frames each, decoded as columns
    /// with the GIL released (frame iteration and batches may be mixed: each frame comes once).
    #[pyo3(signature = (max_frames = 65536))]
    fn batches(slf: Py<Self>, max_frames: usize) -> PyResult<BatchIterator> {
        BatchIterator::new(slf, max_frames)
    }

    /// Tracks of the current document (known once its Tracks element has been read).
    #[getter]
    fn tracks(&self) -> Vec<Track> {
        self.tracks
            .iter()
            .map(|t| Track { info: t.clone() })
            .collect()
    }

    /// Absolute offset of the first input byte not yet decoded (as of the last decoded batch).
    #[getter]
    fn offset(&self) -> u64 {
        if self.in_flight {
            self.decoded_offset
        } else {
            self.reader.offset()
        }
    }

    /// Decoding errors the reader recovered from (non-strict mode).
    #[getter]
    fn errors(&self) -> Vec<String> {
        self.errors.clone()
    }

    /// Oddities the reader tolerated (CRC mismatches, skipped bytes...).
    #[getter]
    fn warnings(&self) -> Vec<String> {
        self.warnings.clone()
    }
}

/// Iterator over the fragments of an [`MkvReader`].
#[pyclass(module = "kvs._kvs")]
pub struct FragmentIterator {
    reader: Py<MkvReader>,
}

#[pymethods]
impl FragmentIterator {
    fn __iter__(slf: Py<Self>) -> Py<Self> {
        slf
    }

    fn __next__(&self, py: Python<'_>) -> PyResult<Option<Fragment>> {
        self.reader.bind(py).borrow_mut().next_fragment(py)
    }
}

/// Decodes `data` in `chunk_size` pieces and returns (frames, payload bytes): the Rust baseline of
/// the Python frame-iteration benchmark (the same loop, without Python objects).
#[pyfunction]
#[pyo3(signature = (data, chunk_size = 1048576))]
pub fn _rust_frame_count(
    py: Python<'_>,
    data: &Bound<'_, PyBytes>,
    chunk_size: usize,
) -> PyResult<(u64, u64)> {
    let mut all = bytes_of(data);
    let chunk_size = chunk_size.max(1);
    let result = py.detach(move || {
        let mut reader = CoreReader::new();
        let (mut frames, mut size) = (0u64, 0u64);
        let mut finished = false;
        loop {
            while let Some(ev) = reader.poll_event() {
                if let Ok(Event::Frame(f)) = ev {
                    frames += 1;
                    size += f.data.len() as u64;
                }
            }
            if finished {
                break;
            }
            if all.is_empty() {
                reader.finish();
                finished = true;
            } else {
                let n = chunk_size.min(all.len());
                reader.push(all.split_to(n))?;
            }
        }
        Ok::<_, DecodeError>((frames, size))
    });
    result.map_err(|e| decode_error(py, &e))
}
