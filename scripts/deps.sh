#!/usr/bin/env bash
# Install the Debian packages this project needs, idempotently: nothing is
# downloaded when everything is already there.
#   scripts/deps.sh [build|test|bench]   (default: test, which includes build)
set -euo pipefail

what=${1:-test}
here=$(cd "$(dirname "$0")/.." && pwd)

build_pkgs=(gcc meson ninja-build pkg-config libglib2.0-dev libfuse3-dev fuse3
            libseccomp-dev libcap-ng-dev systemtap-sdt-dev python3)
# The guest: QEMU, the upstream peer daemon (qemu-system-common), busybox for
# the initramfs, fio and friends run from the host root inside the guest.
guest_pkgs=(qemu-system-x86 qemu-system-common busybox-static cpio kmod fio attr
            python3 util-linux)
test_pkgs=(libclang-rt-14-dev clang-14)

pkgs=("${build_pkgs[@]}")
case "$what" in
build) ;;
test|bench) pkgs+=("${guest_pkgs[@]}")
            [ "$what" = test ] && pkgs+=("${test_pkgs[@]}") ;;
*) echo "usage: $0 [build|test|bench]" >&2; exit 1 ;;
esac
# Extra packages named by sub-projects (one per line).
for f in "$here"/tests/guest/PACKAGES "$here"/bench/PACKAGES "$here"/tracepoints/PACKAGES; do
    [ -f "$f" ] || continue
    while read -r p; do
        p=${p%%#*}; p=${p//[[:space:]]/}
        [ -n "$p" ] && pkgs+=("$p")
    done < "$f"
done

missing=()
for p in "${pkgs[@]}"; do
    if ! dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed"; then
        missing+=("$p")
    fi
done
if [ ${#missing[@]} -eq 0 ]; then
    echo "deps: all ${#pkgs[@]} packages present"
    exit 0
fi
echo "deps: installing ${missing[*]}"
SUDO=
[ "$(id -u)" -eq 0 ] || SUDO=sudo
export DEBIAN_FRONTEND=noninteractive
$SUDO apt-get update -qq
$SUDO apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
echo "deps: done"
