/*
 * imap_fetchatt.c - FETCH's data items (RFC 3501 6.4.5 and 9 fetch-att,
 * RFC 3516 BINARY, RFC 7162 MODSEQ): macros, simple items, and BODY[...],
 * BODY.PEEK[...], BINARY[...], BINARY.PEEK[...], BINARY.SIZE[...] with
 * their section-spec and partial, and the name each reply echoes.  See
 * imap_parse.h.
 *
 * The parser hands a bracketed item over as one atom
 * ("BODY.PEEK[1.HEADER.FIELDS (DATE \"X-A\")]<0.100>"), the section ending
 * at the first ']' (so a header name cannot hold one); this file walks
 * that string by hand with the formal syntax's rules, strictly: anything
 * the grammar does not produce is refused with a reason for the BAD reply.
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "imap_parse.h"

/* A growing, bounded string for the reply name. */
struct fa_buf {
    char *s;
    size_t len, cap;
    int failed;
};

static void fa_put(struct fa_buf *b, const char *s, size_t n)
{
    if (b->failed)
        return;
    if (b->cap - b->len <= n) {
        size_t cap = b->cap ? b->cap : 32;
        char *ns;

        while (cap - b->len <= n && cap < SIZE_MAX / 2)
            cap *= 2;
        if (cap - b->len <= n || (ns = realloc(b->s, cap)) == NULL) {
            b->failed = 1;
            return;
        }
        b->s = ns;
        b->cap = cap;
    }
    memcpy(b->s + b->len, s, n);
    b->len += n;
    b->s[b->len] = '\0';
}

static void fa_puts(struct fa_buf *b, const char *s)
{
    fa_put(b, s, strlen(s));
}

static void fa_putu(struct fa_buf *b, uint64_t v)
{
    char tmp[24];
    size_t i = sizeof tmp;

    do {
        tmp[--i] = (char)('0' + v % 10);
        v /= 10;
    } while (v > 0);
    fa_put(b, tmp + i, sizeof tmp - i);
}

/* Case-insensitive: does s[*i..] start with word?  Then step over it. */
static int fa_word(const char *s, size_t len, size_t *i, const char *word)
{
    size_t n = strlen(word);

    if (len - *i < n || strncasecmp(s + *i, word, n) != 0)
        return 0;
    *i += n;
    return 1;
}

/* number (allow_zero) or nz-number at s[*i], at most 2^63-1. */
static int fa_number(const char *s, size_t len, size_t *i, int allow_zero, uint64_t *out)
{
    uint64_t v = 0;
    size_t start = *i;

    while (*i < len && s[*i] >= '0' && s[*i] <= '9') {
        if (v > (INT64_MAX - (uint64_t)(s[*i] - '0')) / 10)
            return -1;
        v = v * 10 + (uint64_t)(s[*i] - '0');
        (*i)++;
    }
    if (*i == start)
        return -1;
    if (s[start] == '0' && (*i - start > 1 || !allow_zero))
        return -1; /* nz-number, and no leading zeros */
    *out = v;
    return 0;
}

static int fa_field_char(unsigned char ch)
{
    return ch > 0x20 && ch < 0x7f && ch != ':'; /* RFC 5322 ftext */
}

static int fa_atom_char(unsigned char ch)
{
    return ch > 0x20 && ch < 0x7f && strchr("(){%*\"\\]", ch) == NULL;
}

/* header-list: "(" header-fld-name *(SP header-fld-name) ")" at s[*i]; the
 * names are astrings (atom or quoted).  Fills a->fields upper-cased. */
static int fa_header_list(const char *s, size_t len, size_t *i, struct imap_fetch_att *a,
                          const char **why)
{
    if (*i >= len || s[*i] != ' ' || *i + 1 >= len || s[*i + 1] != '(') {
        *why = "HEADER.FIELDS needs a list of header names";
        return -1;
    }
    *i += 2;
    for (;;) {
        size_t start = *i, n = 0;
        char *f;
        int quoted = *i < len && s[*i] == '"';

        if (quoted) {
            for ((*i)++; *i < len && s[*i] != '"'; (*i)++, n++)
                if (s[*i] == '\\')
                    (*i)++;
            if (*i >= len) {
                *why = "unterminated quoted header name";
                return -1;
            }
            (*i)++;
        } else {
            while (*i < len && fa_atom_char((unsigned char)s[*i]))
                (*i)++;
            n = *i - start;
        }
        if (n == 0) {
            *why = "empty header name";
            return -1;
        }
        if (a->nfields == IMAP_HEADER_FIELDS_MAX) {
            *why = "too many header names";
            return -1;
        }
        if ((f = malloc(n + 1)) == NULL) {
            *why = "out of memory";
            return -1;
        }
        n = 0;
        for (size_t k = start + quoted; k < *i - quoted; k++) {
            if (quoted && s[k] == '\\')
                k++;
            f[n++] = (s[k] >= 'a' && s[k] <= 'z') ? (char)(s[k] - 'a' + 'A') : s[k];
        }
        f[n] = '\0';
        a->fields[a->nfields++] = f;
        for (size_t k = 0; k < n; k++) {
            if (!fa_field_char((unsigned char)f[k])) {
                *why = "invalid header name";
                return -1;
            }
        }
        if (*i < len && s[*i] == ')') {
            (*i)++;
            return 0;
        }
        if (*i >= len || s[*i] != ' ') {
            *why = "invalid header list";
            return -1;
        }
        (*i)++;
    }
}

/* section-spec (or, for BINARY, section-part only) between the brackets. */
static int fa_section(const char *s, size_t len, int binary, struct imap_fetch_att *a,
                      const char **why)
{
    size_t i = 0;

    a->text = IMAP_SECTION_ALL;
    if (len == 0)
        return 0;
    while (i < len && s[i] >= '0' && s[i] <= '9') {
        uint64_t v;

        if (fa_number(s, len, &i, 0, &v) < 0 || v > UINT32_MAX) {
            *why = "invalid section part number";
            return -1;
        }
        if (a->nparts == IMAP_SECTION_DEPTH) {
            *why = "section part nested too deeply";
            return -1;
        }
        a->part[a->nparts++] = (unsigned)v;
        if (i == len)
            return 0;
        if (s[i] != '.' || i + 1 == len) {
            *why = "invalid section";
            return -1;
        }
        i++;
    }
    if (binary) {
        *why = "BINARY takes part numbers only";
        return -1;
    }
    if (fa_word(s, len, &i, "HEADER.FIELDS.NOT")) {
        a->text = IMAP_SECTION_HEADER_FIELDS_NOT;
    } else if (fa_word(s, len, &i, "HEADER.FIELDS")) {
        a->text = IMAP_SECTION_HEADER_FIELDS;
    } else if (fa_word(s, len, &i, "HEADER")) {
        a->text = IMAP_SECTION_HEADER;
    } else if (fa_word(s, len, &i, "TEXT")) {
        a->text = IMAP_SECTION_TEXT;
    } else if (a->nparts > 0 && fa_word(s, len, &i, "MIME")) {
        a->text = IMAP_SECTION_MIME;
    } else {
        *why = a->nparts > 0 || !fa_word(s, len, &i, "MIME") ? "invalid section"
                                                             : "MIME needs a part number";
        return -1;
    }
    if (a->text == IMAP_SECTION_HEADER_FIELDS || a->text == IMAP_SECTION_HEADER_FIELDS_NOT) {
        if (fa_header_list(s, len, &i, a, why) < 0)
            return -1;
    }
    if (i != len) {
        *why = "invalid section";
        return -1;
    }
    return 0;
}

static const char *fa_text_name(enum imap_section_text t)
{
    switch (t) {
    case IMAP_SECTION_HEADER:
        return "HEADER";
    case IMAP_SECTION_HEADER_FIELDS:
        return "HEADER.FIELDS";
    case IMAP_SECTION_HEADER_FIELDS_NOT:
        return "HEADER.FIELDS.NOT";
    case IMAP_SECTION_TEXT:
        return "TEXT";
    case IMAP_SECTION_MIME:
        return "MIME";
    default:
        return "";
    }
}

/* The reply's name: "BODY[1.HEADER.FIELDS (DATE \"X Y\")]<0>". */
static int fa_make_name(struct imap_fetch_att *a, const char *label, const char **why)
{
    struct fa_buf b = {0};

    fa_puts(&b, label);
    fa_put(&b, "[", 1);
    for (size_t k = 0; k < a->nparts; k++) {
        if (k > 0)
            fa_put(&b, ".", 1);
        fa_putu(&b, a->part[k]);
    }
    if (a->text != IMAP_SECTION_ALL) {
        if (a->nparts > 0)
            fa_put(&b, ".", 1);
        fa_puts(&b, fa_text_name(a->text));
    }
    if (a->nfields > 0) {
        fa_put(&b, " (", 2);
        for (size_t k = 0; k < a->nfields; k++) {
            const char *f = a->fields[k];
            int atom = 1;

            if (k > 0)
                fa_put(&b, " ", 1);
            for (const char *c = f; *c; c++)
                if (!fa_atom_char((unsigned char)*c))
                    atom = 0;
            if (atom) {
                fa_puts(&b, f);
                continue;
            }
            fa_put(&b, "\"", 1);
            for (const char *c = f; *c; c++) {
                if (*c == '"' || *c == '\\')
                    fa_put(&b, "\\", 1);
                fa_put(&b, c, 1);
            }
            fa_put(&b, "\"", 1);
        }
        fa_put(&b, ")", 1);
    }
    fa_put(&b, "]", 1);
    if (a->partial) {
        fa_put(&b, "<", 1);
        fa_putu(&b, a->offset);
        fa_put(&b, ">", 1);
    }
    if (b.failed) {
        free(b.s);
        *why = "out of memory";
        return -1;
    }
    a->name = b.s;
    return 0;
}

static const struct {
    const char *name;
    enum imap_fetch_kind kind;
    int peek;
    enum imap_section_text text;
} fa_simple[] = {
    {"UID", IMAP_FETCH_UID, 1, IMAP_SECTION_ALL},
    {"FLAGS", IMAP_FETCH_FLAGS, 1, IMAP_SECTION_ALL},
    {"INTERNALDATE", IMAP_FETCH_INTERNALDATE, 1, IMAP_SECTION_ALL},
    {"RFC822.SIZE", IMAP_FETCH_RFC822_SIZE, 1, IMAP_SECTION_ALL},
    {"ENVELOPE", IMAP_FETCH_ENVELOPE, 1, IMAP_SECTION_ALL},
    {"BODYSTRUCTURE", IMAP_FETCH_BODYSTRUCTURE, 1, IMAP_SECTION_ALL},
    {"BODY", IMAP_FETCH_BODY_STRUCT, 1, IMAP_SECTION_ALL},
    {"RFC822", IMAP_FETCH_RFC822, 0, IMAP_SECTION_ALL},
    {"RFC822.HEADER", IMAP_FETCH_RFC822_HEADER, 1, IMAP_SECTION_HEADER},
    {"RFC822.TEXT", IMAP_FETCH_RFC822_TEXT, 0, IMAP_SECTION_TEXT},
    {"MODSEQ", IMAP_FETCH_MODSEQ, 1, IMAP_SECTION_ALL},
};

static const struct {
    const char *prefix; /* up to and with '[' */
    const char *label;  /* in the reply */
    enum imap_fetch_kind kind;
    int peek, binary, partial;
} fa_sections[] = {
    {"BODY[", "BODY", IMAP_FETCH_BODY_SECTION, 0, 0, 1},
    {"BODY.PEEK[", "BODY", IMAP_FETCH_BODY_SECTION, 1, 0, 1},
    {"BINARY[", "BINARY", IMAP_FETCH_BINARY_SECTION, 0, 1, 1},
    {"BINARY.PEEK[", "BINARY", IMAP_FETCH_BINARY_SECTION, 1, 1, 1},
    {"BINARY.SIZE[", "BINARY.SIZE", IMAP_FETCH_BINARY_SIZE, 1, 1, 0},
};

static void fa_att_free(struct imap_fetch_att *a)
{
    for (size_t k = 0; k < a->nfields; k++)
        free(a->fields[k]);
    free(a->name);
    memset(a, 0, sizeof *a);
}

/* The ']' that closes the section at s[from]: the first one, as the
 * parser's bracket rule took it. */
static size_t fa_close(const char *s, size_t len, size_t from)
{
    const char *c = memchr(s + from, ']', len - from);

    return c ? (size_t)(c - s) : len;
}

static int fa_parse_one(const char *s, size_t len, struct imap_fetch_att *a, const char **why)
{
    size_t i = 0, close;
    size_t k;

    memset(a, 0, sizeof *a);
    for (k = 0; k < sizeof fa_simple / sizeof fa_simple[0]; k++) {
        if (strlen(fa_simple[k].name) == len && strncasecmp(fa_simple[k].name, s, len) == 0) {
            a->kind = fa_simple[k].kind;
            a->peek = fa_simple[k].peek;
            a->text = fa_simple[k].text;
            if ((a->name = strdup(fa_simple[k].name)) == NULL) {
                *why = "out of memory";
                return -1;
            }
            return 0;
        }
    }
    for (k = 0; k < sizeof fa_sections / sizeof fa_sections[0]; k++)
        if (fa_word(s, len, &i, fa_sections[k].prefix))
            break;
    if (k == sizeof fa_sections / sizeof fa_sections[0]) {
        *why = "unknown fetch attribute";
        return -1;
    }
    a->kind = fa_sections[k].kind;
    a->peek = fa_sections[k].peek;
    close = fa_close(s, len, i);
    if (close == len) {
        *why = "missing ] in fetch attribute";
        return -1;
    }
    if (fa_section(s + i, close - i, fa_sections[k].binary, a, why) < 0)
        goto fail;
    i = close + 1;
    if (i < len && s[i] == '<' && fa_sections[k].partial) {
        i++;
        if (fa_number(s, len, &i, 1, &a->offset) < 0 || i >= len || s[i++] != '.' ||
            fa_number(s, len, &i, 0, &a->count) < 0 || i >= len || s[i++] != '>') {
            *why = "invalid partial <offset.count>";
            goto fail;
        }
        a->partial = 1;
    }
    if (i != len) {
        *why = "junk after fetch attribute";
        goto fail;
    }
    if (fa_make_name(a, fa_sections[k].label, why) < 0)
        goto fail;
    return 0;
fail:
    fa_att_free(a);
    return -1;
}

static const struct {
    const char *name;
    const char *atts[5];
} fa_macros[] = {
    {"ALL", {"FLAGS", "INTERNALDATE", "RFC822.SIZE", "ENVELOPE", NULL}},
    {"FAST", {"FLAGS", "INTERNALDATE", "RFC822.SIZE", NULL, NULL}},
    {"FULL", {"FLAGS", "INTERNALDATE", "RFC822.SIZE", "ENVELOPE", "BODY"}},
};

int imap_fetch_atts_parse(const struct imap_arg *arg, struct imap_fetch_atts *out, const char **why)
{
    const struct imap_arg *items = arg;
    size_t n = 1;

    memset(out, 0, sizeof *out);
    *why = NULL;
    if (arg->type == IMAP_ARG_ATOM) {
        for (size_t m = 0; m < sizeof fa_macros / sizeof fa_macros[0]; m++) {
            if (strlen(fa_macros[m].name) != arg->len ||
                strncasecmp(fa_macros[m].name, arg->s, arg->len) != 0)
                continue;
            if ((out->a = calloc(5, sizeof *out->a)) == NULL) {
                *why = "out of memory";
                return -1;
            }
            for (size_t k = 0; k < 5 && fa_macros[m].atts[k]; k++) {
                const char *name = fa_macros[m].atts[k];
                if (fa_parse_one(name, strlen(name), &out->a[out->n], why) < 0) {
                    imap_fetch_atts_free(out);
                    return -1;
                }
                out->n++;
            }
            return 0;
        }
    } else if (arg->type == IMAP_ARG_LIST) {
        items = arg->list;
        n = arg->nlist;
        if (n == 0) {
            *why = "empty fetch attribute list";
            return -1;
        }
    } else {
        *why = "invalid fetch attributes";
        return -1;
    }
    if ((out->a = calloc(n, sizeof *out->a)) == NULL) {
        *why = "out of memory";
        return -1;
    }
    for (size_t k = 0; k < n; k++) {
        if (items[k].type != IMAP_ARG_ATOM) {
            *why = "invalid fetch attribute";
            imap_fetch_atts_free(out);
            return -1;
        }
        if (fa_parse_one(items[k].s, items[k].len, &out->a[out->n], why) < 0) {
            imap_fetch_atts_free(out);
            return -1;
        }
        out->n++;
    }
    return 0;
}

void imap_fetch_atts_free(struct imap_fetch_atts *atts)
{
    for (size_t k = 0; k < atts->n; k++)
        fa_att_free(&atts->a[k]);
    free(atts->a);
    memset(atts, 0, sizeof *atts);
}
