#!/usr/bin/env python3
# SPDX-License-Identifier: GPL-2.0-or-later
"""Generate the trace header and source from a trace-events file.

    tracetool.py --backends=usdt,log --format=h|c [--provider=vfs] INPUT OUTPUT

trace-events holds one event per line, in QEMU's syntax:

    name(uint32_t a, uint64_t b) "a %u b %" PRIu64

with stdint argument types only. For every event the header gets

    trace_event_NAME_enabled()  true when some backend listens (a load or two)
    trace_NAME(args...)         a macro: evaluates its arguments only if enabled

Backends:
  usdt  a <sys/sdt.h> probe PROVIDER:NAME with a semaphore, so a tracer
        (bpftrace, perf) turns it on and argument set-up is skipped otherwise
  log   "trace: NAME FORMAT" through vfs_log() when switched on at run time
        (trace_set_enabled() in trace_control.h, --trace=PATTERN)
  nop   nothing; the arguments are still type-checked

The source defines the semaphores, the log switches, the event table and the
out-of-line log functions. Only the Python standard library is used.
"""

import argparse
import re
import sys

BACKENDS = ("usdt", "log", "nop")
TYPES = {
    "int8_t", "uint8_t", "int16_t", "uint16_t",
    "int32_t", "uint32_t", "int64_t", "uint64_t",
}
# sys/sdt.h goes up to 12 arguments, but bpftrace before 0.24 (Debian 12
# ships 0.17) reads only arg0..arg5 of a USDT probe on x86-64: an event
# with more would be half invisible to the scripts.
MAX_ARGS = 6
C_KEYWORDS = {
    "auto", "break", "case", "char", "const", "continue", "default", "do",
    "double", "else", "enum", "extern", "float", "for", "goto", "if",
    "inline", "int", "long", "register", "restrict", "return", "short",
    "signed", "sizeof", "static", "struct", "switch", "typedef", "union",
    "unsigned", "void", "volatile", "while", "_Bool",
}

IDENT = r"[A-Za-z_][A-Za-z0-9_]*"
EVENT_RE = re.compile(r"^(?P<name>" + IDENT + r")\((?P<args>[^()]*)\)\s*(?P<fmt>.*)$")
FMT_TOKEN_RE = re.compile(r'\s*(?:(?P<str>"(?:[^"\\]|\\.)*")|(?P<pri>PRI[diouxX](?:8|16|32|64)))')
CONV_RE = re.compile(r"%(?:%|[-+ #0]*(?:\d+|\*)?(?:\.(?:\d+|\*))?"
                     r"(?:hh|h|ll|l|j|z|t)?(?P<conv>[diouxXc]))")


class TraceError(Exception):
    pass


class Event:
    def __init__(self, name, args, fmt, lineno):
        self.name = name
        self.args = args            # [(type, name)]
        self.fmt = fmt              # C source: literals and PRI macros
        self.lineno = lineno

    def params(self):
        if not self.args:
            return "void"
        return ", ".join("%s %s" % a for a in self.args)

    def names(self):
        return [a[1] for a in self.args]


def parse_format(text, where):
    """Split '"a %" PRIu64 " b"' into C source and a flat printf string."""
    pos, c_src, flat = 0, [], []
    text = text.rstrip()
    if not text:
        raise TraceError("%s: missing format string" % where)
    while pos < len(text):
        m = FMT_TOKEN_RE.match(text, pos)
        if not m or m.end() == pos:
            raise TraceError("%s: bad format near '%s'" % (where, text[pos:]))
        if m.group("str"):
            c_src.append(m.group("str"))
            flat.append(m.group("str")[1:-1])
        else:
            c_src.append(m.group("pri"))
            # PRIu64 -> "u": enough to count conversions
            flat.append(m.group("pri")[3])
        pos = m.end()
    return " ".join(c_src), "".join(flat)


def count_conversions(flat, where):
    n, i = 0, 0
    while i < len(flat):
        if flat[i] != "%":
            i += 1
            continue
        m = CONV_RE.match(flat, i)
        if not m:
            raise TraceError("%s: unsupported conversion in format (integers "
                             "only: d i o u x X c)" % where)
        if m.group("conv"):
            n += 1
        i = m.end()
    return n


def parse_events(path):
    events, seen = [], set()
    with open(path, encoding="utf-8") as f:
        for lineno, line in enumerate(f, 1):
            line = line.strip()
            if not line or line.startswith("#"):
                continue
            where = "%s:%d" % (path, lineno)
            m = EVENT_RE.match(line)
            if not m:
                raise TraceError("%s: expected name(type arg, ...) \"format\"" % where)
            name = m.group("name")
            if name in seen:
                raise TraceError("%s: event '%s' defined twice" % (where, name))
            seen.add(name)
            args = []
            argtext = m.group("args").strip()
            if argtext and argtext != "void":
                for a in argtext.split(","):
                    parts = a.split()
                    if len(parts) != 2:
                        raise TraceError("%s: bad argument '%s'" % (where, a.strip()))
                    typ, an = parts
                    if typ not in TYPES:
                        raise TraceError("%s: type '%s' is not allowed (stdint "
                                         "integer types only)" % (where, typ))
                    if not re.fullmatch(IDENT, an) or an in C_KEYWORDS:
                        raise TraceError("%s: bad argument name '%s'" % (where, an))
                    if an in [x[1] for x in args]:
                        raise TraceError("%s: argument '%s' twice" % (where, an))
                    args.append((typ, an))
            if len(args) > MAX_ARGS:
                raise TraceError("%s: %d arguments, at most %d" % (where, len(args), MAX_ARGS))
            fmt, flat = parse_format(m.group("fmt"), where)
            nconv = count_conversions(flat, where)
            if nconv != len(args):
                raise TraceError("%s: format has %d conversions for %d arguments"
                                 % (where, nconv, len(args)))
            events.append(Event(name, args, fmt, lineno))
    if not events:
        raise TraceError("%s: no events" % path)
    return events


def c_string(s):
    return '"' + s.replace("\\", "\\\\").replace('"', '\\"') + '"'


def macro_lines(lines):
    """Align the backslashes of a multi-line macro."""
    width = max(len(l) for l in lines[:-1]) + 1
    width = max(width, 72)
    out = [l.ljust(width) + "\\" for l in lines[:-1]]
    return out + [lines[-1]]


def gen_h(events, backends, provider, src):
    usdt, log = "usdt" in backends, "log" in backends
    o = []
    o.append("/* Generated by tracepoints/tracetool.py from %s "
             "(backends: %s). Do not edit. */" % (src, ",".join(backends)))
    o.append("#ifndef VFS_TRACE_EVENTS_H")
    o.append("#define VFS_TRACE_EVENTS_H")
    o.append("")
    o.append("#include <inttypes.h>")
    o.append("#include <stdbool.h>")
    o.append("#include <stdint.h>")
    o.append("")
    o.append('#include "trace_control.h"')
    o.append('#include "trace_reasons.h"')
    o.append("")
    o.append('#define TRACE_BACKENDS "%s"' % ",".join(backends))
    o.append("#define TRACE_BACKEND_USDT %d" % usdt)
    o.append("#define TRACE_BACKEND_LOG %d" % log)
    o.append("#define TRACE_EVENT_COUNT %d" % len(events))
    o.append("")
    o.append("enum trace_event_id {")
    for e in events:
        o.append("    TRACE_EVENT_%s = %d," % (e.name.upper(), events.index(e)))
    o.append("};")
    o.append("")
    if usdt:
        o.append("#if defined(_SYS_SDT_H) && !defined(_SDT_HAS_SEMAPHORES)")
        o.append("#error <sys/sdt.h> was included without semaphores before this header")
        o.append("#endif")
        o.append("#define _SDT_HAS_SEMAPHORES 1")
        o.append("#include <sys/sdt.h>")
        o.append("")
    if log:
        o.append("/* The log backend's run-time switches (trace_set_enabled()). */")
        o.append("extern uint8_t trace_log_state[TRACE_EVENT_COUNT];")
        o.append("")
    for e in events:
        n, up = e.name, e.name.upper()
        sem = "%s_%s_semaphore" % (provider, n)
        o.append("/* %s (%s line %d) */" % (n, src, e.lineno))
        if usdt:
            o.append("extern unsigned short %s;" % sem)
        if log:
            o.append("void trace_log_%s(%s);" % (n, e.params()))
        if usdt or log:
            o.append("")
        conds = []
        if usdt:
            conds.append("__atomic_load_n(&%s, __ATOMIC_RELAXED)" % sem)
        if log:
            conds.append("__atomic_load_n(&trace_log_state[TRACE_EVENT_%s], "
                         "__ATOMIC_RELAXED)" % up)
        o.append("static inline bool trace_event_%s_enabled(void)" % n)
        o.append("{")
        if conds:
            # one branch for all backends: OR the switches, test once
            o.append("    return __builtin_expect((%s) != 0, 0);"
                     % (" |\n                            ".join(conds)))
        else:
            o.append("    return false;")
        o.append("}")
        o.append("")
        o.append("static inline void trace_do_%s(%s)" % (n, e.params()))
        o.append("{")
        if usdt:
            sargs = "".join(", " + a for a in e.names())
            o.append("    if (__atomic_load_n(&%s, __ATOMIC_RELAXED))" % sem)
            o.append("        STAP_PROBE%s(%s, %s%s);"
                     % (len(e.args) or "", provider, n, sargs))
        if log:
            o.append("    if (__atomic_load_n(&trace_log_state[TRACE_EVENT_%s], "
                     "__ATOMIC_RELAXED))" % up)
            o.append("        trace_log_%s(%s);" % (n, ", ".join(e.names())))
        if not usdt and not log:
            for a in e.names():
                o.append("    (void)%s;" % a)
        o.append("}")
        o.append("")
        names = e.names()
        call = ", ".join("(%s)" % a for a in names)
        o.extend(macro_lines([
            "#define trace_%s(%s)" % (n, ", ".join(names)),
            "    do {",
            "        if (trace_event_%s_enabled())" % n,
            "            trace_do_%s(%s);" % (n, call),
            "    } while (0)",
        ]))
        o.append("")
    o.append("#endif")
    return "\n".join(o) + "\n"


def gen_c(events, backends, provider, src, header):
    usdt, log = "usdt" in backends, "log" in backends
    o = []
    o.append("/* Generated by tracepoints/tracetool.py from %s "
             "(backends: %s). Do not edit. */" % (src, ",".join(backends)))
    o.append('#include "%s"' % header)
    o.append("")
    if log:
        o.append('#include "log.h"')
        o.append("")
    if usdt:
        o.append("/* Incremented by the kernel (uprobe ref_ctr) while a tracer is attached. */")
        for e in events:
            o.append('unsigned short %s_%s_semaphore __attribute__((section(".probes")));'
                     % (provider, e.name))
        o.append("")
    if log:
        o.append("uint8_t trace_log_state[TRACE_EVENT_COUNT];")
        o.append("")
    o.append("const struct trace_event_desc trace_event_table[TRACE_EVENT_COUNT] = {")
    for e in events:
        o.append("    [TRACE_EVENT_%s] = {" % e.name.upper())
        o.append("        .name = %s," % c_string(e.name))
        o.append("        .args = %s," % c_string(e.params()))
        o.append("        .format = %s," % e.fmt)
        o.append("    },")
    o.append("};")
    if log:
        for e in events:
            o.append("")
            o.append("void trace_log_%s(%s)" % (e.name, e.params()))
            o.append("{")
            args = "".join(", " + a for a in e.names())
            o.append('    vfs_log(VFS_LOG_INFO, "trace: %s " %s%s);' % (e.name, e.fmt, args))
            o.append("}")
    return "\n".join(o) + "\n"


def main(argv):
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--backends", required=True,
                    help="comma-separated: usdt, log, nop (nop alone)")
    ap.add_argument("--format", required=True, choices=("h", "c"))
    ap.add_argument("--provider", default="vfs")
    ap.add_argument("--header", default="trace_events.h",
                    help="header the generated source includes")
    ap.add_argument("input")
    ap.add_argument("output")
    a = ap.parse_args(argv)

    backends = [b for b in a.backends.split(",") if b]
    for b in backends:
        if b not in BACKENDS:
            ap.error("unknown backend '%s' (known: %s)" % (b, ", ".join(BACKENDS)))
    if not backends or ("nop" in backends and len(backends) > 1):
        ap.error("nop cannot be combined with other backends")
    if len(set(backends)) != len(backends):
        ap.error("backend listed twice")
    # a fixed order, so the output does not depend on how the list was spelt
    backends = [b for b in BACKENDS if b in backends]
    if not re.fullmatch(IDENT, a.provider):
        ap.error("bad provider name")

    try:
        events = parse_events(a.input)
    except (TraceError, OSError) as e:
        print("tracetool: %s" % e, file=sys.stderr)
        return 1
    src = a.input.replace("\\", "/").rsplit("/", 1)[-1]
    if a.format == "h":
        text = gen_h(events, backends, a.provider, src)
    else:
        text = gen_c(events, backends, a.provider, src, a.header)
    with open(a.output, "w", encoding="utf-8") as f:
        f.write(text)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
