//! The read side: GetMedia (live and archived), ListFragments, GetMediaForFragmentList.

use std::collections::VecDeque;
use std::sync::Arc;
use std::sync::atomic::Ordering;

use bytes::{Bytes, BytesMut};
use http_body_util::BodyExt;
use kvs_core::api::*;
use kvs_core::fragment::FragmentNumber;
use kvs_core::index::{
    Fragment as IndexFragment, MAX_LIST_RESULTS, PageToken, RangeQuery,
    StartSelector as IndexStart, TimestampKind,
};
use kvs_core::mkv::getmedia::{FragmentDocument, ProducerHeader, Trailer, write_error_document};
use tokio::sync::mpsc;

use crate::control::find;
use crate::http_service::{Body, ChannelBody, Ctx};
use crate::state::{NOT_ON_DISK, Slot, SlotKind, Stream, lock};
use crate::store;

fn acquire(stream: &Arc<Stream>, kind: SlotKind, max: usize) -> Result<Slot, ApiError> {
    Slot::acquire(stream, kind, max).ok_or_else(|| {
        ApiError::new(
            ApiErrorKind::ConnectionLimitExceeded,
            format!("At most {max} concurrent connections are allowed on this stream."),
        )
    })
}

fn media_head(rid: &str, rx: mpsc::Receiver<Bytes>) -> http::Response<Body> {
    let head = MediaResponse::webm().to_http(rid);
    let (parts, _) = head.into_parts();
    http::Response::from_parts(parts, ChannelBody(rx).boxed_unsync())
}

/// The fragment (indexed or pending) with `seq ≥ cursor`, with its header.
fn next_entry(
    stream: &Stream,
    cursor: u64,
) -> Option<(IndexFragment, Option<Arc<ProducerHeader>>)> {
    let d = lock(&stream.data);
    let f = d.next_from(cursor)?;
    let h = d.header_for(f.sequence);
    Some((f, h))
}

/// Why a fragment's bytes cannot be served.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum ReadFail {
    /// Not in memory and not on disk (trimmed meanwhile, or unreadable file).
    NotFound,
    /// The stream's KmsKeyId names no key of the master key file.
    KmsKeyNotFound,
    /// The stored record does not open (altered, moved or sealed under another key) or does not
    /// match the index: never served.
    Integrity,
}

impl ReadFail {
    /// The error tag (AWS_KINESISVIDEO_ERROR_CODE, _ERROR_ID) a media stream ends with.
    pub(crate) fn tag(self, not_found: (&'static str, u64)) -> (&'static str, u64) {
        match self {
            ReadFail::NotFound => not_found,
            ReadFail::KmsKeyNotFound => ("KMS_KEY_NOT_FOUND", 4506),
            ReadFail::Integrity => ("INTERNAL_ERROR", 5000),
        }
    }
}

/// A fragment's bytes: from the cache (clear, in memory), else its sealed record from its
/// segment file, checked against the index entry and opened with the stream's data key.
pub(crate) async fn fragment_bytes(
    stream: &Stream,
    vault: &crate::keys::Vault,
    f: &IndexFragment,
) -> Result<Bytes, ReadFail> {
    let (loc, header_id) = {
        let d = lock(&stream.data);
        if let Some(c) = d.cached(f.sequence) {
            return Ok(c);
        }
        if f.location == NOT_ON_DISK {
            return Err(ReadFail::NotFound);
        }
        let loc = store::Location {
            segment: d.segment_of(f.sequence).ok_or(ReadFail::NotFound)?,
            offset: f.location,
            len: u64::from(f.size_bytes),
        };
        (loc, d.header_of(f.sequence))
    };
    let Some(key) = stream.key.get().cloned() else {
        let kms = lock(&stream.meta).kms_key_id.clone();
        return Err(if vault.master(&kms).is_err() {
            ReadFail::KmsKeyNotFound
        } else {
            ReadFail::Integrity
        });
    };
    let dir = stream.dir.clone();
    let f = *f;
    tokio::task::spawn_blocking(move || {
        let stored = store::read_fragment(&dir, loc).map_err(|e| {
            if e.kind() == std::io::ErrorKind::InvalidData {
                ReadFail::Integrity
            } else {
                ReadFail::NotFound
            }
        })?;
        // The clear metadata must be this fragment's (a record moved from another position
        // opens under its own metadata, which then differs from the index).
        let meta = store::FragmentRecord::parse_meta(&stored.meta).ok_or(ReadFail::Integrity)?;
        let matches = meta.seq == f.sequence
            && meta.server_ms == f.server_timestamp_ms
            && meta.producer_ms == f.producer_timestamp_ms
            && meta.random == f.random
            && Some(meta.header_id) == header_id;
        if !matches {
            return Err(ReadFail::Integrity);
        }
        key.open_fragment(&stored.meta, stored.sealed)
            .map(Bytes::from)
            .map_err(|_| ReadFail::Integrity)
    })
    .await
    .map_err(|_| ReadFail::Integrity)?
}

async fn send_chunks(tx: &mpsc::Sender<Bytes>, chunks: VecDeque<Bytes>) -> bool {
    for c in chunks {
        if c.is_empty() {
            continue;
        }
        if tx.send(c).await.is_err() {
            return false;
        }
    }
    true
}

async fn send_error_doc(
    tx: &mpsc::Sender<Bytes>,
    header: Option<&ProducerHeader>,
    code: &str,
    id: u64,
    number: Option<&str>,
) -> bool {
    let ebml: &[u8] = match header {
        Some(h) => h.ebml_header(),
        None => &kvs_core::mkv::writer::EBML_HEADER,
    };
    let mut out = BytesMut::new();
    if write_error_document(&mut out, ebml, code, id, number).is_err() {
        return false;
    }
    tx.send(out.freeze()).await.is_ok()
}

fn document_chunks(
    header: &ProducerHeader,
    e: &IndexFragment,
    data: &Bytes,
    trailer: Option<&Trailer>,
) -> Option<VecDeque<Bytes>> {
    let number = e.number();
    let doc = FragmentDocument {
        header,
        fragment_number: number.as_str(),
        server_timestamp_ms: e.server_timestamp_ms,
        producer_timestamp_ms: e.producer_timestamp_ms,
        cluster: data,
        trailer,
    };
    let mut scratch = BytesMut::new();
    let mut chunks = VecDeque::new();
    doc.push_chunks(&mut scratch, &mut chunks).ok()?;
    Some(chunks)
}

/// `POST /getMedia`.
pub(crate) fn get_media(
    ctx: &Arc<Ctx>,
    r: GetMediaRequest,
    rid: &str,
) -> Result<http::Response<Body>, ApiError> {
    let stream = find(ctx, r.stream_name.as_deref(), r.stream_arn.as_deref())?;
    let sel = &r.start_selector;
    let mut rx = stream.published.subscribe();
    let published = *rx.borrow_and_update();
    let cursor = match sel.start_selector_type {
        StartSelectorType::Now => published,
        StartSelectorType::Earliest => 0,
        StartSelectorType::FragmentNumber | StartSelectorType::ContinuationToken => {
            let (member, text) = if sel.start_selector_type == StartSelectorType::FragmentNumber {
                ("AfterFragmentNumber", sel.after_fragment_number.as_deref())
            } else {
                ("ContinuationToken", sel.continuation_token.as_deref())
            };
            let text = text.unwrap_or_default();
            let invalid = || {
                ApiError::invalid_argument(format!(
                    "{member} {text} is not a fragment number of this stream."
                ))
            };
            let number = text.parse::<FragmentNumber>().map_err(|_| invalid())?;
            let d = lock(&stream.data);
            match d.index.get_by_number(&number) {
                Some(f) => f.sequence.saturating_add(1),
                None => {
                    // Lenient for numbers this stream minted (trimmed, or not yet durable):
                    // resume after their sequence. Anything else is refused, never replayed
                    // from the start.
                    let seq = (number.as_str().len() == 47)
                        .then(|| number.sequence())
                        .flatten()
                        .filter(|s| *s < d.next_seq)
                        .ok_or_else(invalid)?;
                    seq + 1
                }
            }
        }
        StartSelectorType::ProducerTimestamp | StartSelectorType::ServerTimestamp => {
            let ts = sel.start_timestamp.map_or(0, |t| t.as_millis());
            let selector = if sel.start_selector_type == StartSelectorType::ProducerTimestamp {
                IndexStart::ProducerTimestamp(ts)
            } else {
                IndexStart::ServerTimestamp(ts)
            };
            let d = lock(&stream.data);
            d.index.seek(selector).map_or(published, |f| f.sequence)
        }
    };
    let slot = acquire(
        &stream,
        SlotKind::GetMedia,
        ctx.config.limits.max_get_media_connections,
    )?;
    let (tx, body_rx) = mpsc::channel(8);
    let idle_end = ctx.config.limits.get_media_idle_end;
    let clock = ctx.config.clock.clone();
    let vault = ctx.vault.clone();
    tokio::spawn(async move {
        let _slot = slot;
        let stream = _slot.stream().clone();
        let mut cursor = cursor;
        loop {
            if !stream.is_readable() {
                break;
            }
            rx.borrow_and_update();
            match next_entry(&stream, cursor) {
                Some((e, header)) => {
                    cursor = e.sequence + 1;
                    let number = e.number();
                    // A header that did not open (or is gone) fails like a record that does not.
                    let read = match header {
                        Some(h) => fragment_bytes(&stream, &vault, &e).await.map(|d| (h, d)),
                        None => Err(ReadFail::Integrity),
                    };
                    let (header, data) = match read {
                        Ok(v) => v,
                        Err(fail) => {
                            let (code, id) = fail.tag(("INTERNAL_ERROR", 5000));
                            send_error_doc(&tx, None, code, id, Some(number.as_str())).await;
                            break;
                        }
                    };
                    let trailer = Trailer {
                        millis_behind_now: ctx_now(&clock).saturating_sub(e.server_timestamp_ms),
                        continuation_token: number.as_str().to_owned(),
                    };
                    let Some(chunks) = document_chunks(&header, &e, &data, Some(&trailer)) else {
                        break;
                    };
                    if !send_chunks(&tx, chunks).await {
                        break;
                    }
                }
                None => {
                    let waited = tokio::time::timeout(idle_end, rx.changed()).await;
                    match waited {
                        Ok(Ok(())) => {}
                        Ok(Err(_)) => break,
                        Err(_) => {
                            if stream.producer.load(Ordering::SeqCst) == 0 {
                                break;
                            }
                        }
                    }
                    if tx.is_closed() {
                        break;
                    }
                }
            }
        }
    });
    Ok(media_head(rid, body_rx))
}

fn ctx_now(clock: &Arc<dyn crate::Clock>) -> u64 {
    clock.now_ms()
}

/// `POST /getMediaForFragmentList`.
pub(crate) fn get_media_for_fragment_list(
    ctx: &Arc<Ctx>,
    r: GetMediaForFragmentListRequest,
    rid: &str,
) -> Result<http::Response<Body>, ApiError> {
    let stream = find(ctx, r.stream_name.as_deref(), r.stream_arn.as_deref())?;
    let slot = acquire(
        &stream,
        SlotKind::FragmentList,
        ctx.config.limits.max_fragment_list_connections,
    )?;
    let (tx, body_rx) = mpsc::channel(8);
    let vault = ctx.vault.clone();
    tokio::spawn(async move {
        let _slot = slot;
        let stream = _slot.stream().clone();
        for number in r.fragments {
            let found = number.parse::<FragmentNumber>().ok().and_then(|n| {
                let d = lock(&stream.data);
                let e = *d.index.get_by_number(&n)?;
                Some((e, d.header_for(e.sequence)))
            });
            let ok = match found {
                Some((e, Some(header))) => match fragment_bytes(&stream, &vault, &e).await {
                    Ok(data) => match document_chunks(&header, &e, &data, None) {
                        Some(chunks) => send_chunks(&tx, chunks).await,
                        None => false,
                    },
                    Err(fail) => {
                        let (code, id) = fail.tag(("FRAGMENT_NOT_FOUND", 3000));
                        send_error_doc(&tx, Some(&header), code, id, Some(&number)).await
                    }
                },
                Some((_, None)) => {
                    let (code, id) = ReadFail::Integrity.tag(("FRAGMENT_NOT_FOUND", 3000));
                    send_error_doc(&tx, None, code, id, Some(&number)).await
                }
                None => send_error_doc(&tx, None, "FRAGMENT_NOT_FOUND", 3000, Some(&number)).await,
            };
            if !ok {
                break;
            }
        }
    });
    Ok(media_head(rid, body_rx))
}

/// The index query of a ListFragments or GetClip selector.
pub(crate) fn range_query(sel: &FragmentSelector) -> RangeQuery {
    let kind = if sel.fragment_selector_type == TimestampSelectorType::ProducerTimestamp {
        TimestampKind::Producer
    } else {
        TimestampKind::Server
    };
    RangeQuery {
        kind,
        start_ms: sel.timestamp_range.start_timestamp.as_millis(),
        end_ms: sel.timestamp_range.end_timestamp.as_millis(),
    }
}

/// `POST /listFragments`.
pub(crate) fn list_fragments(
    ctx: &Arc<Ctx>,
    r: ListFragmentsRequest,
) -> Result<ListFragmentsResponse, ApiError> {
    let stream = find(ctx, r.stream_name.as_deref(), r.stream_arn.as_deref())?;
    let max = usize::try_from(r.max_results.unwrap_or(1000))
        .unwrap_or(MAX_LIST_RESULTS)
        .clamp(1, MAX_LIST_RESULTS);
    let page = match &r.next_token {
        Some(t) => {
            let token = PageToken::decode(t)
                .map_err(|e| ApiError::invalid_argument(format!("NextToken is not valid: {e}.")))?;
            lock(&stream.data).index.list_next(&token, max)
        }
        None => {
            let sel = r.fragment_selector.as_ref().ok_or_else(|| {
                ApiError::invalid_argument("FragmentSelector is required without NextToken.")
            })?;
            lock(&stream.data).index.list(range_query(sel), max)
        }
    };
    let fragments = page
        .fragments
        .iter()
        .map(|f| Fragment {
            fragment_number: f.number().as_str().to_owned(),
            fragment_size_in_bytes: u64::from(f.size_bytes),
            producer_timestamp: Timestamp::from_millis(f.producer_timestamp_ms),
            server_timestamp: Timestamp::from_millis(f.server_timestamp_ms),
            fragment_length_in_milliseconds: u64::from(f.duration_ms),
        })
        .collect();
    Ok(ListFragmentsResponse {
        fragments,
        next_token: page.next_token.map(|t| t.encode()),
    })
}
