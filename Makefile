# tikd - plain make, no autotools.
#
#   make          build build/tikd (installs missing build packages first)
#   make test     install what tests need, build, run every test
#   make asan     the same tests with AddressSanitizer + UBSan
#   make valgrind the C unit tests under valgrind
#   make fuzz     each libFuzzer target for FUZZ_TIME seconds (clang); FUZZ_RUNS=N
#                 stops each after N executions instead
#   make demo     run tikd end to end in a temp dir
#   make install  PREFIX=/usr/local DESTDIR=
#
# Targets that need packages first run tools/deps.sh, then re-enter make, so
# pkg-config is only consulted once the packages are there.

PREFIX  ?= /usr/local
DESTDIR ?=
BUILD   ?= build
CC      ?= cc
PYTHON  ?= /usr/bin/python3
VERSION := 0.1.0

PKGS    := lua5.4 libcurl lmdb libcrypto jansson libmicrohttpd hiredis
OPT     ?= -O2
SAN     ?=
CFLAGS_ALL = -std=c11 -D_GNU_SOURCE -g $(OPT) $(SAN) -Wall -Wextra -Werror \
             -Wshadow -Wstrict-prototypes -Wmissing-prototypes -Wno-unused-parameter \
             $(shell pkg-config --cflags $(PKGS) 2>/dev/null) \
             -DTIKD_VERSION='"$(VERSION)"' -DTIKD_SCRIPTS_DIR='"$(PREFIX)/share/tikd/scripts"' \
             -DTIKD_PROBE_PATH='"$(PREFIX)/lib/tikd/tikd-probe"' \
             $(CFLAGS)
LIBS_ALL = $(shell pkg-config --libs $(PKGS) 2>/dev/null) -lev -lm $(LDLIBS)

CORE_SRC := $(wildcard core/*.c)
BIND_SRC := $(wildcard bindings/*.c)
CLI_SRC  := $(wildcard cli/*.c)
LIB_OBJ  := $(patsubst %.c,$(BUILD)/obj/%.o,$(CORE_SRC) $(BIND_SRC))
CLI_OBJ  := $(patsubst %.c,$(BUILD)/obj/%.o,$(CLI_SRC)) $(BUILD)/obj/gen/dashboard.o
# The dashboard, compiled into the binary (tools/embed.sh): path|Content-Type|file
DASH_FILES := /|text/html;charset=utf-8|dashboard/index.html \
              /assets/app.js|text/javascript;charset=utf-8|dashboard/app.js \
              /assets/app.css|text/css;charset=utf-8|dashboard/app.css
UNIT_SRC := $(wildcard tests/unit/test_*.c)
UNIT_BIN := $(patsubst tests/unit/%.c,$(BUILD)/tests/%,$(UNIT_SRC))
TOOL_SRC := $(wildcard tests/tools/*.c)
TOOL_BIN := $(patsubst tests/tools/%.c,$(BUILD)/tests/%,$(TOOL_SRC))
FUZZ_SRC := $(wildcard tests/fuzz/fuzz_*.c)
FUZZ_BIN := $(patsubst tests/fuzz/%.c,$(BUILD)/fuzz/%,$(FUZZ_SRC))
FUZZ_TIME ?= 600

.PHONY: all build deps deps-test test check unit integration asan chaos chaos-cluster valgrind demo install \
        clean format format-check bench fuzz fuzz-run
.DEFAULT_GOAL := all

all:
	@tools/deps.sh build
	@$(MAKE) --no-print-directory build

build: $(BUILD)/tikd $(BUILD)/tikd-probe

$(BUILD)/obj/%.o: %.c
	@mkdir -p $(dir $@)
	$(CC) $(CFLAGS_ALL) -MMD -MP -c $< -o $@

# The install prefix is compiled in (where the engine library lives): objects
# that use it are rebuilt when PREFIX changes.
PREFIX_STAMP := $(BUILD)/.prefix$(subst /,_,$(PREFIX))
$(PREFIX_STAMP):
	@mkdir -p $(BUILD) && rm -f $(BUILD)/.prefix* && touch $@
$(BUILD)/obj/cli/main.o $(BUILD)/obj/core/config.o $(BUILD)/obj/core/probe.o: $(PREFIX_STAMP)

$(BUILD)/gen/dashboard.c: $(wildcard dashboard/*) tools/embed.sh
	@mkdir -p $(dir $@)
	tools/embed.sh $@ $(foreach f,$(DASH_FILES),'$(f)')

$(BUILD)/obj/gen/dashboard.o: $(BUILD)/gen/dashboard.c cli/embedded.h
	@mkdir -p $(dir $@)
	$(CC) $(CFLAGS_ALL) -Icli -c $< -o $@

$(BUILD)/libtikd.a: $(LIB_OBJ)
	@rm -f $@
	ar rcs $@ $^

$(BUILD)/tikd: $(CLI_OBJ) $(BUILD)/libtikd.a
	$(CC) $(CFLAGS_ALL) -o $@ $(CLI_OBJ) $(BUILD)/libtikd.a $(LIBS_ALL)

# The media probe: FFmpeg's libavformat in a program of its own (core/probe.c
# runs it confined, one process per file), so tikd itself never links it.
PROBE_PKGS := libavformat libavcodec libavutil jansson
$(BUILD)/tikd-probe: probe/tikd-probe.c
	@mkdir -p $(dir $@)
	$(CC) $(CFLAGS_ALL) $(shell pkg-config --cflags $(PROBE_PKGS) 2>/dev/null) -o $@ $< \
	    $(shell pkg-config --libs $(PROBE_PKGS) 2>/dev/null) -lm

$(BUILD)/tests/%: tests/unit/%.c $(BUILD)/libtikd.a
	@mkdir -p $(dir $@)
	$(CC) $(CFLAGS_ALL) -Wno-missing-prototypes -MMD -MP -o $@ $< $(BUILD)/libtikd.a \
	    $(LIBS_ALL) -lcmocka

$(BUILD)/tests/%: tests/tools/%.c $(BUILD)/libtikd.a
	@mkdir -p $(dir $@)
	$(CC) $(CFLAGS_ALL) -Wno-missing-prototypes -MMD -MP -o $@ $< $(BUILD)/libtikd.a $(LIBS_ALL)

$(BUILD)/fuzz/%: tests/fuzz/%.c tests/fuzz/fuzz.h $(BUILD)/libtikd.a
	@mkdir -p $(dir $@)
	$(CC) $(CFLAGS_ALL) -fsanitize=fuzzer -Wno-missing-prototypes -o $@ $< $(BUILD)/libtikd.a \
	    $(LIBS_ALL)

-include $(shell find $(BUILD) -name '*.d' 2>/dev/null)

test:
	@tools/deps.sh test
	@$(MAKE) --no-print-directory check

check: unit integration

unit: $(UNIT_BIN) $(BUILD)/tikd-probe
	@tools/run-unit.sh $(UNIT_BIN)

integration: $(BUILD)/tikd $(BUILD)/tikd-probe $(TOOL_BIN)
	TIKD_BIN=$(abspath $(BUILD)/tikd) TIKD_TOOLS=$(abspath $(BUILD)/tests) $(PYTHON) -m pytest -q tests/fake tests/integration

# The chaos suite at full size (about five minutes): random SIGKILLs, a second
# daemon, a full database and the fake's fault mix, judged by TikTok's ledger
# (tests/integration/test_chaos.py; `make test` runs it at a small size).
chaos:
	@tools/deps.sh test
	@$(MAKE) --no-print-directory build $(TOOL_BIN)
	TIKD_CHAOS=full TIKD_BIN=$(abspath $(BUILD)/tikd) TIKD_TOOLS=$(abspath $(BUILD)/tests) \
	    $(PYTHON) -m pytest -q -s tests/integration/test_chaos.py

# The cluster under chaos at full size (a few minutes): three nodes on a real
# redis-server, 300 posts over 50 accounts, 24 SIGKILLs and a Redis restart
# (tests/integration/test_cluster_chaos.py; `make test` runs it small).
chaos-cluster:
	@tools/deps.sh test
	@$(MAKE) --no-print-directory build $(TOOL_BIN)
	TIKD_CHAOS=full TIKD_BIN=$(abspath $(BUILD)/tikd) TIKD_TOOLS=$(abspath $(BUILD)/tests) \
	    $(PYTHON) -m pytest -q -s tests/integration/test_cluster_chaos.py

asan:
	@tools/deps.sh test
	@$(MAKE) --no-print-directory BUILD=build/asan OPT=-O1 \
	    SAN="-fsanitize=address,undefined -fno-omit-frame-pointer -fno-sanitize-recover=all" check

# libFuzzer needs clang; the library is built with the fuzzer's coverage
# (fuzzer-no-link) and the sanitizers, each target then links the fuzzer.
fuzz:
	@tools/deps.sh fuzz
	@$(MAKE) --no-print-directory BUILD=build/fuzz CC=clang OPT=-O1 \
	    SAN="-fsanitize=address,undefined,fuzzer-no-link -fno-omit-frame-pointer -fno-sanitize-recover=all" \
	    fuzz-run

fuzz-run: $(FUZZ_BIN)
	@tools/fuzz.sh $(FUZZ_TIME) $(FUZZ_BIN)

valgrind:
	@tools/deps.sh test
	@$(MAKE) --no-print-directory BUILD=build/vg OPT=-O1 $(patsubst $(BUILD)/%,build/vg/%,$(UNIT_BIN)) \
	    build/vg/tikd-probe
	@VALGRIND=1 tools/run-unit.sh $(patsubst $(BUILD)/%,build/vg/%,$(UNIT_BIN))

demo:
	@tools/deps.sh test
	@$(MAKE) --no-print-directory build
	@tools/demo.sh $(abspath $(BUILD)/tikd)

# Also: the sample config (kept if there is one), a rules directory with a
# first rule, the systemd unit, and, when run as root on this system (no
# DESTDIR), the tikd user and its directories (docs/operations.md).
SYSCONFDIR ?= /etc
SYSTEMDDIR ?= $(PREFIX)/lib/systemd/system
install: all
	install -d $(DESTDIR)$(SYSCONFDIR)/tikd $(DESTDIR)$(SYSCONFDIR)/tikd/rules $(DESTDIR)$(SYSTEMDDIR)
	[ -e $(DESTDIR)$(SYSCONFDIR)/tikd/tikd.conf.lua ] || \
	    install -m 0644 etc/tikd.conf.lua $(DESTDIR)$(SYSCONFDIR)/tikd/tikd.conf.lua
	[ -n "$$(ls -A $(DESTDIR)$(SYSCONFDIR)/tikd/rules)" ] || \
	    install -m 0644 rules/hello.lua $(DESTDIR)$(SYSCONFDIR)/tikd/rules/hello.lua
	sed 's|@PREFIX@|$(PREFIX)|g' etc/tikd.service > $(DESTDIR)$(SYSTEMDDIR)/tikd.service
	chmod 0644 $(DESTDIR)$(SYSTEMDDIR)/tikd.service
	@if [ -z "$(DESTDIR)" ] && [ "$$(id -u)" = 0 ]; then \
	    getent passwd tikd >/dev/null || \
	        useradd --system --home-dir /var/lib/tikd --no-create-home \
	            --shell /usr/sbin/nologin tikd; \
	    install -d -o tikd -g tikd -m 0700 /var/lib/tikd $(SYSCONFDIR)/tikd/keys; \
	    chgrp tikd $(SYSCONFDIR)/tikd/tikd.conf.lua && chmod 0640 $(SYSCONFDIR)/tikd/tikd.conf.lua; \
	    echo "tikd: the tikd user, /var/lib/tikd and $(SYSCONFDIR)/tikd/keys are ready"; \
	else \
	    install -d -m 0700 $(DESTDIR)$(SYSCONFDIR)/tikd/keys; \
	fi
	install -d $(DESTDIR)$(PREFIX)/bin $(DESTDIR)$(PREFIX)/share/tikd/scripts \
	    $(DESTDIR)$(PREFIX)/share/tikd/rules $(DESTDIR)$(PREFIX)/share/doc/tikd
	install -m 0755 $(BUILD)/tikd $(DESTDIR)$(PREFIX)/bin/tikd
	install -d $(DESTDIR)$(PREFIX)/lib/tikd
	install -m 0755 $(BUILD)/tikd-probe $(DESTDIR)$(PREFIX)/lib/tikd/tikd-probe
	cp -R scripts/. $(DESTDIR)$(PREFIX)/share/tikd/scripts/
	cp -R rules/. $(DESTDIR)$(PREFIX)/share/tikd/rules/
	install -m 0644 README.md docs/*.md $(DESTDIR)$(PREFIX)/share/doc/tikd/
	install -d $(DESTDIR)$(PREFIX)/share/doc/tikd/lua
	install -m 0644 docs/lua/tikd.lua $(DESTDIR)$(PREFIX)/share/doc/tikd/lua/
	install -d $(DESTDIR)$(PREFIX)/share/doc/tikd/lua/tikd
	install -m 0644 docs/lua/tikd/test.lua $(DESTDIR)$(PREFIX)/share/doc/tikd/lua/tikd/
	install -m 0644 docs/lua/tikd/json.lua $(DESTDIR)$(PREFIX)/share/doc/tikd/lua/tikd/

FORMAT_FILES = $(CORE_SRC) $(BIND_SRC) $(CLI_SRC) probe/tikd-probe.c $(UNIT_SRC) $(TOOL_SRC) $(FUZZ_SRC) \
	$(wildcard core/*.h bindings/*.h cli/*.h tests/unit/*.h tests/fuzz/*.h)

format:
	clang-format -i $(FORMAT_FILES)

format-check:
	clang-format --dry-run -Werror $(FORMAT_FILES)

bench:
	@tools/deps.sh test
	@$(MAKE) --no-print-directory build $(TOOL_BIN)
	@$(PYTHON) tools/bench.py $(abspath $(BUILD))

clean:
	rm -rf build
