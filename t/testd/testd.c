/*
 * testd - a stand-in daemon for integration tests of master, built on the
 * same service skeleton as the real daemons.
 *
 * It greets every connection with one line that shows what a test needs to
 * see from outside:
 *	220 testd NAME LISTENER email_domain=VALUE users=N
 * (NAME is the name master started it as, LISTENER the socket's name, VALUE
 * the config value now in force, N the users in LMDB).  A line
 * "LOGIN LOGIN PASSWORD" is answered "OK NAME" or "NO" after checking LMDB
 * (so tests see password changes without a restart); any other input, or
 * the client closing, ends the connection.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "mailcore/auth.h"
#include "mailcore/conf.h"
#include "mailcore/db.h"
#include "mailcore/ev.h"
#include "mailcore/log.h"
#include "mailcore/service.h"

#define TESTD_SESSIONS_MAX 1024

static int session_fds[TESTD_SESSIONS_MAX];
static size_t nsessions;

static int count_user(const struct db_user *u, void *arg)
{
    (void)u;
    ++*(unsigned *)arg;
    return 0;
}

static int count_users(struct db_txn *txn, void *arg)
{
    return db_user_foreach(txn, count_user, arg);
}

static void session_end(struct service *svc, int fd)
{
    for (size_t i = 0; i < nsessions; i++)
        if (session_fds[i] == fd) {
            session_fds[i] = session_fds[--nsessions];
            break;
        }
    ev_fd_del(svc->ev, fd);
    close(fd);
    service_session_close(svc);
}

static void answer(struct service *svc, int fd, char *line)
{
    struct db_user user;
    const char *login, *password;
    char reply[128], err[256], *save = NULL;
    int n, ok;

    strtok_r(line, " \r\n", &save);
    login = strtok_r(NULL, " \r\n", &save);
    password = strtok_r(NULL, " \r\n", &save);
    if (strcmp(line, "LOGIN") != 0 || login == NULL || password == NULL)
        return;
    ok = auth_login(svc->db, login, password, &user, err, sizeof err);
    if (ok < 0)
        log_warn("login check: %s", err);
    n = ok > 0 ? snprintf(reply, sizeof reply, "OK %s\r\n", user.name)
               : snprintf(reply, sizeof reply, "NO\r\n");
    if (write(fd, reply, (size_t)n) != n)
        log_warn("write: %s", strerror(errno));
}

static void on_input(struct ev_loop *ev, int fd, int events, void *arg)
{
    char buf[512];
    ssize_t n;

    (void)ev;
    (void)events;
    n = read(fd, buf, sizeof buf - 1);
    if (n < 0 && errno == EAGAIN)
        return;
    if (n > 0) {
        buf[n] = '\0';
        answer(arg, fd, buf);
    }
    session_end(arg, fd);
}

static void on_accept(struct service *svc, const struct service_listener *l, int fd,
                      const char *addr, void *arg)
{
    char line[512], err[256];
    unsigned users = 0;
    int n;

    (void)addr;
    (void)arg;
    if (nsessions == TESTD_SESSIONS_MAX ||
        db_read(svc->db, count_users, &users, err, sizeof err) < 0) {
        close(fd);
        return;
    }
    n = snprintf(line, sizeof line, "220 testd %s %s email_domain=%s users=%u\r\n", svc->name,
                 l->name, conf_str(svc->conf, "email_domain"), users);
    if (write(fd, line, (size_t)n) != n || ev_fd_add(svc->ev, fd, EV_READ, on_input, svc) < 0) {
        close(fd);
        return;
    }
    session_fds[nsessions++] = fd;
    service_session_open(svc);
}

static void on_stop(struct service *svc, void *arg)
{
    (void)arg;
    while (nsessions > 0)
        session_end(svc, session_fds[0]);
}

int main(int argc, char **argv)
{
    struct service svc;
    const char *name = strrchr(argv[0], '/');
    int status;

    service_init(&svc, name ? name + 1 : argv[0], argc, argv, SERVICE_DB);
    svc.on_accept = on_accept;
    svc.on_stop = on_stop;
    log_info("started, %zu listeners", svc.nlisteners);
    status = service_run(&svc);
    service_free(&svc);
    return status;
}
