/* photos.c - the URLs of a photo post's images and the head check of remote
 * ones (see photos.h). Nothing here writes but photos_served_txn, in the
 * caller's transaction. */
#include "photos.h"
#include "image.h"
#include "log.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* Item `index` of a newline-separated list. */
static bool list_at(const char *q, int index, char *out, size_t n)
{
    for (int i = 0; *q; i++) {
        size_t l = strcspn(q, "\n");
        if (i == index) {
            snprintf(out, n, "%.*s", (int)l, q);
            return true;
        }
        q += l + (q[l] == '\n');
    }
    return false;
}

bool photos_at(const struct job *j, int index, char *out, size_t n)
{
    return list_at(j->images, index, out, n);
}

static const char *base_name(const char *path)
{
    const char *b = strrchr(path, '/');
    return b && b[1] ? b + 1 : path;
}

/* The URL TikTok pulls local image `index` from, with its token in sv. */
static int serve_local(struct photos_served *sv, int index, const char *image,
                       const char *public_url, double ttl, double now, char *url, size_t un,
                       char *why, size_t wn)
{
    if (!public_url || !public_url[0]) {
        snprintf(why, wn,
                 "photo %d is a local file (%.160s), and media.public_url is not set: TikTok pulls "
                 "photos from a verified domain, so tikd serves local images there (see "
                 "docs/publishing.md)",
                 index + 1, base_name(image));
        return -1;
    }
    struct image_info ii;
    struct tikd_err e = {0};
    char bad[400];
    if (image_probe(image, &ii, &e) != 0 || image_check_photo(&ii, bad, sizeof bad) != 0) {
        snprintf(why, wn, "photo %d (%.160s): %.400s", index + 1, base_name(image),
                 e.msg[0] ? e.msg : bad);
        return -1;
    }
    char token[MEDIAURL_TOKEN_LEN + 1];
    if (mediaurl_token(token, &e) != 0) {
        snprintf(why, wn, "%s", e.msg);
        return -1;
    }
    memcpy(sv->token[sv->n], token, sizeof token);
    struct media_url *u = &sv->u[sv->n++];
    u->job = sv->job;
    u->index = index;
    u->expires_at = now + ttl;
    snprintf(u->path, sizeof u->path, "%s", image);
    snprintf(u->mime, sizeof u->mime, "%s", ii.mime);
    size_t bl = strlen(public_url);
    snprintf(url, un, "%s%s%s%s", public_url, public_url[bl - 1] == '/' ? "" : "/", token,
             strcmp(ii.format, "webp") == 0 ? ".webp" : ".jpg");
    return 0;
}

int photos_urls(const struct job *j, const char *public_url, double ttl, double now,
                struct photos_served *sv, char *why, size_t n)
{
    memset(sv, 0, sizeof *sv);
    sv->job = j->id;
    char image[1024];
    for (int i = 0; i < JOB_IMAGES_MAX && photos_at(j, i, image, sizeof image); i++) {
        char *url = sv->url[sv->nurl++];
        if (image[0] != '/')
            snprintf(url, sizeof sv->url[0], "%s", image);
        else if (serve_local(sv, i, image, public_url, ttl, now, url, sizeof sv->url[0], why, n))
            return -1;
    }
    return 0;
}

int photos_served_txn(struct store_txn *t, const struct photos_served *sv)
{
    int rc = mediaurl_del_job(t, sv->job); /* an earlier init's, if TikTok failed it */
    for (int i = 0; rc == 0 && i < sv->n; i++)
        rc = mediaurl_put(t, sv->token[i], &sv->u[i]);
    return rc;
}

enum photos_verdict photos_judge_head(const struct http_resp *r, bool longer, char *why, size_t n)
{
    if (r->status == 0) {
        snprintf(why, n, "%s", r->out.message);
        return PHOTO_UNCHECKED;
    }
    if (r->status >= 300 && r->status < 400) {
        snprintf(why, n,
                 "the URL redirects (HTTP %ld), and TikTok does not follow redirects: give the "
                 "final URL",
                 r->status);
        return PHOTO_BAD;
    }
    if (r->status != 200 && r->status != 206) {
        snprintf(why, n, "HTTP %ld when tikd fetched it, so TikTok could not pull it either",
                 r->status);
        return PHOTO_BAD;
    }
    uint64_t total = 0;
    char v[128];
    if (r->status == 206 && http_header_get(r->headers, "Content-Range", v, sizeof v) &&
        strchr(v, '/'))
        total = strtoull(strchr(v, '/') + 1, NULL, 10);
    else if (r->status == 200 && http_header_get(r->headers, "Content-Length", v, sizeof v))
        total = strtoull(v, NULL, 10);
    struct image_info ii;
    struct tikd_err e = {0};
    char bad[400];
    int rc = image_probe_buf((const unsigned char *)r->body, r->body_len, total, &ii, &e);
    if (rc != 0 && ii.head_short && !longer && r->body_len >= IMAGE_HEAD_BYTES)
        return PHOTO_LONGER; /* a big EXIF or XMP first: fetch a longer head, once */
    if (rc != 0 || image_check_photo(&ii, bad, sizeof bad) != 0) {
        snprintf(why, n, "%.400s", e.msg[0] ? e.msg : bad);
        return PHOTO_BAD;
    }
    return PHOTO_OK;
}

/* ---- the checks, one image at a time ----------------------------------------------- */

struct photos_check {
    struct http *h;
    uint64_t job;
    char *images; /* the job's list, copied */
    int index;    /* the image being fetched */
    bool longer;
    struct http_xfer *x;
    photos_checked_fn done;
    void *ud;
};

static void check_next(struct photos_check *pc);

static void end(struct photos_check *pc, int rc, const char *why)
{
    photos_checked_fn done = pc->done;
    void *ud = pc->ud;
    free(pc->images);
    free(pc);
    done(ud, rc, why);
}

static void head_done(void *ud, const struct http_resp *r)
{
    struct photos_check *pc = ud;
    pc->x = NULL;
    char why[500], url[1024], msg[1500];
    list_at(pc->images, pc->index, url, sizeof url);
    switch (photos_judge_head(r, pc->longer, why, sizeof why)) {
    case PHOTO_LONGER:
        pc->longer = true;
        check_next(pc);
        return;
    case PHOTO_BAD:
        snprintf(msg, sizeof msg, "photo %d (%.300s): %s", pc->index + 1, url, why);
        end(pc, -1, msg);
        return;
    case PHOTO_UNCHECKED:
        TLOG(TLOG_WARN, "media.url_unchecked", LINT("job", pc->job), LINT("photo", pc->index + 1),
             LSTR("error", why));
        break;
    case PHOTO_OK:
        break;
    }
    pc->longer = false;
    pc->index++;
    check_next(pc);
}

/* Fetch the head of the next remote image from pc->index on: 0, 1 when
 * there is none left, or an error (with its message in msg). */
static int fetch_next(struct photos_check *pc, char *msg, size_t mn)
{
    char url[1024];
    for (; list_at(pc->images, pc->index, url, sizeof url); pc->index++) {
        if (strncmp(url, "https://", 8) != 0)
            continue;
        size_t head = pc->longer ? IMAGE_HEAD_MAX : IMAGE_HEAD_BYTES;
        char range[48];
        snprintf(range, sizeof range, "bytes=0-%zu", head - 1);
        struct http_header hd[] = {{"Range", range}};
        struct http_req req = {.method = "GET",
                               .url = url,
                               .headers = hd,
                               .nheaders = 1,
                               .timeout = 30,
                               .retry = HTTP_RETRY_ALL,
                               .max_attempts = 2,
                               .head_max = head,
                               .metric = "media_check"};
        struct tikd_err e = {0};
        int rc = http_request(pc->h, &req, head_done, pc, &pc->x, &e);
        if (rc != 0)
            snprintf(msg, mn, "photo %d (%.300s): %s", pc->index + 1, url, e.msg);
        return rc;
    }
    return 1;
}

static void check_next(struct photos_check *pc)
{
    char msg[1500];
    int rc = fetch_next(pc, msg, sizeof msg);
    if (rc != 0)
        end(pc, rc == 1 ? 0 : -1, rc == 1 ? NULL : msg);
}

int photos_check_start(struct http *h, const struct job *j, photos_checked_fn done, void *ud,
                       struct photos_check **out, struct tikd_err *e)
{
    *out = NULL;
    struct photos_check *pc = calloc(1, sizeof *pc);
    if (!pc || !(pc->images = strdup(j->images))) {
        free(pc);
        return tikd_fail(e, TIKD_ENOMEM, "out of memory");
    }
    pc->h = h;
    pc->job = j->id;
    pc->done = done;
    pc->ud = ud;
    char msg[1500];
    int rc = fetch_next(pc, msg, sizeof msg);
    if (rc == 0) {
        *out = pc;
        return 0;
    }
    free(pc->images);
    free(pc);
    return rc == 1 ? 1 : tikd_fail(e, rc, "%s", msg);
}

void photos_check_cancel(struct photos_check *pc)
{
    if (!pc)
        return;
    if (pc->x)
        http_cancel(pc->x);
    free(pc->images);
    free(pc);
}
