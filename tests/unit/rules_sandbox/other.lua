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
-- tikd.json: lua-cjson's dialect, strict JSON both ways
function json_cases()
    local json = require "tikd.json"
    assert(require("cjson").null == json.null) -- the same module under lua-cjson's name
    local function eq(a, b) assert(a == b, ("%q ~= %q"):format(tostring(a), tostring(b))) end
    eq(json.encode({ 1, 2, 3 }), "[1,2,3]")
    eq(json.encode({}), "{}")
    eq(json.encode({ a = "x" }), '{"a":"x"}')
    eq(json.encode({ [1] = 1, [3] = 3 }), "[1,null,3]")
    eq(json.encode({ [2] = "b" }), '[null,"b"]')
    eq(json.encode("a\"b\\c\n\t\1/é😀"), '"a\\"b\\\\c\\n\\t\\u0001/é😀"')
    eq(json.encode(0.1), "0.1")
    eq(json.encode(1e300), "1e+300")
    eq(json.encode(2^53), "9007199254740992")
    eq(json.encode(math.mininteger), "-9223372036854775808")
    eq(json.encode(json.null), "null")
    eq(json.encode({ true, false }), "[true,false]")
    eq(json.encode({ [1.5] = "x" }), '{"1.5":"x"}')
    for _, bad in ipairs({ 0/0, 1/0, print, "\xff", { [true] = 1 } }) do
        assert(not pcall(json.encode, bad), tostring(bad))
    end
    local t = json.decode('{"a":[1,2.5,"x",true,null,{}],"b":{"c":-0}} ')
    eq(t.a[1], 1); eq(math.type(t.a[1]), "integer"); eq(t.a[2], 2.5); eq(t.a[3], "x")
    eq(t.a[4], true); eq(t.a[5], json.null); eq(type(t.a[6]), "table"); eq(t.b.c, 0)
    eq(json.decode('"\\u00e9\\ud83d\\ude00\\n\\/"'), "é😀\n/")
    eq(json.decode("12345678901234567890"), 12345678901234567890.0)
    eq(json.decode("-9223372036854775808"), math.mininteger)
    eq(json.decode("1e2"), 100.0)
    for _, bad in ipairs({ "", "[1,]", "{\"a\"}", "01", "1.", "-", "[1 2]", "\"\\ud800\"",
                           "\"\\udc00\"", "\"\x01\"", "\"\xff\"", "nul", "[] []", "{'a':1}",
                           "\"abc", "1e", "+1", "[" }) do
        local ok, err = pcall(json.decode, bad)
        assert(not ok, bad)
        assert(err:find("json.decode: .* at byte %d+"), err)
    end
    local deep = string.rep("[", 128) .. string.rep("]", 128)
    assert(pcall(json.decode, deep))
    assert(not pcall(json.decode, "[" .. deep .. "]"))
    return "ok"
end
