/*
 * test_conn_deflate.c - conn_compress(): raw DEFLATE between a conn's
 * buffers and its socket or TLS.  The peer is either a bare socket driven
 * with zlib here (what a client sends and sees, byte for byte) or another
 * conn; both ends run in one event loop over socketpairs.
 *
 * Proves: round trips of many sizes arrive whole (each flush ends in a sync
 * flush), compressed input split at every byte boundary (sync and partial
 * flushes, and input that arrived before compression started) gives the
 * same lines, a decompression bomb is an ordinary too-long line in a
 * bounded buffer, a corrupt stream is an error, compression under TLS, and
 * what a compressed connection costs in memory.
 */
#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>
#include <zlib.h>

#include <openssl/evp.h>
#include <openssl/pem.h>
#include <openssl/x509.h>

#include "check.h"
#include "mailcore/conn.h"
#include "mailcore/ev.h"
#include "mailcore/tls.h"
#include "../../libmailcore/src/conn_internal.h"

#define S(x) x, sizeof(x) - 1
#define NEVENTS (CONN_EV_CLOSED + 1)
#define MEM_BOUND (96 * 1024) /* compression state of one conn, at most */

static struct ev_loop *loop;
static int deadline_hit;

static void on_deadline(struct ev_loop *ev, void *arg)
{
    (void)arg;
    deadline_hit = 1;
    ev_stop(ev);
}

static void run_for(uint64_t ms)
{
    struct ev_timer *t = ev_timer_add(loop, ms, on_deadline, NULL);

    deadline_hit = 0;
    ev_run(loop);
    if (!deadline_hit)
        ev_timer_cancel(loop, t);
    CHECK(!deadline_hit);
}

static void pair(int sv[2])
{
    CHECK_INT(socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv), 0);
}

/* A growing byte string. */
struct bytes {
    unsigned char *p;
    size_t len, cap;
};

static void bytes_add(struct bytes *b, const void *p, size_t n)
{
    if (n == 0)
        return;
    if (b->len + n > b->cap) {
        size_t cap = b->cap ? b->cap : 4096;
        while (cap < b->len + n)
            cap *= 2;
        b->p = realloc(b->p, cap);
        CHECK(b->p != NULL);
        b->cap = cap;
    }
    memcpy(b->p + b->len, p, n);
    b->len += n;
}

static void bytes_free(struct bytes *b)
{
    free(b->p);
    memset(b, 0, sizeof *b);
}

/* Compress in with one deflate() call per piece; flush after the last. */
static void deflate_into(z_stream *z, struct bytes *out, const void *in, size_t len, int flush)
{
    unsigned char buf[16384];

    z->next_in = (Bytef *)in;
    z->avail_in = (uInt)len;
    do {
        z->next_out = buf;
        z->avail_out = sizeof buf;
        CHECK(deflate(z, flush) != Z_STREAM_ERROR);
        bytes_add(out, buf, sizeof buf - z->avail_out);
    } while (z->avail_out == 0);
    CHECK_INT(z->avail_in, 0);
}

static void raw_deflate_init(z_stream *z)
{
    memset(z, 0, sizeof *z);
    CHECK_INT(deflateInit2(z, 6, Z_DEFLATED, -15, 8, Z_DEFAULT_STRATEGY), Z_OK);
}

/* The peer as a bare socket: writes what it is given, inflates what it
 * reads, and stops the loop once it has want bytes. */
struct zpeer {
    int fd;
    z_stream def, inf;
    struct bytes out; /* to write */
    size_t out_off;
    struct bytes got; /* inflated */
    size_t want;
    int inflate_ret;
    int eof;
};

static void zpeer_io(struct ev_loop *ev, int fd, int events, void *arg);

static void zpeer_watch(struct zpeer *p)
{
    (void)ev_fd_mod(loop, p->fd, EV_READ | (p->out_off < p->out.len ? EV_WRITE : 0));
}

static void zpeer_open(struct zpeer *p, int fd)
{
    memset(p, 0, sizeof *p);
    p->fd = fd;
    CHECK(fcntl(fd, F_SETFL, fcntl(fd, F_GETFL) | O_NONBLOCK) == 0);
    raw_deflate_init(&p->def);
    CHECK_INT(inflateInit2(&p->inf, -15), Z_OK);
    p->inflate_ret = Z_OK;
    CHECK_INT(ev_fd_add(loop, fd, EV_READ, zpeer_io, p), 0);
}

static void zpeer_send(struct zpeer *p, const void *data, size_t len, int flush)
{
    deflate_into(&p->def, &p->out, data, len, flush);
    zpeer_watch(p);
}

static void zpeer_send_raw(struct zpeer *p, const void *data, size_t len)
{
    bytes_add(&p->out, data, len);
    zpeer_watch(p);
}

static void zpeer_inflate(struct zpeer *p, const unsigned char *in, size_t len)
{
    unsigned char buf[65536];

    p->inf.next_in = (Bytef *)in;
    p->inf.avail_in = (uInt)len;
    do {
        p->inf.next_out = buf;
        p->inf.avail_out = sizeof buf;
        p->inflate_ret = inflate(&p->inf, Z_SYNC_FLUSH);
        bytes_add(&p->got, buf, sizeof buf - p->inf.avail_out);
    } while (p->inflate_ret == Z_OK && (p->inf.avail_in > 0 || p->inf.avail_out == 0));
}

static void zpeer_io(struct ev_loop *ev, int fd, int events, void *arg)
{
    struct zpeer *p = arg;
    unsigned char buf[65536];
    ssize_t n;

    if (events & EV_WRITE) {
        n = write(fd, p->out.p + p->out_off, p->out.len - p->out_off);
        if (n > 0)
            p->out_off += (size_t)n;
        zpeer_watch(p);
    }
    if (events & EV_READ) {
        while ((n = read(fd, buf, sizeof buf)) > 0)
            zpeer_inflate(p, buf, (size_t)n);
        if (n == 0) {
            p->eof = 1;
            (void)ev_fd_mod(loop, fd, p->out_off < p->out.len ? EV_WRITE : 0);
        }
    }
    if ((p->want > 0 && p->got.len >= p->want) || p->eof)
        ev_stop(ev);
}

static void zpeer_close(struct zpeer *p)
{
    ev_fd_del(loop, p->fd);
    close(p->fd);
    deflateEnd(&p->def);
    inflateEnd(&p->inf);
    bytes_free(&p->out);
    bytes_free(&p->got);
}

/* A conn end: echoes bytes, or records lines ("<TOOLONG>" for those, each
 * then '|'); on the line trigger it writes reply, then conn_compress(dirs);
 * after the trigger, with echo_lines, it answers each line "echo LINE". */
struct side {
    struct conn *c;
    struct bytes got;
    size_t stop_at; /* ev_stop() once got has this many bytes */
    int echo;
    const char *trigger, *reply;
    int dirs, triggered, echo_lines;
    int n[NEVENTS];
    size_t max_in_alloc, max_z_alloc;
    char err[256];
};

static void side_read(struct side *s)
{
    const char *line;
    size_t len;
    enum conn_result r;

    if (s->echo) {
        while (conn_read_bytes(s->c, 1 << 20, &line, &len) == CONN_OK)
            CHECK_INT(conn_write(s->c, line, len), 0);
        return;
    }
    while ((r = conn_read_line(s->c, &line, &len)) != CONN_AGAIN && r != CONN_END) {
        if (r == CONN_TOOLONG) {
            bytes_add(&s->got, S("<TOOLONG>|"));
            continue;
        }
        bytes_add(&s->got, line, len);
        bytes_add(&s->got, S("|"));
        if (s->trigger != NULL && !s->triggered && len == strlen(s->trigger) &&
            memcmp(line, s->trigger, len) == 0) {
            s->triggered = 1;
            if (s->reply != NULL)
                CHECK_INT(conn_write(s->c, s->reply, strlen(s->reply)), 0);
            CHECK_INT(conn_compress(s->c, s->dirs), 0);
        } else if (s->echo_lines && s->triggered) {
            CHECK_INT(conn_write(s->c, S("echo ")), 0);
            CHECK_INT(conn_write(s->c, line, len), 0);
        }
    }
}

static void side_cb(struct conn *c, enum conn_event e, void *arg)
{
    struct side *s = arg;

    CHECK(c == s->c);
    s->n[e]++;
    if (e == CONN_EV_READ)
        side_read(s);
    if (conn_in_alloc(c) > s->max_in_alloc)
        s->max_in_alloc = conn_in_alloc(c);
    if (conn_deflate_alloc(c) > s->max_z_alloc)
        s->max_z_alloc = conn_deflate_alloc(c);
    if (e == CONN_EV_ERROR) {
        snprintf(s->err, sizeof s->err, "%s", conn_error(c));
        ev_stop(loop);
    }
    if (e == CONN_EV_EOF || (s->stop_at > 0 && s->got.len >= s->stop_at))
        ev_stop(loop);
}

static void side_open(struct side *s, int fd, size_t line_max)
{
    memset(s, 0, sizeof *s);
    s->c = conn_new(loop, fd, line_max, side_cb, s);
    CHECK(s->c != NULL);
}

static void side_close(struct side *s)
{
    conn_free(s->c);
    s->c = NULL;
    bytes_free(&s->got);
}

static int got_is(const struct bytes *b, const char *want, size_t len)
{
    if (b->len == len && memcmp(b->p, want, len) == 0)
        return 1;
    fprintf(stderr, "    got (%zu): \"%.*s\"\n    want (%zu): \"%.*s\"\n", b->len,
            (int)(b->len > 300 ? 300 : b->len), (const char *)b->p, len,
            (int)(len > 300 ? 300 : len), want);
    return 0;
}

/* Text and noise, so that both stored and compressed blocks occur. */
static void payload(unsigned char *p, size_t len, unsigned seed)
{
    static const char text[] = "* 17 FETCH (FLAGS (\\Seen) BODY[] {1234}\r\nReceived: from x\r\n";
    uint32_t x = seed * 2654435761u + 1;

    for (size_t i = 0; i < len; i++) {
        x = x * 1103515245u + 12345u;
        p[i] =
            (i / 4096) % 2 ? (unsigned char)(x >> 16) : (unsigned char)text[i % (sizeof text - 1)];
    }
}

/* Round trips: the peer sends N compressed bytes, the conn echoes them and
 * the peer inflates exactly those N bytes, without a byte more from itself:
 * every flush of the conn ends in a sync flush. */
static void test_conn_deflate_round_trips_many_sizes(void)
{
    static const size_t sizes[] = {1,     2,     31,    1000,  4095,  4096,   16383,
                                   16384, 16385, 65535, 65536, 70001, 300000, 1 << 20};

    for (size_t i = 0; i < sizeof sizes / sizeof sizes[0]; i++) {
        size_t n = sizes[i];
        unsigned char *data = malloc(n);
        struct side srv;
        struct zpeer cli;
        int sv[2];

        loop = ev_new();
        pair(sv);
        payload(data, n, (unsigned)i);
        side_open(&srv, sv[0], 1000);
        srv.echo = 1;
        CHECK_INT(conn_compress(srv.c, CONN_COMPRESS_IN | CONN_COMPRESS_OUT), 0);
        CHECK_INT(conn_compressed(srv.c), CONN_COMPRESS_IN | CONN_COMPRESS_OUT);
        zpeer_open(&cli, sv[1]);
        cli.want = n;
        zpeer_send(&cli, data, n, Z_SYNC_FLUSH);
        run_for(20000);
        CHECK_INT(cli.got.len, n);
        CHECK(cli.got.len == n && memcmp(cli.got.p, data, n) == 0);
        CHECK(cli.inflate_ret == Z_OK || cli.inflate_ret == Z_BUF_ERROR);
        CHECK_INT(srv.n[CONN_EV_ERROR], 0);
        CHECK_INT(conn_out_pending(srv.c), 0);
        CHECK(srv.max_in_alloc <= 16384);
        CHECK(srv.max_z_alloc <= MEM_BOUND);
        if (cli.got.len != n)
            fprintf(stderr, "    size %zu\n", n);
        side_close(&srv);
        zpeer_close(&cli);
        ev_free(loop);
        free(data);
    }
}

/* Compressed commands split at every byte boundary. */

static const char script[] = "a1 NOOP\r\na2 SELECT INBOX\r\na3 FETCH 1:* (FLAGS)\r\n"
                             "a4 APPEND INBOX {5+}\r\nhello\r\na5 LOGOUT\r\n";
static const char script_lines[] = "a1 NOOP\r\n|a2 SELECT INBOX\r\n|a3 FETCH 1:* (FLAGS)\r\n|"
                                   "a4 APPEND INBOX {5+}\r\n|hello\r\n|a5 LOGOUT\r\n|";

/* The script compressed a line at a time with the given flush mode. */
static void compress_script(struct bytes *out, int flush)
{
    z_stream z;
    const char *p = script;

    raw_deflate_init(&z);
    while (*p != '\0') {
        const char *lf = strchr(p, '\n');
        deflate_into(&z, out, p, (size_t)(lf - p) + 1, flush);
        p = lf + 1;
    }
    deflateEnd(&z);
}

struct split_feed {
    int fd;
    const unsigned char *p;
    size_t len, off;
    size_t first, step; /* first piece, then pieces of step bytes (0: the rest) */
};

/* Each loop turn, write the next piece. */
static void split_feed(struct ev_loop *ev, void *arg)
{
    struct split_feed *f = arg;
    size_t n = f->len - f->off, piece = f->off == 0 ? f->first : f->step;

    if (piece > 0 && n > piece)
        n = piece;
    CHECK_INT(write(f->fd, f->p + f->off, n), (long long)n);
    f->off += n;
    if (f->off < f->len)
        ev_timer_add(ev, 0, split_feed, f);
}

/* One run: b written in pieces; the conn inflates its input from the
 * start, or (prefix) only once it has read the line "COMPRESS". */
static int run_split(const struct bytes *b, size_t first, size_t step, int prefix)
{
    struct split_feed f = {.p = b->p, .len = b->len, .first = first, .step = step};
    struct side srv;
    struct bytes want = {0};
    int sv[2], ok;

    loop = ev_new();
    pair(sv);
    side_open(&srv, sv[0], 1000);
    if (prefix) {
        srv.trigger = "COMPRESS\r\n";
        srv.dirs = CONN_COMPRESS_IN;
        bytes_add(&want, S("COMPRESS\r\n|"));
    } else {
        CHECK_INT(conn_compress(srv.c, CONN_COMPRESS_IN), 0);
    }
    bytes_add(&want, S(script_lines));
    srv.stop_at = want.len;
    f.fd = sv[1];
    ev_timer_add(loop, 0, split_feed, &f);
    run_for(5000);
    ok = got_is(&srv.got, (const char *)want.p, want.len);
    CHECK_INT(srv.n[CONN_EV_ERROR], 0);
    side_close(&srv);
    close(sv[1]);
    ev_free(loop);
    bytes_free(&want);
    return ok;
}

static void test_conn_deflate_input_split_at_every_byte_boundary(void)
{
    static const int flushes[] = {Z_SYNC_FLUSH, Z_PARTIAL_FLUSH};

    for (size_t fi = 0; fi < 2; fi++) {
        for (int prefix = 0; prefix <= 1; prefix++) {
            struct bytes b = {0};

            if (prefix)
                bytes_add(&b, S("COMPRESS\r\n"));
            compress_script(&b, flushes[fi]);
            for (size_t split = 1; split < b.len; split++) {
                if (!run_split(&b, split, 0, prefix)) {
                    fprintf(stderr, "    flush %d prefix %d split at %zu of %zu\n", flushes[fi],
                            prefix, split, b.len);
                    break;
                }
            }
            /* and every byte in a loop turn of its own */
            if (!run_split(&b, 1, 1, prefix))
                fprintf(stderr, "    flush %d prefix %d byte by byte\n", flushes[fi], prefix);
            bytes_free(&b);
        }
    }
}

/* A decompression bomb: 16 MiB without a line end, about 16 KiB on the
 * wire.  The conn reports one too-long line and reads the next one, its
 * input buffer no bigger than without compression. */
static void test_conn_deflate_bomb_is_a_toolong_line_in_bounded_memory(void)
{
    const size_t big = (size_t)16 << 20;
    unsigned char *zeros = calloc(1, big);
    struct side srv;
    struct zpeer cli;
    int sv[2];

    loop = ev_new();
    pair(sv);
    side_open(&srv, sv[0], 1000);
    CHECK_INT(conn_compress(srv.c, CONN_COMPRESS_IN), 0);
    srv.stop_at = sizeof "<TOOLONG>|ok\r\n|" - 1;
    zpeer_open(&cli, sv[1]);
    zpeer_send(&cli, S("a1 LOGIN "), Z_NO_FLUSH);
    zpeer_send(&cli, zeros, big, Z_NO_FLUSH);
    zpeer_send(&cli, S("\r\nok\r\n"), Z_SYNC_FLUSH);
    CHECK(cli.out.len < 64 * 1024);
    run_for(60000);
    CHECK(got_is(&srv.got, S("<TOOLONG>|ok\r\n|")));
    CHECK_INT(srv.n[CONN_EV_ERROR], 0);
    CHECK(srv.max_in_alloc <= 16384);
    CHECK(srv.max_z_alloc <= MEM_BOUND);
    side_close(&srv);
    zpeer_close(&cli);
    ev_free(loop);
    free(zeros);
}

/* Garbage, or data after the peer ended its stream: CONN_EV_ERROR, after
 * the lines that were good. */
static void test_conn_deflate_corrupt_stream_is_an_error(void)
{
    static const struct {
        const char *name;
        int finish; /* end the stream with Z_FINISH before the junk */
        const char *want_err;
    } cases[] = {
        {"invalid block type", 0, "compressed input: invalid block type"},
        {"bytes after the final block", 1,
         "compressed input: data after the end of the compressed stream"},
    };

    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        struct side srv;
        struct zpeer cli;
        int sv[2];

        loop = ev_new();
        pair(sv);
        side_open(&srv, sv[0], 1000);
        CHECK_INT(conn_compress(srv.c, CONN_COMPRESS_IN | CONN_COMPRESS_OUT), 0);
        zpeer_open(&cli, sv[1]);
        srv.stop_at = sizeof "a1 NOOP\r\n|" - 1;
        zpeer_send(&cli, S("a1 NOOP\r\n"), cases[i].finish ? Z_FINISH : Z_SYNC_FLUSH);
        run_for(5000);
        srv.stop_at = 0;
        zpeer_send_raw(&cli, S("\xff\xff\xff\xff garbage"));
        run_for(5000);
        CHECK(got_is(&srv.got, S("a1 NOOP\r\n|")));
        CHECK_INT(srv.n[CONN_EV_ERROR], 1);
        CHECK_STR(srv.err, cases[i].want_err);
        side_close(&srv);
        zpeer_close(&cli);
        ev_free(loop);
    }
}

/* TLS: a self-signed certificate made now. */

static char tmpdir[64], cert_pem[128], key_pem[128];

static void make_cert(void)
{
    EVP_PKEY *key = EVP_EC_gen("P-256");
    X509 *x = X509_new();
    FILE *fp;

    CHECK(key != NULL && x != NULL);
    snprintf(tmpdir, sizeof tmpdir, "/tmp/test_conn_deflate.XXXXXX");
    CHECK(mkdtemp(tmpdir) != NULL);
    snprintf(cert_pem, sizeof cert_pem, "%s/cert.pem", tmpdir);
    snprintf(key_pem, sizeof key_pem, "%s/key.pem", tmpdir);
    X509_set_version(x, 2);
    ASN1_INTEGER_set(X509_get_serialNumber(x), 1);
    X509_gmtime_adj(X509_getm_notBefore(x), -3600);
    X509_gmtime_adj(X509_getm_notAfter(x), 86400);
    X509_set_pubkey(x, key);
    X509_NAME_add_entry_by_txt(X509_get_subject_name(x), "CN", MBSTRING_ASC,
                               (const unsigned char *)"localhost", -1, -1, 0);
    X509_set_issuer_name(x, X509_get_subject_name(x));
    CHECK(X509_sign(x, key, EVP_sha256()) > 0);
    fp = fopen(cert_pem, "w");
    CHECK(fp != NULL && PEM_write_X509(fp, x) == 1);
    CHECK_INT(fclose(fp), 0);
    fp = fopen(key_pem, "w");
    CHECK(fp != NULL && PEM_write_PrivateKey(fp, key, NULL, NULL, 0, NULL, NULL) == 1);
    CHECK_INT(fclose(fp), 0);
    X509_free(x);
    EVP_PKEY_free(key);
}

static void remove_cert(void)
{
    CHECK_INT(unlink(cert_pem), 0);
    CHECK_INT(unlink(key_pem), 0);
    CHECK_INT(rmdir(tmpdir), 0);
}

#define TLS_LINES 300

static void send_on_tls_done(struct conn *c, enum conn_event e, void *arg)
{
    struct side *s = arg;

    if (e == CONN_EV_TLS_DONE) {
        char line[2100];

        /* The request goes out plain, everything after it compressed. */
        CHECK_INT(conn_write(c, S("COMPRESS\r\n")), 0);
        CHECK_INT(conn_compress(c, CONN_COMPRESS_OUT), 0);
        for (int i = 0; i < TLS_LINES; i++) {
            int n = snprintf(line, sizeof line, "%04d %.*s\r\n", i, (i * 37) % 2000,
                             "The quick brown fox jumps over the lazy dog. " /* repeated */
                             "The quick brown fox jumps over the lazy dog. "
                             "The quick brown fox jumps over the lazy dog. "
                             "The quick brown fox jumps over the lazy dog. "
                             "The quick brown fox jumps over the lazy dog. ");
            CHECK_INT(conn_write(c, line, (size_t)n), 0);
        }
    }
    side_cb(c, e, s);
}

/* Implicit TLS, then the COMPRESS exchange as IMAP does it, conn to conn:
 * 300 lines up, 300 answers down, all compressed inside TLS. */
static void test_conn_deflate_under_tls_both_ways(void)
{
    char err[512] = "";
    SSL_CTX *sctx = tls_server_ctx(cert_pem, key_pem, err, sizeof err);
    SSL_CTX *cctx = tls_client_ctx(NULL, 0, err, sizeof err);
    struct side srv, cli;
    int sv[2];
    size_t lines = 0;

    CHECK(sctx != NULL && cctx != NULL);
    loop = ev_new();
    pair(sv);
    side_open(&srv, sv[0], 4096);
    memset(&cli, 0, sizeof cli);
    cli.c = conn_new(loop, sv[1], 4096, send_on_tls_done, &cli);
    CHECK(cli.c != NULL);
    srv.trigger = "COMPRESS\r\n";
    srv.reply = "OK DEFLATE active\r\n";
    srv.dirs = CONN_COMPRESS_IN | CONN_COMPRESS_OUT;
    srv.echo_lines = 1;
    cli.trigger = "OK DEFLATE active\r\n";
    cli.dirs = CONN_COMPRESS_IN;
    CHECK_INT(conn_starttls_server(srv.c, sctx), 0);
    CHECK_INT(conn_starttls_client(cli.c, cctx, "localhost"), 0);
    /* Stop when the client has every answer: count them as they come. */
    for (int round = 0; round < 200 && lines < TLS_LINES + 1; round++) {
        struct ev_timer *t = ev_timer_add(loop, 50, on_deadline, NULL);

        deadline_hit = 0;
        ev_run(loop);
        if (!deadline_hit)
            ev_timer_cancel(loop, t);
        lines = 0;
        for (size_t i = 0; i < cli.got.len; i++)
            lines += cli.got.p[i] == '|';
        if (cli.n[CONN_EV_ERROR] + srv.n[CONN_EV_ERROR] > 0)
            break;
    }
    CHECK_INT(lines, TLS_LINES + 1);
    CHECK_INT(srv.n[CONN_EV_ERROR], 0);
    CHECK_INT(cli.n[CONN_EV_ERROR], 0);
    CHECK(cli.got.len > 19 && memcmp(cli.got.p, "OK DEFLATE active\r\n|", 20) == 0);
    CHECK(cli.got.len > 20 && memmem(cli.got.p, cli.got.len, "echo 0299 The quick", 19) != NULL);
    CHECK(conn_is_tls(srv.c) && conn_is_tls(cli.c));
    CHECK_INT(conn_compressed(cli.c), CONN_COMPRESS_IN | CONN_COMPRESS_OUT);
    /* Once only, and no TLS after it. */
    CHECK_INT(conn_compress(srv.c, CONN_COMPRESS_IN), -1);
    CHECK_STR(conn_error(srv.c), "compression is already active");
    CHECK_INT(conn_starttls_server(srv.c, sctx), -1);
    CHECK_STR(conn_error(srv.c), "TLS is already active");
    conn_free(srv.c);
    conn_free(cli.c);
    srv.c = cli.c = NULL;
    bytes_free(&srv.got);
    bytes_free(&cli.got);
    ev_free(loop);
    SSL_CTX_free(sctx);
    SSL_CTX_free(cctx);
}

/* Plain: no TLS may follow compression (RFC 4978: TLS first). */
static void test_conn_deflate_refuses_starttls_after_compression(void)
{
    char err[512] = "";
    SSL_CTX *sctx = tls_server_ctx(cert_pem, key_pem, err, sizeof err);
    struct side srv;
    int sv[2];

    loop = ev_new();
    pair(sv);
    side_open(&srv, sv[0], 1000);
    CHECK_INT(conn_compressed(srv.c), 0);
    CHECK_INT(conn_compress(srv.c, CONN_COMPRESS_OUT), 0);
    CHECK_INT(conn_starttls_server(srv.c, sctx), -1);
    CHECK_STR(conn_error(srv.c), "TLS cannot start after compression");
    CHECK_INT(conn_compress(srv.c, CONN_COMPRESS_IN), 0); /* the other direction may */
    side_close(&srv);
    close(sv[1]);
    ev_free(loop);
    SSL_CTX_free(sctx);
}

/* What compression costs a connection: an exchange, then idle. */
static void test_conn_deflate_memory_per_connection(void)
{
    const size_t n = 200000;
    unsigned char *data = malloc(n);
    struct side srv;
    struct zpeer cli;
    int sv[2];

    loop = ev_new();
    pair(sv);
    side_open(&srv, sv[0], 1000);
    srv.echo = 1;
    CHECK_INT(conn_compress(srv.c, CONN_COMPRESS_IN | CONN_COMPRESS_OUT), 0);
    fprintf(stderr, "    compression state before any data: %zu bytes\n",
            conn_deflate_alloc(srv.c));
    payload(data, n, 7);
    zpeer_open(&cli, sv[1]);
    cli.want = n;
    zpeer_send(&cli, data, n, Z_SYNC_FLUSH);
    run_for(20000);
    CHECK_INT(cli.got.len, n);
    /* Idle now: no buffer of any kind, only zlib's two states. */
    CHECK_INT(conn_in_alloc(srv.c), 0);
    CHECK_INT(conn_out_alloc(srv.c), 0);
    CHECK(conn_deflate_alloc(srv.c) <= MEM_BOUND);
    fprintf(stderr, "    compression state of an idle connection: %zu bytes (peak %zu)\n",
            conn_deflate_alloc(srv.c), srv.max_z_alloc);
    side_close(&srv);
    zpeer_close(&cli);
    ev_free(loop);
    free(data);
}

int main(void)
{
    signal(SIGPIPE, SIG_IGN);
    check_current = "make_cert";
    make_cert();
    RUN(test_conn_deflate_round_trips_many_sizes);
    RUN(test_conn_deflate_input_split_at_every_byte_boundary);
    RUN(test_conn_deflate_bomb_is_a_toolong_line_in_bounded_memory);
    RUN(test_conn_deflate_corrupt_stream_is_an_error);
    RUN(test_conn_deflate_under_tls_both_ways);
    RUN(test_conn_deflate_refuses_starttls_after_compression);
    RUN(test_conn_deflate_memory_per_connection);
    remove_cert();
    return check_done();
}
