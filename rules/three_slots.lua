-- three_slots.lua: one creator, three posts a day at 09:00, 13:00 and 18:30 in
-- her time zone (New York: the slots stay at 09:00 local across daylight
-- saving). Each video dropped into an intake folder called "demo-creator"
-- becomes the post of the next free slot, titled by its sidecar
-- (clip.json: { "title": "..." }) or by its file name.
--
-- Try it before it goes live:
--   tikd rules test rules/three_slots_test.lua
--   tikd plan --media /srv/in/demo-creator --days 3
local ACCOUNT = "demo-creator"

tikd.account(ACCOUNT, { tz = "America/New_York", privacy = "SELF_ONLY" })
tikd.schedule("demo-daily", { account = ACCOUNT,
                              slots = { "0 9 * * *", "0 13 * * *", "30 18 * * *" } })

-- "summer_trip-2.mp4" -> "Summer trip 2 #demo"
function caption_for(item)
    local title = item.meta and item.meta.title
    if type(title) ~= "string" then
        title = item.name:gsub("%.%w+$", ""):gsub("[_%-]+", " ")
        title = title:sub(1, 1):upper() .. title:sub(2)
    end
    return tikd.caption("{title} {tags}", { title = title, tags = tikd.hashtags({ "demo" }) })
end

function on_media(item)
    -- only this creator's folder, and only where she is connected
    if not item.folder:match("/demo%-creator$") or not item.name:lower():match("%.mp4$")
        or not tikd.oauth.account(ACCOUNT) then
        return
    end
    local caption, why = caption_for(item)
    local id, err = caption and tikd.upload.post{ account = ACCOUNT, schedule = "demo-daily",
                                                  media = item.path, caption = caption,
                                                  key = item.hash } -- once per content
    if not id then
        tikd.log.warn("not planned", { file = item.name, why = why or err })
    end
    return id
end
