-- signature_test.lua: before_publish asked as the pipeline asks it (T.before_publish):
-- the caption and privacy it chose, and that the job records this rule as the chooser.
local T = require "tikd.test"
local TZ = "Europe/Vienna"

local function plan(caption)
    T.account("sig-creator")
    return assert(tikd.upload.post{ account = "sig-creator", caption = caption,
                                    media = "https://cdn.example.com/drop.mp4" })
end

function test_the_signature_is_added_as_this_rules_choice()
    T.clock("2026-12-01 10:00", TZ)
    local d = T.before_publish(plan("new drop"))
    T.eq(d.verdict, "changed")
    T.eq(d.caption, "new drop #studiohanna")
    T.eq(d.privacy, "PUBLIC_TO_EVERYONE") -- the account's declared default, unchanged
    T.match(d.chosen_by, "^rule:rules/signature%.lua@gen")
    local job = T.jobs()[1]
    T.eq(job.caption, "new drop #studiohanna")
    T.eq(job.chosen_by, d.chosen_by)
    -- signed already: no opinion, the post goes as it is
    T.eq(T.before_publish(job).verdict, "publish")
end

function test_a_creator_gone_private_gets_followers_not_everyone()
    T.clock("2026-12-01 10:00", TZ)
    local d = T.before_publish(plan("#studiohanna back soon"),
        { privacy_options = { "FOLLOWER_OF_CREATOR", "MUTUAL_FOLLOW_FRIENDS", "SELF_ONLY" } })
    T.eq(d.verdict, "changed")
    T.eq(d.privacy, "FOLLOWER_OF_CREATOR")
    T.eq(d.caption, "#studiohanna back soon")
    T.eq(T.jobs()[1].privacy, "FOLLOWER_OF_CREATOR")
end

function test_the_small_hours_wait_for_six()
    T.clock("2026-12-01 03:30", TZ)
    local d = T.before_publish(plan("late"))
    T.eq(d.verdict, "deferred")
    T.match(d.reason, "^deferred by rule:rules/signature%.lua@gen%d+: not before 06:00 in Vienna$")
    local job = T.jobs()[1]
    T.eq(job.state, "deferred")
    T.eq(T.localtime(job.due, TZ), "2026-12-01 06:00")
end
