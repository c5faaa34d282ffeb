/*
 * conf.c - parsing, validating and printing the configuration described by
 * conf_keys[] (conf_table.c).  See conf.h.
 *
 * A struct conf holds one slot per key of the table: the value as text (as
 * the administrator wrote it, trimmed), its parsed number or word list, and
 * where it was set.  Every error names the file, the line and the key.
 */
#include <ctype.h>
#include <errno.h>
#include <fcntl.h>
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "mailcore/err.h"
#include "mailcore/conf.h"

#define CONF_LIST_MAX 64
#define CONF_ORIGIN_MAX 512

struct conf_val {
    char *text;                 /* as set, trimmed */
    uint64_t num;               /* PORT, UINT, BOOL, DURATION, SIZE */
    char **items;               /* LIST */
    size_t nitems;
    char origin[CONF_ORIGIN_MAX];   /* "file:line", "" at default */
};

struct conf {
    struct conf_val *v;         /* conf_nkeys slots, in table order */
};

const struct conf_key *conf_key_find(const char *name)
{
    for (size_t i = 0; i < conf_nkeys; i++)
        if (strcmp(conf_keys[i].name, name) == 0)
            return &conf_keys[i];
    return NULL;
}

static size_t key_index(const char *name)
{
    const struct conf_key *k = conf_key_find(name);

    if (k == NULL) {
        /* A key missing from the table is a programming error. */
        fprintf(stderr, "mailcore: internal error: unknown config key %s\n", name);
        abort();
    }
    return (size_t)(k - conf_keys);
}

/* Single values. */

static int parse_number(const char *s, uint64_t *out, const char **rest)
{
    uint64_t v = 0;

    if (!isdigit((unsigned char)*s))
        return -1;
    for (; isdigit((unsigned char)*s); s++) {
        unsigned d = (unsigned)(*s - '0');
        if (v > (UINT64_MAX - d) / 10)
            return -1;
        v = v * 10 + d;
    }
    *out = v;
    *rest = s;
    return 0;
}

static int scaled(const char *s, uint64_t *out, const char *units, const uint64_t *mult)
{
    const char *rest;
    uint64_t v, m = 1;

    if (parse_number(s, &v, &rest) < 0)
        return -1;
    if (*rest != '\0') {
        const char *u = strchr(units, tolower((unsigned char)*rest));
        if (u == NULL || rest[1] != '\0')
            return -1;
        m = mult[u - units];
    }
    if (v > UINT64_MAX / m)
        return -1;
    *out = v * m;
    return 0;
}

static int parse_uint(const char *s, uint64_t *out)
{
    const char *rest;

    return parse_number(s, out, &rest) < 0 || *rest != '\0' ? -1 : 0;
}

int conf_parse_duration(const char *s, uint64_t *seconds)
{
    static const uint64_t mult[] = {1, 60, 3600, 86400};
    return scaled(s, seconds, "smhd", mult);
}

int conf_parse_size(const char *s, uint64_t *bytes)
{
    static const uint64_t mult[] = {1024, 1024 * 1024, 1024 * 1024 * 1024};
    return scaled(s, bytes, "kmg", mult);
}

int conf_parse_bool(const char *s, int *value)
{
    if (strcasecmp(s, "yes") == 0) {
        *value = 1;
        return 0;
    }
    if (strcasecmp(s, "no") == 0) {
        *value = 0;
        return 0;
    }
    return -1;
}

static void val_clear(struct conf_val *v)
{
    free(v->text);
    for (size_t i = 0; i < v->nitems; i++)
        free(v->items[i]);
    free(v->items);
    v->text = NULL;
    v->items = NULL;
    v->nitems = 0;
}

static int split_list(const char *text, char ***items, size_t *nitems, char *err, size_t errlen)
{
    char **list = calloc(CONF_LIST_MAX, sizeof *list);
    size_t n = 0;
    const char *p = text;

    if (list == NULL) {
        err_set(err, errlen, "out of memory");
        return -1;
    }
    while (*p) {
        size_t len;
        while (*p == ',' || isspace((unsigned char)*p))
            p++;
        len = strcspn(p, ", \t");
        if (len == 0)
            break;
        if (n == CONF_LIST_MAX) {
            err_set(err, errlen, "more than %d list items", CONF_LIST_MAX);
            goto fail;
        }
        if ((list[n] = strndup(p, len)) == NULL) {
            err_set(err, errlen, "out of memory");
            goto fail;
        }
        n++;
        p += len;
    }
    *items = list;
    *nitems = n;
    return 0;
fail:
    for (size_t i = 0; i < n; i++)
        free(list[i]);
    free(list);
    return -1;
}

/* Parse text for key k into v.  err gets the reason alone (no file/key). */
static int parse_value(const struct conf_key *k, const char *text, struct conf_val *v,
                       char *err, size_t errlen)
{
    struct conf_val nv = {0};
    int b;

    switch (k->type) {
    case CONF_PORT:
        if (parse_uint(text, &nv.num) < 0 || nv.num > 65535) {
            err_set(err, errlen, "'%s' is not a port number (0-65535)", text);
            return -1;
        }
        break;
    case CONF_UINT:
    case CONF_DURATION:
    case CONF_SIZE: {
        int r = k->type == CONF_DURATION ? conf_parse_duration(text, &nv.num)
              : k->type == CONF_SIZE     ? conf_parse_size(text, &nv.num)
                                         : parse_uint(text, &nv.num);
        const char *what = k->type == CONF_DURATION ? "a duration (e.g. 30s, 10m, 2h, 5d)"
                         : k->type == CONF_SIZE     ? "a size (e.g. 512k, 50m, 1g)"
                                                    : "a number";
        if (r < 0) {
            err_set(err, errlen, "'%s' is not %s", text, what);
            return -1;
        }
        if (nv.num < k->min || (k->max && nv.num > k->max)) {
            err_set(err, errlen, "%s is out of range (%llu to %llu)", text,
                   (unsigned long long)k->min, (unsigned long long)k->max);
            return -1;
        }
        break;
    }
    case CONF_BOOL:
        if (conf_parse_bool(text, &b) < 0) {
            err_set(err, errlen, "'%s' is not yes or no", text);
            return -1;
        }
        nv.num = (uint64_t)b;
        break;
    case CONF_PATH:
        if (text[0] != '\0' && text[0] != '/') {
            err_set(err, errlen, "'%s' is not an absolute path", text);
            return -1;
        }
        break;
    case CONF_LIST:
        if (split_list(text, &nv.items, &nv.nitems, err, errlen) < 0)
            return -1;
        break;
    case CONF_STR:
        break;
    }
    if ((k->flags & CONF_FILE_MUST_EXIST) && text[0] != '\0') {
        struct stat st;
        if (stat(text, &st) < 0) {
            err_set(err, errlen, "%s: %s", text, strerror(errno));
            val_clear(&nv);
            return -1;
        }
        if (!S_ISREG(st.st_mode)) {
            err_set(err, errlen, "%s: not a regular file", text);
            val_clear(&nv);
            return -1;
        }
    }
    if ((nv.text = strdup(text)) == NULL) {
        val_clear(&nv);
        err_set(err, errlen, "out of memory");
        return -1;
    }
    val_clear(v);
    memcpy(nv.origin, v->origin, sizeof nv.origin);
    *v = nv;
    return 0;
}

/* The host's domain: what follows the first dot of the host name, or
 * "localdomain" for a name without one, as Postfix's mydomain (a bare
 * host name such as "vm" would give users alice@vm). */
static void host_domain(char *out, size_t len)
{
    char host[256] = "";
    const char *dot;

    if (gethostname(host, sizeof host - 1) < 0)
        host[0] = '\0';
    dot = strchr(host, '.');
    snprintf(out, len, "%s", dot && dot[1] ? dot + 1 : "localdomain");
}

/* The host's name as gethostname() gives it. */
static void host_name(char *out, size_t len)
{
    char host[256] = "";

    if (gethostname(host, sizeof host - 1) < 0 || host[0] == '\0')
        snprintf(host, sizeof host, "localhost");
    snprintf(out, len, "%s", host);
}

struct conf *conf_new(void)
{
    struct conf *c = calloc(1, sizeof *c);
    char err[256], domain[256];

    if (c == NULL)
        return NULL;
    if ((c->v = calloc(conf_nkeys, sizeof *c->v)) == NULL) {
        free(c);
        return NULL;
    }
    for (size_t i = 0; i < conf_nkeys; i++) {
        const char *def = conf_keys[i].def;
        if (strcmp(conf_keys[i].name, "email_domain") == 0) {
            host_domain(domain, sizeof domain);
            def = domain;
        } else if (strcmp(conf_keys[i].name, "myhostname") == 0) {
            host_name(domain, sizeof domain);
            def = domain;
        }
        /* Defaults are never checked against the file system. */
        struct conf_key k = conf_keys[i];
        k.flags &= ~(unsigned)CONF_FILE_MUST_EXIST;
        if (parse_value(&k, def, &c->v[i], err, sizeof err) < 0) {
            fprintf(stderr, "mailcore: internal error: default of %s: %s\n", k.name, err);
            abort();
        }
    }
    return c;
}

void conf_free(struct conf *c)
{
    if (c == NULL)
        return;
    for (size_t i = 0; i < conf_nkeys; i++)
        val_clear(&c->v[i]);
    free(c->v);
    free(c);
}

int conf_set(struct conf *c, const char *key, const char *value, char *err, size_t errlen)
{
    const struct conf_key *k = conf_key_find(key);
    char why[CONF_ORIGIN_MAX];

    if (k == NULL) {
        err_set(err, errlen, "%s: unknown parameter", key);
        return -1;
    }
    if (parse_value(k, value, &c->v[k - conf_keys], why, sizeof why) < 0) {
        err_set(err, errlen, "%s: %s", key, why);
        return -1;
    }
    return 0;
}

/* The parser proper. */

struct parse {
    struct conf *c;
    const char *name;
    char *err;
    size_t errlen;
    char logical[CONF_LINE_MAX + 1];
    size_t len;
    unsigned line;        /* where the logical line started */
};

static int is_key_char(int ch)
{
    return islower(ch) || isdigit(ch) || ch == '_';
}

static int parse_logical(struct parse *p)
{
    char *s = p->logical, *eq, *key, *value, *end;
    const struct conf_key *k;
    char why[CONF_ORIGIN_MAX];

    s[p->len] = '\0';
    key = s;
    for (end = key; is_key_char((unsigned char)*end); end++)
        ;
    if (end == key) {
        err_set(p->err, p->errlen, "%s:%u: expected 'key = value', got '%.40s'", p->name,
               p->line, s);
        return -1;
    }
    eq = end;
    while (*eq == ' ' || *eq == '\t')
        eq++;
    if (*eq != '=') {
        *end = '\0';
        err_set(p->err, p->errlen, "%s:%u: %s: missing '=' (expected 'key = value')", p->name,
               p->line, key);
        return -1;
    }
    *end = '\0';
    k = conf_key_find(key);
    if (k == NULL) {
        err_set(p->err, p->errlen, "%s:%u: %s: unknown parameter", p->name, p->line, key);
        return -1;
    }
    value = eq + 1;
    while (isspace((unsigned char)*value))
        value++;
    end = value + strlen(value);
    while (end > value && isspace((unsigned char)end[-1]))
        *--end = '\0';
    struct conf_val *v = &p->c->v[k - conf_keys];
    if (parse_value(k, value, v, why, sizeof why) < 0) {
        err_set(p->err, p->errlen, "%s:%u: %s: %s", p->name, p->line, key, why);
        return -1;
    }
    snprintf(v->origin, sizeof v->origin, "%s:%u", p->name, p->line);
    return 0;
}

static int flush_logical(struct parse *p)
{
    int r = 0;

    if (p->len > 0)
        r = parse_logical(p);
    p->len = 0;
    return r;
}

int conf_load_buf(struct conf *c, const char *name, const char *buf, size_t len, char *err,
                  size_t errlen)
{
    struct parse *p = calloc(1, sizeof *p);
    size_t pos = 0;
    unsigned lineno = 0;
    int r = -1;

    if (p == NULL) {
        err_set(err, errlen, "%s: out of memory", name);
        return -1;
    }
    *p = (struct parse){.c = c, .name = name, .err = err, .errlen = errlen};
    while (pos < len) {
        const char *line = buf + pos;
        const char *nl = memchr(line, '\n', len - pos);
        size_t n = nl ? (size_t)(nl - line) : len - pos, skip;

        pos += n + (nl != NULL);
        lineno++;
        if (n > 0 && line[n - 1] == '\r')
            n--;
        if (n > CONF_LINE_MAX) {
            err_set(err, errlen, "%s:%u: line too long (more than %d bytes)", name, lineno,
                   CONF_LINE_MAX);
            goto out;
        }
        for (size_t i = 0; i < n; i++) {
            unsigned char ch = (unsigned char)line[i];
            if ((ch < 0x20 && ch != '\t') || ch == 0x7f) {
                err_set(err, errlen, "%s:%u: control character 0x%02x in line", name, lineno, ch);
                goto out;
            }
        }
        for (skip = 0; skip < n && (line[skip] == ' ' || line[skip] == '\t'); skip++)
            ;
        if (skip == n || line[skip] == '#')
            continue;                       /* blank or comment */
        if (skip > 0) {                     /* continuation */
            if (p->len == 0) {
                err_set(err, errlen, "%s:%u: continuation line without a 'key = value' before it",
                       name, lineno);
                goto out;
            }
            if (p->len + 1 + (n - skip) > CONF_LINE_MAX) {
                err_set(err, errlen, "%s:%u: line too long (more than %d bytes with its "
                       "continuations)", name, p->line, CONF_LINE_MAX);
                goto out;
            }
            p->logical[p->len++] = ' ';
            memcpy(p->logical + p->len, line + skip, n - skip);
            p->len += n - skip;
            continue;
        }
        if (flush_logical(p) < 0)
            goto out;
        memcpy(p->logical, line, n);
        p->len = n;
        p->line = lineno;
    }
    r = flush_logical(p);
out:
    free(p);
    return r;
}

/* Read all of fd (at most CONF_FILE_MAX bytes) into a new buffer. */
static int read_all(int fd, const char *name, char **bufp, size_t *lenp, char *err,
                    size_t errlen)
{
    struct stat st;
    size_t got = 0;
    char *buf;
    ssize_t n;

    if (fstat(fd, &st) < 0 || !S_ISREG(st.st_mode)) {
        err_set(err, errlen, "%s: not a regular file", name);
        return -1;
    }
    if (st.st_size > CONF_FILE_MAX) {
        err_set(err, errlen, "%s: file too large (more than %d bytes)", name, CONF_FILE_MAX);
        return -1;
    }
    if ((buf = malloc((size_t)st.st_size + 1)) == NULL) {
        err_set(err, errlen, "%s: out of memory", name);
        return -1;
    }
    while (got < (size_t)st.st_size &&
           (n = pread(fd, buf + got, (size_t)st.st_size - got, (off_t)got)) != 0) {
        if (n < 0) {
            if (errno == EINTR)
                continue;
            err_set(err, errlen, "%s: %s", name, strerror(errno));
            free(buf);
            return -1;
        }
        got += (size_t)n;
    }
    buf[got] = '\0';
    *bufp = buf;
    *lenp = got;
    return 0;
}

int conf_read_file(const char *path, char **buf, size_t *len, char *err, size_t errlen)
{
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    int r;

    if (fd < 0) {
        err_set(err, errlen, "%s: %s", path, strerror(errno));
        return -1;
    }
    r = read_all(fd, path, buf, len, err, errlen);
    close(fd);
    return r;
}

int conf_load_file(struct conf *c, const char *path, char *err, size_t errlen)
{
    char *buf;
    size_t len;
    int r;

    if (conf_read_file(path, &buf, &len, err, errlen) < 0)
        return -1;
    r = conf_load_buf(c, path, buf, len, err, errlen);
    free(buf);
    return r;
}

int conf_load_fd(struct conf *c, const char *name, int fd, char *err, size_t errlen)
{
    char *buf;
    size_t len;
    int r;

    if (read_all(fd, name, &buf, &len, err, errlen) < 0)
        return -1;
    r = conf_load_buf(c, name, buf, len, err, errlen);
    free(buf);
    return r;
}

/* Getters. */

static const struct conf_val *typed(const struct conf *c, const char *key, unsigned types)
{
    size_t i = key_index(key);

    if (!((1u << conf_keys[i].type) & types)) {
        fprintf(stderr, "mailcore: internal error: config key %s read with the wrong type\n", key);
        abort();
    }
    return &c->v[i];
}

const char *conf_str(const struct conf *c, const char *key)
{
    return typed(c, key, 1u << CONF_STR | 1u << CONF_PATH)->text;
}

int conf_port(const struct conf *c, const char *key)
{
    return (int)typed(c, key, 1u << CONF_PORT)->num;
}

uint64_t conf_uint(const struct conf *c, const char *key)
{
    return typed(c, key, 1u << CONF_UINT | 1u << CONF_SIZE | 1u << CONF_DURATION)->num;
}

int conf_bool(const struct conf *c, const char *key)
{
    return (int)typed(c, key, 1u << CONF_BOOL)->num;
}

const char *conf_relay_acl_group(const struct conf *c)
{
    const char *acl = conf_str(c, "relay_acl");

    return strcmp(acl, "published") == 0 ? NULL : acl;
}

const char *conf_list_item(const struct conf *c, const char *key, size_t n)
{
    const struct conf_val *v = typed(c, key, 1u << CONF_LIST);
    return n < v->nitems ? v->items[n] : NULL;
}

const char *conf_value_text(const struct conf *c, const char *key)
{
    return c->v[key_index(key)].text;
}

int conf_is_default(const struct conf *c, const char *key)
{
    return c->v[key_index(key)].origin[0] == '\0';
}

const char *conf_origin(const struct conf *c, const char *key)
{
    const char *o = c->v[key_index(key)].origin;
    return o[0] ? o : NULL;
}

int conf_print(const struct conf *c, FILE *out, int only_changed, const char *const *keys,
               char *err, size_t errlen)
{
    if (keys != NULL) {
        for (size_t i = 0; keys[i]; i++)
            if (conf_key_find(keys[i]) == NULL) {
                err_set(err, errlen, "%s: unknown parameter", keys[i]);
                return -1;
            }
    }
    for (size_t i = 0; i < conf_nkeys; i++) {
        const struct conf_key *k = &conf_keys[i];
        const struct conf_val *v = &c->v[i];
        int wanted = keys == NULL;

        for (size_t j = 0; keys && keys[j] && !wanted; j++)
            wanted = strcmp(keys[j], k->name) == 0;
        if (!wanted || (only_changed && v->origin[0] == '\0'))
            continue;
        if ((k->flags & CONF_SECRET) && v->text[0] != '\0')
            fprintf(out, "%s = (hidden)\n", k->name);
        else
            fprintf(out, "%s = %s\n", k->name, v->text);
    }
    return 0;
}

const char *conf_path_choose(const char *opt)
{
    const char *env = getenv("MAILCORE_CONF");

    if (opt != NULL && opt[0] != '\0')
        return opt;
    if (env != NULL && env[0] != '\0')
        return env;
    return CONF_DEFAULT_PATH;
}
