/* semver.c - versions and ranges (see semver.h). */
#include "semver.h"

#include <ctype.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* A number part: digits, no leading zero (but "0"), at most 9 of them. */
static const char *num(const char *p, long *out)
{
    if (!isdigit((unsigned char)*p) || (p[0] == '0' && isdigit((unsigned char)p[1])))
        return NULL;
    long v = 0;
    int n = 0;
    while (isdigit((unsigned char)*p) && n < 10) {
        v = v * 10 + (*p++ - '0');
        n++;
    }
    if (n > 9)
        return NULL;
    *out = v;
    return p;
}

static bool pre_ok(const char *s)
{
    if (!*s || strlen(s) >= sizeof((struct semver *)0)->pre)
        return false;
    for (const char *p = s; *p; p++)
        if (!isalnum((unsigned char)*p) && *p != '-' && !(*p == '.' && p[1] && p[1] != '.'))
            return false;
    return s[0] != '.';
}

/* Parse up to three parts; *parts says how many were given. */
static const char *parse_partial(const char *p, struct semver *v, int *parts)
{
    memset(v, 0, sizeof *v);
    long *f[3] = {&v->major, &v->minor, &v->patch};
    *parts = 0;
    for (int i = 0; i < 3; i++) {
        if (i > 0) {
            if (*p != '.')
                break;
            p++;
        }
        if (!(p = num(p, f[i])))
            return NULL;
        (*parts)++;
    }
    if (*p == '-') {
        if (*parts != 3)
            return NULL;
        const char *start = ++p;
        while (*p && !isspace((unsigned char)*p))
            p++;
        if ((size_t)(p - start) >= sizeof v->pre)
            return NULL;
        memcpy(v->pre, start, (size_t)(p - start));
        v->pre[p - start] = '\0';
        if (!pre_ok(v->pre))
            return NULL;
    }
    return p;
}

bool semver_parse(const char *s, struct semver *v)
{
    int parts;
    const char *end = s && strlen(s) < SEMVER_MAX ? parse_partial(s, v, &parts) : NULL;
    return end && parts == 3 && *end == '\0';
}

static int cmp_ident(const char *a, size_t al, const char *b, size_t bl)
{
    bool an = al && strspn(a, "0123456789") >= al, bn = bl && strspn(b, "0123456789") >= bl;
    if (an && bn) {
        if (al != bl)
            return al < bl ? -1 : 1;
        return memcmp(a, b, al);
    }
    if (an != bn)
        return an ? -1 : 1; /* numeric identifiers order first */
    int c = memcmp(a, b, al < bl ? al : bl);
    return c ? c : (al < bl ? -1 : al > bl);
}

static int cmp_pre(const char *a, const char *b)
{
    if (!*a || !*b)
        return !*a - !*b; /* a release after its prereleases */
    while (*a && *b) {
        size_t al = strcspn(a, "."), bl = strcspn(b, ".");
        int c = cmp_ident(a, al, b, bl);
        if (c)
            return c;
        a += al + (a[al] == '.');
        b += bl + (b[bl] == '.');
    }
    return !!*a - !!*b;
}

int semver_cmp(const struct semver *a, const struct semver *b)
{
    if (a->major != b->major)
        return a->major < b->major ? -1 : 1;
    if (a->minor != b->minor)
        return a->minor < b->minor ? -1 : 1;
    if (a->patch != b->patch)
        return a->patch < b->patch ? -1 : 1;
    int c = cmp_pre(a->pre, b->pre);
    return c < 0 ? -1 : c > 0;
}

/* One comparator as a lower and an upper bound. */
struct bound {
    struct semver lo, hi;
    bool has_lo, lo_incl, has_hi, hi_incl;
};

static const char *comparator(const char *p, struct bound *b)
{
    memset(b, 0, sizeof *b);
    char op[3] = "";
    size_t n = strspn(p, "<>=^~");
    if (n > 2)
        return NULL;
    memcpy(op, p, n);
    op[n] = '\0';
    p += n;
    if (*p == '*' && !op[0]) {
        p++;
        return *p && !isspace((unsigned char)*p) ? NULL : p;
    }
    struct semver v;
    int parts;
    const char *end = parse_partial(p, &v, &parts);
    if (!end || parts == 0 || (*end && !isspace((unsigned char)*end)))
        return NULL;
    struct semver up = v;
    up.pre[0] = '\0';
    if (!strcmp(op, "") || !strcmp(op, "=")) {
        if (parts == 3) {
            b->lo = b->hi = v;
            b->has_lo = b->lo_incl = b->has_hi = b->hi_incl = true;
            return end;
        }
        /* "1.2" is every 1.2.x, "1" every 1.x */
        strcpy(op, "~");
        if (parts == 1)
            strcpy(op, "^");
    }
    if (!strcmp(op, "^")) {
        if (v.major > 0 || parts == 1)
            up = (struct semver){v.major + 1, 0, 0, ""};
        else if (v.minor > 0 || parts == 2)
            up = (struct semver){0, v.minor + 1, 0, ""};
        else
            up = (struct semver){0, 0, v.patch + 1, ""};
    } else if (!strcmp(op, "~")) {
        up = parts == 1 ? (struct semver){v.major + 1, 0, 0, ""}
                        : (struct semver){v.major, v.minor + 1, 0, ""};
    } else if (!strcmp(op, ">=") || !strcmp(op, ">")) {
        b->lo = v;
        b->has_lo = true;
        b->lo_incl = op[1] == '=';
        return end;
    } else if (!strcmp(op, "<=") || !strcmp(op, "<")) {
        b->hi = v;
        b->has_hi = true;
        b->hi_incl = op[1] == '=';
        return end;
    } else {
        return NULL;
    }
    b->lo = v;
    b->has_lo = b->lo_incl = true;
    b->hi = up;
    b->has_hi = true;
    b->hi_incl = false;
    return end;
}

static bool holds(const struct bound *b, const struct semver *v)
{
    if (b->has_lo) {
        int c = semver_cmp(v, &b->lo);
        if (c < 0 || (c == 0 && !b->lo_incl))
            return false;
    }
    if (b->has_hi) {
        int c = semver_cmp(v, &b->hi);
        if (c > 0 || (c == 0 && !b->hi_incl))
            return false;
    }
    return true;
}

/* Same MAJOR.MINOR.PATCH, and the comparator itself names a prerelease. */
static bool pre_allowed(const struct bound *b, const struct semver *v)
{
    const struct semver *s[2] = {b->has_lo ? &b->lo : NULL, b->has_hi ? &b->hi : NULL};
    for (int i = 0; i < 2; i++)
        if (s[i] && s[i]->pre[0] && s[i]->major == v->major && s[i]->minor == v->minor &&
            s[i]->patch == v->patch)
            return true;
    return false;
}

/* Walk a range: each comparator to fn; false at the first malformed one. */
static bool walk(const char *range, const struct semver *v, bool *all, bool *pre_ok_any)
{
    if (!range || strlen(range) >= SEMVER_MAX)
        return false;
    const char *p = range;
    int count = 0;
    *all = true;
    *pre_ok_any = false;
    for (;;) {
        while (isspace((unsigned char)*p))
            p++;
        if (!*p)
            break;
        struct bound b;
        if (!(p = comparator(p, &b)))
            return false;
        count++;
        if (v) {
            *all = *all && holds(&b, v);
            *pre_ok_any = *pre_ok_any || pre_allowed(&b, v);
        }
    }
    return count > 0;
}

const char *semver_range_problem(const char *range)
{
    bool all, pre;
    if (walk(range, NULL, &all, &pre))
        return NULL;
    return "expected a version range: \"1.2.3\", \"^1.2\", \"~1.2\", \">=1.0 <2\" or \"*\"";
}

bool semver_satisfies(const struct semver *v, const char *range)
{
    bool all, pre;
    if (!walk(range, v, &all, &pre) || !all)
        return false;
    return !v->pre[0] || pre;
}
