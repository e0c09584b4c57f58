/* cmd_plan.c - `tikd plan`: what the rules would post in the next days, where,
 * when, with which caption and privacy, given the current queue.
 *
 * A dry run: the live database is copied (read-only open, compacted backup)
 * into a temporary folder and everything points at the copy, which is
 * deleted at the end, so nothing is sent and nothing is written to the real
 * database. The process runs on a virtual clock from the real now; the rules
 * run exactly as under `tikd run` (same sandbox, budgets, declarations), with
 * no HTTP client and no pipeline: on_load, then on_media for each file of
 * --media DIR, then every declared timer in time order over the days, the
 * clock set to each firing. A call that waits (tikd.sleep) gets a little real
 * time on a private loop; one that still waits is cancelled and reported. */
#include "cli.h"

#include "../bindings/lua_dryrun.h"
#include "../bindings/lua_hooks.h"
#include "../core/clock.h"
#include "../core/intake.h"
#include "../core/job.h"
#include "../core/store.h"

#include <dirent.h>
#include <errno.h>
#include <ev.h>
#include <jansson.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#define STEP_WAIT  2.0  /* real seconds the calls of one step may wait */
#define TOTAL_WAIT 20.0 /* real seconds the whole plan may wait; then waits are cut at once */
#define CAPTION_W  40   /* characters of a caption shown in the table */

struct plan {
    struct cli *c;
    struct ev_loop *loop;
    struct store *st;
    struct gen *g;
    double waited; /* real seconds spent waiting on calls */
    int failures;
    char step[400]; /* what runs now, for messages */
};

/* ---- running calls -------------------------------------------------------------- */

static void call_done(void *ud, const struct call_result *r)
{
    struct plan *p = ud;
    if (r->ok)
        return;
    p->failures++;
    fprintf(stderr, "error: %s: %s\n", p->step, r->error);
}

static void wake(struct ev_loop *loop, ev_timer *w, int revents)
{
    (void)loop;
    (void)w;
    (void)revents;
}

/* Let the calls started by this step finish: a little real time on the loop
 * for those that wait, then cancel what still waits. */
static void finish_step(struct plan *p)
{
    if (!gen_live_calls(p->g))
        return;
    double left = TOTAL_WAIT - p->waited;
    double until = clock_mono() + (left < STEP_WAIT ? (left > 0 ? left : 0) : STEP_WAIT);
    double started = clock_mono();
    ev_timer guard;
    ev_timer_init(&guard, wake, 0., 0.);
    while (gen_live_calls(p->g) && clock_mono() < until) {
        ev_timer_set(&guard, until - clock_mono(), 0.);
        ev_timer_start(p->loop, &guard);
        ev_run(p->loop, EVRUN_ONCE);
        ev_timer_stop(p->loop, &guard);
    }
    p->waited += clock_mono() - started;
    if (gen_live_calls(p->g))
        gen_cancel_all(p->g, "still waiting: a dry run has no network and no pipeline, and "
                             "gives waits little real time (tikd.sleep, tikd.upload.await)");
}

static void set_step(struct plan *p, const char *what, const char *rule, const char *fn)
{
    char when[32];
    cli_fmt_time(clock_now(), when, sizeof when);
    snprintf(p->step, sizeof p->step, "%s %.200s:%.64s at %s", what, rule, fn, when);
}

/* Call hook fn of every rule that defines it, and let the calls finish. */
static void call_hooks(struct plan *p, const char *fn, host_push_fn push, void *ud)
{
    for (size_t i = 0; i < gen_rule_count(p->g); i++) {
        if (!gen_rule_has(p->g, i, fn))
            continue;
        set_step(p, "hook", gen_rule_name(p->g, i), fn);
        gen_call(p->g, i, fn, push, ud, call_done, p);
        finish_step(p);
    }
}

/* ---- --media DIR ---------------------------------------------------------------------- */

static int cmp_str(const void *a, const void *b)
{
    return strcmp(*(char *const *)a, *(char *const *)b);
}

/* Is dir under one of the media roots (where tikd.upload.post takes files)? */
static bool under_roots(const struct tikd_config *cfg, const char *dir)
{
    char d[PATH_MAX], r[PATH_MAX];
    if (!realpath(dir, d))
        return false;
    for (size_t i = 0; i < cfg->media_roots.n; i++) {
        if (!realpath(cfg->media_roots.v[i], r))
            continue;
        size_t l = strlen(r);
        if (strncmp(d, r, l) == 0 && (d[l] == '/' || d[l] == '\0'))
            return true;
    }
    return false;
}

static void no_item(void *ud, const struct intake_item *it, struct intake_handoff *h)
{
    (void)ud;
    (void)it;
    intake_handoff_end(h, true);
}

/* The media files of dir in name order (the caller frees them); -1 when it
 * cannot be read. */
static int list_media(const char *dir, char ***out, size_t *n)
{
    DIR *d = opendir(dir);
    if (!d) {
        fprintf(stderr, "tikd plan: --media %s: %s\n", dir, strerror(errno));
        return -1;
    }
    char **names = NULL;
    struct dirent *de;
    *n = 0;
    while ((de = readdir(d))) {
        if (!intake_takes(de->d_name, NULL))
            continue;
        char **nn = realloc(names, (*n + 1) * sizeof *nn);
        if (!nn || !(nn[*n] = strdup(de->d_name))) {
            names = nn ? nn : names;
            break; /* out of memory: the files so far */
        }
        names = nn;
        (*n)++;
    }
    closedir(d);
    if (*n)
        qsort(names, *n, sizeof *names, cmp_str);
    *out = names;
    return 0;
}

/* Each new file of dir goes to on_media, as the intake of `tikd run` would
 * hand it over: identified by its content in the copy's media records, so
 * content the live intake took already (or an identical file just before)
 * is not offered again. */
static int feed_media(struct plan *p, const char *dir)
{
    char **names = NULL;
    size_t n = 0;
    if (list_media(dir, &names, &n) != 0)
        return 1;
    if (!under_roots(&p->c->cfg, dir))
        fprintf(stderr,
                "note: %s is not under media_roots: tikd.upload.post will refuse its files\n", dir);
    struct intake *in = NULL;
    struct intake_item *it = malloc(sizeof *it);
    struct tikd_err e = {0};
    int rc = it && intake_new(&in, p->loop, p->st, 0, no_item, NULL, &e) == 0 ? 0 : 1;
    if (rc)
        fprintf(stderr, "tikd plan: %s\n", e.msg[0] ? e.msg : "out of memory");
    for (size_t i = 0; i < n; i++) {
        char path[PATH_MAX + 256];
        bool fresh = false;
        snprintf(path, sizeof path, "%s/%s", dir, names[i]);
        if (rc == 0 && intake_offer(in, path, it, &fresh, &e) != 0) {
            fprintf(stderr, "error: --media: %s\n", e.msg);
            p->failures++;
        } else if (rc == 0 && !fresh) {
            fprintf(stderr,
                    "note: %s: the intake knows this content already; tikd run would not "
                    "offer it again\n",
                    path);
        } else if (rc == 0) {
            char line[2000]; /* what TikTok's rules say of it, as `tikd media check` would */
            cli_media_line(path, 0, line, sizeof line);
            fprintf(stderr, "media: %s\n", line);
            call_hooks(p, HOOK_ON_MEDIA, hooks_arg_media, it);
        }
        free(names[i]);
    }
    free(names);
    intake_free(in);
    free(it);
    return rc;
}

/* ---- timers ---------------------------------------------------------------------------- */

static int fire_timers(struct plan *p, double until)
{
    struct dryrun_timers ts;
    if (dryrun_timers_init(&ts, p->g, p->st, clock_now()) != 0) {
        fprintf(stderr, "tikd plan: out of memory\n");
        return 1;
    }
    for (size_t i = 0; i < ts.n; i++) {
        struct dryrun_timer *t = &ts.v[i];
        if (t->rule < 0 || !gen_rule_has(p->g, (size_t)t->rule, t->t.fn)) {
            fprintf(stderr, "warning: timer %s:%s: the rule defines no function %s\n", t->t.rule,
                    t->t.fn, t->t.fn);
            t->next = 0;
        }
    }
    struct dryrun_timer *t; /* the days are [now, until): a firing at until is not in them */
    while ((t = dryrun_timers_next(&ts, until)) && t->next < until) {
        clock_set_virtual(t->next);
        set_step(p, "timer", t->t.rule, t->t.fn);
        gen_call(p->g, (size_t)t->rule, t->t.fn, NULL, NULL, call_done, p);
        finish_step(p);
        dryrun_timers_advance(t);
    }
    dryrun_timers_free(&ts);
    return 0;
}

/* ---- the planned jobs ---------------------------------------------------------------- */

struct row {
    uint64_t id;
    double due;
    bool is_new; /* planned by this run (the others were in the queue already) */
    char account[65];
    const char *kind, *mode, *state;
    char privacy[32];
    char chosen_by[160];
    char *media, *images, *caption;
};

struct rows {
    struct row *v;
    size_t n;
    uint64_t before; /* ids above this one are new */
    bool oom;
};

static int row_add(const struct job *j, void *ctx)
{
    struct rows *rs = ctx;
    if (job_state_final(j->state))
        return 0;
    struct row *nv = realloc(rs->v, (rs->n + 1) * sizeof *nv);
    if (!nv) {
        rs->oom = true;
        return 1;
    }
    rs->v = nv;
    struct row *r = &rs->v[rs->n];
    memset(r, 0, sizeof *r);
    bool approval = j->state == JOB_AWAITING_APPROVAL;
    r->id = j->id;
    r->is_new = j->id > rs->before;
    r->due = approval ? j->planned_at : j->due_at;
    snprintf(r->account, sizeof r->account, "%s", j->account);
    r->kind = j->kind == JOB_PHOTO ? "photo" : "video";
    r->mode = approval ? "approval" : j->mode == JOB_DRAFT ? "draft" : "direct";
    r->state = job_state_name(j->state);
    snprintf(r->privacy, sizeof r->privacy, "%s", j->privacy);
    snprintf(r->chosen_by, sizeof r->chosen_by, "%s", j->chosen_by);
    r->media = strdup(j->media);
    r->images = strdup(j->images);
    r->caption = strdup(j->caption);
    rs->n++;
    if (!r->media || !r->images || !r->caption)
        rs->oom = true;
    return rs->oom;
}

static int rows_txn(struct store_txn *t, void *ctx)
{
    return job_foreach(t, row_add, ctx);
}

static void rows_free(struct rows *rs)
{
    for (size_t i = 0; i < rs->n; i++) {
        free(rs->v[i].media);
        free(rs->v[i].images);
        free(rs->v[i].caption);
    }
    free(rs->v);
}

static int cmp_due(const void *a, const void *b)
{
    const struct row *x = a, *y = b;
    if (x->due != y->due)
        return x->due < y->due ? -1 : 1;
    return x->id < y->id ? -1 : x->id > y->id;
}

static int last_id_txn(struct store_txn *t, void *ctx)
{
    struct store_val k, v;
    if (store_last(t, STORE_DB_JOBS, &k, &v) == 0 && k.n == 8)
        *(uint64_t *)ctx = store_be64_get(k.p);
    return 0;
}

/* The zone posts of account are shown in: its declared tz, else the zone of
 * its first schedule that has one; "" for none. */
static const char *zone_of(const struct decls *d, const char *account)
{
    const struct acct_decl *a = decls_account(d, account);
    if (a && a->tz[0])
        return a->tz;
    for (size_t i = 0; i < d->nscheds; i++)
        if (strcmp(d->scheds[i].account, account) == 0 && d->scheds[i].tz[0])
            return d->scheds[i].tz;
    return "";
}

static void fmt_local(const char *tz, double t, char *out, size_t n)
{
    struct cron_local lt;
    if (!tz[0] || cron_localtime(tz, t, &lt, NULL) != 0) {
        snprintf(out, n, "-");
        return;
    }
    snprintf(out, n, "%04d-%02d-%02d %02d:%02d %s", lt.year, lt.month, lt.day, lt.hour, lt.minute,
             lt.abbr);
}

static const char *base_name(const char *p)
{
    const char *s = strrchr(p, '/');
    return s ? s + 1 : p;
}

/* Characters (UTF-8 code points) in s. */
static size_t width(const char *s)
{
    size_t n = 0;
    for (; *s; s++)
        n += ((unsigned char)*s & 0xC0) != 0x80;
    return n;
}

/* The caption on one line, cut to max characters ("..." marks a cut). */
static void cut(const char *s, size_t max, char *out, size_t n)
{
    size_t chars = 0, o = 0;
    bool cutoff = width(s) > max;
    for (; *s && o + 8 < n; s++) {
        bool lead = ((unsigned char)*s & 0xC0) != 0x80;
        if (lead && chars == (cutoff ? max - 3 : max))
            break;
        chars += lead;
        out[o++] = *s == '\n' || *s == '\r' || *s == '\t' ? ' ' : *s;
    }
    out[o] = '\0';
    if (cutoff)
        snprintf(out + o, n - o, "...");
}

static void media_cell(const struct row *r, char *out, size_t n)
{
    if (r->media[0]) {
        snprintf(out, n, "%.180s", base_name(r->media));
        return;
    }
    size_t count = 0;
    for (const char *p = r->images; *p; p++)
        count += *p == '\n';
    count += r->images[0] != '\0';
    size_t first = strcspn(r->images, "\n");
    char one[1024];
    snprintf(one, sizeof one, "%.*s", (int)(first < sizeof one ? first : sizeof one - 1),
             r->images);
    if (count > 1)
        snprintf(out, n, "%.150s +%d", base_name(one), (int)(count - 1));
    else
        snprintf(out, n, "%.180s", base_name(one));
}

enum { C_DUE, C_LOCAL, C_ACCOUNT, C_KIND, C_MODE, C_PRIVACY, C_MEDIA, C_CAPTION, C_BY, NCOL };

static void print_cell(const char *s, size_t w, bool last)
{
    if (last) {
        printf("%s\n", s);
        return;
    }
    printf("%s", s);
    for (size_t i = width(s); i < w + 2; i++)
        putchar(' ');
}

static void print_table(const struct rows *rs, const struct decls *d, size_t nnew)
{
    static const char *const heads[NCOL] = {"DUE (UTC)", "LOCAL", "ACCOUNT", "KIND",     "MODE",
                                            "PRIVACY",   "MEDIA", "CAPTION", "CHOSEN BY"};
    char(*cells)[NCOL][200] = calloc(nnew ? nnew : 1, sizeof *cells);
    if (!cells)
        return;
    size_t w[NCOL] = {0}, k = 0;
    for (size_t c = 0; c < NCOL; c++)
        w[c] = width(heads[c]);
    for (size_t i = 0; i < rs->n; i++) {
        const struct row *r = &rs->v[i];
        if (!r->is_new)
            continue;
        char(*row)[200] = cells[k++];
        cli_fmt_time(r->due, row[C_DUE], sizeof row[C_DUE]);
        fmt_local(zone_of(d, r->account), r->due, row[C_LOCAL], sizeof row[C_LOCAL]);
        snprintf(row[C_ACCOUNT], sizeof row[C_ACCOUNT], "%s", r->account);
        snprintf(row[C_KIND], sizeof row[C_KIND], "%s", r->kind);
        snprintf(row[C_MODE], sizeof row[C_MODE], "%s", r->mode);
        snprintf(row[C_PRIVACY], sizeof row[C_PRIVACY], "%s", r->privacy[0] ? r->privacy : "-");
        media_cell(r, row[C_MEDIA], sizeof row[C_MEDIA]);
        cut(r->caption, CAPTION_W, row[C_CAPTION], sizeof row[C_CAPTION]);
        if (!row[C_CAPTION][0])
            snprintf(row[C_CAPTION], sizeof row[C_CAPTION], "-");
        snprintf(row[C_BY], sizeof row[C_BY], "%s", r->chosen_by);
        for (size_t c = 0; c < NCOL; c++)
            if (width(row[c]) > w[c])
                w[c] = width(row[c]);
    }
    for (size_t c = 0; c < NCOL; c++)
        print_cell(heads[c], w[c], c == NCOL - 1);
    for (size_t i = 0; i < k; i++)
        for (size_t c = 0; c < NCOL; c++)
            print_cell(cells[i][c], w[c], c == NCOL - 1);
    free(cells);
}

static int print_json(const struct rows *rs, const struct decls *d)
{
    json_t *a = json_array();
    for (size_t i = 0; a && i < rs->n; i++) {
        const struct row *r = &rs->v[i];
        if (!r->is_new)
            continue;
        char due[32], local[64];
        const char *tz = zone_of(d, r->account);
        cli_fmt_time(r->due, due, sizeof due);
        fmt_local(tz, r->due, local, sizeof local);
        json_t *images = NULL;
        if (r->images[0]) {
            images = json_array();
            for (const char *p = r->images; *p;) {
                size_t l = strcspn(p, "\n");
                json_array_append_new(images, json_stringn(p, l));
                p += l + (p[l] == '\n');
            }
        }
        json_t *o =
            json_pack("{s:I, s:s, s:f, s:o, s:o, s:s, s:s, s:s, s:o?, s:o, s:s, s:o, s:s, s:s}",
                      "id", (json_int_t)r->id, "due", due, "due_at", r->due, "local",
                      tz[0] ? json_string(local) : json_null(), "tz",
                      tz[0] ? json_string(tz) : json_null(), "account", r->account, "kind", r->kind,
                      "mode", r->mode, "media", r->media[0] ? json_string(r->media) : json_null(),
                      "images", images ? images : json_null(), "caption", r->caption, "privacy",
                      r->privacy[0] ? json_string(r->privacy) : json_null(), "chosen_by",
                      r->chosen_by, "state", r->state);
        if (!o || json_array_append_new(a, o) != 0) {
            json_decref(a);
            a = NULL;
        }
    }
    char *s = a ? json_dumps(a, JSON_INDENT(2)) : NULL;
    json_decref(a);
    if (!s) {
        fprintf(stderr, "tikd plan: out of memory\n");
        return 1;
    }
    printf("%s\n", s);
    free(s);
    return 0;
}

static int cmp_dbl(const void *a, const void *b)
{
    double x = *(const double *)a, y = *(const double *)b;
    return x < y ? -1 : x > y;
}

/* Per account: a note when the direct posts in the queue (planned now or
 * before) exceed limits.daily_posts within some rolling window. */
static void daily_notes(const struct plan *p, const struct rows *rs, FILE *out)
{
    struct rl_limit l = rl_limit_of(&p->c->cfg.limits, RL_DAILY_POSTS);
    double cap = l.count - l.margin;
    if (l.count <= 0 || l.per <= 0)
        return;
    double *t = calloc(rs->n ? rs->n : 1, sizeof *t);
    bool *seen = calloc(rs->n ? rs->n : 1, sizeof *seen);
    for (size_t i = 0; t && seen && i < rs->n; i++) {
        if (seen[i] || !rs->v[i].is_new)
            continue;
        const char *acct = rs->v[i].account;
        size_t n = 0;
        for (size_t j = 0; j < rs->n; j++) {
            if (strcmp(rs->v[j].account, acct) != 0)
                continue;
            seen[j] = true;
            if (strcmp(rs->v[j].mode, "draft") != 0)
                t[n++] = rs->v[j].due;
        }
        qsort(t, n, sizeof *t, cmp_dbl);
        size_t best = 0, at = 0;
        for (size_t a = 0, b = 0; a < n; a++) {
            while (b < n && t[b] < t[a] + l.per)
                b++;
            if (b - a > best)
                best = b - a, at = a;
        }
        if ((double)best > cap) {
            char from[32];
            cli_fmt_time(t[at], from, sizeof from);
            fprintf(out,
                    "note: %s: %zu direct posts fall within %g h from %s, above "
                    "limits.daily_posts (%g): the pipeline would hold the rest back until the "
                    "window allows\n",
                    acct, best, l.per / 3600, from, cap);
        }
    }
    free(t);
    free(seen);
}

/* ---- the command ------------------------------------------------------------------------ */

/* The copy the dry run works on: the live database's, or an empty one. */
static int copy_db(struct cli *c, const char *dest, struct store **out)
{
    struct store *live = NULL;
    struct store_opts ro = {c->cfg.data_dir, c->cfg.map_initial, c->cfg.map_max, true};
    struct tikd_err e = {0};
    int rc = store_open(&live, &ro, &e);
    if (rc == 0) {
        rc = store_backup(live, dest, &e);
        store_close(live);
    } else if (rc == TIKD_ENOTFOUND) {
        rc = 0; /* no database yet: start from an empty one */
    }
    struct store_opts rw = {dest, c->cfg.map_initial, c->cfg.map_max, false};
    if (rc == 0)
        rc = store_open(out, &rw, &e);
    if (rc != 0)
        fprintf(stderr, "tikd plan: %s\n", e.msg);
    return rc ? 1 : 0;
}

static int dry_run(struct plan *p, const struct tenant_cfg *t, const char *rules, const char *media,
                   double days, bool json)
{
    struct host_opts o = cli_host_opts(&p->c->cfg, t, rules, p->loop, NULL, p->st);
    struct gen_report rep = {0};
    struct tikd_err e = {0};
    if (gen_build(&o, 0, &p->g, &rep, &e) != 0) {
        for (size_t i = 0; i < rep.nerrors; i++)
            fprintf(stderr, "%s\n", rep.errors[i]);
        if (!rep.nerrors)
            fprintf(stderr, "tikd plan: %s\n", e.msg);
        gen_report_free(&rep);
        return 1;
    }
    gen_report_free(&rep);
    struct rows rs = {0};
    store_read(p->st, last_id_txn, &rs.before, NULL);
    double start = clock_now(), end = start + days * 86400;
    call_hooks(p, HOOK_ON_LOAD, NULL, NULL);
    int rc = media ? feed_media(p, media) : 0;
    if (rc == 0)
        rc = fire_timers(p, end);
    clock_set_virtual(end);
    if (rc == 0 && (store_read(p->st, rows_txn, &rs, NULL) != 0 || rs.oom)) {
        fprintf(stderr, "tikd plan: cannot read the jobs\n");
        rc = 1;
    }
    if (rc == 0) {
        if (rs.n)
            qsort(rs.v, rs.n, sizeof *rs.v, cmp_due);
        size_t nnew = 0;
        for (size_t i = 0; i < rs.n; i++)
            nnew += rs.v[i].is_new;
        const struct decls *d = decls_of_gen(p->g);
        char from[32], to[32];
        cli_fmt_time(start, from, sizeof from);
        cli_fmt_time(end, to, sizeof to);
        if (json) {
            rc = print_json(&rs, d);
        } else if (nnew) {
            print_table(&rs, d, nnew);
            printf("%zu post%s planned from %s to %s (a dry run: nothing was sent or saved)\n",
                   nnew, nnew == 1 ? "" : "s", from, to);
        } else {
            printf("nothing planned from %s to %s (a dry run: nothing was sent or saved)\n", from,
                   to);
        }
        daily_notes(p, &rs, json ? stderr : stdout);
    }
    rows_free(&rs);
    gen_cancel_all(p->g, "the dry run is over");
    gen_release(p->g);
    p->g = NULL;
    return rc || p->failures ? 1 : 0;
}

static int run_plan(struct cli *c, int argc, char **argv)
{
    double days = 7;
    const char *media = NULL, *rules = NULL;
    bool json = false;
    const struct tenant_cfg *t;
    if (cli_take_tenant(c, &cmd_plan, &argc, argv, &t))
        return 1;
    for (int i = 1; i < argc; i++) {
        if (strcmp(argv[i], "--days") == 0 && i + 1 < argc) {
            char *end;
            days = strtod(argv[++i], &end);
            if (*end || !(days > 0 && days <= 366))
                return cli_usage_error(&cmd_plan, "--days takes a number of days from 1 to 366");
        } else if (strcmp(argv[i], "--media") == 0 && i + 1 < argc) {
            media = argv[++i];
        } else if (strcmp(argv[i], "--rules") == 0 && i + 1 < argc) {
            rules = argv[++i];
        } else if (strcmp(argv[i], "--json") == 0) {
            json = true;
        } else if (argv[i][0] == '-') {
            return cli_unknown(&cmd_plan, "option", argv[i]);
        } else {
            return cli_usage_error(&cmd_plan, "unexpected argument '%s'", argv[i]);
        }
    }
    if (cli_config(c))
        return 1;
    if (!t && rules)
        t = cli_tenant_of_dir(&c->cfg, rules);
    if (!t && c->cfg.ntenants)
        return cli_usage_error(&cmd_plan, "the config has tenants: name one with --tenant NAME");
    char tmp[PATH_MAX], db[PATH_MAX + 8];
    if (cli_tmpdir("plan", tmp, sizeof tmp))
        return 1;
    snprintf(db, sizeof db, "%s/db", tmp);
    struct plan p = {.c = c};
    int rc = copy_db(c, db, &p.st);
    if (rc == 0 && !(p.loop = ev_loop_new(EVFLAG_AUTO))) {
        fprintf(stderr, "tikd plan: cannot start an event loop\n");
        rc = 1;
    }
    if (rc == 0) {
        clock_set_virtual(clock_now()); /* from the real now on, time moves only here */
        rc = dry_run(&p, t, rules, media, days, json);
        clock_set_source(NULL);
    }
    if (p.loop)
        ev_loop_destroy(p.loop);
    store_close(p.st);
    cli_rmtree(tmp);
    return rc;
}

const struct cli_cmd cmd_plan = {
    "plan", run_plan, "plan [--days N] [--media DIR] [--rules DIR] [--tenant T] [--json]",
    "a dry run: what the rules would post, where and when",
    "Runs the rules on a copy of the database and a virtual clock, from now over the\n"
    "next N days (7 by default), and lists the posts they would plan: due time (UTC and\n"
    "the account's time zone), account, kind, mode, media, caption, privacy and the rule\n"
    "that chose them. Nothing is sent and nothing is written to the database.\n"
    "The rules run as under `tikd run`: on_load, then on_media(item) for each file of\n"
    "--media DIR (in name order; NAME.json next to a file is its sidecar), then every\n"
    "tikd.every / tikd.at timer in time order, the clock set to each firing. There is no\n"
    "network (tikd.http fails) and no pipeline; a call still waiting after 2 s of real\n"
    "time is cancelled and reported.\n"
    "  --days N       how far to look ahead (1 to 366)\n"
    "  --media DIR    hand each file in DIR to on_media\n"
    "  --rules DIR    try the rules in DIR instead of the config's rules_dir\n"
    "  --tenant T     the rules of tenant T, with its rights (required with tenants)\n"
    "  --json         a JSON array of the planned posts instead of the table\n"
    "Notes say when an account's direct posts would exceed limits.daily_posts in 24 h.\n"
    "Exit status 1 when a rule fails to load or a rule call fails (file:line on stderr).\n"};
