//! Where the client gets its credentials: explicit, environment, shared files with profiles, or
//! the AWS IoT credentials provider over mutual TLS, refreshed before they expire.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, SystemTime};

use tokio::sync::Mutex;

use super::ClientError;
use crate::credentials::{self, Credentials, Explicit, SharedFiles, iot};

/// How long before expiry credentials are refreshed (for short-lived credentials, half their
/// lifetime when that is less: see [`refresh_margin`]).
pub const REFRESH_MARGIN: Duration = Duration::from_secs(300);

/// Settings of the AWS IoT credentials provider (a camera's certificate traded for temporary
/// credentials).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct IotConfig {
    /// The account's credentials-provider endpoint (`xxxx.credentials.iot.<region>.amazonaws.com`).
    pub endpoint: String,
    /// The role alias.
    pub role_alias: String,
    /// The thing name.
    pub thing_name: String,
    /// Device certificate (PEM file).
    pub cert: PathBuf,
    /// Device private key (PEM file).
    pub key: PathBuf,
    /// CA certificate(s) to trust for the provider (PEM file); the system roots otherwise.
    pub ca: Option<PathBuf>,
}

/// Where the credentials came from (for error messages).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Source {
    /// Given by the program.
    Explicit,
    /// `AWS_ACCESS_KEY_ID` / `AWS_SECRET_ACCESS_KEY`.
    Environment,
    /// A shared-file profile.
    Profile(String),
    /// The IoT credentials provider.
    Iot,
}

impl std::fmt::Display for Source {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Source::Explicit => f.write_str("the program's explicit credentials"),
            Source::Environment => f.write_str("the AWS_ACCESS_KEY_ID environment variable"),
            Source::Profile(p) => write!(f, "profile {p:?} of the shared credentials files"),
            Source::Iot => f.write_str("the IoT credentials provider"),
        }
    }
}

/// A credentials provider: static credentials or the IoT provider with a cache.
#[derive(Debug, Clone)]
pub struct CredentialsProvider {
    inner: Arc<ProviderInner>,
}

#[derive(Debug)]
struct ProviderInner {
    source: Source,
    kind: Kind,
    /// The credentials and when they were fetched.
    cached: Mutex<Option<(Credentials, SystemTime)>>,
}

/// The refresh margin for credentials fetched at `fetched` that expire at `expiry`:
/// [`REFRESH_MARGIN`], or half their lifetime when that is shorter, so credentials that live
/// less than the margin are not fetched again on every request.
pub fn refresh_margin(fetched: SystemTime, expiry: Option<SystemTime>) -> Duration {
    let lifetime = expiry
        .and_then(|e| e.duration_since(fetched).ok())
        .unwrap_or(Duration::ZERO);
    REFRESH_MARGIN.min(lifetime / 2)
}

#[derive(Debug)]
enum Kind {
    Static,
    Iot {
        config: IotConfig,
        http: reqwest::Client,
    },
}

impl CredentialsProvider {
    /// Fixed credentials (a refresh re-reads nothing; expired ones are used as they are).
    pub fn fixed(credentials: Credentials, source: Source) -> Self {
        CredentialsProvider {
            inner: Arc::new(ProviderInner {
                source,
                kind: Kind::Static,
                cached: Mutex::new(Some((credentials, SystemTime::UNIX_EPOCH))),
            }),
        }
    }

    /// The IoT credentials provider over mutual TLS with the device certificate.
    pub fn iot(config: IotConfig) -> Result<Self, ClientError> {
        super::install_crypto_provider();
        let read = |p: &Path| {
            std::fs::read(p)
                .map_err(|e| ClientError::Iot(format!("cannot read {}: {e}", p.display())))
        };
        let mut pem = read(&config.cert)?;
        pem.push(b'\n');
        pem.extend(read(&config.key)?);
        let identity = reqwest::Identity::from_pem(&pem).map_err(|e| {
            ClientError::Iot(format!(
                "the device certificate {} and key {} do not form a usable identity: {e}",
                config.cert.display(),
                config.key.display()
            ))
        })?;
        let mut builder = reqwest::Client::builder()
            .identity(identity)
            .connect_timeout(Duration::from_secs(3))
            .timeout(Duration::from_secs(5));
        if let Some(ca) = &config.ca {
            for cert in reqwest::Certificate::from_pem_bundle(&read(ca)?)
                .map_err(|e| ClientError::Iot(format!("bad CA file {}: {e}", ca.display())))?
            {
                builder = builder.tls_certs_merge([cert]);
            }
        }
        let http = builder
            .build()
            .map_err(|e| ClientError::Iot(format!("TLS setup failed: {e}")))?;
        Ok(CredentialsProvider {
            inner: Arc::new(ProviderInner {
                source: Source::Iot,
                kind: Kind::Iot { config, http },
                cached: Mutex::new(None),
            }),
        })
    }

    /// Where the credentials come from.
    pub fn source(&self) -> &Source {
        &self.inner.source
    }

    /// Credentials valid for at least [`REFRESH_MARGIN`] when the source can refresh them.
    pub async fn credentials(&self) -> Result<Credentials, ClientError> {
        let mut cached = self.inner.cached.lock().await;
        let now = SystemTime::now();
        if let Some((c, fetched)) = cached.as_ref()
            && (matches!(self.inner.kind, Kind::Static)
                || !c.needs_refresh(now, refresh_margin(*fetched, c.expiry())))
        {
            return Ok(c.clone());
        }
        let Kind::Iot { config, http } = &self.inner.kind else {
            return cached
                .as_ref()
                .map(|(c, _)| c.clone())
                .ok_or_else(|| ClientError::Config("no credentials".into()));
        };
        let fresh = fetch_iot(config, http).await?;
        *cached = Some((fresh.clone(), now));
        Ok(fresh)
    }
}

async fn fetch_iot(config: &IotConfig, http: &reqwest::Client) -> Result<Credentials, ClientError> {
    let request =
        iot::credentials_request(&config.endpoint, &config.role_alias, &config.thing_name)
            .map_err(|e| ClientError::Iot(e.to_string()))?;
    let mut builder = http.get(request.uri().to_string());
    for (name, value) in request.headers() {
        builder = builder.header(name, value);
    }
    let response = builder.send().await.map_err(|e| {
        ClientError::Iot(format!(
            "request to {} failed: {e} (check the endpoint, the device certificate and key)",
            config.endpoint
        ))
    })?;
    let status = response.status().as_u16();
    let body = response
        .bytes()
        .await
        .map_err(|e| ClientError::Iot(format!("reading the response failed: {e}")))?;
    iot::parse_credentials_response(status, &body).map_err(|e| ClientError::Iot(e.to_string()))
}

/// What [`resolve_from_environment`] found.
#[derive(Debug, Clone)]
pub struct ResolvedSettings {
    /// The credentials provider.
    pub provider: CredentialsProvider,
    /// Region, if configured anywhere.
    pub region: Option<String>,
    /// Endpoint URL, if configured anywhere.
    pub endpoint_url: Option<String>,
}

/// Resolves credentials, region and endpoint from `explicit`, the process environment and the
/// shared files (with `profile` overriding `AWS_PROFILE`), as the AWS CLI does.
pub fn resolve_from_environment(
    explicit: &Explicit,
    profile: Option<&str>,
) -> Result<ResolvedSettings, ClientError> {
    let mut env: HashMap<String, String> = std::env::vars().collect();
    if let Some(p) = profile {
        env.insert("AWS_PROFILE".into(), p.to_owned());
    }
    let home = std::env::var_os("HOME")
        .or_else(|| std::env::var_os("USERPROFILE"))
        .map(PathBuf::from);
    let paths = credentials::shared_file_paths(&env, home.as_deref());
    let read = |p: &Option<PathBuf>| -> Result<Option<String>, ClientError> {
        match p {
            None => Ok(None),
            Some(path) => match std::fs::read_to_string(path) {
                Ok(text) => Ok(Some(text)),
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
                Err(e) => Err(ClientError::Config(format!(
                    "cannot read {}: {e}",
                    path.display()
                ))),
            },
        }
    };
    let config = read(&paths.config)?;
    let creds = read(&paths.credentials)?;
    let files = SharedFiles {
        config: config.as_deref(),
        credentials: creds.as_deref(),
    };
    let resolved = credentials::resolve(explicit, &env, &files)?;
    let source = match &resolved.source {
        credentials::CredentialSource::Explicit => Source::Explicit,
        credentials::CredentialSource::Environment => Source::Environment,
        credentials::CredentialSource::Profile(p) => Source::Profile(p.clone()),
    };
    Ok(ResolvedSettings {
        provider: CredentialsProvider::fixed(resolved.credentials, source),
        region: resolved.region,
        endpoint_url: resolved.endpoint_url,
    })
}
