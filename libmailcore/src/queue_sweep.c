/*
 * queue_sweep.c - removing what a crash left in the queue directory.
 *
 * submitd stages an entry as msg/QID plus env/.QID.tmp and publishes it by
 * renaming the envelope into env/ (queue.h).  A crash before the rename
 * leaves a staged envelope and a message nobody will send: the client got
 * no 250 for it.  relayq sweeps at start-up: env/.QID.tmp and msg/QID
 * without env/QID go, once they are older than min_age seconds (a commit
 * in flight in a submitd that is still running is seconds old at most).
 */
#include <dirent.h>
#include <errno.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "mailcore/log.h"
#include "mailcore/queue.h"

static int old_enough(const char *path, time_t now, unsigned min_age)
{
    struct stat st;

    return lstat(path, &st) == 0 && S_ISREG(st.st_mode) && now - st.st_mtime >= (time_t)min_age;
}

/* env/.QID.tmp: a staged envelope never published. */
static size_t sweep_staged(const char *queue_dir, time_t now, unsigned min_age)
{
    char dir[1024], path[2048], qid[QUEUE_ID_MAX + 1];
    struct dirent *d;
    size_t n = 0;
    DIR *dp;

    snprintf(dir, sizeof dir, "%s/env", queue_dir);
    if ((dp = opendir(dir)) == NULL)
        return 0;
    while ((d = readdir(dp)) != NULL) {
        size_t len = strlen(d->d_name);
        if (d->d_name[0] != '.' || len < 6 || len - 5 > QUEUE_ID_MAX ||
            strcmp(d->d_name + len - 4, ".tmp") != 0)
            continue;
        memcpy(qid, d->d_name + 1, len - 5);
        qid[len - 5] = '\0';
        snprintf(path, sizeof path, "%s/%s", dir, d->d_name);
        if (queue_valid_id(qid) && old_enough(path, now, min_age) && unlink(path) == 0)
            n++;
    }
    closedir(dp);
    return n;
}

/* msg/QID without env/QID (nor a staged one younger than the sweep). */
static size_t sweep_messages(const char *queue_dir, time_t now, unsigned min_age)
{
    char dir[1024], path[2048], env[2048], staged[2048];
    struct dirent *d;
    size_t n = 0;
    DIR *dp;

    snprintf(dir, sizeof dir, "%s/msg", queue_dir);
    if ((dp = opendir(dir)) == NULL)
        return 0;
    while ((d = readdir(dp)) != NULL) {
        if (!queue_valid_id(d->d_name))
            continue;
        snprintf(path, sizeof path, "%s/%s", dir, d->d_name);
        snprintf(env, sizeof env, "%s/env/%s", queue_dir, d->d_name);
        snprintf(staged, sizeof staged, "%s/env/.%s.tmp", queue_dir, d->d_name);
        if (access(env, F_OK) != 0 && errno == ENOENT && access(staged, F_OK) != 0 &&
            old_enough(path, now, min_age) && unlink(path) == 0)
            n++;
    }
    closedir(dp);
    return n;
}

size_t queue_sweep(const char *queue_dir, unsigned min_age)
{
    time_t now = time(NULL);
    size_t n = sweep_staged(queue_dir, now, min_age);

    return n + sweep_messages(queue_dir, now, min_age);
}
