-- Used by test_host.c: which thread a call runs in, and what rule code can do
-- with a thread it captured.
local seen = {} -- every thread this file's calls ran in (kept: no address is reused)

local function mine()
    local co = coroutine.running()
    for _, s in ipairs(seen) do
        if s == co then
            return "again " .. tostring(co)
        end
    end
    seen[#seen + 1] = co
    return "new " .. tostring(co)
end

function which()
    return mine()
end

function nap(secs)
    local r = mine()
    tikd.sleep(secs)
    return r
end

function fail()
    mine()
    error("fails on purpose")
end

-- Resume or close any thread a call of this file ran in: tikd refuses both.
function poke()
    for _, co in ipairs(seen) do
        local ok, err = pcall(coroutine.resume, co)
        if ok then
            return "resumed " .. tostring(co)
        end
        if not tostring(err):find("owned by tikd", 1, true) then
            return "unexpected: " .. tostring(err)
        end
        if pcall(coroutine.close, co) then
            return "closed " .. tostring(co)
        end
    end
    return "refused " .. #seen
end
