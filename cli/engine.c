/* engine.c - opening the engine's parts from the config (see engine.h). */
#include "engine.h"

#include <errno.h>
#include <ev.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

static int vault_check_txn(struct store_txn *t, void *ctx)
{
    struct engine *en = ctx;
    struct tikd_err e = {0};
    int rc = vault_check(en->vault, t, &e);
    if (rc != 0)
        fprintf(stderr, "tikd: %s\n", e.msg);
    return rc;
}

/* Read first: the canary exists on every database but a new one, and a
 * wrong key must be found without writing anything. */
static int vault_probe_txn(struct store_txn *t, void *ctx)
{
    struct store_val v;
    (void)ctx;
    return store_get(t, STORE_DB_VAULT, "vault\0canary", 12, &v);
}

int engine_open(struct cli *c, struct engine *en, int what)
{
    memset(en, 0, sizeof *en);
    en->cli = c;
    en->lock.fd = -1;
    if (what & ENG_NET)
        what |= ENG_VAULT;
    if (what & ENG_VAULT)
        what |= ENG_STORE;
    if (cli_config(c))
        return 1;
    struct tikd_err e = {0};
    en->loop = ev_default_loop(EVFLAG_AUTO);
    if (!en->loop) {
        fprintf(stderr, "tikd: cannot start the event loop\n");
        return 1;
    }
    /* the key first: a missing or wrong key must stop us before the
     * database is even opened for writing */
    if (what & ENG_VAULT) {
        if (vault_load(&en->vault, c->cfg.vault_key_file, getenv("TIKD_VAULT_KEY"), &e) != 0) {
            fprintf(stderr, "tikd: %s\n", e.msg);
            return 1;
        }
    }
    if (what & ENG_DAEMON) {
        const char *dir = c->cfg.data_dir;
        if (mkdir(dir, 0700) != 0 && errno != EEXIST) {
            fprintf(stderr, "tikd: %s: cannot create: %s\n", dir, strerror(errno));
            goto fail;
        }
        if (runlock_take(&en->lock, dir, &e) != 0) {
            fprintf(stderr, "tikd: %s\n", e.msg);
            goto fail;
        }
    }
    if ((what & ENG_STORE) && cli_open_store(c, false, &en->store))
        goto fail;
    if (what & ENG_VAULT) {
        bool fresh = store_read(en->store, vault_probe_txn, NULL, NULL) == TIKD_ENOTFOUND;
        if ((fresh ? store_write : store_read)(en->store, vault_check_txn, en, NULL) != 0)
            goto fail;
    }
    if (what & ENG_NET) {
        struct http_opts ho;
        cli_http_opts(&c->cfg, en->loop, &ho);
        if (http_new(&en->http, &ho, &e) != 0) {
            fprintf(stderr, "tikd: %s\n", e.msg);
            goto fail;
        }
        struct oauth_cfg oc = {
            .loop = en->loop,
            .client_key = c->cfg.client_key,
            .client_secret = c->cfg.client_secret,
            .auth_url = c->cfg.auth_url,
            .api_url = c->cfg.api_url,
            .redirect_uri = c->cfg.redirect_uri,
            .scopes = c->cfg.scopes,
            .pkce = c->cfg.pkce,
            .state_ttl = c->cfg.oauth_state_ttl,
            .refresh_ahead = c->cfg.oauth_refresh_ahead,
        };
        if (oauth_new(&en->oauth, en->store, en->vault, en->http, &oc, &e) != 0) {
            fprintf(stderr, "tikd: %s\n", e.msg);
            goto fail;
        }
    }
    return 0;
fail:
    engine_close(en);
    return 1;
}

void engine_close(struct engine *en)
{
    oauth_free(en->oauth);
    http_free(en->http);
    store_close(en->store);
    vault_free(en->vault);
    en->oauth = NULL;
    en->http = NULL;
    en->store = NULL;
    en->vault = NULL;
    runlock_release(&en->lock);
}

void engine_wait(struct engine *en, const int *flag)
{
    while (!*flag)
        ev_run(en->loop, EVRUN_ONCE);
}

void engine_answered(void *ud, const struct http_resp *r)
{
    struct engine_answer *a = ud;
    a->done = 1;
    a->ok = r->out.action == POL_OK;
    a->status = r->status;
    if (!a->ok) {
        snprintf(a->msg, sizeof a->msg, "%s (code %s%s%s)", r->out.message, r->out.code,
                 r->out.log_id[0] ? ", log_id " : "", r->out.log_id);
        return;
    }
    if ((a->body = malloc(r->body_len + 1))) {
        memcpy(a->body, r->body ? r->body : "", r->body_len);
        a->body[r->body_len] = '\0';
        a->body_len = r->body_len;
    }
}

void engine_answer_free(struct engine_answer *a)
{
    free(a->body);
    a->body = NULL;
}
