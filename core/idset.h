/* idset.h - a set of non-zero 64-bit ids: open addressing, linear probing,
 * deletion by backward shift (no tombstones), so a lookup costs a probe or
 * two however many ids come and go. The pipeline keeps the jobs it is
 * working and the jobs waiting for a lease in these: its due walk asks of
 * every due job whether it is one of them. */
#ifndef TIKD_IDSET_H
#define TIKD_IDSET_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

struct idset {
    uint64_t *t; /* 0: an empty slot */
    size_t n, cap;
};

bool idset_has(const struct idset *s, uint64_t id);
/* false when out of memory (the set is unchanged); id != 0 */
bool idset_add(struct idset *s, uint64_t id);
void idset_del(struct idset *s, uint64_t id);
void idset_clear(struct idset *s);
void idset_free(struct idset *s);

#endif
