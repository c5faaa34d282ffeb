/*
 * test_imap_sort.c - what SORT and THREAD read of a message (imapd/
 * imap_sort.h): the base subject of RFC 5256 2.1, RFC 5322 sent dates
 * with the fallbacks of RFC 5256 2.2, msg-id normalisation, the ENVELOPE
 * text of the cache read back into fields, and the address sort keys of
 * RFC 5256 and RFC 5957.
 *
 * Tables of input and expected output; hostile input (a cached ENVELOPE
 * cut short, a literal longer than the text) must be a clean error.
 */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "check.h"
#include "imap_sort.h"
#include "mailcore/mime.h"

#define NITEMS(a) (sizeof(a) / sizeof((a)[0]))

static void test_imap_base_subject_follows_rfc5256_steps(void)
{
    static const struct {
        const char *in, *want;
        int reply;
    } cases[] = {
        {"Hello world", "HELLO WORLD", 0},
        {"Re: Hello world", "HELLO WORLD", 1},
        {"RE:Re: re[2]: Hello", "HELLO", 1},
        {"Re : spaced colon", "SPACED COLON", 1},
        {"Fwd: Hello", "HELLO", 1},
        {"FW: Hello", "HELLO", 1},
        {"fwd [x]: Hello", "HELLO", 1},
        {"Hello (fwd)", "HELLO", 1},
        {"Hello (fwd) (FWD)  ", "HELLO", 1},
        {"[fwd: Hello world]", "HELLO WORLD", 1},
        {"[Fwd: Re: [list] Hello]", "HELLO", 1},
        {"re: [fwd: hello]", "HELLO", 1},
        {"[list] Re: topic", "TOPIC", 1},
        {"[list] [tag] Re: topic", "TOPIC", 1},
        {"[list] topic", "TOPIC", 0},
        {"[only a blob]", "[ONLY A BLOB]", 0},
        {"Re: [blob]", "[BLOB]", 1},
        {"[a[b] c", "[A[B] C", 0},
        {"  many   spaces\there  ", "MANY SPACES HERE", 0},
        {"folded\r\n line", "FOLDED LINE", 0},
        {"Ref: not a reply", "REF: NOT A REPLY", 0},
        {"Reply", "REPLY", 0},
        {"Re:", "", 1},
        {"", "", 0},
        {"=?UTF-8?B?w5xiZXIgZGllIEJyw7xja2U=?=",
         "\xc3\x9c"
         "BER DIE BR\xc3\xbc"
         "CKE",
         0},
        {"Re: =?ISO-8859-1?Q?Caf=E9?=", "CAF\xc3\xa9", 1},
    };
    struct mime_buf b;

    mime_buf_init(&b, 0);
    for (size_t i = 0; i < NITEMS(cases); i++) {
        int reply = -1;

        CHECK_INT(imap_base_subject(cases[i].in, strlen(cases[i].in), &b, &reply), 0);
        if (b.p == NULL || strcmp(b.p, cases[i].want) != 0)
            fprintf(stderr, "  case %zu: \"%s\"\n", i, cases[i].in);
        CHECK_STR(b.p, cases[i].want);
        CHECK_INT(reply, cases[i].reply);
    }
    CHECK_INT(imap_base_subject(NULL, 0, &b, NULL), 0);
    CHECK_STR(b.p, "");
    mime_buf_free(&b);
}

static void test_imap_rfc5322_date_to_utc_with_rfc5256_fallbacks(void)
{
    static const struct {
        const char *in;
        int rc;
        int64_t want;
    } cases[] = {
        {"Mon, 01 Jan 2024 10:00:00 +0000", 0, 1704103200},
        {"Tue, 02 Jan 2024 11:30:00 +0100", 0, 1704191400},
        {"2 Jan 2024 11:30 +0100", 0, 1704191400},
        {"Wed, 03 Jan 2024 08:15:00 -0500", 0, 1704287700},
        {"01 Jan 24 10:00:00 GMT", 0, 1704103200},
        {"01 jan 99 00:00:00 EST", 0, 915166800},
        {"Sat, 6 Jan 2024 07:45:00 +0200 (EET)", 0, 1704519900},
        {"Sat (day), 6 (six) Jan 2024\r\n 07:45:00 +0200", 0, 1704519900},
        {"1 Jan 2024 xx:yy +0100", 0, 1704067200},    /* bad time: midnight */
        {"1 Jan 2024 10:00:00 +0199", 0, 1704103200}, /* bad zone: UTC */
        {"1 Jan 2024 10:00:00 Z", 0, 1704103200},
        {"1 Jan 2024", 0, 1704067200},
        {"1 Jan 1970 00:00:00 +0100", 0, -3600},
        {"1 Mar 49 00:00:00 +0000", 0, 2498169600},
        {"1 Mar 50 00:00:00 +0000", 0, -626054400},
        {"garbage", -1, 0},
        {"", -1, 0},
        {"32 Jan 2024 10:00:00 +0000", -1, 0},
        {"1 Foo 2024 10:00:00 +0000", -1, 0},
        {"Mon, 1 Jan", -1, 0},
    };

    for (size_t i = 0; i < NITEMS(cases); i++) {
        int64_t t = 0;
        int rc = imap_rfc5322_date(cases[i].in, strlen(cases[i].in), &t);

        if (rc != cases[i].rc || (rc == 0 && t != cases[i].want))
            fprintf(stderr, "  case %zu: \"%s\"\n", i, cases[i].in);
        CHECK_INT(rc, cases[i].rc);
        if (rc == 0)
            CHECK_INT(t, cases[i].want);
    }
    CHECK_INT(imap_rfc5322_date(NULL, 0, &(int64_t){0}), -1);
}

/* Every id of s, normalised, joined by "|". */
static void ids(const char *s, char *out, size_t outsz)
{
    struct mime_buf id;
    size_t pos = 0, len = 0;

    mime_buf_init(&id, 0);
    out[0] = '\0';
    while (imap_msgid_next(s, strlen(s), &pos, &id) == 1)
        len += (size_t)snprintf(out + len, outsz - len, "%s%s", len ? "|" : "", id.p);
    mime_buf_free(&id);
}

static void test_imap_msgid_normalises_quoting_and_skips_junk(void)
{
    static const struct {
        const char *in, *want;
    } cases[] = {
        {"<a@b>", "<a@b>"},
        {" <\"01KF8JCEOCBS0045PS\"@xxx.yyy.com>", "<01KF8JCEOCBS0045PS@xxx.yyy.com>"},
        {"<01KF8JCEOCBS0045PS@xxx.yyy.com>", "<01KF8JCEOCBS0045PS@xxx.yyy.com>"},
        {"<\"a b\\\"c\"@x>", "<a b\"c@x>"},
        {"<a@b> <c@d>\r\n\t<e@f>", "<a@b>|<c@d>|<e@f>"},
        {"junk <nope> <x@y>", "<x@y>"},
        {"<x@y (comment)", ""},
        {"<a@b", ""},
        {"< a @ b >", "<a@b>"},
        {"<@b> <a@> <ok@x>", "<ok@x>"},
        {"", ""},
        {"no ids at all", ""},
    };
    char got[512];

    for (size_t i = 0; i < NITEMS(cases); i++) {
        ids(cases[i].in, got, sizeof got);
        CHECK_STR(got, cases[i].want);
    }
}

/* ENVELOPE of a message, as FETCH and the cache have it. */
static void envelope_of(const char *msg, struct mime_buf *out)
{
    struct mime_msg *m = mime_parse(msg, strlen(msg));

    mime_buf_reset(out);
    CHECK(m != NULL);
    if (m)
        CHECK_INT(mime_imap_envelope(m->root, out), 0);
    mime_free(m);
}

static void test_imap_env_parse_reads_back_the_cached_envelope(void)
{
    struct mime_buf env, key;
    struct imap_env e;

    mime_buf_init(&env, 0);
    mime_buf_init(&key, 0);
    imap_env_init(&e);
    envelope_of("From: Alice Example <alice@example.test>\r\n"
                "To: \"Bob \\\"B\\\"\" <bob@example.test>, carol@example.test\r\n"
                "Cc: Team: frank@example.org, grace@example.org;, heidi@example.org\r\n"
                "Subject: Re: caf\xc3\xa9 \"quoted\"\r\n"
                "Date: Tue, 02 Jan 2024 11:30:00 +0100\r\n"
                "Message-ID: <m2@example.org>\r\n"
                "In-Reply-To: <m1@example.test>\r\n\r\nbody\r\n",
                &env);
    CHECK_INT(imap_env_parse(env.p, env.len, &e), 0);
    mime_buf_cstr(&e.subject);
    mime_buf_cstr(&e.date);
    mime_buf_cstr(&e.message_id);
    mime_buf_cstr(&e.in_reply_to);
    CHECK_STR(e.subject.p, "Re: caf\xc3\xa9 \"quoted\""); /* came as a literal */
    CHECK_STR(e.date.p, "Tue, 02 Jan 2024 11:30:00 +0100");
    CHECK_STR(e.message_id.p, "<m2@example.org>");
    CHECK_STR(e.in_reply_to.p, "<m1@example.test>");
    CHECK(e.from.present && e.to.present && e.cc.present);
    CHECK_INT(imap_sort_addr_key(&e.from, 0, &key), 0);
    CHECK_STR(key.p, "ALICE");
    CHECK_INT(imap_sort_addr_key(&e.from, 1, &key), 0);
    CHECK_STR(key.p, "ALICE EXAMPLE");
    CHECK_INT(imap_sort_addr_key(&e.to, 1, &key), 0);
    CHECK_STR(key.p, "BOB \"B\"");
    /* A group first: its name counts (ENVELOPE's first addr-mailbox). */
    CHECK_INT(imap_sort_addr_key(&e.cc, 0, &key), 0);
    CHECK_STR(key.p, "TEAM");
    CHECK_INT(imap_sort_addr_key(&e.cc, 1, &key), 0);
    CHECK_STR(key.p, "TEAM");

    envelope_of("From: bob@example.test\r\n"
                "To: undisclosed-recipients:;\r\n"
                "Subject: =?ISO-8859-1?Q?Andr=E9?=\r\n\r\n",
                &env);
    CHECK_INT(imap_env_parse(env.p, env.len, &e), 0);
    CHECK_INT(imap_sort_addr_key(&e.from, 1, &key), 0);
    CHECK_STR(key.p, "BOB@EXAMPLE.TEST"); /* no display name: the address */
    CHECK(e.to.present && !e.cc.present);
    CHECK_INT(imap_sort_addr_key(&e.to, 0, &key), 0);
    CHECK_STR(key.p, "UNDISCLOSED-RECIPIENTS");
    CHECK_INT(imap_sort_addr_key(&e.cc, 1, &key), 0);
    CHECK_STR(key.p, "");     /* no Cc at all */
    CHECK_INT(e.date.len, 0); /* NIL */
    CHECK_INT(e.message_id.len, 0);

    envelope_of("From: =?ISO-8859-1?Q?Andr=E9_Pirard?= <andre@example.fr>\r\n\r\n", &env);
    CHECK_INT(imap_env_parse(env.p, env.len, &e), 0);
    CHECK_INT(imap_sort_addr_key(&e.from, 1, &key), 0);
    CHECK_STR(key.p, "ANDR\xc3\xa9 PIRARD");
    CHECK_INT(imap_sort_addr_key(&e.from, 0, &key), 0);
    CHECK_STR(key.p, "ANDRE");

    imap_env_free(&e);
    mime_buf_free(&env);
    mime_buf_free(&key);
}

static void test_imap_env_parse_refuses_damaged_text(void)
{
    static const char *const bad[] = {
        "",
        "(",
        "(NIL NIL NIL NIL NIL NIL NIL NIL NIL",
        "(\"unterminated NIL NIL NIL NIL NIL NIL NIL NIL NIL)",
        "({99}\r\nab NIL NIL NIL NIL NIL NIL NIL NIL NIL)",
        "({18446744073709551615}\r\nab NIL NIL NIL NIL NIL NIL NIL NIL NIL)",
        "(NIL NIL ((NIL NIL \"a\") NIL NIL NIL NIL NIL NIL NIL NIL)",
        "(NIL NIL (NIL) NIL NIL NIL NIL NIL NIL NIL)",
        "(NIL NIL NIL NIL NIL NIL NIL NIL NIL)",
        "(atom NIL NIL NIL NIL NIL NIL NIL NIL NIL)",
    };
    struct imap_env e;

    imap_env_init(&e);
    for (size_t i = 0; i < NITEMS(bad); i++) {
        if (imap_env_parse(bad[i], strlen(bad[i]), &e) != -1)
            fprintf(stderr, "  case %zu accepted\n", i);
        CHECK_INT(imap_env_parse(bad[i], strlen(bad[i]), &e), -1);
    }
    {
        const char *ok = "(NIL NIL NIL NIL NIL NIL NIL NIL NIL NIL)";
        CHECK_INT(imap_env_parse(ok, strlen(ok), &e), 0);
    }
    imap_env_free(&e);
}

int main(void)
{
    RUN(test_imap_base_subject_follows_rfc5256_steps);
    RUN(test_imap_rfc5322_date_to_utc_with_rfc5256_fallbacks);
    RUN(test_imap_msgid_normalises_quoting_and_skips_junk);
    RUN(test_imap_env_parse_reads_back_the_cached_envelope);
    RUN(test_imap_env_parse_refuses_damaged_text);
    return check_done();
}
