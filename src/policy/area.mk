# policy area: sources, tests, fuzzers and benchmarks of src/policy/.
LIB_SRCS += src/policy/registry.c src/policy/cloud_only.c src/policy/edge_only.c \
            src/policy/random.c src/policy/least_loaded.c src/policy/oracle.c
TESTS += test-policy
FUZZERS +=
BENCHES +=
