// medtune report RUN_DIR [--out FILE]: RUN_DIR/report.html, one self-contained page with the
// run's curves, summary, config, data and checkpoints (docs/report.md).
#include <stdio.h>
#include <string.h>

#include "report/report.h"
#include "tools/commands.h"

static void print_help(void) {
    printf("usage: medtune report RUN_DIR [--out FILE]\n\n"
           "Writes one self-contained HTML page about a training run directory (made by\n"
           "`medtune train`): training and validation loss, validation perplexity, learning\n"
           "rate, tokens/s and gradient norm as charts, the run summary (steps, tokens, time,\n"
           "best val loss), the resolved config, the data manifest and the checkpoints.\n"
           "Works on runs in progress. Open the file in any browser; it loads nothing from\n"
           "the network.\n\n"
           "options:\n"
           "  RUN_DIR       the run's out_dir (holds metrics.jsonl and config.json)\n"
           "  --out FILE    where to write the page (default: RUN_DIR/report.html)\n"
           "  -h, --help    show this help\n");
}

int cmd_report(int argc, char **argv) {
    if (cli_wants_help(argc, argv)) {
        print_help();
        return 0;
    }
    const char *run_dir = NULL, *out = NULL;
    for (int i = 1; i < argc; i++) {
        if (!strcmp(argv[i], "--out")) {
            if (i + 1 >= argc) return cli_usage_error("report", "--out needs a value");
            out = argv[++i];
        } else if (argv[i][0] == '-') {
            return cli_usage_error("report", "unknown option %s", argv[i]);
        } else if (!run_dir) {
            run_dir = argv[i];
        } else {
            return cli_usage_error("report", "one RUN_DIR expected, got also %s", argv[i]);
        }
    }
    if (!run_dir) return cli_usage_error("report", "RUN_DIR missing");
    report_result r;
    char default_out[4200];
    if (!out) {
        snprintf(default_out, sizeof default_out, "%s/report.html", run_dir);
        out = default_out;
    }
    if (report_write(run_dir, out, &r)) return cli_fail();
    printf("wrote %s (%lld", out, (long long)r.last_step);
    if (r.total_steps >= 0) printf("/%lld", (long long)r.total_steps);
    printf(" steps, %zu evaluations", r.n_evals);
    if (r.n_malformed) printf(", %zu malformed metrics lines skipped", r.n_malformed);
    if (r.n_nonfinite) printf(", %zu NaN/Inf values flagged", r.n_nonfinite);
    printf(")\n");
    return 0;
}
