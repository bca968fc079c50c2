/* cli.h — entry points of the subcommands, one per line, defined in their areas.
 * Each takes (argc, argv) with argv[0] = the subcommand name, prints its own --help,
 * and returns the process exit status (0 ok, 1 some input failed, 2 usage error). */
#ifndef FERRY_CLI_H
#define FERRY_CLI_H

int cmd_features(int argc, char **argv);  /* src/feat/cmd_features.c */
int cmd_calibrate(int argc, char **argv); /* src/feat/cmd_calibrate.c */
int cmd_sim(int argc, char **argv);       /* src/sim/cmd_sim.c */
int cmd_train(int argc, char **argv);     /* src/pred/cmd_train.c */
int cmd_eval(int argc, char **argv);      /* src/pred/cmd_eval.c */
int cmd_bench(int argc, char **argv);     /* src/pred/cmd_bench.c */
int cmd_emulate(int argc, char **argv); /* src/emu/cmd_emulate.c */
int cmd_serve(int argc, char **argv);   /* src/gw/cmd_serve.c */
int cmd_bench_export(int argc, char **argv); /* src/gw/cmd_export.c ("ferry bench export") */
int cmd_bench_collect(int argc, char **argv); /* src/emu/cmd_collect.c ("ferry bench collect") */
int cmd_bench_load(int argc, char **argv);  /* src/emu/cmd_load.c ("ferry bench load") */

#endif
