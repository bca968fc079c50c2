# emu area: sources, tests, fuzzers and benchmarks of src/emu/.
LIB_SRCS += src/emu/faults.c src/emu/answers.c src/emu/logprobs.c src/emu/server.c src/emu/cmd_emulate.c \
            src/emu/score.c src/emu/reply.c src/emu/dataset.c src/emu/collect.c \
            src/emu/cmd_collect.c src/emu/load.c src/emu/cmd_load.c
TESTS += test-emu
FUZZERS += fuzz-emu
BENCHES += bench-emu
# test-emu starts its in-process emulators with tests/gwtest.c's gwt_emu (gwtest.h)
$(BUILD)/tests/test-emu: $(BUILD)/tests/gwtest.o
