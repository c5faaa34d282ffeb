/*
 * mailctl - the administrator's command line for mailcore.
 *
 * SYNOPSIS
 *	mailctl [-c FILE] COMMAND [ARGS...]
 *	mailctl --help | mailctl COMMAND --help
 *
 * DESCRIPTION
 *	Users, aliases and groups are changed in LMDB directly; running
 *	daemons see the change at once.  status, reload and stop talk to the
 *	running master over run_directory/master.sock.  The commands and their
 *	help texts are the table ctl_cmds[] below.
 */
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "mailcore/conf.h"
#include "mailcore/db.h"
#include "mailcore/log.h"
#include "mailcore/privsep.h"
#include "mailcore/store.h"
#include "mailctl.h"

const struct ctl_cmd ctl_cmds[] = {
    {"user add", "NAME|ADDRESS [--password-stdin] [--group GROUP]",
     "Create a user.  NAME gets the address NAME@email_domain; a full ADDRESS\n"
     "makes its local part the name.  The password is asked twice on the\n"
     "terminal, or read as one line from stdin with --password-stdin.  The user\n"
     "gets the mailboxes INBOX, Sent, Drafts, Trash and Junk.",
     cmd_user_add},
    {"user del", "NAME", "Delete a user with its addresses, mailboxes and messages.", cmd_user_del},
    {"user list", "[--json]",
     "List users: name, primary address, aliases, groups, storage used and quota\n"
     "(bytes; \"(default)\" when the user_quota default applies).",
     cmd_user_list},
    {"user passwd", "NAME [--password-stdin]",
     "Set a user's password (asked on the terminal, or one line from stdin).", cmd_user_passwd},
    {"user quota", "NAME SIZE|default|unlimited",
     "Set a user's storage limit over all its mailboxes: SIZE in bytes with an\n"
     "optional k, m or g suffix (500M, 2G), unlimited, or default to follow\n"
     "user_quota again.  Running daemons apply it at once: mail that does not fit\n"
     "is refused (IMAP NO [OVERQUOTA], SMTP 452 4.2.2).",
     cmd_user_quota},
    {"alias add", "ADDRESS USER", "Deliver mail for ADDRESS to USER; USER may also send as it.",
     cmd_alias_add},
    {"alias del", "ADDRESS", "Remove an alias.", cmd_alias_del},
    {"alias list", "", "List aliases: address and user.", cmd_alias_list},
    {"group add", "GROUP", "Create a group (see relay_acl).", cmd_group_add},
    {"group del", "GROUP", "Delete a group.", cmd_group_del},
    {"group member add", "GROUP USER", "Add USER to GROUP.", cmd_group_member_add},
    {"group member del", "GROUP USER", "Remove USER from GROUP.", cmd_group_member_del},
    {"group list", "", "List groups and their members.", cmd_group_list},
    {"message list", "USER [MAILBOX] [--json]",
     "List the messages of a mailbox (default INBOX): uid, size, internal date, flags.",
     cmd_message_list},
    {"message cat", "USER MAILBOX UID", "Print one message exactly as stored.", cmd_message_cat},
    {"config", "[-n] [--doc] [KEY...]",
     "Print the effective configuration (secrets hidden); -n only what differs\n"
     "from the defaults; --doc the table of every key with its default and meaning.",
     cmd_config},
    {"check", "",
     "Validate the configuration, the mail_creator account, the daemon binaries,\n"
     "the TLS certificate and key, the directories and the database, without\n"
     "starting anything or changing any file: the database is only read, and\n"
     "not checked while there is none yet.  Warns when postmaster@email_domain\n"
     "reaches nobody or a STARTTLS port has no tls_cert_file; fails when\n"
     "relay_acl names a group that does not exist.",
     cmd_check},
    {"status", "", "Show whether master runs and the pid of every daemon; exit 1 if not running.",
     cmd_status},
    {"reload", "", "Make master re-read the configuration (a broken one is refused).",
     cmd_reload},
    {"stop", "", "Stop master and every daemon gracefully.", cmd_stop},
    {"queue list", "[--json]",
     "List the outbound queue in mailq's layout: queue id ('!' when held), size,\n"
     "arrival time and sender, the last failure in parentheses, then the\n"
     "recipients still pending; --json prints every recipient with its state.",
     cmd_queue_list},
    {"queue flush", "", "Make relayq try every deferred message now.", cmd_queue_flush},
    {"queue delete", "ID|all", "Remove a message (or all) from the queue without a bounce.",
     cmd_queue_delete},
    {"queue hold", "ID", "Keep a message in the queue: relayq leaves it alone until released.",
     cmd_queue_hold},
    {"queue release", "ID", "Release a held message; relayq tries it at once.", cmd_queue_release},
    {"relay test", "[ADDRESS]",
     "Connect to the relay with exactly the configured settings and show the\n"
     "dialogue, the TLS outcome, the certificate chain and its verification, and\n"
     "whether AUTH works (never the password); with ADDRESS also send a short\n"
     "test message from postmaster@email_domain to it.  Ends with a one-line\n"
     "diagnosis and the setting to change; exit 0 only when everything worked.",
     cmd_relay_test},
    {NULL, NULL, NULL, NULL},
};

int ctl_fail(const char *fmt, ...)
{
    va_list ap;

    fputs("mailctl: ", stderr);
    va_start(ap, fmt);
    vfprintf(stderr, fmt, ap);
    va_end(ap);
    fputc('\n', stderr);
    return EXIT_FAIL;
}

static void print_cmd(FILE *out, const struct ctl_cmd *c, int full)
{
    fprintf(out, "  mailctl %s%s%s\n", c->name, c->synopsis[0] ? " " : "", c->synopsis);
    if (full) {
        const char *p = c->help;
        while (*p) {
            size_t n = strcspn(p, "\n");
            fprintf(out, "      %.*s\n", (int)n, p);
            p += n + (p[n] == '\n');
        }
    }
}

/* name is the command cmd or one of its subcommands; every name for NULL. */
static int cmd_matches(const char *name, const char *cmd)
{
    size_t len = cmd ? strlen(cmd) : 0;

    return cmd == NULL || (strncmp(name, cmd, len) == 0 && (name[len] == '\0' || name[len] == ' '));
}

int ctl_help(const char *cmd)
{
    int found = 0;

    printf("usage:\n");
    for (const struct ctl_cmd *c = ctl_cmds; c->name; c++)
        if (cmd_matches(c->name, cmd)) {
            print_cmd(stdout, c, cmd != NULL);
            found = 1;
        }
    if (cmd == NULL)
        printf("\nOptions: -c FILE (default $MAILCORE_CONF or %s).\n"
               "'mailctl COMMAND --help' explains a command.  Exit status: 0 done,\n"
               "1 failed, 2 bad usage (an unknown command or option, a missing or extra\n"
               "argument, or a malformed name, address, size, UID or queue id).\n",
               CONF_DEFAULT_PATH);
    return found ? EXIT_OK : EXIT_USAGE;
}

int ctl_usage(const char *cmd, const char *fmt, ...)
{
    va_list ap;

    fputs("mailctl: ", stderr);
    va_start(ap, fmt);
    vfprintf(stderr, fmt, ap);
    va_end(ap);
    fputs("\nusage:\n", stderr);
    for (const struct ctl_cmd *c = ctl_cmds; c->name; c++)
        if (cmd_matches(c->name, cmd))
            print_cmd(stderr, c, 0);
    return EXIT_USAGE;
}

int ctl_valid_name(const char *cmd, const char *what, const char *name)
{
    if (db_valid_name(name))
        return 0;
    return ctl_usage(cmd, "'%s' is not a valid %s name: use 1-64 of a-z 0-9 . _ - starting "
                     "with a letter or digit", name, what);
}

int ctl_address(const char *cmd, const char *addr, char *out, size_t len)
{
    if (strlen(addr) <= DB_ADDR_MAX && db_address_normalize(addr, out, len) == 0)
        return 0;
    return ctl_usage(cmd, "'%s' is not a valid mail address (local@domain, no quotes, routes "
                     "or %%)", addr);
}

int ctl_wants_help(int argc, char **argv)
{
    for (int i = 0; i < argc; i++)
        if (strcmp(argv[i], "--help") == 0 || strcmp(argv[i], "-h") == 0)
            return 1;
    return 0;
}

void ctl_load_conf(struct ctl *ctl)
{
    char err[1024];

    ctl->conf = conf_new();
    if (ctl->conf == NULL || conf_load_file(ctl->conf, ctl->conf_path, err, sizeof err) < 0 ||
        conf_validate(ctl->conf, err, sizeof err) < 0)
        exit(ctl_fail("%s", ctl->conf ? err : "out of memory"));
}

int ctl_open_db(struct ctl *ctl)
{
    const char *dir = conf_str(ctl->conf, "data_directory");
    const char *user = conf_str(ctl->conf, "mail_creator");
    char err[1024];
    uid_t uid;
    gid_t gid;

    if (privsep_file_owner(user, &uid, &gid, err, sizeof err) < 0 ||
        privsep_dir("data_directory", dir, uid, gid, 0750, err, sizeof err) < 0)
        return ctl_fail("%s", err), -1;
    /* From here on every file mailctl makes belongs to mail_creator. */
    if (privsep_drop(user, err, sizeof err) < 0)
        return ctl_fail("cannot become %s: %s", user, err), -1;
    ctl->db = db_open(dir, 1, uid, gid, err, sizeof err);
    if (ctl->db == NULL)
        return ctl_fail("%s", err), -1;
    ctl->store = store_open(ctl->db, dir, err, sizeof err);
    if (ctl->store == NULL)
        return ctl_fail("%s", err), -1;
    return 0;
}

int ctl_drop_privs(struct ctl *ctl)
{
    char err[1024];
    const char *user = conf_str(ctl->conf, "mail_creator");

    if (privsep_drop(user, err, sizeof err) < 0)
        return ctl_fail("cannot become %s: %s", user, err), -1;
    return 0;
}

void ctl_json_string(FILE *out, const char *s)
{
    fputc('"', out);
    for (; *s; s++) {
        unsigned char ch = (unsigned char)*s;
        if (ch == '"' || ch == '\\')
            fprintf(out, "\\%c", ch);
        else if (ch < 0x20)
            fprintf(out, "\\u%04x", ch);
        else
            fputc(ch, out);
    }
    fputc('"', out);
}

/* words (e.g. "group member") begin some command names but are not one. */
static int is_group(const char *words)
{
    size_t len = strlen(words);

    for (const struct ctl_cmd *c = ctl_cmds; c->name; c++)
        if (strncmp(c->name, words, len) == 0 && c->name[len] == ' ')
            return 1;
    return 0;
}

/* How many leading words of argv name a group of commands; group gets them. */
static int group_words(int argc, char **argv, char group[64])
{
    char next[64];
    int words;

    group[0] = '\0';
    for (words = 0; words < argc; words++) {
        int n = snprintf(next, sizeof next, "%s%s%s", group, words ? " " : "", argv[words]);
        if (n < 0 || (size_t)n >= sizeof next || !is_group(next))
            break;
        memcpy(group, next, (size_t)n + 1);
    }
    return words;
}

/* argv names no command: say which word is wrong and show what would fit. */
static int unknown_cmd(int argc, char **argv)
{
    char group[64];
    int words = group_words(argc, argv, group);

    if (words == 0)
        return ctl_usage(NULL, "unknown command '%s'", argv[0]);
    if (ctl_wants_help(argc - words, argv + words))
        return ctl_help(group);
    if (words == argc)
        return ctl_usage(group, "'%s' needs a subcommand", group);
    return ctl_usage(group, "unknown subcommand '%s' of '%s'", argv[words], group);
}

/* The longest command name that argv starts with. */
static const struct ctl_cmd *find_cmd(int argc, char **argv, int *used)
{
    const struct ctl_cmd *best = NULL;
    int best_words = 0;

    for (const struct ctl_cmd *c = ctl_cmds; c->name; c++) {
        const char *p = c->name;
        int words = 0;
        while (words < argc) {
            size_t n = strcspn(p, " ");
            if (strlen(argv[words]) != n || strncmp(argv[words], p, n) != 0)
                break;
            words++;
            p += n;
            if (*p == '\0')
                break;
            p++;
        }
        if (*p == '\0' && words > best_words) {
            best = c;
            best_words = words;
        }
    }
    *used = best_words;
    return best;
}

int main(int argc, char **argv)
{
    struct ctl ctl = {0};
    const struct ctl_cmd *cmd;
    const char *opt_c = NULL;
    int used, status;

    log_init("mailctl");
    argc--, argv++;
    while (argc > 0 && argv[0][0] == '-') {
        if (strcmp(argv[0], "-c") == 0 && argc > 1) {
            opt_c = argv[1];
            argc -= 2, argv += 2;
        } else if (strcmp(argv[0], "--help") == 0 || strcmp(argv[0], "-h") == 0) {
            return ctl_help(NULL);
        } else {
            fprintf(stderr, "mailctl: unknown option %s\n", argv[0]);
            ctl_help(NULL);
            return EXIT_USAGE;
        }
    }
    if (argc == 0) {
        ctl_help(NULL);
        return EXIT_USAGE;
    }
    cmd = find_cmd(argc, argv, &used);
    if (cmd == NULL)
        return unknown_cmd(argc, argv);
    if (ctl_wants_help(argc - used, argv + used))
        return ctl_help(cmd->name);
    ctl.conf_path = conf_path_choose(opt_c);
    status = cmd->run(&ctl, argc - used, argv + used);
    if (ctl.store)
        store_close(ctl.store);
    if (ctl.db)
        db_close(ctl.db);
    conf_free(ctl.conf);
    return status;
}
