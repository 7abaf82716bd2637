/* SPDX-License-Identifier: GPL-2.0-or-later */
/*
 * Sharded inode and open-file tables of the passthrough filesystem.
 * See inode_table.h for the keying scheme.
 */
#include "inode_table.h"

#include <errno.h>
#include <glib.h>
#include <stdlib.h>
#include <unistd.h>

#define FUSE_USE_VERSION 34
#include <fuse_lowlevel.h>

#define LO_SHARD_MASK ((uint64_t)LO_SHARDS - 1)

/* Aligned so that two shards' locks never share a cache line. */
struct lo_shard {
    pthread_mutex_t lock;
    GHashTable *by_id;      /* &obj->nodeid or &obj->fh -> obj */
    GHashTable *by_key;     /* inode shards: &inode->key -> inode */
    uint64_t next;          /* sequence number of the next key */
} __attribute__((aligned(64)));

struct lo_table {
    struct lo_shard inodes[LO_SHARDS];
    struct lo_shard files[LO_SHARDS];
    struct lo_inode *root;
    unsigned int file_rr;   /* atomic: spreads new handles over shards */
};

static uint64_t key_mix(const struct lo_inode_key *k)
{
    uint64_t h = (uint64_t)k->ino * 0x9E3779B97F4A7C15ull;

    h ^= ((uint64_t)k->dev + 0x632BE59BD9B4E019ull) * 0xC2B2AE3D27D4EB4Full;
    h ^= h >> 31;
    return h;
}

static guint key_hash(gconstpointer p)
{
    uint64_t h = key_mix(p);

    return (guint)(h ^ (h >> 32));
}

static gboolean key_equal(gconstpointer a, gconstpointer b)
{
    const struct lo_inode_key *ka = a, *kb = b;

    return ka->dev == kb->dev && ka->ino == kb->ino;
}

/* Top bits pick the shard so that the low bits still feed GHashTable. */
static unsigned int key_shard(const struct lo_inode_key *k)
{
    return (unsigned int)(key_mix(k) >> (64 - LO_SHARD_BITS));
}

static void shard_init(struct lo_shard *s, bool with_keys)
{
    pthread_mutex_init(&s->lock, NULL);
    s->by_id = g_hash_table_new(g_int64_hash, g_int64_equal);
    s->by_key = with_keys ? g_hash_table_new(key_hash, key_equal) : NULL;
    /* Sequence 0 is skipped: keys 0..63 include FUSE_ROOT_ID. */
    s->next = 1;
}

static void shard_destroy(struct lo_shard *s)
{
    g_hash_table_destroy(s->by_id);
    if (s->by_key)
        g_hash_table_destroy(s->by_key);
    pthread_mutex_destroy(&s->lock);
}

struct lo_table *lo_table_new(void)
{
    struct lo_table *t = calloc(1, sizeof(*t));

    if (!t)
        return NULL;
    for (unsigned int i = 0; i < LO_SHARDS; i++) {
        shard_init(&t->inodes[i], true);
        shard_init(&t->files[i], false);
    }
    return t;
}

static void inode_free(struct lo_inode *inode)
{
    while (inode->plocks) {
        struct lo_plock *pl = inode->plocks;

        inode->plocks = pl->next;
        close(pl->fd);
        free(pl);
    }
    pthread_mutex_destroy(&inode->plock_lock);
    if (inode->fd >= 0)
        close(inode->fd);
    free(inode);
}

void lo_table_free(struct lo_table *t)
{
    if (!t)
        return;
    lo_table_clear_files(t);
    lo_table_clear_inodes(t);
    for (unsigned int i = 0; i < LO_SHARDS; i++) {
        shard_destroy(&t->inodes[i]);
        shard_destroy(&t->files[i]);
    }
    if (t->root)
        inode_free(t->root);
    free(t);
}

void lo_table_set_root(struct lo_table *t, int fd, const struct stat *st)
{
    struct lo_inode *root = calloc(1, sizeof(*root));

    if (!root)
        abort();
    pthread_mutex_init(&root->plock_lock, NULL);
    root->fd = fd;
    root->nodeid = FUSE_ROOT_ID;
    root->key.dev = st->st_dev;
    root->key.ino = st->st_ino;
    root->type = st->st_mode & S_IFMT;
    root->nlookup = 1;
    root->refcount = 1;
    t->root = root;
}

/* Empties @h and returns its values (glib 2.66 has no _as_ptr_array). */
static GPtrArray *steal_values(GHashTable *h)
{
    GPtrArray *out = g_ptr_array_sized_new(g_hash_table_size(h));
    GHashTableIter it;
    gpointer value;

    g_hash_table_iter_init(&it, h);
    while (g_hash_table_iter_next(&it, NULL, &value)) {
        g_ptr_array_add(out, value);
        g_hash_table_iter_remove(&it);
    }
    return out;
}

static void inode_ref(struct lo_inode *inode)
{
    __atomic_add_fetch(&inode->refcount, 1, __ATOMIC_RELAXED);
}

void lo_inode_put(struct lo_inode *inode)
{
    if (inode && __atomic_sub_fetch(&inode->refcount, 1, __ATOMIC_ACQ_REL) == 0)
        inode_free(inode);
}

struct lo_inode *lo_inode_get(struct lo_table *t, uint64_t nodeid)
{
    struct lo_shard *s;
    struct lo_inode *inode;

    if (nodeid == FUSE_ROOT_ID) {
        inode_ref(t->root);
        return t->root;
    }
    s = &t->inodes[nodeid & LO_SHARD_MASK];
    pthread_mutex_lock(&s->lock);
    inode = g_hash_table_lookup(s->by_id, &nodeid);
    if (inode)
        inode_ref(inode);
    pthread_mutex_unlock(&s->lock);
    return inode;
}

struct lo_inode *lo_inode_lookup_ref(struct lo_table *t, int fd,
                                     const struct stat *st)
{
    struct lo_inode_key key = { .dev = st->st_dev, .ino = st->st_ino };
    unsigned int idx = key_shard(&key);
    struct lo_shard *s = &t->inodes[idx];
    struct lo_inode *inode;

    /* The root is reachable again through a bind mount of itself. */
    if (key_equal(&key, &t->root->key)) {
        close(fd);
        inode_ref(t->root);
        return t->root;
    }

    pthread_mutex_lock(&s->lock);
    inode = g_hash_table_lookup(s->by_key, &key);
    if (inode) {
        inode->nlookup++;
        inode_ref(inode);
        pthread_mutex_unlock(&s->lock);
        close(fd);
        return inode;
    }
    inode = calloc(1, sizeof(*inode));
    if (!inode) {
        pthread_mutex_unlock(&s->lock);
        close(fd);
        return NULL;
    }
    pthread_mutex_init(&inode->plock_lock, NULL);
    inode->fd = fd;
    inode->key = key;
    inode->type = st->st_mode & S_IFMT;
    inode->nlookup = 1;
    inode->refcount = 2; /* the table's and the caller's */
    /* Never reused: a stale id from the guest can only miss. */
    inode->nodeid = (s->next++ << LO_SHARD_BITS) | idx;
    g_hash_table_insert(s->by_id, &inode->nodeid, inode);
    g_hash_table_insert(s->by_key, &inode->key, inode);
    pthread_mutex_unlock(&s->lock);
    return inode;
}

void lo_inode_forget(struct lo_table *t, uint64_t nodeid, uint64_t n)
{
    struct lo_shard *s;
    struct lo_inode *inode;

    if (nodeid == FUSE_ROOT_ID)
        return;
    s = &t->inodes[nodeid & LO_SHARD_MASK];
    pthread_mutex_lock(&s->lock);
    inode = g_hash_table_lookup(s->by_id, &nodeid);
    if (!inode) {
        pthread_mutex_unlock(&s->lock);
        return;
    }
    inode->nlookup = n >= inode->nlookup ? 0 : inode->nlookup - n;
    if (inode->nlookup) {
        pthread_mutex_unlock(&s->lock);
        return;
    }
    g_hash_table_remove(s->by_id, &inode->nodeid);
    g_hash_table_remove(s->by_key, &inode->key);
    pthread_mutex_unlock(&s->lock);
    lo_inode_put(inode);
}

void lo_table_clear_inodes(struct lo_table *t)
{
    for (unsigned int i = 0; i < LO_SHARDS; i++) {
        struct lo_shard *s = &t->inodes[i];
        GPtrArray *drop;

        pthread_mutex_lock(&s->lock);
        drop = steal_values(s->by_id);
        g_hash_table_remove_all(s->by_key);
        pthread_mutex_unlock(&s->lock);
        /* Put outside the lock: the last put closes an fd. */
        for (guint j = 0; j < drop->len; j++)
            lo_inode_put(g_ptr_array_index(drop, j));
        g_ptr_array_free(drop, TRUE);
    }
}

size_t lo_table_inode_count(struct lo_table *t)
{
    size_t n = 0;

    for (unsigned int i = 0; i < LO_SHARDS; i++) {
        struct lo_shard *s = &t->inodes[i];

        pthread_mutex_lock(&s->lock);
        n += g_hash_table_size(s->by_id);
        pthread_mutex_unlock(&s->lock);
    }
    return n;
}

struct lo_file *lo_file_new(int fd, uint64_t nodeid, bool is_dir)
{
    struct lo_file *f = calloc(1, sizeof(*f));

    if (!f)
        return NULL;
    f->fd = fd;
    f->nodeid = nodeid;
    f->is_dir = is_dir;
    f->refcount = 1;
    pthread_mutex_init(&f->dir_lock, NULL);
    return f;
}

uint64_t lo_file_insert(struct lo_table *t, struct lo_file *f)
{
    unsigned int idx = __atomic_fetch_add(&t->file_rr, 1, __ATOMIC_RELAXED) &
                       (LO_SHARDS - 1);
    struct lo_shard *s = &t->files[idx];

    pthread_mutex_lock(&s->lock);
    f->fh = (s->next++ << LO_SHARD_BITS) | idx;
    g_hash_table_insert(s->by_id, &f->fh, f);
    pthread_mutex_unlock(&s->lock);
    return f->fh;
}

struct lo_file *lo_file_get(struct lo_table *t, uint64_t fh)
{
    struct lo_shard *s = &t->files[fh & LO_SHARD_MASK];
    struct lo_file *f;

    pthread_mutex_lock(&s->lock);
    f = g_hash_table_lookup(s->by_id, &fh);
    if (f)
        __atomic_add_fetch(&f->refcount, 1, __ATOMIC_RELAXED);
    pthread_mutex_unlock(&s->lock);
    return f;
}

struct lo_file *lo_file_remove(struct lo_table *t, uint64_t fh)
{
    struct lo_shard *s = &t->files[fh & LO_SHARD_MASK];
    struct lo_file *f;

    pthread_mutex_lock(&s->lock);
    f = g_hash_table_lookup(s->by_id, &fh);
    if (f)
        g_hash_table_remove(s->by_id, &f->fh);
    pthread_mutex_unlock(&s->lock);
    return f;
}

void lo_file_put(struct lo_file *f)
{
    if (!f || __atomic_sub_fetch(&f->refcount, 1, __ATOMIC_ACQ_REL) != 0)
        return;
    /* The last user is gone: nobody can be reading through this fd. */
    if (f->dp)
        closedir(f->dp);
    else if (f->fd >= 0)
        close(f->fd);
    pthread_mutex_destroy(&f->dir_lock);
    free(f);
}

void lo_table_clear_files(struct lo_table *t)
{
    for (unsigned int i = 0; i < LO_SHARDS; i++) {
        struct lo_shard *s = &t->files[i];
        GPtrArray *drop;

        pthread_mutex_lock(&s->lock);
        drop = steal_values(s->by_id);
        pthread_mutex_unlock(&s->lock);
        for (guint j = 0; j < drop->len; j++)
            lo_file_put(g_ptr_array_index(drop, j));
        g_ptr_array_free(drop, TRUE);
    }
}
