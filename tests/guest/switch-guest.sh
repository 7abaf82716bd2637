#!/bin/bash
# switch-guest.sh - guest side of test-switch.sh: fio with crc32c
# verification on the virtio-fs share while the host flips the daemon's
# queues between inline and pool mode (virtiofsctl).
#
# Markers in the share tell the host when the I/O runs: fio-started before
# the first job, fio-done after the last one (flips count only between).
# Environment: VFS_TAG, VFS_FIO_SIZE (per job, default 8M), VFS_FIO_ROUNDS
# (default 2: the three jobs run that many times).
set -u
MNT=/mnt
SIZE=${VFS_FIO_SIZE:-8M}
ROUNDS=${VFS_FIO_ROUNDS:-2}

mount -t virtiofs "$VFS_TAG" "$MNT" || { echo "switch-guest: mount failed"; exit 1; }
mkdir -p "$MNT/fio"
: >"$MNT/fio-started"
rc=0
for ((r = 1; r <= ROUNDS; r++)); do
    out=/tmp/fio-$r.terse
    # verify_backlog: read back and check while writing, not only at the
    # end, so reads and writes are both in flight across many switches
    fio --output-format=terse --output="$out" \
        --directory="$MNT/fio" --size="$SIZE" --bs=4k --rw=randwrite \
        --verify=crc32c --do_verify=1 --verify_fatal=1 --verify_state_save=0 \
        --verify_backlog=64 \
        --name=psync-direct --ioengine=psync --direct=1 --numjobs=2 --stonewall \
        --name=libaio-direct --ioengine=libaio --iodepth=16 --direct=1 --stonewall \
        --name=psync-buffered --ioengine=psync --direct=0 --end_fsync=1 --stonewall \
        >/tmp/fio-$r.log 2>&1
    frc=$?
    for job in psync-direct libaio-direct psync-buffered; do
        errs=$(awk -F';' -v j="$job" '$3 == j { print $5 }' "$out" 2>/dev/null | sort -u | tr '\n' ' ')
        if ((frc == 0)) && [[ $errs == "0 " ]]; then
            echo "ok - round $r $job: $SIZE 4k randwrite, crc32c verified"
        else
            echo "not ok - round $r $job (fio exit $frc, job errors '${errs:-none}')"
            tail -n 15 /tmp/fio-$r.log | sed 's/^/#   /'
            rc=1
        fi
    done
done
: >"$MNT/fio-done"
sync
umount "$MNT" || rc=1
echo "switch-guest: exit $rc"
exit $rc
