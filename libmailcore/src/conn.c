/*
 * conn.c - a buffered, non-blocking connection on the event loop, plain or
 * TLS.  See conn.h for the contract.
 *
 * How it runs.  The owner's callback is called from three loop entry points
 * only: the fd watcher (on_io), the idle timer (on_timer) and the
 * end-of-turn hook (on_kick); never from inside a conn_* call the owner
 * makes.  Owner calls change state and "kick" the conn, which registers the
 * end-of-turn hook; the hook flushes the output (so that the replies of one
 * turn leave in one write), drives a handshake and delivers what was
 * deferred (a resumed read, an error found by conn_flush, CONN_EV_CLOSED).
 *
 * Freeing.  Each entry point holds c->busy while it runs.  conn_free()
 * from inside a callback releases the fd, TLS state and buffers at once and
 * leaves only the struct, which the entry point frees on its way out; code
 * after every callback checks c->dead.  ev has no way to cancel a turn
 * hook, so the hook is registered with a small ticket instead of the conn:
 * conn_free() orphans an armed ticket and the hook frees it when it runs.
 *
 * Interest.  The fd is watched only for what is wanted right now (input
 * while not paused and the buffer has room, output while a write would
 * block, whatever a handshake asks for); with nothing wanted it is removed
 * from epoll, so a hung-up socket of a paused conn cannot spin the loop.
 *
 * Compression (conn_deflate.c) sits between the buffers and the transport:
 * fill() reads compressed bytes into the inflater and inflates into the
 * room the input buffer has; flush_out() compresses from the output buffer
 * into the deflater's buffer and sends from there.  The buffers themselves
 * always hold the owner's plain bytes.
 */
#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include <openssl/err.h>
#include <openssl/ssl.h>
#include <openssl/x509v3.h>

#include "mailcore/conn.h"
#include "mailcore/ev.h"
#include "mailcore/tls.h"
#include "conn_deflate.h"
#include "conn_internal.h"

#define CONN_IN_CHUNK 16384    /* smallest input buffer: one TLS record */
#define CONN_OUT_MIN 4096      /* first output allocation */
#define CONN_LINE_MIN 3        /* "x\r\n" */
#define CONN_READ_ROUNDS 8     /* TLS-buffered refills per entry before yielding */
#define CONN_CLOSE_DRAIN 65536 /* unread input dropped at close, against RST */

enum conn_tls { TLS_NONE, TLS_HANDSHAKE, TLS_ON };

struct conn_kick {
    struct conn *c; /* NULL: the conn was freed and the hook frees the ticket */
    int armed;      /* registered with ev_turn_hook and not yet run */
};

struct conn {
    struct ev_loop *ev;
    int fd;
    conn_cb *cb;
    void *arg;
    size_t line_max;

    char *in; /* unread input is in[in_off .. in_off + in_len) */
    size_t in_cap, in_off, in_len;
    char *out; /* unsent output is out[out_off .. out_off + out_len) */
    size_t out_cap, out_off, out_len;
    size_t out_plain;          /* leading output bytes to send before TLS starts */
    size_t out_raw;            /* leading output bytes to send before compression starts */
    struct conn_inflate *zin;  /* the peer compresses */
    struct conn_deflate *zout; /* we compress */

    int interest; /* EV_* registered with ev, when registered */
    struct ev_timer *timer;
    uint64_t idle_ms;
    uint64_t last_activity;
    struct conn_kick *kick;
    int busy; /* entry points on the stack */

    SSL *ssl;
    enum conn_tls tls;
    int hs_want; /* EV_READ or EV_WRITE the handshake waits for */
    size_t tls_discarded;

    unsigned registered : 1;
    unsigned paused : 1;
    unsigned discarding : 1; /* inside a too-long line, dropping up to LF */
    unsigned eof : 1;        /* the peer closed; nothing more to read */
    unsigned eof_told : 1;
    unsigned failed : 1; /* err says why; no more I/O */
    unsigned err_told : 1;
    unsigned wblocked : 1;      /* the last write would block */
    unsigned wr_want_read : 1;  /* ... and TLS needs input to go on */
    unsigned rd_want_write : 1; /* a TLS read needs to write first */
    unsigned rd_more : 1;       /* OpenSSL may hold input epoll cannot see */
    unsigned redeliver : 1;     /* CONN_EV_READ for input already buffered */
    unsigned drained : 1;       /* CONN_EV_DRAINED is due */
    unsigned shut : 1;          /* conn_shutdown() was called */
    unsigned shut_want_write : 1;
    unsigned ssl_closed : 1; /* close_notify sent (or given up) */
    unsigned closed_told : 1;
    unsigned kick_fallback : 1; /* the hook could not be registered */
    unsigned not_socket : 1;    /* send() said ENOTSOCK: use write() */
    unsigned dead : 1;          /* conn_free() was called */

    char err[256];
};

static void on_io(struct ev_loop *ev, int fd, int events, void *arg);
static void on_kick(struct ev_loop *ev, void *arg);
static void on_timer(struct ev_loop *ev, void *arg);
static void update_interest(struct conn *c);

/* Errors. */

static void set_err(struct conn *c, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static void set_err(struct conn *c, const char *fmt, ...)
{
    va_list ap;

    va_start(ap, fmt);
    vsnprintf(c->err, sizeof c->err, fmt, ap);
    va_end(ap);
}

/* The first failure is the one worth reporting; later ones follow from it. */
static void fail(struct conn *c, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static void fail(struct conn *c, const char *fmt, ...)
{
    va_list ap;

    if (c->failed)
        return;
    c->failed = 1;
    va_start(ap, fmt);
    vsnprintf(c->err, sizeof c->err, fmt, ap);
    va_end(ap);
}

/* Why an SSL call failed: OpenSSL's reason, else errno, else a closed peer. */
static const char *ssl_reason(char *buf, size_t len, int sslerr, int ret, int saved_errno)
{
    if (ERR_peek_error() != 0)
        return tls_error_text(buf, len);
    if (sslerr == SSL_ERROR_SYSCALL && ret < 0 && saved_errno != 0)
        snprintf(buf, len, "%s", strerror(saved_errno));
    else if (sslerr == SSL_ERROR_SYSCALL || sslerr == SSL_ERROR_ZERO_RETURN)
        snprintf(buf, len, "connection closed by peer");
    else
        snprintf(buf, len, "SSL error %d", sslerr);
    return buf;
}

/* Callbacks and entry points. */

/* Tell the owner; -1 if it freed the conn meanwhile. */
static int notify(struct conn *c, enum conn_event event)
{
    c->cb(c, event, c->arg);
    return c->dead ? -1 : 0;
}

static void tell_error(struct conn *c)
{
    if (c->err_told)
        return;
    c->err_told = 1;
    (void)notify(c, CONN_EV_ERROR);
}

static void leave(struct conn *c)
{
    if (--c->busy > 0)
        return;
    if (c->dead) {
        free(c);
        return;
    }
    update_interest(c);
}

static void kick(struct conn *c)
{
    if (c->dead)
        return;
    if (c->kick == NULL) {
        c->kick = calloc(1, sizeof *c->kick);
        if (c->kick != NULL)
            c->kick->c = c;
    }
    if (c->kick != NULL && c->kick->armed)
        return;
    if (c->kick != NULL && ev_turn_hook(c->ev, on_kick, c->kick) == 0) {
        c->kick->armed = 1;
        return;
    }
    /* Out of memory: a socket is nearly always writable, so EV_WRITE stands
     * in for the hook. */
    c->kick_fallback = 1;
    update_interest(c);
}

/* Buffers. */

static size_t in_size(const struct conn *c)
{
    return c->line_max > CONN_IN_CHUNK ? c->line_max : CONN_IN_CHUNK;
}

static void release_in(struct conn *c)
{
    if (c->in != NULL && c->in_len == 0) {
        free(c->in);
        c->in = NULL;
        c->in_cap = 0;
        c->in_off = 0;
    }
}

/* An idle connection holds no buffers: the output buffer goes when all of
 * it is sent (at the end of a step, after DRAINED had its chance to refill
 * it), as the input buffer goes when all of it is consumed. */
static void drop_empty_out(struct conn *c)
{
    if (c->out != NULL && c->out_len == 0 && c->out_plain == 0) {
        free(c->out);
        c->out = NULL;
        c->out_cap = 0;
        c->out_off = 0;
    }
}

static void consume_in(struct conn *c, size_t n)
{
    c->in_off += n;
    c->in_len -= n;
    if (c->in_len == 0)
        c->in_off = 0;
}

static void release_out(struct conn *c)
{
    free(c->out);
    c->out = NULL;
    c->out_cap = 0;
    c->out_off = 0;
    c->out_len = 0;
    c->out_plain = 0;
    c->out_raw = 0;
}

/* Output not yet handed to the transport, compressed or not. */
static size_t out_unsent(const struct conn *c)
{
    return c->out_len + (c->zout != NULL ? conn_deflate_pending(c->zout) : 0);
}

/* Room for len more output bytes, within CONN_OUT_MAX. */
static int out_reserve(struct conn *c, size_t len)
{
    size_t need, cap;
    char *p;

    if (len > CONN_OUT_MAX || c->out_len > CONN_OUT_MAX - len) {
        errno = ENOBUFS;
        return -1;
    }
    need = c->out_len + len;
    if (c->out_off + need <= c->out_cap)
        return 0;
    if (need <= c->out_cap) {
        /* Moving pending TLS output is fine: SSL_MODE_ACCEPT_MOVING_WRITE_BUFFER. */
        memmove(c->out, c->out + c->out_off, c->out_len);
        c->out_off = 0;
        return 0;
    }
    cap = c->out_cap ? c->out_cap : CONN_OUT_MIN;
    while (cap < need)
        cap = cap > CONN_OUT_MAX / 2 ? CONN_OUT_MAX : cap * 2;
    p = malloc(cap);
    if (p == NULL)
        return -1;
    if (c->out_len > 0)
        memcpy(p, c->out + c->out_off, c->out_len);
    free(c->out);
    c->out = p;
    c->out_cap = cap;
    c->out_off = 0;
    return 0;
}

/* Writing. */

static ssize_t raw_send(struct conn *c, const char *p, size_t n)
{
    if (!c->not_socket) {
        ssize_t r = send(c->fd, p, n, MSG_NOSIGNAL);
        if (r >= 0 || errno != ENOTSOCK)
            return r;
        c->not_socket = 1;
    }
    return write(c->fd, p, n);
}

/* Bytes taken, 0 if TLS must wait (wr_want_read says for what), -1 failed. */
static ssize_t tls_send(struct conn *c, const char *p, size_t n)
{
    char why[160];
    int r, e, saved;

    ERR_clear_error();
    r = SSL_write(c->ssl, p, n > INT_MAX ? INT_MAX : (int)n);
    if (r > 0) {
        c->wr_want_read = 0;
        return r;
    }
    saved = errno;
    e = SSL_get_error(c->ssl, r);
    if (e == SSL_ERROR_WANT_WRITE || e == SSL_ERROR_WANT_READ) {
        c->wr_want_read = e == SSL_ERROR_WANT_READ;
        return 0;
    }
    fail(c, "TLS write: %s", ssl_reason(why, sizeof why, e, r, saved));
    return -1;
}

/* Hand n bytes at p to the socket or to TLS: bytes taken, 0 when they must
 * wait (wblocked set, unless a handshake holds them back), -1 failed. */
static ssize_t send_some(struct conn *c, const char *p, size_t n)
{
    ssize_t r;

    if (c->out_plain > 0 || c->tls == TLS_NONE) {
        do
            r = raw_send(c, p, n);
        while (r < 0 && errno == EINTR);
        if (r < 0 && (errno == EAGAIN || errno == EWOULDBLOCK)) {
            c->wblocked = 1;
            return 0;
        }
        if (r < 0)
            fail(c, "write: %s", strerror(errno));
        return r;
    }
    if (c->tls == TLS_HANDSHAKE)
        return 0; /* the rest is for the peer's ears only */
    r = tls_send(c, p, n);
    if (r == 0)
        c->wblocked = 1;
    return r;
}

/* The next bytes to send: plain ones that go before TLS or compression
 * starts, else the deflater's, refilled from the output buffer. */
static int next_out(struct conn *c, const char **p, size_t *len)
{
    const char *from = c->out_len > 0 ? c->out + c->out_off : "";
    size_t taken;

    if (c->zout == NULL || c->out_raw > 0) {
        *p = c->out + c->out_off;
        *len = c->out_plain > 0 ? c->out_plain : c->out_raw > 0 ? c->out_raw : c->out_len;
        return 0;
    }
    *p = conn_deflate_data(c->zout, len);
    if (*len > 0)
        return 0;
    if (conn_deflate_run(c->zout, from, c->out_len, &taken) < 0) {
        fail(c, "compression: %s", conn_deflate_error(c->zout));
        return -1;
    }
    c->out_off += taken;
    c->out_len -= taken;
    *p = conn_deflate_data(c->zout, len);
    return 0;
}

static void out_sent(struct conn *c, size_t n)
{
    if (c->zout != NULL && c->out_raw == 0) {
        conn_deflate_sent(c->zout, n);
        return;
    }
    c->out_off += n;
    c->out_len -= n;
    if (c->out_plain > 0)
        c->out_plain -= n;
    else if (c->out_raw > 0)
        c->out_raw -= n;
}

/* Send what can be sent now.  0, or -1 when the conn failed. */
static int flush_out(struct conn *c)
{
    int was_blocked = c->wblocked;
    size_t sent = 0;

    if (c->failed)
        return -1;
    while (out_unsent(c) > 0) {
        const char *p;
        size_t len;
        ssize_t n;

        if (next_out(c, &p, &len) < 0)
            return -1;
        if (len == 0)
            break;
        n = send_some(c, p, len);
        if (n < 0)
            return -1;
        if (n == 0)
            break;
        c->wblocked = 0;
        out_sent(c, (size_t)n);
        sent += (size_t)n;
    }
    /* A slow reader that keeps taking our output is not idle. */
    if (sent > 0 && was_blocked)
        c->last_activity = ev_now_ms(c->ev);
    if (out_unsent(c) == 0) {
        if (c->out != NULL)
            release_out(c);
        c->wblocked = 0;
        c->wr_want_read = 0;
        if (sent > 0)
            c->drained = 1;
    }
    return 0;
}

/* Reading. */

/* Bytes read, 0 if nothing now (c->eof set at end of input), -1 failed. */
static ssize_t raw_recv(struct conn *c, char *p, size_t n)
{
    for (;;) {
        ssize_t r = read(c->fd, p, n);

        if (r > 0)
            return r;
        if (r == 0) {
            c->eof = 1;
            return 0;
        }
        if (errno == EINTR)
            continue;
        if (errno == EAGAIN || errno == EWOULDBLOCK)
            return 0;
        fail(c, "read: %s", strerror(errno));
        return -1;
    }
}

static ssize_t tls_recv(struct conn *c, char *p, size_t n)
{
    char why[160];
    int r, e, saved;

    ERR_clear_error();
    r = SSL_read(c->ssl, p, n > INT_MAX ? INT_MAX : (int)n);
    if (r > 0) {
        c->rd_want_write = 0;
        return r;
    }
    saved = errno;
    e = SSL_get_error(c->ssl, r);
    switch (e) {
    case SSL_ERROR_WANT_READ:
        c->rd_want_write = 0;
        return 0;
    case SSL_ERROR_WANT_WRITE:
        c->rd_want_write = 1;
        return 0;
    case SSL_ERROR_ZERO_RETURN:
        c->eof = 1;
        return 0;
    case SSL_ERROR_SYSCALL:
        /* A peer that closes without close_notify: mail protocols have their
         * own end markers, so this is an ordinary end of input. */
        if (ERR_peek_error() == 0 && (r == 0 || saved == 0)) {
            c->eof = 1;
            return 0;
        }
        break;
    default:
        break;
    }
    fail(c, "TLS read: %s", ssl_reason(why, sizeof why, e, r, saved));
    return -1;
}

static ssize_t transport_recv(struct conn *c, char *p, size_t n)
{
    return c->tls == TLS_ON ? tls_recv(c, p, n) : raw_recv(c, p, n);
}

/* The owner's bytes into p: inflated when the peer compresses.  As
 * transport_recv(); c->eof is set only once the inflater is empty too. */
static ssize_t app_recv(struct conn *c, char *p, size_t n)
{
    if (c->zin == NULL)
        return transport_recv(c, p, n);
    for (;;) {
        ssize_t r = conn_inflate_run(c->zin, p, n);
        char *room;
        size_t len;

        if (r < 0)
            fail(c, "compressed input: %s", conn_inflate_error(c->zin));
        if (r != 0)
            return r;
        /* All compressed input is used up: only now read more of it. */
        room = conn_inflate_room(c->zin, &len);
        if (room == NULL) {
            fail(c, "out of memory");
            return -1;
        }
        r = transport_recv(c, room, len);
        conn_inflate_added(c->zin, r > 0 ? (size_t)r : 0);
        if (r <= 0)
            return r;
    }
}

/* Read what fits into the input buffer.  0, or -1 when the conn failed. */
static int fill(struct conn *c, size_t *got)
{
    size_t size = in_size(c);

    *got = 0;
    if (c->in_cap < size) {
        char *p = realloc(c->in, size);
        if (p == NULL) {
            fail(c, "out of memory");
            return -1;
        }
        c->in = p;
        c->in_cap = size;
    }
    if (c->in_off > 0) {
        memmove(c->in, c->in + c->in_off, c->in_len);
        c->in_off = 0;
    }
    c->rd_more = 0;
    while (c->in_len < c->in_cap && !c->eof) {
        size_t room = c->in_cap - c->in_len;
        ssize_t n = app_recv(c, c->in + c->in_len, room);
        if (n < 0)
            return -1;
        if (n == 0)
            break;
        c->in_len += (size_t)n;
        *got += (size_t)n;
        /* Level-triggered epoll reports the rest; OpenSSL's buffer it won't. */
        if (c->tls == TLS_NONE && c->zin == NULL && (size_t)n < room)
            break;
    }
    /* Inflated output that did not fit waits inside zlib, unseen by epoll. */
    if (c->zin != NULL && c->in_len == c->in_cap && conn_inflate_more(c->zin))
        c->rd_more = 1;
    if (c->tls == TLS_ON && c->in_len == c->in_cap && !c->eof &&
        (SSL_pending(c->ssl) > 0 || SSL_has_pending(c->ssl)))
        c->rd_more = 1;
    return 0;
}

/* Whether a write may make progress: not blocked, or epoll said so. */
static int may_write(const struct conn *c, int events)
{
    if (!c->wblocked)
        return 1;
    return (events & (c->wr_want_read ? EV_READ : EV_WRITE)) != 0;
}

static int can_deliver_input(const struct conn *c)
{
    return !c->paused && !c->shut && !c->failed && c->tls != TLS_HANDSHAKE;
}

/* Read and deliver CONN_EV_READ / CONN_EV_EOF.  -1 if the conn is gone or
 * its error was told. */
static int read_step(struct conn *c, int events)
{
    for (int round = 0;; round++) {
        size_t got = 0;

        if (!can_deliver_input(c))
            return 0;
        if (!c->eof &&
            ((events & EV_READ) || c->rd_more || (c->rd_want_write && (events & EV_WRITE)))) {
            if (fill(c, &got) < 0) {
                tell_error(c);
                return -1;
            }
        }
        if (got > 0)
            c->last_activity = ev_now_ms(c->ev);
        if (c->in_len > 0 && (got > 0 || c->redeliver)) {
            c->redeliver = 0;
            if (notify(c, CONN_EV_READ) < 0)
                return -1;
            if (!can_deliver_input(c)) {
                release_in(c);
                return 0;
            }
        }
        c->redeliver = 0;
        release_in(c);
        if (c->eof && !c->eof_told) {
            c->eof_told = 1;
            return notify(c, CONN_EV_EOF);
        }
        if (!c->rd_more || got == 0)
            return 0;
        if (round + 1 == CONN_READ_ROUNDS) {
            kick(c); /* let the other connections have a turn */
            return 0;
        }
        events = 0;
    }
}

/* TLS handshake and close. */

/* 1 done, 0 waiting for hs_want, -1 failed. */
static int handshake(struct conn *c)
{
    char why[160];
    int r, e, saved;
    long v;

    ERR_clear_error();
    r = SSL_do_handshake(c->ssl);
    if (r == 1) {
        c->hs_want = 0;
        return 1;
    }
    saved = errno;
    e = SSL_get_error(c->ssl, r);
    if (e == SSL_ERROR_WANT_READ || e == SSL_ERROR_WANT_WRITE) {
        c->hs_want = e == SSL_ERROR_WANT_READ ? EV_READ : EV_WRITE;
        return 0;
    }
    v = SSL_get_verify_result(c->ssl);
    if (!SSL_is_server(c->ssl) && v != X509_V_OK) {
        ERR_clear_error();
        fail(c, "TLS certificate verification failed: %s", X509_verify_cert_error_string(v));
    } else {
        fail(c, "TLS handshake failed: %s", ssl_reason(why, sizeof why, e, r, saved));
    }
    return -1;
}

/* Send close_notify, best effort.  1 done, 0 waiting for EV_WRITE. */
static int ssl_close(struct conn *c)
{
    int r, e;

    if (c->ssl_closed)
        return 1;
    ERR_clear_error();
    r = SSL_shutdown(c->ssl);
    if (r < 0) {
        e = SSL_get_error(c->ssl, r);
        ERR_clear_error();
        if (e == SSL_ERROR_WANT_WRITE) {
            c->shut_want_write = 1;
            return 0;
        }
    }
    c->ssl_closed = 1;
    c->shut_want_write = 0;
    return 1;
}

/* Unread input makes close(2) send a RST, which can destroy our last reply
 * still in flight: drop what has already arrived. */
static void drain_socket(struct conn *c)
{
    char buf[4096];
    size_t total = 0;
    ssize_t n;

    while (total < CONN_CLOSE_DRAIN && (n = recv(c->fd, buf, sizeof buf, MSG_DONTWAIT)) > 0)
        total += (size_t)n;
}

static void shut_step(struct conn *c, int events)
{
    if (c->closed_told)
        return;
    if (!c->failed) {
        /* Output queued for after a handshake that never finished cannot go. */
        if (c->tls == TLS_HANDSHAKE)
            c->out_len = c->out_plain;
        if (may_write(c, events))
            (void)flush_out(c);
        if (!c->failed && out_unsent(c) > 0)
            return;
        if (!c->failed && c->tls == TLS_ON && ssl_close(c) == 0)
            return;
    }
    if (!c->not_socket) {
        drain_socket(c);
        /* ENOTCONN after a reset is no news: the conn is over either way. */
        (void)shutdown(c->fd, SHUT_WR);
    }
    c->shut_want_write = 0;
    c->closed_told = 1;
    (void)notify(c, CONN_EV_CLOSED);
}

/* One pass over everything that may be due; events are what epoll said
 * (0 from the hook). */
static void step(struct conn *c, int events)
{
    if (c->shut) {
        shut_step(c, events);
        return;
    }
    if (c->failed) {
        tell_error(c);
        return;
    }
    if (may_write(c, events) && flush_out(c) < 0) {
        tell_error(c);
        return;
    }
    if (c->tls == TLS_HANDSHAKE && c->out_plain == 0) {
        int r = handshake(c);

        if (r < 0)
            tell_error(c);
        if (r <= 0)
            return;
        c->tls = TLS_ON;
        c->rd_more = 1; /* a record may already wait inside OpenSSL */
        if (notify(c, CONN_EV_TLS_DONE) < 0)
            return;
        if (c->shut || c->failed) {
            kick(c);
            return;
        }
        if (flush_out(c) < 0) {
            tell_error(c);
            return;
        }
    }
    if (read_step(c, events) < 0)
        return;
    if (c->drained && out_unsent(c) == 0 && !c->shut && !c->failed) {
        c->drained = 0;
        if (notify(c, CONN_EV_DRAINED) < 0)
            return;
    }
    drop_empty_out(c);
}

/* What to watch the fd for right now. */
static int want_events(const struct conn *c)
{
    int e = c->kick_fallback ? EV_WRITE : 0;

    if (c->failed || c->closed_told)
        return e;
    if (c->wblocked && out_unsent(c) > 0)
        e |= c->wr_want_read ? EV_READ : EV_WRITE;
    if (c->shut_want_write)
        e |= EV_WRITE;
    if (c->tls == TLS_HANDSHAKE) {
        if (c->out_plain == 0 && !c->shut)
            e |= c->hs_want;
        return e;
    }
    if (c->paused || c->eof || c->shut)
        return e;
    if (c->rd_want_write)
        e |= EV_WRITE;
    if (c->in_len < in_size(c))
        e |= EV_READ;
    return e;
}

static void update_interest(struct conn *c)
{
    int want, r;

    if (c->dead || c->fd < 0)
        return;
    want = want_events(c);
    if (want == (c->registered ? c->interest : 0))
        return;
    if (want == 0) {
        ev_fd_del(c->ev, c->fd);
        c->registered = 0;
        c->interest = 0;
        return;
    }
    r = c->registered ? ev_fd_mod(c->ev, c->fd, want) : ev_fd_add(c->ev, c->fd, want, on_io, c);
    if (r < 0) {
        fail(c, "event loop: %s", strerror(errno));
        kick(c);
        return;
    }
    c->registered = 1;
    c->interest = want;
}

static void on_io(struct ev_loop *ev, int fd, int events, void *arg)
{
    struct conn *c = arg;

    (void)ev;
    (void)fd;
    c->busy++;
    if (events & EV_WRITE)
        c->kick_fallback = 0;
    step(c, events);
    leave(c);
}

static void on_kick(struct ev_loop *ev, void *arg)
{
    struct conn_kick *k = arg;
    struct conn *c = k->c;

    (void)ev;
    if (c == NULL) {
        free(k);
        return;
    }
    k->armed = 0;
    c->busy++;
    step(c, 0);
    leave(c);
}

static void on_timer(struct ev_loop *ev, void *arg)
{
    struct conn *c = arg;
    uint64_t now = ev_clock_ms();

    c->timer = NULL;
    c->busy++;
    if (!c->paused && now - c->last_activity >= c->idle_ms && c->wblocked && !c->failed) {
        /* Before calling the peer idle: is it still taking our output?
         * epoll may not have said so yet in this turn. */
        size_t before = out_unsent(c);

        (void)flush_out(c);
        if (c->failed || out_unsent(c) < before) {
            c->last_activity = now;
            kick(c); /* an error or CONN_EV_DRAINED is told from the hook */
        }
    }
    if (!c->paused && now - c->last_activity >= c->idle_ms && !c->eof && can_deliver_input(c)) {
        /* Likewise for input that epoll has not reported yet. */
        uint64_t before = c->last_activity;

        if (read_step(c, EV_READ) < 0) {
            leave(c);
            return;
        }
        if (c->last_activity != before)
            c->last_activity = now;
    }
    if (c->paused || now - c->last_activity < c->idle_ms) {
        /* A paused conn waits for us, not for its peer. */
        uint64_t left = c->paused ? c->idle_ms : c->idle_ms - (now - c->last_activity);

        c->timer = ev_timer_add(ev, left, on_timer, c);
        leave(c);
        return;
    }
    c->last_activity = now;
    c->timer = ev_timer_add(ev, c->idle_ms, on_timer, c);
    if (c->shut) {
        fail(c, "timed out while closing");
        shut_step(c, 0);
    } else if (!c->failed && !c->eof_told) {
        (void)notify(c, CONN_EV_TIMEOUT);
    }
    leave(c);
}

/* The interface. */

static size_t clamp_line_max(size_t line_max)
{
    if (line_max < CONN_LINE_MIN)
        return CONN_LINE_MIN;
    return line_max > CONN_OUT_MAX ? CONN_OUT_MAX : line_max;
}

struct conn *conn_new(struct ev_loop *ev, int fd, size_t line_max, conn_cb *cb, void *arg)
{
    struct conn *c;
    int flags, one = 1;

    if (fd < 0 || (flags = fcntl(fd, F_GETFL)) < 0 || fcntl(fd, F_SETFL, flags | O_NONBLOCK) < 0)
        return NULL;
    c = calloc(1, sizeof *c);
    if (c == NULL)
        return NULL;
    c->ev = ev;
    c->fd = fd;
    c->cb = cb;
    c->arg = arg;
    c->line_max = clamp_line_max(line_max);
    c->last_activity = ev_clock_ms();
    if (ev_fd_add(ev, fd, EV_READ, on_io, c) < 0) {
        int saved = errno;
        free(c);
        errno = saved;
        return NULL;
    }
    c->registered = 1;
    c->interest = EV_READ;
    /* Replies are already gathered per loop turn; Nagle would only delay
     * them.  Not a TCP socket (tests, Unix sockets): nothing to do. */
    (void)setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
    return c;
}

void conn_free(struct conn *c)
{
    if (c == NULL || c->dead)
        return;
    c->dead = 1;
    if (c->timer != NULL)
        ev_timer_cancel(c->ev, c->timer);
    c->timer = NULL;
    if (c->registered)
        ev_fd_del(c->ev, c->fd);
    c->registered = 0;
    SSL_free(c->ssl);
    c->ssl = NULL;
    /* A socket's close cannot lose data we care about: every byte we meant
     * to send was handed to the kernel (or deliberately dropped) already. */
    if (c->fd >= 0)
        (void)close(c->fd);
    c->fd = -1;
    free(c->in);
    c->in = NULL;
    c->in_len = 0;
    release_out(c);
    conn_inflate_free(c->zin);
    c->zin = NULL;
    conn_deflate_free(c->zout);
    c->zout = NULL;
    if (c->kick != NULL) {
        if (c->kick->armed)
            c->kick->c = NULL;
        else
            free(c->kick);
        c->kick = NULL;
    }
    if (c->busy == 0)
        free(c);
}

int conn_fd(const struct conn *c)
{
    return c->fd;
}

void conn_set_line_max(struct conn *c, size_t line_max)
{
    c->line_max = clamp_line_max(line_max);
    update_interest(c);
}

void conn_set_idle_timeout(struct conn *c, uint64_t ms)
{
    if (c->timer != NULL)
        ev_timer_cancel(c->ev, c->timer);
    c->timer = NULL;
    c->idle_ms = ms;
    c->last_activity = ev_clock_ms(); /* ev_now_ms() is stale outside the loop */
    if (ms > 0 && !c->dead)
        c->timer = ev_timer_add(c->ev, ms, on_timer, c);
}

static enum conn_result no_input(const struct conn *c)
{
    return c->eof || c->failed || c->dead ? CONN_END : CONN_AGAIN;
}

enum conn_result conn_read_line(struct conn *c, const char **line, size_t *len)
{
    *line = NULL;
    *len = 0;
    for (;;) {
        char *p, *lf;
        size_t scan;

        if (c->in_len == 0) {
            release_in(c);
            return no_input(c);
        }
        p = c->in + c->in_off;
        if (c->discarding) {
            lf = memchr(p, '\n', c->in_len);
            if (lf == NULL) {
                consume_in(c, c->in_len);
                continue;
            }
            consume_in(c, (size_t)(lf - p) + 1);
            c->discarding = 0;
            continue;
        }
        scan = c->in_len < c->line_max ? c->in_len : c->line_max;
        lf = memchr(p, '\n', scan);
        if (lf != NULL) {
            *line = p;
            *len = (size_t)(lf - p) + 1;
            consume_in(c, *len);
            return CONN_OK;
        }
        if (c->in_len < c->line_max)
            return no_input(c); /* an incomplete line: wait for the rest */
        /* Too long: drop it up to its LF, now or as it arrives. */
        lf = memchr(p + scan, '\n', c->in_len - scan);
        if (lf != NULL) {
            consume_in(c, (size_t)(lf - p) + 1);
        } else {
            consume_in(c, c->in_len);
            c->discarding = 1;
        }
        return CONN_TOOLONG;
    }
}

enum conn_result conn_read_bytes(struct conn *c, size_t max, const char **data, size_t *len)
{
    size_t n;

    *data = NULL;
    *len = 0;
    if (c->in_len == 0) {
        release_in(c);
        return no_input(c);
    }
    if (max == 0)
        return CONN_AGAIN;
    n = c->in_len < max ? c->in_len : max;
    *data = c->in + c->in_off;
    *len = n;
    consume_in(c, n);
    return CONN_OK;
}

enum conn_result conn_peek(struct conn *c, const char **data, size_t *len)
{
    *data = NULL;
    *len = 0;
    if (c->in_len == 0) {
        release_in(c);
        return no_input(c);
    }
    *data = c->in + c->in_off;
    *len = c->in_len;
    return CONN_OK;
}

void conn_consume(struct conn *c, size_t n)
{
    consume_in(c, n < c->in_len ? n : c->in_len);
}

size_t conn_in_pending(const struct conn *c)
{
    return c->in_len;
}

void conn_pause(struct conn *c)
{
    c->paused = 1;
    update_interest(c);
}

void conn_resume(struct conn *c)
{
    if (!c->paused)
        return;
    c->paused = 0;
    c->last_activity = ev_now_ms(c->ev);
    if (c->in_len > 0 || c->rd_more || (c->eof && !c->eof_told)) {
        c->redeliver = c->in_len > 0;
        kick(c);
    }
    update_interest(c);
}

int conn_write(struct conn *c, const void *buf, size_t len)
{
    if (c->failed || c->shut || c->dead) {
        errno = EPIPE;
        return -1;
    }
    if (len == 0)
        return 0;
    if (out_reserve(c, len) < 0)
        return -1;
    memcpy(c->out + c->out_off + c->out_len, buf, len);
    c->out_len += len;
    if (!c->wblocked)
        kick(c);
    return 0;
}

int conn_printf(struct conn *c, const char *fmt, ...)
{
    va_list ap;
    int r;

    va_start(ap, fmt);
    r = conn_vprintf(c, fmt, ap);
    va_end(ap);
    return r;
}

int conn_vprintf(struct conn *c, const char *fmt, va_list ap)
{
    va_list again;
    size_t room = c->out_cap - c->out_off - c->out_len;
    int n;

    if (c->failed || c->shut || c->dead) {
        errno = EPIPE;
        return -1;
    }
    va_copy(again, ap);
    n = vsnprintf(room ? c->out + c->out_off + c->out_len : NULL, room, fmt, ap);
    if (n >= 0 && (size_t)n >= room) {
        if (out_reserve(c, (size_t)n + 1) < 0) {
            va_end(again);
            return -1;
        }
        n = vsnprintf(c->out + c->out_off + c->out_len, (size_t)n + 1, fmt, again);
    }
    va_end(again);
    if (n < 0)
        return -1;
    c->out_len += (size_t)n;
    if (n > 0 && !c->wblocked)
        kick(c);
    return 0;
}

size_t conn_out_pending(const struct conn *c)
{
    return out_unsent(c);
}

int conn_flush(struct conn *c)
{
    int r;

    if (c->failed || c->dead)
        return -1;
    r = flush_out(c);
    if (c->failed || c->drained)
        kick(c); /* the error or CONN_EV_DRAINED is told from the loop */
    update_interest(c);
    return r;
}

void conn_shutdown(struct conn *c)
{
    if (c->shut || c->dead)
        return;
    c->shut = 1;
    kick(c);
    update_interest(c);
}

static int is_ip_literal(const char *host)
{
    unsigned char addr[sizeof(struct in6_addr)];

    return inet_pton(AF_INET, host, addr) == 1 || inet_pton(AF_INET6, host, addr) == 1;
}

static int starttls(struct conn *c, SSL_CTX *ctx, int server, const char *hostname)
{
    char why[160];
    SSL *ssl;

    if (c->failed || c->shut || c->dead) {
        if (!c->failed)
            set_err(c, "STARTTLS on a closed connection");
        return -1;
    }
    if (c->ssl != NULL) {
        set_err(c, "TLS is already active");
        return -1;
    }
    if (c->zin != NULL || c->zout != NULL) {
        /* RFC 4978: TLS first, then compression, never the other way. */
        set_err(c, "TLS cannot start after compression");
        return -1;
    }
    ERR_clear_error();
    ssl = SSL_new(ctx);
    if (ssl == NULL || SSL_set_fd(ssl, c->fd) != 1) {
        set_err(c, "TLS: %s", tls_error_text(why, sizeof why));
        SSL_free(ssl);
        return -1;
    }
    SSL_set_mode(ssl, SSL_MODE_RELEASE_BUFFERS | SSL_MODE_ENABLE_PARTIAL_WRITE |
                          SSL_MODE_ACCEPT_MOVING_WRITE_BUFFER);
#ifdef SSL_OP_IGNORE_UNEXPECTED_EOF
    SSL_set_options(ssl, SSL_OP_IGNORE_UNEXPECTED_EOF);
#endif
    if (server) {
        SSL_set_accept_state(ssl);
    } else {
        SSL_set_connect_state(ssl);
        if (hostname != NULL && hostname[0] != '\0') {
            int ok = 1;

            if (!is_ip_literal(hostname))
                ok = SSL_set_tlsext_host_name(ssl, hostname) == 1;
            if (ok && (SSL_CTX_get_verify_mode(ctx) & SSL_VERIFY_PEER)) {
                SSL_set_hostflags(ssl, X509_CHECK_FLAG_NO_PARTIAL_WILDCARDS);
                if (is_ip_literal(hostname))
                    ok = X509_VERIFY_PARAM_set1_ip_asc(SSL_get0_param(ssl), hostname) == 1;
                else
                    ok = SSL_set1_host(ssl, hostname) == 1;
            }
            if (!ok) {
                set_err(c, "TLS: %s: %s", hostname, tls_error_text(why, sizeof why));
                SSL_free(ssl);
                return -1;
            }
        }
    }
    /* Whatever the peer sent before the handshake was not protected by it
     * and must never be read as if it had been. */
    c->tls_discarded = c->in_len;
    c->in_len = 0;
    c->in_off = 0;
    release_in(c);
    c->discarding = 0;
    c->redeliver = 0;
    c->rd_more = 0;
    /* What is queued now (the "220 Ready to start TLS") goes in plaintext. */
    c->out_plain = c->out_len;
    c->ssl = ssl;
    c->tls = TLS_HANDSHAKE;
    c->hs_want = 0;
    (void)flush_out(c); /* a failure is told from the loop */
    kick(c);
    update_interest(c);
    return 0;
}

int conn_starttls_server(struct conn *c, SSL_CTX *ctx)
{
    return starttls(c, ctx, 1, NULL);
}

int conn_starttls_client(struct conn *c, SSL_CTX *ctx, const char *hostname)
{
    return starttls(c, ctx, 0, hostname);
}

int conn_is_tls(const struct conn *c)
{
    return c->tls == TLS_ON;
}

size_t conn_tls_discarded(const struct conn *c)
{
    return c->tls_discarded;
}

const char *conn_tls_summary(struct conn *c, char *buf, size_t len)
{
    const SSL_CIPHER *cipher;
    int bits, alg_bits = 0;

    if (len == 0)
        return buf;
    buf[0] = '\0';
    if (c->tls != TLS_ON || (cipher = SSL_get_current_cipher(c->ssl)) == NULL)
        return buf;
    bits = SSL_CIPHER_get_bits(cipher, &alg_bits);
    snprintf(buf, len, "%s with cipher %s (%d/%d bits)", SSL_get_version(c->ssl),
             SSL_CIPHER_get_name(cipher), bits, alg_bits);
    return buf;
}

SSL *conn_ssl(struct conn *c)
{
    return c->ssl;
}

int conn_compress(struct conn *c, int directions)
{
    if (c->failed || c->shut || c->dead) {
        if (!c->failed)
            set_err(c, "compression on a closed connection");
        return -1;
    }
    if (c->tls == TLS_HANDSHAKE || ((directions & CONN_COMPRESS_IN) && c->zin != NULL) ||
        ((directions & CONN_COMPRESS_OUT) && c->zout != NULL)) {
        set_err(c, c->tls == TLS_HANDSHAKE ? "compression during a TLS handshake"
                                           : "compression is already active");
        return -1;
    }
    if (directions & CONN_COMPRESS_OUT) {
        c->zout = conn_deflate_new();
        if (c->zout == NULL) {
            set_err(c, "compression: out of memory");
            return -1;
        }
        c->out_raw = c->out_len; /* what is queued now goes as it is */
    }
    if (directions & CONN_COMPRESS_IN) {
        /* What the peer sent after its request is compressed already. */
        c->zin = conn_inflate_new(c->in_len > 0 ? c->in + c->in_off : "", c->in_len);
        if (c->zin == NULL) {
            set_err(c, "compression: out of memory");
            return -1;
        }
        c->rd_more = c->in_len > 0;
        if (c->rd_more && !c->eof_told)
            c->eof = 0; /* a closed socket says so again once that is read */
        c->in_len = 0;
        c->in_off = 0;
        release_in(c);
        c->redeliver = 0;
        if (c->rd_more)
            kick(c);
    }
    update_interest(c);
    return 0;
}

int conn_compressed(const struct conn *c)
{
    return (c->zin != NULL ? CONN_COMPRESS_IN : 0) | (c->zout != NULL ? CONN_COMPRESS_OUT : 0);
}

const char *conn_error(const struct conn *c)
{
    return c->err;
}

size_t conn_in_alloc(const struct conn *c)
{
    return c->in_cap;
}

size_t conn_out_alloc(const struct conn *c)
{
    return c->out_cap;
}

size_t conn_deflate_alloc(const struct conn *c)
{
    return (c->zin != NULL ? conn_inflate_mem(c->zin) : 0) +
           (c->zout != NULL ? conn_deflate_mem(c->zout) : 0);
}
