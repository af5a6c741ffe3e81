//! The AWS IoT credentials provider, as cameras use it: a `GET` over mutual TLS that trades the
//! device certificate for temporary credentials (api reference §6, producer reference §3.3).
//!
//! This module builds the request and parses the response; the transport supplies the mTLS
//! connection (device certificate and key), with the C producer's timeouts of 3 s to connect and
//! 5 s to complete.

use serde::Deserialize;

use super::Credentials;
use super::time::parse_rfc3339;

/// The header carrying the IoT thing name.
pub const THING_NAME_HEADER: &str = "x-amzn-iot-thingname";
/// Largest response body parsed (real ones are about 1.5 KiB).
pub const MAX_RESPONSE_LEN: usize = 64 * 1024;
/// Longest role alias or thing name IoT allows.
const MAX_NAME_LEN: usize = 128;

/// A failure building the IoT credentials request or reading its response.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum IotError {
    /// The endpoint is not a bare host name (with an optional `https://` and port).
    #[error(
        "invalid IoT credentials endpoint {0:?}: expected a host such as \
         abc123.credentials.iot.us-east-1.amazonaws.com (from `aws iot describe-endpoint \
         --endpoint-type iot:CredentialProvider`)"
    )]
    InvalidEndpoint(String),
    /// The role alias has characters or a length IoT does not allow.
    #[error("invalid IoT role alias {0:?}: expected 1 to 128 characters from [A-Za-z0-9_=,@-]")]
    InvalidRoleAlias(String),
    /// The thing name has characters or a length IoT does not allow.
    #[error("invalid IoT thing name {0:?}: expected 1 to 128 characters from [A-Za-z0-9:_-]")]
    InvalidThingName(String),
    /// The response body is larger than [`MAX_RESPONSE_LEN`].
    #[error("IoT credentials response is {len} bytes; at most {limit} are accepted")]
    TooLarge {
        /// Body length.
        len: usize,
        /// The cap.
        limit: usize,
    },
    /// The provider answered with a non-2xx status.
    #[error("IoT credentials provider answered HTTP {status}: {message}")]
    Service {
        /// HTTP status code.
        status: u16,
        /// The `message` of the error body, or the start of the body.
        message: String,
    },
    /// The body is not the expected JSON.
    #[error("IoT credentials response is not valid JSON: {0}")]
    Json(String),
    /// A required field is missing or empty.
    #[error("IoT credentials response has no credentials.{0}")]
    MissingField(&'static str),
    /// The `expiration` is not an RFC 3339 timestamp.
    #[error("IoT credentials response has a bad expiration: {0}")]
    BadExpiration(#[from] super::time::TimestampError),
}

/// Builds `GET https://<endpoint>/role-aliases/<role_alias>/credentials` with the
/// `x-amzn-iot-thingname` header.
///
/// `endpoint` is the account's credentials-provider host, optionally prefixed by `https://`
/// and followed by a port or a trailing `/`.
pub fn credentials_request(
    endpoint: &str,
    role_alias: &str,
    thing_name: &str,
) -> Result<http::Request<()>, IotError> {
    let host = endpoint.strip_prefix("https://").unwrap_or(endpoint);
    let host = host.strip_suffix('/').unwrap_or(host);
    let host_ok = !host.is_empty()
        && host.len() <= 253 + 6
        && host
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'-' | b':' | b'[' | b']'));
    if !host_ok {
        return Err(IotError::InvalidEndpoint(
            endpoint.chars().take(300).collect(),
        ));
    }
    if !valid_name(role_alias, |b| {
        matches!(b, b'_' | b'=' | b',' | b'@' | b'-')
    }) {
        return Err(IotError::InvalidRoleAlias(
            role_alias.chars().take(200).collect(),
        ));
    }
    if !valid_name(thing_name, |b| matches!(b, b':' | b'_' | b'-')) {
        return Err(IotError::InvalidThingName(
            thing_name.chars().take(200).collect(),
        ));
    }
    http::Request::get(format!(
        "https://{host}/role-aliases/{role_alias}/credentials"
    ))
    .header(THING_NAME_HEADER, thing_name)
    .header(http::header::ACCEPT, "application/json")
    .body(())
    .map_err(|_| IotError::InvalidEndpoint(endpoint.chars().take(300).collect()))
}

fn valid_name(name: &str, extra: impl Fn(u8) -> bool) -> bool {
    (1..=MAX_NAME_LEN).contains(&name.len())
        && name.bytes().all(|b| b.is_ascii_alphanumeric() || extra(b))
}

#[derive(Deserialize)]
struct Body {
    credentials: Option<Fields>,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct Fields {
    access_key_id: Option<String>,
    secret_access_key: Option<String>,
    session_token: Option<String>,
    expiration: Option<String>,
}

#[derive(Deserialize)]
struct ErrorBody {
    message: Option<String>,
}

/// Parses the provider's response: `{"credentials":{"accessKeyId", "secretAccessKey",
/// "sessionToken", "expiration"}}`, with `expiration` in RFC 3339.
///
/// A non-2xx `status` gives [`IotError::Service`] with the body's `message`.
pub fn parse_credentials_response(status: u16, body: &[u8]) -> Result<Credentials, IotError> {
    if body.len() > MAX_RESPONSE_LEN {
        return Err(IotError::TooLarge {
            len: body.len(),
            limit: MAX_RESPONSE_LEN,
        });
    }
    if !(200..300).contains(&status) {
        let message = serde_json::from_slice::<ErrorBody>(body)
            .ok()
            .and_then(|b| b.message)
            .unwrap_or_else(|| String::from_utf8_lossy(body).into_owned());
        return Err(IotError::Service {
            status,
            message: message.chars().take(256).collect(),
        });
    }
    let parsed: Body = serde_json::from_slice(body).map_err(|e| IotError::Json(e.to_string()))?;
    let fields = parsed
        .credentials
        .ok_or(IotError::MissingField("(the credentials object)"))?;
    let required = |value: Option<String>, name| {
        value
            .filter(|v| !v.is_empty())
            .ok_or(IotError::MissingField(name))
    };
    let access_key_id = required(fields.access_key_id, "accessKeyId")?;
    let secret = required(fields.secret_access_key, "secretAccessKey")?;
    let token = required(fields.session_token, "sessionToken")?;
    let expiration = required(fields.expiration, "expiration")?;
    let expiry = parse_rfc3339(&expiration)?;
    Ok(Credentials::new(access_key_id, secret)
        .with_session_token(token)
        .with_expiry(expiry))
}
