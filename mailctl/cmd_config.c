/*
 * cmd_config.c - mailctl config and mailctl check.
 *
 * check is read-only: it validates what master would find at start and
 * creates nothing (master makes the directories, master or mailctl user add
 * the database).
 */
#include <errno.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "mailcore/conf.h"
#include "mailcore/db.h"
#include "mailcore/privsep.h"
#include "mailcore/service.h"
#include "mailcore/tls.h"
#include "mailctl.h"

static const char *type_name(enum conf_type t)
{
    static const char *const names[] = {"text", "path", "port", "number", "yes/no",
                                        "duration", "size", "list"};
    return names[t];
}

/* The README's configuration table, from conf_keys[]. */
static void print_doc(void)
{
    printf("| key | type | default | meaning |\n|---|---|---|---|\n");
    for (size_t i = 0; i < conf_nkeys; i++) {
        const struct conf_key *k = &conf_keys[i];
        const char *def = strcmp(k->name, "email_domain") == 0 ? "the host's domain"
                        : strcmp(k->name, "myhostname") == 0 ? "the host's name"
                        : k->def[0]                            ? k->def
                                                               : "(empty)";
        printf("| `%s` | %s | %s%s%s | %s |\n", k->name, type_name(k->type),
               k->def[0] ? "`" : "", def, k->def[0] ? "`" : "", k->doc);
    }
}

int cmd_config(struct ctl *ctl, int argc, char **argv)
{
    const char *keys[64];
    size_t nkeys = 0;
    int only_changed = 0;
    char err[1024];

    for (int i = 0; i < argc; i++) {
        if (strcmp(argv[i], "-n") == 0) {
            only_changed = 1;
        } else if (strcmp(argv[i], "--doc") == 0) {
            print_doc();
            return EXIT_OK;
        } else if (argv[i][0] == '-') {
            return ctl_usage("config", "unknown option %s", argv[i]);
        } else if (nkeys < sizeof keys / sizeof keys[0] - 1) {
            keys[nkeys++] = argv[i];
        } else {
            return ctl_usage("config", "too many keys");
        }
    }
    keys[nkeys] = NULL;
    ctl_load_conf(ctl);
    if (conf_print(ctl->conf, stdout, only_changed, nkeys ? keys : NULL, err, sizeof err) < 0)
        return ctl_fail("%s", err);
    return EXIT_OK;
}

static int check_tls(const struct conf *c)
{
    const char *cert = conf_str(c, "tls_cert_file");
    char err[1024];
    SSL_CTX *ctx;

    if (cert[0] == '\0')
        return 0;
    if (geteuid() != 0 && access(conf_str(c, "tls_key_file"), R_OK) < 0) {
        printf("note: tls_key_file is not readable by this user; run as root to check it\n");
        return 0;
    }
    ctx = tls_server_ctx(cert, conf_str(c, "tls_key_file"), err, sizeof err);
    if (ctx == NULL)
        return ctl_fail("%s", err);
    SSL_CTX_free(ctx);
    return 0;
}

static int check_dir(const char *key, const char *dir, uid_t uid)
{
    struct stat st;

    if (stat(dir, &st) < 0) {
        printf("note: %s %s does not exist yet; master creates it\n", key, dir);
        return 0;
    }
    if (!S_ISDIR(st.st_mode))
        return ctl_fail("%s %s is not a directory", key, dir);
    if (st.st_uid != uid)
        return ctl_fail("%s %s is owned by uid %u, not by the daemons' uid %u: chown -R %u %s",
                        key, dir, (unsigned)st.st_uid, (unsigned)uid, (unsigned)uid, dir);
    return 0;
}

struct db_check {
    const struct conf *conf;
    char postmaster[DB_ADDR_MAX + 1];
    int postmaster_found;
    int broken;                 /* a rule of conf_validate_db(): problem says which */
    char problem[1024];
};

static int tx_check(struct db_txn *txn, void *arg)
{
    struct db_check *d = arg;
    char user[DB_NAME_MAX + 1];
    int r = db_address_resolve(txn, d->postmaster, user);

    if (r != 0 && r != DB_NOTFOUND)
        return r;
    d->postmaster_found = r == 0;
    d->broken = conf_validate_db(d->conf, txn, d->problem, sizeof d->problem) < 0;
    return 0;
}

/* The database, read as the daemons' account and never changed: check
 * makes no directory or file (master and mailctl user add do). */
static int check_db(struct ctl *ctl)
{
    const char *dir = conf_str(ctl->conf, "data_directory");
    struct db_check d = {.conf = ctl->conf};
    char path[4096], err[1024];

    snprintf(d.postmaster, sizeof d.postmaster, "postmaster@%s",
             conf_str(ctl->conf, "email_domain"));
    if (snprintf(path, sizeof path, "%s/data.mdb", dir) >= (int)sizeof path)
        return ctl_fail("data_directory %s: path too long", dir);
    if (access(path, F_OK) != 0 && errno == ENOENT) {
        printf("note: no database in %s yet: users, groups and %s are not checked\n", dir,
               d.postmaster);
        return 0;
    }
    if (ctl_drop_privs(ctl) < 0)
        return EXIT_FAIL;
    if ((ctl->db = db_open_readonly(dir, err, sizeof err)) == NULL)
        return ctl_fail("%s", err);
    if (db_read(ctl->db, tx_check, &d, err, sizeof err) != 0)
        return ctl_fail("%s", err);
    if (!d.postmaster_found)
        printf("warning: %s reaches nobody: mailctl alias add %s USER\n", d.postmaster,
               d.postmaster);
    return d.broken ? ctl_fail("%s", d.problem) : 0;
}

static void print_warning(const char *text, void *arg)
{
    (void)arg;
    printf("warning: %s\n", text);
}

int cmd_check(struct ctl *ctl, int argc, char **argv)
{
    char err[1024];
    uid_t uid;
    gid_t gid;

    (void)argv;
    if (argc != 0)
        return ctl_usage("check", "no arguments expected");
    ctl_load_conf(ctl);
    conf_warnings(ctl->conf, print_warning, NULL);
    if (privsep_file_owner(conf_str(ctl->conf, "mail_creator"), &uid, &gid, err, sizeof err) < 0)
        return ctl_fail("%s", err);
    if (geteuid() != 0)
        printf("note: not root: mail_creator and privileges are not checked\n");
    if (service_check_binaries(ctl->conf, err, sizeof err) < 0)
        return ctl_fail("%s", err);
    if (check_tls(ctl->conf) != 0 ||
        check_dir("data_directory", conf_str(ctl->conf, "data_directory"), uid) != 0 ||
        check_dir("queue_directory", conf_str(ctl->conf, "queue_directory"), uid) != 0 ||
        check_db(ctl) != 0)
        return EXIT_FAIL;
    printf("configuration %s is valid\n", ctl->conf_path);
    return EXIT_OK;
}
