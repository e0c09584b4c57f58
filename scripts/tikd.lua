-- tikd: the engine's Lua library. Every rule file sees it as the global
-- `tikd` (and can `require "tikd"`); it gathers the C primitives and the
-- helpers written in Lua. It runs in the same sandbox as the rules.
local time = require "tikd.time"
local log = require "tikd.log"
local http = require "tikd.http"
local oauth = require "tikd.oauth"
local upload = require "tikd.upload"
local media = require "tikd.media"
local ratelimit = require "tikd.ratelimit"
local kv = require "tikd.kv"
local cron = require "tikd.cron"
local schedule = require "tikd.schedule"

local tikd = {
    sleep = time.sleep, -- tikd.sleep(seconds): park this call; the loop resumes it
    now = time.now,     -- tikd.now(): seconds since the epoch, from tikd's clock
    log = log,          -- tikd.log.info(msg [, fields]) and debug/warn/error
    http = http,        -- tikd.http.request{url=...}: only hosts in http.allow_hosts
    oauth = oauth,      -- tikd.oauth.accounts(), tikd.oauth.account(name):info(): no tokens
    upload = upload,    -- tikd.upload.post{...}, .status(id), .await(id [, timeout])
    media = media,      -- tikd.media.probe(path [, max_duration]): fields and TikTok's verdict
    ratelimit = ratelimit, -- tikd.ratelimit.new(name, {count=, per=}):take(), .budget(acct, name)
    kv = kv,            -- tikd.kv.get(k), .set(k, v), .incr(k), .keys(prefix): this rule file's own
    cron = cron,        -- tikd.cron.parse(expr):next(t [, tz]), .localtime, .time{...}, .zone_ok
    -- declarations, at the top of a rule file (see docs/rules.md):
    account = schedule.account,     -- tikd.account(name, {tz=, privacy=, caption=, daily_max=})
    schedule = schedule.schedule,   -- tikd.schedule(name, {account=, slots=, jitter=, spacing=, ...})
    every = schedule.every,         -- tikd.every(seconds, "fn"): call fn() every so often
    at = schedule.at,               -- tikd.at("30 7 * * 1-5", "fn" [, tz]): call fn() on a cron
    next_slot = schedule.next_slot, -- tikd.next_slot(name [, after]) -> slot, due
}

-- TikTok counts caption lengths in UTF-16 code units, not bytes or
-- characters: a code point above U+FFFF (most emoji) counts twice.
-- Returns the length, or nil and a message for invalid UTF-8.
function tikd.utf16_len(s)
    local bad = select(2, utf8.len(s))
    if utf8.len(s) == nil then
        return nil, ("not valid UTF-8 at byte %d"):format(bad)
    end
    local n = 0
    for _, cp in utf8.codes(s) do
        n = n + (cp >= 0x10000 and 2 or 1)
    end
    return n
end

-- A caption from a template: "{title} {tags}" filled from vars (a media
-- item's meta, or any table; a list value is joined with spaces). A field
-- with no value is an error, never a blank. The result is checked in
-- TikTok's units against max (2200, a video's caption; 90 for a photo
-- title). Returns the caption, or nil and what is wrong.
function tikd.caption(template, vars, max)
    max = max or 2200
    local missing
    local out = template:gsub("{([%w_]+)}", function(k)
        local v = vars and vars[k]
        if v == nil then
            missing = missing or k
            return ""
        end
        if type(v) == "table" then
            return table.concat(v, " ")
        end
        return tostring(v)
    end)
    if missing then
        return nil, ("caption: no value for {%s}"):format(missing)
    end
    local n, bad = tikd.utf16_len(out)
    if not n then
        return nil, "caption: " .. bad
    end
    if n > max then
        return nil, ("caption: %d UTF-16 units long; TikTok allows %d"):format(n, max)
    end
    return out
end

-- "#food #travel #acme" from any number of lists of tags (with or without
-- "#"), each tag once, in order.
function tikd.hashtags(...)
    local seen, out = {}, {}
    for _, list in ipairs({ ... }) do
        for _, tag in ipairs(list) do
            local t = tag:gsub("^#", "")
            if t ~= "" and not seen[t:lower()] then
                seen[t:lower()] = true
                out[#out + 1] = "#" .. t
            end
        end
    end
    return table.concat(out, " ")
end

-- The next of variants, in turn (A/B rotation): the count is kept in the
-- rule file's own tikd.kv, so it goes on across reloads and restarts.
-- Returns the variant and its number (1 = the first).
function tikd.rotate(key, variants)
    assert(type(variants) == "table" and #variants > 0, "tikd.rotate: variants must be a list")
    local n = tikd.kv.incr("rotate:" .. key)
    local i = (n - 1) % #variants + 1
    return variants[i], i
end

return tikd
