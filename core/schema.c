/* schema.c - the schema steps (see schema.h). A step is a table entry: the
 * version it brings and the function, from the module that owns the data,
 * that fills what is new from what is there. */
#include "schema.h"
#include "account.h"
#include "job.h"
#include "ledger.h"
#include "webhook.h"

struct step {
    unsigned to;
    int (*run)(struct store_txn *t);
    const char *what;
};

static const struct step steps[] = {
    {2, job_index_build, "jobs indexed by account, video content and publish_id"},
    {2, ledger_index_build, "the media ledger's records in the order they expire"},
    {2, webhook_seen_migrate,
     "webhook de-duplication keys in a database of their own, in the "
     "order they expire"},
    /* 3 also makes job records binary (core/jobrec); JSON ones still read
     * and are rewritten at their next change, so none is converted here */
    {3, job_counts_build, "jobs counted by state"},
    {3, job_open_index_build, "the jobs of each account that are not final, indexed"},
    {3, account_index_build, "the active accounts' tokens indexed by when they expire"},
};

int schema_upgrade(struct store_txn *t, unsigned from, unsigned to)
{
    for (size_t i = 0; i < sizeof steps / sizeof steps[0]; i++) {
        if (steps[i].to <= from || steps[i].to > to)
            continue;
        int rc = steps[i].run(t);
        if (rc != 0)
            return rc;
    }
    return 0;
}
