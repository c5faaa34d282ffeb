/*
 * test_smtp_parse.c - the pure SMTP parsers: command lines, MAIL/RCPT paths
 * and ESMTP parameters, BDAT and HELO arguments, and the DATA/BDAT content
 * rules.
 *
 * DATA framing is checked three ways: a table of hand-written cases; a
 * reference model written from RFC 5321 4.1.1.4/4.5.2 and the header (not
 * from the code); and independence from packet boundaries (every input split
 * at every position, and byte by byte).  Every SMTP smuggling sequence must
 * be flagged and must never end a message.  Lines are pointer + length
 * throughout, so that NUL bytes reach the parsers.
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "check.h"
#include "mailcore/smtp_parse.h"

/* A string literal as pointer + length (it may hold NUL bytes). */
#define L(s) s, sizeof(s) - 1
#define NITEMS(a) (sizeof(a) / sizeof((a)[0]))
#define ALL ((size_t)-1) /* "consumed everything" in the DATA table */
#define CANARY 16

/* ---- command lines ---------------------------------------------------- */

static const struct {
    const char *name;
    enum smtp_verb verb;
} all_verbs[] = {
    {"HELO", SMTP_HELO},         {"EHLO", SMTP_EHLO}, {"MAIL", SMTP_MAIL}, {"RCPT", SMTP_RCPT},
    {"DATA", SMTP_DATA},         {"BDAT", SMTP_BDAT}, {"RSET", SMTP_RSET}, {"NOOP", SMTP_NOOP},
    {"QUIT", SMTP_QUIT},         {"VRFY", SMTP_VRFY}, {"EXPN", SMTP_EXPN}, {"HELP", SMTP_HELP},
    {"STARTTLS", SMTP_STARTTLS}, {"AUTH", SMTP_AUTH},
};

static void test_smtp_command_recognizes_every_verb_in_any_case(void)
{
    for (size_t i = 0; i < NITEMS(all_verbs); i++) {
        const char *name = all_verbs[i].name;
        size_t n = strlen(name);
        char forms[3][16];
        struct smtp_cmd cmd;

        for (size_t k = 0; k <= n; k++) {
            forms[0][k] = name[k];
            forms[1][k] = (char)(name[k] ? name[k] - 'A' + 'a' : 0);
            forms[2][k] = (char)(k % 2 ? forms[1][k] : name[k]); /* "MaIl" */
        }
        for (size_t f = 0; f < 3; f++) {
            CHECK_INT(smtp_parse_command(forms[f], n, &cmd), 0);
            CHECK_INT(cmd.verb, all_verbs[i].verb);
            CHECK_INT(cmd.arglen, 0);
            CHECK(cmd.arg != NULL);
        }
    }
}

static void test_smtp_command_verb_name_round_trips(void)
{
    for (size_t i = 0; i < NITEMS(all_verbs); i++)
        CHECK_STR(smtp_verb_name(all_verbs[i].verb), all_verbs[i].name);
    CHECK_STR(smtp_verb_name(SMTP_UNKNOWN), "unknown");
}

struct cmd_case {
    const char *line;
    size_t len;
    int rc;
    enum smtp_verb verb;
    const char *arg; /* expected argument (pointer + arglen) when rc == 0 */
    size_t arglen;
};

static const struct cmd_case cmd_cases[] = {
    /* Arguments: everything after the verb's single space. */
    {L("MAIL FROM:<a@b.c>"), 0, SMTP_MAIL, L("FROM:<a@b.c>")},
    {L("mail from:<a@b.c> SIZE=10"), 0, SMTP_MAIL, L("from:<a@b.c> SIZE=10")},
    {L("RCPT TO:<a@b.c>"), 0, SMTP_RCPT, L("TO:<a@b.c>")},
    {L("EHLO mail.example.com"), 0, SMTP_EHLO, L("mail.example.com")},
    {L("helo x"), 0, SMTP_HELO, L("x")},
    {L("BDAT 100 LAST"), 0, SMTP_BDAT, L("100 LAST")},
    {L("AUTH PLAIN AGFAAGI="), 0, SMTP_AUTH, L("PLAIN AGFAAGI=")},
    {L("VRFY postmaster"), 0, SMTP_VRFY, L("postmaster")},
    {L("EXPN list"), 0, SMTP_EXPN, L("list")},
    {L("HELP mail"), 0, SMTP_HELP, L("mail")},
    {L("NOOP a b  c"), 0, SMTP_NOOP, L("a b  c")},
    /* Only the one separating space goes; the argument keeps the rest. */
    {L("NOOP  x"), 0, SMTP_NOOP, L(" x")},
    /* Trailing spaces and tabs are dropped from the argument. */
    {L("QUIT   "), 0, SMTP_QUIT, L("")},
    {L("DATA "), 0, SMTP_DATA, L("")},
    {L("RSET \t \t"), 0, SMTP_RSET, L("")},
    {L("MAIL FROM:<a@b.c>   "), 0, SMTP_MAIL, L("FROM:<a@b.c>")},
    {L("MAIL FROM:<a@b.c> \t"), 0, SMTP_MAIL, L("FROM:<a@b.c>")},
    /* A tab inside an argument is not a control character to refuse. */
    {L("NOOP a\tb"), 0, SMTP_NOOP, L("a\tb")},
    /* The empty line: no verb, no argument, not an error. */
    {L(""), 0, SMTP_UNKNOWN, L("")},
    /* Unknown verbs made of letters. */
    {L("FOO"), 0, SMTP_UNKNOWN, L("")},
    {L("FOO bar"), 0, SMTP_UNKNOWN, L("bar")},
    {L("MAI FROM:<a@b.c>"), 0, SMTP_UNKNOWN, L("FROM:<a@b.c>")},
    {L("MAILX FROM:<a@b.c>"), 0, SMTP_UNKNOWN, L("FROM:<a@b.c>")},
    {L("STARTTLSX"), 0, SMTP_UNKNOWN, L("")},
    {L("START"), 0, SMTP_UNKNOWN, L("")},
    {L("TLS"), 0, SMTP_UNKNOWN, L("")},
    /* 8-bit bytes are fine in an argument (SMTPUTF8 addresses)... */
    {L("MAIL FROM:<j\xc3\xb6rg@b.c> SMTPUTF8"), 0, SMTP_MAIL, L("FROM:<j\xc3\xb6rg@b.c> SMTPUTF8")},
    {L("NOOP \xff"), 0, SMTP_NOOP, L("\xff")},
    /* ...but never in the verb. */
    {L("M\xc3\x80IL FROM:<a@b.c>"), -1, SMTP_UNKNOWN, L("")},
    {L("\xffQUIT"), -1, SMTP_UNKNOWN, L("")},
    {L("QUIT\xff"), -1, SMTP_UNKNOWN, L("")},
    {L("\xc3\xa9"), -1, SMTP_UNKNOWN, L("")},
    /* NUL anywhere. */
    {L("\0"), -1, SMTP_UNKNOWN, L("")},
    {L("QUIT\0"), -1, SMTP_UNKNOWN, L("")},
    {L("QU\0IT"), -1, SMTP_UNKNOWN, L("")},
    {L("MAIL FROM:<a@b.c>\0 SIZE=1"), -1, SMTP_UNKNOWN, L("")},
    {L("RCPT TO:<a\0@b.c>"), -1, SMTP_UNKNOWN, L("")},
    {L("\0MAIL FROM:<>"), -1, SMTP_UNKNOWN, L("")},
    /* Control characters anywhere, in the verb or in the argument. */
    {L("NOOP\x01"), -1, SMTP_UNKNOWN, L("")},
    {L("NOOP \x1b[31m"), -1, SMTP_UNKNOWN, L("")},
    {L("NOOP \r"), -1, SMTP_UNKNOWN, L("")},
    {L("NOOP \n"), -1, SMTP_UNKNOWN, L("")},
    {L("DATA\r"), -1, SMTP_UNKNOWN, L("")},
    {L("DATA\n"), -1, SMTP_UNKNOWN, L("")},
    {L("\x7f"), -1, SMTP_UNKNOWN, L("")},
    {L("NOOP a\x7f"), -1, SMTP_UNKNOWN, L("")},
    {L("RCPT TO:<a@b.c>\rDATA"), -1, SMTP_UNKNOWN, L("")},
    {L("MAIL FROM:<a@b.c>\nRCPT TO:<x@y.z>"), -1, SMTP_UNKNOWN, L("")},
    {L("\x1f"), -1, SMTP_UNKNOWN, L("")},
    /* A tab does not separate the verb from its argument. */
    {L("NOOP\tx"), -1, SMTP_UNKNOWN, L("")},
};

static void test_smtp_command_table(void)
{
    for (size_t i = 0; i < NITEMS(cmd_cases); i++) {
        const struct cmd_case *t = &cmd_cases[i];
        struct smtp_cmd cmd;
        int rc = smtp_parse_command(t->line, t->len, &cmd);

        CHECK_INT(rc, t->rc);
        if (rc != t->rc)
            fprintf(stderr, "  case %zu: \"%.*s\"\n", i, (int)t->len, t->line);
        if (rc != 0 || t->rc != 0)
            continue;
        CHECK_INT(cmd.verb, t->verb);
        CHECK_INT(cmd.arglen, t->arglen);
        if (cmd.arglen == t->arglen && memcmp(cmd.arg, t->arg, t->arglen) != 0) {
            fprintf(stderr, "  case %zu: argument \"%.*s\"\n", i, (int)cmd.arglen, cmd.arg);
            CHECK(!"argument differs");
        }
        /* The argument lies inside the line (or is the empty string). */
        CHECK(cmd.arglen == 0 || (cmd.arg >= t->line && cmd.arg + cmd.arglen <= t->line + t->len));
    }
}

/* Verbs with digits or punctuation are not commands: refused or unknown, but
 * never taken for a known verb. */
static void test_smtp_command_odd_verbs_are_never_known(void)
{
    static const struct {
        const char *line;
        size_t len;
    } odd[] = {
        {L("X-FOO")},    {L("1234")},      {L("MAIL:FROM:<a@b.c>")},
        {L(" QUIT")},    {L("STARTTLS2")}, {L("MAIL-FROM:<a@b.c>")},
        {L("\"QUIT\"")}, {L("   ")},       {L("<a@b.c>")},
        {L("QUIT.")},    {L("DATA.")},     {L(".")},
    };

    for (size_t i = 0; i < NITEMS(odd); i++) {
        struct smtp_cmd cmd;
        int rc = smtp_parse_command(odd[i].line, odd[i].len, &cmd);

        CHECK(rc == -1 || cmd.verb == SMTP_UNKNOWN);
    }
}

static void test_smtp_command_survives_a_1mb_line(void)
{
    size_t n = 1 << 20;
    char *line = malloc(n);
    struct smtp_cmd cmd;

    /* A long argument: parsed, bounded by the line. */
    memcpy(line, "NOOP ", 5);
    memset(line + 5, 'a', n - 5);
    CHECK_INT(smtp_parse_command(line, n, &cmd), 0);
    CHECK_INT(cmd.verb, SMTP_NOOP);
    CHECK_INT(cmd.arglen, n - 5);
    CHECK(cmd.arg == line + 5);
    /* A long verb: unknown. */
    memset(line, 'A', n);
    CHECK_INT(smtp_parse_command(line, n, &cmd), 0);
    CHECK_INT(cmd.verb, SMTP_UNKNOWN);
    /* Only spaces after the verb. */
    memcpy(line, "QUIT", 4);
    memset(line + 4, ' ', n - 4);
    CHECK_INT(smtp_parse_command(line, n, &cmd), 0);
    CHECK_INT(cmd.verb, SMTP_QUIT);
    CHECK_INT(cmd.arglen, 0);
    /* A NUL at the very end still counts. */
    line[n - 1] = '\0';
    CHECK_INT(smtp_parse_command(line, n, &cmd), -1);
    /* 8-bit bytes: in the argument fine, as the verb refused. */
    memset(line, 0xe9, n);
    CHECK_INT(smtp_parse_command(line, n, &cmd), -1);
    memcpy(line, "NOOP ", 5);
    CHECK_INT(smtp_parse_command(line, n, &cmd), 0);
    CHECK_INT(cmd.arglen, n - 5);
    free(line);
}

/* ---- MAIL and RCPT ---------------------------------------------------- */

struct path_case {
    const char *arg;
    size_t len;
    enum smtp_parse_error rc;
    const char *addr; /* expected path when rc == OK */
    int quoted, source_route, utf8;
    uint64_t size; /* MAIL only */
    enum smtp_body body;
    int smtputf8;
};

/* A path case that must fail: only the error matters. */
/* clang-format off */
#define FAILS(s, rc) {L(s), rc, NULL, 0, 0, 0, 0, SMTP_BODY_7BIT, 0}
/* clang-format on */

static const struct path_case mail_cases[] = {
    /* Valid paths. */
    {L("FROM:<a@b.c>"), SMTP_PARSE_OK, "a@b.c", 0, 0, 0, 0, SMTP_BODY_7BIT, 0},
    {L("from:<a@b.c>"), SMTP_PARSE_OK, "a@b.c", 0, 0, 0, 0, SMTP_BODY_7BIT, 0},
    {L("From:<A.B@Example.COM>"), SMTP_PARSE_OK, "A.B@Example.COM", 0, 0, 0, 0, 0, 0},
    {L("FROM:<>"), SMTP_PARSE_OK, "", 0, 0, 0, 0, SMTP_BODY_7BIT, 0},
    {L("FROM: <a@b.c>"), SMTP_PARSE_OK, "a@b.c", 0, 0, 0, 0, SMTP_BODY_7BIT, 0},
    {L("FROM: <>"), SMTP_PARSE_OK, "", 0, 0, 0, 0, SMTP_BODY_7BIT, 0},
    {L("FROM:a@b.c"), SMTP_PARSE_OK, "a@b.c", 0, 0, 0, 0, SMTP_BODY_7BIT, 0},
    {L("FROM: a@b.c"), SMTP_PARSE_OK, "a@b.c", 0, 0, 0, 0, SMTP_BODY_7BIT, 0},
    {L("FROM:<a@b>"), SMTP_PARSE_OK, "a@b", 0, 0, 0, 0, SMTP_BODY_7BIT, 0},
    {L("FROM:<first.last+tag@sub.b-c.d>"), SMTP_PARSE_OK, "first.last+tag@sub.b-c.d", 0, 0, 0, 0, 0,
     0},
    {L("FROM:<!#$%&'*+-/=?^_`{|}~@b.c>"), SMTP_PARSE_OK, "!#$%&'*+-/=?^_`{|}~@b.c", 0, 0, 0, 0, 0,
     0},
    {L("FROM:<a@1.2.3.4>"), SMTP_PARSE_OK, "a@1.2.3.4", 0, 0, 0, 0, 0, 0},
    {L("FROM:<\"john doe\"@b.c>"), SMTP_PARSE_OK, "\"john doe\"@b.c", 1, 0, 0, 0, 0, 0},
    {L("FROM:<\"a@x\"@b.c>"), SMTP_PARSE_OK, "\"a@x\"@b.c", 1, 0, 0, 0, 0, 0},
    {L("FROM:<\"a\\\"b\"@b.c>"), SMTP_PARSE_OK, "\"a\\\"b\"@b.c", 1, 0, 0, 0, 0, 0},
    {L("FROM:<\"\"@b.c>"), SMTP_PARSE_OK, "\"\"@b.c", 1, 0, 0, 0, 0, 0},
    {L("FROM:<@r1.x:u@d.e>"), SMTP_PARSE_OK, "u@d.e", 0, 1, 0, 0, 0, 0},
    {L("FROM:<@r1.x,@r2.y:u@d.e>"), SMTP_PARSE_OK, "u@d.e", 0, 1, 0, 0, 0, 0},
    {L("FROM:<@r1.x,@[1.2.3.4]:\"q q\"@d.e>"), SMTP_PARSE_OK, "\"q q\"@d.e", 1, 1, 0, 0, 0, 0},
    {L("FROM:<a@[1.2.3.4]>"), SMTP_PARSE_OK, "a@[1.2.3.4]", 0, 0, 0, 0, 0, 0},
    {L("FROM:<a@[IPv6:2001:db8::1]>"), SMTP_PARSE_OK, "a@[IPv6:2001:db8::1]", 0, 0, 0, 0, 0, 0},
    /* Invalid paths. */
    FAILS("FROM:<a@b.c", SMTP_PARSE_BAD_SENDER),
    FAILS("FROM:<", SMTP_PARSE_BAD_SENDER),
    FAILS("FROM:", SMTP_PARSE_BAD_SENDER),
    FAILS("FROM: ", SMTP_PARSE_BAD_SENDER),
    FAILS("FROM:a@b.c>", SMTP_PARSE_BAD_SENDER),
    FAILS("FROM:<a@b.c>x", SMTP_PARSE_BAD_SENDER),
    FAILS("FROM:<a@b.c>>", SMTP_PARSE_BAD_SENDER),
    FAILS("FROM:<<a@b.c>>", SMTP_PARSE_BAD_SENDER),
    FAILS("FROM:<a@>", SMTP_PARSE_BAD_SENDER),
    FAILS("FROM:<@b>", SMTP_PARSE_BAD_SENDER),
    FAILS("FROM:<@b.c>", SMTP_PARSE_BAD_SENDER),
    FAILS("FROM:<a>", SMTP_PARSE_BAD_SENDER),
    FAILS("FROM:<a..b@c>", SMTP_PARSE_BAD_SENDER),
    FAILS("FROM:<.a@b>", SMTP_PARSE_BAD_SENDER),
    FAILS("FROM:<a.@b>", SMTP_PARSE_BAD_SENDER),
    FAILS("FROM:<a@-b.c>", SMTP_PARSE_BAD_SENDER),
    FAILS("FROM:<a@b-.c>", SMTP_PARSE_BAD_SENDER),
    FAILS("FROM:<a@b.c->", SMTP_PARSE_BAD_SENDER),
    FAILS("FROM:<a@b..c>", SMTP_PARSE_BAD_SENDER),
    FAILS("FROM:<a@.b.c>", SMTP_PARSE_BAD_SENDER),
    FAILS("FROM:<a@b.c.>", SMTP_PARSE_BAD_SENDER),
    FAILS("FROM:<a@b_c.d>", SMTP_PARSE_BAD_SENDER),
    FAILS("FROM:<a@@b.c>", SMTP_PARSE_BAD_SENDER),
    FAILS("FROM:<a@b@c.d>", SMTP_PARSE_BAD_SENDER),
    FAILS("FROM:<a b@c.d>", SMTP_PARSE_BAD_SENDER),
    FAILS("FROM:<a@b c.d>", SMTP_PARSE_BAD_SENDER),
    FAILS("FROM:<a(x)@b.c>", SMTP_PARSE_BAD_SENDER),
    FAILS("FROM:<a,b@c.d>", SMTP_PARSE_BAD_SENDER),
    FAILS("FROM:<\"a\"b@c.d>", SMTP_PARSE_BAD_SENDER),
    FAILS("FROM:<\"ab@c.d>", SMTP_PARSE_BAD_SENDER),
    FAILS("FROM:<\"a\\\"@c.d>", SMTP_PARSE_BAD_SENDER),
    FAILS("FROM:<\"a>b\"@c.d>", SMTP_PARSE_BAD_SENDER), /* documented: '>' in quotes */
    FAILS("FROM:<a@[]>", SMTP_PARSE_BAD_SENDER),
    FAILS("FROM:<a@[1.2.3.4>", SMTP_PARSE_BAD_SENDER),
    FAILS("FROM:<a@[1.2.3.4]x>", SMTP_PARSE_BAD_SENDER),
    FAILS("FROM:<a@[1.2 3.4]>", SMTP_PARSE_BAD_SENDER),
    FAILS("FROM:<@:u@d.e>", SMTP_PARSE_BAD_SENDER),
    FAILS("FROM:<@r1.x,:u@d.e>", SMTP_PARSE_BAD_SENDER),
    FAILS("FROM:<@r1.x,@:u@d.e>", SMTP_PARSE_BAD_SENDER),
    FAILS("FROM:<@r 1.x:u@d.e>", SMTP_PARSE_BAD_SENDER),
    FAILS("FROM:<@r1.x:>", SMTP_PARSE_BAD_SENDER),
    FAILS("FROM:<@r1.x:@d.e>", SMTP_PARSE_BAD_SENDER),
    FAILS("FROM:<Postmaster>", SMTP_PARSE_BAD_SENDER), /* RCPT only */
    FAILS("FROM:<postmaster>", SMTP_PARSE_BAD_SENDER),
    /* Control characters and NUL, wherever they hide. */
    FAILS("FROM:<a\x01@b.c>", SMTP_PARSE_BAD_SENDER),
    FAILS("FROM:<a@b\x01.c>", SMTP_PARSE_BAD_SENDER),
    FAILS("FROM:<a@b.c\x7f>", SMTP_PARSE_BAD_SENDER),
    FAILS("FROM:<a\r\n@b.c>", SMTP_PARSE_BAD_SENDER),
    FAILS("FROM:<a\t@b.c>", SMTP_PARSE_BAD_SENDER),
    FAILS("FROM:<\"a\x01\"@b.c>", SMTP_PARSE_BAD_SENDER),
    FAILS("FROM:<\"a\x7f\"@b.c>", SMTP_PARSE_BAD_SENDER),
    FAILS("FROM:<\"a\\\x01\"@b.c>", SMTP_PARSE_BAD_SENDER),
    FAILS("FROM:<\"a\\\x7f\"@b.c>", SMTP_PARSE_BAD_SENDER),
    FAILS("FROM:<\"a\\\n\"@b.c>", SMTP_PARSE_BAD_SENDER),
    FAILS("FROM:<a\0@b.c>", SMTP_PARSE_BAD_SENDER),
    FAILS("FROM:<a@b\0.c>", SMTP_PARSE_BAD_SENDER),
    FAILS("FROM:<\"a\0\"@b.c>", SMTP_PARSE_BAD_SENDER),
    FAILS("FROM:<a@[1.2.3.4\0]>", SMTP_PARSE_BAD_SENDER),
    FAILS("FROM:<a@[1.2.\x01.4]>", SMTP_PARSE_BAD_SENDER),
    FAILS("FROM:<@r1\x01.x:u@d.e>", SMTP_PARSE_BAD_SENDER),
    FAILS("FROM:<@r1\0.x:u@d.e>", SMTP_PARSE_BAD_SENDER),
    /* Not a MAIL argument at all. */
    FAILS("", SMTP_PARSE_SYNTAX),
    FAILS("FROM", SMTP_PARSE_SYNTAX),
    FAILS("FROM <a@b.c>", SMTP_PARSE_SYNTAX),
    FAILS("FRO:<a@b.c>", SMTP_PARSE_SYNTAX),
    FAILS("TO:<a@b.c>", SMTP_PARSE_SYNTAX),
    FAILS(" FROM:<a@b.c>", SMTP_PARSE_SYNTAX),
    /* 8-bit addresses need SMTPUTF8. */
    FAILS("FROM:<j\xc3\xb6rg@b.c>", SMTP_PARSE_BAD_SENDER),
    FAILS("FROM:<a@b\xc3\xa4.c>", SMTP_PARSE_BAD_SENDER),
    FAILS("FROM:<\"\xc3\xb6\"@b.c>", SMTP_PARSE_BAD_SENDER),
    {L("FROM:<j\xc3\xb6rg@b.c> SMTPUTF8"), SMTP_PARSE_OK, "j\xc3\xb6rg@b.c", 0, 0, 1, 0,
     SMTP_BODY_7BIT, 1},
    {L("FROM:<a@b\xc3\xa4.c> smtputf8"), SMTP_PARSE_OK, "a@b\xc3\xa4.c", 0, 0, 1, 0, SMTP_BODY_7BIT,
     1},
    {L("FROM:<\"\xc3\xb6\"@b.c> SMTPUTF8"), SMTP_PARSE_OK, "\"\xc3\xb6\"@b.c", 1, 0, 1, 0,
     SMTP_BODY_7BIT, 1},
    {L("FROM:<a@b.c> SMTPUTF8"), SMTP_PARSE_OK, "a@b.c", 0, 0, 0, 0, SMTP_BODY_7BIT, 1},
    /* Parameters. */
    {L("FROM:<a@b.c> SIZE=1000"), SMTP_PARSE_OK, "a@b.c", 0, 0, 0, 1000, SMTP_BODY_7BIT, 0},
    {L("FROM:<a@b.c> size=0"), SMTP_PARSE_OK, "a@b.c", 0, 0, 0, 0, SMTP_BODY_7BIT, 0},
    {L("FROM:<> SIZE=5"), SMTP_PARSE_OK, "", 0, 0, 0, 5, SMTP_BODY_7BIT, 0},
    {L("FROM:a@b.c SIZE=5"), SMTP_PARSE_OK, "a@b.c", 0, 0, 0, 5, SMTP_BODY_7BIT, 0},
    {L("FROM:<a@b.c> SIZE=9999999999999999999"), SMTP_PARSE_OK, "a@b.c", 0, 0, 0,
     UINT64_C(9999999999999999999), SMTP_BODY_7BIT, 0},
    FAILS("FROM:<a@b.c> SIZE=99999999999999999999", SMTP_PARSE_BAD_PARAM),
    FAILS("FROM:<a@b.c> SIZE=18446744073709551616", SMTP_PARSE_BAD_PARAM),
    FAILS("FROM:<a@b.c> SIZE=123456789012345678901234567890", SMTP_PARSE_BAD_PARAM),
    FAILS("FROM:<a@b.c> SIZE=abc", SMTP_PARSE_BAD_PARAM),
    FAILS("FROM:<a@b.c> SIZE=", SMTP_PARSE_BAD_PARAM),
    FAILS("FROM:<a@b.c> SIZE", SMTP_PARSE_BAD_PARAM),
    FAILS("FROM:<a@b.c> SIZE=-1", SMTP_PARSE_BAD_PARAM),
    FAILS("FROM:<a@b.c> SIZE=+1", SMTP_PARSE_BAD_PARAM),
    FAILS("FROM:<a@b.c> SIZE=1k", SMTP_PARSE_BAD_PARAM),
    FAILS("FROM:<a@b.c> SIZE=0x10", SMTP_PARSE_BAD_PARAM),
    FAILS("FROM:<a@b.c> SIZE=1=2", SMTP_PARSE_BAD_PARAM),
    FAILS("FROM:<a@b.c> SIZE=\xd9\xa1", SMTP_PARSE_BAD_PARAM),
    {L("FROM:<a@b.c> BODY=7BIT"), SMTP_PARSE_OK, "a@b.c", 0, 0, 0, 0, SMTP_BODY_7BIT, 0},
    {L("FROM:<a@b.c> BODY=8BITMIME"), SMTP_PARSE_OK, "a@b.c", 0, 0, 0, 0, SMTP_BODY_8BITMIME, 0},
    {L("FROM:<a@b.c> body=8bitmime"), SMTP_PARSE_OK, "a@b.c", 0, 0, 0, 0, SMTP_BODY_8BITMIME, 0},
    FAILS("FROM:<a@b.c> BODY=BINARYMIME", SMTP_PARSE_BAD_PARAM),
    FAILS("FROM:<a@b.c> BODY=8BIT", SMTP_PARSE_BAD_PARAM),
    FAILS("FROM:<a@b.c> BODY=", SMTP_PARSE_BAD_PARAM),
    FAILS("FROM:<a@b.c> BODY", SMTP_PARSE_BAD_PARAM),
    FAILS("FROM:<a@b.c> SMTPUTF8=yes", SMTP_PARSE_BAD_PARAM),
    {L("FROM:<a@b.c> AUTH=<>"), SMTP_PARSE_OK, "a@b.c", 0, 0, 0, 0, SMTP_BODY_7BIT, 0},
    {L("FROM:<a@b.c> AUTH=<x@y.z>"), SMTP_PARSE_OK, "a@b.c", 0, 0, 0, 0, SMTP_BODY_7BIT, 0},
    FAILS("FROM:<a@b.c> AUTH", SMTP_PARSE_BAD_PARAM),
    FAILS("FROM:<a@b.c> FOO=bar", SMTP_PARSE_BAD_PARAM),
    FAILS("FROM:<a@b.c> FOO", SMTP_PARSE_BAD_PARAM),
    FAILS("FROM:<a@b.c> RET=HDRS", SMTP_PARSE_BAD_PARAM),
    FAILS("FROM:<a@b.c> ENVID=x", SMTP_PARSE_BAD_PARAM),
    FAILS("FROM:<a@b.c> =1", SMTP_PARSE_BAD_PARAM),
    FAILS("FROM:<a@b.c> <x@y.z>", SMTP_PARSE_BAD_PARAM),
    FAILS("FROM:<a@b.c>\tSIZE=1", SMTP_PARSE_BAD_SENDER),
    {L("FROM:<a@b.c> SIZE=10 BODY=8BITMIME SMTPUTF8 AUTH=<>"), SMTP_PARSE_OK, "a@b.c", 0, 0, 0, 10,
     SMTP_BODY_8BITMIME, 1},
    {L("FROM:<a@b.c>  SIZE=10   BODY=8BITMIME  "), SMTP_PARSE_OK, "a@b.c", 0, 0, 0, 10,
     SMTP_BODY_8BITMIME, 0},
    FAILS("FROM:<a@b.c> SIZE=10 FOO", SMTP_PARSE_BAD_PARAM),
    FAILS("FROM:<a@b.c> SIZE=10 BODY=8BITMIME SIZE=x", SMTP_PARSE_BAD_PARAM),
};

static const struct path_case rcpt_cases[] = {
    {L("TO:<a@b.c>"), SMTP_PARSE_OK, "a@b.c", 0, 0, 0, 0, 0, 0},
    {L("to:<a@b.c>"), SMTP_PARSE_OK, "a@b.c", 0, 0, 0, 0, 0, 0},
    {L("To: <a@b.c>"), SMTP_PARSE_OK, "a@b.c", 0, 0, 0, 0, 0, 0},
    {L("TO:a@b.c"), SMTP_PARSE_OK, "a@b.c", 0, 0, 0, 0, 0, 0},
    {L("TO:<a@b.c>   "), SMTP_PARSE_OK, "a@b.c", 0, 0, 0, 0, 0, 0},
    {L("TO:<Postmaster>"), SMTP_PARSE_OK, "Postmaster", 0, 0, 0, 0, 0, 0},
    {L("TO:<postmaster>"), SMTP_PARSE_OK, "postmaster", 0, 0, 0, 0, 0, 0},
    {L("TO:<POSTMASTER>"), SMTP_PARSE_OK, "POSTMASTER", 0, 0, 0, 0, 0, 0},
    {L("TO:<postmaster@b.c>"), SMTP_PARSE_OK, "postmaster@b.c", 0, 0, 0, 0, 0, 0},
    {L("TO:<\"q q\"@b.c>"), SMTP_PARSE_OK, "\"q q\"@b.c", 1, 0, 0, 0, 0, 0},
    {L("TO:<@x.y:a@b.c>"), SMTP_PARSE_OK, "a@b.c", 0, 1, 0, 0, 0, 0},
    {L("TO:<@x.y,@z.w:a@b.c>"), SMTP_PARSE_OK, "a@b.c", 0, 1, 0, 0, 0, 0},
    {L("TO:<a@[1.2.3.4]>"), SMTP_PARSE_OK, "a@[1.2.3.4]", 0, 0, 0, 0, 0, 0},
    /* 8-bit recipients parse and are flagged: the session checks that the
     * transaction's MAIL said SMTPUTF8. */
    {L("TO:<j\xc3\xb6rg@b.c>"), SMTP_PARSE_OK, "j\xc3\xb6rg@b.c", 0, 0, 1, 0, 0, 0},
    FAILS("TO:<>", SMTP_PARSE_BAD_RECIPIENT),
    FAILS("TO:", SMTP_PARSE_BAD_RECIPIENT),
    FAILS("TO:<a@b.c", SMTP_PARSE_BAD_RECIPIENT),
    FAILS("TO:<a@>", SMTP_PARSE_BAD_RECIPIENT),
    FAILS("TO:<@b>", SMTP_PARSE_BAD_RECIPIENT),
    FAILS("TO:<a..b@c>", SMTP_PARSE_BAD_RECIPIENT),
    FAILS("TO:<.a@b>", SMTP_PARSE_BAD_RECIPIENT),
    FAILS("TO:<a.@b>", SMTP_PARSE_BAD_RECIPIENT),
    FAILS("TO:<a@-b.c>", SMTP_PARSE_BAD_RECIPIENT),
    FAILS("TO:<a@b-.c>", SMTP_PARSE_BAD_RECIPIENT),
    FAILS("TO:<a\x01@b.c>", SMTP_PARSE_BAD_RECIPIENT),
    FAILS("TO:<a@[1.2.3.4\0]>", SMTP_PARSE_BAD_RECIPIENT),
    FAILS("TO:<postmasterx>", SMTP_PARSE_BAD_RECIPIENT),
    FAILS("TO:<postmaste>", SMTP_PARSE_BAD_RECIPIENT),
    FAILS("TO:<\"postmaster\">", SMTP_PARSE_BAD_RECIPIENT),
    FAILS("TO:<user>", SMTP_PARSE_BAD_RECIPIENT),
    /* No RCPT parameter is supported. */
    FAILS("TO:<a@b.c> NOTIFY=NEVER", SMTP_PARSE_BAD_PARAM),
    FAILS("TO:<a@b.c> ORCPT=rfc822;a@b.c", SMTP_PARSE_BAD_PARAM),
    FAILS("TO:<a@b.c> SIZE=1", SMTP_PARSE_BAD_PARAM),
    FAILS("TO:<a@b.c> SMTPUTF8", SMTP_PARSE_BAD_PARAM),
    FAILS("TO:<Postmaster> X", SMTP_PARSE_BAD_PARAM),
    FAILS("TO:a@b.c FOO", SMTP_PARSE_BAD_PARAM),
    FAILS("", SMTP_PARSE_SYNTAX),
    FAILS("TO", SMTP_PARSE_SYNTAX),
    FAILS("FROM:<a@b.c>", SMTP_PARSE_SYNTAX),
    FAILS("T:<a@b.c>", SMTP_PARSE_SYNTAX),
};

static void check_path_case(const struct path_case *t, int is_mail, size_t i)
{
    struct smtp_path path;
    struct smtp_mail_params params;
    enum smtp_parse_error rc;

    memset(&path, 0xa5, sizeof path);
    memset(&params, 0xa5, sizeof params);
    rc = is_mail ? smtp_parse_mail(t->arg, t->len, &path, &params)
                 : smtp_parse_rcpt(t->arg, t->len, &path);
    CHECK_INT(rc, t->rc);
    if (rc != t->rc)
        fprintf(stderr, "  %s case %zu: \"%.*s\"\n", is_mail ? "mail" : "rcpt", i, (int)t->len,
                t->arg);
    if (rc != SMTP_PARSE_OK || t->rc != SMTP_PARSE_OK)
        return;
    CHECK_STR(path.addr, t->addr);
    CHECK_INT(path.len, strlen(t->addr));
    CHECK_INT(path.quoted, t->quoted);
    CHECK_INT(path.source_route, t->source_route);
    CHECK_INT(path.utf8, t->utf8);
    if (is_mail) {
        CHECK(params.size == t->size);
        CHECK_INT(params.body, t->body);
        CHECK_INT(params.smtputf8, t->smtputf8);
    }
}

static void test_smtp_mail_paths_and_parameters(void)
{
    for (size_t i = 0; i < NITEMS(mail_cases); i++)
        check_path_case(&mail_cases[i], 1, i);
}

static void test_smtp_rcpt_paths_postmaster_and_no_parameters(void)
{
    for (size_t i = 0; i < NITEMS(rcpt_cases); i++)
        check_path_case(&rcpt_cases[i], 0, i);
}

/* "<" local "@" domain ">" with total length n (brackets included), domain
 * labels of at most 63. */
static size_t make_path(char *buf, const char *prefix, size_t n)
{
    size_t p = strlen(prefix), inner = n - 2, local = 64, dom = inner - local - 1;

    memcpy(buf, prefix, p);
    buf[p++] = '<';
    memset(buf + p, 'a', local);
    p += local;
    buf[p++] = '@';
    for (size_t k = 0; k < dom; k++)
        buf[p + k] = (k % 64 == 63 && k + 1 < dom) ? '.' : 'd';
    p += dom;
    buf[p++] = '>';
    return p;
}

static void test_smtp_path_of_256_is_the_limit(void)
{
    char buf[2048];
    struct smtp_path path;
    struct smtp_mail_params params;
    size_t len;

    len = make_path(buf, "FROM:", SMTP_PATH_MAX);
    CHECK_INT(smtp_parse_mail(buf, len, &path, &params), SMTP_PARSE_OK);
    CHECK_INT(path.len, SMTP_PATH_MAX - 2);
    CHECK_INT(strlen(path.addr), SMTP_PATH_MAX - 2);
    len = make_path(buf, "TO:", SMTP_PATH_MAX);
    CHECK_INT(smtp_parse_rcpt(buf, len, &path), SMTP_PARSE_OK);
    CHECK_INT(path.len, SMTP_PATH_MAX - 2);

    len = make_path(buf, "FROM:", SMTP_PATH_MAX + 1);
    CHECK_INT(smtp_parse_mail(buf, len, &path, &params), SMTP_PARSE_TOO_LONG);
    len = make_path(buf, "TO:", SMTP_PATH_MAX + 1);
    CHECK_INT(smtp_parse_rcpt(buf, len, &path), SMTP_PARSE_TOO_LONG);
    len = make_path(buf, "FROM:", 1000);
    CHECK_INT(smtp_parse_mail(buf, len, &path, &params), SMTP_PARSE_TOO_LONG);
    len = make_path(buf, "TO:", 1000);
    CHECK_INT(smtp_parse_rcpt(buf, len, &path), SMTP_PARSE_TOO_LONG);

    /* Without brackets the same bound holds. */
    len = make_path(buf, "FROM:", 1000);
    buf[5] = ' ';
    buf[len - 1] = ' ';
    CHECK_INT(smtp_parse_mail(buf, len, &path, &params), SMTP_PARSE_TOO_LONG);
    /* A source route counts towards the bound too. */
    len = (size_t)snprintf(buf, sizeof buf, "FROM:<@");
    memset(buf + len, 'r', 60);
    len += 60;
    for (int k = 0; k < 4; k++) {
        memcpy(buf + len, ",@", 2);
        memset(buf + len + 2, 'r', 60);
        len += 62;
    }
    memcpy(buf + len, ":u@d.e>", 7);
    len += 7;
    CHECK_INT(smtp_parse_mail(buf, len, &path, &params), SMTP_PARSE_TOO_LONG);
}

static void test_smtp_domain_label_of_63_is_the_limit(void)
{
    char buf[256];
    struct smtp_path path;
    struct smtp_mail_params params;
    size_t len;

    len = (size_t)snprintf(buf, sizeof buf, "FROM:<a@");
    memset(buf + len, 'x', 63);
    len += 63;
    memcpy(buf + len, ".c>", 3);
    CHECK_INT(smtp_parse_mail(buf, len + 3, &path, &params), SMTP_PARSE_OK);
    buf[len] = 'x'; /* 64 */
    memcpy(buf + len + 1, ".c>", 3);
    CHECK_INT(smtp_parse_mail(buf, len + 4, &path, &params), SMTP_PARSE_BAD_SENDER);
    /* The last label too. */
    len = (size_t)snprintf(buf, sizeof buf, "TO:<a@b.");
    memset(buf + len, 'x', 64);
    buf[len + 64] = '>';
    CHECK_INT(smtp_parse_rcpt(buf, len + 65, &path), SMTP_PARSE_BAD_RECIPIENT);
    buf[len + 63] = '>';
    CHECK_INT(smtp_parse_rcpt(buf, len + 64, &path), SMTP_PARSE_OK);
}

/* The address is a C string too: no byte of it may cut it short. */
static void test_smtp_path_addr_never_holds_a_nul(void)
{
    static const struct {
        const char *arg;
        size_t len;
    } cases[] = {
        {L("FROM:<a@[1\0]>")}, {L("FROM:<a@[\0]>")},   {L("FROM:<\"\0\"@b.c>")},
        {L("FROM:a@b\0c")},    {L("FROM:<a\0b@c.d>")},
    };

    for (size_t i = 0; i < NITEMS(cases); i++) {
        struct smtp_path path;
        struct smtp_mail_params params;
        enum smtp_parse_error rc = smtp_parse_mail(cases[i].arg, cases[i].len, &path, &params);

        CHECK(rc != SMTP_PARSE_OK || strlen(path.addr) == path.len);
        CHECK_INT(rc, SMTP_PARSE_BAD_SENDER);
    }
}

/* ---- BDAT and HELO ---------------------------------------------------- */

static const struct {
    const char *arg;
    size_t len;
    enum smtp_parse_error rc;
    uint64_t size;
    int last;
} bdat_cases[] = {
    {L("0"), SMTP_PARSE_OK, 0, 0},
    {L("100"), SMTP_PARSE_OK, 100, 0},
    {L("100 LAST"), SMTP_PARSE_OK, 100, 1},
    {L("100 last"), SMTP_PARSE_OK, 100, 1},
    {L("0 LAST"), SMTP_PARSE_OK, 0, 1},
    {L("100  LAST"), SMTP_PARSE_OK, 100, 1},
    {L("9999999999999999999"), SMTP_PARSE_OK, UINT64_C(9999999999999999999), 0},
    {L("12345678901234567890"), SMTP_PARSE_SYNTAX, 0, 0},
    {L("18446744073709551616 LAST"), SMTP_PARSE_SYNTAX, 0, 0},
    {L("99999999999999999999"), SMTP_PARSE_SYNTAX, 0, 0},
    {L("abc"), SMTP_PARSE_SYNTAX, 0, 0},
    {L("-1"), SMTP_PARSE_SYNTAX, 0, 0},
    {L("+1"), SMTP_PARSE_SYNTAX, 0, 0},
    {L("1e3"), SMTP_PARSE_SYNTAX, 0, 0},
    {L("0x10"), SMTP_PARSE_SYNTAX, 0, 0},
    {L("100 MORE"), SMTP_PARSE_SYNTAX, 0, 0},
    {L("100 LAST x"), SMTP_PARSE_SYNTAX, 0, 0},
    {L("100 LASTX"), SMTP_PARSE_SYNTAX, 0, 0},
    {L("100LAST"), SMTP_PARSE_SYNTAX, 0, 0},
    {L("LAST"), SMTP_PARSE_SYNTAX, 0, 0},
    {L(""), SMTP_PARSE_SYNTAX, 0, 0},
    {L(" 100"), SMTP_PARSE_SYNTAX, 0, 0},
    {L("100\0"), SMTP_PARSE_SYNTAX, 0, 0},
    {L("1\0000"), SMTP_PARSE_SYNTAX, 0, 0},
    {L("100 LAST\0"), SMTP_PARSE_SYNTAX, 0, 0},
    {L("100\tLAST"), SMTP_PARSE_SYNTAX, 0, 0},
};

static void test_smtp_bdat_size_and_last(void)
{
    for (size_t i = 0; i < NITEMS(bdat_cases); i++) {
        uint64_t size = 12345;
        int last = 7;
        enum smtp_parse_error rc =
            smtp_parse_bdat(bdat_cases[i].arg, bdat_cases[i].len, &size, &last);

        CHECK_INT(rc, bdat_cases[i].rc);
        if (rc != bdat_cases[i].rc)
            fprintf(stderr, "  case %zu: \"%.*s\"\n", i, (int)bdat_cases[i].len, bdat_cases[i].arg);
        if (rc == SMTP_PARSE_OK && bdat_cases[i].rc == SMTP_PARSE_OK) {
            CHECK(size == bdat_cases[i].size);
            CHECK_INT(last, bdat_cases[i].last);
        }
    }
}

static const struct {
    const char *arg;
    size_t len;
    enum smtp_parse_error rc;
} helo_cases[] = {
    {L("mail.example.com"), SMTP_PARSE_OK},
    {L("localhost"), SMTP_PARSE_OK},
    {L("x"), SMTP_PARSE_OK},
    {L("[192.0.2.1]"), SMTP_PARSE_OK},
    {L("[IPv6:2001:db8::1]"), SMTP_PARSE_OK},
    {L("host_name.example"), SMTP_PARSE_OK}, /* lenient, as documented */
    {L(""), SMTP_PARSE_SYNTAX},
    {L(" "), SMTP_PARSE_SYNTAX},
    {L("a b"), SMTP_PARSE_SYNTAX},
    {L(" a"), SMTP_PARSE_SYNTAX},
    {L("a "), SMTP_PARSE_SYNTAX},
    {L("a\tb"), SMTP_PARSE_SYNTAX},
    {L("h\xc3\xa9.example"), SMTP_PARSE_SYNTAX},
    {L("\xff"), SMTP_PARSE_SYNTAX},
    {L("a\0b"), SMTP_PARSE_SYNTAX},
    {L("a\x7f"), SMTP_PARSE_SYNTAX},
    {L("a\r\nMAIL"), SMTP_PARSE_SYNTAX},
    {L("\x1b"), SMTP_PARSE_SYNTAX},
};

static void test_smtp_helo_names(void)
{
    char big[SMTP_DOMAIN_MAX + 2];

    for (size_t i = 0; i < NITEMS(helo_cases); i++) {
        enum smtp_parse_error rc = smtp_parse_helo(helo_cases[i].arg, helo_cases[i].len);

        CHECK_INT(rc, helo_cases[i].rc);
        if (rc != helo_cases[i].rc)
            fprintf(stderr, "  case %zu: \"%.*s\"\n", i, (int)helo_cases[i].len, helo_cases[i].arg);
    }
    memset(big, 'h', sizeof big);
    CHECK_INT(smtp_parse_helo(big, SMTP_DOMAIN_MAX), SMTP_PARSE_OK);         /* 255 */
    CHECK_INT(smtp_parse_helo(big, SMTP_DOMAIN_MAX + 1), SMTP_PARSE_SYNTAX); /* 256 */
}

/* ---- DATA framing ----------------------------------------------------- */

/*
 * The reference model.  The message ends after the first <CRLF>.<CRLF>, or
 * after ".\r\n" as its first line.  A '.' that starts a line (at offset 0 or
 * right after CRLF) is dropped.  A CR at the very end of the input is held
 * back (its successor is not known yet).  Flags: an LF not after CR, a CR
 * whose successor is known and not LF, a NUL.
 */
struct feed_result {
    char *out;
    size_t outlen;
    size_t consumed;
    int done;
    unsigned flags;
    uint64_t size;
};

static int line_start(const char *in, size_t i)
{
    return i == 0 || (i >= 2 && in[i - 2] == '\r' && in[i - 1] == '\n');
}

static void model_feed(const char *in, size_t len, struct feed_result *r)
{
    size_t end = len, content;

    r->done = 0;
    r->flags = 0;
    r->outlen = 0;
    for (size_t i = 0; i + 3 <= len; i++) {
        if (in[i] == '.' && in[i + 1] == '\r' && in[i + 2] == '\n' && line_start(in, i)) {
            end = i + 3;
            r->done = 1;
            break;
        }
    }
    content = r->done ? end - 3 : len;
    for (size_t i = 0; i < content; i++) {
        if (in[i] == '\n' && (i == 0 || in[i - 1] != '\r'))
            r->flags |= SMTP_BARE_LF;
        if (in[i] == '\r' && i + 1 < len && in[i + 1] != '\n')
            r->flags |= SMTP_BARE_CR;
        if (in[i] == '\0')
            r->flags |= SMTP_NUL;
        if (!(in[i] == '.' && line_start(in, i)))
            r->out[r->outlen++] = in[i];
    }
    if (!r->done && len > 0 && in[len - 1] == '\r')
        r->outlen--; /* the held-back CR (never a dropped dot) */
    r->consumed = end;
    r->size = r->outlen;
}

/*
 * Feed in[0..len) in chunks of sizes[0], sizes[1], ... (cycled), as a
 * session would: stop at the end of the message.  Every call gets an output
 * buffer of exactly chunk + 2 bytes followed by a canary; the per-call
 * contract is checked here.  Returns the number of contract violations.
 */
static int feed_chunks(const char *in, size_t len, const size_t *sizes, size_t nsizes,
                       struct feed_result *r)
{
    struct smtp_data d;
    size_t pos = 0, j = 0, calls = 0;
    int bad = 0;

    smtp_data_init(&d);
    r->outlen = 0;
    while (pos < len && !d.done && calls++ < 4 * len + 16) {
        size_t want = sizes[j++ % nsizes], chunk = want < len - pos ? want : len - pos;
        unsigned char *out = malloc(chunk + 2 + CANARY);
        size_t outlen = (size_t)-1, used;

        memset(out, 0xa5, chunk + 2 + CANARY);
        used = smtp_data_feed(&d, in + pos, chunk, (char *)out, &outlen);
        if (outlen > chunk + 2 || used > chunk || (!d.done && used != chunk))
            bad++;
        for (size_t k = 0; k < CANARY; k++)
            if (out[chunk + 2 + k] != 0xa5)
                bad++;
        if (outlen <= chunk + 2 && r->outlen + outlen <= len + 2) {
            memcpy(r->out + r->outlen, out, outlen);
            r->outlen += outlen;
        } else {
            bad++;
        }
        pos += used;
        free(out);
    }
    if (d.done) {
        /* Once done, nothing more is consumed or produced. */
        char out[1 + 2 + 1];
        size_t outlen = 99;

        if (smtp_data_feed(&d, pos < len ? in + pos : "x", 1, out, &outlen) != 0 || outlen != 0)
            bad++;
    }
    r->consumed = pos;
    r->done = d.done;
    r->flags = d.flags;
    r->size = d.size;
    return bad;
}

static int same_result(const struct feed_result *a, const struct feed_result *b)
{
    return a->outlen == b->outlen && memcmp(a->out, b->out, a->outlen) == 0 &&
           a->consumed == b->consumed && a->done == b->done && a->flags == b->flags &&
           a->size == b->size;
}

static void show_result(const char *what, const struct feed_result *r)
{
    fprintf(stderr, "    %s: consumed %zu done %d flags %#x size %llu out \"", what, r->consumed,
            r->done, r->flags, (unsigned long long)r->size);
    for (size_t i = 0; i < r->outlen; i++) {
        unsigned char ch = (unsigned char)r->out[i];
        if (ch >= 0x20 && ch < 0x7f && ch != '\\')
            fputc(ch, stderr);
        else
            fprintf(stderr, "\\x%02x", ch);
    }
    fprintf(stderr, "\"\n");
}

/*
 * The whole contract for one input: one-shot feed, the model, every split
 * into two calls (including empty ones) and byte by byte give the same
 * output, consumed count, done and flags.  Returns 0 when all agree.
 */
static int check_framing(const char *in, size_t len, struct feed_result *oneshot)
{
    struct feed_result model, split;
    static const size_t whole[] = {(size_t)-1}, bytes[] = {1}, odd[] = {3, 0, 1, 2, 7};
    int bad = 0;

    model.out = malloc(len + 1);
    split.out = malloc(len + 3);
    oneshot->out = malloc(len + 3);
    bad += feed_chunks(in, len, whole, 1, oneshot);
    model_feed(in, len, &model);
    if (!same_result(oneshot, &model)) {
        show_result("one-shot", oneshot);
        show_result("model", &model);
        bad++;
    }
    for (size_t k = 0; k <= len; k++) {
        size_t two[] = {k, (size_t)-1};

        bad += feed_chunks(in, len, two, 2, &split);
        if (!same_result(oneshot, &split)) {
            if (!bad) {
                fprintf(stderr, "    split at %zu differs\n", k);
                show_result("split", &split);
            }
            bad++;
        }
    }
    bad += feed_chunks(in, len, bytes, 1, &split);
    if (!same_result(oneshot, &split)) {
        show_result("byte by byte", &split);
        bad++;
    }
    bad += feed_chunks(in, len, odd, NITEMS(odd), &split);
    if (!same_result(oneshot, &split)) {
        show_result("odd chunks", &split);
        bad++;
    }
    free(model.out);
    free(split.out);
    return bad;
}

struct data_case {
    const char *name;
    const char *in;
    size_t inlen;
    const char *out;
    size_t outlen;
    size_t consumed; /* ALL: inlen */
    int done;
    unsigned flags;
};

#define LF SMTP_BARE_LF
#define CR SMTP_BARE_CR
#define NUL SMTP_NUL
#define SMUGGLED "MAIL FROM:<x@y.z>\r\n"

static const struct data_case data_cases[] = {
    {"one line", L("Hello\r\n.\r\n"), L("Hello\r\n"), ALL, 1, 0},
    {"two lines", L("a\r\nb\r\n.\r\n"), L("a\r\nb\r\n"), ALL, 1, 0},
    {"empty message", L(".\r\n"), L(""), ALL, 1, 0},
    {"empty message, pipelined QUIT", L(".\r\nQUIT\r\n"), L(""), 3, 1, 0},
    {"pipelined MAIL stays", L("a\r\n.\r\nMAIL FROM:<a@b.c>\r\n"), L("a\r\n"), 6, 1, 0},
    {"second end stays", L("a\r\n.\r\n.\r\n"), L("a\r\n"), 6, 1, 0},
    {"one byte after end stays", L("a\r\n.\r\nX"), L("a\r\n"), 6, 1, 0},
    {"empty line in body", L("a\r\n\r\nb\r\n.\r\n"), L("a\r\n\r\nb\r\n"), ALL, 1, 0},
    {"dot-stuffed line", L("..x\r\n.\r\n"), L(".x\r\n"), ALL, 1, 0},
    {"lone stuffed dot", L("a\r\n..\r\n.\r\n"), L("a\r\n.\r\n"), ALL, 1, 0},
    {"three dots", L("...\r\n.\r\n"), L("..\r\n"), ALL, 1, 0},
    {"dots mid-line kept", L("a..x.\r\n.\r\n"), L("a..x.\r\n"), ALL, 1, 0},
    {"dot then text", L("a\r\n.x\r\n.\r\n"), L("a\r\nx\r\n"), ALL, 1, 0},
    {"dot space", L(". \r\n.\r\n"), L(" \r\n"), ALL, 1, 0},
    {"no unstuffing after bare LF", L("a\n..x\r\n.\r\n"), L("a\n..x\r\n"), ALL, 1, LF},
    {"no end yet", L("a\r\nb\r\n"), L("a\r\nb\r\n"), ALL, 0, 0},
    {"held dot", L("a\r\n."), L("a\r\n"), ALL, 0, 0},
    {"held dot CR", L("a\r\n.\r"), L("a\r\n"), ALL, 0, 0},
    {"held CR", L("a\r"), L("a"), ALL, 0, 0},
    {"held dot at start", L("."), L(""), ALL, 0, 0},
    {"empty input", L(""), L(""), 0, 0, 0},
    {"bare LF", L("a\nb\r\n.\r\n"), L("a\nb\r\n"), ALL, 1, LF},
    {"bare LF at start", L("\n.\r\n"), L("\n.\r\n"), ALL, 0, LF},
    {"bare CR", L("a\rb\r\n.\r\n"), L("a\rb\r\n"), ALL, 1, CR},
    {"CR CR LF", L("a\r\r\nb\r\n.\r\n"), L("a\r\r\nb\r\n"), ALL, 1, CR},
    {"CR CR LF at start", L("\r\r\n.\r\n"), L("\r\r\n"), ALL, 1, CR},
    {"CR CR LF then end", L("a\r\r\n.\r\n"), L("a\r\r\n"), ALL, 1, CR},
    {"LF CR LF then end", L("a\n\r\n.\r\n"), L("a\n\r\n"), ALL, 1, LF},
    {"NUL", L("a\0b\r\n.\r\n"), L("a\0b\r\n"), ALL, 1, NUL},
    {"NUL at line start", L("\0\r\n.\r\n"), L("\0\r\n"), ALL, 1, NUL},
    {"NUL after line-start dot", L(".\0\r\n.\r\n"), L("\0\r\n"), ALL, 1, NUL},
    {"NUL after CR", L("a\r\0\r\n.\r\n"), L("a\r\0\r\n"), ALL, 1, CR | NUL},
    {"dot CR x", L("a\r\n.\rx\r\n.\r\n"), L("a\r\n\rx\r\n"), ALL, 1, CR},
    {"dot CR CR LF", L("a\r\n.\r\r\n.\r\n"), L("a\r\n\r\r\n"), ALL, 1, CR},
    {"dot CR dot", L("a\r\n.\r.\r\n.\r\n"), L("a\r\n\r.\r\n"), ALL, 1, CR},
    {"dot CR NUL", L("a\r\n.\r\0\r\n.\r\n"), L("a\r\n\r\0\r\n"), ALL, 1, CR | NUL},
    /* The smuggling sequences: flagged, never the end. */
    {"<LF>.<LF>", L("a\n.\n" SMUGGLED), L("a\n.\n" SMUGGLED), ALL, 0, LF},
    {"<CR>.<CR>", L("a\r.\r" SMUGGLED), L("a\r.\r" SMUGGLED), ALL, 0, CR},
    {"<LF>.<CR><LF>", L("a\n.\r\n" SMUGGLED), L("a\n.\r\n" SMUGGLED), ALL, 0, LF},
    {"<CR><LF>.<LF>", L("a\r\n.\n" SMUGGLED), L("a\r\n\n" SMUGGLED), ALL, 0, LF},
    {"<CR>.<CR><LF>", L("a\r.\r\n" SMUGGLED), L("a\r.\r\n" SMUGGLED), ALL, 0, CR},
    {"<LF>.<CR>", L("a\n.\r" SMUGGLED), L("a\n.\r" SMUGGLED), ALL, 0, LF | CR},
    {"<CR><LF>.<CR>", L("a\r\n.\r" SMUGGLED), L("a\r\n\r" SMUGGLED), ALL, 0, CR},
    {"<CR><LF>.<CR><CR><LF>", L("a\r\n.\r\r\n" SMUGGLED), L("a\r\n\r\r\n" SMUGGLED), ALL, 0, CR},
    /* ...and the real end still works right after each of them. */
    {"<LF>.<LF> then end", L("a\n.\n\r\n.\r\n"), L("a\n.\n\r\n"), ALL, 1, LF},
    {"<CR>.<CR> then end", L("a\r.\r\r\n.\r\n"), L("a\r.\r\r\n"), ALL, 1, CR},
    {"<LF>.<CR><LF> then end", L("a\n.\r\n\r\n.\r\n"), L("a\n.\r\n\r\n"), ALL, 1, LF},
    {"<CR><LF>.<LF> then end", L("a\r\n.\n\r\n.\r\n"), L("a\r\n\n\r\n"), ALL, 1, LF},
    {"<CR>.<CR><LF> then end", L("a\r.\r\n\r\n.\r\n"), L("a\r.\r\n\r\n"), ALL, 1, CR},
    {"<LF>.<CR> then end", L("a\n.\r\r\n.\r\n"), L("a\n.\r\r\n"), ALL, 1, LF | CR},
    {"<CR><LF>.<CR> then end", L("a\r\n.\r\r\n.\r\n"), L("a\r\n\r\r\n"), ALL, 1, CR},
    {"smuggled message then end", L("a\n.\n" SMUGGLED "DATA\r\nb\r\n.\r\nQUIT\r\n"),
     L("a\n.\n" SMUGGLED "DATA\r\nb\r\n"), sizeof("a\n.\n" SMUGGLED "DATA\r\nb\r\n.\r\n") - 1, 1,
     LF},
};

static void test_smtp_data_framing_table(void)
{
    for (size_t i = 0; i < NITEMS(data_cases); i++) {
        const struct data_case *t = &data_cases[i];
        struct feed_result r;
        int bad = check_framing(t->in, t->inlen, &r);
        size_t consumed = t->consumed == ALL ? t->inlen : t->consumed;

        CHECK_INT(bad, 0);
        CHECK_INT(r.consumed, consumed);
        CHECK_INT(r.done, t->done);
        CHECK_INT(r.flags, t->flags);
        CHECK_INT(r.outlen, t->outlen);
        CHECK(r.outlen == t->outlen && memcmp(r.out, t->out, t->outlen) == 0);
        CHECK(r.size == t->outlen);
        if (bad || r.consumed != consumed || r.done != t->done || r.flags != t->flags ||
            r.outlen != t->outlen || memcmp(r.out, t->out, r.outlen) != 0) {
            fprintf(stderr, "  case \"%s\"\n", t->name);
            show_result("got", &r);
        }
        free(r.out);
    }
}

/* Every smuggling sequence, in every position a client can put it: at the
 * start of the message, mid-line, after a proper line and after a bare LF;
 * followed by nothing, a smuggled command, a lone LF, or a CRLF line. */
static void test_smtp_data_smuggling_never_ends_and_is_flagged(void)
{
    static const char *seqs[] = {"\n.\n",     "\r.\r",    "\n.\r\n",  "\r\n.\n",
                                 "\r.\r\n",   "\n.\r",    "\r\n.\r",  "\r\n.\r\r\n",
                                 "\r\n.\n\r", "\n..\r\n", "\r\r.\r\n"};
    static const char *prefixes[] = {"", "a", "a\r\n", "a\n", "\n"};
    static const char *suffixes[] = {"", SMUGGLED "RCPT TO:<v@y.z>\r\nDATA\r\n", "\n", "x",
                                     "\r\nRCPT TO:<v@y.z>\r\n"};
    char in[256];

    for (size_t s = 0; s < NITEMS(seqs); s++)
        for (size_t p = 0; p < NITEMS(prefixes); p++)
            for (size_t x = 0; x < NITEMS(suffixes); x++) {
                struct feed_result r;
                int n = snprintf(in, sizeof in, "%s%s%s", prefixes[p], seqs[s], suffixes[x]);
                size_t len = (size_t)n;
                int bad;

                /* "\r\n.\r" + "\n" is the real end, not a smuggling case. */
                if (memmem(in, len, "\r\n.\r\n", 5) != NULL)
                    continue;
                bad = check_framing(in, len, &r);

                CHECK_INT(bad, 0);
                CHECK_INT(r.done, 0);
                CHECK_INT(r.consumed, len);
                /* A CR at the very end is held: bare or not is not known
                 * yet (the next byte decides, as below). */
                CHECK(in[len - 1] == '\r' || (r.flags & (SMTP_BARE_LF | SMTP_BARE_CR)));
                free(r.out);
                /* The real end, right after, ends the message. */
                memcpy(in + len, "\r\n.\r\nQUIT\r\n", 11);
                bad = check_framing(in, len + 11, &r);
                CHECK_INT(bad, 0);
                CHECK_INT(r.done, 1);
                CHECK_INT(r.consumed, len + 5);
                CHECK(r.flags & (SMTP_BARE_LF | SMTP_BARE_CR));
                if (r.done != 1 || r.consumed != len + 5)
                    fprintf(stderr, "  seq %zu prefix %zu suffix %zu\n", s, p, x);
                free(r.out);
            }
}

static void test_smtp_data_nothing_after_the_end_is_consumed(void)
{
    struct smtp_data d;
    char out[64];
    size_t outlen;
    const char *in = "x\r\n.\r\nMAIL FROM:<a@b.c>\r\n";

    smtp_data_init(&d);
    CHECK_INT(smtp_data_feed(&d, in, strlen(in), out, &outlen), 6);
    CHECK_INT(d.done, 1);
    CHECK_INT(outlen, 3);
    CHECK_INT(d.size, 3);
    /* More calls after the end take nothing. */
    CHECK_INT(smtp_data_feed(&d, in + 6, strlen(in) - 6, out, &outlen), 0);
    CHECK_INT(outlen, 0);
    CHECK_INT(d.done, 1);
    /* init starts the next message afresh. */
    smtp_data_init(&d);
    CHECK_INT(d.done, 0);
    CHECK_INT(d.flags, 0);
    CHECK_INT(d.size, 0);
    CHECK_INT(smtp_data_feed(&d, L(".\r\n"), out, &outlen), 3);
    CHECK_INT(d.done, 1);
    CHECK_INT(outlen, 0);
}

static void test_smtp_data_flags_stick_until_init(void)
{
    struct smtp_data d;
    char out[64];
    size_t outlen;

    smtp_data_init(&d);
    smtp_data_feed(&d, L("a\nb\r\n"), out, &outlen);
    smtp_data_feed(&d, L("clean line\r\n"), out, &outlen);
    CHECK_INT(d.flags, SMTP_BARE_LF);
    smtp_data_feed(&d, L("\0\r\n"), out, &outlen);
    smtp_data_feed(&d, L("c\rd\r\n.\r\n"), out, &outlen);
    CHECK_INT(d.done, 1);
    CHECK_INT(d.flags, SMTP_BARE_LF | SMTP_BARE_CR | SMTP_NUL);
}

/* A small, fixed PRNG so that a failure reproduces. */
static uint64_t rng_state = 0x9e3779b97f4a7c15ULL;

static uint64_t rng(void)
{
    rng_state ^= rng_state << 13;
    rng_state ^= rng_state >> 7;
    rng_state ^= rng_state << 17;
    return rng_state;
}

/*
 * 1 MB of hostile bytes (half uniformly random, half drawn mostly from
 * "\r\n.\0" so that every state and many message ends occur) fed as a
 * session would, in random-sized chunks, messages one after the other.  No
 * call may write beyond len + 2 (canary), and each message must match the
 * model fed the same bytes at once.
 */
static void test_smtp_data_hostile_stream_in_random_chunks(void)
{
    size_t n = 1 << 20, pos = 0, messages = 0, mismatches = 0, violations = 0;
    unsigned char *in = malloc(n);
    struct feed_result model, got;

    for (size_t i = 0; i < n; i++) {
        uint64_t r = rng();
        if (i < n / 2) {
            in[i] = (unsigned char)r;
        } else {
            static const char alphabet[] = "\r\n.\0\r\n.a";
            in[i] = (r & 0x300) ? (unsigned char)alphabet[r & 7] : (unsigned char)(r >> 16);
        }
    }
    model.out = malloc(n + 1);
    got.out = malloc(n + 3);
    while (pos < n) {
        size_t sizes[64];

        for (size_t k = 0; k < NITEMS(sizes); k++) {
            uint64_t r = rng();
            sizes[k] = (r & 3) == 0 ? (size_t)(r >> 8) % 4 : (size_t)(r >> 8) % 8192 + 1;
        }
        violations +=
            (size_t)feed_chunks((const char *)in + pos, n - pos, sizes, NITEMS(sizes), &got);
        model_feed((const char *)in + pos, n - pos, &model);
        if (!same_result(&got, &model)) {
            if (mismatches++ == 0) {
                fprintf(stderr, "  message at %zu\n", pos);
                show_result("chunked", &got);
                show_result("model", &model);
            }
        }
        messages++;
        if (got.consumed == 0)
            break;
        pos += got.consumed;
    }
    CHECK_INT(pos, n);
    CHECK_INT(violations, 0);
    CHECK_INT(mismatches, 0);
    CHECK(messages > 10); /* the biased half really ended messages */
    free(model.out);
    free(got.out);
    free(in);
}

/* ---- BDAT content ----------------------------------------------------- */

static const struct {
    const char *in;
    size_t len;
    unsigned flags;     /* after the chunks */
    unsigned end_flags; /* after smtp_content_end */
} content_cases[] = {
    {L(""), 0, 0},
    {L("abc\r\n"), 0, 0},
    {L("\r\n\r\n"), 0, 0},
    {L(".\r\n"), 0, 0},
    {L("a\nb"), LF, LF},
    {L("\n"), LF, LF},
    {L("a\rb"), CR, CR},
    {L("a\r"), 0, CR},
    {L("\r"), 0, CR},
    {L("\r\r\n"), CR, CR},
    {L("a\0b"), NUL, NUL},
    {L("\n\r"), LF, LF | CR},
    {L("a\r\n.\n"), LF, LF},
    {L("a\r.\r"), CR, CR},
    {L("\0\r\n\n\r\r"), NUL | LF | CR, NUL | LF | CR},
};

static void test_smtp_content_flags_do_not_depend_on_chunking(void)
{
    for (size_t i = 0; i < NITEMS(content_cases); i++) {
        const char *in = content_cases[i].in;
        size_t len = content_cases[i].len;

        for (size_t k = 0; k <= len + 1; k++) {
            struct smtp_content c;

            smtp_content_init(&c);
            if (k <= len) { /* split at k, with an empty chunk in between */
                smtp_content_feed(&c, in, k);
                smtp_content_feed(&c, in + k, 0);
                smtp_content_feed(&c, in + k, len - k);
            } else { /* byte by byte */
                for (size_t b = 0; b < len; b++)
                    smtp_content_feed(&c, in + b, 1);
            }
            CHECK_INT(c.flags, content_cases[i].flags);
            smtp_content_end(&c);
            CHECK_INT(c.flags, content_cases[i].end_flags);
            if (c.flags != content_cases[i].end_flags)
                fprintf(stderr, "  case %zu split %zu\n", i, k);
        }
    }
}

static void test_smtp_content_crlf_across_chunks_is_not_bare(void)
{
    struct smtp_content c;

    smtp_content_init(&c);
    smtp_content_feed(&c, L("line one\r"));
    CHECK_INT(c.flags, 0);
    smtp_content_feed(&c, L("\nline two\r"));
    smtp_content_feed(&c, L("\n"));
    smtp_content_end(&c);
    CHECK_INT(c.flags, 0);
}

static void test_smtp_content_trailing_cr_is_bare_at_end(void)
{
    struct smtp_content c;

    smtp_content_init(&c);
    smtp_content_feed(&c, L("line\r\nlast\r"));
    CHECK_INT(c.flags, 0);
    smtp_content_end(&c);
    CHECK_INT(c.flags, SMTP_BARE_CR);
    /* A CR then a chunk starting with something else is bare too. */
    smtp_content_init(&c);
    smtp_content_feed(&c, L("a\r"));
    smtp_content_feed(&c, L("b"));
    CHECK_INT(c.flags, SMTP_BARE_CR);
    /* A chunk starting with LF after a chunk ending without CR: bare LF. */
    smtp_content_init(&c);
    smtp_content_feed(&c, L("a"));
    smtp_content_feed(&c, L("\nb"));
    CHECK_INT(c.flags, SMTP_BARE_LF);
}

int main(void)
{
    RUN(test_smtp_command_recognizes_every_verb_in_any_case);
    RUN(test_smtp_command_verb_name_round_trips);
    RUN(test_smtp_command_table);
    RUN(test_smtp_command_odd_verbs_are_never_known);
    RUN(test_smtp_command_survives_a_1mb_line);
    RUN(test_smtp_mail_paths_and_parameters);
    RUN(test_smtp_rcpt_paths_postmaster_and_no_parameters);
    RUN(test_smtp_path_of_256_is_the_limit);
    RUN(test_smtp_domain_label_of_63_is_the_limit);
    RUN(test_smtp_path_addr_never_holds_a_nul);
    RUN(test_smtp_bdat_size_and_last);
    RUN(test_smtp_helo_names);
    RUN(test_smtp_data_framing_table);
    RUN(test_smtp_data_smuggling_never_ends_and_is_flagged);
    RUN(test_smtp_data_nothing_after_the_end_is_consumed);
    RUN(test_smtp_data_flags_stick_until_init);
    RUN(test_smtp_data_hostile_stream_in_random_chunks);
    RUN(test_smtp_content_flags_do_not_depend_on_chunking);
    RUN(test_smtp_content_crlf_across_chunks_is_not_bare);
    RUN(test_smtp_content_trailing_cr_is_bare_at_end);
    return check_done();
}
