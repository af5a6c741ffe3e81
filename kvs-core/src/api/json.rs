//! JSON timestamps: epoch seconds as JSON numbers.
//!
//! The models' `timestamp` members carry no `timestampFormat`, so rest-json sends them as epoch
//! seconds: botocore writes whole seconds (`1705489836`), Java writes doubles in exponent form
//! (`1.705489836421E9`), the service writes milliseconds precision. [`Timestamp`] accepts all of
//! them and writes `1511852109.126`.

use core::fmt;
use serde::de::{self, Visitor};
use serde::{Deserialize, Deserializer, Serialize, Serializer};

/// Largest accepted timestamp: year ~5138 (10^11 seconds), so milliseconds fit easily.
pub const MAX_EPOCH_SECONDS: u64 = 100_000_000_000;

/// A point in time with millisecond precision, as epoch milliseconds (UTC, not before 1970).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Default)]
pub struct Timestamp(pub u64);

impl Timestamp {
    /// From epoch milliseconds.
    pub const fn from_millis(ms: u64) -> Self {
        Timestamp(ms)
    }

    /// From whole epoch seconds.
    pub const fn from_secs(secs: u64) -> Self {
        Timestamp(secs.saturating_mul(1000))
    }

    /// Epoch milliseconds.
    pub const fn as_millis(self) -> u64 {
        self.0
    }

    /// Epoch seconds as a JSON-ready double (`1511852109.126`).
    pub fn as_secs_f64(self) -> f64 {
        // Exact for every representable millisecond below MAX_EPOCH_SECONDS: the shortest
        // round-trip rendering of the nearest double is the three-decimal text.
        (self.0 / 1000) as f64 + (self.0 % 1000) as f64 / 1000.0
    }

    /// Parses epoch seconds given as a JSON number (`1705489836`, `1705489836.421`,
    /// `1.705489836421E9`), rounding to the millisecond. Rejects negative, non-finite and
    /// implausibly large values.
    pub fn from_secs_f64(secs: f64) -> Result<Self, TimestampError> {
        if !secs.is_finite() || secs < 0.0 || secs > MAX_EPOCH_SECONDS as f64 {
            return Err(TimestampError(secs.to_string()));
        }
        Ok(Timestamp((secs * 1000.0).round() as u64))
    }

    /// Parses epoch seconds from text, in the forms a JSON number can take (integer,
    /// fraction, exponent).
    pub fn parse_secs(text: &str) -> Result<Self, TimestampError> {
        let text = text.trim();
        let ok = !text.is_empty()
            && text.len() <= 64
            && text
                .bytes()
                .all(|b| b.is_ascii_digit() || matches!(b, b'.' | b'e' | b'E' | b'+' | b'-'));
        if !ok {
            return Err(TimestampError(text.chars().take(64).collect()));
        }
        if text.bytes().all(|b| b.is_ascii_digit()) {
            return match text.parse::<u64>() {
                Ok(secs) if secs <= MAX_EPOCH_SECONDS => Ok(Timestamp::from_secs(secs)),
                _ => Err(TimestampError(text.to_owned())),
            };
        }
        text.parse::<f64>()
            .map_err(|_| TimestampError(text.to_owned()))
            .and_then(Self::from_secs_f64)
    }
}

impl fmt::Display for Timestamp {
    /// Seconds with exactly three decimals, as the service writes them in tags.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&crate::fragment::format_seconds_millis(self.0))
    }
}

/// A value that is not an acceptable epoch-seconds timestamp.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
#[error("invalid timestamp {0:?}: expected non-negative epoch seconds")]
pub struct TimestampError(pub String);

impl Serialize for Timestamp {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        if self.0.is_multiple_of(1000) {
            serializer.serialize_u64(self.0 / 1000)
        } else {
            serializer.serialize_f64(self.as_secs_f64())
        }
    }
}

struct TimestampVisitor;

impl Visitor<'_> for TimestampVisitor {
    type Value = Timestamp;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("epoch seconds as a number")
    }

    fn visit_u64<E: de::Error>(self, v: u64) -> Result<Timestamp, E> {
        if v > MAX_EPOCH_SECONDS {
            return Err(E::custom(TimestampError(v.to_string())));
        }
        Ok(Timestamp::from_secs(v))
    }

    fn visit_i64<E: de::Error>(self, v: i64) -> Result<Timestamp, E> {
        u64::try_from(v)
            .map_err(|_| E::custom(TimestampError(v.to_string())))
            .and_then(|v| self.visit_u64(v))
    }

    fn visit_f64<E: de::Error>(self, v: f64) -> Result<Timestamp, E> {
        Timestamp::from_secs_f64(v).map_err(E::custom)
    }
}

impl<'de> Deserialize<'de> for Timestamp {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        deserializer.deserialize_any(TimestampVisitor)
    }
}
