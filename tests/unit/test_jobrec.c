/* test_jobrec.c - a job's stored form: every field survives the round trip
 * at its extremes, an empty job is a few bytes, an older tikd's JSON record
 * reads as it did, unknown fields are skipped, a record read over a used
 * struct leaves nothing of it, and no truncated or damaged record is read
 * past its end (run under ASan by `make sanitize`). */
#include "testutil.h"

#include "../../core/jobrec.h"

#include <stdlib.h>
#include <string.h>

static void fill_str(char *s, size_t n, char c)
{
    memset(s, c, n - 1);
    s[n - 1] = '\0';
}

/* Every stored field set, strings at their longest. */
static void full_job(struct job *j)
{
    memset(j, 0, sizeof *j);
    j->id = UINT64_MAX - 7;
    fill_str(j->account, sizeof j->account, 'a');
    j->mode = JOB_DRAFT;
    j->kind = JOB_PHOTO;
    fill_str(j->media, sizeof j->media, 'm');
    fill_str(j->media_hash, sizeof j->media_hash, 'h');
    fill_str(j->images, sizeof j->images, 'i');
    j->cover_index = 34;
    fill_str(j->description, sizeof j->description, 'd');
    fill_str(j->mime, sizeof j->mime, 'y');
    fill_str(j->caption, sizeof j->caption, 'c');
    fill_str(j->privacy, sizeof j->privacy, 'p');
    j->opt = (struct job_options){true, true, true, true, true, true, -1, true};
    fill_str(j->chosen_by, sizeof j->chosen_by, 'b');
    fill_str(j->tenant, sizeof j->tenant, 't');
    fill_str(j->libs, sizeof j->libs, 'l');
    j->state = JOB_UNSURE;
    fill_str(j->reason, sizeof j->reason, 'r');
    j->due_at = 1767225600.125;
    j->created_at = 1.5e9;
    j->updated_at = -3.25;
    j->processing_deadline = 1e300;
    j->planned_at = 2e9 + 0.001;
    j->attempts = INT32_MAX;
    j->init_sent_at = 7;
    j->slot_at = 8.5;
    j->spent_at = 9.75;
    j->booked_slot = 10;
    fill_str(j->publish_id, sizeof j->publish_id, 'P');
    fill_str(j->upload_url, sizeof j->upload_url, 'u');
    j->upload_url_at = 11;
    j->plan = (struct chunk_plan){4000000000ull * 1000, 10000000, UINT32_MAX};
    j->chunks_done = 399;
    fill_str(j->post_ids, sizeof j->post_ids, '7');
    j->watch_until = 12;
    j->orphans = -2;
    fill_str(j->fail_reason, sizeof j->fail_reason, 'f');
    fill_str(j->log_id, sizeof j->log_id, 'L');
    fill_str(j->origin, sizeof j->origin, 'o');
    j->imported_at = 13.5;
    fill_str(j->key_scope, sizeof j->key_scope, 's');
    fill_str(j->key, sizeof j->key, 'k');
    struct media_info *m = &j->probe;
    m->probed = true;
    snprintf(m->container, sizeof m->container, "mp4");
    m->mime = media_mime_of(m->container);
    m->size = UINT64_MAX;
    m->dev = 64769;
    m->ino = 1ull << 40;
    m->mtime_ns = INT64_MIN;
    m->ctime_ns = INT64_MAX;
    m->has_video = m->has_audio = true;
    fill_str(m->codec, sizeof m->codec, 'C');
    fill_str(m->profile, sizeof m->profile, 'F');
    m->width = 4096;
    m->height = 2160;
    m->display_width = 2160;
    m->display_height = 4096;
    m->rotation = -90;
    m->fps = 59.94;
    m->duration = 600.0;
    m->bit_rate = -1;
    m->video_bit_rate = 5000000;
    fill_str(m->audio_codec, sizeof m->audio_codec, 'A');
}

/* a and b hold the same job: they write the same record (the bytes after a
 * big text field's NUL are not part of a decoded job) */
static void assert_same_job(const struct job *a, const struct job *b)
{
    unsigned char *ra, *rb;
    size_t na, nb;
    assert_int_equal(jobrec_encode(a, &ra, &na), 0);
    assert_int_equal(jobrec_encode(b, &rb, &nb), 0);
    assert_int_equal(na, nb);
    assert_memory_equal(ra, rb, na);
    free(ra);
    free(rb);
}

static void every_field_survives_the_round_trip(void **state)
{
    (void)state;
    struct job *in = malloc(sizeof *in), *out = malloc(sizeof *out);
    full_job(in);
    unsigned char *rec;
    size_t n;
    assert_int_equal(jobrec_encode(in, &rec, &n), 0);
    assert_int_equal(jobrec_decode(rec, n, out), 0);
    assert_true(out->probe.mime == in->probe.mime);
    assert_memory_equal(in, out, sizeof *in);
    free(rec);
    free(in);
    free(out);
}

static void an_empty_job_is_a_few_bytes(void **state)
{
    (void)state;
    struct job *j = calloc(1, sizeof *j), *out = malloc(sizeof *out);
    j->id = 5;
    snprintf(j->account, sizeof j->account, "alice");
    unsigned char *rec;
    size_t n;
    assert_int_equal(jobrec_encode(j, &rec, &n), 0);
    assert_true(n <= 2 + 2 + 7); /* mark, id, account */
    assert_int_equal(jobrec_decode(rec, n, out), 0);
    assert_int_equal(out->id, 5);
    assert_string_equal(out->account, "alice");
    assert_int_equal(out->state, JOB_SCHEDULED);
    assert_false(out->probe.probed);
    free(rec);
    free(j);
    free(out);
}

static void an_older_tikds_json_reads_as_before(void **state)
{
    (void)state;
    static const char rec[] =
        "{\"id\":42,\"account\":\"bob\",\"mode\":\"draft\",\"kind\":\"video\",\"media\":\"/m/"
        "a.mp4\","
        "\"images\":\"\",\"media_hash\":\"ab\",\"cover_index\":0,\"description\":\"\","
        "\"init_sent_at\":0.0,\"slot_at\":0.0,\"spent_at\":1.5,\"booked_slot\":0.0,"
        "\"mime\":\"video/mp4\",\"probe\":{\"container\":\"mp4\",\"size\":1000,\"duration\":"
        "12.5,\"width\":720,\"height\":1280},\"caption\":\"hi\",\"privacy\":\"SELF_ONLY\","
        "\"options\":{\"disable_comment\":true,\"cover_ms\":-1},\"chosen_by\":\"operator\","
        "\"state\":\"processing\",\"reason\":\"\",\"due_at\":100.25,\"attempts\":1,"
        "\"publish_id\":\"v_pub_1\",\"plan\":{\"size\":1000,\"chunk_size\":1000,\"count\":1},"
        "\"chunks_done\":1,\"post_ids\":\"\",\"fail_reason\":\"\",\"log_id\":\"\"}";
    struct job *j = malloc(sizeof *j);
    assert_int_equal(jobrec_decode(rec, sizeof rec - 1, j), 0);
    assert_int_equal(j->id, 42);
    assert_string_equal(j->account, "bob");
    assert_int_equal(j->mode, JOB_DRAFT);
    assert_int_equal(j->state, JOB_PROCESSING);
    assert_true(j->probe.probed);
    assert_true(j->probe.duration == 12.5);
    assert_string_equal(j->probe.mime, "video/mp4");
    assert_true(j->opt.disable_comment);
    assert_int_equal(j->opt.cover_ms, -1);
    assert_true(j->due_at == 100.25);
    assert_int_equal(j->plan.count, 1);
    assert_string_equal(j->publish_id, "v_pub_1");
    /* and what it reads is written back in the new form, the same */
    unsigned char *bin;
    size_t n;
    struct job *again = malloc(sizeof *again);
    assert_int_equal(jobrec_encode(j, &bin, &n), 0);
    assert_true(n < sizeof rec / 3);
    assert_int_equal(jobrec_decode(bin, n, again), 0);
    assert_same_job(j, again);
    assert_string_equal(again->caption, "hi");
    assert_string_equal(again->media, "/m/a.mp4");
    free(bin);
    free(j);
    free(again);
}

/* The pipeline reads each step's record into the struct the last step used:
 * whatever that held, a field the record leaves out reads as empty or zero. */
static void a_record_read_over_a_used_struct_leaves_nothing_of_it(void **state)
{
    (void)state;
    struct job *small = calloc(1, sizeof *small), *clean = calloc(1, sizeof *clean);
    struct job *used = malloc(sizeof *used);
    small->id = 11;
    snprintf(small->account, sizeof small->account, "carol");
    snprintf(small->caption, sizeof small->caption, "short");
    unsigned char *rec;
    size_t n;
    assert_int_equal(jobrec_encode(small, &rec, &n), 0);
    assert_int_equal(jobrec_decode(rec, n, clean), 0);
    full_job(used); /* every field set, every text at its longest */
    assert_int_equal(jobrec_decode(rec, n, used), 0);
    assert_same_job(clean, used);
    assert_string_equal(used->caption, "short");
    assert_string_equal(used->media, "");
    assert_string_equal(used->images, "");
    assert_string_equal(used->description, "");
    assert_string_equal(used->reason, "");
    assert_string_equal(used->upload_url, "");
    assert_string_equal(used->privacy, "");
    assert_false(used->probe.probed);
    assert_int_equal(used->plan.count, 0);
    assert_true(used->due_at == 0);
    memset(used, 0xa5, sizeof *used); /* and over bytes no struct ever held */
    assert_int_equal(jobrec_decode(rec, n, used), 0);
    assert_same_job(clean, used);
    assert_int_equal(used->state, JOB_SCHEDULED);
    assert_false(used->opt.disable_comment);
    free(rec);
    free(small);
    free(clean);
    free(used);
}

static void unknown_fields_are_skipped(void **state)
{
    (void)state;
    struct job *j = calloc(1, sizeof *j), *out = malloc(sizeof *out);
    j->id = 9;
    j->state = JOB_PUBLISHED;
    unsigned char *rec;
    size_t n;
    assert_int_equal(jobrec_encode(j, &rec, &n), 0);
    /* a newer tikd's fields: number 1000 as bytes, 1001 as a varint, 1002 fixed64 */
    unsigned char more[] = {0xc2, 0x3e, 3, 'x', 'y', 'z', 0xc8, 0x3e, 0xff, 0x01,
                            0xd1, 0x3e, 1, 2,   3,   4,   5,    6,    7,    8};
    unsigned char *big = malloc(n + sizeof more);
    memcpy(big, rec, n);
    memcpy(big + n, more, sizeof more);
    assert_int_equal(jobrec_decode(big, n + sizeof more, out), 0);
    assert_int_equal(out->id, 9);
    assert_int_equal(out->state, JOB_PUBLISHED);
    free(big);
    free(rec);
    free(j);
    free(out);
}

static void damaged_records_are_refused_never_overread(void **state)
{
    (void)state;
    struct job *j = malloc(sizeof *j), *out = malloc(sizeof *out);
    full_job(j);
    unsigned char *rec;
    size_t n;
    assert_int_equal(jobrec_encode(j, &rec, &n), 0);
    /* every prefix, each in a buffer of exactly its size (ASan sees an overread) */
    for (size_t len = 0; len < n; len += len < 64 ? 1 : 97) {
        unsigned char *cut = malloc(len ? len : 1);
        memcpy(cut, rec, len);
        int rc = jobrec_decode(cut, len, out);
        assert_true(rc == 0 || rc == TIKD_ECORRUPT);
        free(cut);
    }
    /* bytes flipped anywhere */
    srand(7);
    for (int round = 0; round < 2000; round++) {
        unsigned char *bad = malloc(n);
        memcpy(bad, rec, n);
        for (int k = 0; k < 3; k++)
            bad[2 + (size_t)rand() % (n - 2)] = (unsigned char)rand();
        int rc = jobrec_decode(bad, n, out);
        assert_true(rc == 0 || rc == TIKD_ECORRUPT);
        if (rc == 0)
            assert_true(out->state <= JOB_UNSURE);
        free(bad);
    }
    static const unsigned char endless[] = {0xa7, 0x01, 0x08, 0xff, 0xff, 0xff, 0xff, 0xff,
                                            0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x01};
    assert_int_equal(jobrec_decode(endless, sizeof endless, out), TIKD_ECORRUPT);
    assert_int_equal(jobrec_decode("", 0, out), TIKD_ECORRUPT);
    assert_int_equal(jobrec_decode("{not json", 9, out), TIKD_ECORRUPT);
    assert_int_equal(jobrec_decode("\xa7\x01", 2, out), TIKD_ECORRUPT); /* no id */
    free(rec);
    free(j);
    free(out);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(every_field_survives_the_round_trip),
        cmocka_unit_test(an_empty_job_is_a_few_bytes),
        cmocka_unit_test(an_older_tikds_json_reads_as_before),
        cmocka_unit_test(a_record_read_over_a_used_struct_leaves_nothing_of_it),
        cmocka_unit_test(unknown_fields_are_skipped),
        cmocka_unit_test(damaged_records_are_refused_never_overread),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
