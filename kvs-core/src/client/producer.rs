//! The producer: a [`PutMediaSession`] driven over real PutMedia connections.
//!
//! One driver task owns the session. Each [`Event::Connect`] spawns a connection task that
//! signs the request as the C producer does, opens a chunked streaming `POST /putMedia` whose
//! body is fed by the session's [`poll_transmit`](PutMediaSession::poll_transmit) chunks, and
//! reads the ACK body concurrently into `handle_ack_bytes`. Timers come from `poll_timeout`.
//! `put_frame` waits while the session's buffer is full (backpressure).

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use bytes::Bytes;
use tokio::sync::{mpsc, oneshot, watch};
use tokio::time::Instant;

use super::{Client, ClientError, StreamRef, StreamRefArg, is_retryable_api};
use crate::ack::ErrorId;
use crate::api::{ApiError, ApiErrorKind, ApiName, PutMediaRequest, Timestamp};
use crate::mkv::writer::StreamConfig;
use crate::mkv::{Frame, TrackInfo};
use crate::session::{
    AckLevel, ConnectionId, Disconnect, DropReason, Event, FrameId, Millis, PushError,
    PutMediaSession, SessionConfig, SessionMetrics,
};

/// What the producer reports: the session's events (ACKs, errors, rewinds, drops,
/// backpressure), as they happen.
pub type ProducerEvent = Event;

/// The outcome of [`Producer::finish`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FinishReport {
    /// The session's counters at the end.
    pub metrics: SessionMetrics,
    /// Frames that were dropped, for any reason.
    pub frames_dropped: u64,
    /// Fragments that got their final ACK.
    pub fragments_acked: u64,
}

/// Builds a [`Producer`].
#[derive(Debug)]
pub struct ProducerBuilder {
    client: Client,
    config: SessionConfig,
}

impl ProducerBuilder {
    pub(crate) fn new(client: Client, name: &str, tracks: Vec<TrackInfo>) -> Self {
        let mut uid = [0u8; 16];
        uid[..8].copy_from_slice(&super::random_u64().to_le_bytes());
        uid[8..].copy_from_slice(&super::random_u64().to_le_bytes());
        let start = Timestamp::from_millis(now_epoch_ms());
        let mut config = SessionConfig::new(name, StreamConfig::new(uid), tracks, start);
        config.backoff.jitter_seed = super::random_u64();
        ProducerBuilder { client, config }
    }

    /// Adjusts the session configuration (buffer limits, timeouts, ACK level, timecode mode,
    /// fragmentation...).
    pub fn configure(mut self, f: impl FnOnce(&mut SessionConfig)) -> Self {
        f(&mut self.config);
        self
    }

    /// Which ACK releases a fragment (PERSISTED by default; RECEIVED for zero retention).
    pub fn ack_level(mut self, level: AckLevel) -> Self {
        self.config.ack_level = level;
        self
    }

    /// How long `finish` waits for the last ACKs.
    pub fn finish_timeout(mut self, timeout: Duration) -> Self {
        self.config.timeouts.finish_ms = timeout.as_millis() as u64;
        self
    }

    /// Starts the driver on the current tokio runtime.
    pub fn start(self) -> Result<Producer, ClientError> {
        let handle = tokio::runtime::Handle::try_current()
            .map_err(|_| ClientError::producer("start the producer inside a tokio runtime"))?;
        let start = Instant::now();
        let session = PutMediaSession::new(self.config.clone(), Millis(0))
            .map_err(|e| ClientError::producer(format!("bad stream configuration: {e}")))?;
        let (cmd_tx, cmd_rx) = mpsc::channel(16);
        let (conn_tx, conn_rx) = mpsc::unbounded_channel();
        let (events_tx, events_rx) = mpsc::unbounded_channel();
        let (metrics_tx, metrics_rx) = watch::channel(SessionMetrics::default());
        let fatal = Arc::new(Mutex::new(None));
        let driver = Driver {
            client: self.client,
            session,
            start,
            conns: HashMap::new(),
            conn_tx,
            events_tx,
            metrics_tx,
            pending: None,
            finish_replies: Vec::new(),
            frames_dropped: 0,
            fragments_acked: 0,
            fatal: fatal.clone(),
            ack_error: None,
            closed: false,
        };
        let finish_ms = self.config.timeouts.finish_ms;
        let task = handle.spawn(driver.run(cmd_rx, conn_rx));
        Ok(Producer {
            cmd: cmd_tx,
            metrics: metrics_rx,
            events: Some(events_rx),
            fatal,
            task: Some(task),
            finish_ms,
        })
    }
}

/// A running producer (see the [module docs](self)).
#[derive(Debug)]
pub struct Producer {
    cmd: mpsc::Sender<Cmd>,
    metrics: watch::Receiver<SessionMetrics>,
    events: Option<mpsc::UnboundedReceiver<ProducerEvent>>,
    fatal: Arc<Mutex<Option<Fatal>>>,
    task: Option<tokio::task::JoinHandle<()>>,
    finish_ms: u64,
}

/// Why the producer stopped for good: a connection failed in a way retrying cannot fix.
#[derive(Debug, Clone)]
struct Fatal {
    message: String,
    /// The service's refusal, when that is what it was.
    api: Option<ApiError>,
}

impl Fatal {
    fn from_error(error: &ClientError) -> Self {
        Fatal {
            message: error.to_string(),
            api: error.api_error().cloned(),
        }
    }

    fn to_error(&self) -> ClientError {
        ClientError::Producer {
            message: self.message.clone(),
            api: self.api.clone(),
            ack: None,
        }
    }
}

enum Cmd {
    Frame(Frame, oneshot::Sender<Result<FrameId, ClientError>>),
    Metadata(
        String,
        String,
        bool,
        oneshot::Sender<Result<(), ClientError>>,
    ),
    Finish(oneshot::Sender<Result<FinishReport, ClientError>>),
}

impl Producer {
    fn closed_error(&self) -> ClientError {
        self.fatal
            .lock()
            .ok()
            .and_then(|g| g.as_ref().map(Fatal::to_error))
            .unwrap_or_else(|| ClientError::producer("the producer is closed"))
    }

    /// Queues a frame. Waits while the buffer is full (backpressure); fails when the encoder
    /// rejects the frame or the producer stopped on a non-retryable error.
    pub async fn put_frame(&self, frame: Frame) -> Result<FrameId, ClientError> {
        let (tx, rx) = oneshot::channel();
        self.cmd
            .send(Cmd::Frame(frame, tx))
            .await
            .map_err(|_| self.closed_error())?;
        rx.await.map_err(|_| self.closed_error())?
    }

    /// Adds a fragment metadata tag to the next fragment (persistent: to every fragment).
    pub async fn put_metadata(
        &self,
        name: &str,
        value: &str,
        persistent: bool,
    ) -> Result<(), ClientError> {
        let (tx, rx) = oneshot::channel();
        self.cmd
            .send(Cmd::Metadata(name.into(), value.into(), persistent, tx))
            .await
            .map_err(|_| self.closed_error())?;
        rx.await.map_err(|_| self.closed_error())?
    }

    /// Ends the stream and waits for the last fragment's final ACK (at most the configured
    /// finish timeout). Fails when frames were dropped or the producer failed.
    pub async fn finish(mut self) -> Result<FinishReport, ClientError> {
        let (tx, rx) = oneshot::channel();
        self.cmd
            .send(Cmd::Finish(tx))
            .await
            .map_err(|_| self.closed_error())?;
        let wait = Duration::from_millis(self.finish_ms.saturating_add(10_000));
        let result = match tokio::time::timeout(wait, rx).await {
            Ok(Ok(r)) => r,
            Ok(Err(_)) => Err(self.closed_error()),
            Err(_) => Err(ClientError::producer(format!(
                "finish did not complete within {} ms",
                wait.as_millis()
            ))),
        };
        if let Some(task) = self.task.take() {
            task.abort();
        }
        result
    }

    /// The session's counters now.
    pub fn metrics(&self) -> SessionMetrics {
        self.metrics.borrow().clone()
    }

    /// The event receiver (once; later calls give `None`).
    pub fn take_events(&mut self) -> Option<mpsc::UnboundedReceiver<ProducerEvent>> {
        self.events.take()
    }
}

impl Drop for Producer {
    fn drop(&mut self) {
        if let Some(task) = self.task.take() {
            task.abort();
        }
    }
}

enum ConnMsg {
    Connected(ConnectionId, u16),
    Bytes(ConnectionId, Bytes),
    Ended(ConnectionId, Disconnect),
    Fatal(ConnectionId, ClientError),
}

struct Conn {
    body: Option<mpsc::UnboundedSender<Bytes>>,
    task: tokio::task::JoinHandle<()>,
}

struct Driver {
    client: Client,
    session: PutMediaSession,
    start: Instant,
    conns: HashMap<ConnectionId, Conn>,
    conn_tx: mpsc::UnboundedSender<ConnMsg>,
    events_tx: mpsc::UnboundedSender<ProducerEvent>,
    metrics_tx: watch::Sender<SessionMetrics>,
    pending: Option<(Frame, oneshot::Sender<Result<FrameId, ClientError>>)>,
    finish_replies: Vec<oneshot::Sender<Result<FinishReport, ClientError>>>,
    frames_dropped: u64,
    fragments_acked: u64,
    fatal: Arc<Mutex<Option<Fatal>>>,
    /// The first ERROR ACK that failed a fragment (its frames were dropped).
    ack_error: Option<ErrorId>,
    closed: bool,
}

fn now_epoch_ms() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_millis() as u64)
        .unwrap_or(0)
}

impl Driver {
    fn now(&self) -> Millis {
        Millis(self.start.elapsed().as_millis() as u64)
    }

    async fn run(
        mut self,
        mut cmd_rx: mpsc::Receiver<Cmd>,
        mut conn_rx: mpsc::UnboundedReceiver<ConnMsg>,
    ) {
        let mut commands_open = true;
        loop {
            self.drain();
            self.retry_pending();
            if self.closed {
                self.reply_finish();
                break;
            }
            if self.fatal.lock().ok().is_some_and(|g| g.is_some()) {
                self.fail_all();
                break;
            }
            let deadline = self
                .session
                .poll_timeout()
                .map(|m| self.start + Duration::from_millis(m.0));
            let accept = commands_open && self.pending.is_none();
            tokio::select! {
                cmd = cmd_rx.recv(), if accept => match cmd {
                    None => {
                        commands_open = false;
                        let now = self.now();
                        self.session.finish(now);
                    }
                    Some(Cmd::Frame(frame, reply)) => self.push(frame, reply),
                    Some(Cmd::Metadata(n, v, p, reply)) => {
                        let r = self.session.put_metadata(&n, &v, p)
                            .map_err(|e| ClientError::producer(format!("metadata {n:?}: {e}")));
                        let _ = reply.send(r);
                    }
                    Some(Cmd::Finish(reply)) => {
                        self.finish_replies.push(reply);
                        let now = self.now();
                        self.session.finish(now);
                    }
                },
                msg = conn_rx.recv() => {
                    let now = self.now();
                    match msg {
                        Some(ConnMsg::Connected(id, status)) => self.session.handle_connected(now, id, status),
                        Some(ConnMsg::Bytes(id, bytes)) => self.session.handle_ack_bytes(now, id, &bytes),
                        Some(ConnMsg::Ended(id, cause)) => {
                            self.conns.remove(&id);
                            self.session.handle_disconnected(now, id, cause);
                        }
                        Some(ConnMsg::Fatal(id, error)) => {
                            self.conns.remove(&id);
                            if let Ok(mut g) = self.fatal.lock() {
                                *g = Some(Fatal::from_error(&error));
                            }
                        }
                        None => {}
                    }
                },
                _ = sleep_until(deadline), if deadline.is_some() => {
                    let now = self.now();
                    self.session.handle_timeout(now);
                }
            }
        }
        for (_, c) in self.conns.drain() {
            c.task.abort();
        }
    }

    fn push(&mut self, frame: Frame, reply: oneshot::Sender<Result<FrameId, ClientError>>) {
        let now = self.now();
        match self.session.push_frame(now, frame.clone()) {
            Ok(id) => {
                let _ = reply.send(Ok(id));
            }
            Err(PushError::Full { .. }) => self.pending = Some((frame, reply)),
            Err(e) => {
                let _ = reply.send(Err(ClientError::producer(format!("frame refused: {e}"))));
            }
        }
    }

    fn retry_pending(&mut self) {
        if let Some((frame, reply)) = self.pending.take() {
            self.push(frame, reply);
            self.drain();
        }
    }

    fn drain(&mut self) {
        loop {
            while let Some(event) = self.session.poll_event() {
                self.on_event(event);
            }
            let mut sent = false;
            while let Some(t) = self.session.poll_transmit() {
                sent = true;
                if let Some(conn) = self.conns.get(&t.connection)
                    && let Some(body) = &conn.body
                {
                    let _ = body.send(t.data);
                }
            }
            if !sent {
                break;
            }
        }
        self.metrics_tx.send_replace(self.session.metrics());
    }

    fn on_event(&mut self, event: Event) {
        match &event {
            Event::Connect {
                connection,
                request,
            } => self.connect(*connection, request.clone()),
            Event::EndBody { connection } => {
                if let Some(c) = self.conns.get_mut(connection) {
                    c.body = None;
                }
            }
            Event::CloseConnection { connection, .. } => {
                if let Some(c) = self.conns.remove(connection) {
                    c.task.abort();
                }
            }
            Event::Ack {
                latency_ms: Some(_),
                ..
            } => self.fragments_acked += 1,
            Event::Dropped(report) => {
                self.frames_dropped += report.frames;
                match report.reason {
                    DropReason::Failed(id) | DropReason::AfterFailedFragment(id) => {
                        self.ack_error.get_or_insert(id);
                    }
                    // Frames before the first key frame: expected, still reported.
                    _ => {}
                }
            }
            Event::Closed => self.closed = true,
            _ => {}
        }
        let _ = self.events_tx.send(event);
    }

    fn connect(&mut self, id: ConnectionId, request: PutMediaRequest) {
        let (body_tx, body_rx) = mpsc::unbounded_channel::<Bytes>();
        let task = tokio::spawn(run_connection(
            self.client.clone(),
            id,
            request,
            body_rx,
            self.conn_tx.clone(),
        ));
        self.conns.insert(
            id,
            Conn {
                body: Some(body_tx),
                task,
            },
        );
    }

    fn report(&self) -> FinishReport {
        FinishReport {
            metrics: self.session.metrics(),
            frames_dropped: self.frames_dropped,
            fragments_acked: self.fragments_acked,
        }
    }

    fn reply_finish(&mut self) {
        let report = self.report();
        for reply in self.finish_replies.drain(..) {
            let r = if report.frames_dropped > 0 {
                let cause = match self.ack_error {
                    Some(id) => format!(
                        ": the service failed a fragment with ERROR ACK {} ({}: {})",
                        id.code(),
                        id.name(),
                        id.description()
                    ),
                    None => String::new(),
                };
                Err(ClientError::Producer {
                    message: format!(
                        "{} frames were dropped ({} fragments acknowledged){cause}; see the \
                         Dropped events",
                        report.frames_dropped, report.fragments_acked
                    ),
                    api: None,
                    ack: self.ack_error,
                })
            } else {
                Ok(report.clone())
            };
            let _ = reply.send(r);
        }
    }

    fn fail_all(&mut self) {
        let fatal = self.fatal.lock().ok().and_then(|g| g.clone());
        let error = || {
            fatal.as_ref().map_or_else(
                || ClientError::producer("the producer failed"),
                Fatal::to_error,
            )
        };
        if let Some((_, reply)) = self.pending.take() {
            let _ = reply.send(Err(error()));
        }
        for reply in self.finish_replies.drain(..) {
            let _ = reply.send(Err(error()));
        }
    }
}

async fn sleep_until(deadline: Option<Instant>) {
    match deadline {
        Some(d) => tokio::time::sleep_until(d).await,
        None => std::future::pending().await,
    }
}

/// Whether a PutMedia head error should stop the producer rather than be retried.
fn fatal_head_error(error: &ApiError) -> bool {
    !is_retryable_api(error) && error.kind != ApiErrorKind::InvalidEndpoint
}

async fn run_connection(
    client: Client,
    id: ConnectionId,
    request: PutMediaRequest,
    body_rx: mpsc::UnboundedReceiver<Bytes>,
    tx: mpsc::UnboundedSender<ConnMsg>,
) {
    let sref = StreamRef {
        name: request.stream_name.clone(),
        arn: request.stream_arn.clone(),
    };
    let endpoint = match client
        .data_endpoint(&StreamRefArg::from_ref(&sref), ApiName::PutMedia)
        .await
    {
        Ok(e) => e,
        Err(e) => {
            let msg = if e.is_retryable() {
                ConnMsg::Ended(id, Disconnect::ConnectFailed)
            } else {
                ConnMsg::Fatal(id, e)
            };
            let _ = tx.send(msg);
            return;
        }
    };
    let mut head = match request.to_http(&endpoint) {
        Ok(h) => h,
        Err(error) => {
            let _ = tx.send(ConnMsg::Fatal(
                id,
                ClientError::Api {
                    operation: "PutMedia",
                    error,
                    hint: String::new(),
                },
            ));
            return;
        }
    };
    // hyper writes the chunked framing itself; the C producer does not sign this header.
    head.headers_mut().remove(http::header::TRANSFER_ENCODING);
    let key_id = match client.sign("PutMedia", &mut head, None).await {
        Ok(k) => k,
        Err(e) => {
            let _ = tx.send(ConnMsg::Fatal(id, e));
            return;
        }
    };
    let body_stream = futures_util::stream::unfold(body_rx, |mut rx| async move {
        rx.recv()
            .await
            .map(|b| (Ok::<Bytes, std::io::Error>(b), rx))
    });
    let (parts, ()) = head.into_parts();
    let url = parts.uri.to_string();
    let req = client
        .http()
        .post(&url)
        .headers(parts.headers)
        .body(reqwest::Body::wrap_stream(body_stream));
    let mut response = match req.send().await {
        Ok(r) => r,
        Err(_) => {
            let _ = tx.send(ConnMsg::Ended(id, Disconnect::ConnectFailed));
            return;
        }
    };
    let status = response.status();
    if !status.is_success() {
        let headers = response.headers().clone();
        let mut body = Vec::new();
        while let Ok(Some(c)) = response.chunk().await {
            if body.len() < crate::api::error::MAX_ERROR_BODY {
                body.extend_from_slice(&c);
            }
        }
        let mut r = http::Response::new(Bytes::from(body));
        *r.status_mut() = status;
        *r.headers_mut() = headers;
        let error = ApiError::from_http(&r);
        if error.kind == ApiErrorKind::InvalidEndpoint {
            client.forget_endpoint(&sref, ApiName::PutMedia);
        }
        if fatal_head_error(&error) {
            let _ = tx.send(ConnMsg::Fatal(
                id,
                client.api_error("PutMedia", &key_id, error),
            ));
        } else {
            let _ = tx.send(ConnMsg::Connected(id, status.as_u16()));
        }
        return;
    }
    let _ = tx.send(ConnMsg::Connected(id, status.as_u16()));
    loop {
        match response.chunk().await {
            Ok(Some(bytes)) => {
                if tx.send(ConnMsg::Bytes(id, bytes)).is_err() {
                    return;
                }
            }
            Ok(None) => {
                let _ = tx.send(ConnMsg::Ended(id, Disconnect::Closed));
                return;
            }
            Err(_) => {
                let _ = tx.send(ConnMsg::Ended(id, Disconnect::Error));
                return;
            }
        }
    }
}
