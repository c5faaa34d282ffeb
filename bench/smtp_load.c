/*
 * smtp_load.c - SMTP load generator for the mailcore benchmarks.
 *
 * SYNOPSIS
 *	smtp_load --host HOST --port PORT [--sessions N] [--messages M]
 *		[--size BYTES] [--per-conn K] [--from ADDR] [--to ADDR]...
 *		[--users N] [--rcpts R] [--timeout SEC] [--max-time SEC]
 *		[--helo NAME] [--no-pipelining] [--allow-nonlocal] [--quiet]
 *
 * DESCRIPTION
 *	Keeps N SMTP sessions busy until M messages have been offered, then
 *	prints what the server did with them.  One thread, one epoll loop: a
 *	session is a state machine (connect, greeting, EHLO, transactions,
 *	QUIT) driven by the server's replies, so the generator costs a few
 *	system calls per message and is not the bottleneck.
 *
 *	Each connection carries up to K messages (--per-conn), then QUITs and
 *	a new connection takes its place while messages remain.  When the
 *	server offers PIPELINING, MAIL, every RCPT and DATA go out in one
 *	write (RFC 2920); otherwise one command per reply.  A transaction that
 *	fails part-way is cleared with RSET before the next one.
 *
 *	Recipients: every --to is an address, or a pattern with one "%d" that
 *	expands to N addresses (0..N-1, --users N, default 100).  The expanded
 *	list is used round-robin; each message gets R consecutive entries
 *	(--rcpts R, default 1).  Default: --to user%d@example.test.
 *
 *	Each message is about BYTES long (headers included): a few headers
 *	with a unique Message-ID, then 7-bit lines that need no dot-stuffing.
 *
 * MEASUREMENTS
 *	latency	from the moment the last byte of "\r\n.\r\n" was handed to
 *		the kernel to the end of the server's reply to it; accepted
 *		messages only.  txn: from MAIL sent to that reply.
 *	outcome	every message offered ends in exactly one of: accepted (2xx
 *		to the final dot), tempfail (4xx at any step: greeting, MAIL,
 *		every RCPT, DATA or dot), rejected (5xx likewise), error (the
 *		connection broke, timed out or spoke garbage), unfinished
 *		(--max-time or SIGINT hit first).
 *
 * OUTPUT
 *	stdout: one line "smtp_load key=value ..." (see print_results()).
 *	stderr: a human table row, and the first few distinct failure replies.
 *	Exit 0 when every message was accepted, 1 when some were not, 2 on a
 *	usage or set-up error.
 *
 * SAFETY
 *	Only loopback addresses unless --allow-nonlocal; every run is bounded
 *	by --messages and --max-time (default 600 s).
 */
#define _GNU_SOURCE
#include <ctype.h>
#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <netdb.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <signal.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <sys/uio.h>
#include <time.h>
#include <unistd.h>

#define IN_MAX 4096 /* one reply line must fit; RFC 5321 says 512 */
#define ADDR_MAX 256
#define HDR_MAX 1024 /* message headers, see msg_header() */
#define MAX_RCPTS 100
#define MAX_FAILTEXTS 5
#define QUIT_LINGER_NS 2000000000ull /* wait this long for the server's close */

enum outcome { OUT_ACCEPTED, OUT_TEMPFAIL, OUT_REJECTED, OUT_ERROR, OUT_NCOUNT };

enum state {
    S_IDLE,     /* no connection */
    S_CONNECT,  /* non-blocking connect in progress */
    S_GREETING, /* waiting for 220 */
    S_EHLO,     /* waiting for the EHLO reply */
    S_HELO,     /* EHLO refused: waiting for the HELO reply */
    S_TXN,      /* waiting for MAIL / RCPT / DATA replies */
    S_DOT,      /* body sent, waiting for the final reply */
    S_RSET,     /* waiting for the RSET reply */
    S_QUIT,     /* waiting for 221 */
    S_CLOSING,  /* 221 seen, waiting for the server to close */
};

struct opts {
    const char *host;
    const char *port;
    const char *from;
    const char *helo;
    const char **to;
    int nto;
    int sessions;
    long messages;
    long size;
    int per_conn;
    int users;
    int rcpts;
    double timeout;
    double max_time;
    int no_pipelining;
    int allow_nonlocal;
    int quiet;
};

struct session {
    int idx;
    int fd;
    uint32_t gen; /* bumped per connection: stale epoll events are skipped */
    enum state st;
    uint64_t deadline; /* monotonic ns; 0 = none */
    int pipelining;
    int size_ext;
    int msgs_on_conn; /* messages started on this connection */
    /* current message */
    long msg;       /* message number, -1 = none claimed */
    int rcpt_first; /* index into the recipient list */
    int tx_sent;    /* commands of the transaction sent: MAIL, RCPTs, DATA */
    int tx_recv;    /* replies received for them */
    int mail_ok;
    int rcpt_ok;
    int rcpt_temp; /* recipients refused with 4xx */
    int fail;      /* class (4, 5) of the first step that failed the message, 0 = none */
    uint64_t t_mail, t_dot;
    /* reply parsing */
    char in[IN_MAX];
    size_t inlen;
    /* output: up to three segments, the first one in cmd[] */
    char *cmd;
    size_t cmdcap;
    struct iovec iov[3];
    int niov;
    int body_pending; /* the queued output ends with the final dot */
    int restart;      /* queued in g.restart[] */
};

static struct opts o = {
    .port = "25",
    .from = "loadgen@bench.test",
    .helo = "loadgen.bench.test",
    .sessions = 10,
    .messages = 1000,
    .size = 4096,
    .per_conn = 1,
    .users = 100,
    .rcpts = 1,
    .timeout = 30,
    .max_time = 600,
};

static struct {
    struct sockaddr_storage addr;
    socklen_t addrlen;
    char **rcpt; /* expanded recipient list */
    size_t *rcptlen;
    int nrcpt;
    size_t rcptmax;
    char *body; /* shared by every message: header goes in front */
    size_t bodylen;
    size_t msg_bytes; /* header + body of the longest header */
    char runid[64];
    char date[64];
    int epfd;
    struct session *s;
    long next_msg; /* messages claimed so far */
    long done[OUT_NCOUNT];
    long rcpt_cnt[OUT_NCOUNT];
    long connections, conn_errors;
    int sessions_no_pipelining;
    uint64_t bytes;
    uint32_t *lat_us, *txn_us;
    long nlat;
    char failtext[MAX_FAILTEXTS][160];
    int nfail;
    uint64_t t_start, t_last; /* start, last message finished */
    int open;                 /* connections open */
    int *restart;             /* sessions to reconnect at the top of the loop */
    int nrestart;
    volatile sig_atomic_t stop;
} g;

static void msg_start(struct session *s);

static uint64_t now_ns(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000000000ull + (uint64_t)ts.tv_nsec;
}

static void die(const char *fmt, ...)
{
    va_list ap;
    fputs("smtp_load: ", stderr);
    va_start(ap, fmt);
    vfprintf(stderr, fmt, ap);
    va_end(ap);
    fputc('\n', stderr);
    exit(2);
}

static void *xcalloc(size_t n, size_t sz)
{
    void *p = calloc(n ? n : 1, sz ? sz : 1);
    if (!p)
        die("out of memory");
    return p;
}

/* Remember a failure reply (or error) for the report: the first few distinct ones. */
static void note_failure(const char *what, const char *text, size_t len)
{
    char buf[sizeof g.failtext[0]];
    if (g.nfail >= MAX_FAILTEXTS)
        return;
    while (len > 0 && (text[len - 1] == '\r' || text[len - 1] == '\n'))
        len--;
    snprintf(buf, sizeof buf, "%s: %.*s", what, (int)len, text);
    for (int i = 0; i < g.nfail; i++)
        if (strcmp(g.failtext[i], buf) == 0)
            return;
    memcpy(g.failtext[g.nfail++], buf, sizeof buf);
}

/* ---- output ---- */

/* Write what is queued; 0 = all written or would block, -1 = error. */
static int sess_flush(struct session *s)
{
    while (s->niov > 0) {
        ssize_t n = writev(s->fd, s->iov, s->niov);
        if (n < 0) {
            if (errno == EINTR)
                continue;
            if (errno == EAGAIN || errno == EWOULDBLOCK)
                return 0;
            note_failure("write", strerror(errno), strlen(strerror(errno)));
            return -1;
        }
        g.bytes += (uint64_t)n;
        s->deadline = now_ns() + (uint64_t)(o.timeout * 1e9);
        size_t left = (size_t)n;
        int i = 0;
        while (i < s->niov && left >= s->iov[i].iov_len)
            left -= s->iov[i++].iov_len;
        if (i > 0) {
            memmove(s->iov, s->iov + i, (size_t)(s->niov - i) * sizeof s->iov[0]);
            s->niov -= i;
        }
        if (s->niov > 0) {
            s->iov[0].iov_base = (char *)s->iov[0].iov_base + left;
            s->iov[0].iov_len -= left;
        }
    }
    if (s->body_pending) {
        s->body_pending = 0;
        s->t_dot = now_ns();
    }
    return 0;
}

static void cmd_reset(struct session *s)
{
    s->iov[0].iov_base = s->cmd;
    s->iov[0].iov_len = 0;
    s->niov = 1;
}

/* Append to cmd[]; the buffer is sized at start for the largest group. */
static void cmd_add(struct session *s, const char *p, size_t len)
{
    size_t used = s->iov[0].iov_len;
    if (used + len > s->cmdcap)
        die("internal: command buffer too small");
    memcpy(s->cmd + used, p, len);
    s->iov[0].iov_len = used + len;
}

static void cmd_str(struct session *s, const char *str)
{
    cmd_add(s, str, strlen(str));
}

static void cmd_fmt(struct session *s, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static void cmd_fmt(struct session *s, const char *fmt, ...)
{
    size_t used = s->iov[0].iov_len;
    va_list ap;
    va_start(ap, fmt);
    int n = vsnprintf(s->cmd + used, s->cmdcap - used, fmt, ap);
    va_end(ap);
    if (n < 0 || (size_t)n >= s->cmdcap - used)
        die("internal: command buffer too small");
    s->iov[0].iov_len = used + (size_t)n;
}

/* ---- session end ---- */

static void msg_finish(struct session *s, enum outcome out)
{
    if (s->msg < 0)
        return;
    g.done[out]++;
    if (out == OUT_ACCEPTED) {
        uint64_t t = now_ns();
        g.lat_us[g.nlat] = (uint32_t)((t - s->t_dot) / 1000);
        g.txn_us[g.nlat] = (uint32_t)((t - s->t_mail) / 1000);
        g.nlat++;
    }
    g.t_last = now_ns();
    s->msg = -1;
}

static void sess_close(struct session *s)
{
    if (s->fd >= 0) {
        close(s->fd); /* every reply we wait for has been read: nothing to lose */
        g.open--;
    }
    s->fd = -1;
    s->gen++;
    s->st = S_IDLE;
    s->deadline = 0;
    s->niov = 0;
    s->body_pending = 0;
    /* Reconnect from the main loop, not from here: a server that refuses
     * connections at once must not turn into a recursion per message. */
    if (!s->restart) {
        s->restart = 1;
        g.restart[g.nrestart++] = s->idx;
    }
}

/* The connection broke: the message in flight, if any, is an error. */
static void sess_error(struct session *s, const char *why)
{
    g.conn_errors++;
    note_failure("connection", why, strlen(why));
    msg_finish(s, OUT_ERROR);
    sess_close(s);
}

static int have_work(void)
{
    return !g.stop && g.next_msg < o.messages;
}

/* ---- session start ---- */

static void sess_connect(struct session *s)
{
    int fd = socket(g.addr.ss_family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    if (fd < 0)
        die("socket: %s", strerror(errno));
    int one = 1;
    setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
    s->fd = fd;
    g.open++;
    s->gen++;
    s->inlen = 0;
    s->msgs_on_conn = 0;
    s->pipelining = 0;
    s->size_ext = 0;
    s->deadline = now_ns() + (uint64_t)(o.timeout * 1e9);
    g.connections++;
    struct epoll_event ev = {
        .events = EPOLLIN | EPOLLOUT | EPOLLRDHUP | EPOLLET,
        .data.u64 = ((uint64_t)s->idx << 32) | s->gen,
    };
    if (epoll_ctl(g.epfd, EPOLL_CTL_ADD, fd, &ev) < 0)
        die("epoll_ctl: %s", strerror(errno));
    if (connect(fd, (struct sockaddr *)&g.addr, g.addrlen) == 0) {
        s->st = S_GREETING;
        return;
    }
    if (errno == EINPROGRESS) {
        s->st = S_CONNECT;
        return;
    }
    sess_error(s, strerror(errno));
}

/* Open a connection for the next message, if one is left. */
static void sess_begin(struct session *s)
{
    if (!have_work())
        return;
    s->msg = g.next_msg++;
    s->rcpt_first = (int)((s->msg * o.rcpts) % g.nrcpt);
    s->t_mail = now_ns(); /* until MAIL goes out: covers greeting failures */
    sess_connect(s);
}

/* ---- transactions ---- */

static void send_or_fail(struct session *s)
{
    if (sess_flush(s) < 0)
        sess_error(s, "write failed");
}

static void send_quit(struct session *s)
{
    cmd_reset(s);
    cmd_str(s, "QUIT\r\n");
    s->st = S_QUIT;
    send_or_fail(s);
}

static void send_rcpt(struct session *s, int i)
{
    int r = (s->rcpt_first + i) % g.nrcpt;
    cmd_str(s, "RCPT TO:<");
    cmd_add(s, g.rcpt[r], g.rcptlen[r]);
    cmd_str(s, ">\r\n");
}

/* Queue the transaction's next command(s): all of them when pipelining. */
static void txn_send_next(struct session *s)
{
    int last = o.rcpts + 1; /* 0 = MAIL, 1..rcpts = RCPT, rcpts+1 = DATA */
    cmd_reset(s);
    do {
        int i = s->tx_sent;
        if (i == 0) {
            cmd_fmt(s, "MAIL FROM:<%s>", o.from);
            if (s->size_ext)
                cmd_fmt(s, " SIZE=%zu", g.msg_bytes);
            cmd_str(s, "\r\n");
        } else if (i <= o.rcpts) {
            send_rcpt(s, i - 1);
        } else {
            cmd_str(s, "DATA\r\n");
        }
        s->tx_sent++;
    } while (s->pipelining && s->tx_sent <= last);
    send_or_fail(s);
}

static size_t msg_header(struct session *s, char *buf, size_t cap)
{
    int r = s->rcpt_first;
    int n = snprintf(buf, cap,
                     "From: <%s>\r\nTo: <%.*s>\r\nSubject: smtp_load message %ld\r\n"
                     "Date: %s\r\nMessage-ID: <%ld.%s@smtp-load.invalid>\r\n\r\n",
                     o.from, (int)g.rcptlen[r], g.rcpt[r], s->msg, g.date, s->msg, g.runid);
    if (n < 0 || (size_t)n >= cap)
        die("internal: header too long");
    return (size_t)n;
}

static void send_body(struct session *s)
{
    static const char dot[] = ".\r\n";
    size_t hlen = msg_header(s, s->cmd, s->cmdcap);
    s->iov[0].iov_base = s->cmd;
    s->iov[0].iov_len = hlen;
    s->iov[1].iov_base = g.body;
    s->iov[1].iov_len = g.bodylen;
    s->iov[2].iov_base = (void *)dot;
    s->iov[2].iov_len = sizeof dot - 1;
    s->niov = 3;
    s->body_pending = 1;
    s->st = S_DOT;
    send_or_fail(s);
}

/* The message failed before its body: clear the transaction, go on. */
static void txn_abort(struct session *s)
{
    msg_finish(s, s->fail == 4 ? OUT_TEMPFAIL : OUT_REJECTED);
    cmd_reset(s);
    cmd_str(s, "RSET\r\n");
    s->st = S_RSET;
    send_or_fail(s);
}

/* Next message on this connection, or QUIT. */
static void conn_next(struct session *s)
{
    if (s->msgs_on_conn < o.per_conn && s->msg < 0 && have_work()) {
        s->msg = g.next_msg++;
        s->rcpt_first = (int)((s->msg * o.rcpts) % g.nrcpt);
    }
    if (s->msg >= 0)
        msg_start(s);
    else
        send_quit(s);
}

static void msg_start(struct session *s)
{
    s->msgs_on_conn++;
    s->tx_sent = s->tx_recv = 0;
    s->mail_ok = s->rcpt_ok = s->rcpt_temp = 0;
    s->fail = 0;
    s->t_mail = now_ns();
    s->st = S_TXN;
    txn_send_next(s);
}

static int reply_class(int code)
{
    return code / 100;
}

/*
 * A reply to MAIL, a RCPT or DATA.  The message fails with the class of the
 * first step that failed it: MAIL; else every RCPT (4xx if any was 4xx);
 * else DATA.  Later replies to a pipelined group (503s) do not count.
 */
static void on_txn(struct session *s, int code, const char *line, size_t len)
{
    int i = s->tx_recv++;
    int cls = reply_class(code);
    if (i == 0) { /* MAIL */
        s->mail_ok = cls == 2;
        if (!s->mail_ok) {
            note_failure("MAIL", line, len);
            s->fail = cls == 4 ? 4 : 5;
        }
    } else if (i <= o.rcpts) { /* RCPT */
        if (cls == 2) {
            s->rcpt_ok++;
            g.rcpt_cnt[OUT_ACCEPTED]++;
        } else if (s->mail_ok) {
            note_failure("RCPT", line, len);
            g.rcpt_cnt[cls == 4 ? OUT_TEMPFAIL : OUT_REJECTED]++;
            s->rcpt_temp += cls == 4;
        }
        if (i == o.rcpts && s->rcpt_ok == 0 && !s->fail)
            s->fail = s->rcpt_temp ? 4 : 5;
    } else { /* DATA */
        if (code == 354) {
            if (s->rcpt_ok == 0 || !s->mail_ok) {
                /* RFC 2920: DATA accepted with no recipient: send only the dot. */
                static const char dot[] = ".\r\n";
                msg_finish(s, s->fail == 4 ? OUT_TEMPFAIL : OUT_REJECTED);
                s->iov[0].iov_base = (void *)dot;
                s->iov[0].iov_len = sizeof dot - 1;
                s->niov = 1;
                s->st = S_DOT;
                send_or_fail(s);
                return;
            }
            send_body(s);
            return;
        }
        if (!s->fail) {
            note_failure("DATA", line, len);
            s->fail = cls == 4 ? 4 : 5;
        }
    }
    if (s->pipelining) {
        if (s->tx_recv < s->tx_sent)
            return;
        txn_abort(s); /* every reply is in and DATA was not accepted */
        return;
    }
    /* One command at a time: stop at the first step that failed the message. */
    if (s->fail || i > o.rcpts) {
        txn_abort(s);
        return;
    }
    txn_send_next(s);
}

static int ehlo_has(const char *kw, size_t kwlen, const char *line, size_t len)
{
    /* line: "250-KEYWORD params" */
    if (len < 4 + kwlen || strncasecmp(line + 4, kw, kwlen) != 0)
        return 0;
    return len == 4 + kwlen || line[4 + kwlen] == ' ' || line[4 + kwlen] == '\r';
}

/* One complete reply line (CRLF included), "ddd-" or "ddd ". */
static void on_line(struct session *s, const char *line, size_t len)
{
    if (len < 5 || !isdigit((unsigned char)line[0]) || !isdigit((unsigned char)line[1]) ||
        !isdigit((unsigned char)line[2]) || (line[3] != ' ' && line[3] != '-' && line[3] != '\r')) {
        sess_error(s, "malformed reply");
        return;
    }
    int code = (line[0] - '0') * 100 + (line[1] - '0') * 10 + (line[2] - '0');
    if (s->st == S_EHLO && reply_class(code) == 2) {
        if (ehlo_has("PIPELINING", 10, line, len) && !o.no_pipelining)
            s->pipelining = 1;
        if (ehlo_has("SIZE", 4, line, len))
            s->size_ext = 1;
    }
    if (line[3] == '-')
        return; /* continuation */
    s->deadline = now_ns() + (uint64_t)(o.timeout * 1e9);

    if (code == 421 && s->st != S_QUIT && s->st != S_CLOSING) {
        note_failure("421", line, len);
        msg_finish(s, OUT_TEMPFAIL);
        sess_close(s);
        return;
    }
    switch (s->st) {
    case S_GREETING:
        if (code != 220) {
            note_failure("greeting", line, len);
            msg_finish(s, reply_class(code) == 4 ? OUT_TEMPFAIL : OUT_REJECTED);
            send_quit(s);
            return;
        }
        cmd_reset(s);
        cmd_fmt(s, "EHLO %s\r\n", o.helo);
        s->st = S_EHLO;
        send_or_fail(s);
        return;
    case S_EHLO:
    case S_HELO:
        if (reply_class(code) != 2) {
            if (s->st == S_EHLO) {
                cmd_reset(s);
                cmd_fmt(s, "HELO %s\r\n", o.helo);
                s->st = S_HELO;
                send_or_fail(s);
                return;
            }
            note_failure("HELO", line, len);
            msg_finish(s, reply_class(code) == 4 ? OUT_TEMPFAIL : OUT_REJECTED);
            send_quit(s);
            return;
        }
        if (!s->pipelining)
            g.sessions_no_pipelining++;
        msg_start(s);
        return;
    case S_TXN:
        on_txn(s, code, line, len);
        return;
    case S_DOT:
        if (s->msg >= 0) {
            int cls = reply_class(code);
            if (cls != 2)
                note_failure("end of data", line, len);
            msg_finish(s, cls == 2 ? OUT_ACCEPTED : cls == 4 ? OUT_TEMPFAIL : OUT_REJECTED);
        }
        conn_next(s);
        return;
    case S_RSET:
        if (reply_class(code) != 2) {
            send_quit(s);
            return;
        }
        conn_next(s);
        return;
    case S_QUIT:
        s->st = S_CLOSING;
        /* Let the server close first, so TIME_WAIT stays on its side. */
        s->deadline = now_ns() + QUIT_LINGER_NS;
        return;
    default:
        sess_error(s, "unexpected reply");
        return;
    }
}

/* Readable: take every complete line; an event may end the connection. */
static void sess_read(struct session *s)
{
    uint32_t gen = s->gen;
    for (;;) {
        ssize_t n = read(s->fd, s->in + s->inlen, sizeof s->in - s->inlen);
        if (n < 0) {
            if (errno == EINTR)
                continue;
            if (errno == EAGAIN || errno == EWOULDBLOCK)
                return;
            sess_error(s, strerror(errno));
            return;
        }
        if (n == 0) {
            if (s->st == S_CLOSING)
                sess_close(s);
            else
                sess_error(s, "server closed the connection");
            return;
        }
        s->inlen += (size_t)n;
        size_t off = 0;
        for (;;) {
            char *nl = memchr(s->in + off, '\n', s->inlen - off);
            if (!nl)
                break;
            size_t len = (size_t)(nl - (s->in + off)) + 1;
            on_line(s, s->in + off, len);
            if (s->gen != gen)
                return; /* connection gone (or replaced) */
            off += len;
        }
        if (off > 0) {
            memmove(s->in, s->in + off, s->inlen - off);
            s->inlen -= off;
        }
        if (s->inlen == sizeof s->in) {
            sess_error(s, "reply line too long");
            return;
        }
    }
}

static void sess_event(struct session *s, uint32_t events)
{
    uint32_t gen = s->gen;
    if (s->st == S_CONNECT) {
        if (!(events & (EPOLLOUT | EPOLLERR | EPOLLHUP)))
            return;
        int err = 0;
        socklen_t len = sizeof err;
        getsockopt(s->fd, SOL_SOCKET, SO_ERROR, &err, &len);
        if (err) {
            sess_error(s, strerror(err));
            return;
        }
        s->st = S_GREETING;
    }
    if ((events & EPOLLOUT) && s->niov > 0) {
        send_or_fail(s);
        if (s->gen != gen)
            return;
    }
    if (events & (EPOLLIN | EPOLLRDHUP | EPOLLHUP | EPOLLERR))
        sess_read(s);
}

static void check_timeouts(uint64_t t)
{
    for (int i = 0; i < o.sessions; i++) {
        struct session *s = &g.s[i];
        if (s->fd < 0 || s->deadline == 0 || t < s->deadline)
            continue;
        if (s->st == S_CLOSING) /* 221 was seen: the server just did not close */
            sess_close(s);
        else
            sess_error(s, "timeout");
    }
}

/* ---- set-up ---- */

static void on_signal(int sig)
{
    (void)sig;
    g.stop = 1;
}

static int is_loopback(const struct sockaddr *sa)
{
    if (sa->sa_family == AF_INET) {
        const struct sockaddr_in *sin = (const void *)sa;
        return (ntohl(sin->sin_addr.s_addr) >> 24) == 127;
    }
    if (sa->sa_family == AF_INET6) {
        const struct sockaddr_in6 *sin6 = (const void *)sa;
        return IN6_IS_ADDR_LOOPBACK(&sin6->sin6_addr);
    }
    return 0;
}

static void resolve(void)
{
    struct addrinfo hints = {.ai_socktype = SOCK_STREAM}, *res;
    int rc = getaddrinfo(o.host, o.port, &hints, &res);
    if (rc != 0)
        die("%s port %s: %s", o.host, o.port, gai_strerror(rc));
    memcpy(&g.addr, res->ai_addr, res->ai_addrlen);
    g.addrlen = res->ai_addrlen;
    freeaddrinfo(res);
    if (!o.allow_nonlocal && !is_loopback((struct sockaddr *)&g.addr))
        die("%s is not a loopback address (use --allow-nonlocal for a server you run)", o.host);
}

static void add_rcpt(const char *a, size_t len)
{
    if (len == 0 || len >= ADDR_MAX)
        die("bad recipient address length");
    g.rcpt[g.nrcpt] = xcalloc(1, len + 1);
    memcpy(g.rcpt[g.nrcpt], a, len);
    g.rcptlen[g.nrcpt] = len;
    if (len > g.rcptmax)
        g.rcptmax = len;
    g.nrcpt++;
}

/* Expand --to values: "%d" in a value stands for 0..users-1. */
static void build_rcpts(void)
{
    static const char *deflt[] = {"user%d@example.test"};
    if (o.nto == 0) {
        o.to = deflt;
        o.nto = 1;
    }
    size_t n = 0;
    for (int i = 0; i < o.nto; i++)
        n += strstr(o.to[i], "%d") ? (size_t)o.users : 1;
    g.rcpt = xcalloc(n, sizeof *g.rcpt);
    g.rcptlen = xcalloc(n, sizeof *g.rcptlen);
    for (int i = 0; i < o.nto; i++) {
        const char *t = o.to[i];
        const char *pct = strstr(t, "%d");
        if (strchr(t, '<') || strchr(t, '>') || strchr(t, '\r') || strchr(t, '\n'))
            die("--to %s: give the bare address", t);
        if (!pct) {
            if (strchr(t, '%'))
                die("--to %s: only %%d is understood", t);
            add_rcpt(t, strlen(t));
            continue;
        }
        if (strchr(pct + 2, '%') || memchr(t, '%', (size_t)(pct - t)))
            die("--to %s: only one %%d is understood", t);
        for (int u = 0; u < o.users; u++) {
            char buf[ADDR_MAX + 16];
            int len = snprintf(buf, sizeof buf, "%.*s%d%s", (int)(pct - t), t, u, pct + 2);
            if (len < 0 || (size_t)len >= sizeof buf)
                die("--to %s: address too long", t);
            add_rcpt(buf, (size_t)len);
        }
    }
}

/* The shared body: 7-bit lines, none starting with '.', so no dot-stuffing. */
static void build_body(void)
{
    struct session probe = {.msg = o.messages, .rcpt_first = 0};
    char hdr[HDR_MAX];
    size_t rmax = 0;
    for (int i = 0; i < g.nrcpt; i++)
        if (g.rcptlen[i] > g.rcptlen[rmax])
            rmax = (size_t)i;
    probe.rcpt_first = (int)rmax;
    size_t hlen = msg_header(&probe, hdr, sizeof hdr);
    size_t want = o.size > (long)hlen ? (size_t)o.size - hlen : 0;
    g.body = xcalloc(want + 80, 1);
    static const char pat[] = "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789";
    size_t len = 0;
    long line = 0;
    while (len < want) {
        size_t room = want - len;
        if (room < 3) /* too short for a line of its own: pad the last one */
            break;
        size_t linelen = room > 78 ? 78 : room; /* CRLF included */
        int n = snprintf(g.body + len, linelen - 1, "%06ld ", line++);
        size_t k = n > 0 ? (size_t)n : 0;
        if (k > linelen - 2)
            k = linelen - 2;
        for (size_t j = k; j < linelen - 2; j++)
            g.body[len + j] = pat[(j + (size_t)line) % (sizeof pat - 1)];
        g.body[len + linelen - 2] = '\r';
        g.body[len + linelen - 1] = '\n';
        len += linelen;
    }
    g.bodylen = len;
    g.msg_bytes = hlen + len;
}

static void raise_nofile(void)
{
    struct rlimit rl;
    if (getrlimit(RLIMIT_NOFILE, &rl) < 0)
        return;
    rlim_t need = (rlim_t)o.sessions + 64;
    if (rl.rlim_cur >= need)
        return;
    rl.rlim_cur = rl.rlim_max < need ? rl.rlim_max : need;
    setrlimit(RLIMIT_NOFILE, &rl);
    if (rl.rlim_cur < need)
        die("--sessions %d needs %lu file descriptors, the limit is %lu", o.sessions,
            (unsigned long)need, (unsigned long)rl.rlim_cur);
}

static void usage(void)
{
    fputs("usage: smtp_load --host HOST --port PORT [options]\n"
          "  --sessions N      concurrent sessions (10)\n"
          "  --messages M      messages in total (1000)\n"
          "  --size BYTES      approximate message size, headers included (4096)\n"
          "  --per-conn K      messages per connection (1)\n"
          "  --from ADDR       envelope sender (loadgen@bench.test)\n"
          "  --to ADDR         recipient; repeatable; %d expands to 0..users-1\n"
          "                    (user%d@example.test)\n"
          "  --users N         how far %d counts (100)\n"
          "  --rcpts R         recipients per message, round-robin over the list (1)\n"
          "  --timeout SEC     per reply / write progress (30)\n"
          "  --max-time SEC    stop after this long, whatever is left (600)\n"
          "  --helo NAME       EHLO name (loadgen.bench.test)\n"
          "  --no-pipelining   one command per reply even if PIPELINING is offered\n"
          "  --allow-nonlocal  allow a non-loopback server address\n"
          "  --quiet           no human-readable row on stderr\n",
          stderr);
    exit(2);
}

static long num_arg(const char *name, const char *v, long min, long max)
{
    char *end;
    errno = 0;
    long n = strtol(v, &end, 10);
    if (errno || *end || n < min || n > max)
        die("%s %s: expected an integer in %ld..%ld", name, v, min, max);
    return n;
}

static double sec_arg(const char *name, const char *v)
{
    char *end;
    double d = strtod(v, &end);
    if (*end || !(d > 0) || d > 86400)
        die("%s %s: expected seconds in (0, 86400]", name, v);
    return d;
}

static void parse_args(int argc, char **argv)
{
    enum {
        O_HOST = 256,
        O_PORT,
        O_SESS,
        O_MSGS,
        O_SIZE,
        O_PERCONN,
        O_FROM,
        O_TO,
        O_USERS,
        O_RCPTS,
        O_TIMEOUT,
        O_MAXTIME,
        O_HELO,
        O_NOPIPE,
        O_NONLOCAL,
        O_QUIET
    };
    static const struct option lo[] = {
        {"host", required_argument, 0, O_HOST},
        {"port", required_argument, 0, O_PORT},
        {"sessions", required_argument, 0, O_SESS},
        {"messages", required_argument, 0, O_MSGS},
        {"size", required_argument, 0, O_SIZE},
        {"per-conn", required_argument, 0, O_PERCONN},
        {"from", required_argument, 0, O_FROM},
        {"to", required_argument, 0, O_TO},
        {"users", required_argument, 0, O_USERS},
        {"rcpts", required_argument, 0, O_RCPTS},
        {"timeout", required_argument, 0, O_TIMEOUT},
        {"max-time", required_argument, 0, O_MAXTIME},
        {"helo", required_argument, 0, O_HELO},
        {"no-pipelining", no_argument, 0, O_NOPIPE},
        {"allow-nonlocal", no_argument, 0, O_NONLOCAL},
        {"quiet", no_argument, 0, O_QUIET},
        {"help", no_argument, 0, 'h'},
        {0, 0, 0, 0},
    };
    o.to = xcalloc((size_t)argc, sizeof *o.to);
    int c;
    while ((c = getopt_long(argc, argv, "h", lo, NULL)) != -1) {
        switch (c) {
        case O_HOST:
            o.host = optarg;
            break;
        case O_PORT:
            o.port = optarg;
            break;
        case O_SESS:
            o.sessions = (int)num_arg("--sessions", optarg, 1, 100000);
            break;
        case O_MSGS:
            o.messages = num_arg("--messages", optarg, 1, 100000000);
            break;
        case O_SIZE:
            o.size = num_arg("--size", optarg, 0, 100L << 20);
            break;
        case O_PERCONN:
            o.per_conn = (int)num_arg("--per-conn", optarg, 1, 1000000);
            break;
        case O_FROM:
            o.from = optarg;
            break;
        case O_TO:
            o.to[o.nto++] = optarg;
            break;
        case O_USERS:
            o.users = (int)num_arg("--users", optarg, 1, 1000000);
            break;
        case O_RCPTS:
            o.rcpts = (int)num_arg("--rcpts", optarg, 1, MAX_RCPTS);
            break;
        case O_TIMEOUT:
            o.timeout = sec_arg("--timeout", optarg);
            break;
        case O_MAXTIME:
            o.max_time = sec_arg("--max-time", optarg);
            break;
        case O_HELO:
            o.helo = optarg;
            break;
        case O_NOPIPE:
            o.no_pipelining = 1;
            break;
        case O_NONLOCAL:
            o.allow_nonlocal = 1;
            break;
        case O_QUIET:
            o.quiet = 1;
            break;
        default:
            usage();
        }
    }
    if (optind != argc || !o.host)
        usage();
    if (strlen(o.from) >= ADDR_MAX || strpbrk(o.from, "<>\r\n"))
        die("--from: give a bare address shorter than %d bytes", ADDR_MAX);
    if (strlen(o.helo) >= ADDR_MAX || strpbrk(o.helo, " \r\n"))
        die("--helo: give one word shorter than %d bytes", ADDR_MAX);
}

/* ---- results ---- */

static int cmp_u32(const void *a, const void *b)
{
    uint32_t x = *(const uint32_t *)a, y = *(const uint32_t *)b;
    return x < y ? -1 : x > y;
}

/* Nearest-rank percentile of a sorted array, in ms. */
static double pct_ms(const uint32_t *v, long n, double p)
{
    if (n == 0)
        return 0;
    long k = (long)(p * (double)n + 0.999999) - 1;
    if (k < 0)
        k = 0;
    if (k >= n)
        k = n - 1;
    return v[k] / 1000.0;
}

static double mean_ms(const uint32_t *v, long n)
{
    double sum = 0;
    for (long i = 0; i < n; i++)
        sum += v[i];
    return n ? sum / (double)n / 1000.0 : 0;
}

static int print_results(void)
{
    uint64_t t_end = g.t_last ? g.t_last : now_ns();
    double el = (double)(t_end - g.t_start) / 1e9;
    long offered = g.next_msg;
    long finished = g.done[0] + g.done[1] + g.done[2] + g.done[3];
    long unfinished = offered - finished;
    double mean = mean_ms(g.lat_us, g.nlat), tmean = mean_ms(g.txn_us, g.nlat);
    qsort(g.lat_us, (size_t)g.nlat, sizeof *g.lat_us, cmp_u32);
    qsort(g.txn_us, (size_t)g.nlat, sizeof *g.txn_us, cmp_u32);
    struct rusage ru;
    getrusage(RUSAGE_SELF, &ru);
    double cpu = (double)ru.ru_utime.tv_sec + (double)ru.ru_stime.tv_sec +
                 ((double)ru.ru_utime.tv_usec + (double)ru.ru_stime.tv_usec) / 1e6;
    double rate = el > 0 ? (double)g.done[OUT_ACCEPTED] / el : 0;

    printf("smtp_load host=%s port=%s sessions=%d messages=%ld per_conn=%d rcpts=%d size=%ld"
           " msg_bytes=%zu pipelining=%d elapsed_s=%.3f offered=%ld accepted=%ld tempfail=%ld"
           " rejected=%ld errors=%ld unfinished=%ld not_offered=%ld rcpt_accepted=%ld"
           " rcpt_tempfail=%ld rcpt_rejected=%ld connections=%ld conn_errors=%ld"
           " rate_accepted=%.2f lat_p50_ms=%.3f lat_p90_ms=%.3f lat_p99_ms=%.3f"
           " lat_max_ms=%.3f lat_mean_ms=%.3f txn_p50_ms=%.3f txn_p99_ms=%.3f txn_mean_ms=%.3f"
           " client_cpu_s=%.3f\n",
           o.host, o.port, o.sessions, o.messages, o.per_conn, o.rcpts, o.size, g.msg_bytes,
           g.sessions_no_pipelining == 0 && g.connections > 0, el, offered, g.done[OUT_ACCEPTED],
           g.done[OUT_TEMPFAIL], g.done[OUT_REJECTED], g.done[OUT_ERROR], unfinished,
           o.messages - offered, g.rcpt_cnt[OUT_ACCEPTED], g.rcpt_cnt[OUT_TEMPFAIL],
           g.rcpt_cnt[OUT_REJECTED], g.connections, g.conn_errors, rate,
           pct_ms(g.lat_us, g.nlat, 0.50), pct_ms(g.lat_us, g.nlat, 0.90),
           pct_ms(g.lat_us, g.nlat, 0.99), pct_ms(g.lat_us, g.nlat, 1.0), mean,
           pct_ms(g.txn_us, g.nlat, 0.50), pct_ms(g.txn_us, g.nlat, 0.99), tmean, cpu);
    fflush(stdout);
    if (!o.quiet) {
        fprintf(stderr, "%-22s %8s %8s %6s %6s %6s %8s %9s %8s %8s %8s %7s\n", "server", "offered",
                "accepted", "4xx", "5xx", "errors", "secs", "msgs/s", "p50 ms", "p99 ms", "max ms",
                "cpu s");
        char hp[64];
        snprintf(hp, sizeof hp, "%s:%s", o.host, o.port);
        fprintf(stderr, "%-22s %8ld %8ld %6ld %6ld %6ld %8.2f %9.1f %8.2f %8.2f %8.2f %7.2f\n", hp,
                offered, g.done[OUT_ACCEPTED], g.done[OUT_TEMPFAIL], g.done[OUT_REJECTED],
                g.done[OUT_ERROR] + unfinished, el, rate, pct_ms(g.lat_us, g.nlat, 0.50),
                pct_ms(g.lat_us, g.nlat, 0.99), pct_ms(g.lat_us, g.nlat, 1.0), cpu);
        for (int i = 0; i < g.nfail; i++)
            fprintf(stderr, "  failure: %s\n", g.failtext[i]);
    }
    return g.done[OUT_ACCEPTED] == o.messages ? 0 : 1;
}

int main(int argc, char **argv)
{
    parse_args(argc, argv);
    resolve();
    build_rcpts();
    raise_nofile();

    struct sigaction sa = {.sa_handler = on_signal};
    sigemptyset(&sa.sa_mask);
    sigaction(SIGINT, &sa, NULL);
    sigaction(SIGTERM, &sa, NULL);
    signal(SIGPIPE, SIG_IGN);

    time_t wall = time(NULL);
    struct tm tm;
    gmtime_r(&wall, &tm);
    strftime(g.date, sizeof g.date, "%a, %d %b %Y %H:%M:%S +0000", &tm);
    snprintf(g.runid, sizeof g.runid, "%ld.%ld", (long)getpid(), (long)wall);
    build_body();

    g.lat_us = xcalloc((size_t)o.messages, sizeof *g.lat_us);
    g.txn_us = xcalloc((size_t)o.messages, sizeof *g.txn_us);
    g.epfd = epoll_create1(EPOLL_CLOEXEC);
    if (g.epfd < 0)
        die("epoll_create1: %s", strerror(errno));
    /* cmd[] holds the largest pipelined group or a message header. */
    size_t cmdcap = HDR_MAX + 2 * ADDR_MAX + 64 + (size_t)o.rcpts * (g.rcptmax + 16);
    g.s = xcalloc((size_t)o.sessions, sizeof *g.s);
    g.restart = xcalloc(2 * (size_t)o.sessions, sizeof *g.restart); /* see the loop */
    for (int i = 0; i < o.sessions; i++) {
        g.s[i].idx = i;
        g.s[i].fd = -1;
        g.s[i].msg = -1;
        g.s[i].cmd = xcalloc(cmdcap, 1);
        g.s[i].cmdcap = cmdcap;
    }

    g.t_start = now_ns();
    uint64_t t_stop = g.t_start + (uint64_t)(o.max_time * 1e9), t_check = g.t_start;
    for (int i = 0; i < o.sessions; i++)
        g.restart[g.nrestart++] = i, g.s[i].restart = 1;

    struct epoll_event ev[256];
    for (;;) {
        /* Sessions closed in the last turn; one that fails again at once is
         * queued for the next turn. */
        int nr = g.nrestart;
        for (int i = 0; i < nr; i++) {
            struct session *s = &g.s[g.restart[i]];
            s->restart = 0;
            if (s->fd < 0)
                sess_begin(s);
        }
        memmove(g.restart, g.restart + nr, (size_t)(g.nrestart - nr) * sizeof *g.restart);
        g.nrestart -= nr;
        if (g.open == 0 && g.nrestart == 0)
            break;
        int n = epoll_wait(g.epfd, ev, 256, g.nrestart ? 0 : 100);
        if (n < 0 && errno != EINTR)
            die("epoll_wait: %s", strerror(errno));
        for (int i = 0; i < n; i++) {
            struct session *s = &g.s[ev[i].data.u64 >> 32];
            if ((uint32_t)ev[i].data.u64 != s->gen || s->fd < 0)
                continue; /* event for a connection already closed */
            sess_event(s, ev[i].events);
        }
        uint64_t t = now_ns();
        if (t >= t_stop || g.stop) {
            for (int i = 0; i < o.sessions; i++)
                if (g.s[i].fd >= 0) {
                    g.s[i].msg = -1; /* counted as unfinished */
                    sess_close(&g.s[i]);
                }
            if (!g.stop)
                note_failure("run", "--max-time reached", 18);
            g.stop = 1;
            break;
        }
        if (t - t_check >= 100000000ull) {
            t_check = t;
            check_timeouts(t);
        }
    }
    return print_results();
}
