/*
 * queue.c - the entries of the outbound queue: submitd writes them
 * (queue_stage, queue_publish), relayq and mailctl queue read, lock, rewrite and delete them.
 * See queue.h for the layout.
 */
#include <ctype.h>
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
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

/* Copy size bytes of in (from 0) into a new file at path (not synced). */
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
    if (close(out) < 0) {
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

/*
 * msg/QID gets size bytes of in (from 0): a hard link to in's file when
 * that file is exactly those bytes and on the queue's filesystem (no copy,
 * nothing more to write back), else a copy.  Not synced.
 */
static int place_message(int in, size_t size, const char *path)
{
    char self[64];
    struct stat st;

    snprintf(self, sizeof self, "/proc/self/fd/%d", in);
    if (fstat(in, &st) == 0 && S_ISREG(st.st_mode) && (uint64_t)st.st_size == size &&
        linkat(AT_FDCWD, self, AT_FDCWD, path, AT_SYMLINK_FOLLOW) == 0)
        return 0;
    return copy_message(in, size, path);
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
    if (fflush(f) != 0) {
        e = errno;
        fclose(f);
        errno = e;
        return -1;
    }
    return fclose(f);
}

int queue_stage(const char *queue_dir, const char *qid, const char *sender, const char *user,
                const char *const *rcpts, size_t nrcpts, int fd, size_t size, char *err,
                size_t errlen)
{
    char msg[1024], tmp[1024];

    if (nrcpts == 0 || nrcpts > QUEUE_RCPT_MAX || !queue_valid_id(qid)) {
        snprintf(err, errlen, "queue: %zu recipients, id %s", nrcpts, qid);
        return -1;
    }
    if (queue_init(queue_dir, err, errlen) < 0)
        return -1;
    snprintf(msg, sizeof msg, "%s/msg/%s", queue_dir, qid);
    snprintf(tmp, sizeof tmp, "%s/env/.%s.tmp", queue_dir, qid);
    if (place_message(fd, size, msg) < 0) {
        snprintf(err, errlen, "%s: %s", msg, strerror(errno));
        return -1;
    }
    if (write_envelope(tmp, qid, sender, user, rcpts, nrcpts) < 0) {
        snprintf(err, errlen, "%s: %s", tmp, strerror(errno));
        unlink(tmp);
        unlink(msg);
        return -1;
    }
    return 0;
}

/* 1 when a and b are directories on the same filesystem. */
static int same_fs(const char *a, const char *b)
{
    struct stat sa, sb;

    return stat(a, &sa) == 0 && stat(b, &sb) == 0 && sa.st_dev == sb.st_dev;
}

static int sync_fs(const char *dir)
{
    int fd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC), r;

    if (fd < 0)
        return -1;
    r = syncfs(fd);
    close(fd);
    return r;
}

int queue_publish(const char *queue_dir, const char *synced_dir, const char *const *qids, size_t n,
                  char *err, size_t errlen)
{
    char tmp[1024], env[1024], dir[1024];

    if (n == 0)
        return 0;
    if ((synced_dir == NULL || !same_fs(queue_dir, synced_dir)) && sync_fs(queue_dir) < 0) {
        snprintf(err, errlen, "%s: syncfs: %s", queue_dir, strerror(errno));
        return -1;
    }
    for (size_t i = 0; i < n; i++) {
        snprintf(tmp, sizeof tmp, "%s/env/.%s.tmp", queue_dir, qids[i]);
        snprintf(env, sizeof env, "%s/env/%s", queue_dir, qids[i]);
        if (rename(tmp, env) < 0) {
            snprintf(err, errlen, "%s: %s", env, strerror(errno));
            return -1;
        }
    }
    snprintf(dir, sizeof dir, "%s/env", queue_dir);
    if (fsync_dir(dir) < 0) {
        snprintf(err, errlen, "%s: fsync: %s", dir, strerror(errno));
        return -1;
    }
    return 0;
}

void queue_remove(const char *queue_dir, const char *qid)
{
    char path[1024];

    snprintf(path, sizeof path, "%s/env/%s", queue_dir, qid);
    unlink(path);
    snprintf(path, sizeof path, "%s/env/.%s.tmp", queue_dir, qid);
    unlink(path);
    snprintf(path, sizeof path, "%s/msg/%s", queue_dir, qid);
    unlink(path);
}

int queue_valid_id(const char *qid)
{
    size_t n = strlen(qid);

    if (n == 0 || n > QUEUE_ID_MAX)
        return 0;
    for (size_t i = 0; i < n; i++)
        if (!isalnum((unsigned char)qid[i]))
            return 0;
    return 1;
}

void queue_text_set(char *dst, size_t len, const char *src)
{
    size_t i = 0;

    for (; src[i] && i + 1 < len; i++)
        dst[i] = (unsigned char)src[i] < 0x20 || src[i] == 0x7f ? ' ' : src[i];
    dst[i] = '\0';
}

void queue_env_free(struct queue_env *e)
{
    free(e->rcpts);
    e->rcpts = NULL;
    e->nrcpts = 0;
}

size_t queue_env_pending(const struct queue_env *e)
{
    size_t n = 0;

    for (size_t i = 0; i < e->nrcpts; i++)
        n += e->rcpts[i].state == QUEUE_PENDING;
    return n;
}

static const char *const state_names[] = {"pending", "sent", "bounced"};

/* One line (without its newline) into e; 0 or -1 with err. */
static int parse_line(struct queue_env *e, char *line, char *err, size_t errlen)
{
    char *sp = strchr(line, ' ');
    const char *val = sp ? sp + 1 : "";
    struct queue_rcpt *last = e->nrcpts ? &e->rcpts[e->nrcpts - 1] : NULL;

    if (sp)
        *sp = '\0';
    if (strcmp(line, "mailcore-queue") == 0)
        return strcmp(val, "1") == 0 ? 0 : (snprintf(err, errlen, "version %s", val), -1);
    if (strcmp(line, "id") == 0)
        snprintf(e->id, sizeof e->id, "%s", val);
    else if (strcmp(line, "created") == 0)
        e->created = strtoll(val, NULL, 10);
    else if (strcmp(line, "sender") == 0)
        queue_text_set(e->sender, sizeof e->sender, val);
    else if (strcmp(line, "user") == 0)
        queue_text_set(e->user, sizeof e->user, val);
    else if (strcmp(line, "hold") == 0)
        e->hold = 1;
    else if (strcmp(line, "reason") == 0)
        queue_text_set(e->reason, sizeof e->reason, val);
    else if (strcmp(line, "rcpt") == 0) {
        struct queue_rcpt *r, *n;
        char state[16], addr[QUEUE_ADDR_MAX + 1];
        unsigned attempts;
        long long next;
        int s;

        if (sscanf(val, "%15s %u %lld %256s", state, &attempts, &next, addr) != 4) {
            snprintf(err, errlen, "bad rcpt line");
            return -1;
        }
        for (s = 0; s < 3 && strcmp(state, state_names[s]) != 0; s++)
            ;
        if (s == 3 || e->nrcpts >= QUEUE_RCPT_MAX) {
            snprintf(err, errlen, s == 3 ? "bad recipient state %s" : "too many recipients%s",
                     s == 3 ? state : "");
            return -1;
        }
        n = realloc(e->rcpts, (e->nrcpts + 1) * sizeof *n);
        if (n == NULL) {
            snprintf(err, errlen, "out of memory");
            return -1;
        }
        e->rcpts = n;
        r = &n[e->nrcpts++];
        memset(r, 0, sizeof *r);
        r->state = (enum queue_state)s;
        r->attempts = attempts;
        r->next = next;
        snprintf(r->addr, sizeof r->addr, "%s", addr);
    } else if (last && strcmp(line, "status") == 0)
        queue_text_set(last->status, sizeof last->status, val);
    else if (last && strcmp(line, "diag") == 0)
        queue_text_set(last->diag, sizeof last->diag, val);
    else if (last && strcmp(line, "why") == 0)
        queue_text_set(last->why, sizeof last->why, val);
    else if (last && strcmp(line, "notified") == 0)
        last->notified = 1;
    /* Unknown lines are ignored: a newer writer may add some. */
    return 0;
}

int queue_env_read(const char *queue_dir, const char *qid, struct queue_env *e, char *err,
                   size_t errlen)
{
    char path[1024], *line = NULL;
    size_t cap = 0;
    ssize_t len;
    FILE *f;
    int r = 0;

    memset(e, 0, sizeof *e);
    if (!queue_valid_id(qid)) {
        snprintf(err, errlen, "bad queue id");
        return -1;
    }
    snprintf(path, sizeof path, "%s/env/%s", queue_dir, qid);
    f = fopen(path, "re");
    if (f == NULL) {
        if (errno == ENOENT)
            return 1;
        snprintf(err, errlen, "%s: %s", path, strerror(errno));
        return -1;
    }
    while (r == 0 && (len = getline(&line, &cap, f)) > 0) {
        if (len > 8192) {
            snprintf(err, errlen, "line too long");
            r = -1;
            break;
        }
        if (line[len - 1] == '\n')
            line[--len] = '\0';
        r = parse_line(e, line, err, errlen);
    }
    if (r == 0 && ferror(f)) {
        snprintf(err, errlen, "read error");
        r = -1;
    }
    free(line);
    fclose(f);
    if (r == 0 && (e->id[0] == '\0' || e->nrcpts == 0)) {
        snprintf(err, errlen, "incomplete envelope");
        r = -1;
    }
    if (r < 0) {
        char tmp[256];
        snprintf(tmp, sizeof tmp, "%s", err);
        snprintf(err, errlen, "%s: %s", path, tmp);
        queue_env_free(e);
        return -1;
    }
    return 0;
}

int queue_env_write(const char *queue_dir, const struct queue_env *e, char *err, size_t errlen)
{
    char tmp[1024], path[1024], dir[1024];
    int fd, ok;
    FILE *f;

    snprintf(tmp, sizeof tmp, "%s/env/.%s.tmp", queue_dir, e->id);
    snprintf(path, sizeof path, "%s/env/%s", queue_dir, e->id);
    snprintf(dir, sizeof dir, "%s/env", queue_dir);
    fd = open(tmp, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
    if (fd < 0 || (f = fdopen(fd, "w")) == NULL) {
        snprintf(err, errlen, "%s: %s", tmp, strerror(errno));
        if (fd >= 0)
            close(fd);
        return -1;
    }
    fprintf(f, "mailcore-queue 1\nid %s\ncreated %lld\nsender %s\nuser %s\n", e->id, e->created,
            e->sender, e->user);
    if (e->hold)
        fputs("hold\n", f);
    if (e->reason[0])
        fprintf(f, "reason %s\n", e->reason);
    for (size_t i = 0; i < e->nrcpts; i++) {
        const struct queue_rcpt *r = &e->rcpts[i];
        fprintf(f, "rcpt %s %u %lld %s\n", state_names[r->state], r->attempts, r->next, r->addr);
        if (r->status[0])
            fprintf(f, "status %s\n", r->status);
        if (r->diag[0])
            fprintf(f, "diag %s\n", r->diag);
        if (r->why[0])
            fprintf(f, "why %s\n", r->why);
        if (r->notified)
            fputs("notified\n", f);
    }
    ok = fflush(f) == 0 && fdatasync(fd) == 0;
    ok = fclose(f) == 0 && ok;
    if (!ok || rename(tmp, path) < 0 || fsync_dir(dir) < 0) {
        snprintf(err, errlen, "%s: %s", path, strerror(errno));
        unlink(tmp);
        return -1;
    }
    return 0;
}

int queue_lock(const char *queue_dir, const char *qid, unsigned wait_ms)
{
    char path[1024];
    int fd;

    if (!queue_valid_id(qid)) {
        errno = ENOENT;
        return -1;
    }
    snprintf(path, sizeof path, "%s/msg/%s", queue_dir, qid);
    fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0)
        return -1;
    for (unsigned waited = 0;; waited += 50) {
        if (flock(fd, LOCK_EX | LOCK_NB) == 0)
            return fd;
        if (errno != EWOULDBLOCK && errno != EINTR)
            break;
        if (waited >= wait_ms) {
            errno = EWOULDBLOCK;
            break;
        }
        usleep(50000);
    }
    int e = errno;
    close(fd);
    errno = e;
    return -1;
}

int queue_delete(const char *queue_dir, const char *qid, char *err, size_t errlen)
{
    char path[1024], dir[1024];

    snprintf(path, sizeof path, "%s/env/%s", queue_dir, qid);
    snprintf(dir, sizeof dir, "%s/env", queue_dir);
    if ((unlink(path) < 0 && errno != ENOENT) || fsync_dir(dir) < 0) {
        snprintf(err, errlen, "%s: %s", path, strerror(errno));
        return -1;
    }
    snprintf(path, sizeof path, "%s/msg/%s", queue_dir, qid);
    if (unlink(path) < 0 && errno != ENOENT) {
        snprintf(err, errlen, "%s: %s", path, strerror(errno));
        return -1;
    }
    return 0;
}

int queue_foreach(const char *queue_dir, int (*cb)(const char *qid, void *arg), void *arg,
                  char *err, size_t errlen)
{
    char dir[1024];
    struct dirent *d;
    DIR *dp;
    int r = 0;

    snprintf(dir, sizeof dir, "%s/env", queue_dir);
    dp = opendir(dir);
    if (dp == NULL) {
        snprintf(err, errlen, "%s: %s", dir, strerror(errno));
        return -1;
    }
    while (r == 0 && (d = readdir(dp)) != NULL)
        if (d->d_name[0] != '.' && queue_valid_id(d->d_name))
            r = cb(d->d_name, arg);
    closedir(dp);
    return r;
}
