/* server.c - libmicrohttpd driven by libev (see server.h).
 *
 * Why libmicrohttpd: a small, long-maintained C server (GNU) that parses HTTP
 * correctly (chunked bodies, pipelining, limits) and can run with no thread
 * of its own, handing its epoll descriptor to our loop. We create the
 * listening socket ourselves (so unix sockets and port 0 work the same way)
 * and pass it in. */
#include "server.h"
#include "log.h"

#include <arpa/inet.h>
#include <errno.h>
#include <ev.h>
#include <microhttpd.h>
#include <netdb.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>

#define MAX_BODY   (1024 * 1024)
#define MAX_ROUTES 32

struct route {
    char method[8];
    char path[256];
    srv_handler fn;
    void *ud;
};

/* One client connection: since when a whole request is awaited on it. */
struct conn {
    int fd;
    bool awaiting; /* a request is being received (not yet dispatched) */
    bool cut;
    double since;
    struct conn *prev, *next;
};

struct server {
    struct ev_loop *loop;
    struct MHD_Daemon *d;
    int lfd, port;
    struct srv_limits lim;
    size_t max_body;
    ev_io io;
    ev_timer timer, kick, sweep;
    struct conn *conns;
    size_t nconns;
    struct route routes[MAX_ROUTES];
    int nroutes;
    char unix_path[108];
    dev_t unix_dev; /* the socket file this server made, the only one it removes */
    ino_t unix_ino;
    struct srv_req *waiting; /* suspended, answer pending */
    srv_error_fn on_error;
    struct srv_stream *streams; /* streamed answers in progress */
    int (*gate)(void *ud);      /* makes what the answer reports durable */
    void *gate_ud;
};

struct srv_stream {
    struct server *s;
    struct MHD_Connection *c;
    char *buf;
    size_t len, off, cap, max;
    bool suspended, ended;
    srv_closed_fn closed;
    void *ud;
    struct srv_stream *prev, *next;
};

struct srv_req {
    struct server *s;
    struct MHD_Connection *c;
    char method[16];
    char path[512];
    char *body;
    size_t body_len;
    bool too_big, dispatched, suspended, answered;
    char *query;
    struct MHD_Response *resp;
    int status;
    struct srv_req *wprev, *wnext;
    srv_done_fn done; /* told whether the whole response went out */
    void *done_ud;
    char *hdr[8][2]; /* srv_add_header's, for the answer */
    int nhdr;
};

static void unwait(struct srv_req *r)
{
    if (r->wprev)
        r->wprev->wnext = r->wnext;
    else if (r->s->waiting == r)
        r->s->waiting = r->wnext;
    if (r->wnext)
        r->wnext->wprev = r->wprev;
    r->wprev = r->wnext = NULL;
}

static void server_kick(struct server *s);

/* ---- driving MHD from libev -------------------------------------------- */

static void rearm(struct server *s)
{
    MHD_UNSIGNED_LONG_LONG ms;
    ev_timer_stop(s->loop, &s->timer);
    if (MHD_get_timeout(s->d, &ms) == MHD_YES) {
        ev_timer_set(&s->timer, (double)ms / 1000.0, 0.);
        ev_timer_start(s->loop, &s->timer);
    }
}

static void run_mhd(struct server *s)
{
    MHD_run(s->d);
    rearm(s);
}

static void on_io(struct ev_loop *loop, ev_io *w, int revents)
{
    (void)loop;
    (void)revents;
    run_mhd(w->data);
}

static void on_timer(struct ev_loop *loop, ev_timer *w, int revents)
{
    (void)loop;
    (void)revents;
    run_mhd(w->data);
}

/* After a resume, MHD must run again; never from inside its own callbacks,
 * so a zero timer does it on the next loop iteration. */
static void server_kick(struct server *s)
{
    if (!ev_is_active(&s->kick)) {
        ev_timer_set(&s->kick, 0., 0.);
        ev_timer_start(s->loop, &s->kick);
    }
}

/* ---- slow clients: every request has a deadline ------------------------------- */

static void on_connection(void *cls, struct MHD_Connection *c, void **socket_context,
                          enum MHD_ConnectionNotificationCode code)
{
    struct server *s = cls;
    if (code == MHD_CONNECTION_NOTIFY_STARTED) {
        struct conn *k = calloc(1, sizeof *k);
        const union MHD_ConnectionInfo *ci =
            MHD_get_connection_info(c, MHD_CONNECTION_INFO_CONNECTION_FD);
        if (!k || !ci) { /* untracked: the idle timeout still holds it */
            free(k);
            *socket_context = NULL;
            return;
        }
        k->fd = ci->connect_fd;
        k->awaiting = true;
        k->since = ev_now(s->loop);
        k->next = s->conns;
        if (s->conns)
            s->conns->prev = k;
        s->conns = k;
        s->nconns++;
        *socket_context = k;
        return;
    }
    struct conn *k = *socket_context;
    if (!k)
        return;
    if (k->prev)
        k->prev->next = k->next;
    else
        s->conns = k->next;
    if (k->next)
        k->next->prev = k->prev;
    s->nconns--;
    free(k);
    *socket_context = NULL;
}

static struct conn *conn_of(struct MHD_Connection *c)
{
    const union MHD_ConnectionInfo *ci =
        MHD_get_connection_info(c, MHD_CONNECTION_INFO_SOCKET_CONTEXT);
    return ci ? ci->socket_context : NULL;
}

/* A connection whose request has not all arrived by its deadline is shut
 * down; MHD sees the end of the stream at once and closes it. Answers on
 * their way out are not bounded here (TikTok pulling a video may be slow). */
static void on_sweep(struct ev_loop *loop, ev_timer *w, int revents)
{
    (void)revents;
    struct server *s = w->data;
    double now = ev_now(loop);
    int cut = 0;
    for (struct conn *k = s->conns; k; k = k->next) {
        if (k->awaiting && !k->cut && now - k->since > s->lim.request_timeout) {
            shutdown(k->fd, SHUT_RDWR);
            k->cut = true;
            cut++;
        }
    }
    if (cut)
        TLOG(TLOG_INFO, "server.slow_clients_cut", LINT("connections", cut),
             LDBL("request_timeout", s->lim.request_timeout), LINT("open", s->nconns));
    /* MHD closes what it finds ended at the end of a run and takes its
     * listening socket back into its epoll set only at the start of the
     * next: at its connection limit, a run here, and one more right after,
     * is what lets a freed slot take the next client (nothing else would
     * wake it) */
    run_mhd(s);
    if (cut)
        server_kick(s);
}

/* ---- requests ---------------------------------------------------------------- */

const char *srv_method(const struct srv_req *r)
{
    return r->method;
}

const char *srv_path(const struct srv_req *r)
{
    return r->path;
}

const char *srv_body(const struct srv_req *r, size_t *len)
{
    if (len)
        *len = r->body_len;
    return r->body ? r->body : "";
}

const char *srv_header(const struct srv_req *r, const char *name)
{
    return MHD_lookup_connection_value(r->c, MHD_HEADER_KIND, name);
}

const char *srv_arg(const struct srv_req *r, const char *name)
{
    return MHD_lookup_connection_value(r->c, MHD_GET_ARGUMENT_KIND, name);
}

struct qbuild {
    char *p;
    size_t n, cap;
    int oom;
};

static void qput(struct qbuild *q, const char *s, bool encode)
{
    for (; s && *s; s++) {
        if (q->n + 4 > q->cap) {
            size_t nc = q->cap ? q->cap * 2 : 256;
            char *g = realloc(q->p, nc);
            if (!g) {
                q->oom = 1;
                return;
            }
            q->p = g;
            q->cap = nc;
        }
        unsigned char c = (unsigned char)*s;
        if (!encode || (c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') ||
            c == '-' || c == '.' || c == '_' || c == '~')
            q->p[q->n++] = (char)c;
        else
            q->n += (size_t)sprintf(q->p + q->n, "%%%02X", c);
    }
}

static enum MHD_Result qarg(void *cls, enum MHD_ValueKind kind, const char *key, const char *value)
{
    (void)kind;
    struct qbuild *q = cls;
    if (q->n)
        qput(q, "&", false);
    qput(q, key, true);
    qput(q, "=", false);
    qput(q, value ? value : "", true);
    return MHD_YES;
}

const char *srv_query(struct srv_req *r)
{
    if (!r->query) {
        struct qbuild q = {0};
        MHD_get_connection_values(r->c, MHD_GET_ARGUMENT_KIND, qarg, &q);
        qput(&q, "", false);
        if (q.oom || !q.p) {
            free(q.p);
            return "";
        }
        q.p[q.n] = '\0';
        r->query = q.p;
    }
    return r->query;
}

void srv_add_header(struct srv_req *r, const char *name, const char *value)
{
    if (r->nhdr == 8 || r->answered)
        return;
    char *n = strdup(name), *v = strdup(value);
    if (!n || !v) {
        free(n);
        free(v);
        return;
    }
    r->hdr[r->nhdr][0] = n;
    r->hdr[r->nhdr++][1] = v;
}

void srv_respond(struct srv_req *r, int status, const char *content_type, const char *body)
{
    if (r->answered)
        return;
    r->answered = true;
    r->status = status;
    r->resp = MHD_create_response_from_buffer(strlen(body), (void *)body, MHD_RESPMEM_MUST_COPY);
    if (r->resp) {
        MHD_add_response_header(r->resp, "Content-Type", content_type);
        MHD_add_response_header(r->resp, "Cache-Control", "no-store");
        MHD_add_response_header(r->resp, "X-Content-Type-Options", "nosniff");
        for (int i = 0; i < r->nhdr; i++)
            MHD_add_response_header(r->resp, r->hdr[i][0], r->hdr[i][1]);
    }
    if (r->suspended) {
        r->suspended = false;
        unwait(r);
        MHD_resume_connection(r->c);
        server_kick(r->s);
    }
}

static void refuse(struct srv_req *r, int status, const char *code, const char *msg)
{
    if (r->s->on_error) {
        r->s->on_error(r, status, code, msg);
        if (r->answered)
            return;
    }
    char body[300];
    snprintf(body, sizeof body, "%s\n", msg);
    srv_respond(r, status, "text/plain", body);
}

void server_on_error(struct server *s, srv_error_fn fn)
{
    s->on_error = fn;
}

int srv_peer_uid(const struct srv_req *r, unsigned *uid)
{
    if (!r->s->unix_path[0])
        return -1;
    const union MHD_ConnectionInfo *ci =
        MHD_get_connection_info(r->c, MHD_CONNECTION_INFO_CONNECTION_FD);
    struct ucred cr;
    socklen_t n = sizeof cr;
    if (!ci || getsockopt(ci->connect_fd, SOL_SOCKET, SO_PEERCRED, &cr, &n) != 0 || n != sizeof cr)
        return -1;
    *uid = cr.uid;
    return 0;
}

static bool path_matches(const char *route, const char *path)
{
    size_t n = strlen(route);
    if (n > 3 && strcmp(route + n - 3, "/**") == 0) /* everything under "/api/v1/" */
        return strncmp(route, path, n - 2) == 0;
    if (n > 2 && route[n - 1] == '*' && route[n - 2] == '/') /* a prefix: "/media/<name>" */
        return strncmp(route, path, n - 1) == 0 && path[n - 1] && !strchr(path + n - 1, '/');
    return strcmp(route, path) == 0; /* exact, a trailing '/' included */
}

int srv_respond_fd(struct srv_req *r, int status, const char *content_type, int fd, uint64_t size,
                   srv_done_fn done, void *ud)
{
    if (r->answered) {
        close(fd);
        return TIKD_EINVAL;
    }
    struct MHD_Response *resp = MHD_create_response_from_fd64(size, fd);
    if (!resp) {
        close(fd);
        srv_respond(r, 500, "text/plain", "out of memory\n");
        return TIKD_ENOMEM;
    }
    r->answered = true;
    r->status = status;
    r->resp = resp;
    r->done = done;
    r->done_ud = ud;
    MHD_add_response_header(resp, "Content-Type", content_type);
    MHD_add_response_header(resp, "Cache-Control", "no-store");
    MHD_add_response_header(resp, "X-Content-Type-Options", "nosniff");
    if (r->suspended) {
        r->suspended = false;
        unwait(r);
        MHD_resume_connection(r->c);
        server_kick(r->s);
    }
    return 0;
}

/* ---- streamed answers -------------------------------------------------------- */

/* MHD asks for the next bytes: what is buffered, or nothing yet (the
 * connection is parked until a write), or the end. What is buffered goes
 * once what it reports is durable (the gate); when that fails it waits,
 * parked, for the next write (a ping at the latest), or is dropped at the
 * end. */
static ssize_t stream_read(void *cls, uint64_t pos, char *out, size_t max)
{
    (void)pos;
    struct srv_stream *st = cls;
    bool durable = st->len > st->off && (!st->s->gate || st->s->gate(st->s->gate_ud) == 0);
    if (durable) {
        size_t n = st->len - st->off < max ? st->len - st->off : max;
        memcpy(out, st->buf + st->off, n);
        st->off += n;
        if (st->off == st->len)
            st->off = st->len = 0;
        return (ssize_t)n;
    }
    if (st->ended) /* what could not be made durable is not told */
        return MHD_CONTENT_READER_END_OF_STREAM;
    st->suspended = true;
    MHD_suspend_connection(st->c);
    return 0;
}

static void stream_free(void *cls)
{
    struct srv_stream *st = cls;
    if (st->prev)
        st->prev->next = st->next;
    else
        st->s->streams = st->next;
    if (st->next)
        st->next->prev = st->prev;
    srv_closed_fn closed = st->closed;
    void *ud = st->ud;
    free(st->buf);
    free(st);
    if (closed)
        closed(ud);
}

static void stream_wake(struct srv_stream *st)
{
    if (st->suspended) {
        st->suspended = false;
        MHD_resume_connection(st->c);
        server_kick(st->s);
    }
}

struct srv_stream *srv_stream_start(struct srv_req *r, const char *content_type, size_t max_buffer,
                                    srv_closed_fn closed, void *ud)
{
    if (r->answered)
        return NULL;
    struct srv_stream *st = calloc(1, sizeof *st);
    if (!st)
        return NULL;
    st->s = r->s;
    st->c = r->c;
    st->max = max_buffer;
    st->closed = closed;
    st->ud = ud;
    struct MHD_Response *resp =
        MHD_create_response_from_callback(MHD_SIZE_UNKNOWN, 4096, stream_read, st, stream_free);
    if (!resp) {
        free(st);
        return NULL;
    }
    MHD_add_response_header(resp, "Content-Type", content_type);
    MHD_add_response_header(resp, "Cache-Control", "no-store");
    MHD_add_response_header(resp, "X-Content-Type-Options", "nosniff");
    MHD_add_response_header(resp, "X-Accel-Buffering", "no"); /* a proxy must not hold it */
    st->next = r->s->streams;
    if (r->s->streams)
        r->s->streams->prev = st;
    r->s->streams = st;
    r->answered = true;
    r->status = 200;
    r->resp = resp;
    if (r->suspended) {
        r->suspended = false;
        unwait(r);
        MHD_resume_connection(r->c);
        server_kick(r->s);
    }
    return st;
}

int srv_stream_write(struct srv_stream *st, const char *p, size_t n)
{
    if (st->ended)
        return TIKD_EINVAL;
    if (st->len - st->off + n > st->max) {
        TLOG(TLOG_WARN, "server.stream_behind", LINT("buffered", (long long)(st->len - st->off)),
             LINT("max", (long long)st->max));
        srv_stream_end(st);
        return TIKD_EFULL;
    }
    if (st->off && st->len + n > st->cap) { /* slide what is left to the front */
        memmove(st->buf, st->buf + st->off, st->len - st->off);
        st->len -= st->off;
        st->off = 0;
    }
    if (st->len + n > st->cap) {
        size_t nc = st->cap ? st->cap : 4096;
        while (nc < st->len + n)
            nc *= 2;
        char *g = realloc(st->buf, nc);
        if (!g) {
            srv_stream_end(st);
            return TIKD_ENOMEM;
        }
        st->buf = g;
        st->cap = nc;
    }
    memcpy(st->buf + st->len, p, n);
    st->len += n;
    stream_wake(st);
    return 0;
}

void srv_stream_end(struct srv_stream *st)
{
    st->ended = true;
    stream_wake(st);
}

static const struct route *find_route(struct server *s, const char *method, const char *path,
                                      bool *path_known)
{
    *path_known = false;
    for (int i = 0; i < s->nroutes; i++) {
        if (!path_matches(s->routes[i].path, path))
            continue;
        *path_known = true;
        if (strcmp(s->routes[i].method, method) == 0 || strcmp(s->routes[i].method, "*") == 0)
            return &s->routes[i];
    }
    return NULL;
}

void server_set_gate(struct server *s, int (*sync)(void *ud), void *ud)
{
    s->gate = sync;
    s->gate_ud = ud;
}

static enum MHD_Result queue(struct srv_req *r)
{
    if (r->resp && r->s->gate && r->s->gate(r->s->gate_ud) != 0) {
        /* what the answer reports was not recorded: say so instead */
        static const char msg[] = "the database refused the write; try again later\n";
        MHD_destroy_response(r->resp);
        r->status = 503;
        r->resp =
            MHD_create_response_from_buffer(sizeof msg - 1, (void *)msg, MHD_RESPMEM_PERSISTENT);
        if (r->resp)
            MHD_add_response_header(r->resp, "Content-Type", "text/plain");
    }
    enum MHD_Result ok = r->resp ? MHD_queue_response(r->c, (unsigned)r->status, r->resp) : MHD_NO;
    if (r->resp)
        MHD_destroy_response(r->resp);
    r->resp = NULL;
    return ok;
}

static enum MHD_Result on_request(void *cls, struct MHD_Connection *c, const char *url,
                                  const char *method, const char *version, const char *upload_data,
                                  size_t *upload_size, void **con_cls)
{
    (void)version;
    struct server *s = cls;
    struct srv_req *r = *con_cls;
    if (!r) {
        r = calloc(1, sizeof *r);
        if (!r)
            return MHD_NO;
        r->s = s;
        r->c = c;
        snprintf(r->method, sizeof r->method, "%s", method);
        snprintf(r->path, sizeof r->path, "%s", url);
        *con_cls = r;
        return MHD_YES;
    }
    if (*upload_size) { /* body bytes arrive in pieces */
        if (!r->too_big && r->body_len + *upload_size <= s->max_body) {
            char *g = realloc(r->body, r->body_len + *upload_size + 1);
            if (g) {
                r->body = g;
                memcpy(r->body + r->body_len, upload_data, *upload_size);
                r->body_len += *upload_size;
                r->body[r->body_len] = '\0';
            } else {
                r->too_big = true;
            }
        } else {
            r->too_big = true;
        }
        *upload_size = 0;
        return MHD_YES;
    }
    if (r->answered)
        return queue(r); /* resumed after an async answer */
    if (r->dispatched)
        return MHD_YES;
    r->dispatched = true;
    struct conn *k = conn_of(c);
    if (k)
        k->awaiting = false; /* all of it is here: the deadline is the handler's now */
    if (r->too_big) {
        refuse(r, 413, "payload_too_large", "request body too large");
        return queue(r);
    }
    bool known;
    const struct route *rt = find_route(s, r->method, r->path, &known);
    if (!rt) {
        if (known)
            refuse(r, 405, "method_not_allowed", "method not allowed");
        else
            refuse(r, 404, "not_found", "not found");
        return queue(r);
    }
    rt->fn(rt->ud, r);
    if (r->answered)
        return queue(r);
    r->suspended = true;
    r->wnext = s->waiting;
    if (s->waiting)
        s->waiting->wprev = r;
    s->waiting = r;
    MHD_suspend_connection(c);
    return MHD_YES;
}

static void on_completed(void *cls, struct MHD_Connection *c, void **con_cls,
                         enum MHD_RequestTerminationCode toe)
{
    (void)cls;
    (void)c;
    struct srv_req *r = *con_cls;
    struct conn *k = conn_of(c);
    if (k) { /* a kept-alive connection: the next request has its own deadline */
        k->awaiting = true;
        k->since = ev_now(((struct server *)cls)->loop);
    }
    if (!r)
        return;
    if (r->done)
        r->done(r->done_ud, toe == MHD_REQUEST_TERMINATED_COMPLETED_OK);
    if (r->resp)
        MHD_destroy_response(r->resp);
    free(r->body);
    free(r->query);
    for (int i = 0; i < r->nhdr; i++) {
        free(r->hdr[i][0]);
        free(r->hdr[i][1]);
    }
    free(r);
    *con_cls = NULL;
}

/* ---- lifecycle ----------------------------------------------------------------- */

/* A path already there is replaced only when it is a socket nobody listens
 * on (left by a daemon that died): never a file, never a live socket. */
static int claim_unix_path(const struct sockaddr_un *sa, struct tikd_err *e)
{
    struct stat st;
    if (lstat(sa->sun_path, &st) != 0)
        return errno == ENOENT
                   ? 0
                   : tikd_fail(e, TIKD_EIO, "server: %s: %s", sa->sun_path, strerror(errno));
    if (!S_ISSOCK(st.st_mode))
        return tikd_fail(e, TIKD_EEXIST, "server: %s exists and is not a socket", sa->sun_path);
    int probe = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0);
    if (probe < 0)
        return tikd_fail(e, TIKD_EIO, "server: socket: %s", strerror(errno));
    bool live = connect(probe, (const struct sockaddr *)sa, sizeof *sa) == 0 ||
                (errno != ECONNREFUSED && errno != ENOENT);
    close(probe);
    if (live)
        return tikd_fail(e, TIKD_EEXIST, "server: %s is in use by another process", sa->sun_path);
    unlink(sa->sun_path);
    return 0;
}

static int bind_listen(struct server *s, const char *addr, struct tikd_err *e)
{
    int fd;
    if (strncmp(addr, "unix:", 5) == 0) {
        struct sockaddr_un sa = {.sun_family = AF_UNIX};
        if (strlen(addr + 5) >= sizeof sa.sun_path)
            return tikd_fail(e, TIKD_EINVAL, "server: %s: the path is too long", addr);
        snprintf(sa.sun_path, sizeof sa.sun_path, "%s", addr + 5);
        int rc = claim_unix_path(&sa, e);
        if (rc != 0)
            return rc;
        fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
        struct stat st;
        /* the mode is set before it listens: nobody connects in between */
        if (fd < 0 || bind(fd, (struct sockaddr *)&sa, sizeof sa) != 0 ||
            (s->lim.unix_mode && chmod(sa.sun_path, s->lim.unix_mode) != 0) ||
            listen(fd, 64) != 0 || lstat(sa.sun_path, &st) != 0) {
            int err = errno;
            if (fd >= 0)
                close(fd);
            return tikd_fail(e, TIKD_EIO, "server: cannot listen on %s: %s", addr, strerror(err));
        }
        snprintf(s->unix_path, sizeof s->unix_path, "%s", sa.sun_path);
        s->unix_dev = st.st_dev;
        s->unix_ino = st.st_ino;
        s->port = 0;
        return fd;
    }
    char host[256];
    snprintf(host, sizeof host, "%s", addr);
    char *colon = strrchr(host, ':');
    if (!colon)
        return tikd_fail(e, TIKD_EINVAL, "server: bad listen address %s", addr);
    *colon = '\0';
    const char *h = host;
    if (h[0] == '[') { /* [::1]:8787 */
        h++;
        host[strlen(host) - 1] = '\0';
    }
    struct addrinfo hints = {.ai_socktype = SOCK_STREAM, .ai_flags = AI_PASSIVE | AI_NUMERICSERV};
    struct addrinfo *ai;
    int gai = getaddrinfo(h, colon + 1, &hints, &ai);
    if (gai != 0)
        return tikd_fail(e, TIKD_EINVAL, "server: cannot resolve %s: %s", addr, gai_strerror(gai));
    fd = socket(ai->ai_family, SOCK_STREAM | SOCK_CLOEXEC, 0);
    int one = 1;
    if (fd >= 0)
        setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
    if (fd < 0 || bind(fd, ai->ai_addr, ai->ai_addrlen) != 0 || listen(fd, 128) != 0) {
        int err = errno;
        freeaddrinfo(ai);
        if (fd >= 0)
            close(fd);
        return tikd_fail(e, TIKD_EIO, "server: cannot listen on %s: %s", addr, strerror(err));
    }
    freeaddrinfo(ai);
    struct sockaddr_storage ss;
    socklen_t sl = sizeof ss;
    getsockname(fd, (struct sockaddr *)&ss, &sl);
    s->port = ntohs(ss.ss_family == AF_INET6 ? ((struct sockaddr_in6 *)&ss)->sin6_port
                                             : ((struct sockaddr_in *)&ss)->sin_port);
    return fd;
}

int server_new(struct server **out, struct ev_loop *loop, const char *listen_addr,
               const struct srv_limits *lim, struct tikd_err *e)
{
    *out = NULL;
    struct server *s = calloc(1, sizeof *s);
    if (!s)
        return tikd_fail(e, TIKD_ENOMEM, "server: out of memory");
    s->loop = loop;
    s->lim = lim ? *lim : (struct srv_limits)SRV_LIMITS_DEFAULT;
    s->max_body = s->lim.max_body ? s->lim.max_body : MAX_BODY;
    s->lfd = bind_listen(s, listen_addr, e);
    if (s->lfd < 0) {
        free(s);
        return e ? e->code : TIKD_EIO;
    }
    s->d = MHD_start_daemon(MHD_USE_EPOLL | MHD_ALLOW_SUSPEND_RESUME, 0, NULL, NULL, on_request, s,
                            MHD_OPTION_LISTEN_SOCKET, s->lfd, MHD_OPTION_NOTIFY_COMPLETED,
                            on_completed, s, MHD_OPTION_NOTIFY_CONNECTION, on_connection, s,
                            MHD_OPTION_CONNECTION_TIMEOUT,
                            (unsigned)(s->lim.idle_timeout < 1 ? 1 : s->lim.idle_timeout + 0.5),
                            MHD_OPTION_CONNECTION_LIMIT, s->lim.max_connections,
                            MHD_OPTION_PER_IP_CONNECTION_LIMIT, s->lim.max_per_ip, MHD_OPTION_END);
    const union MHD_DaemonInfo *di =
        s->d ? MHD_get_daemon_info(s->d, MHD_DAEMON_INFO_EPOLL_FD) : NULL;
    if (!di) {
        if (s->d)
            MHD_stop_daemon(s->d);
        close(s->lfd);
        free(s);
        return tikd_fail(e, TIKD_EIO, "server: libmicrohttpd failed to start on %s", listen_addr);
    }
    ev_io_init(&s->io, on_io, di->epoll_fd, EV_READ);
    s->io.data = s;
    ev_io_start(loop, &s->io);
    ev_init(&s->timer, on_timer);
    s->timer.data = s;
    ev_init(&s->kick, on_timer);
    s->kick.data = s;
    double every = s->lim.request_timeout / 4 < 1 ? s->lim.request_timeout / 4 : 1;
    ev_timer_init(&s->sweep, on_sweep, every, every);
    s->sweep.data = s;
    ev_timer_start(loop, &s->sweep);
    ev_unref(loop); /* the sweep alone must not keep the loop running */
    TLOG(TLOG_INFO, "server.listening", LSTR("addr", listen_addr), LINT("port", s->port));
    *out = s;
    return 0;
}

void server_free(struct server *s)
{
    if (!s)
        return;
    while (s->waiting) /* answer what waits, so no connection stays suspended */
        refuse(s->waiting, 503, "shutting_down", "tikd is shutting down");
    for (struct srv_stream *st = s->streams; st; st = st->next)
        srv_stream_end(st); /* parked streams resume, to end */
    MHD_run(s->d);
    ev_io_stop(s->loop, &s->io);
    ev_timer_stop(s->loop, &s->timer);
    ev_timer_stop(s->loop, &s->kick);
    ev_ref(s->loop);
    ev_timer_stop(s->loop, &s->sweep);
    MHD_stop_daemon(s->d);
    close(s->lfd);
    struct stat st; /* someone may have put another file there since */
    if (s->unix_path[0] && lstat(s->unix_path, &st) == 0 && st.st_dev == s->unix_dev &&
        st.st_ino == s->unix_ino)
        unlink(s->unix_path);
    free(s);
}

int server_port(const struct server *s)
{
    return s->port;
}

int server_route(struct server *s, const char *method, const char *path, srv_handler fn, void *ud)
{
    if (s->nroutes == MAX_ROUTES)
        return TIKD_EFULL;
    struct route *r = &s->routes[s->nroutes++];
    snprintf(r->method, sizeof r->method, "%s", method);
    snprintf(r->path, sizeof r->path, "%s", path);
    r->fn = fn;
    r->ud = ud;
    return 0;
}
