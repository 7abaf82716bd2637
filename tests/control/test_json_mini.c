/* SPDX-License-Identifier: GPL-2.0-or-later */
/*
 * test_json_mini: the JSON reader used by virtiofsctl and the tests takes
 * valid JSON exactly (64-bit integers, escapes, surrogates, nesting) and
 * rejects malformed input with an offset instead of crashing; and what
 * the control socket writes (ctl_json_string, for any byte) reads back.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "control.h"
#include "json_mini.h"

static int failures;

#define CHECK(cond)                                                          \
    do {                                                                     \
        if (!(cond)) {                                                       \
            fprintf(stderr, "FAIL %s:%d: %s\n", __FILE__, __LINE__, #cond);  \
            failures++;                                                      \
        }                                                                    \
    } while (0)

static struct jm *P(const char *s)
{
    char err[160];
    struct jm *v = jm_parse(s, strlen(s), err, sizeof(err));

    if (!v)
        fprintf(stderr, "parse failed: %s: %s\n", s, err);
    return v;
}

static void bad(const char *s, const char *why)
{
    char err[160];
    struct jm *v = jm_parse(s, strlen(s), err, sizeof(err));

    if (v || !strstr(err, why)) {
        fprintf(stderr, "FAIL: '%s' gave %s, error '%s', want '%s'\n", s,
                v ? "a value" : "an error", err, why);
        failures++;
    }
    jm_free(v);
}

static void test_values(void)
{
    struct jm *v = P(" {\"a\":1,\"b\":[true,false,null,-2,3.5e2,\"x\"],"
                     "\"c\":{\"d\":{\"e\":\"deep\"}},\"a\":18446744073709551615,"
                     "\"neg\":-9223372036854775808,\"big\":18446744073709551616,"
                     "\"z\":0,\"f\":-0.25} \n");

    CHECK(v && v->type == JM_OBJECT && jm_count(v) == 8);
    /* a repeated key: the last one wins */
    CHECK(jm_u64(jm_get(v, "a"), 0) == UINT64_MAX);
    CHECK(jm_count(jm_get(v, "b")) == 6);
    CHECK(jm_bool(jm_path(v, "b.0"), false) == true);
    CHECK(jm_bool(jm_path(v, "b.1"), true) == false);
    CHECK(jm_path(v, "b.2") && jm_path(v, "b.2")->type == JM_NULL);
    CHECK(jm_num(jm_path(v, "b.3"), 0) == -2);
    CHECK(jm_u64(jm_path(v, "b.3"), 7) == 0);    /* negative: 0 */
    CHECK(jm_num(jm_path(v, "b.4"), 0) == 350.0);
    CHECK(!jm_path(v, "b.4")->is_int);
    CHECK(!strcmp(jm_str(jm_path(v, "b.5"), ""), "x"));
    CHECK(!strcmp(jm_str(jm_path(v, "c.d.e"), ""), "deep"));
    CHECK(jm_path(v, "neg")->is_int && jm_path(v, "neg")->neg &&
          jm_path(v, "neg")->u == 9223372036854775808ull);
    /* beyond 64 bits: a double only */
    CHECK(!jm_get(v, "big")->is_int && jm_num(jm_get(v, "big"), 0) > 1.8e19);
    CHECK(jm_u64(jm_get(v, "z"), 9) == 0 && !jm_get(v, "z")->neg);
    CHECK(jm_num(jm_get(v, "f"), 0) == -0.25);
    /* missing things give defaults, never a crash */
    CHECK(!jm_get(v, "nope") && !jm_path(v, "b.6") && !jm_path(v, "c.x.y"));
    CHECK(!jm_path(v, "b.x") && !jm_at(v, 99) && !jm_key(v, 99));
    CHECK(jm_u64(NULL, 5) == 5 && !strcmp(jm_str(NULL, "d"), "d"));
    CHECK(jm_num(jm_get(v, "c"), 4) == 4);      /* wrong type */
    CHECK(!strcmp(jm_key(v, 0), "a"));
    jm_free(v);

    v = P("[]");
    CHECK(v && v->type == JM_ARRAY && jm_count(v) == 0);
    jm_free(v);
    v = P("{}");
    CHECK(v && v->type == JM_OBJECT && jm_count(v) == 0);
    jm_free(v);
    v = P("\"a\\\"b\\\\c\\/d\\b\\f\\n\\r\\t\\u0041\\u00e9\\u20ac\\ud83d\\ude00\"");
    CHECK(v && !strcmp(v->str, "a\"b\\c/d\b\f\n\r\tA\xc3\xa9\xe2\x82\xac"
                                "\xf0\x9f\x98\x80"));
    jm_free(v);
    /* an escaped NUL keeps its length */
    v = P("\"a\\u0000b\"");
    CHECK(v && v->len == 3 && v->str[1] == '\0' && v->str[2] == 'b');
    jm_free(v);
}

static void test_errors(void)
{
    char deep[200];

    bad("", "unexpected end");
    bad("   ", "unexpected end");
    bad("{", "expected a key");
    bad("{\"a\"", "expected ':'");
    bad("{\"a\":}", "unexpected character");
    bad("{\"a\":1,}", "expected a key");
    bad("[1,]", "unexpected character");
    bad("[1 2]", "expected ',' or ']'");
    bad("{\"a\":1 \"b\":2}", "expected ',' or '}'");
    bad("01", "trailing characters");
    bad("-", "bad number");
    bad("1.", "bad fraction");
    bad("1e", "bad exponent");
    bad("+1", "unexpected character");
    bad("tru", "invalid literal");
    bad("nul", "invalid literal");
    bad("\"abc", "unterminated string");
    bad("\"a\nb\"", "control character");
    bad("\"\\x\"", "bad escape");
    bad("\"\\u12zz\"", "bad \\u escape");
    bad("\"\\u12", "short \\u escape");
    bad("\"\\ud800\"", "lone surrogate");
    bad("\"\\udc00\"", "lone surrogate");
    bad("\"\\ud800\\u0041\"", "bad surrogate pair");
    bad("\"\\", "bad escape");
    bad("{} {}", "trailing characters");
    bad("[1] x", "trailing characters");
    /* nesting is bounded: a hostile answer cannot blow the stack */
    memset(deep, '[', sizeof(deep) - 1);
    deep[sizeof(deep) - 1] = '\0';
    bad(deep, "nested too deeply");
    {
        char ok[2 * JM_MAX_DEPTH + 1];
        struct jm *v;

        memset(ok, '[', JM_MAX_DEPTH);
        memset(ok + JM_MAX_DEPTH, ']', JM_MAX_DEPTH);
        ok[2 * JM_MAX_DEPTH] = '\0';
        v = P(ok);
        CHECK(v != NULL);
        jm_free(v);
    }
    /* the error names where */
    {
        char err[160];

        CHECK(!jm_parse("[1,x]", 5, err, sizeof(err)));
        CHECK(strstr(err, "byte 3") != NULL);
        /* a length shorter than the string: only that much is read */
        CHECK(!jm_parse("[1,2]", 4, err, sizeof(err)));
        CHECK(!jm_parse(NULL, 0, err, sizeof(err)));
    }
}

/* Random bytes never crash the parser (run under ASan in CI). */
static void test_fuzz(void)
{
    static const char alphabet[] = "{}[]\":,-0123456789.eEtrufalsn\\u \t\n";
    unsigned int seed = 12345;
    char buf[64];

    for (int i = 0; i < 200000; i++) {
        size_t n = (size_t)(rand_r(&seed) % (int)sizeof(buf));
        struct jm *v;

        for (size_t k = 0; k < n; k++)
            buf[k] = (rand_r(&seed) & 7) ? alphabet[rand_r(&seed) %
                                                    (int)(sizeof(alphabet) - 1)]
                                         : (char)rand_r(&seed);
        v = jm_parse(buf, n, NULL, 0);
        jm_free(v);
    }
}

/* What the daemon writes for any byte reads back as that character. */
static void test_control_strings(void)
{
    for (unsigned int b = 1; b < 256; b++) {
        struct ctl_buf g = { 0 };
        char s[4] = { 'x', (char)b, 'y', 0 };
        char err[160];
        struct jm *v;

        ctl_json_string(&g, s);
        v = jm_parse(g.s, g.len, err, sizeof(err));
        CHECK(v && v->type == JM_STRING);
        if (v && b < 0x80) {
            CHECK(v->len == 3 && (unsigned char)v->str[1] == b);
        } else if (v) {
            /* bytes >= 0x80 come back as U+0080..U+00FF, valid UTF-8 */
            CHECK(v->len == 4 && (unsigned char)v->str[1] == (0xc0 | (b >> 6)) &&
                  (unsigned char)v->str[2] == (0x80 | (b & 0x3f)));
        }
        /* never raw control or non-ASCII bytes on the wire */
        for (size_t k = 0; k < g.len; k++)
            CHECK((unsigned char)g.s[k] >= 0x20 &&
                  (unsigned char)g.s[k] < 0x7f);
        jm_free(v);
        ctl_buf_free(&g);
    }
}

/* Without a device only help and version answer ok; all is one JSON line. */
static void test_rpc_without_device(void)
{
    static const char *const lines[] = {
        "help", "version", "stats", "stats reset", "mode", "mode get",
        "mode set pool 4", "pool size 2", "bogus", "help extra",
    };

    for (size_t i = 0; i < sizeof(lines) / sizeof(lines[0]); i++) {
        struct ctl_buf g = { 0 };
        struct jm *v;

        ctl_rpc_execute(NULL, lines[i], &g);
        CHECK(g.len > 1 && g.s[g.len - 1] == '\n' &&
              !memchr(g.s, '\n', g.len - 1));
        v = jm_parse(g.s, g.len, NULL, 0);
        CHECK(v != NULL);
        CHECK(jm_bool(jm_get(v, "ok"), false) == (i < 2));
        if (i >= 2)
            CHECK(jm_str(jm_get(v, "error"), NULL) != NULL);
        if (i == 0)
            CHECK(jm_count(jm_get(v, "commands")) >= 7);
        jm_free(v);
        ctl_buf_free(&g);
    }
}

int main(void)
{
    test_values();
    test_errors();
    test_fuzz();
    test_control_strings();
    test_rpc_without_device();
    if (failures) {
        fprintf(stderr, "%d check(s) failed\n", failures);
        return 1;
    }
    printf("ok\n");
    return 0;
}
