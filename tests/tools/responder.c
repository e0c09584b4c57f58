/* responder.c - a minimal loopback TikTok for `make bench`: answers the
 * four requests a direct post makes (creator_info, video init, the chunk
 * PUTs, status fetch) with fixed, well-formed answers (the shapes of the
 * spec, docs/tiktok-api.md §2), and discards every body through a 1 MiB
 * buffer. It checks nothing and keeps no state, so what a benchmark measures
 * is the client, not the server (the faithful, strict fake is tests/fake/).
 *
 * A chunk PUT is answered 206 with the bytes received so far, or 201 when its
 * Content-Range reaches the total (a PUT without one: 201). Any other request
 * gets TikTok's error envelope with 404. A thread per connection, keep-alive.
 * Prints its port on stdout, then serves until killed; each chunk PUT prints
 * a line on stderr, "PUT FIRST LAST TOTAL T_HEAD T_END": its byte range and
 * the monotonic seconds at which its head had arrived and its body ended;
 * each init "INIT T" (or "429 T" when refused).
 *
 * The one rule it keeps: TikTok's 6 video inits per minute per token (§0.4),
 * answered 429 rate_limit_exceeded past it, so a run at scale shows whether
 * the client held every token to its budget.
 *   responder [INITS_PER_MINUTE]    (default 6; 0: no limit) */
#include <arpa/inet.h>
#include <netinet/in.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#define BUF (1 << 20)

static int port;
static atomic_ulong published;
static int per_minute = 6;

/* each token's last per_minute inits, in a table of tokens (open addressing) */
#define TOKENS         (1 << 17)
#define MAX_PER_MINUTE 16
struct token {
    char bearer[80];
    double at[MAX_PER_MINUTE];
    int next;
};
static struct token *tokens;
static pthread_mutex_t tokens_lock = PTHREAD_MUTEX_INITIALIZER;

/* true when this init is within the token's budget (and counts it) */
static bool init_allowed(const char *bearer, size_t n, double t)
{
    if (per_minute == 0)
        return true;
    if (n >= sizeof tokens->bearer)
        n = sizeof tokens->bearer - 1;
    unsigned h = 2166136261u;
    for (size_t i = 0; i < n; i++)
        h = (h ^ (unsigned char)bearer[i]) * 16777619u;
    bool ok = true;
    pthread_mutex_lock(&tokens_lock);
    struct token *k = NULL;
    for (unsigned i = 0; i < TOKENS; i++) {
        k = &tokens[(h + i) % TOKENS];
        if (!k->bearer[0] || (strncmp(k->bearer, bearer, n) == 0 && k->bearer[n] == '\0'))
            break;
    }
    if (!k->bearer[0]) {
        memcpy(k->bearer, bearer, n);
        for (int i = 0; i < per_minute; i++)
            k->at[i] = -1e9;
    }
    if (t - k->at[k->next] < 60) { /* the oldest of the last per_minute is within a minute */
        ok = false;
    } else {
        k->at[k->next] = t;
        k->next = (k->next + 1) % per_minute;
    }
    pthread_mutex_unlock(&tokens_lock);
    return ok;
}

static const char ok_error[] = "\"error\":{\"code\":\"ok\",\"message\":\"\",\"log_id\":\"bench\"}";

static double now(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return ts.tv_sec + ts.tv_nsec / 1e9;
}

static const char *header(const char *head, const char *end, const char *name)
{
    size_t n = strlen(name);
    for (const char *p = head; p < end; p++)
        if ((p == head || p[-1] == '\n') && strncasecmp(p, name, n) == 0 && p[n] == ':')
            return p + n + 1;
    return NULL;
}

/* the answer to one request, into out; its status and body */
static int answer(const char *method, const char *path, const char *head, const char *end,
                  char *out, size_t n)
{
    if (strcmp(method, "PUT") == 0) {
        const char *r = header(head, end, "Content-Range");
        unsigned long long first, last, total;
        if (!r || sscanf(r, " bytes %llu-%llu/%llu", &first, &last, &total) != 3 ||
            last + 1 >= total) {
            snprintf(out, n, "201 Created\r\n");
            return 0;
        }
        snprintf(out, n, "206 Partial Content\r\nContent-Range: bytes 0-%llu/%llu\r\n", last,
                 total);
        return 0;
    }
    char body[512];
    int code = 200;
    const char *auth = header(head, end, "Authorization");
    const char *bearer = "";
    size_t bearer_n = 0;
    if (auth) {
        while (*auth == ' ')
            auth++;
        if (strncasecmp(auth, "Bearer ", 7) == 0)
            bearer = auth + 7;
        bearer_n = strcspn(bearer, "\r\n");
    }
    if (strcmp(path, "/v2/post/publish/creator_info/query/") == 0) {
        snprintf(body, sizeof body,
                 "{\"data\":{\"creator_avatar_url\":\"https://example.invalid/a.jpeg\","
                 "\"creator_username\":\"bench\",\"creator_nickname\":\"Bench\","
                 "\"privacy_level_options\":[\"PUBLIC_TO_EVERYONE\",\"MUTUAL_FOLLOW_FRIENDS\","
                 "\"FOLLOWER_OF_CREATOR\",\"SELF_ONLY\"],\"comment_disabled\":false,"
                 "\"duet_disabled\":false,\"stitch_disabled\":false,"
                 "\"max_video_post_duration_sec\":600},%s}",
                 ok_error);
    } else if (strcmp(path, "/v2/post/publish/video/init/") == 0 &&
               !init_allowed(bearer, bearer_n, now())) {
        fprintf(stderr, "429 %.6f\n", now());
        code = 429;
        snprintf(body, sizeof body,
                 "{\"error\":{\"code\":\"rate_limit_exceeded\",\"message\":\"The API rate "
                 "limit was exceeded.\",\"log_id\":\"bench\"}}");
    } else if (strcmp(path, "/v2/post/publish/video/init/") == 0) {
        fprintf(stderr, "INIT %.6f\n", now());
        unsigned long id = atomic_fetch_add(&published, 1) + 1;
        snprintf(body, sizeof body,
                 "{\"data\":{\"publish_id\":\"v_pub_file~v2.%lu\",\"upload_url\":"
                 "\"http://127.0.0.1:%d/upload/?upload_id=%lu\"},%s}",
                 id, port, id, ok_error);
    } else if (strcmp(path, "/v2/post/publish/status/fetch/") == 0) {
        snprintf(body, sizeof body,
                 "{\"data\":{\"status\":\"PUBLISH_COMPLETE\",\"publicaly_available_post_id\":[]},"
                 "%s}",
                 ok_error);
    } else {
        code = 404;
        snprintf(body, sizeof body,
                 "{\"error\":{\"code\":\"not_found\",\"message\":\"the bench responder answers "
                 "only a direct post\",\"log_id\":\"bench\"}}");
    }
    snprintf(out, n,
             "%d %s\r\nContent-Type: application/json; charset=UTF-8\r\n"
             "Content-Length: %zu\r\n\r\n%s",
             code,
             code == 200   ? "OK"
             : code == 429 ? "Too Many Requests"
                           : "Not Found",
             strlen(body), body);
    return 1;
}

static void *serve(void *arg)
{
    int c = (int)(intptr_t)arg;
    char *buf = malloc(BUF);
    size_t have = 0;
    while (buf) {
        char *end;
        while (!(end = memmem(buf, have, "\r\n\r\n", 4))) {
            if (have >= BUF - 1)
                goto out;
            ssize_t n = recv(c, buf + have, BUF - have - 1, 0);
            if (n <= 0)
                goto out;
            have += (size_t)n;
        }
        double t_head = now();
        buf[have] = '\0';
        char method[16] = "", path[256] = "";
        if (sscanf(buf, "%15s %255s", method, path) != 2)
            goto out;
        char *q = strchr(path, '?');
        if (q && strcmp(method, "PUT") != 0)
            *q = '\0';
        const char *cl = header(buf, end, "Content-Length");
        long long len = cl ? atoll(cl) : 0;
        if (len < 0)
            goto out;
        char reply[1024];
        int full = answer(method, path, buf, end, reply, sizeof reply);
        unsigned long long first, last, total;
        const char *range = strcmp(method, "PUT") == 0 ? header(buf, end, "Content-Range") : NULL;
        bool ranged = range && sscanf(range, " bytes %llu-%llu/%llu", &first, &last, &total) == 3;
        size_t hdr = (size_t)(end + 4 - buf);
        long long body = (long long)(have - hdr);
        if (body > len)
            body = len;
        size_t rest = have - hdr - (size_t)body;
        memmove(buf, buf + hdr + body, rest);
        have = rest;
        while (body < len) { /* the rest of the body, read and dropped */
            size_t want = (size_t)(len - body) < BUF ? (size_t)(len - body) : BUF;
            ssize_t n = recv(c, buf + have, want, 0);
            if (n <= 0)
                goto out;
            body += n;
        }
        if (ranged)
            fprintf(stderr, "PUT %llu %llu %llu %.6f %.6f\n", first, last, total, t_head, now());
        char msg[1280];
        int m = snprintf(msg, sizeof msg, "HTTP/1.1 %s%s", reply,
                         full ? "" : "Content-Length: 0\r\n\r\n");
        if (send(c, msg, (size_t)m, MSG_NOSIGNAL) != m)
            goto out;
    }
out:
    free(buf);
    close(c);
    return NULL;
}

int main(int argc, char **argv)
{
    if (argc > 1)
        per_minute = atoi(argv[1]);
    if (per_minute < 0 || per_minute > MAX_PER_MINUTE || !(tokens = calloc(TOKENS, sizeof *tokens)))
        return 2;
    int s = socket(AF_INET, SOCK_STREAM, 0), one = 1;
    setsockopt(s, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
    struct sockaddr_in a = {.sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
    socklen_t al = sizeof a;
    if (bind(s, (struct sockaddr *)&a, sizeof a) || listen(s, 128) ||
        getsockname(s, (struct sockaddr *)&a, &al))
        return 1;
    port = ntohs(a.sin_port);
    printf("%d\n", port);
    fflush(stdout);
    for (;;) {
        int c = accept(s, NULL, NULL);
        if (c < 0)
            continue;
        pthread_t t;
        if (pthread_create(&t, NULL, serve, (void *)(intptr_t)c) != 0) {
            close(c);
            continue;
        }
        pthread_detach(t);
    }
}
