/*
 * cmd_message.c - mailctl message list|cat: look into a user's mailbox
 * (like doveadm fetch), for administrators and tests.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "mailcore/db.h"
#include "mailcore/store.h"
#include "mailctl.h"

struct msg_arg {
    const char *user;
    const char *mailbox;
    uint32_t uid;
    struct db_message found;
    int json;
    unsigned n;
};

static int find_mailbox(struct db_txn *txn, struct msg_arg *a, struct db_mailbox *mb)
{
    struct db_user u;
    int r = db_user_get(txn, a->user, &u);

    if (r == DB_NOTFOUND)
        return db_txn_fail(txn, "no user %s", a->user);
    if (r != 0)
        return r;
    r = db_mailbox_get(txn, a->user, a->mailbox, mb);
    if (r == DB_NOTFOUND)
        return db_txn_fail(txn, "%s has no mailbox %s", a->user, a->mailbox);
    return r;
}

static void flags_text(uint32_t f, char *buf, size_t len)
{
    snprintf(buf, len, "%s%s%s%s%s", f & DB_FLAG_SEEN ? "\\Seen " : "",
             f & DB_FLAG_ANSWERED ? "\\Answered " : "", f & DB_FLAG_FLAGGED ? "\\Flagged " : "",
             f & DB_FLAG_DELETED ? "\\Deleted " : "", f & DB_FLAG_DRAFT ? "\\Draft " : "");
    if (buf[0])
        buf[strlen(buf) - 1] = '\0';
}

static int print_message(const struct db_message *m, void *arg)
{
    struct msg_arg *a = arg;
    char flags[80], date[32];
    time_t t = (time_t)m->internaldate;
    struct tm tm;

    flags_text(m->flags, flags, sizeof flags);
    gmtime_r(&t, &tm);
    strftime(date, sizeof date, "%Y-%m-%dT%H:%M:%SZ", &tm);
    if (a->json) {
        printf("%s\n  {\"uid\": %u, \"size\": %llu, \"internaldate\": \"%s\", \"flags\": ",
               a->n++ ? "," : "", m->uid, (unsigned long long)m->size, date);
        ctl_json_string(stdout, flags);
        putchar('}');
    } else
        printf("%u %llu %s %s\n", m->uid, (unsigned long long)m->size, date, flags);
    return 0;
}

static int tx_list(struct db_txn *txn, void *arg)
{
    struct msg_arg *a = arg;
    struct db_mailbox mb;
    int r = find_mailbox(txn, a, &mb);

    return r != 0 ? r : db_message_foreach(txn, mb.id, print_message, a);
}

int cmd_message_list(struct ctl *ctl, int argc, char **argv)
{
    struct msg_arg a = {0};
    char err[1024];
    int pos = 0, r;

    for (int i = 0; i < argc; i++) {
        if (strcmp(argv[i], "--json") == 0)
            a.json = 1;
        else if (pos == 0 && ++pos)
            a.user = argv[i];
        else if (pos == 1 && ++pos)
            a.mailbox = argv[i];
        else
            return ctl_usage("message list", "unexpected argument '%s'", argv[i]);
    }
    if (a.user == NULL)
        return ctl_usage("message list", "missing USER");
    if ((r = ctl_valid_name("message list", "user", a.user)) != 0)
        return r;
    if (a.mailbox == NULL)
        a.mailbox = "INBOX";
    ctl_load_conf(ctl);
    if (ctl_open_db(ctl) < 0)
        return EXIT_FAIL;
    if (a.json)
        fputs("[", stdout);
    if (db_read(ctl->db, tx_list, &a, err, sizeof err) != 0)
        return ctl_fail("%s", err);
    if (a.json)
        fputs(a.n ? "\n]\n" : "]\n", stdout);
    return EXIT_OK;
}

static int tx_get(struct db_txn *txn, void *arg)
{
    struct msg_arg *a = arg;
    struct db_mailbox mb;
    int r = find_mailbox(txn, a, &mb);

    if (r != 0)
        return r;
    r = db_message_get(txn, mb.id, a->uid, &a->found);
    if (r == DB_NOTFOUND)
        return db_txn_fail(txn, "%s/%s has no message with uid %u", a->user, a->mailbox, a->uid);
    return r;
}

int cmd_message_cat(struct ctl *ctl, int argc, char **argv)
{
    struct msg_arg a = {0};
    char err[1024], buf[65536], *end;
    ssize_t n;
    int fd, r;

    if (argc != 3)
        return ctl_usage("message cat", "expected USER MAILBOX UID");
    if ((r = ctl_valid_name("message cat", "user", argv[0])) != 0)
        return r;
    a.user = argv[0];
    a.mailbox = argv[1];
    errno = 0;
    unsigned long uid = strtoul(argv[2], &end, 10);
    if (errno || *end || uid == 0 || uid > UINT32_MAX)
        return ctl_usage("message cat", "'%s' is not a UID", argv[2]);
    a.uid = (uint32_t)uid;
    ctl_load_conf(ctl);
    if (ctl_open_db(ctl) < 0)
        return EXIT_FAIL;
    if (db_read(ctl->db, tx_get, &a, err, sizeof err) != 0)
        return ctl_fail("%s", err);
    fd = store_file_open(ctl->store, a.found.file_id);
    if (fd < 0)
        return ctl_fail("message file of uid %u: %s", a.uid, strerror(errno));
    while ((n = read(fd, buf, sizeof buf)) > 0)
        if (fwrite(buf, 1, (size_t)n, stdout) != (size_t)n)
            break;
    close(fd);
    return n < 0 ? ctl_fail("read: %s", strerror(errno)) : EXIT_OK;
}
