/*
 * relayq - the outbound queue manager: hands queued mail to the relay.
 *
 * SYNOPSIS
 *	relayq -c FILE      (started by master when submission is enabled)
 *
 * DESCRIPTION
 *	submitd writes each message for remote recipients into
 *	queue_directory (queue.h) and wakes relayq with a "wake" datagram on
 *	run_directory/private/relayq.sock; "flush" (mailctl queue flush) makes
 *	every deferred entry due now.  relayq scans env/ at start, every 60 s,
 *	on each datagram and when a worker ends, and hands due entries to
 *	forked delivery workers (worker.c: at most 4 at once, up to 20 entries
 *	each over one SMTP session with mailserver_host).  The parent only
 *	schedules, reaps workers, expires entries older than
 *	max_queue_lifetime and turns bounced recipients into a DSN in the
 *	sender's INBOX (bounce.c); it never waits on the network.
 *
 *	mailserver_password_file is read as root before the privilege drop
 *	(service_set_pre_drop); the password is never logged.
 */
#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdio.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "mailcore/conf.h"
#include "mailcore/ev.h"
#include "mailcore/ipc.h"
#include "mailcore/log.h"
#include "mailcore/service.h"
#include "relayq.h"

static char password[SMTP_CLIENT_CRED_MAX + 1];

/* Root-only: read the relay password from mailserver_password_file. */
static void read_password(struct service *svc)
{
    const char *path = conf_str(svc->conf, "mailserver_password_file");
    ssize_t n;
    int fd;

    snprintf(password, sizeof password, "%s", conf_str(svc->conf, "mailserver_password"));
    if (path[0] == '\0')
        return;
    fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0)
        log_fatal("mailserver_password_file %s: %s", path, strerror(errno));
    n = read(fd, password, sizeof password - 1);
    close(fd);
    if (n < 0)
        log_fatal("mailserver_password_file %s: %s", path, strerror(errno));
    password[n] = '\0';
    password[strcspn(password, "\r\n")] = '\0';
}

static void on_sock(struct ev_loop *ev, int fd, int events, void *arg)
{
    struct relayq *q = arg;
    char buf[128];
    ssize_t n;

    (void)ev;
    (void)events;
    while ((n = recv(fd, buf, sizeof buf - 1, MSG_DONTWAIT)) > 0) {
        buf[n] = '\0';
        if (strcmp(buf, "flush") == 0)
            q->flush = 1;
        q->woken = 1;
    }
    relayq_scan_soon(q, 0);
}

void relayq_bind(struct relayq *q)
{
    char err[1024];

    if (q->sock >= 0 || q->stopping)
        return;
    q->sock = ipc_listen(q->sock_path, SOCK_DGRAM, 0660, err, sizeof err);
    if (q->sock < 0) {
        log_warn("%s (will retry)", err);
        return;
    }
    if (ev_fd_add(q->svc->ev, q->sock, EV_READ, on_sock, q) < 0)
        log_fatal("cannot watch %s: %s", q->sock_path, strerror(errno));
}

static void on_child(struct ev_loop *ev, int signo, void *arg)
{
    (void)ev;
    (void)signo;
    relayq_reap(arg);
}

static void on_stop(struct service *svc, void *arg)
{
    struct relayq *q = arg;

    (void)svc;
    q->stopping = 1;
    if (q->sock >= 0) {
        ev_fd_del(q->svc->ev, q->sock);
        close(q->sock);
        q->sock = -1;
    }
    if (q->timer) {
        ev_timer_cancel(q->svc->ev, q->timer);
        q->timer = NULL;
    }
}

int main(int argc, char **argv)
{
    struct service svc;
    struct relayq q;
    char err[1024];
    size_t swept;
    int status;

    service_set_pre_drop(read_password);
    service_init(&svc, "relayq", argc, argv, SERVICE_DB);
    memset(&q, 0, sizeof q);
    q.svc = &svc;
    q.sock = -1;
    q.queue_dir = conf_str(svc.conf, "queue_directory");
    q.lifetime = conf_uint(svc.conf, "max_queue_lifetime");
    q.cfg.host = conf_str(svc.conf, "mailserver_host");
    q.cfg.port = conf_port(svc.conf, "mailserver_port");
    q.cfg.implicit_tls = conf_bool(svc.conf, "force_ssl");
    q.cfg.disable_starttls = conf_bool(svc.conf, "disable_starttls");
    q.cfg.ca_file = conf_str(svc.conf, "relay_ca_file");
    q.cfg.user = conf_str(svc.conf, "mailserver_user");
    q.cfg.password = password;
    q.cfg.helo = conf_str(svc.conf, "myhostname");
    snprintf(q.sock_path, sizeof q.sock_path, "%s/private/relayq.sock",
             conf_str(svc.conf, "run_directory"));
    if (queue_init(q.queue_dir, err, sizeof err) < 0)
        log_fatal("%s", err);
    if ((swept = queue_sweep(q.queue_dir, RELAYQ_SWEEP_AGE)) > 0)
        log_info("removed %zu files a crash left in %s", swept, q.queue_dir);
    svc.on_stop = on_stop;
    svc.arg = &q;
    if (ev_signal_add(svc.ev, SIGCHLD, on_child, &q) < 0)
        log_fatal("cannot watch SIGCHLD: %s", strerror(errno));
    relayq_bind(&q);
    relayq_scan_soon(&q, 0);
    status = service_run(&svc);
    if (q.sock >= 0)
        close(q.sock);
    explicit_bzero(password, sizeof password);
    service_free(&svc);
    return status;
}
