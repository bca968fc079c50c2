# pred area: sources, tests, fuzzers and benchmarks of src/pred/.
LIB_SRCS += src/pred/trace.c
TESTS += test-pred
FUZZERS +=
BENCHES +=
