#!/bin/bash
# test-switch.sh - the live inline/pool switch under a real guest: fio with
# crc32c verification runs in the guest while the host flips the daemon's
# queues between inline and pool (and changes pool sizes) with virtiofsctl.
#
# usage: test-switch.sh --daemon PATH [--ctl PATH] [--queues N]
#                       [--interval SEC] [--min-flips N] [--timeout SEC]
#                       [--image-dir DIR] [--keep]
#
#   --daemon PATH      our virtiofsd (needs --control-socket)
#   --ctl PATH         virtiofsctl (default: next to the daemon)
#   --queues N         num-request-queues (default 1)
#   --interval SEC     pause between two flips (default 0.2)
#   --min-flips N      successful flips required while fio runs (default 10)
#
# Passes when every fio job verifies, every flip after the daemon started
# serving succeeded, at least --min-flips of them happened between the
# guest's fio-started and fio-done markers, and a counter snapshot taken at
# fio-done shows WRITE requests served in both modes.
# Exit: 0 pass, 1 fail, 77 skip (as test-guest.sh).
set -euo pipefail

here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
prog=test-switch
say() { echo "$prog: $*"; }
skip() { say "SKIP: $*"; exit 77; }
usage() { sed -n '2,21p' "$0" | sed 's/^# \{0,1\}//'; }

daemon='' ctl='' queues=1 interval=0.2 min_flips=10
timeout=${VFS_TEST_TIMEOUT:-420} image_dir=${VFS_GUEST_CACHE:-/var/tmp/vfs-guest-cache} keep=0
while (($#)); do
    case $1 in
        --daemon) daemon=${2:?}; shift ;;
        --ctl) ctl=${2:?}; shift ;;
        --queues) queues=${2:?}; shift ;;
        --interval) interval=${2:?}; shift ;;
        --min-flips) min_flips=${2:?}; shift ;;
        --timeout) timeout=${2:?}; shift ;;
        --image-dir) image_dir=${2:?}; shift ;;
        --keep) keep=1 ;;
        -h|--help) usage; exit 0 ;;
        *) echo "$prog: unknown argument $1" >&2; usage >&2; exit 2 ;;
    esac
    shift
done
[[ -n $daemon ]] || { usage >&2; exit 2; }
[[ $queues =~ ^[1-9][0-9]*$ && $min_flips =~ ^[0-9]+$ ]] || { usage >&2; exit 2; }

((EUID == 0)) || skip "needs root (the daemon sandboxes itself with namespaces)"
command -v qemu-system-x86_64 >/dev/null || skip "qemu-system-x86_64 not installed"
qemu-system-x86_64 -device help 2>/dev/null | grep -q '"vhost-user-fs-pci"' ||
    skip "this QEMU has no vhost-user-fs-pci device"
command -v python3 >/dev/null || skip "python3 (reads the counter snapshot) not installed"
[[ -x $daemon ]] || skip "daemon $daemon not found or not executable (not built?)"
daemon=$(realpath "$daemon")
[[ -n $ctl ]] || ctl=$(dirname "$daemon")/virtiofsctl
[[ -x $ctl ]] || skip "virtiofsctl $ctl not found (not built?)"
ctl=$(realpath "$ctl")

if ! build_out=$("$here/build-image.sh" "$image_dir" 2>&1); then
    printf '%s\n' "$build_out" | sed 's/^/    /'
    skip "cannot build the guest image in $image_dir"
fi

base=$(mktemp -d "${VFS_TEST_BASE:-/var/tmp}/vfs-switch.XXXXXX")
share=$base/share
csock=$base/control.sock        # outside the share, as the daemon requires
flog=$base/flipper.log
mkdir "$share" "$base/logs"

result=1 fpid=''
finish() {
    local rc=$?
    [[ -n $fpid ]] && { kill "$fpid" 2>/dev/null || true; wait "$fpid" 2>/dev/null || true; }
    if ((result == 0 && keep == 0)); then
        rm -rf "$base"
    else
        say "share and logs kept in $base"
    fi
    exit "$rc"
}
trap finish EXIT

# --- the flipper ----------------------------------------------------------------
# Runs until the guest's fio-done marker (then takes a counter snapshot) or
# until it is killed. One line per flip in $flog: "<phase> <ok|fail> <cmd>".
flipper() {
    local serving=0 n=0 phase size cmd
    while [[ ! -S $csock ]]; do sleep 0.1; done
    while :; do
        if [[ -e $share/fio-done ]]; then
            "$ctl" -s "$csock" -t 10 stats --json >"$base/stats-at-done.json" 2>>"$flog" ||
                echo "snapshot fail" >>"$flog"
            return 0
        fi
        phase=before
        [[ -e $share/fio-started ]] && phase=during
        size=$((1 + RANDOM % 8))
        case $((n % 5)) in
            0|2) cmd=(mode inline) ;;
            1) cmd=(mode pool --threads "$size") ;;
            3) cmd=(mode --queue 1 pool) ;;
            4) cmd=(mode --threads "$size") ;;
        esac
        if "$ctl" -s "$csock" -t 3 "${cmd[@]}" >/dev/null 2>>"$base/flipper.err"; then
            serving=1
            echo "$phase ok ${cmd[*]}" >>"$flog"
        elif ((serving)); then
            # after fio-done the guest powers off and the daemon exits
            [[ -e $share/fio-done ]] || echo "$phase fail ${cmd[*]}" >>"$flog"
        fi
        n=$((n + 1))
        sleep "$interval"
    done
}
: >"$flog"
flipper &
fpid=$!

say "daemon: $daemon --control-socket=$csock (queues $queues, flip every ${interval}s)"
t0=$(date +%s)
guest_rc=0
"$here/run-guest.sh" --share "$share" --script "$here/switch-guest.sh" \
    --queues "$queues" --timeout "$timeout" --log-dir "$base/logs" \
    --image-dir "$image_dir" \
    -- "$daemon" -o cache=auto --thread-pool-size=2 "--control-socket=$csock" || guest_rc=$?
kill "$fpid" 2>/dev/null || true
wait "$fpid" 2>/dev/null || true
fpid=''

during=$(grep -c '^during ok' "$flog" || true)
total=$(grep -c ' ok ' "$flog" || true)
fails=$(grep -c ' fail' "$flog" || true)
say "guest rc $guest_rc after $(($(date +%s) - t0)) s; flips: $total ok ($during while fio ran), $fails failed"

ok=1
((guest_rc == 0)) || { say "FAIL: the guest run failed (rc $guest_rc; fio verification or the run itself)"; ok=0; }
((fails == 0)) || { say "FAIL: $fails flips failed:"; grep ' fail' "$flog" | head -n 5; ok=0; }
((during >= min_flips)) || { say "FAIL: only $during flips while fio ran (want >= $min_flips)"; ok=0; }
if [[ -s $base/stats-at-done.json ]]; then
    if ! python3 - "$base/stats-at-done.json" <<'PY'
import json, sys
snap = json.load(open(sys.argv[1]))["stats"]
modes = {}
for q in snap["queues"]:
    for op in q["ops"]:
        if op["opcode"] == "WRITE":
            modes[op["mode"]] = modes.get(op["mode"], 0) + op["count"]
print("test-switch: WRITE requests per mode at fio-done:", modes)
sys.exit(0 if modes.get("inline", 0) > 0 and modes.get("pool", 0) > 0 else 1)
PY
    then
        say "FAIL: the counters do not show WRITEs in both modes"
        ok=0
    fi
else
    say "FAIL: no counter snapshot at fio-done"
    ok=0
fi
if ((ok)); then
    result=0
    say "PASS"
    exit 0
fi
exit 1
