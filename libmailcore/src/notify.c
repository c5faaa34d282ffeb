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

void notify_send(const char *run_dir, const uint32_t *ids, size_t n)
{
    char dir[512], path[800], msg[32];
    struct dirent *de;
    DIR *d;

    if (n == 0)
        return;
    snprintf(dir, sizeof dir, "%s/%s", run_dir, NOTIFY_SUBDIR);
    if ((d = opendir(dir)) == NULL)
        return;                 /* no imapd yet: nobody to tell */
    while ((de = readdir(d)) != NULL) {
        if (de->d_name[0] == '.')
            continue;
        snprintf(path, sizeof path, "%s/%s", dir, de->d_name);
        for (size_t i = 0; i < n; i++) {
            int len = snprintf(msg, sizeof msg, "mailbox %u", ids[i]);
            if (ipc_notify(path, msg, (size_t)len) < 0 && errno == ECONNREFUSED) {
                unlink(path);   /* its process is gone */
                break;
            }
        }
    }
    closedir(d);
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
