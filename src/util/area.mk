# util area: sources, tests, fuzzers and benchmarks of src/util/.
LIB_SRCS += src/util/buf.c src/util/log.c src/util/clock.c src/util/rng.c src/util/heap.c src/util/b64.c src/util/file.c \
            src/util/grow.c src/util/num.c src/util/err.c
TESTS += test-util
FUZZERS +=
BENCHES +=
