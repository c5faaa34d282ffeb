/*
 * envelope.c - fields read back out of a cached ENVELOPE.
 *
 * The index keeps each message's ENVELOPE as the text FETCH sends (RFC 3501
 * 7.4.2, written by libmailcore's mime_imap_envelope).  SEARCH reads the
 * subject and the addresses from it instead of opening the message file.
 * The text comes from our own writer, but it is parsed as carefully as
 * anything else: bounded nesting, every length checked.
 */
#include <string.h>

#include "imapd.h"

#define ENV_DEPTH_MAX 4                 /* envelope ( address-list ( address ( */

struct rd {
    const char *p, *end;
};

static void skip_sp(struct rd *r)
{
    while (r->p < r->end && *r->p == ' ')
        r->p++;
}

/* An nstring into out (NIL adds nothing); -1 when it is not one. */
static int nstring(struct rd *r, struct mime_buf *out)
{
    skip_sp(r);
    if (r->end - r->p >= 3 && memcmp(r->p, "NIL", 3) == 0) {
        r->p += 3;
        return 0;
    }
    if (r->p < r->end && *r->p == '"') {
        for (r->p++; r->p < r->end && *r->p != '"'; r->p++) {
            if (*r->p == '\\' && r->p + 1 < r->end)
                r->p++;
            if (out)
                mime_buf_addc(out, *r->p);
        }
        if (r->p == r->end)
            return -1;
        r->p++;
        return 0;
    }
    if (r->p < r->end && *r->p == '{') {
        size_t n = 0;
        for (r->p++; r->p < r->end && *r->p >= '0' && *r->p <= '9'; r->p++) {
            if (n > (size_t)(r->end - r->p))
                return -1;
            n = n * 10 + (size_t)(*r->p - '0');
        }
        if (r->end - r->p < 3 || memcmp(r->p, "}\r\n", 3) != 0)
            return -1;
        r->p += 3;
        if ((size_t)(r->end - r->p) < n)
            return -1;
        if (out)
            mime_buf_add(out, r->p, n);
        r->p += n;
        return 0;
    }
    return -1;
}

/* An nstring or a parenthesised list of items, skipped. */
static int skip_item(struct rd *r, int depth)
{
    skip_sp(r);
    if (r->p < r->end && *r->p == '(') {
        if (depth >= ENV_DEPTH_MAX)
            return -1;
        for (r->p++;;) {
            skip_sp(r);
            if (r->p < r->end && *r->p == ')')
                break;
            if (r->p == r->end || skip_item(r, depth + 1) != 0)
                return -1;
        }
        r->p++;
        return 0;
    }
    return nstring(r, NULL);
}

/* Position r at top-level field i of the envelope. */
static int seek_field(struct rd *r, int i)
{
    skip_sp(r);
    if (r->p == r->end || *r->p != '(')
        return -1;
    r->p++;
    while (i-- > 0)
        if (skip_item(r, 1) != 0)
            return -1;
    skip_sp(r);
    return 0;
}

int envelope_string(const char *env, size_t len, enum envelope_field f, struct mime_buf *out)
{
    struct rd r = {env, env + len};

    if (seek_field(&r, (int)f) != 0)
        return -1;
    return nstring(&r, out);
}

/* One address (name adl mailbox host) as "name <mailbox@host>". */
static int address(struct rd *r, struct mime_buf *out)
{
    struct mime_buf name, mbox, host;
    int rc;

    mime_buf_init(&name, 0);
    mime_buf_init(&mbox, 0);
    mime_buf_init(&host, 0);
    r->p++;                             /* ( */
    rc = nstring(r, &name) == 0 && nstring(r, NULL) == 0 && nstring(r, &mbox) == 0 &&
         nstring(r, &host) == 0 ? 0 : -1;
    skip_sp(r);
    if (rc == 0 && (r->p == r->end || *r->p++ != ')'))
        rc = -1;
    if (rc == 0 && host.len == 0) {
        /* A group's start (mailbox = its name) or end (all NIL). */
        if (mbox.len) {
            if (out->len)
                mime_buf_adds(out, ", ");
            mime_buf_add(out, mbox.p, mbox.len);
            mime_buf_addc(out, ':');
        }
    } else if (rc == 0) {
        if (out->len)
            mime_buf_adds(out, ", ");
        if (name.len) {
            mime_buf_add(out, name.p, name.len);
            mime_buf_addc(out, ' ');
        }
        mime_buf_addc(out, '<');
        mime_buf_add(out, mbox.p, mbox.len);
        mime_buf_addc(out, '@');
        mime_buf_add(out, host.p, host.len);
        mime_buf_addc(out, '>');
    }
    mime_buf_free(&name);
    mime_buf_free(&mbox);
    mime_buf_free(&host);
    return rc;
}

int envelope_addresses(const char *env, size_t len, enum envelope_field f, struct mime_buf *out)
{
    struct rd r = {env, env + len};

    if (seek_field(&r, (int)f) != 0)
        return -1;
    if (r.end - r.p >= 3 && memcmp(r.p, "NIL", 3) == 0)
        return 0;
    if (r.p == r.end || *r.p++ != '(')
        return -1;
    for (;;) {
        skip_sp(&r);
        if (r.p == r.end)
            return -1;
        if (*r.p == ')')
            return 0;
        if (*r.p != '(' || address(&r, out) != 0)
            return -1;
    }
}
