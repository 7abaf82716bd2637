/* SPDX-License-Identifier: GPL-2.0-or-later */
/*
 * FUSE request validation, done by the transport before libfuse sees a
 * request: libfuse trusts every length in the message it is handed.
 *
 * One opcode table (fuse_validate.c) carries each opcode's name, the size
 * of its fixed argument struct and the NUL-terminated names that follow it;
 * logs and per-opcode statistics index the same table.
 *
 * The layouts are those of kernel protocol 7.31..7.38 as libfuse 3.14
 * parses them; INIT is only accepted from a 7.31+ client (the first
 * virtio-fs kernel), so none of libfuse's pre-7.12 compat layouts can be
 * selected by a guest.
 */
#ifndef VFS_FUSE_VALIDATE_H
#define VFS_FUSE_VALIDATE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <linux/fuse.h>

/* One past the highest FUSE opcode in the table (kernel protocol 7.38). */
#define FV_OPCODE_MAX (FUSE_TMPFILE + 1)

/*
 * Largest READ/WRITE/READDIR payload: libfuse's default buffer is
 * FUSE_MAX_MAX_PAGES (256) pages plus a page for headers, so max_write
 * never exceeds 1 MiB.
 */
#define FV_MAX_IO_SIZE (1024u * 1024u + 4096u)
/* Largest readable part of a chain copied into a request buffer. */
#define FV_MAX_IN_SIZE (1024u * 1024u + 64u * 1024u)
/* Lowest protocol minor accepted in INIT. */
#define FV_MIN_PROTO_MINOR 31u

/*
 * Flags for fv_validate_request_ex(), from what the session negotiated.
 * FV_VALIDATE_SETXATTR_EXT: FUSE_SETXATTR_EXT was granted, so SETXATTR
 * carries the 16-byte fuse_setxattr_in instead of the 8-byte compat one
 * (libfuse 3.14 never grants it).
 */
#define FV_VALIDATE_SETXATTR_EXT (1u << 0)

/* "LOOKUP", "CUSE_INIT", or "UNKNOWN"; never NULL. */
const char *fuse_opcode_name(uint32_t op);

/* FORGET and BATCH_FORGET: the kernel expects no reply. */
bool fv_opcode_no_reply(uint32_t op);

/*
 * 0 if @buf (@len readable bytes, the whole readable part of a chain) is a
 * request libfuse may process and whose reply fits @wr_len writable bytes;
 * otherwise the negative errno to answer with, and a static reason in
 * *@why (if @why is not NULL):
 *   -EINVAL  malformed: short header, in.len != @len, unique 0, argument
 *            shorter than the opcode's struct, a name not NUL-terminated
 *            inside @buf / empty / containing '/' where it is a path
 *            component, sizes that do not add up or exceed the writable
 *            space or FV_MAX_IO_SIZE, no room for a reply header
 *   -ENOSYS  unknown opcode, or one this daemon does not serve
 *            (INTERRUPT, NOTIFY_REPLY, IOCTL, POLL, DAX mappings, CUSE...)
 *   -EPROTO  INIT with a protocol other than 7.31+
 * Whether INIT is acceptable for the session is the device layer's call.
 */
int fv_validate_request(const void *buf, size_t len, uint64_t wr_len,
                        const char **why);
int fv_validate_request_ex(const void *buf, size_t len, uint64_t wr_len,
                           unsigned int flags, const char **why);

#endif
