/* dbfill.c - fill a tikd database to its map's ceiling, as a full disk
 * would leave it, for tests of what the daemon does when every commit
 * fails. Writes filler records to the meta table until the store refuses
 * (TIKD_ENOSPACE), 16 KiB ones first, then ever smaller ones down to 16
 * bytes, so not even a small record fits anywhere.
 *   dbfill DATA_DIR MAP_MAX_BYTES
 * Prints how many records it wrote. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "../../core/store.h"

static char filler[16384];

struct fill {
    unsigned n;
    size_t size;
};

static int put_txn(struct store_txn *t, void *ctx)
{
    struct fill *f = ctx;
    char key[32];
    int n = snprintf(key, sizeof key, "dbfill.%u", f->n);
    return store_put(t, STORE_DB_META, key, (size_t)n, filler, f->size);
}

int main(int argc, char **argv)
{
    if (argc != 3) {
        fprintf(stderr, "usage: dbfill DATA_DIR MAP_MAX_BYTES\n");
        return 2;
    }
    size_t max = strtoull(argv[2], NULL, 10);
    memset(filler, 'f', sizeof filler);
    struct store_opts o = {argv[1], 1 << 20, max, false};
    struct store *s;
    struct tikd_err e = {0};
    if (store_open(&s, &o, &e) != 0) {
        fprintf(stderr, "dbfill: %s\n", e.msg);
        return 1;
    }
    struct fill f = {0, sizeof filler};
    for (; f.size >= 16; f.size /= 4) {
        int rc;
        while ((rc = store_write(s, put_txn, &f, &e)) == 0)
            f.n++;
        if (rc != TIKD_ENOSPACE) {
            fprintf(stderr, "dbfill: stopped by %s: %s\n", tikd_strerror(rc), e.msg);
            store_close(s);
            return 1;
        }
    }
    unsigned wrote = f.n;
    store_close(s);
    printf("%u\n", wrote);
    return 0;
}
