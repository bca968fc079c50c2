# emu area: sources, tests, fuzzers and benchmarks of src/emu/.
LIB_SRCS +=
TESTS +=
FUZZERS +=
BENCHES +=
