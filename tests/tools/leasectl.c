/* leasectl.c - one cluster node's leases (core/cluster) on a loop of its own,
 * for the integration tests against a real redis-server. It wants every
 * account named, and every ACT seconds "acts" for each one whose lease it may
 * act under now (cluster_fence), as a post's step would: the lines it prints
 * are the ledger the tests check (no two nodes acting for one account at
 * once, fences that only grow).
 *
 *   leasectl REDIS NODE LEASE MARGIN ACT ACCOUNT...
 * Prints JSON lines, each with "t" (CLOCK_BOOTTIME seconds, one clock for
 * every process of the machine):
 *   {"event": "held" | "lost", "account": A, "fence": N}
 *   {"event": "act", "account": A, "fence": N}
 *   {"event": "view", "self": ID, "connected": B, "nodes": [...], "leases": [...]}  (SIGUSR1)
 * TIKD_REDIS_PASSWORD (and TIKD_REDIS_USER) are sent as AUTH. SIGTERM ends it. */
#include <ev.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>

#include "../../core/clock.h"
#include "../../core/cluster.h"
#include "../../core/log.h"

static struct cluster *cl;
static char **accounts;
static int naccounts;

static void changed(void *ud, const char *account, uint64_t fence, bool held)
{
    (void)ud;
    printf("{\"t\": %.6f, \"event\": \"%s\", \"account\": \"%s\", \"fence\": %llu}\n", clock_boot(),
           held ? "held" : "lost", account, (unsigned long long)fence);
    fflush(stdout);
}

static void on_act(struct ev_loop *loop, ev_timer *w, int revents)
{
    (void)loop;
    (void)w;
    (void)revents;
    for (int i = 0; i < naccounts; i++) {
        double t = clock_boot(); /* before the question: an act is no later than this */
        uint64_t f = cluster_fence(cl, accounts[i]);
        if (f)
            printf("{\"t\": %.6f, \"event\": \"act\", \"account\": \"%s\", \"fence\": %llu}\n", t,
                   accounts[i], (unsigned long long)f);
    }
    fflush(stdout);
}

static void on_view(struct ev_loop *loop, ev_signal *w, int revents)
{
    (void)loop;
    (void)w;
    (void)revents;
    struct cluster_node_view nodes[64];
    size_t nn = cluster_nodes(cl, nodes, 64);
    struct cluster_lease_view *leases = calloc((size_t)naccounts + 1, sizeof *leases);
    if (!leases)
        return;
    size_t nl = cluster_leases(cl, leases, (size_t)naccounts);
    printf("{\"t\": %.6f, \"event\": \"view\", \"self\": \"%s\", \"connected\": %s, \"nodes\": [",
           clock_boot(), cluster_self(cl), cluster_connected(cl) ? "true" : "false");
    for (size_t i = 0; i < nn && i < 64; i++)
        printf("%s{\"id\": \"%s\", \"expires\": %.3f}", i ? ", " : "", nodes[i].id,
               nodes[i].expires);
    printf("], \"leases\": [");
    for (size_t i = 0; i < nl && i < (size_t)naccounts; i++)
        printf("%s{\"account\": \"%s\", \"fence\": %llu, \"held\": %s, \"valid_for\": %.3f}",
               i ? ", " : "", leases[i].account, (unsigned long long)leases[i].fence,
               leases[i].held ? "true" : "false", leases[i].valid_for);
    printf("]}\n");
    fflush(stdout);
    free(leases);
}

static void on_term(struct ev_loop *loop, ev_signal *w, int revents)
{
    (void)w;
    (void)revents;
    ev_break(loop, EVBREAK_ALL);
}

int main(int argc, char **argv)
{
    if (argc < 7 || !(atof(argv[5]) > 0)) {
        fprintf(stderr, "usage: leasectl REDIS NODE LEASE MARGIN ACT ACCOUNT...\n");
        return 2;
    }
    signal(SIGPIPE, SIG_IGN);
    tlog_setup(TLOG_INFO, TLOG_LOGFMT, 2);
    struct ev_loop *loop = ev_default_loop(0);
    struct cluster_opts o = {.redis = argv[1],
                             .node = argv[2],
                             .lease = atof(argv[3]),
                             .margin = atof(argv[4]),
                             .user = getenv("TIKD_REDIS_USER"),
                             .password = getenv("TIKD_REDIS_PASSWORD")};
    struct tikd_err e = {0};
    cl = cluster_new(loop, &o, changed, NULL, &e);
    if (!cl) {
        fprintf(stderr, "leasectl: %s\n", e.msg);
        return 2;
    }
    accounts = argv + 6;
    naccounts = argc - 6;
    for (int i = 0; i < naccounts; i++)
        if (cluster_want(cl, accounts[i]) != 0)
            return 1;
    ev_timer act;
    ev_timer_init(&act, on_act, atof(argv[5]), atof(argv[5]));
    ev_timer_start(loop, &act);
    ev_signal usr1, term;
    ev_signal_init(&usr1, on_view, SIGUSR1);
    ev_signal_start(loop, &usr1);
    ev_signal_init(&term, on_term, SIGTERM);
    ev_signal_start(loop, &term);
    ev_run(loop, 0);
    cluster_free(cl);
    return 0;
}
