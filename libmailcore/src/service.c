/*
 * service.c - the start-up, privilege drop, listeners and graceful stop
 * that every daemon shares.  See service.h.
 */
#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "mailcore/anvil.h"
#include "mailcore/auth.h"
#include "mailcore/conf.h"
#include "mailcore/db.h"
#include "mailcore/ev.h"
#include "mailcore/log.h"
#include "mailcore/privsep.h"
#include "mailcore/service.h"
#include "mailcore/store.h"
#include "mailcore/tls.h"

#define LISTEN_FDS_START 3

static void usage(const char *name)
{
    fprintf(stderr, "usage: %s [-c FILE]\n"
                    "A mailcore daemon: started by master with its listening sockets.\n",
            name);
    exit(2);
}

/* The config text master validated (MAILCORE_CONF_FD), else the file. */
static void load_conf(struct service *svc)
{
    const char *fdtext = getenv("MAILCORE_CONF_FD");
    char err[1024];
    int r;

    svc->conf = conf_new();
    if (svc->conf == NULL)
        log_fatal("out of memory");
    if (fdtext != NULL) {
        int fd = atoi(fdtext);
        r = conf_load_fd(svc->conf, svc->conf_path, fd, err, sizeof err);
        close(fd);
        unsetenv("MAILCORE_CONF_FD");
    } else {
        r = conf_load_file(svc->conf, svc->conf_path, err, sizeof err);
    }
    if (r < 0 || conf_validate(svc->conf, err, sizeof err) < 0)
        log_fatal("%s", err);
}

/* LISTEN_FDS / LISTEN_PID / LISTEN_FDNAMES, as systemd passes them. */
static void take_listeners(struct service *svc)
{
    const char *fds = getenv("LISTEN_FDS"), *pid = getenv("LISTEN_PID");
    const char *names = getenv("LISTEN_FDNAMES");
    long n;

    if (fds == NULL)
        return;
    if (pid == NULL || strtol(pid, NULL, 10) != (long)getpid())
        log_fatal("LISTEN_PID does not name this process");
    n = strtol(fds, NULL, 10);
    if (n < 0 || n > SERVICE_LISTEN_MAX)
        log_fatal("LISTEN_FDS=%s is out of range", fds);
    for (long i = 0; i < n; i++) {
        struct service_listener *l = &svc->listeners[svc->nlisteners++];
        size_t len = 0;

        l->fd = LISTEN_FDS_START + (int)i;
        if (names != NULL) {
            len = strcspn(names, ":");
            snprintf(l->name, sizeof l->name, "%.*s", (int)len, names);
            names += len + (names[len] == ':');
        }
        len = strlen(l->name);
        l->implicit_tls = strcmp(l->name, "submissions") == 0 || strcmp(l->name, "imaps") == 0;
        if (fcntl(l->fd, F_SETFD, FD_CLOEXEC) < 0 ||
            fcntl(l->fd, F_SETFL, fcntl(l->fd, F_GETFL) | O_NONBLOCK) < 0)
            log_fatal("listening fd %d: %s", l->fd, strerror(errno));
    }
    unsetenv("LISTEN_FDS");
    unsetenv("LISTEN_PID");
    unsetenv("LISTEN_FDNAMES");
}

/* The shared connection counts master passes (MAILCORE_ANVIL_FD/_REGION). */
static void open_anvil(struct service *svc)
{
    const char *fd = getenv("MAILCORE_ANVIL_FD"), *region = getenv("MAILCORE_ANVIL_REGION");
    char err[256];

    if (fd == NULL || region == NULL)
        return;
    svc->anvil = anvil_map(atoi(fd), err, sizeof err);
    if (svc->anvil == NULL)
        log_fatal("%s", err);
    anvil_use_region(svc->anvil, (unsigned)atoi(region));
    close(atoi(fd));
    unsetenv("MAILCORE_ANVIL_FD");
    unsetenv("MAILCORE_ANVIL_REGION");
}

/* The login cache shared by the daemons (MAILCORE_AUTHCACHE_FD). */
static void open_authcache(void)
{
    const char *fd = getenv("MAILCORE_AUTHCACHE_FD");
    char err[256];

    if (fd == NULL)
        return;
    if (auth_cache_attach(atoi(fd), err, sizeof err) < 0)
        log_fatal("%s", err);
    close(atoi(fd));
    unsetenv("MAILCORE_AUTHCACHE_FD");
}

static void open_tls(struct service *svc)
{
    const char *cert = conf_str(svc->conf, "tls_cert_file");
    char err[1024];

    if (cert[0] == '\0')
        return;
    svc->tls = tls_server_ctx(cert, conf_str(svc->conf, "tls_key_file"), err, sizeof err);
    if (svc->tls == NULL)
        log_fatal("%s", err);
}

static void open_store(struct service *svc)
{
    char err[1024];

    svc->db = db_open(conf_str(svc->conf, "data_directory"), 1, (uid_t)-1, (gid_t)-1, err,
                      sizeof err);
    if (svc->db == NULL)
        log_fatal("%s", err);
    svc->store = store_open(svc->db, conf_str(svc->conf, "data_directory"), err, sizeof err);
    if (svc->store == NULL)
        log_fatal("%s", err);
    store_set_quota_default(svc->store, conf_uint(svc->conf, "user_quota"));
}

int service_peer_addr(int fd, char *buf, size_t len)
{
    struct sockaddr_storage ss;
    socklen_t sl = sizeof ss;

    if (getpeername(fd, (struct sockaddr *)&ss, &sl) < 0)
        return -1;
    if (ss.ss_family == AF_INET) {
        inet_ntop(AF_INET, &((struct sockaddr_in *)&ss)->sin_addr, buf, (socklen_t)len);
    } else if (ss.ss_family == AF_INET6) {
        const struct in6_addr *a = &((struct sockaddr_in6 *)&ss)->sin6_addr;
        if (IN6_IS_ADDR_V4MAPPED(a))
            inet_ntop(AF_INET, &a->s6_addr[12], buf, (socklen_t)len);
        else
            inet_ntop(AF_INET6, a, buf, (socklen_t)len);
    } else {
        snprintf(buf, len, "unknown");
    }
    return 0;
}

int service_is_loopback(const char *addr)
{
    return strncmp(addr, "127.", 4) == 0 || strcmp(addr, "::1") == 0;
}

static void on_listener(struct ev_loop *ev, int fd, int events, void *arg)
{
    struct service *svc = arg;
    const struct service_listener *l = NULL;
    char addr[SERVICE_ADDR_MAX];

    (void)ev;
    (void)events;
    for (size_t i = 0; i < svc->nlisteners; i++)
        if (svc->listeners[i].fd == fd)
            l = &svc->listeners[i];
    /* Accept a bounded batch per turn so one busy listener cannot starve
     * the sessions already open. */
    for (int i = 0; i < 64 && l != NULL && !svc->stopping; i++) {
        int c = accept4(fd, NULL, NULL, SOCK_NONBLOCK | SOCK_CLOEXEC);
        if (c < 0) {
            if (errno != EAGAIN && errno != EWOULDBLOCK && errno != EINTR &&
                errno != ECONNABORTED)
                log_warn("accept on %s: %s", l->name, strerror(errno));
            return;
        }
        if (service_peer_addr(c, addr, sizeof addr) < 0)
            snprintf(addr, sizeof addr, "unknown");
        if (svc->on_accept)
            svc->on_accept(svc, l, c, addr, svc->arg);
        else
            close(c);
    }
}

static void maybe_done(struct service *svc)
{
    if (svc->stopping && svc->sessions == 0)
        ev_stop(svc->ev);
}

static void close_listeners(struct service *svc)
{
    for (size_t i = 0; i < svc->nlisteners; i++)
        if (svc->listeners[i].fd >= 0) {
            ev_fd_del(svc->ev, svc->listeners[i].fd);
            close(svc->listeners[i].fd);
            svc->listeners[i].fd = -1;
        }
}

/* Stop (SIGTERM, SIGINT; or a drain whose last session ended): no new
 * sessions, and the daemon's on_stop winds down the open ones. */
static void stop(struct service *svc)
{
    if (svc->stopping)
        return;
    svc->stopping = 1;
    close_listeners(svc);
    if (svc->on_stop)
        svc->on_stop(svc, svc->arg);
    maybe_done(svc);
}

static void on_term(struct ev_loop *ev, int signo, void *arg)
{
    (void)ev, (void)signo;
    stop(arg);
}

/* Drain (SIGUSR2, master's reload): a new generation took over the
 * listeners; the open sessions go on as if nothing happened, and the
 * process stops once the last one has ended (or master says stop). */
static void on_drain(struct ev_loop *ev, int signo, void *arg)
{
    struct service *svc = arg;

    (void)ev, (void)signo;
    if (svc->stopping || svc->draining)
        return;
    svc->draining = 1;
    close_listeners(svc);
    if (svc->sessions == 0)
        stop(svc);
}

void service_session_open(struct service *svc)
{
    svc->sessions++;
}

void service_session_close(struct service *svc)
{
    if (svc->sessions > 0)
        svc->sessions--;
    if (svc->draining && svc->sessions == 0)
        stop(svc);
    maybe_done(svc);
}

static service_pre_drop_cb *pre_drop;

void service_set_pre_drop(service_pre_drop_cb *cb)
{
    pre_drop = cb;
}

void service_init(struct service *svc, const char *name, int argc, char **argv, unsigned flags)
{
    const char *opt_c = NULL;
    char err[1024];
    int ch, r;

    memset(svc, 0, sizeof *svc);
    svc->name = name;
    log_init(name);
    while ((ch = getopt(argc, argv, "c:")) != -1) {
        if (ch != 'c')
            usage(name);
        opt_c = optarg;
    }
    if (optind != argc)
        usage(name);
    svc->conf_path = conf_path_choose(opt_c);
    signal(SIGPIPE, SIG_IGN);
    load_conf(svc);
    take_listeners(svc);
    open_anvil(svc);
    open_authcache();
    open_tls(svc);
    if (flags & SERVICE_DB)
        open_store(svc);
    if (pre_drop)
        pre_drop(svc);
    r = privsep_drop(conf_str(svc->conf, "mail_creator"), err, sizeof err);
    if (r < 0)
        log_fatal("cannot drop privileges: %s", err);
    svc->unprivileged = r == 1;
    if (svc->unprivileged)
        log_warn("running as uid %u, not root: privileges were not changed "
                 "(development mode)", (unsigned)getuid());
    if ((svc->ev = ev_new()) == NULL)
        log_fatal("cannot create event loop: %s", strerror(errno));
    if (ev_signal_add(svc->ev, SIGTERM, on_term, svc) < 0 ||
        ev_signal_add(svc->ev, SIGINT, on_term, svc) < 0 ||
        ev_signal_add(svc->ev, SIGUSR2, on_drain, svc) < 0)
        log_fatal("cannot watch signals: %s", strerror(errno));
    signal(SIGHUP, SIG_IGN);
}

int service_run(struct service *svc)
{
    for (size_t i = 0; i < svc->nlisteners; i++)
        if (ev_fd_add(svc->ev, svc->listeners[i].fd, EV_READ | EV_EXCLUSIVE, on_listener, svc) < 0)
            log_fatal("cannot watch listener %s: %s", svc->listeners[i].name, strerror(errno));
    if (ev_run(svc->ev) < 0) {
        log_error("event loop: %s", strerror(errno));
        return 1;
    }
    return 0;
}

void service_free(struct service *svc)
{
    for (size_t i = 0; i < svc->nlisteners; i++)
        if (svc->listeners[i].fd >= 0)
            close(svc->listeners[i].fd);
    if (svc->store)
        store_close(svc->store);
    if (svc->db)
        db_close(svc->db);
    if (svc->tls)
        SSL_CTX_free(svc->tls);
    anvil_unmap(svc->anvil);
    ev_free(svc->ev);
    conf_free(svc->conf);
    memset(svc, 0, sizeof *svc);
}
