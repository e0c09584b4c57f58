-- crosspost_test.lua: one video to every connected brand account, 20
-- minutes apart, from the next quarter hour.
local T = require "tikd.test"
local BRANDS = { "brand-de", "brand-fr", "brand-es", "brand-it", "brand-uk" }

function test_one_video_five_accounts_twenty_minutes_apart()
    T.clock("2026-12-01 10:07", "UTC")
    for _, b in ipairs(BRANDS) do
        T.account(b)
    end
    T.media{ folder = "crosspost", name = "launch.mp4", meta = { caption = "Launch day #new" } }
    local got = {}
    for _, j in ipairs(T.jobs()) do
        got[#got + 1] = { j.account, T.localtime(j.due, "UTC"), j.caption }
    end
    T.eq(got, {
        { "brand-de", "2026-12-01 10:15", "Launch day #new" },
        { "brand-fr", "2026-12-01 10:35", "Launch day #new" },
        { "brand-es", "2026-12-01 10:55", "Launch day #new" },
        { "brand-it", "2026-12-01 11:15", "Launch day #new" },
        { "brand-uk", "2026-12-01 11:35", "Launch day #new" },
    })
end

function test_only_connected_accounts_and_only_the_crosspost_folder()
    T.clock("2026-12-01 10:00", "UTC")
    T.account("brand-de")
    T.account("brand-uk")
    T.media{ folder = "elsewhere", name = "x.mp4" }
    T.eq(T.jobs(), {})
    T.media{ folder = "crosspost", name = "y.mp4" }
    local jobs = T.jobs()
    T.eq(#jobs, 2)
    T.eq({ jobs[1].account, jobs[2].account }, { "brand-de", "brand-uk" })
    T.eq(jobs[2].due - jobs[1].due, 4 * 20 * 60) -- each brand keeps its place in the rota
end
