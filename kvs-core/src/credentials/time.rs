//! RFC 3339 timestamps (`2026-11-25T12:00:00Z`), as the IoT credentials provider and
//! `AWS_CREDENTIAL_EXPIRATION` use them. No calendar crate needed: proleptic Gregorian arithmetic.

use crate::calendar::{civil_from_days, days_from_civil, days_in_month};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

/// Longest timestamp text accepted.
const MAX_LEN: usize = 64;

/// A string that is not an RFC 3339 timestamp.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("invalid RFC 3339 timestamp {value:?} at character {position}: {reason}")]
pub struct TimestampError {
    /// The text (first 64 bytes).
    pub value: String,
    /// Byte position of the problem within the text.
    pub position: usize,
    /// What was expected.
    pub reason: &'static str,
}

struct Reader<'a> {
    text: &'a str,
    pos: usize,
}

impl Reader<'_> {
    fn err(&self, reason: &'static str) -> TimestampError {
        let end = self.text.floor_char_boundary(MAX_LEN);
        TimestampError {
            value: self.text.get(..end).unwrap_or_default().to_owned(),
            position: self.pos,
            reason,
        }
    }

    fn peek(&self) -> Option<u8> {
        self.text.as_bytes().get(self.pos).copied()
    }

    fn digits(&mut self, n: usize, what: &'static str) -> Result<u32, TimestampError> {
        let mut value = 0u32;
        for _ in 0..n {
            match self.peek() {
                Some(d @ b'0'..=b'9') => value = value * 10 + u32::from(d - b'0'),
                _ => return Err(self.err(what)),
            }
            self.pos += 1;
        }
        Ok(value)
    }

    fn byte(&mut self, expected: &[u8], what: &'static str) -> Result<u8, TimestampError> {
        match self.peek() {
            Some(b) if expected.contains(&b) => {
                self.pos += 1;
                Ok(b)
            }
            _ => Err(self.err(what)),
        }
    }

    fn range(
        &self,
        value: u32,
        lo: u32,
        hi: u32,
        what: &'static str,
    ) -> Result<u32, TimestampError> {
        if (lo..=hi).contains(&value) {
            Ok(value)
        } else {
            Err(self.err(what))
        }
    }
}

/// Parses an RFC 3339 date-time: `YYYY-MM-DDTHH:MM:SS[.fraction](Z|±HH:MM)`.
///
/// `t`, `z` and a space separator are accepted too; fractions beyond nanoseconds are truncated;
/// a leap second (`:60`) counts as the first second of the next minute.
pub fn parse_rfc3339(text: &str) -> Result<SystemTime, TimestampError> {
    let mut r = Reader { text, pos: 0 };
    if text.len() > MAX_LEN {
        return Err(r.err("longer than 64 characters"));
    }
    let year = i64::from(r.digits(4, "expected a 4-digit year")?);
    r.byte(b"-", "expected '-' after the year")?;
    let month = r.digits(2, "expected a 2-digit month")?;
    let month = r.range(month, 1, 12, "month out of range")?;
    r.byte(b"-", "expected '-' after the month")?;
    let day = r.digits(2, "expected a 2-digit day")?;
    let day = r.range(
        day,
        1,
        days_in_month(year, month),
        "day out of range for the month",
    )?;
    r.byte(b"Tt ", "expected 'T' between date and time")?;
    let hour = r.digits(2, "expected a 2-digit hour")?;
    let hour = r.range(hour, 0, 23, "hour out of range")?;
    r.byte(b":", "expected ':' after the hour")?;
    let minute = r.digits(2, "expected 2-digit minutes")?;
    let minute = r.range(minute, 0, 59, "minutes out of range")?;
    r.byte(b":", "expected ':' after the minutes")?;
    let second = r.digits(2, "expected 2-digit seconds")?;
    let second = r.range(second, 0, 60, "seconds out of range")?;
    let mut nanos = 0u32;
    if r.peek() == Some(b'.') {
        r.pos += 1;
        let mut count = 0;
        while let Some(d @ b'0'..=b'9') = r.peek() {
            if count < 9 {
                nanos = nanos * 10 + u32::from(d - b'0');
            }
            count += 1;
            r.pos += 1;
        }
        if count == 0 {
            return Err(r.err("expected digits after '.'"));
        }
        for _ in count..9 {
            nanos *= 10;
        }
    }
    let offset_secs: i64 = match r.byte(b"Zz+-", "expected 'Z' or a '+HH:MM'/'-HH:MM' offset")? {
        b'Z' | b'z' => 0,
        sign => {
            let oh = r.digits(2, "expected 2-digit offset hours")?;
            let oh = r.range(oh, 0, 23, "offset hours out of range")?;
            r.byte(b":", "expected ':' in the offset")?;
            let om = r.digits(2, "expected 2-digit offset minutes")?;
            let om = r.range(om, 0, 59, "offset minutes out of range")?;
            let secs = i64::from(oh * 3600 + om * 60);
            if sign == b'-' { -secs } else { secs }
        }
    };
    if r.pos != text.len() {
        return Err(r.err("unexpected text after the timestamp"));
    }
    let secs = days_from_civil(year, month, day) * 86_400
        + i64::from(hour * 3600 + minute * 60 + second)
        - offset_secs;
    let time = if secs >= 0 {
        UNIX_EPOCH.checked_add(Duration::new(secs.unsigned_abs(), nanos))
    } else {
        UNIX_EPOCH
            .checked_sub(Duration::from_secs(secs.unsigned_abs()))
            .and_then(|t| t.checked_add(Duration::from_nanos(u64::from(nanos))))
    };
    time.ok_or_else(|| r.err("outside the range this platform's clock can represent"))
}

/// Formats a time as RFC 3339 in UTC with whole seconds (`2026-11-25T12:00:00Z`); sub-second
/// parts are truncated.
pub fn format_rfc3339(time: SystemTime) -> String {
    let secs: i64 = match time.duration_since(UNIX_EPOCH) {
        Ok(d) => i64::try_from(d.as_secs()).unwrap_or(i64::MAX),
        Err(e) => {
            let d = e.duration();
            let whole = i64::try_from(d.as_secs()).unwrap_or(i64::MAX);
            // Round toward the past so the printed second contains the instant.
            -whole - i64::from(d.subsec_nanos() > 0)
        }
    };
    let days = secs.div_euclid(86_400);
    let rem = secs.rem_euclid(86_400);
    let (year, month, day) = civil_from_days(days);
    format!(
        "{year:04}-{month:02}-{day:02}T{:02}:{:02}:{:02}Z",
        rem / 3600,
        rem % 3600 / 60,
        rem % 60
    )
}
