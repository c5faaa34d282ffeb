/*
 * conn_deflate.h - raw DEFLATE (RFC 1951, no zlib header) for conn.c: an
 * inflater that conn.c reads compressed bytes into and takes plain bytes
 * out of, and a deflater that takes plain bytes and yields compressed ones.
 * Nothing but conn.c uses this; see conn.h (conn_compress) for the contract
 * the owner of a conn sees.
 *
 * Both sides work in bounded pieces: the inflater never writes more than
 * the caller's room (so a small input that inflates to gigabytes costs the
 * caller's buffer and no more), and the deflater compresses only what fits
 * into its own output buffer (CONN_DEFLATE_BUF) before that is sent.
 */
#ifndef MAILCORE_CONN_DEFLATE_H
#define MAILCORE_CONN_DEFLATE_H

#include <stddef.h>
#include <sys/types.h>

#define CONN_INFLATE_BUF 16384 /* compressed input read at once */
#define CONN_DEFLATE_BUF 16384 /* compressed output held until sent */

struct conn_inflate;
struct conn_deflate;

/* A new inflater that starts with the len bytes at pending (input already
 * read from the peer after it announced compression).  NULL: out of memory. */
struct conn_inflate *conn_inflate_new(const char *pending, size_t len);
void conn_inflate_free(struct conn_inflate *z);
/* Where the next compressed bytes go: *room bytes at the pointer (NULL when
 * out of memory); then conn_inflate_added() with how many arrived. */
char *conn_inflate_room(struct conn_inflate *z, size_t *room);
void conn_inflate_added(struct conn_inflate *z, size_t n);
/* Inflate into out[0 .. len): bytes produced, 0 when more input is needed,
 * -1 on a corrupt stream (conn_inflate_error() says why; final). */
ssize_t conn_inflate_run(struct conn_inflate *z, char *out, size_t len);
/* 1 if conn_inflate_run() may produce output without new input. */
int conn_inflate_more(const struct conn_inflate *z);
const char *conn_inflate_error(const struct conn_inflate *z);

/* A new deflater; NULL when out of memory. */
struct conn_deflate *conn_deflate_new(void);
void conn_deflate_free(struct conn_deflate *z);
/*
 * Compress from in[0 .. len) as far as the output buffer has room; *taken
 * says how much of in was used.  Once all input given is taken, the stream
 * is sync-flushed (Z_SYNC_FLUSH), so the peer can inflate every byte given
 * so far.  Call only when conn_deflate_data() is empty.  0, or -1 with
 * conn_deflate_error().
 */
int conn_deflate_run(struct conn_deflate *z, const char *in, size_t len, size_t *taken);
/* Compressed bytes waiting to be sent, and how many of them were sent. */
const char *conn_deflate_data(const struct conn_deflate *z, size_t *len);
void conn_deflate_sent(struct conn_deflate *z, size_t n);
/* Bytes still to send, plus 1 while a sync flush is unfinished: 0 means
 * the peer has everything. */
size_t conn_deflate_pending(const struct conn_deflate *z);
const char *conn_deflate_error(const struct conn_deflate *z);

/* Bytes allocated now (zlib's state and window, and the buffer). */
size_t conn_inflate_mem(const struct conn_inflate *z);
size_t conn_deflate_mem(const struct conn_deflate *z);

#endif
