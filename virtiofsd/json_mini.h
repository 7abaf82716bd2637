/* SPDX-License-Identifier: GPL-2.0-or-later */
/*
 * json_mini: a small recursive-descent JSON reader (RFC 8259) for
 * virtiofsctl and the tests, which read the control socket's answers
 * without pulling in a JSON library. It builds a tree; lookups never
 * fail loudly (a missing key or a wrong type gives NULL or the default),
 * so a client can read an older or newer schema.
 *
 * Strict where it matters for a reader of untrusted text: nesting depth
 * is bounded (JM_MAX_DEPTH), numbers and escapes are checked, trailing
 * garbage is an error. Integers are kept exactly (up to 64 bits) next to
 * their double value, because counters exceed 2^53 in long runs.
 */
#ifndef VFS_JSON_MINI_H
#define VFS_JSON_MINI_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define JM_MAX_DEPTH 64

enum jm_type {
    JM_NULL,
    JM_BOOL,
    JM_NUMBER,
    JM_STRING,
    JM_ARRAY,
    JM_OBJECT,
};

struct jm {
    enum jm_type type;
    bool b;                 /* JM_BOOL */
    double num;             /* JM_NUMBER */
    bool is_int;            /* no fraction or exponent, fits 64 bits */
    bool neg;               /* is_int: negative (value is -u) */
    uint64_t u;             /* is_int: magnitude */
    char *str;              /* JM_STRING: NUL-terminated UTF-8 */
    size_t len;             /* JM_STRING: bytes (may contain NUL) */
    size_t n;               /* JM_ARRAY / JM_OBJECT: members */
    struct jm **items;
    char **keys;            /* JM_OBJECT */
};

/*
 * Parse @len bytes of @text (one JSON value, surrounding whitespace
 * allowed). NULL on error, with a message naming the byte offset in @err.
 */
struct jm *jm_parse(const char *text, size_t len, char *err, size_t errlen);
void jm_free(struct jm *v);

/* Member @key of an object (the last one if repeated), else NULL. */
const struct jm *jm_get(const struct jm *obj, const char *key);
/* Item @i of an array or object, else NULL. */
const struct jm *jm_at(const struct jm *v, size_t i);
/* Key of member @i of an object, else NULL. */
const char *jm_key(const struct jm *obj, size_t i);
/* Members of an array or object; 0 for anything else or NULL. */
size_t jm_count(const struct jm *v);
/*
 * Dotted path: "stats.queues.1.mode"; a segment that is a decimal number
 * indexes an array. NULL if any step is missing.
 */
const struct jm *jm_path(const struct jm *v, const char *path);

/* Typed reads: @def when @v is NULL or of another type. */
const char *jm_str(const struct jm *v, const char *def);
double jm_num(const struct jm *v, double def);
/* Non-negative integers exactly; other numbers truncated if >= 0. */
uint64_t jm_u64(const struct jm *v, uint64_t def);
bool jm_bool(const struct jm *v, bool def);

#endif
