-- cms.lua: a timer pulls the posting plan from a CMS export (JSON over an
-- allow-listed host: http.allow_hosts) and plans what is new into the
-- account's schedule. TikTok pulls each video from its https URL, which
-- must be on a domain verified for the app.
--
-- The export: [ { "id": "a1", "video_url": "https://...", "caption": "...",
--                 "privacy": "PUBLIC_TO_EVERYONE" }, ... ]
local CMS_URL = "http://127.0.0.1:8099/tikd/export.json"
local ACCOUNT = "cms-creator"
local cjson = require "cjson"

tikd.account(ACCOUNT, { tz = "Europe/London", privacy = "SELF_ONLY" })
tikd.schedule("cms-slots", { account = ACCOUNT, slots = { "0 8 * * *", "0 12 * * *", "0 17 * * *" },
                             spacing = 2 * 3600 })
tikd.every(900, "sync")

function sync()
    if not tikd.oauth.account(ACCOUNT) then
        return
    end
    local resp, err = tikd.http.request{ url = CMS_URL, timeout = 20 }
    if not resp or resp.status ~= 200 then
        tikd.log.warn("cms: no export", { why = err or resp.status })
        return
    end
    local ok, items = pcall(cjson.decode, resp.body)
    if not ok or type(items) ~= "table" then
        tikd.log.warn("cms: the export is not a JSON list")
        return
    end
    local planned = 0
    for _, it in ipairs(items) do
        local id, why = tikd.upload.post{
            account = ACCOUNT, schedule = "cms-slots", media = it.video_url,
            caption = it.caption, privacy = it.privacy,
            key = "cms:" .. tostring(it.id), -- an item already planned is not planned again
        }
        if id then
            planned = planned + 1
        else
            tikd.log.warn("cms: item refused", { item = tostring(it.id), why = why })
        end
    end
    tikd.log.info("cms: synced", { items = #items, planned = planned })
end
