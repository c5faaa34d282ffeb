/*
 * queue.c - writing entries of the outbound queue.  See queue.h for the
 * layout; relayq reads and updates it.
 */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "mailcore/queue.h"

int queue_init(const char *queue_dir, char *err, size_t errlen)
{
    static const char *const sub[] = {"msg", "env"};
    char path[1024];

    for (size_t i = 0; i < 2; i++) {
        snprintf(path, sizeof path, "%s/%s", queue_dir, sub[i]);
        if (mkdir(path, 0700) < 0 && errno != EEXIST) {
            snprintf(err, errlen, "%s: %s", path, strerror(errno));
            return -1;
        }
    }
    return 0;
}

static int fsync_dir(const char *dir)
{
    int fd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC), r;

    if (fd < 0)
        return -1;
    r = fsync(fd);
    close(fd);
    return r;
}

/* Copy size bytes of in (from 0) into a new file at path, fsync'd. */
static int copy_message(int in, size_t size, const char *path)
{
    int out = open(path, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0600);
    loff_t off = 0;
    int e;

    if (out < 0)
        return -1;
    while ((size_t)off < size) {
        ssize_t n = copy_file_range(in, &off, out, NULL, size - (size_t)off, 0);
        if (n <= 0) {
            char buf[65536];
            ssize_t r = n == 0 ? 0 : pread(in, buf, sizeof buf, off);
            if (n == 0 || r <= 0 || write(out, buf, (size_t)r) != r)
                goto fail;
            off += r;
        }
    }
    if (fdatasync(out) < 0 || close(out) < 0) {
        e = errno;
        unlink(path);
        errno = e;
        return -1;
    }
    return 0;
fail:
    e = errno ? errno : EIO;
    close(out);
    unlink(path);
    errno = e;
    return -1;
}

static int write_envelope(const char *path, const char *qid, const char *sender,
                          const char *user, const char *const *rcpts, size_t n)
{
    FILE *f;
    int fd = open(path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600), e;
    time_t now = time(NULL);

    if (fd < 0 || (f = fdopen(fd, "w")) == NULL) {
        if (fd >= 0)
            close(fd);
        return -1;
    }
    fprintf(f, "mailcore-queue 1\nid %s\ncreated %lld\nsender %s\nuser %s\n", qid,
            (long long)now, sender, user);
    for (size_t i = 0; i < n; i++)
        fprintf(f, "rcpt pending 0 %lld %s\n", (long long)now, rcpts[i]);
    if (fflush(f) != 0 || fdatasync(fileno(f)) != 0) {
        e = errno;
        fclose(f);
        errno = e;
        return -1;
    }
    return fclose(f);
}

int queue_put(const char *queue_dir, const char *qid, const char *sender, const char *user,
              const char *const *rcpts, size_t nrcpts, int fd, size_t size, char *err,
              size_t errlen)
{
    char msg[1024], tmp[1024], env[1024], dir[1024];

    if (nrcpts == 0 || nrcpts > QUEUE_RCPT_MAX || queue_init(queue_dir, err, errlen) < 0) {
        if (nrcpts == 0 || nrcpts > QUEUE_RCPT_MAX)
            snprintf(err, errlen, "queue: %zu recipients", nrcpts);
        return -1;
    }
    snprintf(msg, sizeof msg, "%s/msg/%s", queue_dir, qid);
    snprintf(tmp, sizeof tmp, "%s/env/.%s.tmp", queue_dir, qid);
    snprintf(env, sizeof env, "%s/env/%s", queue_dir, qid);
    if (copy_message(fd, size, msg) < 0) {
        snprintf(err, errlen, "%s: %s", msg, strerror(errno));
        return -1;
    }
    snprintf(dir, sizeof dir, "%s/msg", queue_dir);
    if (fsync_dir(dir) < 0 || write_envelope(tmp, qid, sender, user, rcpts, nrcpts) < 0 ||
        rename(tmp, env) < 0) {
        snprintf(err, errlen, "%s: %s", env, strerror(errno));
        unlink(tmp);
        unlink(msg);
        return -1;
    }
    snprintf(dir, sizeof dir, "%s/env", queue_dir);
    if (fsync_dir(dir) < 0) {
        snprintf(err, errlen, "%s: fsync: %s", dir, strerror(errno));
        unlink(env);
        unlink(msg);
        return -1;
    }
    return 0;
}

void queue_remove(const char *queue_dir, const char *qid)
{
    char path[1024];

    snprintf(path, sizeof path, "%s/env/%s", queue_dir, qid);
    unlink(path);
    snprintf(path, sizeof path, "%s/msg/%s", queue_dir, qid);
    unlink(path);
}
