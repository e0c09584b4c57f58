/* err.h - the error convention every core module follows.
 *
 * Functions return 0 on success or a negative TIKD_E* code, and fill a
 * caller-owned `struct tikd_err` with one human sentence when there is one to
 * give. Core code never prints and never exits: the caller decides. */
#ifndef TIKD_ERR_H
#define TIKD_ERR_H

#include <stdarg.h>

enum {
    TIKD_OK = 0,
    TIKD_EINVAL = -1,    /* bad input: argument, config value, file content */
    TIKD_ENOMEM = -2,    /* allocation failed */
    TIKD_EIO = -3,       /* the OS said no: open, read, write, mkdir */
    TIKD_ESTORE = -4,    /* LMDB failed */
    TIKD_ENOTFOUND = -5, /* the thing asked for does not exist */
    TIKD_EEXIST = -6,    /* the thing to create already exists */
    TIKD_EFULL = -7,     /* a configured ceiling was reached */
    TIKD_ECORRUPT = -8,  /* stored data fails its own checks */
    TIKD_ESCRIPT = -9,   /* a Lua chunk or call failed */
    TIKD_EBUDGET = -10,  /* a rule call ran out of CPU or memory budget */
    TIKD_ENOSPACE = -11, /* the database cannot grow: its map or the disk is full */
    TIKD_ENOTHELD = -12, /* a cluster: another node acts for this account now */
};

struct tikd_err {
    int code;
    char msg[512];
    double retry_at; /* when trying again can help (a hold that ends), or 0 */
};

/* Record `code` and a printf-style message in `e` (which may be NULL);
 * returns `code` so callers can `return tikd_fail(e, TIKD_EINVAL, ...)`. */
int tikd_fail(struct tikd_err *e, int code, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

/* Clear `e` (which may be NULL). */
void tikd_err_clear(struct tikd_err *e);

/* A short name for a TIKD_E* code, for logs ("invalid", "store", ...). */
const char *tikd_strerror(int code);

#endif
