/*
 * conf_check.c - conf_validate(): the checks that need more than one key,
 * run by every program after parsing and by `mailctl check`; and, for
 * `mailctl check` alone, conf_warnings() (valid but seldom meant) and
 * conf_validate_db() (the rules that need the database).
 *
 * Each message says what to change, naming the key and where it was set.
 */
#include <arpa/inet.h>
#include <ctype.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>

#include "mailcore/conf.h"
#include "mailcore/db.h"

static int fail(const struct conf *c, const char *key, char *err, size_t errlen,
                const char *fmt, ...) __attribute__((format(printf, 5, 6)));

static int fail(const struct conf *c, const char *key, char *err, size_t errlen,
                const char *fmt, ...)
{
    const char *origin = conf_origin(c, key);
    int n = snprintf(err, errlen, "%s%s%s: ", origin ? origin : "", origin ? ": " : "", key);
    va_list ap;

    if (n >= 0 && (size_t)n < errlen) {
        va_start(ap, fmt);
        vsnprintf(err + n, errlen - (size_t)n, fmt, ap);
        va_end(ap);
    }
    return -1;
}

static int valid_domain(const char *d)
{
    size_t label = 0, len = strlen(d);

    if (len == 0 || len > 253)
        return 0;
    for (size_t i = 0; i < len; i++) {
        unsigned char ch = (unsigned char)d[i];
        if (ch == '.') {
            if (label == 0 || d[i - 1] == '-')
                return 0;
            label = 0;
        } else if (isalnum(ch) || (ch == '-' && label > 0)) {
            if (++label > 63)
                return 0;
        } else {
            return 0;
        }
    }
    return label > 0 && d[len - 1] != '-';
}

static int check_tls(const struct conf *c, char *err, size_t errlen)
{
    static const char *const tls_ports[] = {"submission_ssl_port", "imaps_port"};
    int cert = conf_str(c, "tls_cert_file")[0] != '\0';
    int key = conf_str(c, "tls_key_file")[0] != '\0';

    if (cert && !key)
        return fail(c, "tls_cert_file", err, errlen, "is set but tls_key_file is not: set both");
    if (key && !cert)
        return fail(c, "tls_key_file", err, errlen, "is set but tls_cert_file is not: set both");
    for (size_t i = 0; i < sizeof tls_ports / sizeof tls_ports[0]; i++)
        if (!cert && conf_port(c, tls_ports[i]) != 0)
            return fail(c, tls_ports[i], err, errlen,
                        "port %d is implicit TLS and needs tls_cert_file and tls_key_file "
                        "(or set %s = 0)", conf_port(c, tls_ports[i]), tls_ports[i]);
    return 0;
}

/* Every listen_address is loopback: no client elsewhere can connect. */
static int loopback_only(const struct conf *c)
{
    const char *a;

    for (size_t i = 0; (a = conf_list_item(c, "listen_address", i)) != NULL; i++)
        if (strncmp(a, "127.", 4) != 0 && strcmp(a, "::1") != 0)
            return 0;
    return 1;
}

/* A STARTTLS port without a certificate offers no STARTTLS: SPEC 2 asks a
 * certificate only of the implicit-TLS ports, and loopback clients (or
 * anyone, with *_allow_plaintext_auth) can still log in, so this warns. */
void conf_warnings(const struct conf *c, void (*warn)(const char *text, void *arg), void *arg)
{
    static const char *const ports[][2] = {
        {"submission_port", "submission_allow_plaintext_auth"},
        {"imap_port", "imap_allow_plaintext_auth"},
    };
    char text[512];

    if (conf_str(c, "tls_cert_file")[0] != '\0' || loopback_only(c))
        return;
    for (size_t i = 0; i < sizeof ports / sizeof ports[0]; i++) {
        int port = conf_port(c, ports[i][0]);

        if (port == 0)
            continue;
        if (conf_bool(c, ports[i][1]))
            snprintf(text, sizeof text, "%s %d: STARTTLS is not offered without tls_cert_file, "
                     "so passwords cross the network in clear (%s = yes): set tls_cert_file "
                     "and tls_key_file", ports[i][0], port, ports[i][1]);
        else
            snprintf(text, sizeof text, "%s %d: STARTTLS is not offered without tls_cert_file, "
                     "so only loopback clients can log in: set tls_cert_file and tls_key_file "
                     "(or %s = 0)", ports[i][0], port, ports[i][0]);
        warn(text, arg);
    }
}

static int check_ports(const struct conf *c, char *err, size_t errlen)
{
    static const char *const ports[] = {"smtpd_port", "submission_port", "submission_ssl_port",
                                        "imap_port", "imaps_port"};
    size_t n = sizeof ports / sizeof ports[0];

    for (size_t i = 0; i < n; i++)
        for (size_t j = i + 1; j < n; j++)
            if (conf_port(c, ports[i]) != 0 && conf_port(c, ports[i]) == conf_port(c, ports[j]))
                return fail(c, ports[j], err, errlen, "port %d is also %s", conf_port(c, ports[j]),
                            ports[i]);
    for (size_t i = 0; conf_list_item(c, "listen_address", i); i++) {
        const char *a = conf_list_item(c, "listen_address", i);
        unsigned char buf[16];
        if (inet_pton(AF_INET, a, buf) != 1 && inet_pton(AF_INET6, a, buf) != 1)
            return fail(c, "listen_address", err, errlen, "'%s' is not an IPv4 or IPv6 address", a);
    }
    return 0;
}

static int check_names(const struct conf *c, char *err, size_t errlen)
{
    const char *acl = conf_str(c, "relay_acl");
    const char *creator = conf_str(c, "mail_creator");

    if (!valid_domain(conf_str(c, "myhostname")))
        return fail(c, "myhostname", err, errlen, "'%s' is not a host name",
                    conf_str(c, "myhostname"));
    if (!valid_domain(conf_str(c, "email_domain")))
        return fail(c, "email_domain", err, errlen, "'%s' is not a domain name",
                    conf_str(c, "email_domain"));
    if (acl[0] == '\0')
        return fail(c, "relay_acl", err, errlen, "is empty: use published or a group name");
    for (const char *p = acl; *p; p++)
        if (!isalnum((unsigned char)*p) && *p != '.' && *p != '_' && *p != '-')
            return fail(c, "relay_acl", err, errlen, "'%s' is neither published nor a group name",
                        acl);
    if (creator[0] == '\0' || strlen(creator) > 32)
        return fail(c, "mail_creator", err, errlen, "must name a system account");
    return 0;
}

static int check_relay(const struct conf *c, char *err, size_t errlen)
{
    const char *host = conf_str(c, "mailserver_host");

    if (conf_str(c, "mailserver_password")[0] && conf_str(c, "mailserver_password_file")[0])
        return fail(c, "mailserver_password_file", err, errlen,
                    "is set together with mailserver_password: keep only one");
    for (const char *p = host; *p; p++)
        if (!isalnum((unsigned char)*p) && !strchr(".-:[]", *p))
            return fail(c, "mailserver_host", err, errlen, "'%s' is not a host name or address",
                        host);
    for (size_t i = 0; conf_list_item(c, "allowed_attachment_types", i); i++) {
        const char *t = conf_list_item(c, "allowed_attachment_types", i);
        const char *slash = strchr(t, '/');
        if (strcmp(t, "*") != 0 && (slash == NULL || slash == t || slash[1] == '\0'))
            return fail(c, "allowed_attachment_types", err, errlen,
                        "'%s' is not a MIME type like application/pdf or image/*", t);
    }
    return 0;
}

int conf_validate(const struct conf *c, char *err, size_t errlen)
{
    if (check_tls(c, err, errlen) < 0 || check_ports(c, err, errlen) < 0 ||
        check_names(c, err, errlen) < 0 || check_relay(c, err, errlen) < 0)
        return -1;
    return 0;
}

int conf_validate_db(const struct conf *c, struct db_txn *txn, char *err, size_t errlen)
{
    const char *group = conf_relay_acl_group(c);
    int r = group ? db_group_exists(txn, group) : 0;

    if (r == DB_NOTFOUND)
        return fail(c, "relay_acl", err, errlen, "group '%s' does not exist: no user may send "
                    "(mailctl group add %s, or relay_acl = published)", group, group);
    if (r != 0) {
        snprintf(err, errlen, "%s", db_txn_error(txn));
        return -1;
    }
    return 0;
}
