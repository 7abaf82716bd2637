/* SPDX-License-Identifier: GPL-2.0-or-later */
/*
 * test_inode_table: node ids and file handles are unique, never reused,
 * deduplicated by (st_dev, st_ino), validated on lookup, saturate on
 * FORGET, and keep their fd open while a user holds a reference, also
 * under concurrent lookup/forget from several threads.
 */
#include "inode_table.h"

#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#define FUSE_USE_VERSION 34
#include <fuse_lowlevel.h>

static int failures;

#define CHECK(cond)                                                     \
    do {                                                                \
        if (!(cond)) {                                                  \
            __atomic_add_fetch(&failures, 1, __ATOMIC_RELAXED);         \
            fprintf(stderr, "FAIL %s:%d: %s\n", __func__, __LINE__, #cond); \
        }                                                               \
    } while (0)

#define NFILES 200

static char dir[64];
static char names[NFILES][96];

/* Account one lookup of @path, as lo_do_lookup() does. */
static struct lo_inode *lookup(struct lo_table *t, const char *path)
{
    struct stat st;
    int fd = open(path, O_PATH | O_NOFOLLOW | O_CLOEXEC);

    if (fd < 0 || fstat(fd, &st) < 0)
        abort();
    return lo_inode_lookup_ref(t, fd, &st);
}

static bool fd_open(int fd)
{
    return fcntl(fd, F_GETFD) >= 0;
}

static void test_inodes(struct lo_table *t)
{
    static uint64_t ids[NFILES];
    struct lo_inode *a, *b, *root;
    uint64_t id;
    int fd;

    a = lookup(t, names[0]);
    b = lookup(t, names[0]);
    CHECK(a && a == b);
    id = a->nodeid;
    CHECK(id != FUSE_ROOT_ID && id != 0);
    CHECK(a->nlookup == 2);
    CHECK(lo_table_inode_count(t) == 1);
    lo_inode_put(a);
    lo_inode_put(b);

    a = lo_inode_get(t, id);
    CHECK(a != NULL && a->nodeid == id);
    lo_inode_put(a);
    CHECK(lo_inode_get(t, 0) == NULL);
    CHECK(lo_inode_get(t, id + 64) == NULL);
    CHECK(lo_inode_get(t, UINT64_MAX) == NULL);
    root = lo_inode_get(t, FUSE_ROOT_ID);
    CHECK(root && root->nodeid == FUSE_ROOT_ID);
    lo_inode_put(root);

    /* The root's own (dev, ino) resolves to the root, uncounted. */
    root = lookup(t, dir);
    CHECK(root && root->nodeid == FUSE_ROOT_ID);
    lo_inode_put(root);
    CHECK(lo_table_inode_count(t) == 1);

    /* FORGET: partial, then saturating; a held reference keeps the fd. */
    lo_inode_forget(t, id, 1);
    a = lo_inode_get(t, id);
    CHECK(a != NULL);
    fd = a ? a->fd : -1;
    lo_inode_forget(t, id, UINT64_MAX);
    CHECK(lo_inode_get(t, id) == NULL);
    CHECK(lo_table_inode_count(t) == 0);
    CHECK(fd_open(fd));
    lo_inode_put(a);
    CHECK(!fd_open(fd));
    lo_inode_forget(t, id, 1);           /* unknown now: ignored */
    lo_inode_forget(t, FUSE_ROOT_ID, 9); /* the root stays */
    lo_inode_put(lo_inode_get(t, FUSE_ROOT_ID));

    /* A forgotten inode comes back under a new id. */
    a = lookup(t, names[0]);
    CHECK(a && a->nodeid != id);
    lo_inode_put(a);

    for (int i = 0; i < NFILES; i++) {
        a = lookup(t, names[i]);
        ids[i] = a->nodeid;
        lo_inode_put(a);
        for (int j = 0; j < i; j++)
            CHECK(ids[j] != ids[i]);
        CHECK(ids[i] != FUSE_ROOT_ID && ids[i] != id);
    }
    CHECK(lo_table_inode_count(t) == NFILES);
    lo_table_clear_inodes(t);
    CHECK(lo_table_inode_count(t) == 0);
    CHECK(lo_inode_get(t, ids[0]) == NULL);
    lo_inode_put(lo_inode_get(t, FUSE_ROOT_ID));
}

static void test_files(struct lo_table *t)
{
    uint64_t fh[8];
    struct lo_file *f, *g;
    int fd;

    for (int i = 0; i < 8; i++) {
        f = lo_file_new(open("/dev/null", O_RDONLY | O_CLOEXEC), 100 + i,
                        false);
        fh[i] = lo_file_insert(t, f);
        for (int j = 0; j < i; j++)
            CHECK(fh[j] != fh[i]);
    }
    f = lo_file_get(t, fh[3]);
    CHECK(f && f->nodeid == 103 && f->fh == fh[3]);
    CHECK(lo_file_get(t, fh[3] ^ (1ull << 40)) == NULL);
    fd = f ? f->fd : -1;
    g = lo_file_remove(t, fh[3]);
    CHECK(g == f);
    CHECK(lo_file_remove(t, fh[3]) == NULL);
    CHECK(lo_file_get(t, fh[3]) == NULL);
    lo_file_put(g);
    CHECK(fd_open(fd)); /* the reader still holds it */
    lo_file_put(f);
    CHECK(!fd_open(fd));

    lo_table_clear_files(t);
    CHECK(lo_file_get(t, fh[0]) == NULL);
    CHECK(lo_file_get(t, fh[7]) == NULL);
}

struct worker {
    struct lo_table *t;
    unsigned int seed;
    uint64_t held[NFILES];
};

/* Lookups, gets and forgets of a small set of files from many threads. */
static void *worker(void *p)
{
    struct worker *w = p;

    for (int i = 0; i < 20000; i++) {
        int k = (int)(rand_r(&w->seed) % 16);
        struct lo_inode *inode;

        switch (rand_r(&w->seed) % 3) {
        case 0:
            inode = lookup(w->t, names[k]);
            w->held[k]++;
            lo_inode_put(inode);
            break;
        case 1:
            if (w->held[k]) {
                inode = lookup(w->t, names[k]); /* learn the id */
                w->held[k]++;
                lo_inode_forget(w->t, inode->nodeid, w->held[k]);
                w->held[k] = 0;
                lo_inode_put(inode);
            }
            break;
        default:
            inode = lookup(w->t, names[k]);
            CHECK(fd_open(inode->fd));
            lo_inode_forget(w->t, inode->nodeid, 1);
            lo_inode_put(inode);
            break;
        }
    }
    return NULL;
}

static void test_concurrent(struct lo_table *t)
{
    struct worker w[4];
    pthread_t thr[4];

    memset(w, 0, sizeof(w));
    for (int i = 0; i < 4; i++) {
        w[i].t = t;
        w[i].seed = (unsigned int)i * 7919u + 1;
        pthread_create(&thr[i], NULL, worker, &w[i]);
    }
    for (int i = 0; i < 4; i++)
        pthread_join(thr[i], NULL);
    /* No lost update: each inode holds exactly the lookups not forgotten. */
    for (int k = 0; k < 16; k++) {
        uint64_t total = 0;
        struct lo_inode *inode;

        for (int i = 0; i < 4; i++)
            total += w[i].held[k];
        inode = lookup(t, names[k]);
        CHECK(inode->nlookup == total + 1);
        lo_inode_put(inode);
    }
    lo_table_clear_inodes(t);
    CHECK(lo_table_inode_count(t) == 0);
}

int main(void)
{
    struct lo_table *t;
    struct stat st;
    int fd;

    snprintf(dir, sizeof(dir), "/tmp/pt-table-XXXXXX");
    if (!mkdtemp(dir))
        return 1;
    for (int i = 0; i < NFILES; i++) {
        snprintf(names[i], sizeof(names[i]), "%s/f%d", dir, i);
        fd = open(names[i], O_CREAT | O_WRONLY | O_CLOEXEC, 0644);
        if (fd < 0)
            return 1;
        close(fd);
    }

    t = lo_table_new();
    fd = open(dir, O_PATH | O_DIRECTORY | O_CLOEXEC);
    if (!t || fd < 0 || fstat(fd, &st) < 0)
        return 1;
    lo_table_set_root(t, fd, &st);

    test_inodes(t);
    test_files(t);
    test_concurrent(t);
    lo_table_free(t);

    for (int i = 0; i < NFILES; i++)
        unlink(names[i]);
    rmdir(dir);
    if (failures) {
        fprintf(stderr, "%d check(s) failed\n", failures);
        return 1;
    }
    printf("inode_table: all checks passed\n");
    return 0;
}
