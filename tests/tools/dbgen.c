/* dbgen.c - an agency's database for `make bench`: ACCOUNTS connected
 * accounts (tokens sealed by the vault, valid for a day, refreshable for a
 * year) and JOBS jobs spread over them, the way tikd writes them (core/job),
 * nearly all published long ago and one in a thousand planned for tomorrow:
 * what a daemon finds at a start after months of work.
 *   dbgen DATA_DIR VAULT_KEY_FILE ACCOUNTS JOBS
 * With --clone, a post planned by `tikd post` (job JOB_ID, with every check
 * the CLI makes) is planned again for every other account in the store, due
 * at once: the burst of an agency's campaign launch.
 *   dbgen --clone DATA_DIR JOB_ID
 * Prints what it wrote and how long it took. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "../../core/account.h"
#include "../../core/clock.h"
#include "../../core/job.h"
#include "../../core/store.h"
#include "../../core/vault.h"

#define BATCH 5000

struct gen {
    struct vault *v;
    long accounts, jobs, done_accounts, done_jobs; /* committed */
    long at;                                       /* in the transaction being written */
    double now;
    struct job *j;
    struct tikd_err e;
};

static void name_of(long i, char *out, size_t n)
{
    snprintf(out, n, "client%06ld", i);
}

static int accounts_txn(struct store_txn *t, void *ctx)
{
    struct gen *g = ctx;
    if (g->done_accounts == 0 && vault_check(g->v, t, &g->e) != 0)
        return g->e.code;
    g->at = g->done_accounts; /* run again after a map growth: from the batch's start */
    for (int k = 0; k < BATCH && g->at < g->accounts; k++, g->at++) {
        struct account a;
        char name[32], tok[64];
        name_of(g->at, name, sizeof name);
        account_init(&a, name, g->now);
        a.state = ACCT_ACTIVE;
        snprintf(a.open_id, sizeof a.open_id, "-000Gen%012ld%016d", g->at, 0);
        snprintf(a.scopes, sizeof a.scopes, "user.info.basic,video.publish,video.upload");
        a.access_expires_at = g->now + 86400;
        a.refresh_expires_at = g->now + 365 * 86400.0;
        a.access_lifetime = 86400;
        int rc = account_put(t, &a);
        snprintf(tok, sizeof tok, "act.gen%ld", g->at);
        if (rc == 0)
            rc = vault_put(g->v, t, a.id, "access_token", tok, strlen(tok), &g->e);
        snprintf(tok, sizeof tok, "rft.gen%ld", g->at);
        if (rc == 0)
            rc = vault_put(g->v, t, a.id, "refresh_token", tok, strlen(tok), &g->e);
        if (rc != 0)
            return rc;
    }
    return 0;
}

static int jobs_txn(struct store_txn *t, void *ctx)
{
    struct gen *g = ctx;
    struct job *j = g->j;
    g->at = g->done_jobs;
    for (int k = 0; k < BATCH && g->at < g->jobs; k++, g->at++) {
        long n = g->at;
        bool later = n % 1000 == 999;
        memset(j, 0, sizeof *j);
        name_of(n % g->accounts, j->account, sizeof j->account);
        snprintf(j->media, sizeof j->media, "/srv/media/client%06ld/clip%07ld.mp4", n % g->accounts,
                 n);
        snprintf(j->media_hash, sizeof j->media_hash, "%016lx%048d", (unsigned long)n * 2654435761u,
                 0);
        snprintf(j->caption, sizeof j->caption, "Clip %ld of the spring campaign #agency #tikd", n);
        snprintf(j->privacy, sizeof j->privacy, "PUBLIC_TO_EVERYONE");
        snprintf(j->chosen_by, sizeof j->chosen_by, "rule:client.lua@gen1");
        snprintf(j->mime, sizeof j->mime, "video/mp4");
        j->opt.cover_ms = -1;
        j->due_at = later ? g->now + 86400 + (double)(n % 3600) : g->now - 86400.0 * 90;
        int rc = job_create(t, j);
        if (rc == 0 && !later) {
            j->state = JOB_PUBLISHED;
            snprintf(j->publish_id, sizeof j->publish_id, "v_pub_gen~%ld", n);
            snprintf(j->post_ids, sizeof j->post_ids, "%ld", 7000000000000000000 + n);
            j->attempts = 1;
            j->plan = (struct chunk_plan){5000000, 5000000, 1};
            j->chunks_done = 1;
            rc = job_put(t, j);
        }
        if (rc != 0)
            return rc;
    }
    return 0;
}

struct clone {
    struct job *tmpl, *j;
    char (*names)[65];
    long n, cap, done, at;
};

static int name_one(const struct account *a, void *ctx)
{
    struct clone *c = ctx;
    if (strcmp(a->name, c->tmpl->account) == 0)
        return 0;
    if (c->n == c->cap) {
        long nc = c->cap ? c->cap * 2 : 1024;
        char(*g)[65] = realloc(c->names, (size_t)nc * sizeof *g);
        if (!g)
            return TIKD_ENOMEM;
        c->names = g;
        c->cap = nc;
    }
    snprintf(c->names[c->n++], sizeof c->names[0], "%s", a->name);
    return 0;
}

static int names_txn(struct store_txn *t, void *ctx)
{
    struct clone *c = ctx;
    int rc = job_get(t, c->tmpl->id, c->tmpl);
    return rc ? rc : account_foreach(t, name_one, c);
}

static int clones_txn(struct store_txn *t, void *ctx)
{
    struct clone *c = ctx;
    c->at = c->done;
    for (int k = 0; k < BATCH && c->at < c->n; k++, c->at++) {
        *c->j = *c->tmpl;
        snprintf(c->j->account, sizeof c->j->account, "%s", c->names[c->at]);
        c->j->id = 0;
        int rc = job_create(t, c->j);
        if (rc != 0)
            return rc;
    }
    return 0;
}

static int clone_main(char **argv)
{
    struct store_opts o = {argv[2], 64 << 20, (size_t)64 << 30, false};
    struct store *s;
    struct tikd_err e = {0};
    struct clone c = {.tmpl = calloc(1, sizeof(struct job)), .j = malloc(sizeof(struct job))};
    c.tmpl->id = strtoull(argv[3], NULL, 10);
    if (store_open(&s, &o, &e) != 0 || store_read(s, names_txn, &c, &e) != 0) {
        fprintf(stderr, "dbgen: %s\n", e.msg[0] ? e.msg : "no such job");
        return 1;
    }
    struct timespec t0, t1;
    clock_gettime(CLOCK_MONOTONIC, &t0);
    while (c.done < c.n) {
        if (store_write(s, clones_txn, &c, &e) != 0) {
            fprintf(stderr, "dbgen: jobs: %s\n", e.msg);
            return 1;
        }
        c.done = c.at;
    }
    clock_gettime(CLOCK_MONOTONIC, &t1);
    printf("{\"jobs\": %ld, \"seconds\": %.2f}\n", c.n,
           (t1.tv_sec - t0.tv_sec) + (t1.tv_nsec - t0.tv_nsec) / 1e9);
    store_close(s);
    free(c.names);
    free(c.tmpl);
    free(c.j);
    return 0;
}

int main(int argc, char **argv)
{
    if (argc == 4 && strcmp(argv[1], "--clone") == 0)
        return clone_main(argv);
    if (argc != 5) {
        fprintf(stderr, "usage: dbgen DATA_DIR VAULT_KEY_FILE ACCOUNTS JOBS\n"
                        "       dbgen --clone DATA_DIR JOB_ID\n");
        return 2;
    }
    struct gen g = {.accounts = atol(argv[3]), .jobs = atol(argv[4]), .now = clock_now()};
    if (g.accounts <= 0 || g.jobs < 0) {
        fprintf(stderr, "dbgen: ACCOUNTS must be at least 1\n");
        return 2;
    }
    struct store_opts o = {argv[1], 64 << 20, (size_t)64 << 30, false};
    struct store *s;
    if (vault_load(&g.v, argv[2], NULL, &g.e) != 0 || store_open(&s, &o, &g.e) != 0) {
        fprintf(stderr, "dbgen: %s\n", g.e.msg);
        return 1;
    }
    g.j = malloc(sizeof *g.j);
    struct timespec t0, t1;
    clock_gettime(CLOCK_MONOTONIC, &t0);
    while (g.done_accounts < g.accounts) {
        if (store_write(s, accounts_txn, &g, &g.e) != 0) {
            fprintf(stderr, "dbgen: accounts: %s\n", g.e.msg);
            return 1;
        }
        g.done_accounts = g.at;
    }
    while (g.done_jobs < g.jobs) {
        if (store_write(s, jobs_txn, &g, &g.e) != 0) {
            fprintf(stderr, "dbgen: jobs: %s\n", g.e.msg);
            return 1;
        }
        g.done_jobs = g.at;
    }
    clock_gettime(CLOCK_MONOTONIC, &t1);
    printf("{\"accounts\": %ld, \"jobs\": %ld, \"seconds\": %.2f, \"map_bytes\": %zu}\n",
           g.accounts, g.jobs, (t1.tv_sec - t0.tv_sec) + (t1.tv_nsec - t0.tv_nsec) / 1e9,
           store_map_size(s));
    free(g.j);
    store_close(s);
    vault_free(g.v);
    return 0;
}
