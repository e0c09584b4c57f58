/* server.h - tikd's HTTP server: libmicrohttpd on the libev loop.
 *
 * Used for the OAuth callback page, TikTok's webhooks, served media and health
 * checks, and on listeners of its own for the admin API (cli/api.c). libmicrohttpd runs without
 * threads of its own: its epoll descriptor is one ev_io, its timeouts one ev_timer. A handler
 * answers at once with srv_respond(), or later (after an async step such as a code exchange): the
 * connection is suspended until then. Bodies are capped (1 MiB, or the listener's
 * srv_limits.max_body); handlers see the raw bytes, which webhook signatures need. Single-threaded.
 */
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
    size_t max_body;    /* bytes a request body may have (0: 1 MiB) */
    unsigned unix_mode; /* a "unix:" socket file's mode, set before it listens (0: umask's) */
};
#define SRV_LIMITS_DEFAULT                                                                         \
    {                                                                                              \
        512, 32, 10.0, 30.0, 0, 0                                                                  \
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
 * in "/media/" + "*", or, ending in "/" + "**", every path under PATH/ at any
 * depth. METHOD "*" is any method (the handler sorts them). Unknown paths
 * get 404, known paths with another method 405. */
int server_route(struct server *s, const char *method, const char *path, srv_handler fn, void *ud);

/* How the server's own refusals (404, 405, 413, 503 at shutdown) are
 * answered: fn responds to r (NULL: text/plain, msg). code is a stable word
 * ("not_found", "method_not_allowed", "payload_too_large", "shutting_down"). */
typedef void (*srv_error_fn)(struct srv_req *r, int status, const char *code, const char *msg);
void server_on_error(struct server *s, srv_error_fn fn);

/* Group commit (core/store): an answer may report a state change (a job
 * planned, a webhook taken), so sync(ud) runs before each answer is queued
 * and must make every write before it durable; non-zero turns the answer
 * into a 503. No gate: answers go as they are. */
void server_set_gate(struct server *s, int (*sync)(void *ud), void *ud);

/* The request, valid until srv_respond(). */
const char *srv_method(const struct srv_req *r);
const char *srv_path(const struct srv_req *r);
const char *srv_body(const struct srv_req *r, size_t *len);
const char *srv_header(const struct srv_req *r, const char *name);
/* The uid of the process at the other end of a unix socket connection:
 * 0 and *uid, or -1 (not a unix socket, or the kernel would not say). */
int srv_peer_uid(const struct srv_req *r, unsigned *uid);
/* The decoded value of query argument name, or NULL; valid until
 * srv_respond(). */
const char *srv_arg(const struct srv_req *r, const char *name);
/* One more header on the answer r will get (up to 8; before srv_respond). */
void srv_add_header(struct srv_req *r, const char *name, const char *value);
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

/* A streamed answer of unknown length (chunked): Server-Sent Events. The
 * stream buffers what is written (at most max_buffer bytes not yet taken by
 * the client: past that the stream ends, a client that reads nothing cannot
 * grow tikd) and sends it as the socket takes it. closed(ud) runs exactly
 * once, when the connection is finished for any reason (the client went,
 * srv_stream_end, the server stops); the stream is gone after it. */
struct srv_stream;
typedef void (*srv_closed_fn)(void *ud);
struct srv_stream *srv_stream_start(struct srv_req *r, const char *content_type, size_t max_buffer,
                                    srv_closed_fn closed, void *ud);
/* 0, or TIKD_EFULL when the client is too far behind (the stream ends). */
int srv_stream_write(struct srv_stream *st, const char *p, size_t n);
/* Send what is buffered, then finish the answer. */
void srv_stream_end(struct srv_stream *st);

#endif
