/*
 * cmd_queue.c - mailctl queue list|flush|delete|hold|release: the outbound
 * queue (queue.h) as the administrator sees it, in Postfix's mailq layout.
 * mailctl drops to mail_creator before it touches queue_directory, and
 * takes an entry's queue_lock() before it changes it, so it never races a
 * delivery worker.  flush and release wake relayq with a datagram.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "mailcore/conf.h"
#include "mailcore/ipc.h"
#include "mailcore/queue.h"
#include "mailctl.h"

#define LOCK_WAIT_MS 15000 /* a worker holds an entry for one SMTP transaction */

struct ids {
    char (*id)[QUEUE_ID_MAX + 1];
    size_t n, cap;
};

static int add_id(const char *qid, void *arg)
{
    struct ids *ids = arg;

    if (ids->n == ids->cap) {
        size_t cap = ids->cap ? ids->cap * 2 : 64;
        void *p = realloc(ids->id, cap * sizeof *ids->id);
        if (p == NULL)
            return -1;
        ids->id = p;
        ids->cap = cap;
    }
    snprintf(ids->id[ids->n++], QUEUE_ID_MAX + 1, "%s", qid);
    return 0;
}

struct entry {
    struct queue_env e;
    long long size;
};

static int by_created(const void *a, const void *b)
{
    const struct entry *x = a, *y = b;

    if (x->e.created != y->e.created)
        return x->e.created < y->e.created ? -1 : 1;
    return strcmp(x->e.id, y->e.id);
}

static const char *state_name(enum queue_state s)
{
    return s == QUEUE_PENDING ? "pending" : s == QUEUE_SENT ? "sent" : "bounced";
}

static void iso_time(long long t, char *buf, size_t len)
{
    time_t tt = (time_t)t;
    struct tm tm;

    gmtime_r(&tt, &tm);
    strftime(buf, len, "%Y-%m-%dT%H:%M:%SZ", &tm);
}

static void print_json(const struct entry *ents, size_t n)
{
    char buf[64];

    printf("[");
    for (size_t i = 0; i < n; i++) {
        const struct queue_env *e = &ents[i].e;
        iso_time(e->created, buf, sizeof buf);
        printf("%s\n  {\"id\": ", i ? "," : "");
        ctl_json_string(stdout, e->id);
        printf(", \"size\": %lld, \"arrival_time\": \"%s\", \"sender\": ", ents[i].size, buf);
        ctl_json_string(stdout, e->sender);
        printf(", \"user\": ");
        ctl_json_string(stdout, e->user);
        printf(", \"held\": %s, \"reason\": ", e->hold ? "true" : "false");
        ctl_json_string(stdout, e->reason);
        printf(", \"recipients\": [");
        for (size_t k = 0; k < e->nrcpts; k++) {
            const struct queue_rcpt *r = &e->rcpts[k];
            iso_time(r->next, buf, sizeof buf);
            printf("%s\n    {\"address\": ", k ? "," : "");
            ctl_json_string(stdout, r->addr);
            printf(", \"state\": \"%s\", \"attempts\": %u, \"next_attempt\": \"%s\", "
                   "\"status\": ",
                   state_name(r->state), r->attempts, buf);
            ctl_json_string(stdout, r->status);
            printf(", \"reason\": ");
            ctl_json_string(stdout, r->why);
            printf("}");
        }
        printf("]}");
    }
    printf("%s]\n", n ? "\n" : "");
}

static void print_mailq(const struct entry *ents, size_t n)
{
    long long total = 0;

    if (n == 0) {
        printf("Mail queue is empty\n");
        return;
    }
    printf("-Queue ID-   --Size-- ----Arrival Time---- -Sender/Recipient-------\n");
    for (size_t i = 0; i < n; i++) {
        const struct queue_env *e = &ents[i].e;
        time_t t = (time_t)e->created;
        char date[64];
        struct tm tm;

        localtime_r(&t, &tm);
        strftime(date, sizeof date, "%a %b %e %H:%M:%S", &tm);
        printf("%-12s%c %8lld %-20s  %s\n", e->id, e->hold ? '!' : ' ', ents[i].size, date,
               e->sender[0] ? e->sender : "MAILER-DAEMON");
        if (e->reason[0])
            printf("%43s(%s)\n", "", e->reason);
        for (size_t k = 0; k < e->nrcpts; k++)
            if (e->rcpts[k].state == QUEUE_PENDING)
                printf("%43s%s\n", "", e->rcpts[k].addr);
        printf("\n");
        total += ents[i].size;
    }
    printf("-- %lld Kbytes in %zu Request%s.\n", (total + 1023) / 1024, n, n == 1 ? "" : "s");
}

static int load_ids(struct ctl *ctl, struct ids *ids)
{
    char err[1024];

    ctl_load_conf(ctl);
    if (ctl_drop_privs(ctl) < 0)
        return -1;
    if (queue_foreach(conf_str(ctl->conf, "queue_directory"), add_id, ids, err, sizeof err) < 0) {
        if (strstr(err, strerror(ENOENT)) != NULL)
            return 0; /* no queue yet: empty */
        ctl_fail("%s", err);
        return -1;
    }
    return 0;
}

int cmd_queue_list(struct ctl *ctl, int argc, char **argv)
{
    struct ids ids = {0};
    struct entry *ents;
    size_t n = 0;
    int json = 0;
    char err[1024], path[1024];

    for (int i = 0; i < argc; i++) {
        if (strcmp(argv[i], "--json") == 0)
            json = 1;
        else
            return ctl_usage("queue list", "unexpected argument %s", argv[i]);
    }
    if (load_ids(ctl, &ids) < 0)
        return EXIT_FAIL;
    ents = calloc(ids.n + 1, sizeof *ents);
    if (ents == NULL) {
        free(ids.id);
        return ctl_fail("out of memory");
    }
    for (size_t i = 0; i < ids.n; i++) {
        const char *dir = conf_str(ctl->conf, "queue_directory");
        struct stat st;
        int r = queue_env_read(dir, ids.id[i], &ents[n].e, err, sizeof err);
        if (r == 1)
            continue; /* delivered meanwhile */
        if (r < 0) {
            fprintf(stderr, "mailctl: warning: %s\n", err);
            continue;
        }
        snprintf(path, sizeof path, "%s/msg/%s", dir, ids.id[i]);
        ents[n].size = stat(path, &st) == 0 ? (long long)st.st_size : 0;
        n++;
    }
    qsort(ents, n, sizeof *ents, by_created);
    if (json)
        print_json(ents, n);
    else
        print_mailq(ents, n);
    for (size_t i = 0; i < n; i++)
        queue_env_free(&ents[i].e);
    free(ents);
    free(ids.id);
    return EXIT_OK;
}

/* Tell relayq; a moment after a reload or a restart its socket may not be
 * there yet (ENOENT) or not yet bound (ECONNREFUSED): tried for up to
 * WAKE_PATIENCE_MS before giving up. */
#define WAKE_PATIENCE_MS 3000
static int wake_relayq(struct ctl *ctl, const char *what)
{
    char path[1024];
    int rc;

    snprintf(path, sizeof path, "%s/private/relayq.sock", conf_str(ctl->conf, "run_directory"));
    for (int waited = 0;; waited += 100) {
        rc = ipc_notify(path, what, strlen(what));
        if (rc == 0 || (errno != ENOENT && errno != ECONNREFUSED) || waited >= WAKE_PATIENCE_MS)
            break;
        usleep(100 * 1000);
    }
    if (rc < 0)
        return ctl_fail("cannot reach relayq at %s: %s (is mailcore running with submission "
                        "enabled?)",
                        path, strerror(errno));
    return EXIT_OK;
}

int cmd_queue_flush(struct ctl *ctl, int argc, char **argv)
{
    (void)argv;
    if (argc != 0)
        return ctl_usage("queue flush", "no arguments expected");
    ctl_load_conf(ctl);
    if (ctl_drop_privs(ctl) < 0)
        return EXIT_FAIL;
    return wake_relayq(ctl, "flush");
}

/* Lock one entry for a change; -1 with the error printed. */
static int lock_entry(struct ctl *ctl, const char *id)
{
    int fd = queue_lock(conf_str(ctl->conf, "queue_directory"), id, LOCK_WAIT_MS);

    if (fd >= 0)
        return fd;
    if (errno == ENOENT)
        ctl_fail("no message %s in the queue", id);
    else if (errno == EWOULDBLOCK)
        ctl_fail("%s is being delivered right now: try again", id);
    else
        ctl_fail("%s: %s", id, strerror(errno));
    return -1;
}

static int delete_one(struct ctl *ctl, const char *id)
{
    char err[1024];
    int fd = lock_entry(ctl, id), r = EXIT_OK;

    if (fd < 0)
        return EXIT_FAIL;
    if (queue_delete(conf_str(ctl->conf, "queue_directory"), id, err, sizeof err) < 0)
        r = ctl_fail("%s", err);
    else
        printf("%s: removed\n", id);
    close(fd);
    return r;
}

int cmd_queue_delete(struct ctl *ctl, int argc, char **argv)
{
    struct ids ids = {0};
    int status = EXIT_OK;

    if (argc != 1)
        return ctl_usage("queue delete", "expected one ID, or all");
    if (strcmp(argv[0], "all") != 0) {
        if (!queue_valid_id(argv[0]))
            return ctl_usage("queue delete", "'%s' is not a queue id", argv[0]);
        ctl_load_conf(ctl);
        if (ctl_drop_privs(ctl) < 0)
            return EXIT_FAIL;
        return delete_one(ctl, argv[0]);
    }
    if (load_ids(ctl, &ids) < 0)
        return EXIT_FAIL;
    for (size_t i = 0; i < ids.n; i++)
        if (delete_one(ctl, ids.id[i]) != EXIT_OK)
            status = EXIT_FAIL;
    free(ids.id);
    return status;
}

static int set_hold(struct ctl *ctl, int argc, char **argv, const char *cmd, int hold)
{
    struct queue_env e;
    const char *dir;
    char err[1024];
    int fd, r;

    if (argc != 1)
        return ctl_usage(cmd, "expected one queue ID");
    if (!queue_valid_id(argv[0]))
        return ctl_usage(cmd, "'%s' is not a queue id", argv[0]);
    ctl_load_conf(ctl);
    if (ctl_drop_privs(ctl) < 0)
        return EXIT_FAIL;
    dir = conf_str(ctl->conf, "queue_directory");
    if ((fd = lock_entry(ctl, argv[0])) < 0)
        return EXIT_FAIL;
    r = queue_env_read(dir, argv[0], &e, err, sizeof err);
    if (r != 0) {
        close(fd);
        return r == 1 ? ctl_fail("no message %s in the queue", argv[0]) : ctl_fail("%s", err);
    }
    e.hold = hold;
    if (!hold)
        for (size_t i = 0; i < e.nrcpts; i++)
            if (e.rcpts[i].state == QUEUE_PENDING)
                e.rcpts[i].next = (long long)time(NULL);
    r = queue_env_write(dir, &e, err, sizeof err);
    queue_env_free(&e);
    close(fd);
    if (r < 0)
        return ctl_fail("%s", err);
    printf("%s: %s\n", argv[0], hold ? "placed on hold" : "released from hold");
    if (!hold)
        wake_relayq(ctl, "wake"); /* best effort: relayq scans on its own too */
    return EXIT_OK;
}

int cmd_queue_hold(struct ctl *ctl, int argc, char **argv)
{
    return set_hold(ctl, argc, argv, "queue hold", 1);
}

int cmd_queue_release(struct ctl *ctl, int argc, char **argv)
{
    return set_hold(ctl, argc, argv, "queue release", 0);
}
