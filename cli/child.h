/* child.h - running this very binary as a child of the daemon (`tikd doctor
 * --json`, `tikd plan --json`): work that reads much or long, so it never
 * holds up the loop, and never shares the daemon's LMDB handles across a
 * fork. The child gets the same config and environment, stdin from
 * /dev/null, no descriptor above 2; its stdout (at most 4 MiB) comes back
 * to done once it has exited and its output is read whole. */
#ifndef TIKD_CHILD_H
#define TIKD_CHILD_H

#include <stddef.h>

struct ev_loop;
struct cli;
struct child_run;

/* status: the wait status (-1: killed at its time limit); out: its stdout,
 * NUL-terminated, valid during the call. The run is gone after done. */
typedef void (*child_done_fn)(void *ud, int status, const char *out, size_t len);

/* Start `tikd [--config C] ARGS...` (args ends with NULL); NULL when it
 * cannot start (logged). done runs from the loop, never before this returns. */
struct child_run *child_run_start(struct ev_loop *loop, const struct cli *c,
                                  const char *const *args, double time_limit, child_done_fn done,
                                  void *ud);

/* Kill it; done does not run. NULL is fine. */
void child_run_cancel(struct child_run *r);

#endif
