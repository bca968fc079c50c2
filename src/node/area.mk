# node area: sources, tests, fuzzers and benchmarks of src/node/.
LIB_SRCS += src/node/service.c src/node/link.c src/node/profile.c
TESTS += test-node
FUZZERS += fuzz-profile
BENCHES +=
