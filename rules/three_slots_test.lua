-- three_slots_test.lua: `tikd rules test` runs each test_* below, in this
-- order, on a fresh database with the fake clock at 2026-01-01 00:00 UTC.
local T = require "tikd.test"
local NY = "America/New_York"

-- a video dropped into the creator's folder
local function drop(name, meta)
    return T.media{ folder = "demo-creator", name = name, meta = meta }
end

function test_four_videos_fill_the_slots_in_new_york_time()
    T.clock("2026-03-06 10:00", NY) -- a Friday; the clocks move on Sunday the 8th
    T.account("demo-creator")
    for i = 1, 4 do
        drop(("clip%d.mp4"):format(i))
    end
    local got = {}
    for _, job in ipairs(T.jobs("demo-creator")) do
        got[#got + 1] = T.localtime(job.due, NY)
    end
    T.eq(got, { "2026-03-06 13:00", "2026-03-06 18:30", "2026-03-07 09:00", "2026-03-07 13:00" })
end

function test_slots_stay_at_local_time_across_daylight_saving()
    T.clock("2026-03-07 19:00", NY)
    T.account("demo-creator")
    drop("a.mp4")
    local job = T.jobs()[1]
    T.eq(T.localtime(job.due, NY), "2026-03-08 09:00")
    T.eq(T.localtime(job.due), "2026-03-08 13:00") -- UTC-4 from that morning on
end

function test_caption_from_the_sidecar_or_the_name()
    T.account("demo-creator")
    drop("launch.mp4", { title = "Launch day 🚀" })
    drop("summer_trip-2.mp4")
    local jobs = T.jobs()
    T.eq(jobs[1].caption, "Launch day 🚀 #demo")
    T.eq(jobs[2].caption, "Summer trip 2 #demo")
    T.eq({ jobs[1].privacy, jobs[1].mode, jobs[1].kind }, { "SELF_ONLY", "direct", "video" })
    T.match(jobs[1].chosen_by, "^rule:.*three_slots%.lua@gen")
end

function test_the_same_content_is_planned_once()
    T.account("demo-creator")
    T.media{ folder = "demo-creator", name = "a.mp4", content = T.video("same") }
    T.media{ folder = "demo-creator", name = "b.mp4", content = T.video("same") }
    T.eq(#T.jobs(), 1)
end

function test_only_her_folder_her_videos_and_only_when_connected()
    drop("a.mp4")
    T.eq(T.jobs(), {}) -- not connected here
    T.account("demo-creator")
    T.media{ folder = "someone-else", name = "b.mp4" }
    drop("notes.txt")
    T.eq(T.jobs(), {})
end
