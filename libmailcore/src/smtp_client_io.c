/*
 * smtp_client_io.c - the relay client's connection: a non-blocking socket
 * driven as if it blocked, every wait a poll() against a deadline, plain or
 * TLS.  See smtp_client_internal.h.
 *
 * TLS goes through a socket BIO of our own whose only difference from
 * OpenSSL's is send(MSG_NOSIGNAL): a relay that resets the connection must
 * not kill a delivery worker or mailctl with SIGPIPE, and a library should
 * not make the process ignore signals for that.
 */
#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <limits.h>
#include <poll.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include <openssl/err.h>
#include <openssl/x509v3.h>

#include "mailcore/log.h"
#include "mailcore/tls.h"
#include "smtp_client_internal.h"

uint64_t smtp_io_now(void)
{
    struct timespec ts;

    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000 + (uint64_t)ts.tv_nsec / 1000000;
}

uint64_t smtp_io_deadline(unsigned timeout_ms)
{
    return smtp_io_now() + timeout_ms;
}

void smtp_io_init(struct smtp_io *io)
{
    io->fd = -1;
    io->ssl = NULL;
    io->tls_failed = 0;
    io->timed_out = 0;
    io->in_off = 0;
    io->in_len = 0;
    io->err[0] = '\0';
}

static int io_fail(struct smtp_io *io, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

static int io_fail(struct smtp_io *io, const char *fmt, ...)
{
    va_list ap;

    va_start(ap, fmt);
    vsnprintf(io->err, sizeof io->err, fmt, ap);
    va_end(ap);
    return -1;
}

/* 0 when fd may be ready for events, -1 at the deadline. */
static int io_wait(struct smtp_io *io, short events, uint64_t deadline)
{
    for (;;) {
        struct pollfd p = {.fd = io->fd, .events = events};
        uint64_t now = smtp_io_now();
        uint64_t left = deadline > now ? deadline - now : 0;
        int r;

        if (left == 0) {
            io->timed_out = 1;
            return io_fail(io, "timed out");
        }
        r = poll(&p, 1, left > INT_MAX ? INT_MAX : (int)left);
        if (r > 0)
            return 0; /* also POLLERR/POLLHUP: the next call tells */
        if (r < 0 && errno != EINTR)
            return io_fail(io, "poll: %s", strerror(errno));
    }
}

int smtp_io_connect(struct smtp_io *io, const struct sockaddr *sa, socklen_t salen,
                    uint64_t deadline)
{
    int fd, soerr = 0, one = 1;
    socklen_t len = sizeof soerr;

    io->timed_out = 0;
    fd = socket(sa->sa_family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    if (fd < 0)
        return io_fail(io, "socket: %s", strerror(errno));
    io->fd = fd;
    /* Every write is a whole batch (a pipelined window, a 64 KiB chunk):
     * Nagle could only hold back the last one. */
    (void)setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
    if (connect(fd, sa, salen) == 0)
        return 0;
    if (errno != EINPROGRESS && errno != EINTR) {
        soerr = errno;
    } else if (io_wait(io, POLLOUT, deadline) < 0) {
        smtp_io_close(io);
        return -1;
    } else if (getsockopt(fd, SOL_SOCKET, SO_ERROR, &soerr, &len) < 0) {
        soerr = errno;
    }
    if (soerr != 0) {
        smtp_io_close(io);
        return io_fail(io, "%s", strerror(soerr));
    }
    return 0;
}

/* TLS failures: OpenSSL's reason, or errno's for a system call. */
static int tls_fail(struct smtp_io *io, const char *what, int e, int saved_errno)
{
    char why[200];

    io->tls_failed = 1;
    if (e == SSL_ERROR_SYSCALL && ERR_peek_error() == 0) {
        ERR_clear_error();
        if (saved_errno == 0 || saved_errno == EPIPE)
            return io_fail(io, "%s: connection closed by the relay", what);
        return io_fail(io, "%s: %s", what, strerror(saved_errno));
    }
    return io_fail(io, "%s: %s", what, tls_error_text(why, sizeof why));
}

/* Bytes read (> 0), or -1: EOF is an error here, a reply was due. */
static ssize_t io_read(struct smtp_io *io, char *buf, size_t cap, uint64_t deadline)
{
    if (io->fd < 0)
        return io_fail(io, "not connected");
    for (;;) {
        if (io->ssl != NULL) {
            size_t n = 0;
            int r, e, saved;

            ERR_clear_error();
            errno = 0;
            r = SSL_read_ex(io->ssl, buf, cap, &n);
            if (r == 1)
                return (ssize_t)n;
            saved = errno;
            e = SSL_get_error(io->ssl, r);
            if (e == SSL_ERROR_WANT_READ || e == SSL_ERROR_WANT_WRITE) {
                if (io_wait(io, e == SSL_ERROR_WANT_READ ? POLLIN : POLLOUT, deadline) < 0)
                    return -1;
                continue;
            }
            if (e == SSL_ERROR_ZERO_RETURN)
                return io_fail(io, "connection closed by the relay");
            return tls_fail(io, "TLS read", e, saved);
        } else {
            ssize_t n = recv(io->fd, buf, cap, 0);

            if (n > 0)
                return n;
            if (n == 0)
                return io_fail(io, "connection closed by the relay");
            if (errno == EINTR)
                continue;
            if (errno != EAGAIN && errno != EWOULDBLOCK)
                return io_fail(io, "%s", strerror(errno));
            if (io_wait(io, POLLIN, deadline) < 0)
                return -1;
        }
    }
}

int smtp_io_read_line(struct smtp_io *io, uint64_t deadline, const char **line, size_t *len)
{
    io->timed_out = 0;
    for (;;) {
        const char *start = io->in + io->in_off;
        const char *lf = memchr(start, '\n', io->in_len);
        ssize_t n;

        if (lf != NULL) {
            size_t l = (size_t)(lf - start) + 1;

            if (l > SMTP_CLIENT_LINE_MAX)
                break;
            *line = start;
            *len = l;
            io->in_off += l;
            io->in_len -= l;
            return 0;
        }
        if (io->in_len >= SMTP_CLIENT_LINE_MAX)
            break;
        if (io->in_off > 0) {
            memmove(io->in, start, io->in_len);
            io->in_off = 0;
        }
        n = io_read(io, io->in + io->in_len, sizeof io->in - io->in_len, deadline);
        if (n < 0)
            return -1;
        io->in_len += (size_t)n;
    }
    io_fail(io, "a reply line longer than %d bytes", SMTP_CLIENT_LINE_MAX);
    return -2;
}

int smtp_io_write(struct smtp_io *io, const void *buf, size_t len, uint64_t deadline)
{
    const char *p = buf;

    io->timed_out = 0;
    if (io->fd < 0)
        return io_fail(io, "not connected");
    while (len > 0) {
        if (io->ssl != NULL) {
            size_t n = 0;
            int r, e, saved;

            ERR_clear_error();
            errno = 0;
            r = SSL_write_ex(io->ssl, p, len, &n);
            if (r == 1) {
                p += n;
                len -= n;
                continue;
            }
            saved = errno;
            e = SSL_get_error(io->ssl, r);
            if (e != SSL_ERROR_WANT_READ && e != SSL_ERROR_WANT_WRITE)
                return tls_fail(io, "TLS write", e, saved);
            if (io_wait(io, e == SSL_ERROR_WANT_READ ? POLLIN : POLLOUT, deadline) < 0)
                return -1;
        } else {
            ssize_t n = send(io->fd, p, len, MSG_NOSIGNAL);

            if (n >= 0) {
                p += n;
                len -= (size_t)n;
                continue;
            }
            if (errno == EINTR)
                continue;
            if (errno == EPIPE)
                return io_fail(io, "connection closed by the relay");
            if (errno != EAGAIN && errno != EWOULDBLOCK)
                return io_fail(io, "%s", strerror(errno));
            if (io_wait(io, POLLOUT, deadline) < 0)
                return -1;
        }
    }
    return 0;
}

size_t smtp_io_discard(struct smtp_io *io)
{
    size_t n = io->in_len;

    io->in_off = 0;
    io->in_len = 0;
    return n;
}

void smtp_io_close(struct smtp_io *io)
{
    if (io->ssl != NULL) {
        /* One try at close_notify; never after a fatal error (OpenSSL's rule). */
        if (io->fd >= 0 && !io->tls_failed && SSL_is_init_finished(io->ssl)) {
            ERR_clear_error();
            (void)SSL_shutdown(io->ssl);
        }
        SSL_free(io->ssl);
        io->ssl = NULL;
        ERR_clear_error();
    }
    if (io->fd >= 0) {
        /* Nothing of ours is lost by a failed close of a socket whose
         * replies were all read. */
        (void)close(io->fd);
        io->fd = -1;
    }
    io->in_off = 0;
    io->in_len = 0;
}

/* The socket BIO: OpenSSL's, with MSG_NOSIGNAL. */

static int bio_write(BIO *b, const char *buf, size_t len, size_t *written)
{
    struct smtp_io *io = BIO_get_data(b);
    ssize_t n = send(io->fd, buf, len, MSG_NOSIGNAL);

    BIO_clear_retry_flags(b);
    *written = 0;
    if (n >= 0) {
        *written = (size_t)n;
        return 1;
    }
    if (errno == EAGAIN || errno == EWOULDBLOCK || errno == EINTR)
        BIO_set_retry_write(b);
    return 0;
}

static int bio_read(BIO *b, char *buf, size_t len, size_t *readbytes)
{
    struct smtp_io *io = BIO_get_data(b);
    ssize_t n = recv(io->fd, buf, len, 0);

    BIO_clear_retry_flags(b);
    *readbytes = 0;
    if (n > 0) {
        *readbytes = (size_t)n;
        return 1;
    }
    if (n == 0)
        BIO_set_flags(b, BIO_FLAGS_IN_EOF);
    else if (errno == EAGAIN || errno == EWOULDBLOCK || errno == EINTR)
        BIO_set_retry_read(b);
    return 0;
}

static long bio_ctrl(BIO *b, int cmd, long num, void *ptr)
{
    (void)num;
    (void)ptr;
    switch (cmd) {
    case BIO_CTRL_FLUSH:
        return 1;
    case BIO_CTRL_EOF:
        return BIO_test_flags(b, BIO_FLAGS_IN_EOF) != 0;
    default:
        return 0;
    }
}

/* Made once per process and kept: OpenSSL refers to it from every BIO. */
static BIO_METHOD *bio_method(void)
{
    static BIO_METHOD *m;

    if (m != NULL)
        return m;
    m = BIO_meth_new(BIO_get_new_index() | BIO_TYPE_SOURCE_SINK, "mailcore socket");
    if (m == NULL)
        return NULL;
    if (BIO_meth_set_write_ex(m, bio_write) != 1 || BIO_meth_set_read_ex(m, bio_read) != 1 ||
        BIO_meth_set_ctrl(m, bio_ctrl) != 1) {
        BIO_meth_free(m);
        m = NULL;
    }
    return m;
}

/* What the handshake learnt. */

static int is_ip_literal(const char *host)
{
    unsigned char addr[sizeof(struct in6_addr)];

    return inet_pton(AF_INET, host, addr) == 1 || inet_pton(AF_INET6, host, addr) == 1;
}

#define NAME_FLAGS (XN_FLAG_ONELINE & ~XN_FLAG_SPC_EQ)

static void append(char *buf, size_t size, const char *s, size_t n)
{
    size_t len = strlen(buf);

    if (len + 1 >= size)
        return;
    if (n > size - len - 1)
        n = size - len - 1;
    memcpy(buf + len, s, n);
    buf[len + n] = '\0';
}

static void chain_line(X509 *x, int depth, char *out, size_t outlen)
{
    BIO *b = BIO_new(BIO_s_mem());
    char *p;
    long n;

    if (b == NULL)
        return;
    BIO_printf(b, "depth %d: subject=", depth);
    X509_NAME_print_ex(b, X509_get_subject_name(x), 0, NAME_FLAGS);
    BIO_puts(b, " issuer=");
    X509_NAME_print_ex(b, X509_get_issuer_name(x), 0, NAME_FLAGS);
    BIO_puts(b, " notAfter=");
    ASN1_TIME_print_ex(b, X509_get0_notAfter(x), ASN1_DTFLGS_ISO8601);
    n = BIO_get_mem_data(b, &p);
    if (n > 0) {
        char line[600];

        log_sanitize(line, sizeof line, p, (size_t)n);
        append(out, outlen, line, strlen(line));
        append(out, outlen, "\n", 1);
    }
    BIO_free(b);
}

/* The names a certificate is for: its subjectAltNames, else its CN. */
static void cert_names(X509 *x, char *out, size_t outlen)
{
    GENERAL_NAMES *gens = X509_get_ext_d2i(x, NID_subject_alt_name, NULL, NULL);
    char buf[INET6_ADDRSTRLEN + 256];
    int n = gens != NULL ? sk_GENERAL_NAME_num(gens) : 0;

    out[0] = '\0';
    for (int i = 0; i < n; i++) {
        const GENERAL_NAME *g = sk_GENERAL_NAME_value(gens, i);
        const unsigned char *d;
        int len;

        buf[0] = '\0';
        if (g->type == GEN_DNS) {
            d = ASN1_STRING_get0_data(g->d.dNSName);
            len = ASN1_STRING_length(g->d.dNSName);
            log_sanitize(buf, sizeof buf, (const char *)d, (size_t)len);
        } else if (g->type == GEN_IPADD) {
            d = ASN1_STRING_get0_data(g->d.iPAddress);
            len = ASN1_STRING_length(g->d.iPAddress);
            if (len == 4 || len == 16)
                inet_ntop(len == 4 ? AF_INET : AF_INET6, d, buf, sizeof buf);
        }
        if (buf[0] == '\0')
            continue;
        if (out[0] != '\0')
            append(out, outlen, ", ", 2);
        append(out, outlen, buf, strlen(buf));
    }
    GENERAL_NAMES_free(gens);
    if (out[0] == '\0') {
        X509_NAME *name = X509_get_subject_name(x);
        int idx = X509_NAME_get_index_by_NID(name, NID_commonName, -1);
        X509_NAME_ENTRY *e = idx >= 0 ? X509_NAME_get_entry(name, idx) : NULL;

        if (e != NULL) {
            ASN1_STRING *s = X509_NAME_ENTRY_get_data(e);
            log_sanitize(out, outlen, (const char *)ASN1_STRING_get0_data(s),
                         (size_t)ASN1_STRING_length(s));
        }
    }
}

static void tls_learn(SSL *ssl, int ok, struct smtp_tls_info *info)
{
    long v = SSL_get_verify_result(ssl);
    STACK_OF(X509) *chain = ok ? SSL_get0_verified_chain(ssl) : SSL_get_peer_cert_chain(ssl);
    const SSL_CIPHER *cipher;

    info->verify_code = v;
    if (v != X509_V_OK)
        snprintf(info->verify, sizeof info->verify, "%s", X509_verify_cert_error_string(v));
    else if (ok)
        snprintf(info->verify, sizeof info->verify, "ok");
    info->chain[0] = '\0';
    for (int i = 0; chain != NULL && i < sk_X509_num(chain); i++)
        chain_line(sk_X509_value(chain, i), i, info->chain, sizeof info->chain);
    if (chain != NULL && sk_X509_num(chain) > 0)
        cert_names(sk_X509_value(chain, 0), info->names, sizeof info->names);
    if (ok && (cipher = SSL_get_current_cipher(ssl)) != NULL) {
        int alg_bits = 0, bits = SSL_CIPHER_get_bits(cipher, &alg_bits);

        snprintf(info->summary, sizeof info->summary, "%s with cipher %s (%d/%d bits)",
                 SSL_get_version(ssl), SSL_CIPHER_get_name(cipher), bits, alg_bits);
    }
}

static SSL *tls_new(struct smtp_io *io, SSL_CTX *ctx, const char *host)
{
    BIO_METHOD *m = bio_method();
    SSL *ssl = m != NULL ? SSL_new(ctx) : NULL;
    BIO *bio = ssl != NULL ? BIO_new(m) : NULL;
    int ok;

    if (bio == NULL) {
        SSL_free(ssl);
        return NULL;
    }
    BIO_set_data(bio, io);
    BIO_set_init(bio, 1);
    SSL_set_bio(ssl, bio, bio);
    SSL_set_connect_state(ssl);
    /* Verification is the policy, whatever the context was made for. */
    SSL_set_verify(ssl, SSL_VERIFY_PEER, NULL);
    SSL_set_hostflags(ssl, X509_CHECK_FLAG_NO_PARTIAL_WILDCARDS);
    if (is_ip_literal(host))
        ok = X509_VERIFY_PARAM_set1_ip_asc(SSL_get0_param(ssl), host) == 1;
    else
        ok = SSL_set_tlsext_host_name(ssl, host) == 1 && SSL_set1_host(ssl, host) == 1;
    if (!ok) {
        SSL_free(ssl);
        return NULL;
    }
    return ssl;
}

int smtp_io_starttls(struct smtp_io *io, SSL_CTX *ctx, const char *host, uint64_t deadline,
                     struct smtp_tls_info *info)
{
    char why[200];
    SSL *ssl;

    memset(info, 0, sizeof *info);
    io->timed_out = 0;
    ERR_clear_error();
    ssl = tls_new(io, ctx, host);
    if (ssl == NULL)
        return io_fail(io, "TLS: %s: %s", host, tls_error_text(why, sizeof why));
    for (;;) {
        int r, e, saved;

        ERR_clear_error();
        errno = 0;
        r = SSL_connect(ssl);
        if (r == 1)
            break;
        saved = errno;
        e = SSL_get_error(ssl, r);
        if (e == SSL_ERROR_WANT_READ || e == SSL_ERROR_WANT_WRITE) {
            if (io_wait(io, e == SSL_ERROR_WANT_READ ? POLLIN : POLLOUT, deadline) == 0)
                continue;
            io_fail(io, "TLS handshake failed: timed out");
        } else if (SSL_get_verify_result(ssl) != X509_V_OK) {
            ERR_clear_error();
            info->verify_failed = 1;
            io_fail(io, "TLS certificate verification failed: %s",
                    X509_verify_cert_error_string(SSL_get_verify_result(ssl)));
        } else {
            tls_fail(io, "TLS handshake failed", e, saved);
        }
        tls_learn(ssl, 0, info);
        SSL_free(ssl);
        ERR_clear_error();
        return -1;
    }
    tls_learn(ssl, 1, info);
    if (SSL_get0_peer_certificate(ssl) == NULL || SSL_get_verify_result(ssl) != X509_V_OK) {
        /* Cannot happen with SSL_VERIFY_PEER; a second look costs nothing. */
        info->verify_failed = 1;
        SSL_free(ssl);
        return io_fail(io, "TLS certificate verification failed: no verified certificate");
    }
    io->ssl = ssl;
    io->tls_failed = 0;
    return 0;
}
