-- tenants/acme/promo.lua: client Acme's rules (tenants.acme.rules_dir). They
-- see only Acme's accounts, media roots, hosts and kv; its intake folders'
-- media comes here, and here only.
local captions = require "captions" -- the version tenants.acme.libs pins

tikd.account("acme-main", { tz = "America/New_York", privacy = "PUBLIC_TO_EVERYONE" })
tikd.schedule("acme-slots", { account = "acme-main", slots = { "0 9 * * *", "0 18 * * *" },
                              spacing = 4 * 3600 })

function on_media(item)
    local caption = assert(captions.for_item(item, { "acme" }))
    local id, err = tikd.upload.post{ account = "acme-main", schedule = "acme-slots",
                                      media = item.path, caption = caption, key = item.hash }
    if not id then tikd.log.warn("acme: not planned", { why = err }) end
    return id
end
