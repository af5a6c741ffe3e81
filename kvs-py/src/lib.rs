//! `kvs._kvs`, the native module of the `kvs` Python package: the MKV reader and writer of
//! kvs-core (and, with the server and client, the whole KVS API) for Python.
//!
//! The public Python API is `kvs/__init__.py`; the exception classes live in `kvs/_errors.py`.
//! Heavy work (decoding, encoding, network waits) runs with the GIL released.

pub mod client;
pub mod errors;
pub mod reader;
pub mod server;
pub mod writer;

use bytes::Bytes;
use kvs_core::fragment::FragmentNumber;
use kvs_core::mkv::getmedia::{FragmentDocument, ProducerHeader, Trailer};
use kvs_core::mkv::reader::{Event, decode_all};
use pyo3::prelude::*;
use pyo3::types::PyBytes;

use crate::reader::bytes_of;

/// Rewrites a producer MKV stream as a GetMedia response body would carry it: one MKV document
/// per fragment, with the KVS fragment number, timestamps, millis-behind-now and continuation
/// tags. Fragment `i` gets server timestamp `server_timestamp_ms + i`. For tests and benchmarks.
#[pyfunction]
#[pyo3(signature = (data, *, server_timestamp_ms = 1_700_000_000_000))]
fn _to_getmedia<'py>(
    py: Python<'py>,
    data: &Bound<'py, PyBytes>,
    server_timestamp_ms: u64,
) -> PyResult<Bound<'py, PyBytes>> {
    let all = bytes_of(data);
    let out = py.detach(move || to_getmedia(&all, server_timestamp_ms));
    match out {
        Ok(v) => Ok(PyBytes::new(py, &v)),
        Err(msg) => Err(errors::kvs_error(py, "DecodeError", msg, &[])),
    }
}

fn to_getmedia(all: &Bytes, server_timestamp_ms: u64) -> Result<Vec<u8>, String> {
    let mut clusters = Vec::new();
    let mut scale = 1_000_000u64;
    for event in decode_all(all) {
        match event {
            Ok(Event::ClusterStart { offset, timecode }) => {
                clusters.push((offset as usize, timecode.unwrap_or(0)));
            }
            Ok(Event::Info(info)) => scale = info.timecode_scale,
            Err(e) => return Err(e.to_string()),
            Ok(_) => {}
        }
    }
    let Some(&(first, _)) = clusters.first() else {
        return Err("the stream holds no Cluster".into());
    };
    let header = ProducerHeader::parse(all.slice(..first)).map_err(|e| e.to_string())?;
    let mut out = Vec::with_capacity(all.len() + clusters.len() * 400);
    for (i, &(start, timecode)) in clusters.iter().enumerate() {
        let end = clusters.get(i + 1).map_or(all.len(), |c| c.0);
        let cluster = all.slice(start..end);
        let server_ms = server_timestamp_ms + i as u64;
        let producer_ms =
            u64::try_from(u128::from(timecode) * u128::from(scale) / 1_000_000).unwrap_or(u64::MAX);
        let number = FragmentNumber::mint(i as u64, server_ms, (i as u32).wrapping_mul(7919));
        let trailer = Trailer {
            millis_behind_now: (clusters.len() - i - 1) as u64 * 1000,
            continuation_token: number.as_str().to_owned(),
        };
        FragmentDocument {
            header: &header,
            fragment_number: number.as_str(),
            server_timestamp_ms: server_ms,
            producer_timestamp_ms: producer_ms,
            cluster: &cluster,
            trailer: Some(&trailer),
        }
        .write(&mut out)
        .map_err(|e| e.to_string())?;
    }
    Ok(out)
}

/// The native module.
#[pymodule]
fn _kvs(m: &Bound<'_, PyModule>) -> PyResult<()> {
    m.add_class::<reader::Track>()?;
    m.add_class::<reader::Frame>()?;
    m.add_class::<reader::Fragment>()?;
    m.add_class::<reader::MkvReader>()?;
    m.add_class::<reader::FragmentIterator>()?;
    m.add_class::<reader::FrameBatch>()?;
    m.add_class::<reader::BatchIterator>()?;
    m.add_class::<reader::FrameBatchIterator>()?;
    m.add_class::<writer::MkvWriter>()?;
    m.add_class::<server::_Server>()?;
    m.add_class::<client::_Client>()?;
    m.add_class::<client::_MediaIterator>()?;
    m.add_class::<client::_ChunkIterator>()?;
    m.add_class::<client::_Producer>()?;
    m.add_function(wrap_pyfunction!(reader::_rust_frame_count, m)?)?;
    m.add_function(wrap_pyfunction!(_to_getmedia, m)?)?;
    m.add("__version__", env!("CARGO_PKG_VERSION"))?;
    Ok(())
}
