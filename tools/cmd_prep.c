// medtune prep CONFIG.json [--set key=value]... [--json]: corpus -> shard directory.
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "common/config.h"
#include "common/error.h"
#include "data_prep/prep.h"
#include "tools/commands.h"

typedef struct {
    const char *config;
    cli_strings sets;
    int json;
} prep_args;

static const cli_positional POSITIONALS[] = {
    {"CONFIG.json", offsetof(prep_args, config), "the prep config (docs/prep.md)", 0},
    {0},
};

static const cli_option OPTIONS[] = {
    {.name = "set", .kind = CLI_STRINGS, .metavar = "key=value",
     .offset = offsetof(prep_args, sets),
     .help = "override a config key (dotted path, e.g. inputs.0.path=x.jsonl)"},
    {.name = "json", .kind = CLI_FLAG, .offset = offsetof(prep_args, json),
     .help = "print the summary as one JSON object"},
    {0},
};

typedef struct {
    int tty;
    double last;
    int last_files;
} progress_state;

static void on_progress(void *user, const prep_summary *s, const char *file, int done) {
    progress_state *p = user;
    double mb = (double)s->bytes_in / 1e6, rate = s->seconds > 0 ? mb / s->seconds : 0;
    unsigned long long tokens = (unsigned long long)(s->tokens[0] + s->tokens[1]);
    if (p->tty) {
        if (!done && s->seconds - p->last < 0.2) return;
        p->last = s->seconds;
        const char *name = file ? strrchr(file, '/') : NULL;
        name = name ? name + 1 : file ? file : "";
        fprintf(stderr, "\r\033[Kprep: files %llu/%d  docs %llu read %llu kept  %llu tokens  %.1f MB  %.1f MB/s  %.40s",
                (unsigned long long)s->files, s->n_files_total, (unsigned long long)s->records,
                (unsigned long long)s->kept, tokens, mb, rate, done ? "" : name);
        if (done) fputc('\n', stderr);
        fflush(stderr);
        return;
    }
    if (done || s->files == 0 || (int)s->files == p->last_files) return;
    p->last_files = (int)s->files;
    fprintf(stderr, "prep: [%llu/%d] %s: %llu records read, %llu kept, %llu tokens, %.1f MB/s\n",
            (unsigned long long)s->files, s->n_files_total, file ? file : "", (unsigned long long)s->records,
            (unsigned long long)s->kept, tokens, rate);
}

static void print_summary(const prep_config *pc, const prep_summary *s) {
    printf("prep: wrote %s\n", pc->out_dir);
    printf("  files            %llu\n", (unsigned long long)s->files);
    printf("  records read     %llu\n", (unsigned long long)s->records);
    printf("  %-16s %llu (train %llu, val %llu)\n", s->pairs[0] + s->pairs[1] ? "pairs kept" : "documents kept",
           (unsigned long long)s->kept, (unsigned long long)s->docs[0], (unsigned long long)s->docs[1]);
    printf("  dropped          %llu malformed, %llu empty, %llu too short, %llu duplicates\n",
           (unsigned long long)s->malformed, (unsigned long long)s->empty, (unsigned long long)s->too_short,
           (unsigned long long)s->duplicates);
    if (s->first_malformed[0]) printf("  first malformed  %s\n", s->first_malformed);
    if (pc->scrub_phi) {
        printf("  PHI replaced    ");
        for (int k = 0; k < PHI_KINDS; k++)
            printf(" %s %llu", phi_kind_name((phi_kind)k), (unsigned long long)s->phi[k]);
        printf("\n");
    }
    if (s->template_name[0]) printf("  chat template    %s\n", s->template_name);
    printf("  tokens           train %llu (%llu trained), val %llu (%llu trained)\n",
           (unsigned long long)s->tokens[0], (unsigned long long)s->trained[0], (unsigned long long)s->tokens[1],
           (unsigned long long)s->trained[1]);
    printf("  time             %.2f s, %.1f MB/s of input\n", s->seconds,
           s->seconds > 0 ? (double)s->bytes_in / 1e6 / s->seconds : 0.0);
}

// Reads the config with the --set overrides applied.
static int read_config(const prep_args *a, prep_config *pc) {
    config c;
    if (config_load(&c, a->config)) return -1;
    int rc = 0;
    for (size_t i = 0; !rc && i < a->sets.n; i++) rc = config_set(&c, a->sets.items[i]);
    if (!rc) rc = prep_config_read(&c, pc);
    config_free(&c);
    return rc;
}

static int run(int argc, char **argv) {
    prep_args a = {0};
    int code;
    if (cli_parse(&PREP_COMMAND, argc, argv, &a, &code)) return code;
    prep_config pc;
    int rc = read_config(&a, &pc);
    cli_strings_free(&a.sets);
    if (rc) return cli_fail();
    progress_state ps = {isatty(STDERR_FILENO), -1, -1};
    prep_summary s;
    rc = prep_run(&pc, on_progress, &ps, &s);
    if (ps.tty && rc) fputc('\n', stderr);
    if (rc) {
        prep_config_free(&pc);
        return cli_fail();
    }
    if (a.json) {
        cJSON *o = prep_summary_json(&s);
        if (o) {
            cJSON_AddStringToObject(o, "out_dir", pc.out_dir);
            if (s.template_name[0]) cJSON_AddStringToObject(o, "template", s.template_name);
        }
        char *text = o ? cJSON_PrintUnformatted(o) : NULL;
        cJSON_Delete(o);
        if (!text) {
            prep_config_free(&pc);
            err_set("out of memory");
            return cli_fail();
        }
        printf("%s\n", text);
        free(text);
    } else {
        print_summary(&pc, &s);
    }
    prep_config_free(&pc);
    return 0;
}

static void print_config_keys(FILE *out) {
    fprintf(out, "config keys (docs/prep.md):\n");
    size_t n;
    const prep_config_key *keys = prep_config_keys(&n);
    for (size_t i = 0; i < n; i++) cli_print_key(out, keys[i].key, keys[i].def, keys[i].meaning);
    fprintf(out, "\ninputs[].format:");
    for (input_format f = INPUT_PUBMED_XML; f <= INPUT_MESSAGES; f++)
        fprintf(out, "%s%s", f == INPUT_PUBMED_XML ? " " : ", ", input_format_name(f));
    fputc('\n', out);
}

const cli_command PREP_COMMAND = {
    .name = "prep",
    .summary = "corpus files -> cleaned, tokenized train/val shard directory",
    .description =
        "Reads the corpus files of the config, cleans, deduplicates and tokenizes them, and\n"
        "writes zstd token shards (train/val) with manifest.json to out_dir. Progress goes to\n"
        "stderr, the summary to stdout.\n",
    .positionals = POSITIONALS,
    .options = OPTIONS,
    .print_more = print_config_keys,
    .run = run,
};
