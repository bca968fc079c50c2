# policy area: sources, tests, fuzzers and benchmarks of src/policy/.
LIB_SRCS += src/policy/registry.c src/policy/role_only.c \
            src/policy/random.c src/policy/least_loaded.c src/policy/oracle.c
# learned policies (owner pred)
LIB_SRCS += src/policy/learned.c src/policy/moa_off.c src/policy/perllm.c \
            src/policy/qlmio.c src/policy/lcio.c src/policy/ferry.c \
            src/policy/cascade.c
TESTS += test-policies
TESTS += test-policy
FUZZERS +=
BENCHES +=
