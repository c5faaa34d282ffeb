/*
 * privsep.c - dropping root for good: groups, gid, uid, every capability
 * set and the bounding set, and no_new_privs.  See privsep.h.
 */
#include <errno.h>
#include <grp.h>
#include <pwd.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>
#include <sys/capability.h>
#include <sys/prctl.h>
#include <sys/stat.h>
#include <unistd.h>

#include "mailcore/err.h"
#include "mailcore/privsep.h"

int privsep_lookup(const char *user, struct privsep_account *acct, char *err, size_t errlen)
{
    struct passwd pw, *res = NULL;
    char buf[4096];
    int r = getpwnam_r(user, &pw, buf, sizeof buf, &res);

    if (r != 0)
        return err_set(err, errlen, "cannot look up account %s: %s", user, strerror(r));
    if (res == NULL)
        return err_set(err, errlen,
                    "mail_creator account '%s' does not exist: create it (useradd --system "
                    "--no-create-home --shell /usr/sbin/nologin %s) or set mail_creator",
                    user, user);
    if (pw.pw_uid == 0)
        return err_set(err, errlen, "mail_creator account '%s' is root: use an unprivileged account",
                    user);
    acct->uid = pw.pw_uid;
    acct->gid = pw.pw_gid;
    snprintf(acct->home, sizeof acct->home, "%s", pw.pw_dir ? pw.pw_dir : "/");
    return 0;
}

int privsep_file_owner(const char *user, uid_t *uid, gid_t *gid, char *err, size_t errlen)
{
    struct privsep_account acct;

    if (geteuid() != 0) {
        *uid = geteuid();
        *gid = getegid();
        return 0;
    }
    if (privsep_lookup(user, &acct, err, errlen) < 0)
        return -1;
    *uid = acct.uid;
    *gid = acct.gid;
    return 0;
}

/* Clear every capability set, and the ambient set. */
static int clear_caps(char *err, size_t errlen)
{
    cap_t caps = cap_init();

    if (caps == NULL)
        return err_set(err, errlen, "cap_init: %s", strerror(errno));
    if (cap_set_proc(caps) < 0) {
        cap_free(caps);
        return err_set(err, errlen, "cap_set_proc: %s", strerror(errno));
    }
    cap_free(caps);
    prctl(PR_CAP_AMBIENT, PR_CAP_AMBIENT_CLEAR_ALL, 0, 0, 0);
    return 0;
}

static int drop_bounding_set(char *err, size_t errlen)
{
    for (int cap = 0; cap <= CAP_LAST_CAP; cap++)
        if (prctl(PR_CAPBSET_DROP, cap, 0, 0, 0) < 0 && errno != EINVAL)
            return err_set(err, errlen, "PR_CAPBSET_DROP %d: %s", cap, strerror(errno));
    return 0;
}

int privsep_drop(const char *user, char *err, size_t errlen)
{
    struct privsep_account acct;
    int was_root = geteuid() == 0;

    if (was_root) {
        if (privsep_lookup(user, &acct, err, errlen) < 0)
            return -1;
        if (drop_bounding_set(err, errlen) < 0)
            return -1;
        if (setgroups(1, &acct.gid) < 0)
            return err_set(err, errlen, "setgroups: %s", strerror(errno));
        if (setresgid(acct.gid, acct.gid, acct.gid) < 0)
            return err_set(err, errlen, "setresgid %u: %s", (unsigned)acct.gid, strerror(errno));
        if (setresuid(acct.uid, acct.uid, acct.uid) < 0)
            return err_set(err, errlen, "setresuid %u: %s", (unsigned)acct.uid, strerror(errno));
    }
    if (clear_caps(err, errlen) < 0)
        return -1;
    if (prctl(PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) < 0)
        return err_set(err, errlen, "PR_SET_NO_NEW_PRIVS: %s", strerror(errno));
    if (was_root && (setuid(0) == 0 || seteuid(0) == 0))
        return err_set(err, errlen, "privileges could be regained after dropping them");
    return was_root ? 0 : 1;
}

/* Make dir if missing, owned by uid:gid with mode; refuse a wrong owner. */
int privsep_dir(const char *key, const char *dir, uid_t uid, gid_t gid, mode_t mode,
                       char *err, size_t errlen)
{
    struct stat st;

    if (mkdir(dir, mode) == 0) {
        if (chown(dir, uid, gid) < 0 || chmod(dir, mode) < 0) {
            snprintf(err, errlen, "%s %s: %s", key, dir, strerror(errno));
            return -1;
        }
        return 0;
    }
    if (errno != EEXIST) {
        snprintf(err, errlen, "%s %s: cannot create it: %s", key, dir, strerror(errno));
        return -1;
    }
    if (stat(dir, &st) < 0 || !S_ISDIR(st.st_mode)) {
        snprintf(err, errlen, "%s %s: not a directory", key, dir);
        return -1;
    }
    if (st.st_uid != uid) {
        snprintf(err, errlen, "%s %s is owned by uid %u, not by the daemons' uid %u: "
                 "chown -R %u:%u %s", key, dir, (unsigned)st.st_uid, (unsigned)uid,
                 (unsigned)uid, (unsigned)gid, dir);
        return -1;
    }
    return 0;
}

