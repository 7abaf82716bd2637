/* SPDX-License-Identifier: GPL-2.0-or-later */
/*
 * Hostile guest and frontend input never kills, hangs or escapes the
 * daemon.  Each case (test_hostile_{ring,fuse,vhost}.c) runs on a fresh
 * daemon and sends one kind of malformed input: descriptors outside guest
 * memory or across regions, chain loops, nested indirect tables, broken
 * FUSE headers, truncated arguments of every opcode family, names that try
 * to climb out of the share, huge sizes, INIT misuse, malformed vhost-user
 * messages.  Afterwards a well-formed request must still be answered:
 *
 *   our daemon  "replied" (queue 1 serves) or "queue broken, other queue
 *               serving" (only the corrupted ring stopped); cases also
 *               assert the specific answer (EINVAL, a nack...), a clean exit
 *               on disconnect and no sanitizer report in the log.
 *   upstream    anything but a hang: QEMU 7.2's virtiofsd drops the
 *               connection (vu_panic) on most of these.
 *
 * For every daemon, nothing outside the share may be created, read or
 * changed: a marker file and an empty directory next to share/ are checked
 * (stat incl. atime, entries) after each case.
 *
 * Options as the other frontend tests (--daemon, --pool, --queues, --fd),
 * plus --only SUBSTR / $VUF_HOSTILE_ONLY to run matching cases and
 * $VUF_HOSTILE_TIMEOUT_MS (default 1000): how long a step may take before
 * its chain counts as dropped.
 */
#include "test_hostile.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <ftw.h>
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

struct harness H;
int T_MS = 1000;

/* Daemon selection of the preflight start, reused by custom starts. */
static struct harness CFG;

/* Time the probe may lag behind a hostile chain that was dropped. */
#define DROP_GRACE_MS 200
/*
 * No answer on any queue for this long is a hang.  Between T_MS and this,
 * the queue was only stalled: upstream allocates (and, with meson's
 * MALLOC_PERTURB_, touches) a buffer of the guest's READDIR size, 4 GiB
 * taking several seconds; ours must answer within T_MS.
 */
#define HANG_MS 20000

const char hc_marker_text[] = "outside the share: no case may read or change this\n";

/* ---- reporting ---- */

void hc_note(struct hctx *x, const char *fmt, ...)
{
    size_t n = strlen(x->detail);
    if (n + 2 >= sizeof(x->detail)) {
        return;
    }
    if (n) {
        x->detail[n++] = ';';
        x->detail[n++] = ' ';
        x->detail[n] = '\0';
    }
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(x->detail + n, sizeof(x->detail) - n, fmt, ap);
    va_end(ap);
}

void hc_fail(struct hctx *x, int line, const char *cond, const char *fmt, ...)
{
    fprintf(stderr, "FAIL [%s] line %d: %s: ", x->c->name, line, cond);
    va_list ap;
    va_start(ap, fmt);
    vfprintf(stderr, fmt, ap);
    va_end(ap);
    fprintf(stderr, "\n");
    x->failures++;
}

/* ---- guest buffers ---- */

int hb_new(struct hbuf *b)
{
    b->g = vuf_mem_alloc(H.dev, HB_SIZE);
    b->p = b->g ? vuf_mem_ptr(H.dev, b->g, HB_SIZE) : NULL;
    if (!b->p) {
        return -ENOMEM;
    }
    memset(b->p, 0, HB_SIZE);
    b->unique = fc_alloc_unique(H.c);
    return 0;
}

uint32_t hb_req(struct hbuf *b, uint32_t opcode, uint64_t nodeid, const void *arg,
                uint32_t arg_len)
{
    struct fuse_in_header ih = {
        .len = (uint32_t)sizeof(ih) + arg_len,
        .opcode = opcode,
        .unique = b->unique,
        .nodeid = nodeid,
    };
    memcpy(b->p, &ih, sizeof(ih));
    if (arg_len) {
        memcpy(b->p + sizeof(ih), arg, arg_len);
    }
    return ih.len;
}

uint32_t hb_getattr(struct hbuf *b)
{
    struct fuse_getattr_in gi = { 0 };
    return hb_req(b, FUSE_GETATTR, ROOT, &gi, sizeof(gi));
}

/* ---- waiting and judging ---- */

static int probe_sync(fc_chan *ch)
{
    struct fuse_attr_out ao;
    return fc_getattr(ch, ROOT, &ao);
}

/* A GETATTR behind the hostile chain on queue 1; NULL if it cannot be
 * queued (ring full: the hostile chain took every slot). */
static fc_req *submit_probe(struct hctx *x)
{
    static const struct fuse_getattr_in gi;
    struct fc_call c = {
        .opcode = FUSE_GETATTR, .nodeid = ROOT, .arg = &gi, .arg_len = sizeof(gi),
        .out_len = sizeof(struct fuse_attr_out),
    };
    fc_req *p;
    if (x->c->flags & HC_PROBE_INIT) {
        return NULL;    /* the probe must follow a new INIT */
    }
    if (fc_submit(H.req, &c, &p) < 0) {
        return NULL;
    }
    p->sync = true;
    return p;
}

/*
 * Wait until @r (on @ch) and the probe @p (queue 1) completed, the daemon
 * hung up, T_MS passed, or the probe completed and @r stayed missing for
 * DROP_GRACE_MS (the daemon dropped the chain but the queue serves).
 */
static int wait_pair(fc_chan *ch, fc_req *r, fc_req *p)
{
    uint64_t deadline = vuf_now_ns() + (uint64_t)T_MS * 1000000ull;
    uint64_t grace = 0;

    r->sync = true;
    for (;;) {
        fc_chan_reap(ch);
        if (p && ch != H.req) {
            fc_chan_reap(H.req);
        }
        if (r->done && (!p || p->done)) {
            return 0;
        }
        if (!vuf_dev_alive(H.dev)) {
            return -ECONNRESET;
        }
        uint64_t now = vuf_now_ns();
        if (p && p->done) {
            if (!grace) {
                grace = now + DROP_GRACE_MS * 1000000ull;
            } else if (now >= grace) {
                return -ETIMEDOUT;
            }
        }
        if (now >= deadline) {
            return -ETIMEDOUT;
        }
        int w = vuf_vq_wait(fc_chan_vq(r->done ? H.req : ch), 10);
        if (w < 0) {
            return w;
        }
    }
}

/* The answer to a well-formed request was an error: which one. */
static enum outcome probe_error(struct hctx *x, int err)
{
    hc_note(x, "probe: %s", strerror(-err));
    return O_PROBE_ERROR;
}

/*
 * Queue 1 is silent and the daemon is connected: serving on queue 2 means
 * only the abused ring stopped.
 */
static enum outcome other_queue(struct hctx *x)
{
    if (H.queues >= 2) {
        fc_chan *q2 = fc_chan_get(H.c, 2);
        int ret = 0;
        if (x->c->flags & HC_PROBE_INIT) {
            ret = fc_init(q2, NULL, NULL);
        }
        if (ret == 0) {
            ret = probe_sync(q2);
        }
        if (ret == 0) {
            return O_QUEUE_BROKEN;
        }
        hc_note(x, "queue 2: %s", strerror(-ret));
    }
    if (!vuf_dev_alive(H.dev)) {
        return O_DISCONNECTED;
    }
    /* Stalled or hung: one more GETATTR on queue 1, patiently. */
    static const struct fuse_getattr_in gi;
    struct fc_call c = {
        .opcode = FUSE_GETATTR, .nodeid = ROOT, .arg = &gi, .arg_len = sizeof(gi),
        .out_len = sizeof(struct fuse_attr_out),
    };
    uint64_t t0 = vuf_now_ns();
    fc_req *p;
    int ret = fc_submit(H.req, &c, &p);
    if (ret == 0) {
        p->sync = true;
        ret = fc_wait(p, HANG_MS);     /* on failure p is abandoned */
        if (ret == 0) {
            ret = p->error;
            fc_req_free(p);
        }
    }
    if (ret == 0) {
        double s = (double)(vuf_now_ns() - t0) / 1e9;
        hc_note(x, "queue 1 stalled, answered after %.1f s more", s);
        EXPECT_OURS(x, false, "queue 1 stalled for more than %d ms", T_MS);
        return O_REPLIED;
    }
    if (ret == -ECONNRESET || !vuf_dev_alive(H.dev)) {
        return O_DISCONNECTED;
    }
    hc_note(x, "no answer on any queue in %d ms", T_MS + HANG_MS);
    return O_HUNG;
}

/* @p: the probe submitted behind the hostile input, or NULL. */
static enum outcome conclude(struct hctx *x, fc_req *p)
{
    int ret;
    if (p && p->done) {
        ret = p->error;
        fc_req_free(p);
        return ret == 0 ? O_REPLIED : probe_error(x, ret);
    }
    if (p) {
        p->abandoned = true;    /* freed if it ever completes */
        if (!vuf_dev_alive(H.dev)) {
            return O_DISCONNECTED;
        }
        return other_queue(x);
    }
    if (!vuf_dev_alive(H.dev)) {
        return O_DISCONNECTED;
    }
    ret = 0;
    if (x->c->flags & HC_PROBE_INIT) {
        ret = fc_init(H.req, NULL, NULL);
    }
    if (ret == 0) {
        ret = probe_sync(H.req);
    }
    if (ret == 0) {
        return O_REPLIED;
    }
    if (ret == -ECONNRESET || !vuf_dev_alive(H.dev)) {
        return O_DISCONNECTED;
    }
    /* -ENOSPC: the hostile chains hold every slot of queue 1 and were
     * never returned, which is as silent as a timeout */
    if (ret != -ETIMEDOUT && ret != -ENOSPC) {
        return probe_error(x, ret);
    }
    return other_queue(x);
}

/*
 * Input aimed at another queue (hiprio) that never came back while queue 1
 * serves: that queue stopped, another one serves.
 */
static enum outcome on_queue(fc_chan *ch, const struct hres *res, enum outcome out)
{
    if (out == O_REPLIED && ch != H.req && res->wait == -ETIMEDOUT) {
        return O_QUEUE_BROKEN;
    }
    return out;
}

/* Record what became of @r; frees it, or abandons it if still in flight. */
static void take_result(struct hctx *x, fc_req *r, int wret, const void *outh,
                        struct hres *res, void *out, uint32_t out_size)
{
    memset(res, 0, sizeof(*res));
    if (!r->done) {
        res->wait = wret ? wret : -ETIMEDOUT;
        r->abandoned = true;
        if (res->wait == -ETIMEDOUT) {
            hc_note(x, "no completion");
        } else {
            hc_note(x, "wait: %s", strerror(-res->wait));
        }
        return;
    }
    res->used_len = r->used_len;
    if (outh && r->used_len >= sizeof(res->oh)) {
        memcpy(&res->oh, outh, sizeof(res->oh));
        res->have_hdr = true;
    }
    if (out && out_size) {
        memset(out, 0, out_size);
        if (r->out && res->have_hdr && res->oh.len > sizeof(res->oh)) {
            uint32_t n = res->oh.len - (uint32_t)sizeof(res->oh);
            memcpy(out, r->out, n < out_size ? n : out_size);
        }
    }
    if (res->have_hdr) {
        hc_note(x, "used %u, error %d", res->used_len, res->oh.error);
    } else {
        hc_note(x, "used %u", res->used_len);
    }
    fc_req_free(r);
}

enum outcome hc_raw(struct hctx *x, fc_chan *ch, const struct vuf_raw_desc *d, unsigned n,
                    unsigned flags, uint64_t expect_unique, uint64_t out_gpa,
                    struct hres *res)
{
    fc_req *r;
    int ret = fc_submit_raw(ch, d, n, flags, expect_unique, out_gpa, &r);
    if (ret < 0) {
        memset(res, 0, sizeof(*res));
        res->wait = ret;
        hc_note(x, "submit: %s", strerror(-ret));
        return conclude(x, NULL);
    }
    fc_req *p = submit_probe(x);
    ret = wait_pair(ch, r, p);
    const void *outh = out_gpa ? vuf_mem_ptr(H.dev, out_gpa, sizeof(struct fuse_out_header))
                               : NULL;
    take_result(x, r, ret, outh, res, NULL, 0);
    return on_queue(ch, res, conclude(x, p));
}

enum outcome hc_call(struct hctx *x, fc_chan *ch, const struct fc_call *call,
                     struct hres *res, void *out, uint32_t out_size)
{
    fc_req *r;
    struct fc_call c = *call;
    c.no_kick = false;
    int ret = fc_submit(ch, &c, &r);
    if (ret < 0) {
        memset(res, 0, sizeof(*res));
        res->wait = ret;
        hc_note(x, "submit: %s", strerror(-ret));
        return conclude(x, NULL);
    }
    fc_req *p = submit_probe(x);
    ret = wait_pair(ch, r, p);
    take_result(x, r, ret, r->outh, res, out, out_size);
    return on_queue(ch, res, conclude(x, p));
}

enum outcome hc_settle(struct hctx *x)
{
    return conclude(x, NULL);
}

enum outcome hc_settle_ctl(struct hctx *x)
{
    uint64_t f = 0;
    int ret = vuf_msg_get_u64(H.dev, VHOST_USER_GET_FEATURES, NULL, 0, &f);
    if (ret == -ECONNRESET || !vuf_dev_alive(H.dev)) {
        return O_DISCONNECTED;
    }
    EXPECT_OURS(x, ret == 0 && f == vuf_dev_offered_features(H.dev),
                "control socket after the message: GET_FEATURES %d, 0x%llx",
                ret, (unsigned long long)f);
    return conclude(x, NULL);
}

int hc_sync(uint32_t opcode, uint64_t nodeid, const void *arg, uint32_t arg_len,
            const void *arg2, uint32_t arg2_len, void *out, uint32_t out_size)
{
    struct fc_call c = {
        .opcode = opcode, .nodeid = nodeid, .arg = arg, .arg_len = arg_len,
        .arg2 = arg2, .arg2_len = arg2_len, .out_len = out_size,
    };
    return fc_call_sync(H.req, &c, out, out_size, NULL);
}

/* ---- the host side: nothing outside the share changes ---- */

static char marker_path[400], outside_path[400];

const char *hc_marker_path(void)
{
    return marker_path;
}

const char *hc_outside_dir(void)
{
    return outside_path;
}

static int count_entries(const char *dir)
{
    DIR *d = opendir(dir);
    if (!d) {
        return -1;
    }
    int n = 0;
    struct dirent *e;
    while ((e = readdir(d))) {
        if (strcmp(e->d_name, ".") && strcmp(e->d_name, "..")) {
            n++;
        }
    }
    closedir(d);
    return n;
}

int hc_share_entries(void)
{
    return count_entries(H.share);
}

static int cmp_str(const void *a, const void *b)
{
    return strcmp(*(char *const *)a, *(char *const *)b);
}

/* Sorted entries of H.dir as "a/b/c" (the socket may come and go). */
static void list_dir(char *buf, size_t size)
{
    char *names[64];
    unsigned n = 0;
    DIR *d = opendir(H.dir);
    buf[0] = '\0';
    if (!d) {
        return;
    }
    struct dirent *e;
    while ((e = readdir(d)) && n < 64) {
        if (!strcmp(e->d_name, ".") || !strcmp(e->d_name, "..") ||
            !strcmp(e->d_name, "vhost.sock")) {
            continue;
        }
        names[n++] = strdup(e->d_name);
    }
    closedir(d);
    qsort(names, n, sizeof(names[0]), cmp_str);
    size_t pos = 0;
    for (unsigned i = 0; i < n; i++) {
        if (names[i] && pos < size) {
            int w = snprintf(buf + pos, size - pos, "%s%s", i ? "/" : "", names[i]);
            pos += w > 0 ? (size_t)w : 0;
        }
        free(names[i]);
    }
}

struct host_snap {
    struct stat marker;
    char entries[1024];
};

static int host_prepare(struct host_snap *s)
{
    snprintf(marker_path, sizeof(marker_path), "%s/marker", H.dir);
    snprintf(outside_path, sizeof(outside_path), "%s/outside", H.dir);
    int fd = open(marker_path, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0644);
    if (fd < 0) {
        return -errno;
    }
    ssize_t w = write(fd, hc_marker_text, sizeof(hc_marker_text) - 1);
    /* atime older than mtime: with relatime any read would move it */
    struct timespec ts[2] = { { 1000000000, 0 }, { 0, UTIME_NOW } };
    int ret = futimens(fd, ts);
    close(fd);
    if (w != (ssize_t)sizeof(hc_marker_text) - 1 || ret < 0 || mkdir(outside_path, 0777) < 0) {
        return -EIO;
    }
    if (stat(marker_path, &s->marker) < 0) {
        return -errno;
    }
    list_dir(s->entries, sizeof(s->entries));
    return 0;
}

static bool ts_eq(struct timespec a, struct timespec b)
{
    return a.tv_sec == b.tv_sec && a.tv_nsec == b.tv_nsec;
}

static void host_check(struct hctx *x, const struct host_snap *s)
{
    struct stat st;
    char entries[1024];
    int ret = stat(marker_path, &st);
    EXPECT_ALL(x, ret == 0, "marker %s is gone", marker_path);
    if (ret == 0) {
        const struct stat *m = &s->marker;
        EXPECT_ALL(x, st.st_ino == m->st_ino && st.st_size == m->st_size &&
                          st.st_nlink == m->st_nlink && st.st_mode == m->st_mode &&
                          st.st_uid == m->st_uid && st.st_gid == m->st_gid,
                   "marker changed: ino %llu size %lld nlink %lu mode 0%o",
                   (unsigned long long)st.st_ino, (long long)st.st_size,
                   (unsigned long)st.st_nlink, st.st_mode);
        EXPECT_ALL(x, ts_eq(st.st_mtim, m->st_mtim) && ts_eq(st.st_ctim, m->st_ctim),
                   "marker modified (mtime/ctime moved)");
        EXPECT_ALL(x, ts_eq(st.st_atim, m->st_atim), "marker was read (atime moved)");
    }
    list_dir(entries, sizeof(entries));
    EXPECT_ALL(x, !strcmp(entries, s->entries), "entries next to the share: \"%s\", were \"%s\"",
               entries, s->entries);
    EXPECT_ALL(x, count_entries(outside_path) == 0, "%s is no longer empty", outside_path);
}

/* ---- the daemon process ---- */

/* The process that serves: sandboxes fork, the server is the leaf. */
static pid_t serving_pid(void)
{
    return H.dmn ? vuf_daemon_serving_pid(H.dmn) : -1;
}

int hc_daemon_fds(void)
{
    pid_t pid = serving_pid();
    char path[64];
    if (pid <= 0) {
        return -1;
    }
    snprintf(path, sizeof(path), "/proc/%d/fd", (int)pid);
    return count_entries(path);
}

/*
 * The harness's start with a twist: without FUSE_INIT (HC_NO_INIT),
 * stopping after feature negotiation (HC_NEGOTIATE: cases that misconfigure
 * rings before they exist), or with -o posix_lock (HC_POSIX_LOCK: lock
 * requests reach the lock code instead of an ENOSYS stub).  Same daemon
 * command line as harness_start otherwise (CFG holds the selection);
 * harness_stop cleans up.
 */
static int start_custom(const struct vuf_opts *o, unsigned flags)
{
    int ret;
    memset(&H, 0, sizeof(H));
    H.daemon = CFG.daemon;
    H.pool = CFG.pool;
    H.queues = CFG.queues;
    H.use_fd = CFG.use_fd;
    H.upstream = CFG.upstream;
    snprintf(H.dir, sizeof(H.dir), "/tmp/vufront-test.XXXXXX");
    if (!mkdtemp(H.dir)) {
        H.dir[0] = '\0';
        return T_FAIL;
    }
    snprintf(H.share, sizeof(H.share), "%s/share", H.dir);
    snprintf(H.sock, sizeof(H.sock), "%s/vhost.sock", H.dir);
    snprintf(H.log, sizeof(H.log), "%s/daemon.log", H.dir);
    if (mkdir(H.share, 0755) < 0) {
        return T_FAIL;
    }
    char sockarg[320], srcarg[320], poolarg[64];
    snprintf(sockarg, sizeof(sockarg), "--socket-path=%s", H.sock);
    snprintf(srcarg, sizeof(srcarg), "source=%s", H.share);
    snprintf(poolarg, sizeof(poolarg), "--thread-pool-size=%u", H.pool);
    const char *args[16];
    unsigned n = 0;
    args[n++] = H.daemon;
    if (!H.use_fd) {
        args[n++] = sockarg;
    }
    args[n++] = "-o";
    args[n++] = srcarg;
    args[n++] = "-o";
    args[n++] = "cache=auto";
    args[n++] = poolarg;
    if (flags & HC_POSIX_LOCK) {
        args[n++] = "-o";
        args[n++] = "posix_lock";
    }
    args[n] = NULL;
    /* as harness_start: upstream's seccomp filter vs glibc arenas */
    const char *env[] = { "MALLOC_ARENA_MAX=8", NULL };
    struct vuf_spawn_opts so = {
        .argv = args,
        .env = (H.upstream && H.pool) ? env : NULL,
        .mode = !H.use_fd ? VUF_SPAWN_SOCKET_PATH
                : H.upstream ? VUF_SPAWN_FD_LISTEN : VUF_SPAWN_FD_CONNECTED,
        .log_path = H.log,
    };
    ret = vuf_daemon_spawn(&so, &H.dmn);
    if (ret < 0) {
        fprintf(stderr, "spawn %s: %s\n", H.daemon, strerror(-ret));
        return T_FAIL;
    }
    struct vuf_opts vo = *o;
    vo.num_request_queues = H.queues;
    ret = vuf_dev_new(vuf_daemon_take_fd(H.dmn), &vo, &H.dev);
    if (ret < 0) {
        return T_FAIL;
    }
    ret = (flags & HC_NEGOTIATE) ? vuf_dev_negotiate(H.dev) : vuf_dev_start(H.dev);
    if (ret < 0) {
        fprintf(stderr, "device start: %s\n", strerror(-ret));
        return T_FAIL;
    }
    if (fc_new(H.dev, &H.c) < 0) {
        return T_FAIL;
    }
    H.hiprio = fc_chan_get(H.c, 0);
    H.req = fc_chan_get(H.c, 1);
    if (!(flags & (HC_NO_INIT | HC_NEGOTIATE))) {
        ret = fc_init(H.req, NULL, &H.init);
        if (ret < 0) {
            fprintf(stderr, "FUSE_INIT: %s\n", strerror(-ret));
            return T_FAIL;
        }
    }
    return T_PASS;
}

static int rm_one(const char *path, const struct stat *st, int flag, struct FTW *ftw)
{
    (void)st;
    (void)flag;
    (void)ftw;
    remove(path);
    return 0;
}

static const char *const outcome_names[] = {
    [O_REPLIED] = "replied",
    [O_QUEUE_BROKEN] = "queue broken, other queue serving",
    [O_DISCONNECTED] = "disconnected",
    [O_PROBE_ERROR] = "alive, probe answered an error",
    [O_HUNG] = "HUNG",
};

static const char *arg_value(int argc, char **argv, const char *opt, const char *env)
{
    for (int i = 1; i < argc; i++) {
        if (!strcmp(argv[i], opt) && i + 1 < argc) {
            return argv[i + 1];
        }
    }
    const char *v = getenv(env);
    return v && *v ? v : NULL;
}

int main(int argc, char **argv)
{
    const char *only = arg_value(argc, argv, "--only", "VUF_HOSTILE_ONLY");
    const char *tv = getenv("VUF_HOSTILE_TIMEOUT_MS");
    if (tv && atoi(tv) > 0) {
        T_MS = atoi(tv);
    }
    /* Keep each case's directory until its log was scanned. */
    bool keep = getenv("VUF_KEEP") != NULL;
    setenv("VUF_KEEP", "1", 1);
    setvbuf(stdout, NULL, _IOLBF, 0);

    /* Preflight: the daemon runs and serves; records the selection. */
    struct vuf_opts o0 = { .event_idx = true, .mem_regions = 2, .timeout_ms = 5000 };
    int rc = harness_start(&H, argc, argv, &o0);
    if (rc != T_PASS) {
        return rc;
    }
    CFG = H;
    CFG.dmn = NULL;
    CFG.dev = NULL;
    CFG.c = NULL;
    if (harness_stop(&H) != T_PASS) {
        fprintf(stderr, "preflight: the daemon did not stop cleanly\n");
        return T_FAIL;
    }
    if (!keep) {
        nftw(H.dir, rm_one, 16, FTW_DEPTH | FTW_PHYS);
    }
    /*
     * meson sets MALLOC_PERTURB_ to catch heap misuse in the code under
     * test.  Upstream is the reference, not under test, and with it a
     * READDIR of 4 GiB makes upstream touch a 4 GiB calloc (lo_do_readdir
     * allocates the guest's size) for ~20 s: its daemons run without it.
     */
    if (CFG.upstream) {
        unsetenv("MALLOC_PERTURB_");
    }
    printf("daemon %s (%s), pool %u, %u request queue(s), step timeout %d ms\n",
           CFG.daemon, CFG.upstream ? "upstream: disconnect accepted" : "ours: strict",
           CFG.pool, CFG.queues, T_MS);

    static const struct {
        const struct hcase *cases;
        const unsigned *n;
    } tables[] = {
        { hostile_ring_cases, &hostile_ring_ncases },
        { hostile_fuse_cases, &hostile_fuse_ncases },
        { hostile_vhost_cases, &hostile_vhost_ncases },
    };
    unsigned counts[O_HUNG + 1] = { 0 };
    unsigned ran = 0, failed = 0, no = 0;
    uint64_t t_start = vuf_now_ns();

    for (unsigned t = 0; t < sizeof(tables) / sizeof(tables[0]); t++) {
        for (unsigned k = 0; k < *tables[t].n; k++) {
            const struct hcase *c = &tables[t].cases[k];
            no++;
            if (only && !strstr(c->name, only)) {
                continue;
            }
            struct hctx x = { .c = c };
            struct vuf_opts o = {
                .indirect_desc = !(c->flags & HC_NO_INDIRECT),
                .event_idx = true,
                .mem_regions = 2,
                .timeout_ms = T_MS,
            };
            uint64_t t0 = vuf_now_ns();
            if (c->flags & (HC_NO_INIT | HC_NEGOTIATE | HC_POSIX_LOCK)) {
                rc = start_custom(&o, c->flags);
            } else {
                rc = harness_start(&H, argc, argv, &o);
            }
            ran++;
            struct host_snap snap;
            if (rc == T_PASS && host_prepare(&snap) < 0) {
                rc = T_FAIL;
            }
            if (rc != T_PASS) {
                printf("%3u %-64s SETUP FAILED\n", no, c->name);
                failed++;
                H.allow_exit_failure = true;
                harness_stop(&H);
                if (!keep && H.dir[0]) {
                    nftw(H.dir, rm_one, 16, FTW_DEPTH | FTW_PHYS);
                }
                continue;
            }
            H.allow_exit_failure = H.upstream;

            enum outcome out = c->run(&x);
            host_check(&x, &snap);

            int tf = t_failures;
            int stop_rc = harness_stop(&H);
            t_failures = tf;
            if (ours()) {
                EXPECT_OURS(&x, stop_rc == T_PASS,
                            "no clean exit after disconnect, or protocol violations");
                EXPECT_OURS(&x, !harness_log_has_sanitizer_report(&H), "sanitizer report in the log");
            }
            bool ok = !x.failures;
            switch (out) {
            case O_REPLIED:
            case O_QUEUE_BROKEN:
                break;
            case O_DISCONNECTED:
            case O_PROBE_ERROR:
                ok = ok && H.upstream;
                break;
            case O_HUNG:
                ok = false;
                break;
            }
            counts[out]++;
            printf("%3u %-64s %-34s %s%s [%llu ms]\n", no, c->name, outcome_names[out],
                   x.detail, ok ? "" : "  <== FAIL",
                   (unsigned long long)((vuf_now_ns() - t0) / 1000000));
            if (!ok) {
                failed++;
                harness_dump_log(&H);
            }
            if (!keep && H.dir[0]) {
                nftw(H.dir, rm_one, 16, FTW_DEPTH | FTW_PHYS);
            }
        }
    }
    printf("%u cases in %.1f s: %u replied, %u queue broken, %u disconnected, "
           "%u probe error, %u hung; %u failed\n",
           ran, (double)(vuf_now_ns() - t_start) / 1e9, counts[O_REPLIED],
           counts[O_QUEUE_BROKEN], counts[O_DISCONNECTED], counts[O_PROBE_ERROR],
           counts[O_HUNG], failed);
    return failed ? T_FAIL : T_PASS;
}
