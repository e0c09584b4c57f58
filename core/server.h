/* server.h - tikd's HTTP server: libmicrohttpd on the libev loop.
 *
 * Used for the OAuth callback page, TikTok's webhooks and health checks (the
 * admin API and metrics come later). libmicrohttpd runs without threads of
 * its own: its epoll descriptor is one ev_io, its timeouts one ev_timer.
 * A handler answers at once with srv_respond(), or later (after an async
 * step such as a code exchange): the connection is suspended until then.
 * Bodies are capped (1 MiB); handlers see the raw bytes, which webhook
 * signatures need. Single-threaded. */
#ifndef TIKD_SERVER_H
#define TIKD_SERVER_H

#include "err.h"

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

struct ev_loop;
struct server;
struct srv_req;

typedef void (*srv_handler)(void *ud, struct srv_req *r);

/* What one client may hold (slowloris: many connections, each trickling):
 * connections in all and per address, the time a whole request (headers and
 * body) may take from the moment the connection opened or its last answer
 * went out, and the silence a connection may keep. */
struct srv_limits {
    unsigned max_connections, max_per_ip;
    double request_timeout, idle_timeout;
};
#define SRV_LIMITS_DEFAULT                                                                         \
    {                                                                                              \
        512, 32, 10.0, 30.0                                                                        \
    }

/* Listen on "host:port" (port 0 picks one) or "unix:/path"; lim NULL is
 * SRV_LIMITS_DEFAULT. */
int server_new(struct server **out, struct ev_loop *loop, const char *listen,
               const struct srv_limits *lim, struct tikd_err *e);
/* Stops listening; requests still waiting for an answer are dropped. */
void server_free(struct server *s);
/* The bound port (for "host:0"), or 0 for a unix socket. */
int server_port(const struct server *s);

/* Route METHOD PATH to fn: PATH exactly (a trailing '/' is part of it), or,
 * when it ends in '/' followed by '*', every "PATH<name>" (one segment), as
 * in "/media/" + "*". Unknown paths get 404, known paths with another method
 * 405. */
int server_route(struct server *s, const char *method, const char *path, srv_handler fn, void *ud);

/* The request, valid until srv_respond(). */
const char *srv_method(const struct srv_req *r);
const char *srv_path(const struct srv_req *r);
const char *srv_body(const struct srv_req *r, size_t *len);
const char *srv_header(const struct srv_req *r, const char *name);
/* The query string, re-encoded from the parsed arguments ("a=1&b=x%20y");
 * valid until srv_respond(). */
const char *srv_query(struct srv_req *r);

/* Answer (once). May be called inside the handler or any time later from
 * the loop. */
void srv_respond(struct srv_req *r, int status, const char *content_type, const char *body);

/* Answer with size bytes of the open file fd (which the server takes and
 * closes); done (may be NULL) is told, once the connection is finished,
 * whether every byte went out. */
typedef void (*srv_done_fn)(void *ud, bool complete);
int srv_respond_fd(struct srv_req *r, int status, const char *content_type, int fd, uint64_t size,
                   srv_done_fn done, void *ud);

#endif
