/*
 * test_imap_parse.c - imapd's command parser (imapd/imap_parse.h): lines,
 * atoms, quoted strings, literals (synchronizing, LITERAL+, taken over by
 * the session for APPEND), lists, NIL and bracketed fetch atoms; then the
 * typed pieces: sequence sets, fetch attributes, search keys, flag lists,
 * dates, mailbox names and their modified UTF-7 <-> UTF-8 conversion,
 * UTF-8 and imap_quote(); RFC 7162's SELECT
 * parameters and FETCH and STORE modifiers (imap_modifiers.h).
 *
 * Valid input is checked against a printed form of the tree, hostile input
 * (unterminated strings and literals, absurd literal sizes, deep nesting,
 * huge argument counts, oversized commands, invalid sequence sets, 8-bit
 * and NUL bytes, bad tags) against a clean error with a reason -- and
 * under ASan, against any read or write out of bounds and any leak.
 *
 * The parser lives in imapd/; the build links imapd's files (all but
 * main.c) into the unit tests as imapd_core.
 */
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "check.h"
#include "imap_modifiers.h"
#include "imap_parse.h"

/* A string literal as pointer + length (it may hold NUL bytes). */
#define L(s) s, sizeof(s) - 1
#define NITEMS(a) (sizeof(a) / sizeof((a)[0]))

static const struct imap_limits limits = {
    .command_max = 64 * 1024,
    .literal_max = 64 * 1024,
    .args_max = 10000,
    .depth_max = 32,
};

/* ---- helpers ------------------------------------------------------------ */

/* Bounded text for printed trees. */
struct sb {
    char s[8192];
    size_t len;
};

static void sb_put(struct sb *b, const char *s, size_t n)
{
    for (size_t i = 0; i < n && b->len + 1 < sizeof b->s; i++)
        b->s[b->len++] = s[i];
    b->s[b->len] = '\0';
}

static void sb_printf(struct sb *b, const char *fmt, ...)
{
    char tmp[512];
    va_list ap;
    int n;

    va_start(ap, fmt);
    n = vsnprintf(tmp, sizeof tmp, fmt, ap);
    va_end(ap);
    if (n > 0)
        sb_put(b, tmp, (size_t)n < sizeof tmp ? (size_t)n : sizeof tmp - 1);
}

/* Bytes with controls, 8-bit and backslash escaped. */
static void sb_bytes(struct sb *b, const char *s, size_t n)
{
    for (size_t i = 0; i < n; i++) {
        unsigned char ch = (unsigned char)s[i];
        if (ch < 0x20 || ch >= 0x7f || ch == '\\')
            sb_printf(b, "\\x%02x", ch);
        else
            sb_put(b, s + i, 1);
    }
}

/* An argument tree as text: atoms bare, s:string, l:literal, NIL, x:{n}
 * for a literal the session took, ( ... ) for lists. */
static void sb_args(struct sb *b, const struct imap_arg *a, size_t n)
{
    for (size_t i = 0; i < n; i++) {
        if (i > 0)
            sb_put(b, " ", 1);
        switch (a[i].type) {
        case IMAP_ARG_ATOM:
            sb_bytes(b, a[i].s, a[i].len);
            break;
        case IMAP_ARG_STRING:
            sb_put(b, "s:", 2);
            sb_bytes(b, a[i].s, a[i].len);
            break;
        case IMAP_ARG_LITERAL:
            sb_put(b, "l:", 2);
            sb_bytes(b, a[i].s, a[i].len);
            break;
        case IMAP_ARG_LITERAL_EXTERNAL:
            sb_printf(b, "x:{%zu}", a[i].len);
            break;
        case IMAP_ARG_NIL:
            sb_put(b, "NIL", 3);
            break;
        case IMAP_ARG_LIST:
            sb_put(b, "(", 1);
            sb_args(b, a[i].list, a[i].nlist);
            sb_put(b, ")", 1);
            break;
        }
    }
}

static void sb_command(struct sb *b, const struct imap_parser *p)
{
    size_t n;
    const struct imap_arg *a = imap_parser_args(p, &n);

    b->len = 0;
    b->s[0] = '\0';
    sb_printf(b, "%s %s", imap_parser_tag(p), imap_parser_name(p));
    if (n > 0) {
        sb_put(b, " ", 1);
        sb_args(b, a, n);
    }
}

/* Feed a client's bytes as the session does: lines up to LF, and exactly
 * the announced bytes when the parser returns LITERAL.  Returns the last
 * result (LITERAL when the input ends inside a literal). */
static enum imap_parse_result feed(struct imap_parser *p, const char *in, size_t len)
{
    enum imap_parse_result r = IMAP_PARSE_MORE;
    size_t i = 0;

    if (len == 0)
        return imap_parser_line(p, in, 0); /* a line without even its CRLF */
    while (i < len) {
        const char *lf = memchr(in + i, '\n', len - i);
        size_t n = lf ? (size_t)(lf - (in + i)) + 1 : len - i;

        r = imap_parser_line(p, in + i, n);
        i += n;
        if (r != IMAP_PARSE_LITERAL)
            break;
        uint64_t left = imap_parser_literal_left(p);
        size_t take = left < len - i ? (size_t)left : len - i;
        i += imap_parser_literal(p, in + i, take);
        if (imap_parser_error(p) != NULL)
            return IMAP_PARSE_ERROR;
        if (imap_parser_literal_left(p) > 0)
            return IMAP_PARSE_LITERAL;
    }
    return r;
}

/* A whole command into a fresh parser; the caller frees it. */
static struct imap_parser *parse(const struct imap_limits *lim, const char *in, size_t len,
                                 enum imap_parse_result *r)
{
    struct imap_parser *p = imap_parser_new(lim);

    *r = feed(p, in, len);
    return p;
}

/* s repeated n times, then tail: a heap string the caller frees. */
static char *repeat(const char *head, const char *s, size_t n, const char *tail, size_t *len)
{
    size_t hl = strlen(head), sl = strlen(s), tl = strlen(tail);
    char *b = malloc(hl + sl * n + tl + 1), *o = b;

    memcpy(o, head, hl);
    o += hl;
    for (size_t i = 0; i < n; i++, o += sl)
        memcpy(o, s, sl);
    memcpy(o, tail, tl);
    o += tl;
    *o = '\0';
    *len = (size_t)(o - b);
    return b;
}

/* ---- commands: valid ---------------------------------------------------- */

static const struct {
    const char *in;
    size_t len;
    const char *tree;
} valid_cases[] = {
    {L("a1 NOOP\r\n"), "a1 NOOP"},
    {L("a1 noop\r\n"), "a1 NOOP"},
    {L("A001 CAPABILITY\r\n"), "A001 CAPABILITY"},
    {L("a.1] NOOP\r\n"), "a.1] NOOP"},
    {L("a NOOP\n"), "a NOOP"},
    {L("a NOOP"), "a NOOP"},
    {L("a NOOP \r\n"), "a NOOP"},
    {L("a X  1   2 \r\n"), "a X 1 2"},        /* extra spaces between arguments */
    /* Quoted strings: unescaped, \" and \\ only. */
    {L("a LOGIN \"fred\" \"p\\\"w\\\\d\"\r\n"), "a LOGIN s:fred s:p\"w\\x5cd"},
    {L("a LOGIN \"\" \"(x) {3} %*\"\r\n"), "a LOGIN s: s:(x) {3} %*"},
    {L("a SELECT \"Gr\xc3\xbc\xc3\x9f"
       "e\"\r\n"),
     "a SELECT s:Gr\\xc3\\xbc\\xc3\\x9fe"},
    {L("a X \"tab\there\"\r\n"), "a X s:tab\\x09here"},
    /* Synchronizing and non-synchronizing literals across lines. */
    {L("a LOGIN {4}\r\nfred {3}\r\npwd\r\n"), "a LOGIN l:fred l:pwd"},
    {L("a LOGIN {4+}\r\nfred {3+}\r\npwd\r\n"), "a LOGIN l:fred l:pwd"},
    {L("a LOGIN {004}\r\nfred \"x\"\r\n"), "a LOGIN l:fred s:x"},
    {L("a X {5}\r\na\r\n\0b\r\n"), "a X l:a\\x0d\\x0a\\x00b"},
    {L("a X {0}\r\n {0+}\r\n\r\n"), "a X l: l:"},
    {L("a X (a {1}\r\nb c)\r\n"), "a X (a l:b c)"},
    {L("a X ({1}\r\nb)\r\n"), "a X (l:b)"},
    /* '~' not before '{' is an atom character. */
    {L("a X ~a a~b ~\r\n"), "a X ~a a~b ~"},
    /* Lists and NIL. */
    {L("a X (1 (2 (3)) ()) 4\r\n"), "a X (1 (2 (3)) ()) 4"},
    {L("a X ( a  b )\r\n"), "a X (a b)"},
    {L("a X NIL nil \"NIL\" NILS\r\n"), "a X NIL NIL s:NIL NILS"},
    /* Flags, wildcards, sequence sets are atoms. */
    {L("a STORE 1:*,3 +FLAGS (\\Seen $Label \\*)\r\n"),
     "a STORE 1:*,3 +FLAGS (\\x5cSeen $Label \\x5c*)"},
    {L("a LIST \"\" %/*\r\n"), "a LIST s: %/*"},
    {L("a SELECT [Gmail]/Drafts\r\n"), "a SELECT [Gmail]/Drafts"},
    {L("a SELECT [x\r\n"), "a SELECT [x"},
    {L("a SELECT x]\r\n"), "a SELECT x]"},
    /* Fetch atoms with brackets and partials are one atom each. */
    {L("a FETCH 1:* (FLAGS BODY.PEEK[HEADER.FIELDS (DATE FROM)]<0.2048>)\r\n"),
     "a FETCH 1:* (FLAGS BODY.PEEK[HEADER.FIELDS (DATE FROM)]<0.2048>)"},
    {L("a UID FETCH 1 BODY[]\r\n"), "a UID FETCH 1 BODY[]"},
    {L("a FETCH 1 (BODY[1.2.MIME] BINARY.SIZE[1])\r\n"),
     "a FETCH 1 (BODY[1.2.MIME] BINARY.SIZE[1])"},
    {L("a FETCH 1 BODY[HEADER.FIELDS (\"a b\" c)]\r\n"),
     "a FETCH 1 BODY[HEADER.FIELDS (\"a b\" c)]"},
    {L("a FETCH 1 BODY[]<0.1>[x y]\r\n"), "a FETCH 1 BODY[]<0.1>[x y]"},
    {L("a FETCH 1 (BODY[HEADER.FIELDS (A)])\r\n"), "a FETCH 1 (BODY[HEADER.FIELDS (A)])"},
    /* A '[' without ']' on the line is an ordinary character. */
    {L("a FETCH 1 (FLAGS BODY[)\r\n"), "a FETCH 1 (FLAGS BODY[)"},
    /* APPEND's message may be an in-memory literal like any other. */
    {L("a APPEND INBOX (\\Seen) \"01-Jan-2026 12:00:00 +0100\" {5}\r\nhello\r\n"),
     "a APPEND INBOX (\\x5cSeen) s:01-Jan-2026 12:00:00 +0100 l:hello"},
};

static void test_imap_parser_valid_commands_give_the_expected_tree(void)
{
    for (size_t i = 0; i < NITEMS(valid_cases); i++) {
        enum imap_parse_result r;
        struct imap_parser *p;
        struct sb b;

        p = parse(&limits, valid_cases[i].in, valid_cases[i].len, &r);
        CHECK_INT(r, IMAP_PARSE_DONE);
        if (r != IMAP_PARSE_DONE) {
            fprintf(stderr, "  case %zu: %s\n", i, imap_parser_error(p));
        } else {
            sb_command(&b, p);
            CHECK_STR(b.s, valid_cases[i].tree);
        }
        CHECK(imap_parser_error(p) == NULL);
        imap_parser_free(p);
    }
}

/* ---- commands: hostile --------------------------------------------------- */

static const struct {
    const char *in;
    size_t len;
    const char *why; /* a part of the error */
    const char *tag; /* NULL: no tag could be read */
} error_cases[] = {
    {L("\r\n"), "empty", NULL},
    {L(""), "empty", NULL},
    {L("a\r\n"), "missing command name", "a"},
    {L("a \r\n"), "missing command name", "a"},
    {L("a  NOOP\r\n"), "invalid command name", "a"},     /* one SP after the tag */
    {L("* NOOP\r\n"), "invalid tag", NULL},
    {L("+ NOOP\r\n"), "invalid tag", NULL},
    {L("a+ NOOP\r\n"), "invalid tag", NULL},
    {L("a%b NOOP\r\n"), "invalid tag", NULL},
    {L("a\"b NOOP\r\n"), "invalid tag", NULL},
    {L("(a NOOP\r\n"), "invalid tag", NULL},
    {L("\xc3\xa9 NOOP\r\n"), "invalid tag", NULL},
    {L(" a NOOP\r\n"), "invalid tag", NULL},
    {L("a NO*OP\r\n"), "invalid command name", "a"},
    {L("a N\xc3\x96OP\r\n"), "invalid command name", "a"},
    {L("a {4}\r\n"), "invalid command name", "a"},
    {L("a \"NOOP\"\r\n"), "invalid command name", "a"},
    /* NUL, CR and LF inside a line. */
    {L("a NO\0OP\r\n"), "NUL", NULL},
    {L("a LOGIN \"a\0b\" c\r\n"), "NUL", NULL},
    {L("\0\r\n"), "NUL", NULL},
    {L("a NOOP\rb\r\n"), "CR or LF", NULL},
    {L("a NOOP\r\r\n"), "CR or LF", NULL},
    /* Atoms: no 8-bit, controls or specials. */
    {L("a SELECT gr\xfc\xdf"
       "e\r\n"),
     "invalid character in atom", "a"},
    {L("a SELECT \xc3\xa9t\xc3\xa9\r\n"), "invalid character in atom", "a"},
    {L("a SELECT a\x01\r\n"), "invalid character in atom", "a"},
    {L("a SELECT a\x7f\r\n"), "invalid character in atom", "a"},
    {L("a X\t1\r\n"), "invalid command name", "a"},
    {L("a X 1\t2\r\n"), "invalid character in atom", "a"},
    {L("a X ab{c\r\n"), "invalid character in atom", "a"},
    {L("a X ab\"c\r\n"), "invalid character in atom", "a"},
    {L("a X a\\b\r\n"), "invalid character in atom", "a"},
    {L("a X ab(c)\r\n"), "invalid character in atom", "a"},
    {L("a FETCH 1 BODY[\xff]\r\n"), "invalid character in atom", "a"},
    {L("a FETCH 1 BODY[HEADER.FIELDS (\"a]b\")]\r\n"), "invalid character in atom", "a"},
    /* Quoted strings. */
    {L("a LOGIN \"fred\r\n"), "unterminated quoted string", "a"},
    {L("a LOGIN \"fred\\\"\r\n"), "unterminated quoted string", "a"},
    {L("a LOGIN \"fred\\"), "invalid escape", "a"},
    {L("a LOGIN \"f\\red\"\r\n"), "invalid escape", "a"},
    {L("a LOGIN \"\xff\"\r\n"), "invalid UTF-8", "a"},
    {L("a LOGIN \"\xc0\xaf\"\r\n"), "invalid UTF-8", "a"},
    {L("a LOGIN \"\xed\xa0\x80\"\r\n"), "invalid UTF-8", "a"},
    {L("a LOGIN \"\xc3\"\r\n"), "invalid UTF-8", "a"},
    /* Separators and lists. */
    {L("a X (1\r\n"), "unclosed list", "a"},
    {L("a X ((((\r\n"), "unclosed list", "a"},
    {L("a X 1)\r\n"), "unexpected )", "a"},
    {L("a X )\r\n"), "unexpected )", "a"},
    {L("a X (1)(2)\r\n"), "missing space", "a"},
    {L("a X \"a\"b\r\n"), "missing space", "a"},
    {L("a X \"a\"\"b\"\r\n"), "missing space", "a"},
    {L("a X (1)x\r\n"), "missing space", "a"},
    {L("a X {1}\r\nbc\r\n"), "missing space", "a"},
    {L("a X {1}\r\nb{1}\r\nc\r\n"), "missing space", "a"},
    /* Literals: announced at the end of a line, digits, a sane size. */
    {L("a X {3}abc\r\n"), "literal must end the line", "a"},
    {L("a X {3} \r\n"), "literal must end the line", "a"},
    /* A literal8 read as an argument (only APPEND's message, taken over
     * by the session, may be one): refused once its bytes are in. */
    {L("a LOGIN ~{4}\r\nfred pw\r\n"), "literal8", "a"},
    {L("a X ~{0}\r\n\r\n"), "literal8", "a"},
    {L("a X ~{3\r\n"), "invalid literal", "a"},
    {L("a X ~{}\r\n"), "invalid literal", "a"},
    {L("a X {}\r\n"), "invalid literal", "a"},
    {L("a X {+}\r\n"), "invalid literal", "a"},
    {L("a X {3\r\n"), "invalid literal", "a"},
    {L("a X {-1}\r\n"), "invalid literal", "a"},
    {L("a X {3++}\r\n"), "invalid literal", "a"},
    {L("a X {3x}\r\n"), "invalid literal", "a"},
    {L("a X { 3}\r\n"), "invalid literal", "a"},
    {L("a LOGIN {18446744073709551616}\r\n"), "literal too large", "a"},
    {L("a LOGIN {99999999999999999999}\r\n"), "literal too large", "a"},
    {L("a LOGIN {99999999999999999999+}\r\n"), "literal too large", "a"},
    /* After a literal: SP, ')' or the end. */
    {L("a X {1}\r\nb)\r\n"), "unexpected )", "a"},
};

static void test_imap_parser_hostile_lines_are_clean_errors(void)
{
    for (size_t i = 0; i < NITEMS(error_cases); i++) {
        enum imap_parse_result r;
        struct imap_parser *p;

        p = parse(&limits, error_cases[i].in, error_cases[i].len, &r);
        CHECK_INT(r, IMAP_PARSE_ERROR);
        if (r != IMAP_PARSE_ERROR) {
            fprintf(stderr, "  case %zu: not refused\n", i);
        } else {
            CHECK_HAS(imap_parser_error(p), error_cases[i].why);
            if (error_cases[i].tag)
                CHECK_STR(imap_parser_tag(p), error_cases[i].tag);
            else
                CHECK(imap_parser_tag(p) == NULL);
        }
        /* An error sticks until reset. */
        CHECK_INT(imap_parser_line(p, L("b NOOP\r\n")), IMAP_PARSE_ERROR);
        imap_parser_reset(p);
        CHECK(imap_parser_tag(p) == NULL);
        CHECK_INT(imap_parser_line(p, L("b NOOP\r\n")), IMAP_PARSE_DONE);
        imap_parser_free(p);
    }
}

/* APPEND's message as a literal8: announced like any literal, marked
 * binary, and taken over by the session as an external literal. */
static void test_imap_parser_literal8_is_announced_as_binary(void)
{
    static const struct {
        const char *line;
        size_t len;
        int sync, binary;
    } cases[] = {
        {L("a APPEND INBOX ~{5}\r\n"), 1, 1},
        {L("a APPEND INBOX (\\Seen) ~{5+}\r\n"), 0, 1},
        {L("a APPEND INBOX {5}\r\n"), 1, 0},
    };

    for (size_t i = 0; i < NITEMS(cases); i++) {
        struct imap_parser *p = imap_parser_new(&limits);
        struct sb b;

        CHECK_INT(imap_parser_line(p, cases[i].line, cases[i].len), IMAP_PARSE_LITERAL);
        CHECK(imap_parser_literal_size(p) == 5);
        CHECK_INT(imap_parser_literal_sync(p), cases[i].sync);
        CHECK_INT(imap_parser_literal_binary(p), cases[i].binary);
        imap_parser_literal_external(p);
        CHECK_INT(imap_parser_literal_binary(p), 0);
        CHECK_INT(imap_parser_line(p, L("\r\n")), IMAP_PARSE_DONE);
        sb_command(&b, p);
        CHECK_HAS(b.s, "x:{5}");
        imap_parser_free(p);
    }
}

static void test_imap_parser_unterminated_literal_refuses_the_next_line(void)
{
    struct imap_parser *p = imap_parser_new(&limits);

    CHECK_INT(imap_parser_line(p, L("a LOGIN {10}\r\n")), IMAP_PARSE_LITERAL);
    CHECK_INT(imap_parser_literal(p, L("abc")), 3);
    CHECK_INT(imap_parser_literal_left(p), 7);
    /* The session must not hand over a line while literal bytes are due. */
    CHECK_INT(imap_parser_line(p, L("\r\n")), IMAP_PARSE_ERROR);
    CHECK_HAS(imap_parser_error(p), "literal data expected");
    CHECK_STR(imap_parser_tag(p), "a");
    CHECK_INT(imap_parser_literal(p, L("defghij")), 0);
    /* A connection that ends inside a literal: the command is not DONE. */
    imap_parser_reset(p);
    CHECK_INT(feed(p, L("a LOGIN {10}\r\nabc")), IMAP_PARSE_LITERAL);
    CHECK_INT(imap_parser_literal_left(p), 7);
    imap_parser_free(p);
}

/* A literal over literal_max is announced with fits == 0, so the session
 * refuses it before any byte is read (no "+ " for a synchronizing one).
 * Sizes beyond 64 bits are an error of the line itself. */
static void test_imap_parser_literal_over_literal_max_fails_before_reading(void)
{
    static const struct {
        const char *line;
        size_t len;
        uint64_t size;
        int sync, announced;
    } cases[] = {
        {L("a LOGIN {65537}\r\n"), 65537, 1, 1},
        {L("a LOGIN {65537+}\r\n"), 65537, 0, 1},
        {L("a LOGIN {4294967296}\r\n"), 4294967296ULL, 1, 1},
        {L("a LOGIN x {18446744073709551615+}\r\n"), UINT64_MAX, 0, 1},
        {L("a LOGIN {18446744073709551616+}\r\n"), UINT64_MAX, 0, 0},
        {L("a LOGIN {99999999999999999999}\r\n"), UINT64_MAX, 1, 0},
    };

    for (size_t i = 0; i < NITEMS(cases); i++) {
        struct imap_parser *p = imap_parser_new(&limits);
        enum imap_parse_result r = imap_parser_line(p, cases[i].line, cases[i].len);

        CHECK_STR(imap_parser_tag(p), "a");
        CHECK(imap_parser_literal_size(p) == cases[i].size);
        CHECK_INT(imap_parser_literal_sync(p), cases[i].sync);
        CHECK_INT(imap_parser_literal_fits(p), 0);
        if (cases[i].announced) {
            CHECK_INT(r, IMAP_PARSE_LITERAL);
            CHECK(imap_parser_literal_left(p) == cases[i].size);
        } else {
            CHECK_INT(r, IMAP_PARSE_ERROR);
            CHECK_HAS(imap_parser_error(p), "literal too large");
            CHECK_INT(imap_parser_literal_left(p), 0);
            CHECK_INT(imap_parser_literal(p, L("x")), 0);
        }
        imap_parser_free(p);
    }
}

/* A session that feeds a literal that does not fit anyway: the bytes are
 * taken and dropped (the connection stays in step), the command fails with
 * the last one. */
static void test_imap_parser_literal_not_fitting_is_swallowed_then_fails(void)
{
    struct imap_parser *p = imap_parser_new(&limits);
    char *chunk = calloc(1, 65537);

    CHECK_INT(imap_parser_line(p, L("a LOGIN {65537+}\r\n")), IMAP_PARSE_LITERAL);
    CHECK_INT(imap_parser_literal(p, chunk, 65536), 65536);
    CHECK(imap_parser_error(p) == NULL);
    CHECK_INT(imap_parser_literal_left(p), 1);
    CHECK_INT(imap_parser_literal(p, chunk, 65537), 1);
    CHECK_HAS(imap_parser_error(p), "literal too large");
    CHECK_INT(imap_parser_line(p, L(" x\r\n")), IMAP_PARSE_ERROR);
    imap_parser_free(p);
    free(chunk);
}

/* A line that fails for another reason but ends in {n+}: the bytes come. */
static void test_imap_parser_error_line_reports_its_nonsync_literal(void)
{
    struct imap_parser *p = imap_parser_new(&limits);

    CHECK_INT(imap_parser_line(p, L("a X \x01 {5+}\r\n")), IMAP_PARSE_ERROR);
    CHECK_INT(imap_parser_literal_size(p), 5);
    CHECK_INT(imap_parser_literal_sync(p), 0);
    imap_parser_reset(p);
    CHECK_INT(imap_parser_line(p, L("a X ) {7}\r\n")), IMAP_PARSE_ERROR);
    CHECK_INT(imap_parser_literal_size(p), 7);
    CHECK_INT(imap_parser_literal_sync(p), 1);
    imap_parser_reset(p);
    CHECK_INT(imap_parser_line(p, L("a X )\r\n")), IMAP_PARSE_ERROR);
    CHECK_INT(imap_parser_literal_size(p), 0);
    imap_parser_free(p);
}

static void test_imap_parser_literal_sync_and_nonsync_step_by_step(void)
{
    struct imap_parser *p = imap_parser_new(&limits);
    struct sb b;

    CHECK_INT(imap_parser_line(p, L("a LOGIN {4}\r\n")), IMAP_PARSE_LITERAL);
    CHECK_STR(imap_parser_tag(p), "a");
    CHECK_STR(imap_parser_name(p), "LOGIN");
    CHECK_INT(imap_parser_literal_size(p), 4);
    CHECK_INT(imap_parser_literal_sync(p), 1);
    CHECK_INT(imap_parser_literal_fits(p), 1);
    CHECK_INT(imap_parser_literal_left(p), 4);
    CHECK_INT(imap_parser_depth(p), 0);
    /* In pieces, never more than what is due. */
    CHECK_INT(imap_parser_literal(p, L("f")), 1);
    CHECK_INT(imap_parser_literal_left(p), 3);
    CHECK_INT(imap_parser_literal(p, L("redEXTRA")), 3);
    CHECK_INT(imap_parser_literal_left(p), 0);
    CHECK_INT(imap_parser_literal(p, L("X")), 0);
    CHECK_INT(imap_parser_line(p, L(" {3+}\r\n")), IMAP_PARSE_LITERAL);
    CHECK_INT(imap_parser_literal_sync(p), 0);
    CHECK_INT(imap_parser_literal_size(p), 3);
    for (const char *c = "pwd"; *c; c++)
        CHECK_INT(imap_parser_literal(p, c, 1), 1);
    CHECK_INT(imap_parser_line(p, L("\r\n")), IMAP_PARSE_DONE);
    sb_command(&b, p);
    CHECK_STR(b.s, "a LOGIN l:fred l:pwd");
    /* After DONE a further line is a mistake of the caller. */
    CHECK_INT(imap_parser_line(p, L("b NOOP\r\n")), IMAP_PARSE_ERROR);
    imap_parser_free(p);
}

static void test_imap_parser_zero_literal_needs_no_bytes(void)
{
    struct imap_parser *p = imap_parser_new(&limits);
    struct sb b;

    CHECK_INT(imap_parser_line(p, L("a X {0}\r\n")), IMAP_PARSE_LITERAL);
    CHECK_INT(imap_parser_literal_size(p), 0);
    CHECK_INT(imap_parser_literal_sync(p), 1); /* still wants its "+ " */
    CHECK_INT(imap_parser_literal_left(p), 0);
    CHECK_INT(imap_parser_line(p, L("\r\n")), IMAP_PARSE_DONE);
    sb_command(&b, p);
    CHECK_STR(b.s, "a X l:");
    imap_parser_free(p);
}

/* APPEND: the session sees where the literal is and takes the message. */
static void test_imap_parser_append_message_taken_by_the_session(void)
{
    struct imap_parser *p = imap_parser_new(&limits);
    const struct imap_arg *args;
    size_t n;
    struct sb b;

    CHECK_INT(imap_parser_line(p, L("a APPEND {5}\r\n")), IMAP_PARSE_LITERAL);
    args = imap_parser_args(p, &n);
    CHECK_INT(n, 0); /* the mailbox: keep it in memory */
    CHECK_INT(imap_parser_literal(p, L("INBOX")), 5);
    CHECK_INT(imap_parser_line(p, L(" (\\Seen) {310}\r\n")), IMAP_PARSE_LITERAL);
    args = imap_parser_args(p, &n);
    CHECK_INT(n, 2);
    CHECK_INT(imap_parser_depth(p), 0);
    CHECK(n == 2 && args[0].type == IMAP_ARG_LITERAL && args[1].type == IMAP_ARG_LIST);
    imap_parser_literal_external(p);
    CHECK_INT(imap_parser_literal_left(p), 0);
    /* The session has read the 310 bytes itself; MULTIAPPEND goes on. */
    CHECK_INT(imap_parser_line(p, L(" {100000000+}\r\n")), IMAP_PARSE_LITERAL);
    CHECK_INT(imap_parser_literal_fits(p), 0);
    CHECK_INT(imap_parser_literal_sync(p), 0);
    imap_parser_literal_external(p);
    CHECK_INT(imap_parser_line(p, L("\r\n")), IMAP_PARSE_DONE);
    sb_command(&b, p);
    CHECK_STR(b.s, "a APPEND l:INBOX (\\x5cSeen) x:{310} x:{100000000}");
    args = imap_parser_args(p, &n);
    CHECK(n == 4 && args[2].type == IMAP_ARG_LITERAL_EXTERNAL && args[2].len == 310);
    imap_parser_free(p);
}

/* Taking a literal over after feeding some of it is refused. */
static void test_imap_parser_external_after_feeding_is_refused(void)
{
    struct imap_parser *p = imap_parser_new(&limits);

    CHECK_INT(imap_parser_line(p, L("a APPEND INBOX {3}\r\n")), IMAP_PARSE_LITERAL);
    CHECK_INT(imap_parser_literal(p, L("a")), 1);
    imap_parser_literal_external(p);
    CHECK_HAS(imap_parser_error(p), "already being read");
    CHECK_STR(imap_parser_tag(p), "a");
    imap_parser_free(p);
}

static void test_imap_parser_literal_depth_inside_lists(void)
{
    struct imap_parser *p = imap_parser_new(&limits);

    CHECK_INT(imap_parser_line(p, L("a APPEND INBOX CATENATE (TEXT {3}\r\n")), IMAP_PARSE_LITERAL);
    CHECK_INT(imap_parser_depth(p), 1);
    CHECK_INT(imap_parser_literal(p, L("abc")), 3);
    CHECK_INT(imap_parser_line(p, L(")\r\n")), IMAP_PARSE_DONE);
    CHECK_INT(imap_parser_depth(p), 0);
    imap_parser_free(p);
}

static void test_imap_parser_nesting_at_depth_max_and_1000_parentheses(void)
{
    size_t len;
    enum imap_parse_result r;
    struct imap_parser *p;
    char *line;

    /* 32 levels: fine. */
    {
        char *open = repeat("a X ", "(", 32, "", &len);
        char *all = malloc(len + 32 + 3);
        memcpy(all, open, len);
        memset(all + len, ')', 32);
        memcpy(all + len + 32, "\r\n", 3);
        p = parse(&limits, all, len + 34, &r);
        CHECK_INT(r, IMAP_PARSE_DONE);
        imap_parser_free(p);
        free(open);
        free(all);
    }
    /* 33: refused. */
    line = repeat("a X ", "(", 33, "\r\n", &len);
    p = parse(&limits, line, len, &r);
    CHECK_INT(r, IMAP_PARSE_ERROR);
    CHECK_HAS(imap_parser_error(p), "nested too deeply");
    imap_parser_free(p);
    free(line);
    /* 1000, closed or not. */
    line = repeat("a X ", "(", 1000, "\r\n", &len);
    p = parse(&limits, line, len, &r);
    CHECK_INT(r, IMAP_PARSE_ERROR);
    CHECK_HAS(imap_parser_error(p), "nested too deeply");
    CHECK_STR(imap_parser_tag(p), "a");
    imap_parser_free(p);
    free(line);
    line = repeat("a X ", "((", 500, "\r\n", &len);
    p = parse(&limits, line, len, &r);
    CHECK_INT(r, IMAP_PARSE_ERROR);
    imap_parser_free(p);
    free(line);
    /* Nesting across literals counts the same. */
    p = imap_parser_new(&limits);
    r = IMAP_PARSE_LITERAL;
    for (int i = 0; i < 40 && r == IMAP_PARSE_LITERAL; i++) {
        r = imap_parser_line(p, i == 0 ? "a X ({0}\r\n" : " ({0}\r\n", i == 0 ? 10 : 7);
        CHECK(r != IMAP_PARSE_DONE);
    }
    CHECK_INT(r, IMAP_PARSE_ERROR);
    CHECK_HAS(imap_parser_error(p), "nested too deeply");
    imap_parser_free(p);
}

static void test_imap_parser_100000_arguments_are_refused(void)
{
    struct imap_limits big = limits;
    enum imap_parse_result r;
    struct imap_parser *p;
    size_t len;
    char *line;

    big.command_max = 16 * 1024 * 1024; /* so that the count is what trips */
    line = repeat("a X", " 1", 100000, "\r\n", &len);
    p = parse(&big, line, len, &r);
    CHECK_INT(r, IMAP_PARSE_ERROR);
    CHECK_HAS(imap_parser_error(p), "too many arguments");
    imap_parser_free(p);
    free(line);
    /* In lists, they count together: 5000 lists of one element. */
    line = repeat("a X", " (1)", 5000, "\r\n", &len);
    p = parse(&big, line, len, &r);
    CHECK_INT(r, IMAP_PARSE_DONE);
    imap_parser_free(p);
    free(line);
    line = repeat("a X", " (1)", 5001, "\r\n", &len);
    p = parse(&big, line, len, &r);
    CHECK_INT(r, IMAP_PARSE_ERROR);
    imap_parser_free(p);
    free(line);
    /* Exactly args_max: fine, and every one is there. */
    line = repeat("a X", " 7", 10000, "\r\n", &len);
    p = parse(&big, line, len, &r);
    CHECK_INT(r, IMAP_PARSE_DONE);
    {
        size_t n;
        const struct imap_arg *a = imap_parser_args(p, &n);
        CHECK_INT(n, 10000);
        CHECK(n == 10000 && a[9999].type == IMAP_ARG_ATOM && a[9999].s[0] == '7');
    }
    imap_parser_free(p);
    free(line);
    /* Literals count as arguments before any byte is read. */
    p = imap_parser_new(&(struct imap_limits){
        .command_max = 1 << 20, .literal_max = 100, .args_max = 3, .depth_max = 4});
    CHECK_INT(feed(p, L("a X 1 2 {1}\r\n3")), IMAP_PARSE_LITERAL);
    CHECK_INT(imap_parser_line(p, L(" {1}\r\n")), IMAP_PARSE_ERROR);
    CHECK_HAS(imap_parser_error(p), "too many arguments");
    imap_parser_free(p);
}

/* command_max holds for lines and literals together, checked before a
 * literal is read. */
static void test_imap_parser_command_max_across_many_literals(void)
{
    struct imap_parser *p = imap_parser_new(&limits);
    char *chunk = malloc(16384);
    enum imap_parse_result r;
    int literals = 0;

    memset(chunk, 'x', 16384);
    r = imap_parser_line(p, L("a X {16384}\r\n"));
    while (r == IMAP_PARSE_LITERAL && imap_parser_literal_fits(p)) {
        CHECK_INT(imap_parser_literal(p, chunk, 16384), 16384);
        literals++;
        r = imap_parser_line(p, L(" {16384}\r\n"));
    }
    /* The fourth would pass 64 KiB: announced, but it does not fit. */
    CHECK_INT(literals, 3);
    CHECK_INT(r, IMAP_PARSE_LITERAL);
    CHECK_INT(imap_parser_literal(p, chunk, 16384), 16384);
    CHECK_HAS(imap_parser_error(p), "command too long");
    imap_parser_free(p);

    /* Many small literals: the lines count too. */
    p = imap_parser_new(&limits);
    r = imap_parser_line(p, L("a X {1}\r\n"));
    literals = 0;
    while (r == IMAP_PARSE_LITERAL && imap_parser_literal_fits(p) && literals < 100000) {
        CHECK_INT(imap_parser_literal(p, "y", 1), 1);
        literals++;
        r = imap_parser_line(p, L(" {1+}\r\n"));
    }
    CHECK(r == IMAP_PARSE_ERROR || !imap_parser_literal_fits(p));
    CHECK(literals > 65536 / 9 && literals < 65536 / 8);
    imap_parser_free(p);

    /* One line longer than the command may be. */
    {
        size_t len;
        char *line = repeat("a X ", "z", 70000, "\r\n", &len);
        enum imap_parse_result r2;
        struct imap_parser *q = parse(&limits, line, len, &r2);

        CHECK_INT(r2, IMAP_PARSE_ERROR);
        CHECK_HAS(imap_parser_error(q), "command too long");
        imap_parser_free(q);
        free(line);
    }
    free(chunk);
}

static void test_imap_parser_literal_splits_anywhere(void)
{
    static const char msg[] = "a X {12}\r\n1\r\n3\0"
                              "5678}\r\n (z)\r\n";
    struct sb whole, piecewise;

    /* The same command, with the literal fed in every pair of pieces. */
    for (size_t cut = 0; cut <= 12; cut++) {
        struct imap_parser *p = imap_parser_new(&limits);
        const char *lit = msg + 10;

        CHECK_INT(imap_parser_line(p, msg, 10), IMAP_PARSE_LITERAL);
        CHECK_INT(imap_parser_literal(p, lit, cut), cut);
        CHECK_INT(imap_parser_literal(p, lit + cut, 12 - cut), 12 - cut);
        CHECK_INT(imap_parser_line(p, msg + 22, sizeof msg - 1 - 22), IMAP_PARSE_DONE);
        sb_command(cut == 0 ? &whole : &piecewise, p);
        if (cut > 0)
            CHECK_STR(piecewise.s, whole.s);
        imap_parser_free(p);
    }
    CHECK_STR(whole.s, "a X l:1\\x0d\\x0a3\\x005678}\\x0d\\x0a (z)");
}

/* The bracket look-ahead must not rescan the line for every '[': 200,000
 * of them cost one scan (quadratic would take minutes). */
static void test_imap_parser_many_brackets_cost_linear_time(void)
{
    static const char *tails[] = {"\x01]\r\n", "\r\n", " ]\r\n"};
    struct imap_limits big = limits;

    big.command_max = 1 << 20;
    big.args_max = 1000000;
    for (size_t t = 0; t < NITEMS(tails); t++) {
        for (int spaced = 0; spaced < 2; spaced++) {
            size_t len;
            char *line = repeat("a X ", spaced ? "[ " : "[", 200000, tails[t], &len);
            clock_t start = clock();
            enum imap_parse_result r;
            struct imap_parser *p = parse(&big, line, len, &r);

            CHECK((double)(clock() - start) / CLOCKS_PER_SEC < 5.0);
            /* "[[[...\x01]": a control in the atom; the others are atoms of
             * '[' (and one bracketed atom when a ']' follows). */
            CHECK_INT(r, t == 0 ? IMAP_PARSE_ERROR : IMAP_PARSE_DONE);
            imap_parser_free(p);
            free(line);
        }
    }
}

static void test_imap_parser_reset_reuses_the_parser_for_many_commands(void)
{
    struct imap_parser *p = imap_parser_new(NULL); /* the defaults */
    struct sb b;

    for (int i = 0; i < 2000; i++) {
        CHECK_INT(feed(p, L("t1 FETCH 1:* (FLAGS BODY[HEADER.FIELDS (A B)] {3}\r\nabc)\r\n")),
                  IMAP_PARSE_DONE);
        imap_parser_reset(p);
        CHECK_INT(feed(p, L("t2 X (((\r\n")), IMAP_PARSE_ERROR);
        imap_parser_reset(p);
    }
    CHECK_INT(feed(p, L("t3 NOOP\r\n")), IMAP_PARSE_DONE);
    sb_command(&b, p);
    CHECK_STR(b.s, "t3 NOOP");
    imap_parser_free(p);
    imap_parser_free(NULL);
}

/* ---- sequence sets -------------------------------------------------------- */

static void test_imap_seqset_valid_sets_and_normalised_ranges(void)
{
    static const struct {
        const char *s;
        const char *ranges; /* lo:hi,... with * for UINT32_MAX; "$" saved */
    } cases[] = {
        {"1", "1:1"},
        {"1:5", "1:5"},
        {"5:1", "1:5"},
        {"*", "*:*"},
        {"1:*", "1:*"},
        {"*:1", "1:*"},
        {"1,3:4,*", "1:1,3:4,*:*"},
        {"4294967295", "*:*"},
        {"4294967294:2", "2:4294967294"},
        {"10,9,8", "10:10,9:9,8:8"},
        {"$", "$"},
    };

    for (size_t i = 0; i < NITEMS(cases); i++) {
        struct imap_seqset set;
        struct sb b = {.len = 0};

        CHECK_INT(imap_seqset_parse(cases[i].s, strlen(cases[i].s), &set), 0);
        if (set.saved)
            sb_put(&b, "$", 1);
        for (size_t k = 0; k < set.n; k++) {
            if (k > 0)
                sb_put(&b, ",", 1);
            if (set.r[k].lo == UINT32_MAX)
                sb_put(&b, "*", 1);
            else
                sb_printf(&b, "%u", set.r[k].lo);
            if (set.r[k].hi == UINT32_MAX)
                sb_put(&b, ":*", 2);
            else
                sb_printf(&b, ":%u", set.r[k].hi);
            CHECK(set.r[k].lo <= set.r[k].hi);
        }
        CHECK_STR(b.s, cases[i].ranges);
        imap_seqset_free(&set);
        CHECK(set.r == NULL && set.n == 0);
    }
}

static void test_imap_seqset_invalid_sets_are_refused(void)
{
    static const struct {
        const char *s;
        size_t len;
    } bad[] = {
        {L("")},           {L("0")},
        {L("1:")},         {L(":5")},
        {L("a")},          {L("1,,2")},
        {L(",1")},         {L("1,")},
        {L("1:2:3")},      {L("01")},
        {L("1:0")},        {L("0:1")},
        {L("4294967296")}, {L(" 1")},
        {L("1 ")},         {L("$,1")},
        {L("1,$")},        {L("$$")},
        {L("-1")},         {L("1.5")},
        {L("**")},         {L("1:**")},
        {L("*:")},         {L("1;2")},
        {L("1\0")},        {L("99999999999999999999")},
        {L("1:2,")},       {L("+1")},
        {L("1:+2")},
    };

    for (size_t i = 0; i < NITEMS(bad); i++) {
        struct imap_seqset set;

        CHECK_INT(imap_seqset_parse(bad[i].s, bad[i].len, &set), -1);
        CHECK(set.r == NULL && set.n == 0 && set.saved == 0);
    }
}

static void test_imap_seqset_20000_ranges_are_refused(void)
{
    struct imap_seqset set;
    size_t len;
    char *s = repeat("1", ",2:3", 19999, "", &len);

    CHECK_INT(imap_seqset_parse(s, len, &set), -1);
    free(s);
    s = repeat("1", ",2", IMAP_SEQSET_MAX - 1, "", &len);
    CHECK_INT(imap_seqset_parse(s, len, &set), 0);
    CHECK_INT(set.n, IMAP_SEQSET_MAX);
    imap_seqset_free(&set);
    free(s);
    s = repeat("1", ",2", IMAP_SEQSET_MAX, "", &len);
    CHECK_INT(imap_seqset_parse(s, len, &set), -1);
    free(s);
    /* Commas alone count: no allocation for a set that cannot be valid. */
    s = repeat("1", ",", 1000000, "", &len);
    CHECK_INT(imap_seqset_parse(s, len, &set), -1);
    free(s);
}

static void test_imap_seqset_contains_with_star_meaning_max(void)
{
    static const struct {
        const char *s;
        uint32_t v, max;
        int in;
    } cases[] = {
        {"1:5", 3, 10, 1},   {"1:5", 6, 10, 0},
        {"5:1", 1, 10, 1},   {"1:*", 10, 10, 1},
        {"1:*", 11, 10, 0},  {"*", 10, 10, 1},
        {"*", 9, 10, 0},     {"20:*", 10, 10, 1}, /* "20:*" is "10:20" */
        {"20:*", 9, 10, 0},  {"20:*", 15, 10, 1},
        {"*:3", 3, 10, 1},   {"*:3", 2, 10, 0},
        {"2,4,6", 4, 10, 1}, {"2,4,6", 5, 10, 0},
        {"1:*", 0, 10, 0},   {"*", 1, 0, 0},
        {"$", 1, 10, 0},     {"4294967295", 4294967295u, 4294967295u, 1},
    };

    for (size_t i = 0; i < NITEMS(cases); i++) {
        struct imap_seqset set;

        CHECK_INT(imap_seqset_parse(cases[i].s, strlen(cases[i].s), &set), 0);
        CHECK_INT(imap_seqset_contains(&set, cases[i].v, cases[i].max), cases[i].in);
        imap_seqset_free(&set);
    }
}

/* ---- fetch attributes ---------------------------------------------------- */

static const char *section_text_name(enum imap_section_text t)
{
    static const char *names[] = {"ALL",  "HEADER", "HEADER.FIELDS", "HEADER.FIELDS.NOT",
                                  "TEXT", "MIME"};
    return names[t];
}

/* "kind peek parts text fields partial name" for each attribute. */
static void sb_fetch(struct sb *b, const struct imap_fetch_atts *f)
{
    for (size_t i = 0; i < f->n; i++) {
        const struct imap_fetch_att *a = &f->a[i];

        if (i > 0)
            sb_put(b, " | ", 3);
        sb_printf(b, "%d%s", (int)a->kind, a->peek ? " peek" : "");
        if (a->nparts > 0) {
            sb_put(b, " part=", 6);
            for (size_t k = 0; k < a->nparts; k++)
                sb_printf(b, k ? ".%u" : "%u", a->part[k]);
        }
        if (a->text != IMAP_SECTION_ALL)
            sb_printf(b, " %s", section_text_name(a->text));
        for (size_t k = 0; k < a->nfields; k++)
            sb_printf(b, "%s%s", k ? "," : " fields=", a->fields[k]);
        if (a->partial)
            sb_printf(b, " <%llu.%llu>", (unsigned long long)a->offset,
                      (unsigned long long)a->count);
        sb_printf(b, " %s", a->name);
    }
}

/* FETCH's attribute argument as the parser delivers it. */
static int fetch_parse(const char *atts, struct imap_fetch_atts *out, const char **why,
                       struct imap_parser **pp)
{
    char line[4096];
    int n = snprintf(line, sizeof line, "a FETCH 1 %s\r\n", atts);
    size_t nargs;
    const struct imap_arg *args;

    *pp = imap_parser_new(&limits);
    if (imap_parser_line(*pp, line, (size_t)n) != IMAP_PARSE_DONE) {
        *why = imap_parser_error(*pp);
        return -2;
    }
    args = imap_parser_args(*pp, &nargs);
    if (nargs != 2) {
        *why = "not one argument";
        return -2;
    }
    return imap_fetch_atts_parse(&args[1], out, why);
}

static void test_imap_fetch_attributes_valid_with_reply_names(void)
{
    static const struct {
        const char *in;
        const char *out;
    } cases[] = {
        {"ALL", "1 peek FLAGS | 2 peek INTERNALDATE | 3 peek RFC822.SIZE | 4 peek ENVELOPE"},
        {"fast", "1 peek FLAGS | 2 peek INTERNALDATE | 3 peek RFC822.SIZE"},
        {"FULL", "1 peek FLAGS | 2 peek INTERNALDATE | 3 peek RFC822.SIZE | 4 peek ENVELOPE"
                 " | 6 peek BODY"},
        {"UID", "0 peek UID"},
        {"(uid flags internaldate rfc822.size envelope bodystructure body modseq)",
         "0 peek UID | 1 peek FLAGS | 2 peek INTERNALDATE | 3 peek RFC822.SIZE | 4 peek ENVELOPE"
         " | 5 peek BODYSTRUCTURE | 6 peek BODY | 13 peek MODSEQ"},
        {"(RFC822 RFC822.HEADER RFC822.TEXT)",
         "7 RFC822 | 8 peek HEADER RFC822.HEADER | 9 TEXT RFC822.TEXT"},
        {"BODY[]", "10 BODY[]"},
        {"body.peek[]", "10 peek BODY[]"},
        {"BODY.PEEK[HEADER]", "10 peek HEADER BODY[HEADER]"},
        {"BODY.PEEK[HEADER]<0.100>", "10 peek HEADER <0.100> BODY[HEADER]<0>"},
        {"BODY[TEXT]<1024.4096>", "10 TEXT <1024.4096> BODY[TEXT]<1024>"},
        {"BODY[1]", "10 part=1 BODY[1]"},
        {"BODY[1.2.3]", "10 part=1.2.3 BODY[1.2.3]"},
        {"BODY[1.2.MIME]", "10 part=1.2 MIME BODY[1.2.MIME]"},
        {"BODY[3.HEADER]", "10 part=3 HEADER BODY[3.HEADER]"},
        {"BODY[3.text]", "10 part=3 TEXT BODY[3.TEXT]"},
        {"BODY.PEEK[HEADER.FIELDS (DATE FROM)]<0.2048>",
         "10 peek HEADER.FIELDS fields=DATE,FROM <0.2048> BODY[HEADER.FIELDS (DATE FROM)]<0>"},
        {"BODY[header.fields.not (x-spam received)]",
         "10 HEADER.FIELDS.NOT fields=X-SPAM,RECEIVED BODY[HEADER.FIELDS.NOT (X-SPAM RECEIVED)]"},
        {"BODY[2.HEADER.FIELDS (Subject)]",
         "10 part=2 HEADER.FIELDS fields=SUBJECT BODY[2.HEADER.FIELDS (SUBJECT)]"},
        {"BODY[HEADER.FIELDS (\"Date\" \"x%\" \"a\\\\b\" \"{\")]",
         "10 HEADER.FIELDS fields=DATE,X%,A\\B,{ BODY[HEADER.FIELDS (DATE \"X%\" \"A\\\\B\" "
         "\"{\")]"},
        {"BINARY[]", "11 BINARY[]"},
        {"BINARY.PEEK[1.2]<0.10>", "11 peek part=1.2 <0.10> BINARY[1.2]<0>"},
        {"BINARY.SIZE[3]", "12 peek part=3 BINARY.SIZE[3]"},
        {"(FLAGS BODY.PEEK[1] UID)", "1 peek FLAGS | 10 peek part=1 BODY[1] | 0 peek UID"},
        {"BODY[]<0.9223372036854775807>", "10 <0.9223372036854775807> BODY[]<0>"},
        {"BODY[4294967295]", "10 part=4294967295 BODY[4294967295]"},
        {"BODY[1.2.3.4.5.6.7.8.9.10.11.12.13.14.15.16]",
         "10 part=1.2.3.4.5.6.7.8.9.10.11.12.13.14.15.16 "
         "BODY[1.2.3.4.5.6.7.8.9.10.11.12.13.14.15.16]"},
    };

    for (size_t i = 0; i < NITEMS(cases); i++) {
        struct imap_fetch_atts f;
        struct imap_parser *p;
        const char *why = NULL;
        struct sb b = {.len = 0};
        int rc = fetch_parse(cases[i].in, &f, &why, &p);

        CHECK_INT(rc, 0);
        if (rc != 0) {
            fprintf(stderr, "  case %s: %s\n", cases[i].in, why ? why : "?");
        } else {
            sb_fetch(&b, &f);
            CHECK_STR(b.s, cases[i].out);
            imap_fetch_atts_free(&f);
            CHECK(f.a == NULL && f.n == 0);
        }
        imap_parser_free(p);
    }
}

static void test_imap_fetch_attributes_invalid_are_refused_with_a_reason(void)
{
    static const char *bad[] = {
        "FOO",
        "BODY.PEEK",
        "BODYX",
        "BODY<0.1>",
        "\"FLAGS\"",
        "NIL",
        "()",
        "(ALL)",
        "(FLAGS (UID))",
        "(FLAGS \"UID\")",
        "BODY[MIME]",
        "BODY[0]",
        "BODY[01]",
        "BODY[1.]",
        "BODY[.1]",
        "BODY[1..2]",
        "BODY[1.0]",
        "BODY[4294967296]",
        "BODY[HEADER.FIELDS]",
        "BODY[HEADER.FIELDS ()]",
        "BODY[HEADER.FIELDS (A:B)]",
        "BODY[HEADER.FIELDS (\"a b\")]",
        "BODY[HEADER.FIELDS (\"\")]",
        "BODY[HEADER.FIELDS(A)]",
        "BODY[HEADER.FIELDS (A )]",
        "BODY[HEADER.FIELDS  (A)]",
        "BODY[HEADER.FIELDS (A) ]",
        "BODY[HEADER.FIELDS (A)",
        "BODY[HEADERX]",
        "BODY[TEXT.1]",
        "BODY[1.MIME.TEXT]",
        "BODY[]<0.0>",
        "BODY[]<.5>",
        "BODY[]<1.2",
        "BODY[]<1>",
        "BODY[]<01.2>",
        "BODY[]<1.02>",
        "BODY[]<-1.2>",
        "BODY[]<0.9223372036854775808>",
        "BODY[]x",
        "BODY[]]",
        "BODY[][]",
        "BINARY[HEADER]",
        "BINARY[1.MIME]",
        "BINARY.SIZE[1]<0.1>",
        "BINARY.SIZE",
        "RFC822.PEEK",
        "BODY[1.2.3.4.5.6.7.8.9.10.11.12.13.14.15.16.17]",
        "(BODY[] FAST)",
    };

    for (size_t i = 0; i < NITEMS(bad); i++) {
        struct imap_fetch_atts f;
        struct imap_parser *p;
        const char *why = NULL;
        int rc = fetch_parse(bad[i], &f, &why, &p);

        CHECK(rc != 0);
        if (rc == 0) {
            fprintf(stderr, "  accepted: %s\n", bad[i]);
            imap_fetch_atts_free(&f);
        } else {
            CHECK(why != NULL && *why != '\0');
            if (rc == -1)
                CHECK(f.a == NULL && f.n == 0);
        }
        imap_parser_free(p);
    }
}

static void test_imap_fetch_header_fields_bounded_at_64(void)
{
    struct sb list = {.len = 0};
    struct imap_fetch_atts f;
    struct imap_parser *p;
    const char *why;

    sb_put(&list, "BODY[HEADER.FIELDS (", 20);
    for (int i = 0; i < IMAP_HEADER_FIELDS_MAX; i++)
        sb_printf(&list, i ? " X-%d" : "X-%d", i);
    sb_put(&list, ")]", 2);
    CHECK_INT(fetch_parse(list.s, &f, &why, &p), 0);
    CHECK_INT(f.n == 1 ? f.a[0].nfields : 0, IMAP_HEADER_FIELDS_MAX);
    imap_fetch_atts_free(&f);
    imap_parser_free(p);
    list.len -= 2;
    sb_put(&list, " ONE-MORE)]", 11);
    CHECK_INT(fetch_parse(list.s, &f, &why, &p), -1);
    CHECK_HAS(why, "too many header names");
    imap_parser_free(p);
}

/* ---- search keys --------------------------------------------------------- */

static void sb_search(struct sb *b, const struct imap_search_key *k)
{
    static const char *kinds[] = {
        "ALL",     "AND",       "OR",     "NOT",  "SEQ",   "UID",        "FLAG",   "UNFLAG",
        "KEYWORD", "UNKEYWORD", "BEFORE", "ON",   "SINCE", "SENTBEFORE", "SENTON", "SENTSINCE",
        "LARGER",  "SMALLER",   "HEADER", "BODY", "TEXT",  "MODSEQ",
    };

    sb_printf(b, "%s", kinds[k->kind]);
    switch (k->kind) {
    case IMAP_SK_FLAG:
    case IMAP_SK_UNFLAG:
        sb_printf(b, ":%u", k->flag);
        break;
    case IMAP_SK_SEQSET:
    case IMAP_SK_UID:
        if (k->set.saved)
            sb_put(b, ":$", 2);
        for (size_t i = 0; i < k->set.n; i++)
            sb_printf(b, "%s%u-%u", i ? "," : ":", k->set.r[i].lo, k->set.r[i].hi);
        break;
    case IMAP_SK_KEYWORD:
    case IMAP_SK_UNKEYWORD:
        sb_printf(b, ":%s", k->name);
        break;
    case IMAP_SK_BEFORE:
    case IMAP_SK_ON:
    case IMAP_SK_SINCE:
    case IMAP_SK_SENTBEFORE:
    case IMAP_SK_SENTON:
    case IMAP_SK_SENTSINCE:
        sb_printf(b, ":%lld", (long long)k->date);
        break;
    case IMAP_SK_LARGER:
    case IMAP_SK_SMALLER:
    case IMAP_SK_MODSEQ:
        sb_printf(b, ":%llu", (unsigned long long)k->number);
        break;
    case IMAP_SK_HEADER:
        sb_printf(b, ":%s", k->name);
        /* fall through */
    case IMAP_SK_BODY:
    case IMAP_SK_TEXT:
        sb_put(b, ":\"", 2);
        sb_bytes(b, k->value, k->value_len);
        sb_put(b, "\"", 1);
        break;
    default:
        break;
    }
    if (k->nsub > 0) {
        sb_put(b, "(", 1);
        for (size_t i = 0; i < k->nsub; i++) {
            if (i > 0)
                sb_put(b, " ", 1);
            sb_search(b, &k->sub[i]);
        }
        sb_put(b, ")", 1);
    }
}

/* SEARCH's keys as the parser delivers them (the input may hold literals). */
static struct imap_search_key *search_parse(const char *keys, size_t len, const char **why,
                                            int *parsed)
{
    char line[8192];
    struct imap_parser *p = imap_parser_new(&limits);
    struct imap_search_key *k = NULL;
    const struct imap_arg *args;
    size_t nargs;

    if (len + 12 > sizeof line) {
        *parsed = 0;
        imap_parser_free(p);
        return NULL;
    }
    memcpy(line, "a SEARCH ", 9);
    memcpy(line + 9, keys, len);
    memcpy(line + 9 + len, "\r\n", 2);
    *parsed = feed(p, line, len + 11) == IMAP_PARSE_DONE;
    if (*parsed) {
        args = imap_parser_args(p, &nargs);
        k = imap_search_parse(args, nargs, why);
    } else {
        *why = imap_parser_error(p);
    }
    imap_parser_free(p);
    return k;
}

static void test_imap_search_keys_valid_trees(void)
{
    static const struct {
        const char *in;
        size_t len;
        const char *tree;
    } cases[] = {
        {L("ALL"), "AND(ALL)"},
        {L("answered deleted draft flagged seen recent"),
         "AND(FLAG:2 FLAG:8 FLAG:16 FLAG:4 FLAG:1 FLAG:32)"},
        {L("UNANSWERED UNDELETED UNDRAFT UNFLAGGED UNSEEN OLD"),
         "AND(UNFLAG:2 UNFLAG:8 UNFLAG:16 UNFLAG:4 UNFLAG:1 UNFLAG:32)"},
        {L("NEW"), "AND(AND(FLAG:32 UNFLAG:1))"},
        {L("KEYWORD $Junk UNKEYWORD foo"), "AND(KEYWORD:$Junk UNKEYWORD:foo)"},
        {L("BEFORE 1-Jan-2026 ON \"02-Jan-2026\" SINCE 1-jan-1970"),
         "AND(BEFORE:1767225600 ON:1767312000 SINCE:0)"},
        {L("SENTBEFORE 1-Jan-2026 SENTON 1-Jan-2026 SENTSINCE 1-Jan-2026"),
         "AND(SENTBEFORE:1767225600 SENTON:1767225600 SENTSINCE:1767225600)"},
        {L("LARGER 100 SMALLER 5000"), "AND(LARGER:100 SMALLER:5000)"},
        {L("FROM alice CC \"b b\" BCC c TO d SUBJECT \"hi there\""),
         "AND(HEADER:FROM:\"alice\" HEADER:CC:\"b b\" HEADER:BCC:\"c\" HEADER:TO:\"d\""
         " HEADER:SUBJECT:\"hi there\")"},
        {L("HEADER X-Spam yes HEADER Message-ID \"\""),
         "AND(HEADER:X-SPAM:\"yes\" HEADER:MESSAGE-ID:\"\")"},
        {L("BODY {3}\r\na\0c TEXT NIL"), "AND(BODY:\"a\\x00c\" TEXT:\"NIL\")"},
        {L("1:5,7 UID 3:*"), "AND(SEQ:1-5,7-7 UID:3-4294967295)"},
        {L("$ UID $"), "AND(SEQ:$ UID:$)"},
        {L("NOT SEEN"), "AND(NOT(FLAG:1))"},
        {L("NOT (SEEN DELETED)"), "AND(NOT(AND(FLAG:1 FLAG:8)))"},
        {L("OR FROM a TO b"), "AND(OR(HEADER:FROM:\"a\" HEADER:TO:\"b\"))"},
        {L("OR (1 2) NOT 3 4"), "AND(OR(AND(SEQ:1-1 SEQ:2-2) NOT(SEQ:3-3)) SEQ:4-4)"},
        {L("((ALL))"), "AND(AND(AND(ALL)))"},
        {L("MODSEQ 620162338"), "AND(MODSEQ:620162338)"},
        {L("MODSEQ \"/flags/\\\\draft\" all 620162338"), "AND(MODSEQ:620162338)"},
        {L("MODSEQ 0"), "AND(MODSEQ:0)"},
        {L("MODSEQ 9223372036854775807"), "AND(MODSEQ:9223372036854775807)"},
        {L("SUBJECT \"caf\xc3\xa9\""), "AND(HEADER:SUBJECT:\"caf\\xc3\\xa9\")"},
    };

    for (size_t i = 0; i < NITEMS(cases); i++) {
        const char *why = NULL;
        int parsed;
        struct imap_search_key *k = search_parse(cases[i].in, cases[i].len, &why, &parsed);
        struct sb b = {.len = 0};

        CHECK(k != NULL);
        if (k == NULL) {
            fprintf(stderr, "  case %zu: %s\n", i, why ? why : "?");
            continue;
        }
        sb_search(&b, k);
        CHECK_STR(b.s, cases[i].tree);
        imap_search_free(k);
    }
}

static void test_imap_search_invalid_keys_are_refused_with_a_reason(void)
{
    static const struct {
        const char *in;
        size_t len;
    } bad[] = {
        {L("FOO")},
        {L("FROM")},
        {L("()")},
        {L("NOT")},
        {L("OR SEEN")},
        {L("OR")},
        {L("\"ALL\"")},
        {L("NIL")},
        {L("SINCE 32-Jan-2026")},
        {L("SINCE 1-Jan-26")},
        {L("BEFORE x")},
        {L("ON (1-Jan-2026)")},
        {L("LARGER -1")},
        {L("LARGER abc")},
        {L("LARGER \"5\"")},
        {L("SMALLER")},
        {L("LARGER 9223372036854775808")},
        {L("UID a")},
        {L("UID")},
        {L("0")},
        {L("1,,2")},
        {L("1:")},
        {L("UID (1)")},
        {L("HEADER \"\" x")},
        {L("HEADER a:b x")},
        {L("HEADER X")},
        {L("HEADER (a) b")},
        {L("HEADER \"a b\" c")},
        {L("KEYWORD \\Seen")},
        {L("KEYWORD")},
        {L("KEYWORD \"x\"")},
        {L("KEYWORD a]")},
        {L("SUBJECT (x)")},
        {L("MODSEQ")},
        {L("MODSEQ x")},
        {L("MODSEQ \"/foo\" all 1")},
        {L("MODSEQ \"/flags/x\" bogus 1")},
        {L("MODSEQ \"/flags/x\" all")},
        {L("MODSEQ \"/flags/x\"")},
        {L("MODSEQ 9223372036854775808")},
        {L("MODSEQ -1")},
        {L("ALL UNKNOWN")},
    };

    for (size_t i = 0; i < NITEMS(bad); i++) {
        const char *why = NULL;
        int parsed;
        struct imap_search_key *k = search_parse(bad[i].in, bad[i].len, &why, &parsed);

        CHECK(k == NULL);
        if (k != NULL) {
            fprintf(stderr, "  accepted: %s\n", bad[i].in);
            imap_search_free(k);
        }
        CHECK(why != NULL && *why != '\0');
    }
    /* No keys at all. */
    {
        const char *why = NULL;
        CHECK(imap_search_parse(NULL, 0, &why) == NULL);
        CHECK_HAS(why, "missing search key");
    }
}

static void test_imap_search_depth_and_key_count_are_bounded(void)
{
    struct imap_limits big = limits;
    const char *why;
    size_t len;
    char *s;
    struct imap_parser *p;
    const struct imap_arg *args;
    size_t nargs;
    struct imap_search_key *k;

    big.command_max = 1 << 20;
    big.depth_max = 100;
    p = imap_parser_new(&big);
    /* 31 NOTs fit IMAP_SEARCH_DEPTH, 33 do not; 1000 do not either. */
    static const struct {
        size_t n;
        int ok;
    } nots[] = {{31, 1}, {32, 1}, {33, 0}, {1000, 0}};
    for (size_t i = 0; i < NITEMS(nots); i++) {
        s = repeat("a SEARCH", " NOT", nots[i].n, " SEEN\r\n", &len);
        imap_parser_reset(p);
        CHECK_INT(feed(p, s, len), IMAP_PARSE_DONE);
        args = imap_parser_args(p, &nargs);
        k = imap_search_parse(args, nargs, &why);
        CHECK_INT(k != NULL, nots[i].ok);
        if (k == NULL)
            CHECK_HAS(why, "nested too deeply");
        imap_search_free(k);
        free(s);
    }
    /* Parentheses count the same (the parser allows 100 here). */
    s = repeat("a SEARCH ", "(", 40, "SEEN", &len);
    {
        char *t = malloc(len + 40 + 3);
        memcpy(t, s, len);
        memset(t + len, ')', 40);
        memcpy(t + len + 40, "\r\n", 3);
        imap_parser_reset(p);
        CHECK_INT(feed(p, t, len + 42), IMAP_PARSE_DONE);
        args = imap_parser_args(p, &nargs);
        k = imap_search_parse(args, nargs, &why);
        CHECK(k == NULL);
        CHECK_HAS(why, "nested too deeply");
        free(t);
    }
    free(s);
    /* 1000 keys (999 and the root): fine; 1001: refused. */
    s = repeat("a SEARCH", " ALL", IMAP_SEARCH_KEYS_MAX - 1, "\r\n", &len);
    imap_parser_reset(p);
    CHECK_INT(feed(p, s, len), IMAP_PARSE_DONE);
    args = imap_parser_args(p, &nargs);
    k = imap_search_parse(args, nargs, &why);
    CHECK(k != NULL && k->nsub == IMAP_SEARCH_KEYS_MAX - 1);
    imap_search_free(k);
    free(s);
    s = repeat("a SEARCH", " ALL", IMAP_SEARCH_KEYS_MAX, "\r\n", &len);
    imap_parser_reset(p);
    CHECK_INT(feed(p, s, len), IMAP_PARSE_DONE);
    args = imap_parser_args(p, &nargs);
    k = imap_search_parse(args, nargs, &why);
    CHECK(k == NULL);
    CHECK_HAS(why, "too many search keys");
    free(s);
    /* Many shallow ORs hit the count. */
    s = repeat("a SEARCH", " OR ALL ALL", 600, "\r\n", &len);
    imap_parser_reset(p);
    CHECK_INT(feed(p, s, len), IMAP_PARSE_DONE);
    args = imap_parser_args(p, &nargs);
    k = imap_search_parse(args, nargs, &why);
    CHECK(k == NULL);
    CHECK_HAS(why, "too many search keys");
    free(s);
    imap_parser_free(p);
}

/* ---- flags ------------------------------------------------------------------ */

static int flags_parse(const char *arg, struct imap_flags *f)
{
    char line[8192];
    int n = snprintf(line, sizeof line, "a STORE 1 FLAGS %s\r\n", arg);
    struct imap_parser *p = imap_parser_new(&limits);
    const struct imap_arg *args;
    size_t nargs;
    int rc = -2;

    if (imap_parser_line(p, line, (size_t)n) == IMAP_PARSE_DONE) {
        args = imap_parser_args(p, &nargs);
        if (nargs == 3)
            rc = imap_flags_parse(&args[2], f);
    }
    imap_parser_free(p);
    return rc;
}

static void test_imap_flags_system_flags_and_keywords(void)
{
    struct imap_flags f;

    CHECK_INT(flags_parse("(\\Seen \\answered $Label foo)", &f), 0);
    CHECK_INT(f.system, IMAP_FLAG_SEEN | IMAP_FLAG_ANSWERED);
    CHECK_INT(f.nkeywords, 2);
    CHECK_STR(f.keywords[0], "$Label");
    CHECK_STR(f.keywords[1], "foo");
    CHECK_INT(flags_parse("\\DELETED", &f), 0);
    CHECK_INT(f.system, IMAP_FLAG_DELETED);
    CHECK_INT(flags_parse("(\\Flagged \\Draft \\Deleted \\Seen \\Answered)", &f), 0);
    CHECK_INT(f.system, 0x1f);
    CHECK_INT(flags_parse("()", &f), 0);
    CHECK_INT(f.system, 0);
    CHECK_INT(f.nkeywords, 0);
    CHECK_INT(flags_parse("(a A a b)", &f), 0); /* duplicates, ignoring case */
    CHECK_INT(f.nkeywords, 2);
    CHECK_INT(flags_parse("NIL", &f), 0); /* an atom, so a keyword */
    CHECK_INT(f.nkeywords, 1);
}

static void test_imap_flags_bad_flags_are_refused(void)
{
    static const char *bad[] = {
        "\\Recent", "(\\Seen \\Recent)",
        "\\Foo",    "(\\Seen (x))",
        "\"x\"",    "(\"x\")",
        "(a])",     "a]",
        "(\\)",     "(x%)",
        "(x*)",
    };
    struct imap_flags f;
    struct sb s = {.len = 0};

    for (size_t i = 0; i < NITEMS(bad); i++) {
        CHECK(flags_parse(bad[i], &f) != 0);
        if (flags_parse(bad[i], &f) == 0)
            fprintf(stderr, "  accepted: %s\n", bad[i]);
    }
    /* 64 keywords of 64 bytes: fine; one more keyword, or a byte more: not. */
    sb_put(&s, "(", 1);
    for (int i = 0; i < IMAP_KEYWORDS_MAX; i++)
        sb_printf(&s, "%s%060d%03d", i ? " k" : "k", 0, i);
    sb_put(&s, ")", 1);
    CHECK_INT(flags_parse(s.s, &f), 0);
    CHECK_INT(f.nkeywords, IMAP_KEYWORDS_MAX);
    CHECK_INT(strlen(f.keywords[63]), IMAP_KEYWORD_LEN);
    s.len--;
    sb_put(&s, " extra)", 7);
    CHECK_INT(flags_parse(s.s, &f), -1);
    s.len = 0;
    sb_printf(&s, "k%064d", 0); /* 65 bytes */
    CHECK_INT(flags_parse(s.s, &f), -1);
}

/* ---- dates ------------------------------------------------------------------ */

static void test_imap_dates_and_date_times(void)
{
    static const struct {
        const char *s;
        int datetime;
        int rc;
        long long t;
    } cases[] = {
        {"01-Jan-2026 12:00:00 +0100", 1, 0, 1767265200},
        {" 1-Jan-2026 12:00:00 +0100", 1, 0, 1767265200},
        {"1-jan-2026 12:00:00 +0100", 1, 0, 1767265200},
        {"01-Jan-2026 11:00:00 +0000", 1, 0, 1767265200},
        {"01-Jan-2026 06:30:00 -0430", 1, 0, 1767265200},
        {"29-Feb-2024 23:59:60 -1200", 1, 0, 1709294400},
        {"01-Jan-1970 00:00:00 +0000", 1, 0, 0},
        {"29-Feb-2025 00:00:00 +0000", 1, -1, 0},
        {"31-Apr-2026 00:00:00 +0000", 1, -1, 0},
        {"00-Jan-2026 00:00:00 +0000", 1, -1, 0},
        {"01-Jan-2026 24:00:00 +0000", 1, -1, 0},
        {"01-Jan-2026 00:60:00 +0000", 1, -1, 0},
        {"01-Jan-2026 00:00:61 +0000", 1, -1, 0},
        {"01-Jan-2026 00:00:00 +0060", 1, -1, 0},
        {"01-Foo-2026 00:00:00 +0000", 1, -1, 0},
        {"01-Jan-26 00:00:00 +0000", 1, -1, 0},
        {"01-Jan-2026 00:00:00", 1, -1, 0},
        {"01-Jan-2026 00:00:00 0000", 1, -1, 0},
        {"01-Jan-2026 00:00:00 +00000", 1, -1, 0},
        {"01-Jan-2026 0:00:00 +0000", 1, -1, 0},
        {"01-Jan-2026  00:00:00 +0000", 1, -1, 0},
        {" 10-Jan-2026 00:00:00 +0000", 1, -1, 0},
        {"", 1, -1, 0},
        {"1-Jan-1970", 0, 0, 0},
        {"31-Dec-1969", 0, 0, -86400},
        {"01-Jan-2026", 0, 0, 1767225600},
        {"2-JAN-2026", 0, 0, 1767312000},
        {"29-Feb-2000", 0, 0, 951782400},
        {"29-Feb-1900", 0, -1, 0},
        {"1-Jan-2026 ", 0, -1, 0},
        {"001-Jan-2026", 0, -1, 0},
        {"1-January-2026", 0, -1, 0},
        {"1 Jan 2026", 0, -1, 0},
        {"", 0, -1, 0},
    };

    for (size_t i = 0; i < NITEMS(cases); i++) {
        time_t t = 12345;
        int rc = cases[i].datetime ? imap_datetime_parse(cases[i].s, strlen(cases[i].s), &t)
                                   : imap_date_parse(cases[i].s, strlen(cases[i].s), &t);

        CHECK_INT(rc, cases[i].rc);
        if (rc != cases[i].rc)
            fprintf(stderr, "  case \"%s\"\n", cases[i].s);
        if (rc == 0 && cases[i].rc == 0)
            CHECK_INT(t, cases[i].t);
    }
}

/* ---- mailbox names, UTF-8, quoting ---------------------------------------- */

static void test_imap_mailbox_names_modified_utf7_and_utf8(void)
{
    static const struct {
        const char *s;
        size_t len;
        int utf8, rc;
    } cases[] = {
        {L("INBOX"), 0, 0},
        {L("inbox"), 0, 0},
        {L("a/b.c [x]"), 0, 0},
        {L("&-"), 0, 0},
        {L("a&-b&-"), 0, 0},
        {L("Entw&APw-rfe"), 0, 0},
        {L("&ZeVnLIqe-"), 0, 0},
        {L("&2D3eAA-"), 0, 0},
        {L("&AOk-&-"), 0, 0},
        {L("&AOk-x&AOk-"), 0, 0},
        {L(""), 0, -1},
        {L("a%"), 0, -1},
        {L("a*"), 0, -1},
        {L("tab\there"), 0, -1},
        {L("a\x7f"), 0, -1},
        {L("a\0b"), 0, -1},
        {L("Entw\xc3\xbcrfe"), 0, -1},
        {L("&"), 0, -1},
        {L("a&"), 0, -1},
        {L("&Jjo"), 0, -1},
        {L("&AOk-&AOk-"), 0, -1}, /* "-&": a null shift */
        {L("&AEE-"), 0, -1},      /* 'A' must be itself */
        {L("&ACA-"), 0, -1},      /* so must SP */
        {L("&AAA-"), 0, -1},      /* NUL */
        {L("&2D0-"), 0, -1},      /* a high surrogate alone */
        {L("&2D3YPQ-"), 0, -1},   /* high, high */
        {L("&3gA-"), 0, -1},      /* a low surrogate alone */
        {L("&AOl-"), 0, -1},      /* padding bits not zero */
        {L("&AOkA-"), 0, -1},     /* a stray sextet */
        {L("&A-"), 0, -1},
        {L("&Ze*-"), 0, -1},
        {L("&Ze/n-"), 0, -1}, /* '/' is ',' in modified BASE64 */
        {L("&AOk=-"), 0, -1},
        {L("Entw\xc3\xbcrfe"), 1, 0},
        {L("&"), 1, 0},
        {L("&AOk-&AOk-"), 1, 0},
        {L("\xff"), 1, -1},
        {L("\xc0\xaf"), 1, -1},
        {L("a\x01"), 1, -1},
        {L("a%"), 1, -1},
    };
    char name[IMAP_MAILBOX_NAME_MAX + 1];

    for (size_t i = 0; i < NITEMS(cases); i++) {
        int rc = imap_mailbox_name_valid(cases[i].s, cases[i].len, cases[i].utf8);

        CHECK_INT(rc, cases[i].rc);
        if (rc != cases[i].rc)
            fprintf(stderr, "  case %zu \"%s\"\n", i, cases[i].s);
    }
    memset(name, 'a', sizeof name);
    CHECK_INT(imap_mailbox_name_valid(name, IMAP_MAILBOX_NAME_MAX, 0), 0);
    CHECK_INT(imap_mailbox_name_valid(name, IMAP_MAILBOX_NAME_MAX + 1, 0), -1);
}

static void test_imap_utf8_validity(void)
{
    static const struct {
        const char *s;
        size_t len;
        int rc;
    } cases[] = {
        {L(""), 0},
        {L("ascii"), 0},
        {L("\xc3\xa9"), 0},
        {L("\xe2\x82\xac"), 0},
        {L("\xf0\x9f\x98\x80"), 0},
        {L("\xf4\x8f\xbf\xbf"), 0},
        {L("\xed\x9f\xbf"), 0},
        {L("\x80"), -1},
        {L("\xc3"), -1},
        {L("\xc1\xbf"), -1},
        {L("\xe0\x80\x80"), -1},
        {L("\xed\xa0\x80"), -1},
        {L("\xf0\x80\x80\x80"), -1},
        {L("\xf4\x90\x80\x80"), -1},
        {L("\xf5\x80\x80\x80"), -1},
        {L("\xe2\x82"), -1},
        {L("\xe2\x28\xac"), -1},
        {L("\xff"), -1},
    };

    for (size_t i = 0; i < NITEMS(cases); i++)
        CHECK_INT(imap_utf8_valid(cases[i].s, cases[i].len), cases[i].rc);
}

/* Both directions of a pair, and every buffer too small for it. */
static void check_convert(int (*conv)(const char *, size_t, char *, size_t), const char *in,
                          size_t inlen, const char *want)
{
    char out[IMAP_MAILBOX_UTF8_MAX + 2];
    size_t n = strlen(want);

    memset(out, '#', sizeof out);
    CHECK_INT(conv(in, inlen, out, sizeof out), 0);
    CHECK(strcmp(out, want) == 0);
    if (strcmp(out, want) != 0)
        fprintf(stderr, "  \"%s\" gave \"%s\", not \"%s\"\n", in, out, want);
    for (size_t cap = 0; cap <= n; cap++) {
        memset(out, '#', sizeof out);
        CHECK_INT(conv(in, inlen, out, cap), -1);
        CHECK(cap == 0 ? out[0] == '#' : out[0] == '\0');
        CHECK(out[cap] == '#');
    }
}

static void test_imap_mailbox_names_utf8_and_modified_utf7_both_ways(void)
{
    static const struct {
        const char *mutf7, *utf8;
    } pairs[] = {
        {"", ""},
        {"INBOX", "INBOX"},
        {"&-", "&"},
        {"a&-b&-", "a&b&"},
        {"&-AOQ-", "&AOQ-"}, /* what looks like a shift in UTF-8 is just text */
        {"a%b*", "a%b*"},    /* wildcards are the name's rules, not the encoding's */
        {"Entw&APw-rfe", "Entw\xc3\xbcrfe"},
        {"Entw&APw-rfe/&AMQ-rger &- Co", "Entw\xc3\xbcrfe/\xc3\x84rger & Co"},
        {"&ZeVnLIqe-", "\xe6\x97\xa5\xe6\x9c\xac\xe8\xaa\x9e"},
        {"&AOQA9gD8-", "\xc3\xa4\xc3\xb6\xc3\xbc"}, /* one shift for a run */
        {"&AOQ-&-&APY-", "\xc3\xa4&\xc3\xb6"},
        {"~peter/mail/&U,BTFw-/&ZeVnLIqe-",
         "~peter/mail/\xe5\x8f\xb0\xe5\x8c\x97/\xe6\x97\xa5\xe6\x9c\xac\xe8\xaa\x9e"},
        {"&2D3eAA-", "\xf0\x9f\x98\x80"}, /* U+1F600, a surrogate pair */
        {"&2D3eAA-x&2D3eAQ-", "\xf0\x9f\x98\x80x\xf0\x9f\x98\x81"},
        {"&2D3eAA-&-", "\xf0\x9f\x98\x80&"},
        {"&ZeXYPd4A-", "\xe6\x97\xa5\xf0\x9f\x98\x80"}, /* BMP and a pair in one shift */
        {"&2DzfiQ- Party", "\xf0\x9f\x8e\x89 Party"},
        {"&,,8-", "\xef\xbf\xbf"},        /* U+FFFF */
        {"&2,,f,w-", "\xf4\x8f\xbf\xbf"}, /* U+10FFFF */
        {"&AIA-", "\xc2\x80"},            /* U+0080: not US-ASCII, so shifted */
    };

    for (size_t i = 0; i < NITEMS(pairs); i++) {
        check_convert(imap_mutf7_to_utf8, pairs[i].mutf7, strlen(pairs[i].mutf7), pairs[i].utf8);
        check_convert(imap_utf8_to_mutf7, pairs[i].utf8, strlen(pairs[i].utf8), pairs[i].mutf7);
    }
}

struct bytes {
    const char *s;
    size_t len;
};

static void test_imap_mailbox_names_invalid_input_refused(void)
{
    static const struct bytes mutf7[] = {
        {L("&")},          {L("a&")},        {L("&Jjo")},
        {L("&AOk-&AOk-")}, {L("&AEE-")},     {L("&ACA-")},
        {L("&AAA-")},      {L("&AB8-")},     {L("&AH8-")},
        {L("&2D0-")},      {L("&2D3YPQ-")},  {L("&3gA-")},
        {L("&2D0-&3gA-")}, {L("&2D0AQQ-")},  {L("&AOl-")},
        {L("&AOkA-")},     {L("&A-")},       {L("&Ze*-")},
        {L("&Ze/n-")},     {L("&AOk=-")},    {L("&-&")},
        {L("tab\there")},  {L("a\x7f")},     {L("a\0b")},
        {L("\xff")},       {L("&ZeVnLIqe")}, {L("Entw\xc3\xbcrfe")},
    };
    static const struct bytes utf8[] = {
        {L("\xff")},         {L("\xc0\xaf")},     {L("\xc3")},  {L("a\xc3")},
        {L("\xed\xa0\x80")}, {L("\xed\xbf\xbf")}, {L("\x80")},  {L("\xf4\x90\x80\x80")},
        {L("\xe0\x80\x80")}, {L("a\x01")},        {L("a\x7f")}, {L("a\0b")},
        {L("\t")},
    };
    char out[IMAP_MAILBOX_UTF8_MAX + 1];

    for (size_t i = 0; i < NITEMS(mutf7); i++) {
        memset(out, '#', sizeof out);
        CHECK_INT(imap_mutf7_to_utf8(mutf7[i].s, mutf7[i].len, out, sizeof out), -1);
        CHECK(out[0] == '\0');
    }
    for (size_t i = 0; i < NITEMS(utf8); i++) {
        memset(out, '#', sizeof out);
        CHECK_INT(imap_utf8_to_mutf7(utf8[i].s, utf8[i].len, out, sizeof out), -1);
        CHECK(out[0] == '\0');
    }
}

static void test_imap_mailbox_names_longest_fit(void)
{
    char utf8[400], mutf7[400], back[400];
    size_t n = 0;

    /* 94 CJK characters and "ab": 284 bytes of UTF-8, 255 of modified
     * UTF-7 (the most a stored name has); the UTF-8 form of the longest
     * name fits IMAP_MAILBOX_UTF8_MAX. */
    for (int k = 0; k < 94; k++, n += 3)
        memcpy(utf8 + n, "\xe6\x97\xa5", 3);
    memcpy(utf8 + n, "ab", 2);
    n += 2;
    CHECK_INT(imap_utf8_to_mutf7(utf8, n, mutf7, sizeof mutf7), 0);
    CHECK_INT(strlen(mutf7), IMAP_MAILBOX_NAME_MAX);
    CHECK_INT(imap_mailbox_name_valid(mutf7, strlen(mutf7), 0), 0);
    CHECK_INT(imap_mutf7_to_utf8(mutf7, strlen(mutf7), back, IMAP_MAILBOX_UTF8_MAX + 1), 0);
    CHECK(strlen(back) == n && memcmp(back, utf8, n) == 0);
    CHECK(n <= IMAP_MAILBOX_UTF8_MAX);
    /* One character more is a name too long, whatever the buffer. */
    memcpy(utf8 + n - 2, "\xe6\x97\xa5", 3);
    CHECK_INT(imap_utf8_to_mutf7(utf8, n + 1, mutf7, sizeof mutf7), -1);
    /* '&' doubles: 127 of them fit, 128 do not. */
    memset(utf8, '&', 128);
    CHECK_INT(imap_utf8_to_mutf7(utf8, 127, mutf7, sizeof mutf7), 0);
    CHECK_INT(strlen(mutf7), 254);
    CHECK_INT(imap_utf8_to_mutf7(utf8, 128, mutf7, sizeof mutf7), -1);
}

/* Random names: UTF-8 -> modified UTF-7 -> UTF-8 is the identity, the
 * modified UTF-7 is a valid name; random pieces of modified UTF-7 (valid
 * and broken shifts, null shifts) that decode encode back to themselves:
 * only the shortest form is accepted. */
static void test_imap_mailbox_names_round_trip_random(void)
{
    /* clang-format off */
    static const char *const pieces[] = {
        "a", "Z", "&", "-", "/", " ", "+", ",", "\xc3\xa4", "\xc2\x80", "\xe6\x97\xa5",
        "\xef\xbf\xbf", "\xf0\x9f\x98\x80", "\xf4\x8f\xbf\xbf", "A-", "&-",
    };
    /* clang-format on */
    static const char *const bits[] = {
        "&",       "-",   "a",    "/",   "&-",  "&AOQ-", "&ZeVnLIqe-", "&2D3eAA-",
        "&AOQA9g", "D8-", "2D3e", "AA-", "3gA", "AOl",   "+,",         "A",
    };
    uint32_t seed = 12345;
    char in[300], mid[IMAP_MAILBOX_UTF8_MAX + 1], back[400];
    int decoded = 0;

    for (int iter = 0; iter < 5000; iter++) {
        size_t n = 0, count;

        seed = seed * 1103515245u + 12345u;
        count = 1 + (seed >> 16) % 40;
        for (size_t k = 0; k < count; k++) {
            seed = seed * 1103515245u + 12345u;
            const char *p = pieces[(seed >> 16) % NITEMS(pieces)];
            memcpy(in + n, p, strlen(p));
            n += strlen(p);
        }
        if (imap_utf8_to_mutf7(in, n, mid, sizeof mid) < 0) {
            CHECK(n > 60); /* only a long one may not fit */
            continue;
        }
        CHECK_INT(imap_mailbox_name_valid(mid, strlen(mid), 0), 0);
        CHECK_INT(imap_mutf7_to_utf8(mid, strlen(mid), back, sizeof back), 0);
        CHECK(strlen(back) == n && memcmp(back, in, n) == 0);
    }
    for (int iter = 0; iter < 20000; iter++) {
        size_t n = 0, count;

        seed = seed * 1103515245u + 12345u;
        count = 1 + (seed >> 16) % 6;
        for (size_t k = 0; k < count; k++) {
            seed = seed * 1103515245u + 12345u;
            const char *p = bits[(seed >> 16) % NITEMS(bits)];
            memcpy(in + n, p, strlen(p));
            n += strlen(p);
        }
        if (imap_mutf7_to_utf8(in, n, back, sizeof back) < 0)
            continue;
        decoded++;
        CHECK_INT(imap_utf8_to_mutf7(back, strlen(back), mid, sizeof mid), 0);
        CHECK(strlen(mid) == n && memcmp(mid, in, n) == 0);
    }
    CHECK(decoded > 1000); /* the table gives valid names often enough */
}

static void test_imap_quote_strings_and_literals_within_cap(void)
{
    static const struct {
        const char *s;
        size_t len;
        int utf8;
        const char *out;
        size_t outlen;
    } cases[] = {
        {L("abc"), 0, L("\"abc\"")},
        {L(""), 0, L("\"\"")},
        {L("a\"b\\c"), 0, L("\"a\\\"b\\\\c\"")},
        {L("a\r\nb"), 0, L("{4}\r\na\r\nb")},
        {L("caf\xc3\xa9"), 0, L("{5}\r\ncaf\xc3\xa9")},
        {L("a\0b"), 0, L("{3}\r\na\0b")},
        /* IMAP4rev2: UTF-8 may be quoted; what is not UTF-8 may not. */
        {L("caf\xc3\xa9"), 1, L("\"caf\xc3\xa9\"")},
        {L("\xe6\x97\xa5\"&"), 1, L("\"\xe6\x97\xa5\\\"&\"")},
        {L("\xf0\x9f\x98\x80"), 1, L("\"\xf0\x9f\x98\x80\"")},
        {L("caf\xe9"), 1, L("{4}\r\ncaf\xe9")},
        {L("\xc3\xa9\r\n"), 1, L("{4}\r\n\xc3\xa9\r\n")},
        {L("abc"), 1, L("\"abc\"")},
    };
    char out[2048];

    for (size_t i = 0; i < NITEMS(cases); i++) {
        size_t n = imap_quote(out, sizeof out, cases[i].s, cases[i].len, cases[i].utf8);

        CHECK_INT(n, cases[i].outlen);
        CHECK(n == cases[i].outlen && memcmp(out, cases[i].out, n) == 0 && out[n] == '\0');
        /* Every smaller buffer: the same length needed, nothing past cap. */
        for (size_t cap = 0; cap <= n; cap++) {
            char small[64];

            memset(small, '#', sizeof small);
            CHECK_INT(imap_quote(small, cap, cases[i].s, cases[i].len, cases[i].utf8), n);
            CHECK(memcmp(small, cases[i].out, cap) == 0);
            CHECK(small[cap] == '#');
        }
    }
    /* Long strings become literals. */
    {
        char s[IMAP_QUOTE_MAX + 1];

        memset(s, 'x', sizeof s);
        CHECK_INT(imap_quote(out, sizeof out, s, IMAP_QUOTE_MAX, 0), IMAP_QUOTE_MAX + 2);
        CHECK(out[0] == '"');
        CHECK_INT(imap_quote(out, sizeof out, s, IMAP_QUOTE_MAX + 1, 1), IMAP_QUOTE_MAX + 1 + 8);
        CHECK(memcmp(out, "{1025}\r\n", 8) == 0);
    }
    CHECK_INT(imap_quote(NULL, 0, L("abc"), 0), 5);
}

/* ---- RFC 7162 parameters (imap_modifiers.h) ---------------------------- */

static void sb_set(struct sb *b, const struct imap_seqset *set)
{
    for (size_t i = 0; i < set->n; i++)
        sb_printf(b, "%s%u-%u", i ? "," : "", set->r[i].lo, set->r[i].hi);
}

/* in (one argument) through the parser of kind 'S'elect, 'F'etch or
 * 'U'nchangedsince, printed; "ERR" (with a reason) when refused. */
static void modifiers_print(char kind, const char *in, struct sb *b)
{
    char line[1024];
    struct imap_parser *p = imap_parser_new(&limits);
    const struct imap_arg *args;
    size_t nargs, len = (size_t)snprintf(line, sizeof line, "a X %s\r\n", in);
    const char *why = NULL;
    struct imap_select_params sp;
    struct imap_fetch_mods fm;
    uint64_t since;
    int rc = -1;

    if (feed(p, line, len) != IMAP_PARSE_DONE || (args = imap_parser_args(p, &nargs), nargs != 1)) {
        sb_printf(b, "UNPARSED");
        imap_parser_free(p);
        return;
    }
    if (kind == 'S' && (rc = imap_select_params_parse(&args[0], &sp, &why)) == 0) {
        sb_printf(b, "condstore=%d qresync=%d", sp.condstore, sp.qresync);
        if (sp.qresync)
            sb_printf(b, " uidvalidity=%u modseq=%llu", sp.uidvalidity,
                      (unsigned long long)sp.modseq);
        if (sp.known_uids.n) {
            sb_printf(b, " known=");
            sb_set(b, &sp.known_uids);
        }
        if (sp.match_seqs.n) {
            sb_printf(b, " match=");
            sb_set(b, &sp.match_seqs);
            sb_printf(b, "/");
            sb_set(b, &sp.match_uids);
        }
        imap_select_params_free(&sp);
    } else if (kind == 'F' && (rc = imap_fetch_mods_parse(&args[0], &fm, &why)) == 0) {
        sb_printf(b, "changedsince=%d:%llu vanished=%d", fm.changedsince,
                  (unsigned long long)fm.modseq, fm.vanished);
    } else if (kind == 'U' && (rc = imap_store_mods_parse(&args[0], &since, &why)) == 0) {
        sb_printf(b, "unchangedsince=%llu", (unsigned long long)since);
    }
    if (rc != 0)
        sb_printf(b, "ERR%s", why && *why ? "" : " without a reason");
    imap_parser_free(p);
}

static void test_imap_modifiers_select_fetch_store_tables(void)
{
    static const struct {
        char kind;
        const char *in, *out;
    } cases[] = {
        {'S', "(CONDSTORE)", "condstore=1 qresync=0"},
        {'S', "(condstore)", "condstore=1 qresync=0"},
        {'S', "(QRESYNC (67890007 20050715194045000))",
         "condstore=0 qresync=1 uidvalidity=67890007 modseq=20050715194045000"},
        {'S', "(QRESYNC (67890007 90060115194045000 41:211,214:541))",
         "condstore=0 qresync=1 uidvalidity=67890007 modseq=90060115194045000"
         " known=41-211,214-541"},
        {'S', "(QRESYNC (1 2 1:100 (1,10,50 5,40,300)))",
         "condstore=0 qresync=1 uidvalidity=1 modseq=2 known=1-100 match=1-1,10-10,50-50/"
         "5-5,40-40,300-300"},
        {'S', "(QRESYNC (1 2 (1:3 7:9)))",
         "condstore=0 qresync=1 uidvalidity=1 modseq=2 match=1-3/7-9"},
        {'S', "(CONDSTORE QRESYNC (4294967295 9223372036854775807))",
         "condstore=1 qresync=1 uidvalidity=4294967295 modseq=9223372036854775807"},
        {'S', "()", "ERR"},
        {'S', "CONDSTORE", "ERR"},
        {'S', "(CONDSTORE CONDSTORE)", "ERR"},
        {'S', "(BOGUS)", "ERR"},
        {'S', "(QRESYNC)", "ERR"},
        {'S', "(QRESYNC 1 2)", "ERR"},
        {'S', "(QRESYNC ())", "ERR"},
        {'S', "(QRESYNC (1))", "ERR"},
        {'S', "(QRESYNC (0 1))", "ERR"},
        {'S', "(QRESYNC (4294967296 1))", "ERR"},
        {'S', "(QRESYNC (1 0))", "ERR"},
        {'S', "(QRESYNC (1 9223372036854775808))", "ERR"},
        {'S', "(QRESYNC (1 01))", "ERR"},
        {'S', "(QRESYNC (1 1 1:*))", "ERR"},
        {'S', "(QRESYNC (1 1 $))", "ERR"},
        {'S', "(QRESYNC (1 1 0:5))", "ERR"},
        {'S', "(QRESYNC (1 1 1:5 (1:2 1:3)))", "ERR"},
        {'S', "(QRESYNC (1 1 1:5 (1:2)))", "ERR"},
        {'S', "(QRESYNC (1 1 1:5 (1:* 1:2)))", "ERR"},
        {'S', "(QRESYNC (1 1 1:5 (1:2 3:4) 7))", "ERR"},
        {'S', "(QRESYNC (1 1 1:5 6:7))", "ERR"},
        {'S', "(QRESYNC (1 1 \"1:5\"))", "ERR"},
        {'S', "(QRESYNC (1 1) QRESYNC (1 1))", "ERR"},
        {'F', "(CHANGEDSINCE 12345)", "changedsince=1:12345 vanished=0"},
        {'F', "(changedsince 1 vanished)", "changedsince=1:1 vanished=1"},
        {'F', "(VANISHED CHANGEDSINCE 9223372036854775807)",
         "changedsince=1:9223372036854775807 vanished=1"},
        {'F', "(VANISHED)", "changedsince=0:0 vanished=1"},
        {'F', "(CHANGEDSINCE 0)", "ERR"},
        {'F', "(CHANGEDSINCE)", "ERR"},
        {'F', "(CHANGEDSINCE x)", "ERR"},
        {'F', "(CHANGEDSINCE -1)", "ERR"},
        {'F', "(CHANGEDSINCE 99999999999999999999)", "ERR"},
        {'F', "(CHANGEDSINCE 1 CHANGEDSINCE 2)", "ERR"},
        {'F', "(VANISHED VANISHED)", "ERR"},
        {'F', "(CHANGEDSINCE (1))", "ERR"},
        {'F', "()", "ERR"},
        {'F', "CHANGEDSINCE", "ERR"},
        {'U', "(UNCHANGEDSINCE 0)", "unchangedsince=0"},
        {'U', "(unchangedsince 320162338)", "unchangedsince=320162338"},
        {'U', "(UNCHANGEDSINCE 9223372036854775807)", "unchangedsince=9223372036854775807"},
        {'U', "(UNCHANGEDSINCE 9223372036854775808)", "ERR"},
        {'U', "(UNCHANGEDSINCE 00)", "ERR"},
        {'U', "(UNCHANGEDSINCE)", "ERR"},
        {'U', "(UNCHANGEDSINCE 1 2)", "ERR"},
        {'U', "(CHANGEDSINCE 1)", "ERR"},
        {'U', "UNCHANGEDSINCE", "ERR"},
    };

    for (size_t i = 0; i < NITEMS(cases); i++) {
        struct sb b = {.len = 0};
        modifiers_print(cases[i].kind, cases[i].in, &b);
        if (strcmp(b.s, cases[i].out) != 0)
            fprintf(stderr, "  case %zu: %c %s\n", i, cases[i].kind, cases[i].in);
        CHECK_STR(b.s, cases[i].out);
    }
}

int main(void)
{
    RUN(test_imap_parser_valid_commands_give_the_expected_tree);
    RUN(test_imap_parser_hostile_lines_are_clean_errors);
    RUN(test_imap_parser_literal8_is_announced_as_binary);
    RUN(test_imap_parser_unterminated_literal_refuses_the_next_line);
    RUN(test_imap_parser_literal_over_literal_max_fails_before_reading);
    RUN(test_imap_parser_literal_not_fitting_is_swallowed_then_fails);
    RUN(test_imap_parser_error_line_reports_its_nonsync_literal);
    RUN(test_imap_parser_literal_sync_and_nonsync_step_by_step);
    RUN(test_imap_parser_zero_literal_needs_no_bytes);
    RUN(test_imap_parser_append_message_taken_by_the_session);
    RUN(test_imap_parser_external_after_feeding_is_refused);
    RUN(test_imap_parser_literal_depth_inside_lists);
    RUN(test_imap_parser_nesting_at_depth_max_and_1000_parentheses);
    RUN(test_imap_parser_100000_arguments_are_refused);
    RUN(test_imap_parser_command_max_across_many_literals);
    RUN(test_imap_parser_literal_splits_anywhere);
    RUN(test_imap_parser_many_brackets_cost_linear_time);
    RUN(test_imap_parser_reset_reuses_the_parser_for_many_commands);
    RUN(test_imap_seqset_valid_sets_and_normalised_ranges);
    RUN(test_imap_seqset_invalid_sets_are_refused);
    RUN(test_imap_seqset_20000_ranges_are_refused);
    RUN(test_imap_seqset_contains_with_star_meaning_max);
    RUN(test_imap_fetch_attributes_valid_with_reply_names);
    RUN(test_imap_fetch_attributes_invalid_are_refused_with_a_reason);
    RUN(test_imap_fetch_header_fields_bounded_at_64);
    RUN(test_imap_search_keys_valid_trees);
    RUN(test_imap_search_invalid_keys_are_refused_with_a_reason);
    RUN(test_imap_search_depth_and_key_count_are_bounded);
    RUN(test_imap_flags_system_flags_and_keywords);
    RUN(test_imap_flags_bad_flags_are_refused);
    RUN(test_imap_dates_and_date_times);
    RUN(test_imap_mailbox_names_modified_utf7_and_utf8);
    RUN(test_imap_utf8_validity);
    RUN(test_imap_mailbox_names_utf8_and_modified_utf7_both_ways);
    RUN(test_imap_mailbox_names_invalid_input_refused);
    RUN(test_imap_mailbox_names_longest_fit);
    RUN(test_imap_mailbox_names_round_trip_random);
    RUN(test_imap_quote_strings_and_literals_within_cap);
    RUN(test_imap_modifiers_select_fetch_store_tables);
    return check_done();
}
