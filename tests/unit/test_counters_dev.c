/* SPDX-License-Identifier: GPL-2.0-or-later */
/*
 * Daemon-side helper of test_counters.c, in its own unit: dispatch.h
 * (through vhost_user.h) and bench/vufront.h both define the vhost-user
 * request names.
 */
#include "dispatch.h"
#include "fuse_virtio.h"

int counters_switch_mode(struct fv_dev *dev, unsigned int qidx, bool pool,
                         unsigned int pool_size);

/* What the control socket's "mode set" does: switch, then count it. */
int counters_switch_mode(struct fv_dev *dev, unsigned int qidx, bool pool,
                         unsigned int pool_size)
{
    int r = dispatch_set_mode(fv_dev_dispatch(dev), qidx,
                              pool ? FV_MODE_POOL : FV_MODE_INLINE, pool_size);

    if (r == 0)
        fv_dev_stats_mode_switch(dev, qidx);
    return r;
}
