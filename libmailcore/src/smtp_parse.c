/*
 * smtp_parse.c - SMTP command lines, paths and ESMTP parameters (RFC 5321,
 * 1870 SIZE, 6152 8BITMIME, 6531 SMTPUTF8, 3030 CHUNKING).  See
 * smtp_parse.h.
 *
 * Leniency, as Postfix's defaults: a space after "FROM:"/"TO:" and a path
 * without angle brackets are accepted; keywords are case-insensitive.
 * Everything else is strict: a path is a dot-string or quoted-string local
 * part, "@", and a domain or address literal, within SMTP_PATH_MAX.
 */
#include <ctype.h>
#include <string.h>
#include <strings.h>

#include "mailcore/smtp_parse.h"

static const struct {
    const char *name;
    enum smtp_verb verb;
} verbs[] = {
    {"HELO", SMTP_HELO}, {"EHLO", SMTP_EHLO}, {"MAIL", SMTP_MAIL},
    {"RCPT", SMTP_RCPT}, {"DATA", SMTP_DATA}, {"BDAT", SMTP_BDAT},
    {"RSET", SMTP_RSET}, {"NOOP", SMTP_NOOP}, {"QUIT", SMTP_QUIT},
    {"VRFY", SMTP_VRFY}, {"EXPN", SMTP_EXPN}, {"HELP", SMTP_HELP},
    {"STARTTLS", SMTP_STARTTLS}, {"AUTH", SMTP_AUTH},
};

const char *smtp_verb_name(enum smtp_verb v)
{
    for (size_t i = 0; i < sizeof verbs / sizeof verbs[0]; i++)
        if (verbs[i].verb == v)
            return verbs[i].name;
    return "unknown";
}

int smtp_parse_command(const char *line, size_t len, struct smtp_cmd *cmd)
{
    size_t vlen = 0;

    cmd->verb = SMTP_UNKNOWN;
    cmd->arg = "";
    cmd->arglen = 0;
    for (size_t i = 0; i < len; i++) {
        unsigned char ch = (unsigned char)line[i];
        if (ch == 0 || (ch < 0x20 && ch != '\t') || ch == 0x7f)
            return -1;
    }
    while (vlen < len && isalpha((unsigned char)line[vlen]))
        vlen++;
    if (vlen < len && line[vlen] != ' ')
        return -1;                              /* e.g. 8-bit or digits in the verb */
    for (size_t i = 0; i < sizeof verbs / sizeof verbs[0]; i++)
        if (strlen(verbs[i].name) == vlen && strncasecmp(verbs[i].name, line, vlen) == 0)
            cmd->verb = verbs[i].verb;
    if (vlen < len) {
        cmd->arg = line + vlen + 1;
        cmd->arglen = len - vlen - 1;
        /* Trailing white space is common and harmless. */
        while (cmd->arglen > 0 && (cmd->arg[cmd->arglen - 1] == ' ' ||
                                   cmd->arg[cmd->arglen - 1] == '\t'))
            cmd->arglen--;
    }
    return 0;
}

static int is_atext(unsigned char ch)
{
    return isalnum(ch) || (ch != 0 && strchr("!#$%&'*+-/=?^_`{|}~", ch) != NULL) || ch >= 0x80;
}

/* Domain: labels of letters, digits, hyphens (and UTF-8), or [literal]. */
static int valid_domain(const char *s, size_t len)
{
    size_t label = 0;

    if (len == 0 || len > SMTP_DOMAIN_MAX)
        return 0;
    if (s[0] == '[') {
        if (len < 3 || s[len - 1] != ']')
            return 0;
        for (size_t i = 1; i + 1 < len; i++)
            if (!isalnum((unsigned char)s[i]) && !memchr(".:-", s[i], 3))
                return 0;
        return 1;
    }
    for (size_t i = 0; i < len; i++) {
        unsigned char ch = (unsigned char)s[i];
        if (ch == '.') {
            if (label == 0 || s[i - 1] == '-')
                return 0;
            label = 0;
        } else if (isalnum(ch) || ch >= 0x80 || (ch == '-' && label > 0)) {
            if (++label > 63)
                return 0;
        } else {
            return 0;
        }
    }
    return label > 0 && s[len - 1] != '-';
}

/* A-d-l (RFC 5321 4.1.2): "@domain" separated by commas. */
static int valid_route(const char *s, size_t len)
{
    for (size_t i = 0;;) {
        size_t j = i + 1;

        if (i >= len || s[i] != '@')
            return 0;
        while (j < len && s[j] != ',')
            j++;
        if (!valid_domain(s + i + 1, j - i - 1))
            return 0;
        if (j == len)
            return 1;
        i = j + 1;
    }
}

/* Local part at s: returns its length, or 0 when invalid. */
static size_t local_part(const char *s, size_t len, int *quoted)
{
    size_t i = 0;

    *quoted = 0;
    if (len > 0 && s[0] == '"') {
        for (i = 1; i < len && s[i] != '"'; i++) {
            unsigned char ch = (unsigned char)s[i];
            if (ch == '\\') {
                if (++i == len || (unsigned char)s[i] < 0x20 || s[i] == 0x7f)
                    return 0;
            } else if (ch < 0x20 || ch == 0x7f) {
                return 0;
            }
        }
        if (i == len)
            return 0;
        *quoted = 1;
        return i + 1;
    }
    for (; i < len && s[i] != '@'; i++) {
        unsigned char ch = (unsigned char)s[i];
        if (ch == '.') {
            if (i == 0 || s[i - 1] == '.' || i + 1 == len || s[i + 1] == '@')
                return 0;
        } else if (!is_atext(ch)) {
            return 0;
        }
    }
    return i;
}

/* Parse a path at s; *used gets the bytes taken.  allow_null: "<>" is fine. */
static enum smtp_parse_error parse_path(const char *s, size_t len, struct smtp_path *p,
                                        size_t *used, int allow_null, int allow_postmaster,
                                        enum smtp_parse_error bad)
{
    size_t start = 0, end, at, lp;
    int bracket;

    memset(p, 0, sizeof *p);
    while (start < len && s[start] == ' ')
        start++;                                    /* "FROM: <a@b>" */
    bracket = start < len && s[start] == '<';
    if (bracket) {
        const char *close = memchr(s + start, '>', len - start);
        /* A '>' inside a quoted local part is not the end; keep it simple:
         * quoted local parts with '>' are refused. */
        if (close == NULL)
            return bad;
        end = (size_t)(close - s);
        start++;
    } else {
        for (end = start; end < len && s[end] != ' '; end++)
            ;
    }
    *used = end + bracket;
    if (end - start > SMTP_PATH_MAX - 2)
        return SMTP_PARSE_TOO_LONG;
    if (end == start) {
        if (!allow_null || !bracket)
            return bad;
        return SMTP_PARSE_OK;                       /* <> */
    }
    if (s[start] == '@') {                          /* source route: <@a,@b:u@d> */
        const char *colon = memchr(s + start, ':', end - start);
        if (colon == NULL || !valid_route(s + start, (size_t)(colon - s) - start))
            return bad;
        p->source_route = 1;
        start = (size_t)(colon - s) + 1;
    }
    lp = local_part(s + start, end - start, &p->quoted);
    if (lp == 0)
        return bad;
    at = start + lp;
    if (at == end) {
        if (!allow_postmaster || lp != 10 || strncasecmp(s + start, "postmaster", 10) != 0)
            return bad;
    } else if (s[at] != '@' || !valid_domain(s + at + 1, end - at - 1)) {
        return bad;
    }
    for (size_t i = start; i < end; i++)
        if ((unsigned char)s[i] >= 0x80)
            p->utf8 = 1;
    memcpy(p->addr, s + start, end - start);
    p->addr[end - start] = '\0';
    p->len = end - start;
    return SMTP_PARSE_OK;
}

/* The next "KEY[=VALUE]" word; 0 at the end. */
static int next_param(const char **s, const char *end, const char **key, size_t *klen,
                      const char **val, size_t *vlen)
{
    const char *p = *s, *eq;

    while (p < end && *p == ' ')
        p++;
    if (p == end)
        return 0;
    *key = p;
    while (p < end && *p != ' ')
        p++;
    eq = memchr(*key, '=', (size_t)(p - *key));
    if (eq) {
        *klen = (size_t)(eq - *key);
        *val = eq + 1;
        *vlen = (size_t)(p - eq - 1);
    } else {
        *klen = (size_t)(p - *key);
        *val = NULL;
        *vlen = 0;
    }
    *s = p;
    return 1;
}

static int keyword(const char *k, size_t klen, const char *name)
{
    return strlen(name) == klen && strncasecmp(k, name, klen) == 0;
}

static int parse_u64(const char *s, size_t len, uint64_t *out)
{
    uint64_t v = 0;

    if (len == 0 || len > 19)
        return -1;
    for (size_t i = 0; i < len; i++) {
        if (!isdigit((unsigned char)s[i]))
            return -1;
        v = v * 10 + (uint64_t)(s[i] - '0');
    }
    *out = v;
    return 0;
}

static int prefix(const char **s, size_t *len, const char *word)
{
    size_t n = strlen(word);

    if (*len < n || strncasecmp(*s, word, n) != 0)
        return 0;
    *s += n;
    *len -= n;
    return 1;
}

enum smtp_parse_error smtp_parse_mail(const char *arg, size_t len, struct smtp_path *path,
                                      struct smtp_mail_params *params)
{
    const char *key, *val, *end;
    size_t used, klen, vlen;
    enum smtp_parse_error r;

    memset(params, 0, sizeof *params);
    if (!prefix(&arg, &len, "FROM:"))
        return SMTP_PARSE_SYNTAX;
    r = parse_path(arg, len, path, &used, 1, 0, SMTP_PARSE_BAD_SENDER);
    if (r != SMTP_PARSE_OK)
        return r;
    end = arg + len;
    arg += used;
    if (arg < end && *arg != ' ')
        return SMTP_PARSE_BAD_SENDER;
    while (next_param(&arg, end, &key, &klen, &val, &vlen)) {
        if (keyword(key, klen, "SIZE") && val) {
            if (parse_u64(val, vlen, &params->size) < 0)
                return SMTP_PARSE_BAD_PARAM;
        } else if (keyword(key, klen, "BODY") && val) {
            if (vlen == 4 && strncasecmp(val, "7BIT", 4) == 0)
                params->body = SMTP_BODY_7BIT;
            else if (vlen == 8 && strncasecmp(val, "8BITMIME", 8) == 0)
                params->body = SMTP_BODY_8BITMIME;
            else
                return SMTP_PARSE_BAD_PARAM;
        } else if (keyword(key, klen, "SMTPUTF8") && !val) {
            params->smtputf8 = 1;
        } else if (keyword(key, klen, "AUTH") && val) {
            /* RFC 4954 AUTH=<>: accepted and ignored (clients send it). */
        } else {
            return SMTP_PARSE_BAD_PARAM;
        }
    }
    if (path->utf8 && !params->smtputf8)
        return SMTP_PARSE_BAD_SENDER;
    return SMTP_PARSE_OK;
}

enum smtp_parse_error smtp_parse_rcpt(const char *arg, size_t len, struct smtp_path *path)
{
    const char *end;
    size_t used;
    enum smtp_parse_error r;

    if (!prefix(&arg, &len, "TO:"))
        return SMTP_PARSE_SYNTAX;
    r = parse_path(arg, len, path, &used, 0, 1, SMTP_PARSE_BAD_RECIPIENT);
    if (r != SMTP_PARSE_OK)
        return r;
    end = arg + len;
    arg += used;
    while (arg < end && *arg == ' ')
        arg++;
    return arg == end ? SMTP_PARSE_OK : SMTP_PARSE_BAD_PARAM;
}

enum smtp_parse_error smtp_parse_bdat(const char *arg, size_t len, uint64_t *size, int *last)
{
    size_t n = 0;

    while (n < len && arg[n] != ' ')
        n++;
    if (parse_u64(arg, n, size) < 0)
        return SMTP_PARSE_SYNTAX;
    *last = 0;
    while (n < len && arg[n] == ' ')
        n++;
    if (n == len)
        return SMTP_PARSE_OK;
    if (len - n == 4 && strncasecmp(arg + n, "LAST", 4) == 0) {
        *last = 1;
        return SMTP_PARSE_OK;
    }
    return SMTP_PARSE_SYNTAX;
}

enum smtp_parse_error smtp_parse_helo(const char *arg, size_t len)
{
    if (len == 0 || len > SMTP_DOMAIN_MAX)
        return SMTP_PARSE_SYNTAX;
    for (size_t i = 0; i < len; i++) {
        unsigned char ch = (unsigned char)arg[i];
        /* Many clients send bare host names or odd literals: accept any
         * printable ASCII word, refuse spaces, 8-bit and controls. */
        if (ch <= 0x20 || ch >= 0x7f)
            return SMTP_PARSE_SYNTAX;
    }
    return SMTP_PARSE_OK;
}

/* DATA framing.  States relative to the start of a line. */
enum {
    D_LINE_START,   /* after CRLF (or at the start of the content) */
    D_DOT,          /* '.' at the start of a line */
    D_DOT_CR,       /* ".\r" at the start of a line */
    D_IN_LINE,
    D_CR,           /* '\r' inside a line, LF may follow */
};

void smtp_data_init(struct smtp_data *d)
{
    memset(d, 0, sizeof *d);
    d->state = D_LINE_START;
}

size_t smtp_data_feed(struct smtp_data *d, const char *in, size_t len, char *out,
                      size_t *outlen)
{
    size_t i = 0, o = 0;

    while (i < len && !d->done) {
        char ch = in[i];

        switch (d->state) {
        case D_IN_LINE: {
            /* Fast path: copy up to the next CR or LF. */
            size_t run = i;
            while (run < len && in[run] != '\r' && in[run] != '\n') {
                if (in[run] == '\0')
                    d->flags |= SMTP_NUL;
                run++;
            }
            memcpy(out + o, in + i, run - i);
            o += run - i;
            i = run;
            if (i == len)
                break;
            ch = in[i++];
            if (ch == '\r') {
                d->state = D_CR;
            } else {
                d->flags |= SMTP_BARE_LF;
                out[o++] = ch;
            }
            break;
        }
        case D_LINE_START:
            i++;
            if (ch == '.') {
                d->state = D_DOT;
            } else if (ch == '\r') {
                d->state = D_CR;
            } else {
                if (ch == '\n')
                    d->flags |= SMTP_BARE_LF;
                if (ch == '\0')
                    d->flags |= SMTP_NUL;
                out[o++] = ch;
                d->state = D_IN_LINE;
            }
            break;
        case D_DOT:
            i++;
            if (ch == '\r') {
                d->state = D_DOT_CR;
            } else {
                /* The first dot of the line is dropped (unstuffing). */
                if (ch == '\n')
                    d->flags |= SMTP_BARE_LF;
                if (ch == '\0')
                    d->flags |= SMTP_NUL;
                out[o++] = ch;
                d->state = D_IN_LINE;
            }
            break;
        case D_DOT_CR:
            if (ch == '\n') {
                i++;
                d->done = 1;
            } else {
                /* ".\r" then something else: the CR is bare; go on as if
                 * inside a line, without consuming ch. */
                d->flags |= SMTP_BARE_CR;
                out[o++] = '\r';
                d->state = D_IN_LINE;
                if (ch == '\r') {
                    i++;
                    d->state = D_CR;
                }
            }
            break;
        case D_CR:
            i++;
            if (ch == '\n') {
                out[o++] = '\r';
                out[o++] = '\n';
                d->state = D_LINE_START;
            } else if (ch == '\r') {
                d->flags |= SMTP_BARE_CR;
                out[o++] = '\r';
            } else {
                d->flags |= SMTP_BARE_CR;
                if (ch == '\0')
                    d->flags |= SMTP_NUL;
                out[o++] = '\r';
                out[o++] = ch;
                d->state = D_IN_LINE;
            }
            break;
        }
    }
    d->size += o;
    *outlen = o;
    return i;
}

void smtp_content_init(struct smtp_content *c)
{
    memset(c, 0, sizeof *c);
}

void smtp_content_feed(struct smtp_content *c, const char *in, size_t len)
{
    for (size_t i = 0; i < len; i++) {
        char ch = in[i];
        if (c->prev_cr && ch != '\n')
            c->flags |= SMTP_BARE_CR;
        if (ch == '\n' && !c->prev_cr)
            c->flags |= SMTP_BARE_LF;
        if (ch == '\0')
            c->flags |= SMTP_NUL;
        c->prev_cr = ch == '\r';
    }
}

void smtp_content_end(struct smtp_content *c)
{
    if (c->prev_cr)
        c->flags |= SMTP_BARE_CR;
    c->prev_cr = 0;
}
