/*
 * service - what every daemon does before and around its protocol.
 *
 * master starts a daemon as root with its listening sockets (systemd style:
 * fds 3.. with LISTEN_FDS, LISTEN_PID and LISTEN_FDNAMES) and "-c FILE".
 * service_init() then, in this order:
 *	1. parses the command line and the config (exit 1 with the error),
 *	2. reads what only root may read: the TLS certificate and key,
 *	3. opens the LMDB environment and the store (after fork, never before),
 *	4. drops to mail_creator with no capabilities and no_new_privs,
 *	   (and maps the service-wide connection counts, anvil.h),
 *	5. sets up the event loop: listeners (EPOLLEXCLUSIVE, shared by the
 *	   workers of a service), SIGTERM for a graceful stop, SIGUSR2 for a
 *	   drain, SIGHUP ignored (master replaces its daemons on reload).
 * The daemon adds its protocol through on_accept and runs service_run().
 *
 * Graceful stop: on SIGTERM the listeners close, on_stop (if set) is called
 * so that the daemon can end idle sessions, and the loop ends when the
 * session count reaches zero.  master kills what remains after
 * shutdown_timeout.
 *
 * Drain (master's reload, which has started a new generation): on SIGUSR2
 * the listeners close and the open sessions go on untouched; when the last
 * one ends the daemon stops as above.  master sends SIGTERM to a drain
 * still running after shutdown_timeout.
 */
#ifndef MAILCORE_SERVICE_H
#define MAILCORE_SERVICE_H

#include <netinet/in.h>
#include <stddef.h>
#include <sys/socket.h>
#include <openssl/ssl.h>

#define SERVICE_LISTEN_MAX 16
#define SERVICE_ADDR_MAX 64     /* "[ipv6]:port" text */

struct conf;
struct db;
struct store;
struct ev_loop;
struct anvil;
struct service;

struct service_listener {
    int fd;
    char name[32];          /* LISTEN_FDNAMES entry: smtp, submission, submissions, imap, imaps */
    int implicit_tls;       /* names ending in 's' after the protocol: submissions, imaps */
};

/* A new connection: fd is non-blocking and close-on-exec; addr is the
 * client's address as text ("192.0.2.1", "::1"). */
typedef void service_accept_cb(struct service *svc, const struct service_listener *l, int fd,
                               const char *addr, void *arg);
typedef void service_stop_cb(struct service *svc, void *arg);

struct service {
    const char *name;               /* "smtpd" */
    const char *conf_path;
    struct conf *conf;
    struct ev_loop *ev;
    struct db *db;                  /* NULL unless SERVICE_DB */
    struct store *store;            /* NULL unless SERVICE_DB */
    SSL_CTX *tls;                   /* NULL when no certificate is configured */
    struct anvil *anvil;            /* service-wide connection counts, or NULL */
    struct service_listener listeners[SERVICE_LISTEN_MAX];
    size_t nlisteners;
    int unprivileged;               /* 1: was not root, nothing dropped */
    int stopping;
    int draining;                   /* SIGUSR2: listeners gone, sessions go on */
    size_t sessions;
    service_accept_cb *on_accept;
    service_stop_cb *on_stop;
    void *arg;
};

enum service_flags {
    SERVICE_DB = 1 << 0,            /* open the LMDB environment and the store */
};

/*
 * An optional hook run by service_init() after step 3, while the daemon is
 * still root (before the drop): for what only root may read besides the TLS
 * key, e.g. relayq's mailserver_password_file.  svc->conf is loaded.  Set
 * it before service_init(); NULL (the default) for none.
 */
typedef void service_pre_drop_cb(struct service *svc);
void service_set_pre_drop(service_pre_drop_cb *cb);

/* Steps 1-5 above; exits 1 with a log line on any failure. */
void service_init(struct service *svc, const char *name, int argc, char **argv, unsigned flags);

/* Run until stopped; returns the exit status for main(). */
int service_run(struct service *svc);

/* Sessions: count them so a graceful stop knows when it is done. */
void service_session_open(struct service *svc);
void service_session_close(struct service *svc);

/* Frees everything service_init() made (for a clean exit under ASan). */
void service_free(struct service *svc);

/* "host[addr]" style text of a socket's peer, and the local port. */
int service_peer_addr(int fd, char *buf, size_t len);
int service_is_loopback(const char *addr);

/* The daemons master runs (service_table.c). */
struct service_def {
    const char *name;           /* program in daemon_directory */
    const char *port_keys[2];   /* config keys of its ports (NULL: none) */
    const char *fd_names[2];    /* LISTEN_FDNAMES for each */
    int per_core;               /* network service: one worker per core */
};

extern const struct service_def service_defs[];
extern const size_t service_ndefs;

/* 1 when the configuration enables service_defs[i]. */
int service_enabled(const struct conf *c, size_t i);
/* Every enabled daemon is an executable in daemon_directory: 0, or -1 with
 * err saying which is missing and how to disable it. */
int service_check_binaries(const struct conf *c, char *err, size_t errlen);

#endif
