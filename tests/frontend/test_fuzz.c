/* SPDX-License-Identifier: GPL-2.0-or-later */
/*
 * Seeded random FUSE requests against a live daemon: the hostile inputs
 * nobody listed.  The hostile suite sends one known-bad input per case;
 * this sends thousands of mostly-plausible requests -- every opcode of
 * <linux/fuse.h> and some that are not, argument structs filled with
 * boundary values, names from a hostile list, node ids and file handles
 * the daemon really handed out (or stale or invented ones), header lengths
 * that lie, truncated or padded bodies, odd descriptor splits, indirect
 * tables, writable areas from 0 bytes to 132 KiB, several queues at once
 * and the hiprio queue too -- so the handlers run deep, in sequences no
 * case table holds.
 *
 * Asserted, for every daemon (only "every request completes" is a
 * judgement on upstream too):
 *  - after every batch a well-formed GETATTR answers on every request
 *    queue (a DESTROY may end the session: then INIT must work again);
 *  - every completion is one of ours, once, with used length <= the
 *    writable bytes, and when it carries a reply header: header length ==
 *    used length, our unique, an error in [-4095, 0];
 *  - every request completes (SETLKW may wait on a lock the fuzzer holds;
 *    it must complete once the locks are gone at the end);
 *  - nothing next to the share is read or changed (marker file, empty
 *    directory, the scratch directory's entries);
 *  - the daemon exits cleanly when the frontend goes away (under ASan:
 *    no report).
 *
 * Usage: test_frontend_fuzz [harness options] [--seed N] [--rounds N]
 *   --seed / $VUF_FUZZ_SEED    (default 1; the run prints it)
 *   --rounds / $VUF_FUZZ_ROUNDS  batches of 1..24 requests (default 3000)
 *   $VUF_FUZZ_TRACE=1          one line per completion (opcode, error)
 * A failure prints the seed, the round and the request: rerun with the
 * same seed, rounds and daemon options to reproduce.
 *
 * Sizes that would fill the host disk (FALLOCATE, COPY_FILE_RANGE lengths)
 * are capped at 1 MiB; huge values for them are the hostile suite's job.
 */
#include "harness.h"
#include "fuzz_util.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <stdarg.h>
#include <linux/fuse.h>
#include <linux/virtio_ring.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

static struct harness H;

/* A value a parser gets wrong: boundaries, sign flips, page sizes. */
static uint64_t interesting(void)
{
    static const uint64_t v[] = {
        0, 1, 2, 3, 7, 8, 15, 16, 40, 255, 256, 511, 512, 4095, 4096, 4097,
        65535, 65536, 131072, 1048576, 0x7fffffffULL, 0x80000000ULL,
        0xffffffffULL, 0x100000000ULL, 0x7fffffffffffffffULL,
        0x8000000000000000ULL, 0xffffffffffffffffULL, 0xfffffffffffffff0ULL,
    };
    switch (below(4)) {
    case 0:
        return v[below(sizeof(v) / sizeof(v[0]))];
    case 1:
        return below(64);
    case 2:
        return below(1u << 20);
    default:
        return rnd64();
    }
}

/* ---- what the daemon handed out ---- */

#define POOL 48
struct pool {
    uint64_t v[POOL];
    unsigned n;
};
static struct pool nodes, fhs;
static uint64_t fh_node[POOL];    /* the node each fhs.v[] was opened on */
static uint64_t req_node;         /* the request's node id (fill_arg may pick it) */

static void pool_add(struct pool *p, uint64_t v)
{
    if (p->n < POOL) {
        p->v[p->n++] = v;
    } else {
        p->v[below(POOL)] = v;
    }
}

static bool tame;  /* this request is one a kernel could send */

static uint64_t pick_node(void)
{
    if (chance(tame ? 1 : 8)) {
        return interesting();
    }
    if (nodes.n == 0 || chance(15)) {
        return FUSE_ROOT_ID;
    }
    return nodes.v[below(nodes.n)];
}

/* A handle; a tame request also takes the node it was opened on. */
/* A tame FORGET gives the reference back: the node leaves the pool. */
static void pool_drop(struct pool *p, uint64_t v)
{
    for (unsigned i = 0; i < p->n; i++) {
        if (p->v[i] == v) {
            p->v[i] = p->v[--p->n];
            return;
        }
    }
}

static uint64_t pick_fh(void)
{
    if (fhs.n == 0 || chance(tame ? 2 : 10)) {
        return interesting();
    }
    unsigned i = below(fhs.n);
    if (tame && chance(90)) {
        req_node = fh_node[i];
    }
    return fhs.v[i];
}

/* Names: existing entries, fresh ones, and the ones a parser must refuse. */
static const char *const good_names[] = {
    "f0", "f1", "f2", "d0", "d1", "sub", "lnk", "abs", "up", "fifo", "n0",
    "n1", "n2", "n3", "x",
};
static const char *const bad_names[] = {
    ".", "..", "", "a/b", "/", "../outside", "../marker", "f0/", "..."
};

/* Appends a name (with its NUL, unless chance says otherwise). */
static size_t put_name(uint8_t *p, size_t room)
{
    char tmp[300];
    const char *s;
    size_t len;

    switch (tame ? 3 + below(7) : below(10)) {
    case 0:
        s = bad_names[below(sizeof(bad_names) / sizeof(bad_names[0]))];
        len = strlen(s);
        break;
    case 1: {   /* random bytes, maybe with NUL or '/' inside */
        len = 1 + below(40);
        for (size_t i = 0; i < len; i++) {
            tmp[i] = (char)(chance(90) ? 'a' + below(26) : below(256));
        }
        s = tmp;
        break;
    }
    case 2:     /* NAME_MAX and beyond */
        len = 254 + below(4);
        memset(tmp, 'L', len);
        s = tmp;
        break;
    default:
        s = good_names[below(sizeof(good_names) / sizeof(good_names[0]))];
        len = strlen(s);
        break;
    }
    if (len + 1 > room) {
        return 0;
    }
    memcpy(p, s, len);
    if (tame || chance(90)) {
        p[len++] = 0;
    }
    return len;
}

/* ---- opcodes ---- */

struct op {
    uint32_t opcode;
    const char *name;
    uint16_t arg;     /* fixed argument struct */
    uint8_t names;    /* NUL-terminated names after it */
    uint8_t weight;
    uint32_t out;     /* reply payload a kernel would reserve */
};

#define OP(o, a, n, w, out) { o, #o, a, n, w, out }
static const struct op ops[] = {
    OP(FUSE_LOOKUP, 0, 1, 10, sizeof(struct fuse_entry_out)),
    OP(FUSE_FORGET, sizeof(struct fuse_forget_in), 0, 2, 0),
    OP(FUSE_GETATTR, sizeof(struct fuse_getattr_in), 0, 5, sizeof(struct fuse_attr_out)),
    OP(FUSE_SETATTR, sizeof(struct fuse_setattr_in), 0, 5, sizeof(struct fuse_attr_out)),
    OP(FUSE_READLINK, 0, 0, 2, 4096),
    OP(FUSE_SYMLINK, 0, 2, 3, sizeof(struct fuse_entry_out)),
    OP(FUSE_MKNOD, sizeof(struct fuse_mknod_in), 1, 3, sizeof(struct fuse_entry_out)),
    OP(FUSE_MKDIR, sizeof(struct fuse_mkdir_in), 1, 4, sizeof(struct fuse_entry_out)),
    OP(FUSE_UNLINK, 0, 1, 3, 0),
    OP(FUSE_RMDIR, 0, 1, 3, 0),
    OP(FUSE_RENAME, sizeof(struct fuse_rename_in), 2, 3, 0),
    OP(FUSE_LINK, sizeof(struct fuse_link_in), 1, 3, sizeof(struct fuse_entry_out)),
    OP(FUSE_OPEN, sizeof(struct fuse_open_in), 0, 8, sizeof(struct fuse_open_out)),
    OP(FUSE_READ, sizeof(struct fuse_read_in), 0, 8, 8192),
    OP(FUSE_WRITE, sizeof(struct fuse_write_in), 0, 8, sizeof(struct fuse_write_out)),
    OP(FUSE_STATFS, 0, 0, 1, sizeof(struct fuse_statfs_out)),
    OP(FUSE_RELEASE, sizeof(struct fuse_release_in), 0, 4, 0),
    OP(FUSE_FSYNC, sizeof(struct fuse_fsync_in), 0, 2, 0),
    OP(FUSE_SETXATTR, FUSE_COMPAT_SETXATTR_IN_SIZE, 1, 3, 0), /* no SETXATTR_EXT */
    OP(FUSE_GETXATTR, sizeof(struct fuse_getxattr_in), 1, 3, 256),
    OP(FUSE_LISTXATTR, sizeof(struct fuse_getxattr_in), 0, 2, 256),
    OP(FUSE_REMOVEXATTR, 0, 1, 2, 0),
    OP(FUSE_FLUSH, sizeof(struct fuse_flush_in), 0, 2, 0),
    OP(FUSE_INIT, sizeof(struct fuse_init_in), 0, 1, sizeof(struct fuse_init_out)),
    OP(FUSE_OPENDIR, sizeof(struct fuse_open_in), 0, 4, sizeof(struct fuse_open_out)),
    OP(FUSE_READDIR, sizeof(struct fuse_read_in), 0, 4, 4096),
    OP(FUSE_RELEASEDIR, sizeof(struct fuse_release_in), 0, 3, 0),
    OP(FUSE_FSYNCDIR, sizeof(struct fuse_fsync_in), 0, 1, 0),
    OP(FUSE_GETLK, sizeof(struct fuse_lk_in), 0, 2, sizeof(struct fuse_lk_out)),
    OP(FUSE_SETLK, sizeof(struct fuse_lk_in), 0, 2, 0),
    OP(FUSE_SETLKW, sizeof(struct fuse_lk_in), 0, 1, 0),
    OP(FUSE_ACCESS, sizeof(struct fuse_access_in), 0, 2, 0),
    OP(FUSE_CREATE, sizeof(struct fuse_create_in), 1, 6,
       sizeof(struct fuse_entry_out) + sizeof(struct fuse_open_out)),
    OP(FUSE_INTERRUPT, sizeof(struct fuse_interrupt_in), 0, 1, 0),
    OP(FUSE_BMAP, sizeof(struct fuse_bmap_in), 0, 1, sizeof(struct fuse_bmap_out)),
    OP(FUSE_DESTROY, 0, 0, 0, 0),  /* weight 0: sent on its own schedule */
    OP(FUSE_IOCTL, sizeof(struct fuse_ioctl_in), 0, 1, sizeof(struct fuse_ioctl_out)),
    OP(FUSE_POLL, sizeof(struct fuse_poll_in), 0, 1, sizeof(struct fuse_poll_out)),
    OP(FUSE_NOTIFY_REPLY, sizeof(struct fuse_notify_retrieve_in), 0, 1, 0),
    OP(FUSE_BATCH_FORGET, sizeof(struct fuse_batch_forget_in), 0, 2, 0),
    OP(FUSE_FALLOCATE, sizeof(struct fuse_fallocate_in), 0, 2, 0),
    OP(FUSE_READDIRPLUS, sizeof(struct fuse_read_in), 0, 4, 8192),
    OP(FUSE_RENAME2, sizeof(struct fuse_rename2_in), 2, 3, 0),
    OP(FUSE_LSEEK, sizeof(struct fuse_lseek_in), 0, 2, sizeof(struct fuse_lseek_out)),
    OP(FUSE_COPY_FILE_RANGE, sizeof(struct fuse_copy_file_range_in), 0, 2,
       sizeof(struct fuse_write_out)),
    OP(FUSE_SETUPMAPPING, sizeof(struct fuse_setupmapping_in), 0, 1, 0),
    OP(FUSE_REMOVEMAPPING, sizeof(struct fuse_removemapping_in), 0, 1, 0),
    OP(FUSE_SYNCFS, sizeof(struct fuse_syncfs_in), 0, 1, 0),
    OP(FUSE_TMPFILE, sizeof(struct fuse_create_in), 1, 2,
       sizeof(struct fuse_entry_out) + sizeof(struct fuse_open_out)),
    OP(CUSE_INIT, sizeof(struct fuse_init_in), 0, 1, 0),
    OP(0, 0, 0, 1, 0),             /* opcode 0 */
    OP(53, 16, 0, 1, 0),           /* past the last one */
};
#define NOPS (sizeof(ops) / sizeof(ops[0]))

static unsigned weight_total;

static const struct op *pick_op(void)
{
    uint32_t w = below(weight_total);
    for (unsigned i = 0; i < NOPS; i++) {
        if (w < ops[i].weight) {
            return &ops[i];
        }
        w -= ops[i].weight;
    }
    return &ops[0];
}

static bool no_reply_op(uint32_t opcode)
{
    return opcode == FUSE_FORGET || opcode == FUSE_BATCH_FORGET;
}

/* Plausible-but-random argument struct: boundary values, with the fields
 * that name daemon objects (fh, node ids) mostly real ones. */
static void fill_arg(uint32_t opcode, uint8_t *a, size_t len)
{
    for (size_t i = 0; i + 4 <= len; i += 4) {
        uint32_t v = tame ? 0 : (uint32_t)interesting();
        memcpy(a + i, &v, 4);
    }
#define SET(type, field, val)                                                 \
    do {                                                                      \
        __typeof__(((type *)0)->field) v_ = (val);                            \
        memcpy(a + offsetof(type, field), &v_, sizeof(v_));                   \
    } while (0)
    switch (opcode) {
    case FUSE_FORGET:
        SET(struct fuse_forget_in, nlookup, tame ? 1 : interesting());
        pool_drop(&nodes, req_node);
        break;
    case FUSE_GETATTR:
        SET(struct fuse_getattr_in, fh, pick_fh());
        if (tame) {
            SET(struct fuse_getattr_in, getattr_flags, below(2) ? FUSE_GETATTR_FH : 0);
        }
        break;
    case FUSE_SETATTR:
        SET(struct fuse_setattr_in, fh, pick_fh());
        if (tame) {
            SET(struct fuse_setattr_in, valid, (uint32_t)rnd64() & 0x1ff);
            SET(struct fuse_setattr_in, size, below(1u << 16));
            SET(struct fuse_setattr_in, mode, below(2) ? 0100000 | below(07777) : below(07777));
            SET(struct fuse_setattr_in, uid, chance(80) ? 0 : 1000);
            SET(struct fuse_setattr_in, gid, chance(80) ? 0 : 1000);
        }
        break;
    case FUSE_MKNOD:
        if (tame) {
            static const uint32_t types[] = { S_IFREG, S_IFIFO, S_IFSOCK, S_IFCHR, S_IFBLK, S_IFDIR };
            SET(struct fuse_mknod_in, mode, types[below(6)] | 0644);
            SET(struct fuse_mknod_in, umask, 022);
        }
        break;
    case FUSE_MKDIR:
        if (tame) {
            SET(struct fuse_mkdir_in, mode, 0755);
            SET(struct fuse_mkdir_in, umask, 022);
        }
        break;
    case FUSE_RENAME:
        SET(struct fuse_rename_in, newdir, pick_node());
        break;
    case FUSE_RENAME2:
        SET(struct fuse_rename2_in, newdir, pick_node());
        if (tame) {
            SET(struct fuse_rename2_in, flags, below(8));
        }
        break;
    case FUSE_LINK:
        SET(struct fuse_link_in, oldnodeid, pick_node());
        break;
    case FUSE_OPEN:
    case FUSE_OPENDIR:
        if (tame) {
            static const uint32_t fl[] = { O_RDONLY, O_WRONLY, O_RDWR, O_RDWR | O_TRUNC,
                                           O_WRONLY | O_APPEND, O_RDONLY | O_DIRECTORY,
                                           O_RDWR | O_DIRECT, O_RDONLY | O_NOFOLLOW };
            SET(struct fuse_open_in, flags, fl[below(8)]);
        }
        break;
    case FUSE_READ:
    case FUSE_READDIR:
    case FUSE_READDIRPLUS:
        SET(struct fuse_read_in, fh, pick_fh());
        if (tame) {
            SET(struct fuse_read_in, offset, below(3) ? below(1u << 16) : 0);
            SET(struct fuse_read_in, size, 1 + below(3) * 4096 + below(4096));
            SET(struct fuse_read_in, flags, 0);
        }
        break;
    case FUSE_WRITE:
        SET(struct fuse_write_in, fh, pick_fh());
        if (tame) {
            SET(struct fuse_write_in, offset, below(1u << 16));
            SET(struct fuse_write_in, write_flags, 0);
            SET(struct fuse_write_in, flags, 0);
        }
        break;
    case FUSE_RELEASE:
    case FUSE_RELEASEDIR: {
        uint64_t fh = pick_fh();
        SET(struct fuse_release_in, fh, fh);
        for (unsigned i = 0; i < fhs.n; i++) {
            if (fhs.v[i] == fh) {   /* the handle is gone */
                fhs.n--;
                fhs.v[i] = fhs.v[fhs.n];
                fh_node[i] = fh_node[fhs.n];
                break;
            }
        }
        if (tame) {
            SET(struct fuse_release_in, release_flags, below(2) ? FUSE_RELEASE_FLOCK_UNLOCK : 0);
        }
        break;
    }
    case FUSE_FSYNC:
    case FUSE_FSYNCDIR:
        SET(struct fuse_fsync_in, fh, pick_fh());
        break;
    case FUSE_FLUSH:
        SET(struct fuse_flush_in, fh, pick_fh());
        break;
    case FUSE_SETXATTR:
        if (tame) {
            SET(struct fuse_setxattr_in, size, below(64));
            SET(struct fuse_setxattr_in, flags, below(3));
        }
        break;
    case FUSE_GETXATTR:
    case FUSE_LISTXATTR:
        if (tame) {
            SET(struct fuse_getxattr_in, size, below(2) ? 0 : below(300));
        }
        break;
    case FUSE_INIT:
    case CUSE_INIT:
        if (tame) {
            SET(struct fuse_init_in, major, 7);
            SET(struct fuse_init_in, minor, below(40));
        }
        break;
    case FUSE_GETLK:
    case FUSE_SETLK:
    case FUSE_SETLKW:
        SET(struct fuse_lk_in, fh, pick_fh());
        if (tame) {
            SET(struct fuse_lk_in, lk.start, below(100));
            SET(struct fuse_lk_in, lk.end, chance(20) ? UINT64_MAX : 100 + below(100));
            SET(struct fuse_lk_in, lk.type, below(3));  /* F_RDLCK F_WRLCK F_UNLCK */
            SET(struct fuse_lk_in, lk.pid, 1 + below(4));
            SET(struct fuse_lk_in, lk_flags, below(2) ? FUSE_LK_FLOCK : 0);
        }
        break;
    case FUSE_ACCESS:
        if (tame) {
            SET(struct fuse_access_in, mask, below(8));
        }
        break;
    case FUSE_CREATE:
    case FUSE_TMPFILE:
        if (tame) {
            static const uint32_t fl[] = { O_RDWR, O_WRONLY | O_EXCL, O_RDWR | O_TRUNC,
                                           O_RDONLY, O_RDWR | O_EXCL | O_NOFOLLOW };
            SET(struct fuse_create_in, flags, fl[below(5)] | O_CREAT);
            SET(struct fuse_create_in, mode, (below(4) ? S_IFREG : below(1u << 16)) | 0644);
            SET(struct fuse_create_in, umask, 022);
        }
        break;
    case FUSE_BATCH_FORGET:
        if (tame) {
            SET(struct fuse_batch_forget_in, count, below(4));
        }
        break;
    case FUSE_FALLOCATE:
        SET(struct fuse_fallocate_in, fh, pick_fh());
        SET(struct fuse_fallocate_in, offset, below(1u << 20));
        SET(struct fuse_fallocate_in, length, below(1u << 20));
        if (tame) {
            SET(struct fuse_fallocate_in, mode, below(2) ? 0 : below(0x80));
        }
        break;
    case FUSE_LSEEK:
        SET(struct fuse_lseek_in, fh, pick_fh());
        if (tame) {
            SET(struct fuse_lseek_in, whence, below(5));
        }
        break;
    case FUSE_COPY_FILE_RANGE:
        SET(struct fuse_copy_file_range_in, fh_in, pick_fh());
        SET(struct fuse_copy_file_range_in, fh_out, pick_fh());
        SET(struct fuse_copy_file_range_in, nodeid_out, pick_node());
        SET(struct fuse_copy_file_range_in, len, below(1u << 20));
        if (tame) {
            SET(struct fuse_copy_file_range_in, off_in, below(1u << 16));
            SET(struct fuse_copy_file_range_in, off_out, below(1u << 16));
            SET(struct fuse_copy_file_range_in, flags, 0);
        }
        break;
    case FUSE_INTERRUPT:
        SET(struct fuse_interrupt_in, unique, tame ? fc_next_unique(H.c) - below(8) : interesting());
        break;
    default:
        break;
    }
#undef SET
}

/* ---- one request in guest memory ---- */

#define SLOTS 64
#define IN_CAP 12288u          /* header + args + names + up to 8 KiB data */
#define TABLE_OFF IN_CAP       /* indirect table: 16 descriptors */
#define OUT_OFF (IN_CAP + 256u)
#define OUT_CAP (132u * 1024u + 16u)
#define SLOT_SIZE (OUT_OFF + OUT_CAP)

struct slot {
    uint64_t gpa;
    uint8_t *p;
    fc_req *r;              /* in flight, or NULL */
    uint32_t opcode;
    uint64_t nodeid;
    uint64_t unique;
    uint32_t in_len, wr_len;
    bool header_ok;         /* in_len >= header: the reply can be judged */
    unsigned round;
    unsigned queue;
    unsigned op_i;          /* ops[] entry it was drawn from */
    bool tame;
};
static struct slot slots[SLOTS];

struct counts {
    unsigned sent, replied, ok, noreply;
};
static struct counts per_op[NOPS];
static unsigned rounds_run, inits, destroys, failures_logged;

static unsigned op_index(uint32_t opcode)
{
    for (unsigned i = 0; i < NOPS; i++) {
        if (ops[i].opcode == opcode) {
            return i;
        }
    }
    return NOPS - 1;    /* "past the last one" */
}

static void fail_req(const struct slot *s, const char *what, ...)
    __attribute__((format(printf, 2, 3)));

static void fail_req(const struct slot *s, const char *what, ...)
{
    va_list ap;

    t_failures++;
    if (failures_logged++ >= 20) {
        return;
    }
    fprintf(stderr, "FAIL round %u queue %u opcode %u (%s) nodeid %" PRIu64
            " in %u wr %u: ", s->round, s->queue, s->opcode,
            ops[op_index(s->opcode)].name, s->nodeid, s->in_len, s->wr_len);
    va_start(ap, what);
    vfprintf(stderr, what, ap);
    va_end(ap);
    fprintf(stderr, "\n  request:");
    for (uint32_t i = 0; i < s->in_len && i < 96; i++) {
        fprintf(stderr, "%s%02x", i % 32 ? " " : "\n   ", s->p[i]);
    }
    fprintf(stderr, "\n");
}

static const char *const xattr_names[] = {
    "user.fuzz", "user.a", "trusted.x", "security.capability", "security.selinux",
    "system.posix_acl_access", "system.posix_acl_default", "user.", "",
};
static const char *marker_abs;   /* the absolute symlink's target */

/* Lays out one random request in @s; returns its opcode (after mutation). */
static void build(struct slot *s, const struct op *op)
{
    uint8_t *p = s->p;
    tame = chance(65);
    req_node = pick_node();
    struct fuse_in_header h = {
        .opcode = op->opcode,
        .unique = fc_alloc_unique(H.c),
        .uid = chance(85) ? 0 : 1000,
        .gid = chance(85) ? 0 : 1000,
        .pid = 1 + below(1000),
    };
    size_t len = sizeof(h);

    fill_arg(op->opcode, p + len, op->arg);
    h.nodeid = req_node;
    len += op->arg;
    for (unsigned i = 0; i < op->names; i++) {
        bool xattr = op->opcode == FUSE_SETXATTR || op->opcode == FUSE_GETXATTR ||
                     op->opcode == FUSE_REMOVEXATTR;
        if (xattr && chance(80)) {
            const char *n = xattr_names[below(sizeof(xattr_names) / sizeof(xattr_names[0]))];
            memcpy(p + len, n, strlen(n) + 1);
            len += strlen(n) + 1;
        } else if (op->opcode == FUSE_SYMLINK && i == 1 && chance(50)) {
            const char *t = chance(50) ? marker_abs : "../marker";
            memcpy(p + len, t, strlen(t) + 1);
            len += strlen(t) + 1;
        } else {
            len += put_name(p + len, IN_CAP - 8192 - len);
        }
    }
    /* payloads after the struct */
    uint32_t extra = 0;
    switch (op->opcode) {
    case FUSE_WRITE: {
        struct fuse_write_in w;
        memcpy(&w, p + sizeof(h), sizeof(w));
        if (tame || chance(50)) {
            w.size = below(8193);
            memcpy(p + sizeof(h), &w, sizeof(w));
            extra = w.size;
        } else {
            extra = below(8193);
        }
        break;
    }
    case FUSE_SETXATTR: {
        struct fuse_setxattr_in x;
        memcpy(&x, p + sizeof(h), sizeof(x));
        extra = x.size <= 4096 && (tame || chance(80)) ? x.size : below(128);
        break;
    }
    case FUSE_BATCH_FORGET: {
        struct fuse_batch_forget_in b;
        memcpy(&b, p + sizeof(h), sizeof(b));
        unsigned n = b.count <= 64 && chance(80) ? b.count : below(8);
        for (unsigned i = 0; i < n && len + sizeof(struct fuse_forget_one) <= IN_CAP; i++) {
            struct fuse_forget_one f = { .nodeid = pick_node(), .nlookup = 1 };
            pool_drop(&nodes, f.nodeid);
            memcpy(p + len, &f, sizeof(f));
            len += sizeof(f);
        }
        break;
    }
    case FUSE_IOCTL:
    case FUSE_REMOVEMAPPING:
    case FUSE_NOTIFY_REPLY:
        extra = below(64);
        break;
    default:
        break;
    }
    for (uint32_t i = 0; i < extra && len < IN_CAP; i++) {
        p[len++] = (uint8_t)(i * 7 + s->round);
    }
    /* lies */
    if (!tame && chance(8)) {
        h.opcode = (uint32_t)interesting();
    }
    if (!tame && chance(12)) {
        len = below((uint32_t)len + 1);
    } else if (!tame && chance(12)) {
        for (uint32_t n = below(64); n && len < IN_CAP; n--) {
            p[len++] = (uint8_t)rnd64();
        }
    }
    h.len = (uint32_t)len;
    if (!tame && chance(15)) {
        h.len = chance(50) ? (uint32_t)interesting() : (uint32_t)len + below(16) - 8;
    }
    memcpy(p, &h, sizeof(h));
    s->opcode = h.opcode;
    s->tame = tame;
    s->nodeid = h.nodeid;
    s->in_len = (uint32_t)len;
    s->header_ok = len >= sizeof(h);
    s->unique = h.unique;

    /* the reply area */
    uint32_t want = (uint32_t)sizeof(struct fuse_out_header) + op->out;
    switch (tame ? 5 + below(15) : below(20)) {
    case 0:
    case 1:
        s->wr_len = 0;
        break;
    case 2:
        s->wr_len = below(16);
        break;
    case 3:
    case 4:
        s->wr_len = OUT_CAP;
        break;
    case 5:
    case 6:
    case 7:
        s->wr_len = want + below(64);
        break;
    case 8:
    case 9:
    case 10:
    case 11:
        s->wr_len = 16 + below(8192);
        break;
    default:
        s->wr_len = want;
        break;
    }
    if (s->wr_len > OUT_CAP) {
        s->wr_len = OUT_CAP;
    }
    /* stale bytes in the reply area must not pass for a reply */
    memset(p + OUT_OFF, 0xa5, s->wr_len < 64 ? s->wr_len : 64);
}

/* Cuts [0, len) into up to @max pieces at random points (sorted). */
static unsigned cut(uint32_t len, unsigned max, uint32_t *off, uint32_t *plen)
{
    unsigned n = 1 + below(max);
    uint32_t at = 0;

    for (unsigned i = 0; i < n; i++) {
        uint32_t left = len - at;
        uint32_t take = i + 1 == n ? left : (left ? below(left + 1) : 0);
        off[i] = at;
        plen[i] = take;
        at += take;
    }
    return n;
}

static int submit(struct slot *s, fc_chan *ch)
{
    struct vuf_raw_desc d[16];
    uint32_t off[4], plen[4];
    unsigned n = 0;

    if (s->in_len || s->wr_len == 0) {
        unsigned k = cut(s->in_len, 4, off, plen);
        for (unsigned i = 0; i < k; i++) {
            d[n++] = (struct vuf_raw_desc){ .addr = s->gpa + off[i], .len = plen[i] };
            if (chance(3)) {
                d[n++] = (struct vuf_raw_desc){ .addr = s->gpa + off[i], .len = 0 };
            }
        }
    }
    if (s->wr_len) {
        unsigned k = cut(s->wr_len, 3, off, plen);
        for (unsigned i = 0; i < k; i++) {
            d[n++] = (struct vuf_raw_desc){ .addr = s->gpa + OUT_OFF + off[i], .len = plen[i],
                                            .flags = VRING_DESC_F_WRITE };
        }
    }
    for (unsigned i = 0; i + 1 < n; i++) {
        d[i].flags |= VRING_DESC_F_NEXT;
        d[i].next = (uint16_t)(i + 1);
    }
    uint64_t expect = s->header_ok && s->wr_len >= 16 && !no_reply_op(s->opcode) ? s->unique : 0;
    uint64_t out_gpa = expect ? s->gpa + OUT_OFF : 0;
    if (chance(15)) {
        /* the same chain as an indirect table */
        struct vring_desc *t = (struct vring_desc *)(s->p + TABLE_OFF);
        for (unsigned i = 0; i < n; i++) {
            t[i] = (struct vring_desc){ .addr = d[i].addr, .len = d[i].len,
                                        .flags = d[i].flags, .next = d[i].next };
        }
        struct vuf_raw_desc ind = { .addr = s->gpa + TABLE_OFF,
                                    .len = (uint32_t)(n * sizeof(struct vring_desc)),
                                    .flags = VRING_DESC_F_INDIRECT };
        return fc_submit_raw(ch, &ind, 1, 0, expect, out_gpa, &s->r);
    }
    return fc_submit_raw(ch, d, n, 0, expect, out_gpa, &s->r);
}

/* fhs ever handed out: released at the end so a waiting SETLKW ends */
#define ALL_FH_MAX 8192
static struct {
    uint64_t fh, nodeid;
    bool dir;
} all_fh[ALL_FH_MAX];
static unsigned all_fh_n;

static void note_fh(uint64_t fh, uint64_t nodeid, bool dir)
{
    unsigned i = fhs.n < POOL ? fhs.n++ : below(POOL);
    fhs.v[i] = fh;
    fh_node[i] = nodeid;
    if (all_fh_n < ALL_FH_MAX) {
        all_fh[all_fh_n].fh = fh;
        all_fh[all_fh_n].nodeid = nodeid;
        all_fh[all_fh_n++].dir = dir;
    }
}

/* Judges one completion and learns node ids / handles from it. */
static void complete(struct slot *s)
{
    fc_req *r = s->r;
    struct counts *c = &per_op[s->op_i];

    s->r = NULL;
    if (r->used_len > s->wr_len) {
        fail_req(s, "used length %u > %u writable bytes", r->used_len, s->wr_len);
    }
    if (r->used_len == 0) {
        c->noreply++;
    } else {
        c->replied++;
    }
    bool judged = s->header_ok && s->wr_len >= 16 && !no_reply_op(s->opcode);
    struct fuse_out_header oh = { 0 };
    if (r->used_len >= 16) {
        memcpy(&oh, s->p + OUT_OFF, sizeof(oh));
    }
    if (getenv("VUF_FUZZ_TRACE")) {
        fprintf(stderr, "trace %s tame=%d wr=%u used=%u err=%d node=%" PRIu64 "\n",
                ops[s->op_i].name, s->tame, s->wr_len, r->used_len, oh.error, s->nodeid);
    }
    if (judged && r->used_len < 16) {
        fail_req(s, "no reply header (used length %u) for a request with "
                 "a header and %u writable bytes", r->used_len, s->wr_len);
    } else if (judged && (oh.len != r->used_len || oh.unique != s->unique ||
                          oh.error > 0 || oh.error < -4095)) {
        fail_req(s, "bad reply: used %u, header len %u unique %" PRIu64
                 " (want %" PRIu64 ") error %d", r->used_len, oh.len, oh.unique,
                 s->unique, oh.error);
    }
    if (judged && r->used_len >= 16 && oh.error == 0 && oh.len == r->used_len) {
        const uint8_t *o = s->p + OUT_OFF + sizeof(struct fuse_out_header);
        uint32_t got = r->used_len - (uint32_t)sizeof(struct fuse_out_header);
        struct fuse_entry_out e;
        struct fuse_open_out op;

        c->ok++;
        switch (s->opcode) {
        case FUSE_LOOKUP:
        case FUSE_MKNOD:
        case FUSE_MKDIR:
        case FUSE_SYMLINK:
        case FUSE_LINK:
        case FUSE_CREATE:
        case FUSE_TMPFILE:
            if (got >= sizeof(e)) {
                memcpy(&e, o, sizeof(e));
                if (e.nodeid) {
                    pool_add(&nodes, e.nodeid);
                }
                if ((s->opcode == FUSE_CREATE || s->opcode == FUSE_TMPFILE) &&
                    got >= sizeof(e) + sizeof(op)) {
                    memcpy(&op, o + sizeof(e), sizeof(op));
                    note_fh(op.fh, e.nodeid, false);
                }
            }
            break;
        case FUSE_OPEN:
        case FUSE_OPENDIR:
            if (got >= sizeof(op)) {
                memcpy(&op, o, sizeof(op));
                note_fh(op.fh, s->nodeid, s->opcode == FUSE_OPENDIR);
            }
            break;
        default:
            break;
        }
    }
    fc_req_free(r);
}

static unsigned nq;                 /* request queues */

static fc_chan *chan(unsigned q)
{
    return fc_chan_get(H.c, q);
}

/* Collects completions on every queue; waits up to @ms for the rest of
 * the requests in flight (other than SETLKW when @allow_waiters). */
static unsigned collect(int ms, bool allow_waiters)
{
    uint64_t deadline = vuf_now_ns() + (uint64_t)ms * 1000000ull;
    unsigned left;

    for (;;) {
        left = 0;
        for (unsigned q = 0; q <= nq; q++) {
            fc_req *done[64];
            int n;
            while ((n = fc_chan_poll(chan(q), 0, done, 64)) > 0) {
                for (int i = 0; i < n; i++) {
                    struct slot *s = done[i]->user;
                    complete(s);
                }
            }
            if (n < 0) {
                return UINT32_MAX;
            }
        }
        for (unsigned i = 0; i < SLOTS; i++) {
            if (slots[i].r && !(allow_waiters && slots[i].opcode == FUSE_SETLKW)) {
                left++;
            }
        }
        if (!left || vuf_now_ns() >= deadline) {
            return left;
        }
        for (unsigned q = 0; q <= nq; q++) {
            if (fc_chan_inflight(chan(q))) {
                vuf_vq_wait(fc_chan_vq(chan(q)), 10);
            }
        }
    }
}

/* A DESTROY ends the session: INIT again (a random INIT may have taken it). */
static int reinit(void)
{
    struct fuse_init_out init;
    int ret = fc_init(H.req, NULL, &init);
    if (ret < 0) {
        fc_generic(H.req, FUSE_DESTROY, FUSE_ROOT_ID, NULL, 0, NULL, 0, NULL);
        ret = fc_init(H.req, NULL, &init);
    }
    inits++;
    return ret;
}

static bool probe(void)
{
    for (unsigned q = 1; q <= nq; q++) {
        struct fuse_attr_out a;
        int ret = fc_getattr(chan(q), FUSE_ROOT_ID, &a);
        if (ret == -ETIMEDOUT || ret == -ECONNRESET || ret == -EPIPE) {
            fprintf(stderr, "FAIL round %u: queue %u: GETATTR: %s\n", rounds_run, q,
                    strerror(-ret));
            return false;
        }
        if (ret < 0) {
            if (reinit() < 0 || fc_getattr(chan(q), FUSE_ROOT_ID, &a) < 0) {
                fprintf(stderr, "FAIL round %u: queue %u: GETATTR %s, and INIT "
                        "did not bring the session back\n", rounds_run, q, strerror(-ret));
                return false;
            }
        }
    }
    return true;
}

/* ---- the host side ---- */

static const char marker_text[] = "outside the share: the fuzzer must not reach this\n";
static char marker_path[400], outside_path[400];
static struct stat marker_st;
static unsigned scratch_entries;

static unsigned count_entries(const char *dir)
{
    DIR *d = opendir(dir);
    unsigned n = 0;
    struct dirent *e;

    if (!d) {
        return UINT32_MAX;
    }
    while ((e = readdir(d))) {
        if (strcmp(e->d_name, ".") && strcmp(e->d_name, "..")) {
            n++;
        }
    }
    closedir(d);
    return n;
}

static int host_file(const char *name, const char *text)
{
    char p[512];
    snprintf(p, sizeof(p), "%s/%s", H.share, name);
    int fd = open(p, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
    if (fd < 0) {
        return -1;
    }
    ssize_t w = write(fd, text, strlen(text));
    close(fd);
    return w == (ssize_t)strlen(text) ? 0 : -1;
}

static int host_setup(void)
{
    char p[512];
    int bad = 0;

    snprintf(marker_path, sizeof(marker_path), "%s/marker", H.dir);
    snprintf(outside_path, sizeof(outside_path), "%s/outside", H.dir);
    int fd = open(marker_path, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0644);
    if (fd < 0 || write(fd, marker_text, sizeof(marker_text) - 1) !=
                      (ssize_t)sizeof(marker_text) - 1) {
        bad = 1;
    }
    if (fd >= 0) {
        close(fd);
    }
    bad |= mkdir(outside_path, 0777) < 0;
    bad |= host_file("f0", "0123456789abcdef") < 0;
    bad |= host_file("f1", "") < 0;
    snprintf(p, sizeof(p), "%s/d0", H.share);
    bad |= mkdir(p, 0755) < 0;
    snprintf(p, sizeof(p), "%s/d0/f2", H.share);
    fd = open(p, O_WRONLY | O_CREAT | O_CLOEXEC, 0644);
    bad |= fd < 0;
    if (fd >= 0) {
        close(fd);
    }
    snprintf(p, sizeof(p), "%s/sub", H.share);
    bad |= mkdir(p, 0700) < 0;
    snprintf(p, sizeof(p), "%s/lnk", H.share);
    bad |= symlink("f0", p) < 0;
    snprintf(p, sizeof(p), "%s/abs", H.share);
    bad |= symlink(marker_path, p) < 0;
    snprintf(p, sizeof(p), "%s/up", H.share);
    bad |= symlink("../marker", p) < 0;
    snprintf(p, sizeof(p), "%s/fifo", H.share);
    bad |= mkfifo(p, 0644) < 0;
    marker_abs = marker_path;
    bad |= stat(marker_path, &marker_st) < 0;
    scratch_entries = count_entries(H.dir);
    return bad ? -1 : 0;
}

static bool ts_eq(struct timespec a, struct timespec b)
{
    return a.tv_sec == b.tv_sec && a.tv_nsec == b.tv_nsec;
}

static void host_check(void)
{
    struct stat st;

    CHECK(stat(marker_path, &st) == 0, "marker %s is gone", marker_path);
    if (stat(marker_path, &st) == 0) {
        CHECK(st.st_ino == marker_st.st_ino && st.st_size == marker_st.st_size &&
              st.st_nlink == marker_st.st_nlink && st.st_mode == marker_st.st_mode &&
              st.st_uid == marker_st.st_uid && st.st_gid == marker_st.st_gid,
              "marker changed (ino, size, links, mode or owner)");
        CHECK(ts_eq(st.st_mtim, marker_st.st_mtim) && ts_eq(st.st_ctim, marker_st.st_ctim),
              "marker modified");
        CHECK(ts_eq(st.st_atim, marker_st.st_atim), "marker was read (atime moved)");
    }
    CHECK(count_entries(outside_path) == 0, "%s is no longer empty", outside_path);
    CHECK(count_entries(H.dir) == scratch_entries, "entries next to the share: %u, were %u",
          count_entries(H.dir), scratch_entries);
}

/* ---- the run ---- */

static void send_destroy(unsigned round)
{
    /* DESTROY as the guest driver sends it when unmounting: mid-traffic */
    for (unsigned i = 0; i < SLOTS; i++) {
        struct slot *s = &slots[i];
        if (s->r) {
            continue;
        }
        struct fuse_in_header h = {
            .len = sizeof(h), .opcode = FUSE_DESTROY, .unique = fc_alloc_unique(H.c),
            .nodeid = FUSE_ROOT_ID,
        };
        memcpy(s->p, &h, sizeof(h));
        s->opcode = FUSE_DESTROY;
        s->nodeid = FUSE_ROOT_ID;
        s->unique = h.unique;
        s->in_len = sizeof(h);
        s->wr_len = 16;
        s->header_ok = true;
        s->round = round;
        s->queue = 1 + below(nq);
        struct vuf_raw_desc d[2] = {
            { .addr = s->gpa, .len = sizeof(h), .flags = VRING_DESC_F_NEXT, .next = 1 },
            { .addr = s->gpa + OUT_OFF, .len = 16, .flags = VRING_DESC_F_WRITE },
        };
        if (fc_submit_raw(chan(s->queue), d, 2, 0, h.unique, s->gpa + OUT_OFF, &s->r) == 0) {
            s->r->user = s;
            s->op_i = op_index(FUSE_DESTROY);
            per_op[s->op_i].sent++;
            destroys++;
            nodes.n = 0;   /* the session's nodes and handles are gone */
            fhs.n = 0;
        } else {
            s->r = NULL;
        }
        return;
    }
}

int main(int argc, char **argv)
{
    struct vuf_opts vo = {
        .queue_size = 256, .event_idx = true, .indirect_desc = true,
        .mem_size = 64u << 20,
    };
    unsigned long seed = fz_opt(argc, argv, "--seed", "VUF_FUZZ_SEED", 1);
    unsigned long rounds = fz_opt(argc, argv, "--rounds", "VUF_FUZZ_ROUNDS", 3000);

    int rc = harness_start(&H, argc, argv, &vo);
    if (rc != T_PASS) {
        return rc;
    }
    fprintf(stderr, "fuzz: seed %lu, %lu rounds (rerun: --seed %lu --rounds %lu)\n",
            seed, rounds, seed, rounds);
    fz_seed(seed, 1);
    nq = H.queues;
    for (unsigned i = 0; i < NOPS; i++) {
        weight_total += ops[i].weight;
    }
    if (host_setup() < 0) {
        fprintf(stderr, "host setup failed: %s\n", strerror(errno));
        harness_stop(&H);
        return T_FAIL;
    }
    for (unsigned i = 0; i < SLOTS; i++) {
        slots[i].gpa = vuf_mem_alloc(H.dev, SLOT_SIZE);
        slots[i].p = slots[i].gpa ? vuf_mem_ptr(H.dev, slots[i].gpa, SLOT_SIZE) : NULL;
        if (!slots[i].p) {
            fprintf(stderr, "guest memory for slot %u\n", i);
            harness_stop(&H);
            return T_FAIL;
        }
    }

    bool alive = true;
    for (unsigned round = 0; round < rounds && alive && t_failures < 20; round++) {
        unsigned n = 1 + below(24);
        rounds_run = round;
        for (unsigned k = 0; k < n; k++) {
            struct slot *s = NULL;
            for (unsigned i = 0; i < SLOTS && !s; i++) {
                s = slots[i].r ? NULL : &slots[i];
            }
            if (!s) {
                break;
            }
            const struct op *op = pick_op();
            s->round = round;
            s->queue = chance(8) ? 0 : 1 + below(nq);
            build(s, op);
            int ret = submit(s, chan(s->queue));
            if (ret < 0) {
                s->r = NULL;
                if (ret == -ECONNRESET || ret == -EPIPE) {
                    alive = false;
                }
                break;
            }
            s->r->user = s;
            s->op_i = (unsigned)(op - ops);
            per_op[s->op_i].sent++;
        }
        if (below(1000) < 5) {
            send_destroy(round);
        }
        unsigned left = collect(10000, true);
        if (left == UINT32_MAX) {
            fprintf(stderr, "FAIL round %u: the daemon went away\n", round);
            t_failures++;
            break;
        }
        if (left) {
            fprintf(stderr, "FAIL round %u: %u request(s) not completed in 10 s\n", round, left);
            for (unsigned i = 0; i < SLOTS; i++) {
                if (slots[i].r && slots[i].opcode != FUSE_SETLKW) {
                    fail_req(&slots[i], "no completion");
                }
            }
            break;
        }
        if (!probe()) {
            t_failures++;
            break;
        }
    }

    /* every handle goes: a SETLKW waiting on one of them ends */
    unsigned waiting = 0;
    for (unsigned i = 0; i < SLOTS; i++) {
        waiting += slots[i].r != NULL;
    }
    if (alive && t_failures == 0) {
        for (unsigned i = 0; i < all_fh_n; i++) {
            struct fuse_release_in rel = { .fh = all_fh[i].fh,
                                           .release_flags = FUSE_RELEASE_FLOCK_UNLOCK };
            fc_generic(H.req, all_fh[i].dir ? FUSE_RELEASEDIR : FUSE_RELEASE,
                       all_fh[i].nodeid, &rel, sizeof(rel), NULL, 0, NULL);
        }
        unsigned left = collect(10000, false);
        CHECK(left == 0, "%u request(s) (SETLKW waiting before: %u) never completed", left,
              waiting);
    }
    struct fc_stats st;
    fc_get_stats(H.c, &st);
    CHECK(st.bogus_used == 0, "%llu completions of chains not in flight",
          (unsigned long long)st.bogus_used);
    CHECK(st.unique_mismatch == 0 && st.len_mismatch == 0 && st.bad_error == 0,
          "reply headers: %llu unique mismatches, %llu length mismatches, %llu bad errors",
          (unsigned long long)st.unique_mismatch, (unsigned long long)st.len_mismatch,
          (unsigned long long)st.bad_error);

    fprintf(stderr, "fuzz: %u rounds, %llu requests, %u re-INITs, %u DESTROYs\n",
            rounds_run + 1, (unsigned long long)st.submitted, inits, destroys);
    fprintf(stderr, "%-24s %7s %7s %7s %7s\n", "opcode", "sent", "replied", "ok", "no-reply");
    for (unsigned i = 0; i < NOPS; i++) {
        if (per_op[i].sent) {
            fprintf(stderr, "%-24s %7u %7u %7u %7u\n", ops[i].name, per_op[i].sent,
                    per_op[i].replied, per_op[i].ok, per_op[i].noreply);
        }
    }
    host_check();
    CHECK(!harness_log_has_sanitizer_report(&H), "sanitizer report in the daemon log");
    if (t_failures) {
        fprintf(stderr, "fuzz: %d failure(s); seed %lu\n", t_failures, seed);
        harness_dump_log(&H);
    }
    rc = harness_stop(&H);
    return t_failures ? T_FAIL : rc;
}
