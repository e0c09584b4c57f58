---@meta tikd.json
-- LuaLS annotations for require "tikd.json" (also require "cjson").
-- This file is documentation: tikd never loads it.

local json = {}

---JSON null, in both directions: decode gives it for null, encode writes null for it.
---@type lightuserdata
json.null = nil

---The value as JSON text. A table with keys 1..n is an array (a few holes become
---null), other tables are objects (number keys become strings), {} is "{}".
---Raises for functions, userdata, NaN, infinity, strings that are not UTF-8, and
---nesting deeper than 128 (a table inside itself).
---@param value any
---@return string
function json.encode(value) end

---The Lua value of a JSON text: objects and arrays as tables, integers as
---integers when they fit, null as json.null. Raises, naming the byte, for
---anything that is not strict JSON.
---@param text string
---@return any
function json.decode(text) end

return json
