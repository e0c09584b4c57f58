-- ab_captions.lua: two caption styles in turn (A/B), and which one did
-- better: the variant of each post is kept in tikd.kv and counted when the
-- post is published.
tikd.account("ab-creator", { tz = "Europe/Paris", privacy = "SELF_ONLY" })
tikd.schedule("ab-daily", { account = "ab-creator", slots = { "0 10 * * *", "0 18 * * *" } })

local VARIANTS = {
    "{title} ✨ {tags}",
    "New: {title}. What do you think? {tags}",
}

function on_media(item)
    if not item.folder:match("/ab$") or not tikd.oauth.account("ab-creator") then
        return
    end
    local template, n = tikd.rotate("style", VARIANTS)
    local title = (item.meta and item.meta.title) or item.name:gsub("%.%w+$", "")
    local caption = assert(tikd.caption(template, { title = title,
                                                    tags = tikd.hashtags({ "paris" }) }))
    local id = tikd.upload.post{ account = "ab-creator", schedule = "ab-daily",
                                 media = item.path, caption = caption, key = item.hash }
    if id then
        tikd.kv.set("variant:" .. id, n)
    end
    return id, n
end

function on_published(job)
    local v = tikd.kv.get("variant:" .. job.id)
    if v then
        tikd.kv.incr("published:" .. v)
    end
end
