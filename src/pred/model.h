/* model — the versioned predictor model file (`ferry train -o model.fy`). Text, one
 * record per line, every number with 17 significant digits (exact round trip):
 *
 *   ferry-model 2                                   magic and format version
 *   dims hash=256 mgqp=275 rls=10 parts=7 tasks=7   must equal this build's constants
 *   shared N                                        MGQP weights shared by all nodes:
 *   mu  V[mgqp]
 *   prec V[mgqp]
 *   nodes N
 *   node NAME MODEL ROLE                            then, for that node:
 *   rls PART D LAMBDA S2 N W[D] P[D*D]              PART = 0..parts-1 (milp.h order)
 *   cost CR NERR ABS_ERR_SUM APE_SUM
 *   mgqp Q0 N
 *   mu  V[mgqp]
 *   prec V[mgqp]
 *   end
 *   checksum HEX                                    FNV-1a 64 of every byte before it
 *
 * The loader refuses, with "path:line: what": a wrong magic, another version, other
 * dimensions (a file from a build with another feature layout), a bad checksum
 * (truncated or edited file), malformed or non-finite numbers, negative precisions,
 * and a node whose MODEL differs from the model of the node of the same name it is
 * loaded for. Files larger than MODEL_MAX_BYTES are refused unread. */
#ifndef FERRY_PRED_MODEL_H
#define FERRY_PRED_MODEL_H
#include <stddef.h>

#define MODEL_MAGIC     "ferry-model"
#define MODEL_VERSION   2   /* 2: shared MGQP block (version 1 files are refused) */
#define MODEL_MAX_BYTES (64u << 20)

#endif
