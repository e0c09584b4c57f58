"""core/cron through tests/tools/crontool against an independent reference:
a small cron matcher written here, local wall-clock minutes walked with naive
datetime arithmetic, each converted with zoneinfo at fold=0, and only strictly
increasing instants kept. A year of firings in six zones, every `after` near
each transition, cron_localtime/cron_mktime against zoneinfo, and the error
messages users see."""
import bisect
import datetime as dt
import hashlib
import io
import os
import random
import subprocess
import zoneinfo
from zoneinfo import ZoneInfo

import pytest

TOOLS = os.environ.get("TIKD_TOOLS", os.path.join(
    os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__)))), "build",
    "tests"))
CRONTOOL = os.path.join(TOOLS, "crontool")
UTC = dt.timezone.utc

ZONES = ["America/New_York", "Europe/Berlin", "Australia/Lord_Howe", "Asia/Kolkata",
         "Pacific/Chatham", "UTC"]
EXPRS = ["30 2 * * *", "30 1 * * *", "*/15 * * * *", "0 9 * * 1-5", "0 12 1,15 * MON",
         "0 0 * * 7", "0 8-18/2 * * *", "@weekly", "15 10 29 2 *"]


def crontool(*args, ok=True):
    r = subprocess.run([CRONTOOL] + [str(a) for a in args], capture_output=True, text=True,
                       timeout=60)
    if ok:
        assert r.returncode == 0, r.stderr + r.stdout
    return r


def firings(expr, tz, after, n):
    out = crontool("next", expr, tz, repr(after), n).stdout.split()
    return [int(x) for x in out]


# ---- the reference ----

MACROS = {"@yearly": "0 0 1 1 *", "@annually": "0 0 1 1 *", "@monthly": "0 0 1 * *",
          "@weekly": "0 0 * * 0", "@daily": "0 0 * * *", "@midnight": "0 0 * * *",
          "@hourly": "0 * * * *"}
NAMES = {3: "jan feb mar apr may jun jul aug sep oct nov dec".split(),
         4: "sun mon tue wed thu fri sat".split()}
SPANS = [(0, 59), (0, 23), (1, 31), (1, 12), (0, 7)]


def ref_parse(expr):
    """Sets of allowed values per field, and the two 'starts with *' flags."""
    expr = MACROS.get(expr.strip().lower(), expr)
    fields = expr.split()
    assert len(fields) == 5
    sets = []
    for i, text in enumerate(fields):
        lo, hi = SPANS[i]

        def value(tok):
            if i in NAMES and tok.lower() in NAMES[i]:
                return NAMES[i].index(tok.lower()) + (1 if i == 3 else 0)
            v = int(tok)
            assert lo <= v <= hi
            return v

        allowed = set()
        for part in text.split(","):
            base, _, step = part.partition("/")
            if base == "*":
                a, b = lo, hi
            elif "-" in base:
                a, b = (value(x) for x in base.split("-"))
            else:
                a = value(base)
                b = hi if step else a
            allowed.update(range(a, b + 1, int(step) if step else 1))
        sets.append(allowed)
    if 7 in sets[4]:
        sets[4].add(0)
    return sets, fields[2].startswith("*"), fields[4].startswith("*")


def ref_day_matches(spec, day):
    sets, dom_star, dow_star = spec
    if day.month not in sets[3]:
        return False
    dom = day.day in sets[2]
    dow = day.isoweekday() % 7 in sets[4]
    return (dom and dow) if (dom_star or dow_star) else (dom or dow)


def ref_firings(expr, tzname, start, end, tz=None):
    """Every firing of the matching local minutes from local date `start` to
    `end` (exclusive): each minute converted with fold=0, the instants sorted,
    each instant once. (Sorting matters where a gap is not one whole hour on
    the hour: a skipped 02:20 read with the old offset lands after a real
    02:40.) Firings near either end of the range may be missing: a minute of
    a day outside it can land there."""
    spec = ref_parse(expr)
    tz = tz or ZoneInfo(tzname)
    out = set()
    day = start
    while day < end:
        if ref_day_matches(spec, day):
            midnight = dt.datetime(day.year, day.month, day.day)
            for h in spec[0][1]:
                for m in spec[0][0]:
                    wall = midnight + dt.timedelta(hours=h, minutes=m)
                    out.add(int(wall.replace(tzinfo=tz, fold=0).timestamp()))
        day += dt.timedelta(days=1)
    return sorted(out)


def start_instant(tzname, day):
    return int(dt.datetime(day.year, day.month, day.day, tzinfo=ZoneInfo(tzname)).timestamp())


def transitions(tzname, year):
    """UTC instants where the zone's offset changes during `year`."""
    tz = ZoneInfo(tzname)
    out = []
    t = int(dt.datetime(year, 1, 1, tzinfo=UTC).timestamp())
    end = int(dt.datetime(year + 1, 1, 1, tzinfo=UTC).timestamp())

    def off(x):
        return dt.datetime.fromtimestamp(x, tz).utcoffset()

    while t < end:
        if off(t) != off(t + 3600):
            lo, hi = t, t + 3600
            while hi - lo > 1:
                mid = (lo + hi) // 2
                lo, hi = (mid, hi) if off(mid) == off(t) else (lo, mid)
            out.append(hi)
        t += 3600
    return out


# ---- a year of firings ----

@pytest.mark.parametrize("tzname", ZONES)
@pytest.mark.parametrize("expr", EXPRS)
def test_year_matches_reference(expr, tzname):
    if expr == "15 10 29 2 *":
        start, end = dt.date(2024, 1, 1), dt.date(2033, 1, 1)  # 2024, 2028, 2032
    else:
        start, end = dt.date(2026, 1, 1), dt.date(2027, 1, 1)
    want = ref_firings(expr, tzname, start, end)
    assert want
    got = firings(expr, tzname, start_instant(tzname, start) - 1, len(want))
    if got != want:
        bad = next(i for i in range(len(want)) if got[i] != want[i])
        fmt = lambda t: dt.datetime.fromtimestamp(t, ZoneInfo(tzname)).isoformat()  # noqa: E731
        pytest.fail("%s in %s: firing %d is %s, want %s" % (expr, tzname, bad, fmt(got[bad]),
                                                            fmt(want[bad])))


@pytest.mark.parametrize("tzname", ["America/New_York", "Australia/Lord_Howe",
                                    "Pacific/Chatham", "Europe/Berlin"])
@pytest.mark.parametrize("expr", ["30 2 * * *", "30 1 * * *", "*/15 * * * *", "45 2 * * *"])
def test_any_after_near_transitions(expr, tzname):
    """cron_next is stateless: from any `after`, it gives the first firing of
    the reference sequence strictly later."""
    want = ref_firings(expr, tzname, dt.date(2025, 12, 31), dt.date(2027, 1, 2))
    rnd = random.Random(expr + tzname)
    afters = []
    for tr in transitions(tzname, 2026):
        afters += [tr + d for d in (-5400, -3600, -1801, -60, -1, 0, 1, 59.5, 900, 1799,
                                    1800, 3599, 3600, 5400)]
        afters += [tr + rnd.uniform(-7200, 7200) for _ in range(4)]
    assert len(afters) > 30
    for a in afters:
        got = firings(expr, tzname, a, 1)[0]
        assert got == want[bisect.bisect_right(want, a)], (expr, tzname, a)


# ---- the two DST cases by hand ----

def test_spring_forward_new_york():
    # 2026-03-08: 02:30 does not exist; read with EST it is 07:30Z = 03:30 EDT
    after = int(dt.datetime(2026, 3, 7, 12, tzinfo=UTC).timestamp())
    got = firings("30 2 * * *", "America/New_York", after, 2)
    assert got[0] == int(dt.datetime(2026, 3, 8, 7, 30, tzinfo=UTC).timestamp())
    assert got[1] == int(dt.datetime(2026, 3, 9, 6, 30, tzinfo=UTC).timestamp())


def test_fall_back_new_york_fires_once():
    # 2026-11-01: 01:30 happens twice; once, at 01:30 EDT = 05:30Z
    after = int(dt.datetime(2026, 10, 31, 12, tzinfo=UTC).timestamp())
    got = firings("30 1 * * *", "America/New_York", after, 2)
    assert got[0] == int(dt.datetime(2026, 11, 1, 5, 30, tzinfo=UTC).timestamp())
    assert got[1] == int(dt.datetime(2026, 11, 2, 6, 30, tzinfo=UTC).timestamp())


def test_fifteen_minutes_through_the_repeated_hour():
    after = int(dt.datetime(2026, 11, 1, 4, 0, tzinfo=UTC).timestamp())
    got = firings("*/15 * * * *", "America/New_York", after, 12)
    assert all(b - a == 900 for a, b in zip(got, got[1:7]))  # 00:15 .. 01:45 EDT
    assert got[7] - got[6] == 900 + 3600  # 01:45 EDT -> 02:00 EST: 01:xx EST never fires
    assert all(b - a == 900 for a, b in zip(got[7:], got[8:]))
    assert got == sorted(set(got))


# ---- every zone with a gap or an overlap in 2026-2028 ----

ZONEINFO = "/usr/share/zoneinfo"  # the tz database core/cron reads
DAY = 86400
FIXED = ["*/15 * * * *", "*/20 2 * * *", "30 2,3 * * *", "*/45 3 * * *", "0,30 1-3 * * *"]


def zone_transitions(tz, first_year, last_year):
    """(instant, old offset, new offset) of each change of UTC offset in the
    years, found day by day and bisected to the second (no zone changes its
    offset twice within a day in these years)."""
    def off(x):
        return int(dt.datetime.fromtimestamp(x, tz).utcoffset().total_seconds())

    t = int(dt.datetime(first_year, 1, 1, tzinfo=UTC).timestamp())
    end = int(dt.datetime(last_year + 1, 1, 1, tzinfo=UTC).timestamp())
    out, prev = [], off(t)
    for x in range(t + DAY, end + DAY, DAY):
        now = off(x)
        if now != prev:
            lo, hi = x - DAY, x
            while hi - lo > 1:
                mid = (lo + hi) // 2
                lo, hi = (mid, hi) if off(mid) == prev else (lo, mid)
            out.append((hi, prev, now))
            prev = now
    return out


def zones_with_transitions():
    """{name: (zone, transitions, file digest)} for every zone of the system
    tz database whose offset changes in 2026-2028, read from the same files
    tikd reads."""
    assert os.path.isdir(ZONEINFO)
    out = {}
    for name in sorted(zoneinfo.available_timezones()):
        path = os.path.join(ZONEINFO, name)
        if not os.path.isfile(path):
            continue
        with open(path, "rb") as f:
            data = f.read()
        tz = ZoneInfo.from_file(io.BytesIO(data), key=name)
        trs = zone_transitions(tz, 2026, 2028)
        if trs:
            out[name] = (tz, trs, hashlib.sha256(data).hexdigest())
    return out


def exprs_for(tz, tr):
    """The fixed expressions, and some aimed at the local hours around this
    transition wherever it falls in the day (00:00 in Havana, 24:00 in
    Santiago): every minute, */7, */20, */45 and :30 of those hours."""
    hb = dt.datetime.fromtimestamp(tr - 1, tz).hour
    ha = dt.datetime.fromtimestamp(tr, tz).hour
    lo, n = (hb, (ha - hb) % 24) if (ha - hb) % 24 <= 3 else (ha, (hb - ha) % 24)
    hours = {(lo + k) % 24 for k in range(n + 1)} | {(hb + 1) % 24}  # the hours on either side
    hours = ",".join(str(h) for h in sorted(hours))
    return FIXED + ["%s %s * * *" % (m, hours) for m in ("*", "*/7", "*/20", "*/45", "30")]


def crontool_batch(queries):
    """[(expr, tz, after, n)] -> one list of firings per query, in one run."""
    text = "".join("%d\t%s\t%r\t%s\n" % (n, tz, after, expr) for expr, tz, after, n in queries)
    r = subprocess.run([CRONTOOL, "batch"], input=text, capture_output=True, text=True,
                       timeout=120)
    assert r.returncode == 0, r.stderr
    lines = r.stdout.split("\n")[:-1]
    assert len(lines) == len(queries)
    return [line.split() for line in lines]


def check_against_reference(cases):
    """cases: [(expr, zone name, zone, after, want)]: crontool steps len(want)
    firings from `after`; every difference is reported."""
    got = crontool_batch([(e, name, a, len(w)) for e, name, _, a, w in cases])
    bad = []
    for (expr, name, tz, after, want), g in zip(cases, got):
        if g != [str(t) for t in want]:
            i = next((i for i in range(len(want)) if i >= len(g) or g[i] != str(want[i])), 0)
            show = lambda t: dt.datetime.fromtimestamp(int(t), tz).isoformat()  # noqa: E731
            bad.append("%s in %s after %s: firing %d is %s, want %s" % (
                expr, name, show(after), i,
                show(g[i]) if i < len(g) and g[i][0] != "!" else " ".join(g[i:]) or "none",
                show(want[i])))
    assert not bad, "%d of %d differ:\n%s" % (len(bad), len(cases), "\n".join(bad[:20]))


AROUND = (-3600, -1, 0, 1, 900, 1799, 3600, 7199)  # single firings from tr + these


def reference_cases(name, tz, transition, refs=None):
    """The queries for one transition: each expression stepped through the
    firings from a day before it to a day after it, and the first firing from
    instants around it. refs: a cache of the reference for zones with the
    same data (aliases such as Australia/LHI)."""
    tr, old, new = transition
    start, end = tr - DAY, tr + DAY
    # a local minute lands at (its wall time - the offset it is read with), so
    # those that land in (start, end + 2 hours] have wall times in this range
    # of days (the zone's other transitions are months away; checked below)
    first = dt.datetime.fromtimestamp(start + min(old, new), UTC).date()
    last = dt.datetime.fromtimestamp(end + 7200 + max(old, new), UTC).date()
    cases = []
    for expr in exprs_for(tz, tr):
        key = (expr, tr)
        ref = refs.get(key) if refs is not None else None
        if ref is None:
            ref = ref_firings(expr, name, first, last + dt.timedelta(days=1), tz=tz)
            ref = [t for t in ref if start < t <= end + 7200]
            if refs is not None:
                refs[key] = ref
        want = [t for t in ref if t <= end]
        assert want, (expr, name, tr)
        cases.append((expr, name, tz, start, want))
        for d in AROUND:
            cases.append((expr, name, tz, tr + d, [ref[bisect.bisect_right(ref, tr + d)]]))
    return cases


def test_every_zone_transition_2026_2028_matches_reference():
    """The earliest matching instant, always: for every zone of tzdata whose
    offset changes in 2026-2028 and each of its transitions, several
    expressions stepped across it against zoneinfo (fold=0, sorted)."""
    zones = zones_with_transitions()
    assert len(zones) > 100  # Debian's tzdata: some 200 names, aliases included
    assert {"Australia/Lord_Howe", "Antarctica/Troll", "Pacific/Chatham",
            "America/New_York", "Europe/Berlin"} <= set(zones)
    refs, cases = {}, []
    for name, (tz, trs, digest) in zones.items():
        assert all(b[0] - a[0] > 7 * DAY for a, b in zip(trs, trs[1:])), name
        for tr in trs:
            cases += reference_cases(name, tz, tr, refs.setdefault(digest, {}))
    check_against_reference(cases)


@pytest.mark.parametrize("expr,tzname,after,want", [
    # 02:00 +10:30 -> 02:30 +11: 02:00 and 02:20 are skipped, read with +10:30
    # they are 15:30Z and 15:50Z; the real 02:40 +11 (15:40Z) comes between
    ("*/20 2 * * *", "Australia/Lord_Howe", "2026-10-03T12:00Z",
     ["2026-10-03T15:30Z", "2026-10-03T15:40Z", "2026-10-03T15:50Z", "2026-10-04T15:00Z"]),
    # 01:00 +00 -> 03:00 +02: 02:30 read with +00 is 02:30Z, after the real
    # 03:30 +02 = 01:30Z
    ("30 2,3 * * *", "Antarctica/Troll", "2026-03-28T12:00Z",
     ["2026-03-29T01:30Z", "2026-03-29T02:30Z", "2026-03-30T00:30Z"]),
    # 02:45 +12:45 -> 03:45 +13:45: 03:00 read with +12:45 is 14:15Z, the real
    # 03:45 +13:45 is 14:00Z
    ("*/45 3 * * *", "Pacific/Chatham", "2026-09-26T00:00Z",
     ["2026-09-26T14:00Z", "2026-09-26T14:15Z", "2026-09-27T13:15Z"]),
])
def test_a_real_slot_after_an_odd_gap_is_not_skipped(expr, tzname, after, want):
    def ts(s):
        return int(dt.datetime.strptime(s, "%Y-%m-%dT%H:%MZ").replace(tzinfo=UTC).timestamp())

    assert firings(expr, tzname, ts(after), len(want)) == [ts(w) for w in want]
    tz = ZoneInfo(tzname)
    trs = [tr for tr in zone_transitions(tz, 2026, 2026) if ts(after) < tr[0] < ts(after) + 2 * DAY]
    assert len(trs) == 1
    check_against_reference(reference_cases(tzname, tz, trs[0]))


# ---- local time ----

@pytest.mark.parametrize("tzname", ZONES + ["Europe/Dublin", "America/Sao_Paulo"])
def test_localtime_matches_zoneinfo(tzname):
    tz = ZoneInfo(tzname)
    rnd = random.Random(tzname)
    instants = [rnd.randrange(-2208988800, 4102444800) for _ in range(25)]
    instants += [t + d for t in transitions(tzname, 2026) for d in (-1, 0, 1)]
    for t in instants:
        f = crontool("local", tzname, t).stdout.split()
        d = dt.datetime.fromtimestamp(t, tz)
        want = [d.year, d.month, d.day, d.hour, d.minute, d.second, d.isoweekday() % 7,
                d.timetuple().tm_yday, int(d.utcoffset().total_seconds())]
        assert [int(x) for x in f[:9]] == want, (tzname, t)
        assert f[9] == d.tzname(), (tzname, t)


@pytest.mark.parametrize("tzname", ZONES)
def test_mktime_matches_zoneinfo_fold0(tzname):
    tz = ZoneInfo(tzname)
    walls = []
    for tr in transitions(tzname, 2026):
        w = dt.datetime.fromtimestamp(tr, tz).replace(tzinfo=None)
        for d in range(-90, 91, 7):  # minutes around the wall time of the change
            walls.append(w + dt.timedelta(minutes=d, seconds=d % 60))
    walls += [dt.datetime(2026, m, 15, 12, 34, 56) for m in range(1, 13)]
    for w in walls:
        got = int(crontool("mktime", tzname, w.year, w.month, w.day, w.hour, w.minute,
                           w.second).stdout)
        assert got == int(w.replace(tzinfo=tz, fold=0).timestamp()), (tzname, w)


# ---- errors users see ----

@pytest.mark.parametrize("expr,msg", [
    ("61 * * * *", "cron: minute field: 61 is out of range 0-59"),
    ("* * * *", "cron: expected 5 fields, got 4"),
    ("* * * * */0", "cron: day of week field: step 0 in '*/0'"),
    ("* * * FOO *", "cron: month field: 'FOO' is not a month (1-12 or JAN-DEC)"),
    ("* 5-2 * * *", "cron: hour field: range 5-2 runs backwards"),
    ("@reboot", "cron: @reboot is not supported: tikd schedules run by time only"),
])
def test_parse_errors(expr, msg):
    r = crontool("parse", expr, ok=False)
    assert r.returncode == 1
    assert r.stdout.strip() == msg


@pytest.mark.parametrize("expr", ["*/5 * * * *", "0 9 * * MON-FRI", "@daily", "5/20 1 * * 7"])
def test_parse_ok(expr):
    assert crontool("parse", expr).stdout.strip() == "ok"


def test_unknown_zone_and_impossible_date():
    r = crontool("next", "0 0 * * *", "Mars/Olympus", 0, 1, ok=False)
    assert r.returncode == 1 and r.stderr.strip() == "unknown time zone 'Mars/Olympus'"
    r = crontool("next", "0 0 * * *", "../../etc/passwd", 0, 1, ok=False)
    assert r.returncode == 1 and "unknown time zone" in r.stderr
    r = crontool("next", "0 0 30 2 *", "Europe/Berlin", 1767225600, 1, ok=False)
    assert r.returncode == 1
    assert r.stderr.strip() == ("cron: '0 0 30 2 *' does not fire within 5 years after "
                                "2026-01-01T00:00:00Z")
