/*
 * conn - a buffered, non-blocking connection on the event loop, plain or
 * TLS, with bounded line reading.
 *
 * Protocol code (SMTP, IMAP, the relay client) sees the same interface over
 * a plain socket, an implicit-TLS socket and one upgraded with STARTTLS.
 *
 * Events: the callback runs only from the event loop (fd readiness, the
 * idle timer, the end-of-turn hook), never from inside a conn_* call, so an
 * owner may call anything on c, conn_free(c) included, from any event.
 *
 * Reading: when input arrives the owner's callback gets CONN_EV_READ and
 * drains what it wants with conn_read_line() / conn_read_bytes() until they
 * return CONN_AGAIN (or pauses): input left in the buffer is not announced
 * again until more arrives.  A line longer than line_max is never buffered
 * whole: it is discarded up to its LF and reported once as CONN_TOOLONG, so
 * a 1 MB line costs no more than the input buffer, max(line_max, 16 KiB).
 * conn_pause() stops reading from the socket (and stops delivering
 * CONN_EV_READ) while the owner waits, e.g. for a group commit; pipelined
 * input stays in the socket until conn_resume().
 *
 * Writing: conn_write()/conn_printf() append to the output buffer, which is
 * sent without being asked, at the latest at the end of the loop turn, so
 * that pipelined replies leave in one packet.  The buffer holds at most
 * CONN_OUT_MAX bytes: a write beyond that fails (ENOBUFS) instead of
 * growing.  conn_out_pending() lets a producer of large output (IMAP FETCH)
 * pace itself; CONN_EV_DRAINED says the buffer became empty.  The process
 * must ignore SIGPIPE: OpenSSL writes to the socket with write(2).
 *
 * TLS: conn_starttls_server() first sends what is in the output buffer in
 * plaintext (the "220 Ready to start TLS"), then discards any plaintext the
 * peer pipelined after the command (it was sent before the handshake and
 * must never be read as if it came over TLS), then handshakes.  Implicit
 * TLS is the same call right after conn_new().  CONN_EV_TLS_DONE or
 * CONN_EV_ERROR follow.
 *
 * Compression: conn_compress() puts raw DEFLATE (RFC 1951, as IMAP
 * COMPRESS=DEFLATE uses it) between the owner's bytes and the socket or TLS,
 * for either direction or both.  Reading and writing look the same to the
 * owner, with the same bounds: input is inflated only into the room the
 * input buffer has, so a small input that inflates to gigabytes is a line
 * too long, not a memory problem.
 *
 * Memory: buffers are allocated when needed and released when empty, and
 * OpenSSL's are released with SSL_MODE_RELEASE_BUFFERS, so an idle
 * connection costs little.
 */
#ifndef MAILCORE_CONN_H
#define MAILCORE_CONN_H

#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <openssl/ssl.h>

#define CONN_OUT_MAX ((size_t)16 << 20) /* output buffer cap: conn_write fails beyond */

struct ev_loop;
struct conn;

enum conn_event {
    CONN_EV_READ,      /* input is buffered: drain it */
    CONN_EV_DRAINED,   /* output buffer became empty (after any flush that
                          emptied it: ignore it unless pacing output) */
    CONN_EV_TLS_DONE,  /* handshake finished */
    CONN_EV_EOF,       /* peer closed; follows the last CONN_EV_READ, once */
    CONN_EV_ERROR,     /* I/O or TLS error; conn_error() says which */
    CONN_EV_TIMEOUT,   /* no input for the idle timeout (repeats if ignored) */
    CONN_EV_CLOSED,    /* conn_shutdown() finished: free the conn now */
};

enum conn_result {
    CONN_OK = 0,       /* a line or bytes were returned */
    CONN_AGAIN = 1,    /* nothing (more) buffered; wait for CONN_EV_READ */
    CONN_TOOLONG = 2,  /* a line over line_max was discarded */
    CONN_END = 3,      /* EOF or error: nothing more will come (an incomplete
                          last line stays for conn_read_bytes()) */
};

typedef void conn_cb(struct conn *c, enum conn_event event, void *arg);

/*
 * Take over fd (made non-blocking, closed by conn_free).  line_max is the
 * longest line accepted, terminator included (SMTP: 1000).  NULL with errno
 * on failure, and then the fd is still the caller's.
 */
struct conn *conn_new(struct ev_loop *ev, int fd, size_t line_max, conn_cb *cb, void *arg);
/* Close and free at once; safe inside the callback, for any event.  No
 * further callback comes.  Unsent output is dropped: conn_shutdown() first
 * to deliver it. */
void conn_free(struct conn *c);
int conn_fd(const struct conn *c);
void conn_set_line_max(struct conn *c, size_t line_max);

/* CONN_EV_TIMEOUT after ms without input (0: none).  Re-armed by input, by
 * output progress while a slow reader blocks our writes, and by
 * conn_resume(); a paused conn does not time out.  During conn_shutdown()
 * the timeout ends the wait for the peer to take our output. */
void conn_set_idle_timeout(struct conn *c, uint64_t ms);

/*
 * The next line, terminator included: *line points to len bytes ending in
 * "\n" (with or without a preceding "\r"), valid until the next conn_* call
 * on c.  A line may contain NUL bytes.  CONN_TOOLONG is returned as soon as
 * line_max bytes without LF are buffered; the rest of that line, up to its
 * LF, is then dropped silently as it arrives.
 */
enum conn_result conn_read_line(struct conn *c, const char **line, size_t *len);

/* Up to max buffered bytes, regardless of lines (DATA, BDAT, literals). */
enum conn_result conn_read_bytes(struct conn *c, size_t max, const char **data, size_t *len);

/*
 * All buffered bytes, without taking them: *data points to len bytes, valid
 * until the next conn_* call other than conn_consume().  CONN_OK when len >
 * 0.  For parsers that find their own end (DATA's "\r\n.\r\n") and must
 * leave what the client pipelined after it.
 */
enum conn_result conn_peek(struct conn *c, const char **data, size_t *len);
/* Take n of the bytes conn_peek() showed (at most conn_in_pending()). */
void conn_consume(struct conn *c, size_t n);

/* Bytes buffered and not yet read by the owner. */
size_t conn_in_pending(const struct conn *c);

void conn_pause(struct conn *c);
void conn_resume(struct conn *c);   /* re-delivers CONN_EV_READ if input is buffered */

int conn_write(struct conn *c, const void *buf, size_t len);     /* 0 or -1 */
int conn_printf(struct conn *c, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
int conn_vprintf(struct conn *c, const char *fmt, va_list ap);
size_t conn_out_pending(const struct conn *c);
int conn_flush(struct conn *c);     /* try to send now; 0, or -1 on error */

/* Flush, close the write side (TLS close_notify), then CONN_EV_CLOSED from
 * the loop, even after an error; no other event follows and further writes
 * fail.  Input is no longer read. */
void conn_shutdown(struct conn *c);

/*
 * TLS.  Return 0 when the handshake was started, -1 (conn_error()) if not.
 * Both discard the input buffered so far (counted by conn_tls_discarded())
 * and read nothing more in plaintext.  The client sets SNI to hostname
 * (unless it is an IP address) and, when ctx verifies, checks that the
 * certificate matches it; a failure reads "TLS certificate verification
 * failed: REASON" with OpenSSL's reason.
 */
int conn_starttls_server(struct conn *c, SSL_CTX *ctx);
int conn_starttls_client(struct conn *c, SSL_CTX *ctx, const char *hostname);
int conn_is_tls(const struct conn *c);   /* 1 once the handshake finished */
/* Plaintext bytes dropped by the last STARTTLS (for logging). */
size_t conn_tls_discarded(const struct conn *c);
/* "TLSv1.3 with cipher TLS_AES_256_GCM_SHA384 (256/256 bits)" or "". */
const char *conn_tls_summary(struct conn *c, char *buf, size_t len);
SSL *conn_ssl(struct conn *c);

/*
 * Compression.  CONN_COMPRESS_OUT: every byte queued after those in the
 * output buffer now (the reply that announces compression) is compressed,
 * and each flush ends with a sync flush so that the peer can inflate every
 * reply whole.  CONN_COMPRESS_IN: every byte not read by the owner yet --
 * input buffered now included -- is inflated.  0, or -1 (conn_error()) if
 * a direction asked for is compressed already, during a TLS handshake or
 * out of memory.  A corrupt compressed stream from the peer is
 * CONN_EV_ERROR ("compressed input: REASON").  TLS cannot start once
 * compression has.
 */
#define CONN_COMPRESS_IN 1
#define CONN_COMPRESS_OUT 2
int conn_compress(struct conn *c, int directions);
/* The directions compressed (CONN_COMPRESS_* bits), 0 for none. */
int conn_compressed(const struct conn *c);

const char *conn_error(const struct conn *c);

#endif
