/*
 * test_conn.c - conn and tls: bounded line reading, bytes, pause, output
 * to a slow reader, EOF, idle timeouts, freeing from inside callbacks, and
 * TLS (STARTTLS plaintext injection, implicit TLS, certificate and host
 * name verification) over socketpairs, both ends in one event loop.
 *
 * The certificates are made at run time with the OpenSSL API in a mkdtemp
 * directory and removed at the end: nothing secret is committed.
 */
#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include <openssl/err.h>
#include <openssl/evp.h>
#include <openssl/pem.h>
#include <openssl/x509.h>
#include <openssl/x509v3.h>

#include "check.h"
#include "mailcore/conn.h"
#include "mailcore/ev.h"
#include "mailcore/tls.h"
#include "../../libmailcore/src/conn_internal.h"

#define S(x) x, sizeof(x) - 1
#define NEVENTS (CONN_EV_CLOSED + 1)

static struct ev_loop *loop;

/* The loop. */

static int deadline_hit;

static void on_deadline(struct ev_loop *ev, void *arg)
{
    (void)arg;
    deadline_hit = 1;
    ev_stop(ev);
}

static void on_stop(struct ev_loop *ev, void *arg)
{
    (void)arg;
    ev_stop(ev);
}

/* Run until a callback calls ev_stop(); a deadline of ms fails the test. */
static void run_for(uint64_t ms)
{
    struct ev_timer *t = ev_timer_add(loop, ms, on_deadline, NULL);

    deadline_hit = 0;
    ev_run(loop);
    if (!deadline_hit)
        ev_timer_cancel(loop, t);
    CHECK(!deadline_hit);
}

static int settle_turns;

static void on_settle(struct ev_loop *ev, void *arg)
{
    (void)arg;
    if (--settle_turns <= 0)
        ev_stop(ev);
    else
        ev_timer_add(ev, 0, on_settle, NULL);
}

static void begin(void)
{
    loop = ev_new();
    CHECK(loop != NULL);
}

/* A few more turns, so that hooks left by freed conns run, then free. */
static void end(void)
{
    settle_turns = 3;
    ev_timer_add(loop, 0, on_settle, NULL);
    ev_run(loop);
    ev_free(loop);
    loop = NULL;
}

static void pair(int sv[2], int type)
{
    CHECK_INT(socketpair(AF_UNIX, type | SOCK_CLOEXEC, 0, sv), 0);
}

static void set_nonblock(int fd)
{
    CHECK(fcntl(fd, F_SETFL, fcntl(fd, F_GETFL) | O_NONBLOCK) == 0);
}

static void show(const char *label, const char *p, size_t n)
{
    fprintf(stderr, "    %s (%zu): \"", label, n);
    for (size_t i = 0; i < n && i < 300; i++) {
        unsigned char ch = (unsigned char)p[i];
        if (ch >= 32 && ch < 127)
            fputc(ch, stderr);
        else
            fprintf(stderr, "\\x%02x", ch);
    }
    fprintf(stderr, "\"\n");
}

/* One end of a connection that records what its callback saw. */

struct side {
    struct conn *c;
    char got[8192]; /* lines as read, "<TOOLONG>" for those, each then '|' */
    size_t ngot;
    int n[NEVENTS];
    int order[64];
    size_t norder;
    int free_on; /* conn_free() on this event; -1 never */
    int stop_on; /* ev_stop() on this event; -1 never */
    int paused;  /* stop reading lines (the owner paused) */
    enum conn_result last;
    size_t max_in_alloc;
    char err[256];
    void (*on_line)(struct side *s, const char *line, size_t len);
    void (*on_event)(struct side *s, enum conn_event e);
    void (*reader)(struct side *s); /* instead of reading lines */
    void *test;
};

static void side_init(struct side *s)
{
    memset(s, 0, sizeof *s);
    s->free_on = -1;
    s->stop_on = -1;
}

static void got_add(struct side *s, const char *p, size_t n)
{
    if (n > sizeof s->got - s->ngot)
        n = sizeof s->got - s->ngot;
    memcpy(s->got + s->ngot, p, n);
    s->ngot += n;
}

static void read_lines(struct side *s)
{
    const char *line;
    size_t len;

    while (s->c != NULL && !s->paused) {
        s->last = conn_read_line(s->c, &line, &len);
        if (s->last == CONN_TOOLONG) {
            got_add(s, S("<TOOLONG>|"));
            continue;
        }
        if (s->last != CONN_OK)
            break;
        CHECK(len > 0 && line[len - 1] == '\n');
        got_add(s, line, len);
        got_add(s, S("|"));
        if (s->on_line != NULL)
            s->on_line(s, line, len);
    }
}

static void record_cb(struct conn *c, enum conn_event e, void *arg)
{
    struct side *s = arg;

    CHECK(c == s->c);
    s->n[e]++;
    if (s->norder < sizeof s->order / sizeof s->order[0])
        s->order[s->norder++] = (int)e;
    if (e == CONN_EV_READ) {
        size_t a = conn_in_alloc(c);
        if (a > s->max_in_alloc)
            s->max_in_alloc = a;
        if (s->reader != NULL)
            s->reader(s);
        else
            read_lines(s);
    }
    if (e == CONN_EV_ERROR)
        snprintf(s->err, sizeof s->err, "%s", conn_error(c));
    if (s->c != NULL && s->on_event != NULL)
        s->on_event(s, e);
    if (s->c != NULL && (int)e == s->free_on) {
        conn_free(s->c);
        s->c = NULL;
        /* Keep the loop going a little: a stale event or hook would show. */
        ev_timer_add(loop, 20, on_stop, NULL);
    }
    if ((int)e == s->stop_on)
        ev_stop(loop);
}

static void side_open(struct side *s, int fd, size_t line_max)
{
    s->c = conn_new(loop, fd, line_max, record_cb, s);
    CHECK(s->c != NULL);
}

static void side_free(struct side *s)
{
    conn_free(s->c);
    s->c = NULL;
}

static int got_is(const struct side *s, const char *want, size_t wantlen)
{
    if (s->ngot == wantlen && memcmp(s->got, want, wantlen) == 0)
        return 1;
    show("got", s->got, s->ngot);
    show("want", want, wantlen);
    return 0;
}

/* Feeds bytes to a raw peer fd, chunk bytes per loop turn. */

struct feeder {
    int fd;
    const char *data;
    size_t len, off;
    size_t chunk;    /* 0: as much as the socket takes */
    uint64_t every;  /* ms between chunks */
    int close_after; /* shutdown(SHUT_WR) once all is written */
    struct ev_timer *t;
};

static void feed(struct ev_loop *ev, void *arg)
{
    struct feeder *f = arg;
    size_t n = f->len - f->off;
    ssize_t w;

    f->t = NULL;
    if (f->chunk > 0 && n > f->chunk)
        n = f->chunk;
    if (n > 0) {
        w = write(f->fd, f->data + f->off, n);
        if (w > 0)
            f->off += (size_t)w;
        else
            CHECK(w < 0 && errno == EAGAIN);
    }
    if (f->off < f->len) {
        f->t = ev_timer_add(ev, f->every, feed, f);
        return;
    }
    if (f->close_after)
        CHECK_INT(shutdown(f->fd, SHUT_WR), 0);
}

static void feeder_start(struct feeder *f, int fd, const char *data, size_t len, size_t chunk)
{
    memset(f, 0, sizeof *f);
    f->fd = fd;
    f->data = data;
    f->len = len;
    f->chunk = chunk;
    f->close_after = 1;
    set_nonblock(fd);
    f->t = ev_timer_add(loop, 0, feed, f);
}

static void feeder_stop(struct feeder *f)
{
    if (f->t != NULL)
        ev_timer_cancel(loop, f->t);
    f->t = NULL;
}

/* Lines. */

static const struct line_case {
    const char *name;
    const char *in;
    size_t inlen;
    size_t chunk; /* bytes per loop turn; 0: all in one write */
    size_t line_max;
    const char *want;
    size_t wantlen;
} line_cases[] = {
    {"crlf and bare lf keep their terminator", S("A\r\nBB\nC\r\n"), 0, 1000,
     S("A\r\n|BB\n|C\r\n|")},
    {"a line split across many writes", S("MAIL FROM:<a@example.org>\r\nRCPT TO:<b@x.org>\r\n"), 1,
     1000, S("MAIL FROM:<a@example.org>\r\n|RCPT TO:<b@x.org>\r\n|")},
    {"crlf split between two writes", S("ab\r\ncd\r\n"), 3, 1000, S("ab\r\n|cd\r\n|")},
    {"nul bytes inside lines", S("a\0b\r\n\0\n"), 0, 1000, S("a\0b\r\n|\0\n|")},
    {"a bare cr is not a terminator", S("a\rb\r\n"), 0, 1000, S("a\rb\r\n|")},
    {"empty lines", S("\r\n\n"), 0, 1000, S("\r\n|\n|")},
    {"a line of exactly line_max fits, one more does not", S("abc\r\nabcd\r\nok\n"), 0, 5,
     S("abc\r\n|<TOOLONG>|ok\n|")},
    {"too long with its lf in the same read", S("123456\nab\n"), 0, 4, S("<TOOLONG>|ab\n|")},
    {"too long across writes, then the next line", S("0123456789abcdef\r\nnext\r\n"), 3, 8,
     S("<TOOLONG>|next\r\n|")},
    {"two too-long lines are two reports", S("aaaaaaaaaa\nbbbbbbbbbb\nc\n"), 2, 5,
     S("<TOOLONG>|<TOOLONG>|c\n|")},
    {"an incomplete last line is not a line", S("a\r\nxyz"), 0, 1000, S("a\r\n|")},
};

static void test_conn_line_table_terminators_nul_splits_and_bounds(void)
{
    for (size_t i = 0; i < sizeof line_cases / sizeof line_cases[0]; i++) {
        const struct line_case *lc = &line_cases[i];
        struct side s;
        struct feeder f;
        int sv[2];

        begin();
        pair(sv, SOCK_STREAM);
        side_init(&s);
        s.stop_on = CONN_EV_EOF;
        side_open(&s, sv[0], lc->line_max);
        feeder_start(&f, sv[1], lc->in, lc->inlen, lc->chunk);
        run_for(3000);
        if (!got_is(&s, lc->want, lc->wantlen)) {
            fprintf(stderr, "    case: %s\n", lc->name);
            CHECK(0);
        }
        CHECK_INT(s.n[CONN_EV_EOF], 1);
        CHECK_INT(s.n[CONN_EV_ERROR], 0);
        feeder_stop(&f);
        side_free(&s);
        close(sv[1]);
        end();
    }
}

static void test_conn_toolong_line_discarded_and_reported_once(void)
{
    size_t big = 1 << 20;
    char *data = malloc(big + 16);
    struct side s;
    struct feeder f;
    int sv[2];

    memset(data, 'x', big);
    memcpy(data + big, "\r\nNEXT\r\n", 8);
    begin();
    pair(sv, SOCK_STREAM);
    side_init(&s);
    s.stop_on = CONN_EV_EOF;
    side_open(&s, sv[0], 1000);
    feeder_start(&f, sv[1], data, big + 8, 65536);
    run_for(10000);
    CHECK(got_is(&s, S("<TOOLONG>|NEXT\r\n|")));
    /* The megabyte never cost more than the input buffer. */
    CHECK(s.max_in_alloc > 0);
    CHECK(s.max_in_alloc <= 16384);
    CHECK_INT(s.n[CONN_EV_ERROR], 0);
    feeder_stop(&f);
    side_free(&s);
    close(sv[1]);
    end();
    free(data);
}

/* "BDAT n" switches to reading n bytes, then back to lines. */
static void bdat_reader(struct side *s)
{
    size_t *want = s->test;
    const char *p;
    size_t n;

    while (s->c != NULL) {
        if (*want > 0) {
            if (conn_read_bytes(s->c, *want, &p, &n) != CONN_OK)
                return;
            CHECK(n > 0 && n <= *want);
            got_add(s, p, n);
            *want -= n;
            if (*want == 0)
                got_add(s, S("|"));
            continue;
        }
        if (conn_read_line(s->c, &p, &n) != CONN_OK)
            return;
        got_add(s, p, n);
        got_add(s, S("|"));
        if (n > 5 && memcmp(p, "BDAT ", 5) == 0)
            *want = (size_t)atoi(p + 5);
    }
}

static void test_conn_read_bytes_mixes_with_lines(void)
{
    static const char in[] = "BDAT 12\r\nhello\r\nworldQUIT\r\n";
    size_t want = 0;
    struct side s;
    struct feeder f;
    int sv[2];

    begin();
    pair(sv, SOCK_STREAM);
    side_init(&s);
    s.stop_on = CONN_EV_EOF;
    s.reader = bdat_reader;
    s.test = &want;
    side_open(&s, sv[0], 1000);
    feeder_start(&f, sv[1], in, sizeof in - 1, 2);
    run_for(3000);
    CHECK(got_is(&s, S("BDAT 12\r\n|hello\r\nworld|QUIT\r\n|")));
    CHECK_INT(want, 0);
    feeder_stop(&f);
    side_free(&s);
    close(sv[1]);
    end();
}

/* A DATA-like reader: peeks, takes up to the end marker, leaves the rest. */
static void data_reader(struct side *s)
{
    int *in_data = s->test;
    const char *p, *end;
    size_t n;

    while (s->c != NULL) {
        if (!*in_data) {
            if (conn_read_line(s->c, &p, &n) != CONN_OK)
                return;
            got_add(s, p, n);
            got_add(s, S("|"));
            *in_data = n == 6 && memcmp(p, "DATA\r\n", 6) == 0;
            continue;
        }
        if (conn_peek(s->c, &p, &n) != CONN_OK)
            return;
        CHECK_INT(n, conn_in_pending(s->c));
        end = memmem(p, n, "\r\n.\r\n", 5);
        if (end == NULL) {
            /* Keep a possible start of the marker for the next look. */
            size_t take = n > 4 ? n - 4 : 0;
            got_add(s, p, take);
            conn_consume(s->c, take);
            return;
        }
        got_add(s, p, (size_t)(end - p) + 2);
        got_add(s, S("<END>|"));
        conn_consume(s->c, (size_t)(end - p) + 5);
        *in_data = 0;
    }
}

static void test_conn_peek_and_consume_leave_pipelined_input(void)
{
    static const char in[] = "DATA\r\nSubject: x\r\n\r\nbody\r\n.\r\nQUIT\r\n";
    int in_data = 0;
    struct side s;
    struct feeder f;
    int sv[2];

    begin();
    pair(sv, SOCK_STREAM);
    side_init(&s);
    s.stop_on = CONN_EV_EOF;
    s.reader = data_reader;
    s.test = &in_data;
    side_open(&s, sv[0], 1000);
    feeder_start(&f, sv[1], in, sizeof in - 1, 3);
    run_for(3000);
    CHECK(got_is(&s, S("DATA\r\n|Subject: x\r\n\r\nbody\r\n<END>|QUIT\r\n|")));
    feeder_stop(&f);
    side_free(&s);
    close(sv[1]);
    end();
}

/* Pause after "A"; while paused more input arrives; resume later. */

struct pause_test {
    int peer;
    int reads_at_pause, reads_at_resume;
    size_t pending_at_resume;
    size_t ctl_len;
};

static void pause_write_c(struct ev_loop *ev, void *arg)
{
    struct side *s = arg;
    struct pause_test *t = s->test;

    (void)ev;
    CHECK_INT(write(t->peer, "C\r\n", 3), 3);
}

static void pause_resume(struct ev_loop *ev, void *arg)
{
    struct side *s = arg;
    struct pause_test *t = s->test;

    (void)ev;
    t->reads_at_resume = s->n[CONN_EV_READ];
    t->pending_at_resume = conn_in_pending(s->c);
    s->paused = 0;
    conn_resume(s->c);
}

static void pause_on_line(struct side *s, const char *line, size_t len)
{
    struct pause_test *t = s->test;

    if (len == 3 && line[0] == 'A') {
        conn_pause(s->c);
        s->paused = 1;
        t->reads_at_pause = s->n[CONN_EV_READ];
        ev_timer_add(loop, 10, pause_write_c, s);
        ev_timer_add(loop, 60, pause_resume, s);
    }
    if (len == 3 && line[0] == 'C')
        ev_stop(loop);
}

static void test_conn_pause_leaves_input_in_socket_until_resume(void)
{
    struct pause_test t = {0};
    struct side s;
    int sv[2];

    begin();
    pair(sv, SOCK_STREAM);
    side_init(&s);
    s.on_line = pause_on_line;
    s.test = &t;
    t.peer = sv[1];
    side_open(&s, sv[0], 1000);
    CHECK_INT(write(sv[1], "A\r\nB\r\n", 6), 6);
    run_for(3000);
    CHECK(got_is(&s, S("A\r\n|B\r\n|C\r\n|")));
    /* No CONN_EV_READ while paused, and "C" stayed in the socket. */
    CHECK_INT(t.reads_at_resume, t.reads_at_pause);
    CHECK_INT(t.pending_at_resume, 3);
    side_free(&s);
    close(sv[1]);
    end();
}

static void resume_now(struct ev_loop *ev, void *arg)
{
    struct side *s = arg;

    (void)ev;
    s->paused = 0;
    conn_resume(s->c);
}

static void pause_on_a_stop_on_b(struct side *s, const char *line, size_t len)
{
    (void)len;
    if (line[0] == 'A') {
        conn_pause(s->c);
        s->paused = 1;
        ev_timer_add(loop, 20, resume_now, s);
    }
    if (line[0] == 'B')
        ev_stop(loop);
}

static void test_conn_resume_redelivers_buffered_input(void)
{
    struct side s;
    int sv[2];

    begin();
    pair(sv, SOCK_STREAM);
    side_init(&s);
    s.on_line = pause_on_a_stop_on_b;
    side_open(&s, sv[0], 1000);
    /* Both lines arrive in one read: "B" waits in our buffer, and no new
     * input will come to announce it. */
    CHECK_INT(write(sv[1], "A\r\nB\r\n", 6), 6);
    run_for(3000);
    CHECK(got_is(&s, S("A\r\n|B\r\n|")));
    CHECK_INT(s.n[CONN_EV_READ], 2);
    side_free(&s);
    close(sv[1]);
    end();
}

/* Output. */

struct slow_reader {
    int fd;
    size_t total, want;
    int bad;
    struct ev_timer *t;
};

static unsigned char pattern(size_t i)
{
    return (unsigned char)(i % 251);
}

static void slow_read(struct ev_loop *ev, void *arg)
{
    struct slow_reader *r = arg;
    unsigned char buf[16384];
    ssize_t n = read(r->fd, buf, sizeof buf);

    r->t = NULL;
    for (ssize_t i = 0; i < n; i++)
        if (buf[i] != pattern(r->total + (size_t)i))
            r->bad++;
    if (n > 0)
        r->total += (size_t)n;
    if (r->total >= r->want) {
        ev_stop(ev);
        return;
    }
    r->t = ev_timer_add(ev, 1, slow_read, r);
}

static void test_conn_large_output_reaches_slow_reader_then_drained(void)
{
    size_t total = 4 << 20, chunk = 65536;
    unsigned char *buf = malloc(chunk);
    struct slow_reader r = {0};
    struct side s;
    int sv[2];

    begin();
    pair(sv, SOCK_STREAM);
    side_init(&s);
    side_open(&s, sv[0], 1000);
    for (size_t off = 0; off < total; off += chunk) {
        for (size_t i = 0; i < chunk; i++)
            buf[i] = pattern(off + i);
        CHECK_INT(conn_write(s.c, buf, chunk), 0);
    }
    CHECK_INT(conn_out_pending(s.c), total);
    /* Output progress to a slow reader is not idleness: the transfer takes
     * several times the timeout. */
    conn_set_idle_timeout(s.c, 100);
    r.fd = sv[1];
    r.want = total;
    set_nonblock(sv[1]);
    r.t = ev_timer_add(loop, 1, slow_read, &r);
    run_for(20000);
    if (r.t != NULL)
        ev_timer_cancel(loop, r.t);
    CHECK_INT(r.total, total);
    CHECK_INT(r.bad, 0);
    CHECK_INT(s.n[CONN_EV_TIMEOUT], 0);
    CHECK_INT(s.n[CONN_EV_ERROR], 0);
    /* The last bytes may be read before CONN_EV_DRAINED is told. */
    s.stop_on = CONN_EV_DRAINED;
    if (s.n[CONN_EV_DRAINED] == 0)
        run_for(2000);
    CHECK_INT(s.n[CONN_EV_DRAINED], 1);
    CHECK_INT(conn_out_pending(s.c), 0);
    CHECK_INT(conn_out_alloc(s.c), 0);
    side_free(&s);
    close(sv[1]);
    end();
    free(buf);
}

static void test_conn_write_fails_beyond_out_cap(void)
{
    size_t mb = 1 << 20;
    char *buf = calloc(1, mb);
    struct side s;
    int sv[2];

    begin();
    pair(sv, SOCK_STREAM);
    side_init(&s);
    side_open(&s, sv[0], 1000);
    for (size_t i = 0; i < CONN_OUT_MAX / mb; i++)
        CHECK_INT(conn_write(s.c, buf, mb), 0);
    CHECK_INT(conn_out_pending(s.c), CONN_OUT_MAX);
    errno = 0;
    CHECK_INT(conn_write(s.c, "x", 1), -1);
    CHECK_INT(errno, ENOBUFS);
    CHECK_INT(conn_printf(s.c, "%s", "x"), -1);
    CHECK_INT(conn_out_alloc(s.c), CONN_OUT_MAX);
    side_free(&s);
    close(sv[1]);
    end();
    free(buf);
}

static void reply_per_line(struct side *s, const char *line, size_t len)
{
    (void)len;
    CHECK_INT(conn_printf(s->c, "250 %c\r\n", line[0]), 0);
}

struct packet {
    char buf[256];
    ssize_t len;
};

static void read_packet(struct ev_loop *ev, int fd, int events, void *arg)
{
    struct packet *p = arg;

    (void)events;
    p->len = read(fd, p->buf, sizeof p->buf);
    ev_fd_del(ev, fd);
    ev_stop(ev);
}

static void test_conn_pipelined_replies_leave_in_one_write(void)
{
    struct packet p = {{0}, -1};
    struct side s;
    int sv[2];

    /* SOCK_SEQPACKET keeps write boundaries: one read, one write. */
    begin();
    pair(sv, SOCK_SEQPACKET);
    side_init(&s);
    s.on_line = reply_per_line;
    side_open(&s, sv[0], 1000);
    CHECK_INT(write(sv[1], "A\r\nB\r\nC\r\n", 9), 9);
    CHECK_INT(ev_fd_add(loop, sv[1], EV_READ, read_packet, &p), 0);
    run_for(3000);
    CHECK_INT(p.len, 21);
    CHECK(p.len == 21 && memcmp(p.buf, "250 A\r\n250 B\r\n250 C\r\n", 21) == 0);
    side_free(&s);
    close(sv[1]);
    end();
}

static void eof_reads_tail(struct side *s, enum conn_event e)
{
    const char *p;
    size_t n;

    if (e != CONN_EV_EOF)
        return;
    CHECK_INT(conn_read_line(s->c, &p, &n), CONN_END);
    CHECK_INT(conn_read_bytes(s->c, 100, &p, &n), CONN_OK);
    CHECK(n == 3 && memcmp(p, "xyz", 3) == 0);
    CHECK_INT(conn_read_bytes(s->c, 100, &p, &n), CONN_END);
}

static void test_conn_eof_follows_buffered_input(void)
{
    struct side s;
    int sv[2];

    begin();
    pair(sv, SOCK_STREAM);
    side_init(&s);
    s.stop_on = CONN_EV_EOF;
    s.on_event = eof_reads_tail;
    side_open(&s, sv[0], 1000);
    CHECK_INT(write(sv[1], "A\r\nxyz", 6), 6);
    CHECK_INT(shutdown(sv[1], SHUT_WR), 0);
    run_for(3000);
    CHECK(got_is(&s, S("A\r\n|")));
    CHECK_INT(s.n[CONN_EV_EOF], 1);
    CHECK(s.norder >= 2 && s.order[0] == CONN_EV_READ && s.order[s.norder - 1] == CONN_EV_EOF);
    side_free(&s);
    close(sv[1]);
    end();
}

static void test_conn_buffers_released_when_idle(void)
{
    struct packet p = {{0}, -1};
    struct side s;
    int sv[2];

    begin();
    pair(sv, SOCK_SEQPACKET);
    side_init(&s);
    s.on_line = reply_per_line;
    side_open(&s, sv[0], 1000);
    CHECK_INT(conn_in_alloc(s.c), 0);
    CHECK_INT(conn_out_alloc(s.c), 0);
    CHECK_INT(write(sv[1], "Q\r\n", 3), 3);
    CHECK_INT(ev_fd_add(loop, sv[1], EV_READ, read_packet, &p), 0);
    run_for(3000);
    CHECK_INT(p.len, 7);
    CHECK_INT(conn_in_alloc(s.c), 0);
    CHECK_INT(conn_out_alloc(s.c), 0);
    side_free(&s);
    close(sv[1]);
    end();
}

/* Timeouts. */

struct timing {
    uint64_t start, last_line, timeout_at;
};

static void note_time(struct side *s, enum conn_event e)
{
    struct timing *t = s->test;

    if (e == CONN_EV_READ)
        t->last_line = ev_now_ms(loop); /* conn's clock for input, the turn's start */
    if (e == CONN_EV_TIMEOUT && t->timeout_at == 0)
        t->timeout_at = ev_clock_ms();
}

static void test_conn_idle_timeout_fires_without_input(void)
{
    struct timing t = {0};
    struct side s;
    int sv[2];

    begin();
    pair(sv, SOCK_STREAM);
    side_init(&s);
    s.stop_on = CONN_EV_TIMEOUT;
    s.on_event = note_time;
    s.test = &t;
    side_open(&s, sv[0], 1000);
    t.start = ev_clock_ms();
    conn_set_idle_timeout(s.c, 50);
    run_for(3000);
    CHECK_INT(s.n[CONN_EV_TIMEOUT], 1);
    CHECK(t.timeout_at - t.start >= 50);
    CHECK(t.timeout_at - t.start < 1000);
    side_free(&s);
    close(sv[1]);
    end();
}

static void test_conn_idle_timeout_rearmed_by_input(void)
{
    static const char in[] = "1\r\n2\r\n3\r\n4\r\n5\r\n6\r\n";
    struct timing t = {0};
    struct side s;
    struct feeder f;
    int sv[2];

    begin();
    pair(sv, SOCK_STREAM);
    side_init(&s);
    s.stop_on = CONN_EV_TIMEOUT;
    s.on_event = note_time;
    s.test = &t;
    side_open(&s, sv[0], 1000);
    conn_set_idle_timeout(s.c, 80);
    feeder_start(&f, sv[1], in, sizeof in - 1, 3);
    f.every = 30; /* a line every 30 ms for 180 ms */
    f.close_after = 0;
    t.start = ev_clock_ms();
    run_for(3000);
    CHECK(got_is(&s, S("1\r\n|2\r\n|3\r\n|4\r\n|5\r\n|6\r\n|")));
    CHECK_INT(s.n[CONN_EV_TIMEOUT], 1);
    CHECK(t.timeout_at - t.start >= 150 + 80 - 5);
    CHECK(t.timeout_at - t.last_line >= 80);
    feeder_stop(&f);
    side_free(&s);
    close(sv[1]);
    end();
}

/* Shutdown and freeing. */

static void test_conn_shutdown_flushes_then_closes_from_loop(void)
{
    char buf[64];
    struct side s;
    int sv[2];

    begin();
    pair(sv, SOCK_STREAM);
    side_init(&s);
    s.stop_on = CONN_EV_CLOSED;
    side_open(&s, sv[0], 1000);
    CHECK_INT(conn_write(s.c, "221 bye\r\n", 9), 0);
    conn_shutdown(s.c);
    CHECK_INT(s.n[CONN_EV_CLOSED], 0); /* not from inside conn_shutdown() */
    CHECK_INT(conn_write(s.c, "x", 1), -1);
    run_for(3000);
    CHECK_INT(s.n[CONN_EV_CLOSED], 1);
    CHECK_INT(s.norder, 1);
    CHECK_INT(read(sv[1], buf, sizeof buf), 9);
    CHECK(memcmp(buf, "221 bye\r\n", 9) == 0);
    CHECK_INT(read(sv[1], buf, sizeof buf), 0); /* our write side is closed */
    side_free(&s);
    close(sv[1]);
    end();
}

static void test_conn_write_to_closed_peer_reports_error(void)
{
    struct side s;
    int sv[2];

    begin();
    pair(sv, SOCK_STREAM);
    side_init(&s);
    s.stop_on = CONN_EV_ERROR;
    side_open(&s, sv[0], 1000);
    close(sv[1]);
    CHECK_INT(conn_write(s.c, "250 ok\r\n", 8), 0);
    run_for(3000);
    CHECK_INT(s.n[CONN_EV_ERROR], 1);
    CHECK_STR(s.err, "write: Broken pipe");
    CHECK_INT(conn_write(s.c, "x", 1), -1);
    CHECK_INT(conn_flush(s.c), -1);
    side_free(&s);
    end();
}

static SSL_CTX *server_ctx(void);
static SSL_CTX *client_ctx(const char *ca, int verify);

struct free_case {
    const char *name;
    int event;
    void (*setup)(struct side *s, struct side *peer, int fds[2]);
};

static void free_after_first_line(struct side *s, const char *line, size_t len)
{
    (void)line;
    (void)len;
    CHECK_INT(conn_write(s->c, "250 ok\r\n", 8), 0); /* arms the end-of-turn hook */
    conn_free(s->c);
    s->c = NULL;
    ev_timer_add(loop, 20, on_stop, NULL);
}

static void setup_read(struct side *s, struct side *peer, int fds[2])
{
    (void)peer;
    s->on_line = free_after_first_line;
    CHECK_INT(write(fds[1], "A\r\nB\r\nC\r\n", 9), 9);
}

static void shut_then_free(struct side *s, const char *line, size_t len)
{
    (void)line;
    (void)len;
    conn_shutdown(s->c);
    conn_free(s->c);
    s->c = NULL;
    ev_timer_add(loop, 20, on_stop, NULL);
}

static void setup_read_shutdown(struct side *s, struct side *peer, int fds[2])
{
    (void)peer;
    s->on_line = shut_then_free;
    CHECK_INT(write(fds[1], "QUIT\r\nNOOP\r\n", 12), 12);
}

static void setup_eof(struct side *s, struct side *peer, int fds[2])
{
    (void)s;
    (void)peer;
    CHECK_INT(write(fds[1], "A\r\n", 3), 3);
    CHECK_INT(shutdown(fds[1], SHUT_WR), 0);
}

static void setup_timeout(struct side *s, struct side *peer, int fds[2])
{
    (void)peer;
    (void)fds;
    conn_set_idle_timeout(s->c, 10);
}

static void setup_drained(struct side *s, struct side *peer, int fds[2])
{
    (void)peer;
    (void)fds;
    CHECK_INT(conn_write(s->c, "hello\r\n", 7), 0);
}

static void setup_closed(struct side *s, struct side *peer, int fds[2])
{
    (void)peer;
    (void)fds;
    CHECK_INT(conn_write(s->c, "bye\r\n", 5), 0);
    conn_shutdown(s->c);
}

static void setup_error(struct side *s, struct side *peer, int fds[2])
{
    SSL_CTX *ctx = server_ctx();

    (void)peer;
    CHECK_INT(conn_starttls_server(s->c, ctx), 0);
    SSL_CTX_free(ctx); /* the SSL holds its own reference */
    CHECK_INT(write(fds[1], "EHLO x\r\n", 8), 8);
}

static void setup_tls_done(struct side *s, struct side *peer, int fds[2])
{
    SSL_CTX *sctx = server_ctx(), *cctx = client_ctx(NULL, 0);

    CHECK_INT(conn_starttls_server(s->c, sctx), 0);
    side_open(peer, fds[1], 1000);
    fds[1] = -1; /* the peer conn owns it now */
    CHECK_INT(conn_starttls_client(peer->c, cctx, "localhost"), 0);
    SSL_CTX_free(sctx);
    SSL_CTX_free(cctx);
}

static void send_line_on_tls_done(struct side *s, enum conn_event e)
{
    if (e == CONN_EV_TLS_DONE)
        CHECK_INT(conn_write(s->c, "A\r\nB\r\n", 6), 0);
}

static void setup_tls_read(struct side *s, struct side *peer, int fds[2])
{
    setup_tls_done(s, peer, fds);
    peer->on_event = send_line_on_tls_done;
    s->on_line = free_after_first_line;
}

static const struct free_case free_cases[] = {
    {"READ with more lines buffered and a reply queued", -1, setup_read},
    {"READ right after conn_shutdown", -1, setup_read_shutdown},
    {"READ over TLS", -1, setup_tls_read},
    {"EOF", CONN_EV_EOF, setup_eof},
    {"TIMEOUT", CONN_EV_TIMEOUT, setup_timeout},
    {"DRAINED", CONN_EV_DRAINED, setup_drained},
    {"CLOSED", CONN_EV_CLOSED, setup_closed},
    {"ERROR (handshake with a plaintext peer)", CONN_EV_ERROR, setup_error},
    {"TLS_DONE", CONN_EV_TLS_DONE, setup_tls_done},
};

static void test_conn_free_inside_callback_is_safe_for_every_event(void)
{
    for (size_t i = 0; i < sizeof free_cases / sizeof free_cases[0]; i++) {
        const struct free_case *fc = &free_cases[i];
        struct side s, peer;
        int sv[2];
        int failures = check_failures;

        begin();
        pair(sv, SOCK_STREAM);
        side_init(&s);
        side_init(&peer);
        s.free_on = fc->event;
        side_open(&s, sv[0], 1000);
        fc->setup(&s, &peer, sv);
        run_for(3000);
        CHECK(s.c == NULL);
        side_free(&peer);
        if (sv[1] >= 0)
            close(sv[1]);
        end();
        if (check_failures != failures)
            fprintf(stderr, "    case: %s\n", fc->name);
    }
}

/* Each frees the other: the loser's event in the same epoll batch is stale. */
static void free_other(struct side *s, enum conn_event e)
{
    struct side *other = s->test;

    if (e == CONN_EV_READ && other->c != NULL) {
        conn_free(other->c);
        other->c = NULL;
        ev_timer_add(loop, 20, on_stop, NULL);
    }
}

static void test_conn_free_of_other_conn_inside_callback(void)
{
    struct side a, b;
    int sa[2], sb[2];

    begin();
    pair(sa, SOCK_STREAM);
    pair(sb, SOCK_STREAM);
    side_init(&a);
    side_init(&b);
    a.on_event = b.on_event = free_other;
    a.test = &b;
    b.test = &a;
    side_open(&a, sa[0], 1000);
    side_open(&b, sb[0], 1000);
    CHECK_INT(write(sa[1], "A\r\n", 3), 3);
    CHECK_INT(write(sb[1], "B\r\n", 3), 3);
    run_for(3000);
    CHECK_INT(a.n[CONN_EV_READ] + b.n[CONN_EV_READ], 1);
    CHECK((a.c == NULL) != (b.c == NULL));
    side_free(&a);
    side_free(&b);
    close(sa[1]);
    close(sb[1]);
    end();
}

/* TLS: certificates made now, in a temporary directory. */

static char tmpdir[64];
static char ca_pem[128], ca_key[128], leaf_pem[128], leaf_key[128];
static char self_pem[128], self_key[128], other_pem[128], other_key[128], junk_pem[128];

static int add_ext(X509 *cert, X509 *issuer, int nid, const char *value)
{
    X509V3_CTX v3;
    X509_EXTENSION *ext;

    X509V3_set_ctx_nodb(&v3);
    X509V3_set_ctx(&v3, issuer, cert, NULL, NULL, 0);
    ext = X509V3_EXT_conf_nid(NULL, &v3, nid, value);
    if (ext == NULL)
        return -1;
    X509_add_ext(cert, ext, -1);
    X509_EXTENSION_free(ext);
    return 0;
}

/* issuer NULL: self-signed.  ca: may sign others.  san: a server name. */
static X509 *make_cert(EVP_PKEY *key, const char *cn, X509 *issuer, EVP_PKEY *issuer_key, int ca,
                       int san, long serial)
{
    X509 *x = X509_new();
    X509 *signer;

    CHECK(x != NULL);
    signer = issuer != NULL ? issuer : x;
    X509_set_version(x, 2);
    ASN1_INTEGER_set(X509_get_serialNumber(x), serial);
    X509_gmtime_adj(X509_getm_notBefore(x), -3600);
    X509_gmtime_adj(X509_getm_notAfter(x), 86400);
    X509_set_pubkey(x, key);
    X509_NAME_add_entry_by_txt(X509_get_subject_name(x), "CN", MBSTRING_ASC,
                               (const unsigned char *)cn, -1, -1, 0);
    X509_set_issuer_name(x, X509_get_subject_name(signer));
    CHECK_INT(add_ext(x, signer, NID_basic_constraints, ca ? "critical,CA:TRUE" : "CA:FALSE"), 0);
    CHECK_INT(add_ext(x, signer, NID_subject_key_identifier, "hash"), 0);
    if (issuer != NULL)
        CHECK_INT(add_ext(x, signer, NID_authority_key_identifier, "keyid:always"), 0);
    CHECK_INT(
        add_ext(x, signer, NID_key_usage,
                ca ? "critical,keyCertSign,cRLSign,digitalSignature" : "critical,digitalSignature"),
        0);
    if (san)
        CHECK_INT(add_ext(x, signer, NID_subject_alt_name, "DNS:localhost,IP:127.0.0.1"), 0);
    CHECK(X509_sign(x, issuer_key != NULL ? issuer_key : key, EVP_sha256()) > 0);
    return x;
}

static void write_pem(const char *path, X509 *x, EVP_PKEY *key)
{
    FILE *fp = fopen(path, "w");

    CHECK(fp != NULL);
    if (fp == NULL)
        return;
    if (x != NULL)
        CHECK(PEM_write_X509(fp, x) == 1);
    if (key != NULL)
        CHECK(PEM_write_PrivateKey(fp, key, NULL, NULL, 0, NULL, NULL) == 1);
    CHECK_INT(fclose(fp), 0);
}

static void path(char *out, size_t len, const char *name)
{
    snprintf(out, len, "%s/%s", tmpdir, name);
}

static void make_certs(void)
{
    EVP_PKEY *ca_k = EVP_EC_gen("P-256"), *leaf_k = EVP_EC_gen("P-256");
    EVP_PKEY *self_k = EVP_EC_gen("P-256"), *other_k = EVP_EC_gen("P-256");
    X509 *ca, *leaf, *self, *other;
    FILE *fp;

    snprintf(tmpdir, sizeof tmpdir, "/tmp/test_conn.XXXXXX");
    CHECK(mkdtemp(tmpdir) != NULL);
    path(ca_pem, sizeof ca_pem, "ca.pem");
    path(ca_key, sizeof ca_key, "ca.key");
    path(leaf_pem, sizeof leaf_pem, "leaf.pem");
    path(leaf_key, sizeof leaf_key, "leaf.key");
    path(self_pem, sizeof self_pem, "self.pem");
    path(self_key, sizeof self_key, "self.key");
    path(other_pem, sizeof other_pem, "other.pem");
    path(other_key, sizeof other_key, "other.key");
    path(junk_pem, sizeof junk_pem, "junk.pem");
    CHECK(ca_k && leaf_k && self_k && other_k);
    ca = make_cert(ca_k, "mailcore test CA", NULL, NULL, 1, 0, 1);
    leaf = make_cert(leaf_k, "localhost", ca, ca_k, 0, 1, 2);
    self = make_cert(self_k, "localhost", NULL, NULL, 1, 1, 3);
    other = make_cert(other_k, "some other CA", NULL, NULL, 1, 0, 4);
    write_pem(ca_pem, ca, NULL);
    write_pem(ca_key, NULL, ca_k);
    write_pem(leaf_pem, leaf, NULL);
    write_pem(leaf_key, NULL, leaf_k);
    write_pem(self_pem, self, NULL);
    write_pem(self_key, NULL, self_k);
    write_pem(other_pem, other, NULL);
    write_pem(other_key, NULL, other_k);
    fp = fopen(junk_pem, "w");
    CHECK(fp != NULL);
    if (fp != NULL) {
        fputs("this is not a certificate\n", fp);
        CHECK_INT(fclose(fp), 0);
    }
    X509_free(ca);
    X509_free(leaf);
    X509_free(self);
    X509_free(other);
    EVP_PKEY_free(ca_k);
    EVP_PKEY_free(leaf_k);
    EVP_PKEY_free(self_k);
    EVP_PKEY_free(other_k);
}

static void remove_certs(void)
{
    const char *files[] = {ca_pem,   ca_key,    leaf_pem,  leaf_key, self_pem,
                           self_key, other_pem, other_key, junk_pem};

    for (size_t i = 0; i < sizeof files / sizeof files[0]; i++)
        CHECK_INT(unlink(files[i]), 0);
    CHECK_INT(rmdir(tmpdir), 0);
}

static SSL_CTX *server_ctx_for(const char *cert, const char *key)
{
    char err[512] = "";
    SSL_CTX *ctx = tls_server_ctx(cert, key, err, sizeof err);

    if (ctx == NULL)
        fprintf(stderr, "    tls_server_ctx: %s\n", err);
    CHECK(ctx != NULL);
    return ctx;
}

static SSL_CTX *server_ctx(void)
{
    return server_ctx_for(leaf_pem, leaf_key);
}

static SSL_CTX *client_ctx(const char *ca, int verify)
{
    char err[512] = "";
    SSL_CTX *ctx = tls_client_ctx(ca, verify, err, sizeof err);

    if (ctx == NULL)
        fprintf(stderr, "    tls_client_ctx: %s\n", err);
    CHECK(ctx != NULL);
    return ctx;
}

/* STARTTLS: the client pipelines a line after STARTTLS in the same packet. */

struct starttls_test {
    SSL_CTX *sctx, *cctx;
};

static void starttls_server_line(struct side *s, const char *line, size_t len)
{
    struct starttls_test *t = s->test;

    if (!conn_is_tls(s->c) && len == 10 && memcmp(line, "STARTTLS\r\n", 10) == 0) {
        CHECK_INT(conn_write(s->c, "220 ready\r\n", 11), 0);
        CHECK_INT(conn_starttls_server(s->c, t->sctx), 0);
        CHECK_INT(conn_is_tls(s->c), 0);
    } else if (conn_is_tls(s->c)) {
        CHECK_INT(conn_write(s->c, "250 ok\r\n", 8), 0);
    }
}

static void starttls_client_line(struct side *s, const char *line, size_t len)
{
    struct starttls_test *t = s->test;

    if (len == 11 && memcmp(line, "220 ready\r\n", 11) == 0)
        CHECK_INT(conn_starttls_client(s->c, t->cctx, "localhost"), 0);
    if (len == 8 && memcmp(line, "250 ok\r\n", 8) == 0)
        ev_stop(loop);
}

static void starttls_client_event(struct side *s, enum conn_event e)
{
    if (e == CONN_EV_TLS_DONE)
        CHECK_INT(conn_write(s->c, "HELLO OVER TLS\r\n", 16), 0);
}

static void test_conn_starttls_discards_pipelined_plaintext(void)
{
    struct starttls_test t;
    struct side srv, cli;
    char summary[128];
    int sv[2];

    begin();
    t.sctx = server_ctx();
    t.cctx = client_ctx(ca_pem, 1);
    pair(sv, SOCK_STREAM);
    side_init(&srv);
    side_init(&cli);
    srv.on_line = starttls_server_line;
    srv.test = &t;
    cli.on_line = starttls_client_line;
    cli.on_event = starttls_client_event;
    cli.test = &t;
    side_open(&srv, sv[0], 1000);
    side_open(&cli, sv[1], 1000);
    /* One write: both lines reach the server in one packet. */
    CHECK_INT(conn_write(cli.c, S("STARTTLS\r\nEVIL INJECTED\r\n")), 0);
    run_for(5000);
    CHECK(got_is(&srv, S("STARTTLS\r\n|HELLO OVER TLS\r\n|")));
    CHECK(got_is(&cli, S("220 ready\r\n|250 ok\r\n|")));
    CHECK_INT(conn_tls_discarded(srv.c), 15);
    CHECK_INT(conn_tls_discarded(cli.c), 0);
    CHECK_INT(srv.n[CONN_EV_TLS_DONE], 1);
    CHECK_INT(cli.n[CONN_EV_TLS_DONE], 1);
    CHECK_INT(srv.n[CONN_EV_ERROR] + cli.n[CONN_EV_ERROR], 0);
    CHECK(conn_is_tls(srv.c) && conn_is_tls(cli.c));
    CHECK_HAS(conn_tls_summary(srv.c, summary, sizeof summary), "TLSv1.");
    CHECK_HAS(summary, " with cipher ");
    CHECK_HAS(summary, " bits)");
    CHECK(conn_ssl(srv.c) != NULL);
    side_free(&srv);
    side_free(&cli);
    SSL_CTX_free(t.sctx);
    SSL_CTX_free(t.cctx);
    end();
}

static void test_conn_starttls_plaintext_peer_fails_handshake(void)
{
    SSL_CTX *ctx;
    struct side s;
    int sv[2];

    begin();
    ctx = server_ctx();
    pair(sv, SOCK_STREAM);
    side_init(&s);
    s.stop_on = CONN_EV_ERROR;
    side_open(&s, sv[0], 1000);
    CHECK_INT(conn_starttls_server(s.c, ctx), 0);
    CHECK_INT(write(sv[1], "EVIL INJECTED\r\n", 15), 15);
    run_for(3000);
    CHECK_HAS(s.err, "TLS handshake failed: ");
    CHECK_INT(s.ngot, 0);
    CHECK_INT(s.n[CONN_EV_READ], 0);
    CHECK_INT(conn_starttls_server(s.c, ctx), -1); /* no second chance */
    side_free(&s);
    close(sv[1]);
    SSL_CTX_free(ctx);
    end();
}

/* Implicit TLS, bulk both ways, with pauses that leave records inside
 * OpenSSL while the server is not reading. */

/* 96 lines of 1536 bytes are 9 full TLS records that do not end on a line:
 * each record's tail waits inside OpenSSL while our buffer holds a partial
 * line, and the last one has no later record to make the socket readable. */
#define BULK_LINES 96
#define BULK_LINE 1536
#define BULK_REPLY (1 << 20)

struct bulk_test {
    int lines, bad_lines;
    size_t reply_got;
    int reply_bad;
};

static void bulk_resume(struct ev_loop *ev, void *arg)
{
    struct side *s = arg;

    (void)ev;
    s->paused = 0;
    conn_resume(s->c);
}

static void bulk_server_line(struct side *s, const char *line, size_t len)
{
    struct bulk_test *t = s->test;
    char want[BULK_LINE];

    memset(want, 'a' + t->lines % 26, sizeof want);
    snprintf(want, 8, "%06d", t->lines);
    want[6] = ' ';
    want[BULK_LINE - 2] = '\r';
    want[BULK_LINE - 1] = '\n';
    if (len != BULK_LINE || memcmp(line, want, len) != 0)
        t->bad_lines++;
    t->lines++;
    s->ngot = 0; /* the lines are counted, not kept */
    if (t->lines == BULK_LINES) {
        unsigned char *reply = malloc(BULK_REPLY);
        for (size_t i = 0; i < BULK_REPLY; i++)
            reply[i] = pattern(i);
        CHECK_INT(conn_write(s->c, reply, BULK_REPLY), 0);
        free(reply);
    } else if (t->lines % 7 == 0) {
        conn_pause(s->c);
        s->paused = 1;
        ev_timer_add(loop, 1, bulk_resume, s);
    }
}

static void bulk_client_event(struct side *s, enum conn_event e)
{
    char *all;
    size_t off = 0;

    if (e != CONN_EV_TLS_DONE)
        return;
    all = malloc(BULK_LINES * BULK_LINE);
    for (int i = 0; i < BULK_LINES; i++, off += BULK_LINE) {
        memset(all + off, 'a' + i % 26, BULK_LINE);
        snprintf(all + off, 8, "%06d", i);
        all[off + 6] = ' ';
        all[off + BULK_LINE - 2] = '\r';
        all[off + BULK_LINE - 1] = '\n';
    }
    CHECK_INT(conn_write(s->c, all, off), 0);
    free(all);
}

static void bulk_client_reader(struct side *s)
{
    struct bulk_test *t = s->test;
    const char *p;
    size_t n;

    while (conn_read_bytes(s->c, 100000, &p, &n) == CONN_OK) {
        for (size_t i = 0; i < n; i++)
            if ((unsigned char)p[i] != pattern(t->reply_got + i))
                t->reply_bad++;
        t->reply_got += n;
    }
    if (t->reply_got >= BULK_REPLY)
        ev_stop(loop);
}

static void test_conn_implicit_tls_carries_bulk_both_ways(void)
{
    struct bulk_test t = {0};
    SSL_CTX *sctx, *cctx;
    struct side srv, cli;
    int sv[2];

    begin();
    sctx = server_ctx();
    cctx = client_ctx(ca_pem, 1);
    pair(sv, SOCK_STREAM);
    side_init(&srv);
    side_init(&cli);
    srv.on_line = bulk_server_line;
    srv.test = &t;
    cli.on_event = bulk_client_event;
    cli.reader = bulk_client_reader;
    cli.test = &t;
    side_open(&srv, sv[0], 2048);
    side_open(&cli, sv[1], 2048);
    CHECK_INT(conn_starttls_server(srv.c, sctx), 0);
    CHECK_INT(conn_starttls_client(cli.c, cctx, "localhost"), 0);
    run_for(20000);
    CHECK_INT(t.lines, BULK_LINES);
    CHECK_INT(t.bad_lines, 0);
    CHECK_INT(t.reply_got, BULK_REPLY);
    CHECK_INT(t.reply_bad, 0);
    CHECK_INT(srv.n[CONN_EV_ERROR] + cli.n[CONN_EV_ERROR], 0);
    CHECK_INT(conn_tls_discarded(srv.c), 0);
    CHECK(srv.max_in_alloc <= 16384);
    side_free(&srv);
    side_free(&cli);
    SSL_CTX_free(sctx);
    SSL_CTX_free(cctx);
    end();
}

/* Verification, table-driven: the client's view of the server's cert. */

static const struct verify_case {
    const char *name;
    const char *cert, *key; /* the server's */
    const char *ca;         /* the client trusts */
    int verify;
    const char *host;
    const char *want_err; /* NULL: the handshake succeeds */
} verify_cases[] = {
    {"trusted CA, host name matches", leaf_pem, leaf_key, ca_pem, 1, "localhost", NULL},
    {"trusted CA, IP address matches", leaf_pem, leaf_key, ca_pem, 1, "127.0.0.1", NULL},
    {"self-signed certificate trusted as its own CA", self_pem, self_key, self_pem, 1, "localhost",
     NULL},
    {"issuer not trusted", leaf_pem, leaf_key, other_pem, 1, "localhost",
     "TLS certificate verification failed: unable to get local issuer certificate"},
    {"self-signed and not trusted", self_pem, self_key, other_pem, 1, "localhost",
     "TLS certificate verification failed: self"},
    {"host name mismatch", leaf_pem, leaf_key, ca_pem, 1, "mail.example.org",
     "TLS certificate verification failed: hostname mismatch"},
    {"no verification asked", leaf_pem, leaf_key, other_pem, 0, "mail.example.org", NULL},
};

static void test_conn_tls_client_verification_table(void)
{
    for (size_t i = 0; i < sizeof verify_cases / sizeof verify_cases[0]; i++) {
        const struct verify_case *vc = &verify_cases[i];
        int failures = check_failures;
        SSL_CTX *sctx, *cctx;
        struct side srv, cli;
        int sv[2];

        begin();
        sctx = server_ctx_for(vc->cert, vc->key);
        cctx = client_ctx(vc->ca, vc->verify);
        pair(sv, SOCK_STREAM);
        side_init(&srv);
        side_init(&cli);
        cli.stop_on = vc->want_err ? CONN_EV_ERROR : CONN_EV_TLS_DONE;
        side_open(&srv, sv[0], 1000);
        side_open(&cli, sv[1], 1000);
        CHECK_INT(conn_starttls_server(srv.c, sctx), 0);
        CHECK_INT(conn_starttls_client(cli.c, cctx, vc->host), 0);
        run_for(5000);
        if (vc->want_err != NULL) {
            CHECK_INT(cli.n[CONN_EV_ERROR], 1);
            CHECK_INT(cli.n[CONN_EV_TLS_DONE], 0);
            CHECK_HAS(cli.err, vc->want_err);
        } else {
            CHECK_INT(cli.n[CONN_EV_TLS_DONE], 1);
            CHECK_INT(cli.n[CONN_EV_ERROR], 0);
            CHECK_STR(conn_error(cli.c), "");
        }
        side_free(&srv);
        side_free(&cli);
        SSL_CTX_free(sctx);
        SSL_CTX_free(cctx);
        end();
        if (check_failures != failures)
            fprintf(stderr, "    case: %s (client error \"%s\")\n", vc->name, cli.err);
    }
}

static void bye_on_tls_done(struct side *s, enum conn_event e)
{
    if (e == CONN_EV_TLS_DONE) {
        CHECK_INT(conn_write(s->c, "221 bye\r\n", 9), 0);
        conn_shutdown(s->c);
    }
}

static void test_conn_tls_shutdown_sends_close_notify(void)
{
    SSL_CTX *sctx, *cctx;
    struct side srv, cli;
    int sv[2];

    begin();
    sctx = server_ctx();
    cctx = client_ctx(ca_pem, 1);
    pair(sv, SOCK_STREAM);
    side_init(&srv);
    side_init(&cli);
    srv.on_event = bye_on_tls_done;
    cli.stop_on = CONN_EV_EOF;
    side_open(&srv, sv[0], 1000);
    side_open(&cli, sv[1], 1000);
    CHECK_INT(conn_starttls_server(srv.c, sctx), 0);
    CHECK_INT(conn_starttls_client(cli.c, cctx, "localhost"), 0);
    run_for(5000);
    CHECK(got_is(&cli, S("221 bye\r\n|")));
    CHECK_INT(cli.n[CONN_EV_EOF], 1);
    CHECK_INT(cli.n[CONN_EV_ERROR], 0);
    CHECK_INT(srv.n[CONN_EV_CLOSED], 1);
    CHECK_INT(srv.n[CONN_EV_ERROR], 0);
    CHECK_INT(srv.n[CONN_EV_DRAINED], 0); /* only CLOSED after conn_shutdown() */
    side_free(&srv);
    side_free(&cli);
    SSL_CTX_free(sctx);
    SSL_CTX_free(cctx);
    end();
}

/* tls contexts. */

static void test_tls_server_ctx_reports_file_errors(void)
{
    const struct {
        const char *cert, *key, *want;
    } cases[] = {
        {"/nonexistent/cert.pem", leaf_key,
         "tls_cert_file /nonexistent/cert.pem: No such file or directory"},
        {leaf_pem, "/nonexistent/key.pem",
         "tls_key_file /nonexistent/key.pem: No such file or directory"},
        {junk_pem, leaf_key, "tls_cert_file "},
        {junk_pem, leaf_key, ": no start line"},
        {leaf_pem, junk_pem, "tls_key_file "},
        {leaf_pem, other_key, "does not match tls_cert_file"},
        {leaf_pem, other_key, "key values mismatch"},
    };

    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        char err[512] = "";
        SSL_CTX *ctx = tls_server_ctx(cases[i].cert, cases[i].key, err, sizeof err);

        CHECK(ctx == NULL);
        CHECK_HAS(err, cases[i].want);
        SSL_CTX_free(ctx);
    }
}

static void test_tls_client_ctx_reports_missing_ca_file(void)
{
    char err[512] = "";
    SSL_CTX *ctx = tls_client_ctx("/nonexistent/ca.pem", 1, err, sizeof err);

    CHECK(ctx == NULL);
    CHECK_STR(err, "relay_ca_file /nonexistent/ca.pem: No such file or directory");
    ctx = tls_client_ctx(junk_pem, 1, err, sizeof err);
    CHECK(ctx == NULL);
    CHECK_HAS(err, "relay_ca_file ");
    ctx = tls_client_ctx(NULL, 1, err, sizeof err);
    CHECK(ctx != NULL);
    CHECK(SSL_CTX_get_verify_mode(ctx) & SSL_VERIFY_PEER);
    SSL_CTX_free(ctx);
}

int main(void)
{
    signal(SIGPIPE, SIG_IGN);
    check_current = "make_certs";
    make_certs();
    RUN(test_conn_line_table_terminators_nul_splits_and_bounds);
    RUN(test_conn_toolong_line_discarded_and_reported_once);
    RUN(test_conn_read_bytes_mixes_with_lines);
    RUN(test_conn_peek_and_consume_leave_pipelined_input);
    RUN(test_conn_pause_leaves_input_in_socket_until_resume);
    RUN(test_conn_resume_redelivers_buffered_input);
    RUN(test_conn_large_output_reaches_slow_reader_then_drained);
    RUN(test_conn_write_fails_beyond_out_cap);
    RUN(test_conn_pipelined_replies_leave_in_one_write);
    RUN(test_conn_eof_follows_buffered_input);
    RUN(test_conn_buffers_released_when_idle);
    RUN(test_conn_idle_timeout_fires_without_input);
    RUN(test_conn_idle_timeout_rearmed_by_input);
    RUN(test_conn_shutdown_flushes_then_closes_from_loop);
    RUN(test_conn_write_to_closed_peer_reports_error);
    RUN(test_conn_free_inside_callback_is_safe_for_every_event);
    RUN(test_conn_free_of_other_conn_inside_callback);
    RUN(test_conn_starttls_discards_pipelined_plaintext);
    RUN(test_conn_starttls_plaintext_peer_fails_handshake);
    RUN(test_conn_implicit_tls_carries_bulk_both_ways);
    RUN(test_conn_tls_client_verification_table);
    RUN(test_conn_tls_shutdown_sends_close_notify);
    RUN(test_tls_server_ctx_reports_file_errors);
    RUN(test_tls_client_ctx_reports_missing_ca_file);
    remove_certs();
    return check_done();
}
