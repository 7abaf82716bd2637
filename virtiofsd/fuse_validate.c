/* SPDX-License-Identifier: GPL-2.0-or-later */
/*
 * FUSE request validation: the opcode table and fv_validate_request().
 *
 * Everything here reads a private copy of the request (fuse_virtio.c copies
 * the readable part of the chain before validating it), so a guest cannot
 * change a length between the check and its use. Fields are read with
 * memcpy: the buffer carries no alignment promise.
 */
#include "fuse_validate.h"

#include <errno.h>
#include <string.h>

/* Longest xattr value or list the kernel sends or asks for (XATTR_SIZE_MAX). */
#define FV_MAX_XATTR_SIZE 65536u

enum {
    FV_OPF_SERVED = 1u << 0,    /* handed to libfuse; else answered ENOSYS */
    FV_OPF_NO_REPLY = 1u << 1,  /* the kernel expects no reply */
};

struct fv_opcode_info {
    const char *name;
    uint16_t arg_size;          /* fixed argument struct after the header */
    uint8_t nnames;             /* NUL-terminated names after the struct */
    uint8_t component_mask;     /* bit i: name i is a path component */
    uint8_t flags;              /* FV_OPF_* */
};

#define SERVED FV_OPF_SERVED
#define NO_REPLY FV_OPF_NO_REPLY

/*
 * Indexed by opcode. Argument sizes are the structs the kernel sends at
 * protocol 7.31+; for opcodes that carry only a struct, a longer argument
 * is accepted (structs only ever grow at the end). SETXATTR's size here is
 * the compat one libfuse 3.14 parses; the extended one is chosen by flag.
 */
static const struct fv_opcode_info opcode_table[FV_OPCODE_MAX] = {
    [FUSE_LOOKUP] = { "LOOKUP", 0, 1, 0x1, SERVED },
    [FUSE_FORGET] = { "FORGET", sizeof(struct fuse_forget_in), 0, 0,
                      SERVED | NO_REPLY },
    [FUSE_GETATTR] = { "GETATTR", sizeof(struct fuse_getattr_in), 0, 0, SERVED },
    [FUSE_SETATTR] = { "SETATTR", sizeof(struct fuse_setattr_in), 0, 0, SERVED },
    [FUSE_READLINK] = { "READLINK", 0, 0, 0, SERVED },
    /* name (a component), then the link target (any non-empty string) */
    [FUSE_SYMLINK] = { "SYMLINK", 0, 2, 0x1, SERVED },
    [FUSE_MKNOD] = { "MKNOD", sizeof(struct fuse_mknod_in), 1, 0x1, SERVED },
    [FUSE_MKDIR] = { "MKDIR", sizeof(struct fuse_mkdir_in), 1, 0x1, SERVED },
    [FUSE_UNLINK] = { "UNLINK", 0, 1, 0x1, SERVED },
    [FUSE_RMDIR] = { "RMDIR", 0, 1, 0x1, SERVED },
    [FUSE_RENAME] = { "RENAME", sizeof(struct fuse_rename_in), 2, 0x3, SERVED },
    [FUSE_LINK] = { "LINK", sizeof(struct fuse_link_in), 1, 0x1, SERVED },
    [FUSE_OPEN] = { "OPEN", sizeof(struct fuse_open_in), 0, 0, SERVED },
    [FUSE_READ] = { "READ", sizeof(struct fuse_read_in), 0, 0, SERVED },
    [FUSE_WRITE] = { "WRITE", sizeof(struct fuse_write_in), 0, 0, SERVED },
    [FUSE_STATFS] = { "STATFS", 0, 0, 0, SERVED },
    [FUSE_RELEASE] = { "RELEASE", sizeof(struct fuse_release_in), 0, 0, SERVED },
    [FUSE_FSYNC] = { "FSYNC", sizeof(struct fuse_fsync_in), 0, 0, SERVED },
    /* struct, xattr name ('/' is legal in one), then size bytes of value */
    [FUSE_SETXATTR] = { "SETXATTR", FUSE_COMPAT_SETXATTR_IN_SIZE, 1, 0, SERVED },
    [FUSE_GETXATTR] = { "GETXATTR", sizeof(struct fuse_getxattr_in), 1, 0, SERVED },
    [FUSE_LISTXATTR] = { "LISTXATTR", sizeof(struct fuse_getxattr_in), 0, 0,
                         SERVED },
    [FUSE_REMOVEXATTR] = { "REMOVEXATTR", 0, 1, 0, SERVED },
    [FUSE_FLUSH] = { "FLUSH", sizeof(struct fuse_flush_in), 0, 0, SERVED },
    /* major, minor, max_readahead, flags; the rest only with FUSE_INIT_EXT */
    [FUSE_INIT] = { "INIT", offsetof(struct fuse_init_in, flags2), 0, 0, SERVED },
    [FUSE_OPENDIR] = { "OPENDIR", sizeof(struct fuse_open_in), 0, 0, SERVED },
    [FUSE_READDIR] = { "READDIR", sizeof(struct fuse_read_in), 0, 0, SERVED },
    [FUSE_RELEASEDIR] = { "RELEASEDIR", sizeof(struct fuse_release_in), 0, 0,
                          SERVED },
    [FUSE_FSYNCDIR] = { "FSYNCDIR", sizeof(struct fuse_fsync_in), 0, 0, SERVED },
    [FUSE_GETLK] = { "GETLK", sizeof(struct fuse_lk_in), 0, 0, SERVED },
    [FUSE_SETLK] = { "SETLK", sizeof(struct fuse_lk_in), 0, 0, SERVED },
    [FUSE_SETLKW] = { "SETLKW", sizeof(struct fuse_lk_in), 0, 0, SERVED },
    [FUSE_ACCESS] = { "ACCESS", sizeof(struct fuse_access_in), 0, 0, SERVED },
    [FUSE_CREATE] = { "CREATE", sizeof(struct fuse_create_in), 1, 0x1, SERVED },
    /* virtio-fs has no interrupts; answered ENOSYS */
    [FUSE_INTERRUPT] = { "INTERRUPT", sizeof(struct fuse_interrupt_in), 0, 0, 0 },
    [FUSE_BMAP] = { "BMAP", sizeof(struct fuse_bmap_in), 0, 0, SERVED },
    [FUSE_DESTROY] = { "DESTROY", 0, 0, 0, SERVED },
    [FUSE_IOCTL] = { "IOCTL", sizeof(struct fuse_ioctl_in), 0, 0, 0 },
    [FUSE_POLL] = { "POLL", sizeof(struct fuse_poll_in), 0, 0, 0 },
    [FUSE_NOTIFY_REPLY] = { "NOTIFY_REPLY", 0, 0, 0, 0 },
    [FUSE_BATCH_FORGET] = { "BATCH_FORGET", sizeof(struct fuse_batch_forget_in),
                            0, 0, SERVED | NO_REPLY },
    [FUSE_FALLOCATE] = { "FALLOCATE", sizeof(struct fuse_fallocate_in), 0, 0,
                         SERVED },
    [FUSE_READDIRPLUS] = { "READDIRPLUS", sizeof(struct fuse_read_in), 0, 0,
                           SERVED },
    [FUSE_RENAME2] = { "RENAME2", sizeof(struct fuse_rename2_in), 2, 0x3, SERVED },
    [FUSE_LSEEK] = { "LSEEK", sizeof(struct fuse_lseek_in), 0, 0, SERVED },
    [FUSE_COPY_FILE_RANGE] = { "COPY_FILE_RANGE",
                               sizeof(struct fuse_copy_file_range_in), 0, 0,
                               SERVED },
    /* no DAX window */
    [FUSE_SETUPMAPPING] = { "SETUPMAPPING", sizeof(struct fuse_setupmapping_in),
                            0, 0, 0 },
    [FUSE_REMOVEMAPPING] = { "REMOVEMAPPING",
                             sizeof(struct fuse_removemapping_in), 0, 0, 0 },
    [FUSE_SYNCFS] = { "SYNCFS", sizeof(struct fuse_syncfs_in), 0, 0, SERVED },
    /* libfuse 3.14 has no tmpfile op; the kernel falls back on ENOSYS */
    [FUSE_TMPFILE] = { "TMPFILE", sizeof(struct fuse_create_in), 1, 0, 0 },
};

#undef SERVED
#undef NO_REPLY

static const struct fv_opcode_info *opcode_info(uint32_t op)
{
    if (op >= FV_OPCODE_MAX || !opcode_table[op].name)
        return NULL;
    return &opcode_table[op];
}

const char *fuse_opcode_name(uint32_t op)
{
    const struct fv_opcode_info *oi = opcode_info(op);

    if (oi)
        return oi->name;
    if (op == CUSE_INIT)
        return "CUSE_INIT";
    return "UNKNOWN";
}

bool fv_opcode_no_reply(uint32_t op)
{
    const struct fv_opcode_info *oi = opcode_info(op);

    return oi && (oi->flags & FV_OPF_NO_REPLY);
}

#define REJECT(err, reason)                                             \
    do {                                                                \
        if (why)                                                        \
            *why = (reason);                                            \
        return (err);                                                   \
    } while (0)

/* Reply payload space once the out header is accounted for. */
static uint64_t reply_room(uint64_t wr_len)
{
    return wr_len - sizeof(struct fuse_out_header);
}

int fv_validate_request_ex(const void *buf, size_t len, uint64_t wr_len,
                           unsigned int flags, const char **why)
{
    const uint8_t *arg = (const uint8_t *)buf + sizeof(struct fuse_in_header);
    const struct fv_opcode_info *oi;
    struct fuse_in_header in;
    size_t arg_len, arg_size, pos;

    if (!buf || len < sizeof(in))
        REJECT(-EINVAL, "shorter than fuse_in_header");
    memcpy(&in, buf, sizeof(in));
    if (in.len > len)
        REJECT(-EINVAL, "in.len larger than the readable buffers");
    if (in.len < len)
        REJECT(-EINVAL, "in.len smaller than the readable buffers");
    /* unique 0 marks notifications; a reply with it would be one */
    if (in.unique == 0)
        REJECT(-EINVAL, "unique 0");

    oi = opcode_info(in.opcode);
    if (!oi)
        REJECT(-ENOSYS, "unknown opcode");
    if (!(oi->flags & FV_OPF_SERVED))
        REJECT(-ENOSYS, "opcode not served");
    if (!(oi->flags & FV_OPF_NO_REPLY) &&
        wr_len < sizeof(struct fuse_out_header))
        REJECT(-EINVAL, "no room for a reply header");
    /* Extensions are only sent once negotiated, and we never do. */
    if (in.total_extlen)
        REJECT(-EINVAL, "request extensions not negotiated");

    arg_len = len - sizeof(in);
    arg_size = oi->arg_size;
    if (in.opcode == FUSE_SETXATTR && (flags & FV_VALIDATE_SETXATTR_EXT))
        arg_size = sizeof(struct fuse_setxattr_in);
    if (arg_len < arg_size)
        REJECT(-EINVAL, "argument shorter than the opcode's struct");

    pos = arg_size;
    for (unsigned int i = 0; i < oi->nnames; i++) {
        const uint8_t *name = arg + pos;
        const uint8_t *nul = memchr(name, '\0', arg_len - pos);
        size_t nlen;

        if (!nul)
            REJECT(-EINVAL, "name not NUL-terminated");
        nlen = (size_t)(nul - name);
        if (nlen == 0)
            REJECT(-EINVAL, "empty name");
        if ((oi->component_mask & (1u << i)) && memchr(name, '/', nlen))
            REJECT(-EINVAL, "'/' in a path component");
        pos += nlen + 1;
    }

    switch (in.opcode) {
    case FUSE_INIT: {
        struct fuse_init_in init = { 0 };

        memcpy(&init, arg, arg_size);
        if (init.major != FUSE_KERNEL_VERSION ||
            init.minor < FV_MIN_PROTO_MINOR)
            REJECT(-EPROTO, "unsupported protocol version");
        /* libfuse reads flags2 when FUSE_INIT_EXT is set */
        if ((init.flags & FUSE_INIT_EXT) && arg_len < sizeof(init))
            REJECT(-EINVAL, "INIT_EXT without the extended fuse_init_in");
        if (reply_room(wr_len) < sizeof(struct fuse_init_out))
            REJECT(-EINVAL, "no room for the INIT reply");
        break;
    }
    case FUSE_READ:
    case FUSE_READDIR:
    case FUSE_READDIRPLUS: {
        struct fuse_read_in rd;

        memcpy(&rd, arg, sizeof(rd));
        if (rd.size > FV_MAX_IO_SIZE)
            REJECT(-EINVAL, "read size too large");
        if (rd.size > reply_room(wr_len))
            REJECT(-EINVAL, "read size exceeds the writable buffers");
        break;
    }
    case FUSE_WRITE: {
        struct fuse_write_in wr;

        memcpy(&wr, arg, sizeof(wr));
        if (wr.size > FV_MAX_IO_SIZE)
            REJECT(-EINVAL, "write size too large");
        if ((uint64_t)wr.size + sizeof(wr) != arg_len)
            REJECT(-EINVAL, "write size does not match the data");
        break;
    }
    case FUSE_SETXATTR: {
        struct fuse_setxattr_in sx;

        memcpy(&sx, arg, FUSE_COMPAT_SETXATTR_IN_SIZE);
        if (sx.size > FV_MAX_XATTR_SIZE)
            REJECT(-EINVAL, "xattr value too large");
        if ((uint64_t)pos + sx.size != arg_len)
            REJECT(-EINVAL, "xattr value size does not match the data");
        break;
    }
    case FUSE_GETXATTR:
    case FUSE_LISTXATTR: {
        struct fuse_getxattr_in gx;

        memcpy(&gx, arg, sizeof(gx));
        if (gx.size > FV_MAX_XATTR_SIZE)
            REJECT(-EINVAL, "xattr size too large");
        /* size 0 asks for the length, answered in a fuse_getxattr_out */
        if (gx.size == 0 &&
            reply_room(wr_len) < sizeof(struct fuse_getxattr_out))
            REJECT(-EINVAL, "no room for fuse_getxattr_out");
        if (gx.size > reply_room(wr_len))
            REJECT(-EINVAL, "xattr size exceeds the writable buffers");
        break;
    }
    case FUSE_BATCH_FORGET: {
        struct fuse_batch_forget_in bf;

        memcpy(&bf, arg, sizeof(bf));
        if ((uint64_t)bf.count * sizeof(struct fuse_forget_one) >
            arg_len - sizeof(bf))
            REJECT(-EINVAL, "BATCH_FORGET count exceeds the data");
        break;
    }
    default:
        break;
    }
    return 0;
}

int fv_validate_request(const void *buf, size_t len, uint64_t wr_len,
                        const char **why)
{
    return fv_validate_request_ex(buf, len, wr_len, 0, why);
}
