-- captions.tags: the house tags after the item's and the client's, each once.
local tikd = require "tikd"

local M = { house = { "madewithtikd" } }

function M.merge(item_tags, client_tags)
    return tikd.hashtags(item_tags or {}, client_tags or {}, M.house)
end

return M
