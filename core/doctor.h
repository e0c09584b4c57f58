/* doctor.h - the compliance check: what an operator (and TikTok's audit)
 * must be able to rely on, checked from outside the code that should make
 * it true.
 *
 *   accounts.reauth    no account needs reconnecting (needs_reauth fails,
 *                      revoked warns)
 *   tokens.expiry      no refresh token ends within a week (ended: fails)
 *   audit.chain        the audit log's hash chain is intact
 *   secrets.plaintext  no access or refresh token and not the client
 *                      secret, in plain text, in any file of the data
 *                      directory or in the log files given (a file that
 *                      cannot be read is said, not passed over)
 *   files.modes        the data directory 0700, its files 0600, the vault key
 *                      file 0600 and outside the data directory, all owned by
 *                      this user
 *   tiktok.redirect_uri, tiktok.webhook_url, media.public_url
 *                      HTTPS (plain HTTP only on loopback, for testing)
 *   admin.listen       loopback, or a reason to trust the network
 *   tiktok.audited     what an unaudited app may do, and limits that agree
 *
 * The secret scan reads every byte of the files once, whatever the number
 * of secrets (Rabin-Karp on each secret's first 16 bytes). Plaintexts are
 * held only while the scan runs and wiped after; findings name the file and
 * the kind of secret, never the secret. */
#ifndef TIKD_DOCTOR_H
#define TIKD_DOCTOR_H

#include "config.h"
#include "err.h"
#include "store.h"

#include <stdbool.h>
#include <stddef.h>

struct vault;

enum doc_level { DOC_OK, DOC_WARN, DOC_FAIL };

struct doc_finding {
    char check[32];
    enum doc_level level;
    char detail[600];
};

struct doc_report {
    struct doc_finding *v;
    size_t n, cap;
    int fails, warns;
    double at;
};

struct doc_input {
    struct store *store;
    struct vault *vault; /* NULL: the secret scan cannot open tokens (a finding says so) */
    const struct tikd_config *cfg;
    const char *const *logs; /* log files to scan too */
    size_t nlogs;
    double now;
};

const char *doctor_level_name(enum doc_level l);

/* Run every check (synchronously: the daemon runs `tikd doctor` as a child
 * process). 0 and *out (free with doctor_report_free), or an error when the
 * checks could not run at all. */
int doctor_run(const struct doc_input *in, struct doc_report *out, struct tikd_err *e);
void doctor_report_free(struct doc_report *r);

/* The report on the record: one audit record "compliance.check" (by
 * actor) with the counts and the names of the checks that did not pass. */
int doctor_record(struct store *s, const struct doc_report *r, const char *actor,
                  struct tikd_err *e);

#endif
