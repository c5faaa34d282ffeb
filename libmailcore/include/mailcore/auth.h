/*
 * auth - password hashing and verification (libcrypt), password input for
 * mailctl, and the per-client-address failure delay.
 *
 * Hashes are yescrypt ("$y$", libcrypt's default cost) and verification
 * accepts any hash libcrypt knows (SHA-512-crypt "$6$" too).  Comparison is
 * constant-time.  Passwords never appear in logs or error texts.
 *
 * Failed logins are counted per client address in LMDB, so that every
 * smtpd, submitd and imapd process sees the same count (auth_fail); the
 * delay before answering grows with it (250 ms doubling up to
 * AUTH_DELAY_MAX_MS) and the count expires after AUTH_PENALTY_TTL seconds
 * without failures.
 */
#ifndef MAILCORE_AUTH_H
#define MAILCORE_AUTH_H

#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

#define AUTH_HASH_MAX 255
#define AUTH_PASSWORD_MAX 511   /* libcrypt hashes at most CRYPT_MAX_PASSPHRASE_SIZE - 1 */
#define AUTH_DELAY_MAX_MS 15000
#define AUTH_PENALTY_TTL 900

/* 0 with the hash in out, or -1 with err.  An empty password or one longer
 * than AUTH_PASSWORD_MAX is refused. */
int auth_hash(const char *password, char *out, size_t outlen, char *err, size_t errlen);
/* 1 when password matches hash, 0 when not (or the hash is malformed or
 * locked: "", "*...", "!...", or the password is over AUTH_PASSWORD_MAX). */
int auth_verify(const char *password, const char *hash);

/*
 * auth_verify() with a short-lived cache of successful verifications (as
 * Dovecot's auth_cache): a login that succeeded within AUTH_CACHE_TTL
 * seconds with the same password against the same hash is not hashed
 * again.  The cache holds HMAC-SHA-256(secret, hash NUL password), never
 * the password; a new password means a new hash, which never matches, so a
 * password change applies at once.  Failures are never cached.
 * AUTH_CACHE_SLOTS entries in sets of AUTH_CACHE_WAYS, private to the
 * process (with a secret of its own) unless it called auth_cache_attach().
 */
#define AUTH_CACHE_SLOTS 4096
#define AUTH_CACHE_WAYS 8
#define AUTH_CACHE_TTL 300
int auth_verify_cached(const char *password, const char *hash);

/*
 * One cache for all the daemons, as Dovecot's single auth process has:
 * master makes it with auth_cache_create() (a memfd holding the HMAC
 * secret and the slots; fd, or -1 with err) and passes it to every daemon
 * (MAILCORE_AUTHCACHE_FD), which maps it with auth_cache_attach() (0, or -1
 * with err).  A login verified by one submitd or imapd worker is then not
 * hashed again by the others.  The memory never leaves RAM and only
 * master's children have it.
 */
int auth_cache_create(char *err, size_t errlen);
int auth_cache_attach(int fd, char *err, size_t errlen);

/*
 * Read a password for mailctl: from a terminal, prompt twice without echo
 * and require both to match; otherwise (from_stdin, or stdin not a tty)
 * read one line.  0, or -1 with err (empty, too long, mismatch, EOF).
 * The line ends at "\n" or "\r\n" (neither is kept); a password longer
 * than len - 1 or AUTH_PASSWORD_MAX bytes is an error, never truncated.
 * The terminal is read with read(2) on fileno(in), not through in's
 * buffer; echo is restored even when a signal ends the read.
 */
int auth_password_read(FILE *in, int from_stdin, char *buf, size_t len, char *err, size_t errlen);

/* Addresses are keyed on their first 64 bytes; NULL or "" count as "-".
 * Time is the caller's (a monotonic clock in ms): nothing here reads one.
 * When the table is full, the entry whose last failure is oldest goes. */
struct db;
struct db_user;

/*
 * Check a login (a user name or any of the user's addresses) and its
 * password against LMDB, with auth_verify_cached().  1 with *user filled
 * when they match, 0 when not (unknown user or wrong password), -1 when the
 * lookup failed (err set).
 */
int auth_login(struct db *db, const char *login, const char *password, struct db_user *user,
               char *err, size_t errlen);

/* The delay before answering the count-th failure from one address:
 * 250 ms doubling per failure, at most AUTH_DELAY_MAX_MS. */
uint64_t auth_delay_ms(uint32_t count);

/*
 * Failed logins per client address, shared by every process through LMDB
 * (db_authfail_*): auth_fail() notes one and returns the delay to wait
 * before answering; auth_success() forgets the address (one read
 * transaction when there is nothing to forget).  An entry expires
 * AUTH_PENALTY_TTL seconds after its last failure.
 */
uint64_t auth_fail(struct db *db, const char *addr);
void auth_success(struct db *db, const char *addr);

#endif
