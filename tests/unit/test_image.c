/* test_image.c - the photo header probe and TikTok's photo rules, on files
 * written by tests/fixtures/mkimg.py: JPEG (baseline, progressive, a large
 * EXIF before the frame header), the three WebP flavours, formats TikTok
 * refuses (PNG, GIF, BMP, HEIC, AVIF), and broken files (truncated, a length
 * that lies, empty, zero width, no frame header). Every cut of a good file
 * is probed from an exact-size heap copy so that ASan sees any overread. */
#include "testutil.h"

#include "../../core/image.h"
#include "../../core/tiktok.h"

#include <sys/stat.h>

static char *dir;

/* Generate a fixture with mkimg.py arguments; returns its path (static). */
static const char *gen(const char *name, const char *args)
{
    static char path[600];
    char cmd[1200];
    snprintf(path, sizeof path, "%s/%s", dir, name);
    snprintf(cmd, sizeof cmd, "/usr/bin/python3 tests/fixtures/mkimg.py '%s' %s", path, args);
    assert_int_equal(system(cmd), 0);
    return path;
}

/* The whole file at path, malloc'd; *n its size. */
static unsigned char *slurp(const char *path, size_t *n)
{
    FILE *f = fopen(path, "rb");
    assert_non_null(f);
    fseek(f, 0, SEEK_END);
    *n = (size_t)ftell(f);
    rewind(f);
    unsigned char *b = malloc(*n ? *n : 1);
    assert_int_equal(fread(b, 1, *n, f), *n);
    fclose(f);
    return b;
}

static void expect_says(const char *what, const char *msg, const char *says)
{
    if (!strstr(msg, says))
        fail_msg("%s: '%s' does not say '%s'", what, msg, says);
}

static void good_images(void **state)
{
    (void)state;
    static const struct {
        const char *name, *args, *format, *mime;
        int w, h, sof;
    } cases[] = {
        {"base.jpg", "--size 1080x1920", "jpeg", "image/jpeg", 1080, 1920, 0xC0},
        {"prog.jpg", "--size 1920x1080 --sof 2", "jpeg", "image/jpeg", 1920, 1080, 0xC2},
        {"ext.jpg", "--size 800x600 --sof 1", "jpeg", "image/jpeg", 800, 600, 0xC1},
        /* the preview's SOF inside APP1 is skipped with its segment */
        {"thumb.jpg", "--thumb --size 1080x1350", "jpeg", "image/jpeg", 1080, 1350, 0xC0},
        {"lossy.webp", "--format webp-vp8 --size 1080x1920", "webp", "image/webp", 1080, 1920, 0},
        {"lossless.webp", "--format webp-vp8l --size 1920x1080", "webp", "image/webp", 1920, 1080,
         0},
        {"ext.webp", "--format webp-vp8x --size 1080x1080", "webp", "image/webp", 1080, 1080, 0},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        struct image_info ii;
        struct tikd_err e = {0};
        const char *p = gen(cases[i].name, cases[i].args);
        struct stat st;
        assert_int_equal(stat(p, &st), 0);
        if (image_probe(p, &ii, &e) != 0)
            fail_msg("%s: %s", cases[i].name, e.msg);
        assert_string_equal(ii.format, cases[i].format);
        assert_string_equal(ii.mime, cases[i].mime);
        assert_int_equal(ii.width, cases[i].w);
        assert_int_equal(ii.height, cases[i].h);
        assert_int_equal(ii.jpeg_sof, cases[i].sof);
        assert_int_equal(ii.size, (uint64_t)st.st_size);
        char why[300] = "x";
        if (image_check_photo(&ii, why, sizeof why) != 0)
            fail_msg("%s: %s", cases[i].name, why);
        assert_string_equal(why, "");
    }
}

/* A 70 KB EXIF puts the frame header past IMAGE_HEAD_BYTES: a fetched head
 * says truncated (and head_short), the file is read whole. Past 256 KiB the
 * file probe gives up as "header too large". */
static void large_exif(void **state)
{
    (void)state;
    struct image_info ii;
    struct tikd_err e = {0};
    const char *p = gen("exif70k.jpg", "--exif 70000 --size 1080x1920");
    size_t n;
    unsigned char *b = slurp(p, &n);
    assert_true(n > IMAGE_HEAD_BYTES);
    assert_int_equal(image_probe_buf(b, IMAGE_HEAD_BYTES, n, &ii, &e), TIKD_EINVAL);
    expect_says("70k head", e.msg, "truncated");
    assert_true(ii.head_short);
    assert_int_equal(image_probe_buf(b, IMAGE_HEAD_BYTES, 0, &ii, &e), TIKD_EINVAL);
    assert_true(ii.head_short);
    assert_int_equal(image_probe_buf(b, n, n, &ii, &e), 0);
    assert_int_equal(ii.size, n);
    assert_false(ii.head_short);
    free(b);
    assert_int_equal(image_probe(p, &ii, &e), 0);
    assert_int_equal(ii.width, 1080);
    assert_int_equal(ii.height, 1920);

    p = gen("exif300k.jpg", "--exif 300000");
    assert_int_equal(image_probe(p, &ii, &e), TIKD_EINVAL);
    expect_says("300k file", e.msg, "header too large");
    expect_says("300k file", e.msg, p);
}

static void refused_formats_are_named(void **state)
{
    (void)state;
    static const struct {
        const char *name, *args, *format, *says;
        int w, h;
    } cases[] = {
        {"a.png", "--format png --size 1080x1920", "png", "PNG is not accepted", 1080, 1920},
        {"a.gif", "--format gif --size 640x480", "gif", "GIF is not accepted", 640, 480},
        {"a.bmp", "--format bmp --size 1080x1920", "bmp", "BMP is not accepted", 1080, 1920},
        {"a.heic", "--format heic", "heic", "HEIC is not accepted", 0, 0},
        {"a.avif", "--format avif", "avif", "AVIF is not accepted", 0, 0},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        struct image_info ii;
        struct tikd_err e = {0};
        char why[300];
        const char *p = gen(cases[i].name, cases[i].args);
        if (image_probe(p, &ii, &e) != 0)
            fail_msg("%s: %s", cases[i].name, e.msg);
        assert_string_equal(ii.format, cases[i].format);
        assert_null(ii.mime);
        assert_int_equal(ii.width, cases[i].w);
        assert_int_equal(ii.height, cases[i].h);
        assert_int_equal(image_check_photo(&ii, why, sizeof why), -1);
        expect_says(cases[i].name, why, cases[i].says);
        expect_says(cases[i].name, why, "TikTok takes JPEG or WebP");
    }
    /* a 4000x3000 PNG is wrong twice over, and both are said */
    struct image_info ii;
    struct tikd_err e = {0};
    char why[300];
    assert_int_equal(image_probe(gen("b.png", "--format png --size 4000x3000"), &ii, &e), 0);
    assert_int_equal(image_check_photo(&ii, why, sizeof why), -1);
    assert_string_equal(why, "PNG is not accepted: TikTok takes JPEG or WebP; 4000x3000 is larger "
                             "than TikTok's 1080p photo limit (at most 1080x1920 either way)");
}

static void photo_rules(void **state)
{
    (void)state;
    char why[300];
    struct image_info ii = {.format = "jpeg", .mime = "image/jpeg", .size = 1000};
    static const struct {
        int w, h, ok;
    } sizes[] = {
        {1080, 1920, 1}, {1920, 1080, 1}, {1080, 1080, 1}, {1, 1, 1},       {1081, 1921, 0},
        {1080, 1921, 0}, {1921, 1080, 0}, {1081, 1081, 0}, {4000, 3000, 0}, {3024, 4032, 0},
    };
    for (size_t i = 0; i < sizeof sizes / sizeof sizes[0]; i++) {
        ii.width = sizes[i].w;
        ii.height = sizes[i].h;
        int rc = image_check_photo(&ii, why, sizeof why);
        if (rc != (sizes[i].ok ? 0 : -1))
            fail_msg("%dx%d: rc %d (%s)", ii.width, ii.height, rc, why);
    }
    ii.width = 3024;
    ii.height = 4032;
    assert_int_equal(image_check_photo(&ii, why, sizeof why), -1);
    assert_string_equal(why, "3024x4032 is larger than TikTok's 1080p photo limit (at most "
                             "1080x1920 either way)");
    ii.width = 1080;
    ii.height = 1920;
    ii.size = TT_PHOTO_MAX_BYTES;
    assert_int_equal(image_check_photo(&ii, why, sizeof why), 0);
    ii.size = 21000000;
    assert_int_equal(image_check_photo(&ii, why, sizeof why), -1);
    expect_says("21 MB", why, "21000000 bytes (21.0 MB); TikTok takes photos up to 20 MB");
    /* a small buffer is cut, not overrun, and still says no */
    char tiny[8];
    assert_int_equal(image_check_photo(&ii, tiny, sizeof tiny), -1);
    assert_int_equal(strlen(tiny), sizeof tiny - 1);
    assert_int_equal(image_check_photo(&ii, NULL, 0), -1);
}

static void broken_images(void **state)
{
    (void)state;
    static const struct {
        const char *name, *args, *says;
    } cases[] = {
        {"cut-exif.jpg", "--exif 2000 --truncate 1000", "truncated"},
        {"cut-sof.jpg", "--truncate 300", "truncated"}, /* SOF0 spans bytes 293-311 */
        {"cut-marker.jpg", "--truncate 3", "truncated"},
        {"lying.jpg", "--break lying", "lies about its length"},
        {"short.jpg", "--break short", "the length lies"},
        {"zero.jpg", "--break zero-width", "zero width"},
        {"nosof.jpg", "--break no-sof", "before any frame header"},
        {"empty.jpg", "--break empty", "empty"},
        {"cut.webp", "--format webp-vp8 --truncate 25", "truncated"},
        {"cut-riff.webp", "--format webp-vp8l --truncate 10", "truncated"},
        {"lying.webp", "--format webp-vp8x --break lying", "lies"},
        {"short.webp", "--format webp-vp8 --break short", "length lies"},
        {"zero.webp", "--format webp-vp8 --break zero-width", "zero width"},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        struct image_info ii;
        struct tikd_err e = {0};
        const char *p = gen(cases[i].name, cases[i].args);
        if (image_probe(p, &ii, &e) != TIKD_EINVAL)
            fail_msg("%s: probe passed (%s %dx%d)", cases[i].name, ii.format, ii.width, ii.height);
        expect_says(cases[i].name, e.msg, cases[i].says);
        expect_says(cases[i].name, e.msg, p);
    }
    struct image_info ii;
    struct tikd_err e = {0};
    char p[600];
    snprintf(p, sizeof p, "%s/text.jpg", dir);
    tu_write(dir, "text.jpg", "<html>this is a web page, not a photo</html>");
    assert_int_equal(image_probe(p, &ii, &e), TIKD_EINVAL);
    expect_says("text", e.msg, "unknown image format (it starts with 3c 68 74 6d 6c 3e 74 68)");
    assert_int_equal(image_probe_buf((const unsigned char *)"\0\0\0\x18"
                                                            "ftypisom\0\0\0\0",
                                     16, 0, &ii, &e),
                     TIKD_EINVAL);
    expect_says("mp4", e.msg, "brand 'isom' (a video?)");
    assert_int_equal(image_probe_buf(NULL, 0, 0, &ii, &e), TIKD_EINVAL);
    expect_says("no bytes", e.msg, "empty");
    assert_int_equal(image_probe_buf((const unsigned char *)"", 0, 5000, &ii, &e), TIKD_EINVAL);
    expect_says("no head", e.msg, "truncated");
    assert_true(ii.head_short);
    assert_int_equal(image_probe(dir, &ii, &e), TIKD_EINVAL);
    expect_says("dir", e.msg, "is a directory");
    assert_int_equal(image_probe("/nonexistent/x.jpg", &ii, &e), TIKD_ENOTFOUND);
    expect_says("missing", e.msg, "/nonexistent/x.jpg: cannot read");
    if (geteuid() != 0) { /* root reads anything */
        const char *q = gen("locked.jpg", "");
        assert_int_equal(chmod(q, 0), 0);
        assert_int_equal(image_probe(q, &ii, &e), TIKD_EIO);
        expect_says("locked", e.msg, "Permission denied");
    }
}

/* Probe buf[0..len) from an exact-size heap copy: a read past len is an ASan report. */
static int probe_exact(const unsigned char *buf, size_t len, uint64_t total, struct image_info *ii,
                       struct tikd_err *e)
{
    unsigned char *copy = malloc(len ? len : 1);
    memcpy(copy, buf, len);
    int rc = image_probe_buf(len ? copy : NULL, len, total, ii, e);
    free(copy);
    return rc;
}

static void check_clean(int rc, const struct image_info *ii, const struct tikd_err *e)
{
    if (rc == 0) {
        assert_true(ii->format[0] != '\0');
        if (ii->mime)
            assert_true(ii->width > 0 && ii->height > 0);
    } else {
        assert_int_equal(rc, TIKD_EINVAL);
        assert_true(e->msg[0] != '\0');
    }
}

/* Every cut of a good file either reads right or fails with a message; a
 * cut JPEG or WebP never passes with a wrong size. Then random corruptions. */
static void every_cut_fails_cleanly(void **state)
{
    (void)state;
    static const char *const seeds[][2] = {
        {"s.jpg", "--size 1080x1920 --exif 100 --scan-bytes 50"},
        {"s2.jpg", "--sof 2 --size 640x480 --exif 3000 --scan-bytes 10"},
        {"s.webp", "--format webp-vp8 --size 1080x1920"},
        {"sl.webp", "--format webp-vp8l --size 1080x1920"},
        {"sx.webp", "--format webp-vp8x --size 1080x1920"},
        {"s.png", "--format png"},
        {"s.gif", "--format gif"},
        {"s.bmp", "--format bmp"},
        {"s.avif", "--format avif"},
    };
    srand(11);
    for (size_t s = 0; s < sizeof seeds / sizeof seeds[0]; s++) {
        size_t n;
        unsigned char *full = slurp(gen(seeds[s][0], seeds[s][1]), &n);
        struct image_info good, ii;
        struct tikd_err e = {0};
        assert_int_equal(image_probe_buf(full, n, n, &good, &e), 0);
        for (size_t len = 0; len <= n; len++) {
            for (int known = 0; known < 2; known++) {
                int rc = probe_exact(full, len, known ? n : 0, &ii, &e);
                check_clean(rc, &ii, &e);
                if (rc == 0 && good.mime) {
                    assert_int_equal(ii.width, good.width);
                    assert_int_equal(ii.height, good.height);
                }
            }
        }
        unsigned char *buf = malloc(n);
        for (int round = 0; round < 3000; round++) {
            memcpy(buf, full, n);
            for (int k = 0; k < 1 + round % 6; k++)
                buf[rand() % (int)n] = (unsigned char)rand();
            size_t len = round % 4 == 0 ? (size_t)rand() % (n + 1) : n;
            int rc = probe_exact(buf, len, round % 3 ? n : 0, &ii, &e);
            check_clean(rc, &ii, &e);
        }
        free(buf);
        free(full);
    }
}

int main(void)
{
    dir = tu_tmpdir();
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(good_images),
        cmocka_unit_test(large_exif),
        cmocka_unit_test(refused_formats_are_named),
        cmocka_unit_test(photo_rules),
        cmocka_unit_test(broken_images),
        cmocka_unit_test(every_cut_fails_cleanly),
    };
    int rc = cmocka_run_group_tests_name("image", tests, NULL, NULL);
    tu_rmrf(dir);
    free(dir);
    return rc;
}
