/*
 * test_conf.c - the configuration parser: every key parses its default and
 * a valid value, every kind of error names file, line and key.
 */
#include <stdlib.h>
#include <unistd.h>

#include "check.h"
#include "mailcore/conf.h"

static int load(struct conf *c, const char *text, char *err, size_t errlen)
{
    return conf_load_buf(c, "test.conf", text, strlen(text), err, errlen);
}

/* A valid non-default value for every type. */
static const char *sample_value(const struct conf_key *k)
{
    switch (k->type) {
    case CONF_PORT: return "2525";
    case CONF_UINT: return "4";
    case CONF_BOOL: return strcmp(k->def, "yes") == 0 ? "no" : "yes";
    case CONF_DURATION: return "20m";
    case CONF_SIZE: return "10m";
    case CONF_LIST: return strcmp(k->name, "listen_address") == 0 ? "127.0.0.1, ::1"
                                                                   : "application/pdf, image/*";
    case CONF_PATH: return (k->flags & CONF_FILE_MUST_EXIST) ? "/etc/hostname" : "/tmp/x";
    case CONF_STR: return "example.test";
    }
    return "";
}

static void test_conf_every_key_has_a_valid_default_and_doc(void)
{
    struct conf *c = conf_new();
    char err[512];

    CHECK(conf_nkeys >= 30);
    for (size_t i = 0; i < conf_nkeys; i++) {
        CHECK(conf_keys[i].doc != NULL && strlen(conf_keys[i].doc) > 10);
        CHECK(conf_is_default(c, conf_keys[i].name));
        CHECK(conf_origin(c, conf_keys[i].name) == NULL);
    }
    CHECK_INT(conf_port(c, "smtpd_port"), 25);
    CHECK_INT(conf_port(c, "submission_port"), 2501);
    CHECK_INT(conf_port(c, "submission_ssl_port"), 465);
    CHECK_INT(conf_port(c, "imap_port"), 143);
    CHECK_INT(conf_port(c, "imaps_port"), 993);
    CHECK_INT(conf_uint(c, "message_size_limit"), 52428800);
    CHECK_INT(conf_uint(c, "max_queue_lifetime"), 5 * 86400);
    CHECK_STR(conf_str(c, "mail_creator"), "mailcore");
    CHECK_STR(conf_str(c, "relay_acl"), "published");
    CHECK(conf_relay_acl_group(c) == NULL);
    CHECK_INT(conf_set(c, "relay_acl", "senders", err, sizeof err), 0);
    CHECK_STR(conf_relay_acl_group(c), "senders");
    CHECK_STR(conf_list_item(c, "listen_address", 0), "0.0.0.0");
    CHECK_STR(conf_list_item(c, "listen_address", 1), "::");
    CHECK(conf_list_item(c, "listen_address", 2) == NULL);
    CHECK_INT(conf_bool(c, "disable_starttls"), 0);
    CHECK(strlen(conf_str(c, "email_domain")) > 0);
    conf_free(c);
}

static void test_conf_every_key_accepts_a_value_and_records_its_line(void)
{
    for (size_t i = 0; i < conf_nkeys; i++) {
        const struct conf_key *k = &conf_keys[i];
        struct conf *c = conf_new();
        char text[512], err[512] = "", origin[64];

        snprintf(text, sizeof text, "# comment\n\n%s = %s\n", k->name, sample_value(k));
        CHECK_INT(load(c, text, err, sizeof err), 0);
        if (err[0])
            fprintf(stderr, "  %s: %s\n", k->name, err);
        CHECK_STR(conf_value_text(c, k->name), sample_value(k));
        CHECK(!conf_is_default(c, k->name));
        snprintf(origin, sizeof origin, "test.conf:3");
        CHECK_STR(conf_origin(c, k->name), origin);
        conf_free(c);
    }
}

static void test_conf_typed_values(void)
{
    struct conf *c = conf_new();
    char err[512];

    CHECK_INT(load(c, "message_size_limit = 10m\nmax_queue_lifetime = 90m\n"
                      "force_ssl = YES\nworker_processes = 3\n", err, sizeof err), 0);
    CHECK_INT(conf_uint(c, "message_size_limit"), 10 * 1024 * 1024);
    CHECK_INT(conf_uint(c, "max_queue_lifetime"), 90 * 60);
    CHECK_INT(conf_bool(c, "force_ssl"), 1);
    CHECK_INT(conf_uint(c, "worker_processes"), 3);
    conf_free(c);
}

static void test_conf_continuation_lines_join(void)
{
    struct conf *c = conf_new();
    char err[512];

    CHECK_INT(load(c, "allowed_attachment_types = application/pdf,\n"
                      "    image/*\n# between\n\ttext/plain\n", err, sizeof err), 0);
    CHECK_STR(conf_list_item(c, "allowed_attachment_types", 0), "application/pdf");
    CHECK_STR(conf_list_item(c, "allowed_attachment_types", 1), "image/*");
    CHECK_STR(conf_list_item(c, "allowed_attachment_types", 2), "text/plain");
    conf_free(c);
}

static void test_conf_crlf_and_spacing_accepted(void)
{
    struct conf *c = conf_new();
    char err[512];

    CHECK_INT(load(c, "smtpd_port=2525\r\nimap_port   =   1143   \r\n", err, sizeof err), 0);
    CHECK_INT(conf_port(c, "smtpd_port"), 2525);
    CHECK_INT(conf_port(c, "imap_port"), 1143);
    conf_free(c);
}

struct bad_case {
    const char *text;
    size_t len;          /* 0: strlen(text) */
    const char *error;   /* the whole expected message */
};

static const struct bad_case bad_cases[] = {
    {"smtpd_port = 25\nbogus_key = 1\n", 0, "test.conf:2: bogus_key: unknown parameter"},
    {"smtpd_port 25\n", 0, "test.conf:1: smtpd_port: missing '=' (expected 'key = value')"},
    {"smtpd_port = 70000\n", 0, "test.conf:1: smtpd_port: '70000' is not a port number (0-65535)"},
    {"smtpd_port = -1\n", 0, "test.conf:1: smtpd_port: '-1' is not a port number (0-65535)"},
    {"smtpd_port = 25k\n", 0, "test.conf:1: smtpd_port: '25k' is not a port number (0-65535)"},
    {"smtpd_port =\n", 0, "test.conf:1: smtpd_port: '' is not a port number (0-65535)"},
    {"force_ssl = maybe\n", 0, "test.conf:1: force_ssl: 'maybe' is not yes or no"},
    {"max_queue_lifetime = 5w\n", 0,
     "test.conf:1: max_queue_lifetime: '5w' is not a duration (e.g. 30s, 10m, 2h, 5d)"},
    {"max_queue_lifetime = 0\n", 0,
     "test.conf:1: max_queue_lifetime: 0 is out of range (1 to 31536000)"},
    {"message_size_limit = 12x\n", 0,
     "test.conf:1: message_size_limit: '12x' is not a size (e.g. 512k, 50m, 1g)"},
    {"message_size_limit = 99999999999999999999999\n", 0,
     "test.conf:1: message_size_limit: '99999999999999999999999' is not a size (e.g. 512k, 50m, 1g)"},
    {"message_size_limit = 100\n", 0,
     "test.conf:1: message_size_limit: 100 is out of range (1024 to 4294967296)"},
    {"worker_processes = 1000\n", 0,
     "test.conf:1: worker_processes: 1000 is out of range (0 to 64)"},
    {"data_directory = relative/path\n", 0,
     "test.conf:1: data_directory: 'relative/path' is not an absolute path"},
    {"tls_cert_file = /nonexistent/cert.pem\n", 0,
     "test.conf:1: tls_cert_file: /nonexistent/cert.pem: No such file or directory"},
    {"relay_ca_file = /etc\n", 0, "test.conf:1: relay_ca_file: /etc: not a regular file"},
    {"  smtpd_port = 25\n", 0,
     "test.conf:1: continuation line without a 'key = value' before it"},
    {"= 25\n", 0, "test.conf:1: expected 'key = value', got '= 25'"},
    {"SMTPD_PORT = 25\n", 0, "test.conf:1: expected 'key = value', got 'SMTPD_PORT = 25'"},
    {"smtpd_port = 2\0005\n", 16, "test.conf:1: control character 0x00 in line"},
    {"email_domain = a\033b\n", 0, "test.conf:1: control character 0x1b in line"},
};

static void test_conf_errors_name_file_line_and_key(void)
{
    for (size_t i = 0; i < sizeof bad_cases / sizeof bad_cases[0]; i++) {
        struct conf *c = conf_new();
        char err[512] = "";
        const char *t = bad_cases[i].text;
        size_t len = bad_cases[i].len ? bad_cases[i].len : strlen(t);

        CHECK_INT(conf_load_buf(c, "test.conf", t, len, err, sizeof err), -1);
        CHECK_STR(err, bad_cases[i].error);
        conf_free(c);
    }
}

static void test_conf_overlong_line_is_an_error(void)
{
    size_t n = CONF_LINE_MAX + 100;
    char *text = malloc(2 * n), err[512];
    struct conf *c = conf_new();

    snprintf(text, 32, "email_domain = ");
    memset(text + strlen(text), 'a', n);
    text[n] = '\n';
    text[n + 1] = '\0';
    CHECK_INT(load(c, text, err, sizeof err), -1);
    CHECK_STR(err, "test.conf:1: line too long (more than 4096 bytes)");
    /* Continuations count towards the bound too. */
    snprintf(text, 2 * n, "email_domain = a\n");
    for (size_t off = strlen(text); off + 101 < 2 * n;) {
        memset(text + off, 'b', 100);
        text[off] = text[off + 1] = ' ';
        text[off + 99] = '\n';
        off += 100;
        text[off] = '\0';
    }
    CHECK_INT(load(c, text, err, sizeof err), -1);
    CHECK_HAS(err, "line too long");
    free(text);
    conf_free(c);
}

static void test_conf_file_errors(void)
{
    struct conf *c = conf_new();
    char err[512], path[] = "/tmp/mailcore-conf-XXXXXX";
    int fd;

    CHECK_INT(conf_load_file(c, "/nonexistent/mailcore.conf", err, sizeof err), -1);
    CHECK_STR(err, "/nonexistent/mailcore.conf: No such file or directory");
    CHECK_INT(conf_load_file(c, "/tmp", err, sizeof err), -1);
    CHECK_STR(err, "/tmp: not a regular file");
    fd = mkstemp(path);
    CHECK(fd >= 0);
    CHECK_INT(write(fd, "imap_port = 1143\nimaps_port = x\n", 32), 32);
    close(fd);
    CHECK_INT(conf_load_file(c, path, err, sizeof err), -1);
    char want[256];
    snprintf(want, sizeof want, "%s:2: imaps_port: 'x' is not a port number (0-65535)", path);
    CHECK_STR(err, want);
    unlink(path);
    conf_free(c);
}

struct validate_case {
    const char *text;
    const char *error;   /* NULL: valid */
};

static const struct validate_case validate_cases[] = {
    {"submission_ssl_port = 0\nimaps_port = 0\n", NULL},
    {"imaps_port = 0\n",
     "submission_ssl_port: port 465 is implicit TLS and needs tls_cert_file and tls_key_file "
     "(or set submission_ssl_port = 0)"},
    {"submission_ssl_port = 0\nimaps_port = 9993\n",
     "test.conf:2: imaps_port: port 9993 is implicit TLS and needs tls_cert_file and "
     "tls_key_file (or set imaps_port = 0)"},
    {"submission_ssl_port = 0\nimaps_port = 0\ntls_cert_file = /etc/hostname\n",
     "test.conf:3: tls_cert_file: is set but tls_key_file is not: set both"},
    {"submission_ssl_port = 0\nimaps_port = 0\nimap_port = 25\n",
     "test.conf:3: imap_port: port 25 is also smtpd_port"},
    {"submission_ssl_port = 0\nimaps_port = 0\nlisten_address = 127.0.0.1 localhost\n",
     "test.conf:3: listen_address: 'localhost' is not an IPv4 or IPv6 address"},
    {"submission_ssl_port = 0\nimaps_port = 0\nemail_domain = bad_domain\n",
     "test.conf:3: email_domain: 'bad_domain' is not a domain name"},
    {"submission_ssl_port = 0\nimaps_port = 0\nrelay_acl = staff group\n",
     "test.conf:3: relay_acl: 'staff group' is neither published nor a group name"},
    {"submission_ssl_port = 0\nimaps_port = 0\nmailserver_password = x\n"
     "mailserver_password_file = /etc/hostname\n",
     "test.conf:4: mailserver_password_file: is set together with mailserver_password: keep "
     "only one"},
    {"submission_ssl_port = 0\nimaps_port = 0\nallowed_attachment_types = pdf\n",
     "test.conf:3: allowed_attachment_types: 'pdf' is not a MIME type like application/pdf or "
     "image/*"},
};

static void test_conf_validate_cross_key_rules(void)
{
    for (size_t i = 0; i < sizeof validate_cases / sizeof validate_cases[0]; i++) {
        struct conf *c = conf_new();
        char err[512] = "";

        CHECK_INT(load(c, validate_cases[i].text, err, sizeof err), 0);
        if (validate_cases[i].error == NULL) {
            CHECK_INT(conf_validate(c, err, sizeof err), 0);
        } else {
            CHECK_INT(conf_validate(c, err, sizeof err), -1);
            CHECK_STR(err, validate_cases[i].error);
        }
        conf_free(c);
    }
}

struct warning_case {
    const char *text;
    const char *warnings;   /* each followed by '\n'; "" for none */
};

#define NO_TLS_PORTS "submission_ssl_port = 0\nimaps_port = 0\n"

static const struct warning_case warning_cases[] = {
    {"tls_cert_file = /etc/hostname\ntls_key_file = /etc/hostname\n", ""},
    {NO_TLS_PORTS,
     "submission_port 2501: STARTTLS is not offered without tls_cert_file, so only loopback "
     "clients can log in: set tls_cert_file and tls_key_file (or submission_port = 0)\n"
     "imap_port 143: STARTTLS is not offered without tls_cert_file, so only loopback clients "
     "can log in: set tls_cert_file and tls_key_file (or imap_port = 0)\n"},
    {NO_TLS_PORTS "imap_port = 0\nsubmission_allow_plaintext_auth = yes\n",
     "submission_port 2501: STARTTLS is not offered without tls_cert_file, so passwords cross "
     "the network in clear (submission_allow_plaintext_auth = yes): set tls_cert_file and "
     "tls_key_file\n"},
    {NO_TLS_PORTS "submission_port = 0\nimap_port = 0\n", ""},
    {NO_TLS_PORTS "listen_address = 127.0.0.1, ::1\n", ""},
    {NO_TLS_PORTS "listen_address = 127.0.0.1, 192.0.2.1\nsubmission_port = 0\n",
     "imap_port 143: STARTTLS is not offered without tls_cert_file, so only loopback clients "
     "can log in: set tls_cert_file and tls_key_file (or imap_port = 0)\n"},
};

static void collect_warning(const char *text, void *arg)
{
    char *all = arg;
    size_t n = strlen(all);

    snprintf(all + n, 2048 - n, "%s\n", text);
}

static void test_conf_warns_of_starttls_ports_without_certificate(void)
{
    for (size_t i = 0; i < sizeof warning_cases / sizeof warning_cases[0]; i++) {
        struct conf *c = conf_new();
        char err[512] = "", all[2048] = "";

        CHECK_INT(load(c, warning_cases[i].text, err, sizeof err), 0);
        CHECK_INT(conf_validate(c, err, sizeof err), 0);
        conf_warnings(c, collect_warning, all);
        CHECK_STR(all, warning_cases[i].warnings);
        conf_free(c);
    }
}

static void test_conf_print_hides_secrets_and_filters(void)
{
    struct conf *c = conf_new();
    char err[512], *buf = NULL;
    size_t len = 0;
    FILE *out = open_memstream(&buf, &len);
    const char *keys[] = {"smtpd_port", NULL};
    const char *bad[] = {"nope", NULL};

    CHECK_INT(load(c, "mailserver_password = s3cret-Pa55\nsmtpd_port = 2525\n", err,
                   sizeof err), 0);
    CHECK_INT(conf_print(c, out, 1, NULL, err, sizeof err), 0);
    CHECK_INT(conf_print(c, out, 0, keys, err, sizeof err), 0);
    fclose(out);
    CHECK_STR(buf, "smtpd_port = 2525\nmailserver_password = (hidden)\nsmtpd_port = 2525\n");
    CHECK(strstr(buf, "s3cret") == NULL);
    free(buf);
    CHECK_INT(conf_print(c, stdout, 0, bad, err, sizeof err), -1);
    CHECK_STR(err, "nope: unknown parameter");
    conf_free(c);
}

static void test_conf_value_parsers(void)
{
    uint64_t v;
    int b;

    CHECK_INT(conf_parse_duration("30", &v), 0);
    CHECK_INT(v, 30);
    CHECK_INT(conf_parse_duration("2d", &v), 0);
    CHECK_INT(v, 172800);
    CHECK_INT(conf_parse_duration("", &v), -1);
    CHECK_INT(conf_parse_duration("1hh", &v), -1);
    CHECK_INT(conf_parse_duration("h", &v), -1);
    CHECK_INT(conf_parse_size("1G", &v), 0);
    CHECK_INT(v, 1073741824);
    CHECK_INT(conf_parse_size("18446744073709551615k", &v), -1);
    CHECK_INT(conf_parse_bool("No", &b), 0);
    CHECK_INT(b, 0);
    CHECK_INT(conf_parse_bool("1", &b), -1);
}

static void test_conf_path_choice(void)
{
    setenv("MAILCORE_CONF", "/env/mailcore.conf", 1);
    CHECK_STR(conf_path_choose("/opt.conf"), "/opt.conf");
    CHECK_STR(conf_path_choose(NULL), "/env/mailcore.conf");
    unsetenv("MAILCORE_CONF");
    CHECK_STR(conf_path_choose(NULL), CONF_DEFAULT_PATH);
}

int main(void)
{
    RUN(test_conf_every_key_has_a_valid_default_and_doc);
    RUN(test_conf_every_key_accepts_a_value_and_records_its_line);
    RUN(test_conf_typed_values);
    RUN(test_conf_continuation_lines_join);
    RUN(test_conf_crlf_and_spacing_accepted);
    RUN(test_conf_errors_name_file_line_and_key);
    RUN(test_conf_overlong_line_is_an_error);
    RUN(test_conf_file_errors);
    RUN(test_conf_validate_cross_key_rules);
    RUN(test_conf_warns_of_starttls_ports_without_certificate);
    RUN(test_conf_print_hides_secrets_and_filters);
    RUN(test_conf_value_parsers);
    RUN(test_conf_path_choice);
    return check_done();
}
