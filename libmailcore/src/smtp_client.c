/*
 * smtp_client.c - the relay client's protocol: session set-up (connect,
 * greeting, EHLO, STARTTLS, AUTH), one transaction per message, QUIT.
 * See smtp_client.h for the contract; the I/O is in smtp_client_io.c and
 * the DATA encoding in smtp_client_data.c.
 *
 * The session's states, in order:
 *	connect -> [implicit TLS] -> greeting -> EHLO (HELO) ->
 *	[STARTTLS -> TLS -> EHLO] -> [AUTH] -> ready
 *	ready -> MAIL -> RCPT... -> DATA -> body -> dot -> ready (RSET on failure)
 *	ready -> QUIT
 * Any I/O failure, timeout, malformed reply or 421 ends the session.
 *
 * A transaction is a list of commands (MAIL, the RCPTs, DATA) sent in
 * windows: with PIPELINING up to PIPE_WINDOW commands leave in one write
 * and their replies are read afterwards, without it the window is one
 * command.  The window keeps a long recipient list from filling both
 * directions' socket buffers at once.
 */
#include <errno.h>
#include <netdb.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <unistd.h>

#include <openssl/crypto.h>
#include <openssl/evp.h>

#include "mailcore/log.h"
#include "mailcore/smtp_client.h"
#include "mailcore/tls.h"
#include "smtp_client_internal.h"

#define DEFAULT_TIMEOUT 30000
#define DEFAULT_DATA_TIMEOUT 600000
#define QUIT_TIMEOUT 5000 /* at most, for QUIT's reply */
#define PIPE_WINDOW 100   /* commands in flight with PIPELINING */
#define OUT_SIZE 65536    /* commands of one window; a chunk of the message */
#define READ_CHUNK 16384  /* message bytes per pread */
#define CMD_MAX 1024      /* one command line we send (AUTH PLAIN's is the longest) */
#define HELO_MAX 255

enum {
    EXT_PIPELINING = 1 << 0,
    EXT_SIZE = 1 << 1,
    EXT_8BITMIME = 1 << 2,
    EXT_SMTPUTF8 = 1 << 3,
    EXT_STARTTLS = 1 << 4,
    EXT_AUTH = 1 << 5,
    EXT_AUTH_PLAIN = 1 << 6,
    EXT_AUTH_LOGIN = 1 << 7,
};

/* One reply, all its lines. */
struct reply {
    int code;
    char enhanced[16];
    char text[512]; /* "550 5.1.1 first line second line", sanitised */
};

struct smtp_client {
    /* The configuration, copied. */
    char *host, *ca_file, *user, *password, *helo;
    int port, implicit_tls, disable_starttls;
    unsigned timeout_ms, data_timeout_ms;
    void (*trace)(void *arg, const char *dir, const char *line);
    void *trace_arg;

    struct smtp_io io;
    int alive;                   /* ready for a transaction */
    int esmtp;                   /* EHLO worked */
    unsigned ext;                /* EXT_* from the last EHLO */
    unsigned long long size_max; /* SIZE's limit; 0: none announced */
    char auth_offered[128];
    const char *auth_mech;
    int tls;
    struct smtp_tls_info tlsinfo;
    int tls_tried;
    char peer[320];     /* host[addr]:port */
    char hostport[300]; /* host:port, as TLS messages name it */
    size_t out_len;
    char out[OUT_SIZE];
    char in[READ_CHUNK];
};

/* clang-format off */
static const char *const step_names[] = {
    [SMTP_CLIENT_STEP_CONNECT] = "connect",
    [SMTP_CLIENT_STEP_GREETING] = "greeting",
    [SMTP_CLIENT_STEP_EHLO] = "EHLO",
    [SMTP_CLIENT_STEP_STARTTLS] = "STARTTLS",
    [SMTP_CLIENT_STEP_TLS] = "TLS handshake",
    [SMTP_CLIENT_STEP_AUTH] = "AUTH",
    [SMTP_CLIENT_STEP_MAIL] = "MAIL FROM",
    [SMTP_CLIENT_STEP_RCPT] = "RCPT TO",
    [SMTP_CLIENT_STEP_DATA] = "DATA",
    [SMTP_CLIENT_STEP_DOT] = "end of DATA",
    [SMTP_CLIENT_STEP_RSET] = "RSET",
    [SMTP_CLIENT_STEP_QUIT] = "QUIT",
};
/* clang-format on */

const char *smtp_client_step_name(enum smtp_client_step step)
{
    if ((size_t)step < sizeof step_names / sizeof step_names[0] && step_names[step] != NULL)
        return step_names[step];
    return "?";
}

/* Transcript. */

static void trace(struct smtp_client *c, const char *dir, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

static void trace(struct smtp_client *c, const char *dir, const char *fmt, ...)
{
    char line[SMTP_CLIENT_LINE_MAX + 128];
    va_list ap;

    if (c->trace == NULL)
        return;
    va_start(ap, fmt);
    vsnprintf(line, sizeof line, fmt, ap);
    va_end(ap);
    c->trace(c->trace_arg, dir, line);
}

/* Errors. */

static void set_err(struct smtp_client_error *e, enum smtp_client_status status,
                    enum smtp_client_step step, const char *enhanced, const char *setting,
                    const char *fmt, ...) __attribute__((format(printf, 6, 7)));

static void set_err(struct smtp_client_error *e, enum smtp_client_status status,
                    enum smtp_client_step step, const char *enhanced, const char *setting,
                    const char *fmt, ...)
{
    va_list ap;

    memset(e, 0, sizeof *e);
    e->status = status;
    e->step = step;
    e->setting = setting;
    snprintf(e->enhanced, sizeof e->enhanced, "%s", enhanced);
    va_start(ap, fmt);
    vsnprintf(e->text, sizeof e->text, fmt, ap);
    va_end(ap);
}

/* A reply that ends a step.  session: set-up steps are TEMP even for 5xx. */
static void reply_err(struct smtp_client *c, struct smtp_client_error *e,
                      enum smtp_client_step step, const struct reply *r, const char *cmd,
                      int session)
{
    int cls = r->code / 100;

    memset(e, 0, sizeof *e);
    e->status = cls == 5 && !session ? SMTP_CLIENT_PERM : SMTP_CLIENT_TEMP;
    e->step = step;
    e->code = r->code;
    if (r->enhanced[0] != '\0')
        snprintf(e->enhanced, sizeof e->enhanced, "%s", r->enhanced);
    else if (cls == 4 || cls == 5)
        snprintf(e->enhanced, sizeof e->enhanced, "%d.0.0", cls);
    else
        snprintf(e->enhanced, sizeof e->enhanced, "4.5.0"); /* an answer out of place */
    snprintf(e->reply, sizeof e->reply, "%s", r->text);
    if (step == SMTP_CLIENT_STEP_GREETING)
        snprintf(e->text, sizeof e->text, "relay %s refused the session: %s", c->peer, r->text);
    else
        snprintf(e->text, sizeof e->text, "relay %s said: %s (in reply to %s)", c->peer, r->text,
                 cmd);
}

/* The connection failed; the session is over. */
static void io_err(struct smtp_client *c, struct smtp_client_error *e, enum smtp_client_step step,
                   const char *doing)
{
    const char *setting = NULL;

    if (c->io.timed_out) {
        /* A TLS port answered in plaintext waits for our ClientHello. */
        if (step == SMTP_CLIENT_STEP_GREETING && !c->implicit_tls && c->port == 465)
            setting = "force_ssl";
        set_err(e, SMTP_CLIENT_TEMP, step, "4.4.2", setting,
                "conversation with %s timed out after %u ms while %s", c->peer,
                step == SMTP_CLIENT_STEP_DOT ? c->data_timeout_ms : c->timeout_ms, doing);
    } else {
        set_err(e, SMTP_CLIENT_TEMP, step, "4.4.2", NULL, "lost connection with %s while %s: %s",
                c->peer, doing, c->io.err);
    }
    smtp_io_close(&c->io);
    c->alive = 0;
}

static void proto_err(struct smtp_client *c, struct smtp_client_error *e,
                      enum smtp_client_step step, const char *what)
{
    set_err(e, SMTP_CLIENT_TEMP, step, "4.5.0", NULL, "relay %s %s", c->peer, what);
    smtp_io_close(&c->io);
    c->alive = 0;
}

/* Replies. */

/* "d.ddd.ddd" of the code's class at the start of text: its length, or 0. */
static size_t enhanced_len(const char *t, size_t n, int code)
{
    size_t i = 0, digits;

    if (n < 5 || t[0] != (char)('0' + code / 100) || t[1] != '.')
        return 0;
    i = 2;
    for (int part = 0; part < 2; part++) {
        for (digits = 0; i < n && t[i] >= '0' && t[i] <= '9' && digits < 3; i++)
            digits++;
        if (digits == 0)
            return 0;
        if (part == 0) {
            if (i >= n || t[i] != '.')
                return 0;
            i++;
        }
    }
    return i == n || t[i] == ' ' ? i : 0;
}

/* Append n bytes of s, sanitised, as far as they fit. */
static void text_append(char *buf, size_t size, const char *s, size_t n)
{
    size_t len = strlen(buf);

    if (len + 1 < size)
        log_sanitize(buf + len, size - len, s, n);
}

static int keyword_is(const char *kw, size_t n, const char *want)
{
    return strlen(want) == n && strncasecmp(kw, want, n) == 0;
}

/* One EHLO line ("SIZE 10240000", "AUTH PLAIN LOGIN", "AUTH=LOGIN"). */
static void ehlo_line(struct smtp_client *c, const char *t, size_t n)
{
    size_t k = 0;

    while (k < n && t[k] != ' ' && t[k] != '=')
        k++;
    if (keyword_is(t, k, "PIPELINING")) {
        c->ext |= EXT_PIPELINING;
    } else if (keyword_is(t, k, "8BITMIME")) {
        c->ext |= EXT_8BITMIME;
    } else if (keyword_is(t, k, "SMTPUTF8")) {
        c->ext |= EXT_SMTPUTF8;
    } else if (keyword_is(t, k, "STARTTLS")) {
        c->ext |= EXT_STARTTLS;
    } else if (keyword_is(t, k, "SIZE")) {
        unsigned long long v = 0;

        c->ext |= EXT_SIZE;
        for (size_t i = k + 1; i < n && t[i] >= '0' && t[i] <= '9'; i++)
            v = v > (~0ULL - 9) / 10 ? ~0ULL : v * 10 + (unsigned)(t[i] - '0');
        c->size_max = v;
    } else if (keyword_is(t, k, "AUTH")) {
        size_t i = k;

        c->ext |= EXT_AUTH;
        while (i < n) {
            size_t start;

            while (i < n && (t[i] == ' ' || t[i] == '='))
                i++;
            start = i;
            while (i < n && t[i] != ' ')
                i++;
            if (i == start)
                break;
            if (keyword_is(t + start, i - start, "PLAIN"))
                c->ext |= EXT_AUTH_PLAIN;
            else if (keyword_is(t + start, i - start, "LOGIN"))
                c->ext |= EXT_AUTH_LOGIN;
            if (c->auth_offered[0] != '\0')
                text_append(c->auth_offered, sizeof c->auth_offered, " ", 1);
            text_append(c->auth_offered, sizeof c->auth_offered, t + start, i - start);
        }
    }
}

/*
 * Read one reply by deadline.  0, or -1: an I/O failure (c->io.err) when
 * *malformed is 0, else a reply that breaks the grammar or the bounds (then
 * c->io.err says how).  ehlo: parse the extensions of a 250 reply.
 */
static int read_reply(struct smtp_client *c, struct reply *r, uint64_t deadline, int ehlo,
                      int *malformed)
{
    char shown[SMTP_CLIENT_LINE_MAX];

    *malformed = 0;
    memset(r, 0, sizeof *r);
    for (int n = 0;; n++) {
        const char *line, *t;
        size_t len, tlen, el;
        int code;

        int rc = smtp_io_read_line(&c->io, deadline, &line, &len);

        if (rc < 0) {
            *malformed = rc == -2;
            return -1;
        }
        len -= line[len - 1] == '\n';
        len -= len > 0 && line[len - 1] == '\r';
        log_sanitize(shown, sizeof shown, line, len);
        trace(c, "<-", "%s", shown);
        if (n >= SMTP_CLIENT_REPLY_LINES) {
            snprintf(c->io.err, sizeof c->io.err, "a reply of more than %d lines",
                     SMTP_CLIENT_REPLY_LINES);
            *malformed = 1;
            return -1;
        }
        if (len < 3 || line[0] < '2' || line[0] > '5' || line[1] < '0' || line[1] > '9' ||
            line[2] < '0' || line[2] > '9' || (len > 3 && line[3] != ' ' && line[3] != '-')) {
            snprintf(c->io.err, sizeof c->io.err, "a malformed reply line \"%.100s\"", shown);
            *malformed = 1;
            return -1;
        }
        code = (line[0] - '0') * 100 + (line[1] - '0') * 10 + (line[2] - '0');
        if (n > 0 && code != r->code) {
            snprintf(c->io.err, sizeof c->io.err,
                     "a reply whose lines disagree on the code (%d, %d)", r->code, code);
            *malformed = 1;
            return -1;
        }
        r->code = code;
        t = len > 4 ? line + 4 : "";
        tlen = len > 4 ? len - 4 : 0;
        el = enhanced_len(t, tlen, code);
        if (n == 0) {
            text_append(r->text, sizeof r->text, line, 3);
            if (el > 0 && el < sizeof r->enhanced)
                memcpy(r->enhanced, t, el);
        } else if (el > 0 && strncmp(t, r->enhanced, el) == 0 && r->enhanced[el] == '\0') {
            /* "550-5.1.1 a" "550 5.1.1 b": the code once is enough */
            t += el;
            tlen -= el;
            while (tlen > 0 && *t == ' ')
                t++, tlen--;
        }
        if (tlen > 0) {
            text_append(r->text, sizeof r->text, " ", 1);
            text_append(r->text, sizeof r->text, t, tlen);
        }
        if (ehlo && n > 0 && code == 250)
            ehlo_line(c, t, tlen);
        if (len == 3 || line[3] == ' ')
            return 0;
    }
}

/* Read the reply that ends step; -1 with *err and the session ended on
 * failure. */
static int get_reply(struct smtp_client *c, struct reply *r, enum smtp_client_step step,
                     const char *doing, struct smtp_client_error *err)
{
    unsigned t = step == SMTP_CLIENT_STEP_DOT ? c->data_timeout_ms : c->timeout_ms;
    int malformed;

    if (read_reply(c, r, smtp_io_deadline(t), step == SMTP_CLIENT_STEP_EHLO, &malformed) == 0) {
        if (r->code == 421) {
            /* The relay is closing: no other command will be heard. */
            reply_err(c, err, step, r, smtp_client_step_name(step), 1);
            smtp_io_close(&c->io);
            c->alive = 0;
            return -1;
        }
        return 0;
    }
    if (malformed) {
        char what[SMTP_IO_ERR_MAX + 64];

        snprintf(what, sizeof what, "sent %s while we were %s", c->io.err, doing);
        proto_err(c, err, step, what);
    } else {
        io_err(c, err, step, doing);
    }
    return -1;
}

/* Commands. */

/* Queue a command; shown is what the transcript says (NULL: the command). */
static int queue_cmd(struct smtp_client *c, const char *shown, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

static int queue_cmd(struct smtp_client *c, const char *shown, const char *fmt, ...)
{
    size_t room = sizeof c->out - c->out_len;
    char *p = c->out + c->out_len;
    va_list ap;
    int n;

    va_start(ap, fmt);
    n = vsnprintf(p, room > CMD_MAX ? CMD_MAX : room, fmt, ap);
    va_end(ap);
    if (n < 0 || (size_t)n + 3 > room || n + 3 > CMD_MAX)
        return -1; /* the callers' bounds make this impossible */
    trace(c, "->", "%s", shown != NULL ? shown : p);
    memcpy(p + n, "\r\n", 2);
    c->out_len += (size_t)n + 2;
    return 0;
}

static int flush(struct smtp_client *c, enum smtp_client_step step, const char *doing,
                 struct smtp_client_error *err)
{
    int r = smtp_io_write(&c->io, c->out, c->out_len, smtp_io_deadline(c->timeout_ms));

    c->out_len = 0;
    if (r < 0)
        io_err(c, err, step, doing);
    return r;
}

/* One command, one reply. */
static int command(struct smtp_client *c, struct reply *r, enum smtp_client_step step,
                   const char *shown, const char *cmd, struct smtp_client_error *err)
{
    char doing[96];

    snprintf(doing, sizeof doing, "sending %s", smtp_client_step_name(step));
    if (queue_cmd(c, shown, "%s", cmd) < 0) {
        set_err(err, SMTP_CLIENT_TEMP, step, "4.3.0", NULL, "command too long");
        return -1;
    }
    if (flush(c, step, doing, err) < 0)
        return -1;
    snprintf(doing, sizeof doing, "reading the reply to %s", smtp_client_step_name(step));
    return get_reply(c, r, step, doing, err);
}

/* Session set-up. */

static int do_connect(struct smtp_client *c, struct smtp_client_error *err)
{
    struct addrinfo hints, *res = NULL, *ai;
    char port[16], why[300] = "";
    int g, tried = 0;

    if (c->host[0] == '\0') {
        set_err(err, SMTP_CLIENT_TEMP, SMTP_CLIENT_STEP_CONNECT, "4.3.5", "mailserver_host",
                "no relay: mailserver_host is not set");
        return -1;
    }
    snprintf(c->hostport, sizeof c->hostport, "%s:%d", c->host, c->port);
    snprintf(c->peer, sizeof c->peer, "%s", c->hostport);
    memset(&hints, 0, sizeof hints);
    hints.ai_family = AF_UNSPEC;
    hints.ai_socktype = SOCK_STREAM;
    hints.ai_protocol = IPPROTO_TCP;
    snprintf(port, sizeof port, "%d", c->port);
    g = getaddrinfo(c->host, port, &hints, &res);
    if (g != 0) {
        set_err(err, SMTP_CLIENT_TEMP, SMTP_CLIENT_STEP_CONNECT, "4.4.3", "mailserver_host",
                "cannot find relay host %s: %s", c->host,
                g == EAI_SYSTEM ? strerror(errno) : gai_strerror(g));
        return -1;
    }
    for (ai = res; ai != NULL; ai = ai->ai_next) {
        char addr[NI_MAXHOST];

        if (getnameinfo(ai->ai_addr, ai->ai_addrlen, addr, sizeof addr, NULL, 0, NI_NUMERICHOST) !=
            0)
            snprintf(addr, sizeof addr, "?");
        snprintf(c->peer, sizeof c->peer, "%s[%s]:%d", c->host, addr, c->port);
        trace(c, "**", "connecting to %s", c->peer);
        tried++;
        if (smtp_io_connect(&c->io, ai->ai_addr, ai->ai_addrlen, smtp_io_deadline(c->timeout_ms)) ==
            0)
            break;
        if (c->io.timed_out)
            snprintf(why, sizeof why, "connect to %s: timed out after %u ms", c->peer,
                     c->timeout_ms);
        else
            snprintf(why, sizeof why, "connect to %s: %s", c->peer, c->io.err);
        trace(c, "**", "%s", why);
    }
    freeaddrinfo(res);
    if (ai == NULL) {
        if (tried > 1)
            snprintf(why + strlen(why), sizeof why - strlen(why), " (and %d other address%s)",
                     tried - 1, tried > 2 ? "es" : "");
        set_err(err, SMTP_CLIENT_TEMP, SMTP_CLIENT_STEP_CONNECT, "4.4.1",
                "mailserver_host, mailserver_port", "%s", why);
        return -1;
    }
    trace(c, "**", "connected to %s", c->peer);
    return 0;
}

static int is_mismatch(long v)
{
    return v == X509_V_ERR_HOSTNAME_MISMATCH || v == X509_V_ERR_IP_ADDRESS_MISMATCH;
}

static int start_tls(struct smtp_client *c, struct smtp_client_error *err)
{
    char why[300];
    SSL_CTX *ctx = tls_client_ctx(c->ca_file, 1, why, sizeof why);
    const struct smtp_tls_info *ti = &c->tlsinfo;
    int r;

    if (ctx == NULL) {
        set_err(err, SMTP_CLIENT_TEMP, SMTP_CLIENT_STEP_TLS, "4.7.5", "relay_ca_file", "%s", why);
        smtp_io_close(&c->io);
        return -1;
    }
    c->tls_tried = 1;
    r = smtp_io_starttls(&c->io, ctx, c->host, smtp_io_deadline(c->timeout_ms), &c->tlsinfo);
    SSL_CTX_free(ctx); /* the SSL keeps its reference */
    if (r < 0) {
        if (ti->verify_failed && is_mismatch(ti->verify_code) && ti->names[0] != '\0')
            set_err(err, SMTP_CLIENT_TEMP, SMTP_CLIENT_STEP_TLS, "4.7.5", "mailserver_host",
                    "%s, the certificate is for %s (%s)", c->io.err, ti->names, c->hostport);
        else
            set_err(err, SMTP_CLIENT_TEMP, SMTP_CLIENT_STEP_TLS, "4.7.5",
                    ti->verify_failed ? "relay_ca_file"
                    : c->implicit_tls ? "force_ssl"
                                      : NULL,
                    "%s (%s)", c->io.err, c->hostport);
        trace(c, "**", "%s", err->text);
        smtp_io_close(&c->io);
        return -1;
    }
    c->tls = 1;
    trace(c, "**", "TLS established: %s; certificate verified for %s", ti->summary, c->host);
    return 0;
}

static int greeting(struct smtp_client *c, struct smtp_client_error *err)
{
    struct reply r;

    if (get_reply(c, &r, SMTP_CLIENT_STEP_GREETING, "reading the greeting", err) < 0)
        return -1;
    if (r.code != 220) {
        reply_err(c, err, SMTP_CLIENT_STEP_GREETING, &r, NULL, 1);
        smtp_io_close(&c->io);
        return -1;
    }
    return 0;
}

static int ehlo(struct smtp_client *c, struct smtp_client_error *err)
{
    char cmd[HELO_MAX + 8];
    struct reply r;

    c->ext = 0;
    c->size_max = 0;
    c->auth_offered[0] = '\0';
    snprintf(cmd, sizeof cmd, "EHLO %s", c->helo);
    if (command(c, &r, SMTP_CLIENT_STEP_EHLO, NULL, cmd, err) < 0)
        return -1;
    if (r.code == 250) {
        c->esmtp = 1;
        return 0;
    }
    c->ext = 0;
    c->size_max = 0;
    c->auth_offered[0] = '\0';
    if (r.code / 100 == 5) {
        /* An SMTP-only relay (RFC 5321 3.2). */
        snprintf(cmd, sizeof cmd, "HELO %s", c->helo);
        if (command(c, &r, SMTP_CLIENT_STEP_EHLO, NULL, cmd, err) < 0)
            return -1;
        if (r.code == 250) {
            c->esmtp = 0;
            return 0;
        }
    }
    reply_err(c, err, SMTP_CLIENT_STEP_EHLO, &r, cmd[0] == 'H' ? "HELO" : "EHLO", 1);
    err->setting = r.code / 100 == 5 ? "myhostname" : NULL;
    smtp_io_close(&c->io);
    return -1;
}

static int starttls(struct smtp_client *c, struct smtp_client_error *err)
{
    struct reply r;
    size_t dropped;

    if (command(c, &r, SMTP_CLIENT_STEP_STARTTLS, NULL, "STARTTLS", err) < 0)
        return -1;
    if (r.code != 220) {
        /* Never on in clear: the relay offered TLS, something is wrong. */
        reply_err(c, err, SMTP_CLIENT_STEP_STARTTLS, &r, "STARTTLS", 1);
        smtp_io_close(&c->io);
        return -1;
    }
    dropped = smtp_io_discard(&c->io);
    if (dropped > 0)
        trace(c, "**", "discarded %zu bytes sent after the STARTTLS reply, before TLS", dropped);
    return start_tls(c, err);
}

static void b64(char *out, const unsigned char *in, size_t n)
{
    EVP_EncodeBlock((unsigned char *)out, in, (int)n);
}

static void auth_failed(struct smtp_client *c, const struct reply *r, const char *mech,
                        struct smtp_client_error *err)
{
    char text[sizeof err->text];

    reply_err(c, err, SMTP_CLIENT_STEP_AUTH, r, "AUTH", 1);
    snprintf(text, sizeof text, "relay %s rejected AUTH %s for mailserver_user %s: %s", c->peer,
             mech, c->user, r->text);
    memcpy(err->text, text, sizeof text);
    err->setting = r->code == 535 ? "mailserver_user, mailserver_password" : NULL;
}

/* The relay's last AUTH reply: 0 on 235; else, after cancelling a 334
 * that wants more than the credentials (RFC 4954 4), the failure and -1. */
static int auth_result(struct smtp_client *c, struct reply *r, const char *mech,
                       struct smtp_client_error *err)
{
    if (r->code == 235)
        return 0;
    if (r->code == 334 && command(c, r, SMTP_CLIENT_STEP_AUTH, NULL, "*", err) < 0)
        return -1;
    auth_failed(c, r, mech, err);
    smtp_io_close(&c->io);
    return -1;
}

static int auth_plain(struct smtp_client *c, struct smtp_client_error *err)
{
    unsigned char raw[2 * SMTP_CLIENT_CRED_MAX + 2];
    char enc[(sizeof raw + 2) / 3 * 4 + 1], cmd[sizeof enc + 16];
    size_t ul = strlen(c->user), pl = strlen(c->password);
    struct reply r;
    int rc;

    raw[0] = '\0';
    memcpy(raw + 1, c->user, ul);
    raw[1 + ul] = '\0';
    memcpy(raw + 2 + ul, c->password, pl);
    b64(enc, raw, 2 + ul + pl);
    snprintf(cmd, sizeof cmd, "AUTH PLAIN %s", enc);
    rc = command(c, &r, SMTP_CLIENT_STEP_AUTH, "AUTH PLAIN (credentials hidden)", cmd, err);
    OPENSSL_cleanse(raw, sizeof raw);
    OPENSSL_cleanse(enc, sizeof enc);
    OPENSSL_cleanse(cmd, sizeof cmd);
    OPENSSL_cleanse(c->out, sizeof c->out);
    if (rc < 0)
        return -1;
    return auth_result(c, &r, "PLAIN", err);
}

static int auth_login(struct smtp_client *c, struct smtp_client_error *err)
{
    char enc[(SMTP_CLIENT_CRED_MAX + 2) / 3 * 4 + 1];
    const char *secret[2] = {c->user, c->password};
    struct reply r;

    if (command(c, &r, SMTP_CLIENT_STEP_AUTH, NULL, "AUTH LOGIN", err) < 0)
        return -1;
    for (int i = 0; i < 2 && r.code == 334; i++) {
        int rc;

        b64(enc, (const unsigned char *)secret[i], strlen(secret[i]));
        rc = command(c, &r, SMTP_CLIENT_STEP_AUTH, "(credentials hidden)", enc, err);
        OPENSSL_cleanse(enc, sizeof enc);
        OPENSSL_cleanse(c->out, sizeof c->out);
        if (rc < 0)
            return -1;
    }
    return auth_result(c, &r, "LOGIN", err);
}

static int auth(struct smtp_client *c, struct smtp_client_error *err)
{
    int r;

    if (!c->tls && !c->disable_starttls) {
        set_err(err, SMTP_CLIENT_TEMP, SMTP_CLIENT_STEP_AUTH, "4.7.0", "disable_starttls",
                "%s requires AUTH but offers no STARTTLS: credentials are never sent in clear "
                "(set disable_starttls = yes only on a trusted network)",
                c->host);
        smtp_io_close(&c->io);
        return -1;
    }
    if (!(c->ext & (EXT_AUTH_PLAIN | EXT_AUTH_LOGIN))) {
        if (c->ext & EXT_AUTH)
            set_err(err, SMTP_CLIENT_TEMP, SMTP_CLIENT_STEP_AUTH, "4.7.0", NULL,
                    "relay %s offers AUTH %s, but neither PLAIN nor LOGIN", c->peer,
                    c->auth_offered);
        else
            set_err(err, SMTP_CLIENT_TEMP, SMTP_CLIENT_STEP_AUTH, "4.7.0", "mailserver_user",
                    "relay %s offers no AUTH, but mailserver_user is set", c->peer);
        smtp_io_close(&c->io);
        return -1;
    }
    if (c->ext & EXT_AUTH_PLAIN) {
        r = auth_plain(c, err);
        c->auth_mech = "PLAIN";
    } else {
        r = auth_login(c, err);
        c->auth_mech = "LOGIN";
    }
    if (r < 0)
        c->auth_mech = NULL;
    else
        trace(c, "**", "authenticated as %s with AUTH %s", c->user, c->auth_mech);
    return r;
}

static int session_start(struct smtp_client *c, struct smtp_client_error *err)
{
    if (do_connect(c, err) < 0)
        return -1;
    if (c->implicit_tls && start_tls(c, err) < 0)
        return -1;
    if (greeting(c, err) < 0 || ehlo(c, err) < 0)
        return -1;
    if (!c->tls && !c->disable_starttls && (c->ext & EXT_STARTTLS)) {
        if (starttls(c, err) < 0 || ehlo(c, err) < 0)
            return -1;
    } else if (!c->tls) {
        trace(c, "**", "no TLS: %s",
              c->disable_starttls ? "disable_starttls = yes" : "the relay offers no STARTTLS");
    }
    if (c->user[0] != '\0' && auth(c, err) < 0)
        return -1;
    c->alive = 1;
    return 0;
}

static char *copy(const char *s, int *oom)
{
    char *d = strdup(s != NULL ? s : "");

    if (d == NULL)
        *oom = 1;
    return d;
}

/* The configuration's own faults, before any connection. */
static int check_cfg(struct smtp_client *c, struct smtp_client_error *err)
{
    if (strlen(c->user) > SMTP_CLIENT_CRED_MAX || strlen(c->password) > SMTP_CLIENT_CRED_MAX) {
        set_err(err, SMTP_CLIENT_TEMP, SMTP_CLIENT_STEP_AUTH, "4.3.5",
                "mailserver_user, mailserver_password",
                "mailserver_user or mailserver_password "
                "is longer than %d bytes",
                SMTP_CLIENT_CRED_MAX);
        return -1;
    }
    if (c->helo[0] == '\0' || strlen(c->helo) > HELO_MAX) {
        set_err(err, SMTP_CLIENT_TEMP, SMTP_CLIENT_STEP_EHLO, "4.3.5", "myhostname",
                "our host name for EHLO is empty or too long");
        return -1;
    }
    for (const char *p = c->helo; *p != '\0'; p++) {
        if ((unsigned char)*p <= ' ' || (unsigned char)*p >= 0x7f) {
            set_err(err, SMTP_CLIENT_TEMP, SMTP_CLIENT_STEP_EHLO, "4.3.5", "myhostname",
                    "our host name for EHLO contains a space or control character");
            return -1;
        }
    }
    if (c->port <= 0 || c->port > 65535) {
        set_err(err, SMTP_CLIENT_TEMP, SMTP_CLIENT_STEP_CONNECT, "4.3.5", "mailserver_port",
                "mailserver_port %d is not a port", c->port);
        return -1;
    }
    return 0;
}

struct smtp_client *smtp_client_probe(const struct smtp_client_cfg *cfg,
                                      struct smtp_client_error *err)
{
    struct smtp_client *c = calloc(1, sizeof *c);
    char name[HELO_MAX + 1] = "";
    int oom = 0;

    memset(err, 0, sizeof *err);
    if (c == NULL) {
        set_err(err, SMTP_CLIENT_TEMP, SMTP_CLIENT_STEP_CONNECT, "4.3.0", NULL, "out of memory");
        return NULL;
    }
    if (cfg->helo == NULL || cfg->helo[0] == '\0') {
        if (gethostname(name, sizeof name - 1) < 0 || name[0] == '\0')
            snprintf(name, sizeof name, "localhost");
    }
    smtp_io_init(&c->io);
    c->host = copy(cfg->host, &oom);
    c->ca_file = copy(cfg->ca_file, &oom);
    c->user = copy(cfg->user, &oom);
    c->password = copy(cfg->password, &oom);
    c->helo = copy(name[0] != '\0' ? name : cfg->helo, &oom);
    c->port = cfg->port;
    c->implicit_tls = cfg->implicit_tls;
    c->disable_starttls = cfg->disable_starttls;
    c->timeout_ms = cfg->timeout_ms ? cfg->timeout_ms : DEFAULT_TIMEOUT;
    c->data_timeout_ms = cfg->data_timeout_ms ? cfg->data_timeout_ms : DEFAULT_DATA_TIMEOUT;
    c->trace = cfg->trace;
    c->trace_arg = cfg->trace_arg;
    if (oom) {
        smtp_client_close(c);
        set_err(err, SMTP_CLIENT_TEMP, SMTP_CLIENT_STEP_CONNECT, "4.3.0", NULL, "out of memory");
        return NULL;
    }
    if (check_cfg(c, err) < 0 || session_start(c, err) < 0) {
        smtp_io_close(&c->io);
        c->alive = 0;
        return c;
    }
    set_err(err, SMTP_CLIENT_OK, SMTP_CLIENT_STEP_CONNECT, "2.0.0", NULL, "ready: %s%s%s%s",
            c->peer, c->tls ? ", TLS" : "", c->auth_mech ? ", AUTH " : "",
            c->auth_mech ? c->auth_mech : "");
    return c;
}

struct smtp_client *smtp_client_open(const struct smtp_client_cfg *cfg,
                                     struct smtp_client_error *err)
{
    struct smtp_client *c = smtp_client_probe(cfg, err);

    if (c != NULL && !c->alive) {
        smtp_client_close(c);
        return NULL;
    }
    return c;
}

void smtp_client_close(struct smtp_client *c)
{
    if (c == NULL)
        return;
    if (c->alive) {
        /* Best effort: the messages are already either taken or not. */
        unsigned t = c->timeout_ms < QUIT_TIMEOUT ? c->timeout_ms : QUIT_TIMEOUT;
        uint64_t deadline = smtp_io_deadline(t);
        struct reply r;
        int malformed;

        c->out_len = 0;
        if (queue_cmd(c, NULL, "QUIT") == 0 &&
            smtp_io_write(&c->io, c->out, c->out_len, deadline) == 0)
            (void)read_reply(c, &r, deadline, 0, &malformed);
        c->alive = 0;
    }
    smtp_io_close(&c->io);
    if (c->password != NULL)
        OPENSSL_cleanse(c->password, strlen(c->password));
    free(c->host);
    free(c->ca_file);
    free(c->user);
    free(c->password);
    free(c->helo);
    free(c);
}

int smtp_client_alive(const struct smtp_client *c)
{
    return c->alive;
}

const char *smtp_client_peer(const struct smtp_client *c)
{
    return c->peer;
}

int smtp_client_tls(const struct smtp_client *c)
{
    return c->tls;
}

const char *smtp_client_tls_summary(const struct smtp_client *c)
{
    return c->tls ? c->tlsinfo.summary : "";
}

void smtp_client_chain(const struct smtp_client *c, void (*cb)(void *arg, const char *line),
                       void *arg)
{
    const char *p = c->tlsinfo.chain;

    while (*p != '\0') {
        const char *nl = strchr(p, '\n');
        size_t n = nl != NULL ? (size_t)(nl - p) : strlen(p);
        char line[sizeof c->tlsinfo.chain];

        memcpy(line, p, n);
        line[n] = '\0';
        cb(arg, line);
        p += n + (nl != NULL);
    }
}

const char *smtp_client_verify_result(const struct smtp_client *c)
{
    return c->tls_tried ? c->tlsinfo.verify : "";
}

const char *smtp_client_auth_mech(const struct smtp_client *c)
{
    return c->auth_mech;
}

/* Transactions. */

enum rcpt_state {
    RS_PENDING, /* to be sent, or sent and not answered */
    RS_SKIP,    /* refused before sending (rcpt_err says why) */
    RS_OK,      /* RCPT accepted */
    RS_FAIL,    /* RCPT refused (rcpt_err says why) */
};

struct txn {
    const char *sender;
    const char *const *rcpts;
    size_t n;
    unsigned char *state; /* enum rcpt_state per recipient */
    struct smtp_client_error *rcpt_err;
    unsigned long long size;
    int eightbit, utf8;
    int mail_ok; /* -1 unknown */
    int data_go; /* 354 */
    size_t accepted;
    struct smtp_client_error fail; /* MAIL's or DATA's failure */
    int failed;
};

/* 0 if an address may go into MAIL/RCPT; *eightbit set if it needs SMTPUTF8. */
static int addr_ok(const char *a, int *eightbit)
{
    size_t n = strlen(a);

    *eightbit = 0;
    if (n > SMTP_CLIENT_ADDR_MAX)
        return -1;
    for (size_t i = 0; i < n; i++) {
        unsigned char ch = (unsigned char)a[i];

        if (ch < 0x20 || ch == 0x7f || ch == '<' || ch == '>')
            return -1;
        if (ch >= 0x80)
            *eightbit = 1;
    }
    return 0;
}

/* Read the message once: its size as sent (for SIZE=) and whether it has
 * 8-bit bytes.  The file is read again while sending. */
static int measure(struct smtp_client *c, int fd, size_t size, struct txn *t,
                   struct smtp_client_error *err)
{
    struct smtp_dot d;
    size_t off = 0;

    smtp_dot_init(&d, 0);
    t->size = 0;
    t->eightbit = 0;
    while (off < size) {
        size_t want = size - off < sizeof c->in ? size - off : sizeof c->in;
        ssize_t r = pread(fd, c->in, want, (off_t)off);
        size_t done = 0;

        if (r < 0 && errno == EINTR)
            continue;
        if (r <= 0) {
            set_err(err, SMTP_CLIENT_TEMP, SMTP_CLIENT_STEP_MAIL, "4.3.0", NULL,
                    "message file: %s at byte %zu of %zu",
                    r < 0 ? strerror(errno) : "unexpected end", off, size);
            return -1;
        }
        for (ssize_t i = 0; i < r && !t->eightbit; i++)
            t->eightbit = (unsigned char)c->in[i] >= 0x80;
        while (done < (size_t)r) {
            size_t outlen;

            done +=
                smtp_dot_encode(&d, c->in + done, (size_t)r - done, c->out, sizeof c->out, &outlen);
            t->size += outlen;
        }
        off += (size_t)r;
    }
    t->size += smtp_dot_finish(&d, c->out);
    return 0;
}

/* Checks before MAIL FROM.  0 to go on; -1 with *err when nothing can be
 * sent (recipients refused here have RS_SKIP and their rcpt_err). */
static int precheck(struct smtp_client *c, struct txn *t, int fd, size_t size,
                    struct smtp_client_error *err)
{
    size_t usable = 0;
    int eight;

    if (addr_ok(t->sender, &eight) < 0) {
        set_err(err, SMTP_CLIENT_PERM, SMTP_CLIENT_STEP_MAIL, "5.1.7", NULL,
                "invalid sender address");
        return -1;
    }
    if (eight && !(c->ext & EXT_SMTPUTF8)) {
        set_err(err, SMTP_CLIENT_PERM, SMTP_CLIENT_STEP_MAIL, "5.6.7", NULL,
                "relay lacks SMTPUTF8: %s cannot take the non-ASCII sender address", c->peer);
        return -1;
    }
    t->utf8 = eight;
    for (size_t i = 0; i < t->n; i++) {
        if (addr_ok(t->rcpts[i], &eight) < 0) {
            t->state[i] = RS_SKIP;
            set_err(&t->rcpt_err[i], SMTP_CLIENT_PERM, SMTP_CLIENT_STEP_RCPT, "5.1.3", NULL,
                    "invalid recipient address");
        } else if (eight && !(c->ext & EXT_SMTPUTF8)) {
            t->state[i] = RS_SKIP;
            set_err(&t->rcpt_err[i], SMTP_CLIENT_PERM, SMTP_CLIENT_STEP_RCPT, "5.6.7", NULL,
                    "relay lacks SMTPUTF8: %s cannot take a non-ASCII recipient address", c->peer);
        } else {
            t->utf8 |= eight;
            usable++;
        }
    }
    if (usable == 0) {
        *err = t->rcpt_err[0];
        if (t->n > 1)
            snprintf(err->text, sizeof err->text, "no recipient can be sent: %s",
                     t->rcpt_err[0].text);
        return -1;
    }
    if (measure(c, fd, size, t, err) < 0)
        return -1;
    if ((c->ext & EXT_SIZE) && c->size_max > 0 && t->size > c->size_max) {
        set_err(err, SMTP_CLIENT_PERM, SMTP_CLIENT_STEP_MAIL, "5.3.4", NULL,
                "message of %llu bytes exceeds the size limit of relay %s (%llu bytes)", t->size,
                c->peer, c->size_max);
        return -1;
    }
    if (t->eightbit && !(c->ext & EXT_8BITMIME)) {
        set_err(err, SMTP_CLIENT_PERM, SMTP_CLIENT_STEP_MAIL, "5.6.3", NULL,
                "relay lacks 8BITMIME: %s cannot take this message's 8-bit content", c->peer);
        return -1;
    }
    return 0;
}

/* Command i of the transaction: 0 MAIL, 1..n RCPT, n+1 DATA. */
static int queue_txn_cmd(struct smtp_client *c, const struct txn *t, size_t i)
{
    char size[32] = "";

    if (i == 0) {
        if (c->ext & EXT_SIZE)
            snprintf(size, sizeof size, " SIZE=%llu", t->size);
        return queue_cmd(c, NULL, "MAIL FROM:<%s>%s%s%s", t->sender, size,
                         t->eightbit ? " BODY=8BITMIME" : "", t->utf8 ? " SMTPUTF8" : "");
    }
    if (i <= t->n)
        return queue_cmd(c, NULL, "RCPT TO:<%s>", t->rcpts[i - 1]);
    return queue_cmd(c, NULL, "DATA");
}

static void txn_reply(struct smtp_client *c, struct txn *t, size_t i, const struct reply *r)
{
    int ok = r->code / 100 == 2;

    if (i == 0) {
        t->mail_ok = ok;
        if (!ok) {
            reply_err(c, &t->fail, SMTP_CLIENT_STEP_MAIL, r, "MAIL FROM", 0);
            t->failed = 1;
        }
    } else if (i <= t->n) {
        if (ok && t->mail_ok == 1) {
            t->state[i - 1] = RS_OK;
            t->accepted++;
        } else {
            t->state[i - 1] = RS_FAIL;
            reply_err(c, &t->rcpt_err[i - 1], SMTP_CLIENT_STEP_RCPT, r, "RCPT TO", 0);
        }
    } else if (r->code == 354) {
        t->data_go = 1;
    } else if (!t->failed) { /* after a refused MAIL, MAIL's reason counts */
        reply_err(c, &t->fail, SMTP_CLIENT_STEP_DATA, r, "DATA", 0);
        t->failed = 1;
    }
}

static int skipped(const struct txn *t, size_t i)
{
    return i >= 1 && i <= t->n && t->state[i - 1] == RS_SKIP;
}

/* MAIL, RCPTs, DATA in windows.  -1 when the session ended (*err). */
static int envelope(struct smtp_client *c, struct txn *t, struct smtp_client_error *err)
{
    size_t ncmd = t->n + 2, sent = 0, got = 0, inflight = 0;
    size_t window = (c->ext & EXT_PIPELINING) ? PIPE_WINDOW : 1;
    int stop = 0;

    for (;;) {
        while (!stop && sent < ncmd && inflight < window) {
            if (skipped(t, sent)) {
                sent++;
                continue;
            }
            /* Known outcomes stop the rest: a refused MAIL, no recipient. */
            if ((sent > 0 && t->mail_ok == 0) ||
                (sent == ncmd - 1 && inflight == 0 && t->accepted == 0)) {
                stop = 1;
                break;
            }
            if (queue_txn_cmd(c, t, sent) < 0) {
                set_err(err, SMTP_CLIENT_PERM, SMTP_CLIENT_STEP_MAIL, "5.3.0", NULL,
                        "command too long");
                return -1; /* cannot happen: addresses are bounded */
            }
            sent++;
            inflight++;
        }
        if (c->out_len > 0 && flush(c, SMTP_CLIENT_STEP_MAIL, "sending the envelope", err) < 0)
            return -1;
        if (inflight == 0)
            return 0;
        while (inflight > 0) {
            enum smtp_client_step step = SMTP_CLIENT_STEP_RCPT;
            char doing[64];
            struct reply r;

            while (skipped(t, got))
                got++;
            if (got == 0)
                step = SMTP_CLIENT_STEP_MAIL;
            else if (got == ncmd - 1)
                step = SMTP_CLIENT_STEP_DATA;
            snprintf(doing, sizeof doing, "reading the reply to %s", smtp_client_step_name(step));
            if (get_reply(c, &r, step, doing, err) < 0)
                return -1;
            txn_reply(c, t, got, &r);
            got++;
            inflight--;
        }
    }
}

/* The message after 354, and the final dot.  -1 when the session ended. */
static int body(struct smtp_client *c, int fd, size_t size, struct smtp_client_error *err)
{
    uint64_t sent = 0;
    struct smtp_dot d;
    size_t off = 0;

    smtp_dot_init(&d, 1);
    c->out_len = 0;
    while (off < size) {
        size_t want = size - off < sizeof c->in ? size - off : sizeof c->in;
        ssize_t r = pread(fd, c->in, want, (off_t)off);
        size_t done = 0;

        if (r < 0 && errno == EINTR)
            continue;
        if (r <= 0) {
            /* A dot now would deliver half a message: hang up instead. */
            set_err(err, SMTP_CLIENT_TEMP, SMTP_CLIENT_STEP_DATA, "4.3.0", NULL,
                    "message file: %s at byte %zu of %zu",
                    r < 0 ? strerror(errno) : "unexpected end", off, size);
            smtp_io_close(&c->io);
            c->alive = 0;
            return -1;
        }
        while (done < (size_t)r) {
            size_t outlen;

            done += smtp_dot_encode(&d, c->in + done, (size_t)r - done, c->out + c->out_len,
                                    sizeof c->out - c->out_len, &outlen);
            c->out_len += outlen;
            if (sizeof c->out - c->out_len < SMTP_DOT_EXPAND) {
                sent += c->out_len;
                if (flush(c, SMTP_CLIENT_STEP_DATA, "sending the message", err) < 0)
                    return -1;
            }
        }
        off += (size_t)r;
    }
    if (sizeof c->out - c->out_len < 5) {
        sent += c->out_len;
        if (flush(c, SMTP_CLIENT_STEP_DATA, "sending the message", err) < 0)
            return -1;
    }
    c->out_len += smtp_dot_finish(&d, c->out + c->out_len);
    sent += c->out_len - 3;
    trace(c, "**", "message: %llu bytes", (unsigned long long)sent);
    trace(c, "->", ".");
    return flush(c, SMTP_CLIENT_STEP_DATA, "sending the message", err);
}

/* After a failed transaction: RSET, or end the session. */
static void reset(struct smtp_client *c)
{
    struct smtp_client_error ignored;
    struct reply r;

    if (!c->alive)
        return;
    if (command(c, &r, SMTP_CLIENT_STEP_RSET, NULL, "RSET", &ignored) < 0)
        return;
    if (r.code != 250) {
        trace(c, "**", "RSET refused: ending the session");
        smtp_io_close(&c->io);
        c->alive = 0;
    }
}

/* The end of a transaction: every recipient gets its fate. */
static int finish(struct txn *t, const struct smtp_client_error *overall, int delivered,
                  struct smtp_client_error *err)
{
    for (size_t i = 0; i < t->n; i++) {
        if (t->state[i] == RS_SKIP || (t->state[i] == RS_FAIL && t->mail_ok == 1 && !delivered))
            continue;
        if (t->state[i] == RS_FAIL && delivered)
            continue;
        t->rcpt_err[i] = *overall;
    }
    if (err != overall)
        *err = *overall;
    return delivered ? 0 : -1;
}

/* Why nothing was sent when no recipient was accepted. */
static void none_accepted(const struct txn *t, struct smtp_client_error *err)
{
    int temp = 0;
    size_t first = t->n;

    for (size_t i = 0; i < t->n; i++) {
        if (t->rcpt_err[i].status == SMTP_CLIENT_TEMP)
            temp = 1;
        if (first == t->n && t->rcpt_err[i].status != SMTP_CLIENT_OK)
            first = i;
    }
    if (first == t->n) {
        set_err(err, SMTP_CLIENT_TEMP, SMTP_CLIENT_STEP_RCPT, "4.5.0", NULL,
                "no recipient accepted");
        return;
    }
    *err = t->rcpt_err[first];
    err->status = temp ? SMTP_CLIENT_TEMP : SMTP_CLIENT_PERM;
    if (t->n > 1)
        snprintf(err->text, sizeof err->text, "no recipient accepted; the first: %s",
                 t->rcpt_err[first].text);
}

int smtp_client_send(struct smtp_client *c, const char *sender, const char *const *rcpts, size_t n,
                     int fd, size_t size, struct smtp_client_error *rcpt_err,
                     struct smtp_client_error *err)
{
    struct txn t;
    struct reply r;
    int rc;

    memset(&t, 0, sizeof t);
    memset(err, 0, sizeof *err);
    t.sender = sender != NULL ? sender : "";
    t.rcpts = rcpts;
    t.n = n;
    t.rcpt_err = rcpt_err;
    t.mail_ok = -1;
    for (size_t i = 0; i < n; i++)
        memset(&rcpt_err[i], 0, sizeof rcpt_err[i]);
    if (n == 0) {
        set_err(err, SMTP_CLIENT_PERM, SMTP_CLIENT_STEP_RCPT, "5.5.1", NULL, "no recipients");
        return -1;
    }
    if (!c->alive) {
        set_err(err, SMTP_CLIENT_TEMP, SMTP_CLIENT_STEP_MAIL, "4.4.2", NULL,
                "the session with relay %s has ended", c->peer);
        for (size_t i = 0; i < n; i++)
            rcpt_err[i] = *err;
        return -1;
    }
    t.state = calloc(n, 1);
    if (t.state == NULL) {
        set_err(err, SMTP_CLIENT_TEMP, SMTP_CLIENT_STEP_MAIL, "4.3.0", NULL, "out of memory");
        for (size_t i = 0; i < n; i++)
            rcpt_err[i] = *err;
        return -1;
    }
    if (precheck(c, &t, fd, size, err) < 0) {
        for (size_t i = 0; i < n; i++)
            if (t.state[i] != RS_SKIP)
                rcpt_err[i] = *err;
        free(t.state);
        return -1;
    }
    if (envelope(c, &t, err) < 0) {
        rc = finish(&t, err, 0, err);
    } else if (t.data_go && (t.mail_ok != 1 || t.accepted == 0)) {
        /* A pipelined DATA the relay took without recipients: end it empty. */
        if (command(c, &r, SMTP_CLIENT_STEP_DOT, NULL, ".", err) < 0) {
            rc = finish(&t, err, 0, err);
        } else {
            if (t.mail_ok != 1)
                *err = t.fail;
            else
                none_accepted(&t, err);
            rc = finish(&t, err, 0, err);
            reset(c);
        }
    } else if (!t.data_go) {
        if (t.mail_ok != 1 || t.accepted > 0)
            *err = t.fail; /* MAIL or DATA refused */
        else
            none_accepted(&t, err);
        rc = finish(&t, err, 0, err);
        reset(c);
    } else if (body(c, fd, size, err) < 0 ||
               get_reply(c, &r, SMTP_CLIENT_STEP_DOT, "reading the reply to end of DATA", err) <
                   0) {
        rc = finish(&t, err, 0, err);
    } else if (r.code / 100 != 2) {
        reply_err(c, err, SMTP_CLIENT_STEP_DOT, &r, "end of DATA", 0);
        rc = finish(&t, err, 0, err);
        reset(c);
    } else {
        memset(err, 0, sizeof *err);
        err->status = SMTP_CLIENT_OK;
        err->step = SMTP_CLIENT_STEP_DOT;
        err->code = r.code;
        snprintf(err->enhanced, sizeof err->enhanced, "%s",
                 r.enhanced[0] != '\0' ? r.enhanced : "2.0.0");
        snprintf(err->reply, sizeof err->reply, "%s", r.text);
        snprintf(err->text, sizeof err->text, "relay %s said: %s", c->peer, r.text);
        rc = finish(&t, err, 1, err);
    }
    free(t.state);
    return rc;
}
