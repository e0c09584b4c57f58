-- Used by test_kv.c: a second rule file, which must not see a.lua's keys.
local kv = tikd.kv

function eval(src)
    return assert(load(src))()
end

function shared_read()
    local mine = kv.get("shared")
    kv.set("only_b", 1)
    return ("shared=%s counter=%d keys=%s"):format(tostring(mine), kv.incr("counter"),
                                                   table.concat(kv.keys(), ","))
end
