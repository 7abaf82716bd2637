/* SPDX-License-Identifier: GPL-2.0-or-later */
/* A small JSON reader; see json_mini.h. */
#include "json_mini.h"

#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

struct jp {
    const char *s;
    size_t len, pos;
    char *err;
    size_t errlen;
    bool failed;
};

static void jp_fail(struct jp *p, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));

static void jp_fail(struct jp *p, const char *fmt, ...)
{
    char msg[160];
    va_list ap;

    if (p->failed)
        return;
    p->failed = true;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof(msg), fmt, ap);
    va_end(ap);
    if (p->err && p->errlen)
        snprintf(p->err, p->errlen, "JSON: %s at byte %zu", msg, p->pos);
}

static void skip_ws(struct jp *p)
{
    while (p->pos < p->len) {
        char c = p->s[p->pos];

        if (c != ' ' && c != '\t' && c != '\n' && c != '\r')
            break;
        p->pos++;
    }
}

static int peek(const struct jp *p)
{
    return p->pos < p->len ? (unsigned char)p->s[p->pos] : -1;
}

static bool literal(struct jp *p, const char *word)
{
    size_t n = strlen(word);

    if (p->len - p->pos < n || memcmp(p->s + p->pos, word, n)) {
        jp_fail(p, "invalid literal");
        return false;
    }
    p->pos += n;
    return true;
}

static struct jm *new_value(struct jp *p, enum jm_type t)
{
    struct jm *v = calloc(1, sizeof(*v));

    if (!v)
        jp_fail(p, "out of memory");
    else
        v->type = t;
    return v;
}

/* ---- strings ---- */

struct sbuf {
    char *b;
    size_t len, cap;
};

static bool sb_put(struct jp *p, struct sbuf *sb, const char *d, size_t n)
{
    if (sb->len + n + 1 > sb->cap) {
        size_t cap = sb->cap ? sb->cap : 32;
        char *nb;

        while (cap < sb->len + n + 1)
            cap *= 2;
        nb = realloc(sb->b, cap);
        if (!nb) {
            jp_fail(p, "out of memory");
            return false;
        }
        sb->b = nb;
        sb->cap = cap;
    }
    memcpy(sb->b + sb->len, d, n);
    sb->len += n;
    sb->b[sb->len] = '\0';
    return true;
}

static int hex4(struct jp *p)
{
    unsigned int v = 0;

    if (p->len - p->pos < 4) {
        jp_fail(p, "short \\u escape");
        return -1;
    }
    for (int i = 0; i < 4; i++) {
        char c = p->s[p->pos++];

        v <<= 4;
        if (c >= '0' && c <= '9')
            v |= (unsigned int)(c - '0');
        else if (c >= 'a' && c <= 'f')
            v |= (unsigned int)(c - 'a' + 10);
        else if (c >= 'A' && c <= 'F')
            v |= (unsigned int)(c - 'A' + 10);
        else {
            jp_fail(p, "bad \\u escape");
            return -1;
        }
    }
    return (int)v;
}

static bool put_utf8(struct jp *p, struct sbuf *sb, uint32_t cp)
{
    char b[4];
    size_t n;

    if (cp < 0x80) {
        b[0] = (char)cp;
        n = 1;
    } else if (cp < 0x800) {
        b[0] = (char)(0xc0 | (cp >> 6));
        b[1] = (char)(0x80 | (cp & 0x3f));
        n = 2;
    } else if (cp < 0x10000) {
        b[0] = (char)(0xe0 | (cp >> 12));
        b[1] = (char)(0x80 | ((cp >> 6) & 0x3f));
        b[2] = (char)(0x80 | (cp & 0x3f));
        n = 3;
    } else {
        b[0] = (char)(0xf0 | (cp >> 18));
        b[1] = (char)(0x80 | ((cp >> 12) & 0x3f));
        b[2] = (char)(0x80 | ((cp >> 6) & 0x3f));
        b[3] = (char)(0x80 | (cp & 0x3f));
        n = 4;
    }
    return sb_put(p, sb, b, n);
}

/* At the opening quote. Returns the malloc'd string, its length in *len. */
static char *parse_string_raw(struct jp *p, size_t *len)
{
    struct sbuf sb = { 0 };

    p->pos++;   /* '"' */
    if (!sb_put(p, &sb, "", 0))
        return NULL;
    for (;;) {
        size_t start = p->pos;
        int c;

        /* copy a run of plain characters at once */
        while (p->pos < p->len && p->s[p->pos] != '"' &&
               p->s[p->pos] != '\\' && (unsigned char)p->s[p->pos] >= 0x20)
            p->pos++;
        if (p->pos > start && !sb_put(p, &sb, p->s + start, p->pos - start))
            goto fail;
        c = peek(p);
        if (c == '"') {
            p->pos++;
            *len = sb.len;
            return sb.b;
        }
        if (c < 0) {
            jp_fail(p, "unterminated string");
            goto fail;
        }
        if (c < 0x20) {
            jp_fail(p, "control character in string");
            goto fail;
        }
        /* backslash */
        p->pos++;
        c = peek(p);
        p->pos++;
        switch (c) {
        case '"': case '\\': case '/': {
            char ch = (char)c;

            if (!sb_put(p, &sb, &ch, 1))
                goto fail;
            break;
        }
        case 'b': if (!sb_put(p, &sb, "\b", 1)) goto fail; break;
        case 'f': if (!sb_put(p, &sb, "\f", 1)) goto fail; break;
        case 'n': if (!sb_put(p, &sb, "\n", 1)) goto fail; break;
        case 'r': if (!sb_put(p, &sb, "\r", 1)) goto fail; break;
        case 't': if (!sb_put(p, &sb, "\t", 1)) goto fail; break;
        case 'u': {
            int hi = hex4(p);
            uint32_t cp;

            if (hi < 0)
                goto fail;
            cp = (uint32_t)hi;
            if (hi >= 0xd800 && hi <= 0xdbff) {
                int lo;

                if (p->len - p->pos < 2 || p->s[p->pos] != '\\' ||
                    p->s[p->pos + 1] != 'u') {
                    jp_fail(p, "lone surrogate");
                    goto fail;
                }
                p->pos += 2;
                lo = hex4(p);
                if (lo < 0)
                    goto fail;
                if (lo < 0xdc00 || lo > 0xdfff) {
                    jp_fail(p, "bad surrogate pair");
                    goto fail;
                }
                cp = 0x10000 + (((uint32_t)hi - 0xd800) << 10) +
                     ((uint32_t)lo - 0xdc00);
            } else if (hi >= 0xdc00 && hi <= 0xdfff) {
                jp_fail(p, "lone surrogate");
                goto fail;
            }
            if (!put_utf8(p, &sb, cp))
                goto fail;
            break;
        }
        default:
            p->pos--;
            jp_fail(p, "bad escape");
            goto fail;
        }
    }
fail:
    free(sb.b);
    return NULL;
}

/* ---- numbers ---- */

static struct jm *parse_number(struct jp *p)
{
    size_t start = p->pos;
    bool neg = false, frac = false;
    uint64_t u = 0;
    bool overflow = false;
    char buf[64];
    struct jm *v;
    size_t n;

    if (peek(p) == '-') {
        neg = true;
        p->pos++;
    }
    if (peek(p) == '0') {
        p->pos++;
    } else if (peek(p) >= '1' && peek(p) <= '9') {
        while (peek(p) >= '0' && peek(p) <= '9') {
            unsigned int d = (unsigned int)(peek(p) - '0');

            if (u > (UINT64_MAX - d) / 10)
                overflow = true;
            else
                u = u * 10 + d;
            p->pos++;
        }
    } else {
        jp_fail(p, "bad number");
        return NULL;
    }
    if (peek(p) == '.') {
        frac = true;
        p->pos++;
        if (!(peek(p) >= '0' && peek(p) <= '9')) {
            jp_fail(p, "bad fraction");
            return NULL;
        }
        while (peek(p) >= '0' && peek(p) <= '9')
            p->pos++;
    }
    if (peek(p) == 'e' || peek(p) == 'E') {
        frac = true;
        p->pos++;
        if (peek(p) == '+' || peek(p) == '-')
            p->pos++;
        if (!(peek(p) >= '0' && peek(p) <= '9')) {
            jp_fail(p, "bad exponent");
            return NULL;
        }
        while (peek(p) >= '0' && peek(p) <= '9')
            p->pos++;
    }
    n = p->pos - start;
    if (n >= sizeof(buf)) {
        /* long digit strings: only the double value matters */
        n = sizeof(buf) - 1;
    }
    memcpy(buf, p->s + start, n);
    buf[n] = '\0';
    v = new_value(p, JM_NUMBER);
    if (!v)
        return NULL;
    v->num = strtod(buf, NULL);
    if (!frac && !overflow) {
        v->is_int = true;
        v->neg = neg && u != 0;
        v->u = u;
    }
    return v;
}

/* ---- containers ---- */

static struct jm *parse_value(struct jp *p, int depth);

static bool grow(struct jp *p, struct jm *v, size_t *cap, bool keys)
{
    size_t ncap = *cap ? *cap * 2 : 8;
    struct jm **items;

    if (v->n < *cap)
        return true;
    items = realloc(v->items, ncap * sizeof(*items));
    if (!items) {
        jp_fail(p, "out of memory");
        return false;
    }
    v->items = items;
    if (keys) {
        char **k = realloc(v->keys, ncap * sizeof(*k));

        if (!k) {
            jp_fail(p, "out of memory");
            return false;
        }
        v->keys = k;
    }
    *cap = ncap;
    return true;
}

static struct jm *parse_array(struct jp *p, int depth)
{
    struct jm *v = new_value(p, JM_ARRAY);
    size_t cap = 0;

    if (!v)
        return NULL;
    p->pos++;   /* '[' */
    skip_ws(p);
    if (peek(p) == ']') {
        p->pos++;
        return v;
    }
    for (;;) {
        struct jm *item;

        if (!grow(p, v, &cap, false))
            goto fail;
        item = parse_value(p, depth + 1);
        if (!item)
            goto fail;
        v->items[v->n++] = item;
        skip_ws(p);
        if (peek(p) == ',') {
            p->pos++;
            continue;
        }
        if (peek(p) == ']') {
            p->pos++;
            return v;
        }
        jp_fail(p, "expected ',' or ']'");
        goto fail;
    }
fail:
    jm_free(v);
    return NULL;
}

static struct jm *parse_object(struct jp *p, int depth)
{
    struct jm *v = new_value(p, JM_OBJECT);
    size_t cap = 0;

    if (!v)
        return NULL;
    p->pos++;   /* '{' */
    skip_ws(p);
    if (peek(p) == '}') {
        p->pos++;
        return v;
    }
    for (;;) {
        struct jm *item;
        size_t klen;
        char *key;

        skip_ws(p);
        if (peek(p) != '"') {
            jp_fail(p, "expected a key");
            goto fail;
        }
        key = parse_string_raw(p, &klen);
        if (!key)
            goto fail;
        skip_ws(p);
        if (peek(p) != ':') {
            free(key);
            jp_fail(p, "expected ':'");
            goto fail;
        }
        p->pos++;
        item = parse_value(p, depth + 1);
        if (!item || !grow(p, v, &cap, true)) {
            free(key);
            jm_free(item);
            goto fail;
        }
        v->keys[v->n] = key;
        v->items[v->n++] = item;
        skip_ws(p);
        if (peek(p) == ',') {
            p->pos++;
            continue;
        }
        if (peek(p) == '}') {
            p->pos++;
            return v;
        }
        jp_fail(p, "expected ',' or '}'");
        goto fail;
    }
fail:
    jm_free(v);
    return NULL;
}

static struct jm *parse_value(struct jp *p, int depth)
{
    struct jm *v;
    int c;

    if (depth > JM_MAX_DEPTH) {
        jp_fail(p, "nested too deeply");
        return NULL;
    }
    skip_ws(p);
    c = peek(p);
    switch (c) {
    case '{':
        return parse_object(p, depth);
    case '[':
        return parse_array(p, depth);
    case '"': {
        size_t len;
        char *s = parse_string_raw(p, &len);

        if (!s)
            return NULL;
        v = new_value(p, JM_STRING);
        if (!v) {
            free(s);
            return NULL;
        }
        v->str = s;
        v->len = len;
        return v;
    }
    case 't':
    case 'f':
        if (!literal(p, c == 't' ? "true" : "false"))
            return NULL;
        v = new_value(p, JM_BOOL);
        if (v)
            v->b = c == 't';
        return v;
    case 'n':
        if (!literal(p, "null"))
            return NULL;
        return new_value(p, JM_NULL);
    case -1:
        jp_fail(p, "unexpected end");
        return NULL;
    default:
        if (c == '-' || (c >= '0' && c <= '9'))
            return parse_number(p);
        jp_fail(p, "unexpected character");
        return NULL;
    }
}

struct jm *jm_parse(const char *text, size_t len, char *err, size_t errlen)
{
    struct jp p = { .s = text, .len = len, .err = err, .errlen = errlen };
    struct jm *v;

    if (err && errlen)
        err[0] = '\0';
    if (!text) {
        jp_fail(&p, "no input");
        return NULL;
    }
    v = parse_value(&p, 0);
    if (!v)
        return NULL;
    skip_ws(&p);
    if (p.pos != p.len) {
        jp_fail(&p, "trailing characters");
        jm_free(v);
        return NULL;
    }
    return v;
}

void jm_free(struct jm *v)
{
    if (!v)
        return;
    for (size_t i = 0; i < v->n; i++) {
        jm_free(v->items[i]);
        if (v->keys)
            free(v->keys[i]);
    }
    free(v->items);
    free(v->keys);
    free(v->str);
    free(v);
}

/* ---- lookups ---- */

const struct jm *jm_get(const struct jm *obj, const char *key)
{
    if (!obj || obj->type != JM_OBJECT || !key)
        return NULL;
    for (size_t i = obj->n; i-- > 0;) {
        if (!strcmp(obj->keys[i], key))
            return obj->items[i];
    }
    return NULL;
}

const struct jm *jm_at(const struct jm *v, size_t i)
{
    if (!v || (v->type != JM_ARRAY && v->type != JM_OBJECT) || i >= v->n)
        return NULL;
    return v->items[i];
}

const char *jm_key(const struct jm *obj, size_t i)
{
    if (!obj || obj->type != JM_OBJECT || i >= obj->n)
        return NULL;
    return obj->keys[i];
}

size_t jm_count(const struct jm *v)
{
    if (!v || (v->type != JM_ARRAY && v->type != JM_OBJECT))
        return 0;
    return v->n;
}

const struct jm *jm_path(const struct jm *v, const char *path)
{
    char seg[128];

    while (v && path && *path) {
        const char *dot = strchr(path, '.');
        size_t n = dot ? (size_t)(dot - path) : strlen(path);

        if (n >= sizeof(seg))
            return NULL;
        memcpy(seg, path, n);
        seg[n] = '\0';
        if (v->type == JM_ARRAY) {
            char *end;
            unsigned long i;

            errno = 0;
            i = strtoul(seg, &end, 10);
            if (!n || *end || errno)
                return NULL;
            v = jm_at(v, i);
        } else {
            v = jm_get(v, seg);
        }
        path = dot ? dot + 1 : NULL;
    }
    return v;
}

const char *jm_str(const struct jm *v, const char *def)
{
    return v && v->type == JM_STRING ? v->str : def;
}

double jm_num(const struct jm *v, double def)
{
    return v && v->type == JM_NUMBER ? v->num : def;
}

uint64_t jm_u64(const struct jm *v, uint64_t def)
{
    if (!v || v->type != JM_NUMBER)
        return def;
    if (v->is_int)
        return v->neg ? 0 : v->u;
    if (v->num <= 0)
        return 0;
    if (v->num >= 18446744073709551615.0)
        return UINT64_MAX;
    return (uint64_t)v->num;
}

bool jm_bool(const struct jm *v, bool def)
{
    return v && v->type == JM_BOOL ? v->b : def;
}
