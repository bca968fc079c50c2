# req area: sources, tests, fuzzers and benchmarks of src/req/.
LIB_SRCS += src/req/request.c
TESTS += test-req
FUZZERS +=
BENCHES +=
