-- Used by test_budget.c: a rule file that keeps what it allocates, call
-- after call, and one whose C work takes long per VM instruction.
kept = {}

function grab(mib)
    local chunk = string.rep("x", 1024 * 1024 - 64)
    for i = 1, mib do kept[#kept + 1] = chunk .. i end
    return #kept
end

function release()
    kept = {}
    return "released"
end

-- Each `..` copies 8 MiB in C: few instructions, much time.
function slow_concat()
    local s = string.rep("x", 4 * 1024 * 1024)
    while true do local y = s .. s end
end

-- A tight loop only the instruction count or the clock can stop.
function spin()
    while true do end
end
