/*
 * master - mailcore's supervisor.
 *
 * SYNOPSIS
 *	master [-c FILE] [-v]
 *
 * DESCRIPTION
 *	master runs in the foreground and logs to stderr.  At start-up it:
 *	  1. reads and validates the configuration (exit 1 naming file, line
 *	     and key on any error, before anything is bound);
 *	  2. checks the mail_creator account, the daemon binaries and the TLS
 *	     certificate and key;
 *	  3. creates data_directory, queue_directory (owned by mail_creator)
 *	     and run_directory, refusing directories with the wrong owner;
 *	  4. takes run_directory/master.pid (a second master exits 1);
 *	  5. binds every listener as root;
 *	  6. runs store recovery in a child that has dropped privileges;
 *	  7. starts the daemons (children.c) and tells systemd READY=1.
 *	Then it restarts daemons that die, reloads on SIGHUP (a broken config
 *	is logged and the old one stays in force), and on SIGTERM or SIGINT
 *	stops the daemons gracefully, killing what remains after
 *	shutdown_timeout, and exits 0.
 *
 *	Run by a user other than root, everything runs as that user and a
 *	warning says so (development and tests).
 */
#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include "mailcore/anvil.h"
#include "mailcore/auth.h"
#include "mailcore/conf.h"
#include "mailcore/db.h"
#include "mailcore/ev.h"
#include "mailcore/log.h"
#include "mailcore/privsep.h"
#include "mailcore/store.h"
#include "mailcore/tls.h"
#include "master.h"

static void usage(void)
{
    fprintf(stderr, "usage: master [-c FILE] [-v]\n"
                    "Start mailcore: bind the listeners and supervise the daemons.\n"
                    "  -c FILE  configuration file (default $MAILCORE_CONF or %s)\n"
                    "  -v       verbose logging\n",
            CONF_DEFAULT_PATH);
    exit(2);
}

/* A sealed memfd holding text: what the daemons will parse. */
static int conf_memfd(const char *text, size_t len, char *err, size_t errlen)
{
    int fd = memfd_create("mailcore.conf", MFD_CLOEXEC | MFD_ALLOW_SEALING);

    if (fd < 0 || write(fd, text, len) != (ssize_t)len ||
        fcntl(fd, F_ADD_SEALS, F_SEAL_SHRINK | F_SEAL_GROW | F_SEAL_WRITE | F_SEAL_SEAL) < 0) {
        snprintf(err, errlen, "memfd for the configuration: %s", strerror(errno));
        if (fd >= 0)
            close(fd);
        return -1;
    }
    return fd;
}

/* Read, parse and check path; *fd gets the text as a memfd. */
static struct conf *load_conf(const char *path, int *fd, char *err, size_t errlen)
{
    struct conf *c = conf_new();
    char *text = NULL;
    size_t len = 0;

    if (c == NULL) {
        snprintf(err, errlen, "out of memory");
        return NULL;
    }
    if (conf_read_file(path, &text, &len, err, errlen) < 0 ||
        conf_load_buf(c, path, text, len, err, errlen) < 0 || conf_validate(c, err, errlen) < 0 ||
        service_check_binaries(c, err, errlen) < 0 ||
        (*fd = conf_memfd(text, len, err, errlen)) < 0) {
        free(text);
        conf_free(c);
        return NULL;
    }
    free(text);
    if (conf_str(c, "tls_cert_file")[0]) {
        SSL_CTX *ctx = tls_server_ctx(conf_str(c, "tls_cert_file"), conf_str(c, "tls_key_file"),
                                      err, errlen);
        if (ctx == NULL) {
            close(*fd);
            conf_free(c);
            return NULL;
        }
        SSL_CTX_free(ctx);
    }
    return c;
}

static int prepare_dirs(const struct conf *c, char *err, size_t errlen)
{
    const char *run = conf_str(c, "run_directory");
    char private[4096];
    uid_t uid;
    gid_t gid;

    if (privsep_file_owner(conf_str(c, "mail_creator"), &uid, &gid, err, errlen) < 0)
        return -1;
    snprintf(private, sizeof private, "%s/private", run);
    if (privsep_dir("data_directory", conf_str(c, "data_directory"), uid, gid, 0750, err,
                    errlen) < 0 ||
        privsep_dir("queue_directory", conf_str(c, "queue_directory"), uid, gid, 0750, err,
                    errlen) < 0 ||
        privsep_dir("run_directory", run, geteuid(), getegid(), 0755, err, errlen) < 0 ||
        privsep_dir("run_directory", private, uid, gid, 0750, err, errlen) < 0)
        return -1;
    return 0;
}

static int take_pid_file(struct master *m, char *err, size_t errlen)
{
    char path[4096], buf[32];
    int fd;

    snprintf(path, sizeof path, "%s/master.pid", conf_str(m->conf, "run_directory"));
    fd = open(path, O_RDWR | O_CREAT | O_CLOEXEC | O_NOFOLLOW, 0644);
    if (fd < 0) {
        snprintf(err, errlen, "%s: %s", path, strerror(errno));
        return -1;
    }
    if (flock(fd, LOCK_EX | LOCK_NB) < 0) {
        ssize_t n = read(fd, buf, sizeof buf - 1);
        buf[n > 0 ? n : 0] = '\0';
        buf[strcspn(buf, "\n")] = '\0';
        snprintf(err, errlen, "master is already running (pid %s, %s)", buf, path);
        close(fd);
        return -1;
    }
    int n = snprintf(buf, sizeof buf, "%ld\n", (long)getpid());
    if (ftruncate(fd, 0) < 0 || pwrite(fd, buf, (size_t)n, 0) != n) {
        snprintf(err, errlen, "%s: %s", path, strerror(errno));
        close(fd);
        return -1;
    }
    m->pid_fd = fd;
    return 0;
}

/* Step 6: in a child that opened LMDB itself and dropped privileges. */
static int recover_store(const struct conf *c, char *err, size_t errlen)
{
    pid_t pid = fork();
    int status;

    if (pid < 0) {
        snprintf(err, errlen, "fork: %s", strerror(errno));
        return -1;
    }
    if (pid == 0) {
        char e[1024];
        struct db *db;
        struct store *s;
        int n;

        log_init("master");
        if (privsep_drop(conf_str(c, "mail_creator"), e, sizeof e) < 0)
            log_fatal("recovery: cannot drop privileges: %s", e);
        db = db_open(conf_str(c, "data_directory"), 1, (uid_t)-1, (gid_t)-1, e, sizeof e);
        if (db == NULL)
            log_fatal("%s", e);
        if (db_upgraded_from(db))
            log_info("%s/data.mdb: schema upgraded from version %u", conf_str(c, "data_directory"),
                     db_upgraded_from(db));
        s = store_open(db, conf_str(c, "data_directory"), e, sizeof e);
        if (s == NULL)
            log_fatal("%s", e);
        n = store_recover(s, 0, e, sizeof e);
        if (n < 0)
            log_fatal("recovery: %s", e);
        if (n > 0)
            log_info("recovery: removed %d unfinished message files", n);
        store_close(s);
        db_close(db);
        _exit(0);
    }
    while (waitpid(pid, &status, 0) < 0)
        if (errno != EINTR) {
            snprintf(err, errlen, "waitpid: %s", strerror(errno));
            return -1;
        }
    if (!WIFEXITED(status) || WEXITSTATUS(status) != 0) {
        snprintf(err, errlen, "store recovery failed (see the line above)");
        return -1;
    }
    return 0;
}

int master_reload(struct master *m, char *err, size_t errlen)
{
    struct listener fresh[MASTER_LISTEN_MAX];
    size_t nfresh = 0;
    struct conf *c;
    unsigned old;
    int fd = -1;

    if (m->stopping) {
        snprintf(err, errlen, "master is stopping");
        return -1;
    }
    if ((c = load_conf(m->conf_path, &fd, err, errlen)) == NULL ||
        prepare_dirs(c, err, errlen) < 0 ||
        listeners_bind(c, m->listeners, m->nlisteners, fresh, &nfresh, err, errlen) < 0) {
        if (fd >= 0)
            close(fd);
        conf_free(c);
        log_error("reload failed, old configuration stays in force: %s", err);
        return -1;
    }
    listeners_close(m->listeners, m->nlisteners);   /* those not carried over */
    memcpy(m->listeners, fresh, sizeof fresh[0] * nfresh);
    m->nlisteners = nfresh;
    conf_free(m->conf);
    close(m->conf_fd);
    m->conf = c;
    m->conf_fd = fd;
    services_configure(m, c, err, errlen);
    old = m->generation++;
    children_start_all(m);
    children_drain_generation(m, old);
    log_info("reload: configuration %s in force", m->conf_path);
    return 0;
}

static void on_kill_timer(struct ev_loop *ev, void *arg)
{
    struct master *m = arg;

    (void)ev;
    m->kill_timer = NULL;
    for (size_t i = 0; i < m->nchildren; i++) {
        log_warn("process %s pid %ld did not stop in time: killing it",
                 service_defs[m->children[i].service].name, (long)m->children[i].pid);
        kill(m->children[i].pid, SIGKILL);
    }
}

void master_stop(struct master *m)
{
    if (m->stopping)
        return;
    m->stopping = 1;
    log_info("stopping");
    notify_systemd("STOPPING=1");
    listeners_close(m->listeners, m->nlisteners);
    control_close(m);
    children_cancel_restarts(m);
    children_stop_all(m);
    if (m->nchildren == 0)
        ev_stop(m->ev);
    else
        m->kill_timer = ev_timer_add(m->ev, conf_uint(m->conf, "shutdown_timeout") * 1000,
                                     on_kill_timer, m);
}

static void on_signal(struct ev_loop *ev, int signo, void *arg)
{
    struct master *m = arg;
    char err[1024];

    (void)ev;
    if (signo == SIGCHLD) {
        children_on_sigchld(m);
    } else if (signo == SIGHUP) {
        notify_systemd("RELOADING=1");
        master_reload(m, err, sizeof err);
        notify_systemd("READY=1");
    } else {
        master_stop(m);
    }
}

static void startup(struct master *m)
{
    char err[1024];
    struct privsep_account acct;

    if ((m->conf = load_conf(m->conf_path, &m->conf_fd, err, sizeof err)) == NULL)
        log_fatal("%s", err);
    if (geteuid() == 0) {
        if (privsep_lookup(conf_str(m->conf, "mail_creator"), &acct, err, sizeof err) < 0)
            log_fatal("%s", err);
    } else {
        log_warn("running as uid %u, not root: the daemons keep this user's privileges "
                 "(development mode)", (unsigned)geteuid());
    }
    if (prepare_dirs(m->conf, err, sizeof err) < 0 || take_pid_file(m, err, sizeof err) < 0 ||
        listeners_bind(m->conf, NULL, 0, m->listeners, &m->nlisteners, err, sizeof err) < 0 ||
        recover_store(m->conf, err, sizeof err) < 0)
        log_fatal("%s", err);
    services_configure(m, m->conf, err, sizeof err);
    if ((m->ev = ev_new()) == NULL)
        log_fatal("cannot create event loop: %s", strerror(errno));
    if (ev_signal_add(m->ev, SIGCHLD, on_signal, m) < 0 ||
        ev_signal_add(m->ev, SIGHUP, on_signal, m) < 0 ||
        ev_signal_add(m->ev, SIGTERM, on_signal, m) < 0 ||
        ev_signal_add(m->ev, SIGINT, on_signal, m) < 0)
        log_fatal("cannot watch signals: %s", strerror(errno));
    if (control_open(m, err, sizeof err) < 0)
        log_fatal("%s", err);
    if ((m->anvil_fd = anvil_create(err, sizeof err)) < 0 ||
        (m->anvil = anvil_map(m->anvil_fd, err, sizeof err)) == NULL ||
        (m->authcache_fd = auth_cache_create(err, sizeof err)) < 0)
        log_fatal("%s", err);
}

static void cleanup(struct master *m)
{
    char path[4096];

    snprintf(path, sizeof path, "%s/master.pid", conf_str(m->conf, "run_directory"));
    unlink(path);
    close(m->pid_fd);
    if (m->kill_timer)
        ev_timer_cancel(m->ev, m->kill_timer);
    listeners_close(m->listeners, m->nlisteners);
    ev_free(m->ev);
    close(m->conf_fd);
    anvil_unmap(m->anvil);
    close(m->anvil_fd);
    close(m->authcache_fd);
    conf_free(m->conf);
}

int main(int argc, char **argv)
{
    static struct master m = {
        .control_fd = -1, .pid_fd = -1, .conf_fd = -1, .anvil_fd = -1, .authcache_fd = -1};
    const char *opt_c = NULL;
    int ch;

    log_init("master");
    while ((ch = getopt(argc, argv, "c:v")) != -1) {
        switch (ch) {
        case 'c':
            opt_c = optarg;
            break;
        case 'v':
            log_set_verbose(1);
            break;
        default:
            usage();
        }
    }
    if (optind != argc)
        usage();
    m.conf_path = conf_path_choose(opt_c);
    signal(SIGPIPE, SIG_IGN);
    startup(&m);
    children_start_all(&m);
    log_info("daemon started -- version %s, configuration %s", MAILCORE_VERSION, m.conf_path);
    notify_systemd("READY=1");
    if (ev_run(m.ev) < 0)
        log_fatal("event loop: %s", strerror(errno));
    log_info("stopped");
    cleanup(&m);
    return m.exit_status;
}
