/*
 * cmd_alias.c - mailctl alias add|del|list.
 */
#include <stdio.h>
#include <string.h>

#include "mailcore/db.h"
#include "mailctl.h"

struct alias_arg {
    char addr[DB_ADDR_MAX + 1];
    const char *user;
};

static int tx_alias_add(struct db_txn *txn, void *arg)
{
    struct alias_arg *a = arg;
    struct db_user u;
    int r = db_user_get(txn, a->user, &u);

    if (r == DB_NOTFOUND)
        return db_txn_fail(txn, "no user %s", a->user);
    if (r != 0)
        return r;
    r = db_alias_add(txn, a->addr, a->user);
    if (r == DB_EXISTS)
        return db_txn_fail(txn, "address %s is in use already", a->addr);
    return r;
}

int cmd_alias_add(struct ctl *ctl, int argc, char **argv)
{
    struct alias_arg a;
    char err[1024];
    int r;

    if (argc != 2)
        return ctl_usage("alias add", "expected ADDRESS USER");
    if ((r = ctl_address("alias add", argv[0], a.addr, sizeof a.addr)) != 0 ||
        (r = ctl_valid_name("alias add", "user", argv[1])) != 0)
        return r;
    a.user = argv[1];
    ctl_load_conf(ctl);
    if (ctl_open_db(ctl) < 0)
        return EXIT_FAIL;
    if (db_write(ctl->db, tx_alias_add, &a, err, sizeof err) != 0)
        return ctl_fail("%s", err);
    printf("alias %s -> %s added\n", a.addr, a.user);
    return EXIT_OK;
}

static int tx_alias_del(struct db_txn *txn, void *arg)
{
    struct alias_arg *a = arg;
    int r = db_alias_del(txn, a->addr);

    if (r == DB_NOTFOUND)
        return db_txn_fail(txn, "no alias %s", a->addr);
    return r;
}

int cmd_alias_del(struct ctl *ctl, int argc, char **argv)
{
    struct alias_arg a;
    char err[1024];
    int r;

    if (argc != 1)
        return ctl_usage("alias del", "expected ADDRESS");
    if ((r = ctl_address("alias del", argv[0], a.addr, sizeof a.addr)) != 0)
        return r;
    ctl_load_conf(ctl);
    if (ctl_open_db(ctl) < 0)
        return EXIT_FAIL;
    if (db_write(ctl->db, tx_alias_del, &a, err, sizeof err) != 0)
        return ctl_fail("%s", err);
    printf("alias %s removed\n", a.addr);
    return EXIT_OK;
}

static int print_alias(const char *addr, const char *user, int primary, void *arg)
{
    (void)arg;
    if (!primary)
        printf("%s %s\n", addr, user);
    return 0;
}

static int tx_alias_list(struct db_txn *txn, void *arg)
{
    return db_address_foreach(txn, print_alias, arg);
}

int cmd_alias_list(struct ctl *ctl, int argc, char **argv)
{
    char err[1024];

    (void)argv;
    if (argc != 0)
        return ctl_usage("alias list", "no arguments expected");
    ctl_load_conf(ctl);
    if (ctl_open_db(ctl) < 0)
        return EXIT_FAIL;
    if (db_read(ctl->db, tx_alias_list, NULL, err, sizeof err) != 0)
        return ctl_fail("%s", err);
    return EXIT_OK;
}
