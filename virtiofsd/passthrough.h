/* SPDX-License-Identifier: GPL-2.0-or-later */
/*
 * Passthrough filesystem: fuse_lowlevel_ops over a host directory.
 *
 * Inodes are O_PATH fds; every operation is an *at() call relative to an
 * inode fd, so no name from the guest is ever resolved from the host root,
 * and "..", absolute names and symlinks cannot escape the share. Node ids
 * and file handles given to the guest are opaque table keys, validated on
 * every use (a guest may send any number).
 */
#ifndef VFS_PASSTHROUGH_H
#define VFS_PASSTHROUGH_H

#include <stdbool.h>
#include <sys/types.h>

#define FUSE_USE_VERSION 34
#include <fuse_lowlevel.h>

enum lo_cache_mode {
    LO_CACHE_NONE,
    LO_CACHE_AUTO,
    LO_CACHE_ALWAYS,
};

struct lo_config {
    /* Directory to export, opened O_PATH by lo_data_new(): "/" after the
     * namespace/chroot sandbox, the source path with sandbox=none. */
    const char *root;
    /* fd of a /proc/self/fd directory (reopen O_PATH fds), owned by caller */
    int proc_self_fd;
    enum lo_cache_mode cache;
    double timeout;          /* entry/attr timeout, seconds */
    bool timeout_set;        /* -o timeout= given; else derived from cache */
    bool xattr;
    bool posix_lock;
    bool flock;
    bool writeback;
    bool allow_direct_io;
    int readdirplus;         /* -1 default (on unless cache=none), 0, 1 */
    bool announce_submounts;
    bool killpriv_v2;        /* offer FUSE_HANDLE_KILLPRIV_V2 */
    /*
     * Optional: send the READ reply being run by the calling thread
     * straight from @fd (the device layer's fv_reply_read_fd()). Returns
     * the bytes read with the reply sent, -EOPNOTSUPP to reply the usual
     * way, or another -errno (nothing sent) for an error reply. NULL: the
     * usual way (libfuse reads into a buffer and the transport copies it).
     */
    ssize_t (*read_reply)(int fd, size_t size, off_t off);
    /*
     * Optional: write the data of the WRITE being run by the calling
     * thread (the device layer's fv_write_data(), which may have left it
     * in guest memory). Returns the bytes written, -EOPNOTSUPP to write
     * @src the usual way, or another -errno for an error reply.
     */
    ssize_t (*write_data)(int fd, const struct fuse_bufvec *src, off_t off);
};

struct lo_data;

/* Returns NULL and sets errno on failure (root not a directory, etc.). */
struct lo_data *lo_data_new(const struct lo_config *cfg);
void lo_data_free(struct lo_data *lo);

extern const struct fuse_lowlevel_ops lo_ops;

#endif
