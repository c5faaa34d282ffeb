/*
 * master.h - what the parts of master share: the service table, listeners,
 * children and the running state.
 *
 * master (see main.c for the whole story) binds every listener as root and
 * runs each daemon of each enabled service, restarting those that die.
 */
#ifndef MASTER_H
#define MASTER_H

#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

#include "mailcore/service.h"

struct conf;
struct ev_loop;
struct ev_timer;

#define MASTER_LISTEN_MAX 16
#define MASTER_CHILD_MAX 256

struct listener {
    int fd;
    size_t service;             /* index in service_defs */
    const char *fd_name;
    char addr[64];              /* text address */
    int port;
};

/* DRAINING: an old generation after a reload (SIGUSR2: no new sessions,
 * the open ones go on); STOPPING: asked to stop (SIGTERM). */
enum child_state { CHILD_RUNNING, CHILD_DRAINING, CHILD_STOPPING };

struct child {
    pid_t pid;
    unsigned region;            /* its anvil region */
    size_t service;
    unsigned generation;
    enum child_state state;
    uint64_t started_ms;
    uint64_t draining_ms;       /* when it was told to drain */
};

/* Per service: restart bookkeeping. */
struct service_state {
    struct master *m;
    size_t index;               /* in service_defs */
    int enabled;
    unsigned workers;
    unsigned quick_fails;       /* consecutive deaths soon after start */
    struct ev_timer *restart;   /* pending restart, or NULL */
};

struct master {
    struct conf *conf;
    int conf_fd;                /* sealed memfd: the text of conf, for the daemons */
    int anvil_fd;               /* shared connection counts (anvil.h) */
    int authcache_fd;           /* shared login cache (auth.h) */
    struct anvil *anvil;
    const char *conf_path;
    struct ev_loop *ev;
    struct listener listeners[MASTER_LISTEN_MAX];
    size_t nlisteners;
    struct child children[MASTER_CHILD_MAX];
    size_t nchildren;
    struct service_state services[8];
    unsigned generation;
    int stopping;
    int control_fd;
    int pid_fd;
    struct ev_timer *kill_timer;
    int exit_status;
};

/* services.c */
int services_configure(struct master *m, const struct conf *c, char *err, size_t errlen);

/* listeners.c: bind every listener of c; keeps fds of old that match. */
int listeners_bind(const struct conf *c, struct listener *old, size_t nold,
                   struct listener *out, size_t *nout, char *err, size_t errlen);
void listeners_close(struct listener *l, size_t n);

/* children.c */
void children_start_all(struct master *m);
/* Reload: the generation's daemons take no new sessions and exit when
 * their last one ends; after shutdown_timeout they are asked to stop. */
void children_drain_generation(struct master *m, unsigned generation);
void children_stop_all(struct master *m);
void children_on_sigchld(struct master *m);
void children_cancel_restarts(struct master *m);
size_t children_status(const struct master *m, char *buf, size_t len);

/* control.c */
int control_open(struct master *m, char *err, size_t errlen);
void control_close(struct master *m);
void notify_systemd(const char *state);

/* main.c */
int master_reload(struct master *m, char *err, size_t errlen);
void master_stop(struct master *m);

#endif
