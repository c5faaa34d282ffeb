/*
 * imapd - IMAP4rev1 and IMAP4rev2 access to the users' mailboxes.
 *
 * SYNOPSIS
 *	imapd -c FILE       (started by master with its listening sockets)
 *
 * DESCRIPTION
 *	One event loop per process serves many connections; an idle one costs
 *	a few kilobytes.  Ports: imap_port (STARTTLS) and imaps_port (implicit
 *	TLS).  Passwords only over TLS unless from loopback or with
 *	imap_allow_plaintext_auth = yes (LOGINDISABLED is advertised then).
 *	Connections per client address (imap_client_connection_limit) and per
 *	user and address (imap_user_connection_limit) are counted across all
 *	imapd processes.  New mail and changes from other sessions reach IDLE
 *	sessions through notify.c.  See imapd.h for the files.
 */
#include <stdlib.h>
#include <string.h>

#include "imapd.h"
#include "mailcore/auth.h"
#include "mailcore/conf.h"
#include "mailcore/service.h"

struct imap_server *imap_server_new(struct service *svc)
{
    struct imap_server *srv = calloc(1, sizeof *srv);

    if (srv == NULL)
        return NULL;
    srv->svc = svc;
    srv->limits = (struct imap_limits){.command_max = IMAP_LINE_MAX,
                                       .literal_max = IMAP_LINE_MAX,
                                       .args_max = 10000,
                                       .depth_max = 32};
    srv->ip_limit = (size_t)conf_uint(svc->conf, "imap_client_connection_limit");
    srv->user_limit = (size_t)conf_uint(svc->conf, "imap_user_connection_limit");
    srv->notify_fd = -1;
    notify_open(srv);
    return srv;
}

/* In the middle of a command (a literal coming in, a FETCH streaming, a
 * login delay): BYE now would cut it, or land inside a literal. */
static int session_busy(const struct imap_session *s)
{
    return s->fetch != NULL || s->append != NULL || s->input == IN_LITERAL ||
           s->input == IN_SKIP || s->input == IN_SKIP_LINE || s->input == IN_APPEND ||
           s->input == IN_BUSY;
}

/* Stop: idle sessions (waiting for a command, in IDLE) get BYE now; a
 * busy one when its command is done (imap_command_done). */
void imap_server_stop(struct imap_server *srv)
{
    struct imap_session *s, *next;

    srv->stopping = 1;
    for (s = srv->sessions; s; s = next) {
        next = s->next;
        if (!session_busy(s))
            imap_session_close(s, "Server shutting down");
    }
}

void imap_server_free(struct imap_server *srv)
{
    notify_close(srv);
    free(srv);
}

static void on_accept(struct service *svc, const struct service_listener *l, int fd,
                      const char *addr, void *arg)
{
    (void)svc;
    imap_server_accept(arg, fd, addr, l->implicit_tls);
}

static void on_stop(struct service *svc, void *arg)
{
    (void)svc;
    imap_server_stop(arg);
}

int main(int argc, char **argv)
{
    struct service svc;
    struct imap_server *srv;
    int status;

    service_init(&svc, "imapd", argc, argv, SERVICE_DB);
    if ((srv = imap_server_new(&svc)) == NULL)
        log_fatal("out of memory");
    svc.on_accept = on_accept;
    svc.on_stop = on_stop;
    svc.arg = srv;
    status = service_run(&svc);
    imap_server_free(srv);
    service_free(&svc);
    return status;
}
