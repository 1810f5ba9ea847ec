// The medtune commands, one per tools/cmd_<name>.c, each declared as a table of its arguments
// (tools/options.h). A command's run function returns the process exit code: 0 success,
// 1 bad input (after printing "medtune: error: ..."), 2 usage error.
#ifndef MEDTUNE_TOOLS_COMMANDS_H
#define MEDTUNE_TOOLS_COMMANDS_H

#include "tools/options.h"

extern const cli_command PREP_COMMAND;
extern const cli_command TRAIN_COMMAND;
extern const cli_command EXPORT_COMMAND;
extern const cli_command MERGE_COMMAND;
extern const cli_command EVAL_COMMAND;
extern const cli_command GENERATE_COMMAND;
extern const cli_command REPORT_COMMAND;
extern const cli_command INFO_COMMAND;
extern const cli_command TOKENIZE_COMMAND;
extern const cli_command QUICKSTART_COMMAND;

#endif
