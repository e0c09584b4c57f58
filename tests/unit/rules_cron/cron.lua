-- Used by test_lua_cron.c: tikd.cron from a rule file.
local cron = tikd.cron
local NY = "America/New_York"

function eval(src)
    return assert(load(src))()
end

local function eq(got, want, what)
    assert(got == want and math.type(got) == math.type(want),
           ("%s: got %s (%s), want %s"):format(what, tostring(got), math.type(got) or type(got),
                                               tostring(want)))
end

-- "30 2 * * *" in New York across the 2026-03-08 spring-forward: 02:30 does
-- not exist that night, so it fires at 03:30 EDT (07:30 UTC), then at 02:30
-- EDT the next night.
function spring_forward()
    local s = cron.parse("30 2 * * *")
    local t1 = s:next(1772868600, NY) -- from 2026-03-07 02:30 EST, exactly a firing
    eq(t1, 1772955000, "first")
    eq(s:next(t1, NY), 1773037800, "second")
    eq(s:next(t1 - 1, NY), 1772955000, "strictly after")
    eq(s:next(1772955000.5, NY), 1773037800, "fractional after")
    return t1
end

function utc_default()
    eq(cron.parse("0 12 * * *"):next(0), 43200, "UTC default")
    eq(cron.parse("@hourly"):next(0, "UTC"), 3600, "@hourly")
    eq(cron.parse("0 9 * * 1-5"):next(0, "Asia/Kolkata"), 12600, "Kolkata, Thursday 09:00 IST")
    return "ok"
end

function local_fields()
    local lt = cron.localtime(1772955000, NY)
    local want = { year = 2026, month = 3, day = 8, hour = 3, min = 30, sec = 0, wday = 1,
                   yday = 67, utc_offset = -14400, abbr = "EDT" }
    for k, v in pairs(want) do
        eq(lt[k], v, k)
    end
    local n = 0
    for _ in pairs(lt) do n = n + 1 end
    eq(n, 10, "field count")
    -- wday and yday count as os.date does
    for t = 0, 40 * 86400, 86400 + 3607 do
        local a, b = cron.localtime(t), os.date("!*t", t)
        for _, k in ipairs { "year", "month", "day", "hour", "min", "sec", "wday", "yday" } do
            eq(a[k], b[k], ("t=%d %s"):format(t, k))
        end
    end
    eq(cron.localtime(0).abbr, "UTC", "abbr")
    eq(cron.localtime(1751328000, "Asia/Kolkata").utc_offset, 19800, "+05:30")
    return "ok"
end

function round_trips()
    local zones = { NY, "Europe/Berlin", "Australia/Lord_Howe", "UTC" }
    local n = 0
    for _, tz in ipairs(zones) do
        for t = 1767225600, 1767225600 + 365 * 86400, 86400 * 3 + 1234 do
            local lt = cron.localtime(t, tz)
            lt.tz = tz
            eq(cron.time(lt), t, ("%s %d"):format(tz, t))
            n = n + 1
        end
    end
    -- a skipped time reads with the offset before the gap (fold=0)
    eq(cron.time { year = 2026, month = 3, day = 8, hour = 2, min = 30, tz = NY }, 1772955000,
       "skipped 02:30")
    eq(cron.time { year = 2026, month = 3, day = 8, hour = 3, min = 30, tz = NY }, 1772955000,
       "03:30 EDT")
    -- a repeated time is its first occurrence
    eq(cron.time { year = 2026, month = 11, day = 1, hour = 1, min = 30, tz = NY }, 1793511000,
       "repeated 01:30")
    eq(cron.time { year = 1970, month = 1, day = 1 }, 0, "epoch, hour defaults to 0")
    eq(cron.time { year = 2026, month = 3, day = 8.0, hour = 12 }, 1772971200, "float day")
    return n
end

function zones()
    local ok, msg = cron.zone_ok("Mars/Olympus_Mons")
    assert(ok == false and msg == "unknown time zone 'Mars/Olympus_Mons'", tostring(msg))
    assert(cron.zone_ok("Europe/Berlin") == true and select("#", cron.zone_ok("UTC")) == 1)
    assert(not cron.zone_ok("../../etc/passwd"))
    assert(not cron.zone_ok("right/UTC"))
    assert(not cron.zone_ok("Europe/Berlin\0"))
    return "ok"
end

function never()
    local t, msg = cron.parse("0 0 30 2 *"):next(0, NY)
    assert(t == nil, tostring(t))
    return msg
end
