/*
 * test_ipc.c - Unix-socket messages: listen, request/reply with a forked
 * server, datagram notification, size limits, stale and foreign files.
 */
#include "check.h"
#include "mailcore/ipc.h"
#include "mailcore/notify.h"

#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

static char tmpdir[64];

static const char *path_in_tmp(const char *name, char *buf, size_t len)
{
    snprintf(buf, len, "%s/%s", tmpdir, name);
    return buf;
}

static long long mono_ms(void)
{
    struct timespec ts;

    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (long long)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

/*
 * A one-shot server in a child: accept one connection, check the request,
 * answer with the given messages, close.  Exit status 0 when all went well.
 */
static pid_t fork_server(int lfd, const char *expect, const char *const *answers)
{
    pid_t pid = fork();

    if (pid == 0) {
        struct pollfd pfd = {lfd, POLLIN, 0};
        char req[IPC_MSG_MAX];
        ssize_t n;
        int c;

        if (poll(&pfd, 1, 5000) != 1)
            _exit(10);
        if ((c = accept4(lfd, NULL, NULL, SOCK_CLOEXEC)) < 0)
            _exit(11);
        n = ipc_recv(c, req, sizeof req);
        if (n != (ssize_t)strlen(expect) || memcmp(req, expect, (size_t)n) != 0)
            _exit(12);
        for (; *answers != NULL; answers++)
            if (ipc_send(c, *answers, strlen(*answers)) < 0)
                _exit(13);
        close(c);
        _exit(0);
    }
    return pid;
}

static int wait_ok(pid_t pid)
{
    int status;

    if (pid < 0 || waitpid(pid, &status, 0) != pid)
        return 0;
    return WIFEXITED(status) && WEXITSTATUS(status) == 0;
}

static void test_ipc_request_round_trip_with_forked_server(void)
{
    const char *answers[] = {"hello ", "world", NULL};
    char path[128], reply[256], err[256] = "";
    struct stat st;
    int lfd, fl;
    pid_t pid;

    path_in_tmp("master.sock", path, sizeof path);
    lfd = ipc_listen(path, SOCK_SEQPACKET, 0660, err, sizeof err);
    CHECK(lfd >= 0);
    if (lfd < 0) {
        fprintf(stderr, "%s\n", err);
        return;
    }
    /* Listening socket: non-blocking, close-on-exec, the mode asked for. */
    fl = fcntl(lfd, F_GETFL);
    CHECK(fl >= 0 && (fl & O_NONBLOCK));
    CHECK(fcntl(lfd, F_GETFD) & FD_CLOEXEC);
    CHECK_INT(stat(path, &st), 0);
    CHECK(S_ISSOCK(st.st_mode));
    CHECK_INT(st.st_mode & 07777, 0660);

    pid = fork_server(lfd, "status", answers);
    CHECK_INT(ipc_request(path, "status", reply, sizeof reply, 5000, err, sizeof err), 0);
    CHECK_STR(reply, "hello world");
    CHECK(wait_ok(pid));
    close(lfd);
    unlink(path);
}

static void test_ipc_request_reports_missing_socket(void)
{
    char path[128], reply[64], err[256] = "";

    path_in_tmp("nobody.sock", path, sizeof path);
    CHECK_INT(ipc_request(path, "status", reply, sizeof reply, 1000, err, sizeof err), -1);
    CHECK_HAS(err, "cannot connect to ");
    CHECK_HAS(err, path);
    CHECK_HAS(err, "No such file or directory");
    CHECK_STR(reply, "");
}

static void test_ipc_request_times_out_when_server_silent(void)
{
    char path[128], reply[64], err[256] = "";
    long long t0, elapsed;
    int lfd;

    path_in_tmp("silent.sock", path, sizeof path);
    lfd = ipc_listen(path, SOCK_SEQPACKET, 0600, err, sizeof err);
    CHECK(lfd >= 0);
    if (lfd < 0)
        return;
    /* The backlog takes the connection; nobody ever accepts or answers. */
    t0 = mono_ms();
    CHECK_INT(ipc_request(path, "status", reply, sizeof reply, 300, err, sizeof err), -1);
    elapsed = mono_ms() - t0;
    CHECK_HAS(err, "timed out waiting for ");
    CHECK_HAS(err, path);
    CHECK(elapsed >= 290 && elapsed < 3000);
    close(lfd);
    unlink(path);
}

static void test_ipc_request_rejects_reply_larger_than_buffer(void)
{
    const char *answers[] = {"0123456789", "0123456789", "0123456789", NULL};
    char path[128], reply[25], err[256] = "";
    pid_t pid;
    int lfd;

    path_in_tmp("chatty.sock", path, sizeof path);
    lfd = ipc_listen(path, SOCK_SEQPACKET, 0600, err, sizeof err);
    CHECK(lfd >= 0);
    if (lfd < 0)
        return;
    pid = fork_server(lfd, "dump", answers);
    CHECK_INT(ipc_request(path, "dump", reply, sizeof reply, 5000, err, sizeof err), -1);
    CHECK_HAS(err, "too long");
    CHECK(wait_ok(pid));
    close(lfd);
    unlink(path);
}

static void test_ipc_notify_datagram_received(void)
{
    char path[128], buf[IPC_MSG_MAX], err[256] = "";
    struct pollfd pfd;
    int fd;

    path_in_tmp("notify.sock", path, sizeof path);
    fd = ipc_listen(path, SOCK_DGRAM, 0660, err, sizeof err);
    CHECK(fd >= 0);
    if (fd < 0)
        return;
    CHECK_INT(ipc_notify(path, "mailbox 42", 10), 0);
    CHECK_INT(ipc_notify(path, "wake", 4), 0);
    pfd.fd = fd;
    pfd.events = POLLIN;
    CHECK_INT(poll(&pfd, 1, 1000), 1);
    CHECK_INT(ipc_recv(fd, buf, sizeof buf), 10);
    CHECK(memcmp(buf, "mailbox 42", 10) == 0);
    CHECK_INT(ipc_recv(fd, buf, sizeof buf), 4);
    CHECK(memcmp(buf, "wake", 4) == 0);
    /* Nothing more: the non-blocking socket says so instead of waiting. */
    CHECK_INT(ipc_recv(fd, buf, sizeof buf), -1);
    CHECK_INT(errno, EAGAIN);
    close(fd);
    unlink(path);
}

static void test_ipc_notify_drops_without_blocking_when_receiver_full(void)
{
    char path[128], err[256] = "";
    int fd, i, rc = 0;

    path_in_tmp("full.sock", path, sizeof path);
    fd = ipc_listen(path, SOCK_DGRAM, 0600, err, sizeof err);
    CHECK(fd >= 0);
    if (fd < 0)
        return;
    for (i = 0; i < 100000 && (rc = ipc_notify(path, "mailbox 1", 9)) == 0; i++)
        ;
    CHECK_INT(rc, -1);
    CHECK_INT(errno, EAGAIN);
    close(fd);
    unlink(path);
}

static void test_ipc_notify_to_missing_socket_fails(void)
{
    char path[128];

    path_in_tmp("gone.sock", path, sizeof path);
    CHECK_INT(ipc_notify(path, "wake", 4), -1);
    CHECK(errno == ENOENT || errno == ECONNREFUSED);
}

static int recv_text(int fd, char *buf, size_t len)
{
    struct pollfd pfd = {.fd = fd, .events = POLLIN};
    ssize_t n;

    if (poll(&pfd, 1, 1000) != 1 || (n = ipc_recv(fd, buf, len - 1)) < 0)
        return -1;
    buf[n] = '\0';
    return 0;
}

/* A writer's notify_sender reaches every imapd socket, also one that
 * appears after its first send, and removes one whose process is gone. */
static void test_notify_sender_reaches_new_listeners_and_drops_dead_ones(void)
{
    char run[160], dir[200], p1[256], p2[256], buf[64], err[256] = "";
    const uint32_t ids[] = {7, 9}, three = 3, four = 4;
    struct notify_sender *ns;
    int fd1, fd2;

    snprintf(run, sizeof run, "%s/run", tmpdir);
    snprintf(dir, sizeof dir, "%s/private", run);
    CHECK_INT(mkdir(run, 0700), 0);
    CHECK_INT(mkdir(dir, 0700), 0);
    fd1 = notify_listen(run, "one", p1, sizeof p1, err, sizeof err);
    CHECK(fd1 >= 0);
    ns = notify_sender_new(run);
    CHECK(ns != NULL);
    notify_send(ns, ids, 2);
    CHECK_INT(recv_text(fd1, buf, sizeof buf), 0);
    CHECK_STR(buf, "mailbox 7");
    CHECK_INT(recv_text(fd1, buf, sizeof buf), 0);
    CHECK_STR(buf, "mailbox 9");

    fd2 = notify_listen(run, "two", p2, sizeof p2, err, sizeof err);
    CHECK(fd2 >= 0);
    notify_send(ns, &three, 1);
    CHECK_INT(recv_text(fd1, buf, sizeof buf), 0);
    CHECK_STR(buf, "mailbox 3");
    CHECK_INT(recv_text(fd2, buf, sizeof buf), 0);
    CHECK_STR(buf, "mailbox 3");

    close(fd2);                         /* its process is gone, the socket file stays */
    notify_send(ns, &four, 1);
    CHECK_INT(recv_text(fd1, buf, sizeof buf), 0);
    CHECK_STR(buf, "mailbox 4");
    CHECK(access(p2, F_OK) < 0);
    notify_sender_free(ns);
    close(fd1);
    unlink(p1);
    snprintf(p1, sizeof p1, "%s/%s", run, NOTIFY_SUBDIR);
    CHECK_INT(rmdir(p1), 0);
    CHECK_INT(rmdir(dir), 0);
    CHECK_INT(rmdir(run), 0);
}

static void test_ipc_oversize_message_is_emsgsize(void)
{
    static char big[IPC_MSG_MAX + 1];
    char path[128];
    int sv[2];

    memset(big, 'x', sizeof big);
    CHECK_INT(socketpair(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC, 0, sv), 0);
    errno = 0;
    CHECK_INT(ipc_send(sv[0], big, sizeof big), -1);
    CHECK_INT(errno, EMSGSIZE);
    CHECK_INT(ipc_send(sv[0], big, IPC_MSG_MAX), 0);
    errno = 0;
    CHECK_INT(ipc_notify(path_in_tmp("any.sock", path, sizeof path), big, sizeof big), -1);
    CHECK_INT(errno, EMSGSIZE);
    close(sv[0]);
    close(sv[1]);
}

static void test_ipc_recv_reports_truncated_message_as_emsgsize(void)
{
    char buf[16];
    int sv[2];

    CHECK_INT(socketpair(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC, 0, sv), 0);
    CHECK_INT(ipc_send(sv[0], "a message longer than sixteen bytes", 35), 0);
    CHECK_INT(ipc_send(sv[0], "short", 5), 0);
    errno = 0;
    CHECK_INT(ipc_recv(sv[1], buf, sizeof buf), -1);
    CHECK_INT(errno, EMSGSIZE);
    /* The next message is intact; then the end of the stream reads as 0. */
    CHECK_INT(ipc_recv(sv[1], buf, sizeof buf), 5);
    CHECK(memcmp(buf, "short", 5) == 0);
    close(sv[0]);
    CHECK_INT(ipc_recv(sv[1], buf, sizeof buf), 0);
    close(sv[1]);
}

static void test_ipc_send_refuses_empty_message(void)
{
    int sv[2];

    CHECK_INT(socketpair(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC, 0, sv), 0);
    errno = 0;
    CHECK_INT(ipc_send(sv[0], "", 0), -1);
    CHECK_INT(errno, EINVAL);
    close(sv[0]);
    close(sv[1]);
}

/* Leave a socket file behind, as a process killed before unlink would. */
static int make_stale_socket(const char *path, int type)
{
    struct sockaddr_un sa;
    int fd = socket(AF_UNIX, type | SOCK_CLOEXEC, 0);
    int rc;

    memset(&sa, 0, sizeof sa);
    sa.sun_family = AF_UNIX;
    snprintf(sa.sun_path, sizeof sa.sun_path, "%s", path);
    rc = bind(fd, (struct sockaddr *)&sa, sizeof sa);
    close(fd);
    return rc;
}

static void test_ipc_listen_replaces_stale_socket(void)
{
    const char *answers[] = {"ok", NULL};
    char path[128], reply[64], err[256] = "";
    struct stat st;
    pid_t pid;
    int lfd;

    path_in_tmp("stale.sock", path, sizeof path);
    CHECK_INT(make_stale_socket(path, SOCK_SEQPACKET), 0);
    CHECK_INT(stat(path, &st), 0);
    CHECK(S_ISSOCK(st.st_mode));
    lfd = ipc_listen(path, SOCK_SEQPACKET, 0600, err, sizeof err);
    CHECK(lfd >= 0);
    if (lfd < 0) {
        fprintf(stderr, "%s\n", err);
        return;
    }
    pid = fork_server(lfd, "ping", answers);
    CHECK_INT(ipc_request(path, "ping", reply, sizeof reply, 5000, err, sizeof err), 0);
    CHECK_STR(reply, "ok");
    CHECK(wait_ok(pid));
    close(lfd);

    /* Same for a datagram socket. */
    CHECK_INT(make_stale_socket(path_in_tmp("stale.dgram", path, sizeof path), SOCK_DGRAM), 0);
    lfd = ipc_listen(path, SOCK_DGRAM, 0600, err, sizeof err);
    CHECK(lfd >= 0);
    CHECK_INT(ipc_notify(path, "wake", 4), 0);
    if (lfd >= 0)
        close(lfd);
    unlink(path);
    unlink(path_in_tmp("stale.sock", path, sizeof path));
}

static void test_ipc_listen_refuses_socket_in_use(void)
{
    char path[128], err[256] = "";
    int a, b;

    path_in_tmp("busy.sock", path, sizeof path);
    a = ipc_listen(path, SOCK_SEQPACKET, 0600, err, sizeof err);
    CHECK(a >= 0);
    b = ipc_listen(path, SOCK_SEQPACKET, 0600, err, sizeof err);
    CHECK_INT(b, -1);
    CHECK_HAS(err, "in use");
    CHECK_HAS(err, path);
    if (b >= 0)
        close(b);
    if (a >= 0)
        close(a);
    unlink(path);
}

static void test_ipc_listen_does_not_unlink_regular_file(void)
{
    char path[128], err[256] = "", buf[16];
    struct stat st;
    int fd;

    path_in_tmp("precious.txt", path, sizeof path);
    fd = open(path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
    CHECK(fd >= 0);
    CHECK_INT(write(fd, "keep me", 7), 7);
    close(fd);

    CHECK_INT(ipc_listen(path, SOCK_SEQPACKET, 0600, err, sizeof err), -1);
    CHECK_HAS(err, path);
    CHECK_HAS(err, "not a socket");
    CHECK_INT(stat(path, &st), 0);
    CHECK(S_ISREG(st.st_mode));
    fd = open(path, O_RDONLY | O_CLOEXEC);
    CHECK(fd >= 0);
    CHECK_INT(read(fd, buf, sizeof buf), 7);
    CHECK(memcmp(buf, "keep me", 7) == 0);
    close(fd);
    unlink(path);
}

static void test_ipc_listen_rejects_path_too_long(void)
{
    char path[sizeof((struct sockaddr_un *)0)->sun_path + 32], err[512] = "";
    char reply[16];

    snprintf(path, sizeof path, "%s/", tmpdir);
    memset(path + strlen(path), 'l', sizeof path - strlen(path) - 1);
    path[sizeof path - 1] = '\0';
    CHECK_INT(ipc_listen(path, SOCK_SEQPACKET, 0600, err, sizeof err), -1);
    CHECK_HAS(err, "too long");
    CHECK_HAS(err, path);
    CHECK_INT(access(path, F_OK), -1);
    CHECK_INT(ipc_request(path, "status", reply, sizeof reply, 100, err, sizeof err), -1);
    CHECK_HAS(err, "too long");
    CHECK_INT(ipc_notify(path, "x", 1), -1);
    CHECK_INT(errno, ENAMETOOLONG);
}

int main(void)
{
    snprintf(tmpdir, sizeof tmpdir, "/tmp/test_ipc.XXXXXX");
    if (mkdtemp(tmpdir) == NULL) {
        perror("mkdtemp");
        return 1;
    }
    RUN(test_ipc_request_round_trip_with_forked_server);
    RUN(test_ipc_request_reports_missing_socket);
    RUN(test_ipc_request_times_out_when_server_silent);
    RUN(test_ipc_request_rejects_reply_larger_than_buffer);
    RUN(test_ipc_notify_datagram_received);
    RUN(test_ipc_notify_drops_without_blocking_when_receiver_full);
    RUN(test_ipc_notify_to_missing_socket_fails);
    RUN(test_notify_sender_reaches_new_listeners_and_drops_dead_ones);
    RUN(test_ipc_oversize_message_is_emsgsize);
    RUN(test_ipc_recv_reports_truncated_message_as_emsgsize);
    RUN(test_ipc_send_refuses_empty_message);
    RUN(test_ipc_listen_replaces_stale_socket);
    RUN(test_ipc_listen_refuses_socket_in_use);
    RUN(test_ipc_listen_does_not_unlink_regular_file);
    RUN(test_ipc_listen_rejects_path_too_long);
    if (rmdir(tmpdir) < 0) {
        perror(tmpdir);
        return 1;
    }
    return check_done();
}
