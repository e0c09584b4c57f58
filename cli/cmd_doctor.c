/* cmd_doctor.c - `tikd doctor`: the compliance check (core/doctor), printed,
 * and put on the record. The daemon runs this very command as a child once
 * a day (compliance.interval) and reads its --json. */
#include "engine.h"

#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "../core/clock.h"
#include "../core/doctor.h"
#include "../core/vault.h"

static int run_doctor(struct cli *c, int argc, char **argv)
{
    bool json = cli_take_flag(&argc, argv, "--json");
    const char **logs = calloc((size_t)argc, sizeof *logs);
    size_t nlogs = 0;
    if (!logs)
        return 1;
    for (int i = 1; i < argc; i++) {
        if (strcmp(argv[i], "--log") == 0 && i + 1 < argc) {
            logs[nlogs++] = argv[++i];
        } else {
            free(logs);
            return argv[i][0] == '-'
                       ? cli_unknown(&cmd_doctor, "option", argv[i])
                       : cli_usage_error(&cmd_doctor, "unexpected argument '%s'", argv[i]);
        }
    }
    struct engine en;
    if (engine_open(c, &en, ENG_STORE)) {
        free(logs);
        return 1;
    }
    /* the vault, if its key is here: without it the tokens cannot be looked
     * for, and the report says so */
    struct vault *v = NULL;
    struct tikd_err e = {0};
    if (vault_load(&v, c->cfg.vault_key_file, getenv("TIKD_VAULT_KEY"), &e) != 0)
        v = NULL; /* (a record it cannot open is counted by the scan) */
    struct doc_input in = {.store = en.store,
                           .vault = v,
                           .cfg = &c->cfg,
                           .logs = logs,
                           .nlogs = nlogs,
                           .now = clock_now()};
    struct doc_report r;
    int rc = doctor_run(&in, &r, &e);
    vault_free(v);
    free(logs);
    if (rc != 0) {
        engine_close(&en);
        fprintf(stderr, "tikd doctor: %s\n", e.msg);
        return 1;
    }
    if (doctor_record(en.store, &r, "operator", &e) != 0)
        fprintf(stderr, "tikd doctor: the result could not be put on the record: %s\n", e.msg);
    engine_close(&en);
    if (json) {
        json_t *arr = json_array();
        for (size_t i = 0; i < r.n; i++)
            json_array_append_new(arr, json_pack("{s:s, s:s, s:s}", "check", r.v[i].check, "level",
                                                 doctor_level_name(r.v[i].level), "detail",
                                                 r.v[i].detail));
        cli_print_json(json_pack("{s:b, s:i, s:i, s:o}", "ok", r.fails == 0, "fails", r.fails,
                                 "warns", r.warns, "checks", arr));
    } else {
        for (size_t i = 0; i < r.n; i++)
            printf("%-5s %-20s %s\n", doctor_level_name(r.v[i].level), r.v[i].check, r.v[i].detail);
        printf("doctor: %d failed, %d warning%s, %zu checks\n", r.fails, r.warns,
               r.warns == 1 ? "" : "s", r.n);
    }
    int fails = r.fails;
    doctor_report_free(&r);
    return fails ? 1 : 0;
}

const struct cli_cmd cmd_doctor = {
    "doctor", run_doctor, "doctor [--json] [--log FILE]...",
    "the compliance check: tokens, reauth, the audit chain, plaintext secrets, modes, HTTPS",
    "Checks what must hold for TikTok's audit and for the operator: no account needs\n"
    "reconnecting, no refresh token ends within a week, the audit chain is intact, no\n"
    "token or client secret lies in plain text in the data directory (or in each --log\n"
    "FILE), the data directory and key file are this user's only, the redirect URI,\n"
    "webhook URL and media URL are HTTPS, the admin API stays on loopback, and what an\n"
    "unaudited app (tiktok.audited = false) may do. Prints one line per check and puts\n"
    "the result on the audit record; exit 1 when a check fails. tikd run does the same\n"
    "every compliance.interval seconds (a day) and alerts when one fails.\n"};
