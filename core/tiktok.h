/* tiktok.h - the TikTok API client: TikTok's constants, each with the
 * section of ../shared/spec/tiktok-api.md it comes from, the Content Posting
 * endpoints in one table, the request bodies, and the answers decoded into
 * plain structs (ids exact: jansson keeps 64-bit integers).
 *
 * It knows TikTok's wire format and nothing of tikd's state: callers (the
 * pipeline, `tikd job cancel`) decide what to ask and what an answer means
 * for a job. Requests go through the OAuth layer, which adds the token in C;
 * the chunk PUT goes straight to the upload URL, which carries its own.
 * Change a number here, nowhere else. */
#ifndef TIKD_TIKTOK_H
#define TIKD_TIKTOK_H

#include "err.h"
#include "http.h"

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/* Endpoints, below tiktok.api_url (§0.1) */
#define TT_PATH_TOKEN        "/v2/oauth/token/"                     /* §1.5, §1.6 */
#define TT_PATH_REVOKE       "/v2/oauth/revoke/"                    /* §1.8 */
#define TT_PATH_CREATOR_INFO "/v2/post/publish/creator_info/query/" /* §2.1 */
#define TT_PATH_VIDEO_INIT   "/v2/post/publish/video/init/"         /* §2.2 */
#define TT_PATH_INBOX_INIT   "/v2/post/publish/inbox/video/init/"   /* §2.3 */
#define TT_PATH_CONTENT_INIT "/v2/post/publish/content/init/"       /* §2.6 */
#define TT_PATH_STATUS       "/v2/post/publish/status/fetch/"       /* §2.7 */
#define TT_PATH_CANCEL       "/v2/post/publish/cancel/"             /* §2.8 */
#define TT_PATH_USER_INFO    "/v2/user/info/"                       /* §6.1 */

/* Text limits, in UTF-16 code units (§2.2, §2.6, §4.2) */
#define TT_VIDEO_TITLE_MAX       2200
#define TT_PHOTO_TITLE_MAX       90
#define TT_PHOTO_DESCRIPTION_MAX 4000
#define TT_PHOTOS_MAX            35

/* The chunk plan (§2.5). "MB" is ambiguous in the docs: these values satisfy
 * both the decimal and the binary reading. */
#define TT_SINGLE_CHUNK_MAX 64000000ull /* up to this, one request */
#define TT_CHUNK_SIZE       10000000ull /* above it, 10,000,000-byte chunks */
#define TT_CHUNK_MIN        5242880ull  /* 5 MiB: the larger of 5 MB and 5 MiB */
#define TT_CHUNK_MAX        64000000ull /* the smaller of 64 MB and 64 MiB */
#define TT_LAST_CHUNK_MAX   128000000ull
#define TT_CHUNKS_MAX       1000
#define TT_UPLOAD_URL_TTL   3600.0 /* §2.2: the upload must finish within an hour */

/* Videos (§4.1) */
#define TT_VIDEO_MAX_BYTES    4000000000ull /* 4 GB */
#define TT_VIDEO_MIN_FPS      23.0
#define TT_VIDEO_MAX_FPS      60.0
#define TT_VIDEO_MIN_SIDE     360
#define TT_VIDEO_MAX_SIDE     4096
#define TT_VIDEO_MAX_DURATION 600 /* the API's ceiling; each creator's is in creator_info */

/* Photos (§4.2): JPEG or WebP, "at most 1080p", "at most 20 MB per image".
 * 1080p is read as neither side above 1920 and the shorter side at most
 * 1080, in either orientation; MB as decimal (20,000,000 bytes), which is
 * the stricter reading. */
#define TT_PHOTO_MAX_LONG  1920
#define TT_PHOTO_MAX_SHORT 1080
#define TT_PHOTO_MAX_BYTES 20000000ull

/* Caches and pacing */
#define TT_CREATOR_INFO_TTL 300.0 /* cache creator_info 5 minutes (issue 5) */

/* Length of UTF-8 text in UTF-16 code units (how TikTok counts captions,
 * §2.2); -1 for invalid UTF-8 (overlong, surrogates, out of range). */
long tt_utf16_len(const char *s);

/* The privacy levels (§2.2), NULL-terminated. */
extern const char *const tt_privacy_levels[];
/* True when level is one of them. */
bool tt_privacy_known(const char *level);
/* True when level is in options (comma-separated, as tt_creator keeps them). */
bool tt_privacy_offered(const char *options, const char *level);

/* ---- the Content Posting calls ------------------------------------------ */

enum tt_call {
    TT_CREATOR_INFO, /* §2.1 */
    TT_VIDEO_INIT,   /* §2.2: a direct post */
    TT_INBOX_INIT,   /* §2.3: a video draft */
    TT_CONTENT_INIT, /* §2.6: photos, direct or draft */
    TT_STATUS,       /* §2.7 */
    TT_CANCEL,       /* §2.8 */
};

/* A call's path and how it may be retried: an init that may have reached
 * TikTok is never sent twice (it counts against the creator's caps). */
struct tt_endpoint {
    const char *name; /* "creator_info", "video init", ... for messages */
    const char *path;
    enum http_retry retry;
    const char *metric; /* its target label in tikd_http_* metrics */
};
const struct tt_endpoint *tt_endpoint_of(enum tt_call c);

struct oauth;

/* Where calls go: the OAuth layer (tokens) and tiktok.api_url. */
struct tt_api {
    struct oauth *oauth;
    const char *base_url;
};

/* POST body (JSON; NULL: out of memory, reported in e) to call c for
 * account; the answer goes to done as from oauth_request(). */
int tt_send(const struct tt_api *api, const char *account, enum tt_call c, const char *body,
            http_done_fn done, void *ud, struct tikd_err *e);

/* ---- what TikTok says ------------------------------------------------------ */

/* A creator as creator_info describes them now (§2.1). */
struct tt_creator {
    char options[160]; /* privacy_level_options, comma-separated */
    int max_duration;  /* seconds; 0 when not given */
    bool comment_disabled, duet_disabled, stitch_disabled;
    char username[80], nickname[128];
};

/* The answer to an init (§2.2, §2.6). */
struct tt_init {
    char publish_id[80];
    char upload_url[320]; /* FILE_UPLOAD only */
};

/* A publish's status (§2.7); fields TikTok leaves out are empty or zero. */
struct tt_status {
    char status[40];
    char fail_reason[64];
    uint64_t uploaded_bytes, downloaded_bytes;
    char post_ids[400]; /* exact, comma-separated */
};

/* Decode a successful answer; 0, or -1 with why (TikTok's answer lacks or
 * mistypes what it must hold). */
int tt_decode_creator(const struct http_resp *r, struct tt_creator *out, char *why, size_t n);
int tt_decode_init(const struct http_resp *r, bool upload_url, struct tt_init *out, char *why,
                   size_t n);
int tt_decode_status(const struct http_resp *r, struct tt_status *out, char *why, size_t n);

/* The user a token belongs to (§6.1 user info, fields open_id and
 * display_name). */
struct tt_user {
    char open_id[160];
    char display_name[160];
};
int tt_decode_user(const char *body, size_t n, struct tt_user *out, char *why, size_t wn);

/* A FAILED publish whose fail_reason allows a new init (§2.10). */
bool tt_fail_retryable(const char *fail_reason);

/* ---- request bodies (malloc'd JSON, NULL when out of memory) --------------- */

struct job;

/* A video init: post_info (a direct post; for a draft only the title, the
 * one field TikTok is observed to keep, §2.3 and §7 #12) and source_info,
 * FILE_UPLOAD with j->plan or PULL_FROM_URL from j->media. The creator's
 * own "No one" settings force interactions off (§2.2). */
char *tt_body_video_init(const struct job *j, const struct tt_creator *c);

/* A photo init (§2.6) pulling the n URLs. */
char *tt_body_photo_init(const struct job *j, const char *const *urls, size_t n);

/* {"publish_id": id} (status, cancel). */
char *tt_body_publish_id(const char *publish_id);

/* ---- the bytes (§2.4) --------------------------------------------------- */

/* PUT chunk `index` of j's plan from j->media to j->upload_url, with its
 * Content-Type and Content-Range; *x is the transfer (for http_cancel). */
int tt_put_chunk(struct http *h, const struct job *j, uint32_t index, http_done_fn done, void *ud,
                 struct http_xfer **x, struct tikd_err *e);
/* The same, telling progress(pud, sent, total) of this chunk's bytes as they go. */
int tt_put_chunk_progress(struct http *h, const struct job *j, uint32_t index, http_done_fn done,
                          void *ud, void (*progress)(void *, uint64_t, uint64_t), void *pud,
                          struct http_xfer **x, struct tikd_err *e);

/* ---- creator_info answers, kept TT_CREATOR_INFO_TTL ---------------------- */

struct tt_creators;

struct tt_creators *tt_creators_new(void);
void tt_creators_free(struct tt_creators *cs);
/* A fresh answer for account (younger than the TTL at now), or NULL. */
const struct tt_creator *tt_creators_get(struct tt_creators *cs, const char *account, double now);
/* Keep c as account's answer at now; expired answers are dropped. 0, or
 * TIKD_ENOMEM. */
int tt_creators_put(struct tt_creators *cs, const char *account, const struct tt_creator *c,
                    double now);
/* Forget account's answer (TikTok said it is stale). */
void tt_creators_forget(struct tt_creators *cs, const char *account);

#endif
