/* httpdrive.c - drives core/http from the command line so the integration
 * tests can exercise the real client against tests/fake: N requests at once
 * (or one after another), bodies from memory or streamed from a file range,
 * every client option settable. Prints one JSON line per finished request and
 * a last line with the process's peak RSS.
 *
 *   httpdrive [options] URL
 *     --method M  --header 'K: V'  --body STR  --body-file F --range OFF:LEN
 *     --bearer TOKEN  --count N  --sequential  --ca FILE  --timeout S
 *     --connect-timeout S  --low-speed BYTES:SECS  --attempts N  --backoff BASE:CAP
 *     --max-defer S  --breaker FAILS:SECS  --max-response BYTES  --not-sent-only
 *     --tiktok (classify TikTok JSON bodies)  --debug
 *     --chunked: PUT the whole --body-file in TikTok's chunk plan (core/upload),
 *       one chunk after another with its Content-Range, as `tikd run` uploads
 *     --plan: print that plan (one "first length" line per chunk) and exit */
#include <ev.h>
#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "../../core/http.h"
#include "../../core/log.h"
#include "../../core/upload.h"

#include <sys/stat.h>

static struct http *h;
static struct http_req req;
static int count = 1, started, finished;
static int sequential;
static int chunked;
static struct chunk_plan plan;
static struct http_header *chunk_hdr; /* the Content-Range slot of the headers */
static char crange[96];

static void json_str(const char *s, size_t n)
{
    putchar('"');
    for (size_t i = 0; i < n && i < 300; i++) {
        unsigned char c = (unsigned char)s[i];
        if (c == '"' || c == '\\')
            printf("\\%c", c);
        else if (c < 0x20 || c >= 0x7f)
            printf("\\u%04x", c);
        else
            putchar(c);
    }
    putchar('"');
}

static void start_one(void);

/* VmHWM: the peak RSS of this program image. (getrusage's ru_maxrss would
 * carry over the parent's size across fork and exec.) */
static long peak_rss_kb(void)
{
    FILE *f = fopen("/proc/self/status", "r");
    char line[256];
    long kb = -1;
    while (f && fgets(line, sizeof line, f))
        if (sscanf(line, "VmHWM: %ld kB", &kb) == 1)
            break;
    if (f)
        fclose(f);
    return kb;
}

static void done(void *ud, const struct http_resp *r)
{
    long i = (long)ud;
    printf("{\"i\":%ld,\"status\":%ld,\"action\":\"%s\",\"code\":", i, r->status,
           policy_action_name(r->out.action));
    json_str(r->out.code, strlen(r->out.code));
    printf(",\"attempts\":%d,\"elapsed\":%.4f,\"body_len\":%zu,\"log_id\":", r->attempts,
           r->elapsed, r->body_len);
    json_str(r->out.log_id, strlen(r->out.log_id));
    printf(",\"unknown\":%s,\"message\":", r->out.unknown ? "true" : "false");
    json_str(r->out.message, strlen(r->out.message));
    printf(",\"body\":");
    json_str(r->body, r->body_len);
    printf("}\n");
    fflush(stdout);
    finished++;
    if (sequential && started < count)
        start_one();
}

static void start_one(void)
{
    struct tikd_err e = {0};
    long i = started++;
    if (chunked) {
        uint64_t first, len;
        upload_chunk(&plan, (uint32_t)i, &first, &len);
        snprintf(crange, sizeof crange, "bytes %llu-%llu/%llu", (unsigned long long)first,
                 (unsigned long long)(first + len - 1), (unsigned long long)plan.size);
        chunk_hdr->name = "Content-Range";
        chunk_hdr->value = crange;
        req.body_off = (off_t)first;
        req.body_len = (size_t)len;
    }
    if (http_request(h, &req, done, (void *)i, NULL, &e) != 0) {
        fprintf(stderr, "httpdrive: %s\n", e.msg);
        exit(1);
    }
}

int main(int argc, char **argv)
{
    struct http_opts o;
    http_opts_default(&o);
    o.loop = ev_default_loop(0);
    struct http_header hdrs[32];
    size_t nh = 0;
    req.method = "GET";
    static const struct option longs[] = {{"method", 1, 0, 'm'},
                                          {"header", 1, 0, 'H'},
                                          {"body", 1, 0, 'b'},
                                          {"body-file", 1, 0, 'f'},
                                          {"range", 1, 0, 'r'},
                                          {"bearer", 1, 0, 'B'},
                                          {"count", 1, 0, 'n'},
                                          {"sequential", 0, 0, 's'},
                                          {"ca", 1, 0, 'c'},
                                          {"timeout", 1, 0, 't'},
                                          {"connect-timeout", 1, 0, 'C'},
                                          {"low-speed", 1, 0, 'l'},
                                          {"attempts", 1, 0, 'a'},
                                          {"backoff", 1, 0, 'k'},
                                          {"max-defer", 1, 0, 'd'},
                                          {"breaker", 1, 0, 'x'},
                                          {"max-response", 1, 0, 'R'},
                                          {"not-sent-only", 0, 0, 'N'},
                                          {"debug", 0, 0, 'D'},
                                          {"tiktok", 0, 0, 'T'},
                                          {"chunked", 0, 0, 'K'},
                                          {"plan", 0, 0, 'P'},
                                          {0, 0, 0, 0}};
    int plan_only = 0;
    int ch;
    tlog_setup(TLOG_WARN, TLOG_LOGFMT, 2);
    while ((ch = getopt_long(argc, argv, "", longs, NULL)) != -1) {
        switch (ch) {
        case 'm':
            req.method = optarg;
            break;
        case 'H': {
            char *colon = strchr(optarg, ':');
            if (!colon || nh == 32)
                return 2;
            *colon = '\0';
            hdrs[nh].name = optarg;
            hdrs[nh].value = colon + 1 + (colon[1] == ' ');
            nh++;
            break;
        }
        case 'b':
            req.body = optarg;
            req.body_len = strlen(optarg);
            break;
        case 'f':
            req.body_file = optarg;
            break;
        case 'r': {
            long long off, len;
            if (sscanf(optarg, "%lld:%lld", &off, &len) != 2)
                return 2;
            req.body_off = (off_t)off;
            req.body_len = (size_t)len;
            break;
        }
        case 'B':
            req.bearer = optarg;
            break;
        case 'n':
            count = atoi(optarg);
            break;
        case 's':
            sequential = 1;
            break;
        case 'c':
            o.ca_file = optarg;
            break;
        case 't':
            o.timeout = atof(optarg);
            break;
        case 'C':
            o.connect_timeout = atof(optarg);
            break;
        case 'l':
            sscanf(optarg, "%ld:%ld", &o.low_speed_bytes, &o.low_speed_time);
            break;
        case 'a':
            o.max_attempts = atoi(optarg);
            break;
        case 'k':
            sscanf(optarg, "%lf:%lf", &o.backoff_base, &o.backoff_cap);
            break;
        case 'd':
            o.max_defer = atof(optarg);
            break;
        case 'x':
            sscanf(optarg, "%d:%lf", &o.breaker_failures, &o.breaker_open);
            break;
        case 'R':
            o.max_response = (size_t)atoll(optarg);
            break;
        case 'N':
            req.retry = HTTP_RETRY_NOT_SENT;
            break;
        case 'T':
            req.tiktok = true;
            break;
        case 'D':
            tlog_setup(TLOG_DEBUG, TLOG_LOGFMT, 2);
            break;
        case 'K':
            chunked = 1;
            break;
        case 'P':
            chunked = plan_only = 1;
            break;
        default:
            return 2;
        }
    }
    if (chunked) {
        struct stat st;
        char why[200];
        if (!req.body_file || stat(req.body_file, &st) != 0 ||
            upload_plan((uint64_t)st.st_size, &plan, why, sizeof why) != 0 || nh == 32) {
            fprintf(stderr, "httpdrive: --chunked needs a --body-file TikTok can take\n");
            return 2;
        }
        if (plan_only) {
            for (uint32_t i = 0; i < plan.count; i++) {
                uint64_t first, len;
                upload_chunk(&plan, i, &first, &len);
                printf("%llu %llu\n", (unsigned long long)first, (unsigned long long)len);
            }
            return 0;
        }
        chunk_hdr = &hdrs[nh++];
        count = (int)plan.count;
        sequential = 1;
    }
    if (optind != argc - 1) {
        fprintf(stderr, "usage: httpdrive [options] URL\n");
        return 2;
    }
    req.url = argv[optind];
    req.headers = hdrs;
    req.nheaders = nh;
    struct tikd_err e = {0};
    if (http_new(&h, &o, &e) != 0) {
        fprintf(stderr, "httpdrive: %s\n", e.msg);
        return 1;
    }
    /* the bearer is deliberately not registered as a log secret: the tests
     * prove the client never writes a header or a body to the log at all */
    for (int i = 0; i < (sequential ? 1 : count); i++)
        start_one();
    while (finished < count)
        ev_run(o.loop, EVRUN_ONCE);
    http_free(h);
    printf("{\"peak_rss_kb\":%ld}\n", peak_rss_kb());
    return 0;
}
