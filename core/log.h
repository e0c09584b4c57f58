/* log.h - one line per event, logfmt or JSON lines, with secrets masked.
 *
 * An event has a dotted name and typed fields:
 *     TLOG(TLOG_INFO, "rules.loaded", LINT("gen", 3), LSTR("dir", path));
 * The whole line is formatted first, then every registered secret (and its
 * URL-encoded and JSON-escaped forms) is replaced by "[redacted]" wherever it
 * occurs, also inside a longer string, and the line goes out in one write(2).
 * Single-threaded: tikd logs from the loop thread only. */
#ifndef TIKD_LOG_H
#define TIKD_LOG_H

#include <stdbool.h>
#include <stddef.h>

enum tlog_level { TLOG_DEBUG, TLOG_INFO, TLOG_WARN, TLOG_ERROR };
enum tlog_format { TLOG_LOGFMT, TLOG_JSON };
enum tlog_ftype { TLOGF_END, TLOGF_STR, TLOGF_INT, TLOGF_DBL, TLOGF_BOOL };

struct tlog_field {
    const char *key;
    enum tlog_ftype type;
    union {
        const char *s;
        long long i;
        double d;
    } v;
};

#define LSTR(k, x)                                                                                 \
    {                                                                                              \
        .key = (k), .type = TLOGF_STR, .v.s = (x)                                                  \
    }
#define LINT(k, x)                                                                                 \
    {                                                                                              \
        .key = (k), .type = TLOGF_INT, .v.i = (long long)(x)                                       \
    }
#define LDBL(k, x)                                                                                 \
    {                                                                                              \
        .key = (k), .type = TLOGF_DBL, .v.d = (double)(x)                                          \
    }
#define LBOOL(k, x)                                                                                \
    {                                                                                              \
        .key = (k), .type = TLOGF_BOOL, .v.i = !!(x)                                               \
    }

extern enum tlog_level tlog_threshold;

/* Emit one event with at least one field; fields are cheap to build, and the
 * level test comes first so a filtered debug line costs one comparison. */
#define TLOG(lvl, event, ...)                                                                      \
    do {                                                                                           \
        if ((lvl) >= tlog_threshold)                                                               \
            tlog_emit((lvl), (event), (const struct tlog_field[]){__VA_ARGS__, {0}});              \
    } while (0)

/* Format, redact and write one event; `fields` ends with a zeroed entry. */
void tlog_emit(enum tlog_level lvl, const char *event, const struct tlog_field *fields);

/* Configure the sink: minimum level, format and the file descriptor (stderr
 * by default). */
void tlog_setup(enum tlog_level lvl, enum tlog_format fmt, int fd);

/* Send lines to `fn` instead of a descriptor (tests); NULL restores the fd. */
void tlog_set_hook(void (*fn)(const char *line, size_t len, void *ud), void *ud);

/* Hold lines back: while on, each line is formatted and redacted at once
 * (its timestamp is when it happened) but waits in memory, in order, until
 * tlog_flush(). The daemon holds them until what they report is durable, so
 * a line never tells of a state a reader of the store cannot see yet; lines
 * held when the process dies unannounced are lost with the state they told
 * of. Turning it off flushes. If memory runs out, what waits goes at once. */
void tlog_hold(bool on);
void tlog_flush(void);

/* Parse "debug", "info", "warn" or "error"; returns -1 for anything else. */
int tlog_level_parse(const char *s);

/* Register a secret: from now on it never appears in a log line or an audit
 * record. Secrets shorter than TLOG_SECRET_MIN bytes are refused (-1), since
 * masking a short string would garble ordinary text. The registry keeps no
 * copy: only each form's length, fingerprint and keyed MAC (see log.c). */
#define TLOG_SECRET_MIN 8
int tlog_secret_add(const char *secret, size_t len);

/* Forget a secret (for example a rotated token); returns 0 if it was known. */
int tlog_secret_remove(const char *secret, size_t len);

/* Forget every secret (process shutdown, tests). */
void tlog_secret_clear(void);

/* Copy `in` (len bytes) to a new NUL-terminated string with every registered
 * secret masked; the caller frees it. Returns NULL if out of memory. */
char *tlog_redact(const char *in, size_t len, size_t *outlen);

#endif
