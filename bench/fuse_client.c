/* SPDX-License-Identifier: GPL-2.0-or-later */
/*
 * fuse_client: FUSE requests over vufront virtqueues.  See fuse_client.h.
 */
#ifndef _GNU_SOURCE
#define _GNU_SOURCE
#endif
#include "fuse_client.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

struct fc_chan {
    fc *c;
    vuf_vq *vq;
    fc_req *done_head, *done_tail;
    struct fc_stats st;
};

struct fc {
    vuf_dev *d;
    unsigned nch;
    fc_chan *ch;
    uint64_t next_unique;   /* atomic; steps of 2 like Linux (bit 0 = interrupt) */
    uint32_t max_write;
    struct fuse_init_out init;
};

int fc_new(vuf_dev *d, fc **out)
{
    fc *c = calloc(1, sizeof(*c));
    if (!c) {
        return -ENOMEM;
    }
    c->d = d;
    c->nch = vuf_dev_num_queues(d);
    c->ch = calloc(c->nch, sizeof(*c->ch));
    if (!c->ch) {
        free(c);
        return -ENOMEM;
    }
    for (unsigned i = 0; i < c->nch; i++) {
        c->ch[i].c = c;
        c->ch[i].vq = vuf_dev_vq(d, i);
    }
    c->next_unique = 2;
    c->max_write = 128 * 1024;
    *out = c;
    return 0;
}

void fc_free(fc *c)
{
    if (!c) {
        return;
    }
    for (unsigned i = 0; i < c->nch; i++) {
        fc_req *r = c->ch[i].done_head;
        while (r) {
            fc_req *n = r->next;
            fc_req_free(r);
            r = n;
        }
    }
    /* Requests still in flight (never answered, or abandoned by a waiter)
     * keep their guest memory: the daemon may still write there, and the
     * memory goes with the device anyway.  Their host side goes now. */
    for (unsigned i = 0; i < c->nch; i++) {
        vuf_vq *q = c->ch[i].vq;
        unsigned n = vuf_vq_size(q);
        void **tok = calloc(n, sizeof(*tok));
        if (!tok) {
            continue;
        }
        n = vuf_vq_inflight_tokens(q, tok, n);
        for (unsigned k = 0; k < n; k++) {
            free(tok[k]);
        }
        free(tok);
    }
    free(c->ch);
    free(c);
}

fc_chan *fc_chan_get(fc *c, unsigned queue)
{
    return queue < c->nch ? &c->ch[queue] : NULL;
}

vuf_dev *fc_dev(fc *c) { return c->d; }
vuf_vq *fc_chan_vq(fc_chan *ch) { return ch->vq; }
uint32_t fc_max_write(fc *c) { return c->max_write; }
unsigned fc_chan_inflight(fc_chan *ch) { return vuf_vq_inflight(ch->vq); }

uint64_t fc_alloc_unique(fc *c)
{
    return __atomic_fetch_add(&c->next_unique, 2, __ATOMIC_RELAXED);
}

uint32_t fc_next_unique(fc *c)
{
    return (uint32_t)__atomic_load_n(&c->next_unique, __ATOMIC_RELAXED);
}

void fc_chan_stats(fc_chan *ch, struct fc_stats *s)
{
    *s = ch->st;
}

void fc_get_stats(fc *c, struct fc_stats *s)
{
    memset(s, 0, sizeof(*s));
    for (unsigned i = 0; i < c->nch; i++) {
        const struct fc_stats *x = &c->ch[i].st;
        s->submitted += x->submitted;
        s->completed += x->completed;
        s->unique_mismatch += x->unique_mismatch;
        s->len_mismatch += x->len_mismatch;
        s->short_reply += x->short_reply;
        s->bogus_used += x->bogus_used;
        s->bad_error += x->bad_error;
        s->timeouts += x->timeouts;
    }
}

void fc_req_free(fc_req *r)
{
    if (!r) {
        return;
    }
    if (r->buf_gpa) {
        vuf_mem_free(r->ch->c->d, r->buf_gpa, r->buf_size);
    }
    free(r);
}

uint32_t fc_req_out_len(const fc_req *r)
{
    if (r->reply_len <= sizeof(struct fuse_out_header)) {
        return 0;
    }
    uint32_t n = r->reply_len - (uint32_t)sizeof(struct fuse_out_header);
    return n < r->out_cap ? n : r->out_cap;
}

static inline size_t align8(size_t x)
{
    return (x + 7) & ~(size_t)7;
}

int fc_submit(fc_chan *ch, const struct fc_call *call, fc_req **out)
{
    fc *c = ch->c;
    size_t args = (size_t)call->arg_len + call->arg2_len + call->arg3_len;
    size_t in_size = sizeof(struct fuse_in_header) + args;
    size_t out_off = (in_size + 63) & ~(size_t)63;
    size_t out_size = call->no_reply ? 0 : sizeof(struct fuse_out_header) + call->out_len;
    size_t total = out_off + out_size;
    uint32_t data_rd = 0, data_wr = 0;

    if (call->n_data_rd > 64 || call->n_data_wr > 64) {
        return -EINVAL;
    }
    for (unsigned i = 0; i < call->n_data_rd; i++) {
        data_rd += call->data_rd[i].len;
    }
    for (unsigned i = 0; i < call->n_data_wr; i++) {
        data_wr += call->data_wr[i].len;
    }
    fc_req *r = calloc(1, sizeof(*r));
    if (!r) {
        return -ENOMEM;
    }
    r->ch = ch;
    r->opcode = call->opcode;
    r->user = call->user;
    r->no_reply = call->no_reply;
    r->buf_size = total;
    r->buf_gpa = vuf_mem_alloc(c->d, total);
    uint8_t *buf = r->buf_gpa ? vuf_mem_ptr(c->d, r->buf_gpa, total) : NULL;
    if (!buf) {
        free(r);
        return -ENOMEM;
    }
    r->unique = fc_alloc_unique(c);
    r->inh = (struct fuse_in_header *)buf;
    *r->inh = (struct fuse_in_header){
        .len = call->len_override ? call->len_override : (uint32_t)(in_size + data_rd),
        .opcode = call->opcode,
        .unique = r->unique,
        .nodeid = call->nodeid,
        .uid = call->uid,
        .gid = call->gid,
        .pid = call->pid,
    };
    uint8_t *p = buf + sizeof(struct fuse_in_header);
    if (call->arg_len) {
        memcpy(p, call->arg, call->arg_len);
        p += call->arg_len;
    }
    if (call->arg2_len) {
        memcpy(p, call->arg2, call->arg2_len);
        p += call->arg2_len;
    }
    if (call->arg3_len) {
        memcpy(p, call->arg3, call->arg3_len);
    }
    if (!call->no_reply) {
        r->outh = (struct fuse_out_header *)(buf + out_off);
        memset(r->outh, 0, sizeof(*r->outh));
        r->out = buf + out_off + sizeof(struct fuse_out_header);
        r->out_cap = call->out_len;
    }

    struct vuf_seg rd[2 + 64], wr[2 + 64];
    unsigned nrd = 0, nwr = 0;
    if (call->one_segment || !args) {
        rd[nrd++] = (struct vuf_seg){ r->buf_gpa, (uint32_t)in_size };
    } else {
        rd[nrd++] = (struct vuf_seg){ r->buf_gpa, sizeof(struct fuse_in_header) };
        rd[nrd++] = (struct vuf_seg){ r->buf_gpa + sizeof(struct fuse_in_header),
                                      (uint32_t)args };
    }
    for (unsigned i = 0; i < call->n_data_rd; i++) {
        rd[nrd++] = call->data_rd[i];
    }
    if (!call->no_reply) {
        uint64_t og = r->buf_gpa + out_off;
        if (call->one_segment || !call->out_len) {
            wr[nwr++] = (struct vuf_seg){ og, (uint32_t)out_size };
        } else {
            wr[nwr++] = (struct vuf_seg){ og, sizeof(struct fuse_out_header) };
            wr[nwr++] = (struct vuf_seg){ og + sizeof(struct fuse_out_header), call->out_len };
        }
        for (unsigned i = 0; i < call->n_data_wr; i++) {
            wr[nwr++] = call->data_wr[i];
        }
    }
    r->wr_total = (uint32_t)out_size + data_wr;
    int head = vuf_vq_add(ch->vq, rd, nrd, wr, nwr, call->indirect, r);
    if (head < 0) {
        fc_req_free(r);
        return head;
    }
    r->head = head;
    r->t_submit = vuf_now_ns();
    ch->st.submitted++;
    if (!call->no_kick) {
        vuf_vq_kick(ch->vq);
    }
    *out = r;
    return 0;
}

int fc_submit_raw(fc_chan *ch, const struct vuf_raw_desc *d, unsigned n, unsigned flags,
                  uint64_t expect_unique, uint64_t out_gpa, fc_req **out)
{
    fc_req *r = calloc(1, sizeof(*r));
    if (!r) {
        return -ENOMEM;
    }
    r->ch = ch;
    r->raw = true;
    r->unique = expect_unique;
    if (expect_unique) {
        r->outh = vuf_mem_ptr(ch->c->d, out_gpa, sizeof(struct fuse_out_header));
        if (!r->outh) {
            free(r);
            return -EINVAL;
        }
    }
    int head = vuf_vq_add_raw(ch->vq, d, n, flags, r);
    if (head < 0) {
        free(r);
        return head;
    }
    r->head = head;
    r->t_submit = vuf_now_ns();
    ch->st.submitted++;
    vuf_vq_kick(ch->vq);
    *out = r;
    return 0;
}

int fc_chan_kick(fc_chan *ch)
{
    return vuf_vq_kick(ch->vq);
}

static void check_reply(fc_chan *ch, fc_req *r)
{
    if (r->no_reply || (r->raw && !r->outh)) {
        if (r->no_reply && r->used_len != 0) {
            ch->st.len_mismatch++;
        }
        return;
    }
    if (r->used_len < sizeof(struct fuse_out_header)) {
        ch->st.short_reply++;
        r->error = -EPROTO;
        return;
    }
    struct fuse_out_header h;
    memcpy(&h, r->outh, sizeof(h));   /* one snapshot: guest memory is shared */
    r->reply_len = h.len;
    r->error = h.error;
    if (h.unique != r->unique) {
        ch->st.unique_mismatch++;
        fprintf(stderr, "fuse_client: reply unique %llu for request %llu (opcode %u)\n",
                (unsigned long long)h.unique, (unsigned long long)r->unique, r->opcode);
        r->error = -EPROTO;
    }
    if (h.len != r->used_len) {
        ch->st.len_mismatch++;
        fprintf(stderr, "fuse_client: used len %u != out header len %u (opcode %u)\n",
                r->used_len, h.len, r->opcode);
        if (!r->error) {
            r->error = -EPROTO;
        }
    }
    if (h.error > 0 || h.error < -4095) {
        ch->st.bad_error++;
        r->error = -EPROTO;
    }
}

int fc_chan_reap(fc_chan *ch)
{
    int n = 0;
    for (;;) {
        void *tok;
        uint32_t len;
        int ret = vuf_vq_pop_used(ch->vq, &tok, &len);
        if (ret == 0) {
            break;
        }
        if (ret < 0) {
            ch->st.bogus_used++;
            fprintf(stderr, "fuse_client: queue %u: used id %u is not in flight\n",
                    vuf_vq_index(ch->vq), (unsigned)(uintptr_t)tok);
            continue;
        }
        fc_req *r = tok;
        r->t_done = vuf_now_ns();
        r->used_len = len;
        r->done = true;
        ch->st.completed++;
        check_reply(ch, r);
        n++;
        if (r->abandoned) {
            fc_req_free(r);
        } else if (!r->sync) {
            r->next = NULL;
            if (ch->done_tail) {
                ch->done_tail->next = r;
            } else {
                ch->done_head = r;
            }
            ch->done_tail = r;
        }
    }
    return n;
}

int fc_chan_poll(fc_chan *ch, int timeout_ms, fc_req **out, unsigned max)
{
    fc_chan_reap(ch);
    if (!ch->done_head && timeout_ms > 0) {
        uint64_t deadline = vuf_now_ns() + (uint64_t)timeout_ms * 1000000ull;
        while (!ch->done_head) {
            uint64_t now = vuf_now_ns();
            if (now >= deadline) {
                break;
            }
            int w = vuf_vq_wait(ch->vq, (int)((deadline - now + 999999) / 1000000));
            if (w < 0) {
                return w;
            }
            fc_chan_reap(ch);
            if (w == 0) {
                break;
            }
        }
    }
    unsigned n = 0;
    while (n < max && ch->done_head) {
        fc_req *r = ch->done_head;
        ch->done_head = r->next;
        if (!ch->done_head) {
            ch->done_tail = NULL;
        }
        r->next = NULL;
        out[n++] = r;
    }
    return (int)n;
}

int fc_wait(fc_req *r, int timeout_ms)
{
    fc_chan *ch = r->ch;
    uint64_t deadline = vuf_now_ns() + (uint64_t)timeout_ms * 1000000ull;
    r->sync = true;
    fc_chan_reap(ch);
    if (r->done) {
        /* It may already sit on the done list if it completed before the
         * waiter claimed it: take it off, or fc_free() frees it twice. */
        fc_req **pp = &ch->done_head, *prev = NULL;
        while (*pp) {
            if (*pp == r) {
                *pp = r->next;
                if (ch->done_tail == r) {
                    ch->done_tail = prev;
                }
                break;
            }
            prev = *pp;
            pp = &(*pp)->next;
        }
    }
    while (!r->done) {
        uint64_t now = vuf_now_ns();
        if (now >= deadline) {
            r->abandoned = true;
            ch->st.timeouts++;
            return -ETIMEDOUT;
        }
        int w = vuf_vq_wait(ch->vq, (int)((deadline - now + 999999) / 1000000));
        if (w < 0) {
            r->abandoned = true;
            return w;
        }
        fc_chan_reap(ch);
    }
    return 0;
}

int fc_call_sync(fc_chan *ch, const struct fc_call *call, void *out, uint32_t out_size,
                 uint32_t *out_len)
{
    fc_req *r;
    struct fc_call cc = *call;
    cc.no_kick = false;
    int ret = fc_submit(ch, &cc, &r);
    if (ret < 0) {
        return ret;
    }
    r->sync = true;
    ret = fc_wait(r, vuf_dev_timeout(ch->c->d));
    if (ret < 0) {
        return ret;   /* abandoned: freed when (if) it completes */
    }
    ret = r->error;
    uint32_t n = fc_req_out_len(r);
    if (out) {
        uint32_t k = n < out_size ? n : out_size;
        memcpy(out, r->out, k);
        if (k < out_size) {
            memset((char *)out + k, 0, out_size - k);
        }
    }
    if (out_len) {
        *out_len = n;
    }
    fc_req_free(r);
    return ret;
}

int fc_generic(fc_chan *ch, uint32_t opcode, uint64_t nodeid, const void *arg,
               uint32_t arg_len, void *out, uint32_t out_size, uint32_t *out_len)
{
    struct fc_call c = {
        .opcode = opcode, .nodeid = nodeid, .arg = arg, .arg_len = arg_len,
        .out_len = out_size,
    };
    return fc_call_sync(ch, &c, out, out_size, out_len);
}

int fc_init(fc_chan *ch, const struct fc_init_opts *o, struct fuse_init_out *out)
{
    struct fc_init_opts def = { 0 };
    if (!o) {
        o = &def;
    }
    struct fuse_init_in in = {
        .major = o->major ? o->major : FUSE_KERNEL_VERSION,
        .minor = o->minor ? o->minor : FUSE_KERNEL_MINOR_VERSION,
        .max_readahead = o->max_readahead ? o->max_readahead : 128 * 1024,
        .flags = o->flags ? o->flags : FC_DEFAULT_INIT_FLAGS,
        .flags2 = o->flags2,
    };
    struct fuse_init_out io;
    uint32_t n = 0;
    int ret = fc_generic(ch, FUSE_INIT, 0, &in, sizeof(in), &io, sizeof(io), &n);
    if (ret < 0) {
        return ret;
    }
    /* FUSE_COMPAT_22_INIT_OUT_SIZE: anything shorter is not an INIT reply. */
    if (n < 24) {
        return -EPROTO;
    }
    fc *c = ch->c;
    c->init = io;
    uint32_t mw = io.max_write ? io.max_write : 4096;
    if (o->max_write && o->max_write < mw) {
        mw = o->max_write;
    }
    c->max_write = mw;
    if (out) {
        *out = io;
    }
    return 0;
}

static uint32_t name_len(const char *name)
{
    return (uint32_t)strlen(name) + 1;
}

int fc_lookup(fc_chan *ch, uint64_t parent, const char *name, struct fuse_entry_out *e)
{
    struct fc_call c = {
        .opcode = FUSE_LOOKUP, .nodeid = parent, .arg = name, .arg_len = name_len(name),
        .out_len = sizeof(*e),
    };
    return fc_call_sync(ch, &c, e, sizeof(*e), NULL);
}

int fc_getattr(fc_chan *ch, uint64_t nodeid, struct fuse_attr_out *a)
{
    struct fuse_getattr_in in = { 0 };
    return fc_generic(ch, FUSE_GETATTR, nodeid, &in, sizeof(in), a, sizeof(*a), NULL);
}

int fc_setattr(fc_chan *ch, uint64_t nodeid, const struct fuse_setattr_in *in,
               struct fuse_attr_out *a)
{
    struct fuse_attr_out tmp;
    return fc_generic(ch, FUSE_SETATTR, nodeid, in, sizeof(*in), a ? a : &tmp,
                      sizeof(*a), NULL);
}

int fc_open(fc_chan *ch, uint64_t nodeid, uint32_t flags, struct fuse_open_out *o)
{
    struct fuse_open_in in = { .flags = flags };
    return fc_generic(ch, FUSE_OPEN, nodeid, &in, sizeof(in), o, sizeof(*o), NULL);
}

int fc_opendir(fc_chan *ch, uint64_t nodeid, struct fuse_open_out *o)
{
    struct fuse_open_in in = { .flags = 0 };
    return fc_generic(ch, FUSE_OPENDIR, nodeid, &in, sizeof(in), o, sizeof(*o), NULL);
}

int fc_create(fc_chan *ch, uint64_t parent, const char *name, uint32_t flags,
              uint32_t mode, struct fuse_entry_out *e, struct fuse_open_out *o)
{
    struct fuse_create_in in = { .flags = flags, .mode = mode, .umask = 0 };
    struct {
        struct fuse_entry_out e;
        struct fuse_open_out o;
    } rep;
    struct fc_call c = {
        .opcode = FUSE_CREATE, .nodeid = parent, .arg = &in, .arg_len = sizeof(in),
        .arg2 = name, .arg2_len = name_len(name), .out_len = sizeof(rep),
    };
    int ret = fc_call_sync(ch, &c, &rep, sizeof(rep), NULL);
    if (ret == 0) {
        if (e) {
            *e = rep.e;
        }
        if (o) {
            *o = rep.o;
        }
    }
    return ret;
}

ssize_t fc_read(fc_chan *ch, uint64_t nodeid, uint64_t fh, uint64_t off, void *buf,
                uint32_t size)
{
    vuf_dev *d = ch->c->d;
    uint64_t g = vuf_mem_alloc(d, size ? size : 1);
    if (!g) {
        return -ENOMEM;
    }
    struct fuse_read_in in = { .fh = fh, .offset = off, .size = size };
    struct vuf_seg seg = { g, size };
    struct fc_call c = {
        .opcode = FUSE_READ, .nodeid = nodeid, .arg = &in, .arg_len = sizeof(in),
        .data_wr = &seg, .n_data_wr = size ? 1 : 0,
    };
    fc_req *r;
    int ret = fc_submit(ch, &c, &r);
    if (ret < 0) {
        vuf_mem_free(d, g, size);
        return ret;
    }
    ret = fc_wait(r, vuf_dev_timeout(d));
    if (ret < 0) {
        return ret;    /* the buffer leaks with the abandoned request: the daemon may still write it */
    }
    ssize_t res = r->error;
    if (!res) {
        uint32_t n = r->reply_len - (uint32_t)sizeof(struct fuse_out_header);
        if (n > size) {
            res = -EPROTO;
        } else {
            memcpy(buf, vuf_mem_ptr(d, g, size), n);
            res = n;
        }
    }
    fc_req_free(r);
    vuf_mem_free(d, g, size);
    return res;
}

ssize_t fc_write(fc_chan *ch, uint64_t nodeid, uint64_t fh, uint64_t off,
                 const void *buf, uint32_t size)
{
    vuf_dev *d = ch->c->d;
    uint64_t g = vuf_mem_alloc(d, size ? size : 1);
    if (!g) {
        return -ENOMEM;
    }
    memcpy(vuf_mem_ptr(d, g, size), buf, size);
    struct fuse_write_in in = { .fh = fh, .offset = off, .size = size };
    struct vuf_seg seg = { g, size };
    struct fuse_write_out wo;
    struct fc_call c = {
        .opcode = FUSE_WRITE, .nodeid = nodeid, .arg = &in, .arg_len = sizeof(in),
        .data_rd = &seg, .n_data_rd = size ? 1 : 0, .out_len = sizeof(wo),
    };
    int ret = fc_call_sync(ch, &c, &wo, sizeof(wo), NULL);
    if (ret != -ETIMEDOUT) {
        vuf_mem_free(d, g, size);
    }
    return ret < 0 ? ret : (ssize_t)wo.size;
}

int fc_release(fc_chan *ch, uint64_t nodeid, uint64_t fh, uint32_t flags)
{
    struct fuse_release_in in = { .fh = fh, .flags = flags };
    return fc_generic(ch, FUSE_RELEASE, nodeid, &in, sizeof(in), NULL, 0, NULL);
}

int fc_releasedir(fc_chan *ch, uint64_t nodeid, uint64_t fh)
{
    struct fuse_release_in in = { .fh = fh };
    return fc_generic(ch, FUSE_RELEASEDIR, nodeid, &in, sizeof(in), NULL, 0, NULL);
}

int fc_flush(fc_chan *ch, uint64_t nodeid, uint64_t fh)
{
    struct fuse_flush_in in = { .fh = fh };
    return fc_generic(ch, FUSE_FLUSH, nodeid, &in, sizeof(in), NULL, 0, NULL);
}

int fc_fsync(fc_chan *ch, uint64_t nodeid, uint64_t fh, bool datasync)
{
    struct fuse_fsync_in in = { .fh = fh, .fsync_flags = datasync ? 1 : 0 };
    return fc_generic(ch, FUSE_FSYNC, nodeid, &in, sizeof(in), NULL, 0, NULL);
}

int fc_mkdir(fc_chan *ch, uint64_t parent, const char *name, uint32_t mode,
             struct fuse_entry_out *e)
{
    struct fuse_mkdir_in in = { .mode = mode, .umask = 0 };
    struct fc_call c = {
        .opcode = FUSE_MKDIR, .nodeid = parent, .arg = &in, .arg_len = sizeof(in),
        .arg2 = name, .arg2_len = name_len(name), .out_len = sizeof(*e),
    };
    return fc_call_sync(ch, &c, e, sizeof(*e), NULL);
}

int fc_unlink(fc_chan *ch, uint64_t parent, const char *name)
{
    return fc_generic(ch, FUSE_UNLINK, parent, name, name_len(name), NULL, 0, NULL);
}

int fc_rmdir(fc_chan *ch, uint64_t parent, const char *name)
{
    return fc_generic(ch, FUSE_RMDIR, parent, name, name_len(name), NULL, 0, NULL);
}

int fc_rename(fc_chan *ch, uint64_t olddir, const char *oldname, uint64_t newdir,
              const char *newname)
{
    struct fuse_rename_in in = { .newdir = newdir };
    struct fc_call c = {
        .opcode = FUSE_RENAME, .nodeid = olddir, .arg = &in, .arg_len = sizeof(in),
        .arg2 = oldname, .arg2_len = name_len(oldname),
        .arg3 = newname, .arg3_len = name_len(newname),
    };
    return fc_call_sync(ch, &c, NULL, 0, NULL);
}

static ssize_t do_readdir(fc_chan *ch, uint32_t opcode, uint64_t nodeid, uint64_t fh,
                          uint64_t off, void *buf, uint32_t size)
{
    struct fuse_read_in in = { .fh = fh, .offset = off, .size = size };
    uint32_t n = 0;
    struct fc_call c = {
        .opcode = opcode, .nodeid = nodeid, .arg = &in, .arg_len = sizeof(in),
        .out_len = size,
    };
    int ret = fc_call_sync(ch, &c, buf, size, &n);
    return ret < 0 ? ret : (ssize_t)n;
}

ssize_t fc_readdirplus(fc_chan *ch, uint64_t nodeid, uint64_t fh, uint64_t off,
                       void *buf, uint32_t size)
{
    return do_readdir(ch, FUSE_READDIRPLUS, nodeid, fh, off, buf, size);
}

ssize_t fc_readdir(fc_chan *ch, uint64_t nodeid, uint64_t fh, uint64_t off,
                   void *buf, uint32_t size)
{
    return do_readdir(ch, FUSE_READDIR, nodeid, fh, off, buf, size);
}

int fc_statfs(fc_chan *ch, uint64_t nodeid, struct fuse_statfs_out *s)
{
    return fc_generic(ch, FUSE_STATFS, nodeid, NULL, 0, s, sizeof(*s), NULL);
}

static int no_reply_sync(fc_chan *ch, struct fc_call *c)
{
    fc_req *r;
    c->no_reply = true;
    int ret = fc_submit(ch, c, &r);
    if (ret < 0) {
        return ret;
    }
    r->sync = true;
    ret = fc_wait(r, vuf_dev_timeout(ch->c->d));
    if (ret < 0) {
        return ret;
    }
    fc_req_free(r);
    return 0;
}

int fc_forget(fc_chan *ch, uint64_t nodeid, uint64_t nlookup)
{
    struct fuse_forget_in in = { .nlookup = nlookup };
    struct fc_call c = {
        .opcode = FUSE_FORGET, .nodeid = nodeid, .arg = &in, .arg_len = sizeof(in),
    };
    return no_reply_sync(ch, &c);
}

int fc_batch_forget(fc_chan *ch, const struct fuse_forget_one *f, unsigned n)
{
    struct fuse_batch_forget_in in = { .count = n };
    struct fc_call c = {
        .opcode = FUSE_BATCH_FORGET, .arg = &in, .arg_len = sizeof(in),
        .arg2 = f, .arg2_len = (uint32_t)(n * sizeof(*f)),
    };
    return no_reply_sync(ch, &c);
}

int fc_dirent_next(const void *buf, size_t len, size_t *pos, bool plus, struct fc_dirent *e)
{
    const uint8_t *b = buf;
    size_t p = *pos;
    size_t pre = plus ? sizeof(struct fuse_entry_out) : 0;
    if (p >= len) {
        return 0;
    }
    if (len - p < pre + sizeof(struct fuse_dirent)) {
        return -EPROTO;
    }
    struct fuse_dirent de;
    memcpy(&de, b + p + pre, sizeof(de));
    size_t reclen = align8(pre + sizeof(struct fuse_dirent) + de.namelen);
    if (de.namelen == 0 || de.namelen > 1024 || reclen > len - p) {
        return -EPROTO;
    }
    e->ino = de.ino;
    e->off = de.off;
    e->type = de.type;
    e->namelen = de.namelen;
    e->name = (const char *)(b + p + pre + sizeof(struct fuse_dirent));
    e->entry = plus ? (const struct fuse_entry_out *)(b + p) : NULL;
    *pos = p + reclen;
    return 1;
}
