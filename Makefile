# pgfleet build. `make` builds build/pgfleet; `make test` installs what tests need and
# runs every test; `make run` starts a server on a default home. See README.md.

CC      ?= cc
PKGS    := libmicrohttpd gnutls jansson sqlite3 libsodium libpq libcurl openssl
PKG_CFLAGS := $(shell pkg-config --cflags $(PKGS) 2>/dev/null)
PKG_LIBS   := $(shell pkg-config --libs $(PKGS) 2>/dev/null)
WARN    := -Wall -Wextra -Werror -Wshadow -Wformat=2 -Wno-format-nonliteral
CFLAGS_COMMON := -std=c11 -D_GNU_SOURCE -Isrc -Ibuild/gen $(WARN) $(PKG_CFLAGS) -pthread
LDLIBS  := $(PKG_LIBS) -pthread -lm

SRCS    := $(sort $(shell find src -name '*.c' ! -name main.c))
# pgfleet's PostgreSQL server module: built with PGXS by its own Makefile (`make deps`)
PGMODULE_SRCS := $(wildcard pgmodule/*.c)
UNIT_SRCS := $(sort $(wildcard tests/unit/test_*.c))

# release build
REL_DIR := build/rel
REL_OBJS := $(SRCS:%.c=$(REL_DIR)/%.o)
REL_CFLAGS := $(CFLAGS_COMMON) -O2 -g

# sanitizer build (unit tests and the server under e2e test)
SAN_DIR := build/san
SAN_OBJS := $(SRCS:%.c=$(SAN_DIR)/%.o)
SAN_FLAGS := -fsanitize=address,undefined -fno-omit-frame-pointer -fno-sanitize-recover=undefined
SAN_CFLAGS := $(CFLAGS_COMMON) -O1 -g $(SAN_FLAGS)
UNIT_BINS := $(UNIT_SRCS:tests/unit/%.c=$(SAN_DIR)/tests/%)
HARNESS_SRCS := tests/unit/harness.c
# the harness's catalog fixture only where the program links src/store (MODS_ unset: all)
harness_def = $(if $(filter store,$(or $(MODS_$(1)),store)),-DHARNESS_STORE)
# `make unit T=test_store K='test_op*'`: only that program (T), only the cases matching the
# cmocka pattern K ('*' and '?'), through harness_run's PGFLEET_TEST_FILTER.
UNIT_RUN := $(if $(T),$(filter $(addprefix %/,$(T)),$(UNIT_BINS)),$(UNIT_BINS))
ifneq ($(T),)
ifneq ($(words $(UNIT_RUN)),$(words $(T)))
$(error T=$(T): not every name is a unit-test program (tests/unit/<T>.c))
endif
endif

# libFuzzer targets (tests/fuzz), built with clang: every module, instrumented
FUZZ_CC ?= clang
FUZZ_DIR := build/fuzz
FUZZ_OBJS := $(SRCS:%.c=$(FUZZ_DIR)/%.o)
FUZZ_CFLAGS := $(CFLAGS_COMMON) -O1 -g -fno-omit-frame-pointer
FUZZ_SRCS := $(sort $(wildcard tests/fuzz/fuzz_*.c))
FUZZ_BINS := $(FUZZ_SRCS:tests/fuzz/%.c=$(FUZZ_DIR)/bin/%)
FUZZ_SECONDS ?= 10
.SECONDARY: $(FUZZ_OBJS)

PGFLEET_HOME ?= $(CURDIR)/.pgfleet
LISTEN ?= 127.0.0.1:8080

.PHONY: all build san deps deps-test unit fuzz e2e test run bench format format-check check-layers clean openapi

all: build
build: build/pgfleet
san: build/pgfleet-san

build/pgfleet: $(REL_OBJS) $(REL_DIR)/src/main.o
	@echo "  LD      $@"
	@$(CC) $(REL_CFLAGS) -o $@ $^ $(LDLIBS)

build/pgfleet-san: $(SAN_OBJS) $(SAN_DIR)/src/main.o
	@echo "  LD      $@"
	@$(CC) $(SAN_CFLAGS) -o $@ $^ $(LDLIBS)

$(REL_DIR)/%.o: %.c
	@mkdir -p $(dir $@)
	@echo "  CC      $<"
	@$(CC) $(REL_CFLAGS) -MMD -MP -c -o $@ $<

$(SAN_DIR)/%.o: %.c
	@mkdir -p $(dir $@)
	@echo "  CC san  $<"
	@$(CC) $(SAN_CFLAGS) -MMD -MP -c -o $@ $<

$(FUZZ_DIR)/%.o: %.c
	@mkdir -p $(dir $@)
	@echo "  CC fuzz $<"
	@$(FUZZ_CC) $(FUZZ_CFLAGS) -fsanitize=fuzzer-no-link,address,undefined -MMD -MP -c -o $@ $<

$(FUZZ_DIR)/bin/%: tests/fuzz/%.c $(FUZZ_OBJS)
	@mkdir -p $(dir $@)
	@echo "  LD      $@"
	@$(FUZZ_CC) $(FUZZ_CFLAGS) -fsanitize=fuzzer,address,undefined -o $@ $< $(FUZZ_OBJS) $(LDLIBS)

# Each unit test is one program: its test_*.c linked with src/util and the modules named
# in MODS_<test> (all modules when unset), so a module's tests build on their own.
MODS_test_util   := util
MODS_test_store  := util store
MODS_test_engine := util engine auth store
MODS_test_proc   := util
MODS_test_http   := util http
MODS_test_auth   := util auth store
MODS_test_backup := util engine api store ops http auth
MODS_test_form   := util http
MODS_test_pooler := util engine
MODS_test_ops    := util store ops
MODS_test_cli    := util cli
MODS_test_datapath := util datapath
FAKES_test_ops   := tests/unit/fake_engine.c
mods_objs = $(filter $(foreach m,$(or $(MODS_$(1)),$(notdir $(wildcard src/*))),$(SAN_DIR)/src/$(m)/%),$(SAN_OBJS))
.SECONDEXPANSION:
# FAKES_<test>: sources (e.g. a fake engine) linked in place of a module left out of MODS.
# Every program also links tests/unit/harness.c (with HARNESS_STORE when store is linked).
$(SAN_DIR)/tests/%: tests/unit/%.c $$(FAKES_$$*) $(HARNESS_SRCS) tests/unit/harness.h $$(call mods_objs,$$*)
	@mkdir -p $(dir $@)
	@echo "  LD      $@"
	@$(CC) $(SAN_CFLAGS) -Itests/unit $(call harness_def,$*) -o $@ $< $(FAKES_$*) $(HARNESS_SRCS) $(call mods_objs,$*) $(LDLIBS) -lcmocka

-include $(shell find build -name '*.d' 2>/dev/null)

# the OpenAPI document is embedded by the assembler (.incbin), which -MMD does not see
$(REL_DIR)/src/api/doc.o $(SAN_DIR)/src/api/doc.o $(FUZZ_DIR)/src/api/doc.o: src/api/openapi.json

# regenerates src/api/openapi.json from the SDK's types and the route table (needs
# tests/e2e/node_modules: npm ci there); tests/e2e/openapi.test.mjs checks it is current
openapi:
	@cd tests/e2e && node gen-schemas.mjs && node gen-openapi.mjs

# The web console's files (web/, flat) compiled into the binary as a C include
# (src/api/console.c): built from the tree, nothing fetched at build or run time.
CONSOLE_FILES := $(sort $(wildcard web/*))
build/gen/console_assets.inc: $(CONSOLE_FILES) scripts/embed-assets.sh
	@mkdir -p $(dir $@)
	@echo "  EMBED   $@"
	@scripts/embed-assets.sh web $@
$(REL_DIR)/src/api/console.o $(SAN_DIR)/src/api/console.o $(FUZZ_DIR)/src/api/console.o: build/gen/console_assets.inc

deps:
	@scripts/install-deps.sh build

deps-test:
	@scripts/install-deps.sh test

unit: $(UNIT_RUN)
	@PGFLEET_TEST_FILTER='$(K)' scripts/run-unit.sh $(UNIT_RUN)

# each libFuzzer target for FUZZ_SECONDS from its seed corpus (tests/fuzz/corpus/<target>)
fuzz: $(FUZZ_BINS)
	@scripts/run-fuzz.sh $(FUZZ_SECONDS) $(FUZZ_BINS)

e2e: build/pgfleet-san build/pgfleet
	@scripts/run-e2e.sh

test: deps-test
	@$(MAKE) --no-print-directory format-check
	@$(MAKE) --no-print-directory check-layers
	@$(MAKE) --no-print-directory unit
	@$(MAKE) --no-print-directory fuzz
	@$(MAKE) --no-print-directory e2e

run: deps
	@$(MAKE) --no-print-directory build
	@scripts/run.sh "$(PGFLEET_HOME)" "$(LISTEN)"

bench: deps-test
	@$(MAKE) --no-print-directory build
	@bench/run.sh

# a lower layer never includes an upper one (docs/architecture.md)
check-layers:
	@scripts/check-layers.sh src

format:
	clang-format -i $(SRCS) src/main.c $(PGMODULE_SRCS) $(UNIT_SRCS) $(HARNESS_SRCS) $(FUZZ_SRCS) $(shell find src tests/unit -name '*.h')

format-check:
	@clang-format --dry-run --Werror $(SRCS) src/main.c $(PGMODULE_SRCS) $(UNIT_SRCS) $(HARNESS_SRCS) $(FUZZ_SRCS) $(shell find src tests/unit -name '*.h')

clean:
	rm -rf build
	@$(MAKE) --no-print-directory -s -C pgmodule clean
