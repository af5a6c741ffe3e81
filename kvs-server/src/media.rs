//! The read side: GetMedia (live and archived), ListFragments, GetMediaForFragmentList.

use std::collections::VecDeque;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};

use bytes::{Bytes, BytesMut};
use http_body_util::BodyExt;
use kvs_core::api::*;
use kvs_core::fragment::FragmentNumber;
use kvs_core::mkv::getmedia::{FragmentDocument, ProducerHeader, Trailer, write_error_document};
use tokio::sync::mpsc;

use crate::control::find;
use crate::http_service::{Body, ChannelBody, Ctx};
use crate::now_ms;
use crate::state::{FragmentEntry, Stream, lock};
use crate::store;

/// A connection slot on a stream, released on drop.
struct OwnedSlot {
    stream: Arc<Stream>,
    list: bool,
}

impl OwnedSlot {
    fn counter(stream: &Stream, list: bool) -> &AtomicUsize {
        if list {
            &stream.list_consumers
        } else {
            &stream.consumers
        }
    }

    fn acquire(stream: &Arc<Stream>, list: bool, max: usize) -> Result<OwnedSlot, ApiError> {
        let c = Self::counter(stream, list);
        let mut cur = c.load(Ordering::SeqCst);
        loop {
            if cur >= max {
                return Err(ApiError::new(
                    ApiErrorKind::ConnectionLimitExceeded,
                    format!("At most {max} concurrent connections are allowed on this stream."),
                ));
            }
            match c.compare_exchange(cur, cur + 1, Ordering::SeqCst, Ordering::SeqCst) {
                Ok(_) => {
                    return Ok(OwnedSlot {
                        stream: stream.clone(),
                        list,
                    });
                }
                Err(now) => cur = now,
            }
        }
    }
}

impl Drop for OwnedSlot {
    fn drop(&mut self) {
        Self::counter(&self.stream, self.list).fetch_sub(1, Ordering::SeqCst);
    }
}

fn media_head(rid: &str, rx: mpsc::Receiver<Bytes>) -> http::Response<Body> {
    let head = MediaResponse::webm().to_http(rid);
    let (parts, _) = head.into_parts();
    http::Response::from_parts(parts, ChannelBody(rx).boxed_unsync())
}

fn parse_number(member: &str, text: &str) -> Result<u64, ApiError> {
    text.parse::<FragmentNumber>()
        .ok()
        .and_then(|n| n.sequence())
        .ok_or_else(|| {
            ApiError::invalid_argument(format!("{member} {text} is not a valid fragment number."))
        })
}

/// The entry with `seq ≥ cursor`, with its header.
fn next_entry(
    stream: &Stream,
    cursor: u64,
) -> Option<(FragmentEntry, Option<Arc<ProducerHeader>>)> {
    let d = lock(&stream.data);
    let i = d.fragments.partition_point(|f| f.seq < cursor);
    let e = d.fragments.get(i)?.clone();
    let h = d.headers.get(&e.header_id).cloned();
    Some((e, h))
}

async fn fragment_bytes(stream: &Stream, e: &FragmentEntry) -> Option<Bytes> {
    if let Some(c) = &e.cache {
        return Some(c.clone());
    }
    let loc = e.location?;
    let dir = stream.dir.clone();
    tokio::task::spawn_blocking(move || store::read_fragment(&dir, loc))
        .await
        .ok()?
        .ok()
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
    e: &FragmentEntry,
    data: &Bytes,
    trailer: Option<&Trailer>,
) -> Option<VecDeque<Bytes>> {
    let doc = FragmentDocument {
        header,
        fragment_number: &e.number,
        server_timestamp_ms: e.server_ms,
        producer_timestamp_ms: e.producer_ms,
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
        StartSelectorType::FragmentNumber => {
            parse_number(
                "AfterFragmentNumber",
                sel.after_fragment_number.as_deref().unwrap_or_default(),
            )? + 1
        }
        StartSelectorType::ContinuationToken => {
            parse_number(
                "ContinuationToken",
                sel.continuation_token.as_deref().unwrap_or_default(),
            )? + 1
        }
        StartSelectorType::ProducerTimestamp | StartSelectorType::ServerTimestamp => {
            let ts = sel.start_timestamp.map_or(0, |t| t.as_millis());
            let producer = sel.start_selector_type == StartSelectorType::ProducerTimestamp;
            let d = lock(&stream.data);
            d.fragments
                .iter()
                .find(|f| {
                    let start = if producer { f.producer_ms } else { f.server_ms };
                    start + f.duration_ms >= ts
                })
                .map_or(published, |f| f.seq)
        }
    };
    let slot = OwnedSlot::acquire(&stream, false, ctx.config.limits.max_get_media_connections)?;
    let (tx, body_rx) = mpsc::channel(8);
    let idle_end = ctx.config.limits.get_media_idle_end;
    tokio::spawn(async move {
        let _slot = slot;
        let stream = _slot.stream.clone();
        let mut cursor = cursor;
        loop {
            if !stream.is_readable() {
                break;
            }
            rx.borrow_and_update();
            match next_entry(&stream, cursor) {
                Some((e, header)) => {
                    cursor = e.seq + 1;
                    let (Some(header), Some(data)) = (header, fragment_bytes(&stream, &e).await)
                    else {
                        send_error_doc(&tx, None, "INTERNAL_ERROR", 5000, Some(&e.number)).await;
                        break;
                    };
                    let trailer = Trailer {
                        millis_behind_now: now_ms().saturating_sub(e.server_ms),
                        continuation_token: e.number.clone(),
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

/// `POST /getMediaForFragmentList`.
pub(crate) fn get_media_for_fragment_list(
    ctx: &Arc<Ctx>,
    r: GetMediaForFragmentListRequest,
    rid: &str,
) -> Result<http::Response<Body>, ApiError> {
    let stream = find(ctx, r.stream_name.as_deref(), r.stream_arn.as_deref())?;
    let slot = OwnedSlot::acquire(
        &stream,
        true,
        ctx.config.limits.max_fragment_list_connections,
    )?;
    let (tx, body_rx) = mpsc::channel(8);
    tokio::spawn(async move {
        let _slot = slot;
        let stream = _slot.stream.clone();
        for number in r.fragments {
            let found = number
                .parse::<FragmentNumber>()
                .ok()
                .and_then(|n| n.sequence())
                .and_then(|seq| {
                    let d = lock(&stream.data);
                    let i = d.find_seq(seq)?;
                    let e = d.fragments.get(i)?.clone();
                    if e.number != number {
                        return None;
                    }
                    let h = d.headers.get(&e.header_id).cloned();
                    Some((e, h))
                });
            let ok = match found {
                Some((e, Some(header))) => match fragment_bytes(&stream, &e).await {
                    Some(data) => match document_chunks(&header, &e, &data, None) {
                        Some(chunks) => send_chunks(&tx, chunks).await,
                        None => false,
                    },
                    None => {
                        send_error_doc(
                            &tx,
                            Some(&header),
                            "FRAGMENT_NOT_FOUND",
                            3000,
                            Some(&number),
                        )
                        .await
                    }
                },
                _ => send_error_doc(&tx, None, "FRAGMENT_NOT_FOUND", 3000, Some(&number)).await,
            };
            if !ok {
                break;
            }
        }
    });
    Ok(media_head(rid, body_rx))
}

/// `POST /listFragments`.
pub(crate) fn list_fragments(
    ctx: &Arc<Ctx>,
    r: ListFragmentsRequest,
) -> Result<ListFragmentsResponse, ApiError> {
    let stream = find(ctx, r.stream_name.as_deref(), r.stream_arn.as_deref())?;
    let bad_token = || ApiError::invalid_argument("NextToken is not valid.");
    let (producer, start, end, after) = match &r.next_token {
        Some(t) => {
            let text = hex::decode(t)
                .ok()
                .and_then(|b| String::from_utf8(b).ok())
                .ok_or_else(bad_token)?;
            let parts: Vec<&str> = text.split(':').collect();
            let [kind, s, e, a] = parts.as_slice() else {
                return Err(bad_token());
            };
            (
                *kind == "P",
                s.parse::<u64>().map_err(|_| bad_token())?,
                e.parse::<u64>().map_err(|_| bad_token())?,
                a.parse::<u64>().map_err(|_| bad_token())?,
            )
        }
        None => {
            let sel = r.fragment_selector.as_ref().ok_or_else(|| {
                ApiError::invalid_argument("FragmentSelector is required without NextToken.")
            })?;
            (
                sel.fragment_selector_type == TimestampSelectorType::ProducerTimestamp,
                sel.timestamp_range.start_timestamp.as_millis(),
                sel.timestamp_range.end_timestamp.as_millis(),
                0,
            )
        }
    };
    let max = usize::try_from(r.max_results.unwrap_or(1000)).unwrap_or(1000);
    let d = lock(&stream.data);
    let mut matching = d
        .fragments
        .iter()
        .filter(|f| f.seq + 1 > after)
        .filter(|f| {
            let ts = if producer { f.producer_ms } else { f.server_ms };
            ts >= start && ts <= end
        });
    let mut fragments = Vec::new();
    let mut last = 0;
    for f in matching.by_ref().take(max) {
        last = f.seq + 1;
        fragments.push(Fragment {
            fragment_number: f.number.clone(),
            fragment_size_in_bytes: f.size,
            producer_timestamp: Timestamp::from_millis(f.producer_ms),
            server_timestamp: Timestamp::from_millis(f.server_ms),
            fragment_length_in_milliseconds: f.duration_ms,
        });
    }
    let next_token = matching.next().map(|_| {
        hex::encode(format!("{}:{start}:{end}:{last}", if producer { "P" } else { "S" }).as_bytes())
    });
    Ok(ListFragmentsResponse {
        fragments,
        next_token,
    })
}
