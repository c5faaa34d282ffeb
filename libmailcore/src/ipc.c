/*
 * ipc.c - small messages over Unix-domain sockets.
 *
 * Message boundaries come from the socket type (SEQPACKET, DGRAM), so there
 * is no framing here: one send() is one message, one recv() reads one, and a
 * message that does not fit the reader's buffer is an error (EMSGSIZE), not
 * silently cut.  A zero-length message cannot be told apart from the end of
 * a SEQPACKET stream, so ipc_send() refuses to send one.
 *
 * ipc_listen() replaces a socket left behind by a dead process but refuses
 * to touch anything else: a regular file, or a socket someone still answers
 * on (a second master must not steal the first one's socket).  The probe
 * is a connect(): a live SEQPACKET server sees one connection that closes
 * at once, which it handles like any client that goes away.
 *
 * Diagnostics: errors name the socket path and the reason (strerror).
 */
#include "mailcore/err.h"
#include "mailcore/ipc.h"

#include <errno.h>
#include <poll.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <time.h>
#include <unistd.h>

#define IPC_BACKLOG 64
#define IPC_CONNECT_RETRY_MS 10 /* pause when the server's backlog is full */

/* Fill sa from path; -1 (ENAMETOOLONG, EINVAL) when it cannot hold it. */
static int ipc_addr(const char *path, struct sockaddr_un *sa)
{
    size_t n;

    if (path == NULL || path[0] == '\0') {
        errno = EINVAL;
        return -1;
    }
    n = strlen(path);
    memset(sa, 0, sizeof *sa);
    sa->sun_family = AF_UNIX;
    if (n >= sizeof sa->sun_path) {
        errno = ENAMETOOLONG;
        return -1;
    }
    memcpy(sa->sun_path, path, n + 1);
    return 0;
}

static int addr_err(const char *path, char *err, size_t errlen)
{
    if (errno == ENAMETOOLONG)
        err_set(err, errlen, "socket path too long (max %zu bytes): %s",
                sizeof((struct sockaddr_un *)0)->sun_path - 1, path);
    else
        err_set(err, errlen, "empty socket path");
    return -1;
}

static uint64_t now_ms(void)
{
    struct timespec ts;

    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000 + (uint64_t)ts.tv_nsec / 1000000;
}

/* ms left before deadline for poll(); -1 (forever) when there is none. */
static int ms_left(uint64_t deadline)
{
    uint64_t now;

    if (deadline == UINT64_MAX)
        return -1;
    now = now_ms();
    if (now >= deadline)
        return 0;
    return deadline - now > INT32_MAX ? INT32_MAX : (int)(deadline - now);
}

/*
 * Is something at path a socket nobody answers on?  1 yes (safe to
 * unlink), 0 no (err set), -1 nothing there.
 */
static int ipc_stale(const char *path, const struct sockaddr_un *sa, int type, char *err,
                     size_t errlen)
{
    struct stat st;
    int fd, rc, saved;

    if (lstat(path, &st) < 0) {
        if (errno == ENOENT)
            return -1;
        err_set(err, errlen, "cannot stat %s: %s", path, strerror(errno));
        return 0;
    }
    if (!S_ISSOCK(st.st_mode)) {
        err_set(err, errlen, "%s exists and is not a socket; not removing it", path);
        return 0;
    }
    fd = socket(AF_UNIX, type | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    if (fd < 0) {
        err_set(err, errlen, "cannot create socket for %s: %s", path, strerror(errno));
        return 0;
    }
    rc = connect(fd, (const struct sockaddr *)sa, sizeof *sa);
    saved = errno;
    close(fd);
    if (rc < 0 && (saved == ECONNREFUSED || saved == ENOENT))
        return 1;
    if (rc == 0 || saved == EAGAIN)
        err_set(err, errlen, "%s is in use by another process", path);
    else
        err_set(err, errlen, "%s is a socket that may be in use (%s); not removing it", path,
                strerror(saved));
    return 0;
}

int ipc_listen(const char *path, int type, mode_t mode, char *err, size_t errlen)
{
    struct sockaddr_un sa;
    mode_t old_mask;
    int fd, rc, saved;

    if (type != SOCK_SEQPACKET && type != SOCK_DGRAM) {
        err_set(err, errlen, "%s: socket type must be SOCK_SEQPACKET or SOCK_DGRAM",
                path ? path : "(null)");
        errno = EINVAL;
        return -1;
    }
    if (ipc_addr(path, &sa) < 0)
        return addr_err(path, err, errlen);

    switch (ipc_stale(path, &sa, type, err, errlen)) {
    case 0:
        return -1;
    case 1:
        if (unlink(path) < 0 && errno != ENOENT) {
            err_set(err, errlen, "cannot remove stale socket %s: %s", path, strerror(errno));
            return -1;
        }
        break;
    default:
        break;
    }

    fd = socket(AF_UNIX, type | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    if (fd < 0) {
        err_set(err, errlen, "cannot create socket for %s: %s", path, strerror(errno));
        return -1;
    }
    /* A Unix socket gets its mode at bind time from the umask (fchmod on
     * the fd does nothing), so narrow the umask around bind: the socket is
     * never reachable with wider permissions than asked for. */
    old_mask = umask(~mode & 0777);
    rc = bind(fd, (struct sockaddr *)&sa, sizeof sa);
    saved = errno;
    umask(old_mask);
    if (rc < 0) {
        err_set(err, errlen, "cannot bind %s: %s", path, strerror(saved));
        close(fd);
        errno = saved;
        return -1;
    }
    /* The umask cannot add bits (setgid dirs, modes wider than 0777). */
    if (chmod(path, mode) < 0) {
        saved = errno;
        err_set(err, errlen, "cannot chmod %s: %s", path, strerror(saved));
        goto fail;
    }
    if (type == SOCK_SEQPACKET && listen(fd, IPC_BACKLOG) < 0) {
        saved = errno;
        err_set(err, errlen, "cannot listen on %s: %s", path, strerror(saved));
        goto fail;
    }
    return fd;
fail:
    unlink(path);
    close(fd);
    errno = saved;
    return -1;
}

int ipc_send(int fd, const void *msg, size_t len)
{
    ssize_t n;

    if (len > IPC_MSG_MAX) {
        errno = EMSGSIZE;
        return -1;
    }
    if (len == 0) {
        errno = EINVAL;
        return -1;
    }
    do
        n = send(fd, msg, len, MSG_NOSIGNAL);
    while (n < 0 && errno == EINTR);
    if (n < 0)
        return -1;
    if ((size_t)n != len) {
        /* Cannot happen on SEQPACKET/DGRAM; a stream socket was passed. */
        errno = EPROTOTYPE;
        return -1;
    }
    return 0;
}

ssize_t ipc_recv(int fd, void *buf, size_t len)
{
    struct iovec iov = {buf, len};
    struct msghdr mh;
    ssize_t n;

    memset(&mh, 0, sizeof mh);
    mh.msg_iov = &iov;
    mh.msg_iovlen = 1;
    do
        n = recvmsg(fd, &mh, MSG_CMSG_CLOEXEC);
    while (n < 0 && errno == EINTR);
    if (n < 0)
        return -1;
    if (mh.msg_flags & MSG_TRUNC) {
        errno = EMSGSIZE;
        return -1;
    }
    return n;
}

/* Connect, waiting out a full backlog until the deadline. */
static int req_connect(const char *path, const struct sockaddr_un *sa, uint64_t deadline, char *err,
                       size_t errlen)
{
    int fd, wait;

    fd = socket(AF_UNIX, SOCK_SEQPACKET | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    if (fd < 0) {
        err_set(err, errlen, "cannot create socket for %s: %s", path, strerror(errno));
        return -1;
    }
    for (;;) {
        if (connect(fd, (const struct sockaddr *)sa, sizeof *sa) == 0)
            return fd;
        if (errno == EINTR)
            continue;
        if (errno != EAGAIN) {
            err_set(err, errlen, "cannot connect to %s: %s%s", path, strerror(errno),
                    errno == ENOENT || errno == ECONNREFUSED ? " (is master running?)" : "");
            break;
        }
        wait = ms_left(deadline);
        if (wait == 0) {
            err_set(err, errlen, "timed out waiting for %s", path);
            break;
        }
        if (wait < 0 || wait > IPC_CONNECT_RETRY_MS)
            wait = IPC_CONNECT_RETRY_MS;
        poll(NULL, 0, wait);
    }
    close(fd);
    return -1;
}

/* Wait for events on fd until the deadline: 1 ready, 0 timed out, -1 error. */
static int req_wait(int fd, short events, uint64_t deadline)
{
    struct pollfd pfd = {fd, events, 0};
    int rc;

    for (;;) {
        rc = poll(&pfd, 1, ms_left(deadline));
        if (rc >= 0 || errno != EINTR)
            return rc;
    }
}

int ipc_request(const char *path, const char *req, char *reply, size_t replylen, int timeout_ms,
                char *err, size_t errlen)
{
    struct sockaddr_un sa;
    uint64_t deadline;
    size_t reqlen, used = 0;
    ssize_t n;
    int fd, rc;

    if (reply == NULL || replylen == 0) {
        err_set(err, errlen, "no room for a reply from %s", path ? path : "(null)");
        return -1;
    }
    reply[0] = '\0';
    if (ipc_addr(path, &sa) < 0)
        return addr_err(path, err, errlen);
    reqlen = req ? strlen(req) : 0;
    if (reqlen == 0 || reqlen > IPC_MSG_MAX) {
        err_set(err, errlen, "request to %s is %s", path, reqlen ? "too long" : "empty");
        return -1;
    }
    deadline = timeout_ms < 0 ? UINT64_MAX : now_ms() + (uint64_t)timeout_ms;

    if ((fd = req_connect(path, &sa, deadline, err, errlen)) < 0)
        return -1;

    while (ipc_send(fd, req, reqlen) < 0) {
        if (errno != EAGAIN) {
            err_set(err, errlen, "cannot send to %s: %s", path, strerror(errno));
            goto fail;
        }
        if ((rc = req_wait(fd, POLLOUT, deadline)) <= 0)
            goto wait_failed;
    }

    for (;;) {
        if ((rc = req_wait(fd, POLLIN, deadline)) <= 0)
            goto wait_failed;
        n = ipc_recv(fd, reply + used, replylen - 1 - used);
        if (n == 0)
            break;
        if (n < 0 && errno == EAGAIN)
            continue;
        if (n < 0 && errno == EMSGSIZE) {
            err_set(err, errlen, "reply from %s is too long (max %zu bytes)", path, replylen - 1);
            goto fail;
        }
        if (n < 0) {
            err_set(err, errlen, "cannot read from %s: %s", path, strerror(errno));
            goto fail;
        }
        used += (size_t)n;
    }
    reply[used] = '\0';
    close(fd);
    return 0;

wait_failed:
    if (rc == 0)
        err_set(err, errlen, "timed out waiting for %s", path);
    else
        err_set(err, errlen, "cannot wait for %s: %s", path, strerror(errno));
fail:
    reply[used] = '\0';
    close(fd);
    return -1;
}

int ipc_datagram_socket(void)
{
    return socket(AF_UNIX, SOCK_DGRAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
}

int ipc_notify_from(int fd, const char *path, const void *msg, size_t len)
{
    struct sockaddr_un sa;
    ssize_t n;

    if (len > IPC_MSG_MAX) {
        errno = EMSGSIZE;
        return -1;
    }
    if (ipc_addr(path, &sa) < 0)
        return -1;
    do
        n = sendto(fd, msg, len, MSG_NOSIGNAL, (struct sockaddr *)&sa, sizeof sa);
    while (n < 0 && errno == EINTR);
    return n < 0 ? -1 : 0;
}

int ipc_notify(const char *path, const void *msg, size_t len)
{
    int fd = ipc_datagram_socket(), rc, saved;

    if (fd < 0)
        return -1;
    rc = ipc_notify_from(fd, path, msg, len);
    saved = errno;
    close(fd);
    errno = saved;
    return rc;
}
