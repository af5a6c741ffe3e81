//! The GetMedia consumer cursor: follows a GetMedia stream across reconnects without skipping or
//! repeating a fragment.
//!
//! [`GetMediaCursor`] wraps the [`MkvReader`]. The caller:
//!
//! 1. sends [`GetMediaCursor::request`] (the first one uses the configured start selector);
//! 2. feeds the response body with [`GetMediaCursor::handle_data`] (any split), draining
//!    [`GetMediaCursor::poll_event`] after each call;
//! 3. when the response ends, cleanly or not, calls [`GetMediaCursor::handle_end`], then goes
//!    back to 1: the next request starts right after the last **complete** fragment, with its
//!    `CONTINUATION_TOKEN` when the service sent one, else `FRAGMENT_NUMBER` (exclusive).
//!
//! A fragment is complete once the reader has closed it: its trailing KVS tags arrived, or the
//! next document began. A fragment cut by a disconnect is discarded and requested again. With
//! [`Delivery::Complete`] (the default) frames are held until their fragment is complete, so
//! every frame is delivered exactly once; with [`Delivery::Live`] frames are delivered as they
//! arrive and a cut fragment is reported by [`ConsumerEvent::FragmentAborted`], after which its
//! frames come again from the start. Fragments whose number is not above the last delivered one
//! are skipped (a server that repeats itself cannot make the caller see one twice).
//!
//! In-band errors (`AWS_KINESISVIDEO_ERROR_CODE` / `_ERROR_ID` documents) are surfaced as
//! [`ConsumerEvent::Error`]; they do not move the cursor.

use std::cmp::Ordering;
use std::collections::VecDeque;

use bytes::Bytes;

use crate::api::{GetMediaRequest, StartSelector, StartSelectorType};
use crate::mkv::reader::{DecodeError, Event, FragmentSummary, MkvReader, ReaderLimits};
use crate::mkv::{Frame, TrackInfo};

/// When frames are handed out.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Delivery {
    /// Hold a fragment's frames until it is complete (exactly-once frames).
    #[default]
    Complete,
    /// Hand frames out as they arrive; a cut fragment is aborted and replayed.
    Live,
}

/// Settings of a cursor.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CursorConfig {
    /// Stream name (or give `stream_arn`).
    pub stream_name: Option<String>,
    /// Stream ARN.
    pub stream_arn: Option<String>,
    /// Where the first request starts.
    pub start: StartSelector,
    /// How frames are delivered.
    pub delivery: Delivery,
    /// Most payload bytes held for one fragment in [`Delivery::Complete`] mode.
    pub max_fragment_bytes: usize,
    /// Decoder limits.
    pub limits: ReaderLimits,
}

impl CursorConfig {
    /// Follow stream `name` from `start`, holding frames until their fragment is complete.
    pub fn new(name: &str, start: StartSelector) -> Self {
        CursorConfig {
            stream_name: Some(name.to_owned()),
            stream_arn: None,
            start,
            delivery: Delivery::Complete,
            max_fragment_bytes: 64 << 20,
            limits: ReaderLimits::default(),
        }
    }
}

/// What the cursor hands out.
#[derive(Debug, Clone, PartialEq)]
#[non_exhaustive]
pub enum ConsumerEvent {
    /// A track of the stream (sent when first seen, and again if it changes).
    Track(TrackInfo),
    /// A frame of the current fragment.
    Frame(Frame),
    /// A fragment is complete; its frames were delivered before this event.
    Fragment(Box<FragmentSummary>),
    /// (Live mode) The fragment being delivered was cut; its `frames` frames will come again.
    FragmentAborted {
        /// Frames already delivered from it.
        frames: u64,
    },
    /// An in-band error document.
    Error {
        /// `AWS_KINESISVIDEO_ERROR_CODE`.
        code: Option<String>,
        /// `AWS_KINESISVIDEO_ERROR_ID`.
        id: Option<u64>,
        /// The fragment it names, when given.
        fragment_number: Option<String>,
    },
    /// A complete fragment that repeats an already delivered one was skipped.
    Repeated {
        /// Its fragment number.
        fragment_number: String,
    },
    /// The decoder reported malformed input (it resynchronises and goes on).
    Decode(DecodeError),
    /// A fragment exceeded [`CursorConfig::max_fragment_bytes`]; it is dropped and the
    /// connection should be closed and resumed.
    FragmentTooLarge {
        /// Payload bytes seen when the limit was hit.
        bytes: usize,
    },
}

/// The GetMedia consumer cursor (see the [module docs](self)).
#[derive(Debug)]
pub struct GetMediaCursor {
    config: CursorConfig,
    reader: MkvReader,
    /// Frames of the fragment being read (Complete mode).
    held: Vec<Frame>,
    held_bytes: usize,
    /// Frames delivered from the fragment being read (Live mode).
    live_frames: u64,
    in_fragment: bool,
    oversized: bool,
    last_number: Option<String>,
    last_token: Option<String>,
    tracks: Vec<TrackInfo>,
    events: VecDeque<ConsumerEvent>,
    fragments: u64,
    connections: u64,
}

impl GetMediaCursor {
    /// A cursor that has delivered nothing yet.
    pub fn new(config: CursorConfig) -> Self {
        let reader = MkvReader::with_limits(config.limits);
        GetMediaCursor {
            config,
            reader,
            held: Vec::new(),
            held_bytes: 0,
            live_frames: 0,
            in_fragment: false,
            oversized: false,
            last_number: None,
            last_token: None,
            tracks: Vec::new(),
            events: VecDeque::new(),
            fragments: 0,
            connections: 0,
        }
    }

    /// The request for the next (or first) GetMedia connection.
    pub fn request(&self) -> GetMediaRequest {
        let start = match (&self.last_token, &self.last_number) {
            (Some(token), _) => StartSelector {
                continuation_token: Some(token.clone()),
                ..StartSelector::new(StartSelectorType::ContinuationToken)
            },
            (None, Some(number)) => StartSelector {
                after_fragment_number: Some(number.clone()),
                ..StartSelector::new(StartSelectorType::FragmentNumber)
            },
            (None, None) => self.config.start.clone(),
        };
        GetMediaRequest {
            stream_name: self.config.stream_name.clone(),
            stream_arn: self.config.stream_arn.clone(),
            start_selector: start,
        }
    }

    /// Fragment number of the last complete fragment delivered.
    pub fn last_fragment_number(&self) -> Option<&str> {
        self.last_number.as_deref()
    }

    /// Continuation token of the last complete fragment delivered.
    pub fn continuation_token(&self) -> Option<&str> {
        self.last_token.as_deref()
    }

    /// Complete fragments delivered.
    pub fn fragments_delivered(&self) -> u64 {
        self.fragments
    }

    /// Responses ended so far ([`handle_end`](Self::handle_end) calls).
    pub fn connections(&self) -> u64 {
        self.connections
    }

    /// The next bytes of the response body. Fails only when the decoder's input bound is hit
    /// (drain events after every call and it is not).
    pub fn handle_data(&mut self, data: impl Into<Bytes>) -> Result<(), DecodeError> {
        self.reader.push(data)?;
        while let Some(event) = self.reader.poll_event() {
            match event {
                Err(e) => self.events.push_back(ConsumerEvent::Decode(e)),
                Ok(e) => self.on_event(e),
            }
        }
        Ok(())
    }

    /// The response ended (cleanly or not). Whatever is incomplete is discarded; the next
    /// [`request`](Self::request) resumes after the last complete fragment.
    pub fn handle_end(&mut self) {
        if self.config.delivery == Delivery::Live && self.live_frames > 0 {
            self.events.push_back(ConsumerEvent::FragmentAborted {
                frames: self.live_frames,
            });
        }
        self.reset_fragment();
        self.reader = MkvReader::with_limits(self.config.limits);
        self.connections += 1;
    }

    /// The next event, if any.
    pub fn poll_event(&mut self) -> Option<ConsumerEvent> {
        self.events.pop_front()
    }

    fn reset_fragment(&mut self) {
        self.held.clear();
        self.held_bytes = 0;
        self.live_frames = 0;
        self.in_fragment = false;
        self.oversized = false;
    }

    fn on_event(&mut self, event: Event) {
        match event {
            Event::Track(t) => {
                if let Some(old) = self.tracks.iter_mut().find(|o| o.number == t.number) {
                    if *old != *t {
                        *old = (*t).clone();
                        self.events.push_back(ConsumerEvent::Track(*t));
                    }
                } else {
                    self.tracks.push((*t).clone());
                    self.events.push_back(ConsumerEvent::Track(*t));
                }
            }
            Event::ClusterStart { .. } => {
                self.reset_fragment();
                self.in_fragment = true;
            }
            Event::Frame(frame) => {
                if !self.in_fragment || self.oversized {
                    return;
                }
                match self.config.delivery {
                    Delivery::Live => {
                        self.live_frames += 1;
                        self.events.push_back(ConsumerEvent::Frame(frame));
                    }
                    Delivery::Complete => {
                        self.held_bytes += frame.data.len();
                        if self.held_bytes > self.config.max_fragment_bytes {
                            self.oversized = true;
                            self.events.push_back(ConsumerEvent::FragmentTooLarge {
                                bytes: self.held_bytes,
                            });
                            self.held.clear();
                            return;
                        }
                        self.held.push(frame);
                    }
                }
            }
            Event::FragmentEnd(summary) => self.on_fragment_end(summary),
            _ => {}
        }
    }

    fn on_fragment_end(&mut self, summary: Box<FragmentSummary>) {
        let meta = &summary.metadata;
        if meta.is_error() {
            self.events.push_back(ConsumerEvent::Error {
                code: meta.error_code.clone(),
                id: meta.error_id,
                fragment_number: meta.fragment_number.clone(),
            });
        }
        if !summary.has_cluster || summary.truncated || self.oversized {
            self.reset_fragment();
            return;
        }
        let number = meta.fragment_number.clone();
        let repeated = match (&number, &self.last_number) {
            (Some(n), Some(last)) => compare_numbers(n, last) != Ordering::Greater,
            _ => false,
        };
        if repeated {
            if let Some(n) = number {
                self.events
                    .push_back(ConsumerEvent::Repeated { fragment_number: n });
            }
            self.reset_fragment();
            return;
        }
        for frame in self.held.drain(..) {
            self.events.push_back(ConsumerEvent::Frame(frame));
        }
        if let Some(n) = number {
            self.last_number = Some(n);
            self.last_token = meta.continuation_token.clone();
        }
        self.fragments += 1;
        self.events.push_back(ConsumerEvent::Fragment(summary));
        self.reset_fragment();
    }
}

/// Numeric order of two decimal fragment numbers (shorter is smaller; equal lengths compare
/// as text).
fn compare_numbers(a: &str, b: &str) -> Ordering {
    let (a, b) = (a.trim_start_matches('0'), b.trim_start_matches('0'));
    a.len().cmp(&b.len()).then_with(|| a.cmp(b))
}
