/* api.h - the admin API: JSON over HTTP under /api/v1/, on listeners of its
 * own (never the public one): a unix socket in the data directory, mode
 * 0600, for the CLI on this machine, and the optional admin.listen
 * addresses for browsers and tools.
 *
 * Who calls: on TCP, a bearer token (core/admin) in the Authorization
 * header, nothing else (no cookies, so no request a browser sends by itself
 * carries authority: CSRF has nothing to ride on); on the socket, a process
 * of the daemon's own user (or root), by its peer credentials, as admin, or
 * a bearer token's role when one is given. Every change is an audit record
 * naming the token ("token:NAME") or the uid ("unix:uid=N").
 *
 * Requests that change something must be POST or DELETE with no body or a
 * JSON one (Content-Type: application/json), at most 64 KiB; a browser's
 * cross-site request (Origin not the admin listener's, or Sec-Fetch-Site:
 * cross-site) is refused. Errors are {"error": {"code", "message"}} with
 * stable codes (docs/api.md). Single-threaded, on the daemon's loop. */
#ifndef TIKD_API_H
#define TIKD_API_H

#include "../core/err.h"

#include <stdint.h>

struct ev_loop;
struct store;
struct oauth;
struct tikd_config;
struct api;

struct cli;
struct schedule;
struct api_deps {
    const struct cli *cli; /* for the child runs (GET /api/v1/plan runs `tikd plan`) */
    struct store *store;
    struct oauth *oauth;           /* for calling back a cancelled pull at TikTok */
    const struct tikd_config *cfg; /* limits, api_url, admin listeners */
    unsigned (*live_gen)(void *ud);
    const char *(*account_tz)(void *ud, const char *account); /* the rules' tz, or NULL */
    /* each schedule of the live rules (struct schedule, core/slots.h) */
    int (*schedules)(void *ud, int (*fn)(const struct schedule *s, void *ctx), void *ctx);
    const char *(*trouble)(void *ud); /* why the store refuses writes, or NULL */
    void (*kick)(void *ud);           /* jobs changed: the pipeline looks again */
    int (*gate)(void *ud);            /* makes every write so far durable (group commit), or NULL */
    void *ud;
};

/* Listen on the admin socket and admin.listen. 0, or an error (a socket
 * in use by another daemon, a bad address). */
int api_new(struct api **out, struct ev_loop *loop, const struct api_deps *d, struct tikd_err *e);
void api_free(struct api *a);
/* Changes for the event stream (GET /api/v1/events); a NULL api is fine. */
struct job;
struct account;
void api_job_changed(struct api *a, const struct job *j);
void api_account_changed(struct api *a, const struct account *acct);
/* An upload's bytes going out (event "progress", not kept for a reconnect). */
void api_upload_progress(struct api *a, const char *account, uint64_t job, uint64_t done,
                         uint64_t total);

/* The first TCP listener's port (0: none). */
int api_port(const struct api *a);

#endif
