//! KVS fragment metadata: the `AWS_KINESISVIDEO_*` tag names, fragment numbers and the
//! seconds-with-milliseconds timestamps the service writes in its tags.

use core::fmt;
use core::str::FromStr;

/// Tag names KVS and its producers use.
pub mod tag {
    /// Fragment number (47 digits), before each Cluster in GetMedia output.
    pub const FRAGMENT_NUMBER: &str = "AWS_KINESISVIDEO_FRAGMENT_NUMBER";
    /// Ingestion time, `<s>.<ms>`.
    pub const SERVER_TIMESTAMP: &str = "AWS_KINESISVIDEO_SERVER_TIMESTAMP";
    /// Producer time of the fragment, `<s>.<ms>`.
    pub const PRODUCER_TIMESTAMP: &str = "AWS_KINESISVIDEO_PRODUCER_TIMESTAMP";
    /// Distance to the newest fragment in ms, after the Cluster.
    pub const MILLIS_BEHIND_NOW: &str = "AWS_KINESISVIDEO_MILLIS_BEHIND_NOW";
    /// Where to resume reading (equals the fragment number), after the Cluster.
    pub const CONTINUATION_TOKEN: &str = "AWS_KINESISVIDEO_CONTINUATION_TOKEN";
    /// In-band error name, such as `FRAGMENT_NOT_FOUND`.
    pub const ERROR_CODE: &str = "AWS_KINESISVIDEO_ERROR_CODE";
    /// In-band error number, such as `4000`.
    pub const ERROR_ID: &str = "AWS_KINESISVIDEO_ERROR_ID";
    /// Documented (but not observed) spelling of the error code tag.
    pub const EXCEPTION_ERROR_CODE: &str = "AWS_KINESISVIDEO_EXCEPTION_ERROR_CODE";
    /// Documented (but not observed) spelling of the server timestamp tag.
    pub const SERVER_SIDE_TIMESTAMP: &str = "AWS_KINESISVIDEO_SERVER_SIDE_TIMESTAMP";
    /// Documented (but not observed) spelling of the producer timestamp tag.
    pub const PRODUCER_SIDE_TIMESTAMP: &str = "AWS_KINESISVIDEO_PRODUCER_SIDE_TIMESTAMP";
    /// End-of-fragment marker the producer writes after a fragment's last frame.
    pub const END_OF_FRAGMENT: &str = "AWS_KINESISVIDEO_END_OF_FRAGMENT";
    /// Prefix reserved for the service: producers may not use it for their own metadata.
    pub const RESERVED_PREFIX: &str = "AWS";
}

/// What KVS says about a fragment through its `AWS_KINESISVIDEO_*` tags.
///
/// Every field is optional: leading tags carry the number and timestamps, trailing tags carry
/// millis-behind-now and the continuation token, error chunks carry the error code and id.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct FragmentMetadata {
    /// `AWS_KINESISVIDEO_FRAGMENT_NUMBER`.
    pub fragment_number: Option<String>,
    /// `AWS_KINESISVIDEO_SERVER_TIMESTAMP`, epoch milliseconds.
    pub server_timestamp_ms: Option<u64>,
    /// `AWS_KINESISVIDEO_PRODUCER_TIMESTAMP`, epoch milliseconds.
    pub producer_timestamp_ms: Option<u64>,
    /// `AWS_KINESISVIDEO_MILLIS_BEHIND_NOW`.
    pub millis_behind_now: Option<u64>,
    /// `AWS_KINESISVIDEO_CONTINUATION_TOKEN`.
    pub continuation_token: Option<String>,
    /// `AWS_KINESISVIDEO_ERROR_CODE` (or the documented `..._EXCEPTION_ERROR_CODE`).
    pub error_code: Option<String>,
    /// `AWS_KINESISVIDEO_ERROR_ID`.
    pub error_id: Option<u64>,
}

impl FragmentMetadata {
    /// Takes in one tag. Returns `true` when the name is a KVS fragment tag (whether or not its
    /// value parsed), `false` for any other tag, which the caller keeps as a user tag.
    pub fn apply_tag(&mut self, name: &str, value: &str) -> bool {
        match name {
            tag::FRAGMENT_NUMBER => self.fragment_number = Some(value.to_owned()),
            tag::SERVER_TIMESTAMP | tag::SERVER_SIDE_TIMESTAMP => {
                self.server_timestamp_ms = parse_seconds_millis(value);
            }
            tag::PRODUCER_TIMESTAMP | tag::PRODUCER_SIDE_TIMESTAMP => {
                self.producer_timestamp_ms = parse_seconds_millis(value);
            }
            tag::MILLIS_BEHIND_NOW => self.millis_behind_now = value.trim().parse().ok(),
            tag::CONTINUATION_TOKEN => self.continuation_token = Some(value.to_owned()),
            tag::ERROR_CODE | tag::EXCEPTION_ERROR_CODE => self.error_code = Some(value.to_owned()),
            tag::ERROR_ID => self.error_id = value.trim().parse().ok(),
            _ => return false,
        }
        true
    }

    /// True when the service reported an error for this fragment.
    pub fn is_error(&self) -> bool {
        self.error_code.is_some() || self.error_id.is_some()
    }

    /// True once the trailing tags arrived: the fragment was delivered whole (the Java parser's
    /// `isCompleteFragment`).
    pub fn is_complete(&self) -> bool {
        self.millis_behind_now.is_some() && self.continuation_token.is_some()
    }
}

/// Writes epoch milliseconds as KVS writes timestamps in tags: seconds with exactly three
/// decimals (`1511852109.126`, `0.000`).
pub fn format_seconds_millis(ms: u64) -> String {
    format!("{}.{:03}", ms / 1000, ms % 1000)
}

/// Parses a decimal seconds value (`1511852109.126`, `5`, `0.5`) into milliseconds, truncating
/// digits beyond the millisecond. `None` for anything else.
pub fn parse_seconds_millis(text: &str) -> Option<u64> {
    let text = text.trim();
    let (secs, frac) = match text.split_once('.') {
        Some((s, f)) => (s, f),
        None => (text, ""),
    };
    if secs.is_empty() || !secs.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    if !frac.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    let secs: u64 = secs.parse().ok()?;
    let mut millis = 0u64;
    for i in 0..3 {
        let digit = frac.as_bytes().get(i).map_or(0, |b| u64::from(b - b'0'));
        millis = millis * 10 + digit;
    }
    secs.checked_mul(1000)?.checked_add(millis)
}

/// A KVS fragment number: the decimal form of `1<<156 | seq<<92 | server_ms<<28 | rand28`.
///
/// Always 47 digits for the numbers this type mints, so string order equals numeric order, as
/// with the real service. Parsing accepts any 1–128 digit string (the API's constraint).
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct FragmentNumber(String);

/// A string that is not a valid fragment number.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("invalid fragment number {0:?}: expected 1 to 128 decimal digits")]
pub struct InvalidFragmentNumber(pub String);

impl FragmentNumber {
    /// Mints the fragment number of the `seq`-th fragment of a stream, ingested at `server_ms`
    /// (epoch ms), with 28 bits of caller-supplied randomness (the core draws none itself).
    pub fn mint(seq: u64, server_ms: u64, random: u32) -> Self {
        // 157 bits do not fit in u128: split as (1<<156 | seq<<92 | server_ms<<28 | rand) =
        // high * 2^64 + low, then print the 3-limb number in decimal.
        let rand = u128::from(random & 0x0FFF_FFFF);
        let low_bits: u128 = (u128::from(server_ms) << 28) | rand; // bits 0..92
        let low = low_bits & u128::from(u64::MAX);
        let mid_from_low = low_bits >> 64; // bits 64..92 of the value
        // Bits 64.. of the value: seq<<28 | (server_ms>>36) | 1<<92.
        let high: u128 = (1u128 << 92) | (u128::from(seq) << 28) | mid_from_low;
        FragmentNumber(to_decimal(high, low))
    }

    /// The sequence counter (bits 92..156), when this number has the minted layout.
    pub fn sequence(&self) -> Option<u64> {
        let (high, _) = from_decimal(&self.0)?;
        Some(((high >> 28) & u128::from(u64::MAX)) as u64)
    }

    /// The server timestamp in epoch ms (bits 28..92), when this number has the minted layout.
    pub fn server_timestamp_ms(&self) -> Option<u64> {
        let (high, low) = from_decimal(&self.0)?;
        let bits = ((high & 0x0FFF_FFFF) << 64) | low;
        Some(((bits >> 28) & u128::from(u64::MAX)) as u64)
    }

    /// The decimal digits.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl FromStr for FragmentNumber {
    type Err = InvalidFragmentNumber;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        if s.is_empty() || s.len() > 128 || !s.bytes().all(|b| b.is_ascii_digit()) {
            return Err(InvalidFragmentNumber(s.to_owned()));
        }
        Ok(FragmentNumber(s.to_owned()))
    }
}

impl fmt::Display for FragmentNumber {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// Decimal text of `high * 2^64 + low`, where `high < 2^96`.
fn to_decimal(high: u128, low: u128) -> String {
    // Long division of the 2-limb number by 10^19 repeatedly.
    const CHUNK: u128 = 10_000_000_000_000_000_000; // 10^19 < 2^64
    let (mut hi, mut lo) = (high, low);
    let mut parts = Vec::new();
    while hi != 0 || lo != 0 {
        let q_hi = hi / CHUNK;
        let r_hi = hi % CHUNK;
        // (r_hi * 2^64 + lo) / CHUNK: r_hi < 2^64, so split lo into two 32-bit halves.
        let acc = (r_hi << 32) | (lo >> 32);
        let q1 = acc / CHUNK;
        let r1 = acc % CHUNK;
        let acc2 = (r1 << 32) | (lo & 0xFFFF_FFFF);
        let q2 = acc2 / CHUNK;
        let r2 = acc2 % CHUNK;
        parts.push(r2 as u64);
        hi = q_hi;
        lo = (q1 << 32) | q2;
    }
    let mut out = String::new();
    for (i, part) in parts.iter().rev().enumerate() {
        if i == 0 {
            out.push_str(&part.to_string());
        } else {
            out.push_str(&format!("{part:019}"));
        }
    }
    if out.is_empty() {
        out.push('0');
    }
    out
}

/// Parses decimal digits into `(high, low)` with value `high * 2^64 + low`, `None` on overflow.
fn from_decimal(s: &str) -> Option<(u128, u128)> {
    let (mut hi, mut lo) = (0u128, 0u128);
    for b in s.bytes() {
        if !b.is_ascii_digit() {
            return None;
        }
        let d = u128::from(b - b'0');
        let lo_full = lo * 10 + d;
        let carry = lo_full >> 64;
        lo = lo_full & u128::from(u64::MAX);
        hi = hi.checked_mul(10)?.checked_add(carry)?;
    }
    Some((hi, lo))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn seconds_with_millis() {
        assert_eq!(format_seconds_millis(1_511_852_109_126), "1511852109.126");
        assert_eq!(format_seconds_millis(0), "0.000");
        assert_eq!(format_seconds_millis(5_000), "5.000");
        assert_eq!(
            parse_seconds_millis("1511852109.126"),
            Some(1_511_852_109_126)
        );
        assert_eq!(parse_seconds_millis("0.5"), Some(500));
        assert_eq!(parse_seconds_millis("7"), Some(7_000));
        assert_eq!(parse_seconds_millis("1.23456"), Some(1_234));
        assert_eq!(parse_seconds_millis("-1.0"), None);
        assert_eq!(parse_seconds_millis("abc"), None);
        assert_eq!(parse_seconds_millis(""), None);
    }

    #[test]
    fn minted_numbers_match_the_service_layout() {
        // From a real capture: server timestamp 1511852109126 ms in the middle bits.
        let n = FragmentNumber::mint(1, 1_511_852_109_126, 0x0ABC_DEF1);
        assert_eq!(n.as_str().len(), 47);
        assert_eq!(n.sequence(), Some(1));
        assert_eq!(n.server_timestamp_ms(), Some(1_511_852_109_126));
        let later = FragmentNumber::mint(2, 1_511_852_109_126, 0);
        assert!(later > n, "string order is numeric order");
        let smallest = FragmentNumber::mint(0, 0, 0);
        assert_eq!(
            smallest.as_str(),
            "91343852333181432387730302044767688728495783936"
        ); // 2^156
        assert_eq!(smallest.as_str().len(), 47);
    }

    #[test]
    fn metadata_from_tags() {
        let mut m = FragmentMetadata::default();
        assert!(m.apply_tag(tag::SERVER_TIMESTAMP, "1511852109.126"));
        assert!(m.apply_tag(tag::MILLIS_BEHIND_NOW, "15858"));
        assert!(m.apply_tag(tag::CONTINUATION_TOKEN, "9134"));
        assert!(!m.apply_tag("camera", "front door"));
        assert_eq!(m.server_timestamp_ms, Some(1_511_852_109_126));
        assert!(m.is_complete());
        assert!(!m.is_error());
        assert!(m.apply_tag(tag::ERROR_ID, "4000"));
        assert!(m.is_error());
        assert!("12a".parse::<FragmentNumber>().is_err());
        assert!("".parse::<FragmentNumber>().is_err());
    }
}
