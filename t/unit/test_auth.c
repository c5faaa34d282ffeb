/*
 * test_auth.c - password hashing, verification, password input and the
 * failure delay table.
 */
#include "check.h"
#include "mailcore/auth.h"

#include <crypt.h>
#include <dlfcn.h>
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <termios.h>
#include <unistd.h>

/* Every hash computed goes through here, so the cache tests can count them. */
static unsigned crypt_calls;

char *crypt_rn(const char *phrase, const char *setting, void *data, int size)
{
    static char *(*real)(const char *, const char *, void *, int);

    if (real == NULL)
        *(void **)&real = dlsym(RTLD_NEXT, "crypt_rn");
    crypt_calls++;
    return real(phrase, setting, data, size);
}

/* ---- hashing ---------------------------------------------------------- */

static void test_auth_hash_verify_round_trip(void)
{
    char hash[AUTH_HASH_MAX + 1], err[256] = "";

    CHECK_INT(auth_hash("correct horse", hash, sizeof hash, err, sizeof err), 0);
    CHECK(strncmp(hash, "$y$", 3) == 0);
    CHECK_INT(auth_verify("correct horse", hash), 1);
}

static void test_auth_verify_rejects_wrong_password(void)
{
    char hash[AUTH_HASH_MAX + 1], err[256];

    CHECK_INT(auth_hash("correct horse", hash, sizeof hash, err, sizeof err), 0);
    CHECK_INT(auth_verify("correct hors", hash), 0);
    CHECK_INT(auth_verify("correct horse ", hash), 0);
    CHECK_INT(auth_verify("", hash), 0);
    CHECK_INT(auth_verify(NULL, hash), 0);
}

static void test_auth_verify_rejects_malformed_hashes(void)
{
    char hash[AUTH_HASH_MAX + 1], err[256], longhash[4096];
    const char *bad[] = {"",     "*",       "*0",      "!",  "$y$", "$6$",
                         "$6$$", "garbage", "$y$j9T$", "$$", "$1",  "$x$abc$def"};
    size_t i;

    for (i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        if (auth_verify("", bad[i]) != 0 || auth_verify("garbage", bad[i]) != 0) {
            fprintf(stderr, "accepted malformed hash \"%s\"\n", bad[i]);
            CHECK(0);
        }
    }
    CHECK_INT(auth_verify("x", NULL), 0);

    /* A valid hash with junk appended, and a very long one. */
    CHECK_INT(auth_hash("pw", hash, sizeof hash, err, sizeof err), 0);
    memset(longhash, 'a', sizeof longhash - 1);
    longhash[sizeof longhash - 1] = '\0';
    memcpy(longhash, hash, strlen(hash));
    CHECK_INT(auth_verify("pw", longhash), 0);
    memset(longhash, 'a', sizeof longhash - 1);
    memcpy(longhash, "$6$", 3);
    CHECK_INT(auth_verify("pw", longhash), 0);
    /* A truncated valid hash. */
    hash[strlen(hash) - 1] = '\0';
    CHECK_INT(auth_verify("pw", hash), 0);
}

static void test_auth_verify_accepts_sha512_crypt(void)
{
    char setting[CRYPT_GENSALT_OUTPUT_SIZE], hash[AUTH_HASH_MAX + 1];
    struct crypt_data *cd = calloc(1, sizeof *cd);
    const char *res;

    CHECK(cd != NULL);
    if (cd == NULL)
        return;
    CHECK(crypt_gensalt_rn("$6$", 0, NULL, 0, setting, sizeof setting) != NULL);
    res = crypt_rn("hunter2", setting, cd, (int)sizeof *cd);
    CHECK(res != NULL && strncmp(res, "$6$", 3) == 0);
    if (res != NULL) {
        snprintf(hash, sizeof hash, "%s", res);
        CHECK_INT(auth_verify("hunter2", hash), 1);
        CHECK_INT(auth_verify("hunter3", hash), 0);
    }
    free(cd);
}

static void test_auth_hash_salts_each_hash(void)
{
    char a[AUTH_HASH_MAX + 1], b[AUTH_HASH_MAX + 1], err[256];

    CHECK_INT(auth_hash("same", a, sizeof a, err, sizeof err), 0);
    CHECK_INT(auth_hash("same", b, sizeof b, err, sizeof err), 0);
    CHECK(strcmp(a, b) != 0);
    CHECK_INT(auth_verify("same", a), 1);
    CHECK_INT(auth_verify("same", b), 1);
}

static void test_auth_hash_rejects_empty_and_small_buffer_without_leaking_password(void)
{
    char hash[16], err[256] = "";

    CHECK_INT(auth_hash("", hash, sizeof hash, err, sizeof err), -1);
    CHECK_HAS(err, "empty");
    err[0] = '\0';
    CHECK_INT(auth_hash("Sup3rSecret", hash, sizeof hash, err, sizeof err), -1);
    CHECK(err[0] != '\0');
    CHECK(strstr(err, "Sup3rSecret") == NULL);
}

/* ---- password input from a pipe or a file ----------------------------- */

/* A stream that yields exactly text (len bytes). */
static FILE *file_with(const char *text, size_t len)
{
    FILE *f = tmpfile();

    if (f == NULL)
        return NULL;
    if (len > 0 && fwrite(text, 1, len, f) != len) {
        fclose(f);
        return NULL;
    }
    rewind(f);
    return f;
}

static int read_from(const char *text, char *buf, size_t len, char *err, size_t errlen)
{
    FILE *f = file_with(text, strlen(text));
    int rc;

    CHECK(f != NULL);
    if (f == NULL)
        return -2;
    err[0] = '\0';
    rc = auth_password_read(f, 1, buf, len, err, errlen);
    fclose(f);
    return rc;
}

static void test_auth_password_read_reads_one_line(void)
{
    char buf[AUTH_PASSWORD_MAX + 1], err[256];

    CHECK_INT(read_from("s3cret\nsecond line\n", buf, sizeof buf, err, sizeof err), 0);
    CHECK_STR(buf, "s3cret");
    CHECK_INT(read_from("no newline at end", buf, sizeof buf, err, sizeof err), 0);
    CHECK_STR(buf, "no newline at end");
    CHECK_INT(read_from("  spaces kept \n", buf, sizeof buf, err, sizeof err), 0);
    CHECK_STR(buf, "  spaces kept ");
}

static void test_auth_password_read_strips_crlf(void)
{
    char buf[AUTH_PASSWORD_MAX + 1], small[8], err[256];

    CHECK_INT(read_from("s3cret\r\n", buf, sizeof buf, err, sizeof err), 0);
    CHECK_STR(buf, "s3cret");
    /* The '\r' does not count against the length. */
    CHECK_INT(read_from("1234567\r\n", small, sizeof small, err, sizeof err), 0);
    CHECK_STR(small, "1234567");
}

static void test_auth_password_read_rejects_empty(void)
{
    char buf[64], err[256];

    CHECK_INT(read_from("\n", buf, sizeof buf, err, sizeof err), -1);
    CHECK_HAS(err, "empty password");
    CHECK_INT(read_from("\r\n", buf, sizeof buf, err, sizeof err), -1);
    CHECK_HAS(err, "empty password");
}

static void test_auth_password_read_rejects_too_long_without_truncating(void)
{
    char buf[AUTH_PASSWORD_MAX + 16], small[8], err[256];
    char *line = malloc(AUTH_PASSWORD_MAX + 3);

    CHECK(line != NULL);
    if (line == NULL)
        return;
    /* Exactly AUTH_PASSWORD_MAX is fine, one more is not, even if buf is larger. */
    memset(line, 'p', AUTH_PASSWORD_MAX);
    memcpy(line + AUTH_PASSWORD_MAX, "\n", 2);
    CHECK_INT(read_from(line, buf, sizeof buf, err, sizeof err), 0);
    CHECK_INT(strlen(buf), AUTH_PASSWORD_MAX);
    memset(line, 'p', AUTH_PASSWORD_MAX + 1);
    memcpy(line + AUTH_PASSWORD_MAX + 1, "\n", 2);
    CHECK_INT(read_from(line, buf, sizeof buf, err, sizeof err), -1);
    CHECK_HAS(err, "password too long");
    free(line);

    /* Bounded by the caller's buffer too. */
    CHECK_INT(read_from("12345678\n", small, sizeof small, err, sizeof err), -1);
    CHECK_HAS(err, "password too long");
    CHECK_INT(read_from("1234567\n", small, sizeof small, err, sizeof err), 0);
    CHECK_STR(small, "1234567");
}

static void test_auth_password_read_rejects_eof(void)
{
    char buf[64], err[256];

    CHECK_INT(read_from("", buf, sizeof buf, err, sizeof err), -1);
    CHECK_HAS(err, "end of input");
}

static void test_auth_password_read_from_pipe_is_not_a_tty(void)
{
    char buf[64], err[256] = "";
    int fds[2];
    FILE *in;

    CHECK_INT(pipe(fds), 0);
    CHECK_INT(write(fds[1], "piped\n", 6), 6);
    close(fds[1]);
    in = fdopen(fds[0], "r");
    CHECK(in != NULL);
    if (in == NULL)
        return;
    /* from_stdin is 0: the pipe alone must select the one-line path. */
    CHECK_INT(auth_password_read(in, 0, buf, sizeof buf, err, sizeof err), 0);
    CHECK_STR(buf, "piped");
    fclose(in);
}

/* ---- password input from a terminal ----------------------------------- */

/* Read from the pty master into acc until it contains want (5 s bound). */
static int pty_expect(int master, char *acc, size_t cap, size_t *used, const char *want)
{
    struct pollfd pfd = {master, POLLIN, 0};
    ssize_t n;

    while (strstr(acc, want) == NULL) {
        if (poll(&pfd, 1, 5000) <= 0 || *used + 1 >= cap)
            return -1;
        n = read(master, acc + *used, cap - 1 - *used);
        if (n <= 0)
            return -1;
        *used += (size_t)n;
        acc[*used] = '\0';
    }
    return 0;
}

/*
 * Run auth_password_read in a child whose controlling terminal is a new pty
 * and type first/second at its prompts.  The child reports "rc|buf-or-err|echo"
 * into result; everything it showed on the terminal goes into screen.
 */
static int tty_session(const char *first, const char *second, char *result, size_t rlen,
                       char *screen, size_t slen)
{
    char *name;
    size_t used = 0;
    int master, fds[2], status;
    ssize_t n;
    pid_t pid;

    screen[0] = '\0';
    master = posix_openpt(O_RDWR | O_NOCTTY);
    if (master < 0 || grantpt(master) < 0 || unlockpt(master) < 0 ||
        (name = ptsname(master)) == NULL) {
        fprintf(stderr, "no pty available: %s\n", strerror(errno));
        if (master >= 0)
            close(master);
        return -2;
    }
    if (pipe(fds) < 0) {
        close(master);
        return -1;
    }
    pid = fork();
    if (pid == 0) {
        char buf[64], err[128], out[256];
        struct termios t;
        FILE *in;
        int s, rc, echo;

        close(master);
        close(fds[0]);
        setsid();
        s = open(name, O_RDWR); /* becomes the controlling terminal */
        if (s < 0 || (in = fdopen(s, "r")) == NULL)
            _exit(2);
        err[0] = '\0';
        rc = auth_password_read(in, 0, buf, sizeof buf, err, sizeof err);
        echo = tcgetattr(s, &t) == 0 && (t.c_lflag & ECHO) != 0;
        snprintf(out, sizeof out, "%d|%s|%s", rc, rc == 0 ? buf : err, echo ? "echo" : "noecho");
        if (write(fds[1], out, strlen(out)) < 0)
            _exit(3);
        _exit(0);
    }
    close(fds[1]);
    if (pid < 0) {
        close(fds[0]);
        close(master);
        return -1;
    }
    if (pty_expect(master, screen, slen, &used, "Password: ") == 0 &&
        write(master, first, strlen(first)) > 0 &&
        pty_expect(master, screen, slen, &used, "Retype password: ") == 0)
        (void)!write(master, second, strlen(second));
    n = read(fds[0], result, rlen - 1);
    result[n > 0 ? n : 0] = '\0';
    close(fds[0]);
    /* Drain what the child printed after the second prompt. */
    {
        struct pollfd pfd = {master, POLLIN, 0};
        while (used + 1 < slen && poll(&pfd, 1, 100) > 0 &&
               (n = read(master, screen + used, slen - 1 - used)) > 0) {
            used += (size_t)n;
            screen[used] = '\0';
        }
    }
    waitpid(pid, &status, 0);
    close(master);
    return WIFEXITED(status) && WEXITSTATUS(status) == 0 ? 0 : -1;
}

static void test_auth_password_read_tty_prompts_twice_without_echo(void)
{
    char result[256], screen[1024];
    int rc = tty_session("s3cret\n", "s3cret\n", result, sizeof result, screen, sizeof screen);

    if (rc == -2)
        return; /* no ptys in this sandbox */
    CHECK_INT(rc, 0);
    CHECK_STR(result, "0|s3cret|echo");
    CHECK_HAS(screen, "Password: ");
    CHECK_HAS(screen, "Retype password: ");
    CHECK(strstr(screen, "s3cret") == NULL);
}

static void test_auth_password_read_tty_rejects_mismatch_and_restores_echo(void)
{
    char result[256], screen[1024];
    int rc = tty_session("s3cret\n", "s3creT\n", result, sizeof result, screen, sizeof screen);

    if (rc == -2)
        return;
    CHECK_INT(rc, 0);
    CHECK_STR(result, "-1|passwords do not match|echo");
    CHECK(strstr(screen, "s3cre") == NULL);
}

/* ---- failure delay ---------------------------------------------------- */

static void test_auth_verify_cached_follows_password_changes(void)
{
    char h1[AUTH_HASH_MAX + 1], h2[AUTH_HASH_MAX + 1], err[256];

    CHECK_INT(auth_hash("first-pw", h1, sizeof h1, err, sizeof err), 0);
    CHECK_INT(auth_hash("second-pw", h2, sizeof h2, err, sizeof err), 0);
    CHECK_INT(auth_verify_cached("first-pw", h1), 1);
    CHECK_INT(auth_verify_cached("first-pw", h1), 1);      /* from the cache */
    CHECK_INT(auth_verify_cached("wrong", h1), 0);
    CHECK_INT(auth_verify_cached("wrong", h1), 0);         /* failures never cached */
    /* The password changed: the old one must fail against the new hash. */
    CHECK_INT(auth_verify_cached("first-pw", h2), 0);
    CHECK_INT(auth_verify_cached("second-pw", h2), 1);
}

/* A cheap SHA-512-crypt hash of "pw-N" (1000 rounds), for many users. */
static void cheap_hash(unsigned n, char *out, size_t outlen)
{
    char setting[64], pw[32];
    struct crypt_data *cd = calloc(1, sizeof *cd);
    const char *res;

    snprintf(setting, sizeof setting, "$6$rounds=1000$salt%u$", n);
    snprintf(pw, sizeof pw, "pw-%u", n);
    res = cd ? crypt_rn(pw, setting, cd, (int)sizeof *cd) : NULL;
    snprintf(out, outlen, "%s", res ? res : "*");
    free(cd);
}

static void test_auth_verify_cached_hashes_each_of_many_logins_once(void)
{
    enum { USERS = 300 };
    static char hashes[USERS][AUTH_HASH_MAX + 1];
    char pw[32];

    for (unsigned i = 0; i < USERS; i++)
        cheap_hash(i, hashes[i], sizeof hashes[i]);
    crypt_calls = 0;
    for (int round = 0; round < 3; round++)
        for (unsigned i = 0; i < USERS; i++) {
            snprintf(pw, sizeof pw, "pw-%u", i);
            CHECK_INT(auth_verify_cached(pw, hashes[i]), 1);
        }
    /* Round-robin logins: no user may push another out of the cache. */
    CHECK_INT(crypt_calls, USERS);
}

static void test_auth_cache_is_shared_by_processes_that_attach(void)
{
    char hash[AUTH_HASH_MAX + 1], err[256];
    int fd = auth_cache_create(err, sizeof err), status = -1;
    pid_t pid;

    CHECK(fd >= 0);
    if (fd < 0)
        return;
    cheap_hash(9999, hash, sizeof hash);
    pid = fork();
    if (pid == 0) {
        int ok = auth_cache_attach(fd, err, sizeof err) == 0 &&
                 auth_verify_cached("pw-9999", hash) == 1;
        _exit(ok ? 0 : 1);
    }
    CHECK(pid > 0 && waitpid(pid, &status, 0) == pid);
    CHECK_INT(status, 0);
    CHECK_INT(auth_cache_attach(fd, err, sizeof err), 0);
    crypt_calls = 0;
    CHECK_INT(auth_verify_cached("pw-9999", hash), 1);     /* the child's verification */
    CHECK_INT(crypt_calls, 0);
    CHECK_INT(auth_verify_cached("pw-9998", hash), 0);     /* a wrong password is hashed */
    CHECK_INT(crypt_calls, 1);
    close(fd);
}

static void test_auth_delay_doubles_and_caps(void)
{
    CHECK_INT(auth_delay_ms(0), 0);
    CHECK_INT(auth_delay_ms(1), 250);
    CHECK_INT(auth_delay_ms(2), 500);
    CHECK_INT(auth_delay_ms(3), 1000);
    CHECK_INT(auth_delay_ms(7), AUTH_DELAY_MAX_MS);
    CHECK_INT(auth_delay_ms(UINT32_MAX), AUTH_DELAY_MAX_MS);
}

int main(void)
{
    RUN(test_auth_hash_verify_round_trip);
    RUN(test_auth_verify_rejects_wrong_password);
    RUN(test_auth_verify_rejects_malformed_hashes);
    RUN(test_auth_verify_accepts_sha512_crypt);
    RUN(test_auth_hash_salts_each_hash);
    RUN(test_auth_hash_rejects_empty_and_small_buffer_without_leaking_password);
    RUN(test_auth_password_read_reads_one_line);
    RUN(test_auth_password_read_strips_crlf);
    RUN(test_auth_password_read_rejects_empty);
    RUN(test_auth_password_read_rejects_too_long_without_truncating);
    RUN(test_auth_password_read_rejects_eof);
    RUN(test_auth_password_read_from_pipe_is_not_a_tty);
    RUN(test_auth_password_read_tty_prompts_twice_without_echo);
    RUN(test_auth_password_read_tty_rejects_mismatch_and_restores_echo);
    RUN(test_auth_delay_doubles_and_caps);
    RUN(test_auth_verify_cached_follows_password_changes);
    RUN(test_auth_verify_cached_hashes_each_of_many_logins_once);
    RUN(test_auth_cache_is_shared_by_processes_that_attach);
    return check_done();
}
