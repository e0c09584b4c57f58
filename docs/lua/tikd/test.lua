---@meta tikd.test
-- LuaLS annotations for tikd.test, the rule-test harness (`tikd rules test`):
-- `local T = require "tikd.test"` in a rules/NAME_test.lua file. See
-- docs/rules.md, "Trying rules before they go live". Documentation only.

---A job in the test database.
---@class tikd.test.Job
---@field id integer
---@field account string
---@field due number when it would post (epoch seconds)
---@field planned_at number
---@field kind "video"|"photo"
---@field mode "direct"|"draft"|"approval"
---@field media string? a video's path or URL
---@field images string[]? a photo post's images
---@field caption string
---@field privacy string
---@field chosen_by string "rule:FILE@genN"
---@field state string
---@field reason string

---@class tikd.test
local T = {}

---Set the fake clock: a local time in tz ("2026-12-01 08:00", UTC by default) or epoch seconds.
---@param when string|number
---@param tz string?
---@return number instant
function T.clock(when, tz) end

---The fake clock.
---@return number
function T.now() end

---"YYYY-MM-DD HH:MM" (":SS" when not 0) of instant t in tz: the format T.clock reads.
---@param t number
---@param tz string?
---@return string
function T.localtime(t, tz) end

---A connected-looking account in the test database (no tokens).
---@param name string
function T.account(name) end

---Run a rule file's global function to its end and return its results.
---@param rule string "rules/a.lua", "a.lua" or "a"
---@param fn string
---@return any ...
function T.call(rule, fn, ...) end

---Call hook fn on every rule that defines it; how many were called.
---@param fn string
---@return integer
function T.hook(fn, ...) end

---Every rule's on_media(item), with the item the intake would hand over.
---@param item {name: string?, folder: string?, path: string?, meta: table?, content: string?}
---@return integer rules called
function T.media(item) end

---Fire the declared timers in time order up to `until` (inclusive).
---@param until_ string|number
---@param tz string?
---@return integer firings
function T.timers(until_, tz) end

---The rules' before_publish on a planned job, as the pipeline asks it; recorded on the job.
---@param job tikd.test.Job|integer
---@param creator tikd.Creator? by default a public account offering three levels
---@return {verdict: "publish"|"changed"|"cancelled"|"deferred"|"invalid", caption: string, privacy: string, chosen_by: string, reason: string, job: tikd.test.Job}
function T.before_publish(job, creator) end

---The jobs in the test database, in id order.
---@param account string?
---@return tikd.test.Job[]
function T.jobs(account) end

---Equal values (tables deeply); names the first difference.
---@param actual any
---@param expected any
---@param msg string?
---@return any actual
function T.eq(actual, expected, msg) end

---A true value.
---@generic V
---@param v V
---@param msg string?
---@return V
function T.ok(v, msg) end

---A string in which the Lua pattern is found.
---@param s string
---@param pattern string
---@param msg string?
---@return string
function T.match(s, pattern, msg) end

---fn raises an error matching pattern; returns the message.
---@param fn fun()
---@param pattern string?
---@param msg string?
---@return string
function T.err(fn, pattern, msg) end

return T
