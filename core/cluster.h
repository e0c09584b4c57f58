/* cluster.h - which node of a cluster acts for an account: leases with
 * fencing tokens, held in Redis (docs/cluster.md).
 *
 * Every node registers itself in a sorted set of live nodes, with an expiry
 * set by Redis's own clock. Among the live nodes, rendezvous hashing of the
 * node names gives each account one home; a node asks for the leases of the
 * accounts at home with it and gives back the others. A lease is granted by
 * one Redis script, atomically with its fencing token: a number per account
 * that grows by one with every grant and is never reused (Redis must persist
 * it: AOF with appendfsync always).
 *
 * A lease lasts `lease` seconds at Redis, from when Redis ran the script. The
 * node counts it from before it sent the request, on CLOCK_BOOTTIME (which
 * runs on while the process is stopped or the machine sleeps), and stops
 * acting `margin` seconds before that end: cluster_fence() answers 0 from
 * then on, whatever the network or Redis is doing. So a node that cannot
 * renew (Redis down, a partition, a long pause) has stopped before any other
 * node can be granted the lease.
 *
 * Everything runs on the caller's libev loop through hiredis's async client;
 * nothing blocks. Renewals run every lease/3 seconds; a lost connection is
 * retried with backoff. */
#ifndef TIKD_CLUSTER_H
#define TIKD_CLUSTER_H

#include <ev.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "err.h"

struct cluster_opts {
    const char *redis; /* "IP:port", "[IPv6]:port" or "unix:/path" (no names: resolving blocks) */
    const char *user;  /* Redis ACL user, or NULL (AUTH with the password alone) */
    const char *password; /* or NULL: no AUTH; never logged */
    const char *node;     /* this node's name: [A-Za-z0-9._-], 1-64 */
    const char *prefix;   /* the keys' prefix (default "tikd") */
    double lease;         /* seconds a lease lasts at Redis (>= 1) */
    double margin;        /* seconds before its end the node stops acting (< lease/3) */
};

/* A lease changed: held (with its fence) or no longer held. It runs while
 * the leases are walked: it must not call cluster_want() or cluster_free(). */
typedef void (*cluster_change_fn)(void *ud, const char *account, uint64_t fence, bool held);

struct cluster;

/* 0 if opts may start a cluster, else a clear error naming the bad value. */
int cluster_opts_check(const struct cluster_opts *o, struct tikd_err *e);

/* Check opts (as cluster_opts_check) and start connecting. */
struct cluster *cluster_new(struct ev_loop *loop, const struct cluster_opts *o,
                            cluster_change_fn fn, void *ud, struct tikd_err *e);

/* A clean stop, once nothing acts for any account here: each held
 * account's last state written through and its lease given back, under its
 * fence, on a blocking connection (timeout seconds), so the others take it
 * at their next round instead of after the lease. Returns how many were
 * given back. */
size_t cluster_stop(struct cluster *c, double timeout);

/* Free. Leases not given back (cluster_stop) end at Redis after at most a
 * lease. */
void cluster_free(struct cluster *c);

/* This node may act for account (it is asked for at the next round). */
int cluster_want(struct cluster *c, const char *account);

/* The fence under which this node may act for account right now, or 0. */
uint64_t cluster_fence(struct cluster *c, const char *account);

/* What the cluster looks like from here, for status views. */
struct cluster_node_view {
    const char *id; /* "name/instance" */
    double expires; /* seconds from the last round to its registration's end */
};
struct cluster_lease_view {
    const char *account;
    uint64_t fence;
    bool held;
    double valid_for; /* seconds this node may still act for it (0: not held) */
};
size_t cluster_nodes(const struct cluster *c, struct cluster_node_view *out, size_t n);
size_t cluster_leases(struct cluster *c, struct cluster_lease_view *out, size_t n);
const char *cluster_self(const struct cluster *c); /* "name/instance" */
bool cluster_connected(const struct cluster *c);

/* ---- accounts that move: their state goes with the lease (core/replica) ------ */

struct replica_snap;

/* How the state of an account is read out of this node and into it. With
 * them set, a lease granted here is acted on only once the account's state
 * in Redis is in this node's database (import, durable before it returns;
 * TIKD_ENOTFOUND: there is none anywhere yet, asked again each round), and
 * every request for the account waits (cluster_admit) until Redis holds the
 * state it leaves from. pushed runs when a write-through ends: requests
 * waiting on it may ask again. */
struct cluster_data {
    int (*export)(void *ud, const char *account, const uint64_t *prev, size_t nprev,
                  struct replica_snap *s);
    int (*import)(void *ud, const char *account, const struct replica_snap *s);
    void (*pushed)(void *ud);
    /* jobs planned here for an account held elsewhere (s->open), offered to
     * its holder through Redis; and the holder taking the offered ones */
    int (*offer)(void *ud, const char *account, struct replica_snap *s);
    int (*take)(void *ud, const char *account, const struct replica_snap *s);
    void *ud;
};
void cluster_set_data(struct cluster *c, const struct cluster_data *d);

/* The account is in this node's database: wanted, and its state offered to
 * Redis (account, tokens and budgets, no jobs) if Redis has none yet, so a
 * node without it can be granted it. */
int cluster_local(struct cluster *c, const char *account);

/* May a request for account leave now? Its fence (this node holds the
 * lease, and Redis holds the account's state as it is here), 0 (not held;
 * or, with claim, *full_for > 0: the app's cap of active creators is full
 * across the cluster for that many seconds), or CLUSTER_WAIT: the state is
 * being written through, or the claim asked of Redis (cluster_data's
 * pushed says when to ask again). claim: the request makes the account one
 * of the app's active creators (an init); with a cap set, each such request
 * counts it in Redis first, once for the whole cluster. */
#define CLUSTER_WAIT UINT64_MAX
uint64_t cluster_admit(struct cluster *c, const char *account, bool claim, double *full_for);

/* The app's cap: at most cap creators active per window seconds across the
 * cluster (limits.active_users, limits.active_window); cap 0: none. */
void cluster_set_app_cap(struct cluster *c, double cap, double window);

/* ---- the whole cluster, as Redis has it (`tikd status`) ----------------------- */

struct cluster_status_node {
    char id[80];    /* "name/instance" */
    double expires; /* seconds until its registration ends */
    size_t holds;   /* accounts whose lease it holds */
};
struct cluster_status_lease {
    char account[65];
    char node[80]; /* its holder, or "" */
    uint64_t fence;
    double age; /* seconds since it was granted (0: not held) */
};
struct cluster_status {
    struct cluster_status_node *nodes;
    size_t nnodes;
    struct cluster_status_lease *leases; /* every account some node has, by name */
    size_t nleases;
};

/* Read it from Redis, blocking (a command's, never the loop's), within
 * timeout seconds. 0, or a clear error. Free with cluster_status_free(). */
int cluster_status_read(const struct cluster_opts *o, double timeout, struct cluster_status *out,
                        struct tikd_err *e);
void cluster_status_free(struct cluster_status *s);

/* The home of account among the live node names (rendezvous hashing). */
const char *cluster_home(const char *const *names, size_t n, const char *account);

#endif
