/* SPDX-License-Identifier: GPL-2.0-or-later */
/*
 * vufront: vhost-user frontend + virtio driver side of virtio-fs, in one
 * process, without a VM.  See vufront.h.
 */
#ifndef _GNU_SOURCE
#define _GNU_SOURCE
#endif
#include "vufront.h"

#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <pthread.h>
#include <sched.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/eventfd.h>
#include <sys/mman.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>
#include <linux/virtio_ring.h>

extern char **environ;

#define DEFAULT_MEM_SIZE   (256ull << 20)
#define DEFAULT_QUEUE_SIZE 128u
#define DEFAULT_TIMEOUT_MS 5000
/* Regions sit at multiples of 4 GiB so a daemon that ignores
 * guest_phys_addr (or mixes up GPA and uaddr) fails loudly. */
#define REGION_GPA_STRIDE  (4ull << 30)

#define ALLOC_MIN_SHIFT 6
#define ALLOC_MAX_SHIFT 30
#define ALLOC_NCLASS (ALLOC_MAX_SHIFT - ALLOC_MIN_SHIFT + 1)

/* Full memory barrier between our ring stores and loads of the device's
 * fields (the device is another process: only the CPU ordering matters).
 * TSan rejects standalone fences; a locked RMW is a full barrier on x86. */
static inline void full_barrier(void)
{
#ifdef __SANITIZE_THREAD__
    static int barrier_word;
    __atomic_fetch_add(&barrier_word, 0, __ATOMIC_SEQ_CST);
#else
    __atomic_thread_fence(__ATOMIC_SEQ_CST);
#endif
}

uint64_t vuf_now_ns(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000000000ull + (uint64_t)ts.tv_nsec;
}

static int remaining_ms(uint64_t deadline_ns)
{
    uint64_t now = vuf_now_ns();
    if (now >= deadline_ns) {
        return 0;
    }
    return (int)((deadline_ns - now + 999999) / 1000000);
}

/* ------------------------------------------------------------------ */
/* daemon processes                                                    */
/* ------------------------------------------------------------------ */

struct vuf_daemon {
    pid_t pid;
    bool reaped;
    int wstatus;
    int fd;               /* connected socket (until taken) */
    char *cmdline;
    char *sock_path;      /* SOCKET_PATH mode: removed when the daemon is gone */
};

static char *join_cmdline(const char *const *env, const char *const *argv,
                          const char *extra)
{
    size_t len = 1;
    for (unsigned i = 0; env && env[i]; i++) {
        len += strlen(env[i]) + 1;
    }
    for (unsigned i = 0; argv[i]; i++) {
        len += strlen(argv[i]) + 1;
    }
    if (extra) {
        len += strlen(extra) + 1;
    }
    char *s = malloc(len);
    if (!s) {
        return NULL;
    }
    s[0] = 0;
    for (unsigned i = 0; env && env[i]; i++) {
        strcat(s, env[i]);
        strcat(s, " ");
    }
    for (unsigned i = 0; argv[i]; i++) {
        strcat(s, argv[i]);
        if (argv[i + 1] || extra) {
            strcat(s, " ");
        }
    }
    if (extra) {
        strcat(s, extra);
    }
    return s;
}

/* environ with the "NAME=VALUE" entries of extra added or replaced. */
static char **build_env(const char *const *extra)
{
    size_t n = 0, m = 0;
    while (environ[n]) {
        n++;
    }
    while (extra && extra[m]) {
        m++;
    }
    char **e = calloc(n + m + 1, sizeof(*e));
    if (!e) {
        return NULL;
    }
    size_t k = 0;
    for (size_t i = 0; i < n; i++) {
        bool overridden = false;
        for (size_t j = 0; j < m; j++) {
            const char *eq = strchr(extra[j], '=');
            size_t nl = eq ? (size_t)(eq - extra[j]) : strlen(extra[j]);
            if (!strncmp(environ[i], extra[j], nl) && environ[i][nl] == '=') {
                overridden = true;
            }
        }
        if (!overridden) {
            e[k++] = environ[i];
        }
    }
    for (size_t j = 0; j < m; j++) {
        e[k++] = (char *)extra[j];
    }
    e[k] = NULL;
    return e;
}

int vuf_connect_path(const char *path, int timeout_ms)
{
    struct sockaddr_un sa = { .sun_family = AF_UNIX };
    if (strlen(path) >= sizeof(sa.sun_path)) {
        return -ENAMETOOLONG;
    }
    strcpy(sa.sun_path, path);
    uint64_t deadline = vuf_now_ns() + (uint64_t)timeout_ms * 1000000ull;
    for (;;) {
        int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
        if (fd < 0) {
            return -errno;
        }
        if (connect(fd, (struct sockaddr *)&sa, sizeof(sa)) == 0) {
            return fd;
        }
        int err = errno;
        close(fd);
        if (err != ENOENT && err != ECONNREFUSED && err != EAGAIN) {
            return -err;
        }
        if (remaining_ms(deadline) == 0) {
            return -ETIMEDOUT;
        }
        usleep(5000);
    }
}

static const char *find_socket_path_arg(const char *const *argv)
{
    for (unsigned i = 1; argv[i]; i++) {
        if (!strncmp(argv[i], "--socket-path=", 14)) {
            return argv[i] + 14;
        }
        if (!strcmp(argv[i], "--socket-path") && argv[i + 1]) {
            return argv[i + 1];
        }
    }
    return NULL;
}

int vuf_daemon_spawn(const struct vuf_spawn_opts *o, vuf_daemon **out)
{
    int timeout = o->timeout_ms > 0 ? o->timeout_ms : 10000;
    const char *path = NULL;
    int child_fd = -1, parent_fd = -1, listen_fd = -1;
    struct sockaddr_un lsa;
    socklen_t lsa_len = sizeof(lsa);
    char fdarg[32] = "";
    int ret;

    if (!o->argv || !o->argv[0]) {
        return -EINVAL;
    }
    vuf_daemon *d = calloc(1, sizeof(*d));
    if (!d) {
        return -ENOMEM;
    }
    d->fd = -1;

    switch (o->mode) {
    case VUF_SPAWN_SOCKET_PATH:
        path = o->socket_path ? o->socket_path : find_socket_path_arg(o->argv);
        if (!path) {
            ret = -EINVAL;
            goto err;
        }
        /* A stale socket file would let connect() race the daemon's bind. */
        unlink(path);
        d->sock_path = strdup(path);
        break;
    case VUF_SPAWN_FD_CONNECTED: {
        int sv[2];
        if (socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv) < 0) {
            ret = -errno;
            goto err;
        }
        parent_fd = sv[0];
        child_fd = sv[1];
        break;
    }
    case VUF_SPAWN_FD_LISTEN: {
        listen_fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
        if (listen_fd < 0) {
            ret = -errno;
            goto err;
        }
        /* Autobind: an abstract name picked by the kernel, no file to clean. */
        struct sockaddr_un sa = { .sun_family = AF_UNIX };
        if (bind(listen_fd, (struct sockaddr *)&sa, sizeof(sa_family_t)) < 0 ||
            listen(listen_fd, 1) < 0 ||
            getsockname(listen_fd, (struct sockaddr *)&lsa, &lsa_len) < 0) {
            ret = -errno;
            goto err;
        }
        child_fd = listen_fd;
        break;
    }
    default:
        ret = -EINVAL;
        goto err;
    }
    if (child_fd >= 0) {
        /* The child sees it as fd 3 after the dup2 below. */
        snprintf(fdarg, sizeof(fdarg), "--fd=3");
    }

    size_t argc = 0;
    while (o->argv[argc]) {
        argc++;
    }
    char **argv = calloc(argc + 2, sizeof(*argv));
    char **envp = build_env(o->env);
    d->cmdline = join_cmdline(o->env, o->argv, fdarg[0] ? fdarg : NULL);
    if (!argv || !envp || !d->cmdline) {
        free(argv);
        free(envp);
        ret = -ENOMEM;
        goto err;
    }
    for (size_t i = 0; i < argc; i++) {
        argv[i] = (char *)o->argv[i];
    }
    if (fdarg[0]) {
        argv[argc++] = fdarg;
    }
    argv[argc] = NULL;

    int logfd = -1;
    if (o->log_path) {
        logfd = open(o->log_path, O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0644);
        if (logfd < 0) {
            ret = -errno;
            free(argv);
            free(envp);
            goto err;
        }
    }
    pid_t parent = getpid();
    pid_t pid = fork();
    if (pid < 0) {
        ret = -errno;
        free(argv);
        free(envp);
        if (logfd >= 0) {
            close(logfd);
        }
        goto err;
    }
    if (pid == 0) {
        /* A daemon must not outlive a crashed test. */
        prctl(PR_SET_PDEATHSIG, SIGKILL);
        if (getppid() != parent) {
            _exit(127);
        }
        int devnull = open("/dev/null", O_RDONLY);
        if (devnull >= 0) {
            dup2(devnull, 0);
        }
        if (logfd >= 0) {
            dup2(logfd, 1);
            dup2(logfd, 2);
        }
        if (child_fd >= 0) {
            if (child_fd == 3) {
                fcntl(3, F_SETFD, 0);
            } else {
                dup2(child_fd, 3);
            }
        }
        /* Keep other daemons' socket ends out of this one, or a frontend's
         * close would never look like a disconnect. */
        close_range(child_fd >= 0 ? 4 : 3, ~0u, 0);
        if (o->cpu_mask) {
            cpu_set_t set;
            CPU_ZERO(&set);
            for (int c = 0; c < 64; c++) {
                if (o->cpu_mask & (1ull << c)) {
                    CPU_SET(c, &set);
                }
            }
            sched_setaffinity(0, sizeof(set), &set);
        }
        sigset_t none;
        sigemptyset(&none);
        sigprocmask(SIG_SETMASK, &none, NULL);
        execve(argv[0], argv, envp);
        fprintf(stderr, "vufront: exec %s: %s\n", argv[0], strerror(errno));
        _exit(127);
    }
    free(argv);
    free(envp);
    if (logfd >= 0) {
        close(logfd);
    }
    d->pid = pid;

    switch (o->mode) {
    case VUF_SPAWN_SOCKET_PATH: {
        uint64_t deadline = vuf_now_ns() + (uint64_t)timeout * 1000000ull;
        for (;;) {
            int fd = vuf_connect_path(path, 20);
            if (fd >= 0) {
                d->fd = fd;
                break;
            }
            if (fd != -ETIMEDOUT) {
                ret = fd;
                goto err_kill;
            }
            if (vuf_daemon_wait(d, 0, NULL) == 1) {
                ret = -ECHILD;
                goto err_kill;
            }
            if (remaining_ms(deadline) == 0) {
                ret = -ETIMEDOUT;
                goto err_kill;
            }
        }
        break;
    }
    case VUF_SPAWN_FD_CONNECTED:
        close(child_fd);
        d->fd = parent_fd;
        break;
    case VUF_SPAWN_FD_LISTEN: {
        int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
        if (fd < 0 || connect(fd, (struct sockaddr *)&lsa, lsa_len) < 0) {
            ret = -errno;
            if (fd >= 0) {
                close(fd);
            }
            goto err_kill;
        }
        close(listen_fd);
        d->fd = fd;
        break;
    }
    }
    *out = d;
    return 0;

err_kill:
    vuf_daemon_free(d);
    if (o->mode == VUF_SPAWN_FD_LISTEN) {
        close(listen_fd);
    } else if (o->mode == VUF_SPAWN_FD_CONNECTED) {
        close(parent_fd);
        close(child_fd);
    }
    return ret;
err:
    if (parent_fd >= 0) {
        close(parent_fd);
    }
    if (child_fd >= 0) {
        close(child_fd);
    }
    free(d->sock_path);
    free(d->cmdline);
    free(d);
    return ret;
}

int vuf_daemon_take_fd(vuf_daemon *d)
{
    int fd = d->fd;
    d->fd = -1;
    return fd;
}

pid_t vuf_daemon_pid(const vuf_daemon *d)
{
    return d->pid;
}

pid_t vuf_daemon_serving_pid(const vuf_daemon *d)
{
    pid_t pid = d->pid;

    for (int depth = 0; pid > 0 && depth < 4; depth++) {
        char path[64];
        FILE *f;
        int child, n;

        snprintf(path, sizeof(path), "/proc/%d/task/%d/children", (int)pid,
                 (int)pid);
        f = fopen(path, "r");
        if (!f)
            break;
        n = fscanf(f, "%d", &child);
        fclose(f);
        if (n != 1 || child <= 0)
            break;
        pid = child;
    }
    return pid;
}

const char *vuf_daemon_cmdline(const vuf_daemon *d)
{
    return d->cmdline;
}

int vuf_daemon_wait(vuf_daemon *d, int timeout_ms, int *wstatus)
{
    uint64_t deadline = vuf_now_ns() + (uint64_t)(timeout_ms > 0 ? timeout_ms : 0) * 1000000ull;
    while (!d->reaped) {
        pid_t r = waitpid(d->pid, &d->wstatus, WNOHANG);
        if (r == d->pid) {
            d->reaped = true;
            break;
        }
        if (r < 0 && errno != EINTR) {
            return -errno;
        }
        if (remaining_ms(deadline) == 0) {
            return 0;
        }
        usleep(2000);
    }
    if (wstatus) {
        *wstatus = d->wstatus;
    }
    return 1;
}

void vuf_daemon_free(vuf_daemon *d)
{
    if (!d) {
        return;
    }
    if (d->fd >= 0) {
        close(d->fd);
    }
    if (d->pid > 0 && !d->reaped) {
        if (vuf_daemon_wait(d, 0, NULL) == 0) {
            kill(d->pid, SIGTERM);
            if (vuf_daemon_wait(d, 2000, NULL) == 0) {
                kill(d->pid, SIGKILL);
                vuf_daemon_wait(d, 5000, NULL);
            }
        }
    }
    if (d->sock_path) {
        unlink(d->sock_path);
        free(d->sock_path);
    }
    free(d->cmdline);
    free(d);
}

/* ------------------------------------------------------------------ */
/* device, guest memory                                                */
/* ------------------------------------------------------------------ */

struct vuf_region {
    uint64_t gpa;
    uint64_t size;
    uint64_t mmap_offset;   /* offset in the memfd */
    uint8_t *host;
    uint64_t bump;          /* allocator: next free offset in the region */
};

struct vuf_freelist {
    uint64_t *v;
    size_t n, cap;
};

struct vuf_head {
    void *token;
    uint16_t ndesc;       /* table slots owned (chained in shadow_next) */
    bool busy;
    uint64_t ind_gpa;     /* indirect table we allocated, to free */
    uint32_t ind_len;
};

struct vuf_vq {
    vuf_dev *d;
    unsigned idx;
    unsigned num;
    bool started;
    bool event_idx;
    uint64_t desc_gpa, avail_gpa, used_gpa;
    struct vring_desc *desc;
    struct vring_avail *avail;
    struct vring_used *used;
    int kick_fd, call_fd;
    uint16_t avail_idx;     /* next avail slot (shadow of avail->idx) */
    uint16_t kicked_idx;    /* avail_idx at the last notification check */
    uint16_t last_used;
    uint16_t base;          /* SET_VRING_BASE value: last GET_VRING_BASE answer */
    uint16_t free_head;
    unsigned nfree;
    unsigned inflight;
    uint16_t *shadow_next;  /* free list and chain links, out of reach of the device */
    struct vuf_head *heads;
    struct vuf_vq_stats st;
};

struct vuf_dev {
    int sock;
    struct vuf_opts o;
    int memfd;
    uint8_t *mem;
    size_t mem_size;
    unsigned nregions;
    struct vuf_region regions[VUF_MAX_REGIONS];
    pthread_mutex_t alloc_lock;
    struct vuf_freelist freel[ALLOC_NCLASS];
    unsigned next_region;
    uint64_t offered, acked;
    uint64_t poffered, packed;
    bool have_pfeatures;
    bool reply_ack;
    unsigned backend_max_queues;
    unsigned nvq;
    vuf_vq *vqs;
};

static unsigned size_class(size_t len)
{
    unsigned s = ALLOC_MIN_SHIFT;
    while (s <= ALLOC_MAX_SHIFT && ((size_t)1 << s) < len) {
        s++;
    }
    return s;
}

uint64_t vuf_mem_alloc(vuf_dev *d, size_t len)
{
    if (len == 0) {
        len = 1;
    }
    unsigned s = size_class(len);
    if (s > ALLOC_MAX_SHIFT) {
        return 0;
    }
    struct vuf_freelist *fl = &d->freel[s - ALLOC_MIN_SHIFT];
    uint64_t csize = 1ull << s;
    uint64_t align = csize < 4096 ? csize : 4096;
    uint64_t gpa = 0;

    pthread_mutex_lock(&d->alloc_lock);
    if (fl->n) {
        gpa = fl->v[--fl->n];
    } else {
        for (unsigned k = 0; k < d->nregions; k++) {
            unsigned r = (d->next_region + k) % d->nregions;
            struct vuf_region *R = &d->regions[r];
            uint64_t off = (R->bump + align - 1) & ~(align - 1);
            if (off + csize <= R->size) {
                R->bump = off + csize;
                gpa = R->gpa + off;
                d->next_region = (r + 1) % d->nregions;
                break;
            }
        }
    }
    pthread_mutex_unlock(&d->alloc_lock);
    return gpa;
}

void vuf_mem_free(vuf_dev *d, uint64_t gpa, size_t len)
{
    if (!gpa) {
        return;
    }
    unsigned s = size_class(len ? len : 1);
    if (s > ALLOC_MAX_SHIFT) {
        return;
    }
    struct vuf_freelist *fl = &d->freel[s - ALLOC_MIN_SHIFT];
    pthread_mutex_lock(&d->alloc_lock);
    if (fl->n == fl->cap) {
        size_t nc = fl->cap ? fl->cap * 2 : 64;
        uint64_t *nv = realloc(fl->v, nc * sizeof(*nv));
        if (!nv) {
            pthread_mutex_unlock(&d->alloc_lock);
            return; /* leak rather than crash */
        }
        fl->v = nv;
        fl->cap = nc;
    }
    fl->v[fl->n++] = gpa;
    pthread_mutex_unlock(&d->alloc_lock);
}

void *vuf_mem_ptr(vuf_dev *d, uint64_t gpa, size_t len)
{
    for (unsigned i = 0; i < d->nregions; i++) {
        struct vuf_region *R = &d->regions[i];
        if (gpa >= R->gpa && gpa - R->gpa <= R->size && len <= R->size - (gpa - R->gpa)) {
            return R->host + (gpa - R->gpa);
        }
    }
    return NULL;
}

uint64_t vuf_mem_gpa(vuf_dev *d, const void *p)
{
    const uint8_t *b = p;
    for (unsigned i = 0; i < d->nregions; i++) {
        struct vuf_region *R = &d->regions[i];
        if (b >= R->host && b < R->host + R->size) {
            return R->gpa + (uint64_t)(b - R->host);
        }
    }
    return 0;
}

int vuf_mem_region(const vuf_dev *d, unsigned i, uint64_t *gpa, uint64_t *size, void **host)
{
    if (i >= d->nregions) {
        return -EINVAL;
    }
    if (gpa) {
        *gpa = d->regions[i].gpa;
    }
    if (size) {
        *size = d->regions[i].size;
    }
    if (host) {
        *host = d->regions[i].host;
    }
    return 0;
}

unsigned vuf_mem_nregions(const vuf_dev *d)
{
    return d->nregions;
}

static int vq_init(vuf_dev *d, vuf_vq *q, unsigned idx)
{
    unsigned num = d->o.queue_size;
    q->d = d;
    q->idx = idx;
    q->num = num;
    q->kick_fd = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
    q->call_fd = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
    if (q->kick_fd < 0 || q->call_fd < 0) {
        return -errno;
    }
    /* Layout per virtio 1.x: no legacy contiguity needed, just alignment;
     * the used ring gets its own pages as a guest driver would do. */
    size_t dsz = 16u * num, asz = 6 + 2u * num, usz = 6 + 8u * num;
    q->desc_gpa = vuf_mem_alloc(d, dsz);
    q->avail_gpa = vuf_mem_alloc(d, asz);
    q->used_gpa = vuf_mem_alloc(d, usz < 4096 ? 4096 : usz);
    if (!q->desc_gpa || !q->avail_gpa || !q->used_gpa) {
        return -ENOMEM;
    }
    q->desc = vuf_mem_ptr(d, q->desc_gpa, dsz);
    q->avail = vuf_mem_ptr(d, q->avail_gpa, asz);
    q->used = vuf_mem_ptr(d, q->used_gpa, usz);
    memset(q->desc, 0, dsz);
    memset(q->avail, 0, asz);
    memset(q->used, 0, usz);
    q->shadow_next = calloc(num, sizeof(*q->shadow_next));
    q->heads = calloc(num, sizeof(*q->heads));
    if (!q->shadow_next || !q->heads) {
        return -ENOMEM;
    }
    for (unsigned i = 0; i < num; i++) {
        q->shadow_next[i] = (uint16_t)((i + 1) % num);
    }
    q->free_head = 0;
    q->nfree = num;
    return 0;
}

static void vq_destroy(vuf_vq *q)
{
    if (q->kick_fd >= 0) {
        close(q->kick_fd);
    }
    if (q->call_fd >= 0) {
        close(q->call_fd);
    }
    free(q->shadow_next);
    free(q->heads);
}

int vuf_dev_new(int sock_fd, const struct vuf_opts *o, vuf_dev **out)
{
    int ret;
    vuf_dev *d = calloc(1, sizeof(*d));
    if (!d) {
        close(sock_fd);
        return -ENOMEM;
    }
    d->sock = sock_fd;
    d->memfd = -1;
    if (o) {
        d->o = *o;
    }
    if (!d->o.mem_size) {
        d->o.mem_size = DEFAULT_MEM_SIZE;
    }
    if (!d->o.mem_regions) {
        d->o.mem_regions = 1;
    }
    if (!d->o.num_request_queues) {
        d->o.num_request_queues = 1;
    }
    if (!d->o.queue_size) {
        d->o.queue_size = DEFAULT_QUEUE_SIZE;
    }
    if (!d->o.timeout_ms) {
        d->o.timeout_ms = DEFAULT_TIMEOUT_MS;
    }
    unsigned qs = d->o.queue_size;
    if (d->o.mem_regions > VUF_MAX_REGIONS || (qs & (qs - 1)) || qs > 32768 ||
        d->o.num_request_queues + 1 > VUF_MAX_QUEUES) {
        ret = -EINVAL;
        goto err;
    }
    pthread_mutex_init(&d->alloc_lock, NULL);

    size_t rsize = d->o.mem_size / d->o.mem_regions;
    rsize &= ~(size_t)((2u << 20) - 1);  /* 2 MiB granules, like hugepage-friendly RAM */
    if (rsize == 0 || rsize > REGION_GPA_STRIDE) {
        ret = -EINVAL;
        goto err;
    }
    d->nregions = d->o.mem_regions;
    d->mem_size = rsize * d->nregions;
    d->memfd = memfd_create("vufront-guest-ram", MFD_CLOEXEC);
    if (d->memfd < 0 || ftruncate(d->memfd, (off_t)d->mem_size) < 0) {
        ret = -errno;
        goto err;
    }
    d->mem = mmap(NULL, d->mem_size, PROT_READ | PROT_WRITE, MAP_SHARED, d->memfd, 0);
    if (d->mem == MAP_FAILED) {
        d->mem = NULL;
        ret = -errno;
        goto err;
    }
    for (unsigned i = 0; i < d->nregions; i++) {
        struct vuf_region *R = &d->regions[i];
        R->gpa = (uint64_t)i * REGION_GPA_STRIDE;
        R->size = rsize;
        R->mmap_offset = (uint64_t)i * rsize;
        R->host = d->mem + R->mmap_offset;
        R->bump = 0;
    }
    /* GPA 0 stays unused so 0 can mean "allocation failed". */
    d->regions[0].bump = 4096;

    d->nvq = 1 + d->o.num_request_queues;
    d->vqs = calloc(d->nvq, sizeof(*d->vqs));
    if (!d->vqs) {
        ret = -ENOMEM;
        goto err;
    }
    for (unsigned i = 0; i < d->nvq; i++) {
        d->vqs[i].kick_fd = d->vqs[i].call_fd = -1;
    }
    for (unsigned i = 0; i < d->nvq; i++) {
        ret = vq_init(d, &d->vqs[i], i);
        if (ret < 0) {
            goto err;
        }
    }
    *out = d;
    return 0;
err:
    vuf_dev_free(d);
    return ret;
}

void vuf_dev_free(vuf_dev *d)
{
    if (!d) {
        return;
    }
    if (d->sock >= 0) {
        close(d->sock);
    }
    for (unsigned i = 0; d->vqs && i < d->nvq; i++) {
        vq_destroy(&d->vqs[i]);
    }
    free(d->vqs);
    if (d->mem) {
        munmap(d->mem, d->mem_size);
    }
    if (d->memfd >= 0) {
        close(d->memfd);
    }
    for (unsigned i = 0; i < ALLOC_NCLASS; i++) {
        free(d->freel[i].v);
    }
    pthread_mutex_destroy(&d->alloc_lock);
    free(d);
}

uint64_t vuf_dev_features(const vuf_dev *d) { return d->acked; }
uint64_t vuf_dev_offered_features(const vuf_dev *d) { return d->offered; }
uint64_t vuf_dev_protocol_features(const vuf_dev *d) { return d->packed; }
uint64_t vuf_dev_offered_protocol_features(const vuf_dev *d) { return d->poffered; }
unsigned vuf_dev_backend_max_queues(const vuf_dev *d) { return d->backend_max_queues; }
unsigned vuf_dev_num_queues(const vuf_dev *d) { return d->nvq; }
int vuf_dev_sock(const vuf_dev *d) { return d->sock; }
int vuf_dev_timeout(const vuf_dev *d) { return d->o.timeout_ms; }

vuf_vq *vuf_dev_vq(vuf_dev *d, unsigned idx)
{
    return idx < d->nvq ? &d->vqs[idx] : NULL;
}

/* ------------------------------------------------------------------ */
/* vhost-user messages                                                 */
/* ------------------------------------------------------------------ */

int vuf_send_bytes(vuf_dev *d, const void *buf, size_t len, const int *fds, unsigned nfds)
{
    struct iovec iov = { .iov_base = (void *)buf, .iov_len = len };
    union {
        char buf[CMSG_SPACE(VUF_MAX_FDS * sizeof(int))];
        struct cmsghdr align;
    } u;
    struct msghdr mh = { .msg_iov = &iov, .msg_iovlen = 1 };
    if (nfds > VUF_MAX_FDS) {
        return -EINVAL;
    }
    if (nfds) {
        memset(&u, 0, sizeof(u));
        mh.msg_control = u.buf;
        mh.msg_controllen = CMSG_SPACE(nfds * sizeof(int));
        struct cmsghdr *c = CMSG_FIRSTHDR(&mh);
        c->cmsg_level = SOL_SOCKET;
        c->cmsg_type = SCM_RIGHTS;
        c->cmsg_len = CMSG_LEN(nfds * sizeof(int));
        memcpy(CMSG_DATA(c), fds, nfds * sizeof(int));
    }
    size_t done = 0;
    while (done < len || (len == 0 && done == 0)) {
        ssize_t r = sendmsg(d->sock, &mh, MSG_NOSIGNAL);
        if (r < 0) {
            if (errno == EINTR) {
                continue;
            }
            return -errno;
        }
        if (len == 0) {
            break;
        }
        done += (size_t)r;
        iov.iov_base = (char *)buf + done;
        iov.iov_len = len - done;
        mh.msg_control = NULL;   /* fds go with the first chunk only */
        mh.msg_controllen = 0;
    }
    return 0;
}

int vuf_msg_send(vuf_dev *d, uint32_t request, uint32_t flags,
                 const void *payload, uint32_t size, const int *fds, unsigned nfds)
{
    uint8_t buf[VHOST_USER_HDR_SIZE + VUF_MSG_MAX_PAYLOAD];
    uint32_t hdr[3] = { request, flags, size };
    if (size > VUF_MSG_MAX_PAYLOAD) {
        return -EINVAL;
    }
    memcpy(buf, hdr, sizeof(hdr));
    if (size) {
        memcpy(buf + VHOST_USER_HDR_SIZE, payload, size);
    }
    return vuf_send_bytes(d, buf, VHOST_USER_HDR_SIZE + size, fds, nfds);
}

static int wait_readable(int fd, uint64_t deadline)
{
    for (;;) {
        struct pollfd p = { .fd = fd, .events = POLLIN };
        int r = poll(&p, 1, remaining_ms(deadline));
        if (r < 0) {
            if (errno == EINTR) {
                continue;
            }
            return -errno;
        }
        if (r == 0) {
            return -ETIMEDOUT;
        }
        return 0;
    }
}

static void close_fds(int *fds, unsigned n)
{
    for (unsigned i = 0; i < n; i++) {
        if (fds[i] >= 0) {
            close(fds[i]);
        }
    }
}

int vuf_msg_recv(vuf_dev *d, struct vuf_msg *m, int timeout_ms)
{
    uint64_t deadline = vuf_now_ns() + (uint64_t)timeout_ms * 1000000ull;
    uint32_t hdr[3];
    union {
        char buf[CMSG_SPACE(VUF_MAX_FDS * sizeof(int))];
        struct cmsghdr align;
    } u;
    size_t got = 0;
    int ret;

    m->nfds = 0;
    while (got < sizeof(hdr)) {
        ret = wait_readable(d->sock, deadline);
        if (ret < 0) {
            goto err;
        }
        struct iovec iov = { .iov_base = (char *)hdr + got, .iov_len = sizeof(hdr) - got };
        struct msghdr mh = { .msg_iov = &iov, .msg_iovlen = 1,
                             .msg_control = u.buf, .msg_controllen = sizeof(u.buf) };
        ssize_t r = recvmsg(d->sock, &mh, MSG_CMSG_CLOEXEC);
        if (r < 0) {
            if (errno == EINTR || errno == EAGAIN) {
                continue;
            }
            ret = -errno;
            goto err;
        }
        if (r == 0) {
            ret = -ECONNRESET;
            goto err;
        }
        for (struct cmsghdr *c = CMSG_FIRSTHDR(&mh); c; c = CMSG_NXTHDR(&mh, c)) {
            if (c->cmsg_level == SOL_SOCKET && c->cmsg_type == SCM_RIGHTS) {
                unsigned n = (unsigned)((c->cmsg_len - CMSG_LEN(0)) / sizeof(int));
                int *p = (int *)CMSG_DATA(c);
                for (unsigned i = 0; i < n; i++) {
                    if (m->nfds < VUF_MAX_FDS) {
                        m->fds[m->nfds++] = p[i];
                    } else {
                        close(p[i]);
                    }
                }
            }
        }
        got += (size_t)r;
    }
    m->request = hdr[0];
    m->flags = hdr[1];
    m->size = hdr[2];
    if (m->size > VUF_MSG_MAX_PAYLOAD) {
        ret = -EPROTO;
        goto err;
    }
    got = 0;
    while (got < m->size) {
        ret = wait_readable(d->sock, deadline);
        if (ret < 0) {
            goto err;
        }
        ssize_t r = read(d->sock, m->payload + got, m->size - got);
        if (r < 0) {
            if (errno == EINTR || errno == EAGAIN) {
                continue;
            }
            ret = -errno;
            goto err;
        }
        if (r == 0) {
            ret = -ECONNRESET;
            goto err;
        }
        got += (size_t)r;
    }
    return 0;
err:
    close_fds(m->fds, m->nfds);
    m->nfds = 0;
    return ret;
}

static int recv_reply(vuf_dev *d, uint32_t request, struct vuf_msg *m)
{
    int ret = vuf_msg_recv(d, m, d->o.timeout_ms);
    if (ret < 0) {
        return ret;
    }
    close_fds(m->fds, m->nfds);
    m->nfds = 0;
    if (m->request != request || !(m->flags & VHOST_USER_REPLY_MASK)) {
        fprintf(stderr, "vufront: reply to %u expected, got request %u flags 0x%x\n",
                request, m->request, m->flags);
        return -EPROTO;
    }
    return 0;
}

int vuf_msg_get_u64(vuf_dev *d, uint32_t request, const void *payload,
                    uint32_t size, uint64_t *val)
{
    struct vuf_msg m;
    int ret = vuf_msg_send(d, request, VHOST_USER_VERSION, payload, size, NULL, 0);
    if (ret < 0) {
        return ret;
    }
    ret = recv_reply(d, request, &m);
    if (ret < 0) {
        return ret;
    }
    if (m.size != 8) {
        return -EPROTO;
    }
    memcpy(val, m.payload, 8);
    return 0;
}

int vuf_msg_set(vuf_dev *d, uint32_t request, const void *payload,
                uint32_t size, const int *fds, unsigned nfds)
{
    uint32_t flags = VHOST_USER_VERSION;
    if (d->reply_ack) {
        flags |= VHOST_USER_NEED_REPLY_MASK;
    }
    int ret = vuf_msg_send(d, request, flags, payload, size, fds, nfds);
    if (ret < 0 || !d->reply_ack) {
        return ret;
    }
    struct vuf_msg m;
    ret = recv_reply(d, request, &m);
    if (ret < 0) {
        return ret;
    }
    uint64_t ack = 0;
    if (m.size != 8) {
        return -EPROTO;
    }
    memcpy(&ack, m.payload, 8);
    if (ack) {
        fprintf(stderr, "vufront: request %u nacked (%llu)\n", request,
                (unsigned long long)ack);
        return -EIO;
    }
    return 0;
}

int vuf_dev_alive(vuf_dev *d)
{
    struct pollfd p = { .fd = d->sock, .events = POLLRDHUP };
    if (poll(&p, 1, 0) > 0 && (p.revents & (POLLHUP | POLLRDHUP | POLLERR))) {
        return 0;
    }
    return 1;
}

static int set_u64(vuf_dev *d, uint32_t req, uint64_t v)
{
    return vuf_msg_set(d, req, &v, sizeof(v), NULL, 0);
}

static int set_state(vuf_dev *d, uint32_t req, unsigned index, unsigned num)
{
    uint32_t st[2] = { index, num };
    return vuf_msg_set(d, req, st, sizeof(st), NULL, 0);
}

int vuf_dev_negotiate(vuf_dev *d)
{
    int ret;
    ret = vuf_msg_get_u64(d, VHOST_USER_GET_FEATURES, NULL, 0, &d->offered);
    if (ret < 0) {
        return ret;
    }
    if (d->offered & (1ull << VUF_F_PROTOCOL_FEATURES)) {
        d->have_pfeatures = true;
        ret = vuf_msg_get_u64(d, VHOST_USER_GET_PROTOCOL_FEATURES, NULL, 0, &d->poffered);
        if (ret < 0) {
            return ret;
        }
        uint64_t want = 1ull << VHOST_USER_PROTOCOL_F_MQ;
        if (!d->o.no_reply_ack) {
            want |= 1ull << VHOST_USER_PROTOCOL_F_REPLY_ACK;
        }
        if (!d->o.no_mem_slots) {
            want |= 1ull << VHOST_USER_PROTOCOL_F_CONFIGURE_MEM_SLOTS;
        }
        d->packed = want & d->poffered;
        /* REPLY_ACK is not in force until this message has been handled. */
        ret = vuf_msg_send(d, VHOST_USER_SET_PROTOCOL_FEATURES, VHOST_USER_VERSION,
                           &d->packed, 8, NULL, 0);
        if (ret < 0) {
            return ret;
        }
        d->reply_ack = d->packed & (1ull << VHOST_USER_PROTOCOL_F_REPLY_ACK);
        if (d->packed & (1ull << VHOST_USER_PROTOCOL_F_MQ)) {
            uint64_t n;
            ret = vuf_msg_get_u64(d, VHOST_USER_GET_QUEUE_NUM, NULL, 0, &n);
            if (ret < 0) {
                return ret;
            }
            d->backend_max_queues = (unsigned)n;
            if (n < d->nvq) {
                fprintf(stderr, "vufront: backend supports %llu queues, %u wanted\n",
                        (unsigned long long)n, d->nvq);
                return -EOPNOTSUPP;
            }
        }
        if (d->packed & (1ull << VHOST_USER_PROTOCOL_F_CONFIGURE_MEM_SLOTS)) {
            uint64_t n;
            ret = vuf_msg_get_u64(d, VHOST_USER_GET_MAX_MEM_SLOTS, NULL, 0, &n);
            if (ret < 0) {
                return ret;
            }
            if (n < d->nregions) {
                return -EOPNOTSUPP;
            }
        }
    }
    ret = vuf_msg_set(d, VHOST_USER_SET_OWNER, NULL, 0, NULL, 0);
    if (ret < 0) {
        return ret;
    }
    uint64_t want = (1ull << VUF_F_VERSION_1) | (1ull << VUF_F_PROTOCOL_FEATURES);
    if (d->o.event_idx) {
        want |= 1ull << VUF_F_EVENT_IDX;
    }
    if (d->o.indirect_desc) {
        want |= 1ull << VUF_F_INDIRECT_DESC;
    }
    d->acked = want & d->offered;
    if (!(d->acked & (1ull << VUF_F_VERSION_1))) {
        fprintf(stderr, "vufront: backend does not offer VIRTIO_F_VERSION_1\n");
        return -EOPNOTSUPP;
    }
    ret = set_u64(d, VHOST_USER_SET_FEATURES, d->acked);
    if (ret < 0) {
        return ret;
    }
    for (unsigned i = 0; i < d->nvq; i++) {
        d->vqs[i].event_idx = d->acked & (1ull << VUF_F_EVENT_IDX);
    }
    return 0;
}

struct region_wire {
    uint64_t guest_phys_addr;
    uint64_t memory_size;
    uint64_t userspace_addr;
    uint64_t mmap_offset;
};

static void region_to_wire(const struct vuf_region *R, struct region_wire *w)
{
    w->guest_phys_addr = R->gpa;
    w->memory_size = R->size;
    /* QEMU announces its own virtual address; vring addresses use it. */
    w->userspace_addr = (uint64_t)(uintptr_t)R->host;
    w->mmap_offset = R->mmap_offset;
}

int vuf_dev_set_mem_table(vuf_dev *d)
{
    if (d->packed & (1ull << VHOST_USER_PROTOCOL_F_CONFIGURE_MEM_SLOTS)) {
        /* What QEMU does when the backend configures slots one by one. */
        for (unsigned i = 0; i < d->nregions; i++) {
            struct {
                uint64_t padding;
                struct region_wire r;
            } p = { 0 };
            region_to_wire(&d->regions[i], &p.r);
            int ret = vuf_msg_set(d, VHOST_USER_ADD_MEM_REG, &p, sizeof(p), &d->memfd, 1);
            if (ret < 0) {
                return ret;
            }
        }
        return 0;
    }
    struct {
        uint32_t nregions;
        uint32_t padding;
        struct region_wire r[VUF_MAX_REGIONS];
    } p = { .nregions = d->nregions };
    int fds[VUF_MAX_REGIONS];
    for (unsigned i = 0; i < d->nregions; i++) {
        region_to_wire(&d->regions[i], &p.r[i]);
        fds[i] = d->memfd;
    }
    return vuf_msg_set(d, VHOST_USER_SET_MEM_TABLE, &p,
                       (uint32_t)(8 + d->nregions * sizeof(struct region_wire)),
                       fds, d->nregions);
}

static int setup_queue(vuf_dev *d, unsigned idx)
{
    vuf_vq *q = &d->vqs[idx];
    int ret;
    ret = set_state(d, VHOST_USER_SET_VRING_NUM, idx, q->num);
    if (ret < 0) {
        return ret;
    }
    /* The device resumes where GET_VRING_BASE said it stopped (0 at first). */
    ret = set_state(d, VHOST_USER_SET_VRING_BASE, idx, q->base);
    if (ret < 0) {
        return ret;
    }
    struct {
        uint32_t index, flags;
        uint64_t desc, used, avail, log;
    } a = {
        .index = idx,
        .desc = (uint64_t)(uintptr_t)q->desc,
        .used = (uint64_t)(uintptr_t)q->used,
        .avail = (uint64_t)(uintptr_t)q->avail,
    };
    ret = vuf_msg_set(d, VHOST_USER_SET_VRING_ADDR, &a, sizeof(a), NULL, 0);
    if (ret < 0) {
        return ret;
    }
    uint64_t v = idx;
    ret = vuf_msg_set(d, VHOST_USER_SET_VRING_KICK, &v, 8, &q->kick_fd, 1);
    if (ret < 0) {
        return ret;
    }
    ret = vuf_msg_set(d, VHOST_USER_SET_VRING_CALL, &v, 8, &q->call_fd, 1);
    if (ret < 0) {
        return ret;
    }
    q->started = true;
    return 0;
}

static int enable_queue(vuf_dev *d, unsigned idx, bool on)
{
    if (!d->have_pfeatures) {
        return 0;   /* without F_PROTOCOL_FEATURES rings start enabled */
    }
    return set_state(d, VHOST_USER_SET_VRING_ENABLE, idx, on);
}

int vuf_dev_start_queue(vuf_dev *d, unsigned idx)
{
    if (idx >= d->nvq) {
        return -EINVAL;
    }
    int ret = setup_queue(d, idx);
    return ret < 0 ? ret : enable_queue(d, idx, true);
}

int vuf_dev_start(vuf_dev *d)
{
    int ret = vuf_dev_negotiate(d);
    if (ret < 0) {
        return ret;
    }
    ret = vuf_dev_set_mem_table(d);
    if (ret < 0) {
        return ret;
    }
    for (unsigned i = 0; i < d->nvq; i++) {
        ret = setup_queue(d, i);
        if (ret < 0) {
            return ret;
        }
    }
    for (unsigned i = 0; i < d->nvq; i++) {
        ret = enable_queue(d, i, true);
        if (ret < 0) {
            return ret;
        }
    }
    return 0;
}

int vuf_dev_stop_queue(vuf_dev *d, unsigned idx, uint32_t *base)
{
    if (idx >= d->nvq) {
        return -EINVAL;
    }
    int ret = enable_queue(d, idx, false);
    if (ret < 0) {
        return ret;
    }
    uint32_t st[2] = { idx, 0 };
    ret = vuf_msg_send(d, VHOST_USER_GET_VRING_BASE, VHOST_USER_VERSION, st, 8, NULL, 0);
    if (ret < 0) {
        return ret;
    }
    struct vuf_msg m;
    ret = recv_reply(d, VHOST_USER_GET_VRING_BASE, &m);
    if (ret < 0) {
        return ret;
    }
    if (m.size != 8) {
        return -EPROTO;
    }
    uint32_t b;
    memcpy(&b, m.payload + 4, 4);
    d->vqs[idx].started = false;
    d->vqs[idx].base = (uint16_t)b;
    if (base) {
        *base = b;
    }
    return 0;
}

int vuf_dev_stop(vuf_dev *d)
{
    int ret = 0;
    for (unsigned i = 0; i < d->nvq; i++) {
        if (d->vqs[i].started) {
            int r = vuf_dev_stop_queue(d, i, NULL);
            if (r < 0 && !ret) {
                ret = r;
            }
        }
    }
    return ret;
}

/* ------------------------------------------------------------------ */
/* split virtqueue                                                     */
/* ------------------------------------------------------------------ */

/* EVENT_IDX words live just past each ring (virtio 1.x §2.7.7, §2.7.10). */
static inline uint16_t *used_event_word(vuf_vq *q)
{
    return &q->avail->ring[q->num];
}

static inline uint16_t *avail_event_word(vuf_vq *q)
{
    return (uint16_t *)((uint8_t *)q->used + 4 + 8u * q->num);
}

static int take_slots(vuf_vq *q, unsigned n, uint16_t *slots)
{
    if (n == 0 || n > q->nfree) {
        return -ENOSPC;
    }
    uint16_t s = q->free_head;
    for (unsigned i = 0; i < n; i++) {
        slots[i] = s;
        s = q->shadow_next[s];
    }
    q->free_head = s;
    q->nfree -= n;
    /* shadow_next already links slots[i] -> slots[i+1] (free-list order). */
    return 0;
}

static void publish(vuf_vq *q, uint16_t head)
{
    q->avail->ring[q->avail_idx % q->num] = head;
    q->avail_idx++;
    __atomic_store_n(&q->avail->idx, q->avail_idx, __ATOMIC_RELEASE);
    q->st.added++;
}

int vuf_vq_add(vuf_vq *q, const struct vuf_seg *rd, unsigned nrd,
               const struct vuf_seg *wr, unsigned nwr, bool indirect, void *token)
{
    unsigned n = nrd + nwr;
    if (n == 0 || n > 0xffff) {
        return -EINVAL;
    }
    if (indirect) {
        uint32_t tlen = 16u * n;
        uint16_t slot;
        if (take_slots(q, 1, &slot) < 0) {
            return -ENOSPC;
        }
        uint64_t tgpa = vuf_mem_alloc(q->d, tlen);
        struct vring_desc *t = tgpa ? vuf_mem_ptr(q->d, tgpa, tlen) : NULL;
        if (!t) {
            q->shadow_next[slot] = q->free_head;
            q->free_head = slot;
            q->nfree++;
            return -ENOMEM;
        }
        for (unsigned i = 0; i < n; i++) {
            const struct vuf_seg *s = i < nrd ? &rd[i] : &wr[i - nrd];
            t[i].addr = s->gpa;
            t[i].len = s->len;
            t[i].flags = (uint16_t)((i < nrd ? 0 : VRING_DESC_F_WRITE) |
                                    (i + 1 < n ? VRING_DESC_F_NEXT : 0));
            t[i].next = (uint16_t)(i + 1 < n ? i + 1 : 0);
        }
        q->desc[slot].addr = tgpa;
        q->desc[slot].len = tlen;
        q->desc[slot].flags = VRING_DESC_F_INDIRECT;
        q->desc[slot].next = 0;
        q->heads[slot] = (struct vuf_head){ .token = token, .ndesc = 1, .busy = true,
                                            .ind_gpa = tgpa, .ind_len = tlen };
        q->inflight++;
        publish(q, slot);
        return slot;
    }
    uint16_t slots[n];
    if (take_slots(q, n, slots) < 0) {
        return -ENOSPC;
    }
    for (unsigned i = 0; i < n; i++) {
        const struct vuf_seg *s = i < nrd ? &rd[i] : &wr[i - nrd];
        struct vring_desc *D = &q->desc[slots[i]];
        D->addr = s->gpa;
        D->len = s->len;
        D->flags = (uint16_t)((i < nrd ? 0 : VRING_DESC_F_WRITE) |
                              (i + 1 < n ? VRING_DESC_F_NEXT : 0));
        D->next = i + 1 < n ? slots[i + 1] : 0;
    }
    q->heads[slots[0]] = (struct vuf_head){ .token = token, .ndesc = (uint16_t)n, .busy = true };
    q->inflight++;
    publish(q, slots[0]);
    return slots[0];
}

int vuf_vq_add_raw(vuf_vq *q, const struct vuf_raw_desc *d, unsigned n,
                   unsigned flags, void *token)
{
    if (n == 0 || n > q->num) {
        return -EINVAL;
    }
    uint16_t slots[n];
    if (take_slots(q, n, slots) < 0) {
        return -ENOSPC;
    }
    for (unsigned i = 0; i < n; i++) {
        struct vring_desc *D = &q->desc[slots[i]];
        D->addr = d[i].addr;
        D->len = d[i].len;
        D->flags = d[i].flags;
        if (!(flags & VUF_RAW_VERBATIM_NEXT) && d[i].next < n) {
            D->next = slots[d[i].next];
        } else {
            D->next = d[i].next;
        }
    }
    q->heads[slots[0]] = (struct vuf_head){ .token = token, .ndesc = (uint16_t)n, .busy = true };
    q->inflight++;
    publish(q, slots[0]);
    return slots[0];
}

int vuf_vq_publish_raw_head(vuf_vq *q, uint16_t head)
{
    publish(q, head);
    return 0;
}

int vuf_vq_kick(vuf_vq *q)
{
    /* The avail idx store must be visible before we read the device's
     * suppression state, or both sides may decide not to notify. */
    full_barrier();
    uint16_t old = q->kicked_idx, new = q->avail_idx;
    q->kicked_idx = new;
    bool need;
    if (q->event_idx) {
        uint16_t ev = __atomic_load_n(avail_event_word(q), __ATOMIC_RELAXED);
        need = (uint16_t)(new - ev - 1) < (uint16_t)(new - old);
    } else {
        need = !(__atomic_load_n(&q->used->flags, __ATOMIC_RELAXED) & VRING_USED_F_NO_NOTIFY);
    }
    if (!need) {
        q->st.kicks_suppressed++;
        return 0;
    }
    vuf_vq_kick_force(q);
    return 1;
}

void vuf_vq_kick_force(vuf_vq *q)
{
    uint64_t one = 1;
    q->kicked_idx = q->avail_idx;
    q->st.kicks++;
    while (write(q->kick_fd, &one, 8) < 0 && errno == EINTR) {
    }
}

bool vuf_vq_has_used(vuf_vq *q)
{
    return __atomic_load_n(&q->used->idx, __ATOMIC_ACQUIRE) != q->last_used;
}

static void free_chain(vuf_vq *q, uint16_t head)
{
    struct vuf_head *h = &q->heads[head];
    uint16_t tail = head;
    for (unsigned i = 1; i < h->ndesc; i++) {
        tail = q->shadow_next[tail];
    }
    q->shadow_next[tail] = q->free_head;
    q->free_head = head;
    q->nfree += h->ndesc;
    if (h->ind_gpa) {
        vuf_mem_free(q->d, h->ind_gpa, h->ind_len);
    }
    h->busy = false;
    h->token = NULL;
    h->ind_gpa = 0;
    q->inflight--;
}

int vuf_vq_pop_used(vuf_vq *q, void **token, uint32_t *len)
{
    if (!vuf_vq_has_used(q)) {
        return 0;
    }
    struct vring_used_elem e = q->used->ring[q->last_used % q->num];
    q->last_used++;
    *len = e.len;
    if (e.id >= q->num || !q->heads[e.id].busy) {
        q->st.bogus_used++;
        *token = (void *)(uintptr_t)e.id;
        return -EPROTO;
    }
    *token = q->heads[e.id].token;
    free_chain(q, (uint16_t)e.id);
    q->st.completed++;
    return 1;
}

bool vuf_vq_arm(vuf_vq *q)
{
    if (q->event_idx) {
        __atomic_store_n(used_event_word(q), q->last_used, __ATOMIC_RELAXED);
    } else {
        __atomic_store_n(&q->avail->flags, 0, __ATOMIC_RELAXED);
    }
    /* Publish the re-arm before looking at used->idx again, so an entry
     * pushed in between either is seen now or raises a call. */
    full_barrier();
    return vuf_vq_has_used(q);
}

void vuf_vq_disarm(vuf_vq *q)
{
    if (!q->event_idx) {
        __atomic_store_n(&q->avail->flags, VRING_AVAIL_F_NO_INTERRUPT, __ATOMIC_RELAXED);
    }
}

void vuf_vq_ack_call(vuf_vq *q)
{
    uint64_t v;
    if (read(q->call_fd, &v, 8) == 8) {
        q->st.calls += v;
    }
}

int vuf_vq_call_blocking(vuf_vq *q, bool blocking)
{
    int fl = fcntl(q->call_fd, F_GETFL);
    if (fl < 0) {
        return -errno;
    }
    fl = blocking ? fl & ~O_NONBLOCK : fl | O_NONBLOCK;
    return fcntl(q->call_fd, F_SETFL, fl) < 0 ? -errno : 0;
}

int vuf_vq_wait(vuf_vq *q, int timeout_ms)
{
    uint64_t deadline = vuf_now_ns() + (uint64_t)timeout_ms * 1000000ull;
    for (;;) {
        if (vuf_vq_arm(q)) {
            return 1;
        }
        struct pollfd p[2] = {
            { .fd = q->call_fd, .events = POLLIN },
            /* events 0: only hangup/error, the socket itself is not ours here */
            { .fd = q->d->sock, .events = POLLRDHUP },
        };
        int r = poll(p, 2, remaining_ms(deadline));
        if (r < 0) {
            if (errno == EINTR) {
                continue;
            }
            return -errno;
        }
        if (p[0].revents & POLLIN) {
            vuf_vq_ack_call(q);
        }
        if (vuf_vq_has_used(q)) {
            return 1;
        }
        if (p[1].revents & (POLLHUP | POLLRDHUP | POLLERR)) {
            return -ECONNRESET;
        }
        if (r == 0 || remaining_ms(deadline) == 0) {
            return 0;
        }
    }
}

unsigned vuf_vq_inflight_tokens(const vuf_vq *q, void **out, unsigned max)
{
    unsigned n = 0;
    for (unsigned i = 0; i < q->num && n < max; i++) {
        if (q->heads[i].busy) {
            out[n++] = q->heads[i].token;
        }
    }
    return n;
}

int vuf_vq_call_fd(const vuf_vq *q) { return q->call_fd; }
unsigned vuf_vq_index(const vuf_vq *q) { return q->idx; }
unsigned vuf_vq_size(const vuf_vq *q) { return q->num; }
unsigned vuf_vq_inflight(const vuf_vq *q) { return q->inflight; }
unsigned vuf_vq_free_descs(const vuf_vq *q) { return q->nfree; }
vuf_dev *vuf_vq_dev(vuf_vq *q) { return q->d; }
bool vuf_vq_started(const vuf_vq *q) { return q->started; }

void vuf_vq_get_stats(const vuf_vq *q, struct vuf_vq_stats *s)
{
    *s = q->st;
}
