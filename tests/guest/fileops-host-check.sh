#!/bin/bash
# fileops-host-check.sh SHAREDIR [--outside-token TOKEN] [--xfail 'id=reason;...']
#
# Host-side companion of fileops.sh: after the guest has run, checks that the
# host's view of the share matches what the guest did.  Prints TAP and exits
# non-zero if any check failed.  SHAREDIR/../outside-marker (made by the test
# driver) must still hold TOKEN and nothing may have appeared next to the
# share.  --xfail ids work as VFS_XFAIL in fileops.sh.
set -uo pipefail   # no -e: every check runs and reports

usage() { sed -n '2,9p' "$0" | sed 's/^# \{0,1\}//'; }
share=
outside_token=
xfail_spec=
while (($#)); do
    case $1 in
        --outside-token) outside_token=${2:?}; shift ;;
        --xfail) xfail_spec=${2?}; shift ;;
        -h|--help) usage; exit 0 ;;
        -*) usage >&2; exit 2 ;;
        *) share=$1 ;;
    esac
    shift
done
[[ -n $share && -d $share ]] || { usage >&2; exit 2; }
share=$(cd "$share" && pwd -P)
T=$share/t

n=0 nfail=0 nxfail=0
declare -A xfail=()
IFS=';' read -r -a _xf <<<"$xfail_spec"
for _e in "${_xf[@]}"; do
    [[ -n $_e ]] && xfail[${_e%%=*}]=${_e#*=}
done
tap() {   # tap ok|fail ID DESC...
    local st=$1 id=$2; shift 2
    n=$((n + 1))
    if [[ $st == ok ]]; then
        echo "ok $n - host-$id: $*${xfail[$id]:+ # TODO known failure did not happen: ${xfail[$id]}}"
    elif [[ -n ${xfail[$id]:-} ]]; then
        echo "not ok $n - host-$id: $* # TODO known failure: ${xfail[$id]}"
        nxfail=$((nxfail + 1))
    else
        echo "not ok $n - host-$id: $*"
        nfail=$((nfail + 1))
    fi
}
check() {   # check ID DESC -- COMMAND...
    local id=$1 desc=$2 out; shift 2
    [[ ${1:-} == -- ]] && shift
    if out=$("$@" 2>&1); then
        tap ok "$id" "$desc"
    else
        tap fail "$id" "$desc"
        [[ -n $out ]] && printf '%s\n' "$out" | head -n 20 | sed 's/^/#   /'
    fi
}
# small assertion helpers: print what differs, return non-zero
eq() { [[ $1 == "$2" ]] || { echo "got '$1', want '$2'"; return 1; }; }
absent() { local f; for f; do [[ ! -e $f && ! -L $f ]] || { echo "$f exists"; return 1; }; done; }
content() { eq "$(cat "$1" 2>&1)" "$2"; }
st() { stat -c "$1" -- "$2" 2>&1; }

echo "TAP version 13"
echo "# host check of $share"

if [[ ! -f $T/guest-done ]]; then
    tap fail guest-done "the guest test ran to the end (t/guest-done exists)"
    echo "Bail out! the guest did not finish; nothing to check"
    echo "1..$n"
    exit 1
fi
tap ok guest-done "the guest test ran to the end: $(cat "$T/guest-done")"

check sha256 "file contents written by the guest (t/expected.sha256)" -- \
    bash -c "cd '$share' && test -s t/expected.sha256 && sha256sum --quiet -c t/expected.sha256"
check owner-root "files created by guest root are owned by root on the host" -- \
    eq "$(st %u:%g "$T/data.bin")" 0:0
check sizes "sizes: data 1 MiB, direct 256 KiB, mmap 64 KiB, trunc 20000, sparse 3 MiB+3" -- bash -c "
    [[ \$(stat -c %s '$T/data.bin') == 1048576 && \$(stat -c %s '$T/direct.bin') == 262144 &&
       \$(stat -c %s '$T/mmap.bin') == 65536 && \$(stat -c %s '$T/trunc.bin') == 20000 &&
       \$(stat -c %s '$T/sparse.bin') == 3145731 ]] || stat -c '%n %s' '$T'/*.bin"
check rename "plain rename: ren-old gone, ren-target has its content; dir-a -> dir-b" -- bash -c "
    $(declare -f eq absent content); absent '$T/ren-old' '$T/dir-a' &&
    content '$T/ren-target' old && content '$T/dir-b/inner' inner"
check rename-exchange "RENAME_EXCHANGE swapped ex-a and ex-b" -- bash -c "
    $(declare -f eq content); content '$T/ex-a' B && content '$T/ex-b' A"
check rename-noreplace "RENAME_NOREPLACE kept nr-dst, moved nr-src to nr-new" -- bash -c "
    $(declare -f eq absent content); absent '$T/nr-src' && content '$T/nr-dst' dst && content '$T/nr-new' src"
check hardlink "hl-a and hl-b: one inode, 2 links" -- bash -c "
    $(declare -f eq); eq \"\$(stat -c %i:%h '$T/hl-a')\" \"\$(stat -c %i:%h '$T/hl-b')\" &&
    eq \"\$(stat -c %h '$T/hl-a')\" 2"
check symlink "t/sym is a symlink to data.bin" -- eq "$(readlink "$T/sym")" data.bin
check chmod "modes: mode.bin 640, kept-dir 750" -- eq "$(st %a "$T/mode.bin") $(st %a "$T/kept-dir")" "640 750"
check chown "own.bin owned by 1234:5678" -- eq "$(st %u:%g "$T/own.bin")" 1234:5678
check utimes "times.bin atime/mtime with nanoseconds" -- \
    eq "$(st '%.9X %.9Y' "$T/times.bin")" "1000000000.123456789 1234567890.987654321"
if command -v getfattr >/dev/null; then
    check xattr "user.vfs=hello-xattr present, user.gone removed" -- bash -c "
        $(declare -f eq)
        eq \"\$(getfattr --only-values -n user.vfs '$T/xattr.bin')\" hello-xattr &&
        ! getfattr -n user.gone '$T/xattr.bin' >/dev/null 2>&1"
else
    tap fail xattr "getfattr not installed (Debian package attr)"
fi
check readdir-1000 "t/many holds exactly the 1000 files f0000..f0999" -- bash -c "
    $(declare -f eq)
    eq \"\$(find '$T/many' -mindepth 1 -maxdepth 1 -type f -name 'f[0-9][0-9][0-9][0-9]' | wc -l)\" 1000 &&
    eq \"\$(find '$T/many' -mindepth 1 | wc -l)\" 1000"
check mkdir-rmdir "rmdir-gone removed, kept-dir/sub present" -- bash -c "
    $(declare -f absent); absent '$T/rmdir-gone' && test -d '$T/kept-dir/sub'"
check unlink-open "the unlinked open file is gone" -- absent "$T/unlinked-open"
check statfs "guest statvfs total size equals the host's" -- bash -c "
    $(declare -f eq)
    read -r frsize blocks namemax <'$T/statfs.txt' &&
    eq \"\$((frsize * blocks))\" \"\$(stat -f -c '%S * %b' '$share' | xargs expr)\""
check remount "remount.txt written before the guest's umount/mount is there" -- \
    grep -Eqx 'remount-[0-9]+-[0-9]+' "$T/remount.txt"
check fio-files "fio left three verified files of the expected size" -- bash -c "
    $(declare -f eq)
    eq \"\$(find '$T/fio' -type f | wc -l)\" 3 &&
    for f in '$T'/fio/*; do eq \"\$(stat -c %s \"\$f\")\" 8388608 || exit 1; done"
check escape-symlinks "guest-made escape symlinks stored literally (esc-rel, esc-root, esc-etc)" -- bash -c "
    $(declare -f eq)
    eq \"\$(readlink '$share/esc-rel')|\$(readlink '$share/esc-root')|\$(readlink '$share/esc-etc')\" \
       '../outside-marker|/|/etc'"
parent=${share%/*}
if [[ -n $outside_token ]]; then
    check outside-marker "the marker next to the share is unchanged" -- \
        content "$parent/outside-marker" "$outside_token"
else
    echo "# outside token not given: marker content not checked"
fi
check outside-untouched "nothing was created next to the share (escape attempts)" -- bash -c "
    $(declare -f eq)
    eq \"\$(cd '$parent' && find . -mindepth 1 -maxdepth 1 ! -name '${share##*/}' ! -name outside-marker ! -name logs -printf '%f ')\" ''"

echo "1..$n"
echo "# host check: $((n - nfail - nxfail)) ok, $nfail failed, $nxfail known failures (TODO)"
((nfail == 0))
