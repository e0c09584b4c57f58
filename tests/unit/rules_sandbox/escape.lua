-- Escape attempts: each function is one thing hostile rule code tries.
-- test_sandbox.c calls each and expects a clear error, then checks that
-- the engine still runs the next call.
secret_of_escape = "only escape.lua can see this"

function alive() return "alive" end

function use_io() return io.open("/etc/passwd") end
function use_os_execute() return os.execute("id") end
function use_os_exit() os.exit(1) end
function use_os_remove() return os.remove("/tmp/x") end
function use_os_getenv() return os.getenv("HOME") end
function use_debug() return debug.getinfo(1) end
function use_dofile() return dofile("/etc/passwd") end
function use_loadfile() return loadfile("/etc/passwd") end
function use_package() return package.loadlib("libc.so.6", "system") end
function use_string_dump() return string.dump(alive) end
function use_method_dump() return ("").dump(alive) end
function load_bytecode()
    local f, err = load("\27Lua\84\0\25\147\13\10\26\10", "x", "b")
    if not f then error(err) end
end
function load_bytecode_default_mode()
    local f, err = load("\27Lua\84\0\25\147\13\10\26\10")
    if not f then error(err) end
end
function require_io() return require("io") end
function require_path() return require("../../etc/passwd") end
function require_c_module() return require("lfs") end
function gc_stop() collectgarbage("stop") end
function string_metatable() getmetatable("").__index.upper = function() return "pwned" end end
function string_write() string.upper = function() return "pwned" end end
function string_rawset() rawset(string, "upper", function() return "pwned" end) end
function string_view_metatable() return getmetatable(string).__index end
function pairs_leak()
    local _, state = pairs(string)
    state.upper = function() return "pwned" end
end
function gc_metamethod() return setmetatable({}, { __gc = function() while true do end end }) end
function infinite_loop() while true do end end
function swallow_budget()
    while true do pcall(function() while true do end end) end
end
function loop_in_coroutine() coroutine.wrap(function() while true do end end)() end
function loop_in_load() load("while true do end")() end
function loop_in_tostring()
    return tostring(setmetatable({}, { __tostring = function() while true do end end }))
end
function memory_bomb()
    local t = {}
    for i = 1, 1e9 do t[i] = ("x"):rep(1024) .. i end
end
function string_bomb() return ("x"):rep(2^40) end
function concat_bomb()
    local s = "x"
    while true do s = s .. s end
end
function deep_recursion()
    local function f(n) return 1 + f(n + 1) end
    return f(1)
end
function pathological_pattern()
    return (string.rep("a", 30000)):find(string.rep("a*", 12) .. "b")
end
function bare_yield() coroutine.yield() end
function sleep_in_sort()
    table.sort({ 3, 2, 1 }, function(a, b) tikd.sleep(0); return a < b end)
end
function sleep_in_wrap() coroutine.wrap(function() tikd.sleep(0) end)() end
function other_rules_globals() return assert(other_secret, "other_secret is not visible") end
function set_env_metatable()
    setmetatable(_G, { __index = function() while true do end end })
    return "set"
end
function hostile_close()
    local x <close> = setmetatable({}, { __close = function() while true do end end })
    error("boom")
end

-- Issue 12: paths that ran with Lua's hooks off, or in C where no
-- instruction is counted. Each must end in its budget, and quickly.

-- the budget fires inside xpcall: the rule's message handler must not run
function xpcall_handler_loops()
    xpcall(function() while true do end end, function() while true do end end)
end
-- the same where a yield cannot cross C (inside a sort comparator)
function xpcall_handler_loops_in_sort()
    table.sort({ 3, 2, 1 }, function(a, b)
        xpcall(function() while true do end end, function() while true do end end)
        return a < b
    end)
end
-- a <close> handler that loops, after the budget ran out
function close_after_budget()
    local x <close> = setmetatable({}, { __close = function() while true do end end })
    while true do end
end
function close_after_budget_in_sort()
    local x <close> = setmetatable({}, { __close = function() while true do end end })
    table.sort({ 3, 2, 1 }, function(a, b) while true do end end)
end
function close_after_budget_in_wrap()
    coroutine.wrap(function()
        local x <close> = setmetatable({}, { __close = function() while true do end end })
        table.sort({ 3, 2, 1 }, function(a, b) while true do end end)
    end)()
end
function close_after_budget_coroutine_close()
    local co = coroutine.create(function()
        local x <close> = setmetatable({}, { __close = function() while true do end end })
        table.sort({ 3, 2, 1 }, function(a, b) while true do end end)
    end)
    coroutine.resume(co)
    coroutine.close(co)
end
-- metatables edited after setmetatable change nothing Lua consults
function call_chain_after_setmetatable()
    local mt = {}
    local t = setmetatable({}, mt)
    mt.__call = t -- too late: t's metatable is a private copy
    return t()
end
function call_not_a_function() return setmetatable({}, { __call = {} }) end
function gc_added_later()
    local mt = {}
    local t = setmetatable({}, mt)
    mt.__gc = function() while true do end end
    t = nil
    collectgarbage("count")
    return "no finalizer"
end
-- C work: charged to the call, not to each library call
function many_patterns()
    local s = string.rep("a", 3000)
    for i = 1, 1000 do pcall(string.find, s, string.rep("a*", 6) .. "b") end
end
function insert_front()
    local t = {}
    for i = 1, 200000 do t[i] = i end
    for i = 1, 100000 do table.insert(t, 1, i) end
end
function remove_front()
    local t = {}
    for i = 1, 200000 do t[i] = i end
    for i = 1, 100000 do table.remove(t, 1) end
end
function unpack_big() return select("#", table.unpack({}, 1, 1e8)) end
function hostile_len_insert()
    local n = 0
    local t = setmetatable({}, { __len = function() n = n + 1; return n == 1 and 1 or 1e9 end })
    for i = 1, 1e6 do table.insert(t, 1, i) end
end
function sort_hostile_len()
    table.sort(setmetatable({}, { __len = function() return 1e8 end }))
end
function json_blowup()
    local json = require "cjson"
    local t = {}
    for i = 1, 40 do t = { t, t } end
    return #json.encode(t)
end
function json_deep()
    local json = require "cjson"
    return json.decode(string.rep("[", 100000) .. string.rep("]", 100000))
end
function print_flood()
    for i = 1, 10000 do print("line", i) end
    return "printed"
end
function log_flood()
    local big = string.rep("x", 100000)
    for i = 1, 1000 do tikd.log.info(big, { field = big }) end
    return "logged"
end
-- recursion through C (gsub callbacks): Lua's "C stack overflow" names no file
function c_stack_overflow()
    local function f(s) return (s:gsub(".", f)) end
    return f("x")
end
