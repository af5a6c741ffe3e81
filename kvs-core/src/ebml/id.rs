//! Element IDs of EBML and of the Matroska elements kvs reads or writes (marker bits included).

/// EBML header (level 0).
pub const EBML: u32 = 0x1A45_DFA3;
/// EBMLVersion.
pub const EBML_VERSION: u32 = 0x4286;
/// EBMLReadVersion.
pub const EBML_READ_VERSION: u32 = 0x42F7;
/// EBMLMaxIDLength.
pub const EBML_MAX_ID_LENGTH: u32 = 0x42F2;
/// EBMLMaxSizeLength.
pub const EBML_MAX_SIZE_LENGTH: u32 = 0x42F3;
/// DocType.
pub const DOC_TYPE: u32 = 0x4282;
/// DocTypeVersion.
pub const DOC_TYPE_VERSION: u32 = 0x4287;
/// DocTypeReadVersion.
pub const DOC_TYPE_READ_VERSION: u32 = 0x4285;
/// DocTypeExtension (a master inside the EBML header).
pub const DOC_TYPE_EXTENSION: u32 = 0x4281;

/// Void: padding, allowed anywhere.
pub const VOID: u32 = 0xEC;
/// CRC-32 of the parent's other children; must be the first child.
pub const CRC32: u32 = 0xBF;

/// Segment (level 0).
pub const SEGMENT: u32 = 0x1853_8067;
/// SeekHead (level 1).
pub const SEEK_HEAD: u32 = 0x114D_9B74;
/// Info (level 1).
pub const INFO: u32 = 0x1549_A966;
/// Tracks (level 1).
pub const TRACKS: u32 = 0x1654_AE6B;
/// Cluster (level 1): one KVS fragment.
pub const CLUSTER: u32 = 0x1F43_B675;
/// Cues (level 1).
pub const CUES: u32 = 0x1C53_BB6B;
/// Chapters (level 1).
pub const CHAPTERS: u32 = 0x1043_A770;
/// Attachments (level 1).
pub const ATTACHMENTS: u32 = 0x1941_A469;
/// Tags (level 1).
pub const TAGS: u32 = 0x1254_C367;

/// SegmentUID (Info).
pub const SEGMENT_UID: u32 = 0x73A4;
/// TimestampScale, formerly TimecodeScale (Info), in ns per tick.
pub const TIMECODE_SCALE: u32 = 0x2AD7B1;
/// Duration (Info), a float in ticks.
pub const DURATION: u32 = 0x4489;
/// DateUTC (Info).
pub const DATE_UTC: u32 = 0x4461;
/// Title (Info).
pub const TITLE: u32 = 0x7BA9;
/// MuxingApp (Info).
pub const MUXING_APP: u32 = 0x4D80;
/// WritingApp (Info).
pub const WRITING_APP: u32 = 0x5741;

/// TrackEntry (Tracks).
pub const TRACK_ENTRY: u32 = 0xAE;
/// TrackNumber.
pub const TRACK_NUMBER: u32 = 0xD7;
/// TrackUID.
pub const TRACK_UID: u32 = 0x73C5;
/// TrackType.
pub const TRACK_TYPE: u32 = 0x83;
/// FlagLacing.
pub const FLAG_LACING: u32 = 0x9C;
/// DefaultDuration, ns per frame.
pub const DEFAULT_DURATION: u32 = 0x23E383;
/// Name.
pub const NAME: u32 = 0x536E;
/// Language.
pub const LANGUAGE: u32 = 0x22B59C;
/// CodecID.
pub const CODEC_ID: u32 = 0x86;
/// CodecPrivate.
pub const CODEC_PRIVATE: u32 = 0x63A2;
/// CodecDelay, ns.
pub const CODEC_DELAY: u32 = 0x56AA;
/// SeekPreRoll, ns.
pub const SEEK_PRE_ROLL: u32 = 0x56BB;
/// Video (TrackEntry).
pub const VIDEO: u32 = 0xE0;
/// PixelWidth (Video).
pub const PIXEL_WIDTH: u32 = 0xB0;
/// PixelHeight (Video).
pub const PIXEL_HEIGHT: u32 = 0xBA;
/// Audio (TrackEntry).
pub const AUDIO: u32 = 0xE1;
/// SamplingFrequency (Audio), a float in Hz.
pub const SAMPLING_FREQUENCY: u32 = 0xB5;
/// Channels (Audio).
pub const CHANNELS: u32 = 0x9F;
/// BitDepth (Audio).
pub const BIT_DEPTH: u32 = 0x6264;

/// Timestamp, formerly Timecode (Cluster), in ticks.
pub const CLUSTER_TIMECODE: u32 = 0xE7;
/// Position (Cluster).
pub const POSITION: u32 = 0xA7;
/// PrevSize (Cluster).
pub const PREV_SIZE: u32 = 0xAB;
/// SimpleBlock (Cluster).
pub const SIMPLE_BLOCK: u32 = 0xA3;
/// BlockGroup (Cluster).
pub const BLOCK_GROUP: u32 = 0xA0;
/// Block (BlockGroup).
pub const BLOCK: u32 = 0xA1;
/// BlockDuration (BlockGroup), in ticks.
pub const BLOCK_DURATION: u32 = 0x9B;
/// ReferenceBlock (BlockGroup); its absence marks a key frame.
pub const REFERENCE_BLOCK: u32 = 0xFB;
/// DiscardPadding (BlockGroup).
pub const DISCARD_PADDING: u32 = 0x75A2;
/// BlockAdditions (BlockGroup).
pub const BLOCK_ADDITIONS: u32 = 0x75A1;

/// Tag (Tags).
pub const TAG: u32 = 0x7373;
/// Targets (Tag).
pub const TARGETS: u32 = 0x63C0;
/// SimpleTag (Tag, or nested in a SimpleTag).
pub const SIMPLE_TAG: u32 = 0x67C8;
/// TagName (SimpleTag).
pub const TAG_NAME: u32 = 0x45A3;
/// TagLanguage (SimpleTag).
pub const TAG_LANGUAGE: u32 = 0x447A;
/// TagDefault (SimpleTag).
pub const TAG_DEFAULT: u32 = 0x4484;
/// TagString (SimpleTag).
pub const TAG_STRING: u32 = 0x4487;
/// TagBinary (SimpleTag).
pub const TAG_BINARY: u32 = 0x4485;

/// SilentTracks (Cluster).
pub const SILENT_TRACKS: u32 = 0x5854;
/// EncryptedBlock (Cluster, deprecated).
pub const ENCRYPTED_BLOCK: u32 = 0xAF;
/// BlockVirtual (BlockGroup, deprecated).
pub const BLOCK_VIRTUAL: u32 = 0xA2;
/// ReferencePriority (BlockGroup).
pub const REFERENCE_PRIORITY: u32 = 0xFA;
/// CodecName (TrackEntry).
pub const CODEC_NAME: u32 = 0x25_8688;
/// SignatureSlot (level 1, deprecated).
pub const SIGNATURE_SLOT: u32 = 0x1B53_8667;

/// The level an element ID sits at in a Matroska document, for the elements whose level decides
/// where an unknown-size master ends (RFC 8794 §6.2): 0 for EBML and Segment, 1 for the Segment's
/// children, 2 for the direct children of Cluster, Tracks and Tags. `None` for every other ID
/// (global, deeper or unknown elements), which never closes anything.
pub fn level(id: u32) -> Option<u8> {
    match id {
        EBML | SEGMENT => Some(0),
        SEEK_HEAD | INFO | TRACKS | CLUSTER | CUES | CHAPTERS | ATTACHMENTS | TAGS
        | SIGNATURE_SLOT => Some(1),
        CLUSTER_TIMECODE | POSITION | PREV_SIZE | SIMPLE_BLOCK | BLOCK_GROUP | SILENT_TRACKS
        | ENCRYPTED_BLOCK | TRACK_ENTRY | TAG => Some(2),
        _ => None,
    }
}
