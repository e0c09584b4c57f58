/* mediaurl.h - local images published at unguessable, short-lived URLs, so
 * TikTok can pull them (spec §2.9: photos only come from a verified domain).
 *
 * The operator points a verified domain or URL prefix (media.public_url) at
 * tikd's listener under /media/. A photo job issues one URL per local image
 * in the transaction that records its init leaving. A URL stops working
 * once TikTok has pulled the whole file, when it expires (media.url_ttl;
 * TikTok gives a pull an hour), or when the job ends. Only the SHA-256 of
 * each token is stored, so the database does not hold live URLs. */
#ifndef TIKD_MEDIAURL_H
#define TIKD_MEDIAURL_H

#include "err.h"
#include "store.h"

#include <stdint.h>

#define MEDIAURL_TOKEN_LEN 64 /* 32 random bytes in hex */

struct media_url {
    uint64_t job;
    int index;         /* the image's place in the post */
    double expires_at; /* seconds since the epoch */
    char path[1024];
    char mime[24];
};

/* A fresh token (NUL-terminated) for one image. */
int mediaurl_token(char token[MEDIAURL_TOKEN_LEN + 1], struct tikd_err *e);

/* Record token for u (in t, the transaction that records the init). */
int mediaurl_put(struct store_txn *t, const char *token, const struct media_url *u);

/* The image token stands for, if it is live (not expired): 0, or
 * TIKD_ENOTFOUND. */
int mediaurl_get(struct store_txn *t, const char *token, double now, struct media_url *u);

/* Stop serving token (TikTok pulled it). */
int mediaurl_del(struct store_txn *t, const char *token);

/* Stop serving every image of job (it ended, or is being initialised
 * again). */
int mediaurl_del_job(struct store_txn *t, uint64_t job);

struct srv_req;

/* GET|HEAD /media/<token>.<ext>: the image while its URL is live, from the
 * file (regular, at most TikTok's photo size, opened without following a
 * link). Anything else is the same 404: nothing to probe. Once a GET sent
 * every byte, the URL stops working. */
void mediaurl_serve(struct store *s, struct srv_req *r);

#endif
