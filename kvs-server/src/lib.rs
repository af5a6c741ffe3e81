//! # kvs-server
//!
//! A local, Kinesis Video Streams compatible server. It speaks the KVS wire protocol (the same
//! [`kvs_core::api`] types the clients use), verifies SigV4 on every request, stores fragments
//! durably (PERSISTED only after `fsync`) and serves them live and archived:
//!
//! | plane | operations |
//! |---|---|
//! | control | CreateStream, DescribeStream, ListStreams, UpdateStream, UpdateDataRetention, DeleteStream, Tag/Untag/ListTagsForStream, Tag/Untag/ListTagsForResource, GetDataEndpoint, Describe/UpdateStreamStorageConfiguration |
//! | media | PutMedia (full-duplex ACK stream), GetMedia (all start selectors, live tail) |
//! | archived media | ListFragments, GetMediaForFragmentList |
//!
//! Run it in-process with [`Server::bind`], or as `kvs serve`.
//!
//! ```no_run
//! # async fn demo() -> Result<(), kvs_server::ServerError> {
//! let mut config = kvs_server::ServerConfig::new(std::env::temp_dir().join("kvs-demo"));
//! config.port = 0; // any free port
//! let server = kvs_server::Server::bind(config).await?;
//! println!("{}", server.export_line());
//! server.shutdown().await;
//! # Ok(()) }
//! ```

mod budget;
mod clip;
mod conn;
mod control;
mod creds;
mod dash;
mod hls;
mod http_service;
mod ingest;
pub mod keys;
mod media;
mod mkv_guard;
pub mod policy;
pub mod producer;
pub mod seal;
pub mod state;
pub mod store;
mod tls;

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use tokio::net::TcpListener;
use tokio::sync::watch;
use tokio::task::JoinHandle;

pub use creds::{DevCredentials, LoadedCredentials, load_credentials_file};

/// Why the server could not start.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ServerError {
    /// Binding the listening socket failed.
    #[error("cannot listen on {addr}: {source}")]
    Bind {
        /// The address.
        addr: String,
        /// The I/O error.
        source: std::io::Error,
    },
    /// The data directory could not be prepared or recovered.
    #[error("data directory {path}: {source}")]
    DataDir {
        /// The path.
        path: PathBuf,
        /// The I/O error.
        source: std::io::Error,
    },
    /// The credentials file is unreadable or holds no key pair.
    #[error("credentials file {path}: {message}")]
    Credentials {
        /// The path.
        path: PathBuf,
        /// What was wrong.
        message: String,
    },
    /// TLS configuration failed.
    #[error("TLS: {0}")]
    Tls(String),
    /// A configured limit is out of range.
    #[error("invalid configuration: {0}")]
    Config(String),
    /// The master key file is unusable, or does not open the data directory (encryption at
    /// rest).
    #[error("master key file {path}: {message}")]
    Keys {
        /// The key file (or the data file that did not open).
        path: PathBuf,
        /// What was wrong and what to do.
        message: String,
    },
    /// The data directory holds another storage format.
    #[error("data directory {path}: {message}")]
    DataFormat {
        /// The data directory.
        path: PathBuf,
        /// What was found and what to do.
        message: String,
    },
}

/// How the server does TLS.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub enum TlsMode {
    /// Plain HTTP.
    #[default]
    None,
    /// A certificate chain and a private key, both PEM files.
    Files {
        /// Certificate chain (PEM).
        cert: PathBuf,
        /// Private key (PEM).
        key: PathBuf,
    },
    /// A certificate generated at start for `localhost`, `127.0.0.1` and the host; it is written
    /// to `<data dir>/tls/cert.pem` for clients to trust.
    SelfSigned,
}

/// Smallest accepted [`Limits::max_header_bytes`].
pub const MIN_HEADER_BYTES: usize = 2048;
/// Smallest accepted [`Limits::max_headers`].
pub const MIN_HEADERS: usize = 16;
/// Smallest accepted [`Limits::max_ingest_bytes`] (a few read windows of a PutMedia body).
pub const MIN_INGEST_BYTES: u64 = 1024 * 1024;

/// Tunable limits and timings (the defaults follow the service).
#[derive(Debug, Clone)]
pub struct Limits {
    /// How long CreateStream / UpdateStream leave a stream CREATING / UPDATING, and DeleteStream
    /// DELETING (zero: ACTIVE at once).
    pub transition_delay: Duration,
    /// IDLE ACK period while no PutMedia data arrives.
    pub idle_ack_interval: Duration,
    /// A PutMedia request without data for this long is closed.
    pub idle_timeout: Duration,
    /// Longest PutMedia connection (ERROR 4003 after it).
    pub max_connection_duration: Duration,
    /// Largest fragment (ERROR 4001 above it).
    pub max_fragment_bytes: u64,
    /// Longest fragment in ms (ERROR 4002 above it).
    pub max_fragment_duration_ms: u64,
    /// How far in the future a producer timestamp may be (ERROR 4007 beyond).
    pub max_future_ms: u64,
    /// Most tracks (ERROR 4012 above).
    pub max_tracks: usize,
    /// Most user metadata tags per fragment (ERROR 4009 above).
    pub max_fragment_metadata: usize,
    /// A caught-up GetMedia without an active producer ends after this long without a fragment.
    pub get_media_idle_end: Duration,
    /// Most concurrent GetMedia connections per stream.
    pub max_get_media_connections: usize,
    /// A connection whose client takes no response bytes for this long (a GetMedia reader that
    /// stopped reading, a producer that never reads its ACKs, a half-open connection) is closed,
    /// freeing its connection and its per-stream slot.
    pub write_stall_timeout: Duration,
    /// Most concurrent GetMediaForFragmentList connections per stream.
    pub max_fragment_list_connections: usize,
    /// Period of the retention sweep.
    pub retention_interval: Duration,
    /// Segment file rotation size.
    pub segment_bytes: u64,
    /// Retention 0: how long fragments stay readable in memory.
    pub buffer_duration: Duration,
    /// Retention 0: most bytes kept in memory per stream.
    pub buffer_bytes: u64,
    /// Retention > 0: recent fragment bytes kept in memory per stream for live readers.
    pub cache_bytes: u64,
    /// PutMedia: most fragments of one connection waiting to be persisted; the request body is
    /// not read while more are pending.
    pub max_pending_fragments: usize,
    /// PutMedia: most ACK lines of one connection not yet taken by the response; the request
    /// body is not read while more are queued.
    pub max_queued_acks: usize,
    /// Most streams whose storage files the writer keeps open (least recently used ones are
    /// synced and closed beyond it).
    pub max_open_streams: usize,
    /// Online index log compaction: a stream's `index.log` is rewritten as a snapshot of its
    /// index while the server runs once it exceeds twice the snapshot's size plus this many
    /// bytes (see [`store`]).
    pub index_compact_floor: u64,
    /// Most concurrent client connections (plain or TLS). Beyond it a new connection gets a
    /// `503 ServiceUnavailable` (plain HTTP) or is closed (TLS) at once, so a flood cannot
    /// exhaust file descriptors.
    pub max_connections: usize,
    /// How long a connection may wait for the first byte of a request: right after it opens,
    /// and between requests (keep-alive idle).
    pub keep_alive_timeout: Duration,
    /// How long a request head (request line and headers) may take from its first byte to its
    /// last (slow-loris defence): the connection is closed after it.
    pub header_read_timeout: Duration,
    /// Largest request head in bytes (request line and headers); `431` and close above it.
    pub max_header_bytes: usize,
    /// Most header fields in a request; `431` and close above it.
    pub max_headers: usize,
    /// How long a TLS handshake may take before the connection is closed.
    pub tls_handshake_timeout: Duration,
    /// How long the whole body of a JSON API call (at most `MAX_REQUEST_BODY` bytes) may take
    /// to arrive; `408 RequestTimeoutException` and close after it.
    pub body_read_timeout: Duration,
    /// PutMedia: most bytes all connections together may hold in memory (received bytes not
    /// yet cut into a fragment, and fragments not yet persisted). A connection that would go
    /// beyond it stops reading its socket until bytes are freed (TCP backpressure); one whose
    /// current fragment could never fit gets ERROR ACK 4001.
    pub max_ingest_bytes: u64,
    /// PutMedia: how long a connection may wait for bytes of [`Limits::max_ingest_bytes`]
    /// before it gets ERROR ACK 5000 (retriable) and is closed.
    pub ingest_wait_timeout: Duration,
}

impl Limits {
    /// Checks the limits against what the storage format can hold.
    pub fn validate(&self) -> Result<(), ServerError> {
        if self.max_fragment_bytes > store::MAX_FRAGMENT_BYTES {
            return Err(ServerError::Config(format!(
                "max_fragment_bytes {} exceeds the storage record limit of {} bytes",
                self.max_fragment_bytes,
                store::MAX_FRAGMENT_BYTES
            )));
        }
        if self.max_fragment_duration_ms > u64::from(u32::MAX) {
            return Err(ServerError::Config(format!(
                "max_fragment_duration_ms {} exceeds {} ms",
                self.max_fragment_duration_ms,
                u32::MAX
            )));
        }
        if self.max_connections == 0 {
            return Err(ServerError::Config(
                "max_connections must be at least 1".into(),
            ));
        }
        if self.max_header_bytes < MIN_HEADER_BYTES {
            return Err(ServerError::Config(format!(
                "max_header_bytes {} is below the minimum of {MIN_HEADER_BYTES} bytes (a signed request head needs about 1 KiB)",
                self.max_header_bytes
            )));
        }
        if self.max_headers < MIN_HEADERS {
            return Err(ServerError::Config(format!(
                "max_headers {} is below the minimum of {MIN_HEADERS} (a signed request carries about 10)",
                self.max_headers
            )));
        }
        if self.max_ingest_bytes < MIN_INGEST_BYTES {
            return Err(ServerError::Config(format!(
                "max_ingest_bytes {} is below the minimum of {MIN_INGEST_BYTES} bytes; give it at least twice max_fragment_bytes ({}) so that a largest fragment fits",
                self.max_ingest_bytes, self.max_fragment_bytes
            )));
        }
        let timeouts = [
            ("ingest_wait_timeout", self.ingest_wait_timeout),
            ("keep_alive_timeout", self.keep_alive_timeout),
            ("header_read_timeout", self.header_read_timeout),
            ("tls_handshake_timeout", self.tls_handshake_timeout),
            ("body_read_timeout", self.body_read_timeout),
            ("write_stall_timeout", self.write_stall_timeout),
        ];
        for (name, value) in timeouts {
            if value.is_zero() {
                return Err(ServerError::Config(format!(
                    "{name} must be longer than zero"
                )));
            }
        }
        Ok(())
    }
}

impl Default for Limits {
    fn default() -> Self {
        Limits {
            transition_delay: Duration::from_millis(200),
            idle_ack_interval: Duration::from_secs(3),
            idle_timeout: Duration::from_secs(30),
            max_connection_duration: Duration::from_secs(45 * 60),
            max_fragment_bytes: 50 * 1024 * 1024,
            max_fragment_duration_ms: 20_000,
            max_future_ms: 5 * 60 * 1000,
            max_tracks: 3,
            max_fragment_metadata: 10,
            get_media_idle_end: Duration::from_secs(3),
            max_get_media_connections: 3,
            write_stall_timeout: Duration::from_secs(30),
            max_fragment_list_connections: 5,
            retention_interval: Duration::from_secs(30),
            segment_bytes: 64 * 1024 * 1024,
            buffer_duration: Duration::from_secs(300),
            buffer_bytes: 200 * 1024 * 1024,
            cache_bytes: 64 * 1024 * 1024,
            max_pending_fragments: 16,
            max_queued_acks: 64,
            max_open_streams: 256,
            index_compact_floor: store::INDEX_COMPACT_FLOOR,
            max_connections: 512,
            keep_alive_timeout: Duration::from_secs(60),
            header_read_timeout: Duration::from_secs(20),
            max_header_bytes: 16 * 1024,
            max_headers: 100,
            tls_handshake_timeout: Duration::from_secs(10),
            body_read_timeout: Duration::from_secs(30),
            max_ingest_bytes: 1024 * 1024 * 1024,
            ingest_wait_timeout: Duration::from_secs(30),
        }
    }
}

/// The server's wall clock: server timestamps, retention and the retention-0 buffer read it
/// (SigV4 verification always uses the system time). Tests inject a [`ManualClock`].
pub trait Clock: Send + Sync + std::fmt::Debug {
    /// Now, in epoch milliseconds.
    fn now_ms(&self) -> u64;
}

/// The system clock.
#[derive(Debug, Clone, Copy, Default)]
pub struct SystemClock;

impl Clock for SystemClock {
    fn now_ms(&self) -> u64 {
        now_ms()
    }
}

/// A clock that moves only when told (for tests).
#[derive(Debug, Default)]
pub struct ManualClock(AtomicU64);

impl ManualClock {
    /// A clock reading `ms`.
    pub fn new(ms: u64) -> Self {
        ManualClock(AtomicU64::new(ms))
    }

    /// Sets the time.
    pub fn set(&self, ms: u64) {
        self.0.store(ms, Ordering::SeqCst);
    }

    /// Moves the time forward by `by`.
    pub fn advance(&self, by: Duration) {
        self.0.fetch_add(
            u64::try_from(by.as_millis()).unwrap_or(u64::MAX),
            Ordering::SeqCst,
        );
    }
}

impl Clock for ManualClock {
    fn now_ms(&self) -> u64 {
        self.0.load(Ordering::SeqCst)
    }
}

/// Server configuration.
#[derive(Debug, Clone)]
pub struct ServerConfig {
    /// Address to listen on (default `127.0.0.1`).
    pub host: String,
    /// Port (default 4567; 0 picks a free one).
    pub port: u16,
    /// Where streams, fragments and the development key pair live.
    pub data_dir: PathBuf,
    /// Region of the SigV4 scope and the ARNs (default `us-east-1`).
    pub region: String,
    /// Account id in ARNs.
    pub account_id: String,
    /// A shared-credentials (INI) file whose key pairs are accepted, instead of the generated
    /// development pair. Profiles may restrict their pair with `kvs_allow`, `kvs_streams`,
    /// `kvs_deny`, `kvs_expiration` and `kvs_policy_file` (see [`load_credentials_file`] and
    /// [`policy`]).
    pub credentials_file: Option<PathBuf>,
    /// TLS.
    pub tls: TlsMode,
    /// Limits and timings.
    pub limits: Limits,
    /// The wall clock (default: [`SystemClock`]).
    pub clock: Arc<dyn Clock>,
    /// Enforce the service's per-stream quotas: 5 calls per second per stream and operation for
    /// the control plane, GetMedia and PutMedia (ClientLimitExceededException beyond), and one
    /// PutMedia connection per stream (a second one gets ConnectionLimitExceededException while
    /// the first lasts). Off by default: then the newest PutMedia connection wins.
    pub enforce_quotas: bool,
    /// Storage fault injection (tests); `None` by default.
    pub store_faults: Option<store::Faults>,
    /// The master key file of encryption at rest (see [`keys`]); `None`: `master-keys` in the
    /// data directory. Created with a fresh default key when it does not exist.
    pub master_key_file: Option<PathBuf>,
}

impl ServerConfig {
    /// Defaults with `data_dir`.
    pub fn new(data_dir: impl Into<PathBuf>) -> Self {
        ServerConfig {
            host: "127.0.0.1".into(),
            port: 4567,
            data_dir: data_dir.into(),
            region: "us-east-1".into(),
            account_id: "000000000000".into(),
            credentials_file: None,
            tls: TlsMode::None,
            limits: Limits::default(),
            clock: Arc::new(SystemClock),
            enforce_quotas: false,
            store_faults: None,
            master_key_file: None,
        }
    }
}

/// The default data directory: `$XDG_DATA_HOME/kvs`, else `~/.local/share/kvs`, else `./kvs-data`.
pub fn default_data_dir() -> PathBuf {
    if let Some(x) = std::env::var_os("XDG_DATA_HOME").filter(|v| !v.is_empty()) {
        return PathBuf::from(x).join("kvs");
    }
    if let Some(h) = std::env::var_os("HOME").filter(|v| !v.is_empty()) {
        return PathBuf::from(h).join(".local/share/kvs");
    }
    PathBuf::from("kvs-data")
}

/// Fills `buf` with random bytes from the OS, for values that are not secrets (request ids,
/// versions, the random part of fragment numbers). Secrets use the OS source or fail.
pub(crate) fn random_bytes(buf: &mut [u8]) {
    if getrandom::fill(buf).is_err() {
        // Extremely unlikely; these values need uniqueness, not secrecy.
        let seed = now_ms().wrapping_mul(6364136223846793005);
        for (i, b) in buf.iter_mut().enumerate() {
            *b = (seed >> ((i % 8) * 8)) as u8 ^ (i as u8);
        }
    }
}

/// Wall-clock time in epoch milliseconds.
pub(crate) fn now_ms() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_millis() as u64)
        .unwrap_or(0)
}

/// A running server.
pub struct Server {
    addr: SocketAddr,
    base_url: String,
    credentials: DevCredentials,
    ca_cert: Option<PathBuf>,
    access_line: Option<String>,
    data_dir: PathBuf,
    region: String,
    shutdown: watch::Sender<bool>,
    task: JoinHandle<()>,
    ingest_budget: budget::Budget,
}

/// A snapshot of the server's memory accounting ([`Server::stats`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub struct ServerStats {
    /// Bytes PutMedia connections hold now against [`Limits::max_ingest_bytes`].
    pub ingest_bytes: u64,
    /// The most bytes they ever held at once (never above `ingest_budget_bytes`).
    pub ingest_peak_bytes: u64,
    /// The budget: [`Limits::max_ingest_bytes`].
    pub ingest_budget_bytes: u64,
    /// PutMedia connections not reading their body now because the budget is exhausted.
    pub ingest_waiting: u64,
}

impl Server {
    /// Recovers the data directory, binds the socket and starts serving in the current tokio
    /// runtime.
    pub async fn bind(config: ServerConfig) -> Result<Server, ServerError> {
        config.limits.validate()?;
        let data_dir = config.data_dir.clone();
        let dd = data_dir.clone();
        let cfg = config.clone();
        let prepared = tokio::task::spawn_blocking(move || http_service::Ctx::prepare(&dd, &cfg))
            .await
            .map_err(|e| ServerError::DataDir {
                path: data_dir.clone(),
                source: std::io::Error::other(e.to_string()),
            })??;
        let tls = tls::acceptor(&config.tls, &data_dir, &config.host)?;
        let addr_text = format!("{}:{}", config.host, config.port);
        let listener = TcpListener::bind(&addr_text)
            .await
            .map_err(|source| ServerError::Bind {
                addr: addr_text.clone(),
                source,
            })?;
        let addr = listener.local_addr().map_err(|source| ServerError::Bind {
            addr: addr_text,
            source,
        })?;
        let scheme = if tls.is_some() { "https" } else { "http" };
        let host = if addr.ip().is_unspecified() {
            "127.0.0.1".to_owned()
        } else {
            match addr {
                SocketAddr::V6(a) => format!("[{}]", a.ip()),
                SocketAddr::V4(a) => a.ip().to_string(),
            }
        };
        let base_url = format!("{scheme}://{host}:{}", addr.port());
        let credentials = prepared.dev_credentials.clone();
        let access_line = config.credentials_file.as_ref().map(|f| {
            format!(
                "credentials: {} ({} key pairs, {} restricted by policy)\n",
                f.display(),
                prepared.access.len(),
                prepared.access.restricted()
            )
        });
        let ca_cert = tls.as_ref().and_then(|t| t.1.clone());
        let ctx = Arc::new(prepared.into_ctx(config.clone(), scheme));
        let ingest_budget = ctx.ingest_budget.clone();
        let (shutdown, rx) = watch::channel(false);
        let task = tokio::spawn(http_service::serve(ctx, listener, tls.map(|t| t.0), rx));
        Ok(Server {
            addr,
            base_url,
            credentials,
            ca_cert,
            access_line,
            data_dir: config.data_dir,
            region: config.region,
            shutdown,
            task,
            ingest_budget,
        })
    }

    /// The bound address.
    pub fn local_addr(&self) -> SocketAddr {
        self.addr
    }

    /// `http://host:port` (or `https://`): what clients use as endpoint URL.
    pub fn base_url(&self) -> &str {
        &self.base_url
    }

    /// A key pair the server accepts.
    pub fn credentials(&self) -> &DevCredentials {
        &self.credentials
    }

    /// The memory accounting of PutMedia ingest, now.
    pub fn stats(&self) -> ServerStats {
        ServerStats {
            ingest_bytes: self.ingest_budget.used(),
            ingest_peak_bytes: self.ingest_budget.peak(),
            ingest_budget_bytes: self.ingest_budget.max(),
            ingest_waiting: self.ingest_budget.waiting(),
        }
    }

    /// The region.
    pub fn region(&self) -> &str {
        &self.region
    }

    /// The data directory.
    pub fn data_dir(&self) -> &Path {
        &self.data_dir
    }

    /// Under `--tls-self-signed`: the certificate file clients should trust.
    pub fn ca_cert(&self) -> Option<&Path> {
        self.ca_cert.as_deref()
    }

    /// One line a shell can evaluate to point AWS clients at this server (`AWS_DEFAULT_REGION` is
    /// repeated for older botocore releases that read only that name).
    pub fn export_line(&self) -> String {
        let mut line = format!(
            "export AWS_ENDPOINT_URL={} AWS_ACCESS_KEY_ID={} AWS_SECRET_ACCESS_KEY={} AWS_REGION={} AWS_DEFAULT_REGION={}",
            self.base_url,
            self.credentials.access_key_id,
            self.credentials.secret_access_key,
            self.region,
            self.region
        );
        if let Some(ca) = &self.ca_cert {
            line.push_str(&format!(" AWS_CA_BUNDLE={}", ca.display()));
        }
        line
    }

    /// The start-up banner (several lines, the export line among them).
    pub fn banner(&self) -> String {
        let mut text = format!(
            "kvs server listening on {}\ndata directory: {}\nregion: {}\n",
            self.base_url,
            self.data_dir.display(),
            self.region
        );
        if let Some(ca) = &self.ca_cert {
            text.push_str(&format!("self-signed certificate: {}\n", ca.display()));
        }
        if let Some(line) = &self.access_line {
            text.push_str(line);
        }
        text.push_str(&self.export_line());
        text.push('\n');
        text
    }

    /// Stops accepting connections and waits for the accept loop to end (open connections are
    /// dropped).
    pub async fn shutdown(self) {
        let _ = self.shutdown.send(true);
        let _ = self.task.await;
    }

    /// Waits until the server stops (it runs until [`Server::shutdown`] or an error).
    pub async fn wait(&mut self) {
        let _ = (&mut self.task).await;
    }
}
