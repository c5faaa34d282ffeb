/*
 * mime_addr.c - address lists (RFC 5322 3.4, obsolete forms of 4.4) into
 * the (name route mailbox host) tuples of IMAP ENVELOPE.  See
 * mime_internal.h.
 *
 * What comes out for broken input is Dovecot's, so that ENVELOPE matches:
 * a missing local part is MISSING_MAILBOX, a missing domain MISSING_DOMAIN,
 * an unterminated <...> gets the host SYNTAX_ERROR, a bad route
 * INVALID_ROUTE; "user" alone is a mailbox without a domain, "Some Name"
 * alone a name; the last comment after an addr-spec is its name; a group
 * is (NIL NIL name NIL) ... (NIL NIL NIL NIL), closed even when the ';' is
 * missing; garbage after an address ends the list.
 */
#include <stdlib.h>
#include <string.h>

#include "mime_internal.h"

struct actx {
    struct mime_lex lx;
    struct mime_buf str;     /* scratch */
    struct mime_buf comment; /* last comment */
    struct mime_addrs *out;
    struct mime_addr a; /* being built; unset fields are NIL */
    int invalid;
    int full; /* MIME_ADDR_MAX entries: stop */
};

static struct mime_str keep(struct actx *c, const char *p, size_t n)
{
    struct mime_str s = {c->out->store.len, n, 1};

    mime_buf_add(&c->out->store, p, n);
    return s;
}

static struct mime_str keep_str(struct actx *c)
{
    return keep(c, c->str.p ? c->str.p : "", c->str.len);
}

static void add_entry(struct actx *c, int force)
{
    struct mime_addrs *o = c->out;

    if (o->n >= MIME_ADDR_MAX && !force) {
        c->full = 1;
        memset(&c->a, 0, sizeof c->a);
        c->invalid = 0;
        return;
    }
    if (o->n == o->cap) {
        size_t cap = o->cap ? o->cap * 2 : 8;
        struct mime_addr *v = realloc(o->v, cap * sizeof *v);

        if (v == NULL) {
            o->store.failed = 1;
            return;
        }
        o->v = v;
        o->cap = cap;
    }
    o->v[o->n++] = c->a;
    memset(&c->a, 0, sizeof c->a);
    c->invalid = 0;
}

static void add_address(struct actx *c)
{
    add_entry(c, 0);
}

static void add_fixed(struct actx *c)
{
    if (!c->a.mailbox.set) {
        c->a.mailbox = keep(c, "MISSING_MAILBOX", 15);
        c->invalid = 1;
    }
    if (!c->a.domain.set || c->a.domain.len == 0) {
        c->a.domain = keep(c, "MISSING_DOMAIN", 14);
        c->invalid = 1;
    }
    add_address(c);
}

/* A dot-atom that lets dots be anywhere ("a..b", ".a", "a."), as seen in
 * the wild and as Dovecot accepts. */
static int loose_dot_atom(struct actx *c)
{
    int ret = -1;

    do {
        while (*c->lx.p == '.') {
            mime_buf_addc(&c->str, '.');
            if (++c->lx.p >= c->lx.end)
                return 0;
            ret = 1;
        }
        if (*c->lx.p == '@')
            break;
        ret = mime_lex_atom(&c->lx, &c->str);
    } while (ret > 0 && *c->lx.p == '.');
    return ret;
}

static int local_part(struct actx *c)
{
    int ret;

    c->str.len = 0;
    if (*c->lx.p == '"')
        ret = mime_lex_quoted(&c->lx, &c->str);
    else
        ret = loose_dot_atom(c);
    if (ret < 0)
        return -1;
    c->a.mailbox = keep_str(c);
    return ret;
}

static int domain(struct actx *c)
{
    int ret;

    c->str.len = 0;
    if ((ret = mime_lex_domain(&c->lx, &c->str)) < 0)
        return -1;
    c->a.domain = keep_str(c);
    return ret;
}

/* obs-route: "@a,@b" before the ':' */
static int domain_list(struct actx *c)
{
    int ret;

    c->str.len = 0;
    for (;;) {
        if (c->lx.p >= c->lx.end)
            return 0;
        if (*c->lx.p != '@')
            break;
        if (c->str.len > 0)
            mime_buf_addc(&c->str, ',');
        mime_buf_addc(&c->str, '@');
        if ((ret = mime_lex_domain(&c->lx, &c->str)) <= 0)
            return ret;
        while (mime_lex_skip_lwsp(&c->lx) > 0 && *c->lx.p == ',')
            c->lx.p++;
    }
    c->a.route = keep_str(c);
    return 1;
}

static int angle_addr(struct actx *c)
{
    c->lx.p++; /* '<' */
    if (mime_lex_skip_lwsp(&c->lx) <= 0)
        return -1;
    if (*c->lx.p == '@') {
        if (domain_list(c) > 0 && *c->lx.p == ':') {
            c->lx.p++;
        } else {
            c->a.route = keep(c, "INVALID_ROUTE", 13);
            if (c->lx.p >= c->lx.end)
                return -1;
        }
        if (mime_lex_skip_lwsp(&c->lx) <= 0)
            return -1;
    }
    if (*c->lx.p != '>') {
        if (local_part(c) <= 0)
            return -1;
        if (*c->lx.p == '@' && domain(c) <= 0)
            return -1;
    }
    if (*c->lx.p != '>')
        return -1;
    c->lx.p++;
    return mime_lex_skip_lwsp(&c->lx);
}

static int name_addr(struct actx *c)
{
    c->str.len = 0;
    if (mime_lex_phrase(&c->lx, &c->str) <= 0 || *c->lx.p != '<')
        return -1;
    if (c->str.len > 0)
        c->a.name = keep_str(c);
    if (angle_addr(c) < 0) {
        c->a.domain = keep(c, "SYNTAX_ERROR", 12);
        c->invalid = 1;
    }
    return c->lx.p < c->lx.end;
}

static int addr_spec(struct actx *c)
{
    int ret, ret2 = -2, quoted = *c->lx.p == '"';

    c->comment.len = 0;
    ret = local_part(c);
    if (ret <= 0)
        c->invalid = 1;
    if (ret != 0 && c->lx.p < c->lx.end && *c->lx.p == '@') {
        ret2 = domain(c);
        if (ret2 <= 0)
            ret = ret2;
    }
    if (c->comment.len > 0) {
        c->a.name = keep(c, c->comment.p, c->comment.len);
    } else if (ret2 == -2) {
        /* "user" alone is a mailbox; "some words" a name. */
        size_t len;

        mime_buf_addc(&c->str, ' ');
        len = c->str.len;
        mime_lex_phrase(&c->lx, &c->str);
        if (c->str.len != len) {
            c->a.mailbox.set = 0;
            c->a.name = keep_str(c);
        } else if (!quoted) {
            c->a.domain = keep(c, "", 0);
        }
        c->invalid = 1;
        ret = -1;
    }
    return ret;
}

static int mailbox(struct actx *c)
{
    const unsigned char *start = c->lx.p;
    int ret;

    if ((ret = name_addr(c)) < 0) {
        c->lx.p = start;
        ret = addr_spec(c);
        if (c->invalid && !c->a.name.set && c->a.mailbox.set && !c->a.domain.set) {
            c->a.name = c->a.mailbox;
            c->a.mailbox.set = 0;
        }
    }
    if (ret < 0)
        c->invalid = 1;
    add_fixed(c);
    return ret;
}

static int group(struct actx *c)
{
    int ret;

    c->str.len = 0;
    if (mime_lex_phrase(&c->lx, &c->str) <= 0 || *c->lx.p != ':')
        return -1;
    /* A group from here on, whatever follows. */
    c->lx.p++;
    ret = mime_lex_skip_lwsp(&c->lx);
    c->a.mailbox = keep_str(c);
    add_address(c);
    if (ret > 0 && *c->lx.p != ';') {
        for (;;) {
            mailbox(c);
            if (c->full)
                break;
            if (c->lx.p >= c->lx.end || *c->lx.p != ',')
                break;
            c->lx.p++;
            if (mime_lex_skip_lwsp(&c->lx) <= 0) {
                ret = -1;
                break;
            }
        }
    }
    if (ret >= 0) {
        if (c->lx.p >= c->lx.end || *c->lx.p != ';') {
            ret = -1;
        } else {
            c->lx.p++;
            ret = mime_lex_skip_lwsp(&c->lx);
        }
    }
    add_entry(c, 1); /* the end of the group, even past the bound */
    return ret == 0 ? 0 : 1;
}

static int address(struct actx *c)
{
    const unsigned char *start = c->lx.p;
    int ret;

    if ((ret = group(c)) < 0) {
        c->lx.p = start;
        ret = mailbox(c);
    }
    return ret;
}

void mime_addrs_init(struct mime_addrs *a)
{
    a->v = NULL;
    a->n = a->cap = 0;
    mime_buf_init(&a->store, MIME_STORE_MAX);
}

int mime_addrs_parse(const char *value, size_t len, struct mime_addrs *out)
{
    struct actx c;
    int ret;

    memset(&c, 0, sizeof c);
    c.out = out;
    mime_buf_init(&c.str, MIME_STORE_MAX);
    mime_buf_init(&c.comment, MIME_STORE_MAX);
    mime_lex_init(&c.lx, value, len, &c.comment);
    if (mime_lex_skip_lwsp(&c.lx) > 0) {
        while (!c.full && !out->store.failed) {
            if (address(&c) == 0 || c.full)
                break;
            if (c.lx.p >= c.lx.end || *c.lx.p != ',')
                break;
            c.lx.p++;
            if ((ret = mime_lex_skip_lwsp(&c.lx)) <= 0) {
                if (ret < 0)
                    add_fixed(&c); /* ends with garbage */
                break;
            }
        }
    }
    if (c.str.failed || c.comment.failed)
        out->store.failed = 1;
    mime_buf_free(&c.str);
    mime_buf_free(&c.comment);
    return out->store.failed ? -1 : 0;
}

void mime_addrs_free(struct mime_addrs *a)
{
    free(a->v);
    a->v = NULL;
    a->n = a->cap = 0;
    mime_buf_free(&a->store);
}
