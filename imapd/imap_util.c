/*
 * imap_util.c - the small IMAP value types: flag lists (STORE, APPEND),
 * date and date-time (SEARCH, APPEND), mailbox names (modified UTF-7, RFC
 * 3501 5.1.3, or UTF-8 under UTF8=ACCEPT) and their conversion between
 * modified UTF-7 and UTF-8 (IMAP4rev2, RFC 9051 5.1), UTF-8 well-formedness,
 * and imap_quote() for strings in responses.  See imap_parse.h.
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

static const char util_b64_chars[] =
    "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+,";

static int util_b64(unsigned char c)
{
    const char *p = c != '\0' ? strchr(util_b64_chars, c) : NULL;

    return p ? (int)(p - util_b64_chars) : -1;
}

/* n bytes at out[*o], keeping room for the NUL within cap; -1 when full. */
static int util_add(char *out, size_t cap, size_t *o, const void *src, size_t n)
{
    if (n >= cap - *o)
        return -1;
    memcpy(out + *o, src, n);
    *o += n;
    return 0;
}

static int util_add_utf8(char *out, size_t cap, size_t *o, uint32_t cp)
{
    unsigned char b[4];
    size_t n = cp < 0x80 ? 1 : cp < 0x800 ? 2 : cp < 0x10000 ? 3 : 4;
    static const unsigned char lead[5] = {0, 0x00, 0xc0, 0xe0, 0xf0};

    for (size_t k = n - 1; k > 0; k--, cp >>= 6)
        b[k] = (unsigned char)(0x80 | (cp & 0x3f));
    b[0] = (unsigned char)(lead[n] | cp);
    return util_add(out, cap, o, b, n);
}

/* One UTF-16 unit of a shift: a high surrogate waits in *high for its low
 * half.  US-ASCII must be itself, so a unit below 0x80 is invalid. */
static int util_unit(uint32_t u, uint32_t *high, char *out, size_t cap, size_t *o)
{
    if (*high) {
        if (u < 0xdc00 || u > 0xdfff)
            return -1;
        u = 0x10000 + ((*high - 0xd800) << 10) + (u - 0xdc00);
        *high = 0;
        return util_add_utf8(out, cap, o, u);
    }
    if (u >= 0xd800 && u <= 0xdbff) {
        *high = u;
        return 0;
    }
    if ((u >= 0xdc00 && u <= 0xdfff) || u < 0x80)
        return -1;
    return util_add_utf8(out, cap, o, u);
}

/* The shift "&...-" at s[at] (not "&-") as UTF-8 at out[*o]; returns the
 * index after its '-', or 0 when it is not modified BASE64 of whole UTF-16
 * units with zero padding (or the result does not fit). */
static size_t util_shift_decode(const char *s, size_t len, size_t at, char *out, size_t cap,
                                size_t *o)
{
    uint32_t bits = 0, high = 0;
    unsigned nbits = 0;
    size_t j;

    for (j = at + 1; j < len && s[j] != '-'; j++) {
        int v = util_b64((unsigned char)s[j]);

        if (v < 0)
            return 0;
        bits = (bits << 6) | (uint32_t)v;
        nbits += 6;
        if (nbits >= 16) {
            nbits -= 16;
            if (util_unit((bits >> nbits) & 0xffff, &high, out, cap, o) < 0)
                return 0;
            bits &= (1u << nbits) - 1;
        }
    }
    if (j == len || high || nbits >= 6 || bits != 0)
        return 0; /* unterminated, half a pair, a stray sextet, padding not zero */
    return j + 1;
}

int imap_mutf7_to_utf8(const char *s, size_t len, char *out, size_t outsz)
{
    size_t o = 0, after_shift = (size_t)-1;

    if (outsz == 0)
        return -1;
    for (size_t i = 0; i < len;) {
        unsigned char ch = (unsigned char)s[i];
        size_t next;

        if (ch < 0x20 || ch > 0x7e)
            goto fail; /* only printable US-ASCII */
        if (ch != '&' || (i + 1 < len && s[i + 1] == '-')) {
            if (util_add(out, outsz, &o, &ch, 1) < 0)
                goto fail;
            i += ch == '&' ? 2 : 1; /* "&-" is '&' */
            continue;
        }
        if (i == after_shift || (next = util_shift_decode(s, len, i, out, outsz, &o)) == 0)
            goto fail; /* "-&" is a null shift: not the shortest form */
        i = after_shift = next;
    }
    out[o] = '\0';
    return 0;
fail:
    out[0] = '\0';
    return -1;
}

/* The character at u[*i] (well-formed UTF-8, not US-ASCII); *i moves past it. */
static uint32_t util_utf8_next(const unsigned char *u, size_t *i)
{
    size_t n = u[*i] >= 0xf0 ? 3 : u[*i] >= 0xe0 ? 2 : 1;
    uint32_t cp = u[*i] & (0x3fu >> n);

    for (size_t k = 1; k <= n; k++)
        cp = (cp << 6) | (u[*i + k] & 0x3fu);
    *i += n + 1;
    return cp;
}

/* The characters from u[i] up to the next US-ASCII byte as one shift
 * "&...-" (one shift for the whole run: the shortest form); returns the
 * index after them, or 0 when the shift does not fit. */
static size_t util_shift_encode(const unsigned char *u, size_t len, size_t i, char *out, size_t cap,
                                size_t *o)
{
    uint32_t bits = 0;
    unsigned nbits = 0;
    char c;

    if (util_add(out, cap, o, "&", 1) < 0)
        return 0;
    while (i < len && u[i] >= 0x80) {
        uint32_t cp = util_utf8_next(u, &i);
        uint32_t units[2] = {cp, 0};
        size_t nunits = 1;

        if (cp >= 0x10000) { /* a surrogate pair */
            units[0] = 0xd800 + ((cp - 0x10000) >> 10);
            units[1] = 0xdc00 + ((cp - 0x10000) & 0x3ff);
            nunits = 2;
        }
        for (size_t k = 0; k < nunits; k++) {
            bits = (bits << 16) | units[k];
            for (nbits += 16; nbits >= 6;) {
                nbits -= 6;
                c = util_b64_chars[(bits >> nbits) & 0x3f];
                if (util_add(out, cap, o, &c, 1) < 0)
                    return 0;
            }
            bits &= (1u << nbits) - 1;
        }
    }
    if (nbits > 0) { /* the last unit's bits, padded with zero bits */
        c = util_b64_chars[(bits << (6 - nbits)) & 0x3f];
        if (util_add(out, cap, o, &c, 1) < 0)
            return 0;
    }
    return util_add(out, cap, o, "-", 1) < 0 ? 0 : i;
}

int imap_utf8_to_mutf7(const char *s, size_t len, char *out, size_t outsz)
{
    const unsigned char *u = (const unsigned char *)s;
    size_t o = 0, cap = outsz < IMAP_MAILBOX_NAME_MAX + 1 ? outsz : IMAP_MAILBOX_NAME_MAX + 1;

    if (cap == 0)
        return -1;
    if (imap_utf8_valid(s, len) < 0)
        goto fail;
    for (size_t i = 0; i < len;) {
        if (u[i] < 0x20 || u[i] == 0x7f)
            goto fail; /* no control characters: modified UTF-7 would not take them back */
        if (u[i] >= 0x80) {
            if ((i = util_shift_encode(u, len, i, out, cap, &o)) == 0)
                goto fail;
            continue;
        }
        if (util_add(out, cap, &o, u[i] == '&' ? "&-" : s + i, u[i] == '&' ? 2 : 1) < 0)
            goto fail;
        i++;
    }
    out[o] = '\0';
    return 0;
fail:
    out[0] = '\0';
    return -1;
}

int imap_mailbox_name_valid(const char *s, size_t len, int utf8)
{
    char scratch[IMAP_MAILBOX_UTF8_MAX + 1];

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
    return imap_mutf7_to_utf8(s, len, scratch, sizeof scratch);
}

/* ---- quoting ----------------------------------------------------------- */

static void util_put(char *out, size_t cap, size_t *o, const char *src, size_t n)
{
    if (*o < cap)
        memcpy(out + *o, src, cap - *o < n ? cap - *o : n);
    *o += n;
}

size_t imap_quote(char *out, size_t cap, const char *s, size_t len, int utf8)
{
    int literal = len > IMAP_QUOTE_MAX || (utf8 && imap_utf8_valid(s, len) < 0);
    size_t o = 0;

    for (size_t i = 0; i < len && !literal; i++) {
        unsigned char ch = (unsigned char)s[i];
        if (ch == 0 || ch == '\r' || ch == '\n' || (ch >= 0x80 && !utf8))
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
