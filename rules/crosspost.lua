-- crosspost.lua: one video to five accounts, 20 minutes apart. A video
-- dropped into an intake folder called "crosspost" goes to every brand
-- account that is connected, the first at the next quarter hour.
local BRANDS = { "brand-de", "brand-fr", "brand-es", "brand-it", "brand-uk" }
local STAGGER = 20 * 60

for _, b in ipairs(BRANDS) do
    tikd.account(b, { privacy = "PUBLIC_TO_EVERYONE" })
end

function on_media(item)
    if not item.folder:match("/crosspost$") then
        return
    end
    local first = math.ceil(tikd.now() / 900) * 900
    local planned = 0
    for i, name in ipairs(BRANDS) do
        if tikd.oauth.account(name) then
            local id, err = tikd.upload.post{
                account = name, media = item.path, at = first + (i - 1) * STAGGER,
                caption = item.meta and item.meta.caption or nil,
                key = item.hash .. "@" .. name, -- each account once, however often this runs
            }
            if id then
                planned = planned + 1
            else
                tikd.log.warn("crosspost: not planned", { account = name, why = err })
            end
        end
    end
    return planned
end
