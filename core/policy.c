/* policy.c - the error table and its classifier (see policy.h).
 *
 * Order of evidence: a transport failure (no response) is classified by its
 * curl code; a response is classified by TikTok's code in the body when there
 * is one (TikTok sends some errors with HTTP 200, and OAuth errors with any
 * status, spec §0.2, §1.10), else by its HTTP status. */
#include "policy.h"

#include <curl/curl.h>
#include <jansson.h>
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>

#define HOUR 3600.0
#define DAY  (24 * HOUR)

struct code_rule {
    const char *code;
    enum pol_action action;
    double defer; /* for DEFER without Retry-After: seconds to wait */
    const char *message;
};

/* Content Posting and Display API error.code values, spec §3.3. */
static const struct code_rule api_codes[] = {
    {"access_token_invalid", POL_REAUTH, 0, "the access token is expired or unknown (§3.3)"},
    {"scope_not_authorized", POL_REAUTH, 0,
     "the user did not grant a scope this call needs: reconnect the account (§1.9)"},
    {"scope_permission_missed", POL_REAUTH, 0,
     "the requested fields need a scope the user did not grant (§6.1)"},
    {"invalid_params", POL_FAIL, 0, "TikTok rejected the request's parameters (§3.3)"},
    {"invalid_param", POL_FAIL, 0, "TikTok rejected the request's parameters (§3.3)"},
    {"invalid_file_upload", POL_FAIL, 0, "the file does not meet TikTok's media rules (§4)"},
    {"app_version_check_failed", POL_FAIL, 0,
     "the creator's TikTok app is older than 31.8: photo drafts need a newer app (§2.6)"},
    {"invalid_publish_id", POL_FAIL, 0, "TikTok does not know this publish_id (§2.7)"},
    {"token_not_authorized_for_specified_publish_id", POL_FAIL, 0,
     "this publish_id belongs to another account (§2.7)"},
    {"publish_not_cancellable", POL_FAIL, 0,
     "the post is too far along to cancel: only downloads in progress can be (§2.8)"},
    {"spam_risk_too_many_posts", POL_DEFER, DAY,
     "the creator reached TikTok's daily post cap (shared with every app): wait a day (§3.2)"},
    {"spam_risk_user_banned_from_posting", POL_FAIL, 0,
     "TikTok has banned this creator from posting (§3.3)"},
    {"spam_risk_too_many_pending_share", POL_DEFER, 6 * HOUR,
     "too many drafts wait in the creator's inbox: they must post or delete some (§2.3)"},
    {"reached_active_user_cap", POL_DEFER, DAY,
     "the app reached its daily cap of active creators (§3.2)"},
    {"unaudited_client_can_only_post_to_private_accounts", POL_FAIL, 0,
     "this app is not audited by TikTok: it may only post SELF_ONLY to private accounts (§3.2)"},
    {"url_ownership_unverified", POL_FAIL, 0,
     "the media URL's domain or prefix is not verified for this app in TikTok's developer "
     "portal (URL properties, §2.9)"},
    {"privacy_level_option_mismatch", POL_FAIL, 0,
     "the privacy level is not one this creator offers now (creator_info, §2.1)"},
    {"rate_limit_exceeded", POL_DEFER, 60, "TikTok's per-minute rate limit was hit (§3.1)"},
    {"internal_error", POL_RETRY, 0, "TikTok reported an internal error (§3.3)"},
};

/* OAuth `error` values, spec §1.10. */
static const struct code_rule oauth_codes[] = {
    {"invalid_grant", POL_REAUTH, 0,
     "the code or refresh token is invalid, expired or revoked: the account must be "
     "connected again (§1.10)"},
    {"access_denied", POL_FAIL, 0, "the user or TikTok refused the authorization (§1.10)"},
    {"invalid_client", POL_FAIL, 0,
     "TikTok rejected the client key or secret: check tiktok.client_key and the secret "
     "(§1.10)"},
    {"invalid_request", POL_FAIL, 0,
     "a parameter is missing or malformed (also a bad PKCE verifier) (§1.10)"},
    {"invalid_scope", POL_FAIL, 0, "a requested scope is unknown or malformed (§1.10)"},
    {"unauthorized_client", POL_FAIL, 0, "the app may not use this grant type (§1.10)"},
    {"unsupported_grant_type", POL_FAIL, 0, "TikTok does not know this grant_type (§1.10)"},
    {"unsupported_response_type", POL_FAIL, 0, "wrong response_type (§1.10)"},
    {"server_error", POL_RETRY, 0, "TikTok's OAuth server failed (§1.10)"},
    {"temporarily_unavailable", POL_RETRY, 0, "TikTok's OAuth server is unavailable (§1.10)"},
};

const char *policy_action_name(enum pol_action a)
{
    static const char *const names[] = {"ok", "retry", "defer", "reauth", "fail"};
    return names[a];
}

static void set(struct pol_outcome *o, enum pol_action a, const char *code, const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));

static void set(struct pol_outcome *o, enum pol_action a, const char *code, const char *fmt, ...)
{
    o->action = a;
    snprintf(o->code, sizeof o->code, "%s", code);
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(o->message, sizeof o->message, fmt, ap);
    va_end(ap);
}

static const struct code_rule *lookup(const struct code_rule *t, size_t n, const char *code)
{
    for (size_t i = 0; i < n; i++)
        if (strcmp(t[i].code, code) == 0)
            return &t[i];
    return NULL;
}

static void classify_transport(int cc, const char *err, struct pol_outcome *o)
{
    char code[32];
    snprintf(code, sizeof code, "curl_%d", cc);
    const char *why = err && *err ? err : curl_easy_strerror((CURLcode)cc);
    switch ((CURLcode)cc) {
    case CURLE_COULDNT_RESOLVE_HOST:
    case CURLE_COULDNT_RESOLVE_PROXY:
    case CURLE_COULDNT_CONNECT:
    case CURLE_OPERATION_TIMEDOUT:
    case CURLE_SEND_ERROR:
    case CURLE_RECV_ERROR:
    case CURLE_GOT_NOTHING:
    case CURLE_PARTIAL_FILE:
    case CURLE_HTTP2:
    case CURLE_HTTP2_STREAM:
    case CURLE_SSL_CONNECT_ERROR:
        set(o, POL_RETRY, code, "network: %s", why);
        break;
    case CURLE_PEER_FAILED_VERIFICATION:
        set(o, POL_FAIL, code,
            "TLS: the server's certificate is not trusted (%s); tikd always verifies TLS: set "
            "http.ca_file if you use a private CA",
            why);
        break;
    case CURLE_WRITE_ERROR:
        set(o, POL_FAIL, code, "the response was refused: %s", why);
        break;
    default:
        set(o, POL_FAIL, code, "transfer failed: %s", why);
        break;
    }
}

static void classify_status(long status, struct pol_outcome *o)
{
    char code[32];
    snprintf(code, sizeof code, "http_%ld", status);
    if (status >= 200 && status < 300)
        set(o, POL_OK, "ok", "ok");
    else if (status == 429)
        set(o, POL_DEFER, code, "rate limited (HTTP 429)");
    else if (status >= 500 || status == 408)
        set(o, POL_RETRY, code, "server error (HTTP %ld)", status);
    else if (status == 401)
        set(o, POL_REAUTH, code, "not authorized (HTTP 401)");
    else
        set(o, POL_FAIL, code, "request refused (HTTP %ld)", status);
    if (o->action == POL_DEFER && o->retry_after < 0)
        o->retry_after = 60;
}

/* The body's document goes to the caller who asked for it (a JSON object:
 * what TikTok's answers are), or is released. */
static void let_go(json_t *root, json_t **doc)
{
    if (doc && json_is_object(root))
        *doc = root;
    else
        json_decref(root);
}

void policy_classify(int curl_code, const char *curl_error, long status, const char *body,
                     size_t len, double retry_after, bool tiktok, struct pol_outcome *o,
                     json_t **doc)
{
    memset(o, 0, sizeof *o);
    if (doc)
        *doc = NULL;
    o->retry_after = retry_after;
    if (curl_code != 0) {
        classify_transport(curl_code, curl_error, o);
        return;
    }
    if (!tiktok) {
        classify_status(status, o);
        return;
    }
    json_t *root = NULL;
    if (body && len) {
        json_error_t jerr;
        root = json_loadb(body, len, 0, &jerr);
        if (!root && status >= 200 && status < 300) {
            /* TikTok always answers JSON; a garbled success body is transient
             * (a proxy, a cut connection) and is retried */
            set(o, POL_RETRY, "malformed_json", "malformed JSON in a HTTP %ld response: %s", status,
                jerr.text);
            return;
        }
    }
    const char *code = NULL, *msg = NULL, *shape = NULL;
    char numeric[48];
    bool oauth = false;
    if (json_is_object(root)) {
        json_t *err = json_object_get(root, "error");
        if (json_is_object(err)) { /* the v2 envelope */
            json_t *c = json_object_get(err, "code");
            code = json_string_value(c);
            if (!c)
                shape = "an error object without a code";
            else if (json_is_integer(c)) /* never taken for ok, whatever the number */
                snprintf(numeric, sizeof numeric, "code_%" JSON_INTEGER_FORMAT,
                         json_integer_value(c));
            else if (!json_is_string(c))
                shape = "an error code that is neither text nor a number";
            if (json_is_integer(c))
                code = numeric;
            msg = json_string_value(json_object_get(err, "message"));
            const char *lid = json_string_value(json_object_get(err, "log_id"));
            if (!lid)
                lid = json_string_value(json_object_get(err, "logid")); /* spec §0.2 */
            if (!lid)
                lid = json_string_value(json_object_get(root, "log_id"));
            if (lid)
                snprintf(o->log_id, sizeof o->log_id, "%s", lid);
        } else if (json_is_string(err)) { /* a flat error, any status: OAuth's or a bare API one */
            code = json_string_value(err);
            msg = json_string_value(json_object_get(root, "error_description"));
            if (!msg)
                msg = json_string_value(json_object_get(root, "message"));
            oauth = true;
            const char *lid = json_string_value(json_object_get(root, "log_id"));
            if (!lid)
                lid = json_string_value(json_object_get(root, "logid"));
            if (lid)
                snprintf(o->log_id, sizeof o->log_id, "%s", lid);
        } else if (err && !json_is_null(err)) {
            shape = "an error that is neither an object nor text";
        }
    }
    if (shape) {
        o->unknown = true;
        /* the body is not quoted: it may hold a token not yet registered */
        set(o, POL_FAIL, "unknown_shape", "TikTok answered HTTP %ld with %s", status, shape);
        let_go(root, doc);
        return;
    }
    if (!code || (!oauth && strcmp(code, "ok") == 0)) {
        classify_status(status, o);
        if (o->action == POL_OK && code == NULL && root && !json_is_object(root))
            set(o, POL_RETRY, "malformed_json", "the response body is not a JSON object");
        let_go(root, doc);
        return;
    }
    /* a flat body may carry an API code too ({"error": "access_token_invalid"}
     * with a 401): OAuth's table first, then the API's */
    const struct code_rule *r =
        oauth ? lookup(oauth_codes, sizeof oauth_codes / sizeof oauth_codes[0], code) : NULL;
    if (!r)
        r = lookup(api_codes, sizeof api_codes / sizeof api_codes[0], code);
    if (!r) {
        o->unknown = true;
        set(o, POL_FAIL, code, "unknown TikTok error code '%s' (HTTP %ld): %.120s", code, status,
            msg ? msg : "");
    } else {
        set(o, r->action, code, "%s%s%.100s", r->message, msg && *msg ? ": " : "", msg ? msg : "");
        if (status == 429 && o->action == POL_RETRY)
            o->action = POL_DEFER; /* "too many requests" whatever the body says: wait */
        if (o->action == POL_DEFER && o->retry_after < 0)
            o->retry_after = r->defer > 0 ? r->defer : 60;
    }
    let_go(root, doc);
}

double policy_backoff(int attempt, double base, double cap, double floor, double rnd)
{
    double ceiling = base * pow(2.0, attempt > 1 ? attempt - 1 : 0);
    if (ceiling > cap)
        ceiling = cap;
    double d = ceiling * rnd;
    return d < floor ? floor : d;
}

bool policy_may_have_acted(long status, const struct pol_outcome *out)
{
    if (out->action == POL_OK)
        return true;
    if (out->unsent || (out->action == POL_REAUTH && status == 0))
        return false; /* its token could not be renewed: it was never sent */
    bool never_left = strcmp(out->code, "curl_7") == 0 || strcmp(out->code, "curl_6") == 0 ||
                      strcmp(out->code, "curl_5") == 0;
    bool garbled = strcmp(out->code, "malformed_json") == 0 || out->unknown;
    bool refused = ((status >= 200 && status < 300) || (status >= 400 && status < 500)) && !garbled;
    return !refused && !never_left;
}
