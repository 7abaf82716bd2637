/* SPDX-License-Identifier: GPL-2.0-or-later */
/*
 * FUSE request validation: a well-formed request of every served opcode is
 * accepted; every opcode truncated by one byte, wrong in.len either way,
 * unique 0, names without NUL / empty / with '/', sizes that do not add up
 * or do not fit the writable space, unknown and unserved opcodes, and bad
 * INITs are rejected with the errno the transport answers with.
 */
#include <errno.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "fuse_validate.h"

#define OUT_HDR sizeof(struct fuse_out_header)
#define BUF_SIZE (2u * 1024u * 1024u)
#define WR_DEFAULT (OUT_HDR + 4096u)

static int failures;

#define CHECK(cond, ...)                                                \
    do {                                                                \
        if (!(cond)) {                                                  \
            fprintf(stderr, "FAIL %s:%d: ", __FILE__, __LINE__);        \
            fprintf(stderr, __VA_ARGS__);                               \
            fprintf(stderr, "\n");                                      \
            failures++;                                                 \
        }                                                               \
    } while (0)

/* A request under construction; +1 so tests can also use an odd address. */
struct rq {
    uint8_t *mem;
    uint8_t *buf;
    size_t len;
    uint64_t wr_len;
};

static void rq_begin(struct rq *r, uint32_t opcode)
{
    struct fuse_in_header in = {
        .opcode = opcode,
        .unique = 42,
        .nodeid = 1,
    };

    memset(r->mem, 0, 4096 + 1);
    r->buf = r->mem;
    memcpy(r->buf, &in, sizeof(in));
    r->len = sizeof(in);
    r->wr_len = WR_DEFAULT;
}

static void rq_add(struct rq *r, const void *p, size_t n)
{
    memcpy(r->buf + r->len, p, n);
    r->len += n;
}

static void rq_zero(struct rq *r, size_t n)
{
    memset(r->buf + r->len, 0, n);
    r->len += n;
}

static void rq_str(struct rq *r, const char *s)
{
    rq_add(r, s, strlen(s) + 1);
}

static void rq_set_len(struct rq *r, uint32_t len)
{
    memcpy(r->buf + offsetof(struct fuse_in_header, len), &len, sizeof(len));
}

static void rq_end(struct rq *r)
{
    rq_set_len(r, (uint32_t)r->len);
}

static int rq_check(const struct rq *r, const char **why)
{
    return fv_validate_request(r->buf, r->len, r->wr_len, why);
}

/* Shrink the request by one byte, keeping in.len consistent. */
static int rq_check_truncated(struct rq *r)
{
    int ret;

    r->len--;
    rq_end(r);
    ret = rq_check(r, NULL);
    r->len++;
    rq_end(r);
    return ret;
}

static const uint32_t served[] = {
    FUSE_LOOKUP, FUSE_FORGET, FUSE_GETATTR, FUSE_SETATTR, FUSE_READLINK,
    FUSE_SYMLINK, FUSE_MKNOD, FUSE_MKDIR, FUSE_UNLINK, FUSE_RMDIR,
    FUSE_RENAME, FUSE_LINK, FUSE_OPEN, FUSE_READ, FUSE_WRITE, FUSE_STATFS,
    FUSE_RELEASE, FUSE_FSYNC, FUSE_SETXATTR, FUSE_GETXATTR, FUSE_LISTXATTR,
    FUSE_REMOVEXATTR, FUSE_FLUSH, FUSE_INIT, FUSE_OPENDIR, FUSE_READDIR,
    FUSE_RELEASEDIR, FUSE_FSYNCDIR, FUSE_GETLK, FUSE_SETLK, FUSE_SETLKW,
    FUSE_ACCESS, FUSE_CREATE, FUSE_BMAP, FUSE_DESTROY, FUSE_BATCH_FORGET,
    FUSE_FALLOCATE, FUSE_READDIRPLUS, FUSE_RENAME2, FUSE_LSEEK,
    FUSE_COPY_FILE_RANGE, FUSE_SYNCFS,
};

/* The canonical request of @op as a 7.38 kernel sends it. */
static void build_valid(struct rq *r, uint32_t op)
{
    rq_begin(r, op);
    switch (op) {
    case FUSE_LOOKUP:
    case FUSE_UNLINK:
    case FUSE_RMDIR:
        rq_str(r, "name");
        break;
    case FUSE_FORGET: {
        struct fuse_forget_in f = { .nlookup = 1 };

        rq_add(r, &f, sizeof(f));
        r->wr_len = 0; /* no reply, no writable buffers */
        break;
    }
    case FUSE_GETATTR:
        rq_zero(r, sizeof(struct fuse_getattr_in));
        break;
    case FUSE_SETATTR:
        rq_zero(r, sizeof(struct fuse_setattr_in));
        break;
    case FUSE_READLINK:
    case FUSE_STATFS:
    case FUSE_DESTROY:
        break;
    case FUSE_SYMLINK:
        rq_str(r, "link");
        rq_str(r, "../some/target");
        break;
    case FUSE_MKNOD:
        rq_zero(r, sizeof(struct fuse_mknod_in));
        rq_str(r, "node");
        break;
    case FUSE_MKDIR:
        rq_zero(r, sizeof(struct fuse_mkdir_in));
        rq_str(r, "dir");
        break;
    case FUSE_RENAME:
        rq_zero(r, sizeof(struct fuse_rename_in));
        rq_str(r, "old");
        rq_str(r, "new");
        break;
    case FUSE_RENAME2:
        rq_zero(r, sizeof(struct fuse_rename2_in));
        rq_str(r, "old");
        rq_str(r, "new");
        break;
    case FUSE_LINK:
        rq_zero(r, sizeof(struct fuse_link_in));
        rq_str(r, "hardlink");
        break;
    case FUSE_OPEN:
    case FUSE_OPENDIR:
        rq_zero(r, sizeof(struct fuse_open_in));
        break;
    case FUSE_READ:
    case FUSE_READDIR:
    case FUSE_READDIRPLUS: {
        struct fuse_read_in rd = { .size = 4096 };

        rq_add(r, &rd, sizeof(rd));
        break;
    }
    case FUSE_WRITE: {
        struct fuse_write_in wr = { .size = 100 };

        rq_add(r, &wr, sizeof(wr));
        memset(r->buf + r->len, 'w', 100);
        r->len += 100;
        break;
    }
    case FUSE_RELEASE:
    case FUSE_RELEASEDIR:
        rq_zero(r, sizeof(struct fuse_release_in));
        break;
    case FUSE_FSYNC:
    case FUSE_FSYNCDIR:
        rq_zero(r, sizeof(struct fuse_fsync_in));
        break;
    case FUSE_SETXATTR: {
        struct fuse_setxattr_in sx = { .size = 5 };

        rq_add(r, &sx, FUSE_COMPAT_SETXATTR_IN_SIZE);
        rq_str(r, "user.a/b");
        rq_add(r, "value", 5);
        break;
    }
    case FUSE_GETXATTR: {
        struct fuse_getxattr_in gx = { .size = 256 };

        rq_add(r, &gx, sizeof(gx));
        rq_str(r, "user.x");
        break;
    }
    case FUSE_LISTXATTR: {
        struct fuse_getxattr_in gx = { .size = 256 };

        rq_add(r, &gx, sizeof(gx));
        break;
    }
    case FUSE_REMOVEXATTR:
        rq_str(r, "user.x");
        break;
    case FUSE_FLUSH:
        rq_zero(r, sizeof(struct fuse_flush_in));
        break;
    case FUSE_INIT: {
        struct fuse_init_in init = {
            .major = 7,
            .minor = 38,
            .max_readahead = 65536,
            .flags = FUSE_INIT_EXT | FUSE_ASYNC_READ,
        };

        rq_add(r, &init, sizeof(init));
        break;
    }
    case FUSE_GETLK:
    case FUSE_SETLK:
    case FUSE_SETLKW:
        rq_zero(r, sizeof(struct fuse_lk_in));
        break;
    case FUSE_ACCESS:
        rq_zero(r, sizeof(struct fuse_access_in));
        break;
    case FUSE_CREATE:
        rq_zero(r, sizeof(struct fuse_create_in));
        rq_str(r, "file");
        break;
    case FUSE_BMAP:
        rq_zero(r, sizeof(struct fuse_bmap_in));
        break;
    case FUSE_BATCH_FORGET: {
        struct fuse_batch_forget_in bf = { .count = 3 };
        struct fuse_forget_one one = { .nodeid = 5, .nlookup = 1 };

        rq_add(r, &bf, sizeof(bf));
        for (int i = 0; i < 3; i++)
            rq_add(r, &one, sizeof(one));
        r->wr_len = 0;
        break;
    }
    case FUSE_FALLOCATE:
        rq_zero(r, sizeof(struct fuse_fallocate_in));
        break;
    case FUSE_LSEEK:
        rq_zero(r, sizeof(struct fuse_lseek_in));
        break;
    case FUSE_COPY_FILE_RANGE:
        rq_zero(r, sizeof(struct fuse_copy_file_range_in));
        break;
    case FUSE_SYNCFS:
        rq_zero(r, sizeof(struct fuse_syncfs_in));
        break;
    default:
        fprintf(stderr, "no builder for opcode %u\n", op);
        abort();
    }
    rq_end(r);
}

static void test_valid_and_truncated(struct rq *r)
{
    for (size_t i = 0; i < sizeof(served) / sizeof(served[0]); i++) {
        const char *why = "unset";
        int ret;

        build_valid(r, served[i]);
        ret = rq_check(r, &why);
        CHECK(ret == 0, "valid %s rejected: %d (%s)",
              fuse_opcode_name(served[i]), ret, why);

        /* the same bytes at an odd address (fields are read unaligned) */
        memmove(r->mem + 1, r->mem, r->len);
        r->buf = r->mem + 1;
        ret = rq_check(r, NULL);
        CHECK(ret == 0, "unaligned %s rejected: %d",
              fuse_opcode_name(served[i]), ret);

        build_valid(r, served[i]);
        ret = rq_check_truncated(r);
        CHECK(ret == -EINVAL, "%s truncated by one byte: %d",
              fuse_opcode_name(served[i]), ret);

        /* in.len disagreeing with the buffer, both ways */
        build_valid(r, served[i]);
        rq_set_len(r, (uint32_t)r->len + 1);
        CHECK(rq_check(r, &why) == -EINVAL, "%s in.len too large accepted",
              fuse_opcode_name(served[i]));
        rq_set_len(r, (uint32_t)r->len - 1);
        CHECK(rq_check(r, &why) == -EINVAL, "%s in.len too small accepted",
              fuse_opcode_name(served[i]));

        /* unique 0 is a notification id */
        build_valid(r, served[i]);
        memset(r->buf + offsetof(struct fuse_in_header, unique), 0, 8);
        CHECK(rq_check(r, &why) == -EINVAL, "%s with unique 0 accepted",
              fuse_opcode_name(served[i]));

        /* extensions were never negotiated */
        build_valid(r, served[i]);
        r->buf[offsetof(struct fuse_in_header, total_extlen)] = 1;
        CHECK(rq_check(r, NULL) == -EINVAL, "%s with total_extlen accepted",
              fuse_opcode_name(served[i]));

        /* a reply must fit at least its header; FORGETs need no room */
        build_valid(r, served[i]);
        r->wr_len = OUT_HDR - 1;
        ret = rq_check(r, NULL);
        if (fv_opcode_no_reply(served[i]))
            CHECK(ret == 0, "%s needs no writable space: %d",
                  fuse_opcode_name(served[i]), ret);
        else
            CHECK(ret == -EINVAL, "%s without room for a header: %d",
                  fuse_opcode_name(served[i]), ret);
    }
}

static void test_short_header(struct rq *r)
{
    build_valid(r, FUSE_STATFS);
    for (size_t len = 0; len < sizeof(struct fuse_in_header); len++) {
        rq_set_len(r, (uint32_t)len);
        CHECK(fv_validate_request(r->buf, len, WR_DEFAULT, NULL) == -EINVAL,
              "%zu-byte request accepted", len);
    }
    CHECK(fv_validate_request(NULL, 0, WR_DEFAULT, NULL) == -EINVAL,
          "NULL buffer accepted");
}

/* Names: missing NUL, empty, '/' in path components only. */
static void test_names(struct rq *r)
{
    static const uint32_t one_component[] = {
        FUSE_LOOKUP, FUSE_UNLINK, FUSE_RMDIR,
    };
    const char *why = NULL;

    for (size_t i = 0; i < 3; i++) {
        uint32_t op = one_component[i];

        rq_begin(r, op);
        rq_add(r, "name", 4); /* no NUL */
        rq_end(r);
        CHECK(rq_check(r, &why) == -EINVAL, "%s name without NUL",
              fuse_opcode_name(op));
        rq_begin(r, op);
        rq_str(r, "");
        rq_end(r);
        CHECK(rq_check(r, &why) == -EINVAL, "%s empty name",
              fuse_opcode_name(op));
        rq_begin(r, op);
        rq_str(r, "a/b");
        rq_end(r);
        CHECK(rq_check(r, &why) == -EINVAL, "%s name with '/'",
              fuse_opcode_name(op));
        rq_begin(r, op);
        rq_str(r, "/");
        rq_end(r);
        CHECK(rq_check(r, &why) == -EINVAL, "%s name \"/\"",
              fuse_opcode_name(op));
        rq_begin(r, op);
        rq_end(r);
        CHECK(rq_check(r, &why) == -EINVAL, "%s without a name",
              fuse_opcode_name(op));
        /* ".." is the filesystem's business (it must not escape) */
        rq_begin(r, op);
        rq_str(r, "..");
        rq_end(r);
        CHECK(rq_check(r, &why) == 0, "%s \"..\" rejected",
              fuse_opcode_name(op));
    }

    /* struct + name opcodes */
    static const struct { uint32_t op; size_t arg; } with_struct[] = {
        { FUSE_MKNOD, sizeof(struct fuse_mknod_in) },
        { FUSE_MKDIR, sizeof(struct fuse_mkdir_in) },
        { FUSE_CREATE, sizeof(struct fuse_create_in) },
        { FUSE_LINK, sizeof(struct fuse_link_in) },
    };
    for (size_t i = 0; i < sizeof(with_struct) / sizeof(with_struct[0]); i++) {
        uint32_t op = with_struct[i].op;

        rq_begin(r, op);
        rq_zero(r, with_struct[i].arg);
        rq_add(r, "x", 1);
        rq_end(r);
        CHECK(rq_check(r, &why) == -EINVAL, "%s name without NUL",
              fuse_opcode_name(op));
        rq_begin(r, op);
        rq_zero(r, with_struct[i].arg);
        rq_str(r, "");
        rq_end(r);
        CHECK(rq_check(r, &why) == -EINVAL, "%s empty name",
              fuse_opcode_name(op));
        rq_begin(r, op);
        rq_zero(r, with_struct[i].arg);
        rq_str(r, "../../etc/passwd");
        rq_end(r);
        CHECK(rq_check(r, &why) == -EINVAL, "%s name with '/'",
              fuse_opcode_name(op));
        /* the struct alone: the name is missing */
        rq_begin(r, op);
        rq_zero(r, with_struct[i].arg);
        rq_end(r);
        CHECK(rq_check(r, &why) == -EINVAL, "%s without a name",
              fuse_opcode_name(op));
    }

    /* SYMLINK: the target may contain '/', the name may not */
    rq_begin(r, FUSE_SYMLINK);
    rq_str(r, "a/b");
    rq_str(r, "target");
    rq_end(r);
    CHECK(rq_check(r, &why) == -EINVAL, "SYMLINK name with '/'");
    rq_begin(r, FUSE_SYMLINK);
    rq_str(r, "name");
    rq_str(r, "/abs/target");
    rq_end(r);
    CHECK(rq_check(r, &why) == 0, "SYMLINK absolute target rejected");
    rq_begin(r, FUSE_SYMLINK);
    rq_str(r, "name");
    rq_str(r, "");
    rq_end(r);
    CHECK(rq_check(r, &why) == -EINVAL, "SYMLINK empty target");
    rq_begin(r, FUSE_SYMLINK);
    rq_str(r, "name");
    rq_add(r, "target", 6);
    rq_end(r);
    CHECK(rq_check(r, &why) == -EINVAL, "SYMLINK target without NUL");
    rq_begin(r, FUSE_SYMLINK);
    rq_str(r, "name");
    rq_end(r);
    CHECK(rq_check(r, &why) == -EINVAL, "SYMLINK without a target");

    /* RENAME/RENAME2: both names are components */
    for (int k = 0; k < 2; k++) {
        uint32_t op = k ? FUSE_RENAME2 : FUSE_RENAME;
        size_t arg = k ? sizeof(struct fuse_rename2_in)
                       : sizeof(struct fuse_rename_in);

        rq_begin(r, op);
        rq_zero(r, arg);
        rq_str(r, "old");
        rq_str(r, "sub/new");
        rq_end(r);
        CHECK(rq_check(r, &why) == -EINVAL, "%s new name with '/'",
              fuse_opcode_name(op));
        rq_begin(r, op);
        rq_zero(r, arg);
        rq_str(r, "o/ld");
        rq_str(r, "new");
        rq_end(r);
        CHECK(rq_check(r, &why) == -EINVAL, "%s old name with '/'",
              fuse_opcode_name(op));
        rq_begin(r, op);
        rq_zero(r, arg);
        rq_str(r, "old");
        rq_str(r, "");
        rq_end(r);
        CHECK(rq_check(r, &why) == -EINVAL, "%s empty new name",
              fuse_opcode_name(op));
        rq_begin(r, op);
        rq_zero(r, arg);
        rq_str(r, "old");
        rq_end(r);
        CHECK(rq_check(r, &why) == -EINVAL, "%s one name only",
              fuse_opcode_name(op));
    }

    /* xattr names may contain '/', must be terminated and non-empty */
    rq_begin(r, FUSE_REMOVEXATTR);
    rq_str(r, "");
    rq_end(r);
    CHECK(rq_check(r, &why) == -EINVAL, "REMOVEXATTR empty name");
    rq_begin(r, FUSE_REMOVEXATTR);
    rq_add(r, "user.x", 6);
    rq_end(r);
    CHECK(rq_check(r, &why) == -EINVAL, "REMOVEXATTR name without NUL");
    rq_begin(r, FUSE_REMOVEXATTR);
    rq_str(r, "user.a/b");
    rq_end(r);
    CHECK(rq_check(r, &why) == 0, "REMOVEXATTR name with '/' rejected");
    CHECK(why != NULL, "reason not set on rejection");
}

static void test_io_sizes(struct rq *r)
{
    static const uint32_t reads[] = { FUSE_READ, FUSE_READDIR,
                                      FUSE_READDIRPLUS };
    struct fuse_read_in rd = { 0 };
    struct fuse_write_in wr = { 0 };

    for (size_t i = 0; i < 3; i++) {
        uint32_t op = reads[i];

        /* exactly the writable space: fine; one more byte: not */
        rq_begin(r, op);
        rd.size = 8192;
        rq_add(r, &rd, sizeof(rd));
        rq_end(r);
        r->wr_len = OUT_HDR + 8192;
        CHECK(rq_check(r, NULL) == 0, "%s filling the buffers rejected",
              fuse_opcode_name(op));
        r->wr_len = OUT_HDR + 8191;
        CHECK(rq_check(r, NULL) == -EINVAL, "%s exceeding the buffers",
              fuse_opcode_name(op));
        /* over the bound even with room */
        rq_begin(r, op);
        rd.size = FV_MAX_IO_SIZE + 1;
        rq_add(r, &rd, sizeof(rd));
        rq_end(r);
        r->wr_len = 1ull << 32;
        CHECK(rq_check(r, NULL) == -EINVAL, "%s huge size accepted",
              fuse_opcode_name(op));
        rq_begin(r, op);
        rd.size = UINT32_MAX;
        rq_add(r, &rd, sizeof(rd));
        rq_end(r);
        r->wr_len = UINT64_MAX;
        CHECK(rq_check(r, NULL) == -EINVAL, "%s size 4G accepted",
              fuse_opcode_name(op));
    }

    /* WRITE: size + headers == len exactly */
    for (int delta = -1; delta <= 1; delta++) {
        rq_begin(r, FUSE_WRITE);
        wr.size = (uint32_t)(64 + delta);
        rq_add(r, &wr, sizeof(wr));
        rq_zero(r, 64);
        rq_end(r);
        CHECK(rq_check(r, NULL) == (delta ? -EINVAL : 0),
              "WRITE size %u with 64 data bytes", wr.size);
    }
    rq_begin(r, FUSE_WRITE);
    wr.size = UINT32_MAX;
    rq_add(r, &wr, sizeof(wr));
    rq_end(r);
    CHECK(rq_check(r, NULL) == -EINVAL, "WRITE size 4G accepted");

    /* the largest write libfuse allows, and one byte more */
    {
        const uint32_t big[] = { FV_MAX_IO_SIZE, FV_MAX_IO_SIZE + 1 };

        for (int k = 0; k < 2; k++) {
            struct fuse_in_header in = {
                .opcode = FUSE_WRITE,
                .unique = 9,
                .nodeid = 2,
            };
            size_t len = sizeof(in) + sizeof(wr) + big[k];
            uint8_t *b = calloc(1, len);

            if (!b)
                abort();
            in.len = (uint32_t)len;
            wr.size = big[k];
            memcpy(b, &in, sizeof(in));
            memcpy(b + sizeof(in), &wr, sizeof(wr));
            CHECK(fv_validate_request(b, len, OUT_HDR + 16, NULL) ==
                  (k ? -EINVAL : 0), "WRITE of %u bytes", big[k]);
            free(b);
        }
    }
}

static void test_xattr(struct rq *r)
{
    struct fuse_setxattr_in sx = { 0 };
    struct fuse_getxattr_in gx = { 0 };
    const uint32_t ops[] = { FUSE_GETXATTR, FUSE_LISTXATTR };

    /* value size must match the bytes after the name */
    for (int delta = -1; delta <= 1; delta++) {
        rq_begin(r, FUSE_SETXATTR);
        sx.size = (uint32_t)(3 + delta);
        rq_add(r, &sx, FUSE_COMPAT_SETXATTR_IN_SIZE);
        rq_str(r, "user.k");
        rq_add(r, "abc", 3);
        rq_end(r);
        CHECK(rq_check(r, NULL) == (delta ? -EINVAL : 0),
              "SETXATTR size %u with 3 value bytes", sx.size);
    }
    rq_begin(r, FUSE_SETXATTR);
    sx.size = UINT32_MAX;
    rq_add(r, &sx, FUSE_COMPAT_SETXATTR_IN_SIZE);
    rq_str(r, "user.k");
    rq_end(r);
    CHECK(rq_check(r, NULL) == -EINVAL, "SETXATTR size 4G accepted");
    rq_begin(r, FUSE_SETXATTR);
    sx.size = 0;
    rq_add(r, &sx, FUSE_COMPAT_SETXATTR_IN_SIZE);
    rq_str(r, "");
    rq_end(r);
    CHECK(rq_check(r, NULL) == -EINVAL, "SETXATTR empty name accepted");
    /* an empty value is legal */
    rq_begin(r, FUSE_SETXATTR);
    rq_add(r, &sx, FUSE_COMPAT_SETXATTR_IN_SIZE);
    rq_str(r, "user.k");
    rq_end(r);
    CHECK(rq_check(r, NULL) == 0, "SETXATTR empty value rejected");

    /* extended layout, only when negotiated */
    rq_begin(r, FUSE_SETXATTR);
    sx.size = 2;
    rq_add(r, &sx, sizeof(sx));
    rq_str(r, "user.k");
    rq_add(r, "ab", 2);
    rq_end(r);
    CHECK(fv_validate_request_ex(r->buf, r->len, r->wr_len,
                                 FV_VALIDATE_SETXATTR_EXT, NULL) == 0,
          "extended SETXATTR rejected");
    /* compat reading: name starts at the zero setxattr_flags => empty */
    CHECK(rq_check(r, NULL) == -EINVAL,
          "extended SETXATTR accepted without SETXATTR_EXT");

    for (int k = 0; k < 2; k++) {
        uint32_t op = ops[k];

        /* size 0 asks for the length: room for fuse_getxattr_out */
        rq_begin(r, op);
        gx.size = 0;
        rq_add(r, &gx, sizeof(gx));
        if (op == FUSE_GETXATTR)
            rq_str(r, "user.x");
        rq_end(r);
        r->wr_len = OUT_HDR + sizeof(struct fuse_getxattr_out);
        CHECK(rq_check(r, NULL) == 0, "%s size 0 rejected",
              fuse_opcode_name(op));
        r->wr_len = OUT_HDR + sizeof(struct fuse_getxattr_out) - 1;
        CHECK(rq_check(r, NULL) == -EINVAL,
              "%s size 0 without room for getxattr_out",
              fuse_opcode_name(op));

        rq_begin(r, op);
        gx.size = 100;
        rq_add(r, &gx, sizeof(gx));
        if (op == FUSE_GETXATTR)
            rq_str(r, "user.x");
        rq_end(r);
        r->wr_len = OUT_HDR + 100;
        CHECK(rq_check(r, NULL) == 0, "%s size == room rejected",
              fuse_opcode_name(op));
        r->wr_len = OUT_HDR + 99;
        CHECK(rq_check(r, NULL) == -EINVAL, "%s size > room accepted",
              fuse_opcode_name(op));

        rq_begin(r, op);
        gx.size = UINT32_MAX;
        rq_add(r, &gx, sizeof(gx));
        if (op == FUSE_GETXATTR)
            rq_str(r, "user.x");
        rq_end(r);
        r->wr_len = UINT64_MAX;
        CHECK(rq_check(r, NULL) == -EINVAL, "%s size 4G accepted",
              fuse_opcode_name(op));
    }
    rq_begin(r, FUSE_GETXATTR);
    gx.size = 10;
    rq_add(r, &gx, sizeof(gx));
    rq_add(r, "user.x", 6);
    rq_end(r);
    CHECK(rq_check(r, NULL) == -EINVAL, "GETXATTR name without NUL");
}

static void test_batch_forget(struct rq *r)
{
    struct fuse_batch_forget_in bf = { 0 };
    struct fuse_forget_one one = { .nodeid = 3, .nlookup = 1 };
    const uint32_t counts[] = { 0, 1, 2, 3, 0x10000000u, UINT32_MAX };

    for (size_t i = 0; i < sizeof(counts) / sizeof(counts[0]); i++) {
        rq_begin(r, FUSE_BATCH_FORGET);
        bf.count = counts[i];
        rq_add(r, &bf, sizeof(bf));
        rq_add(r, &one, sizeof(one));
        rq_add(r, &one, sizeof(one));
        rq_end(r);
        r->wr_len = 0;
        CHECK(rq_check(r, NULL) == (counts[i] <= 2 ? 0 : -EINVAL),
              "BATCH_FORGET count %u with 2 entries", counts[i]);
    }
}

static void test_init(struct rq *r)
{
    struct fuse_init_in init = { .major = 7, .minor = 38 };
    const char *why = NULL;

    /* pre-7.36 kernels send only the first four fields */
    rq_begin(r, FUSE_INIT);
    init.flags = FUSE_ASYNC_READ;
    rq_add(r, &init, offsetof(struct fuse_init_in, flags2));
    rq_end(r);
    CHECK(rq_check(r, NULL) == 0, "16-byte INIT rejected");
    /* ...but with FUSE_INIT_EXT libfuse reads flags2 */
    rq_begin(r, FUSE_INIT);
    init.flags = FUSE_INIT_EXT;
    rq_add(r, &init, offsetof(struct fuse_init_in, flags2));
    rq_end(r);
    CHECK(rq_check(r, &why) == -EINVAL, "short INIT with INIT_EXT accepted");

    const struct { uint32_t major, minor; int expect; } versions[] = {
        { 7, 38, 0 }, { 7, FV_MIN_PROTO_MINOR, 0 }, { 7, 99, 0 },
        { 7, FV_MIN_PROTO_MINOR - 1, -EPROTO }, { 7, 8, -EPROTO },
        { 6, 38, -EPROTO }, { 8, 0, -EPROTO }, { 0, 0, -EPROTO },
    };
    for (size_t i = 0; i < sizeof(versions) / sizeof(versions[0]); i++) {
        rq_begin(r, FUSE_INIT);
        init.major = versions[i].major;
        init.minor = versions[i].minor;
        init.flags = 0;
        rq_add(r, &init, sizeof(init));
        rq_end(r);
        CHECK(rq_check(r, NULL) == versions[i].expect, "INIT %u.%u",
              versions[i].major, versions[i].minor);
    }
    /* room for the whole init_out */
    build_valid(r, FUSE_INIT);
    r->wr_len = OUT_HDR + sizeof(struct fuse_init_out);
    CHECK(rq_check(r, NULL) == 0, "INIT with exact reply room rejected");
    r->wr_len--;
    CHECK(rq_check(r, NULL) == -EINVAL, "INIT without room for init_out");
}

static void test_unknown_and_unserved(struct rq *r)
{
    const uint32_t unknown[] = {
        0, 7, 19, FUSE_TMPFILE + 1, 100, 1000, CUSE_INIT,
        CUSE_INIT_BSWAP_RESERVED, FUSE_INIT_BSWAP_RESERVED, UINT32_MAX,
    };
    const uint32_t unserved[] = {
        FUSE_INTERRUPT, FUSE_IOCTL, FUSE_POLL, FUSE_NOTIFY_REPLY,
        FUSE_SETUPMAPPING, FUSE_REMOVEMAPPING, FUSE_TMPFILE,
    };
    const char *why = NULL;

    for (size_t i = 0; i < sizeof(unknown) / sizeof(unknown[0]); i++) {
        rq_begin(r, unknown[i]);
        rq_zero(r, 64);
        rq_end(r);
        CHECK(rq_check(r, &why) == -ENOSYS, "opcode %u not ENOSYS",
              unknown[i]);
        CHECK(strcmp(fuse_opcode_name(unknown[i]),
                     unknown[i] == CUSE_INIT ? "CUSE_INIT" : "UNKNOWN") == 0,
              "name of opcode %u: %s", unknown[i],
              fuse_opcode_name(unknown[i]));
    }
    for (size_t i = 0; i < sizeof(unserved) / sizeof(unserved[0]); i++) {
        rq_begin(r, unserved[i]);
        rq_zero(r, 64);
        rq_str(r, "name");
        rq_end(r);
        CHECK(rq_check(r, &why) == -ENOSYS, "%s not ENOSYS",
              fuse_opcode_name(unserved[i]));
        CHECK(strcmp(fuse_opcode_name(unserved[i]), "UNKNOWN") != 0,
              "unserved opcode %u has no name", unserved[i]);
    }
}

static void test_names_table(void)
{
    const struct { uint32_t op; const char *name; } spot[] = {
        { FUSE_LOOKUP, "LOOKUP" }, { FUSE_READ, "READ" },
        { FUSE_WRITE, "WRITE" }, { FUSE_INIT, "INIT" },
        { FUSE_BATCH_FORGET, "BATCH_FORGET" }, { FUSE_SETLKW, "SETLKW" },
        { FUSE_RENAME2, "RENAME2" }, { FUSE_TMPFILE, "TMPFILE" },
    };

    CHECK(FV_OPCODE_MAX == FUSE_TMPFILE + 1, "FV_OPCODE_MAX %d",
          FV_OPCODE_MAX);
    for (size_t i = 0; i < sizeof(spot) / sizeof(spot[0]); i++)
        CHECK(strcmp(fuse_opcode_name(spot[i].op), spot[i].name) == 0,
              "name of %u: %s", spot[i].op, fuse_opcode_name(spot[i].op));
    /* every opcode of the enum has a name; the gaps do not */
    for (uint32_t op = 0; op < FV_OPCODE_MAX; op++) {
        bool gap = op == 0 || op == 7 || op == 19;

        CHECK((strcmp(fuse_opcode_name(op), "UNKNOWN") == 0) == gap,
              "opcode %u name %s", op, fuse_opcode_name(op));
    }
    CHECK(fv_opcode_no_reply(FUSE_FORGET) && fv_opcode_no_reply(FUSE_BATCH_FORGET),
          "FORGETs must be no-reply");
    CHECK(!fv_opcode_no_reply(FUSE_LOOKUP) && !fv_opcode_no_reply(0) &&
          !fv_opcode_no_reply(UINT32_MAX), "no_reply for others");
}

int main(void)
{
    struct rq r;

    r.mem = malloc(BUF_SIZE);
    if (!r.mem)
        return 1;
    test_names_table();
    test_valid_and_truncated(&r);
    test_short_header(&r);
    test_names(&r);
    test_io_sizes(&r);
    test_xattr(&r);
    test_batch_forget(&r);
    test_init(&r);
    test_unknown_and_unserved(&r);
    free(r.mem);
    if (failures) {
        fprintf(stderr, "%d check(s) failed\n", failures);
        return 1;
    }
    printf("fuse_validate: all checks passed\n");
    return 0;
}
