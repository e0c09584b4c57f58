/* fuzz_tiktok.c - every decoder of a TikTok answer: the policy that
 * classifies any status and body, creator_info, the inits, publish status,
 * user info and the token endpoint's grant. The first byte picks the HTTP
 * status and the decoder; the rest is the body. */
#include "fuzz.h"

#include <jansson.h>
#include <stdlib.h>
#include <string.h>

#include "../../core/oauth_int.h"
#include "../../core/policy.h"
#include "../../core/tiktok.h"

static const long statuses[] = {200, 200, 200, 400, 401, 403, 429, 500, 503, 201};

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size < 1)
        return 0;
    unsigned pick = data[0];
    char *body = malloc(size); /* NUL-terminated, as the HTTP layer hands bodies over */
    if (!body)
        return 0;
    memcpy(body, data + 1, size - 1);
    body[size - 1] = '\0';
    size_t n = size - 1;
    struct http_resp r = {
        .status = statuses[pick % 10], .body = body, .body_len = n, .headers = ""};
    policy_classify(0, NULL, r.status, body, n, (pick & 16) ? 3 : -1, (pick & 32) == 0, &r.out,
                    (pick & 4) ? &r.json : NULL); /* the decoders read it, or the body */
    char why[600];
    switch ((pick >> 6) & 3) {
    case 0: {
        struct tt_creator c;
        tt_decode_creator(&r, &c, why, sizeof why);
        struct tt_init in;
        tt_decode_init(&r, pick & 1, &in, why, sizeof why);
        break;
    }
    case 1: {
        struct tt_status st;
        tt_decode_status(&r, &st, why, sizeof why);
        break;
    }
    case 2: {
        struct tt_user u;
        tt_decode_user(body, n, &u, why, sizeof why);
        break;
    }
    default: {
        struct grant g;
        json_t *doc = oauth_parse_grant(body, n, &g, why, sizeof why);
        json_decref(doc);
        break;
    }
    }
    json_decref(r.json);
    free(body);
    return 0;
}
