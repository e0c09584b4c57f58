/* test_codec.c - the encodings against known answers: RFC 4648's base64url
 * vectors, FIPS 180's SHA-256 of "abc", RFC 4231's HMAC test case 2, form
 * encoding of reserved characters, query parameters with escapes and
 * truncation, and the file hash refusing what is not a regular file. */
#include "testutil.h"

#include "../../core/codec.h"

#include <sys/stat.h>

static void hex_and_base64url(void **state)
{
    (void)state;
    char out[64];
    codec_hex("\x00\x01\xab\xff", 4, out);
    assert_string_equal(out, "0001abff");
    assert_int_equal(codec_unhex('F'), 15);
    assert_int_equal(codec_unhex('g'), -1);
    static const struct {
        const char *in, *out;
    } v[] = {{"", ""},           {"f", "Zg"},          {"fo", "Zm8"},         {"foo", "Zm9v"},
             {"foob", "Zm9vYg"}, {"fooba", "Zm9vYmE"}, {"foobar", "Zm9vYmFy"}};
    for (size_t i = 0; i < sizeof v / sizeof v[0]; i++) {
        codec_b64url(v[i].in, strlen(v[i].in), out);
        assert_string_equal(out, v[i].out);
    }
    codec_b64url("\xfb\xff", 2, out); /* the URL alphabet: - and _ */
    assert_string_equal(out, "-_8");
    unsigned char key[32];
    assert_int_equal(codec_b64_exact("AAECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxwdHh8=", key, 32), 0);
    for (int i = 0; i < 32; i++)
        assert_int_equal(key[i], i);
    assert_int_equal(codec_b64_exact("AAECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxwdHh8", key, 32), -1);
    assert_int_equal(codec_b64_exact("AAEC", key, 32), -1);
}

static void digests(void **state)
{
    (void)state;
    char out[CODEC_SHA256_HEX];
    codec_sha256_hex("abc", 3, out);
    assert_string_equal(out, "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad");
    codec_hmac_sha256_hex("Jefe", "what do ya want for nothing?", 28, out);
    assert_string_equal(out, "5bdcc146bf60754e6a042426089575c75a003f089d2739839dec58b964ec3843");

    char *dir = tu_tmpdir(), path[512];
    tu_write(dir, "abc", "abc");
    snprintf(path, sizeof path, "%s/abc", dir);
    struct tikd_err e = {0};
    assert_int_equal(codec_sha256_file(path, out, &e), 0);
    assert_string_equal(out, "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad");
    assert_int_equal(codec_sha256_file(dir, out, &e), TIKD_EINVAL);
    snprintf(path, sizeof path, "%s/fifo", dir);
    assert_int_equal(mkfifo(path, 0600), 0); /* refused at once, not waited on */
    assert_int_equal(codec_sha256_file(path, out, &e), TIKD_EINVAL);
    snprintf(path, sizeof path, "%s/none", dir);
    assert_int_equal(codec_sha256_file(path, out, &e), TIKD_ENOTFOUND);
    assert_non_null(strstr(e.msg, path));
    tu_rmrf(dir);
    free(dir);
}

static void forms_and_queries(void **state)
{
    (void)state;
    struct codec_form f = {0};
    assert_int_equal(codec_form_add(&f, "a", "x y&z=1/é~"), 0);
    assert_int_equal(codec_form_add(&f, "b", ""), 0);
    assert_string_equal(f.p, "a=x%20y%26z%3D1%2F%C3%A9~&b=");
    codec_form_free(&f);
    assert_null(f.p);

    char v[16];
    const char *q = "code=ab%2Fc+d&state=s1&e=%4&long=0123456789abcdefXYZ";
    assert_true(codec_query_param(q, "code", v, sizeof v));
    assert_string_equal(v, "ab/c d");
    assert_true(codec_query_param(q, "state", v, sizeof v));
    assert_string_equal(v, "s1");
    assert_true(codec_query_param(q, "e", v, sizeof v)); /* a cut escape stays as it is */
    assert_string_equal(v, "%4");
    assert_true(codec_query_param(q, "long", v, sizeof v));
    assert_string_equal(v, "0123456789abcde");
    assert_false(codec_query_param(q, "stat", v, sizeof v));
    assert_false(codec_query_param("", "code", v, sizeof v));
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(hex_and_base64url),
        cmocka_unit_test(digests),
        cmocka_unit_test(forms_and_queries),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
