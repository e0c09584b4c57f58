/* http.c - libcurl multi on libev, retries, and per-host breakers (see
 * http.h).
 *
 * The glue follows curl's evhiperfifo example: curl tells us which sockets
 * to watch (sock_cb) and when to wake it (timer_cb, one ev_timer); libev
 * calls back and we hand the event to curl_multi_socket_action, then collect
 * finished transfers with curl_multi_info_read. A socket watcher may be freed
 * inside curl_multi_socket_action, so nothing touches it afterwards. Easy
 * handles of finished transfers are reset and kept for the next ones (not
 * those of requests that must not reach the server twice: libcurl keeps
 * resend state in a handle that a reset does not clear); connections are
 * reused through the multi handle's cache. */
#include "http.h"
#include "fileio.h"
#include "clock.h"
#include "log.h"
#include "metrics.h"
#include "alert.h"

#include <curl/curl.h>
#include <errno.h>
#include <ev.h>
#include <fcntl.h>
#include <stdarg.h>
#include <openssl/crypto.h>
#include <openssl/rand.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/stat.h>
#include <unistd.h>

/* bodies larger than UPLOAD_BIG are sent through an UPLOAD_BUFFER-sized buffer */
#define UPLOAD_BIG    (1 << 20)
#define UPLOAD_BUFFER (512L * 1024)
/* a request that must not reach the server twice takes a kept connection
 * only if it was used this recently (seconds; servers close idle ones
 * after tens of seconds, TikTok's and the fake's alike) */
#define NOT_SENT_MAX_IDLE 2L
/* easy handles kept for reuse: an init and cleanup per request cost their
 * allocations (libcurl's buffers) and its TLS session cache */
#define EASY_SPARE 32

/* "X-Tikd-Fence: " and any 64-bit fence, with its NUL */
#define FENCE_LINE 36
/* how soon a request refused for a lease held elsewhere may be asked again
 * (seconds): about one renewal round of the default 15 s lease */
#define NOT_HELD_WAIT 5.0
/* the longest an attempt waits for its account's state to reach Redis
 * before it asks again (http_admit_retry tells it sooner) */
#define ADMIT_WAIT_MAX 1.0

enum breaker_state { BR_CLOSED, BR_OPEN, BR_HALF_OPEN };

struct host {
    struct http *h;
    char name[256];
    int fails;
    enum breaker_state st;
    bool probing;
    ev_timer wake;
    struct http_xfer *wait_head, *wait_tail;
    struct host *next;
};

struct growbuf {
    char *p;
    size_t n, cap;
};

struct http_xfer {
    struct http *h;
    struct host *host;
    CURL *easy;
    struct curl_slist *hdrs;
    char *method, *url, *bearer, *body, *body_file;
    char shown[512]; /* the url as logs may show it (http_url_shown) */
    int fd;
    off_t off;
    size_t len, sent;
    void (*progress)(void *ud, uint64_t sent, uint64_t total);
    void *progress_ud;
    double progress_at; /* ev_now() of the last progress call */
    double timeout;
    enum http_retry retry;
    bool tiktok;
    int max_attempts, attempt;
    double started, attempt_at;
    char metric[32];
    struct growbuf rbody, rhdrs;
    bool too_big;
    size_t head_max; /* > 0: keep this much of the body, then stop (a probe) */
    bool head_full;  /* ... and it was reached */
    char errbuf[CURL_ERROR_SIZE];
    http_done_fn done;
    void *ud;
    ev_timer retry_timer;
    bool in_multi, waiting, held;
    struct http_xfer *wnext;       /* breaker wait queue */
    struct http_xfer *hnext;       /* held at the gate (group commit) */
    uint64_t held_in;              /* the gate's round it was held in */
    struct http_xfer *prev, *next; /* every live transfer */
    struct http_header *req_headers;
    size_t nreq_headers;
    char *owner;              /* the account it acts for, or NULL */
    struct curl_slist *fence; /* its X-Tikd-Fence line in hdrs (owner set) */
    bool refused;             /* admit said no: ends unsent from the loop */
    bool admit_wait;          /* admit said not yet: asks again (http_admit_retry) */
    bool probe;               /* it is its half-open host's probe */
    bool claim;               /* it makes its owner one of the app's active creators */
    double full_for;          /* refused: the app's cap is full for this long */
};

struct http {
    struct http_opts o;
    char *ca_file, *proxy;
    CURLM *multi;
    struct ev_loop *loop;
    ev_timer timer;
    int running;
    struct http_xfer *all;
    size_t live;
    struct host *hosts;
    bool (*gate)(void *ud); /* true: attempts wait for durable state */
    void *gate_ud;
    struct http_xfer *held, **held_tail; /* in the order they were held */
    uint64_t gate_round;
    uint64_t (*admit)(void *ud, struct http_admit *q); /* a cluster's lease check, or NULL */
    void *admit_ud;
    CURL *spare[EASY_SPARE]; /* finished transfers' easy handles, reset, for the next */
    int nspare;
};

struct sockw {
    ev_io io;
    struct http *h;
};

void http_opts_default(struct http_opts *o)
{
    *o = (struct http_opts){
        .connect_timeout = 10,
        .timeout = 120,
        .low_speed_bytes = 1024,
        .low_speed_time = 30,
        .max_response = 8u << 20,
        .max_attempts = 4,
        .backoff_base = 0.5,
        .backoff_cap = 30,
        .max_defer = 120,
        .breaker_failures = 5,
        .breaker_open = 30,
    };
}

static double rnd01(void)
{
    uint32_t v;
    if (RAND_bytes((unsigned char *)&v, sizeof v) != 1)
        v = (uint32_t)rand();
    return (double)v / 4294967296.0;
}

/* ---- the libev <-> libcurl glue ---------------------------------------- */

static void check_info(struct http *h);

static void on_socket(struct ev_loop *loop, ev_io *w, int revents)
{
    (void)loop;
    struct http *h = ((struct sockw *)w)->h;
    int action =
        (revents & EV_READ ? CURL_CSELECT_IN : 0) | (revents & EV_WRITE ? CURL_CSELECT_OUT : 0);
    curl_multi_socket_action(h->multi, w->fd, action, &h->running);
    /* w may be freed now */
    check_info(h);
}

static void on_timeout(struct ev_loop *loop, ev_timer *w, int revents)
{
    (void)loop;
    (void)revents;
    struct http *h = w->data;
    curl_multi_socket_action(h->multi, CURL_SOCKET_TIMEOUT, 0, &h->running);
    check_info(h);
}

static int sock_cb(CURL *e, curl_socket_t s, int what, void *cbp, void *sockp)
{
    (void)e;
    struct http *h = cbp;
    struct sockw *w = sockp;
    if (what == CURL_POLL_REMOVE) {
        if (w) {
            ev_io_stop(h->loop, &w->io);
            free(w);
            curl_multi_assign(h->multi, s, NULL);
        }
        return 0;
    }
    if (!w) {
        w = calloc(1, sizeof *w);
        if (!w)
            return -1;
        w->h = h;
        curl_multi_assign(h->multi, s, w);
    } else {
        ev_io_stop(h->loop, &w->io);
    }
    int kind = (what & CURL_POLL_IN ? EV_READ : 0) | (what & CURL_POLL_OUT ? EV_WRITE : 0);
    ev_io_init(&w->io, on_socket, s, kind);
    ev_io_start(h->loop, &w->io);
    return 0;
}

static int timer_cb(CURLM *m, long timeout_ms, void *userp)
{
    (void)m;
    struct http *h = userp;
    ev_timer_stop(h->loop, &h->timer);
    if (timeout_ms >= 0) {
        /* 0 means "as soon as possible": the next loop iteration, never
         * from inside this callback */
        ev_timer_set(&h->timer, (double)timeout_ms / 1000.0, 0.);
        ev_timer_start(h->loop, &h->timer);
    }
    return 0;
}

void http_url_shown(const char *url, char *out, size_t n)
{
    const char *scheme = strstr(url, "://");
    const char *auth = scheme ? scheme + 3 : url;
    size_t rest = strcspn(auth, "/?#");
    const char *at = memchr(auth, '@', rest);
    const char *host = at ? at + 1 : auth;
    size_t path = strcspn(host, "?#");
    snprintf(out, n, "%.*s%.*s%s", (int)(auth - url), url, (int)path, host,
             host[path] == '?' ? "?[redacted]" : "");
}

/* ---- lifecycle ----------------------------------------------------------- */

int http_new(struct http **out, const struct http_opts *o, struct tikd_err *e)
{
    static bool global_done;
    if (!global_done) {
        if (curl_global_init(CURL_GLOBAL_DEFAULT) != CURLE_OK)
            return tikd_fail(e, TIKD_EIO, "http: libcurl failed to initialise");
        global_done = true;
    }
    struct http *h = calloc(1, sizeof *h);
    if (!h)
        return tikd_fail(e, TIKD_ENOMEM, "http: out of memory");
    h->o = *o;
    h->loop = o->loop;
    h->ca_file = o->ca_file ? strdup(o->ca_file) : NULL;
    h->proxy = o->proxy ? strdup(o->proxy) : NULL;
    h->o.ca_file = h->ca_file;
    h->o.proxy = h->proxy;
    h->multi = curl_multi_init();
    if (!h->multi) {
        http_free(h);
        return tikd_fail(e, TIKD_ENOMEM, "http: cannot create a curl multi handle");
    }
    curl_multi_setopt(h->multi, CURLMOPT_SOCKETFUNCTION, sock_cb);
    curl_multi_setopt(h->multi, CURLMOPT_SOCKETDATA, h);
    curl_multi_setopt(h->multi, CURLMOPT_TIMERFUNCTION, timer_cb);
    curl_multi_setopt(h->multi, CURLMOPT_TIMERDATA, h);
    ev_init(&h->timer, on_timeout);
    h->timer.data = h;
    *out = h;
    return 0;
}

static void xfer_free(struct http_xfer *x);

void http_free(struct http *h)
{
    if (!h)
        return;
    while (h->all)
        xfer_free(h->all);
    for (struct host *n, *ho = h->hosts; ho; ho = n) {
        n = ho->next;
        ev_timer_stop(h->loop, &ho->wake);
        free(ho);
    }
    while (h->nspare)
        curl_easy_cleanup(h->spare[--h->nspare]);
    if (h->multi)
        curl_multi_cleanup(h->multi);
    ev_timer_stop(h->loop, &h->timer);
    free(h->ca_file);
    free(h->proxy);
    free(h);
}

size_t http_in_flight(const struct http *h)
{
    return h->live;
}

/* ---- buffers and callbacks ------------------------------------------------ */

static int grow_put(struct growbuf *b, const char *p, size_t n, size_t limit)
{
    if (b->n + n + 1 > limit)
        return -1;
    if (b->n + n + 1 > b->cap) {
        size_t nc = (b->n + n + 1) * 2;
        if (nc > limit + 1)
            nc = limit + 1;
        char *g = realloc(b->p, nc);
        if (!g)
            return -1;
        b->p = g;
        b->cap = nc;
    }
    memcpy(b->p + b->n, p, n);
    b->n += n;
    b->p[b->n] = '\0';
    return 0;
}

static size_t write_cb(char *p, size_t size, size_t n, void *ud)
{
    struct http_xfer *x = ud;
    if (x->head_max && x->rbody.n + size * n >= x->head_max) {
        /* the head is all a probe wants: keep it, end the transfer here */
        grow_put(&x->rbody, p, x->head_max - x->rbody.n, x->head_max + 1);
        x->head_full = true;
        return 0;
    }
    if (grow_put(&x->rbody, p, size * n, x->h->o.max_response) != 0) {
        x->too_big = true;
        return 0; /* aborts with CURLE_WRITE_ERROR */
    }
    return size * n;
}

static size_t header_cb(char *p, size_t size, size_t n, void *ud)
{
    struct http_xfer *x = ud;
    size_t len = size * n;
    if (len >= 5 && strncmp(p, "HTTP/", 5) == 0)
        x->rhdrs.n = 0; /* a new response (after a 100 Continue): keep only the last */
    if (grow_put(&x->rhdrs, p, len, 64 * 1024) != 0)
        return 0;
    return len;
}

static size_t read_cb(char *buf, size_t size, size_t n, void *ud)
{
    struct http_xfer *x = ud;
    size_t want = size * n, left = x->len - x->sent;
    if (want > left)
        want = left;
    if (want == 0)
        return 0;
    if (x->body) {
        memcpy(buf, x->body + x->sent, want);
    } else {
        ssize_t r = pread(x->fd, buf, want, x->off + (off_t)x->sent);
        if (r <= 0)
            return CURL_READFUNC_ABORT; /* the file shrank or failed under us */
        want = (size_t)r;
    }
    x->sent += want;
    if (x->progress) {
        double now = ev_now(x->h->loop);
        if (x->sent == x->len || now - x->progress_at >= 0.25) {
            x->progress_at = now;
            x->progress(x->progress_ud, x->sent, x->len);
        }
    }
    return want;
}

static int seek_cb(void *ud, curl_off_t offset, int origin)
{
    struct http_xfer *x = ud;
    /* libcurl rewinds a body only to resend it: on a reused connection that
     * died before any answer, it sends the request again on a new one. The
     * server may have read the first copy whole; a request that must not
     * reach it twice is refused the rewind, and ends as one that may have
     * been sent (attempt_done: CURLE_SEND_FAIL_REWIND is not "not sent") */
    if (x->retry == HTTP_RETRY_NOT_SENT && x->sent > 0)
        return CURL_SEEKFUNC_FAIL;
    if (origin != SEEK_SET || offset < 0 || (size_t)offset > x->len)
        return CURL_SEEKFUNC_CANTSEEK;
    x->sent = (size_t)offset;
    return CURL_SEEKFUNC_OK;
}

bool http_header_get(const char *headers, const char *name, char *out, size_t n)
{
    size_t nl = strlen(name);
    for (const char *line = headers; line && *line;) {
        const char *eol = strchr(line, '\n');
        size_t ll = eol ? (size_t)(eol - line) : strlen(line);
        if (ll > nl && strncasecmp(line, name, nl) == 0 && line[nl] == ':') {
            const char *v = line + nl + 1;
            while (*v == ' ' || *v == '\t')
                v++;
            size_t vl = (size_t)(line + ll - v);
            while (vl && (v[vl - 1] == '\r' || v[vl - 1] == ' '))
                vl--;
            if (vl >= n)
                vl = n - 1;
            memcpy(out, v, vl);
            out[vl] = '\0';
            return true;
        }
        line = eol ? eol + 1 : NULL;
    }
    return false;
}

/* ---- hosts and breakers --------------------------------------------------- */

static void host_name_of(const char *url, char *out, size_t n)
{
    const char *p = strstr(url, "://");
    p = p ? p + 3 : url;
    size_t l = strcspn(p, "/?#");
    if (l >= n)
        l = n - 1;
    memcpy(out, p, l);
    out[l] = '\0';
}

static void attempt_begin(struct http_xfer *x);

static void host_release_one(struct host *ho)
{
    struct http_xfer *x = ho->wait_head;
    if (!x)
        return;
    ho->wait_head = x->wnext;
    if (!ho->wait_head)
        ho->wait_tail = NULL;
    x->wnext = NULL;
    x->waiting = false;
    attempt_begin(x);
}

static void on_host_wake(struct ev_loop *loop, ev_timer *w, int revents)
{
    (void)loop;
    (void)revents;
    struct host *ho = w->data;
    ho->st = BR_HALF_OPEN;
    ho->probing = ho->wait_head != NULL;
    if (ho->wait_head)
        ho->wait_head->probe = true;
    TLOG(TLOG_INFO, "http.breaker_half_open", LSTR("host", ho->name));
    host_release_one(ho); /* the probe */
}

static struct host *host_get(struct http *h, const char *url)
{
    char name[256];
    host_name_of(url, name, sizeof name);
    for (struct host *ho = h->hosts; ho; ho = ho->next)
        if (strcmp(ho->name, name) == 0)
            return ho;
    struct host *ho = calloc(1, sizeof *ho);
    if (!ho)
        return NULL;
    ho->h = h;
    snprintf(ho->name, sizeof ho->name, "%s", name);
    ev_init(&ho->wake, on_host_wake);
    ho->wake.data = ho;
    ho->next = h->hosts;
    h->hosts = ho;
    return ho;
}

static void host_open(struct host *ho)
{
    ho->st = BR_OPEN;
    ho->probing = false;
    ev_timer_stop(ho->h->loop, &ho->wake);
    ev_timer_set(&ho->wake, ho->h->o.breaker_open, 0.);
    ev_timer_start(ho->h->loop, &ho->wake);
    TLOG(TLOG_WARN, "http.breaker_open", LSTR("host", ho->name), LINT("failures", ho->fails),
         LDBL("probe_in_s", ho->h->o.breaker_open));
    alert_raise("breaker", ho->name,
                "%d failed attempts in a row: requests to it wait; a probe in %.0f s", ho->fails,
                ho->h->o.breaker_open);
}

/* Record the health of one attempt's outcome. */
static void host_note(struct host *ho, bool healthy, bool was_probe)
{
    if (healthy) {
        bool reopened = ho->st != BR_CLOSED;
        ho->fails = 0;
        ho->st = BR_CLOSED;
        ho->probing = false;
        if (reopened)
            TLOG(TLOG_INFO, "http.breaker_closed", LSTR("host", ho->name));
        while (ho->wait_head)
            host_release_one(ho);
        return;
    }
    ho->fails++;
    if (was_probe || (ho->st == BR_CLOSED && ho->fails >= ho->h->o.breaker_failures))
        host_open(ho);
}

/* ---- attempts ---------------------------------------------------------------- */

static void xfer_start(struct http_xfer *x)
{
    struct http *h = x->h;
    if (h->gate && h->gate(h->gate_ud)) {
        x->held = true;
        x->hnext = NULL;
        x->held_in = h->gate_round;
        if (!h->held)
            h->held_tail = &h->held;
        *h->held_tail = x;
        h->held_tail = &x->hnext;
        return;
    }
    struct host *ho = x->host;
    if (ho->st == BR_OPEN || (ho->st == BR_HALF_OPEN && ho->probing)) {
        x->waiting = true;
        if (ho->wait_tail)
            ho->wait_tail->wnext = x;
        else
            ho->wait_head = x;
        ho->wait_tail = x;
        return;
    }
    if (ho->st == BR_HALF_OPEN) {
        ho->probing = true; /* this one is the probe */
        x->probe = true;
    }
    attempt_begin(x);
}

/* x was its half-open host's probe and goes no further (refused, cut,
 * cancelled): another waiting request probes, at once. */
static void probe_abandoned(struct http_xfer *x)
{
    if (!x->probe)
        return;
    x->probe = false;
    struct host *ho = x->host;
    if (ho->st != BR_HALF_OPEN || !ho->probing)
        return;
    ho->probing = false;
    ev_timer_stop(x->h->loop, &ho->wake);
    ev_timer_set(&ho->wake, 0., 0.);
    ev_timer_start(x->h->loop, &ho->wake);
}

/* x ends without this attempt being sent: a POL_DEFER its caller handles
 * (retry_after seconds), then x is freed. From the loop only. */
static void end_unsent(struct http_xfer *x, const char *code, double retry_after, const char *fmt,
                       ...) __attribute__((format(printf, 4, 5)));
static void end_unsent(struct http_xfer *x, const char *code, double retry_after, const char *fmt,
                       ...)
{
    struct http_resp r = {.attempts = x->attempt, .body = "", .headers = ""};
    r.out.action = POL_DEFER;
    r.out.unsent = true;
    r.out.retry_after = retry_after;
    snprintf(r.out.code, sizeof r.out.code, "%s", code);
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(r.out.message, sizeof r.out.message, fmt, ap);
    va_end(ap);
    r.elapsed = ev_now(x->h->loop) - x->started;
    x->done(x->ud, &r);
    xfer_free(x);
}

/* The cluster's word on this attempt: false when this node may not act
 * for x's account now (x ends unsent from the loop); else its fence goes in
 * the X-Tikd-Fence line. */
static bool admitted(struct http_xfer *x)
{
    struct http *h = x->h;
    if (!x->owner || !h->admit)
        return true;
    struct http_admit q = {.owner = x->owner, .claim = x->claim};
    uint64_t fence = h->admit(h->admit_ud, &q);
    if (fence == HTTP_ADMIT_WAIT) { /* asked again when told, or in a second */
        x->admit_wait = true;
        ev_timer_set(&x->retry_timer, ADMIT_WAIT_MAX, 0.);
        ev_timer_start(h->loop, &x->retry_timer);
        return false;
    }
    if (!fence) {
        x->refused = true; /* told from the loop, never inside this call */
        x->full_for = q.full_for;
        ev_timer_set(&x->retry_timer, 0., 0.);
        ev_timer_start(h->loop, &x->retry_timer);
        probe_abandoned(x);
        return false;
    }
    snprintf(x->fence->data, FENCE_LINE, "X-Tikd-Fence: %llu", (unsigned long long)fence);
    return true;
}

static void attempt_begin(struct http_xfer *x)
{
    struct http *h = x->h;
    if (!admitted(x))
        return;
    x->attempt++;
    x->attempt_at = ev_now(x->h->loop);
    x->sent = 0;
    x->rbody.n = 0;
    x->rhdrs.n = 0;
    x->too_big = x->head_full = false;
    x->errbuf[0] = '\0';
    if (x->rbody.p)
        x->rbody.p[0] = '\0';
    CURL *c = x->easy;
    curl_easy_reset(c);
    curl_easy_setopt(c, CURLOPT_URL, x->url);
    curl_easy_setopt(c, CURLOPT_PROTOCOLS_STR, "http,https");
    curl_easy_setopt(c, CURLOPT_NOSIGNAL, 1L);
    curl_easy_setopt(c, CURLOPT_PRIVATE, x);
    curl_easy_setopt(c, CURLOPT_ERRORBUFFER, x->errbuf);
    curl_easy_setopt(c, CURLOPT_WRITEFUNCTION, write_cb);
    curl_easy_setopt(c, CURLOPT_WRITEDATA, x);
    curl_easy_setopt(c, CURLOPT_HEADERFUNCTION, header_cb);
    curl_easy_setopt(c, CURLOPT_HEADERDATA, x);
    curl_easy_setopt(c, CURLOPT_SSL_VERIFYPEER, 1L);
    curl_easy_setopt(c, CURLOPT_SSL_VERIFYHOST, 2L);
    if (h->o.ca_file)
        curl_easy_setopt(c, CURLOPT_CAINFO, h->o.ca_file);
    curl_easy_setopt(c, CURLOPT_PROXY, h->o.proxy ? h->o.proxy : "");
    curl_easy_setopt(c, CURLOPT_CONNECTTIMEOUT_MS, (long)(h->o.connect_timeout * 1000));
    double total = x->timeout > 0 ? x->timeout : h->o.timeout;
    if (total > 0)
        curl_easy_setopt(c, CURLOPT_TIMEOUT_MS, (long)(total * 1000));
    if (h->o.low_speed_time > 0) {
        curl_easy_setopt(c, CURLOPT_LOW_SPEED_LIMIT, h->o.low_speed_bytes);
        curl_easy_setopt(c, CURLOPT_LOW_SPEED_TIME, h->o.low_speed_time);
    }
    curl_easy_setopt(c, CURLOPT_HTTPHEADER, x->hdrs);
    /* libcurl silently resends a request whose reused connection died
     * without an answer. A request that must not reach the server twice (an
     * init, a token exchange) may still take a kept connection: its body
     * cannot be rewound for the resend (seek_cb), and it ends as one that
     * may have been sent. So that this stays the rare case of a server
     * dying mid-request, not a server's routine close of an idle
     * connection, it takes only a connection used within the last
     * NOT_SENT_MAX_IDLE seconds. Without a body there is nothing to refuse,
     * so it goes on a fresh connection. */
    if (x->retry == HTTP_RETRY_NOT_SENT && x->len == 0)
        curl_easy_setopt(c, CURLOPT_FRESH_CONNECT, 1L);
    else if (x->retry == HTTP_RETRY_NOT_SENT)
        curl_easy_setopt(c, CURLOPT_MAXAGE_CONN, NOT_SENT_MAX_IDLE);
    bool has_body = x->body || x->body_file;
    if (strcmp(x->method, "GET") == 0 && !has_body) {
        curl_easy_setopt(c, CURLOPT_HTTPGET, 1L);
    } else if (strcmp(x->method, "PUT") == 0) {
        curl_easy_setopt(c, CURLOPT_UPLOAD, 1L);
        curl_easy_setopt(c, CURLOPT_INFILESIZE_LARGE, (curl_off_t)x->len);
    } else {
        curl_easy_setopt(c, CURLOPT_POST, 1L);
        curl_easy_setopt(c, CURLOPT_POSTFIELDSIZE_LARGE, (curl_off_t)x->len);
        if (strcmp(x->method, "POST") != 0)
            curl_easy_setopt(c, CURLOPT_CUSTOMREQUEST, x->method);
    }
    /* libcurl hands the socket 64 KiB per send by default: a video chunk
     * (5-64 MiB) goes out in 512 KiB sends, a tenth of the syscalls and of
     * the read callbacks (docs/performance.md: 0.91x curl -> 1.4x). The
     * buffer lives as long as the easy handle (a kept one keeps it). */
    if (x->len > UPLOAD_BIG)
        curl_easy_setopt(c, CURLOPT_UPLOAD_BUFFERSIZE, UPLOAD_BUFFER);
    curl_easy_setopt(c, CURLOPT_READFUNCTION, read_cb);
    curl_easy_setopt(c, CURLOPT_READDATA, x);
    curl_easy_setopt(c, CURLOPT_SEEKFUNCTION, seek_cb);
    curl_easy_setopt(c, CURLOPT_SEEKDATA, x);
    TLOG(TLOG_DEBUG, "http.attempt", LSTR("method", x->method), LSTR("url", x->shown),
         LINT("attempt", x->attempt), LINT("body_bytes", x->len));
    x->in_multi = true;
    curl_multi_add_handle(h->multi, c);
}

static void xfer_unlink(struct http_xfer *x)
{
    struct http *h = x->h;
    if (x->in_multi) {
        curl_multi_remove_handle(h->multi, x->easy);
        x->in_multi = false;
    }
    ev_timer_stop(h->loop, &x->retry_timer);
    if (x->held) {
        struct http_xfer **pp = &h->held;
        while (*pp && *pp != x)
            pp = &(*pp)->hnext;
        if (*pp)
            *pp = x->hnext;
        if (h->held_tail == &x->hnext)
            h->held_tail = pp;
        x->held = false;
    }
    if (x->waiting) {
        struct host *ho = x->host;
        struct http_xfer **pp = &ho->wait_head, *last = NULL;
        while (*pp && *pp != x) {
            last = *pp;
            pp = &(*pp)->wnext;
        }
        if (*pp) {
            *pp = x->wnext;
            if (ho->wait_tail == x)
                ho->wait_tail = last;
        }
        x->waiting = false;
    }
}

static void xfer_free(struct http_xfer *x)
{
    struct http *h = x->h;
    xfer_unlink(x);
    if (x->prev)
        x->prev->next = x->next;
    else
        h->all = x->next;
    if (x->next)
        x->next->prev = x->prev;
    h->live--;
    if (x->easy && h->nspare < EASY_SPARE && x->retry != HTTP_RETRY_NOT_SENT) {
        curl_easy_reset(x->easy);
        h->spare[h->nspare++] = x->easy;
    } else if (x->easy) {
        curl_easy_cleanup(x->easy);
    }
    for (struct curl_slist *l = x->hdrs; l; l = l->next)
        OPENSSL_cleanse(l->data, strlen(l->data)); /* curl's copy of Authorization */
    curl_slist_free_all(x->hdrs);
    if (x->bearer) {
        OPENSSL_cleanse(x->bearer, strlen(x->bearer));
        free(x->bearer);
    }
    if (x->fd >= 0)
        close(x->fd);
    free(x->method);
    free(x->url);
    free(x->body);
    free(x->body_file);
    free(x->owner);
    free(x->rbody.p);
    free(x->rhdrs.p);
    free(x);
}

void http_cancel(struct http_xfer *x)
{
    if (x->host)
        probe_abandoned(x);
    xfer_free(x);
}

void http_set_gate(struct http *h, bool (*closed)(void *ud), void *ud)
{
    h->gate = closed;
    h->gate_ud = ud;
}

void http_set_admit(struct http *h, uint64_t (*admit)(void *ud, struct http_admit *q), void *ud)
{
    h->admit = admit;
    h->admit_ud = ud;
}

void http_admit_retry(struct http *h)
{
    for (struct http_xfer *x = h->all; x; x = x->next) {
        if (x->admit_wait) {
            ev_timer_stop(h->loop, &x->retry_timer);
            ev_timer_set(&x->retry_timer, 0., 0.);
            ev_timer_start(h->loop, &x->retry_timer);
        }
    }
}

void http_cut_owner(struct http *h, const char *owner)
{
    for (struct http_xfer *x = h->all; x; x = x->next) {
        if (!x->in_multi || x->retry != HTTP_RETRY_ALL || !x->owner || strcmp(x->owner, owner) != 0)
            continue;
        curl_multi_remove_handle(h->multi, x->easy); /* nothing more of it leaves */
        x->in_multi = false;
        x->refused = true; /* told from the loop, as a refused attempt */
        x->full_for = 0;
        probe_abandoned(x);
        ev_timer_stop(h->loop, &x->retry_timer);
        ev_timer_set(&x->retry_timer, 0., 0.);
        ev_timer_start(h->loop, &x->retry_timer);
        TLOG(TLOG_INFO, "http.cut", LSTR("target", x->metric), LSTR("owner", owner));
    }
}

void http_gate_open(struct http *h, int rc, const char *why)
{
    /* the ones held so far: a callback may hold new ones (a later round,
     * at the tail) or cancel held ones (unlinked as they go) */
    uint64_t round = h->gate_round++;
    struct http_xfer *x;
    while ((x = h->held) && x->held_in <= round) {
        h->held = x->hnext;
        if (!h->held)
            h->held_tail = &h->held;
        x->held = false;
        x->hnext = NULL;
        if (rc == 0)
            xfer_start(x);
        else
            end_unsent(x, "store_refused", 5,
                       "not sent: the database refused to record what comes before it (%.200s)",
                       why && *why ? why : tikd_strerror(rc));
    }
}

static void on_retry(struct ev_loop *loop, ev_timer *w, int revents)
{
    (void)loop;
    (void)revents;
    struct http_xfer *x = w->data;
    if (x->admit_wait) { /* the same attempt, admitted this time or not: a probe goes on
                          * as the probe, any other passes the gate and breaker again */
        x->admit_wait = false;
        if (x->probe)
            attempt_begin(x);
        else
            xfer_start(x);
        return;
    }
    if (x->refused && x->full_for > 0)
        end_unsent(x, "app_active_users", x->full_for,
                   "not sent: the app's cap of active creators is full across the cluster for "
                   "%.0f s more (limits.active_users)",
                   x->full_for);
    else if (x->refused) /* NOT_HELD_WAIT: about one renewal round of a default lease */
        end_unsent(x, "not_held", NOT_HELD_WAIT,
                   "not sent: this node no longer holds account %s's lease (another node acts "
                   "for it now, or none until the lease is granted again)",
                   x->owner);
    else
        xfer_start(x);
}

/* The outcome of one attempt: retry here, or hand it to the caller. */
static void attempt_done(struct http_xfer *x, CURLcode cc)
{
    struct http *h = x->h;
    if (cc == CURLE_WRITE_ERROR && x->head_full)
        cc = CURLE_OK; /* stopped on purpose, with the head in hand */
    /* a request that must not reach the server twice, whose body was read:
     * libcurl tried to resend it (a kept connection died unanswered) and
     * was refused the rewind, or its new connection for the resend failed
     * first. Either way the first copy may have reached the server. It ends
     * as a connection lost after sending: retried by no one here, and to
     * the caller a request that may have been acted on. */
    bool resend_refused = cc == CURLE_SEND_FAIL_REWIND ||
                          ((cc == CURLE_COULDNT_CONNECT || cc == CURLE_COULDNT_RESOLVE_HOST ||
                            cc == CURLE_COULDNT_RESOLVE_PROXY) &&
                           x->sent > 0);
    if (x->retry == HTTP_RETRY_NOT_SENT && resend_refused) {
        cc = CURLE_RECV_ERROR;
        snprintf(x->errbuf, sizeof x->errbuf,
                 "the connection was lost after the request was sent; it may have reached the "
                 "server, so it was not sent again");
    }
    long status = 0;
    curl_easy_getinfo(x->easy, CURLINFO_RESPONSE_CODE, &status);
    double retry_after = -1;
    char ra[64];
    if (status && x->rhdrs.p && http_header_get(x->rhdrs.p, "Retry-After", ra, sizeof ra)) {
        curl_off_t secs = 0;
        curl_easy_getinfo(x->easy, CURLINFO_RETRY_AFTER, &secs); /* both forms (RFC 9110) */
        retry_after = (double)secs;
    }
    curl_multi_remove_handle(h->multi, x->easy);
    x->in_multi = false;
    struct http_resp r = {.status = cc == CURLE_OK ? status : 0,
                          .body = x->rbody.p ? x->rbody.p : "",
                          .body_len = x->rbody.n,
                          .headers = x->rhdrs.p ? x->rhdrs.p : "",
                          .attempts = x->attempt};
    if (x->too_big)
        snprintf(x->errbuf, sizeof x->errbuf,
                 "the response body is larger than the %zu-byte limit (http.max_response)",
                 h->o.max_response);
    policy_classify(cc == CURLE_OK ? 0 : (int)cc, x->errbuf, r.status, r.body, r.body_len,
                    retry_after, x->tiktok, &r.out, &r.json);

    bool was_probe = x->probe && x->host->probing && x->host->st == BR_HALF_OPEN;
    x->probe = false;
    /* a host is unhealthy when it did not answer or answered 5xx; a 4xx or
     * a TikTok error code is a healthy host saying no */
    bool unhealthy = cc != CURLE_OK ? r.out.action == POL_RETRY : status >= 500;
    host_note(x->host, !unhealthy, was_probe);

    enum pol_action a = r.out.action;
    bool sent = !(cc == CURLE_COULDNT_CONNECT || cc == CURLE_COULDNT_RESOLVE_HOST ||
                  cc == CURLE_COULDNT_RESOLVE_PROXY);
    bool rated = status == 429 || strcmp(r.out.code, "rate_limit_exceeded") == 0;
    char lb[128];
    metrics_inc(
        "tikd_http_requests_total",
        metrics_labels(lb, sizeof lb, "target", x->metric, "outcome", policy_action_name(a), NULL),
        1);
    metrics_labels(lb, sizeof lb, "target", x->metric, NULL);
    metrics_observe("tikd_http_request_duration_seconds", lb, ev_now(h->loop) - x->attempt_at);
    if (rated)
        metrics_inc("tikd_http_rate_limited_total", lb, 1);
    if (a == POL_OK && x->body_file)
        metrics_inc("tikd_upload_bytes_total", NULL, (double)x->len);
    bool may_retry =
        (a == POL_RETRY || (a == POL_DEFER && r.out.retry_after <= h->o.max_defer)) &&
        x->attempt < x->max_attempts &&
        (x->retry == HTTP_RETRY_ALL || (x->retry == HTTP_RETRY_RATED && !rated) || !sent);
    TLOG(a == POL_OK ? TLOG_DEBUG : TLOG_INFO, "http.outcome", LSTR("method", x->method),
         LSTR("url", x->shown), LINT("status", r.status), LINT("attempt", x->attempt),
         LSTR("action", policy_action_name(a)), LSTR("code", r.out.code),
         LSTR("log_id", r.out.log_id), LBOOL("will_retry", may_retry));
    if (may_retry) {
        double floor = r.out.retry_after > 0 ? r.out.retry_after : 0;
        double delay =
            policy_backoff(x->attempt, h->o.backoff_base, h->o.backoff_cap, floor, rnd01());
        ev_timer_set(&x->retry_timer, delay, 0.);
        ev_timer_start(h->loop, &x->retry_timer);
        json_decref(r.json);
        return;
    }
    /* TikTok's side (its API, the uploads, the token endpoint) failing for
     * good again and again: the operator hears of it (a refusal of one
     * request is not the endpoint failing) */
    char subj[48] = "", what[700] = ""; /* told after the request's own end */
    if ((x->tiktok || strcmp(x->metric, "upload") == 0) &&
        (a == POL_RETRY || (a == POL_FAIL && (r.status == 0 || r.status >= 500)))) {
        snprintf(subj, sizeof subj, "endpoint:%s", x->metric);
        snprintf(what, sizeof what, "%.16s %.400s: %.250s", x->method, x->shown,
                 r.status ? r.out.code : x->errbuf);
    }
    r.elapsed = ev_now(h->loop) - x->started;
    http_done_fn done = x->done;
    void *ud = x->ud;
    /* the callback may start new requests; free after it returns, so the
     * body it reads stays valid */
    done(ud, &r);
    json_decref(r.json);
    xfer_free(x);
    if (subj[0]) /* (the rules' on_alert may run: the transfer is gone by then) */
        alert_failure(subj, "%s", what);
}

static void check_info(struct http *h)
{
    CURLMsg *m;
    int left;
    while ((m = curl_multi_info_read(h->multi, &left))) {
        if (m->msg != CURLMSG_DONE)
            continue;
        struct http_xfer *x;
        curl_easy_getinfo(m->easy_handle, CURLINFO_PRIVATE, (char **)&x);
        attempt_done(x, m->data.result);
    }
}

/* ---- starting a request ----------------------------------------------------- */

static char *dupn(const void *p, size_t n)
{
    char *d = malloc(n + 1);
    if (d) {
        memcpy(d, p, n);
        d[n] = '\0';
    }
    return d;
}

int http_request(struct http *h, const struct http_req *req, http_done_fn done, void *ud,
                 struct http_xfer **xfer, struct tikd_err *e)
{
    if (xfer)
        *xfer = NULL;
    if (!req->url || (strncmp(req->url, "https://", 8) != 0 && strncmp(req->url, "http://", 7)))
        return tikd_fail(e, TIKD_EINVAL, "http: not an http(s) URL: %.200s",
                         req->url ? req->url : "(none)");
    struct http_xfer *x = calloc(1, sizeof *x);
    if (!x)
        return tikd_fail(e, TIKD_ENOMEM, "http: out of memory");
    x->h = h;
    x->fd = -1;
    x->done = done;
    x->ud = ud;
    x->retry = req->retry;
    x->tiktok = req->tiktok;
    x->timeout = req->timeout;
    x->max_attempts = req->max_attempts > 0 ? req->max_attempts : h->o.max_attempts;
    x->head_max = req->head_max;
    x->progress = req->progress;
    x->progress_ud = req->progress_ud;
    snprintf(x->metric, sizeof x->metric, "%s", req->metric ? req->metric : "other");
    x->started = ev_now(h->loop);
    ev_init(&x->retry_timer, on_retry);
    x->retry_timer.data = x;
    x->next = h->all;
    if (h->all)
        h->all->prev = x;
    h->all = x;
    h->live++;

    int rc = 0;
    x->method = strdup(req->method ? req->method : "GET");
    x->url = strdup(req->url);
    http_url_shown(req->url, x->shown, sizeof x->shown);
    if (req->path_secret) { /* scheme://host/[redacted] */
        const char *sch = strstr(x->shown, "://");
        char *slash = sch ? strchr(sch + 3, '/') : NULL;
        if (slash && (size_t)(slash - x->shown) + 12 < sizeof x->shown)
            snprintf(slash, sizeof x->shown - (size_t)(slash - x->shown), "/[redacted]");
    }
    x->easy =
        h->nspare && req->retry != HTTP_RETRY_NOT_SENT ? h->spare[--h->nspare] : curl_easy_init();
    x->host = host_get(h, req->url);
    if (!x->method || !x->url || !x->easy || !x->host) {
        rc = tikd_fail(e, TIKD_ENOMEM, "http: out of memory");
        goto fail;
    }
    x->len = req->body_len;
    if (req->body_file) {
        x->body_file = strdup(req->body_file);
        struct stat st;
        x->fd = fileio_open_regular(req->body_file, &st, e);
        if (x->fd < 0) {
            rc = x->fd;
            goto fail;
        }
        if (req->body_off < 0 || (off_t)(req->body_off + (off_t)req->body_len) > st.st_size) {
            rc = tikd_fail(e, TIKD_EINVAL,
                           "http: bytes %lld-%lld are past the end of %s (%lld "
                           "bytes)",
                           (long long)req->body_off,
                           (long long)(req->body_off + (off_t)req->body_len) - 1, req->body_file,
                           (long long)st.st_size);
            goto fail;
        }
        x->off = req->body_off;
    } else if (req->body || req->body_len) {
        x->body = dupn(req->body ? req->body : "", req->body_len);
        if (!x->body) {
            rc = tikd_fail(e, TIKD_ENOMEM, "http: out of memory");
            goto fail;
        }
    }
    for (size_t i = 0; i < req->nheaders; i++) {
        char line[1024];
        snprintf(line, sizeof line, "%s: %s", req->headers[i].name, req->headers[i].value);
        struct curl_slist *n = curl_slist_append(x->hdrs, line);
        if (!n) {
            rc = tikd_fail(e, TIKD_ENOMEM, "http: out of memory");
            goto fail;
        }
        x->hdrs = n;
    }
    x->hdrs = curl_slist_append(x->hdrs, "Expect:"); /* no 100-continue round trip */
    if (req->bearer) {
        size_t n = strlen(req->bearer) + 32;
        x->bearer = malloc(n);
        if (!x->bearer) {
            rc = tikd_fail(e, TIKD_ENOMEM, "http: out of memory");
            goto fail;
        }
        snprintf(x->bearer, n, "Authorization: Bearer %s", req->bearer);
        x->hdrs = curl_slist_append(x->hdrs, x->bearer);
    }
    if (req->owner && h->admit) {
        /* asked now, so a request for an account held elsewhere fails here
         * rather than later; each attempt asks again (admitted) */
        struct http_admit q = {.owner = req->owner}; /* held at all: no claim yet */
        if (!h->admit(h->admit_ud, &q)) {
            rc = tikd_fail(e, TIKD_ENOTHELD, "not sent: this node does not hold account %s's lease",
                           req->owner);
            if (e)
                e->retry_at = clock_now() + NOT_HELD_WAIT;
            goto fail;
        }
        char line[FENCE_LINE];
        memset(line, '0', sizeof line - 1); /* room for any fence, rewritten per attempt */
        line[sizeof line - 1] = '\0';
        memcpy(line, "X-Tikd-Fence: ", 14);
        struct curl_slist *n = curl_slist_append(x->hdrs, line);
        x->owner = strdup(req->owner);
        x->claim = req->claim;
        if (!n || !x->owner) {
            rc = tikd_fail(e, TIKD_ENOMEM, "http: out of memory");
            goto fail;
        }
        x->hdrs = n;
        for (x->fence = n; x->fence->next; x->fence = x->fence->next)
            ;
    }
    if (xfer)
        *xfer = x;
    xfer_start(x);
    return 0;
fail:
    xfer_free(x);
    return rc;
}
