/* codec.h - the encodings tikd speaks, in one place: lowercase hex,
 * base64url (no padding), base64 keys, SHA-256, HMAC-SHA256, and HTML form /
 * query-string encoding.
 *
 * Everything here is a pure function of its input (no I/O but the file
 * hash), on OpenSSL. Output buffers are the caller's and sized in the names:
 * hex of n bytes needs 2n + 1, base64url of n bytes 4 * ceil(n / 3) + 1. The
 * form buffer may hold secrets (client_secret, tokens): codec_form_free()
 * wipes it. */
#ifndef TIKD_CODEC_H
#define TIKD_CODEC_H

#include "err.h"

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define CODEC_SHA256_LEN 32
#define CODEC_SHA256_HEX 65 /* 64 hex digits and a NUL */

/* p[0..n) as lowercase hex in out (2n + 1 bytes, NUL-terminated). */
void codec_hex(const void *p, size_t n, char *out);

/* The value of one hex digit, or -1. */
int codec_unhex(char c);

/* p[0..n) as base64url without padding (RFC 4648 §5) in out. */
void codec_b64url(const void *p, size_t n, char *out);

/* Decode standard base64 that holds exactly n bytes (with its padding) into
 * out; 0, or -1 when b64 is not that. The scratch copy is wiped. */
int codec_b64_exact(const char *b64, void *out, size_t n);

/* SHA-256 of p[0..n). */
void codec_sha256(const void *p, size_t n, unsigned char out[CODEC_SHA256_LEN]);

/* ... as 64 lowercase hex digits. */
void codec_sha256_hex(const void *p, size_t n, char out[CODEC_SHA256_HEX]);

/* HMAC-SHA256 of msg under key, as 64 lowercase hex digits. */
void codec_hmac_sha256_hex(const char *key, const void *msg, size_t n, char out[CODEC_SHA256_HEX]);

/* SHA-256 of the whole content of the regular file at path, as hex. Reads
 * 1 MiB at a time. Fails with TIKD_ENOTFOUND, TIKD_EINVAL (not a regular
 * file) or TIKD_EIO. */
int codec_sha256_file(const char *path, char out[CODEC_SHA256_HEX], struct tikd_err *e);

/* SHA-256 of what is left to read of fd (path for messages), through buf
 * (bufsize bytes). */
int codec_sha256_fd(int fd, const char *path, unsigned char *buf, size_t bufsize,
                    char out[CODEC_SHA256_HEX], struct tikd_err *e);

/* The same, calling progress(ud, bytes read so far) after each read (may
 * be NULL). */
typedef void (*codec_progress_fn)(void *ud, uint64_t done);
int codec_sha256_fd_progress(int fd, const char *path, unsigned char *buf, size_t bufsize,
                             char out[CODEC_SHA256_HEX], codec_progress_fn progress, void *ud,
                             struct tikd_err *e);

/* A growing application/x-www-form-urlencoded body (or query string). */
struct codec_form {
    char *p; /* NUL-terminated; NULL until the first add */
    size_t n, cap;
};

/* Append k=v, percent-encoding all but RFC 3986's unreserved characters.
 * 0, or -1 out of memory (the form is unchanged). */
int codec_form_add(struct codec_form *f, const char *k, const char *v);

/* Wipe and free the buffer; the form is empty again. */
void codec_form_free(struct codec_form *f);

/* The decoded value of parameter `name` in the query string q ('+' is a
 * space, %XX a byte), truncated to n - 1 bytes; false when absent. */
bool codec_query_param(const char *q, const char *name, char *out, size_t n);

#endif
