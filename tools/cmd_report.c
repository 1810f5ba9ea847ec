// medtune report RUN_DIR [--out FILE]: RUN_DIR/report.html, one self-contained page with the
// run's curves, summary, config, data and checkpoints (docs/report.md).
#include <stddef.h>
#include <stdio.h>

#include "report/report.h"
#include "tools/commands.h"

typedef struct {
    const char *run_dir, *out;
} report_args;

static const cli_positional POSITIONALS[] = {
    {"RUN_DIR", offsetof(report_args, run_dir),
     "the run's out_dir (holds metrics.jsonl and config.json)", 0},
    {0},
};

static const cli_option OPTIONS[] = {
    {.name = "out", .kind = CLI_STRING, .metavar = "FILE", .offset = offsetof(report_args, out),
     .help = "where to write the page", .default_text = "RUN_DIR/report.html"},
    {0},
};

static int run(int argc, char **argv) {
    report_args a = {0};
    int code;
    if (cli_parse(&REPORT_COMMAND, argc, argv, &a, &code)) return code;
    report_result r;
    char default_out[4200];
    if (!a.out) {
        snprintf(default_out, sizeof default_out, "%s/report.html", a.run_dir);
        a.out = default_out;
    }
    if (report_write(a.run_dir, a.out, &r)) return cli_fail();
    printf("wrote %s (%lld", a.out, (long long)r.last_step);
    if (r.total_steps >= 0) printf("/%lld", (long long)r.total_steps);
    printf(" steps, %zu evaluations", r.n_evals);
    if (r.n_malformed) printf(", %zu malformed metrics lines skipped", r.n_malformed);
    if (r.n_nonfinite) printf(", %zu NaN/Inf values flagged", r.n_nonfinite);
    printf(")\n");
    return 0;
}

const cli_command REPORT_COMMAND = {
    .name = "report",
    .summary = "RUN_DIR/report.html: loss/val/lr/speed charts, summary, config, data",
    .description =
        "Writes one self-contained HTML page about a training run directory (made by\n"
        "`medtune train`): training and validation loss, validation perplexity, learning\n"
        "rate, tokens/s and gradient norm as charts, the run summary (steps, tokens, time,\n"
        "best val loss), the resolved config, the data manifest and the checkpoints.\n"
        "Works on runs in progress. Open the file in any browser; it loads nothing from\n"
        "the network.\n",
    .positionals = POSITIONALS,
    .options = OPTIONS,
    .run = run,
};
