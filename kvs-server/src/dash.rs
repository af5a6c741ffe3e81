//! DASH playback: `GetDASHStreamingSessionURL` and the manifest it points at.
//!
//! Sessions, tokens and fragments are HLS's ([`crate::hls`]): the same HMAC session token (marked
//! as a DASH session, so it does not open HLS routes and the other way round), the same fragment
//! selection, and the same init and media fragments from kvs-core's `Mp4Writer`. Only the
//! manifest is DASH's own. `POST /getDASHStreamingSessionURL` answers
//! `<endpoint>/dash/v1/getDASHManifest.mpd?SessionToken=T`; the GETs under `/dash/v1/` are
//! authorized by the token alone (no SigV4):
//!
//! * `getDASHManifest.mpd`: an MPD with one `Period` and one `AdaptationSet` per track (video
//!   `video/mp4` with `width`/`height`, audio `audio/mp4`), each with one `Representation`
//!   (`codecs` from the track). Tracks are served apart (`TrackNumber=N` on the fragment URLs):
//!   ffmpeg's DASH demuxer labels every packet of a representation with its first stream, so a
//!   muxed representation does not play there. A `SegmentList` (timescale 1000) names
//!   `getMP4InitFragment.mp4` as its `Initialization` and each KVS fragment as a `SegmentURL`
//!   (`getMP4MediaFragment.mp4?FragmentNumber=N`, not a `$Number$` template: fragment numbers
//!   are not consecutive), timed by a `SegmentTimeline` whose `S@t` counts from the session's
//!   origin like the fragments' decode times. `DisplayFragmentTimestamp=ALWAYS` adds `kvs:ts`
//!   (the fragment's start under the selector's timestamp kind, epoch ms) and
//!   `DisplayFragmentNumber=ALWAYS` adds `kvs:fn` to each `S`. ON_DEMAND is `type="static"`
//!   with a `mediaPresentationDuration`; LIVE and LIVE_REPLAY are `type="dynamic"` with
//!   `minimumUpdatePeriod` (players re-fetch it as fragments arrive).
//! * `getMP4InitFragment.mp4?TrackNumber=N` and
//!   `getMP4MediaFragment.mp4?FragmentNumber=F&TrackNumber=N`: as for HLS, that track only
//!   (all tracks without `TrackNumber`).
//!
//! No DASH manifest sample from the service is public, so the MPD's exact shape is ours.

use std::sync::Arc;

use kvs_core::api::*;
use kvs_core::index::PlaylistEntry;
use kvs_core::mkv::TrackType;
use kvs_core::mp4::Mp4Writer;

use crate::clip::mp4_error;
use crate::hls::{self, Api, Playback, Session, SessionRequest};
use crate::http_service::{Body, Ctx, error_response};

/// The path prefix of the DASH playback GETs.
pub(crate) const PLAYBACK_PREFIX: &str = "/dash/v1/";
/// Content type of the manifest.
const MPD: &str = "application/dash+xml";
/// `minimumUpdatePeriod` of dynamic manifests, seconds.
const UPDATE_PERIOD_S: u64 = 2;

/// `POST /getDASHStreamingSessionURL`.
pub(crate) fn get_dash_streaming_session_url(
    ctx: &Arc<Ctx>,
    r: GetDashStreamingSessionUrlRequest,
    base: &str,
) -> Result<GetDashStreamingSessionUrlResponse, ApiError> {
    let token = hls::create_session(
        ctx,
        SessionRequest {
            api: Api::Dash,
            stream_name: r.stream_name.as_deref(),
            stream_arn: r.stream_arn.as_deref(),
            mode: r.playback_mode,
            selector: r.dash_fragment_selector,
            discontinuity: None,
            display_timestamp: r.display_fragment_timestamp == Some(DisplayMode::Always),
            display_number: r.display_fragment_number == Some(DisplayMode::Always),
            expires: r.expires,
            max_results: r.max_manifest_fragment_results,
        },
    )?;
    Ok(GetDashStreamingSessionUrlResponse {
        dash_streaming_session_url: format!(
            "{base}{PLAYBACK_PREFIX}getDASHManifest.mpd?SessionToken={token}"
        ),
    })
}

/// `GET /dash/v1/...`: authorized by the session token alone (no SigV4).
pub(crate) async fn serve(
    ctx: Arc<Ctx>,
    parts: &http::request::Parts,
    rid: &str,
) -> http::Response<Body> {
    match playback(&ctx, parts, rid).await {
        Ok(r) => r,
        Err(e) => error_response(&e, rid),
    }
}

async fn playback(
    ctx: &Arc<Ctx>,
    parts: &http::request::Parts,
    rid: &str,
) -> Result<http::Response<Body>, ApiError> {
    let Playback {
        session,
        stream,
        token,
        query,
        resource,
    } = hls::open_playback(ctx, parts, Api::Dash, PLAYBACK_PREFIX)?;
    let now = ctx.now_ms();
    match resource {
        "getDASHManifest.mpd" => {
            let (tracks, entries) = hls::session_tracks(ctx, &stream, &session, now).await?;
            let timed: Vec<(&PlaylistEntry, u64)> = {
                let data = crate::state::lock(&stream.data);
                entries
                    .iter()
                    .map(|e| {
                        let end = hls::segment_end_ms(&data.index, &e.fragment);
                        (e, end.saturating_sub(e.fragment.producer_timestamp_ms))
                    })
                    .collect()
            };
            let bandwidth = hls::bandwidth(&entries);
            let mut media = Vec::with_capacity(tracks.len());
            for t in &tracks {
                let kind = match t.track_type {
                    TrackType::Video => "video",
                    TrackType::Audio => "audio",
                    _ => continue,
                };
                let writer = Mp4Writer::new(std::slice::from_ref(t)).map_err(mp4_error)?;
                media.push(Media {
                    track: t.number,
                    kind,
                    codecs: writer.codecs().join(","),
                    resolution: writer.resolution(),
                    bandwidth,
                });
            }
            let text = manifest(&session, &timed, &media, now, token);
            Ok(hls::ok(MPD, text.into(), rid))
        }
        "getMP4InitFragment.mp4" => {
            let track = track_number(query)?;
            hls::init_fragment(ctx, &stream, &session, track, now, rid).await
        }
        "getMP4MediaFragment.mp4" => {
            let track = track_number(query)?;
            hls::media_fragment(ctx, &stream, &session, track, query, rid).await
        }
        other => Err(ApiError::new(
            ApiErrorKind::ResourceNotFound,
            format!(
                "{PLAYBACK_PREFIX}{other} is not a DASH resource: use the manifest URL GetDASHStreamingSessionURL returned."
            ),
        )),
    }
}

/// The `TrackNumber` query parameter (absent: all tracks).
fn track_number(query: &str) -> Result<Option<u64>, ApiError> {
    hls::query_param(query, "TrackNumber")
        .map(|n| {
            n.parse().map_err(|_| {
                ApiError::invalid_argument("TrackNumber must be a track number such as 1 or 2.")
            })
        })
        .transpose()
}

/// What the manifest says about one track.
struct Media {
    /// Its track number (`TrackNumber` of its fragment URLs).
    track: u64,
    /// `video` or `audio`.
    kind: &'static str,
    codecs: String,
    resolution: Option<(u16, u16)>,
    bandwidth: u64,
}

/// An ISO 8601 duration in seconds with milliseconds: `PT12.345S`.
fn duration(ms: u64) -> String {
    format!("PT{}.{:03}S", ms / 1000, ms % 1000)
}

/// The MPD of `timed` (entries with their durations, ms), one AdaptationSet per track.
fn manifest(
    session: &Session,
    timed: &[(&PlaylistEntry, u64)],
    media: &[Media],
    now: u64,
    token: &str,
) -> String {
    use std::fmt::Write;
    let total: u64 = timed.iter().map(|(_, d)| *d).sum();
    let max_segment = timed.iter().map(|(_, d)| *d).max().unwrap_or(1).max(1);
    let mut out = String::with_capacity(1024 + timed.len() * 200);
    out.push_str("<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n");
    out.push_str(
        "<MPD xmlns=\"urn:mpeg:dash:schema:mpd:2011\" xmlns:kvs=\"urn:kvs:dash:2018\" \
         profiles=\"urn:mpeg:dash:profile:isoff-main:2011\"",
    );
    if session.m == 2 {
        let _ = write!(
            out,
            " type=\"static\" mediaPresentationDuration=\"{}\"",
            duration(total)
        );
    } else {
        let _ = write!(
            out,
            " type=\"dynamic\" availabilityStartTime=\"{}\" publishTime=\"{}\" \
             minimumUpdatePeriod=\"PT{UPDATE_PERIOD_S}S\" timeShiftBufferDepth=\"{}\"",
            hls::date_time(session.o),
            hls::date_time(now),
            duration(total.max(1000))
        );
    }
    let _ = writeln!(out, " minBufferTime=\"{}\">", duration(max_segment));
    out.push_str("  <Period id=\"0\" start=\"PT0S\">\n");
    for (i, m) in media.iter().enumerate() {
        let (kind, track) = (m.kind, m.track);
        let _ = writeln!(
            out,
            "    <AdaptationSet id=\"{i}\" contentType=\"{kind}\" mimeType=\"{kind}/mp4\" \
             segmentAlignment=\"true\" startWithSAP=\"1\">"
        );
        let _ = write!(
            out,
            "      <Representation id=\"{track}\" bandwidth=\"{}\"",
            m.bandwidth
        );
        if !m.codecs.is_empty() {
            let _ = write!(out, " codecs=\"{}\"", m.codecs);
        }
        if let Some((w, h)) = m.resolution {
            let _ = write!(out, " width=\"{w}\" height=\"{h}\"");
        }
        out.push_str(">\n        <SegmentList timescale=\"1000\">\n");
        let _ = writeln!(
            out,
            "          <Initialization sourceURL=\"getMP4InitFragment.mp4?TrackNumber={track}&amp;SessionToken={token}\"/>"
        );
        out.push_str("          <SegmentTimeline>\n");
        for (e, d) in timed {
            let t = e.fragment.producer_timestamp_ms.saturating_sub(session.o);
            let _ = write!(out, "            <S t=\"{t}\" d=\"{d}\"");
            if session.t {
                let _ = write!(out, " kvs:ts=\"{}\"", e.fragment.timestamp(session.kind()));
            }
            if session.f {
                let _ = write!(out, " kvs:fn=\"{}\"", e.fragment.number().as_str());
            }
            out.push_str("/>\n");
        }
        out.push_str("          </SegmentTimeline>\n");
        for (e, _) in timed {
            let _ = writeln!(
                out,
                "          <SegmentURL media=\"getMP4MediaFragment.mp4?FragmentNumber={}&amp;TrackNumber={track}&amp;SessionToken={token}\"/>",
                e.fragment.number().as_str()
            );
        }
        out.push_str("        </SegmentList>\n      </Representation>\n    </AdaptationSet>\n");
    }
    out.push_str("  </Period>\n</MPD>\n");
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations_are_iso_8601_seconds() {
        assert_eq!(duration(12_345), "PT12.345S");
        assert_eq!(duration(7), "PT0.007S");
    }
}
