/*
 * imap_parse.c - the IMAP command reader: a command's lines and literals
 * into a tag, an upper-cased command name and a tree of arguments, within
 * struct imap_limits.  The typed pieces built on the tree live beside it:
 * imap_seqset.c, imap_fetchatt.c, imap_search.c, imap_util.c.  See
 * imap_parse.h for the contract.
 *
 * States (p->state):
 *	IP_START    waiting for a command's first line (tag SP name ...)
 *	IP_LITERAL  a line ended in {n}: n bytes via imap_parser_literal(), or
 *	            the session takes them (imap_parser_literal_external())
 *	IP_CONT     the literal is complete: the next line goes on with the
 *	            command (SP, ')' or its end)
 *	IP_DONE     the command is complete
 *	IP_ERROR    the command failed; only imap_parser_reset() leaves it
 * Tokens never span lines, only literals do, so each line is parsed as it
 * comes; open lists live on a stack of growable vectors (p->lv), a list
 * that closes is copied into the arena and becomes one argument of its
 * parent.  Strings, closed lists and in-memory literals come from the
 * arena (a chain of chunks) that imap_parser_reset() frees in one go.
 */
#include <stdalign.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "imap_parse.h"

enum ip_state { IP_START, IP_LITERAL, IP_CONT, IP_DONE, IP_ERROR };

struct ip_chunk {
    struct ip_chunk *next;
    size_t used, cap;
    alignas(max_align_t) char data[];
};

#define IP_CHUNK_SIZE 4096

struct ip_level {
    struct imap_arg *v;
    size_t n, cap;
};

struct imap_parser {
    struct imap_limits lim;
    enum ip_state state;
    const char *err;
    char *tag, *name;
    size_t used;       /* bytes of the command so far (command_max) */
    size_t nargs;      /* arguments so far (args_max) */
    int need_sep;      /* the last token needs SP or ')' before the next */
    size_t no_bracket; /* no '[' before this index of the line has a ']' */

    struct ip_level *lv; /* lv[0]: top level, lv[depth]: innermost open list */
    unsigned nlv;        /* levels allocated */
    unsigned depth;

    uint64_t lit_size; /* pending (or, after an error, announced) literal */
    uint64_t lit_fed;
    int lit_sync;
    int lit_binary; /* literal8, ~{n} (RFC 3516): APPEND's message only */
    int lit_fits; /* may be read into memory */
    char *lit_buf;

    struct ip_chunk *arena;
};

/* ---- arena ------------------------------------------------------------- */

static void *ip_alloc(struct imap_parser *p, size_t n)
{
    const size_t align = alignof(max_align_t);
    struct ip_chunk *c = p->arena;
    size_t at;

    if (n > SIZE_MAX / 2)
        return NULL;
    if (c != NULL) {
        at = (c->used + align - 1) & ~(align - 1);
        if (at <= c->cap && c->cap - at >= n) {
            c->used = at + n;
            return c->data + at;
        }
    }
    /* Large requests get a chunk of their own behind the current one, so
     * that the current one's free space is not lost. */
    size_t cap = n > IP_CHUNK_SIZE / 4 ? n : IP_CHUNK_SIZE;
    struct ip_chunk *nc = malloc(sizeof *nc + cap);
    if (nc == NULL)
        return NULL;
    nc->cap = cap;
    nc->used = n;
    if (c != NULL && cap != IP_CHUNK_SIZE) {
        nc->next = c->next;
        c->next = nc;
    } else {
        nc->next = c;
        p->arena = nc;
    }
    return nc->data;
}

static char *ip_strdup(struct imap_parser *p, const char *s, size_t n)
{
    char *d = ip_alloc(p, n + 1);

    if (d == NULL)
        return NULL;
    memcpy(d, s, n);
    d[n] = '\0';
    return d;
}

static void ip_arena_free(struct imap_parser *p)
{
    while (p->arena != NULL) {
        struct ip_chunk *next = p->arena->next;
        free(p->arena);
        p->arena = next;
    }
}

/* ---- state ------------------------------------------------------------- */

struct imap_parser *imap_parser_new(const struct imap_limits *limits)
{
    struct imap_parser *p = calloc(1, sizeof *p);

    if (p == NULL)
        return NULL;
    if (limits != NULL) {
        p->lim = *limits;
    } else {
        p->lim.command_max = IMAP_COMMAND_MAX_DEFAULT;
        p->lim.literal_max = IMAP_LITERAL_MAX_DEFAULT;
        p->lim.args_max = IMAP_ARGS_MAX_DEFAULT;
        p->lim.depth_max = IMAP_DEPTH_MAX_DEFAULT;
    }
    p->lv = calloc(1, sizeof *p->lv);
    if (p->lv == NULL) {
        free(p);
        return NULL;
    }
    p->nlv = 1;
    imap_parser_reset(p);
    return p;
}

void imap_parser_free(struct imap_parser *p)
{
    if (p == NULL)
        return;
    ip_arena_free(p);
    for (unsigned i = 0; i < p->nlv; i++)
        free(p->lv[i].v);
    free(p->lv);
    free(p);
}

void imap_parser_reset(struct imap_parser *p)
{
    ip_arena_free(p);
    for (unsigned i = 0; i < p->nlv; i++)
        p->lv[i].n = 0;
    p->depth = 0;
    p->state = IP_START;
    p->err = NULL;
    p->tag = p->name = NULL;
    p->used = p->nargs = 0;
    p->need_sep = 0;
    p->lit_size = p->lit_fed = 0;
    p->lit_sync = p->lit_fits = p->lit_binary = 0;
    p->lit_buf = NULL;
}

static enum imap_parse_result ip_fail(struct imap_parser *p, const char *why)
{
    p->state = IP_ERROR;
    p->err = why;
    return IMAP_PARSE_ERROR;
}

/* Does the line end in "{n}" or "{n+}"?  Then the client may be sending n
 * bytes after it (a non-synchronizing literal) whatever we answer. */
static void ip_note_trailing_literal(struct imap_parser *p, const char *s, size_t len)
{
    size_t i = len, digits;
    uint64_t n = 0;
    int sync = 1, overflow = 0;

    if (i == 0 || s[--i] != '}')
        return;
    if (i > 0 && s[i - 1] == '+') {
        sync = 0;
        i--;
    }
    digits = i;
    while (i > 0 && s[i - 1] >= '0' && s[i - 1] <= '9')
        i--;
    if (i == digits || i == 0 || s[i - 1] != '{')
        return;
    for (size_t k = i; k < digits; k++) {
        unsigned d = (unsigned)(s[k] - '0');
        if (n > (UINT64_MAX - d) / 10)
            overflow = 1;
        else
            n = n * 10 + d;
    }
    p->lit_size = overflow ? UINT64_MAX : n;
    p->lit_sync = sync;
}

static enum imap_parse_result ip_fail_line(struct imap_parser *p, const char *s, size_t len,
                                           const char *why)
{
    ip_note_trailing_literal(p, s, len);
    return ip_fail(p, why);
}

/* ---- arguments --------------------------------------------------------- */

/* Reserve one argument against args_max. */
static int ip_count_arg(struct imap_parser *p)
{
    if (p->nargs >= p->lim.args_max)
        return -1;
    p->nargs++;
    return 0;
}

/* Append an (already counted) argument to the innermost open list. */
static int ip_push(struct imap_parser *p, const struct imap_arg *a)
{
    struct ip_level *l = &p->lv[p->depth];

    if (l->n == l->cap) {
        size_t cap = l->cap ? l->cap * 2 : 8;
        struct imap_arg *v;

        if (cap <= l->n || cap > SIZE_MAX / sizeof *v)
            return -1;
        v = realloc(l->v, cap * sizeof *v);
        if (v == NULL)
            return -1;
        l->v = v;
        l->cap = cap;
    }
    l->v[l->n++] = *a;
    return 0;
}

static enum imap_parse_result ip_open_list(struct imap_parser *p)
{
    if (p->depth >= p->lim.depth_max)
        return ip_fail(p, "lists nested too deeply");
    if (ip_count_arg(p) < 0)
        return ip_fail(p, "too many arguments");
    if (p->depth + 1 >= p->nlv) {
        struct ip_level *lv = realloc(p->lv, (p->nlv + 1) * sizeof *lv);
        if (lv == NULL)
            return ip_fail(p, "out of memory");
        memset(&lv[p->nlv], 0, sizeof *lv);
        p->lv = lv;
        p->nlv++;
    }
    p->depth++;
    p->lv[p->depth].n = 0;
    return IMAP_PARSE_MORE;
}

static enum imap_parse_result ip_close_list(struct imap_parser *p)
{
    struct ip_level *l = &p->lv[p->depth];
    struct imap_arg a = {.type = IMAP_ARG_LIST};

    if (p->depth == 0)
        return ip_fail(p, "unexpected )");
    if (l->n > 0) {
        struct imap_arg *copy = ip_alloc(p, l->n * sizeof *copy);
        if (copy == NULL)
            return ip_fail(p, "out of memory");
        memcpy(copy, l->v, l->n * sizeof *copy);
        a.list = copy;
        a.nlist = l->n;
    }
    a.s = "";
    l->n = 0;
    p->depth--;
    if (ip_push(p, &a) < 0)
        return ip_fail(p, "out of memory");
    return IMAP_PARSE_MORE;
}

/* ---- tokens ------------------------------------------------------------ */

/* ATOM-CHAR plus ']' (ASTRING-CHAR) and the list-wildcards. */
static int ip_atom_char(unsigned char ch)
{
    return ch > 0x20 && ch < 0x7f && ch != '(' && ch != ')' && ch != '{' && ch != '"' && ch != '\\';
}

static int ip_tag_char(unsigned char ch)
{
    return ip_atom_char(ch) && ch != '%' && ch != '*' && ch != '+';
}

static int ip_name_char(unsigned char ch)
{
    return (ch >= 'A' && ch <= 'Z') || (ch >= 'a' && ch <= 'z') || (ch >= '0' && ch <= '9') ||
           ch == '-' || ch == '_' || ch == '.';
}

/* The ']' that closes the '[' at s[at]: the first one, with printable
 * US-ASCII up to it; 0 when there is none.  A failed scan stopped at i
 * (a control, 8-bit, the end) also fails for every '[' before i, so it is
 * remembered for the rest of the line: "[[[[..." costs one scan, not one
 * per '['. */
static size_t ip_bracket_end(struct imap_parser *p, const char *s, size_t len, size_t at)
{
    size_t i;

    if (at < p->no_bracket)
        return 0;
    for (i = at + 1; i < len; i++) {
        unsigned char ch = (unsigned char)s[i];

        if (ch == ']')
            return i;
        if (ch < 0x20 || ch >= 0x7f)
            break;
    }
    p->no_bracket = i;
    return 0;
}

static enum imap_parse_result ip_atom(struct imap_parser *p, const char *s, size_t len, size_t *pos)
{
    size_t start = *pos, i = start;
    struct imap_arg a = {.type = IMAP_ARG_ATOM};

    if (s[i] == '\\')
        i++; /* a flag: "\Seen" */
    while (i < len && s[i] != ' ' && s[i] != ')') {
        if (s[i] == '[') {
            size_t close = ip_bracket_end(p, s, len, i);
            if (close > 0) {
                i = close + 1;
                continue;
            }
        }
        if (!ip_atom_char((unsigned char)s[i]))
            return ip_fail_line(p, s, len, "invalid character in atom");
        i++;
    }
    if (ip_count_arg(p) < 0)
        return ip_fail_line(p, s, len, "too many arguments");
    if ((a.s = ip_strdup(p, s + start, i - start)) == NULL)
        return ip_fail(p, "out of memory");
    a.len = i - start;
    if (a.len == 3 && strncasecmp(a.s, "NIL", 3) == 0)
        a.type = IMAP_ARG_NIL;
    if (ip_push(p, &a) < 0)
        return ip_fail(p, "out of memory");
    *pos = i;
    return IMAP_PARSE_MORE;
}

static enum imap_parse_result ip_quoted(struct imap_parser *p, const char *s, size_t len,
                                        size_t *pos)
{
    size_t i = *pos + 1, n = 0, end;
    struct imap_arg a = {.type = IMAP_ARG_STRING};
    char *d;

    /* First pass: find the end, check escapes, count the bytes. */
    for (; i < len && s[i] != '"'; i++, n++) {
        if (s[i] == '\\') {
            if (i + 1 == len || (s[i + 1] != '"' && s[i + 1] != '\\'))
                return ip_fail_line(p, s, len, "invalid escape in quoted string");
            i++;
        }
    }
    if (i == len)
        return ip_fail_line(p, s, len, "unterminated quoted string");
    end = i;
    if (ip_count_arg(p) < 0)
        return ip_fail_line(p, s, len, "too many arguments");
    if ((d = ip_alloc(p, n + 1)) == NULL)
        return ip_fail(p, "out of memory");
    n = 0;
    for (i = *pos + 1; i < end; i++) {
        if (s[i] == '\\')
            i++;
        d[n++] = s[i];
    }
    d[n] = '\0';
    /* Line checks already refused NUL, CR and LF; 8-bit must be UTF-8. */
    if (imap_utf8_valid(d, n) < 0)
        return ip_fail_line(p, s, len, "invalid UTF-8 in quoted string");
    a.s = d;
    a.len = n;
    if (ip_push(p, &a) < 0)
        return ip_fail(p, "out of memory");
    *pos = end + 1;
    return IMAP_PARSE_MORE;
}

/* "{n}" or "{n+}" at s[*pos], which must end the line. */
/* A literal announced at s[pos] ('{', or '~' for a literal8). */
static enum imap_parse_result ip_literal_start(struct imap_parser *p, const char *s, size_t len,
                                               size_t pos)
{
    int binary = s[pos] == '~';
    size_t i = pos + 1 + (size_t)binary;
    uint64_t n = 0;
    int sync = 1;

    if (i == len || s[i] < '0' || s[i] > '9')
        return ip_fail_line(p, s, len, "invalid literal");
    for (; i < len && s[i] >= '0' && s[i] <= '9'; i++) {
        unsigned d = (unsigned)(s[i] - '0');
        if (n > (UINT64_MAX - d) / 10)
            return ip_fail_line(p, s, len, "literal too large");
        n = n * 10 + d;
    }
    if (i < len && s[i] == '+') {
        sync = 0;
        i++;
    }
    if (i == len || s[i] != '}')
        return ip_fail_line(p, s, len, "invalid literal");
    if (i + 1 != len)
        return ip_fail_line(p, s, len, "literal must end the line");
    p->lit_size = n;
    p->lit_sync = sync;
    p->lit_binary = binary;
    if (ip_count_arg(p) < 0)
        return ip_fail(p, "too many arguments");
    /* One that does not fit is still announced: the session refuses it
     * (before "+ ") or takes it over (APPEND); see imap_parser_literal(). */
    p->lit_fits = n <= p->lim.literal_max && n <= p->lim.command_max - p->used;
    if (p->lit_fits)
        p->used += (size_t)n;
    p->lit_fed = 0;
    p->lit_buf = NULL;
    p->state = IP_LITERAL;
    return IMAP_PARSE_LITERAL;
}

/* Arguments from s[i] to the end of the line. */
static enum imap_parse_result ip_args(struct imap_parser *p, const char *s, size_t len, size_t i)
{
    enum imap_parse_result r;

    while (i < len) {
        char ch = s[i];

        if (ch == ' ') {
            while (i < len && s[i] == ' ')
                i++;
            p->need_sep = 0;
            continue;
        }
        if (ch == ')') {
            if ((r = ip_close_list(p)) != IMAP_PARSE_MORE)
                return ip_fail_line(p, s, len, p->err);
            p->need_sep = 1;
            i++;
            continue;
        }
        if (p->need_sep)
            return ip_fail_line(p, s, len, "missing space between arguments");
        switch (ch) {
        case '(':
            if ((r = ip_open_list(p)) != IMAP_PARSE_MORE)
                return ip_fail_line(p, s, len, p->err);
            i++;
            p->need_sep = 0;
            continue;
        case '"':
            r = ip_quoted(p, s, len, &i);
            break;
        case '{':
            p->need_sep = 1;
            return ip_literal_start(p, s, len, i);
        case '~':
            if (i + 1 < len && s[i + 1] == '{') {
                p->need_sep = 1;
                return ip_literal_start(p, s, len, i);
            }
            r = ip_atom(p, s, len, &i);
            break;
        default:
            r = ip_atom(p, s, len, &i);
            break;
        }
        if (r != IMAP_PARSE_MORE)
            return r;
        p->need_sep = 1;
    }
    if (p->depth > 0)
        return ip_fail(p, "unclosed list");
    p->state = IP_DONE;
    return IMAP_PARSE_DONE;
}

/* "tag SP name": returns the index after the name, or 0 after a failure. */
static size_t ip_tag_name(struct imap_parser *p, const char *s, size_t len)
{
    size_t i = 0, start;

    while (i < len && ip_tag_char((unsigned char)s[i]))
        i++;
    if (len == 0) {
        ip_fail(p, "empty command line");
        return 0;
    }
    if (i == 0 || (i < len && s[i] != ' ')) {
        ip_fail_line(p, s, len, "invalid tag");
        return 0;
    }
    if ((p->tag = ip_strdup(p, s, i)) == NULL) {
        ip_fail(p, "out of memory");
        return 0;
    }
    if (i < len)
        i++;            /* exactly one SP after the tag (RFC 3501 formal syntax) */
    start = i;
    while (i < len && ip_name_char((unsigned char)s[i]))
        i++;
    if (i == start) {
        ip_fail_line(p, s, len, start == len ? "missing command name" : "invalid command name");
        return 0;
    }
    if (i < len && s[i] != ' ') {
        ip_fail_line(p, s, len, "invalid command name");
        return 0;
    }
    if ((p->name = ip_strdup(p, s + start, i - start)) == NULL) {
        ip_fail(p, "out of memory");
        return 0;
    }
    for (char *c = p->name; *c; c++)
        if (*c >= 'a' && *c <= 'z')
            *c = (char)(*c - 'a' + 'A');
    return i;
}

/* The literal's bytes are all in: it becomes an argument.  -1 after
 * ip_fail(). */
static int ip_literal_finish(struct imap_parser *p)
{
    struct imap_arg a = {.type = IMAP_ARG_LITERAL};

    if (p->lit_binary) {
        ip_fail(p, "a literal8 (~{n}) is only for APPEND's message");
        p->lit_size = 0; /* its bytes are read: nothing more on its way */
        return -1;
    }
    if (p->lit_buf == NULL && (p->lit_buf = ip_alloc(p, (size_t)p->lit_size + 1)) == NULL) {
        ip_fail(p, "out of memory");
        return -1;
    }
    p->lit_buf[p->lit_size] = '\0';
    a.s = p->lit_buf;
    a.len = (size_t)p->lit_size;
    if (ip_push(p, &a) < 0) {
        ip_fail(p, "out of memory");
        return -1;
    }
    p->lit_buf = NULL;
    p->lit_size = p->lit_fed = 0;
    p->lit_sync = p->lit_fits = 0;
    p->state = IP_CONT;
    return 0;
}

enum imap_parse_result imap_parser_line(struct imap_parser *p, const char *line, size_t len)
{
    size_t i = 0, raw = len;

    switch (p->state) {
    case IP_ERROR:
        return IMAP_PARSE_ERROR;
    case IP_DONE:
        return ip_fail(p, "command already complete");
    case IP_LITERAL:
        if (!p->lit_fits || p->lit_fed < p->lit_size)
            return ip_fail(p, "literal data expected");
        if (ip_literal_finish(p) < 0)
            return IMAP_PARSE_ERROR;
        break;
    default:
        break;
    }
    p->lit_size = 0;
    p->lit_sync = 0;
    p->no_bracket = 0;
    if (len > 0 && line[len - 1] == '\n')
        len--;
    if (len > 0 && line[len - 1] == '\r')
        len--;
    if (raw > p->lim.command_max - p->used)
        return ip_fail_line(p, line, len, "command too long");
    p->used += raw;
    if (memchr(line, '\0', len) != NULL)
        return ip_fail_line(p, line, len, "NUL in command line");
    if (memchr(line, '\r', len) != NULL || memchr(line, '\n', len) != NULL)
        return ip_fail_line(p, line, len, "CR or LF in command line");
    if (p->state == IP_START) {
        if ((i = ip_tag_name(p, line, len)) == 0)
            return IMAP_PARSE_ERROR;
        p->need_sep = 1;
    }
    return ip_args(p, line, len, i);
}

/* ---- literals ---------------------------------------------------------- */

uint64_t imap_parser_literal_size(const struct imap_parser *p)
{
    return p->state == IP_LITERAL || p->state == IP_ERROR ? p->lit_size : 0;
}

int imap_parser_literal_sync(const struct imap_parser *p)
{
    return p->state == IP_LITERAL || p->state == IP_ERROR ? p->lit_sync : 0;
}

int imap_parser_literal_binary(const struct imap_parser *p)
{
    return p->state == IP_LITERAL ? p->lit_binary : 0;
}

int imap_parser_literal_fits(const struct imap_parser *p)
{
    return p->state == IP_LITERAL && p->lit_fits;
}

uint64_t imap_parser_literal_left(const struct imap_parser *p)
{
    return p->state == IP_LITERAL ? p->lit_size - p->lit_fed : 0;
}

unsigned imap_parser_depth(const struct imap_parser *p)
{
    return p->depth;
}

size_t imap_parser_literal(struct imap_parser *p, const char *data, size_t len)
{
    size_t take;

    if (p->state != IP_LITERAL)
        return 0;
    if (!p->lit_fits) {
        /* Swallowed, never stored, so that the connection stays in step;
         * the command fails once the last byte is in. */
        take = p->lit_size - p->lit_fed < len ? (size_t)(p->lit_size - p->lit_fed) : len;
        p->lit_fed += take;
        if (p->lit_fed == p->lit_size) {
            ip_fail(p, p->lit_size > p->lim.literal_max ? "literal too large" : "command too long");
            p->lit_size = 0; /* nothing more on its way */
        }
        return take;
    }
    if (p->lit_buf == NULL && (p->lit_buf = ip_alloc(p, (size_t)p->lit_size + 1)) == NULL) {
        ip_fail(p, "out of memory");
        return 0;
    }
    take = p->lit_size - p->lit_fed < len ? (size_t)(p->lit_size - p->lit_fed) : len;
    if (take > 0)
        memcpy(p->lit_buf + p->lit_fed, data, take);
    p->lit_fed += take;
    if (p->lit_fed == p->lit_size)
        ip_literal_finish(p);
    return take;
}

void imap_parser_literal_external(struct imap_parser *p)
{
    struct imap_arg a = {.type = IMAP_ARG_LITERAL_EXTERNAL, .s = ""};

    if (p->state != IP_LITERAL)
        return;
    if (p->lit_fed > 0) {
        ip_fail(p, "literal already being read");
        return;
    }
    if (p->lit_fits)
        p->used -= (size_t)p->lit_size; /* the session's bytes, not ours */
    a.len = (size_t)p->lit_size;
    if (a.len != p->lit_size || ip_push(p, &a) < 0) {
        ip_fail(p, "literal too large");
        return;
    }
    p->lit_buf = NULL;
    p->lit_size = p->lit_fed = 0;
    p->lit_sync = p->lit_fits = p->lit_binary = 0;
    p->state = IP_CONT;
}

/* ---- results ----------------------------------------------------------- */

const char *imap_parser_tag(const struct imap_parser *p)
{
    return p->tag;
}

const char *imap_parser_name(const struct imap_parser *p)
{
    return p->name;
}

const struct imap_arg *imap_parser_args(const struct imap_parser *p, size_t *nargs)
{
    *nargs = p->lv[0].n;
    return p->lv[0].v;
}

const char *imap_parser_error(const struct imap_parser *p)
{
    return p->state == IP_ERROR ? p->err : NULL;
}
