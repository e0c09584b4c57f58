/* webhook.c - signature checks and event decoding (see webhook.h). */
#include "webhook.h"
#include "codec.h"

#include <jansson.h>
#include <openssl/crypto.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

int webhook_verify(const char *secret, const char *header, const char *body, size_t n, double now,
                   double tolerance, char *why, size_t wn)
{
    if (!secret || !*secret) {
        snprintf(why, wn, "no client secret configured: webhooks cannot be verified");
        return -1;
    }
    if (!header) {
        snprintf(why, wn, "no TikTok-Signature header");
        return -1;
    }
    char t[32] = "", s[130] = "";
    for (const char *p = header; *p;) {
        const char *end = strchr(p, ',');
        size_t l = end ? (size_t)(end - p) : strlen(p);
        while (l && *p == ' ')
            p++, l--;
        const char *eq = memchr(p, '=', l);
        if (eq) {
            size_t kl = (size_t)(eq - p), vl = l - kl - 1;
            if (kl == 1 && *p == 't' && vl < sizeof t)
                snprintf(t, sizeof t, "%.*s", (int)vl, eq + 1);
            else if (kl == 1 && *p == 's' && vl < sizeof s)
                snprintf(s, sizeof s, "%.*s", (int)vl, eq + 1);
        }
        p = end ? end + 1 : p + l;
    }
    char *tend;
    long long ts = strtoll(t, &tend, 10);
    if (!t[0] || *tend || strlen(s) != 64) {
        snprintf(why, wn, "malformed TikTok-Signature header (expected t=<unix>,s=<64 hex>)");
        return -1;
    }
    /* HMAC-SHA256 over t "." body, the exact bytes received */
    size_t tl = strlen(t);
    char *msg = malloc(tl + 1 + n);
    if (!msg) {
        snprintf(why, wn, "out of memory");
        return -1;
    }
    memcpy(msg, t, tl);
    msg[tl] = '.';
    memcpy(msg + tl + 1, body, n);
    char expect[CODEC_SHA256_HEX];
    codec_hmac_sha256_hex(secret, msg, tl + 1 + n, expect);
    free(msg);
    char lower[65];
    for (int i = 0; i < 64; i++)
        lower[i] = (char)(s[i] >= 'A' && s[i] <= 'F' ? s[i] + 32 : s[i]);
    lower[64] = '\0';
    if (CRYPTO_memcmp(expect, lower, 64) != 0) {
        snprintf(why, wn, "bad signature");
        return -1;
    }
    double skew = now - (double)ts;
    if (skew > tolerance || -skew > tolerance) {
        snprintf(why, wn, "stale signature: t is %.0f s away from now (tolerance %.0f s)", skew,
                 tolerance);
        return -1;
    }
    return 0;
}

static void str(json_t *o, const char *k, char *out, size_t n)
{
    json_t *v = json_object_get(o, k);
    if (json_is_string(v))
        snprintf(out, n, "%s", json_string_value(v));
    else if (json_is_integer(v))
        snprintf(out, n, "%lld", (long long)json_integer_value(v));
}

int webhook_parse(const char *body, size_t n, struct webhook_event *ev, char *why, size_t wn)
{
    memset(ev, 0, sizeof *ev);
    json_error_t err;
    json_t *o = json_loadb(body, n, 0, &err);
    if (!json_is_object(o)) {
        snprintf(why, wn, "the body is not a JSON object");
        json_decref(o);
        return -1;
    }
    str(o, "event", ev->event, sizeof ev->event);
    str(o, "client_key", ev->client_key, sizeof ev->client_key);
    str(o, "user_openid", ev->user_openid, sizeof ev->user_openid);
    ev->create_time = json_integer_value(json_object_get(o, "create_time"));
    const char *content = json_string_value(json_object_get(o, "content"));
    json_t *c = content ? json_loads(content, 0, &err) : NULL;
    if (!ev->event[0] || (content && !json_is_object(c))) {
        snprintf(why, wn,
                 ev->event[0] ? "content is not a JSON object in a string" : "no event name");
        json_decref(c);
        json_decref(o);
        return -1;
    }
    if (c) {
        str(c, "publish_id", ev->publish_id, sizeof ev->publish_id);
        str(c, "publish_type", ev->publish_type, sizeof ev->publish_type);
        str(c, "post_id", ev->post_id, sizeof ev->post_id);
        json_t *r = json_object_get(c, "reason");
        if (!r)
            r = json_object_get(c, "fail_reason"); /* accepted too (spec §5.2) */
        if (json_is_integer(r))
            ev->reason_code = json_integer_value(r);
        else if (json_is_string(r))
            snprintf(ev->reason, sizeof ev->reason, "%s", json_string_value(r));
    }
    json_decref(c);
    json_decref(o);
    return 0;
}
