/*
 * imap_load.c - IMAP load generator for the mailcore benchmarks.
 *
 * SYNOPSIS
 *	imap_load --host HOST --port PORT [--clients N] [--duration SEC]
 *		[--count ITERATIONS] [--users U] [--user-base B]
 *		[--user-fmt FMT] [--pass-fmt FMT] [--append-size BYTES]
 *		[--search TEXT] [--timeout SEC] [--allow-nonlocal] [--quiet]
 *	imap_load --fetch-envelope-only --host HOST --port PORT --user NAME
 *		--pass PASSWORD [--count N] [--duration SEC] [--timeout SEC]
 *
 * DESCRIPTION
 *	Mix mode (default): N clients (threads, blocking sockets), each
 *	looping until --duration seconds have passed (no new iteration
 *	starts after that) or it has done --count iterations.  One iteration
 *	is one session:
 *
 *	    connect + greeting            (timed as "connect", not a command)
 *	    LOGIN user pass
 *	    SELECT INBOX
 *	    FETCH 1:* (FLAGS ENVELOPE)
 *	    FETCH s1,...,s10 (BODY.PEEK[])   10 random messages, one command
 *	    STORE s +FLAGS (\Flagged)        one random message
 *	    APPEND INBOX {BYTES}             synchronising literal, 4 KiB
 *	    SEARCH SUBJECT "TEXT"
 *	    LOGOUT
 *
 *	Client c's i-th iteration logs in as user number
 *	B + (c + i*N) mod U, so the clients walk over all U users and no one
 *	mailbox grows much from the APPENDs.  FMT has one %d: the defaults are
 *	"user%d@example.test" and "pw-user%d".
 *
 *	--fetch-envelope-only: one client logs in once, SELECTs INBOX and
 *	sends FETCH 1:* (FLAGS ENVELOPE) --count times (default 20) or until
 *	--duration, then LOGOUT; each FETCH is timed.  The first one is also
 *	reported on its own (a server may build a cache then).
 *
 *	Every command is timed from its first byte written to the end of its
 *	tagged reply (an APPEND includes the round trip for the "+"
 *	continuation).  Literals in replies ({n} at the end of a line) are
 *	read as n octets, whatever they contain.
 *
 * OUTPUT
 *	stdout: one line "imap_load key=value ...": commands, failed, rate,
 *	overall and per-kind p50/p90/p99/max/mean in ms, the generator's own
 *	CPU time.  stderr: a human table (unless --quiet: one row).
 *	Exit 0 when every command got OK, 1 otherwise, 2 on usage errors.
 *
 * SAFETY
 *	Loopback addresses only unless --allow-nonlocal; every socket
 *	operation times out after --timeout seconds (default 30); a run
 *	is bounded by --duration (default 30 s) and --max-time (hard stop,
 *	default duration + 60 s).
 */
#define _GNU_SOURCE
#include <arpa/inet.h>
#include <errno.h>
#include <getopt.h>
#include <netdb.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <pthread.h>
#include <signal.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <sys/time.h>
#include <time.h>
#include <unistd.h>

enum kind { K_CONNECT, K_LOGIN, K_SELECT, K_FETCH_ENV, K_FETCH_BODY, K_STORE, K_APPEND,
            K_SEARCH, K_LOGOUT, K_N };
static const char *kind_name[K_N] = {"connect", "login", "select", "fetch_env", "fetch_body",
                                     "store", "append", "search", "logout"};

static struct {
    const char *host, *port, *user_fmt, *pass_fmt, *user, *pass, *search, *label;
    int clients, users, user_base, append_size, timeout, quiet, allow_nonlocal, env_only;
    long count;
    double duration, max_time;
} opt = {
    .host = "127.0.0.1", .port = "143", .user_fmt = "user%d@example.test",
    .pass_fmt = "pw-user%d", .search = "message 1", .clients = 10, .users = 100,
    .append_size = 4096, .timeout = 30, .count = 0, .duration = 30, .max_time = -1,
};

static struct addrinfo *server_ai;
static double t_start, t_deadline, t_hard;
static atomic_int stop_now;

static double now(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return ts.tv_sec + ts.tv_nsec / 1e9;
}

static void die(const char *fmt, ...) {
    va_list ap;
    va_start(ap, fmt);
    fputs("imap_load: ", stderr);
    vfprintf(stderr, fmt, ap);
    fputc('\n', stderr);
    va_end(ap);
    exit(2);
}

/* ---- samples ---- */

struct samples {
    double *v;
    size_t n, cap;
    long failed;
};

static void add_sample(struct samples *s, double ms) {
    if (s->n == s->cap) {
        s->cap = s->cap ? s->cap * 2 : 1024;
        s->v = realloc(s->v, s->cap * sizeof *s->v);
        if (!s->v) die("out of memory");
    }
    s->v[s->n++] = ms;
}

static int cmp_double(const void *a, const void *b) {
    double x = *(const double *)a, y = *(const double *)b;
    return x < y ? -1 : x > y;
}

static double pct(const struct samples *s, double p) { /* nearest rank; sorted */
    if (s->n == 0) return -1;
    size_t r = (size_t)(p / 100.0 * s->n + 0.999999);
    if (r < 1) r = 1;
    if (r > s->n) r = s->n;
    return s->v[r - 1];
}

static double mean(const struct samples *s) {
    double t = 0;
    for (size_t i = 0; i < s->n; i++) t += s->v[i];
    return s->n ? t / s->n : -1;
}

/* ---- one connection ---- */

struct client {
    int id, fd;
    unsigned rng;
    long iterations, conn_errors;
    char err[256];
    struct samples k[K_N];
    char *buf; /* input buffer */
    size_t len, off, cap;
    long exists, fetch_lines;
    unsigned tag;
    char *msg; /* APPEND literal */
};

static int set_err(struct client *c, const char *fmt, ...) {
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(c->err, sizeof c->err, fmt, ap);
    va_end(ap);
    return -1;
}

static int conn_open(struct client *c) {
    struct addrinfo *ai;
    for (ai = server_ai; ai; ai = ai->ai_next) {
        int fd = socket(ai->ai_family, ai->ai_socktype | SOCK_CLOEXEC, ai->ai_protocol);
        if (fd < 0) continue;
        struct timeval tv = {.tv_sec = opt.timeout};
        setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
        setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof tv);
        int one = 1;
        setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
        if (connect(fd, ai->ai_addr, ai->ai_addrlen) == 0) {
            c->fd = fd;
            c->len = c->off = 0;
            return 0;
        }
        close(fd);
    }
    return set_err(c, "connect: %s", strerror(errno));
}

static void conn_close(struct client *c) {
    if (c->fd >= 0) close(c->fd);
    c->fd = -1;
}

static int send_all(struct client *c, const char *p, size_t n) {
    while (n > 0) {
        ssize_t w = send(c->fd, p, n, MSG_NOSIGNAL);
        if (w < 0) {
            if (errno == EINTR) continue;
            return set_err(c, "send: %s", errno == EAGAIN ? "timeout" : strerror(errno));
        }
        p += w;
        n -= (size_t)w;
    }
    return 0;
}

static int fill(struct client *c) { /* read more input; -1 on EOF/error/timeout */
    if (c->off > 0 && c->off == c->len) c->off = c->len = 0;
    if (c->len == c->cap || (c->off > 0 && c->cap - c->len < 65536)) {
        memmove(c->buf, c->buf + c->off, c->len - c->off);
        c->len -= c->off;
        c->off = 0;
    }
    if (c->cap - c->len < 65536) {
        c->cap = c->cap ? c->cap * 2 : 262144;
        c->buf = realloc(c->buf, c->cap);
        if (!c->buf) die("out of memory");
    }
    for (;;) {
        ssize_t r = recv(c->fd, c->buf + c->len, c->cap - c->len, 0);
        if (r > 0) {
            c->len += (size_t)r;
            return 0;
        }
        if (r == 0) return set_err(c, "server closed the connection");
        if (errno == EINTR) continue;
        return set_err(c, "recv: %s", errno == EAGAIN ? "timeout" : strerror(errno));
    }
}

/*
 * read_line: one logical response line, literals included, into *line
 * (the first physical line, NUL-terminated, without CRLF; literal data is
 * consumed and skipped).  The returned pointer stays valid until the next
 * call.
 */
static int read_line(struct client *c, char **line, size_t *first_len) {
    static __thread char *first;
    static __thread size_t first_cap;
    size_t flen = 0;
    int have_first = 0;
    for (;;) {
        char *start = c->buf + c->off, *nl;
        while (!(nl = memchr(start, '\n', c->len - c->off))) {
            if (fill(c) < 0) return -1;
            start = c->buf + c->off;
        }
        size_t n = (size_t)(nl - start) + 1; /* with \n */
        size_t body = n >= 2 && start[n - 2] == '\r' ? n - 2 : n - 1;
        if (!have_first) {
            if (first_cap < body + 1) {
                first_cap = body + 1 + 256;
                first = realloc(first, first_cap);
                if (!first) die("out of memory");
            }
            memcpy(first, start, body);
            first[body] = 0;
            flen = body;
            have_first = 1;
        }
        c->off += n;
        /* literal? "{123}" or "{123+}" at the end of the physical line */
        if (body >= 3 && start[body - 1] == '}') {
            size_t i = body - 2;
            if (start[i] == '+') i--;
            size_t e = i + 1;
            while (i > 0 && start[i] >= '0' && start[i] <= '9') i--;
            if (start[i] == '{' && e > i + 1) {
                unsigned long long lit = strtoull(start + i + 1, NULL, 10);
                while (lit > 0) {
                    if (c->off == c->len && fill(c) < 0) return -1;
                    size_t take = c->len - c->off;
                    if (take > lit) take = (size_t)lit;
                    c->off += take;
                    lit -= take;
                }
                continue; /* the line goes on after the literal */
            }
        }
        *line = first;
        if (first_len) *first_len = flen;
        return 0;
    }
}

/* await_tagged: read until the tagged reply to TAG; 0 on OK, 1 on NO/BAD, -1 on I/O error. */
static int await_tagged(struct client *c, const char *tag, int want_cont) {
    size_t tl = strlen(tag);
    char *line;
    for (;;) {
        if (read_line(c, &line, NULL) < 0) return -1;
        if (want_cont && line[0] == '+') return 2;
        if (line[0] == '*') {
            char *p = line + 1;
            while (*p == ' ') p++;
            char *e;
            long n = strtol(p, &e, 10);
            if (e != p && strncmp(e, " EXISTS", 7) == 0) c->exists = n;
            else if (e != p && strncmp(e, " FETCH", 6) == 0) c->fetch_lines++;
            continue;
        }
        if (strncmp(line, tag, tl) == 0 && line[tl] == ' ') {
            if (strncmp(line + tl + 1, "OK", 2) == 0) return 0;
            set_err(c, "%.200s", line);
            return 1;
        }
    }
}

/* command: send CMD (with tag prefix), wait for the tagged reply, time it.
 * For APPEND, LIT (len LITLEN) is sent after the "+" continuation.
 * Returns 0 OK, 1 NO/BAD, -1 connection error. */
static int command(struct client *c, enum kind k, const char *lit, size_t litlen, const char *fmt, ...) {
    char cmd[1024], tag[16];
    snprintf(tag, sizeof tag, "a%u", ++c->tag);
    int n = snprintf(cmd, sizeof cmd, "%s ", tag);
    va_list ap;
    va_start(ap, fmt);
    n += vsnprintf(cmd + n, sizeof cmd - (size_t)n - 2, fmt, ap);
    va_end(ap);
    if (n > (int)sizeof cmd - 3) die("command too long");
    memcpy(cmd + n, "\r\n", 2);
    n += 2;
    double t0 = now();
    int r;
    if (send_all(c, cmd, (size_t)n) < 0) r = -1;
    else if (lit) {
        r = await_tagged(c, tag, 1);
        if (r == 2) {
            if (send_all(c, lit, litlen) < 0 || send_all(c, "\r\n", 2) < 0) r = -1;
            else r = await_tagged(c, tag, 0);
        }
    } else
        r = await_tagged(c, tag, 0);
    double ms = (now() - t0) * 1000;
    if (r == 0) add_sample(&c->k[k], ms);
    else c->k[k].failed++;
    return r;
}

static int greeting(struct client *c) {
    double t0 = now();
    if (conn_open(c) < 0) {
        c->k[K_CONNECT].failed++;
        return -1;
    }
    char *line;
    if (read_line(c, &line, NULL) < 0) {
        c->k[K_CONNECT].failed++;
        return -1;
    }
    if (strncmp(line, "* OK", 4) != 0) {
        c->k[K_CONNECT].failed++;
        return set_err(c, "greeting: %.200s", line);
    }
    add_sample(&c->k[K_CONNECT], (now() - t0) * 1000);
    return 0;
}

static int login(struct client *c, const char *user, const char *pass) {
    return command(c, K_LOGIN, NULL, 0, "LOGIN \"%s\" \"%s\"", user, pass);
}

static unsigned rnd(struct client *c) { return (unsigned)rand_r(&c->rng); }

static void make_message(struct client *c, const char *to) {
    int size = opt.append_size;
    c->msg = malloc((size_t)size + 1);
    if (!c->msg) die("out of memory");
    int n = snprintf(c->msg, (size_t)size + 1,
                     "From: <imap-load@bench.test>\r\nTo: <%s>\r\nSubject: imap_load append %d\r\n"
                     "Date: Sat, 28 Nov 2026 00:00:00 +0000\r\nMessage-ID: <%d.%ld@imap-load.invalid>\r\n\r\n",
                     to, c->id, c->id, (long)getpid());
    while (n < size) {
        int line = size - n >= 78 ? 76 : size - n - 2;
        if (line < 1) {
            c->msg[n++] = 'x';
            continue;
        }
        for (int i = 0; i < line; i++) c->msg[n + i] = (char)('a' + (n + i) % 26);
        n += line;
        c->msg[n++] = '\r';
        c->msg[n++] = '\n';
    }
    c->msg[size] = 0;
}

static void *mix_thread(void *arg) {
    struct client *c = arg;
    char user[256], pass[256];
    c->fd = -1;
    for (long it = 0; !stop_now && now() < t_deadline && (opt.count == 0 || it < opt.count); it++) {
        int u = opt.user_base + (int)((c->id + it * opt.clients) % opt.users);
        snprintf(user, sizeof user, opt.user_fmt, u);
        snprintf(pass, sizeof pass, opt.pass_fmt, u);
        if (!c->msg) make_message(c, user);
        c->exists = 0;
        if (greeting(c) < 0) goto broken;
        if (login(c, user, pass) != 0) goto broken;
        if (command(c, K_SELECT, NULL, 0, "SELECT INBOX") < 0) goto broken;
        if (c->exists > 0) {
            if (command(c, K_FETCH_ENV, NULL, 0, "FETCH 1:* (FLAGS ENVELOPE)") < 0) goto broken;
            char set[256];
            int n = 0;
            for (int i = 0; i < 10; i++)
                n += snprintf(set + n, sizeof set - (size_t)n, "%s%ld", i ? "," : "",
                              1 + (long)(rnd(c) % (unsigned long)c->exists));
            if (command(c, K_FETCH_BODY, NULL, 0, "FETCH %s (BODY.PEEK[])", set) < 0) goto broken;
            if (command(c, K_STORE, NULL, 0, "STORE %ld +FLAGS (\\Flagged)",
                        1 + (long)(rnd(c) % (unsigned long)c->exists)) < 0)
                goto broken;
        }
        if (command(c, K_APPEND, c->msg, (size_t)opt.append_size, "APPEND INBOX {%d}", opt.append_size) < 0)
            goto broken;
        if (command(c, K_SEARCH, NULL, 0, "SEARCH SUBJECT \"%s\"", opt.search) < 0) goto broken;
        if (command(c, K_LOGOUT, NULL, 0, "LOGOUT") < 0) goto broken;
        conn_close(c);
        c->iterations++;
        continue;
    broken:
        c->conn_errors++;
        if (c->conn_errors <= 3) fprintf(stderr, "imap_load: client %d (%s): %s\n", c->id, user, c->err);
        conn_close(c);
        usleep(100000);
    }
    conn_close(c);
    return NULL;
}

static void *env_thread(void *arg) {
    struct client *c = arg;
    c->fd = -1;
    if (greeting(c) < 0 || login(c, opt.user, opt.pass) != 0 ||
        command(c, K_SELECT, NULL, 0, "SELECT INBOX") != 0) {
        fprintf(stderr, "imap_load: %s\n", c->err);
        conn_close(c);
        return NULL;
    }
    long count = opt.count ? opt.count : 20;
    for (long i = 0; i < count && !stop_now && now() < t_deadline; i++) {
        c->fetch_lines = 0;
        if (command(c, K_FETCH_ENV, NULL, 0, "FETCH 1:* (FLAGS ENVELOPE)") < 0) break;
        if (c->fetch_lines != c->exists && i == 0)
            fprintf(stderr, "imap_load: FETCH returned %ld FETCH lines, EXISTS %ld\n", c->fetch_lines, c->exists);
        c->iterations++;
    }
    command(c, K_LOGOUT, NULL, 0, "LOGOUT");
    conn_close(c);
    return NULL;
}

static void on_signal(int sig) {
    (void)sig;
    stop_now = 1;
}

static void usage(void) {
    fputs("usage: imap_load --host H --port P [--clients N] [--duration S] [--count N]\n"
          "       [--users U] [--user-base B] [--user-fmt FMT] [--pass-fmt FMT]\n"
          "       [--append-size BYTES] [--search TEXT] [--timeout S] [--max-time S]\n"
          "       [--label TEXT] [--quiet] [--allow-nonlocal]\n"
          "   or: imap_load --fetch-envelope-only --host H --port P --user NAME --pass PW\n"
          "       [--count N] [--duration S]\n",
          stderr);
    exit(2);
}

static int is_loopback(const struct sockaddr *sa) {
    if (sa->sa_family == AF_INET)
        return (ntohl(((const struct sockaddr_in *)sa)->sin_addr.s_addr) >> 24) == 127;
    if (sa->sa_family == AF_INET6)
        return IN6_IS_ADDR_LOOPBACK(&((const struct sockaddr_in6 *)sa)->sin6_addr);
    return 0;
}

int main(int argc, char **argv) {
    static const struct option lo[] = {
        {"host", 1, 0, 'h'}, {"port", 1, 0, 'p'}, {"clients", 1, 0, 'c'}, {"duration", 1, 0, 'd'},
        {"count", 1, 0, 'n'}, {"users", 1, 0, 'U'}, {"user-base", 1, 0, 'B'}, {"user-fmt", 1, 0, 'f'},
        {"pass-fmt", 1, 0, 'F'}, {"user", 1, 0, 'u'}, {"pass", 1, 0, 'P'}, {"append-size", 1, 0, 's'},
        {"search", 1, 0, 'S'}, {"timeout", 1, 0, 't'}, {"max-time", 1, 0, 'm'}, {"label", 1, 0, 'l'},
        {"quiet", 0, 0, 'q'}, {"allow-nonlocal", 0, 0, 'A'}, {"fetch-envelope-only", 0, 0, 'E'},
        {0, 0, 0, 0}};
    int ch;
    while ((ch = getopt_long(argc, argv, "", lo, NULL)) != -1) {
        switch (ch) {
        case 'h': opt.host = optarg; break;
        case 'p': opt.port = optarg; break;
        case 'c': opt.clients = atoi(optarg); break;
        case 'd': opt.duration = atof(optarg); break;
        case 'n': opt.count = atol(optarg); break;
        case 'U': opt.users = atoi(optarg); break;
        case 'B': opt.user_base = atoi(optarg); break;
        case 'f': opt.user_fmt = optarg; break;
        case 'F': opt.pass_fmt = optarg; break;
        case 'u': opt.user = optarg; break;
        case 'P': opt.pass = optarg; break;
        case 's': opt.append_size = atoi(optarg); break;
        case 'S': opt.search = optarg; break;
        case 't': opt.timeout = atoi(optarg); break;
        case 'm': opt.max_time = atof(optarg); break;
        case 'l': opt.label = optarg; break;
        case 'q': opt.quiet = 1; break;
        case 'A': opt.allow_nonlocal = 1; break;
        case 'E': opt.env_only = 1; break;
        default: usage();
        }
    }
    if (optind != argc || opt.clients < 1 || opt.clients > 10000 || opt.users < 1 || opt.duration <= 0 ||
        opt.append_size < 256 || opt.timeout < 1)
        usage();
    if (opt.env_only) {
        if (!opt.user || !opt.pass) usage();
        opt.clients = 1;
    }
    if (strchr(opt.search, '"') || strchr(opt.search, '\\')) die("--search: no quotes or backslashes");
    struct addrinfo hints = {.ai_socktype = SOCK_STREAM};
    int e = getaddrinfo(opt.host, opt.port, &hints, &server_ai);
    if (e) die("%s:%s: %s", opt.host, opt.port, gai_strerror(e));
    for (struct addrinfo *ai = server_ai; ai; ai = ai->ai_next)
        if (!opt.allow_nonlocal && !is_loopback(ai->ai_addr))
            die("%s is not a loopback address (--allow-nonlocal to override)", opt.host);

    struct sigaction sa = {.sa_handler = on_signal};
    sigaction(SIGINT, &sa, NULL);
    sigaction(SIGTERM, &sa, NULL);
    signal(SIGPIPE, SIG_IGN);

    struct client *cl = calloc((size_t)opt.clients, sizeof *cl);
    pthread_t *th = calloc((size_t)opt.clients, sizeof *th);
    if (!cl || !th) die("out of memory");
    t_start = now();
    t_deadline = t_start + opt.duration;
    t_hard = t_start + (opt.max_time > 0 ? opt.max_time : opt.duration + 60);
    for (int i = 0; i < opt.clients; i++) {
        cl[i].id = i;
        cl[i].rng = (unsigned)(i * 7919 + 1);
        if (pthread_create(&th[i], NULL, opt.env_only ? env_thread : mix_thread, &cl[i]) != 0)
            die("pthread_create failed");
    }
    /* hard stop: threads are bounded by socket timeouts; this bounds the sum */
    char *joined = calloc((size_t)opt.clients, 1);
    if (!joined) die("out of memory");
    for (;;) {
        int alive = 0;
        for (int i = 0; i < opt.clients; i++) {
            if (joined[i]) continue;
            if (pthread_tryjoin_np(th[i], NULL) == 0) joined[i] = 1;
            else alive++;
        }
        if (!alive) break;
        if (now() > t_hard) {
            fprintf(stderr, "imap_load: --max-time reached, %d clients still busy: exiting\n", alive);
            stop_now = 2;
            break;
        }
        usleep(20000);
    }

    double elapsed = now() - t_start;

    /* merge */
    struct samples all[K_N] = {{0}}, cmds = {0};
    long iterations = 0, conn_errors = 0;
    for (int i = 0; i < opt.clients; i++) {
        iterations += cl[i].iterations;
        conn_errors += cl[i].conn_errors;
        for (int k = 0; k < K_N; k++) {
            for (size_t j = 0; j < cl[i].k[k].n; j++) {
                add_sample(&all[k], cl[i].k[k].v[j]);
                if (k != K_CONNECT) add_sample(&cmds, cl[i].k[k].v[j]);
            }
            all[k].failed += cl[i].k[k].failed;
            if (k != K_CONNECT) cmds.failed += cl[i].k[k].failed;
        }
    }
    for (int k = 0; k < K_N; k++) qsort(all[k].v, all[k].n, sizeof(double), cmp_double);
    double first_fetch = opt.env_only && cl[0].k[K_FETCH_ENV].n ? cl[0].k[K_FETCH_ENV].v[0] : -1;
    qsort(cmds.v, cmds.n, sizeof(double), cmp_double);
    struct rusage ru;
    getrusage(RUSAGE_SELF, &ru);
    double client_cpu = ru.ru_utime.tv_sec + ru.ru_stime.tv_sec + (ru.ru_utime.tv_usec + ru.ru_stime.tv_usec) / 1e6;

    printf("imap_load mode=%s clients=%d iterations=%ld commands=%zu failed=%ld conn_errors=%ld elapsed_s=%.3f "
           "rate_cmds=%.2f rate_iterations=%.2f lat_p50_ms=%.3f lat_p90_ms=%.3f lat_p99_ms=%.3f lat_max_ms=%.3f "
           "lat_mean_ms=%.3f",
           opt.env_only ? "fetch-envelope" : "mix", opt.clients, iterations, cmds.n, cmds.failed, conn_errors,
           elapsed, cmds.n / elapsed, iterations / elapsed, pct(&cmds, 50), pct(&cmds, 90), pct(&cmds, 99),
           pct(&cmds, 100), mean(&cmds));
    for (int k = 0; k < K_N; k++) {
        if (all[k].n == 0 && all[k].failed == 0) continue;
        printf(" %s_n=%zu %s_failed=%ld %s_p50_ms=%.3f %s_p99_ms=%.3f %s_max_ms=%.3f %s_mean_ms=%.3f", kind_name[k],
               all[k].n, kind_name[k], all[k].failed, kind_name[k], pct(&all[k], 50), kind_name[k],
               pct(&all[k], 99), kind_name[k], pct(&all[k], 100), kind_name[k], mean(&all[k]));
    }
    if (opt.env_only)
        printf(" messages=%ld first_fetch_ms=%.3f", cl[0].exists, first_fetch);
    printf(" client_cpu_s=%.3f\n", client_cpu);
    fflush(stdout);

    if (!opt.quiet) {
        fprintf(stderr, "%-11s %8s %7s %9s %9s %9s %9s\n", "command", "count", "failed", "p50 ms", "p99 ms",
                "max ms", "mean ms");
        for (int k = 0; k < K_N; k++) {
            if (all[k].n == 0 && all[k].failed == 0) continue;
            fprintf(stderr, "%-11s %8zu %7ld %9.2f %9.2f %9.2f %9.2f\n", kind_name[k], all[k].n, all[k].failed,
                    pct(&all[k], 50), pct(&all[k], 99), pct(&all[k], 100), mean(&all[k]));
        }
        fprintf(stderr, "%-11s %8zu %7ld %9.2f %9.2f %9.2f %9.2f\n", "all cmds", cmds.n, cmds.failed,
                pct(&cmds, 50), pct(&cmds, 99), pct(&cmds, 100), mean(&cmds));
    }
    if (opt.env_only)
        fprintf(stderr, "fetch-envelope: %ld FETCHes of %ld messages in %.1f s, p50 %.2f ms, p99 %.2f ms, first %.2f ms\n",
                iterations, cl[0].exists, elapsed, pct(&all[K_FETCH_ENV], 50), pct(&all[K_FETCH_ENV], 99), first_fetch);
    else
        fprintf(stderr, "%s: %.1f commands/s, %.1f sessions/s, %zu commands, %ld failed, %.1f s, p50 %.2f ms, p99 %.2f ms\n",
                opt.label ? opt.label : "imap mix", cmds.n / elapsed, iterations / elapsed, cmds.n, cmds.failed,
                elapsed, pct(&cmds, 50), pct(&cmds, 99));
    if (stop_now == 2) _exit(1); /* threads still blocked: do not wait for them */
    return cmds.failed || conn_errors ? 1 : 0;
}
