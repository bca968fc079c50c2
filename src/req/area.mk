# req area: sources, tests, fuzzers and benchmarks of src/req/, plus the text and
# dialogue half of feat (src/feat/text.c, features.c, cmd_features.c), owned by req.
LIB_SRCS += src/req/request.c src/feat/text.c src/feat/features.c src/feat/cmd_features.c
TESTS += test-req test-feat-text
FUZZERS += fuzz-request fuzz-b64
BENCHES += bench-text
