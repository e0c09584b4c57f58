/* test_config.c - every kind of bad config value is rejected with the key,
 * the value and what is allowed, through the Lua config file and through the
 * environment; good files set what they say. */
#include "testutil.h"

#include "../../bindings/lua_config.h"

static char *dir;

/* Load `text` as a config file; returns the code and fills e. */
static int load_text(const char *text, struct tikd_config *c, struct tikd_err *e)
{
    tu_write(dir, "tikd.conf.lua", text);
    char p[512];
    snprintf(p, sizeof p, "%s/tikd.conf.lua", dir);
    return config_load(c, p, e);
}

static void expect_error(const char *text, const char *says1, const char *says2)
{
    struct tikd_config c;
    struct tikd_err e = {0};
    int rc = load_text(text, &c, &e);
    config_free(&c);
    if (rc == 0)
        fail_msg("accepted: %s", text);
    if (!strstr(e.msg, says1) || (says2 && !strstr(e.msg, says2)))
        fail_msg("for %s\n  got: %s\n  want: '%s' and '%s'", text, e.msg, says1,
                 says2 ? says2 : "");
}

static void good_file(void **state)
{
    (void)state;
    struct tikd_config c;
    struct tikd_err e = {0};
    int rc = load_text("data_dir = 'data'\n"
                       "rules_dir = '/srv/rules'\n"
                       "lib_paths = { 'shared', '/opt/lib' }\n"
                       "listen = { '127.0.0.1:9000', 'unix:/run/tikd.sock' }\n"
                       "log = { level = 'debug', format = 'json' }\n"
                       "store = { map_initial = '16MiB', map_max = 1073741824 }\n"
                       "lua = { instructions = 5e6, call_memory = '4MiB' }\n"
                       "shutdown_grace = 2.5\n"
                       "tiktok = { client_key = 'ck', api_url = 'http://127.0.0.1:8080',\n"
                       "  redirect_uri = 'https://tikd.example.com/oauth/callback' }\n",
                       &c, &e);
    if (rc != 0)
        fail_msg("%s", e.msg);
    char want[600];
    snprintf(want, sizeof want, "%s/data", dir);
    assert_string_equal(c.data_dir, want); /* relative to the config file */
    assert_string_equal(c.rules_dir, "/srv/rules");
    assert_int_equal(c.lib_paths.n, 2);
    snprintf(want, sizeof want, "%s/shared", dir);
    assert_string_equal(c.lib_paths.v[0], want);
    assert_int_equal(c.listen.n, 2);
    assert_int_equal(c.log_level, TLOG_DEBUG);
    assert_int_equal(c.log_format, TLOG_JSON);
    assert_int_equal(c.map_initial, 16u << 20);
    assert_int_equal(c.map_max, 1u << 30);
    assert_int_equal(c.lua_instructions, 5000000);
    assert_int_equal(c.lua_call_memory, 4u << 20);
    assert_true(c.shutdown_grace == 2.5);
    assert_string_equal(c.api_url, "http://127.0.0.1:8080");
    config_free(&c);
    /* a list longer than Lua's minimum stack (20 slots) is read whole */
    rc = load_text("lib_paths = {} for i = 1, 300 do lib_paths[i] = 'lib' .. i end\n", &c, &e);
    if (rc != 0)
        fail_msg("%s", e.msg);
    assert_int_equal(c.lib_paths.n, 300);
    snprintf(want, sizeof want, "%s/lib300", dir);
    assert_string_equal(c.lib_paths.v[299], want);
    config_free(&c);
    expect_error("lib_paths = {} for i = 1, 10001 do lib_paths[i] = 'x' end\n", "lib_paths",
                 "too long");
    /* a table that holds itself is refused, not walked until the stack ends */
    expect_error("r = _ENV\n", "nest too deep", NULL);
    expect_error("t = {} t.t = t\n", "nest too deep", NULL);
    /* `return { ... }` works too */
    rc = load_text("return { log = { level = 'warn' } }", &c, &e);
    assert_int_equal(rc, 0);
    assert_int_equal(c.log_level, TLOG_WARN);
    config_free(&c);
}

static void bad_values(void **state)
{
    (void)state;
    expect_error("log = { level = 'verbose' }", "key 'log.level': value \"verbose\"",
                 "expected one of debug, info, warn, error");
    expect_error("log = { format = 3 }", "key 'log.format': value 3", "expected one of logfmt");
    expect_error("log_level = 'debug'", "unknown key 'log_level'", NULL);
    expect_error("data_dir = ''", "key 'data_dir': value \"\"", "may not be empty");
    expect_error("data_dir = 42", "key 'data_dir': expected a string", NULL);
    expect_error("store = { map_initial = '12 parsecs' }", "key 'store.map_initial'",
                 "expected a size in bytes");
    expect_error("store = { map_initial = 10 }", "key 'store.map_initial': value 10",
                 "expected a size from 1048576");
    expect_error("store = { map_initial = '64MiB', map_max = '32MiB' }", "store.map_max",
                 "at least store.map_initial");
    expect_error("lua = { instructions = 12345.5 }", "key 'lua.instructions': value 12345.5",
                 "whole number");
    expect_error("lua = { instructions = -1 }", "key 'lua.instructions': value -1", "from 1000 to");
    expect_error("shutdown_grace = 'soon'", "key 'shutdown_grace': value \"soon\"",
                 "expected a number");
    expect_error("shutdown_grace = 7200", "key 'shutdown_grace': value 7200", "from 0 to 3600");
    expect_error("listen = { 'nowhere' }", "key 'listen': value \"nowhere\" (item 1)", "host:port");
    expect_error("listen = { '127.0.0.1:99999' }", "(item 1)", "port must be a number");
    expect_error("listen = { 'unix:relative.sock' }", "key 'listen'", "absolute path");
    expect_error("listen = '127.0.0.1:80'", "key 'listen'", "expected a list");
    expect_error("lib_paths = { 1, 2 }", "key 'lib_paths'", "non-empty strings");
    expect_error("tiktok = { api_url = 'ftp://x' }", "key 'tiktok.api_url': value \"ftp://x\"",
                 "https://");
    expect_error("tiktok = { api_url = 'http://api.example.com' }", "tiktok.api_url",
                 "only for loopback");
    expect_error("tiktok = { api_url = 'https://a.example.com/?x=1' }", "tiktok.api_url",
                 "query string");
    expect_error("tiktok = { redirect_uri = 'http://tikd.example.com/cb' }",
                 "key 'tiktok.redirect_uri'", "loopback");
    expect_error("tiktok = { redirect_uri = 'https://tikd.example.com/cb?x=1' }",
                 "tiktok.redirect_uri", "query string");
    expect_error("tiktok = { redirect_uri = 'https://tikd.example.com/cb#top' }",
                 "tiktok.redirect_uri", "fragment");
    expect_error("tiktok = { client_secret = 'short' }", "tiktok.client_secret",
                 "(secret, not shown)");
    expect_error("log = { level = function() end }", "key 'log.level'", "function value");
    expect_error("x = = 1", "tikd.conf.lua:1:", NULL);
    expect_error("while true do end", "ran too long", NULL);
    expect_error("os.exit(1)", "attempt to index a nil value", NULL);
}

static const char *fake_env(const char *name)
{
    if (strcmp(name, "TIKD_CLIENT_SECRET") == 0)
        return "env-client-secret-123";
    if (strcmp(name, "TIKD_LOG_LEVEL") == 0)
        return "chatty";
    return NULL;
}

static const char *fake_env_ok(const char *name)
{
    return strcmp(name, "TIKD_CLIENT_SECRET") == 0 ? "env-client-secret-123" : NULL;
}

static void environment(void **state)
{
    (void)state;
    struct tikd_config c;
    struct tikd_err e = {0};
    config_init(&c);
    assert_int_equal(config_apply_env(&c, fake_env, &e), TIKD_EINVAL);
    assert_non_null(strstr(e.msg, "key 'log.level': value \"chatty\""));
    assert_non_null(strstr(e.msg, "environment variable TIKD_LOG_LEVEL"));
    config_free(&c);

    struct tu_logcap cap;
    config_init(&c);
    assert_int_equal(config_apply_env(&c, fake_env_ok, &e), 0);
    assert_int_equal(config_finish(&c, &e), 0);
    assert_string_equal(c.client_secret, "env-client-secret-123");
    tu_logcap_start(&cap);
    TLOG(TLOG_ERROR, "test.secret", LSTR("v", c.client_secret));
    assert_null(strstr(cap.buf, "env-client-secret-123")); /* registered as a secret */
    tu_logcap_stop(&cap);
    config_free(&c);
    tlog_secret_clear();
}

int main(void)
{
    dir = tu_tmpdir();
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(good_file),
        cmocka_unit_test(bad_values),
        cmocka_unit_test(environment),
    };
    int rc = cmocka_run_group_tests_name("config", tests, NULL, NULL);
    tu_rmrf(dir);
    free(dir);
    return rc;
}
