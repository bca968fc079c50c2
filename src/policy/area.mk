# policy area: sources, tests, fuzzers and benchmarks of src/policy/.
LIB_SRCS +=
TESTS +=
FUZZERS +=
BENCHES +=
