-- quiet_hours.lua: no posts at night or over the holidays. A post planned
-- into a blacked-out time goes to the first free slot after it.
tikd.account("quiet-creator", { tz = "America/Chicago", privacy = "FOLLOWER_OF_CREATOR" })
tikd.schedule("quiet-hourly", {
    account = "quiet-creator",
    slots = "0 * * * *",     -- on the hour ...
    spacing = 3 * 3600,      -- ... at most every three hours ...
    blackout = {
        { cron = "0 21 * * *", hours = 11 },                        -- ... never 21:00-08:00
        { from = "2026-12-24 00:00", to = "2026-12-26 00:00" },    -- ... nor at Christmas
    },
})

function on_media(item)
    if not item.folder:match("/quiet$") or not tikd.oauth.account("quiet-creator") then
        return
    end
    return tikd.upload.post{ account = "quiet-creator", schedule = "quiet-hourly",
                             media = item.path, key = item.hash }
end
