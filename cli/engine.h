/* engine.h - the pieces a command needs, opened from the config in one
 * place: the loop, the store, the vault (checked against the database), the
 * HTTP client and the OAuth machinery. `tikd run` and the account commands
 * share it. */
#ifndef TIKD_ENGINE_H
#define TIKD_ENGINE_H

#include "../core/runlock.h"
#include "cli.h"

#include "../core/http.h"
#include "../core/oauth.h"
#include "../core/store.h"
#include "../core/vault.h"

struct engine {
    struct cli *cli;
    struct ev_loop *loop;
    struct store *store;
    struct vault *vault;
    struct http *http;
    struct oauth *oauth;
    struct runlock lock; /* ENG_DAEMON: the data directory's, held until engine_close */
};

/* ENG_DAEMON: the one daemon on this data directory (core/runlock.h), taken
 * once the key has loaded and before the database is opened. */
enum { ENG_STORE = 1, ENG_VAULT = 2, ENG_NET = 4, ENG_ALL = 7, ENG_DAEMON = 8 };

/* Open what `what` asks for (ENG_NET brings HTTP and OAuth and needs the
 * vault). Errors are printed; returns 0 or 1. On failure nothing stays open. */
int engine_open(struct cli *c, struct engine *en, int what);
void engine_close(struct engine *en);

/* Run the loop until *flag becomes non-zero. */
void engine_wait(struct engine *en, const int *flag);

/* A TikTok answer a command waits for: pass engine_answered and the struct
 * to the request, then engine_wait(en, &a.done). */
struct engine_answer {
    int done;
    bool ok;       /* the policy made it a success */
    long status;   /* HTTP status, 0 when no answer came */
    char msg[700]; /* on failure: TikTok's message, code and log_id */
    char *body;    /* on success: the body (NUL-terminated; engine_answer_free frees it) */
    size_t body_len;
};
void engine_answered(void *ud, const struct http_resp *r);
void engine_answer_free(struct engine_answer *a);

#endif
