//! Connection-level defences against hostile clients: the cap on concurrent connections, the
//! keep-alive and header-read (slow-loris) timeouts, and the bookkeeping they rely on (bytes
//! read per connection, requests in flight).
//!
//! hyper's own `header_read_timeout` starts as soon as a connection waits for a request, so it
//! cannot tell a client that trickles a request head from an idle keep-alive connection. This
//! module keeps both apart: [`Watch`] sees every read (through [`WatchedIo`]) and every request
//! (through [`RequestGuard`], held by the response body until hyper drops it), and
//! [`idle_expired`] resolves when the connection has been silent for `keep_alive_timeout`
//! between requests, or a request head has been arriving for longer than `header_read_timeout`,
//! or a response write has made no progress for `write_stall_timeout` (a client that stopped
//! reading would otherwise hold its connection, and a GetMedia slot of its stream, forever).

use std::convert::Infallible;
use std::io;
use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::task::{Context, Poll};
use std::time::{Duration, Instant};

use bytes::Bytes;
use http_body::{Body as HttpBody, Frame, SizeHint};
use http_body_util::BodyExt;
use kvs_core::api::{ApiError, ApiErrorKind};
use tokio::io::{AsyncRead, AsyncWrite, AsyncWriteExt, ReadBuf};
use tokio::net::TcpStream;
use tokio::sync::Semaphore;

use crate::http_service::Body;

/// "No time recorded" in the millisecond fields of [`Watch`].
const NONE: u64 = u64::MAX;

/// Most connections being turned away at the same time (each gets a short task that writes the
/// 503); beyond it, excess connections are closed without an answer.
const MAX_REJECTING: usize = 64;

/// Most bytes read (and discarded) from a turned-away connection before closing it, so that the
/// client sees the 503 rather than a reset.
const REJECT_DRAIN_BYTES: usize = 64 * 1024;

/// How long a turned-away connection is drained.
const REJECT_DRAIN_TIME: Duration = Duration::from_secs(1);

/// What one connection is doing, as far as its timeouts care.
#[derive(Debug)]
pub(crate) struct Watch {
    start: Instant,
    /// Requests whose response has not been fully handed to hyper.
    in_flight: AtomicUsize,
    /// When the connection last became idle (no request in flight), ms since `start`.
    idle_since_ms: AtomicU64,
    /// When the first byte of the next request head arrived while idle, ms since `start`
    /// ([`NONE`] while none has).
    head_start_ms: AtomicU64,
    /// Since when a write has been waiting for the client to take bytes, ms since `start`
    /// ([`NONE`] while writes progress).
    write_blocked_ms: AtomicU64,
}

impl Watch {
    /// A watch for a connection opened now.
    pub(crate) fn new() -> Arc<Watch> {
        Arc::new(Watch {
            start: Instant::now(),
            in_flight: AtomicUsize::new(0),
            idle_since_ms: AtomicU64::new(0),
            head_start_ms: AtomicU64::new(NONE),
            write_blocked_ms: AtomicU64::new(NONE),
        })
    }

    fn now_ms(&self) -> u64 {
        u64::try_from(self.start.elapsed().as_millis()).unwrap_or(NONE - 1)
    }

    /// Bytes arrived: while idle, the first of them starts the header-read clock.
    fn on_read(&self) {
        if self.in_flight.load(Ordering::SeqCst) == 0
            && self.head_start_ms.load(Ordering::SeqCst) == NONE
        {
            self.head_start_ms.store(self.now_ms(), Ordering::SeqCst);
        }
    }

    /// A write (or flush) returned: `pending` starts the write-stall clock, progress stops it.
    fn on_write<T>(&self, out: &Poll<T>) {
        if out.is_pending() {
            if self.write_blocked_ms.load(Ordering::SeqCst) == NONE {
                self.write_blocked_ms.store(self.now_ms(), Ordering::SeqCst);
            }
        } else {
            self.write_blocked_ms.store(NONE, Ordering::SeqCst);
        }
    }

    /// A request head was parsed: the connection is busy until the guard drops.
    pub(crate) fn begin(self: &Arc<Self>) -> RequestGuard {
        self.in_flight.fetch_add(1, Ordering::SeqCst);
        self.head_start_ms.store(NONE, Ordering::SeqCst);
        RequestGuard(self.clone())
    }
}

/// Marks one request in flight on its connection; dropped with the response body.
#[derive(Debug)]
pub(crate) struct RequestGuard(Arc<Watch>);

impl Drop for RequestGuard {
    fn drop(&mut self) {
        let w = &self.0;
        if w.in_flight.fetch_sub(1, Ordering::SeqCst) == 1 {
            w.idle_since_ms.store(w.now_ms(), Ordering::SeqCst);
            w.head_start_ms.store(NONE, Ordering::SeqCst);
        }
    }
}

/// Resolves when the connection should be closed: idle (waiting for the first byte of a
/// request) for `keep_alive`, receiving one request head for longer than `header_read`, or
/// unable to write for `write_stall` (the only one that applies while a request is in flight).
pub(crate) async fn idle_expired(
    watch: &Watch,
    keep_alive: Duration,
    header_read: Duration,
    write_stall: Duration,
) {
    let ka = u64::try_from(keep_alive.as_millis()).unwrap_or(NONE / 4);
    let hr = u64::try_from(header_read.as_millis()).unwrap_or(NONE / 4);
    let ws = u64::try_from(write_stall.as_millis()).unwrap_or(NONE / 4);
    // Re-checked at least this often, so a head starting (or a write blocking) during a long
    // wait is still cut close to its own deadline.
    let tick = (ka.min(hr).min(ws) / 4).max(10);
    loop {
        let now = watch.now_ms();
        let deadline = if watch.in_flight.load(Ordering::SeqCst) > 0 {
            now.saturating_add(ka)
        } else {
            match watch.head_start_ms.load(Ordering::SeqCst) {
                NONE => watch
                    .idle_since_ms
                    .load(Ordering::SeqCst)
                    .saturating_add(ka),
                head => head.saturating_add(hr),
            }
        };
        let deadline = match watch.write_blocked_ms.load(Ordering::SeqCst) {
            NONE => deadline,
            blocked => deadline.min(blocked.saturating_add(ws)),
        };
        if deadline <= now {
            return;
        }
        tokio::time::sleep(Duration::from_millis((deadline - now).min(tick))).await;
    }
}

/// A byte stream whose reads are reported to a [`Watch`].
pub(crate) struct WatchedIo<T> {
    inner: T,
    watch: Arc<Watch>,
}

impl<T> WatchedIo<T> {
    /// Wraps `inner`.
    pub(crate) fn new(inner: T, watch: Arc<Watch>) -> Self {
        WatchedIo { inner, watch }
    }
}

impl<T: AsyncRead + Unpin> AsyncRead for WatchedIo<T> {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        let before = buf.filled().len();
        let out = Pin::new(&mut self.inner).poll_read(cx, buf);
        if matches!(out, Poll::Ready(Ok(()))) && buf.filled().len() > before {
            self.watch.on_read();
        }
        out
    }
}

impl<T: AsyncWrite + Unpin> AsyncWrite for WatchedIo<T> {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        let out = Pin::new(&mut self.inner).poll_write(cx, buf);
        self.watch.on_write(&out);
        out
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        let out = Pin::new(&mut self.inner).poll_flush(cx);
        self.watch.on_write(&out);
        out
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.inner).poll_shutdown(cx)
    }

    fn poll_write_vectored(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        let out = Pin::new(&mut self.inner).poll_write_vectored(cx, bufs);
        self.watch.on_write(&out);
        out
    }

    fn is_write_vectored(&self) -> bool {
        self.inner.is_write_vectored()
    }
}

/// A response body that keeps its request counted in flight until hyper drops it.
struct TrackedBody {
    inner: Body,
    _guard: RequestGuard,
}

impl HttpBody for TrackedBody {
    type Data = Bytes;
    type Error = Infallible;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, Infallible>>> {
        Pin::new(&mut self.inner).poll_frame(cx)
    }

    fn is_end_stream(&self) -> bool {
        self.inner.is_end_stream()
    }

    fn size_hint(&self) -> SizeHint {
        self.inner.size_hint()
    }
}

/// Ties `response`'s body to `guard`.
pub(crate) fn track(response: http::Response<Body>, guard: RequestGuard) -> http::Response<Body> {
    response.map(|inner| {
        TrackedBody {
            inner,
            _guard: guard,
        }
        .boxed_unsync()
    })
}

/// The cap on concurrent connections, and the smaller one on connections being turned away.
#[derive(Debug, Clone)]
pub(crate) struct Gate {
    /// One permit per open connection.
    pub(crate) connections: Arc<Semaphore>,
    rejecting: Arc<Semaphore>,
    max: usize,
}

impl Gate {
    /// A gate admitting `max` connections.
    pub(crate) fn new(max: usize) -> Gate {
        Gate {
            connections: Arc::new(Semaphore::new(max)),
            rejecting: Arc::new(Semaphore::new(MAX_REJECTING)),
            max,
        }
    }

    /// Turns away a connection over the cap: plain HTTP gets a `503 ServiceUnavailable` with
    /// `connection: close`; TLS (whose handshake would cost more than the answer is worth), or
    /// any connection while too many are already being turned away, is closed at once.
    pub(crate) fn reject(&self, tcp: TcpStream, tls: bool) {
        if tls {
            return;
        }
        let Ok(permit) = self.rejecting.clone().try_acquire_owned() else {
            return;
        };
        let max = self.max;
        tokio::spawn(async move {
            let _permit = permit;
            let mut tcp = tcp;
            let bytes = over_capacity_response(max);
            if tcp.write_all(&bytes).await.is_err() || tcp.shutdown().await.is_err() {
                return;
            }
            // Read (and drop) what the client sent, briefly, so closing does not reset the
            // connection before the client has read the answer.
            let _ = tokio::time::timeout(REJECT_DRAIN_TIME, async {
                use tokio::io::AsyncReadExt;
                let mut buf = [0u8; 4096];
                let mut total = 0;
                while total < REJECT_DRAIN_BYTES {
                    match tcp.read(&mut buf).await {
                        Ok(0) | Err(_) => break,
                        Ok(n) => total += n,
                    }
                }
            })
            .await;
        });
    }
}

/// The raw `503 ServiceUnavailable` response of a connection over the cap.
fn over_capacity_response(max: usize) -> Vec<u8> {
    let error = ApiError::new(
        ApiErrorKind::ServiceUnavailable,
        format!("The server is at its limit of {max} concurrent connections; retry later."),
    );
    let response = error.to_http(&crate::http_service::request_id());
    let status = response.status();
    let mut out = format!(
        "HTTP/1.1 {} {}\r\n",
        status.as_u16(),
        status.canonical_reason().unwrap_or("Service Unavailable")
    )
    .into_bytes();
    for (name, value) in response.headers() {
        out.extend_from_slice(name.as_str().as_bytes());
        out.extend_from_slice(b": ");
        out.extend_from_slice(value.as_bytes());
        out.extend_from_slice(b"\r\n");
    }
    out.extend_from_slice(
        format!(
            "content-length: {}\r\nconnection: close\r\n\r\n",
            response.body().len()
        )
        .as_bytes(),
    );
    out.extend_from_slice(response.body());
    out
}
