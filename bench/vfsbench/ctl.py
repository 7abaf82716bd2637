"""Client for the daemon's control socket (virtiofsd/CONTROL.md): one
command line in, one JSON object out.  Standard library only."""
import json
import re
import socket
import time


class ControlError(Exception):
    pass


def command(path, line, timeout=10.0):
    """Send one control line, return the decoded JSON answer (ok or not)."""
    s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    s.settimeout(timeout)
    try:
        s.connect(path)
        s.sendall(line.encode() + b"\n")
        buf = b""
        deadline = time.monotonic() + timeout
        while b"\n" not in buf:
            if time.monotonic() > deadline:
                raise ControlError("control socket %s: no answer to %r within %g s" % (path, line, timeout))
            chunk = s.recv(1 << 20)
            if not chunk:
                break
            buf += chunk
    except OSError as e:
        raise ControlError("control socket %s: %r: %s" % (path, line, e)) from e
    finally:
        s.close()
    text = buf.split(b"\n", 1)[0]
    if not text:
        raise ControlError("control socket %s: empty answer to %r" % (path, line))
    try:
        return json.loads(text)
    except ValueError as e:
        raise ControlError("control socket %s: bad JSON answer to %r: %s" % (path, line, e)) from e


def checked(path, line, timeout=10.0):
    r = command(path, line, timeout)
    if not r.get("ok"):
        raise ControlError("daemon refused %r: %s" % (line, r.get("error", r)))
    return r


def stats(path, timeout=10.0):
    """The counter snapshot (STATS.md): the "stats" member of the answer."""
    return checked(path, "stats", timeout)["stats"]


_MODE_RE = re.compile(r"^(inline|pool:([1-9][0-9]*)(?::(batch|normal))?"
                      r"|auto(?::([1-9][0-9]*)(?::slow([1-9][0-9]*))?)?)$")


def parse_mode(text):
    """Validate a bench mode: inline, pool:N (N = 1..1024), pool:N:batch,
    pool:N:normal (also the pool threads' policy), auto, auto:N (its pool
    size) or auto:N:slowUS (also auto's threshold, `auto slow`).
    Returns the normalised text; raises ValueError."""
    m = _MODE_RE.match(text or "")
    if not m:
        raise ValueError("bad mode %r: want inline, pool:N[:batch|:normal] (e.g. pool:16), "
                         "auto or auto:N[:slowUS] (e.g. auto:16:slow40)" % (text,))
    for size in (m.group(2), m.group(4)):
        if size is not None and not 1 <= int(size) <= 1024:
            raise ValueError("bad mode %r: pool size must be 1..1024" % (text,))
    if m.group(5) is not None and not 1 <= int(m.group(5)) <= 1000000:
        raise ValueError("bad mode %r: auto's threshold must be 1..1000000 us" % (text,))
    return text


def mode_line(mode):
    """Control line that applies MODE's execution mode to every queue."""
    parse_mode(mode)
    if mode == "inline":
        return "mode set inline all"
    if mode.startswith("pool:"):
        return "mode set pool %d all" % pool_size_of(mode)
    parts = mode.split(":")
    return "mode set auto %sall" % (parts[1] + " " if len(parts) > 1 else "")


def pool_size_of(mode):
    return int(mode.split(":")[1]) if mode.startswith("pool:") else 0


def pool_sched_of(mode):
    """The policy a pool:N:POLICY mode names, or None (leave it)."""
    parts = mode.split(":")
    return parts[2] if mode.startswith("pool:") and len(parts) > 2 else None


def auto_slow_of(mode):
    """auto's threshold (us) an auto:N:slowUS mode names, or None (leave it)."""
    parts = mode.split(":")
    return int(parts[2][4:]) if mode.startswith("auto:") and len(parts) > 2 else None


def set_mode(path, mode, timeout=10.0):
    """Apply MODE to all queues (and its pool policy or auto threshold, if
    it names one) and check the answers say so.  Returns the last answer
    (its "queues" list is the new state)."""
    lines = [mode_line(mode)]
    sched = pool_sched_of(mode)
    slow = auto_slow_of(mode)
    if sched:
        lines.append("pool sched %s all" % sched)
    if slow:
        lines.append("auto slow %d all" % slow)
    want = mode.split(":", 1)[0]
    for line in lines:
        r = checked(path, line, timeout)
        for q in r.get("queues", []):
            if q.get("mode") != want and want in ("inline", "pool"):
                raise ControlError("after %r queue %s is in mode %r" % (line, q.get("queue"), q.get("mode")))
            if want == "pool" and q.get("pool_size") != pool_size_of(mode):
                raise ControlError("after %r queue %s has pool size %r" % (line, q.get("queue"), q.get("pool_size")))
            if sched and line.startswith("pool sched") and q.get("pool_sched") != sched:
                raise ControlError("after %r queue %s has pool policy %r" % (line, q.get("queue"), q.get("pool_sched")))
            if slow and line.startswith("auto slow") and (q.get("auto") or {}).get("slow_us") != slow:
                raise ControlError("after %r queue %s has auto threshold %r" %
                                   (line, q.get("queue"), (q.get("auto") or {}).get("slow_us")))
    return r
