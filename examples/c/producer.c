/*
 * producer: streams the frames of an MKV file to Kinesis Video Streams (or `kvs serve`) with the
 * sans-IO PutMedia session of libkvs over plain POSIX sockets (HTTP without TLS, as `kvs serve`
 * speaks on loopback; a camera would put its TLS library where send_all/recv are called).
 *
 *   kvs serve &                                   # prints AWS_ACCESS_KEY_ID=... AWS_SECRET_...
 *   cc -std=c11 -Iinclude examples/c/producer.c target/release/libkvs.a \
 *      -lgcc_s -lutil -lrt -lpthread -lm -ldl -lc -o producer
 *   AWS_ACCESS_KEY_ID=... AWS_SECRET_ACCESS_KEY=... ./producer 127.0.0.1 4567 my-camera \
 *      examples/media/sample.mkv
 *
 * It creates the stream (24 h retention) if needed, waits for ACTIVE, asks GetDataEndpoint for
 * the PutMedia endpoint, then pushes every frame of the file (timestamps moved to "now") into a
 * kvs_session and runs the session's drain loop until every fragment is PERSISTED. Last line:
 * "done frames=N persisted=N errors=N".
 */
#define _POSIX_C_SOURCE 200809L
#include <arpa/inet.h>
#include <errno.h>
#include <netdb.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include "kvs.h"

static uint64_t clock_ms(clockid_t id) {
    struct timespec ts;
    clock_gettime(id, &ts);
    return (uint64_t)ts.tv_sec * 1000u + (uint64_t)ts.tv_nsec / 1000000u;
}
static uint64_t now_ms(void) { return clock_ms(CLOCK_MONOTONIC); }
static uint64_t epoch_ms(void) { return clock_ms(CLOCK_REALTIME); }

static void die(const char *what, kvs_result r) {
    char msg[512];
    kvs_last_error_message(msg, sizeof msg, NULL);
    fprintf(stderr, "%s: %s (%s)\n", what, kvs_result_name(r), msg);
    exit(1);
}
#define TRY(call) do { kvs_result r_ = (call); if (r_ != KVS_RESULT_OK) die(#call, r_); } while (0)

static const char *host, *port, *region;
static kvs_credentials creds;

static int connect_to(const char *h, const char *p) {
    struct addrinfo hints, *res = NULL;
    memset(&hints, 0, sizeof hints);
    hints.ai_socktype = SOCK_STREAM;
    if (getaddrinfo(h, p, &hints, &res) != 0) return -1;
    int fd = socket(res->ai_family, res->ai_socktype, res->ai_protocol);
    if (fd >= 0 && connect(fd, res->ai_addr, res->ai_addrlen) != 0) {
        close(fd);
        fd = -1;
    }
    freeaddrinfo(res);
    return fd;
}

static int send_all(int fd, const void *data, size_t len) {
    const char *p = data;
    while (len > 0) {
        ssize_t n = send(fd, p, len, MSG_NOSIGNAL);
        if (n < 0 && errno == EINTR) continue;
        if (n <= 0) return -1;
        p += n;
        len -= (size_t)n;
    }
    return 0;
}

/* ---- HTTP/1.1 chunked decoding of a response body ---- */
typedef struct {
    int state; /* 0: size line, 1: data, 2: CRLF after data, 3: done */
    size_t remaining;
    char line[32];
    size_t line_len;
} dechunker;

/* Decodes `len` bytes in place, returns the number of body bytes now at the start of `buf`. */
static size_t dechunk(dechunker *d, uint8_t *buf, size_t len) {
    size_t out = 0;
    for (size_t i = 0; i < len;) {
        if (d->state == 0) {
            char c = (char)buf[i++];
            if (c == '\n') {
                d->line[d->line_len] = 0;
                d->remaining = strtoul(d->line, NULL, 16);
                d->line_len = 0;
                d->state = d->remaining ? 1 : 3;
            } else if (c != '\r' && d->line_len + 1 < sizeof d->line) {
                d->line[d->line_len++] = c;
            }
        } else if (d->state == 1) {
            size_t n = len - i < d->remaining ? len - i : d->remaining;
            memmove(buf + out, buf + i, n);
            out += n;
            i += n;
            d->remaining -= n;
            if (d->remaining == 0) { d->state = 2; d->remaining = 2; }
        } else if (d->state == 2) {
            i++;
            if (--d->remaining == 0) d->state = 0;
        } else {
            i = len;
        }
    }
    return out;
}

/* Reads a response head from fd; leftover body bytes go to extra. Returns the status or -1. */
static int read_head(int fd, char *head, size_t cap, uint8_t *extra, size_t *extra_len, int *chunked) {
    size_t used = 0;
    *extra_len = 0;
    while (used + 1 < cap) {
        struct pollfd pfd = {fd, POLLIN, 0};
        if (poll(&pfd, 1, 10000) <= 0) return -1;
        ssize_t n = recv(fd, head + used, cap - 1 - used, 0);
        if (n <= 0) return -1;
        used += (size_t)n;
        head[used] = 0;
        char *end = strstr(head, "\r\n\r\n");
        if (end) {
            size_t head_len = (size_t)(end - head) + 4;
            *extra_len = used - head_len;
            memcpy(extra, head + head_len, *extra_len);
            head[head_len] = 0;
            for (char *c = head; *c; c++) if (*c >= 'A' && *c <= 'Z') *c = (char)(*c - 'A' + 'a');
            *chunked = strstr(head, "transfer-encoding: chunked") != NULL;
            return atoi(head + 9);
        }
    }
    return -1;
}

/* One signed control-plane call with `connection: close`; the body goes into body/body_len. */
static int call(kvs_request *q, char *body, size_t cap, size_t *body_len) {
    char head[4096];
    uint8_t extra[8192];
    size_t n = 0, extra_len = 0;
    int chunked = 0;
    TRY(kvs_request_set_header(q, "connection", "close"));
    TRY(kvs_request_sign(q, &creds, region, epoch_ms(), KVS_SIGN_MODE_BODY));
    TRY(kvs_request_write_head(q, (uint8_t *)head, sizeof head, &n));
    const uint8_t *req_body = NULL;
    size_t req_len = 0;
    TRY(kvs_request_body(q, &req_body, &req_len));
    int fd = connect_to(host, port);
    if (fd < 0 || send_all(fd, head, n) || send_all(fd, req_body, req_len)) return -1;
    int status = read_head(fd, head, sizeof head, extra, &extra_len, &chunked);
    size_t used = extra_len < cap - 1 ? extra_len : cap - 1;
    memcpy(body, extra, used);
    for (;;) {
        ssize_t r = recv(fd, body + used, cap - 1 - used, 0);
        if (r <= 0) break;
        used += (size_t)r;
    }
    close(fd);
    if (chunked) {
        dechunker d = {0, 0, {0}, 0};
        used = dechunk(&d, (uint8_t *)body, used);
    }
    body[used] = 0;
    *body_len = used;
    return status;
}

/* ---- the MKV file, read with kvs_reader ---- */
typedef struct { kvs_frame frame; uint8_t *copy; } stored_frame;

static kvs_track_config tracks[3];
static uint8_t *track_cpd[3];
static char *track_codec[3], *track_name[3];
static size_t n_tracks = 0;
static stored_frame *frames = NULL;
static size_t n_frames = 0;

static void load(const char *path) {
    FILE *in = fopen(path, "rb");
    if (!in) { perror(path); exit(1); }
    kvs_reader *r = NULL;
    TRY(kvs_reader_new(&r));
    uint8_t buf[8192];
    size_t cap = 0;
    for (int done = 0; !done;) {
        size_t n = fread(buf, 1, sizeof buf, in);
        if (n) TRY(kvs_reader_push(r, buf, n)); else TRY(kvs_reader_finish(r));
        done = n == 0;
        kvs_reader_event ev;
        while (kvs_reader_poll(r, &ev) == KVS_RESULT_OK) {
            if (ev.kind == KVS_READER_EVENT_KIND_TRACK && n_tracks < 3) {
                kvs_track_config *t = &tracks[n_tracks];
                memset(t, 0, sizeof *t);
                t->number = ev.track;
                t->track_type = (uint32_t)ev.track_type;
                track_codec[n_tracks] = strdup(ev.codec_id);
                t->codec_id = track_codec[n_tracks];
                track_name[n_tracks] = strdup(ev.track_type == 1 ? "kvs_video_track" : "kvs_audio_track");
                t->name = track_name[n_tracks];
                track_cpd[n_tracks] = malloc(ev.len ? ev.len : 1);
                memcpy(track_cpd[n_tracks], ev.data, ev.len);
                t->codec_private = track_cpd[n_tracks];
                t->codec_private_len = ev.len;
                t->width = ev.width;
                t->height = ev.height;
                t->sampling_frequency = ev.sampling_frequency;
                t->channels = ev.channels;
                n_tracks++;
            } else if (ev.kind == KVS_READER_EVENT_KIND_FRAME) {
                if (n_frames == cap) {
                    cap = cap ? cap * 2 : 256;
                    frames = realloc(frames, cap * sizeof *frames);
                }
                stored_frame *f = &frames[n_frames++];
                f->copy = malloc(ev.len);
                memcpy(f->copy, ev.data, ev.len);
                memset(&f->frame, 0, sizeof f->frame);
                f->frame.track = ev.track;
                f->frame.timestamp_ns = ev.timestamp_ns;
                f->frame.duration_ns = ev.duration_ns;
                f->frame.flags = ev.flags;
                f->frame.data = f->copy;
                f->frame.len = ev.len;
            }
        }
    }
    kvs_reader_free(r);
    fclose(in);
}

/* ---- PutMedia connections ---- */
typedef struct { uint64_t id; int fd; dechunker d; int body_ended; } conn;
static conn conns[4];

static conn *find(uint64_t id) {
    for (int i = 0; i < 4; i++) if (conns[i].fd >= 0 && conns[i].id == id) return &conns[i];
    return NULL;
}

int main(int argc, char **argv) {
    if (argc != 5) {
        fprintf(stderr, "usage: %s HOST PORT STREAM FILE.mkv\n", argv[0]);
        return 2;
    }
    host = argv[1];
    port = argv[2];
    const char *stream = argv[3];
    region = getenv("AWS_REGION") ? getenv("AWS_REGION") : "us-east-1";
    creds.access_key_id = getenv("AWS_ACCESS_KEY_ID");
    creds.secret_access_key = getenv("AWS_SECRET_ACCESS_KEY");
    creds.session_token = getenv("AWS_SESSION_TOKEN");
    if (!creds.access_key_id || !creds.secret_access_key) {
        fprintf(stderr, "set AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY\n");
        return 2;
    }
    for (int i = 0; i < 4; i++) conns[i].fd = -1;
    char endpoint[256], body[16384];
    size_t body_len = 0;
    snprintf(endpoint, sizeof endpoint, "http://%s:%s", host, port);

    /* Control plane: CreateStream (an existing stream is fine), DescribeStream until ACTIVE,
     * GetDataEndpoint. */
    kvs_request *q = NULL;
    TRY(kvs_request_create_stream(endpoint, stream, "libkvs-example", "video/h264", 24, &q));
    int status = call(q, body, sizeof body, &body_len);
    kvs_request_free(q);
    if (status != 200 && !strstr(body, "ResourceInUseException")) {
        fprintf(stderr, "CreateStream: HTTP %d %s\n", status, body);
        return 1;
    }
    for (int tries = 0;; tries++) {
        TRY(kvs_request_describe_stream(endpoint, stream, NULL, &q));
        status = call(q, body, sizeof body, &body_len);
        kvs_request_free(q);
        if (status == 200 && strstr(body, "\"ACTIVE\"")) break;
        if (tries > 50) { fprintf(stderr, "stream not ACTIVE: %s\n", body); return 1; }
        nanosleep(&(struct timespec){0, 100000000}, NULL);
    }
    TRY(kvs_request_get_data_endpoint(endpoint, stream, NULL, "PUT_MEDIA", &q));
    status = call(q, body, sizeof body, &body_len);
    kvs_request_free(q);
    char data_endpoint[256];
    size_t n = 0;
    TRY(kvs_parse_get_data_endpoint((uint16_t)status, (const uint8_t *)body, body_len,
                                    (uint8_t *)data_endpoint, sizeof data_endpoint - 1, &n));
    data_endpoint[n] = 0;
    printf("data endpoint %s\n", data_endpoint);

    /* The media. Timestamps move so that the stream ends about now. */
    load(argv[4]);
    if (n_frames == 0 || n_tracks == 0) { fprintf(stderr, "no frames\n"); return 1; }
    int64_t first = frames[0].frame.timestamp_ns, last = frames[n_frames - 1].frame.timestamp_ns;
    uint64_t start_epoch = epoch_ms() - (uint64_t)((last - first) / 1000000) - 1000;
    for (size_t i = 0; i < n_frames; i++)
        frames[i].frame.timestamp_ns = frames[i].frame.timestamp_ns - first + (int64_t)start_epoch * 1000000;

    kvs_session_config sc;
    memset(&sc, 0, sizeof sc);
    sc.stream_name = stream;
    for (int i = 0; i < 16; i++) sc.stream.segment_uid[i] = (uint8_t)(start_epoch >> (i % 8));
    sc.stream.timecode_mode = KVS_TIMECODE_MODE_ABSOLUTE;
    sc.producer_start_epoch_ms = start_epoch;
    sc.max_buffer_bytes = 4u << 20;
    sc.jitter_seed = start_epoch;
    kvs_session *s = NULL;
    TRY(kvs_session_new(&sc, tracks, n_tracks, now_ms(), &s));

    size_t next = 0, pushed = 0;
    unsigned persisted = 0, errors = 0;
    int closed = 0, finished = 0;
    uint8_t chunk[16384];
    uint64_t deadline_total = now_ms() + 60000;
    while (!closed && now_ms() < deadline_total) {
        uint64_t t = now_ms();
        /* Input: frames (as fast as the buffer takes them), then the end of the stream. */
        while (next < n_frames) {
            kvs_result r = kvs_session_push_frame(s, t, &frames[next].frame, NULL);
            if (r == KVS_RESULT_FULL) break;
            if (r != KVS_RESULT_OK) die("push_frame", r);
            next++;
            pushed++;
        }
        if (next == n_frames && !finished) {
            TRY(kvs_session_finish(s, t));
            finished = 1;
        }
        /* The drain loop: events, then bytes, until both are empty. */
        for (;;) {
            kvs_session_event ev;
            while (kvs_session_poll_event(s, &ev) == KVS_RESULT_OK) {
                conn *c = find(ev.connection);
                switch (ev.kind) {
                case KVS_SESSION_EVENT_KIND_CONNECT: {
                    kvs_request *pm = NULL;
                    char head[4096];
                    uint8_t extra[4096];
                    size_t head_len = 0, extra_len = 0;
                    int chunked = 0;
                    TRY(kvs_session_connect_request(s, ev.connection, data_endpoint, &pm));
                    TRY(kvs_request_sign(pm, &creds, region, epoch_ms(), KVS_SIGN_MODE_STREAMING));
                    TRY(kvs_request_write_head(pm, (uint8_t *)head, sizeof head, &head_len));
                    kvs_request_free(pm);
                    int fd = connect_to(host, port);
                    if (fd < 0 || send_all(fd, head, head_len)) {
                        if (fd >= 0) close(fd);
                        TRY(kvs_session_handle_disconnected(s, now_ms(), ev.connection, KVS_DISCONNECT_CONNECT_FAILED));
                        break;
                    }
                    int st = read_head(fd, head, sizeof head, extra, &extra_len, &chunked);
                    for (int i = 0; i < 4; i++) {
                        if (conns[i].fd < 0) {
                            conns[i] = (conn){ev.connection, fd, {0, 0, {0}, 0}, 0};
                            c = &conns[i];
                            break;
                        }
                    }
                    TRY(kvs_session_handle_connected(s, now_ms(), ev.connection, st < 0 ? 0 : (uint16_t)st));
                    if (c && extra_len) {
                        size_t m = chunked ? dechunk(&c->d, extra, extra_len) : extra_len;
                        TRY(kvs_session_handle_ack_bytes(s, now_ms(), c->id, extra, m));
                    }
                    break;
                }
                case KVS_SESSION_EVENT_KIND_END_BODY:
                    if (c && !c->body_ended) { send_all(c->fd, "0\r\n\r\n", 5); c->body_ended = 1; }
                    break;
                case KVS_SESSION_EVENT_KIND_CLOSE_CONNECTION:
                    if (c) { close(c->fd); c->fd = -1; }
                    break;
                case KVS_SESSION_EVENT_KIND_ACK:
                    if (ev.ack_type == KVS_ACK_TYPE_PERSISTED) {
                        persisted++;
                        printf("persisted fragment %s (timecode %llu, %llu frames)\n", ev.fragment_number,
                               (unsigned long long)ev.fragment_timecode, (unsigned long long)ev.frames);
                    }
                    break;
                case KVS_SESSION_EVENT_KIND_ERROR:
                    errors++;
                    fprintf(stderr, "session error kind %u status %u error_id %u\n", ev.error_kind,
                            ev.http_status, ev.error_id);
                    break;
                case KVS_SESSION_EVENT_KIND_CLOSED:
                    closed = 1;
                    break;
                default:
                    break;
                }
            }
            int sent_any = 0;
            uint64_t cid = 0;
            while (kvs_session_poll_transmit(s, chunk, sizeof chunk, &cid, &n) == KVS_RESULT_OK) {
                conn *c = find(cid);
                char size_line[32];
                int k = snprintf(size_line, sizeof size_line, "%zx\r\n", n);
                if (!c || send_all(c->fd, size_line, (size_t)k) || send_all(c->fd, chunk, n) ||
                    send_all(c->fd, "\r\n", 2)) {
                    if (c) { close(c->fd); c->fd = -1; }
                    TRY(kvs_session_handle_disconnected(s, now_ms(), cid, KVS_DISCONNECT_ERROR));
                }
                sent_any = 1;
            }
            if (!sent_any) break;
        }
        if (closed) break;
        /* Wait for ACK bytes or the next deadline (at most 50 ms, to push more frames). */
        uint64_t deadline = 0;
        int wait = 50;
        if (kvs_session_next_timeout_ms(s, &deadline) == KVS_RESULT_OK) {
            uint64_t t2 = now_ms();
            int until = deadline > t2 ? (int)(deadline - t2) : 0;
            if (until < wait) wait = until;
        }
        struct pollfd pfds[4];
        int idx[4], np = 0;
        for (int i = 0; i < 4; i++)
            if (conns[i].fd >= 0) { pfds[np] = (struct pollfd){conns[i].fd, POLLIN, 0}; idx[np++] = i; }
        int ready = poll(pfds, (nfds_t)np, wait);
        for (int k = 0; ready > 0 && k < np; k++) {
            if (!(pfds[k].revents & (POLLIN | POLLHUP | POLLERR))) continue;
            conn *c = &conns[idx[k]];
            ssize_t got = recv(c->fd, chunk, sizeof chunk, 0);
            if (got <= 0) {
                close(c->fd);
                c->fd = -1;
                TRY(kvs_session_handle_disconnected(s, now_ms(), c->id, got == 0 ? KVS_DISCONNECT_CLOSED : KVS_DISCONNECT_ERROR));
            } else {
                size_t m = dechunk(&c->d, chunk, (size_t)got);
                TRY(kvs_session_handle_ack_bytes(s, now_ms(), c->id, chunk, m));
            }
        }
        TRY(kvs_session_handle_timeout(s, now_ms()));
    }
    for (int i = 0; i < 4; i++) if (conns[i].fd >= 0) close(conns[i].fd);
    kvs_session_free(s);
    for (size_t i = 0; i < n_frames; i++) free(frames[i].copy);
    free(frames);
    for (size_t i = 0; i < n_tracks; i++) { free(track_cpd[i]); free(track_codec[i]); free(track_name[i]); }
    printf("done frames=%zu persisted=%u errors=%u\n", pushed, persisted, errors);
    return closed ? 0 : 1;
}
