# gw area: sources, tests, fuzzers and benchmarks of src/gw/.
LIB_SRCS +=
TESTS +=
FUZZERS +=
BENCHES +=
