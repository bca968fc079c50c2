# ferry — one Makefile. Sources are listed explicitly per area in src/<area>/area.mk
# (each area's owner edits only its own fragment). Objects go to $(BUILD)/.
#   make            build ./ferry           make test    run all tests
#   make asan       ASan+UBSan tests        make fuzz    short libFuzzer run
#   make bench      benchmarks              make demo    the end-to-end demo
#   BUILD=dir       separate build folder (parallel builds by several people)

BUILD   ?= build
CC      ?= cc
OPT     ?= -O2 -g
PKGS    := libevent libevent_pthreads libcurl libcjson libturbojpeg libpng libwebp \
           libcrypto sqlite3 inih
PKG_CFLAGS := $(shell pkg-config --cflags $(PKGS) 2>/dev/null)
PKG_LIBS   := $(shell pkg-config --libs $(PKGS) 2>/dev/null)
WARN    := -Wall -Wextra -Wpedantic -Wshadow
CPPFLAGS_FY := -D_POSIX_C_SOURCE=200809L -D_DEFAULT_SOURCE -Iinclude -Isrc
CFLAGS_FY   := -std=c17 $(WARN) $(OPT) $(PKG_CFLAGS) $(EXTRA_CFLAGS)
LDLIBS_FY   := $(PKG_LIBS) -lm -lpthread $(EXTRA_LDFLAGS)

LIB_SRCS :=
TESTS    :=
FUZZERS  :=
BENCHES  :=
include src/util/area.mk
include src/req/area.mk
include src/feat/area.mk
include src/node/area.mk
include src/pred/area.mk
include src/policy/area.mk
include src/sim/area.mk
include src/gw/area.mk
include src/emu/area.mk

LIB_OBJS := $(LIB_SRCS:%.c=$(BUILD)/%.o)
LIBFERRY := $(BUILD)/libferry.a
TEST_BINS := $(TESTS:%=$(BUILD)/tests/%)
BENCH_BINS := $(BENCHES:%=$(BUILD)/bench/%)

.PHONY: all test asan fuzz bench demo clean deps run-tests run-bench run-demo fuzz-build
.SECONDARY:
all: ferry

# The public targets install the dependencies first and then re-run make, because
# PKG_CFLAGS/PKG_LIBS above are read when make parses this file: on a fresh machine
# that is before pkg-config knows the libraries, and compiling alongside the install
# (make -j) would race it.
deps:
	@scripts/deps.sh

$(BUILD)/%.o: %.c
	@mkdir -p $(dir $@)
	$(CC) $(CPPFLAGS_FY) $(CFLAGS_FY) -MMD -MP -c $< -o $@

$(LIBFERRY): $(LIB_OBJS)
	@rm -f $@
	ar rcs $@ $^

$(BUILD)/ferry: $(BUILD)/src/main.o $(LIBFERRY)
	$(CC) $(CFLAGS_FY) -o $@ $^ $(LDLIBS_FY)

ferry: $(BUILD)/ferry
	@if [ "$(BUILD)" = build ]; then ln -sf build/ferry ferry; fi

# Objects first, the archive last: an area.mk may add objects (tests/gwtest.o) that need it.
$(BUILD)/tests/%: $(BUILD)/tests/%.o $(BUILD)/tests/testmain.o $(LIBFERRY)
	$(CC) $(CFLAGS_FY) -o $@ $(filter %.o,$^) $(filter %.a,$^) $(LDLIBS_FY)

$(BUILD)/bench/%: $(BUILD)/bench/%.o $(LIBFERRY)
	$(CC) $(CFLAGS_FY) -o $@ $^ $(LDLIBS_FY)

test: deps
	@$(MAKE) --no-print-directory run-tests

run-tests: $(BUILD)/ferry ferry $(TEST_BINS)
	@FERRY_BIN=$(BUILD)/ferry tests/run.sh $(TEST_BINS)

# ASan + UBSan build of the tests in its own folder.
asan:
	@$(MAKE) --no-print-directory BUILD=build-asan CC=clang OPT="-O1 -g -fno-omit-frame-pointer" \
	  EXTRA_CFLAGS="-fsanitize=address,undefined -fno-sanitize-recover=undefined" \
	  EXTRA_LDFLAGS="-fsanitize=address,undefined" test

# libFuzzer targets: fuzz/fuzz-<name>.c; FUZZ_SECONDS each, seeded from ../shared/images etc.
FUZZ_SECONDS ?= 20
FUZZ_BUILD := build-fuzz
FUZZ_FLAGS := -fsanitize=fuzzer,address,undefined -fno-sanitize-recover=undefined
fuzz: deps
	@$(MAKE) --no-print-directory fuzz-build

fuzz-build:
	@$(MAKE) --no-print-directory BUILD=$(FUZZ_BUILD) CC=clang OPT="-O1 -g" \
	  EXTRA_CFLAGS="-fsanitize=fuzzer-no-link,address,undefined" \
	  EXTRA_LDFLAGS="-fsanitize=address,undefined" $(FUZZ_BUILD)/libferry.a
	@mkdir -p $(FUZZ_BUILD)/fuzz
	@set -e; for f in $(FUZZERS); do \
	  clang $(CPPFLAGS_FY) -std=c17 -O1 -g $(PKG_CFLAGS) $(FUZZ_FLAGS) fuzz/$$f.c \
	    $(FUZZ_BUILD)/libferry.a $(LDLIBS_FY) -o $(FUZZ_BUILD)/fuzz/$$f; \
	  scripts/fuzz-run.sh $(FUZZ_BUILD)/fuzz/$$f $(FUZZ_SECONDS); done

bench: deps
	@scripts/deps.sh --bench
	@$(MAKE) --no-print-directory run-bench

run-bench: $(BUILD)/ferry $(BENCH_BINS)
	@bench/run.sh $(BUILD)

demo: deps
	@$(MAKE) --no-print-directory run-demo

run-demo: $(BUILD)/ferry ferry
	@scripts/demo.sh $(BUILD)/ferry

clean:
	rm -rf build build-asan build-fuzz ferry

-include $(LIB_OBJS:.o=.d) $(BUILD)/src/main.d $(TEST_BINS:=.d)
