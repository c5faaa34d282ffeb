/* test_log.c - log line format, queue ids, sanitizing network text. */
#include <ctype.h>
#include <fcntl.h>
#include <stdlib.h>
#include <unistd.h>

#include "check.h"
#include "mailcore/log.h"

/* Run fn with stderr captured into buf. */
static void capture(void (*fn)(void), char *buf, size_t len)
{
    int saved = dup(2), p[2];
    ssize_t n;

    CHECK_INT(pipe(p), 0);
    dup2(p[1], 2);
    close(p[1]);
    fn();
    dup2(saved, 2);
    close(saved);
    n = read(p[0], buf, len - 1);
    buf[n > 0 ? n : 0] = '\0';
    close(p[0]);
}

static void emit(void)
{
    log_info("3F2A1C: from=<%s>, size=%d, nrcpt=%d", "a@x.org", 1234, 1);
    log_warn("something odd");
}

static void test_log_postfix_format_under_journald(void)
{
    char buf[1024], want[256];

    setenv("JOURNAL_STREAM", "8:1234", 1);
    log_init("smtpd");
    capture(emit, buf, sizeof buf);
    snprintf(want, sizeof want,
             "mailcore/smtpd[%ld]: 3F2A1C: from=<a@x.org>, size=1234, nrcpt=1\n"
             "mailcore/smtpd[%ld]: warning: something odd\n", (long)getpid(), (long)getpid());
    CHECK_STR(buf, want);
    unsetenv("JOURNAL_STREAM");
}

static void test_log_syslog_prefix_without_journald(void)
{
    char buf[1024], want[128];

    unsetenv("JOURNAL_STREAM");
    log_init("master");
    capture(emit, buf, sizeof buf);
    snprintf(want, sizeof want, " mailcore/master[%ld]: 3F2A1C: from=<a@x.org>", (long)getpid());
    CHECK_HAS(buf, want);
    /* "Nov 28 00:21:16 host " */
    CHECK(isupper((unsigned char)buf[0]) && buf[3] == ' ' && buf[9] == ':' && buf[12] == ':');
}

static void long_line(void)
{
    char big[5000];

    memset(big, 'x', sizeof big - 1);
    big[sizeof big - 1] = '\0';
    log_info("%s", big);
}

static void test_log_overlong_line_stays_one_line(void)
{
    char buf[4096];

    setenv("JOURNAL_STREAM", "8:1", 1);
    log_init("smtpd");
    capture(long_line, buf, sizeof buf);
    CHECK_INT(strlen(buf), LOG_LINE_MAX - 1);
    CHECK(strchr(buf, '\n') == buf + strlen(buf) - 1);
    unsetenv("JOURNAL_STREAM");
}

static void test_log_queue_ids_are_hex_and_distinct(void)
{
    char a[LOG_QUEUE_ID_LEN + 1], b[LOG_QUEUE_ID_LEN + 1];

    log_queue_id(a);
    log_queue_id(b);
    CHECK_INT(strlen(a), LOG_QUEUE_ID_LEN);
    CHECK(strspn(a, "0123456789ABCDEF") == LOG_QUEUE_ID_LEN);
    CHECK(strcmp(a, b) != 0);
}

static void test_log_sanitize_escapes_control_and_8bit(void)
{
    char out[64];

    log_sanitize(out, sizeof out, "a\r\n\0b\xff\\", 7);
    CHECK_STR(out, "a\\015\\012\\000b\\377\\134");
    log_sanitize(out, 6, "abcdefgh", 8);
    CHECK_STR(out, "abcde");
    log_sanitize(out, 6, "ab\001cd", 5);
    CHECK_STR(out, "ab");
}

int main(void)
{
    RUN(test_log_postfix_format_under_journald);
    RUN(test_log_syslog_prefix_without_journald);
    RUN(test_log_overlong_line_stays_one_line);
    RUN(test_log_queue_ids_are_hex_and_distinct);
    RUN(test_log_sanitize_escapes_control_and_8bit);
    return check_done();
}
