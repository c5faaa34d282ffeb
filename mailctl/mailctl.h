/*
 * mailctl.h - what mailctl's command files share: the parsed global
 * options, the help table, and helpers to open the database.
 *
 * Exit status of every command: 0 done, 1 failed (one line on stderr),
 * 2 bad usage: an unknown command or option, a missing or extra argument,
 * or an argument that is malformed whatever the database holds (a name,
 * address, size, UID or queue id; ctl_valid_name, ctl_address).  A
 * well-formed one that names nothing ("no user bob") is a failure.
 */
#ifndef MAILCTL_H
#define MAILCTL_H

#include <stddef.h>
#include <stdio.h>

struct conf;
struct db;
struct store;

enum { EXIT_OK = 0, EXIT_FAIL = 1, EXIT_USAGE = 2 };

struct ctl {
    const char *conf_path;
    struct conf *conf;
    struct db *db;
    struct store *store;
};

/* One entry per command (and sub-command) for dispatch and --help. */
struct ctl_cmd {
    const char *name;           /* "user add" */
    const char *synopsis;       /* "NAME|ADDRESS [--password-stdin] [--group GROUP]" */
    const char *help;           /* what it does, a few lines */
    int (*run)(struct ctl *ctl, int argc, char **argv);   /* argv after the name */
};

extern const struct ctl_cmd ctl_cmds[];

/* Print a one-line error "mailctl: ..." and return EXIT_FAIL. */
int ctl_fail(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
/* Print "mailctl: " and the message, then the usage of cmd (with its
 * subcommands; NULL: of every command) to stderr; return EXIT_USAGE. */
int ctl_usage(const char *cmd, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
/* 0 when name is a valid user or group name (what: "user", "group"), else
 * ctl_usage(cmd, ...). */
int ctl_valid_name(const char *cmd, const char *what, const char *name);
/* Normalize addr into out (db_address_normalize): 0, else ctl_usage(cmd, ...). */
int ctl_address(const char *cmd, const char *addr, char *out, size_t len);
/* 1 when argv holds -h or --help. */
int ctl_wants_help(int argc, char **argv);
int ctl_help(const char *cmd);

/* Load and validate the config (exit 1 on error). */
void ctl_load_conf(struct ctl *ctl);
/* Create data_directory if needed, drop to mail_creator (so that every file
 * made from now on belongs to it) and open LMDB and the store.  0 or -1. */
int ctl_open_db(struct ctl *ctl);

/* Drop to mail_creator (for the queue: every file touched or made belongs
 * to it); 0 or -1 (error printed). */
int ctl_drop_privs(struct ctl *ctl);

/* Write s as a JSON string, quotes included. */
void ctl_json_string(FILE *out, const char *s);

/* Command files. */
int cmd_user_add(struct ctl *ctl, int argc, char **argv);
int cmd_user_del(struct ctl *ctl, int argc, char **argv);
int cmd_user_list(struct ctl *ctl, int argc, char **argv);
int cmd_user_passwd(struct ctl *ctl, int argc, char **argv);
int cmd_user_quota(struct ctl *ctl, int argc, char **argv);
int cmd_alias_add(struct ctl *ctl, int argc, char **argv);
int cmd_alias_del(struct ctl *ctl, int argc, char **argv);
int cmd_alias_list(struct ctl *ctl, int argc, char **argv);
int cmd_group_add(struct ctl *ctl, int argc, char **argv);
int cmd_group_del(struct ctl *ctl, int argc, char **argv);
int cmd_group_member_add(struct ctl *ctl, int argc, char **argv);
int cmd_group_member_del(struct ctl *ctl, int argc, char **argv);
int cmd_group_list(struct ctl *ctl, int argc, char **argv);
int cmd_message_list(struct ctl *ctl, int argc, char **argv);
int cmd_message_cat(struct ctl *ctl, int argc, char **argv);
int cmd_config(struct ctl *ctl, int argc, char **argv);
int cmd_check(struct ctl *ctl, int argc, char **argv);
int cmd_status(struct ctl *ctl, int argc, char **argv);
int cmd_reload(struct ctl *ctl, int argc, char **argv);
int cmd_stop(struct ctl *ctl, int argc, char **argv);
int cmd_queue_list(struct ctl *ctl, int argc, char **argv);
int cmd_queue_flush(struct ctl *ctl, int argc, char **argv);
int cmd_queue_delete(struct ctl *ctl, int argc, char **argv);
int cmd_queue_hold(struct ctl *ctl, int argc, char **argv);
int cmd_queue_release(struct ctl *ctl, int argc, char **argv);
int cmd_relay_test(struct ctl *ctl, int argc, char **argv);

#endif
