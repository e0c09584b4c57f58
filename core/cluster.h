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

/* Free. Leases are not given back: they end at Redis after at most a lease
 * (a node's clean handover on stop is to come with the daemon's use). */
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

/* The home of account among the live node names (rendezvous hashing). */
const char *cluster_home(const char *const *names, size_t n, const char *account);

#endif
