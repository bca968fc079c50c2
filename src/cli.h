/* cli.h — entry points of the subcommands, one per line, defined in their areas.
 * Each takes (argc, argv) with argv[0] = the subcommand name, prints its own --help,
 * and returns the process exit status (0 ok, 1 some input failed, 2 usage error). */
#ifndef FERRY_CLI_H
#define FERRY_CLI_H

int cmd_features(int argc, char **argv);  /* src/feat/cmd_features.c */
int cmd_calibrate(int argc, char **argv); /* src/feat/cmd_calibrate.c */
int cmd_emulate(int argc, char **argv); /* src/emu/cmd_emulate.c */

#endif
