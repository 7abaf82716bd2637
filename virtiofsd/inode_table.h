/* SPDX-License-Identifier: GPL-2.0-or-later */
/*
 * Sharded tables of the passthrough filesystem: inodes (keyed by node id
 * and by host (st_dev, st_ino)) and open files (keyed by file handle).
 *
 * The guest only ever sees opaque 64-bit keys. Every key it sends back is
 * looked up here; an unknown key yields NULL, never a dangling pointer.
 * Each table is split into LO_SHARDS shards with their own mutex, so the
 * READ/WRITE path only holds one shard lock for a hash lookup and a
 * reference increment. The low bits of a key select its shard; an inode's
 * node id is chosen in the shard of its (dev, ino) hash, so both indexes of
 * one inode live under the same lock.
 */
#ifndef VFS_INODE_TABLE_H
#define VFS_INODE_TABLE_H

#include <dirent.h>
#include <pthread.h>
#include <stdbool.h>
#include <stdint.h>
#include <sys/stat.h>
#include <sys/types.h>

#define LO_SHARD_BITS 6
#define LO_SHARDS (1u << LO_SHARD_BITS)

struct lo_inode_key {
    dev_t dev;
    ino_t ino;
};

/*
 * A guest lock owner's host file description for POSIX locks on an inode.
 * POSIX locks belong to (process, inode); each owner gets its own open
 * file description so OFD locks conflict between owners exactly as
 * process-owned locks do, and never between one owner's own handles.
 */
struct lo_plock {
    uint64_t owner;
    int fd;
    struct lo_plock *next;
};

struct lo_inode {
    int fd;                   /* O_PATH|O_NOFOLLOW, owned */
    uint64_t nodeid;
    struct lo_inode_key key;
    mode_t type;              /* S_IFMT bits: an inode never changes type */
    uint64_t nlookup;         /* guest's references; under the shard lock */
    int refcount;             /* atomic: 1 for the table + in-flight users */
    pthread_mutex_t plock_lock;
    struct lo_plock *plocks;  /* under plock_lock; closed with the inode */
};

struct lo_file {
    uint64_t fh;
    uint64_t nodeid;          /* inode the guest opened it through */
    int fd;                   /* owned; for a directory, owned by @dp */
    int refcount;             /* atomic: 1 for the table + in-flight users */
    bool is_dir;

    /* Directory stream; @dir_lock serializes readdir on this handle. */
    pthread_mutex_t dir_lock;
    DIR *dp;
    off_t dir_offset;
    struct dirent *dir_entry; /* read but not yet returned to the guest */
};

struct lo_table;

struct lo_table *lo_table_new(void);
/* Frees every inode and file still held by the table (and the root). */
void lo_table_free(struct lo_table *t);

/*
 * Install the root inode (node id FUSE_ROOT_ID). Takes ownership of @fd.
 * The root is never forgotten or cleared.
 */
void lo_table_set_root(struct lo_table *t, int fd, const struct stat *st);

/* Referenced inode for @nodeid, or NULL if the guest sent an unknown id. */
struct lo_inode *lo_inode_get(struct lo_table *t, uint64_t nodeid);
void lo_inode_put(struct lo_inode *inode);

/*
 * Account one guest lookup of the inode @fd / @st refers to. Takes
 * ownership of @fd: if (st_dev, st_ino) is already known, the existing
 * inode gets nlookup + 1 and @fd is closed; otherwise a new inode with
 * nlookup 1 is inserted. Returns a referenced inode (caller puts it), or
 * NULL on allocation failure (fd closed).
 */
struct lo_inode *lo_inode_lookup_ref(struct lo_table *t, int fd,
                                     const struct stat *st);

/*
 * Drop @n guest references from @nodeid (FORGET). A count larger than the
 * one held saturates to zero; at zero the inode leaves the table. Unknown
 * ids and the root are ignored.
 */
void lo_inode_forget(struct lo_table *t, uint64_t nodeid, uint64_t n);

/* Drop every inode except the root (the guest forgot them all). */
void lo_table_clear_inodes(struct lo_table *t);
/* Number of inodes in the table, root excluded. */
size_t lo_table_inode_count(struct lo_table *t);

/*
 * Allocate an open file for @fd (owned from now on) of node @nodeid.
 * Not yet in the table: see lo_file_insert().
 */
struct lo_file *lo_file_new(int fd, uint64_t nodeid, bool is_dir);
/* Publishes @f (the table keeps the caller's reference); returns its fh. */
uint64_t lo_file_insert(struct lo_table *t, struct lo_file *f);
/* Referenced file for @fh, or NULL if unknown. */
struct lo_file *lo_file_get(struct lo_table *t, uint64_t fh);
/* Unpublish @fh; the table's reference passes to the caller. */
struct lo_file *lo_file_remove(struct lo_table *t, uint64_t fh);
void lo_file_put(struct lo_file *f);
/* Drop every open file. */
void lo_table_clear_files(struct lo_table *t);

#endif
