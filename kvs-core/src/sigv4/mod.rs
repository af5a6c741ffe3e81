//! AWS Signature Version 4 as KVS uses it: signing (through the aws-sigv4 crate with feature
//! `sign`, or natively) and verification (always native, no aws-sigv4).
//!
//! All five KVS services sign as `kinesisvideo`. Real clients disagree on the details, and the
//! verifier accepts all of them:
//!
//! | client | payload hash | `x-amz-content-sha256` | session token |
//! |---|---|---|---|
//! | botocore, AWS CLI | SHA-256 of the body | absent | signed |
//! | C producer, streaming PutMedia | SHA-256 of the empty string | absent | added unsigned |
//! | Java producer, PutMedia | `UNSIGNED-PAYLOAD` | `UNSIGNED-PAYLOAD` | signed |
//!
//! Signing: [`SigningParams`] + [`sign`] (aws-sigv4) or [`sign_native`] (our canonicalisation,
//! for builds without `sign`); both return a [`SigningOutput`] of headers (or presigned query
//! parameters) to add. Verification: [`Verifier::verify`] with a [`RequestView`], what the
//! caller knows about the body ([`Payload`]), a [`CredentialLookup`] key store, a caller-owned
//! [`SigningKeyCache`] and `now`. Failures are [`AuthError`]s carrying the service's error name
//! and HTTP status.
//!
//! Nothing here reads the clock: signing time and `now` are parameters.

pub mod canonical;
mod error;
mod request;
mod sign;
mod verify;

pub use canonical::{
    ALGORITHM, EMPTY_SHA256_HEX, KINESIS_VIDEO_SERVICE, PathOptions, SCOPE_TERMINATOR,
    UNSIGNED_PAYLOAD,
};
pub use error::{AuthError, SIGNATURE_MISMATCH_MESSAGE, SignError};
pub use request::RequestView;
pub use sign::{
    DEFAULT_EXCLUDED_HEADERS, PayloadSigning, SessionTokenSigning, SignatureLocation,
    SigningCredentials, SigningOutput, SigningParams, sign_native,
};
#[cfg(feature = "sign")]
pub use sign::{sign, sign_http};
pub use verify::{
    AuthForm, CredentialLookup, Limits, MAX_PRESIGN_EXPIRES_SECS, Payload, PayloadCoverage,
    SigningKeyCache, StaticCredentials, StoredCredential, Verified, Verifier,
};

/// The clock skew KVS allows between the signing time and its own clock.
pub const MAX_CLOCK_SKEW: std::time::Duration = std::time::Duration::from_secs(300);
