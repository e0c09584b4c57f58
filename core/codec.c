/* codec.c - hex, base64, SHA-256, HMAC and form encoding (see codec.h).
 *
 * Thin over OpenSSL where it has the primitive; the encoders are a few lines
 * each and write into the caller's buffers. */
#include "codec.h"
#include "fileio.h"

#include <errno.h>
#include <openssl/crypto.h>
#include <openssl/evp.h>
#include <openssl/hmac.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

void codec_hex(const void *p, size_t n, char *out)
{
    static const char digits[] = "0123456789abcdef";
    const unsigned char *b = p;
    for (size_t i = 0; i < n; i++) {
        out[2 * i] = digits[b[i] >> 4];
        out[2 * i + 1] = digits[b[i] & 15];
    }
    out[2 * n] = '\0';
}

int codec_unhex(char c)
{
    return c >= '0' && c <= '9'   ? c - '0'
           : c >= 'a' && c <= 'f' ? c - 'a' + 10
           : c >= 'A' && c <= 'F' ? c - 'A' + 10
                                  : -1;
}

void codec_b64url(const void *p, size_t n, char *out)
{
    static const char a[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";
    const unsigned char *b = p;
    size_t o = 0;
    for (size_t i = 0; i < n; i += 3) {
        unsigned v = (unsigned)b[i] << 16 | (i + 1 < n ? (unsigned)b[i + 1] << 8 : 0) |
                     (i + 2 < n ? b[i + 2] : 0);
        out[o++] = a[v >> 18 & 63];
        out[o++] = a[v >> 12 & 63];
        if (i + 1 < n)
            out[o++] = a[v >> 6 & 63];
        if (i + 2 < n)
            out[o++] = a[v & 63];
    }
    out[o] = '\0';
}

int codec_b64_exact(const char *b64, void *out, size_t n)
{
    size_t l = strlen(b64), want = (n + 2) / 3 * 4, pad = (3 - n % 3) % 3;
    if (n == 0 || n > 96 || l != want)
        return -1;
    for (size_t i = 0; i < pad; i++)
        if (b64[l - 1 - i] != '=')
            return -1;
    unsigned char buf[128];
    int got = EVP_DecodeBlock(buf, (const unsigned char *)b64, (int)l);
    int ok = got >= 0 && (size_t)got == n + pad; /* padding decodes to zero bytes */
    if (ok)
        memcpy(out, buf, n);
    OPENSSL_cleanse(buf, sizeof buf);
    return ok ? 0 : -1;
}

void codec_sha256(const void *p, size_t n, unsigned char out[CODEC_SHA256_LEN])
{
    EVP_Digest(p, n, out, NULL, EVP_sha256(), NULL);
}

void codec_sha256_hex(const void *p, size_t n, char out[CODEC_SHA256_HEX])
{
    unsigned char d[CODEC_SHA256_LEN];
    codec_sha256(p, n, d);
    codec_hex(d, sizeof d, out);
}

void codec_hmac_sha256_hex(const char *key, const void *msg, size_t n, char out[CODEC_SHA256_HEX])
{
    unsigned char mac[CODEC_SHA256_LEN];
    unsigned int ml = 0;
    HMAC(EVP_sha256(), key, (int)strlen(key), msg, n, mac, &ml);
    codec_hex(mac, sizeof mac, out);
    OPENSSL_cleanse(mac, sizeof mac);
}

int codec_sha256_fd(int fd, const char *path, unsigned char *buf, size_t bufsize,
                    char out[CODEC_SHA256_HEX], struct tikd_err *e)
{
    return codec_sha256_fd_progress(fd, path, buf, bufsize, out, NULL, NULL, e);
}

int codec_sha256_fd_progress(int fd, const char *path, unsigned char *buf, size_t bufsize,
                             char out[CODEC_SHA256_HEX], codec_progress_fn progress, void *ud,
                             struct tikd_err *e)
{
    uint64_t done = 0;
    EVP_MD_CTX *md = EVP_MD_CTX_new();
    int rc = 0;
    if (!md || EVP_DigestInit_ex(md, EVP_sha256(), NULL) != 1) {
        rc = tikd_fail(e, TIKD_ENOMEM, "out of memory hashing %s", path);
        goto out;
    }
    for (;;) {
        ssize_t r = read(fd, buf, bufsize);
        if (r < 0 && errno == EINTR)
            continue;
        if (r < 0) {
            rc = tikd_fail(e, TIKD_EIO, "%s: cannot read: %s", path, strerror(errno));
            goto out;
        }
        if (r == 0)
            break;
        EVP_DigestUpdate(md, buf, (size_t)r);
        done += (uint64_t)r;
        if (progress)
            progress(ud, done);
    }
    unsigned char d[CODEC_SHA256_LEN];
    unsigned int dl = 0;
    if (EVP_DigestFinal_ex(md, d, &dl) != 1 || dl != sizeof d) {
        rc = tikd_fail(e, TIKD_EIO, "SHA-256 of %s failed", path);
        goto out;
    }
    codec_hex(d, sizeof d, out);
out:
    EVP_MD_CTX_free(md);
    return rc;
}

int codec_sha256_file(const char *path, char out[CODEC_SHA256_HEX], struct tikd_err *e)
{
    enum { BUF = 1 << 20 };
    struct stat st;
    int fd = fileio_open_read(path, &st, e); /* a FIFO: refused, never waited on */
    if (fd < 0)
        return fd;
    unsigned char *buf = NULL;
    int rc = !S_ISREG(st.st_mode)   ? tikd_fail(e, TIKD_EINVAL, "%s is not a regular file", path)
             : !(buf = malloc(BUF)) ? tikd_fail(e, TIKD_ENOMEM, "out of memory hashing %s", path)
                                    : codec_sha256_fd(fd, path, buf, BUF, out, e);
    free(buf);
    close(fd);
    return rc;
}

int codec_form_add(struct codec_form *f, const char *k, const char *v)
{
    size_t need = f->n + strlen(k) + strlen(v) * 3 + 3;
    if (need > f->cap) {
        size_t nc = need * 2;
        char *g = malloc(nc);
        if (!g)
            return -1;
        if (f->p) {
            memcpy(g, f->p, f->n);
            OPENSSL_cleanse(f->p, f->cap);
            free(f->p);
        }
        f->p = g;
        f->cap = nc;
    }
    if (f->n)
        f->p[f->n++] = '&';
    for (const char *s = k; *s; s++)
        f->p[f->n++] = *s;
    f->p[f->n++] = '=';
    static const char digits[] = "0123456789ABCDEF";
    for (const unsigned char *s = (const unsigned char *)v; *s; s++) {
        if ((*s >= 'A' && *s <= 'Z') || (*s >= 'a' && *s <= 'z') || (*s >= '0' && *s <= '9') ||
            *s == '-' || *s == '.' || *s == '_' || *s == '~') {
            f->p[f->n++] = (char)*s;
        } else {
            f->p[f->n++] = '%';
            f->p[f->n++] = digits[*s >> 4];
            f->p[f->n++] = digits[*s & 15];
        }
    }
    f->p[f->n] = '\0';
    return 0;
}

void codec_form_free(struct codec_form *f)
{
    if (f->p)
        OPENSSL_cleanse(f->p, f->cap);
    free(f->p);
    f->p = NULL;
    f->n = f->cap = 0;
}

bool codec_query_param(const char *q, const char *name, char *out, size_t n)
{
    size_t nl = strlen(name);
    for (const char *p = q; p && *p;) {
        const char *end = strchr(p, '&');
        size_t l = end ? (size_t)(end - p) : strlen(p);
        if (l > nl && strncmp(p, name, nl) == 0 && p[nl] == '=') {
            size_t o = 0;
            for (const char *s = p + nl + 1; s < p + l && o + 1 < n; s++) {
                if (*s == '+') {
                    out[o++] = ' ';
                } else if (*s == '%' && s + 2 < p + l && codec_unhex(s[1]) >= 0 &&
                           codec_unhex(s[2]) >= 0) {
                    out[o++] = (char)(codec_unhex(s[1]) << 4 | codec_unhex(s[2]));
                    s += 2;
                } else {
                    out[o++] = *s;
                }
            }
            out[o] = '\0';
            return true;
        }
        p = end ? end + 1 : NULL;
    }
    return false;
}
