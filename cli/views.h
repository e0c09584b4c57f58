/* views.h - what an operator sees of a job, an account, a token or an audit
 * record, as JSON: one shape for the admin API and every `--json` output.
 * Only what an operator may see: never a token, an upload URL or an
 * internal field. Times are RFC 3339 UTC strings ("2026-12-04T10:00:00Z"),
 * null when unset. */
#ifndef TIKD_VIEWS_H
#define TIKD_VIEWS_H

#include <jansson.h>

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

#endif
