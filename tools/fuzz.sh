#!/bin/sh
# Run each libFuzzer target for SECONDS, from its seeds (tests/fuzz/seeds/NAME)
# and the corpus it grew before (build/fuzz/corpus/NAME, kept between runs).
# A crash, leak, sanitizer report or timeout fails the run and leaves the
# input as build/fuzz/crash-NAME-*. Prints one line per target: executions,
# corpus size, and 0 crashes. With FUZZ_RUNS=N each target stops after N
# executions instead (SECONDS still bounds it).
# Usage: tools/fuzz.sh SECONDS TARGET...
set -eu
secs=$1
shift
fail=0
for t in "$@"; do
    name=$(basename "$t")
    seeds=tests/fuzz/seeds/${name#fuzz_}
    corpus=build/fuzz/corpus/${name#fuzz_}
    mkdir -p "$corpus"
    log=build/fuzz/$name.log
    set +e
    "$t" -max_total_time="$secs" ${FUZZ_RUNS:+-runs=$FUZZ_RUNS} -timeout=10 -rss_limit_mb=2048 -print_final_stats=1 \
        -artifact_prefix="build/fuzz/crash-$name-" "$corpus" "$seeds" >"$log" 2>&1
    rc=$?
    set -e
    execs=$(sed -n 's/^stat::number_of_executed_units: *//p' "$log" | tail -1)
    size=$(ls "$corpus" | wc -l)
    if [ "$rc" -ne 0 ]; then
        fail=$((fail + 1))
        echo "fuzz: $name: FAILED after ${execs:-?} executions (see $log):"
        grep -E "ERROR|SUMMARY|runtime error|Test unit written" "$log" | head -8
    else
        echo "fuzz: $name: ${execs:-0} executions, corpus $size, 0 crashes"
    fi
done
[ "$fail" -eq 0 ]
