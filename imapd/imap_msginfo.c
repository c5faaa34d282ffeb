/*
 * imap_msginfo.c - what SORT and THREAD read of a message, as pure
 * functions: the ENVELOPE text of the index cache back into fields, RFC
 * 5322 dates (RFC 5256 2.2), msg-ids (RFC 5256 section 4), the address
 * sort keys (RFC 5256 FROM/TO/CC, RFC 5957 DISPLAYFROM/DISPLAYTO).  See
 * imap_sort.h.
 *
 * The ENVELOPE is the one mime_imap_envelope() writes (quoted strings with
 * \" and \\ escapes, {n} literals, NIL), read with a cursor that never
 * goes past len: a malformed cache entry is an error, not a crash.
 */
#include <string.h>
#include <strings.h>

#include "imap_sort.h"

/* --- dates ------------------------------------------------------------- */

struct lex {
    const char *s;
    size_t len, i;
};

/* Blanks, line folds and (nested) comments. */
static void skip_cfws(struct lex *x)
{
    unsigned depth = 0;

    while (x->i < x->len) {
        char c = x->s[x->i];

        if (depth == 0 && c != ' ' && c != '\t' && c != '\r' && c != '\n' && c != '(')
            return;
        if (c == '(')
            depth++;
        else if (c == ')')
            depth--;
        else if (c == '\\' && depth > 0 && x->i + 1 < x->len)
            x->i++;
        x->i++;
    }
}

static int num(struct lex *x, unsigned maxdigits, unsigned *digits, int *out)
{
    int v = 0;
    unsigned n = 0;

    while (x->i < x->len && x->s[x->i] >= '0' && x->s[x->i] <= '9' && n < maxdigits) {
        v = v * 10 + (x->s[x->i++] - '0');
        n++;
    }
    if (digits)
        *digits = n;
    *out = v;
    return n ? 0 : -1;
}

static size_t word(struct lex *x)
{
    size_t n = 0;

    while (x->i + n < x->len && ((x->s[x->i + n] >= 'a' && x->s[x->i + n] <= 'z') ||
                                 (x->s[x->i + n] >= 'A' && x->s[x->i + n] <= 'Z')))
        n++;
    return n;
}

/* Days from 1970-01-01 to y-m-d (proleptic Gregorian; m 1-12). */
static int64_t days_from_civil(int64_t y, int m, int d)
{
    int64_t era, yoe, doy, doe;

    y -= m <= 2;
    era = (y >= 0 ? y : y - 399) / 400;
    yoe = y - era * 400;
    doy = (153 * (m + (m > 2 ? -3 : 9)) + 2) / 5 + d - 1;
    doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    return era * 146097 + doe - 719468;
}

/* Zone offset in minutes east of UTC; 0 (UTC) when it cannot be read. */
static int zone(struct lex *x)
{
    static const struct {
        const char *name;
        int hours;
    } named[] = {{"UT", 0},   {"UTC", 0},  {"GMT", 0},  {"EST", -5}, {"EDT", -4}, {"CST", -6},
                 {"CDT", -5}, {"MST", -7}, {"MDT", -6}, {"PST", -8}, {"PDT", -7}};
    size_t n;

    skip_cfws(x);
    if (x->i < x->len && (x->s[x->i] == '+' || x->s[x->i] == '-')) {
        int sign = x->s[x->i] == '-' ? -1 : 1, v;
        unsigned digits;

        x->i++;
        if (num(x, 4, &digits, &v) < 0 || digits != 4 || v % 100 > 59)
            return 0;
        return sign * ((v / 100) * 60 + v % 100);
    }
    n = word(x);
    for (size_t k = 0; k < sizeof named / sizeof named[0]; k++)
        if (strlen(named[k].name) == n && strncasecmp(x->s + x->i, named[k].name, n) == 0)
            return named[k].hours * 60;
    return 0; /* military zones and the rest: UTC (RFC 5322 4.3) */
}

int imap_rfc5322_date(const char *s, size_t len, int64_t *out)
{
    static const char months[] = "janfebmaraprmayjunjulaugsepoctnovdec";
    struct lex x = {s ? s : "", s ? len : 0, 0};
    int day, month = 0, year, h = 0, m = 0, sec = 0;
    unsigned ydigits;
    size_t n;

    skip_cfws(&x);
    n = word(&x);
    if (n) { /* day-of-week, then "," */
        x.i += n;
        skip_cfws(&x);
        if (x.i < x.len && x.s[x.i] == ',')
            x.i++;
        skip_cfws(&x);
    }
    if (num(&x, 2, NULL, &day) < 0 || day < 1 || day > 31)
        return -1;
    skip_cfws(&x);
    if (word(&x) != 3)
        return -1;
    for (int k = 0; k < 12; k++)
        if (strncasecmp(x.s + x.i, months + 3 * k, 3) == 0)
            month = k + 1;
    if (month == 0)
        return -1;
    x.i += 3;
    skip_cfws(&x);
    if (num(&x, 9, &ydigits, &year) < 0)
        return -1;
    if (ydigits == 2) /* RFC 5322 4.3 */
        year += year < 50 ? 2000 : 1900;
    else if (ydigits == 3)
        year += 1900;
    skip_cfws(&x);
    /* An unreadable time is midnight, an unreadable zone UTC (RFC 5256 2.2). */
    {
        struct lex t = x;
        int ok = num(&t, 2, NULL, &h) == 0 && t.i < t.len && t.s[t.i++] == ':' &&
                 num(&t, 2, NULL, &m) == 0;

        if (ok && t.i < t.len && t.s[t.i] == ':') {
            t.i++;
            ok = num(&t, 2, NULL, &sec) == 0;
        }
        if (ok && h <= 23 && m <= 59 && sec <= 60) {
            x = t;
        } else {
            h = m = sec = 0;
        }
    }
    *out = days_from_civil(year, month, day) * 86400 + h * 3600 + m * 60 + sec -
           (int64_t)zone(&x) * 60;
    return 0;
}

/* --- message ids --------------------------------------------------------- */

int imap_msgid_next(const char *s, size_t len, size_t *pos, struct mime_buf *out)
{
    while (s && *pos < len) {
        const char *lt = memchr(s + *pos, '<', len - *pos);
        size_t i;
        int at = 0, quoted = 0, ok = 0;

        if (lt == NULL) {
            *pos = len;
            return 0;
        }
        mime_buf_reset(out);
        mime_buf_addc(out, '<');
        for (i = (size_t)(lt - s) + 1; i < len; i++) {
            char c = s[i];

            if (c == '\\' && quoted && i + 1 < len) {
                mime_buf_addc(out, s[++i]);
                continue;
            }
            if (c == '"') {
                quoted = !quoted;
                continue;
            }
            if (!quoted && c == '<')
                break; /* a new id starts: this one was junk */
            if (!quoted && c == '>') {
                ok = 1;
                i++;
                break;
            }
            if (!quoted && (c == ' ' || c == '\t' || c == '\r' || c == '\n'))
                continue;
            if (c == '\r' || c == '\n')
                continue;
            if (c == '@' && !quoted)
                at = 1;
            mime_buf_addc(out, c);
        }
        *pos = i;
        if (ok && at && out->len > 2 && out->p[out->len - 1] != '@' && out->p[1] != '@') {
            mime_buf_addc(out, '>');
            return mime_buf_cstr(out) < 0 ? 0 : 1;
        }
    }
    return 0;
}

/* --- ENVELOPE ------------------------------------------------------------- */

struct cur {
    const char *s;
    size_t len, i;
};

static void sp(struct cur *c)
{
    while (c->i < c->len && c->s[c->i] == ' ')
        c->i++;
}

static int expect(struct cur *c, char ch)
{
    sp(c);
    if (c->i >= c->len || c->s[c->i] != ch)
        return -1;
    c->i++;
    return 0;
}

/* NIL, consumed: 1; else 0. */
static int nil(struct cur *c)
{
    sp(c);
    if (c->len - c->i >= 3 && strncasecmp(c->s + c->i, "NIL", 3) == 0) {
        c->i += 3;
        return 1;
    }
    return 0;
}

/* nstring into out (NULL: skip).  1 string, 0 NIL, -1 malformed. */
static int nstring(struct cur *c, struct mime_buf *out)
{
    if (out)
        mime_buf_reset(out);
    if (nil(c))
        return 0;
    if (c->i < c->len && c->s[c->i] == '"') {
        for (c->i++; c->i < c->len && c->s[c->i] != '"'; c->i++) {
            if (c->s[c->i] == '\\' && c->i + 1 < c->len)
                c->i++;
            if (out)
                mime_buf_addc(out, c->s[c->i]);
        }
        if (c->i >= c->len)
            return -1;
        c->i++;
        return out && out->failed ? -1 : 1;
    }
    if (c->i < c->len && c->s[c->i] == '{') {
        size_t n = 0;

        for (c->i++; c->i < c->len && c->s[c->i] >= '0' && c->s[c->i] <= '9'; c->i++) {
            if (n > (SIZE_MAX - 9) / 10)
                return -1;
            n = n * 10 + (size_t)(c->s[c->i] - '0');
        }
        if (c->len - c->i < 3 || memcmp(c->s + c->i, "}\r\n", 3) != 0)
            return -1;
        c->i += 3;
        if (n > c->len - c->i)
            return -1;
        if (out)
            mime_buf_add(out, c->s + c->i, n);
        c->i += n;
        return out && out->failed ? -1 : 1;
    }
    return -1;
}

/* An address list; its first entry into a (NULL: skip the list).  A group
 * start comes as it is: its name in mailbox, host NIL (as Dovecot sorts). */
static int addr_list(struct cur *c, struct imap_env_addr *a)
{
    struct mime_buf route;

    if (nil(c))
        return 0;
    if (expect(c, '(') < 0)
        return -1;
    mime_buf_init(&route, 64 * 1024);
    for (;;) {
        struct imap_env_addr tmp;
        struct imap_env_addr *dst = a && !a->present ? a : &tmp;
        int rn, rm, rh;

        sp(c);
        if (c->i < c->len && c->s[c->i] == ')') {
            c->i++;
            break;
        }
        if (dst == &tmp) {
            mime_buf_init(&tmp.name, 64 * 1024);
            mime_buf_init(&tmp.mailbox, 64 * 1024);
            mime_buf_init(&tmp.host, 64 * 1024);
        }
        rn = expect(c, '(') < 0 ? -1 : nstring(c, &dst->name);
        if (rn >= 0 && nstring(c, &route) < 0)
            rn = -1;
        rm = rn < 0 ? -1 : nstring(c, &dst->mailbox);
        rh = rm < 0 ? -1 : nstring(c, &dst->host);
        if (rh >= 0 && expect(c, ')') < 0)
            rh = -1;
        if (dst == &tmp) {
            mime_buf_free(&tmp.name);
            mime_buf_free(&tmp.mailbox);
            mime_buf_free(&tmp.host);
        }
        if (rn < 0 || rm < 0 || rh < 0) {
            mime_buf_free(&route);
            return -1;
        }
        if (dst == a)
            a->present = 1;
    }
    mime_buf_free(&route);
    return 0;
}

static void addr_init(struct imap_env_addr *a)
{
    mime_buf_init(&a->name, 64 * 1024);
    mime_buf_init(&a->mailbox, 64 * 1024);
    mime_buf_init(&a->host, 64 * 1024);
    a->present = 0;
}

static void addr_free(struct imap_env_addr *a)
{
    mime_buf_free(&a->name);
    mime_buf_free(&a->mailbox);
    mime_buf_free(&a->host);
}

void imap_env_init(struct imap_env *e)
{
    mime_buf_init(&e->date, 64 * 1024);
    mime_buf_init(&e->subject, 64 * 1024);
    mime_buf_init(&e->in_reply_to, 64 * 1024);
    mime_buf_init(&e->message_id, 64 * 1024);
    addr_init(&e->from);
    addr_init(&e->to);
    addr_init(&e->cc);
}

void imap_env_free(struct imap_env *e)
{
    mime_buf_free(&e->date);
    mime_buf_free(&e->subject);
    mime_buf_free(&e->in_reply_to);
    mime_buf_free(&e->message_id);
    addr_free(&e->from);
    addr_free(&e->to);
    addr_free(&e->cc);
}

int imap_env_parse(const char *text, size_t len, struct imap_env *e)
{
    struct cur c = {text ? text : "", text ? len : 0, 0};

    e->from.present = e->to.present = e->cc.present = 0;
    if (expect(&c, '(') < 0 || nstring(&c, &e->date) < 0 || nstring(&c, &e->subject) < 0 ||
        addr_list(&c, &e->from) < 0 || addr_list(&c, NULL) < 0 || addr_list(&c, NULL) < 0 ||
        addr_list(&c, &e->to) < 0 || addr_list(&c, &e->cc) < 0 || addr_list(&c, NULL) < 0 ||
        nstring(&c, &e->in_reply_to) < 0 || nstring(&c, &e->message_id) < 0 || expect(&c, ')') < 0)
        return -1;
    return 0;
}

/* One address "(name adl mailbox host)" as text for SEARCH: "name
 * <mailbox@host>", a group start as "name:", a group end as nothing. */
static int address_text(struct cur *c, struct mime_buf *out)
{
    struct mime_buf name, route, mbox, host;
    int rc;

    mime_buf_init(&name, 64 * 1024);
    mime_buf_init(&route, 64 * 1024);
    mime_buf_init(&mbox, 64 * 1024);
    mime_buf_init(&host, 64 * 1024);
    rc = expect(c, '(') < 0 || nstring(c, &name) < 0 || nstring(c, &route) < 0 ||
                 nstring(c, &mbox) < 0 || nstring(c, &host) < 0 || expect(c, ')') < 0
             ? -1 : 0;
    if (rc == 0 && (mbox.len || host.len)) {
        if (out->len)
            mime_buf_adds(out, ", ");
        if (host.len == 0) {
            mime_buf_add(out, mbox.p, mbox.len);
            mime_buf_addc(out, ':');
        } else {
            if (name.len) {
                mime_buf_add(out, name.p, name.len);
                mime_buf_addc(out, ' ');
            }
            mime_buf_addc(out, '<');
            mime_buf_add(out, mbox.p ? mbox.p : "", mbox.len);
            mime_buf_addc(out, '@');
            mime_buf_add(out, host.p, host.len);
            mime_buf_addc(out, '>');
        }
    }
    mime_buf_free(&name);
    mime_buf_free(&route);
    mime_buf_free(&mbox);
    mime_buf_free(&host);
    return rc == 0 && !out->failed ? 0 : -1;
}

static int address_list_text(struct cur *c, struct mime_buf *out)
{
    if (nil(c))
        return 0;
    if (expect(c, '(') < 0)
        return -1;
    for (;;) {
        sp(c);
        if (c->i < c->len && c->s[c->i] == ')') {
            c->i++;
            return 0;
        }
        if (c->i >= c->len || address_text(c, out) < 0)
            return -1;
    }
}

int imap_env_field_text(const char *text, size_t len, enum imap_env_field f,
                        struct mime_buf *out)
{
    struct cur c = {text ? text : "", text ? len : 0, 0};

    if (expect(&c, '(') < 0)
        return -1;
    for (int i = 0; i < (int)f; i++)
        if ((i < IMAP_ENV_FROM || i > IMAP_ENV_BCC ? nstring(&c, NULL) : addr_list(&c, NULL)) < 0)
            return -1;
    if (f >= IMAP_ENV_FROM && f <= IMAP_ENV_BCC)
        return address_list_text(&c, out);
    return nstring(&c, out) < 0 ? -1 : 0;
}

/* --- address keys ------------------------------------------------------------ */

int imap_sort_addr_key(const struct imap_env_addr *a, int display, struct mime_buf *out)
{
    mime_buf_reset(out);
    if (a->present && display && a->name.len) {
        struct mime_buf dec;
        size_t b = 0, e;

        mime_buf_init(&dec, 64 * 1024);
        mime_param_decode(a->name.p, a->name.len, 0, &dec);
        e = dec.len;
        while (b < e && (dec.p[b] == ' ' || dec.p[b] == '\t'))
            b++;
        while (e > b && (dec.p[e - 1] == ' ' || dec.p[e - 1] == '\t'))
            e--;
        mime_buf_add(out, dec.p ? dec.p + b : "", e - b);
        mime_buf_free(&dec);
    }
    if (a->present && out->len == 0) {
        mime_buf_add(out, a->mailbox.p ? a->mailbox.p : "", a->mailbox.len);
        if (display && a->host.len) { /* a group has no host: its name alone */
            mime_buf_addc(out, '@');
            mime_buf_add(out, a->host.p ? a->host.p : "", a->host.len);
        }
    }
    if (out->len > IMAP_SORT_KEY_MAX)
        out->len = IMAP_SORT_KEY_MAX;
    if (mime_buf_cstr(out) < 0)
        return -1;
    imap_casemap(out->p, out->len);
    return 0;
}
