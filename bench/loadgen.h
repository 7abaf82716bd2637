/* SPDX-License-Identifier: GPL-2.0-or-later */
/*
 * The load engine behind vfs-load and vfs-ab: starts a daemon (or connects
 * to a socket), creates its test file through FUSE, keeps `depth` requests
 * in flight on every request queue for a time or a request count, and
 * measures per-opcode latency from submit (avail ring publish) to the
 * completion being seen in the used ring.
 */
#ifndef BENCH_LOADGEN_H
#define BENCH_LOADGEN_H

#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>

#include "histo.h"

enum lg_workload { LG_READ, LG_WRITE, LG_RW, LG_META };

enum lg_op { LG_OP_READ, LG_OP_WRITE, LG_OP_LOOKUP, LG_OP_GETATTR, LG_OP_OPEN,
             LG_OP_RELEASE, LG_NOPS };

#define LG_MAX_ARGS 64

struct lg_params {
    /* daemon: argv (without socket argument) or an existing socket */
    const char *daemon_argv[LG_MAX_ARGS];
    unsigned daemon_argc;
    const char *env[16];         /* extra environment for the daemon */
    unsigned nenv;
    const char *connect_path;    /* use this socket instead of spawning */
    bool use_fd;                 /* spawn with --fd=N instead of --socket-path */
    const char *daemon_log;      /* daemon stderr (default /dev/null) */

    enum lg_workload workload;
    bool random;                 /* random offsets (else sequential) */
    unsigned rwmix;              /* % reads for LG_RW */
    uint32_t bs;
    uint64_t file_size;
    const char *file_name;
    unsigned nfiles;             /* metadata workload: files to cycle through */
    unsigned queues;
    unsigned depth;
    unsigned threads;
    double duration;             /* seconds (measured part) */
    double ramp;                 /* seconds before measuring */
    uint64_t requests;           /* total cap across threads (0: time only) */
    unsigned queue_size;
    uint64_t mem_size;
    bool event_idx;
    bool indirect;
    bool spin;                   /* busy-poll used rings instead of sleeping */
    uint64_t cpus_driver;        /* affinity of the driver threads (0: any) */
    uint64_t cpus_daemon;        /* affinity of the daemon (0: any) */
    bool quiet;
    char *cmd_buf;               /* owned by lg_set_daemon_cmdline */
};

void lg_params_default(struct lg_params *p);
/* Parses one "--name" option with its value (NULL for flags).  Returns the
 * number of argv entries consumed (1 or 2), 0 if not a load option, -1 on a
 * bad value. */
int lg_parse_arg(struct lg_params *p, int argc, char **argv, int i);
void lg_usage_options(FILE *f);
/* Splits a shell-like command line (whitespace, "..." and '...' quoting,
 * leading NAME=VALUE words become environment) into p's daemon fields. */
int lg_set_daemon_cmdline(struct lg_params *p, const char *cmd);
/* Frees what lg_set_daemon_cmdline allocated. */
void lg_params_release(struct lg_params *p);
/* Adds MALLOC_ARENA_MAX=8 when the daemon is upstream's virtiofsd in pool
 * mode (its seccomp filter kills the pool otherwise); returns true if so. */
bool lg_fix_upstream_env(struct lg_params *p);

struct lg_opstat {
    struct histo h;
    uint64_t errors;
    uint64_t bytes;
};

struct lg_result {
    char cmdline[2048];           /* the daemon command line measured */
    bool arena_note;              /* MALLOC_ARENA_MAX=8 was added */
    double seconds;               /* measured interval */
    uint64_t requests;            /* completed in the interval */
    uint64_t bytes;
    uint64_t errors;
    uint64_t protocol_errors;     /* unique/len mismatches, bogus used ids */
    struct lg_opstat op[LG_NOPS];
    struct histo all;
    uint64_t kicks, kicks_suppressed, calls;
    double load_before, load_after;  /* 1-min loadavg: other load on the machine */
    int daemon_status;               /* wait status, -1 if still running / not ours */
};

/* Resolves defaults in *p (duration, ramp, threads), then runs. */
int lg_run(struct lg_params *p, struct lg_result *r);

const char *lg_op_name(enum lg_op op);
const char *lg_workload_name(const struct lg_params *p);
void lg_print_table(FILE *f, const struct lg_params *p, const struct lg_result *r);
void lg_print_json(FILE *f, const struct lg_params *p, const struct lg_result *r);
/* A JSON string literal, escaped. */
void lg_json_str(FILE *f, const char *s);

#endif
