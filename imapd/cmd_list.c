/*
 * cmd_list.c - LIST (RFC 3501, LIST-EXTENDED RFC 5258, SPECIAL-USE RFC
 * 6154, LIST-STATUS RFC 5819), LSUB and STATUS (with SIZE, RFC 8438).
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "imapd.h"
#include "mailcore/conf.h"
#include "mailcore/conn.h"
#include "mailcore/service.h"

#define LIST_MAX 10000

struct entry {
    struct db_mailbox mb;
    int exists, subscribed;
    char shown[IMAP_MAILBOX_UTF8_MAX + 1];  /* the name as the session sees it */
};

struct listing {
    const char *user;
    struct entry *e;
    size_t n, cap;
};

static struct entry *find_entry(struct listing *l, const char *name)
{
    for (size_t i = 0; i < l->n; i++)
        if (strcmp(l->e[i].mb.name, name) == 0)
            return &l->e[i];
    return NULL;
}

static struct entry *add_entry(struct listing *l, const char *name)
{
    struct entry *e = find_entry(l, name);

    if (e)
        return e;
    if (l->n == l->cap) {
        size_t cap = l->cap ? l->cap * 2 : 32;
        struct entry *p;
        if (cap > LIST_MAX || (p = realloc(l->e, cap * sizeof *p)) == NULL)
            return NULL;
        l->e = p;
        l->cap = cap;
    }
    e = &l->e[l->n++];
    memset(e, 0, sizeof *e);
    snprintf(e->mb.name, sizeof e->mb.name, "%s", name);
    return e;
}

static int on_mailbox(const struct db_mailbox *m, void *arg)
{
    struct entry *e = add_entry(arg, m->name);

    if (e) {
        e->mb = *m;
        e->exists = 1;
    }
    return 0;
}

static int on_sub(const char *name, void *arg)
{
    struct entry *e = add_entry(arg, name);

    if (e)
        e->subscribed = 1;
    return 0;
}

static int tx_listing(struct db_txn *txn, void *arg)
{
    struct listing *l = arg;
    int rc = db_mailbox_foreach(txn, l->user, on_mailbox, l);

    return rc ? rc : db_subscription_foreach(txn, l->user, on_sub, l);
}

/* INBOX first, then the names in the session's form: code point order
 * for an IMAP4rev2 session's UTF-8. */
static int by_name(const void *a, const void *b)
{
    const struct entry *x = a, *y = b;
    int xi = strcmp(x->mb.name, "INBOX") == 0, yi = strcmp(y->mb.name, "INBOX") == 0;

    if (xi != yi)
        return yi - xi;
    return strcmp(x->shown, y->shown);
}

static void sort_listing(const struct imap_session *s, struct listing *l)
{
    for (size_t i = 0; i < l->n; i++) {
        const char *shown = imap_mailbox_shown(s, l->e[i].mb.name, l->e[i].shown,
                                               sizeof l->e[i].shown);
        if (shown != l->e[i].shown)
            snprintf(l->e[i].shown, sizeof l->e[i].shown, "%s", shown);
    }
    qsort(l->e, l->n, sizeof *l->e, by_name);
}

/* IMAP list wildcards: '*' matches anything, '%' anything but '/'.  On
 * bytes: for an IMAP4rev2 session pattern and name are both UTF-8, where a
 * character's bytes never match inside another's, so a match is always
 * on whole characters. */
static int match(const char *pat, const char *name)
{
    for (; *pat; pat++, name++) {
        if (*pat == '*' || *pat == '%') {
            for (const char *n = name;; n++) {
                if (match(pat + 1, n))
                    return 1;
                if (*n == '\0' || (*pat == '%' && *n == '/'))
                    return 0;
            }
        }
        if (*name == '\0' || *pat != *name)
            return 0;
    }
    return *name == '\0';
}

static int match_name(const char *ref, const char *pat, const char *name)
{
    char full[2 * IMAP_MAILBOX_UTF8_MAX + 2];

    snprintf(full, sizeof full, "%s%s", ref, pat);
    if (strncasecmp(full, "INBOX", 5) == 0 && (full[5] == '\0' || full[5] == '/'))
        memcpy(full, "INBOX", 5);
    return match(full, name);
}

/* Room for a reference or a pattern: a name's, in the session's form. */
static size_t list_room(const struct imap_session *s)
{
    return s->rev2 ? IMAP_MAILBOX_UTF8_MAX + 1 : DB_MBOX_NAME_MAX + 1;
}

static int has_children(const struct listing *l, const char *name)
{
    size_t n = strlen(name);

    for (size_t i = 0; i < l->n; i++)
        if (l->e[i].exists && strncmp(l->e[i].mb.name, name, n) == 0 &&
            l->e[i].mb.name[n] == '/')
            return 1;
    return 0;
}

static const char *special_use(uint32_t sp)
{
    sp &= ~(uint32_t)DB_SPECIAL_NOSELECT;
    return sp & DB_SPECIAL_SENT ? " \\Sent" : sp & DB_SPECIAL_DRAFTS ? " \\Drafts"
         : sp & DB_SPECIAL_TRASH ? " \\Trash" : sp & DB_SPECIAL_JUNK ? " \\Junk"
         : sp & DB_SPECIAL_ARCHIVE ? " \\Archive" : "";
}

struct list_opts {
    int subscribed_only, special_only, lsub;
    int recursive;                      /* RECURSIVEMATCH (RFC 5258 3.5) */
    int ret_subscribed, ret_children, ret_special;
    const struct imap_arg *status;      /* RETURN (STATUS (...)) */
};

static void status_line(struct imap_session *s, const struct db_mailbox *mb,
                        const struct imap_arg *items);
static int status_items_valid(const struct imap_arg *items);

/* Does e meet the selection options (SUBSCRIBED, SPECIAL-USE)? */
static int selected(const struct entry *e, const struct list_opts *o)
{
    if ((o->lsub || o->subscribed_only) && !e->subscribed)
        return 0;
    if (!o->lsub && !o->subscribed_only && !e->exists)
        return 0;
    return !o->special_only || (e->exists && (e->mb.special & ~(uint32_t)DB_SPECIAL_NOSELECT));
}


/* childinfo: e is listed only for a selected descendant (RECURSIVEMATCH):
 * ("CHILDINFO" ("SUBSCRIBED")) follows, RFC 5258 3.5. */
static void list_entry(struct imap_session *s, const struct listing *l, const struct entry *e,
                       const struct list_opts *o, int childinfo)
{
    char attrs[160];
    size_t off = 0;

    attrs[0] = '\0';
    if (!e->exists)
        off += (size_t)snprintf(attrs + off, sizeof attrs - off, " \\NonExistent");
    else if (e->mb.special & DB_SPECIAL_NOSELECT)
        off += (size_t)snprintf(attrs + off, sizeof attrs - off, " \\Noselect");
    if (o->lsub ? 0 : 1) {
        if (e->exists || o->ret_children)
            off += (size_t)snprintf(attrs + off, sizeof attrs - off, "%s",
                                    has_children(l, e->mb.name) ? " \\HasChildren"
                                                                : " \\HasNoChildren");
    }
    if ((o->ret_subscribed || o->subscribed_only) && e->subscribed && !o->lsub)
        off += (size_t)snprintf(attrs + off, sizeof attrs - off, " \\Subscribed");
    if (e->exists)
        snprintf(attrs + off, sizeof attrs - off, "%s", special_use(e->mb.special));
    conn_printf(s->conn, "* %s (%s) \"/\" ", o->lsub ? "LSUB" : "LIST", attrs[0] ? attrs + 1 : "");
    imap_string(s, e->shown, strlen(e->shown));
    if (childinfo)
        conn_printf(s->conn, " (\"CHILDINFO\" (\"%s\"))",
                    o->subscribed_only ? "SUBSCRIBED" : "SPECIAL-USE");
    imap_write(s, "\r\n", 2);
    if (o->status && e->exists)
        status_line(s, &e->mb, o->status);
}

static int parse_opts(const struct imap_arg *a, size_t n, struct list_opts *o, int selection)
{
    for (size_t i = 0; i < n; i++) {
        const char *w = a[i].s;
        if (a[i].type != IMAP_ARG_ATOM)
            return -1;
        if (selection && strcasecmp(w, "SUBSCRIBED") == 0)
            o->subscribed_only = 1;
        else if (selection && strcasecmp(w, "SPECIAL-USE") == 0)
            o->special_only = 1;
        else if (selection && strcasecmp(w, "RECURSIVEMATCH") == 0)
            o->recursive = 1;
        else if (selection && strcasecmp(w, "REMOTE") == 0)
            ;                           /* no remote mailboxes here (RFC 5258 3.1) */
        else if (!selection && strcasecmp(w, "SUBSCRIBED") == 0)
            o->ret_subscribed = 1;
        else if (!selection && strcasecmp(w, "CHILDREN") == 0)
            o->ret_children = 1;
        else if (!selection && strcasecmp(w, "SPECIAL-USE") == 0)
            o->ret_special = 1;
        else if (!selection && strcasecmp(w, "STATUS") == 0 && i + 1 < n &&
                 a[i + 1].type == IMAP_ARG_LIST && status_items_valid(&a[i + 1]))
            o->status = &a[++i];
        else
            return -1;
    }
    return 0;
}

/* Does any pattern match the name as the session sees it (UTF-8 for
 * IMAP4rev2: reference and patterns are UTF-8 there, RFC 9051 6.3.9)? */
static int list_hit(const struct imap_session *s, const char *ref, const struct imap_arg *pats,
                    size_t npats, const char *shown)
{
    char pat[IMAP_MAILBOX_UTF8_MAX + 1];

    for (size_t p = 0; p < npats; p++)
        if (imap_astring(&pats[p], pat, list_room(s)) == 0 && match_name(ref, pat, shown))
            return 1;
    return 0;
}

/* RECURSIVEMATCH: a descendant of e that meets the selection options but
 * is not listed itself, as the patterns do not match it (RFC 5258 3.5:
 * with "%" the parent of a subscribed child is listed with CHILDINFO, with
 * "*" the child is listed instead). */
static int hidden_selected_child(const struct imap_session *s, const struct listing *l,
                                 const struct entry *e, const struct list_opts *o,
                                 const char *ref, const struct imap_arg *pats, size_t npats)
{
    size_t n = strlen(e->mb.name);

    for (size_t i = 0; i < l->n; i++)
        if (strncmp(l->e[i].mb.name, e->mb.name, n) == 0 && l->e[i].mb.name[n] == '/' &&
            selected(&l->e[i], o) && !list_hit(s, ref, pats, npats, l->e[i].shown))
            return 1;
    return 0;
}

static void do_list(struct imap_session *s, const struct imap_arg *args, size_t nargs, int lsub)
{
    struct listing l = {.user = s->user};
    struct list_opts o = {.lsub = lsub};
    char ref[IMAP_MAILBOX_UTF8_MAX + 1], pat[IMAP_MAILBOX_UTF8_MAX + 1], err[256];
    const struct imap_arg *pats;
    size_t npats, i = 0;

    if (!lsub && nargs > 0 && args[0].type == IMAP_ARG_LIST) {
        if (parse_opts(args[0].list, args[0].nlist, &o, 1) < 0 ||
            (o.recursive && !o.subscribed_only && !o.special_only))
            goto bad;                   /* RECURSIVEMATCH alone: BAD (RFC 5258 3) */
        i++;
    }
    if (nargs < i + 2 || imap_astring(&args[i], ref, list_room(s)) < 0)
        goto bad;
    pats = &args[i + 1];
    npats = 1;
    if (pats->type == IMAP_ARG_LIST) {
        npats = pats->nlist;
        pats = pats->list;
    }
    if (nargs > i + 2) {
        if (nargs != i + 4 || args[i + 2].type != IMAP_ARG_ATOM ||
            strcasecmp(args[i + 2].s, "RETURN") != 0 || args[i + 3].type != IMAP_ARG_LIST ||
            parse_opts(args[i + 3].list, args[i + 3].nlist, &o, 0) < 0)
            goto bad;
    }
    if (npats == 1 && imap_astring(&pats[0], pat, list_room(s)) == 0 && pat[0] == '\0' && !lsub) {
        imap_untagged(s, "LIST (\\Noselect) \"/\" \"\"");
        imap_tagged(s, "OK", "List completed");
        imap_command_done(s);
        return;
    }
    if (db_read(s->srv->svc->db, tx_listing, &l, err, sizeof err) != 0) {
        imap_tagged(s, "NO", "[SERVERBUG] %s", err);
        imap_command_done(s);
        free(l.e);
        return;
    }
    sort_listing(s, &l);
    for (size_t k = 0; k < l.n; k++) {
        const struct entry *e = &l.e[k];
        int sel = selected(e, &o);
        if (!sel && !o.recursive)
            continue;
        if (!list_hit(s, ref, pats, npats, e->shown))
            continue;
        if (sel)
            list_entry(s, &l, e, &o, 0);
        else if (hidden_selected_child(s, &l, e, &o, ref, pats, npats))
            list_entry(s, &l, e, &o, 1);
    }
    free(l.e);
    imap_tagged(s, "OK", "%s completed", lsub ? "Lsub" : "List");
    imap_command_done(s);
    return;
bad:
    imap_tagged(s, "BAD", "Syntax: %s", lsub ? "LSUB reference pattern"
                                            : "LIST [(options)] reference pattern [RETURN (options)]");
    imap_command_done(s);
}

void cmd_list(struct imap_session *s, int uid, const struct imap_arg *args, size_t nargs)
{
    (void)uid;
    do_list(s, args, nargs, 0);
}

void cmd_lsub(struct imap_session *s, int uid, const struct imap_arg *args, size_t nargs)
{
    (void)uid;
    do_list(s, args, nargs, 1);
}

/* STATUS */

struct recent_count {
    uint32_t from;
    size_t n;
    uint64_t deleted;
};

static int count_recent(const struct db_message *m, void *arg)
{
    struct recent_count *r = arg;

    r->n += m->uid >= r->from;
    r->deleted += (m->flags & DB_FLAG_DELETED) != 0;
    return 0;
}

struct status_read {
    const struct db_mailbox *mb;
    struct recent_count rc;
};

static int tx_status(struct db_txn *txn, void *arg)
{
    struct status_read *r = arg;

    r->rc.from = r->mb->recent_uid ? r->mb->recent_uid : 1;
    return db_message_foreach(txn, r->mb->id, count_recent, &r->rc);
}

/* The STATUS items (RFC 9051 6.3.11, RFC 8438 SIZE, RFC 7162
 * HIGHESTMODSEQ, RFC 7889 APPENDLIMIT), in one table for STATUS and LIST
 * RETURN (STATUS ...).  RECENT is not sent to an IMAP4rev2 session:
 * RFC 9051's status-att has none. */
enum status_item { ST_MESSAGES, ST_RECENT, ST_UIDNEXT, ST_UIDVALIDITY, ST_UNSEEN, ST_SIZE,
                   ST_DELETED, ST_HIGHESTMODSEQ, ST_APPENDLIMIT, ST_COUNT };
static const char *const status_names[ST_COUNT] = {
    "MESSAGES", "RECENT", "UIDNEXT", "UIDVALIDITY", "UNSEEN", "SIZE", "DELETED",
    "HIGHESTMODSEQ", "APPENDLIMIT"};

/* The item an argument names, or ST_COUNT. */
static enum status_item status_item(const struct imap_arg *a)
{
    size_t k;

    for (k = 0; a->type == IMAP_ARG_ATOM && k < ST_COUNT; k++)
        if (strcasecmp(a->s, status_names[k]) == 0)
            break;
    return a->type == IMAP_ARG_ATOM ? (enum status_item)k : ST_COUNT;
}

static int status_items_valid(const struct imap_arg *items)
{
    for (size_t i = 0; i < items->nlist; i++)
        if (status_item(&items->list[i]) == ST_COUNT)
            return 0;
    return 1;
}

static void status_line(struct imap_session *s, const struct db_mailbox *mb,
                        const struct imap_arg *items)
{
    struct status_read r = {.mb = mb};
    char out[512] = "", err[256];
    size_t off = 0;
    int need_scan = 0;

    for (size_t i = 0; i < items->nlist; i++) {
        enum status_item k = status_item(&items->list[i]);
        need_scan |= k == ST_RECENT || k == ST_DELETED;
    }
    if (need_scan)
        db_read(s->srv->svc->db, tx_status, &r, err, sizeof err);
    const unsigned long long values[ST_COUNT] = {
        mb->messages, r.rc.n, mb->uidnext, mb->uidvalidity, mb->unseen, mb->size,
        r.rc.deleted, mb->highestmodseq, conf_uint(s->srv->svc->conf, "message_size_limit")};
    for (size_t i = 0; i < items->nlist; i++) {
        enum status_item k = status_item(&items->list[i]);
        if (k == ST_COUNT || (k == ST_RECENT && s->rev2) || off >= sizeof out)
            continue;
        off += (size_t)snprintf(out + off, sizeof out - off, "%s%s %llu", off ? " " : "",
                                status_names[k], values[k]);
    }
    conn_printf(s->conn, "* STATUS ");
    imap_mailbox_send(s, mb->name);
    conn_printf(s->conn, " (%s)\r\n", out);
}

struct get_mb {
    const char *user;
    const char *name;
    struct db_mailbox mb;
};

static int tx_get_mb(struct db_txn *txn, void *arg)
{
    struct get_mb *g = arg;

    return db_mailbox_get(txn, g->user, g->name, &g->mb);
}

void cmd_status(struct imap_session *s, int uid, const struct imap_arg *args, size_t nargs)
{
    char name[DB_MBOX_NAME_MAX + 1], err[256];
    struct get_mb g = {.user = s->user, .name = name};

    (void)uid;
    if (nargs != 2 || imap_mailbox_arg(s, &args[0], name, sizeof name) < 0 ||
        args[1].type != IMAP_ARG_LIST) {
        imap_tagged(s, "BAD", "Syntax: STATUS mailbox (items)");
        imap_command_done(s);
        return;
    }
    if (!status_items_valid(&args[1])) {
        imap_tagged(s, "BAD", "Unknown STATUS item");
        imap_command_done(s);
        return;
    }
    for (size_t i = 0; i < args[1].nlist; i++)
        if (status_item(&args[1].list[i]) == ST_HIGHESTMODSEQ)
            s->condstore = 1;           /* a CONDSTORE-enabling command (RFC 7162 3.1) */
    if (db_read(s->srv->svc->db, tx_get_mb, &g, err, sizeof err) != 0 ||
        (g.mb.special & DB_SPECIAL_NOSELECT)) {
        imap_no_mailbox(s, "NONEXISTENT", name);
        imap_command_done(s);
        return;
    }
    status_line(s, &g.mb, &args[1]);
    imap_tagged(s, "OK", "Status completed");
    imap_command_done(s);
}
