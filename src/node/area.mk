# node area: sources, tests, fuzzers and benchmarks of src/node/.
LIB_SRCS +=
TESTS +=
FUZZERS +=
BENCHES +=
