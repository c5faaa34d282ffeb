/*
 * auth.c - password hashing and verification, password input, failure delay.
 *
 * Hashing and verification go through libcrypt (libxcrypt): new hashes are
 * yescrypt at libcrypt's default cost, verification accepts whatever libcrypt
 * knows.  The crypt work area holds password-derived state, so it lives on
 * the heap and is wiped before it is freed; so are the line buffers of
 * auth_password_read().
 *
 * Failure counts live in LMDB (db_authfail_*), shared by every process; a
 * success costs one read transaction when the address has no failures.
 *
 * Diagnostics: error texts name what failed and why (strerror), never the
 * password.
 */
#include "mailcore/err.h"
#include "mailcore/auth.h"
#include "mailcore/db.h"

#include <crypt.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <signal.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <termios.h>
#include <time.h>
#include <unistd.h>

#include <openssl/crypto.h>
#include <openssl/evp.h>
#include <openssl/hmac.h>
#include <sys/mman.h>
#include <sys/random.h>

#define AUTH_DELAY_BASE_MS 250

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

_Static_assert(AUTH_PASSWORD_MAX < CRYPT_MAX_PASSPHRASE_SIZE, "libcrypt refuses longer");

int auth_hash(const char *password, char *out, size_t outlen, char *err, size_t errlen)
{
    char setting[CRYPT_GENSALT_OUTPUT_SIZE];
    struct crypt_data *cd;
    const char *res;
    size_t n;

    if (password == NULL || password[0] == '\0') {
        err_set(err, errlen, "empty password");
        return -1;
    }
    if (strnlen(password, AUTH_PASSWORD_MAX + 1) > AUTH_PASSWORD_MAX) {
        err_set(err, errlen, "password too long (max %d bytes)", AUTH_PASSWORD_MAX);
        return -1;
    }
    errno = 0;
    if (crypt_gensalt_rn("$y$", 0, NULL, 0, setting, sizeof setting) == NULL || setting[0] == '*') {
        err_set(err, errlen, "cannot generate a salt: %s",
                errno ? strerror(errno) : "libcrypt failed");
        return -1;
    }
    if ((cd = crypt_data_new()) == NULL) {
        err_set(err, errlen, "cannot hash password: %s", strerror(errno));
        return -1;
    }
    errno = 0;
    res = crypt_rn(password, setting, cd, (int)sizeof *cd);
    if (crypt_failed(res)) {
        err_set(err, errlen, "cannot hash password: %s",
                errno ? strerror(errno) : "libcrypt failed");
        crypt_data_free(cd);
        return -1;
    }
    n = strlen(res);
    if (n > AUTH_HASH_MAX || n >= outlen) {
        err_set(err, errlen, "cannot hash password: hash of %zu bytes does not fit", n);
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
                err_set(err, errlen, "interrupted");
            else
                err_set(err, errlen, "cannot read password: %s", strerror(errno));
            goto out;
        }
        if (ch == EOF)
            break;
        if (ch == '\n') {
            nl = 1;
            break;
        }
        if (n == max + 1) {
            err_set(err, errlen, "password too long (max %zu bytes)", max);
            goto out;
        }
        line[n++] = (char)ch;
    }
    if (nl && n > 0 && line[n - 1] == '\r')
        n--;
    if (!nl && n == 0) {
        err_set(err, errlen, "no password given (end of input)");
        goto out;
    }
    if (n > max) {
        err_set(err, errlen, "password too long (max %zu bytes)", max);
        goto out;
    }
    if (n == 0) {
        err_set(err, errlen, "empty password");
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
        err_set(err, errlen, "cannot read terminal settings: %s", strerror(errno));
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
        err_set(err, errlen, "cannot turn off echo: %s", strerror(errno));
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
            err_set(err, errlen, "passwords do not match");
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
        err_set(err, errlen, "interrupted");
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
        err_set(err, errlen, "no room for a password");
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

/* ---- cache of successful verifications --------------------------------- */

/*
 * The cache may be shared memory written by several processes at once
 * (auth_cache_attach), so every word is an atomic and no lock is taken.  A
 * writer clears expires, writes the key, then sets expires (release); a
 * reader loads expires (acquire), then the key.  A torn read can only mix
 * words of keys that were written, each only after a successful
 * verification of its own hash and password, and 64-bit words of different
 * HMACs do not coincide: a lookup matches only a key that was verified.
 */
struct cache_slot {
    _Atomic uint64_t key[4];
    _Atomic int64_t expires;
};

struct auth_cache {
    unsigned char secret[32];
    struct cache_slot slots[AUTH_CACHE_SLOTS];
};

static struct auth_cache local_cache;
static struct auth_cache *cache = &local_cache;
static int secret_ready;

static int fill_secret(unsigned char secret[32])
{
    return getrandom(secret, 32, 0) == 32 ? 0 : -1;
}

int auth_cache_create(char *err, size_t errlen)
{
    int fd = memfd_create("mailcore-authcache", MFD_CLOEXEC);
    struct auth_cache *c = MAP_FAILED;

    if (fd < 0 || ftruncate(fd, (off_t)sizeof *c) < 0 ||
        (c = mmap(NULL, sizeof *c, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0)) == MAP_FAILED ||
        fill_secret(c->secret) < 0) {
        err_set(err, errlen, "login cache memory: %s", strerror(errno));
        if (c != MAP_FAILED)
            munmap(c, sizeof *c);
        if (fd >= 0)
            close(fd);
        return -1;
    }
    munmap(c, sizeof *c);
    return fd;
}

int auth_cache_attach(int fd, char *err, size_t errlen)
{
    struct auth_cache *c = mmap(NULL, sizeof *c, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);

    if (c == MAP_FAILED) {
        err_set(err, errlen, "login cache memory: %s", strerror(errno));
        return -1;
    }
    cache = c;
    secret_ready = 1;
    return 0;
}

static int cache_key(const char *password, const char *hash, uint64_t key[4])
{
    unsigned char mac[32];
    unsigned int len = sizeof mac;
    size_t hl = strlen(hash), pl = strlen(password);
    unsigned char *buf;
    int ok;

    if (!secret_ready) {
        if (fill_secret(cache->secret) < 0)
            return -1;
        secret_ready = 1;
    }
    if ((buf = malloc(hl + 1 + pl)) == NULL)
        return -1;
    memcpy(buf, hash, hl);
    buf[hl] = '\0';
    memcpy(buf + hl + 1, password, pl);
    ok = HMAC(EVP_sha256(), cache->secret, sizeof cache->secret, buf, hl + 1 + pl, mac, &len) !=
         NULL;
    explicit_bzero(buf, hl + 1 + pl);
    free(buf);
    memcpy(key, mac, sizeof mac);
    return ok ? 0 : -1;
}

static int slot_matches(struct cache_slot *slot, const uint64_t key[4], int64_t now)
{
    uint64_t k[4];

    if (atomic_load_explicit(&slot->expires, memory_order_acquire) <= now)
        return 0;
    for (int i = 0; i < 4; i++)
        k[i] = atomic_load_explicit(&slot->key[i], memory_order_relaxed);
    return CRYPTO_memcmp(k, key, sizeof k) == 0;
}

static void slot_fill(struct cache_slot *slot, const uint64_t key[4], int64_t expires)
{
    atomic_store_explicit(&slot->expires, 0, memory_order_relaxed);
    atomic_thread_fence(memory_order_release);
    for (int i = 0; i < 4; i++)
        atomic_store_explicit(&slot->key[i], key[i], memory_order_relaxed);
    atomic_store_explicit(&slot->expires, expires, memory_order_release);
}

/*
 * The cache is set-associative: a key may sit in any of the
 * AUTH_CACHE_WAYS slots of its set, and a new one replaces the slot that
 * expires first.  (With one slot per key, two users whose keys share a
 * slot would push each other out at every login: a full hash each time.)
 */
int auth_verify_cached(const char *password, const char *hash)
{
    uint64_t key[4];
    struct cache_slot *set, *victim;
    int64_t now = (int64_t)time(NULL), oldest = INT64_MAX;

    if (cache_key(password, hash, key) < 0)
        return auth_verify(password, hash);
    set = &cache->slots[key[0] % (AUTH_CACHE_SLOTS / AUTH_CACHE_WAYS) * AUTH_CACHE_WAYS];
    victim = set;
    for (struct cache_slot *slot = set; slot < set + AUTH_CACHE_WAYS; slot++) {
        int64_t e = atomic_load_explicit(&slot->expires, memory_order_relaxed);

        if (slot_matches(slot, key, now))
            return 1;
        if (e < oldest) {
            oldest = e;
            victim = slot;
        }
    }
    if (!auth_verify(password, hash))
        return 0;
    slot_fill(victim, key, now + AUTH_CACHE_TTL);
    return 1;
}

/* ---- logins ------------------------------------------------------------ */

struct login {
    const char *login, *password;
    struct db_user *user;
    int ok;
};

static int tx_login(struct db_txn *txn, void *arg)
{
    struct login *l = arg;
    int r = db_user_by_login(txn, l->login, l->user);

    if (r == DB_NOTFOUND)
        return 0;
    if (r != 0)
        return r;
    l->ok = auth_verify_cached(l->password, l->user->hash);
    return 0;
}

int auth_login(struct db *db, const char *login, const char *password, struct db_user *user,
               char *err, size_t errlen)
{
    struct login l = {login, password, user, 0};

    if (db_read(db, tx_login, &l, err, errlen) != 0)
        return -1;
    return l.ok;
}

/* ---- failure delay ---------------------------------------------------- */

uint64_t auth_delay_ms(uint32_t count)
{
    uint64_t d = AUTH_DELAY_BASE_MS;

    for (uint32_t i = 1; i < count && d < AUTH_DELAY_MAX_MS; i++)
        d *= 2;
    return count == 0 ? 0 : d < AUTH_DELAY_MAX_MS ? d : AUTH_DELAY_MAX_MS;
}

struct fail_arg {
    const char *addr;
    uint32_t count;
};

static int tx_fail(struct db_txn *txn, void *arg)
{
    struct fail_arg *f = arg;

    return db_authfail_note(txn, f->addr, (uint64_t)time(NULL), AUTH_PENALTY_TTL, &f->count);
}

static int tx_get(struct db_txn *txn, void *arg)
{
    struct fail_arg *f = arg;

    return db_authfail_get(txn, f->addr, &f->count);
}

static int tx_clear(struct db_txn *txn, void *arg)
{
    struct fail_arg *f = arg;
    int rc = db_authfail_clear(txn, f->addr);

    return rc == DB_NOTFOUND ? 0 : rc;
}

uint64_t auth_fail(struct db *db, const char *addr)
{
    struct fail_arg f = {addr, 1};
    char err[256];

    /* A failed note still delays: as for a first failure. */
    db_write(db, tx_fail, &f, err, sizeof err);
    return auth_delay_ms(f.count);
}

void auth_success(struct db *db, const char *addr)
{
    struct fail_arg f = {addr, 0};
    char err[256];

    if (db_read(db, tx_get, &f, err, sizeof err) == 0)
        db_write(db, tx_clear, &f, err, sizeof err);
}
