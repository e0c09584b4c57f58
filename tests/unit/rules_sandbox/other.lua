-- A second rule file: it must not see escape.lua's globals, nor any change
-- escape.lua tried to make to the shared libraries.
other_secret = "only other.lua can see this"

function upper_still_works() return string.upper("ok") .. ("x"):upper() end
function cannot_see_escape() return tostring(secret_of_escape) end
function sleeps_then_answers(s)
    tikd.sleep(s or 0.01)
    return "slept"
end
function runtime_error()
    local t = nil
    return t.field
end
function error_table() error({ code = 1 }) end
function json_roundtrip()
    local cjson = require "cjson"
    return cjson.encode(cjson.decode('{"a":[1,2,3]}'))
end
function pcall_with_sleep()
    local ok, v = pcall(function() tikd.sleep(0.01); return "inside pcall" end)
    return v
end
function utf16() return tostring(tikd.utf16_len("a😀b")) end
