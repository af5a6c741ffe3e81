/*
 * mkv_parse: prints the tracks and fragments of an MKV stream (a KVS producer stream or a
 * GetMedia response body) with libkvs's streaming reader.
 *
 *   cc -std=c11 -Iinclude examples/c/mkv_parse.c target/release/libkvs.a \
 *      -lgcc_s -lutil -lrt -lpthread -lm -ldl -lc -o mkv_parse
 *   ./mkv_parse examples/media/sample.mkv      (or - for standard input)
 *
 * The last line is a summary: fragments, frames, key frames, tracks and decode errors.
 */
#include <stdio.h>
#include <string.h>

#include "kvs.h"

int main(int argc, char **argv) {
    if (argc != 2) {
        fprintf(stderr, "usage: %s FILE|-\n", argv[0]);
        return 2;
    }
    FILE *in = strcmp(argv[1], "-") == 0 ? stdin : fopen(argv[1], "rb");
    if (!in) {
        perror(argv[1]);
        return 1;
    }
    kvs_reader *reader = NULL;
    if (kvs_reader_new(&reader) != KVS_RESULT_OK) return 1;

    unsigned long long fragments = 0, frames = 0, keyframes = 0, tracks = 0, errors = 0;
    unsigned char buf[4093]; /* an odd size: elements straddle reads */
    int done = 0;
    while (!done) {
        size_t n = fread(buf, 1, sizeof buf, in);
        kvs_result r = n > 0 ? kvs_reader_push(reader, buf, n) : kvs_reader_finish(reader);
        if (r != KVS_RESULT_OK) {
            char msg[256];
            kvs_last_error_message(msg, sizeof msg, NULL);
            fprintf(stderr, "push failed: %s\n", msg);
            kvs_reader_free(reader);
            return 1;
        }
        done = n == 0;
        kvs_reader_event ev;
        while (kvs_reader_poll(reader, &ev) == KVS_RESULT_OK) {
            switch (ev.kind) {
            case KVS_READER_EVENT_KIND_TRACK:
                tracks++;
                printf("track %llu: %s", (unsigned long long)ev.track, ev.codec_id);
                if (ev.width) printf(" %ux%u", ev.width, ev.height);
                if (ev.sampling_frequency > 0) printf(" %.0f Hz x%u", ev.sampling_frequency, ev.channels);
                printf(" (codec private %zu bytes)\n", ev.len);
                break;
            case KVS_READER_EVENT_KIND_FRAME:
                frames++;
                if (ev.flags & KVS_FRAME_FLAG_KEYFRAME) keyframes++;
                break;
            case KVS_READER_EVENT_KIND_FRAGMENT_END:
                fragments++;
                printf("fragment %llu: timecode=%llu frames=%llu keyframes=%llu bytes=%llu",
                       (unsigned long long)ev.fragment_index, (unsigned long long)ev.timecode,
                       (unsigned long long)ev.frames, (unsigned long long)ev.keyframes,
                       (unsigned long long)ev.bytes);
                if (ev.fragment_number) printf(" fragment_number=%s", ev.fragment_number);
                if (ev.producer_timestamp_ms) printf(" producer_ms=%llu", (unsigned long long)ev.producer_timestamp_ms);
                if (ev.server_timestamp_ms) printf(" server_ms=%llu", (unsigned long long)ev.server_timestamp_ms);
                if (ev.error_code) printf(" error=%s", ev.error_code);
                if (ev.truncated) printf(" truncated");
                printf("\n");
                break;
            case KVS_READER_EVENT_KIND_ERROR: {
                char msg[256];
                kvs_last_error_message(msg, sizeof msg, NULL);
                fprintf(stderr, "decode error: %s\n", msg);
                errors++;
                break;
            }
            default:
                break;
            }
        }
    }
    if (in != stdin) fclose(in);
    kvs_reader_free(reader);
    printf("summary fragments=%llu frames=%llu keyframes=%llu tracks=%llu errors=%llu\n", fragments,
           frames, keyframes, tracks, errors);
    return 0;
}
