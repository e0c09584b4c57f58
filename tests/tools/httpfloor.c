/* httpfloor.c - `make bench`: the HTTP floor under cpu_per_post. It makes the
 * four exchanges of a direct post against tests/tools/responder, on the
 * connections tikd uses, through libcurl's easy interface and nothing else: creator_info and the
 * status fetch on a kept connection, the video init on a fresh one (tikd's rule for a request that
 * must not reach TikTok twice, core/http.c), the one chunk PUT to the upload URL the init answered.
 * No JSON is parsed, nothing is stored, no rule runs: what is left is libcurl's and the kernel's
 * share of a post, the part no engine on this loopback can go below.
 *
 *   httpfloor BASE_URL POSTS BODY_BYTES [kept]
 * kept: the init too on the kept connection (what the fresh one costs)
 * Prints one JSON line: {"posts": N, "cpu_us": per post, "wall_us": per post} */
#include <curl/curl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

static double clock_of(clockid_t id)
{
    struct timespec ts;
    clock_gettime(id, &ts);
    return ts.tv_sec + ts.tv_nsec / 1e9;
}

struct answer {
    char body[4096];
    size_t n;
};

static size_t keep(char *p, size_t size, size_t nmemb, void *ud)
{
    struct answer *a = ud;
    size_t n = size * nmemb;
    size_t room = sizeof a->body - 1 - a->n;
    memcpy(a->body + a->n, p, n < room ? n : room);
    a->n += n < room ? n : room;
    a->body[a->n] = '\0';
    return n;
}

/* one exchange on the easy handle; 0 when it was answered 2xx */
static int exchange(CURL *c, const char *method, const char *url, struct curl_slist *hdrs,
                    const char *body, size_t len, int fresh, struct answer *a)
{
    a->n = 0;
    a->body[0] = '\0';
    curl_easy_setopt(c, CURLOPT_URL, url);
    curl_easy_setopt(c, CURLOPT_HTTPHEADER, hdrs);
    curl_easy_setopt(c, CURLOPT_WRITEFUNCTION, keep);
    curl_easy_setopt(c, CURLOPT_WRITEDATA, a);
    curl_easy_setopt(c, CURLOPT_FRESH_CONNECT, (long)fresh);
    curl_easy_setopt(c, CURLOPT_POSTFIELDS, body);
    curl_easy_setopt(c, CURLOPT_POSTFIELDSIZE_LARGE, (curl_off_t)len);
    curl_easy_setopt(c, CURLOPT_CUSTOMREQUEST, strcmp(method, "POST") ? method : NULL);
    long code = 0;
    if (curl_easy_perform(c) != CURLE_OK ||
        curl_easy_getinfo(c, CURLINFO_RESPONSE_CODE, &code) != CURLE_OK || code / 100 != 2)
        return -1;
    return 0;
}

int main(int argc, char **argv)
{
    if (argc != 4 && !(argc == 5 && strcmp(argv[4], "kept") == 0)) {
        fprintf(stderr, "usage: httpfloor BASE_URL POSTS BODY_BYTES [kept]\n");
        return 2;
    }
    const char *base = argv[1];
    long posts = atol(argv[2]), bytes = atol(argv[3]);
    int fresh = argc == 4;
    if (posts <= 0 || bytes <= 0 || curl_global_init(CURL_GLOBAL_DEFAULT) != 0)
        return 2;
    char *video = calloc(1, (size_t)bytes);
    CURL *c = curl_easy_init();
    if (!video || !c)
        return 1;
    char info[512], init[512], status[512], range[128], init_body[512];
    snprintf(info, sizeof info, "%s/v2/post/publish/creator_info/query/", base);
    snprintf(init, sizeof init, "%s/v2/post/publish/video/init/", base);
    snprintf(status, sizeof status, "%s/v2/post/publish/status/fetch/", base);
    int ib = snprintf(init_body, sizeof init_body,
                      "{\"post_info\":{\"title\":\"bench\",\"privacy_level\":\"SELF_ONLY\","
                      "\"disable_comment\":false,\"disable_duet\":false,"
                      "\"disable_stitch\":false},\"source_info\":{\"source\":\"FILE_UPLOAD\","
                      "\"video_size\":%ld,\"chunk_size\":%ld,\"total_chunk_count\":1}}",
                      bytes, bytes);
    struct curl_slist *json = NULL;
    json = curl_slist_append(json, "Content-Type: application/json; charset=UTF-8");
    json = curl_slist_append(json, "Authorization: Bearer not-a-token (the responder checks none)");
    json = curl_slist_append(json, "Expect:");
    snprintf(range, sizeof range, "Content-Range: bytes 0-%ld/%ld", bytes - 1, bytes);
    struct curl_slist *put = NULL;
    put = curl_slist_append(put, "Content-Type: video/mp4");
    put = curl_slist_append(put, range);
    put = curl_slist_append(put, "Expect:");
    static struct answer a;
    double cpu0 = clock_of(CLOCK_PROCESS_CPUTIME_ID), t0 = clock_of(CLOCK_MONOTONIC);
    for (long i = 0; i < posts; i++) {
        char upload[512], pub[128];
        if (exchange(c, "POST", info, json, "{}", 2, 0, &a) ||
            exchange(c, "POST", init, json, init_body, (size_t)ib, fresh, &a))
            return 1;
        const char *u = strstr(a.body, "\"upload_url\":\"");
        const char *p = strstr(a.body, "\"publish_id\":\"");
        if (!u || !p || sscanf(u + 14, "%511[^\"]", upload) != 1 ||
            sscanf(p + 14, "%127[^\"]", pub) != 1)
            return 1;
        char sbody[256];
        int sn = snprintf(sbody, sizeof sbody, "{\"publish_id\":\"%s\"}", pub);
        if (exchange(c, "PUT", upload, put, video, (size_t)bytes, 0, &a) ||
            exchange(c, "POST", status, json, sbody, (size_t)sn, 0, &a))
            return 1;
    }
    double cpu = clock_of(CLOCK_PROCESS_CPUTIME_ID) - cpu0, wall = clock_of(CLOCK_MONOTONIC) - t0;
    printf("{\"posts\": %ld, \"cpu_us\": %.1f, \"wall_us\": %.1f}\n", posts, cpu / posts * 1e6,
           wall / posts * 1e6);
    curl_slist_free_all(json);
    curl_slist_free_all(put);
    curl_easy_cleanup(c);
    free(video);
    curl_global_cleanup();
    return 0;
}
