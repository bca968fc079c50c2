# pred area: sources, tests, fuzzers and benchmarks of src/pred/.
LIB_SRCS += src/pred/trace.c src/pred/milp.c src/pred/mgqp.c src/pred/pred.c src/pred/model.c
TESTS += test-pred
FUZZERS +=
BENCHES +=
