/* test_post.c - the one planner: the checks (a draft refuses what TikTok's
 * inbox init cannot carry, a missing file is named), the content ledger
 * under any name and account, keys that plan once, the approval gate; the
 * operator's decisions giving back what a job held (its init slot); an
 * account removed cancelling every job of its own and none of another's;
 * before_publish decisions applied; and the schema step that indexes jobs
 * stored before the job index existed. */
#include "testutil.h"

#include "../../core/account.h"
#include "../../core/budget.h"
#include "../../core/clock.h"
#include "../../core/post.h"
#include "../../core/store.h"

static char *dir;
static struct store *st;
static struct rl_config limits;
static struct tu_logcap cap;

static struct store *open_db(void)
{
    char path[600];
    snprintf(path, sizeof path, "%s/db", dir);
    struct store_opts o = {path, 1 << 20, 64 << 20, false};
    struct store *s;
    struct tikd_err e = {0};
    if (store_open(&s, &o, &e) != 0)
        fail_msg("store_open: %s", e.msg);
    return s;
}

static int add_account_txn(struct store_txn *t, void *ctx)
{
    struct account a;
    account_init(&a, ctx, clock_now());
    a.state = ACCT_ACTIVE;
    return account_put(t, &a);
}

static int setup(void **state)
{
    (void)state;
    dir = tu_tmpdir();
    tu_logcap_start(&cap);
    st = open_db();
    clock_set_virtual(1800000000);
    rl_config_default(&limits);
    assert_int_equal(store_write(st, add_account_txn, "alice", NULL), 0);
    assert_int_equal(store_write(st, add_account_txn, "bob", NULL), 0);
    return 0;
}

static int teardown(void **state)
{
    (void)state;
    clock_set_source(NULL);
    tu_logcap_stop(&cap);
    store_close(st);
    tu_rmrf(dir);
    free(dir);
    return 0;
}

/* A real MP4 container (tests/fixtures/mkmp4.py: it passes the media
 * probe) whose last media bytes are `content`: the same content, the same
 * file, whatever its name. */
static const char *media(const char *name, const char *content)
{
    static char path[8][600];
    static int n;
    static unsigned char base[8192];
    static size_t len;
    if (!len) {
        char cmd[1200];
        snprintf(cmd, sizeof cmd,
                 "/usr/bin/python3 tests/fixtures/mkmp4.py '%s/base.mp4' --size 720x1280 "
                 "--duration 5 --mdat-bytes 4096",
                 dir);
        assert_int_equal(system(cmd), 0);
        snprintf(cmd, sizeof cmd, "%s/base.mp4", dir);
        FILE *f = fopen(cmd, "rb");
        assert_non_null(f);
        len = fread(base, 1, sizeof base, f);
        fclose(f);
        assert_true(len > 4096 && len < sizeof base);
    }
    char *p = path[n++ % 8];
    snprintf(p, 600, "%s/%s", dir, name);
    unsigned char buf[sizeof base];
    size_t cl = strlen(content);
    memcpy(buf, base, len);
    memcpy(buf + len - cl, content, cl);
    FILE *f = fopen(p, "wb");
    assert_non_null(f);
    assert_int_equal(fwrite(buf, 1, len, f), len);
    fclose(f);
    return p;
}

static struct job *video(const char *account, const char *path)
{
    struct job *j = calloc(1, sizeof *j);
    snprintf(j->account, sizeof j->account, "%s", account);
    snprintf(j->media, sizeof j->media, "%s", path);
    snprintf(j->privacy, sizeof j->privacy, "SELF_ONLY");
    snprintf(j->chosen_by, sizeof j->chosen_by, "operator");
    j->opt.cover_ms = -1;
    return j;
}

/* Plan j (freed); the planner's code, with r filled. */
static int plan(struct job *j, struct post_req *r)
{
    r->j = j;
    struct tikd_err e = {0};
    int rc = post_plan(st, r, &e);
    free(j);
    return rc;
}

/* Media TikTok's rules refuse is refused when the post is planned, with
 * the rule, on every path (this is the one planner), and the queue never
 * holds it; an approval holds only a post whose media passed. */
static void videos_tiktok_would_refuse_never_enter_the_queue(void **state)
{
    (void)state;
    struct post_req r = {0};
    tu_write(dir, "random.mp4", "\x13\x37 sixty-four kibibytes of noise, in spirit");
    char noise[600], longer[600], cmd[1400];
    snprintf(noise, sizeof noise, "%s/random.mp4", dir);
    assert_int_equal(plan(video("alice", noise), &r), TIKD_EINVAL);
    assert_true(r.invalid);
    assert_non_null(strstr(r.problem, "not a video tikd knows"));
    snprintf(longer, sizeof longer, "%s/long.mp4", dir);
    snprintf(cmd, sizeof cmd,
             "/usr/bin/python3 tests/fixtures/mkmp4.py '%s' --duration 601 --fps 15", longer);
    assert_int_equal(system(cmd), 0);
    r = (struct post_req){.approval = true};
    assert_int_equal(plan(video("alice", longer), &r), TIKD_EINVAL);
    assert_true(r.invalid);
    assert_int_equal(r.media.level, MEDIA_REFUSE);
    assert_non_null(strstr(r.problem, "(video.duration.max)"));
    assert_non_null(strstr(r.problem, "(video.fps)")); /* every rule it breaks */
    struct job j;
    assert_int_equal(job_read(st, 1, &j), TIKD_ENOTFOUND);
    /* a clip that passes, with a warning to show (its made-up bit rate) */
    r = (struct post_req){.approval = true};
    assert_int_equal(plan(video("alice", media("fine.mp4", "fine")), &r), 0);
    assert_int_equal(r.media.level, MEDIA_WARN);
    assert_string_equal(r.media.f[0].rule, "video.bitrate");
}

static void drafts_refuse_what_they_cannot_carry(void **state)
{
    (void)state;
    struct job *j = video("alice", media("v.mp4", "video bytes"));
    j->mode = JOB_DRAFT;
    j->privacy[0] = '\0';
    snprintf(j->caption, sizeof j->caption, "a caption is fine");
    char why[2000];
    assert_int_equal(post_validate(j, why, sizeof why), 0);
    j->opt.is_aigc = j->opt.disable_duet = true;
    j->opt.cover_ms = 0;
    assert_int_equal(post_validate(j, why, sizeof why), 3);
    assert_non_null(strstr(why, "a video draft cannot carry is_aigc (--aigc)"));
    assert_non_null(strstr(why, "a video draft cannot carry disable_duet (--disable-duet)"));
    assert_non_null(strstr(why, "a video draft cannot carry cover_ms (--cover-ms)"));
    j->mode = JOB_DIRECT;
    snprintf(j->privacy, sizeof j->privacy, "SELF_ONLY");
    assert_int_equal(post_validate(j, why, sizeof why), 0); /* a direct post carries them */
    j->opt.auto_add_music = true;
    assert_int_equal(post_validate(j, why, sizeof why), 1);
    assert_non_null(strstr(why, "a video post cannot carry auto_music"));
    free(j);
    struct post_req r = {0};
    assert_int_equal(plan(video("alice", "/nonexistent/clip.mp4"), &r), TIKD_EINVAL);
    assert_non_null(strstr(r.problem, "the media file /nonexistent/clip.mp4 does not exist"));
}

static void the_same_content_is_refused_under_any_name(void **state)
{
    (void)state;
    struct post_req r = {0};
    assert_int_equal(plan(video("alice", media("a.mp4", "same bytes")), &r), 0);
    uint64_t first = 1;
    assert_int_equal(plan(video("alice", media("renamed.mp4", "same bytes")), &r), TIKD_EEXIST);
    assert_int_equal(r.same_as, first);
    assert_non_null(strstr(r.problem, "alice already has this content as job 1 (scheduled)"));
    /* another account may post it; asked again, this one may too */
    assert_int_equal(plan(video("bob", media("b.mp4", "same bytes")), &r), 0);
    r = (struct post_req){.again = true};
    assert_int_equal(plan(video("alice", media("c.mp4", "same bytes")), &r), 0);
    r = (struct post_req){0};
    assert_int_equal(plan(video("nobody", media("d.mp4", "other")), &r), TIKD_ENOTFOUND);
    assert_non_null(strstr(r.problem, "no such account: nobody"));
}

static void a_key_plans_once(void **state)
{
    (void)state;
    struct post_req r = {.key_scope = "rules/a.lua", .key = "k1"};
    assert_int_equal(plan(video("alice", media("k.mp4", "keyed")), &r), 0);
    assert_false(r.existing);
    /* the same key: the same job, even when the post would now be refused */
    r = (struct post_req){.key_scope = "rules/a.lua", .key = "k1"};
    struct job *j = video("alice", "/gone.mp4");
    r.j = j;
    struct tikd_err e = {0};
    assert_int_equal(post_plan(st, &r, &e), 0);
    assert_true(r.existing);
    assert_int_equal(j->id, 1);
    free(j);
    /* another rule file's key of the same name is its own */
    r = (struct post_req){.key_scope = "rules/b.lua", .key = "k1", .again = true};
    assert_int_equal(plan(video("alice", media("k.mp4", "keyed")), &r), 0);
    assert_false(r.existing);
}

static void approval_holds_until_a_deadline(void **state)
{
    (void)state;
    struct post_req r = {.approval = true, .at = clock_now() + 3600};
    struct job *j = video("alice", media("ap.mp4", "to approve"));
    r.j = j;
    struct tikd_err e = {0};
    assert_int_equal(post_plan(st, &r, &e), 0);
    assert_int_equal(j->state, JOB_AWAITING_APPROVAL);
    assert_true(j->planned_at == clock_now() + 3600);
    assert_true(j->due_at == clock_now() + 3600 + 86400);
    free(j);
    r = (struct post_req){.approval = true, .deadline = clock_now() - 1};
    assert_int_equal(plan(video("alice", media("ap2.mp4", "late")), &r), TIKD_EINVAL);
    assert_non_null(strstr(r.problem, "already past"));
}

/* ---- decisions ------------------------------------------------------------------ */

struct hold {
    uint64_t id;
    struct rl_view v;
    struct post_changed out;
    int n;
};

/* Reserve job id's init slot, as the pipeline does before an init. */
static int reserve_txn(struct store_txn *t, void *ctx)
{
    struct hold *h = ctx;
    struct job j;
    int rc = job_get(t, h->id, &j);
    enum rl_budget bs[4], which;
    int n = budget_of_init(&j, bs);
    double at;
    if (rc == 0)
        rc = rl_reserve(t, &limits, j.account, bs, n, clock_now(), &at, &which);
    j.slot_at = at;
    return rc ? rc : job_put(t, &j);
}

static int view_txn(struct store_txn *t, void *ctx)
{
    struct hold *h = ctx;
    return rl_view(t, &limits, "alice", RL_DAILY_POSTS, clock_now(), &h->v);
}

static int cancel_txn(struct store_txn *t, void *ctx)
{
    struct hold *h = ctx;
    return post_change(t, &limits, h->id, POST_CANCEL, "operator", &h->out);
}

static int remove_txn(struct store_txn *t, void *ctx)
{
    struct hold *h = ctx;
    return post_cancel_account(t, &limits, "alice", "operator", &h->n);
}

static void cancelling_gives_the_init_slot_back(void **state)
{
    (void)state;
    struct post_req r = {0};
    assert_int_equal(plan(video("alice", media("s1.mp4", "one")), &r), 0);
    assert_int_equal(plan(video("alice", media("s2.mp4", "two")), &r), 0);
    assert_int_equal(plan(video("bob", media("s3.mp4", "three")), &r), 0);
    struct hold h = {.id = 1};
    assert_int_equal(store_write(st, reserve_txn, &h, NULL), 0);
    h.id = 2;
    assert_int_equal(store_write(st, reserve_txn, &h, NULL), 0);
    /* the caps count the two slots held (in use now, or reserved ahead) */
    assert_int_equal(store_read(st, view_txn, &h, NULL), 0);
    assert_true(h.v.used + h.v.reserved == 2);
    h.id = 1; /* tikd job cancel */
    assert_int_equal(store_write(st, cancel_txn, &h, NULL), 0);
    assert_string_equal(h.out.msg, "job 1 cancelled");
    assert_int_equal(store_read(st, view_txn, &h, NULL), 0);
    assert_true(h.v.used + h.v.reserved == 1);
    /* an account removed: the same path, for every job of its own */
    assert_int_equal(store_write(st, remove_txn, &h, NULL), 0);
    assert_int_equal(h.n, 1);
    assert_int_equal(store_read(st, view_txn, &h, NULL), 0);
    assert_true(h.v.used + h.v.reserved == 0);
    struct job j;
    assert_int_equal(job_read(st, 2, &j), 0);
    assert_int_equal(j.state, JOB_CANCELLED);
    assert_string_equal(j.reason, "cancelled: account alice was removed");
    assert_int_equal(job_read(st, 3, &j), 0);
    assert_int_equal(j.state, JOB_SCHEDULED); /* bob's */
}

static int retry_txn(struct store_txn *t, void *ctx)
{
    struct hold *h = ctx;
    int rc = post_change(t, &limits, h->id, POST_RETRY, "operator", &h->out);
    return rc == TIKD_EINVAL ? 0 : rc; /* refused: nothing to commit, the message says why */
}

static void a_retry_is_refused_what_a_new_plan_would_be(void **state)
{
    (void)state;
    struct post_req r = {0};
    assert_int_equal(plan(video("alice", media("r1.mp4", "retried")), &r), 0);
    struct hold h = {.id = 1};
    assert_int_equal(store_write(st, cancel_txn, &h, NULL), 0);
    /* cancelled: the content is free again, and planned anew */
    r = (struct post_req){0};
    assert_int_equal(plan(video("alice", media("r2.mp4", "retried")), &r), 0);
    assert_int_equal(store_write(st, retry_txn, &h, NULL), 0);
    assert_non_null(strstr(h.out.msg, "planned or posted again as job 2 (scheduled)"));
    struct job j;
    assert_int_equal(job_read(st, 1, &j), 0);
    assert_int_equal(j.state, JOB_CANCELLED); /* unchanged */
}

static void before_publish_decisions_apply(void **state)
{
    (void)state;
    struct job *j = video("alice", media("d.mp4", "decided"));
    char why[2400];
    struct post_decision d = {.caption = "new words"};
    snprintf(d.chosen_by, sizeof d.chosen_by, "rule:rules/x.lua@gen3");
    snprintf(d.privacy, sizeof d.privacy, "PUBLIC_TO_EVERYONE");
    assert_int_equal(post_decide(j, &d, clock_now(), why, sizeof why), POST_CHANGED);
    assert_string_equal(j->caption, "new words");
    assert_string_equal(j->privacy, "PUBLIC_TO_EVERYONE");
    assert_string_equal(j->chosen_by, "rule:rules/x.lua@gen3");
    snprintf(d.privacy, sizeof d.privacy, "EVERYONE");
    assert_int_equal(post_decide(j, &d, clock_now(), why, sizeof why), POST_INVALID);
    assert_non_null(strstr(why, "before_publish of rule:rules/x.lua@gen3 made the post invalid"));
    struct post_decision later = {.defer = 90};
    snprintf(later.reason, sizeof later.reason, "quiet");
    assert_int_equal(post_decide(j, &later, clock_now(), why, sizeof why), POST_DEFERRED);
    assert_true(j->due_at == clock_now() + 90);
    struct post_decision none = {0};
    assert_int_equal(post_decide(j, &none, clock_now(), why, sizeof why), POST_GO);
    free(j);
}

/* ---- the schema step ---------------------------------------------------------------- */

static int each_del(struct store_val k, struct store_val v, void *ctx)
{
    (void)v;
    struct {
        unsigned char k[512][400];
        size_t n[512];
        int count;
    } *keys = ctx;
    if (keys->count < 512 && k.n <= 400) {
        memcpy(keys->k[keys->count], k.p, k.n);
        keys->n[keys->count++] = k.n;
    }
    return 0;
}

/* What a tikd before the job index wrote: schema 1 and no index. */
static int unindex_txn(struct store_txn *t, void *ctx)
{
    (void)ctx;
    struct {
        unsigned char k[512][400];
        size_t n[512];
        int count;
    } *keys = calloc(1, sizeof *keys);
    int rc = store_foreach(t, STORE_DB_INDEX, NULL, 0, each_del, keys);
    for (int i = 0; rc >= 0 && i < keys->count; i++)
        rc = store_del(t, STORE_DB_INDEX, keys->k[i], keys->n[i]);
    free(keys);
    unsigned char v1[4] = {0, 0, 0, 1};
    return rc < 0 ? rc : store_put(t, STORE_DB_META, "schema_version", 14, v1, 4);
}

struct found {
    uint64_t id;
    int rc;
};

static int find_txn(struct store_txn *t, void *ctx)
{
    struct found *f = ctx;
    struct job j;
    int rc = job_get(t, 1, &j);
    f->rc = rc ? rc : job_find_content(t, "alice", j.media_hash, &f->id, NULL);
    return 0;
}

static void the_schema_step_indexes_old_jobs(void **state)
{
    (void)state;
    struct post_req r = {0};
    assert_int_equal(plan(video("alice", media("old.mp4", "old job")), &r), 0);
    assert_int_equal(store_write(st, unindex_txn, NULL, NULL), 0);
    struct found f = {0};
    assert_int_equal(store_read(st, find_txn, &f, NULL), 0);
    assert_int_equal(f.rc, TIKD_ENOTFOUND); /* no index: the ledger cannot see it */
    store_close(st);
    st = open_db();
    assert_int_equal(store_read(st, find_txn, &f, NULL), 0);
    assert_int_equal(f.rc, 0);
    assert_int_equal(f.id, 1);
    assert_int_equal(plan(video("alice", media("copy.mp4", "old job")), &r), TIKD_EEXIST);
}

/* ---- a corrupt record ---------------------------------------------------------------- */

static int corrupt_txn(struct store_txn *t, void *ctx)
{
    (void)ctx;
    unsigned char k[8];
    store_be64_put(k, 1);
    return store_put(t, STORE_DB_JOBS, k, 8, "{not json", 9);
}

struct walk_seen {
    uint64_t ids[4], bad[4];
    int n, nbad;
};

static int seen_one(const struct job *j, void *ctx)
{
    struct walk_seen *w = ctx;
    if (w->n < 4)
        w->ids[w->n++] = j->id;
    return 0;
}

static void seen_bad(uint64_t id, void *ctx)
{
    struct walk_seen *w = ctx;
    if (w->nbad < 4)
        w->bad[w->nbad++] = id;
}

static int walk_all_txn(struct store_txn *t, void *ctx)
{
    return job_foreach_all(t, seen_one, seen_bad, ctx);
}

static int walk_txn(struct store_txn *t, void *ctx)
{
    return job_foreach(t, seen_one, ctx);
}

/* `tikd queue` shows every readable job and names the one it cannot read. */
static void a_corrupt_record_is_named_and_skipped(void **state)
{
    (void)state;
    struct post_req r = {0};
    assert_int_equal(plan(video("alice", media("a.mp4", "first")), &r), 0);
    assert_int_equal(plan(video("alice", media("b.mp4", "second")), &r), 0);
    assert_int_equal(store_write(st, corrupt_txn, NULL, NULL), 0);
    struct walk_seen w = {0};
    assert_int_equal(store_read(st, walk_all_txn, &w, NULL), 0);
    assert_int_equal(w.n, 1);
    assert_int_equal(w.ids[0], 2);
    assert_int_equal(w.nbad, 1);
    assert_int_equal(w.bad[0], 1);
    memset(&w, 0, sizeof w);
    assert_int_equal(store_read(st, walk_txn, &w, NULL), TIKD_ECORRUPT);
}

/* Post ids are text, exact past 2^53, each once, digits only. */
static void post_ids_are_kept_exact_and_once(void **state)
{
    (void)state;
    struct job *j = calloc(1, sizeof *j);
    assert_int_equal(job_add_post_id(j, "7400000000000000123"), 1);
    assert_int_equal(job_add_post_id(j, "7400000000000000123"), 0);
    assert_int_equal(job_add_post_id(j, "740000000000000012"), 1); /* a prefix is another id */
    assert_int_equal(job_add_post_id(j, "12a"), 0);
    assert_int_equal(job_add_post_id(j, ""), 0);
    assert_int_equal(job_add_post_id(j, "9007199254740993"), 1); /* 2^53 + 1 */
    assert_string_equal(j->post_ids, "7400000000000000123,740000000000000012,9007199254740993");
    free(j);
}

struct due_seen {
    uint64_t ids[8];
    int n;
};

static int due_one(uint64_t id, double due, void *ctx)
{
    (void)due;
    struct due_seen *d = ctx;
    if (d->n < 8)
        d->ids[d->n++] = id;
    return 0;
}

static int due_txn(struct store_txn *t, void *ctx)
{
    return job_foreach_due(t, 1e18, due_one, ctx);
}

struct put_one {
    uint64_t id;
    void (*change)(struct job *j);
};

static int change_txn(struct store_txn *t, void *ctx)
{
    struct put_one *p = ctx;
    struct job j;
    int rc = job_get(t, p->id, &j);
    if (rc == 0) {
        p->change(&j);
        rc = job_put(t, &j);
    }
    return rc;
}

static void publish_watching(struct job *j)
{
    j->state = JOB_PUBLISHED;
    j->watch_until = clock_now() + 3600;
    j->due_at = clock_now() + 2;
}

static void publish_done(struct job *j)
{
    j->watch_until = 0;
}

static void pause_it(struct job *j)
{
    j->state = JOB_DEFERRED;
    j->due_at = clock_now() + 600;
}

static int wake_txn(struct store_txn *t, void *ctx)
{
    return job_wake_account(t, ctx);
}

static double due_of(uint64_t id)
{
    struct job j;
    assert_int_equal(job_read(st, id, &j), 0);
    return j.due_at;
}

/* A published job asking for its post id keeps one due entry, and none once
 * it stops; a reconnect makes an account's paused jobs due now, not others'. */
static void the_due_index_follows_watching_and_waking(void **state)
{
    (void)state;
    struct post_req r = {0};
    assert_int_equal(plan(video("alice", media("a.mp4", "first")), &r), 0);
    assert_int_equal(plan(video("bob", media("b.mp4", "second")), &r), 0);
    struct put_one p = {1, publish_watching};
    assert_int_equal(store_write(st, change_txn, &p, NULL), 0);
    struct due_seen d = {0};
    assert_int_equal(store_read(st, due_txn, &d, NULL), 0);
    assert_int_equal(d.n, 2); /* final, but still asking: job 1 is due */
    p.change = publish_done;
    assert_int_equal(store_write(st, change_txn, &p, NULL), 0);
    memset(&d, 0, sizeof d);
    assert_int_equal(store_read(st, due_txn, &d, NULL), 0);
    assert_int_equal(d.n, 1);
    assert_int_equal(d.ids[0], 2);
    p = (struct put_one){2, pause_it};
    assert_int_equal(store_write(st, change_txn, &p, NULL), 0);
    assert_true(due_of(2) > clock_now() + 500);
    assert_int_equal(store_write(st, wake_txn, "alice", NULL), 0);
    assert_true(due_of(2) > clock_now() + 500); /* another account's */
    assert_int_equal(store_write(st, wake_txn, "bob", NULL), 0);
    assert_true(due_of(2) <= clock_now());
    memset(&d, 0, sizeof d);
    assert_int_equal(store_read(st, due_txn, &d, NULL), 0);
    assert_int_equal(d.n, 1); /* moved, not doubled */
}

/* ---- counts ------------------------------------------------------------------------ */

static void orphan_it(struct job *j)
{
    j->state = JOB_UPLOADING;
    j->orphans = 2;
}

static int counts_txn(struct store_txn *t, void *ctx)
{
    return job_counts_get(t, ctx);
}

static int count_one_open(const struct job *j, void *ctx)
{
    (void)j;
    (*(int *)ctx)++;
    return 0;
}

struct open_of {
    const char *account;
    int n;
};

static int open_txn(struct store_txn *t, void *ctx)
{
    struct open_of *o = ctx;
    o->n = 0;
    return job_foreach_account_open(t, o->account, count_one_open, &o->n);
}

static int open_jobs(const char *account)
{
    struct open_of o = {account, 0};
    assert_int_equal(store_read(st, open_txn, &o, NULL), 0);
    return o.n;
}

static int unopen_txn(struct store_txn *t, void *ctx)
{
    (void)ctx; /* what a schema 2 database holds: no 'o' keys */
    unsigned char k[2 + 5 + 8] = {'o'};
    memcpy(k + 1, "alice", 6);
    for (uint64_t id = 1; id <= 3; id++) {
        store_be64_put(k + 7, id);
        store_del(t, STORE_DB_INDEX, k, sizeof k);
    }
    unsigned char b[2 + 3 + 8] = {'o'};
    memcpy(b + 1, "bob", 4);
    for (uint64_t id = 1; id <= 3; id++) {
        store_be64_put(b + 5, id);
        store_del(t, STORE_DB_INDEX, b, sizeof b);
    }
    return 0;
}

static int uncount_txn(struct store_txn *t, void *ctx)
{
    (void)ctx;
    unsigned char v2[4] = {0, 0, 0, 2};
    int rc = store_del(t, STORE_DB_META, "job_counts", 10);
    return rc ? rc : store_put(t, STORE_DB_META, "schema_version", 14, v2, 4);
}

/* The counts by state and the open index follow every create and change in
 * its transaction, and the schema steps that brought them fill them in for
 * an older database's jobs. */
static void counts_and_the_open_index_follow_every_change(void **state)
{
    (void)state;
    struct post_req r = {0};
    assert_int_equal(plan(video("alice", media("a.mp4", "first")), &r), 0);
    assert_int_equal(plan(video("bob", media("b.mp4", "second")), &r), 0);
    assert_int_equal(plan(video("bob", media("c.mp4", "third")), &r), 0);
    struct job_counts c;
    assert_int_equal(store_read(st, counts_txn, &c, NULL), 0);
    assert_int_equal(c.jobs, 3);
    assert_int_equal(c.by_state[JOB_SCHEDULED], 3);
    struct put_one p = {1, publish_watching};
    assert_int_equal(store_write(st, change_txn, &p, NULL), 0);
    p = (struct put_one){2, orphan_it};
    assert_int_equal(store_write(st, change_txn, &p, NULL), 0);
    p = (struct put_one){1, publish_done}; /* no change of state: the counts stay */
    assert_int_equal(store_write(st, change_txn, &p, NULL), 0);
    assert_int_equal(store_read(st, counts_txn, &c, NULL), 0);
    assert_int_equal(c.jobs, 3);
    assert_int_equal(c.by_state[JOB_SCHEDULED], 1);
    assert_int_equal(c.by_state[JOB_PUBLISHED], 1);
    assert_int_equal(c.by_state[JOB_UPLOADING], 1);
    assert_int_equal(c.orphans, 2);
    assert_int_equal(c.orphan_jobs, 1);
    assert_int_equal(open_jobs("alice"), 0); /* published: out of the open index */
    assert_int_equal(open_jobs("bob"), 2);
    struct job_counts was = c;
    assert_int_equal(store_write(st, uncount_txn, NULL, NULL), 0);
    assert_int_equal(store_write(st, unopen_txn, NULL, NULL), 0);
    assert_int_equal(open_jobs("bob"), 0);
    store_close(st);
    st = open_db(); /* schema 2 -> 3 counts them and indexes the open ones */
    assert_int_equal(store_read(st, counts_txn, &c, NULL), 0);
    assert_memory_equal(&c, &was, sizeof c);
    assert_int_equal(open_jobs("alice"), 0);
    assert_int_equal(open_jobs("bob"), 2);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(videos_tiktok_would_refuse_never_enter_the_queue, setup,
                                        teardown),
        cmocka_unit_test_setup_teardown(drafts_refuse_what_they_cannot_carry, setup, teardown),
        cmocka_unit_test_setup_teardown(the_same_content_is_refused_under_any_name, setup,
                                        teardown),
        cmocka_unit_test_setup_teardown(a_key_plans_once, setup, teardown),
        cmocka_unit_test_setup_teardown(approval_holds_until_a_deadline, setup, teardown),
        cmocka_unit_test_setup_teardown(cancelling_gives_the_init_slot_back, setup, teardown),
        cmocka_unit_test_setup_teardown(a_retry_is_refused_what_a_new_plan_would_be, setup,
                                        teardown),
        cmocka_unit_test_setup_teardown(before_publish_decisions_apply, setup, teardown),
        cmocka_unit_test_setup_teardown(the_schema_step_indexes_old_jobs, setup, teardown),
        cmocka_unit_test_setup_teardown(a_corrupt_record_is_named_and_skipped, setup, teardown),
        cmocka_unit_test_setup_teardown(post_ids_are_kept_exact_and_once, setup, teardown),
        cmocka_unit_test_setup_teardown(the_due_index_follows_watching_and_waking, setup, teardown),
        cmocka_unit_test_setup_teardown(counts_and_the_open_index_follow_every_change, setup,
                                        teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
