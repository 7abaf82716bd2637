/* SPDX-License-Identifier: GPL-2.0-or-later */
/*
 * Run-time control of the trace events listed in tracepoints/trace-events.
 *
 * The probes themselves come from the generated trace_events.h (include
 * that one at call sites). USDT probes are switched by the tracer that
 * attaches to them (their semaphores); this API switches the log backend,
 * for --trace=PATTERN at startup and the control socket later. Every
 * function is thread-safe; the switches are single-byte atomics that the
 * hot path reads with a relaxed load.
 */
#ifndef VFS_TRACE_CONTROL_H
#define VFS_TRACE_CONTROL_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

struct trace_event_desc {
    const char *name;       /* "req_done" (USDT probe vfs:req_done) */
    const char *args;       /* "uint32_t queue, uint64_t unique, ..." */
    const char *format;     /* printf format of the log backend */
};

/* Number of events, and their descriptions by id (NULL past the end). */
size_t trace_event_count(void);
const struct trace_event_desc *trace_event_get(size_t id);

/* "usdt,log", "usdt", "nop", ...: what this binary was built with. */
const char *trace_backends(void);
/* True if the log backend is built in (trace_set_enabled() can work). */
bool trace_log_available(void);
/* Whether event @id currently prints through the log backend. */
bool trace_event_log_enabled(size_t id);

/*
 * Switch the log backend on or off for every event whose name matches the
 * shell glob @pattern ("req_*", "*", "vu_msg"). Returns the number of
 * events matched (>= 1), -ENOENT if none matches, -EINVAL for an empty
 * pattern, -ENOTSUP if the log backend is not built in.
 */
int trace_set_enabled(const char *pattern, bool on);

/*
 * Apply a --trace argument: comma-separated globs, in order; "-GLOB"
 * switches matching events off again ("req_*,-req_start"). Empty items are
 * ignored. Returns 0, or the first error of trace_set_enabled() with one
 * line in @err (no trailing newline). Earlier items stay applied.
 */
int trace_enable_list(const char *list, char *err, size_t errlen);

/* The calling thread's kernel thread id, cached (one gettid() per thread). */
uint32_t trace_thread_id(void);

/* Defined by the generated trace_events.c. */
extern const struct trace_event_desc trace_event_table[];

#endif
