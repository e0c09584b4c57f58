-- hello.lua: the smallest useful rule. When a rule generation goes live,
-- tikd calls on_load in a coroutine of its own; tikd.sleep parks it on the
-- event loop without blocking anything else.
function on_load()
    tikd.log.info("hello from the rules", { generation_started = tikd.now() })
    tikd.sleep(0.2)
    local n = tikd.utf16_len("first light over the harbour 🌅 #sunrise")
    tikd.log.info("caption measured in TikTok's units", { utf16_units = n })
end
