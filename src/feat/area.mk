# feat area: sources, tests, fuzzers and benchmarks of src/feat/.
LIB_SRCS += src/feat/image.c src/feat/imgfeat.c src/feat/calib.c src/feat/tokens.c \
            src/feat/cmd_calibrate.c
TESTS += test-feat-image
FUZZERS += fuzz-image fuzz-calib
BENCHES += bench-features
