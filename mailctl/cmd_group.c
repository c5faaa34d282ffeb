/*
 * cmd_group.c - mailctl group add|del|member add|member del|list.
 */
#include <stdio.h>
#include <string.h>

#include "mailcore/db.h"
#include "mailctl.h"

struct group_arg {
    const char *cmd;            /* "group add", ... for usage errors */
    const char *group;
    const char *user;
    int op;
};

enum { GROUP_ADD, GROUP_DEL, MEMBER_ADD, MEMBER_DEL };

static int tx_group(struct db_txn *txn, void *arg)
{
    struct group_arg *g = arg;
    struct db_user u;
    int r;

    switch (g->op) {
    case GROUP_ADD:
        r = db_group_add(txn, g->group);
        return r == DB_EXISTS ? db_txn_fail(txn, "group %s exists already", g->group) : r;
    case GROUP_DEL:
        r = db_group_del(txn, g->group);
        return r == DB_NOTFOUND ? db_txn_fail(txn, "no group %s", g->group) : r;
    default:
        break;
    }
    r = db_user_get(txn, g->user, &u);
    if (r == DB_NOTFOUND)
        return db_txn_fail(txn, "no user %s", g->user);
    if (r != 0)
        return r;
    if (g->op == MEMBER_ADD) {
        r = db_group_member_add(txn, g->group, g->user);
        if (r == DB_NOTFOUND)
            return db_txn_fail(txn, "no group %s: mailctl group add %s", g->group, g->group);
        return r == DB_EXISTS ? 0 : r;
    }
    r = db_group_member_del(txn, g->group, g->user);
    return r == DB_NOTFOUND ? db_txn_fail(txn, "%s is not a member of %s", g->user, g->group) : r;
}

static int run_group(struct ctl *ctl, struct group_arg *g, const char *done)
{
    char err[1024];
    int r;

    if ((r = ctl_valid_name(g->cmd, "group", g->group)) != 0 ||
        (g->user && (r = ctl_valid_name(g->cmd, "user", g->user)) != 0))
        return r;
    ctl_load_conf(ctl);
    if (ctl_open_db(ctl) < 0)
        return EXIT_FAIL;
    if (db_write(ctl->db, tx_group, g, err, sizeof err) != 0)
        return ctl_fail("%s", err);
    printf("%s\n", done);
    return EXIT_OK;
}

int cmd_group_add(struct ctl *ctl, int argc, char **argv)
{
    struct group_arg g = {.cmd = "group add", .op = GROUP_ADD};

    if (argc != 1)
        return ctl_usage("group add", "expected GROUP");
    g.group = argv[0];
    return run_group(ctl, &g, "group added");
}

int cmd_group_del(struct ctl *ctl, int argc, char **argv)
{
    struct group_arg g = {.cmd = "group del", .op = GROUP_DEL};

    if (argc != 1)
        return ctl_usage("group del", "expected GROUP");
    g.group = argv[0];
    return run_group(ctl, &g, "group deleted");
}

int cmd_group_member_add(struct ctl *ctl, int argc, char **argv)
{
    struct group_arg g = {.cmd = "group member add", .op = MEMBER_ADD};

    if (argc != 2)
        return ctl_usage("group member add", "expected GROUP USER");
    g.group = argv[0];
    g.user = argv[1];
    return run_group(ctl, &g, "member added");
}

int cmd_group_member_del(struct ctl *ctl, int argc, char **argv)
{
    struct group_arg g = {.cmd = "group member del", .op = MEMBER_DEL};

    if (argc != 2)
        return ctl_usage("group member del", "expected GROUP USER");
    g.group = argv[0];
    g.user = argv[1];
    return run_group(ctl, &g, "member removed");
}

static int print_group(const char *group, const char *member, void *arg)
{
    int *open = arg;

    if (member == NULL) {
        printf("%s%s:", *open ? "\n" : "", group);
        *open = 1;
    } else {
        printf(" %s", member);
    }
    return 0;
}

static int tx_group_list(struct db_txn *txn, void *arg)
{
    return db_group_foreach(txn, print_group, arg);
}

int cmd_group_list(struct ctl *ctl, int argc, char **argv)
{
    char err[1024];
    int open = 0;

    (void)argv;
    if (argc != 0)
        return ctl_usage("group list", "no arguments expected");
    ctl_load_conf(ctl);
    if (ctl_open_db(ctl) < 0)
        return EXIT_FAIL;
    if (db_read(ctl->db, tx_group_list, &open, err, sizeof err) != 0)
        return ctl_fail("%s", err);
    if (open)
        putchar('\n');
    return EXIT_OK;
}
