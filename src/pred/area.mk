# pred area: sources, tests, fuzzers and benchmarks of src/pred/.
LIB_SRCS +=
TESTS +=
FUZZERS +=
BENCHES +=
