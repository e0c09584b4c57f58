#!/bin/sh
# make demo: run tikd end to end in a throwaway directory and narrate it.
# Usage: tools/demo.sh /path/to/tikd
set -eu
TIKD=$1
REPO=$(cd "$(dirname "$0")/.." && pwd)
work=$(mktemp -d /tmp/tikd-demo.XXXXXX)
pid=
cleanup() {
    [ -n "$pid" ] && kill "$pid" 2>/dev/null || true
    rm -rf "$work"
}
trap cleanup EXIT INT TERM

if [ -t 1 ]; then B='\033[1m' N='\033[0m'; else B= N=; fi
say() { printf "\n${B}== %s${N}\n" "$*"; }
# wait_log PATTERN: until the daemon's log has a line matching PATTERN (10 s at most)
wait_log() {
    i=0
    until grep -q -- "$1" "$work/tikd.log"; do
        i=$((i + 1))
        if [ $i -gt 200 ]; then
            echo "demo: timed out waiting for '$1'" >&2
            cat "$work/tikd.log" >&2
            exit 1
        fi
        sleep 0.05
    done
}
show_new() { # print log lines not shown yet
    total=$(wc -l < "$work/tikd.log")
    sed -n "$((shown + 1)),${total}p" "$work/tikd.log" | sed 's/^/   /'
    shown=$total
}
shown=0

cp -R "$REPO/rules" "$work/rules"
cat > "$work/tikd.conf.lua" <<CONF
-- the demo's config: everything under $work
data_dir = "data"
rules_dir = "rules"
scripts_dir = "$REPO/scripts"
log = { level = "info" }
shutdown_grace = 3
CONF
cfg="$work/tikd.conf.lua"

say "tikd $($TIKD version | cut -d' ' -f2): checking the example rules in the sandbox"
"$TIKD" -c "$cfg" rules check

say "starting tikd run (data dir $work/data)"
"$TIKD" -c "$cfg" run 2> "$work/tikd.log" &
pid=$!
wait_log 'event=daemon.ready'
wait_log 'caption measured'
show_new

say "editing rules/hello.lua while tikd runs, then SIGHUP: a new generation goes live"
sed -i 's/hello from the rules/hello again, from the edited rule/' "$work/rules/hello.lua"
kill -HUP "$pid"
wait_log 'edited rule'
show_new

say "a broken rule file: the reload is refused and the running rules stay"
printf 'function on_load()\n  tikd.log.info("never"\nend\n' > "$work/rules/broken.lua"
kill -HUP "$pid"
wait_log 'event=rules.reload_failed'
show_new
rm "$work/rules/broken.lua"

say "a hot backup while tikd runs"
"$TIKD" -c "$cfg" backup "$work/backup"

say "stopping tikd (SIGTERM)"
kill -TERM "$pid"
wait "$pid"
pid=
show_new

say "the audit log's hash chain"
"$TIKD" -c "$cfg" audit verify
say "demo finished"
