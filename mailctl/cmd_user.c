/*
 * cmd_user.c - mailctl user add|del|list|passwd|quota.
 */
#include <stdio.h>
#include <string.h>
#include <strings.h>
#include <unistd.h>

#include "mailcore/auth.h"
#include "mailcore/conf.h"
#include "mailcore/db.h"
#include "mailcore/quota.h"
#include "mailcore/store.h"
#include "mailctl.h"

struct user_add {
    struct db_user user;
    const char *group;
};

static int tx_user_add(struct db_txn *txn, void *arg)
{
    struct user_add *a = arg;
    int r;

    r = db_user_add(txn, &a->user);
    if (r == DB_EXISTS)
        return db_txn_fail(txn, "user %s or address %s exists already", a->user.name,
                           a->user.address);
    if (r != 0)
        return r;
    if (a->group) {
        r = db_group_member_add(txn, a->group, a->user.name);
        if (r == DB_NOTFOUND)
            return db_txn_fail(txn, "group %s does not exist: mailctl group add %s", a->group,
                               a->group);
        if (r != 0 && r != DB_EXISTS)
            return r;
    }
    return 0;
}

/* Name and primary address from "alice" or "alice@example.org"; a
 * malformed one is bad usage. */
static int user_identity(struct ctl *ctl, const char *arg, struct db_user *u)
{
    const char *at = strchr(arg, '@');
    char addr[DB_ADDR_MAX + 2];
    int r;

    if (at == NULL) {
        snprintf(addr, sizeof addr, "%s@%s", arg, conf_str(ctl->conf, "email_domain"));
    } else {
        snprintf(addr, sizeof addr, "%s", arg);
    }
    if ((r = ctl_address("user add", addr, u->address, sizeof u->address)) != 0)
        return r;
    snprintf(u->name, sizeof u->name, "%.*s", (int)strcspn(u->address, "@"), u->address);
    return ctl_valid_name("user add", "user", u->name);
}

/* Parse [--password-stdin] and refuse anything else, such as a password. */
static int password_opts(const char *cmd, int argc, char **argv, int first, int *from_stdin,
                         const char **group)
{
    *from_stdin = 0;
    for (int i = first; i < argc; i++) {
        if (strcmp(argv[i], "--password-stdin") == 0) {
            *from_stdin = 1;
        } else if (group && strcmp(argv[i], "--group") == 0 && i + 1 < argc) {
            *group = argv[++i];
        } else if (argv[i][0] == '-') {
            return ctl_usage(cmd, "unknown option %s", argv[i]);
        } else {
            return ctl_usage(cmd, "unexpected argument '%s': a password is never given on "
                             "the command line; use --password-stdin or the terminal prompt",
                             argv[i]);
        }
    }
    if (!*from_stdin && !isatty(STDIN_FILENO))
        return ctl_usage(cmd, "stdin is not a terminal: use --password-stdin to read the "
                         "password from it");
    return 0;
}

static int read_hash(int from_stdin, char *hash, size_t len)
{
    char pw[AUTH_PASSWORD_MAX + 2], err[256];
    int r;

    if (auth_password_read(stdin, from_stdin, pw, sizeof pw, err, sizeof err) < 0)
        return ctl_fail("%s", err);
    r = auth_hash(pw, hash, len, err, sizeof err);
    explicit_bzero(pw, sizeof pw);
    if (r < 0)
        return ctl_fail("%s", err);
    return 0;
}

int cmd_user_add(struct ctl *ctl, int argc, char **argv)
{
    struct user_add a = {0};
    char err[1024];
    int from_stdin, r;

    if (argc < 1)
        return ctl_usage("user add", "missing NAME or ADDRESS");
    if ((r = password_opts("user add", argc, argv, 1, &from_stdin, &a.group)) != 0)
        return r;
    if (a.group && (r = ctl_valid_name("user add", "group", a.group)) != 0)
        return r;
    ctl_load_conf(ctl);
    if ((r = user_identity(ctl, argv[0], &a.user)) != 0)
        return r;
    if (ctl_open_db(ctl) < 0 || read_hash(from_stdin, a.user.hash, sizeof a.user.hash) != 0)
        return EXIT_FAIL;
    if (db_write(ctl->db, tx_user_add, &a, err, sizeof err) != 0)
        return ctl_fail("%s", err);
    printf("user %s <%s> created\n", a.user.name, a.user.address);
    return EXIT_OK;
}

int cmd_user_del(struct ctl *ctl, int argc, char **argv)
{
    char err[1024];
    int r;

    if (argc != 1)
        return ctl_usage("user del", "expected one NAME");
    if ((r = ctl_valid_name("user del", "user", argv[0])) != 0)
        return r;
    ctl_load_conf(ctl);
    if (ctl_open_db(ctl) < 0)
        return EXIT_FAIL;
    r = store_user_del(ctl->store, argv[0], err, sizeof err);
    if (r == DB_NOTFOUND)
        return ctl_fail("no user %s", argv[0]);
    if (r != 0)
        return ctl_fail("%s", err);
    printf("user %s deleted\n", argv[0]);
    return EXIT_OK;
}

struct passwd_arg {
    const char *name;
    const char *hash;
};

static int tx_passwd(struct db_txn *txn, void *arg)
{
    struct passwd_arg *p = arg;
    int r = db_user_set_hash(txn, p->name, p->hash);

    if (r == DB_NOTFOUND)
        return db_txn_fail(txn, "no user %s", p->name);
    return r;
}

int cmd_user_passwd(struct ctl *ctl, int argc, char **argv)
{
    char hash[AUTH_HASH_MAX + 1], err[1024];
    struct passwd_arg p;
    int from_stdin, r;

    if (argc < 1)
        return ctl_usage("user passwd", "missing NAME");
    if ((r = ctl_valid_name("user passwd", "user", argv[0])) != 0)
        return r;
    if ((r = password_opts("user passwd", argc, argv, 1, &from_stdin, NULL)) != 0)
        return r;
    ctl_load_conf(ctl);
    if (ctl_open_db(ctl) < 0 || read_hash(from_stdin, hash, sizeof hash) != 0)
        return EXIT_FAIL;
    p = (struct passwd_arg){argv[0], hash};
    if (db_write(ctl->db, tx_passwd, &p, err, sizeof err) != 0)
        return ctl_fail("%s", err);
    printf("password of %s changed\n", argv[0]);
    return EXIT_OK;
}

/* user quota NAME SIZE|default|unlimited: the user's own storage limit
 * (quota.h), read by the daemons at each check, so it applies at once. */

struct quota_arg {
    const char *name;
    uint64_t limit;
    int own;
    uint64_t def;
    struct quota q;         /* after the change */
};

static int tx_quota(struct db_txn *txn, void *arg)
{
    struct quota_arg *a = arg;
    int r = a->own ? db_quota_set(txn, a->name, a->limit) : db_quota_clear(txn, a->name);

    if (r == DB_NOTFOUND)
        return db_txn_fail(txn, "no user %s", a->name);
    if (r != 0)
        return r;
    return quota_get(txn, a->name, a->def, &a->q);
}

/* A limit as "unlimited" or bytes. */
static void print_limit(FILE *out, uint64_t limit)
{
    if (limit == 0)
        fputs("unlimited", out);
    else
        fprintf(out, "%llu", (unsigned long long)limit);
}

int cmd_user_quota(struct ctl *ctl, int argc, char **argv)
{
    struct quota_arg a = {0};
    char err[1024];
    int r;

    if (argc != 2)
        return ctl_usage("user quota", argc < 2 ? "missing NAME or SIZE" : "unexpected argument "
                         "'%s'", argv[argc - 1]);
    if ((r = ctl_valid_name("user quota", "user", argv[0])) != 0)
        return r;
    if (quota_parse_setting(argv[1], &a.limit, &a.own) != 0)
        return ctl_usage("user quota", "bad size '%s': a number of bytes with an optional k, m "
                         "or g suffix (e.g. 500M, 2G), default or unlimited", argv[1]);
    a.name = argv[0];
    ctl_load_conf(ctl);
    a.def = conf_uint(ctl->conf, "user_quota");
    if (ctl_open_db(ctl) < 0)
        return EXIT_FAIL;
    if (db_write(ctl->db, tx_quota, &a, err, sizeof err) != 0)
        return ctl_fail("%s", err);
    printf("quota of %s: ", a.name);
    print_limit(stdout, a.q.limit);
    printf("%s, %llu bytes used\n", a.own ? "" : " (the user_quota default)",
           (unsigned long long)a.q.usage);
    return EXIT_OK;
}

/* user list: one user per line, or a JSON array. */

struct list_arg {
    struct db_txn *txn;
    int json;
    uint64_t quota_default;
    unsigned n;
};

struct extra_arg {
    const char *user;
    int json;
    unsigned n;
};

static int print_alias(const char *addr, const char *user, int primary, void *arg)
{
    struct extra_arg *e = arg;

    if (primary || strcmp(user, e->user) != 0)
        return 0;
    if (e->json) {
        fputs(e->n++ ? "," : "", stdout);
        ctl_json_string(stdout, addr);
    } else {
        printf("%s%s", e->n++ ? "," : " aliases=", addr);
    }
    return 0;
}

static int print_group(const char *group, const char *member, void *arg)
{
    struct extra_arg *e = arg;

    if (member == NULL || strcmp(member, e->user) != 0)
        return 0;
    if (e->json) {
        fputs(e->n++ ? "," : "", stdout);
        ctl_json_string(stdout, group);
    } else {
        printf("%s%s", e->n++ ? "," : " groups=", group);
    }
    return 0;
}

static const char *special_use(uint32_t special)
{
    return special & DB_SPECIAL_SENT     ? "\\Sent"
         : special & DB_SPECIAL_DRAFTS   ? "\\Drafts"
         : special & DB_SPECIAL_TRASH    ? "\\Trash"
         : special & DB_SPECIAL_JUNK     ? "\\Junk"
         : special & DB_SPECIAL_ARCHIVE  ? "\\Archive"
                                         : NULL;
}

static int print_mailbox(const struct db_mailbox *m, void *arg)
{
    struct extra_arg *e = arg;
    const char *use = special_use(m->special);

    fputs(e->n++ ? ", {\"name\": " : "{\"name\": ", stdout);
    ctl_json_string(stdout, m->name);
    printf(", \"messages\": %u, \"size\": %llu", m->messages, (unsigned long long)m->size);
    if (use) {
        fputs(", \"special_use\": ", stdout);
        ctl_json_string(stdout, use);
    }
    fputs("}", stdout);
    return 0;
}

static int print_user(const struct db_user *u, void *arg)
{
    struct list_arg *l = arg;
    struct extra_arg e = {u->name, l->json, 0};
    struct quota q;

    if (quota_get(l->txn, u->name, l->quota_default, &q) != 0)
        return -1;
    if (l->json) {
        fputs(l->n++ ? ",\n  {\"name\": " : "\n  {\"name\": ", stdout);
        ctl_json_string(stdout, u->name);
        fputs(", \"address\": ", stdout);
        ctl_json_string(stdout, u->address);
        fputs(", \"aliases\": [", stdout);
        if (db_address_foreach(l->txn, print_alias, &e) < 0)
            return -1;
        fputs("], \"groups\": [", stdout);
        e.n = 0;
        if (db_group_foreach(l->txn, print_group, &e) < 0)
            return -1;
        fputs("], \"mailboxes\": [", stdout);
        e.n = 0;
        if (db_mailbox_foreach(l->txn, u->name, print_mailbox, &e) < 0)
            return -1;
        printf("], \"usage\": %llu, \"quota\": ", (unsigned long long)q.usage);
        if (q.limit)
            printf("%llu", (unsigned long long)q.limit);
        else
            fputs("null", stdout);
        printf(", \"quota_source\": \"%s\"}", q.own ? "user" : "default");
        return 0;
    }
    printf("%s <%s>", u->name, u->address);
    if (db_address_foreach(l->txn, print_alias, &e) < 0)
        return -1;
    e.n = 0;
    if (db_group_foreach(l->txn, print_group, &e) < 0)
        return -1;
    printf(" usage=%llu quota=", (unsigned long long)q.usage);
    print_limit(stdout, q.limit);
    printf("%s\n", q.own ? "" : " (default)");
    return 0;
}

static int tx_user_list(struct db_txn *txn, void *arg)
{
    struct list_arg *l = arg;

    l->txn = txn;
    return db_user_foreach(txn, print_user, l);
}

int cmd_user_list(struct ctl *ctl, int argc, char **argv)
{
    struct list_arg l = {0};
    char err[1024];

    if (argc > 1 || (argc == 1 && strcmp(argv[0], "--json") != 0))
        return ctl_usage("user list", "unexpected argument '%s'", argv[argc - 1]);
    l.json = argc == 1;
    ctl_load_conf(ctl);
    l.quota_default = conf_uint(ctl->conf, "user_quota");
    if (ctl_open_db(ctl) < 0)
        return EXIT_FAIL;
    if (l.json)
        fputs("[", stdout);
    if (db_read(ctl->db, tx_user_list, &l, err, sizeof err) != 0)
        return ctl_fail("%s", err);
    if (l.json)
        fputs(l.n ? "\n]\n" : "]\n", stdout);
    return EXIT_OK;
}
