-- quiet_hours_test.lua: nothing at night, nothing at Christmas; a post that
-- would fall there goes to the first free slot after.
local T = require "tikd.test"
local CHI = "America/Chicago"

local function due_times()
    local got = {}
    for _, j in ipairs(T.jobs()) do
        got[#got + 1] = T.localtime(j.due, CHI)
    end
    return got
end

function test_no_posts_at_night_and_three_hours_apart()
    T.clock("2026-12-01 20:30", CHI)
    T.account("quiet-creator")
    T.media{ folder = "quiet", name = "a.mp4" }
    T.media{ folder = "quiet", name = "b.mp4" }
    T.eq(due_times(), { "2026-12-02 08:00", "2026-12-02 11:00" })
end

function test_christmas_is_skipped()
    T.clock("2026-12-23 19:30", CHI)
    T.account("quiet-creator")
    for i = 1, 3 do
        T.media{ folder = "quiet", name = ("x%d.mp4"):format(i) }
    end
    T.eq(due_times(), { "2026-12-23 20:00", "2026-12-26 08:00", "2026-12-26 11:00" }, table.concat(due_times(), ", "))
end
