# feat area: sources, tests, fuzzers and benchmarks of src/feat/.
LIB_SRCS +=
TESTS +=
FUZZERS +=
BENCHES +=
