/* follow.h - the CLI's end of the admin API's event stream: GET
 * /api/v1/events... on the daemon's admin socket (libcurl over a unix
 * socket), read an event at a time with a timeout. `tikd post --wait` uses
 * it to follow a job without asking the database again and again, and to
 * show an upload's bytes as they go. */
#ifndef TIKD_FOLLOW_H
#define TIKD_FOLLOW_H

struct tikd_config;
struct follow;

/* NULL when no daemon answers on the admin socket (not running, no socket,
 * not this user's): the caller reads the database instead. */
struct follow *follow_open(const struct tikd_config *cfg, const char *path);

/* The next event, waiting at most timeout seconds: 1 with *type and *data
 * (valid until the next call), 0 when none came, -1 when the stream ended. */
int follow_next(struct follow *f, double timeout, const char **type, const char **data);

void follow_close(struct follow *f);

#endif
