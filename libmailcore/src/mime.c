/*
 * mime.c - the structure of a message: header blocks, multipart boundaries,
 * embedded messages; header field access; FETCH section addressing.  See
 * mime.h.
 *
 * The parser walks the buffer once, with the boundary stack of RFC 2046
 * 5.1.2 (innermost first): a line starting with "--" and a known boundary
 * (the longest that matches, the line only has to begin with it) ends the
 * part being read and every part inside the boundary's multipart; the CRLF
 * before the line belongs to the boundary.  "--boundary--" pops it; what
 * follows is epilogue.  A boundary line met among header lines ends that
 * header block.  These are Dovecot's rules, so that imapd reports the same
 * parts, sizes and line counts.
 *
 * Links between parts are indices while parsing (the part array grows) and
 * become pointers at the end.
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "mime_internal.h"

/* ---- buffers ---------------------------------------------------------- */

void mime_buf_init(struct mime_buf *b, size_t max)
{
    b->p = NULL;
    b->len = b->cap = 0;
    b->max = max;
    b->failed = 0;
}

void mime_buf_reset(struct mime_buf *b)
{
    b->len = 0;
    b->failed = 0;
}

void mime_buf_free(struct mime_buf *b)
{
    free(b->p);
    b->p = NULL;
    b->len = b->cap = 0;
}

static int buf_reserve(struct mime_buf *b, size_t n)
{
    size_t max = b->max ? b->max : MIME_BUF_MAX_DEFAULT, cap, lim;
    char *p;

    if (b->failed)
        return -1;
    if (n > max || b->len > max - n) {
        b->failed = 1;
        return -1;
    }
    if (b->len + n + 1 <= b->cap) /* +1: room for mime_buf_cstr */
        return 0;
    lim = max < SIZE_MAX - 1 ? max + 1 : SIZE_MAX; /* the NUL of mime_buf_cstr */
    cap = b->cap ? b->cap : 64;
    while (cap < b->len + n + 1)
        cap = cap > lim / 2 ? lim : cap * 2;
    p = realloc(b->p, cap);
    if (p == NULL) {
        b->failed = 1;
        return -1;
    }
    b->p = p;
    b->cap = cap;
    return 0;
}

int mime_buf_add(struct mime_buf *b, const void *p, size_t n)
{
    if (buf_reserve(b, n) < 0)
        return -1;
    if (n > 0)
        memcpy(b->p + b->len, p, n);
    b->len += n;
    return 0;
}

int mime_buf_append_self(struct mime_buf *b, size_t off, size_t len)
{
    if (off > b->len || len > b->len - off)
        return -1;
    if (buf_reserve(b, len) < 0)
        return -1;
    if (len > 0)
        memmove(b->p + b->len, b->p + off, len);
    b->len += len;
    return 0;
}

int mime_buf_adds(struct mime_buf *b, const char *s)
{
    return mime_buf_add(b, s, strlen(s));
}

int mime_buf_addc(struct mime_buf *b, char c)
{
    return mime_buf_add(b, &c, 1);
}

int mime_buf_addu(struct mime_buf *b, uint64_t n)
{
    char tmp[24];
    size_t i = sizeof tmp;

    do {
        tmp[--i] = (char)('0' + n % 10);
        n /= 10;
    } while (n > 0);
    return mime_buf_add(b, tmp + i, sizeof tmp - i);
}

int mime_buf_cstr(struct mime_buf *b)
{
    if (buf_reserve(b, 0) < 0)
        return -1;
    b->p[b->len] = '\0';
    return 0;
}

/* ---- header fields ---------------------------------------------------- */

static int is_lwsp(char c)
{
    return c == ' ' || c == '\t';
}

/* End of the line at pos (the LF, or lim) and the position after it. */
static size_t line_end(const char *buf, size_t pos, size_t lim, size_t *next)
{
    const char *lf = memchr(buf + pos, '\n', lim - pos);

    if (lf == NULL) {
        *next = lim;
        return lim;
    }
    *next = (size_t)(lf - buf) + 1;
    return (size_t)(lf - buf);
}

static int blank_line(const char *buf, size_t pos, size_t lim)
{
    return buf[pos] == '\n' || (buf[pos] == '\r' && pos + 1 < lim && buf[pos + 1] == '\n');
}

int mime_field_read(const char *buf, size_t pos, size_t lim, struct mime_header *h, size_t *next)
{
    size_t first_end, end, nl, colon, vstart, vend, name_end;
    const char *c;

    if (pos >= lim || blank_line(buf, pos, lim))
        return 0;
    /* The field: this line and every following line that starts with a
     * blank.  Its value ends before the last line's [CR]LF. */
    end = first_end = line_end(buf, pos, lim, &nl);
    while (nl < lim && is_lwsp(buf[nl]))
        end = line_end(buf, nl, lim, &nl);
    vend = end;
    if (vend > pos && vend < lim && buf[vend] == '\n' && buf[vend - 1] == '\r')
        vend--;
    h->field = buf + pos;
    h->field_len = nl - pos;

    /* The name runs to the first ':' of the first line. */
    c = memchr(buf + pos, ':', first_end - pos);
    if (c == NULL) {
        /* No colon: Dovecot takes the whole line as the name. */
        if (first_end > pos && first_end < lim && buf[first_end - 1] == '\r')
            first_end--;
        h->name = buf + pos;
        h->name_len = first_end - pos;
        h->value = NULL;
        h->value_len = 0;
        *next = nl;
        return 1;
    }
    colon = (size_t)(c - buf);
    name_end = colon;
    while (name_end > pos && is_lwsp(buf[name_end - 1]))
        name_end--;
    h->name = buf + pos;
    h->name_len = name_end - pos;
    /* Blanks after ':' are skipped, unless the value is nothing but blanks
     * (then one is). */
    vstart = colon + 1;
    {
        size_t i = vstart;
        while (i < vend && is_lwsp(buf[i]))
            i++;
        if (i == vend && vend > vstart && is_lwsp(buf[vstart]))
            i = vstart + 1;
        vstart = i;
    }
    if (vstart > vend)
        vstart = vend;
    h->value = buf + vstart;
    h->value_len = vend - vstart;
    *next = nl;
    return 1;
}

int mime_field_is(const struct mime_header *h, const char *name)
{
    size_t n = strlen(name), len = h->name_len;
    const char *nul = memchr(h->name, '\0', len);

    /* Dovecot compares names as C strings: "From\0x" is From. */
    if (nul != NULL)
        len = (size_t)(nul - h->name);
    return len == n && strncasecmp(h->name, name, n) == 0;
}

int mime_header_next(const struct mime_part *part, size_t *pos, struct mime_header *h)
{
    size_t lim = part->hdr_off + part->hdr_len, next;

    if (*pos > part->hdr_len ||
        mime_field_read(part->msg->buf, part->hdr_off + *pos, lim, h, &next) == 0)
        return 0;
    *pos = next - part->hdr_off;
    return 1;
}

int mime_header_find(const struct mime_part *part, const char *name, struct mime_header *h)
{
    size_t pos = 0;
    unsigned n = 0;

    while (n++ < MIME_HEADERS_MAX && mime_header_next(part, &pos, h))
        if (h->value != NULL && mime_field_is(h, name))
            return 1;
    return 0;
}

int mime_header_unfold(const char *value, size_t len, struct mime_buf *out)
{
    size_t start = 0;

    for (size_t i = 0; i < len; i++) {
        if (value[i] == '\r' || value[i] == '\n') {
            if (mime_buf_add(out, value + start, i - start) < 0)
                return -1;
            start = i + 1;
        }
    }
    return mime_buf_add(out, value + start, len - start);
}

/* ---- the parser ------------------------------------------------------- */

#define NONE ((size_t)-1)

struct boundary {
    char s[MIME_BOUNDARY_MAX];
    size_t len;
    size_t owner; /* part index */
};

/* Parsing state kept per part until the end, when it becomes pointers. */
struct plink {
    size_t parent, child, last, next;
};

struct parser {
    struct mime_msg *msg;
    const char *buf;
    size_t len;
    struct plink *links;
    size_t cap;
    struct boundary stack[MIME_DEPTH_MAX];
    size_t nb;
    int no_more_parts; /* MIME_PARTS_MAX reached: boundaries are ignored */
    int nomem;
    struct mime_buf tmp, store;
    struct mime_params params;
};

static size_t part_new(struct parser *ps, size_t parent, size_t off)
{
    struct mime_msg *msg = ps->msg;
    struct mime_part *p;
    size_t i = msg->nparts;

    if (i >= MIME_PARTS_MAX)
        return NONE;
    if (i == ps->cap) {
        size_t cap = ps->cap ? ps->cap * 2 : 8;
        struct mime_part *np;
        struct plink *nl;

        if (cap > MIME_PARTS_MAX)
            cap = MIME_PARTS_MAX;
        np = realloc(msg->parts, cap * sizeof *np);
        if (np == NULL) {
            ps->nomem = 1;
            return NONE;
        }
        msg->parts = np;
        nl = realloc(ps->links, cap * sizeof *nl);
        if (nl == NULL) {
            ps->nomem = 1;
            return NONE;
        }
        ps->links = nl;
        ps->cap = cap;
    }
    p = &msg->parts[i];
    memset(p, 0, sizeof *p);
    p->msg = msg;
    p->hdr_off = p->body_off = off;
    ps->links[i].parent = parent;
    ps->links[i].child = ps->links[i].last = ps->links[i].next = NONE;
    if (parent != NONE) {
        struct plink *pl = &ps->links[parent];

        p->depth = msg->parts[parent].depth + 1;
        if (pl->child == NONE)
            pl->child = i;
        else
            ps->links[pl->last].next = i;
        pl->last = i;
        if (msg->parts[parent].flags & MIME_PART_MIME && msg->parts[parent].kind == MIME_MULTIPART)
            p->flags |= MIME_PART_MIME;
    }
    msg->nparts++;
    if (msg->nparts == MIME_PARTS_MAX) {
        /* From here on nothing starts a part, so boundaries mean nothing. */
        msg->flags |= MIME_MSG_PARTS_LIMIT;
        ps->no_more_parts = 1;
        ps->nb = 0;
    }
    return i;
}

/*
 * Is the line at pos a boundary line?  Returns the stack index, PENDING for
 * the part's own boundary (not yet on the stack: pend, plen), or NONE;
 * *close is set for "--boundary--".  The line only has to begin with
 * "--boundary"; the longest boundary that fits wins, the innermost on a tie.
 */
#define PENDING ((size_t)-2)

static size_t boundary_at(const struct parser *ps, size_t pos, const char *pend, size_t plen,
                          int *close)
{
    const char *data;
    size_t size, best = NONE, blen = 0;

    if ((ps->nb == 0 && pend == NULL) || ps->len - pos < 2 || ps->buf[pos] != '-' ||
        ps->buf[pos + 1] != '-')
        return NONE;
    data = ps->buf + pos + 2;
    size = ps->len - pos - 2;
    if (pend != NULL && plen <= size && memcmp(pend, data, plen) == 0) {
        best = PENDING;
        blen = plen;
    }
    for (size_t i = ps->nb; i-- > 0;) {
        const struct boundary *b = &ps->stack[i];

        if (b->len <= size && memcmp(b->s, data, b->len) == 0 && (best == NONE || blen < b->len)) {
            best = i;
            blen = b->len;
        }
    }
    if (best != NONE)
        *close = size >= blen + 2 && data[blen] == '-' && data[blen + 1] == '-';
    return best;
}

/* What a header block says about its part. */
struct hdr_result {
    int seen_ct, ct_ok, is_mime;
    int multipart, digest, message, text;
    int has_boundary;
    char boundary[MIME_BOUNDARY_MAX];
    size_t blen;
};

static void content_type(struct parser *ps, const struct mime_header *h, struct hdr_result *r)
{
    struct mime_lex lx;
    const char *ct;
    size_t n;
    int ret;

    mime_buf_reset(&ps->tmp);
    mime_lex_init(&lx, h->value, h->value_len, NULL);
    mime_lex_skip_lwsp(&lx);
    ret = mime_lex_content_type(&lx, &ps->tmp, ps->msg->lenient);
    if (ps->tmp.failed) {
        ps->nomem = 1;
        return;
    }
    ct = ps->tmp.p ? ps->tmp.p : "";
    n = ps->tmp.len;
    if (n == 14 && strncasecmp(ct, "message/rfc822", 14) == 0)
        r->message = 1;
    else if (n == 14 && strncasecmp(ct, "message/global", 14) == 0) {
        r->message = 1;
        ps->msg->flags |= MIME_MSG_GLOBAL;
    }
    else if (n >= 4 && strncasecmp(ct, "text", 4) == 0 && (n == 4 || ct[4] == '/'))
        r->text = 1;
    else if (n >= 10 && strncasecmp(ct, "multipart/", 10) == 0) {
        r->multipart = 1;
        r->digest = n == 16 && strncasecmp(ct + 10, "digest", 6) == 0;
    }
    r->ct_ok = ret >= 0;
    if (ret < 0 || !r->multipart)
        return;
    mime_buf_reset(&ps->store);
    if (mime_params_parse(&lx, ps->msg->lenient, &ps->params, &ps->store) < 0) {
        ps->nomem = 1;
        return;
    }
    {
        const struct mime_param *b = mime_params_get(&ps->params, &ps->store, "boundary");

        if (b != NULL) {
            r->has_boundary = 1;
            r->blen = b->value.len < MIME_BOUNDARY_MAX ? b->value.len : MIME_BOUNDARY_MAX;
            memcpy(r->boundary, mime_str_ptr(&ps->store, b->value), r->blen);
        }
    }
}

enum hdr_end { HDR_EOH, HDR_EOF, HDR_BOUNDARY };

static int limited(const struct parser *ps, const struct mime_part *p)
{
    return p->depth + 1 >= MIME_DEPTH_MAX || ps->no_more_parts;
}

/* Will part i push its boundary when its header ends with an empty line? */
static int pending_boundary(const struct parser *ps, size_t i, const struct hdr_result *r)
{
    const struct mime_part *p = &ps->msg->parts[i];

    return r->multipart && r->has_boundary && (r->is_mime || (p->flags & MIME_PART_MIME)) &&
           !limited(ps, p);
}

/* Where a boundary line was met. */
struct cut {
    size_t bidx;  /* stack index */
    size_t bline; /* offset of the "--boundary" line */
    int close;    /* "--boundary--" */
    int newline;  /* a header gave up its last newline to the boundary */
};

/*
 * Read the header block of part i from *pos.  A boundary line right after a
 * field, or right after the empty line, ends the block without that
 * newline (HDR_BOUNDARY, c filled): Dovecot counts the newline in the
 * parent's body.
 */
static enum hdr_end read_header(struct parser *ps, size_t i, size_t *pos, struct hdr_result *r,
                                struct cut *c)
{
    struct mime_part *p = &ps->msg->parts[i];
    const char *buf = ps->buf;
    size_t at = *pos, next, last_nl = 0, nfields = 0;
    struct mime_header h;

    memset(r, 0, sizeof *r);
    for (;;) {
        if (at >= ps->len) {
            p->hdr_len = at - p->hdr_off;
            p->flags |= MIME_PART_NO_EOH;
            *pos = at;
            return HDR_EOF;
        }
        if (!ps->no_more_parts && (c->bidx = boundary_at(ps, at, NULL, 0, &c->close)) != NONE) {
            c->newline = nfields > 0 && last_nl > 0;
            p->hdr_len = (nfields == 0 ? p->hdr_off : at - last_nl) - p->hdr_off;
            p->flags |= MIME_PART_NO_EOH;
            c->bline = *pos = at;
            return HDR_BOUNDARY;
        }
        if (mime_field_read(buf, at, ps->len, &h, &next) == 0) {
            size_t after = at + (buf[at] == '\n' ? 1 : 2);
            int own = pending_boundary(ps, i, r);

            /* An empty body right before a boundary line: the empty line
             * goes with the boundary. */
            if (!ps->no_more_parts &&
                (c->bidx = boundary_at(ps, after, own ? r->boundary : NULL, r->blen, &c->close)) !=
                    NONE &&
                c->bidx != PENDING) {
                c->newline = 1;
                p->hdr_len = at - p->hdr_off;
                c->bline = *pos = after;
                return HDR_BOUNDARY;
            }
            p->hdr_len = after - p->hdr_off;
            *pos = after;
            return HDR_EOH;
        }
        last_nl = buf[next - 1] != '\n' ? 0 : next >= 2 && buf[next - 2] == '\r' ? 2 : 1;
        if (memchr(h.field, '\0', h.field_len) != NULL)
            p->flags |= MIME_PART_NUL;
        if (nfields++ < MIME_HEADERS_MAX && h.value != NULL) {
            if (mime_field_is(&h, "MIME-Version"))
                r->is_mime = 1;
            else if (mime_field_is(&h, "Content-Type")) {
                r->is_mime = 1;
                if (!r->seen_ct) {
                    r->seen_ct = 1;
                    content_type(ps, &h, r);
                }
            }
        }
        at = next;
    }
}

/* Decide the part's kind from its header and its parent. */
static void settle_kind(struct parser *ps, size_t i, const struct hdr_result *r, int eoh)
{
    struct mime_part *p = &ps->msg->parts[i];
    size_t parent = ps->links[i].parent;
    int in_digest = parent != NONE && ps->msg->parts[parent].flags & MIME_PART_DIGEST &&
                    ps->msg->parts[parent].kind == MIME_MULTIPART;

    if (r->is_mime)
        p->flags |= MIME_PART_MIME;
    p->kind = MIME_LEAF;
    if (!(p->flags & MIME_PART_MIME) || !r->seen_ct) {
        if (in_digest)
            p->kind = MIME_MESSAGE;
        else
            p->flags |= MIME_PART_TEXT;
    } else if (r->message) {
        p->kind = MIME_MESSAGE;
    } else if (r->text) {
        p->flags |= MIME_PART_TEXT;
    } else if (r->multipart) {
        p->kind = MIME_MULTIPART;
        if (r->digest)
            p->flags |= MIME_PART_DIGEST;
    }
    if (p->kind != MIME_LEAF && limited(ps, p)) {
        /* Its inside stays one opaque body. */
        p->flags |= MIME_PART_LIMITED;
        if (p->depth + 1 >= MIME_DEPTH_MAX)
            ps->msg->flags |= MIME_MSG_DEPTH_LIMIT;
        return;
    }
    if (p->kind == MIME_MULTIPART && r->has_boundary && eoh && !ps->no_more_parts) {
        struct boundary *b = &ps->stack[ps->nb++];

        memcpy(b->s, r->boundary, r->blen);
        b->len = r->blen;
        b->owner = i;
    }
}

/* Close parts from cur up to (not including) owner: they end at end. */
static void close_to(struct parser *ps, size_t cur, size_t owner, size_t end)
{
    while (cur != owner && cur != NONE) {
        struct mime_part *p = &ps->msg->parts[cur];

        p->body_len = end > p->body_off ? end - p->body_off : 0;
        cur = ps->links[cur].parent;
    }
}

/* First boundary line at a line start in [pos, len): its position, or NONE. */
static size_t scan_body(struct parser *ps, size_t pos, int line_start, size_t *bidx, int *close)
{
    const char *buf = ps->buf, *lf;

    if (ps->nb == 0 || ps->no_more_parts)
        return NONE;
    if (line_start && (*bidx = boundary_at(ps, pos, NULL, 0, close)) != NONE)
        return pos;
    while (pos < ps->len && (lf = memchr(buf + pos, '\n', ps->len - pos)) != NULL) {
        pos = (size_t)(lf - buf) + 1;
        if (pos + 2 <= ps->len && buf[pos] == '-' && buf[pos + 1] == '-' &&
            (*bidx = boundary_at(ps, pos, NULL, 0, close)) != NONE)
            return pos;
    }
    return NONE;
}

/* Count LFs in [off, off+len). */
static size_t count_lf(const char *buf, size_t off, size_t len)
{
    size_t n = 0;
    const char *p = buf + off, *end = buf + off + len;

    while (p < end && (p = memchr(p, '\n', (size_t)(end - p))) != NULL) {
        n++;
        p++;
    }
    return n;
}

/* Line counts bottom-up, each byte counted once: a part's lines are its
 * own bytes' LFs plus its children's. */
static void count_lines(struct parser *ps)
{
    struct mime_msg *msg = ps->msg;
    size_t *total = calloc(msg->nparts, sizeof *total);

    if (total == NULL) {
        ps->nomem = 1;
        return;
    }
    for (size_t i = msg->nparts; i-- > 0;) {
        struct mime_part *p = &msg->parts[i];
        size_t at = p->body_off, end = p->body_off + p->body_len, lines = 0;

        for (size_t c = ps->links[i].child; c != NONE; c = ps->links[c].next) {
            struct mime_part *cp = &msg->parts[c];

            if (cp->hdr_off > at)
                lines += count_lf(ps->buf, at, cp->hdr_off - at);
            lines += total[c];
            at = cp->body_off + cp->body_len;
        }
        if (end > at)
            lines += count_lf(ps->buf, at, end - at);
        p->body_lines = lines;
        total[i] = lines + count_lf(ps->buf, p->hdr_off, p->hdr_len);
        if (p->kind == MIME_LEAF && !(p->flags & MIME_PART_NUL) &&
            memchr(ps->buf + p->body_off, '\0', p->body_len) != NULL)
            p->flags |= MIME_PART_NUL;
    }
    free(total);
}

/* Where the body that starts at pos ends: the next boundary line (c), or
 * NONE at the end of the message.  Returns the end of the body: the CRLF
 * before the boundary line belongs to the boundary. */
static size_t body_end(struct parser *ps, size_t pos, int line_start, struct cut *c)
{
    size_t end;

    c->newline = 0;
    c->bline = scan_body(ps, pos, line_start, &c->bidx, &c->close);
    if (c->bline == NONE)
        return NONE;
    end = c->bline;
    if (end > pos) {
        end--;
        if (end > pos && ps->buf[end - 1] == '\r')
            end--;
    }
    return end;
}

static void parse(struct parser *ps)
{
    size_t cur = part_new(ps, NONE, 0), pos = 0, nl_part = NONE, end;
    struct hdr_result r;
    struct cut c;

    if (cur == NONE)
        return;
    for (;;) {
        struct mime_part *p = &ps->msg->parts[cur];
        enum hdr_end how = read_header(ps, cur, &pos, &r, &c);

        if (ps->nomem)
            return;
        p->body_off = p->hdr_off + p->hdr_len;
        if (how == HDR_BOUNDARY && c.newline)
            nl_part = cur;
        settle_kind(ps, cur, &r, how == HDR_EOH);
        if (p->kind == MIME_MESSAGE && !(p->flags & MIME_PART_LIMITED)) {
            /* The embedded message starts where the body does. */
            size_t child = part_new(ps, cur, p->body_off);

            if (child == NONE)
                return;
            cur = child;
            continue;
        }
        if (how == HDR_EOF) {
            close_to(ps, cur, NONE, ps->len);
            return;
        }
        if (how == HDR_BOUNDARY) {
            /* Parts up to the one that gave up its newline end before it;
             * the ones above, after it. */
            size_t owner = ps->stack[c.bidx].owner, q = cur, low = p->body_off;
            int above = nl_part == NONE;

            while (q != owner && q != NONE) {
                close_to(ps, q, ps->links[q].parent, above ? c.bline : low);
                above |= q == nl_part;
                q = ps->links[q].parent;
            }
            cur = owner;
        } else if ((end = body_end(ps, pos, 1, &c)) == NONE) {
            close_to(ps, cur, NONE, ps->len);
            return;
        } else {
            close_to(ps, cur, ps->stack[c.bidx].owner, end);
            cur = ps->stack[c.bidx].owner;
        }
        /* cur owns the boundary line at c.bline. */
        for (;;) {
            int lf = line_end(ps->buf, c.bline, ps->len, &pos) < ps->len;

            ps->nb = c.close ? c.bidx : c.bidx + 1;
            nl_part = NONE;
            if (!lf) {
                /* A part starts only after the boundary line's LF. */
                close_to(ps, cur, NONE, ps->len);
                return;
            }
            if (!c.close) {
                size_t child = part_new(ps, cur, pos);

                if (child == NONE)
                    return;
                cur = child;
                break;
            }
            /* Epilogue: up to a boundary of an outer multipart. */
            end = body_end(ps, pos, pos > 0 && ps->buf[pos - 1] == '\n', &c);
            if (end == NONE) {
                close_to(ps, cur, NONE, ps->len);
                return;
            }
            close_to(ps, cur, ps->stack[c.bidx].owner, end);
            cur = ps->stack[c.bidx].owner;
        }
    }
}

struct mime_msg *mime_parse(const char *buf, size_t len)
{
    return mime_parse_flags(buf, len, 0);
}

struct mime_msg *mime_parse_flags(const char *buf, size_t len, unsigned flags)
{
    struct mime_msg *msg = calloc(1, sizeof *msg);
    struct parser *ps = calloc(1, sizeof *ps);

    if (msg == NULL || ps == NULL) {
        free(msg);
        free(ps);
        return NULL;
    }
    msg->buf = buf ? buf : "";
    msg->len = buf ? len : 0;
    msg->lenient = (flags & MIME_PARSE_LENIENT) != 0;
    ps->msg = msg;
    ps->buf = msg->buf;
    ps->len = msg->len;
    mime_buf_init(&ps->tmp, MIME_STORE_MAX);
    mime_buf_init(&ps->store, MIME_STORE_MAX);
    parse(ps);
    if (!ps->nomem)
        count_lines(ps);
    if (!ps->nomem) {
        for (size_t i = 0; i < msg->nparts; i++) {
            struct plink *l = &ps->links[i];
            struct mime_part *p = &msg->parts[i];

            p->parent = l->parent == NONE ? NULL : &msg->parts[l->parent];
            p->child = l->child == NONE ? NULL : &msg->parts[l->child];
            p->next = l->next == NONE ? NULL : &msg->parts[l->next];
        }
        msg->root = &msg->parts[0];
    }
    mime_buf_free(&ps->tmp);
    mime_buf_free(&ps->store);
    free(ps->links);
    if (ps->nomem) {
        free(ps);
        mime_free(msg);
        return NULL;
    }
    free(ps);
    return msg;
}

void mime_free(struct mime_msg *msg)
{
    if (msg == NULL)
        return;
    free(msg->parts);
    free(msg);
}

/* ---- sections --------------------------------------------------------- */

static struct mime_range range(size_t off, size_t len)
{
    struct mime_range r = {off, len};
    return r;
}

int mime_section(const struct mime_msg *msg, const char *nums, size_t len, struct mime_section *out)
{
    const struct mime_part *part = msg->root;
    size_t i = 0;

    memset(out, 0, sizeof *out);
    if (part == NULL)
        return -1;
    /* Walk the numbers (Dovecot's imap-msgpart rules). */
    while (i < len) {
        unsigned long num = 0;
        size_t start = i;

        while (i < len && nums[i] >= '0' && nums[i] <= '9') {
            if (num > 1000000)
                return -1;
            num = num * 10 + (unsigned long)(nums[i] - '0');
            i++;
        }
        if (i == start || num == 0 || nums[start] == '0')
            return -1;
        if (i < len) {
            if (nums[i] != '.' || i + 1 == len)
                return -1;
            i++;
        }
        if (part->kind == MIME_MULTIPART) {
            part = part->child;
            while (part != NULL && --num > 0)
                part = part->next;
            if (part == NULL)
                return -1;
        } else {
            /* Only 1 exists; and only at the end, unless a message
             * follows. */
            if (num != 1 || (i < len && part->kind != MIME_MESSAGE))
                return -1;
        }
        if (i < len && part->kind == MIME_MESSAGE) {
            if (part->child == NULL)
                return -1;
            part = part->child;
        }
    }
    out->part = part;
    if (len == 0) {
        out->body = range(0, msg->len);
        out->header = range(part->hdr_off, part->hdr_len);
        out->text = range(part->body_off, part->body_len);
        out->has_message = 1;
        return 0;
    }
    out->body = range(part->body_off, part->body_len);
    out->mime = range(part->hdr_off, part->hdr_len);
    out->has_mime = 1;
    if (part->kind == MIME_MESSAGE && part->child != NULL) {
        const struct mime_part *m = part->child;

        out->header = range(m->hdr_off, m->hdr_len);
        out->text = range(m->body_off, m->body_len);
        out->has_message = 1;
    }
    return 0;
}

int mime_header_fields(const struct mime_msg *msg, struct mime_range hdr, const char *const *names,
                       size_t nnames, int not, struct mime_buf *out)
{
    size_t pos = hdr.off, lim = hdr.off + hdr.len, next;
    struct mime_header h;

    if (lim > msg->len || hdr.off > lim)
        return -1;
    while (mime_field_read(msg->buf, pos, lim, &h, &next)) {
        int match = 0;

        for (size_t i = 0; i < nnames && !match; i++)
            match = h.value != NULL && mime_field_is(&h, names[i]);
        if (match != (not != 0)) {
            if (mime_buf_add(out, h.field, h.field_len) < 0)
                return -1;
            if (h.field_len > 0 && h.field[h.field_len - 1] != '\n' &&
                mime_buf_add(out, "\r\n", 2) < 0)
                return -1;
        }
        pos = next;
    }
    return mime_buf_add(out, "\r\n", 2);
}
