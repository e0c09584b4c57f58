/* mediaurl.c - tokens for local images served to TikTok (see mediaurl.h).
 *
 * STORE_DB_SERVE holds two kinds of record:
 *   't' sha256(token)            -> job (be64), index, expires_at, path, mime
 *   'j' job (be64) index (be32)  -> sha256(token), to end a job's URLs
 * A token is only ever compared through its hash. */
#include "mediaurl.h"
#include "clock.h"
#include "codec.h"
#include "log.h"
#include "server.h"
#include "tiktok.h"

#include <fcntl.h>
#include <openssl/rand.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

struct rec {
    unsigned char job[8];
    int32_t index;
    double expires_at;
    char path[1024];
    char mime[24];
};

static void tkey(const char *token, unsigned char k[33])
{
    k[0] = 't';
    codec_sha256(token, strlen(token), k + 1);
}

static void jkey(uint64_t job, int index, unsigned char k[13])
{
    k[0] = 'j';
    store_be64_put(k + 1, job);
    for (int i = 0; i < 4; i++)
        k[9 + i] = (unsigned char)((uint32_t)index >> (24 - 8 * i));
}

int mediaurl_token(char token[MEDIAURL_TOKEN_LEN + 1], struct tikd_err *e)
{
    unsigned char raw[32];
    if (RAND_bytes(raw, sizeof raw) != 1)
        return tikd_fail(e, TIKD_EIO, "media URL: no random bytes from OpenSSL");
    codec_hex(raw, sizeof raw, token);
    return 0;
}

int mediaurl_put(struct store_txn *t, const char *token, const struct media_url *u)
{
    struct rec r;
    memset(&r, 0, sizeof r); /* padding included: the record is written as bytes */
    r.index = u->index;
    r.expires_at = u->expires_at;
    store_be64_put(r.job, u->job);
    snprintf(r.path, sizeof r.path, "%s", u->path);
    snprintf(r.mime, sizeof r.mime, "%s", u->mime);
    unsigned char tk[33], jk[13];
    tkey(token, tk);
    jkey(u->job, u->index, jk);
    int rc = store_put(t, STORE_DB_SERVE, tk, sizeof tk, &r, sizeof r);
    return rc ? rc : store_put(t, STORE_DB_SERVE, jk, sizeof jk, tk + 1, 32);
}

int mediaurl_get(struct store_txn *t, const char *token, double now, struct media_url *u)
{
    if (strlen(token) != MEDIAURL_TOKEN_LEN)
        return TIKD_ENOTFOUND;
    unsigned char tk[33];
    tkey(token, tk);
    struct store_val v;
    int rc = store_get(t, STORE_DB_SERVE, tk, sizeof tk, &v);
    if (rc != 0)
        return rc;
    struct rec r;
    if (v.n != sizeof r)
        return TIKD_ECORRUPT;
    memcpy(&r, v.p, sizeof r);
    if (r.expires_at <= now)
        return TIKD_ENOTFOUND;
    u->job = store_be64_get(r.job);
    u->index = r.index;
    u->expires_at = r.expires_at;
    r.path[sizeof r.path - 1] = r.mime[sizeof r.mime - 1] = '\0';
    memcpy(u->path, r.path, sizeof u->path);
    memcpy(u->mime, r.mime, sizeof u->mime);
    return 0;
}

static int del_hash(struct store_txn *t, const unsigned char tk[33])
{
    struct store_val v;
    int rc = store_get(t, STORE_DB_SERVE, tk, 33, &v);
    if (rc == TIKD_ENOTFOUND)
        return 0;
    if (rc != 0)
        return rc;
    struct rec r;
    if (v.n == sizeof r) {
        memcpy(&r, v.p, sizeof r);
        unsigned char jk[13];
        jkey(store_be64_get(r.job), r.index, jk);
        if ((rc = store_del(t, STORE_DB_SERVE, jk, sizeof jk)) != 0)
            return rc;
    }
    return store_del(t, STORE_DB_SERVE, tk, 33);
}

int mediaurl_del(struct store_txn *t, const char *token)
{
    unsigned char tk[33];
    tkey(token, tk);
    return del_hash(t, tk);
}

struct job_hashes {
    unsigned char h[64][33];
    int n;
};

static int collect(struct store_val key, struct store_val val, void *ctx)
{
    (void)key;
    struct job_hashes *jh = ctx;
    if (val.n == 32 && jh->n < 64) {
        jh->h[jh->n][0] = 't';
        memcpy(jh->h[jh->n] + 1, val.p, 32);
        jh->n++;
    }
    return 0;
}

int mediaurl_del_job(struct store_txn *t, uint64_t job)
{
    unsigned char prefix[9] = {'j'};
    store_be64_put(prefix + 1, job);
    struct job_hashes jh = {.n = 0};
    int rc = store_foreach(t, STORE_DB_SERVE, prefix, sizeof prefix, collect, &jh);
    for (int i = 0; rc == 0 && i < jh.n; i++)
        rc = del_hash(t, jh.h[i]);
    return rc;
}

/* ---- serving ---------------------------------------------------------------------- */

struct pull {
    struct store *s;
    char token[MEDIAURL_TOKEN_LEN + 1];
    uint64_t job;
    int index;
};

struct look {
    const char *token;
    struct media_url u;
};

static int get_txn(struct store_txn *t, void *ctx)
{
    struct look *m = ctx;
    return mediaurl_get(t, m->token, clock_now(), &m->u);
}

static int del_txn(struct store_txn *t, void *ctx)
{
    return mediaurl_del(t, ((struct pull *)ctx)->token);
}

/* The whole image went out: TikTok has it, and the URL stops working. */
static void pulled(void *ud, bool complete)
{
    struct pull *pl = ud;
    if (complete && store_write(pl->s, del_txn, pl, NULL) == 0)
        TLOG(TLOG_INFO, "media.pulled", LINT("job", pl->job), LINT("image", pl->index + 1));
    free(pl);
}

void mediaurl_serve(struct store *s, struct srv_req *r)
{
    const char *name = srv_path(r) + strlen("/media/");
    char token[MEDIAURL_TOKEN_LEN + 1];
    size_t tl = strcspn(name, ".");
    struct look m = {token, {0}};
    int fd = -1;
    struct stat st;
    if (tl == MEDIAURL_TOKEN_LEN) {
        memcpy(token, name, tl);
        token[tl] = '\0';
        if (store_read(s, get_txn, &m, NULL) == 0)
            fd = open(m.u.path, O_RDONLY | O_CLOEXEC | O_NOFOLLOW | O_NONBLOCK);
    }
    if (fd >= 0 && (fstat(fd, &st) != 0 || !S_ISREG(st.st_mode) ||
                    (uint64_t)st.st_size > TT_PHOTO_MAX_BYTES)) {
        close(fd);
        fd = -1;
    }
    if (fd < 0) {
        srv_respond(r, 404, "text/plain", "not found\n");
        return;
    }
    struct pull *pl = NULL;
    if (strcmp(srv_method(r), "GET") == 0 && (pl = calloc(1, sizeof *pl))) {
        pl->s = s;
        memcpy(pl->token, token, sizeof pl->token);
        pl->job = m.u.job;
        pl->index = m.u.index;
    }
    TLOG(TLOG_INFO, "media.serve", LINT("job", m.u.job), LINT("image", m.u.index + 1),
         LSTR("method", srv_method(r)), LINT("bytes", (long long)st.st_size));
    if (srv_respond_fd(r, 200, m.u.mime, fd, (uint64_t)st.st_size, pl ? pulled : NULL, pl) != 0)
        free(pl);
}
