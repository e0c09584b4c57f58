/* views.h - what an operator sees of a job, an account, a token or an audit
 * record, as JSON: one shape for the admin API and every `--json` output.
 * Only what an operator may see: never a token, an upload URL or an
 * internal field. Times are RFC 3339 UTC strings ("2026-12-04T10:00:00Z"),
 * null when unset. */
#ifndef TIKD_VIEWS_H
#define TIKD_VIEWS_H

#include <jansson.h>
#include <stdint.h>

struct job;
struct account;
struct admin_token;
struct audit_rec;

json_t *view_time(double t);
/* detail: every field (`tikd job show`, GET /jobs/ID); else the queue's. */
json_t *view_job(const struct job *j, int detail);
json_t *view_account(const struct account *a);
json_t *view_token(const struct admin_token *k);
json_t *view_audit(const struct audit_rec *r);

/* The views that read the store, in the caller's read transaction, so the
 * API and the CLI's --json print the same thing. */
struct store_txn;
struct rl_config;
/* A job with every field and its history (its audit records): TIKD_ENOTFOUND. */
int view_job_full(struct store_txn *t, uint64_t id, json_t **out);
/* An account with its jobs that are not final: TIKD_ENOTFOUND. */
int view_account_full(struct store_txn *t, const char *name, json_t **out);
/* The budgets of each account (or only `only`; TIKD_ENOTFOUND when no such
 * account), the app's, and the decisions so far. */
int view_limits(struct store_txn *t, const struct rl_config *rc, double now, const char *only,
                const char *tenant, json_t **out);
/* What the daemon last wrote of itself (rules, last reload) and the jobs
 * by state. */
int view_status(struct store_txn *t, json_t **out);

#endif
