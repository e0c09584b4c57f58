/* testutil.h - small helpers shared by the cmocka unit tests: temporary
 * directories, writing files, capturing log lines, and running rule
 * functions in a real generation on a private libev loop. Tests run from the
 * repository root (make does that), so scripts/ is found relative to it. */
#ifndef TIKD_TESTUTIL_H
#define TIKD_TESTUTIL_H

#include <ev.h>
#include <lauxlib.h>
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "../../bindings/lua_host.h"
#include "../../core/log.h"

/* A fresh directory under /tmp; the caller frees the string. */
static inline char *tu_tmpdir(void)
{
    char *d = strdup("/tmp/tikd-test-XXXXXX");
    assert_non_null(mkdtemp(d));
    return d;
}

static inline void tu_rmrf(const char *d)
{
    char cmd[512];
    snprintf(cmd, sizeof cmd, "rm -rf '%s'", d);
    assert_int_equal(system(cmd), 0);
}

static inline void tu_write(const char *dir, const char *name, const char *text)
{
    char p[1024];
    snprintf(p, sizeof p, "%s/%s", dir, name);
    FILE *f = fopen(p, "w");
    assert_non_null(f);
    fputs(text, f);
    fclose(f);
}

/* Log capture: every emitted line appended to one buffer. */
struct tu_logcap {
    char *buf;
    size_t n;
};

static inline void tu_logcap_hook(const char *line, size_t len, void *ud)
{
    struct tu_logcap *c = ud;
    c->buf = realloc(c->buf, c->n + len + 1);
    memcpy(c->buf + c->n, line, len);
    c->n += len;
    c->buf[c->n] = '\0';
}

static inline void tu_logcap_start(struct tu_logcap *c)
{
    memset(c, 0, sizeof *c);
    tlog_set_hook(tu_logcap_hook, c);
}

static inline void tu_logcap_stop(struct tu_logcap *c)
{
    tlog_set_hook(NULL, NULL);
    free(c->buf);
    c->buf = NULL;
    c->n = 0;
}

/* Default budgets for tests: small enough to fire fast. */
static inline struct host_opts tu_host_opts(const char *rules_dir, struct ev_loop *loop)
{
    static char scripts[1024];
    if (!scripts[0]) {
        assert_non_null(getcwd(scripts, sizeof scripts - 10));
        strcat(scripts, "/scripts");
    }
    return (struct host_opts){
        .scripts_dir = scripts,
        .rules_dir = rules_dir,
        .instructions = 2000000,
        .call_memory = 8u << 20,
        .state_memory = 256u << 20,
        .pattern_steps = 1000000,
        .loop = loop,
    };
}

/* The outcome of one call, copied out of the done callback. */
struct tu_result {
    int done;
    int ok;
    int budget;
    char error[1024];
    char value[1024]; /* tostring of the first result, when ok */
};

static inline void tu_done(void *ud, const struct call_result *r)
{
    struct tu_result *t = ud;
    t->done = 1;
    t->ok = r->ok;
    t->budget = r->budget;
    snprintf(t->error, sizeof t->error, "%s", r->error ? r->error : "");
    if (r->ok && r->nresults > 0) {
        const char *s = lua_tostring(r->L, 1);
        snprintf(t->value, sizeof t->value, "%s", s ? s : luaL_typename(r->L, 1));
    }
}

/* Index of the rule file called name ("rules/x.lua" style suffix match). */
static inline size_t tu_rule(struct gen *g, const char *file)
{
    for (size_t i = 0; i < gen_rule_count(g); i++) {
        const char *n = gen_rule_name(g, i);
        size_t ln = strlen(n), lf = strlen(file);
        if (ln >= lf && strcmp(n + ln - lf, file) == 0)
            return i;
    }
    fail_msg("no rule %s", file);
    return 0;
}

/* Call fn of rule file and run the loop until the call is done. */
static inline struct tu_result tu_call(struct ev_loop *loop, struct gen *g, const char *file,
                                       const char *fn)
{
    struct tu_result r = {0};
    int rc = gen_call(g, tu_rule(g, file), fn, NULL, NULL, tu_done, &r);
    assert_int_equal(rc, 0);
    while (!r.done)
        ev_run(loop, EVRUN_ONCE);
    return r;
}

#endif
