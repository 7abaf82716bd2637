/* SPDX-License-Identifier: GPL-2.0-or-later */
/*
 * Counter accuracy end to end: our daemon binary (sandbox, seccomp,
 * --stats=on, --control-socket) driven by the userspace frontend over 2
 * request queues, inline or pool (--pool N). Exactly 100 GETATTR, 50 WRITE
 * of 4096 bytes, 30 READ of 4096 bytes and 7 LOOKUP of missing names go
 * out; the control socket's "stats" snapshot must show exactly those
 * counts per queue x opcode in the queue's mode, the bytes in/out the
 * request layout implies, 7 errors on LOOKUP and none elsewhere,
 * histograms holding every sample, phase sums adding up to the total, and
 * a push accounted for every request; "stats reset" zeroes it all.
 *
 * Only our daemon has the control socket: exits 77 for upstream.
 * Arguments: --daemon PATH ($VUF_DAEMON), --pool N ($VUF_POOL).
 */
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "fuse_client.h"
#include "json_mini.h"
#include "vufront.h"

#define NREQQ 2
#define N_GETATTR 100
#define N_WRITE 50
#define N_READ 30
#define N_LOOKUP_MISS 7
#define BLK 4096
#define WAIT_MS 10000

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

static const char *arg_or_env(int argc, char **argv, const char *opt,
                              const char *env)
{
    size_t n = strlen(opt);

    for (int i = 1; i < argc; i++) {
        if (!strcmp(argv[i], opt) && i + 1 < argc)
            return argv[i + 1];
        if (!strncmp(argv[i], opt, n) && argv[i][n] == '=')
            return argv[i] + n + 1;
    }
    return getenv(env);
}

/* ---- control socket client ---- */

static int ctl_connect(const char *path)
{
    struct sockaddr_un sa = { .sun_family = AF_UNIX };
    int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);

    if (fd < 0)
        return -errno;
    snprintf(sa.sun_path, sizeof(sa.sun_path), "%s", path);
    if (connect(fd, (struct sockaddr *)&sa, sizeof(sa)) < 0) {
        int e = errno;

        close(fd);
        return -e;
    }
    return fd;
}

/* Send @cmd, return the parsed one-line answer (NULL on any failure). */
static struct jm *ctl_cmd(const char *path, const char *cmd)
{
    char line[256], err[128];
    size_t len = 0, cap = 65536;
    char *buf = malloc(cap);
    struct jm *v = NULL;
    int fd = ctl_connect(path);

    if (fd < 0 || !buf) {
        fprintf(stderr, "control socket %s: %s\n", path, strerror(-fd));
        goto out;
    }
    snprintf(line, sizeof(line), "%s\n", cmd);
    if (write(fd, line, strlen(line)) != (ssize_t)strlen(line))
        goto out;
    for (;;) {
        struct pollfd pfd = { .fd = fd, .events = POLLIN };
        ssize_t n;
        char *nl;

        if (poll(&pfd, 1, WAIT_MS) != 1)
            goto out;
        if (len + 1 >= cap) {
            char *nb = realloc(buf, cap * 2);

            if (!nb)
                goto out;
            buf = nb;
            cap *= 2;
        }
        n = read(fd, buf + len, cap - len - 1);
        if (n <= 0)
            goto out;
        len += (size_t)n;
        buf[len] = '\0';
        nl = memchr(buf, '\n', len);
        if (nl) {
            v = jm_parse(buf, (size_t)(nl - buf), err, sizeof(err));
            if (!v)
                fprintf(stderr, "answer to '%s' is not JSON: %s\n", cmd, err);
            break;
        }
    }
out:
    if (fd >= 0)
        close(fd);
    free(buf);
    return v;
}

/* The snapshot inside a "stats" answer; *@owner must be jm_free'd. */
static const struct jm *stats_snapshot(const char *path, struct jm **owner)
{
    struct jm *v = ctl_cmd(path, "stats");

    *owner = v;
    if (!v || !jm_bool(jm_get(v, "ok"), false))
        return NULL;
    return jm_get(v, "stats");
}

static const struct jm *find_op(const struct jm *q, const char *opcode)
{
    const struct jm *ops = jm_get(q, "ops");

    for (size_t i = 0; i < jm_count(ops); i++) {
        const struct jm *op = jm_at(ops, i);

        if (!strcmp(jm_str(jm_get(op, "opcode"), ""), opcode))
            return op;
    }
    return NULL;
}

static uint64_t queue_requests(const struct jm *q)
{
    const struct jm *ops = jm_get(q, "ops");
    uint64_t n = 0;

    for (size_t i = 0; i < jm_count(ops); i++)
        n += jm_u64(jm_get(jm_at(ops, i), "count"), 0);
    return n;
}

static void check_op(const struct jm *q, const char *opcode, const char *mode,
                     uint64_t count, uint64_t errors, uint64_t bytes_in,
                     uint64_t bytes_out)
{
    static const char *const phases[] = { "wait", "service", "complete",
                                          "total" };
    const struct jm *op = find_op(q, opcode);
    uint64_t parts = 0;

    if (!op) {
        CHECK(0, "%s missing", opcode);
        return;
    }
    CHECK(!strcmp(jm_str(jm_get(op, "mode"), ""), mode), "%s ran %s, not %s",
          opcode, jm_str(jm_get(op, "mode"), "?"), mode);
    CHECK(jm_u64(jm_get(op, "count"), 0) == count, "%s: count %" PRIu64
          " != %" PRIu64, opcode, jm_u64(jm_get(op, "count"), 0), count);
    CHECK(jm_u64(jm_get(op, "errors"), 0) == errors, "%s: errors %" PRIu64
          " != %" PRIu64, opcode, jm_u64(jm_get(op, "errors"), 0), errors);
    CHECK(jm_u64(jm_get(op, "bytes_in"), 0) == bytes_in, "%s: bytes_in %"
          PRIu64 " != %" PRIu64, opcode, jm_u64(jm_get(op, "bytes_in"), 0),
          bytes_in);
    CHECK(jm_u64(jm_get(op, "bytes_out"), 0) == bytes_out, "%s: bytes_out %"
          PRIu64 " != %" PRIu64, opcode, jm_u64(jm_get(op, "bytes_out"), 0),
          bytes_out);
    for (size_t i = 0; i < 4; i++) {
        const struct jm *h = jm_get(op, phases[i]);
        const struct jm *bk = jm_get(h, "buckets");
        uint64_t n = 0;

        for (size_t b = 0; b < jm_count(bk); b++)
            n += jm_u64(jm_at(jm_at(bk, b), 1), 0);
        CHECK(jm_u64(jm_get(h, "count"), 0) == count && n == count,
              "%s %s: histogram holds %" PRIu64 "/%" PRIu64 " of %" PRIu64,
              opcode, phases[i], jm_u64(jm_get(h, "count"), 0), n, count);
        if (i < 3)
            parts += jm_u64(jm_get(h, "sum_ns"), 0);
    }
    CHECK(parts == jm_u64(jm_path(op, "total.sum_ns"), 1),
          "%s: wait+service+complete %" PRIu64 " != total %" PRIu64, opcode,
          parts, jm_u64(jm_path(op, "total.sum_ns"), 1));
}

static void workload(fc *c)
{
    fc_chan *q1 = fc_chan_get(c, 1), *q2 = fc_chan_get(c, 2);
    static uint8_t buf[BLK];
    struct fuse_entry_out e;
    struct fuse_open_out o;
    struct fuse_attr_out a;
    int ret;

    for (unsigned int i = 0; i < N_GETATTR; i++) {
        ret = fc_getattr(q1, FUSE_ROOT_ID, &a);
        CHECK(ret == 0, "GETATTR: %d", ret);
    }
    ret = fc_create(q1, FUSE_ROOT_ID, "data", O_RDWR, 0644, &e, &o);
    CHECK(ret == 0, "CREATE: %d", ret);
    for (unsigned int i = 0; i < N_WRITE; i++) {
        memset(buf, (int)i, sizeof(buf));
        ret = (int)fc_write(q1, e.nodeid, o.fh, (uint64_t)i * BLK, buf, BLK);
        CHECK(ret == BLK, "WRITE: %d", ret);
    }
    for (unsigned int i = 0; i < N_READ; i++) {
        ret = (int)fc_read(q2, e.nodeid, o.fh, (uint64_t)(i % N_WRITE) * BLK,
                           buf, BLK);
        CHECK(ret == BLK && buf[0] == (uint8_t)(i % N_WRITE), "READ: %d", ret);
    }
    for (unsigned int i = 0; i < N_LOOKUP_MISS; i++) {
        char name[16];

        snprintf(name, sizeof(name), "miss%u", i);
        ret = fc_lookup(q2, FUSE_ROOT_ID, name, &e);
        CHECK(ret == -ENOENT, "LOOKUP %s: %d", name, ret);
    }
}

int main(int argc, char **argv)
{
    const char *daemon = arg_or_env(argc, argv, "--daemon", "VUF_DAEMON");
    const char *pv = arg_or_env(argc, argv, "--pool", "VUF_POOL");
    unsigned int pool = pv ? (unsigned int)atoi(pv) : 0;
    const char *mode = pool ? "pool" : "inline";
    const uint64_t hdr = sizeof(struct fuse_in_header);
    const uint64_t ohdr = sizeof(struct fuse_out_header);
    char dir[] = "/tmp/vfs-counters-fe.XXXXXX";
    char share[64], vsock[96], csock[64], logp[64], poolarg[40], src[96];
    char ctlarg[96], cmd[128];
    struct vuf_opts vo = { .num_request_queues = NREQQ, .event_idx = true,
                           .mem_size = 64u << 20 };
    const struct jm *s, *q;
    vuf_daemon *dmn = NULL;
    vuf_dev *dev = NULL;
    struct jm *v = NULL;
    uint64_t lookup_in = 0;
    fc *c = NULL;
    int ret, status = 0;

    if (!daemon || strstr(daemon, "/qemu/")) {
        fprintf(stderr, "SKIP: needs our daemon (--daemon PATH)\n");
        return 77;
    }
    if (access(daemon, X_OK) != 0) {
        fprintf(stderr, "SKIP: %s not executable\n", daemon);
        return 77;
    }
    if (!mkdtemp(dir)) {
        perror("mkdtemp");
        return 1;
    }
    snprintf(share, sizeof(share), "%s/share", dir);
    snprintf(vsock, sizeof(vsock), "--socket-path=%s/vhost.sock", dir);
    snprintf(csock, sizeof(csock), "%s/ctl.sock", dir);
    snprintf(ctlarg, sizeof(ctlarg), "--control-socket=%s", csock);
    snprintf(logp, sizeof(logp), "%s/daemon.log", dir);
    snprintf(poolarg, sizeof(poolarg), "--thread-pool-size=%u", pool);
    snprintf(src, sizeof(src), "source=%s", share);
    if (mkdir(share, 0755) < 0) {
        perror("mkdir");
        return 1;
    }
    {
        /* cache=none: a missing name is ENOENT, not a cached negative entry */
        const char *args[] = { daemon, vsock, "-o", src, "-o", "cache=none",
                               poolarg, "--stats=on", ctlarg, NULL };
        struct vuf_spawn_opts so = { .argv = args, .log_path = logp,
                                     .mode = VUF_SPAWN_SOCKET_PATH };

        ret = vuf_daemon_spawn(&so, &dmn);
    }
    if (ret < 0) {
        fprintf(stderr, "spawn: %s\n", strerror(-ret));
        failures++;
        goto out;
    }
    fprintf(stderr, "daemon: %s\n", vuf_daemon_cmdline(dmn));
    ret = vuf_dev_new(vuf_daemon_take_fd(dmn), &vo, &dev);
    if (ret == 0)
        ret = vuf_dev_start(dev);
    if (ret == 0)
        ret = fc_new(dev, &c);
    if (ret == 0)
        ret = fc_init(fc_chan_get(c, 1), NULL, NULL);
    if (ret < 0) {
        fprintf(stderr, "start: %s\n", strerror(-ret));
        failures++;
        goto out;
    }

    workload(c);

    /*
     * A request is recorded just after its reply is pushed, so the last
     * one may still be on its way into the counters when the frontend
     * sees the reply: ask until the totals arrive (never past them).
     */
    for (int i = 0; i < 200; i++) {
        struct timespec ts = { 0, 10 * 1000 * 1000 };

        jm_free(v);
        s = stats_snapshot(csock, &v);
        if (s && queue_requests(jm_path(s, "queues.1")) >=
                 2 + N_GETATTR + N_WRITE &&
            queue_requests(jm_path(s, "queues.2")) >= N_READ + N_LOOKUP_MISS)
            break;
        nanosleep(&ts, NULL);
    }
    if (!s) {
        CHECK(0, "no stats snapshot");
        goto out;
    }
    CHECK(jm_u64(jm_get(s, "version"), 0) == 1 &&
          !strcmp(jm_str(jm_get(s, "schema"), ""), "virtiofsd-stats") &&
          jm_bool(jm_get(s, "stats_enabled"), false), "schema");
    CHECK(jm_count(jm_get(s, "queues")) >= 1 + NREQQ, "queues");

    q = jm_path(s, "queues.1");
    check_op(q, "GETATTR", mode, N_GETATTR, 0,
             N_GETATTR * (hdr + sizeof(struct fuse_getattr_in)),
             N_GETATTR * (ohdr + sizeof(struct fuse_attr_out)));
    check_op(q, "WRITE", mode, N_WRITE, 0,
             N_WRITE * (hdr + sizeof(struct fuse_write_in) + BLK),
             N_WRITE * (ohdr + sizeof(struct fuse_write_out)));
    CHECK(jm_u64(jm_get(find_op(q, "INIT"), "count"), 0) == 1 &&
          jm_u64(jm_get(find_op(q, "CREATE"), "count"), 0) == 1 &&
          queue_requests(q) == 2 + N_GETATTR + N_WRITE, "queue 1 totals");
    q = jm_path(s, "queues.2");
    for (unsigned int i = 0; i < N_LOOKUP_MISS; i++)
        lookup_in += hdr + (uint64_t)snprintf(cmd, sizeof(cmd), "miss%u", i) + 1;
    check_op(q, "READ", mode, N_READ, 0,
             N_READ * (hdr + sizeof(struct fuse_read_in)),
             N_READ * (ohdr + BLK));
    check_op(q, "LOOKUP", mode, N_LOOKUP_MISS, N_LOOKUP_MISS, lookup_in,
             N_LOOKUP_MISS * ohdr);
    CHECK(queue_requests(q) == N_READ + N_LOOKUP_MISS, "queue 2 totals");
    for (unsigned int i = 1; i <= NREQQ; i++) {
        q = jm_at(jm_get(s, "queues"), i);
        CHECK(jm_u64(jm_get(q, "notify_sent"), 0) +
              jm_u64(jm_get(q, "notify_suppressed"), 0) == queue_requests(q),
              "queue %u: pushes not all accounted", i);
        CHECK(jm_u64(jm_get(q, "kicks"), 0) >= 1 &&
              jm_u64(jm_path(q, "reqs_per_kick.count"), 0) ==
              jm_u64(jm_get(q, "kicks"), 1), "queue %u: kicks", i);
        CHECK(!strcmp(jm_str(jm_get(q, "mode"), ""), mode), "queue %u mode", i);
    }

    /* reset over the socket */
    jm_free(v);
    v = ctl_cmd(csock, "stats reset");
    CHECK(v && jm_bool(jm_get(v, "ok"), false), "stats reset");
    jm_free(v);
    s = stats_snapshot(csock, &v);
    for (unsigned int i = 0; s && i <= NREQQ; i++) {
        q = jm_at(jm_get(s, "queues"), i);
        CHECK(jm_count(jm_get(q, "ops")) == 0 &&
              jm_u64(jm_get(q, "notify_sent"), 9) == 0 &&
              jm_u64(jm_get(q, "kicks"), 9) == 0, "queue %u after reset", i);
    }
    CHECK(s, "stats after reset");

out:
    jm_free(v);
    fc_free(c);
    vuf_dev_free(dev);
    /* the daemon exits when its frontend goes away: cleanly */
    if (dmn) {
        ret = vuf_daemon_wait(dmn, WAIT_MS, &status);
        CHECK(ret == 1 && WIFEXITED(status) && WEXITSTATUS(status) == 0,
              "daemon exit: wait %d status 0x%x", ret, status);
    }
    vuf_daemon_free(dmn);
    if (failures) {
        snprintf(cmd, sizeof(cmd), "cat '%s' >&2", logp);
        if (system(cmd) != 0)
            fprintf(stderr, "(no daemon log)\n");
    }
    snprintf(cmd, sizeof(cmd), "rm -rf '%s'", dir);
    if (system(cmd) != 0)
        fprintf(stderr, "could not remove %s\n", dir);
    if (failures) {
        fprintf(stderr, "%d check(s) failed\n", failures);
        return 1;
    }
    printf("counters (frontend): all checks passed\n");
    return 0;
}
