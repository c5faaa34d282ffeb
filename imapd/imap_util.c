/*
 * imap_util.c - the small IMAP value types: flag lists (STORE, APPEND),
 * date and date-time (SEARCH, APPEND), mailbox names (modified UTF-7, RFC
 * 3501 5.1.3, or UTF-8 under UTF8=ACCEPT), UTF-8 well-formedness, and
 * imap_quote() for strings in responses.  See imap_parse.h.
 *
 * Dates are converted with our own civil-to-days arithmetic, so no
 * timezone or locale of the process takes part.
 */
#include <stdint.h>
#include <stdio.h>
#include <string.h>
#include <strings.h>
#include <time.h>

#include "imap_parse.h"

/* ---- UTF-8 ------------------------------------------------------------- */

int imap_utf8_valid(const char *s, size_t len)
{
    const unsigned char *u = (const unsigned char *)s;

    for (size_t i = 0; i < len;) {
        unsigned char c = u[i];
        size_t need;
        unsigned char lo = 0x80, hi = 0xbf;

        if (c < 0x80) {
            i++;
            continue;
        }
        if (c < 0xc2)
            return -1; /* a continuation byte, or an overlong 2-byte form */
        if (c < 0xe0) {
            need = 1;
        } else if (c < 0xf0) {
            need = 2;
            if (c == 0xe0)
                lo = 0xa0; /* overlong */
            else if (c == 0xed)
                hi = 0x9f; /* surrogates */
        } else if (c < 0xf5) {
            need = 3;
            if (c == 0xf0)
                lo = 0x90; /* overlong */
            else if (c == 0xf4)
                hi = 0x8f; /* above U+10FFFF */
        } else {
            return -1;
        }
        if (len - i - 1 < need || u[i + 1] < lo || u[i + 1] > hi)
            return -1;
        for (size_t k = 2; k <= need; k++)
            if (u[i + k] < 0x80 || u[i + k] > 0xbf)
                return -1;
        i += need + 1;
    }
    return 0;
}

/* ---- flags ------------------------------------------------------------- */

static const struct {
    const char *name;
    unsigned flag;
} util_system_flags[] = {
    {"\\Seen", IMAP_FLAG_SEEN},       {"\\Answered", IMAP_FLAG_ANSWERED},
    {"\\Flagged", IMAP_FLAG_FLAGGED}, {"\\Deleted", IMAP_FLAG_DELETED},
    {"\\Draft", IMAP_FLAG_DRAFT},
};

/* ATOM-CHAR: a keyword is an atom (RFC 3501 flag-keyword). */
static int util_atom_char(unsigned char ch)
{
    return ch > 0x20 && ch < 0x7f && strchr("(){%*\"\\]", ch) == NULL;
}

static int util_flag(const char *s, size_t len, struct imap_flags *out)
{
    if (len > 0 && s[0] == '\\') {
        for (size_t i = 0; i < sizeof util_system_flags / sizeof util_system_flags[0]; i++) {
            if (strlen(util_system_flags[i].name) == len &&
                strncasecmp(util_system_flags[i].name, s, len) == 0) {
                out->system |= util_system_flags[i].flag;
                return 0;
            }
        }
        return -1; /* \Recent, or an extension flag we do not keep */
    }
    if (len == 0 || len > IMAP_KEYWORD_LEN)
        return -1;
    for (size_t i = 0; i < len; i++)
        if (!util_atom_char((unsigned char)s[i]))
            return -1;
    for (size_t k = 0; k < out->nkeywords; k++)
        if (strlen(out->keywords[k]) == len && strncasecmp(out->keywords[k], s, len) == 0)
            return 0;
    if (out->nkeywords == IMAP_KEYWORDS_MAX)
        return -1;
    memcpy(out->keywords[out->nkeywords], s, len);
    out->keywords[out->nkeywords][len] = '\0';
    out->nkeywords++;
    return 0;
}

static int util_flag_arg(const struct imap_arg *a, struct imap_flags *out)
{
    if (a->type != IMAP_ARG_ATOM && a->type != IMAP_ARG_NIL)
        return -1;
    return util_flag(a->s, a->len, out);
}

int imap_flags_parse(const struct imap_arg *arg, struct imap_flags *out)
{
    memset(out, 0, sizeof *out);
    if (arg->type != IMAP_ARG_LIST)
        return util_flag_arg(arg, out);
    for (size_t i = 0; i < arg->nlist; i++)
        if (util_flag_arg(&arg->list[i], out) < 0)
            return -1;
    return 0;
}

int imap_store_flags_parse(const struct imap_arg *args, size_t n, struct imap_flags *out)
{
    if (n == 1)
        return imap_flags_parse(&args[0], out);
    memset(out, 0, sizeof *out);
    for (size_t i = 0; i < n; i++)
        if (util_flag_arg(&args[i], out) < 0)
            return -1;
    return n > 0 ? 0 : -1;
}

/* ---- dates ------------------------------------------------------------- */

static const char util_months[12][4] = {"Jan", "Feb", "Mar", "Apr", "May", "Jun",
                                        "Jul", "Aug", "Sep", "Oct", "Nov", "Dec"};

static int util_leap(int y)
{
    return (y % 4 == 0 && y % 100 != 0) || y % 400 == 0;
}

static int util_mdays(int y, int m)
{
    static const int days[12] = {31, 28, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31};

    return m == 2 && util_leap(y) ? 29 : days[m - 1];
}

/* Days since 1970-01-01 of a proleptic Gregorian date (H. Hinnant). */
static int64_t util_days(int64_t y, int m, int d)
{
    int64_t era, yoe, doy, doe;

    y -= m <= 2;
    era = (y >= 0 ? y : y - 399) / 400;
    yoe = y - era * 400;
    doy = (153 * (m > 2 ? m - 3 : m + 9) + 2) / 5 + d - 1;
    doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    return era * 146097 + doe - 719468;
}

/* Exactly n digits at s[*i]. */
static int util_digits(const char *s, size_t len, size_t *i, size_t n, int *out)
{
    int v = 0;

    if (len - *i < n)
        return -1;
    for (size_t k = 0; k < n; k++) {
        char c = s[*i + k];
        if (c < '0' || c > '9')
            return -1;
        v = v * 10 + (c - '0');
    }
    *i += n;
    *out = v;
    return 0;
}

static int util_char(const char *s, size_t len, size_t *i, char c)
{
    if (*i >= len || s[*i] != c)
        return -1;
    (*i)++;
    return 0;
}

/* "d-Mon-yyyy" (day of one or two digits) at s[*i]. */
static int util_date_text(const char *s, size_t len, size_t *i, int *y, int *m, int *d)
{
    size_t nd = 0;

    while (*i + nd < len && nd < 3 && s[*i + nd] >= '0' && s[*i + nd] <= '9')
        nd++;
    if (nd < 1 || nd > 2 || util_digits(s, len, i, nd, d) < 0 || util_char(s, len, i, '-') < 0)
        return -1;
    if (len - *i < 3)
        return -1;
    *m = 0;
    for (int k = 0; k < 12; k++)
        if (strncasecmp(s + *i, util_months[k], 3) == 0)
            *m = k + 1;
    if (*m == 0)
        return -1;
    *i += 3;
    if (util_char(s, len, i, '-') < 0 || util_digits(s, len, i, 4, y) < 0)
        return -1;
    return *d >= 1 && *d <= util_mdays(*y, *m) ? 0 : -1;
}

int imap_date_parse(const char *s, size_t len, time_t *out)
{
    size_t i = 0;
    int y, m, d;

    if (util_date_text(s, len, &i, &y, &m, &d) < 0 || i != len)
        return -1;
    *out = (time_t)(util_days(y, m, d) * 86400);
    return 0;
}

int imap_datetime_parse(const char *s, size_t len, time_t *out)
{
    size_t i = 0;
    int y, m, d, hh, mm, ss, zh, zm, sign;

    if (len > 0 && s[0] == ' ')
        i++; /* date-day-fixed: SP DIGIT */
    if (util_date_text(s, len, &i, &y, &m, &d) < 0 || (s[0] == ' ' && d > 9))
        return -1;
    if (util_char(s, len, &i, ' ') < 0 || util_digits(s, len, &i, 2, &hh) < 0 ||
        util_char(s, len, &i, ':') < 0 || util_digits(s, len, &i, 2, &mm) < 0 ||
        util_char(s, len, &i, ':') < 0 || util_digits(s, len, &i, 2, &ss) < 0 ||
        util_char(s, len, &i, ' ') < 0 || i >= len)
        return -1;
    if (s[i] != '+' && s[i] != '-')
        return -1;
    sign = s[i++] == '-' ? -1 : 1;
    if (util_digits(s, len, &i, 2, &zh) < 0 || util_digits(s, len, &i, 2, &zm) < 0 || i != len)
        return -1;
    if (hh > 23 || mm > 59 || ss > 60 || zh > 23 || zm > 59)
        return -1;
    *out = (time_t)(util_days(y, m, d) * 86400 + hh * 3600 + mm * 60 + ss -
                    sign * (zh * 3600 + zm * 60));
    return 0;
}

/* ---- mailbox names ----------------------------------------------------- */

static int util_b64(unsigned char c)
{
    if (c >= 'A' && c <= 'Z')
        return c - 'A';
    if (c >= 'a' && c <= 'z')
        return c - 'a' + 26;
    if (c >= '0' && c <= '9')
        return c - '0' + 52;
    if (c == '+')
        return 62;
    if (c == ',')
        return 63;
    return -1;
}

/* One shift "&...-" starting at s[at] (not "&-"); returns the index after
 * its '-', or 0 when it is not valid modified BASE64 of UTF-16. */
static size_t util_mutf7_shift(const char *s, size_t len, size_t at)
{
    uint32_t bits = 0;
    unsigned nbits = 0;
    int high = 0; /* a high surrogate waits for its low half */
    size_t j;

    for (j = at + 1; j < len && s[j] != '-'; j++) {
        int v = util_b64((unsigned char)s[j]);

        if (v < 0)
            return 0;
        bits = (bits << 6) | (uint32_t)v;
        nbits += 6;
        if (nbits >= 16) {
            uint32_t u = (bits >> (nbits - 16)) & 0xffff;

            nbits -= 16;
            bits &= (1u << nbits) - 1;
            if (high) {
                if (u < 0xdc00 || u > 0xdfff)
                    return 0;
                high = 0;
            } else if (u >= 0xd800 && u <= 0xdbff) {
                high = 1;
            } else if ((u >= 0xdc00 && u <= 0xdfff) || u < 0x80) {
                return 0; /* lone low surrogate; US-ASCII must be itself */
            }
        }
    }
    if (j == len || high || nbits >= 6 || bits != 0)
        return 0; /* unterminated, half a pair, a stray sextet, padding not zero */
    return j + 1;
}

int imap_mailbox_name_valid(const char *s, size_t len, int utf8)
{
    size_t after_shift = (size_t)-1;

    if (len == 0 || len > IMAP_MAILBOX_NAME_MAX)
        return -1;
    for (size_t i = 0; i < len; i++) {
        unsigned char ch = (unsigned char)s[i];
        if (ch < 0x20 || ch == 0x7f || ch == '%' || ch == '*')
            return -1;
        if (ch >= 0x80 && !utf8)
            return -1;
    }
    if (utf8)
        return imap_utf8_valid(s, len);
    for (size_t i = 0; i < len;) {
        size_t next;

        if (s[i] != '&') {
            i++;
            continue;
        }
        if (i + 1 < len && s[i + 1] == '-') {
            i += 2; /* "&-" is '&' */
            continue;
        }
        if (i == after_shift)
            return -1; /* "-&": a null shift */
        if ((next = util_mutf7_shift(s, len, i)) == 0)
            return -1;
        i = after_shift = next;
    }
    return 0;
}

/* ---- quoting ----------------------------------------------------------- */

static void util_put(char *out, size_t cap, size_t *o, const char *src, size_t n)
{
    if (*o < cap)
        memcpy(out + *o, src, cap - *o < n ? cap - *o : n);
    *o += n;
}

size_t imap_quote(char *out, size_t cap, const char *s, size_t len)
{
    int literal = len > IMAP_QUOTE_MAX;
    size_t o = 0;

    for (size_t i = 0; i < len && !literal; i++) {
        unsigned char ch = (unsigned char)s[i];
        if (ch == 0 || ch == '\r' || ch == '\n' || ch >= 0x80)
            literal = 1;
    }
    if (literal) {
        char hdr[32];
        int n = snprintf(hdr, sizeof hdr, "{%zu}\r\n", len);

        util_put(out, cap, &o, hdr, (size_t)n);
        util_put(out, cap, &o, s, len);
    } else {
        util_put(out, cap, &o, "\"", 1);
        for (size_t i = 0; i < len; i++) {
            if (s[i] == '"' || s[i] == '\\')
                util_put(out, cap, &o, "\\", 1);
            util_put(out, cap, &o, s + i, 1);
        }
        util_put(out, cap, &o, "\"", 1);
    }
    if (o < cap)
        out[o] = '\0';
    return o;
}
