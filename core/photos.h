/* photos.h - a photo post's images on their way to TikTok, which only ever
 * pulls them (spec §2.6, §2.9): the URL each image is pulled from (its own
 * https URL, or, for a local file, a short-lived one tikd serves under
 * media.public_url, core/mediaurl), and the bounded head fetch that checks a
 * remote image before the init, so a bad one fails with its number and what
 * is wrong instead of TikTok's later "picture_size_check_failed". */
#ifndef TIKD_PHOTOS_H
#define TIKD_PHOTOS_H

#include "http.h"
#include "job.h"
#include "mediaurl.h"
#include "store.h"

#include <stdbool.h>

/* Image `index` (0-based) of j in out; false past the last. */
bool photos_at(const struct job *j, int index, char *out, size_t n);

/* The URLs TikTok pulls j's images from, and the tokens of the local ones. */
struct photos_served {
    uint64_t job;
    int n;    /* local images served */
    int nurl; /* every image */
    char token[JOB_IMAGES_MAX][MEDIAURL_TOKEN_LEN + 1];
    struct media_url u[JOB_IMAGES_MAX];
    char url[JOB_IMAGES_MAX][1200];
};

/* Fill sv for every image of j: a remote one as it is; a local one checked
 * against TikTok's photo rules and given a fresh token at public_url (NULL
 * or "": local images cannot be posted), live ttl seconds from now. 0, or
 * -1 with why (which image, and what is wrong). */
int photos_urls(const struct job *j, const char *public_url, double ttl, double now,
                struct photos_served *sv, char *why, size_t n);

/* Record sv's tokens in the caller's transaction (the one that records the
 * init leaving), replacing those of an earlier init of the same job. */
int photos_served_txn(struct store_txn *t, const struct photos_served *sv);

/* Check each remote image of j in turn, before its init: a bounded head
 * fetch (a longer one, once, when a big EXIF comes first), probed against
 * TikTok's photo rules. done(ud, 0, NULL) when every one passes or cannot be
 * reached from here (TikTok may reach it: TikTok decides); done(ud, -1, why)
 * at the first bad one, naming it. done runs once, from the loop. Returns 0
 * (*out: the check, for photos_check_cancel), 1 when j has no remote image
 * (done never runs), or an error. */
struct photos_check;
typedef void (*photos_checked_fn)(void *ud, int rc, const char *why);
int photos_check_start(struct http *h, const struct job *j, photos_checked_fn done, void *ud,
                       struct photos_check **out, struct tikd_err *e);

/* Stop a check in flight; done does not run. */
void photos_check_cancel(struct photos_check *pc);

/* What a head fetch says of an image (longer: it was the longer fetch);
 * photos_check_start's judge, public for its tests. */
enum photos_verdict {
    PHOTO_OK,        /* a JPEG or WebP TikTok takes */
    PHOTO_UNCHECKED, /* tikd cannot reach it; TikTok may (why says why) */
    PHOTO_LONGER,    /* the header runs past the head: fetch a longer one */
    PHOTO_BAD,       /* why says what is wrong */
};
enum photos_verdict photos_judge_head(const struct http_resp *r, bool longer, char *why, size_t n);

#endif
