/*
 * mime_lex.c - the lexical parts of header values (RFC 5322 3.2, RFC 2045
 * 5.1, RFC 2231 3-4) and a part's Content-* data.  See mime_internal.h.
 *
 * The functions follow Dovecot's rfc822-parser closely in what they accept
 * and where they stop, since ENVELOPE and BODYSTRUCTURE must come out the
 * same: blanks, CR, LF and (nested) comments are skipped between items; a
 * backslash before CR, LF or NUL is kept as it is; 8-bit bytes count as
 * atext; a MIME token is atext without '/', '=', '?', plus '.'.
 */
#include <string.h>
#include <strings.h>

#include "mime_internal.h"

/* 1: atext, 2: alphanumeric or 8-bit, 4: atext but a MIME tspecial. */
static const unsigned char atext[256] = {
    ['!'] = 1, ['#'] = 1, ['$'] = 1, ['%'] = 1, ['&'] = 1, ['\''] = 1, ['*'] = 1,
    ['+'] = 1, ['-'] = 1, ['/'] = 4, ['='] = 4, ['?'] = 4, ['^'] = 1,  ['_'] = 1,
    ['`'] = 1, ['{'] = 1, ['|'] = 1, ['}'] = 1, ['~'] = 1,
};

static int cls(unsigned char c)
{
    if ((c >= '0' && c <= '9') || (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || c >= 0x80)
        return 2;
    return atext[c];
}

int mime_lex_is_atext(unsigned char c)
{
    return cls(c) != 0;
}

static int is_token(unsigned char c)
{
    return (cls(c) & 3) != 0 || c == '.';
}

void mime_lex_init(struct mime_lex *lx, const char *s, size_t len, struct mime_buf *comment)
{
    lx->p = (const unsigned char *)s;
    lx->end = lx->p + len;
    lx->comment = comment;
}

static void add(struct mime_buf *out, const unsigned char *from, const unsigned char *to)
{
    if (out != NULL && to > from)
        mime_buf_add(out, from, (size_t)(to - from));
}

/* Text before an LF, without the CR of a CRLF. */
static void add_line(struct mime_buf *out, const unsigned char *from, const unsigned char *lf)
{
    if (lf > from && lf[-1] == '\r')
        lf--;
    add(out, from, lf);
}

static int skip_comment(struct mime_lex *lx)
{
    struct mime_buf *c = lx->comment;
    const unsigned char *start;
    int level = 1;

    if (c != NULL)
        c->len = 0;
    start = ++lx->p;
    for (; lx->p < lx->end; lx->p++) {
        switch (*lx->p) {
        case '\0':
            add(c, start, lx->p);
            if (c != NULL)
                mime_buf_add(c, MIME_NUL_REPL, MIME_NUL_REPL_LEN);
            start = lx->p + 1;
            break;
        case '(':
            level++;
            break;
        case ')':
            if (--level == 0) {
                add(c, start, lx->p);
                lx->p++;
                return lx->p < lx->end;
            }
            break;
        case '\n':
            add_line(c, start, lx->p);
            start = lx->p + 1;
            break;
        case '\\':
            if (++lx->p >= lx->end)
                return -1;
            if (*lx->p == '\r' || *lx->p == '\n' || *lx->p == '\0') {
                lx->p--; /* not a quoted-pair: keep the backslash */
                break;
            }
            add(c, start, lx->p - 1);
            start = lx->p;
            break;
        }
    }
    return -1;
}

int mime_lex_skip_lwsp(struct mime_lex *lx)
{
    while (lx->p < lx->end) {
        unsigned char ch = *lx->p;

        if (ch == ' ' || ch == '\t' || ch == '\r' || ch == '\n') {
            lx->p++;
        } else if (ch == '(') {
            if (skip_comment(lx) < 0)
                return -1;
        } else {
            break;
        }
    }
    return lx->p < lx->end;
}

int mime_lex_atom(struct mime_lex *lx, struct mime_buf *out)
{
    const unsigned char *start = lx->p;

    if (lx->p >= lx->end || !cls(*lx->p))
        return -1;
    while (++lx->p < lx->end && cls(*lx->p))
        ;
    add(out, start, lx->p);
    return lx->p < lx->end ? mime_lex_skip_lwsp(lx) : 0;
}

int mime_lex_dot_atom(struct mime_lex *lx, struct mime_buf *out)
{
    const unsigned char *start;
    int ret;

    if (lx->p >= lx->end || !cls(*lx->p))
        return -1;
    for (start = lx->p++; lx->p < lx->end;) {
        if (cls(*lx->p)) {
            lx->p++;
            continue;
        }
        if (start == lx->p)
            return -1;
        add(out, start, lx->p);
        if ((ret = mime_lex_skip_lwsp(lx)) <= 0)
            return ret;
        if (*lx->p != '.')
            return 1;
        lx->p++;
        if (out != NULL)
            mime_buf_addc(out, '.');
        if (mime_lex_skip_lwsp(lx) <= 0)
            return -1;
        start = lx->p;
    }
    add(out, start, lx->p);
    return 0;
}

int mime_lex_token(struct mime_lex *lx, struct mime_buf *out)
{
    const unsigned char *start = lx->p;

    while (lx->p < lx->end && is_token(*lx->p))
        lx->p++;
    add(out, start, lx->p);
    return lx->p < lx->end ? mime_lex_skip_lwsp(lx) : 0;
}

int mime_lex_quoted(struct mime_lex *lx, struct mime_buf *out)
{
    const unsigned char *start;

    lx->p++; /* the opening quote */
    for (start = lx->p; lx->p < lx->end; lx->p++) {
        switch (*lx->p) {
        case '\0':
            add(out, start, lx->p);
            if (out != NULL)
                mime_buf_add(out, MIME_NUL_REPL, MIME_NUL_REPL_LEN);
            start = lx->p + 1;
            break;
        case '"':
            add(out, start, lx->p);
            lx->p++;
            return mime_lex_skip_lwsp(lx);
        case '\n':
            add_line(out, start, lx->p); /* folding: the CRLF goes */
            start = lx->p + 1;
            break;
        case '\\':
            if (++lx->p >= lx->end)
                return -1;
            if (*lx->p == '\r' || *lx->p == '\n' || *lx->p == '\0') {
                lx->p--;
                break;
            }
            add(out, start, lx->p - 1);
            start = lx->p;
            break;
        }
    }
    return -1;
}

/* Atoms and dots, blanks after them skipped (obs-phrase). */
static int atom_or_dot(struct mime_lex *lx, struct mime_buf *out)
{
    const unsigned char *start = lx->p;

    while (lx->p < lx->end && (cls(*lx->p) || *lx->p == '.'))
        lx->p++;
    add(out, start, lx->p);
    return lx->p < lx->end ? mime_lex_skip_lwsp(lx) : 0;
}

int mime_lex_phrase(struct mime_lex *lx, struct mime_buf *out)
{
    int ret;

    if (lx->p >= lx->end)
        return 0;
    if (*lx->p == '.')
        return -1;
    for (;;) {
        ret = *lx->p == '"' ? mime_lex_quoted(lx, out) : atom_or_dot(lx, out);
        if (ret <= 0)
            return ret;
        if (!cls(*lx->p) && *lx->p != '"' && *lx->p != '.')
            break;
        if (out != NULL)
            mime_buf_addc(out, ' ');
    }
    return mime_lex_skip_lwsp(lx);
}

static int domain_literal(struct mime_lex *lx, struct mime_buf *out)
{
    const unsigned char *start;

    for (start = lx->p++; lx->p < lx->end; lx->p++) {
        switch (*lx->p) {
        case '\0':
            add(out, start, lx->p);
            if (out != NULL)
                mime_buf_add(out, MIME_NUL_REPL, MIME_NUL_REPL_LEN);
            start = lx->p + 1;
            break;
        case '[':
            return -1;
        case ']':
            add(out, start, lx->p + 1);
            lx->p++;
            return mime_lex_skip_lwsp(lx);
        case '\n':
            add_line(out, start, lx->p);
            start = lx->p + 1;
            break;
        case '\\':
            /* Escapes stay as written; only a fold after one is cut. */
            if (++lx->p >= lx->end)
                return -1;
            if (*lx->p == '\r' || *lx->p == '\n' || *lx->p == '\0') {
                add(out, start, lx->p);
                start = lx->p;
                lx->p--;
            }
            break;
        }
    }
    return -1;
}

int mime_lex_domain(struct mime_lex *lx, struct mime_buf *out)
{
    lx->p++; /* '@' */
    if (mime_lex_skip_lwsp(lx) <= 0)
        return -1;
    if (*lx->p == '[')
        return domain_literal(lx, out);
    return mime_lex_dot_atom(lx, out);
}

int mime_lex_content_type(struct mime_lex *lx, struct mime_buf *out, int lenient)
{
    size_t pos0 = out->len, pos;
    int ret;

    if (mime_lex_skip_lwsp(lx) <= 0)
        return -1;
    if (mime_lex_token(lx, out) <= 0 || out->len == pos0)
        return -1; /* Dovecot keeps a lone type ("text") */
    if (*lx->p != '/')
        goto fail;
    lx->p++;
    if (mime_lex_skip_lwsp(lx) <= 0)
        goto fail;
    mime_buf_addc(out, '/');
    pos = out->len;
    ret = mime_lex_token(lx, out);
    if (ret < 0 || out->len == pos)
        goto fail;
    if (lx->p != lx->end && *lx->p != ';') {
        if (!lenient)
            goto fail;
        /* Junk after the subtype: skip it, keep the type. */
        while (lx->p < lx->end && *lx->p != ';')
            lx->p++;
        ret = lx->p < lx->end;
    }
    return ret;
fail:
    out->len = pos0;
    return -1;
}

/* One ";name=value": 1, 0 at the end, -1 when broken. */
static int lex_param(struct mime_lex *lx, struct mime_buf *key, struct mime_buf *value)
{
    int ret;

    key->len = value->len = 0;
    if (lx->p >= lx->end)
        return 0;
    if (*lx->p != ';')
        return -1;
    lx->p++;
    if (mime_lex_skip_lwsp(lx) <= 0)
        return -1;
    if (mime_lex_token(lx, key) <= 0)
        return -1;
    if (*lx->p != '=')
        return -1;
    lx->p++;
    if ((ret = mime_lex_skip_lwsp(lx)) <= 0) {
        /* no value */
    } else if (*lx->p == '"') {
        ret = mime_lex_quoted(lx, value);
    } else if (*lx->p == '=') {
        /* Broken but common: name==?utf-8?b?...?=  (Dovecot keeps it as a
         * C string: up to a NUL) */
        const unsigned char *start = lx->p, *nul;

        while (lx->p < lx->end && *lx->p != ';' && *lx->p != ' ' && *lx->p != '\t' &&
               *lx->p != '\r' && *lx->p != '\n')
            lx->p++;
        nul = memchr(start, '\0', (size_t)(lx->p - start));
        add(value, start, nul ? nul : lx->p);
    } else {
        ret = mime_lex_token(lx, value);
    }
    return ret < 0 ? -1 : 1;
}

/* Skip a broken parameter. */
static void param_recover(struct mime_lex *lx, int lenient)
{
    if (!lenient) {
        lx->p++;
        return;
    }
    /* To the next ';' outside a quoted string. */
    while (lx->p < lx->end && *lx->p != ';') {
        if (*lx->p == '"') {
            lx->p++;
            while (lx->p < lx->end && *lx->p != '"') {
                if (*lx->p == '\\' && lx->p + 1 < lx->end)
                    lx->p++;
                lx->p++;
            }
            if (lx->p >= lx->end)
                break;
        }
        lx->p++;
    }
}

struct rfc2231 {
    struct mime_str key, value;
    unsigned idx;
    int extended;
    size_t seq; /* arrival order, for a stable sort */
};

static int cmp2231(const struct rfc2231 *a, const struct rfc2231 *b, const char *base)
{
    size_t n = a->key.len < b->key.len ? a->key.len : b->key.len;
    int c = memcmp(base + a->key.off, base + b->key.off, n);

    if (c != 0)
        return c;
    if (a->key.len != b->key.len)
        return a->key.len < b->key.len ? -1 : 1;
    if (a->idx != b->idx)
        return a->idx < b->idx ? -1 : 1;
    return a->seq < b->seq ? -1 : a->seq > b->seq;
}

static struct mime_str store_add(struct mime_buf *store, const char *p, size_t n)
{
    struct mime_str s = {store->len, n, 1};

    mime_buf_add(store, p, n);
    return s;
}

static void push(struct mime_params *out, struct mime_str name, struct mime_str value)
{
    if (out->n < MIME_PARAMS_MAX) {
        out->v[out->n].name = name;
        out->v[out->n].value = value;
        out->n++;
    }
}

/* Merge the RFC 2231 pieces (sorted) into out. */
static void merge2231(struct rfc2231 *r, size_t n, struct mime_params *out, struct mime_buf *store)
{
    for (size_t i = 0, next; i < n; i = next) {
        int ok = 1, have_ext = 0;
        unsigned want = 0;
        size_t j;

        for (j = i; j < n; j++) {
            if (r[j].key.len != r[i].key.len ||
                strncasecmp(store->p + r[i].key.off, store->p + r[j].key.off, r[i].key.len))
                break;
            if (r[j].idx != want)
                ok = 0;
            if (r[j].extended)
                have_ext = 1;
            want++;
        }
        next = j;
        if (!ok) {
            /* Missing pieces: each one as it was written. */
            for (j = i; j < next; j++) {
                struct mime_str k = {store->len, 0, 1};

                mime_buf_append_self(store, r[j].key.off, r[j].key.len);
                mime_buf_addc(store, '*');
                mime_buf_addu(store, r[j].idx);
                if (r[j].extended)
                    mime_buf_addc(store, '*');
                k.len = store->len - k.off;
                push(out, k, r[j].value);
            }
            continue;
        }
        {
            struct mime_str k = {store->len, 0, 1}, v;

            mime_buf_append_self(store, r[i].key.off, r[i].key.len);
            if (have_ext)
                mime_buf_addc(store, '*');
            k.len = store->len - k.off;
            v.off = store->len;
            v.set = 1;
            if (!r[i].extended && have_ext)
                mime_buf_add(store, "''", 2);
            for (j = i; j < next && !store->failed; j++) {
                if (!r[j].extended && have_ext) {
                    /* A plain piece among extended ones: its '%' is literal. */
                    for (size_t x = 0; x < r[j].value.len && !store->failed; x++) {
                        char ch = store->p[r[j].value.off + x];

                        if (ch == '%')
                            mime_buf_add(store, "%25", 3);
                        else
                            mime_buf_addc(store, ch);
                    }
                } else {
                    mime_buf_append_self(store, r[j].value.off, r[j].value.len);
                }
            }
            v.len = store->len - v.off;
            push(out, k, v);
        }
    }
}

int mime_params_parse(struct mime_lex *lx, int lenient, struct mime_params *out,
                      struct mime_buf *store)
{
    struct rfc2231 r[MIME_PARAMS_MAX];
    size_t nr = 0, seq = 0;
    unsigned last_idx = 0;
    struct mime_buf key, value;
    int ret;

    out->n = 0;
    mime_buf_init(&key, MIME_STORE_MAX);
    mime_buf_init(&value, MIME_STORE_MAX);
    for (size_t calls = 0; (ret = lex_param(lx, &key, &value)) != 0;) {
        const char *k, *star;
        struct mime_str ks, vs;

        /* Dovecot looks at MIME_PARAMS_MAX attempts, broken ones too. */
        if (!lenient && ++calls > MIME_PARAMS_MAX)
            break;
        if (ret < 0) {
            if (lx->p >= lx->end)
                break;
            param_recover(lx, lenient);
            continue;
        }
        if (key.failed || value.failed)
            break;
        k = key.p ? key.p : "";
        vs = store_add(store, value.p ? value.p : "", value.len);
        star = memchr(k, '*', key.len);
        if (star != NULL) {
            const char *q = star + 1, *end = k + key.len;
            unsigned idx = 0;
            int ext = 0;

            /* name*, name*N, name*N*: the last '*' marks an extended value.
             * Dovecot gives "name*" the number of the piece before it (a
             * bug, kept for identical BODYSTRUCTUREs; not when lenient). */
            if (q == end) {
                ext = 1;
                idx = lenient ? 0 : last_idx;
            } else {
                while (q < end && *q >= '0' && *q <= '9')
                    idx = idx * 10 + (unsigned)(*q++ - '0');
                if (q < end && *q == '*') {
                    ext = 1;
                    q++;
                }
            }
            last_idx = idx;
            if (q == end) {
                if (nr < MIME_PARAMS_MAX) {
                    r[nr].key = store_add(store, k, (size_t)(star - k));
                    r[nr].value = vs;
                    r[nr].idx = idx;
                    r[nr].extended = ext;
                    r[nr].seq = seq++;
                    nr++;
                }
                continue;
            }
        }
        ks = store_add(store, k, key.len);
        push(out, ks, vs);
    }
    mime_buf_free(&key);
    mime_buf_free(&value);
    if (nr > 0 && !store->failed) {
        /* Insertion sort: few pieces, and stable. */
        for (size_t i = 1; i < nr; i++) {
            struct rfc2231 t = r[i];
            size_t j = i;

            while (j > 0 && cmp2231(&r[j - 1], &t, store->p) > 0) {
                r[j] = r[j - 1];
                j--;
            }
            r[j] = t;
        }
        merge2231(r, nr, out, store);
    }
    return store->failed ? -1 : 0;
}

const struct mime_param *mime_params_get(const struct mime_params *ps, const struct mime_buf *store,
                                         const char *name)
{
    size_t n = strlen(name);

    for (size_t i = 0; i < ps->n; i++)
        if (ps->v[i].name.len == n && strncasecmp(store->p + ps->v[i].name.off, name, n) == 0)
            return &ps->v[i];
    return NULL;
}

/* ---- a part's Content-* data ------------------------------------------ */

/* The value as written, NUL bytes as U+FFFD. */
static struct mime_str raw_value(struct mime_buf *store, const struct mime_header *h)
{
    struct mime_str s = {store->len, 0, 1};
    size_t start = 0;

    for (size_t i = 0; i < h->value_len; i++) {
        if (h->value[i] == '\0') {
            mime_buf_add(store, h->value + start, i - start);
            mime_buf_add(store, MIME_NUL_REPL, MIME_NUL_REPL_LEN);
            start = i + 1;
        }
    }
    mime_buf_add(store, h->value + start, h->value_len - start);
    s.len = store->len - s.off;
    return s;
}

static void load_type(struct mime_info *in, const struct mime_header *h, int lenient)
{
    struct mime_buf *st = &in->store;
    struct mime_lex lx;
    size_t start = st->len, slash;
    int ret;

    mime_lex_init(&lx, h->value, h->value_len, NULL);
    mime_lex_skip_lwsp(&lx);
    ret = mime_lex_content_type(&lx, st, lenient);
    for (slash = start; slash < st->len && st->p[slash] != '/'; slash++)
        ;
    in->type.off = start;
    in->type.len = slash - start;
    in->type.set = 1;
    if (slash < st->len) {
        in->subtype.off = slash + 1;
        in->subtype.len = st->len - slash - 1;
        in->subtype.set = 1;
    }
    if (ret < 0)
        return;
    in->ct_ok = 1;
    mime_params_parse(&lx, lenient, &in->ctp, st);
}

static void load_cte(struct mime_info *in, const struct mime_header *h)
{
    struct mime_buf *st = &in->store;
    struct mime_lex lx;
    size_t start = st->len;

    mime_lex_init(&lx, h->value, h->value_len, NULL);
    mime_lex_skip_lwsp(&lx);
    if (mime_lex_token(&lx, st) >= 0 && mime_lex_skip_lwsp(&lx) == 0 && st->len > start) {
        in->cte.off = start;
        in->cte.len = st->len - start;
        in->cte.set = 1;
    }
}

static void load_disposition(struct mime_info *in, const struct mime_header *h, int lenient)
{
    struct mime_buf *st = &in->store;
    struct mime_lex lx;
    size_t start = st->len;

    mime_lex_init(&lx, h->value, h->value_len, NULL);
    mime_lex_skip_lwsp(&lx);
    if (mime_lex_token(&lx, st) < 0)
        return;
    in->disp.off = start;
    in->disp.len = st->len - start;
    in->disp.set = 1;
    mime_params_parse(&lx, lenient, &in->dispp, st);
}

static void load_language(struct mime_info *in, const struct mime_header *h)
{
    struct mime_buf *st = &in->store;
    struct mime_lex lx;

    mime_lex_init(&lx, h->value, h->value_len, NULL);
    mime_lex_skip_lwsp(&lx);
    while (in->nlang < MIME_PARAMS_MAX) {
        size_t start = st->len;

        if (mime_lex_atom(&lx, st) < 0) {
            st->len = start;
            break;
        }
        in->nlang++;
        in->lang[in->nlang - 1].off = start;
        in->lang[in->nlang - 1].len = st->len - start;
        in->lang[in->nlang - 1].set = 1;
        if (lx.p >= lx.end || *lx.p != ',')
            break;
        lx.p++;
        mime_lex_skip_lwsp(&lx);
    }
}

int mime_info_load(const struct mime_part *part, struct mime_info *in)
{
    struct mime_header h;
    size_t pos = 0;
    unsigned n = 0;
    int lenient = part->msg->lenient;

    memset(in, 0, offsetof(struct mime_info, store));
    mime_buf_init(&in->store, MIME_STORE_MAX);
    /* Content-* of a part that is not MIME mean nothing (RFC 2045 4). */
    if (!(part->flags & MIME_PART_MIME))
        return 0;
    while (n++ < MIME_HEADERS_MAX && mime_header_next(part, &pos, &h)) {
        if (h.value == NULL || h.name_len < 8 || strncasecmp(h.name, "Content-", 8) != 0)
            continue;
        if (mime_field_is(&h, "Content-Type")) {
            if (!in->type.set)
                load_type(in, &h, lenient);
        } else if (mime_field_is(&h, "Content-Transfer-Encoding")) {
            if (!in->cte.set)
                load_cte(in, &h);
        } else if (mime_field_is(&h, "Content-ID")) {
            if (!in->id.set)
                in->id = raw_value(&in->store, &h);
        } else if (mime_field_is(&h, "Content-MD5")) {
            if (!in->md5.set)
                in->md5 = raw_value(&in->store, &h);
        } else if (mime_field_is(&h, "Content-Description")) {
            if (!in->desc.set)
                in->desc = raw_value(&in->store, &h);
        } else if (mime_field_is(&h, "Content-Location")) {
            if (!in->loc.set)
                in->loc = raw_value(&in->store, &h);
        } else if (mime_field_is(&h, "Content-Language")) {
            if (in->nlang == 0)
                load_language(in, &h);
        } else if (mime_field_is(&h, "Content-Disposition")) {
            /* Dovecot: a later field wins until one has parameters. */
            if (in->dispp.n == 0)
                load_disposition(in, &h, lenient);
        }
    }
    return in->store.failed ? -1 : 0;
}

void mime_info_free(struct mime_info *in)
{
    mime_buf_free(&in->store);
}
