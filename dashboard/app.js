// tikd's dashboard: a small hand-written app over the admin API (docs/api.md).
// No framework and no build step. Everything shown comes from /api/v1 with the
// token the operator typed (kept in sessionStorage, sent as a header, never a
// cookie); text from the API is always set as text, never parsed as HTML.
"use strict";

const state = {
  token: sessionStorage.getItem("tikd.token") || "",
  lastEventId: 0,
  timer: 0,
  rendering: false,
  again: false,
  notes: {}, // job id -> the note being typed: a live refresh keeps it
  links: {}, // account -> its authorize link, once asked for
};

// ---- little helpers -------------------------------------------------------

function h(tag, attrs, ...kids) {
  const el = document.createElement(tag);
  for (const [k, v] of Object.entries(attrs || {})) {
    if (v === null || v === undefined || v === false) continue;
    if (k.startsWith("on")) el.addEventListener(k.slice(2), v);
    else if (k === "class") el.className = v;
    else el.setAttribute(k, v === true ? "" : v);
  }
  for (const kid of kids.flat(Infinity)) {
    if (kid === null || kid === undefined || kid === false) continue;
    el.append(kid instanceof Node ? kid : document.createTextNode(String(kid)));
  }
  return el;
}

const $ = (sel) => document.querySelector(sel);

function when(t) {
  if (!t) return "-";
  return t.replace("T", " ").replace("Z", " UTC");
}

function stateTag(s) {
  return h("span", { class: "state " + s, "data-state": s }, s);
}

class ApiError extends Error {
  constructor(status, code, message) {
    super(message);
    this.status = status;
    this.code = code;
  }
}

async function api(method, path, body) {
  const opt = { method, headers: { Authorization: "Bearer " + state.token } };
  if (body !== undefined) {
    opt.headers["Content-Type"] = "application/json";
    opt.body = JSON.stringify(body);
  }
  const res = await fetch(path, opt);
  const doc = await res.json().catch(() => ({}));
  if (!res.ok) {
    const e = doc.error || {};
    if (res.status === 401) signOut(e.message || "signed out");
    throw new ApiError(res.status, e.code || "http_" + res.status, e.message || res.statusText);
  }
  return doc;
}

function table(head, rows, onclick) {
  return h("table", {},
    h("thead", {}, h("tr", {}, head.map((c) => h("th", {}, c)))),
    h("tbody", {}, rows.map((r) => h("tr", r.id !== undefined && onclick ?
      { class: "clickable", "data-id": r.id, onclick: () => onclick(r) } : {},
      r.cells.map((c) => h("td", {}, c))))));
}

function errorBox(e) {
  return h("p", { class: "error", role: "alert" }, e.code ? `${e.code}: ${e.message}` : String(e));
}

// ---- pages ------------------------------------------------------------------

const pages = {};

pages.accounts = async () => {
  const { accounts } = await api("GET", "/api/v1/accounts");
  const out = h("div", {});
  const link = (name) => {
    const r = state.links[name];
    return r ? [h("a", { href: r.authorize_url, target: "_blank", rel: "noopener noreferrer",
      class: "authorize" }, "Open TikTok to approve"),
    h("span", { class: "muted" }, ` (valid ${Math.round(r.valid_s / 60)} min, once)`)] : [];
  };
  const connect = async (name, box) => {
    box.replaceChildren("…");
    try {
      state.links[name] = await api("POST", `/api/v1/accounts/${encodeURIComponent(name)}/connect`);
      box.replaceChildren(...link(name));
    } catch (e) { box.replaceChildren(errorBox(e)); }
  };
  out.append(h("h1", {}, "Accounts"), table(
    ["Account", "State", "Access token until", "Refresh token until", "Why", ""],
    accounts.map((a) => {
      const box = h("span", {}, link(a.name));
      return { cells: [a.name, stateTag(a.state), when(a.access_expires_at), when(a.refresh_expires_at),
        a.reason || "", h("span", {}, h("button", { type: "button", "data-connect": a.name,
          onclick: () => connect(a.name, box) }, a.state === "active" ? "Reconnect" : "Connect"), " ", box)] };
    })));
  const name = h("input", { id: "new-account", placeholder: "account name", pattern: "[A-Za-z0-9._-]{1,64}" });
  const box = h("span", {});
  out.append(h("h2", {}, "Connect another account"), h("div", { class: "actions" }, name,
    h("button", { type: "button", onclick: () => name.value && connect(name.value, box) }, "Connect"), box));
  return out;
};

async function jobsTable(query, empty) {
  const { jobs } = await api("GET", "/api/v1/jobs" + query);
  if (!jobs.length) return h("p", { class: "muted" }, empty);
  return table(["Job", "State", "Account", "Kind", "Due", "Media", "Why"], jobs.map((j) => ({
    id: j.id,
    cells: [String(j.id), stateTag(j.state), j.account, j.kind + (j.mode === "draft" ? " (draft)" : ""),
      when(j.due_at), j.kind === "photo" ? `${j.images.length} images` : (j.media || "").split("/").pop(),
      j.reason || ""],
  })), (j) => { location.hash = "#/jobs/" + j.id; });
}

pages.queue = async (arg) => {
  const all = arg === "all";
  return h("div", {}, h("h1", {}, "Queue"),
    h("div", { class: "toolbar" }, h("a", { href: all ? "#/queue" : "#/queue/all" },
      all ? "Only what is not final" : "Show finished jobs too")),
    await jobsTable(all ? "?all=1&limit=1000" : "?limit=1000", "Nothing waits."));
};

// Dates and hours in an IANA zone (a zone the browser does not know: UTC).
function zoneOk(tz) {
  try {
    new Intl.DateTimeFormat("en-CA", { timeZone: tz });
    return tz;
  } catch (e) {
    return "UTC";
  }
}
// "2026-12-04" of t (epoch ms) in zone tz
function dayIn(t, tz) {
  return new Intl.DateTimeFormat("en-CA", { timeZone: tz, year: "numeric", month: "2-digit", day: "2-digit" })
    .format(new Date(t));
}
function hourIn(t, tz) {
  return new Intl.DateTimeFormat("en-GB", { timeZone: tz, hour: "2-digit", minute: "2-digit" }).format(new Date(t));
}
// The next n calendar days in tz, as "YYYY-MM-DD" and a label: counted by
// date, never by 24-hour steps (a DST change would skip or repeat a day).
function daysIn(tz, n) {
  const [y, m, d] = dayIn(Date.now(), tz).split("-").map(Number);
  return [...Array(n)].map((_, i) => {
    const noon = new Date(Date.UTC(y, m - 1, d + i, 12));
    return {
      key: noon.toISOString().slice(0, 10),
      label: new Intl.DateTimeFormat("en-GB", { timeZone: "UTC", weekday: "short", day: "numeric", month: "short" })
        .format(noon),
    };
  });
}

pages.calendar = async () => {
  const from = new Date(Date.now() - 86400000).toISOString().slice(0, 19) + "Z";
  const to = new Date(Date.now() + 9 * 86400000).toISOString().slice(0, 19) + "Z";
  const [{ jobs }, { accounts }] = await Promise.all([
    api("GET", `/api/v1/jobs?limit=1000&due_after=${from}&due_before=${to}`), api("GET", "/api/v1/accounts")]);
  const zone = Object.fromEntries(accounts.map((a) => [a.name, zoneOk(a.tz || "UTC")]));
  const names = [...new Set(jobs.map((j) => j.account))].sort();
  const out = h("div", {}, h("h1", {}, "Calendar"),
    h("p", { class: "muted" }, "The next seven days of booked posts, each account in its own time zone."));
  for (const acct of names) {
    const tz = zone[acct] || "UTC";
    out.append(h("h2", {}, `${acct} `, h("span", { class: "muted", "data-tz": tz }, tz)),
      h("div", { class: "week" }, daysIn(tz, 7).map((day) => {
        const mine = jobs.filter((j) => j.account === acct && j.due_at && dayIn(Date.parse(j.due_at), tz) === day.key);
        return h("div", { class: "day" }, h("h3", {}, day.label),
          mine.map((j) => h("div", { class: "slot", "data-job": j.id, onclick: () => { location.hash = "#/jobs/" + j.id; } },
            `${hourIn(Date.parse(j.due_at), tz)} #${j.id} ${j.state}`)));
      })));
  }
  if (!names.length) out.append(h("p", { class: "muted" }, "Nothing booked."));
  return out;
};

pages.approvals = async (arg, again) => {
  const { jobs } = await api("GET", "/api/v1/jobs?state=awaiting_approval&limit=1000");
  const shown = jobs.map((j) => j.id).join(",");
  if (again && shown === state.approvalsShown) return null; // the same cards: keep them, and the typing
  state.approvalsShown = shown;
  const out = h("div", {}, h("h1", {}, "Waiting for approval"));
  if (!jobs.length) out.append(h("p", { class: "muted", id: "no-approvals" }, "Nothing waits for approval."));
  for (const summary of jobs) {
    const j = await api("GET", "/api/v1/jobs/" + summary.id);
    const note = h("textarea", { rows: 2, placeholder: "a note for the record (optional)",
      oninput: () => { state.notes[j.id] = note.value; } });
    note.value = state.notes[j.id] || "";
    const msg = h("span", {});
    const act = async (verb) => {
      try {
        const r = await api("POST", `/api/v1/jobs/${j.id}/${verb}`, note.value ? { note: note.value } : undefined);
        delete state.notes[j.id];
        msg.replaceChildren(h("span", { class: "ok" }, r.message));
        refreshSoon();
      } catch (e) { msg.replaceChildren(errorBox(e)); }
    };
    out.append(h("div", { class: "card", "data-job": j.id },
      h("strong", {}, `Job ${j.id} for ${j.account}`), " ", stateTag(j.state),
      h("p", { class: "caption" }, j.caption || h("span", { class: "muted" }, "(no caption)")),
      h("dl", {},
        h("dt", {}, "privacy"), h("dd", {}, j.privacy || "(the creator picks: draft)"),
        h("dt", {}, "chosen by"), h("dd", {}, j.chosen_by),
        h("dt", {}, "media"), h("dd", {}, j.kind === "photo" ? j.images.join("\n") : j.media),
        j.video && h("dt", {}, "video"),
        j.video && h("dd", { "data-field": "video" }, `${j.video.codec} in ${j.video.container}, ` +
          `${j.video.width}x${j.video.height}, ${j.video.fps.toFixed(0)} fps, ` +
          `${j.video.duration.toFixed(1)} s, ${(j.video.size / 1e6).toFixed(1)} MB` +
          (j.video.audio_codec ? `, audio ${j.video.audio_codec}` : ", no audio")),
        h("dt", {}, "planned for"), h("dd", {}, when(j.planned_at)),
        h("dt", {}, "approve by"), h("dd", {}, when(j.due_at)),
        h("dt", {}, "options"), h("dd", {}, Object.entries(j.options || {})
          .filter(([, v]) => v).map(([k]) => k).join(", ") || "none")),
      note,
      h("div", { class: "actions" },
        h("button", { type: "button", class: "primary", "data-approve": j.id, onclick: () => act("approve") }, "Approve"),
        h("button", { type: "button", class: "danger", "data-reject": j.id, onclick: () => act("reject") }, "Reject"),
        msg)));
  }
  return out;
};

pages.jobs = async (id) => {
  const j = await api("GET", "/api/v1/jobs/" + encodeURIComponent(id));
  const msg = h("span", {});
  const act = async (verb) => {
    try {
      const r = await api("POST", `/api/v1/jobs/${j.id}/${verb}`);
      msg.replaceChildren(h("span", { class: "ok" }, r.message));
      refreshSoon();
    } catch (e) { msg.replaceChildren(errorBox(e)); }
  };
  const final = ["published", "in_inbox", "failed", "cancelled"].includes(j.state);
  const fields = [["state", stateTag(j.state)], ["why", j.reason || "-"], ["account", j.account],
    ["kind", `${j.kind}, ${j.mode}`], ["media", j.kind === "photo" ? j.images.join("\n") : j.media],
    ["caption", j.caption || "-"], ["privacy", j.privacy || "-"], ["chosen by", j.chosen_by],
    ["due", when(j.due_at)], ["planned for", when(j.planned_at)], ["created", when(j.created_at)],
    ["attempts", String(j.attempts)], ["publish_id", j.publish_id || "-"],
    ["upload", `${j.upload.chunks_done} of ${j.upload.chunks} chunks (${j.upload.bytes} bytes)`],
    ["post ids", j.post_ids.join(", ") || "-"], ["fail reason", j.fail_reason || "-"],
    ["TikTok log_id", j.log_id || "-"]];
  return h("div", {}, h("h1", {}, `Job ${j.id}`),
    h("dl", { class: "fields" }, fields.map(([k, v]) => [h("dt", {}, k), h("dd", { "data-field": k }, v)])),
    h("div", { class: "actions" },
      j.state === "awaiting_approval" && h("button", { type: "button", class: "primary", onclick: () => act("approve") }, "Approve"),
      j.state === "awaiting_approval" && h("button", { type: "button", class: "danger", onclick: () => act("reject") }, "Reject"),
      !final && h("button", { type: "button", class: "danger", onclick: () => act("cancel") }, "Cancel"),
      (j.state === "failed" || j.state === "cancelled") && h("button", { type: "button", onclick: () => act("retry") }, "Retry"),
      msg),
    h("h2", {}, "History"),
    table(["#", "When", "Who", "What", "Detail"], j.history.map((r) => ({
      cells: [String(r.seq), when(r.time), r.actor, r.event, h("span", { class: "mono" }, r.detail || "")],
    }))));
};

pages.rules = async () => {
  const r = await api("GET", "/api/v1/rules");
  const last = r.last_reload;
  const days = h("input", { id: "plan-days", type: "number", min: 1, max: 31, value: 7, size: 3 });
  const preview = h("div", { id: "plan" });
  let asked = 0;
  const plan = async () => {
    const mine = ++asked; /* only the latest answer is shown */
    preview.replaceChildren(h("p", { class: "muted" }, "running a dry run of the live rules…"));
    try {
      const p = await api("GET", "/api/v1/plan?days=" + encodeURIComponent(days.value));
      if (mine !== asked) return;
      preview.replaceChildren(p.posts.length ? table(["When", "Account", "Kind", "Caption", "Privacy", "Chosen by"],
        p.posts.map((x) => ({ cells: [x.local ? `${x.local} (${x.tz})` : when(x.due), x.account, x.kind, x.caption || "", x.privacy || "-", x.chosen_by || ""] })))
        : h("p", { class: "muted" }, `The rules would post nothing in the next ${p.days} days.`));
    } catch (e) {
      if (mine === asked) preview.replaceChildren(errorBox(e));
    }
  };
  const out = h("div", {}, h("h1", {}, "Rules"),
    h("dl", { class: "fields" },
      h("dt", {}, "live generation"), h("dd", { id: "live-gen" }, String(r.live_gen)),
      h("dt", {}, "files"), h("dd", {}, r.files.join(", ") || "(none)")),
    h("h2", {}, "What they would post"),
    h("div", { class: "toolbar" }, "the next", days, "days",
      h("button", { type: "button", id: "plan-run", onclick: plan }, "Preview (a dry run)")),
    preview);
  if (last) {
    out.append(h("h2", {}, "Last reload"), h("p", { id: "last-reload", class: last.ok ? "ok" : "error" },
      `generation ${last.gen} at ${when(new Date(last.at * 1000).toISOString().slice(0, 19) + "Z")}: ` +
      (last.ok ? "ok" : "FAILED, the rules above stay live")));
    if (last.errors && last.errors.length)
      out.append(h("ul", { id: "reload-errors" }, last.errors.map((e) => h("li", { class: "error mono" }, e))));
  }
  return out;
};

pages.limits = async () => {
  const r = await api("GET", "/api/v1/limits");
  const rows = [];
  for (const [acct, budgets] of Object.entries(r.accounts))
    for (const [b, v] of Object.entries(budgets))
      rows.push({ cells: [acct, b, v.limited ? `${v.used} / ${v.cap}` + (v.reserved ? ` +${v.reserved} held` : "") : "no limit",
        v.limited ? (v.next_at ? when(v.next_at) : "never") : "-", v.closed_by_tiktok_until ? "TikTok said full until " + when(v.closed_by_tiktok_until) : ""] });
  return h("div", {}, h("h1", {}, "Limits"), table(["Account", "Budget", "Used", "Next", ""], rows),
    h("h2", {}, "Decisions so far"), table(["Budget", "Allowed", "Deferred", "Waited"],
      Object.entries(r.decisions).map(([b, d]) => ({ cells: [b, String(d.allowed), String(d.deferred), d.waited_s.toFixed(1) + " s"] }))));
};

pages.audit = async (after) => {
  const a = Number(after) || 0;
  const r = await api("GET", `/api/v1/audit?limit=100&after=${a}`);
  const verdict = h("span", {});
  return h("div", {}, h("h1", {}, "Audit log"),
    h("div", { class: "toolbar" },
      h("button", { type: "button", onclick: async () => {
        const v = await api("GET", "/api/v1/audit/verify");
        verdict.replaceChildren(v.ok ? h("span", { class: "ok" }, `the chain holds: ${v.records} records`)
          : h("span", { class: "error" }, v.problem));
      } }, "Verify the chain"), verdict,
      r.next_after && h("a", { href: "#/audit/" + r.next_after }, "Next page")),
    table(["#", "When", "Who", "What", "Detail"], r.records.map((x) => ({
      cells: [String(x.seq), when(x.time), x.actor, x.event, h("span", { class: "mono" }, x.detail || "")],
    }))));
};

// ---- routing, live updates, sign-in ----------------------------------------

function route() {
  const [, name = "queue", arg] = (location.hash || "#/queue").split("/");
  return { name: pages[name] ? name : "queue", arg };
}

// Which events a page shows: a refresh for them only, so what the operator
// is doing elsewhere is not redrawn under them.
const interest = {
  accounts: (t) => t === "account",
  queue: (t) => t === "job",
  calendar: (t) => t === "job",
  approvals: (t, d) => t === "job" || (t === "audit" && /^job\./.test(d.event)),
  jobs: (t, d, arg) => (t === "job" && String(d.id) === arg) ||
    (t === "audit" && /^job=(\d+)( |$)/.exec(d.detail || "")?.[1] === arg),
  rules: (t, d) => t === "audit" && d.event === "rules.reload",
  limits: (t) => t === "job",
  audit: () => false, // paged: the operator moves through it
};

function onEvent(type, data) {
  const { name, arg } = route();
  if (interest[name](type, data, arg)) refreshSoon();
  if (type === "job") badge();
}

async function badge() {
  try {
    const { jobs } = await api("GET", "/api/v1/jobs?state=awaiting_approval&limit=1000");
    const el = $("#approval-count");
    el.hidden = !jobs.length;
    el.textContent = String(jobs.length);
  } catch (e) { /* the page says what went wrong */ }
}

// One render at a time; one more after it when something came meanwhile.
async function render() {
  if (!state.token) return;
  if (state.rendering) {
    state.again = true;
    return;
  }
  state.rendering = true;
  try {
    do {
      state.again = false;
      await renderOnce();
    } while (state.again);
  } finally {
    state.rendering = false;
  }
}

async function renderOnce() {
  const { name, arg } = route();
  const page = pages[name];
  for (const a of document.querySelectorAll("nav a")) a.classList.toggle("current", a.dataset.page === name);
  const el = $("#page");
  try {
    const again = el.dataset.page === name && el.dataset.arg === (arg || "");
    const content = await page(arg, again);
    if (content) el.replaceChildren(content); /* null: nothing changed */
  } catch (e) {
    el.replaceChildren(errorBox(e));
  }
  el.dataset.page = name;
  el.dataset.arg = arg || "";
  await badge();
}

function refreshSoon() {
  clearTimeout(state.timer);
  state.timer = setTimeout(render, 150);
}

// Server-Sent Events read with fetch(): EventSource cannot send a header.
async function follow() {
  const live = $("#live");
  while (state.token) {
    try {
      const headers = { Authorization: "Bearer " + state.token };
      if (state.lastEventId) headers["Last-Event-ID"] = String(state.lastEventId);
      const res = await fetch("/api/v1/events", { headers });
      if (!res.ok) throw new Error("HTTP " + res.status);
      live.hidden = false;
      live.className = "live";
      const reader = res.body.getReader();
      const dec = new TextDecoder();
      let buf = "";
      for (;;) {
        const { value, done } = await reader.read();
        if (done) break;
        buf += dec.decode(value, { stream: true });
        let cut;
        while ((cut = buf.indexOf("\n\n")) >= 0) {
          const frame = buf.slice(0, cut);
          buf = buf.slice(cut + 2);
          const id = /^id: (\d+)$/m.exec(frame);
          if (id) state.lastEventId = Number(id[1]);
          const type = /^event: (.*)$/m.exec(frame);
          const data = /^data: (.*)$/m.exec(frame);
          if (type && type[1] === "reset") refreshSoon();
          else if (type && data) onEvent(type[1], JSON.parse(data[1]));
        }
      }
    } catch (e) { /* reconnect below */ }
    live.className = "live off";
    await new Promise((r) => setTimeout(r, 2000));
  }
}

function signOut(why) {
  state.token = "";
  sessionStorage.removeItem("tikd.token");
  $("#nav").hidden = $("#logout").hidden = $("#live").hidden = true;
  $("#page").hidden = true;
  $("#login").hidden = false;
  $("#login-error").textContent = why || "";
}

function signedIn() {
  $("#login").hidden = true;
  $("#nav").hidden = $("#logout").hidden = false;
  $("#page").hidden = false;
  render();
  follow();
}

document.addEventListener("DOMContentLoaded", () => {
  $("#login-form").addEventListener("submit", async (ev) => {
    ev.preventDefault();
    state.token = $("#token").value.trim();
    try {
      await api("GET", "/api/v1/health"); /* any token's, a tenant's too */
      sessionStorage.setItem("tikd.token", state.token);
      $("#token").value = "";
      signedIn();
    } catch (e) {
      signOut(e.message);
    }
  });
  $("#logout").addEventListener("click", () => signOut(""));
  window.addEventListener("hashchange", render);
  if (state.token) signedIn();
});
