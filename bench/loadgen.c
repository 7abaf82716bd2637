/* SPDX-License-Identifier: GPL-2.0-or-later */
/* The load engine behind vfs-load and vfs-ab; see loadgen.h. */
#include "loadgen.h"

#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <pthread.h>
#include <sched.h>
#include <stdlib.h>
#include <string.h>
#include <sys/eventfd.h>
#include <sys/wait.h>
#include <unistd.h>

#include "fuse_client.h"
#include "vufront.h"

#define UPSTREAM_HINT "qemu/virtiofsd"

static const char *const op_names[LG_NOPS] = {
    [LG_OP_READ] = "READ", [LG_OP_WRITE] = "WRITE", [LG_OP_LOOKUP] = "LOOKUP",
    [LG_OP_GETATTR] = "GETATTR", [LG_OP_OPEN] = "OPEN", [LG_OP_RELEASE] = "RELEASE",
};

const char *lg_op_name(enum lg_op op)
{
    return op < LG_NOPS ? op_names[op] : "?";
}

void lg_params_default(struct lg_params *p)
{
    memset(p, 0, sizeof(*p));
    p->workload = LG_READ;
    p->random = true;
    p->rwmix = 75;
    p->bs = 4096;
    p->file_size = 64ull << 20;
    p->file_name = "vfs-load.dat";
    p->nfiles = 64;
    p->queues = 1;
    p->depth = 1;
    p->threads = 0;
    p->duration = -1;     /* resolved in lg_run: 10 s unless --requests */
    p->ramp = -1;
    p->queue_size = 128;  /* QEMU's vhost-user-fs default */
    p->event_idx = true;  /* a Linux guest negotiates both when offered */
    p->indirect = true;
}

const char *lg_workload_name(const struct lg_params *p)
{
    switch (p->workload) {
    case LG_READ:
        return p->random ? "randread" : "read";
    case LG_WRITE:
        return p->random ? "randwrite" : "write";
    case LG_RW:
        return p->random ? "randrw" : "rw";
    case LG_META:
        return "meta";
    }
    return "?";
}

static int parse_size(const char *s, uint64_t *out)
{
    char *end;
    double v = strtod(s, &end);
    if (end == s || v < 0) {
        return -1;
    }
    uint64_t m = 1;
    switch (*end) {
    case 'k': case 'K': m = 1ull << 10; end++; break;
    case 'm': case 'M': m = 1ull << 20; end++; break;
    case 'g': case 'G': m = 1ull << 30; end++; break;
    default: break;
    }
    if (*end == 'i' || *end == 'B' || *end == 'b') {
        end++;
    }
    if (*end) {
        return -1;
    }
    *out = (uint64_t)(v * (double)m);
    return 0;
}

/* "0", "0-3", "0,2,5-6" -> bit mask of CPUs < 64 */
static int parse_cpus(const char *s, uint64_t *mask)
{
    uint64_t m = 0;
    while (*s) {
        char *end;
        long a = strtol(s, &end, 10), b = a;
        if (end == s || a < 0 || a > 63) {
            return -1;
        }
        s = end;
        if (*s == '-') {
            b = strtol(s + 1, &end, 10);
            if (end == s + 1 || b < a || b > 63) {
                return -1;
            }
            s = end;
        }
        for (long c = a; c <= b; c++) {
            m |= 1ull << c;
        }
        if (*s == ',') {
            s++;
        } else if (*s) {
            return -1;
        }
    }
    *mask = m;
    return m ? 0 : -1;
}

static void format_cpus(uint64_t m, char *buf, size_t n)
{
    size_t len = 0;
    buf[0] = 0;
    for (int c = 0; c < 64 && len + 4 < n; c++) {
        if (m & (1ull << c)) {
            len += (size_t)snprintf(buf + len, n - len, "%s%d", len ? "," : "", c);
        }
    }
    if (!len) {
        snprintf(buf, n, "any");
    }
}

void lg_usage_options(FILE *f)
{
    fprintf(f,
        "  --rw=read|write|randread|randwrite|rw|randrw|meta   workload (default randread)\n"
        "  --rwmix=N          %% reads in rw/randrw (default 75)\n"
        "  --bs=SIZE          block size (default 4k)\n"
        "  --size=SIZE        test file size (default 64m)\n"
        "  --file=NAME        test file name in the share (default vfs-load.dat)\n"
        "  --nfiles=N         files cycled by the meta workload (default 64)\n"
        "  --queues=N         request queues (default 1; upstream supports 1)\n"
        "  --depth=N          requests in flight per queue (default 1)\n"
        "  --threads=N        driver threads, each owns queues (default = queues)\n"
        "  --time=SEC         measured duration (default 10 unless --requests)\n"
        "  --ramp=SEC         unmeasured warm-up (default 1, 0 with --requests)\n"
        "  --requests=N       stop after N requests in total\n"
        "  --queue-size=N     virtqueue size (default 128)\n"
        "  --mem=SIZE         guest memory (default 256m)\n"
        "  --no-event-idx     do not negotiate VIRTIO_RING_F_EVENT_IDX\n"
        "  --no-indirect      do not negotiate VIRTIO_RING_F_INDIRECT_DESC\n"
        "  --spin             busy-poll the used rings instead of sleeping on the\n"
        "                     call eventfd (removes the driver's wake-up from latency)\n"
        "  --cpus-driver=LIST pin the driver threads (e.g. 0 or 0-1)\n"
        "  --cpus-daemon=LIST pin the daemon (all its threads)\n"
        "  --connect=PATH     use a daemon already listening on PATH\n"
        "  --fd               start the daemon with --fd=N instead of --socket-path\n"
        "  --env=NAME=VALUE   extra daemon environment (repeatable)\n"
        "  --daemon-log=PATH  daemon stdout/stderr (default: shown only on failure)\n");
}

int lg_parse_arg(struct lg_params *p, int argc, char **argv, int i)
{
    const char *a = argv[i];
    if (strncmp(a, "--", 2)) {
        return 0;
    }
    a += 2;
    char name[64];
    const char *val = NULL;
    int used = 1;
    const char *eq = strchr(a, '=');
    if (eq) {
        snprintf(name, sizeof(name), "%.*s", (int)(eq - a), a);
        val = eq + 1;
    } else {
        snprintf(name, sizeof(name), "%s", a);
    }
    static const char *const flags[] = { "no-event-idx", "no-indirect", "fd", "quiet", "spin",
                                         NULL };
    bool is_flag = false;
    for (unsigned k = 0; flags[k]; k++) {
        is_flag |= !strcmp(name, flags[k]);
    }
    if (!is_flag && !val) {
        if (i + 1 >= argc) {
            return 0;
        }
        val = argv[i + 1];
        used = 2;
    }
    uint64_t v = 0;
    if (!strcmp(name, "rw")) {
        p->random = !strncmp(val, "rand", 4);
        const char *w = p->random ? val + 4 : val;
        if (!strcmp(w, "read")) {
            p->workload = LG_READ;
        } else if (!strcmp(w, "write")) {
            p->workload = LG_WRITE;
        } else if (!strcmp(w, "rw")) {
            p->workload = LG_RW;
        } else if (!strcmp(val, "meta")) {
            p->workload = LG_META;
        } else {
            return -1;
        }
    } else if (!strcmp(name, "rwmix")) {
        p->rwmix = (unsigned)atoi(val);
        if (p->rwmix > 100) {
            return -1;
        }
    } else if (!strcmp(name, "bs")) {
        if (parse_size(val, &v) || !v || v > (16u << 20)) {
            return -1;
        }
        p->bs = (uint32_t)v;
    } else if (!strcmp(name, "size")) {
        if (parse_size(val, &v) || !v) {
            return -1;
        }
        p->file_size = v;
    } else if (!strcmp(name, "mem")) {
        if (parse_size(val, &v) || !v) {
            return -1;
        }
        p->mem_size = v;
    } else if (!strcmp(name, "file")) {
        p->file_name = val;
    } else if (!strcmp(name, "nfiles")) {
        p->nfiles = (unsigned)atoi(val);
    } else if (!strcmp(name, "queues")) {
        p->queues = (unsigned)atoi(val);
    } else if (!strcmp(name, "depth")) {
        p->depth = (unsigned)atoi(val);
    } else if (!strcmp(name, "threads")) {
        p->threads = (unsigned)atoi(val);
    } else if (!strcmp(name, "time")) {
        p->duration = atof(val);
    } else if (!strcmp(name, "ramp")) {
        p->ramp = atof(val);
    } else if (!strcmp(name, "requests")) {
        p->requests = strtoull(val, NULL, 0);
    } else if (!strcmp(name, "queue-size")) {
        p->queue_size = (unsigned)atoi(val);
    } else if (!strcmp(name, "no-event-idx")) {
        p->event_idx = false;
    } else if (!strcmp(name, "no-indirect")) {
        p->indirect = false;
    } else if (!strcmp(name, "fd")) {
        p->use_fd = true;
    } else if (!strcmp(name, "cpus-driver")) {
        if (parse_cpus(val, &p->cpus_driver)) {
            return -1;
        }
    } else if (!strcmp(name, "cpus-daemon")) {
        if (parse_cpus(val, &p->cpus_daemon)) {
            return -1;
        }
    } else if (!strcmp(name, "spin")) {
        p->spin = true;
    } else if (!strcmp(name, "quiet")) {
        p->quiet = true;
    } else if (!strcmp(name, "connect")) {
        p->connect_path = val;
    } else if (!strcmp(name, "daemon-log")) {
        p->daemon_log = val;
    } else if (!strcmp(name, "env")) {
        if (p->nenv + 1 >= 16 || !strchr(val, '=')) {
            return -1;
        }
        p->env[p->nenv++] = val;
    } else {
        return 0;
    }
    return used;
}

int lg_set_daemon_cmdline(struct lg_params *p, const char *cmd)
{
    /* argv/env point into this buffer until lg_params_release(). */
    char *buf = strdup(cmd);
    char *w = buf, *o = buf;
    bool in_env = true;
    if (!buf) {
        return -ENOMEM;
    }
    free(p->cmd_buf);
    p->cmd_buf = buf;
    p->daemon_argc = 0;
    while (*w) {
        while (*w == ' ' || *w == '\t' || *w == '\n') {
            w++;
        }
        if (!*w) {
            break;
        }
        char *start = o;
        char q = 0;
        while (*w && (q || (*w != ' ' && *w != '\t' && *w != '\n'))) {
            if (!q && (*w == '"' || *w == '\'')) {
                q = *w++;
            } else if (q && *w == q) {
                q = 0;
                w++;
            } else {
                *o++ = *w++;
            }
        }
        if (*w) {
            w++;
        }
        *o++ = 0;
        if (in_env && strchr(start, '=') && start[0] != '-' && start[0] != '/' &&
            p->nenv + 1 < 16) {
            p->env[p->nenv++] = start;
            continue;
        }
        in_env = false;
        if (p->daemon_argc + 1 >= LG_MAX_ARGS) {
            return -E2BIG;
        }
        p->daemon_argv[p->daemon_argc++] = start;
    }
    p->daemon_argv[p->daemon_argc] = NULL;
    return p->daemon_argc ? 0 : -EINVAL;
}

void lg_params_release(struct lg_params *p)
{
    free(p->cmd_buf);
    p->cmd_buf = NULL;
    p->daemon_argc = 0;
    p->daemon_argv[0] = NULL;
    p->nenv = 0;   /* entries may point into the buffer */
}

static double loadavg1(void)
{
    double l = -1;
    FILE *f = fopen("/proc/loadavg", "r");
    if (f) {
        if (fscanf(f, "%lf", &l) != 1) {
            l = -1;
        }
        fclose(f);
    }
    return l;
}

static bool is_upstream(const struct lg_params *p)
{
    return p->daemon_argc && strstr(p->daemon_argv[0], UPSTREAM_HINT);
}

bool lg_fix_upstream_env(struct lg_params *p)
{
    if (!is_upstream(p)) {
        return false;
    }
    long pool = 0;
    for (unsigned i = 1; i < p->daemon_argc; i++) {
        const char *a = p->daemon_argv[i];
        if (!strncmp(a, "--thread-pool-size=", 19)) {
            pool = atol(a + 19);
        } else if (!strcmp(a, "--thread-pool-size") && i + 1 < p->daemon_argc) {
            pool = atol(p->daemon_argv[i + 1]);
        }
    }
    if (pool <= 0) {
        return false;
    }
    for (unsigned i = 0; i < p->nenv; i++) {
        if (!strncmp(p->env[i], "MALLOC_ARENA_MAX=", 17)) {
            return false;   /* the user chose */
        }
    }
    if (p->nenv + 1 >= 16) {
        return false;
    }
    p->env[p->nenv++] = "MALLOC_ARENA_MAX=8";
    return true;
}

/* ------------------------------------------------------------------ */

struct lg_shared {
    const struct lg_params *p;
    fc *c;
    vuf_dev *dev;
    uint64_t file_node, file_fh;
    uint64_t nblocks;
    uint64_t *meta_nodes;       /* nodeid per meta file (from setup) */
    uint64_t ramp_end, end;     /* ns */
    uint64_t submitted;         /* atomic, for --requests */
    pthread_barrier_t start;
    int failed;                 /* atomic */
    int done_fd;                /* eventfd: a driver thread finished */
};

struct lg_thread;

struct lg_slot {
    struct lg_thread *t;
    unsigned qi;               /* index in t->ch */
    uint64_t data_gpa;
    uint8_t *data;
    enum lg_op op;
    unsigned file;             /* meta: file index */
    uint64_t nodeid, fh;       /* meta: from LOOKUP / OPEN */
};

struct lg_thread {
    struct lg_shared *s;
    pthread_t th;
    unsigned idx;
    fc_chan *ch[VUF_MAX_QUEUES];
    unsigned nch;
    struct lg_slot *slots;
    unsigned nslots;
    uint64_t rng;
    uint64_t seq_block;
    uint64_t *nlookup;         /* meta: lookups per file, to FORGET at the end */
    unsigned next_file;
    struct lg_opstat op[LG_NOPS];
    uint64_t last_done;
    int err;
    /*
     * A thread that owns one queue sleeps in read() on its call eventfd
     * (one syscall per wake-up, as close as user space gets to an irqfd);
     * lg_run's watchdog then does the hang-up and stuck checks and wakes it
     * with 'abort' set.  Atomics: progress (completions), abort.
     */
    bool blocking_wait;
    uint64_t progress;
    int abort;                 /* 0, -ECONNRESET or -ETIMEDOUT */
    int finished;
};

static uint64_t rnd(uint64_t *s)
{
    *s ^= *s << 13;
    *s ^= *s >> 7;
    *s ^= *s << 17;
    return *s;
}

static bool may_submit(struct lg_thread *t)
{
    struct lg_shared *s = t->s;
    if (s->p->duration > 0 && vuf_now_ns() >= s->end) {
        return false;
    }
    if (__atomic_load_n(&s->failed, __ATOMIC_RELAXED)) {
        return false;
    }
    if (s->p->requests &&
        __atomic_fetch_add(&s->submitted, 1, __ATOMIC_RELAXED) >= s->p->requests) {
        return false;
    }
    return true;
}

static int submit_slot(struct lg_thread *t, struct lg_slot *sl)
{
    const struct lg_params *p = t->s->p;
    struct lg_shared *s = t->s;
    fc_chan *ch = t->ch[sl->qi];
    struct fc_call call = { .user = sl };
    struct vuf_seg seg = { sl->data_gpa, p->bs };
    union {
        struct fuse_read_in r;
        struct fuse_write_in w;
        struct fuse_getattr_in g;
        struct fuse_open_in o;
        struct fuse_release_in rel;
    } in;
    char name[64];
    memset(&in, 0, sizeof(in));

    if (p->workload == LG_META) {
        call.nodeid = sl->nodeid;
        switch (sl->op) {
        case LG_OP_LOOKUP:
            snprintf(name, sizeof(name), "vfs-meta-%u", sl->file);
            call.opcode = FUSE_LOOKUP;
            call.nodeid = FUSE_ROOT_ID;
            call.arg = name;
            call.arg_len = (uint32_t)strlen(name) + 1;
            call.out_len = sizeof(struct fuse_entry_out);
            break;
        case LG_OP_GETATTR:
            call.opcode = FUSE_GETATTR;
            call.arg = &in.g;
            call.arg_len = sizeof(in.g);
            call.out_len = sizeof(struct fuse_attr_out);
            break;
        case LG_OP_OPEN:
            in.o.flags = O_RDONLY;
            call.opcode = FUSE_OPEN;
            call.arg = &in.o;
            call.arg_len = sizeof(in.o);
            call.out_len = sizeof(struct fuse_open_out);
            break;
        default:
            in.rel.fh = sl->fh;
            in.rel.flags = O_RDONLY;
            call.opcode = FUSE_RELEASE;
            call.arg = &in.rel;
            call.arg_len = sizeof(in.rel);
            break;
        }
    } else {
        uint64_t blk;
        if (p->random) {
            blk = rnd(&t->rng) % s->nblocks;
        } else {
            blk = t->seq_block++ % s->nblocks;
        }
        bool rd = p->workload == LG_READ ||
                  (p->workload == LG_RW && rnd(&t->rng) % 100 < p->rwmix);
        sl->op = rd ? LG_OP_READ : LG_OP_WRITE;
        call.nodeid = s->file_node;
        if (rd) {
            in.r = (struct fuse_read_in){ .fh = s->file_fh, .offset = blk * p->bs,
                                          .size = p->bs };
            call.opcode = FUSE_READ;
            call.arg = &in.r;
            call.arg_len = sizeof(in.r);
            call.data_wr = &seg;
            call.n_data_wr = 1;
        } else {
            in.w = (struct fuse_write_in){ .fh = s->file_fh, .offset = blk * p->bs,
                                           .size = p->bs };
            call.opcode = FUSE_WRITE;
            call.arg = &in.w;
            call.arg_len = sizeof(in.w);
            call.data_rd = &seg;
            call.n_data_rd = 1;
            call.out_len = sizeof(struct fuse_write_out);
        }
    }
    fc_req *r;
    int ret = fc_submit(ch, &call, &r);
    if (ret < 0) {
        fprintf(stderr, "vfs-load: submit on queue %u: %s\n",
                vuf_vq_index(fc_chan_vq(ch)), strerror(-ret));
    }
    return ret;
}

/* Meta workload: LOOKUP -> GETATTR -> OPEN -> RELEASE -> next file. */
static void meta_advance(struct lg_thread *t, struct lg_slot *sl, fc_req *r)
{
    if (r->error) {
        sl->op = LG_OP_LOOKUP;
        sl->file = t->next_file++ % t->s->p->nfiles;
        return;
    }
    switch (sl->op) {
    case LG_OP_LOOKUP:
        sl->nodeid = ((struct fuse_entry_out *)r->out)->nodeid;
        t->nlookup[sl->file]++;
        sl->op = LG_OP_GETATTR;
        break;
    case LG_OP_GETATTR:
        sl->op = LG_OP_OPEN;
        break;
    case LG_OP_OPEN:
        sl->fh = ((struct fuse_open_out *)r->out)->fh;
        sl->op = LG_OP_RELEASE;
        break;
    default:
        sl->op = LG_OP_LOOKUP;
        sl->file = t->next_file++ % t->s->p->nfiles;
        break;
    }
}

static void handle_done(struct lg_thread *t, fc_req *r, bool *resubmit)
{
    struct lg_shared *s = t->s;
    struct lg_slot *sl = r->user;
    enum lg_op op = sl->op;
    if (r->t_submit >= s->ramp_end && (s->p->duration <= 0 || r->t_done <= s->end)) {
        struct lg_opstat *os = &t->op[op];
        histo_record(&os->h, r->t_done - r->t_submit);
        if (r->error) {
            os->errors++;
        } else if (op == LG_OP_READ || op == LG_OP_WRITE) {
            os->bytes += s->p->bs;
        }
        if (r->t_done > t->last_done) {
            t->last_done = r->t_done;
        }
    }
    if (r->error && op != LG_OP_LOOKUP && !t->err) {
        fprintf(stderr, "vfs-load: %s failed: %s\n", lg_op_name(op), strerror(-r->error));
    }
    if (s->p->workload == LG_META) {
        meta_advance(t, sl, r);
        /* An open file is always released, even when stopping. */
        *resubmit = sl->op == LG_OP_RELEASE && !r->error ? true : may_submit(t);
    } else {
        *resubmit = may_submit(t);
    }
}

/* Why a driver thread gives up: -ECONNRESET or -ETIMEDOUT. */
static int thread_fail(int why, unsigned inflight, int timeout)
{
    if (why == -ECONNRESET) {
        fprintf(stderr, "vfs-load: daemon disconnected\n");
    } else {
        fprintf(stderr, "vfs-load: %u requests stuck for %d ms\n", inflight, timeout);
    }
    return why;
}

static void *thread_main(void *arg)
{
    struct lg_thread *t = arg;
    struct lg_shared *s = t->s;
    int timeout = vuf_dev_timeout(s->dev);

    if (s->p->cpus_driver) {
        cpu_set_t set;
        CPU_ZERO(&set);
        for (int c = 0; c < 64; c++) {
            if (s->p->cpus_driver & (1ull << c)) {
                CPU_SET(c, &set);
            }
        }
        pthread_setaffinity_np(pthread_self(), sizeof(set), &set);
    }
    pthread_barrier_wait(&s->start);
    /* else poll() below, as with several queues */
    bool blocking = t->blocking_wait && vuf_vq_call_blocking(fc_chan_vq(t->ch[0]), true) == 0;
    if (s->p->spin) {
        for (unsigned q = 0; q < t->nch; q++) {
            vuf_vq_disarm(fc_chan_vq(t->ch[q]));
        }
    }
    for (unsigned i = 0; i < t->nslots; i++) {
        if (!may_submit(t)) {
            break;
        }
        if (submit_slot(t, &t->slots[i]) < 0) {
            t->err = -1;
            goto out;
        }
    }
    uint64_t idle_since = 0;
    unsigned spins = 0;
    for (;;) {
        unsigned inflight = 0;
        int progress = 0;
        for (unsigned q = 0; q < t->nch; q++) {
            fc_req *done[256];
            int n = fc_chan_poll(t->ch[q], 0, done, 256);
            if (n < 0) {
                t->err = n;
                goto out;
            }
            progress += n;
            for (int i = 0; i < n; i++) {
                bool again;
                struct lg_slot *sl = done[i]->user;
                handle_done(t, done[i], &again);
                fc_req_free(done[i]);
                if (again && submit_slot(t, sl) < 0) {
                    t->err = -1;
                    goto out;
                }
            }
            inflight += fc_chan_inflight(t->ch[q]);
        }
        if (!inflight) {
            break;
        }
        if (progress) {
            idle_since = 0;
            __atomic_store_n(&t->progress, t->progress + 1, __ATOMIC_RELAXED);
            continue;
        }
        if (s->p->spin) {
            /* Busy-poll; look for a hang-up and the stuck timeout now and then. */
            if ((++spins & 0x3fff) == 0) {
                uint64_t now = vuf_now_ns();
                if (!vuf_dev_alive(s->dev)) {
                    t->err = thread_fail(-ECONNRESET, inflight, timeout);
                    goto out;
                }
                if (!idle_since) {
                    idle_since = now;
                } else if (now - idle_since > (uint64_t)timeout * 1000000ull) {
                    t->err = thread_fail(-ETIMEDOUT, inflight, timeout);
                    goto out;
                }
            }
            continue;
        }
        /* Nothing ready: re-arm every queue, then sleep on their call fds. */
        bool pending = false;
        struct pollfd pf[VUF_MAX_QUEUES + 1];
        for (unsigned q = 0; q < t->nch; q++) {
            pending |= vuf_vq_arm(fc_chan_vq(t->ch[q]));
            pf[q] = (struct pollfd){ .fd = vuf_vq_call_fd(fc_chan_vq(t->ch[q])),
                                     .events = POLLIN };
        }
        if (pending) {
            continue;
        }
        if (blocking) {
            /* the watchdog writes the call fd too, after setting 'abort' */
            vuf_vq_ack_call(fc_chan_vq(t->ch[0]));
            int ab = __atomic_load_n(&t->abort, __ATOMIC_ACQUIRE);
            if (ab) {
                t->err = thread_fail(ab, inflight, timeout);
                goto out;
            }
            continue;
        }
        pf[t->nch] = (struct pollfd){ .fd = vuf_dev_sock(s->dev), .events = POLLRDHUP };
        int r = poll(pf, t->nch + 1, 1000);
        for (unsigned q = 0; q < t->nch; q++) {
            if (pf[q].revents & POLLIN) {
                vuf_vq_ack_call(fc_chan_vq(t->ch[q]));
            }
        }
        if (r > 0 && (pf[t->nch].revents & (POLLHUP | POLLRDHUP | POLLERR))) {
            t->err = thread_fail(-ECONNRESET, inflight, timeout);
            goto out;
        }
        if (r == 0) {
            uint64_t now = vuf_now_ns();
            if (!idle_since) {
                idle_since = now;
            } else if (now - idle_since > (uint64_t)timeout * 1000000ull) {
                t->err = thread_fail(-ETIMEDOUT, inflight, timeout);
                goto out;
            }
        }
    }
out:
    if (blocking) {
        vuf_vq_call_blocking(fc_chan_vq(t->ch[0]), false);
    }
    if (t->err) {
        __atomic_store_n(&s->failed, 1, __ATOMIC_RELAXED);
    }
    __atomic_store_n(&t->finished, 1, __ATOMIC_RELAXED);
    if (s->done_fd >= 0) {
        eventfd_write(s->done_fd, 1);
    }
    return NULL;
}

static void watchdog_abort(struct lg_thread *t, int why)
{
    int expect = 0;
    if (t->blocking_wait && !__atomic_load_n(&t->finished, __ATOMIC_RELAXED) &&
        __atomic_compare_exchange_n(&t->abort, &expect, why, false, __ATOMIC_RELEASE,
                                    __ATOMIC_RELAXED)) {
        eventfd_write(vuf_vq_call_fd(fc_chan_vq(t->ch[0])), 1);
    }
}

/*
 * Runs on lg_run's thread until every driver thread has finished: the
 * hang-up and stuck checks for the threads that sleep in read() on their
 * call eventfd (they cannot time out themselves).
 */
static void watchdog(struct lg_shared *s, struct lg_thread *th, unsigned n)
{
    uint64_t *seen = calloc(n, sizeof(*seen)), *since = calloc(n, sizeof(*since));
    uint64_t limit = (uint64_t)vuf_dev_timeout(s->dev) * 1000000ull;
    unsigned finished = 0;
    bool hup = false;

    if (s->done_fd < 0 || !seen || !since) {
        free(seen);
        free(since);
        return;
    }
    while (finished < n) {
        struct pollfd pf[2] = {
            { .fd = s->done_fd, .events = POLLIN },
            { .fd = vuf_dev_sock(s->dev), .events = POLLRDHUP },
        };
        int r = poll(pf, hup ? 1 : 2, 100);
        if (r < 0 && errno != EINTR) {
            break;
        }
        if (pf[0].revents & POLLIN) {
            eventfd_t v;
            if (eventfd_read(s->done_fd, &v) == 0) {
                finished += (unsigned)v;
            }
        }
        if (!hup && (pf[1].revents & (POLLHUP | POLLRDHUP | POLLERR))) {
            hup = true;
            for (unsigned i = 0; i < n; i++) {
                watchdog_abort(&th[i], -ECONNRESET);
            }
        }
        uint64_t now = vuf_now_ns();
        for (unsigned i = 0; i < n; i++) {
            uint64_t p = __atomic_load_n(&th[i].progress, __ATOMIC_RELAXED);
            if (p != seen[i] || !since[i]) {
                seen[i] = p;
                since[i] = now;
            } else if (now - since[i] > limit) {
                watchdog_abort(&th[i], -ETIMEDOUT);
            }
        }
    }
    free(seen);
    free(since);
}

static void pattern_fill(uint8_t *b, size_t n, uint64_t seed)
{
    for (size_t i = 0; i < n; i += 8) {
        uint64_t v = seed ^ (i * 0x9e3779b97f4a7c15ull);
        memcpy(b + i, &v, n - i < 8 ? n - i : 8);
    }
}

static int setup_file(struct lg_shared *s)
{
    const struct lg_params *p = s->p;
    fc_chan *ch = fc_chan_get(s->c, 1);
    struct fuse_entry_out e;
    struct fuse_open_out o;
    int ret;

    if (p->workload == LG_META) {
        s->meta_nodes = calloc(p->nfiles, sizeof(*s->meta_nodes));
        for (unsigned i = 0; i < p->nfiles; i++) {
            char name[64];
            snprintf(name, sizeof(name), "vfs-meta-%u", i);
            /* Look up first: upstream aborts on CREATE of an existing name
             * without O_EXCL. */
            ret = fc_lookup(ch, FUSE_ROOT_ID, name, &e);
            if (ret == 0 && e.nodeid == 0)
                ret = -ENOENT;      /* a negative entry (cache=auto/always) */
            if (ret == -ENOENT) {
                ret = fc_create(ch, FUSE_ROOT_ID, name, O_RDWR | O_CREAT | O_EXCL, 0100644,
                                &e, &o);
                if (ret == 0) {
                    fc_release(ch, e.nodeid, o.fh, O_RDWR);
                }
            }
            if (ret < 0) {
                fprintf(stderr, "vfs-load: %s: %s\n", name, strerror(-ret));
                return ret;
            }
            s->meta_nodes[i] = e.nodeid;
        }
        return 0;
    }
    ret = fc_lookup(ch, FUSE_ROOT_ID, p->file_name, &e);
    if (ret == 0 && e.nodeid == 0)
        ret = -ENOENT;              /* a negative entry (cache=auto/always) */
    if (ret == 0) {
        ret = fc_open(ch, e.nodeid, O_RDWR, &o);
    } else if (ret == -ENOENT) {
        ret = fc_create(ch, FUSE_ROOT_ID, p->file_name, O_RDWR | O_CREAT | O_EXCL,
                        0100644, &e, &o);
    }
    if (ret < 0) {
        fprintf(stderr, "vfs-load: open %s: %s\n", p->file_name, strerror(-ret));
        return ret;
    }
    s->file_node = e.nodeid;
    s->file_fh = o.fh;
    s->nblocks = p->file_size / p->bs;
    if (!s->nblocks) {
        return -EINVAL;
    }
    if (e.attr.size < p->file_size) {
        /* Real data, so READs measure reads and not holes. */
        uint32_t chunk = fc_max_write(s->c);
        if (chunk > (1u << 20)) {
            chunk = 1u << 20;
        }
        uint8_t *buf = malloc(chunk);
        for (uint64_t off = 0; off < p->file_size; off += chunk) {
            uint32_t n = (uint32_t)(p->file_size - off < chunk ? p->file_size - off : chunk);
            pattern_fill(buf, n, off);
            ssize_t w = fc_write(ch, s->file_node, s->file_fh, off, buf, n);
            if (w != (ssize_t)n) {
                free(buf);
                fprintf(stderr, "vfs-load: prefill: %zd\n", w);
                return w < 0 ? (int)w : -EIO;
            }
        }
        free(buf);
        fc_fsync(ch, s->file_node, s->file_fh, true);
    }
    return 0;
}

int lg_run(struct lg_params *p, struct lg_result *r)
{
    struct lg_shared s = { .p = p, .done_fd = -1 };
    vuf_daemon *dmn = NULL;
    char sock[128], sockarg[160], logpath[128];
    int fd, ret;

    memset(r, 0, sizeof(*r));
    r->daemon_status = -1;
    r->load_before = loadavg1();
    if (p->duration < 0) {
        p->duration = p->requests ? 0 : 10;
    }
    if (p->ramp < 0) {
        p->ramp = p->requests ? 0 : 1;
    }
    if (!p->threads || p->threads > p->queues) {
        p->threads = p->queues;
    }
    if (!p->queues || !p->depth) {
        return -EINVAL;
    }
    snprintf(logpath, sizeof(logpath), "/tmp/vfs-load.%d.log", (int)getpid());
    if (p->connect_path) {
        snprintf(r->cmdline, sizeof(r->cmdline), "(connected to %s)", p->connect_path);
        fd = vuf_connect_path(p->connect_path, 10000);
        if (fd < 0) {
            fprintf(stderr, "vfs-load: connect %s: %s\n", p->connect_path, strerror(-fd));
            return fd;
        }
    } else {
        const char *argv[LG_MAX_ARGS + 2];
        const char *env[17];
        unsigned n = 0;
        for (unsigned i = 0; i < p->daemon_argc; i++) {
            argv[n++] = p->daemon_argv[i];
        }
        snprintf(sock, sizeof(sock), "/tmp/vfs-load.%d.sock", (int)getpid());
        snprintf(sockarg, sizeof(sockarg), "--socket-path=%s", sock);
        if (!p->use_fd) {
            argv[n++] = sockarg;
        }
        argv[n] = NULL;
        for (unsigned i = 0; i < p->nenv; i++) {
            env[i] = p->env[i];
        }
        env[p->nenv] = NULL;
        unlink(logpath);
        struct vuf_spawn_opts so = {
            .argv = argv,
            .env = env,
            .mode = !p->use_fd ? VUF_SPAWN_SOCKET_PATH
                    : is_upstream(p) ? VUF_SPAWN_FD_LISTEN : VUF_SPAWN_FD_CONNECTED,
            .log_path = p->daemon_log ? p->daemon_log : logpath,
            .cpu_mask = p->cpus_daemon,
        };
        ret = vuf_daemon_spawn(&so, &dmn);
        if (ret < 0) {
            fprintf(stderr, "vfs-load: starting %s: %s\n", argv[0], strerror(-ret));
            return ret;
        }
        snprintf(r->cmdline, sizeof(r->cmdline), "%s", vuf_daemon_cmdline(dmn));
        fd = vuf_daemon_take_fd(dmn);
    }

    struct vuf_opts vo = {
        .mem_size = p->mem_size,
        .num_request_queues = p->queues,
        .queue_size = p->queue_size,
        .event_idx = p->event_idx,
        .indirect_desc = p->indirect,
    };
    uint64_t need = (uint64_t)p->queues * p->depth * (p->bs + 8192) * 2 + (64ull << 20);
    if (!vo.mem_size || vo.mem_size < need) {
        vo.mem_size = need > (256ull << 20) ? need : (256ull << 20);
    }
    ret = vuf_dev_new(fd, &vo, &s.dev);
    if (ret < 0) {
        goto out;
    }
    ret = vuf_dev_start(s.dev);
    if (ret < 0) {
        fprintf(stderr, "vfs-load: vhost-user start: %s\n", strerror(-ret));
        goto out;
    }
    ret = fc_new(s.dev, &s.c);
    if (ret < 0) {
        goto out;
    }
    ret = fc_init(fc_chan_get(s.c, 1), NULL, NULL);
    if (ret < 0) {
        fprintf(stderr, "vfs-load: FUSE_INIT: %s\n", strerror(-ret));
        goto out;
    }
    ret = setup_file(&s);
    if (ret < 0) {
        goto out;
    }

    struct lg_thread *th = calloc(p->threads, sizeof(*th));
    s.done_fd = eventfd(0, EFD_CLOEXEC);
    pthread_barrier_init(&s.start, NULL, p->threads + 1);
    for (unsigned i = 0; i < p->threads; i++) {
        struct lg_thread *t = &th[i];
        t->s = &s;
        t->idx = i;
        t->rng = 0x2545f4914f6cdd1dull * (i + 1);
        t->seq_block = (s.nblocks / p->threads) * i;
        for (unsigned q = i; q < p->queues; q += p->threads) {
            t->ch[t->nch++] = fc_chan_get(s.c, q + 1);
        }
        t->nslots = t->nch * p->depth;
        t->slots = calloc(t->nslots, sizeof(*t->slots));
        t->nlookup = calloc(p->nfiles ? p->nfiles : 1, sizeof(*t->nlookup));
        for (unsigned k = 0; k < LG_NOPS; k++) {
            histo_init(&t->op[k].h);
        }
        for (unsigned k = 0; k < t->nslots; k++) {
            struct lg_slot *sl = &t->slots[k];
            sl->t = t;
            sl->qi = k % t->nch;
            sl->data_gpa = vuf_mem_alloc(s.dev, p->bs);
            sl->data = vuf_mem_ptr(s.dev, sl->data_gpa, p->bs);
            if (sl->data) {
                pattern_fill(sl->data, p->bs, k + 1);
            }
            sl->op = LG_OP_LOOKUP;
            sl->file = (i * 7919 + k) % (p->nfiles ? p->nfiles : 1);
        }
        t->blocking_wait = t->nch == 1 && !p->spin && s.done_fd >= 0;
        pthread_create(&t->th, NULL, thread_main, t);
    }
    uint64_t t0 = vuf_now_ns();
    s.ramp_end = t0 + (uint64_t)(p->ramp * 1e9);
    s.end = s.ramp_end + (uint64_t)(p->duration * 1e9);
    pthread_barrier_wait(&s.start);
    watchdog(&s, th, p->threads);

    uint64_t last_done = 0;
    for (unsigned k = 0; k < LG_NOPS; k++) {
        histo_init(&r->op[k].h);
    }
    r->load_after = -1;
    histo_init(&r->all);
    for (unsigned i = 0; i < p->threads; i++) {
        struct lg_thread *t = &th[i];
        pthread_join(t->th, NULL);
        if (t->err) {
            ret = t->err < 0 ? t->err : -EIO;
        }
        for (unsigned k = 0; k < LG_NOPS; k++) {
            histo_add(&r->op[k].h, &t->op[k].h);
            histo_add(&r->all, &t->op[k].h);
            r->op[k].errors += t->op[k].errors;
            r->op[k].bytes += t->op[k].bytes;
            r->errors += t->op[k].errors;
            r->bytes += t->op[k].bytes;
        }
        if (t->last_done > last_done) {
            last_done = t->last_done;
        }
    }
    r->load_after = loadavg1();
    r->requests = r->all.count;
    if (p->duration > 0) {
        r->seconds = p->duration;
    } else {
        r->seconds = last_done > s.ramp_end ? (double)(last_done - s.ramp_end) / 1e9 : 0;
    }
    for (unsigned q = 1; q <= p->queues; q++) {
        struct vuf_vq_stats vs;
        vuf_vq_get_stats(vuf_dev_vq(s.dev, q), &vs);
        r->kicks += vs.kicks;
        r->kicks_suppressed += vs.kicks_suppressed;
        r->calls += vs.calls;
    }
    struct fc_stats fs;
    fc_get_stats(s.c, &fs);
    r->protocol_errors = fs.unique_mismatch + fs.len_mismatch + fs.short_reply +
                         fs.bogus_used + fs.bad_error;

    /* Tidy up like a guest would: release, forget what was looked up. */
    if (!ret) {
        fc_chan *ch = fc_chan_get(s.c, 1);
        if (p->workload == LG_META) {
            for (unsigned f = 0; f < p->nfiles; f++) {
                uint64_t n = 1;   /* from setup's lookup or create */
                for (unsigned i = 0; i < p->threads; i++) {
                    n += th[i].nlookup[f];
                }
                fc_forget(fc_chan_get(s.c, 0), s.meta_nodes[f], n);
            }
        } else {
            fc_release(ch, s.file_node, s.file_fh, O_RDWR);
            fc_forget(fc_chan_get(s.c, 0), s.file_node, 1);
        }
    }
    for (unsigned i = 0; i < p->threads; i++) {
        free(th[i].slots);
        free(th[i].nlookup);
    }
    free(th);
    pthread_barrier_destroy(&s.start);
    if (s.done_fd >= 0) {
        close(s.done_fd);
    }
out:
    free(s.meta_nodes);
    fc_free(s.c);
    vuf_dev_free(s.dev);
    if (dmn) {
        int st = 0;
        if (vuf_daemon_wait(dmn, 5000, &st) != 1) {
            if (!ret) {
                fprintf(stderr, "vfs-load: daemon did not exit after disconnect\n");
            }
        } else {
            r->daemon_status = st;
            if (ret < 0 && WIFSIGNALED(st)) {
                fprintf(stderr, "vfs-load: daemon killed by signal %d\n", WTERMSIG(st));
            } else if (ret < 0 && WIFEXITED(st)) {
                fprintf(stderr, "vfs-load: daemon exited with status %d\n",
                        WEXITSTATUS(st));
            }
        }
        vuf_daemon_free(dmn);
        if (ret < 0 && !p->daemon_log) {
            FILE *f = fopen(logpath, "r");
            char line[512];
            fprintf(stderr, "---- daemon output ----\n");
            while (f && fgets(line, sizeof(line), f)) {
                fputs(line, stderr);
            }
            if (f) {
                fclose(f);
            }
        }
        unlink(logpath);
    }
    return ret;
}

/* ------------------------------------------------------------------ */

static double us(uint64_t ns)
{
    return (double)ns / 1000.0;
}

void lg_print_table(FILE *f, const struct lg_params *p, const struct lg_result *r)
{
    fprintf(f, "daemon:   %s\n", r->cmdline);
    if (r->arena_note) {
        fprintf(f, "note:     MALLOC_ARENA_MAX=8 added to the daemon environment "
                   "(upstream's seccomp filter kills pool threads without it)\n");
    }
    fprintf(f, "workload: %s bs=%u size=%llu queues=%u depth=%u threads=%u "
               "time=%.1fs ramp=%.1fs event_idx=%d indirect=%d\n",
            lg_workload_name(p), p->bs, (unsigned long long)p->file_size, p->queues,
            p->depth, p->threads ? p->threads : p->queues, r->seconds,
            p->ramp < 0 ? 1.0 : p->ramp, p->event_idx, p->indirect);
    fprintf(f, "%-8s %10s %11s %9s %9s %9s %9s %9s %9s %9s %7s\n", "op", "requests",
            "req/s", "MB/s", "mean(us)", "p50", "p90", "p99", "p99.9", "max", "errors");
    for (int k = -1; k < LG_NOPS; k++) {
        const struct histo *h = k < 0 ? &r->all : &r->op[k].h;
        if (k >= 0 && !h->count) {
            continue;
        }
        uint64_t bytes = k < 0 ? r->bytes : r->op[k].bytes;
        uint64_t errs = k < 0 ? r->errors : r->op[k].errors;
        double sec = r->seconds > 0 ? r->seconds : 1;
        fprintf(f, "%-8s %10llu %11.0f %9.1f %9.1f %9.1f %9.1f %9.1f %9.1f %9.1f %7llu\n",
                k < 0 ? "all" : lg_op_name((enum lg_op)k), (unsigned long long)h->count,
                (double)h->count / sec, (double)bytes / sec / 1e6, histo_mean(h) / 1000.0,
                us(histo_quantile(h, 0.50)), us(histo_quantile(h, 0.90)),
                us(histo_quantile(h, 0.99)), us(histo_quantile(h, 0.999)), us(h->max),
                (unsigned long long)errs);
    }
    fprintf(f, "kicks %llu (suppressed %llu), calls %llu, protocol errors %llu, "
               "loadavg %.2f -> %.2f%s\n",
            (unsigned long long)r->kicks, (unsigned long long)r->kicks_suppressed,
            (unsigned long long)r->calls, (unsigned long long)r->protocol_errors,
            r->load_before, r->load_after, p->spin ? ", driver spins" : "");
    if (p->cpus_driver || p->cpus_daemon) {
        char a[128], b[128];
        format_cpus(p->cpus_driver, a, sizeof(a));
        format_cpus(p->cpus_daemon, b, sizeof(b));
        fprintf(f, "cpus: driver %s, daemon %s\n", a, b);
    }
}

void lg_json_str(FILE *f, const char *s)
{
    fputc('"', f);
    for (; *s; s++) {
        if (*s == '"' || *s == '\\') {
            fprintf(f, "\\%c", *s);
        } else if ((unsigned char)*s < 0x20) {
            fprintf(f, "\\u%04x", *s);
        } else {
            fputc(*s, f);
        }
    }
    fputc('"', f);
}

static void json_histo(FILE *f, const struct histo *h, double sec, uint64_t bytes,
                       uint64_t errors)
{
    fprintf(f, "{\"requests\": %llu, \"req_per_s\": %.1f, \"mb_per_s\": %.3f, "
               "\"errors\": %llu, \"lat_us\": {\"mean\": %.2f, \"p50\": %.2f, "
               "\"p90\": %.2f, \"p99\": %.2f, \"p99.9\": %.2f, \"max\": %.2f}}",
            (unsigned long long)h->count, sec > 0 ? (double)h->count / sec : 0,
            sec > 0 ? (double)bytes / sec / 1e6 : 0, (unsigned long long)errors,
            histo_mean(h) / 1000.0, us(histo_quantile(h, 0.5)), us(histo_quantile(h, 0.9)),
            us(histo_quantile(h, 0.99)), us(histo_quantile(h, 0.999)), us(h->max));
}

void lg_print_json(FILE *f, const struct lg_params *p, const struct lg_result *r)
{
    char cd[128], cm[128];
    format_cpus(p->cpus_driver, cd, sizeof(cd));
    format_cpus(p->cpus_daemon, cm, sizeof(cm));
    fprintf(f, "{\"daemon\": ");
    lg_json_str(f, r->cmdline);
    fprintf(f, ", \"malloc_arena_max_added\": %s", r->arena_note ? "true" : "false");
    fprintf(f, ", \"params\": {\"workload\": \"%s\", \"bs\": %u, \"file_size\": %llu, "
               "\"queues\": %u, \"depth\": %u, \"threads\": %u, \"rwmix\": %u, "
               "\"event_idx\": %s, \"indirect\": %s, \"queue_size\": %u}",
            lg_workload_name(p), p->bs, (unsigned long long)p->file_size, p->queues,
            p->depth, p->threads ? p->threads : p->queues, p->rwmix,
            p->event_idx ? "true" : "false", p->indirect ? "true" : "false", p->queue_size);
    fprintf(f, ", \"seconds\": %.3f, \"total\": ", r->seconds);
    json_histo(f, &r->all, r->seconds, r->bytes, r->errors);
    fprintf(f, ", \"ops\": {");
    bool first = true;
    for (unsigned k = 0; k < LG_NOPS; k++) {
        if (!r->op[k].h.count) {
            continue;
        }
        fprintf(f, "%s\"%s\": ", first ? "" : ", ", lg_op_name((enum lg_op)k));
        json_histo(f, &r->op[k].h, r->seconds, r->op[k].bytes, r->op[k].errors);
        first = false;
    }
    fprintf(f, "}, \"kicks\": %llu, \"kicks_suppressed\": %llu, \"calls\": %llu, "
               "\"protocol_errors\": %llu, \"loadavg_before\": %.2f, "
               "\"loadavg_after\": %.2f, \"spin\": %s, \"cpus_driver\": \"%s\", "
               "\"cpus_daemon\": \"%s\"}\n",
            (unsigned long long)r->kicks, (unsigned long long)r->kicks_suppressed,
            (unsigned long long)r->calls, (unsigned long long)r->protocol_errors,
            r->load_before, r->load_after, p->spin ? "true" : "false", cd, cm);
}
