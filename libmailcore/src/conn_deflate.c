/*
 * conn_deflate.c - raw DEFLATE streams for conn.c (IMAP COMPRESS=DEFLATE,
 * RFC 4978).  See conn_deflate.h for the interface.
 *
 * Memory.  zlib's default deflater (windowBits 15, memLevel 8) takes about
 * 256 KiB a stream: too much for an IMAP session that may idle for hours.
 * We compress with a 4 KiB window and memLevel 5, about 38 KiB, which loses
 * little on IMAP's text (headers, ENVELOPEs, base64 lines) because most
 * repetition is local.  The inflater cannot choose: the peer may use a
 * 32 KiB window, so windowBits is -15 there (about 39 KiB once data has
 * flowed; zlib allocates the window on first use).  The buffers below are
 * allocated only while they hold bytes.  zlib allocates through us, so the
 * unit tests can check the figures (conn_inflate_mem, conn_deflate_mem).
 */
#include <limits.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <zlib.h>

#include "conn_deflate.h"

#define DEFLATE_LEVEL 6     /* zlib's default trade of CPU for size */
#define DEFLATE_WBITS (-12) /* raw deflate, 4 KiB window */
#define DEFLATE_MEMLEVEL 5  /* 4096-entry hash, 2048-symbol blocks */
#define INFLATE_WBITS (-15) /* raw inflate of any window the peer chose */

/* zlib's allocations, counted: each carries its size in front. */
union zhead {
    size_t size;
    max_align_t align;
};

static voidpf z_alloc(voidpf opaque, uInt items, uInt size)
{
    size_t *mem = opaque;
    size_t n;
    union zhead *h;

    if (size != 0 && items > (SIZE_MAX - sizeof *h) / size)
        return Z_NULL;
    n = (size_t)items * size;
    h = malloc(sizeof *h + n);
    if (h == NULL)
        return Z_NULL;
    h->size = n;
    *mem += sizeof *h + n;
    return h + 1;
}

static void z_free(voidpf opaque, voidpf p)
{
    size_t *mem = opaque;
    union zhead *h;

    if (p == NULL)
        return;
    h = (union zhead *)p - 1;
    *mem -= sizeof *h + h->size;
    free(h);
}

/* A byte buffer with unread bytes at buf[off .. off + len). */
struct zbuf {
    char *buf;
    size_t cap, off, len;
};

static void zbuf_release(struct zbuf *b)
{
    free(b->buf);
    b->buf = NULL;
    b->cap = b->off = b->len = 0;
}

static int zbuf_alloc(struct zbuf *b, size_t cap)
{
    if (b->buf != NULL)
        return 0;
    b->buf = malloc(cap);
    if (b->buf == NULL)
        return -1;
    b->cap = cap;
    b->off = b->len = 0;
    return 0;
}

static void zbuf_take(struct zbuf *b, size_t n)
{
    b->off += n;
    b->len -= n;
    if (b->len == 0)
        zbuf_release(b); /* an idle stream holds no buffer */
}

/* Inflating. */

struct conn_inflate {
    z_stream s;
    size_t zmem;        /* bytes zlib holds */
    struct zbuf in;     /* compressed input not yet inflated */
    unsigned full : 1;  /* the last run filled the caller's room */
    unsigned ended : 1; /* the peer ended the stream (a final block) */
    unsigned failed : 1;
    char err[128];
};

struct conn_inflate *conn_inflate_new(const char *pending, size_t len)
{
    struct conn_inflate *z = calloc(1, sizeof *z);

    if (z == NULL)
        return NULL;
    z->s.zalloc = z_alloc;
    z->s.zfree = z_free;
    z->s.opaque = &z->zmem;
    if (inflateInit2(&z->s, INFLATE_WBITS) != Z_OK) {
        free(z);
        return NULL;
    }
    if (len > 0) {
        if (zbuf_alloc(&z->in, len > CONN_INFLATE_BUF ? len : CONN_INFLATE_BUF) < 0) {
            conn_inflate_free(z);
            return NULL;
        }
        memcpy(z->in.buf, pending, len);
        z->in.len = len;
    }
    return z;
}

void conn_inflate_free(struct conn_inflate *z)
{
    if (z == NULL)
        return;
    inflateEnd(&z->s);
    zbuf_release(&z->in);
    free(z);
}

char *conn_inflate_room(struct conn_inflate *z, size_t *room)
{
    *room = 0;
    if (zbuf_alloc(&z->in, CONN_INFLATE_BUF) < 0)
        return NULL;
    if (z->in.len == 0)
        z->in.off = 0;
    *room = z->in.cap - z->in.off - z->in.len;
    return z->in.buf + z->in.off + z->in.len;
}

void conn_inflate_added(struct conn_inflate *z, size_t n)
{
    z->in.len += n;
    if (z->in.len == 0)
        zbuf_release(&z->in); /* nothing came: an idle stream holds no buffer */
}

static ssize_t inflate_failed(struct conn_inflate *z, const char *why)
{
    z->failed = 1;
    snprintf(z->err, sizeof z->err, "%s", why);
    return -1;
}

ssize_t conn_inflate_run(struct conn_inflate *z, char *out, size_t len)
{
    size_t used, made;
    int r;

    if (z->failed)
        return -1;
    if (len == 0 || z->in.len == 0)
        return 0;
    if (z->ended)
        return inflate_failed(z, "data after the end of the compressed stream");
    if (len > UINT_MAX)
        len = UINT_MAX;
    z->s.next_in = (Bytef *)z->in.buf + z->in.off;
    z->s.avail_in = z->in.len > UINT_MAX ? UINT_MAX : (uInt)z->in.len;
    z->s.next_out = (Bytef *)out;
    z->s.avail_out = (uInt)len;
    /* Z_SYNC_FLUSH: hand out every byte as soon as it can be decoded, so a
     * client that flushes with Z_PARTIAL_FLUSH (RFC 4978 section 4 allows
     * it) is served at once too. */
    r = inflate(&z->s, Z_SYNC_FLUSH);
    used = z->in.len - z->s.avail_in;
    made = len - z->s.avail_out;
    zbuf_take(&z->in, used);
    z->full = z->s.avail_out == 0;
    switch (r) {
    case Z_OK:
    case Z_BUF_ERROR: /* no progress possible: more input is needed */
        break;
    case Z_STREAM_END:
        z->ended = 1;
        break;
    case Z_MEM_ERROR:
        return inflate_failed(z, "out of memory");
    default:
        return inflate_failed(z, z->s.msg != NULL ? z->s.msg : "corrupt compressed stream");
    }
    return (ssize_t)made;
}

int conn_inflate_more(const struct conn_inflate *z)
{
    return !z->failed && (z->in.len > 0 || z->full);
}

const char *conn_inflate_error(const struct conn_inflate *z)
{
    return z->err;
}

size_t conn_inflate_mem(const struct conn_inflate *z)
{
    return sizeof *z + z->zmem + z->in.cap;
}

/* Deflating. */

struct conn_deflate {
    z_stream s;
    size_t zmem;
    struct zbuf out;        /* compressed output not yet sent */
    unsigned unflushed : 1; /* input given since the last complete sync flush */
    char err[128];
};

struct conn_deflate *conn_deflate_new(void)
{
    struct conn_deflate *z = calloc(1, sizeof *z);

    if (z == NULL)
        return NULL;
    z->s.zalloc = z_alloc;
    z->s.zfree = z_free;
    z->s.opaque = &z->zmem;
    if (deflateInit2(&z->s, DEFLATE_LEVEL, Z_DEFLATED, DEFLATE_WBITS, DEFLATE_MEMLEVEL,
                     Z_DEFAULT_STRATEGY) != Z_OK) {
        free(z);
        return NULL;
    }
    return z;
}

void conn_deflate_free(struct conn_deflate *z)
{
    if (z == NULL)
        return;
    deflateEnd(&z->s);
    zbuf_release(&z->out);
    free(z);
}

int conn_deflate_run(struct conn_deflate *z, const char *in, size_t len, size_t *taken)
{
    uInt given = len > UINT_MAX ? UINT_MAX : (uInt)len;
    size_t room;

    *taken = 0;
    if (zbuf_alloc(&z->out, CONN_DEFLATE_BUF) < 0) {
        snprintf(z->err, sizeof z->err, "out of memory");
        return -1;
    }
    z->s.next_in = (Bytef *)in;
    z->s.avail_in = given;
    room = z->out.cap - z->out.off - z->out.len;
    z->s.next_out = (Bytef *)z->out.buf + z->out.off + z->out.len;
    z->s.avail_out = (uInt)room;
    while (z->s.avail_out > 0) {
        int flush = Z_NO_FLUSH, r;

        if (z->s.avail_in == 0) {
            if (!z->unflushed)
                break;
            flush = Z_SYNC_FLUSH;
        } else {
            z->unflushed = 1;
        }
        r = deflate(&z->s, flush);
        if (r != Z_OK && r != Z_BUF_ERROR) {
            snprintf(z->err, sizeof z->err, "deflate: %s", z->s.msg ? z->s.msg : "error");
            return -1;
        }
        /* A sync flush is complete when it left room in the buffer (zlib:
         * with avail_out 0, call again for the rest). */
        if (flush == Z_SYNC_FLUSH && (z->s.avail_out > 0 || r == Z_BUF_ERROR)) {
            z->unflushed = 0;
            break;
        }
        if (flush == Z_NO_FLUSH && z->s.avail_in > 0 && z->s.avail_out > 0 && r == Z_BUF_ERROR)
            break; /* cannot happen with room on both sides; do not spin */
    }
    *taken = given - z->s.avail_in;
    z->out.len += room - z->s.avail_out;
    if (z->out.len == 0)
        zbuf_release(&z->out);
    return 0;
}

const char *conn_deflate_data(const struct conn_deflate *z, size_t *len)
{
    *len = z->out.len;
    return z->out.len > 0 ? z->out.buf + z->out.off : NULL;
}

void conn_deflate_sent(struct conn_deflate *z, size_t n)
{
    zbuf_take(&z->out, n < z->out.len ? n : z->out.len);
}

size_t conn_deflate_pending(const struct conn_deflate *z)
{
    return z->out.len + (z->unflushed ? 1 : 0);
}

const char *conn_deflate_error(const struct conn_deflate *z)
{
    return z->err;
}

size_t conn_deflate_mem(const struct conn_deflate *z)
{
    return sizeof *z + z->zmem + z->out.cap;
}
