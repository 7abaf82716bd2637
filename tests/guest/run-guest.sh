#!/bin/bash
# run-guest.sh - boot the test guest against a vhost-user-fs daemon.
#
# usage: run-guest.sh --share DIR --script PATH [options] [-- DAEMON ARGV...]
#
#   --daemon 'CMD ...'    daemon command as one string (shell quoting rules;
#                         leading NAME=VALUE words set its environment), or
#                         give it as an argv after `--`.  The runner appends
#                         `--socket-path=SOCK -o source=SHARE`, unless an
#                         argument contains the placeholders @SOCK@ / @SHARE@,
#                         which are then substituted instead.
#   --share DIR           directory exported by the daemon (required)
#   --script PATH         host path of the program the guest runs (chrooted in
#                         the read-only host root); its exit status becomes ours
#   --env NAME=VALUE      environment for the guest script (repeatable)
#   --queues N            num-request-queues (default 1)
#   --queue-size N        virtqueue size, power of two <= 1024 (default 128)
#   --vcpus N             guest vCPUs (default 2)
#   --mem SIZE            guest memory (default 2G)
#   --timeout SEC         kill everything after SEC seconds (default 300)
#   --log-dir DIR         write console.log, status.log, daemon.log, qemu.log,
#                         run.log there (default: the run dir, removed on
#                         success, kept and printed on failure)
#   --image-dir DIR       guest image (default $VFS_GUEST_CACHE or
#                         /var/tmp/vfs-guest-cache); built if missing
#   --tag TAG             virtio-fs tag (default myfs)
#   --accel ACCEL         QEMU accelerator (default tcg,thread=multi)
#   --cpu MODEL           QEMU CPU model (default max)
#   --9p-cache MODE       9p cache mode for the read-only host root (default
#                         loose: 3-10x faster program start-up under TCG)
#   --qemu PATH           QEMU binary (default qemu-system-x86_64)
#   --qemu-arg ARG        one more QEMU argument, appended as is (repeatable;
#                         e.g. a virtio-serial port for the bench agent)
#   --quiet               do not stream the guest console to stdout
#   --interactive         no script: a shell on the console (stdio)
#
# The guest script sees: VFS_TAG, VFS_QUEUES, VFS_QUEUE_SIZE, VFS_VCPUS,
# VFS_RUN_DIR (read-only host run dir) and every --env.  It must mount the
# share itself: `mount -t virtiofs "$VFS_TAG" /mnt`.  In the guest /tmp is a
# guest tmpfs and the host root is read-only.
#
# Exit status: the guest script's status; 124 on timeout; 125 when the
# infrastructure failed (daemon or QEMU did not start, no exit marker);
# 126 when the daemon crashed or exited before the guest finished.
# A reason line starting with "run-guest: RESULT:" is always printed.
set -euo pipefail

prog=run-guest
here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
say() { echo "$prog: $*" >&2; }
usage() { sed -n '2,45p' "$0" | sed 's/^# \{0,1\}//'; }
die_usage() { say "$*"; usage >&2; exit 2; }

daemon_str=
daemon_argv=()
share=
script=
guest_env=()
queues=1
queue_size=128
vcpus=2
mem=2G
timeout=300
log_dir=
image_dir=${VFS_GUEST_CACHE:-/var/tmp/vfs-guest-cache}
tag=myfs
accel=tcg,thread=multi
cpu=max
cache9p=loose
qemu=qemu-system-x86_64
qemu_extra=()
quiet=0
interactive=0

need_arg() { (($# >= 2)) || die_usage "option $1 needs an argument"; }
while (($#)); do
    case $1 in
        --daemon) need_arg "$@"; daemon_str=$2; shift ;;
        --share) need_arg "$@"; share=$2; shift ;;
        --script) need_arg "$@"; script=$2; shift ;;
        --env) need_arg "$@"; [[ $2 =~ ^[A-Za-z_][A-Za-z0-9_]*= ]] || die_usage "--env wants NAME=VALUE"
               guest_env+=("$2"); shift ;;
        --queues) need_arg "$@"; queues=$2; shift ;;
        --queue-size) need_arg "$@"; queue_size=$2; shift ;;
        --vcpus) need_arg "$@"; vcpus=$2; shift ;;
        --mem) need_arg "$@"; mem=$2; shift ;;
        --timeout) need_arg "$@"; timeout=$2; shift ;;
        --log-dir) need_arg "$@"; log_dir=$2; shift ;;
        --image-dir) need_arg "$@"; image_dir=$2; shift ;;
        --tag) need_arg "$@"; tag=$2; shift ;;
        --accel) need_arg "$@"; accel=$2; shift ;;
        --cpu) need_arg "$@"; cpu=$2; shift ;;
        --9p-cache) need_arg "$@"; cache9p=$2; shift ;;
        --qemu) need_arg "$@"; qemu=$2; shift ;;
        --qemu-arg) need_arg "$@"; qemu_extra+=("$2"); shift ;;
        --quiet) quiet=1 ;;
        --interactive) interactive=1 ;;
        -h|--help) usage; exit 0 ;;
        --) shift; daemon_argv=("$@"); break ;;
        *) die_usage "unknown argument '$1'" ;;
    esac
    shift
done

if [[ -n $daemon_str ]]; then
    ((${#daemon_argv[@]} == 0)) || die_usage "give the daemon either with --daemon or after --, not both"
    eval "daemon_argv=($daemon_str)"
fi
((${#daemon_argv[@]})) || die_usage "no daemon command"
[[ -n $share ]] || die_usage "--share is required"
[[ -d $share ]] || die_usage "share $share is not a directory"
share=$(cd "$share" && pwd -P)
((interactive)) || [[ -n $script ]] || die_usage "--script is required (or --interactive)"
for v in queues queue_size vcpus timeout; do
    [[ ${!v} =~ ^[1-9][0-9]*$ ]] || die_usage "--${v//_/-} must be a positive integer"
done
((queue_size <= 1024 && (queue_size & (queue_size - 1)) == 0)) ||
    die_usage "--queue-size must be a power of two <= 1024"
command -v "$qemu" >/dev/null || { say "RESULT: infrastructure: $qemu not found"; exit 125; }

# --- guest image -------------------------------------------------------------
if ! "$here/build-image.sh" "$image_dir" >&2; then
    say "RESULT: infrastructure: cannot build the guest image in $image_dir"
    exit 125
fi
image_dir=$(cd "$image_dir" && pwd)

# --- run dir: must be visible in the guest through the 9p host root, so not
# under /tmp (hidden by the guest's tmpfs) ------------------------------------
run_base=${VFS_RUN_BASE:-/var/tmp}
case $(cd "$run_base" && pwd -P)/ in
    /tmp/*|/dev/*|/proc/*|/sys/*) say "VFS_RUN_BASE ($run_base) is hidden in the guest; using /var/tmp"; run_base=/var/tmp ;;
esac
run_dir=$(mktemp -d "$run_base/vfs-run.XXXXXX")
chmod 0755 "$run_dir"
if [[ -n $log_dir ]]; then
    mkdir -p "$log_dir"
    log_dir=$(cd "$log_dir" && pwd)
    keep_logs=1
else
    log_dir=$run_dir/logs
    mkdir -p "$log_dir"
    keep_logs=0
fi
console_log=$log_dir/console.log
status_log=$log_dir/status.log
daemon_log=$log_dir/daemon.log
qemu_log=$log_dir/qemu.log
run_log=$log_dir/run.log
: >"$console_log"; : >"$status_log"; : >"$daemon_log"; : >"$qemu_log"; : >"$run_log"
sock=$run_dir/vhost-fs.sock

log() { printf '%s %s\n' "$(date +%T.%3N)" "$*" >>"$run_log"; }

dpid='' qpid='' tpid='' tailpid=''
final_rc=125
kill_group() {   # kill_group PID: TERM its process group, then KILL after 2 s
    local pid=$1 i
    [[ -n $pid ]] || return 0
    kill -0 "$pid" 2>/dev/null || return 0
    kill -TERM -- "-$pid" 2>/dev/null || kill -TERM "$pid" 2>/dev/null || true
    for ((i = 0; i < 20; i++)); do
        kill -0 "$pid" 2>/dev/null || return 0
        sleep 0.1
    done
    kill -KILL -- "-$pid" 2>/dev/null || kill -KILL "$pid" 2>/dev/null || true
}
main_pid=$BASHPID
cleanup() {
    local rc=$?
    trap - EXIT INT TERM HUP
    # A forked helper (timer) that somehow runs this trap must not clean up.
    [[ $BASHPID == "$main_pid" ]] || exit "$rc"
    kill_group "$qpid"
    kill_group "$dpid"
    # helpers get SIGKILL: no trap can run in a just-forked child
    [[ -n $tpid ]] && kill -KILL "$tpid" 2>/dev/null || true
    [[ -n $tailpid ]] && kill -KILL "$tailpid" 2>/dev/null || true
    wait 2>/dev/null || true
    rm -f "$sock"
    if [[ -n ${VFS_KEEP_RUN_DIR:-} ]]; then
        say "run dir kept: $run_dir"
    elif ((keep_logs || rc == 0)); then
        rm -rf "$run_dir"
    else
        say "logs kept in $log_dir"
    fi
    exit "$rc"
}
trap cleanup EXIT
trap 'say "interrupted"; exit 130' INT TERM HUP

# --- the program the guest runs ----------------------------------------------
guest_cmd=
if ((interactive == 0)); then
    script=$(realpath -e "$script") || { say "RESULT: infrastructure: no script $script"; exit 125; }
    case $script in
        /tmp/*|/dev/*|/proc/*|/sys/*)   # hidden in the guest: copy it over
            cp "$script" "$run_dir/${script##*/}"
            script=$run_dir/${script##*/} ;;
    esac
    guest_cmd=$run_dir/guest-cmd
    {
        echo '#!/bin/bash'
        echo '# generated by run-guest.sh: environment for the guest script'
        printf 'export VFS_TAG=%q VFS_QUEUES=%q VFS_QUEUE_SIZE=%q VFS_VCPUS=%q VFS_RUN_DIR=%q\n' \
            "$tag" "$queues" "$queue_size" "$vcpus" "$run_dir"
        for e in "${guest_env[@]}"; do
            printf 'export %s=%q\n' "${e%%=*}" "${e#*=}"
        done
        echo 'cd /tmp'
        printf 'if [ -x %q ]; then exec %q; else exec /bin/bash %q; fi\n' "$script" "$script" "$script"
    } >"$guest_cmd"
    chmod 0755 "$guest_cmd"
fi

# --- daemon --------------------------------------------------------------------
have_placeholder=0
for a in "${daemon_argv[@]}"; do
    [[ $a == *@SOCK@* || $a == *@SHARE@* ]] && have_placeholder=1
done
if ((have_placeholder)); then
    for i in "${!daemon_argv[@]}"; do
        a=${daemon_argv[$i]}
        a=${a//@SOCK@/$sock}
        daemon_argv[$i]=${a//@SHARE@/$share}
    done
else
    daemon_argv+=("--socket-path=$sock" -o "source=$share")
fi

start_time=$(date +%s.%N)
dmesg_start=$(dmesg 2>/dev/null | wc -l || echo 0)
deadline=$(( $(date +%s) + timeout ))
log "daemon: ${daemon_argv[*]}"
# setsid: own process group, so the daemon and anything it forks can be killed
# together.  env: leading NAME=VALUE words become the daemon's environment.
setsid env "${daemon_argv[@]}" >"$daemon_log" 2>&1 </dev/null &
dpid=$!

daemon_exited_now() {   # true (and sets daemon_rc) if the daemon has exited
    if kill -0 "$dpid" 2>/dev/null && [[ $(awk '{print $3}' "/proc/$dpid/stat" 2>/dev/null) != Z ]]; then
        return 1
    fi
    wait "$dpid" && daemon_rc=0 || daemon_rc=$?
    dpid_exited=1
    return 0
}
describe_status() {   # exit status -> words
    local st=$1
    if ((st > 128)); then
        local sig
        sig=$(kill -l $((st - 128)) 2>/dev/null || echo "?")
        echo "killed by SIG$sig (status $st)"
    else
        echo "exit status $st"
    fi
}
dpid_exited=0
daemon_rc=
while [[ ! -S $sock ]]; do
    if daemon_exited_now; then
        say "daemon log:"; tail -n 20 "$daemon_log" >&2 || true
        say "RESULT: infrastructure: daemon exited before creating its socket ($(describe_status "$daemon_rc"))"
        dpid=; exit 125
    fi
    if (($(date +%s) >= deadline)) || (($(date +%s) - ${start_time%.*} > 30)); then
        say "RESULT: infrastructure: daemon did not create $sock within 30 s"
        exit 125
    fi
    sleep 0.05
done
log "daemon socket ready (pid $dpid)"

# --- QEMU ------------------------------------------------------------------------
append="console=ttyS0 quiet panic=-1 vfs_status=/dev/ttyS1"
[[ -n $guest_cmd ]] && append+=" vfs_cmd=$guest_cmd"
[[ -n $cache9p ]] && append+=" vfs_9p_cache=$cache9p"
qemu_argv=("$qemu" -nodefaults -no-user-config -no-reboot
    -machine pc -accel "$accel" -cpu "$cpu" -smp "$vcpus" -m "$mem"
    -object "memory-backend-memfd,id=mem,size=$mem,share=on" -numa node,memdev=mem
    -kernel "$image_dir/vmlinuz" -initrd "$image_dir/initramfs.cpio.gz"
    -append "$append" -display none
    -virtfs local,path=/,mount_tag=hostroot,security_model=none,readonly=on,multidevs=remap
    -chardev "socket,id=char0,path=$sock"
    -device "vhost-user-fs-pci,chardev=char0,tag=$tag,queue-size=$queue_size,num-request-queues=$queues")
if ((interactive)); then
    # Ctrl-C ends QEMU (signal=on); `exit` in the shell powers the guest off.
    qemu_argv+=(-chardev "stdio,id=con,signal=on,logfile=$console_log" -serial chardev:con)
else
    qemu_argv+=(-chardev "file,id=con,path=$console_log" -serial chardev:con)
fi
qemu_argv+=(-chardev "file,id=st,path=$status_log" -serial chardev:st)
qemu_argv+=("${qemu_extra[@]}")
log "qemu: ${qemu_argv[*]}"
if ((interactive)); then
    # (a background job would get /dev/null as stdin: hand it ours explicitly)
    exec 8<&0
    "${qemu_argv[@]}" 2>"$qemu_log" <&8 8<&- &
    exec 8<&-
else
    setsid "${qemu_argv[@]}" >"$qemu_log" 2>&1 </dev/null &
fi
qpid=$!
if ((quiet == 0 && interactive == 0)); then
    tail -n +1 -F --pid="$qpid" "$console_log" 2>/dev/null &
    tailpid=$!
fi
remaining=$((deadline - $(date +%s)))
((remaining > 0)) || remaining=1
sleep "$remaining" &
tpid=$!

marker_rc() {   # prints the guest's exit status if the marker arrived
    local m
    m=$(tr -d '\r' <"$status_log" | sed -n 's/^GUEST-EXIT=\([0-9][0-9]*\)$/\1/p' | tail -n1)
    [[ -z $m ]] && m=$(tr -d '\r' <"$console_log" | sed -n 's/^GUEST-EXIT=\([0-9][0-9]*\)$/\1/p' | tail -n1)
    [[ -n $m ]] && echo "$m"
}

qemu_rc='' timed_out=0 daemon_early=0 we_killed_daemon=0
while [[ -z $qemu_rc ]]; do
    waitfor=("$qpid" "$tpid")
    ((dpid_exited)) || waitfor+=("$dpid")
    fin=
    wait -n -p fin "${waitfor[@]}" && rc=0 || rc=$?
    if [[ $fin == "$qpid" ]]; then
        qemu_rc=$rc
    elif [[ $fin == "$tpid" ]]; then
        tpid=
        timed_out=1
        log "timeout after ${timeout}s"
        kill_group "$qpid"
        wait "$qpid" && qemu_rc=0 || qemu_rc=$?
    elif [[ $fin == "$dpid" ]]; then
        daemon_rc=$rc
        dpid_exited=1
        log "daemon exited: $(describe_status "$rc")"
        if ! marker_rc >/dev/null; then
            # Give QEMU a moment (the guest may be just powering off), then
            # stop it: with the daemon gone the guest can only hang.
            for ((i = 0; i < 30; i++)); do
                marker_rc >/dev/null && break
                kill -0 "$qpid" 2>/dev/null || break
                sleep 0.1
            done
            if ! marker_rc >/dev/null; then
                daemon_early=1
                kill_group "$qpid"
            fi
        fi
    fi
done
[[ -n $tpid ]] && { kill -KILL "$tpid" 2>/dev/null || true; wait "$tpid" 2>/dev/null || true; tpid=; }
log "qemu exited: $(describe_status "$qemu_rc")"

# The daemon should exit by itself once QEMU has gone; give it 5 s (none
# after a timeout: then it is stopped at once).
if ((dpid_exited == 0 && timed_out)); then
    we_killed_daemon=1
    kill_group "$dpid"
    wait "$dpid" && daemon_rc=0 || daemon_rc=$?
    dpid_exited=1
fi
if ((dpid_exited == 0)); then
    sleep 5 &
    t2=$!
    fin=
    wait -n -p fin "$dpid" "$t2" && rc=0 || rc=$?
    if [[ $fin == "$dpid" ]]; then
        daemon_rc=$rc
        kill -KILL "$t2" 2>/dev/null || true
    else
        log "daemon still running 5 s after QEMU exited; stopping it"
        say "note: daemon did not exit after QEMU disconnected; sent SIGTERM"
        we_killed_daemon=1
        kill_group "$dpid"
        wait "$dpid" && daemon_rc=0 || daemon_rc=$?
    fi
    wait "$t2" 2>/dev/null || true
    dpid_exited=1
fi
dpid=; qpid=
if [[ -n $tailpid ]]; then   # tail notices QEMU's exit within a second
    for ((i = 0; i < 30; i++)); do kill -0 "$tailpid" 2>/dev/null || break; sleep 0.1; done
    kill -KILL "$tailpid" 2>/dev/null || true
    wait "$tailpid" 2>/dev/null || true
    tailpid=
fi
log "daemon status: $(describe_status "$daemon_rc")"

elapsed=$(awk -v a="$start_time" -v b="$(date +%s.%N)" 'BEGIN { printf "%.1f", b - a }')
guest_rc=$(marker_rc || true)
daemon_crashed=0
if ((we_killed_daemon == 0 && daemon_rc != 0)); then
    daemon_crashed=1
fi

explain_daemon() {
    say "daemon log (last 20 lines of $daemon_log):"
    tail -n 20 "$daemon_log" | sed 's/^/    /' >&2 || true
    local exe a klog
    for a in "${daemon_argv[@]}"; do
        [[ $a =~ ^[A-Za-z_][A-Za-z0-9_]*= ]] || { exe=${a##*/}; break; }
    done
    klog=$(dmesg 2>/dev/null | tail -n +$((dmesg_start + 1)) |
           grep -E 'type=1326|segfault|general protection|traps:' | grep -F -- "${exe:-virtiofsd}" | tail -n 5 || true)
    if [[ -n $klog ]]; then
        say "host kernel log since the start of this run:"
        printf '%s\n' "$klog" | sed 's/^/    /' >&2
    fi
    if ((daemon_rc == 128 + 31)) || [[ $klog == *type=1326* ]]; then
        say "the daemon's seccomp filter killed it (type=1326 / SIGSYS; 'syscall=' names the call); Debian's upstream virtiofsd needs MALLOC_ARENA_MAX=8 in pool mode"
    fi
}

if ((timed_out)); then
    say "console log (last 20 lines):"; tail -n 20 "$console_log" | sed 's/^/    /' >&2 || true
    if ((daemon_crashed)); then explain_daemon; fi
    say "RESULT: timeout: guest did not finish within ${timeout}s (killed QEMU and daemon; ${elapsed}s)"
    final_rc=124
elif ((daemon_early)); then
    explain_daemon
    say "RESULT: daemon crash: daemon exited before the guest finished ($(describe_status "$daemon_rc"); ${elapsed}s)"
    final_rc=126
elif [[ -z $guest_rc ]]; then
    say "qemu log:"; tail -n 20 "$qemu_log" | sed 's/^/    /' >&2 || true
    say "console log (last 20 lines):"; tail -n 20 "$console_log" | sed 's/^/    /' >&2 || true
    say "RESULT: infrastructure: no GUEST-EXIT marker (QEMU $(describe_status "$qemu_rc"); ${elapsed}s)"
    final_rc=125
elif ((daemon_crashed)); then
    explain_daemon
    say "RESULT: daemon crash: guest script exit status $guest_rc but the daemon ended with $(describe_status "$daemon_rc") (${elapsed}s)"
    final_rc=126
else
    say "RESULT: guest script exit status $guest_rc (${elapsed}s)"
    final_rc=$guest_rc
fi
log "result: rc=$final_rc elapsed=${elapsed}s guest_rc=${guest_rc:-none} qemu_rc=$qemu_rc daemon_rc=$daemon_rc"
exit "$final_rc"
