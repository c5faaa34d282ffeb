/*
 * notify.c - imapd's side of mailbox-change notification and IDLE.
 *
 * Each imapd process listens on its own datagram socket (libmailcore's
 * notify.h).  "mailbox N" wakes every IDLE session of this process that
 * has mailbox N selected: its view is synced and the untagged EXISTS,
 * EXPUNGE and FETCH responses go out at once.  A timer re-checks IDLE
 * sessions every few seconds in case a datagram was lost.
 */
#include <errno.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

#include "imapd.h"
#include "mailcore/conf.h"
#include "mailcore/ev.h"
#include "mailcore/ipc.h"
#include "mailcore/notify.h"
#include "mailcore/service.h"

#define RECHECK_MS 5000

void idle_wake(struct imap_session *s)
{
    if (s->input == IN_IDLE && s->state == IS_SELECTED && s->view)
        view_sync(s, 1);
}

static void wake_mailbox(struct imap_server *srv, uint32_t id)
{
    struct imap_session *s, *next;

    for (s = srv->sessions; s; s = next) {
        next = s->next;
        if (s->view && s->view->mailbox_id == id)
            idle_wake(s);
    }
}

static void on_notify(struct ev_loop *ev, int fd, int events, void *arg)
{
    struct imap_server *srv = arg;
    char msg[IPC_MSG_MAX];
    uint32_t id;
    ssize_t n;

    (void)ev, (void)events;
    for (int i = 0; i < 256 && (n = ipc_recv(fd, msg, sizeof msg)) > 0; i++)
        if (notify_parse(msg, (size_t)n, &id) == 0)
            wake_mailbox(srv, id);
}

static void on_recheck(struct ev_loop *ev, void *arg)
{
    struct imap_server *srv = arg;
    struct imap_session *s, *next;

    for (s = srv->sessions; s; s = next) {
        next = s->next;
        idle_wake(s);
    }
    /* Flag changes and \Recent claims were committed lazily: on disk now. */
    if (db_sync(srv->svc->db) != 0)
        log_warn("lmdb sync failed");
    srv->recheck = ev_timer_add(ev, RECHECK_MS, on_recheck, srv);
}

int notify_open(struct imap_server *srv)
{
    char err[256];

    srv->notify_fd = notify_listen(conf_str(srv->svc->conf, "run_directory"), "imapd",
                                   srv->notify_dir, sizeof srv->notify_dir, err, sizeof err);
    if (srv->notify_fd < 0) {
        log_warn("mailbox notifications off: %s", err);
        srv->notify_dir[0] = '\0';
    } else if (ev_fd_add(srv->svc->ev, srv->notify_fd, EV_READ, on_notify, srv) < 0) {
        log_warn("mailbox notifications off: %s", strerror(errno));
    }
    srv->recheck = ev_timer_add(srv->svc->ev, RECHECK_MS, on_recheck, srv);
    srv->notify = notify_sender_new(conf_str(srv->svc->conf, "run_directory"));
    return 0;
}

void notify_close(struct imap_server *srv)
{
    notify_sender_free(srv->notify);
    srv->notify = NULL;
    if (srv->recheck)
        ev_timer_cancel(srv->svc->ev, srv->recheck);
    srv->recheck = NULL;
    if (srv->notify_fd >= 0) {
        ev_fd_del(srv->svc->ev, srv->notify_fd);
        close(srv->notify_fd);
        srv->notify_fd = -1;
        unlink(srv->notify_dir);
    }
}

void notify_mailbox(struct imap_server *srv, uint32_t mailbox_id)
{
    notify_send(srv->notify, &mailbox_id, 1);
}
