/*
 * auth.c - password hashing and verification, password input, failure delay.
 *
 * Hashing and verification go through libcrypt (libxcrypt): new hashes are
 * yescrypt at libcrypt's default cost, verification accepts whatever libcrypt
 * knows.  The crypt work area holds password-derived state, so it lives on
 * the heap and is wiped before it is freed; so are the line buffers of
 * auth_password_read().
 *
 * auth_penalty is a fixed array of slots searched linearly: failures are
 * rare next to successes, tables are small (hundreds of slots), and a flat
 * array makes "evict the entry whose last failure is oldest" trivial.  The
 * caller passes the time, so the table never reads a clock and tests can
 * drive it.
 *
 * Diagnostics: error texts name what failed and why (strerror), never the
 * password.
 */
#include "mailcore/auth.h"

#include <crypt.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <signal.h>
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>
#include <termios.h>
#include <unistd.h>

#include <openssl/crypto.h>

#define AUTH_ADDR_MAX 64 /* client address text kept per slot */
#define AUTH_DELAY_BASE_MS 250

static void set_err(char *err, size_t errlen, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

static void set_err(char *err, size_t errlen, const char *fmt, ...)
{
    va_list ap;

    if (err == NULL || errlen == 0)
        return;
    va_start(ap, fmt);
    vsnprintf(err, errlen, fmt, ap);
    va_end(ap);
}

/* ---- hashing ---------------------------------------------------------- */

static struct crypt_data *crypt_data_new(void)
{
    return calloc(1, sizeof(struct crypt_data));
}

static void crypt_data_free(struct crypt_data *cd)
{
    if (cd == NULL)
        return;
    explicit_bzero(cd, sizeof *cd);
    free(cd);
}

/* libcrypt reports failure with NULL or, in some modes, a string that
 * starts with '*' (which can never be a valid hash). */
static int crypt_failed(const char *res)
{
    return res == NULL || res[0] == '*' || res[0] == '\0';
}

int auth_hash(const char *password, char *out, size_t outlen, char *err, size_t errlen)
{
    char setting[CRYPT_GENSALT_OUTPUT_SIZE];
    struct crypt_data *cd;
    const char *res;
    size_t n;

    if (password == NULL || password[0] == '\0') {
        set_err(err, errlen, "empty password");
        return -1;
    }
    if (strnlen(password, AUTH_PASSWORD_MAX + 1) > AUTH_PASSWORD_MAX) {
        set_err(err, errlen, "password too long (max %d bytes)", AUTH_PASSWORD_MAX);
        return -1;
    }
    errno = 0;
    if (crypt_gensalt_rn("$y$", 0, NULL, 0, setting, sizeof setting) == NULL || setting[0] == '*') {
        set_err(err, errlen, "cannot generate a salt: %s",
                errno ? strerror(errno) : "libcrypt failed");
        return -1;
    }
    if ((cd = crypt_data_new()) == NULL) {
        set_err(err, errlen, "cannot hash password: %s", strerror(errno));
        return -1;
    }
    errno = 0;
    res = crypt_rn(password, setting, cd, (int)sizeof *cd);
    if (crypt_failed(res)) {
        set_err(err, errlen, "cannot hash password: %s",
                errno ? strerror(errno) : "libcrypt failed");
        crypt_data_free(cd);
        return -1;
    }
    n = strlen(res);
    if (n > AUTH_HASH_MAX || n >= outlen) {
        set_err(err, errlen, "cannot hash password: hash of %zu bytes does not fit", n);
        crypt_data_free(cd);
        return -1;
    }
    memcpy(out, res, n + 1);
    crypt_data_free(cd);
    return 0;
}

int auth_verify(const char *password, const char *hash)
{
    struct crypt_data *cd;
    const char *res;
    size_t hlen;
    int ok;

    if (password == NULL || hash == NULL)
        return 0;
    if (strnlen(password, AUTH_PASSWORD_MAX + 1) > AUTH_PASSWORD_MAX)
        return 0;
    hlen = strnlen(hash, AUTH_HASH_MAX + 1);
    /* "" and "*..." / "!..." are locked accounts, not hashes. */
    if (hlen == 0 || hlen > AUTH_HASH_MAX || hash[0] == '*' || hash[0] == '!')
        return 0;
    if ((cd = crypt_data_new()) == NULL)
        return 0;
    res = crypt_rn(password, hash, cd, (int)sizeof *cd);
    ok = !crypt_failed(res) && strlen(res) == hlen && CRYPTO_memcmp(res, hash, hlen) == 0;
    crypt_data_free(cd);
    return ok;
}

/* ---- password input --------------------------------------------------- */

/* Where a line comes from: a stdio stream (pipes, files) or a terminal fd,
 * read with read(2) so that a signal interrupts it (see tty_read). */
struct pw_src {
    FILE *fp;
    int fd;
};

static volatile sig_atomic_t pw_signo;

static void pw_on_signal(int sig)
{
    pw_signo = sig;
}

/* Next byte, EOF at end of input, or -2 on error (errno set). */
static int pw_getc(struct pw_src *s)
{
    unsigned char c;
    ssize_t n;
    int ch;

    if (s->fp != NULL) {
        ch = getc(s->fp);
        if (ch == EOF && ferror(s->fp))
            return -2;
        return ch;
    }
    /* No EINTR retry: a signal must end the read so echo can be restored. */
    n = read(s->fd, &c, 1);
    if (n < 0)
        return -2;
    return n == 0 ? EOF : c;
}

/*
 * One line into buf (at most max bytes), without its "\n" or "\r\n".
 * The scratch buffer has room for max bytes plus a '\r' that may precede
 * the newline; anything longer is "too long", never truncated.
 */
static int pw_read_line(struct pw_src *s, char *buf, size_t max, char *err, size_t errlen)
{
    char line[AUTH_PASSWORD_MAX + 1];
    size_t n = 0;
    int ch, rc = -1, nl = 0;

    for (;;) {
        ch = pw_getc(s);
        if (ch == -2) {
            if (errno == EINTR)
                set_err(err, errlen, "interrupted");
            else
                set_err(err, errlen, "cannot read password: %s", strerror(errno));
            goto out;
        }
        if (ch == EOF)
            break;
        if (ch == '\n') {
            nl = 1;
            break;
        }
        if (n == max + 1) {
            set_err(err, errlen, "password too long (max %zu bytes)", max);
            goto out;
        }
        line[n++] = (char)ch;
    }
    if (nl && n > 0 && line[n - 1] == '\r')
        n--;
    if (!nl && n == 0) {
        set_err(err, errlen, "no password given (end of input)");
        goto out;
    }
    if (n > max) {
        set_err(err, errlen, "password too long (max %zu bytes)", max);
        goto out;
    }
    if (n == 0) {
        set_err(err, errlen, "empty password");
        goto out;
    }
    memcpy(buf, line, n);
    buf[n] = '\0';
    rc = 0;
out:
    explicit_bzero(line, sizeof line);
    return rc;
}

static void pw_write(int fd, const char *s)
{
    size_t len = strlen(s);
    ssize_t n;

    /* A prompt that cannot be shown is not worth failing for. */
    while (len > 0) {
        n = write(fd, s, len);
        if (n < 0 && errno == EINTR)
            continue;
        if (n <= 0)
            return;
        s += n;
        len -= (size_t)n;
    }
}

static const int pw_signals[] = {SIGINT, SIGHUP, SIGQUIT, SIGTERM, SIGTSTP};
#define PW_NSIGNALS (sizeof pw_signals / sizeof pw_signals[0])

/*
 * Prompt twice on the terminal with echo off.  Echo is restored on every
 * path: signals that would kill or stop us are caught, end the read with
 * EINTR, and are re-raised once the terminal is back as it was.
 */
static int pw_read_tty(FILE *in, char *buf, size_t max, char *err, size_t errlen)
{
    struct sigaction sa, old[PW_NSIGNALS];
    struct termios saved, quiet;
    struct pw_src src = {NULL, fileno(in)};
    char again[AUTH_PASSWORD_MAX + 1];
    int out, ttyfd, rc = -1, sig;
    size_t i;

    ttyfd = open("/dev/tty", O_WRONLY | O_NOCTTY | O_CLOEXEC);
    out = ttyfd >= 0 ? ttyfd : STDERR_FILENO;
    if (tcgetattr(src.fd, &saved) < 0) {
        set_err(err, errlen, "cannot read terminal settings: %s", strerror(errno));
        goto close_tty;
    }

    memset(&sa, 0, sizeof sa);
    sa.sa_handler = pw_on_signal;
    sigemptyset(&sa.sa_mask);
    sa.sa_flags = 0; /* no SA_RESTART: the read must return EINTR */
    pw_signo = 0;
    for (i = 0; i < PW_NSIGNALS; i++) {
        sigaction(pw_signals[i], &sa, &old[i]);
        if (old[i].sa_handler == SIG_IGN)
            sigaction(pw_signals[i], &old[i], NULL);
    }

    quiet = saved;
    quiet.c_lflag &= ~(tcflag_t)(ECHO | ECHONL);
    quiet.c_lflag |= ICANON;
    if (tcsetattr(src.fd, TCSAFLUSH, &quiet) < 0) {
        set_err(err, errlen, "cannot turn off echo: %s", strerror(errno));
        goto restore_signals;
    }

    pw_write(out, "Password: ");
    rc = pw_read_line(&src, buf, max, err, errlen);
    pw_write(out, "\n");
    if (rc == 0) {
        pw_write(out, "Retype password: ");
        rc = pw_read_line(&src, again, max, err, errlen);
        pw_write(out, "\n");
        if (rc == 0 && strcmp(buf, again) != 0) {
            set_err(err, errlen, "passwords do not match");
            rc = -1;
        }
    }
    if (rc < 0)
        explicit_bzero(buf, max + 1);
    explicit_bzero(again, sizeof again);

    while (tcsetattr(src.fd, TCSAFLUSH, &saved) < 0 && errno == EINTR)
        ;
restore_signals:
    sig = pw_signo;
    for (i = 0; i < PW_NSIGNALS; i++)
        sigaction(pw_signals[i], &old[i], NULL);
    if (sig != 0) {
        /* Echo is back: now let the signal do what it was meant to. */
        set_err(err, errlen, "interrupted");
        rc = -1;
        explicit_bzero(buf, max + 1);
        raise(sig);
    }
close_tty:
    if (ttyfd >= 0)
        close(ttyfd);
    return rc;
}

int auth_password_read(FILE *in, int from_stdin, char *buf, size_t len, char *err, size_t errlen)
{
    struct pw_src src = {in, -1};
    size_t max;
    int rc;

    if (in == NULL || buf == NULL || len < 2) {
        set_err(err, errlen, "no room for a password");
        return -1;
    }
    max = len - 1 < AUTH_PASSWORD_MAX ? len - 1 : AUTH_PASSWORD_MAX;
    if (!from_stdin && isatty(fileno(in)))
        return pw_read_tty(in, buf, max, err, errlen);
    rc = pw_read_line(&src, buf, max, err, errlen);
    if (rc < 0)
        explicit_bzero(buf, len);
    return rc;
}

/* ---- failure delay ---------------------------------------------------- */

struct penalty_slot {
    char addr[AUTH_ADDR_MAX + 1]; /* "" when the slot is free */
    unsigned count;
    uint64_t last_ms; /* time of the last failure */
};

struct auth_penalty {
    size_t nslots;
    struct penalty_slot slot[];
};

struct auth_penalty *auth_penalty_new(size_t slots)
{
    struct auth_penalty *p;

    if (slots == 0 || slots > (SIZE_MAX - sizeof *p) / sizeof p->slot[0]) {
        errno = EINVAL;
        return NULL;
    }
    p = calloc(1, sizeof *p + slots * sizeof p->slot[0]);
    if (p == NULL)
        return NULL;
    p->nslots = slots;
    return p;
}

void auth_penalty_free(struct auth_penalty *p)
{
    free(p);
}

/* The key: the first AUTH_ADDR_MAX bytes of the address text.  A missing
 * address still counts, as "-": "" marks a free slot. */
static void penalty_key(const char *addr, char key[AUTH_ADDR_MAX + 1])
{
    size_t n = addr ? strnlen(addr, AUTH_ADDR_MAX) : 0;

    if (n == 0) {
        memcpy(key, "-", 2);
        return;
    }
    memcpy(key, addr, n);
    key[n] = '\0';
}

static int penalty_expired(const struct penalty_slot *s, uint64_t now_ms)
{
    /* A clock that went backwards does not expire anything. */
    return now_ms > s->last_ms && now_ms - s->last_ms >= (uint64_t)AUTH_PENALTY_TTL * 1000;
}

static struct penalty_slot *penalty_find(struct auth_penalty *p, const char *key)
{
    size_t i;

    for (i = 0; i < p->nslots; i++)
        if (p->slot[i].addr[0] != '\0' && strcmp(p->slot[i].addr, key) == 0)
            return &p->slot[i];
    return NULL;
}

/* A free or expired slot, else the one whose last failure is oldest. */
static struct penalty_slot *penalty_victim(struct auth_penalty *p, uint64_t now_ms)
{
    struct penalty_slot *oldest = &p->slot[0];
    size_t i;

    for (i = 0; i < p->nslots; i++) {
        struct penalty_slot *s = &p->slot[i];

        if (s->addr[0] == '\0' || penalty_expired(s, now_ms))
            return s;
        if (s->last_ms < oldest->last_ms)
            oldest = s;
    }
    return oldest;
}

static uint64_t penalty_delay(unsigned count)
{
    uint64_t d = AUTH_DELAY_BASE_MS;

    if (count == 0)
        return 0;
    /* Doubling stops once past the cap, so the shift never overflows. */
    while (--count > 0 && d < AUTH_DELAY_MAX_MS)
        d *= 2;
    return d < AUTH_DELAY_MAX_MS ? d : AUTH_DELAY_MAX_MS;
}

uint64_t auth_penalty_fail(struct auth_penalty *p, const char *addr, uint64_t now_ms)
{
    char key[AUTH_ADDR_MAX + 1];
    struct penalty_slot *s;

    if (p == NULL)
        return 0;
    penalty_key(addr, key);
    s = penalty_find(p, key);
    if (s != NULL && penalty_expired(s, now_ms))
        s->count = 0;
    if (s == NULL) {
        s = penalty_victim(p, now_ms);
        memcpy(s->addr, key, sizeof key);
        s->count = 0;
    }
    if (s->count < UINT_MAX)
        s->count++;
    s->last_ms = now_ms;
    return penalty_delay(s->count);
}

void auth_penalty_success(struct auth_penalty *p, const char *addr)
{
    char key[AUTH_ADDR_MAX + 1];
    struct penalty_slot *s;

    if (p == NULL)
        return;
    penalty_key(addr, key);
    if ((s = penalty_find(p, key)) != NULL)
        memset(s, 0, sizeof *s);
}

unsigned auth_penalty_count(struct auth_penalty *p, const char *addr, uint64_t now_ms)
{
    char key[AUTH_ADDR_MAX + 1];
    struct penalty_slot *s;

    if (p == NULL)
        return 0;
    penalty_key(addr, key);
    s = penalty_find(p, key);
    if (s == NULL || penalty_expired(s, now_ms))
        return 0;
    return s->count;
}
