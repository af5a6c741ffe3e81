/*
 * C tests of libkvs: every object round-trips real data, and every function called with NULLs
 * and bad sizes returns an error code (never crashes). Run by kvs-c/tests/c.rs plain, with
 * ASan/UBSan and under valgrind. Exit status 0 means every check passed.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "kvs.h"

_Static_assert(KVS_VERSION_NUMBER == KVS_VERSION_MAJOR * 10000 + KVS_VERSION_MINOR * 100 + KVS_VERSION_PATCH,
               "composite version macro");
_Static_assert(KVS_RESULT_OK == 0, "KVS_RESULT_OK is 0");

static int failures = 0;
static int checks = 0;

#define CHECK(cond)                                                                    \
    do {                                                                               \
        checks++;                                                                      \
        if (!(cond)) {                                                                 \
            failures++;                                                                \
            fprintf(stderr, "%s:%d: check failed: %s\n", __FILE__, __LINE__, #cond);   \
        }                                                                              \
    } while (0)

#define EXPECT(call, code)                                                             \
    do {                                                                               \
        kvs_result r_ = (call);                                                        \
        checks++;                                                                      \
        if (r_ != (code)) {                                                            \
            char m_[256];                                                              \
            kvs_last_error_message(m_, sizeof m_, NULL);                               \
            failures++;                                                                \
            fprintf(stderr, "%s:%d: %s returned %s, expected %s (%s)\n", __FILE__,      \
                    __LINE__, #call, kvs_result_name(r_), kvs_result_name(code), m_);  \
        }                                                                              \
    } while (0)

#define OK(call) EXPECT(call, KVS_RESULT_OK)

static int log_calls = 0;
static void on_log(void *userdata, uint32_t level, const char *message, size_t len) {
    int *counter = (int *)userdata;
    (*counter)++;
    (void)level;
    CHECK(strlen(message) == len);
}

/* A tiny H.264 key frame: SPS (320x240 baseline), PPS and an IDR slice, Annex-B. */
static const uint8_t SPS[] = {0x67, 0x42, 0xc0, 0x0d, 0xda, 0x05, 0x07, 0xec, 0x04, 0x40, 0x00,
                              0x00, 0x03, 0x00, 0x40, 0x00, 0x00, 0x0f, 0x03, 0xc5, 0x0a, 0xa8};
static const uint8_t PPS[] = {0x68, 0xce, 0x0f, 0x2c, 0x80};

static size_t make_keyframe(uint8_t *out) {
    size_t n = 0;
    static const uint8_t sc[] = {0, 0, 0, 1};
    static const uint8_t idr[] = {0x65, 0x88, 0x84, 0x00, 0x33, 0xff};
    memcpy(out + n, sc, 4); n += 4;
    memcpy(out + n, SPS, sizeof SPS); n += sizeof SPS;
    memcpy(out + n, sc, 4); n += 4;
    memcpy(out + n, PPS, sizeof PPS); n += sizeof PPS;
    memcpy(out + n, sc, 4); n += 4;
    memcpy(out + n, idr, sizeof idr); n += sizeof idr;
    return n;
}

static void test_results(void) {
    char buf[128];
    size_t n = 99;
    CHECK(strcmp(kvs_version(), "0.1.0") == 0 || strlen(kvs_version()) > 0);
    CHECK(strcmp(kvs_result_name(KVS_RESULT_OK), "KVS_RESULT_OK") == 0);
    CHECK(strcmp(kvs_result_name(KVS_RESULT_BUFFER_TOO_SMALL), "KVS_RESULT_BUFFER_TOO_SMALL") == 0);
    CHECK(strcmp(kvs_result_name(123456u), "KVS_RESULT_UNKNOWN") == 0);
    OK(kvs_result_message(KVS_RESULT_FULL, buf, sizeof buf, &n));
    CHECK(n == strlen(buf) && n > 0);
    OK(kvs_result_message(0xFFFFFFFFu, buf, sizeof buf, NULL));
    CHECK(strstr(buf, "unknown") != NULL);
    /* Truncation keeps a NUL. */
    OK(kvs_result_message(KVS_RESULT_NULL_PARAMETER, buf, 5, &n));
    CHECK(n == 4 && buf[4] == 0);
    EXPECT(kvs_result_message(KVS_RESULT_OK, NULL, 10, &n), KVS_RESULT_NULL_PARAMETER);
    EXPECT(kvs_result_message(KVS_RESULT_OK, buf, 0, &n), KVS_RESULT_BUFFER_TOO_SMALL);
    EXPECT(kvs_last_error_message(NULL, 1, NULL), KVS_RESULT_NULL_PARAMETER);
    OK(kvs_last_error_message(buf, sizeof buf, &n));
    CHECK(strstr(buf, "KVS_RESULT_NULL_PARAMETER") == buf);
}

static void stream_config(kvs_stream_config *c) {
    memset(c, 0, sizeof *c);
    for (int i = 0; i < 16; i++) c->segment_uid[i] = (uint8_t)(i * 7 + 1);
}

static void video_track(kvs_track_config *t, const uint8_t *cpd, size_t cpd_len) {
    memset(t, 0, sizeof *t);
    t->number = 1;
    t->track_type = KVS_TRACK_TYPE_VIDEO;
    t->codec_id = "V_MPEG4/ISO/AVC";
    t->name = "video";
    t->codec_private = cpd;
    t->codec_private_len = cpd_len;
    t->width = 320;
    t->height = 240;
}

static void test_media(uint8_t *avcc, size_t *avcc_len, uint8_t *frame_avcc, size_t *frame_len) {
    uint8_t key[64], out[256];
    size_t key_len = make_keyframe(key), n = 0;
    uint32_t w = 0, h = 0;
    OK(kvs_codec_private_from_keyframe(KVS_VIDEO_CODEC_H264, key, key_len, out, sizeof out, &n, &w, &h));
    CHECK(w == 320 && h == 240);
    CHECK(n > 8 && out[0] == 1);
    memcpy(avcc, out, n);
    *avcc_len = n;
    size_t n2 = 0;
    OK(kvs_avcc_from_annexb(key, key_len, out, sizeof out, &n2));
    CHECK(n2 == n && memcmp(out, avcc, n) == 0);
    OK(kvs_avcc_from_parameter_sets(SPS, sizeof SPS, PPS, sizeof PPS, out, sizeof out, &n2));
    CHECK(n2 == n && memcmp(out, avcc, n) == 0);
    OK(kvs_annexb_to_avcc(key, key_len, frame_avcc, 256, frame_len));
    CHECK(*frame_len == key_len); /* 4-byte start codes become 4-byte lengths */
    CHECK(frame_avcc[3] == sizeof SPS);
    /* Too small: size needed reported, nothing else. */
    size_t need = 0;
    EXPECT(kvs_annexb_to_avcc(key, key_len, out, 3, &need), KVS_RESULT_BUFFER_TOO_SMALL);
    CHECK(need == key_len);
    /* Bad input and bad parameters. */
    static const uint8_t junk[] = {0xde, 0xad, 0xbe, 0xef};
    EXPECT(kvs_annexb_to_avcc(junk, sizeof junk, out, sizeof out, &n2), KVS_RESULT_MEDIA);
    EXPECT(kvs_avcc_from_annexb(junk, sizeof junk, out, sizeof out, &n2), KVS_RESULT_MEDIA);
    EXPECT(kvs_hvcc_from_annexb(key, key_len, out, sizeof out, &n2), KVS_RESULT_MEDIA);
    EXPECT(kvs_hvcc_from_parameter_sets(NULL, 0, SPS, sizeof SPS, NULL, 0, out, sizeof out, &n2), KVS_RESULT_MEDIA);
    EXPECT(kvs_annexb_to_avcc(NULL, 5, out, sizeof out, &n2), KVS_RESULT_NULL_PARAMETER);
    EXPECT(kvs_annexb_to_avcc(key, key_len, NULL, 100, &n2), KVS_RESULT_NULL_PARAMETER);
    EXPECT(kvs_annexb_to_avcc(key, key_len, out, sizeof out, NULL), KVS_RESULT_NULL_PARAMETER);
    EXPECT(kvs_avcc_from_parameter_sets(NULL, 3, PPS, sizeof PPS, out, sizeof out, &n2), KVS_RESULT_NULL_PARAMETER);
    EXPECT(kvs_codec_private_from_keyframe(7, key, key_len, out, sizeof out, &n2, &w, &h), KVS_RESULT_INVALID_PARAMETER);
    EXPECT(kvs_codec_private_from_keyframe(KVS_VIDEO_CODEC_H264, key, key_len, out, sizeof out, &n2, NULL, &h), KVS_RESULT_NULL_PARAMETER);
    EXPECT(kvs_codec_private_from_keyframe(KVS_VIDEO_CODEC_H264, key, key_len, out, 4, &n2, &w, &h), KVS_RESULT_BUFFER_TOO_SMALL);
    CHECK(n2 == n);
}

/* Writes 3 fragments of 5 frames with the writer, reads them back with the reader. */
static void test_writer_reader(const uint8_t *avcc, size_t avcc_len, const uint8_t *payload, size_t payload_len) {
    kvs_stream_config cfg;
    kvs_track_config track;
    kvs_writer *w = NULL;
    stream_config(&cfg);
    video_track(&track, avcc, avcc_len);
    OK(kvs_writer_new(&cfg, &track, 1, &w));
    CHECK(w != NULL);

    size_t cap = 64 * 1024, used = 0, n = 0;
    uint8_t *mkv = malloc(cap);
    OK(kvs_writer_header(w, mkv, cap, &n));
    used += n;
    size_t need = 0;
    EXPECT(kvs_writer_header(w, mkv, 10, &need), KVS_RESULT_BUFFER_TOO_SMALL);
    CHECK(need == n);

    OK(kvs_writer_put_metadata(w, "camera", "front door", true));
    EXPECT(kvs_writer_put_metadata(w, "AWS_RESERVED", "x", false), KVS_RESULT_WRITER);

    /* A non-key frame first is skipped. */
    kvs_frame f;
    kvs_frame_outcome o;
    memset(&f, 0, sizeof f);
    f.track = 1;
    f.timestamp_ns = 1000000000;
    f.data = payload;
    f.len = payload_len;
    OK(kvs_writer_write_frame(w, &f, mkv + used, cap - used, &n, &o));
    CHECK(!o.written && n == 0);

    for (int frag = 0; frag < 3; frag++) {
        for (int i = 0; i < 5; i++) {
            f.flags = i == 0 ? KVS_FRAME_FLAG_KEYFRAME : 0;
            f.timestamp_ns = 2000000000LL + (int64_t)(frag * 5 + i) * 40000000LL;
            /* A too-small buffer changes nothing and says what is needed. */
            EXPECT(kvs_writer_write_frame(w, &f, mkv + used, 4, &need, &o), KVS_RESULT_BUFFER_TOO_SMALL);
            OK(kvs_writer_write_frame(w, &f, mkv + used, cap - used, &n, &o));
            CHECK(need == n);
            CHECK(o.written && o.new_fragment == (i == 0));
            CHECK(o.fragment_index == (uint64_t)frag);
            used += n;
        }
        if (frag == 1) {
            EXPECT(kvs_writer_end_fragment(w, mkv + used, 10, &need), KVS_RESULT_BUFFER_TOO_SMALL);
            CHECK(need == 84);
            OK(kvs_writer_end_fragment(w, mkv + used, cap - used, &n));
            CHECK(n == 84);
            used += n;
            EXPECT(kvs_writer_end_fragment(w, mkv + used, cap - used, &n), KVS_RESULT_WRITER);
        }
    }
    OK(kvs_writer_finish(w, mkv + used, cap - used, &n));
    used += n;
    /* Bad frames. */
    f.flags = 0x80;
    EXPECT(kvs_writer_write_frame(w, &f, mkv, cap, &n, &o), KVS_RESULT_INVALID_PARAMETER);
    f.flags = KVS_FRAME_FLAG_KEYFRAME;
    f.track = 9;
    EXPECT(kvs_writer_write_frame(w, &f, mkv, cap, &n, &o), KVS_RESULT_WRITER);
    f.track = 1;
    f.len = 0;
    EXPECT(kvs_writer_write_frame(w, &f, mkv, cap, &n, &o), KVS_RESULT_WRITER);
    f.data = NULL;
    f.len = 10;
    EXPECT(kvs_writer_write_frame(w, &f, mkv, cap, &n, &o), KVS_RESULT_NULL_PARAMETER);
    kvs_writer_free(w);

    /* Read back, in 7-byte chunks. */
    kvs_reader *r = NULL;
    OK(kvs_reader_new(&r));
    int frames = 0, fragments = 0, tracks = 0, keyframes = 0, clusters = 0, tags_with_camera = 0;
    kvs_reader_event ev;
    for (size_t off = 0;; off += 7) {
        size_t chunk = off >= used ? 0 : (used - off < 7 ? used - off : 7);
        if (chunk > 0) OK(kvs_reader_push(r, mkv + off, chunk));
        else OK(kvs_reader_finish(r));
        kvs_result res;
        while ((res = kvs_reader_poll(r, &ev)) == KVS_RESULT_OK) {
            switch (ev.kind) {
            case KVS_READER_EVENT_KIND_TRACK:
                tracks++;
                CHECK(strcmp(ev.codec_id, "V_MPEG4/ISO/AVC") == 0);
                CHECK(ev.len == avcc_len && memcmp(ev.data, avcc, avcc_len) == 0);
                CHECK(ev.width == 320 && ev.height == 240);
                break;
            case KVS_READER_EVENT_KIND_FRAME:
                CHECK(ev.len == payload_len && memcmp(ev.data, payload, payload_len) == 0);
                CHECK(ev.timestamp_ns == 2000000000LL + (int64_t)frames * 40000000LL);
                if (ev.flags & KVS_FRAME_FLAG_KEYFRAME) keyframes++;
                frames++;
                break;
            case KVS_READER_EVENT_KIND_CLUSTER_START:
                clusters++;
                CHECK(ev.has_timecode);
                break;
            case KVS_READER_EVENT_KIND_FRAGMENT_END:
                CHECK(ev.fragment_index == (uint64_t)fragments);
                if (ev.frames != 5) fprintf(stderr, "fragment %llu frames=%llu cluster=%d\n", (unsigned long long)ev.fragment_index, (unsigned long long)ev.frames, ev.has_cluster);
                CHECK(ev.frames == 5 && ev.keyframes == 1);
                fragments++;
                break;
            case KVS_READER_EVENT_KIND_ERROR:
                CHECK(!"no decode error expected");
                break;
            default:
                break;
            }
            (void)tags_with_camera;
        }
        EXPECT(res, KVS_RESULT_WOULD_BLOCK);
        if (chunk == 0) break;
    }
    CHECK(tracks == 1);
    CHECK(frames == 15);
    CHECK(keyframes == 3);
    CHECK(clusters == 3);
    if (fragments != 3) fprintf(stderr, "fragments=%d\n", fragments);
    CHECK(fragments == 3);
    kvs_reader_free(r);

    /* Garbage: an error event, then the reader goes on. */
    OK(kvs_reader_new(&r));
    static const uint8_t garbage[] = {0x1a, 0x45, 0xdf, 0xa3, 0x01, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x00};
    OK(kvs_reader_push(r, garbage, sizeof garbage));
    OK(kvs_reader_finish(r));
    int errors = 0;
    while (kvs_reader_poll(r, &ev) == KVS_RESULT_OK) {
        if (ev.kind == KVS_READER_EVENT_KIND_ERROR) errors++;
    }
    CHECK(errors >= 1);
    kvs_reader_free(r);
    free(mkv);
}

static void test_null_and_bad_parameters(const uint8_t *avcc, size_t avcc_len) {
    uint8_t buf[512];
    size_t n;
    kvs_stream_config cfg;
    kvs_track_config track;
    kvs_writer *w = NULL;
    kvs_reader *r = NULL;
    kvs_session *s = NULL;
    kvs_ack_parser *p = NULL;
    kvs_request *q = NULL;
    kvs_frame f;
    kvs_frame_outcome o;
    kvs_reader_event rev;
    kvs_session_event sev;
    kvs_ack ack;
    uint64_t u64;
    stream_config(&cfg);
    video_track(&track, avcc, avcc_len);
    memset(&f, 0, sizeof f);

    /* Writer. */
    EXPECT(kvs_writer_new(NULL, &track, 1, &w), KVS_RESULT_NULL_PARAMETER);
    EXPECT(kvs_writer_new(&cfg, NULL, 1, &w), KVS_RESULT_NULL_PARAMETER);
    EXPECT(kvs_writer_new(&cfg, &track, 1, NULL), KVS_RESULT_NULL_PARAMETER);
    EXPECT(kvs_writer_new(&cfg, &track, 0, &w), KVS_RESULT_INVALID_PARAMETER);
    EXPECT(kvs_writer_new(&cfg, &track, (size_t)-1, &w), KVS_RESULT_INVALID_PARAMETER);
    cfg.timecode_mode = 42;
    EXPECT(kvs_writer_new(&cfg, &track, 1, &w), KVS_RESULT_INVALID_PARAMETER);
    cfg.timecode_mode = 0;
    cfg.timecode_scale_ns = 1; /* below 100 ns */
    EXPECT(kvs_writer_new(&cfg, &track, 1, &w), KVS_RESULT_CONFIG);
    cfg.timecode_scale_ns = 0;
    track.track_type = 77;
    EXPECT(kvs_writer_new(&cfg, &track, 1, &w), KVS_RESULT_INVALID_PARAMETER);
    track.track_type = KVS_TRACK_TYPE_VIDEO;
    track.codec_id = NULL;
    EXPECT(kvs_writer_new(&cfg, &track, 1, &w), KVS_RESULT_NULL_PARAMETER);
    track.codec_id = "\xff\xfe";
    EXPECT(kvs_writer_new(&cfg, &track, 1, &w), KVS_RESULT_INVALID_PARAMETER);
    track.codec_id = "V_MPEG4/ISO/AVC";
    track.codec_private = NULL;
    EXPECT(kvs_writer_new(&cfg, &track, 1, &w), KVS_RESULT_NULL_PARAMETER);
    track.codec_private = avcc;
    CHECK(w == NULL);
    EXPECT(kvs_writer_header(NULL, buf, sizeof buf, &n), KVS_RESULT_NULL_PARAMETER);
    EXPECT(kvs_writer_put_metadata(NULL, "a", "b", false), KVS_RESULT_NULL_PARAMETER);
    EXPECT(kvs_writer_write_frame(NULL, &f, buf, sizeof buf, &n, &o), KVS_RESULT_NULL_PARAMETER);
    EXPECT(kvs_writer_end_fragment(NULL, buf, sizeof buf, &n), KVS_RESULT_NULL_PARAMETER);
    EXPECT(kvs_writer_finish(NULL, buf, sizeof buf, &n), KVS_RESULT_NULL_PARAMETER);
    kvs_writer_free(NULL);
    OK(kvs_writer_new(&cfg, &track, 1, &w));
    EXPECT(kvs_writer_header(w, NULL, 100, &n), KVS_RESULT_BUFFER_TOO_SMALL); /* size first */
    EXPECT(kvs_writer_header(w, buf, sizeof buf, NULL), KVS_RESULT_NULL_PARAMETER);
    EXPECT(kvs_writer_header(w, buf, 0, &n), KVS_RESULT_BUFFER_TOO_SMALL);
    EXPECT(kvs_writer_put_metadata(w, NULL, "b", false), KVS_RESULT_NULL_PARAMETER);
    EXPECT(kvs_writer_put_metadata(w, "a", NULL, false), KVS_RESULT_NULL_PARAMETER);
    EXPECT(kvs_writer_put_metadata(w, "", "b", false), KVS_RESULT_WRITER);
    EXPECT(kvs_writer_write_frame(w, NULL, buf, sizeof buf, &n, &o), KVS_RESULT_NULL_PARAMETER);
    EXPECT(kvs_writer_write_frame(w, &f, buf, sizeof buf, NULL, &o), KVS_RESULT_NULL_PARAMETER);
    EXPECT(kvs_writer_write_frame(w, &f, buf, sizeof buf, &n, NULL), KVS_RESULT_NULL_PARAMETER);
    EXPECT(kvs_writer_end_fragment(w, buf, sizeof buf, NULL), KVS_RESULT_NULL_PARAMETER);
    EXPECT(kvs_writer_end_fragment(w, NULL, 10, &n), KVS_RESULT_NULL_PARAMETER);
    EXPECT(kvs_writer_finish(w, buf, sizeof buf, NULL), KVS_RESULT_NULL_PARAMETER);
    kvs_writer_free(w);

    /* Reader. */
    EXPECT(kvs_reader_new(NULL), KVS_RESULT_NULL_PARAMETER);
    EXPECT(kvs_reader_push(NULL, buf, 1), KVS_RESULT_NULL_PARAMETER);
    EXPECT(kvs_reader_finish(NULL), KVS_RESULT_NULL_PARAMETER);
    EXPECT(kvs_reader_poll(NULL, &rev), KVS_RESULT_NULL_PARAMETER);
    kvs_reader_free(NULL);
    OK(kvs_reader_new(&r));
    EXPECT(kvs_reader_push(r, NULL, 4), KVS_RESULT_NULL_PARAMETER);
    OK(kvs_reader_push(r, NULL, 0));
    EXPECT(kvs_reader_poll(r, NULL), KVS_RESULT_NULL_PARAMETER);
    EXPECT(kvs_reader_poll(r, &rev), KVS_RESULT_WOULD_BLOCK);
    kvs_reader_free(r);

    /* Session. */
    kvs_session_config sc;
    memset(&sc, 0, sizeof sc);
    sc.stream = cfg;
    sc.producer_start_epoch_ms = 1700000000000ULL;
    EXPECT(kvs_session_new(&sc, &track, 1, 0, &s), KVS_RESULT_CONFIG); /* no stream name */
    sc.stream_name = "cam";
    EXPECT(kvs_session_new(NULL, &track, 1, 0, &s), KVS_RESULT_NULL_PARAMETER);
    EXPECT(kvs_session_new(&sc, NULL, 1, 0, &s), KVS_RESULT_NULL_PARAMETER);
    EXPECT(kvs_session_new(&sc, &track, 1, 0, NULL), KVS_RESULT_NULL_PARAMETER);
    sc.ack_level = 9;
    EXPECT(kvs_session_new(&sc, &track, 1, 0, &s), KVS_RESULT_INVALID_PARAMETER);
    sc.ack_level = KVS_ACK_LEVEL_PERSISTED;
    EXPECT(kvs_session_push_frame(NULL, 0, &f, &u64), KVS_RESULT_NULL_PARAMETER);
    EXPECT(kvs_session_put_metadata(NULL, "a", "b", true), KVS_RESULT_NULL_PARAMETER);
    EXPECT(kvs_session_finish(NULL, 0), KVS_RESULT_NULL_PARAMETER);
    EXPECT(kvs_session_handle_connected(NULL, 0, 0, 200), KVS_RESULT_NULL_PARAMETER);
    EXPECT(kvs_session_handle_ack_bytes(NULL, 0, 0, buf, 1), KVS_RESULT_NULL_PARAMETER);
    EXPECT(kvs_session_handle_disconnected(NULL, 0, 0, KVS_DISCONNECT_ERROR), KVS_RESULT_NULL_PARAMETER);
    EXPECT(kvs_session_handle_timeout(NULL, 0), KVS_RESULT_NULL_PARAMETER);
    EXPECT(kvs_session_next_timeout_ms(NULL, &u64), KVS_RESULT_NULL_PARAMETER);
    EXPECT(kvs_session_poll_event(NULL, &sev), KVS_RESULT_NULL_PARAMETER);
    EXPECT(kvs_session_poll_transmit(NULL, buf, sizeof buf, &u64, &n), KVS_RESULT_NULL_PARAMETER);
    EXPECT(kvs_session_connect_request(NULL, 0, "http://127.0.0.1:1", &q), KVS_RESULT_NULL_PARAMETER);
    CHECK(!kvs_session_is_closed(NULL));
    CHECK(kvs_session_buffered_bytes(NULL) == 0);
    kvs_session_free(NULL);
    OK(kvs_session_new(&sc, &track, 1, 0, &s));
    EXPECT(kvs_session_push_frame(s, 0, NULL, &u64), KVS_RESULT_NULL_PARAMETER);
    f.track = 1;
    f.data = buf;
    f.len = 0;
    EXPECT(kvs_session_push_frame(s, 0, &f, &u64), KVS_RESULT_WRITER);
    f.len = 10;
    f.flags = 0xF0;
    EXPECT(kvs_session_push_frame(s, 0, &f, &u64), KVS_RESULT_INVALID_PARAMETER);
    f.flags = 0;
    EXPECT(kvs_session_put_metadata(s, NULL, "b", true), KVS_RESULT_NULL_PARAMETER);
    EXPECT(kvs_session_handle_ack_bytes(s, 0, 0, NULL, 3), KVS_RESULT_NULL_PARAMETER);
    EXPECT(kvs_session_handle_disconnected(s, 0, 0, 17), KVS_RESULT_INVALID_PARAMETER);
    EXPECT(kvs_session_next_timeout_ms(s, NULL), KVS_RESULT_NULL_PARAMETER);
    EXPECT(kvs_session_poll_event(s, NULL), KVS_RESULT_NULL_PARAMETER);
    EXPECT(kvs_session_poll_transmit(s, buf, 0, &u64, &n), KVS_RESULT_BUFFER_TOO_SMALL);
    EXPECT(kvs_session_poll_transmit(s, NULL, 10, &u64, &n), KVS_RESULT_NULL_PARAMETER);
    EXPECT(kvs_session_poll_transmit(s, buf, sizeof buf, NULL, &n), KVS_RESULT_NULL_PARAMETER);
    EXPECT(kvs_session_poll_transmit(s, buf, sizeof buf, &u64, NULL), KVS_RESULT_NULL_PARAMETER);
    EXPECT(kvs_session_connect_request(s, 12345, "http://127.0.0.1:1", &q), KVS_RESULT_NOT_FOUND);
    EXPECT(kvs_session_connect_request(s, 0, NULL, &q), KVS_RESULT_NULL_PARAMETER);
    EXPECT(kvs_session_connect_request(s, 0, "http://127.0.0.1:1", NULL), KVS_RESULT_NULL_PARAMETER);
    kvs_session_free(s);

    /* ACK parser. */
    EXPECT(kvs_ack_parser_new(NULL), KVS_RESULT_NULL_PARAMETER);
    EXPECT(kvs_ack_parser_push(NULL, buf, 1), KVS_RESULT_NULL_PARAMETER);
    EXPECT(kvs_ack_parser_poll(NULL, &ack), KVS_RESULT_NULL_PARAMETER);
    kvs_ack_parser_free(NULL);
    OK(kvs_ack_parser_new(&p));
    EXPECT(kvs_ack_parser_push(p, NULL, 2), KVS_RESULT_NULL_PARAMETER);
    EXPECT(kvs_ack_parser_poll(p, NULL), KVS_RESULT_NULL_PARAMETER);
    kvs_ack_parser_free(p);

    /* Requests and signing. */
    kvs_credentials creds = {"AKIDEXAMPLE", "wJalrXUtnFEMI/K7MDENG+bPxRfiCYEXAMPLEKEY", NULL};
    EXPECT(kvs_request_describe_stream(NULL, "cam", NULL, &q), KVS_RESULT_NULL_PARAMETER);
    EXPECT(kvs_request_describe_stream("not a url", "cam", NULL, &q), KVS_RESULT_INVALID_PARAMETER);
    EXPECT(kvs_request_describe_stream("http://h:1", "cam", NULL, NULL), KVS_RESULT_NULL_PARAMETER);
    EXPECT(kvs_request_describe_stream("http://h:1", NULL, NULL, &q), KVS_RESULT_API);
    EXPECT(kvs_request_describe_stream("http://h:1", "cam", "arn:aws:kinesisvideo:us-east-1:1:stream/cam/1", &q), KVS_RESULT_API);
    EXPECT(kvs_request_create_stream("http://h:1", NULL, NULL, NULL, 0, &q), KVS_RESULT_NULL_PARAMETER);
    EXPECT(kvs_request_create_stream("http://h:1", "bad name!", NULL, NULL, 0, &q), KVS_RESULT_API);
    EXPECT(kvs_request_get_data_endpoint("http://h:1", "cam", NULL, "NOPE", &q), KVS_RESULT_INVALID_PARAMETER);
    EXPECT(kvs_request_get_data_endpoint("http://h:1", "cam", NULL, NULL, &q), KVS_RESULT_NULL_PARAMETER);
    EXPECT(kvs_request_put_media("http://h:1", "cam", NULL, 5, 0, &q), KVS_RESULT_INVALID_PARAMETER);
    EXPECT(kvs_request_put_media("http://h:1", NULL, NULL, 0, 0, &q), KVS_RESULT_API);
    CHECK(q == NULL);
    EXPECT(kvs_request_set_header(NULL, "a", "b"), KVS_RESULT_NULL_PARAMETER);
    EXPECT(kvs_request_sign(NULL, &creds, "us-east-1", 0, KVS_SIGN_MODE_BODY), KVS_RESULT_NULL_PARAMETER);
    EXPECT(kvs_request_write_head(NULL, buf, sizeof buf, &n), KVS_RESULT_NULL_PARAMETER);
    EXPECT(kvs_request_body(NULL, (const uint8_t **)&q, &n), KVS_RESULT_NULL_PARAMETER);
    EXPECT(kvs_request_header(NULL, "host", buf, sizeof buf, &n), KVS_RESULT_NULL_PARAMETER);
    kvs_request_free(NULL);
    OK(kvs_request_describe_stream("http://h:1", "cam", NULL, &q));
    EXPECT(kvs_request_set_header(q, "bad name", "b"), KVS_RESULT_INVALID_PARAMETER);
    EXPECT(kvs_request_set_header(q, "x-ok", "bad\nvalue"), KVS_RESULT_INVALID_PARAMETER);
    EXPECT(kvs_request_set_header(q, NULL, "b"), KVS_RESULT_NULL_PARAMETER);
    EXPECT(kvs_request_sign(q, NULL, "us-east-1", 0, KVS_SIGN_MODE_BODY), KVS_RESULT_NULL_PARAMETER);
    kvs_credentials bad = {NULL, "x", NULL};
    EXPECT(kvs_request_sign(q, &bad, "us-east-1", 0, KVS_SIGN_MODE_BODY), KVS_RESULT_NULL_PARAMETER);
    EXPECT(kvs_request_sign(q, &creds, NULL, 0, KVS_SIGN_MODE_BODY), KVS_RESULT_NULL_PARAMETER);
    EXPECT(kvs_request_sign(q, &creds, "us-east-1", 0, 3), KVS_RESULT_INVALID_PARAMETER);
    EXPECT(kvs_request_sign(q, &creds, "us-east-1", UINT64_MAX, KVS_SIGN_MODE_BODY), KVS_RESULT_SIGN);
    EXPECT(kvs_request_write_head(q, buf, 5, &n), KVS_RESULT_BUFFER_TOO_SMALL);
    CHECK(n > 5);
    EXPECT(kvs_request_write_head(q, buf, sizeof buf, NULL), KVS_RESULT_NULL_PARAMETER);
    EXPECT(kvs_request_body(q, NULL, &n), KVS_RESULT_NULL_PARAMETER);
    EXPECT(kvs_request_header(q, "x-missing", buf, sizeof buf, &n), KVS_RESULT_NOT_FOUND);
    EXPECT(kvs_request_header(q, NULL, buf, sizeof buf, &n), KVS_RESULT_NULL_PARAMETER);
    kvs_request_free(q);
    q = NULL;

    kvs_sigv4_request sr;
    memset(&sr, 0, sizeof sr);
    EXPECT(kvs_sigv4_sign(NULL, &creds, "us-east-1", 0, buf, sizeof buf, &n), KVS_RESULT_NULL_PARAMETER);
    EXPECT(kvs_sigv4_sign(&sr, &creds, "us-east-1", 0, buf, sizeof buf, &n), KVS_RESULT_NULL_PARAMETER);
    sr.method = "POST";
    sr.target = "/describeStream";
    sr.n_headers = 2;
    EXPECT(kvs_sigv4_sign(&sr, &creds, "us-east-1", 0, buf, sizeof buf, &n), KVS_RESULT_NULL_PARAMETER);
    sr.n_headers = 100000;
    kvs_header hs[1] = {{"host", "example"}};
    sr.headers = hs;
    EXPECT(kvs_sigv4_sign(&sr, &creds, "us-east-1", 0, buf, sizeof buf, &n), KVS_RESULT_INVALID_PARAMETER);
    sr.n_headers = 0;
    EXPECT(kvs_sigv4_sign(&sr, &creds, "us-east-1", 0, buf, sizeof buf, &n), KVS_RESULT_SIGN); /* no host */
    sr.n_headers = 1;
    EXPECT(kvs_sigv4_sign(&sr, &creds, "us-east-1", 0, buf, 10, &n), KVS_RESULT_BUFFER_TOO_SMALL);
    EXPECT(kvs_sigv4_sign(&sr, &creds, "us-east-1", 0, buf, sizeof buf, NULL), KVS_RESULT_NULL_PARAMETER);

    EXPECT(kvs_parse_get_data_endpoint(200, NULL, 4, buf, sizeof buf, &n), KVS_RESULT_NULL_PARAMETER);
    EXPECT(kvs_parse_get_data_endpoint(200, (const uint8_t *)"{}", 2, buf, sizeof buf, &n), KVS_RESULT_API);
    EXPECT(kvs_parse_get_data_endpoint(7, (const uint8_t *)"{}", 2, buf, sizeof buf, &n), KVS_RESULT_INVALID_PARAMETER);
    EXPECT(kvs_set_log_callback(NULL, NULL), KVS_RESULT_OK);
}

static void test_ack_parser(void) {
    kvs_ack_parser *p = NULL;
    kvs_ack ack;
    OK(kvs_ack_parser_new(&p));
    const char *text =
        "{\"EventType\":\"BUFFERING\",\"FragmentTimecode\":1000,\"FragmentNumber\":\"91343852333181432392682062607743920146264478781\"}\n"
        "{\"EventType\":\"PERSISTED\",\"FragmentTimecode\":1000,\"FragmentNumber\":\"91343852333181432392682062607743920146264478781\"}\n"
        "{\"EventType\":\"ERROR\",\"FragmentTimecode\":3000,\"ErrorId\":4004}\n"
        "not json\n{\"EventType\":\"IDLE\"}";
    size_t len = strlen(text);
    /* Byte by byte. */
    int got = 0, bad = 0;
    for (size_t i = 0; i < len; i++) {
        OK(kvs_ack_parser_push(p, (const uint8_t *)text + i, 1));
        for (;;) {
            kvs_result r = kvs_ack_parser_poll(p, &ack);
            if (r == KVS_RESULT_WOULD_BLOCK) break;
            if (r == KVS_RESULT_ACK) { bad++; continue; }
            CHECK(r == KVS_RESULT_OK);
            switch (got) {
            case 0:
                CHECK(ack.ack_type == KVS_ACK_TYPE_BUFFERING && ack.fragment_timecode == 1000);
                CHECK(strcmp(ack.fragment_number, "91343852333181432392682062607743920146264478781") == 0);
                break;
            case 1: CHECK(ack.ack_type == KVS_ACK_TYPE_PERSISTED); break;
            case 2: CHECK(ack.ack_type == KVS_ACK_TYPE_ERROR && ack.error_id == 4004 && ack.fragment_number[0] == 0); break;
            case 3: CHECK(ack.ack_type == KVS_ACK_TYPE_IDLE && !ack.has_fragment_timecode); break;
            default: CHECK(!"too many acks");
            }
            got++;
        }
    }
    CHECK(got == 4);
    CHECK(bad == 1);
    kvs_ack_parser_free(p);
}

static void test_requests(void) {
    kvs_request *q = NULL;
    char head[2048];
    size_t n = 0;
    kvs_credentials creds = {"AKIDEXAMPLE", "wJalrXUtnFEMI/K7MDENG+bPxRfiCYEXAMPLEKEY", "token-1"};
    OK(kvs_request_get_data_endpoint("https://kinesisvideo.us-east-1.amazonaws.com", "cam", NULL, "PUT_MEDIA", &q));
    OK(kvs_request_set_header(q, "user-agent", "libkvs-test"));
    OK(kvs_request_sign(q, &creds, "us-east-1", 1700000000000ULL, KVS_SIGN_MODE_BODY));
    OK(kvs_request_write_head(q, (uint8_t *)head, sizeof head - 1, &n));
    head[n] = 0;
    CHECK(strncmp(head, "POST /getDataEndpoint HTTP/1.1\r\n", 32) == 0);
    CHECK(strstr(head, "host: kinesisvideo.us-east-1.amazonaws.com\r\n") != NULL);
    CHECK(strstr(head, "x-amz-date: 20231114T221320Z\r\n") != NULL);
    CHECK(strstr(head, "authorization: AWS4-HMAC-SHA256 Credential=AKIDEXAMPLE/20231114/us-east-1/kinesisvideo/aws4_request") != NULL);
    CHECK(strstr(head, "x-amz-security-token: token-1\r\n") != NULL);
    CHECK(strstr(head, "content-length: ") != NULL);
    CHECK(strcmp(head + n - 4, "\r\n\r\n") == 0);
    const uint8_t *body = NULL;
    size_t body_len = 0;
    OK(kvs_request_body(q, &body, &body_len));
    CHECK(body_len > 0 && memcmp(body, "{\"StreamName\":\"cam\",\"APIName\":\"PUT_MEDIA\"}", body_len) == 0);
    char value[256];
    OK(kvs_request_header(q, "Authorization", (uint8_t *)value, sizeof value - 1, &n));
    value[n] = 0;
    CHECK(strstr(value, "SignedHeaders=content-type;host;x-amz-date;x-amz-security-token") != NULL);

    /* The standalone signer gives the same signature for the same request. */
    kvs_header hs[3] = {{"host", "kinesisvideo.us-east-1.amazonaws.com"},
                        {"content-type", "application/json"},
                        {"user-agent", "libkvs-test"}};
    kvs_sigv4_request sr;
    memset(&sr, 0, sizeof sr);
    sr.method = "POST";
    sr.target = "/getDataEndpoint";
    sr.headers = hs;
    sr.n_headers = 3;
    char hash[65];
    /* sha256 of the body, computed by the same library through a body-mode signature: use the
     * precomputed-hash path with the known value instead. */
    (void)hash;
    sr.payload_sha256_hex = NULL;
    char lines[1024];
    OK(kvs_sigv4_sign(&sr, &creds, "us-east-1", 1700000000000ULL, (uint8_t *)lines, sizeof lines - 1, &n));
    lines[n] = 0;
    CHECK(strstr(lines, "x-amz-date: 20231114T221320Z\r\n") != NULL);
    CHECK(strstr(lines, "authorization: AWS4-HMAC-SHA256 ") != NULL);
    kvs_request_free(q);

    OK(kvs_request_put_media("http://127.0.0.1:4567", "cam", NULL, KVS_TIMECODE_MODE_ABSOLUTE, 1700000000005ULL, &q));
    OK(kvs_request_sign(q, &creds, "us-east-1", 1700000000000ULL, KVS_SIGN_MODE_STREAMING));
    OK(kvs_request_write_head(q, (uint8_t *)head, sizeof head - 1, &n));
    head[n] = 0;
    CHECK(strncmp(head, "POST /putMedia HTTP/1.1\r\n", 25) == 0);
    CHECK(strstr(head, "transfer-encoding: chunked\r\n") != NULL);
    CHECK(strstr(head, "x-amzn-stream-name: cam\r\n") != NULL);
    CHECK(strstr(head, "x-amzn-producer-start-timestamp: 1700000000.005\r\n") != NULL);
    CHECK(strstr(head, "content-length") == NULL);
    kvs_request_free(q);

    OK(kvs_request_create_stream("http://127.0.0.1:4567", "cam", "dev", "video/h264", 24, &q));
    OK(kvs_request_body(q, &body, &body_len));
    CHECK(body_len > 0 && memchr(body, '2', body_len) != NULL);
    kvs_request_free(q);

    const char *resp = "{\"DataEndpoint\":\"https://s-123.kinesisvideo.us-east-1.amazonaws.com\"}";
    OK(kvs_parse_get_data_endpoint(200, (const uint8_t *)resp, strlen(resp), (uint8_t *)value, sizeof value - 1, &n));
    value[n] = 0;
    CHECK(strcmp(value, "https://s-123.kinesisvideo.us-east-1.amazonaws.com") == 0);
    const char *err = "{\"__type\":\"ResourceNotFoundException\",\"Message\":\"no stream\"}";
    EXPECT(kvs_parse_get_data_endpoint(404, (const uint8_t *)err, strlen(err), (uint8_t *)value, sizeof value, &n), KVS_RESULT_API);
}

/* Drives a session in memory: frames in, body out, ACKs back, finish, CLOSED. */
static void test_session(const uint8_t *avcc, size_t avcc_len, const uint8_t *payload, size_t payload_len) {
    kvs_session_config sc;
    kvs_track_config track;
    kvs_session *s = NULL;
    kvs_session_event ev;
    memset(&sc, 0, sizeof sc);
    stream_config(&sc.stream);
    sc.stream_name = "cam";
    sc.producer_start_epoch_ms = 1700000000000ULL;
    video_track(&track, avcc, avcc_len);
    OK(kvs_session_new(&sc, &track, 1, 0, &s));
    uint64_t deadline;
    EXPECT(kvs_session_next_timeout_ms(s, &deadline), KVS_RESULT_WOULD_BLOCK);

    kvs_frame f;
    memset(&f, 0, sizeof f);
    f.track = 1;
    f.data = payload;
    f.len = payload_len;
    uint64_t id = 99;
    uint64_t now = 0, conn = 0;
    int connects = 0, acks = 0, closed = 0, end_body = 0;
    size_t sent = 0;
    uint8_t chunk[50]; /* small on purpose: chunks are handed out in pieces */
    kvs_reader *r = NULL;
    OK(kvs_reader_new(&r));
    int frames_in_body = 0;

    for (int i = 0; i < 10; i++) {
        f.flags = (i % 5 == 0) ? KVS_FRAME_FLAG_KEYFRAME : 0;
        f.timestamp_ns = 1700000000000000000LL + (int64_t)i * 40000000LL;
        OK(kvs_session_push_frame(s, now, &f, &id));
        CHECK(id == (uint64_t)i);
        for (;;) {
            int progressed = 0;
            while (kvs_session_poll_event(s, &ev) == KVS_RESULT_OK) {
                if (ev.kind == KVS_SESSION_EVENT_KIND_CONNECT) {
                    kvs_request *q = NULL;
                    connects++;
                    conn = ev.connection;
                    OK(kvs_session_connect_request(s, conn, "http://127.0.0.1:4567", &q));
                    kvs_request_free(q);
                    OK(kvs_session_handle_connected(s, now, conn, 200));
                }
            }
            size_t n = 0;
            uint64_t c = 0;
            while (kvs_session_poll_transmit(s, chunk, sizeof chunk, &c, &n) == KVS_RESULT_OK) {
                CHECK(c == conn && n > 0 && n <= sizeof chunk);
                sent += n;
                OK(kvs_reader_push(r, chunk, n));
                progressed = 1;
            }
            if (!progressed) break;
        }
        now += 40;
    }
    kvs_reader_event rev;
    while (kvs_reader_poll(r, &rev) == KVS_RESULT_OK) {
        if (rev.kind == KVS_READER_EVENT_KIND_FRAME) {
            CHECK(rev.len == payload_len && memcmp(rev.data, payload, payload_len) == 0);
            frames_in_body++;
        }
    }
    CHECK(connects == 1);
    CHECK(sent > 10 * payload_len);
    CHECK(frames_in_body == 10);
    CHECK(kvs_session_buffered_bytes(s) > 0);
    OK(kvs_session_next_timeout_ms(s, &deadline));

    /* ACK both fragments (timecodes are ms: the cluster timecodes). */
    OK(kvs_session_finish(s, now));
    char acks_text[1024];
    snprintf(acks_text, sizeof acks_text,
             "{\"EventType\":\"BUFFERING\",\"FragmentTimecode\":1700000000000,\"FragmentNumber\":\"1\"}\n"
             "{\"EventType\":\"PERSISTED\",\"FragmentTimecode\":1700000000000,\"FragmentNumber\":\"1\"}\n"
             "{\"EventType\":\"BUFFERING\",\"FragmentTimecode\":1700000000200,\"FragmentNumber\":\"2\"}\n"
             "{\"EventType\":\"PERSISTED\",\"FragmentTimecode\":1700000000200,\"FragmentNumber\":\"2\"}\n");
    for (int round = 0; round < 4 && !closed; round++) {
        if (round == 1) OK(kvs_session_handle_ack_bytes(s, now, conn, (const uint8_t *)acks_text, strlen(acks_text)));
        for (;;) {
            int progressed = 0;
            while (kvs_session_poll_event(s, &ev) == KVS_RESULT_OK) {
                if (ev.kind == KVS_SESSION_EVENT_KIND_ACK) {
                    acks++;
                    CHECK(ev.fragment_number[0] == '1' || ev.fragment_number[0] == '2');
                    CHECK(ev.frames == 5);
                }
                if (ev.kind == KVS_SESSION_EVENT_KIND_END_BODY) end_body++;
                if (ev.kind == KVS_SESSION_EVENT_KIND_CLOSED) closed = 1;
            }
            size_t n = 0;
            uint64_t c = 0;
            while (kvs_session_poll_transmit(s, chunk, sizeof chunk, &c, &n) == KVS_RESULT_OK) progressed = 1;
            if (!progressed) break;
        }
    }
    CHECK(acks == 4);
    CHECK(end_body == 1);
    CHECK(closed == 1);
    CHECK(kvs_session_is_closed(s));
    CHECK(kvs_session_buffered_bytes(s) == 0);
    EXPECT(kvs_session_push_frame(s, now, &f, &id), KVS_RESULT_CLOSED);
    kvs_reader_free(r);
    kvs_session_free(s);
}

int main(void) {
    uint8_t avcc[256], frame[256];
    size_t avcc_len = 0, frame_len = 0;
    OK(kvs_set_log_callback(on_log, &log_calls));
    test_results();
    test_media(avcc, &avcc_len, frame, &frame_len);
    test_writer_reader(avcc, avcc_len, frame, frame_len);
    test_ack_parser();
    test_requests();
    test_session(avcc, avcc_len, frame, frame_len);
    OK(kvs_set_log_callback(on_log, &log_calls));
    test_null_and_bad_parameters(avcc, avcc_len);
    CHECK(log_calls > 10);
    if (failures) {
        fprintf(stderr, "api_test: %d of %d checks failed\n", failures, checks);
        return 1;
    }
    printf("api_test: %d checks passed\n", checks);
    return 0;
}
