// medtune: the command-line entry point. Dispatches to one command per tools/cmd_<name>.c.
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "tools/commands.h"

// In the order of the pipeline: data, training, what a run produces, then inspection tools.
static const cli_command *const COMMANDS[] = {
    &PREP_COMMAND,   &TRAIN_COMMAND,  &EXPORT_COMMAND, &MERGE_COMMAND,    &EVAL_COMMAND,
    &GENERATE_COMMAND, &REPORT_COMMAND, &INFO_COMMAND,   &TOKENIZE_COMMAND, &QUICKSTART_COMMAND,
};
#define N_COMMANDS (sizeof COMMANDS / sizeof COMMANDS[0])

static void print_commands(FILE *out) {
    fprintf(out, "usage: medtune <command> [options]   (medtune <command> --help for details)\n\n"
                 "commands:\n");
    for (size_t i = 0; i < N_COMMANDS; i++)
        fprintf(out, "  %-12s %s\n", COMMANDS[i]->name, COMMANDS[i]->summary);
}

// libgomp reads OMP_WAIT_POLICY once, when it is loaded. Its default spins idle threads at every
// barrier, which on a busy machine steals the cores the working threads need (measured here:
// 2.4x slower training with another job running). Unless the user chose a policy, medtune
// re-executes itself once with PASSIVE (bench/README.md has the figures).
static void omp_wait_policy_default(char **argv) {
    if (getenv("OMP_WAIT_POLICY")) return;
    setenv("OMP_WAIT_POLICY", "PASSIVE", 1);
    execv("/proc/self/exe", argv);
}

int main(int argc, char **argv) {
    omp_wait_policy_default(argv);
    // Without a command there is nothing to run: a usage error (exit 2), the listing on stderr
    // so a script capturing stdout does not take it for output. Asked for, it is the output.
    if (argc < 2) {
        print_commands(stderr);
        return 2;
    }
    if (!strcmp(argv[1], "-h") || !strcmp(argv[1], "--help") || !strcmp(argv[1], "help")) {
        print_commands(stdout);
        return 0;
    }
    for (size_t i = 0; i < N_COMMANDS; i++)
        if (!strcmp(argv[1], COMMANDS[i]->name)) return COMMANDS[i]->run(argc - 1, argv + 1);
    fprintf(stderr, "medtune: unknown command '%s'\n\n", argv[1]);
    print_commands(stderr);
    return 2;
}
