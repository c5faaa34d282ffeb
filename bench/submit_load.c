/*
 * submit_load.c - SMTP submission load generator (STARTTLS + AUTH PLAIN).
 *
 * SYNOPSIS
 *	submit_load --host HOST --port PORT [--sessions N] [--messages M]
 *		[--size BYTES] [--auth USER:PASS] [--users U] [--starttls]
 *		[--to ADDR] [--from ADDR] [--timeout SEC] [--max-time SEC]
 *		[--allow-nonlocal] [--quiet]
 *
 * DESCRIPTION
 *	N sessions (threads, blocking sockets) each submit messages, one
 *	message per connection, until M messages have been offered in total:
 *	connect, 220, EHLO, STARTTLS + TLS handshake + EHLO (--starttls),
 *	AUTH PLAIN, MAIL FROM, RCPT TO, DATA, the message, ".", QUIT.
 *
 *	--auth USER:PASS may contain "%d" in both halves: message i then
 *	authenticates as user number i mod U (--users U, default 100), e.g.
 *	--auth 'user%d@example.test:pw-user%d'.  The envelope sender and the
 *	From: header are the authenticated user name (--from overrides).
 *	--to is the recipient; "%d" in it expands to the same number.
 *
 * MEASUREMENTS
 *	latency: from connect() to the 250 reply to the final dot (the whole
 *	session a mail client pays for one message); dot: from the last
 *	byte of the message to that reply.  Accepted messages only.
 *
 * OUTPUT
 *	stdout: "submit_load key=value ..." (accepted, failed, rate, p50/p99).
 *	stderr: a human row and the first failure replies.
 *	Exit 0 when every message was accepted.
 *
 * SAFETY
 *	Loopback only unless --allow-nonlocal; every read/write times out
 *	(--timeout, default 30 s); --max-time (default 600 s) bounds the run.
 *	The server certificate is not verified (loopback benchmark).
 */
#define _GNU_SOURCE
#include <arpa/inet.h>
#include <errno.h>
#include <getopt.h>
#include <netdb.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <openssl/err.h>
#include <openssl/evp.h>
#include <openssl/ssl.h>
#include <pthread.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <sys/time.h>
#include <time.h>
#include <unistd.h>

static struct {
    const char *host, *port, *auth, *to, *from;
    int sessions, users, size, timeout, starttls, quiet, allow_nonlocal;
    long messages;
    double max_time;
} opt = {.host = "127.0.0.1", .port = "587", .to = "rcpt%d@remote.test", .sessions = 10,
         .users = 100, .size = 4096, .timeout = 30, .messages = 1000, .max_time = 600};

static struct addrinfo *server_ai;
static SSL_CTX *ssl_ctx;
static atomic_long next_msg, accepted, failed;
static atomic_int stop_now;
static double t_start, t_deadline;
static pthread_mutex_t lock = PTHREAD_MUTEX_INITIALIZER;
static double *lat, *dotlat;
static long nlat;
static int nfailtexts;

static double now(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return ts.tv_sec + ts.tv_nsec / 1e9;
}

static void die(const char *m) {
    fprintf(stderr, "submit_load: %s\n", m);
    exit(2);
}

struct sess {
    int fd;
    SSL *ssl;
    char buf[8192];
    size_t len, off;
    char err[300];
};

static int io_write(struct sess *s, const char *p, size_t n) {
    while (n > 0) {
        ssize_t w;
        if (s->ssl) {
            int r = SSL_write(s->ssl, p, (int)n);
            w = r > 0 ? r : -1;
        } else
            w = send(s->fd, p, n, MSG_NOSIGNAL);
        if (w < 0) {
            if (!s->ssl && errno == EINTR) continue;
            snprintf(s->err, sizeof s->err, "write failed (%s)", s->ssl ? "TLS" : strerror(errno));
            return -1;
        }
        p += w;
        n -= (size_t)w;
    }
    return 0;
}

/* reply: read one SMTP reply (multi-line); returns the code or -1. */
static int reply(struct sess *s) {
    for (;;) {
        char *nl;
        while (!(nl = memchr(s->buf + s->off, '\n', s->len - s->off))) {
            if (s->off) {
                memmove(s->buf, s->buf + s->off, s->len - s->off);
                s->len -= s->off;
                s->off = 0;
            }
            if (s->len == sizeof s->buf) {
                snprintf(s->err, sizeof s->err, "reply line too long");
                return -1;
            }
            ssize_t r;
            if (s->ssl) {
                int x = SSL_read(s->ssl, s->buf + s->len, (int)(sizeof s->buf - s->len));
                r = x > 0 ? x : -1;
            } else
                r = recv(s->fd, s->buf + s->len, sizeof s->buf - s->len, 0);
            if (r <= 0) {
                if (r < 0 && !s->ssl && errno == EINTR) continue;
                snprintf(s->err, sizeof s->err, "read: %s",
                         r == 0 ? "connection closed" : errno == EAGAIN ? "timeout" : "error");
                return -1;
            }
            s->len += (size_t)r;
        }
        char *line = s->buf + s->off;
        size_t n = (size_t)(nl - line) + 1;
        s->off += n;
        if (n < 4) continue;
        if (line[3] == '-') continue;
        int code = atoi(line);
        if (code >= 400) snprintf(s->err, sizeof s->err, "%.*s", (int)(n > 200 ? 200 : n - 2), line);
        return code;
    }
}

static int cmd(struct sess *s, const char *c, int want) {
    if (io_write(s, c, strlen(c)) < 0) return -1;
    int code = reply(s);
    if (code < 0) return -1;
    if (code / 100 != want / 100) {
        if (!s->err[0] || code < 400) snprintf(s->err, sizeof s->err, "%d after %.40s", code, c);
        return code;
    }
    return 0;
}

static void b64(const unsigned char *in, int n, char *out) {
    EVP_EncodeBlock((unsigned char *)out, in, n);
}

static void fmt_num(char *out, size_t cap, const char *pat, long u) {
    snprintf(out, cap, pat, (int)u, (int)u); /* patterns have at most one %d per half */
}

static int one_message(long i, char *msgbuf, double *lat_out, double *dot_out) {
    struct sess s = {.fd = -1};
    char user[256] = "", pass[256] = "", to[256], from[256], line[1024];
    long u = i % opt.users;
    if (opt.auth) {
        const char *colon = strchr(opt.auth, ':');
        char upat[256];
        snprintf(upat, sizeof upat, "%.*s", (int)(colon - opt.auth), opt.auth);
        fmt_num(user, sizeof user, upat, u);
        fmt_num(pass, sizeof pass, colon + 1, u);
    }
    fmt_num(to, sizeof to, opt.to, u);
    if (opt.from) fmt_num(from, sizeof from, opt.from, u);
    else snprintf(from, sizeof from, "%s", user[0] ? user : "loadgen@bench.test");
    int rc = -1;
    double t0 = now();
    for (struct addrinfo *ai = server_ai; ai; ai = ai->ai_next) {
        s.fd = socket(ai->ai_family, ai->ai_socktype | SOCK_CLOEXEC, ai->ai_protocol);
        if (s.fd < 0) continue;
        struct timeval tv = {.tv_sec = opt.timeout};
        setsockopt(s.fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
        setsockopt(s.fd, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof tv);
        int one = 1;
        setsockopt(s.fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
        if (connect(s.fd, ai->ai_addr, ai->ai_addrlen) == 0) break;
        snprintf(s.err, sizeof s.err, "connect: %s", strerror(errno));
        close(s.fd);
        s.fd = -1;
    }
    if (s.fd < 0) goto out;
    int code = reply(&s);
    if (code != 220) {
        if (code > 0 && !s.err[0]) snprintf(s.err, sizeof s.err, "greeting %d", code);
        goto out;
    }
    if (cmd(&s, "EHLO submit-load.bench.test\r\n", 250)) goto out;
    if (opt.starttls) {
        if (cmd(&s, "STARTTLS\r\n", 220)) goto out;
        s.ssl = SSL_new(ssl_ctx);
        SSL_set_fd(s.ssl, s.fd);
        SSL_set_tlsext_host_name(s.ssl, "localhost");
        if (SSL_connect(s.ssl) != 1) {
            snprintf(s.err, sizeof s.err, "TLS handshake: %s", ERR_reason_error_string(ERR_get_error()));
            goto out;
        }
        s.len = s.off = 0;
        if (cmd(&s, "EHLO submit-load.bench.test\r\n", 250)) goto out;
    }
    if (opt.auth) {
        unsigned char raw[600];
        int n = snprintf((char *)raw, sizeof raw, "%c%s%c%s", 0, user, 0, pass);
        char enc[900];
        b64(raw, n, enc);
        snprintf(line, sizeof line, "AUTH PLAIN %s\r\n", enc);
        if (cmd(&s, line, 235)) goto out;
    }
    snprintf(line, sizeof line, "MAIL FROM:<%s>\r\n", from);
    if (cmd(&s, line, 250)) goto out;
    snprintf(line, sizeof line, "RCPT TO:<%s>\r\n", to);
    if (cmd(&s, line, 250)) goto out;
    if (cmd(&s, "DATA\r\n", 354)) goto out;
    int h = snprintf(msgbuf, (size_t)opt.size, "From: <%s>\r\nTo: <%s>\r\nSubject: submit_load message %ld\r\n"
                     "Date: Sat, 28 Nov 2026 00:00:00 +0000\r\nMessage-ID: <%ld.%ld@submit-load.invalid>\r\n\r\n",
                     from, to, i, i, (long)getpid());
    int n = h;
    while (n < opt.size - 80) {
        for (int k = 0; k < 76; k++) msgbuf[n + k] = (char)('a' + (n + k) % 26);
        n += 76;
        msgbuf[n++] = '\r';
        msgbuf[n++] = '\n';
    }
    memcpy(msgbuf + n, ".\r\n", 3);
    n += 3;
    if (io_write(&s, msgbuf, (size_t)n) < 0) goto out;
    double td = now();
    code = reply(&s);
    if (code != 250) {
        if (code > 0 && !s.err[0]) snprintf(s.err, sizeof s.err, "%d after the final dot", code);
        goto out;
    }
    *lat_out = (now() - t0) * 1000;
    *dot_out = (now() - td) * 1000;
    rc = 0;
    if (io_write(&s, "QUIT\r\n", 6) == 0) reply(&s);
out:
    if (rc != 0) {
        pthread_mutex_lock(&lock);
        if (nfailtexts++ < 5) fprintf(stderr, "submit_load: message %ld (%s): %s\n", i, user, s.err);
        pthread_mutex_unlock(&lock);
    }
    if (s.ssl) {
        SSL_shutdown(s.ssl);
        SSL_free(s.ssl);
    }
    if (s.fd >= 0) close(s.fd);
    return rc;
}

static void *worker(void *arg) {
    (void)arg;
    char *msgbuf = malloc((size_t)opt.size + 16);
    if (!msgbuf) die("out of memory");
    for (;;) {
        if (stop_now || now() > t_deadline) break;
        long i = atomic_fetch_add(&next_msg, 1);
        if (i >= opt.messages) break;
        double l, d;
        if (one_message(i, msgbuf, &l, &d) == 0) {
            pthread_mutex_lock(&lock);
            lat[nlat] = l;
            dotlat[nlat] = d;
            nlat++;
            pthread_mutex_unlock(&lock);
            accepted++;
        } else
            failed++;
    }
    free(msgbuf);
    return NULL;
}

static int cmpd(const void *a, const void *b) {
    double x = *(const double *)a, y = *(const double *)b;
    return x < y ? -1 : x > y;
}

static double pct(double *v, long n, double p) {
    if (n == 0) return -1;
    long r = (long)(p / 100.0 * n + 0.999999);
    if (r < 1) r = 1;
    if (r > n) r = n;
    return v[r - 1];
}

static void on_signal(int sig) {
    (void)sig;
    stop_now = 1;
}

int main(int argc, char **argv) {
    static const struct option lo[] = {
        {"host", 1, 0, 'h'}, {"port", 1, 0, 'p'}, {"sessions", 1, 0, 's'}, {"messages", 1, 0, 'm'},
        {"size", 1, 0, 'z'}, {"auth", 1, 0, 'a'}, {"users", 1, 0, 'U'}, {"starttls", 0, 0, 'T'},
        {"to", 1, 0, 't'}, {"from", 1, 0, 'f'}, {"timeout", 1, 0, 'o'}, {"max-time", 1, 0, 'M'},
        {"allow-nonlocal", 0, 0, 'A'}, {"quiet", 0, 0, 'q'}, {0, 0, 0, 0}};
    int ch;
    while ((ch = getopt_long(argc, argv, "", lo, NULL)) != -1) {
        switch (ch) {
        case 'h': opt.host = optarg; break;
        case 'p': opt.port = optarg; break;
        case 's': opt.sessions = atoi(optarg); break;
        case 'm': opt.messages = atol(optarg); break;
        case 'z': opt.size = atoi(optarg); break;
        case 'a': opt.auth = optarg; break;
        case 'U': opt.users = atoi(optarg); break;
        case 'T': opt.starttls = 1; break;
        case 't': opt.to = optarg; break;
        case 'f': opt.from = optarg; break;
        case 'o': opt.timeout = atoi(optarg); break;
        case 'M': opt.max_time = atof(optarg); break;
        case 'A': opt.allow_nonlocal = 1; break;
        case 'q': opt.quiet = 1; break;
        default: die("usage: see the comment at the top of submit_load.c");
        }
    }
    if (opt.sessions < 1 || opt.messages < 1 || opt.size < 512 || opt.users < 1 ||
        (opt.auth && !strchr(opt.auth, ':')))
        die("bad arguments");
    struct addrinfo hints = {.ai_socktype = SOCK_STREAM};
    if (getaddrinfo(opt.host, opt.port, &hints, &server_ai)) die("cannot resolve host");
    for (struct addrinfo *ai = server_ai; ai; ai = ai->ai_next) {
        int lb = ai->ai_family == AF_INET
                     ? (ntohl(((struct sockaddr_in *)ai->ai_addr)->sin_addr.s_addr) >> 24) == 127
                     : ai->ai_family == AF_INET6 &&
                           IN6_IS_ADDR_LOOPBACK(&((struct sockaddr_in6 *)ai->ai_addr)->sin6_addr);
        if (!lb && !opt.allow_nonlocal) die("not a loopback address (--allow-nonlocal to override)");
    }
    ssl_ctx = SSL_CTX_new(TLS_client_method());
    if (!ssl_ctx) die("SSL_CTX_new failed");
    SSL_CTX_set_verify(ssl_ctx, SSL_VERIFY_NONE, NULL);
    struct sigaction sa = {.sa_handler = on_signal};
    sigaction(SIGINT, &sa, NULL);
    sigaction(SIGTERM, &sa, NULL);
    signal(SIGPIPE, SIG_IGN);
    lat = calloc((size_t)opt.messages, sizeof *lat);
    dotlat = calloc((size_t)opt.messages, sizeof *dotlat);
    pthread_t *th = calloc((size_t)opt.sessions, sizeof *th);
    if (!lat || !dotlat || !th) die("out of memory");
    t_start = now();
    t_deadline = t_start + opt.max_time;
    for (int i = 0; i < opt.sessions; i++) pthread_create(&th[i], NULL, worker, NULL);
    for (int i = 0; i < opt.sessions; i++) pthread_join(th[i], NULL);
    double elapsed = now() - t_start;
    qsort(lat, (size_t)nlat, sizeof *lat, cmpd);
    qsort(dotlat, (size_t)nlat, sizeof *dotlat, cmpd);
    double mean = 0;
    for (long i = 0; i < nlat; i++) mean += lat[i];
    mean = nlat ? mean / nlat : -1;
    struct rusage ru;
    getrusage(RUSAGE_SELF, &ru);
    double cpu = ru.ru_utime.tv_sec + ru.ru_stime.tv_sec + (ru.ru_utime.tv_usec + ru.ru_stime.tv_usec) / 1e6;
    long offered = next_msg < opt.messages ? next_msg : opt.messages;
    printf("submit_load accepted=%ld failed=%ld messages=%ld unfinished=%ld elapsed_s=%.3f rate_accepted=%.2f "
           "lat_p50_ms=%.3f lat_p90_ms=%.3f lat_p99_ms=%.3f lat_max_ms=%.3f lat_mean_ms=%.3f dot_p50_ms=%.3f "
           "dot_p99_ms=%.3f starttls=%d auth=%d sessions=%d size=%d client_cpu_s=%.3f\n",
           (long)accepted, (long)failed, opt.messages, opt.messages - offered, elapsed, accepted / elapsed,
           pct(lat, nlat, 50), pct(lat, nlat, 90), pct(lat, nlat, 99), pct(lat, nlat, 100), mean,
           pct(dotlat, nlat, 50), pct(dotlat, nlat, 99), opt.starttls, opt.auth != NULL, opt.sessions, opt.size,
           cpu);
    fprintf(stderr, "submission: %ld/%ld accepted, %.1f msgs/s, session p50 %.2f ms p99 %.2f ms, dot p50 %.2f ms\n",
            (long)accepted, opt.messages, accepted / elapsed, pct(lat, nlat, 50), pct(lat, nlat, 99),
            pct(dotlat, nlat, 50));
    return accepted == opt.messages ? 0 : 1;
}
