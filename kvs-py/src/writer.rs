//! `kvs.MkvWriter`: MKV in the KVS producer layout (what PutMedia takes), through
//! `kvs_core::mkv::writer::StreamWriter`.

use kvs_core::mkv::writer::{Fragmentation, StreamConfig, StreamWriter, TimecodeMode, WriterError};
use pyo3::exceptions::PyValueError;
use pyo3::prelude::*;
use pyo3::types::PyBytes;

use crate::errors::encode_error;
use crate::reader::{Frame, Track};

/// Encodes frames into a KVS producer MKV stream. Each method returns the bytes it produced;
/// the stream is `header()` followed by everything the other calls return, in order.
#[pyclass(module = "kvs._kvs")]
pub struct MkvWriter {
    writer: StreamWriter,
}

impl MkvWriter {
    /// Encodes one core frame (headers and payload copied once into a new `bytes`).
    pub fn encode<'py>(
        &mut self,
        py: Python<'py>,
        frame: &kvs_core::mkv::Frame,
    ) -> PyResult<Bound<'py, PyBytes>> {
        let header_len = self
            .writer
            .frame_header_len(frame)
            .map_err(|e| encode_error(py, e.to_string()))?;
        if header_len == 0 {
            // Skipped: a non-key frame before the first key frame of a fragment.
            return Ok(PyBytes::new(py, &[]));
        }
        let writer = &mut self.writer;
        PyBytes::new_with(py, header_len + frame.data.len(), |mut buf: &mut [u8]| {
            writer
                .encode_frame(frame, &mut buf)
                .map(|_| ())
                .map_err(|e| encode_error(py, e.to_string()))
        })
    }

    /// Runs one writer step into a fresh buffer and returns what it wrote as `bytes`.
    fn emit<'py>(
        &mut self,
        py: Python<'py>,
        step: impl FnOnce(&mut StreamWriter, &mut Vec<u8>) -> Result<usize, WriterError>,
    ) -> PyResult<Bound<'py, PyBytes>> {
        let mut out = Vec::new();
        step(&mut self.writer, &mut out).map_err(|e| encode_error(py, e.to_string()))?;
        Ok(PyBytes::new(py, &out))
    }

    /// The stream header (EBML header, Segment, Info, Tracks).
    pub fn header_bytes(&self) -> &[u8] {
        self.writer.header()
    }

    /// The underlying core writer.
    pub fn core(&self) -> &StreamWriter {
        &self.writer
    }
}

#[pymethods]
impl MkvWriter {
    /// `MkvWriter(tracks, *, timecode_scale_ns=1_000_000, relative=False, fragment_duration_ns=None,
    /// segment_uid=None, client_id=None)`.
    #[new]
    #[pyo3(signature = (tracks, *, timecode_scale_ns = 1_000_000, relative = false,
        fragment_duration_ns = None, segment_uid = None, client_id = None))]
    fn new(
        py: Python<'_>,
        tracks: Vec<PyRef<'_, Track>>,
        timecode_scale_ns: u64,
        relative: bool,
        fragment_duration_ns: Option<u64>,
        segment_uid: Option<&[u8]>,
        client_id: Option<String>,
    ) -> PyResult<Self> {
        let uid: [u8; 16] = match segment_uid {
            Some(u) => u
                .try_into()
                .map_err(|_| PyValueError::new_err("segment_uid must be 16 bytes"))?,
            None => {
                let random = py.import("os")?.getattr("urandom")?.call1((16,))?;
                let random: Vec<u8> = random.extract()?;
                random
                    .try_into()
                    .map_err(|_| PyValueError::new_err("os.urandom(16) did not give 16 bytes"))?
            }
        };
        let mut config = StreamConfig::new(uid);
        config.timecode_scale_ns = timecode_scale_ns;
        config.client_id = client_id;
        if relative {
            config.timecode_mode = TimecodeMode::Relative;
        }
        if let Some(ns) = fragment_duration_ns {
            config.fragmentation = Fragmentation::Duration(ns);
        }
        let tracks = tracks.iter().map(|t| t.info.clone()).collect();
        let writer =
            StreamWriter::new(config, tracks).map_err(|e| encode_error(py, e.to_string()))?;
        Ok(MkvWriter { writer })
    }

    /// The stream header: EBML header, Segment of unknown size, Info and Tracks.
    fn header<'py>(&self, py: Python<'py>) -> Bound<'py, PyBytes> {
        PyBytes::new(py, self.writer.header())
    }

    /// Encodes a `kvs.Frame`. Returns b"" when the frame is skipped (a non-key frame before the
    /// stream's first key frame, as the official producer drops it).
    fn write<'py>(
        &mut self,
        py: Python<'py>,
        frame: PyRef<'_, Frame>,
    ) -> PyResult<Bound<'py, PyBytes>> {
        let f = frame.core_frame(py);
        self.encode(py, &f)
    }

    /// Encodes a frame given by its parts (see `write`).
    #[pyo3(signature = (data, timestamp_ns, *, track = 1, keyframe = false))]
    fn write_frame<'py>(
        &mut self,
        py: Python<'py>,
        data: &[u8],
        timestamp_ns: i64,
        track: u64,
        keyframe: bool,
    ) -> PyResult<Bound<'py, PyBytes>> {
        let frame = kvs_core::mkv::Frame::new(
            track,
            timestamp_ns,
            keyframe,
            bytes::Bytes::copy_from_slice(data),
        );
        self.encode(py, &frame)
    }

    /// Queues a metadata tag written before the next fragment (every fragment when persistent).
    #[pyo3(signature = (name, value, persistent = false))]
    fn put_metadata(
        &mut self,
        py: Python<'_>,
        name: &str,
        value: &str,
        persistent: bool,
    ) -> PyResult<()> {
        self.writer
            .put_metadata(name, value, persistent)
            .map_err(|e| encode_error(py, e.to_string()))
    }

    /// Ends the open fragment with the end-of-fragment tag.
    fn end_fragment<'py>(&mut self, py: Python<'py>) -> PyResult<Bound<'py, PyBytes>> {
        self.emit(py, |w, out| w.end_fragment(out))
    }

    /// Ends the stream (the end-of-stream tag, unless a fragment was just ended).
    fn finish<'py>(&mut self, py: Python<'py>) -> PyResult<Bound<'py, PyBytes>> {
        self.emit(py, |w, out| w.finish(out))
    }

    /// Fragments (Clusters) opened so far.
    #[getter]
    fn fragment_count(&self) -> u64 {
        self.writer.fragment_count()
    }

    /// The tracks of the stream.
    #[getter]
    fn tracks(&self) -> Vec<Track> {
        self.writer
            .tracks()
            .iter()
            .map(|t| Track { info: t.clone() })
            .collect()
    }
}
