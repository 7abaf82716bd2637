#!/bin/bash
# test-guest.sh - guest end-to-end file-operation test of a virtio-fs daemon.
#
# usage: test-guest.sh --daemon PATH|upstream --mode inline|pool --queues N
#                      [--threads N] [--extra-daemon-args 'ARGS'] [--timeout SEC]
#                      [--queue-size N] [--vcpus N] [--image-dir DIR] [--keep]
#
#   --daemon upstream     Debian's QEMU 7.2 daemon /usr/lib/qemu/virtiofsd
#                         (the reference); otherwise the path of our daemon.
#   --mode inline|pool    --thread-pool-size=0, or --thread-pool-size=THREADS
#   --threads N           pool size in pool mode (default 4)
#   --queues N            num-request-queues of the device (default 1)
#   --extra-daemon-args   more daemon arguments (one string, shell quoting)
#   --keep                keep the share and logs even when the test passes
#
# The daemon always gets: -o cache=auto -o xattr -o posix_lock -o flock
# --thread-pool-size=N plus --socket-path and -o source from run-guest.sh.
# Creates a fresh share under $VFS_TEST_BASE (default /var/tmp) with an
# outside marker next to it, builds the guest image if needed, runs
# fileops.sh in the guest, then fileops-host-check.sh on the host.
#
# Exit: 0 pass, 1 fail, 77 skip (no QEMU / vhost-user-fs-pci, no daemon,
# not root, image cannot be built, upstream asked for more than one queue).
set -euo pipefail

here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
prog=test-guest
say() { echo "$prog: $*"; }
skip() { say "SKIP: $*"; exit 77; }
usage() { sed -n '2,23p' "$0" | sed 's/^# \{0,1\}//'; }

UPSTREAM=/usr/lib/qemu/virtiofsd
daemon='' mode='' queues=1 threads=4 extra='' timeout=${VFS_TEST_TIMEOUT:-300}
queue_size=128 vcpus=2 image_dir=${VFS_GUEST_CACHE:-/var/tmp/vfs-guest-cache} keep=0
while (($#)); do
    case $1 in
        --daemon) daemon=${2:?}; shift ;;
        --mode) mode=${2:?}; shift ;;
        --queues) queues=${2:?}; shift ;;
        --threads) threads=${2:?}; shift ;;
        --extra-daemon-args) extra=${2?}; shift ;;
        --timeout) timeout=${2:?}; shift ;;
        --queue-size) queue_size=${2:?}; shift ;;
        --vcpus) vcpus=${2:?}; shift ;;
        --image-dir) image_dir=${2:?}; shift ;;
        --keep) keep=1 ;;
        -h|--help) usage; exit 0 ;;
        *) echo "$prog: unknown argument $1" >&2; usage >&2; exit 2 ;;
    esac
    shift
done
[[ -n $daemon && ( $mode == inline || $mode == pool ) ]] || { usage >&2; exit 2; }
[[ $queues =~ ^[1-9][0-9]*$ && $threads =~ ^[1-9][0-9]*$ ]] || { usage >&2; exit 2; }

# --- prerequisites (skip, not fail, when the machine cannot run the test) ----
((EUID == 0)) || skip "needs root (the daemon sandboxes itself with namespaces)"
command -v qemu-system-x86_64 >/dev/null || skip "qemu-system-x86_64 not installed (package qemu-system-x86)"
qemu-system-x86_64 -device help 2>/dev/null | grep -q '"vhost-user-fs-pci"' ||
    skip "this QEMU has no vhost-user-fs-pci device"

env_prefix=()
xfail=()
if [[ $daemon == upstream ]]; then
    [[ -x $UPSTREAM ]] || skip "$UPSTREAM not installed (package qemu-system-common)"
    daemon=$UPSTREAM
    # Upstream (QEMU 7.2) supports a single request queue; it exits if the
    # guest configures more, so there is nothing to compare against.
    ((queues == 1)) || skip "upstream virtiofsd supports only one request queue (asked for $queues)"
    if [[ $mode == pool ]]; then
        # Debian 12's upstream daemon in pool mode is killed by its own
        # seccomp filter (glibc's arena setup in a new pool thread calls
        # sched_getaffinity) unless malloc arenas are capped.  Not hidden in
        # run-guest.sh: set here, for the reference run only.
        env_prefix=(MALLOC_ARENA_MAX=8)
        say "note: upstream in pool mode runs with MALLOC_ARENA_MAX=8 (else its seccomp filter kills it)"
    fi
    # Known upstream limitation, kept explicit (reported as TAP TODO):
    # QEMU 7.2's lo_flock() answers any flock request without LOCK_NB with
    # EOPNOTSUPP (to avoid deadlocking its queue thread), and the guest
    # kernel sends a plain flock(LOCK_UN) and an uncontended blocking
    # LOCK_EX as such requests.
    xfail+=("flock-unlock-blocking=QEMU 7.2 virtiofsd rejects flock requests without LOCK_NB (incl. LOCK_UN) with EOPNOTSUPP")
else
    [[ -x $daemon ]] || skip "daemon $daemon not found or not executable (not built?)"
    daemon=$(realpath "$daemon")
fi

if ! build_out=$("$here/build-image.sh" "$image_dir" 2>&1); then
    printf '%s\n' "$build_out" | sed 's/^/    /'
    skip "cannot build the guest image in $image_dir"
fi
say "${build_out##*$'\n'}"

pool_size=0
[[ $mode == pool ]] && pool_size=$threads
daemon_argv=("${env_prefix[@]}" "$daemon" -o cache=auto -o xattr -o posix_lock -o flock
             "--thread-pool-size=$pool_size")
if [[ -n $extra ]]; then
    eval "extra_argv=($extra)"
    daemon_argv+=("${extra_argv[@]}")
fi

# --- fresh share with a marker next to it --------------------------------------
base_parent=${VFS_TEST_BASE:-/var/tmp}
base=$(mktemp -d "$base_parent/vfs-test.XXXXXX")
share=$base/share
mkdir "$share"
outside_token=outside-$(od -An -N8 -tx8 /dev/urandom | tr -d ' ')
host_token=host-$(od -An -N8 -tx8 /dev/urandom | tr -d ' ')
printf '%s\n' "$outside_token" >"$base/outside-marker"
printf '%s\n' "$host_token" >"$share/host-file.txt"
ln -s ../outside-marker "$share/host-esc-rel"
ln -s "$base/outside-marker" "$share/host-esc-abs"

result=1
finish() {
    local rc=$?
    if ((result == 0 && keep == 0)); then
        rm -rf "$base"
    else
        say "share and logs kept in $base"
    fi
    exit "$rc"
}
trap finish EXIT

xfail_spec=$(IFS=';'; echo "${xfail[*]:-}")
say "daemon: ${daemon_argv[*]}"
say "mode=$mode queues=$queues queue-size=$queue_size vcpus=$vcpus share=$share"

t0=$(date +%s.%N)
guest_rc=0
"$here/run-guest.sh" --share "$share" --script "$here/fileops.sh" \
    --queues "$queues" --queue-size "$queue_size" --vcpus "$vcpus" \
    --timeout "$timeout" --log-dir "$base/logs" --image-dir "$image_dir" \
    --env "VFS_OUTSIDE_TOKEN=$outside_token" --env "VFS_HOST_TOKEN=$host_token" \
    --env "VFS_XFAIL=$xfail_spec" \
    -- "${daemon_argv[@]}" || guest_rc=$?
t1=$(date +%s.%N)

host_rc=0
if ((guest_rc <= 1)); then   # 1 = some guest checks failed: still look at the host side
    "$here/fileops-host-check.sh" "$share" --outside-token "$outside_token" --xfail "$xfail_spec" || host_rc=$?
else
    host_rc=1
fi
secs() { awk -v a="$1" -v b="$2" 'BEGIN { printf "%.1f", b - a }'; }
summary="guest run $(secs "$t0" "$t1")s (rc $guest_rc), total $(secs "$t0" "$(date +%s.%N)")s"
case $guest_rc in
    124) say "FAIL: guest timed out after ${timeout}s ($summary)" ;;
    125) say "FAIL: test infrastructure error, see $base/logs ($summary)" ;;
    126) say "FAIL: the daemon crashed or exited early, see $base/logs/daemon.log ($summary)" ;;
esac
if ((guest_rc == 0 && host_rc == 0)); then
    result=0
    say "PASS: $summary"
    exit 0
fi
((guest_rc >= 124)) || say "FAIL: guest checks rc $guest_rc, host checks rc $host_rc ($summary)"
exit 1
