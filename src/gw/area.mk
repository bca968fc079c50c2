# gw area: sources, tests, fuzzers and benchmarks of src/gw/.
LIB_SRCS += src/gw/config.c src/gw/upstream.c src/gw/workers.c src/gw/metrics.c \
            src/gw/nodes.c src/gw/route.c src/gw/store.c src/gw/server.c src/gw/cmd_serve.c \
            src/gw/cmd_export.c src/gw/share.c
# gw/share: hiredis (Debian libhiredis-dev), async on the libevent loop
LDLIBS_FY += -lhiredis
TESTS += test-gw test-gw-share
FUZZERS += fuzz-gw fuzz-share
BENCHES += bench-gateway
LIB_SRCS += src/gw/cascade.c
LIB_SRCS += src/gw/http.c src/gw/hclient.c
TESTS += test-gw-cascade
FUZZERS += fuzz-gw-cascade
TESTS += test-gw-http
FUZZERS += fuzz-http fuzz-hclient
LIB_SRCS += src/gw/shadow.c
TESTS += test-gw-shadow test-gw-config
FUZZERS += fuzz-shadow
# tests/gwtest.c: the plumbing the gateway tests share (processes, HTTP client,
# /metrics), linked into the test-gw* binaries (and test-emu: src/emu/area.mk)
GW_TEST_BINS := $(filter test-gw%,$(TESTS))
$(GW_TEST_BINS:%=$(BUILD)/tests/%): $(BUILD)/tests/gwtest.o
-include $(BUILD)/tests/gwtest.d
