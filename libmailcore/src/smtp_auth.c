/*
 * smtp_auth.c - SMTP AUTH (RFC 4954) for submission: PLAIN (with an initial
 * response or a continuation) and LOGIN, checked against LMDB with
 * libcrypt.  Offered only over TLS, from loopback, or with
 * submission_allow_plaintext_auth = yes.  A failure is answered after a
 * delay that grows with the failures from the client's address; the
 * password is never logged.
 */
#include <openssl/evp.h>
#include <stdio.h>
#include <string.h>
#include <strings.h>

#include "mailcore/auth.h"
#include "mailcore/conf.h"
#include "mailcore/conn.h"
#include "mailcore/ev.h"
#include "mailcore/service.h"
#include "smtp_internal.h"

#define AUTH_LINE_MAX 12288     /* RFC 4954 4: an AUTH line may be 12288 octets */

int smtp_auth_offered(const struct smtp_session *s)
{
    return s->srv->policy.submission &&
           (conn_is_tls(s->conn) || service_is_loopback(s->addr) ||
            conf_bool(s->srv->svc->conf, "submission_allow_plaintext_auth"));
}

/* Base64 of text into out (NUL-terminated); -1 when it is not base64. */
static int b64decode(const char *in, size_t len, char *out, size_t outsz, size_t *outlen)
{
    int n, pad = 0;

    if (len % 4 != 0 || len / 4 * 3 + 1 > outsz)
        return -1;
    if (len == 0) {
        out[0] = '\0';
        *outlen = 0;
        return 0;
    }
    n = EVP_DecodeBlock((unsigned char *)out, (const unsigned char *)in, (int)len);
    if (n < 0)
        return -1;
    while (pad < 2 && len > (size_t)pad && in[len - 1 - pad] == '=')
        pad++;
    *outlen = (size_t)n - (size_t)pad;
    out[*outlen] = '\0';
    return 0;
}

static void on_delay(struct ev_loop *ev, void *arg)
{
    struct smtp_session *s = arg;

    (void)ev;
    s->auth_delay = NULL;
    s->state = S_COMMAND;
    smtp_reply(s, SMTP_R_AUTH_FAILED);
    conn_resume(s->conn);
}

static void verify(struct smtp_session *s, const char *login, const char *password,
                   const char *method)
{
    struct db_user user;
    char err[256];
    uint64_t delay;
    int ok;

    s->auth_step = 0;
    ok = auth_login(s->srv->svc->db, login, password, &user, err, sizeof err);
    if (ok < 0) {
        log_warn("AUTH lookup: %s", err);
        s->state = S_COMMAND;
        smtp_reply(s, SMTP_R_TEMP_LOOKUP, login);
        return;
    }
    if (ok) {
        snprintf(s->user, sizeof s->user, "%s", user.name);
        s->auth_method = method;
        s->state = S_COMMAND;
        auth_success(s->srv->svc->db, s->addr);
        smtp_reply(s, SMTP_R_AUTH_OK);
        return;
    }
    log_warn("unknown[%s]: SASL %s authentication failed: user=<%.64s>", s->addr, method, login);
    delay = auth_fail(s->srv->svc->db, s->addr);
    s->state = S_AUTH_WAIT;
    conn_pause(s->conn);
    s->auth_delay = ev_timer_add(s->srv->svc->ev, delay, on_delay, s);
    if (s->auth_delay == NULL)
        on_delay(s->srv->svc->ev, s);
}

/* "authzid NUL authcid NUL password"; an authzid must be the authcid. */
static void plain_response(struct smtp_session *s, const char *b64, size_t len)
{
    char raw[AUTH_LINE_MAX];
    size_t n, a, b;
    int bad = 0;

    if (b64decode(b64, len, raw, sizeof raw, &n) < 0 || (a = strnlen(raw, n)) >= n ||
        (b = strnlen(raw + a + 1, n - a - 1)) >= n - a - 1 || b > DB_ADDR_MAX)
        bad = 1;
    if (bad || (a > 0 && (a != b || strncasecmp(raw, raw + a + 1, b) != 0))) {
        explicit_bzero(raw, sizeof raw);
        s->state = S_COMMAND;
        s->auth_step = 0;
        smtp_reply(s, bad ? SMTP_R_AUTH_SYNTAX : SMTP_R_AUTH_FAILED);
        return;
    }
    verify(s, raw + a + 1, raw + a + b + 2, "PLAIN");
    explicit_bzero(raw, sizeof raw);
}

void smtp_auth_line(struct smtp_session *s, const char *line, size_t len)
{
    char raw[AUTH_LINE_MAX];
    size_t n;

    while (len > 0 && (line[len - 1] == '\n' || line[len - 1] == '\r'))
        len--;
    if (len == 1 && line[0] == '*') {
        s->state = S_COMMAND;
        s->auth_step = 0;
        smtp_reply(s, SMTP_R_AUTH_ABORTED);
        return;
    }
    switch (s->auth_step) {
    case 1:
        plain_response(s, line, len);
        break;
    case 2:
        if (b64decode(line, len, raw, sizeof raw, &n) < 0 || n > DB_ADDR_MAX ||
            strlen(raw) != n) {
            s->state = S_COMMAND;
            smtp_reply(s, SMTP_R_AUTH_SYNTAX);
            return;
        }
        memcpy(s->auth_login, raw, n + 1);
        s->auth_step = 3;
        smtp_reply(s, SMTP_R_AUTH_CHALLENGE, "UGFzc3dvcmQ6");        /* "Password:" */
        break;
    case 3:
        if (b64decode(line, len, raw, sizeof raw, &n) < 0 || strlen(raw) != n) {
            s->state = S_COMMAND;
            smtp_reply(s, SMTP_R_AUTH_SYNTAX);
        } else {
            verify(s, s->auth_login, raw, "LOGIN");
        }
        explicit_bzero(raw, sizeof raw);
        break;
    default:
        s->state = S_COMMAND;
        break;
    }
}

void smtp_cmd_auth(struct smtp_session *s, const struct smtp_cmd *cmd)
{
    const char *arg = cmd->arg, *sp = memchr(arg, ' ', cmd->arglen);
    size_t mlen = sp ? (size_t)(sp - arg) : cmd->arglen;

    if (!s->srv->policy.submission) {
        smtp_reply(s, SMTP_R_AUTH_NOT_ENABLED);
        return;
    }
    if (s->user[0]) {
        smtp_reply(s, SMTP_R_AUTH_ALREADY);
        return;
    }
    if (s->helo[0] == '\0') {
        smtp_reply(s, SMTP_R_NEED_HELO);
        return;
    }
    if (s->has_mail) {
        smtp_reply(s, SMTP_R_NESTED_MAIL);
        return;
    }
    if (!smtp_auth_offered(s)) {
        smtp_reply(s, SMTP_R_AUTH_NEEDS_TLS);
        return;
    }
    if (mlen == 5 && strncasecmp(arg, "PLAIN", 5) == 0) {
        s->auth_step = 1;
        s->state = S_AUTH;
        if (sp) {
            const char *ir = sp + 1;
            size_t irlen = cmd->arglen - mlen - 1;
            if (irlen == 1 && ir[0] == '=')
                irlen = 0;
            plain_response(s, ir, irlen);
        } else {
            smtp_reply(s, SMTP_R_AUTH_CHALLENGE, "");
        }
        return;
    }
    if (mlen == 5 && strncasecmp(arg, "LOGIN", 5) == 0) {
        s->state = S_AUTH;
        if (sp) {                       /* initial response: the user name */
            s->auth_step = 2;
            smtp_auth_line(s, sp + 1, cmd->arglen - mlen - 1);
        } else {
            s->auth_step = 2;
            smtp_reply(s, SMTP_R_AUTH_CHALLENGE, "VXNlcm5hbWU6");    /* "Username:" */
        }
        return;
    }
    smtp_reply(s, SMTP_R_AUTH_MECH);
}
