/* SPDX-License-Identifier: GPL-2.0-or-later */
/*
 * The built daemon carries a USDT probe (a stapsdt note, provider vfs,
 * with a semaphore) for every event of trace-events, and none that the
 * file does not list. The event list is read from the file.
 *
 *   test_trace_notes TRACE_EVENTS DAEMON BACKENDS
 *
 * Exit 0 pass, 1 fail, 77 if the build has no usdt backend or readelf is
 * missing.
 */
#include <ctype.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define MAX_EVENTS 256

struct event {
    char name[64];
    unsigned int notes;         /* stapsdt notes seen */
    unsigned int with_sem;      /* of which with a semaphore */
};

static struct event events[MAX_EVENTS];
static unsigned int nevents;

static struct event *find(const char *name)
{
    for (unsigned int i = 0; i < nevents; i++)
        if (!strcmp(events[i].name, name))
            return &events[i];
    return NULL;
}

/* Event names: the identifier before '(' on each non-comment line. */
static int read_events(const char *path)
{
    char line[1024];
    FILE *f = fopen(path, "r");

    if (!f) {
        perror(path);
        return -1;
    }
    while (fgets(line, sizeof(line), f)) {
        char *p = line, *q;

        while (isspace((unsigned char)*p))
            p++;
        if (!*p || *p == '#')
            continue;
        q = p;
        while (isalnum((unsigned char)*q) || *q == '_')
            q++;
        if (*q != '(' || q == p || (size_t)(q - p) >= sizeof(events[0].name) ||
            nevents == MAX_EVENTS) {
            fprintf(stderr, "%s: cannot read event line: %s", path, line);
            fclose(f);
            return -1;
        }
        memcpy(events[nevents].name, p, (size_t)(q - p));
        events[nevents].name[q - p] = '\0';
        nevents++;
    }
    fclose(f);
    return nevents ? 0 : -1;
}

static char *field(char *line, const char *key)
{
    char *p = strstr(line, key);
    char *e;

    if (!p)
        return NULL;
    p += strlen(key);
    while (*p == ' ')
        p++;
    e = p + strcspn(p, " ,\n");
    *e = '\0';
    return p;
}

int main(int argc, char **argv)
{
    char cmd[1200], line[1024], provider[64] = "", name[64] = "";
    unsigned int foreign = 0, total = 0;
    int failures = 0;
    FILE *p;

    if (argc != 4) {
        fprintf(stderr, "usage: %s TRACE_EVENTS DAEMON BACKENDS\n", argv[0]);
        return 1;
    }
    if (!strstr(argv[3], "usdt")) {
        printf("SKIP: built with trace_backends=%s (no usdt)\n", argv[3]);
        return 77;
    }
    if (system("readelf --version >/dev/null 2>&1") != 0) {
        printf("SKIP: readelf not found (binutils)\n");
        return 77;
    }
    if (read_events(argv[1]) < 0)
        return 1;

    snprintf(cmd, sizeof(cmd), "readelf -n '%s'", argv[2]);
    p = popen(cmd, "r");
    if (!p) {
        perror("popen readelf");
        return 1;
    }
    /*
     *     Provider: vfs
     *     Name: req_done
     *     Location: 0x..., Base: 0x..., Semaphore: 0x0000000000028752
     */
    while (fgets(line, sizeof(line), p)) {
        char *v;

        if ((v = field(line, "Provider:"))) {
            snprintf(provider, sizeof(provider), "%s", v);
        } else if ((v = field(line, "Name:"))) {
            snprintf(name, sizeof(name), "%s", v);
        } else if (strstr(line, "Location:") && !strcmp(provider, "vfs")) {
            struct event *e = find(name);
            char *sem = field(line, "Semaphore:");

            total++;
            if (!e) {
                fprintf(stderr, "FAIL: probe vfs:%s is not in %s\n", name,
                        argv[1]);
                foreign++;
                continue;
            }
            e->notes++;
            if (sem && strtoull(sem, NULL, 16) != 0)
                e->with_sem++;
        }
    }
    if (pclose(p) != 0) {
        fprintf(stderr, "FAIL: readelf -n %s failed\n", argv[2]);
        return 1;
    }

    for (unsigned int i = 0; i < nevents; i++) {
        struct event *e = &events[i];

        if (!e->notes) {
            fprintf(stderr, "FAIL: no stapsdt note for event %s\n", e->name);
            failures++;
        } else if (e->with_sem != e->notes) {
            fprintf(stderr, "FAIL: %u of %u notes of %s have no semaphore\n",
                    e->notes - e->with_sem, e->notes, e->name);
            failures++;
        } else {
            printf("ok vfs:%s (%u note%s)\n", e->name, e->notes,
                   e->notes > 1 ? "s" : "");
        }
    }
    failures += (int)foreign;
    printf("%u events in %s, %u vfs notes in %s\n", nevents, argv[1], total,
           argv[2]);
    return failures ? 1 : 0;
}
