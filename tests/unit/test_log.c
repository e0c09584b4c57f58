/* test_log.c - event lines, secret redaction in every form a secret takes
 * inside a line, and the audit chain: verifies, then fails after a raw
 * LMDB edit, removal or truncation. */
#include "testutil.h"

#include <fcntl.h>
#include <lmdb.h>
#include <openssl/crypto.h>
#include <unistd.h>

#include "../../core/audit.h"
#include "../../core/store.h"

/* fake, and shaped so no scanner mistakes it for a real one */
static const char TOKEN[] = "act.FAKE-9x!Q*zz-0123456789-abcdefghij-ABCDEF";
static const char SECRET2[] = "s3cr3t/with\"quote\\and space";

static void secret_never_appears(void **state)
{
    (void)state;
    struct tu_logcap cap;
    tlog_secret_clear();
    assert_int_equal(tlog_secret_add(TOKEN, strlen(TOKEN)), 0);
    assert_int_equal(tlog_secret_add(SECRET2, strlen(SECRET2)), 0);
    for (int fmt = 0; fmt < 2; fmt++) {
        tlog_setup(TLOG_DEBUG, fmt ? TLOG_JSON : TLOG_LOGFMT, 2);
        tu_logcap_start(&cap);
        char url[512], json[512], esc[512];
        snprintf(url, sizeof url,
                 "https://open.tiktokapis.com/v2/x/?access_token=act.FAKE-9x%%21Q%%2Azz-0123456789"
                 "-abcdefghij-ABCDEF&x=1");
        snprintf(json, sizeof json, "{\"access_token\":\"%s\",\"n\":1}", TOKEN);
        snprintf(esc, sizeof esc, "prefix-%s-suffix", SECRET2);
        TLOG(TLOG_INFO, "test.raw", LSTR("token", TOKEN));
        TLOG(TLOG_INFO, "test.embedded",
             LSTR("header", "Authorization: Bearer act.FAKE-9x!Q*zz"
                            "-0123456789-abcdefghij-ABCDEF"));
        TLOG(TLOG_INFO, "test.url", LSTR("url", url));
        TLOG(TLOG_INFO, "test.json", LSTR("body", json));
        TLOG(TLOG_INFO, "test.quoted", LSTR("v", esc));
        TLOG(TLOG_DEBUG, "test.key", LSTR(TOKEN, "value"));
        assert_null(strstr(cap.buf, TOKEN));
        assert_null(strstr(cap.buf, "act.FAKE-9x%21Q%2Azz-0123456789-abcdefghij-ABCDEF"));
        assert_null(strstr(cap.buf, "FAKE-9x"));
        assert_null(strstr(cap.buf, "Bearer act.")); /* the embedded one was masked too */
        assert_null(strstr(cap.buf, "s3cr3t"));
        assert_non_null(strstr(cap.buf, "[redacted]"));
        assert_non_null(strstr(cap.buf, "prefix-"));
        assert_non_null(strstr(cap.buf, "-suffix"));
        tu_logcap_stop(&cap);
    }
    tlog_secret_clear();
}

static void short_secrets_refused_and_removal(void **state)
{
    (void)state;
    struct tu_logcap cap;
    tlog_setup(TLOG_INFO, TLOG_LOGFMT, 2);
    assert_int_equal(tlog_secret_add("abc", 3), -1);
    assert_int_equal(tlog_secret_add("rotating-token-1", 16), 0);
    assert_int_equal(tlog_secret_remove("rotating-token-1", 16), 0);
    assert_int_equal(tlog_secret_remove("rotating-token-1", 16), -1);
    tu_logcap_start(&cap);
    TLOG(TLOG_INFO, "test.after_remove", LSTR("v", "rotating-token-1"));
    assert_non_null(strstr(cap.buf, "rotating-token-1"));
    tu_logcap_stop(&cap);
    /* thousands of secrets: still masked, index grows */
    char s[64];
    for (int i = 0; i < 5000; i++) {
        snprintf(s, sizeof s, "act.token-number-%06d", i);
        assert_int_equal(tlog_secret_add(s, strlen(s)), 0);
    }
    tu_logcap_start(&cap);
    TLOG(TLOG_INFO, "test.many", LSTR("a", "x act.token-number-004321 y"),
         LSTR("b", "act.token-number-000000"));
    assert_null(strstr(cap.buf, "token-number"));
    tu_logcap_stop(&cap);
    tlog_secret_clear();
}

static void formats_and_levels(void **state)
{
    (void)state;
    struct tu_logcap cap;
    tlog_setup(TLOG_WARN, TLOG_LOGFMT, 2);
    tu_logcap_start(&cap);
    TLOG(TLOG_INFO, "test.filtered", LINT("n", 1));
    assert_null(cap.buf);
    TLOG(TLOG_WARN, "test.kv", LSTR("s", "two words"), LINT("n", 42), LBOOL("b", 1),
         LSTR("q", "say \"hi\"\n"));
    assert_non_null(strstr(cap.buf, " level=warn event=test.kv s=\"two words\" n=42 b=true "
                                    "q=\"say \\\"hi\\\"\\n\"\n"));
    tu_logcap_stop(&cap);
    tlog_setup(TLOG_INFO, TLOG_JSON, 2);
    tu_logcap_start(&cap);
    TLOG(TLOG_INFO, "test.json", LSTR("path", "/a/b"), LDBL("x", 1.5));
    assert_non_null(strstr(cap.buf,
                           "\"level\":\"info\",\"event\":\"test.json\",\"path\":\"\\/a\\/b\","
                           "\"x\":1.5}\n"));
    tu_logcap_stop(&cap);
    assert_int_equal(tlog_level_parse("debug"), TLOG_DEBUG);
    assert_int_equal(tlog_level_parse("loud"), -1);
}

/* ---- audit ------------------------------------------------------------ */

struct ap {
    int i;
};

static int append_one(struct store_txn *t, void *ctx)
{
    char detail[64];
    snprintf(detail, sizeof detail, "n=%d token=%s", ((struct ap *)ctx)->i, TOKEN);
    return audit_append(t, "operator", "test.event", detail);
}

static struct store *audit_store(const char *dir, int n)
{
    struct store *s;
    struct store_opts o = {dir, 1 << 20, 8 << 20, false};
    struct tikd_err e = {0};
    assert_int_equal(store_open(&s, &o, &e), 0);
    for (int i = 0; i < n; i++) {
        struct ap a = {i};
        assert_int_equal(store_write(s, append_one, &a, &e), 0);
    }
    return s;
}

/* Raw LMDB surgery on the audit database, as an attacker would. */
enum surgery { EDIT, REMOVE, TRUNCATE };
static void tamper(const char *dir, uint64_t seq, enum surgery what)
{
    MDB_env *env;
    MDB_txn *txn;
    MDB_dbi dbi;
    assert_int_equal(mdb_env_create(&env), 0);
    mdb_env_set_maxdbs(env, 32);
    assert_int_equal(mdb_env_open(env, dir, 0, 0600), 0);
    assert_int_equal(mdb_txn_begin(env, NULL, 0, &txn), 0);
    assert_int_equal(mdb_dbi_open(txn, "audit", 0, &dbi), 0);
    unsigned char key[8];
    store_be64_put(key, seq);
    MDB_val k = {8, key}, d;
    assert_int_equal(mdb_get(txn, dbi, &k, &d), 0);
    if (what == EDIT) {
        unsigned char *copy = malloc(d.mv_size);
        memcpy(copy, d.mv_data, d.mv_size);
        copy[d.mv_size - 1] ^= 1; /* one bit of the detail */
        MDB_val nd = {d.mv_size, copy};
        assert_int_equal(mdb_put(txn, dbi, &k, &nd, 0), 0);
        free(copy);
    } else {
        assert_int_equal(mdb_del(txn, dbi, &k, NULL), 0);
    }
    assert_int_equal(mdb_txn_commit(txn), 0);
    mdb_env_close(env);
}

static int collect(const struct audit_rec *r, void *ctx)
{
    (*(int *)ctx)++;
    assert_string_equal(r->actor, "operator");
    assert_null(strstr(r->detail, "FAKE-9x"));
    assert_non_null(strstr(r->detail, "[redacted]"));
    return 0;
}

static int read_all(struct store_txn *t, void *ctx)
{
    return audit_foreach(t, 1, collect, ctx);
}

static void audit_chain(void **state)
{
    (void)state;
    tlog_secret_add(TOKEN, strlen(TOKEN));
    static const struct {
        uint64_t seq;
        enum surgery what;
        const char *says;
    } cases[] = {
        {5, EDIT, "record 6"},      /* the next record no longer follows it */
        {10, EDIT, "head says 10"}, /* the last record: only the head knows */
        {4, REMOVE, "record 4 is missing"},
        {10, TRUNCATE, "head says 10"},
        {1, REMOVE, "record 1 is missing"},
    };
    for (size_t c = 0; c < sizeof cases / sizeof cases[0]; c++) {
        char *dir = tu_tmpdir();
        struct store *s = audit_store(dir, 10);
        struct tikd_err e = {0};
        uint64_t n = 0;
        assert_int_equal(audit_verify(s, &n, &e), 0);
        assert_int_equal(n, 10);
        int seen = 0;
        assert_int_equal(store_read(s, read_all, &seen, &e), 0);
        assert_int_equal(seen, 10);
        store_close(s);
        tamper(dir, cases[c].seq, cases[c].what);
        s = audit_store(dir, 0);
        assert_int_equal(audit_verify(s, &n, &e), TIKD_ECORRUPT);
        if (!strstr(e.msg, cases[c].says))
            fail_msg("case %zu: '%s' does not say '%s'", c, e.msg, cases[c].says);
        store_close(s);
        tu_rmrf(dir);
        free(dir);
    }
    tlog_secret_clear();
}

/* A secret of n bytes (8 <= n < 300): "len" and n in five digits, 'Z', then
 * fill up to n. */
static void make_secret(char *s, int n, char fill)
{
    char tag[16];
    snprintf(tag, sizeof tag, "len%05d", n % 100000);
    memset(s, fill, (size_t)n);
    memcpy(s, tag, 8);
    s[8] = 'Z';
}

/* Lengths come and go (rotated tokens of every size); secrets overlap; the
 * longest one starting at a place is masked whole. */
static void lengths_overlaps_and_churn(void **state)
{
    (void)state;
    struct tu_logcap cap;
    tlog_setup(TLOG_INFO, TLOG_LOGFMT, 2);
    char s[300];
    for (int round = 0; round < 3; round++) {
        for (int n = 10; n < 200; n++) {
            make_secret(s, n, (char)('a' + round));
            assert_int_equal(tlog_secret_add(s, (size_t)n), 0);
        }
        for (int n = 10; n < 200; n++) {
            make_secret(s, n, (char)('a' + round));
            if (n != 150)
                assert_int_equal(tlog_secret_remove(s, (size_t)n), 0);
        }
    }
    make_secret(s, 150, 'c');
    s[150] = '\0';
    char line[400];
    snprintf(line, sizeof line, "x%sy", s);
    tu_logcap_start(&cap);
    TLOG(TLOG_INFO, "test.churn", LSTR("v", line));
    assert_null(strstr(cap.buf, "len00150"));
    assert_non_null(strstr(cap.buf, "v=x[redacted]y"));
    tu_logcap_stop(&cap);
    /* "outer-secret-long" contains "secret-l": the longer one wins where both start */
    assert_int_equal(tlog_secret_add("secret-long-one", 15), 0);
    assert_int_equal(tlog_secret_add("secret-l", 8), 0);
    tu_logcap_start(&cap);
    TLOG(TLOG_INFO, "test.overlap", LSTR("v", "<secret-long-one><secret-lx>"));
    assert_non_null(strstr(cap.buf, "v=<[redacted]><[redacted]x>"));
    tu_logcap_stop(&cap);
    tlog_secret_clear();
}

static char chunk[1 << 20]; /* what the scan below reads into (what it read last) */

static bool in_chunk(unsigned long addr)
{
    return addr >= (unsigned long)chunk && addr < (unsigned long)chunk + sizeof chunk;
}

/* The registry keeps no copy of a secret: once the caller wipes its own,
 * no writable mapping of the process holds the secret's bytes. */
static void the_registry_holds_no_secret(void **state)
{
    (void)state;
    char *sec = malloc(64);
    assert_non_null(sec);
    snprintf(sec, 64, "%s-%s-%d", "rft", "NEVERKEPT", 0x5eed); /* built at run time */
    size_t n = strlen(sec);
    char *probe = malloc(64); /* the one place the scan may find it */
    assert_non_null(probe);
    memcpy(probe, sec, n); /* a copy to search for, XOR-masked so it never matches itself */
    for (size_t i = 0; i < n; i++)
        probe[i] ^= 0x5a;
    assert_int_equal(tlog_secret_add(sec, n), 0);
    OPENSSL_cleanse(sec, 64);
    free(sec);
    for (size_t i = 0; i < n; i++)
        probe[i] ^= 0x5a;
    FILE *maps = fopen("/proc/self/maps", "r");
    assert_non_null(maps);
    int mem = open("/proc/self/mem", O_RDONLY);
    assert_true(mem >= 0);
    char row[512];
    size_t found = 0, scanned = 0;
    while (fgets(row, sizeof row, maps)) {
        unsigned long lo, hi;
        char perms[8];
        if (sscanf(row, "%lx-%lx %7s", &lo, &hi, perms) != 3 || perms[1] != 'w' ||
            strstr(row, "[stack]"))
            continue;
        if (hi - lo > (1UL << 30)) /* a sanitizer's shadow: reserved, never the heap */
            continue;
        /* in pieces that overlap by n - 1 bytes, so no match falls between */
        for (unsigned long at = lo; at < hi; at += sizeof chunk - n) {
            size_t want = hi - at < sizeof chunk ? hi - at : sizeof chunk;
            ssize_t got = pread(mem, chunk, want, (off_t)at);
            for (ssize_t i = 0; got > 0 && i + (ssize_t)n <= got; i++)
                found += memcmp(chunk + i, probe, n) == 0 &&
                         at + (unsigned long)i != (unsigned long)probe && !in_chunk(at + i);
            scanned += got > 0 ? (size_t)got : 0;
            if (got < (ssize_t)want || want < sizeof chunk)
                break;
        }
    }
    close(mem);
    fclose(maps);
    assert_true(scanned > 0);
    assert_int_equal(found, 0);
    /* and it is still masked */
    struct tu_logcap cap;
    tu_logcap_start(&cap);
    memcpy(row, probe, n);
    row[n] = '\0';
    TLOG(TLOG_INFO, "test.kept", LSTR("v", row));
    assert_null(strstr(cap.buf, "NEVERKEPT"));
    tu_logcap_stop(&cap);
    OPENSSL_cleanse(probe, 64);
    free(probe);
    OPENSSL_cleanse(row, sizeof row);
    tlog_secret_clear();
}

static int nlines(const struct tu_logcap *c)
{
    int n = 0;
    for (size_t i = 0; i < c->n; i++)
        n += c->buf[i] == '\n';
    return n;
}

/* Held lines wait, masked already, and go out in order, one hook call each;
 * turning the hold off lets the rest go and lines go at once again. */
static void held_lines(void **state)
{
    (void)state;
    struct tu_logcap cap;
    tlog_secret_clear();
    tlog_setup(TLOG_INFO, TLOG_LOGFMT, 2);
    tu_logcap_start(&cap);
    tlog_hold(true);
    TLOG(TLOG_INFO, "test.one", LINT("n", 1));
    assert_int_equal(tlog_secret_add(TOKEN, strlen(TOKEN)), 0);
    TLOG(TLOG_INFO, "test.two", LSTR("token", TOKEN));
    assert_int_equal(cap.n, 0);
    tlog_secret_clear(); /* masked when it happened, not when it goes */
    tlog_flush();
    assert_int_equal(nlines(&cap), 2);
    assert_non_null(strstr(cap.buf, "event=test.one n=1\n"));
    assert_true(strstr(cap.buf, "test.one") < strstr(cap.buf, "test.two"));
    assert_null(strstr(cap.buf, "FAKE-9x"));
    assert_non_null(strstr(cap.buf, "token=[redacted]\n"));
    tlog_flush(); /* nothing twice */
    assert_int_equal(nlines(&cap), 2);
    for (int i = 0; i < 20000; i++) /* past the buffer kept between flushes */
        TLOG(TLOG_INFO, "test.burst", LINT("i", i), LSTR("pad", "0123456789abcdef0123456789"));
    assert_int_equal(nlines(&cap), 2);
    tlog_flush();
    assert_int_equal(nlines(&cap), 20002);
    assert_non_null(strstr(cap.buf, "i=19999 "));
    TLOG(TLOG_INFO, "test.three", LINT("n", 3));
    tlog_hold(false);
    assert_int_equal(nlines(&cap), 20003);
    TLOG(TLOG_INFO, "test.four", LINT("n", 4));
    assert_int_equal(nlines(&cap), 20004);
    tu_logcap_stop(&cap);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(secret_never_appears),
        cmocka_unit_test(short_secrets_refused_and_removal),
        cmocka_unit_test(lengths_overlaps_and_churn),
        cmocka_unit_test(the_registry_holds_no_secret),
        cmocka_unit_test(formats_and_levels),
        cmocka_unit_test(held_lines),
        cmocka_unit_test(audit_chain),
    };
    return cmocka_run_group_tests_name("log", tests, NULL, NULL);
}
