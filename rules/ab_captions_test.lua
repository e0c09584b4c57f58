-- ab_captions_test.lua: the two caption styles alternate, post after post,
-- into the creator's Paris slots.
local T = require "tikd.test"

function test_styles_alternate_into_the_slots()
    T.clock("2026-12-01 08:00", "Europe/Paris")
    T.account("ab-creator")
    for i = 1, 3 do
        T.media{ folder = "ab", name = ("clip%d.mp4"):format(i), meta = { title = "Clip " .. i } }
    end
    local got = {}
    for _, j in ipairs(T.jobs()) do
        got[#got + 1] = { T.localtime(j.due, "Europe/Paris"), j.caption }
    end
    T.eq(got, {
        { "2026-12-01 10:00", "Clip 1 ✨ #paris" },
        { "2026-12-01 18:00", "New: Clip 2. What do you think? #paris" },
        { "2026-12-02 10:00", "Clip 3 ✨ #paris" },
    })
end
