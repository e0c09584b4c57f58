/* cmd_status.c - `tikd status`: is tikd running, which rules are live, how the
 * last reload went (every error, with file:line), and what the queue holds.
 * It reads the database only (the daemon keeps its status there), so it
 * works the same beside a running daemon, a stopped one, or a wedged one. */
#include "cli.h"
#include "views.h"

#include "../core/clock.h"
#include "../core/cluster.h"
#include "../core/job.h"
#include "../core/runlock.h"
#include "../core/store.h"

#include <jansson.h>
#include <stdio.h>
#include <string.h>

struct status_read {
    json_t *status;
    struct job_counts n; /* by state, and the upload sessions lost inits left at TikTok */
};

static int read_txn(struct store_txn *t, void *ctx)
{
    struct status_read *r = ctx;
    static const char key[] = "daemon.status";
    struct store_val v;
    if (store_get(t, STORE_DB_META, key, sizeof key - 1, &v) == 0)
        r->status = json_loadb(v.p, v.n, 0, NULL);
    return job_counts_get(t, &r->n); /* one lookup, however many jobs */
}

/* The cluster as Redis has it: its live nodes and every account's lease
 * (NULL, with a reason in e, when Redis does not answer). */
static json_t *cluster_json(const struct cli *c, struct tikd_err *e)
{
    struct cluster_opts o = config_cluster_opts(&c->cfg);
    struct cluster_status st;
    if (cluster_status_read(&o, 2.0, &st, e) != 0)
        return NULL;
    json_t *nodes = json_array(), *leases = json_array();
    for (size_t i = 0; i < st.nnodes; i++)
        json_array_append_new(nodes, json_pack("{s:s, s:f, s:I}", "id", st.nodes[i].id,
                                               "expires_in_s", st.nodes[i].expires, "holds",
                                               (json_int_t)st.nodes[i].holds));
    for (size_t i = 0; i < st.nleases; i++) {
        const struct cluster_status_lease *l = &st.leases[i];
        json_array_append_new(leases,
                              json_pack("{s:s, s:o, s:I, s:f}", "account", l->account, "node",
                                        l->node[0] ? json_string(l->node) : json_null(), "fence",
                                        (json_int_t)l->fence, "age_s", l->age));
    }
    cluster_status_free(&st);
    return json_pack("{s:s, s:s, s:o, s:o}", "node", c->cfg.cluster_node, "redis",
                     c->cfg.cluster_redis, "nodes", nodes, "leases", leases);
}

static void print_cluster(const struct cli *c)
{
    struct tikd_err e = {0};
    json_t *cl = cluster_json(c, &e);
    if (!cl) {
        printf("cluster:     node %s: %s\n", c->cfg.cluster_node, e.msg);
        return;
    }
    json_t *nodes = json_object_get(cl, "nodes"), *leases = json_object_get(cl, "leases");
    printf("cluster:     node %s, %zu live node%s (Redis %s), %zu accounts\n", c->cfg.cluster_node,
           json_array_size(nodes), json_array_size(nodes) == 1 ? "" : "s", c->cfg.cluster_redis,
           json_array_size(leases));
    for (size_t i = 0; i <= json_array_size(nodes); i++) {
        json_t *n = json_array_get(nodes, i); /* past the end: the accounts no node holds */
        const char *id = n ? json_string_value(json_object_get(n, "id")) : NULL;
        size_t shown = 0, all = 0;
        for (size_t k = 0; k < json_array_size(leases); k++) {
            json_t *l = json_array_get(leases, k);
            const char *holder = json_string_value(json_object_get(l, "node"));
            if (id ? !holder || strcmp(holder, id) != 0 : holder != NULL)
                continue;
            if (all++ == 0 && id)
                printf("  %s (registered %.1f s more) holds:", id,
                       json_number_value(json_object_get(n, "expires_in_s")));
            else if (all == 1)
                printf("  held by no node:");
            if (shown < 20) {
                const char *sep = shown++ ? ", " : " ";
                if (id)
                    printf("%s%s (fence %lld, held %.0f s)", sep,
                           json_string_value(json_object_get(l, "account")),
                           (long long)json_integer_value(json_object_get(l, "fence")),
                           json_number_value(json_object_get(l, "age_s")));
                else
                    printf("%s%s", sep, json_string_value(json_object_get(l, "account")));
            }
        }
        if (all > shown)
            printf(", and %zu more (tikd status --json)", all - shown);
        if (all)
            printf("\n");
        else if (id)
            printf("  %s (registered %.1f s more) holds no account\n", id,
                   json_number_value(json_object_get(n, "expires_in_s")));
    }
    /* leases of a node that is gone (killed, or stopping): they end within a lease */
    size_t gone = 0;
    for (size_t k = 0; k < json_array_size(leases); k++) {
        json_t *l = json_array_get(leases, k);
        const char *holder = json_string_value(json_object_get(l, "node"));
        bool live = false;
        for (size_t i = 0; holder && i < json_array_size(nodes) && !live; i++)
            live = strcmp(holder,
                          json_string_value(json_object_get(json_array_get(nodes, i), "id"))) == 0;
        if (!holder || live)
            continue;
        if (gone++ == 0)
            printf("  held by nodes no longer live (until their leases end):");
        if (gone <= 20)
            printf("%s%s (%s, fence %lld)", gone > 1 ? ", " : " ",
                   json_string_value(json_object_get(l, "account")), holder,
                   (long long)json_integer_value(json_object_get(l, "fence")));
    }
    if (gone > 20)
        printf(", and %zu more", gone - 20);
    if (gone)
        printf("\n");
    json_decref(cl);
}

/* --json: what GET /api/v1/status shows, with running as the lock says. */
static int status_view(struct store_txn *t, void *ud, json_t **out)
{
    struct cli *c = ud;
    int rc = view_status(t, out);
    if (rc != 0)
        return rc;
    int pid = 0;
    struct tikd_err e = {0};
    bool alive = runlock_holder(c->cfg.data_dir, &pid, &e) == 1;
    json_object_set_new(*out, "running", json_boolean(alive));
    if (alive && pid)
        json_object_set_new(*out, "pid", json_integer(pid));
    if (c->cfg.cluster_redis) {
        json_t *cl = cluster_json(c, &e);
        json_object_set_new(
            *out, "cluster",
            cl ? cl : json_pack("{s:s, s:s}", "node", c->cfg.cluster_node, "error", e.msg));
    }
    return 0;
}

static int run_status(struct cli *c, int argc, char **argv)
{
    bool json = cli_take_flag(&argc, argv, "--json");
    if (argc > 1)
        return argv[1][0] == '-' ? cli_unknown(&cmd_status, "option", argv[1])
                                 : cli_usage_error(&cmd_status, "takes no arguments");
    if (json)
        return cli_config(c) ? 1 : cli_json_view(c, status_view, c, "database");
    struct store *s;
    if (cli_open_store(c, true, &s))
        return 1;
    struct status_read r = {0};
    int rc = store_read(s, read_txn, &r, NULL);
    store_close(s);
    if (rc != 0) {
        fprintf(stderr, "tikd status: cannot read the database\n");
        json_decref(r.status);
        return 1;
    }
    /* alive is what the data directory's lock says, never a pid probe: a
     * dead daemon's pid may belong to any process by now */
    int pid = (int)json_integer_value(json_object_get(r.status, "pid"));
    int lock_pid;
    struct tikd_err e = {0};
    int held = runlock_holder(c->cfg.data_dir, &lock_pid, &e);
    if (held < 0)
        fprintf(stderr, "tikd status: %s\n", e.msg);
    bool alive = held == 1;
    if (alive && lock_pid)
        pid = lock_pid;
    char since[32];
    cli_fmt_time(json_number_value(json_object_get(r.status, "started_at")), since, sizeof since);
    if (!r.status)
        printf("tikd:        never ran on this database\n");
    else
        printf("tikd:        %s (pid %d, started %s)\n", alive ? "running" : "not running", pid,
               since);
    json_t *tenants = json_object_get(r.status, "tenants");
    const char *tn;
    json_t *tv;
    json_object_foreach(tenants, tn, tv)
    {
        json_t *files = json_object_get(tv, "rules"), *tl = json_object_get(tv, "last_reload");
        json_t *errors = json_object_get(tl, "errors");
        bool ok = json_is_true(json_object_get(tl, "ok"));
        printf("tenant %s: generation %d, %zu files; last reload generation %d: %s\n", tn,
               (int)json_integer_value(json_object_get(tv, "live_gen")), json_array_size(files),
               (int)json_integer_value(json_object_get(tl, "gen")),
               ok ? "ok"
               : json_integer_value(json_object_get(tv, "live_gen"))
                   ? "FAILED, its rules above stay live"
                   : "FAILED, it has no live rules (its posts wait)");
        for (size_t i = 0; i < json_array_size(errors); i++)
            printf("  %s\n", json_string_value(json_array_get(errors, i)));
    }
    json_t *rules = json_object_get(r.status, "rules");
    printf("live rules:  generation %d, %zu files",
           (int)json_integer_value(json_object_get(r.status, "live_gen")), json_array_size(rules));
    for (size_t i = 0; i < json_array_size(rules); i++)
        printf("%s%s", i ? ", " : ": ", json_string_value(json_array_get(rules, i)));
    printf("\n");
    json_t *last = json_object_get(r.status, "last_reload");
    if (last && !tenants) { /* with tenants, each tenant's above */
        char at[32];
        cli_fmt_time(json_number_value(json_object_get(last, "at")), at, sizeof at);
        json_t *errors = json_object_get(last, "errors");
        printf("last reload: generation %d at %s: %s\n",
               (int)json_integer_value(json_object_get(last, "gen")), at,
               json_is_true(json_object_get(last, "ok")) ? "ok"
                                                         : "FAILED, the rules above stay live");
        for (size_t i = 0; i < json_array_size(errors); i++)
            printf("  %s\n", json_string_value(json_array_get(errors, i)));
    }
    const struct job_counts *n = &r.n;
    printf("jobs:        %llu", (unsigned long long)n->jobs);
    const char *sep = ": ";
    for (int st = 0; st < 16; st++) {
        if (!n->by_state[st])
            continue;
        printf("%s%llu %s", sep, (unsigned long long)n->by_state[st],
               job_state_name((enum job_state)st));
        sep = ", ";
    }
    printf("\n");
    if (n->by_state[JOB_UNSURE])
        printf("attention:   %llu job%s TikTok may have taken unanswered: not sent again, waiting "
               "for TikTok to say (`tikd queue --state unsure`)\n",
               (unsigned long long)n->by_state[JOB_UNSURE],
               n->by_state[JOB_UNSURE] == 1 ? "" : "s");
    if (n->orphans)
        printf(
            "orphans:     %llu upload session%s at TikTok from inits whose answer was lost (%llu "
            "job%s; each counted against its creator's daily cap, never used)\n",
            (unsigned long long)n->orphans, n->orphans == 1 ? "" : "s",
            (unsigned long long)n->orphan_jobs, n->orphan_jobs == 1 ? "" : "s");
    if (c->cfg.cluster_redis)
        print_cluster(c);
    bool failed = last && !json_is_true(json_object_get(last, "ok"));
    json_decref(r.status);
    return alive && !failed ? 0 : 1;
}

const struct cli_cmd cmd_status = {
    "status", run_status, "status [--json]",
    "is tikd running, which rules are live, how the last reload went",
    "Reads the database (never the daemon itself): whether `tikd run` is up, the live rule\n"
    "generation and its files, the last reload (a failed one lists every error as\n"
    "file:line: message; the rules before it stay live), and the jobs by state. In a\n"
    "cluster, also the live nodes and every account's lease (holder, fence, age), read from\n"
    "Redis. Exit status\n"
    "0 when tikd runs and its last reload went well, 1 otherwise (for monitoring).\n"};
