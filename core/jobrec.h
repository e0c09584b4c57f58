/* jobrec.h - the stored form of a job (core/job's records).
 *
 * A job is read at every step of its post (a 40 KB struct of mostly empty
 * text fields), so its record is a compact binary one, read and written by
 * one field table: the protocol-buffers wire format (a varint key of field
 * number and wire type, then a varint, 8 fixed bytes or a length-prefixed
 * string), after a two-byte mark. Fields at their zero value are left out;
 * unknown fields are skipped, so a newer tikd's records still read. Field
 * numbers are persisted: never reuse one. Records an older tikd wrote as JSON
 * read as before, and are written back in this form at their next change. */
#ifndef TIKD_JOBREC_H
#define TIKD_JOBREC_H

#include "job.h"

#include <stddef.h>

/* The record of j in a new malloc'd buffer (*out, *n): 0 or TIKD_ENOMEM. */
int jobrec_encode(const struct job *j, unsigned char **out, size_t *n);

/* Read a record (binary, or an older tikd's JSON) into j: 0, or
 * TIKD_ECORRUPT when it is neither (j is then unspecified). A text field of
 * 256 bytes or more (the caption, the description, the images, the media
 * path...) ends at its NUL; the bytes after it are unspecified, not zeroed. */
int jobrec_decode(const void *p, size_t n, struct job *j);

#endif
