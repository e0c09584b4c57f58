/* compliance.h - the daemon's daily compliance check: `tikd doctor --json`
 * run as a child process every compliance.interval seconds (so the secret
 * scan's reads never hold up the loop), its result logged, kept as metrics
 * and, when a check fails, an alert (the log at ERROR and the rules'
 * on_alert). The child puts the result on the audit record itself. */
#ifndef TIKD_COMPLIANCE_H
#define TIKD_COMPLIANCE_H

struct ev_loop;
struct cli;
struct compliance;

/* alert(ud, check, detail) for each failed check. */
typedef void (*compliance_alert_fn)(void *ud, const char *check, const char *detail);

/* NULL when compliance.interval is 0 (or out of memory). */
struct compliance *compliance_start(struct ev_loop *loop, const struct cli *c,
                                    compliance_alert_fn alert, void *ud);
/* Stops the timer; a check in flight is killed. NULL is fine. */
void compliance_free(struct compliance *k);

#endif
