//! The HTTP front: accept loop (plain or TLS), SigV4 verification, routing, response bodies,
//! metadata persistence and the retention sweep.

use std::collections::HashMap;
use std::convert::Infallible;
use std::path::Path;
use std::pin::Pin;
use std::sync::atomic::AtomicU64;
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll};
use std::time::{Duration, SystemTime};

use bytes::Bytes;
use http_body::{Body as HttpBody, Frame};
use http_body_util::{BodyExt, Full, Limited};
use hyper::body::Incoming;
use hyper::service::service_fn;
use hyper_util::rt::TokioIo;
use kvs_core::api::{ApiError, ApiErrorKind, ApiRequest, ApiResponse, MAX_REQUEST_BODY};
use kvs_core::mkv::getmedia::ProducerHeader;
use kvs_core::sigv4::{
    AuthError, Payload, RequestView, SigningKeyCache, StaticCredentials, Verifier,
};
use tokio::net::TcpListener;
use tokio::sync::{mpsc, watch};

use crate::creds::DevCredentials;
use crate::state::{Registry, Stream, StreamMeta, lock};
use crate::store::{self, Writer, WriterConfig};
use crate::{ServerConfig, ServerError};

/// Response body: a whole buffer or a channel of chunks.
pub(crate) type Body = http_body_util::combinators::UnsyncBoxBody<Bytes, Infallible>;

/// A body fed by a channel; ends when every sender is dropped.
pub(crate) struct ChannelBody(pub mpsc::Receiver<Bytes>);

impl HttpBody for ChannelBody {
    type Data = Bytes;
    type Error = Infallible;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, Infallible>>> {
        match self.0.poll_recv(cx) {
            Poll::Ready(Some(b)) => Poll::Ready(Some(Ok(Frame::data(b)))),
            Poll::Ready(None) => Poll::Ready(None),
            Poll::Pending => Poll::Pending,
        }
    }
}

/// A body fed by an unbounded channel (PutMedia ACKs) whose producer bounds it: `queued` counts
/// the lines not yet taken, and `drained` wakes the producer when lines are taken.
pub(crate) struct AckBody {
    pub(crate) rx: mpsc::UnboundedReceiver<Bytes>,
    pub(crate) queued: Arc<std::sync::atomic::AtomicUsize>,
    pub(crate) drained: Arc<tokio::sync::Notify>,
}

impl HttpBody for AckBody {
    type Data = Bytes;
    type Error = Infallible;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, Infallible>>> {
        match self.rx.poll_recv(cx) {
            Poll::Ready(Some(b)) => {
                self.queued
                    .fetch_sub(1, std::sync::atomic::Ordering::SeqCst);
                self.drained.notify_one();
                Poll::Ready(Some(Ok(Frame::data(b))))
            }
            Poll::Ready(None) => Poll::Ready(None),
            Poll::Pending => Poll::Pending,
        }
    }
}

/// A buffered response as a [`Body`] response.
pub(crate) fn full(response: http::Response<Bytes>) -> http::Response<Body> {
    response.map(|b| Full::new(b).boxed_unsync())
}

/// An API error as a response.
pub(crate) fn error_response(e: &ApiError, rid: &str) -> http::Response<Body> {
    full(e.to_http(rid))
}

/// What recovery produced before the context exists.
pub(crate) struct Prepared {
    registry: Registry,
    pub(crate) dev_credentials: DevCredentials,
    keys: StaticCredentials,
    pub(crate) access: crate::policy::AccessControl,
    writer: Writer,
    vault: Arc<crate::keys::Vault>,
}

impl Prepared {
    pub(crate) fn into_ctx(self, config: ServerConfig, scheme: &'static str) -> Ctx {
        Ctx {
            verifier: Verifier::new(config.region.clone()),
            registry: self.registry,
            keys: self.keys,
            access: self.access,
            key_cache: Mutex::new(SigningKeyCache::new(64)),
            writer: self.writer,
            vault: self.vault,
            hls_key: crate::hls::SessionKey::generate(),
            scheme,
            meta_lock: tokio::sync::Mutex::new(()),
            conn_ids: AtomicU64::new(1),
            quotas: Mutex::new(HashMap::new()),
            unknown_stream_quotas: Mutex::new(HashMap::new()),
            ingest_budget: crate::budget::Budget::new(
                config.limits.max_ingest_bytes,
                crate::ingest::reserve_bytes(&config.limits),
            ),
            config,
        }
    }
}

/// Shared server state.
pub(crate) struct Ctx {
    pub(crate) config: ServerConfig,
    pub(crate) registry: Registry,
    keys: StaticCredentials,
    /// What each key pair may do.
    pub(crate) access: crate::policy::AccessControl,
    key_cache: Mutex<SigningKeyCache>,
    verifier: Verifier,
    pub(crate) writer: Writer,
    /// Master keys of encryption at rest.
    pub(crate) vault: Arc<crate::keys::Vault>,
    /// The secret that signs HLS and DASH session tokens (see [`crate::hls`]).
    pub(crate) hls_key: crate::hls::SessionKey,
    pub(crate) scheme: &'static str,
    meta_lock: tokio::sync::Mutex<()>,
    pub(crate) conn_ids: AtomicU64,
    /// Token buckets of the per-stream control-plane TPS quotas: (operation, stream) ->
    /// (tokens, last refill).
    quotas: Mutex<HashMap<QuotaKey, (f64, std::time::Instant)>>,
    /// The same for calls naming streams that do not exist (they get ResourceNotFound, after
    /// their quota, as at the service's front door).
    unknown_stream_quotas: Mutex<HashMap<QuotaKey, (f64, std::time::Instant)>>,
    /// Bytes PutMedia connections may hold in memory, all together.
    pub(crate) ingest_budget: crate::budget::Budget,
}

/// (operation, stream name or ARN).
type QuotaKey = (&'static str, String);

/// Per-stream TPS of the control-plane operations (the service's quota table).
const STREAM_TPS: f64 = 5.0;

/// Most token buckets kept; beyond it idle ones are forgotten, and if every one is busy (a flood
/// of names) all are, so memory stays bounded whatever names clients send.
const MAX_QUOTA_BUCKETS: usize = 100_000;

/// The stream a quota-metered call is about: the name, or the name inside an ARN, so that
/// alternating a stream's name and ARN does not double its budget.
fn quota_stream(name: Option<&str>, arn: Option<&str>) -> Option<String> {
    if let Some(n) = name {
        return Some(n.to_owned());
    }
    let arn = arn?;
    Some(match arn.parse::<kvs_core::api::ResourceArn>() {
        Ok(parsed) => parsed.name,
        Err(_) => arn.to_owned(),
    })
}

/// The stream a quota-metered call is about: (operation, stream key). Control-plane calls and
/// GetMedia (5 TPS per stream each); PutMedia is metered by [`Ctx::admit_put_media`].
fn quota_key(api: &ApiRequest) -> Option<QuotaKey> {
    let key =
        |name: &Option<String>, arn: &Option<String>| quota_stream(name.as_deref(), arn.as_deref());
    let op = api.operation().name();
    let stream = match api {
        ApiRequest::DescribeStream(r) => key(&r.stream_name, &r.stream_arn),
        ApiRequest::GetDataEndpoint(r) => key(&r.stream_name, &r.stream_arn),
        ApiRequest::UpdateStream(r) => key(&r.stream_name, &r.stream_arn),
        ApiRequest::DeleteStream(r) => quota_stream(None, Some(&r.stream_arn)),
        ApiRequest::UpdateDataRetention(r) => key(&r.stream_name, &r.stream_arn),
        ApiRequest::TagStream(r) => key(&r.stream_name, &r.stream_arn),
        ApiRequest::UntagStream(r) => key(&r.stream_name, &r.stream_arn),
        ApiRequest::ListTagsForStream(r) => key(&r.stream_name, &r.stream_arn),
        ApiRequest::TagResource(r) => quota_stream(None, Some(&r.resource_arn)),
        ApiRequest::UntagResource(r) => quota_stream(None, Some(&r.resource_arn)),
        ApiRequest::ListTagsForResource(r) => quota_stream(None, Some(&r.resource_arn)),
        ApiRequest::DescribeStreamStorageConfiguration(r) => key(&r.stream_name, &r.stream_arn),
        ApiRequest::UpdateStreamStorageConfiguration(r) => key(&r.stream_name, &r.stream_arn),
        ApiRequest::GetMedia(r) => key(&r.stream_name, &r.stream_arn),
        _ => None,
    }?;
    Some((op, stream))
}

fn io_err(path: &Path) -> impl Fn(std::io::Error) -> ServerError + '_ {
    move |source| ServerError::DataDir {
        path: path.to_owned(),
        source,
    }
}

impl Ctx {
    /// Prepares the data directory: credentials, stream metadata, recovery of every stream.
    pub(crate) fn prepare(data_dir: &Path, config: &ServerConfig) -> Result<Prepared, ServerError> {
        use std::os::unix::fs::DirBuilderExt;
        crate::keys::check_format(data_dir)?;
        let vault = Arc::new(crate::keys::Vault::open(
            data_dir,
            config.master_key_file.as_deref(),
        )?);
        std::fs::DirBuilder::new()
            .recursive(true)
            .mode(0o700)
            .create(data_dir.join("streams"))
            .map_err(io_err(data_dir))?;
        // Owner-only even when it existed before (DirBuilder's mode applies only to what it
        // creates): the clear index metadata below it is nobody else's business. The data
        // directory itself may be the user's own choice of a shared folder: left as it is.
        {
            use std::os::unix::fs::PermissionsExt;
            let streams = data_dir.join("streams");
            std::fs::set_permissions(&streams, std::fs::Permissions::from_mode(0o700))
                .map_err(io_err(&streams))?;
        }
        let loaded = match &config.credentials_file {
            Some(path) => crate::creds::load_credentials_file(path)?,
            None => crate::creds::dev_credentials(data_dir)?,
        };
        let (keys, access, dev_credentials) = (loaded.keys, loaded.access, loaded.first);
        let registry = Registry::default();
        let metas: Vec<StreamMeta> = match vault.read_catalog(data_dir)? {
            Some(text) => serde_json::from_slice(&text).map_err(|e| ServerError::DataDir {
                path: data_dir.join(crate::keys::CATALOG_FILE),
                source: std::io::Error::other(e.to_string()),
            })?,
            None => Vec::new(),
        };
        let mut keep_dirs = Vec::new();
        for mut meta in metas {
            if meta.status == kvs_core::api::StreamStatus::Deleting {
                continue;
            }
            meta.status = kvs_core::api::StreamStatus::Active;
            let stream = Stream::new(meta, data_dir);
            if stream.dir.exists() {
                let hours = u64::try_from(stream.retention_hours()).unwrap_or(0);
                let cutoff = if hours > 0 {
                    config
                        .clock
                        .now_ms()
                        .saturating_sub(hours.saturating_mul(3_600_000))
                } else {
                    0
                };
                let key = crate::keys::load_stream_key(&vault, &stream)?;
                let rec = store::recover(&stream.dir, cutoff).map_err(io_err(&stream.dir))?;
                let mut data = lock(&stream.data);
                for (id, sealed) in rec.headers {
                    data.next_header_id = data.next_header_id.max(id + 1);
                    // A header that does not open stays missing: its fragments fail when read.
                    let Some(bytes) = key.as_ref().and_then(|k| k.open_header(id, sealed).ok())
                    else {
                        continue;
                    };
                    if let Ok(h) = ProducerHeader::parse(bytes.into()) {
                        data.headers.insert(id, Arc::new(h));
                        data.durable_headers.insert(id);
                    }
                }
                let last = rec.index.last().map(|f| f.sequence).max(rec.last_seq);
                data.next_seq = last.map_or(0, |s| s + 1);
                data.last_server_ms = rec
                    .last_server_ms
                    .max(rec.index.last().map_or(0, |f| f.server_timestamp_ms));
                data.index = rec.index;
                // Header ids fragments refer to are never reused either (a damaged header
                // record leaves its id only there).
                if let Some(max) = rec.header_runs.values().max() {
                    data.next_header_id = data.next_header_id.max(max.saturating_add(1));
                }
                data.header_runs = rec.header_runs;
                data.segments = rec.segments;
                if let Some(first) = data.index.first().map(|f| f.sequence) {
                    data.forget_headers_before(first);
                }
                let newest = data.index.last().map(|f| f.sequence);
                drop(data);
                if let Some(seq) = newest {
                    stream.notify(seq);
                }
            }
            keep_dirs.push(stream.dir.clone());
            let name = lock(&stream.meta).name.clone();
            lock(&registry.streams).insert(name, Arc::new(stream));
        }
        // Data of streams that were deleted (or never recorded) goes.
        if let Ok(entries) = std::fs::read_dir(data_dir.join("streams")) {
            for entry in entries.flatten() {
                let p = entry.path();
                if !keep_dirs.contains(&p) {
                    let _ = std::fs::remove_dir_all(&p);
                }
            }
        }
        let writer = Writer::start(WriterConfig {
            segment_bytes: config.limits.segment_bytes,
            faults: config.store_faults.clone(),
            max_open_streams: config.limits.max_open_streams,
            index_compact_floor: config.limits.index_compact_floor,
        })
        .map_err(io_err(data_dir))?;
        let prepared = Prepared {
            registry,
            dev_credentials,
            keys,
            access,
            writer,
            vault,
        };
        write_meta(data_dir, &prepared.vault, &prepared.registry.snapshot())
            .map_err(io_err(data_dir))?;
        Ok(prepared)
    }

    /// Persists every stream's metadata (temp file, fsync, rename, fsync of the directory).
    pub(crate) async fn save_meta(self: &Arc<Self>) -> Result<(), ApiError> {
        let _guard = self.meta_lock.lock().await;
        let snapshot = self.registry.snapshot();
        let dir = self.config.data_dir.clone();
        let vault = self.vault.clone();
        tokio::task::spawn_blocking(move || write_meta(&dir, &vault, &snapshot))
            .await
            .map_err(|e| internal(e.to_string()))?
            .map_err(|e| internal(format!("cannot persist stream metadata: {e}")))
    }

    /// Verifies SigV4; the access key id that signed.
    fn verify(
        &self,
        parts: &http::request::Parts,
        payload: Payload<'_>,
    ) -> Result<String, AuthError> {
        let view = RequestView::from_http(&parts.method, &parts.uri, &parts.headers);
        let mut cache = lock(&self.key_cache);
        self.verifier
            .verify(&view, payload, &self.keys, &mut cache, SystemTime::now())
            .map(|v| v.access_key_id)
    }

    /// Takes a token from the call's bucket; ClientLimitExceeded when it is empty.
    fn check_quota(&self, api: &ApiRequest) -> Result<(), ApiError> {
        if !self.config.enforce_quotas {
            return Ok(());
        }
        let Some(key) = quota_key(api) else {
            return Ok(());
        };
        self.take_token(key)
    }

    /// Takes a token from the (operation, stream) bucket of [`STREAM_TPS`] calls per second.
    fn take_token(&self, key: QuotaKey) -> Result<(), ApiError> {
        let now = std::time::Instant::now();
        // Streams that exist and made-up names are metered in separate tables: a flood of
        // made-up names can then only ever reset made-up names' buckets, never a real stream's.
        let known = self.registry.get(&key.1).is_some();
        let mut quotas = lock(if known {
            &self.quotas
        } else {
            &self.unknown_stream_quotas
        });
        if quotas.len() >= MAX_QUOTA_BUCKETS && !quotas.contains_key(&key) {
            // Bounded: forget buckets idle long enough to be full again.
            quotas.retain(|_, (_, t)| now.duration_since(*t) < Duration::from_secs(1));
            if quotas.len() >= MAX_QUOTA_BUCKETS {
                if known {
                    // The stalest bucket only: clearing all would refill every stream's budget.
                    let stalest = quotas
                        .iter()
                        .min_by_key(|(_, (_, t))| *t)
                        .map(|(k, _)| k.clone());
                    if let Some(stalest) = stalest {
                        quotas.remove(&stalest);
                    }
                } else {
                    quotas.clear();
                }
            }
        }
        let (tokens, last) = quotas.entry(key.clone()).or_insert((STREAM_TPS, now));
        *tokens = (*tokens + now.duration_since(*last).as_secs_f64() * STREAM_TPS).min(STREAM_TPS);
        *last = now;
        if *tokens < 1.0 {
            return Err(ApiError::new(
                ApiErrorKind::ClientLimitExceeded,
                format!(
                    "{} exceeded its limit of {STREAM_TPS} calls per second for stream {}; retry later.",
                    key.0, key.1
                ),
            ));
        }
        *tokens -= 1.0;
        Ok(())
    }

    /// Makes PutMedia connection `conn_id` the stream's producer. Without `--enforce-quotas` the
    /// newest connection wins (a rotating producer overlaps its connections). With it, the
    /// service's quotas hold: 5 PutMedia calls per second per stream (ClientLimitExceeded) and
    /// one connection per stream, a second one being refused while the first lasts
    /// (ConnectionLimitExceeded, as the current developer guide says).
    pub(crate) fn admit_put_media(&self, stream: &Stream, conn_id: u64) -> Result<(), ApiError> {
        use std::sync::atomic::Ordering;
        if !self.config.enforce_quotas {
            stream.producer.store(conn_id, Ordering::SeqCst);
            return Ok(());
        }
        let name = lock(&stream.meta).name.clone();
        self.take_token(("PutMedia", name.clone()))?;
        stream
            .producer
            .compare_exchange(0, conn_id, Ordering::SeqCst, Ordering::SeqCst)
            .map(|_| ())
            .map_err(|_| {
                ApiError::new(
                    ApiErrorKind::ConnectionLimitExceeded,
                    format!(
                        "Stream {name} already has a PutMedia connection; at most 1 is allowed. Close it first."
                    ),
                )
            })
    }

    /// The configured clock's time, epoch ms.
    pub(crate) fn now_ms(&self) -> u64 {
        self.config.clock.now_ms()
    }

    /// The base URL clients reached us at.
    pub(crate) fn base_url(&self, parts: &http::request::Parts) -> String {
        let host = parts
            .headers
            .get(http::header::HOST)
            .and_then(|v| v.to_str().ok())
            .map(str::to_owned)
            .unwrap_or_else(|| format!("{}:{}", self.config.host, self.config.port));
        format!("{}://{}", self.scheme, host)
    }
}

/// Persists the stream metadata sealed (the catalog; see [`crate::keys`]).
fn write_meta(dir: &Path, vault: &crate::keys::Vault, metas: &[StreamMeta]) -> std::io::Result<()> {
    let text = serde_json::to_vec(metas).map_err(std::io::Error::other)?;
    vault.write_catalog(dir, &text)
}

/// `InternalFailure` with a message.
pub(crate) fn internal(message: impl Into<String>) -> ApiError {
    ApiError::new(ApiErrorKind::InternalFailure, message)
}

/// A new request id.
pub(crate) fn request_id() -> String {
    let mut raw = [0u8; 16];
    crate::random_bytes(&mut raw);
    let h = hex::encode(raw);
    format!(
        "{}-{}-{}-{}-{}",
        &h[0..8],
        &h[8..12],
        &h[12..16],
        &h[16..20],
        &h[20..32]
    )
}

/// Reads a JSON API call's body: at most `MAX_REQUEST_BODY` bytes (InvalidArgumentException
/// beyond, as for a body that is too large once read), within `body_read_timeout` (408
/// `RequestTimeoutException` after it, like the service's front door for a stalled upload).
async fn read_json_body(ctx: &Ctx, body: Incoming) -> Result<Bytes, ApiError> {
    let limit = ctx.config.limits.body_read_timeout;
    // A declared length beyond the limit is refused before anything is read.
    if body.size_hint().lower() > MAX_REQUEST_BODY as u64 {
        return Err(ApiError::invalid_argument(format!(
            "The request body exceeds the limit of {MAX_REQUEST_BODY} bytes."
        )));
    }
    let collected = tokio::time::timeout(limit, Limited::new(body, MAX_REQUEST_BODY).collect());
    match collected.await {
        Ok(Ok(c)) => Ok(c.to_bytes()),
        Ok(Err(e)) if e.is::<http_body_util::LengthLimitError>() => {
            Err(ApiError::invalid_argument(format!(
                "The request body exceeds the limit of {MAX_REQUEST_BODY} bytes."
            )))
        }
        Ok(Err(e)) => Err(ApiError::serialization(format!(
            "The request body could not be read: {e}"
        ))),
        Err(_) => {
            let mut e = ApiError::new(
                ApiErrorKind::Other("RequestTimeoutException".into()),
                format!(
                    "The request body did not arrive within {} ms; send it at once.",
                    limit.as_millis()
                ),
            );
            e.http_status = 408;
            Err(e)
        }
    }
}

/// `response` with `connection: close`: the request body was not read to its end, so the
/// connection cannot carry another request.
fn closing(mut response: http::Response<Body>) -> http::Response<Body> {
    response.headers_mut().insert(
        http::header::CONNECTION,
        http::HeaderValue::from_static("close"),
    );
    response
}

/// A SigV4 failure as the service's error response (kvs-core maps it to its API error).
fn auth_error_response(e: &AuthError, rid: &str) -> http::Response<Body> {
    error_response(&ApiError::from(e), rid)
}

async fn handle(ctx: Arc<Ctx>, req: http::Request<Incoming>) -> http::Response<Body> {
    let rid = request_id();
    let (parts, body) = req.into_parts();
    if parts.uri.path() == kvs_core::api::put_media::PUT_MEDIA_PATH
        && parts.method == http::Method::POST
    {
        let key = match ctx.verify(&parts, Payload::Streaming) {
            Ok(key) => key,
            Err(e) => return auth_error_response(&e, &rid),
        };
        if let Err(e) = crate::policy::authorize_put_media(&ctx, &key, &parts.headers) {
            return error_response(&e, &rid);
        }
        return crate::ingest::put_media(ctx, parts, body, rid).await;
    }
    // HLS and DASH playback GETs carry no SigV4 signature: the SessionToken in their query is verified
    // instead (crate::hls, crate::dash).
    if parts.method == http::Method::GET
        && parts.uri.path().starts_with(crate::hls::PLAYBACK_PREFIX)
    {
        return crate::hls::serve(ctx, &parts, &rid).await;
    }
    if parts.method == http::Method::GET
        && parts.uri.path().starts_with(crate::dash::PLAYBACK_PREFIX)
    {
        return crate::dash::serve(ctx, &parts, &rid).await;
    }
    let bytes = match read_json_body(&ctx, body).await {
        Ok(b) => b,
        Err(e) => return closing(error_response(&e, &rid)),
    };
    let key = match ctx.verify(&parts, Payload::Bytes(&bytes)) {
        Ok(key) => key,
        Err(e) => return auth_error_response(&e, &rid),
    };
    let base = ctx.base_url(&parts);
    let request = http::Request::from_parts(parts, bytes);
    let api = match ApiRequest::from_http(&request) {
        Ok(a) => a,
        Err(e) => return error_response(&e, &rid),
    };
    if let Err(e) = crate::policy::authorize(&ctx, &key, &api) {
        return error_response(&e, &rid);
    }
    if let Err(e) = ctx.check_quota(&api) {
        return error_response(&e, &rid);
    }
    let result = dispatch(&ctx, api, &base, &rid).await;
    match result {
        Ok(r) => r,
        Err(e) => error_response(&e, &rid),
    }
}

async fn dispatch(
    ctx: &Arc<Ctx>,
    api: ApiRequest,
    base: &str,
    rid: &str,
) -> Result<http::Response<Body>, ApiError> {
    use crate::control as c;
    Ok(match api {
        ApiRequest::CreateStream(r) => reply(c::create_stream(ctx, r).await?, rid),
        ApiRequest::DescribeStream(r) => reply(c::describe_stream(ctx, r)?, rid),
        ApiRequest::ListStreams(r) => reply(c::list_streams(ctx, r)?, rid),
        ApiRequest::DeleteStream(r) => reply(c::delete_stream(ctx, r).await?, rid),
        ApiRequest::UpdateStream(r) => reply(c::update_stream(ctx, r).await?, rid),
        ApiRequest::UpdateDataRetention(r) => reply(c::update_data_retention(ctx, r).await?, rid),
        ApiRequest::GetDataEndpoint(r) => reply(c::get_data_endpoint(ctx, r, base)?, rid),
        ApiRequest::TagStream(r) => reply(c::tag_stream(ctx, r).await?, rid),
        ApiRequest::UntagStream(r) => reply(c::untag_stream(ctx, r).await?, rid),
        ApiRequest::ListTagsForStream(r) => reply(c::list_tags_for_stream(ctx, r)?, rid),
        ApiRequest::TagResource(r) => reply(c::tag_resource(ctx, r).await?, rid),
        ApiRequest::UntagResource(r) => reply(c::untag_resource(ctx, r).await?, rid),
        ApiRequest::ListTagsForResource(r) => reply(c::list_tags_for_resource(ctx, r)?, rid),
        ApiRequest::DescribeStreamStorageConfiguration(r) => {
            reply(c::describe_storage(ctx, r)?, rid)
        }
        ApiRequest::UpdateStreamStorageConfiguration(r) => {
            reply(c::update_storage(ctx, r).await?, rid)
        }
        ApiRequest::GetMedia(r) => crate::media::get_media(ctx, r, rid)?,
        ApiRequest::ListFragments(r) => reply(crate::media::list_fragments(ctx, r)?, rid),
        ApiRequest::GetMediaForFragmentList(r) => {
            crate::media::get_media_for_fragment_list(ctx, r, rid)?
        }
        ApiRequest::GetClip(r) => crate::clip::get_clip(ctx, r, rid).await?,
        ApiRequest::GetHLSStreamingSessionURL(r) => reply(
            crate::hls::get_hls_streaming_session_url(ctx, r, base)?,
            rid,
        ),
        ApiRequest::GetDASHStreamingSessionURL(r) => reply(
            crate::dash::get_dash_streaming_session_url(ctx, r, base)?,
            rid,
        ),
        other => {
            return Err(ApiError::new(
                ApiErrorKind::UnknownOperation,
                format!(
                    "{} is not supported by this kvs server.",
                    other.operation().name()
                ),
            ));
        }
    })
}

/// A JSON operation's response, with the request id.
fn reply(out: impl ApiResponse, rid: &str) -> http::Response<Body> {
    full(out.to_http(rid))
}

/// Accepts connections until `shutdown` turns true.
pub(crate) async fn serve(
    ctx: Arc<Ctx>,
    listener: TcpListener,
    tls: Option<tokio_rustls::TlsAcceptor>,
    mut shutdown: watch::Receiver<bool>,
) {
    let sweeper = tokio::spawn(retention_loop(ctx.clone()));
    let limits = ctx.config.limits.clone();
    let gate = crate::conn::Gate::new(limits.max_connections);
    let mut builder = hyper::server::conn::http1::Builder::new();
    builder
        .max_headers(limits.max_headers)
        .max_header_size(limits.max_header_bytes)
        // Body chunks are at most this big, so the ingest budget's read window covers the next
        // one before it is read (see crate::budget).
        .max_buf_size(
            usize::try_from(crate::ingest::READ_WINDOW / 2)
                .unwrap_or(usize::MAX)
                .max(limits.max_header_bytes)
                .max(8192),
        )
        // Header-read and keep-alive timeouts are kept by crate::conn (hyper's one timer cannot
        // tell an idle keep-alive connection from a slow request head).
        .header_read_timeout(None);
    loop {
        let accepted = tokio::select! {
            a = listener.accept() => a,
            _ = shutdown.changed() => break,
        };
        let Ok((tcp, _)) = accepted else {
            tokio::time::sleep(Duration::from_millis(10)).await;
            continue;
        };
        let Ok(permit) = gate.connections.clone().try_acquire_owned() else {
            gate.reject(tcp, tls.is_some());
            continue;
        };
        let _ = tcp.set_nodelay(true);
        let ctx = ctx.clone();
        let tls = tls.clone();
        let mut stop = shutdown.clone();
        let builder = builder.clone();
        let limits = limits.clone();
        tokio::spawn(async move {
            let _permit = permit;
            let watch = crate::conn::Watch::new();
            let w = watch.clone();
            let svc = service_fn(move |req| {
                let ctx = ctx.clone();
                let guard = w.begin();
                async move {
                    let response = handle(ctx, req).await;
                    Ok::<_, Infallible>(crate::conn::track(response, guard))
                }
            });
            let expired = crate::conn::idle_expired(
                &watch,
                limits.keep_alive_timeout,
                limits.header_read_timeout,
                limits.write_stall_timeout,
            );
            match tls {
                Some(acceptor) => {
                    let handshake =
                        tokio::time::timeout(limits.tls_handshake_timeout, acceptor.accept(tcp));
                    let Ok(Ok(stream)) = handshake.await else {
                        return;
                    };
                    let io = crate::conn::WatchedIo::new(stream, watch.clone());
                    let conn = builder.serve_connection(TokioIo::new(io), svc);
                    tokio::select! {
                        _ = conn => {}
                        _ = stop.changed() => {}
                        _ = expired => {}
                    }
                }
                None => {
                    let io = crate::conn::WatchedIo::new(tcp, watch.clone());
                    let conn = builder.serve_connection(TokioIo::new(io), svc);
                    tokio::select! {
                        _ = conn => {}
                        _ = stop.changed() => {}
                        _ = expired => {}
                    }
                }
            }
        });
    }
    sweeper.abort();
}

/// Enforces retention: drops expired fragments from the index and deletes whole expired
/// segment files; bounds the in-memory buffer of retention-0 streams.
async fn retention_loop(ctx: Arc<Ctx>) {
    loop {
        sweep(&ctx);
        tokio::time::sleep(ctx.config.limits.retention_interval).await;
    }
}

/// One retention pass.
pub(crate) fn sweep(ctx: &Ctx) {
    let streams: Vec<Arc<Stream>> = lock(&ctx.registry.streams).values().cloned().collect();
    let now = ctx.now_ms();
    for s in streams {
        let hours = s.retention_hours();
        let mut data = lock(&s.data);
        if hours == 0 {
            trim_buffer(&ctx.config.limits, &mut data, now);
            continue;
        }
        let cutoff = now.saturating_sub(u64::try_from(hours).unwrap_or(0) * 3_600_000);
        let trimmed = data
            .index
            .first()
            .is_some_and(|f| f.server_timestamp_ms < cutoff);
        if trimmed {
            data.index.trim_before(cutoff);
        }
        // Everything below the first retained sequence is gone (pending ones are newer).
        let first = data
            .index
            .first()
            .map(|f| f.sequence)
            .or_else(|| data.pending.front().map(|p| p.fragment.sequence))
            .unwrap_or(data.next_seq);
        if trimmed {
            data.cache_drop_before(first);
            data.forget_headers_before(first);
        }
        // A segment goes when the next one starts at or before the first retained fragment;
        // the newest segment always stays (the writer may be appending to it). This is checked
        // on every pass, not only when the index was trimmed: a segment kept as the newest at
        // trim time goes once its successor exists.
        let ids: Vec<u64> = data.segments.iter().copied().collect();
        let expired: Vec<u64> = ids
            .windows(2)
            .filter(|w| w[1] <= first)
            .map(|w| w[0])
            .collect();
        for id in &expired {
            data.segments.remove(id);
        }
        drop(data);
        if trimmed {
            ctx.writer.trim(s.dir.clone(), cutoff);
        }
        if !expired.is_empty() {
            ctx.writer.delete_segments(s.dir.clone(), expired);
        }
    }
}

/// Bounds a retention-0 stream's in-memory buffer (duration and bytes).
pub(crate) fn trim_buffer(limits: &crate::Limits, data: &mut crate::state::StreamData, now: u64) {
    let mut cutoff = now.saturating_sub(limits.buffer_duration.as_millis() as u64);
    // Over the byte bound: also drop the oldest fragments until it holds.
    let mut excess = data.cached_bytes.saturating_sub(limits.buffer_bytes);
    if excess > 0 {
        let mut keep_from = None;
        for f in data.index.iter() {
            if excess == 0 {
                keep_from = Some(f.server_timestamp_ms);
                break;
            }
            excess = excess.saturating_sub(u64::from(f.size_bytes));
        }
        cutoff = cutoff.max(keep_from.unwrap_or(u64::MAX));
    }
    if data.index.trim_before(cutoff) > 0 {
        // Pending fragments come after every indexed one; a complete one queued behind an open
        // fragment (overlapping connections) lives only in the cache and keeps its bytes and
        // header even when the whole index was trimmed.
        let first = data
            .index
            .first()
            .map(|f| f.sequence)
            .or_else(|| data.pending.front().map(|p| p.fragment.sequence))
            .unwrap_or(data.next_seq);
        data.cache_drop_before(first);
        data.forget_headers_before(first);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::state::{PendingFragment, PendingState, StreamData};
    use kvs_core::index::Fragment;

    fn fragment(seq: u64, size: u32) -> Fragment {
        Fragment {
            sequence: seq,
            server_timestamp_ms: 1000 + seq,
            producer_timestamp_ms: 1000 + seq,
            location: crate::state::NOT_ON_DISK,
            size_bytes: size,
            duration_ms: 10,
            random: 0,
        }
    }

    /// Retention 0, two overlapping connections: fragment 2 is open on one, 3 completed on the
    /// other (queued behind 2, only in the cache). Trimming the byte bound drops indexed
    /// fragments 0 and 1 but never the bytes (or header) of 3.
    #[test]
    fn trimming_the_buffer_keeps_complete_fragments_queued_behind_an_open_one() {
        let limits = crate::Limits {
            buffer_bytes: 150,
            ..crate::Limits::default()
        };
        let mut d = StreamData::default();
        d.header_runs.insert(0, 1);
        d.header_runs.insert(3, 2);
        for id in [1, 2] {
            d.headers.insert(
                id,
                Arc::new(ProducerHeader::new(Bytes::new(), Bytes::new())),
            );
        }
        for seq in 0..2 {
            d.index.append(fragment(seq, 50)).unwrap();
            d.cache_push(seq, Bytes::from(vec![0u8; 50]));
        }
        d.pending.push_back(PendingFragment {
            fragment: fragment(2, 0),
            state: PendingState::Open,
        });
        d.pending.push_back(PendingFragment {
            fragment: fragment(3, 200),
            state: PendingState::Ready(None),
        });
        d.cache_push(3, Bytes::from(vec![3u8; 200]));
        d.next_seq = 4;
        assert!(!d.flush_pending());
        // 300 bytes cached, 150 over the bound, all of the excess beyond the indexed 100.
        trim_buffer(&limits, &mut d, 2000);
        assert!(d.index.is_empty());
        assert_eq!(d.cached(3).as_deref(), Some(&[3u8; 200][..]));
        assert_eq!(d.cached_bytes, 200);
        assert!(d.cached(0).is_none());
        // Fragment 2 completes: 2 and 3 enter the index, both readable.
        d.cache_push(2, Bytes::from(vec![2u8; 10]));
        if let Some(p) = d.pending.front_mut() {
            p.state = PendingState::Ready(None);
        }
        assert!(d.flush_pending());
        let seqs: Vec<u64> = d.index.iter().map(|f| f.sequence).collect();
        assert_eq!(seqs, vec![2, 3]);
        assert!(d.cached(2).is_some() && d.cached(3).is_some());
        assert!(d.header_for(2).is_some() && d.header_for(3).is_some());
    }
}
