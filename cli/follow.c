/* follow.c - reading the event stream from the CLI (see follow.h). */
#include "follow.h"

#include <curl/curl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "../core/config.h"

#define BUF_MAX (1 << 20)

struct follow {
    CURLM *multi;
    CURL *easy;
    char *buf;
    size_t len;
    bool over, failed;
    char type[64];
    char *data; /* the last event's, malloc'd */
};

static size_t on_data(char *p, size_t size, size_t n, void *ud)
{
    struct follow *f = ud;
    size_t k = size * n;
    long status = 0;
    curl_easy_getinfo(f->easy, CURLINFO_RESPONSE_CODE, &status);
    if (status != 200 || f->len + k > BUF_MAX) {
        f->failed = true;
        return 0; /* not the stream, or a client that cannot keep up: end it */
    }
    char *g = realloc(f->buf, f->len + k + 1);
    if (!g)
        return 0;
    f->buf = g;
    memcpy(f->buf + f->len, p, k);
    f->len += k;
    f->buf[f->len] = '\0';
    return k;
}

static double mono(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + ts.tv_nsec / 1e9;
}

/* One whole frame out of the buffer: 1 (an event with data), 0 (none yet),
 * 2 (a frame without data: a comment, retry:). */
static int take_frame(struct follow *f)
{
    char *end = f->buf ? strstr(f->buf, "\n\n") : NULL;
    if (!end)
        return 0;
    *end = '\0';
    f->type[0] = '\0';
    free(f->data);
    f->data = NULL;
    for (char *save, *line = strtok_r(f->buf, "\n", &save); line;
         line = strtok_r(NULL, "\n", &save)) {
        if (strncmp(line, "event: ", 7) == 0)
            snprintf(f->type, sizeof f->type, "%s", line + 7);
        else if (strncmp(line, "data: ", 6) == 0 && !f->data)
            f->data = strdup(line + 6);
    }
    size_t used = (size_t)(end + 2 - f->buf);
    memmove(f->buf, f->buf + used, f->len - used + 1);
    f->len -= used;
    return f->type[0] && f->data ? 1 : 2;
}

struct follow *follow_open(const struct tikd_config *cfg, const char *path)
{
    char sock[4200];
    if (cfg->admin_socket)
        snprintf(sock, sizeof sock, "%s", cfg->admin_socket);
    else
        snprintf(sock, sizeof sock, "%s/admin.sock", cfg->data_dir);
    struct follow *f = calloc(1, sizeof *f);
    if (!f)
        return NULL;
    f->multi = curl_multi_init();
    f->easy = curl_easy_init();
    if (!f->multi || !f->easy) {
        follow_close(f);
        return NULL;
    }
    char url[600];
    snprintf(url, sizeof url, "http://tikd%s", path);
    curl_easy_setopt(f->easy, CURLOPT_URL, url);
    curl_easy_setopt(f->easy, CURLOPT_UNIX_SOCKET_PATH, sock);
    curl_easy_setopt(f->easy, CURLOPT_WRITEFUNCTION, on_data);
    curl_easy_setopt(f->easy, CURLOPT_WRITEDATA, f);
    curl_easy_setopt(f->easy, CURLOPT_CONNECTTIMEOUT_MS, 2000L);
    curl_easy_setopt(f->easy, CURLOPT_NOSIGNAL, 1L);
    curl_easy_setopt(f->easy, CURLOPT_PROTOCOLS_STR, "http");
    curl_multi_add_handle(f->multi, f->easy);
    /* the stream answers at once with "retry:": until then it is not open */
    double end = mono() + 3;
    while (!f->len && !f->over && mono() < end) {
        int running = 0;
        curl_multi_perform(f->multi, &running);
        if (!running || f->failed) {
            follow_close(f);
            return NULL;
        }
        curl_multi_poll(f->multi, NULL, 0, 100, NULL);
    }
    if (!f->len) {
        follow_close(f);
        return NULL;
    }
    return f;
}

int follow_next(struct follow *f, double timeout, const char **type, const char **data)
{
    double end = mono() + timeout;
    for (;;) {
        int got;
        while ((got = take_frame(f)) == 2)
            ;
        if (got == 1) {
            *type = f->type;
            *data = f->data;
            return 1;
        }
        if (f->over)
            return -1;
        double left = end - mono();
        if (left <= 0)
            return 0;
        int running = 0;
        curl_multi_perform(f->multi, &running);
        if (!running || f->failed) {
            f->over = true;
            continue; /* what was buffered first */
        }
        curl_multi_poll(f->multi, NULL, 0, (int)(left * 1000) + 1, NULL);
    }
}

void follow_close(struct follow *f)
{
    if (!f)
        return;
    if (f->multi && f->easy)
        curl_multi_remove_handle(f->multi, f->easy);
    if (f->easy)
        curl_easy_cleanup(f->easy);
    if (f->multi)
        curl_multi_cleanup(f->multi);
    free(f->buf);
    free(f->data);
    free(f);
}
