/*
 * test_envelope.c - imap_env_field_text() (imapd/imap_msginfo.c): the
 * subject and the address lists read back out of a cached ENVELOPE, as
 * SEARCH matches them.  The envelopes are written by libmailcore's
 * own writer (mime_imap_envelope) from real headers, so the test checks the
 * round trip, then hostile text: truncated, unbalanced, overlong literals,
 * deep nesting.
 */
#include <stdlib.h>
#include <string.h>

#include "check.h"
#include "imap_sort.h"
#include "mailcore/mime.h"

/* The ENVELOPE of a message, as FETCH sends it. */
static char *envelope_of(const char *msg)
{
    struct mime_msg *m = mime_parse(msg, strlen(msg));
    struct mime_buf b;
    char *out;

    mime_buf_init(&b, 0);
    mime_imap_envelope(m->root, &b);
    mime_buf_addc(&b, '\0');
    out = strdup(b.p);
    mime_buf_free(&b);
    mime_free(m);
    return out;
}

/* A field as a C string ("<error>" when the reader refused). */
static char *field(const char *env, enum imap_env_field f)
{
    static char text[1024];
    struct mime_buf b;
    int rc;

    mime_buf_init(&b, 0);
    rc = imap_env_field_text(env, strlen(env), f, &b);
    if (rc != 0)
        snprintf(text, sizeof text, "<error>");
    else
        snprintf(text, sizeof text, "%.*s", (int)b.len, b.len ? b.p : "");
    mime_buf_free(&b);
    return text;
}

static void test_envelope_subject_and_addresses_round_trip(void)
{
    char *env = envelope_of("From: \"Smith, \\\"JJ\\\"\" <js@a.example>\r\n"
                            "To: x@b.example, Y Z <y@c.example>\r\n"
                            "Cc: team: p@d.example, q@e.example;\r\n"
                            "Subject: a \"quoted\" back\\slash\r\n"
                            "Message-ID: <id@a.example>\r\n"
                            "\r\nbody\r\n");

    CHECK_STR(field(env, IMAP_ENV_SUBJECT), "a \"quoted\" back\\slash");
    CHECK_STR(field(env, IMAP_ENV_FROM), "Smith, \"JJ\" <js@a.example>");
    CHECK_STR(field(env, IMAP_ENV_TO), "<x@b.example>, Y Z <y@c.example>");
    CHECK_STR(field(env, IMAP_ENV_CC), "team:, <p@d.example>, <q@e.example>");
    CHECK_STR(field(env, IMAP_ENV_BCC), "");
    CHECK_STR(field(env, IMAP_ENV_MESSAGE_ID), "<id@a.example>");
    free(env);
}

static void test_envelope_eight_bit_subject_is_a_literal(void)
{
    char *env = envelope_of("Subject: Gr\xc3\xbc\xc3\x9f" "e aus K\xc3\xb6ln\r\n"
                            "From: =?utf-8?q?J=C3=BCrgen?= <j@a.example>\r\n\r\nx\r\n");

    CHECK(strstr(env, "{") != NULL);
    CHECK_STR(field(env, IMAP_ENV_SUBJECT), "Gr\xc3\xbc\xc3\x9f" "e aus K\xc3\xb6ln");
    CHECK_STR(field(env, IMAP_ENV_FROM), "=?utf-8?q?J=C3=BCrgen?= <j@a.example>");
    free(env);
}

/* What another writer could send: quoted strings with escapes. */
static void test_envelope_quoted_escapes(void)
{
    const char *env = "(\"Mon, 1 Jan 2024 00:00:00 +0000\" \"a \\\"q\\\" b\\\\c\" "
                      "((\"N \\\"x\\\"\" NIL \"m\" \"h.example\")) NIL NIL NIL NIL NIL NIL "
                      "\"<id@h>\")";

    CHECK_STR(field(env, IMAP_ENV_SUBJECT), "a \"q\" b\\c");
    CHECK_STR(field(env, IMAP_ENV_FROM), "N \"x\" <m@h.example>");
    CHECK_STR(field(env, IMAP_ENV_DATE), "Mon, 1 Jan 2024 00:00:00 +0000");
    CHECK_STR(field(env, IMAP_ENV_MESSAGE_ID), "<id@h>");
}

static void test_envelope_without_headers_is_nil(void)
{
    char *env = envelope_of("\r\nbody only\r\n");

    CHECK_STR(field(env, IMAP_ENV_SUBJECT), "");
    CHECK_STR(field(env, IMAP_ENV_FROM), "");
    free(env);
}

static void test_envelope_hostile_text_is_refused(void)
{
    static const char *bad[] = {
        "",
        "NIL",
        "(",
        "(NIL",
        "(NIL \"unterminated",
        "(NIL {99999999999999999999}\r\nx",
        "(NIL {5}\r\nab",
        "(NIL {3}x",
        "(NIL NIL ((((((((NIL))))))))",
        "(NIL NIL ((NIL NIL \"a\"",
        "(NIL NIL (garbage))",
        "(\"d\" \"s\" (\"n\" NIL \"m\" \"h\" \"extra\"))",
    };

    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        CHECK_STR(field(bad[i], IMAP_ENV_FROM), "<error>");
        if (i < 8)
            CHECK_STR(field(bad[i], IMAP_ENV_SUBJECT), "<error>");
    }
}

int main(void)
{
    RUN(test_envelope_subject_and_addresses_round_trip);
    RUN(test_envelope_eight_bit_subject_is_a_literal);
    RUN(test_envelope_quoted_escapes);
    RUN(test_envelope_without_headers_is_nil);
    RUN(test_envelope_hostile_text_is_refused);
    return check_done();
}
