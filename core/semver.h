/* semver.h - versions and version ranges of shared rule libraries.
 *
 * A version is MAJOR.MINOR.PATCH with an optional -prerelease (semver.org
 * 2.0.0; build metadata is not accepted: two bundles of one version must be
 * one bundle). A range is one or more comparators, all of which must hold:
 *   "1.2.3"  exactly        "^1.2" >=1.2.0 <2.0.0 (^0.3: <0.4.0, ^0.0.3: <0.0.4)
 *   "~1.2"   >=1.2.0 <1.3.0 ">=1.0 <2" "<=", ">", "<", "=", and "*" (any)
 * Missing parts count as 0. A prerelease matches only a comparator that
 * names the same MAJOR.MINOR.PATCH with a prerelease (npm's rule), so "^1.2"
 * never picks 2.0.0-beta. */
#ifndef TIKD_SEMVER_H
#define TIKD_SEMVER_H

#include <stdbool.h>

#define SEMVER_MAX 64 /* characters of a version or a range */

struct semver {
    long major, minor, patch;
    char pre[32]; /* "" for a release */
};

/* Parse a full version ("1.2.3", "1.2.3-rc.1"); false on anything else. */
bool semver_parse(const char *s, struct semver *v);

/* <0, 0, >0 as a orders before, with, after b (a release after its
 * prereleases; prereleases by their dot-separated identifiers). */
int semver_cmp(const struct semver *a, const struct semver *b);

/* NULL when range is well formed, else what is wrong with it. */
const char *semver_range_problem(const char *range);

/* True if v satisfies range (a malformed range matches nothing). */
bool semver_satisfies(const struct semver *v, const char *range);

#endif
