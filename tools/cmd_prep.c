// medtune prep CONFIG.json [--set key=value]... [--json]: corpus -> shard directory.
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "common/config.h"
#include "common/error.h"
#include "data_prep/prep.h"
#include "tools/commands.h"

static void print_help(void) {
    printf("usage: medtune prep CONFIG.json [--set key=value]... [--json]\n\n"
           "Reads the corpus files of the config, cleans, deduplicates and tokenizes them, and\n"
           "writes zstd token shards (train/val) with manifest.json to out_dir.\n\n"
           "config keys: tokenizer, inputs [{path, format, text_field}], template, val_fraction,\n"
           "dedup, min_chars, scrub_phi, strict, out_dir, shard_tokens (see docs/prep.md).\n"
           "formats: pubmed-xml, pmc-nxml, text, jsonl, alpaca, sharegpt, messages\n"
           "templates: auto, chatml, llama2, llama3, alpaca, zephyr\n\n"
           "options:\n"
           "  --set key=value  override a config key (dotted path, e.g. inputs.0.path=x.jsonl)\n"
           "  --json           print the summary as one JSON object\n"
           "  -h, --help       show this help\n");
}

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
    printf("  documents kept   %llu (train %llu, val %llu)\n", (unsigned long long)s->kept,
           (unsigned long long)s->docs[0], (unsigned long long)s->docs[1]);
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

int cmd_prep(int argc, char **argv) {
    if (cli_wants_help(argc, argv)) {
        print_help();
        return 0;
    }
    const char *path = NULL;
    int json = 0, n_sets = 0;
    char **sets = calloc((size_t)argc, sizeof *sets);
    if (!sets) return err_set("out of memory"), cli_fail();
    for (int i = 1; i < argc; i++) {
        if (!strcmp(argv[i], "--json")) {
            json = 1;
        } else if (!strcmp(argv[i], "--set")) {
            if (i + 1 >= argc) return free(sets), cli_usage_error("prep", "--set needs key=value");
            sets[n_sets++] = argv[++i];
        } else if (!strncmp(argv[i], "--set=", 6)) {
            sets[n_sets++] = argv[i] + 6;
        } else if (argv[i][0] == '-' && argv[i][1]) {
            free(sets);
            return cli_usage_error("prep", "unknown option '%s'", argv[i]);
        } else if (path) {
            free(sets);
            return cli_usage_error("prep", "more than one CONFIG");
        } else {
            path = argv[i];
        }
    }
    if (!path) return free(sets), cli_usage_error("prep", "missing CONFIG.json");
    config c;
    prep_config pc;
    if (config_load(&c, path)) return free(sets), cli_fail();
    for (int i = 0; i < n_sets; i++)
        if (config_set(&c, sets[i])) {
            free(sets);
            config_free(&c);
            return cli_fail();
        }
    free(sets);
    int rc = prep_config_read(&c, &pc);
    config_free(&c);
    if (rc) return cli_fail();
    progress_state ps = {isatty(STDERR_FILENO), -1, -1};
    prep_summary s;
    rc = prep_run(&pc, on_progress, &ps, &s);
    if (ps.tty && rc) fputc('\n', stderr);
    if (rc) {
        prep_config_free(&pc);
        return cli_fail();
    }
    if (json) {
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
