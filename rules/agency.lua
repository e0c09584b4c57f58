-- agency.lua: three clients in three time zones, one shared caption library.
-- Media dropped into an intake folder named after a client goes into that
-- client's next free slot, in the client's own time zone.
local captions = require "lib.captions"

local CLIENTS = {
    { name = "client-tokyo", tz = "Asia/Tokyo", slots = { "0 8 * * *", "30 20 * * *" },
      tags = { "tokyo" } },
    { name = "client-berlin", tz = "Europe/Berlin", slots = { "0 9 * * 1-5", "0 17 * * 1-5" },
      tags = { "berlin" } },
    { name = "client-nyc", tz = "America/New_York", slots = { "0 12 * * *" }, tags = { "nyc" } },
}

for _, c in ipairs(CLIENTS) do
    tikd.account(c.name, { tz = c.tz, privacy = "PUBLIC_TO_EVERYONE", daily_max = 2 })
    tikd.schedule(c.name .. "-slots", { account = c.name, slots = c.slots, jitter = 300,
                                        spacing = 3 * 3600 })
end

function on_media(item)
    for _, c in ipairs(CLIENTS) do
        if item.folder:sub(-#c.name - 1) == "/" .. c.name and tikd.oauth.account(c.name) then
            local caption = assert(captions.for_item(item, c.tags))
            local id, err = tikd.upload.post{ account = c.name, schedule = c.name .. "-slots",
                                              media = item.path, caption = caption,
                                              key = item.hash }
            if not id then
                tikd.log.warn("agency: not planned", { client = c.name, why = err })
            end
            return id
        end
    end
end
