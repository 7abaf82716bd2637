/* SPDX-License-Identifier: GPL-2.0-or-later */
/*
 * test_passthrough: the passthrough ops export a host directory faithfully
 * through a real kernel FUSE mount, never let a client reach outside it,
 * and survive a hostile FUSE client (raw requests through a custom-io
 * session) without crashing or mixing up handles.
 *
 * Needs root and a usable /dev/fuse; exits 77 otherwise.
 */
#include "passthrough.h"

#include <linux/fuse.h>

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <ftw.h>
#include <grp.h>
#include <limits.h>
#include <pthread.h>
#include <sched.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/mount.h>
#include <sys/stat.h>
#include <sys/statvfs.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <sys/xattr.h>
#include <time.h>
#include <unistd.h>

static int failures;

#define CHECK(cond)                                                     \
    do {                                                                \
        if (!(cond)) {                                                  \
            failures++;                                                 \
            fprintf(stderr, "FAIL %s:%d: %s (errno %d %s)\n", __func__, \
                    __LINE__, #cond, errno, strerror(errno));           \
        }                                                               \
    } while (0)

#define MARKER "PT-MARKER-outside-the-share-7f3a91"

static char base[64];    /* mkdtemp root, 0755 */
static char share[128];   /* base/export/share: exported */
static char secret[128];  /* base/export/secret: just outside */
static char mnt[128];     /* base/mnt: cache=none mount */
static char mnt2[128];    /* base/mnt2: cache=always + writeback */
static int proc_self_fd;

/* Rotating buffers so a call can take several paths. */
static const char *pathf(const char *dir, const char *name)
{
    static __thread char bufs[8][PATH_MAX];
    static __thread unsigned int next;
    char *b = bufs[next++ % 8];

    snprintf(b, PATH_MAX, "%s/%s", dir, name);
    return b;
}
#define H(name) pathf(share, name)
#define M(name) pathf(mnt, name)
#define M2(name) pathf(mnt2, name)

static void write_host(const char *path, const void *data, size_t len)
{
    int fd = open(path, O_WRONLY | O_CREAT | O_TRUNC, 0644);

    CHECK(fd >= 0);
    if (fd < 0)
        return;
    CHECK(write(fd, data, len) == (ssize_t)len);
    close(fd);
}

/* Reads up to @cap bytes of @path; returns the length or -1. */
static ssize_t read_path(const char *path, void *buf, size_t cap)
{
    int fd = open(path, O_RDONLY);
    ssize_t n;

    if (fd < 0)
        return -1;
    n = read(fd, buf, cap);
    close(fd);
    return n;
}

/* ------------------------------------------------------------------ */
/* Mounting lo_ops with libfuse's own loop                              */

struct mount {
    struct fuse_session *se;
    struct lo_data *lo;
    pthread_t thr;
    const char *dir;
};

static void *mount_loop(void *arg)
{
    struct mount *m = arg;
    struct fuse_loop_config cfg = { .clone_fd = 0, .max_idle_threads = 16 };

    fuse_session_loop_mt(m->se, &cfg);
    return NULL;
}

static int mount_start(struct mount *m, struct lo_data *lo, const char *dir)
{
    char *argv[] = { "test_passthrough", "-o",
                     "allow_other,default_permissions,fsname=pt-test", NULL };
    struct fuse_args args = FUSE_ARGS_INIT(3, argv);

    m->lo = lo;
    m->dir = dir;
    m->se = fuse_session_new(&args, &lo_ops, sizeof(lo_ops), lo);
    fuse_opt_free_args(&args);
    if (!m->se)
        return -1;
    if (fuse_session_mount(m->se, dir) != 0) {
        fuse_session_destroy(m->se);
        m->se = NULL;
        return -1;
    }
    pthread_create(&m->thr, NULL, mount_loop, m);
    return 0;
}

/*
 * Unmounting kills the connection, the loop's reads fail with ENODEV and
 * it returns; fuse_session_destroy() then runs lo_ops.destroy (a plain
 * FUSE mount gets no DESTROY request).
 */
static void mount_stop(struct mount *m)
{
    if (!m->se)
        return;
    CHECK(umount2(m->dir, MNT_DETACH) == 0);
    pthread_join(m->thr, NULL);
    fuse_session_unmount(m->se);
    fuse_session_destroy(m->se);
    m->se = NULL;
}

static struct lo_config base_config(void)
{
    struct lo_config cfg = {
        .root = share,
        .proc_self_fd = proc_self_fd,
        .cache = LO_CACHE_NONE,
        .xattr = true,
        .posix_lock = true,
        .flock = true,
        .readdirplus = -1,
    };
    return cfg;
}

/* ------------------------------------------------------------------ */
/* Kernel mount: behaviour matches the host directory                   */

static void test_create_read_write(void)
{
    static char big[1 << 20], back[1 << 20];
    char buf[64];
    int fd;

    fd = open(M("f1"), O_CREAT | O_EXCL | O_RDWR, 0640);
    CHECK(fd >= 0);
    CHECK(write(fd, "hello world", 11) == 11);
    memset(buf, 0, sizeof(buf));
    CHECK(pread(fd, buf, sizeof(buf), 0) == 11);
    CHECK(memcmp(buf, "hello world", 11) == 0);
    CHECK(close(fd) == 0);
    memset(buf, 0, sizeof(buf));
    CHECK(read_path(H("f1"), buf, sizeof(buf)) == 11);
    CHECK(memcmp(buf, "hello world", 11) == 0);

    /* O_EXCL on an existing name fails like on the host. */
    CHECK(open(M("f1"), O_CREAT | O_EXCL | O_RDWR, 0640) < 0 && errno == EEXIST);

    /* 1 MiB at an unaligned offset, checked on the host and back. */
    for (size_t i = 0; i < sizeof(big); i++)
        big[i] = (char)(i * 7 + i / 4096);
    fd = open(M("big"), O_CREAT | O_RDWR, 0644);
    CHECK(fd >= 0);
    CHECK(pwrite(fd, big, sizeof(big), 4097) == (ssize_t)sizeof(big));
    CHECK(close(fd) == 0);
    fd = open(H("big"), O_RDONLY);
    CHECK(fd >= 0);
    CHECK(pread(fd, back, sizeof(back), 4097) == (ssize_t)sizeof(back));
    CHECK(memcmp(big, back, sizeof(big)) == 0);
    close(fd);
    memset(back, 0, sizeof(back));
    fd = open(M("big"), O_RDONLY);
    CHECK(fd >= 0);
    CHECK(pread(fd, back, sizeof(back), 4097) == (ssize_t)sizeof(back));
    CHECK(memcmp(big, back, sizeof(big)) == 0);
    /* Reading at EOF returns 0, not an error. */
    CHECK(pread(fd, back, 16, 4097 + sizeof(big)) == 0);
    close(fd);
}

static void test_stat_matches_host(void)
{
    struct stat ms, hs;

    CHECK(stat(M("f1"), &ms) == 0);
    CHECK(stat(H("f1"), &hs) == 0);
    CHECK(ms.st_ino == hs.st_ino);
    CHECK(ms.st_mode == hs.st_mode);
    CHECK((ms.st_mode & 07777) == 0640);
    CHECK(ms.st_size == hs.st_size);
    CHECK(ms.st_nlink == hs.st_nlink);
    CHECK(ms.st_uid == hs.st_uid && ms.st_gid == hs.st_gid);
    CHECK(ms.st_mtim.tv_sec == hs.st_mtim.tv_sec &&
          ms.st_mtim.tv_nsec == hs.st_mtim.tv_nsec);
    CHECK(stat(M("nope"), &ms) < 0 && errno == ENOENT);
}

static void test_setattr(void)
{
    struct timespec tv[2] = {
        { .tv_sec = 1000000000, .tv_nsec = 123456789 },
        { .tv_sec = 1200000000, .tv_nsec = 500000000 },
    };
    struct stat hs;
    time_t before;
    int fd;

    CHECK(chmod(M("f1"), 0604) == 0);
    CHECK(stat(H("f1"), &hs) == 0 && (hs.st_mode & 07777) == 0604);
    CHECK(chmod(M("f1"), 04755) == 0);
    CHECK(stat(H("f1"), &hs) == 0 && (hs.st_mode & 07777) == 04755);

    CHECK(chown(M("f1"), 1234, 5678) == 0);
    CHECK(stat(H("f1"), &hs) == 0 && hs.st_uid == 1234 && hs.st_gid == 5678);
    CHECK(chown(M("f1"), -1, 42) == 0);
    CHECK(stat(H("f1"), &hs) == 0 && hs.st_uid == 1234 && hs.st_gid == 42);
    CHECK(chown(M("f1"), 0, 0) == 0);

    CHECK(utimensat(AT_FDCWD, M("f1"), tv, 0) == 0);
    CHECK(stat(H("f1"), &hs) == 0);
    CHECK(hs.st_atim.tv_sec == tv[0].tv_sec && hs.st_atim.tv_nsec == tv[0].tv_nsec);
    CHECK(hs.st_mtim.tv_sec == tv[1].tv_sec && hs.st_mtim.tv_nsec == tv[1].tv_nsec);
    /* OMIT keeps atime, NOW moves mtime to the present. */
    before = time(NULL);
    tv[0].tv_nsec = UTIME_OMIT;
    tv[1].tv_nsec = UTIME_NOW;
    CHECK(utimensat(AT_FDCWD, M("f1"), tv, 0) == 0);
    CHECK(stat(H("f1"), &hs) == 0);
    CHECK(hs.st_atim.tv_sec == 1000000000 && hs.st_atim.tv_nsec == 123456789);
    CHECK(hs.st_mtim.tv_sec >= before);

    /* Times of a symlink itself (no fh, never followed). */
    CHECK(symlink("f1", H("f1link")) == 0);
    tv[0].tv_sec = 1100000000;
    tv[0].tv_nsec = 0;
    tv[1].tv_sec = 1100000001;
    tv[1].tv_nsec = 0;
    CHECK(utimensat(AT_FDCWD, M("f1link"), tv, AT_SYMLINK_NOFOLLOW) == 0);
    CHECK(lstat(H("f1link"), &hs) == 0 && hs.st_mtim.tv_sec == 1100000001);
    CHECK(stat(H("f1"), &hs) == 0 && hs.st_mtim.tv_sec != 1100000001);

    /* truncate() without a handle, ftruncate() through one. */
    CHECK(truncate(M("f1"), 100) == 0);
    CHECK(stat(H("f1"), &hs) == 0 && hs.st_size == 100);
    fd = open(M("f1"), O_RDWR);
    CHECK(fd >= 0);
    CHECK(ftruncate(fd, 10) == 0);
    CHECK(stat(H("f1"), &hs) == 0 && hs.st_size == 10);
    close(fd);
    CHECK(truncate(M("."), 0) < 0 && errno == EISDIR);
}

static void test_rename(void)
{
    char buf[8] = { 0 };

    write_host(H("ra"), "A", 1);
    write_host(H("rb"), "B", 1);
    CHECK(rename(M("ra"), M("rc")) == 0);
    CHECK(access(H("ra"), F_OK) < 0 && access(H("rc"), F_OK) == 0);

    CHECK(syscall(SYS_renameat2, AT_FDCWD, M("rc"), AT_FDCWD, M("rb"),
                  RENAME_NOREPLACE) < 0 && errno == EEXIST);
    CHECK(read_path(H("rb"), buf, sizeof(buf)) == 1 && buf[0] == 'B');

    CHECK(syscall(SYS_renameat2, AT_FDCWD, M("rc"), AT_FDCWD, M("rb"),
                  RENAME_EXCHANGE) == 0);
    CHECK(read_path(H("rb"), buf, sizeof(buf)) == 1 && buf[0] == 'A');
    CHECK(read_path(H("rc"), buf, sizeof(buf)) == 1 && buf[0] == 'B');
    /* And the mount sees the swap too. */
    CHECK(read_path(M("rb"), buf, sizeof(buf)) == 1 && buf[0] == 'A');

    CHECK(syscall(SYS_renameat2, AT_FDCWD, M("rc"), AT_FDCWD, M("rd"),
                  RENAME_NOREPLACE) == 0);
    CHECK(access(H("rd"), F_OK) == 0);
}

static void test_link_symlink(void)
{
    struct stat hs, ms;
    char buf[64];
    ssize_t n;

    CHECK(link(M("rd"), M("rd2")) == 0);
    CHECK(stat(H("rd"), &hs) == 0 && hs.st_nlink == 2);
    CHECK(stat(M("rd2"), &ms) == 0 && ms.st_ino == hs.st_ino && ms.st_nlink == 2);
    CHECK(link(M("rd"), M("rd2")) < 0 && errno == EEXIST);

    CHECK(symlink("target/x", M("sl")) == 0);
    n = readlink(H("sl"), buf, sizeof(buf));
    CHECK(n == 8 && memcmp(buf, "target/x", 8) == 0);
    n = readlink(M("sl"), buf, sizeof(buf));
    CHECK(n == 8 && memcmp(buf, "target/x", 8) == 0);
    CHECK(lstat(H("sl"), &hs) == 0 && S_ISLNK(hs.st_mode));
    CHECK(readlink(M("rd"), buf, sizeof(buf)) < 0 && errno == EINVAL);
}

static void test_dirs(void)
{
    struct stat hs;

    CHECK(mkdir(M("d1"), 0750) == 0);
    CHECK(stat(H("d1"), &hs) == 0 && S_ISDIR(hs.st_mode) &&
          (hs.st_mode & 07777) == 0750);
    write_host(H("d1/inner"), "x", 1);
    CHECK(rmdir(M("d1")) < 0 && errno == ENOTEMPTY);
    CHECK(unlink(M("d1/inner")) == 0);
    CHECK(access(H("d1/inner"), F_OK) < 0 && errno == ENOENT);
    CHECK(rmdir(M("d1")) == 0);
    CHECK(access(H("d1"), F_OK) < 0 && errno == ENOENT);
    CHECK(unlink(M("rd2")) == 0);
    CHECK(stat(H("rd"), &hs) == 0 && hs.st_nlink == 1);
}

/* Lists @dir (a mount path) and checks it holds exactly e0000..e0999. */
static void check_listing(const char *dir, bool stat_each)
{
    static unsigned char seen[1000];
    struct dirent *de;
    int count = 0, dots = 0;
    DIR *d;

    memset(seen, 0, sizeof(seen));
    d = opendir(dir);
    CHECK(d != NULL);
    if (!d)
        return;
    while ((de = readdir(d)) != NULL) {
        unsigned int i;
        char tail;

        if (strcmp(de->d_name, ".") == 0 || strcmp(de->d_name, "..") == 0) {
            dots++;
            continue;
        }
        count++;
        if (sscanf(de->d_name, "e%4u%c", &i, &tail) != 1 || i >= 1000) {
            CHECK(!"unexpected name");
            continue;
        }
        CHECK(!seen[i]);
        seen[i] = 1;
        CHECK(de->d_type == DT_REG);
        if (stat_each) {
            struct stat st;

            CHECK(fstatat(dirfd(d), de->d_name, &st, 0) == 0 &&
                  st.st_size == 1);
        }
    }
    closedir(d);
    CHECK(count == 1000);
    CHECK(dots == 2);
}

static void test_readdir_1000(void)
{
    CHECK(mkdir(H("many"), 0755) == 0);
    for (int i = 0; i < 1000; i++) {
        char name[32];

        snprintf(name, sizeof(name), "many/e%04d", i);
        write_host(H(name), "x", 1);
    }
    check_listing(M("many"), false);
    check_listing(M("many"), true);
}

static void test_xattr(void)
{
    char buf[256];
    ssize_t n;
    int herr;

    CHECK(setxattr(M("rd"), "user.pt", "v1", 2, 0) == 0);
    n = getxattr(H("rd"), "user.pt", buf, sizeof(buf));
    CHECK(n == 2 && memcmp(buf, "v1", 2) == 0);
    CHECK(getxattr(M("rd"), "user.pt", NULL, 0) == 2);
    CHECK(getxattr(M("rd"), "user.pt", buf, 1) < 0 && errno == ERANGE);
    CHECK(setxattr(M("rd"), "user.pt", "v2", 2, XATTR_CREATE) < 0 &&
          errno == EEXIST);
    CHECK(setxattr(M("rd"), "user.none", "v2", 2, XATTR_REPLACE) < 0 &&
          errno == ENODATA);
    n = listxattr(M("rd"), buf, sizeof(buf));
    CHECK(n > 0 && memmem(buf, (size_t)n, "user.pt", 8) != NULL);
    CHECK(listxattr(M("rd"), NULL, 0) == n);
    CHECK(removexattr(M("rd"), "user.pt") == 0);
    CHECK(getxattr(H("rd"), "user.pt", buf, sizeof(buf)) < 0 && errno == ENODATA);

    /* Directories work; a symlink answers like the host's symlink. */
    CHECK(setxattr(M("many"), "user.dir", "d", 1, 0) == 0);
    CHECK(getxattr(H("many"), "user.dir", buf, sizeof(buf)) == 1);
    errno = 0;
    CHECK(lgetxattr(H("sl"), "user.pt", buf, sizeof(buf)) < 0);
    herr = errno;
    CHECK(lgetxattr(M("sl"), "user.pt", buf, sizeof(buf)) < 0 && errno == herr);
}

static void test_fallocate_lseek(void)
{
    struct stat hs;
    off_t hdata, mdata, hhole, mhole;
    int fd, hfd;

    fd = open(M("falloc"), O_CREAT | O_RDWR, 0644);
    CHECK(fd >= 0);
    CHECK(fallocate(fd, 0, 0, 1 << 20) == 0);
    CHECK(stat(H("falloc"), &hs) == 0 && hs.st_size == (1 << 20) &&
          hs.st_blocks >= (1 << 20) / 512);
    CHECK(fallocate(fd, FALLOC_FL_PUNCH_HOLE | FALLOC_FL_KEEP_SIZE, 0,
                    1 << 20) == 0);
    CHECK(stat(H("falloc"), &hs) == 0 && hs.st_size == (1 << 20) &&
          hs.st_blocks < (1 << 20) / 512);
    close(fd);

    /* Sparse file made on the host: the mount reports the same map. */
    hfd = open(H("sparse"), O_CREAT | O_RDWR, 0644);
    CHECK(hfd >= 0);
    CHECK(pwrite(hfd, "x", 1, 0) == 1);
    CHECK(pwrite(hfd, "y", 1, 8 << 20) == 1);
    fsync(hfd);
    fd = open(M("sparse"), O_RDONLY);
    CHECK(fd >= 0);
    hhole = lseek(hfd, 0, SEEK_HOLE);
    mhole = lseek(fd, 0, SEEK_HOLE);
    CHECK(hhole > 0 && hhole < (8 << 20) && mhole == hhole);
    hdata = lseek(hfd, hhole, SEEK_DATA);
    mdata = lseek(fd, mhole, SEEK_DATA);
    CHECK(hdata > hhole && mdata == hdata);
    CHECK(lseek(fd, (8 << 20) + 10, SEEK_DATA) < 0 && errno == ENXIO);
    close(fd);
    close(hfd);
}

static void test_copy_file_range(void)
{
    static char src[65536], dst[65536];
    loff_t in_off = 0, out_off = 0;
    size_t done = 0;
    int in, out;

    for (size_t i = 0; i < sizeof(src); i++)
        src[i] = (char)(i * 13);
    write_host(H("cfr_src"), src, sizeof(src));
    in = open(M("cfr_src"), O_RDONLY);
    out = open(M("cfr_dst"), O_CREAT | O_WRONLY, 0644);
    CHECK(in >= 0 && out >= 0);
    while (done < sizeof(src)) {
        ssize_t n = copy_file_range(in, &in_off, out, &out_off,
                                    sizeof(src) - done, 0);
        CHECK(n > 0);
        if (n <= 0)
            break;
        done += (size_t)n;
    }
    close(in);
    close(out);
    CHECK(read_path(H("cfr_dst"), dst, sizeof(dst)) == (ssize_t)sizeof(dst));
    CHECK(memcmp(src, dst, sizeof(src)) == 0);
}

static void test_flock(void)
{
    int fd1, fd2, hfd;

    write_host(H("lk"), "lock", 4);
    fd1 = open(M("lk"), O_RDWR);
    fd2 = open(M("lk"), O_RDWR);
    hfd = open(H("lk"), O_RDWR);
    CHECK(fd1 >= 0 && fd2 >= 0 && hfd >= 0);
    CHECK(flock(fd1, LOCK_EX) == 0);
    /* The lock is a real host lock... */
    CHECK(flock(hfd, LOCK_EX | LOCK_NB) < 0 && errno == EWOULDBLOCK);
    /* ...and another open file on the mount conflicts with it. */
    CHECK(flock(fd2, LOCK_SH | LOCK_NB) < 0 && errno == EWOULDBLOCK);
    CHECK(flock(fd1, LOCK_UN) == 0);
    CHECK(flock(fd2, LOCK_EX | LOCK_NB) == 0);
    CHECK(flock(hfd, LOCK_EX | LOCK_NB) < 0 && errno == EWOULDBLOCK);
    /*
     * Closing the holder releases it. The client kernel sends RELEASE
     * asynchronously after close() returns, so wait for it (bounded).
     */
    close(fd2);
    for (int i = 0; i < 500 && flock(hfd, LOCK_EX | LOCK_NB) < 0; i++)
        usleep(10 * 1000);
    CHECK(flock(hfd, LOCK_EX | LOCK_NB) == 0);
    flock(hfd, LOCK_UN);
    close(fd1);
    close(hfd);
}

static int host_ofd_lock_type(const char *path)
{
    struct flock fl = { .l_type = F_WRLCK, .l_whence = SEEK_SET };
    int fd = open(path, O_RDWR);

    if (fd < 0)
        return -1;
    if (fcntl(fd, F_OFD_GETLK, &fl) < 0)
        fl.l_type = -1;
    close(fd);
    return fl.l_type;
}

static void test_posix_locks(void)
{
    struct flock fl = { .l_type = F_WRLCK, .l_whence = SEEK_SET,
                        .l_start = 0, .l_len = 100 };
    int fd1, status;
    pid_t pid;

    write_host(H("plk"), "posix", 5);
    fd1 = open(M("plk"), O_RDWR);
    CHECK(fd1 >= 0);
    CHECK(fcntl(fd1, F_SETLK, &fl) == 0);
    CHECK(host_ofd_lock_type(H("plk")) == F_WRLCK);

    pid = fork();
    if (pid == 0) {
        struct flock c = { .l_type = F_WRLCK, .l_whence = SEEK_SET,
                           .l_start = 50, .l_len = 10 };
        int fd = open(M("plk"), O_RDWR);

        if (fd < 0)
            _exit(10);
        if (fcntl(fd, F_SETLK, &c) == 0 ||
            (errno != EAGAIN && errno != EACCES))
            _exit(11);
        if (fcntl(fd, F_GETLK, &c) < 0 || c.l_type != F_WRLCK ||
            c.l_start != 0 || c.l_len != 100)
            _exit(12);
        /* Blocks until the parent unlocks. */
        c.l_type = F_WRLCK;
        c.l_start = 50;
        c.l_len = 10;
        if (fcntl(fd, F_SETLKW, &c) < 0)
            _exit(13);
        _exit(0);
    }
    CHECK(pid > 0);
    /* Let the child reach SETLKW; the outcome does not depend on it. */
    usleep(200 * 1000);
    fl.l_type = F_UNLCK;
    CHECK(fcntl(fd1, F_SETLK, &fl) == 0);
    CHECK(waitpid(pid, &status, 0) == pid);
    CHECK(WIFEXITED(status) && WEXITSTATUS(status) == 0);
    if (!WIFEXITED(status) || WEXITSTATUS(status))
        fprintf(stderr, "posix lock child status %d\n", status);

    /* close() in the locking process drops its POSIX locks. */
    fl.l_type = F_RDLCK;
    CHECK(fcntl(fd1, F_SETLK, &fl) == 0);
    CHECK(host_ofd_lock_type(H("plk")) == F_RDLCK);
    close(fd1);
    CHECK(host_ofd_lock_type(H("plk")) == F_UNLCK);
}

static void test_statfs(void)
{
    struct statvfs ms, hs;

    CHECK(statvfs(mnt, &ms) == 0);
    CHECK(statvfs(share, &hs) == 0);
    CHECK(ms.f_bsize == hs.f_bsize);
    CHECK(ms.f_blocks == hs.f_blocks);
    CHECK(ms.f_files == hs.f_files);
    CHECK(ms.f_namemax == hs.f_namemax);
}

static void test_mknod_fifo(void)
{
    struct stat hs;
    int fd;

    CHECK(mkfifo(M("fifo"), 0640) == 0);
    CHECK(lstat(H("fifo"), &hs) == 0 && S_ISFIFO(hs.st_mode) &&
          (hs.st_mode & 07777) == 0640);
    /* A FIFO on the mount is the client kernel's pipe: no host open. */
    fd = open(M("fifo"), O_RDONLY | O_NONBLOCK);
    CHECK(fd >= 0);
    if (fd >= 0)
        close(fd);
}

/* New nodes belong to the requesting user and honour its umask. */
static void test_credentials(void)
{
    struct stat hs;
    int status;
    pid_t pid;

    CHECK(mkdir(H("pub"), 0755) == 0 && chmod(H("pub"), 01777) == 0);
    CHECK(mkdir(H("rootonly"), 0755) == 0);
    pid = fork();
    if (pid == 0) {
        int fd;

        if (setgroups(0, NULL) < 0 || setgid(1000) < 0 || setuid(1000) < 0)
            _exit(20);
        /*
         * Umasks unlike the serving threads' 022, so a node created with
         * the daemon's umask instead of the caller's shows.
         */
        umask(0);
        fd = open(M("pub/u"), O_CREAT | O_WRONLY, 0666);
        if (fd < 0)
            _exit(21);
        close(fd);
        umask(027);
        if (mkdir(M("pub/ud"), 0777) < 0)
            _exit(22);
        if (symlink("x", M("pub/us")) < 0)
            _exit(23);
        if (mkfifo(M("pub/uf"), 0666) < 0)
            _exit(24);
        if (open(M("rootonly/x"), O_CREAT | O_WRONLY, 0666) >= 0 ||
            errno != EACCES)
            _exit(25);
        _exit(0);
    }
    CHECK(pid > 0);
    CHECK(waitpid(pid, &status, 0) == pid);
    CHECK(WIFEXITED(status) && WEXITSTATUS(status) == 0);
    if (!WIFEXITED(status) || WEXITSTATUS(status))
        fprintf(stderr, "credential child status %d\n", status);

    CHECK(stat(H("pub/u"), &hs) == 0 && hs.st_uid == 1000 &&
          hs.st_gid == 1000 && (hs.st_mode & 07777) == 0666);
    CHECK(stat(H("pub/ud"), &hs) == 0 && hs.st_uid == 1000 &&
          (hs.st_mode & 07777) == 0750);
    CHECK(lstat(H("pub/us"), &hs) == 0 && hs.st_uid == 1000 &&
          hs.st_gid == 1000);
    CHECK(lstat(H("pub/uf"), &hs) == 0 && hs.st_uid == 1000 &&
          (hs.st_mode & 07777) == 0640);
    CHECK(access(H("rootonly/x"), F_OK) < 0);

    /* The serving threads are root again afterwards. */
    CHECK(mkdir(M("rootdir"), 0777) == 0);
    CHECK(stat(H("rootdir"), &hs) == 0 && hs.st_uid == 0 && hs.st_gid == 0 &&
          (hs.st_mode & 07777) == 0755);
}

/* In a child running as uid/gid 1000: open @path with @flags, write @data. */
static int as_user_open_write(const char *path, int flags, const char *data)
{
    int status;
    pid_t pid = fork();

    if (pid == 0) {
        int fd;

        if (setgroups(0, NULL) < 0 || setgid(1000) < 0 || setuid(1000) < 0)
            _exit(40);
        fd = open(path, flags);
        if (fd < 0)
            _exit(41);
        if (data && write(fd, data, strlen(data)) != (ssize_t)strlen(data))
            _exit(42);
        close(fd);
        _exit(0);
    }
    if (pid < 0 || waitpid(pid, &status, 0) != pid)
        return -1;
    return WIFEXITED(status) ? WEXITSTATUS(status) : 128;
}

/*
 * A write or an O_TRUNC open by an unprivileged user clears suid and
 * group-exec sgid, as on a local filesystem, although the daemon itself
 * writes as root.
 */
static void check_write_kills_suid(const char *mount_dir)
{
    const char *path = pathf(mount_dir, "suidfile");
    struct stat hs;
    int fd;

    write_host(H("suidfile"), "data", 4);
    CHECK(chown(H("suidfile"), 0, 0) == 0 && chmod(H("suidfile"), 06777) == 0);
    CHECK(as_user_open_write(path, O_WRONLY, "x") == 0);
    CHECK(stat(H("suidfile"), &hs) == 0 && (hs.st_mode & 07777) == 0777);

    CHECK(chmod(H("suidfile"), 06777) == 0);
    CHECK(as_user_open_write(path, O_WRONLY | O_TRUNC, NULL) == 0);
    CHECK(stat(H("suidfile"), &hs) == 0 && (hs.st_mode & 07777) == 0777 &&
          hs.st_size == 0);

    /* Root keeps them (CAP_FSETID), like a local write by root. */
    CHECK(chmod(H("suidfile"), 06777) == 0);
    fd = open(path, O_WRONLY);
    CHECK(fd >= 0 && write(fd, "y", 1) == 1);
    if (fd >= 0)
        close(fd);
    CHECK(stat(H("suidfile"), &hs) == 0 && (hs.st_mode & 07777) == 06777);
}

static void test_suid_cleared(void)
{
    check_write_kills_suid(mnt);
}

/* ------------------------------------------------------------------ */
/* Escape attempts through the mount                                    */

static int walk_saw_marker;
static int walk_files;

static int walk_cb(const char *path, const struct stat *st, int type,
                   struct FTW *ftw)
{
    char buf[256];
    ssize_t n;

    (void)ftw;
    if (type != FTW_F || !S_ISREG(st->st_mode) || ++walk_files > 20000)
        return 0;
    n = read_path(path, buf, sizeof(buf) - 1);
    if (n > 0) {
        buf[n] = '\0';
        if (strstr(buf, MARKER))
            walk_saw_marker = 1;
    }
    return 0;
}

/*
 * A child chroots into the mount, so "/" is the exported directory as a
 * guest would see it, and tries every way out it can name: symlinks to
 * "/", to "..", absolute host paths, "..", and a full walk that follows
 * every symlink. The marker just outside the share must never be read.
 */
static void test_escape(void)
{
    char abs_target[PATH_MAX];
    int status;
    pid_t pid;

    CHECK(symlink("/", H("to_root")) == 0);
    CHECK(symlink("../secret", H("to_up")) == 0);
    CHECK(symlink("../../export/secret", H("to_up2")) == 0);
    CHECK(symlink(secret, H("abs_secret")) == 0);
    snprintf(abs_target, sizeof(abs_target), "%s/export", base);
    CHECK(symlink(abs_target, H("abs_export")) == 0);
    CHECK(mkdir(H("esc"), 0755) == 0);
    CHECK(symlink("../../secret", H("esc/up")) == 0);
    CHECK(symlink("../../../../../../../../..", H("esc/far")) == 0);

    pid = fork();
    if (pid == 0) {
        static const char *const tries[] = {
            "/to_up", "/to_up2", "/abs_secret", "/esc/up", "/../secret",
            "/../export/secret", "/../../secret", "/to_root/../secret",
            "/esc/far/secret", "/esc/far/export/secret", "/abs_export/secret",
            "/to_root/to_up", "/esc/../../secret",
        };
        char buf[256], sec_in_root[PATH_MAX + 16];
        struct stat r, p;

        if (chroot(mnt) < 0 || chdir("/") < 0)
            _exit(30);
        for (size_t i = 0; i < sizeof(tries) / sizeof(tries[0]); i++) {
            ssize_t n = read_path(tries[i], buf, sizeof(buf) - 1);

            if (n > 0) {
                buf[n] = '\0';
                if (strstr(buf, MARKER)) {
                    fprintf(stderr, "escape via %s\n", tries[i]);
                    _exit(31);
                }
            }
        }
        /* The host path of the marker, inside this root. */
        snprintf(sec_in_root, sizeof(sec_in_root), "/%s", secret);
        if (read_path(sec_in_root, buf, sizeof(buf)) > 0)
            _exit(32);
        /* ".." of the root is the root. */
        if (stat("/", &r) < 0 || stat("/..", &p) < 0 ||
            r.st_ino != p.st_ino || r.st_dev != p.st_dev)
            _exit(33);
        if (stat("/to_root/..", &p) < 0 || r.st_ino != p.st_ino)
            _exit(34);
        if (nftw("/", walk_cb, 16, FTW_MOUNT) < 0)
            _exit(35);
        if (walk_saw_marker)
            _exit(36);
        if (walk_files < 1000)
            _exit(37); /* the walk really went through the share */
        _exit(0);
    }
    CHECK(pid > 0);
    CHECK(waitpid(pid, &status, 0) == pid);
    CHECK(WIFEXITED(status) && WEXITSTATUS(status) == 0);
    if (!WIFEXITED(status) || WEXITSTATUS(status))
        fprintf(stderr, "escape child status %d\n", status);
}

/* ------------------------------------------------------------------ */
/* Concurrency: readers and openers race with closes and unlinks       */

struct conc_arg {
    int id;
    int errors;
};

static void *conc_reader(void *p)
{
    struct conc_arg *a = p;
    char name[32], buf[8192], want[8192];

    snprintf(name, sizeof(name), "conc%d", a->id);
    memset(want, 'a' + a->id, sizeof(want));
    for (int i = 0; i < 200; i++) {
        int fd = open(M(name), O_RDONLY);

        if (fd < 0 || pread(fd, buf, sizeof(buf), 0) != (ssize_t)sizeof(buf) ||
            memcmp(buf, want, sizeof(buf)) != 0)
            a->errors++;
        if (fd >= 0)
            close(fd);
    }
    return NULL;
}

static void *conc_churn(void *p)
{
    struct conc_arg *a = p;

    for (int i = 0; i < 200; i++) {
        int fd = open(M("churn"), O_CREAT | O_RDWR, 0644);

        if (fd < 0 || write(fd, "c", 1) != 1)
            a->errors++;
        if (fd >= 0)
            close(fd);
        if (unlink(M("churn")) < 0)
            a->errors++;
    }
    return NULL;
}

static void test_concurrency(void)
{
    struct conc_arg args[5];
    pthread_t thr[5];
    char name[32], data[8192];

    for (int i = 0; i < 4; i++) {
        snprintf(name, sizeof(name), "conc%d", i);
        memset(data, 'a' + i, sizeof(data));
        write_host(H(name), data, sizeof(data));
    }
    for (int i = 0; i < 5; i++) {
        args[i].id = i;
        args[i].errors = 0;
        pthread_create(&thr[i], NULL, i < 4 ? conc_reader : conc_churn,
                       &args[i]);
    }
    for (int i = 0; i < 5; i++) {
        pthread_join(thr[i], NULL);
        CHECK(args[i].errors == 0);
    }
}

/* ------------------------------------------------------------------ */
/* Second mount: cache=always, writeback, readdirplus, no xattr         */

static void test_writeback_mount(void)
{
    struct lo_config cfg = base_config();
    struct mount m2 = { 0 };
    struct lo_data *lo;
    char buf[64];
    int fd;

    cfg.cache = LO_CACHE_ALWAYS;
    cfg.writeback = true;
    cfg.xattr = false;
    lo = lo_data_new(&cfg);
    CHECK(lo != NULL);
    if (!lo || mount_start(&m2, lo, mnt2) != 0) {
        CHECK(!"second mount");
        lo_data_free(lo);
        return;
    }

    /* O_APPEND with writeback: the kernel positions, appends land last. */
    write_host(H("app"), "start", 5);
    fd = open(M2("app"), O_WRONLY | O_APPEND);
    CHECK(fd >= 0);
    CHECK(write(fd, "AB", 2) == 2);
    CHECK(write(fd, "CD", 2) == 2);
    CHECK(fsync(fd) == 0);
    close(fd);
    memset(buf, 0, sizeof(buf));
    CHECK(read_path(H("app"), buf, sizeof(buf)) == 9);
    CHECK(memcmp(buf, "startABCD", 9) == 0);

    /* A partial-page write into a write-only file needs the page read. */
    write_host(H("wo"), "0123456789", 10);
    fd = open(M2("wo"), O_WRONLY);
    CHECK(fd >= 0);
    CHECK(pwrite(fd, "xyz", 3, 1) == 3);
    CHECK(fsync(fd) == 0);
    close(fd);
    memset(buf, 0, sizeof(buf));
    CHECK(read_path(H("wo"), buf, sizeof(buf)) == 10);
    CHECK(memcmp(buf, "0xyz456789", 10) == 0);

    check_listing(M2("many"), true);
    check_write_kills_suid(mnt2);

    /* xattr off: the kernel is told ENOSYS and reports "not supported". */
    CHECK(getxattr(M2("rd"), "user.pt", buf, sizeof(buf)) < 0 &&
          errno == EOPNOTSUPP);

    mount_stop(&m2);
    /* A fresh INIT on the same data after destroy still serves. */
    if (mount_start(&m2, lo, mnt2) == 0) {
        memset(buf, 0, sizeof(buf));
        CHECK(read_path(M2("app"), buf, sizeof(buf)) == 9);
        CHECK(memcmp(buf, "startABCD", 9) == 0);
        check_listing(M2("many"), false);
        mount_stop(&m2);
    } else {
        CHECK(!"remount");
    }
    lo_data_free(lo);
}

/* ------------------------------------------------------------------ */
/* Raw FUSE requests from a hostile client                              */

static struct {
    char buf[1 << 17];
    size_t len;
    int count;
} reply;

static ssize_t raw_writev(int fd, struct iovec *iov, int count, void *ud)
{
    size_t off = 0;

    (void)fd;
    (void)ud;
    for (int i = 0; i < count; i++) {
        size_t n = iov[i].iov_len;

        if (off + n > sizeof(reply.buf))
            n = sizeof(reply.buf) - off;
        memcpy(reply.buf + off, iov[i].iov_base, n);
        off += n;
    }
    reply.len = off;
    reply.count++;
    return (ssize_t)off;
}

static ssize_t raw_read(int fd, void *buf, size_t len, void *ud)
{
    (void)fd;
    (void)buf;
    (void)len;
    (void)ud;
    return 0; /* requests are fed with fuse_session_process_buf() */
}

static const struct fuse_custom_io raw_io = {
    .writev = raw_writev,
    .read = raw_read,
};

static uint64_t raw_unique = 1;

/*
 * Send one request built from up to three pieces. Returns the reply's
 * error (0 or -errno), or 1 when no reply was sent (FORGET).
 */
static int raw_call3(struct fuse_session *se, uint32_t opcode, uint64_t nodeid,
                     const void *a, size_t al, const void *b, size_t bl,
                     const void *c, size_t cl)
{
    static char in[8192];
    struct fuse_in_header *h = (struct fuse_in_header *)in;
    struct fuse_buf fb = { 0 };
    size_t len = sizeof(*h) + al + bl + cl;

    if (len > sizeof(in))
        abort();
    memset(h, 0, sizeof(*h));
    h->len = (uint32_t)len;
    h->opcode = opcode;
    h->unique = raw_unique++;
    h->nodeid = nodeid;
    h->pid = (uint32_t)getpid();
    if (al)
        memcpy(in + sizeof(*h), a, al);
    if (bl)
        memcpy(in + sizeof(*h) + al, b, bl);
    if (cl)
        memcpy(in + sizeof(*h) + al + bl, c, cl);
    reply.len = 0;
    reply.count = 0;
    fb.mem = in;
    fb.size = len;
    fuse_session_process_buf(se, &fb);
    if (!reply.count)
        return 1;
    return ((struct fuse_out_header *)reply.buf)->error;
}

static int raw_call(struct fuse_session *se, uint32_t opcode, uint64_t nodeid,
                    const void *a, size_t al)
{
    return raw_call3(se, opcode, nodeid, a, al, NULL, 0, NULL, 0);
}

static void *raw_payload(void)
{
    return reply.buf + sizeof(struct fuse_out_header);
}

static int raw_lookup(struct fuse_session *se, uint64_t parent,
                      const char *name, uint64_t *nodeid)
{
    int err = raw_call(se, FUSE_LOOKUP, parent, name, strlen(name) + 1);

    *nodeid = err ? 0 : ((struct fuse_entry_out *)raw_payload())->nodeid;
    return err;
}

static int raw_getattr(struct fuse_session *se, uint64_t nodeid)
{
    struct fuse_getattr_in arg = { 0 };

    return raw_call(se, FUSE_GETATTR, nodeid, &arg, sizeof(arg));
}

static int raw_open(struct fuse_session *se, uint32_t opcode, uint64_t nodeid,
                    uint32_t flags, uint64_t *fh)
{
    struct fuse_open_in arg = { .flags = flags };
    int err = raw_call(se, opcode, nodeid, &arg, sizeof(arg));

    *fh = err ? 0 : ((struct fuse_open_out *)raw_payload())->fh;
    return err;
}

static int raw_read_req(struct fuse_session *se, uint64_t nodeid, uint64_t fh,
                        uint32_t size)
{
    struct fuse_read_in arg = { .fh = fh, .size = size };

    return raw_call(se, FUSE_READ, nodeid, &arg, sizeof(arg));
}

static void raw_forget(struct fuse_session *se, uint64_t nodeid, uint64_t n)
{
    struct fuse_forget_in arg = { .nlookup = n };

    CHECK(raw_call(se, FUSE_FORGET, nodeid, &arg, sizeof(arg)) == 1);
}

static int raw_create(struct fuse_session *se, uint64_t parent,
                      const char *name, uint32_t flags)
{
    struct fuse_create_in arg = { .flags = flags, .mode = S_IFREG | 0644 };

    return raw_call3(se, FUSE_CREATE, parent, &arg, sizeof(arg), name,
                     strlen(name) + 1, NULL, 0);
}

static int raw_mkdir(struct fuse_session *se, uint64_t parent,
                     const char *name)
{
    struct fuse_mkdir_in arg = { .mode = 0755 };

    return raw_call3(se, FUSE_MKDIR, parent, &arg, sizeof(arg), name,
                     strlen(name) + 1, NULL, 0);
}

static int raw_init(struct fuse_session *se)
{
    struct fuse_init_in arg = {
        .major = FUSE_KERNEL_VERSION,
        .minor = 31,
        .max_readahead = 65536,
        .flags = FUSE_ASYNC_READ | FUSE_POSIX_LOCKS | FUSE_FLOCK_LOCKS |
                 FUSE_DO_READDIRPLUS | FUSE_WRITEBACK_CACHE,
    };

    return raw_call(se, FUSE_INIT, 0, &arg, sizeof(arg));
}

static struct fuse_session *raw_session(struct lo_data *lo)
{
    char *argv[] = { "raw", NULL };
    struct fuse_args args = FUSE_ARGS_INIT(1, argv);
    struct fuse_session *se;
    int fd;

    se = fuse_session_new(&args, &lo_ops, sizeof(lo_ops), lo);
    fuse_opt_free_args(&args);
    if (!se)
        return NULL;
    fd = open("/dev/null", O_RDWR | O_CLOEXEC); /* closed by libfuse */
    if (fd < 0 || fuse_session_custom_io(se, &raw_io, fd) != 0) {
        fuse_session_destroy(se);
        return NULL;
    }
    if (raw_init(se) != 0) {
        fuse_session_destroy(se);
        return NULL;
    }
    return se;
}

/* Walk a READDIRPLUS reply: ".." must carry no node id, others one. */
static void check_readdirplus_reply(int *entries)
{
    size_t off = sizeof(struct fuse_out_header);

    *entries = 0;
    while (off + FUSE_NAME_OFFSET_DIRENTPLUS <= reply.len) {
        struct fuse_direntplus *dp = (void *)(reply.buf + off);
        const char *name = dp->dirent.name;
        size_t nl = dp->dirent.namelen;

        if ((nl == 1 && name[0] == '.') ||
            (nl == 2 && name[0] == '.' && name[1] == '.'))
            CHECK(dp->entry_out.nodeid == 0);
        else
            CHECK(dp->entry_out.nodeid > FUSE_ROOT_ID);
        (*entries)++;
        off += FUSE_DIRENTPLUS_SIZE(dp);
    }
}

static void test_raw_protocol(void)
{
    struct lo_config cfg = base_config();
    uint64_t fnode, fnode2, dnode, lnode, fifonode, fh, dfh, id, id2;
    struct fuse_session *se;
    struct lo_data *lo;
    int n;

    /* Locks and xattrs off: those requests must answer ENOSYS. */
    cfg.cache = LO_CACHE_AUTO;
    cfg.xattr = false;
    cfg.posix_lock = false;
    cfg.flock = false;
    lo = lo_data_new(&cfg);
    CHECK(lo != NULL);
    if (!lo)
        return;
    se = raw_session(lo);
    CHECK(se != NULL);
    if (!se) {
        lo_data_free(lo);
        return;
    }

    write_host(H("rawf"), "raw data", 8);
    CHECK(mkfifo(H("rawfifo"), 0666) == 0);

    /* Names that climb or are not one component. */
    CHECK(raw_lookup(se, FUSE_ROOT_ID, "..", &id) == 0 && id == FUSE_ROOT_ID);
    CHECK(raw_lookup(se, FUSE_ROOT_ID, ".", &id) == 0 && id == FUSE_ROOT_ID);
    CHECK(raw_lookup(se, FUSE_ROOT_ID, "../secret", &id) == -EINVAL);
    CHECK(raw_lookup(se, FUSE_ROOT_ID, "", &id) == -EINVAL);
    CHECK(raw_lookup(se, FUSE_ROOT_ID, "esc/up", &id) == -EINVAL);
    CHECK(raw_lookup(se, FUSE_ROOT_ID, "esc", &dnode) == 0);
    CHECK(raw_lookup(se, dnode, "..", &id) == -EINVAL);
    CHECK(raw_mkdir(se, FUSE_ROOT_ID, "..") == -EINVAL);
    CHECK(raw_mkdir(se, FUSE_ROOT_ID, "a/b") == -EINVAL);
    CHECK(raw_create(se, FUSE_ROOT_ID, "../created", O_RDWR) == -EINVAL);
    CHECK(access(pathf(base, "export/created"), F_OK) < 0);
    {
        struct fuse_rename_in rn = { .newdir = FUSE_ROOT_ID };

        CHECK(raw_call3(se, FUSE_RENAME, FUSE_ROOT_ID, &rn, sizeof(rn),
                        "rawf", 5, "../rawf", 8) == -EINVAL);
        CHECK(raw_call3(se, FUSE_SYMLINK, FUSE_ROOT_ID, "x/y", 4, "/", 2,
                        NULL, 0) == -EINVAL);
    }
    CHECK(access(H("rawf"), F_OK) == 0);

    /* A symlink node is never followed, opened or used as a directory. */
    CHECK(raw_lookup(se, FUSE_ROOT_ID, "to_up", &lnode) == 0);
    CHECK(raw_lookup(se, lnode, "secret", &id) == -ENOTDIR);
    CHECK(raw_open(se, FUSE_OPEN, lnode, O_RDONLY, &fh) == -ELOOP);
    CHECK(raw_open(se, FUSE_OPENDIR, lnode, O_RDONLY, &fh) == -ENOTDIR);
    CHECK(raw_lookup(se, FUSE_ROOT_ID, "to_root", &id) == 0);
    CHECK(raw_lookup(se, id, "etc", &id2) == -ENOTDIR);

    /* FIFOs are refused at once instead of blocking a thread. */
    CHECK(raw_lookup(se, FUSE_ROOT_ID, "rawfifo", &fifonode) == 0);
    CHECK(raw_open(se, FUSE_OPEN, fifonode, O_RDONLY, &fh) == -EACCES);
    CHECK(raw_create(se, FUSE_ROOT_ID, "rawfifo", O_WRONLY) == -EACCES);
    CHECK(raw_create(se, FUSE_ROOT_ID, "to_up", O_WRONLY) == -ELOOP);
    {
        struct fuse_setattr_in sa = { .valid = FATTR_SIZE, .size = 0 };

        CHECK(raw_call(se, FUSE_SETATTR, fifonode, &sa, sizeof(sa)) == -EINVAL);
    }
    CHECK(raw_open(se, FUSE_OPEN, FUSE_ROOT_ID, O_RDONLY, &fh) == -EISDIR);

    /* Unknown node ids and handles. */
    CHECK(raw_getattr(se, 0) == -EBADF);
    CHECK(raw_getattr(se, 0xdeadbeefULL) == -EBADF);
    CHECK(raw_getattr(se, UINT64_MAX) == -EBADF);
    CHECK(raw_lookup(se, 0x123456789ULL, "rawf", &id) == -EBADF);
    CHECK(raw_lookup(se, FUSE_ROOT_ID, "rawf", &fnode) == 0);
    CHECK(raw_open(se, FUSE_OPEN, fnode, O_RDONLY, &fh) == 0);
    CHECK(raw_read_req(se, fnode, fh, 4096) == 0 &&
          reply.len == sizeof(struct fuse_out_header) + 8 &&
          memcmp(raw_payload(), "raw data", 8) == 0);
    CHECK(raw_read_req(se, fnode, fh + 64, 4096) == -EBADF);
    CHECK(raw_read_req(se, fnode, ~fh, 4096) == -EBADF);
    CHECK(raw_read_req(se, fnode, fh, 0x7fffffff) == -EINVAL);
    /* A handle is only good with the node it was opened through. */
    CHECK(raw_read_req(se, fifonode, fh, 16) == -EBADF);
    CHECK(raw_open(se, FUSE_OPENDIR, FUSE_ROOT_ID, O_RDONLY, &dfh) == 0);
    CHECK(raw_read_req(se, FUSE_ROOT_ID, dfh, 16) == -EBADF);
    {
        struct fuse_read_in rd = { .fh = fh, .size = 4096 };

        CHECK(raw_call(se, FUSE_READDIR, fnode, &rd, sizeof(rd)) == -EBADF);
        rd.fh = dfh;
        CHECK(raw_call(se, FUSE_READDIRPLUS, FUSE_ROOT_ID, &rd,
                       sizeof(rd)) == 0);
        check_readdirplus_reply(&n);
        CHECK(n > 2);
        struct fuse_release_in rl = { .fh = dfh };

        CHECK(raw_call(se, FUSE_RELEASEDIR, FUSE_ROOT_ID, &rl,
                       sizeof(rl)) == 0);
        CHECK(raw_call(se, FUSE_RELEASEDIR, FUSE_ROOT_ID, &rl,
                       sizeof(rl)) == -EBADF);
        rd.fh = dfh;
        CHECK(raw_call(se, FUSE_READDIR, FUSE_ROOT_ID, &rd, sizeof(rd)) ==
              -EBADF);
    }

    /*
     * READDIRPLUS with room for one entry per reply: every entry that did
     * not fit had its lookup undone, so each node is held exactly once.
     */
    {
        struct fuse_read_in rd = { .size = 170 };
        uint64_t seen[8];
        int nseen = 0;

        CHECK(raw_open(se, FUSE_OPENDIR, dnode, O_RDONLY, &rd.fh) == 0);
        for (int i = 0; i < 10; i++) {
            struct fuse_direntplus *dp = (void *)raw_payload();

            CHECK(raw_call(se, FUSE_READDIRPLUS, dnode, &rd, sizeof(rd)) == 0);
            if (reply.len <= sizeof(struct fuse_out_header))
                break;
            CHECK(reply.len == sizeof(struct fuse_out_header) +
                                   FUSE_DIRENTPLUS_SIZE(dp));
            if (dp->entry_out.nodeid && nseen < 8)
                seen[nseen++] = dp->entry_out.nodeid;
            rd.offset = dp->dirent.off;
        }
        CHECK(nseen == 2); /* "up" and "far" */
        for (int i = 0; i < nseen; i++) {
            raw_forget(se, seen[i], 1);
            CHECK(raw_getattr(se, seen[i]) == -EBADF);
        }
        {
            struct fuse_release_in rl = { .fh = rd.fh };

            CHECK(raw_call(se, FUSE_RELEASEDIR, dnode, &rl, sizeof(rl)) == 0);
        }
    }

    /* cache=auto caches misses: a negative entry, not ENOENT. */
    CHECK(raw_call(se, FUSE_LOOKUP, FUSE_ROOT_ID, "missing", 8) == 0);
    CHECK(((struct fuse_entry_out *)raw_payload())->nodeid == 0 &&
          ((struct fuse_entry_out *)raw_payload())->entry_valid == 1);

    /* Disabled features answer ENOSYS so the client stops asking. */
    {
        struct fuse_getxattr_in gx = { .size = 64 };
        struct fuse_lk_in lk = { .fh = fh, .owner = 1,
                                 .lk = { .start = 0, .end = 10,
                                         .type = F_RDLCK } };

        CHECK(raw_call3(se, FUSE_GETXATTR, fnode, &gx, sizeof(gx),
                        "user.x", 7, NULL, 0) == -ENOSYS);
        CHECK(raw_call(se, FUSE_LISTXATTR, fnode, &gx, sizeof(gx)) == -ENOSYS);
        CHECK(raw_call(se, FUSE_SETLK, fnode, &lk, sizeof(lk)) == -ENOSYS);
        CHECK(raw_call(se, FUSE_GETLK, fnode, &lk, sizeof(lk)) == -ENOSYS);
        lk.lk_flags = FUSE_LK_FLOCK;
        CHECK(raw_call(se, FUSE_SETLK, fnode, &lk, sizeof(lk)) == -ENOSYS);
    }

    /* Lookup counting: repeated lookups share one id; forget saturates. */
    CHECK(raw_lookup(se, FUSE_ROOT_ID, "rawf", &id) == 0 && id == fnode);
    CHECK(raw_lookup(se, FUSE_ROOT_ID, "rawf", &id) == 0 && id == fnode);
    raw_forget(se, fnode, 2);
    CHECK(raw_getattr(se, fnode) == 0);
    raw_forget(se, fnode, UINT64_MAX);
    CHECK(raw_getattr(se, fnode) == -EBADF);
    raw_forget(se, fnode, 1);
    raw_forget(se, 0xfeedULL, 5);
    raw_forget(se, FUSE_ROOT_ID, UINT64_MAX);
    CHECK(raw_getattr(se, FUSE_ROOT_ID) == 0);
    /* The open handle outlives its node's table entry. */
    CHECK(raw_read_req(se, fnode, fh, 4096) == 0);
    CHECK(raw_lookup(se, FUSE_ROOT_ID, "rawf", &fnode2) == 0);
    CHECK(fnode2 != fnode && fnode2 > FUSE_ROOT_ID);
    {
        struct {
            struct fuse_batch_forget_in in;
            struct fuse_forget_one one[3];
        } bf = {
            .in = { .count = 3 },
            .one = { { 0x999999ULL, 1 }, { fnode2, 1ULL << 62 },
                     { FUSE_ROOT_ID, 7 } },
        };

        CHECK(raw_call(se, FUSE_BATCH_FORGET, 0, &bf, sizeof(bf)) == 1);
    }
    CHECK(raw_getattr(se, fnode2) == -EBADF);
    CHECK(raw_getattr(se, FUSE_ROOT_ID) == 0);

    /* DESTROY drops every node and handle; a new session starts clean. */
    CHECK(raw_lookup(se, FUSE_ROOT_ID, "rawf", &fnode) == 0);
    CHECK(raw_call(se, FUSE_DESTROY, 0, NULL, 0) == 0);
    CHECK(raw_getattr(se, fnode) == -EBADF);
    CHECK(raw_read_req(se, fnode, fh, 16) == -EBADF);
    CHECK(raw_getattr(se, FUSE_ROOT_ID) == 0);
    fuse_session_destroy(se);

    se = raw_session(lo);
    CHECK(se != NULL);
    if (se) {
        CHECK(raw_getattr(se, fnode) == -EBADF);
        CHECK(raw_lookup(se, FUSE_ROOT_ID, "rawf", &id) == 0 && id != fnode);
        CHECK(raw_open(se, FUSE_OPEN, id, O_RDONLY, &fh) == 0);
        CHECK(raw_read_req(se, id, fh, 64) == 0);
        fuse_session_destroy(se); /* runs lo destroy: no DESTROY was sent */
    }
    lo_data_free(lo);
}

/* ------------------------------------------------------------------ */

static int setup_dirs(void)
{
    char p[PATH_MAX];

    snprintf(base, sizeof(base), "/tmp/pt-test-XXXXXX");
    if (!mkdtemp(base))
        return -1;
    /* Unprivileged test users must be able to walk to the mounts. */
    chmod(base, 0755);
    snprintf(p, sizeof(p), "%s/export", base);
    snprintf(share, sizeof(share), "%s/export/share", base);
    snprintf(secret, sizeof(secret), "%s/export/secret", base);
    snprintf(mnt, sizeof(mnt), "%s/mnt", base);
    snprintf(mnt2, sizeof(mnt2), "%s/mnt2", base);
    if (mkdir(p, 0755) < 0 || mkdir(share, 0755) < 0 || mkdir(mnt, 0755) < 0 ||
        mkdir(mnt2, 0755) < 0)
        return -1;
    write_host(secret, MARKER, strlen(MARKER));
    return 0;
}

static int rm_cb(const char *path, const struct stat *st, int type,
                 struct FTW *ftw)
{
    (void)st;
    (void)ftw;
    if (type == FTW_DP)
        return rmdir(path);
    return unlink(path);
}

int main(void)
{
    struct lo_config cfg;
    struct mount m = { 0 };
    struct lo_data *lo;
    int fd;

    if (geteuid() != 0) {
        fprintf(stderr, "SKIP: needs root\n");
        return 77;
    }
    fd = open("/dev/fuse", O_RDWR | O_CLOEXEC);
    if (fd < 0) {
        fprintf(stderr, "SKIP: /dev/fuse: %s\n", strerror(errno));
        return 77;
    }
    close(fd);
    umask(022);
    proc_self_fd = open("/proc/self/fd", O_PATH | O_DIRECTORY | O_CLOEXEC);
    if (proc_self_fd < 0 || setup_dirs() < 0) {
        perror("setup");
        return 1;
    }

    cfg = base_config();
    lo = lo_data_new(&cfg);
    if (!lo) {
        perror("lo_data_new");
        return 1;
    }
    if (mount_start(&m, lo, mnt) != 0) {
        fprintf(stderr, "SKIP: cannot mount FUSE on %s\n", mnt);
        lo_data_free(lo);
        nftw(base, rm_cb, 16, FTW_DEPTH | FTW_PHYS);
        return 77;
    }

    test_create_read_write();
    test_stat_matches_host();
    test_setattr();
    test_rename();
    test_link_symlink();
    test_dirs();
    test_readdir_1000();
    test_xattr();
    test_fallocate_lseek();
    test_copy_file_range();
    test_flock();
    test_posix_locks();
    test_statfs();
    test_mknod_fifo();
    test_credentials();
    test_suid_cleared();
    test_escape();
    test_concurrency();
    test_writeback_mount();
    mount_stop(&m);
    lo_data_free(lo);

    /* Runs on this thread: it may change this thread's cwd (xattr path). */
    test_raw_protocol();

    nftw(base, rm_cb, 16, FTW_DEPTH | FTW_PHYS);
    if (failures) {
        fprintf(stderr, "%d check(s) failed\n", failures);
        return 1;
    }
    printf("passthrough: all checks passed\n");
    return 0;
}
