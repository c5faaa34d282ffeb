/*
 * cmd_quota.c - the QUOTA extension (RFC 9208): GETQUOTAROOT, GETQUOTA,
 * and SETQUOTA, which is refused (administrators set limits with
 * `mailctl user quota`; QUOTASET is not advertised).
 *
 * Each user has one quota root, "User quota" (as Dovecot names it), over
 * all of the user's mailboxes, with one resource, STORAGE: the sum of the
 * messages' sizes in units of 1024 octets (quota.h rounds the usage up and
 * the limit down).  A user without a limit has no quota root: GETQUOTAROOT
 * lists none and GETQUOTA "User quota" says there is no such root, since
 * RFC 9208 gives no way to write an unlimited resource.
 *
 * Enforcement is elsewhere (append.c, cmd_message.c, via quota.h): those
 * refuse with NO [OVERQUOTA] and the text of imap_quota_refusal below.
 */
#include <stdio.h>
#include <string.h>

#include "imapd.h"
#include "mailcore/conf.h"
#include "mailcore/quota.h"
#include "mailcore/service.h"

#define QUOTA_ROOT "User quota"

const char imap_quota_refusal[] = "[OVERQUOTA] Quota exceeded (mailbox for user is full)";

uint64_t imap_quota_default(const struct imap_session *s)
{
    return conf_uint(s->srv->svc->conf, "user_quota");
}

struct quota_get {
    const char *user;
    uint64_t def;
    struct quota q;
};

static int tx_quota(struct db_txn *txn, void *arg)
{
    struct quota_get *g = arg;

    return quota_get(txn, g->user, g->def, &g->q);
}

/* The user's quota into *q; -1 after answering NO. */
static int load(struct imap_session *s, struct quota *q)
{
    struct quota_get g = {.user = s->user, .def = imap_quota_default(s)};
    char err[256];

    if (db_read(s->srv->svc->db, tx_quota, &g, err, sizeof err) != 0) {
        log_error("quota of %s: %s", s->user, err);
        imap_tagged(s, "NO", "[SERVERBUG] Cannot read the quota");
        imap_command_done(s);
        return -1;
    }
    *q = g.q;
    return 0;
}

int imap_quota_fits(struct imap_session *s, uint64_t add)
{
    struct quota_get g = {.user = s->user, .def = imap_quota_default(s)};
    char err[256];

    /* A failed read lets the command go on: its commit checks again. */
    if (db_read(s->srv->svc->db, tx_quota, &g, err, sizeof err) != 0)
        return 1;
    return !quota_would_exceed(&g.q, add);
}

static void quota_line(struct imap_session *s, const struct quota *q)
{
    imap_untagged(s, "QUOTA \"%s\" (STORAGE %llu %llu)", QUOTA_ROOT,
                  (unsigned long long)quota_kib_usage(q), (unsigned long long)quota_kib_limit(q));
}

void cmd_getquotaroot(struct imap_session *s, int uid, const struct imap_arg *args, size_t nargs)
{
    char name[DB_MBOX_NAME_MAX + 1];
    struct quota q;

    (void)uid;
    if (nargs != 1 || imap_mailbox_arg(s, &args[0], name, sizeof name) < 0) {
        imap_tagged(s, "BAD", "Syntax: GETQUOTAROOT mailbox");
        imap_command_done(s);
        return;
    }
    if (load(s, &q) < 0)
        return;
    /* Every name of the user, existing or not, is under the one root
     * (RFC 9208 4.1.2: the mailbox need not exist). */
    imap_write(s, "* QUOTAROOT ", 12);
    imap_mailbox_send(s, name);
    if (q.limit != 0)
        imap_write(s, " \"" QUOTA_ROOT "\"", sizeof QUOTA_ROOT + 2);
    imap_write(s, "\r\n", 2);
    if (q.limit != 0)
        quota_line(s, &q);
    imap_tagged(s, "OK", "Getquotaroot completed");
    imap_command_done(s);
}

void cmd_getquota(struct imap_session *s, int uid, const struct imap_arg *args, size_t nargs)
{
    char root[64];
    struct quota q;

    (void)uid;
    if (nargs != 1 || imap_astring(&args[0], root, sizeof root) < 0) {
        imap_tagged(s, "BAD", "Syntax: GETQUOTA quota-root");
        imap_command_done(s);
        return;
    }
    if (load(s, &q) < 0)
        return;
    if (strcmp(root, QUOTA_ROOT) != 0 || q.limit == 0) {
        imap_tagged(s, "NO",
                    "[NONEXISTENT] No such quota root: the user's is \"%s\" when "
                    "a limit is set",
                    QUOTA_ROOT);
        imap_command_done(s);
        return;
    }
    quota_line(s, &q);
    imap_tagged(s, "OK", "Getquota completed");
    imap_command_done(s);
}

void cmd_setquota(struct imap_session *s, int uid, const struct imap_arg *args, size_t nargs)
{
    char root[64];

    (void)uid;
    if (nargs != 2 || imap_astring(&args[0], root, sizeof root) < 0 ||
        args[1].type != IMAP_ARG_LIST)
        imap_tagged(s, "BAD", "Syntax: SETQUOTA quota-root (resource limit ...)");
    else
        imap_tagged(s, "NO",
                    "[NOPERM] Quotas are set by the administrator "
                    "(mailctl user quota)");
    imap_command_done(s);
}
