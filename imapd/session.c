/*
 * session.c - imapd's connections: input (command lines, literals, IDLE,
 * AUTHENTICATE continuations), replies, the command table and dispatch.
 *
 * A session reads one command at a time: the parser (imap_parse.c) takes
 * lines and literals until the command is complete; the command runs and
 * either completes at once or puts the session in IN_BUSY (FETCH streaming
 * a large message, a failed login's delay) until it calls
 * imap_command_done().  Pipelined commands wait in the connection.
 *
 * Bounds: a command (lines and literals) is at most 64 KiB except APPEND's
 * message (message_size_limit, streamed to disk); replies a client does not
 * read stop the reading of its commands beyond 256 KiB.
 */
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <unistd.h>

#include "imapd.h"
#include "mailcore/auth.h"
#include "mailcore/conf.h"
#include "mailcore/conn.h"
#include "mailcore/ev.h"
#include "mailcore/service.h"

#define OUT_HIGH_WATER (256 * 1024)
#define LOGOUT_IDLE_MS (30 * 60 * 1000)   /* RFC 3501: at least 30 minutes */

static const struct imap_command commands[] = {
#define ANY (1u << IS_NOTAUTH | 1u << IS_AUTH | 1u << IS_SELECTED)
#define AUTHED (1u << IS_AUTH | 1u << IS_SELECTED)
#define SELECTED (1u << IS_SELECTED)
    {"CAPABILITY", cmd_capability, ANY, 0, 1},
    {"NOOP", cmd_noop, ANY, 0, 1},
    {"LOGOUT", cmd_logout, ANY, 0, 1},
    {"STARTTLS", cmd_starttls, 1u << IS_NOTAUTH, 0, 1},
    {"LOGIN", cmd_login, 1u << IS_NOTAUTH, 0, 0},
    {"AUTHENTICATE", cmd_authenticate, 1u << IS_NOTAUTH, 0, 0},
    {"ID", cmd_id, ANY, 0, 0},
    {"ENABLE", cmd_enable, AUTHED, 0, 0},
    {"SELECT", cmd_select, AUTHED, 0, 0},
    {"EXAMINE", cmd_examine, AUTHED, 0, 0},
    {"CREATE", cmd_create, AUTHED, 0, 0},
    {"DELETE", cmd_delete, AUTHED, 0, 0},
    {"RENAME", cmd_rename, AUTHED, 0, 0},
    {"SUBSCRIBE", cmd_subscribe, AUTHED, 0, 0},
    {"UNSUBSCRIBE", cmd_unsubscribe, AUTHED, 0, 0},
    {"LIST", cmd_list, AUTHED, 0, 0},
    {"LSUB", cmd_lsub, AUTHED, 0, 0},
    {"NAMESPACE", cmd_namespace, AUTHED, 0, 1},
    {"STATUS", cmd_status, AUTHED, 0, 0},
    {"APPEND", cmd_append, AUTHED, 0, 0},
    {"IDLE", cmd_idle, AUTHED, 0, 1},
    {"COMPRESS", cmd_compress, AUTHED, 0, 0},
    {"CHECK", cmd_check, SELECTED, 0, 1},
    {"CLOSE", cmd_close, SELECTED, 0, 1},
    {"UNSELECT", cmd_unselect, SELECTED, 0, 1},
    {"EXPUNGE", cmd_expunge, SELECTED, 1, 0},
    {"SEARCH", cmd_search, SELECTED, 1, 0},
    {"SORT", cmd_sort, SELECTED, 1, 0},
    {"THREAD", cmd_thread, SELECTED, 1, 0},
    {"FETCH", cmd_fetch, SELECTED, 1, 0},
    {"STORE", cmd_store, SELECTED, 1, 0},
    {"COPY", cmd_copy, SELECTED, 1, 0},
    {"MOVE", cmd_move, SELECTED, 1, 0},
    {"GETQUOTAROOT", cmd_getquotaroot, AUTHED, 0, 0},
    {"GETQUOTA", cmd_getquota, AUTHED, 0, 0},
    {"SETQUOTA", cmd_setquota, AUTHED, 0, 0},
#undef ANY
#undef AUTHED
#undef SELECTED
};

const struct imap_command *imap_command_find(const char *name)
{
    for (size_t i = 0; i < sizeof commands / sizeof commands[0]; i++)
        if (strcasecmp(commands[i].name, name) == 0)
            return &commands[i];
    return NULL;
}

const char *imap_capabilities(const struct imap_session *s)
{
    static char buf[512];
    int tls = conn_is_tls(s->conn);

    snprintf(buf, sizeof buf,
             "IMAP4rev1 IMAP4rev2 LITERAL+ SASL-IR ID ENABLE IDLE NAMESPACE UNSELECT UIDPLUS "
             "MOVE CHILDREN SPECIAL-USE LIST-EXTENDED LIST-STATUS STATUS=SIZE ESEARCH "
             "SORT SORT=DISPLAY ESORT THREAD=ORDEREDSUBJECT THREAD=REFERENCES "
             "QUOTA QUOTA=RES-STORAGE CONDSTORE QRESYNC SEARCHRES BINARY "
             "APPENDLIMIT=%llu%s%s%s",
             (unsigned long long)conf_uint(s->srv->svc->conf, "message_size_limit"),
             s->state == IS_NOTAUTH && !tls && s->srv->svc->tls ? " STARTTLS" : "",
             s->state == IS_NOTAUTH && imap_plaintext_ok(s) ? " AUTH=PLAIN" : "",
             s->state == IS_NOTAUTH && !imap_plaintext_ok(s) ? " LOGINDISABLED" : "");
    if (s->state != IS_NOTAUTH) {
        size_t n = strlen(buf); /* COMPRESS is a command of the authenticated state */
        snprintf(buf + n, sizeof buf - n, " COMPRESS=DEFLATE");
    }
    return buf;
}

int imap_plaintext_ok(const struct imap_session *s)
{
    return conn_is_tls(s->conn) || service_is_loopback(s->addr) ||
           conf_bool(s->srv->svc->conf, "imap_allow_plaintext_auth");
}

/* Replies. */

void imap_write(struct imap_session *s, const void *buf, size_t len)
{
    conn_write(s->conn, buf, len);
}

/* A whole reply line, however long (a COPYUID set, 64 long keywords):
 * never cut short, which would break the grammar. */
static void vreply(struct imap_session *s, const char *prefix, const char *status,
                   const char *fmt, va_list ap)
{
    if (status)
        conn_printf(s->conn, "%s %s ", prefix, status);
    else
        conn_printf(s->conn, "%s ", prefix);
    conn_vprintf(s->conn, fmt, ap);
    conn_printf(s->conn, "\r\n");
}

void imap_tagged(struct imap_session *s, const char *status, const char *fmt, ...)
{
    va_list ap;

    va_start(ap, fmt);
    vreply(s, s->tag[0] ? s->tag : "*", status, fmt, ap);
    va_end(ap);
}

void imap_untagged(struct imap_session *s, const char *fmt, ...)
{
    va_list ap;

    va_start(ap, fmt);
    vreply(s, "*", NULL, fmt, ap);
    va_end(ap);
}

void imap_string(struct imap_session *s, const char *str, size_t len)
{
    char small[512];
    size_t need = imap_quote(small, sizeof small, str, len, s->rev2);

    if (need <= sizeof small) {
        conn_write(s->conn, small, need);
        return;
    }
    char *big = malloc(need);
    if (big == NULL)
        return;
    imap_quote(big, need, str, len, s->rev2);
    conn_write(s->conn, big, need);
    free(big);
}

/* Input. */

static void session_input(struct imap_session *s);
static void session_free(struct imap_session *s);

static void on_stall(struct ev_loop *ev, void *arg)
{
    struct imap_session *s = arg;

    (void)ev;
    s->stall = NULL;
    log_info("timeout while sending to unknown[%s]: dropping the connection", s->addr);
    session_free(s);
}

void imap_stall_arm(struct imap_session *s)
{
    if (s->stall == NULL)
        s->stall = ev_timer_add(s->srv->svc->ev, IMAP_STALL_MS, on_stall, s);
}

static void stall_cancel(struct imap_session *s)
{
    if (s->stall)
        ev_timer_cancel(s->srv->svc->ev, s->stall);
    s->stall = NULL;
}

void imap_command_done(struct imap_session *s)
{
    imap_parser_reset(s->parser);
    s->tag[0] = '\0';
    if (s->input == IN_CLOSING)
        return;
    s->input = IN_LINE;
    if (s->srv->stopping) {             /* its command finished: now the BYE */
        imap_session_close(s, "Server shutting down");
        return;
    }
    conn_resume(s->conn);
}

void imap_session_close(struct imap_session *s, const char *bye)
{
    if (s->input == IN_CLOSING)
        return;
    if (bye)
        imap_untagged(s, "BYE %s", bye);
    s->input = IN_CLOSING;
    s->state = IS_LOGOUT;
    conn_shutdown(s->conn);
    imap_stall_arm(s);
}

static void run_command(struct imap_session *s)
{
    const struct imap_command *cmd;
    const char *name = imap_parser_name(s->parser);
    const struct imap_arg *args;
    size_t nargs;
    int uid = 0;

    snprintf(s->tag, sizeof s->tag, "%s", imap_parser_tag(s->parser));
    args = imap_parser_args(s->parser, &nargs);
    if (strcasecmp(name, "UID") == 0) {
        if (nargs == 0 || args[0].type != IMAP_ARG_ATOM) {
            imap_tagged(s, "BAD", "UID needs a command");
            imap_command_done(s);
            return;
        }
        name = args[0].s;
        args++;
        nargs--;
        uid = 1;
    }
    cmd = imap_command_find(name);
    if (cmd == NULL || (uid && !cmd->uid_ok)) {
        imap_tagged(s, "BAD", "Unknown command");
        imap_command_done(s);
        return;
    }
    if (!(cmd->states & (1u << s->state))) {
        imap_tagged(s, "BAD", s->state == IS_NOTAUTH ? "Log in first"
                              : s->state == IS_SELECTED || s->state == IS_AUTH
                                  ? (cmd->states == (1u << IS_SELECTED) ? "No mailbox selected"
                                                                       : "Already logged in")
                                  : "Not now");
        imap_command_done(s);
        return;
    }
    if (cmd->no_args && nargs != 0) {
        imap_tagged(s, "BAD", "%s takes no arguments", cmd->name);
        imap_command_done(s);
        return;
    }
    s->input = IN_BUSY;
    conn_pause(s->conn);
    cmd->fn(s, uid, args, nargs);
}

/* The parser stopped at a literal: take it, stream it, or refuse it.  A
 * refused literal the client sends anyway (LITERAL+) goes to the parser,
 * which swallows what does not fit, so the stream stays in step; the
 * command is then answered with pending_no instead of being run. */
static void on_literal(struct imap_session *s)
{
    uint64_t size = imap_parser_literal_size(s->parser);
    const char *name = imap_parser_name(s->parser);

    if (name != NULL && strcasecmp(name, "APPEND") == 0 && s->state != IS_NOTAUTH &&
        append_begin(s) == 0)
        return;                         /* append.c took over (or refused) */
    if (!imap_parser_literal_fits(s->parser)) {
        imap_refuse_literal(s, "NO", "[TOOBIG] Literal too large");
        return;
    }
    (void)size;
    if (imap_parser_literal_sync(s->parser))
        conn_printf(s->conn, "+ Ready for literal data\r\n");
    s->input = IN_LITERAL;
}

void imap_refuse_literal(struct imap_session *s, const char *status, const char *text)
{
    const char *tag = imap_parser_tag(s->parser);

    if (imap_parser_literal_sync(s->parser)) {
        snprintf(s->tag, sizeof s->tag, "%s", tag ? tag : "*");
        imap_tagged(s, status, "%s", text);
        imap_parser_reset(s->parser);
        s->tag[0] = '\0';
        s->input = IN_LINE;
        return;
    }
    if (imap_parser_literal_size(s->parser) > (1ull << 30)) {
        imap_session_close(s, "Literal too large");
        return;
    }
    s->pending_no = text;
    s->pending_status = status;
    s->input = IN_LITERAL;
}

/*
 * The last line of a failed command, or a line of one being skipped: when it
 * announces a LITERAL+, the client sends those bytes anyway -- skip them and
 * the rest of the line after them, so none of it is read as a command.
 */
static void skip_line(struct imap_session *s, const char *line, size_t len)
{
    const char *open;
    char *end;
    unsigned long long n;

    while (len > 0 && (line[len - 1] == '\n' || line[len - 1] == '\r'))
        len--;
    s->input = IN_LINE;
    if (len < 4 || line[len - 1] != '}' || line[len - 2] != '+')
        return;
    open = memrchr(line, '{', len);
    if (open == NULL)
        return;
    n = strtoull(open + 1, &end, 10);
    if (end != line + len - 2 || n > (1ull << 30))
        return;
    s->skip_left = n;
    s->input = IN_SKIP;
}

static void command_line(struct imap_session *s, const char *line, size_t len)
{
    enum imap_parse_result r = imap_parser_line(s->parser, line, len);
    const char *tag;

    if (s->pending_no && (r == IMAP_PARSE_DONE || r == IMAP_PARSE_ERROR)) {
        tag = imap_parser_tag(s->parser);
        snprintf(s->tag, sizeof s->tag, "%s", tag ? tag : "*");
        imap_tagged(s, s->pending_status, "%s", s->pending_no);
        s->pending_no = NULL;
        imap_parser_reset(s->parser);
        skip_line(s, line, len);
        s->tag[0] = '\0';
        return;
    }
    switch (r) {
    case IMAP_PARSE_LITERAL:
        if (s->pending_no) {            /* the refused command goes on: swallow */
            s->input = IN_LITERAL;
            break;
        }
        on_literal(s);
        break;
    case IMAP_PARSE_DONE:
        run_command(s);
        break;
    case IMAP_PARSE_ERROR:
        tag = imap_parser_tag(s->parser);
        snprintf(s->tag, sizeof s->tag, "%s", tag ? tag : "*");
        imap_tagged(s, "BAD", "%s", imap_parser_error(s->parser));
        imap_parser_reset(s->parser);
        skip_line(s, line, len);
        s->tag[0] = '\0';
        break;
    default:
        break;
    }
}

static int literal_input(struct imap_session *s)
{
    const char *data;
    size_t len;
    int skip = s->input == IN_SKIP;
    uint64_t left = skip ? s->skip_left : imap_parser_literal_left(s->parser);

    if (left > 0) {
        if (conn_read_bytes(s->conn, left > 65536 ? 65536 : (size_t)left, &data, &len) != CONN_OK)
            return 0;
        if (skip)
            s->skip_left -= len;
        else
            imap_parser_literal(s->parser, data, len);
        left -= len;
    }
    if (left == 0)
        s->input = skip ? IN_SKIP_LINE : IN_LINE;
    return 1;
}

static void idle_line(struct imap_session *s, const char *line, size_t len)
{
    while (len > 0 && (line[len - 1] == '\n' || line[len - 1] == '\r'))
        len--;
    snprintf(s->tag, sizeof s->tag, "%s", s->idle_tag);
    if (s->view && view_wake(s) < 0)
        return;
    if (len == 4 && strncasecmp(line, "DONE", 4) == 0)
        imap_tagged(s, "OK", "Idle completed");
    else
        imap_tagged(s, "BAD", "Expected DONE");
    s->idle_tag[0] = '\0';
    s->input = IN_LINE;
    s->tag[0] = '\0';
}

static void session_input(struct imap_session *s)
{
    for (;;) {
        const char *line;
        size_t len;
        enum conn_result r;

        if (conn_out_pending(s->conn) > OUT_HIGH_WATER && s->input == IN_LINE) {
            conn_pause(s->conn);
            imap_stall_arm(s);
            return;
        }
        switch (s->input) {
        case IN_LINE:
        case IN_IDLE:
        case IN_AUTH:
        case IN_SKIP_LINE:
            r = conn_read_line(s->conn, &line, &len);
            if (r == CONN_TOOLONG) {
                imap_session_close(s, "Line too long");
                return;
            }
            if (r != CONN_OK)
                return;
            if (s->input == IN_LINE)
                command_line(s, line, len);
            else if (s->input == IN_SKIP_LINE)
                skip_line(s, line, len);
            else if (s->input == IN_IDLE)
                idle_line(s, line, len);
            else
                imap_auth_line(s, line, len);
            break;
        case IN_LITERAL:
        case IN_SKIP:
            if (!literal_input(s))
                return;
            break;
        case IN_APPEND:
            append_literal(s);
            if (s->input == IN_APPEND)
                return;
            break;
        default:
            return;
        }
    }
}

static void session_free(struct imap_session *s)
{
    struct imap_server *srv = s->srv;

    if (s->counted) {
        struct anvil_key total;
        anvil_key_total(&total);
        anvil_dec(srv->svc->anvil, &total);
        anvil_dec(srv->svc->anvil, &s->ipkey);
    }
    if (s->user_counted)
        anvil_dec(srv->svc->anvil, &s->userkey);
    if (s->delay)
        ev_timer_cancel(srv->svc->ev, s->delay);
    stall_cancel(s);
    if (s->fetch)
        fetch_job_free(s->fetch);
    if (s->append)
        append_job_free(s->append);
    view_free(s->view);
    imap_parser_free(s->parser);
    conn_free(s->conn);
    if (s->prev)
        s->prev->next = s->next;
    else
        srv->sessions = s->next;
    if (s->next)
        s->next->prev = s->prev;
    srv->nsessions--;
    log_info("disconnect from unknown[%s]%s%s", s->addr, s->user[0] ? " user=" : "", s->user);
    free(s);
    service_session_close(srv->svc);
}

static void on_conn(struct conn *c, enum conn_event ev, void *arg)
{
    struct imap_session *s = arg;

    switch (ev) {
    case CONN_EV_READ:
        session_input(s);
        break;
    case CONN_EV_DRAINED:
        stall_cancel(s);
        if (s->fetch)
            fetch_continue(s);
        else if (s->input == IN_LINE)
            conn_resume(s->conn);
        break;
    case CONN_EV_TLS_DONE:
        if (s->state == IS_NOTAUTH && s->tls_required_hint == 0) {
            /* Implicit TLS: greet now that the channel is encrypted. */
            s->tls_required_hint = 1;
            imap_untagged(s, "OK [CAPABILITY %s] mailcore ready", imap_capabilities(s));
        }
        s->input = IN_LINE;
        conn_resume(s->conn);
        break;
    case CONN_EV_TIMEOUT:
        imap_session_close(s, "Autologout; idle for too long");
        break;
    case CONN_EV_ERROR:
        log_info("lost connection from unknown[%s]%s%s: %s", s->addr,
                 s->user[0] ? " user=" : "", s->user, conn_error(c));
        session_free(s);
        break;
    case CONN_EV_EOF:
    case CONN_EV_CLOSED:
        session_free(s);
        break;
    }
}

void imap_server_accept(struct imap_server *srv, int fd, const char *addr, int implicit_tls)
{
    struct imap_session *s;
    struct anvil *a = srv->svc->anvil;
    struct anvil_key total, ip;
    int counted = 0;

    if (a && anvil_key_addr(&ip, addr) == 0) {
        anvil_key_total(&total);
        anvil_inc(a, &total);
        unsigned n = anvil_inc(a, &ip);
        counted = 1;
        if (n == 0 || n > srv->ip_limit) {
            static const char bye[] = "* BYE Too many connections from your address\r\n";
            anvil_dec(a, &total);
            anvil_dec(a, &ip);
            log_warn("refusing unknown[%s]: imap_client_connection_limit (%zu) reached", addr,
                     srv->ip_limit);
            if (write(fd, bye, sizeof bye - 1) < 0) {
                /* the client is gone */
            }
            close(fd);
            return;
        }
    }
    s = calloc(1, sizeof *s);
    if (s == NULL || (s->parser = imap_parser_new(&srv->limits)) == NULL ||
        (s->conn = conn_new(srv->svc->ev, fd, IMAP_LINE_MAX, on_conn, s)) == NULL) {
        if (s)
            imap_parser_free(s->parser);
        free(s);
        if (counted) {
            anvil_dec(a, &total);
            anvil_dec(a, &ip);
        }
        close(fd);
        return;
    }
    s->srv = srv;
    s->counted = counted;
    s->ipkey = ip;
    snprintf(s->addr, sizeof s->addr, "%s", addr);
    s->next = srv->sessions;
    if (s->next)
        s->next->prev = s;
    srv->sessions = s;
    srv->nsessions++;
    service_session_open(srv->svc);
    conn_set_idle_timeout(s->conn, LOGOUT_IDLE_MS);
    log_info("connect from unknown[%s]", addr);
    if (implicit_tls && srv->svc->tls) {
        s->input = IN_BUSY;
        if (conn_starttls_server(s->conn, srv->svc->tls) < 0)
            imap_session_close(s, NULL);
        return;
    }
    s->tls_required_hint = 1;
    imap_untagged(s, "OK [CAPABILITY %s] mailcore ready", imap_capabilities(s));
}
