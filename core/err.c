/* err.c - the shared error record (see err.h). */
#include "err.h"

#include <stdio.h>
#include <string.h>

int tikd_fail(struct tikd_err *e, int code, const char *fmt, ...)
{
    if (e) {
        va_list ap;
        va_start(ap, fmt);
        vsnprintf(e->msg, sizeof e->msg, fmt, ap);
        va_end(ap);
        e->code = code;
        e->retry_at = 0;
    }
    return code;
}

void tikd_err_clear(struct tikd_err *e)
{
    if (e) {
        e->code = 0;
        e->msg[0] = '\0';
    }
}

const char *tikd_strerror(int code)
{
    switch (code) {
    case TIKD_OK:
        return "ok";
    case TIKD_EINVAL:
        return "invalid";
    case TIKD_ENOMEM:
        return "nomem";
    case TIKD_EIO:
        return "io";
    case TIKD_ESTORE:
        return "store";
    case TIKD_ENOTFOUND:
        return "notfound";
    case TIKD_EEXIST:
        return "exists";
    case TIKD_EFULL:
        return "full";
    case TIKD_ECORRUPT:
        return "corrupt";
    case TIKD_ESCRIPT:
        return "script";
    case TIKD_EBUDGET:
        return "budget";
    case TIKD_ENOSPACE:
        return "nospace";
    case TIKD_ENOTHELD:
        return "notheld";
    }
    return "unknown";
}
