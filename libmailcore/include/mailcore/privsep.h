/*
 * privsep - dropping root for good.
 *
 * privsep_drop() is the last thing a daemon does before it touches the
 * network: supplementary groups, gid and uid become mail_creator's, the
 * capability bounding set and every capability set are cleared (libcap),
 * and PR_SET_NO_NEW_PRIVS is set.  It then checks that setuid(0) fails.
 * Run by a non-root user it sets no_new_privs, clears capabilities and
 * returns 1 so the caller can warn that privileges were not changed.
 */
#ifndef MAILCORE_PRIVSEP_H
#define MAILCORE_PRIVSEP_H

#include <stddef.h>
#include <sys/types.h>

struct privsep_account {
    uid_t uid;
    gid_t gid;
    char home[256];
};

/* Look up the account.  0, or -1 with err "account NAME does not exist". */
int privsep_lookup(const char *user, struct privsep_account *acct, char *err, size_t errlen);

/* 0 dropped to user, 1 not root (nothing to drop), -1 failure (err set). */
int privsep_drop(const char *user, char *err, size_t errlen);

/* The owner that files created now should have: mail_creator's uid/gid when
 * running as root, else the caller's.  0 or -1 (err set). */
int privsep_file_owner(const char *user, uid_t *uid, gid_t *gid, char *err, size_t errlen);

/* Make dir (one level) if missing, owned by uid:gid with mode; an existing
 * dir must be owned by uid.  key names the config key in messages.  0 or -1. */
int privsep_dir(const char *key, const char *dir, uid_t uid, gid_t gid, mode_t mode,
                char *err, size_t errlen);

#endif
