-- tenants/beta/promo.lua: client Beta's rules. Beta tries the next version
-- of the caption library first (tenants.beta.libs = { captions = "~1.3" })
-- while Acme stays on 1.2: each gets its own copy, per tenant and version.
local captions = require "captions"

tikd.account("beta-main", { tz = "Europe/Berlin", privacy = "SELF_ONLY" })
tikd.schedule("beta-slots", { account = "beta-main", slots = { "30 12 * * 1-5" } })

function on_media(item)
    local caption = assert(captions.for_item(item, { "beta" }))
    return tikd.upload.post{ account = "beta-main", schedule = "beta-slots", media = item.path,
                             caption = caption, key = item.hash }
end
