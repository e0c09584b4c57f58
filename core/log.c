/* log.c - event lines and the redaction registry (see log.h).
 *
 * Redaction is a scan over the formatted line: a rolling fingerprint per
 * distinct secret length, looked up in a hash index of registered secrets,
 * so the cost per line is proportional to its length times the few lengths
 * tokens come in, not to the number of secrets (an agency registers two
 * tokens per account, thousands in all). The registry holds no secret. */
#include "log.h"
#include "clock.h"

#include <openssl/crypto.h>
#include <openssl/evp.h>
#include <openssl/hmac.h>
#include <openssl/rand.h>
#include <stdbool.h>
#include <stdarg.h>
#include <stdint.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

enum tlog_level tlog_threshold = TLOG_INFO;
static enum tlog_format out_format = TLOG_LOGFMT;
static int out_fd = 2;
static void (*out_hook)(const char *, size_t, void *);
static void *out_hook_ud;

static const char *const level_names[] = {"debug", "info", "warn", "error"};
static const char MASK[] = "[redacted]";

/* ---- the registry ---------------------------------------------------- */

/* No secret is kept, not even in part: each registered form is its length,
 * a 64-bit rolling fingerprint and an HMAC-SHA-256 under a key drawn at the
 * first registration. Masking rolls one fingerprint per distinct registered
 * length along the line (agencies register thousands of tokens, but of a
 * handful of lengths) and confirms each fingerprint hit by the HMAC, so a
 * collision never masks text that is not a secret, and a core file or a read
 * of this memory gives no secret away. */

struct secret {
    uint64_t fp;
    size_t n;
    unsigned char mac[32];
    bool live;
    int next; /* next secret in the same bucket, -1 ends */
};

struct seclen {
    size_t n;
    uint64_t top; /* base^(n-1): what the byte leaving the window weighed */
    int count;    /* live secrets of this length */
};

static struct secret *secrets;
static int nsecrets, capsecrets;
static int *buckets; /* head index per bucket, -1 empty */
static size_t nbuckets;
static struct seclen *lens; /* distinct lengths of live secrets, ascending */
static int nlens, caplens;
static unsigned char mac_key[32];
static uint64_t base; /* odd, random: the fingerprint's polynomial base */

static int registry_keys(void)
{
    if (base)
        return 0;
    uint64_t b;
    if (RAND_bytes(mac_key, sizeof mac_key) != 1 || RAND_bytes((unsigned char *)&b, sizeof b) != 1)
        return -1;
    base = b | 1;
    return 0;
}

static uint64_t fingerprint(const unsigned char *p, size_t n)
{
    uint64_t h = 0;
    for (size_t i = 0; i < n; i++)
        h = h * base + p[i];
    return h;
}

static void mac_of(const void *p, size_t n, unsigned char out[32])
{
    unsigned int len = 32;
    if (!HMAC(EVP_sha256(), mac_key, sizeof mac_key, p, n, out, &len))
        memset(out, 0, 32); /* never equal to a real MAC of a registered form */
}

static int index_rebuild(size_t want)
{
    int *nb = malloc(want * sizeof *nb);
    if (!nb)
        return -1;
    for (size_t i = 0; i < want; i++)
        nb[i] = -1;
    free(buckets);
    buckets = nb;
    nbuckets = want;
    for (int i = 0; i < nsecrets; i++) {
        if (!secrets[i].live)
            continue;
        size_t b = secrets[i].fp & (nbuckets - 1);
        secrets[i].next = buckets[b];
        buckets[b] = i;
    }
    return 0;
}

/* The live entry for this form, or -1. */
static int secret_find(uint64_t fp, size_t n, const unsigned char mac[32])
{
    if (!nbuckets)
        return -1;
    for (int i = buckets[fp & (nbuckets - 1)]; i >= 0; i = secrets[i].next)
        if (secrets[i].live && secrets[i].fp == fp && secrets[i].n == n &&
            CRYPTO_memcmp(secrets[i].mac, mac, 32) == 0)
            return i;
    return -1;
}

static int len_count(size_t n, int delta)
{
    int k = 0;
    while (k < nlens && lens[k].n < n)
        k++;
    if (k < nlens && lens[k].n == n) {
        if ((lens[k].count += delta) == 0)
            memmove(&lens[k], &lens[k + 1], (size_t)(--nlens - k) * sizeof lens[0]);
        return 0;
    }
    if (delta < 0)
        return 0;
    if (nlens == caplens) {
        int nc = caplens ? caplens * 2 : 8;
        struct seclen *g = realloc(lens, (size_t)nc * sizeof *g);
        if (!g)
            return -1;
        lens = g;
        caplens = nc;
    }
    memmove(&lens[k + 1], &lens[k], (size_t)(nlens - k) * sizeof lens[0]);
    uint64_t top = 1;
    for (size_t i = 1; i < n; i++)
        top *= base;
    lens[k] = (struct seclen){n, top, delta};
    nlens++;
    return 0;
}

static int secret_add_one(const char *s, size_t n)
{
    uint64_t fp = fingerprint((const unsigned char *)s, n);
    unsigned char mac[32];
    mac_of(s, n, mac);
    if (secret_find(fp, n, mac) >= 0)
        return 0;
    if (nsecrets == capsecrets) {
        int nc = capsecrets ? capsecrets * 2 : 64;
        struct secret *ns = realloc(secrets, (size_t)nc * sizeof *ns);
        if (!ns)
            return -1;
        secrets = ns;
        capsecrets = nc;
    }
    if (len_count(n, 1) != 0)
        return -1;
    secrets[nsecrets] = (struct secret){.fp = fp, .n = n, .live = true, .next = -1};
    memcpy(secrets[nsecrets].mac, mac, 32);
    nsecrets++;
    if ((size_t)nsecrets * 2 > nbuckets)
        return index_rebuild(nbuckets ? nbuckets * 4 : 256);
    size_t b = fp & (nbuckets - 1);
    secrets[nsecrets - 1].next = buckets[b];
    buckets[b] = nsecrets - 1;
    return 0;
}

/* The forms a secret takes inside a URL and inside a JSON string. */
static size_t url_encode(const char *s, size_t n, char *out)
{
    static const char hex[] = "0123456789ABCDEF";
    size_t o = 0;
    for (size_t i = 0; i < n; i++) {
        unsigned char c = (unsigned char)s[i];
        if ((c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') ||
            c == '-' || c == '.' || c == '_' || c == '~') {
            out[o++] = (char)c;
        } else {
            out[o++] = '%';
            out[o++] = hex[c >> 4];
            out[o++] = hex[c & 15];
        }
    }
    return o;
}

static size_t json_escape(const char *s, size_t n, char *out)
{
    size_t o = 0;
    for (size_t i = 0; i < n; i++) {
        unsigned char c = (unsigned char)s[i];
        if (c == '"' || c == '\\' || c == '/') {
            out[o++] = '\\';
            out[o++] = (char)c;
        } else if (c < 0x20) {
            o += (size_t)sprintf(out + o, "\\u%04x", c);
        } else {
            out[o++] = (char)c;
        }
    }
    return o;
}

int tlog_secret_add(const char *secret, size_t len)
{
    if (!secret || len < TLOG_SECRET_MIN || registry_keys() != 0)
        return -1;
    char *buf = malloc(len * 6 + 1);
    if (!buf)
        return -1;
    int rc = secret_add_one(secret, len);
    size_t n = url_encode(secret, len, buf);
    if (rc == 0 && (n != len || memcmp(buf, secret, len) != 0))
        rc = secret_add_one(buf, n);
    n = json_escape(secret, len, buf);
    if (rc == 0 && (n != len || memcmp(buf, secret, len) != 0))
        rc = secret_add_one(buf, n);
    OPENSSL_cleanse(buf, len * 6 + 1);
    free(buf);
    return rc;
}

static int secret_remove_one(const char *s, size_t n)
{
    unsigned char mac[32];
    mac_of(s, n, mac);
    int i = secret_find(fingerprint((const unsigned char *)s, n), n, mac);
    if (i < 0)
        return -1;
    secrets[i].live = false;
    len_count(n, -1);
    return 0;
}

int tlog_secret_remove(const char *secret, size_t len)
{
    if (!secret || len < TLOG_SECRET_MIN || !base)
        return -1;
    char *buf = malloc(len * 6 + 1);
    if (!buf)
        return -1;
    int rc = secret_remove_one(secret, len);
    secret_remove_one(buf, url_encode(secret, len, buf));
    secret_remove_one(buf, json_escape(secret, len, buf));
    OPENSSL_cleanse(buf, len * 6 + 1);
    free(buf);
    /* Compact when most entries are dead so the index stays small. */
    int live = 0;
    for (int i = 0; i < nsecrets; i++)
        live += secrets[i].live;
    if (nsecrets > 64 && live * 2 < nsecrets) {
        int o = 0;
        for (int i = 0; i < nsecrets; i++)
            if (secrets[i].live)
                secrets[o++] = secrets[i];
        nsecrets = o;
        index_rebuild(nbuckets);
    }
    return rc;
}

void tlog_secret_clear(void)
{
    free(secrets);
    free(buckets);
    secrets = NULL;
    buckets = NULL;
    nsecrets = capsecrets = 0;
    nbuckets = 0;
    free(lens);
    lens = NULL;
    nlens = caplens = 0;
}

/* best[i]: the length of the longest registered secret that starts at in + i
 * (0: none). NULL when none occurs anywhere, else malloc'd; *oom on failure. */
static uint32_t *secrets_in(const char *in, size_t len, bool *oom)
{
    const unsigned char *p = (const unsigned char *)in;
    uint32_t *best = NULL;
    *oom = false;
    for (int k = 0; k < nlens && lens[k].n <= len; k++) {
        size_t n = lens[k].n;
        uint64_t h = fingerprint(p, n);
        for (size_t i = 0;; i++) {
            for (int e = buckets[h & (nbuckets - 1)]; e >= 0; e = secrets[e].next) {
                if (!secrets[e].live || secrets[e].fp != h || secrets[e].n != n)
                    continue;
                unsigned char mac[32];
                mac_of(p + i, n, mac);
                if (CRYPTO_memcmp(mac, secrets[e].mac, 32) != 0)
                    continue;
                if (!best && !(best = calloc(len, sizeof *best))) {
                    *oom = true;
                    return NULL;
                }
                best[i] = (uint32_t)n; /* lengths ascend: the last is the longest */
                break;
            }
            if (i + n >= len)
                break;
            h = (h - p[i] * lens[k].top) * base + p[i + n];
        }
    }
    return best;
}

char *tlog_redact(const char *in, size_t len, size_t *outlen)
{
    bool oom;
    uint32_t *best = secrets_in(in, len, &oom);
    if (oom)
        return NULL;
    /* A masked line is never longer than len * (sizeof MASK) / TLOG_SECRET_MIN
     * + len; simpler to grow as needed. */
    size_t cap = len + 1, o = 0;
    char *out = malloc(cap);
    if (!out) {
        free(best);
        return NULL;
    }
    for (size_t i = 0; i < len;) {
        size_t hit = best ? best[i] : 0;
        const char *src = hit ? MASK : in + i;
        size_t n = hit ? sizeof MASK - 1 : 1;
        if (o + n + 1 > cap) {
            cap = (o + n + 1) * 2;
            char *g = realloc(out, cap);
            if (!g) {
                OPENSSL_cleanse(out, o);
                free(out);
                free(best);
                return NULL;
            }
            out = g;
        }
        memcpy(out + o, src, n);
        o += n;
        i += hit ? hit : 1;
    }
    free(best);
    out[o] = '\0';
    if (outlen)
        *outlen = o;
    return out;
}

/* ---- formatting ------------------------------------------------------ */

struct buf {
    char *p;
    size_t n, cap;
    int oom;
};

static void buf_put(struct buf *b, const char *s, size_t n)
{
    if (b->oom)
        return;
    if (b->n + n + 2 > b->cap) {
        size_t nc = (b->n + n + 2) * 2;
        char *g = realloc(b->p, nc);
        if (!g) {
            b->oom = 1;
            return;
        }
        b->p = g;
        b->cap = nc;
    }
    memcpy(b->p + b->n, s, n);
    b->n += n;
}

/* Lines held back (tlog_hold): formatted and redacted already. */
#define HELD_KEEP (1u << 20)
static struct buf held;
static bool holding;
static void out(const char *p, size_t n);

static void buf_puts(struct buf *b, const char *s)
{
    buf_put(b, s, strlen(s));
}

static void buf_printf(struct buf *b, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static void buf_printf(struct buf *b, const char *fmt, ...)
{
    char tmp[64];
    va_list ap;
    va_start(ap, fmt);
    int n = vsnprintf(tmp, sizeof tmp, fmt, ap);
    va_end(ap);
    if (n > 0)
        buf_put(b, tmp, (size_t)n < sizeof tmp ? (size_t)n : sizeof tmp - 1);
}

/* A logfmt value is bare when it has no space, quote, '=' or control byte. */
static void put_logfmt_str(struct buf *b, const char *s)
{
    int bare = *s != '\0';
    for (const char *p = s; *p; p++)
        if ((unsigned char)*p <= ' ' || *p == '"' || *p == '=' || *p == '\\' || *p == 0x7f)
            bare = 0;
    if (bare) {
        buf_puts(b, s);
        return;
    }
    buf_put(b, "\"", 1);
    for (const char *p = s; *p; p++) {
        unsigned char c = (unsigned char)*p;
        if (c == '"' || c == '\\') {
            char e[2] = {'\\', (char)c};
            buf_put(b, e, 2);
        } else if (c == '\n') {
            buf_put(b, "\\n", 2);
        } else if (c < 0x20 || c == 0x7f) {
            buf_printf(b, "\\x%02x", c);
        } else {
            buf_put(b, p, 1);
        }
    }
    buf_put(b, "\"", 1);
}

static void put_json_str(struct buf *b, const char *s)
{
    buf_put(b, "\"", 1);
    for (const char *p = s; *p; p++) {
        unsigned char c = (unsigned char)*p;
        if (c == '"' || c == '\\' || c == '/') {
            char e[2] = {'\\', (char)c};
            buf_put(b, e, 2);
        } else if (c < 0x20 || c == 0x7f) {
            buf_printf(b, "\\u%04x", c);
        } else {
            buf_put(b, p, 1);
        }
    }
    buf_put(b, "\"", 1);
}

/* Strings are masked before they are escaped, so a secret is found however
 * the output format would have escaped it; the whole line is masked again
 * after formatting. */
static void put_str(struct buf *b, const char *s)
{
    char *clean = tlog_redact(s, strlen(s), NULL);
    if (!clean) {
        b->oom = 1;
        return;
    }
    if (out_format == TLOG_JSON)
        put_json_str(b, clean);
    else
        put_logfmt_str(b, clean);
    free(clean);
}

static void put_value(struct buf *b, const struct tlog_field *f)
{
    switch (f->type) {
    case TLOGF_STR:
        if (!f->v.s)
            buf_puts(b, out_format == TLOG_JSON ? "null" : "\"\"");
        else
            put_str(b, f->v.s);
        break;
    case TLOGF_INT:
        buf_printf(b, "%lld", f->v.i);
        break;
    case TLOGF_DBL:
        buf_printf(b, "%.15g", f->v.d);
        break;
    case TLOGF_BOOL:
        buf_puts(b, f->v.i ? "true" : "false");
        break;
    case TLOGF_END:
        break;
    }
}

static void put_ts(struct buf *b)
{
    double now = clock_now();
    time_t secs = (time_t)now;
    struct tm tm;
    gmtime_r(&secs, &tm);
    char ts[40];
    size_t n = strftime(ts, sizeof ts, "%Y-%m-%dT%H:%M:%S", &tm);
    snprintf(ts + n, sizeof ts - n, ".%03dZ", (int)((now - (double)secs) * 1000.0));
    if (out_format == TLOG_JSON) {
        buf_puts(b, "{\"ts\":\"");
        buf_puts(b, ts);
        buf_puts(b, "\"");
    } else {
        buf_puts(b, "ts=");
        buf_puts(b, ts);
    }
}

void tlog_emit(enum tlog_level lvl, const char *event, const struct tlog_field *fields)
{
    if (lvl < tlog_threshold)
        return;
    struct buf b = {0};
    put_ts(&b);
    int json = out_format == TLOG_JSON;
    buf_puts(&b, json ? ",\"level\":\"" : " level=");
    buf_puts(&b, level_names[lvl]);
    buf_puts(&b, json ? "\",\"event\":" : " event=");
    struct tlog_field ev = LSTR("event", event);
    put_value(&b, &ev);
    for (const struct tlog_field *f = fields; f && f->key; f++) {
        if (json) {
            buf_put(&b, ",", 1);
            put_str(&b, f->key);
            buf_put(&b, ":", 1);
        } else {
            buf_put(&b, " ", 1);
            char *key = tlog_redact(f->key, strlen(f->key), NULL);
            buf_puts(&b, key ? key : "?");
            free(key);
            buf_put(&b, "=", 1);
        }
        put_value(&b, f);
    }
    if (json)
        buf_put(&b, "}", 1);
    if (b.oom) {
        free(b.p);
        return;
    }
    size_t n;
    char *line = tlog_redact(b.p, b.n, &n);
    OPENSSL_cleanse(b.p, b.n);
    free(b.p);
    if (!line)
        return;
    line[n++] = '\n'; /* tlog_redact leaves room for the NUL we overwrite */
    if (holding) {
        buf_put(&held, line, n);
        if (!held.oom) {
            free(line);
            return;
        }
        held.oom = 0; /* no room to wait: what waits goes first, then this */
        tlog_flush();
    }
    out(line, n);
    free(line);
}

/* ---- holding lines back ---------------------------------------------- */

static void out(const char *p, size_t n)
{
    if (out_hook) { /* one call per line */
        for (const char *end = p + n; p < end;) {
            const char *nl = memchr(p, '\n', (size_t)(end - p));
            size_t len = nl ? (size_t)(nl - p) + 1 : (size_t)(end - p);
            out_hook(p, len, out_hook_ud);
            p += len;
        }
        return;
    }
    for (size_t off = 0; off < n;) {
        ssize_t w = write(out_fd, p + off, n - off);
        if (w < 0 && errno == EINTR)
            continue; /* a signal, not a failure: a held batch is not dropped for it */
        if (w <= 0)
            break;
        off += (size_t)w;
    }
}

void tlog_hold(bool on)
{
    holding = on;
    if (!on) {
        tlog_flush();
        free(held.p);
        held = (struct buf){0};
    }
}

void tlog_flush(void)
{
    if (held.n == 0)
        return;
    struct buf b = held; /* a hook that logs starts a buffer of its own */
    held = (struct buf){0};
    out(b.p, b.n);
    if (!held.p && b.cap <= HELD_KEEP) { /* a burst's buffer is not kept */
        b.n = 0;
        held = b;
    } else {
        free(b.p);
    }
}

void tlog_setup(enum tlog_level lvl, enum tlog_format fmt, int fd)
{
    tlog_threshold = lvl;
    out_format = fmt;
    out_fd = fd;
}

void tlog_set_hook(void (*fn)(const char *, size_t, void *), void *ud)
{
    out_hook = fn;
    out_hook_ud = ud;
}

int tlog_level_parse(const char *s)
{
    for (int i = 0; i < 4; i++)
        if (strcmp(s, level_names[i]) == 0)
            return i;
    return -1;
}
