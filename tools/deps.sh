#!/bin/sh
# Install whatever tikd needs to build and test that this machine lacks.
# Each check is a file test or a pkg-config query, so the all-present path
# costs a few milliseconds; apt-get runs (once, after one update) only when
# something is missing. Usage: tools/deps.sh [build|test|demo|fuzz]
set -eu
what=${1:-test}
missing=""

need_pc() { # pkg-config module, Debian package
    pkg-config --exists "$1" 2>/dev/null || missing="$missing $2"
}
need_file() { # any file the package ships, Debian package
    [ -e "$1" ] || missing="$missing $2"
}
need_cmd() { # command, Debian package
    command -v "$1" >/dev/null 2>&1 || missing="$missing $2"
}

need_cmd cc gcc
need_cmd make make
need_cmd pkg-config pkg-config
need_pc lua5.4 liblua5.4-dev
need_pc libcurl libcurl4-openssl-dev
need_pc lmdb liblmdb-dev
need_pc libcrypto libssl-dev
need_pc jansson libjansson-dev
need_pc libmicrohttpd libmicrohttpd-dev
need_file /usr/include/ev.h libev-dev
# schedules' time zones: the C library's tz code (and python3's zoneinfo in tests) read it
need_file /usr/share/zoneinfo/America/New_York tzdata
if [ "$what" != build ]; then
    need_pc cmocka libcmocka-dev
    need_file /usr/bin/python3 python3
    /usr/bin/python3 -c 'import pytest' >/dev/null 2>&1 || missing="$missing python3-pytest"
    need_cmd openssl openssl   # test certificates
    need_cmd curl curl         # make demo, make bench (the peer)
    need_cmd valgrind valgrind # make valgrind
fi
if [ "$what" = fuzz ]; then
    need_cmd clang clang # libFuzzer and its runtime come with it
fi

[ -z "$missing" ] && exit 0
echo "deps: installing$missing" >&2
if [ "$(id -u)" != 0 ]; then
    echo "deps: missing packages:$missing; run as root or install them" >&2
    exit 1
fi
export DEBIAN_FRONTEND=noninteractive
apt-get update -qq
# shellcheck disable=SC2086
apt-get install -y -qq --no-install-recommends $missing >/dev/null
