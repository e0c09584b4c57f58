/* slots.c - finding and booking the next free slot of a schedule (see
 * slots.h).
 *
 * Ledger (STORE_DB_SLOTS): account '\0' be64(slot in ms) -> be64(job),
 * schedule name. Keys of one account sort by time, so the spacing check
 * reads only the bookings near a candidate. Bookings more than two days
 * (and twice the spacing) in the past are pruned when a new one is made. */
#include "slots.h"
#include "codec.h"
#include "clock.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define HORIZON (366.0 * 86400)

bool slots_blacked_out(const struct schedule *s, double t, double *until)
{
    bool in = false;
    double end = t;
    for (int i = 0; i < s->nblackout; i++) {
        const struct blackout *b = &s->blackout[i];
        if (!b->recurring) {
            if (t >= b->from && t < b->to && b->to > end) {
                in = true;
                end = b->to;
            }
            continue;
        }
        /* the window that opened last before t, if it is still open */
        double f;
        if (cron_next(&b->start, s->tz, t - b->length, &f, NULL) == 0 && f <= t &&
            f + b->length > t && f + b->length > end) {
            in = true;
            end = f + b->length;
        }
    }
    if (in && until)
        *until = end;
    return in;
}

static size_t ledger_key(unsigned char *k, size_t n, const char *account, double slot)
{
    size_t al = strlen(account);
    if (al + 9 > n)
        return 0;
    memcpy(k, account, al);
    k[al] = '\0';
    store_be64_put(k + al + 1, (uint64_t)llround(slot * 1000));
    return al + 9;
}

struct near_ctx {
    size_t prefix;
    double slot, spacing;
    const struct schedule *s;
    struct cron_local day; /* the candidate's local day */
    int same_day;
    bool clash;
};

static int near_each(struct store_val key, struct store_val val, void *ctx)
{
    (void)val;
    struct near_ctx *n = ctx;
    if (key.n != n->prefix + 8)
        return 0;
    double at = (double)store_be64_get((const unsigned char *)key.p + n->prefix) / 1000.0;
    if (fabs(at - n->slot) < 0.001 || fabs(at - n->slot) < n->spacing)
        n->clash = true;
    if (n->s->daily_max > 0) {
        struct cron_local l;
        if (cron_localtime(n->s->tz, at, &l, NULL) == 0 && l.year == n->day.year &&
            l.yday == n->day.yday)
            n->same_day++;
    }
    return 0;
}

/* Whether the account has room at slot: spacing, the same slot, its day. */
static int slot_free(struct store_txn *t, const struct schedule *s, double slot, bool *free_,
                     struct tikd_err *e)
{
    unsigned char prefix[80];
    size_t pl = strlen(s->account) + 1;
    if (pl > sizeof prefix)
        return tikd_fail(e, TIKD_EINVAL, "schedule %s: account name too long", s->name);
    memcpy(prefix, s->account, pl);
    struct near_ctx n = {.prefix = pl, .slot = slot, .spacing = s->spacing, .s = s};
    if (s->daily_max > 0 && cron_localtime(s->tz, slot, &n.day, e) != 0)
        return TIKD_EINVAL;
    int rc = store_foreach(t, STORE_DB_SLOTS, prefix, pl, near_each, &n);
    *free_ = !n.clash && (s->daily_max <= 0 || n.same_day < s->daily_max);
    return rc;
}

/* A reproducible fraction in [0, 1) for the slot: the same plan every time. */
static double jitter_of(const struct schedule *s, double slot)
{
    char in[256];
    int n = snprintf(in, sizeof in, "%s|%s|%.0f", s->account, s->name, slot);
    unsigned char d[32];
    codec_sha256(in, (size_t)(n > 0 ? n : 0), d);
    uint64_t v = 0;
    for (int i = 0; i < 8; i++)
        v = v << 8 | d[i];
    return (double)(v >> 11) / (double)(1ull << 53);
}

int slots_next_free(struct store_txn *t, const struct schedule *s, double after, double *slot,
                    double *due, struct tikd_err *e)
{
    if (s->nslots <= 0)
        return tikd_fail(e, TIKD_EINVAL, "schedule %s has no slots", s->name);
    double cur = after - 0.001; /* a slot at `after` itself is free to take */
    for (int guard = 0; guard < 100000; guard++) {
        double next = 0;
        for (int i = 0; i < s->nslots; i++) {
            double f;
            int rc = cron_next(&s->slots[i], s->tz, cur, &f, NULL);
            if (rc == 0 && (next == 0 || f < next))
                next = f;
            else if (rc != 0 && rc != TIKD_ENOTFOUND)
                return tikd_fail(e, rc, "schedule %s: bad time zone '%s'", s->name, s->tz);
        }
        if (next == 0 || next > after + HORIZON)
            break;
        cur = next;
        if (slots_blacked_out(s, next, NULL))
            continue;
        bool ok = false;
        int rc = slot_free(t, s, next, &ok, e);
        if (rc != 0)
            return rc;
        if (ok) {
            *slot = next;
            *due = next + (s->jitter > 0 ? jitter_of(s, next) * s->jitter : 0);
            return 0;
        }
    }
    return tikd_fail(e, TIKD_ENOTFOUND,
                     "schedule %s has no free slot for %s within a year (all booked, blacked "
                     "out, or over its daily maximum)",
                     s->name, s->account);
}

struct prune_ctx {
    size_t prefix;
    double before;
    unsigned char keys[64][80];
    size_t lens[64];
    int n;
};

static int prune_each(struct store_val key, struct store_val val, void *ctx)
{
    (void)val;
    struct prune_ctx *p = ctx;
    if (key.n != p->prefix + 8 || key.n > sizeof p->keys[0])
        return 0;
    double at = (double)store_be64_get((const unsigned char *)key.p + p->prefix) / 1000.0;
    if (at >= p->before || p->n == 64)
        return 1; /* sorted by time: the rest are newer */
    memcpy(p->keys[p->n], key.p, key.n);
    p->lens[p->n++] = key.n;
    return 0;
}

int slots_take(struct store_txn *t, const struct schedule *s, double slot, uint64_t job,
               struct tikd_err *e)
{
    unsigned char k[80], v[8 + 64];
    size_t kl = ledger_key(k, sizeof k, s->account, slot);
    if (!kl)
        return tikd_fail(e, TIKD_EINVAL, "schedule %s: account name too long", s->name);
    store_be64_put(v, job);
    size_t nl = strlen(s->name);
    memcpy(v + 8, s->name, nl);
    int rc = store_put(t, STORE_DB_SLOTS, k, kl, v, 8 + nl);
    if (rc != 0)
        return tikd_fail(e, rc, "schedule %s: cannot book the slot", s->name);
    /* bookings well in the past decide nothing any more */
    struct prune_ctx *p = calloc(1, sizeof *p);
    if (!p)
        return 0;
    p->prefix = strlen(s->account) + 1;
    p->before = clock_now() - fmax(86400 * 2, s->spacing * 2); /* now, not the slot: a
                                                                * later slot keeps earlier ones */
    rc = store_foreach(t, STORE_DB_SLOTS, k, p->prefix, prune_each, p);
    for (int i = 0; rc >= 0 && i < p->n; i++)
        rc = store_del(t, STORE_DB_SLOTS, p->keys[i], p->lens[i]);
    free(p);
    return rc < 0 ? tikd_fail(e, rc, "schedule %s: cannot prune old bookings", s->name) : 0;
}

int slots_release(struct store_txn *t, const char *account, double slot)
{
    unsigned char k[80];
    size_t kl = ledger_key(k, sizeof k, account, slot);
    return kl ? store_del(t, STORE_DB_SLOTS, k, kl) : TIKD_EINVAL;
}
