/* idset.c - a set of non-zero ids (see idset.h). */
#include "idset.h"

#include <stdlib.h>
#include <string.h>

static size_t home(uint64_t id, size_t cap)
{
    return (size_t)(id * 0x9E3779B97F4A7C15ull >> 32) & (cap - 1);
}

/* the slot holding id, or the empty one where it would go */
static size_t slot(const struct idset *s, uint64_t id)
{
    size_t i = home(id, s->cap);
    while (s->t[i] && s->t[i] != id)
        i = (i + 1) & (s->cap - 1);
    return i;
}

bool idset_has(const struct idset *s, uint64_t id)
{
    return s->n && s->t[slot(s, id)] == id;
}

bool idset_add(struct idset *s, uint64_t id)
{
    if ((s->n + 1) * 2 > s->cap) { /* at most half full */
        size_t cap = s->cap ? s->cap * 2 : 64;
        uint64_t *t = calloc(cap, sizeof *t);
        if (!t)
            return false;
        struct idset grown = {t, s->n, cap};
        for (size_t i = 0; i < s->cap; i++)
            if (s->t[i])
                t[slot(&grown, s->t[i])] = s->t[i];
        free(s->t);
        *s = grown;
    }
    size_t i = slot(s, id);
    if (!s->t[i]) {
        s->t[i] = id;
        s->n++;
    }
    return true;
}

void idset_del(struct idset *s, uint64_t id)
{
    if (!s->n)
        return;
    size_t i = slot(s, id);
    if (s->t[i] != id)
        return;
    /* move back each id of the run after i that may live at i: a lookup
     * never meets an empty slot before its id */
    size_t mask = s->cap - 1;
    for (size_t j = (i + 1) & mask; s->t[j]; j = (j + 1) & mask) {
        size_t h = home(s->t[j], s->cap);
        if (((j - h) & mask) >= ((j - i) & mask)) { /* i lies between h and j */
            s->t[i] = s->t[j];
            i = j;
        }
    }
    s->t[i] = 0;
    s->n--;
}

void idset_clear(struct idset *s)
{
    if (s->n)
        memset(s->t, 0, s->cap * sizeof *s->t);
    s->n = 0;
}

void idset_free(struct idset *s)
{
    free(s->t);
    *s = (struct idset){0};
}
