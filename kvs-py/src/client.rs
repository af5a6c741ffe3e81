//! `kvs._kvs._Client` and friends: the kvs-core client (feature `client`) for Python.
//!
//! Each `_Client` owns a small tokio runtime (two workers) and the async
//! [`kvs_core::client::Client`]; every call runs `runtime.block_on(...)` inside `py.detach`, so
//! network waits never hold the GIL (this is what `kvs_core::client::blocking` does, with the
//! runtime shared by the media iterators and producers the client hands out). `kvs.Client` in
//! Python wraps it with argument conversion and docstrings.

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use kvs_core::api::{
    ApiName, CreateStreamRequest, FragmentSelector, GetDataEndpointRequest, StartSelector,
    StartSelectorType, StreamInfo, Timestamp, TimestampRange, TimestampSelectorType,
};
use kvs_core::client::{ByteStream, Client, ClientBuilder, ClientError, MediaStream, Producer};
use kvs_core::credentials::Credentials;
use kvs_core::mkv::TrackInfo;
use kvs_core::mkv::writer::{Fragmentation, TimecodeMode};
use kvs_core::session::consumer::ConsumerEvent;
use kvs_core::session::{AckLevel, SessionMetrics};
use pyo3::exceptions::{PyRuntimeError, PyTimeoutError, PyValueError};
use pyo3::prelude::*;
use pyo3::types::{PyBytes, PyDict};

use crate::errors::{client_error, kvs_error};
use crate::reader::{Fragment, Frame, Track};

/// A tokio runtime that is shut down without waiting when its last user goes away (dropping a
/// runtime normally waits for blocking tasks, such as a DNS lookup, with the GIL held).
struct Runtime(Option<tokio::runtime::Runtime>);

impl Runtime {
    fn new() -> std::io::Result<Self> {
        let rt = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .thread_name("kvs-client")
            .enable_all()
            .build()?;
        Ok(Runtime(Some(rt)))
    }

    fn get(&self) -> PyResult<&tokio::runtime::Runtime> {
        self.0
            .as_ref()
            .ok_or_else(|| PyRuntimeError::new_err("the client's runtime is shut down"))
    }
}

impl Drop for Runtime {
    fn drop(&mut self) {
        if let Some(rt) = self.0.take() {
            rt.shutdown_background();
        }
    }
}

/// Runs `fut` on `rt` with the GIL released.
fn block_on<F, T>(py: Python<'_>, rt: &Runtime, fut: F) -> PyResult<T>
where
    F: std::future::Future<Output = Result<T, ClientError>> + Send,
    T: Send,
{
    let rt = rt.get()?;
    py.detach(|| rt.block_on(fut))
        .map_err(|e| client_error(py, &e))
}

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
}

fn stream_info<'py>(py: Python<'py>, info: &StreamInfo) -> PyResult<Bound<'py, PyDict>> {
    let d = PyDict::new(py);
    d.set_item("stream_name", &info.stream_name)?;
    d.set_item("stream_arn", &info.stream_arn)?;
    d.set_item("status", info.status.as_str())?;
    d.set_item("version", &info.version)?;
    d.set_item("creation_time_ms", info.creation_time.as_millis())?;
    d.set_item("data_retention_in_hours", info.data_retention_in_hours)?;
    d.set_item("media_type", info.media_type.as_deref())?;
    d.set_item("kms_key_id", info.kms_key_id.as_deref())?;
    d.set_item("device_name", info.device_name.as_deref())?;
    Ok(d)
}

fn metrics_dict<'py>(py: Python<'py>, m: &SessionMetrics) -> PyResult<Bound<'py, PyDict>> {
    let d = PyDict::new(py);
    let items: [(&str, u64); 16] = [
        ("frames_pushed", m.frames_pushed),
        ("frames_dropped", m.frames_dropped),
        ("bytes_pushed", m.bytes_pushed),
        ("fragments_started", m.fragments_started),
        ("fragments_sent", m.fragments_sent),
        ("acks_buffering", m.acks_buffering),
        ("acks_received", m.acks_received),
        ("acks_persisted", m.acks_persisted),
        ("acks_error", m.acks_error),
        ("fragments_acked", m.fragments_acked),
        ("fragments_failed", m.fragments_failed),
        ("bytes_sent", m.bytes_sent),
        ("connections", m.connections),
        ("rewinds", m.rewinds),
        ("ack_latency_max_ms", m.ack_latency_max_ms),
        ("buffer_bytes", m.buffer_bytes),
    ];
    for (k, v) in items {
        d.set_item(k, v)?;
    }
    Ok(d)
}

fn parse_enum<T: std::str::FromStr>(py: Python<'_>, what: &str, value: &str) -> PyResult<T> {
    value.parse().map_err(|_| {
        kvs_error(
            py,
            "ConfigError",
            format!("{what} {value:?} is not a valid value"),
            &[],
        )
    })
}

/// One ListFragments entry: (fragment number, size in bytes, producer ms, server ms,
/// duration ms).
type FragmentRow = (String, u64, u64, u64, u64);

/// The KVS client (see `kvs.Client`).
#[pyclass(module = "kvs._kvs", frozen)]
pub struct _Client {
    runtime: Arc<Runtime>,
    client: Client,
}

#[pymethods]
impl _Client {
    /// Resolves region, endpoint and credentials (explicit values first, then the environment
    /// and the shared AWS files) and starts the client's runtime.
    #[new]
    #[pyo3(signature = (*, region = None, endpoint_url = None, profile = None,
        access_key_id = None, secret_access_key = None, session_token = None,
        ca_cert_pem = None, timeout_s = None, max_attempts = None))]
    #[allow(clippy::too_many_arguments)]
    fn new(
        py: Python<'_>,
        region: Option<String>,
        endpoint_url: Option<String>,
        profile: Option<String>,
        access_key_id: Option<String>,
        secret_access_key: Option<String>,
        session_token: Option<String>,
        ca_cert_pem: Option<Vec<u8>>,
        timeout_s: Option<f64>,
        max_attempts: Option<u32>,
    ) -> PyResult<Self> {
        let mut builder = ClientBuilder::default();
        if let Some(r) = region {
            builder = builder.region(r);
        }
        if let Some(u) = endpoint_url {
            builder = builder.endpoint_url(u);
        }
        if let Some(p) = profile {
            builder = builder.profile(p);
        }
        match (access_key_id, secret_access_key) {
            (Some(id), Some(secret)) => {
                let mut creds = Credentials::new(id, secret);
                if let Some(t) = session_token {
                    creds = creds.with_session_token(t);
                }
                builder = builder.credentials(creds);
            }
            (None, None) => {}
            _ => {
                return Err(PyValueError::new_err(
                    "give both the access key id and the secret access key",
                ));
            }
        }
        if let Some(pem) = ca_cert_pem {
            builder = builder.add_root_certificate_pem(pem);
        }
        if let Some(t) = timeout_s {
            if !(t.is_finite() && t > 0.0) {
                return Err(PyValueError::new_err("timeout must be a positive number"));
            }
            builder = builder.timeout(Duration::from_secs_f64(t));
        }
        if let Some(n) = max_attempts {
            builder = builder.retry(kvs_core::client::RetryConfig {
                max_attempts: n.max(1),
                ..Default::default()
            });
        }
        let client = py
            .detach(|| builder.build())
            .map_err(|e| client_error(py, &e))?;
        let runtime = Runtime::new().map_err(|e| {
            kvs_error(
                py,
                "KvsError",
                format!("starting the client runtime: {e}"),
                &[],
            )
        })?;
        Ok(_Client {
            runtime: Arc::new(runtime),
            client,
        })
    }

    /// The region requests are signed for.
    #[getter]
    fn region(&self) -> &str {
        self.client.region()
    }

    /// The control-plane endpoint.
    #[getter]
    fn endpoint_url(&self) -> String {
        self.client.endpoint().to_string()
    }

    /// CreateStream; returns the ARN.
    #[pyo3(signature = (name, retention_hours, *, media_type = None, kms_key_id = None,
        device_name = None, tags = None))]
    #[allow(clippy::too_many_arguments)]
    fn create_stream(
        &self,
        py: Python<'_>,
        name: String,
        retention_hours: i64,
        media_type: Option<String>,
        kms_key_id: Option<String>,
        device_name: Option<String>,
        tags: Option<BTreeMap<String, String>>,
    ) -> PyResult<String> {
        let request = CreateStreamRequest {
            device_name,
            stream_name: name,
            media_type,
            kms_key_id,
            data_retention_in_hours: Some(retention_hours),
            tags,
            stream_storage_configuration: None,
        };
        let r = block_on(py, &self.runtime, self.client.call(&request))?;
        Ok(r.stream_arn)
    }

    /// DescribeStream: the stream's description as a dict.
    fn describe_stream<'py>(&self, py: Python<'py>, name: &str) -> PyResult<Bound<'py, PyDict>> {
        let r = block_on(py, &self.runtime, self.client.describe_stream(name))?;
        stream_info(py, &r.stream_info)
    }

    /// Waits (GIL released) until the stream is ACTIVE; returns its description.
    #[pyo3(signature = (name, timeout_s = 30.0))]
    fn wait_active<'py>(
        &self,
        py: Python<'py>,
        name: &str,
        timeout_s: f64,
    ) -> PyResult<Bound<'py, PyDict>> {
        if !(timeout_s.is_finite() && timeout_s >= 0.0) {
            return Err(PyValueError::new_err("timeout must be a number >= 0"));
        }
        let timeout = Duration::from_secs_f64(timeout_s);
        let info = block_on(py, &self.runtime, self.client.wait_active(name, timeout))?;
        stream_info(py, &info)
    }

    /// ListStreams (every page).
    fn list_streams<'py>(&self, py: Python<'py>) -> PyResult<Vec<Bound<'py, PyDict>>> {
        let all = block_on(py, &self.runtime, self.client.list_streams())?;
        all.iter().map(|i| stream_info(py, i)).collect()
    }

    /// DeleteStream.
    fn delete_stream(&self, py: Python<'_>, name: &str) -> PyResult<()> {
        block_on(py, &self.runtime, self.client.delete_stream(name)).map(|_| ())
    }

    /// UpdateDataRetention by `change_hours` (negative decreases).
    fn update_data_retention(&self, py: Python<'_>, name: &str, change_hours: i64) -> PyResult<()> {
        block_on(
            py,
            &self.runtime,
            self.client.update_retention(name, change_hours),
        )
        .map(|_| ())
    }

    /// TagStream.
    fn tag_stream(
        &self,
        py: Python<'_>,
        name: &str,
        tags: BTreeMap<String, String>,
    ) -> PyResult<()> {
        block_on(py, &self.runtime, self.client.tag_stream(name, tags)).map(|_| ())
    }

    /// UntagStream.
    fn untag_stream(&self, py: Python<'_>, name: &str, keys: Vec<String>) -> PyResult<()> {
        block_on(py, &self.runtime, self.client.untag_stream(name, keys)).map(|_| ())
    }

    /// ListTagsForStream.
    fn list_tags_for_stream(
        &self,
        py: Python<'_>,
        name: &str,
    ) -> PyResult<BTreeMap<String, String>> {
        let r = block_on(py, &self.runtime, self.client.list_tags(name))?;
        Ok(r.tags.unwrap_or_default())
    }

    /// GetDataEndpoint for `api_name` (`GET_MEDIA`, `PUT_MEDIA`, `LIST_FRAGMENTS`, ...).
    #[pyo3(signature = (name, api_name = "GET_MEDIA"))]
    fn get_data_endpoint(&self, py: Python<'_>, name: &str, api_name: &str) -> PyResult<String> {
        let api: ApiName = parse_enum(py, "api_name", api_name)?;
        let request = GetDataEndpointRequest {
            stream_name: Some(name.to_owned()),
            stream_arn: None,
            api_name: api,
        };
        let r = block_on(py, &self.runtime, self.client.call(&request))?;
        Ok(r.data_endpoint)
    }

    /// ListFragments (every page), sorted by producer timestamp: tuples of (fragment number,
    /// size in bytes, producer ms, server ms, duration ms). `start_ms`/`end_ms` select a
    /// timestamp range (both or neither); `server_time` picks server timestamps.
    #[pyo3(signature = (name, start_ms = None, end_ms = None, server_time = false))]
    fn list_fragments(
        &self,
        py: Python<'_>,
        name: &str,
        start_ms: Option<u64>,
        end_ms: Option<u64>,
        server_time: bool,
    ) -> PyResult<Vec<FragmentRow>> {
        let selector = match (start_ms, end_ms) {
            (Some(s), Some(e)) => Some(FragmentSelector {
                fragment_selector_type: if server_time {
                    TimestampSelectorType::ServerTimestamp
                } else {
                    TimestampSelectorType::ProducerTimestamp
                },
                timestamp_range: TimestampRange {
                    start_timestamp: Timestamp::from_millis(s),
                    end_timestamp: Timestamp::from_millis(e),
                },
            }),
            (None, None) => None,
            _ => {
                return Err(PyValueError::new_err("give both start and end, or neither"));
            }
        };
        let mut all = block_on(
            py,
            &self.runtime,
            self.client.list_all_fragments(name, selector),
        )?;
        if server_time {
            all.sort_by(|a, b| {
                (a.server_timestamp, &a.fragment_number)
                    .cmp(&(b.server_timestamp, &b.fragment_number))
            });
        }
        Ok(all
            .into_iter()
            .map(|f| {
                (
                    f.fragment_number,
                    f.fragment_size_in_bytes,
                    f.producer_timestamp.as_millis(),
                    f.server_timestamp.as_millis(),
                    f.fragment_length_in_milliseconds,
                )
            })
            .collect())
    }

    /// GetMedia from `start` (`NOW`, `EARLIEST`, `FRAGMENT_NUMBER`, `CONTINUATION_TOKEN`,
    /// `PRODUCER_TIMESTAMP`, `SERVER_TIMESTAMP`) with `value` (fragment number or token) or
    /// `timestamp_ms`, as an iterator of fragments that resumes across reconnects. With
    /// `follow` it waits for new fragments forever; otherwise it ends once caught up.
    #[pyo3(signature = (name, start = "EARLIEST", value = None, timestamp_ms = None,
        follow = false, timeout_s = None))]
    #[allow(clippy::too_many_arguments)]
    fn get_media(
        &self,
        py: Python<'_>,
        name: &str,
        start: &str,
        value: Option<String>,
        timestamp_ms: Option<u64>,
        follow: bool,
        timeout_s: Option<f64>,
    ) -> PyResult<_MediaIterator> {
        let kind: StartSelectorType = parse_enum(py, "start selector", start)?;
        let mut selector = StartSelector::new(kind);
        match kind {
            StartSelectorType::FragmentNumber => selector.after_fragment_number = value,
            StartSelectorType::ContinuationToken => selector.continuation_token = value,
            StartSelectorType::ProducerTimestamp | StartSelectorType::ServerTimestamp => {
                selector.start_timestamp = timestamp_ms.map(Timestamp::from_millis);
            }
            _ => {}
        }
        let timeout = match timeout_s {
            Some(t) if t.is_finite() && t >= 0.0 => Some(Duration::from_secs_f64(t)),
            Some(_) => return Err(PyValueError::new_err("timeout must be a number >= 0")),
            None => None,
        };
        let stream = self.client.get_media(name, selector, follow);
        let (cancel, _) = tokio::sync::watch::channel(false);
        Ok(_MediaIterator {
            runtime: self.runtime.clone(),
            state: Mutex::new(Slot::Idle(Box::new(MediaState {
                stream: Some(stream),
                tracks: Arc::from(Vec::new()),
                frames: Vec::new(),
                errors: Vec::new(),
                last_fragment_number: None,
            }))),
            cancel,
            timeout,
        })
    }

    /// GetMediaForFragmentList: the response body as an iterator of `bytes` chunks.
    fn get_media_for_fragment_list(
        &self,
        py: Python<'_>,
        name: &str,
        fragments: Vec<String>,
    ) -> PyResult<_ChunkIterator> {
        let body = block_on(
            py,
            &self.runtime,
            self.client.get_media_for_fragment_list_raw(name, fragments),
        )?;
        Ok(_ChunkIterator {
            runtime: self.runtime.clone(),
            body: Mutex::new(Some(body)),
        })
    }

    /// Starts a PutMedia producer for `name` with `tracks`.
    #[pyo3(signature = (name, tracks, *, relative = false, fragment_duration_ns = None,
        timecode_scale_ns = 1_000_000, ack_level = "PERSISTED", finish_timeout_s = 30.0,
        buffer_bytes = None))]
    #[allow(clippy::too_many_arguments)]
    fn producer(
        &self,
        py: Python<'_>,
        name: &str,
        tracks: Vec<PyRef<'_, Track>>,
        relative: bool,
        fragment_duration_ns: Option<u64>,
        timecode_scale_ns: u64,
        ack_level: &str,
        finish_timeout_s: f64,
        buffer_bytes: Option<usize>,
    ) -> PyResult<_Producer> {
        let tracks: Vec<TrackInfo> = tracks.iter().map(|t| t.info.clone()).collect();
        let level = match ack_level.to_ascii_uppercase().as_str() {
            "PERSISTED" => AckLevel::Persisted,
            "RECEIVED" => AckLevel::Received,
            other => {
                return Err(PyValueError::new_err(format!(
                    "ack_level {other:?}: expected PERSISTED or RECEIVED"
                )));
            }
        };
        if !(finish_timeout_s.is_finite() && finish_timeout_s >= 0.0) {
            return Err(PyValueError::new_err(
                "finish_timeout must be a number >= 0",
            ));
        }
        let rt = self.runtime.get()?;
        let _guard = rt.enter();
        let producer = self
            .client
            .producer(name, tracks)
            .ack_level(level)
            .finish_timeout(Duration::from_secs_f64(finish_timeout_s))
            .configure(|c| {
                c.stream.timecode_mode = if relative {
                    TimecodeMode::Relative
                } else {
                    TimecodeMode::Absolute
                };
                c.stream.timecode_scale_ns = timecode_scale_ns;
                if let Some(ns) = fragment_duration_ns {
                    c.stream.fragmentation = Fragmentation::Duration(ns);
                }
                if let Some(b) = buffer_bytes {
                    c.buffer.max_bytes = b;
                }
            })
            .start()
            .map_err(|e| client_error(py, &e))?;
        Ok(_Producer {
            runtime: self.runtime.clone(),
            inner: Mutex::new(Some(Arc::new(producer))),
        })
    }
}

struct MediaState {
    stream: Option<MediaStream>,
    tracks: Arc<[TrackInfo]>,
    frames: Vec<kvs_core::mkv::Frame>,
    errors: Vec<String>,
    last_fragment_number: Option<String>,
}

/// What one wait for a fragment produced.
enum Next {
    Fragment(
        Box<kvs_core::mkv::reader::FragmentSummary>,
        Vec<kvs_core::mkv::Frame>,
        Arc<[TrackInfo]>,
    ),
    End,
    Failed(ClientError),
    TimedOut,
}

impl MediaState {
    async fn next(
        &mut self,
        mut cancel: tokio::sync::watch::Receiver<bool>,
        deadline: Option<tokio::time::Instant>,
    ) -> Next {
        loop {
            let Some(stream) = self.stream.as_mut() else {
                return Next::End;
            };
            let event = tokio::select! {
                e = stream.next_event() => e,
                _ = cancel.wait_for(|c| *c) => None,
                _ = sleep_until(deadline), if deadline.is_some() => return Next::TimedOut,
            };
            let Some(event) = event else {
                self.stream = None;
                return Next::End;
            };
            match event {
                Err(e) => {
                    self.stream = None;
                    return Next::Failed(e);
                }
                Ok(ConsumerEvent::Track(t)) => {
                    let mut all: Vec<TrackInfo> = self.tracks.to_vec();
                    match all.iter_mut().find(|o| o.number == t.number) {
                        Some(old) => *old = t,
                        None => all.push(t),
                    }
                    self.tracks = Arc::from(all);
                }
                Ok(ConsumerEvent::Frame(f)) => self.frames.push(f),
                Ok(ConsumerEvent::Fragment(summary)) => {
                    if let Some(n) = &summary.metadata.fragment_number {
                        self.last_fragment_number = Some(n.clone());
                    }
                    let frames = std::mem::take(&mut self.frames);
                    return Next::Fragment(summary, frames, self.tracks.clone());
                }
                Ok(ConsumerEvent::FragmentAborted { .. }) => self.frames.clear(),
                Ok(ConsumerEvent::Error {
                    code,
                    id,
                    fragment_number,
                }) => self.note(format!(
                    "in-band error {} (id {}) at fragment {}",
                    code.as_deref().unwrap_or("?"),
                    id.map_or("?".to_owned(), |i| i.to_string()),
                    fragment_number.as_deref().unwrap_or("?")
                )),
                Ok(ConsumerEvent::Decode(e)) => self.note(e.to_string()),
                Ok(ConsumerEvent::FragmentTooLarge { bytes }) => {
                    self.frames.clear();
                    self.note(format!("a fragment exceeded {bytes} bytes and was skipped"));
                }
                Ok(_) => {}
            }
        }
    }

    fn note(&mut self, message: String) {
        if self.errors.len() < 1000 {
            self.errors.push(message);
        }
    }
}

async fn sleep_until(deadline: Option<tokio::time::Instant>) {
    match deadline {
        Some(d) => tokio::time::sleep_until(d).await,
        None => std::future::pending().await,
    }
}

/// The state of a [`_MediaIterator`]: idle between waits, or lent to the task that waits for
/// the next fragment (which survives a `KeyboardInterrupt` and is picked up by the next call).
enum Slot {
    Idle(Box<MediaState>),
    Waiting(tokio::task::JoinHandle<(Box<MediaState>, Next)>),
    Gone,
}

/// How long a wait runs with the GIL released before Python gets to check for signals.
const SIGNAL_CHECK: Duration = Duration::from_millis(100);

/// GetMedia as an iterator of `kvs.Fragment`; every wait releases the GIL and Ctrl-C
/// interrupts it.
#[pyclass(module = "kvs._kvs", frozen)]
pub struct _MediaIterator {
    runtime: Arc<Runtime>,
    state: Mutex<Slot>,
    cancel: tokio::sync::watch::Sender<bool>,
    timeout: Option<Duration>,
}

impl _MediaIterator {
    /// Waits up to [`SIGNAL_CHECK`] for the next fragment (GIL released): `None` when the wait
    /// goes on.
    fn wait_a_little(&self, rt: &tokio::runtime::Runtime) -> Option<Next> {
        let mut slot = lock(&self.state);
        let mut handle = match std::mem::replace(&mut *slot, Slot::Gone) {
            Slot::Idle(mut state) => {
                let cancel = self.cancel.subscribe();
                let deadline = self.timeout.map(|t| tokio::time::Instant::now() + t);
                rt.spawn(async move {
                    let next = state.next(cancel, deadline).await;
                    (state, next)
                })
            }
            Slot::Waiting(handle) => handle,
            Slot::Gone => return Some(Next::End),
        };
        // The timer is made inside the runtime (it needs the runtime's time driver).
        let waited = rt.block_on(async { tokio::time::timeout(SIGNAL_CHECK, &mut handle).await });
        match waited {
            Err(_) => {
                *slot = Slot::Waiting(handle);
                None
            }
            Ok(Ok((state, next))) => {
                *slot = Slot::Idle(state);
                Some(next)
            }
            Ok(Err(_)) => Some(Next::End),
        }
    }

    fn with_state<T>(&self, f: impl FnOnce(&MediaState) -> T) -> Option<T> {
        match &*self.state.try_lock().ok()? {
            Slot::Idle(state) => Some(f(state)),
            _ => None,
        }
    }
}

#[pymethods]
impl _MediaIterator {
    fn __iter__(slf: Py<Self>) -> Py<Self> {
        slf
    }

    fn __next__(&self, py: Python<'_>) -> PyResult<Option<Fragment>> {
        let rt = self.runtime.get()?;
        let next = loop {
            if let Some(next) = py.detach(|| self.wait_a_little(rt)) {
                break next;
            }
            py.check_signals()?;
        };
        match next {
            Next::Fragment(summary, frames, tracks) => {
                let frames = frames
                    .into_iter()
                    .map(|f| Py::new(py, Frame::from_core(f, Some(tracks.clone()))))
                    .collect::<PyResult<Vec<_>>>()?;
                Ok(Some(Fragment::from_parts(*summary, frames, tracks)))
            }
            Next::End => Ok(None),
            Next::Failed(e) => Err(client_error(py, &e)),
            Next::TimedOut => Err(PyTimeoutError::new_err(format!(
                "GetMedia: no fragment within {:.3} s",
                self.timeout.map_or(0.0, |t| t.as_secs_f64())
            ))),
        }
    }

    /// Stops the iterator, also from another thread while it waits (it then ends).
    fn close(&self) {
        self.cancel.send_replace(true);
    }

    /// Problems the stream recovered from (in-band errors, skipped malformed data); read
    /// between waits.
    #[getter]
    fn errors(&self) -> Vec<String> {
        self.with_state(|s| s.errors.clone()).unwrap_or_default()
    }

    /// Fragment number of the last complete fragment delivered (resume after it).
    #[getter]
    fn last_fragment_number(&self) -> Option<String> {
        self.with_state(|s| s.last_fragment_number.clone())
            .flatten()
    }
}

/// A raw response body as an iterator of `bytes` chunks; every wait releases the GIL.
#[pyclass(module = "kvs._kvs", frozen)]
pub struct _ChunkIterator {
    runtime: Arc<Runtime>,
    body: Mutex<Option<ByteStream>>,
}

#[pymethods]
impl _ChunkIterator {
    fn __iter__(slf: Py<Self>) -> Py<Self> {
        slf
    }

    fn __next__<'py>(&self, py: Python<'py>) -> PyResult<Option<Bound<'py, PyBytes>>> {
        let rt = self.runtime.get()?;
        let chunk = py.detach(|| {
            let mut body = lock(&self.body);
            let Some(stream) = body.as_mut() else {
                return Ok(None);
            };
            let r = rt.block_on(stream.chunk());
            if !matches!(r, Ok(Some(_))) {
                *body = None;
            }
            r
        });
        match chunk {
            Ok(Some(b)) => Ok(Some(PyBytes::new(py, &b))),
            Ok(None) => Ok(None),
            Err(e) => Err(client_error(py, &e)),
        }
    }

    /// Drops the connection.
    fn close(&self) {
        lock(&self.body).take();
    }
}

/// A running PutMedia producer (see `kvs.Producer`).
#[pyclass(module = "kvs._kvs", frozen)]
pub struct _Producer {
    runtime: Arc<Runtime>,
    inner: Mutex<Option<Arc<Producer>>>,
}

impl _Producer {
    fn get(&self, py: Python<'_>) -> PyResult<Arc<Producer>> {
        lock(&self.inner)
            .clone()
            .ok_or_else(|| kvs_error(py, "ProducerError", "the producer is finished".into(), &[]))
    }
}

#[pymethods]
impl _Producer {
    /// Queues a frame; waits (GIL released) while the buffer is full. Returns the frame's id.
    fn put_frame(&self, py: Python<'_>, frame: PyRef<'_, Frame>) -> PyResult<u64> {
        let p = self.get(py)?;
        let f = frame.core_frame(py);
        block_on(py, &self.runtime, p.put_frame(f)).map(|id| id.0)
    }

    /// Adds a metadata tag to the next fragment (to every fragment when `persistent`).
    #[pyo3(signature = (name, value, persistent = false))]
    fn put_metadata(
        &self,
        py: Python<'_>,
        name: &str,
        value: &str,
        persistent: bool,
    ) -> PyResult<()> {
        let p = self.get(py)?;
        block_on(py, &self.runtime, p.put_metadata(name, value, persistent))
    }

    /// The session's counters now.
    fn metrics<'py>(&self, py: Python<'py>) -> PyResult<Bound<'py, PyDict>> {
        let m = self.get(py)?.metrics();
        metrics_dict(py, &m)
    }

    /// Ends the stream and waits (GIL released) for the last fragment's final ACK; returns the
    /// final counters with `fragments_acked` and `frames_dropped`.
    fn finish<'py>(&self, py: Python<'py>) -> PyResult<Bound<'py, PyDict>> {
        let p = lock(&self.inner).take().ok_or_else(|| {
            kvs_error(py, "ProducerError", "the producer is finished".into(), &[])
        })?;
        let p = Arc::try_unwrap(p).map_err(|p| {
            *lock(&self.inner) = Some(p);
            kvs_error(
                py,
                "ProducerError",
                "finish() called while another thread is putting a frame".into(),
                &[],
            )
        })?;
        let report = block_on(py, &self.runtime, p.finish())?;
        let d = metrics_dict(py, &report.metrics)?;
        d.set_item("fragments_acked", report.fragments_acked)?;
        d.set_item("frames_dropped", report.frames_dropped)?;
        Ok(d)
    }

    /// Stops the producer at once, without waiting for ACKs (idempotent).
    fn close(&self, py: Python<'_>) {
        let p = lock(&self.inner).take();
        py.detach(move || drop(p));
    }

    /// False once finished or closed.
    #[getter]
    fn running(&self) -> bool {
        lock(&self.inner).is_some()
    }
}
