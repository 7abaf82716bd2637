#!/bin/bash
# fileops.sh - guest side file-operation test of a virtio-fs mount.
#
# Runs inside the test guest (chrooted in the read-only host root, see
# run-guest.sh).  Mounts the virtio-fs tag on $VFS_MNT, exercises file
# operations, prints TAP (`ok N - id: desc` / `not ok N - id: desc`) and exits
# non-zero if any check failed.  Leaves files in the share for the host-side
# companion fileops-host-check.sh.
#
# Environment:
#   VFS_TAG            virtio-fs tag (default myfs)
#   VFS_MNT            mount point (default /mnt)
#   VFS_OUTSIDE_TOKEN  content of the marker file next to the share on the
#                      host (SHARE/../outside-marker), which must never be
#                      readable through the mount
#   VFS_HOST_TOKEN     content of SHARE/host-file.txt made by the host
#   VFS_XFAIL          known failures for this daemon: "id=reason;id=reason".
#                      Such a check failing is reported as TAP TODO and not
#                      counted; passing anyway is reported too.
#   VFS_FIO_SIZE       fio file size per job (default 8M)
set -uo pipefail   # no -e: every check runs and reports

TAG=${VFS_TAG:-myfs}
MNT=${VFS_MNT:-/mnt}
T=$MNT/t
PY=/usr/bin/python3
[[ -x $PY ]] || PY=$(command -v python3 || echo python3)
FIO_SIZE=${VFS_FIO_SIZE:-8M}
start=$(date +%s.%N)

n=0 nfail=0 nxfail=0
declare -A xfail=()
IFS=';' read -r -a _xf <<<"${VFS_XFAIL:-}"
for _e in "${_xf[@]}"; do
    [[ -n $_e ]] && xfail[${_e%%=*}]=${_e#*=}
done

tap() {   # tap ok|fail ID DESC...
    local st=$1 id=$2; shift 2
    n=$((n + 1))
    if [[ $st == ok ]]; then
        if [[ -n ${xfail[$id]:-} ]]; then
            echo "ok $n - $id: $* # TODO known failure did not happen: ${xfail[$id]}"
        else
            echo "ok $n - $id: $*"
        fi
    else
        if [[ -n ${xfail[$id]:-} ]]; then
            echo "not ok $n - $id: $* # TODO known failure: ${xfail[$id]}"
            nxfail=$((nxfail + 1))
        else
            echo "not ok $n - $id: $*"
            nfail=$((nfail + 1))
        fi
    fi
}
check() {   # check ID DESC -- COMMAND...
    local id=$1 desc=$2; shift 2
    [[ ${1:-} == -- ]] && shift
    local out
    if out=$("$@" 2>&1); then
        tap ok "$id" "$desc"
    else
        tap fail "$id" "$desc"
        [[ -n $out ]] && printf '%s\n' "$out" | head -n 20 | sed 's/^/#   /'
    fi
}
diag() { echo "# $*"; }
elapsed() { awk -v a="$start" -v b="$(date +%s.%N)" 'BEGIN { printf "%.1f", b - a }'; }
drop_caches() { sync; echo 3 >/proc/sys/vm/drop_caches; }
is_mounted() { awk -v m="$MNT" '$2 == m && $3 == "virtiofs" { f = 1 } END { exit !f }' /proc/mounts; }

echo "TAP version 13"
diag "fileops: tag=$TAG mnt=$MNT queues=${VFS_QUEUES:-?} kernel=$(uname -r) vcpus=$(nproc)"
[[ -n ${VFS_XFAIL:-} ]] && diag "known failures declared: $VFS_XFAIL"

# --- mount ------------------------------------------------------------------
if mount -t virtiofs "$TAG" "$MNT" && is_mounted; then
    tap ok mount "mount -t virtiofs $TAG $MNT"
else
    tap fail mount "mount -t virtiofs $TAG $MNT"
    echo "Bail out! cannot mount the virtio-fs share"
    exit 1
fi
rm -rf "$T" 2>/dev/null
mkdir "$T" || { echo "Bail out! cannot mkdir $T"; exit 1; }

if [[ -n ${VFS_HOST_TOKEN:-} ]]; then
    check host-file "file created on the host is visible with its content" -- \
        test "$(cat "$MNT/host-file.txt")" = "$VFS_HOST_TOKEN"
fi

# --- system-call level checks (one python process: start-up is slow under TCG)
pyout=/tmp/fileops-py.out
"$PY" -u - "$MNT" >"$pyout" 2>&1 <<'PYEOF'
import ctypes, errno, fcntl, hashlib, mmap, os, stat, struct, sys

M = sys.argv[1]
T = os.path.join(M, "t")
OUT_TOKEN = os.environ.get("VFS_OUTSIDE_TOKEN", "")
expected = {}          # share-relative path -> sha256 of its final content
libc = ctypes.CDLL(None, use_errno=True)

def out(line):
    print(line, flush=True)

def check(cid, desc):
    """Decorator: run now; exception or a returned string means failure."""
    def run(fn):
        try:
            r = fn()
        except Exception as e:          # noqa: BLE001 - report everything
            r = "%s: %s" % (type(e).__name__, e)
        if r is None or r is True:
            out("PASS %s %s" % (cid, desc))
        else:
            out("FAIL %s %s" % (cid, desc))
            for l in str(r).splitlines()[:10]:
                out("#   " + l)
        return fn
    return run

def p(*names):
    return os.path.join(T, *names)

def rel(path):
    return os.path.relpath(path, M)

def drop_caches():
    os.sync()
    with open("/proc/sys/vm/drop_caches", "w") as f:
        f.write("3")

def sha(b):
    return hashlib.sha256(b).hexdigest()

def readall(path):
    with open(path, "rb") as f:
        return f.read()

def writefile(path, data, mode="wb"):
    with open(path, mode) as f:
        f.write(data)

def expect(path, data):
    expected[rel(path)] = sha(data)

def expect_errno(e, fn, *a, **kw):
    try:
        fn(*a, **kw)
    except OSError as x:
        if x.errno in (e if isinstance(e, tuple) else (e,)):
            return None
        return "expected %s, got %s" % (e, x)
    return "expected errno %s, call succeeded" % (e,)

def in_child(fn):
    """Run fn() in a forked child; return its exit code (fn returns int)."""
    pid = os.fork()
    if pid == 0:
        code = 99
        try:
            code = fn()
        except BaseException as e:      # noqa: BLE001
            sys.stderr.write("child: %r\n" % (e,))
        os._exit(code)
    _, st = os.waitpid(pid, 0)
    return os.waitstatus_to_exitcode(st)

mdev = os.stat(M).st_dev

# ---- escape attempts (first, while the share is small) ---------------------
@check("escape-dotdot", "%s/../outside-marker resolves in the guest, not next to the share" % M)
def _():
    q = M + "/../outside-marker"
    if os.path.exists(q):
        if OUT_TOKEN and OUT_TOKEN in readall(q).decode(errors="replace"):
            return "read the host marker through %s" % q
        if os.stat(q).st_dev == mdev:
            return "%s is on the virtio-fs device" % q

@check("escape-openat-dotdot", "openat(mount root, \"..\") is the guest's /")
def _():
    fd = os.open(M, os.O_PATH | os.O_DIRECTORY)
    try:
        a = os.stat("..", dir_fd=fd)
    finally:
        os.close(fd)
    b = os.stat("/")
    if (a.st_dev, a.st_ino) != (b.st_dev, b.st_ino):
        return "'..' of the mount root is %s, guest / is %s" % ((a.st_dev, a.st_ino), (b.st_dev, b.st_ino))

@check("escape-symlink-rel", "guest-made symlink ../outside-marker does not reach the host marker")
def _():
    q = os.path.join(M, "esc-rel")
    os.symlink("../outside-marker", q)
    if os.readlink(q) != "../outside-marker":
        return "readlink gives %r" % os.readlink(q)
    try:
        fd = os.open(q, os.O_RDONLY)
    except FileNotFoundError:
        return None
    try:
        st = os.fstat(fd)
        data = os.read(fd, 4096).decode(errors="replace")
    finally:
        os.close(fd)
    if OUT_TOKEN and OUT_TOKEN in data:
        return "read the host marker"
    if st.st_dev == mdev:
        return "resolved onto the virtio-fs device"

@check("escape-symlink-write", "writing through the escaping symlink fails or stays in the guest")
def _():
    q = os.path.join(M, "esc-rel")
    try:
        fd = os.open(q, os.O_WRONLY | os.O_CREAT, 0o644)
    except OSError as e:
        out("#   write through esc-rel refused: %s" % e.strerror)
        return None
    try:
        if os.fstat(fd).st_dev == mdev:
            return "created a file on the virtio-fs device outside the share"
    finally:
        os.close(fd)

@check("escape-host-symlinks", "host-made symlinks (relative and absolute) resolve in the guest")
def _():
    for name in ("host-esc-rel", "host-esc-abs"):
        q = os.path.join(M, name)
        if not os.path.lexists(q):
            return "%s missing (the test driver creates it)" % name
        try:
            fd = os.open(q, os.O_RDONLY)
        except OSError:
            continue            # does not exist in the guest's namespace: fine
        try:
            if os.fstat(fd).st_dev == mdev:
                return "%s resolved onto the virtio-fs device" % name
        finally:
            os.close(fd)

@check("escape-symlink-root", "symlink to / in the share resolves to the guest's /")
def _():
    q = os.path.join(M, "esc-root")
    os.symlink("/", q)
    a, b = os.stat(q), os.stat("/")
    if (a.st_dev, a.st_ino) != (b.st_dev, b.st_ino) or a.st_dev == mdev:
        return "esc-root -> %s, guest / -> %s" % ((a.st_dev, a.st_ino), (b.st_dev, b.st_ino))

@check("escape-symlink-etc", "symlink to /etc in the share resolves to the guest's /etc")
def _():
    q = os.path.join(M, "esc-etc")
    os.symlink("/etc", q)
    a, b = os.stat(q), os.stat("/etc")
    if (a.st_dev, a.st_ino) != (b.st_dev, b.st_ino) or a.st_dev == mdev:
        return "esc-etc -> %s, guest /etc -> %s" % ((a.st_dev, a.st_ino), (b.st_dev, b.st_ino))

@check("escape-no-marker-in-share", "no file in the share holds the outside marker")
def _():
    if not OUT_TOKEN:
        return "VFS_OUTSIDE_TOKEN not set"
    names = os.listdir(M)
    if "outside-marker" in names:
        return "outside-marker listed in the share root"
    tok = OUT_TOKEN.encode()
    for dirpath, dirs, files in os.walk(M, followlinks=False):
        for f in files:
            q = os.path.join(dirpath, f)
            if os.path.islink(q) or not os.path.isfile(q):
                continue
            if tok in readall(q):
                return "marker content found in %s" % q

# ---- data -------------------------------------------------------------------
@check("create-write-read", "create, write 1 MiB, read back (warm and after drop_caches)")
def _():
    data = os.urandom(1 << 20)
    q = p("data.bin")
    writefile(q, data)
    if readall(q) != data:
        return "warm read-back differs"
    drop_caches()
    if readall(q) != data:
        return "cold read-back differs"
    if os.stat(q).st_size != len(data):
        return "size %d" % os.stat(q).st_size
    expect(q, data)
    r = expect_errno(errno.EEXIST, os.open, q, os.O_CREAT | os.O_EXCL | os.O_WRONLY)
    if r:
        return "O_EXCL on existing file: " + r

@check("append-pwrite-sparse", "O_APPEND, pwrite past EOF leaves a zero-filled hole")
def _():
    q = p("sparse.bin")
    writefile(q, b"head")
    writefile(q, b"+tail", "ab")
    fd = os.open(q, os.O_RDWR)
    try:
        os.pwrite(fd, b"END", 3 << 20)
        if os.fstat(fd).st_size != (3 << 20) + 3:
            return "size %d" % os.fstat(fd).st_size
    finally:
        os.close(fd)
    drop_caches()
    want = b"head+tail" + bytes((3 << 20) - 9) + b"END"
    if readall(q) != want:
        return "content differs"
    expect(q, want)

@check("o-direct", "O_DIRECT write and read back (aligned buffers)")
def _():
    size = 256 << 10
    q = p("direct.bin")
    data = os.urandom(size)
    wb = mmap.mmap(-1, size)
    wb.write(data)
    fd = os.open(q, os.O_CREAT | os.O_RDWR | os.O_TRUNC | os.O_DIRECT, 0o644)
    try:
        if os.write(fd, wb) != size:
            return "short O_DIRECT write"
        rb = mmap.mmap(-1, size)
        if os.preadv(fd, [rb], 0) != size or rb[:] != data:
            return "O_DIRECT read-back differs"
        rb4 = mmap.mmap(-1, 4096)
        if os.preadv(fd, [rb4], 8192) != 4096 or rb4[:] != data[8192:12288]:
            return "O_DIRECT read at offset 8192 differs"
    finally:
        os.close(fd)
    drop_caches()
    if readall(q) != data:
        return "buffered read-back differs"
    expect(q, data)

@check("mmap-write", "shared writable mmap: write, msync, read back after drop_caches")
def _():
    size = 64 << 10
    q = p("mmap.bin")
    data = os.urandom(size)
    fd = os.open(q, os.O_CREAT | os.O_RDWR | os.O_TRUNC, 0o644)
    try:
        os.ftruncate(fd, size)
        mm = mmap.mmap(fd, size, mmap.MAP_SHARED, mmap.PROT_READ | mmap.PROT_WRITE)
        mm[:] = data
        mm.flush()
        mm.close()
    finally:
        os.close(fd)
    drop_caches()
    if readall(q) != data:
        return "read-back differs"
    expect(q, data)

@check("mmap-read", "read-only mmap of a file matches read()")
def _():
    q = p("data.bin")
    with open(q, "rb") as f:
        mm = mmap.mmap(f.fileno(), 0, prot=mmap.PROT_READ)
        try:
            if mm[:] != readall(q):
                return "mmap content differs"
        finally:
            mm.close()

@check("truncate", "truncate shrink and extend (zero fill), ftruncate")
def _():
    q = p("trunc.bin")
    writefile(q, b"x" * 100000)
    os.truncate(q, 5000)
    if os.stat(q).st_size != 5000:
        return "size after shrink %d" % os.stat(q).st_size
    fd = os.open(q, os.O_RDWR)
    try:
        os.ftruncate(fd, 20000)
    finally:
        os.close(fd)
    drop_caches()
    want = b"x" * 5000 + bytes(15000)
    if readall(q) != want:
        return "content after extend differs"
    expect(q, want)

@check("rename", "rename over an existing file and of a directory")
def _():
    writefile(p("ren-old"), b"old")
    writefile(p("ren-target"), b"target")
    os.rename(p("ren-old"), p("ren-target"))
    if os.path.exists(p("ren-old")) or readall(p("ren-target")) != b"old":
        return "file rename wrong"
    expect(p("ren-target"), b"old")
    os.mkdir(p("dir-a"))
    writefile(p("dir-a", "inner"), b"inner")
    os.rename(p("dir-a"), p("dir-b"))
    if os.path.exists(p("dir-a")) or readall(p("dir-b", "inner")) != b"inner":
        return "directory rename wrong"
    expect(p("dir-b", "inner"), b"inner")

AT_FDCWD = -100
RENAME_NOREPLACE, RENAME_EXCHANGE = 1, 2

def renameat2(a, b, flags):
    r = libc.renameat2(AT_FDCWD, a.encode(), AT_FDCWD, b.encode(), flags)
    if r != 0:
        e = ctypes.get_errno()
        raise OSError(e, os.strerror(e), a)

@check("rename-exchange", "renameat2(RENAME_EXCHANGE) swaps two files")
def _():
    writefile(p("ex-a"), b"A")
    writefile(p("ex-b"), b"B")
    ia, ib = os.stat(p("ex-a")).st_ino, os.stat(p("ex-b")).st_ino
    renameat2(p("ex-a"), p("ex-b"), RENAME_EXCHANGE)
    drop_caches()
    if readall(p("ex-a")) != b"B" or readall(p("ex-b")) != b"A":
        return "contents not swapped"
    if os.stat(p("ex-a")).st_ino != ib or os.stat(p("ex-b")).st_ino != ia:
        return "inodes not swapped"
    expect(p("ex-a"), b"B")
    expect(p("ex-b"), b"A")

@check("rename-noreplace", "renameat2(RENAME_NOREPLACE): EEXIST on existing target, works otherwise")
def _():
    writefile(p("nr-src"), b"src")
    writefile(p("nr-dst"), b"dst")
    r = expect_errno(errno.EEXIST, renameat2, p("nr-src"), p("nr-dst"), RENAME_NOREPLACE)
    if r:
        return r
    if readall(p("nr-dst")) != b"dst" or readall(p("nr-src")) != b"src":
        return "files changed by the refused rename"
    renameat2(p("nr-src"), p("nr-new"), RENAME_NOREPLACE)
    if os.path.exists(p("nr-src")) or readall(p("nr-new")) != b"src":
        return "rename to a new name wrong"
    expect(p("nr-dst"), b"dst")
    expect(p("nr-new"), b"src")

@check("hardlink", "hard link: same inode, nlink 2, writes visible through both names")
def _():
    writefile(p("hl-a"), b"one")
    os.link(p("hl-a"), p("hl-b"))
    a, b = os.stat(p("hl-a")), os.stat(p("hl-b"))
    if a.st_ino != b.st_ino or a.st_nlink != 2 or b.st_nlink != 2:
        return "ino %d/%d nlink %d/%d" % (a.st_ino, b.st_ino, a.st_nlink, b.st_nlink)
    writefile(p("hl-b"), b"two")
    if readall(p("hl-a")) != b"two":
        return "write through hl-b not seen through hl-a"
    expect(p("hl-a"), b"two")

@check("symlink", "symbolic link: readlink, lstat, follow")
def _():
    os.symlink("data.bin", p("sym"))
    if os.readlink(p("sym")) != "data.bin":
        return "readlink %r" % os.readlink(p("sym"))
    if not stat.S_ISLNK(os.lstat(p("sym")).st_mode):
        return "lstat is not a symlink"
    if os.stat(p("sym")).st_ino != os.stat(p("data.bin")).st_ino:
        return "following the link does not reach data.bin"

@check("chmod", "chmod 0640 on a file, 0750 on a directory")
def _():
    writefile(p("mode.bin"), b"mode")
    os.chmod(p("mode.bin"), 0o640)
    os.makedirs(p("kept-dir", "sub"))
    os.chmod(p("kept-dir"), 0o750)
    drop_caches()
    m1 = stat.S_IMODE(os.stat(p("mode.bin")).st_mode)
    m2 = stat.S_IMODE(os.stat(p("kept-dir")).st_mode)
    if (m1, m2) != (0o640, 0o750):
        return "modes %o %o" % (m1, m2)

@check("chown", "chown 1234:5678")
def _():
    writefile(p("own.bin"), b"own")
    os.chown(p("own.bin"), 1234, 5678)
    drop_caches()
    st = os.stat(p("own.bin"))
    if (st.st_uid, st.st_gid) != (1234, 5678):
        return "owner %d:%d" % (st.st_uid, st.st_gid)

ATIME_NS, MTIME_NS = 1000000000123456789, 1234567890987654321

@check("utimes", "utimensat with nanoseconds")
def _():
    writefile(p("times.bin"), b"times")
    os.utime(p("times.bin"), ns=(ATIME_NS, MTIME_NS))
    drop_caches()
    st = os.stat(p("times.bin"))
    if (st.st_atime_ns, st.st_mtime_ns) != (ATIME_NS, MTIME_NS):
        return "atime %d mtime %d" % (st.st_atime_ns, st.st_mtime_ns)

@check("xattr", "user.* xattrs: set, get, list, XATTR_CREATE, remove")
def _():
    q = p("xattr.bin")
    writefile(q, b"xattr")
    os.setxattr(q, "user.vfs", b"hello-xattr")
    os.setxattr(q, "user.gone", b"bye")
    if os.getxattr(q, "user.vfs") != b"hello-xattr":
        return "getxattr %r" % os.getxattr(q, "user.vfs")
    names = set(os.listxattr(q))
    if not {"user.vfs", "user.gone"} <= names:
        return "listxattr %r" % sorted(names)
    r = expect_errno(errno.EEXIST, os.setxattr, q, "user.vfs", b"x", os.XATTR_CREATE)
    if r:
        return "XATTR_CREATE: " + r
    os.removexattr(q, "user.gone")
    if "user.gone" in os.listxattr(q):
        return "removed xattr still listed"
    r = expect_errno(errno.ENODATA, os.getxattr, q, "user.gone")
    if r:
        return "getxattr of removed: " + r

@check("readdir-1000", "readdir of a directory with 1000 entries (warm and cold)")
def _():
    d = p("many")
    os.mkdir(d)
    want = {"f%04d" % i for i in range(1000)}
    for name in want:
        os.close(os.open(os.path.join(d, name), os.O_CREAT | os.O_WRONLY, 0o644))
    got = os.listdir(d)
    if len(got) != 1000 or set(got) != want:
        return "warm listing: %d entries" % len(got)
    drop_caches()
    ents = list(os.scandir(d))
    if len(ents) != 1000 or {e.name for e in ents} != want:
        return "cold listing: %d entries" % len(ents)
    if not all(e.is_file(follow_symlinks=False) for e in ents):
        return "d_type not regular for some entries"

@check("mkdir-rmdir", "mkdir, EEXIST, ENOTEMPTY, rmdir")
def _():
    d = p("rmdir-gone")
    os.mkdir(d)
    os.mkdir(os.path.join(d, "sub"))
    r = expect_errno(errno.EEXIST, os.mkdir, d) or expect_errno(errno.ENOTEMPTY, os.rmdir, d)
    if r:
        return r
    os.rmdir(os.path.join(d, "sub"))
    os.rmdir(d)
    if os.path.exists(d):
        return "directory still there"

@check("unlink-open", "unlink of an open file: name gone, data still readable and writable via fd")
def _():
    q = p("unlinked-open")
    fd = os.open(q, os.O_CREAT | os.O_RDWR, 0o644)
    try:
        os.write(fd, b"still here")
        os.unlink(q)
        if os.path.exists(q) or "unlinked-open" in os.listdir(T):
            return "name still visible"
        drop_caches()
        if os.pread(fd, 100, 0) != b"still here":
            return "read via fd failed"
        os.pwrite(fd, b"!", 10)
        if os.pread(fd, 100, 0) != b"still here!":
            return "write via fd failed"
        if os.fstat(fd).st_nlink != 0:
            return "nlink %d" % os.fstat(fd).st_nlink
    finally:
        os.close(fd)

@check("fsync", "fsync, fdatasync, fsync of a directory")
def _():
    q = p("fsync.bin")
    data = os.urandom(65536)
    fd = os.open(q, os.O_CREAT | os.O_RDWR | os.O_TRUNC, 0o644)
    try:
        os.write(fd, data)
        os.fsync(fd)
        os.write(fd, data)
        os.fdatasync(fd)
    finally:
        os.close(fd)
    dfd = os.open(T, os.O_RDONLY | os.O_DIRECTORY)
    try:
        os.fsync(dfd)
    finally:
        os.close(dfd)
    expect(q, data + data)

def child_flock(q, op):
    def fn():
        fd = os.open(q, os.O_RDWR)
        try:
            fcntl.flock(fd, op | fcntl.LOCK_NB)
            return 0
        except OSError as e:
            return 1 if e.errno in (errno.EAGAIN, errno.EWOULDBLOCK) else 2
        finally:
            os.close(fd)
    return in_child(fn)

@check("flock", "flock: conflicting LOCK_EX|LOCK_NB from a second process gets EWOULDBLOCK; LOCK_SH shares; close releases")
def _():
    q = p("lock.bin")
    writefile(q, b"lock" * 100)
    fd = os.open(q, os.O_RDWR)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        c = child_flock(q, fcntl.LOCK_EX)
        if c != 1:
            return "child LOCK_EX against our LOCK_EX: code %d (want 1=EWOULDBLOCK)" % c
        fcntl.flock(fd, fcntl.LOCK_SH | fcntl.LOCK_NB)   # downgrade
        c = child_flock(q, fcntl.LOCK_SH)
        if c != 0:
            return "child LOCK_SH against our LOCK_SH: code %d" % c
        c = child_flock(q, fcntl.LOCK_EX)
        if c != 1:
            return "child LOCK_EX against our LOCK_SH: code %d (want 1=EWOULDBLOCK)" % c
    finally:
        os.close(fd)            # releases the flock (FUSE_RELEASE_FLOCK_UNLOCK)
    c = child_flock(q, fcntl.LOCK_EX)
    if c != 0:
        return "child LOCK_EX after close: code %d" % c

@check("flock-unlock-blocking", "flock: plain LOCK_UN and an uncontended blocking LOCK_EX (sent as SETLKW)")
def _():
    q = p("lock.bin")
    fd = os.open(q, os.O_RDWR)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        try:
            fcntl.flock(fd, fcntl.LOCK_UN)
        except OSError as e:
            return "LOCK_UN: %s" % e
        c = child_flock(q, fcntl.LOCK_EX)
        if c != 0:
            return "child LOCK_EX after LOCK_UN: code %d" % c
        try:
            fcntl.flock(fd, fcntl.LOCK_EX)      # uncontended: must not block
        except OSError as e:
            return "blocking LOCK_EX (uncontended): %s" % e
        c = child_flock(q, fcntl.LOCK_EX)
        if c != 1:
            return "child LOCK_EX against our blocking-acquired LOCK_EX: code %d" % c
    finally:
        os.close(fd)

FLOCK_FMT = "hhqqi4x"     # struct flock on x86_64

def child_posix(q, ltype, start, length):
    """Child: F_SETLK; 0 = got it, 1 = EAGAIN/EACCES, 2 = other error."""
    def fn():
        fd = os.open(q, os.O_RDWR)
        try:
            fcntl.fcntl(fd, fcntl.F_SETLK, struct.pack(FLOCK_FMT, ltype, os.SEEK_SET, start, length, 0))
            return 0
        except OSError as e:
            return 1 if e.errno in (errno.EAGAIN, errno.EACCES) else 2
        finally:
            os.close(fd)
    return in_child(fn)

def child_getlk(q, start, length):
    def fn():
        fd = os.open(q, os.O_RDWR)
        try:
            r = fcntl.fcntl(fd, fcntl.F_GETLK, struct.pack(FLOCK_FMT, fcntl.F_WRLCK, os.SEEK_SET, start, length, 0))
            return 1 if struct.unpack(FLOCK_FMT, r)[0] == fcntl.F_WRLCK else 0
        finally:
            os.close(fd)
    return in_child(fn)

@check("posix-lock", "fcntl F_SETLK: conflicting lock from a second process gets EAGAIN, ranges, F_GETLK")
def _():
    q = p("lock.bin")
    fd = os.open(q, os.O_RDWR)
    try:
        fcntl.fcntl(fd, fcntl.F_SETLK, struct.pack(FLOCK_FMT, fcntl.F_WRLCK, os.SEEK_SET, 0, 100, 0))
        c = child_posix(q, fcntl.F_WRLCK, 0, 100)
        if c != 1:
            return "child F_WRLCK on locked range: code %d (want 1=EAGAIN)" % c
        c = child_posix(q, fcntl.F_RDLCK, 50, 10)
        if c != 1:
            return "child F_RDLCK inside locked range: code %d (want 1=EAGAIN)" % c
        c = child_posix(q, fcntl.F_WRLCK, 100, 100)
        if c != 0:
            return "child F_WRLCK on the free range 100-199: code %d" % c
        c = child_getlk(q, 0, 10)
        if c != 1:
            return "child F_GETLK does not report our write lock (code %d)" % c
        fcntl.fcntl(fd, fcntl.F_SETLK, struct.pack(FLOCK_FMT, fcntl.F_UNLCK, os.SEEK_SET, 0, 100, 0))
        c = child_posix(q, fcntl.F_WRLCK, 0, 100)
        if c != 0:
            return "child F_WRLCK after unlock: code %d" % c
    finally:
        os.close(fd)

@check("statfs", "statvfs of the mount")
def _():
    s = os.statvfs(M)
    if s.f_blocks <= 0 or s.f_bsize <= 0 or s.f_frsize <= 0 or s.f_namemax <= 0:
        return "statvfs %r" % (s,)
    if s.f_bfree > s.f_blocks or s.f_bavail > s.f_blocks:
        return "free > total: %r" % (s,)
    writefile(p("statfs.txt"), ("%d %d %d\n" % (s.f_frsize, s.f_blocks, s.f_namemax)).encode())

# expected content of files for the host check and the post-remount check
with open(p("expected.sha256"), "w") as f:
    for k in sorted(expected):
        f.write("%s  %s\n" % (expected[k], k))
out("PYDONE")
PYEOF
pyrc=$?
while IFS= read -r line; do
    case $line in
        "PASS "*) line=${line#PASS }; tap ok "${line%% *}" "${line#* }" ;;
        "FAIL "*) line=${line#FAIL }; tap fail "${line%% *}" "${line#* }" ;;
        PYDONE) ;;
        "#"*) echo "$line" ;;
        *) echo "# $line" ;;
    esac
done <"$pyout"
if ((pyrc == 0)) && grep -qx PYDONE "$pyout"; then
    tap ok python-section "system-call checks ran to completion"
else
    tap fail python-section "system-call checks ran to completion (python exit $pyrc)"
fi
diag "system-call checks done at $(elapsed)s"

# --- shell-level checks -----------------------------------------------------
check statfs-tools "df and stat -f on the mount" -- \
    bash -c "df -P '$MNT' | tail -n1 | grep -q '^$TAG ' && stat -f -c '%T %b %S' '$MNT' | grep -Eq '^fuse(blk)? [1-9][0-9]* [1-9]'"

# --- umount + mount again -----------------------------------------------------
token=remount-$RANDOM-$RANDOM
echo "$token" >"$T/remount.txt"
remount() {
    cd / || return 1
    umount "$MNT" || { echo "umount failed"; return 1; }
    if is_mounted; then echo "still mounted after umount"; return 1; fi
    [[ ! -e $T ]] || { echo "$T visible after umount"; return 1; }
    mount -t virtiofs "$TAG" "$MNT" || { echo "mount failed"; return 1; }
    is_mounted || { echo "not mounted"; return 1; }
    [[ $(cat "$T/remount.txt") == "$token" ]] || { echo "remount.txt content differs"; return 1; }
}
check remount "umount and mount again in the same boot; data still there" -- remount
check remount-data "after remount every file has its expected content (sha256)" -- \
    bash -c "cd '$MNT' && sha256sum --quiet -c t/expected.sha256"

# --- fio with verification -------------------------------------------------
mkdir -p "$T/fio"
fio_out=/tmp/fio.terse
fio_log=/tmp/fio.log
diag "fio: 3 jobs, $FIO_SIZE each, 4k randwrite + crc32c verify"
fio --output-format=terse --output="$fio_out" \
    --directory="$T/fio" --size="$FIO_SIZE" --bs=4k --rw=randwrite \
    --verify=crc32c --do_verify=1 --verify_fatal=1 --verify_state_save=0 \
    --name=psync-direct --ioengine=psync --direct=1 --stonewall \
    --name=libaio-direct --ioengine=libaio --iodepth=16 --direct=1 --stonewall \
    --name=psync-buffered --ioengine=psync --direct=0 --end_fsync=1 --stonewall \
    >"$fio_log" 2>&1
fio_rc=$?
for job in psync-direct libaio-direct psync-buffered; do
    err=$(awk -F';' -v j="$job" '$3 == j { print $5 }' "$fio_out" 2>/dev/null)
    if ((fio_rc == 0)) && [[ $err == 0 ]]; then
        tap ok "fio-$job" "fio $job 4k randwrite $FIO_SIZE with crc32c verify"
    else
        tap fail "fio-$job" "fio $job 4k randwrite $FIO_SIZE with crc32c verify (fio exit $fio_rc, job error '${err:-none}')"
        sed 's/^/#   /' "$fio_log" | tail -n 15
    fi
done

# --- finish --------------------------------------------------------------------
echo "fileops complete: $n checks, $nfail failed, $nxfail known failures" >"$T/guest-done"
cd /
check umount "final umount" -- umount "$MNT"

echo "1..$n"
diag "fileops: $((n - nfail - nxfail)) ok, $nfail failed, $nxfail known failures (TODO) in $(elapsed)s"
((nfail == 0))
