/*
 * smtp_client_data.c - the message as it goes after DATA: every line ends
 * in CRLF (bare LF and bare CR become CRLF, RFC 5321 2.3.8), a line that
 * starts with "." gets another (4.5.2), and the end is "\r\n.\r\n".  The
 * state survives chunk boundaries, so a CR at the end of one chunk and its
 * LF at the start of the next are one line end.  With stuffing off the same
 * code measures the message for SIZE= (RFC 1870 counts CRLFs but not the
 * doubled dots nor the final dot).
 */
#include "smtp_client_internal.h"

void smtp_dot_init(struct smtp_dot *d, int stuff)
{
    d->bol = 1;
    d->cr = 0;
    d->stuff = stuff;
}

static size_t line_end(struct smtp_dot *d, char *out)
{
    out[0] = '\r';
    out[1] = '\n';
    d->bol = 1;
    return 2;
}

size_t smtp_dot_encode(struct smtp_dot *d, const char *in, size_t n, char *out, size_t outcap,
                       size_t *outlen)
{
    size_t i, o = 0;

    for (i = 0; i < n && outcap - o >= SMTP_DOT_EXPAND; i++) {
        char ch = in[i];

        if (d->cr) {
            d->cr = 0;
            o += line_end(d, out + o);
            if (ch == '\n')
                continue; /* the CRLF it meant */
        }
        if (ch == '\r') {
            d->cr = 1;
            continue;
        }
        if (ch == '\n') {
            o += line_end(d, out + o);
            continue;
        }
        if (d->bol && ch == '.' && d->stuff)
            out[o++] = '.';
        out[o++] = ch;
        d->bol = 0;
    }
    *outlen = o;
    return i;
}

size_t smtp_dot_finish(struct smtp_dot *d, char *out)
{
    size_t o = 0;

    if (d->cr) {
        d->cr = 0;
        o += line_end(d, out);
    }
    if (!d->bol)
        o += line_end(d, out + o);
    if (d->stuff) {
        out[o++] = '.';
        out[o++] = '\r';
        out[o++] = '\n';
    }
    return o;
}
