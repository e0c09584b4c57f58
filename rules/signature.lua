-- signature.lua: the last word before each of one creator's posts
-- (before_publish, asked after creator_info, just before the init):
--  * every caption ends with the creator's signature tag;
--  * a public post goes to followers instead when the account has gone
--    private (creator_info offers FOLLOWER_OF_CREATOR, not PUBLIC_TO_EVERYONE);
--  * nothing goes out between 00:00 and 06:00 in Vienna: it waits for 06:00.
-- What this rule changes is recorded as its choice, in the job and the audit log.
local ACCOUNT, TAG, TZ = "sig-creator", "#studiohanna", "Europe/Vienna"

tikd.account(ACCOUNT, { tz = TZ, privacy = "PUBLIC_TO_EVERYONE" })

local function offers(creator, level)
    for _, l in ipairs(creator.privacy_options) do
        if l == level then
            return true
        end
    end
    return false
end

function before_publish(job, creator)
    if job.account ~= ACCOUNT then
        return nil
    end
    local lt = tikd.cron.localtime(tikd.now(), TZ)
    if lt.hour < 6 then
        return { defer = (6 - lt.hour) * 3600 - lt.min * 60 - lt.sec,
                 reason = "not before 06:00 in Vienna" }
    end
    local change = {}
    if not job.caption:find(TAG, 1, true) then
        local signed = job.caption == "" and TAG or job.caption .. " " .. TAG
        if (tikd.utf16_len(signed) or math.huge) <= 2200 then -- still a caption TikTok takes
            change.caption = signed
        end
    end
    if job.privacy == "PUBLIC_TO_EVERYONE" and not offers(creator, "PUBLIC_TO_EVERYONE")
        and offers(creator, "FOLLOWER_OF_CREATOR") then
        change.privacy = "FOLLOWER_OF_CREATOR"
    end
    return next(change) and change or nil
end
