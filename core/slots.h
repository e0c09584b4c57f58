/* slots.h - schedules: when an account may post, and the ledger that books
 * each slot once.
 *
 * A schedule is cron slots evaluated in a time zone (core/cron), minus
 * blackout windows (recurring: a cron start and a length; or absolute: from
 * and to), with a minimum spacing between two posts of the account, a
 * daily maximum per local day, and a jitter that moves a post a random but
 * reproducible amount into its slot. Rules declare schedules; the bookings
 * live in LMDB (STORE_DB_SLOTS), written in the transaction that creates the
 * job, so a restart or a reload never books a slot twice. */
#ifndef TIKD_SLOTS_H
#define TIKD_SLOTS_H

#include "cron.h"
#include "err.h"
#include "store.h"

#include <stdbool.h>
#include <stdint.h>

#define SCHED_SLOTS     16
#define SCHED_BLACKOUTS 16

struct blackout {
    bool recurring;
    struct cron start; /* recurring: a window opens at each firing ... */
    double length;     /* ... for this many seconds */
    double from, to;   /* absolute: [from, to) in seconds since the epoch */
};

struct schedule {
    char name[64];
    char account[65];
    char tz[64]; /* IANA zone; "" is UTC */
    struct cron slots[SCHED_SLOTS];
    int nslots;
    struct blackout blackout[SCHED_BLACKOUTS];
    int nblackout;
    double jitter;  /* seconds into the slot, at most */
    double spacing; /* seconds between two posts of the account, at least */
    int daily_max;  /* posts of the account per local day in tz (0: no limit) */
};

/* Whether t falls in a blackout of s: true and *until (when it ends). */
bool slots_blacked_out(const struct schedule *s, double t, double *until);

/* The first free slot of s after `after`: not blacked out, no booking of
 * the account within the spacing (nor the same slot), under the daily
 * maximum. *slot is the slot's own time, *due the moment to post (slot plus
 * jitter). TIKD_ENOTFOUND with a message when there is none within a year.
 * Reads only. */
int slots_next_free(struct store_txn *t, const struct schedule *s, double after, double *slot,
                    double *due, struct tikd_err *e);

/* Book slot (found by slots_next_free in the same transaction) for job, in
 * t, the transaction that creates the job. */
int slots_take(struct store_txn *t, const struct schedule *s, double slot, uint64_t job,
               struct tikd_err *e);

/* Free the booking of account at slot (its job was cancelled). */
int slots_release(struct store_txn *t, const char *account, double slot);

#endif
