# sim area: sources, tests, fuzzers and benchmarks of src/sim/.
LIB_SRCS +=
TESTS +=
FUZZERS +=
BENCHES +=
