-- agency_test.lua: each client posts in its own time zone, with captions
-- from the shared library (rules/lib/captions.lua).
local T = require "tikd.test"

local function clients()
    for _, c in ipairs({ "client-tokyo", "client-berlin", "client-nyc" }) do
        T.account(c)
    end
end

function test_each_client_in_its_own_time_zone_with_library_captions()
    T.clock("2026-12-01 00:00", "UTC") -- a Tuesday: 09:00 in Tokyo, 01:00 in Berlin
    clients()
    T.media{ folder = "client-tokyo", name = "ramen_night.mp4", meta = { tags = { "food" } } }
    T.media{ folder = "client-berlin", name = "spree.mp4", meta = { title = "Spree at dawn" } }
    T.media{ folder = "client-nyc", name = "bagels.mp4" }
    local tokyo, berlin, nyc = T.jobs("client-tokyo")[1], T.jobs("client-berlin")[1],
                               T.jobs("client-nyc")[1]
    -- the next slot in each zone, up to 5 minutes of jitter into it
    T.match(T.localtime(tokyo.due, "Asia/Tokyo"), "^2026%-12%-01 20:3[0-4]")
    T.match(T.localtime(berlin.due, "Europe/Berlin"), "^2026%-12%-01 09:0[0-4]")
    T.match(T.localtime(nyc.due, "America/New_York"), "^2026%-12%-01 12:0[0-4]")
    T.eq(tokyo.caption, "ramen night #food #tokyo #madewithtikd")
    T.eq(berlin.caption, "Spree at dawn #berlin #madewithtikd")
    T.eq(nyc.privacy, "PUBLIC_TO_EVERYONE")
end

function test_weekend_slots_and_the_daily_maximum()
    T.clock("2026-12-04 18:00", "Europe/Berlin") -- Friday evening: Berlin posts Mon-Fri only
    clients()
    for i = 1, 3 do
        T.media{ folder = "client-berlin", name = ("b%d.mp4"):format(i) }
    end
    local got = {}
    for _, j in ipairs(T.jobs("client-berlin")) do
        got[#got + 1] = T.localtime(j.due, "Europe/Berlin"):sub(1, 13)
    end
    -- Monday 09:00 and 17:00 (two a day at most), then Tuesday 09:00
    T.eq(got, { "2026-12-07 09", "2026-12-07 17", "2026-12-08 09" })
end
