/*
 * test_smtp_client.c - the relay client against a scripted fake SMTP server
 * in a forked child on a loopback port, plain and TLS.
 *
 * The fake server answers by its script and records what the client sent:
 * every line and the DATA bytes in one file, each recv() in another (so a
 * test can prove that pipelined commands arrived in one write), with
 * "[TLS]" / "[TLS FAILED]" markers where a handshake ended.  After its
 * script it answers QUIT with 221 and records the rest until EOF.
 *
 * Certificates (a test CA, a server certificate for localhost and
 * 127.0.0.1, one for another name, an untrusted CA) are made at run time
 * with the OpenSSL API in a mkdtemp directory and removed at the end.
 *
 * The test process does not ignore SIGPIPE: the client must never raise it.
 */
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <signal.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include <openssl/err.h>
#include <openssl/evp.h>
#include <openssl/pem.h>
#include <openssl/x509.h>
#include <openssl/x509v3.h>

#include "check.h"
#include "mailcore/smtp_client.h"
#include "mailcore/tls.h"
#include "../../libmailcore/src/smtp_client_internal.h"

#define S(x) x, sizeof(x) - 1

static char tmpdir[64];
static char ca_pem[128], ca_key[128], leaf_pem[128], leaf_key[128];
static char wrong_pem[128], wrong_key[128], other_pem[128], other_key[128];

static long long mono_ms(void)
{
    struct timespec ts;

    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (long long)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

/* Certificates. */

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

/* issuer NULL: self-signed CA.  san NULL: none. */
static X509 *make_cert(EVP_PKEY *key, const char *cn, X509 *issuer, EVP_PKEY *issuer_key,
                       const char *san, long serial)
{
    X509 *x = X509_new();
    X509 *signer = issuer != NULL ? issuer : x;
    int ca = issuer == NULL;

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
    if (!ca)
        CHECK_INT(add_ext(x, signer, NID_authority_key_identifier, "keyid:always"), 0);
    CHECK_INT(
        add_ext(x, signer, NID_key_usage,
                ca ? "critical,keyCertSign,cRLSign,digitalSignature" : "critical,digitalSignature"),
        0);
    if (san != NULL)
        CHECK_INT(add_ext(x, signer, NID_subject_alt_name, san), 0);
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
    EVP_PKEY *wrong_k = EVP_EC_gen("P-256"), *other_k = EVP_EC_gen("P-256");
    X509 *ca, *leaf, *wrong, *other;

    snprintf(tmpdir, sizeof tmpdir, "/tmp/test_smtp_client.XXXXXX");
    CHECK(mkdtemp(tmpdir) != NULL);
    path(ca_pem, sizeof ca_pem, "ca.pem");
    path(ca_key, sizeof ca_key, "ca.key");
    path(leaf_pem, sizeof leaf_pem, "leaf.pem");
    path(leaf_key, sizeof leaf_key, "leaf.key");
    path(wrong_pem, sizeof wrong_pem, "wrong.pem");
    path(wrong_key, sizeof wrong_key, "wrong.key");
    path(other_pem, sizeof other_pem, "other.pem");
    path(other_key, sizeof other_key, "other.key");
    CHECK(ca_k && leaf_k && wrong_k && other_k);
    ca = make_cert(ca_k, "mailcore test CA", NULL, NULL, NULL, 1);
    leaf = make_cert(leaf_k, "localhost", ca, ca_k, "DNS:localhost,IP:127.0.0.1", 2);
    wrong = make_cert(wrong_k, "relay.example.org", ca, ca_k, "DNS:relay.example.org", 3);
    other = make_cert(other_k, "some other CA", NULL, NULL, NULL, 4);
    write_pem(ca_pem, ca, NULL);
    write_pem(ca_key, NULL, ca_k);
    write_pem(leaf_pem, leaf, NULL);
    write_pem(leaf_key, NULL, leaf_k);
    write_pem(wrong_pem, wrong, NULL);
    write_pem(wrong_key, NULL, wrong_k);
    write_pem(other_pem, other, NULL);
    write_pem(other_key, NULL, other_k);
    X509_free(ca);
    X509_free(leaf);
    X509_free(wrong);
    X509_free(other);
    EVP_PKEY_free(ca_k);
    EVP_PKEY_free(leaf_k);
    EVP_PKEY_free(wrong_k);
    EVP_PKEY_free(other_k);
}

static void remove_certs(void)
{
    const char *files[] = {ca_pem,    ca_key,    leaf_pem,  leaf_key,
                           wrong_pem, wrong_key, other_pem, other_key};

    for (size_t i = 0; i < sizeof files / sizeof files[0]; i++)
        CHECK_INT(unlink(files[i]), 0);
    CHECK_INT(rmdir(tmpdir), 0);
}

/* The fake server (runs in the child). */

struct fake {
    int fd;
    SSL *ssl;
    SSL_CTX *ctx;
    const char *cert, *key;
    char buf[1 << 16];
    size_t off, len;
    FILE *rec, *chunks;
};

/* Bytes into f->buf; 0 at EOF or error, or after ms of silence. */
static size_t fake_fill(struct fake *f, int ms)
{
    struct pollfd p = {.fd = f->fd, .events = POLLIN};
    ssize_t r;

    if (f->off > 0) {
        memmove(f->buf, f->buf + f->off, f->len);
        f->off = 0;
    }
    if (f->len == sizeof f->buf)
        return 0;
    if ((f->ssl == NULL || SSL_pending(f->ssl) == 0) && poll(&p, 1, ms) != 1)
        return 0;
    if (f->ssl != NULL)
        r = SSL_read(f->ssl, f->buf + f->len, (int)(sizeof f->buf - f->len));
    else
        r = recv(f->fd, f->buf + f->len, sizeof f->buf - f->len, 0);
    if (r <= 0)
        return 0;
    fwrite(f->buf + f->len, 1, (size_t)r, f->chunks);
    fputc('\x1e', f->chunks);
    f->len += (size_t)r;
    return (size_t)r;
}

/* The next line, recorded; NULL at EOF. */
static const char *fake_line(struct fake *f, size_t *n)
{
    for (;;) {
        char *start = f->buf + f->off, *lf = memchr(start, '\n', f->len);

        if (lf != NULL) {
            *n = (size_t)(lf - start) + 1;
            f->off += *n;
            f->len -= *n;
            fwrite(start, 1, *n, f->rec);
            return start;
        }
        if (fake_fill(f, 5000) == 0)
            return NULL;
    }
}

static void fake_send(struct fake *f, const char *text)
{
    char out[8192];
    int n = snprintf(out, sizeof out, "%s\r\n", text);

    if (f->ssl != NULL)
        (void)SSL_write(f->ssl, out, n);
    else
        (void)send(f->fd, out, (size_t)n, MSG_NOSIGNAL);
}

static int fake_tls(struct fake *f)
{
    char err[256];

    f->len = 0; /* plaintext before the handshake is never read as TLS */
    f->off = 0;
    if (f->ctx == NULL)
        f->ctx = tls_server_ctx(f->cert, f->key, err, sizeof err);
    if (f->ctx == NULL)
        return -1;
    f->ssl = SSL_new(f->ctx);
    SSL_set_fd(f->ssl, f->fd);
    if (SSL_accept(f->ssl) != 1) {
        SSL_free(f->ssl);
        f->ssl = NULL;
        fputs("[TLS FAILED]\n", f->rec);
        return -1;
    }
    fputs("[TLS]\n", f->rec);
    return 0;
}

/*
 * Script steps:
 *	"S<text>"  send text and CRLF ("\r\n" inside makes several lines)
 *	"R"        read one line
 *	"D"        read the message up to its "." line
 *	"T"        TLS handshake (a failure ends the script)
 *	"W<ms>"    wait, or less if the client hangs up
 *	"X<n>"     send n bytes of 'x' without a line end
 *	"C"        close now
 */
static void fake_run(struct fake *f, const char *const *script)
{
    const char *line;
    size_t n;

    for (; *script != NULL; script++) {
        const char *s = *script;

        switch (s[0]) {
        case 'S':
            fake_send(f, s + 1);
            break;
        case 'R':
            if (fake_line(f, &n) == NULL)
                return;
            break;
        case 'D':
            while ((line = fake_line(f, &n)) != NULL && !(n == 3 && memcmp(line, ".\r\n", 3) == 0))
                ;
            break;
        case 'T':
            if (fake_tls(f) < 0)
                return;
            break;
        case 'W': {
            struct pollfd p = {.fd = f->fd, .events = POLLIN};
            (void)poll(&p, 1, atoi(s + 1));
            break;
        }
        case 'X': {
            size_t len = (size_t)atoi(s + 1);
            char *x = malloc(len);
            memset(x, 'x', len);
            (void)send(f->fd, x, len, MSG_NOSIGNAL);
            free(x);
            break;
        }
        case 'C':
            return;
        }
    }
    /* The rest: QUIT gets its 221; everything is recorded until EOF. */
    while ((line = fake_line(f, &n)) != NULL) {
        if (n >= 4 && strncmp(line, "QUIT", 4) == 0)
            fake_send(f, "221 2.0.0 Bye");
        else
            fake_send(f, "500 5.5.2 unexpected");
    }
}

struct srv {
    pid_t pid;
    int port;
    char rec_path[160], chunks_path[160];
    char rec[1 << 21], chunks[1 << 21]; /* what the child recorded */
    size_t reclen, chunkslen;
};

static struct srv srv; /* one at a time */

static void srv_start_tls(const char *const *script, const char *cert, const char *key)
{
    static int seq;
    struct sockaddr_in sin = {.sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
    socklen_t slen = sizeof sin;
    int lfd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);

    memset(&srv, 0, sizeof srv);
    CHECK(lfd >= 0);
    CHECK_INT(bind(lfd, (struct sockaddr *)&sin, sizeof sin), 0);
    CHECK_INT(listen(lfd, 4), 0);
    CHECK_INT(getsockname(lfd, (struct sockaddr *)&sin, &slen), 0);
    srv.port = ntohs(sin.sin_port);
    seq++;
    snprintf(srv.rec_path, sizeof srv.rec_path, "%s/rec.%d", tmpdir, seq);
    snprintf(srv.chunks_path, sizeof srv.chunks_path, "%s/chunks.%d", tmpdir, seq);
    fflush(stderr);
    srv.pid = fork();
    CHECK(srv.pid >= 0);
    if (srv.pid == 0) {
        static struct fake f;
        struct pollfd p = {.fd = lfd, .events = POLLIN};

        signal(SIGPIPE, SIG_IGN);
        alarm(20);
        f.cert = cert;
        f.key = key;
        f.rec = fopen(srv.rec_path, "w");
        f.chunks = fopen(srv.chunks_path, "w");
        if (f.rec == NULL || f.chunks == NULL)
            _exit(2);
        if (poll(&p, 1, 10000) == 1 && (f.fd = accept(lfd, NULL, NULL)) >= 0) {
            int one = 1;
            (void)setsockopt(f.fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
            fake_run(&f, script);
            if (f.ssl != NULL) {
                SSL_shutdown(f.ssl);
                SSL_free(f.ssl);
            }
            close(f.fd);
        }
        fclose(f.rec);
        fclose(f.chunks);
        _exit(0);
    }
    close(lfd);
}

static void srv_start(const char *const *script)
{
    srv_start_tls(script, leaf_pem, leaf_key);
}

static size_t slurp(const char *p, char *buf, size_t size)
{
    FILE *fp = fopen(p, "r");
    size_t n = 0;

    CHECK(fp != NULL);
    if (fp != NULL) {
        n = fread(buf, 1, size - 1, fp);
        fclose(fp);
    }
    buf[n] = '\0';
    unlink(p);
    return n;
}

/* Wait for the child; its records land in srv.rec and srv.chunks. */
static void srv_end(void)
{
    int status = 0;

    CHECK(waitpid(srv.pid, &status, 0) == srv.pid);
    CHECK(WIFEXITED(status) && WEXITSTATUS(status) == 0);
    srv.reclen = slurp(srv.rec_path, srv.rec, sizeof srv.rec);
    srv.chunkslen = slurp(srv.chunks_path, srv.chunks, sizeof srv.chunks);
}

/* The client's side. */

struct transcript {
    char buf[1 << 16];
    size_t len;
};

static struct transcript tr;

static void trace_cb(void *arg, const char *dir, const char *line)
{
    struct transcript *t = arg;
    int n = snprintf(t->buf + t->len, sizeof t->buf - t->len, "%s %s\n", dir, line);

    if (n > 0 && (size_t)n < sizeof t->buf - t->len)
        t->len += (size_t)n;
}

static void cfg_init(struct smtp_client_cfg *cfg)
{
    memset(cfg, 0, sizeof *cfg);
    memset(&tr, 0, sizeof tr);
    cfg->host = "127.0.0.1";
    cfg->port = srv.port;
    cfg->helo = "client.test";
    cfg->timeout_ms = 5000;
    cfg->trace = trace_cb;
    cfg->trace_arg = &tr;
}

/* The message as an unlinked temporary file. */
static int msg_fd(const char *msg, size_t len)
{
    char p[160];
    int fd;

    snprintf(p, sizeof p, "%s/msg.XXXXXX", tmpdir);
    fd = mkstemp(p);
    CHECK(fd >= 0);
    unlink(p);
    CHECK_INT(write(fd, msg, len), (long long)len);
    /* The client reads with pread: the offset must not matter. */
    CHECK(lseek(fd, 3, SEEK_SET) == 3);
    return fd;
}

static int deliver(struct smtp_client *c, const char *sender, const char *const *rcpts, size_t n,
                   const char *msg, struct smtp_client_error *rerr, struct smtp_client_error *err)
{
    int fd = msg_fd(msg, strlen(msg));
    int r = smtp_client_send(c, sender, rcpts, n, fd, strlen(msg), rerr, err);

    close(fd);
    return r;
}

static void show_on_failure(int before)
{
    if (check_failures != before) {
        fprintf(stderr, "    transcript:\n%s", tr.buf);
        fprintf(stderr, "    server recorded:\n%s\n", srv.rec);
    }
}

static int count(const char *hay, const char *needle)
{
    int n = 0;

    for (const char *p = hay; (p = strstr(p, needle)) != NULL; p += strlen(needle))
        n++;
    return n;
}

#define GREET "S220 fake.test ESMTP"
#define EHLO_PIPE "S250-fake.test\r\n250-PIPELINING\r\n250-SIZE 1000000\r\n250 8BITMIME"
#define EHLO_PLAIN "S250-fake.test\r\n250 8BITMIME"
#define EHLO_TLS "S250-fake.test\r\n250-PIPELINING\r\n250-STARTTLS\r\n250 8BITMIME"

static const char *const rcpts2[] = {"b@example.net", "c@example.net"};

/* The encoder, table-driven, every split point. */

static const struct dot_case {
    const char *in;
    const char *want;
} dot_cases[] = {
    {"a\r\nb\r\n", "a\r\nb\r\n.\r\n"},
    {"a\nb\n", "a\r\nb\r\n.\r\n"},
    {"no end", "no end\r\n.\r\n"},
    {"", ".\r\n"},
    {".\n..x\r\n", "..\r\n...x\r\n.\r\n"},
    {"x\r\n.\r\nafter\r\n", "x\r\n..\r\nafter\r\n.\r\n"},
    {"a\rb", "a\r\nb\r\n.\r\n"},
    {"a\r", "a\r\n.\r\n"},
    {"\r.", "\r\n..\r\n.\r\n"},
    {"a\r\r\nb", "a\r\n\r\nb\r\n.\r\n"},
    {"a\n\n.\n", "a\r\n\r\n..\r\n.\r\n"},
    {"mid.dot\n", "mid.dot\r\n.\r\n"},
};

static size_t dot_run(const char *in, size_t n, size_t split, size_t outcap, int stuff, char *out)
{
    struct smtp_dot d;
    size_t o = 0, off = 0;

    smtp_dot_init(&d, stuff);
    while (off < n) {
        size_t end = off < split ? split : n, outlen = 0;
        size_t cap = outcap < 4096 - o ? outcap : 4096 - o;

        off += smtp_dot_encode(&d, in + off, end - off, out + o, cap, &outlen);
        o += outlen;
    }
    o += smtp_dot_finish(&d, out + o);
    return o;
}

static void test_smtp_client_dot_encoder_table_at_every_split(void)
{
    char out[4096];

    for (size_t i = 0; i < sizeof dot_cases / sizeof dot_cases[0]; i++) {
        const struct dot_case *dc = &dot_cases[i];
        size_t n = strlen(dc->in), want = strlen(dc->want);

        for (size_t split = 0; split <= n; split++) {
            size_t o = dot_run(dc->in, n, split, sizeof out, 1, out);
            if (o != want || memcmp(out, dc->want, want) != 0) {
                fprintf(stderr, "    case %zu split %zu: got \"%.*s\"\n", i, split, (int)o, out);
                CHECK(0);
            }
        }
        /* The smallest output room: one input byte at a time. */
        CHECK_INT(dot_run(dc->in, n, 0, SMTP_DOT_EXPAND, 1, out), want);
        CHECK(memcmp(out, dc->want, want) == 0);
    }
    /* Measuring: CRLFs count, doubled dots and the final dot do not. */
    CHECK_INT(dot_run(S(".a\nb"), 0, sizeof out, 0, out), 7);
    CHECK(memcmp(out, ".a\r\nb\r\n", 7) == 0);
}

/* Plain delivery. */

static void test_smtp_client_pipelining_sends_envelope_in_one_write(void)
{
    static const char *const script[] = {GREET,
                                         "R",
                                         EHLO_PIPE,
                                         "R",
                                         "R",
                                         "R",
                                         "R",
                                         "S250 2.1.0 Ok",
                                         "S250 2.1.5 Ok",
                                         "S250 2.1.5 Ok",
                                         "S354 go",
                                         "D",
                                         "S250 2.0.0 Ok: queued as 4711",
                                         NULL};
    struct smtp_client_error err, rerr[2];
    struct smtp_client_cfg cfg;
    struct smtp_client *c;
    int before = check_failures;

    srv_start(script);
    cfg_init(&cfg);
    c = smtp_client_open(&cfg, &err);
    CHECK(c != NULL);
    CHECK_INT(err.status, SMTP_CLIENT_OK);
    if (c != NULL) {
        CHECK_INT(deliver(c, "a@example.org", rcpts2, 2, "Subject: x\n\nhello\n", rerr, &err), 0);
        CHECK_INT(err.status, SMTP_CLIENT_OK);
        CHECK_INT(err.code, 250);
        CHECK_STR(err.enhanced, "2.0.0");
        CHECK_HAS(err.text, "queued as 4711");
        CHECK_INT(rerr[0].status, SMTP_CLIENT_OK);
        CHECK_INT(rerr[1].status, SMTP_CLIENT_OK);
        CHECK_INT(smtp_client_tls(c), 0);
        CHECK_STR(smtp_client_verify_result(c), "");
        CHECK(smtp_client_alive(c));
        {
            char want[64];
            snprintf(want, sizeof want, "127.0.0.1[127.0.0.1]:%d", srv.port);
            CHECK_STR(smtp_client_peer(c), want);
        }
    }
    smtp_client_close(c);
    srv_end();
    /* MAIL, both RCPTs and DATA arrived in one recv(). */
    CHECK_HAS(srv.chunks, "\x1e"
                          "MAIL FROM:<a@example.org> SIZE=21\r\n"
                          "RCPT TO:<b@example.net>\r\nRCPT TO:<c@example.net>\r\nDATA\r\n\x1e");
    CHECK_HAS(srv.rec, "EHLO client.test\r\n");
    CHECK_HAS(srv.rec, "DATA\r\nSubject: x\r\n\r\nhello\r\n.\r\nQUIT\r\n");
    show_on_failure(before);
}

static void test_smtp_client_without_pipelining_waits_for_each_reply(void)
{
    static const char *const script[] = {GREET,     "R",       EHLO_PLAIN, "R",       "S250 Ok",
                                         "R",       "S250 Ok", "R",        "S250 Ok", "R",
                                         "S354 go", "D",       "S250 Ok",  NULL};
    struct smtp_client_error err, rerr[2];
    struct smtp_client_cfg cfg;
    struct smtp_client *c;
    int before = check_failures;

    srv_start(script);
    cfg_init(&cfg);
    c = smtp_client_open(&cfg, &err);
    CHECK(c != NULL);
    if (c != NULL)
        CHECK_INT(deliver(c, "", rcpts2, 2, "hi\r\n", rerr, &err), 0);
    smtp_client_close(c);
    srv_end();
    /* Each command in its own recv(), in order; no SIZE= without SIZE. */
    CHECK_HAS(srv.chunks, "\x1eMAIL FROM:<>\r\n\x1eRCPT TO:<b@example.net>\r\n\x1e"
                          "RCPT TO:<c@example.net>\r\n\x1e"
                          "DATA\r\n\x1e");
    show_on_failure(before);
}

static void test_smtp_client_dot_stuffs_and_normalises_line_ends(void)
{
    static const char *const script[] = {GREET,     "R",       EHLO_PIPE, "R", "R",       "R",
                                         "S250 Ok", "S250 Ok", "S354 go", "D", "S250 Ok", NULL};
    static const char msg[] = "Subject: dots\n\n.\n..two\r\nbare\rcr\nx. y\n.\r\nend";
    struct smtp_client_error err, rerr[1];
    struct smtp_client_cfg cfg;
    struct smtp_client *c;
    int before = check_failures;
    const char *rc1[] = {"b@example.net"};

    srv_start(script);
    cfg_init(&cfg);
    c = smtp_client_open(&cfg, &err);
    CHECK(c != NULL);
    if (c != NULL)
        CHECK_INT(deliver(c, "a@example.org", rc1, 1, msg, rerr, &err), 0);
    smtp_client_close(c);
    srv_end();
    CHECK_HAS(srv.rec, "DATA\r\nSubject: dots\r\n\r\n..\r\n...two\r\nbare\r\ncr\r\nx. y\r\n"
                       "..\r\nend\r\n.\r\nQUIT\r\n");
    /* SIZE= is the size as sent without the added dots. */
    CHECK_HAS(srv.rec, "MAIL FROM:<a@example.org> SIZE=51\r\n");
    show_on_failure(before);
}

/* A message bigger than the client's buffers, with lines that straddle
 * chunk boundaries, arrives intact. */
static void test_smtp_client_streams_large_message_intact(void)
{
    static const char *const script[] = {GREET,     "R",       EHLO_PIPE, "R", "R",       "R",
                                         "S250 Ok", "S250 Ok", "S354 go", "D", "S250 Ok", NULL};
    size_t lines = 30000, len = 0;
    char *msg = malloc(lines * 40), *want = malloc(lines * 40 + 8);
    size_t wlen = 0;
    struct smtp_client_error err, rerr[1];
    struct smtp_client_cfg cfg;
    struct smtp_client *c;
    const char *rc1[] = {"b@example.net"};
    int before = check_failures;

    for (size_t i = 0; i < lines; i++) {
        int n = snprintf(msg + len, 40, "%s%06zu line\n", i % 7 == 0 ? "." : "", i);
        len += (size_t)n;
        if (i % 7 == 0)
            want[wlen++] = '.';
        memcpy(want + wlen, msg + len - (size_t)n, (size_t)n - 1);
        wlen += (size_t)n - 1;
        memcpy(want + wlen, "\r\n", 2);
        wlen += 2;
    }
    msg[len] = '\0';
    memcpy(want + wlen, ".\r\nQUIT\r\n", 10);
    srv_start(script);
    cfg_init(&cfg);
    c = smtp_client_open(&cfg, &err);
    CHECK(c != NULL);
    if (c != NULL)
        CHECK_INT(deliver(c, "a@example.org", rc1, 1, msg, rerr, &err), 0);
    smtp_client_close(c);
    srv_end();
    {
        const char *body = strstr(srv.rec, "DATA\r\n");
        CHECK(body != NULL);
        if (body != NULL)
            CHECK_STR(body + 6, want);
    }
    free(msg);
    free(want);
    show_on_failure(before);
}

/* TLS. */

static void chain_cb(void *arg, const char *line)
{
    struct transcript *t = arg;
    int n = snprintf(t->buf + t->len, sizeof t->buf - t->len, "%s\n", line);

    if (n > 0 && (size_t)n < sizeof t->buf - t->len)
        t->len += (size_t)n;
}

static void test_smtp_client_starttls_verified_with_ca_file(void)
{
    static const char *const script[] = {
        GREET, "R", EHLO_TLS,  "R",       "S220 2.0.0 ready", "T", "R",       EHLO_PIPE, "R",
        "R",   "R", "S250 Ok", "S250 Ok", "S354 go",          "D", "S250 Ok", NULL};
    struct smtp_client_error err, rerr[1];
    struct smtp_client_cfg cfg;
    struct smtp_client *c;
    struct transcript chain = {.len = 0};
    const char *rc1[] = {"b@example.net"};
    int before = check_failures;

    srv_start(script);
    cfg_init(&cfg);
    cfg.host = "localhost";
    cfg.ca_file = ca_pem;
    c = smtp_client_open(&cfg, &err);
    CHECK(c != NULL);
    if (c != NULL) {
        CHECK_INT(smtp_client_tls(c), 1);
        CHECK_HAS(smtp_client_tls_summary(c), "TLSv1.");
        CHECK_HAS(smtp_client_tls_summary(c), " with cipher ");
        CHECK_STR(smtp_client_verify_result(c), "ok");
        smtp_client_chain(c, chain_cb, &chain);
        CHECK_HAS(chain.buf, "depth 0: subject=CN=localhost issuer=CN=mailcore test CA notAfter=");
        CHECK_HAS(chain.buf, "depth 1: subject=CN=mailcore test CA issuer=CN=mailcore test CA");
        CHECK_INT(deliver(c, "a@example.org", rc1, 1, "hello\n", rerr, &err), 0);
    }
    smtp_client_close(c);
    srv_end();
    CHECK_HAS(srv.rec, "STARTTLS\r\n[TLS]\nEHLO client.test\r\nMAIL FROM:");
    show_on_failure(before);
}

static void test_smtp_client_untrusted_cert_defers_and_sends_nothing_in_clear(void)
{
    static const char *const script[] = {GREET, "R", EHLO_TLS, "R", "S220 2.0.0 ready", "T", NULL};
    struct smtp_client_error err;
    struct smtp_client_cfg cfg;
    struct smtp_client *c;
    char want[160];
    int before = check_failures;

    srv_start(script);
    cfg_init(&cfg);
    cfg.host = "localhost";
    cfg.ca_file = other_pem;
    cfg.user = "user";
    cfg.password = "s3cret";
    c = smtp_client_open(&cfg, &err);
    CHECK(c == NULL);
    smtp_client_close(c);
    srv_end();
    CHECK_INT(err.status, SMTP_CLIENT_TEMP);
    CHECK_INT(err.step, SMTP_CLIENT_STEP_TLS);
    snprintf(want, sizeof want,
             "TLS certificate verification failed: unable to get local issuer certificate "
             "(localhost:%d)",
             srv.port);
    CHECK_STR(err.text, want);
    CHECK_STR(err.setting, "relay_ca_file");
    CHECK_STR(err.enhanced, "4.7.5");
    /* After the failed handshake nothing came, least of all in clear. */
    CHECK_HAS(srv.rec, "STARTTLS\r\n[TLS FAILED]\n");
    {
        const char *after = strstr(srv.rec, "[TLS FAILED]\n");
        CHECK(after != NULL && after[13] == '\0');
    }
    CHECK(strstr(tr.buf, "s3cret") == NULL);
    show_on_failure(before);
}

/* mailctl relay test: the chain of a failed verification is still shown. */
static void test_smtp_client_probe_keeps_chain_of_failed_verification(void)
{
    static const char *const script[] = {GREET, "R", EHLO_TLS, "R", "S220 2.0.0 ready", "T", NULL};
    struct smtp_client_error err;
    struct smtp_client_cfg cfg;
    struct smtp_client *c;
    struct transcript chain = {.len = 0};
    int before = check_failures;

    srv_start(script);
    cfg_init(&cfg);
    cfg.ca_file = other_pem;
    c = smtp_client_probe(&cfg, &err);
    CHECK(c != NULL);
    CHECK_INT(err.status, SMTP_CLIENT_TEMP);
    if (c != NULL) {
        CHECK_INT(smtp_client_alive(c), 0);
        CHECK_INT(smtp_client_tls(c), 0);
        CHECK_STR(smtp_client_verify_result(c), "unable to get local issuer certificate");
        smtp_client_chain(c, chain_cb, &chain);
        CHECK_HAS(chain.buf, "depth 0: subject=CN=localhost issuer=CN=mailcore test CA");
        CHECK_HAS(smtp_client_peer(c), "127.0.0.1[127.0.0.1]:");
    }
    smtp_client_close(c);
    srv_end();
    show_on_failure(before);
}

static void test_smtp_client_host_name_mismatch_defers_with_names(void)
{
    static const char *const script[] = {GREET, "R", EHLO_TLS, "R", "S220 2.0.0 ready", "T", NULL};
    struct smtp_client_error err;
    struct smtp_client_cfg cfg;
    struct smtp_client *c;
    char want[200];
    int before = check_failures;

    srv_start_tls(script, wrong_pem, wrong_key);
    cfg_init(&cfg);
    cfg.host = "localhost";
    cfg.ca_file = ca_pem;
    c = smtp_client_open(&cfg, &err);
    CHECK(c == NULL);
    smtp_client_close(c);
    srv_end();
    CHECK_INT(err.status, SMTP_CLIENT_TEMP);
    snprintf(want, sizeof want,
             "TLS certificate verification failed: hostname mismatch, the certificate is for "
             "relay.example.org (localhost:%d)",
             srv.port);
    CHECK_STR(err.text, want);
    CHECK_STR(err.setting, "mailserver_host");
    CHECK(strstr(srv.rec, "[TLS FAILED]\n") != NULL);
    show_on_failure(before);
}

static void test_smtp_client_ip_literal_verified_against_ip_san(void)
{
    static const char *const script[] = {GREET, "R", EHLO_TLS,  "R", "S220 2.0.0 ready",
                                         "T",   "R", EHLO_PIPE, NULL};
    struct smtp_client_error err;
    struct smtp_client_cfg cfg;
    struct smtp_client *c;
    int before = check_failures;

    srv_start(script);
    cfg_init(&cfg); /* 127.0.0.1 */
    cfg.ca_file = ca_pem;
    c = smtp_client_open(&cfg, &err);
    CHECK(c != NULL);
    if (c != NULL)
        CHECK_INT(smtp_client_tls(c), 1);
    smtp_client_close(c);
    srv_end();
    show_on_failure(before);
}

static void test_smtp_client_disable_starttls_stays_in_clear(void)
{
    static const char *const script[] = {GREET,     "R",       EHLO_TLS,  "R", "R",       "R",
                                         "S250 Ok", "S250 Ok", "S354 go", "D", "S250 Ok", NULL};
    struct smtp_client_error err, rerr[1];
    struct smtp_client_cfg cfg;
    struct smtp_client *c;
    const char *rc1[] = {"b@example.net"};
    int before = check_failures;

    srv_start(script);
    cfg_init(&cfg);
    cfg.disable_starttls = 1;
    c = smtp_client_open(&cfg, &err);
    CHECK(c != NULL);
    if (c != NULL) {
        CHECK_INT(smtp_client_tls(c), 0);
        CHECK_INT(deliver(c, "a@example.org", rc1, 1, "x\n", rerr, &err), 0);
    }
    smtp_client_close(c);
    srv_end();
    CHECK(strstr(srv.rec, "STARTTLS") == NULL);
    CHECK(strstr(srv.rec, "[TLS") == NULL);
    CHECK_HAS(tr.buf, "** no TLS: disable_starttls = yes\n");
    show_on_failure(before);
}

static void test_smtp_client_starttls_refused_never_continues_in_clear(void)
{
    static const char *const script[] = {GREET, "R", EHLO_TLS, "R", "S454 4.7.0 TLS not available",
                                         NULL};
    struct smtp_client_error err;
    struct smtp_client_cfg cfg;
    struct smtp_client *c;
    int before = check_failures;

    srv_start(script);
    cfg_init(&cfg);
    c = smtp_client_open(&cfg, &err);
    CHECK(c == NULL);
    srv_end();
    CHECK_INT(err.status, SMTP_CLIENT_TEMP);
    CHECK_INT(err.step, SMTP_CLIENT_STEP_STARTTLS);
    CHECK_INT(err.code, 454);
    CHECK_HAS(err.text, "said: 454 4.7.0 TLS not available (in reply to STARTTLS)");
    /* Not even QUIT after STARTTLS failed. */
    CHECK(strstr(srv.rec, "STARTTLS\r\n") != NULL);
    CHECK(strstr(strstr(srv.rec, "STARTTLS\r\n") + 10, "\n") == NULL);
    show_on_failure(before);
}

/* Plaintext the relay sends after "220 ready" must not be read as if it
 * came over TLS (STARTTLS response injection). */
static void test_smtp_client_discards_plaintext_injected_after_starttls_reply(void)
{
    static const char *const script[] = {
        GREET, "R", EHLO_TLS,  "R", "S220 2.0.0 ready\r\n250-fake.test\r\n250 AUTH PLAIN",
        "T",   "R", EHLO_PIPE, NULL};
    struct smtp_client_error err;
    struct smtp_client_cfg cfg;
    struct smtp_client *c;
    int before = check_failures;

    srv_start(script);
    cfg_init(&cfg);
    cfg.host = "localhost";
    cfg.ca_file = ca_pem;
    c = smtp_client_open(&cfg, &err);
    CHECK(c != NULL);
    smtp_client_close(c);
    srv_end();
    CHECK_HAS(tr.buf, "** discarded ");
    CHECK_HAS(srv.rec, "[TLS]\nEHLO client.test\r\nQUIT\r\n");
    show_on_failure(before);
}

static void test_smtp_client_implicit_tls_verified(void)
{
    static const char *const script[] = {"T", GREET,     "R",       EHLO_PIPE, "R",
                                         "R", "R",       "S250 Ok", "S250 Ok", "S354 go",
                                         "D", "S250 Ok", NULL};
    struct smtp_client_error err, rerr[1];
    struct smtp_client_cfg cfg;
    struct smtp_client *c;
    const char *rc1[] = {"b@example.net"};
    int before = check_failures;

    srv_start(script);
    cfg_init(&cfg);
    cfg.host = "localhost";
    cfg.ca_file = ca_pem;
    cfg.implicit_tls = 1;
    c = smtp_client_open(&cfg, &err);
    CHECK(c != NULL);
    if (c != NULL) {
        CHECK_INT(smtp_client_tls(c), 1);
        CHECK_INT(deliver(c, "a@example.org", rc1, 1, "x\n", rerr, &err), 0);
    }
    smtp_client_close(c);
    srv_end();
    CHECK(strncmp(srv.rec, S("[TLS]\nEHLO client.test\r\n")) == 0);
    show_on_failure(before);
}

static void test_smtp_client_implicit_tls_untrusted_defers(void)
{
    static const char *const script[] = {"T", GREET, NULL};
    struct smtp_client_error err;
    struct smtp_client_cfg cfg;
    struct smtp_client *c;
    int before = check_failures;

    srv_start(script);
    cfg_init(&cfg);
    cfg.implicit_tls = 1;
    c = smtp_client_open(&cfg, &err);
    CHECK(c == NULL);
    srv_end();
    CHECK_INT(err.status, SMTP_CLIENT_TEMP);
    CHECK_HAS(err.text, "TLS certificate verification failed: ");
    CHECK_STR(srv.rec, "[TLS FAILED]\n");
    show_on_failure(before);
}

/* AUTH. */

static void test_smtp_client_auth_plain_over_tls(void)
{
    static const char *const script[] = {GREET,
                                         "R",
                                         EHLO_TLS,
                                         "R",
                                         "S220 2.0.0 ready",
                                         "T",
                                         "R",
                                         "S250-fake.test\r\n250-AUTH LOGIN PLAIN\r\n250 PIPELINING",
                                         "R",
                                         "S235 2.7.0 ok",
                                         NULL};
    struct smtp_client_error err;
    struct smtp_client_cfg cfg;
    struct smtp_client *c;
    int before = check_failures;

    srv_start(script);
    cfg_init(&cfg);
    cfg.host = "localhost";
    cfg.ca_file = ca_pem;
    cfg.user = "user@example.org";
    cfg.password = "pa ss";
    c = smtp_client_open(&cfg, &err);
    CHECK(c != NULL);
    if (c != NULL)
        CHECK_STR(smtp_client_auth_mech(c), "PLAIN");
    smtp_client_close(c);
    srv_end();
    /* base64("\0user@example.org\0pa ss") */
    CHECK_HAS(srv.rec,
              "[TLS]\nEHLO client.test\r\nAUTH PLAIN AHVzZXJAZXhhbXBsZS5vcmcAcGEgc3M=\r\n");
    CHECK_HAS(tr.buf, "-> AUTH PLAIN (credentials hidden)\n");
    show_on_failure(before);
}

static void test_smtp_client_auth_login_over_tls(void)
{
    static const char *const script[] = {GREET,
                                         "R",
                                         EHLO_TLS,
                                         "R",
                                         "S220 2.0.0 ready",
                                         "T",
                                         "R",
                                         "S250-fake.test\r\n250 AUTH=LOGIN",
                                         "R",
                                         "S334 VXNlcm5hbWU6",
                                         "R",
                                         "S334 UGFzc3dvcmQ6",
                                         "R",
                                         "S235 2.7.0 ok",
                                         NULL};
    struct smtp_client_error err;
    struct smtp_client_cfg cfg;
    struct smtp_client *c;
    int before = check_failures;

    srv_start(script);
    cfg_init(&cfg);
    cfg.host = "localhost";
    cfg.ca_file = ca_pem;
    cfg.user = "user";
    cfg.password = "secret";
    c = smtp_client_open(&cfg, &err);
    CHECK(c != NULL);
    if (c != NULL)
        CHECK_STR(smtp_client_auth_mech(c), "LOGIN");
    smtp_client_close(c);
    srv_end();
    CHECK_HAS(srv.rec, "AUTH LOGIN\r\ndXNlcg==\r\nc2VjcmV0\r\nQUIT\r\n");
    show_on_failure(before);
}

static void test_smtp_client_auth_rejected_is_temp_naming_the_settings(void)
{
    static const char *const script[] = {GREET,
                                         "R",
                                         EHLO_TLS,
                                         "R",
                                         "S220 2.0.0 ready",
                                         "T",
                                         "R",
                                         "S250-fake.test\r\n250 AUTH PLAIN",
                                         "R",
                                         "S535 5.7.8 Authentication credentials invalid",
                                         NULL};
    struct smtp_client_error err;
    struct smtp_client_cfg cfg;
    struct smtp_client *c;
    int before = check_failures;

    srv_start(script);
    cfg_init(&cfg);
    cfg.ca_file = ca_pem;
    cfg.user = "user";
    cfg.password = "wrong";
    c = smtp_client_open(&cfg, &err);
    CHECK(c == NULL);
    srv_end();
    /* A wrong password must not bounce the queue. */
    CHECK_INT(err.status, SMTP_CLIENT_TEMP);
    CHECK_INT(err.code, 535);
    CHECK_STR(err.enhanced, "5.7.8");
    CHECK_HAS(err.text, "rejected AUTH PLAIN for mailserver_user user: 535 5.7.8 Authentication");
    CHECK_STR(err.setting, "mailserver_user, mailserver_password");
    show_on_failure(before);
}

static void test_smtp_client_auth_without_starttls_refused_before_credentials(void)
{
    static const char *const script[] = {GREET, "R", "S250-fake.test\r\n250 AUTH PLAIN LOGIN",
                                         NULL};
    struct smtp_client_error err;
    struct smtp_client_cfg cfg;
    struct smtp_client *c;
    int before = check_failures;

    srv_start(script);
    cfg_init(&cfg);
    cfg.host = "localhost";
    cfg.user = "user";
    cfg.password = "secret";
    c = smtp_client_open(&cfg, &err);
    CHECK(c == NULL);
    srv_end();
    CHECK_INT(err.status, SMTP_CLIENT_TEMP);
    CHECK_INT(err.step, SMTP_CLIENT_STEP_AUTH);
    CHECK_STR(err.text, "localhost requires AUTH but offers no STARTTLS: credentials are never "
                        "sent in clear (set disable_starttls = yes only on a trusted network)");
    CHECK_STR(err.setting, "disable_starttls");
    CHECK(strstr(srv.rec, "AUTH") == NULL);
    CHECK(strstr(srv.rec, "c2VjcmV0") == NULL);
    show_on_failure(before);
}

static void test_smtp_client_auth_in_clear_when_starttls_disabled(void)
{
    static const char *const script[] = {GREET, "R",       "S250-fake.test\r\n250 AUTH PLAIN",
                                         "R",   "S235 ok", NULL};
    struct smtp_client_error err;
    struct smtp_client_cfg cfg;
    struct smtp_client *c;
    int before = check_failures;

    srv_start(script);
    cfg_init(&cfg);
    cfg.disable_starttls = 1;
    cfg.user = "u";
    cfg.password = "p";
    c = smtp_client_open(&cfg, &err);
    CHECK(c != NULL);
    smtp_client_close(c);
    srv_end();
    CHECK_HAS(srv.rec, "AUTH PLAIN AHUAcA==\r\n");
    show_on_failure(before);
}

/* The transcript of a whole delivery with AUTH has no secret in it. */
static void test_smtp_client_trace_never_shows_the_password(void)
{
    static const char *const plain[] = {GREET,
                                        "R",
                                        EHLO_TLS,
                                        "R",
                                        "S220 2.0.0 ready",
                                        "T",
                                        "R",
                                        "S250-fake.test\r\n250-AUTH PLAIN\r\n250 PIPELINING",
                                        "R",
                                        "S235 2.7.0 ok",
                                        "R",
                                        "R",
                                        "R",
                                        "S250 Ok",
                                        "S250 Ok",
                                        "S354 go",
                                        "D",
                                        "S250 Ok",
                                        NULL};
    static const char *const login[] = {GREET,
                                        "R",
                                        EHLO_TLS,
                                        "R",
                                        "S220 2.0.0 ready",
                                        "T",
                                        "R",
                                        "S250-fake.test\r\n250 AUTH LOGIN",
                                        "R",
                                        "S334 VXNlcm5hbWU6",
                                        "R",
                                        "S334 UGFzc3dvcmQ6",
                                        "R",
                                        "S235 2.7.0 ok",
                                        "R",
                                        "S250 Ok",
                                        "R",
                                        "S250 Ok",
                                        "R",
                                        "S354 go",
                                        "D",
                                        "S250 Ok",
                                        NULL};
    const char *const *scripts[] = {plain, login};
    /* base64 of the password, of "\0u\0P@ssw0rd-xyzzy", and of "\0P@ss..." at
     * each alignment within a longer blob: none may appear. */
    static const char *const secrets[] = {"P@ssw0rd-xyzzy", "UEBzc3cwcmQteHl6enk",
                                          "AHUAUEBzc3cwcmQteHl6enk", "QHNzdzByZC14eXp6eQ",
                                          "c3N3MHJkLXh5enp5"};
    const char *rc1[] = {"b@example.net"};

    for (size_t s = 0; s < 2; s++) {
        struct smtp_client_error err, rerr[1];
        struct smtp_client_cfg cfg;
        struct smtp_client *c;
        int before = check_failures;

        srv_start(scripts[s]);
        cfg_init(&cfg);
        cfg.ca_file = ca_pem;
        cfg.user = "u";
        cfg.password = "P@ssw0rd-xyzzy";
        c = smtp_client_open(&cfg, &err);
        CHECK(c != NULL);
        if (c != NULL)
            CHECK_INT(deliver(c, "a@example.org", rc1, 1, "x\n", rerr, &err), 0);
        smtp_client_close(c);
        srv_end();
        CHECK_HAS(tr.buf, s == 0 ? "-> AUTH PLAIN (credentials hidden)\n"
                                 : "-> AUTH LOGIN\n<- 334 VXNlcm5hbWU6\n-> (credentials hidden)\n");
        CHECK_HAS(tr.buf, "<- 235 2.7.0 ok\n");
        for (size_t i = 0; i < sizeof secrets / sizeof secrets[0]; i++)
            if (strstr(tr.buf, secrets[i]) != NULL) {
                fprintf(stderr, "    secret %s in the transcript\n", secrets[i]);
                CHECK(0);
            }
        /* The server did get it. */
        CHECK(strstr(srv.rec, s == 0 ? "AHUAUEBzc3cwcmQteHl6enk=" : "UEBzc3cwcmQteHl6enk=") !=
              NULL);
        show_on_failure(before);
    }
}

/* Replies. */

static void test_smtp_client_rcpt_4xx_is_temp_others_delivered(void)
{
    static const char *const script[] = {GREET,
                                         "R",
                                         EHLO_PIPE,
                                         "R",
                                         "R",
                                         "R",
                                         "R",
                                         "S250 Ok",
                                         "S450 4.2.0 <b@example.net>: mailbox busy",
                                         "S250 Ok",
                                         "S354 go",
                                         "D",
                                         "S250 2.0.0 Ok: queued",
                                         NULL};
    struct smtp_client_error err, rerr[2];
    struct smtp_client_cfg cfg;
    struct smtp_client *c;
    int before = check_failures;

    srv_start(script);
    cfg_init(&cfg);
    c = smtp_client_open(&cfg, &err);
    CHECK(c != NULL);
    if (c != NULL) {
        CHECK_INT(deliver(c, "a@example.org", rcpts2, 2, "x\n", rerr, &err), 0);
        CHECK_INT(err.status, SMTP_CLIENT_OK);
        CHECK_INT(rerr[0].status, SMTP_CLIENT_TEMP);
        CHECK_INT(rerr[0].code, 450);
        CHECK_INT(rerr[0].step, SMTP_CLIENT_STEP_RCPT);
        CHECK_STR(rerr[0].enhanced, "4.2.0");
        CHECK_STR(rerr[0].reply, "450 4.2.0 <b@example.net>: mailbox busy");
        CHECK_HAS(rerr[0].text, "said: 450 4.2.0 <b@example.net>: mailbox busy (in reply to "
                                "RCPT TO)");
        CHECK_INT(rerr[1].status, SMTP_CLIENT_OK);
        CHECK_INT(rerr[1].code, 250);
    }
    smtp_client_close(c);
    srv_end();
    show_on_failure(before);
}

static void test_smtp_client_rcpt_5xx_is_perm_and_no_data_without_recipients(void)
{
    static const char *const script[] = {GREET,
                                         "R",
                                         EHLO_PLAIN,
                                         "R",
                                         "S250 Ok",
                                         "R",
                                         "S550 5.1.1 <b@example.net>: user unknown",
                                         "R",
                                         "S550 user unknown",
                                         "R",
                                         "S250 reset",
                                         NULL};
    struct smtp_client_error err, rerr[2];
    struct smtp_client_cfg cfg;
    struct smtp_client *c;
    int before = check_failures;

    srv_start(script);
    cfg_init(&cfg);
    c = smtp_client_open(&cfg, &err);
    CHECK(c != NULL);
    if (c != NULL) {
        CHECK_INT(deliver(c, "a@example.org", rcpts2, 2, "x\n", rerr, &err), -1);
        CHECK_INT(err.status, SMTP_CLIENT_PERM);
        CHECK_INT(rerr[0].status, SMTP_CLIENT_PERM);
        CHECK_STR(rerr[0].enhanced, "5.1.1");
        CHECK_INT(rerr[1].status, SMTP_CLIENT_PERM);
        CHECK_STR(rerr[1].enhanced, "5.0.0");
        CHECK_HAS(err.text, "no recipient accepted; the first: relay ");
        CHECK(smtp_client_alive(c));
    }
    smtp_client_close(c);
    srv_end();
    CHECK(strstr(srv.rec, "DATA") == NULL);
    CHECK_HAS(srv.rec, "RCPT TO:<c@example.net>\r\nRSET\r\nQUIT\r\n");
    show_on_failure(before);
}

/* A pipelined DATA that the relay accepts although no recipient was:
 * the client ends it empty, and nothing is delivered. */
static void test_smtp_client_pipelined_data_without_recipients_ends_empty(void)
{
    static const char *const script[] = {GREET,
                                         "R",
                                         EHLO_PIPE,
                                         "R",
                                         "R",
                                         "R",
                                         "S250 Ok",
                                         "S550 5.1.1 no such user",
                                         "S354 go",
                                         "R",
                                         "S554 5.5.1 no valid recipients",
                                         "R",
                                         "S250 Ok",
                                         NULL};
    struct smtp_client_error err, rerr[1];
    struct smtp_client_cfg cfg;
    struct smtp_client *c;
    const char *rc1[] = {"b@example.net"};
    int before = check_failures;

    srv_start(script);
    cfg_init(&cfg);
    c = smtp_client_open(&cfg, &err);
    CHECK(c != NULL);
    if (c != NULL) {
        CHECK_INT(deliver(c, "a@example.org", rc1, 1, "secret body\n", rerr, &err), -1);
        CHECK_INT(err.status, SMTP_CLIENT_PERM);
        CHECK_INT(rerr[0].code, 550);
        CHECK(smtp_client_alive(c));
    }
    smtp_client_close(c);
    srv_end();
    CHECK_HAS(srv.rec, "DATA\r\n.\r\nRSET\r\nQUIT\r\n");
    CHECK(strstr(srv.rec, "secret body") == NULL);
    show_on_failure(before);
}

static void test_smtp_client_mail_refused_gives_every_recipient_its_reason(void)
{
    static const char *const script[] = {GREET,
                                         "R",
                                         EHLO_PIPE,
                                         "R",
                                         "R",
                                         "R",
                                         "R",
                                         "S553 5.7.1 sender rejected",
                                         "S503 5.5.1 need MAIL",
                                         "S503 5.5.1 need MAIL",
                                         "S503 5.5.1 need MAIL",
                                         "R",
                                         "S250 Ok",
                                         NULL};
    struct smtp_client_error err, rerr[2];
    struct smtp_client_cfg cfg;
    struct smtp_client *c;
    int before = check_failures;

    srv_start(script);
    cfg_init(&cfg);
    c = smtp_client_open(&cfg, &err);
    CHECK(c != NULL);
    if (c != NULL) {
        CHECK_INT(deliver(c, "a@example.org", rcpts2, 2, "x\n", rerr, &err), -1);
        CHECK_INT(err.status, SMTP_CLIENT_PERM);
        CHECK_INT(err.code, 553);
        CHECK_INT(err.step, SMTP_CLIENT_STEP_MAIL);
        CHECK_INT(rerr[0].code, 553);
        CHECK_INT(rerr[1].code, 553);
        CHECK_HAS(rerr[1].text, "(in reply to MAIL FROM)");
    }
    smtp_client_close(c);
    srv_end();
    CHECK_HAS(srv.rec, "DATA\r\nRSET\r\n");
    show_on_failure(before);
}

/* 4xx then 5xx after the dot, RSET each time, the session carries on and
 * the third message goes through. */
static void test_smtp_client_data_end_4xx_5xx_then_rset_keeps_session(void)
{
    static const char *const script[] = {GREET,
                                         "R",
                                         EHLO_PIPE,
                                         "R",
                                         "R",
                                         "R",
                                         "S250 Ok",
                                         "S250 Ok",
                                         "S354 go",
                                         "D",
                                         "S451 4.3.0 try later",
                                         "R",
                                         "S250 Ok",
                                         "R",
                                         "R",
                                         "R",
                                         "S250 Ok",
                                         "S250 Ok",
                                         "S354 go",
                                         "D",
                                         "S554 5.7.1 spam",
                                         "R",
                                         "S250 Ok",
                                         "R",
                                         "R",
                                         "R",
                                         "S250 Ok",
                                         "S250 Ok",
                                         "S354 go",
                                         "D",
                                         "S250 2.0.0 queued",
                                         NULL};
    struct smtp_client_error err, rerr[1];
    struct smtp_client_cfg cfg;
    struct smtp_client *c;
    const char *rc1[] = {"b@example.net"};
    int before = check_failures;

    srv_start(script);
    cfg_init(&cfg);
    c = smtp_client_open(&cfg, &err);
    CHECK(c != NULL);
    if (c != NULL) {
        CHECK_INT(deliver(c, "a@example.org", rc1, 1, "one\n", rerr, &err), -1);
        CHECK_INT(err.status, SMTP_CLIENT_TEMP);
        CHECK_INT(err.step, SMTP_CLIENT_STEP_DOT);
        CHECK_HAS(err.text, "451 4.3.0 try later (in reply to end of DATA)");
        CHECK_INT(rerr[0].status, SMTP_CLIENT_TEMP);
        CHECK_INT(rerr[0].code, 451);
        CHECK(smtp_client_alive(c));
        CHECK_INT(deliver(c, "a@example.org", rc1, 1, "two\n", rerr, &err), -1);
        CHECK_INT(err.status, SMTP_CLIENT_PERM);
        CHECK_INT(rerr[0].status, SMTP_CLIENT_PERM);
        CHECK_STR(rerr[0].enhanced, "5.7.1");
        CHECK(smtp_client_alive(c));
        CHECK_INT(deliver(c, "a@example.org", rc1, 1, "three\n", rerr, &err), 0);
        CHECK_INT(rerr[0].status, SMTP_CLIENT_OK);
    }
    smtp_client_close(c);
    srv_end();
    CHECK_INT(count(srv.rec, "RSET\r\n"), 2);
    CHECK_INT(count(srv.rec, "EHLO"), 1);
    show_on_failure(before);
}

static void test_smtp_client_multiline_reply_joined_once_coded(void)
{
    static const char *const script[] = {
        GREET,
        "R",
        EHLO_PLAIN,
        "R",
        "S250 Ok",
        "R",
        "S550-5.1.1 The email account that you tried to reach does not exist.\r\n"
        "550-5.1.1 Please try double-checking the recipient's email\r\n"
        "550 5.1.1 address for typos.",
        "R",
        "S250 Ok",
        NULL};
    struct smtp_client_error err, rerr[1];
    struct smtp_client_cfg cfg;
    struct smtp_client *c;
    const char *rc1[] = {"b@example.net"};
    int before = check_failures;

    srv_start(script);
    cfg_init(&cfg);
    c = smtp_client_open(&cfg, &err);
    CHECK(c != NULL);
    if (c != NULL) {
        CHECK_INT(deliver(c, "a@example.org", rc1, 1, "x\n", rerr, &err), -1);
        CHECK_STR(rerr[0].reply, "550 5.1.1 The email account that you tried to reach does not "
                                 "exist. Please try double-checking the recipient's email "
                                 "address for typos.");
    }
    smtp_client_close(c);
    srv_end();
    show_on_failure(before);
}

/* Failures of the connection. */

static void test_smtp_client_connection_refused_is_temp_with_reason(void)
{
    struct sockaddr_in sin = {.sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
    socklen_t slen = sizeof sin;
    int fd = socket(AF_INET, SOCK_STREAM, 0);
    struct smtp_client_error err;
    struct smtp_client_cfg cfg;
    char want[128];

    /* A port that was just free: nobody listens on it. */
    CHECK_INT(bind(fd, (struct sockaddr *)&sin, sizeof sin), 0);
    CHECK_INT(getsockname(fd, (struct sockaddr *)&sin, &slen), 0);
    close(fd);
    memset(&srv, 0, sizeof srv);
    srv.port = ntohs(sin.sin_port);
    cfg_init(&cfg);
    CHECK(smtp_client_open(&cfg, &err) == NULL);
    CHECK_INT(err.status, SMTP_CLIENT_TEMP);
    CHECK_INT(err.step, SMTP_CLIENT_STEP_CONNECT);
    CHECK_STR(err.enhanced, "4.4.1");
    snprintf(want, sizeof want, "connect to 127.0.0.1[127.0.0.1]:%d: Connection refused", srv.port);
    CHECK_STR(err.text, want);
    CHECK_STR(err.setting, "mailserver_host, mailserver_port");
}

static void test_smtp_client_unknown_host_is_temp(void)
{
    struct smtp_client_error err;
    struct smtp_client_cfg cfg;

    memset(&srv, 0, sizeof srv);
    srv.port = 25;
    cfg_init(&cfg);
    cfg.host = "no-such-host.invalid";
    CHECK(smtp_client_open(&cfg, &err) == NULL);
    CHECK_INT(err.status, SMTP_CLIENT_TEMP);
    CHECK_HAS(err.text, "cannot find relay host no-such-host.invalid: ");
    CHECK_STR(err.setting, "mailserver_host");
}

static void test_smtp_client_server_closing_mid_session_is_temp(void)
{
    static const char *const script[] = {GREET, "R",       EHLO_PLAIN, "R", "S250 Ok",
                                         "R",   "S250 Ok", "R",        "C", NULL};
    struct smtp_client_error err, rerr[1];
    struct smtp_client_cfg cfg;
    struct smtp_client *c;
    const char *rc1[] = {"b@example.net"};
    int before = check_failures;

    srv_start(script);
    cfg_init(&cfg);
    c = smtp_client_open(&cfg, &err);
    CHECK(c != NULL);
    if (c != NULL) {
        CHECK_INT(deliver(c, "a@example.org", rc1, 1, "x\n", rerr, &err), -1);
        CHECK_INT(err.status, SMTP_CLIENT_TEMP);
        CHECK_INT(err.step, SMTP_CLIENT_STEP_DATA);
        CHECK_HAS(err.text, "lost connection with 127.0.0.1[127.0.0.1]:");
        CHECK_HAS(err.text, " while reading the reply to DATA: connection closed by the relay");
        CHECK_INT(rerr[0].status, SMTP_CLIENT_TEMP);
        CHECK_INT(smtp_client_alive(c), 0);
        /* The next message learns at once that the session is gone. */
        CHECK_INT(deliver(c, "a@example.org", rc1, 1, "x\n", rerr, &err), -1);
        CHECK_INT(err.status, SMTP_CLIENT_TEMP);
        CHECK_HAS(err.text, "has ended");
        CHECK_INT(rerr[0].status, SMTP_CLIENT_TEMP);
    }
    smtp_client_close(c);
    srv_end();
    show_on_failure(before);
}

/* The relay hangs up while a big message is being written: the writes
 * fail with EPIPE/ECONNRESET, and no SIGPIPE kills us (plain and TLS). */
static void test_smtp_client_hangup_during_message_raises_no_sigpipe(void)
{
#define EHLO_NOLIMIT "S250-fake.test\r\n250-PIPELINING\r\n250 SIZE"
    static const char *const plain[] = {GREET,     "R",       EHLO_NOLIMIT, "R", "R", "R",
                                        "S250 Ok", "S250 Ok", "S354 go",    "C", NULL};
    static const char *const tls[] = {"T", GREET,     "R",       EHLO_NOLIMIT, "R", "R",
                                      "R", "S250 Ok", "S250 Ok", "S354 go",    "C", NULL};
    const char *const *scripts[] = {plain, tls};
    size_t len = 4 << 20;
    char *msg = malloc(len + 1);
    const char *rc1[] = {"b@example.net"};

    for (size_t i = 0; i < len; i++)
        msg[i] = i % 80 == 79 ? '\n' : 'm';
    msg[len] = '\0';
    for (int s = 0; s < 2; s++) {
        struct smtp_client_error err, rerr[1];
        struct smtp_client_cfg cfg;
        struct smtp_client *c;
        int before = check_failures;

        srv_start(scripts[s]);
        cfg_init(&cfg);
        cfg.implicit_tls = s;
        cfg.ca_file = ca_pem;
        c = smtp_client_open(&cfg, &err);
        CHECK(c != NULL);
        if (c != NULL) {
            CHECK_INT(deliver(c, "a@example.org", rc1, 1, msg, rerr, &err), -1);
            CHECK_INT(err.status, SMTP_CLIENT_TEMP);
            /* Normally while writing; the last chunk may slip into buffers. */
            CHECK(err.step == SMTP_CLIENT_STEP_DATA || err.step == SMTP_CLIENT_STEP_DOT);
            CHECK_HAS(err.text, "lost connection with ");
            CHECK_INT(smtp_client_alive(c), 0);
        }
        smtp_client_close(c);
        srv_end();
        show_on_failure(before);
    }
    free(msg);
}

static void test_smtp_client_silent_server_times_out_within_timeout(void)
{
    static const char *const script[] = {"W3000", GREET, NULL};
    struct smtp_client_error err;
    struct smtp_client_cfg cfg;
    long long t0, ms;

    srv_start(script);
    cfg_init(&cfg);
    cfg.timeout_ms = 300;
    t0 = mono_ms();
    CHECK(smtp_client_open(&cfg, &err) == NULL);
    ms = mono_ms() - t0;
    srv_end();
    CHECK(ms >= 290 && ms < 1500);
    CHECK_INT(err.status, SMTP_CLIENT_TEMP);
    CHECK_INT(err.step, SMTP_CLIENT_STEP_GREETING);
    CHECK_HAS(err.text, "timed out after 300 ms while reading the greeting");
}

/* A relay that drips a reply forever does not get more than the timeout:
 * it bounds the whole reply, not each line. */
static void test_smtp_client_dripping_reply_bounded_by_timeout(void)
{
    static const char *const script[] = {"S220-a", "W150", "S220-b", "W150", "S220-c", "W150",
                                         "S220-d", "W150", "S220-e", "W150", "S220 f", NULL};
    struct smtp_client_error err;
    struct smtp_client_cfg cfg;
    long long t0, ms;

    srv_start(script);
    cfg_init(&cfg);
    cfg.timeout_ms = 400;
    t0 = mono_ms();
    CHECK(smtp_client_open(&cfg, &err) == NULL);
    ms = mono_ms() - t0;
    srv_end();
    CHECK(ms < 700);
    CHECK_HAS(err.text, "timed out after 400 ms");
}

static void test_smtp_client_reply_bounds(void)
{
    static const char *const toolong[] = {GREET, "R", "X5000", NULL};
    static char many[2048];
    static const char *const manylines[] = {GREET, "R", many, NULL};
    static const char *const garbage[] = {"SHTTP/1.1 400 Bad Request", NULL};
    static const char *const mixed[] = {GREET, "R", "S250-a\r\n251 b", NULL};
    struct smtp_client_error err;
    struct smtp_client_cfg cfg;
    size_t o = 0;

    o += (size_t)snprintf(many + o, sizeof many - o, "S");
    for (int i = 0; i < 100; i++)
        o += (size_t)snprintf(many + o, sizeof many - o, "250-line%03d\r\n", i);
    snprintf(many + o - 2, sizeof many - o + 2, "%s", "\r\n250 end");

    srv_start(toolong);
    cfg_init(&cfg);
    CHECK(smtp_client_open(&cfg, &err) == NULL);
    srv_end();
    CHECK_INT(err.status, SMTP_CLIENT_TEMP);
    CHECK_HAS(err.text, "a reply line longer than 4096 bytes");

    srv_start(manylines);
    cfg_init(&cfg);
    CHECK(smtp_client_open(&cfg, &err) == NULL);
    srv_end();
    CHECK_HAS(err.text, "a reply of more than 100 lines");

    srv_start(garbage);
    cfg_init(&cfg);
    CHECK(smtp_client_open(&cfg, &err) == NULL);
    srv_end();
    CHECK_HAS(err.text, "sent a malformed reply line \"HTTP/1.1 400 Bad Request\" while we were "
                        "reading the greeting");

    srv_start(mixed);
    cfg_init(&cfg);
    CHECK(smtp_client_open(&cfg, &err) == NULL);
    srv_end();
    CHECK_HAS(err.text, "disagree on the code");
}

static void test_smtp_client_greeting_5xx_is_temp(void)
{
    static const char *const script[] = {"S554 5.7.1 go away", NULL};
    struct smtp_client_error err;
    struct smtp_client_cfg cfg;

    srv_start(script);
    cfg_init(&cfg);
    CHECK(smtp_client_open(&cfg, &err) == NULL);
    srv_end();
    CHECK_INT(err.status, SMTP_CLIENT_TEMP);
    CHECK_INT(err.code, 554);
    CHECK_HAS(err.text, "refused the session: 554 5.7.1 go away");
}

static void test_smtp_client_helo_when_ehlo_refused(void)
{
    static const char *const script[] = {
        GREET,     "R", "S502 5.5.2 what?", "R", "S250 fake.test", "R", "S250 Ok", "R",
        "S250 Ok", "R", "S354 go",          "D", "S250 Ok",        NULL};
    struct smtp_client_error err, rerr[1];
    struct smtp_client_cfg cfg;
    struct smtp_client *c;
    const char *rc1[] = {"b@example.net"};
    int before = check_failures;

    srv_start(script);
    cfg_init(&cfg);
    c = smtp_client_open(&cfg, &err);
    CHECK(c != NULL);
    if (c != NULL)
        CHECK_INT(deliver(c, "a@example.org", rc1, 1, "x\n", rerr, &err), 0);
    smtp_client_close(c);
    srv_end();
    CHECK_HAS(srv.rec, "EHLO client.test\r\nHELO client.test\r\nMAIL FROM:<a@example.org>\r\n");
    show_on_failure(before);
}

/* Message properties against the relay's extensions. */

static void test_smtp_client_size_over_relay_limit_is_perm_before_mail(void)
{
    static const char *const script[] = {GREET, "R", "S250-fake.test\r\n250 SIZE 10", NULL};
    struct smtp_client_error err, rerr[2];
    struct smtp_client_cfg cfg;
    struct smtp_client *c;
    int before = check_failures;

    srv_start(script);
    cfg_init(&cfg);
    c = smtp_client_open(&cfg, &err);
    CHECK(c != NULL);
    if (c != NULL) {
        CHECK_INT(deliver(c, "a@example.org", rcpts2, 2, "0123456789\n", rerr, &err), -1);
        CHECK_INT(err.status, SMTP_CLIENT_PERM);
        CHECK_STR(err.enhanced, "5.3.4");
        CHECK_HAS(err.text, "message of 12 bytes exceeds the size limit of relay ");
        CHECK_INT(rerr[0].status, SMTP_CLIENT_PERM);
        CHECK_INT(rerr[1].status, SMTP_CLIENT_PERM);
        CHECK(smtp_client_alive(c));
    }
    smtp_client_close(c);
    srv_end();
    CHECK(strstr(srv.rec, "MAIL") == NULL);
    show_on_failure(before);
}

static void test_smtp_client_8bit_body_needs_8bitmime(void)
{
    static const char *const with[] = {GREET,     "R",       EHLO_PIPE, "R", "R",       "R",
                                       "S250 Ok", "S250 Ok", "S354 go", "D", "S250 Ok", NULL};
    static const char *const without[] = {GREET, "R", "S250-fake.test\r\n250 PIPELINING", NULL};
    struct smtp_client_error err, rerr[1];
    struct smtp_client_cfg cfg;
    struct smtp_client *c;
    const char *rc1[] = {"b@example.net"};
    int before = check_failures;

    srv_start(with);
    cfg_init(&cfg);
    c = smtp_client_open(&cfg, &err);
    CHECK(c != NULL);
    if (c != NULL)
        CHECK_INT(deliver(c, "a@example.org", rc1, 1, "Subject: caf\xc3\xa9\n", rerr, &err), 0);
    smtp_client_close(c);
    srv_end();
    CHECK_HAS(srv.rec, "MAIL FROM:<a@example.org> SIZE=16 BODY=8BITMIME\r\n");

    srv_start(without);
    cfg_init(&cfg);
    c = smtp_client_open(&cfg, &err);
    CHECK(c != NULL);
    if (c != NULL) {
        CHECK_INT(deliver(c, "a@example.org", rc1, 1, "caf\xc3\xa9\n", rerr, &err), -1);
        CHECK_INT(err.status, SMTP_CLIENT_PERM);
        CHECK_STR(err.enhanced, "5.6.3");
        CHECK_HAS(err.text, "relay lacks 8BITMIME");
        CHECK_INT(rerr[0].status, SMTP_CLIENT_PERM);
    }
    smtp_client_close(c);
    srv_end();
    CHECK(strstr(srv.rec, "MAIL") == NULL);
    show_on_failure(before);
}

static void test_smtp_client_utf8_addresses_need_smtputf8(void)
{
    static const char *const with[] = {
        GREET,     "R",       "S250-fake.test\r\n250-PIPELINING\r\n250 SMTPUTF8",
        "R",       "R",       "R",
        "S250 Ok", "S250 Ok", "S354 go",
        "D",       "S250 Ok", NULL};
    static const char *const without[] = {GREET,     "R",       EHLO_PIPE, "R", "R",       "R",
                                          "S250 Ok", "S250 Ok", "S354 go", "D", "S250 Ok", NULL};
    const char *rcpts[] = {"j\xc3\xb6rg@example.net", "c@example.net"};
    struct smtp_client_error err, rerr[2];
    struct smtp_client_cfg cfg;
    struct smtp_client *c;
    int before = check_failures;

    srv_start(with);
    cfg_init(&cfg);
    c = smtp_client_open(&cfg, &err);
    CHECK(c != NULL);
    if (c != NULL)
        CHECK_INT(deliver(c, "a@example.org", rcpts, 1, "x\n", rerr, &err), 0);
    smtp_client_close(c);
    srv_end();
    CHECK_HAS(srv.rec, "MAIL FROM:<a@example.org> SMTPUTF8\r\nRCPT TO:<j\xc3\xb6rg@example.net>");

    /* Without SMTPUTF8 that recipient is refused here, the other goes. */
    srv_start(without);
    cfg_init(&cfg);
    c = smtp_client_open(&cfg, &err);
    CHECK(c != NULL);
    if (c != NULL) {
        CHECK_INT(deliver(c, "a@example.org", rcpts, 2, "x\n", rerr, &err), 0);
        CHECK_INT(rerr[0].status, SMTP_CLIENT_PERM);
        CHECK_STR(rerr[0].enhanced, "5.6.7");
        CHECK_HAS(rerr[0].text, "relay lacks SMTPUTF8");
        CHECK_INT(rerr[1].status, SMTP_CLIENT_OK);
    }
    smtp_client_close(c);
    srv_end();
    CHECK(strstr(srv.rec, "j\xc3\xb6rg") == NULL);
    CHECK_HAS(srv.rec, "RCPT TO:<c@example.net>\r\nDATA\r\n");
    show_on_failure(before);
}

static void test_smtp_client_refuses_addresses_that_would_inject_commands(void)
{
    static const char *const script[] = {GREET, "R", EHLO_PIPE, NULL};
    const char *rcpts[] = {"b@example.net>\r\nRSET"};
    struct smtp_client_error err, rerr[1];
    struct smtp_client_cfg cfg;
    struct smtp_client *c;

    srv_start(script);
    cfg_init(&cfg);
    c = smtp_client_open(&cfg, &err);
    CHECK(c != NULL);
    if (c != NULL) {
        CHECK_INT(deliver(c, "a@example.org", rcpts, 1, "x\n", rerr, &err), -1);
        CHECK_INT(rerr[0].status, SMTP_CLIENT_PERM);
        CHECK_HAS(rerr[0].text, "invalid recipient address");
        CHECK_INT(deliver(c, "a@x\r\nQUIT", rcpts, 1, "x\n", rerr, &err), -1);
        CHECK_HAS(err.text, "invalid sender address");
    }
    smtp_client_close(c);
    srv_end();
    CHECK(strstr(srv.rec, "MAIL") == NULL);
}

int main(void)
{
    check_current = "make_certs";
    make_certs();
    RUN(test_smtp_client_dot_encoder_table_at_every_split);
    RUN(test_smtp_client_pipelining_sends_envelope_in_one_write);
    RUN(test_smtp_client_without_pipelining_waits_for_each_reply);
    RUN(test_smtp_client_dot_stuffs_and_normalises_line_ends);
    RUN(test_smtp_client_streams_large_message_intact);
    RUN(test_smtp_client_starttls_verified_with_ca_file);
    RUN(test_smtp_client_untrusted_cert_defers_and_sends_nothing_in_clear);
    RUN(test_smtp_client_probe_keeps_chain_of_failed_verification);
    RUN(test_smtp_client_host_name_mismatch_defers_with_names);
    RUN(test_smtp_client_ip_literal_verified_against_ip_san);
    RUN(test_smtp_client_disable_starttls_stays_in_clear);
    RUN(test_smtp_client_starttls_refused_never_continues_in_clear);
    RUN(test_smtp_client_discards_plaintext_injected_after_starttls_reply);
    RUN(test_smtp_client_implicit_tls_verified);
    RUN(test_smtp_client_implicit_tls_untrusted_defers);
    RUN(test_smtp_client_auth_plain_over_tls);
    RUN(test_smtp_client_auth_login_over_tls);
    RUN(test_smtp_client_auth_rejected_is_temp_naming_the_settings);
    RUN(test_smtp_client_auth_without_starttls_refused_before_credentials);
    RUN(test_smtp_client_auth_in_clear_when_starttls_disabled);
    RUN(test_smtp_client_trace_never_shows_the_password);
    RUN(test_smtp_client_rcpt_4xx_is_temp_others_delivered);
    RUN(test_smtp_client_rcpt_5xx_is_perm_and_no_data_without_recipients);
    RUN(test_smtp_client_pipelined_data_without_recipients_ends_empty);
    RUN(test_smtp_client_mail_refused_gives_every_recipient_its_reason);
    RUN(test_smtp_client_data_end_4xx_5xx_then_rset_keeps_session);
    RUN(test_smtp_client_multiline_reply_joined_once_coded);
    RUN(test_smtp_client_connection_refused_is_temp_with_reason);
    RUN(test_smtp_client_unknown_host_is_temp);
    RUN(test_smtp_client_server_closing_mid_session_is_temp);
    RUN(test_smtp_client_hangup_during_message_raises_no_sigpipe);
    RUN(test_smtp_client_silent_server_times_out_within_timeout);
    RUN(test_smtp_client_dripping_reply_bounded_by_timeout);
    RUN(test_smtp_client_reply_bounds);
    RUN(test_smtp_client_greeting_5xx_is_temp);
    RUN(test_smtp_client_helo_when_ehlo_refused);
    RUN(test_smtp_client_size_over_relay_limit_is_perm_before_mail);
    RUN(test_smtp_client_8bit_body_needs_8bitmime);
    RUN(test_smtp_client_utf8_addresses_need_smtputf8);
    RUN(test_smtp_client_refuses_addresses_that_would_inject_commands);
    remove_certs();
    return check_done();
}
