//! The KVS MKV writer (`kvs_writer_*`) and the streaming MKV reader (`kvs_reader_*`).

use std::ffi::{CString, c_char};

use bytes::Bytes;
use kvs_core::mkv::reader::{Event, MkvReader};
use kvs_core::mkv::writer::{
    DEFAULT_TIMECODE_SCALE_NS, Fragmentation, FrameOutcome, StreamConfig, StreamWriter,
    TimecodeMode, WriterError,
};
use kvs_core::mkv::{AudioSettings, Frame, TrackInfo, TrackType, VideoSettings};

use crate::{
    Fail, Res, boundary, check_out, copy_out, free_box, give_box, kvs_result, opt_str, try_mut,
    try_ref, try_slice, try_slice_mut, try_str, write_out,
};

/// Frame flag: a key frame (opens a fragment).
pub const KVS_FRAME_FLAG_KEYFRAME: u32 = 1;
/// Frame flag: invisible (decoded but not shown).
pub const KVS_FRAME_FLAG_INVISIBLE: u32 = 2;
/// Frame flag: discardable.
pub const KVS_FRAME_FLAG_DISCARDABLE: u32 = 4;

/// Track types (the Matroska TrackType codes).
#[repr(u32)]
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum kvs_track_type {
    /// Video (1).
    Video = 1,
    /// Audio (2).
    Audio = 2,
}

/// How Cluster timecodes relate to frame timestamps.
#[repr(u32)]
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum kvs_timecode_mode {
    /// Absolute (the default, value 0): timestamps are epoch-based.
    Absolute = 0,
    /// Relative to the stream's first fragment.
    Relative = 1,
}

/// Settings of a producer stream. A zeroed struct is valid and means the defaults of the official
/// producer (1 ms timecode scale, absolute timecodes, a fragment per key frame), with an all-zero
/// SegmentUID: give 16 random bytes, the same for every session of one stream.
#[repr(C)]
#[derive(Debug, Clone, Copy)]
pub struct kvs_stream_config {
    /// The SegmentUID (the library draws no random numbers).
    pub segment_uid: [u8; 16],
    /// TimecodeScale in ns (100 ns to 1 s); 0 means 1 ms.
    pub timecode_scale_ns: u64,
    /// A [`kvs_timecode_mode`] value.
    pub timecode_mode: u32,
    /// 0: every key frame opens a fragment; otherwise a key frame opens one once this many ns
    /// (1 to 30 s) have passed since the fragment start.
    pub fragment_duration_ns: u64,
    /// Optional client id appended to MuxingApp/WritingApp (NULL for none).
    pub client_id: *const c_char,
}

/// One track. Fields that do not apply are 0 / NULL.
#[repr(C)]
#[derive(Debug, Clone, Copy)]
pub struct kvs_track_config {
    /// Track number (1, 2, 3).
    pub number: u64,
    /// Track UID; 0 means "same as the number".
    pub uid: u64,
    /// A [`kvs_track_type`] value.
    pub track_type: u32,
    /// CodecID, e.g. `"V_MPEG4/ISO/AVC"`, `"A_AAC"`.
    pub codec_id: *const c_char,
    /// Track name (NULL for none).
    pub name: *const c_char,
    /// Codec private data (avcC, hvcC, AudioSpecificConfig...), may be NULL with length 0.
    pub codec_private: *const u8,
    /// Its length.
    pub codec_private_len: usize,
    /// Video width in pixels.
    pub width: u32,
    /// Video height in pixels.
    pub height: u32,
    /// Audio sampling frequency in Hz.
    pub sampling_frequency: f64,
    /// Audio channels.
    pub channels: u32,
    /// Audio bit depth (0: not written).
    pub bit_depth: u32,
    /// Default frame duration in ns (0: not written).
    pub default_duration_ns: u64,
}

/// One frame to write. The payload is copied by the calls that take it.
#[repr(C)]
#[derive(Debug, Clone, Copy)]
pub struct kvs_frame {
    /// Track number.
    pub track: u64,
    /// Presentation timestamp in ns (epoch-based in absolute mode).
    pub timestamp_ns: i64,
    /// Duration in ns (0: unknown).
    pub duration_ns: u64,
    /// `KVS_FRAME_FLAG_*` bits.
    pub flags: u32,
    /// The payload (AVCC/HVCC length-prefixed NAL units for H.264/H.265).
    pub data: *const u8,
    /// Its length.
    pub len: usize,
}

/// What writing a frame did.
#[repr(C)]
#[derive(Debug, Clone, Copy, Default)]
pub struct kvs_frame_outcome {
    /// False when the frame was skipped (a non-key frame with no fragment open): nothing was
    /// written and `*out_n` is 0.
    pub written: bool,
    /// True when this frame opened a new fragment.
    pub new_fragment: bool,
    /// The open fragment's Cluster timecode (what ACKs report as `FragmentTimecode`).
    pub fragment_timecode: u64,
    /// Zero-based index of the open fragment.
    pub fragment_index: u64,
    /// Bytes written before the payload (metadata tags, Cluster header, block header).
    pub header_len: usize,
}

pub(crate) fn stream_config(c: &kvs_stream_config) -> Res<StreamConfig> {
    let mut config = StreamConfig::new(c.segment_uid);
    if c.timecode_scale_ns != 0 {
        config.timecode_scale_ns = c.timecode_scale_ns;
    } else {
        config.timecode_scale_ns = DEFAULT_TIMECODE_SCALE_NS;
    }
    config.timecode_mode = match c.timecode_mode {
        0 => TimecodeMode::Absolute,
        1 => TimecodeMode::Relative,
        other => {
            return Err(Fail::new(
                kvs_result::InvalidParameter,
                format!("timecode_mode {other} is not a kvs_timecode_mode"),
            ));
        }
    };
    if c.fragment_duration_ns != 0 {
        config.fragmentation = Fragmentation::Duration(c.fragment_duration_ns);
    }
    // SAFETY: the caller of the exported function guarantees the string pointers.
    config.client_id = unsafe { opt_str(c.client_id, "client_id") }?.map(str::to_owned);
    Ok(config)
}

/// Converts a C track array.
///
/// # Safety
/// `tracks` points to `n` valid `kvs_track_config`s whose pointers are valid.
pub(crate) unsafe fn track_list(tracks: *const kvs_track_config, n: usize) -> Res<Vec<TrackInfo>> {
    if tracks.is_null() {
        return Err(Fail::new(kvs_result::NullParameter, "tracks is NULL"));
    }
    if n == 0 || n > 16 {
        return Err(Fail::new(
            kvs_result::InvalidParameter,
            format!("{n} tracks given; 1 to 3 are allowed"),
        ));
    }
    // SAFETY: non-NULL, n bounded, validity per the caller.
    let list = unsafe { std::slice::from_raw_parts(tracks, n) };
    list.iter()
        .enumerate()
        .map(|(i, t)| {
            let track_type = match t.track_type {
                1 => TrackType::Video,
                2 => TrackType::Audio,
                other => {
                    return Err(Fail::new(
                        kvs_result::InvalidParameter,
                        format!("tracks[{i}].track_type {other} is not a kvs_track_type"),
                    ));
                }
            };
            // SAFETY: per the caller.
            let codec_id = unsafe { try_str(t.codec_id, "codec_id") }?;
            let uid = if t.uid == 0 { t.number } else { t.uid };
            let mut info = TrackInfo::new(t.number, uid, track_type, codec_id);
            // SAFETY: per the caller.
            info.name = unsafe { opt_str(t.name, "name") }?.map(str::to_owned);
            // SAFETY: per the caller.
            let cpd = unsafe { try_slice(t.codec_private, t.codec_private_len, "codec_private") }?;
            info.codec_private = Bytes::copy_from_slice(cpd);
            match track_type {
                TrackType::Video => {
                    info.video = Some(VideoSettings {
                        width: t.width,
                        height: t.height,
                    });
                }
                _ => {
                    info.audio = Some(AudioSettings {
                        sampling_frequency: t.sampling_frequency,
                        channels: t.channels,
                        bit_depth: (t.bit_depth != 0).then_some(t.bit_depth),
                    });
                }
            }
            info.default_duration_ns =
                (t.default_duration_ns != 0).then_some(t.default_duration_ns);
            Ok(info)
        })
        .collect()
}

/// Converts a C frame (copying its payload).
///
/// # Safety
/// `frame` is NULL or valid, with `data` valid for `len` bytes.
pub(crate) unsafe fn frame_from(frame: *const kvs_frame) -> Res<Frame> {
    // SAFETY: per the caller.
    let f = unsafe { try_ref(frame, "frame") }?;
    if f.flags & !(KVS_FRAME_FLAG_KEYFRAME | KVS_FRAME_FLAG_INVISIBLE | KVS_FRAME_FLAG_DISCARDABLE)
        != 0
    {
        return Err(Fail::new(
            kvs_result::InvalidParameter,
            format!("frame flags 0x{:X} hold unknown bits", f.flags),
        ));
    }
    // SAFETY: per the caller.
    let data = unsafe { try_slice(f.data, f.len, "frame.data") }?;
    let mut out = Frame::new(
        f.track,
        f.timestamp_ns,
        f.flags & KVS_FRAME_FLAG_KEYFRAME != 0,
        Bytes::copy_from_slice(data),
    );
    out.duration_ns = (f.duration_ns != 0).then_some(f.duration_ns);
    out.invisible = f.flags & KVS_FRAME_FLAG_INVISIBLE != 0;
    out.discardable = f.flags & KVS_FRAME_FLAG_DISCARDABLE != 0;
    Ok(out)
}

fn config_fail(e: impl std::fmt::Display) -> Fail {
    Fail::new(kvs_result::Config, e.to_string())
}

fn writer_fail(e: kvs_core::mkv::writer::WriterError) -> Fail {
    Fail::new(kvs_result::Writer, e.to_string())
}

/// The KVS producer MKV writer (opaque): stream header, frames, fragment metadata, end of
/// fragment. It writes into caller buffers and keeps no output of its own.
pub struct kvs_writer {
    inner: StreamWriter,
}

/// Creates a writer for `n_tracks` tracks (1 to 3).
///
/// # Safety
/// `config` and `tracks[0..n_tracks]` are valid (with valid string/buffer pointers); `writer_out`
/// is writable. Free the writer with [`kvs_writer_free`].
#[unsafe(no_mangle)]
pub unsafe extern "C" fn kvs_writer_new(
    config: *const kvs_stream_config,
    tracks: *const kvs_track_config,
    n_tracks: usize,
    writer_out: *mut *mut kvs_writer,
) -> kvs_result {
    boundary(|| {
        check_out(writer_out, "writer_out")?;
        // SAFETY: per the contract above.
        let config = stream_config(unsafe { try_ref(config, "config") }?)?;
        // SAFETY: per the contract above.
        let tracks = unsafe { track_list(tracks, n_tracks) }?;
        let inner = StreamWriter::new(config, tracks).map_err(config_fail)?;
        // SAFETY: checked non-NULL.
        unsafe { give_box(kvs_writer { inner }, writer_out) };
        Ok(())
    })
}

/// Frees a writer (NULL is ignored).
///
/// # Safety
/// `writer` is NULL or came from [`kvs_writer_new`] and is not used again.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn kvs_writer_free(writer: *mut kvs_writer) {
    // SAFETY: per the contract above.
    unsafe { free_box(writer) }
}

/// Copies the stream header (EBML header, Segment, Info, Tracks) into `buf`. Every PutMedia body
/// starts with it, including reconnects. Does not change the writer.
///
/// # Safety
/// `writer` is valid; `buf` has `len` writable bytes; `out_n` is writable.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn kvs_writer_header(
    writer: *const kvs_writer,
    buf: *mut u8,
    len: usize,
    out_n: *mut usize,
) -> kvs_result {
    boundary(|| {
        // SAFETY: per the contract above.
        let w = unsafe { try_ref(writer, "writer") }?;
        // SAFETY: per the contract above.
        unsafe { copy_out(w.inner.header(), buf, len, out_n) }
    })
}

/// Queues a fragment metadata item (a Tags chain written before the next fragment). A
/// persistent item is repeated before every fragment until it is put again with an empty value.
///
/// # Safety
/// `writer` is valid; `name` and `value` are NUL-terminated strings.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn kvs_writer_put_metadata(
    writer: *mut kvs_writer,
    name: *const c_char,
    value: *const c_char,
    persistent: bool,
) -> kvs_result {
    boundary(|| {
        // SAFETY: per the contract above.
        let w = unsafe { try_mut(writer, "writer") }?;
        // SAFETY: per the contract above.
        let name = unsafe { try_str(name, "name") }?;
        // SAFETY: per the contract above.
        let value = unsafe { try_str(value, "value") }?;
        w.inner
            .put_metadata(name, value, persistent)
            .map_err(writer_fail)
    })
}

/// Encodes a frame (headers and a copy of the payload) into `buf`. A non-key frame with no
/// fragment open is skipped (`outcome_out->written` false, `*out_n` 0).
///
/// # Safety
/// `writer` and `frame` are valid; `buf` has `len` writable bytes; `out_n` and `outcome_out` are
/// writable.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn kvs_writer_write_frame(
    writer: *mut kvs_writer,
    frame: *const kvs_frame,
    buf: *mut u8,
    len: usize,
    out_n: *mut usize,
    outcome_out: *mut kvs_frame_outcome,
) -> kvs_result {
    boundary(|| {
        check_out(out_n, "out_n")?;
        check_out(outcome_out, "outcome_out")?;
        // SAFETY: per the contract above.
        let w = unsafe { try_mut(writer, "writer") }?;
        // SAFETY: per the contract above.
        let frame = unsafe { frame_from(frame) }?;
        let needed = w.inner.frame_header_len(&frame).map_err(writer_fail)?;
        let needed = if needed == 0 {
            0
        } else {
            needed + frame.data.len()
        };
        if needed > len {
            // SAFETY: checked non-NULL.
            unsafe { write_out(out_n, needed) };
            return Err(Fail::new(
                kvs_result::BufferTooSmall,
                format!("the frame needs {needed} bytes, the buffer holds {len}"),
            ));
        }
        // SAFETY: per the contract above.
        let mut out = unsafe { try_slice_mut(buf, len, "buf") }?;
        let outcome = w
            .inner
            .encode_frame(&frame, &mut out)
            .map_err(writer_fail)?;
        let remaining = out.len();
        let mut result = kvs_frame_outcome::default();
        if let FrameOutcome::Written(b) = outcome {
            result.written = true;
            result.new_fragment = b.fragment.is_some();
            result.fragment_timecode = w.inner.fragment_timecode().unwrap_or(0);
            result.fragment_index = w.inner.fragment_count().saturating_sub(1);
            result.header_len = b.header_len;
        }
        // SAFETY: checked non-NULL.
        unsafe {
            write_out(out_n, len - remaining);
            write_out(outcome_out, result);
        }
        Ok(())
    })
}

/// The body shared by [`kvs_writer_end_fragment`] and [`kvs_writer_finish`]: runs `step` on the
/// writer with `buf` as output; when `buf` is too small, `*out_n` says how much is needed.
///
/// # Safety
/// `writer` is valid; `buf` has `len` writable bytes; `out_n` is writable.
unsafe fn write_marker(
    writer: *mut kvs_writer,
    buf: *mut u8,
    len: usize,
    out_n: *mut usize,
    step: impl FnOnce(&mut StreamWriter, &mut &mut [u8]) -> Result<usize, WriterError>,
) -> kvs_result {
    boundary(|| {
        check_out(out_n, "out_n")?;
        // SAFETY: per the contract above.
        let w = unsafe { try_mut(writer, "writer") }?;
        // SAFETY: per the contract above.
        let out = unsafe { try_slice_mut(buf, len, "buf") }?;
        let mut cursor = &mut *out;
        match step(&mut w.inner, &mut cursor) {
            Ok(n) => {
                // SAFETY: checked non-NULL.
                unsafe { write_out(out_n, n) };
                Ok(())
            }
            Err(WriterError::Encode(e)) => {
                // SAFETY: checked non-NULL.
                unsafe { write_out(out_n, kvs_core::mkv::writer::END_OF_FRAGMENT_LEN) };
                Err(Fail::new(kvs_result::BufferTooSmall, e.to_string()))
            }
            Err(e) => Err(writer_fail(e)),
        }
    })
}

/// Writes the end-of-fragment marker (84 bytes) into `buf`: the open fragment ends now and the
/// next key frame opens the next one. Needs key-frame fragmentation.
///
/// # Safety
/// `writer` is valid; `buf` has `len` writable bytes; `out_n` is writable.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn kvs_writer_end_fragment(
    writer: *mut kvs_writer,
    buf: *mut u8,
    len: usize,
    out_n: *mut usize,
) -> kvs_result {
    // SAFETY: per the contract above.
    unsafe { write_marker(writer, buf, len, out_n, |w, out| w.end_fragment(out)) }
}

/// Ends the stream: writes the end-of-stream marker (0 or 84 bytes) into `buf` and closes the
/// open fragment.
///
/// # Safety
/// `writer` is valid; `buf` has `len` writable bytes; `out_n` is writable.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn kvs_writer_finish(
    writer: *mut kvs_writer,
    buf: *mut u8,
    len: usize,
    out_n: *mut usize,
) -> kvs_result {
    // SAFETY: per the contract above.
    unsafe { write_marker(writer, buf, len, out_n, |w, out| w.finish(out)) }
}

/// Kinds of reader events.
#[repr(u32)]
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum kvs_reader_event_kind {
    /// An EBML header: a new document starts (GetMedia sends one per fragment).
    EbmlHeader = 1,
    /// A Segment starts.
    SegmentStart = 2,
    /// The Segment Info (`timecode` holds the TimecodeScale in ns).
    Info = 3,
    /// A track: `track`, `track_type`, `codec_id`, `codec_private`, `width`... are set.
    Track = 4,
    /// A level-1 Tags element (`fragment_number` and the timestamps are set when present).
    Tags = 5,
    /// A Cluster starts (`timecode`, `has_timecode`).
    ClusterStart = 6,
    /// A frame: `track`, `timestamp_ns`, `duration_ns`, `flags`, `data`, `len`.
    Frame = 7,
    /// A fragment is over: `fragment_index`, `frames`, `keyframes`, `bytes`, `timecode`, the
    /// KVS metadata and `truncated`.
    FragmentEnd = 8,
    /// A Segment ends.
    SegmentEnd = 9,
    /// Something odd the reader tolerated (`kvs_last_error_message` does not change; the
    /// text goes to the log callback).
    Warning = 10,
    /// Malformed input at `offset` (the reader recovers and goes on); the message goes to the
    /// log callback and to `kvs_last_error_message`.
    Error = 11,
}

/// One reader event. Only the fields its kind names are meaningful; the others are 0 / NULL.
/// Pointers stay valid until the next call on the reader (poll, push, finish or free).
#[repr(C)]
#[derive(Debug, Clone, Copy)]
pub struct kvs_reader_event {
    /// A [`kvs_reader_event_kind`] value.
    pub kind: u32,
    /// Byte offset of the element (or error) in the input, when known.
    pub offset: u64,
    /// Track number (frames and tracks).
    pub track: u64,
    /// Frame timestamp in ns.
    pub timestamp_ns: i64,
    /// Frame duration in ns (0: unknown).
    pub duration_ns: u64,
    /// Frame `KVS_FRAME_FLAG_*` bits.
    pub flags: u32,
    /// Frame payload (or a track's codec private data).
    pub data: *const u8,
    /// Its length.
    pub len: usize,
    /// Track type code (1 video, 2 audio...).
    pub track_type: u64,
    /// Track CodecID (NUL-terminated).
    pub codec_id: *const c_char,
    /// Video width.
    pub width: u32,
    /// Video height.
    pub height: u32,
    /// Audio sampling frequency.
    pub sampling_frequency: f64,
    /// Audio channels.
    pub channels: u32,
    /// Cluster timecode in ticks (ClusterStart, FragmentEnd) or the TimecodeScale (Info).
    pub timecode: u64,
    /// Whether `timecode` is set.
    pub has_timecode: bool,
    /// Fragment index from 0 (FragmentEnd).
    pub fragment_index: u64,
    /// Frames in the fragment.
    pub frames: u64,
    /// Key frames in the fragment.
    pub keyframes: u64,
    /// Bytes of the Cluster element.
    pub bytes: u64,
    /// The fragment has a Cluster.
    pub has_cluster: bool,
    /// The input ended inside the fragment.
    pub truncated: bool,
    /// `AWS_KINESISVIDEO_FRAGMENT_NUMBER` (NULL when absent).
    pub fragment_number: *const c_char,
    /// `AWS_KINESISVIDEO_PRODUCER_TIMESTAMP` in epoch ms (0 when absent).
    pub producer_timestamp_ms: u64,
    /// `AWS_KINESISVIDEO_SERVER_TIMESTAMP` in epoch ms (0 when absent).
    pub server_timestamp_ms: u64,
    /// `AWS_KINESISVIDEO_ERROR_CODE` (NULL when absent).
    pub error_code: *const c_char,
}

impl Default for kvs_reader_event {
    fn default() -> Self {
        kvs_reader_event {
            kind: 0,
            offset: 0,
            track: 0,
            timestamp_ns: 0,
            duration_ns: 0,
            flags: 0,
            data: std::ptr::null(),
            len: 0,
            track_type: 0,
            codec_id: std::ptr::null(),
            width: 0,
            height: 0,
            sampling_frequency: 0.0,
            channels: 0,
            timecode: 0,
            has_timecode: false,
            fragment_index: 0,
            frames: 0,
            keyframes: 0,
            bytes: 0,
            has_cluster: false,
            truncated: false,
            fragment_number: std::ptr::null(),
            producer_timestamp_ms: 0,
            server_timestamp_ms: 0,
            error_code: std::ptr::null(),
        }
    }
}

/// The streaming MKV reader (opaque): push bytes in chunks of any size, poll events.
pub struct kvs_reader {
    inner: MkvReader,
    /// Keeps the borrowed parts of the last event alive.
    held_data: Bytes,
    held_strings: Vec<CString>,
}

/// Creates a reader with the default limits.
///
/// # Safety
/// `reader_out` is writable. Free the reader with [`kvs_reader_free`].
#[unsafe(no_mangle)]
pub unsafe extern "C" fn kvs_reader_new(reader_out: *mut *mut kvs_reader) -> kvs_result {
    boundary(|| {
        check_out(reader_out, "reader_out")?;
        let reader = kvs_reader {
            inner: MkvReader::new(),
            held_data: Bytes::new(),
            held_strings: Vec::new(),
        };
        // SAFETY: checked non-NULL.
        unsafe { give_box(reader, reader_out) };
        Ok(())
    })
}

/// Frees a reader (NULL is ignored).
///
/// # Safety
/// `reader` is NULL or came from [`kvs_reader_new`] and is not used again.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn kvs_reader_free(reader: *mut kvs_reader) {
    // SAFETY: per the contract above.
    unsafe { free_box(reader) }
}

/// Pushes the next `len` bytes of input (copied). Drain [`kvs_reader_poll`] after each push.
/// `KVS_RESULT_FULL` when the unread input would exceed the reader's buffer limit (nothing kept).
///
/// # Safety
/// `reader` is valid; `data` has `len` readable bytes.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn kvs_reader_push(
    reader: *mut kvs_reader,
    data: *const u8,
    len: usize,
) -> kvs_result {
    boundary(|| {
        // SAFETY: per the contract above.
        let r = unsafe { try_mut(reader, "reader") }?;
        // SAFETY: per the contract above.
        let data = unsafe { try_slice(data, len, "data") }?;
        r.held_data = Bytes::new();
        r.held_strings.clear();
        r.inner
            .push_slice(data)
            .map_err(|e| Fail::new(kvs_result::Full, e.to_string()))
    })
}

/// Says the input is over: the remaining events (ends of open fragments and segments) follow.
///
/// # Safety
/// `reader` is valid.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn kvs_reader_finish(reader: *mut kvs_reader) -> kvs_result {
    boundary(|| {
        // SAFETY: per the contract above.
        let r = unsafe { try_mut(reader, "reader") }?;
        r.inner.finish();
        Ok(())
    })
}

fn hold(strings: &mut Vec<CString>, text: &str) -> *const c_char {
    let c = CString::new(text.replace('\0', " ")).unwrap_or_default();
    let ptr = c.as_ptr();
    strings.push(c);
    ptr
}

/// The next event: `KVS_RESULT_OK` with `*event_out` filled, or `KVS_RESULT_WOULD_BLOCK` when
/// the input pushed so far holds no more. Malformed input gives an event of kind
/// `KVS_READER_EVENT_KIND_ERROR` (still `KVS_RESULT_OK`).
///
/// # Safety
/// `reader` is valid; `event_out` is writable.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn kvs_reader_poll(
    reader: *mut kvs_reader,
    event_out: *mut kvs_reader_event,
) -> kvs_result {
    boundary(|| {
        check_out(event_out, "event_out")?;
        // SAFETY: per the contract above.
        let r = unsafe { try_mut(reader, "reader") }?;
        r.held_data = Bytes::new();
        r.held_strings.clear();
        let Some(next) = r.inner.poll_event() else {
            return Err(Fail::would_block());
        };
        let mut ev = kvs_reader_event::default();
        match next {
            Err(e) => {
                ev.kind = kvs_reader_event_kind::Error as u32;
                crate::boundary(|| Err(Fail::new(kvs_result::Decode, e.to_string())));
            }
            Ok(Event::EbmlHeader(_)) => ev.kind = kvs_reader_event_kind::EbmlHeader as u32,
            Ok(Event::SegmentStart { offset, .. }) => {
                ev.kind = kvs_reader_event_kind::SegmentStart as u32;
                ev.offset = offset;
            }
            Ok(Event::Info(info)) => {
                ev.kind = kvs_reader_event_kind::Info as u32;
                ev.timecode = info.timecode_scale;
                ev.has_timecode = true;
            }
            Ok(Event::Track(t)) => {
                ev.kind = kvs_reader_event_kind::Track as u32;
                ev.track = t.number;
                ev.track_type = t.track_type.code();
                ev.codec_id = hold(&mut r.held_strings, &t.codec_id);
                r.held_data = t.codec_private.clone();
                ev.data = r.held_data.as_ptr();
                ev.len = r.held_data.len();
                if let Some(v) = t.video {
                    ev.width = v.width;
                    ev.height = v.height;
                }
                if let Some(a) = t.audio {
                    ev.sampling_frequency = a.sampling_frequency;
                    ev.channels = a.channels;
                }
            }
            Ok(Event::Tags(tags)) => {
                ev.kind = kvs_reader_event_kind::Tags as u32;
                ev.offset = tags.offset;
                fill_metadata(&mut ev, &mut r.held_strings, &tags.metadata);
            }
            Ok(Event::ClusterStart { offset, timecode }) => {
                ev.kind = kvs_reader_event_kind::ClusterStart as u32;
                ev.offset = offset;
                ev.timecode = timecode.unwrap_or(0);
                ev.has_timecode = timecode.is_some();
            }
            Ok(Event::Frame(f)) => {
                ev.kind = kvs_reader_event_kind::Frame as u32;
                ev.track = f.track;
                ev.timestamp_ns = f.timestamp_ns;
                ev.duration_ns = f.duration_ns.unwrap_or(0);
                for (set, bit) in [
                    (f.keyframe, KVS_FRAME_FLAG_KEYFRAME),
                    (f.invisible, KVS_FRAME_FLAG_INVISIBLE),
                    (f.discardable, KVS_FRAME_FLAG_DISCARDABLE),
                ] {
                    if set {
                        ev.flags |= bit;
                    }
                }
                r.held_data = f.data;
                ev.data = r.held_data.as_ptr();
                ev.len = r.held_data.len();
            }
            Ok(Event::FragmentEnd(s)) => {
                ev.kind = kvs_reader_event_kind::FragmentEnd as u32;
                ev.offset = s.offset;
                ev.fragment_index = s.index;
                ev.frames = s.frames;
                ev.keyframes = s.keyframes;
                ev.bytes = s.bytes;
                ev.has_cluster = s.has_cluster;
                ev.truncated = s.truncated;
                ev.timecode = s.cluster_timecode.unwrap_or(0);
                ev.has_timecode = s.cluster_timecode.is_some();
                fill_metadata(&mut ev, &mut r.held_strings, &s.metadata);
            }
            Ok(Event::SegmentEnd { offset }) => {
                ev.kind = kvs_reader_event_kind::SegmentEnd as u32;
                ev.offset = offset;
            }
            Ok(Event::Warning(w)) => {
                ev.kind = kvs_reader_event_kind::Warning as u32;
                crate::log(crate::kvs_log_level::Warn, &w.to_string());
            }
            Ok(_) => {
                ev.kind = kvs_reader_event_kind::Warning as u32;
            }
        }
        // SAFETY: checked non-NULL.
        unsafe { write_out(event_out, ev) };
        Ok(())
    })
}

fn fill_metadata(
    ev: &mut kvs_reader_event,
    strings: &mut Vec<CString>,
    m: &kvs_core::fragment::FragmentMetadata,
) {
    if let Some(n) = &m.fragment_number {
        ev.fragment_number = hold(strings, n);
    }
    if let Some(c) = &m.error_code {
        ev.error_code = hold(strings, c);
    }
    ev.producer_timestamp_ms = m.producer_timestamp_ms.unwrap_or(0);
    ev.server_timestamp_ms = m.server_timestamp_ms.unwrap_or(0);
}
