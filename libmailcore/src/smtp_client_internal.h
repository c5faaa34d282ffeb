/*
 * smtp_client_internal.h - the pieces of the relay client that its files
 * share and its unit test looks at: blocking socket/TLS I/O with poll()
 * timeouts (smtp_client_io.c) and the DATA encoder (smtp_client_data.c).
 */
#ifndef MAILCORE_SMTP_CLIENT_INTERNAL_H
#define MAILCORE_SMTP_CLIENT_INTERNAL_H

#include <stddef.h>
#include <stdint.h>
#include <sys/socket.h>

#include <openssl/ssl.h>

#include "mailcore/smtp_client.h"

/* I/O: one connection, plain or TLS, blocking with deadlines. */

#define SMTP_IO_IN_SIZE 8192 /* > SMTP_CLIENT_LINE_MAX */
#define SMTP_IO_ERR_MAX 256

struct smtp_io {
    int fd;         /* -1 when closed */
    SSL *ssl;       /* NULL until TLS */
    int tls_failed; /* a fatal TLS error: no close_notify then */
    int timed_out;  /* the last failure was a timeout */
    size_t in_off, in_len;
    char in[SMTP_IO_IN_SIZE];
    char err[SMTP_IO_ERR_MAX]; /* the last failure: "timed out", "connection
                                  closed by the relay", strerror, TLS reason */
};

/* What a TLS handshake found, success or not. */
struct smtp_tls_info {
    int verify_failed; /* the handshake failed because of verification */
    long verify_code;  /* SSL_get_verify_result() */
    char verify[256];  /* "ok" or OpenSSL's reason */
    char summary[160]; /* "TLSv1.3 with cipher ... (256/256 bits)" */
    char chain[4096];  /* lines, each ending in "\n" */
    char names[256];   /* the leaf's names "localhost, 127.0.0.1" */
};

uint64_t smtp_io_now(void);                     /* monotonic ms */
uint64_t smtp_io_deadline(unsigned timeout_ms); /* now + timeout */

void smtp_io_init(struct smtp_io *io);
/* Connect a non-blocking socket to sa by deadline.  0, or -1 with io->err. */
int smtp_io_connect(struct smtp_io *io, const struct sockaddr *sa, socklen_t salen,
                    uint64_t deadline);
/* The next line: *line points to len bytes ending in LF, valid until the
 * next call.  -1 with io->err on timeout, EOF or error; -2 (io->err) for a
 * line of more than SMTP_CLIENT_LINE_MAX bytes. */
int smtp_io_read_line(struct smtp_io *io, uint64_t deadline, const char **line, size_t *len);
/* All of buf, or -1 with io->err. */
int smtp_io_write(struct smtp_io *io, const void *buf, size_t len, uint64_t deadline);
/* Drop buffered input (after a STARTTLS reply); returns how much. */
size_t smtp_io_discard(struct smtp_io *io);
/* Client handshake over io with ctx, verifying the peer (always, whatever
 * ctx says) against host: SNI and name check, or the IP address for a
 * literal.  0, or -1 with io->err "TLS certificate verification failed:
 * REASON" or "TLS handshake failed: REASON".  info is filled either way. */
int smtp_io_starttls(struct smtp_io *io, SSL_CTX *ctx, const char *host, uint64_t deadline,
                     struct smtp_tls_info *info);
/* close_notify (one try, no waiting), close; safe twice. */
void smtp_io_close(struct smtp_io *io);

/* DATA: CRLF normalisation and dot-stuffing, state kept across chunks. */

struct smtp_dot {
    int bol;   /* the next byte starts a line */
    int cr;    /* a CR waits to see whether LF follows */
    int stuff; /* double leading dots (0: measure the message as is) */
};

#define SMTP_DOT_EXPAND 4 /* output bytes one input byte can make: CR "." -> CRLF ".." */

void smtp_dot_init(struct smtp_dot *d, int stuff);
/* Encode from in (n bytes) into out while at least SMTP_DOT_EXPAND bytes
 * of outcap are left; returns the input consumed, *outlen the output. */
size_t smtp_dot_encode(struct smtp_dot *d, const char *in, size_t n, char *out, size_t outcap,
                       size_t *outlen);
/* End the message: CRLF if its last line is unterminated, then ".\r\n"
 * when stuffing.  Needs 5 bytes; returns the bytes written. */
size_t smtp_dot_finish(struct smtp_dot *d, char *out);

#endif
