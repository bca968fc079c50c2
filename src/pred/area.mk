# pred area: sources, tests, fuzzers and benchmarks of src/pred/.
LIB_SRCS += src/pred/trace.c src/pred/milp.c src/pred/mgqp.c src/pred/pred.c src/pred/model.c \
            src/pred/m4a1.c src/pred/a2c.c src/pred/cmd_train.c src/pred/cmd_eval.c src/pred/cmd_bench.c
TESTS += test-pred
FUZZERS += fuzz-trace fuzz-model fuzz-m4a1
BENCHES += bench-decide bench-trace
