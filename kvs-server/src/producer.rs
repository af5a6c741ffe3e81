//! A small tokio driver of kvs-core's [`PutMediaSession`] over plain HTTP/1.1: what the
//! end-to-end tests and the `kvs-load` tool use to produce into a server on loopback.
//!
//! The driver follows the session's drain contract: after each input it drains
//! [`PutMediaSession::poll_event`] and [`PutMediaSession::poll_transmit`], opens connections the
//! session asks for (SigV4-signed the way the C producer signs PutMedia), writes each transmit as
//! one HTTP chunk, feeds response bytes back as ACK bytes and fires the session's timers.
//! Everything the session reports is forwarded to the caller with the instant it happened.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::time::{Instant, SystemTime};

use bytes::{Bytes, BytesMut};
use kvs_core::mkv::Frame;
use kvs_core::session::{
    ConnectionId, Disconnect, Event, Millis, PutMediaSession, SessionConfig, SessionMetrics,
};
use kvs_core::sigv4::{SigningCredentials, SigningParams};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio::net::tcp::OwnedWriteHalf;
use tokio::sync::mpsc;
use tokio::task::JoinHandle;

/// Where to produce to.
#[derive(Debug, Clone)]
pub struct Target {
    /// The server's address (plain HTTP).
    pub addr: SocketAddr,
    /// Access key id.
    pub access_key_id: String,
    /// Secret access key.
    pub secret_access_key: String,
    /// SigV4 region.
    pub region: String,
}

impl Target {
    /// The target of an in-process server.
    pub fn of(server: &crate::Server) -> Target {
        Target {
            addr: server.local_addr(),
            access_key_id: server.credentials().access_key_id.clone(),
            secret_access_key: server.credentials().secret_access_key.clone(),
            region: server.region().to_owned(),
        }
    }
}

/// What the driver tells its caller.
#[derive(Debug, Clone)]
pub enum Report {
    /// A session event (ACKs, errors, drops, ...), when it was polled.
    Session(Event, Instant),
    /// A frame was pushed and every byte the session had to send after it was written to the
    /// socket (for a key frame: the previous fragment's last byte is out).
    FrameWritten {
        /// The frame's timestamp.
        timestamp_ns: i64,
        /// Whether it was a key frame.
        key: bool,
        /// When the writes finished.
        at: Instant,
    },
    /// Bytes written to a connection's request body (before chunk framing).
    Sent {
        /// The connection.
        connection: ConnectionId,
        /// The bytes.
        data: Bytes,
    },
    /// `push_frame` refused a frame (buffer full).
    Refused {
        /// The frame's timestamp.
        timestamp_ns: i64,
    },
}

/// Why the driver could not run.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum DriverError {
    /// The session configuration was refused.
    #[error("invalid session configuration: {0}")]
    Config(String),
}

enum Io {
    Connected {
        id: ConnectionId,
        status: u16,
        writer: Option<OwnedWriteHalf>,
    },
    Bytes(ConnectionId, Bytes),
    Closed(ConnectionId),
}

struct Conn {
    writer: Option<OwnedWriteHalf>,
    /// Chunks the session emitted before the connection was up.
    queued: Vec<Bytes>,
    end_queued: bool,
    reader: JoinHandle<()>,
}

/// Runs a session until `frames` closes and the session ends; returns its final metrics.
pub async fn run(
    target: Target,
    config: SessionConfig,
    mut frames: mpsc::Receiver<Frame>,
    report: mpsc::UnboundedSender<Report>,
) -> Result<SessionMetrics, DriverError> {
    let epoch = Instant::now();
    let now = || Millis(epoch.elapsed().as_millis() as u64);
    let mut session =
        PutMediaSession::new(config, now()).map_err(|e| DriverError::Config(e.to_string()))?;
    let (io_tx, mut io_rx) = mpsc::unbounded_channel::<Io>();
    let mut conns: HashMap<ConnectionId, Conn> = HashMap::new();
    let mut finished = false;
    loop {
        drain(&mut session, &target, &mut conns, &io_tx, &report, now).await;
        if session.is_closed() {
            break;
        }
        let deadline = session.poll_timeout().map(|m| {
            let wait = m.since(now());
            tokio::time::Instant::now() + std::time::Duration::from_millis(wait)
        });
        tokio::select! {
            frame = frames.recv(), if !finished => match frame {
                Some(f) => {
                    let (ts, key) = (f.timestamp_ns, f.keyframe);
                    if session.push_frame(now(), f).is_err() {
                        let _ = report.send(Report::Refused { timestamp_ns: ts });
                    }
                    drain(&mut session, &target, &mut conns, &io_tx, &report, now).await;
                    let _ = report.send(Report::FrameWritten {
                        timestamp_ns: ts,
                        key,
                        at: Instant::now(),
                    });
                }
                None => {
                    finished = true;
                    session.finish(now());
                }
            },
            io = io_rx.recv() => match io {
                Some(Io::Connected { id, status, writer }) => {
                    if let Some(c) = conns.get_mut(&id) {
                        c.writer = writer;
                    }
                    if status == 0 {
                        conns.remove(&id);
                        session.handle_disconnected(now(), id, Disconnect::ConnectFailed);
                    } else {
                        session.handle_connected(now(), id, status);
                    }
                }
                Some(Io::Bytes(id, b)) => session.handle_ack_bytes(now(), id, &b),
                Some(Io::Closed(id)) => {
                    if conns.remove(&id).is_some() {
                        session.handle_disconnected(now(), id, Disconnect::Closed);
                    }
                }
                None => break,
            },
            _ = sleep_until(deadline) => session.handle_timeout(now()),
        }
    }
    for (_, c) in conns {
        c.reader.abort();
    }
    Ok(session.metrics())
}

async fn sleep_until(deadline: Option<tokio::time::Instant>) {
    match deadline {
        Some(d) => tokio::time::sleep_until(d).await,
        None => std::future::pending().await,
    }
}

fn chunk(data: &[u8]) -> Vec<u8> {
    let mut c = format!("{:x}\r\n", data.len()).into_bytes();
    c.extend_from_slice(data);
    c.extend_from_slice(b"\r\n");
    c
}

async fn write_to(conn: &mut Conn, data: &[u8]) -> bool {
    match conn.writer.as_mut() {
        Some(w) => w.write_all(data).await.is_ok(),
        None => true,
    }
}

async fn drain(
    session: &mut PutMediaSession,
    target: &Target,
    conns: &mut HashMap<ConnectionId, Conn>,
    io_tx: &mpsc::UnboundedSender<Io>,
    report: &mpsc::UnboundedSender<Report>,
    now: impl Fn() -> Millis,
) {
    loop {
        while let Some(ev) = session.poll_event() {
            match &ev {
                Event::Connect {
                    connection,
                    request,
                } => {
                    let reader = tokio::spawn(connect(
                        target.clone(),
                        *connection,
                        request.clone(),
                        io_tx.clone(),
                    ));
                    conns.insert(
                        *connection,
                        Conn {
                            writer: None,
                            queued: Vec::new(),
                            end_queued: false,
                            reader,
                        },
                    );
                }
                Event::EndBody { connection } => {
                    if let Some(c) = conns.get_mut(connection) {
                        if c.writer.is_some() {
                            let _ = write_to(c, b"0\r\n\r\n").await;
                        } else {
                            c.end_queued = true;
                        }
                    }
                }
                Event::CloseConnection { connection, .. } => {
                    if let Some(c) = conns.remove(connection) {
                        c.reader.abort();
                    }
                }
                _ => {}
            }
            let _ = report.send(Report::Session(ev, Instant::now()));
        }
        let mut sent = false;
        while let Some(t) = session.poll_transmit() {
            sent = true;
            let _ = report.send(Report::Sent {
                connection: t.connection,
                data: t.data.clone(),
            });
            let mut failed = false;
            if let Some(c) = conns.get_mut(&t.connection) {
                if c.writer.is_some() {
                    // Anything queued while connecting goes first.
                    let mut out = Vec::new();
                    for q in c.queued.drain(..) {
                        out.extend(chunk(&q));
                    }
                    out.extend(chunk(&t.data));
                    failed = !write_to(c, &out).await;
                } else {
                    c.queued.push(t.data);
                }
            }
            if failed && conns.remove(&t.connection).is_some() {
                session.handle_disconnected(now(), t.connection, Disconnect::Error);
            }
        }
        // Flush queues of connections that came up.
        for c in conns.values_mut() {
            if c.writer.is_some() && (!c.queued.is_empty() || c.end_queued) {
                let mut out = Vec::new();
                for q in c.queued.drain(..) {
                    out.extend(chunk(&q));
                }
                if std::mem::take(&mut c.end_queued) {
                    out.extend_from_slice(b"0\r\n\r\n");
                }
                let _ = write_to(c, &out).await;
            }
        }
        if !sent {
            break;
        }
    }
}

/// Opens a connection, sends the signed head, reads the response head and then streams the
/// de-chunked response body back as [`Io::Bytes`].
async fn connect(
    target: Target,
    id: ConnectionId,
    request: kvs_core::api::PutMediaRequest,
    io: mpsc::UnboundedSender<Io>,
) {
    let fail = |io: &mpsc::UnboundedSender<Io>| {
        let _ = io.send(Io::Connected {
            id,
            status: 0,
            writer: None,
        });
    };
    let Ok(uri) = format!("http://{}", target.addr).parse::<http::Uri>() else {
        return fail(&io);
    };
    let Ok(mut head) = request.to_http(&uri) else {
        return fail(&io);
    };
    head.headers_mut().insert(
        http::header::USER_AGENT,
        http::HeaderValue::from_static("kvs-load"),
    );
    let creds = SigningCredentials {
        access_key_id: &target.access_key_id,
        secret_access_key: &target.secret_access_key,
        session_token: None,
    };
    let params = SigningParams::c_producer_put_media(creds, &target.region, SystemTime::now());
    let signed = kvs_core::sigv4::sign(&head, &params)
        .ok()
        .and_then(|out| out.apply_to_request(&mut head).ok());
    if signed.is_none() {
        return fail(&io);
    }
    let mut text = format!("POST {} HTTP/1.1\r\n", head.uri().path());
    for (k, v) in head.headers() {
        text.push_str(&format!("{}: {}\r\n", k, v.to_str().unwrap_or_default()));
    }
    text.push_str("\r\n");
    let Ok(tcp) = TcpStream::connect(target.addr).await else {
        return fail(&io);
    };
    let _ = tcp.set_nodelay(true);
    let (mut rd, mut wr) = tcp.into_split();
    if wr.write_all(text.as_bytes()).await.is_err() {
        return fail(&io);
    }
    let mut buf = BytesMut::new();
    let head_end = loop {
        if let Some(p) = buf.windows(4).position(|w| w == b"\r\n\r\n") {
            break p + 4;
        }
        match rd.read_buf(&mut buf).await {
            Ok(n) if n > 0 && buf.len() < 64 * 1024 => {}
            _ => return fail(&io),
        }
    };
    let head_text = String::from_utf8_lossy(buf.get(..head_end).unwrap_or_default()).to_string();
    let status = head_text
        .get(9..12)
        .and_then(|s| s.parse::<u16>().ok())
        .unwrap_or(0);
    let chunked = head_text
        .to_ascii_lowercase()
        .contains("transfer-encoding: chunked");
    let _ = buf.split_to(head_end);
    let _ = io.send(Io::Connected {
        id,
        status,
        writer: Some(wr),
    });
    let mut dechunk = Dechunk::default();
    loop {
        if !buf.is_empty() {
            let data = buf.split().freeze();
            let out = if chunked { dechunk.push(&data) } else { data };
            if !out.is_empty() {
                let _ = io.send(Io::Bytes(id, out));
            }
            if dechunk.done {
                break;
            }
        }
        match rd.read_buf(&mut buf).await {
            Ok(n) if n > 0 => {}
            _ => break,
        }
    }
    let _ = io.send(Io::Closed(id));
}

/// Chunked transfer decoding of the response body.
#[derive(Default)]
struct Dechunk {
    buf: Vec<u8>,
    remaining: usize,
    in_data: bool,
    done: bool,
}

impl Dechunk {
    fn push(&mut self, data: &[u8]) -> Bytes {
        self.buf.extend_from_slice(data);
        let mut out = Vec::new();
        loop {
            if self.in_data {
                let n = self.remaining.min(self.buf.len());
                out.extend(self.buf.drain(..n));
                self.remaining -= n;
                if self.remaining > 0 || self.buf.len() < 2 {
                    return Bytes::from(out);
                }
                self.buf.drain(..2);
                self.in_data = false;
            }
            let Some(p) = self.buf.windows(2).position(|w| w == b"\r\n") else {
                return Bytes::from(out);
            };
            let line = String::from_utf8_lossy(self.buf.get(..p).unwrap_or_default()).to_string();
            self.buf.drain(..p + 2);
            let size = line
                .split(';')
                .next()
                .and_then(|s| usize::from_str_radix(s.trim(), 16).ok())
                .unwrap_or(0);
            if size == 0 {
                self.done = true;
                return Bytes::from(out);
            }
            self.remaining = size;
            self.in_data = true;
        }
    }
}
