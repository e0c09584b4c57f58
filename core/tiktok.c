/* tiktok.c - the TikTok API client (see tiktok.h): the endpoint table,
 * request bodies, answer decoders and the creator_info answers kept for a
 * while.
 *
 * Bodies are built with jansson, so captions and URLs are escaped by the
 * encoder, never by hand. Decoders read TikTok's envelope (§0.2) and default
 * what is missing, as the spec asks; they never trust a length. */
#include "tiktok.h"
#include "job.h"
#include "oauth.h"

#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

const char *const tt_privacy_levels[] = {"PUBLIC_TO_EVERYONE", "MUTUAL_FOLLOW_FRIENDS",
                                         "FOLLOWER_OF_CREATOR", "SELF_ONLY", NULL};

bool tt_privacy_known(const char *level)
{
    for (int i = 0; tt_privacy_levels[i]; i++)
        if (strcmp(level, tt_privacy_levels[i]) == 0)
            return true;
    return false;
}

bool tt_privacy_offered(const char *options, const char *level)
{
    size_t n = strlen(level);
    for (const char *q = options; n && *q;) {
        size_t l = strcspn(q, ",");
        if (l == n && strncmp(q, level, n) == 0)
            return true;
        q += l + (q[l] == ',');
    }
    return false;
}

/* Text is counted the way TikTok counts it (§2.2): UTF-16 code units. */
long tt_utf16_len(const char *s)
{
    const unsigned char *p = (const unsigned char *)s;
    long n = 0;
    while (*p) {
        int extra;
        unsigned cp;
        if (*p < 0x80) {
            cp = *p;
            extra = 0;
        } else if ((*p & 0xe0) == 0xc0) {
            cp = *p & 0x1f;
            extra = 1;
        } else if ((*p & 0xf0) == 0xe0) {
            cp = *p & 0x0f;
            extra = 2;
        } else if ((*p & 0xf8) == 0xf0) {
            cp = *p & 0x07;
            extra = 3;
        } else {
            return -1;
        }
        p++;
        for (int i = 0; i < extra; i++, p++) {
            if ((*p & 0xc0) != 0x80)
                return -1;
            cp = cp << 6 | (*p & 0x3f);
        }
        if ((extra == 1 && cp < 0x80) || (extra == 2 && cp < 0x800) ||
            (extra == 3 && (cp < 0x10000 || cp > 0x10ffff)) || (cp >= 0xd800 && cp <= 0xdfff))
            return -1; /* overlong, out of range, or a surrogate */
        n += cp >= 0x10000 ? 2 : 1;
    }
    return n;
}

/* ---- calls ------------------------------------------------------------------ */

static const struct tt_endpoint endpoints[] = {
    [TT_CREATOR_INFO] = {"creator_info", TT_PATH_CREATOR_INFO, HTTP_RETRY_RATED, "creator_info"},
    [TT_VIDEO_INIT] = {"init", TT_PATH_VIDEO_INIT, HTTP_RETRY_NOT_SENT, "video_init"},
    [TT_INBOX_INIT] = {"inbox init", TT_PATH_INBOX_INIT, HTTP_RETRY_NOT_SENT, "inbox_init"},
    [TT_CONTENT_INIT] = {"photo init", TT_PATH_CONTENT_INIT, HTTP_RETRY_NOT_SENT, "content_init"},
    [TT_STATUS] = {"status", TT_PATH_STATUS, HTTP_RETRY_RATED, "status"},
    [TT_CANCEL] = {"cancel", TT_PATH_CANCEL, HTTP_RETRY_ALL, "cancel"},
};

const struct tt_endpoint *tt_endpoint_of(enum tt_call c)
{
    return &endpoints[c];
}

int tt_send(const struct tt_api *api, const char *account, enum tt_call c, const char *body,
            http_done_fn done, void *ud, struct tikd_err *e)
{
    if (!body)
        return tikd_fail(e, TIKD_ENOMEM, "%s: out of memory", endpoints[c].name);
    char url[600];
    int n = snprintf(url, sizeof url, "%s%s", api->base_url, endpoints[c].path);
    if (n < 0 || (size_t)n >= sizeof url)
        return tikd_fail(e, TIKD_EINVAL, "tiktok.api_url is too long");
    static const struct http_header h[] = {{"Content-Type", "application/json; charset=UTF-8"}};
    struct http_req req = {.method = "POST",
                           .url = url,
                           .headers = h,
                           .nheaders = 1,
                           .body = body,
                           .body_len = strlen(body),
                           .retry = endpoints[c].retry,
                           .metric = endpoints[c].metric,
                           .claim = c == TT_VIDEO_INIT || c == TT_INBOX_INIT ||
                                    c == TT_CONTENT_INIT}; /* a post: its creator is active */
    return oauth_request(api->oauth, account, &req, done, ud, e);
}

/* ---- answers ------------------------------------------------------------------- */

/* The answer's data object (the caller frees *doc), or NULL with why. */
static json_t *data_of(const struct http_resp *r, json_t **doc, char *why, size_t n)
{
    /* read once already by the policy, when TikTok's client sent it */
    *doc =
        r->json ? json_incref(r->json) : json_loadb(r->body ? r->body : "", r->body_len, 0, NULL);
    json_t *d = json_object_get(*doc, "data");
    if (!json_is_object(d)) {
        snprintf(why, n, "TikTok's answer has no data object");
        return NULL;
    }
    return d;
}

static const char *str_of(json_t *o, const char *k)
{
    const char *s = json_string_value(json_object_get(o, k));
    return s ? s : "";
}

int tt_decode_creator(const struct http_resp *r, struct tt_creator *c, char *why, size_t n)
{
    memset(c, 0, sizeof *c);
    json_t *doc, *d = data_of(r, &doc, why, n);
    json_t *opts = json_object_get(d, "privacy_level_options");
    if (!json_is_array(opts)) {
        json_decref(doc);
        snprintf(why, n, "creator_info: TikTok's answer has no privacy options");
        return -1;
    }
    size_t o = 0;
    for (size_t i = 0; i < json_array_size(opts); i++) {
        const char *s = json_string_value(json_array_get(opts, i));
        if (s && tt_privacy_known(s) && o + strlen(s) + 2 < sizeof c->options)
            o += (size_t)snprintf(c->options + o, sizeof c->options - o, "%s%s", o ? "," : "", s);
    }
    json_t *md = json_object_get(d, "max_video_post_duration_sec");
    json_int_t max = json_is_integer(md) ? json_integer_value(md) : 0;
    c->max_duration = max > 0 && max <= 86400 ? (int)max : 0;
    c->comment_disabled = json_is_true(json_object_get(d, "comment_disabled"));
    c->duet_disabled = json_is_true(json_object_get(d, "duet_disabled"));
    c->stitch_disabled = json_is_true(json_object_get(d, "stitch_disabled"));
    snprintf(c->username, sizeof c->username, "%s", str_of(d, "creator_username"));
    snprintf(c->nickname, sizeof c->nickname, "%s", str_of(d, "creator_nickname"));
    json_decref(doc);
    return 0;
}

int tt_decode_init(const struct http_resp *r, bool upload_url, struct tt_init *out, char *why,
                   size_t n)
{
    memset(out, 0, sizeof *out);
    json_t *doc, *d = data_of(r, &doc, why, n);
    const char *pid = json_string_value(json_object_get(d, "publish_id"));
    const char *url = json_string_value(json_object_get(d, "upload_url"));
    int rc = -1;
    if (!pid || !pid[0] || strlen(pid) >= sizeof out->publish_id)
        snprintf(why, n, "TikTok's answer lacks a usable publish_id");
    else if (upload_url &&
             (!url || strncmp(url, "http", 4) != 0 || strlen(url) >= sizeof out->upload_url))
        snprintf(why, n, "TikTok's answer lacks a usable upload_url");
    else
        rc = 0;
    if (rc == 0) {
        snprintf(out->publish_id, sizeof out->publish_id, "%s", pid);
        if (upload_url)
            snprintf(out->upload_url, sizeof out->upload_url, "%s", url);
    }
    json_decref(doc);
    return rc;
}

static uint64_t u64_of(json_t *o, const char *k)
{
    json_int_t v = json_integer_value(json_object_get(o, k));
    return v > 0 ? (uint64_t)v : 0;
}

int tt_decode_status(const struct http_resp *r, struct tt_status *s, char *why, size_t n)
{
    memset(s, 0, sizeof *s);
    json_t *doc, *d = data_of(r, &doc, why, n);
    if (!d) {
        json_decref(doc);
        return -1;
    }
    snprintf(s->status, sizeof s->status, "%s", str_of(d, "status"));
    snprintf(s->fail_reason, sizeof s->fail_reason, "%s", str_of(d, "fail_reason"));
    s->uploaded_bytes = u64_of(d, "uploaded_bytes");
    s->downloaded_bytes = u64_of(d, "downloaded_bytes");
    /* post ids are 19-digit integers (§0.3): jansson keeps them exact as
     * int64; a string form is taken as it is */
    json_t *ids = json_object_get(d, "publicaly_available_post_id");
    size_t o = 0;
    for (size_t i = 0; json_is_array(ids) && i < json_array_size(ids); i++) {
        json_t *v = json_array_get(ids, i);
        char one[32] = "";
        if (json_is_integer(v))
            snprintf(one, sizeof one, "%lld", (long long)json_integer_value(v));
        else if (json_is_string(v) &&
                 strspn(json_string_value(v), "0123456789") == strlen(json_string_value(v)))
            snprintf(one, sizeof one, "%s", json_string_value(v));
        if (one[0] && o + strlen(one) + 2 < sizeof s->post_ids)
            o += (size_t)snprintf(s->post_ids + o, sizeof s->post_ids - o, "%s%s", o ? "," : "",
                                  one);
    }
    json_decref(doc);
    return 0;
}

int tt_decode_user(const char *body, size_t n, struct tt_user *out, char *why, size_t wn)
{
    memset(out, 0, sizeof *out);
    json_t *doc = json_loadb(body ? body : "", n, 0, NULL);
    json_t *u = json_object_get(json_object_get(doc, "data"), "user");
    int rc = json_is_object(u) ? 0 : -1;
    if (rc == 0) {
        snprintf(out->open_id, sizeof out->open_id, "%s", str_of(u, "open_id"));
        snprintf(out->display_name, sizeof out->display_name, "%s", str_of(u, "display_name"));
    } else {
        snprintf(why, wn, "TikTok's answer has no user");
    }
    json_decref(doc);
    return rc;
}

bool tt_fail_retryable(const char *fail_reason)
{
    static const char *const retryable[] = {"internal", "video_pull_failed", "photo_pull_failed"};
    for (size_t i = 0; i < sizeof retryable / sizeof retryable[0]; i++)
        if (strcmp(fail_reason, retryable[i]) == 0)
            return true;
    return false;
}

/* ---- bodies ------------------------------------------------------------------------ */

static char *dump(json_t *o)
{
    char *s = o ? json_dumps(o, JSON_COMPACT) : NULL;
    json_decref(o);
    return s;
}

static bool is_url(const char *media)
{
    return strncmp(media, "https://", 8) == 0;
}

char *tt_body_video_init(const struct job *j, const struct tt_creator *c)
{
    json_t *post = NULL;
    if (j->mode == JOB_DIRECT) {
        post = json_pack("{s:s, s:b, s:b, s:b, s:b, s:b, s:b}", "privacy_level", j->privacy,
                         "disable_comment", j->opt.disable_comment || c->comment_disabled,
                         "disable_duet", j->opt.disable_duet || c->duet_disabled, "disable_stitch",
                         j->opt.disable_stitch || c->stitch_disabled, "brand_content_toggle",
                         j->opt.brand_content, "brand_organic_toggle", j->opt.brand_organic,
                         "is_aigc", j->opt.is_aigc);
        if (post && j->opt.cover_ms >= 0)
            json_object_set_new(post, "video_cover_timestamp_ms", json_integer(j->opt.cover_ms));
    } else if (j->caption[0]) {
        post = json_object(); /* a draft: the title only (§2.3, §7 #12) */
    }
    if (post && j->caption[0])
        json_object_set_new(post, "title", json_string(j->caption));
    json_t *source =
        is_url(j->media)
            ? json_pack("{s:s, s:s}", "source", "PULL_FROM_URL", "video_url", j->media)
            : json_pack("{s:s, s:I, s:I, s:I}", "source", "FILE_UPLOAD", "video_size",
                        (json_int_t)j->plan.size, "chunk_size", (json_int_t)j->plan.chunk_size,
                        "total_chunk_count", (json_int_t)j->plan.count);
    json_t *body = json_object();
    if (post)
        json_object_set_new(body, "post_info", post);
    json_object_set_new(body, "source_info", source);
    return dump(body);
}

char *tt_body_photo_init(const struct job *j, const char *const *urls, size_t n)
{
    json_t *images = json_array();
    for (size_t i = 0; i < n; i++)
        json_array_append_new(images, json_string(urls[i]));
    json_t *post = json_object();
    if (j->caption[0])
        json_object_set_new(post, "title", json_string(j->caption));
    if (j->description[0])
        json_object_set_new(post, "description", json_string(j->description));
    if (j->mode == JOB_DIRECT) { /* the rest is DIRECT_POST only (§2.6) */
        json_object_set_new(post, "privacy_level", json_string(j->privacy));
        json_object_set_new(post, "disable_comment", json_boolean(j->opt.disable_comment));
        json_object_set_new(post, "auto_add_music", json_boolean(j->opt.auto_add_music));
        json_object_set_new(post, "brand_content_toggle", json_boolean(j->opt.brand_content));
        json_object_set_new(post, "brand_organic_toggle", json_boolean(j->opt.brand_organic));
    }
    return dump(json_pack("{s:s, s:s, s:o, s:{s:s, s:o, s:i}}", "media_type", "PHOTO", "post_mode",
                          j->mode == JOB_DRAFT ? "MEDIA_UPLOAD" : "DIRECT_POST", "post_info", post,
                          "source_info", "source", "PULL_FROM_URL", "photo_images", images,
                          "photo_cover_index", j->cover_index));
}

char *tt_body_publish_id(const char *publish_id)
{
    return dump(json_pack("{s:s}", "publish_id", publish_id));
}

/* ---- the bytes -------------------------------------------------------------------- */

int tt_put_chunk(struct http *h, const struct job *j, uint32_t index, http_done_fn done, void *ud,
                 struct http_xfer **x, struct tikd_err *e)
{
    return tt_put_chunk_progress(h, j, index, done, ud, NULL, NULL, x, e);
}

int tt_put_chunk_progress(struct http *h, const struct job *j, uint32_t index, http_done_fn done,
                          void *ud, void (*progress)(void *, uint64_t, uint64_t), void *pud,
                          struct http_xfer **x, struct tikd_err *e)
{
    uint64_t first, len;
    upload_chunk(&j->plan, index, &first, &len);
    char ctype[64], range[96];
    snprintf(ctype, sizeof ctype, "%s", j->mime[0] ? j->mime : "video/mp4");
    snprintf(range, sizeof range, "bytes %llu-%llu/%llu", (unsigned long long)first,
             (unsigned long long)(first + len - 1), (unsigned long long)j->plan.size);
    struct http_header hd[] = {{"Content-Type", ctype}, {"Content-Range", range}};
    struct http_req req = {.method = "PUT",
                           .url = j->upload_url,
                           .headers = hd,
                           .nheaders = 2,
                           .body_file = j->media,
                           .body_off = (off_t)first,
                           .body_len = len,
                           .timeout = 0,
                           .retry = HTTP_RETRY_ALL,
                           .metric = "upload",
                           .progress = progress,
                           .progress_ud = pud,
                           .owner = j->account};
    return http_request(h, &req, done, ud, x, e);
}

/* ---- creator_info answers ------------------------------------------------------------ */

/* An open-addressing table by account name (a lookup costs the same with
 * ten accounts or ten thousand). Entries are never moved out of their slot
 * but at a rehash, which drops every answer older than the TTL: the table
 * holds about the accounts that posted within five minutes. */
struct creator_entry {
    char account[65];
    double at;
    struct tt_creator c;
};

struct tt_creators {
    struct creator_entry *v;
    size_t used, cap; /* slots taken (fresh or not), slots (a power of two) */
};

struct tt_creators *tt_creators_new(void)
{
    return calloc(1, sizeof(struct tt_creators));
}

void tt_creators_free(struct tt_creators *cs)
{
    if (cs)
        free(cs->v);
    free(cs);
}

static size_t name_hash(const char *s)
{
    size_t h = 1469598103934665603u; /* FNV-1a */
    for (; *s; s++)
        h = (h ^ (unsigned char)*s) * 1099511628211u;
    return h;
}

/* account's slot, or the empty slot where it would go (NULL: no table) */
static struct creator_entry *slot(struct tt_creators *cs, const char *account)
{
    if (!cs->cap)
        return NULL;
    for (size_t i = name_hash(account) & (cs->cap - 1);; i = (i + 1) & (cs->cap - 1))
        if (!cs->v[i].account[0] || strcmp(cs->v[i].account, account) == 0)
            return &cs->v[i];
}

static bool fresh(const struct creator_entry *ce, double now)
{
    return ce->account[0] && now - ce->at < TT_CREATOR_INFO_TTL;
}

/* a table at most half full of the fresh answers, with room for one more */
static int rehash(struct tt_creators *cs, double now)
{
    size_t live = 0;
    for (size_t i = 0; i < cs->cap; i++)
        live += fresh(&cs->v[i], now);
    size_t cap = 16;
    while (cap < 2 * (live + 1))
        cap *= 2;
    struct creator_entry *old = cs->v, *v = calloc(cap, sizeof *v);
    if (!v)
        return TIKD_ENOMEM;
    size_t oldcap = cs->cap;
    cs->v = v;
    cs->cap = cap;
    cs->used = 0;
    for (size_t i = 0; i < oldcap; i++)
        if (fresh(&old[i], now)) {
            *slot(cs, old[i].account) = old[i];
            cs->used++;
        }
    free(old);
    return 0;
}

const struct tt_creator *tt_creators_get(struct tt_creators *cs, const char *account, double now)
{
    struct creator_entry *ce = slot(cs, account);
    return ce && fresh(ce, now) ? &ce->c : NULL;
}

int tt_creators_put(struct tt_creators *cs, const char *account, const struct tt_creator *c,
                    double now)
{
    struct creator_entry *ce = slot(cs, account);
    if (!ce || !ce->account[0]) {
        if ((cs->used + 1) * 4 > cs->cap * 3) { /* past three quarters: drop the stale, grow */
            int rc = rehash(cs, now);
            if (rc != 0)
                return rc;
            ce = slot(cs, account);
        }
        if (!ce->account[0]) {
            snprintf(ce->account, sizeof ce->account, "%s", account);
            cs->used++;
        }
    }
    ce->at = now;
    ce->c = *c;
    return 0;
}

void tt_creators_forget(struct tt_creators *cs, const char *account)
{
    struct creator_entry *ce = slot(cs, account);
    if (ce && ce->account[0])
        ce->at = -TT_CREATOR_INFO_TTL; /* kept as a key until the next rehash */
}
