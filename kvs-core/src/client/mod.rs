//! The thin HTTP transport (feature `client`): [`Client`] (async, tokio + reqwest with rustls and
//! the `ring` provider), [`blocking::Client`], the [`Producer`] and the media streams.
//!
//! Every protocol decision stays in the sans-IO core: requests are built by [`crate::api`],
//! signed by [`crate::sigv4`], the producer is [`crate::session::PutMediaSession`] and GetMedia
//! resumes with [`crate::session::consumer::GetMediaCursor`]. This module only moves bytes,
//! reads clocks, draws randomness and reads the environment.
//!
//! ```no_run
//! # async fn demo() -> Result<(), kvs_core::client::ClientError> {
//! use kvs_core::client::Client;
//! let client = Client::builder().region("us-east-1").build()?;
//! let info = client.describe_stream("my-stream").await?;
//! println!("{} is {}", info.stream_info.stream_name, info.stream_info.status);
//! # Ok(()) }
//! ```

pub mod blocking;
mod creds;
mod error;
mod media;
mod producer;

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime};

use bytes::Bytes;

pub use creds::{
    CredentialsProvider, IotConfig, REFRESH_MARGIN, ResolvedSettings, Source, refresh_margin,
    resolve_from_environment,
};
pub use error::{ClientError, is_retryable_api};
pub use media::{ByteStream, FragmentListStream, MediaStream};
pub use producer::{FinishReport, Producer, ProducerBuilder, ProducerEvent};

use crate::api::{
    ApiError, ApiErrorKind, ApiName, ApiOperation, ApiResponse, CreateStreamRequest,
    CreateStreamResponse, DeleteStreamRequest, DescribeStreamRequest, DescribeStreamResponse,
    EmptyResponse, Fragment, FragmentSelector, GetDataEndpointRequest, ListFragmentsRequest,
    ListStreamsRequest, ListStreamsResponse, ListTagsForStreamRequest, ListTagsResponse,
    MAX_RESPONSE_BODY, Operation, Service, StreamInfo, TagStreamRequest, UntagStreamRequest,
    UpdateDataRetentionOperation, UpdateDataRetentionRequest,
};
use crate::credentials::{Credentials, Explicit};
use crate::sigv4::{self, PayloadSigning, SigningCredentials, SigningParams};

/// Installs rustls' `ring` crypto provider as the process default (once; harmless if another
/// provider is installed already).
pub(crate) fn install_crypto_provider() {
    let _ = rustls::crypto::ring::default_provider().install_default();
}

/// Retry policy: exponential backoff with full jitter for retryable errors and 5xx.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RetryConfig {
    /// Attempts in all (1 = no retry).
    pub max_attempts: u32,
    /// First backoff ceiling.
    pub initial_backoff: Duration,
    /// Largest backoff ceiling.
    pub max_backoff: Duration,
}

impl Default for RetryConfig {
    fn default() -> Self {
        RetryConfig {
            max_attempts: 5,
            initial_backoff: Duration::from_millis(100),
            max_backoff: Duration::from_secs(5),
        }
    }
}

impl RetryConfig {
    /// The delay before retry number `attempt` (from 1): uniform in `[0, min(max, initial·2^n)]`.
    pub fn backoff(&self, attempt: u32) -> Duration {
        let ceiling = self
            .initial_backoff
            .saturating_mul(1u32 << attempt.min(16))
            .min(self.max_backoff);
        let ms = ceiling.as_millis() as u64;
        Duration::from_millis(if ms == 0 { 0 } else { random_u64() % (ms + 1) })
    }
}

/// 64 random bits from the OS (time-derived if the OS refuses).
pub(crate) fn random_u64() -> u64 {
    let mut b = [0u8; 8];
    if getrandom::fill(&mut b).is_err() {
        let t = SystemTime::now()
            .duration_since(SystemTime::UNIX_EPOCH)
            .map(|d| d.as_nanos() as u64)
            .unwrap_or(0);
        return t.wrapping_mul(0x9E37_79B9_7F4A_7C15);
    }
    u64::from_le_bytes(b)
}

/// Builds a [`Client`].
#[derive(Debug, Default, Clone)]
pub struct ClientBuilder {
    region: Option<String>,
    endpoint_url: Option<String>,
    profile: Option<String>,
    credentials: Option<Credentials>,
    iot: Option<IotConfig>,
    root_certs_pem: Vec<Vec<u8>>,
    retry: Option<RetryConfig>,
    timeout: Option<Duration>,
}

impl ClientBuilder {
    /// The region (else `AWS_REGION`, `AWS_DEFAULT_REGION`, the profile's `region`).
    pub fn region(mut self, region: impl Into<String>) -> Self {
        self.region = Some(region.into());
        self
    }

    /// The control-plane endpoint (else `AWS_ENDPOINT_URL_KINESIS_VIDEO`, `AWS_ENDPOINT_URL`,
    /// the profile's `endpoint_url`, or `https://kinesisvideo.<region>.amazonaws.com`).
    pub fn endpoint_url(mut self, url: impl Into<String>) -> Self {
        self.endpoint_url = Some(url.into());
        self
    }

    /// The shared-file profile (else `AWS_PROFILE`, `AWS_DEFAULT_PROFILE`, `default`).
    pub fn profile(mut self, profile: impl Into<String>) -> Self {
        self.profile = Some(profile.into());
        self
    }

    /// Explicit credentials (win over every other source).
    pub fn credentials(mut self, credentials: Credentials) -> Self {
        self.credentials = Some(credentials);
        self
    }

    /// Take credentials from the AWS IoT credentials provider.
    pub fn iot(mut self, iot: IotConfig) -> Self {
        self.iot = Some(iot);
        self
    }

    /// Trust this PEM certificate (for example a local server's self-signed one) besides the
    /// system roots.
    pub fn add_root_certificate_pem(mut self, pem: impl Into<Vec<u8>>) -> Self {
        self.root_certs_pem.push(pem.into());
        self
    }

    /// The retry policy.
    pub fn retry(mut self, retry: RetryConfig) -> Self {
        self.retry = Some(retry);
        self
    }

    /// Timeout of each non-streaming request (default 30 s).
    pub fn timeout(mut self, timeout: Duration) -> Self {
        self.timeout = Some(timeout);
        self
    }

    /// Resolves the settings (reading the environment and the shared files) and builds the
    /// client. Needs no runtime; the client's methods run on tokio.
    pub fn build(self) -> Result<Client, ClientError> {
        install_crypto_provider();
        let explicit = Explicit {
            credentials: self.credentials.clone(),
            region: self.region.clone(),
            endpoint_url: self.endpoint_url.clone(),
        };
        let (provider, region, endpoint_url) = match &self.iot {
            Some(iot) => {
                let env: HashMap<String, String> = std::env::vars().collect();
                (
                    CredentialsProvider::iot(iot.clone())?,
                    self.region
                        .clone()
                        .or_else(|| crate::credentials::region_from_env(&env)),
                    self.endpoint_url
                        .clone()
                        .or_else(|| crate::credentials::endpoint_from_env(&env)),
                )
            }
            None => {
                let r = resolve_from_environment(&explicit, self.profile.as_deref())?;
                (r.provider, r.region, r.endpoint_url)
            }
        };
        let region = region.ok_or_else(|| {
            ClientError::Config(
                "no region: pass --region, set AWS_REGION, or add `region` to the profile".into(),
            )
        })?;
        let endpoint = match endpoint_url {
            Some(url) => url,
            None => default_endpoint(&region),
        };
        let control: http::Uri = endpoint.parse().map_err(|e| {
            ClientError::Config(format!(
                "endpoint URL {endpoint:?} is not a URL: {e}; give one like https://host:port"
            ))
        })?;
        if control.scheme().is_none() || control.authority().is_none() {
            return Err(ClientError::Config(format!(
                "endpoint URL {endpoint:?} needs a scheme and a host, like http://127.0.0.1:4567"
            )));
        }
        let mut http = reqwest::Client::builder()
            .connect_timeout(Duration::from_secs(5))
            .http1_only()
            .pool_idle_timeout(Duration::from_secs(20));
        for pem in &self.root_certs_pem {
            let certs = reqwest::Certificate::from_pem_bundle(pem)
                .map_err(|e| ClientError::Config(format!("bad root certificate PEM: {e}")))?;
            http = http.tls_certs_merge(certs);
        }
        let http = http
            .build()
            .map_err(|e| ClientError::Config(format!("HTTP client setup failed: {e}")))?;
        Ok(Client {
            inner: Arc::new(Inner {
                http,
                region,
                control,
                provider,
                endpoints: Mutex::new(HashMap::new()),
                retry: self.retry.unwrap_or_default(),
                timeout: self.timeout.unwrap_or(Duration::from_secs(30)),
            }),
        })
    }
}

/// `https://kinesisvideo.<region>.amazonaws.com` (`.amazonaws.com.cn` in China).
pub fn default_endpoint(region: &str) -> String {
    if region.starts_with("cn-") {
        format!("https://kinesisvideo.{region}.amazonaws.com.cn")
    } else {
        format!("https://kinesisvideo.{region}.amazonaws.com")
    }
}

/// The async KVS client. Cheap to clone (shared state).
#[derive(Debug, Clone)]
pub struct Client {
    inner: Arc<Inner>,
}

#[derive(Debug)]
struct Inner {
    http: reqwest::Client,
    region: String,
    control: http::Uri,
    provider: CredentialsProvider,
    endpoints: Mutex<HashMap<(String, ApiName), http::Uri>>,
    retry: RetryConfig,
    timeout: Duration,
}

/// Which stream a data-plane request names.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct StreamRef {
    pub(crate) name: Option<String>,
    pub(crate) arn: Option<String>,
}

impl StreamRef {
    fn key(&self) -> String {
        self.arn
            .clone()
            .or_else(|| self.name.clone())
            .unwrap_or_default()
    }
}

/// The APIName whose data endpoint serves `op`.
fn api_name(op: Operation) -> Option<ApiName> {
    Some(match op {
        Operation::PutMedia => ApiName::PutMedia,
        Operation::GetMedia => ApiName::GetMedia,
        Operation::ListFragments => ApiName::ListFragments,
        Operation::GetMediaForFragmentList => ApiName::GetMediaForFragmentList,
        Operation::GetClip => ApiName::GetClip,
        Operation::GetImages => ApiName::GetImages,
        Operation::GetHLSStreamingSessionURL => ApiName::GetHlsStreamingSessionUrl,
        Operation::GetDASHStreamingSessionURL => ApiName::GetDashStreamingSessionUrl,
        _ => return None,
    })
}

impl Client {
    /// A builder.
    pub fn builder() -> ClientBuilder {
        ClientBuilder::default()
    }

    /// A client configured from the environment and shared files only.
    pub fn from_env() -> Result<Client, ClientError> {
        ClientBuilder::default().build()
    }

    /// The region requests are signed for.
    pub fn region(&self) -> &str {
        &self.inner.region
    }

    /// The control-plane endpoint.
    pub fn endpoint(&self) -> &http::Uri {
        &self.inner.control
    }

    /// The credentials provider.
    pub fn credentials_provider(&self) -> &CredentialsProvider {
        &self.inner.provider
    }

    pub(crate) fn http(&self) -> &reqwest::Client {
        &self.inner.http
    }

    /// Signs `request` for `now` with the current credentials; returns the key id used.
    pub(crate) async fn sign<B>(
        &self,
        operation: &'static str,
        request: &mut http::Request<B>,
        payload: Option<&[u8]>,
    ) -> Result<String, ClientError> {
        let creds = self.inner.provider.credentials().await?;
        let signing = SigningCredentials {
            access_key_id: creds.access_key_id(),
            secret_access_key: creds.secret_access_key(),
            session_token: creds.session_token(),
        };
        let now = SystemTime::now();
        let params = match payload {
            Some(body) => {
                SigningParams::new(signing, &self.inner.region, now, PayloadSigning::Body(body))
            }
            None => SigningParams::c_producer_put_media(signing, &self.inner.region, now),
        };
        let out = sigv4::sign(request, &params)
            .and_then(|o| o.apply_to_request(request).map(|_| o))
            .map_err(|e| ClientError::Sign {
                operation,
                message: e.to_string(),
            })?;
        // The C producer adds its session token unsigned, after signing.
        if payload.is_none()
            && let Some(token) = creds.session_token()
            && let Ok(v) = http::HeaderValue::from_str(token)
        {
            request.headers_mut().insert("x-amz-security-token", v);
        }
        drop(out);
        Ok(creds.access_key_id().to_owned())
    }

    /// Maps a service error to a [`ClientError`] with a hint naming the key id and the fix.
    pub(crate) fn api_error(
        &self,
        operation: &'static str,
        key_id: &str,
        error: ApiError,
    ) -> ClientError {
        let hint = error::auth_hint(&error, key_id, &self.inner.provider.source().to_string());
        ClientError::Api {
            operation,
            error,
            hint,
        }
    }

    fn transport(
        &self,
        operation: &'static str,
        endpoint: &http::Uri,
        e: reqwest::Error,
    ) -> ClientError {
        let mut message = e.to_string();
        let mut source = std::error::Error::source(&e);
        while let Some(s) = source {
            message.push_str(": ");
            message.push_str(&s.to_string());
            source = s.source();
        }
        ClientError::Transport {
            operation,
            endpoint: endpoint.to_string(),
            message,
        }
    }

    /// Sends a signed JSON request once and returns status, headers and (bounded) body.
    async fn send_once(
        &self,
        operation: &'static str,
        mut request: http::Request<Bytes>,
        stream: bool,
    ) -> Result<(String, reqwest::Response), ClientError> {
        let body = request.body().clone();
        let key_id = self.sign(operation, &mut request, Some(&body)).await?;
        let uri = request.uri().clone();
        let mut req =
            reqwest::Request::try_from(request).map_err(|e| self.transport(operation, &uri, e))?;
        if !stream {
            *req.timeout_mut() = Some(self.inner.timeout);
        }
        let response = self
            .inner
            .http
            .execute(req)
            .await
            .map_err(|e| self.transport(operation, &uri, e))?;
        Ok((key_id, response))
    }

    /// The data endpoint for `stream` and `api`, from the cache or GetDataEndpoint.
    pub async fn data_endpoint(
        &self,
        stream: &StreamRefArg<'_>,
        api: ApiName,
    ) -> Result<http::Uri, ClientError> {
        let sref = stream.to_ref();
        let key = (sref.key(), api);
        if let Ok(cache) = self.inner.endpoints.lock()
            && let Some(uri) = cache.get(&key)
        {
            return Ok(uri.clone());
        }
        let request = GetDataEndpointRequest {
            stream_name: sref.name.clone(),
            stream_arn: sref.arn.clone(),
            api_name: api,
        };
        let response = self.call_at(&request, &self.inner.control.clone()).await?;
        let uri: http::Uri = response.data_endpoint.parse().map_err(|e| {
            ClientError::Config(format!(
                "GetDataEndpoint answered {:?}, which is not a URL: {e}",
                response.data_endpoint
            ))
        })?;
        if let Ok(mut cache) = self.inner.endpoints.lock() {
            cache.insert(key, uri.clone());
        }
        Ok(uri)
    }

    /// Forgets the cached data endpoint (after InvalidEndpointException).
    pub(crate) fn forget_endpoint(&self, stream: &StreamRef, api: ApiName) {
        if let Ok(mut cache) = self.inner.endpoints.lock() {
            cache.remove(&(stream.key(), api));
        }
    }

    /// Calls any JSON operation at `endpoint`, retrying retryable failures.
    async fn call_at<Op: ApiOperation>(
        &self,
        op: &Op,
        endpoint: &http::Uri,
    ) -> Result<Op::Response, ClientError> {
        let name = Op::OPERATION.name();
        let mut attempt = 0u32;
        loop {
            attempt += 1;
            let request = op.to_http(endpoint).map_err(|error| ClientError::Api {
                operation: name,
                error,
                hint: String::new(),
            })?;
            let result = match self.send_once(name, request, false).await {
                Ok((key_id, response)) => {
                    let status = response.status();
                    let headers = response.headers().clone();
                    match read_limited(response, MAX_RESPONSE_BODY).await {
                        Ok(body) => {
                            let mut r = http::Response::new(body);
                            *r.status_mut() = status;
                            *r.headers_mut() = headers;
                            <Op::Response as ApiResponse>::from_http(&r)
                                .map_err(|e| self.api_error(name, &key_id, e))
                        }
                        Err(message) => Err(ClientError::Transport {
                            operation: name,
                            endpoint: endpoint.to_string(),
                            message,
                        }),
                    }
                }
                Err(e) => Err(e),
            };
            match result {
                Err(e) if e.is_retryable() && attempt < self.inner.retry.max_attempts => {
                    tokio::time::sleep(self.inner.retry.backoff(attempt)).await;
                }
                other => return other,
            }
        }
    }

    /// Calls any JSON operation: control-plane operations go to the control endpoint, media
    /// operations to the stream's data endpoint (discovered, cached, refreshed on
    /// InvalidEndpointException).
    pub async fn call<Op: ApiOperation>(&self, op: &Op) -> Result<Op::Response, ClientError> {
        let Some(api) =
            api_name(Op::OPERATION).filter(|_| Op::OPERATION.service() != Service::ControlPlane)
        else {
            return self.call_at(op, &self.inner.control.clone()).await;
        };
        let sref = stream_of(op);
        let arg = StreamRefArg::from_ref(&sref);
        let endpoint = self.data_endpoint(&arg, api).await?;
        match self.call_at(op, &endpoint).await {
            Err(e) if e.is_kind(&ApiErrorKind::InvalidEndpoint) => {
                self.forget_endpoint(&sref, api);
                let endpoint = self.data_endpoint(&arg, api).await?;
                self.call_at(op, &endpoint).await
            }
            other => other,
        }
    }

    /// Opens a streaming media operation (GetMedia, GetMediaForFragmentList, GetClip) and
    /// returns the response once its head is `2xx`.
    pub(crate) async fn open_media<Op: ApiOperation>(
        &self,
        op: &Op,
    ) -> Result<reqwest::Response, ClientError> {
        let name = Op::OPERATION.name();
        let api = api_name(Op::OPERATION)
            .ok_or_else(|| ClientError::Config(format!("{name} is not a media operation")))?;
        let sref = stream_of(op);
        let arg = StreamRefArg::from_ref(&sref);
        let mut attempt = 0u32;
        let mut refreshed = false;
        loop {
            attempt += 1;
            let endpoint = self.data_endpoint(&arg, api).await?;
            let request = op.to_http(&endpoint).map_err(|error| ClientError::Api {
                operation: name,
                error,
                hint: String::new(),
            })?;
            let result = match self.send_once(name, request, true).await {
                Ok((key_id, response)) if !response.status().is_success() => {
                    let status = response.status();
                    let headers = response.headers().clone();
                    let body = read_limited(response, crate::api::error::MAX_ERROR_BODY)
                        .await
                        .unwrap_or_default();
                    let mut r = http::Response::new(body);
                    *r.status_mut() = status;
                    *r.headers_mut() = headers;
                    Err(self.api_error(name, &key_id, ApiError::from_http(&r)))
                }
                other => other.map(|(_, r)| r),
            };
            match result {
                Err(e) if e.is_kind(&ApiErrorKind::InvalidEndpoint) && !refreshed => {
                    refreshed = true;
                    self.forget_endpoint(&sref, api);
                }
                Err(e) if e.is_retryable() && attempt < self.inner.retry.max_attempts => {
                    tokio::time::sleep(self.inner.retry.backoff(attempt)).await;
                }
                other => return other,
            }
        }
    }

    // ------------------------------------------------------------ control plane conveniences

    /// CreateStream with a name and retention (hours; 0 keeps no data).
    pub async fn create_stream(
        &self,
        name: &str,
        retention_hours: i64,
    ) -> Result<CreateStreamResponse, ClientError> {
        self.call(&CreateStreamRequest {
            device_name: None,
            stream_name: name.to_owned(),
            media_type: None,
            kms_key_id: None,
            data_retention_in_hours: Some(retention_hours),
            tags: None,
            stream_storage_configuration: None,
        })
        .await
    }

    /// DescribeStream by name.
    pub async fn describe_stream(&self, name: &str) -> Result<DescribeStreamResponse, ClientError> {
        self.call(&DescribeStreamRequest {
            stream_name: Some(name.to_owned()),
            stream_arn: None,
        })
        .await
    }

    /// Waits until the stream is ACTIVE (at most `timeout`).
    pub async fn wait_active(
        &self,
        name: &str,
        timeout: Duration,
    ) -> Result<StreamInfo, ClientError> {
        let deadline = tokio::time::Instant::now() + timeout;
        loop {
            let info = self.describe_stream(name).await?.stream_info;
            if info.status == crate::api::StreamStatus::Active {
                return Ok(info);
            }
            if tokio::time::Instant::now() >= deadline {
                return Err(ClientError::Config(format!(
                    "stream {name} is still {} after {} s",
                    info.status,
                    timeout.as_secs()
                )));
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }

    /// Every stream (ListStreams, all pages).
    pub async fn list_streams(&self) -> Result<Vec<StreamInfo>, ClientError> {
        let mut out = Vec::new();
        let mut next_token = None;
        loop {
            let page: ListStreamsResponse = self
                .call(&ListStreamsRequest {
                    max_results: Some(1000),
                    next_token: next_token.take(),
                    stream_name_condition: None,
                })
                .await?;
            out.extend(page.stream_info_list);
            match page.next_token {
                Some(t) if !t.is_empty() => next_token = Some(t),
                _ => return Ok(out),
            }
        }
    }

    /// DeleteStream by name (looks the ARN up first).
    pub async fn delete_stream(&self, name: &str) -> Result<EmptyResponse, ClientError> {
        let info = self.describe_stream(name).await?.stream_info;
        self.call(&DeleteStreamRequest {
            stream_arn: info.stream_arn,
            current_version: Some(info.version),
        })
        .await
    }

    /// Changes the retention by `change_hours` (positive: increase; negative: decrease).
    pub async fn update_retention(
        &self,
        name: &str,
        change_hours: i64,
    ) -> Result<EmptyResponse, ClientError> {
        let info = self.describe_stream(name).await?.stream_info;
        let (operation, hours) = if change_hours >= 0 {
            (
                UpdateDataRetentionOperation::IncreaseDataRetention,
                change_hours,
            )
        } else {
            (
                UpdateDataRetentionOperation::DecreaseDataRetention,
                -change_hours,
            )
        };
        self.call(&UpdateDataRetentionRequest {
            stream_name: Some(name.to_owned()),
            stream_arn: None,
            current_version: info.version,
            operation,
            data_retention_change_in_hours: hours,
        })
        .await
    }

    /// TagStream.
    pub async fn tag_stream(
        &self,
        name: &str,
        tags: std::collections::BTreeMap<String, String>,
    ) -> Result<EmptyResponse, ClientError> {
        self.call(&TagStreamRequest {
            stream_arn: None,
            stream_name: Some(name.to_owned()),
            tags,
        })
        .await
    }

    /// UntagStream.
    pub async fn untag_stream(
        &self,
        name: &str,
        keys: Vec<String>,
    ) -> Result<EmptyResponse, ClientError> {
        self.call(&UntagStreamRequest {
            stream_arn: None,
            stream_name: Some(name.to_owned()),
            tag_key_list: keys,
        })
        .await
    }

    /// ListTagsForStream (first page).
    pub async fn list_tags(&self, name: &str) -> Result<ListTagsResponse, ClientError> {
        self.call(&ListTagsForStreamRequest {
            next_token: None,
            stream_arn: None,
            stream_name: Some(name.to_owned()),
        })
        .await
    }

    // ------------------------------------------------------------ archived media

    /// ListFragments as a paginating stream of fragments (unsorted, as the service answers).
    ///
    /// `None` selects every fragment: the service requires a selector on the first page, so
    /// the client sends server timestamps from the epoch to an hour from now.
    pub fn list_fragments(
        &self,
        name: &str,
        selector: Option<FragmentSelector>,
    ) -> impl futures_util::Stream<Item = Result<Fragment, ClientError>> + Send + 'static {
        let client = self.clone();
        let name = name.to_owned();
        let selector = selector.or_else(|| {
            let now_ms = SystemTime::now()
                .duration_since(SystemTime::UNIX_EPOCH)
                .map(|d| d.as_millis() as u64)
                .unwrap_or(0);
            Some(FragmentSelector {
                fragment_selector_type: crate::api::TimestampSelectorType::ServerTimestamp,
                timestamp_range: crate::api::TimestampRange {
                    start_timestamp: crate::api::Timestamp::from_millis(0),
                    end_timestamp: crate::api::Timestamp::from_millis(now_ms + 3_600_000),
                },
            })
        });
        let state = (
            Some(None::<String>),
            std::collections::VecDeque::<Fragment>::new(),
        );
        futures_util::stream::unfold(state, move |(mut token, mut queue)| {
            let client = client.clone();
            let name = name.clone();
            let selector = selector;
            async move {
                loop {
                    if let Some(f) = queue.pop_front() {
                        return Some((Ok(f), (token, queue)));
                    }
                    let next = token.take()?;
                    let request = ListFragmentsRequest {
                        stream_name: Some(name.clone()),
                        stream_arn: None,
                        max_results: Some(1000),
                        next_token: next,
                        fragment_selector: selector,
                    };
                    match client.call(&request).await {
                        Ok(page) => {
                            queue.extend(page.fragments);
                            token = page.next_token.filter(|t| !t.is_empty()).map(Some);
                        }
                        Err(e) => return Some((Err(e), (None, queue))),
                    }
                }
            }
        })
    }

    /// Every fragment of a selector, sorted by producer timestamp then number.
    pub async fn list_all_fragments(
        &self,
        name: &str,
        selector: Option<FragmentSelector>,
    ) -> Result<Vec<Fragment>, ClientError> {
        use futures_util::StreamExt;
        let mut stream = Box::pin(self.list_fragments(name, selector));
        let mut out = Vec::new();
        while let Some(f) = stream.next().await {
            out.push(f?);
        }
        out.sort_by(|a, b| {
            (a.producer_timestamp, &a.fragment_number)
                .cmp(&(b.producer_timestamp, &b.fragment_number))
        });
        Ok(out)
    }

    /// A producer for stream `name` (see [`ProducerBuilder`]).
    pub fn producer(&self, name: &str, tracks: Vec<crate::mkv::TrackInfo>) -> ProducerBuilder {
        ProducerBuilder::new(self.clone(), name, tracks)
    }
}

/// A stream named by name or ARN (argument form).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum StreamRefArg<'a> {
    /// By name.
    Name(&'a str),
    /// By ARN.
    Arn(&'a str),
}

impl<'a> StreamRefArg<'a> {
    fn to_ref(self) -> StreamRef {
        match self {
            StreamRefArg::Name(n) => StreamRef {
                name: Some(n.to_owned()),
                arn: None,
            },
            StreamRefArg::Arn(a) => StreamRef {
                name: None,
                arn: Some(a.to_owned()),
            },
        }
    }

    fn from_ref(r: &'a StreamRef) -> Self {
        match (&r.arn, &r.name) {
            (Some(a), _) => StreamRefArg::Arn(a),
            (None, Some(n)) => StreamRefArg::Name(n),
            (None, None) => StreamRefArg::Name(""),
        }
    }
}

/// The stream a request names, read from its JSON members.
fn stream_of<Op: serde::Serialize>(op: &Op) -> StreamRef {
    let value = serde_json::to_value(op).unwrap_or_default();
    let text = |k: &str| value.get(k).and_then(|v| v.as_str()).map(str::to_owned);
    StreamRef {
        name: text("StreamName"),
        arn: text("StreamARN"),
    }
}

/// Reads a response body of at most `limit` bytes.
async fn read_limited(mut response: reqwest::Response, limit: usize) -> Result<Bytes, String> {
    let mut out = bytes::BytesMut::new();
    while let Some(chunk) = response.chunk().await.map_err(|e| e.to_string())? {
        if out.len() + chunk.len() > limit {
            return Err(format!("response body exceeds {limit} bytes"));
        }
        out.extend_from_slice(&chunk);
    }
    Ok(out.freeze())
}
