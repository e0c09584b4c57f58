---@meta tikd
-- LuaLS annotations for the whole rule API: point your editor at this file
-- (.luarc.json: { "workspace.library": ["/usr/local/share/doc/tikd/lua"] },
-- or this folder of the source tree) and it completes and type-checks rules.
-- This file is documentation: tikd never loads it.

---@alias tikd.Privacy "PUBLIC_TO_EVERYONE"|"MUTUAL_FOLLOW_FRIENDS"|"FOLLOWER_OF_CREATOR"|"SELF_ONLY"

---A job, as hooks and tikd.upload see it. Never a token.
---@class tikd.Job
---@field id integer
---@field account string
---@field state "scheduled"|"awaiting_approval"|"preflight"|"uploading"|"processing"|"deferred"|"published"|"in_inbox"|"failed"|"cancelled"|"unsure"
---@field final boolean
---@field mode "direct"|"draft"
---@field kind "video"|"photo"
---@field caption string
---@field privacy string
---@field reason string why it waits, or why it failed
---@field publish_id string
---@field post_ids string TikTok's 19-digit post ids, exact, comma-separated
---@field chosen_by string "operator" or "rule:FILE@genN"

---A media item from a watched folder (intake.folders).
---@class tikd.MediaItem
---@field path string absolute path
---@field name string file name
---@field folder string the watched folder it arrived in
---@field hash string SHA-256 of the content, hex: one item per content
---@field size integer bytes
---@field meta table? the decoded sidecar NAME.json, if there is one

---An account as rules see it (no token, ever).
---@class tikd.AccountInfo
---@field name string
---@field state "active"|"pending"|"needs_reauth"|"revoked"
---@field reason string
---@field open_id string
---@field scopes string

---@class tikd.AccountHandle
local AccountHandle = {}
---@return tikd.AccountInfo
function AccountHandle:info() end
---@return string
function AccountHandle:name() end

---@class tikd.HttpResponse
---@field status integer
---@field body string
---@field headers table<string, string>

---@class tikd.Limiter
local Limiter = {}
---Take one cell if one is free now.
---@return boolean ok
---@return number at the moment one is free (now when ok)
function Limiter:take() end
---The same question, taking nothing.
---@return boolean ok
---@return number at
function Limiter:check() end

---@class tikd.Schedule
local CronSchedule = {}
---The first firing strictly after `after` in zone tz.
---@param after number epoch seconds
---@param tz string? IANA zone, default "UTC"
---@return integer|nil next
---@return string? why
function CronSchedule:next(after, tz) end

---@class tikd.LocalTime
---@field year integer
---@field month integer
---@field day integer
---@field hour integer
---@field min integer
---@field sec integer
---@field wday integer 1 is Sunday
---@field yday integer
---@field utc_offset integer seconds east of UTC
---@field abbr string

---@class tikd.PostSpec
---@field account string
---@field media string? a video: a file under media_roots, or an https URL TikTok pulls
---@field images string[]? a photo post: 1 to 35 image files or https URLs
---@field privacy tikd.Privacy? default: the account's declaration (required for a direct post)
---@field caption string? up to 2200 UTF-16 units (a photo title: 90)
---@field description string? photo posts: up to 4000 units
---@field draft boolean? send to the creator's inbox
---@field schedule string? book this schedule's next free slot
---@field after number? with schedule: the slot after this moment (default now)
---@field at number? post at this moment (epoch seconds) instead
---@field approval boolean? hold for `tikd job approve`
---@field approval_deadline number?
---@field disable_comment boolean?
---@field disable_duet boolean?
---@field disable_stitch boolean?
---@field brand_content boolean?
---@field brand_organic boolean?
---@field is_aigc boolean?
---@field cover_ms integer?
---@field cover_index integer? photo posts, 0-based
---@field auto_music boolean? photo posts
---@field key string? idempotency within the rule file: the same key, the same job
---@field again boolean? post video content this account already has planned or posted

---@class tikd.ScheduleSpec
---@field account string
---@field slots string|string[] cron expressions (up to 16)
---@field slot string? one cron expression
---@field tz string? IANA zone; default the account's, else UTC
---@field jitter number? seconds into the slot, at most (reproducible)
---@field spacing number? seconds between two posts of the account
---@field daily_max integer? posts per local day
---@field blackout ({cron: string, hours: number?, minutes: number?}|{from: string|number, to: string|number})[]?

---@class tikd.AccountSpec
---@field tz string? IANA zone
---@field privacy tikd.Privacy|tikd.Privacy[]? default privacy of its posts; a list: in order of preference, the first offered at the init
---@field caption string? default caption
---@field daily_max integer? below TikTok's cap, for all its schedules

---@class tikd
tikd = {}

---Park this call for at least `seconds` of loop time.
---@param seconds number
---@return true
function tikd.sleep(seconds) end

---Seconds since the epoch, from tikd's clock (tests replace it).
---@return number
function tikd.now() end

---@class tikd.log
tikd.log = {}
---@param msg string
---@param fields table<string, string|number|boolean>?
function tikd.log.debug(msg, fields) end
---@param msg string
---@param fields table<string, string|number|boolean>?
function tikd.log.info(msg, fields) end
---@param msg string
---@param fields table<string, string|number|boolean>?
function tikd.log.warn(msg, fields) end
---@param msg string
---@param fields table<string, string|number|boolean>?
function tikd.log.error(msg, fields) end

---@class tikd.http
tikd.http = {}
---An HTTP request to a host in http.allow_hosts; waits without blocking anything.
---@param req {url: string, method: string?, headers: table<string,string>?, body: string?, timeout: number?}
---@return tikd.HttpResponse|nil
---@return string? message
---@return string? code
function tikd.http.request(req) end

---@class tikd.oauth
tikd.oauth = {}
---@param name string
---@return tikd.AccountHandle|nil
function tikd.oauth.account(name) end
---@return tikd.AccountHandle[]
function tikd.oauth.accounts() end

---@class tikd.upload
tikd.upload = {}
---Plan a post through the job ledger (same checks, exactly once).
---@param spec tikd.PostSpec
---@return integer|nil id
---@return string|number|nil slot_or_problems the booked slot (with schedule), or the problems
function tikd.upload.post(spec) end
---A deliberate "not this one", on the record.
---@param spec {account: string?, media: string?, reason: string}
---@return true
function tikd.upload.skip(spec) end
---@param id integer
---@return tikd.Job|nil
function tikd.upload.status(id) end
---Wait until the job is final.
---@param id integer
---@param timeout number?
---@return tikd.Job|nil
---@return string? message
function tikd.upload.await(id, timeout) end

---One finding of TikTok's media rules (`tikd media rules` lists them).
---@class tikd.MediaFinding
---@field rule string "video.fps", "video.duration.max", ...
---@field level "refuse"|"warn"
---@field text string what was found and what TikTok accepts

---What a video is, as `tikd media check --json` reports it. The probe's
---fields are absent when the fast path alone decided (a container TikTok
---does not take, a file over 4 GB).
---@class tikd.MediaInfo
---@field container string "mp4", "mov", "3gp", "webm", "matroska", "avi", ...
---@field mime string? the upload's Content-Type, for containers TikTok takes
---@field bytes integer
---@field codec string? FFmpeg's name: "h264", "hevc", "vp8", "vp9", ...
---@field codec_name string? "H.264", "H.265", ...
---@field profile string?
---@field width integer? as shown (rotation applied)
---@field height integer? as shown
---@field coded_width integer?
---@field coded_height integer?
---@field rotation integer? degrees, from the display matrix
---@field fps number?
---@field duration number? seconds, edit lists and fragments applied
---@field bit_rate integer? bits per second
---@field audio_codec string?
---@field verdict "ok"|"warn"|"refused"
---@field findings tikd.MediaFinding[]

---@class tikd.media
tikd.media = {}
---Read a video under media_roots (FFmpeg's libavformat, in a confined
---process of its own; the call waits, the loop goes on) and judge it by
---TikTok's rules, with a creator's longest video if given.
---@param path string
---@param max_duration integer? seconds (creator_info's max_video_post_duration_sec)
---@return tikd.MediaInfo|nil
---@return string? message
function tikd.media.probe(path, max_duration) end

---@class tikd.ratelimit
tikd.ratelimit = {}
---A limiter of the rule file's own, kept in LMDB.
---@param name string
---@param rate {count: number, per: number, burst: number?}
---@return tikd.Limiter
function tikd.ratelimit.new(name, rate) end
---A TikTok budget of an account, read-only.
---@param account string
---@param budget "video_init"|"inbox_init"|"content_init"|"creator_info"|"status"|"daily_posts"|"pending_shares"|"active_users"
---@return {limited: boolean, used: number, cap: number, held: number, next_at: number}
function tikd.ratelimit.budget(account, budget) end

---@class tikd.kv
tikd.kv = {}
---@param key string
---@return any
function tikd.kv.get(key) end
---@param key string
---@param value any nil deletes
function tikd.kv.set(key, value) end
---@param key string
---@param by integer?
---@return integer
function tikd.kv.incr(key, by) end
---@param prefix string?
---@return string[]
function tikd.kv.keys(prefix) end

---@class tikd.cron
tikd.cron = {}
---@param expr string 5-field cron (cronie) or @daily, @hourly, ...
---@return tikd.Schedule
function tikd.cron.parse(expr) end
---@param t number
---@param tz string?
---@return tikd.LocalTime
function tikd.cron.localtime(t, tz) end
---@param fields {year: integer, month: integer, day: integer, hour: integer?, min: integer?, sec: integer?, tz: string?}
---@return integer
function tikd.cron.time(fields) end
---@param tz string
---@return boolean ok
---@return string? why
function tikd.cron.zone_ok(tz) end

---Declare an account's defaults (at the top of a rule file).
---@param name string
---@param spec tikd.AccountSpec?
function tikd.account(name, spec) end

---Declare a schedule (at the top of a rule file).
---@param name string
---@param spec tikd.ScheduleSpec
function tikd.schedule(name, spec) end

---Call the rule file's global function `fn` every `seconds`.
---@param seconds number
---@param fn string
function tikd.every(seconds, fn) end

---Call the rule file's global function `fn` at each firing of `cron`.
---@param cron string
---@param fn string
---@param tz string?
function tikd.at(cron, fn, tz) end

---Where the schedule's next post would go.
---@param name string
---@param after number?
---@return number|nil slot
---@return number|string|nil due_or_why
function tikd.next_slot(name, after) end

---"{title} {tags}" filled from vars; nil and why when a field is missing or it is too long.
---@param template string
---@param vars table
---@param max integer? default 2200
---@return string|nil
---@return string? why
function tikd.caption(template, vars, max) end

---"#a #b" from lists of tags, each once.
---@param ... string[]
---@return string
function tikd.hashtags(...) end

---The next of variants in turn, counted in the rule file's kv.
---@generic T
---@param key string
---@param variants T[]
---@return T variant
---@return integer index
function tikd.rotate(key, variants) end

---The length of s as TikTok counts captions (UTF-16 code units).
---@param s string
---@return integer|nil
---@return string? why
function tikd.utf16_len(s) end

---What creator_info says of the account now.
---@class tikd.Creator
---@field privacy_options tikd.Privacy[]
---@field max_duration integer seconds
---@field username string
---@field nickname string
---@field comment_disabled boolean
---@field duet_disabled boolean
---@field stitch_disabled boolean

-- Hooks a rule file may define (globals):

---A new rule generation went live.
function on_load() end
---The last word before a job's init: nil, or changes, a defer or a cancel.
---@param job tikd.Job
---@param creator tikd.Creator
---@return {caption: string?, privacy: tikd.Privacy?, defer: number?, cancel: boolean?, reason: string?}|nil
function before_publish(job, creator) end
---@param job tikd.Job
function on_published(job) end
---@param job tikd.Job
function on_failed(job) end
---@param account tikd.AccountInfo
function on_account(account) end
---@param item tikd.MediaItem
function on_media(item) end
---Something an operator must see (docs/rules.md): kind "account.reauth", "failures",
---"daily_cap", "breaker", "reload" or "compliance"; subject what it is about.
---@param alert {kind: string, subject: string, detail: string}
function on_alert(alert) end
