/* embedded.h - files compiled into tikd (tools/embed.sh): the dashboard's
 * HTML, CSS and JavaScript, served on the admin listener. */
#ifndef TIKD_EMBEDDED_H
#define TIKD_EMBEDDED_H

#include <stddef.h>

struct embedded {
    const char *path; /* "/", "/assets/app.js" */
    const char *type; /* its Content-Type */
    const char *data; /* NUL-terminated text */
    size_t len;
};

/* Ends with a zeroed entry. */
extern const struct embedded embedded_files[];

#endif
