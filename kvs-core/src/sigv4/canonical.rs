//! Canonicalisation shared by the native signer and the verifier: URI encoding, path
//! normalisation, canonical query strings, header value folding, the signing-key chain and the
//! `YYYYMMDDTHHMMSSZ` timestamps. Nothing here reads a clock.

use crate::calendar::{civil_from_days, days_from_civil, days_in_month};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use hmac::{Hmac, Mac};
use sha2::{Digest, Sha256};

/// The only algorithm SigV4 defines for HMAC signing.
pub const ALGORITHM: &str = "AWS4-HMAC-SHA256";
/// Literal payload hash clients send when the body is not covered by the signature (Java producer).
pub const UNSIGNED_PAYLOAD: &str = "UNSIGNED-PAYLOAD";
/// Hex SHA-256 of the empty string: the C producer's payload hash for streaming PutMedia.
pub const EMPTY_SHA256_HEX: &str =
    "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855";
/// Last element of every credential scope.
pub const SCOPE_TERMINATOR: &str = "aws4_request";
/// The signing name shared by all five KVS services.
pub const KINESIS_VIDEO_SERVICE: &str = "kinesisvideo";

type HmacSha256 = Hmac<Sha256>;

/// How the request path becomes the canonical URI.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct PathOptions {
    /// Remove `.` and `..` segments and merge repeated slashes (every service but S3).
    pub normalize: bool,
    /// Percent-encode the path as received again, so `%` becomes `%25` (every service but S3).
    /// When false, existing escapes and URI-legal characters are kept as they are.
    pub double_encode: bool,
}

impl PathOptions {
    /// What KVS (and every non-S3 service) does: normalise, then encode the received path again.
    pub const KVS: PathOptions = PathOptions {
        normalize: true,
        double_encode: true,
    };
    /// S3 style: the path is used as received (only bytes illegal in a URI are escaped).
    pub const S3: PathOptions = PathOptions {
        normalize: false,
        double_encode: false,
    };
}

impl Default for PathOptions {
    fn default() -> Self {
        PathOptions::KVS
    }
}

fn is_unreserved(b: u8) -> bool {
    b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.' | b'~')
}

/// Bytes that may appear verbatim in a URI path (RFC 3986 `pchar`, `/` and `%`).
fn is_path_legal(b: u8) -> bool {
    is_unreserved(b)
        || matches!(
            b,
            b'/' | b'%'
                | b'!'
                | b'$'
                | b'&'
                | b'\''
                | b'('
                | b')'
                | b'*'
                | b'+'
                | b','
                | b';'
                | b'='
                | b':'
                | b'@'
        )
}

const HEX_UPPER: &[u8; 16] = b"0123456789ABCDEF";

fn push_escaped(out: &mut String, b: u8) {
    out.push('%');
    out.push(char::from(HEX_UPPER[usize::from(b >> 4)]));
    out.push(char::from(HEX_UPPER[usize::from(b & 0x0f)]));
}

/// Percent-encodes every byte outside the RFC 3986 unreserved set (`A-Za-z0-9-_.~`), upper-case
/// hex, as SigV4 requires for query keys and values.
pub fn uri_encode(input: &[u8], out: &mut String) {
    for &b in input {
        if is_unreserved(b) {
            out.push(char::from(b));
        } else {
            push_escaped(out, b);
        }
    }
}

/// Removes dot segments and empty segments, keeping a trailing slash, as aws-sigv4, botocore and
/// aws-c-auth do. An empty path becomes `/`.
pub fn normalize_path(path: &str) -> String {
    if path.is_empty() {
        return "/".to_owned();
    }
    let mut segments: Vec<&str> = Vec::new();
    for segment in path.split('/') {
        match segment {
            "" | "." => {}
            ".." => {
                segments.pop();
            }
            other => segments.push(other),
        }
    }
    let mut out = String::with_capacity(path.len() + 1);
    for segment in &segments {
        out.push('/');
        out.push_str(segment);
    }
    let trailing = ["/", "/.", "/.."].iter().any(|s| path.ends_with(s));
    if out.is_empty() || (trailing && !out.ends_with('/')) {
        out.push('/');
    }
    out
}

/// The canonical URI of a received (or to-be-sent) path, without its query.
pub fn canonical_uri(path: &str, options: PathOptions) -> String {
    let normalized;
    let path = if options.normalize {
        normalized = normalize_path(path);
        normalized.as_str()
    } else if path.is_empty() {
        "/"
    } else {
        path
    };
    let mut out = String::with_capacity(path.len() + 8);
    for &b in path.as_bytes() {
        let keep = if options.double_encode {
            is_unreserved(b) || b == b'/'
        } else {
            is_path_legal(b)
        };
        if keep {
            out.push(char::from(b));
        } else {
            push_escaped(&mut out, b);
        }
    }
    out
}

fn hex_value(b: u8) -> Option<u8> {
    match b {
        b'0'..=b'9' => Some(b - b'0'),
        b'a'..=b'f' => Some(b - b'a' + 10),
        b'A'..=b'F' => Some(b - b'A' + 10),
        _ => None,
    }
}

/// Decodes one query component: `%XX` escapes and `+` as a space (as the form decoders of
/// aws-sigv4 and botocore do). A `%` not followed by two hex digits stays literal.
pub fn query_decode(input: &str) -> Vec<u8> {
    let bytes = input.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while let Some(&b) = bytes.get(i) {
        if b == b'%' {
            let hi = bytes.get(i + 1).copied().and_then(hex_value);
            let lo = bytes.get(i + 2).copied().and_then(hex_value);
            if let (Some(hi), Some(lo)) = (hi, lo) {
                out.push((hi << 4) | lo);
                i += 3;
                continue;
            }
        }
        out.push(if b == b'+' { b' ' } else { b });
        i += 1;
    }
    out
}

/// Splits a raw query into decoded `(key, value)` pairs; empty pieces (`a&&b`) are skipped and a
/// key without `=` has an empty value.
pub fn query_pairs(query: &str) -> impl Iterator<Item = (Vec<u8>, Vec<u8>)> + '_ {
    query.split('&').filter(|p| !p.is_empty()).map(|pair| {
        let (k, v) = pair.split_once('=').unwrap_or((pair, ""));
        (query_decode(k), query_decode(v))
    })
}

/// Builds the canonical query string from decoded pairs: each key and value encoded with
/// [`uri_encode`], sorted by encoded key then value, joined as `k=v&...`.
pub fn canonical_query_from_pairs<I, K, V>(pairs: I) -> String
where
    I: IntoIterator<Item = (K, V)>,
    K: AsRef<[u8]>,
    V: AsRef<[u8]>,
{
    let mut encoded: Vec<(String, String)> = pairs
        .into_iter()
        .map(|(k, v)| {
            let mut ek = String::new();
            uri_encode(k.as_ref(), &mut ek);
            let mut ev = String::new();
            uri_encode(v.as_ref(), &mut ev);
            (ek, ev)
        })
        .collect();
    encoded.sort();
    let mut out = String::new();
    for (i, (k, v)) in encoded.iter().enumerate() {
        if i > 0 {
            out.push('&');
        }
        out.push_str(k);
        out.push('=');
        out.push_str(v);
    }
    out
}

/// Canonical query string of a raw received query (without the leading `?`).
pub fn canonical_query(query: &str) -> String {
    canonical_query_from_pairs(query_pairs(query))
}

fn is_header_space(b: u8) -> bool {
    matches!(b, b' ' | b'\t' | b'\r' | b'\n')
}

/// Appends one header value in canonical form: leading and trailing whitespace removed and every
/// inner run of whitespace (spaces, tabs, obs-fold line breaks) replaced by one space.
pub fn push_header_value(raw: &[u8], out: &mut Vec<u8>) {
    let mut pending_space = false;
    let mut wrote = false;
    for &b in raw {
        if is_header_space(b) {
            pending_space = wrote;
        } else {
            if pending_space {
                out.push(b' ');
                pending_space = false;
            }
            out.push(b);
            wrote = true;
        }
    }
}

/// Lower-case hex SHA-256 of `data`.
pub fn sha256_hex(data: &[u8]) -> String {
    hex::encode(Sha256::digest(data))
}

fn hmac(key: &[u8], data: &[u8]) -> [u8; 32] {
    // HMAC accepts keys of any length, so `new_from_slice` cannot fail here.
    let mut mac = match HmacSha256::new_from_slice(key) {
        Ok(mac) => mac,
        Err(_) => return [0; 32],
    };
    mac.update(data);
    mac.finalize().into_bytes().into()
}

/// Derives the SigV4 signing key: HMAC chain of `"AWS4" + secret`, the scope date (`YYYYMMDD`),
/// region, service and `aws4_request`.
pub fn signing_key(secret_access_key: &str, date: &str, region: &str, service: &str) -> [u8; 32] {
    let mut seed = Vec::with_capacity(4 + secret_access_key.len());
    seed.extend_from_slice(b"AWS4");
    seed.extend_from_slice(secret_access_key.as_bytes());
    let k_date = hmac(&seed, date.as_bytes());
    let k_region = hmac(&k_date, region.as_bytes());
    let k_service = hmac(&k_region, service.as_bytes());
    hmac(&k_service, SCOPE_TERMINATOR.as_bytes())
}

/// Raw HMAC-SHA256 signature of a string to sign.
pub fn signature(signing_key: &[u8; 32], string_to_sign: &[u8]) -> [u8; 32] {
    hmac(signing_key, string_to_sign)
}

/// The credential scope `YYYYMMDD/<region>/<service>/aws4_request`.
pub fn credential_scope(date: &str, region: &str, service: &str) -> String {
    format!("{date}/{region}/{service}/{SCOPE_TERMINATOR}")
}

/// The string to sign: algorithm, timestamp, scope and hex SHA-256 of the canonical request.
pub fn string_to_sign(amz_date: &str, scope: &str, canonical_request_sha256_hex: &str) -> String {
    format!("{ALGORITHM}\n{amz_date}\n{scope}\n{canonical_request_sha256_hex}")
}

/// Formats a time as the SigV4 timestamp `YYYYMMDDTHHMMSSZ` (sub-second part dropped). Returns
/// `None` before 1970 or after year 9999.
pub fn format_amz_date(time: SystemTime) -> Option<String> {
    let secs = time.duration_since(UNIX_EPOCH).ok()?.as_secs();
    let secs = i64::try_from(secs).ok()?;
    let (y, m, d) = civil_from_days(secs.div_euclid(86_400));
    if y > 9999 {
        return None;
    }
    let sod = secs.rem_euclid(86_400);
    Some(format!(
        "{y:04}{m:02}{d:02}T{:02}{:02}{:02}Z",
        sod / 3600,
        (sod / 60) % 60,
        sod % 60
    ))
}

fn digits(s: &[u8]) -> Option<u32> {
    let mut v: u32 = 0;
    for &b in s {
        if !b.is_ascii_digit() {
            return None;
        }
        v = v * 10 + u32::from(b - b'0');
    }
    Some(v)
}

fn to_system_time(y: i64, mo: u32, d: u32, h: u32, mi: u32, s: u32) -> Option<SystemTime> {
    if !(1..=12).contains(&mo) || d == 0 || d > days_in_month(y, mo) || h > 23 || mi > 59 || s > 60
    {
        return None;
    }
    let days = days_from_civil(y, mo, d);
    let secs = days * 86_400 + i64::from(h) * 3600 + i64::from(mi) * 60 + i64::from(s);
    let secs = u64::try_from(secs).ok()?;
    UNIX_EPOCH.checked_add(Duration::from_secs(secs))
}

/// Parses a SigV4 timestamp `YYYYMMDDTHHMMSSZ`.
pub fn parse_amz_date(s: &str) -> Option<SystemTime> {
    let b = s.as_bytes();
    if b.len() != 16 || b.get(8) != Some(&b'T') || b.get(15) != Some(&b'Z') {
        return None;
    }
    let y = digits(b.get(0..4)?)?;
    let mo = digits(b.get(4..6)?)?;
    let d = digits(b.get(6..8)?)?;
    let h = digits(b.get(9..11)?)?;
    let mi = digits(b.get(11..13)?)?;
    let sec = digits(b.get(13..15)?)?;
    to_system_time(i64::from(y), mo, d, h, mi, sec)
}

/// Parses an HTTP `Date` header in RFC 1123 form (`Sun, 30 Aug 2015 12:36:00 GMT`; the zone may
/// also be `UTC`, `+0000` or `-0000`, as Python's `formatdate` writes).
pub fn parse_http_date(s: &str) -> Option<SystemTime> {
    let s = s.trim();
    let rest = match s.split_once(',') {
        Some((_, rest)) => rest.trim_start(),
        None => s,
    };
    let mut parts = rest.split_ascii_whitespace();
    let d = digits(parts.next()?.as_bytes())?;
    let mo_name = parts.next()?;
    const MONTHS: [&str; 12] = [
        "jan", "feb", "mar", "apr", "may", "jun", "jul", "aug", "sep", "oct", "nov", "dec",
    ];
    let mo = MONTHS
        .iter()
        .position(|m| m.eq_ignore_ascii_case(mo_name))
        .and_then(|i| u32::try_from(i + 1).ok())?;
    let y = digits(parts.next()?.as_bytes())?;
    let hms = parts.next()?;
    let zone = parts.next()?;
    if parts.next().is_some() || !["GMT", "UTC", "+0000", "-0000", "Z"].contains(&zone) {
        return None;
    }
    let hb = hms.as_bytes();
    if hb.len() != 8 || hb.get(2) != Some(&b':') || hb.get(5) != Some(&b':') {
        return None;
    }
    let h = digits(hb.get(0..2)?)?;
    let mi = digits(hb.get(3..5)?)?;
    let sec = digits(hb.get(6..8)?)?;
    to_system_time(i64::from(y), mo, d, h, mi, sec)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn dates_round_trip() {
        let t = parse_amz_date("20150830T123600Z").unwrap();
        assert_eq!(
            t.duration_since(UNIX_EPOCH).unwrap().as_secs(),
            1_440_938_160
        );
        assert_eq!(format_amz_date(t).unwrap(), "20150830T123600Z");
        assert_eq!(parse_http_date("Sun, 30 Aug 2015 12:36:00 GMT"), Some(t));
        assert_eq!(parse_http_date("Sun, 30 Aug 2015 12:36:00 -0000"), Some(t));
        assert!(parse_amz_date("20150230T123600Z").is_none());
        assert!(parse_amz_date("20150830T123600").is_none());
        assert!(parse_amz_date("2015083XT123600Z").is_none());
        let leap = parse_amz_date("20240229T000000Z").unwrap();
        assert_eq!(format_amz_date(leap).unwrap(), "20240229T000000Z");
    }

    #[test]
    fn paths() {
        assert_eq!(canonical_uri("/example/..", PathOptions::KVS), "/");
        assert_eq!(canonical_uri("//example//", PathOptions::KVS), "/example/");
        assert_eq!(canonical_uri("//example//", PathOptions::S3), "//example//");
        assert_eq!(canonical_uri("/a%20b", PathOptions::KVS), "/a%2520b");
        assert_eq!(canonical_uri("/a%20b", PathOptions::S3), "/a%20b");
        assert_eq!(canonical_uri("/a b", PathOptions::S3), "/a%20b");
        assert_eq!(canonical_uri("", PathOptions::KVS), "/");
    }

    #[test]
    fn header_values_fold() {
        let mut out = Vec::new();
        push_header_value(b"  a   b \t c  ", &mut out);
        assert_eq!(out, b"a b c");
        out.clear();
        push_header_value(b"value1\r\n  value2", &mut out);
        assert_eq!(out, b"value1 value2");
    }

    #[test]
    fn query() {
        assert_eq!(canonical_query("b=2&a=1&a"), "a=&a=1&b=2");
        assert_eq!(canonical_query("k=%2f+x%zz"), "k=%2F%20x%25zz");
    }
}
