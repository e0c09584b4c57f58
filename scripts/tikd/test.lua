-- tikd.test: the rule-test harness, for `tikd rules test`.
--
--   local T = require "tikd.test"
--   function test_three_posts_a_day()
--       T.clock("2026-03-02 07:00", "America/New_York")
--       T.account("demo-creator")
--       T.media{ name = "clip.mp4", meta = { caption = "hello" } }
--       T.eq(#T.jobs("demo-creator"), 1)
--   end
--
-- A test file (rules/NAME_test.lua) defines global functions test_*; the
-- runner calls each on a fresh database, with the fake clock at
-- 2026-01-01 00:00 UTC, in the order they appear in the file. A failed
-- assertion raises an error at the test's own line. The engine's side lives
-- in C (bindings/lua_test.c, "tikd.test.host"), which exists in test mode only.
local ok, C = pcall(require, "tikd.test.host")
if not ok then
    error("tikd.test is only available in `tikd rules test`", 3) -- at the require
end
local tikd = require "tikd"
local cjson = require "cjson"

local T = {}

-- ---- showing values and their first difference ---------------------------------------

local function show(v, depth)
    depth = depth or 0
    local t = type(v)
    if t == "string" then
        local s = ("%q"):format(v):gsub("\\\n", "\\n")
        return #s > 200 and s:sub(1, 197) .. '..."' or s
    elseif t ~= "table" then
        return tostring(v)
    elseif depth >= 2 then
        return "{...}"
    end
    local parts, n = {}, #v
    for i = 1, n do
        parts[#parts + 1] = show(v[i], depth + 1)
    end
    local keys = {}
    for k in pairs(v) do
        if not (math.type(k) == "integer" and k >= 1 and k <= n) then
            keys[#keys + 1] = k
        end
    end
    table.sort(keys, function(a, b)
        if type(a) == type(b) and (type(a) == "string" or type(a) == "number") then
            return a < b
        end
        return type(a) < type(b)
    end)
    for _, k in ipairs(keys) do
        local name = type(k) == "string" and k:match("^[%a_][%w_]*$") and k or "[" .. show(k) .. "]"
        parts[#parts + 1] = name .. " = " .. show(v[k], depth + 1)
    end
    local s = "{ " .. table.concat(parts, ", ") .. " }"
    return #s > 300 and s:sub(1, 296) .. " ...}" or s
end

local function key_path(path, k)
    if type(k) == "string" and k:match("^[%a_][%w_]*$") then
        return path == "" and k or path .. "." .. k
    end
    return path .. "[" .. show(k) .. "]"
end

local function sorted_keys(a, b)
    local keys, seen = {}, {}
    for _, t in ipairs({ a, b }) do
        for k in pairs(t) do
            if not seen[k] then
                seen[k] = true
                keys[#keys + 1] = k
            end
        end
    end
    table.sort(keys, function(x, y)
        if type(x) == type(y) and (type(x) == "number" or type(x) == "string") then
            return x < y
        end
        return type(x) < type(y)
    end)
    return keys
end

-- The first place where a and b differ: its path, a's value, b's value.
local function first_diff(a, b, path, seen)
    if a == b then
        return nil
    end
    if type(a) ~= "table" or type(b) ~= "table" then
        return path, a, b
    end
    if seen[a] == b then
        return nil
    end
    seen[a] = b
    for _, k in ipairs(sorted_keys(a, b)) do
        local p, x, y = first_diff(a[k], b[k], key_path(path, k), seen)
        if p then
            return p, x, y
        end
    end
    return nil
end

local function prefix(msg)
    return msg and tostring(msg) .. ": " or ""
end

-- ---- assertions: each raises at the line of the test that called it -----------------------

-- T.eq(actual, expected [, msg]): equal values; tables are compared deeply.
function T.eq(actual, expected, msg)
    local path, a, b = first_diff(actual, expected, "", {})
    if path then
        local where = path ~= "" and "at " .. path .. ": " or ""
        error(prefix(msg) .. where .. "expected " .. show(b) .. ", got " .. show(a), 2)
    end
    return actual
end

-- T.ok(v [, msg]): v is neither nil nor false.
function T.ok(v, msg)
    if not v then
        error(msg and tostring(msg) or "expected a true value, got " .. show(v), 2)
    end
    return v
end

-- T.match(s, pattern [, msg]): s is a string in which the Lua pattern is found.
function T.match(s, pattern, msg)
    if type(s) ~= "string" then
        error(prefix(msg) .. "expected a string matching " .. show(pattern) .. ", got " .. show(s), 2)
    end
    if not s:find(pattern) then
        error(prefix(msg) .. show(s) .. " does not match " .. show(pattern), 2)
    end
    return s
end

-- T.err(fn, pattern [, msg]): fn raises an error whose message matches pattern
-- (any error without a pattern); returns the message.
function T.err(fn, pattern, msg)
    local okay, e = pcall(fn)
    if okay then
        error(prefix(msg) .. "expected an error" ..
              (pattern and " matching " .. show(pattern) or "") .. ", but none was raised", 2)
    end
    local m = tostring(e)
    if pattern and not m:find(pattern) then
        error(prefix(msg) .. "the error " .. show(m) .. " does not match " .. show(pattern), 2)
    end
    return m
end

-- ---- the engine ------------------------------------------------------------------------------

-- Call C function f: { true, results... } or, when it raised an error or
-- returned `false, message`, { false, message }. The T functions raise that
-- message themselves, at level 2 (the test's line): never through a helper's
-- tail call, which would lose the test's frame.
local function host(what, f, ...)
    local r = table.pack(pcall(f, ...))
    if not r[1] then
        return { false, what .. ": " .. tostring(r[2]) }
    end
    if r[2] == false then
        return { false, what .. ": " .. tostring(r[3]) }
    end
    return r
end

-- An instant from "YYYY-MM-DD[ HH:MM[:SS]]" in tz (UTC by default) or epoch seconds.
local function instant(when, tz, what)
    if math.type(when) or type(when) == "number" then
        return when
    end
    local y, mo, d, h, mi, s
    if type(when) == "string" then
        y, mo, d, h, mi, s = when:match("^(%d%d%d%d)%-(%d%d)%-(%d%d)[ T](%d%d):(%d%d):?(%d*)$")
        if not y then
            y, mo, d = when:match("^(%d%d%d%d)%-(%d%d)%-(%d%d)$")
        end
    end
    if not y then
        error(what .. ": a time is \"YYYY-MM-DD HH:MM\" (local time in tz) or epoch seconds, not "
              .. show(when), 3)
    end
    local okay, t = pcall(tikd.cron.time, { year = tonumber(y), month = tonumber(mo),
        day = tonumber(d), hour = tonumber(h) or 0, min = tonumber(mi) or 0,
        sec = tonumber(s) or 0, tz = tz or "UTC" })
    if not okay then
        error(what .. ": " .. tostring(t), 3)
    end
    return t
end

-- T.clock(when [, tz]) -> the instant: set the fake clock to a local time in tz
-- ("2026-12-01 08:00") or to epoch seconds.
function T.clock(when, tz)
    local t = instant(when, tz, "T.clock")
    local r = host("T.clock", C.set_clock, t)
    if not r[1] then
        error(r[2], 2)
    end
    return t
end

-- T.now(): the fake clock.
function T.now()
    return tikd.now()
end

-- T.localtime(t [, tz]) -> "YYYY-MM-DD HH:MM" (":SS" added when not 0): t in tz,
-- the format T.clock reads.
function T.localtime(t, tz)
    local okay, lt = pcall(tikd.cron.localtime, t, tz or "UTC")
    if not okay then
        error("T.localtime: " .. tostring(lt), 2)
    end
    local s = ("%04d-%02d-%02d %02d:%02d"):format(lt.year, lt.month, lt.day, lt.hour, lt.min)
    return lt.sec ~= 0 and s .. (":%02d"):format(lt.sec) or s
end

-- T.account(name): a connected-looking account in the test database (no tokens),
-- so tikd.oauth.account(name) finds it and tikd.upload.post accepts it.
function T.account(name)
    local r = host("T.account", C.account, name)
    if not r[1] then
        error(r[2], 2)
    end
end

-- T.call(rule, fn, ...) -> what fn returned: runs the rule file's global function
-- fn to its end as tikd would (own coroutine and budget; "rules/a.lua", "a.lua"
-- or "a"). Waiting primitives (tikd.sleep, tikd.http) are errors here.
function T.call(rule, fn, ...)
    local r = host("T.call " .. tostring(rule) .. " " .. tostring(fn), C.call, rule, fn, ...)
    if not r[1] then
        error(r[2], 2)
    end
    return table.unpack(r, 3, r.n)
end

-- T.hook(fn, ...) -> how many rules were called: calls hook fn (on_load, ...)
-- on every rule file that defines it.
function T.hook(fn, ...)
    local r = host("T.hook " .. tostring(fn), C.hook, fn, ...)
    if not r[1] then
        error(r[2], 2)
    end
    return r[2]
end

-- T.media{ name= [, folder=] | path=, meta=, content= } -> how many rules were
-- called: every rule's on_media(item) gets the item the intake of `tikd run`
-- would hand over. With name, a file of that name holding `content` (by
-- default a placeholder video, T.video(name)) is made in the test's media folder (a media root
-- during tests), or in a folder of that name inside it (rules route by
-- item.folder); with path, an existing file is used. meta stands for the
-- sidecar (clip.json next to clip.mp4).
function T.media(item)
    if type(item) ~= "table" then
        error("T.media{ name= [, folder=] | path=, meta=, content= } takes a table", 2)
    end
    local spec = { path = item.path, name = item.name, folder = item.folder,
                   content = item.content }
    if item.meta ~= nil then
        local okay, j = pcall(cjson.encode, item.meta)
        if not okay then
            error("T.media: meta cannot be JSON: " .. tostring(j), 2)
        end
        spec.meta_json = j
    end
    local r = host("T.media", C.media, spec)
    if not r[1] then
        error(r[2], 2)
    end
    return r[2]
end

-- T.video(label) -> the bytes of a small placeholder video (a real MP4
-- container: the media probe reads a 10 s 1080x1920 H.264 clip at 30 fps)
-- whose media data names label: the same label gives the same content, for
-- T.media{ ..., content = T.video("x") } under two names. T.media makes such
-- a video by itself when no content is given (labelled by the file name).
function T.video(label)
    local r = host("T.video", C.video, label)
    if not r[1] then
        error(r[2], 2)
    end
    return r[2]
end

-- T.timers(until [, tz]) -> how many firings: every tikd.every / tikd.at timer
-- fires in time order up to `until`, the clock set to each firing; the clock
-- is at `until` afterwards.
function T.timers(when, tz)
    local r = host("T.timers", C.timers, instant(when, tz, "T.timers"))
    if not r[1] then
        error(r[2], 2)
    end
    return r[2]
end

-- T.before_publish(job [, creator]) -> the decision: the rules' last word on a
-- planned job (a job table from T.jobs, or its id), asked exactly as the
-- pipeline asks it before the init: every rule's before_publish in turn, and
-- the account's privacy preference list against what the creator offers. The
-- result is recorded on the job as the pipeline records it and returned:
-- { verdict = "publish" | "changed" | "cancelled" | "deferred" | "invalid",
--   caption, privacy, chosen_by, reason, job }. creator is what creator_info
-- would say: { privacy_options = { ... }, max_duration, username, nickname,
-- comment_disabled, duet_disabled, stitch_disabled } (by default a public
-- account offering PUBLIC_TO_EVERYONE, MUTUAL_FOLLOW_FRIENDS and SELF_ONLY).
function T.before_publish(job, creator)
    local id = type(job) == "table" and job.id or job
    if math.type(id) ~= "integer" then
        error("T.before_publish(job [, creator]) takes a job or its id, not " .. show(job), 2)
    end
    local r = host("T.before_publish", C.before_publish, id, creator)
    if not r[1] then
        error(r[2], 2)
    end
    return r[2]
end

-- T.jobs([account]) -> the jobs in the test database, in id order: { id, account,
-- due (when it would post), planned_at, kind, mode ("direct", "draft" or
-- "approval"), media | images, caption, privacy, chosen_by, state, reason }.
function T.jobs(account)
    local r = host("T.jobs", C.jobs, account)
    if not r[1] then
        error(r[2], 2)
    end
    return r[2]
end

return T
