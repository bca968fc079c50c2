# req area: sources, tests, fuzzers and benchmarks of src/req/.
LIB_SRCS +=
TESTS +=
FUZZERS +=
BENCHES +=
