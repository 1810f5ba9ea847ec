// One function per subcommand (tools/cmd_<name>.c). Each returns the process exit code:
// 0 success, 1 bad input (after printing "medtune: error: ..."), 2 usage error.
#ifndef MEDTUNE_TOOLS_COMMANDS_H
#define MEDTUNE_TOOLS_COMMANDS_H

int cmd_eval(int argc, char **argv);
int cmd_export(int argc, char **argv);
int cmd_info(int argc, char **argv);
int cmd_merge(int argc, char **argv);
int cmd_prep(int argc, char **argv);
int cmd_tokenize(int argc, char **argv);
int cmd_train(int argc, char **argv);
int cmd_generate(int argc, char **argv);
int cmd_report(int argc, char **argv);
int cmd_quickstart(int argc, char **argv);

// Prints "medtune: error: <err_msg()>" to stderr and returns 1.
int cli_fail(void);
// Prints "medtune: <cmd>: <message>" and a hint to use --help; returns 2.
int cli_usage_error(const char *cmd, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
// True when argv holds -h or --help.
int cli_wants_help(int argc, char **argv);

#endif
