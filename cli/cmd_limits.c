/* cmd_limits.c - `tikd limits [ACCOUNT]`: each account's TikTok budgets
 * now (used of allowed, when the next one frees, what TikTok's answers
 * closed), the app's, and the decisions taken so far. Read-only: it opens
 * the store for reading, so it is safe beside a running daemon. */
#include "cli.h"
#include "views.h"

#include "../core/account.h"
#include "../core/clock.h"
#include "../core/ratelimit.h"
#include "../core/store.h"

#include <stdio.h>
#include <string.h>

struct limits_ctx {
    const char *only;
    struct rl_config rc;
    double now;
    int shown;
};

static void when(double t, double now, char *out, size_t n)
{
    if (t <= now)
        snprintf(out, n, "now");
    else if (t >= 1e17)
        snprintf(out, n, "never (margin >= cap)");
    else
        snprintf(out, n, "in %.1f s", t - now);
}

static int show_budget(struct store_txn *t, struct limits_ctx *lc, const char *who,
                       const char *account, enum rl_budget b)
{
    struct rl_view v;
    int rc = rl_view(t, &lc->rc, account, b, lc->now, &v);
    if (rc != 0)
        return rc;
    char next[48], used[48], blocked[64] = "";
    if (!v.limited) {
        printf("%-16s %-15s %-14s %s\n", who, rl_budget_name(b), "-", "no limit");
        return 0;
    }
    when(v.next_at, lc->now, next, sizeof next);
    if (v.reserved > 0)
        snprintf(used, sizeof used, "%g/%g +%g held", v.used, v.cap, v.reserved);
    else
        snprintf(used, sizeof used, "%g/%g", v.used, v.cap);
    if (v.blocked_until > lc->now)
        snprintf(blocked, sizeof blocked, "  (TikTok said full: held %.0f s more)",
                 v.blocked_until - lc->now);
    printf("%-16s %-15s %-14s next %s%s\n", who, rl_budget_name(b), used, next, blocked);
    return 0;
}

static int each_account(const struct account *a, void *ctx)
{
    struct limits_ctx *lc = ctx;
    if (lc->only && strcmp(lc->only, a->name) != 0)
        return 0;
    lc->shown++;
    return 0;
}

struct show_ctx {
    struct limits_ctx *lc;
    struct store_txn *t;
};

static int show_account(const struct account *a, void *ctx)
{
    struct show_ctx *sc = ctx;
    if (sc->lc->only && strcmp(sc->lc->only, a->name) != 0)
        return 0;
    for (int b = 0; b < RL__COUNT; b++)
        if (b != RL_ACTIVE_USERS && b != RL_TENANT_POSTS) { /* the app's, a tenant's: not its */
            int rc = show_budget(sc->t, sc->lc, a->name, a->name, (enum rl_budget)b);
            if (rc != 0)
                return rc;
        }
    return 0;
}

static int limits_txn(struct store_txn *t, void *ctx)
{
    struct limits_ctx *lc = ctx;
    int rc = account_foreach(t, each_account, lc);
    if (rc != 0)
        return rc;
    if (lc->only && lc->shown == 0)
        return TIKD_ENOTFOUND;
    printf("%-16s %-15s %-14s %s\n", "ACCOUNT", "BUDGET", "USED", "NEXT");
    struct show_ctx sc = {lc, t};
    rc = account_foreach(t, show_account, &sc);
    if (rc == 0)
        rc = show_budget(t, lc, "(app)", "", RL_ACTIVE_USERS);
    if (rc != 0)
        return rc;
    printf("\ndecisions so far (metrics):\n");
    for (int b = 0; b < RL__COUNT; b++) {
        struct rl_metrics m;
        rc = rl_metrics(t, (enum rl_budget)b, &m);
        if (rc != 0)
            return rc;
        printf("  %-15s allowed %-7llu deferred %-7llu waited %.1f s\n",
               rl_budget_name((enum rl_budget)b), (unsigned long long)m.allowed,
               (unsigned long long)m.deferred, m.waited);
    }
    return 0;
}

struct limits_view {
    const struct rl_config *rc;
    const char *only;
};

static int limits_view(struct store_txn *t, void *ud, json_t **out)
{
    struct limits_view *v = ud;
    return view_limits(t, v->rc, clock_now(), v->only, NULL, out);
}

static int run_limits(struct cli *c, int argc, char **argv)
{
    bool json = cli_take_flag(&argc, argv, "--json");
    if (argc > 2)
        return cli_usage_error(&cmd_limits, "expected at most one account name");
    if (argc == 2 && argv[1][0] == '-')
        return cli_unknown(&cmd_limits, "option", argv[1]);
    if (cli_config(c))
        return 1;
    if (json) {
        struct limits_view v = {&c->cfg.limits, argc == 2 ? argv[1] : NULL};
        char what[100];
        snprintf(what, sizeof what, "account '%.64s'", v.only ? v.only : "");
        return cli_json_view(c, limits_view, &v, what);
    }
    struct store *s;
    if (cli_open_store(c, true, &s))
        return 1;
    struct limits_ctx lc = {.only = argc == 2 ? argv[1] : NULL, .now = clock_now()};
    lc.rc = c->cfg.limits;
    int rc = store_read(s, limits_txn, &lc, NULL);
    store_close(s);
    if (rc == TIKD_ENOTFOUND) {
        fprintf(stderr, "tikd limits: no account '%s'\n", lc.only);
        return 1;
    }
    return rc ? 1 : 0;
}

const struct cli_cmd cmd_limits = {
    "limits", run_limits, "limits [ACCOUNT] [--json]",
    "TikTok's budgets now, per account and for the app",
    "For each account (or just ACCOUNT): each budget tikd keeps for TikTok (spec §3) with what\n"
    "is used of it now, and when the next request may go. Per-token rates (video_init,\n"
    "inbox_init, content_init, creator_info, status) show the requests still counted in their\n"
    "window; caps (daily_posts, pending_shares, and the app's active_users) show the posts in\n"
    "their rolling window. \"TikTok said full\" marks a budget closed by TikTok's own answer\n"
    "(429, spam_risk_*), which tikd honours even when its own count has room. Then the\n"
    "decisions taken so far: requests allowed, and jobs deferred with the seconds they waited.\n"
    "The limits come from the config's limits table (see docs/limits.md).\n"};
