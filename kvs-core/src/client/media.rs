//! GetMedia and GetMediaForFragmentList as streams of decoded events, GetClip's MP4 bytes and
//! the HLS and DASH session URLs.

use std::time::Duration;

use bytes::Bytes;

use super::{Client, ClientError};
use crate::api::{
    FragmentSelector, GetClipRequest, GetDashStreamingSessionUrlRequest,
    GetHlsStreamingSessionUrlRequest, GetMediaForFragmentListRequest, GetMediaRequest,
    StartSelector,
};
use crate::mkv::reader::{Event, MkvReader};
use crate::session::consumer::{ConsumerEvent, CursorConfig, GetMediaCursor};

/// Consecutive failed GetMedia connections after which a [`MediaStream`] gives up.
const MAX_CONSECUTIVE_FAILURES: u32 = 5;

/// A raw response body, chunk by chunk.
#[derive(Debug)]
pub struct ByteStream {
    operation: &'static str,
    response: reqwest::Response,
}

impl ByteStream {
    /// The next chunk, or `None` at the end.
    pub async fn chunk(&mut self) -> Result<Option<Bytes>, ClientError> {
        self.response
            .chunk()
            .await
            .map_err(|e| ClientError::Transport {
                operation: self.operation,
                endpoint: self.response.url().to_string(),
                message: e.to_string(),
            })
    }
}

/// GetMedia followed across reconnects by the consumer cursor: every complete fragment once,
/// in order, without gaps or repeats.
#[derive(Debug)]
pub struct MediaStream {
    client: Client,
    cursor: GetMediaCursor,
    response: Option<reqwest::Response>,
    follow: bool,
    opened: bool,
    new_since_open: bool,
    failures: u32,
    done: bool,
}

impl MediaStream {
    /// The cursor (last fragment number, continuation token, counts).
    pub fn cursor(&self) -> &GetMediaCursor {
        &self.cursor
    }

    /// Whether this stream reconnects forever (`follow`) or stops once a connection ends with
    /// nothing new.
    pub fn follows(&self) -> bool {
        self.follow
    }

    /// The next event, or `None` when the stream is over (not following and caught up).
    pub async fn next_event(&mut self) -> Option<Result<ConsumerEvent, ClientError>> {
        loop {
            if let Some(event) = self.cursor.poll_event() {
                if matches!(event, ConsumerEvent::Fragment(_)) {
                    self.new_since_open = true;
                    self.failures = 0;
                }
                if matches!(event, ConsumerEvent::FragmentTooLarge { .. }) {
                    self.response = None;
                    self.cursor.handle_end();
                }
                return Some(Ok(event));
            }
            if self.done {
                return None;
            }
            let Some(response) = self.response.as_mut() else {
                if self.opened && !self.new_since_open {
                    if !self.follow {
                        self.done = true;
                        return None;
                    }
                    tokio::time::sleep(Duration::from_millis(300)).await;
                }
                self.opened = true;
                self.new_since_open = false;
                match self.client.open_media(&self.cursor.request()).await {
                    Ok(r) => self.response = Some(r),
                    Err(e) => {
                        self.failures += 1;
                        if !e.is_retryable() || self.failures >= MAX_CONSECUTIVE_FAILURES {
                            self.done = true;
                            return Some(Err(e));
                        }
                        tokio::time::sleep(Duration::from_millis(200 << self.failures.min(5)))
                            .await;
                    }
                }
                continue;
            };
            match response.chunk().await {
                Ok(Some(bytes)) => {
                    if let Err(e) = self.cursor.handle_data(bytes) {
                        self.done = true;
                        return Some(Err(ClientError::Decode {
                            operation: "GetMedia",
                            message: e.to_string(),
                        }));
                    }
                }
                Ok(None) | Err(_) => {
                    self.response = None;
                    self.cursor.handle_end();
                }
            }
        }
    }

    /// The events as a [`futures_util::Stream`].
    pub fn into_stream(
        self,
    ) -> impl futures_util::Stream<Item = Result<ConsumerEvent, ClientError>> {
        futures_util::stream::unfold(
            self,
            |mut s| async move { s.next_event().await.map(|e| (e, s)) },
        )
    }
}

/// A GetMediaForFragmentList response, decoded.
#[derive(Debug)]
pub struct FragmentListStream {
    body: ByteStream,
    reader: MkvReader,
    ended: bool,
}

impl FragmentListStream {
    /// The next decoder event (tracks, frames, fragment ends...), or `None` at the end.
    pub async fn next_event(&mut self) -> Option<Result<Event, ClientError>> {
        loop {
            if let Some(event) = self.reader.poll_event() {
                return Some(event.map_err(|e| ClientError::Decode {
                    operation: "GetMediaForFragmentList",
                    message: e.to_string(),
                }));
            }
            if self.ended {
                return None;
            }
            match self.body.chunk().await {
                Ok(Some(bytes)) => {
                    if let Err(e) = self.reader.push(bytes) {
                        self.ended = true;
                        return Some(Err(ClientError::Decode {
                            operation: "GetMediaForFragmentList",
                            message: e.to_string(),
                        }));
                    }
                }
                Ok(None) => {
                    self.reader.finish();
                    self.ended = true;
                }
                Err(e) => {
                    self.ended = true;
                    return Some(Err(e));
                }
            }
        }
    }

    /// The events as a [`futures_util::Stream`].
    pub fn into_stream(self) -> impl futures_util::Stream<Item = Result<Event, ClientError>> {
        futures_util::stream::unfold(
            self,
            |mut s| async move { s.next_event().await.map(|e| (e, s)) },
        )
    }
}

impl Client {
    /// GetMedia on stream `name` from `start`, decoded and auto-resumed by the consumer
    /// cursor. With `follow` it reconnects forever; otherwise it ends once a connection
    /// ends without a new fragment.
    pub fn get_media(&self, name: &str, start: StartSelector, follow: bool) -> MediaStream {
        self.get_media_with(CursorConfig::new(name, start), follow)
    }

    /// GetMedia with a full cursor configuration.
    pub fn get_media_with(&self, config: CursorConfig, follow: bool) -> MediaStream {
        MediaStream {
            client: self.clone(),
            cursor: GetMediaCursor::new(config),
            response: None,
            follow,
            opened: false,
            new_since_open: false,
            failures: 0,
            done: false,
        }
    }

    /// One GetMedia request, its body raw (one response, no resume).
    pub async fn get_media_raw(
        &self,
        request: &GetMediaRequest,
    ) -> Result<ByteStream, ClientError> {
        Ok(ByteStream {
            operation: "GetMedia",
            response: self.open_media(request).await?,
        })
    }

    /// GetMediaForFragmentList for `fragments` of stream `name`, raw.
    pub async fn get_media_for_fragment_list_raw(
        &self,
        name: &str,
        fragments: Vec<String>,
    ) -> Result<ByteStream, ClientError> {
        let request = GetMediaForFragmentListRequest {
            stream_name: Some(name.to_owned()),
            stream_arn: None,
            fragments,
        };
        Ok(ByteStream {
            operation: "GetMediaForFragmentList",
            response: self.open_media(&request).await?,
        })
    }

    /// GetClip on stream `name`: the fragments whose start lies in the selector's range, as one
    /// MP4 file (`video/mp4`), streamed chunk by chunk. The service caps a clip at 200 fragments
    /// or 100 MB from the start of the range. Errors (no fragments in the range, retention 0,
    /// unsupported codecs) come back as [`ClientError::Api`] before any byte.
    pub async fn get_clip(
        &self,
        name: &str,
        selector: FragmentSelector,
    ) -> Result<ByteStream, ClientError> {
        let request = GetClipRequest {
            stream_name: Some(name.to_owned()),
            stream_arn: None,
            clip_fragment_selector: selector,
        };
        Ok(ByteStream {
            operation: "GetClip",
            response: self.open_media(&request).await?,
        })
    }

    /// GetHLSStreamingSessionURL: an HLS master playlist URL
    /// (`.../hls/v1/getHLSMasterPlaylist.m3u8?SessionToken=...`) for the stream and options of
    /// `request` (playback mode, selector, expiry...), on the stream's
    /// `GET_HLS_STREAMING_SESSION_URL` data endpoint. The URL is not SigV4-signed: any player
    /// can open it until it expires. Errors (no fragments in the range, or none in the last 30
    /// seconds for LIVE; retention 0; unsupported codecs) come back as [`ClientError::Api`].
    pub async fn get_hls_streaming_session_url(
        &self,
        request: &GetHlsStreamingSessionUrlRequest,
    ) -> Result<String, ClientError> {
        Ok(self.call(request).await?.hls_streaming_session_url)
    }

    /// GetDASHStreamingSessionURL: a DASH manifest URL
    /// (`.../dash/v1/getDASHManifest.mpd?SessionToken=...`) for the stream and options of
    /// `request`, on the stream's `GET_DASH_STREAMING_SESSION_URL` data endpoint. Like the HLS
    /// URL it is not SigV4-signed: any DASH player can open it until it expires. Errors come back
    /// as [`ClientError::Api`].
    pub async fn get_dash_streaming_session_url(
        &self,
        request: &GetDashStreamingSessionUrlRequest,
    ) -> Result<String, ClientError> {
        Ok(self.call(request).await?.dash_streaming_session_url)
    }

    /// GetMediaForFragmentList for `fragments` of stream `name`, decoded.
    pub async fn get_media_for_fragment_list(
        &self,
        name: &str,
        fragments: Vec<String>,
    ) -> Result<FragmentListStream, ClientError> {
        Ok(FragmentListStream {
            body: self
                .get_media_for_fragment_list_raw(name, fragments)
                .await?,
            reader: MkvReader::new(),
            ended: false,
        })
    }
}
