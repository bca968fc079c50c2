# sim area: sources, tests, fuzzers and benchmarks of src/sim/.
LIB_SRCS += src/sim/workload.c src/sim/quality.c src/sim/experiment.c src/sim/stats.c \
            src/sim/engine.c src/sim/report.c src/sim/cmd_sim.c
TESTS += test-sim
FUZZERS += fuzz-experiment
BENCHES +=
