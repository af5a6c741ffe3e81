//! [`Mp4Writer`]: MKV tracks and frames in, `ftyp`/`moov` and `moof`/`mdat` bytes out.

use bytes::{Bytes, BytesMut};

use super::boxes::Boxes;
use super::{MAX_FRAMES_PER_FRAGMENT, MAX_TRACKS, Mp4Error, VIDEO_TIMESCALE};
use crate::media::aac::AudioSpecificConfig;
use crate::media::g711::{G711Law, WaveFormatEx};
use crate::media::h264::{self, AvcConfig};
use crate::media::h265::{self, HevcConfig};
use crate::media::{MediaError, nal};
use crate::mkv::{Frame, TrackInfo, codec};

/// Sample flags of a sync sample (`sample_depends_on` = 2: depends on no other sample).
const SYNC_FLAGS: u32 = 0x0200_0000;
/// Sample flags of a non-sync sample (`sample_depends_on` = 1, `sample_is_non_sync_sample`).
const NON_SYNC_FLAGS: u32 = 0x0101_0000;
/// Duration of a video sample whose end nothing tells (1/30 s at 90 kHz).
const DEFAULT_VIDEO_DURATION: u32 = VIDEO_TIMESCALE / 30;
/// Samples per AAC frame.
const AAC_FRAME_SAMPLES: u32 = 1024;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Codec {
    Avc { length_size: u8 },
    Hevc { length_size: u8 },
    Aac,
    G711(G711Law),
}

impl Codec {
    fn is_video(self) -> bool {
        matches!(self, Codec::Avc { .. } | Codec::Hevc { .. })
    }
}

/// A sample ready to be written, times in track ticks.
#[derive(Debug, Clone)]
struct Sample {
    dts: i64,
    cto: i64,
    keyframe: bool,
    data: Bytes,
    /// The MKV duration in ticks, when the frame had one.
    mkv_duration: Option<u32>,
}

#[derive(Debug)]
struct Track {
    mkv_number: u64,
    id: u32,
    codec: Codec,
    codec_private: Bytes,
    timescale: u32,
    width: u16,
    height: u16,
    channels: u16,
    sample_rate: u32,
    /// The last sample, kept back until the next one shows where it ends.
    pending: Option<Sample>,
    last_duration: Option<u32>,
}

/// One `moof` + `mdat`: the boxes' bytes and the sample payloads (zero-copy slices of the
/// frames, or the converted form of Annex-B frames), in file order.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Segment {
    /// The `moof` box and the `mdat` box header.
    pub header: Bytes,
    /// The `mdat` payload, sample by sample.
    pub samples: Vec<Bytes>,
}

impl Segment {
    /// Total length in bytes.
    pub fn len(&self) -> usize {
        self.header.len() + self.samples.iter().map(Bytes::len).sum::<usize>()
    }

    /// Whether the segment holds no bytes (never true for a segment the writer returns).
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// The segment as one contiguous buffer.
    pub fn to_bytes(&self) -> Bytes {
        let mut out = BytesMut::with_capacity(self.len());
        out.extend_from_slice(&self.header);
        for s in &self.samples {
            out.extend_from_slice(s);
        }
        out.freeze()
    }
}

/// The fragmented-MP4 writer. See the [module documentation](super).
#[derive(Debug)]
pub struct Mp4Writer {
    tracks: Vec<Track>,
    origin_ns: Option<i64>,
    sequence: u32,
}

fn ns_to_ticks(ns: i64, timescale: u32) -> i64 {
    let v = (i128::from(ns) * i128::from(timescale) + 500_000_000).div_euclid(1_000_000_000);
    i64::try_from(v).unwrap_or(if v < 0 { i64::MIN } else { i64::MAX })
}

fn clamp_u32(v: i64) -> u32 {
    u32::try_from(v.max(0)).unwrap_or(u32::MAX)
}

impl Track {
    fn new(info: &TrackInfo, id: u32) -> Result<Track, Mp4Error> {
        let codec_id = info.codec_id.as_str();
        let missing = || Mp4Error::MissingCodecPrivate {
            track: info.number,
            codec_id: codec_id.to_owned(),
        };
        let invalid = |source: MediaError| Mp4Error::InvalidCodecPrivate {
            track: info.number,
            codec_id: codec_id.to_owned(),
            source,
        };
        let cpd = &info.codec_private;
        let supported =
            matches!(codec_id, codec::H264 | codec::H265 | codec::AAC) || codec_id == codec::MS_ACM;
        if !supported {
            return Err(Mp4Error::UnsupportedCodec {
                track: info.number,
                codec_id: codec_id.to_owned(),
            });
        }
        if cpd.is_empty() {
            return Err(missing());
        }
        let video = info.video.unwrap_or_default();
        let audio = info.audio.unwrap_or_default();
        let mut track = Track {
            mkv_number: info.number,
            id,
            codec: Codec::Aac,
            codec_private: cpd.clone(),
            timescale: VIDEO_TIMESCALE,
            width: u16::try_from(video.width).unwrap_or(0),
            height: u16::try_from(video.height).unwrap_or(0),
            channels: u16::try_from(audio.channels).unwrap_or(0),
            sample_rate: 0,
            pending: None,
            last_duration: None,
        };
        match codec_id {
            codec::H264 => {
                let c = AvcConfig::parse(cpd).map_err(invalid)?;
                let sps = c
                    .sps
                    .first()
                    .ok_or_else(|| invalid(MediaError::Missing("SPS in the avcC record")))?;
                if track.width == 0 || track.height == 0 {
                    let s = h264::Sps::parse(sps).map_err(invalid)?;
                    track.width = u16::try_from(s.width).unwrap_or(0);
                    track.height = u16::try_from(s.height).unwrap_or(0);
                }
                track.codec = Codec::Avc {
                    length_size: c.length_size,
                };
            }
            codec::H265 => {
                let c = HevcConfig::parse(cpd).map_err(invalid)?;
                let sps = c
                    .nalus_of_type(h265::NAL_SPS)
                    .next()
                    .ok_or_else(|| invalid(MediaError::Missing("SPS in the hvcC record")))?;
                if track.width == 0 || track.height == 0 {
                    let s = h265::Sps::parse(sps).map_err(invalid)?;
                    track.width = u16::try_from(s.width).unwrap_or(0);
                    track.height = u16::try_from(s.height).unwrap_or(0);
                }
                track.codec = Codec::Hevc {
                    length_size: c.length_size,
                };
            }
            codec::AAC => {
                let asc = AudioSpecificConfig::parse(cpd).map_err(invalid)?;
                track.codec = Codec::Aac;
                track.sample_rate = asc.sample_rate;
                if let Some(ch) = asc.channels() {
                    track.channels = u16::from(ch);
                }
            }
            _ => {
                let w = WaveFormatEx::parse(cpd).map_err(invalid)?;
                let law = w.g711_law().ok_or_else(|| Mp4Error::UnsupportedCodec {
                    track: info.number,
                    codec_id: format!("{codec_id} (format tag {})", w.format_tag),
                })?;
                if w.sample_rate == 0 || w.channels == 0 {
                    return Err(invalid(MediaError::OutOfRange {
                        what: "WAVEFORMATEX sample rate or channel count",
                        value: 0,
                    }));
                }
                track.codec = Codec::G711(law);
                track.sample_rate = w.sample_rate;
                track.channels = w.channels;
            }
        }
        if !track.codec.is_video() {
            if track.sample_rate == 0 {
                return Err(invalid(MediaError::OutOfRange {
                    what: "audio sample rate",
                    value: 0,
                }));
            }
            track.timescale = track.sample_rate;
            if track.channels == 0 {
                track.channels = 2;
            }
        }
        Ok(track)
    }

    /// The frame's payload as an MP4 sample.
    fn sample_data(&self, f: &Frame) -> Result<Bytes, Mp4Error> {
        let length_size = match self.codec {
            Codec::Avc { length_size } | Codec::Hevc { length_size } => usize::from(length_size),
            Codec::Aac | Codec::G711(_) => return Ok(f.data.clone()),
        };
        let bad = |source| Mp4Error::InvalidFrame {
            track: f.track,
            timestamp_ns: f.timestamp_ns,
            source,
        };
        let check = nal::length_prefixed_nalus(&f.data, length_size)
            .map_err(bad)
            .and_then(|mut it| it.try_for_each(|n| n.map(|_| ())).map_err(bad));
        match check {
            Ok(()) if !f.data.is_empty() => Ok(f.data.clone()),
            Ok(()) => Err(bad(MediaError::EmptyNal("video sample"))),
            Err(e) => {
                let annexb = f.data.starts_with(&[0, 0, 1]) || f.data.starts_with(&[0, 0, 0, 1]);
                if annexb && length_size == 4 {
                    nal::annexb_to_avcc(&f.data).map(Bytes::from).map_err(bad)
                } else {
                    Err(e)
                }
            }
        }
    }

    /// The duration of the last sample of the clip.
    fn final_duration(&self, s: &Sample) -> u32 {
        if let Some(d) = s.mkv_duration.filter(|d| *d > 0) {
            return d;
        }
        match self.codec {
            Codec::Aac => AAC_FRAME_SAMPLES,
            Codec::G711(_) => {
                let per = s.data.len() / usize::from(self.channels.max(1));
                u32::try_from(per).unwrap_or(u32::MAX)
            }
            Codec::Avc { .. } | Codec::Hevc { .. } => {
                self.last_duration.unwrap_or(DEFAULT_VIDEO_DURATION)
            }
        }
    }
}

/// A track's samples of one segment, with their durations.
struct Run<'a> {
    track: &'a Track,
    samples: Vec<(Sample, u32)>,
}

impl Mp4Writer {
    /// A writer for these tracks (MP4 track IDs 1, 2, … in the order given).
    ///
    /// # Errors
    /// [`Mp4Error::TrackCount`] for no tracks or more than [`MAX_TRACKS`];
    /// [`Mp4Error::UnsupportedCodec`], [`Mp4Error::MissingCodecPrivate`] or
    /// [`Mp4Error::InvalidCodecPrivate`] for the first track that cannot be carried.
    pub fn new(tracks: &[TrackInfo]) -> Result<Mp4Writer, Mp4Error> {
        if tracks.is_empty() || tracks.len() > MAX_TRACKS {
            return Err(Mp4Error::TrackCount(tracks.len()));
        }
        let tracks = tracks
            .iter()
            .zip(1u32..)
            .map(|(t, id)| Track::new(t, id))
            .collect::<Result<Vec<_>, _>>()?;
        Ok(Mp4Writer {
            tracks,
            origin_ns: None,
            sequence: 0,
        })
    }

    /// The MKV track numbers, in MP4 track order.
    pub fn track_numbers(&self) -> impl Iterator<Item = u64> + '_ {
        self.tracks.iter().map(|t| t.mkv_number)
    }

    /// The timescale (ticks per second) of the MP4 track for MKV track `mkv_number`.
    pub fn timescale(&self, mkv_number: u64) -> Option<u32> {
        self.tracks
            .iter()
            .find(|t| t.mkv_number == mkv_number)
            .map(|t| t.timescale)
    }

    /// Sets the clip's time origin (the timestamp that becomes time 0). Without it, the first
    /// frame given to [`fragment`](Self::fragment) is the origin. Ignored once set.
    pub fn set_origin(&mut self, timestamp_ns: i64) {
        self.origin_ns.get_or_insert(timestamp_ns);
    }

    /// `ftyp` + `moov`: what a player needs before the first fragment.
    pub fn init_segment(&self) -> Bytes {
        let mut b = Boxes::with_capacity(1024);
        let ftyp = b.open(b"ftyp");
        b.bytes(b"isom");
        b.u32(0x200);
        for brand in [b"isom", b"iso5", b"iso6", b"mp41"] {
            b.bytes(brand);
        }
        b.close(ftyp);

        let moov = b.open(b"moov");
        let mvhd = b.open_full(b"mvhd", 0, 0);
        b.u32(0); // creation_time
        b.u32(0); // modification_time
        b.u32(1000); // timescale
        b.u32(0); // duration: given by the fragments
        b.u32(0x0001_0000); // rate 1.0
        b.u16(0x0100); // volume 1.0
        b.zeros(10);
        b.matrix();
        b.zeros(24);
        b.u32(u32::try_from(self.tracks.len() + 1).unwrap_or(u32::MAX));
        b.close(mvhd);
        for t in &self.tracks {
            write_trak(&mut b, t);
        }
        let mvex = b.open(b"mvex");
        for t in &self.tracks {
            let trex = b.open_full(b"trex", 0, 0);
            b.u32(t.id);
            b.u32(1); // default_sample_description_index
            b.u32(0);
            b.u32(0);
            b.u32(0);
            b.close(trex);
        }
        b.close(mvex);
        b.close(moov);
        Bytes::from(b.buf)
    }

    /// One KVS fragment's frames (in stream order) as a `moof` + `mdat`. The last sample of
    /// every track is kept back until the next call or [`finish`](Self::finish); `None` when
    /// nothing is ready yet.
    ///
    /// # Errors
    /// [`Mp4Error::UnknownTrack`], [`Mp4Error::InvalidFrame`] or
    /// [`Mp4Error::FragmentTooLarge`]; the writer's state is unchanged then.
    pub fn fragment(&mut self, frames: &[Frame]) -> Result<Option<Segment>, Mp4Error> {
        if frames.len() > MAX_FRAMES_PER_FRAGMENT {
            return Err(Mp4Error::FragmentTooLarge {
                frames: frames.len(),
                bytes: frames.iter().map(|f| f.data.len() as u64).sum(),
            });
        }
        let Some(first) = frames.iter().map(|f| f.timestamp_ns).min() else {
            return Ok(None);
        };
        let origin = self.origin_ns.unwrap_or(first);
        let fresh = self.samples_of(frames, origin)?;
        // Each track: pending + fresh; all but the new last are written.
        let mut runs: Vec<Vec<(Sample, u32)>> = Vec::with_capacity(self.tracks.len());
        let mut next_pending: Vec<Option<Sample>> = Vec::with_capacity(self.tracks.len());
        for (t, list) in self.tracks.iter().zip(fresh) {
            if list.is_empty() {
                runs.push(Vec::new());
                next_pending.push(t.pending.clone());
                continue;
            }
            let mut all: Vec<Sample> = t.pending.iter().cloned().chain(list).collect();
            let last = all.pop();
            let mut run = Vec::with_capacity(all.len());
            let mut it = all.into_iter().peekable();
            while let Some(s) = it.next() {
                let next_dts = it.peek().or(last.as_ref()).map_or(s.dts, |n| n.dts);
                let d = clamp_u32(next_dts.saturating_sub(s.dts));
                run.push((s, d));
            }
            runs.push(run);
            next_pending.push(last);
        }
        let segment = self.build(&runs)?;
        self.origin_ns = Some(origin);
        for ((t, run), pending) in self.tracks.iter_mut().zip(&runs).zip(next_pending) {
            if let Some((_, d)) = run.last() {
                t.last_duration = Some(*d);
            }
            t.pending = pending;
        }
        Ok(segment)
    }

    /// The frames' samples per track (index = track index), in decode order, times relative to
    /// `origin` (ns).
    fn samples_of(&self, frames: &[Frame], origin: i64) -> Result<Vec<Vec<Sample>>, Mp4Error> {
        // Per track: the new samples, in decode order.
        let mut fresh: Vec<Vec<Sample>> = vec![Vec::new(); self.tracks.len()];
        for f in frames {
            let (i, t) = self
                .tracks
                .iter()
                .enumerate()
                .find(|(_, t)| t.mkv_number == f.track)
                .ok_or(Mp4Error::UnknownTrack(f.track))?;
            let data = t.sample_data(f)?;
            let pts = ns_to_ticks(f.timestamp_ns.saturating_sub(origin), t.timescale);
            let keyframe = f.keyframe || !t.codec.is_video();
            let mkv_duration = f.duration_ns.map(|d| {
                clamp_u32(ns_to_ticks(
                    i64::try_from(d).unwrap_or(i64::MAX),
                    t.timescale,
                ))
            });
            if let Some(list) = fresh.get_mut(i) {
                list.push(Sample {
                    dts: pts,
                    cto: 0,
                    keyframe,
                    data,
                    mkv_duration,
                });
            }
        }
        for list in &mut fresh {
            if list
                .windows(2)
                .any(|w| matches!(w, [a, b] if b.dts < a.dts))
            {
                // Presentation order differs from decode order: decode times are the sorted
                // presentation times.
                let mut sorted: Vec<i64> = list.iter().map(|s| s.dts).collect();
                sorted.sort_unstable();
                for (s, dts) in list.iter_mut().zip(sorted) {
                    s.cto = s.dts - dts;
                    s.dts = dts;
                }
            }
        }
        Ok(fresh)
    }

    /// One KVS fragment as a self-contained `moof` + `mdat` whose `mfhd` sequence number is
    /// `sequence`, for segment-by-segment delivery (HLS, where each fragment is fetched on its
    /// own): nothing is kept back. Decode times are relative to the origin
    /// ([`set_origin`](Self::set_origin); set it to the same value for every fragment of a
    /// session so that `baseMediaDecodeTime` is continuous across fragments). The last sample of
    /// each track lasts until `end_ns` (the fragment's end, e.g. the next fragment's start) when
    /// that is later than the sample, else as [`finish`](Self::finish) would end it.
    ///
    /// Do not mix with [`fragment`](Self::fragment) on one writer: samples kept back by it are
    /// not written here.
    ///
    /// # Errors
    /// [`Mp4Error::UnknownTrack`], [`Mp4Error::InvalidFrame`] or
    /// [`Mp4Error::FragmentTooLarge`].
    pub fn standalone_fragment(
        &mut self,
        frames: &[Frame],
        sequence: u32,
        end_ns: Option<i64>,
    ) -> Result<Option<Segment>, Mp4Error> {
        if frames.len() > MAX_FRAMES_PER_FRAGMENT {
            return Err(Mp4Error::FragmentTooLarge {
                frames: frames.len(),
                bytes: frames.iter().map(|f| f.data.len() as u64).sum(),
            });
        }
        let Some(first) = frames.iter().map(|f| f.timestamp_ns).min() else {
            return Ok(None);
        };
        let origin = self.origin_ns.unwrap_or(first);
        let fresh = self.samples_of(frames, origin)?;
        let mut runs: Vec<Vec<(Sample, u32)>> = Vec::with_capacity(self.tracks.len());
        for (t, list) in self.tracks.iter_mut().zip(fresh) {
            let mut run: Vec<(Sample, u32)> = Vec::with_capacity(list.len());
            let mut it = list.into_iter().peekable();
            while let Some(s) = it.next() {
                let d = match it.peek() {
                    Some(n) => clamp_u32(n.dts.saturating_sub(s.dts)),
                    None => {
                        let end =
                            end_ns.map(|e| ns_to_ticks(e.saturating_sub(origin), t.timescale));
                        match end.filter(|e| *e > s.dts) {
                            Some(e) => clamp_u32(e - s.dts),
                            None => t.final_duration(&s),
                        }
                    }
                };
                if it.peek().is_some() {
                    t.last_duration = Some(d);
                }
                run.push((s, d));
            }
            runs.push(run);
        }
        self.origin_ns = Some(origin);
        let previous = self.sequence;
        self.sequence = sequence.wrapping_sub(1);
        let segment = self.build(&runs);
        if segment.is_err() {
            self.sequence = previous;
        }
        segment
    }

    /// The RFC 6381 codec strings of the tracks (`avc1.PPCCLL`, `hvc1`, `mp4a.40.N`; G.711 has
    /// none), for an HLS master playlist's `CODECS` attribute.
    pub fn codecs(&self) -> Vec<String> {
        self.tracks
            .iter()
            .filter_map(|t| match t.codec {
                Codec::Avc { .. } => {
                    let b = |i: usize| t.codec_private.get(i).copied().unwrap_or(0);
                    Some(format!("avc1.{:02x}{:02x}{:02x}", b(1), b(2), b(3)))
                }
                Codec::Hevc { .. } => Some("hvc1".to_owned()),
                Codec::Aac => AudioSpecificConfig::parse(&t.codec_private)
                    .ok()
                    .map(|a| format!("mp4a.40.{}", a.object_type)),
                Codec::G711(_) => None,
            })
            .collect()
    }

    /// The first video track's width and height, when there is one.
    pub fn resolution(&self) -> Option<(u16, u16)> {
        self.tracks
            .iter()
            .find(|t| t.codec.is_video() && t.width > 0 && t.height > 0)
            .map(|t| (t.width, t.height))
    }

    /// The samples still kept back, as a last `moof` + `mdat` (`None` when there are none).
    ///
    /// # Errors
    /// [`Mp4Error::FragmentTooLarge`] (not in practice: one sample per track).
    pub fn finish(&mut self) -> Result<Option<Segment>, Mp4Error> {
        let runs: Vec<Vec<(Sample, u32)>> = self
            .tracks
            .iter()
            .map(|t| {
                t.pending
                    .iter()
                    .map(|s| (s.clone(), t.final_duration(s)))
                    .collect()
            })
            .collect();
        let segment = self.build(&runs)?;
        for t in &mut self.tracks {
            t.pending = None;
        }
        Ok(segment)
    }

    /// Serializes one `moof` + `mdat` for per-track sample runs (index = track index).
    fn build(&mut self, runs: &[Vec<(Sample, u32)>]) -> Result<Option<Segment>, Mp4Error> {
        let runs: Vec<Run<'_>> = self
            .tracks
            .iter()
            .zip(runs)
            .filter(|(_, r)| !r.is_empty())
            .map(|(track, r)| Run {
                track,
                samples: r.clone(),
            })
            .collect();
        if runs.is_empty() {
            return Ok(None);
        }
        let frames: usize = runs.iter().map(|r| r.samples.len()).sum();
        let payload: u64 = runs
            .iter()
            .flat_map(|r| r.samples.iter())
            .map(|(s, _)| s.data.len() as u64)
            .sum();
        let too_large = Mp4Error::FragmentTooLarge {
            frames,
            bytes: payload,
        };
        let mdat_size = u32::try_from(payload + 8).map_err(|_| too_large.clone())?;
        let sequence = self.sequence.wrapping_add(1);

        let mut b = Boxes::with_capacity(64 + frames * 16 + runs.len() * 64);
        let moof = b.open(b"moof");
        let mfhd = b.open_full(b"mfhd", 0, 0);
        b.u32(sequence);
        b.close(mfhd);
        let mut offsets = Vec::with_capacity(runs.len());
        for run in &runs {
            let with_cto = run.samples.iter().any(|(s, _)| s.cto != 0);
            let traf = b.open(b"traf");
            let tfhd = b.open_full(b"tfhd", 0, 0x02_0000); // default-base-is-moof
            b.u32(run.track.id);
            b.close(tfhd);
            let tfdt = b.open_full(b"tfdt", 1, 0);
            let base = run.samples.first().map_or(0, |(s, _)| s.dts.max(0));
            b.u64(u64::try_from(base).unwrap_or(0));
            b.close(tfdt);
            let flags = 0x0001 | 0x0100 | 0x0200 | 0x0400 | if with_cto { 0x0800 } else { 0 };
            let trun = b.open_full(b"trun", u8::from(with_cto), flags);
            b.u32(u32::try_from(run.samples.len()).map_err(|_| too_large.clone())?);
            offsets.push(b.buf.len());
            b.u32(0); // data_offset, patched below
            for (s, d) in &run.samples {
                b.u32(*d);
                b.u32(u32::try_from(s.data.len()).map_err(|_| too_large.clone())?);
                b.u32(if s.keyframe {
                    SYNC_FLAGS
                } else {
                    NON_SYNC_FLAGS
                });
                if with_cto {
                    let cto = i32::try_from(s.cto).unwrap_or(0);
                    b.u32(cto as u32);
                }
            }
            b.close(trun);
            b.close(traf);
        }
        b.close(moof);
        let moof_len = b.buf.len() - moof;
        let mut at = moof_len as u64 + 8;
        for (run, pos) in runs.iter().zip(offsets) {
            b.patch_u32(pos, u32::try_from(at).map_err(|_| too_large.clone())?);
            at += run
                .samples
                .iter()
                .map(|(s, _)| s.data.len() as u64)
                .sum::<u64>();
        }
        b.u32(mdat_size);
        b.bytes(b"mdat");
        let samples = runs
            .iter()
            .flat_map(|r| r.samples.iter().map(|(s, _)| s.data.clone()))
            .collect();
        self.sequence = sequence;
        Ok(Some(Segment {
            header: Bytes::from(b.buf),
            samples,
        }))
    }
}

fn write_trak(b: &mut Boxes, t: &Track) {
    let video = t.codec.is_video();
    let trak = b.open(b"trak");
    let tkhd = b.open_full(b"tkhd", 0, 0x3); // enabled, in movie
    b.u32(0);
    b.u32(0);
    b.u32(t.id);
    b.u32(0);
    b.u32(0); // duration
    b.zeros(8);
    b.u16(0); // layer
    b.u16(0); // alternate_group
    b.u16(if video { 0 } else { 0x0100 });
    b.u16(0);
    b.matrix();
    b.u32(if video { u32::from(t.width) << 16 } else { 0 });
    b.u32(if video { u32::from(t.height) << 16 } else { 0 });
    b.close(tkhd);

    let mdia = b.open(b"mdia");
    let mdhd = b.open_full(b"mdhd", 0, 0);
    b.u32(0);
    b.u32(0);
    b.u32(t.timescale);
    b.u32(0);
    b.u16(0x55C4); // "und"
    b.u16(0);
    b.close(mdhd);
    let hdlr = b.open_full(b"hdlr", 0, 0);
    b.u32(0);
    b.bytes(if video { b"vide" } else { b"soun" });
    b.zeros(12);
    b.bytes(if video {
        b"VideoHandler\0"
    } else {
        b"SoundHandler\0"
    });
    b.close(hdlr);

    let minf = b.open(b"minf");
    if video {
        let vmhd = b.open_full(b"vmhd", 0, 1);
        b.zeros(8);
        b.close(vmhd);
    } else {
        let smhd = b.open_full(b"smhd", 0, 0);
        b.zeros(4);
        b.close(smhd);
    }
    let dinf = b.open(b"dinf");
    let dref = b.open_full(b"dref", 0, 0);
    b.u32(1);
    let url = b.open_full(b"url ", 0, 1); // media in this file
    b.close(url);
    b.close(dref);
    b.close(dinf);

    let stbl = b.open(b"stbl");
    let stsd = b.open_full(b"stsd", 0, 0);
    b.u32(1);
    write_sample_entry(b, t);
    b.close(stsd);
    for fourcc in [b"stts", b"stsc", b"stco"] {
        let e = b.open_full(fourcc, 0, 0);
        b.u32(0);
        b.close(e);
    }
    let stsz = b.open_full(b"stsz", 0, 0);
    b.u32(0);
    b.u32(0);
    b.close(stsz);
    b.close(stbl);
    b.close(minf);
    b.close(mdia);
    b.close(trak);
}

fn write_sample_entry(b: &mut Boxes, t: &Track) {
    let fourcc: &[u8; 4] = match t.codec {
        Codec::Avc { .. } => b"avc1",
        Codec::Hevc { .. } => b"hvc1",
        Codec::Aac => b"mp4a",
        Codec::G711(G711Law::ALaw) => b"alaw",
        Codec::G711(G711Law::MuLaw) => b"ulaw",
    };
    let entry = b.open(fourcc);
    b.zeros(6);
    b.u16(1); // data_reference_index
    if t.codec.is_video() {
        b.zeros(16); // pre_defined, reserved
        b.u16(t.width);
        b.u16(t.height);
        b.u32(0x0048_0000); // 72 dpi
        b.u32(0x0048_0000);
        b.u32(0);
        b.u16(1); // frame_count
        b.zeros(32); // compressorname
        b.u16(0x0018); // depth
        b.u16(0xFFFF); // pre_defined = -1
        let config = b.open(if matches!(t.codec, Codec::Avc { .. }) {
            b"avcC"
        } else {
            b"hvcC"
        });
        b.bytes(&t.codec_private);
        b.close(config);
    } else {
        b.zeros(8);
        b.u16(t.channels);
        b.u16(16); // samplesize
        b.u16(0);
        b.u16(0);
        // 16.16 fixed point; rates above 65535 Hz do not fit (the esds/timescale carry them).
        b.u32(if t.sample_rate <= 0xFFFF {
            t.sample_rate << 16
        } else {
            0
        });
        if t.codec == Codec::Aac {
            write_esds(b, t);
        }
    }
    b.close(entry);
}

/// `esds` (ISO 14496-14): ES_Descriptor → DecoderConfigDescriptor (AAC) → DecoderSpecificInfo
/// (the AudioSpecificConfig), SLConfigDescriptor.
fn write_esds(b: &mut Boxes, t: &Track) {
    let mut dsi = Boxes::default();
    dsi.descriptor(0x05, &t.codec_private);
    let mut dcd = Boxes::default();
    dcd.u8(0x40); // objectTypeIndication: MPEG-4 Audio
    dcd.u8(0x15); // streamType 5 (audio) << 2 | upStream 0 | reserved 1
    dcd.bytes(&[0, 0, 0]); // bufferSizeDB
    dcd.u32(0); // maxBitrate
    dcd.u32(0); // avgBitrate
    dcd.bytes(&dsi.buf);
    let mut es = Boxes::default();
    es.u16(u16::try_from(t.id).unwrap_or(0)); // ES_ID
    es.u8(0); // flags
    es.descriptor(0x04, &dcd.buf);
    es.descriptor(0x06, &[0x02]); // SLConfigDescriptor: predefined MP4
    let esds = b.open_full(b"esds", 0, 0);
    b.descriptor(0x03, &es.buf);
    b.close(esds);
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::mkv::{AudioSettings, TrackType};

    fn avc_track() -> TrackInfo {
        // A 64x64 baseline SPS (from x264) and a PPS.
        let sps = [
            0x67, 0x42, 0xC0, 0x0A, 0xD9, 0x07, 0x3C, 0x04, 0x40, 0x00, 0x00, 0x03, 0x00, 0x40,
            0x00, 0x00, 0x0C, 0x83, 0xC4, 0x89, 0x92,
        ];
        let pps = [0x68, 0xCB, 0x83, 0xCB, 0x20];
        let mut t = TrackInfo::new(1, 1, TrackType::Video, codec::H264);
        t.codec_private = Bytes::from(h264::build_avcc(&sps, &pps).unwrap());
        t
    }

    fn aac_track() -> TrackInfo {
        let mut t = TrackInfo::new(2, 2, TrackType::Audio, codec::AAC);
        t.codec_private = Bytes::from_static(&[0x11, 0x90]);
        t.audio = Some(AudioSettings {
            sampling_frequency: 48_000.0,
            channels: 2,
            bit_depth: None,
        });
        t
    }

    fn avcc_frame(track: u64, ms: i64, key: bool) -> Frame {
        Frame::new(track, ms * 1_000_000, key, vec![0, 0, 0, 2, 0x65, 0x88])
    }

    #[test]
    fn codec_errors() {
        let mut t = TrackInfo::new(1, 1, TrackType::Video, "V_VP8");
        t.codec_private = Bytes::from_static(&[1]);
        assert!(matches!(
            Mp4Writer::new(&[t]),
            Err(Mp4Error::UnsupportedCodec { .. })
        ));
        let mut t = avc_track();
        t.codec_private = Bytes::new();
        assert!(matches!(
            Mp4Writer::new(&[t]),
            Err(Mp4Error::MissingCodecPrivate { .. })
        ));
        let mut t = avc_track();
        t.codec_private = Bytes::from_static(&[1, 2]);
        assert!(matches!(
            Mp4Writer::new(&[t]),
            Err(Mp4Error::InvalidCodecPrivate { .. })
        ));
        assert_eq!(Mp4Writer::new(&[]).unwrap_err(), Mp4Error::TrackCount(0));
    }

    #[test]
    fn durations_span_fragments_and_offsets_point_into_mdat() {
        let mut w = Mp4Writer::new(&[avc_track(), aac_track()]).unwrap();
        let init = w.init_segment();
        assert_eq!(&init[4..8], b"ftyp");
        let f1 = [
            avcc_frame(1, 1000, true),
            Frame::new(2, 1_000_000_000, true, vec![1, 2, 3]),
            avcc_frame(1, 1040, false),
        ];
        let s1 = w.fragment(&f1).unwrap().unwrap();
        // One video sample and nothing of audio (its only sample is kept back).
        assert_eq!(s1.samples.len(), 1);
        let s2 = w.fragment(&[avcc_frame(1, 1080, true)]).unwrap().unwrap();
        assert_eq!(s2.samples.len(), 1);
        let last = w.finish().unwrap().unwrap();
        assert_eq!(last.samples.len(), 2);
        assert!(w.finish().unwrap().is_none());
        // trun data_offset = moof size + 8.
        let h = &s1.header;
        let moof_len = u32::from_be_bytes(h[0..4].try_into().unwrap()) as usize;
        assert_eq!(&h[moof_len + 4..moof_len + 8], b"mdat");
        let trun = h.windows(4).position(|w| w == b"trun").unwrap();
        let off = u32::from_be_bytes(h[trun + 12..trun + 16].try_into().unwrap());
        assert_eq!(off as usize, moof_len + 8);
        // First sample lasts 40 ms = 3600 ticks.
        let d = u32::from_be_bytes(h[trun + 16..trun + 20].try_into().unwrap());
        assert_eq!(d, 3600);
        assert_eq!(s1.to_bytes().len(), s1.len());
    }

    /// The `u32` after the box type `name` at offset `skip` into that box's payload.
    fn field(h: &[u8], name: &[u8; 4], skip: usize) -> u64 {
        let at = h.windows(4).position(|w| w == name).unwrap() + 4 + skip;
        u64::from(u32::from_be_bytes(h[at..at + 4].try_into().unwrap()))
    }

    #[test]
    fn standalone_fragments_are_numbered_and_continuous() {
        let mut w = Mp4Writer::new(&[avc_track()]).unwrap();
        w.set_origin(1_000_000_000);
        let f2 = [avcc_frame(1, 1080, true), avcc_frame(1, 1120, false)];
        // Fetched out of order, as a player may: the second fragment first.
        let s2 = w
            .standalone_fragment(&f2, 8, Some(1_160_000_000))
            .unwrap()
            .unwrap();
        let f1 = [avcc_frame(1, 1000, true), avcc_frame(1, 1040, false)];
        let s1 = w
            .standalone_fragment(&f1, 7, Some(1_080_000_000))
            .unwrap()
            .unwrap();
        // Every sample is written: nothing kept back.
        assert_eq!(s1.samples.len(), 2);
        assert!(w.finish().unwrap().is_none());
        // mfhd sequence numbers as given.
        assert_eq!(field(&s1.header, b"mfhd", 4), 7);
        assert_eq!(field(&s2.header, b"mfhd", 4), 8);
        // tfdt (version 1, 64-bit; low half): 0 and 80 ms = 7200 ticks after the origin.
        assert_eq!(field(&s1.header, b"tfdt", 8), 0);
        assert_eq!(field(&s2.header, b"tfdt", 8), 7200);
        // The last sample lasts until the fragment's end: 40 ms each.
        assert_eq!(field(&s1.header, b"trun", 12), 3600);
        assert_eq!(field(&s1.header, b"trun", 24), 3600);
        // Without an end, the last sample takes the previous duration.
        let s3 = w
            .standalone_fragment(
                &[avcc_frame(1, 1160, true), avcc_frame(1, 1180, false)],
                9,
                None,
            )
            .unwrap()
            .unwrap();
        assert_eq!(field(&s3.header, b"trun", 24), 1800);
        assert!(w.standalone_fragment(&[], 10, None).unwrap().is_none());
        assert_eq!(w.codecs(), vec!["avc1.42c00a".to_owned()]);
        assert!(w.resolution().is_some_and(|(w, h)| w > 0 && h > 0));
    }

    #[test]
    fn annexb_frames_are_converted_and_garbage_refused() {
        let mut w = Mp4Writer::new(&[avc_track()]).unwrap();
        let annexb = Frame::new(1, 0, true, vec![0, 0, 0, 1, 0x65, 0x88, 0x84]);
        w.fragment(&[annexb]).unwrap();
        let s = w.finish().unwrap().unwrap();
        assert_eq!(&s.samples[0][..], &[0, 0, 0, 3, 0x65, 0x88, 0x84]);
        let bad = Frame::new(1, 0, true, vec![0, 0, 0, 9, 0x65]);
        assert!(matches!(
            w.fragment(&[bad]),
            Err(Mp4Error::InvalidFrame { .. })
        ));
        let stray = Frame::new(7, 0, true, vec![1]);
        assert_eq!(w.fragment(&[stray]), Err(Mp4Error::UnknownTrack(7)));
    }

    #[test]
    fn reordered_frames_get_composition_offsets() {
        let mut w = Mp4Writer::new(&[avc_track()]).unwrap();
        let frames = [
            avcc_frame(1, 0, true),
            avcc_frame(1, 120, false),
            avcc_frame(1, 40, false),
            avcc_frame(1, 80, false),
            avcc_frame(1, 160, false),
        ];
        let s = w.fragment(&frames).unwrap().unwrap();
        let h = &s.header;
        let trun = h.windows(4).position(|w| w == b"trun").unwrap();
        assert_eq!(h[trun + 4], 1, "trun version 1 (signed offsets)");
        // Second sample: dts 40 ms, pts 120 ms → cto +80 ms = 7200 ticks.
        let cto = i32::from_be_bytes(
            h[trun + 16 + 16 + 12..trun + 16 + 16 + 16]
                .try_into()
                .unwrap(),
        );
        assert_eq!(cto, 7200);
    }
}
