/* SPDX-License-Identifier: GPL-2.0-or-later */
/*
 * Run-time control of trace events (trace_control.h). Compiled together
 * with a generated trace_events.c, whose event table and log switches it
 * walks; it never runs on the request path.
 */
/* tests/trace builds this against headers generated from other inputs */
#ifndef TRACE_EVENTS_HEADER
#define TRACE_EVENTS_HEADER "trace_events.h"
#endif
#include TRACE_EVENTS_HEADER

#include <errno.h>
#include <fnmatch.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

size_t trace_event_count(void)
{
    return TRACE_EVENT_COUNT;
}

const struct trace_event_desc *trace_event_get(size_t id)
{
    return id < TRACE_EVENT_COUNT ? &trace_event_table[id] : NULL;
}

const char *trace_backends(void)
{
    return TRACE_BACKENDS;
}

bool trace_log_available(void)
{
    return TRACE_BACKEND_LOG;
}

bool trace_event_log_enabled(size_t id)
{
#if TRACE_BACKEND_LOG
    if (id < TRACE_EVENT_COUNT)
        return __atomic_load_n(&trace_log_state[id], __ATOMIC_RELAXED) != 0;
#endif
    return false;
}

int trace_set_enabled(const char *pattern, bool on)
{
    int matched = 0;

    if (!pattern || !pattern[0])
        return -EINVAL;
    if (!TRACE_BACKEND_LOG)
        return -ENOTSUP;
    for (size_t i = 0; i < TRACE_EVENT_COUNT; i++) {
        if (fnmatch(pattern, trace_event_table[i].name, 0) != 0)
            continue;
#if TRACE_BACKEND_LOG
        __atomic_store_n(&trace_log_state[i], on ? 1 : 0, __ATOMIC_RELAXED);
#endif
        matched++;
    }
    return matched ? matched : -ENOENT;
}

int trace_enable_list(const char *list, char *err, size_t errlen)
{
    char *copy, *item, *save = NULL;
    int ret = 0;

    if (!list)
        return 0;
    copy = strdup(list);
    if (!copy) {
        snprintf(err, errlen, "--trace: out of memory");
        return -ENOMEM;
    }
    for (item = strtok_r(copy, ",", &save); item;
         item = strtok_r(NULL, ",", &save)) {
        bool on = item[0] != '-';
        const char *pat = on ? item : item + 1;
        int r = trace_set_enabled(pat, on);

        if (r >= 0)
            continue;
        if (r == -ENOTSUP)
            snprintf(err, errlen, "--trace: this build has no log backend "
                     "(trace_backends=%s); attach bpftrace or perf to the "
                     "USDT probes instead", TRACE_BACKENDS);
        else if (r == -ENOENT)
            snprintf(err, errlen, "--trace: no trace event matches '%s' "
                     "(see tracepoints/trace-events)", pat);
        else
            snprintf(err, errlen, "--trace: bad pattern '%s'", item);
        ret = r;
        break;
    }
    free(copy);
    return ret;
}

uint32_t trace_thread_id(void)
{
    static __thread uint32_t tid;

    if (!tid)
        tid = (uint32_t)gettid();
    return tid;
}
