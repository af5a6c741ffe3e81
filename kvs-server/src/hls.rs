//! HLS playback: `GetHLSStreamingSessionURL` and the playlist/fragment GETs it points at.
//!
//! `POST /getHLSStreamingSessionURL` (SigV4-signed, authorized by the access policy like every
//! other operation) answers `<endpoint>/hls/v1/getHLSMasterPlaylist.m3u8?SessionToken=T`. As in
//! the service, the playback URLs are **not** SigV4-signed: players make plain GETs, and the
//! opaque `SessionToken` is their only authorization. The token here is
//! `base64url(session JSON) "." base64url(HMAC-SHA256(session JSON))` under a 256-bit secret
//! drawn from the system RNG when the server starts: it cannot be forged or altered (any change
//! fails the MAC), it names the stream (name and creation time: a deleted and re-created stream
//! does not match), the playback mode, selector and options, and its expiry. Sessions end when
//! the server restarts (a new secret). A token that fails the MAC, or whose `Expires` has
//! passed, gets HTTP 403 `NotAuthorizedException` (the service's observed answer, "Streaming
//! session token is expired"); a session whose stream is gone gets 404 ResourceNotFound.
//!
//! The GETs, all under `/hls/v1/`, relative to each other as in the service:
//!
//! * `getHLSMasterPlaylist.m3u8`: one variant (`BANDWIDTH`, `CODECS`, `RESOLUTION`) pointing at
//! * `getHLSMediaPlaylist.m3u8`: `EXT-X-VERSION:7`, `EXT-X-TARGETDURATION`,
//!   `EXT-X-MEDIA-SEQUENCE` (the first listed fragment's sequence counter), `EXT-X-MAP` to the
//!   init segment, per fragment `EXT-X-DISCONTINUITY` (per `DiscontinuityMode`),
//!   `EXT-X-PROGRAM-DATE-TIME` (with `DisplayFragmentTimestamp=ALWAYS`) and `EXTINF`, and
//!   `EXT-X-ENDLIST` for ON_DEMAND, and for LIVE_REPLAY with an end once the range's last
//!   fragment is listed. Fragment selection is kvs-core's ([`FragmentIndex::playlist`]): LIVE the
//!   newest `MaxMediaPlaylistFragmentResults`, ON_DEMAND the oldest of the range, LIVE_REPLAY
//!   revealed one fragment duration at a time since the session was created.
//! * `getMP4InitFragment.mp4`: `ftyp` + `moov` for the tracks of the playlist's first fragment.
//! * `getMP4MediaFragment.mp4?FragmentNumber=N`: that KVS fragment as one `moof` + `mdat`
//!   ([`Mp4Writer::standalone_fragment`]). Decode times count from the session's origin (the
//!   producer start of its first fragment), so they are continuous across fragments; the last
//!   sample of a fragment lasts until the next fragment starts (when that follows within a
//!   second), which is also the fragment's `EXTINF`.
//!
//! DASH ([`crate::dash`]) is built on this module: [`create_session`], [`open_playback`],
//! [`init_fragment`] and [`media_fragment`] serve both; a token records which API issued it and
//! opens only that API's routes.
//!
//! Fragment bytes are read through [`crate::media::fragment_bytes`] (via GetClip's decoder): a
//! stored record that does not open is never served (500 InternalFailure).
//!
//! Video and audio go in the same segments (one variant, no separate audio rendition; the
//! `TrackNumber` query parameter is accepted and ignored). `ContainerFormat=MPEG_TS` is refused
//! with InvalidArgument: only fragmented MP4 is served. Not modelled: the per-session playback
//! TPS limits, the 10-sessions-per-stream limit, and remembering what a LIVE playlist already
//! listed (a late-arriving older fragment can appear in a LIVE playlist).

use std::sync::Arc;

use bytes::Bytes;
use kvs_core::api::*;
use kvs_core::index::{
    DiscontinuityMode as Disc, FragmentIndex, PlaybackMode as Mode, PlaylistEntry, PlaylistRequest,
    RangeQuery, TimestampKind,
};
use kvs_core::mkv::TrackInfo;
use kvs_core::mp4::Mp4Writer;
use ring::hmac;
use serde::{Deserialize, Serialize};

use crate::clip::{NO_FRAGMENTS, decode, mp4_error};
use crate::control::find;
use crate::http_service::{Body, Ctx, error_response, full};
use crate::state::{Stream, lock};

/// The path prefix of the playback GETs.
pub(crate) const PLAYBACK_PREFIX: &str = "/hls/v1/";
/// Session lifetime when `Expires` is not given, seconds.
const DEFAULT_EXPIRES_S: i64 = 300;
/// How recent the newest fragment must be for a LIVE session, ms.
const LIVE_FRESHNESS_MS: u64 = 30_000;
/// A next fragment starting this long after a fragment's last frame still ends it, ms.
const MAX_JOIN_MS: u64 = 1_000;
/// Longest `SessionToken` accepted, bytes.
const MAX_TOKEN_LEN: usize = 4096;
/// Content type of the playlists.
const M3U8: &str = "application/vnd.apple.mpegurl";

/// The secret that signs session tokens, drawn when the server starts.
pub(crate) struct SessionKey(Option<hmac::Key>);

impl SessionKey {
    /// A fresh random key (none if the system RNG fails: sessions are then refused).
    pub(crate) fn generate() -> SessionKey {
        let rng = ring::rand::SystemRandom::new();
        SessionKey(hmac::Key::generate(hmac::HMAC_SHA256, &rng).ok())
    }
}

/// What a session token carries (short keys: it travels in every URL).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub(crate) struct Session {
    /// Stream name.
    pub(crate) s: String,
    /// Stream creation time, epoch ms (identity).
    pub(crate) c: u64,
    /// Playback mode: 0 LIVE, 1 LIVE_REPLAY, 2 ON_DEMAND.
    pub(crate) m: u8,
    /// Producer (true) or server timestamps.
    pub(crate) p: bool,
    /// Range start and end, epoch ms.
    pub(crate) a: Option<u64>,
    pub(crate) b: Option<u64>,
    /// Discontinuity mode: 0 ALWAYS, 1 NEVER, 2 ON_DISCONTINUITY.
    pub(crate) d: u8,
    /// DisplayFragmentTimestamp=ALWAYS.
    pub(crate) t: bool,
    /// MaxMediaPlaylistFragmentResults.
    pub(crate) n: u32,
    /// Decode-time origin: a producer timestamp, epoch ms.
    pub(crate) o: u64,
    /// Issued and expiry, epoch ms.
    pub(crate) i: u64,
    pub(crate) e: u64,
    /// Which API issued it: 0 HLS, 1 DASH (a token plays only on its own API's routes).
    #[serde(default)]
    pub(crate) h: u8,
    /// DASH DisplayFragmentNumber=ALWAYS.
    #[serde(default)]
    pub(crate) f: bool,
}

impl Session {
    pub(crate) fn kind(&self) -> TimestampKind {
        if self.p {
            TimestampKind::Producer
        } else {
            TimestampKind::Server
        }
    }

    pub(crate) fn request(&self, now_ms: u64) -> PlaylistRequest {
        let start_ms = self.a.unwrap_or(0);
        let mode = match self.m {
            0 => Mode::Live,
            1 => Mode::LiveReplay {
                start_ms,
                end_ms: self.b,
                elapsed_ms: now_ms.saturating_sub(self.i),
            },
            _ => Mode::OnDemand {
                start_ms,
                end_ms: self.b.unwrap_or(u64::MAX),
            },
        };
        let discontinuity = match self.d {
            0 => Disc::Always,
            1 => Disc::Never,
            _ => Disc::OnDiscontinuity,
        };
        PlaylistRequest {
            kind: self.kind(),
            mode,
            max_results: usize::try_from(self.n).unwrap_or(1),
            discontinuity,
        }
    }

    /// Whether fragment `f` belongs to the session's range.
    fn covers(&self, f: &kvs_core::index::Fragment) -> bool {
        let t = f.timestamp(self.kind());
        self.a.is_none_or(|a| t >= a) && self.b.is_none_or(|b| t <= b)
    }
}

const B64: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";

/// Unpadded base64url.
fn b64_encode(data: &[u8]) -> String {
    let mut out = String::with_capacity(data.len().div_ceil(3) * 4);
    for chunk in data.chunks(3) {
        let b = [
            chunk.first().copied().unwrap_or(0),
            chunk.get(1).copied().unwrap_or(0),
            chunk.get(2).copied().unwrap_or(0),
        ];
        let n = (u32::from(b[0]) << 16) | (u32::from(b[1]) << 8) | u32::from(b[2]);
        for i in 0..=chunk.len() {
            let idx = ((n >> (18 - 6 * i)) & 63) as usize;
            out.push(char::from(B64.get(idx).copied().unwrap_or(b'A')));
        }
    }
    out
}

/// Unpadded base64url; `None` for anything else.
fn b64_decode(text: &str) -> Option<Vec<u8>> {
    let mut out = Vec::with_capacity(text.len() * 3 / 4);
    let mut acc = 0u32;
    let mut bits = 0u32;
    for c in text.bytes() {
        let v = B64.iter().position(|x| *x == c)?;
        acc = (acc << 6) | v as u32;
        bits += 6;
        if bits >= 8 {
            bits -= 8;
            out.push((acc >> bits) as u8);
            acc &= (1 << bits) - 1;
        }
    }
    // Leftover bits must be zero padding of less than a byte (a canonical encoding).
    (bits < 6 && acc == 0).then_some(out)
}

fn mint(key: &hmac::Key, session: &Session) -> Result<String, ApiError> {
    let json = serde_json::to_vec(session)
        .map_err(|e| crate::http_service::internal(format!("session token: {e}")))?;
    let tag = hmac::sign(key, &json);
    Ok(format!(
        "{}.{}",
        b64_encode(&json),
        b64_encode(tag.as_ref())
    ))
}

/// 403 NotAuthorizedException, as the service answers a bad or expired session token.
fn refused(message: &str) -> ApiError {
    let mut e = ApiError::new(ApiErrorKind::NotAuthorized, message);
    e.http_status = 403;
    e
}

/// The session a token carries, if it is ours, unaltered, unexpired and issued by `api`.
fn open(ctx: &Ctx, token: Option<&str>, api: Api) -> Result<Session, ApiError> {
    let op = api.operation();
    let invalid = || {
        refused(&format!(
            "The SessionToken is not valid: it was not issued by this server (or the server \
             restarted since) or it was altered. Get a new URL with {op}."
        ))
    };
    let token = token.ok_or_else(|| {
        refused(&format!(
            "The SessionToken query parameter is missing; use the URL {op} returned."
        ))
    })?;
    if token.len() > MAX_TOKEN_LEN {
        return Err(invalid());
    }
    let key = ctx.hls_key.0.as_ref().ok_or_else(invalid)?;
    let (payload, tag) = token.split_once('.').ok_or_else(invalid)?;
    let json = b64_decode(payload).ok_or_else(invalid)?;
    let tag = b64_decode(tag).ok_or_else(invalid)?;
    hmac::verify(key, &json, &tag).map_err(|_| invalid())?;
    let session: Session = serde_json::from_slice(&json).map_err(|_| invalid())?;
    if session.h != api as u8 {
        return Err(invalid());
    }
    if ctx.now_ms() >= session.e {
        return Err(refused(&format!(
            "Streaming session token is expired. Get a new URL with {op}."
        )));
    }
    Ok(session)
}

/// The playback API a session belongs to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Api {
    /// GetHLSStreamingSessionURL, `/hls/v1/`.
    Hls = 0,
    /// GetDASHStreamingSessionURL, `/dash/v1/`.
    Dash = 1,
}

impl Api {
    fn operation(self) -> &'static str {
        match self {
            Api::Hls => "GetHLSStreamingSessionURL",
            Api::Dash => "GetDASHStreamingSessionURL",
        }
    }

    fn short(self) -> &'static str {
        match self {
            Api::Hls => "HLS",
            Api::Dash => "DASH",
        }
    }
}

/// What a session URL request asks for, common to HLS and DASH.
pub(crate) struct SessionRequest<'a> {
    /// Which API.
    pub(crate) api: Api,
    /// StreamName / StreamARN.
    pub(crate) stream_name: Option<&'a str>,
    pub(crate) stream_arn: Option<&'a str>,
    /// PlaybackMode (LIVE when absent).
    pub(crate) mode: Option<PlaybackMode>,
    /// The HLS/DASH fragment selector.
    pub(crate) selector: Option<SessionFragmentSelector>,
    /// DiscontinuityMode (HLS only; DASH never marks discontinuities).
    pub(crate) discontinuity: Option<DiscontinuityMode>,
    /// DisplayFragmentTimestamp=ALWAYS.
    pub(crate) display_timestamp: bool,
    /// DisplayFragmentNumber=ALWAYS (DASH).
    pub(crate) display_number: bool,
    /// Expires, seconds.
    pub(crate) expires: Option<i64>,
    /// MaxMediaPlaylistFragmentResults / MaxManifestFragmentResults.
    pub(crate) max_results: Option<i64>,
}

/// `POST /getHLSStreamingSessionURL`.
pub(crate) fn get_hls_streaming_session_url(
    ctx: &Arc<Ctx>,
    r: GetHlsStreamingSessionUrlRequest,
    base: &str,
) -> Result<GetHlsStreamingSessionUrlResponse, ApiError> {
    if r.container_format == Some(ContainerFormat::MpegTs) {
        return Err(ApiError::invalid_argument(
            "ContainerFormat MPEG_TS is not supported by this kvs server; use FRAGMENTED_MP4 (the default).",
        ));
    }
    let token = create_session(
        ctx,
        SessionRequest {
            api: Api::Hls,
            stream_name: r.stream_name.as_deref(),
            stream_arn: r.stream_arn.as_deref(),
            mode: r.playback_mode,
            selector: r.hls_fragment_selector,
            discontinuity: r.discontinuity_mode,
            display_timestamp: r.display_fragment_timestamp == Some(DisplayMode::Always),
            display_number: false,
            expires: r.expires,
            max_results: r.max_media_playlist_fragment_results,
        },
    )?;
    Ok(GetHlsStreamingSessionUrlResponse {
        hls_streaming_session_url: format!(
            "{base}{PLAYBACK_PREFIX}getHLSMasterPlaylist.m3u8?SessionToken={token}"
        ),
    })
}

/// Checks a session URL request against the stream and mints its session token.
pub(crate) fn create_session(ctx: &Arc<Ctx>, r: SessionRequest<'_>) -> Result<String, ApiError> {
    let stream = find(ctx, r.stream_name, r.stream_arn)?;
    if stream.retention_hours() == 0 {
        return Err(ApiError::new(
            ApiErrorKind::NoDataRetention,
            format!(
                "The stream keeps no data (DataRetentionInHours is 0); increase its retention to play it with {}.",
                r.api.short()
            ),
        ));
    }
    let Some(key) = ctx.hls_key.0.as_ref() else {
        return Err(crate::http_service::internal(
            "The server has no session key (its random number generator failed at start); restart it.",
        ));
    };
    let mode = r.mode.unwrap_or(PlaybackMode::Live);
    let selector = r.selector.unwrap_or_default();
    let producer =
        selector.fragment_selector_type == Some(TimestampSelectorType::ProducerTimestamp);
    let kind = if producer {
        TimestampKind::Producer
    } else {
        TimestampKind::Server
    };
    let range = selector.timestamp_range.unwrap_or_default();
    let discontinuity = match (r.api, r.discontinuity) {
        (Api::Dash, _) => 1,
        (_, Some(DiscontinuityMode::Always)) => 0,
        (_, Some(DiscontinuityMode::Never)) => 1,
        (_, Some(DiscontinuityMode::OnDiscontinuity)) => 2,
        (_, None) => match Disc::default_for(kind) {
            Disc::Always => 0,
            _ => 1,
        },
    };
    let default_max = if mode == PlaybackMode::OnDemand {
        1000
    } else {
        5
    };
    let max = r.max_results.unwrap_or(default_max);
    let expires = r.expires.unwrap_or(DEFAULT_EXPIRES_S);
    let now = ctx.now_ms();
    let (name, creation_ms) = {
        let m = lock(&stream.meta);
        (m.name.clone(), m.creation_ms)
    };
    let mut session = Session {
        s: name,
        c: creation_ms,
        m: match mode {
            PlaybackMode::Live => 0,
            PlaybackMode::LiveReplay => 1,
            PlaybackMode::OnDemand => 2,
        },
        p: producer,
        a: range.start_timestamp.map(|t| t.as_millis()),
        b: range.end_timestamp.map(|t| t.as_millis()),
        d: discontinuity,
        t: r.display_timestamp,
        n: u32::try_from(max.clamp(1, 5000)).unwrap_or(1),
        o: 0,
        i: now,
        e: now.saturating_add(u64::try_from(expires.max(0)).unwrap_or(0) * 1000),
        h: r.api as u8,
        f: r.display_number,
    };
    let entries = {
        let data = lock(&stream.data);
        if mode == PlaybackMode::Live
            && data
                .index
                .last()
                .is_none_or(|f| f.server_timestamp_ms.saturating_add(LIVE_FRESHNESS_MS) < now)
        {
            return Err(ApiError::new(ApiErrorKind::ResourceNotFound, NO_FRAGMENTS));
        }
        data.index.playlist(session.request(now))
    };
    session.o = entries
        .iter()
        .map(|e| e.fragment.producer_timestamp_ms)
        .min()
        .ok_or_else(|| ApiError::new(ApiErrorKind::ResourceNotFound, NO_FRAGMENTS))?;
    mint(key, &session)
}

/// A query parameter's value (no percent-decoding: tokens and numbers need none).
pub(crate) fn query_param<'a>(query: &'a str, name: &str) -> Option<&'a str> {
    query
        .split('&')
        .filter_map(|kv| kv.split_once('='))
        .find(|(k, _)| *k == name)
        .map(|(_, v)| v)
}

pub(crate) fn ok(content_type: &str, body: Bytes, rid: &str) -> http::Response<Body> {
    let mut response = http::Response::new(body);
    let h = response.headers_mut();
    if let Ok(v) = http::HeaderValue::from_str(content_type) {
        h.insert(http::header::CONTENT_TYPE, v);
    }
    if let Ok(v) = http::HeaderValue::from_str(rid) {
        h.insert("x-amzn-RequestId", v);
    }
    full(response)
}

/// `GET /hls/v1/...`: authorized by the session token alone (no SigV4).
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

/// A playback GET's verified session, its stream and its token.
pub(crate) struct Playback<'a> {
    /// The session the token carries.
    pub(crate) session: Session,
    /// The session's stream (same name and creation time, still readable).
    pub(crate) stream: Arc<Stream>,
    /// The token as given (to repeat in relative URLs).
    pub(crate) token: &'a str,
    /// The query string.
    pub(crate) query: &'a str,
    /// The resource after the API's path prefix.
    pub(crate) resource: &'a str,
}

/// Verifies a playback GET's `SessionToken` (for `api`) and finds its stream.
pub(crate) fn open_playback<'a>(
    ctx: &Arc<Ctx>,
    parts: &'a http::request::Parts,
    api: Api,
    prefix: &str,
) -> Result<Playback<'a>, ApiError> {
    let query = parts.uri.query().unwrap_or("");
    let token = query_param(query, "SessionToken");
    let session = open(ctx, token, api)?;
    let token = token.unwrap_or_default();
    let stream = ctx
        .registry
        .get(&session.s)
        .filter(|s| s.is_readable() && lock(&s.meta).creation_ms == session.c)
        .ok_or_else(|| {
            ApiError::new(
                ApiErrorKind::ResourceNotFound,
                "The requested stream is not found or not active.",
            )
        })?;
    let resource = parts.uri.path().strip_prefix(prefix).unwrap_or_default();
    Ok(Playback {
        session,
        stream,
        token,
        query,
        resource,
    })
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
    } = open_playback(ctx, parts, Api::Hls, PLAYBACK_PREFIX)?;
    let now = ctx.now_ms();
    match resource {
        "getHLSMasterPlaylist.m3u8" => {
            let (tracks, entries) = session_tracks(ctx, &stream, &session, now).await?;
            let writer = Mp4Writer::new(&tracks).map_err(mp4_error)?;
            Ok(ok(M3U8, master(&writer, &entries, token).into(), rid))
        }
        "getHLSMediaPlaylist.m3u8" => {
            let (entries, text) = {
                let data = lock(&stream.data);
                let entries = data.index.playlist(session.request(now));
                let text = media_playlist(&data.index, &session, &entries, now, token);
                (entries, text)
            };
            if entries.is_empty() && session.m != 0 {
                return Err(ApiError::new(ApiErrorKind::ResourceNotFound, NO_FRAGMENTS));
            }
            Ok(ok(M3U8, text.into(), rid))
        }
        "getMP4InitFragment.mp4" => init_fragment(ctx, &stream, &session, None, now, rid).await,
        "getMP4MediaFragment.mp4" => media_fragment(ctx, &stream, &session, None, query, rid).await,
        other => Err(ApiError::new(
            ApiErrorKind::ResourceNotFound,
            format!(
                "{PLAYBACK_PREFIX}{other} is not an HLS resource: use the master playlist URL GetHLSStreamingSessionURL returned."
            ),
        )),
    }
}

/// `getMP4InitFragment.mp4`: `ftyp` + `moov` for the tracks of the session's first fragment
/// (only track number `track` when given: DASH serves each track on its own).
pub(crate) async fn init_fragment(
    ctx: &Arc<Ctx>,
    stream: &Stream,
    session: &Session,
    track: Option<u64>,
    now: u64,
    rid: &str,
) -> Result<http::Response<Body>, ApiError> {
    let (tracks, _) = session_tracks(ctx, stream, session, now).await?;
    let tracks = only_track(tracks, track)?;
    let writer = Mp4Writer::new(&tracks).map_err(mp4_error)?;
    Ok(ok(MP4_CONTENT_TYPE, writer.init_segment(), rid))
}

/// The session's current entries and the tracks of the first of them (what the init segment,
/// the HLS master playlist and the DASH manifest describe).
pub(crate) async fn session_tracks(
    ctx: &Arc<Ctx>,
    stream: &Stream,
    session: &Session,
    now: u64,
) -> Result<(Vec<TrackInfo>, Vec<PlaylistEntry>), ApiError> {
    let entries = listing(stream, session, now);
    let first = entries
        .first()
        .ok_or_else(|| ApiError::new(ApiErrorKind::ResourceNotFound, NO_FRAGMENTS))?;
    let (tracks, _) = decode(stream, &ctx.vault, &first.fragment).await?;
    Ok((tracks, entries))
}

/// `tracks`, or only the one numbered `track` (404 when there is none such).
fn only_track(tracks: Vec<TrackInfo>, track: Option<u64>) -> Result<Vec<TrackInfo>, ApiError> {
    let Some(n) = track else {
        return Ok(tracks);
    };
    let picked: Vec<TrackInfo> = tracks.into_iter().filter(|t| t.number == n).collect();
    if picked.is_empty() {
        return Err(ApiError::new(
            ApiErrorKind::ResourceNotFound,
            format!("The stream has no track number {n}."),
        ));
    }
    Ok(picked)
}

/// `getMP4MediaFragment.mp4?FragmentNumber=N`: that fragment of the session as `moof` + `mdat`
/// (only track number `track` when given).
pub(crate) async fn media_fragment(
    ctx: &Arc<Ctx>,
    stream: &Stream,
    session: &Session,
    track: Option<u64>,
    query: &str,
    rid: &str,
) -> Result<http::Response<Body>, ApiError> {
    let invalid = || {
        ApiError::invalid_argument(
            "FragmentNumber is missing or is not a fragment number of this stream.",
        )
    };
    let number = query_param(query, "FragmentNumber")
        .and_then(|n| n.parse::<kvs_core::fragment::FragmentNumber>().ok())
        .ok_or_else(invalid)?;
    let (f, end_ms) = {
        let data = lock(&stream.data);
        let f = data
                .index
                .get_by_number(&number)
                .copied()
                .filter(|f| session.covers(f))
                .ok_or_else(|| {
                    ApiError::new(
                        ApiErrorKind::ResourceNotFound,
                        format!(
                            "Fragment {} is not part of this streaming session (or is no longer retained).",
                            number.as_str()
                        ),
                    )
                })?;
        let end = segment_end_ms(&data.index, &f);
        (f, end)
    };
    let (tracks, mut frames) = decode(stream, &ctx.vault, &f).await?;
    let tracks = only_track(tracks, track)?;
    if let Some(n) = track {
        frames.retain(|frame| frame.track == n);
    }
    let mut writer = Mp4Writer::new(&tracks).map_err(mp4_error)?;
    writer.set_origin(ms_to_ns(session.o));
    let sequence =
        u32::try_from(f.sequence.wrapping_add(1) & u64::from(u32::MAX)).unwrap_or(u32::MAX);
    let segment = writer
        .standalone_fragment(&frames, sequence, Some(ms_to_ns(end_ms)))
        .map_err(mp4_error)?
        .ok_or_else(|| {
            ApiError::new(
                ApiErrorKind::InvalidMediaFrame,
                format!("Fragment {} holds no frames.", number.as_str()),
            )
        })?;
    Ok(ok(MP4_CONTENT_TYPE, segment.to_bytes(), rid))
}

fn ms_to_ns(ms: u64) -> i64 {
    i64::try_from(ms)
        .unwrap_or(i64::MAX / 1_000_000)
        .saturating_mul(1_000_000)
}

/// The session's current playlist entries.
pub(crate) fn listing(stream: &Stream, session: &Session, now: u64) -> Vec<PlaylistEntry> {
    lock(&stream.data).index.playlist(session.request(now))
}

/// Where fragment `f` ends in producer time (ms): where the next fragment starts when that
/// follows within [`MAX_JOIN_MS`] of its last frame, else at its last frame.
pub(crate) fn segment_end_ms(index: &FragmentIndex, f: &kvs_core::index::Fragment) -> u64 {
    let last = f
        .producer_timestamp_ms
        .saturating_add(u64::from(f.duration_ms));
    let next = index
        .range(RangeQuery {
            kind: TimestampKind::Producer,
            start_ms: f.producer_timestamp_ms.saturating_add(1),
            end_ms: u64::MAX,
        })
        .next()
        .map(|n| n.producer_timestamp_ms);
    match next {
        Some(n) if n > last && n <= last.saturating_add(MAX_JOIN_MS) => n,
        _ => last,
    }
}

/// Average bits per second of `entries` (at least 1).
pub(crate) fn bandwidth(entries: &[PlaylistEntry]) -> u64 {
    let bytes: u64 = entries
        .iter()
        .map(|e| u64::from(e.fragment.size_bytes))
        .sum();
    let ms: u64 = entries
        .iter()
        .map(|e| u64::from(e.fragment.duration_ms))
        .sum::<u64>()
        .max(1);
    (bytes.saturating_mul(8_000) / ms).max(1)
}

/// The master playlist: one variant.
fn master(writer: &Mp4Writer, entries: &[PlaylistEntry], token: &str) -> String {
    let bandwidth = bandwidth(entries);
    let mut stream_inf = format!("#EXT-X-STREAM-INF:BANDWIDTH={bandwidth}");
    let codecs = writer.codecs();
    if !codecs.is_empty() {
        stream_inf.push_str(&format!(",CODECS=\"{}\"", codecs.join(",")));
    }
    if let Some((w, h)) = writer.resolution() {
        stream_inf.push_str(&format!(",RESOLUTION={w}x{h}"));
    }
    format!(
        "#EXTM3U\n#EXT-X-VERSION:7\n#EXT-X-INDEPENDENT-SEGMENTS\n{stream_inf}\ngetHLSMediaPlaylist.m3u8?SessionToken={token}\n"
    )
}

/// `2023-05-17T13:48:35.994Z`.
pub(crate) fn date_time(ms: u64) -> String {
    let whole = std::time::UNIX_EPOCH + std::time::Duration::from_secs(ms / 1000);
    let text = kvs_core::credentials::format_rfc3339(whole);
    let base = text.strip_suffix('Z').unwrap_or(&text);
    format!("{base}.{:03}Z", ms % 1000)
}

/// The media playlist of `entries`.
fn media_playlist(
    index: &FragmentIndex,
    session: &Session,
    entries: &[PlaylistEntry],
    now: u64,
    token: &str,
) -> String {
    use std::fmt::Write;
    let kind = session.kind();
    let timed: Vec<(&PlaylistEntry, u64)> = entries
        .iter()
        .map(|e| {
            let end = segment_end_ms(index, &e.fragment);
            (e, end.saturating_sub(e.fragment.producer_timestamp_ms))
        })
        .collect();
    let target = timed
        .iter()
        .map(|(_, d)| d.div_ceil(1000))
        .max()
        .unwrap_or(1)
        .max(1);
    let first_seq = entries.first().map_or(0, |e| e.fragment.sequence);
    let mut out = String::with_capacity(256 + entries.len() * 200);
    let _ = write!(
        out,
        "#EXTM3U\n#EXT-X-VERSION:7\n#EXT-X-TARGETDURATION:{target}\n#EXT-X-MEDIA-SEQUENCE:{first_seq}\n"
    );
    if session.d == 0 {
        let _ = writeln!(out, "#EXT-X-DISCONTINUITY-SEQUENCE:{first_seq}");
    }
    out.push_str("#EXT-X-INDEPENDENT-SEGMENTS\n");
    if session.m == 2 {
        out.push_str("#EXT-X-PLAYLIST-TYPE:VOD\n");
    }
    let map = format!("#EXT-X-MAP:URI=\"getMP4InitFragment.mp4?SessionToken={token}\"\n");
    out.push_str(&map);
    for (e, duration) in &timed {
        if e.discontinuity {
            out.push_str("#EXT-X-DISCONTINUITY\n");
            out.push_str(&map);
        }
        if session.t {
            let _ = writeln!(
                out,
                "#EXT-X-PROGRAM-DATE-TIME:{}",
                date_time(e.fragment.timestamp(kind))
            );
        }
        let _ = write!(
            out,
            "#EXTINF:{}.{:03},\ngetMP4MediaFragment.mp4?FragmentNumber={}&SessionToken={token}\n",
            duration / 1000,
            duration % 1000,
            e.fragment.number().as_str()
        );
    }
    let ended = match session.m {
        2 => true,
        1 if session.b.is_some() => {
            // LIVE_REPLAY with an end: done once the range's last fragment is listed.
            let mut all = session.request(now);
            if let Mode::LiveReplay { elapsed_ms, .. } = &mut all.mode {
                *elapsed_ms = u64::MAX;
            }
            all.max_results = 1;
            let last = index.playlist(all).last().map(|e| e.fragment.sequence);
            last.is_some() && last == entries.last().map(|e| e.fragment.sequence)
        }
        _ => false,
    };
    if ended {
        out.push_str("#EXT-X-ENDLIST\n");
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn base64url_round_trips_and_refuses_other_text() {
        for n in 0..40u8 {
            let data: Vec<u8> = (0..n).map(|i| i.wrapping_mul(37) ^ 0xA5).collect();
            let text = b64_encode(&data);
            assert!(!text.contains(['+', '/', '=']));
            assert_eq!(b64_decode(&text).unwrap(), data);
        }
        assert_eq!(b64_encode(b"foobar"), "Zm9vYmFy");
        assert_eq!(b64_encode(b"fo"), "Zm8");
        assert!(b64_decode("Zm9v+mFy").is_none());
        assert!(b64_decode("Zm9").is_none()); // non-zero leftover bits
        assert!(b64_decode("Z").is_none());
    }

    #[test]
    fn program_date_time_has_milliseconds() {
        assert_eq!(date_time(1_684_331_315_994), "2023-05-17T13:48:35.994Z");
    }
}
