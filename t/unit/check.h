/*
 * check.h - the unit tests' tiny harness.
 *
 *	static void test_conf_rejects_unknown_key(void) { CHECK(...); }
 *	int main(void) { RUN(test_conf_rejects_unknown_key); return check_done(); }
 *
 * A failed CHECK prints file:line and the expression and marks the test
 * failed; the test goes on so one run shows every failure.  check_done()
 * prints a summary and returns the exit status for ctest.
 */
#ifndef MAILCORE_CHECK_H
#define MAILCORE_CHECK_H

#include <stdio.h>
#include <string.h>

static int check_failures;
static int check_tests;
static const char *check_current;

#define CHECK(cond)                                                            \
    do {                                                                       \
        if (!(cond)) {                                                         \
            fprintf(stderr, "%s:%d: %s: CHECK(%s) failed\n", __FILE__,         \
                    __LINE__, check_current, #cond);                           \
            check_failures++;                                                  \
        }                                                                      \
    } while (0)

#define CHECK_INT(a, b)                                                        \
    do {                                                                       \
        long long check_a_ = (long long)(a), check_b_ = (long long)(b);        \
        if (check_a_ != check_b_) {                                            \
            fprintf(stderr, "%s:%d: %s: %s == %lld, expected %lld\n",          \
                    __FILE__, __LINE__, check_current, #a, check_a_, check_b_);\
            check_failures++;                                                  \
        }                                                                      \
    } while (0)

#define CHECK_STR(a, b)                                                        \
    do {                                                                       \
        const char *check_a_ = (a), *check_b_ = (b);                           \
        if (check_a_ == NULL || check_b_ == NULL ||                            \
            strcmp(check_a_, check_b_) != 0) {                                 \
            fprintf(stderr, "%s:%d: %s: %s == \"%s\", expected \"%s\"\n",      \
                    __FILE__, __LINE__, check_current, #a,                     \
                    check_a_ ? check_a_ : "(null)",                            \
                    check_b_ ? check_b_ : "(null)");                           \
            check_failures++;                                                  \
        }                                                                      \
    } while (0)

/* a contains b */
#define CHECK_HAS(a, b)                                                        \
    do {                                                                       \
        const char *check_a_ = (a), *check_b_ = (b);                           \
        if (check_a_ == NULL || strstr(check_a_, check_b_) == NULL) {          \
            fprintf(stderr, "%s:%d: %s: %s == \"%s\", should contain \"%s\"\n",\
                    __FILE__, __LINE__, check_current, #a,                     \
                    check_a_ ? check_a_ : "(null)", check_b_);                 \
            check_failures++;                                                  \
        }                                                                      \
    } while (0)

#define RUN(fn)                                                                \
    do {                                                                       \
        int check_before_ = check_failures;                                    \
        check_current = #fn;                                                   \
        check_tests++;                                                         \
        fn();                                                                  \
        fprintf(stderr, "%s %s\n",                                             \
                check_failures == check_before_ ? "ok  " : "FAIL", #fn);       \
    } while (0)

static inline int check_done(void)
{
    fprintf(stderr, "%d tests, %d failed checks\n", check_tests, check_failures);
    return check_failures ? 1 : 0;
}

#endif
