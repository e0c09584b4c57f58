-- lib/captions.lua: an agency's shared caption library. Every client's rules
-- `require "lib.captions"`; a fix here reaches them all at the next reload.
local tikd = require "tikd" -- a module's globals are its own: it asks for what it uses
local M = {}

M.house_tags = { "madewithtikd" }

-- A caption for a media item: its sidecar's title (clip.json next to
-- clip.mp4), else a title made from the file name; the item's tags, the
-- client's and the house's, each once. nil and why when too long.
function M.for_item(item, client_tags)
    local meta = item.meta or {}
    local title = meta.title or item.name:gsub("%.%w+$", ""):gsub("[_-]+", " ")
    return tikd.caption("{title} {tags}", {
        title = title,
        tags = tikd.hashtags(meta.tags or {}, client_tags or {}, M.house_tags),
    })
end

return M
