/*
 * cmd_message.c - commands on the messages of the selected mailbox: STORE
 * (with RFC 7162's UNCHANGEDSINCE), COPY, MOVE (RFC 6851), EXPUNGE, UID
 * EXPUNGE (UIDPLUS), CLOSE, UNSELECT.
 *
 * Every change is one LMDB write transaction; then the session's view is
 * synced (so it announces the change like any other) and the other imapd
 * processes are told (notify.c).
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "imap_modifiers.h"
#include "imapd.h"
#include "mailcore/conf.h"
#include "mailcore/conn.h"
#include "mailcore/quota.h"
#include "mailcore/service.h"
#include "mailcore/store.h"

/* A set argument ("$" included); sequence numbers must name existing
 * messages (BAD). */
static int parse_set(struct imap_session *s, const struct imap_arg *a, int uid,
                     struct imap_seqset *set)
{
    if (a->type != IMAP_ARG_ATOM || imap_seqset_parse(a->s, a->len, set) < 0) {
        imap_tagged(s, "BAD", "Invalid sequence set");
        imap_command_done(s);
        return -1;
    }
    if (searchres_expand(s->view, set, uid) < 0) {
        imap_seqset_free(set);
        imap_tagged(s, "NO", "[SERVERBUG] Out of memory");
        imap_command_done(s);
        return -1;
    }
    if (!uid && !view_seqset_valid(s->view, set)) {
        imap_seqset_free(set);
        imap_tagged(s, "BAD", "Invalid messageset");
        imap_command_done(s);
        return -1;
    }
    return 0;
}

/* STORE */

struct store_op {
    struct view *v;
    size_t *idx, n;
    int mode;                           /* 0 replace, +1 add, -1 remove */
    struct imap_flags flags;
    uint32_t sysbits;
    uint64_t kwbits;
    uint32_t *newflags;                 /* per message, after the STORE */
    uint64_t *newkw;
    uint64_t *newmodseq;
    int conditional;                    /* UNCHANGEDSINCE given (RFC 7162 3.1.3) */
    uint64_t unchangedsince;
    unsigned char *modified;            /* per message: failed that test */
    unsigned char *news;                /* per message: another session changed it too */
};

/* The flags after the STORE's change to flags f, keywords kw. */
static void store_apply(const struct store_op *o, uint32_t *f, uint64_t *kw)
{
    if (o->mode == 0) {
        *f = o->sysbits;
        *kw = o->kwbits;
    } else if (o->mode > 0) {
        *f |= o->sysbits;
        *kw |= o->kwbits;
    } else {
        *f &= ~o->sysbits;
        *kw &= ~o->kwbits;
    }
}

/* Message i of the STORE, changed as the index has it now (not as the
 * view last saw it: another session's change in between is kept). */
static int store_one(struct db_txn *txn, struct store_op *o, size_t i)
{
    const struct view_msg *m = &o->v->msgs[o->idx[i]];
    struct db_message now;
    uint32_t f, fv = m->flags;
    uint64_t kw, kwv = m->keywords;
    int rc = db_message_get(txn, o->v->mailbox_id, m->uid, &now);

    o->newmodseq[i] = 0;                /* not stored: no FETCH */
    if (rc == DB_NOTFOUND)
        return 0;                       /* expunged meanwhile */
    if (rc != 0)
        return rc;
    if (o->conditional && (o->modified[i] = now.modseq > o->unchangedsince))
        return 0;
    f = now.flags;
    kw = now.keywords;
    store_apply(o, &f, &kw);
    store_apply(o, &fv, &kwv);
    o->newflags[i] = f;
    o->newkw[i] = kw;
    o->newmodseq[i] = now.modseq;
    o->news[i] = f != fv || kw != kwv;
    if (f == now.flags && kw == now.keywords)
        return 0;
    return db_message_update(txn, o->v->mailbox_id, m->uid, f, kw, &o->newmodseq[i]);
}

static int learn_keyword(unsigned index, const char *name, void *arg)
{
    struct view *v = arg;

    if (index < DB_KEYWORDS_MAX && !(v->keywords_used & (1ull << index))) {
        snprintf(v->keywords[index], sizeof v->keywords[index], "%s", name);
        v->keywords_used |= 1ull << index;
    }
    return 0;
}

static int tx_store(struct db_txn *txn, void *arg)
{
    struct store_op *o = arg;
    uint64_t unknown = 0;
    int rc;

    o->kwbits = 0;
    for (size_t k = 0; k < o->flags.nkeywords; k++) {
        unsigned bit;
        rc = db_keyword_index(txn, o->v->mailbox_id, o->flags.keywords[k], o->mode >= 0, &bit);
        if (rc == DB_NOTFOUND)
            continue;                   /* removing a keyword nobody has */
        if (rc != 0)
            return rc;
        o->kwbits |= 1ull << bit;
        if (!(o->v->keywords_used & (1ull << bit))) {   /* new: its first spelling */
            snprintf(o->v->keywords[bit], sizeof o->v->keywords[bit], "%s",
                     o->flags.keywords[k]);
            o->v->keywords_used |= 1ull << bit;
        }
    }
    for (size_t i = 0; i < o->n; i++) {
        if ((rc = store_one(txn, o, i)) != 0)
            return rc;
        unknown |= o->newkw[i] & ~o->v->keywords_used;
    }
    /* Keywords another session defined: their names, for our FETCH. */
    return unknown ? db_keyword_foreach(txn, o->v->mailbox_id, learn_keyword, o->v) : 0;
}

static int store_bad(struct imap_session *s, struct imap_seqset *set, const char *why)
{
    imap_seqset_free(set);
    imap_tagged(s, "BAD", "%s", why);
    imap_command_done(s);
    return -1;
}

/* set [(UNCHANGEDSINCE n)] item flags: 0, or -1 after the reply. */
static int store_args(struct imap_session *s, int uid, const struct imap_arg *args, size_t nargs,
                      struct store_op *o, struct imap_seqset *set, int *silent)
{
    const char *item, *why = "Invalid STORE modifier";
    size_t a = 1;

    if (nargs < 3) {
        imap_tagged(s, "BAD", "Syntax: STORE set [(UNCHANGEDSINCE n)] item flags");
        imap_command_done(s);
        return -1;
    }
    if (parse_set(s, &args[0], uid, set) < 0)
        return -1;
    if (args[1].type == IMAP_ARG_LIST) {
        if (imap_store_mods_parse(&args[1], &o->unchangedsince, &why) < 0 || nargs < 4)
            return store_bad(s, set, why);
        o->conditional = s->condstore = 1;     /* a CONDSTORE-enabling command */
        a = 2;
    }
    item = args[a].type == IMAP_ARG_ATOM ? args[a].s : "";
    o->mode = item[0] == '+' ? 1 : item[0] == '-' ? -1 : 0;
    item += o->mode != 0;
    *silent = strcasecmp(item, "FLAGS.SILENT") == 0;
    if ((!*silent && strcasecmp(item, "FLAGS") != 0) ||
        imap_store_flags_parse(&args[a + 1], nargs - a - 1, &o->flags) < 0)
        return store_bad(s, set, "Invalid STORE item or flags");
    if (s->view->readonly) {
        imap_seqset_free(set);
        imap_tagged(s, "NO", "[READ-ONLY] Mailbox is read-only");
        imap_command_done(s);
        return -1;
    }
    return 0;
}

/* Our own change: the view takes it now (so that a sync reports only
 * other sessions' changes) and the client hears it: FETCH FLAGS unless
 * .SILENT; with CONDSTORE UID and MODSEQ too, even when .SILENT (RFC
 * 7162 3.1.3). */
static void store_report(struct imap_session *s, int uid, const struct store_op *o, int silent)
{
    char text[DB_KEYWORDS_MAX * (DB_KEYWORD_LEN + 1) + 64];

    for (size_t i = 0; i < o->n; i++) {
        struct view_msg *m = &s->view->msgs[o->idx[i]];
        if (o->newmodseq[i] == 0)
            continue;
        m->flags = o->newflags[i];
        m->keywords = o->newkw[i];
        m->modseq = o->newmodseq[i];
        if (s->condstore) {
            condstore_fetch_line(s, o->idx[i] + 1, m, !silent || o->news[i]);
            continue;
        }
        if (silent && !o->news[i])
            continue;                   /* .SILENT: only what others changed is news */
        view_flags_text(s->view, m, text, sizeof text);
        if (uid)
            imap_untagged(s, "%zu FETCH (UID %u FLAGS (%s))", o->idx[i] + 1, m->uid, text);
        else
            imap_untagged(s, "%zu FETCH (FLAGS (%s))", o->idx[i] + 1, text);
    }
}

/* The messages that failed UNCHANGEDSINCE, as uids or sequence numbers. */
static uint32_t *store_modified(const struct imap_session *s, int uid, const struct store_op *o,
                                size_t *n)
{
    uint32_t *out = malloc((o->n + 1) * sizeof *out);

    *n = 0;
    for (size_t i = 0; out && i < o->n; i++)
        if (o->modified[i])
            out[(*n)++] = uid ? s->view->msgs[o->idx[i]].uid : (uint32_t)(o->idx[i] + 1);
    return out;
}

static void store_free(struct store_op *o)
{
    free(o->idx), free(o->newflags), free(o->newkw), free(o->newmodseq), free(o->modified);
    free(o->news);
}

void cmd_store(struct imap_session *s, int uid, const struct imap_arg *args, size_t nargs)
{
    struct store_op o = {.v = s->view};
    struct imap_seqset set;
    int silent;
    char err[256];
    uint32_t *failed;
    size_t nfailed;

    if (store_args(s, uid, args, nargs, &o, &set, &silent) < 0)
        return;
    o.sysbits = view_db_flags(o.flags.system);
    o.idx = view_resolve(s->view, &set, uid, &o.n);
    imap_seqset_free(&set);
    uint64_t kw_before = s->view->keywords_used;
    o.newflags = calloc(o.n + 1, sizeof *o.newflags);
    o.newkw = calloc(o.n + 1, sizeof *o.newkw);
    o.newmodseq = calloc(o.n + 1, sizeof *o.newmodseq);
    o.modified = calloc(o.n + 1, sizeof *o.modified);
    o.news = calloc(o.n + 1, sizeof *o.news);
    if (!o.newflags || !o.newkw || !o.newmodseq || !o.modified || !o.news ||
        db_write_lazy(s->srv->svc->db, tx_store, &o, err, sizeof err) != 0) {
        imap_tagged(s, "NO", "[SERVERBUG] %s", o.news ? err : "out of memory");
        store_free(&o);
        imap_command_done(s);
        return;
    }
    notify_mailbox(s->srv, s->view->mailbox_id);
    if (s->view->keywords_used != kw_before)
        view_announce_flags(s);         /* a new keyword: FLAGS grew */
    store_report(s, uid, &o, silent);
    failed = store_modified(s, uid, &o, &nfailed);  /* before a sync renumbers */
    store_free(&o);
    if (view_sync(s, uid) < 0) {
        free(failed);
        return;
    }
    condstore_store_done(s, failed, nfailed);
    free(failed);
    imap_command_done(s);
}

/* COPY and MOVE */

struct copy_op {
    const char *user;
    struct view *v;
    char to[DB_MBOX_NAME_MAX + 1];
    size_t *idx, n;
    uint32_t *new_uids;
    uint32_t dst_validity;
    uint32_t dst_id;
    int move;
    uint64_t quota_default;             /* quota.h: COPY must fit, MOVE adds nothing */
    struct store_dead dead;
};

struct kwmap {
    char names[DB_KEYWORDS_MAX][DB_KEYWORD_LEN + 1];
    uint64_t used;
};

static int tx_copy(struct db_txn *txn, void *arg)
{
    struct copy_op *o = arg;
    struct db_mailbox dst;
    uint64_t added = 0;
    int rc = db_mailbox_get(txn, o->user, o->to, &dst);

    store_dead_reset(&o->dead);
    if (rc != 0)
        return rc;
    if (dst.special & DB_SPECIAL_NOSELECT)
        return DB_NOTFOUND;
    o->dst_validity = dst.uidvalidity;
    o->dst_id = dst.id;
    for (size_t i = 0; i < o->n; i++) {
        const struct view_msg *vm = &o->v->msgs[o->idx[i]];
        struct db_message m;
        uint64_t kw = 0;
        if ((rc = db_message_get(txn, o->v->mailbox_id, vm->uid, &m)) == DB_NOTFOUND) {
            o->new_uids[i] = 0;
            continue;
        }
        if (rc != 0)
            return rc;
        for (unsigned b = 0; b < DB_KEYWORDS_MAX; b++) {
            unsigned nb;
            if (!(m.keywords & (1ull << b)) || !(o->v->keywords_used & (1ull << b)))
                continue;
            if ((rc = db_keyword_index(txn, dst.id, o->v->keywords[b], 1, &nb)) != 0)
                return rc;
            kw |= 1ull << nb;
        }
        m.keywords = kw;
        added += m.size;
        if ((rc = db_message_add(txn, dst.id, &m)) != 0)
            return rc;
        o->new_uids[i] = m.uid;
        if (o->move && (rc = db_message_expunge(txn, o->v->mailbox_id, vm->uid, store_dead_add,
                                                &o->dead)) != 0)
            return rc;
    }
    return o->move ? 0 : quota_check_add(txn, o->user, o->quota_default, added);
}

/* The non-zero uids, ascending, as a uid-set with ranges ("4:9,12").
 * COPYUID's two sets pair up by position once expanded (RFC 4315 3), which
 * ranges keep as both lists ascend. */
static void uid_list(char *out, size_t outsz, const uint32_t *uids, size_t n)
{
    size_t off = 0, i = 0;

    out[0] = '\0';
    while (i < n && off < outsz) {
        size_t j;
        if (uids[i] == 0) {
            i++;
            continue;
        }
        for (j = i; j + 1 < n && uids[j + 1] == uids[j] + 1; j++)
            ;
        off += (size_t)snprintf(out + off, outsz - off, "%s%u", off ? "," : "", uids[i]);
        if (j > i && off < outsz)
            off += (size_t)snprintf(out + off, outsz - off, ":%u", uids[j]);
        i = j + 1;
    }
}

static void copy_or_move(struct imap_session *s, int uid, const struct imap_arg *args,
                         size_t nargs, int move)
{
    struct copy_op o = {.user = s->user, .v = s->view, .move = move,
                        .quota_default = imap_quota_default(s)};
    struct imap_seqset set;
    char err[256];
    int rc;

    if (nargs != 2) {
        imap_tagged(s, "BAD", "Syntax: %s set mailbox", move ? "MOVE" : "COPY");
        imap_command_done(s);
        return;
    }
    if (parse_set(s, &args[0], uid, &set) < 0)
        return;
    if (imap_mailbox_arg(s, &args[1], o.to, sizeof o.to) < 0) {
        imap_seqset_free(&set);
        imap_tagged(s, "NO", "[CANNOT] Invalid mailbox name");
        imap_command_done(s);
        return;
    }
    if (move && s->view->readonly) {
        imap_seqset_free(&set);
        imap_tagged(s, "NO", "[READ-ONLY] Mailbox is read-only");
        imap_command_done(s);
        return;
    }
    o.idx = view_resolve(s->view, &set, uid, &o.n);
    imap_seqset_free(&set);
    o.new_uids = calloc(o.n ? o.n : 1, sizeof *o.new_uids);
    rc = o.new_uids ? db_write(s->srv->svc->db, tx_copy, &o, err, sizeof err) : -1;
    if (rc == DB_NOTFOUND) {
        imap_no_mailbox(s, "TRYCREATE", o.to);
    } else if (rc == QUOTA_OVER) {
        imap_tagged(s, "NO", "%s", imap_quota_refusal);
    } else if (rc != 0) {
        imap_tagged(s, "NO", "[SERVERBUG] %s", o.new_uids ? err : "out of memory");
    } else {
        size_t cap = o.n * 11 + 2;
        char *src = malloc(cap), *dst = malloc(cap);
        uint32_t *srcuids = calloc(o.n ? o.n : 1, sizeof *srcuids);
        for (size_t i = 0; srcuids && i < o.n; i++)
            srcuids[i] = o.new_uids[i] ? s->view->msgs[o.idx[i]].uid : 0;
        if (src && dst && srcuids) {
            uid_list(src, cap, srcuids, o.n);
            uid_list(dst, cap, o.new_uids, o.n);
        }
        store_dead_unlink(s->srv->svc->store, &o.dead, err, sizeof err);
        notify_mailbox(s->srv, o.dst_id);
        if (move) {
            notify_mailbox(s->srv, s->view->mailbox_id);
            if (src && dst && src[0])
                imap_untagged(s, "OK [COPYUID %u %s %s] Moved", o.dst_validity, src, dst);
            if (view_sync(s, 1) < 0) {
                free(src), free(dst), free(srcuids), free(o.idx), free(o.new_uids);
                return;
            }
            imap_tagged(s, "OK", "Move completed");
        } else if (src && dst && src[0]) {
            imap_tagged(s, "OK", "[COPYUID %u %s %s] Copy completed", o.dst_validity, src, dst);
        } else {
            imap_tagged(s, "OK", "Copy completed");
        }
        free(src);
        free(dst);
        free(srcuids);
    }
    free(o.dead.ids);
    free(o.idx);
    free(o.new_uids);
    imap_command_done(s);
}

void cmd_copy(struct imap_session *s, int uid, const struct imap_arg *args, size_t nargs)
{
    copy_or_move(s, uid, args, nargs, 0);
}

void cmd_move(struct imap_session *s, int uid, const struct imap_arg *args, size_t nargs)
{
    copy_or_move(s, uid, args, nargs, 1);
}

/* EXPUNGE, UID EXPUNGE, CLOSE */

struct expunge_op {
    struct view *v;
    const struct imap_seqset *only;     /* UID EXPUNGE's set */
    struct store_dead dead;
    size_t count;
};

struct deleted_scan {
    const struct imap_seqset *only;
    uint32_t max;
    uint32_t *uids;
    size_t n, cap;
};

static int find_deleted(const struct db_message *m, void *arg)
{
    struct deleted_scan *d = arg;

    if (!(m->flags & DB_FLAG_DELETED) || (d->only && !imap_seqset_contains(d->only, m->uid, d->max)))
        return 0;
    if (d->n == d->cap) {
        size_t cap = d->cap ? d->cap * 2 : 64;
        uint32_t *p = realloc(d->uids, cap * sizeof *p);
        if (p == NULL)
            return -1;
        d->uids = p;
        d->cap = cap;
    }
    d->uids[d->n++] = m->uid;
    return 0;
}

/* The index decides what is \Deleted: another session may have set it. */
static int tx_expunge(struct db_txn *txn, void *arg)
{
    struct expunge_op *o = arg;
    struct deleted_scan d = {.only = o->only, .max = o->v->n ? o->v->msgs[o->v->n - 1].uid : 0};
    int rc;

    store_dead_reset(&o->dead);
    o->count = 0;
    if ((rc = db_message_foreach(txn, o->v->mailbox_id, find_deleted, &d)) != 0) {
        free(d.uids);
        return rc < 0 ? db_txn_fail(txn, "out of memory") : rc;
    }
    for (size_t i = 0; i < d.n; i++) {
        rc = db_message_expunge(txn, o->v->mailbox_id, d.uids[i], store_dead_add, &o->dead);
        if (rc != 0 && rc != DB_NOTFOUND) {
            free(d.uids);
            return rc;
        }
        o->count++;
    }
    free(d.uids);
    return o->dead.nomem ? db_txn_fail(txn, "out of memory") : 0;
}

/* Expunge \Deleted messages (of only, when set); 0 or -1 (reply sent). */
static int expunge(struct imap_session *s, const struct imap_seqset *only)
{
    struct expunge_op o = {.v = s->view, .only = only};
    char err[256];

    if (view_sync(s, 1) < 0)
        return -1;
    if (db_write(s->srv->svc->db, tx_expunge, &o, err, sizeof err) != 0) {
        free(o.dead.ids);
        imap_tagged(s, "NO", "[SERVERBUG] %s", err);
        imap_command_done(s);
        return -1;
    }
    store_dead_unlink(s->srv->svc->store, &o.dead, err, sizeof err);
    if (o.count)
        notify_mailbox(s->srv, s->view->mailbox_id);
    return 0;
}

void cmd_expunge(struct imap_session *s, int uid, const struct imap_arg *args, size_t nargs)
{
    struct imap_seqset set;

    if (s->view->readonly) {
        imap_tagged(s, "NO", "[READ-ONLY] Mailbox is read-only");
        imap_command_done(s);
        return;
    }
    if (!uid && nargs != 0) {
        imap_tagged(s, "BAD", "EXPUNGE takes no arguments");
        imap_command_done(s);
        return;
    }
    if (uid) {
        if (nargs != 1) {
            imap_tagged(s, "BAD", "Syntax: UID EXPUNGE set");
            imap_command_done(s);
            return;
        }
        if (parse_set(s, &args[0], uid, &set) < 0)
            return;
    }
    if (expunge(s, uid ? &set : NULL) == 0 && view_sync(s, 1) == 0) {
        /* With CONDSTORE on, the client's new HIGHESTMODSEQ (RFC 7162
         * 3.2.10: what a QRESYNC client keeps for its next SELECT). */
        if (s->condstore)
            imap_tagged(s, "OK", "[HIGHESTMODSEQ %llu] Expunge completed",
                        (unsigned long long)s->view->highestmodseq);
        else
            imap_tagged(s, "OK", "Expunge completed");
        imap_command_done(s);
    }
    if (uid)
        imap_seqset_free(&set);
}

static void unselect(struct imap_session *s)
{
    view_free(s->view);
    s->view = NULL;
    s->state = IS_AUTH;
}

void cmd_close(struct imap_session *s, int uid, const struct imap_arg *args, size_t nargs)
{
    struct expunge_op o = {.v = s->view};
    char err[256];

    (void)uid, (void)args, (void)nargs;
    /* Silently: CLOSE sends no EXPUNGE responses (RFC 3501 6.4.2). */
    if (!s->view->readonly && db_write(s->srv->svc->db, tx_expunge, &o, err, sizeof err) == 0) {
        store_dead_unlink(s->srv->svc->store, &o.dead, err, sizeof err);
        if (o.count)
            notify_mailbox(s->srv, s->view->mailbox_id);
    }
    free(o.dead.ids);
    unselect(s);
    imap_tagged(s, "OK", "Close completed");
    imap_command_done(s);
}

void cmd_unselect(struct imap_session *s, int uid, const struct imap_arg *args, size_t nargs)
{
    (void)uid, (void)args, (void)nargs;
    unselect(s);
    imap_tagged(s, "OK", "Unselect completed");
    imap_command_done(s);
}
