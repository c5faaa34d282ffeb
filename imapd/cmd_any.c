/*
 * cmd_any.c - the commands of any state and of logging in: CAPABILITY,
 * NOOP, LOGOUT, STARTTLS, LOGIN, AUTHENTICATE PLAIN (with SASL-IR), ENABLE,
 * ID, IDLE.
 *
 * Passwords are checked against LMDB with libcrypt on every login; a
 * failure is answered after a delay that grows with the failures from the
 * client's address in any process (auth_fail), logged without the password.
 */
#include <openssl/evp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "imapd.h"
#include "mailcore/auth.h"
#include "mailcore/conf.h"
#include "mailcore/conn.h"
#include "mailcore/ev.h"
#include "mailcore/service.h"

void cmd_capability(struct imap_session *s, int uid, const struct imap_arg *args, size_t nargs)
{
    (void)uid, (void)args, (void)nargs;
    imap_untagged(s, "CAPABILITY %s", imap_capabilities(s));
    imap_tagged(s, "OK", "Capability completed");
    imap_command_done(s);
}

void cmd_noop(struct imap_session *s, int uid, const struct imap_arg *args, size_t nargs)
{
    (void)uid, (void)args, (void)nargs;
    if (s->state == IS_SELECTED && view_sync(s, 1) < 0)
        return;
    imap_tagged(s, "OK", "NOOP completed");
    imap_command_done(s);
}

void cmd_check(struct imap_session *s, int uid, const struct imap_arg *args, size_t nargs)
{
    cmd_noop(s, uid, args, nargs);
}

void cmd_logout(struct imap_session *s, int uid, const struct imap_arg *args, size_t nargs)
{
    (void)uid, (void)args, (void)nargs;
    imap_untagged(s, "BYE Logging out");
    imap_tagged(s, "OK", "Logout completed");
    s->input = IN_CLOSING;
    s->state = IS_LOGOUT;
    conn_shutdown(s->conn);
    imap_stall_arm(s);
}

void cmd_starttls(struct imap_session *s, int uid, const struct imap_arg *args, size_t nargs)
{
    (void)uid, (void)args, (void)nargs;
    if (conn_is_tls(s->conn) || s->srv->svc->tls == NULL) {
        imap_tagged(s, "BAD", conn_is_tls(s->conn) ? "TLS is active already"
                                                   : "TLS is not available");
        imap_command_done(s);
        return;
    }
    imap_tagged(s, "OK", "Begin TLS negotiation now");
    s->tag[0] = '\0';
    imap_parser_reset(s->parser);
    if (conn_starttls_server(s->conn, s->srv->svc->tls) < 0)
        imap_session_close(s, NULL);
    /* CONN_EV_TLS_DONE sets IN_LINE; what was pipelined is gone. */
}

/* Login. */

static void on_delay(struct ev_loop *ev, void *arg)
{
    struct imap_session *s = arg;

    (void)ev;
    s->delay = NULL;
    imap_tagged(s, "NO", "[AUTHENTICATIONFAILED] Authentication failed.");
    imap_command_done(s);
}

static void login_done(struct imap_session *s, const struct db_user *u)
{
    struct imap_server *srv = s->srv;
    char key[DB_NAME_MAX + 80];

    if (srv->svc->anvil) {
        /* User names hold no '/': "name/address" is one key per pair. */
        snprintf(key, sizeof key, "%s/%s", u->name, s->addr);
        anvil_key_name(&s->userkey, key);
        if (anvil_inc(srv->svc->anvil, &s->userkey) > srv->user_limit) {
            anvil_dec(srv->svc->anvil, &s->userkey);
            log_warn("refusing login of %s from unknown[%s]: imap_user_connection_limit "
                     "(%zu) reached", u->name, s->addr, srv->user_limit);
            imap_tagged(s, "NO", "[LIMIT] Too many connections for this user from your address");
            imap_command_done(s);
            return;
        }
        s->user_counted = 1;
    }
    snprintf(s->user, sizeof s->user, "%s", u->name);
    s->state = IS_AUTH;
    auth_success(srv->svc->db, s->addr);
    log_info("login: user=<%s>, method=PLAIN, rip=%s%s", u->name, s->addr,
             conn_is_tls(s->conn) ? ", TLS" : "");
    imap_tagged(s, "OK", "[CAPABILITY %s] Logged in", imap_capabilities(s));
    imap_command_done(s);
}

/* Check a login; answers the command (now or after the failure delay). */
static void check_login(struct imap_session *s, const char *login, const char *password)
{
    struct db_user user;
    char err[256];
    uint64_t delay;
    int ok;

    if (!imap_plaintext_ok(s)) {
        imap_tagged(s, "NO", "[PRIVACYREQUIRED] Plaintext authentication disallowed on "
                             "non-secure connections; use STARTTLS");
        imap_command_done(s);
        return;
    }
    ok = auth_login(s->srv->svc->db, login, password, &user, err, sizeof err);
    if (ok < 0) {
        log_warn("login lookup: %s", err);
        imap_tagged(s, "NO", "[UNAVAILABLE] Temporary failure, try again");
        imap_command_done(s);
        return;
    }
    if (ok) {
        login_done(s, &user);
        return;
    }
    delay = auth_fail(s->srv->svc->db, s->addr);
    log_info("authentication failed: rip=%s, user=<%.64s>", s->addr, login);
    s->delay = ev_timer_add(s->srv->svc->ev, delay, on_delay, s);
    if (s->delay == NULL)
        on_delay(s->srv->svc->ev, s);
}

void cmd_login(struct imap_session *s, int uid, const struct imap_arg *args, size_t nargs)
{
    char login[DB_ADDR_MAX + 1], password[AUTH_PASSWORD_MAX + 1];

    (void)uid;
    if (nargs != 2 || imap_astring(&args[0], login, sizeof login) < 0 ||
        imap_astring(&args[1], password, sizeof password) < 0) {
        imap_tagged(s, "BAD", "Syntax: LOGIN user password");
        imap_command_done(s);
        return;
    }
    check_login(s, login, password);
    explicit_bzero(password, sizeof password);
}

/* AUTHENTICATE PLAIN: base64 of "authzid NUL authcid NUL password". */
static void auth_plain(struct imap_session *s, const char *b64, size_t len)
{
    unsigned char raw[AUTH_PASSWORD_MAX + DB_ADDR_MAX * 2 + 8];
    char authz[DB_ADDR_MAX + 1], login[DB_ADDR_MAX + 1], password[AUTH_PASSWORD_MAX + 1];
    int n;
    size_t a, b;

    if (len % 4 != 0 || len / 4 * 3 > sizeof raw - 1 ||
        (n = EVP_DecodeBlock(raw, (const unsigned char *)b64, (int)len)) < 0) {
        imap_tagged(s, "BAD", "Invalid base64");
        imap_command_done(s);
        return;
    }
    while (len > 0 && b64[len - 1] == '=') {        /* padding decodes as NULs */
        len--;
        n--;
    }
    a = strnlen((char *)raw, (size_t)n);
    b = a < (size_t)n ? strnlen((char *)raw + a + 1, (size_t)n - a - 1) : 0;
    if (a >= (size_t)n || a + 1 + b >= (size_t)n || a >= sizeof authz || b >= sizeof login ||
        (size_t)n - a - b - 2 >= sizeof password) {
        imap_tagged(s, "BAD", "Malformed PLAIN response");
        imap_command_done(s);
        explicit_bzero(raw, sizeof raw);
        return;
    }
    memcpy(authz, raw, a);
    authz[a] = '\0';
    memcpy(login, raw + a + 1, b);
    login[b] = '\0';
    memcpy(password, raw + a + b + 2, (size_t)n - a - b - 2);
    password[(size_t)n - a - b - 2] = '\0';
    explicit_bzero(raw, sizeof raw);
    if (authz[0] && strcasecmp(authz, login) != 0) {
        imap_tagged(s, "NO", "[AUTHORIZATIONFAILED] Cannot act as another user");
        imap_command_done(s);
    } else {
        check_login(s, login, password);
    }
    explicit_bzero(password, sizeof password);
}

void imap_auth_line(struct imap_session *s, const char *line, size_t len)
{
    while (len > 0 && (line[len - 1] == '\n' || line[len - 1] == '\r'))
        len--;
    s->input = IN_BUSY;
    conn_pause(s->conn);
    if (len == 1 && line[0] == '*') {
        imap_tagged(s, "BAD", "Authentication cancelled");
        imap_command_done(s);
        return;
    }
    auth_plain(s, line, len);
}

void cmd_authenticate(struct imap_session *s, int uid, const struct imap_arg *args, size_t nargs)
{
    (void)uid;
    if (nargs < 1 || nargs > 2 || args[0].type != IMAP_ARG_ATOM ||
        strcasecmp(args[0].s, "PLAIN") != 0) {
        imap_tagged(s, "NO", "Unsupported authentication mechanism");
        imap_command_done(s);
        return;
    }
    if (!imap_plaintext_ok(s)) {
        imap_tagged(s, "NO", "[PRIVACYREQUIRED] Plaintext authentication disallowed on "
                             "non-secure connections; use STARTTLS");
        imap_command_done(s);
        return;
    }
    if (nargs == 2) {                               /* SASL-IR */
        if (args[1].len == 1 && args[1].s[0] == '=')
            auth_plain(s, "", 0);
        else
            auth_plain(s, args[1].s, args[1].len);
        return;
    }
    conn_printf(s->conn, "+ \r\n");
    s->input = IN_AUTH;
    conn_resume(s->conn);
}

void cmd_enable(struct imap_session *s, int uid, const struct imap_arg *args, size_t nargs)
{
    char enabled[128] = "";
    const char *name;

    (void)uid;
    for (size_t i = 0; i < nargs; i++) {
        if (args[i].type != IMAP_ARG_ATOM)
            continue;
        if (strcasecmp(args[i].s, "IMAP4rev2") == 0 && !s->rev2) {
            s->rev2 = 1;
            if (s->view)
                s->view->rev2 = 1;
            strncat(enabled, " IMAP4rev2", sizeof enabled - strlen(enabled) - 1);
        } else if ((name = condstore_enable(s, args[i].s)) != NULL) {
            strncat(enabled, " ", sizeof enabled - strlen(enabled) - 1);
            strncat(enabled, name, sizeof enabled - strlen(enabled) - 1);
        }
        /* UTF8=ACCEPT is not advertised, so it is not enabled either. */
    }
    imap_untagged(s, "ENABLED%s", enabled);
    imap_tagged(s, "OK", "Enabled");
    imap_command_done(s);
}

void cmd_id(struct imap_session *s, int uid, const struct imap_arg *args, size_t nargs)
{
    (void)uid, (void)args, (void)nargs;
    imap_untagged(s, "ID (\"name\" \"mailcore\" \"version\" \"%s\")", MAILCORE_VERSION);
    imap_tagged(s, "OK", "ID completed");
    imap_command_done(s);
}

void cmd_idle(struct imap_session *s, int uid, const struct imap_arg *args, size_t nargs)
{
    (void)uid, (void)args, (void)nargs;
    if (s->state == IS_SELECTED && view_sync(s, 1) < 0)
        return;
    snprintf(s->idle_tag, sizeof s->idle_tag, "%s", s->tag);
    conn_printf(s->conn, "+ idling\r\n");
    imap_parser_reset(s->parser);
    s->tag[0] = '\0';
    s->input = IN_IDLE;
    if (s->view)
        view_sleep(s->view);
    conn_resume(s->conn);
}
