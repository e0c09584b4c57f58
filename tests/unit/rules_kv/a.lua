-- Used by test_kv.c: tikd.kv from a rule file with a store behind it.
local kv = tikd.kv

-- test_kv.c runs snippets of Lua here (error cases, one-liners).
function eval(src)
    return assert(load(src))()
end

local function same(a, b, path)
    path = path or "value"
    assert(type(a) == type(b), ("%s: %s ~= %s"):format(path, type(a), type(b)))
    if type(a) == "number" then
        assert(math.type(a) == math.type(b),
               ("%s: %s ~= %s"):format(path, math.type(a), math.type(b)))
    end
    if type(a) ~= "table" then
        assert(a == b, ("%s: %s ~= %s"):format(path, tostring(a), tostring(b)))
        return
    end
    for k, v in pairs(a) do
        same(v, b[k], path .. "." .. tostring(k))
    end
    for k in pairs(b) do
        assert(a[k] ~= nil, path .. "." .. tostring(k) .. " appeared")
    end
end

VALUES = {
    str = "hello",
    bytes = "nul\0inside, \"quotes\", \\ and é ✓",
    empty = "",
    int = 42,
    neg = -7,
    zero = 0,
    float = 1.5,
    whole_float = 2.0,
    tiny = 5e-324,
    third = 1 / 3,
    huge = 1e308,
    big = (1 << 53) + 1,
    max = math.maxinteger,
    min = math.mininteger,
    yes = true,
    no = false,
    list = { 1, 2.5, "three", true, false },
    map = { name = "x", ["with space"] = 1, ["1"] = "a string key" },
    nested = { a = { b = { c = { 1, { d = "deep" } } } }, n = { {}, { {} } } },
    empty_table = {},
}

function set_all()
    for k, v in pairs(VALUES) do
        kv.set(k, v)
    end
    return "ok"
end

function check_all()
    for k, v in pairs(VALUES) do
        same(kv.get(k), v, k)
    end
    -- a table comes back as a new table every time
    assert(kv.get("list") ~= kv.get("list"))
    return "ok"
end

function deep16()
    local t = { "bottom" }
    for _ = 2, 16 do
        t = { t }
    end
    kv.set("deep16", t)
    local got = kv.get("deep16")
    for _ = 1, 15 do
        got = got[1]
    end
    return got[1]
end

function deletes()
    kv.set("gone", "here")
    assert(kv.get("gone") == "here")
    kv.set("gone", nil)
    assert(kv.get("gone") == nil)
    kv.set("gone", nil) -- deleting a missing key is fine
    kv.set("f", false)  -- false is a value, not a delete
    assert(kv.get("f") == false)
    return "ok"
end

function counts()
    local got = {}
    got[#got + 1] = kv.incr("n")       -- from nothing
    got[#got + 1] = kv.incr("n")
    got[#got + 1] = kv.incr("n", 10)
    got[#got + 1] = kv.incr("n", -20)
    got[#got + 1] = kv.incr("n", 0)
    assert(math.type(kv.get("n")) == "integer")
    kv.set("m", math.maxinteger - 1)
    got[#got + 1] = kv.incr("m") == math.maxinteger and "max" or "wrong"
    return table.concat(got, ",")
end

function list_keys(prefix)
    return table.concat(kv.keys(prefix), ",")
end

function shared_write()
    kv.set("shared", "from a")
    return kv.incr("counter")
end

function bad_set()
    tikd.kv.set("k", print)
end
