/* sink.c - a loopback HTTP upload sink for `make bench`: accepts PUT/POST
 * requests with a Content-Length body, reads and discards the body through
 * a 1 MiB buffer, answers 201. One connection at a time, keep-alive. Fast
 * enough that the client, not the sink, is what a benchmark measures.
 * Prints its port on stdout, then serves until killed. */
#include <arpa/inet.h>
#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/socket.h>
#include <unistd.h>

static char buf[1 << 20];

static void serve(int c)
{
    size_t have = 0;
    for (;;) {
        char *end;
        while (!(end = memmem(buf, have, "\r\n\r\n", 4))) {
            ssize_t n = recv(c, buf + have, sizeof buf - have - 1, 0);
            if (n <= 0)
                return;
            have += (size_t)n;
        }
        buf[have] = '\0';
        long long len = 0;
        for (char *p = buf; p < end; p++)
            if ((p == buf || p[-1] == '\n') && strncasecmp(p, "Content-Length:", 15) == 0)
                len = atoll(p + 15);
        size_t hdr = (size_t)(end + 4 - buf);
        long long body = (long long)(have - hdr);
        if (body > len)
            body = len;
        size_t rest = have - hdr - (size_t)body;
        memmove(buf, buf + hdr + body, rest);
        have = rest;
        while (body < len) {
            size_t want = (size_t)(len - body) < sizeof buf ? (size_t)(len - body) : sizeof buf;
            ssize_t n = recv(c, buf + have, want, 0);
            if (n <= 0)
                return;
            body += n;
        }
        static const char ok[] = "HTTP/1.1 201 Created\r\nContent-Length: 0\r\n\r\n";
        if (send(c, ok, sizeof ok - 1, MSG_NOSIGNAL) <= 0)
            return;
    }
}

int main(void)
{
    int s = socket(AF_INET, SOCK_STREAM, 0), one = 1;
    setsockopt(s, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
    struct sockaddr_in a = {.sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
    socklen_t al = sizeof a;
    if (bind(s, (struct sockaddr *)&a, sizeof a) || listen(s, 16) ||
        getsockname(s, (struct sockaddr *)&a, &al))
        return 1;
    printf("%d\n", ntohs(a.sin_port));
    fflush(stdout);
    for (;;) {
        int c = accept(s, NULL, NULL);
        if (c < 0)
            continue;
        serve(c);
        close(c);
    }
}
