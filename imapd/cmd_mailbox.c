/*
 * cmd_mailbox.c - commands on mailboxes: SELECT, EXAMINE, CREATE, DELETE,
 * RENAME, SUBSCRIBE, UNSUBSCRIBE, LIST (with LIST-EXTENDED selection and
 * return options, SPECIAL-USE, CHILDREN, LIST-STATUS), LSUB, NAMESPACE,
 * STATUS (with SIZE).
 *
 * The hierarchy delimiter is "/"; there is one personal namespace, "".
 * LIST shows INBOX first, then the other mailboxes in name order.
 *
 * Also the names themselves, for every command: a mailbox argument into
 * the stored form (modified UTF-7, RFC 3501 5.1.3) and a stored name into
 * the session's form, which is UTF-8 once IMAP4rev2 is enabled (RFC 9051
 * 5.1) -- an IMAP4rev1 session reads and writes the stored form as it is.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "imap_modifiers.h"
#include "imapd.h"
#include "mailcore/conn.h"
#include "mailcore/service.h"
#include "mailcore/store.h"

#define MBOX_LIST_MAX 10000

int imap_astring(const struct imap_arg *a, char *out, size_t outsz)
{
    if ((a->type != IMAP_ARG_ATOM && a->type != IMAP_ARG_STRING && a->type != IMAP_ARG_LITERAL) ||
        a->len >= outsz || memchr(a->s, '\0', a->len) != NULL)
        return -1;
    memcpy(out, a->s, a->len);
    out[a->len] = '\0';
    return 0;
}

/* A name argument into out as the client wrote it, without a trailing "/"
 * and with INBOX canonical; its length, or -1 when it is not a string. */
static int name_arg(const struct imap_arg *a, char *out, size_t outsz)
{
    size_t len;

    if (imap_astring(a, out, outsz) < 0)
        return -1;
    len = strlen(out);
    while (len > 1 && out[len - 1] == '/')
        out[--len] = '\0';                  /* "Lists/" means "Lists" */
    if (strncasecmp(out, "INBOX", 5) == 0 && (out[5] == '\0' || out[5] == '/'))
        memcpy(out, "INBOX", 5);        /* INBOX is case-insensitive, also as a parent */
    return (int)len;
}

/*
 * An IMAP4rev2 session's names are UTF-8, converted to the stored modified
 * UTF-7 form here; the conversion is exact both ways, so the session sees
 * every name back byte for byte as it sent it.
 *
 * OLDNAME (RFC 9051's LIST extended data item) is not sent, by decision:
 * RFC 9051 6.3.4 asks for it (SHOULD) only when the server converts
 * (normalizes) the name a client gave to CREATE, as its way out of the
 * rule that a name that is not Net-Unicode (RFC 5198) MUST be refused or
 * converted; the other use is NOTIFY (RFC 5465), which imapd does not
 * offer.  imapd converts no name: the modified UTF-7 form never reaches an
 * IMAP4rev2 client, and the trailing "/" and the case of INBOX are rules of
 * their own in both versions.  Names are not checked for Unicode
 * normalization (NFC needs Unicode's tables): should imapd ever normalize
 * them, CREATE and RENAME must answer with LIST ... ("OLDNAME" (name)).
 */
int imap_mailbox_arg(struct imap_session *s, const struct imap_arg *a, char *out, size_t outsz)
{
    char utf8[IMAP_MAILBOX_UTF8_MAX + 1];
    int len;

    if (!s->rev2) {
        len = name_arg(a, out, outsz);
        return len >= 0 && imap_mailbox_name_valid(out, (size_t)len, s->utf8) == 0 ? 0 : -1;
    }
    if ((len = name_arg(a, utf8, sizeof utf8)) < 0 ||
        imap_utf8_to_mutf7(utf8, (size_t)len, out, outsz) < 0)
        return -1;
    return imap_mailbox_name_valid(out, strlen(out), 0) == 0 ? 0 : -1;
}

const char *imap_mailbox_shown(const struct imap_session *s, const char *name, char *buf,
                               size_t bufsz)
{
    if (!s->rev2 || imap_mutf7_to_utf8(name, strlen(name), buf, bufsz) < 0)
        return name;
    return buf;
}

void imap_mailbox_send(struct imap_session *s, const char *name)
{
    char buf[IMAP_MAILBOX_UTF8_MAX + 1];
    const char *shown = imap_mailbox_shown(s, name, buf, sizeof buf);

    imap_string(s, shown, strlen(shown));
}

void imap_no_mailbox(struct imap_session *s, const char *code, const char *name)
{
    char buf[IMAP_MAILBOX_UTF8_MAX + 1];

    imap_tagged(s, "NO", "[%s] Mailbox doesn't exist: %s", code,
                imap_mailbox_shown(s, name, buf, sizeof buf));
}

static void bad_name(struct imap_session *s)
{
    imap_tagged(s, "NO", "[CANNOT] Invalid mailbox name");
    imap_command_done(s);
}

/* Wrong number of arguments: a syntax error (BAD), not a refusal. */
static int want_args(struct imap_session *s, size_t nargs, size_t want, const char *syntax)
{
    if (nargs == want)
        return 1;
    imap_tagged(s, "BAD", "Syntax: %s", syntax);
    imap_command_done(s);
    return 0;
}

/* SELECT / EXAMINE */

static void select_mailbox(struct imap_session *s, const struct imap_arg *args, size_t nargs,
                           int readonly)
{
    char name[DB_MBOX_NAME_MAX + 1], err[256];
    struct view *v;
    size_t unseen = 0, recent = 0;
    struct imap_select_params params;

    if (s->view) {
        view_free(s->view);
        s->view = NULL;
        s->state = IS_AUTH;
        imap_untagged(s, "OK [CLOSED] Previous mailbox closed.");
    }
    if (nargs < 1 || nargs > 2) {
        imap_tagged(s, "BAD", "Syntax: %s mailbox", readonly ? "EXAMINE" : "SELECT");
        imap_command_done(s);
        return;
    }
    if (imap_mailbox_arg(s, &args[0], name, sizeof name) < 0) {
        bad_name(s);
        return;
    }
    if (condstore_select_params(s, nargs == 2 ? &args[1] : NULL, &params) < 0)
        return;
    v = view_open(s, name, readonly, err, sizeof err);
    if (v == NULL) {
        imap_select_params_free(&params);
        imap_no_mailbox(s, "NONEXISTENT", name);
        imap_command_done(s);
        return;
    }
    s->view = v;
    s->state = IS_SELECTED;
    view_announce_flags(s);
    imap_untagged(s, "%zu EXISTS", v->n);
    for (size_t i = 0; i < v->n; i++) {
        recent += view_is_recent(v, &v->msgs[i]);
        if (!unseen && !(v->msgs[i].flags & DB_FLAG_SEEN))
            unseen = i + 1;
    }
    if (!s->rev2) {
        imap_untagged(s, "%zu RECENT", recent);
        if (unseen)
            imap_untagged(s, "OK [UNSEEN %zu] First unseen.", unseen);
    }
    imap_untagged(s, "OK [UIDVALIDITY %u] UIDs valid", v->uidvalidity);
    imap_untagged(s, "OK [UIDNEXT %u] Predicted next UID", v->uidnext);
    imap_untagged(s, "OK [HIGHESTMODSEQ %llu] Highest", (unsigned long long)v->highestmodseq);
    condstore_select_done(s, &params);
    imap_tagged(s, "OK", "[%s] %s completed", readonly ? "READ-ONLY" : "READ-WRITE",
                readonly ? "Examine" : "Select");
    imap_command_done(s);
}

void cmd_select(struct imap_session *s, int uid, const struct imap_arg *args, size_t nargs)
{
    (void)uid;
    select_mailbox(s, args, nargs, 0);
}

void cmd_examine(struct imap_session *s, int uid, const struct imap_arg *args, size_t nargs)
{
    (void)uid;
    select_mailbox(s, args, nargs, 1);
}

/* CREATE, DELETE, RENAME */

struct mbox_op {
    const char *user;
    char name[DB_MBOX_NAME_MAX + 1], to[DB_MBOX_NAME_MAX + 1];
    struct store_dead dead;
    int children;
    const char *why;
};

/* Superior names of name (RFC 3501 6.3.3), quietly when they exist. */
static int create_parents(struct db_txn *txn, const char *user, const char *name)
{
    struct db_mailbox mb;
    char path[DB_MBOX_NAME_MAX + 1];
    int rc;

    for (const char *slash = strchr(name, '/'); slash; slash = strchr(slash + 1, '/')) {
        memcpy(path, name, (size_t)(slash - name));
        path[slash - name] = '\0';
        rc = db_mailbox_create(txn, user, path, 0, &mb);
        if (rc != 0 && rc != DB_EXISTS)
            return rc;
    }
    return 0;
}

static int tx_create(struct db_txn *txn, void *arg)
{
    struct mbox_op *o = arg;
    struct db_mailbox mb;
    int rc = create_parents(txn, o->user, o->name);

    if (rc == 0 && db_mailbox_get(txn, o->user, o->name, &mb) == 0 &&
        (mb.special & DB_SPECIAL_NOSELECT))   /* a name only: it becomes a mailbox again */
        return db_mailbox_set_noselect(txn, o->user, o->name, 0, NULL, NULL);
    return rc ? rc : db_mailbox_create(txn, o->user, o->name, 0, &mb);
}

void cmd_create(struct imap_session *s, int uid, const struct imap_arg *args, size_t nargs)
{
    struct mbox_op o = {.user = s->user};
    char err[256];
    int rc;

    (void)uid;
    if (!want_args(s, nargs, 1, "CREATE mailbox"))
        return;
    if (imap_mailbox_arg(s, &args[0], o.name, sizeof o.name) < 0) {
        bad_name(s);
        return;
    }
    rc = db_write(s->srv->svc->db, tx_create, &o, err, sizeof err);
    if (rc == DB_EXISTS)
        imap_tagged(s, "NO", "[ALREADYEXISTS] Mailbox already exists");
    else if (rc != 0)
        imap_tagged(s, "NO", "[SERVERBUG] %s", err);
    else
        imap_tagged(s, "OK", "Create completed");
    imap_command_done(s);
}

struct child_scan {
    const char *prefix;
    size_t plen;
    int found;
    char (*names)[DB_MBOX_NAME_MAX + 1];
    size_t n, cap;
};

static int find_child(const struct db_mailbox *m, void *arg)
{
    struct child_scan *c = arg;

    if (strncmp(m->name, c->prefix, c->plen) == 0 && m->name[c->plen] == '/') {
        c->found = 1;
        if (c->names && c->n < c->cap)
            memcpy(c->names[c->n++], m->name, sizeof c->names[0]);
    }
    return 0;
}

/* \Noselect parents left without children go too (RFC 3501 6.3.4). */
static int drop_empty_parents(struct db_txn *txn, const char *user, const char *name)
{
    char parent[DB_MBOX_NAME_MAX + 1];
    char *slash;
    struct db_mailbox mb;
    int rc;

    snprintf(parent, sizeof parent, "%s", name);
    while ((slash = strrchr(parent, '/')) != NULL) {
        struct child_scan c = {parent, 0, 0, NULL, 0, 0};
        *slash = '\0';
        c.plen = strlen(parent);
        if (db_mailbox_get(txn, user, parent, &mb) != 0 || !(mb.special & DB_SPECIAL_NOSELECT))
            return 0;
        if ((rc = db_mailbox_foreach(txn, user, find_child, &c)) != 0)
            return rc;
        if (c.found)
            return 0;
        if ((rc = db_mailbox_delete(txn, user, parent, NULL, NULL)) != 0)
            return rc;
    }
    return 0;
}

static int tx_delete(struct db_txn *txn, void *arg)
{
    struct mbox_op *o = arg;
    struct child_scan c = {o->name, strlen(o->name), 0, NULL, 0, 0};
    int rc;

    store_dead_reset(&o->dead);
    struct db_mailbox mb;

    if ((rc = db_mailbox_foreach(txn, o->user, find_child, &c)) != 0)
        return rc;
    if ((rc = db_mailbox_get(txn, o->user, o->name, &mb)) != 0)
        return rc;
    if (c.found) {
        /* RFC 3501 6.3.4: with children, the name stays as \Noselect. */
        if (mb.special & DB_SPECIAL_NOSELECT) {
            o->children = 1;
            return DB_EXISTS;
        }
        return db_mailbox_set_noselect(txn, o->user, o->name, 1, store_dead_add, &o->dead);
    }
    rc = db_mailbox_delete(txn, o->user, o->name, store_dead_add, &o->dead);
    if (rc == 0)
        db_subscription_set(txn, o->user, o->name, 0);
    return rc ? rc : drop_empty_parents(txn, o->user, o->name);
}

void cmd_delete(struct imap_session *s, int uid, const struct imap_arg *args, size_t nargs)
{
    struct mbox_op o = {.user = s->user};
    char err[256];
    int rc;

    (void)uid;
    if (!want_args(s, nargs, 1, "DELETE mailbox"))
        return;
    if (imap_mailbox_arg(s, &args[0], o.name, sizeof o.name) < 0) {
        bad_name(s);
        return;
    }
    if (strcmp(o.name, "INBOX") == 0) {
        imap_tagged(s, "NO", "[CANNOT] INBOX can't be deleted.");
        imap_command_done(s);
        return;
    }
    if (s->view && strcmp(s->view->name, o.name) == 0) {
        view_free(s->view);
        s->view = NULL;
        s->state = IS_AUTH;
        imap_untagged(s, "OK [CLOSED] Mailbox closed.");
    }
    rc = db_write(s->srv->svc->db, tx_delete, &o, err, sizeof err);
    if (rc == DB_NOTFOUND)
        imap_no_mailbox(s, "NONEXISTENT", o.name);
    else if (o.children)
        imap_tagged(s, "NO", "[NONEXISTENT] Mailbox has children and holds no messages");
    else if (rc != 0)
        imap_tagged(s, "NO", "[SERVERBUG] %s", err);
    else {
        store_dead_unlink(s->srv->svc->store, &o.dead, err, sizeof err);
        imap_tagged(s, "OK", "Delete completed");
    }
    free(o.dead.ids);
    imap_command_done(s);
}

/* RENAME INBOX moves its messages into a new mailbox (RFC 3501 6.3.5). */
struct move_all {
    uint32_t from, to;
    struct db_message *msgs;
    size_t n, cap;
};

static int collect(const struct db_message *m, void *arg)
{
    struct move_all *a = arg;

    if (a->n == a->cap) {
        size_t cap = a->cap ? a->cap * 2 : 64;
        struct db_message *p = realloc(a->msgs, cap * sizeof *p);
        if (p == NULL)
            return -1;
        a->msgs = p;
        a->cap = cap;
    }
    a->msgs[a->n++] = *m;
    return 0;
}

static int tx_rename(struct db_txn *txn, void *arg)
{
    struct mbox_op *o = arg;
    char (*names)[DB_MBOX_NAME_MAX + 1] = calloc(MBOX_LIST_MAX, sizeof *names);
    struct child_scan c = {o->name, strlen(o->name), 0, names, 0, MBOX_LIST_MAX};
    int rc;

    if (names == NULL)
        return db_txn_fail(txn, "out of memory");
    if (strcmp(o->name, "INBOX") == 0) {
        struct db_mailbox inbox, dst;
        struct move_all a = {0};
        free(names);
        if ((rc = db_mailbox_get(txn, o->user, "INBOX", &inbox)) != 0 ||
            (rc = create_parents(txn, o->user, o->to)) != 0 ||
            (rc = db_mailbox_create(txn, o->user, o->to, 0, &dst)) != 0 ||
            (rc = db_message_foreach(txn, inbox.id, collect, &a)) != 0) {
            free(a.msgs);
            return rc;
        }
        for (size_t i = 0; i < a.n && rc == 0; i++) {
            struct db_message m = a.msgs[i];
            if ((rc = db_message_add(txn, dst.id, &m)) == 0)
                rc = db_message_expunge(txn, inbox.id, a.msgs[i].uid, NULL, NULL);
        }
        free(a.msgs);
        return rc;
    }
    if ((rc = db_mailbox_foreach(txn, o->user, find_child, &c)) == 0 &&
        (rc = create_parents(txn, o->user, o->to)) == 0)
        rc = db_mailbox_rename(txn, o->user, o->name, o->to);
    for (size_t i = 0; i < c.n && rc == 0; i++) {
        char to[DB_MBOX_NAME_MAX + 1];
        if ((size_t)snprintf(to, sizeof to, "%s%s", o->to, names[i] + c.plen) >= sizeof to)
            rc = db_txn_fail(txn, "new name too long");
        else
            rc = db_mailbox_rename(txn, o->user, names[i], to);
    }
    free(names);
    return rc;
}

void cmd_rename(struct imap_session *s, int uid, const struct imap_arg *args, size_t nargs)
{
    struct mbox_op o = {.user = s->user};
    char err[256];
    int rc;

    (void)uid;
    if (!want_args(s, nargs, 2, "RENAME from to"))
        return;
    if (imap_mailbox_arg(s, &args[0], o.name, sizeof o.name) < 0 ||
        imap_mailbox_arg(s, &args[1], o.to, sizeof o.to) < 0) {
        bad_name(s);
        return;
    }
    /* "RENAME a a/b" would leave a/b without its parent; INBOX stays
     * where it is (its messages move), so INBOX/old is fine. */
    if (strcmp(o.name, "INBOX") != 0 && strncmp(o.to, o.name, strlen(o.name)) == 0 &&
        o.to[strlen(o.name)] == '/') {
        imap_tagged(s, "NO", "[CANNOT] A mailbox cannot be moved below itself");
        imap_command_done(s);
        return;
    }
    rc = db_write(s->srv->svc->db, tx_rename, &o, err, sizeof err);
    if (rc == DB_NOTFOUND)
        imap_no_mailbox(s, "NONEXISTENT", o.name);
    else if (rc == DB_EXISTS)
        imap_tagged(s, "NO", "[ALREADYEXISTS] Mailbox already exists");
    else if (rc != 0)
        imap_tagged(s, "NO", "[SERVERBUG] %s", err);
    else
        imap_tagged(s, "OK", "Rename completed");
    imap_command_done(s);
}

/* SUBSCRIBE, UNSUBSCRIBE */

struct sub_op {
    const char *user;
    char name[DB_MBOX_NAME_MAX + 1];
    int on;
};

static int tx_sub(struct db_txn *txn, void *arg)
{
    struct sub_op *o = arg;

    return db_subscription_set(txn, o->user, o->name, o->on);
}

static void subscribe(struct imap_session *s, const struct imap_arg *args, size_t nargs, int on)
{
    struct sub_op o = {.user = s->user, .on = on};
    char err[256];

    if (!want_args(s, nargs, 1, on ? "SUBSCRIBE mailbox" : "UNSUBSCRIBE mailbox"))
        return;
    if (imap_mailbox_arg(s, &args[0], o.name, sizeof o.name) < 0) {
        bad_name(s);
        return;
    }
    if (db_write_lazy(s->srv->svc->db, tx_sub, &o, err, sizeof err) != 0)
        imap_tagged(s, "NO", "[SERVERBUG] %s", err);
    else
        imap_tagged(s, "OK", "%s completed", on ? "Subscribe" : "Unsubscribe");
    imap_command_done(s);
}

void cmd_subscribe(struct imap_session *s, int uid, const struct imap_arg *args, size_t nargs)
{
    (void)uid;
    subscribe(s, args, nargs, 1);
}

void cmd_unsubscribe(struct imap_session *s, int uid, const struct imap_arg *args, size_t nargs)
{
    (void)uid;
    subscribe(s, args, nargs, 0);
}

void cmd_namespace(struct imap_session *s, int uid, const struct imap_arg *args, size_t nargs)
{
    (void)uid, (void)args, (void)nargs;
    imap_untagged(s, "NAMESPACE ((\"\" \"/\")) NIL NIL");
    imap_tagged(s, "OK", "Namespace completed");
    imap_command_done(s);
}
