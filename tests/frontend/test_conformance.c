/* SPDX-License-Identifier: GPL-2.0-or-later */
/*
 * Every opcode the passthrough implements gives, through the daemon, the
 * result the same operation gives directly on the host directory:
 * attributes, data, listings, xattr values, lock state and errno
 * (ENOENT, EEXIST, ENOTEMPTY, ENOTDIR, EISDIR, EACCES, ENODATA, ELOOP...).
 *
 * The daemon runs with -o xattr -o posix_lock -o flock (added through
 * $VUF_EXTRA_ARGS).  Upstream (QEMU 7.2 virtiofsd) runs the subset it
 * supports; every check it cannot pass is skipped explicitly with
 * UPSTREAM_SKIP(reason), which prints the reason.
 */
#include "harness.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <grp.h>
#include <limits.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <sys/statvfs.h>
#include <sys/wait.h>
#include <sys/xattr.h>
#include <time.h>
#include <unistd.h>

#define DAEMON_OPTS "-o xattr -o posix_lock -o flock"
#define USER_ID 1000u
#define LK_EOF 0x7fffffffffffffffull   /* OFFSET_MAX: "to the end of the file" */

static struct harness H;
static int upstream_skips;
/* The request queue in use: the parts take turns over all of them. */
static fc_chan *chan;

/* A check upstream 7.2 cannot pass: say so, never skip silently. */
#define UPSTREAM_SKIP(why)                                                    \
    (H.upstream ? (fprintf(stderr, "upstream skip %s:%d: %s\n", __FILE__,     \
                           __LINE__, why),                                    \
                   upstream_skips++, true)                                    \
                : false)

/* "0", "-ENOENT", ...: for messages. */
static const char *err_name(int e)
{
    static char buf[4][48];
    static unsigned k;
    char *b = buf[k++ % 4];
    const char *n = e < 0 ? strerrorname_np(-e) : NULL;
    if (e == 0) {
        return "0";
    }
    snprintf(b, 48, e < 0 ? "-%s" : "%s", n ? n : e < 0 ? "?" : "positive");
    return b;
}

/* FUSE result (0 / -errno) equals the host's (0 / -errno). */
#define CHECK_SAME(fuse, host)                                                \
    do {                                                                      \
        long long f_ = (fuse), h_ = (host);                                   \
        CHECK(f_ == h_, "%s: fuse %s (%lld), host %s (%lld)", #fuse,          \
              err_name((int)f_), f_, err_name((int)h_), h_);                  \
    } while (0)
#define CHECK_ERR(ret, e)                                                     \
    do {                                                                      \
        long long r_ = (ret);                                                 \
        CHECK(r_ == -(e), "got %s (%lld), want %s", err_name((int)r_), r_,    \
              err_name(-(e)));                                                \
    } while (0)
#define HOST(expr) ((expr) < 0 ? -errno : 0)

/* ------------------------------------------------------------------ */
/* Lookup ledger: every entry the daemon hands out is one lookup to     */
/* forget, exactly (upstream aborts on forgetting more than it gave).  */

static struct {
    uint64_t nodeid, n;
} held[1024];
static unsigned nheld;

static void hold(uint64_t nodeid)
{
    if (!nodeid) {
        return;   /* negative entry */
    }
    for (unsigned i = 0; i < nheld; i++) {
        if (held[i].nodeid == nodeid) {
            held[i].n++;
            return;
        }
    }
    if (nheld < sizeof(held) / sizeof(held[0])) {
        held[nheld].nodeid = nodeid;
        held[nheld++].n = 1;
    } else {
        CHECK(0, "ledger full");
    }
}

/* FORGET one lookup through the hiprio queue, as the guest does. */
static void forget1(uint64_t nodeid)
{
    for (unsigned i = 0; i < nheld; i++) {
        if (held[i].nodeid == nodeid && held[i].n) {
            CHECK_EQ(fc_forget(H.hiprio, nodeid, 1), 0);
            held[i].n--;
            return;
        }
    }
    CHECK(0, "forget of %llu: not held", (unsigned long long)nodeid);
}

/* ------------------------------------------------------------------ */
/* Requests, with the caller's identity in fuse_in_header               */

static uint32_t cur_uid, cur_gid;

static void as_user(void)
{
    cur_uid = USER_ID;
    cur_gid = USER_ID;
}

static void as_root(void)
{
    cur_uid = 0;
    cur_gid = 0;
}

static int call(uint32_t op, uint64_t node, const void *a1, uint32_t l1, const void *a2,
                uint32_t l2, const void *a3, uint32_t l3, void *out, uint32_t out_size,
                uint32_t *out_len)
{
    struct fc_call c = {
        .opcode = op, .nodeid = node, .arg = a1, .arg_len = l1, .arg2 = a2,
        .arg2_len = l2, .arg3 = a3, .arg3_len = l3, .out_len = out_size,
        .uid = cur_uid, .gid = cur_gid, .pid = 4242,
    };
    return fc_call_sync(chan, &c, out, out_size, out_len);
}

static uint32_t nlen(const char *s)
{
    return (uint32_t)strlen(s) + 1;
}

static int do_lookup(uint64_t parent, const char *name, struct fuse_entry_out *e)
{
    int ret = call(FUSE_LOOKUP, parent, name, nlen(name), NULL, 0, NULL, 0, e, sizeof(*e),
                   NULL);
    if (ret == 0) {
        hold(e->nodeid);
    }
    return ret;
}

/* Lookup that must find @name; returns its node id (0 on failure). */
static uint64_t node_of(uint64_t parent, const char *name)
{
    struct fuse_entry_out e;
    int ret = do_lookup(parent, name, &e);
    CHECK(ret == 0 && e.nodeid, "lookup %s: %s", name, err_name(ret));
    return ret ? 0 : e.nodeid;
}

static int do_getattr(uint64_t node, struct fuse_attr *a)
{
    struct fuse_getattr_in in = { 0 };
    struct fuse_attr_out ao;
    int ret = call(FUSE_GETATTR, node, &in, sizeof(in), NULL, 0, NULL, 0, &ao, sizeof(ao),
                   NULL);
    if (ret == 0 && a) {
        *a = ao.attr;
    }
    return ret;
}

static int do_setattr(uint64_t node, const struct fuse_setattr_in *in, struct fuse_attr *a)
{
    struct fuse_attr_out ao;
    int ret = call(FUSE_SETATTR, node, in, sizeof(*in), NULL, 0, NULL, 0, &ao, sizeof(ao),
                   NULL);
    if (ret == 0 && a) {
        *a = ao.attr;
    }
    return ret;
}

static int do_mkdir(uint64_t parent, const char *name, uint32_t mode,
                    struct fuse_entry_out *e)
{
    struct fuse_mkdir_in in = { .mode = mode, .umask = 0 };
    struct fuse_entry_out tmp;
    e = e ? e : &tmp;
    int ret = call(FUSE_MKDIR, parent, &in, sizeof(in), name, nlen(name), NULL, 0, e,
                   sizeof(*e), NULL);
    if (ret == 0) {
        hold(e->nodeid);
    }
    return ret;
}

static int do_mknod(uint64_t parent, const char *name, uint32_t mode,
                    struct fuse_entry_out *e)
{
    struct fuse_mknod_in in = { .mode = mode, .umask = 0 };
    struct fuse_entry_out tmp;
    e = e ? e : &tmp;
    int ret = call(FUSE_MKNOD, parent, &in, sizeof(in), name, nlen(name), NULL, 0, e,
                   sizeof(*e), NULL);
    if (ret == 0) {
        hold(e->nodeid);
    }
    return ret;
}

static int do_symlink(uint64_t parent, const char *name, const char *target,
                      struct fuse_entry_out *e)
{
    struct fuse_entry_out tmp;
    e = e ? e : &tmp;
    /* FUSE_SYMLINK carries the new name first, then the target. */
    int ret = call(FUSE_SYMLINK, parent, name, nlen(name), target, nlen(target), NULL, 0, e,
                   sizeof(*e), NULL);
    if (ret == 0) {
        hold(e->nodeid);
    }
    return ret;
}

static int do_link(uint64_t node, uint64_t newparent, const char *newname,
                   struct fuse_entry_out *e)
{
    struct fuse_link_in in = { .oldnodeid = node };
    struct fuse_entry_out tmp;
    e = e ? e : &tmp;
    int ret = call(FUSE_LINK, newparent, &in, sizeof(in), newname, nlen(newname), NULL, 0, e,
                   sizeof(*e), NULL);
    if (ret == 0) {
        hold(e->nodeid);
    }
    return ret;
}

static int do_create(uint64_t parent, const char *name, uint32_t flags, uint32_t mode,
                     struct fuse_entry_out *e, uint64_t *fh)
{
    struct fuse_create_in in = { .flags = flags, .mode = mode, .umask = 0 };
    struct {
        struct fuse_entry_out e;
        struct fuse_open_out o;
    } rep;
    int ret = call(FUSE_CREATE, parent, &in, sizeof(in), name, nlen(name), NULL, 0, &rep,
                   sizeof(rep), NULL);
    if (ret == 0) {
        hold(rep.e.nodeid);
        if (e) {
            *e = rep.e;
        }
        if (fh) {
            *fh = rep.o.fh;
        }
    }
    return ret;
}

static int do_open(uint32_t op, uint64_t node, uint32_t flags, uint64_t *fh)
{
    struct fuse_open_in in = { .flags = flags };
    struct fuse_open_out o;
    int ret = call(op, node, &in, sizeof(in), NULL, 0, NULL, 0, &o, sizeof(o), NULL);
    if (ret == 0 && fh) {
        *fh = o.fh;
    }
    return ret;
}

static int do_release(uint32_t op, uint64_t node, uint64_t fh, uint32_t release_flags,
                      uint64_t owner)
{
    struct fuse_release_in in = { .fh = fh, .release_flags = release_flags,
                                  .lock_owner = owner };
    return call(op, node, &in, sizeof(in), NULL, 0, NULL, 0, NULL, 0, NULL);
}

static int do_flush(uint64_t node, uint64_t fh, uint64_t owner)
{
    struct fuse_flush_in in = { .fh = fh, .lock_owner = owner };
    return call(FUSE_FLUSH, node, &in, sizeof(in), NULL, 0, NULL, 0, NULL, 0, NULL);
}

static int do_name_op(uint32_t op, uint64_t parent, const char *name)
{
    return call(op, parent, name, nlen(name), NULL, 0, NULL, 0, NULL, 0, NULL);
}

static int do_rename(uint64_t olddir, const char *oldname, uint64_t newdir,
                     const char *newname, uint32_t flags)
{
    if (!flags) {
        struct fuse_rename_in in = { .newdir = newdir };
        return call(FUSE_RENAME, olddir, &in, sizeof(in), oldname, nlen(oldname), newname,
                    nlen(newname), NULL, 0, NULL);
    }
    struct fuse_rename2_in in = { .newdir = newdir, .flags = flags };
    return call(FUSE_RENAME2, olddir, &in, sizeof(in), oldname, nlen(oldname), newname,
                nlen(newname), NULL, 0, NULL);
}

static ssize_t do_readlink(uint64_t node, char *buf, uint32_t size)
{
    uint32_t n = 0;
    int ret = call(FUSE_READLINK, node, NULL, 0, NULL, 0, NULL, 0, buf, size, &n);
    return ret < 0 ? ret : (ssize_t)n;
}

static int do_access(uint64_t node, uint32_t mask)
{
    struct fuse_access_in in = { .mask = mask };
    return call(FUSE_ACCESS, node, &in, sizeof(in), NULL, 0, NULL, 0, NULL, 0, NULL);
}

static int do_fsync(uint32_t op, uint64_t node, uint64_t fh, bool datasync)
{
    struct fuse_fsync_in in = { .fh = fh, .fsync_flags = datasync ? 1 : 0 };
    return call(op, node, &in, sizeof(in), NULL, 0, NULL, 0, NULL, 0, NULL);
}

/* SETXATTR without FUSE_SETXATTR_EXT (not negotiated): the 8-byte struct. */
static int do_setxattr(uint64_t node, const char *name, const void *val, uint32_t size,
                       uint32_t flags)
{
    struct fuse_setxattr_in in = { .size = size, .flags = flags };
    return call(FUSE_SETXATTR, node, &in, FUSE_COMPAT_SETXATTR_IN_SIZE, name, nlen(name), val,
                size, NULL, 0, NULL);
}

/* size 0: the needed size (fuse_getxattr_out); else the value's length. */
static ssize_t do_getxattr(uint32_t op, uint64_t node, const char *name, void *buf,
                           uint32_t size)
{
    struct fuse_getxattr_in in = { .size = size };
    struct fuse_getxattr_out go;
    uint32_t n = 0;
    int ret;
    if (size == 0) {
        ret = call(op, node, &in, sizeof(in), name, name ? nlen(name) : 0, NULL, 0, &go,
                   sizeof(go), &n);
        if (ret == 0 && n != sizeof(go)) {
            CHECK(0, "size probe reply of %u bytes", n);
            return -EPROTO;
        }
        return ret < 0 ? ret : (ssize_t)go.size;
    }
    ret = call(op, node, &in, sizeof(in), name, name ? nlen(name) : 0, NULL, 0, buf, size, &n);
    return ret < 0 ? ret : (ssize_t)n;
}

static int do_lk(uint32_t op, uint64_t node, uint64_t fh, uint64_t owner, uint32_t type,
                 uint64_t start, uint64_t end, uint32_t lk_flags, struct fuse_file_lock *out)
{
    struct fuse_lk_in in = {
        .fh = fh, .owner = owner,
        /* like the kernel: the caller's pid on a lock, 0 on GETLK/unlock */
        .lk = { .start = start, .end = end, .type = type,
                .pid = (op == FUSE_GETLK || type == F_UNLCK) ? 0 : 4242 },
        .lk_flags = lk_flags,
    };
    struct fuse_lk_out lo;
    int ret = call(op, node, &in, sizeof(in), NULL, 0, NULL, 0, out ? (void *)&lo : NULL,
                   out ? sizeof(lo) : 0, NULL);
    if (ret == 0 && out) {
        *out = lo.lk;
    }
    return ret;
}

static int do_fallocate(uint64_t node, uint64_t fh, uint64_t off, uint64_t len, uint32_t mode)
{
    struct fuse_fallocate_in in = { .fh = fh, .offset = off, .length = len, .mode = mode };
    return call(FUSE_FALLOCATE, node, &in, sizeof(in), NULL, 0, NULL, 0, NULL, 0, NULL);
}

static int64_t do_lseek(uint64_t node, uint64_t fh, uint64_t off, uint32_t whence)
{
    struct fuse_lseek_in in = { .fh = fh, .offset = off, .whence = whence };
    struct fuse_lseek_out lo;
    int ret = call(FUSE_LSEEK, node, &in, sizeof(in), NULL, 0, NULL, 0, &lo, sizeof(lo), NULL);
    return ret < 0 ? ret : (int64_t)lo.offset;
}

static ssize_t do_copy_range(uint64_t nin, uint64_t fhin, uint64_t offin, uint64_t nout,
                             uint64_t fhout, uint64_t offout, uint64_t len, uint64_t flags)
{
    struct fuse_copy_file_range_in in = {
        .fh_in = fhin, .off_in = offin, .nodeid_out = nout, .fh_out = fhout,
        .off_out = offout, .len = len, .flags = flags,
    };
    struct fuse_write_out wo;
    int ret = call(FUSE_COPY_FILE_RANGE, nin, &in, sizeof(in), NULL, 0, NULL, 0, &wo,
                   sizeof(wo), NULL);
    return ret < 0 ? ret : (ssize_t)wo.size;
}

/* ------------------------------------------------------------------ */
/* Host side                                                            */

static const char *hp(const char *rel)
{
    static char buf[4][1024];
    static unsigned k;
    char *b = buf[k++ % 4];
    snprintf(b, 1024, "%s/%s", H.share, rel);
    return b;
}

/* Twin files outside the share, for "the same operation on the host". */
static const char *twin(const char *name)
{
    static char buf[2][512];
    static unsigned k;
    char *b = buf[k++ % 2];
    snprintf(b, 512, "%s/%s", H.dir, name);
    return b;
}

static void host_write_file(const char *path, const void *data, size_t n, mode_t mode)
{
    int fd = open(path, O_WRONLY | O_CREAT | O_TRUNC, mode);
    CHECK(fd >= 0, "create %s: %s", path, strerror(errno));
    if (fd >= 0) {
        CHECK_EQ(pwrite(fd, data, n, 0), (ssize_t)n);
        close(fd);
    }
}

static void check_attr_st(const struct fuse_attr *a, const struct stat *st, const char *what)
{
    CHECK(a->ino == st->st_ino, "%s: ino %llu vs %llu", what, (unsigned long long)a->ino,
          (unsigned long long)st->st_ino);
    CHECK(a->mode == st->st_mode, "%s: mode 0%o vs 0%o", what, a->mode, st->st_mode);
    CHECK(a->nlink == st->st_nlink, "%s: nlink %u vs %lu", what, a->nlink,
          (unsigned long)st->st_nlink);
    CHECK(a->uid == st->st_uid && a->gid == st->st_gid, "%s: owner %u:%u vs %u:%u", what,
          a->uid, a->gid, st->st_uid, st->st_gid);
    CHECK(a->size == (uint64_t)st->st_size, "%s: size %llu vs %lld", what,
          (unsigned long long)a->size, (long long)st->st_size);
    CHECK(a->rdev == (uint32_t)st->st_rdev, "%s: rdev", what);
    CHECK(a->mtime == (uint64_t)st->st_mtim.tv_sec &&
          a->mtimensec == (uint32_t)st->st_mtim.tv_nsec,
          "%s: mtime %llu.%09u vs %lld.%09ld", what, (unsigned long long)a->mtime,
          a->mtimensec, (long long)st->st_mtim.tv_sec, st->st_mtim.tv_nsec);
}

/* Attributes from the daemon equal lstat() of the host path. */
static void check_attr(const struct fuse_attr *a, const char *rel)
{
    struct stat st;
    if (lstat(hp(rel), &st) < 0) {
        CHECK(0, "host lstat %s: %s", rel, strerror(errno));
        return;
    }
    check_attr_st(a, &st, rel);
}

/* GETATTR now equals lstat() now. */
static void check_node(uint64_t node, const char *rel)
{
    struct fuse_attr a;
    int ret = do_getattr(node, &a);
    CHECK(ret == 0, "getattr %s: %s", rel, err_name(ret));
    if (ret == 0) {
        check_attr(&a, rel);
    }
}

static bool host_missing(const char *rel)
{
    struct stat st;
    return lstat(hp(rel), &st) < 0 && errno == ENOENT;
}

static void host_read(const char *path, void *buf, size_t n, off_t off, ssize_t want)
{
    int fd = open(path, O_RDONLY);
    CHECK(fd >= 0, "open %s: %s", path, strerror(errno));
    if (fd >= 0) {
        CHECK_EQ(pread(fd, buf, n, off), want);
        close(fd);
    }
}

enum host_op { HOP_ACCESS, HOP_OPEN, HOP_MKDIR, HOP_CREATE };

/* Do @op on the host as uid/gid USER_ID in a child; 0 or -errno. */
static int host_as_user(enum host_op op, const char *path, int arg)
{
    pid_t pid = fork();
    if (pid == 0) {
        int r = -1;
        if (setgroups(0, NULL) < 0 || setresgid(USER_ID, USER_ID, USER_ID) < 0 ||
            setresuid(USER_ID, USER_ID, USER_ID) < 0) {
            _exit(255);
        }
        switch (op) {
        case HOP_ACCESS:
            r = access(path, arg);
            break;
        case HOP_OPEN:
            r = open(path, arg);
            break;
        case HOP_MKDIR:
            r = mkdir(path, (mode_t)arg);
            break;
        case HOP_CREATE:
            r = open(path, O_RDWR | O_CREAT | O_EXCL, (mode_t)arg);
            break;
        }
        _exit(r < 0 ? errno : 0);
    }
    int st = 0;
    if (pid < 0 || waitpid(pid, &st, 0) != pid || !WIFEXITED(st) ||
        WEXITSTATUS(st) == 255) {
        CHECK(0, "host child as uid %u failed (status 0x%x)", USER_ID, st);
        return -EPROTO;
    }
    return -WEXITSTATUS(st);
}

static void fill(uint8_t *b, size_t n, unsigned seed)
{
    for (size_t i = 0; i < n; i++) {
        b[i] = (uint8_t)(seed * 131 + i * 7 + (i >> 9));
    }
}

/* ------------------------------------------------------------------ */
/* Directory listings                                                   */

struct ent {
    char name[256];
    uint64_t ino;
    uint32_t type;
};

static int ent_cmp(const void *a, const void *b)
{
    return strcmp(((const struct ent *)a)->name, ((const struct ent *)b)->name);
}

static unsigned host_listing(const char *rel, struct ent *out, unsigned max)
{
    unsigned n = 0;
    DIR *d = opendir(hp(rel));
    CHECK(d != NULL, "opendir %s", rel);
    struct dirent *de;
    while (d && (de = readdir(d)) && n < max) {
        snprintf(out[n].name, sizeof(out[n].name), "%s", de->d_name);
        out[n].ino = de->d_ino;
        out[n].type = de->d_type;
        n++;
    }
    if (d) {
        closedir(d);
    }
    qsort(out, n, sizeof(*out), ent_cmp);
    return n;
}

/*
 * READDIR or READDIRPLUS to the end with a small buffer (several calls,
 * each resuming at the last entry's offset).  READDIRPLUS entries are
 * lookups (ledger) and their attributes must equal lstat() of the entry.
 */
static unsigned fuse_listing(uint64_t dir, const char *rel, bool plus, struct ent *out,
                             unsigned max)
{
    uint64_t fh;
    unsigned n = 0;
    int ret = do_open(FUSE_OPENDIR, dir, O_RDONLY, &fh);
    CHECK(ret == 0, "opendir %s: %s", rel, err_name(ret));
    if (ret) {
        return 0;
    }
    uint64_t off = 0;
    for (int calls = 0; calls < 200; calls++) {
        char buf[1024];
        ssize_t len = plus ? fc_readdirplus(chan, dir, fh, off, buf, sizeof(buf))
                           : fc_readdir(chan, dir, fh, off, buf, sizeof(buf));
        CHECK(len >= 0, "readdir%s: %zd", plus ? "plus" : "", len);
        if (len <= 0) {
            break;
        }
        size_t pos = 0;
        struct fc_dirent e;
        int r;
        while ((r = fc_dirent_next(buf, (size_t)len, &pos, plus, &e)) == 1) {
            if (n < max) {
                snprintf(out[n].name, sizeof(out[n].name), "%.*s", (int)e.namelen, e.name);
                out[n].ino = e.ino;
                out[n].type = e.type;
                n++;
            }
            off = e.off;
            if (plus && e.entry->nodeid) {
                char p[600];
                hold(e.entry->nodeid);
                CHECK_EQ(e.entry->attr.ino, e.ino);
                snprintf(p, sizeof(p), "%s/%.*s", rel, (int)e.namelen, e.name);
                check_attr(&e.entry->attr, p);
            }
        }
        CHECK_EQ(r, 0);
    }
    CHECK_EQ(do_release(FUSE_RELEASEDIR, dir, fh, 0, 0), 0);
    qsort(out, n, sizeof(*out), ent_cmp);
    return n;
}

static void check_listing(uint64_t dir, const char *rel, bool plus)
{
    static struct ent h[300], f[300];
    unsigned nh = host_listing(rel, h, 300);
    unsigned nf = fuse_listing(dir, rel, plus, f, 300);
    CHECK(nh == nf, "%s: %u host entries, %u through readdir%s", rel, nh, nf,
          plus ? "plus" : "");
    for (unsigned i = 0; i < nh && i < nf; i++) {
        CHECK(!strcmp(h[i].name, f[i].name), "%s: entry %u host %s fuse %s", rel, i,
              h[i].name, f[i].name);
        /* ".." of the share root is outside the share: a sandboxed daemon
         * (pivot_root into the share) sees the root itself there. */
        bool root_dotdot = dir == FUSE_ROOT_ID && !strcmp(h[i].name, "..");
        CHECK(h[i].ino == f[i].ino || root_dotdot, "%s/%s: ino %llu vs %llu", rel, h[i].name,
              (unsigned long long)h[i].ino, (unsigned long long)f[i].ino);
        CHECK(h[i].type == f[i].type, "%s/%s: type %u vs %u", rel, h[i].name, h[i].type,
              f[i].type);
    }
}

/* ------------------------------------------------------------------ */
/* INIT, STATFS                                                         */

static void t_init(void)
{
    CHECK_EQ(H.init.major, 7);
    CHECK(H.init.minor >= 31, "minor %u", H.init.minor);
    CHECK(H.init.max_write >= 4096, "max_write %u", H.init.max_write);
    /* The harness's INIT did not offer lock support: none is taken. */
    CHECK(!(H.init.flags & (FUSE_POSIX_LOCKS | FUSE_FLOCK_LOCKS)), "INIT flags 0x%x",
          H.init.flags);
}

static void t_statfs(void)
{
    struct fuse_statfs_out sf;
    struct statvfs sv;
    CHECK_EQ(fc_statfs(chan, FUSE_ROOT_ID, &sf), 0);
    CHECK_EQ(statvfs(H.share, &sv), 0);
    CHECK_EQ(sf.st.bsize, sv.f_bsize);
    CHECK_EQ(sf.st.frsize, sv.f_frsize);
    CHECK_EQ(sf.st.namelen, sv.f_namemax);
    CHECK_EQ(sf.st.blocks, sv.f_blocks);
    CHECK_EQ(sf.st.files, sv.f_files);
}

/* ------------------------------------------------------------------ */
/* LOOKUP, GETATTR                                                      */

/* A missing name is -ENOENT, or a negative entry (success with nodeid 0,
 * which the kernel caches as a negative dentry): both are valid FUSE. */
static void check_missing(uint64_t parent, const char *name)
{
    struct fuse_entry_out e = { 0 };
    int ret = do_lookup(parent, name, &e);
    CHECK(ret == -ENOENT || (ret == 0 && e.nodeid == 0),
          "lookup of missing %s: %s (nodeid %llu)", name, err_name(ret),
          (unsigned long long)e.nodeid);
}

static void t_lookup_getattr(void)
{
    struct fuse_attr a;
    struct fuse_entry_out e, e2;
    uint8_t data[3000];

    CHECK_EQ(do_getattr(FUSE_ROOT_ID, &a), 0);
    check_attr(&a, ".");

    /* Objects made on the host, one of each type. */
    CHECK_EQ(mkdir(hp("lk_dir"), 0711), 0);
    fill(data, sizeof(data), 3);
    host_write_file(hp("lk_dir/file"), data, sizeof(data), 0640);
    CHECK_EQ(symlink("file", hp("lk_dir/link")), 0);
    CHECK_EQ(mkfifo(hp("lk_dir/fifo"), 0600), 0);
    CHECK_EQ(chown(hp("lk_dir/file"), 123, 456), 0);

    uint64_t d = node_of(FUSE_ROOT_ID, "lk_dir");
    const char *names[] = { "file", "link", "fifo" };
    for (unsigned i = 0; i < 3; i++) {
        char rel[64];
        snprintf(rel, sizeof(rel), "lk_dir/%s", names[i]);
        int ret = do_lookup(d, names[i], &e);
        CHECK(ret == 0 && e.nodeid, "lookup %s: %s", rel, err_name(ret));
        if (ret) {
            continue;
        }
        check_attr(&e.attr, rel);
        check_node(e.nodeid, rel);
        /* Looking the same name up again gives the same node. */
        CHECK_EQ(do_lookup(d, names[i], &e2), 0);
        CHECK_EQ(e2.nodeid, e.nodeid);
    }
    check_node(d, "lk_dir");

    /* Errors: missing name, a file as the parent, a name too long. */
    check_missing(d, "nope");
    check_missing(FUSE_ROOT_ID, "nope");
    uint64_t f = node_of(d, "file");
    struct stat st;
    CHECK_SAME(do_lookup(f, "x", &e), HOST(lstat(hp("lk_dir/file/x"), &st)));
    char longname[300];
    memset(longname, 'n', sizeof(longname) - 1);
    longname[sizeof(longname) - 1] = 0;
    char lp[600];
    snprintf(lp, sizeof(lp), "lk_dir/%s", longname);
    CHECK_SAME(do_lookup(d, longname, &e), HOST(lstat(hp(lp), &st)));

    /* The host changes a file behind the daemon's back: GETATTR follows. */
    CHECK_EQ(truncate(hp("lk_dir/file"), 77), 0);
    CHECK_EQ(chmod(hp("lk_dir/file"), 0604), 0);
    check_node(f, "lk_dir/file");
}

/* ------------------------------------------------------------------ */
/* MKDIR, MKNOD, SYMLINK, READLINK                                      */

static void t_make_nodes(void)
{
    struct fuse_entry_out e;
    struct stat st;
    uint64_t d;

    CHECK_EQ(do_mkdir(FUSE_ROOT_ID, "mk", 0750, &e), 0);
    d = e.nodeid;
    check_attr(&e.attr, "mk");
    CHECK(S_ISDIR(e.attr.mode) && (e.attr.mode & 07777) == 0750, "mode 0%o", e.attr.mode);
    CHECK_SAME(do_mkdir(FUSE_ROOT_ID, "mk", 0750, &e), HOST(mkdir(hp("mk"), 0750)));
    CHECK_ERR(do_mkdir(FUSE_ROOT_ID, "mk", 0750, &e), EEXIST);
    check_node(FUSE_ROOT_ID, ".");  /* the new subdirectory's ".." */

    /* mkdir with sticky/setgid bits */
    CHECK_EQ(do_mkdir(d, "sub", 03775, &e), 0);
    check_attr(&e.attr, "mk/sub");

    /* MKNOD: FIFO and regular file */
    CHECK_EQ(do_mknod(d, "fifo", S_IFIFO | 0640, &e), 0);
    check_attr(&e.attr, "mk/fifo");
    CHECK(S_ISFIFO(e.attr.mode) && (e.attr.mode & 07777) == 0640, "fifo mode 0%o",
          e.attr.mode);
    CHECK_EQ(do_mknod(d, "reg", S_IFREG | 0604, &e), 0);
    check_attr(&e.attr, "mk/reg");
    CHECK(S_ISREG(e.attr.mode) && (e.attr.mode & 07777) == 0604 && e.attr.size == 0,
          "reg mode 0%o size %llu", e.attr.mode, (unsigned long long)e.attr.size);
    CHECK_SAME(do_mknod(d, "reg", S_IFREG | 0600, &e),
               HOST(mknod(hp("mk/reg"), S_IFREG | 0600, 0)));
    CHECK_SAME(do_mknod(d, "fifo", S_IFIFO | 0600, &e), HOST(mkfifo(hp("mk/fifo"), 0600)));

    /* SYMLINK + READLINK, dangling and absolute targets are stored as is. */
    const char *targets[] = { "reg", "/etc/passwd", "../../nowhere/at/all" };
    const char *lnames[] = { "l_rel", "l_abs", "l_dangling" };
    for (unsigned i = 0; i < 3; i++) {
        char rel[64], buf[PATH_MAX], hbuf[PATH_MAX];
        snprintf(rel, sizeof(rel), "mk/%s", lnames[i]);
        CHECK_EQ(do_symlink(d, lnames[i], targets[i], &e), 0);
        check_attr(&e.attr, rel);
        CHECK(S_ISLNK(e.attr.mode) && e.attr.size == strlen(targets[i]), "link attr");
        ssize_t n = do_readlink(e.nodeid, buf, sizeof(buf));
        ssize_t hn = readlink(hp(rel), hbuf, sizeof(hbuf));
        CHECK(n == hn && hn > 0 && !memcmp(buf, hbuf, (size_t)hn), "readlink %s: %zd vs %zd",
              rel, n, hn);
        CHECK_SAME(do_symlink(d, lnames[i], "x", &e), HOST(symlink("x", hp(rel))));
    }
    /* A symlink made on the host reads back the same. */
    CHECK_EQ(symlink("some/where", hp("mk/hostlink")), 0);
    uint64_t hl = node_of(d, "hostlink");
    char buf[64];
    ssize_t n = do_readlink(hl, buf, sizeof(buf));
    CHECK(n == 10 && !memcmp(buf, "some/where", 10), "host symlink: %zd", n);
    /* READLINK of a non-symlink: EINVAL, like readlink(2). */
    uint64_t reg = node_of(d, "reg");
    if (!UPSTREAM_SKIP("READLINK of a non-symlink answers ENOENT (readlinkat(fd, \"\"))")) {
        CHECK_SAME((int)do_readlink(reg, buf, sizeof(buf)),
                   HOST(readlink(hp("mk/reg"), buf, sizeof(buf))));
        CHECK_SAME((int)do_readlink(d, buf, sizeof(buf)),
                   HOST(readlink(hp("mk"), buf, sizeof(buf))));
    }

    /* Creating inside a file: ENOTDIR. */
    CHECK_SAME(do_mkdir(reg, "x", 0755, &e), HOST(mkdir(hp("mk/reg/x"), 0755)));
    CHECK_SAME(do_mknod(reg, "x", S_IFREG | 0644, &e),
               HOST(mknod(hp("mk/reg/x"), S_IFREG | 0644, 0)));
    CHECK_SAME(do_symlink(reg, "x", "y", &e), HOST(symlink("y", hp("mk/reg/x"))));
    CHECK_SAME(do_create(reg, "x", O_RDWR | O_CREAT, 0100644, &e, NULL),
               HOST(open(hp("mk/reg/x"), O_RDWR | O_CREAT, 0644)));
    CHECK(lstat(hp("mk/reg"), &st) == 0 && S_ISREG(st.st_mode), "reg still a file");
}

/* ------------------------------------------------------------------ */
/* CREATE, OPEN, READ, WRITE, FLUSH, FSYNC, RELEASE                     */

static void t_files(void)
{
    struct fuse_entry_out e, fe;
    uint64_t fh, fh2;
    int ret;
    uint64_t d;

    CHECK_EQ(do_mkdir(FUSE_ROOT_ID, "io", 0755, &e), 0);
    d = e.nodeid;

    ret = do_create(d, "f1", O_RDWR | O_CREAT, 0100644, &fe, &fh);
    CHECK_EQ(ret, 0);
    check_attr(&fe.attr, "io/f1");
    CHECK(S_ISREG(fe.attr.mode) && (fe.attr.mode & 07777) == 0644, "mode 0%o", fe.attr.mode);
    CHECK_SAME(do_create(d, "f1", O_RDWR | O_CREAT | O_EXCL, 0100644, &e, NULL),
               HOST(open(hp("io/f1"), O_RDWR | O_CREAT | O_EXCL, 0644)));
    if (!UPSTREAM_SKIP("CREATE without O_EXCL of an existing file aborts upstream "
                       "(test_create_existing)")) {
        /* The guest sends it when its negative dentry is stale: it opens. */
        ret = do_create(d, "f1", O_RDWR | O_CREAT, 0100644, &e, &fh2);
        CHECK_EQ(ret, 0);
        if (!ret) {
            CHECK_EQ(e.nodeid, fe.nodeid);
            CHECK_EQ(do_release(FUSE_RELEASE, e.nodeid, fh2, 0, 0), 0);
        }
    }
    uint64_t f1 = fe.nodeid;

    /* WRITE in max_write chunks, the host sees it; READ it back. */
    size_t total = 300000;
    uint8_t *wbuf = malloc(total), *rbuf = malloc(total), *hbuf = malloc(total);
    fill(wbuf, total, 1);
    uint32_t chunk = fc_max_write(H.c) < 65536 ? fc_max_write(H.c) : 65536;
    for (size_t off = 0; off < total; off += chunk) {
        uint32_t n = (uint32_t)(total - off < chunk ? total - off : chunk);
        CHECK_EQ(fc_write(chan, f1, fh, off, wbuf + off, n), n);
    }
    CHECK_EQ(do_flush(f1, fh, 1), 0);
    CHECK_EQ(do_fsync(FUSE_FSYNC, f1, fh, false), 0);
    CHECK_EQ(do_fsync(FUSE_FSYNC, f1, fh, true), 0);
    host_read(hp("io/f1"), hbuf, total, 0, (ssize_t)total);
    CHECK(!memcmp(hbuf, wbuf, total), "host sees what FUSE wrote");
    for (size_t off = 0; off < total; off += 131072) {
        uint32_t n = (uint32_t)(total - off < 131072 ? total - off : 131072);
        CHECK_EQ(fc_read(chan, f1, fh, off, rbuf + off, n), n);
    }
    CHECK(!memcmp(rbuf, wbuf, total), "FUSE reads what it wrote");
    /* Short read at EOF, empty read past it (pread semantics). */
    CHECK_EQ(fc_read(chan, f1, fh, total - 10, rbuf, 4096), 10);
    CHECK_EQ(fc_read(chan, f1, fh, total + 4096, rbuf, 4096), 0);
    check_node(f1, "io/f1");

    /* A write far past EOF leaves a hole that reads as zeros. */
    uint8_t z[8192];
    CHECK_EQ(fc_write(chan, f1, fh, 1000000, wbuf, 100), 100);
    check_node(f1, "io/f1");
    CHECK_EQ(fc_read(chan, f1, fh, 500000, z, sizeof(z)), (ssize_t)sizeof(z));
    bool zero = true;
    for (size_t i = 0; i < sizeof(z); i++) {
        zero &= z[i] == 0;
    }
    CHECK(zero, "hole reads as zeros");
    CHECK_EQ(do_release(FUSE_RELEASE, f1, fh, 0, 0), 0);

    /* A file written on the host reads the same through FUSE. */
    fill(hbuf, 12345, 9);
    host_write_file(hp("io/hostfile"), hbuf, 12345, 0644);
    uint64_t hf = node_of(d, "hostfile");
    CHECK_EQ(do_open(FUSE_OPEN, hf, O_RDONLY, &fh), 0);
    CHECK_EQ(fc_read(chan, hf, fh, 0, rbuf, 20000), 12345);
    CHECK(!memcmp(rbuf, hbuf, 12345), "host file content");
    /* Writing through a read-only handle, as write(2) on an O_RDONLY fd. */
    int hfd = open(hp("io/hostfile"), O_RDONLY);
    CHECK_SAME(fc_write(chan, hf, fh, 0, "x", 1), HOST(pwrite(hfd, "x", 1, 0)));
    close(hfd);
    CHECK_EQ(do_release(FUSE_RELEASE, hf, fh, 0, 0), 0);
    /* Reading through a write-only handle. */
    CHECK_EQ(do_open(FUSE_OPEN, hf, O_WRONLY, &fh), 0);
    hfd = open(hp("io/hostfile"), O_WRONLY);
    CHECK_SAME(fc_read(chan, hf, fh, 0, rbuf, 10), HOST(pread(hfd, rbuf, 10, 0)));
    close(hfd);
    CHECK_EQ(fc_write(chan, hf, fh, 5, "HELLO", 5), 5);
    CHECK_EQ(do_release(FUSE_RELEASE, hf, fh, 0, 0), 0);
    host_read(hp("io/hostfile"), rbuf, 12345, 0, 12345);
    CHECK(!memcmp(rbuf + 5, "HELLO", 5) && !memcmp(rbuf, hbuf, 5) &&
          !memcmp(rbuf + 10, hbuf + 10, 12335), "write through O_WRONLY handle");

    /* O_TRUNC truncates, like open(2). */
    CHECK_EQ(do_open(FUSE_OPEN, hf, O_RDWR | O_TRUNC, &fh), 0);
    check_node(hf, "io/hostfile");
    struct stat st;
    CHECK(stat(hp("io/hostfile"), &st) == 0 && st.st_size == 0, "O_TRUNC: size %lld",
          (long long)st.st_size);
    CHECK_EQ(do_release(FUSE_RELEASE, hf, fh, 0, 0), 0);

    /* O_APPEND: pwrite on an append-mode file lands at the end (Linux). */
    host_write_file(hp("io/app"), "0123456789", 10, 0644);
    host_write_file(twin("app"), "0123456789", 10, 0644);
    uint64_t ap = node_of(d, "app");
    CHECK_EQ(do_open(FUSE_OPEN, ap, O_WRONLY | O_APPEND, &fh), 0);
    hfd = open(twin("app"), O_WRONLY | O_APPEND);
    CHECK_SAME(fc_write(chan, ap, fh, 0, "abc", 3), pwrite(hfd, "abc", 3, 0));
    close(hfd);
    CHECK_EQ(do_release(FUSE_RELEASE, ap, fh, 0, 0), 0);
    char a1[32] = "", a2[32] = "";
    host_read(hp("io/app"), a1, sizeof(a1), 0, 13);
    host_read(twin("app"), a2, sizeof(a2), 0, 13);
    CHECK(!memcmp(a1, a2, 13), "O_APPEND: share has %.13s, host twin %.13s", a1, a2);

    /* OPEN errors: a directory (EISDIR), a symlink (ELOOP, O_NOFOLLOW
     * semantics: the guest resolves links itself). */
    CHECK_SAME(do_open(FUSE_OPEN, d, O_RDWR, &fh), HOST(open(hp("io"), O_RDWR)));
    CHECK_EQ(symlink("app", hp("io/lnk")), 0);
    uint64_t ln = node_of(d, "lnk");
    if (!UPSTREAM_SKIP("OPEN of a symlink answers EBADF, not ELOOP")) {
        CHECK_SAME(do_open(FUSE_OPEN, ln, O_RDONLY, &fh),
                   HOST(open(hp("io/lnk"), O_RDONLY | O_NOFOLLOW)));
    }
    /* A FIFO is never opened by the host (it would block a daemon thread):
     * the daemon refuses it with an error instead of hanging. */
    CHECK_EQ(mkfifo(hp("io/fifo"), 0666), 0);
    uint64_t ff = node_of(d, "fifo");
    ret = do_open(FUSE_OPEN, ff, O_RDONLY, &fh);
    CHECK(ret < 0, "OPEN of a FIFO: %s", err_name(ret));
    if (!H.upstream) {
        CHECK_ERR(ret, EACCES);
    }
    /* Handles are checked: a released one is gone. */
    CHECK_EQ(do_open(FUSE_OPEN, ap, O_RDONLY, &fh), 0);
    CHECK_EQ(do_release(FUSE_RELEASE, ap, fh, 0, 0), 0);
    CHECK_ERR(fc_read(chan, ap, fh, 0, rbuf, 10), EBADF);
    CHECK_ERR(do_flush(ap, fh, 0), EBADF);
    CHECK_ERR(do_fsync(FUSE_FSYNC, ap, fh, false), EBADF);

    free(wbuf);
    free(rbuf);
    free(hbuf);
}

/* ------------------------------------------------------------------ */
/* SETATTR                                                              */

static void t_setattr(void)
{
    struct fuse_entry_out e;
    struct fuse_attr a;
    uint64_t fh;
    struct stat st;
    uint8_t data[10000];

    CHECK_EQ(do_mkdir(FUSE_ROOT_ID, "sa", 0755, &e), 0);
    uint64_t d = e.nodeid;
    fill(data, sizeof(data), 5);
    host_write_file(hp("sa/f"), data, sizeof(data), 0644);
    uint64_t f = node_of(d, "f");

    /* mode, on a file and a directory */
    struct fuse_setattr_in in = { .valid = FATTR_MODE, .mode = 0100751 };
    CHECK_EQ(do_setattr(f, &in, &a), 0);
    check_attr(&a, "sa/f");
    CHECK_EQ(a.mode & 07777, 0751);
    in = (struct fuse_setattr_in){ .valid = FATTR_MODE, .mode = 040700 };
    CHECK_EQ(do_setattr(d, &in, &a), 0);
    check_attr(&a, "sa");
    CHECK_EQ(a.mode & 07777, 0700);

    /* uid / gid, each alone and both */
    in = (struct fuse_setattr_in){ .valid = FATTR_UID, .uid = USER_ID };
    CHECK_EQ(do_setattr(f, &in, &a), 0);
    check_attr(&a, "sa/f");
    CHECK_EQ(a.uid, USER_ID);
    in = (struct fuse_setattr_in){ .valid = FATTR_GID, .gid = 2000 };
    CHECK_EQ(do_setattr(f, &in, &a), 0);
    check_attr(&a, "sa/f");
    CHECK(a.uid == USER_ID && a.gid == 2000, "owner %u:%u", a.uid, a.gid);
    in = (struct fuse_setattr_in){ .valid = FATTR_UID | FATTR_GID };
    CHECK_EQ(do_setattr(f, &in, &a), 0);
    check_attr(&a, "sa/f");

    /* size without a handle: shrink, grow (zero-filled) */
    in = (struct fuse_setattr_in){ .valid = FATTR_SIZE, .size = 3000 };
    CHECK_EQ(do_setattr(f, &in, &a), 0);
    check_attr(&a, "sa/f");
    in.size = 20000;
    CHECK_EQ(do_setattr(f, &in, &a), 0);
    check_attr(&a, "sa/f");
    uint8_t back[20000];
    host_read(hp("sa/f"), back, sizeof(back), 0, 20000);
    bool ok = !memcmp(back, data, 3000);
    for (unsigned i = 3000; i < 20000; i++) {
        ok &= back[i] == 0;
    }
    CHECK(ok, "truncate keeps the head and zero-fills");

    /* size through a handle (FATTR_FH), then mode + size together */
    CHECK_EQ(do_open(FUSE_OPEN, f, O_RDWR, &fh), 0);
    in = (struct fuse_setattr_in){ .valid = FATTR_SIZE | FATTR_FH, .fh = fh, .size = 1234 };
    CHECK_EQ(do_setattr(f, &in, &a), 0);
    check_attr(&a, "sa/f");
    CHECK_EQ(a.size, 1234);
    in = (struct fuse_setattr_in){ .valid = FATTR_SIZE | FATTR_MODE | FATTR_FH, .fh = fh,
                                   .size = 99, .mode = 0100600 };
    CHECK_EQ(do_setattr(f, &in, &a), 0);
    check_attr(&a, "sa/f");
    CHECK(a.size == 99 && (a.mode & 07777) == 0600, "size %llu mode 0%o",
          (unsigned long long)a.size, a.mode);

    /* explicit atime / mtime with nanoseconds */
    in = (struct fuse_setattr_in){ .valid = FATTR_ATIME | FATTR_MTIME,
                                   .atime = 1000000000, .atimensec = 123456789,
                                   .mtime = 1200000000, .mtimensec = 500000000 };
    CHECK_EQ(do_setattr(f, &in, &a), 0);
    check_attr(&a, "sa/f");
    CHECK(stat(hp("sa/f"), &st) == 0 && st.st_atim.tv_sec == 1000000000 &&
          st.st_atim.tv_nsec == 123456789 && st.st_mtim.tv_sec == 1200000000 &&
          st.st_mtim.tv_nsec == 500000000, "host times %lld.%09ld / %lld.%09ld",
          (long long)st.st_atim.tv_sec, st.st_atim.tv_nsec, (long long)st.st_mtim.tv_sec,
          st.st_mtim.tv_nsec);
    CHECK(a.atime == 1000000000 && a.atimensec == 123456789, "reply atime");
    /* only mtime, through the handle: atime stays */
    in = (struct fuse_setattr_in){ .valid = FATTR_MTIME | FATTR_FH, .fh = fh,
                                   .mtime = 1300000000, .mtimensec = 7 };
    CHECK_EQ(do_setattr(f, &in, &a), 0);
    check_attr(&a, "sa/f");
    CHECK(stat(hp("sa/f"), &st) == 0 && st.st_atim.tv_sec == 1000000000 &&
          st.st_mtim.tv_sec == 1300000000 && st.st_mtim.tv_nsec == 7, "mtime only");

    /* ATIME_NOW / MTIME_NOW: the host clock at the time of the call */
    struct timespec t0, t1;
    clock_gettime(CLOCK_REALTIME, &t0);
    in = (struct fuse_setattr_in){ .valid = FATTR_ATIME | FATTR_ATIME_NOW | FATTR_MTIME |
                                            FATTR_MTIME_NOW };
    CHECK_EQ(do_setattr(f, &in, &a), 0);
    clock_gettime(CLOCK_REALTIME, &t1);
    check_attr(&a, "sa/f");
    CHECK(stat(hp("sa/f"), &st) == 0, "stat");
    /* File times come from the coarse clock: allow it to lag one tick. */
    CHECK(st.st_mtim.tv_sec >= t0.tv_sec - 1 && st.st_mtim.tv_sec <= t1.tv_sec &&
          st.st_atim.tv_sec >= t0.tv_sec - 1 && st.st_atim.tv_sec <= t1.tv_sec,
          "NOW: atime %lld mtime %lld not in [%lld, %lld]", (long long)st.st_atim.tv_sec,
          (long long)st.st_mtim.tv_sec, (long long)t0.tv_sec, (long long)t1.tv_sec);
    CHECK_EQ(do_release(FUSE_RELEASE, f, fh, 0, 0), 0);

    /* times on a directory and on a symlink (not followed) */
    in = (struct fuse_setattr_in){ .valid = FATTR_MTIME, .mtime = 1111111111 };
    CHECK_EQ(do_setattr(d, &in, &a), 0);
    check_attr(&a, "sa");
    CHECK_EQ(symlink("f", hp("sa/l")), 0);
    uint64_t l = node_of(d, "l");
    CHECK_EQ(do_setattr(l, &in, &a), 0);
    check_attr(&a, "sa/l");
    CHECK(stat(hp("sa/f"), &st) == 0 && st.st_mtim.tv_sec != 1111111111,
          "symlink target untouched");

    /* errors, as the host gives them: truncating a directory (EISDIR);
     * chmod of a symlink (EOPNOTSUPP: Linux symlinks have no mode) */
    in = (struct fuse_setattr_in){ .valid = FATTR_SIZE, .size = 0 };
    CHECK_SAME(do_setattr(d, &in, &a), HOST(truncate(hp("sa"), 0)));
    in = (struct fuse_setattr_in){ .valid = FATTR_MODE, .mode = 0120600 };
    CHECK_SAME(do_setattr(l, &in, &a),
               HOST(fchmodat(AT_FDCWD, hp("sa/l"), 0600, AT_SYMLINK_NOFOLLOW)));
    check_node(l, "sa/l");
    check_node(f, "sa/f");
}

/* ------------------------------------------------------------------ */
/* LINK                                                                 */

static void t_link(void)
{
    struct fuse_entry_out e;
    uint64_t fh;

    CHECK_EQ(do_mkdir(FUSE_ROOT_ID, "ln", 0755, &e), 0);
    uint64_t d = e.nodeid;
    CHECK_EQ(do_mkdir(d, "other", 0755, &e), 0);
    uint64_t o = e.nodeid;
    CHECK_EQ(do_create(d, "f", O_RDWR | O_CREAT | O_EXCL, 0100640, &e, &fh), 0);
    uint64_t f = e.nodeid;
    CHECK_EQ(do_release(FUSE_RELEASE, f, fh, 0, 0), 0);

    CHECK_EQ(do_link(f, o, "hard", &e), 0);
    check_attr(&e.attr, "ln/other/hard");
    CHECK_EQ(e.nodeid, f);   /* the same inode: the same node */
    CHECK_EQ(e.attr.nlink, 2);
    check_node(f, "ln/f");
    CHECK_EQ(do_link(f, d, "hard2", &e), 0);
    CHECK_EQ(e.attr.nlink, 3);
    check_node(f, "ln/f");

    /* EEXIST, EPERM for a directory, ENOTDIR for a file as the parent */
    CHECK_SAME(do_link(f, o, "hard", &e), HOST(link(hp("ln/f"), hp("ln/other/hard"))));
    CHECK_SAME(do_link(o, d, "dirlink", &e), HOST(link(hp("ln/other"), hp("ln/dirlink"))));
    CHECK_SAME(do_link(f, f, "x", &e), HOST(link(hp("ln/f"), hp("ln/f/x"))));

    /* a symlink is linked itself, not its target */
    CHECK_EQ(symlink("f", hp("ln/sym")), 0);
    uint64_t s = node_of(d, "sym");
    CHECK_EQ(do_link(s, d, "sym2", &e), 0);
    check_attr(&e.attr, "ln/sym2");
    CHECK(S_ISLNK(e.attr.mode) && e.attr.nlink == 2, "linked symlink mode 0%o nlink %u",
          e.attr.mode, e.attr.nlink);

    /* unlinking one name drops nlink everywhere */
    CHECK_EQ(do_name_op(FUSE_UNLINK, d, "hard2"), 0);
    check_node(f, "ln/f");
    struct fuse_attr a;
    CHECK_EQ(do_getattr(f, &a), 0);
    CHECK_EQ(a.nlink, 2);
}

/* ------------------------------------------------------------------ */
/* RENAME, RENAME2                                                      */

static void t_rename(void)
{
    struct fuse_entry_out e;
    struct stat st, st2;
    uint64_t fh;

    CHECK_EQ(do_mkdir(FUSE_ROOT_ID, "rn", 0755, &e), 0);
    uint64_t d = e.nodeid;
    CHECK_EQ(do_mkdir(d, "d2", 0755, &e), 0);
    uint64_t d2 = e.nodeid;
    const char *files[] = { "a", "b", "c", "x", "y" };
    for (unsigned i = 0; i < 5; i++) {
        CHECK_EQ(do_create(d, files[i], O_WRONLY | O_CREAT | O_EXCL, 0100644, &e, &fh), 0);
        CHECK_EQ(fc_write(chan, e.nodeid, fh, 0, files[i], 1), 1);
        CHECK_EQ(do_release(FUSE_RELEASE, e.nodeid, fh, 0, 0), 0);
    }
    CHECK_EQ(do_mkdir(d, "full", 0755, &e), 0);
    uint64_t full = e.nodeid;
    CHECK_EQ(do_mknod(full, "inside", S_IFREG | 0644, NULL), 0);
    CHECK_EQ(do_mkdir(d, "empty", 0755, NULL), 0);

    /* plain rename within a directory and across directories */
    CHECK_EQ(stat(hp("rn/a"), &st), 0);
    CHECK_EQ(do_rename(d, "a", d, "a2", 0), 0);
    CHECK(host_missing("rn/a") && stat(hp("rn/a2"), &st2) == 0 && st2.st_ino == st.st_ino,
          "a renamed to a2 on the host");
    CHECK_EQ(do_rename(d, "a2", d2, "a3", 0), 0);
    CHECK(host_missing("rn/a2") && stat(hp("rn/d2/a3"), &st2) == 0 && st2.st_ino == st.st_ino,
          "a2 moved to d2/a3");
    /* onto an existing file: replaced */
    CHECK_EQ(stat(hp("rn/b"), &st), 0);
    CHECK_EQ(do_rename(d, "b", d, "c", 0), 0);
    CHECK(host_missing("rn/b") && stat(hp("rn/c"), &st2) == 0 && st2.st_ino == st.st_ino,
          "b replaced c");
    /* a directory onto an empty directory: replaced; the moved dir's
     * attributes and the parents' link counts follow */
    CHECK_EQ(do_mkdir(d, "mv", 0700, &e), 0);
    uint64_t mv = e.nodeid;
    CHECK_EQ(do_rename(d, "mv", d2, "mv", 0), 0);
    check_node(mv, "rn/d2/mv");
    check_node(d, "rn");
    check_node(d2, "rn/d2");
    CHECK_EQ(do_rename(d2, "mv", d, "empty", 0), 0);
    check_node(mv, "rn/empty");

    /* errors, as renameat2() on the host gives them */
    CHECK_SAME(do_rename(d, "x", d, "full", 0), HOST(rename(hp("rn/x"), hp("rn/full"))));
    CHECK_SAME(do_rename(d, "full", d, "x", 0), HOST(rename(hp("rn/full"), hp("rn/x"))));
    CHECK_EQ(do_mkdir(d, "e2", 0755, NULL), 0);
    CHECK_SAME(do_rename(d, "e2", d, "full", 0), HOST(rename(hp("rn/e2"), hp("rn/full"))));
    CHECK_ERR(do_rename(d, "e2", d, "full", 0), ENOTEMPTY);
    /* a directory into itself */
    CHECK_SAME(do_rename(d, "full", full, "sub", 0),
               HOST(rename(hp("rn/full"), hp("rn/full/sub"))));
    /* a missing source; upstream answers EIO for names it never looked up
     * (the kernel always looks a name up before RENAME/UNLINK/RMDIR) */
    int ret = do_rename(d, "nope", d, "z", 0);
    if (!UPSTREAM_SKIP("RENAME of a never-looked-up name answers EIO")) {
        CHECK_SAME(ret, HOST(rename(hp("rn/nope"), hp("rn/z"))));
    }

    /* RENAME2: NOREPLACE onto an existing name, onto a free name */
    node_of(d, "x");
    node_of(d, "y");
    CHECK_SAME(do_rename(d, "x", d, "y", RENAME_NOREPLACE),
               HOST(renameat2(AT_FDCWD, hp("rn/x"), AT_FDCWD, hp("rn/y"), RENAME_NOREPLACE)));
    CHECK_ERR(do_rename(d, "x", d, "y", RENAME_NOREPLACE), EEXIST);
    CHECK_EQ(do_rename(d, "x", d, "x2", RENAME_NOREPLACE), 0);
    CHECK(host_missing("rn/x") && !host_missing("rn/x2"), "NOREPLACE to a free name");
    /* EXCHANGE swaps two names (a file and a directory even) */
    struct stat sx, sy;
    CHECK_EQ(lstat(hp("rn/x2"), &sx), 0);
    CHECK_EQ(lstat(hp("rn/full"), &sy), 0);
    CHECK_EQ(do_rename(d, "x2", d, "full", RENAME_EXCHANGE), 0);
    CHECK(lstat(hp("rn/x2"), &st) == 0 && st.st_ino == sy.st_ino && S_ISDIR(st.st_mode) &&
          lstat(hp("rn/full"), &st2) == 0 && st2.st_ino == sx.st_ino, "EXCHANGE swapped");
    check_node(full, "rn/x2");
    /* EXCHANGE with a missing name, and both flags at once */
    node_of(d, "y");
    CHECK_SAME(do_rename(d, "y", d, "nothere", RENAME_EXCHANGE),
               HOST(renameat2(AT_FDCWD, hp("rn/y"), AT_FDCWD, hp("rn/nothere"),
                              RENAME_EXCHANGE)));
    CHECK_SAME(do_rename(d, "y", d, "c", RENAME_EXCHANGE | RENAME_NOREPLACE),
               HOST(renameat2(AT_FDCWD, hp("rn/y"), AT_FDCWD, hp("rn/c"),
                              RENAME_EXCHANGE | RENAME_NOREPLACE)));
    /* RENAME_WHITEOUT is refused (EINVAL), a policy of ours: on the host it
     * would leave a character device (0/0) under the old name. */
    if (!UPSTREAM_SKIP("RENAME_WHITEOUT is passed to the host, which makes the whiteout "
                       "device")) {
        CHECK_ERR(do_rename(d, "y", d, "w", RENAME_WHITEOUT), EINVAL);
    }
    CHECK(!host_missing("rn/y"), "y untouched by the failed renames");

    check_listing(d, "rn", false);
}

/* ------------------------------------------------------------------ */
/* UNLINK, RMDIR                                                        */

static void t_remove(void)
{
    struct fuse_entry_out e;

    CHECK_EQ(do_mkdir(FUSE_ROOT_ID, "rm", 0755, &e), 0);
    uint64_t d = e.nodeid;
    CHECK_EQ(do_mkdir(d, "full", 0755, &e), 0);
    uint64_t full = e.nodeid;
    CHECK_EQ(do_mknod(full, "f", S_IFREG | 0644, NULL), 0);
    CHECK_EQ(do_mkdir(d, "empty", 0755, NULL), 0);
    CHECK_EQ(do_mknod(d, "file", S_IFREG | 0644, NULL), 0);
    CHECK_EQ(do_symlink(d, "sym", "empty", NULL), 0);
    CHECK_EQ(do_mknod(d, "fifo", S_IFIFO | 0644, NULL), 0);

    CHECK_SAME(do_name_op(FUSE_RMDIR, d, "full"), HOST(rmdir(hp("rm/full"))));
    CHECK_ERR(do_name_op(FUSE_RMDIR, d, "full"), ENOTEMPTY);
    CHECK_SAME(do_name_op(FUSE_UNLINK, d, "empty"), HOST(unlink(hp("rm/empty"))));
    CHECK_SAME(do_name_op(FUSE_RMDIR, d, "file"), HOST(rmdir(hp("rm/file"))));
    CHECK_SAME(do_name_op(FUSE_RMDIR, d, "sym"), HOST(rmdir(hp("rm/sym"))));
    uint64_t file = node_of(d, "file");
    if (!UPSTREAM_SKIP("UNLINK under a non-directory answers EIO, not ENOTDIR")) {
        CHECK_SAME(do_name_op(FUSE_UNLINK, file, "x"), HOST(unlink(hp("rm/file/x"))));
    }

    /* successful removals of each type; the symlink goes, not its target */
    CHECK_EQ(do_name_op(FUSE_UNLINK, d, "sym"), 0);
    CHECK(host_missing("rm/sym") && !host_missing("rm/empty"), "symlink removed");
    CHECK_EQ(do_name_op(FUSE_UNLINK, d, "fifo"), 0);
    CHECK_EQ(do_name_op(FUSE_UNLINK, d, "file"), 0);
    CHECK_EQ(do_name_op(FUSE_RMDIR, d, "empty"), 0);
    CHECK(host_missing("rm/fifo") && host_missing("rm/file") && host_missing("rm/empty"),
          "removed on the host");
    /* a removed file's node still answers GETATTR (the guest may hold it
     * open): nlink 0 */
    struct fuse_attr a;
    CHECK_EQ(do_getattr(file, &a), 0);
    CHECK_EQ(a.nlink, 0);

    /* missing names */
    int ret = do_name_op(FUSE_UNLINK, d, "file");
    if (!UPSTREAM_SKIP("UNLINK of a name not in its inode table answers EIO")) {
        CHECK_SAME(ret, HOST(unlink(hp("rm/file"))));
    }
    ret = do_name_op(FUSE_RMDIR, d, "empty");
    if (!UPSTREAM_SKIP("RMDIR of a name not in its inode table answers EIO")) {
        CHECK_SAME(ret, HOST(rmdir(hp("rm/empty"))));
    }

    /* emptied, then removed */
    CHECK_EQ(do_name_op(FUSE_UNLINK, full, "f"), 0);
    CHECK_EQ(do_name_op(FUSE_RMDIR, d, "full"), 0);
    CHECK(host_missing("rm/full"), "full removed");
    check_node(d, "rm");
    CHECK_EQ(do_name_op(FUSE_RMDIR, FUSE_ROOT_ID, "rm"), 0);
    CHECK(host_missing("rm"), "rm removed");
}

/* ------------------------------------------------------------------ */
/* OPENDIR, READDIR, READDIRPLUS, FSYNCDIR, RELEASEDIR                  */

static void t_readdir(void)
{
    struct fuse_entry_out e;
    uint64_t fh;

    CHECK_EQ(do_mkdir(FUSE_ROOT_ID, "rd", 0755, &e), 0);
    uint64_t d = e.nodeid;
    /* entries of every type, some from the host, some through FUSE */
    for (int i = 0; i < 40; i++) {
        char nm[80];
        snprintf(nm, sizeof(nm), "rd/entry-with-a-longish-name-%02d", i);
        host_write_file(hp(nm), nm, (size_t)i, 0644);
    }
    CHECK_EQ(mkdir(hp("rd/subdir"), 0700), 0);
    CHECK_EQ(symlink("subdir", hp("rd/symlink")), 0);
    CHECK_EQ(mkfifo(hp("rd/fifo"), 0644), 0);
    CHECK_EQ(do_mknod(d, "made-by-fuse", S_IFREG | 0600, NULL), 0);

    check_listing(d, "rd", false);
    check_listing(d, "rd", true);
    check_listing(FUSE_ROOT_ID, ".", false);
    /* an empty directory: "." and ".." */
    uint64_t sub = node_of(d, "subdir");
    check_listing(sub, "rd/subdir", true);

    /* changes on the host show up in a new listing */
    CHECK_EQ(unlink(hp("rd/entry-with-a-longish-name-07")), 0);
    host_write_file(hp("rd/late"), "x", 1, 0600);
    check_listing(d, "rd", true);

    /* restarting at an offset returns the rest */
    CHECK_EQ(do_open(FUSE_OPENDIR, d, O_RDONLY, &fh), 0);
    char buf[4096];
    ssize_t len = fc_readdir(chan, d, fh, 0, buf, sizeof(buf));
    CHECK(len > 0, "readdir: %zd", len);
    size_t pos = 0;
    struct fc_dirent de;
    unsigned n = 0;
    uint64_t off3 = 0;
    while (len > 0 && fc_dirent_next(buf, (size_t)len, &pos, false, &de) == 1) {
        if (++n == 3) {
            off3 = de.off;
        }
    }
    if (off3) {
        char buf2[4096];
        ssize_t len2 = fc_readdir(chan, d, fh, off3, buf2, sizeof(buf2));
        CHECK(len2 > 0, "readdir at offset: %zd", len2);
        pos = 0;
        unsigned m = 0;
        while (len2 > 0 && fc_dirent_next(buf2, (size_t)len2, &pos, false, &de) == 1) {
            m++;
        }
        CHECK(m + 3 == n || len == (ssize_t)sizeof(buf), "%u entries, %u after the 3rd", n, m);
    }
    /* FSYNCDIR, both kinds */
    CHECK_EQ(do_fsync(FUSE_FSYNCDIR, d, fh, false), 0);
    CHECK_EQ(do_fsync(FUSE_FSYNCDIR, d, fh, true), 0);
    CHECK_EQ(do_release(FUSE_RELEASEDIR, d, fh, 0, 0), 0);

    /* OPENDIR of a file: ENOTDIR, like open(O_DIRECTORY) */
    uint64_t f = node_of(d, "late");
    CHECK_SAME(do_open(FUSE_OPENDIR, f, O_RDONLY, &fh),
               HOST(open(hp("rd/late"), O_RDONLY | O_DIRECTORY)));
}

/* ------------------------------------------------------------------ */
/* SETXATTR, GETXATTR, LISTXATTR, REMOVEXATTR                           */

/* The names in a listxattr buffer, sorted and '/'-joined. */
static void xattr_names(const char *buf, ssize_t n, char *out, size_t outn)
{
    const char *names[64];
    unsigned k = 0;
    for (ssize_t i = 0; i < n && k < 64; i += (ssize_t)strlen(buf + i) + 1) {
        names[k++] = buf + i;
    }
    for (unsigned i = 1; i < k; i++) {
        for (unsigned j = i; j > 0 && strcmp(names[j - 1], names[j]) > 0; j--) {
            const char *t = names[j];
            names[j] = names[j - 1];
            names[j - 1] = t;
        }
    }
    out[0] = 0;
    for (unsigned i = 0; i < k; i++) {
        strncat(out, names[i], outn - strlen(out) - 2);
        strcat(out, "/");
    }
}

static void check_xattr_list(uint64_t node, const char *rel)
{
    char fb[4096], hb[4096], fl[4096], hl[4096];
    ssize_t need = do_getxattr(FUSE_LISTXATTR, node, NULL, NULL, 0);
    ssize_t hneed = llistxattr(hp(rel), NULL, 0);
    CHECK(need == hneed, "%s: listxattr size %zd vs host %zd", rel, need, hneed);
    ssize_t n = need > 0 ? do_getxattr(FUSE_LISTXATTR, node, NULL, fb, sizeof(fb)) : 0;
    ssize_t hn = llistxattr(hp(rel), hb, sizeof(hb));
    CHECK(n == hn, "%s: listxattr %zd vs host %zd", rel, n, hn);
    xattr_names(fb, n > 0 ? n : 0, fl, sizeof(fl));
    xattr_names(hb, hn > 0 ? hn : 0, hl, sizeof(hl));
    CHECK(!strcmp(fl, hl), "%s: xattrs fuse %s host %s", rel, fl, hl);
}

static void check_xattr_value(uint64_t node, const char *rel, const char *name)
{
    char fb[70000], hb[70000];
    ssize_t need = do_getxattr(FUSE_GETXATTR, node, name, NULL, 0);
    ssize_t hneed = lgetxattr(hp(rel), name, NULL, 0);
    CHECK_SAME(need, hneed < 0 ? -errno : hneed);
    ssize_t n = do_getxattr(FUSE_GETXATTR, node, name, fb, 65536);
    ssize_t hn = lgetxattr(hp(rel), name, hb, 65536);
    if (hn < 0) {
        hn = -errno;
    }
    CHECK(n == hn && (n <= 0 || !memcmp(fb, hb, (size_t)n)), "%s %s: %zd vs host %zd", rel,
          name, n, hn);
}

static void t_xattr(void)
{
    struct fuse_entry_out e;
    char big[65536];

    CHECK_EQ(do_mkdir(FUSE_ROOT_ID, "xa", 0755, &e), 0);
    uint64_t d = e.nodeid;
    CHECK_EQ(do_mknod(d, "f", S_IFREG | 0644, &e), 0);
    uint64_t f = e.nodeid;

    CHECK_EQ(do_setxattr(f, "user.one", "value-1", 7, 0), 0);
    check_xattr_value(f, "xa/f", "user.one");
    /* a binary value with NULs, an empty value, a 64 KiB value */
    const char bin[] = { 0, 1, 2, 0, (char)0xff };
    CHECK_EQ(do_setxattr(f, "user.bin", bin, sizeof(bin), 0), 0);
    check_xattr_value(f, "xa/f", "user.bin");
    CHECK_EQ(do_setxattr(f, "user.empty", "", 0, 0), 0);
    check_xattr_value(f, "xa/f", "user.empty");
    fill((uint8_t *)big, sizeof(big), 7);
    CHECK_SAME(do_setxattr(f, "user.big", big, 4000, 0),
               HOST(lsetxattr(hp("xa/f"), "user.big", big, 4000, 0)));
    check_xattr_value(f, "xa/f", "user.big");
    /* set on the host: visible through FUSE */
    CHECK_EQ(lsetxattr(hp("xa/f"), "user.host", "h", 1, 0), 0);
    check_xattr_value(f, "xa/f", "user.host");
    check_xattr_list(f, "xa/f");

    /* XATTR_CREATE on an existing name, XATTR_REPLACE on a missing one */
    CHECK_SAME(do_setxattr(f, "user.one", "v", 1, XATTR_CREATE),
               HOST(lsetxattr(hp("xa/f"), "user.one", "v", 1, XATTR_CREATE)));
    CHECK_ERR(do_setxattr(f, "user.one", "v", 1, XATTR_CREATE), EEXIST);
    CHECK_SAME(do_setxattr(f, "user.none", "v", 1, XATTR_REPLACE),
               HOST(lsetxattr(hp("xa/f"), "user.none", "v", 1, XATTR_REPLACE)));
    CHECK_ERR(do_setxattr(f, "user.none", "v", 1, XATTR_REPLACE), ENODATA);
    CHECK_EQ(do_setxattr(f, "user.one", "replaced", 8, XATTR_REPLACE), 0);
    check_xattr_value(f, "xa/f", "user.one");

    /* GETXATTR of a missing name: ENODATA; a buffer too small: ERANGE */
    char small[4];
    CHECK_SAME(do_getxattr(FUSE_GETXATTR, f, "user.none", small, sizeof(small)),
               HOST(lgetxattr(hp("xa/f"), "user.none", small, sizeof(small))));
    CHECK_ERR(do_getxattr(FUSE_GETXATTR, f, "user.none", small, sizeof(small)), ENODATA);
    CHECK_SAME(do_getxattr(FUSE_GETXATTR, f, "user.one", small, sizeof(small)),
               HOST(lgetxattr(hp("xa/f"), "user.one", small, sizeof(small))));
    CHECK_ERR(do_getxattr(FUSE_GETXATTR, f, "user.one", small, sizeof(small)), ERANGE);
    CHECK_SAME(do_getxattr(FUSE_LISTXATTR, f, NULL, small, sizeof(small)),
               HOST(llistxattr(hp("xa/f"), small, sizeof(small))));

    /* a namespace that does not exist */
    CHECK_SAME(do_setxattr(f, "bogus.x", "v", 1, 0),
               HOST(lsetxattr(hp("xa/f"), "bogus.x", "v", 1, 0)));

    /* REMOVEXATTR: gone on the host; again: ENODATA */
    CHECK_EQ(do_name_op(FUSE_REMOVEXATTR, f, "user.bin"), 0);
    CHECK(lgetxattr(hp("xa/f"), "user.bin", NULL, 0) < 0 && errno == ENODATA,
          "removed on the host");
    CHECK_SAME(do_name_op(FUSE_REMOVEXATTR, f, "user.bin"),
               HOST(lremovexattr(hp("xa/f"), "user.bin")));
    check_xattr_list(f, "xa/f");

    /* on a directory, and on a symlink (user.* is refused there: EPERM) */
    CHECK_EQ(do_setxattr(d, "user.dir", "dv", 2, 0), 0);
    check_xattr_value(d, "xa", "user.dir");
    check_xattr_list(d, "xa");
    CHECK_EQ(symlink("f", hp("xa/sym")), 0);
    uint64_t s = node_of(d, "sym");
    CHECK_SAME(do_setxattr(s, "user.sym", "v", 1, 0),
               HOST(lsetxattr(hp("xa/sym"), "user.sym", "v", 1, 0)));
    check_xattr_value(s, "xa/sym", "user.one");   /* not the target's */
    check_xattr_list(s, "xa/sym");
    /* on a FIFO: without opening it */
    CHECK_EQ(mkfifo(hp("xa/fifo"), 0644), 0);
    uint64_t ff = node_of(d, "fifo");
    CHECK_SAME(do_setxattr(ff, "user.fifo", "v", 1, 0),
               HOST(lsetxattr(hp("xa/fifo"), "user.fifo", "v", 1, 0)));
    check_xattr_value(ff, "xa/fifo", "user.fifo");
    /* a trusted.* attribute (the daemon is root on the host) */
    check_xattr_list(f, "xa/f");
}

/* ------------------------------------------------------------------ */
/* ACCESS and permissions of the requesting guest user                  */

static void t_access_perms(void)
{
    struct fuse_entry_out e;
    uint64_t fh;
    static const int masks[] = { F_OK, R_OK, W_OK, X_OK, R_OK | W_OK | X_OK };

    CHECK_EQ(do_mkdir(FUSE_ROOT_ID, "pm", 0755, &e), 0);
    uint64_t d = e.nodeid;
    CHECK_EQ(do_mkdir(d, "priv", 0700, &e), 0);   /* root-owned, 0700 */
    uint64_t priv = e.nodeid;
    CHECK_EQ(do_mknod(priv, "secret", S_IFREG | 0644, &e), 0);
    uint64_t secret = e.nodeid;
    CHECK_EQ(do_mknod(d, "rootfile", S_IFREG | 0600, &e), 0);
    uint64_t rootfile = e.nodeid;
    CHECK_EQ(do_mknod(d, "plain", S_IFREG | 0644, &e), 0);
    uint64_t plain = e.nodeid;
    CHECK_EQ(do_mkdir(d, "pub", 0777, &e), 0);
    uint64_t pub = e.nodeid;

    if (UPSTREAM_SKIP("ACCESS is not implemented (ENOSYS)")) {
        CHECK_ERR(do_access(plain, R_OK), ENOSYS);
    } else {
        /* as root: everything but X on a file without any x bit */
        for (unsigned i = 0; i < 5; i++) {
            CHECK_SAME(do_access(plain, (uint32_t)masks[i]), HOST(access(hp("pm/plain"),
                                                                          masks[i])));
            CHECK_SAME(do_access(priv, (uint32_t)masks[i]), HOST(access(hp("pm/priv"),
                                                                         masks[i])));
        }
        /* as uid 1000: the 0700 root directory and the 0600 root file are
         * closed, the 0644 file is readable only */
        as_user();
        struct {
            uint64_t node;
            const char *rel;
        } objs[] = { { priv, "pm/priv" }, { rootfile, "pm/rootfile" }, { plain, "pm/plain" } };
        for (unsigned k = 0; k < 3; k++) {
            for (unsigned i = 0; i < 5; i++) {
                int ret = do_access(objs[k].node, (uint32_t)masks[i]);
                int hret = host_as_user(HOP_ACCESS, hp(objs[k].rel), masks[i]);
                CHECK(ret == hret, "ACCESS(%s, mask %d) as uid %u: fuse %s, host %s",
                      objs[k].rel, masks[i], USER_ID, err_name(ret), err_name(hret));
            }
        }
        as_root();
    }

    /*
     * OPEN / OPENDIR as uid 1000 of root-only objects: EACCES on the host.
     * Neither daemon checks this, by design: a virtiofs guest mounts with
     * default_permissions, so its kernel checks permissions itself with
     * the attributes the daemon gave it and with the caller's
     * supplementary groups (which FUSE does not carry); the daemon opens
     * with its own credentials.  So this is a model difference, not
     * asserted; it is printed.  What is asserted: the user's own files
     * open for it, like on the host (below, in pub/).
     */
    as_user();
    struct {
        uint32_t op;
        uint64_t node;
        const char *rel;
        int flags;
    } opens[] = {
        { FUSE_OPENDIR, priv, "pm/priv", O_RDONLY | O_DIRECTORY },
        { FUSE_OPEN, rootfile, "pm/rootfile", O_RDONLY },
        { FUSE_OPEN, plain, "pm/plain", O_WRONLY },
        { FUSE_OPEN, secret, "pm/priv/secret", O_RDONLY },
    };
    for (unsigned i = 0; i < sizeof(opens) / sizeof(opens[0]); i++) {
        int ret = do_open(opens[i].op, opens[i].node, opens[i].flags & ~O_DIRECTORY, &fh);
        int hret = host_as_user(HOP_OPEN, hp(opens[i].rel), opens[i].flags);
        if (ret != hret) {
            fprintf(stderr, "note: %s of %s as uid %u: daemon %s, host %s (guest checks "
                    "permissions: default_permissions)\n",
                    opens[i].op == FUSE_OPEN ? "OPEN" : "OPENDIR", opens[i].rel, USER_ID,
                    err_name(ret), err_name(hret));
        }
        if (ret == 0) {
            CHECK_EQ(do_release(opens[i].op == FUSE_OPEN ? FUSE_RELEASE : FUSE_RELEASEDIR,
                                opens[i].node, fh, 0, 0), 0);
        }
    }

    /* creating in the 0700 root directory as uid 1000: EACCES */
    CHECK_SAME(do_mkdir(priv, "u_dir", 0755, &e), host_as_user(HOP_MKDIR, hp("pm/priv/h_dir"),
                                                               0755));
    CHECK_SAME(do_create(priv, "u_file", O_RDWR | O_CREAT | O_EXCL, 0100644, &e, &fh),
               host_as_user(HOP_CREATE, hp("pm/priv/h_file"), 0644));
    CHECK_ERR(do_mknod(priv, "u_node", S_IFREG | 0644, &e), EACCES);
    CHECK_ERR(do_symlink(priv, "u_sym", "x", &e), EACCES);
    CHECK(host_missing("pm/priv/u_dir") && host_missing("pm/priv/u_file") &&
          host_missing("pm/priv/u_node") && host_missing("pm/priv/u_sym"),
          "nothing created in the closed directory");

    /* in a 0777 directory: created, owned by the user like on the host */
    int ret = do_create(pub, "u_file", O_RDWR | O_CREAT | O_EXCL, 0100644, &e, &fh);
    CHECK_EQ(ret, 0);
    if (ret == 0) {
        check_attr(&e.attr, "pm/pub/u_file");
        CHECK_EQ(do_release(FUSE_RELEASE, e.nodeid, fh, 0, 0), 0);
    }
    CHECK_EQ(host_as_user(HOP_CREATE, hp("pm/pub/h_file"), 0644), 0);
    CHECK_EQ(do_mkdir(pub, "u_dir", 0755, &e), 0);
    check_attr(&e.attr, "pm/pub/u_dir");
    CHECK_EQ(do_mknod(pub, "u_node", S_IFIFO | 0644, &e), 0);
    check_attr(&e.attr, "pm/pub/u_node");
    CHECK_EQ(do_symlink(pub, "u_sym", "u_file", &e), 0);
    check_attr(&e.attr, "pm/pub/u_sym");
    /* the user's own 0600 file opens for it, read-write, as on the host */
    uint64_t own = node_of(pub, "u_file");
    CHECK_EQ(do_setattr(own, &(struct fuse_setattr_in){ .valid = FATTR_MODE,
                                                        .mode = 0100600 }, NULL), 0);
    ret = do_open(FUSE_OPEN, own, O_RDWR, &fh);
    CHECK_SAME(ret, host_as_user(HOP_OPEN, hp("pm/pub/u_file"), O_RDWR));
    if (ret == 0) {
        CHECK_EQ(fc_write(chan, own, fh, 0, "mine", 4), 4);
        CHECK_EQ(do_release(FUSE_RELEASE, own, fh, 0, 0), 0);
    }
    as_root();
    struct stat su, sh;
    CHECK(lstat(hp("pm/pub/u_file"), &su) == 0 && lstat(hp("pm/pub/h_file"), &sh) == 0 &&
          su.st_uid == sh.st_uid && su.st_gid == sh.st_gid && su.st_uid == USER_ID,
          "created by the user: %u:%u, host %u:%u", su.st_uid, su.st_gid, sh.st_uid,
          sh.st_gid);
    const char *made[] = { "pm/pub/u_dir", "pm/pub/u_node", "pm/pub/u_sym" };
    for (unsigned i = 0; i < 3; i++) {
        CHECK(lstat(hp(made[i]), &su) == 0 && su.st_uid == USER_ID && su.st_gid == USER_ID,
              "%s owned by %u:%u", made[i], su.st_uid, su.st_gid);
    }
}

/* ------------------------------------------------------------------ */
/* GETLK, SETLK, SETLKW (POSIX locks)                                   */

static void t_posix_locks(void)
{
    struct fuse_entry_out e;
    struct fuse_file_lock lk;
    uint64_t fh0, fa, fb;

    CHECK_EQ(do_mkdir(FUSE_ROOT_ID, "lk", 0755, &e), 0);
    uint64_t d = e.nodeid;
    CHECK_EQ(do_create(d, "f", O_RDWR | O_CREAT | O_EXCL, 0100644, &e, &fh0), 0);
    uint64_t f = e.nodeid;
    CHECK_EQ(fc_write(chan, f, fh0, 0, "0123456789", 10), 10);
    CHECK_EQ(do_open(FUSE_OPEN, f, O_RDWR, &fa), 0);
    CHECK_EQ(do_open(FUSE_OPEN, f, O_RDWR, &fb), 0);
    const uint64_t A = 0xa1, B = 0xb2;

    /* A write-locks [0, 99]; B's write lock inside it conflicts */
    CHECK_EQ(do_lk(FUSE_SETLK, f, fa, A, F_WRLCK, 0, 99, 0, NULL), 0);
    CHECK_ERR(do_lk(FUSE_SETLK, f, fb, B, F_WRLCK, 50, 59, 0, NULL), EAGAIN);
    CHECK_ERR(do_lk(FUSE_SETLK, f, fb, B, F_RDLCK, 99, 99, 0, NULL), EAGAIN);
    /* ... outside it does not */
    CHECK_EQ(do_lk(FUSE_SETLK, f, fb, B, F_RDLCK, 100, 199, 0, NULL), 0);
    /* GETLK from B reports A's lock; from A, its own lock is no conflict */
    CHECK_EQ(do_lk(FUSE_GETLK, f, fb, B, F_WRLCK, 0, LK_EOF, 0, &lk), 0);
    CHECK(lk.type == F_WRLCK && lk.start == 0 && lk.end == 99, "GETLK B: type %u [%llu, %llu]",
          lk.type, (unsigned long long)lk.start, (unsigned long long)lk.end);
    CHECK_EQ(do_lk(FUSE_GETLK, f, fa, A, F_WRLCK, 0, 99, 0, &lk), 0);
    CHECK(lk.type == F_UNLCK, "GETLK A on its own lock: type %u", lk.type);
    CHECK_EQ(do_lk(FUSE_GETLK, f, fa, A, F_WRLCK, 150, 160, 0, &lk), 0);
    CHECK(lk.type == F_RDLCK && lk.start == 100 && lk.end == 199,
          "GETLK A sees B's read lock: type %u [%llu, %llu]", lk.type,
          (unsigned long long)lk.start, (unsigned long long)lk.end);

    /* the host sees the daemon's locks, and the daemon the host's */
    int hfd = open(hp("lk/f"), O_RDWR);
    CHECK(hfd >= 0, "open");
    struct flock fl = { .l_type = F_RDLCK, .l_whence = SEEK_SET, .l_start = 10, .l_len = 5 };
    CHECK_EQ(fcntl(hfd, F_OFD_GETLK, &fl), 0);
    CHECK(fl.l_type == F_WRLCK && fl.l_start == 0 && fl.l_len == 100,
          "host GETLK: type %d start %lld len %lld", fl.l_type, (long long)fl.l_start,
          (long long)fl.l_len);
    fl = (struct flock){ .l_type = F_WRLCK, .l_whence = SEEK_SET, .l_start = 50, .l_len = 1 };
    CHECK_ERR(HOST(fcntl(hfd, F_OFD_SETLK, &fl)), EAGAIN);
    fl = (struct flock){ .l_type = F_WRLCK, .l_whence = SEEK_SET, .l_start = 1000,
                         .l_len = 100 };
    CHECK_EQ(fcntl(hfd, F_OFD_SETLK, &fl), 0);
    CHECK_ERR(do_lk(FUSE_SETLK, f, fb, B, F_RDLCK, 1050, 1050, 0, NULL), EAGAIN);
    CHECK_EQ(do_lk(FUSE_GETLK, f, fb, B, F_RDLCK, 900, LK_EOF, 0, &lk), 0);
    CHECK(lk.type == F_WRLCK && lk.start == 1000 && lk.end == 1099,
          "GETLK sees the host lock: type %u [%llu, %llu]", lk.type,
          (unsigned long long)lk.start, (unsigned long long)lk.end);
    if (!H.upstream) {
        CHECK_EQ(lk.pid, 0);   /* a host pid means nothing to the guest */
    }
    close(hfd);   /* drops the host's OFD lock */
    CHECK_EQ(do_lk(FUSE_SETLK, f, fb, B, F_RDLCK, 1050, 1050, 0, NULL), 0);

    /* unlock, then B gets what A had */
    CHECK_EQ(do_lk(FUSE_SETLK, f, fa, A, F_UNLCK, 0, LK_EOF, 0, NULL), 0);
    CHECK_EQ(do_lk(FUSE_SETLK, f, fb, B, F_WRLCK, 50, 59, 0, NULL), 0);
    CHECK_ERR(do_lk(FUSE_SETLK, f, fa, A, F_RDLCK, 55, 55, 0, NULL), EAGAIN);

    /* FLUSH by the owner (the guest's close()) drops that owner's locks */
    CHECK_EQ(do_flush(f, fb, B), 0);
    CHECK_EQ(do_lk(FUSE_SETLK, f, fa, A, F_WRLCK, 0, LK_EOF, 0, NULL), 0);
    CHECK_EQ(do_lk(FUSE_GETLK, f, fb, B, F_RDLCK, 0, LK_EOF, 0, &lk), 0);
    CHECK_EQ(lk.type, F_WRLCK);

    /* Two owners sharing one open file (a forked guest process): POSIX
     * locks belong to the owner, so they conflict -- on the host too, two
     * processes sharing one open file description do. */
    CHECK_EQ(do_lk(FUSE_SETLK, f, fa, A, F_UNLCK, 0, LK_EOF, 0, NULL), 0);
    CHECK_EQ(do_lk(FUSE_SETLK, f, fa, A, F_WRLCK, 2000, 2099, 0, NULL), 0);
    const uint64_t C = 0xc3;
    CHECK_ERR(do_lk(FUSE_SETLK, f, fa, C, F_WRLCK, 2050, 2059, 0, NULL), EAGAIN);
    CHECK_EQ(do_lk(FUSE_GETLK, f, fa, C, F_WRLCK, 2000, 2000, 0, &lk), 0);
    CHECK(lk.type == F_WRLCK && lk.start == 2000 && lk.end == 2099,
          "GETLK by another owner on the same handle: type %u [%llu, %llu]", lk.type,
          (unsigned long long)lk.start, (unsigned long long)lk.end);
    /* ... and C's unlock must not drop A's lock */
    CHECK_EQ(do_lk(FUSE_SETLK, f, fa, C, F_UNLCK, 0, LK_EOF, 0, NULL), 0);
    CHECK_ERR(do_lk(FUSE_SETLK, f, fb, B, F_WRLCK, 2050, 2050, 0, NULL), EAGAIN);

    /* SETLKW that does not have to wait */
    if (!UPSTREAM_SKIP("SETLKW answers EOPNOTSUPP")) {
        CHECK_EQ(do_lk(FUSE_SETLKW, f, fb, B, F_WRLCK, 5000, 5099, 0, NULL), 0);
        CHECK_ERR(do_lk(FUSE_SETLK, f, fa, A, F_WRLCK, 5000, 5000, 0, NULL), EAGAIN);
    }
    /* a bad lock type */
    CHECK_ERR(do_lk(FUSE_SETLK, f, fa, A, 77, 0, 1, 0, NULL), EINVAL);

    /* close() in each owner, as the kernel does it: FLUSH, then RELEASE */
    CHECK_EQ(do_flush(f, fa, A), 0);
    CHECK_EQ(do_flush(f, fa, C), 0);
    CHECK_EQ(do_release(FUSE_RELEASE, f, fa, 0, A), 0);
    CHECK_EQ(do_flush(f, fb, B), 0);
    CHECK_EQ(do_release(FUSE_RELEASE, f, fb, 0, B), 0);
    CHECK_EQ(do_flush(f, fh0, 0), 0);
    CHECK_EQ(do_release(FUSE_RELEASE, f, fh0, 0, 0), 0);
    /* every handle closed: no lock left */
    hfd = open(hp("lk/f"), O_RDWR);
    fl = (struct flock){ .l_type = F_WRLCK, .l_whence = SEEK_SET };
    CHECK_EQ(fcntl(hfd, F_OFD_GETLK, &fl), 0);
    CHECK_EQ(fl.l_type, F_UNLCK);
    close(hfd);
}

/* ------------------------------------------------------------------ */
/* flock() through SETLK/SETLKW with FUSE_LK_FLOCK                      */

static void t_flock(void)
{
    struct fuse_entry_out e;
    uint64_t fa, fb;

    CHECK_EQ(do_mkdir(FUSE_ROOT_ID, "fl", 0755, &e), 0);
    uint64_t d = e.nodeid;
    CHECK_EQ(do_create(d, "f", O_RDWR | O_CREAT | O_EXCL, 0100644, &e, &fa), 0);
    uint64_t f = e.nodeid;
    CHECK_EQ(do_open(FUSE_OPEN, f, O_RDONLY, &fb), 0);
    int hfd = open(hp("fl/f"), O_RDONLY);
    CHECK(hfd >= 0, "open");

    /* A exclusive: B and the host are refused, shared or exclusive */
    CHECK_EQ(do_lk(FUSE_SETLK, f, fa, 1, F_WRLCK, 0, 0, FUSE_LK_FLOCK, NULL), 0);
    CHECK_ERR(do_lk(FUSE_SETLK, f, fb, 2, F_RDLCK, 0, 0, FUSE_LK_FLOCK, NULL), EWOULDBLOCK);
    CHECK_ERR(HOST(flock(hfd, LOCK_SH | LOCK_NB)), EWOULDBLOCK);
    /* converting one's own lock is fine */
    CHECK_EQ(do_lk(FUSE_SETLK, f, fa, 1, F_RDLCK, 0, 0, FUSE_LK_FLOCK, NULL), 0);
    CHECK_EQ(do_lk(FUSE_SETLK, f, fb, 2, F_RDLCK, 0, 0, FUSE_LK_FLOCK, NULL), 0);
    CHECK_EQ(HOST(flock(hfd, LOCK_SH | LOCK_NB)), 0);
    CHECK_ERR(HOST(flock(hfd, LOCK_EX | LOCK_NB)), EWOULDBLOCK);
    CHECK_EQ(HOST(flock(hfd, LOCK_UN)), 0);
    CHECK_ERR(do_lk(FUSE_SETLK, f, fa, 1, F_WRLCK, 0, 0, FUSE_LK_FLOCK, NULL), EWOULDBLOCK);
    /* unlock */
    CHECK_EQ(do_lk(FUSE_SETLK, f, fb, 2, F_UNLCK, 0, 0, FUSE_LK_FLOCK, NULL), 0);
    CHECK_EQ(do_lk(FUSE_SETLK, f, fa, 1, F_WRLCK, 0, 0, FUSE_LK_FLOCK, NULL), 0);
    CHECK_EQ(do_lk(FUSE_SETLK, f, fa, 1, F_UNLCK, 0, 0, FUSE_LK_FLOCK, NULL), 0);
    /* the host holds it: the daemon is refused */
    CHECK_EQ(HOST(flock(hfd, LOCK_EX | LOCK_NB)), 0);
    CHECK_ERR(do_lk(FUSE_SETLK, f, fb, 2, F_RDLCK, 0, 0, FUSE_LK_FLOCK, NULL), EWOULDBLOCK);
    CHECK_EQ(HOST(flock(hfd, LOCK_UN)), 0);

    /* RELEASE with FUSE_RELEASE_FLOCK_UNLOCK drops B's lock */
    CHECK_EQ(do_lk(FUSE_SETLK, f, fb, 2, F_WRLCK, 0, 0, FUSE_LK_FLOCK, NULL), 0);
    CHECK_EQ(do_release(FUSE_RELEASE, f, fb, FUSE_RELEASE_FLOCK_UNLOCK, 2), 0);
    CHECK_EQ(HOST(flock(hfd, LOCK_EX | LOCK_NB)), 0);
    CHECK_EQ(HOST(flock(hfd, LOCK_UN)), 0);

    /* the blocking form, when nothing is in the way */
    if (!UPSTREAM_SKIP("flock without LOCK_NB (SETLKW) is refused")) {
        CHECK_EQ(do_lk(FUSE_SETLKW, f, fa, 1, F_WRLCK, 0, 0, FUSE_LK_FLOCK, NULL), 0);
        CHECK_ERR(HOST(flock(hfd, LOCK_SH | LOCK_NB)), EWOULDBLOCK);
    }
    CHECK_EQ(do_release(FUSE_RELEASE, f, fa, FUSE_RELEASE_FLOCK_UNLOCK, 1), 0);
    CHECK_EQ(HOST(flock(hfd, LOCK_EX | LOCK_NB)), 0);
    close(hfd);
}

/* ------------------------------------------------------------------ */
/* FALLOCATE, LSEEK, COPY_FILE_RANGE                                    */

#define FA_SIZE (1u << 20)

/* A FUSE-created file and a host twin with the same content. */
static uint64_t make_pair(uint64_t dir, const char *name, const char *twin_name,
                          const uint8_t *data, size_t n, uint64_t *fh)
{
    struct fuse_entry_out e;
    CHECK_EQ(do_create(dir, name, O_RDWR | O_CREAT | O_EXCL, 0100644, &e, fh), 0);
    for (size_t off = 0; off < n; off += 65536) {
        uint32_t k = (uint32_t)(n - off < 65536 ? n - off : 65536);
        CHECK_EQ(fc_write(chan, e.nodeid, *fh, off, data + off, k), k);
    }
    host_write_file(twin(twin_name), data, n, 0644);
    return e.nodeid;
}

static void compare_pair(const char *rel, const char *twin_name, const char *what)
{
    struct stat a, b;
    CHECK_EQ(stat(hp(rel), &a), 0);
    CHECK_EQ(stat(twin(twin_name), &b), 0);
    CHECK(a.st_size == b.st_size, "%s: size %lld vs host %lld", what, (long long)a.st_size,
          (long long)b.st_size);
    /* Allocation, not just size: a punched hole frees blocks on both.  One
     * 4 KiB block of slack for an extent-tree block, should the two
     * files' extents have been laid out differently. */
    CHECK(llabs((long long)a.st_blocks - (long long)b.st_blocks) <= 8,
          "%s: blocks %lld vs host %lld", what, (long long)a.st_blocks,
          (long long)b.st_blocks);
    size_t n = (size_t)(a.st_size > b.st_size ? a.st_size : b.st_size);
    uint8_t *x = calloc(1, n + 1), *y = calloc(1, n + 1);
    host_read(hp(rel), x, n, 0, a.st_size);
    host_read(twin(twin_name), y, n, 0, b.st_size);
    CHECK(!memcmp(x, y, n), "%s: content differs from the host twin", what);
    free(x);
    free(y);
}

static void t_fallocate(void)
{
    struct fuse_entry_out e;
    uint64_t fh;
    uint8_t *data = malloc(FA_SIZE);
    fill(data, FA_SIZE, 11);

    CHECK_EQ(do_mkdir(FUSE_ROOT_ID, "fa", 0755, &e), 0);
    uint64_t d = e.nodeid;
    uint64_t f = make_pair(d, "f", "fa", data, FA_SIZE / 2, &fh);
    CHECK_EQ(do_fsync(FUSE_FSYNC, f, fh, false), 0);
    int tfd = open(twin("fa"), O_RDWR);
    CHECK_EQ(fsync(tfd), 0);

    static const struct {
        uint64_t off, len;
        int mode;
        const char *what;
    } ops[] = {
        { 0, FA_SIZE, 0, "allocate and extend" },
        { FA_SIZE, 65536, FALLOC_FL_KEEP_SIZE, "preallocate past EOF, keep size" },
        { 4096, 3 * 4096, FALLOC_FL_PUNCH_HOLE | FALLOC_FL_KEEP_SIZE, "punch a hole" },
        { 100, 1000, FALLOC_FL_PUNCH_HOLE | FALLOC_FL_KEEP_SIZE, "punch inside a block" },
        { 65536, 4096, FALLOC_FL_ZERO_RANGE, "zero a range" },
        { 0, 4096, FALLOC_FL_PUNCH_HOLE, "punch without KEEP_SIZE (EOPNOTSUPP)" },
        { 0, 0, 0, "zero length (EINVAL)" },
    };
    for (unsigned i = 0; i < sizeof(ops) / sizeof(ops[0]); i++) {
        int ret = do_fallocate(f, fh, ops[i].off, ops[i].len, (uint32_t)ops[i].mode);
        int hret = HOST(fallocate(tfd, ops[i].mode, (off_t)ops[i].off, (off_t)ops[i].len));
        CHECK(ret == hret, "fallocate %s: fuse %s host %s", ops[i].what, err_name(ret),
              err_name(hret));
        compare_pair("fa/f", "fa", ops[i].what);
        check_node(f, "fa/f");
    }
    /* through a read-only handle: EBADF, like fallocate(2) */
    uint64_t rfh;
    CHECK_EQ(do_open(FUSE_OPEN, f, O_RDONLY, &rfh), 0);
    int rfd = open(twin("fa"), O_RDONLY);
    CHECK_SAME(do_fallocate(f, rfh, 0, 4096, 0), HOST(fallocate(rfd, 0, 0, 4096)));
    close(rfd);
    CHECK_EQ(do_release(FUSE_RELEASE, f, rfh, 0, 0), 0);
    close(tfd);
    CHECK_EQ(do_release(FUSE_RELEASE, f, fh, 0, 0), 0);
    free(data);
}

static void t_lseek(void)
{
    struct fuse_entry_out e;
    uint64_t fh;
    uint8_t blk[4096];
    fill(blk, sizeof(blk), 13);

    CHECK_EQ(do_mkdir(FUSE_ROOT_ID, "sk", 0755, &e), 0);
    uint64_t d = e.nodeid;
    CHECK_EQ(do_create(d, "f", O_RDWR | O_CREAT | O_EXCL, 0100644, &e, &fh), 0);
    uint64_t f = e.nodeid;
    /* data at [0, 4K) and [1M, 1M+4K), size 2M: two holes */
    CHECK_EQ(fc_write(chan, f, fh, 0, blk, sizeof(blk)), 4096);
    CHECK_EQ(fc_write(chan, f, fh, 1 << 20, blk, sizeof(blk)), 4096);
    struct fuse_setattr_in in = { .valid = FATTR_SIZE | FATTR_FH, .fh = fh, .size = 2 << 20 };
    CHECK_EQ(do_setattr(f, &in, NULL), 0);
    CHECK_EQ(do_fsync(FUSE_FSYNC, f, fh, false), 0);

    int hfd = open(hp("sk/f"), O_RDONLY);
    CHECK(hfd >= 0, "open");
    static const uint64_t offs[] = { 0, 100, 4096, 8192, (1 << 20) - 1, 1 << 20,
                                     (1 << 20) + 4095, (1 << 20) + 4096, (2 << 20) - 1,
                                     2 << 20, 3 << 20 };
    for (unsigned i = 0; i < sizeof(offs) / sizeof(offs[0]); i++) {
        for (int w = SEEK_DATA; w <= SEEK_HOLE; w++) {
            int64_t r = do_lseek(f, fh, offs[i], (uint32_t)w);
            off_t hr = lseek(hfd, (off_t)offs[i], w);
            int64_t hv = hr < 0 ? -errno : hr;
            CHECK(r == hv, "lseek(%llu, %s): fuse %lld (%s), host %lld (%s)",
                  (unsigned long long)offs[i], w == SEEK_DATA ? "DATA" : "HOLE",
                  (long long)r, err_name(r < 0 ? (int)r : 0), (long long)hv,
                  err_name(hv < 0 ? (int)hv : 0));
        }
    }
    close(hfd);
    CHECK_EQ(do_release(FUSE_RELEASE, f, fh, 0, 0), 0);
}

static void t_copy_file_range(void)
{
    struct fuse_entry_out e;
    uint64_t fs, fd_, fro;
    size_t n = 200000;
    uint8_t *data = malloc(n);
    fill(data, n, 17);

    CHECK_EQ(do_mkdir(FUSE_ROOT_ID, "cf", 0755, &e), 0);
    uint64_t d = e.nodeid;
    uint64_t src = make_pair(d, "src", "cf_src", data, n, &fs);
    CHECK_EQ(do_create(d, "dst", O_RDWR | O_CREAT | O_EXCL, 0100644, &e, &fd_), 0);
    uint64_t dst = e.nodeid;
    host_write_file(twin("cf_dst"), "", 0, 0644);
    int ts = open(twin("cf_src"), O_RDONLY), td = open(twin("cf_dst"), O_RDWR);

    static const struct {
        uint64_t off_in, off_out, len;
        const char *what;
    } ops[] = {
        { 1000, 3000, 50000, "a middle range" },
        { 0, 0, 4096, "the head over the head" },
        { 150000, 100000, 100000, "running past the source's EOF (short)" },
        { 300000, 0, 100, "from past the source's EOF (0)" },
        { 0, 400000, 10, "to far past the destination's EOF" },
    };
    for (unsigned i = 0; i < sizeof(ops) / sizeof(ops[0]); i++) {
        ssize_t r = do_copy_range(src, fs, ops[i].off_in, dst, fd_, ops[i].off_out, ops[i].len,
                                  0);
        loff_t oi = (loff_t)ops[i].off_in, oo = (loff_t)ops[i].off_out;
        ssize_t hr = copy_file_range(ts, &oi, td, &oo, ops[i].len, 0);
        if (hr < 0) {
            hr = -errno;
        }
        CHECK(r == hr, "copy_file_range %s: fuse %zd host %zd", ops[i].what, r, hr);
        compare_pair("cf/dst", "cf_dst", ops[i].what);
    }
    check_node(dst, "cf/dst");
    /* errors: unknown flags (EINVAL), a read-only destination (EBADF) */
    loff_t oi = 0, oo = 0;
    CHECK_SAME(do_copy_range(src, fs, 0, dst, fd_, 0, 10, 1),
               HOST(copy_file_range(ts, &oi, td, &oo, 10, 1)));
    CHECK_EQ(do_open(FUSE_OPEN, dst, O_RDONLY, &fro), 0);
    int tro = open(twin("cf_dst"), O_RDONLY);
    CHECK_SAME(do_copy_range(src, fs, 0, dst, fro, 0, 10, 0),
               HOST(copy_file_range(ts, &oi, tro, &oo, 10, 0)));
    close(tro);
    /* within one file, non-overlapping */
    oi = 0;
    oo = 150000;
    CHECK_SAME(do_copy_range(dst, fd_, 0, dst, fd_, 150000, 1000, 0),
               copy_file_range(td, &oi, td, &oo, 1000, 0));
    compare_pair("cf/dst", "cf_dst", "copy within one file");
    close(ts);
    close(td);
    CHECK_EQ(do_release(FUSE_RELEASE, dst, fro, 0, 0), 0);
    CHECK_EQ(do_release(FUSE_RELEASE, dst, fd_, 0, 0), 0);
    CHECK_EQ(do_release(FUSE_RELEASE, src, fs, 0, 0), 0);
    free(data);
}

/* ------------------------------------------------------------------ */
/* FORGET, BATCH_FORGET, DESTROY                                        */

static void t_forget(void)
{
    /* FORGET each lookup of one node, then the rest in BATCH_FORGETs of
     * at most 64 entries, exactly as many as were handed out. */
    uint64_t n = node_of(FUSE_ROOT_ID, "io");
    forget1(n);
    struct fuse_forget_one batch[64];
    unsigned k = 0, total = 0;
    for (unsigned i = 0; i < nheld; i++) {
        if (!held[i].n) {
            continue;
        }
        batch[k].nodeid = held[i].nodeid;
        batch[k++].nlookup = held[i].n;
        total++;
        held[i].n = 0;
        if (k == 64) {
            CHECK_EQ(fc_batch_forget(H.hiprio, batch, k), 0);
            k = 0;
        }
    }
    if (k) {
        CHECK_EQ(fc_batch_forget(H.hiprio, batch, k), 0);
    }
    fprintf(stderr, "forgot %u nodes\n", total);
    /* everything is still reachable by name afterwards */
    struct fuse_entry_out e;
    CHECK_EQ(do_lookup(FUSE_ROOT_ID, "io", &e), 0);
    check_attr(&e.attr, "io");
    uint64_t f = node_of(e.nodeid, "hostfile");
    check_node(f, "io/hostfile");
    check_node(FUSE_ROOT_ID, ".");
}

static void t_destroy(void)
{
    /* DESTROY (umount) is answered; a new INIT (mount) then starts over
     * and the share is still there. */
    CHECK_EQ(fc_generic(chan, FUSE_DESTROY, 0, NULL, 0, NULL, 0, NULL), 0);
    nheld = 0;   /* the daemon dropped every node */
    struct fuse_init_out io;
    /* This time offer lock support, as a kernel does: -o posix_lock and
     * -o flock make the daemon take it. */
    struct fc_init_opts o = {
        .flags = FC_DEFAULT_INIT_FLAGS | FUSE_POSIX_LOCKS | FUSE_FLOCK_LOCKS,
    };
    int ret = fc_init(chan, &o, &io);
    CHECK(ret == 0, "INIT after DESTROY: %s", err_name(ret));
    if (ret) {
        return;
    }
    CHECK_EQ(io.major, 7);
    CHECK(io.flags & FUSE_POSIX_LOCKS, "INIT flags 0x%x lack POSIX_LOCKS", io.flags);
    CHECK(io.flags & FUSE_FLOCK_LOCKS, "INIT flags 0x%x lack FLOCK_LOCKS", io.flags);
    struct fuse_entry_out e;
    CHECK_EQ(do_lookup(FUSE_ROOT_ID, "io", &e), 0);
    check_attr(&e.attr, "io");
    check_node(FUSE_ROOT_ID, ".");
}

int main(int argc, char **argv)
{
    /* The daemon options the lock and xattr opcodes need; both daemons
     * take them. */
    const char *extra = getenv("VUF_EXTRA_ARGS");
    char args[512];
    snprintf(args, sizeof(args), "%s%s%s", DAEMON_OPTS, extra ? " " : "", extra ? extra : "");
    setenv("VUF_EXTRA_ARGS", args, 1);

    int rc = harness_start(&H, argc, argv, NULL);
    if (rc != T_PASS) {
        return rc;
    }
    /* mkdtemp made the scratch root 0700: let the uid-1000 host checks
     * reach the share. */
    CHECK_EQ(chmod(H.dir, 0711), 0);
    struct {
        const char *name;
        void (*fn)(void);
    } parts[] = {
        { "init", t_init },
        { "statfs", t_statfs },
        { "lookup/getattr", t_lookup_getattr },
        { "mkdir/mknod/symlink/readlink", t_make_nodes },
        { "create/open/read/write/flush/fsync/release", t_files },
        { "setattr", t_setattr },
        { "link", t_link },
        { "rename/rename2", t_rename },
        { "unlink/rmdir", t_remove },
        { "opendir/readdir/readdirplus/fsyncdir/releasedir", t_readdir },
        { "xattr", t_xattr },
        { "access/permissions", t_access_perms },
        { "getlk/setlk/setlkw", t_posix_locks },
        { "flock", t_flock },
        { "fallocate", t_fallocate },
        { "lseek", t_lseek },
        { "copy_file_range", t_copy_file_range },
        { "forget/batch_forget", t_forget },
        { "destroy/init", t_destroy },
    };
    for (unsigned i = 0; i < sizeof(parts) / sizeof(parts[0]); i++) {
        int before = t_failures;
        as_root();
        chan = fc_chan_get(H.c, 1 + i % H.queues);
        parts[i].fn();
        fprintf(stderr, "%-50s %s\n", parts[i].name, t_failures == before ? "ok" : "FAILED");
    }
    /* the daemon is still alive and answering after all that */
    CHECK_EQ(fc_getattr(chan, FUSE_ROOT_ID, &(struct fuse_attr_out){ 0 }), 0);
    if (upstream_skips) {
        fprintf(stderr, "%d upstream skip(s), listed above\n", upstream_skips);
    }

    rc = harness_stop(&H);
    if (t_failures) {
        fprintf(stderr, "%d check(s) failed\n", t_failures);
        return T_FAIL;
    }
    return rc;
}
