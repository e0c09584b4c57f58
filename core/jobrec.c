/* jobrec.c - a job's stored form (see jobrec.h).
 *
 * One table names every stored field: its number, its type and where it
 * lives in struct job. Encoding walks it writing what is not zero; decoding
 * clears the struct and walks the record, finding each field by number. */
#include "jobrec.h"

#include <jansson.h>
#include <pthread.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* The first two bytes of a binary record: never '{', so an older tikd's
 * JSON record is told apart by its first byte. */
static const unsigned char MARK[2] = {0xa7, 0x01};

enum wire { W_VARINT = 0, W_FIXED64 = 1, W_BYTES = 2 };
enum ftype { F_STR, F_U64, F_I64, F_INT, F_U32, F_DBL, F_BOOL };

struct field {
    uint16_t no;
    uint8_t type;
    uint8_t probe; /* written only for a probed video (probe.probed) */
    uint32_t size; /* F_STR: the char array's size */
    size_t off;
};

#define MEMBER_SIZE(m) sizeof(((struct job *)0)->m)
#define STR(no, m)                                                                                 \
    {                                                                                              \
        no, F_STR, 0, MEMBER_SIZE(m), offsetof(struct job, m)                                      \
    }
#define NUM(no, t, m)                                                                              \
    {                                                                                              \
        no, t, 0, 0, offsetof(struct job, m)                                                       \
    }
#define PSTR(no, m)                                                                                \
    {                                                                                              \
        no, F_STR, 1, MEMBER_SIZE(probe.m), offsetof(struct job, probe.m)                          \
    }
#define PNUM(no, t, m)                                                                             \
    {                                                                                              \
        no, t, 1, 0, offsetof(struct job, probe.m)                                                 \
    }

/* Field numbers are persisted: append, never renumber or reuse; in number
 * order (field_no() searches the table). */
static const struct field fields[] = {
    NUM(1, F_U64, id),
    STR(2, account),
    NUM(3, F_INT, mode),
    NUM(4, F_INT, kind),
    STR(5, media),
    STR(6, media_hash),
    STR(7, images),
    NUM(8, F_INT, cover_index),
    STR(9, description),
    STR(10, mime),
    STR(11, caption),
    STR(12, privacy),
    NUM(13, F_BOOL, opt.disable_comment),
    NUM(14, F_BOOL, opt.disable_duet),
    NUM(15, F_BOOL, opt.disable_stitch),
    NUM(16, F_BOOL, opt.brand_content),
    NUM(17, F_BOOL, opt.brand_organic),
    NUM(18, F_BOOL, opt.is_aigc),
    NUM(19, F_INT, opt.cover_ms),
    NUM(20, F_BOOL, opt.auto_add_music),
    STR(21, chosen_by),
    STR(22, tenant),
    STR(23, libs),
    NUM(24, F_INT, state),
    STR(25, reason),
    NUM(26, F_DBL, due_at),
    NUM(27, F_DBL, created_at),
    NUM(28, F_DBL, updated_at),
    NUM(29, F_DBL, processing_deadline),
    NUM(30, F_DBL, planned_at),
    NUM(31, F_INT, attempts),
    NUM(32, F_DBL, init_sent_at),
    NUM(33, F_DBL, slot_at),
    NUM(34, F_DBL, spent_at),
    NUM(35, F_DBL, booked_slot),
    STR(36, publish_id),
    STR(37, upload_url),
    NUM(38, F_DBL, upload_url_at),
    NUM(39, F_U64, plan.size),
    NUM(40, F_U64, plan.chunk_size),
    NUM(41, F_U32, plan.count),
    NUM(42, F_U32, chunks_done),
    STR(43, post_ids),
    NUM(44, F_DBL, watch_until),
    NUM(45, F_INT, orphans),
    STR(46, fail_reason),
    STR(47, log_id),
    STR(48, origin),
    NUM(49, F_DBL, imported_at),
    STR(50, key_scope),
    STR(51, key),
    PNUM(60, F_BOOL, probed),
    PSTR(61, container),
    PNUM(62, F_U64, size),
    PNUM(63, F_U64, dev),
    PNUM(64, F_U64, ino),
    PNUM(65, F_I64, mtime_ns),
    PNUM(66, F_I64, ctime_ns),
    PNUM(67, F_BOOL, has_video),
    PNUM(68, F_BOOL, has_audio),
    PSTR(69, codec),
    PSTR(70, profile),
    PNUM(71, F_INT, width),
    PNUM(72, F_INT, height),
    PNUM(73, F_INT, display_width),
    PNUM(74, F_INT, display_height),
    PNUM(75, F_INT, rotation),
    PNUM(76, F_DBL, fps),
    PNUM(77, F_DBL, duration),
    PNUM(78, F_I64, bit_rate),
    PNUM(79, F_I64, video_bit_rate),
    PSTR(80, audio_codec),
};
#define NFIELDS (sizeof fields / sizeof fields[0])

/* enums are stored as ints: the struct must hold them as such */
_Static_assert(sizeof(enum job_state) == sizeof(int) && sizeof(enum job_mode) == sizeof(int) &&
                   sizeof(enum job_kind) == sizeof(int),
               "job enums are stored as ints");

static enum wire wire_of(enum ftype t)
{
    return t == F_STR ? W_BYTES : t == F_DBL ? W_FIXED64 : W_VARINT;
}

/* ---- encoding ------------------------------------------------------------------ */

struct out {
    unsigned char *p;
    size_t n;
};

/* Writes are counted when p is NULL (the sizing pass). */
static void put_byte(struct out *o, unsigned char b)
{
    if (o->p)
        o->p[o->n] = b;
    o->n++;
}

static void put_varint(struct out *o, uint64_t v)
{
    while (v >= 0x80) {
        put_byte(o, (unsigned char)(v | 0x80));
        v >>= 7;
    }
    put_byte(o, (unsigned char)v);
}

static uint64_t zigzag(int64_t v)
{
    return ((uint64_t)v << 1) ^ (uint64_t)(v >> 63);
}

/* The field's value as a varint or fixed64 payload; 0 when it is zero. */
static uint64_t value_of(const struct field *f, const unsigned char *base)
{
    const void *at = base + f->off;
    switch (f->type) {
    case F_U64: {
        uint64_t v;
        memcpy(&v, at, sizeof v);
        return v;
    }
    case F_I64: {
        int64_t v;
        memcpy(&v, at, sizeof v);
        return zigzag(v);
    }
    case F_INT: {
        int v;
        memcpy(&v, at, sizeof v);
        return zigzag(v);
    }
    case F_U32: {
        uint32_t v;
        memcpy(&v, at, sizeof v);
        return v;
    }
    case F_BOOL: {
        bool v;
        memcpy(&v, at, sizeof v);
        return v ? 1 : 0;
    }
    case F_DBL: { /* its bits: -0.0 is not left out */
        uint64_t v;
        memcpy(&v, at, sizeof v);
        return v;
    }
    }
    return 0;
}

static void encode_into(struct out *o, const struct job *j)
{
    const unsigned char *base = (const unsigned char *)j;
    put_byte(o, MARK[0]);
    put_byte(o, MARK[1]);
    for (size_t i = 0; i < NFIELDS; i++) {
        const struct field *f = &fields[i];
        if (f->probe && !j->probe.probed)
            continue;
        uint64_t key = (uint64_t)f->no << 3 | wire_of(f->type);
        if (f->type == F_STR) {
            const char *s = (const char *)base + f->off;
            size_t len = strnlen(s, f->size - 1);
            if (!len)
                continue;
            put_varint(o, key);
            put_varint(o, len);
            if (o->p)
                memcpy(o->p + o->n, s, len);
            o->n += len;
            continue;
        }
        uint64_t v = value_of(f, base);
        if (!v)
            continue;
        put_varint(o, key);
        if (f->type == F_DBL)
            for (int b = 0; b < 8; b++) /* little-endian on every host */
                put_byte(o, (unsigned char)(v >> (8 * b)));
        else
            put_varint(o, v);
    }
}

int jobrec_encode(const struct job *j, unsigned char **out, size_t *n)
{
    struct out o = {NULL, 0};
    encode_into(&o, j);
    size_t need = o.n;
    o = (struct out){malloc(need), 0};
    if (!o.p)
        return TIKD_ENOMEM;
    encode_into(&o, j);
    *out = o.p;
    *n = o.n;
    return 0;
}

/* ---- decoding ------------------------------------------------------------------ */

struct in {
    const unsigned char *p, *end;
};

static int get_varint(struct in *in, uint64_t *v)
{
    uint64_t r = 0;
    for (int shift = 0; shift < 64; shift += 7) {
        if (in->p == in->end)
            return -1;
        unsigned char b = *in->p++;
        r |= (uint64_t)(b & 0x7f) << shift;
        if (!(b & 0x80)) {
            *v = r;
            return 0;
        }
    }
    return -1; /* more than 10 bytes */
}

static const struct field *field_no(uint64_t no)
{
    /* the table is in number order: a binary search */
    size_t lo = 0, hi = NFIELDS;
    while (lo < hi) {
        size_t mid = (lo + hi) / 2;
        if (fields[mid].no == no)
            return &fields[mid];
        if (fields[mid].no < no)
            lo = mid + 1;
        else
            hi = mid;
    }
    return NULL;
}

static void set_value(const struct field *f, unsigned char *base, uint64_t v)
{
    void *at = base + f->off;
    switch (f->type) {
    case F_U64:
        memcpy(at, &v, sizeof v);
        break;
    case F_I64: {
        int64_t s = (int64_t)(v >> 1) ^ -(int64_t)(v & 1);
        memcpy(at, &s, sizeof s);
        break;
    }
    case F_INT: {
        int64_t s = (int64_t)(v >> 1) ^ -(int64_t)(v & 1);
        int i = s < INT32_MIN || s > INT32_MAX ? 0 : (int)s;
        memcpy(at, &i, sizeof i);
        break;
    }
    case F_U32: {
        uint32_t u = v > UINT32_MAX ? 0 : (uint32_t)v;
        memcpy(at, &u, sizeof u);
        break;
    }
    case F_BOOL: {
        bool b = v != 0;
        memcpy(at, &b, sizeof b);
        break;
    }
    case F_DBL: {
        double d;
        memcpy(&d, &v, sizeof d);
        memcpy(at, &d, sizeof d);
        break;
    }
    default:
        break;
    }
}

/* Text fields this large are not zeroed whole when a record is read: their
 * text ends at its NUL, what follows is unspecified and never read (the
 * encoder and every reader stop at the NUL). They are 39 KB of a 41 KB
 * struct, mostly empty, and zeroing them was a decode's largest cost: a job
 * is read at every step of its post. */
#define BIG_TEXT 256

static struct span {
    size_t off, len;
} zero_spans[NFIELDS + 1]; /* struct job but its big text fields, in offset order */
static size_t nzero;
static pthread_once_t spans_once = PTHREAD_ONCE_INIT;

static bool big_text(const struct field *f)
{
    return f->type == F_STR && f->size >= BIG_TEXT;
}

static void spans_init(void)
{
    size_t at = 0;
    for (;;) { /* the next big text field at or after `at` */
        const struct field *next = NULL;
        for (size_t i = 0; i < NFIELDS; i++)
            if (big_text(&fields[i]) && fields[i].off >= at && (!next || fields[i].off < next->off))
                next = &fields[i];
        if (!next)
            break;
        zero_spans[nzero++] = (struct span){at, next->off - at};
        at = next->off + next->size;
    }
    zero_spans[nzero++] = (struct span){at, sizeof(struct job) - at};
}

/* j as a record with no fields reads: every number zero, every text empty */
static void clear(struct job *j)
{
    unsigned char *base = (unsigned char *)j;
    pthread_once(&spans_once, spans_init);
    for (size_t i = 0; i < nzero; i++)
        memset(base + zero_spans[i].off, 0, zero_spans[i].len);
    for (size_t i = 0; i < NFIELDS; i++)
        if (big_text(&fields[i]))
            base[fields[i].off] = '\0';
}

static int decode_binary(const unsigned char *p, size_t n, struct job *j)
{
    unsigned char *base = (unsigned char *)j;
    struct in in = {p + sizeof MARK, p + n};
    clear(j);
    while (in.p < in.end) {
        uint64_t key, v = 0;
        if (get_varint(&in, &key) != 0)
            return TIKD_ECORRUPT;
        enum wire w = (enum wire)(key & 7);
        const struct field *f = field_no(key >> 3);
        if (f && wire_of(f->type) != w)
            f = NULL; /* a field whose type changed since: skipped */
        if (w == W_VARINT) {
            if (get_varint(&in, &v) != 0)
                return TIKD_ECORRUPT;
        } else if (w == W_FIXED64) {
            if (in.end - in.p < 8)
                return TIKD_ECORRUPT;
            for (int b = 0; b < 8; b++)
                v |= (uint64_t)in.p[b] << (8 * b);
            in.p += 8;
        } else if (w == W_BYTES) {
            uint64_t len;
            if (get_varint(&in, &len) != 0 || len > (uint64_t)(in.end - in.p))
                return TIKD_ECORRUPT;
            if (f) { /* text ends at its first NUL, as the encoder reads it */
                size_t keep =
                    strnlen((const char *)in.p, len < f->size ? (size_t)len : f->size - 1);
                memcpy(base + f->off, in.p, keep);
                if (big_text(f)) /* a repeated field's tail: big ones end at the NUL */
                    base[f->off + keep] = '\0';
                else
                    memset(base + f->off + keep, 0, f->size - keep);
            }
            in.p += len;
            continue;
        } else {
            return TIKD_ECORRUPT; /* a wire type this format never writes */
        }
        if (f)
            set_value(f, base, v);
    }
    if (j->mode != JOB_DIRECT && j->mode != JOB_DRAFT)
        j->mode = JOB_DIRECT;
    if (j->kind != JOB_VIDEO && j->kind != JOB_PHOTO)
        j->kind = JOB_VIDEO;
    if ((unsigned)j->state > JOB_UNSURE)
        j->state = JOB_FAILED;
    if (j->probe.probed)
        j->probe.mime = media_mime_of(j->probe.container);
    else
        memset(&j->probe, 0, sizeof j->probe); /* only a probed video has these */
    return j->id ? 0 : TIKD_ECORRUPT;
}

/* ---- an older tikd's JSON records ---------------------------------------------- */

static void sget(json_t *o, const char *k, char *out, size_t n)
{
    const char *v = json_string_value(json_object_get(o, k));
    snprintf(out, n, "%s", v ? v : "");
}

static void decode_probe(json_t *o, struct media_info *m)
{
    memset(m, 0, sizeof *m);
    if (!json_is_object(o))
        return;
    m->probed = true;
    sget(o, "container", m->container, sizeof m->container);
    m->mime = media_mime_of(m->container);
    m->size = (uint64_t)json_integer_value(json_object_get(o, "size"));
    m->dev = (uint64_t)json_integer_value(json_object_get(o, "dev"));
    m->ino = (uint64_t)json_integer_value(json_object_get(o, "ino"));
    m->mtime_ns = json_integer_value(json_object_get(o, "mtime_ns"));
    m->ctime_ns = json_integer_value(json_object_get(o, "ctime_ns"));
    m->has_video = json_is_true(json_object_get(o, "video"));
    m->has_audio = json_is_true(json_object_get(o, "audio"));
    sget(o, "codec", m->codec, sizeof m->codec);
    sget(o, "profile", m->profile, sizeof m->profile);
    sget(o, "audio_codec", m->audio_codec, sizeof m->audio_codec);
    m->width = (int)json_integer_value(json_object_get(o, "width"));
    m->height = (int)json_integer_value(json_object_get(o, "height"));
    m->display_width = (int)json_integer_value(json_object_get(o, "display_width"));
    m->display_height = (int)json_integer_value(json_object_get(o, "display_height"));
    m->rotation = (int)json_integer_value(json_object_get(o, "rotation"));
    m->fps = json_number_value(json_object_get(o, "fps"));
    m->duration = json_number_value(json_object_get(o, "duration"));
    m->bit_rate = json_integer_value(json_object_get(o, "bit_rate"));
    m->video_bit_rate = json_integer_value(json_object_get(o, "video_bit_rate"));
}

static int decode_json(const void *p, size_t n, struct job *j)
{
    json_t *o = json_loadb(p, n, 0, NULL);
    if (!json_is_object(o)) {
        json_decref(o);
        return TIKD_ECORRUPT;
    }
    memset(j, 0, sizeof *j);
    j->id = (uint64_t)json_integer_value(json_object_get(o, "id"));
    sget(o, "account", j->account, sizeof j->account);
    char mode[16], state[32];
    sget(o, "mode", mode, sizeof mode);
    j->mode = strcmp(mode, "draft") == 0 ? JOB_DRAFT : JOB_DIRECT;
    char kind[16];
    sget(o, "kind", kind, sizeof kind);
    j->kind = strcmp(kind, "photo") == 0 ? JOB_PHOTO : JOB_VIDEO;
    sget(o, "media", j->media, sizeof j->media);
    sget(o, "images", j->images, sizeof j->images);
    sget(o, "media_hash", j->media_hash, sizeof j->media_hash);
    j->cover_index = (int)json_integer_value(json_object_get(o, "cover_index"));
    sget(o, "description", j->description, sizeof j->description);
    j->init_sent_at = json_number_value(json_object_get(o, "init_sent_at"));
    j->slot_at = json_number_value(json_object_get(o, "slot_at"));
    j->spent_at = json_number_value(json_object_get(o, "spent_at"));
    j->booked_slot = json_number_value(json_object_get(o, "booked_slot"));
    sget(o, "mime", j->mime, sizeof j->mime);
    decode_probe(json_object_get(o, "probe"), &j->probe);
    sget(o, "caption", j->caption, sizeof j->caption);
    sget(o, "privacy", j->privacy, sizeof j->privacy);
    json_t *op = json_object_get(o, "options");
    j->opt.disable_comment = json_is_true(json_object_get(op, "disable_comment"));
    j->opt.disable_duet = json_is_true(json_object_get(op, "disable_duet"));
    j->opt.disable_stitch = json_is_true(json_object_get(op, "disable_stitch"));
    j->opt.brand_content = json_is_true(json_object_get(op, "brand_content"));
    j->opt.brand_organic = json_is_true(json_object_get(op, "brand_organic"));
    j->opt.is_aigc = json_is_true(json_object_get(op, "is_aigc"));
    j->opt.cover_ms = (int)json_integer_value(json_object_get(op, "cover_ms"));
    j->opt.auto_add_music = json_is_true(json_object_get(op, "auto_add_music"));
    sget(o, "chosen_by", j->chosen_by, sizeof j->chosen_by);
    sget(o, "tenant", j->tenant, sizeof j->tenant);
    sget(o, "libs", j->libs, sizeof j->libs);
    sget(o, "state", state, sizeof state);
    int st = job_state_parse(state);
    j->state = st < 0 ? JOB_FAILED : (enum job_state)st;
    sget(o, "reason", j->reason, sizeof j->reason);
    j->due_at = json_number_value(json_object_get(o, "due_at"));
    j->created_at = json_number_value(json_object_get(o, "created_at"));
    j->updated_at = json_number_value(json_object_get(o, "updated_at"));
    j->processing_deadline = json_number_value(json_object_get(o, "processing_deadline"));
    j->planned_at = json_number_value(json_object_get(o, "planned_at"));
    j->attempts = (int)json_integer_value(json_object_get(o, "attempts"));
    sget(o, "publish_id", j->publish_id, sizeof j->publish_id);
    sget(o, "upload_url", j->upload_url, sizeof j->upload_url);
    j->upload_url_at = json_number_value(json_object_get(o, "upload_url_at"));
    json_t *pl = json_object_get(o, "plan");
    j->plan.size = (uint64_t)json_integer_value(json_object_get(pl, "size"));
    j->plan.chunk_size = (uint64_t)json_integer_value(json_object_get(pl, "chunk_size"));
    j->plan.count = (uint32_t)json_integer_value(json_object_get(pl, "count"));
    j->chunks_done = (uint32_t)json_integer_value(json_object_get(o, "chunks_done"));
    sget(o, "post_ids", j->post_ids, sizeof j->post_ids);
    j->watch_until = json_number_value(json_object_get(o, "watch_until"));
    j->orphans = (int)json_integer_value(json_object_get(o, "orphans"));
    sget(o, "fail_reason", j->fail_reason, sizeof j->fail_reason);
    sget(o, "log_id", j->log_id, sizeof j->log_id);
    json_decref(o);
    return j->id ? 0 : TIKD_ECORRUPT;
}

int jobrec_decode(const void *p, size_t n, struct job *j)
{
    const unsigned char *b = p;
    if (n >= sizeof MARK && b[0] == MARK[0] && b[1] == MARK[1])
        return decode_binary(b, n, j);
    if (n && b[0] == '{')
        return decode_json(p, n, j);
    return TIKD_ECORRUPT;
}
