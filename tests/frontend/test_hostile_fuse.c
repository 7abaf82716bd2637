/* SPDX-License-Identifier: GPL-2.0-or-later */
/*
 * Hostile FUSE requests in well-formed chains: lying fuse_in_header
 * fields, unknown opcodes, INIT/DESTROY misuse, truncated argument structs
 * of every opcode family, names without NUL or with '/', ".", "..",
 * symlinks that point out of the share, huge sizes, unknown nodeids and
 * handles.  Our daemon answers each with a specific error (asserted);
 * the runner checks that nothing next to the share was touched.
 */
#include "test_hostile.h"

#include <errno.h>
#include <fcntl.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

/* ---- helpers ---- */

static void expect_err(struct hctx *x, const struct hres *res, int err)
{
    EXPECT_OURS(x, res->wait == 0 && res->have_hdr && res->oh.error == err,
                "wait %d used %u error %d, want %d", res->wait, res->used_len,
                res->have_hdr ? res->oh.error : 0, err);
}

/* Any error, as long as it is an answer. */
static void expect_some_err(struct hctx *x, const struct hres *res)
{
    EXPECT_OURS(x, res->wait == 0 && res->have_hdr && res->oh.error < 0,
                "wait %d used %u error %d, want an error", res->wait, res->used_len,
                res->oh.error);
}

static void expect_ok(struct hctx *x, const struct hres *res)
{
    EXPECT_OURS(x, res->wait == 0 && res->have_hdr && res->oh.error == 0,
                "wait %d used %u error %d, want success", res->wait, res->used_len,
                res->oh.error);
}

/* A request with up to three argument parts on queue 1. */
static enum outcome call3(struct hctx *x, uint32_t opcode, uint64_t nodeid, const void *a1,
                          uint32_t l1, const void *a2, uint32_t l2, const void *a3,
                          uint32_t l3, uint32_t out_len, struct hres *res, void *out)
{
    struct fc_call c = {
        .opcode = opcode, .nodeid = nodeid, .arg = a1, .arg_len = l1, .arg2 = a2,
        .arg2_len = l2, .arg3 = a3, .arg3_len = l3, .out_len = out_len,
    };
    return hc_call(x, H.req, &c, res, out, out_len);
}

static enum outcome call1(struct hctx *x, uint32_t opcode, uint64_t nodeid, const void *a,
                          uint32_t l, uint32_t out_len, struct hres *res, void *out)
{
    return call3(x, opcode, nodeid, a, l, NULL, 0, NULL, 0, out_len, res, out);
}

static uint32_t slen(const char *s)
{
    return (uint32_t)strlen(s) + 1;
}

/* A regular file "f" in the share, open read-write. */
static int make_file(struct hctx *x, uint64_t *nodeid, uint64_t *fh)
{
    struct fuse_entry_out e;
    struct fuse_open_out o;
    int ret = fc_create(H.req, ROOT, "f", O_RDWR | O_CREAT | O_EXCL, 0100644, &e, &o);
    if (ret < 0) {
        hc_note(x, "setup CREATE: %s", strerror(-ret));
        return ret;
    }
    *nodeid = e.nodeid;
    *fh = o.fh;
    return 0;
}

static int make_symlink(struct hctx *x, const char *name, const char *target,
                        struct fuse_entry_out *e)
{
    int ret = hc_sync(FUSE_SYMLINK, ROOT, name, slen(name), target, slen(target), e,
                      sizeof(*e));
    if (ret < 0) {
        hc_note(x, "setup SYMLINK: %s", strerror(-ret));
    }
    return ret;
}

static ino_t share_ino(void)
{
    struct stat st;
    return stat(H.share, &st) == 0 ? st.st_ino : 0;
}

/* ---- fuse_in_header and opcodes ---- */

static enum outcome hdr_len_lies(struct hctx *x)
{
    struct fuse_getattr_in gi = { 0 };
    struct hres res;
    struct fc_call c = {
        .opcode = FUSE_GETATTR, .nodeid = ROOT, .arg = &gi, .arg_len = sizeof(gi),
        .out_len = sizeof(struct fuse_attr_out),
        .len_override = x->c->param ? GETATTR_IN_LEN + 4096 : sizeof(struct fuse_in_header),
    };
    enum outcome out = hc_call(x, H.req, &c, &res, NULL, 0);
    expect_err(x, &res, -EINVAL);
    return out;
}

/* Hand-built GETATTR with one header field overwritten. */
static enum outcome hdr_field(struct hctx *x)
{
    struct hbuf b;
    struct hres res;
    if (hb_new(&b) < 0) {
        return O_HUNG;
    }
    uint32_t len = hb_getattr(&b);
    struct fuse_in_header *ih = (struct fuse_in_header *)b.p;
    uint64_t expect_unique = b.unique;
    uint32_t rd = len;
    switch (x->c->param) {
    case 0:     /* in.len 0 */
        ih->len = 0;
        break;
    case 1:     /* 20 readable bytes: not even a header */
        rd = 20;
        expect_unique = 0;
        break;
    case 2:     /* unique 0 is for notifications */
        ih->unique = 0;
        expect_unique = 0;
        break;
    case 3:     /* request extensions, never negotiated */
        ih->total_extlen = 1;
        ih->len += 8;
        rd = ih->len;
        break;
    }
    struct vuf_raw_desc d[] = { { b.g, rd, VNEXT, 1 },
                                { b.g + HB_OUT, GETATTR_OUT_LEN, VWRITE, 0 } };
    enum outcome out = hc_raw(x, H.req, d, 2, 0, expect_unique, b.g + HB_OUT, &res);
    expect_err(x, &res, -EINVAL);
    return out;
}

static enum outcome opcode_unserved(struct hctx *x)
{
    uint8_t arg[64] = { 0 };
    struct hres res;
    enum outcome out = call1(x, (uint32_t)x->c->param, ROOT, arg, sizeof(arg), 64, &res, NULL);
    expect_err(x, &res, -ENOSYS);
    return out;
}

/* ---- INIT and DESTROY ---- */

static enum outcome before_init(struct hctx *x)
{
    struct hres res;
    enum outcome out;
    if (x->c->param == 0) {
        struct fuse_getattr_in gi = { 0 };
        out = call1(x, FUSE_GETATTR, ROOT, &gi, sizeof(gi), sizeof(struct fuse_attr_out),
                    &res, NULL);
    } else {
        out = call1(x, FUSE_DESTROY, ROOT, NULL, 0, 0, &res, NULL);
    }
    expect_err(x, &res, -EIO);
    return out;
}

static enum outcome init_variant(struct hctx *x)
{
    struct fuse_init_in in = {
        .major = FUSE_KERNEL_VERSION, .minor = FUSE_KERNEL_MINOR_VERSION,
        .max_readahead = 128 * 1024, .flags = FC_DEFAULT_INIT_FLAGS,
    };
    uint32_t len = sizeof(in);
    int want = 0;
    switch (x->c->param) {
    case 0:     /* a second, well-formed INIT */
        break;
    case 1:
        in.major = 6;
        want = -EPROTO;
        break;
    case 2:     /* older than the first virtio-fs kernel */
        in.minor = 30;
        want = -EPROTO;
        break;
    case 3:     /* FUSE_INIT_EXT announced, flags2 missing */
        len = offsetof(struct fuse_init_in, flags2);
        want = -EINVAL;
        break;
    case 4:     /* every flag bit */
        in.flags = 0xffffffffu;
        in.flags2 = 0xffffffffu;
        in.max_readahead = 0xffffffffu;
        break;
    }
    struct fuse_init_out io;
    struct hres res;
    enum outcome out = call1(x, FUSE_INIT, 0, &in, len, sizeof(io), &res, &io);
    if (want) {
        expect_err(x, &res, want);
    } else {
        expect_ok(x, &res);
    }
    return out;
}

static enum outcome after_destroy(struct hctx *x)
{
    struct hres res;
    int ret = hc_sync(FUSE_DESTROY, 0, NULL, 0, NULL, 0, NULL, 0);
    EXPECT_OURS(x, ret == 0, "first DESTROY: %d", ret);
    enum outcome out;
    if (x->c->param == 0) {
        struct fuse_getattr_in gi = { 0 };
        out = call1(x, FUSE_GETATTR, ROOT, &gi, sizeof(gi), sizeof(struct fuse_attr_out),
                    &res, NULL);
    } else {
        out = call1(x, FUSE_DESTROY, 0, NULL, 0, 0, &res, NULL);
    }
    expect_err(x, &res, -EIO);
    return out;
}

/* ---- truncated argument structs ---- */

struct trunc_spec {
    uint32_t opcode;
    uint32_t size;      /* the fixed struct the opcode starts with */
    bool hiprio;        /* FORGET family: no reply */
};

static const struct trunc_spec trunc_specs[] = {
    { FUSE_LOOKUP, 0, false },      /* only a name: send none */
    { FUSE_GETATTR, sizeof(struct fuse_getattr_in), false },
    { FUSE_SETATTR, sizeof(struct fuse_setattr_in), false },
    { FUSE_MKNOD, sizeof(struct fuse_mknod_in), false },
    { FUSE_MKDIR, sizeof(struct fuse_mkdir_in), false },
    { FUSE_SYMLINK, 0, false },     /* name, target missing */
    { FUSE_RENAME, sizeof(struct fuse_rename_in), false },
    { FUSE_RENAME2, sizeof(struct fuse_rename2_in), false },
    { FUSE_LINK, sizeof(struct fuse_link_in), false },
    { FUSE_OPEN, sizeof(struct fuse_open_in), false },
    { FUSE_READ, sizeof(struct fuse_read_in), false },
    { FUSE_WRITE, sizeof(struct fuse_write_in), false },
    { FUSE_RELEASE, sizeof(struct fuse_release_in), false },
    { FUSE_FSYNC, sizeof(struct fuse_fsync_in), false },
    { FUSE_SETXATTR, FUSE_COMPAT_SETXATTR_IN_SIZE, false },
    { FUSE_GETXATTR, sizeof(struct fuse_getxattr_in), false },
    { FUSE_LISTXATTR, sizeof(struct fuse_getxattr_in), false },
    { FUSE_INIT, 16, false },
    { FUSE_OPENDIR, sizeof(struct fuse_open_in), false },
    { FUSE_READDIR, sizeof(struct fuse_read_in), false },
    { FUSE_READDIRPLUS, sizeof(struct fuse_read_in), false },
    { FUSE_RELEASEDIR, sizeof(struct fuse_release_in), false },
    { FUSE_FSYNCDIR, sizeof(struct fuse_fsync_in), false },
    { FUSE_CREATE, sizeof(struct fuse_create_in), false },
    { FUSE_GETLK, sizeof(struct fuse_lk_in), false },
    { FUSE_SETLK, sizeof(struct fuse_lk_in), false },
    { FUSE_SETLKW, sizeof(struct fuse_lk_in), false },
    { FUSE_FLUSH, sizeof(struct fuse_flush_in), false },
    { FUSE_ACCESS, sizeof(struct fuse_access_in), false },
    { FUSE_BMAP, sizeof(struct fuse_bmap_in), false },
    { FUSE_FALLOCATE, sizeof(struct fuse_fallocate_in), false },
    { FUSE_LSEEK, sizeof(struct fuse_lseek_in), false },
    { FUSE_COPY_FILE_RANGE, sizeof(struct fuse_copy_file_range_in), false },
    { FUSE_FORGET, sizeof(struct fuse_forget_in), true },
    { FUSE_BATCH_FORGET, sizeof(struct fuse_batch_forget_in), true },
};

/* The opcode's struct minus its last byte (name-only opcodes: the name
 * or the second name left out). */
static enum outcome truncated_args(struct hctx *x)
{
    const struct trunc_spec *s = NULL;
    for (unsigned i = 0; i < sizeof(trunc_specs) / sizeof(trunc_specs[0]); i++) {
        if (trunc_specs[i].opcode == (uint32_t)x->c->param) {
            s = &trunc_specs[i];
        }
    }
    if (!s) {
        hc_note(x, "no spec");
        x->failures++;
        return O_HUNG;
    }
    uint8_t arg[128];
    memset(arg, 0, sizeof(arg));
    uint32_t len = s->size ? s->size - 1 : 0;
    if (s->opcode == FUSE_SYMLINK) {
        memcpy(arg, "l", 2);
        len = 2;
    }
    struct hres res;
    struct fc_call c = {
        .opcode = s->opcode, .nodeid = ROOT, .arg = arg, .arg_len = len,
        .out_len = s->hiprio ? 0 : 256, .no_reply = s->hiprio,
    };
    enum outcome out = hc_call(x, s->hiprio ? H.hiprio : H.req, &c, &res, NULL, 0);
    if (s->hiprio) {
        EXPECT_OURS(x, res.wait == 0 && res.used_len == 0, "wait %d used %u", res.wait,
                    res.used_len);
    } else {
        expect_err(x, &res, -EINVAL);
    }
    return out;
}

/* ---- names ---- */

/* A name with no NUL inside the request: the last argument part. */
static enum outcome name_no_nul(struct hctx *x)
{
    struct hres res;
    struct fuse_mkdir_in mi = { .mode = 040755 };
    enum outcome out;
    switch (x->c->param) {
    case 0:
        out = call1(x, FUSE_LOOKUP, ROOT, "escape", 6, sizeof(struct fuse_entry_out), &res,
                    NULL);
        break;
    case 1:
        out = call3(x, FUSE_MKDIR, ROOT, &mi, sizeof(mi), "dir", 3, NULL, 0,
                    sizeof(struct fuse_entry_out), &res, NULL);
        break;
    case 2:
        out = call3(x, FUSE_SYMLINK, ROOT, "l", 2, "target", 6, NULL, 0,
                    sizeof(struct fuse_entry_out), &res, NULL);
        break;
    default: {
        uint64_t n, fh;
        if (make_file(x, &n, &fh) < 0) {
            return hc_settle(x);
        }
        struct fuse_rename_in ri = { .newdir = ROOT };
        out = call3(x, FUSE_RENAME, ROOT, &ri, sizeof(ri), "f", 2, "g", 1, 0, &res, NULL);
        break;
    }
    }
    expect_err(x, &res, -EINVAL);
    EXPECT_OURS(x, hc_share_entries() == (x->c->param == 3 ? 1 : 0),
                "share has %d entries", hc_share_entries());
    return out;
}

/* Names with '/' in them, each aimed out of the share. */
static enum outcome name_slash(struct hctx *x)
{
    struct hres res;
    enum outcome out;
    char abs[512];
    uint64_t n = 0, fh = 0;
    if (x->c->param >= 5 && make_file(x, &n, &fh) < 0) {
        return hc_settle(x);
    }
    switch (x->c->param) {
    case 0:
        out = call1(x, FUSE_LOOKUP, ROOT, "../marker", slen("../marker"),
                    sizeof(struct fuse_entry_out), &res, NULL);
        break;
    case 1: {
        struct fuse_create_in ci = { .flags = O_RDWR | O_CREAT | O_EXCL, .mode = 0100644 };
        out = call3(x, FUSE_CREATE, ROOT, &ci, sizeof(ci), "../escaped", slen("../escaped"),
                    NULL, 0, sizeof(struct fuse_entry_out) + sizeof(struct fuse_open_out),
                    &res, NULL);
        break;
    }
    case 2: {
        struct fuse_mkdir_in mi = { .mode = 040755 };
        snprintf(abs, sizeof(abs), "%s/abs", hc_outside_dir());
        out = call3(x, FUSE_MKDIR, ROOT, &mi, sizeof(mi), abs, slen(abs), NULL, 0,
                    sizeof(struct fuse_entry_out), &res, NULL);
        break;
    }
    case 3: {
        struct fuse_mknod_in mn = { .mode = S_IFIFO | 0644 };
        out = call3(x, FUSE_MKNOD, ROOT, &mn, sizeof(mn), "../fifo", slen("../fifo"), NULL, 0,
                    sizeof(struct fuse_entry_out), &res, NULL);
        break;
    }
    case 4:
        out = call3(x, FUSE_SYMLINK, ROOT, "../link", slen("../link"), "marker",
                    slen("marker"), NULL, 0, sizeof(struct fuse_entry_out), &res, NULL);
        break;
    case 5: {
        struct fuse_rename_in ri = { .newdir = ROOT };
        out = call3(x, FUSE_RENAME, ROOT, &ri, sizeof(ri), "f", 2, "../renamed",
                    slen("../renamed"), 0, &res, NULL);
        break;
    }
    case 6: {
        struct fuse_rename2_in ri = { .newdir = ROOT };
        out = call3(x, FUSE_RENAME2, ROOT, &ri, sizeof(ri), "f", 2, "../renamed2",
                    slen("../renamed2"), 0, &res, NULL);
        break;
    }
    default: {
        struct fuse_link_in li = { .oldnodeid = n };
        out = call3(x, FUSE_LINK, ROOT, &li, sizeof(li), "../linked", slen("../linked"),
                    NULL, 0, sizeof(struct fuse_entry_out), &res, NULL);
        break;
    }
    }
    expect_err(x, &res, -EINVAL);
    EXPECT_OURS(x, hc_share_entries() == (x->c->param >= 5 ? 1 : 0), "share has %d entries",
                hc_share_entries());
    return out;
}

/* "." and "..": answered with the directory itself (root's ".." is the
 * root) or refused, never the share's parent. */
static enum outcome name_dots(struct hctx *x)
{
    struct hres res;
    struct fuse_entry_out e;
    uint64_t parent = ROOT;
    const char *name = x->c->param == 1 ? "." : "..";
    if (x->c->param == 2) {
        struct fuse_mkdir_in mi = { .mode = 040755 };
        int ret = hc_sync(FUSE_MKDIR, ROOT, &mi, sizeof(mi), "d", 2, &e, sizeof(e));
        if (ret < 0) {
            hc_note(x, "setup MKDIR: %s", strerror(-ret));
            return hc_settle(x);
        }
        parent = e.nodeid;
    }
    enum outcome out = call1(x, FUSE_LOOKUP, parent, name, slen(name), sizeof(e), &res, &e);
    if (res.wait == 0 && res.have_hdr && res.oh.error == 0 && e.nodeid) {
        /* For both daemons: whatever came back is the share, not above it. */
        EXPECT_ALL(x, e.attr.ino == share_ino(), "%s resolved to ino %llu, share is %llu",
                   name, (unsigned long long)e.attr.ino, (unsigned long long)share_ino());
    }
    if (x->c->param == 2) {
        expect_err(x, &res, -EINVAL);
    } else {
        expect_ok(x, &res);
    }
    return out;
}

/* Creating "." or "..": refused. */
static enum outcome create_dots(struct hctx *x)
{
    struct hres res;
    enum outcome out;
    if (x->c->param == 0) {
        struct fuse_mkdir_in mi = { .mode = 040755 };
        out = call3(x, FUSE_MKDIR, ROOT, &mi, sizeof(mi), "..", 3, NULL, 0,
                    sizeof(struct fuse_entry_out), &res, NULL);
    } else {
        struct fuse_create_in ci = { .flags = O_RDWR | O_CREAT, .mode = 0100644 };
        out = call3(x, FUSE_CREATE, ROOT, &ci, sizeof(ci), ".", 2, NULL, 0,
                    sizeof(struct fuse_entry_out) + sizeof(struct fuse_open_out), &res, NULL);
    }
    expect_some_err(x, &res);
    return out;
}

/*
 * Symlinks in the share that point out of it.  The symlink itself is a
 * legal file; using it must not reach the target outside.
 */
static enum outcome symlink_out(struct hctx *x)
{
    struct fuse_entry_out e;
    struct hres res;
    char target[512];
    enum outcome out;
    /* relative for the odd variants, absolute for the even ones */
    if (x->c->param == 3 || x->c->param == 4 || x->c->param == 5) {
        snprintf(target, sizeof(target), "%s", hc_outside_dir());
    } else if (x->c->param == 2) {
        snprintf(target, sizeof(target), "../created");
    } else if (x->c->param == 0) {
        snprintf(target, sizeof(target), "../marker");
    } else {
        snprintf(target, sizeof(target), "%s", hc_marker_path());
    }
    if (make_symlink(x, "esc", target, &e) < 0) {
        return hc_settle(x);
    }
    switch (x->c->param) {
    case 0: {   /* OPEN + READ through it */
        struct fuse_open_in oi = { .flags = O_RDONLY };
        struct fuse_open_out oo;
        out = call1(x, FUSE_OPEN, e.nodeid, &oi, sizeof(oi), sizeof(oo), &res, &oo);
        if (res.wait == 0 && res.have_hdr && res.oh.error == 0) {
            char buf[256] = { 0 };
            ssize_t n = fc_read(H.req, e.nodeid, oo.fh, 0, buf, sizeof(buf) - 1);
            EXPECT_ALL(x, n <= 0 || !strstr(buf, "outside the share"),
                       "read %zd bytes of the marker through a symlink", n);
            fc_release(H.req, e.nodeid, oo.fh, 0);
        }
        expect_some_err(x, &res);
        break;
    }
    case 1: {   /* OPEN O_WRONLY|O_TRUNC, then SETATTR size 0 */
        struct fuse_open_in oi = { .flags = O_WRONLY | O_TRUNC };
        struct fuse_open_out oo;
        out = call1(x, FUSE_OPEN, e.nodeid, &oi, sizeof(oi), sizeof(oo), &res, &oo);
        expect_some_err(x, &res);
        if (out == O_REPLIED) {
            struct fuse_setattr_in si = { .valid = FATTR_SIZE | FATTR_MODE, .size = 0,
                                          .mode = 0100777 };
            int ret = fc_setattr(H.req, e.nodeid, &si, NULL);
            hc_note(x, "SETATTR: %d", ret);
        }
        break;
    }
    case 2: {   /* CREATE without O_EXCL on a dangling symlink */
        struct fuse_create_in ci = { .flags = O_RDWR | O_CREAT, .mode = 0100644 };
        out = call3(x, FUSE_CREATE, ROOT, &ci, sizeof(ci), "esc", 4, NULL, 0,
                    sizeof(struct fuse_entry_out) + sizeof(struct fuse_open_out), &res, NULL);
        expect_some_err(x, &res);
        break;
    }
    case 3: {   /* MKDIR with the symlink (to a directory outside) as parent */
        struct fuse_mkdir_in mi = { .mode = 040755 };
        out = call3(x, FUSE_MKDIR, e.nodeid, &mi, sizeof(mi), "x", 2, NULL, 0,
                    sizeof(struct fuse_entry_out), &res, NULL);
        expect_some_err(x, &res);
        break;
    }
    case 4: {   /* CREATE inside it */
        struct fuse_create_in ci = { .flags = O_RDWR | O_CREAT | O_EXCL, .mode = 0100644 };
        out = call3(x, FUSE_CREATE, e.nodeid, &ci, sizeof(ci), "x", 2, NULL, 0,
                    sizeof(struct fuse_entry_out) + sizeof(struct fuse_open_out), &res, NULL);
        expect_some_err(x, &res);
        break;
    }
    default: {  /* RENAME a share file into it */
        uint64_t n, fh;
        if (make_file(x, &n, &fh) < 0) {
            return hc_settle(x);
        }
        struct fuse_rename_in ri = { .newdir = e.nodeid };
        out = call3(x, FUSE_RENAME, ROOT, &ri, sizeof(ri), "f", 2, "moved", 6, 0, &res,
                    NULL);
        expect_some_err(x, &res);
        break;
    }
    }
    return out;
}

/* ---- sizes ---- */

static enum outcome huge_read(struct hctx *x)
{
    uint64_t n, fh;
    struct hres res;
    if (make_file(x, &n, &fh) < 0) {
        return hc_settle(x);
    }
    uint32_t size = 0xffffffffu, wr = 4096;
    if (x->c->param == 1) {
        size = wr = 2u << 20;
    } else if (x->c->param == 2) {
        size = 65536;
    }
    uint64_t g = vuf_mem_alloc(H.dev, wr);
    if (!g) {
        return O_HUNG;
    }
    struct vuf_seg seg = { g, wr };
    struct fuse_read_in ri = { .fh = fh, .size = size };
    struct fc_call c = {
        .opcode = FUSE_READ, .nodeid = n, .arg = &ri, .arg_len = sizeof(ri),
        .data_wr = &seg, .n_data_wr = 1,
    };
    enum outcome out = hc_call(x, H.req, &c, &res, NULL, 0);
    expect_err(x, &res, -EINVAL);
    return out;
}

static enum outcome huge_write(struct hctx *x)
{
    uint64_t n, fh;
    struct hres res;
    if (make_file(x, &n, &fh) < 0) {
        return hc_settle(x);
    }
    uint32_t size = 0xffffffffu, data = 4096;
    if (x->c->param == 1) {
        size = 100;
    } else if (x->c->param == 2) {
        size = data = 2u << 20;
    }
    uint64_t g = vuf_mem_alloc(H.dev, data);
    if (!g) {
        return O_HUNG;
    }
    memset(vuf_mem_ptr(H.dev, g, data), 'w', data);
    struct vuf_seg seg = { g, data };
    struct fuse_write_in wi = { .fh = fh, .size = size };
    struct fc_call c = {
        .opcode = FUSE_WRITE, .nodeid = n, .arg = &wi, .arg_len = sizeof(wi),
        .data_rd = &seg, .n_data_rd = 1, .out_len = sizeof(struct fuse_write_out),
    };
    enum outcome out = hc_call(x, H.req, &c, &res, NULL, 0);
    expect_err(x, &res, -EINVAL);
    struct stat st;
    char path[400];
    snprintf(path, sizeof(path), "%s/f", H.share);
    EXPECT_OURS(x, stat(path, &st) == 0 && st.st_size == 0, "file size %lld",
                (long long)st.st_size);
    return out;
}

static enum outcome huge_readdir(struct hctx *x)
{
    struct fuse_open_out oo;
    struct hres res;
    int ret = fc_opendir(H.req, ROOT, &oo);
    if (ret < 0) {
        hc_note(x, "setup OPENDIR: %s", strerror(-ret));
        return hc_settle(x);
    }
    struct fuse_read_in ri = { .fh = oo.fh, .size = 0xffffffffu };
    uint32_t op = FUSE_READDIR;
    if (x->c->param == 1) {     /* READDIRPLUS from the last possible offset */
        ri.size = 4096;
        ri.offset = ~0ull;
        op = FUSE_READDIRPLUS;
    }
    enum outcome out = call1(x, op, ROOT, &ri, sizeof(ri), 4096, &res, NULL);
    if (x->c->param == 0) {
        expect_err(x, &res, -EINVAL);
    } else {
        EXPECT_OURS(x, res.wait == 0 && res.have_hdr, "wait %d", res.wait);
    }
    return out;
}

static enum outcome huge_xattr(struct hctx *x)
{
    struct hres res;
    enum outcome out;
    if (x->c->param == 0 || x->c->param == 1) {
        struct fuse_getxattr_in gi = { .size = x->c->param ? 0x7fffffffu : 0xffffffffu };
        if (x->c->param == 0) {
            out = call3(x, FUSE_GETXATTR, ROOT, &gi, sizeof(gi), "user.x", slen("user.x"),
                        NULL, 0, 4096, &res, NULL);
        } else {
            out = call1(x, FUSE_LISTXATTR, ROOT, &gi, sizeof(gi), 4096, &res, NULL);
        }
    } else {
        /* 8-byte compat struct: size, flags; then the name and 4 bytes */
        uint32_t sx[2] = { 1u << 20, 0 };
        out = call3(x, FUSE_SETXATTR, ROOT, sx, sizeof(sx), "user.x", slen("user.x"), "abcd",
                    4, 0, &res, NULL);
    }
    expect_err(x, &res, -EINVAL);
    return out;
}

static enum outcome huge_batch_forget(struct hctx *x)
{
    struct hres res;
    struct fuse_batch_forget_in bi = { .count = 0xffffffffu };
    struct fuse_forget_one one = { .nodeid = ROOT, .nlookup = 1 };
    struct fc_call c = {
        .opcode = FUSE_BATCH_FORGET, .arg = &bi, .arg_len = sizeof(bi), .arg2 = &one,
        .arg2_len = sizeof(one), .no_reply = true,
    };
    enum outcome out = hc_call(x, H.hiprio, &c, &res, NULL, 0);
    EXPECT_OURS(x, res.wait == 0 && res.used_len == 0, "wait %d used %u", res.wait,
                res.used_len);
    return out;
}

/* File-range and lock operations with impossible arguments on a real file. */
static enum outcome bad_range(struct hctx *x)
{
    uint64_t n, fh;
    struct hres res;
    enum outcome out;
    if (make_file(x, &n, &fh) < 0) {
        return hc_settle(x);
    }
    switch (x->c->param) {
    case 0: {
        struct fuse_copy_file_range_in ci = {
            .fh_in = 0xdead0000ull, .nodeid_out = n, .fh_out = fh, .len = 1ull << 63,
        };
        out = call1(x, FUSE_COPY_FILE_RANGE, n, &ci, sizeof(ci),
                    sizeof(struct fuse_write_out), &res, NULL);
        break;
    }
    case 1: {   /* offset + length wraps the signed 64-bit file offset */
        struct fuse_fallocate_in fi = { .fh = fh, .offset = 1ull << 62,
                                        .length = 1ull << 62 };
        out = call1(x, FUSE_FALLOCATE, n, &fi, sizeof(fi), 0, &res, NULL);
        break;
    }
    case 2: {
        struct fuse_lseek_in li = { .fh = fh, .offset = 0, .whence = 77 };
        out = call1(x, FUSE_LSEEK, n, &li, sizeof(li), sizeof(struct fuse_lseek_out), &res,
                    NULL);
        break;
    }
    case 3: {
        struct fuse_lk_in li = { .fh = fh, .lk = { .start = 0, .end = 10, .type = 99 } };
        out = call1(x, FUSE_GETLK, n, &li, sizeof(li), sizeof(struct fuse_lk_out), &res,
                    NULL);
        break;
    }
    case 4: {   /* a negative l_len in struct flock: legal, either answer is */
        struct fuse_lk_in li = { .fh = fh, .lk = { .start = 100, .end = 10, .type = F_WRLCK } };
        out = call1(x, FUSE_SETLK, n, &li, sizeof(li), 0, &res, NULL);
        EXPECT_OURS(x, res.wait == 0 && res.have_hdr, "wait %d", res.wait);
        return out;
    }
    default: {  /* start beyond the largest off_t, to "end of file" (INT64_MAX) */
        struct fuse_lk_in li = { .fh = fh, .lk = { .start = (1ull << 63) + 5,
                                                   .end = INT64_MAX, .type = F_WRLCK } };
        out = call1(x, FUSE_SETLK, n, &li, sizeof(li), 0, &res, NULL);
        break;
    }
    }
    expect_some_err(x, &res);
    struct stat st;
    char path[400];
    snprintf(path, sizeof(path), "%s/f", H.share);
    EXPECT_OURS(x, stat(path, &st) == 0 && st.st_size == 0 && st.st_blocks == 0,
                "file size %lld blocks %lld", (long long)st.st_size, (long long)st.st_blocks);
    return out;
}

/* ---- nodeids and handles the daemon never gave out ---- */

static enum outcome bad_handle(struct hctx *x)
{
    struct hres res;
    enum outcome out;
    uint64_t n = 0, fh = 0;
    if (x->c->param >= 2 && make_file(x, &n, &fh) < 0) {
        return hc_settle(x);
    }
    switch (x->c->param) {
    case 0:
    case 1: {
        struct fuse_getattr_in gi = { 0 };
        out = call1(x, FUSE_GETATTR, x->c->param ? 0 : 0xdeadbeefull, &gi, sizeof(gi),
                    sizeof(struct fuse_attr_out), &res, NULL);
        expect_some_err(x, &res);
        break;
    }
    case 2: {
        struct fuse_read_in ri = { .fh = fh ^ 0x5a5a0000ull, .size = 4096 };
        out = call1(x, FUSE_READ, n, &ri, sizeof(ri), 4096, &res, NULL);
        expect_some_err(x, &res);
        break;
    }
    case 3: {
        struct fuse_release_in ri = { .fh = fh ^ 0x5a5a0000ull };
        out = call1(x, FUSE_RELEASE, n, &ri, sizeof(ri), 0, &res, NULL);
        EXPECT_OURS(x, res.wait == 0 && res.have_hdr, "wait %d", res.wait);
        break;
    }
    case 4: {
        int ret = fc_release(H.req, n, fh, 0);
        EXPECT_OURS(x, ret == 0, "first RELEASE %d", ret);
        struct fuse_release_in ri = { .fh = fh };
        out = call1(x, FUSE_RELEASE, n, &ri, sizeof(ri), 0, &res, NULL);
        EXPECT_OURS(x, res.wait == 0 && res.have_hdr, "wait %d", res.wait);
        break;
    }
    case 5: {   /* a directory handle used for WRITE */
        struct fuse_open_out oo;
        int ret = fc_opendir(H.req, ROOT, &oo);
        if (ret < 0) {
            hc_note(x, "setup OPENDIR: %s", strerror(-ret));
            return hc_settle(x);
        }
        struct fuse_write_in wi = { .fh = oo.fh, .size = 4 };
        out = call3(x, FUSE_WRITE, n, &wi, sizeof(wi), "abcd", 4, NULL, 0,
                    sizeof(struct fuse_write_out), &res, NULL);
        expect_some_err(x, &res);
        break;
    }
    default: {  /* a file handle used for READDIR */
        struct fuse_read_in ri = { .fh = fh, .size = 4096 };
        out = call1(x, FUSE_READDIR, ROOT, &ri, sizeof(ri), 4096, &res, NULL);
        expect_some_err(x, &res);
        break;
    }
    }
    return out;
}

static enum outcome bad_forget(struct hctx *x)
{
    struct hres res;
    enum outcome out;
    if (x->c->param == 2) {
        struct fuse_forget_one f[64];
        for (unsigned i = 0; i < 64; i++) {
            f[i] = (struct fuse_forget_one){ .nodeid = ROOT, .nlookup = 1000 };
        }
        struct fuse_batch_forget_in bi = { .count = 64 };
        struct fc_call c = {
            .opcode = FUSE_BATCH_FORGET, .arg = &bi, .arg_len = sizeof(bi), .arg2 = f,
            .arg2_len = sizeof(f), .no_reply = true,
        };
        out = hc_call(x, H.hiprio, &c, &res, NULL, 0);
    } else {
        struct fuse_forget_in fi = { .nlookup = 1000 };
        struct fc_call c = {
            .opcode = FUSE_FORGET, .nodeid = x->c->param ? 0xdeadbeefull : ROOT,
            .arg = &fi, .arg_len = sizeof(fi), .no_reply = true,
        };
        out = hc_call(x, H.hiprio, &c, &res, NULL, 0);
    }
    EXPECT_OURS(x, res.wait == 0 && res.used_len == 0, "wait %d used %u", res.wait,
                res.used_len);
    return out;
}

#define TRUNC(op) { "truncated " #op " arguments", truncated_args, 0, FUSE_##op }

const struct hcase hostile_fuse_cases[] = {
    { "in_header.len larger than the chain", hdr_len_lies, 0, 1 },
    { "in_header.len smaller than the chain", hdr_len_lies, 0, 0 },
    { "in_header.len 0", hdr_field, 0, 0 },
    { "readable part shorter than fuse_in_header", hdr_field, 0, 1 },
    { "unique 0", hdr_field, 0, 2 },
    { "total_extlen without negotiated extensions", hdr_field, 0, 3 },
    { "unknown opcode 9999", opcode_unserved, 0, 9999 },
    { "opcode 0", opcode_unserved, 0, 0 },
    { "IOCTL (not served)", opcode_unserved, 0, FUSE_IOCTL },
    { "INTERRUPT (virtio-fs has none)", opcode_unserved, 0, FUSE_INTERRUPT },
    { "SETUPMAPPING without a DAX window", opcode_unserved, 0, FUSE_SETUPMAPPING },
    { "NOTIFY_REPLY from the guest", opcode_unserved, 0, FUSE_NOTIFY_REPLY },
    { "CUSE_INIT on a virtio-fs device", opcode_unserved, 0, CUSE_INIT },
    { "request before INIT", before_init, HC_NO_INIT | HC_PROBE_INIT, 0 },
    { "DESTROY before INIT", before_init, HC_NO_INIT | HC_PROBE_INIT, 1 },
    { "second INIT", init_variant, 0, 0 },
    { "INIT with major version 6", init_variant, 0, 1 },
    { "INIT with minor version 30", init_variant, 0, 2 },
    { "INIT with INIT_EXT but no flags2", init_variant, 0, 3 },
    { "INIT with every flag bit set", init_variant, 0, 4 },
    { "request after DESTROY", after_destroy, HC_PROBE_INIT, 0 },
    { "DESTROY twice", after_destroy, HC_PROBE_INIT, 1 },
    TRUNC(LOOKUP), TRUNC(GETATTR), TRUNC(SETATTR), TRUNC(MKNOD), TRUNC(MKDIR),
    TRUNC(SYMLINK), TRUNC(RENAME), TRUNC(RENAME2), TRUNC(LINK), TRUNC(OPEN),
    TRUNC(READ), TRUNC(WRITE), TRUNC(RELEASE), TRUNC(FSYNC), TRUNC(SETXATTR),
    TRUNC(GETXATTR), TRUNC(LISTXATTR), TRUNC(INIT), TRUNC(OPENDIR), TRUNC(READDIR),
    TRUNC(READDIRPLUS), TRUNC(RELEASEDIR), TRUNC(FSYNCDIR), TRUNC(CREATE),
    TRUNC(GETLK), TRUNC(SETLK), TRUNC(SETLKW), TRUNC(FLUSH), TRUNC(ACCESS),
    TRUNC(BMAP), TRUNC(FALLOCATE), TRUNC(LSEEK), TRUNC(COPY_FILE_RANGE),
    TRUNC(FORGET), TRUNC(BATCH_FORGET),
    { "LOOKUP name without NUL", name_no_nul, 0, 0 },
    { "MKDIR name without NUL", name_no_nul, 0, 1 },
    { "SYMLINK target without NUL", name_no_nul, 0, 2 },
    { "RENAME new name without NUL", name_no_nul, 0, 3 },
    { "LOOKUP \"../marker\"", name_slash, 0, 0 },
    { "CREATE \"../escaped\"", name_slash, 0, 1 },
    { "MKDIR with an absolute name outside the share", name_slash, 0, 2 },
    { "MKNOD \"../fifo\"", name_slash, 0, 3 },
    { "SYMLINK named \"../link\"", name_slash, 0, 4 },
    { "RENAME to \"../renamed\"", name_slash, 0, 5 },
    { "RENAME2 to \"../renamed2\"", name_slash, 0, 6 },
    { "LINK as \"../linked\"", name_slash, 0, 7 },
    { "LOOKUP \"..\" of the root", name_dots, 0, 0 },
    { "LOOKUP \".\" of the root", name_dots, 0, 1 },
    { "LOOKUP \"..\" of a subdirectory", name_dots, 0, 2 },
    { "MKDIR \"..\"", create_dots, 0, 0 },
    { "CREATE \".\"", create_dots, 0, 1 },
    { "OPEN+READ through a symlink to \"../marker\"", symlink_out, 0, 0 },
    { "OPEN O_TRUNC, SETATTR via an absolute symlink out", symlink_out, 0, 1 },
    { "CREATE through a dangling symlink to \"../created\"", symlink_out, 0, 2 },
    { "MKDIR under a symlink to a directory outside", symlink_out, 0, 3 },
    { "CREATE under a symlink to a directory outside", symlink_out, 0, 4 },
    { "RENAME into a symlink to a directory outside", symlink_out, 0, 5 },
    { "READ of 0xffffffff bytes", huge_read, 0, 0 },
    { "READ of 2 MiB into 2 MiB of buffers", huge_read, 0, 1 },
    { "READ larger than the writable buffers", huge_read, 0, 2 },
    { "WRITE size 0xffffffff with 4 KiB of data", huge_write, 0, 0 },
    { "WRITE size smaller than its data", huge_write, 0, 1 },
    { "WRITE of 2 MiB", huge_write, 0, 2 },
    { "READDIR of 0xffffffff bytes", huge_readdir, 0, 0 },
    { "READDIRPLUS at offset 2^64-1", huge_readdir, 0, 1 },
    { "GETXATTR size 0xffffffff", huge_xattr, 0, 0 },
    { "LISTXATTR size 0x7fffffff", huge_xattr, 0, 1 },
    { "SETXATTR claiming a 1 MiB value", huge_xattr, 0, 2 },
    { "BATCH_FORGET count 0xffffffff", huge_batch_forget, 0, 0 },
    { "COPY_FILE_RANGE of 2^63 bytes from an unknown fh", bad_range, 0, 0 },
    { "FALLOCATE whose range wraps the file offset", bad_range, 0, 1 },
    { "LSEEK with whence 77", bad_range, 0, 2 },
    { "GETLK with lock type 99", bad_range, HC_POSIX_LOCK, 3 },
    { "SETLK with end before start", bad_range, HC_POSIX_LOCK, 4 },
    { "SETLK starting beyond the largest file offset", bad_range, HC_POSIX_LOCK, 5 },
    { "GETATTR of an unknown nodeid", bad_handle, 0, 0 },
    { "GETATTR of nodeid 0", bad_handle, 0, 1 },
    { "READ with an unknown fh", bad_handle, 0, 2 },
    { "RELEASE of an fh never opened", bad_handle, 0, 3 },
    { "RELEASE twice", bad_handle, 0, 4 },
    { "WRITE with a directory handle", bad_handle, 0, 5 },
    { "READDIR with a file handle", bad_handle, 0, 6 },
    { "FORGET of more lookups than the root has", bad_forget, 0, 0 },
    { "FORGET of an unknown nodeid", bad_forget, 0, 1 },
    { "BATCH_FORGET of the root 64000 times", bad_forget, 0, 2 },
};
const unsigned hostile_fuse_ncases = sizeof(hostile_fuse_cases) / sizeof(hostile_fuse_cases[0]);
