-- captions: a shared library, packed and signed with `tikd lib pack` and
-- pinned per tenant (tenants.NAME.libs = { captions = "^1.2" }). It runs in
-- the requiring tenant's sandbox, with that tenant's rights only.
local tikd = require "tikd"
local tags = require "captions.tags"

local M = { version = "1.2.0" }

-- A caption for a media item: its sidecar's title (clip.json next to
-- clip.mp4), else one made from the file name; then the tags, each once.
-- nil and why when it is too long for TikTok.
function M.for_item(item, client_tags)
    local meta = item.meta or {}
    local title = meta.title or item.name:gsub("%.%w+$", ""):gsub("[_-]+", " ")
    return tikd.caption("{title} {tags}", { title = title, tags = tags.merge(meta.tags, client_tags) })
end

return M
