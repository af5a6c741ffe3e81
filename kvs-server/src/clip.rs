//! GetClip: the fragments of a time range as one MP4 file, streamed fragment by fragment.
//!
//! Selection follows the service (kvs-core `index::select`): fragments whose start timestamp
//! (producer or server, as the selector says) lies in `[StartTimestamp, EndTimestamp]`, whole
//! fragments (a fragment starting inside the range is included with all its frames, even those
//! past `EndTimestamp`; one starting before `StartTimestamp` is not), producer-timestamp
//! duplicates dropped (the oldest ingested wins), and at most 200 fragments / 100 MB counted from
//! the start: the service truncates the clip there rather than failing.
//!
//! The body is a fragmented MP4 (`ftyp` + `moov`, then `moof` + `mdat` per KVS fragment) from
//! kvs-core's [`Mp4Writer`], so memory stays bounded by one fragment whatever the clip's length.
//! The service itself answers a non-fragmented MP4; both are ISO BMFF files every player reads.
//! The first fragment is decoded and converted before the response head is sent, so codec errors
//! (UnsupportedStreamMediaType, MissingCodecPrivateData, InvalidCodecPrivateData,
//! InvalidMediaFrame) come back as real error responses. A later fragment whose tracks differ
//! from the first (a new producer session with another codec configuration) ends the clip there.

use std::sync::Arc;

use bytes::{Bytes, BytesMut};
use http_body_util::BodyExt;
use kvs_core::api::*;
use kvs_core::index::Fragment as IndexFragment;
use kvs_core::mkv::reader::{Event, MkvReader};
use kvs_core::mkv::{Frame, TrackInfo};
use kvs_core::mp4::{Mp4Error, Mp4Writer, Segment};
use tokio::sync::mpsc;

use crate::control::find;
use crate::http_service::{Body, ChannelBody, Ctx};
use crate::keys::Vault;
use crate::media::{ReadFail, fragment_bytes, range_query};
use crate::state::{Stream, lock};

/// The service's answer when the range holds no fragment.
pub(crate) const NO_FRAGMENTS: &str = "No fragments found in the stream for the streaming request.";

pub(crate) fn mp4_error(e: Mp4Error) -> ApiError {
    let kind = match &e {
        Mp4Error::UnsupportedCodec { .. } | Mp4Error::TrackCount(_) => {
            ApiErrorKind::UnsupportedStreamMediaType
        }
        Mp4Error::MissingCodecPrivate { .. } => ApiErrorKind::MissingCodecPrivateData,
        Mp4Error::InvalidCodecPrivate { .. } => ApiErrorKind::InvalidCodecPrivateData,
        _ => ApiErrorKind::InvalidMediaFrame,
    };
    ApiError::new(kind, format!("The clip cannot be built: {e}."))
}

/// The tracks and frames of one stored fragment, decoded from its producer header and cluster.
pub(crate) async fn decode(
    stream: &Stream,
    vault: &Vault,
    f: &IndexFragment,
) -> Result<(Vec<TrackInfo>, Vec<Frame>), ApiError> {
    let header = lock(&stream.data).header_for(f.sequence);
    let gone = || {
        ApiError::new(
            ApiErrorKind::ResourceNotFound,
            format!(
                "Fragment {} is no longer available; retry the request.",
                f.number().as_str()
            ),
        )
    };
    let header = header.ok_or_else(gone)?;
    let data = match fragment_bytes(stream, vault, f).await {
        Ok(data) => data,
        Err(ReadFail::NotFound) => return Err(gone()),
        // Stored media that does not open is never served, not even partly.
        Err(fail) => {
            let (code, id) = fail.tag(("FRAGMENT_NOT_FOUND", 3000));
            return Err(ApiError::new(
                ApiErrorKind::InternalFailure,
                format!(
                    "Fragment {} cannot be read ({code}, error id {id}).",
                    f.number().as_str()
                ),
            ));
        }
    };
    let mut start = BytesMut::with_capacity(header.document_start_len());
    header
        .write_document_start(&mut start)
        .map_err(|e| ApiError::new(ApiErrorKind::InvalidMediaFrame, e.to_string()))?;
    let mut reader = MkvReader::new();
    let invalid = |e: &dyn std::fmt::Display| {
        ApiError::new(
            ApiErrorKind::InvalidMediaFrame,
            format!("Fragment {} cannot be parsed: {e}.", f.number().as_str()),
        )
    };
    reader.push(start.freeze()).map_err(|e| invalid(&e))?;
    reader.push(data).map_err(|e| invalid(&e))?;
    reader.finish();
    let mut tracks: Vec<TrackInfo> = Vec::new();
    let mut frames = Vec::new();
    while let Some(event) = reader.poll_event() {
        match event.map_err(|e| invalid(&e))? {
            Event::Track(t) if !tracks.iter().any(|o| o.number == t.number) => {
                tracks.push(*t);
            }
            Event::Frame(fr) => frames.push(fr),
            _ => {}
        }
    }
    Ok((tracks, frames))
}

/// Whether two fragments' tracks can share one MP4 sample description.
fn same_tracks(a: &[TrackInfo], b: &[TrackInfo]) -> bool {
    a.len() == b.len()
        && a.iter().zip(b).all(|(x, y)| {
            x.number == y.number && x.codec_id == y.codec_id && x.codec_private == y.codec_private
        })
}

async fn send(tx: &mpsc::Sender<Bytes>, segment: Option<Segment>) -> bool {
    match segment {
        Some(s) => tx.send(s.to_bytes()).await.is_ok(),
        None => true,
    }
}

/// `POST /getClip`.
pub(crate) async fn get_clip(
    ctx: &Arc<Ctx>,
    r: GetClipRequest,
    rid: &str,
) -> Result<http::Response<Body>, ApiError> {
    let stream = find(ctx, r.stream_name.as_deref(), r.stream_arn.as_deref())?;
    if stream.retention_hours() == 0 {
        return Err(ApiError::new(
            ApiErrorKind::NoDataRetention,
            "The stream keeps no data (DataRetentionInHours is 0); increase its retention to get clips.",
        ));
    }
    let clip = lock(&stream.data)
        .index
        .clip(range_query(&r.clip_fragment_selector));
    let mut selected = clip.fragments.into_iter();
    let first = selected
        .next()
        .ok_or_else(|| ApiError::new(ApiErrorKind::ResourceNotFound, NO_FRAGMENTS))?;
    let (tracks, frames) = decode(&stream, &ctx.vault, &first).await?;
    let mut writer = Mp4Writer::new(&tracks).map_err(mp4_error)?;
    let init = writer.init_segment();
    let first_segment = writer.fragment(&frames).map_err(mp4_error)?;

    let vault = Arc::clone(&ctx.vault);
    let (tx, body_rx) = mpsc::channel::<Bytes>(4);
    let rest: Vec<IndexFragment> = selected.collect();
    tokio::spawn(async move {
        if tx.send(init).await.is_err() || !send(&tx, first_segment).await {
            return;
        }
        for f in rest {
            let Ok((t, frames)) = decode(&stream, &vault, &f).await else {
                break;
            };
            if !same_tracks(&tracks, &t) {
                break;
            }
            let Ok(segment) = writer.fragment(&frames) else {
                break;
            };
            if !send(&tx, segment).await {
                return;
            }
        }
        if let Ok(last) = writer.finish() {
            send(&tx, last).await;
        }
    });
    let head = MediaResponse {
        content_type: MP4_CONTENT_TYPE.into(),
    }
    .to_http(rid);
    let (parts, _) = head.into_parts();
    Ok(http::Response::from_parts(
        parts,
        ChannelBody(body_rx).boxed_unsync(),
    ))
}
