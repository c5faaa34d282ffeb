/*
 * test_imap_thread.c - THREAD=REFERENCES and THREAD=ORDEREDSUBJECT
 * (imapd/imap_thread.c, RFC 5256 section 4): messages given as tables
 * (id, date, subject, Message-ID, References, In-Reply-To), the answer
 * compared with the thread-list text a client would get.
 *
 * Covered: reply chains and siblings ordered by sent date, ties by
 * sequence; references to missing messages (dummies kept at the top only
 * with two or more children); In-Reply-To when References is absent;
 * subject merging of step 5 (reply under non-reply, new dummy for two
 * originals); duplicate and missing Message-IDs; loops in References;
 * quoting differences in ids; and a 100,000-message chain and comb, which
 * must not exhaust the stack (nothing recurses over the tree).
 */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "check.h"
#include "imap_sort.h"
#include "mailcore/mime.h"

#define NITEMS(a) (sizeof(a) / sizeof((a)[0]))

struct tm_in {
    int64_t date;
    const char *subject, *msgid, *refs, *irt;
};

static size_t len0(const char *s)
{
    return s ? strlen(s) : 0;
}

/* The thread-list of msgs (ids 1..n in order) as a C string. */
static char *threads(enum imap_thread_alg alg, const struct tm_in *msgs, size_t n)
{
    struct imap_thread *t = imap_thread_new(alg);
    struct mime_buf out;
    char *s;

    mime_buf_init(&out, 0);
    CHECK(t != NULL);
    for (size_t i = 0; i < n; i++)
        CHECK_INT(imap_thread_add(t, (uint32_t)(i + 1), msgs[i].date, msgs[i].subject,
                                  len0(msgs[i].subject), msgs[i].msgid, len0(msgs[i].msgid),
                                  msgs[i].refs, len0(msgs[i].refs), msgs[i].irt, len0(msgs[i].irt)),
                  0);
    CHECK_INT(imap_thread_result(t, &out), 0);
    mime_buf_cstr(&out);
    s = strdup(out.p ? out.p : "");
    mime_buf_free(&out);
    imap_thread_free(t);
    return s;
}

#define EXPECT(alg, msgs, want)                                                                    \
    do {                                                                                           \
        char *got_ = threads(alg, msgs, NITEMS(msgs));                                             \
        CHECK_STR(got_, want);                                                                     \
        free(got_);                                                                                \
    } while (0)

static void test_thread_references_replies_and_siblings_by_date(void)
{
    static const struct tm_in msgs[] = {
        {100, "Hello", "<1@x>", NULL, NULL},
        {200, "Re: Hello", "<2@x>", "<1@x>", "<1@x>"},
        {150, "Re: Hello", "<3@x>", "<1@x>", NULL},
        {300, "Re: Hello", "<4@x>", "<1@x> <2@x>", "<2@x>"},
        {50, "Other", "<5@x>", NULL, NULL},
    };

    EXPECT(IMAP_THREAD_REFERENCES, msgs, "(5)(1 (3)(2 4))");
}

static void test_thread_references_reply_arriving_before_its_parent(void)
{
    /* The reply comes first (seq 1) and is dated before the original. */
    static const struct tm_in msgs[] = {
        {100, "Re: first", "<r@x>", "<o@x>", NULL},
        {200, "first", "<o@x>", NULL, NULL},
        {50, "alone", "<z@x>", NULL, NULL},
    };

    EXPECT(IMAP_THREAD_REFERENCES, msgs, "(3)(2 1)");
}

static void test_thread_references_missing_parent_makes_a_dummy(void)
{
    static const struct tm_in two[] = {
        {10, "Topic", "<a@x>", "<missing@x>", NULL},
        {20, "Re: Topic", "<b@x>", "<missing@x>", NULL},
        {5, "Unrelated", "<c@x>", NULL, NULL},
    };
    static const struct tm_in one[] = {
        {10, "Topic", "<a@x>", "<gone1@x> <gone2@x>", NULL},
        {20, "Re: Topic", "<b@x>", "<gone1@x> <gone2@x> <a@x>", NULL},
    };

    EXPECT(IMAP_THREAD_REFERENCES, two, "(3)((1)(2))");
    /* A dummy with one child is no thread of its own; nor are dummies
     * between messages. */
    EXPECT(IMAP_THREAD_REFERENCES, one, "(1 2)");
}

static void test_thread_references_in_reply_to_without_references(void)
{
    static const struct tm_in msgs[] = {
        {10, "Question", "<q@x>", NULL, NULL},
        {20, "Answer", "<a@x>", NULL, "<q@x> <other@x>"},
        {30, "Answer 2", "<b@x>", "bogus", "<a@x>"}, /* References without an id */
    };

    EXPECT(IMAP_THREAD_REFERENCES, msgs, "(1 2 3)");
}

static void test_thread_references_merges_threads_by_subject(void)
{
    /* No ids at all: step 5 alone.  The reply goes under the original;
     * two originals of one subject go under a new dummy. */
    static const struct tm_in msgs[] = {
        {10, "Lunch", NULL, NULL, NULL}, {20, "Re: Lunch", NULL, NULL, NULL},
        {30, "lunch", NULL, NULL, NULL}, {5, "[team] Other", NULL, NULL, NULL},
        {40, "", NULL, NULL, NULL},      {45, "", NULL, NULL, NULL},
    };
    static const struct tm_in reply_only[] = {
        {10, "Re: Plan", NULL, NULL, NULL},
        {20, "Plan", NULL, NULL, NULL},
        {30, "Fwd: Plan", NULL, NULL, NULL},
    };

    /* Empty subjects are never merged. */
    EXPECT(IMAP_THREAD_REFERENCES, msgs, "(4)((1 2)(3))(5)(6)");
    EXPECT(IMAP_THREAD_REFERENCES, reply_only, "(2 (1)(3))");
}

static void test_thread_references_duplicate_and_quoted_ids(void)
{
    static const struct tm_in msgs[] = {
        {10, "A", "<d@x>", NULL, NULL},
        {20, "B", "<d@x>", NULL, NULL}, /* duplicate: a message of its own */
        {30, "Re: A", "<e@x>", "<\"d\"@x>", NULL},
    };

    EXPECT(IMAP_THREAD_REFERENCES, msgs, "(1 3)(2)");
}

static void test_thread_references_loops_are_not_followed(void)
{
    static const struct tm_in msgs[] = {
        {10, "one", "<a@x>", "<b@x>", NULL},
        {20, "two", "<b@x>", "<a@x>", NULL},
        {30, "three", "<c@x>", "<c@x>", NULL}, /* refers to itself */
        {40, "four", "<d@x>", "<e@x> <d@x> <e@x>", NULL},
    };

    EXPECT(IMAP_THREAD_REFERENCES, msgs, "(2 1)(3)(4)");
}

static void test_thread_orderedsubject_groups_by_base_subject(void)
{
    static const struct tm_in msgs[] = {
        {30, "B topic", NULL, NULL, NULL},     {10, "a topic", NULL, NULL, NULL},
        {20, "Re: B topic", NULL, NULL, NULL}, {40, "A topic", NULL, NULL, NULL},
        {35, "b TOPIC", NULL, NULL, NULL},     {35, "[fwd: b topic]", NULL, NULL, NULL},
    };

    EXPECT(IMAP_THREAD_ORDEREDSUBJECT, msgs, "(2 4)(3 (1)(5)(6))");
}

static void test_thread_no_messages_is_empty(void)
{
    char *got = threads(IMAP_THREAD_REFERENCES, NULL, 0);

    CHECK_STR(got, "");
    free(got);
    got = threads(IMAP_THREAD_ORDEREDSUBJECT, NULL, 0);
    CHECK_STR(got, "");
    free(got);
}

/* n messages: a chain (each replies to the one before), or a comb (each
 * also gets a leaf reply, so every level nests). */
static void long_thread(int comb, size_t n)
{
    struct imap_thread *t = imap_thread_new(IMAP_THREAD_REFERENCES);
    struct mime_buf out;
    char id[64], parent[64];
    uint32_t next = 1;
    size_t opens = 0;

    mime_buf_init(&out, 0);
    for (size_t i = 0; i < n; i++) {
        snprintf(id, sizeof id, "<c%zu@x>", i);
        snprintf(parent, sizeof parent, "<c%zu@x>", i ? i - 1 : 0);
        CHECK_INT(imap_thread_add(t, next++, (int64_t)i * 10, "chain", 5, id, strlen(id), NULL, 0,
                                  i ? parent : NULL, i ? strlen(parent) : 0),
                  0);
        if (comb) {
            snprintf(parent, sizeof parent, "<leaf%zu@x>", i);
            CHECK_INT(imap_thread_add(t, next++, (int64_t)i * 10 + 5, "Re: chain", 9, parent,
                                      strlen(parent), NULL, 0, id, strlen(id)),
                      0);
        }
    }
    CHECK_INT(imap_thread_result(t, &out), 0);
    for (size_t i = 0; i < out.len; i++)
        opens += out.p[i] == '(';
    if (!comb) {
        CHECK(out.len > 10 && memcmp(out.p, "(1 2 3 4 5", 10) == 0);
        CHECK_INT(opens, 1);
    } else {
        /* "(1 (2)(3 (4)(5 ...": two lists per level below the top. */
        CHECK(out.len > 12 && memcmp(out.p, "(1 (2)(3 (4)", 12) == 0);
        CHECK_INT(opens, 1 + 2 * (n - 1));
    }
    mime_buf_free(&out);
    imap_thread_free(t);
}

static void test_thread_100000_deep_chain_and_comb_do_not_recurse(void)
{
    long_thread(0, 100000);
    long_thread(1, 100000);
}

int main(void)
{
    RUN(test_thread_references_replies_and_siblings_by_date);
    RUN(test_thread_references_reply_arriving_before_its_parent);
    RUN(test_thread_references_missing_parent_makes_a_dummy);
    RUN(test_thread_references_in_reply_to_without_references);
    RUN(test_thread_references_merges_threads_by_subject);
    RUN(test_thread_references_duplicate_and_quoted_ids);
    RUN(test_thread_references_loops_are_not_followed);
    RUN(test_thread_orderedsubject_groups_by_base_subject);
    RUN(test_thread_no_messages_is_empty);
    RUN(test_thread_100000_deep_chain_and_comb_do_not_recurse);
    return check_done();
}
