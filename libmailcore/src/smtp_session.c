/*
 * smtp_session.c - the SMTP server's session: accept, the state machine,
 * one handler per command, the one place that formats replies.
 *
 * States (smtp_internal.h): S_TLS_HANDSHAKE, S_COMMAND, S_DATA, S_BDAT,
 * S_COMMIT, S_CLOSING.  Input is read only in S_COMMAND (lines), S_DATA
 * and S_BDAT (bytes); everything the client pipelined waits in the
 * connection while a message is being committed.
 *
 * Bounds: a command line is at most SMTP_PARAM_LINE_MAX bytes for MAIL and
 * RCPT and SMTP_CMD_LINE_MAX for the others (500 5.5.2 beyond, the session
 * goes on); smtpd_hard_error_limit error replies end the session with 421;
 * smtpd_timeout of silence and smtpd_session_timeout in all end it too.
 */
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "mailcore/auth.h"
#include "mailcore/conf.h"
#include "mailcore/conn.h"
#include "mailcore/ev.h"
#include "mailcore/notify.h"
#include "mailcore/queue.h"
#include "mailcore/service.h"
#include "mailcore/store.h"
#include "smtp_internal.h"

#define DATA_CHUNK 65536
/* Replies waiting for a client that does not read: stop reading its
 * commands beyond this, go on when the output has drained. */
#define OUT_HIGH_WATER 65536

static void on_conn(struct conn *c, enum conn_event ev, void *arg);
static void session_input(struct smtp_session *s);

const char *smtp_proto(const struct smtp_session *s)
{
    /* RFC 3848 protocol names for the Received: "with" clause. */
    if (!s->esmtp)
        return "SMTP";
    if (s->user[0])
        return conn_is_tls(s->conn) ? "ESMTPSA" : "ESMTPA";
    return conn_is_tls(s->conn) ? "ESMTPS" : s->srv->policy.proto;
}

void smtp_reply(struct smtp_session *s, enum smtp_reply_id id, ...)
{
    const struct smtp_reply *r = smtp_reply_get(id);
    char text[1024];
    va_list ap;

    va_start(ap, id);
    vsnprintf(text, sizeof text, r->text, ap);
    va_end(ap);
    if (r->status[0])
        conn_printf(s->conn, "%d %s %s\r\n", r->code, r->status, text);
    else
        conn_printf(s->conn, "%d %s\r\n", r->code, text);
    if (r->code == 421) {
        smtp_session_close(s);
    } else if (r->code >= 400 && ++s->errors >= s->srv->error_limit) {
        log_warn("too many errors from unknown[%s]", s->addr);
        smtp_reply(s, SMTP_R_TOO_MANY_ERRORS, s->srv->hostname);
    }
}

/* The transaction's files that were not committed go. */
static void discard_files(struct smtp_session *s)
{
    if (s->msg)
        store_msg_free(s->msg);
    s->msg = NULL;
    if (s->queued)      /* not accepted: the relay must not send it */
        queue_remove(conf_str(s->srv->svc->conf, "queue_directory"), s->qid);
    s->queued = 0;
}

void smtp_session_reset(struct smtp_session *s)
{
    discard_files(s);
    s->has_mail = 0;
    s->nrcpts = 0;
    s->sent_mailbox = 0;
    s->qid[0] = '\0';
    s->bdat_active = 0;
    s->bdat_left = 0;
    s->bdat_error = SMTP_R_NONE;
    s->toolarge = 0;
    s->size = 0;
    if (s->state != S_CLOSING)
        s->state = S_COMMAND;
}

/* A client that stops reading cannot hold a session: when output does not
 * drain (or a closing session does not finish) in time, drop it. */
#define CLOSE_LINGER_MS 5000

static void on_guard(struct ev_loop *ev, void *arg)
{
    struct smtp_session *s = arg;

    (void)ev;
    s->guard = NULL;
    if (s->state == S_COMMIT) {
        s->dead = 1;
        return;
    }
    log_info("timeout while sending to unknown[%s]: dropping the connection", s->addr);
    smtp_session_free(s);
}

static void guard_arm(struct smtp_session *s, uint64_t ms)
{
    if (s->guard == NULL)
        s->guard = ev_timer_add(s->srv->svc->ev, ms, on_guard, s);
}

static void guard_cancel(struct smtp_session *s)
{
    if (s->guard)
        ev_timer_cancel(s->srv->svc->ev, s->guard);
    s->guard = NULL;
}

void smtp_session_close(struct smtp_session *s)
{
    if (s->state == S_CLOSING)
        return;
    s->state = S_CLOSING;
    conn_shutdown(s->conn);
    guard_cancel(s);
    guard_arm(s, CLOSE_LINGER_MS);
}

/* Undo admit()'s service-wide count of one connection. */
static void uncount(struct smtp_server *srv, const struct anvil_key *ip)
{
    struct anvil_key total;

    anvil_key_total(&total);
    anvil_dec(srv->svc->anvil, &total);
    anvil_dec(srv->svc->anvil, ip);
}

static void log_disconnect(struct smtp_session *s)
{
    char counts[256];
    size_t off = 0;
    const struct {
        const char *name;
        unsigned n;
    } c[] = {{"ehlo", s->n_ehlo}, {"helo", s->n_helo}, {"starttls", s->n_starttls},
             {"mail", s->n_mail}, {"rcpt", s->n_rcpt}, {"data", s->n_data},
             {"bdat", s->n_bdat}, {"rset", s->n_rset}, {"noop", s->n_noop},
             {"quit", s->n_quit}, {"unknown", s->n_unknown}};

    counts[0] = '\0';
    for (size_t i = 0; i < sizeof c / sizeof c[0]; i++)
        if (c[i].n && off < sizeof counts)
            off += (size_t)snprintf(counts + off, sizeof counts - off, " %s=%u", c[i].name,
                                    c[i].n);
    log_info("disconnect from unknown[%s]%s commands=%u", s->addr, counts, s->n_commands);
}

void smtp_session_free(struct smtp_session *s)
{
    struct smtp_server *srv = s->srv;

    log_disconnect(s);
    if (s->counted)
        uncount(srv, &s->ipkey);
    discard_files(s);
    if (s->lifetime)
        ev_timer_cancel(srv->svc->ev, s->lifetime);
    if (s->auth_delay)
        ev_timer_cancel(srv->svc->ev, s->auth_delay);
    guard_cancel(s);
    conn_free(s->conn);
    if (s->prev)
        s->prev->next = s->next;
    else
        srv->sessions = s->next;
    if (s->next)
        s->next->prev = s->prev;
    srv->nsessions--;
    free(s->rcpts);
    free(s);
    service_session_close(srv->svc);
}

/* After a commit: go on reading, or finish a session that ended meanwhile. */
void smtp_session_resume(struct smtp_session *s)
{
    if (s->dead) {
        smtp_session_free(s);
        return;
    }
    if (s->state == S_CLOSING)
        return;
    if (s->srv->stopping) {
        smtp_reply(s, SMTP_R_SHUTDOWN, s->srv->hostname);
        return;
    }
    conn_resume(s->conn);
}

/* Command handlers. */

static int need_arg_none(struct smtp_session *s, const struct smtp_cmd *cmd, const char *syntax)
{
    if (cmd->arglen == 0)
        return 1;
    smtp_reply(s, SMTP_R_SYNTAX_ARG, syntax);
    return 0;
}

static void cmd_helo(struct smtp_session *s, const struct smtp_cmd *cmd, int ehlo)
{
    struct smtp_server *srv = s->srv;

    if (smtp_parse_helo(cmd->arg, cmd->arglen) != SMTP_PARSE_OK) {
        smtp_reply(s, SMTP_R_HELO_SYNTAX, ehlo ? "EHLO" : "HELO");
        return;
    }
    smtp_session_reset(s);
    memcpy(s->helo, cmd->arg, cmd->arglen);
    s->helo[cmd->arglen] = '\0';
    s->esmtp = ehlo;
    if (!ehlo) {
        smtp_reply(s, SMTP_R_HELO, srv->hostname);
        return;
    }
    conn_printf(s->conn, "250-%s\r\n250-PIPELINING\r\n250-SIZE %llu\r\n", srv->hostname,
                (unsigned long long)srv->size_limit);
    if (srv->svc->tls && !conn_is_tls(s->conn))
        conn_printf(s->conn, "250-STARTTLS\r\n");
    if (smtp_auth_offered(s))
        conn_printf(s->conn, "250-AUTH PLAIN LOGIN\r\n");
    conn_printf(s->conn, "250-ENHANCEDSTATUSCODES\r\n250-8BITMIME\r\n250-SMTPUTF8\r\n"
                         "250 CHUNKING\r\n");
}

static void cmd_mail(struct smtp_session *s, const struct smtp_cmd *cmd)
{
    static const enum smtp_reply_id errs[] = {
        [SMTP_PARSE_SYNTAX] = SMTP_R_SYNTAX_ARG,
        [SMTP_PARSE_BAD_SENDER] = SMTP_R_BAD_SENDER_SYNTAX,
        [SMTP_PARSE_BAD_RECIPIENT] = SMTP_R_BAD_SENDER_SYNTAX,
        [SMTP_PARSE_BAD_PARAM] = SMTP_R_BAD_PARAM,
        [SMTP_PARSE_TOO_LONG] = SMTP_R_PATH_TOO_LONG,
    };
    enum smtp_parse_error e;

    if (s->helo[0] == '\0') {
        smtp_reply(s, SMTP_R_NEED_HELO);
        return;
    }
    if (s->has_mail) {
        smtp_reply(s, SMTP_R_NESTED_MAIL);
        return;
    }
    e = smtp_parse_mail(cmd->arg, cmd->arglen, &s->from, &s->params);
    if (e != SMTP_PARSE_OK) {
        smtp_reply(s, errs[e], e == SMTP_PARSE_SYNTAX ? "MAIL FROM:<address>" : "parameter");
        return;
    }
    if (s->params.size > s->srv->size_limit) {
        smtp_reply(s, SMTP_R_SIZE_EXCEEDED);
        return;
    }
    if (s->srv->policy.submission && smtp_submit_sender(s, &s->from) != SMTP_R_NONE)
        return;                         /* refused, with its reply */
    s->has_mail = 1;
    s->mail_ms = ev_now_ms(s->srv->svc->ev);
    log_queue_id(s->qid);
    if (s->user[0])
        log_info("%s: client=unknown[%s], sasl_method=%s, sasl_username=%s", s->qid, s->addr,
                 s->auth_method ? s->auth_method : "PLAIN", s->user);
    else
        log_info("%s: client=unknown[%s]", s->qid, s->addr);
    smtp_reply(s, SMTP_R_SENDER_OK);
}

static void log_rcpt_reject(struct smtp_session *s, enum smtp_reply_id id, const char *rcpt)
{
    const struct smtp_reply *r = smtp_reply_get(id);
    char text[1024];

    snprintf(text, sizeof text, r->text, rcpt);
    log_info("NOQUEUE: reject: RCPT from unknown[%s]: %d %s %s; from=<%s> to=<%s> proto=%s "
             "helo=<%s>", s->addr, r->code, r->status, text, s->from.addr, rcpt, smtp_proto(s),
             s->helo);
}

static int add_rcpt(struct smtp_session *s, const struct smtp_rcpt *r)
{
    if (s->nrcpts == s->caprcpts) {
        size_t n = s->caprcpts ? s->caprcpts * 2 : 4;
        struct smtp_rcpt *p;
        if (n > s->srv->rcpt_limit)
            n = s->srv->rcpt_limit;
        p = realloc(s->rcpts, n * sizeof *p);
        if (p == NULL)
            return -1;
        s->rcpts = p;
        s->caprcpts = n;
    }
    s->rcpts[s->nrcpts++] = *r;
    return 0;
}

static void cmd_rcpt(struct smtp_session *s, const struct smtp_cmd *cmd)
{
    struct smtp_path path;
    struct smtp_rcpt r = {0};
    enum smtp_parse_error e;
    enum smtp_reply_id id;

    if (!s->has_mail) {
        smtp_reply(s, SMTP_R_NEED_MAIL);
        return;
    }
    if (s->nrcpts >= s->srv->rcpt_limit) {
        smtp_reply(s, SMTP_R_TOO_MANY_RCPTS);
        return;
    }
    e = smtp_parse_rcpt(cmd->arg, cmd->arglen, &path);
    if (e != SMTP_PARSE_OK) {
        smtp_reply(s, e == SMTP_PARSE_SYNTAX      ? SMTP_R_SYNTAX_ARG
                      : e == SMTP_PARSE_BAD_PARAM ? SMTP_R_BAD_PARAM
                      : e == SMTP_PARSE_TOO_LONG  ? SMTP_R_PATH_TOO_LONG
                                                  : SMTP_R_BAD_RCPT_SYNTAX,
                   e == SMTP_PARSE_SYNTAX ? "RCPT TO:<address>" : "parameter");
        return;
    }
    if (path.utf8 && !s->params.smtputf8) {
        smtp_reply(s, SMTP_R_SMTPUTF8_REQUIRED, path.addr);
        return;
    }
    id = smtp_rcpt_check(s, &path, &r);
    if (id != SMTP_R_RCPT_OK) {
        log_rcpt_reject(s, id, path.addr);
        smtp_reply(s, id, path.addr);
        return;
    }
    if (add_rcpt(s, &r) < 0) {
        smtp_reply(s, SMTP_R_TEMP_LOOKUP, path.addr);
        return;
    }
    smtp_reply(s, SMTP_R_RCPT_OK);
}

/* The checks DATA and BDAT share; SMTP_R_NONE when the message may begin. */
static enum smtp_reply_id may_begin(struct smtp_session *s)
{
    if (!s->has_mail)
        return SMTP_R_NEED_MAIL;
    if (s->nrcpts == 0)
        return SMTP_R_NEED_RCPT;
    return SMTP_R_NONE;
}

static void cmd_data(struct smtp_session *s, const struct smtp_cmd *cmd)
{
    enum smtp_reply_id id;

    if (!need_arg_none(s, cmd, "DATA"))
        return;
    if (s->bdat_active) {
        smtp_reply(s, SMTP_R_DATA_AFTER_BDAT);
        return;
    }
    if ((id = may_begin(s)) != SMTP_R_NONE) {
        smtp_reply(s, id);
        return;
    }
    if (smtp_deliver_begin(s) < 0) {
        smtp_reply(s, SMTP_R_WRITE_ERROR);
        return;
    }
    smtp_data_init(&s->data);
    s->state = S_DATA;
    smtp_reply(s, SMTP_R_DATA_GO);
}

static void cmd_bdat(struct smtp_session *s, const struct smtp_cmd *cmd)
{
    uint64_t size;
    int last;
    enum smtp_reply_id id;

    if (smtp_parse_bdat(cmd->arg, cmd->arglen, &size, &last) != SMTP_PARSE_OK) {
        /* Without a valid size the chunk cannot be told from commands. */
        smtp_reply(s, SMTP_R_SYNTAX_ARG, "BDAT size [LAST]");
        smtp_session_close(s);
        return;
    }
    s->bdat_left = size;
    s->bdat_last = last;
    s->bdat_error = SMTP_R_NONE;
    s->state = S_BDAT;
    if ((id = may_begin(s)) != SMTP_R_NONE) {
        s->bdat_error = id;             /* read the chunk, then refuse it */
        return;
    }
    if (!s->bdat_active) {
        if (smtp_deliver_begin(s) < 0) {
            s->bdat_error = SMTP_R_WRITE_ERROR;
            return;
        }
        s->bdat_active = 1;
        smtp_content_init(&s->content);
    }
}

static void cmd_starttls(struct smtp_session *s, const struct smtp_cmd *cmd)
{
    if (!need_arg_none(s, cmd, "STARTTLS"))
        return;
    if (conn_is_tls(s->conn)) {
        smtp_reply(s, SMTP_R_TLS_ACTIVE);
        return;
    }
    if (s->srv->svc->tls == NULL) {
        smtp_reply(s, SMTP_R_NOT_IMPLEMENTED);
        return;
    }
    smtp_reply(s, SMTP_R_STARTTLS_GO);
    smtp_session_reset(s);
    if (conn_starttls_server(s->conn, s->srv->svc->tls) < 0) {
        log_warn("STARTTLS from unknown[%s]: %s", s->addr, conn_error(s->conn));
        smtp_session_close(s);
        return;
    }
    s->state = S_TLS_HANDSHAKE;
}

/* NOOP, RSET, VRFY, HELP, EXPN beyond smtpd_junk_command_limit count as
 * errors, so a client cannot keep a session busy for ever (Postfix does
 * the same). */
static void count_junk(struct smtp_session *s)
{
    if (++s->junk > s->srv->junk_limit && ++s->errors >= s->srv->error_limit) {
        log_warn("too many junk commands from unknown[%s]", s->addr);
        smtp_reply(s, SMTP_R_TOO_MANY_ERRORS, s->srv->hostname);
    }
}

static void dispatch(struct smtp_session *s, const struct smtp_cmd *cmd)
{
    s->n_commands++;
    if (cmd->verb == SMTP_NOOP || cmd->verb == SMTP_RSET || cmd->verb == SMTP_VRFY ||
        cmd->verb == SMTP_HELP || cmd->verb == SMTP_EXPN) {
        count_junk(s);
        if (s->state == S_CLOSING)
            return;
    }
    switch (cmd->verb) {
    case SMTP_EHLO: s->n_ehlo++; cmd_helo(s, cmd, 1); break;
    case SMTP_HELO: s->n_helo++; cmd_helo(s, cmd, 0); break;
    case SMTP_MAIL: s->n_mail++; cmd_mail(s, cmd); break;
    case SMTP_RCPT: s->n_rcpt++; cmd_rcpt(s, cmd); break;
    case SMTP_DATA: s->n_data++; cmd_data(s, cmd); break;
    case SMTP_BDAT: s->n_bdat++; cmd_bdat(s, cmd); break;
    case SMTP_STARTTLS: s->n_starttls++; cmd_starttls(s, cmd); break;
    case SMTP_RSET:
        s->n_rset++;
        if (need_arg_none(s, cmd, "RSET")) {
            smtp_session_reset(s);
            smtp_reply(s, SMTP_R_OK);
        }
        break;
    case SMTP_NOOP: s->n_noop++; smtp_reply(s, SMTP_R_OK); break;
    case SMTP_QUIT:
        s->n_quit++;
        smtp_reply(s, SMTP_R_BYE);
        smtp_session_close(s);
        break;
    case SMTP_VRFY: smtp_reply(s, SMTP_R_VRFY_DISABLED); break;
    case SMTP_EXPN: smtp_reply(s, SMTP_R_NOT_IMPLEMENTED); break;
    case SMTP_HELP: smtp_reply(s, SMTP_R_HELP); break;
    case SMTP_AUTH: smtp_cmd_auth(s, cmd); break;
    case SMTP_UNKNOWN:
        s->n_unknown++;
        smtp_reply(s, SMTP_R_UNKNOWN_COMMAND);
        break;
    }
}

static void command_line(struct smtp_session *s, const char *line, size_t len)
{
    struct smtp_cmd cmd;

    if (len > 0 && line[len - 1] == '\n')
        len--;
    if (len > 0 && line[len - 1] == '\r')
        len--;
    if (len == 0 || smtp_parse_command(line, len, &cmd) < 0) {
        s->n_commands++;
        s->n_unknown++;
        smtp_reply(s, SMTP_R_BAD_SYNTAX);
        return;
    }
    if (len + 2 > (cmd.verb == SMTP_AUTH ? SMTP_AUTH_LINE_MAX
                   : cmd.verb == SMTP_MAIL || cmd.verb == SMTP_RCPT ? SMTP_PARAM_LINE_MAX
                                                                    : SMTP_CMD_LINE_MAX)) {
        s->n_commands++;
        smtp_reply(s, SMTP_R_LINE_TOO_LONG);
        return;
    }
    dispatch(s, &cmd);
}

/* DATA content: as much as is buffered, up to the end of the message. */
static int data_input(struct smtp_session *s)
{
    static char out[DATA_CHUNK + 2];
    const char *in;
    size_t len, used, outlen;

    if (conn_peek(s->conn, &in, &len) != CONN_OK)
        return 0;
    if (len > DATA_CHUNK)
        len = DATA_CHUNK;
    used = smtp_data_feed(&s->data, in, len, out, &outlen);
    /* A failed write drops s->msg; smtp_deliver_finish() then answers 451. */
    smtp_deliver_write(s, out, outlen);
    conn_consume(s->conn, used);
    if (s->data.done)
        smtp_deliver_finish(s);
    return 1;
}

/* One BDAT chunk: bdat_left bytes, then the reply. */
static int bdat_input(struct smtp_session *s)
{
    const char *in;
    size_t len = 0;

    if (s->bdat_left > 0) {
        if (conn_peek(s->conn, &in, &len) != CONN_OK)
            return 0;
        if (len > s->bdat_left)
            len = (size_t)s->bdat_left;
        if (s->bdat_error == SMTP_R_NONE) {
            smtp_content_feed(&s->content, in, len);
            smtp_deliver_write(s, in, len);
        }
        conn_consume(s->conn, len);
        s->bdat_left -= len;
        if (s->bdat_left > 0)
            return 1;
    }
    s->state = S_COMMAND;
    if (s->bdat_error != SMTP_R_NONE) {
        smtp_reply(s, s->bdat_error);
        if (s->bdat_error == SMTP_R_WRITE_ERROR)
            smtp_session_reset(s);
    } else if (s->bdat_last) {
        smtp_content_end(&s->content);
        smtp_deliver_finish(s);
    } else {
        smtp_reply(s, SMTP_R_CHUNK_OK, (unsigned long long)s->size);
    }
    return 1;
}

static void session_input(struct smtp_session *s)
{
    for (;;) {
        const char *line;
        size_t len;
        enum conn_result r;

        if (conn_out_pending(s->conn) > OUT_HIGH_WATER &&
            (s->state == S_COMMAND || s->state == S_BDAT)) {
            s->out_blocked = 1;
            conn_pause(s->conn);
            guard_arm(s, s->srv->idle_ms);
            return;
        }
        switch (s->state) {
        case S_COMMAND:
            r = conn_read_line(s->conn, &line, &len);
            if (r == CONN_TOOLONG) {
                s->n_commands++;
                smtp_reply(s, SMTP_R_LINE_TOO_LONG);
                continue;
            }
            if (r != CONN_OK) {
                if (r == CONN_AGAIN && s->srv->stopping)
                    smtp_reply(s, SMTP_R_SHUTDOWN, s->srv->hostname);
                return;
            }
            command_line(s, line, len);
            break;
        case S_DATA:
            if (!data_input(s))
                return;
            break;
        case S_BDAT:
            if (!bdat_input(s))
                return;
            break;
        case S_AUTH:
            r = conn_read_line(s->conn, &line, &len);
            if (r == CONN_TOOLONG) {
                s->state = S_COMMAND;
                smtp_reply(s, SMTP_R_AUTH_SYNTAX);
                continue;
            }
            if (r != CONN_OK)
                return;
            smtp_auth_line(s, line, len);
            break;
        default:
            return;
        }
    }
}

static void greet(struct smtp_session *s)
{
    s->state = S_COMMAND;
    smtp_reply(s, SMTP_R_GREETING, s->srv->hostname);
}

static void on_conn(struct conn *c, enum conn_event ev, void *arg)
{
    struct smtp_session *s = arg;
    char tls[160];

    (void)c;
    switch (ev) {
    case CONN_EV_READ:
        session_input(s);
        break;
    case CONN_EV_TLS_DONE:
        log_info("TLS connection established from unknown[%s]: %s", s->addr,
                 conn_tls_summary(s->conn, tls, sizeof tls));
        if (s->n_starttls == 0) {
            greet(s);                   /* implicit TLS: greet once encrypted */
        } else {
            s->helo[0] = '\0';          /* RFC 3207: forget what came before */
            s->esmtp = 0;
            s->user[0] = '\0';
            s->state = S_COMMAND;
        }
        break;
    case CONN_EV_TIMEOUT:
        log_info("timeout after %s from unknown[%s]",
                 s->state == S_DATA || s->state == S_BDAT ? "DATA" : "command", s->addr);
        smtp_reply(s, SMTP_R_TIMEOUT, s->srv->hostname);
        break;
    case CONN_EV_DRAINED:
        if (s->out_blocked) {
            s->out_blocked = 0;
            guard_cancel(s);
            conn_resume(s->conn);
        }
        break;
    case CONN_EV_EOF:
    case CONN_EV_ERROR:
        if (ev == CONN_EV_ERROR && s->state != S_CLOSING)
            log_info("lost connection from unknown[%s]: %s", s->addr, conn_error(s->conn));
        /* fall through */
    case CONN_EV_CLOSED:
        if (s->state == S_COMMIT) {
            s->dead = 1;                /* freed after the commit */
            return;
        }
        smtp_session_free(s);
        break;
    }
}

static void on_lifetime(struct ev_loop *ev, void *arg)
{
    struct smtp_session *s = arg;

    (void)ev;
    s->lifetime = NULL;
    if (s->state == S_COMMIT)
        return;                         /* the commit's reply comes first */
    log_info("session time limit exceeded for unknown[%s]", s->addr);
    smtp_reply(s, SMTP_R_TIMEOUT, s->srv->hostname);
}

static size_t sessions_from(const struct smtp_server *srv, const char *addr)
{
    size_t n = 0;

    for (const struct smtp_session *s = srv->sessions; s; s = s->next)
        n += strcmp(s->addr, addr) == 0;
    return n;
}

/*
 * Count the new connection against the limits: service-wide through anvil
 * when master set it up, else in this process.  SMTP_R_NONE when it may
 * stay; with anvil, *counted says that it must be uncounted at the end.
 */
static enum smtp_reply_id admit(struct smtp_server *srv, const char *addr, struct anvil_key *ip,
                                int *counted)
{
    struct anvil *a = srv->svc->anvil;
    struct anvil_key total;
    unsigned nt, ni;

    *counted = 0;
    if (a == NULL || anvil_key_addr(ip, addr) < 0) {
        if (srv->nsessions >= srv->conn_limit)
            return SMTP_R_TOO_MANY_CONN;
        return sessions_from(srv, addr) >= srv->ip_limit ? SMTP_R_TOO_MANY_CONN_IP : SMTP_R_NONE;
    }
    anvil_key_total(&total);
    nt = anvil_inc(a, &total);
    ni = anvil_inc(a, ip);
    *counted = 1;
    if (nt == 0 || nt > srv->conn_limit || ni == 0 || ni > srv->ip_limit) {
        uncount(srv, ip);
        *counted = 0;
        return nt == 0 || nt > srv->conn_limit ? SMTP_R_TOO_MANY_CONN : SMTP_R_TOO_MANY_CONN_IP;
    }
    return SMTP_R_NONE;
}

/* Refuse a connection before any session exists. */
static void refuse(struct smtp_server *srv, int fd, enum smtp_reply_id id, const char *addr)
{
    const struct smtp_reply *r = smtp_reply_get(id);
    char text[256], line[320];
    int n;

    snprintf(text, sizeof text, r->text, srv->hostname, addr);
    n = snprintf(line, sizeof line, "%d %s %s\r\n", r->code, r->status, text);
    if (send(fd, line, (size_t)n, MSG_DONTWAIT | MSG_NOSIGNAL) < 0) {
        /* The client is gone or not reading: nothing more to do. */
    }
    close(fd);
}

void smtp_server_accept(struct smtp_server *srv, int fd, const char *addr, int implicit_tls)
{
    struct smtp_session *s;
    struct anvil_key ip;
    enum smtp_reply_id no;
    int counted;

    if ((no = admit(srv, addr, &ip, &counted)) != SMTP_R_NONE) {
        log_warn("%s: refusing unknown[%s]: %s limit (%zu) reached", srv->svc->name, addr,
                 no == SMTP_R_TOO_MANY_CONN ? "smtpd_connection_limit"
                                            : "smtpd_client_connection_limit",
                 no == SMTP_R_TOO_MANY_CONN ? srv->conn_limit : srv->ip_limit);
        refuse(srv, fd, no, addr);
        return;
    }
    if ((s = calloc(1, sizeof *s)) == NULL) {
        if (counted)
            uncount(srv, &ip);
        close(fd);
        return;
    }
    s->counted = counted;
    s->ipkey = ip;
    s->srv = srv;
    snprintf(s->addr, sizeof s->addr, "%s", addr);
    /* AUTH lines may be 12288 octets (RFC 4954); others are bounded again
     * per command in command_line(). */
    s->conn = conn_new(srv->svc->ev, fd,
                       srv->policy.submission ? SMTP_AUTH_LINE_MAX : SMTP_PARAM_LINE_MAX, on_conn,
                       s);
    if (s->conn == NULL) {
        if (s->counted)
            uncount(srv, &s->ipkey);
        free(s);
        close(fd);
        return;
    }
    s->next = srv->sessions;
    if (s->next)
        s->next->prev = s;
    srv->sessions = s;
    srv->nsessions++;
    service_session_open(srv->svc);
    conn_set_idle_timeout(s->conn, srv->idle_ms);
    s->lifetime = ev_timer_add(srv->svc->ev, srv->session_ms, on_lifetime, s);
    log_info("connect from unknown[%s]", addr);
    if (implicit_tls && srv->svc->tls) {
        s->state = S_TLS_HANDSHAKE;
        if (conn_starttls_server(s->conn, srv->svc->tls) < 0)
            smtp_session_close(s);
        return;
    }
    greet(s);
}

struct smtp_server *smtp_server_new(struct service *svc, const struct smtp_policy *policy)
{
    struct smtp_server *srv = calloc(1, sizeof *srv);
    const struct conf *c = svc->conf;

    if (srv == NULL)
        return NULL;
    srv->svc = svc;
    srv->policy = *policy;
    srv->hostname = conf_str(c, "myhostname");
    srv->size_limit = conf_uint(c, "message_size_limit");
    srv->rcpt_limit = (size_t)conf_uint(c, "smtpd_recipient_limit");
    srv->error_limit = (unsigned)conf_uint(c, "smtpd_hard_error_limit");
    srv->junk_limit = (unsigned)conf_uint(c, "smtpd_junk_command_limit");
    srv->idle_ms = conf_uint(c, "smtpd_timeout") * 1000;
    srv->session_ms = conf_uint(c, "smtpd_session_timeout") * 1000;
    srv->conn_limit = (size_t)conf_uint(c, "smtpd_connection_limit");
    srv->ip_limit = (size_t)conf_uint(c, "smtpd_client_connection_limit");
    srv->notify = notify_sender_new(conf_str(c, "run_directory"));
    return srv;
}

void smtp_server_stop(struct smtp_server *srv)
{
    struct smtp_session *s, *next;

    srv->stopping = 1;
    for (s = srv->sessions; s; s = next) {
        next = s->next;
        if (s->state == S_COMMAND && conn_in_pending(s->conn) == 0)
            smtp_reply(s, SMTP_R_SHUTDOWN, srv->hostname);
        else if (s->state == S_TLS_HANDSHAKE)
            smtp_session_close(s);
    }
}

void smtp_server_free(struct smtp_server *srv)
{
    while (srv->sessions)
        smtp_session_free(srv->sessions);
    smtp_submit_wake_flush(srv);
    notify_sender_free(srv->notify);
    free(srv->batch);
    free(srv);
}

static void on_accept(struct service *svc, const struct service_listener *l, int fd,
                      const char *addr, void *arg)
{
    (void)svc;
    smtp_server_accept(arg, fd, addr, l->implicit_tls);
}

static void on_stop(struct service *svc, void *arg)
{
    (void)svc;
    smtp_server_stop(arg);
}

int smtp_server_main(const char *name, const struct smtp_policy *policy, int argc, char **argv)
{
    struct service svc;
    struct smtp_server *srv;
    int status;

    service_init(&svc, name, argc, argv, SERVICE_DB);
    if ((srv = smtp_server_new(&svc, policy)) == NULL)
        log_fatal("out of memory");
    svc.on_accept = on_accept;
    svc.on_stop = on_stop;
    svc.arg = srv;
    status = service_run(&svc);
    smtp_server_free(srv);
    service_free(&svc);
    return status;
}
