/*
 * notify.c - mailbox-change datagrams to imapd processes.  See notify.h.
 */
#include <dirent.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <time.h>
#include <unistd.h>

#include "mailcore/ipc.h"
#include "mailcore/notify.h"

int notify_listen(const char *run_dir, const char *name, char *path, size_t pathlen, char *err,
                  size_t errlen)
{
    char dir[512];

    snprintf(dir, sizeof dir, "%s/%s", run_dir, NOTIFY_SUBDIR);
    if (mkdir(dir, 0700) < 0 && errno != EEXIST) {
        snprintf(err, errlen, "%s: %s", dir, strerror(errno));
        return -1;
    }
    snprintf(path, pathlen, "%s/%s.%ld", dir, name, (long)getpid());
    return ipc_listen(path, SOCK_DGRAM, 0600, err, errlen);
}

/* The listeners as last read from the directory, re-read when the
 * directory's mtime changes (an imapd came or went): a commit costs one
 * stat() and one sendto() per listener, no directory scan and no socket.
 * The kernel stamps mtime from a coarse clock, so two changes a moment
 * apart may leave the same mtime: a listing is trusted only once the
 * mtime it saw was NOTIFY_SETTLE_S old when it was read. */
#define NOTIFY_SETTLE_S 2
struct notify_sender {
    char dir[512];
    int fd;                         /* our datagram socket, or -1 */
    int listed;                     /* names/mtime are valid */
    struct timespec mtime;
    time_t listed_at;
    char (*names)[NOTIFY_PATH_MAX];
    size_t n, cap;
};

struct notify_sender *notify_sender_new(const char *run_dir)
{
    struct notify_sender *ns = calloc(1, sizeof *ns);

    if (ns == NULL)
        return NULL;
    snprintf(ns->dir, sizeof ns->dir, "%s/%s", run_dir, NOTIFY_SUBDIR);
    ns->fd = -1;
    return ns;
}

void notify_sender_free(struct notify_sender *ns)
{
    if (ns == NULL)
        return;
    if (ns->fd >= 0)
        close(ns->fd);
    free(ns->names);
    free(ns);
}

static int add_name(struct notify_sender *ns, const char *name)
{
    if (ns->n == ns->cap) {
        size_t cap = ns->cap ? ns->cap * 2 : 16;
        void *p = cap <= NOTIFY_LISTENERS_MAX ? realloc(ns->names, cap * sizeof *ns->names)
                                              : NULL;
        if (p == NULL)
            return -1;
        ns->names = p;
        ns->cap = cap;
    }
    snprintf(ns->names[ns->n++], NOTIFY_PATH_MAX, "%s/%s", ns->dir, name);
    return 0;
}

/* Bring the listener list up to date; -1 when there is none (no imapd). */
static int refresh(struct notify_sender *ns)
{
    struct dirent *de;
    struct stat st;
    DIR *d;

    if (stat(ns->dir, &st) < 0)
        return -1;
    if (ns->listed && st.st_mtim.tv_sec == ns->mtime.tv_sec &&
        st.st_mtim.tv_nsec == ns->mtime.tv_nsec &&
        ns->listed_at - ns->mtime.tv_sec >= NOTIFY_SETTLE_S)
        return 0;
    if ((d = opendir(ns->dir)) == NULL)
        return -1;
    ns->n = 0;
    while ((de = readdir(d)) != NULL)
        if (de->d_name[0] != '.' && strlen(ns->dir) + 1 + strlen(de->d_name) < NOTIFY_PATH_MAX &&
            add_name(ns, de->d_name) < 0)
            break;
    closedir(d);
    ns->mtime = st.st_mtim;
    ns->listed_at = time(NULL);
    ns->listed = 1;
    return 0;
}

void notify_send(struct notify_sender *ns, const uint32_t *ids, size_t n)
{
    char msg[32];

    if (ns == NULL || n == 0 || refresh(ns) < 0)
        return;
    if (ns->fd < 0 && (ns->fd = ipc_datagram_socket()) < 0)
        return;
    for (size_t k = 0; k < ns->n; k++)
        for (size_t i = 0; i < n; i++) {
            int len = snprintf(msg, sizeof msg, "mailbox %u", ids[i]);
            if (ipc_notify_from(ns->fd, ns->names[k], msg, (size_t)len) < 0 &&
                errno == ECONNREFUSED) {
                unlink(ns->names[k]);   /* its process is gone */
                ns->listed = 0;
                break;
            }
        }
}

int notify_parse(const char *msg, size_t len, uint32_t *id)
{
    char buf[32];
    char *end;
    unsigned long v;

    if (len < 9 || len >= sizeof buf || memcmp(msg, "mailbox ", 8) != 0)
        return -1;
    memcpy(buf, msg, len);
    buf[len] = '\0';
    errno = 0;
    v = strtoul(buf + 8, &end, 10);
    if (errno || *end || v > UINT32_MAX)
        return -1;
    *id = (uint32_t)v;
    return 0;
}
