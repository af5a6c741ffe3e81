//! The PutMedia `ErrorId` table (producer reference §2.4) and its retry policy.

use std::fmt;

/// A numeric `ErrorId` carried by an `ERROR` acknowledgement.
///
/// Known codes have associated constants named exactly as the official producer (PIC) names them
/// (`SERVICE_CALL_RESULT_<NAME>`), for example [`ErrorId::FRAGMENT_TIMECODE_NOT_MONOTONIC`]; unknown
/// codes are kept as they are ([`ErrorId::from_code`] never loses information). The constants can
/// be used as `match` patterns.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct ErrorId(u32);

/// One row of the `ErrorId` table.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ErrorInfo {
    /// The numeric id as sent on the wire.
    pub code: u32,
    /// The official producer's name for it (without the `SERVICE_CALL_RESULT_` prefix).
    pub name: &'static str,
    /// What the service documentation says it means.
    pub description: &'static str,
    /// Whether the official producer (PIC `serviceCallResultRetry`) reconnects and retries.
    pub retriable: bool,
}

macro_rules! error_ids {
    ($($konst:ident = $code:literal, $retry:literal, $desc:literal;)*) => {
        impl ErrorId {
            $(
                #[doc = concat!("`", stringify!($code), "` ", stringify!($konst), ": ", $desc, ".")]
                pub const $konst: ErrorId = ErrorId($code);
            )*
        }

        /// Every `ErrorId` the service documents (plus the SDK-only 4507), in code order.
        pub const ERROR_TABLE: &[ErrorInfo] = &[
            $(ErrorInfo {
                code: $code,
                name: stringify!($konst),
                description: $desc,
                retriable: $retry,
            },)*
        ];
    };
}

error_ids! {
    STREAM_READ_ERROR = 4000, true, "error reading the data stream";
    FRAGMENT_SIZE_REACHED = 4001, false, "fragment exceeds the maximum size (50 MB)";
    FRAGMENT_DURATION_REACHED = 4002, false, "fragment exceeds the maximum duration";
    CONNECTION_DURATION_REACHED = 4003, true, "connection exceeds the maximum duration";
    FRAGMENT_TIMECODE_NOT_MONOTONIC = 4004, false,
        "fragment timecode is lower than the previous one within this PutMedia connection";
    MULTI_TRACK_MKV = 4005, false, "more than one track in the MKV (deprecated)";
    INVALID_MKV_DATA = 4006, false, "the MKV data could not be parsed";
    INVALID_PRODUCER_TIMESTAMP = 4007, false, "invalid producer timestamp";
    STREAM_NOT_ACTIVE = 4008, false, "the stream is not active (deleted)";
    FRAGMENT_METADATA_LIMIT_REACHED = 4009, false, "fragment metadata limit reached";
    TRACK_NUMBER_MISMATCH = 4010, false,
        "a block's track number does not match the tracks in the header";
    FRAMES_MISSING_FOR_TRACK = 4011, false, "a fragment has no frames for a declared track";
    MORE_THAN_ALLOWED_TRACKS_FOUND = 4012, false, "more tracks than allowed (3)";
    KMS_KEY_ACCESS_DENIED = 4500, false, "KMS denied access to the stream's key";
    KMS_KEY_DISABLED = 4501, false, "the stream's KMS key is disabled";
    KMS_KEY_VALIDATION_ERROR = 4502, false, "KMS returned a validation error";
    KMS_KEY_UNAVAILABLE = 4503, false, "the stream's KMS key is unavailable";
    KMS_KEY_INVALID_USAGE = 4504, false, "invalid usage of the stream's KMS key";
    KMS_KEY_INVALID_STATE = 4505, false, "the stream's KMS key is in an invalid state";
    KMS_KEY_NOT_FOUND = 4506, false, "the stream's KMS key was not found";
    STREAM_DELETED = 4507, false, "the stream has been or is being deleted (SDK only)";
    ACK_INTERNAL_ERROR = 5000, true, "internal service error";
    FRAGMENT_ARCHIVAL_ERROR = 5001, true, "the service failed to persist the fragment";
}

/// The row the official producer falls back to for codes it does not know.
const UNKNOWN: ErrorInfo = ErrorInfo {
    code: 7000,
    name: "UNKNOWN_ACK_ERROR",
    description: "an error id the producer does not know",
    retriable: true,
};

impl ErrorId {
    /// The id for a numeric code; unknown codes are kept (see [`ErrorId::is_known`]).
    pub const fn from_code(code: u32) -> Self {
        ErrorId(code)
    }

    /// The numeric code as sent on the wire.
    pub const fn code(self) -> u32 {
        self.0
    }

    /// The table row for this code, or `None` when the code is not in [`ERROR_TABLE`].
    pub fn info(self) -> Option<&'static ErrorInfo> {
        ERROR_TABLE.iter().find(|row| row.code == self.0)
    }

    /// Whether the code is in [`ERROR_TABLE`].
    pub fn is_known(self) -> bool {
        self.info().is_some()
    }

    /// The official producer's name, or `UNKNOWN_ACK_ERROR` for codes it does not know.
    pub fn name(self) -> &'static str {
        self.info().unwrap_or(&UNKNOWN).name
    }

    /// A one-line description of the code.
    pub fn description(self) -> &'static str {
        self.info().unwrap_or(&UNKNOWN).description
    }

    /// Whether the official producer reconnects and resends after this error.
    ///
    /// Unknown codes count as retriable, as the official producer maps them to
    /// `UNKNOWN_ACK_ERROR`, which it retries.
    pub fn is_retriable(self) -> bool {
        self.info().unwrap_or(&UNKNOWN).retriable
    }
}

impl From<u32> for ErrorId {
    fn from(code: u32) -> Self {
        ErrorId(code)
    }
}

impl fmt::Display for ErrorId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} ({}: {})", self.0, self.name(), self.description())
    }
}
