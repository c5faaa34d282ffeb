/*
 * mime_imap.c - IMAP strings, ENVELOPE, BODY and BODYSTRUCTURE (RFC 3501
 * 7.4.2 and 9, RFC 9051 7.5.2).  See mime.h.
 *
 * Where the RFCs leave room the choices are Dovecot's, byte for byte:
 *   - a string is "quoted" unless it holds CR, LF, 8-bit bytes or more than
 *     four '"' or '\' (then a {n} literal);
 *   - Subject and display names are cleaned "for humans": CR, LF and TAB
 *     become blanks, runs of blanks one blank, blanks at the ends go; any
 *     change makes a literal;
 *   - Date, Message-ID, In-Reply-To, Content-ID, -Description, -MD5 and
 *     -Location are raw, with line folds removed;
 *   - the last Date, Subject, Message-ID and In-Reply-To field counts;
 *     repeated address fields (From, To, Cc, ...) add up;
 *   - types and parameters keep the case they were written in; a text part
 *     without a charset gets ("charset" "us-ascii") last; no Content-Type is
 *     "text" "plain"; no Content-Transfer-Encoding is "7bit";
 *   - a multipart without parts shows one empty text/plain part; a leaf
 *     that says multipart or message/rfc822 (no boundary, past the depth
 *     bound) is "application" "octet-stream".
 * message/global is reported like message/rfc822 (RFC 9051 body-type-msg),
 * or as a basic part with MIME_IMAP_GLOBAL_BASIC (RFC 3501 has no such
 * body-type-msg: for IMAP4rev1 sessions).
 */
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "mime_internal.h"

/* ---- strings ---------------------------------------------------------- */

#define QUOTED_MAX_ESCAPES 4

static int literal(struct mime_buf *out, const char *s, size_t len)
{
    mime_buf_addc(out, '{');
    mime_buf_addu(out, len);
    mime_buf_add(out, "}\r\n", 3);
    for (size_t i = 0, start = 0; i <= len; i++) {
        if (i == len || s[i] == '\0') {
            mime_buf_add(out, s + start, i - start);
            if (i < len)
                mime_buf_addc(out, (char)0x80); /* never NUL in a literal */
            start = i + 1;
        }
    }
    return out->failed ? -1 : 0;
}

int mime_imap_nstring(struct mime_buf *out, const char *s, size_t len)
{
    unsigned escapes = 0;

    if (s == NULL)
        return mime_buf_add(out, "NIL", 3);
    for (size_t i = 0; i < len; i++) {
        unsigned char c = (unsigned char)s[i];

        if (c == '"' || c == '\\') {
            if (escapes++ >= QUOTED_MAX_ESCAPES)
                return literal(out, s, len);
        } else if (c == '\r' || c == '\n' || c == '\0' || c >= 0x80) {
            return literal(out, s, len);
        }
    }
    mime_buf_addc(out, '"');
    for (size_t i = 0, start = 0; i <= len; i++) {
        if (i == len || s[i] == '"' || s[i] == '\\') {
            mime_buf_add(out, s + start, i - start);
            if (i < len) {
                mime_buf_addc(out, '\\');
                mime_buf_addc(out, s[i]);
            }
            start = i + 1;
        }
    }
    return mime_buf_addc(out, '"');
}

static int is_ws(char c)
{
    return c == ' ' || c == '\t' || c == '\r' || c == '\n';
}

/* Folds removed: a CR or LF goes; a blank is put in only where the next
 * line would otherwise be glued on. */
static int nstring_nolf(struct mime_buf *out, const char *s, size_t len)
{
    struct mime_buf tmp;
    int ret;

    if (s == NULL || (memchr(s, '\r', len) == NULL && memchr(s, '\n', len) == NULL))
        return mime_imap_nstring(out, s, len);
    mime_buf_init(&tmp, MIME_STORE_MAX);
    for (size_t i = 0; i < len; i++) {
        if (s[i] != '\r' && s[i] != '\n')
            mime_buf_addc(&tmp, s[i]);
        else if (i + 1 < len && !is_ws(s[i + 1]) && s[i + 1] != '\0')
            mime_buf_addc(&tmp, ' ');
    }
    ret = tmp.failed ? -1 : mime_imap_nstring(out, tmp.p ? tmp.p : "", tmp.len);
    mime_buf_free(&tmp);
    return ret;
}

static int str_nolf(struct mime_buf *out, const struct mime_buf *store, struct mime_str s)
{
    return nstring_nolf(out, s.set ? mime_str_ptr(store, s) : NULL, s.len);
}

static int str_n(struct mime_buf *out, const struct mime_buf *store, struct mime_str s)
{
    return mime_imap_nstring(out, s.set ? mime_str_ptr(store, s) : NULL, s.len);
}

/* Subject and display names. */
static int for_humans(struct mime_buf *out, const char *s, size_t len)
{
    size_t removed = 0;
    int last_ws = 1, prefix = 1, modify = 0;

    for (size_t i = 0; i < len; i++) {
        unsigned char c = (unsigned char)s[i];

        switch (c) {
        case '\0':
            last_ws = 0;
            modify = 1;
            break;
        case '\r':
        case '\n':
        case '\t':
            modify = 1;
            /* fall through */
        case ' ':
            if (last_ws) {
                modify = 1;
                removed++;
            }
            last_ws = 1;
            break;
        case '"':
        case '\\':
            modify = 1;
            last_ws = 0;
            break;
        default:
            if (c >= 0x80)
                modify = 1;
            last_ws = 0;
            break;
        }
        if (!last_ws)
            prefix = 0;
    }
    if (last_ws && len > 0 && !prefix) {
        modify = 1;
        removed++;
    }
    if (!modify) {
        mime_buf_addc(out, '"');
        mime_buf_add(out, s, len);
        return mime_buf_addc(out, '"');
    }
    if (len == removed)
        return mime_buf_add(out, "\"\"", 2);
    mime_buf_addc(out, '{');
    mime_buf_addu(out, len - removed);
    mime_buf_add(out, "}\r\n", 3);
    {
        size_t start = out->len;

        last_ws = 1;
        prefix = 1;
        for (size_t i = 0; i < len; i++) {
            unsigned char c = (unsigned char)s[i];

            if (c == '\0') {
                mime_buf_addc(out, (char)0x80);
                last_ws = 0;
            } else if (is_ws((char)c)) {
                if (!last_ws)
                    mime_buf_addc(out, ' ');
                last_ws = 1;
            } else {
                last_ws = 0;
                mime_buf_addc(out, (char)c);
            }
            if (!last_ws)
                prefix = 0;
        }
        if (last_ws && len > 0 && !prefix && out->len > start)
            out->len--;
    }
    return out->failed ? -1 : 0;
}

/* ---- ENVELOPE --------------------------------------------------------- */

enum env_field {
    E_DATE,
    E_SUBJECT,
    E_FROM,
    E_SENDER,
    E_REPLY_TO,
    E_TO,
    E_CC,
    E_BCC,
    E_IN_REPLY_TO,
    E_MESSAGE_ID,
    E_COUNT
};

static const char *const env_names[E_COUNT] = {
    "Date", "Subject", "From", "Sender", "Reply-To", "To", "Cc", "Bcc", "In-Reply-To", "Message-ID",
};

/* A header string with NUL bytes as U+FFFD. */
static int header_string(const struct mime_header *h, struct mime_buf *tmp)
{
    size_t start = 0;

    mime_buf_reset(tmp);
    for (size_t i = 0; i < h->value_len; i++) {
        if (h->value[i] == '\0') {
            mime_buf_add(tmp, h->value + start, i - start);
            mime_buf_add(tmp, MIME_NUL_REPL, MIME_NUL_REPL_LEN);
            start = i + 1;
        }
    }
    mime_buf_add(tmp, h->value + start, h->value_len - start);
    return mime_buf_cstr(tmp);
}

static int write_addrs(struct mime_buf *out, const struct mime_addrs *a)
{
    if (a->n == 0)
        return mime_buf_add(out, "NIL", 3);
    mime_buf_addc(out, '(');
    for (size_t i = 0; i < a->n; i++) {
        const struct mime_addr *x = &a->v[i];

        mime_buf_addc(out, '(');
        if (!x->name.set)
            mime_buf_add(out, "NIL", 3);
        else
            for_humans(out, mime_str_ptr(&a->store, x->name), x->name.len);
        mime_buf_addc(out, ' ');
        str_n(out, &a->store, x->route);
        mime_buf_addc(out, ' ');
        str_n(out, &a->store, x->mailbox);
        mime_buf_addc(out, ' ');
        str_n(out, &a->store, x->domain);
        mime_buf_addc(out, ')');
    }
    return mime_buf_addc(out, ')');
}

static int envelope(const struct mime_part *m, struct mime_buf *out)
{
    struct mime_header found[E_COUNT], h;
    int have[E_COUNT] = {0};
    struct mime_addrs addrs[E_COUNT];
    struct mime_buf tmp;
    size_t pos = 0;
    unsigned n = 0;
    int ret = 0;

    mime_buf_init(&tmp, MIME_STORE_MAX);
    for (int f = 0; f < E_COUNT; f++)
        mime_addrs_init(&addrs[f]);
    while (n++ < MIME_HEADERS_MAX && mime_header_next(m, &pos, &h)) {
        if (h.value == NULL)
            continue;
        for (int f = 0; f < E_COUNT; f++) {
            if (!mime_field_is(&h, env_names[f]))
                continue;
            if (f >= E_FROM && f <= E_BCC) {
                if (mime_addrs_parse(h.value, h.value_len, &addrs[f]) < 0)
                    ret = -1;
            } else {
                found[f] = h; /* the last one counts */
                have[f] = 1;
            }
        }
    }
    if (ret == 0) {
        mime_buf_addc(out, '(');
        for (int f = 0; f < E_COUNT; f++) {
            if (f > 0)
                mime_buf_addc(out, ' ');
            if (f >= E_FROM && f <= E_BCC) {
                const struct mime_addrs *a = &addrs[f];

                /* RFC 3501: Sender and Reply-To default to From. */
                if ((f == E_SENDER || f == E_REPLY_TO) && a->n == 0)
                    a = &addrs[E_FROM];
                write_addrs(out, a);
            } else if (!have[f]) {
                mime_buf_add(out, "NIL", 3);
            } else if (header_string(&found[f], &tmp) < 0) {
                ret = -1;
            } else if (f == E_SUBJECT) {
                for_humans(out, tmp.p, tmp.len);
            } else {
                nstring_nolf(out, tmp.p, tmp.len);
            }
        }
        mime_buf_addc(out, ')');
    }
    for (int f = 0; f < E_COUNT; f++)
        mime_addrs_free(&addrs[f]);
    mime_buf_free(&tmp);
    return ret < 0 || out->failed ? -1 : 0;
}

int mime_imap_envelope(const struct mime_part *m, struct mime_buf *out)
{
    return envelope(m, out);
}

/* ---- BODY / BODYSTRUCTURE --------------------------------------------- */

#define EMPTY_BODY "(\"text\" \"plain\" (\"charset\" \"us-ascii\") NIL NIL \"7bit\" 0 0"

static int params_write(struct mime_buf *out, const struct mime_params *ps,
                        const struct mime_buf *store, int default_charset)
{
    int charset = 0;

    if (!default_charset && ps->n == 0)
        return mime_buf_add(out, "NIL", 3);
    mime_buf_addc(out, '(');
    for (size_t i = 0; i < ps->n; i++) {
        const struct mime_param *p = &ps->v[i];

        if (i > 0)
            mime_buf_addc(out, ' ');
        if (p->name.len == 7 && strncasecmp(mime_str_ptr(store, p->name), "charset", 7) == 0)
            charset = 1;
        str_n(out, store, p->name);
        mime_buf_addc(out, ' ');
        str_n(out, store, p->value);
    }
    if (default_charset && !charset) {
        if (ps->n > 0)
            mime_buf_addc(out, ' ');
        mime_buf_adds(out, "\"charset\" \"us-ascii\"");
    }
    return mime_buf_addc(out, ')');
}

/* body-ext tail shared by all parts: disposition, language, location. */
static void ext_common(struct mime_buf *out, const struct mime_info *in)
{
    mime_buf_addc(out, ' ');
    if (!in->disp.set) {
        mime_buf_add(out, "NIL", 3);
    } else {
        mime_buf_addc(out, '(');
        str_n(out, &in->store, in->disp);
        mime_buf_addc(out, ' ');
        params_write(out, &in->dispp, &in->store, 0);
        mime_buf_addc(out, ')');
    }
    mime_buf_addc(out, ' ');
    if (in->nlang == 0) {
        mime_buf_add(out, "NIL", 3);
    } else {
        mime_buf_addc(out, '(');
        for (size_t i = 0; i < in->nlang; i++) {
            if (i > 0)
                mime_buf_addc(out, ' ');
            str_n(out, &in->store, in->lang[i]);
        }
        mime_buf_addc(out, ')');
    }
    mime_buf_addc(out, ' ');
    str_nolf(out, &in->store, in->loc);
}

static int str_is(const struct mime_buf *store, struct mime_str s, const char *what)
{
    size_t n = strlen(what);

    return s.set && s.len == n && strncasecmp(mime_str_ptr(store, s), what, n) == 0;
}

static int write_part(const struct mime_part *p, unsigned flags, struct mime_buf *out);

static int write_multipart(const struct mime_part *p, const struct mime_info *in, unsigned flags,
                           struct mime_buf *out)
{
    int ext = (flags & MIME_IMAP_EXTENDED) != 0;

    if (p->child == NULL) {
        mime_buf_adds(out, EMPTY_BODY);
        mime_buf_adds(out, ext ? " NIL NIL NIL NIL)" : ")");
    }
    for (const struct mime_part *c = p->child; c != NULL; c = c->next) {
        mime_buf_addc(out, '(');
        if (write_part(c, flags, out) < 0)
            return -1;
        mime_buf_addc(out, ')');
    }
    mime_buf_addc(out, ' ');
    if (in->subtype.set)
        str_n(out, &in->store, in->subtype);
    else
        mime_buf_add(out, "\"\"", 2);
    if (ext) {
        mime_buf_addc(out, ' ');
        params_write(out, &in->ctp, &in->store, 0);
        ext_common(out, in);
    }
    return out->failed ? -1 : 0;
}

static int write_leaf(const struct mime_part *p, const struct mime_info *in, unsigned flags,
                      struct mime_buf *out)
{
    int ext = (flags & MIME_IMAP_EXTENDED) != 0, text = 0;
    int global = str_is(&in->store, in->subtype, "global");
    int msg = p->kind == MIME_MESSAGE && p->child != NULL;
    /* IMAP4rev1 knows only message/rfc822 as body-type-msg (RFC 3501 9). */
    int global_basic = msg && global && (flags & MIME_IMAP_GLOBAL_BASIC);

    if (global_basic) {
        msg = 0;
        str_n(out, &in->store, in->type);
        mime_buf_addc(out, ' ');
        str_n(out, &in->store, in->subtype);
    } else if (msg) {
        mime_buf_adds(out, global ? "\"message\" \"global\"" : "\"message\" \"rfc822\"");
    } else if (!in->type.set) {
        mime_buf_adds(out, "\"text\" \"plain\"");
        text = 1;
    } else if (str_is(&in->store, in->type, "multipart") ||
               (str_is(&in->store, in->type, "message") &&
                (str_is(&in->store, in->subtype, "rfc822") || global))) {
        /* A leaf that says multipart or message (no boundary, too deep):
         * shown as Dovecot does, so that the answer still parses. */
        mime_buf_adds(out, "\"application\" \"octet-stream\"");
    } else {
        text = str_is(&in->store, in->type, "text");
        str_n(out, &in->store, in->type);
        mime_buf_addc(out, ' ');
        if (in->subtype.set)
            str_n(out, &in->store, in->subtype);
        else
            mime_buf_add(out, "\"\"", 2);
    }
    mime_buf_addc(out, ' ');
    params_write(out, &in->ctp, &in->store, text);
    mime_buf_addc(out, ' ');
    str_nolf(out, &in->store, in->id);
    mime_buf_addc(out, ' ');
    str_nolf(out, &in->store, in->desc);
    mime_buf_addc(out, ' ');
    if (in->cte.set)
        str_n(out, &in->store, in->cte);
    else
        mime_buf_add(out, "\"7bit\"", 6);
    mime_buf_addc(out, ' ');
    mime_buf_addu(out, p->body_len);
    if (text) {
        mime_buf_addc(out, ' ');
        mime_buf_addu(out, p->body_lines);
    } else if (msg) {
        mime_buf_add(out, " ", 1);
        if (envelope(p->child, out) < 0)
            return -1;
        mime_buf_add(out, " (", 2);
        if (write_part(p->child, flags, out) < 0)
            return -1;
        mime_buf_add(out, ") ", 2);
        mime_buf_addu(out, p->body_lines);
    }
    if (ext) {
        mime_buf_addc(out, ' ');
        str_nolf(out, &in->store, in->md5);
        ext_common(out, in);
    }
    return out->failed ? -1 : 0;
}

static int write_part(const struct mime_part *p, unsigned flags, struct mime_buf *out)
{
    struct mime_info *in = malloc(sizeof *in);
    int ret;

    if (in == NULL) {
        out->failed = 1;
        return -1;
    }
    if (mime_info_load(p, in) < 0)
        ret = -1;
    else if (p->kind == MIME_MULTIPART && !(p->flags & MIME_PART_LIMITED))
        ret = write_multipart(p, in, flags, out);
    else
        ret = write_leaf(p, in, flags, out);
    mime_info_free(in);
    free(in);
    if (ret < 0)
        out->failed = 1;
    return ret;
}

int mime_imap_bodystructure(const struct mime_msg *msg, unsigned flags, struct mime_buf *out)
{
    if (msg->root == NULL)
        return -1;
    mime_buf_addc(out, '(');
    if (write_part(msg->root, flags, out) < 0)
        return -1;
    return mime_buf_addc(out, ')');
}
