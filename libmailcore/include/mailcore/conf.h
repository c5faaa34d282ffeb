/*
 * conf - the configuration: one table of keys, its parser and its printer.
 *
 * Every key that mailcore knows lives in conf_keys[] (conf_table.c) with its
 * type, default and a one-line description.  The parser, `mailctl config`,
 * `mailctl check` and the README's table all come from that table, so the
 * documentation and the defaults cannot drift apart.
 *
 * The file format is Postfix's main.cf: "key = value", '#' comments, blank
 * lines, and a line that starts with white space continues the previous one.
 * An unknown key, a bad value or an overlong line is an error naming the
 * file, the line and the key.
 *
 * Usage:
 *	struct conf *c = conf_new();
 *	if (conf_load_file(c, path, err, sizeof err) < 0) { ... err ... }
 *	conf_port(c, "smtpd_port"); conf_str(c, "email_domain"); ...
 *	conf_free(c);
 * The typed getters abort on a key that is not in the table or of another
 * type: that is a programming error, not a runtime condition.
 */
#ifndef MAILCORE_CONF_H
#define MAILCORE_CONF_H

#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

#define CONF_DEFAULT_PATH "/etc/mailcore/mailcore.conf"
#define CONF_LINE_MAX 4096   /* longest logical line, continuations included */
#define CONF_FILE_MAX (1024 * 1024)

enum conf_type {
    CONF_STR,      /* free text */
    CONF_PATH,     /* an absolute path; may be empty where the default is */
    CONF_PORT,     /* 0..65535, 0 disables */
    CONF_UINT,     /* unsigned integer */
    CONF_BOOL,     /* yes / no */
    CONF_DURATION, /* seconds, with s, m, h, d suffixes */
    CONF_SIZE,     /* bytes, with k, m, g suffixes (powers of 1024) */
    CONF_LIST,     /* comma or space separated words */
};

enum conf_flag {
    CONF_SECRET = 1 << 0,   /* never printed: `mailctl config` masks it */
    CONF_FILE_MUST_EXIST = 1 << 1, /* a non-empty value must name a readable file */
};

struct conf_key {
    const char *name;
    enum conf_type type;
    const char *def;        /* default as text; "" for none */
    unsigned flags;
    uint64_t min, max;      /* bounds for UINT, DURATION, SIZE (max 0: none) */
    const char *doc;        /* one line for `mailctl config --doc` and README */
};

extern const struct conf_key conf_keys[];
extern const size_t conf_nkeys;

struct conf;

struct conf *conf_new(void);   /* every key at its default */
void conf_free(struct conf *c);

/*
 * Parse a whole file.  Returns 0, or -1 with "FILE:LINE: KEY: what is wrong"
 * (or "FILE: ..." for errors about the file itself) in err.
 */
int conf_load_file(struct conf *c, const char *path, char *err, size_t errlen);

/* Read a whole config file (bounded by CONF_FILE_MAX) into a new buffer
 * (NUL-terminated; free() it).  0 or -1 with err. */
int conf_read_file(const char *path, char **buf, size_t *len, char *err, size_t errlen);

/* Parse the whole content of fd (a file or memfd, read with pread from
 * offset 0); name is used in error messages.  master hands its daemons the
 * exact text it validated this way, so a daemon restarted while the file
 * on disk is being edited still runs with the configuration in force. */
int conf_load_fd(struct conf *c, const char *name, int fd, char *err, size_t errlen);

/* Parse text already in memory; name is used in error messages. */
int conf_load_buf(struct conf *c, const char *name, const char *buf, size_t len,
                  char *err, size_t errlen);

/* Set one key from text, as the parser would ("key", "value"). */
int conf_set(struct conf *c, const char *key, const char *value, char *err,
             size_t errlen);

/* Semantic checks that need more than one key or the file system (files
 * that must exist, TLS ports without certificates, directories).  0 or -1. */
int conf_validate(const struct conf *c, char *err, size_t errlen);

/*
 * Settings that are valid but seldom meant, for `mailctl check`: warn gets
 * each warning's text (no "warning: " prefix), in a stable order.  Today:
 * a STARTTLS port (submission_port, imap_port) enabled without
 * tls_cert_file, unless every listen_address is loopback.
 */
void conf_warnings(const struct conf *c, void (*warn)(const char *text, void *arg), void *arg);

struct db_txn;
/* The rules that need the database, for `mailctl check`: a relay_acl group
 * must exist (else no user may send).  0, or -1 with err (a broken rule or
 * the database's own error). */
int conf_validate_db(const struct conf *c, struct db_txn *txn, char *err, size_t errlen);

const struct conf_key *conf_key_find(const char *name);

const char *conf_str(const struct conf *c, const char *key);     /* STR, PATH */
int conf_port(const struct conf *c, const char *key);
uint64_t conf_uint(const struct conf *c, const char *key);       /* UINT, SIZE, DURATION */
int conf_bool(const struct conf *c, const char *key);
/* relay_acl's group, whose members alone may send through submitd; NULL
 * when it is published (every authenticated user may send). */
const char *conf_relay_acl_group(const struct conf *c);
/* LIST: the n-th word (0-based) or NULL past the end. */
const char *conf_list_item(const struct conf *c, const char *key, size_t n);

/* The value as text, as it would be printed; "" when empty. */
const char *conf_value_text(const struct conf *c, const char *key);
int conf_is_default(const struct conf *c, const char *key);
/* Where a key was set: "FILE:LINE", or NULL when at its default. */
const char *conf_origin(const struct conf *c, const char *key);

/*
 * Print "key = value" lines, secrets masked as "(hidden)"; only_changed
 * prints just what differs from the defaults.  keys: NULL for all, else a
 * NULL-terminated list; an unknown key returns -1 with err set.
 */
int conf_print(const struct conf *c, FILE *out, int only_changed,
               const char *const *keys, char *err, size_t errlen);

/* Parsers for single values, exposed for tests and other modules. */
int conf_parse_duration(const char *s, uint64_t *seconds);
int conf_parse_size(const char *s, uint64_t *bytes);
int conf_parse_bool(const char *s, int *value);

/* The config path: -c wins, then $MAILCORE_CONF, then the default. */
const char *conf_path_choose(const char *opt);

#endif
