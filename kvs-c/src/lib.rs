//! # libkvs: the C ABI of kvs
//!
//! `libkvs.a` / `libkvs.so` and the header `include/kvs.h` (generated from this crate by
//! cbindgen and committed) expose the sans-IO building blocks of `kvs-core` to C: the KVS MKV
//! writer and reader, codec-private helpers, the PutMedia session, the ACK parser, the SigV4
//! signer and request builders for the control-plane calls a camera makes. The firmware keeps its
//! own sockets, TLS, clock and memory budget; libkvs never opens a socket, reads a clock or
//! starts a thread.
//!
//! ## Conventions (after rustls-ffi)
//!
//! - every symbol starts with `kvs_` (macros and enum values with `KVS_`); functions are named
//!   `kvs_<object>_<verb>`;
//! - objects are opaque, created by `kvs_<object>_new` (or a builder) and released by
//!   `kvs_<object>_free` exactly once; `_free(NULL)` does nothing;
//! - a `const` object pointer means the call does not change the object;
//! - inputs come before outputs; a byte buffer is always followed by its length; output buffers
//!   are `(uint8_t *buf, size_t len, size_t *out_n)`;
//! - most functions return a `kvs_result` (`KVS_RESULT_OK` is 0). Outputs are written only on
//!   success, with one exception: on `KVS_RESULT_BUFFER_TOO_SMALL` the `out_n` of a byte buffer
//!   receives the size needed (nothing else is written and the object is unchanged);
//! - `KVS_RESULT_WOULD_BLOCK` means "nothing to poll now", not an error;
//! - every pointer is checked for NULL (`KVS_RESULT_NULL_PARAMETER`); a NULL buffer is allowed
//!   only with length 0;
//! - strings are NUL-terminated UTF-8; result codes are accepted back as `uint32_t`, so an
//!   out-of-range value is harmless;
//! - every function body runs inside a panic boundary (`catch_unwind`) that turns a panic into
//!   `KVS_RESULT_PANIC` (or NULL/0/nothing for functions without a result). With the `firmware`
//!   profile (`panic = "abort"`) a panic aborts instead: the boundary is then a no-op;
//! - time is always an input: `uint64_t now_ms` is a monotonic millisecond count chosen by the
//!   caller; wall-clock times (`*_epoch_ms`) are milliseconds since 1970;
//! - the detailed message of the last failure on the calling thread is available through
//!   [`kvs_last_error_message`], and is also handed to the log callback set with
//!   [`kvs_set_log_callback`] (the only callback; it gets `void *userdata` first).
//!
//! No ABI stability is promised before 1.0: link statically and rebuild against the header
//! shipped with the library.
#![allow(non_camel_case_types)]

use std::cell::RefCell;
use std::ffi::{CStr, c_char, c_void};
use std::panic::{AssertUnwindSafe, catch_unwind};
use std::sync::Mutex;

pub mod http_api;
pub mod media;
pub mod mkv;
pub mod session;

/// Result codes of libkvs functions. `KVS_RESULT_OK` is 0; functions that return a code take it
/// back as `uint32_t` (see [`kvs_result_name`], [`kvs_result_message`]).
#[repr(u32)]
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum kvs_result {
    /// Success.
    Ok = 0,
    /// Nothing to poll now (not an error): no event, no bytes to send, no deadline.
    WouldBlock = 1,
    /// A required pointer was NULL.
    NullParameter = 2,
    /// A parameter is out of range or malformed (a bad enum value, a string that is not UTF-8, a
    /// NULL buffer with a non-zero length...).
    InvalidParameter = 3,
    /// The output buffer is too small; `out_n` holds the size needed and nothing else changed.
    BufferTooSmall = 4,
    /// A panic was caught inside libkvs (a bug: please report it).
    Panic = 5,
    /// The object's configuration was refused (tracks, timecode scale, names...).
    Config = 100,
    /// The MKV writer refused a frame, metadata item or marker (the writer is unchanged).
    Writer = 101,
    /// The MKV reader met malformed input (it recovers and goes on).
    Decode = 102,
    /// A bounded buffer is full: backpressure. Retry after draining or after ACKs.
    Full = 103,
    /// The session is finishing or closed.
    Closed = 104,
    /// Malformed or unsupported media data (Annex-B, parameter sets, SPS).
    Media = 105,
    /// SigV4 signing failed (bad time, missing host, invalid header text).
    Sign = 106,
    /// A KVS API request could not be built, or a response is an error.
    Api = 107,
    /// A malformed PutMedia ACK record (skipped; parsing goes on).
    Ack = 108,
    /// The requested item does not exist (a header that is not set...).
    NotFound = 109,
}

impl kvs_result {
    const ALL: [kvs_result; 16] = [
        kvs_result::Ok,
        kvs_result::WouldBlock,
        kvs_result::NullParameter,
        kvs_result::InvalidParameter,
        kvs_result::BufferTooSmall,
        kvs_result::Panic,
        kvs_result::Config,
        kvs_result::Writer,
        kvs_result::Decode,
        kvs_result::Full,
        kvs_result::Closed,
        kvs_result::Media,
        kvs_result::Sign,
        kvs_result::Api,
        kvs_result::Ack,
        kvs_result::NotFound,
    ];

    fn from_code(code: u32) -> Option<kvs_result> {
        Self::ALL.into_iter().find(|r| *r as u32 == code)
    }

    fn name(self) -> &'static CStr {
        match self {
            kvs_result::Ok => c"KVS_RESULT_OK",
            kvs_result::WouldBlock => c"KVS_RESULT_WOULD_BLOCK",
            kvs_result::NullParameter => c"KVS_RESULT_NULL_PARAMETER",
            kvs_result::InvalidParameter => c"KVS_RESULT_INVALID_PARAMETER",
            kvs_result::BufferTooSmall => c"KVS_RESULT_BUFFER_TOO_SMALL",
            kvs_result::Panic => c"KVS_RESULT_PANIC",
            kvs_result::Config => c"KVS_RESULT_CONFIG",
            kvs_result::Writer => c"KVS_RESULT_WRITER",
            kvs_result::Decode => c"KVS_RESULT_DECODE",
            kvs_result::Full => c"KVS_RESULT_FULL",
            kvs_result::Closed => c"KVS_RESULT_CLOSED",
            kvs_result::Media => c"KVS_RESULT_MEDIA",
            kvs_result::Sign => c"KVS_RESULT_SIGN",
            kvs_result::Api => c"KVS_RESULT_API",
            kvs_result::Ack => c"KVS_RESULT_ACK",
            kvs_result::NotFound => c"KVS_RESULT_NOT_FOUND",
        }
    }

    fn message(self) -> &'static str {
        match self {
            kvs_result::Ok => "success",
            kvs_result::WouldBlock => "nothing to poll now",
            kvs_result::NullParameter => "a required pointer was NULL",
            kvs_result::InvalidParameter => "a parameter is out of range or malformed",
            kvs_result::BufferTooSmall => "the output buffer is too small",
            kvs_result::Panic => "a panic was caught inside libkvs",
            kvs_result::Config => "the configuration was refused",
            kvs_result::Writer => "the MKV writer refused the input",
            kvs_result::Decode => "malformed MKV input",
            kvs_result::Full => "buffer full (backpressure)",
            kvs_result::Closed => "the session is finishing or closed",
            kvs_result::Media => "malformed or unsupported media data",
            kvs_result::Sign => "SigV4 signing failed",
            kvs_result::Api => "the KVS API request or response failed",
            kvs_result::Ack => "malformed PutMedia acknowledgement",
            kvs_result::NotFound => "not found",
        }
    }
}

/// Log levels passed to the log callback.
#[repr(u32)]
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum kvs_log_level {
    /// A call failed (the message explains what and where).
    Error = 1,
    /// Something the library handled but the firmware may want to know (session errors).
    Warn = 2,
    /// Informational.
    Info = 3,
}

/// The log callback: `userdata` as given to [`kvs_set_log_callback`], a [`kvs_log_level`] value,
/// and a message of `len` bytes (NUL-terminated too), valid only during the call. The callback
/// may be called from any thread that calls libkvs, and must not call [`kvs_set_log_callback`].
pub type kvs_log_callback = Option<
    unsafe extern "C" fn(userdata: *mut c_void, level: u32, message: *const c_char, len: usize),
>;

/// A failed call: its code and a message saying what went wrong.
#[derive(Debug)]
pub(crate) struct Fail {
    code: kvs_result,
    message: String,
}

impl Fail {
    pub(crate) fn new(code: kvs_result, message: impl Into<String>) -> Fail {
        Fail {
            code,
            message: message.into(),
        }
    }

    pub(crate) fn would_block() -> Fail {
        Fail::new(kvs_result::WouldBlock, "")
    }
}

pub(crate) type Res<T> = Result<T, Fail>;

struct LogSink {
    callback: unsafe extern "C" fn(*mut c_void, u32, *const c_char, usize),
    userdata: usize,
}

static LOG: Mutex<Option<LogSink>> = Mutex::new(None);

thread_local! {
    static LAST_ERROR: RefCell<String> = const { RefCell::new(String::new()) };
}

/// Sends `message` to the log callback, if one is set.
pub(crate) fn log(level: kvs_log_level, message: &str) {
    let sink = match LOG.lock() {
        Ok(guard) => guard.as_ref().map(|s| (s.callback, s.userdata)),
        Err(_) => None,
    };
    if let Some((callback, userdata)) = sink {
        let mut text = message.replace('\0', " ").into_bytes();
        let len = text.len();
        text.push(0);
        // SAFETY: the callback was registered by the caller through kvs_set_log_callback with a
        // signature matching kvs_log_callback; the message pointer stays valid during the call.
        unsafe {
            callback(
                userdata as *mut c_void,
                level as u32,
                text.as_ptr().cast(),
                len,
            )
        };
    }
}

fn record_failure(fail: &Fail) {
    LAST_ERROR.with(|last| {
        if let Ok(mut last) = last.try_borrow_mut() {
            last.clear();
            last.push_str(fail.code.name().to_str().unwrap_or(""));
            last.push_str(": ");
            last.push_str(&fail.message);
        }
    });
    log(
        kvs_log_level::Error,
        &format!("{}: {}", fail.code.message(), fail.message),
    );
}

/// Runs `body` inside the panic boundary and converts its outcome into a result code.
pub(crate) fn boundary(body: impl FnOnce() -> Res<()>) -> kvs_result {
    match catch_unwind(AssertUnwindSafe(body)) {
        Ok(Ok(())) => kvs_result::Ok,
        Ok(Err(fail)) => {
            if fail.code != kvs_result::WouldBlock {
                record_failure(&fail);
            }
            fail.code
        }
        Err(_) => {
            record_failure(&Fail::new(
                kvs_result::Panic,
                "a panic was caught inside libkvs",
            ));
            kvs_result::Panic
        }
    }
}

/// Runs `body` inside the panic boundary, giving `default` when it panics.
pub(crate) fn boundary_or<T>(default: T, body: impl FnOnce() -> T) -> T {
    catch_unwind(AssertUnwindSafe(body)).unwrap_or(default)
}

/// A shared reference from a C pointer, or `NullParameter` naming the parameter.
///
/// # Safety
/// `ptr` is NULL or points to a valid `T` that outlives `'a`.
pub(crate) unsafe fn try_ref<'a, T>(ptr: *const T, what: &str) -> Res<&'a T> {
    // SAFETY: the caller guarantees validity when not NULL.
    unsafe { ptr.as_ref() }
        .ok_or_else(|| Fail::new(kvs_result::NullParameter, format!("{what} is NULL")))
}

/// A mutable reference from a C pointer, or `NullParameter` naming the parameter.
///
/// # Safety
/// `ptr` is NULL or points to a valid `T`, not aliased, that outlives `'a`.
pub(crate) unsafe fn try_mut<'a, T>(ptr: *mut T, what: &str) -> Res<&'a mut T> {
    // SAFETY: the caller guarantees validity and exclusivity when not NULL.
    unsafe { ptr.as_mut() }
        .ok_or_else(|| Fail::new(kvs_result::NullParameter, format!("{what} is NULL")))
}

/// Checks that an output pointer is not NULL (it is written later, on success).
pub(crate) fn check_out<T>(ptr: *mut T, what: &str) -> Res<()> {
    if ptr.is_null() {
        return Err(Fail::new(
            kvs_result::NullParameter,
            format!("{what} is NULL"),
        ));
    }
    Ok(())
}

/// Writes `value` through an output pointer checked by [`check_out`].
///
/// # Safety
/// `ptr` is non-NULL, aligned and valid for writes.
pub(crate) unsafe fn write_out<T>(ptr: *mut T, value: T) {
    // SAFETY: guaranteed by the caller.
    unsafe { ptr.write(value) }
}

/// Checks a C buffer `(ptr, len)` before it becomes a slice: `Ok(false)` when it is empty (`ptr`
/// is then ignored), `Ok(true)` when `ptr` is non-NULL and `len` fits a slice.
fn check_buf(is_null: bool, len: usize, what: &str) -> Res<bool> {
    if len == 0 {
        return Ok(false);
    }
    if is_null {
        return Err(Fail::new(
            kvs_result::NullParameter,
            format!("{what} is NULL with length {len}"),
        ));
    }
    if len > isize::MAX as usize {
        return Err(Fail::new(
            kvs_result::InvalidParameter,
            format!("{what} length {len} is too large"),
        ));
    }
    Ok(true)
}

/// A byte slice from `(ptr, len)`; NULL is allowed only with `len == 0`.
///
/// # Safety
/// When `len > 0`, `ptr` points to `len` readable bytes that outlive `'a`.
pub(crate) unsafe fn try_slice<'a>(ptr: *const u8, len: usize, what: &str) -> Res<&'a [u8]> {
    if !check_buf(ptr.is_null(), len, what)? {
        return Ok(&[]);
    }
    // SAFETY: non-NULL, length bounded, readability guaranteed by the caller.
    Ok(unsafe { std::slice::from_raw_parts(ptr, len) })
}

/// An output byte buffer from `(ptr, len)`; NULL is allowed only with `len == 0`.
///
/// # Safety
/// When `len > 0`, `ptr` points to `len` writable bytes, not aliased, that outlive `'a`.
pub(crate) unsafe fn try_slice_mut<'a>(ptr: *mut u8, len: usize, what: &str) -> Res<&'a mut [u8]> {
    if !check_buf(ptr.is_null(), len, what)? {
        return Ok(&mut []);
    }
    // SAFETY: non-NULL, length bounded, writability and exclusivity guaranteed by the caller.
    Ok(unsafe { std::slice::from_raw_parts_mut(ptr, len) })
}

/// A `&str` from a NUL-terminated C string.
///
/// # Safety
/// `ptr` is NULL or points to a NUL-terminated string that outlives `'a`.
pub(crate) unsafe fn try_str<'a>(ptr: *const c_char, what: &str) -> Res<&'a str> {
    if ptr.is_null() {
        return Err(Fail::new(
            kvs_result::NullParameter,
            format!("{what} is NULL"),
        ));
    }
    // SAFETY: non-NULL and NUL-terminated per the caller.
    let c = unsafe { CStr::from_ptr(ptr) };
    c.to_str().map_err(|e| {
        Fail::new(
            kvs_result::InvalidParameter,
            format!("{what} is not valid UTF-8 (byte {})", e.valid_up_to()),
        )
    })
}

/// Like [`try_str`], with NULL meaning "absent".
///
/// # Safety
/// As [`try_str`].
pub(crate) unsafe fn opt_str<'a>(ptr: *const c_char, what: &str) -> Res<Option<&'a str>> {
    if ptr.is_null() {
        return Ok(None);
    }
    // SAFETY: forwarded contract.
    unsafe { try_str(ptr, what) }.map(Some)
}

/// Copies `data` into a caller buffer, or reports the size needed.
///
/// # Safety
/// `buf`/`len` as [`try_slice_mut`]; `out_n` non-NULL and writable.
pub(crate) unsafe fn copy_out(data: &[u8], buf: *mut u8, len: usize, out_n: *mut usize) -> Res<()> {
    check_out(out_n, "out_n")?;
    if data.len() > len {
        // SAFETY: checked non-NULL above; the caller guarantees it is writable.
        unsafe { write_out(out_n, data.len()) };
        return Err(Fail::new(
            kvs_result::BufferTooSmall,
            format!("{} bytes needed, the buffer holds {len}", data.len()),
        ));
    }
    // SAFETY: forwarded contract.
    let out = unsafe { try_slice_mut(buf, len, "buf") }?;
    if let Some(dst) = out.get_mut(..data.len()) {
        dst.copy_from_slice(data);
    }
    // SAFETY: checked non-NULL above.
    unsafe { write_out(out_n, data.len()) };
    Ok(())
}

/// Writes `text` into a C buffer as a NUL-terminated string, truncated (at a UTF-8 boundary) to
/// fit; `out_n` gets the bytes written without the NUL.
///
/// # Safety
/// `buf`/`len` as [`try_slice_mut`]; `out_n` NULL or writable.
unsafe fn write_message(text: &str, buf: *mut c_char, len: usize, out_n: *mut usize) -> Res<()> {
    // SAFETY: forwarded contract.
    let out = unsafe { try_slice_mut(buf.cast(), len, "buf") }?;
    if out.is_empty() {
        return Err(Fail::new(kvs_result::BufferTooSmall, "len is 0"));
    }
    let mut n = text.len().min(out.len() - 1);
    while !text.is_char_boundary(n) {
        n -= 1;
    }
    if let (Some(dst), Some(src)) = (out.get_mut(..n), text.as_bytes().get(..n)) {
        dst.copy_from_slice(src);
    }
    if let Some(nul) = out.get_mut(n) {
        *nul = 0;
    }
    if !out_n.is_null() {
        // SAFETY: non-NULL, writable per the caller.
        unsafe { write_out(out_n, n) };
    }
    Ok(())
}

/// The library version, a static NUL-terminated string such as `"0.1.0"` (equal to
/// `KVS_VERSION_MAJOR.KVS_VERSION_MINOR.KVS_VERSION_PATCH`).
#[unsafe(no_mangle)]
pub extern "C" fn kvs_version() -> *const c_char {
    const VERSION: &CStr =
        match CStr::from_bytes_with_nul(concat!(env!("CARGO_PKG_VERSION"), "\0").as_bytes()) {
            Ok(v) => v,
            Err(_) => c"unknown",
        };
    VERSION.as_ptr()
}

/// The name of a result code (`"KVS_RESULT_OK"`...), a static string; `"KVS_RESULT_UNKNOWN"` for
/// a value that is not a `kvs_result`.
#[unsafe(no_mangle)]
pub extern "C" fn kvs_result_name(result: u32) -> *const c_char {
    boundary_or(c"KVS_RESULT_UNKNOWN".as_ptr(), || {
        kvs_result::from_code(result)
            .map_or(c"KVS_RESULT_UNKNOWN", kvs_result::name)
            .as_ptr()
    })
}

/// Writes a one-line description of a result code into `buf` (NUL-terminated, truncated to fit);
/// `out_n` (may be NULL) gets its length without the NUL.
///
/// # Safety
/// `buf` points to `len` writable bytes; `out_n` is NULL or writable.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn kvs_result_message(
    result: u32,
    buf: *mut c_char,
    len: usize,
    out_n: *mut usize,
) -> kvs_result {
    boundary(|| {
        let text = match kvs_result::from_code(result) {
            Some(r) => r.message().to_owned(),
            None => format!("unknown result code {result}"),
        };
        // SAFETY: forwarded contract.
        unsafe { write_message(&text, buf, len, out_n) }
    })
}

/// Writes the detailed message of the last failed call on this thread (`"KVS_RESULT_...: what
/// went wrong, where"`; empty when none failed) into `buf`, as [`kvs_result_message`] does.
///
/// # Safety
/// `buf` points to `len` writable bytes; `out_n` is NULL or writable.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn kvs_last_error_message(
    buf: *mut c_char,
    len: usize,
    out_n: *mut usize,
) -> kvs_result {
    boundary(|| {
        let text = LAST_ERROR.with(|last| last.borrow().clone());
        // SAFETY: forwarded contract.
        unsafe { write_message(&text, buf, len, out_n) }
    })
}

/// Sets (or, with a NULL callback, clears) the process-wide log callback. It receives the
/// detailed message of every failed call and the errors sessions handle by themselves.
///
/// # Safety
/// `callback` must stay callable with `userdata` until it is replaced or cleared.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn kvs_set_log_callback(
    callback: kvs_log_callback,
    userdata: *mut c_void,
) -> kvs_result {
    boundary(|| {
        let mut guard = LOG
            .lock()
            .map_err(|_| Fail::new(kvs_result::Panic, "the log callback lock is poisoned"))?;
        *guard = callback.map(|callback| LogSink {
            callback,
            userdata: userdata as usize,
        });
        Ok(())
    })
}

/// Boxes `value` and hands the pointer to the caller through `out` (free it with [`free_box`]).
///
/// # Safety
/// `out` is writable (checked non-NULL by the caller).
pub(crate) unsafe fn give_box<T>(value: T, out: *mut *mut T) {
    // SAFETY: guaranteed by the caller.
    unsafe { write_out(out, Box::into_raw(Box::new(value))) }
}

/// Frees an object created by `Box::into_raw`.
///
/// # Safety
/// `ptr` is NULL or came from `Box::into_raw` and is not used again.
pub(crate) unsafe fn free_box<T>(ptr: *mut T) {
    boundary_or((), || {
        if !ptr.is_null() {
            // SAFETY: guaranteed by the caller.
            drop(unsafe { Box::from_raw(ptr) });
        }
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn result_codes_round_trip() {
        for r in kvs_result::ALL {
            assert_eq!(kvs_result::from_code(r as u32), Some(r));
        }
        assert_eq!(kvs_result::from_code(9999), None);
    }
}
