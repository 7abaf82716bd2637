#!/bin/bash
# build-image.sh [--force] [OUTDIR]
#
# Builds the test guest (a Debian kernel plus a tiny busybox initramfs) from
# Debian packages only.  Idempotent: when OUTDIR already holds an image built
# by this very script version it returns at once without touching apt.
#
# Outputs in OUTDIR (default $VFS_GUEST_CACHE or /var/tmp/vfs-guest-cache):
#   vmlinuz              the kernel of linux-image-6.1.*-amd64
#   initramfs.cpio.gz    busybox + virtio/fuse/virtiofs/9p modules + /init
#   image.stamp          what was built from what (used for idempotency)
#   debs/                cached .deb files (reused on rebuilds)
#
# Environment:
#   VFS_KERNEL_PKG   pin the kernel package (e.g. linux-image-6.1.0-56-amd64)
#                    instead of resolving linux-image-amd64's dependency.
#
# Exit status: 0 ok, 1 build error, 2 prerequisites missing (no apt lists,
# no busybox, no depmod, ...), so callers can turn 2 into a test skip.
set -euo pipefail

prog=${0##*/}
die() { echo "$prog: error: $*" >&2; exit 1; }
missing() { echo "$prog: missing prerequisite: $*" >&2; exit 2; }

force=0
outdir=
while (($#)); do
    case $1 in
        --force) force=1 ;;
        -h|--help) sed -n '2,22p' "$0" | sed 's/^# \{0,1\}//'; exit 0 ;;
        -*) die "unknown option $1" ;;
        *) [[ -z $outdir ]] || die "only one OUTDIR"; outdir=$1 ;;
    esac
    shift
done
outdir=${outdir:-${VFS_GUEST_CACHE:-/var/tmp/vfs-guest-cache}}
mkdir -p "$outdir"
outdir=$(cd "$outdir" && pwd)

# Modules the guest needs; the dependency closure and load order come from
# modules.dep (busybox insmod does not resolve dependencies).  virtio_console
# gives the bench agent its virtio-serial port (/dev/vport*p*), a channel to
# the host that does not go through the share.  Changing this list changes
# the script's hash, which rebuilds every cached image (see image_ok).
WANT_MODULES=(virtio_ring virtio virtio_pci_legacy_dev virtio_pci_modern_dev
              virtio_pci fuse virtiofs 9pnet netfs fscache 9p 9pnet_virtio
              virtio_console)

self_hash=$(sha256sum "$0" | cut -d' ' -f1)

image_ok() {
    [[ -s $outdir/vmlinuz && -s $outdir/initramfs.cpio.gz && -s $outdir/image.stamp ]] &&
        grep -qx "script=$self_hash" "$outdir/image.stamp"
}

# Serialise concurrent builds (parallel test runs share the cache).
exec 9>"$outdir/.lock"
flock 9

if ((force == 0)) && image_ok; then
    echo "$prog: image up to date in $outdir ($(grep '^kernel_pkg=' "$outdir/image.stamp" | cut -d= -f2-))"
    exit 0
fi

for tool in apt-get apt-cache dpkg dpkg-deb cpio gzip sha256sum; do
    command -v "$tool" >/dev/null || missing "$tool"
done
depmod=$(command -v depmod || true)
[[ -n $depmod ]] || { [[ -x /usr/sbin/depmod ]] && depmod=/usr/sbin/depmod; } || missing "depmod (package kmod)"

debdir=$outdir/debs
mkdir -p "$debdir"

# --- resolve the kernel package ------------------------------------------
kpkg=${VFS_KERNEL_PKG:-}
if [[ -z $kpkg ]]; then
    kpkg=$(apt-cache depends linux-image-amd64 2>/dev/null |
           sed -n 's/^ *Depends: \(linux-image-6\.1\.[^ ]*-amd64\)$/\1/p' | head -n1 || true)
fi
if [[ -z $kpkg ]]; then
    # No apt lists (apt-get update never ran)?  Fall back to a cached .deb.
    cached=$(printf "%s\n" "$debdir"/linux-image-6.1.*-amd64_*.deb | grep -v -e unsigned -e "\*" | sort -V | tail -n1 || true)
    [[ -n $cached ]] || missing "cannot resolve linux-image-amd64 -> linux-image-6.1.*-amd64 (run apt-get update)"
    kpkg=$(dpkg-deb -f "$cached" Package)
    echo "$prog: apt cannot resolve linux-image-amd64; using cached $kpkg"
fi
[[ $kpkg =~ ^linux-image-6\.1\.[^[:space:]]+-amd64$ ]] || die "unexpected kernel package name '$kpkg'"

fetch_deb() {   # fetch_deb PKG -> prints path of the cached .deb
    local pkg=$1 ver deb
    ver=$(apt-cache policy "$pkg" 2>/dev/null | sed -n 's/^ *Candidate: //p' | head -n1 || true)
    if [[ -n $ver && $ver != "(none)" ]]; then
        deb=$(ls -1 "$debdir/${pkg}_${ver//:/%3a}_"*.deb 2>/dev/null | head -n1 || true)
        if [[ -z $deb ]]; then
            echo "$prog: downloading $pkg $ver" >&2
            (cd "$debdir" && apt-get download -q "$pkg=$ver" >&2 2>/dev/null) ||
                (cd "$debdir" && apt-get download "$pkg=$ver" >&2) || return 1
            deb=$(ls -1 "$debdir/${pkg}_${ver//:/%3a}_"*.deb 2>/dev/null | head -n1 || true)
        fi
    else
        deb=$(ls -1 "$debdir/${pkg}_"*.deb 2>/dev/null | sort -V | tail -n1 || true)
    fi
    [[ -n $deb && -s $deb ]] || return 1
    printf '%s\n' "$deb"
}

kdeb=$(fetch_deb "$kpkg") || missing "cannot download $kpkg"

# busybox-static: the installed binary if present, else from the .deb.
work=$(mktemp -d "$outdir/.build.XXXXXX")
trap 'rm -rf "$work"' EXIT

busybox_src=
if dpkg-query -W -f='${Status}' busybox-static 2>/dev/null | grep -q 'install ok installed'; then
    busybox_src=$(dpkg-query -L busybox-static | grep -E '/bin/busybox$' | head -n1)
fi
if [[ -z $busybox_src || ! -x $busybox_src ]]; then
    bdeb=$(fetch_deb busybox-static) || missing "busybox-static (install it or run apt-get update)"
    mkdir -p "$work/bb"
    dpkg -x "$bdeb" "$work/bb"
    busybox_src=$work/bb/bin/busybox
    [[ -x $busybox_src ]] || busybox_src=$work/bb/usr/bin/busybox
    [[ -x $busybox_src ]] || die "no busybox binary in $bdeb"
fi

# --- unpack the kernel and compute the module closure ----------------------
echo "$prog: unpacking $(basename "$kdeb")"
mkdir -p "$work/k"
dpkg -x "$kdeb" "$work/k"
vmlinuz=$(ls -1 "$work"/k/boot/vmlinuz-* | head -n1)
kver=${vmlinuz##*/vmlinuz-}
moddir=
for d in "$work/k/lib/modules/$kver" "$work/k/usr/lib/modules/$kver"; do
    [[ -d $d ]] && moddir=$d
done
[[ -n $moddir ]] || die "no modules directory for $kver in $kdeb"
depbase=${moddir%/lib/modules/*}
"$depmod" -b "$depbase" "$kver"
depfile=$moddir/modules.dep
[[ -s $depfile ]] || die "depmod produced no modules.dep"

declare -A modpath=() seen=()
while IFS= read -r line; do
    p=${line%%:*}
    n=${p##*/}; n=${n%%.ko*}; n=${n//-/_}
    modpath[$n]=$p
done <"$depfile"

order=()
visit() {
    local m=${1//-/_} line deps d
    [[ -n ${seen[$m]:-} ]] && return 0
    seen[$m]=1
    [[ -n ${modpath[$m]:-} ]] || die "module $m not found in $kpkg (built in?)"
    line=$(grep -m1 -F "${modpath[$m]}:" "$depfile")
    deps=${line#*:}
    for d in $deps; do
        d=${d##*/}; d=${d%%.ko*}
        visit "$d"
    done
    order+=("$m")
}
for m in "${WANT_MODULES[@]}"; do visit "$m"; done

# --- assemble the initramfs ----------------------------------------------
root=$work/root
mkdir -p "$root"/{bin,dev,proc,sys,host,etc,lib/modules}
cp "$busybox_src" "$root/bin/busybox"
chmod 0755 "$root/bin/busybox"
: >"$root/etc/modules.order"
for m in "${order[@]}"; do
    src=$moddir/${modpath[$m]}
    case $src in
        *.ko) cp "$src" "$root/lib/modules/$m.ko" ;;
        *.ko.xz) xz -dc "$src" >"$root/lib/modules/$m.ko" ;;
        *.ko.zst) zstd -qdc "$src" >"$root/lib/modules/$m.ko" ;;
        *.ko.gz) gzip -dc "$src" >"$root/lib/modules/$m.ko" ;;
        *) die "unsupported module file $src" ;;
    esac
    echo "$m" >>"$root/etc/modules.order"
done

cat >"$root/init" <<'INIT'
#!/bin/busybox sh
# PID 1 of the virtio-fs test guest (generated by tests/guest/build-image.sh).
#
# Kernel command line parameters understood:
#   vfs_cmd=PATH     program on the host root to run chrooted in /host
#                    (empty: start an interactive shell on the console)
#   vfs_9p_cache=M   9p cache mode for the read-only host root (default none)
#   vfs_status=DEV   where to write GUEST-EXIT=<rc> (default /dev/ttyS1);
#                    the marker is also printed on the console.
/bin/busybox mkdir -p /bin /proc /sys /dev /host
/bin/busybox --install -s /bin
export PATH=/bin HOME=/ TERM=dumb
mount -t proc proc /proc
mount -t sysfs sysfs /sys
mount -t devtmpfs devtmpfs /dev

vfs_cmd= ; vfs_9p_cache= ; vfs_status=/dev/ttyS1
for w in $(cat /proc/cmdline); do
    case $w in
        vfs_cmd=*) vfs_cmd=${w#vfs_cmd=} ;;
        vfs_9p_cache=*) vfs_9p_cache=${w#vfs_9p_cache=} ;;
        vfs_status=*) vfs_status=${w#vfs_status=} ;;
    esac
done

finish() {
    sync
    echo "GUEST-EXIT=$1" >"$vfs_status" 2>/dev/null
    printf '\nGUEST-EXIT=%s\n' "$1"
    poweroff -f
    sleep 5
    reboot -f
}
fail() { echo "vfs-init: FAILED: $*"; finish 254; }

for m in $(cat /etc/modules.order); do
    insmod "/lib/modules/$m.ko" || fail "insmod $m"
done

opts=trans=virtio,version=9p2000.L,ro,msize=512000
[ -n "$vfs_9p_cache" ] && opts=$opts,cache=$vfs_9p_cache
mount -t 9p -o "$opts" hostroot /host || fail "mount 9p hostroot"
mount -t proc proc /host/proc || fail "mount /host/proc"
mount -t sysfs sysfs /host/sys || fail "mount /host/sys"
mount -t devtmpfs devtmpfs /host/dev || fail "mount /host/dev"
mkdir -p /host/dev/shm /host/dev/pts
mount -t tmpfs -o mode=1777 tmpfs /host/dev/shm || fail "mount /host/dev/shm"
mount -t devpts devpts /host/dev/pts 2>/dev/null
mount -t tmpfs -o mode=1777 tmpfs /host/tmp || fail "mount /host/tmp"

if [ -z "$vfs_cmd" ]; then
    echo "vfs-init: no vfs_cmd; interactive shell (host root at /host, 'chroot /host' to enter)"
    setsid cttyhack sh
    finish $?
fi

echo "vfs-init: running $vfs_cmd"
env -i PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin \
    HOME=/root TERM=dumb LANG=C.UTF-8 \
    chroot /host /bin/sh -c 'cd / && exec "$0"' "$vfs_cmd" </dev/null
finish $?
INIT
chmod 0755 "$root/init"

(cd "$root" && find . -mindepth 1 | LC_ALL=C sort | cpio -o -H newc -R 0:0 --quiet) |
    gzip -9n >"$work/initramfs.cpio.gz"
cp "$vmlinuz" "$work/vmlinuz"
mv -f "$work/vmlinuz" "$outdir/vmlinuz"
mv -f "$work/initramfs.cpio.gz" "$outdir/initramfs.cpio.gz"
{
    echo "script=$self_hash"
    echo "kernel_pkg=$kpkg"
    echo "kernel_deb=$(basename "$kdeb")"
    echo "kernel_version=$kver"
    echo "busybox=$busybox_src"
    echo "modules=${order[*]}"
    echo "built=$(date -u +%Y-%m-%dT%H:%M:%SZ)"
} >"$outdir/image.stamp"
echo "$prog: built $outdir/vmlinuz and initramfs.cpio.gz (kernel $kver; modules: ${order[*]})"
