/* SPDX-License-Identifier: GPL-2.0-or-later */
/*
 * Passthrough filesystem over a host directory (see passthrough.h).
 *
 * Rules every handler follows, because the guest is hostile:
 *  - Node ids and file handles come from the guest and are only ever used
 *    as keys into the tables of inode_table.c; unknown keys get EBADF.
 *  - A name from the guest is resolved with one *at() call relative to its
 *    parent's O_PATH fd, never followed if it is a symlink, and never
 *    contains '/'. "." and ".." are refused where they could climb out.
 *  - Data is reached by reopening an inode's O_PATH fd through
 *    /proc/self/fd/N (cfg->proc_self_fd), and only for regular files and
 *    directories: a FIFO would block a thread, a device node would reach
 *    host hardware.
 *  - Every request gets exactly one reply (none for FORGET).
 *
 * Helpers return 0 / -errno; handlers reply with a positive errno.
 */
#include "passthrough.h"

#include "inode_table.h"
#include "log.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <sched.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <sys/statvfs.h>
#include <sys/syscall.h>
#include <sys/xattr.h>
#include <unistd.h>

/*
 * Reads larger than this are refused rather than shortened: a short read
 * means EOF to the guest. The kernel never asks for more than max_pages
 * (at most 256 pages by default); the transport bounds replies anyway.
 */
#define LO_MAX_READ (32u << 20)
/* A short READDIR reply is fine: the guest just asks again. */
#define LO_MAX_DIRBUF (1u << 20)
/* Linux's XATTR_SIZE_MAX and XATTR_LIST_MAX. */
#define LO_XATTR_MAX 65536u

struct lo_data {
    struct lo_config cfg;
    struct lo_table *tab;
    double timeout;          /* entry and attr timeout */
    bool readdirplus;
    bool switch_cred;        /* running as root: create as the guest user */
};

static struct lo_data *lo_data(fuse_req_t req)
{
    return fuse_req_userdata(req);
}

/* ------------------------------------------------------------------ */
/* Per-thread state                                                    */

static __thread bool lo_thread_unshared;

/*
 * umask() and fchdir() are per fs_struct, which threads share by default.
 * The transport unshares every thread that runs requests, but a thread
 * must not act on that assumption blindly: a shared cwd would let one
 * thread's relative xattr path be resolved from another thread's cwd.
 */
static int lo_thread_prepare(void)
{
    if (lo_thread_unshared)
        return 0;
    if (unshare(CLONE_FS) < 0)
        return -errno;
    lo_thread_unshared = true;
    return 0;
}

struct lo_cred {
    uid_t euid;
    gid_t egid;
    mode_t umask;
    bool switched;
    bool umask_set;
};

/*
 * Become the requesting guest user for a creating call, so new files are
 * owned by it and the host applies its permissions. Only the calling
 * thread's ids change: the raw syscalls act on one thread, glibc's
 * wrappers would switch the whole process. The gid goes first, while we
 * still have CAP_SETGID. Guest root stays root and keeps
 * CAP_DAC_OVERRIDE; other users lose the effective capabilities until
 * lo_cred_restore().
 */
static int lo_cred_switch(fuse_req_t req, struct lo_data *lo,
                          struct lo_cred *old, bool set_umask)
{
    const struct fuse_ctx *ctx = fuse_req_ctx(req);
    int ret;

    memset(old, 0, sizeof(*old));
    ret = lo_thread_prepare();
    if (ret)
        return ret;
    if (lo->switch_cred) {
        /* -1 means "unchanged" to setresuid: it would keep us root. */
        if (ctx->uid == (uid_t)-1 || ctx->gid == (gid_t)-1)
            return -EINVAL;
        old->euid = geteuid();
        old->egid = getegid();
        if (ctx->gid != old->egid &&
            syscall(SYS_setresgid, -1, ctx->gid, -1) < 0)
            return -errno;
        if (ctx->uid != old->euid &&
            syscall(SYS_setresuid, -1, ctx->uid, -1) < 0) {
            ret = -errno;
            if (syscall(SYS_setresgid, -1, old->egid, -1) < 0) {
                vfs_err("passthrough: cannot restore gid: %s", strerror(errno));
                abort();
            }
            return ret;
        }
        old->switched = true;
    }
    if (set_umask) {
        old->umask = umask(ctx->umask);
        old->umask_set = true;
    }
    return 0;
}

static void lo_cred_restore(const struct lo_cred *old)
{
    int saved = errno;

    if (old->umask_set)
        umask(old->umask);
    if (old->switched) {
        /* A thread left running as a guest user would be a hole: die. */
        if (syscall(SYS_setresuid, -1, old->euid, -1) < 0 ||
            syscall(SYS_setresgid, -1, old->egid, -1) < 0) {
            vfs_err("passthrough: cannot restore credentials: %s",
                    strerror(errno));
            abort();
        }
    }
    errno = saved;
}

/* ------------------------------------------------------------------ */
/* Small helpers                                                       */

static bool lo_is_dot_or_dotdot(const char *name)
{
    return name[0] == '.' &&
           (name[1] == '\0' || (name[1] == '.' && name[2] == '\0'));
}

/* A single path component that cannot climb: not "", ".", ".." or "a/b". */
static bool lo_name_ok(const char *name)
{
    return name && name[0] && !strchr(name, '/') && !lo_is_dot_or_dotdot(name);
}

static void lo_fd_name(char buf[16], int fd)
{
    snprintf(buf, 16, "%d", fd);
}

/*
 * Open the inode behind @inode->fd with @flags. Goes through the magic
 * link /proc/self/fd/N, which resolves to that very inode (not through
 * it, even for a symlink), so no path from the share is walked again.
 * Callers have checked the file type.
 */
static int lo_reopen(struct lo_data *lo, int path_fd, int flags)
{
    char name[16];
    int fd;

    lo_fd_name(name, path_fd);
    fd = openat(lo->cfg.proc_self_fd, name, flags | O_CLOEXEC);
    return fd < 0 ? -errno : fd;
}

static int lo_stat_fd(int fd, struct stat *st)
{
    if (fstatat(fd, "", st, AT_EMPTY_PATH | AT_SYMLINK_NOFOLLOW) < 0)
        return -errno;
    return 0;
}

static struct lo_inode *lo_inode(struct lo_data *lo, fuse_ino_t ino)
{
    struct lo_inode *inode = lo_inode_get(lo->tab, ino);

    if (!inode)
        vfs_warn_ratelimited("passthrough: unknown node id %llu",
                             (unsigned long long)ino);
    return inode;
}

/* The open file @fi->fh, which must be of kind @is_dir and of node @ino. */
static struct lo_file *lo_file(struct lo_data *lo, fuse_ino_t ino,
                               const struct fuse_file_info *fi, bool is_dir)
{
    struct lo_file *f;

    if (!fi)
        return NULL;
    f = lo_file_get(lo->tab, fi->fh);
    if (f && (f->nodeid != ino || f->is_dir != is_dir)) {
        lo_file_put(f);
        f = NULL;
    }
    if (!f)
        vfs_warn_ratelimited("passthrough: bad file handle %llu for node %llu",
                             (unsigned long long)fi->fh,
                             (unsigned long long)ino);
    return f;
}

/* Error for opening an inode of @type as a file (not a directory). */
static int lo_open_type_err(mode_t type)
{
    switch (type) {
    case S_IFREG:
        return 0;
    case S_IFDIR:
        return -EISDIR;
    case S_IFLNK:
        return -ELOOP;
    default:
        return -EACCES;
    }
}

static void lo_fill_entry(struct lo_data *lo, struct fuse_entry_param *e,
                          const struct lo_inode *inode, const struct stat *st)
{
    memset(e, 0, sizeof(*e));
    e->ino = inode->nodeid;
    e->generation = 0; /* node ids are never reused */
    e->attr = *st;
    e->attr_timeout = lo->timeout;
    e->entry_timeout = lo->timeout;
}

/*
 * Look @name up in the directory @dirfd and account it as one guest
 * reference. The entry is copied out before our own reference is dropped:
 * a guest that guesses the next id could FORGET it right away.
 */
static int lo_do_lookup(struct lo_data *lo, int dirfd, const char *name,
                        struct fuse_entry_param *e)
{
    struct lo_inode *inode;
    struct stat st;
    int fd, ret;

    fd = openat(dirfd, name, O_PATH | O_NOFOLLOW | O_CLOEXEC);
    if (fd < 0)
        return -errno;
    ret = lo_stat_fd(fd, &st);
    if (ret) {
        close(fd);
        return ret;
    }
    inode = lo_inode_lookup_ref(lo->tab, fd, &st);
    if (!inode)
        return -ENOMEM;
    lo_fill_entry(lo, e, inode, &st);
    lo_inode_put(inode);
    return 0;
}

/* Reply an entry; if the guest never gets it, it will never forget it. */
static void lo_reply_entry(fuse_req_t req, struct lo_data *lo,
                           const struct fuse_entry_param *e)
{
    if (fuse_reply_entry(req, e) != 0 && e->ino)
        lo_inode_forget(lo->tab, e->ino, 1);
}

static void lo_set_open_cache(struct lo_data *lo, struct fuse_file_info *fi)
{
    fi->direct_io = lo->cfg.cache == LO_CACHE_NONE;
    fi->keep_cache = lo->cfg.cache == LO_CACHE_ALWAYS;
}

/*
 * Clear suid (and sgid if group-executable) when an unprivileged guest
 * user writes or truncates a file, as a local kernel would. We write with
 * CAP_FSETID, so the host keeps the bits, and the guest kernel does not
 * send the SETATTR that would clear them for FOPEN_DIRECT_IO writes
 * (cache=none) nor for open(O_TRUNC) with atomic_o_trunc. libfuse 3.14
 * hides FUSE_*_KILL_SUIDGID, so a guest uid other than 0 stands for
 * "lacks CAP_FSETID".
 */
static void lo_kill_priv(int fd)
{
    struct stat st;
    mode_t kill = 0;

    if (fstat(fd, &st) < 0)
        return;
    if (st.st_mode & S_ISUID)
        kill |= S_ISUID;
    if ((st.st_mode & (S_ISGID | S_IXGRP)) == (S_ISGID | S_IXGRP))
        kill |= S_ISGID;
    if (kill && fchmod(fd, st.st_mode & 07777 & ~kill) < 0)
        vfs_warn_ratelimited("passthrough: cannot clear suid/sgid: %s",
                             strerror(errno));
}

static bool lo_unprivileged(fuse_req_t req)
{
    return fuse_req_ctx(req)->uid != 0;
}

/*
 * Flags the host open may see. Creation, controlling-tty, path and
 * symlink flags are ours to decide; O_NONBLOCK has no meaning for the
 * regular files we open. With the writeback cache the kernel reads pages
 * of write-only files and positions appends itself, so O_WRONLY becomes
 * O_RDWR and O_APPEND must go (it would make pwrite ignore the offset).
 */
static int lo_open_flags(struct lo_data *lo, int flags)
{
    flags &= O_ACCMODE | O_APPEND | O_DIRECT | O_DSYNC | O_SYNC | O_NOATIME |
             O_TRUNC;
    if (!lo->cfg.allow_direct_io)
        flags &= ~O_DIRECT;
    if (lo->cfg.writeback) {
        if ((flags & O_ACCMODE) == O_WRONLY)
            flags = (flags & ~O_ACCMODE) | O_RDWR;
        flags &= ~O_APPEND;
    }
    return flags;
}

/* ------------------------------------------------------------------ */
/* Session                                                             */

static void lo_init(void *userdata, struct fuse_conn_info *conn)
{
    struct lo_data *lo = userdata;

    /* A new INIT (remount, reboot) starts from a clean table. */
    lo_table_clear_files(lo->tab);
    lo_table_clear_inodes(lo->tab);

#define LO_WANT(cond, cap)                                              \
    do {                                                                \
        if ((cond) && (conn->capable & (cap)))                          \
            conn->want |= (cap);                                        \
        else                                                            \
            conn->want &= ~(cap);                                       \
    } while (0)

    LO_WANT(lo->cfg.writeback, FUSE_CAP_WRITEBACK_CACHE);
    LO_WANT(lo->cfg.flock, FUSE_CAP_FLOCK_LOCKS);
    LO_WANT(lo->cfg.posix_lock, FUSE_CAP_POSIX_LOCKS);
    LO_WANT(lo->readdirplus, FUSE_CAP_READDIRPLUS);
    /* By default the guest picks per directory; an explicit "on" forces it. */
    LO_WANT(lo->readdirplus && lo->cfg.readdirplus < 0,
            FUSE_CAP_READDIRPLUS_AUTO);
    /* Node ids are not stable across restarts: no NFS export. */
    conn->want &= ~FUSE_CAP_EXPORT_SUPPORT;
    /*
     * libfuse enables HANDLE_KILLPRIV by default. We write as root with
     * CAP_FSETID, so the host would keep suid bits on a guest write;
     * leave clearing them to the guest kernel (it sends a SETATTR).
     */
    conn->want &= ~FUSE_CAP_HANDLE_KILLPRIV;
#undef LO_WANT

    /*
     * libfuse 3.14 has neither flag: it cannot pass FUSE_ATTR_SUBMOUNT in
     * attributes nor the KILL_SUIDGID request flags to us, so offering
     * them would promise what we cannot do.
     */
    if (lo->cfg.announce_submounts)
        vfs_warn("passthrough: announce_submounts needs a libfuse with "
                 "submount support; not offered");
    if (lo->cfg.killpriv_v2)
        vfs_warn("passthrough: killpriv_v2 needs a libfuse that passes "
                 "FUSE_*_KILL_SUIDGID; not offered");
}

static void lo_destroy(void *userdata)
{
    struct lo_data *lo = userdata;

    /* The guest forgot every inode and closed every file. */
    lo_table_clear_files(lo->tab);
    lo_table_clear_inodes(lo->tab);
}

/* ------------------------------------------------------------------ */
/* Names                                                               */

static void lo_lookup(fuse_req_t req, fuse_ino_t parent, const char *name)
{
    struct lo_data *lo = lo_data(req);
    struct fuse_entry_param e;
    struct lo_inode *dir;
    int ret;

    dir = lo_inode(lo, parent);
    if (!dir) {
        fuse_reply_err(req, EBADF);
        return;
    }
    if (dir->type != S_IFDIR) {
        ret = -ENOTDIR;
        goto out;
    }
    /*
     * The kernel sends neither "." nor ".." (no export support), but a
     * hostile guest may: "." is the directory itself, ".." of the root
     * is the root, anything else that climbs is refused.
     */
    if (strcmp(name, "..") == 0) {
        if (dir->nodeid != FUSE_ROOT_ID) {
            ret = -EINVAL;
            goto out;
        }
        name = ".";
    } else if (strcmp(name, ".") != 0 && !lo_name_ok(name)) {
        ret = -EINVAL;
        goto out;
    }

    ret = lo_do_lookup(lo, dir->fd, name, &e);
    if (ret == -ENOENT && lo->timeout > 0) {
        /* Negative entry: the guest caches the miss for the timeout. */
        memset(&e, 0, sizeof(e));
        e.entry_timeout = lo->timeout;
        ret = 0;
    }
out:
    lo_inode_put(dir);
    if (ret)
        fuse_reply_err(req, -ret);
    else
        lo_reply_entry(req, lo, &e);
}

static void lo_forget(fuse_req_t req, fuse_ino_t ino, uint64_t nlookup)
{
    lo_inode_forget(lo_data(req)->tab, ino, nlookup);
    fuse_reply_none(req);
}

static void lo_forget_multi(fuse_req_t req, size_t count,
                            struct fuse_forget_data *forgets)
{
    struct lo_data *lo = lo_data(req);

    for (size_t i = 0; i < count; i++)
        lo_inode_forget(lo->tab, forgets[i].ino, forgets[i].nlookup);
    fuse_reply_none(req);
}

/* Parent directory for a name-based operation; replies on failure. */
static struct lo_inode *lo_parent(fuse_req_t req, struct lo_data *lo,
                                  fuse_ino_t parent, const char *name)
{
    struct lo_inode *dir;

    if (!lo_name_ok(name)) {
        fuse_reply_err(req, EINVAL);
        return NULL;
    }
    dir = lo_inode(lo, parent);
    if (!dir) {
        fuse_reply_err(req, EBADF);
        return NULL;
    }
    if (dir->type != S_IFDIR) {
        lo_inode_put(dir);
        fuse_reply_err(req, ENOTDIR);
        return NULL;
    }
    return dir;
}

/* mknod, mkdir and symlink: create as the guest user, then look up. */
static void lo_make_node(fuse_req_t req, fuse_ino_t parent, const char *name,
                         mode_t mode, dev_t rdev, const char *link)
{
    struct lo_data *lo = lo_data(req);
    struct fuse_entry_param e;
    struct lo_inode *dir;
    struct lo_cred old;
    int ret;

    dir = lo_parent(req, lo, parent, name);
    if (!dir)
        return;

    ret = lo_cred_switch(req, lo, &old, !S_ISLNK(mode));
    if (ret)
        goto out;
    if (S_ISDIR(mode))
        ret = mkdirat(dir->fd, name, mode & 07777);
    else if (S_ISLNK(mode))
        ret = symlinkat(link, dir->fd, name);
    else
        ret = mknodat(dir->fd, name, mode, rdev);
    if (ret < 0)
        ret = -errno;
    lo_cred_restore(&old);
    if (ret)
        goto out;

    ret = lo_do_lookup(lo, dir->fd, name, &e);
out:
    lo_inode_put(dir);
    if (ret)
        fuse_reply_err(req, -ret);
    else
        lo_reply_entry(req, lo, &e);
}

static void lo_mknod(fuse_req_t req, fuse_ino_t parent, const char *name,
                     mode_t mode, dev_t rdev)
{
    mode_t type = mode & S_IFMT;

    /* Directories and symlinks have their own requests. */
    if (type == S_IFDIR || type == S_IFLNK) {
        fuse_reply_err(req, EINVAL);
        return;
    }
    lo_make_node(req, parent, name, mode, rdev, NULL);
}

static void lo_mkdir(fuse_req_t req, fuse_ino_t parent, const char *name,
                     mode_t mode)
{
    lo_make_node(req, parent, name, S_IFDIR | (mode & 07777), 0, NULL);
}

static void lo_symlink(fuse_req_t req, const char *link, fuse_ino_t parent,
                       const char *name)
{
    /* The target is stored, never resolved by us. */
    lo_make_node(req, parent, name, S_IFLNK, 0, link);
}

static void lo_link(fuse_req_t req, fuse_ino_t ino, fuse_ino_t newparent,
                    const char *newname)
{
    struct lo_data *lo = lo_data(req);
    struct fuse_entry_param e;
    struct lo_inode *inode, *dir;
    char procname[16];
    int ret;

    dir = lo_parent(req, lo, newparent, newname);
    if (!dir)
        return;
    inode = lo_inode(lo, ino);
    if (!inode) {
        lo_inode_put(dir);
        fuse_reply_err(req, EBADF);
        return;
    }
    if (inode->type == S_IFDIR) {
        ret = -EPERM;
        goto out;
    }

    /* AT_EMPTY_PATH needs CAP_DAC_READ_SEARCH; the magic link does not. */
    ret = linkat(inode->fd, "", dir->fd, newname, AT_EMPTY_PATH);
    if (ret < 0 && errno == ENOENT) {
        lo_fd_name(procname, inode->fd);
        ret = linkat(lo->cfg.proc_self_fd, procname, dir->fd, newname,
                     AT_SYMLINK_FOLLOW);
    }
    if (ret < 0) {
        ret = -errno;
        goto out;
    }
    ret = lo_do_lookup(lo, dir->fd, newname, &e);
out:
    lo_inode_put(inode);
    lo_inode_put(dir);
    if (ret)
        fuse_reply_err(req, -ret);
    else
        lo_reply_entry(req, lo, &e);
}

static void lo_remove(fuse_req_t req, fuse_ino_t parent, const char *name,
                      int flags)
{
    struct lo_data *lo = lo_data(req);
    struct lo_inode *dir;
    int ret;

    dir = lo_parent(req, lo, parent, name);
    if (!dir)
        return;
    ret = unlinkat(dir->fd, name, flags) < 0 ? errno : 0;
    lo_inode_put(dir);
    fuse_reply_err(req, ret);
}

static void lo_unlink(fuse_req_t req, fuse_ino_t parent, const char *name)
{
    lo_remove(req, parent, name, 0);
}

static void lo_rmdir(fuse_req_t req, fuse_ino_t parent, const char *name)
{
    lo_remove(req, parent, name, AT_REMOVEDIR);
}

static void lo_rename(fuse_req_t req, fuse_ino_t parent, const char *name,
                      fuse_ino_t newparent, const char *newname,
                      unsigned int flags)
{
    struct lo_data *lo = lo_data(req);
    struct lo_inode *dir, *newdir;
    int ret;

    if (flags & ~(RENAME_NOREPLACE | RENAME_EXCHANGE)) {
        fuse_reply_err(req, EINVAL);
        return;
    }
    if (!lo_name_ok(newname)) {
        fuse_reply_err(req, EINVAL);
        return;
    }
    dir = lo_parent(req, lo, parent, name);
    if (!dir)
        return;
    newdir = lo_parent(req, lo, newparent, newname);
    if (!newdir) {
        lo_inode_put(dir);
        return;
    }
    ret = renameat2(dir->fd, name, newdir->fd, newname, flags) < 0 ? errno : 0;
    lo_inode_put(newdir);
    lo_inode_put(dir);
    fuse_reply_err(req, ret);
}

/* ------------------------------------------------------------------ */
/* Attributes                                                          */

static void lo_getattr(fuse_req_t req, fuse_ino_t ino,
                       struct fuse_file_info *fi)
{
    struct lo_data *lo = lo_data(req);
    struct lo_inode *inode;
    struct stat st;
    int ret;

    inode = lo_inode(lo, ino);
    if (!inode) {
        fuse_reply_err(req, EBADF);
        return;
    }
    ret = lo_stat_fd(inode->fd, &st);
    lo_inode_put(inode);
    if (ret)
        fuse_reply_err(req, -ret);
    else
        fuse_reply_attr(req, &st, lo->timeout);
}

/* Truncate without a file handle: reopen for writing, regular files only. */
static int lo_truncate_inode(struct lo_data *lo, struct lo_inode *inode,
                             off_t size)
{
    int fd, ret;

    if (inode->type == S_IFDIR)
        return -EISDIR;
    if (inode->type != S_IFREG)
        return -EINVAL; /* never open a FIFO or device to truncate it */
    fd = lo_reopen(lo, inode->fd, O_WRONLY | O_NONBLOCK);
    if (fd < 0)
        return fd;
    ret = ftruncate(fd, size) < 0 ? -errno : 0;
    close(fd);
    return ret;
}

static int lo_set_times(struct lo_data *lo, struct lo_inode *inode,
                        struct lo_file *f, const struct stat *attr, int valid)
{
    struct timespec tv[2];
    char procname[16];

    tv[0].tv_sec = 0;
    tv[1].tv_sec = 0;
    if (valid & FUSE_SET_ATTR_ATIME_NOW)
        tv[0].tv_nsec = UTIME_NOW;
    else if (valid & FUSE_SET_ATTR_ATIME)
        tv[0] = attr->st_atim;
    else
        tv[0].tv_nsec = UTIME_OMIT;
    if (valid & FUSE_SET_ATTR_MTIME_NOW)
        tv[1].tv_nsec = UTIME_NOW;
    else if (valid & FUSE_SET_ATTR_MTIME)
        tv[1] = attr->st_mtim;
    else
        tv[1].tv_nsec = UTIME_OMIT;

    if (f)
        return futimens(f->fd, tv) < 0 ? -errno : 0;
    if (utimensat(inode->fd, "", tv, AT_EMPTY_PATH | AT_SYMLINK_NOFOLLOW) == 0)
        return 0;
    /* Kernels before 5.8 lack AT_EMPTY_PATH here; symlinks then fail. */
    if (errno != EINVAL || inode->type == S_IFLNK)
        return -errno;
    lo_fd_name(procname, inode->fd);
    return utimensat(lo->cfg.proc_self_fd, procname, tv, 0) < 0 ? -errno : 0;
}

static void lo_setattr(fuse_req_t req, fuse_ino_t ino, struct stat *attr,
                       int valid, struct fuse_file_info *fi)
{
    struct lo_data *lo = lo_data(req);
    struct lo_inode *inode;
    struct lo_file *f = NULL;
    char procname[16];
    struct stat st;
    int ret = 0;

    inode = lo_inode(lo, ino);
    if (!inode) {
        fuse_reply_err(req, EBADF);
        return;
    }
    if (fi) {
        f = lo_file(lo, ino, fi, false);
        if (!f) {
            ret = -EBADF;
            goto out;
        }
    }

    if (valid & FUSE_SET_ATTR_MODE) {
        mode_t mode = attr->st_mode & 07777;

        if (f) {
            ret = fchmod(f->fd, mode);
        } else if (inode->type == S_IFLNK) {
            errno = EOPNOTSUPP; /* Linux symlinks have no mode */
            ret = -1;
        } else {
            lo_fd_name(procname, inode->fd);
            ret = fchmodat(lo->cfg.proc_self_fd, procname, mode, 0);
        }
        if (ret < 0) {
            ret = -errno;
            goto out;
        }
    }
    if (valid & (FUSE_SET_ATTR_UID | FUSE_SET_ATTR_GID)) {
        uid_t uid = (valid & FUSE_SET_ATTR_UID) ? attr->st_uid : (uid_t)-1;
        gid_t gid = (valid & FUSE_SET_ATTR_GID) ? attr->st_gid : (gid_t)-1;

        if (fchownat(inode->fd, "", uid, gid,
                     AT_EMPTY_PATH | AT_SYMLINK_NOFOLLOW) < 0) {
            ret = -errno;
            goto out;
        }
    }
    if (valid & FUSE_SET_ATTR_SIZE) {
        if (f)
            ret = ftruncate(f->fd, attr->st_size) < 0 ? -errno : 0;
        else
            ret = lo_truncate_inode(lo, inode, attr->st_size);
        if (ret)
            goto out;
    }
    if (valid & (FUSE_SET_ATTR_ATIME | FUSE_SET_ATTR_MTIME |
                 FUSE_SET_ATTR_ATIME_NOW | FUSE_SET_ATTR_MTIME_NOW)) {
        ret = lo_set_times(lo, inode, f, attr, valid);
        if (ret)
            goto out;
    }
    /* FUSE_SET_ATTR_CTIME: the host kernel sets ctime on every change. */
    ret = lo_stat_fd(inode->fd, &st);
out:
    lo_file_put(f);
    lo_inode_put(inode);
    if (ret)
        fuse_reply_err(req, -ret);
    else
        fuse_reply_attr(req, &st, lo->timeout);
}

static void lo_readlink(fuse_req_t req, fuse_ino_t ino)
{
    struct lo_data *lo = lo_data(req);
    struct lo_inode *inode;
    char buf[PATH_MAX + 1];
    ssize_t res;
    int err = 0;

    inode = lo_inode(lo, ino);
    if (!inode) {
        fuse_reply_err(req, EBADF);
        return;
    }
    if (inode->type != S_IFLNK) {
        err = EINVAL;
    } else {
        res = readlinkat(inode->fd, "", buf, sizeof(buf) - 1);
        if (res < 0)
            err = errno;
        else if ((size_t)res >= sizeof(buf) - 1)
            err = ENAMETOOLONG;
        else
            buf[res] = '\0';
    }
    lo_inode_put(inode);
    if (err)
        fuse_reply_err(req, err);
    else
        fuse_reply_readlink(req, buf);
}

static void lo_access(fuse_req_t req, fuse_ino_t ino, int mask)
{
    struct lo_data *lo = lo_data(req);
    struct lo_inode *inode;
    struct lo_cred old;
    int err;

    inode = lo_inode(lo, ino);
    if (!inode) {
        fuse_reply_err(req, EBADF);
        return;
    }
    /* As the guest user: the daemon itself (root) would pass every check.
     * Only the effective ids switch, hence AT_EACCESS. */
    err = -lo_cred_switch(req, lo, &old, false);
    if (!err) {
        err = faccessat(inode->fd, "", mask & (R_OK | W_OK | X_OK),
                        AT_EMPTY_PATH | AT_EACCESS) < 0 ? errno : 0;
        lo_cred_restore(&old);
    }
    lo_inode_put(inode);
    fuse_reply_err(req, err);
}

static void lo_statfs(fuse_req_t req, fuse_ino_t ino)
{
    struct lo_data *lo = lo_data(req);
    struct lo_inode *inode;
    struct statvfs sv;
    int err;

    inode = lo_inode(lo, ino);
    if (!inode) {
        fuse_reply_err(req, EBADF);
        return;
    }
    err = fstatvfs(inode->fd, &sv) < 0 ? errno : 0;
    lo_inode_put(inode);
    if (err)
        fuse_reply_err(req, err);
    else
        fuse_reply_statfs(req, &sv);
}

/* ------------------------------------------------------------------ */
/* Files                                                               */

/* Publish @fd as an open file of @nodeid in @fi; the table owns @fd. */
static int lo_add_file(struct lo_data *lo, int fd, uint64_t nodeid,
                       bool is_dir, struct fuse_file_info *fi)
{
    struct lo_file *f = lo_file_new(fd, nodeid, is_dir);

    if (!f)
        return -ENOMEM;
    if (is_dir) {
        f->dp = fdopendir(fd);
        if (!f->dp) {
            int err = errno;

            f->fd = -1; /* still the caller's */
            lo_file_put(f);
            return -err;
        }
    }
    fi->fh = lo_file_insert(lo->tab, f);
    return 0;
}

/* Undo lo_add_file() when the guest never learned the handle. */
static void lo_drop_file(struct lo_data *lo, uint64_t fh)
{
    lo_file_put(lo_file_remove(lo->tab, fh));
}

static void lo_open(fuse_req_t req, fuse_ino_t ino, struct fuse_file_info *fi)
{
    struct lo_data *lo = lo_data(req);
    struct lo_inode *inode;
    int fd, ret;

    inode = lo_inode(lo, ino);
    if (!inode) {
        fuse_reply_err(req, EBADF);
        return;
    }
    ret = lo_open_type_err(inode->type);
    if (!ret && (fi->flags & O_ACCMODE) == O_ACCMODE)
        ret = -EINVAL;
    if (ret)
        goto out;
    fd = lo_reopen(lo, inode->fd, lo_open_flags(lo, fi->flags));
    if (fd < 0) {
        ret = fd;
        goto out;
    }
    if ((fi->flags & O_TRUNC) && lo_unprivileged(req))
        lo_kill_priv(fd);
    ret = lo_add_file(lo, fd, inode->nodeid, false, fi);
    if (ret) {
        close(fd);
        goto out;
    }
    lo_set_open_cache(lo, fi);
out:
    lo_inode_put(inode);
    if (ret)
        fuse_reply_err(req, -ret);
    else if (fuse_reply_open(req, fi) != 0)
        lo_drop_file(lo, fi->fh);
}

/*
 * Open (and maybe create) @name in @dir for CREATE. The file is created
 * with O_EXCL as the guest user; if it already exists and the guest did
 * not ask for O_EXCL, it is opened like OPEN would: through an O_PATH fd
 * and only if it is a regular file, so an existing FIFO, device or symlink
 * under that name is never opened by the host.
 */
static int lo_create_open(fuse_req_t req, struct lo_data *lo,
                          struct lo_inode *dir, const char *name, mode_t mode,
                          int guest_flags, int *fd_out, int *path_fd_out)
{
    int flags = lo_open_flags(lo, guest_flags);
    struct lo_cred old;
    struct stat st;
    int fd = -1, pfd = -1, ret;

    ret = lo_cred_switch(req, lo, &old, true);
    if (ret)
        return ret;
    fd = openat(dir->fd, name,
                flags | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC,
                mode & 07777);
    ret = fd < 0 ? -errno : 0;
    lo_cred_restore(&old);

    if (fd >= 0) {
        /* O_PATH twin of the new file, for the inode table. */
        pfd = lo_reopen(lo, fd, O_PATH);
        if (pfd < 0) {
            close(fd);
            return pfd;
        }
    } else {
        if (ret != -EEXIST || (guest_flags & O_EXCL))
            return ret;
        pfd = openat(dir->fd, name, O_PATH | O_NOFOLLOW | O_CLOEXEC);
        if (pfd < 0)
            return -errno;
        ret = lo_stat_fd(pfd, &st);
        if (!ret)
            ret = lo_open_type_err(st.st_mode & S_IFMT);
        if (!ret) {
            fd = lo_reopen(lo, pfd, flags);
            ret = fd < 0 ? fd : 0;
        }
        if (!ret && (flags & O_TRUNC) && lo_unprivileged(req))
            lo_kill_priv(fd);
        if (ret) {
            close(pfd);
            return ret;
        }
    }
    *fd_out = fd;
    *path_fd_out = pfd;
    return 0;
}

static void lo_create(fuse_req_t req, fuse_ino_t parent, const char *name,
                      mode_t mode, struct fuse_file_info *fi)
{
    struct lo_data *lo = lo_data(req);
    struct fuse_entry_param e;
    struct lo_inode *dir, *inode;
    struct stat st;
    int fd = -1, pfd = -1, ret;

    dir = lo_parent(req, lo, parent, name);
    if (!dir)
        return;
    if ((fi->flags & O_ACCMODE) == O_ACCMODE) {
        ret = -EINVAL;
        goto out;
    }
    ret = lo_create_open(req, lo, dir, name, mode, fi->flags, &fd, &pfd);
    if (ret)
        goto out;
    ret = lo_stat_fd(pfd, &st);
    if (ret) {
        close(pfd);
        close(fd);
        goto out;
    }
    inode = lo_inode_lookup_ref(lo->tab, pfd, &st);
    if (!inode) {
        close(fd);
        ret = -ENOMEM;
        goto out;
    }
    lo_fill_entry(lo, &e, inode, &st);
    lo_inode_put(inode);
    ret = lo_add_file(lo, fd, e.ino, false, fi);
    if (ret) {
        close(fd);
        lo_inode_forget(lo->tab, e.ino, 1);
        goto out;
    }
    lo_set_open_cache(lo, fi);
out:
    lo_inode_put(dir);
    if (ret) {
        fuse_reply_err(req, -ret);
    } else if (fuse_reply_create(req, &e, fi) != 0) {
        lo_drop_file(lo, fi->fh);
        lo_inode_forget(lo->tab, e.ino, 1);
    }
}

static void lo_read(fuse_req_t req, fuse_ino_t ino, size_t size, off_t off,
                    struct fuse_file_info *fi)
{
    struct lo_data *lo = lo_data(req);
    struct fuse_bufvec buf = FUSE_BUFVEC_INIT(size);
    struct lo_file *f;

    f = lo_file(lo, ino, fi, false);
    if (!f) {
        fuse_reply_err(req, EBADF);
        return;
    }
    if (size > LO_MAX_READ) {
        lo_file_put(f);
        fuse_reply_err(req, EINVAL);
        return;
    }
    if (lo->cfg.read_reply) {
        ssize_t r = lo->cfg.read_reply(f->fd, size, off);

        if (r != -EOPNOTSUPP) {
            lo_file_put(f);
            if (r < 0)
                fuse_reply_err(req, (int)-r);
            else
                fuse_reply_none(req);   /* sent: only free the request */
            return;
        }
    }
    /* libfuse preads into the reply; our reference keeps the fd open. */
    buf.buf[0].flags = FUSE_BUF_IS_FD | FUSE_BUF_FD_SEEK;
    buf.buf[0].fd = f->fd;
    buf.buf[0].pos = off;
    fuse_reply_data(req, &buf, 0);
    lo_file_put(f);
}

static void lo_write_buf(fuse_req_t req, fuse_ino_t ino,
                         struct fuse_bufvec *in_buf, off_t off,
                         struct fuse_file_info *fi)
{
    struct lo_data *lo = lo_data(req);
    struct fuse_bufvec out = FUSE_BUFVEC_INIT(fuse_buf_size(in_buf));
    struct lo_file *f;
    ssize_t res;

    f = lo_file(lo, ino, fi, false);
    if (!f) {
        fuse_reply_err(req, EBADF);
        return;
    }
    if (lo->cfg.cache == LO_CACHE_NONE && !fi->writepage &&
        lo_unprivileged(req))
        lo_kill_priv(f->fd);
    res = lo->cfg.write_data ? lo->cfg.write_data(f->fd, in_buf, off)
                             : -EOPNOTSUPP;
    if (res == -EOPNOTSUPP) {
        out.buf[0].flags = FUSE_BUF_IS_FD | FUSE_BUF_FD_SEEK;
        out.buf[0].fd = f->fd;
        out.buf[0].pos = off;
        res = fuse_buf_copy(&out, in_buf, 0);
    }
    lo_file_put(f);
    if (res < 0)
        fuse_reply_err(req, (int)-res);
    else
        fuse_reply_write(req, (size_t)res);
}

static void lo_plock_drop(struct lo_data *lo, uint64_t nodeid, uint64_t owner);

static void lo_flush(fuse_req_t req, fuse_ino_t ino, struct fuse_file_info *fi)
{
    struct lo_data *lo = lo_data(req);
    struct lo_file *f;
    int fd, err = 0;

    f = lo_file(lo, ino, fi, false);
    if (!f) {
        fuse_reply_err(req, EBADF);
        return;
    }
    /* A close() in the guest drops the closing process's POSIX locks. */
    if (lo->cfg.posix_lock)
        lo_plock_drop(lo, f->nodeid, fi->lock_owner);
    /* Closing a duplicate makes the host filesystem flush (NFS, FUSE). */
    fd = dup(f->fd);
    if (fd < 0 || close(fd) < 0)
        err = errno;
    lo_file_put(f);
    fuse_reply_err(req, err);
}

/* RELEASE and RELEASEDIR: the guest will not use @fi->fh again. */
static void lo_release_common(fuse_req_t req, fuse_ino_t ino,
                              struct fuse_file_info *fi, bool is_dir)
{
    struct lo_data *lo = lo_data(req);
    struct lo_file *f;

    f = lo_file(lo, ino, fi, is_dir);
    if (!f) {
        fuse_reply_err(req, EBADF);
        return;
    }
    /* A concurrent RELEASE of the same handle may have won: fine. */
    lo_file_put(lo_file_remove(lo->tab, fi->fh));
    /* In-flight requests may still hold the fd open: unlock explicitly. */
    if (!is_dir && fi->flock_release)
        flock(f->fd, LOCK_UN);
    lo_file_put(f);
    fuse_reply_err(req, 0);
}

static void lo_release(fuse_req_t req, fuse_ino_t ino,
                       struct fuse_file_info *fi)
{
    lo_release_common(req, ino, fi, false);
}

static void lo_fsync(fuse_req_t req, fuse_ino_t ino, int datasync,
                     struct fuse_file_info *fi)
{
    struct lo_data *lo = lo_data(req);
    struct lo_file *f;
    int ret;

    f = lo_file(lo, ino, fi, false);
    if (!f) {
        fuse_reply_err(req, EBADF);
        return;
    }
    ret = datasync ? fdatasync(f->fd) : fsync(f->fd);
    lo_file_put(f);
    fuse_reply_err(req, ret < 0 ? errno : 0);
}

static void lo_fallocate(fuse_req_t req, fuse_ino_t ino, int mode,
                         off_t offset, off_t length, struct fuse_file_info *fi)
{
    struct lo_data *lo = lo_data(req);
    struct lo_file *f;
    int err;

    f = lo_file(lo, ino, fi, false);
    if (!f) {
        fuse_reply_err(req, EBADF);
        return;
    }
    err = fallocate(f->fd, mode, offset, length) < 0 ? errno : 0;
    lo_file_put(f);
    fuse_reply_err(req, err);
}

static void lo_lseek(fuse_req_t req, fuse_ino_t ino, off_t off, int whence,
                     struct fuse_file_info *fi)
{
    struct lo_data *lo = lo_data(req);
    struct lo_file *f;
    off_t res;

    /* Only these need the host; the guest kernel does the rest itself. */
    if (whence != SEEK_DATA && whence != SEEK_HOLE) {
        fuse_reply_err(req, EINVAL);
        return;
    }
    f = lo_file(lo, ino, fi, false);
    if (!f) {
        fuse_reply_err(req, EBADF);
        return;
    }
    /* Moves the shared offset, which our positional I/O never uses. */
    res = lseek(f->fd, off, whence);
    lo_file_put(f);
    if (res < 0)
        fuse_reply_err(req, errno);
    else
        fuse_reply_lseek(req, res);
}

static void lo_copy_file_range(fuse_req_t req, fuse_ino_t ino_in,
                               off_t off_in, struct fuse_file_info *fi_in,
                               fuse_ino_t ino_out, off_t off_out,
                               struct fuse_file_info *fi_out, size_t len,
                               int flags)
{
    struct lo_data *lo = lo_data(req);
    struct lo_file *in, *out;
    ssize_t res;

    in = lo_file(lo, ino_in, fi_in, false);
    out = lo_file(lo, ino_out, fi_out, false);
    if (!in || !out) {
        lo_file_put(in);
        lo_file_put(out);
        fuse_reply_err(req, EBADF);
        return;
    }
    res = copy_file_range(in->fd, &off_in, out->fd, &off_out, len,
                          (unsigned int)flags);
    lo_file_put(in);
    lo_file_put(out);
    if (res < 0)
        fuse_reply_err(req, errno);
    else
        fuse_reply_write(req, (size_t)res);
}

/* ------------------------------------------------------------------ */
/* Locks                                                               */

/*
 * The host file description that carries @owner's POSIX locks on @inode
 * (created on first use), returned as a dup so a concurrent FLUSH can drop
 * the owner's entry while a SETLKW still waits on it: the description and
 * its locks then live until the caller closes the dup. -errno on failure.
 */
static int lo_plock_fd(struct lo_data *lo, struct lo_inode *inode,
                       uint64_t owner)
{
    struct lo_plock *pl;
    int fd;

    pthread_mutex_lock(&inode->plock_lock);
    for (pl = inode->plocks; pl; pl = pl->next)
        if (pl->owner == owner)
            break;
    if (!pl) {
        /* Read and write locks need the matching access mode. */
        fd = lo_reopen(lo, inode->fd, O_RDWR);
        if (fd < 0)
            fd = lo_reopen(lo, inode->fd, O_RDONLY);
        if (fd < 0)
            fd = lo_reopen(lo, inode->fd, O_WRONLY);
        pl = fd < 0 ? NULL : malloc(sizeof(*pl));
        if (!pl) {
            pthread_mutex_unlock(&inode->plock_lock);
            if (fd >= 0)
                close(fd);
            return fd < 0 ? fd : -ENOMEM;
        }
        pl->owner = owner;
        pl->fd = fd;
        pl->next = inode->plocks;
        inode->plocks = pl;
    }
    fd = fcntl(pl->fd, F_DUPFD_CLOEXEC, 0);
    pthread_mutex_unlock(&inode->plock_lock);
    return fd < 0 ? -errno : fd;
}

/* FLUSH: the owner closed a file of the inode; POSIX drops its locks. */
static void lo_plock_drop(struct lo_data *lo, uint64_t nodeid, uint64_t owner)
{
    struct lo_inode *inode = lo_inode(lo, nodeid);
    struct lo_plock **pp, *pl = NULL;

    if (!inode)
        return;
    pthread_mutex_lock(&inode->plock_lock);
    for (pp = &inode->plocks; *pp; pp = &(*pp)->next) {
        if ((*pp)->owner == owner) {
            pl = *pp;
            *pp = pl->next;
            break;
        }
    }
    pthread_mutex_unlock(&inode->plock_lock);
    if (pl) {
        close(pl->fd);
        free(pl);
    }
    lo_inode_put(inode);
}

/*
 * GETLK / SETLK / SETLKW: OFD locks on the lock owner's own description
 * of the inode (lo_plock_fd), so they behave like the guest process's
 * POSIX locks. A SETLKW may block for as long as another holder keeps
 * the lock: the transport runs it on a side thread for that reason.
 */
static void lo_lock_common(fuse_req_t req, fuse_ino_t ino,
                           struct fuse_file_info *fi, struct flock *lock,
                           int cmd)
{
    struct lo_data *lo = lo_data(req);
    struct lo_file *f;
    struct lo_inode *inode;
    int fd, err = 0;

    if (!lo->cfg.posix_lock) {
        fuse_reply_err(req, ENOSYS);
        return;
    }
    /* The handle must be one of ours, opened through this inode. */
    f = lo_file(lo, ino, fi, false);
    if (!f) {
        fuse_reply_err(req, EBADF);
        return;
    }
    lo_file_put(f);
    inode = lo_inode(lo, ino);
    if (!inode) {
        fuse_reply_err(req, EBADF);
        return;
    }
    fd = lo_plock_fd(lo, inode, fi->lock_owner);
    lo_inode_put(inode);
    if (fd < 0) {
        fuse_reply_err(req, -fd);
        return;
    }
    lock->l_pid = 0; /* OFD locks require it */
    /* No retry on EINTR: the transport interrupts a blocked wait only when
     * the queue stops (guest reboot, disconnect), and must not hang there. */
    if (fcntl(fd, cmd, lock) < 0)
        err = errno;
    close(fd);
    if (cmd != F_OFD_GETLK || err) {
        fuse_reply_err(req, err);
        return;
    }
    /* A host lock holder's pid means nothing to the guest: hide it. */
    lock->l_pid = 0;
    fuse_reply_lock(req, lock);
}

static void lo_getlk(fuse_req_t req, fuse_ino_t ino, struct fuse_file_info *fi,
                     struct flock *lock)
{
    lo_lock_common(req, ino, fi, lock, F_OFD_GETLK);
}

static void lo_setlk(fuse_req_t req, fuse_ino_t ino, struct fuse_file_info *fi,
                     struct flock *lock, int sleep)
{
    lo_lock_common(req, ino, fi, lock, sleep ? F_OFD_SETLKW : F_OFD_SETLK);
}

static void lo_flock(fuse_req_t req, fuse_ino_t ino, struct fuse_file_info *fi,
                     int op)
{
    struct lo_data *lo = lo_data(req);
    struct lo_file *f;
    int ret, err = 0;

    if (!lo->cfg.flock) {
        fuse_reply_err(req, ENOSYS);
        return;
    }
    if (op & ~(LOCK_SH | LOCK_EX | LOCK_UN | LOCK_NB)) {
        fuse_reply_err(req, EINVAL);
        return;
    }
    f = lo_file(lo, ino, fi, false);
    if (!f) {
        fuse_reply_err(req, EBADF);
        return;
    }
    ret = flock(f->fd, op); /* EINTR: see lo_setlk */
    if (ret < 0)
        err = errno;
    lo_file_put(f);
    fuse_reply_err(req, err);
}

/* ------------------------------------------------------------------ */
/* Directories                                                         */

static void lo_opendir(fuse_req_t req, fuse_ino_t ino,
                       struct fuse_file_info *fi)
{
    struct lo_data *lo = lo_data(req);
    struct lo_inode *inode;
    int fd, ret;

    inode = lo_inode(lo, ino);
    if (!inode) {
        fuse_reply_err(req, EBADF);
        return;
    }
    if (inode->type != S_IFDIR) {
        ret = -ENOTDIR;
        goto out;
    }
    fd = lo_reopen(lo, inode->fd, O_RDONLY | O_DIRECTORY);
    if (fd < 0) {
        ret = fd;
        goto out;
    }
    ret = lo_add_file(lo, fd, inode->nodeid, true, fi);
    if (ret) {
        close(fd);
        goto out;
    }
    fi->cache_readdir = lo->cfg.cache == LO_CACHE_ALWAYS;
out:
    lo_inode_put(inode);
    if (ret)
        fuse_reply_err(req, -ret);
    else if (fuse_reply_open(req, fi) != 0)
        lo_drop_file(lo, fi->fh);
}

/* Node ids handed out in one READDIRPLUS reply, to undo if it is lost. */
struct lo_idlist {
    uint64_t *ids;
    size_t n, cap;
};

static bool lo_idlist_add(struct lo_idlist *l, uint64_t id)
{
    if (l->n == l->cap) {
        size_t cap = l->cap ? l->cap * 2 : 64;
        uint64_t *ids = realloc(l->ids, cap * sizeof(*ids));

        if (!ids)
            return false;
        l->ids = ids;
        l->cap = cap;
    }
    l->ids[l->n++] = id;
    return true;
}

/*
 * One entry of a READDIRPLUS reply. "." and ".." carry no node (ino 0):
 * the guest then creates no dentry, and ".." of the root is never looked
 * up on the host. Returns 0, -ENOENT (vanished since readdir: skip it) or
 * another -errno.
 */
static int lo_dirent_plus(struct lo_data *lo, int dirfd,
                          const struct dirent *de, struct fuse_entry_param *e)
{
    if (lo_is_dot_or_dotdot(de->d_name)) {
        memset(e, 0, sizeof(*e));
        e->attr.st_ino = de->d_ino;
        e->attr.st_mode = (mode_t)de->d_type << 12;
        return 0;
    }
    return lo_do_lookup(lo, dirfd, de->d_name, e);
}

static void lo_do_readdir(fuse_req_t req, fuse_ino_t ino, size_t size,
                          off_t off, struct fuse_file_info *fi, bool plus)
{
    struct lo_data *lo = lo_data(req);
    struct lo_idlist ids = { 0 };
    struct lo_file *f;
    size_t rem;
    char *buf, *p;
    int err = 0;

    f = lo_file(lo, ino, fi, true);
    if (!f) {
        fuse_reply_err(req, EBADF);
        return;
    }
    if (size > LO_MAX_DIRBUF)
        size = LO_MAX_DIRBUF;
    buf = malloc(size ? size : 1);
    if (!buf) {
        lo_file_put(f);
        fuse_reply_err(req, ENOMEM);
        return;
    }
    p = buf;
    rem = size;

    pthread_mutex_lock(&f->dir_lock);
    if (off != f->dir_offset) {
        seekdir(f->dp, off);
        f->dir_entry = NULL;
        f->dir_offset = off;
    }
    for (;;) {
        struct fuse_entry_param e;
        struct dirent *de;
        size_t entsize;

        if (!f->dir_entry) {
            errno = 0;
            f->dir_entry = readdir(f->dp);
            if (!f->dir_entry) {
                err = errno; /* 0 at the end of the directory */
                break;
            }
        }
        de = f->dir_entry;
        if (plus) {
            int ret = lo_dirent_plus(lo, dirfd(f->dp), de, &e);

            if (ret == -ENOENT) {
                f->dir_entry = NULL;
                f->dir_offset = de->d_off;
                continue;
            }
            if (ret) {
                err = -ret;
                break;
            }
            entsize = fuse_add_direntry_plus(req, p, rem, de->d_name, &e,
                                             de->d_off);
            if (entsize > rem || (e.ino && !lo_idlist_add(&ids, e.ino))) {
                /* Does not fit: keep the entry for the next call. */
                if (e.ino)
                    lo_inode_forget(lo->tab, e.ino, 1);
                break;
            }
        } else {
            struct stat st = {
                .st_ino = de->d_ino,
                .st_mode = (mode_t)de->d_type << 12,
            };

            entsize = fuse_add_direntry(req, p, rem, de->d_name, &st,
                                        de->d_off);
            if (entsize > rem)
                break;
        }
        p += entsize;
        rem -= entsize;
        f->dir_entry = NULL;
        f->dir_offset = de->d_off;
    }
    pthread_mutex_unlock(&f->dir_lock);
    lo_file_put(f);

    /* An error after some entries: send those, the guest asks again. */
    if (err && rem == size) {
        fuse_reply_err(req, err);
    } else if (fuse_reply_buf(req, buf, size - rem) != 0) {
        for (size_t i = 0; i < ids.n; i++)
            lo_inode_forget(lo->tab, ids.ids[i], 1);
    }
    free(ids.ids);
    free(buf);
}

static void lo_readdir(fuse_req_t req, fuse_ino_t ino, size_t size, off_t off,
                       struct fuse_file_info *fi)
{
    lo_do_readdir(req, ino, size, off, fi, false);
}

static void lo_readdirplus(fuse_req_t req, fuse_ino_t ino, size_t size,
                           off_t off, struct fuse_file_info *fi)
{
    lo_do_readdir(req, ino, size, off, fi, true);
}

static void lo_releasedir(fuse_req_t req, fuse_ino_t ino,
                          struct fuse_file_info *fi)
{
    lo_release_common(req, ino, fi, true);
}

static void lo_fsyncdir(fuse_req_t req, fuse_ino_t ino, int datasync,
                        struct fuse_file_info *fi)
{
    struct lo_data *lo = lo_data(req);
    struct lo_file *f;
    int ret;

    f = lo_file(lo, ino, fi, true);
    if (!f) {
        fuse_reply_err(req, EBADF);
        return;
    }
    ret = datasync ? fdatasync(dirfd(f->dp)) : fsync(dirfd(f->dp));
    lo_file_put(f);
    fuse_reply_err(req, ret < 0 ? errno : 0);
}

/* ------------------------------------------------------------------ */
/* Extended attributes                                                 */

/*
 * fgetxattr() and friends refuse O_PATH fds, and opening the inode would
 * block on a FIFO. Instead, with the thread's own cwd at /proc/self/fd,
 * the path "N" names the inode itself (the magic link is not followed
 * any further, even for a symlink). Fills @name; replies on failure.
 */
static struct lo_inode *lo_xattr_inode(fuse_req_t req, fuse_ino_t ino,
                                       char name[16])
{
    struct lo_data *lo = lo_data(req);
    struct lo_inode *inode;
    int ret;

    if (!lo->cfg.xattr) {
        /* ENOSYS makes the guest kernel stop asking. */
        fuse_reply_err(req, ENOSYS);
        return NULL;
    }
    inode = lo_inode(lo, ino);
    if (!inode) {
        fuse_reply_err(req, EBADF);
        return NULL;
    }
    ret = lo_thread_prepare();
    if (!ret && fchdir(lo->cfg.proc_self_fd) < 0)
        ret = -errno;
    if (ret) {
        lo_inode_put(inode);
        fuse_reply_err(req, -ret);
        return NULL;
    }
    lo_fd_name(name, inode->fd);
    return inode;
}

static void lo_setxattr(fuse_req_t req, fuse_ino_t ino, const char *name,
                        const char *value, size_t size, int flags)
{
    struct lo_inode *inode;
    char path[16];
    int err;

    if (flags & ~(XATTR_CREATE | XATTR_REPLACE)) {
        fuse_reply_err(req, EINVAL);
        return;
    }
    inode = lo_xattr_inode(req, ino, path);
    if (!inode)
        return;
    err = setxattr(path, name, value, size, flags) < 0 ? errno : 0;
    lo_inode_put(inode);
    fuse_reply_err(req, err);
}

/* Shared by getxattr and listxattr: @size 0 asks for the needed size. */
static void lo_reply_xattr_result(fuse_req_t req, ssize_t res, int err,
                                  const char *buf, size_t size)
{
    if (res < 0)
        fuse_reply_err(req, err);
    else if (size == 0)
        fuse_reply_xattr(req, (size_t)res);
    else
        fuse_reply_buf(req, buf, (size_t)res);
}

/* GETXATTR (name != NULL) and LISTXATTR share everything but the call. */
static void lo_xattr_query(fuse_req_t req, fuse_ino_t ino, const char *name,
                           size_t size)
{
    struct lo_inode *inode;
    char path[16];
    char *buf = NULL;
    ssize_t res;
    int err;

    if (size > LO_XATTR_MAX)
        size = LO_XATTR_MAX;
    if (size) {
        buf = malloc(size);
        if (!buf) {
            fuse_reply_err(req, ENOMEM);
            return;
        }
    }
    inode = lo_xattr_inode(req, ino, path);
    if (!inode) {
        free(buf);
        return;
    }
    res = name ? getxattr(path, name, buf, size) : listxattr(path, buf, size);
    err = errno;
    lo_inode_put(inode);
    lo_reply_xattr_result(req, res, err, buf, size);
    free(buf);
}

static void lo_getxattr(fuse_req_t req, fuse_ino_t ino, const char *name,
                        size_t size)
{
    lo_xattr_query(req, ino, name, size);
}

static void lo_listxattr(fuse_req_t req, fuse_ino_t ino, size_t size)
{
    lo_xattr_query(req, ino, NULL, size);
}

static void lo_removexattr(fuse_req_t req, fuse_ino_t ino, const char *name)
{
    struct lo_inode *inode;
    char path[16];
    int err;

    inode = lo_xattr_inode(req, ino, path);
    if (!inode)
        return;
    err = removexattr(path, name) < 0 ? errno : 0;
    lo_inode_put(inode);
    fuse_reply_err(req, err);
}

/* ------------------------------------------------------------------ */

struct lo_data *lo_data_new(const struct lo_config *cfg)
{
    struct lo_data *lo;
    struct stat st;
    int fd, saved;

    if (!cfg || !cfg->root || cfg->proc_self_fd < 0) {
        errno = EINVAL;
        return NULL;
    }
    fd = open(cfg->root, O_PATH | O_DIRECTORY | O_CLOEXEC);
    if (fd < 0)
        return NULL;
    if (fstat(fd, &st) < 0) {
        saved = errno;
        close(fd);
        errno = saved;
        return NULL;
    }
    lo = calloc(1, sizeof(*lo));
    if (lo)
        lo->tab = lo_table_new();
    if (!lo || !lo->tab) {
        free(lo);
        close(fd);
        errno = ENOMEM;
        return NULL;
    }
    lo->cfg = *cfg;
    lo->cfg.root = NULL; /* not ours to keep */
    lo_table_set_root(lo->tab, fd, &st);

    if (cfg->timeout_set)
        lo->timeout = cfg->timeout > 0 ? cfg->timeout : 0;
    else if (cfg->cache == LO_CACHE_NONE)
        lo->timeout = 0;
    else if (cfg->cache == LO_CACHE_ALWAYS)
        lo->timeout = 86400.0;
    else
        lo->timeout = 1.0;
    lo->readdirplus = cfg->readdirplus < 0 ? cfg->cache != LO_CACHE_NONE
                                           : cfg->readdirplus != 0;
    lo->switch_cred = geteuid() == 0;
    return lo;
}

void lo_data_free(struct lo_data *lo)
{
    if (!lo)
        return;
    lo_table_free(lo->tab);
    free(lo);
}

const struct fuse_lowlevel_ops lo_ops = {
    .init = lo_init,
    .destroy = lo_destroy,
    .lookup = lo_lookup,
    .forget = lo_forget,
    .forget_multi = lo_forget_multi,
    .getattr = lo_getattr,
    .setattr = lo_setattr,
    .readlink = lo_readlink,
    .mknod = lo_mknod,
    .mkdir = lo_mkdir,
    .unlink = lo_unlink,
    .rmdir = lo_rmdir,
    .symlink = lo_symlink,
    .rename = lo_rename,
    .link = lo_link,
    .open = lo_open,
    .read = lo_read,
    .write_buf = lo_write_buf,
    .flush = lo_flush,
    .release = lo_release,
    .fsync = lo_fsync,
    .opendir = lo_opendir,
    .readdir = lo_readdir,
    .readdirplus = lo_readdirplus,
    .releasedir = lo_releasedir,
    .fsyncdir = lo_fsyncdir,
    .statfs = lo_statfs,
    .setxattr = lo_setxattr,
    .getxattr = lo_getxattr,
    .listxattr = lo_listxattr,
    .removexattr = lo_removexattr,
    .access = lo_access,
    .create = lo_create,
    .getlk = lo_getlk,
    .setlk = lo_setlk,
    .flock = lo_flock,
    .fallocate = lo_fallocate,
    .lseek = lo_lseek,
    .copy_file_range = lo_copy_file_range,
};
