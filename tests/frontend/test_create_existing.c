/* SPDX-License-Identifier: GPL-2.0-or-later */
/*
 * CREATE without O_EXCL of a name that already exists opens the existing
 * file (a guest sends this when its negative dentry is stale, e.g. the host
 * created the file meanwhile) and leaves its content alone unless O_TRUNC.
 * Upstream QEMU 7.2 virtiofsd aborts here (FORTIFY_SOURCE: openat with
 * O_CREAT and no mode in lo_create's fallback open), so its meson entry is
 * should_fail.
 */
#include "harness.h"

#include <errno.h>
#include <fcntl.h>
#include <string.h>
#include <unistd.h>

static struct harness H;

int main(int argc, char **argv)
{
    int rc = harness_start(&H, argc, argv, NULL);
    if (rc != T_PASS) {
        return rc;
    }
    char p[512];
    snprintf(p, sizeof(p), "%s/existing", H.share);
    int fd = open(p, O_WRONLY | O_CREAT | O_TRUNC, 0644);
    CHECK(fd >= 0 && write(fd, "hello", 5) == 5, "host file");
    close(fd);

    struct fuse_entry_out e;
    struct fuse_open_out o;
    int ret = fc_create(H.req, FUSE_ROOT_ID, "existing", O_RDWR | O_CREAT, 0100644, &e, &o);
    CHECK_EQ(ret, 0);
    if (ret == 0) {
        char buf[16];
        CHECK_EQ(fc_read(H.req, e.nodeid, o.fh, 0, buf, sizeof(buf)), 5);
        CHECK(!memcmp(buf, "hello", 5), "content kept");
        CHECK_EQ(fc_release(H.req, e.nodeid, o.fh, O_RDWR), 0);
        CHECK_EQ(fc_forget(H.hiprio, e.nodeid, 1), 0);
    }
    struct fuse_attr_out ao;
    CHECK_EQ(fc_getattr(H.req, FUSE_ROOT_ID, &ao), 0);
    rc = harness_stop(&H);
    return t_failures ? T_FAIL : rc;
}
