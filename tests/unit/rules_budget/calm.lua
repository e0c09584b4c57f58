-- Used by test_budget.c: an ordinary rule file next to a hog.
function work(mib)
    local t = {}
    local chunk = string.rep("y", 1024 * 1024 - 64)
    for i = 1, mib do t[i] = chunk .. i end
    return #t
end
