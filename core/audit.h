/* audit.h - an append-only, hash-chained record of what tikd did and who
 * decided it.
 *
 * Each record stores the SHA-256 of the record before it, and the meta
 * database stores the hash of the last one (the head), both written in the
 * same transaction as the state change they describe. An edited, removed or
 * reordered record, or a cut-off tail, breaks the chain and audit_verify()
 * names the first record where it breaks. Records never hold a secret:
 * details pass through the log's redaction registry before they are stored. */
#ifndef TIKD_AUDIT_H
#define TIKD_AUDIT_H

#include "err.h"
#include "store.h"

#include <stdint.h>

/* Append one record inside the caller's write transaction. `actor` is who
 * decided (for example "operator", "rule:agency.lua@gen3", "tikd"), `event`
 * a dotted name, `detail` free text in key=value form (may be NULL). */
int audit_append(struct store_txn *t, const char *actor, const char *event, const char *detail);

/* One decoded record, valid during an audit_foreach() callback. */
struct audit_rec {
    uint64_t seq;
    double time;
    const char *actor, *event, *detail;
};

/* Call fn for each record from seq `from` on, in order, until it returns
 * non-zero; the walk starts at `from` (no record before it is read). */
int audit_foreach(struct store_txn *t, uint64_t from,
                  int (*fn)(const struct audit_rec *r, void *ctx), void *ctx);

/* The seq of the last record (0: none yet). */
int audit_last(struct store_txn *t, uint64_t *seq);

/* Walk the whole chain. Returns 0 and the record count, or TIKD_ECORRUPT
 * with a message that names the first broken record. */
int audit_verify(struct store *s, uint64_t *count, struct tikd_err *e);

#endif
