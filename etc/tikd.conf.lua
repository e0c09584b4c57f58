-- /etc/tikd/tikd.conf.lua - tikd's configuration (a Lua table file, read in a
-- sandbox). `tikd help config` lists every key; docs/configuration.md explains
-- them. tikd reads this file by default (or --config FILE, or $TIKD_CONFIG).

data_dir  = "/var/lib/tikd"        -- the database (made 0700 for the tikd user)
rules_dir = "/etc/tikd/rules"      -- your rule files (*.lua); examples: PREFIX/share/tikd/rules
vault     = { key_file = "/etc/tikd/keys/vault.keys" }  -- made by `tikd vault init`

-- Your TikTok app (developers.tiktok.com: docs/accounts.md walks through it).
-- The client secret does not belong here: put TIKD_CLIENT_SECRET=... in
-- /etc/tikd/env (mode 0600), which the systemd unit reads.
tiktok = {
    -- client_key   = "your app's client key",
    -- redirect_uri = "https://tikd.example.com/oauth/callback",
    --     exactly as registered with TikTok; a reverse proxy with TLS sends it
    --     to `listen` below
    audited = false, -- true once TikTok has audited the app (tikd doctor)
}

-- The public listener: the OAuth callback page, TikTok's webhooks, the media
-- TikTok pulls. Put it behind the reverse proxy; never the admin API.
listen = { "127.0.0.1:8787" }

-- The admin API and the dashboard (bearer tokens: `tikd admin token create`);
-- the CLI also reaches the daemon on admin.sock in data_dir.
admin = { listen = { "127.0.0.1:8788" } }

log = { level = "info", format = "logfmt" }

-- An unaudited app reaches at most 5 creators a day (docs/limits.md).
limits = { active_users = 5 }

-- Alerts to your own endpoint (signed with TIKD_NOTIFY_SECRET from /etc/tikd/env):
-- notify = { webhooks = { "https://hooks.example.com/tikd" } }
