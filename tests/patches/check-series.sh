#!/usr/bin/env bash
# SPDX-License-Identifier: GPL-2.0-or-later
#
# check-series.sh SRCDIR: every patch in SRCDIR/patches/series still applies
# to HEAD, in series order, and the result builds with -Dwerror=true (the
# configuration bench/patch-eval uses). Fails when a patch rots; exit 77
# (skip) only when SRCDIR is not a git checkout.
#
# HEAD is the last commit (git archive HEAD into a temporary directory: the
# checkout itself, its index and its .git are not touched); the patch files
# and the series are read from the working tree, so a patch being added is
# checked before it is committed. Every patches/*.patch must be listed in
# the series (an unlisted patch would rot unnoticed).
set -euo pipefail

src=${1:?usage: check-series.sh SRCDIR [MESON_OPTION...]}
shift
meson_opts=(--buildtype=release -Doptimization=2 -Dwerror=true "$@")

if ! top=$(git -C "$src" rev-parse --show-toplevel 2>/dev/null); then
    echo "SKIP: $src is not a git checkout (nothing to call HEAD)"
    exit 77
fi
pdir=$top/patches
series=$pdir/series
if [ ! -f "$series" ]; then
    echo "FAIL: $series is missing (it lists the patches, one file name a line)"
    exit 1
fi

tmp=$(mktemp -d "${TMPDIR:-/tmp}/check-series.XXXXXX")
cleanup() { rm -rf "$tmp"; }
trap cleanup EXIT
trap 'exit 130' INT TERM HUP

# The series: names, '#' comments and blank lines ignored.
mapfile -t names < <(sed -e 's/#.*//' -e 's/[[:space:]]*$//' -e 's/^[[:space:]]*//' \
                         "$series" | grep -v '^$' || true)
fail=0
declare -A listed=()
for n in "${names[@]}"; do
    if [ ! -f "$pdir/$n" ]; then
        echo "FAIL: series lists $n, which is not in patches/"
        fail=1
    fi
    listed[$n]=1
done
for f in "$pdir"/*.patch; do
    [ -e "$f" ] || continue
    b=$(basename "$f")
    if [ -z "${listed[$b]:-}" ]; then
        echo "FAIL: patches/$b is not listed in patches/series"
        fail=1
    fi
done
[ $fail -eq 0 ] || exit 1
if [ ${#names[@]} -eq 0 ]; then
    echo "OK: patches/series is empty; nothing to check"
    exit 0
fi

head=$(git -C "$top" rev-parse --short=12 HEAD)
mkdir "$tmp/src"
git -C "$top" archive --format=tar HEAD | tar -x -C "$tmp/src"
# git apply outside any repository would resolve paths against an
# enclosing one, if TMPDIR sits inside a checkout: give it its own.
git -C "$tmp/src" init -q

applied=()
for n in "${names[@]}"; do
    if ! out=$(cd "$tmp/src" && git apply --check -v "$pdir/$n" 2>&1); then
        if [ ${#applied[@]} -gt 0 ]; then
            echo "FAIL: patches/$n no longer applies to HEAD ($head) + ${applied[*]}"
        else
            echo "FAIL: patches/$n no longer applies to HEAD ($head)"
        fi
        echo "$out" | sed 's/^/  /'
        echo "Rebase it (patches/README.md), or drop it from the series if it landed."
        exit 1
    fi
    (cd "$tmp/src" && git apply --whitespace=nowarn "$pdir/$n")
    applied+=("$n")
    echo "applies: $n"
done

echo "building HEAD ($head) + ${#names[@]} patch(es): meson setup ${meson_opts[*]}"
if ! meson setup "$tmp/build" "$tmp/src" "${meson_opts[@]}" >"$tmp/build.log" 2>&1 ||
   ! ninja -C "$tmp/build" >>"$tmp/build.log" 2>&1; then
    echo "FAIL: HEAD + the series does not build"
    if grep -q -E '^FAILED:|: error:|ERROR:' "$tmp/build.log"; then
        grep -E -A8 '^FAILED:|: error:|ERROR:' "$tmp/build.log" | head -80 | sed 's/^/  /'
    else
        tail -40 "$tmp/build.log" | sed 's/^/  /'
    fi
    exit 1
fi
echo "OK: ${#names[@]} patch(es) apply to HEAD ($head) in series order and build (-Dwerror=true)"
