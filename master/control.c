/*
 * control.c - master's control socket (run_directory/master.sock, mode
 * 0600: root only, or the development user) and systemd notification.
 *
 * mailctl sends one request and reads the reply until master closes:
 *	status  -> "master PID\n" then "NAME PID STATE UPTIMEs\n" per daemon
 *	reload  -> "ok\n" or "error: REASON\n" (the old config stays in force)
 *	stop    -> "ok\n", then a graceful stop
 */
#include <errno.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

#include "mailcore/conf.h"
#include "mailcore/ev.h"
#include "mailcore/ipc.h"
#include "mailcore/log.h"
#include "master.h"

#define CONTROL_REPLY_MAX 16384

static void reply(int fd, const char *text, size_t len)
{
    /* Replies go out in IPC_MSG_MAX pieces; mailctl concatenates them. */
    while (len > 0) {
        size_t n = len < IPC_MSG_MAX ? len : IPC_MSG_MAX;
        if (ipc_send(fd, text, n) < 0)
            return;
        text += n;
        len -= n;
    }
}

static void handle(struct master *m, int fd, const char *req)
{
    char out[CONTROL_REPLY_MAX], err[1024];
    size_t off;

    if (strcmp(req, "status") == 0) {
        off = (size_t)snprintf(out, sizeof out, "master %ld\n", (long)getpid());
        off += children_status(m, out + off, sizeof out - off);
        reply(fd, out, off);
    } else if (strcmp(req, "reload") == 0) {
        if (master_reload(m, err, sizeof err) < 0) {
            off = (size_t)snprintf(out, sizeof out, "error: %s\n", err);
            reply(fd, out, off < sizeof out ? off : sizeof out - 1);
        } else {
            reply(fd, "ok\n", 3);
        }
    } else if (strcmp(req, "stop") == 0) {
        reply(fd, "ok\n", 3);
        master_stop(m);
    } else {
        reply(fd, "error: unknown request\n", 23);
    }
}

static void on_client(struct ev_loop *ev, int fd, int events, void *arg)
{
    char req[IPC_MSG_MAX + 1];
    ssize_t n;

    (void)events;
    n = ipc_recv(fd, req, sizeof req - 1);
    if (n < 0 && (errno == EAGAIN || errno == EINTR))
        return;
    ev_fd_del(ev, fd);
    if (n > 0) {
        req[n] = '\0';
        req[strcspn(req, "\r\n")] = '\0';
        handle(arg, fd, req);
    }
    close(fd);
}

static void on_control(struct ev_loop *ev, int fd, int events, void *arg)
{
    int c;

    (void)events;
    while ((c = accept4(fd, NULL, NULL, SOCK_NONBLOCK | SOCK_CLOEXEC)) >= 0)
        if (ev_fd_add(ev, c, EV_READ, on_client, arg) < 0)
            close(c);
}

static void control_path(const struct master *m, char *buf, size_t len)
{
    snprintf(buf, len, "%s/master.sock", conf_str(m->conf, "run_directory"));
}

int control_open(struct master *m, char *err, size_t errlen)
{
    char path[512];

    control_path(m, path, sizeof path);
    m->control_fd = ipc_listen(path, SOCK_SEQPACKET, 0600, err, errlen);
    if (m->control_fd < 0)
        return -1;
    if (ev_fd_add(m->ev, m->control_fd, EV_READ, on_control, m) < 0) {
        snprintf(err, errlen, "control socket: %s", strerror(errno));
        return -1;
    }
    return 0;
}

void control_close(struct master *m)
{
    char path[512];

    if (m->control_fd < 0)
        return;
    ev_fd_del(m->ev, m->control_fd);
    close(m->control_fd);
    m->control_fd = -1;
    control_path(m, path, sizeof path);
    unlink(path);
}

/* sd_notify(3) without libsystemd: one datagram to $NOTIFY_SOCKET. */
void notify_systemd(const char *state)
{
    const char *path = getenv("NOTIFY_SOCKET");
    struct sockaddr_un sun = {.sun_family = AF_UNIX};
    size_t len;
    int fd;

    if (path == NULL || (path[0] != '/' && path[0] != '@'))
        return;
    len = strlen(path);
    if (len >= sizeof sun.sun_path)
        return;
    memcpy(sun.sun_path, path, len);
    if (sun.sun_path[0] == '@')
        sun.sun_path[0] = '\0';   /* abstract namespace */
    fd = socket(AF_UNIX, SOCK_DGRAM | SOCK_CLOEXEC, 0);
    if (fd < 0)
        return;
    if (sendto(fd, state, strlen(state), MSG_NOSIGNAL, (struct sockaddr *)&sun,
               (socklen_t)(offsetof(struct sockaddr_un, sun_path) + len)) < 0)
        log_warn("cannot notify systemd at %s: %s", path, strerror(errno));
    close(fd);
}
