//! Parsers for the master elements the reader holds whole: the EBML header, Info, TrackEntry,
//! Tags and BlockGroup. Each works on the element's data as one `Bytes`, so binary values
//! (CodecPrivate, TagBinary, Block) come out as zero-copy slices.

use std::collections::VecDeque;
use std::ops::Range;

use bytes::Bytes;

use super::types::{
    DecodeError, EbmlHeader, Event, ReaderLimits, SegmentInfo, SimpleTag, TagsEvent, Warning,
};
use crate::crc32::crc32;
use crate::ebml::{self, Size, id, read_float, read_int, read_uint};
use crate::fragment::FragmentMetadata;
use crate::mkv::{AudioSettings, TrackInfo, TrackType, VideoSettings};

/// The reader's output queue.
pub(super) type Out = VecDeque<Result<Event, DecodeError>>;

/// One child of a buffered master.
#[derive(Debug, Clone)]
pub(super) struct Child {
    /// Its ID.
    pub id: u32,
    /// Absolute byte offset of its header.
    pub offset: u64,
    /// Its data, as a range of the parent's data.
    pub data: Range<usize>,
}

/// Iterates over the children of a master whose data is `data`, starting at absolute `base`.
/// Stops after the first error.
pub(super) struct Children<'a> {
    data: &'a [u8],
    pos: usize,
    base: u64,
    parent: u32,
    failed: bool,
}

pub(super) fn children(data: &[u8], base: u64, parent: u32) -> Children<'_> {
    Children {
        data,
        pos: 0,
        base,
        parent,
        failed: false,
    }
}

impl Iterator for Children<'_> {
    type Item = Result<Child, DecodeError>;

    fn next(&mut self) -> Option<Self::Item> {
        if self.failed || self.pos >= self.data.len() {
            return None;
        }
        let offset = self.base + self.pos as u64;
        let rest = self.data.get(self.pos..).unwrap_or_default();
        let result = (|| {
            // `rest` is never empty here, so "not enough bytes" means the ID runs past the parent.
            let (cid, id_len) = ebml::read_id(rest)
                .map_err(|source| DecodeError::Vint { offset, source })?
                .ok_or(DecodeError::ChildOverflow {
                    offset,
                    id: 0,
                    end: self.base + self.data.len() as u64 + 1,
                    parent: self.parent,
                    parent_end: self.base + self.data.len() as u64,
                })?;
            let after_id = rest.get(id_len..).unwrap_or_default();
            let (size, size_len) = match ebml::read_size(after_id) {
                Ok(Some(v)) => v,
                Ok(None) => {
                    return Err(DecodeError::ChildOverflow {
                        offset,
                        id: cid,
                        end: self.base + self.data.len() as u64 + 1,
                        parent: self.parent,
                        parent_end: self.base + self.data.len() as u64,
                    });
                }
                Err(source) => return Err(DecodeError::Vint { offset, source }),
            };
            let Size::Known(size) = size else {
                return Err(DecodeError::UnknownSizeNotAllowed { offset, id: cid });
            };
            let start = self.pos + id_len + size_len;
            let end = u64::try_from(start)
                .ok()
                .and_then(|s| s.checked_add(size))
                .filter(|&e| e <= self.data.len() as u64)
                .ok_or(DecodeError::ChildOverflow {
                    offset,
                    id: cid,
                    end: (self.base + start as u64).saturating_add(size),
                    parent: self.parent,
                    parent_end: self.base + self.data.len() as u64,
                })? as usize;
            self.pos = end;
            Ok(Child {
                id: cid,
                offset,
                data: start..end,
            })
        })();
        if result.is_err() {
            self.failed = true;
        }
        Some(result)
    }
}

/// Checks CRC-32 children: verifies a leading one, warns about misplaced ones.
pub(super) fn check_crc(parent: u32, offset: u64, data: &[u8], base: u64, out: &mut Out) {
    // A CRC-32 child starts with its one-byte ID: without that byte anywhere, there is none
    // (a byte search is much cheaper than walking the children).
    if !data.contains(&(id::CRC32 as u8)) {
        return;
    }
    for (i, child) in children(data, base, parent).enumerate() {
        let Ok(child) = child else { return };
        if child.id != id::CRC32 {
            continue;
        }
        if i != 0 {
            out.push_back(Ok(Event::Warning(Warning::CrcNotFirst {
                offset: child.offset,
            })));
            continue;
        }
        if let (Some(&[a, b, c, d]), Some(rest)) =
            (data.get(child.data.clone()), data.get(child.data.end..))
        {
            let stored = u32::from_le_bytes([a, b, c, d]);
            let computed = crc32(rest);
            if stored != computed {
                out.push_back(Ok(Event::Warning(Warning::CrcMismatch {
                    offset,
                    parent,
                    stored,
                    computed,
                })));
            }
        }
    }
}

fn value_err(child: &Child) -> impl Fn(ebml::VintError) -> DecodeError + '_ {
    move |source| DecodeError::Value {
        offset: child.offset,
        id: child.id,
        source,
    }
}

fn uint(data: &[u8], child: &Child) -> Result<u64, DecodeError> {
    read_uint(data.get(child.data.clone()).unwrap_or_default()).map_err(value_err(child))
}

fn float(data: &[u8], child: &Child) -> Result<f64, DecodeError> {
    read_float(data.get(child.data.clone()).unwrap_or_default()).map_err(value_err(child))
}

/// A UTF-8 string; invalid bytes are replaced and reported as a warning.
fn text(data: &[u8], child: &Child, out: &mut Out) -> String {
    let raw = data.get(child.data.clone()).unwrap_or_default();
    match ebml::read_utf8(raw) {
        Ok(s) => s.to_owned(),
        Err(_) => {
            out.push_back(Ok(Event::Warning(Warning::OddValue {
                offset: child.offset,
                id: child.id,
                what: "string is not valid UTF-8 (invalid bytes replaced)",
            })));
            let end = raw.iter().position(|&b| b == 0).unwrap_or(raw.len());
            String::from_utf8_lossy(raw.get(..end).unwrap_or_default()).into_owned()
        }
    }
}

/// Matroska DocTypeVersions this reader knows.
const MAX_DOC_TYPE_VERSION: u64 = 4;

/// Parses an EBML header's data.
pub(super) fn ebml_header(
    data: &Bytes,
    offset: u64,
    base: u64,
    out: &mut Out,
) -> Result<EbmlHeader, DecodeError> {
    check_crc(id::EBML, offset, data, base, out);
    let mut h = EbmlHeader {
        offset,
        version: 1,
        read_version: 1,
        max_id_length: 4,
        max_size_length: 8,
        doc_type: String::new(),
        doc_type_version: 1,
        doc_type_read_version: 1,
    };
    let mut doc_type: Option<String> = None;
    let mut seen: Vec<u32> = Vec::new();
    for child in children(data, base, id::EBML) {
        let child = child?;
        let known = matches!(
            child.id,
            id::EBML_VERSION
                | id::EBML_READ_VERSION
                | id::EBML_MAX_ID_LENGTH
                | id::EBML_MAX_SIZE_LENGTH
                | id::DOC_TYPE
                | id::DOC_TYPE_VERSION
                | id::DOC_TYPE_READ_VERSION
        );
        if known {
            if seen.contains(&child.id) {
                out.push_back(Ok(Event::Warning(Warning::DuplicateElement {
                    offset: child.offset,
                    id: child.id,
                })));
                continue;
            }
            seen.push(child.id);
        }
        match child.id {
            id::EBML_VERSION => h.version = uint(data, &child)?,
            id::EBML_READ_VERSION => h.read_version = uint(data, &child)?,
            id::EBML_MAX_ID_LENGTH => h.max_id_length = uint(data, &child)?,
            id::EBML_MAX_SIZE_LENGTH => h.max_size_length = uint(data, &child)?,
            id::DOC_TYPE => {
                let raw = data.get(child.data.clone()).unwrap_or_default();
                doc_type = Some(ebml::read_ascii(raw).map_err(value_err(&child))?.to_owned());
            }
            id::DOC_TYPE_VERSION => h.doc_type_version = uint(data, &child)?,
            id::DOC_TYPE_READ_VERSION => h.doc_type_read_version = uint(data, &child)?,
            id::VOID | id::CRC32 | id::DOC_TYPE_EXTENSION => {}
            other => out.push_back(Ok(Event::Warning(Warning::UnknownHeaderElement {
                offset: child.offset,
                id: other,
            }))),
        }
    }
    let invalid = |reason: String| DecodeError::InvalidHeader { offset, reason };
    match doc_type {
        None => return Err(invalid("DocType is missing".into())),
        Some(t) if t.is_empty() => return Err(invalid("DocType is empty".into())),
        Some(t) if t != "matroska" && t != "webm" => {
            return Err(invalid(format!(
                "DocType {t:?} is neither \"matroska\" nor \"webm\""
            )));
        }
        Some(t) => h.doc_type = t,
    }
    if h.read_version != 1 {
        return Err(invalid(format!(
            "EBMLReadVersion {} is not 1, the only EBML version this reader implements",
            h.read_version
        )));
    }
    if h.doc_type_read_version == 0 || h.doc_type_read_version > MAX_DOC_TYPE_VERSION {
        return Err(invalid(format!(
            "DocTypeReadVersion {} is outside 1..={MAX_DOC_TYPE_VERSION}",
            h.doc_type_read_version
        )));
    }
    let mut odd = |what: &'static str, value: u64| {
        out.push_back(Ok(Event::Warning(Warning::HeaderValue {
            offset,
            what,
            value,
        })));
    };
    if h.version != 1 {
        odd("EBMLVersion", h.version);
    }
    if h.doc_type_version == 0 || h.doc_type_version > MAX_DOC_TYPE_VERSION {
        odd("DocTypeVersion", h.doc_type_version);
    }
    if h.doc_type_read_version > h.doc_type_version {
        odd(
            "DocTypeReadVersion (greater than DocTypeVersion)",
            h.doc_type_read_version,
        );
    }
    if h.max_id_length != 4 {
        odd("EBMLMaxIDLength (Matroska requires 4)", h.max_id_length);
    }
    if h.max_size_length == 0 || h.max_size_length > 8 {
        odd(
            "EBMLMaxSizeLength (Matroska allows 1 to 8)",
            h.max_size_length,
        );
    }
    Ok(h)
}

/// Parses an Info element's data.
pub(super) fn info(
    data: &Bytes,
    offset: u64,
    base: u64,
    out: &mut Out,
) -> Result<SegmentInfo, DecodeError> {
    check_crc(id::INFO, offset, data, base, out);
    let mut info = SegmentInfo {
        offset,
        timecode_scale: 1_000_000,
        duration: None,
        segment_uid: None,
        date_utc_ns: None,
        title: None,
        muxing_app: None,
        writing_app: None,
    };
    for child in children(data, base, id::INFO) {
        let child = child?;
        match child.id {
            id::TIMECODE_SCALE => {
                let scale = uint(data, &child)?;
                if scale == 0 {
                    out.push_back(Ok(Event::Warning(Warning::OddValue {
                        offset: child.offset,
                        id: child.id,
                        what: "TimestampScale is 0 (1000000 used)",
                    })));
                } else {
                    info.timecode_scale = scale;
                }
            }
            id::DURATION => info.duration = Some(float(data, &child)?),
            id::SEGMENT_UID => {
                if child.data.len() != 16 {
                    out.push_back(Ok(Event::Warning(Warning::OddValue {
                        offset: child.offset,
                        id: child.id,
                        what: "SegmentUID is not 16 bytes long",
                    })));
                }
                info.segment_uid = Some(data.slice(child.data.clone()));
            }
            id::DATE_UTC => {
                let raw = data.get(child.data.clone()).unwrap_or_default();
                info.date_utc_ns = Some(ebml::read_date(raw).map_err(value_err(&child))?);
            }
            id::TITLE => info.title = Some(text(data, &child, out)),
            id::MUXING_APP => info.muxing_app = Some(text(data, &child, out)),
            id::WRITING_APP => info.writing_app = Some(text(data, &child, out)),
            _ => {}
        }
    }
    Ok(info)
}

/// Parses a TrackEntry element's data.
pub(super) fn track_entry(
    data: &Bytes,
    offset: u64,
    base: u64,
    limits: &ReaderLimits,
    out: &mut Out,
) -> Result<TrackInfo, DecodeError> {
    check_crc(id::TRACK_ENTRY, offset, data, base, out);
    let mut track = TrackInfo::new(0, 0, TrackType::Other(0), "");
    for child in children(data, base, id::TRACK_ENTRY) {
        let child = child?;
        match child.id {
            id::TRACK_NUMBER => track.number = uint(data, &child)?,
            id::TRACK_UID => track.uid = uint(data, &child)?,
            id::TRACK_TYPE => track.track_type = TrackType::from_code(uint(data, &child)?),
            id::CODEC_ID => track.codec_id = text(data, &child, out),
            id::NAME => track.name = Some(text(data, &child, out)),
            id::DEFAULT_DURATION => track.default_duration_ns = Some(uint(data, &child)?),
            id::CODEC_PRIVATE => {
                if child.data.len() as u64 > limits.max_codec_private {
                    return Err(DecodeError::Limit {
                        offset: child.offset,
                        what: "CodecPrivate size",
                        limit: limits.max_codec_private,
                    });
                }
                track.codec_private = data.slice(child.data.clone());
            }
            id::VIDEO => {
                let mut video = VideoSettings::default();
                let sub = data.get(child.data.clone()).unwrap_or_default();
                let sub_base = base + child.data.start as u64;
                for g in children(sub, sub_base, id::VIDEO) {
                    let g = g?;
                    let v = || read_uint(sub.get(g.data.clone()).unwrap_or_default());
                    match g.id {
                        id::PIXEL_WIDTH => {
                            video.width = u32::try_from(v().map_err(value_err(&g))?).unwrap_or(0);
                        }
                        id::PIXEL_HEIGHT => {
                            video.height = u32::try_from(v().map_err(value_err(&g))?).unwrap_or(0);
                        }
                        _ => {}
                    }
                }
                track.video = Some(video);
            }
            id::AUDIO => {
                let mut audio = AudioSettings {
                    sampling_frequency: 8000.0,
                    channels: 1,
                    bit_depth: None,
                };
                let sub = data.get(child.data.clone()).unwrap_or_default();
                let sub_base = base + child.data.start as u64;
                for g in children(sub, sub_base, id::AUDIO) {
                    let g = g?;
                    match g.id {
                        id::SAMPLING_FREQUENCY => audio.sampling_frequency = float(sub, &g)?,
                        id::CHANNELS => {
                            audio.channels = u32::try_from(uint(sub, &g)?).unwrap_or(0);
                        }
                        id::BIT_DEPTH => {
                            audio.bit_depth = u32::try_from(uint(sub, &g)?).ok();
                        }
                        _ => {}
                    }
                }
                track.audio = Some(audio);
            }
            _ => {}
        }
    }
    if track.number == 0 {
        return Err(DecodeError::InvalidTrack {
            offset,
            reason: "TrackNumber is missing or 0",
        });
    }
    Ok(track)
}

/// Parses a Tags element's data.
pub(super) fn tags(
    data: &Bytes,
    offset: u64,
    base: u64,
    limits: &ReaderLimits,
    out: &mut Out,
) -> Result<TagsEvent, DecodeError> {
    check_crc(id::TAGS, offset, data, base, out);
    let mut event = TagsEvent {
        offset,
        tags: Vec::new(),
        metadata: FragmentMetadata::default(),
    };
    for tag in children(data, base, id::TAGS) {
        let tag = tag?;
        if tag.id != id::TAG {
            continue;
        }
        let sub = data.slice(tag.data.clone());
        let sub_base = base + tag.data.start as u64;
        for st in children(&sub, sub_base, id::TAG) {
            let st = st?;
            if st.id == id::SIMPLE_TAG {
                let body = sub.slice(st.data.clone());
                simple_tag(
                    &body,
                    sub_base + st.data.start as u64,
                    1,
                    limits,
                    &mut event.tags,
                    out,
                )?;
            }
        }
    }
    for t in &event.tags {
        event.metadata.apply_tag(&t.name, &t.value);
    }
    Ok(event)
}

fn simple_tag(
    data: &Bytes,
    base: u64,
    depth: usize,
    limits: &ReaderLimits,
    tags: &mut Vec<SimpleTag>,
    out: &mut Out,
) -> Result<(), DecodeError> {
    if depth > limits.max_depth {
        return Err(DecodeError::TooDeep {
            offset: base,
            limit: limits.max_depth,
        });
    }
    if tags.len() >= limits.max_tags {
        return Err(DecodeError::Limit {
            offset: base,
            what: "number of SimpleTags in a Tags element",
            limit: limits.max_tags as u64,
        });
    }
    let index = tags.len();
    tags.push(SimpleTag {
        name: String::new(),
        value: String::new(),
        binary: None,
    });
    let mut nested = Vec::new();
    for child in children(data, base, id::SIMPLE_TAG) {
        let child = child?;
        match child.id {
            id::TAG_NAME => {
                let name = text(data, &child, out);
                if let Some(t) = tags.get_mut(index) {
                    t.name = name;
                }
            }
            id::TAG_STRING => {
                let value = text(data, &child, out);
                if let Some(t) = tags.get_mut(index) {
                    t.value = value;
                }
            }
            id::TAG_BINARY => {
                if let Some(t) = tags.get_mut(index) {
                    t.binary = Some(data.slice(child.data.clone()));
                }
            }
            id::SIMPLE_TAG => nested.push(child),
            _ => {}
        }
    }
    for child in nested {
        let body = data.slice(child.data.clone());
        simple_tag(
            &body,
            base + child.data.start as u64,
            depth + 1,
            limits,
            tags,
            out,
        )?;
    }
    Ok(())
}

/// What a BlockGroup holds.
pub(super) struct Group {
    /// The Block element's data.
    pub block: Bytes,
    /// Absolute offset of the Block element.
    pub block_offset: u64,
    /// BlockDuration in ticks, when written.
    pub duration: Option<u64>,
    /// Whether a ReferenceBlock is present (then the frame is not a key frame).
    pub has_reference: bool,
}

/// Parses a BlockGroup element's data.
pub(super) fn block_group(
    data: &Bytes,
    offset: u64,
    base: u64,
    out: &mut Out,
) -> Result<Group, DecodeError> {
    check_crc(id::BLOCK_GROUP, offset, data, base, out);
    let mut block: Option<(Bytes, u64)> = None;
    let mut duration = None;
    let mut has_reference = false;
    for child in children(data, base, id::BLOCK_GROUP) {
        let child = child?;
        match child.id {
            id::BLOCK if block.is_none() => {
                block = Some((data.slice(child.data.clone()), child.offset));
            }
            id::BLOCK_DURATION => duration = Some(uint(data, &child)?),
            id::REFERENCE_BLOCK => {
                let raw = data.get(child.data.clone()).unwrap_or_default();
                read_int(raw).map_err(value_err(&child))?;
                has_reference = true;
            }
            _ => {}
        }
    }
    let Some((block, block_offset)) = block else {
        return Err(DecodeError::InvalidBlock {
            offset,
            reason: "BlockGroup has no Block",
        });
    };
    Ok(Group {
        block,
        block_offset,
        duration,
        has_reference,
    })
}
