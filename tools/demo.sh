#!/bin/sh
# make demo: run tikd end to end against the fake TikTok, in a throwaway
# directory, and narrate it: connect an account through the OAuth callback,
# post a video and a photo carousel and send a draft (exactly once each),
# route dropped media with a rule, edit the rule while tikd runs (reloaded on
# save), back up, show the admin API and the dashboard's address (on a
# terminal, waiting for Enter so it can be opened), stop, verify the audit chain.
# Usage: tools/demo.sh /path/to/tikd
set -eu
TIKD=$1
REPO=$(cd "$(dirname "$0")/.." && pwd)
work=$(mktemp -d /tmp/tikd-demo.XXXXXX)
pid= fakepid=
cleanup() {
    [ -n "$pid" ] && kill "$pid" 2>/dev/null || true
    [ -n "$fakepid" ] && kill "$fakepid" 2>/dev/null || true
    rm -rf "$work"
}
trap cleanup EXIT INT TERM

if [ -t 1 ]; then B='\033[1m' N='\033[0m'; else B= N=; fi
say() { printf "\n${B}== %s${N}\n" "$*"; }
# wait_for FILE PATTERN: until FILE has a line matching PATTERN (15 s at most)
wait_for() {
    i=0
    until grep -q -- "$2" "$1" 2>/dev/null; do
        i=$((i + 1))
        if [ $i -gt 300 ]; then
            echo "demo: timed out waiting for '$2' in $1" >&2
            cat "$1" >&2
            exit 1
        fi
        sleep 0.05
    done
}
shown=0
show_new() { # the daemon's log lines not shown yet
    total=$(wc -l < "$work/tikd.log")
    sed -n "$((shown + 1)),${total}p" "$work/tikd.log" | cut -c1-220 | sed 's/^/   /'
    shown=$total
}
tikd() { "$TIKD" -c "$work/tikd.conf.lua" "$@"; }

say "starting the fake TikTok on loopback (tests/fake)"
/usr/bin/python3 "$REPO/tests/fake/tiktok_fake.py" > "$work/fake.json" 2> "$work/fake.log" &
fakepid=$!
wait_for "$work/fake.json" base_url
FAKE=$(sed 's/.*"base_url": "\([^"]*\)".*/\1/' "$work/fake.json")
curl -s -X POST -d '{"time_scale": 0.02}' "$FAKE/_fake/config" > /dev/null
echo "   $FAKE"

free_port() { /usr/bin/python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }
PORT=$(free_port)
APORT=$(free_port)
cp -R "$REPO/rules" "$work/rules"
cat > "$work/tikd.conf.lua" <<CONF
-- the demo's config: everything under $work, TikTok played by the fake
data_dir = "data"
rules_dir = "rules"
scripts_dir = "$REPO/scripts"
listen = { "127.0.0.1:$PORT" }
admin = { listen = { "127.0.0.1:$APORT" } } -- the admin API and the dashboard
vault = { key_file = "vault.keys" }
tiktok = { client_key = "fake_client_key", api_url = "$FAKE",
           auth_url = "$FAKE/v2/auth/authorize/",
           redirect_uri = "http://127.0.0.1:$PORT/oauth/callback" }
shutdown_grace = 3
intake = { folders = { "$work/in/demo" }, settle = 0.5 }
media_roots = { "$work/in" }
media = { check_urls = false } -- the fake's verified domain does not resolve: no fetch
CONF
mkdir -p "$work/in/demo"
# a rule of the demo's own: media dropped into in/demo goes into the next
# free slot of the demo account's schedule (every minute, here)
cat > "$work/rules/demo_feed.lua" <<'RULE'
tikd.account("demo", { tz = "Europe/Lisbon", privacy = "SELF_ONLY" })
tikd.schedule("demo-slots", { account = "demo", slots = "* * * * *", spacing = 60 })

function on_media(item)
    if not item.folder:match("/demo$") or not tikd.oauth.account("demo") then
        return
    end
    local title = (item.meta and item.meta.title) or item.name:gsub("%.%w+$", "")
    local caption = assert(tikd.caption("{title} #demo", { title = title }))
    local id, slot = tikd.upload.post{ account = "demo", schedule = "demo-slots",
                                       media = item.path, caption = caption, key = item.hash }
    tikd.log.info("demo_feed planned", { job = id, slot = slot, caption = caption })
end
RULE
export TIKD_CLIENT_SECRET=fake_client_secret

say "tikd $(tikd version | cut -d' ' -f2): a vault key, and the example rules checked in the sandbox"
tikd vault init "$work/vault.keys"
tikd rules check
say "the example rules' own tests (rules/*_test.lua), on a fake clock and a throwaway database"
tikd rules test 2> /dev/null

say "starting tikd run"
"$TIKD" -c "$work/tikd.conf.lua" run 2> "$work/tikd.log" &  # not the function: $! must be tikd
pid=$!
wait_for "$work/tikd.log" 'event=daemon.ready'
wait_for "$work/tikd.log" 'caption measured'
show_new

say "connecting account 'demo': the browser approves at TikTok, tikd's callback page finishes"
url=$(tikd account add demo | grep 'authorize/?' | tr -d ' ')
callback=$(curl -s -o /dev/null -w '%{redirect_url}' "$url")
curl -s "$callback" | sed 's/<[^>]*>/ /g; s/  */ /g' | sed 's/^/   /'
echo
tikd account list

say "posting a generated video (H.264, 1080x1920, 30 fps, 6 s) and waiting until it is published"
/usr/bin/python3 "$REPO/tests/fixtures/mkmp4.py" "$work/clip.mp4" --duration 6 --mdat-bytes 2000000
tikd post "$work/clip.mp4" --account demo --privacy SELF_ONLY \
    --caption "first light over the harbour #sunrise" --wait

say "posting a photo carousel: TikTok pulls three images from a verified domain"
tikd post --account demo --privacy SELF_ONLY \
    --photo https://media.example.test/tikd/market-1.jpg \
    --photo https://media.example.test/tikd/market-2.jpg \
    --photo https://media.example.test/tikd/market-3.jpg \
    --caption "market day" --description "three stalls #food" --cover-index 1 --wait

say "sending another video to the creator's inbox as a draft"
/usr/bin/python3 "$REPO/tests/fixtures/mkmp4.py" "$work/draft.mp4" --duration 4
tikd post "$work/draft.mp4" --account demo --draft --wait
tikd queue --all
echo "   TikTok's ledger (the fake) holds $(curl -s "$FAKE/_fake/ledger" | /usr/bin/python3 -c 'import json,sys; print(len(json.load(sys.stdin)["posts"]))') posts: each exactly once"

say "a rule at work: media dropped into in/demo goes into the schedule's next free slot"
/usr/bin/python3 "$REPO/tests/fixtures/mkmp4.py" "$work/harbour.mp4" --duration 5
printf '{"title": "Harbour at dusk"}' > "$work/in/demo/harbour.json"
cp "$work/harbour.mp4" "$work/in/demo/harbour.mp4"
wait_for "$work/tikd.log" 'msg="demo_feed planned"'
show_new
tikd queue

say "editing that rule while tikd runs: saved, reloaded at once, no restart, no SIGHUP"
sed -i 's/{title} #demo/{title}, caught live #demo #edited/' "$work/rules/demo_feed.lua"
wait_for "$work/tikd.log" 'event=rules.loaded gen=2'
/usr/bin/python3 "$REPO/tests/fixtures/mkmp4.py" "$work/market.mp4" --duration 4 --mdat-bytes 150000
printf '{"title": "Market morning"}' > "$work/in/demo/market.json"
cp "$work/market.mp4" "$work/in/demo/market.mp4"
wait_for "$work/tikd.log" 'caught live'
show_new
echo "   waiting for the two slots (at most a minute or two) ..."
i=0
until [ "$(tikd queue | wc -l)" -le 1 ] || [ $i -gt 400 ]; do sleep 0.5; i=$((i + 1)); done
tikd queue --all | tail -2

say "a broken rule file: the reload is refused and the running rules stay"
printf 'function on_load()\n  tikd.log.info("never"\nend\n' > "$work/rules/broken.lua"
wait_for "$work/tikd.log" 'event=rules.reload_failed'
show_new
rm "$work/rules/broken.lua"

say "a hot backup while tikd runs"
tikd backup "$work/backup"

say "the admin API and the dashboard: an operator's token, the status, the metrics"
token=$(tikd admin token create demo-operator --role operator | tail -1)
curl -s --unix-socket "$work/data/admin.sock" http://tikd/api/v1/status |
    /usr/bin/python3 -c 'import json,sys; d=json.load(sys.stdin); print("   jobs by state:", d["jobs"]["by_state"], "  live rules: generation", d["live_gen"])'
curl -s -H "Authorization: Bearer $token" "http://127.0.0.1:$APORT/metrics" |
    grep -E '^tikd_(posts_total|http_requests_total\{target="(video_init|upload)")' | sed 's/^/   /'
printf "   dashboard: ${B}http://127.0.0.1:%s/${N}   token: %s\n" "$APORT" "$token"
if [ -t 0 ] && [ -t 1 ]; then
    printf "   open it in a browser on this machine; press Enter to stop tikd and finish "
    read -r _
fi

say "stopping tikd (SIGTERM)"
kill -TERM "$pid"
wait "$pid"
pid=
show_new

say "the audit log: who chose what, and an intact hash chain"
tikd audit list --last 8 | cut -c1-160
tikd audit verify
say "demo finished"
