/* test_media.c - the media fast path (media_sniff), TikTok's rules as a
 * table (media_judge), the probe's answer (media_parse_probe) and the probe
 * process itself: the real tikd-probe on files written by
 * tests/fixtures/mkmp4.py, and stand-in probes that hang, crash, babble or
 * flood, which must cost a bounded wait and an error, never the caller.
 * (The corpus of real videos judged against ffprobe is
 * tests/integration/test_media_corpus.py.) */
#include "testutil.h"

#include "../../core/media.h"

#include <errno.h>
#include <fcntl.h>
#include <ev.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>

static char *dir;

static double tu_now(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + ts.tv_nsec / 1e9;
}

/* Generate a fixture with mkmp4.py arguments; returns its path (static). */
static const char *gen(const char *name, const char *args)
{
    static char path[600];
    char cmd[1200];
    snprintf(path, sizeof path, "%s/%s", dir, name);
    snprintf(cmd, sizeof cmd, "/usr/bin/python3 tests/fixtures/mkmp4.py '%s' %s", path, args);
    assert_int_equal(system(cmd), 0);
    return path;
}

static const char *write_file(const char *name, const void *data, size_t n)
{
    static char path[600];
    snprintf(path, sizeof path, "%s/%s", dir, name);
    FILE *f = fopen(path, "wb");
    assert_non_null(f);
    assert_int_equal(fwrite(data, 1, n, f), n);
    fclose(f);
    return path;
}

static void good_files_through_the_real_probe(void **state)
{
    (void)state;
    struct media_info mi;
    struct tikd_err e = {0};
    const char *p = gen("h264.mp4", "--codec avc1 --size 1080x1920 --fps 30 --duration 12.5");
    assert_int_equal(media_probe(p, &mi, &e), 0);
    assert_true(mi.probed && mi.has_video && mi.has_audio);
    assert_string_equal(mi.container, "mp4");
    assert_string_equal(mi.mime, "video/mp4");
    assert_string_equal(mi.codec, "h264");
    assert_string_equal(mi.tag, "avc1");
    assert_string_equal(media_codec_label(mi.codec), "H.264");
    assert_string_equal(mi.audio_codec, "aac");
    assert_int_equal(mi.display_width, 1080);
    assert_int_equal(mi.display_height, 1920);
    assert_true(mi.fps > 29.9 && mi.fps < 30.1);
    assert_true(mi.duration > 12.4 && mi.duration < 12.6);
    char why[600];
    assert_int_equal(media_check_video(&mi, 300, why, sizeof why), 0);

    p = gen("h265.mov", "--codec hvc1 --brand qt --size 720x1280 --fps 59.94 --duration 3 "
                        "--largesize");
    assert_int_equal(media_probe(p, &mi, &e), 0);
    assert_string_equal(mi.container, "mov");
    assert_string_equal(mi.mime, "video/quicktime");
    assert_string_equal(mi.codec, "hevc");
    assert_true(mi.fps > 59.8 && mi.fps < 60.1);
    assert_int_equal(media_check_video(&mi, 0, why, sizeof why), 0);
}

/* A probed file as the rules see it: a good 1080x1920 H.264 clip. */
static struct media_info good(void)
{
    struct media_info mi = {.container = "mp4",
                            .mime = "video/mp4",
                            .size = 10000000,
                            .probed = true,
                            .has_video = true,
                            .has_audio = true,
                            .codec = "h264",
                            .width = 1080,
                            .height = 1920,
                            .display_width = 1080,
                            .display_height = 1920,
                            .fps = 30,
                            .duration = 30,
                            .bit_rate = 2500000,
                            .audio_codec = "aac"};
    return mi;
}

/* Each rule at its bounds: the rule named, at its level, and nothing else. */
static void every_rule_at_its_bounds(void **state)
{
    (void)state;
    static const struct {
        const char *what, *field;
        double value;
        int max;
        const char *rule; /* NULL: passes */
        enum media_level level;
        const char *says;
    } cases[] = {
        {"fps 22.99", "fps", 22.98, 0, "video.fps", MEDIA_REFUSE, "23 to 60 fps"},
        {"fps 23", "fps", 23, 0, NULL, MEDIA_PASS, NULL},
        {"fps 60", "fps", 60, 0, NULL, MEDIA_PASS, NULL},
        {"fps 60.1", "fps", 60.1, 0, "video.fps", MEDIA_REFUSE, "60.10 fps"},
        {"2.9 s", "duration", 2.9, 0, "video.duration.min", MEDIA_WARN, "not documented"},
        {"3 s", "duration", 3, 0, NULL, MEDIA_PASS, NULL},
        {"600 s", "duration", 600, 0, NULL, MEDIA_PASS, NULL},
        {"601 s", "duration", 601, 0, "video.duration.max", MEDIA_REFUSE, "up to 600 s"},
        {"181 s, creator 180", "duration", 181, 180, "video.duration.max", MEDIA_REFUSE,
         "this creator may post up to 180 s"},
        {"no duration", "duration", 0, 0, "video.duration.unknown", MEDIA_REFUSE,
         "the file gives no duration"},
        {"width 359", "width", 359, 0, "video.width", MEDIA_REFUSE, "360 to 4096"},
        {"width 4097", "width", 4097, 0, "video.width", MEDIA_REFUSE, "4097x1920"},
        {"height 4096", "height", 4096, 0, NULL, MEDIA_PASS, NULL},
        {"width 700", "width", 700, 0, "video.side.720", MEDIA_WARN, "unconfirmed"},
        {"999 kbps", "kbps", 999, 0, "video.bitrate", MEDIA_WARN, "999 kbps"},
        {"6001 kbps", "kbps", 6001, 0, "video.bitrate", MEDIA_WARN, "1000 to 6000 kbps"},
        {"4.01 GB", "bytes", 4.01e9, 0, "video.size", MEDIA_REFUSE, "4.01 GB"},
        {"codec av1", "av1", 0, 0, "video.codec", MEDIA_REFUSE, "AV1 (av1)"},
        {"codec vp9", "vp9", 0, 0, NULL, MEDIA_PASS, NULL},
        {"audio mp3", "mp3", 0, 0, "video.audio", MEDIA_WARN, "mp3"},
        {"3gp", "3gp", 0, 0, "video.container.3gp", MEDIA_WARN, "3GP"},
        {"avi", "avi", 0, 0, "video.container", MEDIA_REFUSE, "MP4 (recommended), MOV or WebM"},
        {"no video", "novideo", 0, 0, "video.track", MEDIA_REFUSE, "no video track"},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        struct media_info mi = good();
        const char *f = cases[i].field;
        double x = cases[i].value;
        if (!strcmp(f, "fps"))
            mi.fps = x;
        else if (!strcmp(f, "duration"))
            mi.duration = x;
        else if (!strcmp(f, "width"))
            mi.display_width = (int)x;
        else if (!strcmp(f, "height"))
            mi.display_height = (int)x;
        else if (!strcmp(f, "kbps"))
            mi.bit_rate = (int64_t)(x * 1000);
        else if (!strcmp(f, "bytes"))
            mi.size = (uint64_t)x;
        else if (!strcmp(f, "av1") || !strcmp(f, "vp9"))
            snprintf(mi.codec, sizeof mi.codec, "%s", f);
        else if (!strcmp(f, "mp3"))
            snprintf(mi.audio_codec, sizeof mi.audio_codec, "mp3");
        else if (!strcmp(f, "3gp") || !strcmp(f, "avi"))
            snprintf(mi.container, sizeof mi.container, "%s", f);
        else if (!strcmp(f, "novideo"))
            mi.has_video = false;
        struct media_verdict v;
        media_judge(&mi, cases[i].max, &v);
        if (!cases[i].rule) {
            if (v.n != 0)
                fail_msg("%s: expected no finding, got %s", cases[i].what, v.f[0].text);
            continue;
        }
        if (v.n != 1 || strcmp(v.f[0].rule, cases[i].rule) != 0 || v.f[0].level != cases[i].level ||
            !strstr(v.f[0].text, cases[i].says))
            fail_msg("%s: expected one %s saying '%s', got %d: %s", cases[i].what, cases[i].rule,
                     cases[i].says, v.n, v.n ? v.f[0].text : "-");
        assert_int_equal(v.level, cases[i].level);
        char why[600];
        assert_int_equal(media_check_video(&mi, cases[i].max, why, sizeof why),
                         cases[i].level == MEDIA_REFUSE ? -1 : 0);
    }
    /* several rules broken: each named once, refusals before warnings in
     * the text; a refused picture size is not warned about again */
    struct media_info mi = good();
    mi.fps = 15;
    mi.display_width = 300;
    mi.bit_rate = 100000;
    struct media_verdict v;
    media_judge(&mi, 0, &v);
    assert_int_equal(v.n, 3);
    assert_int_equal(v.level, MEDIA_REFUSE);
    char text[1200];
    media_verdict_text(&v, false, text, sizeof text);
    assert_non_null(strstr(text, "15.00 fps"));
    assert_non_null(strstr(text, "300x1920"));
    assert_null(strstr(text, "kbps"));
    media_verdict_text(&v, true, text, sizeof text);
    assert_non_null(strstr(text, "warning: the bit rate is 100 kbps"));
    /* what the sniff alone knows: the probe's rules wait for the probe */
    mi = (struct media_info){.container = "mp4", .mime = "video/mp4", .size = 1000};
    media_judge(&mi, 0, &v);
    assert_int_equal(v.n, 0);
    const struct media_rule_doc *doc;
    assert_true(media_rules_doc(&doc) >= 10);
    assert_string_equal(doc[0].rule, "video.container");
}

static void the_fast_path_refuses_what_is_plainly_not_a_video(void **state)
{
    (void)state;
    struct media_info mi;
    struct tikd_err e = {0};
    static const struct {
        const char *name, *args, *says;
    } cases[] = {
        {"trunc.mp4", "--break truncated", "truncated"},
        {"lying.mp4", "--break lying", "lies about its size"},
        {"zero.mp4", "--break zero", "the file is empty"},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        const char *p = gen(cases[i].name, cases[i].args);
        assert_int_equal(media_sniff(p, &mi, &e), TIKD_EINVAL);
        if (!strstr(e.msg, cases[i].says))
            fail_msg("%s: '%s' does not say '%s'", cases[i].name, e.msg, cases[i].says);
        assert_int_equal(media_probe(p, &mi, &e), TIKD_EINVAL); /* the probe never starts */
    }
    static const struct {
        const char *name;
        const char *bytes;
        size_t n;
        const char *says;
    } heads[] = {
        {"text.mp4", "this is not a video at all, just text", 37, "not a video tikd knows"},
        {"photo.mp4", "\xFF\xD8\xFF\xE0\0\x10JFIF", 10, "a JPEG image, not a video"},
        {"logo.mp4", "\x89PNG\r\n\x1a\n\0\0\0\rIHDR", 16, "a PNG image"},
        {"heic.mp4",
         "\0\0\0\x18"
         "ftypheic\0\0\0\0mif1heic",
         24, "HEIC or AVIF image"},
        {"noboxes.mp4",
         "\0\0\0\x10"
         "ftypisom\0\0\0\0",
         16, "no movie header"},
        {"ebml.mp4", "\x1A\x45\xDF\xA3\x88\x42\x82\x85hello", 14, "of type 'hello', not WebM"},
    };
    for (size_t i = 0; i < sizeof heads / sizeof heads[0]; i++) {
        const char *p = write_file(heads[i].name, heads[i].bytes, heads[i].n);
        assert_int_equal(media_sniff(p, &mi, &e), TIKD_EINVAL);
        if (!strstr(e.msg, heads[i].says))
            fail_msg("%s: '%s' does not say '%s'", heads[i].name, e.msg, heads[i].says);
    }
    /* EBML's DocType names WebM and Matroska apart, whatever the file is called */
    const char *p = write_file("real.mp4", "\x1A\x45\xDF\xA3\x8B\x42\x82\x88matroska", 16);
    assert_int_equal(media_sniff(p, &mi, &e), 0);
    assert_string_equal(mi.container, "matroska");
    assert_null(mi.mime);
    p = write_file("clip.webm", "\x1A\x45\xDF\xA3\x87\x42\x82\x84webm", 12);
    assert_int_equal(media_sniff(p, &mi, &e), 0);
    assert_string_equal(mi.container, "webm");
    assert_string_equal(mi.mime, "video/webm");
    /* a Matroska file needs no probe to be refused */
    p = write_file("real.mp4", "\x1A\x45\xDF\xA3\x8B\x42\x82\x88matroska", 16);
    assert_int_equal(media_probe(p, &mi, &e), 0);
    assert_false(mi.probed);
    char why[600];
    assert_int_equal(media_check_video(&mi, 0, why, sizeof why), -1);
    assert_non_null(strstr(why, "the container is matroska"));
    /* an ftyp box with a 64-bit size: its brand is read after the 16-byte header */
    static const unsigned char large[] = {
        0, 0, 0, 1, 'f', 't', 'y', 'p', 0,   0,   0,   0,   0, 0, 0, 24, 'q', 't', ' ', ' ',
        0, 0, 0, 0, 0,   0,   0,   8,   'm', 'o', 'o', 'v', 0, 0, 0, 8,  'm', 'd', 'a', 't'};
    p = write_file("large.mov", large, sizeof large);
    assert_int_equal(media_sniff(p, &mi, &e), 0);
    assert_string_equal(mi.container, "mov");
    /* ... and one cut inside its 64-bit header */
    p = write_file("cut.mov", large, 12);
    assert_int_equal(media_sniff(p, &mi, &e), TIKD_EINVAL);
    assert_non_null(strstr(e.msg, "truncated"));
    /* a file of tiny boxes built to keep the walk busy: refused at a bound,
     * read a window at a time (not one read per box) */
    size_t nbox = 250000, flen = 24 + nbox * 8 + 16;
    unsigned char *many = calloc(1, flen);
    assert_non_null(many);
    memcpy(many,
           "\0\0\0\x18"
           "ftypqt  \0\0\0\0qt  \0\0\0\0",
           24);
    for (size_t i = 0; i < nbox; i++)
        memcpy(many + 24 + i * 8,
               "\0\0\0\x08"
               "free",
               8);
    memcpy(many + 24 + nbox * 8, "\0\0\0\x08moov\0\0\0\x08mdat", 16);
    p = write_file("many.mov", many, flen);
    free(many);
    double t0 = tu_now();
    assert_int_equal(media_sniff(p, &mi, &e), TIKD_EINVAL);
    assert_non_null(strstr(e.msg, "more than 200000 top-level boxes"));
    assert_true(tu_now() - t0 < 2);
    assert_int_equal(media_sniff("/nonexistent/x.mp4", &mi, &e), TIKD_ENOTFOUND);
    /* a FIFO named as media is refused at once: nothing writes to it, so a
     * blocking open would never return */
    char fifo[600];
    snprintf(fifo, sizeof fifo, "%s/fifo.mp4", dir);
    assert_int_equal(mkfifo(fifo, 0600), 0);
    assert_int_equal(media_probe(fifo, &mi, &e), TIKD_EINVAL);
    assert_non_null(strstr(e.msg, "not a regular file"));
}

static void the_probes_answer_is_read_strictly(void **state)
{
    (void)state;
    struct media_info mi = {0};
    struct tikd_err e = {0};
    const char *ok = "{\"ok\":true,\"demuxer\":\"mov,mp4\",\"duration\":12.5,\"bit_rate\":2000000,"
                     "\"video\":{\"codec\":\"h264\",\"profile\":\"High\",\"width\":1920,"
                     "\"height\":1080,\"rotation\":-90.0,\"fps\":29.97,\"duration\":12.5},"
                     "\"audio\":{\"codec\":\"aac\",\"sample_rate\":48000,\"channels\":2}}";
    assert_int_equal(media_parse_probe(ok, strlen(ok), &mi, &e), 0);
    assert_int_equal(mi.rotation, -90);
    assert_int_equal(mi.display_width, 1080);
    assert_int_equal(mi.display_height, 1920);
    assert_string_equal(mi.profile, "High");
    assert_int_equal(mi.audio_rate, 48000);
    static const char *bad[] = {
        "", "null", "[]", "{\"ok\":1}", "{\"ok\":true,\"ok\":true}", "{\"ok\":tru"};
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        memset(&mi, 0, sizeof mi);
        int rc = media_parse_probe(bad[i], strlen(bad[i]), &mi, &e);
        assert_true(rc != 0);
        assert_false(mi.probed);
    }
    const char *no = "{\"ok\":false,\"error\":\"not a video container tikd can read\"}";
    assert_int_equal(media_parse_probe(no, strlen(no), &mi, &e), TIKD_EINVAL);
    assert_non_null(strstr(e.msg, "not a video container"));
    /* absurd numbers are clamped, never trusted into overflow */
    const char *odd = "{\"ok\":true,\"duration\":1e300,\"video\":{\"codec\":\"h264\","
                      "\"width\":-5,\"height\":1e12,\"fps\":-1,\"rotation\":1e9}}";
    assert_int_equal(media_parse_probe(odd, strlen(odd), &mi, &e), 0);
    assert_true(mi.duration == 0 && mi.width == 0 && mi.height == (1 << 20) && mi.fps == 0);
    assert_int_equal(mi.rotation, 180);
}

/* ---- the probe process, with stand-ins that misbehave ---- */

static const char *script(const char *name, const char *body)
{
    static char path[600];
    snprintf(path, sizeof path, "%s/%s", dir, name);
    FILE *f = fopen(path, "w");
    assert_non_null(f);
    fprintf(f, "#!/bin/sh\n%s\n", body);
    fclose(f);
    assert_int_equal(chmod(path, 0755), 0);
    return path;
}

static bool no_child_left(void)
{
    int status;
    return waitpid(-1, &status, WNOHANG) < 0 && errno == ECHILD;
}

static void a_probe_that_misbehaves_costs_a_bounded_wait(void **state)
{
    (void)state;
    const char *clip = gen("clip.mp4", "--duration 5");
    char clip_path[600];
    snprintf(clip_path, sizeof clip_path, "%s", clip);
    static const struct {
        const char *name, *body;
        int rc;
        const char *says;
    } cases[] = {
        {"hang.sh", "exec sleep 30", TIKD_EIO, "took longer than 1 s"},
        {"hang-child.sh", "sleep 30 & sleep 30", TIKD_EIO, "took longer than 1 s"},
        {"crash.sh", "kill -SEGV $$", TIKD_EINVAL, "crashed on this file (signal 11)"},
        {"cpu.sh", "kill -XCPU $$", TIKD_EINVAL, "used up its CPU time"},
        {"babble.sh", "echo '{\"ok\": tr'", TIKD_EIO, "no answer tikd can read"},
        {"flood.sh", "exec yes '{\"ok\":true}'", TIKD_EIO, "more than 64 KiB"},
        {"silent.sh", "exit 3", TIKD_EIO, "(exit 3) with no answer"},
        {"refuses.sh", "echo '{\"ok\":false,\"error\":\"nope\"}'", TIKD_EINVAL, ": nope"},
        {"liar.sh", "echo '{\"ok\":true,\"demuxer\":\"matroska,webm\"}'", TIKD_EINVAL,
         "libavformat reads it as 'matroska,webm'"},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        media_set_probe_program(script(cases[i].name, cases[i].body), 1);
        struct media_info mi;
        struct tikd_err e = {0};
        double t0 = tu_now();
        int rc = media_probe(clip_path, &mi, &e);
        double took = tu_now() - t0;
        if (rc != cases[i].rc || !strstr(e.msg, cases[i].says))
            fail_msg("%s: rc %d '%s', expected %d '%s'", cases[i].name, rc, e.msg, cases[i].rc,
                     cases[i].says);
        assert_true(took < 5);
        assert_true(no_child_left());
    }
    /* a file read once is not read again until it changes */
    char count[700], body[1400];
    snprintf(count, sizeof count, "%s/count", dir);
    snprintf(body, sizeof body,
             "echo x >> '%s'; echo '{\"ok\":true,\"demuxer\":\"mov,mp4\",\"duration\":5,"
             "\"video\":{\"codec\":\"h264\",\"width\":1080,\"height\":1920,\"fps\":30}}'",
             count);
    media_set_probe_program(script("counting.sh", body), 1);
    for (int i = 0; i < 3; i++) {
        struct media_info mi;
        struct tikd_err e = {0};
        assert_int_equal(media_probe(clip_path, &mi, &e), 0);
        assert_true(mi.probed && mi.duration == 5);
        if (i == 1) { /* changed: read again */
            struct timespec later[2] = {{0, UTIME_OMIT}, {time(NULL) + 5, 0}};
            assert_int_equal(utimensat(AT_FDCWD, clip_path, later, 0), 0);
        }
    }
    struct stat cs;
    assert_int_equal(stat(count, &cs), 0);
    assert_int_equal(cs.st_size, 4); /* "x\n" twice: the first read and the one after the change */
    media_set_probe_program("/nonexistent/tikd-probe", 1);
    struct media_info mi;
    struct tikd_err e = {0};
    assert_int_equal(media_probe(clip_path, &mi, &e), TIKD_EIO);
    /* "cannot run" (exec's error), or its exit 127 where exec fails in the
     * child (valgrind runs posix_spawn as a fork) */
    assert_non_null(strstr(e.msg, "media probe /nonexistent/tikd-probe"));
    media_set_probe_program(NULL, 0);
}

struct got {
    struct ev_loop *loop;
    int calls;
    struct media_info mi;
    struct tikd_err e;
};

static void probed(void *arg, const struct media_info *mi, const struct tikd_err *e)
{
    struct got *g = arg;
    g->calls++;
    g->mi = *mi;
    g->e = *e;
    ev_break(g->loop ? g->loop : ev_default_loop(0), EVBREAK_ALL);
}

/* On the loop: answers come back through it, a stuck probe is killed at
 * its deadline, a cancelled one is killed and reaped at once. */
static void the_loops_probe_never_waits_on_the_loop(void **state)
{
    (void)state;
    struct ev_loop *loop = ev_default_loop(0);
    const char *clip = gen("loop.mp4", "--duration 7");
    char clip_path[600];
    snprintf(clip_path, sizeof clip_path, "%s", clip);
    struct got g = {0};
    struct tikd_err e = {0};
    struct media_probe *p = media_probe_start(loop, clip_path, probed, &g, &e);
    assert_non_null(p);
    assert_int_equal(g.calls, 0); /* never from inside the start */
    ev_run(loop, 0);
    assert_int_equal(g.calls, 1);
    assert_int_equal(g.e.code, 0);
    assert_true(g.mi.probed && g.mi.duration > 6.9 && g.mi.duration < 7.1);
    /* a sniff refusal is delivered the same way */
    memset(&g, 0, sizeof g);
    const char *bad = write_file("bad.mp4", "nope", 4);
    assert_non_null(media_probe_start(loop, bad, probed, &g, &e));
    ev_run(loop, 0);
    assert_int_equal(g.calls, 1);
    assert_int_equal(g.e.code, TIKD_EINVAL);
    /* a probe that hangs: the loop goes on, the probe is killed at 1 s */
    media_set_probe_program(script("hang2.sh", "exec sleep 30"), 1);
    memset(&g, 0, sizeof g);
    double t0 = tu_now();
    assert_non_null(media_probe_start(loop, clip_path, probed, &g, &e));
    ev_run(loop, 0);
    assert_int_equal(g.calls, 1);
    assert_int_equal(g.e.code, TIKD_EIO);
    assert_non_null(strstr(g.e.msg, "took longer than 1 s"));
    assert_true(tu_now() - t0 < 5);
    /* cancelled while it runs: killed and reaped, never called */
    memset(&g, 0, sizeof g);
    p = media_probe_start(loop, clip_path, probed, &g, &e);
    assert_non_null(p);
    media_probe_cancel(p);
    for (int i = 0; i < 200 && !no_child_left(); i++) { /* the loop reaps it */
        ev_run(loop, EVRUN_NOWAIT);
        nanosleep(&(struct timespec){0, 5000000}, NULL);
    }
    assert_int_equal(g.calls, 0);
    assert_true(no_child_left());
    media_set_probe_program(NULL, 0);
    /* another loop (a dry run's): the probe's end is polled for, same answer */
    struct ev_loop *other = ev_loop_new(EVFLAG_AUTO);
    memset(&g, 0, sizeof g);
    g.loop = other;
    assert_non_null(media_probe_start(other, clip_path, probed, &g, &e));
    ev_run(other, 0);
    assert_int_equal(g.calls, 1);
    assert_int_equal(g.e.code, 0);
    assert_true(g.mi.duration > 6.9 && g.mi.duration < 7.1);
    assert_true(no_child_left());
    ev_loop_destroy(other);
}

/* Random corruptions of a good file never crash the fast path (ASan would
 * say) and never pass as something they are not; a few go through the
 * real probe as well. */
static void fuzzed_files_fail_cleanly(void **state)
{
    (void)state;
    const char *p = gen("seed.mp4", "--mdat-bytes 2000");
    FILE *f = fopen(p, "rb");
    unsigned char orig[8192];
    size_t n = fread(orig, 1, sizeof orig, f);
    fclose(f);
    char q[600];
    snprintf(q, sizeof q, "%s/fuzz.mp4", dir);
    srand(7);
    for (int round = 0; round < 2000; round++) {
        unsigned char buf[8192];
        memcpy(buf, orig, n);
        for (int k = 0; k < 1 + round % 8; k++)
            buf[rand() % (int)n] = (unsigned char)rand();
        size_t len = round % 5 == 0 ? (size_t)rand() % n : n;
        f = fopen(q, "wb");
        fwrite(buf, 1, len, f);
        fclose(f);
        struct media_info mi;
        struct tikd_err e = {0};
        int rc = round % 100 == 0 ? media_probe(q, &mi, &e) : media_sniff(q, &mi, &e);
        assert_true(rc == 0 || rc == TIKD_EINVAL || rc == TIKD_EIO);
        if (rc == 0)
            assert_true(mi.container[0] != '\0');
    }
}

int main(void)
{
    dir = tu_tmpdir();
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(good_files_through_the_real_probe),
        cmocka_unit_test(every_rule_at_its_bounds),
        cmocka_unit_test(the_fast_path_refuses_what_is_plainly_not_a_video),
        cmocka_unit_test(the_probes_answer_is_read_strictly),
        cmocka_unit_test(a_probe_that_misbehaves_costs_a_bounded_wait),
        cmocka_unit_test(the_loops_probe_never_waits_on_the_loop),
        cmocka_unit_test(fuzzed_files_fail_cleanly),
    };
    int rc = cmocka_run_group_tests_name("media", tests, NULL, NULL);
    tu_rmrf(dir);
    free(dir);
    return rc;
}
