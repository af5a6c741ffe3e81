//! AWS credentials and where they come from, without I/O.
//!
//! - [`Credentials`]: an access key pair, optional session token and expiry; `Debug` redacts the
//!   secrets.
//! - [`Env`]: the environment as a map the caller passes in (kvs-core never reads it).
//! - [`credentials_from_env`], [`region_from_env`], [`endpoint_from_env`]: the standard
//!   `AWS_*` variables.
//! - [`shared_file_paths`]: which shared config/credentials files to read, and which profile;
//!   [`ProfileSet`]: their parsed contents; [`resolve_profile`]: one profile's settings.
//! - [`resolve`]: the resolution order explicit > environment > profile, with errors that say
//!   what to configure.
//! - [`iot`]: the AWS IoT credentials provider's request and response.
//! - [`parse_rfc3339`] / [`format_rfc3339`]: the timestamps these sources use.

pub mod iot;
mod profile;
mod time;

use std::collections::{BTreeMap, HashMap};
use std::fmt;
use std::hash::BuildHasher;
use std::path::{Path, PathBuf};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

pub use profile::{FileKind, Profile, ProfileParseError, ProfileSet};
pub use time::{TimestampError, format_rfc3339, parse_rfc3339};

/// AWS credentials: an access key pair, plus a session token and expiry for temporary ones.
#[derive(Clone, PartialEq, Eq)]
pub struct Credentials {
    access_key_id: String,
    secret_access_key: String,
    session_token: Option<String>,
    expiry: Option<SystemTime>,
}

impl Credentials {
    /// Long-term credentials (no token, no expiry).
    pub fn new(access_key_id: impl Into<String>, secret_access_key: impl Into<String>) -> Self {
        Credentials {
            access_key_id: access_key_id.into(),
            secret_access_key: secret_access_key.into(),
            session_token: None,
            expiry: None,
        }
    }

    /// Adds a session token (temporary credentials; sent as `x-amz-security-token`).
    pub fn with_session_token(mut self, token: impl Into<String>) -> Self {
        self.session_token = Some(token.into());
        self
    }

    /// Adds an expiry time.
    pub fn with_expiry(mut self, expiry: SystemTime) -> Self {
        self.expiry = Some(expiry);
        self
    }

    /// Adds an expiry as seconds since the Unix epoch.
    pub fn with_expiry_epoch_secs(self, secs: u64) -> Self {
        self.with_expiry(UNIX_EPOCH + Duration::from_secs(secs))
    }

    /// The access key id (`AKIA…` or `ASIA…`).
    pub fn access_key_id(&self) -> &str {
        &self.access_key_id
    }

    /// The secret access key.
    pub fn secret_access_key(&self) -> &str {
        &self.secret_access_key
    }

    /// The session token, for temporary credentials.
    pub fn session_token(&self) -> Option<&str> {
        self.session_token.as_deref()
    }

    /// When the credentials expire, if they do.
    pub fn expiry(&self) -> Option<SystemTime> {
        self.expiry
    }

    /// The expiry as whole seconds since the Unix epoch (`None` without expiry or before 1970).
    pub fn expiry_epoch_secs(&self) -> Option<u64> {
        self.expiry?
            .duration_since(UNIX_EPOCH)
            .ok()
            .map(|d| d.as_secs())
    }

    /// When to refresh: `margin` before the expiry (`None` when they never expire).
    ///
    /// The official producer adds random jitter to the margin; draw it outside and pass it in.
    pub fn refresh_at(&self, margin: Duration) -> Option<SystemTime> {
        let expiry = self.expiry?;
        Some(expiry.checked_sub(margin).unwrap_or(UNIX_EPOCH))
    }

    /// Whether the credentials expire within `margin` of `now` (never for credentials without
    /// expiry).
    pub fn needs_refresh(&self, now: SystemTime, margin: Duration) -> bool {
        self.refresh_at(margin).is_some_and(|at| now >= at)
    }

    /// Whether the credentials have expired at `now`.
    pub fn is_expired(&self, now: SystemTime) -> bool {
        self.needs_refresh(now, Duration::ZERO)
    }
}

impl fmt::Debug for Credentials {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Credentials")
            .field("access_key_id", &self.access_key_id)
            .field("secret_access_key", &"** redacted **")
            .field(
                "session_token",
                &self.session_token.as_ref().map(|_| "** redacted **"),
            )
            .field("expiry", &self.expiry.map(format_rfc3339))
            .finish()
    }
}

/// Read access to environment variables, given by the caller as a map.
///
/// Implemented for `HashMap<String, String>`, `BTreeMap<String, String>` and slices or arrays
/// of `(&str, &str)` pairs. Empty values count as unset, as in the AWS CLI.
pub trait Env {
    /// The value of a variable, if set.
    fn var(&self, name: &str) -> Option<&str>;

    /// The value of a variable, if set and not empty.
    fn non_empty(&self, name: &str) -> Option<&str> {
        self.var(name).filter(|v| !v.is_empty())
    }
}

impl<S: BuildHasher> Env for HashMap<String, String, S> {
    fn var(&self, name: &str) -> Option<&str> {
        self.get(name).map(String::as_str)
    }
}

impl Env for BTreeMap<String, String> {
    fn var(&self, name: &str) -> Option<&str> {
        self.get(name).map(String::as_str)
    }
}

impl Env for [(&str, &str)] {
    fn var(&self, name: &str) -> Option<&str> {
        self.iter().rev().find(|(k, _)| *k == name).map(|(_, v)| *v)
    }
}

impl<const N: usize> Env for [(&str, &str); N] {
    fn var(&self, name: &str) -> Option<&str> {
        self.as_slice().var(name)
    }
}

/// Why credentials or settings could not be resolved.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum CredentialsError {
    /// No source had credentials.
    #[error(
        "no AWS credentials found: set AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY, or configure \
         the profile {profile:?} (aws_access_key_id and aws_secret_access_key under [{profile}] in \
         ~/.aws/credentials, or run `aws configure`; choose another profile with AWS_PROFILE), or \
         pass credentials explicitly{detail}"
    )]
    NoCredentials {
        /// The profile that was looked up.
        profile: String,
        /// Extra context, such as which profile files were missing (may be empty).
        detail: String,
    },
    /// Only one of the two key variables is set.
    #[error("{present} is set but {missing} is not: set both (or neither, to use a profile)")]
    IncompleteEnv {
        /// The variable that is set.
        present: &'static str,
        /// The variable that is missing.
        missing: &'static str,
    },
    /// A profile has only half of a key pair.
    #[error(
        "profile {profile:?} sets {present} but not {missing}: add {missing} to it in \
         ~/.aws/credentials"
    )]
    IncompleteProfile {
        /// The profile.
        profile: String,
        /// The key that is set.
        present: &'static str,
        /// The key that is missing.
        missing: &'static str,
    },
    /// `AWS_PROFILE` names a profile neither file defines.
    #[error(
        "profile {profile:?} (from {variable}) is not defined: add [profile {profile}] to \
         ~/.aws/config or [{profile}] to ~/.aws/credentials, or unset {variable}"
    )]
    ProfileNotFound {
        /// The profile name.
        profile: String,
        /// The variable that chose it.
        variable: &'static str,
    },
    /// A shared file could not be parsed.
    #[error(transparent)]
    Parse(#[from] ProfileParseError),
    /// An expiry value that is not an RFC 3339 timestamp.
    #[error("{variable} is not an RFC 3339 timestamp: {source}")]
    BadExpiration {
        /// Where the value came from.
        variable: &'static str,
        /// The parse failure.
        source: TimestampError,
    },
}

/// Credentials from `AWS_ACCESS_KEY_ID`, `AWS_SECRET_ACCESS_KEY`, `AWS_SESSION_TOKEN` (or the
/// legacy `AWS_SECURITY_TOKEN`) and `AWS_CREDENTIAL_EXPIRATION`.
///
/// `Ok(None)` when neither key variable is set.
pub fn credentials_from_env<E: Env + ?Sized>(
    env: &E,
) -> Result<Option<Credentials>, CredentialsError> {
    const AKID: &str = "AWS_ACCESS_KEY_ID";
    const SECRET: &str = "AWS_SECRET_ACCESS_KEY";
    let (akid, secret) = match (env.non_empty(AKID), env.non_empty(SECRET)) {
        (None, None) => return Ok(None),
        (Some(_), None) => {
            return Err(CredentialsError::IncompleteEnv {
                present: AKID,
                missing: SECRET,
            });
        }
        (None, Some(_)) => {
            return Err(CredentialsError::IncompleteEnv {
                present: SECRET,
                missing: AKID,
            });
        }
        (Some(a), Some(s)) => (a, s),
    };
    let mut creds = Credentials::new(akid, secret);
    if let Some(token) = env
        .non_empty("AWS_SESSION_TOKEN")
        .or_else(|| env.non_empty("AWS_SECURITY_TOKEN"))
    {
        creds = creds.with_session_token(token);
    }
    if let Some(expiration) = env.non_empty("AWS_CREDENTIAL_EXPIRATION") {
        let expiry =
            parse_rfc3339(expiration).map_err(|source| CredentialsError::BadExpiration {
                variable: "AWS_CREDENTIAL_EXPIRATION",
                source,
            })?;
        creds = creds.with_expiry(expiry);
    }
    Ok(Some(creds))
}

/// The region from `AWS_REGION`, else `AWS_DEFAULT_REGION`.
pub fn region_from_env<E: Env + ?Sized>(env: &E) -> Option<String> {
    env.non_empty("AWS_REGION")
        .or_else(|| env.non_empty("AWS_DEFAULT_REGION"))
        .map(str::to_owned)
}

/// Whether `AWS_IGNORE_CONFIGURED_ENDPOINT_URLS` turns configured endpoints off.
fn endpoints_ignored<E: Env + ?Sized>(env: &E) -> bool {
    env.non_empty("AWS_IGNORE_CONFIGURED_ENDPOINT_URLS")
        .is_some_and(|v| v.eq_ignore_ascii_case("true"))
}

/// The endpoint from `AWS_ENDPOINT_URL_KINESIS_VIDEO`, else `AWS_ENDPOINT_URL`; none when
/// `AWS_IGNORE_CONFIGURED_ENDPOINT_URLS=true`.
pub fn endpoint_from_env<E: Env + ?Sized>(env: &E) -> Option<String> {
    if endpoints_ignored(env) {
        return None;
    }
    env.non_empty("AWS_ENDPOINT_URL_KINESIS_VIDEO")
        .or_else(|| env.non_empty("AWS_ENDPOINT_URL"))
        .map(str::to_owned)
}

/// Which shared files to read and which profile to use.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SharedFilePaths {
    /// The config file (`AWS_CONFIG_FILE`, else `<home>/.aws/config`).
    pub config: Option<PathBuf>,
    /// The credentials file (`AWS_SHARED_CREDENTIALS_FILE`, else `<home>/.aws/credentials`).
    pub credentials: Option<PathBuf>,
    /// The profile name (`AWS_PROFILE`, else `AWS_DEFAULT_PROFILE`, else `default`).
    pub profile: String,
    /// The variable that chose the profile, when one did.
    pub profile_variable: Option<&'static str>,
}

/// Works out the shared file paths and profile from the environment and the home directory.
///
/// A leading `~` in a variable's path is replaced by `home`. A path is `None` only when it would
/// be under the home directory and `home` is `None`.
pub fn shared_file_paths<E: Env + ?Sized>(env: &E, home: Option<&Path>) -> SharedFilePaths {
    let locate = |var: &str, default: &str| -> Option<PathBuf> {
        match env.non_empty(var) {
            Some(path) => expand_home(path, home),
            None => home.map(|h| h.join(".aws").join(default)),
        }
    };
    let (profile, profile_variable) = match env.non_empty("AWS_PROFILE") {
        Some(p) => (p.to_owned(), Some("AWS_PROFILE")),
        None => match env.non_empty("AWS_DEFAULT_PROFILE") {
            Some(p) => (p.to_owned(), Some("AWS_DEFAULT_PROFILE")),
            None => ("default".to_owned(), None),
        },
    };
    SharedFilePaths {
        config: locate("AWS_CONFIG_FILE", "config"),
        credentials: locate("AWS_SHARED_CREDENTIALS_FILE", "credentials"),
        profile,
        profile_variable,
    }
}

fn expand_home(path: &str, home: Option<&Path>) -> Option<PathBuf> {
    if path == "~" {
        return home.map(Path::to_path_buf);
    }
    match path.strip_prefix("~/").or_else(|| path.strip_prefix("~\\")) {
        Some(rest) => home.map(|h| h.join(rest)),
        None => Some(PathBuf::from(path)),
    }
}

/// The contents of the shared files (`None` for a file that does not exist).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct SharedFiles<'a> {
    /// Text of the config file.
    pub config: Option<&'a str>,
    /// Text of the credentials file.
    pub credentials: Option<&'a str>,
}

/// What one profile provides.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ProfileSettings {
    /// The profile name.
    pub name: String,
    /// Its static credentials, if it has a key pair.
    pub credentials: Option<Credentials>,
    /// Its `region`.
    pub region: Option<String>,
    /// Its `endpoint_url`.
    pub endpoint_url: Option<String>,
}

/// Resolves one profile from both files; values in the credentials file win over the config
/// file's. `Ok(None)` when neither file defines the profile.
pub fn resolve_profile(
    name: &str,
    files: &SharedFiles<'_>,
) -> Result<Option<ProfileSettings>, CredentialsError> {
    let config = files
        .config
        .map(|t| ProfileSet::parse(t, FileKind::Config))
        .transpose()?;
    let creds = files
        .credentials
        .map(|t| ProfileSet::parse(t, FileKind::Credentials))
        .transpose()?;
    let from_config = config.as_ref().and_then(|s| s.get(name));
    let from_creds = creds.as_ref().and_then(|s| s.get(name));
    if from_config.is_none() && from_creds.is_none() {
        return Ok(None);
    }
    let mut merged = Profile::default();
    if let Some(p) = from_config {
        merged.merge_from(p);
    }
    if let Some(p) = from_creds {
        merged.merge_from(p);
    }
    let value = |key| merged.get(key).filter(|v| !v.is_empty()).map(str::to_owned);
    const AKID: &str = "aws_access_key_id";
    const SECRET: &str = "aws_secret_access_key";
    let credentials = match (value(AKID), value(SECRET)) {
        (None, None) => None,
        (Some(_), None) => {
            return Err(CredentialsError::IncompleteProfile {
                profile: name.to_owned(),
                present: AKID,
                missing: SECRET,
            });
        }
        (None, Some(_)) => {
            return Err(CredentialsError::IncompleteProfile {
                profile: name.to_owned(),
                present: SECRET,
                missing: AKID,
            });
        }
        (Some(a), Some(s)) => {
            let mut c = Credentials::new(a, s);
            if let Some(token) = value("aws_session_token") {
                c = c.with_session_token(token);
            }
            Some(c)
        }
    };
    Ok(Some(ProfileSettings {
        name: name.to_owned(),
        credentials,
        region: value("region"),
        endpoint_url: value("endpoint_url"),
    }))
}

/// Settings given directly by the program (flags, constructor arguments); they win over
/// everything else.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Explicit {
    /// Credentials.
    pub credentials: Option<Credentials>,
    /// Region.
    pub region: Option<String>,
    /// Endpoint URL.
    pub endpoint_url: Option<String>,
}

/// Where resolved credentials came from.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum CredentialSource {
    /// Given by the program.
    Explicit,
    /// The `AWS_*` environment variables.
    Environment,
    /// A shared-file profile (named).
    Profile(String),
}

/// The result of [`resolve`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Resolved {
    /// The credentials to sign with.
    pub credentials: Credentials,
    /// Where they came from.
    pub source: CredentialSource,
    /// The region (explicit > `AWS_REGION`/`AWS_DEFAULT_REGION` > profile), if any.
    pub region: Option<String>,
    /// The endpoint (explicit > `AWS_ENDPOINT_URL_KINESIS_VIDEO`/`AWS_ENDPOINT_URL` > profile
    /// `endpoint_url`), if any; `None` means the AWS endpoint for the region.
    pub endpoint_url: Option<String>,
    /// The profile that was consulted.
    pub profile: String,
}

/// Resolves credentials, region and endpoint in the order explicit > environment > profile.
///
/// `files` holds the contents of the files [`shared_file_paths`] named (read by the caller). A
/// profile chosen by `AWS_PROFILE` that no file defines is an error unless explicit credentials
/// were given; a malformed shared file is an error with its line number.
pub fn resolve<E: Env + ?Sized>(
    explicit: &Explicit,
    env: &E,
    files: &SharedFiles<'_>,
) -> Result<Resolved, CredentialsError> {
    let paths = shared_file_paths(env, None);
    let profile = resolve_profile(&paths.profile, files)?;
    if let (None, Some(variable), None) = (&profile, paths.profile_variable, &explicit.credentials)
    {
        return Err(CredentialsError::ProfileNotFound {
            profile: paths.profile,
            variable,
        });
    }
    let (credentials, source) = if let Some(c) = &explicit.credentials {
        (c.clone(), CredentialSource::Explicit)
    } else if let Some(c) = credentials_from_env(env)? {
        (c, CredentialSource::Environment)
    } else if let Some(c) = profile.as_ref().and_then(|p| p.credentials.clone()) {
        (c, CredentialSource::Profile(paths.profile.clone()))
    } else {
        let detail = match (
            files.config.is_some(),
            files.credentials.is_some(),
            &profile,
        ) {
            (false, false, _) => "; no shared config or credentials file was found".to_owned(),
            (_, _, None) => format!("; the shared files define no profile {:?}", paths.profile),
            (_, _, Some(_)) => format!("; profile {:?} has no access keys", paths.profile),
        };
        return Err(CredentialsError::NoCredentials {
            profile: paths.profile,
            detail,
        });
    };
    let region = explicit
        .region
        .clone()
        .or_else(|| region_from_env(env))
        .or_else(|| profile.as_ref().and_then(|p| p.region.clone()));
    let endpoint_url = explicit.endpoint_url.clone().or_else(|| {
        if endpoints_ignored(env) {
            None
        } else {
            endpoint_from_env(env).or_else(|| profile.as_ref().and_then(|p| p.endpoint_url.clone()))
        }
    });
    Ok(Resolved {
        credentials,
        source,
        region,
        endpoint_url,
        profile: paths.profile,
    })
}
