/*
 * imap_basesubject.c - the "base subject" of RFC 5256 2.1, which SORT
 * SUBJECT and both THREAD algorithms compare.  See imap_sort.h.
 *
 * The steps of the RFC, on a working copy [b, e) of the decoded subject:
 *	(1) RFC 2047 words to UTF-8; tabs, CR, LF to spaces; runs of spaces
 *	    to one space;
 *	(2) drop trailing subj-trailer ("(fwd)" or WSP), repeatedly;
 *	(3) drop a leading subj-leader (*subj-blob subj-refwd, or WSP);
 *	(4) drop a leading subj-blob when something is left after it;
 *	(5) repeat (3) and (4) until neither matches;
 *	(6) "[fwd:" ... "]" around everything: drop both, repeat from (2).
 *	subj-refwd = ("re" / ("fw" ["d"])) *WSP [subj-blob] ":"
 *	subj-blob  = "[" *BLOBCHAR "]" *WSP     (BLOBCHAR: any CHAR but [ ])
 * Matching is case-insensitive; the result is folded (i;ascii-casemap).
 */
#include <string.h>
#include <strings.h>

#include "imap_sort.h"

void imap_casemap(char *s, size_t len)
{
    for (size_t i = 0; i < len; i++)
        if (s[i] >= 'a' && s[i] <= 'z')
            s[i] = (char)(s[i] - 'a' + 'A');
}

struct subj {
    const char *s;
    size_t b, e; /* what is left: s[b..e) */
    int reply;
};

/* A subj-blob at pos: its end (after the *WSP), or 0 when there is none. */
static size_t blob_at(const struct subj *x, size_t pos)
{
    size_t i = pos;

    if (i >= x->e || x->s[i] != '[')
        return 0;
    for (i++; i < x->e && x->s[i] != ']'; i++)
        if (x->s[i] == '[')
            return 0;
    if (i >= x->e)
        return 0;
    for (i++; i < x->e && x->s[i] == ' '; i++)
        ;
    return i;
}

/* A subj-refwd at pos: its end, or 0. */
static size_t refwd_at(const struct subj *x, size_t pos)
{
    size_t i = pos, n;

    if (x->e - i >= 2 && strncasecmp(x->s + i, "re", 2) == 0) {
        i += 2;
    } else if (x->e - i >= 2 && strncasecmp(x->s + i, "fw", 2) == 0) {
        i += 2;
        if (i < x->e && (x->s[i] == 'd' || x->s[i] == 'D'))
            i++;
    } else {
        return 0;
    }
    while (i < x->e && x->s[i] == ' ')
        i++;
    if ((n = blob_at(x, i)) != 0)
        i = n;
    return i < x->e && x->s[i] == ':' ? i + 1 : 0;
}

/* (2) */
static void drop_trailers(struct subj *x)
{
    for (;;) {
        if (x->e > x->b && x->s[x->e - 1] == ' ') {
            x->e--;
        } else if (x->e - x->b >= 5 && strncasecmp(x->s + x->e - 5, "(fwd)", 5) == 0) {
            x->e -= 5;
            x->reply = 1;
        } else {
            return;
        }
    }
}

/* (3): 1 when something was dropped. */
static int drop_leader(struct subj *x)
{
    size_t i = x->b, n;

    if (x->b < x->e && x->s[x->b] == ' ') {
        x->b++;
        return 1;
    }
    while ((n = blob_at(x, i)) != 0)
        i = n;
    if ((n = refwd_at(x, i)) == 0)
        return 0;
    x->b = n;
    x->reply = 1;
    return 1;
}

/* (4): 1 when a blob was dropped. */
static int drop_blob(struct subj *x)
{
    size_t n = blob_at(x, x->b);

    if (n == 0 || n >= x->e)
        return 0;
    x->b = n;
    return 1;
}

/* (6): 1 when a "[fwd:" ... "]" wrapper was dropped. */
static int drop_fwd(struct subj *x)
{
    if (x->e - x->b < 6 || strncasecmp(x->s + x->b, "[fwd:", 5) != 0 || x->s[x->e - 1] != ']')
        return 0;
    x->b += 5;
    x->e--;
    x->reply = 1;
    return 1;
}

/* (1): decoded, blanks normalised, into out. */
static int normalise(const char *raw, size_t len, struct mime_buf *out)
{
    struct mime_buf dec;
    int blank = 0, rc = 0;

    mime_buf_init(&dec, out->max);
    if (mime_param_decode(raw, len, 0, &dec) < 0 && dec.failed)
        rc = -1;
    for (size_t i = 0; rc == 0 && i < dec.len; i++) {
        char c = dec.p[i];

        if (c == '\t' || c == '\r' || c == '\n')
            c = ' ';
        if (c == ' ' && blank)
            continue;
        blank = c == ' ';
        if (mime_buf_addc(out, c) < 0)
            rc = -1;
    }
    mime_buf_free(&dec);
    return rc;
}

int imap_base_subject(const char *raw, size_t len, struct mime_buf *out, int *reply)
{
    struct mime_buf norm;
    struct subj x;
    int rc = 0;

    mime_buf_init(&norm, out->max);
    if (normalise(raw ? raw : "", raw ? len : 0, &norm) < 0) {
        mime_buf_free(&norm);
        return -1;
    }
    x = (struct subj){norm.p ? norm.p : "", 0, norm.len, 0};
    do {
        drop_trailers(&x);
        for (;;) {
            int changed = drop_leader(&x);

            changed |= drop_blob(&x);
            if (!changed)
                break;
        }
    } while (drop_fwd(&x));
    mime_buf_reset(out);
    if (mime_buf_add(out, x.s + x.b, x.e - x.b) < 0 || mime_buf_cstr(out) < 0)
        rc = -1;
    else if (out->p)
        imap_casemap(out->p, out->len);
    if (reply)
        *reply = x.reply;
    mime_buf_free(&norm);
    return rc;
}
