#!/bin/sh
# make demo: run tikd end to end against the fake TikTok, in a throwaway
# directory, and narrate it: connect an account through the OAuth callback,
# post a video and a photo carousel and send a draft (exactly once each),
# reload the rules while tikd runs, back up, stop, verify the audit chain.
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

PORT=$(/usr/bin/python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')
cp -R "$REPO/rules" "$work/rules"
cat > "$work/tikd.conf.lua" <<CONF
-- the demo's config: everything under $work, TikTok played by the fake
data_dir = "data"
rules_dir = "rules"
scripts_dir = "$REPO/scripts"
listen = { "127.0.0.1:$PORT" }
vault = { key_file = "vault.keys" }
tiktok = { client_key = "fake_client_key", api_url = "$FAKE",
           auth_url = "$FAKE/v2/auth/authorize/",
           redirect_uri = "http://127.0.0.1:$PORT/oauth/callback" }
shutdown_grace = 3
CONF
export TIKD_CLIENT_SECRET=fake_client_secret

say "tikd $(tikd version | cut -d' ' -f2): a vault key, and the example rules checked in the sandbox"
tikd vault init "$work/vault.keys"
tikd rules check

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

say "editing rules/hello.lua while tikd runs, then SIGHUP: a new generation goes live"
sed -i 's/hello from the rules/hello again, from the edited rule/' "$work/rules/hello.lua"
kill -HUP "$pid"
wait_for "$work/tikd.log" 'edited rule'
show_new

say "a broken rule file: the reload is refused and the running rules stay"
printf 'function on_load()\n  tikd.log.info("never"\nend\n' > "$work/rules/broken.lua"
kill -HUP "$pid"
wait_for "$work/tikd.log" 'event=rules.reload_failed'
show_new
rm "$work/rules/broken.lua"

say "a hot backup while tikd runs"
tikd backup "$work/backup"

say "stopping tikd (SIGTERM)"
kill -TERM "$pid"
wait "$pid"
pid=
show_new

say "the audit log: who chose what, and an intact hash chain"
tikd audit list --last 8 | cut -c1-160
tikd audit verify
say "demo finished"
