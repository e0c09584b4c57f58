/* api.c - the admin API (see api.h).
 *
 * One handler takes every path under /api/v1/ and finds its resource in a
 * table: method, path pattern ("{x}" is one segment), the least role that
 * may call it, the function. Who is calling is settled first, then the
 * request's shape (method, Content-Type, size, origin), then the resource
 * runs. Reads are one LMDB read transaction; changes one write transaction
 * with their audit record, through the same functions the CLI uses
 * (core/post post_change, core/admin). */
#include "api.h"
#include "child.h"
#include "embedded.h"
#include "views.h"

#include <ev.h>
#include <limits.h>
#include <time.h>
#include <jansson.h>
#include <openssl/crypto.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/wait.h>
#include <unistd.h>

#include "../core/account.h"
#include "../core/admin.h"
#include "../core/audit.h"
#include "../core/clock.h"
#include "../core/config.h"
#include "../core/http.h"
#include "../core/job.h"
#include "../core/log.h"
#include "../core/media.h"
#include "../core/metrics.h"
#include "../core/oauth.h"
#include "../core/post.h"
#include "../core/ratelimit.h"
#include "../core/slots.h"
#include "../core/server.h"
#include "../core/tiktok.h"

#define API_MAX_BODY (64 * 1024)
#define MAX_SERVERS  8
#define TOUCH_EVERY  60.0 /* seconds between last-use writes of one token */
#define PAGE_DEFAULT 100
#define PAGE_MAX     1000

#define RING       512          /* events kept for a client that reconnects */
#define STREAM_MAX (256 * 1024) /* bytes a stream's client may lag behind */
#define TAIL_EVERY 0.25         /* seconds between looks at the audit log's end */
#define PING_EVERY 15.0         /* a comment line keeps proxies from closing the stream */

/* One event of the stream, as its client gets it. */
struct event {
    uint64_t id;
    char *frame; /* "id: N\nevent: TYPE\ndata: JSON\n\n" */
    size_t len;
    char account[65];
    uint64_t job;
    char tenant[33]; /* whose it is: its account's tenant ("": none's, or the daemon's) */
};

/* A client of the stream and what it asked to see. */
struct sub {
    struct api *a;
    struct srv_stream *st;
    char account[65];
    uint64_t job;
    char token[65];  /* its token's hash, checked again as it runs ("": the socket's peer) */
    char tenant[33]; /* a tenant's token: only its tenant's events */
    bool ended;
    struct sub *prev, *next;
};

#define STREAMS_MAX       64 /* open streams, all clients */
#define STREAMS_PER_TOKEN 8

struct planning; /* a POST /api/v1/posts waiting for its video's hash or probe */

struct plan_run; /* a GET /api/v1/plan: `tikd plan` running as a child */

struct api {
    struct plan_run *plan_runs;
    uint64_t first_id;   /* ids of this run start after it (its start, in microseconds): an id
                          * from an earlier run is never taken for one of this run's */
    uint64_t quiet_from; /* events after this id were not kept (nobody listened) */
    struct planning *plans;
    struct api_deps d;
    struct ev_loop *loop;
    struct server *servers[MAX_SERVERS];
    size_t n;
    int port;
    struct event ring[RING];
    uint64_t last_id;   /* of the newest event */
    uint64_t audit_seq; /* the audit log read up to here */
    struct sub *subs;
    ev_timer tail, ping;
};

/* One call: who, what, and the pieces of its path. */
struct call {
    struct api *a;
    struct srv_req *r;
    enum admin_role role;
    char actor[96];   /* "token:NAME", "unix:uid=N" */
    char tenant[33];  /* a tenant's token: it sees only its tenant's accounts and jobs */
    char token[65];   /* the token's hash ("": the socket's peer) */
    double last_used; /* the token's, as looked up */
    const char *seg[8];
    char segbuf[512];
    int nseg;
    const char *arg[2]; /* the "{x}" segments, in order */
    json_t *body;       /* the request's JSON (an object), or NULL */
};

/* ---- answers --------------------------------------------------------------------------- */

static void count_answer(int status)
{
    char lb[32], code[8];
    snprintf(code, sizeof code, "%d", status);
    metrics_inc("tikd_api_requests_total", metrics_labels(lb, sizeof lb, "code", code, NULL), 1);
}

static void answer(struct srv_req *r, int status, json_t *o)
{
    count_answer(status);
    char *s = o ? json_dumps(o, JSON_COMPACT | JSON_REAL_PRECISION(17)) : NULL;
    json_decref(o);
    if (!s) {
        srv_respond(r, 500, "application/json",
                    "{\"error\":{\"code\":\"internal\",\"message\":\"out of memory\"}}");
        return;
    }
    srv_respond(r, status, "application/json", s);
    free(s);
}

static void fail(struct srv_req *r, int status, const char *code, const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));

static void fail(struct srv_req *r, int status, const char *code, const char *fmt, ...)
{
    char msg[600];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof msg, fmt, ap);
    va_end(ap);
    json_t *m = json_string(msg);
    answer(r, status,
           json_pack("{s:{s:s, s:o}}", "error", "code", code, "message",
                     m ? m : json_string("(not UTF-8)")));
}

/* The server's own refusals (404, 405, 413, shutdown) in the API's shape. */
static void server_refused(struct srv_req *r, int status, const char *code, const char *msg)
{
    fail(r, status, code, "%s", msg);
}

/* A store failure: the change did not happen. */
static void store_failed(struct call *c, int rc, const struct tikd_err *e)
{
    if (rc == TIKD_ENOSPACE)
        fail(c->r, 503, "store_full", "nothing changed: %s", e->msg);
    else
        fail(c->r, 500, "store", "nothing changed: %s", e->msg[0] ? e->msg : tikd_strerror(rc));
}

/* ---- the request's parts ----------------------------------------------------------------- */

/* The value of query argument name (decoded by the server), or NULL. */
static const char *query(struct call *c, const char *name, char *buf, size_t n)
{
    const char *v = srv_arg(c->r, name);
    if (!v)
        return NULL;
    snprintf(buf, n, "%s", v);
    return buf;
}

/* A whole number from a query argument: def when absent, -1 when bad. */
static long long query_count(struct call *c, const char *name, long long def, long long max)
{
    char buf[32];
    const char *v = query(c, name, buf, sizeof buf);
    if (!v)
        return def;
    if (!*v || strspn(v, "0123456789") != strlen(v) || strlen(v) > 18)
        return -1;
    long long n = strtoll(v, NULL, 10);
    return n > max ? max : n;
}

/* ---- resources --------------------------------------------------------------------------- */

static int status_txn(struct store_txn *t, void *ctx)
{
    static const char key[] = "daemon.status";
    struct store_val v;
    json_t **out = ctx;
    if (store_get(t, STORE_DB_META, key, sizeof key - 1, &v) == 0)
        *out = json_loadb(v.p, v.n, 0, NULL);
    return 0;
}

static json_t *daemon_status(struct api *a)
{
    json_t *st = NULL;
    store_read(a->d.store, status_txn, &st, NULL);
    return st ? st : json_object();
}

static void get_health(struct call *c)
{
    const char *trouble = c->a->d.trouble(c->a->d.ud);
    answer(c->r, trouble ? 503 : 200,
           json_pack("{s:b, s:o, s:i}", "ok", !trouble, "trouble",
                     trouble ? json_string(trouble) : json_null(), "live_gen",
                     (int)c->a->d.live_gen(c->a->d.ud)));
}

static int visible_account(struct store_txn *t, const char *name, const char *tenant);
static const char *scope(const struct call *c);

struct sched_list {
    struct store_txn *t;
    double now;
    json_t *arr;
    struct api *a;
    const char *tenant;
};

static int sched_one(const struct schedule *s, void *ctx)
{
    struct sched_list *x = ctx;
    double slot = 0, due = 0;
    struct tikd_err e = {0};
    if (x->tenant && visible_account(x->t, s->account, x->tenant) != 0)
        return 0;
    bool free_slot = slots_next_free(x->t, s, x->now, &slot, &due, &e) == 0;
    return json_array_append_new(
        x->arr, json_pack("{s:s, s:s, s:s, s:i, s:i, s:i, s:f, s:o, s:o}", "name", s->name,
                          "account", s->account, "tz", s->tz[0] ? s->tz : "UTC", "slots", s->nslots,
                          "blackouts", s->nblackout, "daily_max", s->daily_max, "spacing_s",
                          s->spacing, "next_free", free_slot ? view_time(slot) : json_null(),
                          "why_none", free_slot ? json_null() : json_string(e.msg)));
}

static int sched_txn(struct store_txn *t, void *ctx)
{
    struct sched_list *x = ctx;
    x->t = t;
    return x->a->d.schedules ? x->a->d.schedules(x->a->d.ud, sched_one, x) : 0;
}

/* Ready to work: rules live and the store taking writes (a monitor or a
 * load balancer asks; health says only whether the store takes writes). */
static void get_ready(struct call *c)
{
    unsigned gen = c->a->d.live_gen(c->a->d.ud);
    const char *trouble = c->a->d.trouble(c->a->d.ud);
    bool ready = gen > 0 && !trouble;
    answer(c->r, ready ? 200 : 503,
           json_pack("{s:b, s:i, s:o}", "ready", ready, "live_gen", (int)gen, "why",
                     ready     ? json_null()
                     : trouble ? json_string(trouble)
                               : json_string("no rule generation is live yet")));
}

/* The live rules' schedules, each with its next free slot (the booked
 * ones are the queue's jobs: the calendar). */
static void get_schedules(struct call *c)
{
    struct sched_list x = {.now = clock_now(), .arr = json_array(), .a = c->a, .tenant = scope(c)};
    struct tikd_err e = {0};
    int rc = store_read(c->a->d.store, sched_txn, &x, &e);
    if (rc != 0) {
        json_decref(x.arr);
        store_failed(c, rc, &e);
        return;
    }
    answer(c->r, 200, json_pack("{s:o}", "schedules", x.arr));
}

static void get_rules(struct call *c)
{
    json_t *st = daemon_status(c->a);
    json_t *files = json_object_get(st, "rules"), *last = json_object_get(st, "last_reload");
    json_t *o = json_pack("{s:i, s:o, s:o}", "live_gen", (int)c->a->d.live_gen(c->a->d.ud), "files",
                          files ? json_incref(files) : json_array(), "last_reload",
                          last ? json_incref(last) : json_null());
    json_decref(st);
    answer(c->r, 200, o);
}

static int status_view_txn(struct store_txn *t, void *ctx)
{
    return view_status(t, ctx);
}

static void get_status(struct call *c)
{
    json_t *st = NULL;
    struct tikd_err e = {0};
    int rc = store_read(c->a->d.store, status_view_txn, &st, &e);
    if (rc != 0) {
        store_failed(c, rc, &e);
        return;
    }
    json_object_set_new(st, "running", json_true());
    json_object_set_new(st, "pid", json_integer(getpid()));
    json_object_set_new(st, "live_gen", json_integer(c->a->d.live_gen(c->a->d.ud)));
    answer(c->r, 200, st);
}

/* The zone the live rules declare for it (tikd.account's tz; "UTC" when
 * none): the dashboard's calendar shows the account's days in it. */
static void add_tz(struct api *a, json_t *o)
{
    const char *name = json_string_value(json_object_get(o, "name"));
    const char *tz = name && a->d.account_tz ? a->d.account_tz(a->d.ud, name) : NULL;
    json_object_set_new(o, "tz", json_string(tz ? tz : "UTC"));
}

/* The tenant a call acts within (NULL: the whole daemon's). */
static const char *scope(const struct call *c)
{
    return c->tenant[0] ? c->tenant : NULL;
}

struct list_accounts {
    struct api *a;
    json_t *arr;
    const char *tenant;
};

static int list_account(const struct account *acct, void *ctx)
{
    struct list_accounts *x = ctx;
    if (!account_in_tenant(acct, x->tenant))
        return 0;
    json_t *o = view_account(acct);
    add_tz(x->a, o);
    return json_array_append_new(x->arr, o);
}

static int accounts_txn(struct store_txn *t, void *ctx)
{
    return account_foreach(t, list_account, ctx);
}

static void get_accounts(struct call *c)
{
    json_t *arr = json_array();
    struct list_accounts x = {c->a, arr, scope(c)};
    struct tikd_err e = {0};
    int rc = store_read(c->a->d.store, accounts_txn, &x, &e);
    if (rc != 0) {
        json_decref(arr);
        store_failed(c, rc, &e);
        return;
    }
    answer(c->r, 200, json_pack("{s:o}", "accounts", arr));
}

struct one_account {
    const char *name, *tenant;
    json_t *out;
};

/* Another tenant's account is one that does not exist. */
static int visible_account(struct store_txn *t, const char *name, const char *tenant)
{
    struct account a;
    int rc = account_get(t, name, &a);
    return rc == 0 && !account_in_tenant(&a, tenant) ? TIKD_ENOTFOUND : rc;
}

static int account_txn(struct store_txn *t, void *ctx)
{
    struct one_account *x = ctx;
    int rc = visible_account(t, x->name, x->tenant);
    return rc ? rc : view_account_full(t, x->name, &x->out);
}

static void get_account(struct call *c)
{
    struct one_account x = {.name = c->arg[0], .tenant = scope(c)};
    struct tikd_err e = {0};
    int rc = store_read(c->a->d.store, account_txn, &x, &e);
    if (rc == TIKD_ENOTFOUND)
        fail(c->r, 404, "not_found", "no account %.80s", c->arg[0]);
    else if (rc != 0)
        store_failed(c, rc, &e);
    else {
        add_tz(c->a, x.out);
        answer(c->r, 200, x.out);
    }
}

struct exists {
    const char *name, *tenant;
};

static int exists_txn(struct store_txn *t, void *ctx)
{
    struct exists *x = ctx;
    return visible_account(t, x->name, x->tenant);
}

/* The authorize URL that connects (or reconnects) the account: the
 * operator opens it in a browser signed in to the TikTok account; TikTok
 * sends that browser to the callback on the public listener. */
static void post_connect(struct call *c)
{
    const char *name = c->arg[0];
    if (!account_name_valid(name)) {
        fail(c->r, 400, "bad_request", "'%.80s' is not an account name: 1-64 of A-Z a-z 0-9 . _ -",
             name);
        return;
    }
    if (!c->a->d.oauth) {
        fail(c->r, 503, "unavailable", "no OAuth client in this daemon");
        return;
    }
    struct tikd_err e = {0};
    struct exists ex = {name, scope(c)};
    int rc = store_read(c->a->d.store, exists_txn, &ex, &e);
    if (rc != 0 && rc != TIKD_ENOTFOUND) {
        store_failed(c, rc, &e);
        return;
    }
    char *url = NULL;
    bool reauth = rc == 0;
    rc = oauth_begin_as(c->a->d.oauth, name, NULL, reauth, c->actor, scope(c), &url, &e);
    if (rc != 0) {
        fail(c->r,
             rc == TIKD_EINVAL   ? 400
             : rc == TIKD_EEXIST ? 409
                                 : 500,
             rc == TIKD_EINVAL   ? "bad_request"
             : rc == TIKD_EEXIST ? "conflict"
                                 : "internal",
             "%s", e.msg);
        return;
    }
    TLOG(TLOG_INFO, "api.connect", LSTR("account", name), LBOOL("reauth", reauth),
         LSTR("by", c->actor));
    answer(c->r, 200,
           json_pack("{s:s, s:s, s:b, s:f}", "account", name, "authorize_url", url, "reauth",
                     reauth, "valid_s", c->a->d.cfg->oauth_state_ttl));
    free(url);
}

struct list_jobs {
    const char *account, *tenant;
    int state; /* -1: any that is not final (all: any) */
    bool all;
    double due_after, due_before; /* 0: no bound */
    uint64_t after;
    long long limit;
    json_t *jobs;
    uint64_t last;
    bool more;
};

static int list_job(const struct job *j, void *ctx)
{
    struct list_jobs *q = ctx;
    if (j->id <= q->after || (q->account && strcmp(q->account, j->account) != 0) ||
        (q->tenant && strcmp(q->tenant, j->tenant) != 0))
        return 0;
    if (q->state >= 0 ? (int)j->state != q->state : !q->all && job_state_final(j->state))
        return 0;
    if ((q->due_after && !(j->due_at >= q->due_after)) ||
        (q->due_before && !(j->due_at < q->due_before)))
        return 0;
    if ((long long)json_array_size(q->jobs) == q->limit) {
        q->more = true;
        return 1;
    }
    q->last = j->id;
    return json_array_append_new(q->jobs, view_job(j, 0));
}

static int jobs_txn(struct store_txn *t, void *ctx)
{
    struct list_jobs *q = ctx;
    int rc = q->account ? job_foreach_account(t, q->account, list_job, q)
                        : job_foreach_all(t, list_job, NULL, q);
    return rc < 0 ? rc : 0;
}

static void get_jobs(struct call *c)
{
    char acct[80], state[40], all[8];
    struct list_jobs q = {
        .account = query(c, "account", acct, sizeof acct), .tenant = scope(c), .state = -1};
    const char *st = query(c, "state", state, sizeof state);
    const char *al = query(c, "all", all, sizeof all);
    long long after = query_count(c, "after", 0, (long long)1 << 60);
    q.limit = query_count(c, "limit", PAGE_DEFAULT, PAGE_MAX);
    if (st && (q.state = job_state_parse(st)) < 0) {
        fail(c->r, 400, "bad_request", "no job state '%.40s'", st);
        return;
    }
    if (after < 0 || q.limit <= 0 || (al && strcmp(al, "1") != 0 && strcmp(al, "true") != 0)) {
        fail(c->r, 400, "bad_request",
             "after and limit are whole numbers (limit 1-%d), all is 1 or true", PAGE_MAX);
        return;
    }
    q.all = al != NULL;
    q.after = (uint64_t)after;
    static const char *const bounds[] = {"due_after", "due_before"};
    double *dst[] = {&q.due_after, &q.due_before};
    for (int i = 0; i < 2; i++) {
        char tb[40];
        const char *tv = query(c, bounds[i], tb, sizeof tb);
        if (!tv)
            continue;
        if (clock_parse_utc(tv, dst[i]) != 0) {
            fail(c->r, 400, "bad_request", "%s is a time as 2026-12-01T10:00:00Z", bounds[i]);
            return;
        }
    }
    q.jobs = json_array();
    struct tikd_err e = {0};
    int rc = store_read(c->a->d.store, jobs_txn, &q, &e);
    if (rc != 0) {
        json_decref(q.jobs);
        store_failed(c, rc, &e);
        return;
    }
    answer(c->r, 200,
           json_pack("{s:o, s:o}", "jobs", q.jobs, "next_after",
                     q.more ? json_integer((json_int_t)q.last) : json_null()));
}

static bool parse_id(const char *s, uint64_t *id)
{
    if (!s || !*s || strspn(s, "0123456789") != strlen(s) || strlen(s) > 19)
        return false;
    *id = strtoull(s, NULL, 10);
    return *id > 0;
}

struct one_job {
    uint64_t id;
    const char *tenant;
    json_t *out;
};

/* Another tenant's job is one that does not exist. */
static int visible_job(struct store_txn *t, uint64_t id, const char *tenant)
{
    if (!tenant)
        return 0;
    struct job *j = malloc(sizeof *j);
    int rc = j ? job_get(t, id, j) : TIKD_ENOMEM;
    if (rc == 0 && strcmp(j->tenant, tenant) != 0)
        rc = TIKD_ENOTFOUND;
    free(j);
    return rc;
}

static int job_txn(struct store_txn *t, void *ctx)
{
    struct one_job *x = ctx;
    int rc = visible_job(t, x->id, x->tenant);
    return rc ? rc : view_job_full(t, x->id, &x->out);
}

static void get_job(struct call *c)
{
    struct one_job x = {.tenant = scope(c)};
    if (!parse_id(c->arg[0], &x.id)) {
        fail(c->r, 404, "not_found", "'%.40s' is not a job id", c->arg[0]);
        return;
    }
    struct tikd_err e = {0};
    int rc = store_read(c->a->d.store, job_txn, &x, &e);
    if (rc == TIKD_ENOTFOUND)
        fail(c->r, 404, "not_found", "no job %llu", (unsigned long long)x.id);
    else if (rc != 0)
        store_failed(c, rc, &e);
    else
        answer(c->r, 200, x.out);
}

struct change {
    uint64_t id;
    enum post_change what;
    const struct rl_config *limits;
    const char *actor, *tenant;
    const char *note;
    struct post_changed out;
};

static int change_txn(struct store_txn *t, void *ctx)
{
    struct change *ch = ctx;
    int rc = visible_job(t, ch->id, ch->tenant);
    if (rc == TIKD_ENOTFOUND)
        snprintf(ch->out.msg, sizeof ch->out.msg, "no job %llu", (unsigned long long)ch->id);
    if (rc == 0)
        rc = post_change(t, ch->limits, ch->id, ch->what, ch->actor, &ch->out);
    if (rc == 0 && ch->note && *ch->note) {
        char detail[700];
        snprintf(detail, sizeof detail, "job=%llu note=\"%.600s\"", (unsigned long long)ch->id,
                 ch->note);
        rc = audit_append(t, ch->actor, "job.note", detail);
    }
    return rc;
}

struct pull_cancel {
    char account[65], publish_id[80];
};

/* TikTok's answer to calling back a pull: logged, best effort (spec §2.8). */
static void pull_cancelled(void *ud, const struct http_resp *resp)
{
    struct pull_cancel *pc = ud;
    bool ok = resp->out.action == POL_OK;
    TLOG(ok ? TLOG_INFO : TLOG_WARN, "api.pull_cancel", LSTR("account", pc->account),
         LSTR("publish_id", pc->publish_id), LBOOL("ok", ok),
         LSTR("reason", ok ? "" : resp->out.message), LSTR("log_id", resp->out.log_id));
    free(pc);
}

static void call_back_pull(struct api *a, const struct post_changed *out)
{
    struct pull_cancel *pc = calloc(1, sizeof *pc);
    char *body = pc ? tt_body_publish_id(out->publish_id) : NULL;
    struct tt_api api = {a->d.oauth, a->d.cfg->api_url};
    struct tikd_err e = {0};
    if (pc) {
        snprintf(pc->account, sizeof pc->account, "%s", out->account);
        snprintf(pc->publish_id, sizeof pc->publish_id, "%s", out->publish_id);
    }
    if (!body || tt_send(&api, out->account, TT_CANCEL, body, pull_cancelled, pc, &e) != 0) {
        TLOG(TLOG_WARN, "api.pull_cancel", LSTR("account", out->account),
             LSTR("publish_id", out->publish_id), LBOOL("ok", false),
             LSTR("reason", e.msg[0] ? e.msg : "out of memory"));
        free(pc);
    }
    free(body);
}

static void post_job_change(struct call *c, enum post_change what)
{
    struct change ch = {
        .what = what, .limits = &c->a->d.cfg->limits, .actor = c->actor, .tenant = scope(c)};
    if (!parse_id(c->arg[0], &ch.id)) {
        fail(c->r, 404, "not_found", "'%.40s' is not a job id", c->arg[0]);
        return;
    }
    json_t *note = json_object_get(c->body, "note");
    if (note && (!json_is_string(note) || json_string_length(note) > 500)) {
        fail(c->r, 400, "bad_request", "note is a string of at most 500 bytes");
        return;
    }
    ch.note = json_string_value(note);
    struct tikd_err e = {0};
    int rc = store_write(c->a->d.store, change_txn, &ch, &e);
    if (rc == TIKD_ENOTFOUND) {
        fail(c->r, 404, "not_found", "%s", ch.out.msg[0] ? ch.out.msg : e.msg);
        return;
    }
    if (rc == TIKD_EINVAL) {
        fail(c->r, 409, "conflict", "%s", ch.out.msg[0] ? ch.out.msg : e.msg);
        return;
    }
    if (rc != 0) {
        store_failed(c, rc, &e);
        return;
    }
    TLOG(TLOG_INFO, "api.job_changed", LINT("job", (long long)ch.id), LSTR("by", c->actor),
         LSTR("message", ch.out.msg));
    c->a->d.kick(c->a->d.ud);
    if (ch.out.pulling && c->a->d.oauth)
        call_back_pull(c->a, &ch.out);
    answer(c->r, 200,
           json_pack("{s:I, s:s, s:b}", "id", (json_int_t)ch.id, "message", ch.out.msg,
                     "pull_called_back", ch.out.pulling && c->a->d.oauth));
}

static void post_approve(struct call *c)
{
    post_job_change(c, POST_APPROVE);
}
static void post_reject(struct call *c)
{
    post_job_change(c, POST_REJECT);
}
static void post_cancel(struct call *c)
{
    post_job_change(c, POST_CANCEL);
}
static void post_retry(struct call *c)
{
    post_job_change(c, POST_RETRY);
}

struct limits_read {
    const struct rl_config *rc;
    const char *tenant;
    json_t *out;
};

static int limits_txn(struct store_txn *t, void *ctx)
{
    struct limits_read *lr = ctx;
    return view_limits(t, lr->rc, clock_now(), NULL, lr->tenant, &lr->out);
}

static void get_limits(struct call *c)
{
    struct limits_read lr = {.rc = &c->a->d.cfg->limits, .tenant = scope(c)};
    struct tikd_err e = {0};
    int rc = store_read(c->a->d.store, limits_txn, &lr, &e);
    if (rc != 0)
        store_failed(c, rc, &e);
    else
        answer(c->r, 200, lr.out);
}

struct audit_page {
    uint64_t after;
    long long limit;
    json_t *records;
    uint64_t last;
    bool more;
};

static int audit_one(const struct audit_rec *r, void *ctx)
{
    struct audit_page *p = ctx;
    if (r->seq <= p->after)
        return 0;
    if ((long long)json_array_size(p->records) == p->limit) {
        p->more = true;
        return 1;
    }
    p->last = r->seq;
    return json_array_append_new(p->records, view_audit(r));
}

static int audit_txn(struct store_txn *t, void *ctx)
{
    struct audit_page *p = ctx;
    int rc = audit_foreach(t, p->after + 1, audit_one, p);
    return rc < 0 ? rc : 0;
}

static void get_audit(struct call *c)
{
    long long after = query_count(c, "after", 0, (long long)1 << 60);
    struct audit_page p = {.limit = query_count(c, "limit", PAGE_DEFAULT, PAGE_MAX)};
    if (after < 0 || p.limit <= 0) {
        fail(c->r, 400, "bad_request", "after and limit are whole numbers (limit 1-%d)", PAGE_MAX);
        return;
    }
    p.after = (uint64_t)after;
    p.records = json_array();
    struct tikd_err e = {0};
    int rc = store_read(c->a->d.store, audit_txn, &p, &e);
    if (rc != 0) {
        json_decref(p.records);
        store_failed(c, rc, &e);
        return;
    }
    answer(c->r, 200,
           json_pack("{s:o, s:o}", "records", p.records, "next_after",
                     p.more ? json_integer((json_int_t)p.last) : json_null()));
}

static void get_audit_verify(struct call *c)
{
    uint64_t n = 0;
    struct tikd_err e = {0};
    int rc = audit_verify(c->a->d.store, &n, &e);
    answer(c->r, 200,
           json_pack("{s:b, s:I, s:o}", "ok", rc == 0, "records", (json_int_t)n, "problem",
                     rc == 0 ? json_null() : json_string(e.msg)));
}

static int list_token(const struct admin_token *k, void *ctx)
{
    return json_array_append_new(ctx, view_token(k));
}

static int tokens_txn(struct store_txn *t, void *ctx)
{
    return admin_token_foreach(t, list_token, ctx);
}

static void get_tokens(struct call *c)
{
    json_t *arr = json_array();
    struct tikd_err e = {0};
    int rc = store_read(c->a->d.store, tokens_txn, arr, &e);
    if (rc != 0) {
        json_decref(arr);
        store_failed(c, rc, &e);
        return;
    }
    answer(c->r, 200, json_pack("{s:o}", "tokens", arr));
}

struct token_change {
    const char *name, *actor, *tenant;
    enum admin_role role;
    char token[ADMIN_TOKEN_LEN + 1];
    struct tikd_err *e;
};

static int create_txn(struct store_txn *t, void *ctx)
{
    struct token_change *x = ctx;
    return admin_token_create(t, x->name, x->role, x->tenant, x->actor, x->token, x->e);
}

static int revoke_txn(struct store_txn *t, void *ctx)
{
    struct token_change *x = ctx;
    return admin_token_revoke(t, x->name, x->actor, x->e);
}

static void post_token(struct call *c)
{
    struct tikd_err e = {0};
    struct token_change x = {
        .name = json_string_value(json_object_get(c->body, "name")),
        .role = admin_role_parse(json_string_value(json_object_get(c->body, "role"))),
        .actor = c->actor,
        .tenant = json_string_value(json_object_get(c->body, "tenant")),
        .e = &e};
    if (x.tenant && !config_tenant(c->a->d.cfg, x.tenant)) {
        fail(c->r, 400, "bad_request", "no tenant named '%.40s' in the config", x.tenant);
        return;
    }
    if (!x.name || x.role == ROLE_NONE) {
        fail(c->r, 400, "bad_request",
             "expected {\"name\": NAME, \"role\": \"viewer\"|\"operator\"|\"admin\"}");
        return;
    }
    int rc = store_write(c->a->d.store, create_txn, &x, &e);
    if (rc == TIKD_EINVAL || rc == TIKD_EEXIST) {
        fail(c->r, rc == TIKD_EEXIST ? 409 : 400, rc == TIKD_EEXIST ? "conflict" : "bad_request",
             "%s", e.msg);
        return;
    }
    if (rc != 0) {
        store_failed(c, rc, &e);
        return;
    }
    TLOG(TLOG_INFO, "api.token_created", LSTR("name", x.name), LSTR("by", c->actor));
    answer(c->r, 201,
           json_pack("{s:s, s:s, s:s}", "name", x.name, "role", admin_role_name(x.role), "token",
                     x.token));
    OPENSSL_cleanse(x.token, sizeof x.token);
}

static void delete_token(struct call *c)
{
    struct tikd_err e = {0};
    struct token_change x = {.name = c->arg[0], .actor = c->actor, .e = &e};
    int rc = store_write(c->a->d.store, revoke_txn, &x, &e);
    if (rc == TIKD_ENOTFOUND) {
        fail(c->r, 404, "not_found", "%s", e.msg);
        return;
    }
    if (rc != 0) {
        store_failed(c, rc, &e);
        return;
    }
    TLOG(TLOG_INFO, "api.token_revoked", LSTR("name", x.name), LSTR("by", c->actor));
    answer(c->r, 200, json_pack("{s:s, s:b}", "name", x.name, "revoked", true));
}

struct scrape {
    struct api *a;
    struct metrics_out *out;
    uint64_t jobs[16];
    int accounts[8];
};

static int scrape_account(const struct account *a, void *ctx)
{
    struct scrape *x = ctx;
    if ((unsigned)a->state < 8)
        x->accounts[a->state]++;
    return 0;
}

static int scrape_txn(struct store_txn *t, void *ctx)
{
    struct scrape *x = ctx;
    struct job_counts n;
    int rc = job_counts_get(t, &n);
    for (int s = 0; rc == 0 && s < 16; s++)
        x->jobs[s] = n.by_state[s];
    if (rc == 0)
        rc = account_foreach(t, scrape_account, x);
    char lb[96];
    for (int b = 0; rc == 0 && b < RL__COUNT; b++) {
        struct rl_metrics m;
        if ((rc = rl_metrics(t, (enum rl_budget)b, &m)) != 0)
            break;
        const char *name = rl_budget_name((enum rl_budget)b);
        metrics_gauge(x->out, "tikd_budget_decisions_total",
                      metrics_labels(lb, sizeof lb, "budget", name, "decision", "allowed", NULL),
                      (double)m.allowed);
        metrics_gauge(x->out, "tikd_budget_decisions_total",
                      metrics_labels(lb, sizeof lb, "budget", name, "decision", "deferred", NULL),
                      (double)m.deferred);
        metrics_gauge(x->out, "tikd_budget_wait_seconds_total",
                      metrics_labels(lb, sizeof lb, "budget", name, NULL), m.waited);
    }
    return rc;
}

/* What the store holds, read at the scrape. */
static void scrape_gauges(struct metrics_out *out, void *ud)
{
    struct scrape *x = ud;
    x->out = out;
    struct tikd_err e = {0};
    if (store_read(x->a->d.store, scrape_txn, x, &e) != 0)
        return; /* the counters still show; a missing gauge says the store did not answer */
    char lb[64];
    for (int s = 0; s <= JOB_UNSURE; s++)
        metrics_gauge(
            out, "tikd_jobs",
            metrics_labels(lb, sizeof lb, "state", job_state_name((enum job_state)s), NULL),
            (double)x->jobs[s]);
    for (int s = ACCT_PENDING; s <= ACCT_REVOKED; s++)
        metrics_gauge(
            out, "tikd_accounts",
            metrics_labels(lb, sizeof lb, "state", account_state_name((enum acct_state)s), NULL),
            x->accounts[s]);
    metrics_gauge(out, "tikd_rules_generation", NULL, x->a->d.live_gen(x->a->d.ud));
    metrics_gauge(out, "tikd_store_writable", NULL, x->a->d.trouble(x->a->d.ud) ? 0 : 1);
}

static void get_metrics(struct call *c)
{
    struct scrape x = {.a = c->a};
    count_answer(200); /* (counted before it is rendered: this scrape shows itself) */
    char *text = metrics_render(scrape_gauges, &x);
    if (!text) {
        fail(c->r, 500, "internal", "out of memory");
        return;
    }
    srv_respond(c->r, 200, "text/plain; version=0.0.4; charset=utf-8", text);
    free(text);
}

/* ---- the event stream -------------------------------------------------------------------- */

static bool wants(const struct sub *u, const struct event *ev)
{
    return (!u->account[0] || strcmp(u->account, ev->account) == 0) &&
           (!u->job || u->job == ev->job) && (!u->tenant[0] || !strcmp(u->tenant, ev->tenant));
}

static int tenant_txn(struct store_txn *t, void *ctx)
{
    struct account *a = ctx;
    return account_get(t, a->name, a);
}

/* The tenant of account (for an event that names only it), or "". */
static void tenant_of(struct api *a, const char *account, char out[33])
{
    struct account acct = {0};
    out[0] = '\0';
    bool scoped = false;
    for (struct sub *u = a->subs; u && !scoped; u = u->next)
        scoped = u->tenant[0] != '\0';
    if (!scoped || !account || !account_name_valid(account))
        return; /* no tenant's stream listens: nobody asks */
    snprintf(acct.name, sizeof acct.name, "%s", account);
    if (store_read(a->d.store, tenant_txn, &acct, NULL) == 0)
        snprintf(out, 33, "%s", acct.tenant);
}

/* One event to each client that wants it, and (keep) to the ring for
 * clients that reconnect. */
static void emit_as(struct api *a, const char *type, const char *account, uint64_t job,
                    const char *tenant, json_t *data, bool keep)
{
    char *js = data ? json_dumps(data, JSON_COMPACT | JSON_REAL_PRECISION(17)) : NULL;
    json_decref(data);
    if (!js)
        return;
    if (!keep) { /* progress: for who listens now, not worth a reconnect's replay */
        char frame[512];
        int w = snprintf(frame, sizeof frame, "event: %s\ndata: %s\n\n", type, js);
        free(js);
        for (struct sub *u = a->subs; u && w > 0 && (size_t)w < sizeof frame; u = u->next)
            if (!u->ended && (!u->account[0] || strcmp(u->account, account) == 0) &&
                (!u->job || u->job == job) && (!u->tenant[0] || !strcmp(u->tenant, tenant)))
                srv_stream_write(u->st, frame, (size_t)w);
        return;
    }
    struct event *ev = &a->ring[(a->last_id + 1) % RING];
    free(ev->frame);
    ev->id = ++a->last_id;
    size_t n = strlen(js) + strlen(type) + 64;
    ev->frame = malloc(n);
    if (ev->frame) {
        int w = snprintf(ev->frame, n, "id: %llu\nevent: %s\ndata: %s\n\n",
                         (unsigned long long)ev->id, type, js);
        ev->len = w > 0 ? (size_t)w : 0;
    }
    free(js);
    snprintf(ev->account, sizeof ev->account, "%s", account ? account : "");
    snprintf(ev->tenant, sizeof ev->tenant, "%s", tenant ? tenant : "");
    ev->job = job;
    for (struct sub *u = a->subs; u && ev->frame; u = u->next)
        if (!u->ended && wants(u, ev))
            srv_stream_write(u->st, ev->frame, ev->len);
}

static void emit(struct api *a, const char *type, const char *account, uint64_t job,
                 const char *tenant, json_t *data)
{
    emit_as(a, type, account, job, tenant, data, true);
}

void api_job_changed(struct api *a, const struct job *j)
{
    if (a && a->subs)
        emit(a, "job", j->account, j->id, j->tenant, view_job(j, 0));
}

void api_upload_progress(struct api *a, const char *account, uint64_t job, uint64_t done,
                         uint64_t total)
{
    char tenant[33];
    if (a && a->subs)
        tenant_of(a, account, tenant);
    if (a && a->subs)
        emit_as(a, "progress", account, job, tenant,
                json_pack("{s:I, s:I, s:I}", "id", (json_int_t)job, "bytes_done", (json_int_t)done,
                          "bytes", (json_int_t)total),
                false);
}

void api_account_changed(struct api *a, const struct account *acct)
{
    if (a && a->subs)
        emit(a, "account", acct->name, 0, acct->tenant, view_account(acct));
}

/* "account=NAME", "job=ID" in an audit record's detail. */
static void detail_field(const char *detail, const char *key, char *out, size_t n)
{
    out[0] = '\0';
    size_t kl = strlen(key);
    /* (the fields tikd writes come first; free text, quoted, later: not read) */
    const char *quote = detail ? strchr(detail, '"') : NULL;
    for (const char *p = detail; p && *p && (!quote || p < quote);
         p = strchr(p, ' '), p = p ? p + 1 : NULL) {
        if (strncmp(p, key, kl) == 0 && p[kl] == '=') {
            snprintf(out, n, "%.*s", (int)strcspn(p + kl + 1, " "), p + kl + 1);
            return;
        }
    }
}

struct tail {
    struct api *a;
    int n;
};

static int tail_one(const struct audit_rec *r, void *ctx)
{
    struct tail *t = ctx;
    char account[65], job[24];
    detail_field(r->detail, "account", account, sizeof account);
    detail_field(r->detail, "job", job, sizeof job);
    t->a->audit_seq = r->seq;
    /* the daemon's record: no tenant's token reads it */
    emit(t->a, "audit", account, strtoull(job, NULL, 10), "\x01", view_audit(r));
    return ++t->n == 200; /* the rest at the next look */
}

static int tail_txn(struct store_txn *t, void *ctx)
{
    struct tail *x = ctx;
    int rc = audit_foreach(t, x->a->audit_seq + 1, tail_one, x);
    return rc < 0 ? rc : 0;
}

/* What any process put on the record since the last look (the CLI's
 * approvals, TikTok's webhooks, the rules' choices). */
/* A stream lives as long as its token: revoked, it ends within a tick. */
static void recheck_tokens(struct api *a)
{
    for (struct sub *u = a->subs; u; u = u->next) {
        if (!u->token[0] || u->ended)
            continue;
        struct admin_token k;
        if (admin_token_check_hash(a->d.store, u->token, &k) != 0) {
            u->ended = true;
            static const char bye[] = "event: revoked\ndata: {}\n\n";
            srv_stream_write(u->st, bye, sizeof bye - 1);
            srv_stream_end(u->st);
        }
    }
}

static void on_tail(struct ev_loop *loop, ev_timer *w, int revents)
{
    (void)loop;
    (void)revents;
    struct tail t = {.a = w->data};
    recheck_tokens(t.a);
    /* only what is durable goes out: a record of a group that is lost at
     * its commit would be told, and its seq then taken by another */
    if (t.a->d.gate && t.a->d.gate(t.a->d.ud) != 0)
        return;
    store_read(t.a->d.store, tail_txn, &t, NULL);
}

static void on_ping(struct ev_loop *loop, ev_timer *w, int revents)
{
    (void)loop;
    (void)revents;
    struct api *a = w->data;
    for (struct sub *u = a->subs; u; u = u->next)
        if (!u->ended)
            srv_stream_write(u->st, ": ping\n\n", 8);
}

static int last_txn(struct store_txn *t, void *ctx)
{
    return audit_last(t, ctx);
}

static void sub_closed(void *ud)
{
    struct sub *u = ud;
    struct api *a = u->a;
    if (u->prev)
        u->prev->next = u->next;
    else
        a->subs = u->next;
    if (u->next)
        u->next->prev = u->prev;
    TLOG(TLOG_DEBUG, "api.stream_closed", LSTR("account", u->account),
         LINT("job", (long long)u->job));
    free(u);
    if (!a->subs) { /* from now on nothing is kept: a reconnect must read afresh */
        a->quiet_from = a->last_id;
        ev_timer_stop(a->loop, &a->tail);
        ev_timer_stop(a->loop, &a->ping);
    }
}

static void get_events(struct call *c)
{
    struct api *a = c->a;
    char acct[65], job[32], last[32];
    const char *lv = srv_header(c->r, "Last-Event-ID");
    if (!lv)
        lv = query(c, "last_event_id", last, sizeof last);
    uint64_t jid = 0, after = 0;
    if ((query(c, "job", job, sizeof job) && !parse_id(job, &jid)) ||
        (lv && *lv && strcmp(lv, "0") != 0 && !parse_id(lv, &after))) {
        fail(c->r, 400, "bad_request", "job and Last-Event-ID are event and job ids");
        return;
    }
    int all = 0, mine = 0;
    for (struct sub *o = a->subs; o; o = o->next) {
        all++;
        mine += strcmp(o->token, c->token) == 0;
    }
    if (all >= STREAMS_MAX || mine >= STREAMS_PER_TOKEN) {
        fail(c->r, 503, "too_many_streams",
             "%d event streams are open (%d of them this token's): at most %d, %d per token", all,
             mine, STREAMS_MAX, STREAMS_PER_TOKEN);
        return;
    }
    struct sub *u = calloc(1, sizeof *u);
    if (!u) {
        fail(c->r, 500, "internal", "out of memory");
        return;
    }
    u->a = a;
    u->job = jid;
    snprintf(u->token, sizeof u->token, "%s", c->token);
    snprintf(u->tenant, sizeof u->tenant, "%s", c->tenant);
    snprintf(u->account, sizeof u->account, "%s",
             query(c, "account", acct, sizeof acct) ? acct : "");
    count_answer(200);
    u->st = srv_stream_start(c->r, "text/event-stream", STREAM_MAX, sub_closed, u);
    if (!u->st) {
        free(u);
        fail(c->r, 500, "internal", "out of memory");
        return;
    }
    bool was_listened = a->subs != NULL;
    if (!a->subs) { /* nobody listened: the audit log is read from its end now */
        store_read(a->d.store, last_txn, &a->audit_seq, NULL);
        ev_timer_again(a->loop, &a->tail);
        ev_timer_again(a->loop, &a->ping);
    }
    u->next = a->subs;
    if (a->subs)
        a->subs->prev = u;
    a->subs = u;
    char hello[96];
    int n = snprintf(hello, sizeof hello, "retry: 2000\n\n");
    srv_stream_write(u->st, hello, (size_t)n);
    uint64_t oldest = a->last_id >= a->first_id + RING ? a->last_id - RING + 1 : a->first_id + 1;
    /* what it missed is gone (out of the ring, unkept while nobody listened, or
     * from before a restart of the daemon): it must read afresh */
    if (after && (after + 1 < oldest || after > a->last_id ||
                  (after <= a->quiet_from && !was_listened && a->quiet_from))) {
        static const char reset[] = "event: reset\ndata: {}\n\n";
        srv_stream_write(u->st, reset, sizeof reset - 1);
    }
    for (uint64_t id = after + 1 > oldest ? after + 1 : oldest; after && id <= a->last_id; id++) {
        const struct event *ev = &a->ring[id % RING];
        if (ev->id == id && ev->frame && wants(u, ev))
            srv_stream_write(u->st, ev->frame, ev->len);
    }
    TLOG(TLOG_DEBUG, "api.stream_open", LSTR("by", c->actor), LSTR("account", u->account),
         LINT("job", (long long)u->job));
}

/* ---- posting ------------------------------------------------------------------------------ */

struct planning {
    struct api *a;
    struct srv_req *r;
    struct post_async *async;
    struct post_req req;
    struct job *j;
    char actor[96];
    char key[200];
    char tenant[33]; /* the calling token's ("": none) */
    struct planning *prev, *next;
};

static void planning_free(struct planning *p)
{
    if (p->prev)
        p->prev->next = p->next;
    else
        p->a->plans = p->next;
    if (p->next)
        p->next->prev = p->prev;
    free(p->j);
    free(p);
}

/* Is path (absolute, resolved) under one of media_roots? */
static bool under_roots(const struct strlist *roots, const char *path)
{
    char real[PATH_MAX], root[PATH_MAX];
    if (!realpath(path, real))
        return false;
    for (size_t i = 0; i < roots->n; i++) {
        if (!realpath(roots->v[i], root))
            continue;
        size_t n = strlen(root);
        if (strncmp(real, root, n) == 0 && (real[n] == '/' || (n == 1 && root[0] == '/')))
            return true;
    }
    return false;
}

static void planned(void *ud, int rc, struct post_req *req, const struct tikd_err *e)
{
    struct planning *p = ud;
    struct api *a = p->a;
    if (rc == 0) {
        TLOG(TLOG_INFO, "api.post", LINT("job", (long long)req->j->id), LSTR("by", p->actor),
             LSTR("account", req->j->account), LBOOL("existing", req->existing));
        a->d.kick(a->d.ud);
        json_t *warn = json_array();
        for (int i = 0; i < req->media.n; i++)
            if (req->media.f[i].level == MEDIA_WARN)
                json_array_append_new(warn, json_string(req->media.f[i].text));
        answer(p->r, req->existing ? 200 : 201,
               json_pack("{s:I, s:b, s:o, s:o}", "id", (json_int_t)req->j->id, "existing",
                         req->existing, "warnings", warn, "due_at", view_time(req->j->due_at)));
    } else if (rc == TIKD_EEXIST) {
        fail(p->r, 409, "conflict", "%s", req->problem[0] ? req->problem : e->msg);
    } else if (rc == TIKD_ENOTFOUND && !req->problem[0]) {
        fail(p->r, 404, "not_found", "%s", e->msg);
    } else if (rc == TIKD_EINVAL || rc == TIKD_ENOTFOUND || req->invalid || req->problem[0]) {
        fail(p->r, 400, "refused", "%s", req->problem[0] ? req->problem : e->msg);
    } else {
        fail(p->r, rc == TIKD_ENOSPACE ? 503 : 500, rc == TIKD_ENOSPACE ? "store_full" : "internal",
             "%s", e->msg);
    }
    planning_free(p);
}

static const char *body_str(json_t *b, const char *k)
{
    return json_string_value(json_object_get(b, k));
}

/* The post from the body, as `tikd post` takes it from its arguments. */
static bool read_post(struct call *c, struct planning *p, char *why, size_t wn)
{
    json_t *b = c->body;
    struct job *j = p->j;
    const char *account = body_str(b, "account"), *media = body_str(b, "media");
    json_t *photos = json_object_get(b, "photos");
    const char *privacy = body_str(b, "privacy"), *caption = body_str(b, "caption");
    const char *desc = body_str(b, "description");
    if (!account || !account_name_valid(account))
        return snprintf(why, wn, "account: a connected account's name is required"), false;
    if (!media == !photos)
        return snprintf(why, wn,
                        "either media (a video: a path or an https URL) or photos "
                        "(1-35 https URLs)"),
               false;
    snprintf(j->account, sizeof j->account, "%s", account);
    j->opt.cover_ms = -1;
    if (media) {
        j->kind = JOB_VIDEO;
        char real[PATH_MAX];
        const struct tenant_cfg *tc = config_tenant(c->a->d.cfg, scope(c));
        const struct strlist *roots = tc ? &tc->media_roots : &c->a->d.cfg->media_roots;
        if (media[0] == '/' && (!realpath(media, real) || !under_roots(roots, real)))
            return snprintf(why, wn,
                            "media: a local file must be under media_roots (%zu configured)",
                            roots->n),
                   false;
        if (media[0] != '/' && strncmp(media, "https://", 8) != 0)
            return snprintf(why, wn, "media: an absolute path or an https URL"), false;
        if (media[0] == '/')
            media = real; /* what was checked is what is posted: a symlink moved later is not */
        if (strlen(media) >= sizeof j->media)
            return snprintf(why, wn, "media: too long"), false;
        snprintf(j->media, sizeof j->media, "%.1023s", media); /* (length checked above) */
    } else {
        j->kind = JOB_PHOTO;
        size_t i, have = 0;
        json_t *u;
        if (!json_is_array(photos) || json_array_size(photos) == 0)
            return snprintf(why, wn, "photos: a list of 1-35 https URLs"), false;
        json_array_foreach(photos, i, u)
        {
            const char *v = json_string_value(u);
            if (!v || strncmp(v, "https://", 8) != 0 || have + strlen(v) + 2 > sizeof j->images)
                return snprintf(why, wn, "photos: https URLs only (item %zu)", i + 1), false;
            have += (size_t)snprintf(j->images + have, sizeof j->images - have, "%s%s",
                                     have ? "\n" : "", v);
        }
        json_t *ci = json_object_get(b, "cover_index");
        if (ci &&
            (!json_is_integer(ci) || json_integer_value(ci) < 0 || json_integer_value(ci) > 34))
            return snprintf(why, wn, "cover_index: 0 to 34"), false;
        j->cover_index = (int)json_integer_value(ci);
    }
    if (json_is_true(json_object_get(b, "draft")))
        j->mode = JOB_DRAFT;
    if (privacy && strlen(privacy) < sizeof j->privacy)
        snprintf(j->privacy, sizeof j->privacy, "%s", privacy);
    if ((caption && strlen(caption) >= sizeof j->caption) ||
        (desc && strlen(desc) >= sizeof j->description))
        return snprintf(why, wn, "caption or description too long"), false;
    snprintf(j->caption, sizeof j->caption, "%s", caption ? caption : "");
    snprintf(j->description, sizeof j->description, "%s", desc ? desc : "");
    json_t *opt = json_object_get(b, "options");
    static const char *const names[] = {"disable_comment", "disable_duet",  "disable_stitch",
                                        "brand_content",   "brand_organic", "is_aigc"};
    bool *flags[] = {&j->opt.disable_comment, &j->opt.disable_duet,  &j->opt.disable_stitch,
                     &j->opt.brand_content,   &j->opt.brand_organic, &j->opt.is_aigc};
    for (size_t i = 0; i < 6; i++)
        *flags[i] = json_is_true(json_object_get(opt, names[i]));
    /* who chose the privacy and the settings: this token */
    snprintf(j->chosen_by, sizeof j->chosen_by, "%s", c->actor);
    json_t *at = json_object_get(b, "at");
    if (json_is_number(at)) {
        p->req.at = json_number_value(at);
    } else if (json_is_string(at)) {
        if (clock_parse_utc(json_string_value(at), &p->req.at) != 0)
            return snprintf(why, wn,
                            "at: a time as 2026-12-01T10:00:00Z, or seconds since the "
                            "epoch"),
                   false;
    } else if (at && !json_is_null(at)) {
        return snprintf(why, wn, "at: a time as 2026-12-01T10:00:00Z"), false;
    }
    p->req.approval = json_is_true(json_object_get(b, "approval"));
    p->req.again = json_is_true(json_object_get(b, "again"));
    const char *key = body_str(b, "key");
    if (key) {
        snprintf(p->key, sizeof p->key, "%s", key);
        p->req.key = p->key;
        p->req.key_scope = "api";
    }
    return true;
}

static void post_post(struct call *c)
{
    struct planning *p = calloc(1, sizeof *p);
    struct job *j = p ? calloc(1, sizeof *j) : NULL;
    if (!j) {
        free(p);
        fail(c->r, 500, "internal", "out of memory");
        return;
    }
    p->a = c->a;
    p->r = c->r;
    p->j = j;
    p->req.j = j;
    snprintf(p->actor, sizeof p->actor, "%s", c->actor);
    snprintf(p->tenant, sizeof p->tenant, "%s", c->tenant);
    p->req.tenant = p->tenant[0] ? p->tenant : NULL; /* another tenant's account is no account */
    char why[300];
    if (!read_post(c, p, why, sizeof why)) {
        free(j);
        free(p);
        fail(c->r, 400, "bad_request", "%s", why);
        return;
    }
    p->next = c->a->plans;
    if (c->a->plans)
        c->a->plans->prev = p;
    c->a->plans = p;
    struct tikd_err e = {0};
    /* the answer comes once the video is read (the request waits, the loop does not) */
    if (post_plan_start(c->a->loop, c->a->d.store, &p->req, planned, p, &p->async, &e) != 0) {
        fail(c->r, 500, "internal", "%s", e.msg);
        planning_free(p);
    }
}

/* ---- the dry run ---------------------------------------------------------------------- */

struct plan_run {
    struct api *a;
    struct srv_req *r;
    struct child_run *run;
    int days;
    struct plan_run *prev, *next;
};

static void plan_run_free(struct plan_run *p)
{
    if (p->prev)
        p->prev->next = p->next;
    else
        p->a->plan_runs = p->next;
    if (p->next)
        p->next->prev = p->prev;
    free(p);
}

static void plan_ran(void *ud, int status, const char *out, size_t len)
{
    (void)len;
    struct plan_run *p = ud;
    p->run = NULL;
    json_t *posts = status == 0 ? json_loads(out, 0, NULL) : NULL; /* (exited 0, whole) */
    if (json_is_array(posts))
        answer(p->r, 200, json_pack("{s:i, s:o}", "days", p->days, "posts", posts));
    else {
        json_decref(posts);
        fail(p->r, 500, "internal",
             "the dry run gave no answer (%s): see the daemon's log (tikd plan)",
             status == -1        ? "killed at its time limit, or its answer too long"
             : WIFEXITED(status) ? "it exited with an error"
                                 : "it died");
    }
    plan_run_free(p);
}

/* What the live rules would post in the next days, on a virtual clock
 * (`tikd plan --json` in a child: nothing is posted, the loop never waits). */
static void get_plan(struct call *c)
{
    long long days = query_count(c, "days", 7, 1000);
    if (days < 1 || days > 31) {
        fail(c->r, 400, "bad_request", "days is 1 to 31");
        return;
    }
    int running = 0;
    for (struct plan_run *o = c->a->plan_runs; o; o = o->next)
        running++;
    if (running >= 2) {
        fail(c->r, 503, "busy", "two dry runs are under way: try again in a moment");
        return;
    }
    struct plan_run *p = calloc(1, sizeof *p);
    if (!p) {
        fail(c->r, 500, "internal", "out of memory");
        return;
    }
    char d[16];
    snprintf(d, sizeof d, "%lld", days);
    char tq[40];
    const char *tenant = scope(c) ? scope(c) : query(c, "tenant", tq, sizeof tq);
    if (c->a->d.cfg->ntenants && !config_tenant(c->a->d.cfg, tenant)) {
        free(p);
        fail(c->r, 400, "bad_request", "the daemon has tenants: name one (?tenant=NAME)");
        return;
    }
    const char *args[] = {"plan", "--days", d, "--json", tenant ? "--tenant" : NULL, tenant, NULL};
    p->a = c->a;
    p->r = c->r;
    p->days = (int)days;
    p->next = c->a->plan_runs;
    if (c->a->plan_runs)
        c->a->plan_runs->prev = p;
    c->a->plan_runs = p;
    /* the child reads the database: it must see what this turn wrote */
    if (c->a->d.gate && c->a->d.gate(c->a->d.ud) != 0) {
        fail(c->r, 503, "store_full", "the database does not take writes now: try again");
        plan_run_free(p);
        return;
    }
    if (!(p->run = child_run_start(c->a->loop, c->a->d.cli, args, 120, plan_ran, p))) {
        fail(c->r, 500, "internal", "the dry run could not start");
        plan_run_free(p);
    }
}

static void get_index(struct call *c);

/* ---- the table --------------------------------------------------------------------------- */

static const struct resource {
    const char *method, *path;
    enum admin_role role;
    bool tenants; /* a tenant's token may call it (it answers only of the tenant's own) */
    void (*fn)(struct call *c);
    const char *what;
} resources[] = {
    {"GET", "/api/v1", ROLE_VIEWER, true, get_index, "this list"},
    {"GET", "/api/v1/health", ROLE_VIEWER, true, get_health, "healthy: the store takes writes"},
    {"GET", "/api/v1/ready", ROLE_VIEWER, true, get_ready,
     "ready: rules live, the store takes writes"},
    {"GET", "/api/v1/status", ROLE_VIEWER, false, get_status,
     "the daemon, its rules and job counts"},
    {"GET", "/api/v1/rules", ROLE_VIEWER, false, get_rules, "live generation, files, last reload"},
    {"GET", "/api/v1/schedules", ROLE_VIEWER, true, get_schedules,
     "the live rules' schedules, each with its next free slot"},
    {"GET", "/api/v1/plan", ROLE_VIEWER, true, get_plan,
     "what the rules would post in the next ?days= (a dry run, as tikd plan)"},
    {"GET", "/api/v1/accounts", ROLE_VIEWER, true, get_accounts, "every account"},
    {"GET", "/api/v1/accounts/{name}", ROLE_VIEWER, true, get_account,
     "one account, its open jobs"},
    {"POST", "/api/v1/accounts/{name}/connect", ROLE_OPERATOR, true, post_connect,
     "the authorize URL that connects or reconnects an account"},
    {"GET", "/api/v1/jobs", ROLE_VIEWER, true, get_jobs,
     "jobs: ?account= &state= &all=1 &due_after= &due_before= &after= &limit="},
    {"GET", "/api/v1/jobs/{id}", ROLE_VIEWER, true, get_job, "one job with its history"},
    {"POST", "/api/v1/jobs/{id}/approve", ROLE_OPERATOR, true, post_approve, "approve a held job"},
    {"POST", "/api/v1/jobs/{id}/reject", ROLE_OPERATOR, true, post_reject, "reject a held job"},
    {"POST", "/api/v1/jobs/{id}/cancel", ROLE_OPERATOR, true, post_cancel, "cancel a job"},
    {"POST", "/api/v1/jobs/{id}/retry", ROLE_OPERATOR, true, post_retry, "plan a failed job again"},
    {"POST", "/api/v1/posts", ROLE_OPERATOR, true, post_post,
     "plan a post (a video by path or URL, or photos), as tikd post does"},
    {"GET", "/api/v1/limits", ROLE_VIEWER, true, get_limits, "TikTok's budgets now"},
    {"GET", "/api/v1/audit", ROLE_VIEWER, false, get_audit, "audit records: ?after= &limit="},
    {"GET", "/api/v1/audit/verify", ROLE_VIEWER, false, get_audit_verify,
     "the audit chain checked"},
    {"GET", "/api/v1/tokens", ROLE_ADMIN, false, get_tokens, "admin tokens (never the tokens)"},
    {"POST", "/api/v1/tokens", ROLE_ADMIN, false, post_token, "create a token, shown once"},
    {"DELETE", "/api/v1/tokens/{name}", ROLE_ADMIN, false, delete_token, "revoke a token"},
    {"GET", "/api/v1/events", ROLE_VIEWER, true, get_events,
     "Server-Sent Events: job, account, audit; ?account= &job=, Last-Event-ID"},
    {"GET", "/metrics", ROLE_VIEWER, false, get_metrics, "Prometheus metrics (text format 0.0.4)"},
};
#define NRES (sizeof resources / sizeof resources[0])

static void get_index(struct call *c)
{
    json_t *arr = json_array();
    for (size_t i = 0; i < NRES; i++)
        json_array_append_new(arr, json_pack("{s:s, s:s, s:s, s:s}", "method", resources[i].method,
                                             "path", resources[i].path, "role",
                                             admin_role_name(resources[i].role), "what",
                                             resources[i].what));
    answer(c->r, 200, json_pack("{s:s, s:o}", "version", TIKD_VERSION, "resources", arr));
}

/* Does the pattern match the call's path segments? Fills c->arg. */
static bool matches(struct call *c, const char *pattern)
{
    char buf[256];
    snprintf(buf, sizeof buf, "%s", pattern);
    int i = 0, na = 0;
    for (char *save, *p = strtok_r(buf, "/", &save); p; p = strtok_r(NULL, "/", &save), i++) {
        if (i >= c->nseg)
            return false;
        if (p[0] == '{') {
            if (na < 2)
                c->arg[na++] = c->seg[i];
        } else if (strcmp(p, c->seg[i]) != 0) {
            return false;
        }
    }
    return i == c->nseg;
}

/* ---- who, and the request's shape -------------------------------------------------------- */

static bool authenticate(struct call *c)
{
    const char *auth = srv_header(c->r, "Authorization");
    unsigned uid;
    bool on_socket = srv_peer_uid(c->r, &uid) == 0;
    if (!auth && on_socket) {
        /* The CLI, never a browser: a forwarded socket must not let a page
         * (DNS rebinding makes it "same origin") act with the peer's rights. */
        const char *host = srv_header(c->r, "Host");
        size_t hl = host ? strcspn(host, ":") : 0;
        bool cli_host = host && ((hl == 4 && strncmp(host, "tikd", 4) == 0) ||
                                 (hl == 9 && strncmp(host, "localhost", 9) == 0));
        if (srv_header(c->r, "Origin") || srv_header(c->r, "Sec-Fetch-Site") ||
            srv_header(c->r, "Sec-Fetch-Mode") || srv_header(c->r, "Referer") || !cli_host) {
            fail(c->r, 403, "forbidden",
                 "the admin socket without a token is for tikd's CLI on this machine (Host: "
                 "tikd), not a browser");
            return false;
        }
        if (uid != geteuid() && uid != 0) {
            fail(c->r, 403, "forbidden", "the admin socket is for uid %u (and root), not %u",
                 (unsigned)geteuid(), uid);
            return false;
        }
        c->role = ROLE_ADMIN;
        snprintf(c->actor, sizeof c->actor, "unix:uid=%u", uid);
        return true;
    }
    srv_add_header(c->r, "WWW-Authenticate", "Bearer realm=\"tikd\"");
    if (!auth || strncasecmp(auth, "Bearer ", 7) != 0) {
        fail(c->r, 401, "unauthenticated",
             "an admin token is needed: Authorization: Bearer TOKEN (tikd admin token create)");
        return false;
    }
    struct admin_token k;
    if (admin_token_check(c->a->d.store, auth + 7, &k) != 0) {
        fail(c->r, 401, "unauthenticated", "that token is not known (revoked, or mistyped)");
        return false;
    }
    c->role = k.role;
    snprintf(c->tenant, sizeof c->tenant, "%s", k.tenant);
    snprintf(c->actor, sizeof c->actor, "token:%s", k.name);
    snprintf(c->token, sizeof c->token, "%s", k.hash);
    c->last_used = k.last_used;
    return true;
}

/* Browsers mark what they send: a page on another origin cannot make a
 * request here that counts. (Without cookies it could carry no authority
 * anyway; this also keeps such pages from reading the socket's answers
 * through a proxy or DNS rebinding.) */
static bool same_origin(struct call *c)
{
    const char *site = srv_header(c->r, "Sec-Fetch-Site");
    if (site && strcmp(site, "cross-site") == 0)
        return false;
    const char *origin = srv_header(c->r, "Origin");
    if (!origin || strcmp(origin, "null") == 0)
        return !origin;
    const char *host = srv_header(c->r, "Host");
    const char *o = strstr(origin, "://");
    if (host && o && strcmp(o + 3, host) == 0)
        return true;
    const struct strlist *ok = &c->a->d.cfg->admin_origins; /* behind a TLS proxy */
    for (size_t i = 0; i < ok->n; i++)
        if (strcmp(ok->v[i], origin) == 0)
            return true;
    return false;
}

static bool read_body(struct call *c)
{
    size_t n;
    const char *b = srv_body(c->r, &n);
    if (n == 0)
        return true;
    const char *ct = srv_header(c->r, "Content-Type");
    if (!ct || strncasecmp(ct, "application/json", 16) != 0 ||
        (ct[16] && ct[16] != ';' && ct[16] != ' ')) {
        fail(c->r, 415, "unsupported_media_type", "a request body must be application/json");
        return false;
    }
    json_error_t je;
    c->body = json_loadb(b, n, JSON_REJECT_DUPLICATES, &je);
    if (!json_is_object(c->body)) {
        fail(c->r, 400, "bad_json", "the body is not a JSON object: %s",
             c->body ? "another JSON value" : je.text);
        json_decref(c->body);
        c->body = NULL;
        return false;
    }
    return true;
}

static void on_request(void *ud, struct srv_req *r)
{
    struct call c = {.a = ud, .r = r};
    snprintf(c.segbuf, sizeof c.segbuf, "%s", srv_path(r));
    for (char *save, *p = strtok_r(c.segbuf, "/", &save); p; p = strtok_r(NULL, "/", &save)) {
        if (c.nseg == 8) {
            fail(r, 404, "not_found", "no such resource");
            return;
        }
        c.seg[c.nseg++] = p;
    }
    if (!authenticate(&c))
        return;
    const struct resource *res = NULL;
    bool path_known = false;
    for (size_t i = 0; i < NRES && !res; i++) {
        if (!matches(&c, resources[i].path))
            continue;
        path_known = true;
        if (strcmp(resources[i].method, srv_method(r)) == 0)
            res = &resources[i];
    }
    if (!res) {
        if (path_known)
            fail(r, 405, "method_not_allowed", "%s is not allowed here", srv_method(r));
        else
            fail(r, 404, "not_found", "no such resource (GET /api/v1 lists them)");
        return;
    }
    if (c.tenant[0] && !res->tenants) {
        fail(r, 403, "forbidden",
             "%s is the whole daemon's; %s is tenant %s's token (its accounts, jobs, posts, "
             "schedules and limits)",
             res->path, c.actor, c.tenant);
        return;
    }
    if (c.role < res->role) {
        fail(r, 403, "forbidden", "%s needs the %s role; %s is %s", res->path,
             admin_role_name(res->role), c.actor, admin_role_name(c.role));
        return;
    }
    bool changes = strcmp(res->method, "GET") != 0;
    if (changes && !same_origin(&c)) {
        fail(r, 403, "cross_origin", "a request from another site changes nothing here");
        return;
    }
    if (changes ? !read_body(&c) : srv_body(r, NULL)[0] != '\0') {
        if (!changes)
            fail(r, 400, "bad_request", "GET takes no body");
        return;
    }
    double now = clock_now();
    if (c.token[0] && now - c.last_used >= TOUCH_EVERY) { /* (a refused request wrote nothing) */
        struct tikd_err e = {0};
        admin_token_touch(c.a->d.store, c.token, now, &e); /* best effort: a read still answers */
    }
    res->fn(&c);
    json_decref(c.body);
}

/* ---- the dashboard ------------------------------------------------------------------------ */

/* Its files carry no data: served to anyone who reaches the listener; what
 * they show comes from the API, with the token the operator types in. The
 * page may load only its own script and style and talk only to this
 * origin, and may not be framed. */
static void on_static(void *ud, struct srv_req *r)
{
    (void)ud;
    for (const struct embedded *f = embedded_files; f->path; f++) {
        if (strcmp(f->path, srv_path(r)) != 0)
            continue;
        srv_add_header(r, "Content-Security-Policy",
                       "default-src 'none'; script-src 'self'; style-src 'self'; "
                       "connect-src 'self'; img-src 'self' data:; base-uri 'none'; "
                       "form-action 'none'; frame-ancestors 'none'");
        srv_add_header(r, "X-Frame-Options", "DENY");
        srv_add_header(r, "Referrer-Policy", "no-referrer");
        count_answer(200);
        srv_respond(r, 200, f->type, f->data);
        return;
    }
    fail(r, 404, "not_found", "no such file");
}

/* ---- listeners --------------------------------------------------------------------------- */

static int listen_on(struct api *a, const char *addr, bool unix_socket, struct tikd_err *e)
{
    const struct tikd_config *cfg = a->d.cfg;
    struct srv_limits lim = {(unsigned)cfg->server_max_connections,
                             (unsigned)cfg->server_max_per_ip,
                             cfg->server_request_timeout,
                             cfg->server_idle_timeout,
                             API_MAX_BODY,
                             unix_socket ? 0600 : 0};
    struct server *s;
    int rc = server_new(&s, a->loop, addr, &lim, e);
    if (rc != 0)
        return rc;
    server_on_error(s, server_refused);
    if (a->d.gate)
        server_set_gate(s, a->d.gate, a->d.ud);
    server_route(s, "*", "/api/v1", on_request, a);
    server_route(s, "*", "/api/v1/**", on_request, a);
    server_route(s, "*", "/metrics", on_request, a);
    server_route(s, "GET", "/", on_static, a);
    server_route(s, "GET", "/assets/*", on_static, a);
    a->servers[a->n++] = s;
    if (!unix_socket && !a->port)
        a->port = server_port(s);
    TLOG(TLOG_INFO, "admin.listening", LSTR("addr", addr), LINT("port", server_port(s)));
    return 0;
}

int api_new(struct api **out, struct ev_loop *loop, const struct api_deps *d, struct tikd_err *e)
{
    *out = NULL;
    struct api *a = calloc(1, sizeof *a);
    if (!a)
        return tikd_fail(e, TIKD_ENOMEM, "admin API: out of memory");
    a->d = *d;
    a->loop = loop;
    a->first_id = a->last_id = (uint64_t)(clock_now() * 1e6);
    ev_init(&a->tail, on_tail);
    a->tail.repeat = TAIL_EVERY;
    a->tail.data = a;
    ev_init(&a->ping, on_ping);
    a->ping.repeat = PING_EVERY;
    a->ping.data = a;
    const struct tikd_config *cfg = d->cfg;
    char sock[4200];
    int rc = 0;
    if (cfg->admin_socket) {
        snprintf(sock, sizeof sock, "unix:%s", cfg->admin_socket);
        rc = listen_on(a, sock, true, e);
    } else if ((size_t)snprintf(sock, sizeof sock, "unix:%s/admin.sock", cfg->data_dir) - 5 >=
               108) {
        /* (a socket path holds at most 107 bytes) */
        TLOG(TLOG_WARN, "admin.no_socket", LSTR("path", sock + 5),
             LSTR("reason", "too long for a unix socket: set admin.socket to a shorter path"));
    } else {
        rc = listen_on(a, sock, true, e);
    }
    for (size_t i = 0; rc == 0 && i < cfg->admin_listen.n && a->n < MAX_SERVERS; i++)
        rc = listen_on(a, cfg->admin_listen.v[i], strncmp(cfg->admin_listen.v[i], "unix:", 5) == 0,
                       e);
    if (rc != 0) {
        api_free(a);
        return rc;
    }
    *out = a;
    return 0;
}

void api_free(struct api *a)
{
    if (!a)
        return;
    while (a->plan_runs) {
        child_run_cancel(a->plan_runs->run);
        plan_run_free(a->plan_runs);
    }
    while (a->plans) { /* their requests get the server's 503 below */
        post_plan_cancel(a->plans->async);
        planning_free(a->plans);
    }
    for (size_t i = 0; i < a->n; i++)
        server_free(a->servers[i]); /* (ends each stream: its sub goes) */
    ev_timer_stop(a->loop, &a->tail);
    ev_timer_stop(a->loop, &a->ping);
    for (size_t i = 0; i < RING; i++)
        free(a->ring[i].frame);
    free(a);
}

int api_port(const struct api *a)
{
    return a ? a->port : 0;
}
