/*
 * mime_decode.c - undoing encodings: Content-Transfer-Encoding (base64 and
 * quoted-printable, RFC 2045 6), RFC 2047 encoded-words, RFC 2231 extended
 * parameter values, and charsets to UTF-8.  See mime.h.
 *
 * Decoders are lenient (bytes outside the base64 alphabet are skipped, a
 * '=' not followed by two hex digits stays as it is) and never fail on
 * content.  Charsets other than UTF-8, US-ASCII and Latin-1 go through
 * iconv, only for a fixed list of common ones; anything else, and bytes
 * that are not valid in their charset, come out as U+FFFD.
 */
#include <errno.h>
#include <iconv.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "mime_internal.h"

static int hexval(unsigned char c)
{
    if (c >= '0' && c <= '9')
        return c - '0';
    if (c >= 'a' && c <= 'f')
        return c - 'a' + 10;
    if (c >= 'A' && c <= 'F')
        return c - 'A' + 10;
    return -1;
}

static int b64val(unsigned char c)
{
    if (c >= 'A' && c <= 'Z')
        return c - 'A';
    if (c >= 'a' && c <= 'z')
        return c - 'a' + 26;
    if (c >= '0' && c <= '9')
        return c - '0' + 52;
    if (c == '+')
        return 62;
    if (c == '/')
        return 63;
    return -1;
}

/* Output that may only count. */
struct sink {
    struct mime_buf *b;
    size_t n;
};

static void sink_add(struct sink *s, const void *p, size_t n)
{
    s->n += n;
    if (s->b != NULL)
        mime_buf_add(s->b, p, n);
}

static void base64(const char *s, size_t len, struct sink *out)
{
    unsigned acc = 0, bits = 0;
    char chunk[256];
    size_t n = 0;

    for (size_t i = 0; i < len && s[i] != '='; i++) {
        int v = b64val((unsigned char)s[i]);

        if (v < 0)
            continue;
        acc = (acc << 6) | (unsigned)v;
        bits += 6;
        if (bits >= 8) {
            bits -= 8;
            chunk[n++] = (char)((acc >> bits) & 0xff);
            if (n == sizeof chunk) {
                sink_add(out, chunk, n);
                n = 0;
            }
        }
    }
    sink_add(out, chunk, n);
}

/* Quoted-printable; q: the RFC 2047 "Q" form ('_' is a blank, no lines). */
static void qp(const char *s, size_t len, int q, struct sink *out)
{
    if (q) {
        for (size_t i = 0; i < len; i++) {
            int h, l;

            if (s[i] == '=' && i + 2 < len && (h = hexval((unsigned char)s[i + 1])) >= 0 &&
                (l = hexval((unsigned char)s[i + 2])) >= 0) {
                char b = (char)(h << 4 | l);
                sink_add(out, &b, 1);
                i += 2;
            } else {
                sink_add(out, s[i] == '_' ? " " : s + i, 1);
            }
        }
        return;
    }
    for (size_t start = 0; start < len;) {
        const char *lf = memchr(s + start, '\n', len - start);
        size_t eol = lf ? (size_t)(lf - s) : len, end = eol, next = lf ? eol + 1 : len;
        int cr = 0, soft = 0;

        if (lf && end > start && s[end - 1] == '\r') {
            end--;
            cr = 1;
        }
        /* Trailing blanks are not data (RFC 2045 6.7 rule 3). */
        while (end > start && (s[end - 1] == ' ' || s[end - 1] == '\t'))
            end--;
        for (size_t i = start; i < end; i++) {
            int h, l;

            if (s[i] != '=') {
                sink_add(out, s + i, 1);
            } else if (i + 2 < end && (h = hexval((unsigned char)s[i + 1])) >= 0 &&
                       (l = hexval((unsigned char)s[i + 2])) >= 0) {
                char b = (char)(h << 4 | l);
                sink_add(out, &b, 1);
                i += 2;
            } else if (i + 1 == end) {
                soft = 1; /* '=' ends the line: no line break */
            } else {
                sink_add(out, "=", 1);
            }
        }
        if (lf && !soft)
            sink_add(out, cr ? "\r\n" : "\n", cr ? 2 : 1);
        start = next;
    }
}

static int cte_is(const struct mime_info *in, const char *name)
{
    size_t n = strlen(name);

    return in->cte.len == n && strncasecmp(mime_str_ptr(&in->store, in->cte), name, n) == 0;
}

int mime_decode_body(const struct mime_part *part, struct mime_buf *out, size_t *size)
{
    struct mime_info *in = malloc(sizeof *in);
    const char *body = part->msg->buf + part->body_off;
    struct sink s = {out, 0};
    int ret = 0;

    if (in == NULL)
        return -1;
    if (mime_info_load(part, in) < 0)
        ret = -1;
    else if (!in->cte.set || cte_is(in, "7bit") || cte_is(in, "8bit") || cte_is(in, "binary"))
        sink_add(&s, body, part->body_len);
    else if (cte_is(in, "base64"))
        base64(body, part->body_len, &s);
    else if (cte_is(in, "quoted-printable"))
        qp(body, part->body_len, 0, &s);
    else
        ret = -1; /* UNKNOWN-CTE */
    mime_info_free(in);
    free(in);
    if (size != NULL)
        *size = s.n;
    return ret < 0 || (out != NULL && out->failed) ? -1 : 0;
}

/* ---- charsets --------------------------------------------------------- */

static const char *const iconv_ok[] = {
    "iso-8859-2",   "iso-8859-3",   "iso-8859-4",   "iso-8859-5",   "iso-8859-6",   "iso-8859-7",
    "iso-8859-8",   "iso-8859-9",   "iso-8859-10",  "iso-8859-13",  "iso-8859-14",  "iso-8859-15",
    "iso-8859-16",  "windows-1250", "windows-1251", "windows-1252", "windows-1253", "windows-1254",
    "windows-1255", "windows-1256", "windows-1257", "windows-1258", "cp1250",       "cp1251",
    "cp1252",       "koi8-r",       "koi8-u",       "gb2312",       "gbk",          "gb18030",
    "big5",         "shift_jis",    "euc-jp",       "iso-2022-jp",  "euc-kr",       "utf-16",
    "utf-16be",     "utf-16le",
};

/* Copy valid UTF-8; each byte of an invalid sequence becomes U+FFFD. */
static void utf8_clean(const unsigned char *s, size_t len, struct mime_buf *out)
{
    size_t i = 0, start = 0;

    while (i < len) {
        unsigned char c = s[i];
        size_t n = c < 0x80             ? 1
                   : (c & 0xe0) == 0xc0 ? 2
                   : (c & 0xf0) == 0xe0 ? 3
                   : (c & 0xf8) == 0xf0 ? 4
                                        : 0;
        int ok = n > 0 && i + n <= len && c != 0;

        for (size_t k = 1; ok && k < n; k++)
            ok = (s[i + k] & 0xc0) == 0x80;
        if (ok && n == 2 && c < 0xc2)
            ok = 0; /* overlong */
        if (ok && n == 3) {
            unsigned cp =
                (unsigned)(c & 0x0f) << 12 | (unsigned)(s[i + 1] & 0x3f) << 6 | (s[i + 2] & 0x3f);
            ok = cp >= 0x800 && (cp < 0xd800 || cp > 0xdfff);
        }
        if (ok && n == 4) {
            unsigned cp = (unsigned)(c & 0x07) << 18 | (unsigned)(s[i + 1] & 0x3f) << 12 |
                          (unsigned)(s[i + 2] & 0x3f) << 6 | (s[i + 3] & 0x3f);
            ok = cp >= 0x10000 && cp <= 0x10ffff;
        }
        if (ok) {
            i += n;
            continue;
        }
        mime_buf_add(out, s + start, i - start);
        mime_buf_add(out, MIME_NUL_REPL, MIME_NUL_REPL_LEN);
        start = ++i;
    }
    mime_buf_add(out, s + start, len - start);
}

static void latin1(const unsigned char *s, size_t len, struct mime_buf *out)
{
    for (size_t i = 0; i < len; i++) {
        if (s[i] == 0) {
            mime_buf_add(out, MIME_NUL_REPL, MIME_NUL_REPL_LEN);
        } else if (s[i] < 0x80) {
            mime_buf_addc(out, (char)s[i]);
        } else {
            char two[2] = {(char)(0xc0 | s[i] >> 6), (char)(0x80 | (s[i] & 0x3f))};
            mime_buf_add(out, two, 2);
        }
    }
}

static int with_iconv(const char *cs, const char *src, size_t len, struct mime_buf *out)
{
    iconv_t cd = iconv_open("UTF-8", cs);
    char *in = (char *)src, obuf[512];
    size_t inleft = len;
    struct mime_buf tmp;

    if (cd == (iconv_t)-1)
        return -1;
    mime_buf_init(&tmp, MIME_STORE_MAX);
    while (inleft > 0) {
        char *o = obuf;
        size_t oleft = sizeof obuf;
        size_t r = iconv(cd, &in, &inleft, &o, &oleft);

        mime_buf_add(&tmp, obuf, sizeof obuf - oleft);
        if (r == (size_t)-1) {
            if (errno == E2BIG)
                continue;
            mime_buf_add(&tmp, MIME_NUL_REPL, MIME_NUL_REPL_LEN);
            if (errno == EINVAL)
                break; /* incomplete at the end */
            in++;
            inleft--;
            iconv(cd, NULL, NULL, NULL, NULL);
        }
    }
    {
        char *o = obuf;
        size_t oleft = sizeof obuf;

        iconv(cd, NULL, NULL, &o, &oleft);
        mime_buf_add(&tmp, obuf, sizeof obuf - oleft);
    }
    iconv_close(cd);
    /* iconv's output is UTF-8, but clean it anyway (NULs). */
    utf8_clean((const unsigned char *)(tmp.p ? tmp.p : ""), tmp.len, out);
    mime_buf_free(&tmp);
    return 0;
}

int mime_charset_to_utf8(const char *charset, size_t cslen, const char *src, size_t len,
                         struct mime_buf *out)
{
    char cs[48];
    size_t n = 0;

    /* RFC 2231 5: "charset*language". */
    for (size_t i = 0; i < cslen && charset[i] != '*' && n + 1 < sizeof cs; i++) {
        char c = charset[i];
        cs[n++] = (char)(c >= 'A' && c <= 'Z' ? c - 'A' + 'a' : c);
    }
    cs[n] = '\0';
    if (n == 0 || !strcmp(cs, "us-ascii") || !strcmp(cs, "utf-8") || !strcmp(cs, "utf8") ||
        !strcmp(cs, "ascii")) {
        utf8_clean((const unsigned char *)src, len, out);
    } else if (!strcmp(cs, "iso-8859-1") || !strcmp(cs, "latin1") || !strcmp(cs, "iso8859-1")) {
        latin1((const unsigned char *)src, len, out);
    } else {
        int done = 0;

        for (size_t i = 0; i < sizeof iconv_ok / sizeof iconv_ok[0] && !done; i++)
            if (!strcmp(cs, iconv_ok[i]))
                done = with_iconv(cs, src, len, out) == 0;
        if (!done)
            utf8_clean((const unsigned char *)src, len, out);
    }
    return out->failed ? -1 : 0;
}

/* ---- RFC 2047 and RFC 2231 -------------------------------------------- */

/* An encoded-word at s: its length, or 0; decoded to out unless NULL. */
static size_t encoded_word(const char *s, size_t len, struct mime_buf *out)
{
    size_t cs_end, enc, text, end;
    struct mime_buf raw;
    struct sink sk;

    if (len < 8 || s[0] != '=' || s[1] != '?')
        return 0;
    for (cs_end = 2; cs_end < len && s[cs_end] != '?'; cs_end++)
        if (s[cs_end] == ' ' || s[cs_end] == '\t' || s[cs_end] == '\r' || s[cs_end] == '\n')
            return 0;
    if (cs_end == 2 || cs_end + 3 >= len || s[cs_end + 2] != '?')
        return 0;
    enc = cs_end + 1;
    if (s[enc] != 'B' && s[enc] != 'b' && s[enc] != 'Q' && s[enc] != 'q')
        return 0;
    text = enc + 2;
    for (end = text; end + 1 < len && !(s[end] == '?' && s[end + 1] == '='); end++)
        if (s[end] == ' ' || s[end] == '\t' || s[end] == '\r' || s[end] == '\n')
            return 0;
    if (end + 1 >= len)
        return 0;
    if (out == NULL)
        return end + 2;
    mime_buf_init(&raw, MIME_STORE_MAX);
    sk.b = &raw;
    sk.n = 0;
    if (s[enc] == 'B' || s[enc] == 'b')
        base64(s + text, end - text, &sk);
    else
        qp(s + text, end - text, 1, &sk);
    mime_charset_to_utf8(s + 2, cs_end - 2, raw.p ? raw.p : "", raw.len, out);
    mime_buf_free(&raw);
    return end + 2;
}

int mime_decode_words(const char *s, size_t len, struct mime_buf *out)
{
    size_t i = 0, plain = 0;
    int after_word = 0;

    while (i < len) {
        size_t n = s[i] == '=' ? encoded_word(s + i, len - i, NULL) : 0;

        if (n == 0) {
            i++;
            continue;
        }
        /* Blanks between two encoded-words are not text (RFC 2047 6.2). */
        {
            int blank = 1;

            for (size_t k = plain; k < i && blank; k++)
                blank = s[k] == ' ' || s[k] == '\t' || s[k] == '\r' || s[k] == '\n';
            if (!(after_word && blank))
                utf8_clean((const unsigned char *)s + plain, i - plain, out);
        }
        encoded_word(s + i, len - i, out);
        i += n;
        plain = i;
        after_word = 1;
    }
    utf8_clean((const unsigned char *)s + plain, len - plain, out);
    return out->failed ? -1 : 0;
}

int mime_param_decode(const char *value, size_t len, int extended, struct mime_buf *out)
{
    const char *q1, *q2;
    struct mime_buf raw;
    size_t start;
    int ret;

    if (!extended)
        return mime_decode_words(value, len, out);
    /* charset'language'%XX... */
    q1 = memchr(value, '\'', len);
    q2 = q1 ? memchr(q1 + 1, '\'', len - (size_t)(q1 + 1 - value)) : NULL;
    start = q2 ? (size_t)(q2 + 1 - value) : 0;
    mime_buf_init(&raw, MIME_STORE_MAX);
    for (size_t i = start; i < len; i++) {
        int h, l;

        if (value[i] == '%' && i + 2 < len && (h = hexval((unsigned char)value[i + 1])) >= 0 &&
            (l = hexval((unsigned char)value[i + 2])) >= 0) {
            char b = (char)(h << 4 | l);
            mime_buf_add(&raw, &b, 1);
            i += 2;
        } else {
            mime_buf_addc(&raw, value[i]);
        }
    }
    ret = mime_charset_to_utf8(q2 ? value : "", q2 ? (size_t)(q1 - value) : 0, raw.p ? raw.p : "",
                               raw.len, out);
    if (raw.failed)
        ret = -1;
    mime_buf_free(&raw);
    return ret;
}
