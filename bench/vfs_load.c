/* SPDX-License-Identifier: GPL-2.0-or-later */
/*
 * vfs-load: drive a vhost-user-fs daemon with FUSE READ/WRITE/metadata load
 * from userspace (no VM) and print req/s, MB/s and latency percentiles.
 *
 *   vfs-load [options] -- DAEMON [daemon args, without --socket-path]
 *   vfs-load [options] --connect=SOCKET
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "loadgen.h"

static void usage(FILE *f)
{
    fprintf(f, "usage: vfs-load [options] -- DAEMON [ARGS...]\n"
               "       vfs-load [options] --connect=SOCKET\n"
               "The daemon gets --socket-path=<tmp> (or --fd=N) appended.  For upstream\n"
               "virtiofsd with --thread-pool-size>0, MALLOC_ARENA_MAX=8 is added to its\n"
               "environment (and reported).\n\noptions:\n");
    lg_usage_options(f);
    fprintf(f, "  --json             print one JSON object instead of the table\n");
}

int main(int argc, char **argv)
{
    struct lg_params p;
    bool json = false;
    lg_params_default(&p);
    int i;
    for (i = 1; i < argc; i++) {
        if (!strcmp(argv[i], "--")) {
            i++;
            break;
        }
        if (!strcmp(argv[i], "--json")) {
            json = true;
            continue;
        }
        if (!strcmp(argv[i], "-h") || !strcmp(argv[i], "--help")) {
            usage(stdout);
            return 0;
        }
        int n = lg_parse_arg(&p, argc, argv, i);
        if (n <= 0) {
            fprintf(stderr, "vfs-load: bad option %s\n", argv[i]);
            usage(stderr);
            return 2;
        }
        i += n - 1;
    }
    for (; i < argc && p.daemon_argc + 1 < LG_MAX_ARGS; i++) {
        p.daemon_argv[p.daemon_argc++] = argv[i];
    }
    if (!p.daemon_argc && !p.connect_path) {
        usage(stderr);
        return 2;
    }
    struct lg_result r;
    bool note = lg_fix_upstream_env(&p);
    int ret = lg_run(&p, &r);
    r.arena_note = note;
    if (ret < 0) {
        fprintf(stderr, "vfs-load: run failed: %s\n", strerror(-ret));
        return 1;
    }
    if (json) {
        lg_print_json(stdout, &p, &r);
    } else {
        lg_print_table(stdout, &p, &r);
    }
    return r.errors || r.protocol_errors ? 1 : 0;
}
