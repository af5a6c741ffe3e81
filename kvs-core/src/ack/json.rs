//! A small JSON scanner for one bounded ACK record.
//!
//! It understands exactly what an ACK needs: one object whose members are the four known keys,
//! optionally wrapped in `{"Acknowledgement":{...}}`; any other member is validated and skipped.
//! Recursion is capped at [`MAX_DEPTH`], and the only allocations are for strings that use escape
//! sequences, bounded by the record length.

use std::borrow::Cow;

use super::{AckError, AckEvent, AckEventType, ErrorId};
use crate::fragment::FragmentNumber;

/// Deepest nesting of skipped arrays/objects accepted inside an ACK.
const MAX_DEPTH: u32 = 32;
/// Longest unknown `EventType` value echoed back in an error.
const MAX_ECHO: usize = 64;

struct Cursor<'a> {
    buf: &'a [u8],
    pos: usize,
    base: u64,
}

#[derive(Default)]
struct Fields {
    event_type: Option<(AckEventType, u64)>,
    unknown_type: Option<(String, u64)>,
    timecode: Option<u64>,
    number: Option<FragmentNumber>,
    error_id: Option<ErrorId>,
}

/// Parses one complete ACK record (no newline inside); `base` is its stream offset.
pub(super) fn parse_record(buf: &[u8], base: u64) -> Result<AckEvent, AckError> {
    let mut cur = Cursor { buf, pos: 0, base };
    cur.ws();
    if cur.peek() != Some(b'{') {
        return Err(cur.syntax(if cur.peek().is_none() {
            "empty record"
        } else {
            "expected '{' at the start of an ACK"
        }));
    }
    cur.pos += 1;
    let mut fields = Fields::default();
    cur.members(&mut fields, true)?;
    cur.ws();
    if cur.peek().is_some() {
        return Err(cur.syntax("unexpected bytes after the ACK object"));
    }
    if let Some((value, offset)) = fields.unknown_type {
        return Err(AckError::UnknownEventType { offset, value });
    }
    let Some((event_type, _)) = fields.event_type else {
        return Err(AckError::MissingEventType { offset: base });
    };
    if event_type == AckEventType::Error && fields.error_id.is_none() {
        return Err(AckError::MissingErrorId { offset: base });
    }
    Ok(AckEvent {
        event_type,
        fragment_timecode: fields.timecode,
        fragment_number: fields.number,
        error_id: fields.error_id,
    })
}

impl<'a> Cursor<'a> {
    fn peek(&self) -> Option<u8> {
        self.buf.get(self.pos).copied()
    }

    fn offset(&self) -> u64 {
        self.base + self.pos as u64
    }

    fn syntax(&self, reason: &'static str) -> AckError {
        AckError::Syntax {
            offset: self.offset(),
            reason,
        }
    }

    fn ws(&mut self) {
        while let Some(b' ' | b'\t' | b'\r' | b'\n') = self.peek() {
            self.pos += 1;
        }
    }

    fn expect(&mut self, byte: u8, reason: &'static str) -> Result<(), AckError> {
        if self.peek() == Some(byte) {
            self.pos += 1;
            Ok(())
        } else {
            Err(self.syntax(reason))
        }
    }

    /// Members of an object whose `{` was consumed, through the closing `}`.
    fn members(&mut self, fields: &mut Fields, top: bool) -> Result<(), AckError> {
        self.ws();
        if self.peek() == Some(b'}') {
            self.pos += 1;
            return Ok(());
        }
        loop {
            self.ws();
            if self.peek() != Some(b'"') {
                return Err(self.syntax("expected a quoted key"));
            }
            let key = self.string()?;
            self.ws();
            self.expect(b':', "expected ':' after a key")?;
            self.ws();
            let value_at = self.offset();
            match key.as_ref() {
                b"EventType" => {
                    if fields.event_type.is_some() || fields.unknown_type.is_some() {
                        return Err(duplicate(value_at, "EventType"));
                    }
                    if self.peek() != Some(b'"') {
                        return Err(invalid(value_at, "EventType", "must be a string"));
                    }
                    let value = self.string()?;
                    match AckEventType::from_wire(&value) {
                        Some(t) => fields.event_type = Some((t, value_at)),
                        None => {
                            let shown = &value[..value.len().min(MAX_ECHO)];
                            fields.unknown_type =
                                Some((String::from_utf8_lossy(shown).into_owned(), value_at));
                        }
                    }
                }
                b"FragmentTimecode" => {
                    if fields.timecode.is_some() {
                        return Err(duplicate(value_at, "FragmentTimecode"));
                    }
                    let digits = self.integer_text("FragmentTimecode")?;
                    fields.timecode = Some(parse_u64(&digits).ok_or_else(|| {
                        invalid(value_at, "FragmentTimecode", "does not fit in 64 bits")
                    })?);
                }
                b"FragmentNumber" => {
                    if fields.number.is_some() {
                        return Err(duplicate(value_at, "FragmentNumber"));
                    }
                    let digits = self.integer_text("FragmentNumber")?;
                    let number = std::str::from_utf8(&digits)
                        .ok()
                        .and_then(|s| s.parse::<FragmentNumber>().ok())
                        .ok_or_else(|| {
                            invalid(
                                value_at,
                                "FragmentNumber",
                                "must be 1 to 128 decimal digits",
                            )
                        })?;
                    fields.number = Some(number);
                }
                b"ErrorId" => {
                    if fields.error_id.is_some() {
                        return Err(duplicate(value_at, "ErrorId"));
                    }
                    let digits = self.integer_text("ErrorId")?;
                    let code = parse_u64(&digits)
                        .and_then(|v| u32::try_from(v).ok())
                        .ok_or_else(|| invalid(value_at, "ErrorId", "does not fit in 32 bits"))?;
                    fields.error_id = Some(ErrorId::from_code(code));
                }
                b"Acknowledgement" if top && self.peek() == Some(b'{') => {
                    self.pos += 1;
                    self.members(fields, false)?;
                }
                _ => self.skip_value(0)?,
            }
            self.ws();
            match self.peek() {
                Some(b',') => self.pos += 1,
                Some(b'}') => {
                    self.pos += 1;
                    return Ok(());
                }
                None => return Err(self.syntax("unexpected end of the ACK (missing '}')")),
                Some(_) => return Err(self.syntax("expected ',' or '}' after a value")),
            }
        }
    }

    /// The digits of an integer written either bare or as a quoted string.
    fn integer_text(&mut self, key: &'static str) -> Result<Cow<'a, [u8]>, AckError> {
        let at = self.offset();
        let text = match self.peek() {
            Some(b'"') => self.string()?,
            Some(b'-' | b'0'..=b'9') => Cow::Borrowed(self.number()?),
            _ => return Err(invalid(at, key, "must be a number or a quoted number")),
        };
        if text.is_empty() || !text.iter().all(u8::is_ascii_digit) {
            return Err(invalid(at, key, "must be a non-negative integer"));
        }
        Ok(text)
    }

    /// A JSON string starting at `"`; escapes are decoded (allocating only then).
    fn string(&mut self) -> Result<Cow<'a, [u8]>, AckError> {
        self.pos += 1; // opening quote
        let start = self.pos;
        let buf = self.buf;
        // Plain bytes are skipped by a tight search; only a quote, a backslash or a control
        // character stops it.
        let rest = buf.get(start..).unwrap_or_default();
        match rest
            .iter()
            .position(|&b| b == b'"' || b == b'\\' || b < 0x20)
        {
            None => {
                self.pos = buf.len();
                return Err(self.syntax("unterminated string"));
            }
            Some(p) => {
                self.pos = start + p;
                match rest.get(p) {
                    Some(b'"') => {
                        let raw = rest.get(..p).unwrap_or_default();
                        self.pos += 1;
                        return Ok(Cow::Borrowed(raw));
                    }
                    Some(b'\\') => {}
                    _ => return Err(self.syntax("control character inside a string")),
                }
            }
        }
        let mut out = buf.get(start..self.pos).unwrap_or_default().to_vec();
        loop {
            match self.peek() {
                None => return Err(self.syntax("unterminated string")),
                Some(b'"') => {
                    self.pos += 1;
                    return Ok(Cow::Owned(out));
                }
                Some(0..=0x1F) => return Err(self.syntax("control character inside a string")),
                Some(b'\\') => {
                    self.pos += 1;
                    let Some(esc) = self.peek() else {
                        return Err(self.syntax("unterminated escape sequence"));
                    };
                    self.pos += 1;
                    let simple = match esc {
                        b'"' => b'"',
                        b'\\' => b'\\',
                        b'/' => b'/',
                        b'b' => 0x08,
                        b'f' => 0x0C,
                        b'n' => b'\n',
                        b'r' => b'\r',
                        b't' => b'\t',
                        b'u' => {
                            let c = self.unicode_escape()?;
                            let mut tmp = [0u8; 4];
                            out.extend_from_slice(c.encode_utf8(&mut tmp).as_bytes());
                            continue;
                        }
                        _ => return Err(self.syntax("invalid escape sequence")),
                    };
                    out.push(simple);
                }
                Some(b) => {
                    out.push(b);
                    self.pos += 1;
                }
            }
        }
    }

    /// The character of a `\uXXXX` escape whose `\u` was consumed (surrogate pairs included).
    fn unicode_escape(&mut self) -> Result<char, AckError> {
        let first = self.hex4()?;
        let code = if (0xD800..0xDC00).contains(&first) {
            if self.buf.get(self.pos..self.pos + 2) != Some(b"\\u") {
                return Err(self.syntax("unpaired surrogate in \\u escape"));
            }
            self.pos += 2;
            let second = self.hex4()?;
            if !(0xDC00..0xE000).contains(&second) {
                return Err(self.syntax("unpaired surrogate in \\u escape"));
            }
            0x10000 + ((first - 0xD800) << 10) + (second - 0xDC00)
        } else {
            first
        };
        char::from_u32(code).ok_or_else(|| self.syntax("invalid \\u escape"))
    }

    fn hex4(&mut self) -> Result<u32, AckError> {
        let mut value = 0u32;
        for _ in 0..4 {
            let digit = self
                .peek()
                .and_then(|b| (b as char).to_digit(16))
                .ok_or_else(|| self.syntax("expected 4 hex digits in \\u escape"))?;
            value = value * 16 + digit;
            self.pos += 1;
        }
        Ok(value)
    }

    /// A JSON number, returned as its text.
    fn number(&mut self) -> Result<&'a [u8], AckError> {
        let start = self.pos;
        if self.peek() == Some(b'-') {
            self.pos += 1;
        }
        match self.peek() {
            Some(b'0') => self.pos += 1,
            Some(b'1'..=b'9') => self.digits(),
            _ => return Err(self.syntax("invalid number")),
        }
        if self.peek() == Some(b'.') {
            self.pos += 1;
            if !matches!(self.peek(), Some(b'0'..=b'9')) {
                return Err(self.syntax("invalid number: no digit after '.'"));
            }
            self.digits();
        }
        if let Some(b'e' | b'E') = self.peek() {
            self.pos += 1;
            if let Some(b'+' | b'-') = self.peek() {
                self.pos += 1;
            }
            if !matches!(self.peek(), Some(b'0'..=b'9')) {
                return Err(self.syntax("invalid number: no digit in the exponent"));
            }
            self.digits();
        }
        Ok(self.buf.get(start..self.pos).unwrap_or_default())
    }

    fn digits(&mut self) {
        while let Some(b'0'..=b'9') = self.peek() {
            self.pos += 1;
        }
    }

    /// Validates and skips any JSON value.
    fn skip_value(&mut self, depth: u32) -> Result<(), AckError> {
        if depth >= MAX_DEPTH {
            return Err(self.syntax("values nested too deeply"));
        }
        match self.peek() {
            Some(b'"') => self.string().map(drop),
            Some(b'-' | b'0'..=b'9') => self.number().map(drop),
            Some(b't') => self.literal(b"true"),
            Some(b'f') => self.literal(b"false"),
            Some(b'n') => self.literal(b"null"),
            Some(open @ (b'{' | b'[')) => {
                let close = if open == b'{' { b'}' } else { b']' };
                self.pos += 1;
                self.ws();
                if self.peek() == Some(close) {
                    self.pos += 1;
                    return Ok(());
                }
                loop {
                    self.ws();
                    if open == b'{' {
                        if self.peek() != Some(b'"') {
                            return Err(self.syntax("expected a quoted key"));
                        }
                        self.string()?;
                        self.ws();
                        self.expect(b':', "expected ':' after a key")?;
                        self.ws();
                    }
                    self.skip_value(depth + 1)?;
                    self.ws();
                    match self.peek() {
                        Some(b',') => self.pos += 1,
                        Some(b) if b == close => {
                            self.pos += 1;
                            return Ok(());
                        }
                        _ => return Err(self.syntax("expected ',' or a closing bracket")),
                    }
                }
            }
            None => Err(self.syntax("missing value")),
            Some(_) => Err(self.syntax("invalid value")),
        }
    }

    fn literal(&mut self, word: &'static [u8]) -> Result<(), AckError> {
        if self.buf.get(self.pos..self.pos + word.len()) == Some(word) {
            self.pos += word.len();
            Ok(())
        } else {
            Err(self.syntax("invalid literal"))
        }
    }
}

fn duplicate(offset: u64, key: &'static str) -> AckError {
    AckError::DuplicateKey { offset, key }
}

fn invalid(offset: u64, key: &'static str, reason: &'static str) -> AckError {
    AckError::InvalidValue {
        offset,
        key,
        reason,
    }
}

/// Decimal digits (already checked to be digits) to `u64`, `None` on overflow.
fn parse_u64(digits: &[u8]) -> Option<u64> {
    digits.iter().try_fold(0u64, |acc, &d| {
        acc.checked_mul(10)?.checked_add(u64::from(d - b'0'))
    })
}
