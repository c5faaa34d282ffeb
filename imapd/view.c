/*
 * view.c - a session's view of its selected mailbox: the list of messages
 * (sequence number = position), their flags, and its sync with LMDB.
 *
 * view_sync() compares the view with the index and tells the client what
 * changed, in RFC 3501 7.4.1 / 5.5 order: EXPUNGE for messages gone (only
 * where expunges may be announced), untagged FETCH FLAGS for changed flags,
 * EXISTS and RECENT for new messages.  With QRESYNC one VANISHED replaces
 * the EXPUNGEs, and with CONDSTORE the FETCHes carry MODSEQ.  A cheap
 * check first: when the mailbox's highestmodseq and uidnext are what the
 * view saw, nothing changed and the index is not read.
 *
 * A session in IDLE may sit for days: its view sleeps (view_sleep), keeping
 * only its uids and \Recent uids as ranges -- a few bytes for a mailbox
 * without gaps instead of 32 bytes per message and the keyword table.  A
 * sync that finds a change expands it (flags unknown: a message whose
 * modseq is above the view's highestmodseq gets its FETCH FLAGS), merges
 * as usual, and puts it back to sleep.
 *
 * \Recent (RFC 3501 2.3.2): a message is recent in exactly one session,
 * the first read-write one to see it.  The mailbox's recent_uid says where
 * unclaimed messages begin; SELECT and a sync that finds new messages
 * claim them by moving it to uidnext in a write transaction.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "imapd.h"
#include "mailcore/conn.h"
#include "mailcore/service.h"

#define FLAGS_UNKNOWN UINT32_MAX        /* a woken view's messages */

struct load {
    const char *user;
    const char *name;
    uint32_t mailbox_id;
    struct db_mailbox mb;
    struct view_msg *msgs;
    size_t n, cap;
    char (*keywords)[DB_KEYWORD_LEN + 1];
    uint64_t used;
    int changed;
    int claim;                  /* take the unclaimed \Recent messages */
    uint32_t recent_from;       /* uids >= this are recent for us */
    uint64_t seen_modseq;
    uint32_t seen_uidnext;
    int nomem;
};

static int add_msg(const struct db_message *m, void *arg)
{
    struct load *l = arg;

    if (l->n == l->cap) {
        size_t cap = l->cap ? l->cap * 2 : 64;
        struct view_msg *p = realloc(l->msgs, cap * sizeof *p);
        if (p == NULL) {
            l->nomem = 1;
            return -1;
        }
        l->msgs = p;
        l->cap = cap;
    }
    l->msgs[l->n++] = (struct view_msg){m->uid, m->flags, m->uid >= l->recent_from, m->keywords,
                                        m->modseq};
    return 0;
}

static int add_keyword(unsigned index, const char *name, void *arg)
{
    struct load *l = arg;

    if (index < DB_KEYWORDS_MAX) {
        snprintf(l->keywords[index], DB_KEYWORD_LEN + 1, "%s", name);
        l->used |= 1ull << index;
    }
    return 0;
}

static int tx_load(struct db_txn *txn, void *arg)
{
    struct load *l = arg;
    int rc = l->name ? db_mailbox_get(txn, l->user, l->name, &l->mb)
                     : db_mailbox_by_id(txn, l->mailbox_id, &l->mb);

    if (rc != 0)
        return rc;
    if (l->mb.special & DB_SPECIAL_NOSELECT)
        return DB_NOTFOUND;             /* a name kept for its children */
    if (l->mb.highestmodseq == l->seen_modseq && l->mb.uidnext == l->seen_uidnext)
        return 0;                               /* nothing changed */
    l->changed = 1;
    l->recent_from = l->mb.recent_uid ? l->mb.recent_uid : 1;
    if (l->claim && l->mb.uidnext > l->recent_from &&
        (rc = db_mailbox_set_recent(txn, l->mb.id, l->mb.uidnext)) != 0)
        return rc;
    l->n = 0;
    l->used = 0;
    if ((rc = db_message_foreach(txn, l->mb.id, add_msg, l)) != 0)
        return rc;
    return db_keyword_foreach(txn, l->mb.id, add_keyword, l);
}

struct view *view_open(struct imap_session *s, const char *name, int readonly, char *err,
                       size_t errlen)
{
    struct view *v = calloc(1, sizeof *v);
    struct load l = {.user = s->user, .name = name};

    if (v == NULL || (v->keywords = calloc(DB_KEYWORDS_MAX, sizeof *v->keywords)) == NULL) {
        free(v);
        snprintf(err, errlen, "out of memory");
        return NULL;
    }
    l.keywords = v->keywords;
    l.claim = !readonly;
    if ((readonly ? db_read : db_write_lazy)(s->srv->svc->db, tx_load, &l, err, errlen) != 0) {
        free(l.msgs);
        free(v->keywords);
        free(v);
        return NULL;
    }
    v->mailbox_id = l.mb.id;
    snprintf(v->name, sizeof v->name, "%s", l.mb.name);
    v->uidvalidity = l.mb.uidvalidity;
    v->uidnext = l.mb.uidnext;
    v->highestmodseq = l.mb.highestmodseq;
    v->readonly = readonly;
    v->rev2 = s->rev2;
    v->msgs = l.msgs;
    v->n = l.n;
    v->cap = l.cap;
    v->keywords_used = l.used;
    return v;
}

void view_free(struct view *v)
{
    if (v == NULL)
        return;
    free(v->msgs);
    free(v->keywords);
    free(v->sleep_uids);
    free(v->sleep_recent);
    free(v->saved);
    free(v);
}

/* The uids of msgs (only the recent ones: recent_only) as ranges. */
static struct uid_range *ranges_of(const struct view_msg *msgs, size_t n, int recent_only,
                                   size_t *nranges)
{
    struct uid_range *r;
    size_t count = 0, k = 0;
    uint32_t prev = 0;

    for (size_t i = 0; i < n; i++)
        if (!recent_only || msgs[i].recent) {
            count += count == 0 || msgs[i].uid != prev + 1;
            prev = msgs[i].uid;
        }
    *nranges = count;
    if (count == 0)
        return NULL;
    if ((r = malloc(count * sizeof *r)) == NULL)
        return NULL;
    for (size_t i = 0; i < n; i++) {
        if (recent_only && !msgs[i].recent)
            continue;
        if (k > 0 && msgs[i].uid == r[k - 1].hi + 1)
            r[k - 1].hi = msgs[i].uid;
        else
            r[k++] = (struct uid_range){msgs[i].uid, msgs[i].uid};
    }
    return r;
}

void view_sleep(struct view *v)
{
    struct uid_range *uids, *recent;
    size_t nuids, nrecent;

    if (v->asleep)
        return;
    uids = ranges_of(v->msgs, v->n, 0, &nuids);
    recent = ranges_of(v->msgs, v->n, 1, &nrecent);
    if ((nuids && uids == NULL) || (nrecent && recent == NULL)) {
        free(uids), free(recent);
        return;                         /* no memory: stays awake */
    }
    free(v->msgs);
    free(v->keywords);
    v->msgs = NULL;
    v->keywords = NULL;
    v->cap = 0;
    v->sleep_uids = uids;
    v->sleep_nuids = nuids;
    v->sleep_recent = recent;
    v->sleep_nrecent = nrecent;
    v->asleep = 1;
}

/* Expand a sleeping view: its messages with flags unknown.  0 or -1. */
static int thaw(struct view *v)
{
    struct view_msg *msgs = malloc((v->n ? v->n : 1) * sizeof *msgs);
    char (*keywords)[DB_KEYWORD_LEN + 1] = calloc(DB_KEYWORDS_MAX, sizeof *keywords);
    size_t k = 0, r = 0;

    if (msgs == NULL || keywords == NULL) {
        free(msgs), free(keywords);
        return -1;
    }
    for (size_t i = 0; i < v->sleep_nuids; i++)
        for (uint64_t uid = v->sleep_uids[i].lo; uid <= v->sleep_uids[i].hi && k < v->n; uid++) {
            while (r < v->sleep_nrecent && v->sleep_recent[r].hi < uid)
                r++;
            msgs[k++] = (struct view_msg){
                .uid = (uint32_t)uid, .flags = FLAGS_UNKNOWN,
                .recent = r < v->sleep_nrecent && v->sleep_recent[r].lo <= uid};
        }
    free(v->sleep_uids);
    free(v->sleep_recent);
    v->sleep_uids = v->sleep_recent = NULL;
    v->sleep_nuids = v->sleep_nrecent = 0;
    v->msgs = msgs;
    v->n = k;
    v->cap = v->n ? v->n : 1;
    v->keywords = keywords;
    v->asleep = 0;
    return 0;
}

int view_is_recent(const struct view *v, const struct view_msg *m)
{
    (void)v;
    return m->recent != 0;
}

void view_flags_text(const struct view *v, const struct view_msg *m, char *out, size_t outsz)
{
    static const struct {
        uint32_t bit;
        const char *name;
    } sys[] = {{DB_FLAG_ANSWERED, "\\Answered"}, {DB_FLAG_FLAGGED, "\\Flagged"},
               {DB_FLAG_DELETED, "\\Deleted"},   {DB_FLAG_SEEN, "\\Seen"},
               {DB_FLAG_DRAFT, "\\Draft"}};
    size_t off = 0;

    out[0] = '\0';
    for (size_t i = 0; i < sizeof sys / sizeof sys[0]; i++)
        if (m->flags & sys[i].bit)
            off += (size_t)snprintf(out + off, off < outsz ? outsz - off : 0, "%s%s",
                                    off ? " " : "", sys[i].name);
    for (unsigned i = 0; i < DB_KEYWORDS_MAX; i++)
        if ((m->keywords & (1ull << i)) && (v->keywords_used & (1ull << i)))
            off += (size_t)snprintf(out + off, off < outsz ? outsz - off : 0, "%s%s",
                                    off ? " " : "", v->keywords[i]);
    if (view_is_recent(v, m) && !v->rev2)
        snprintf(out + off, off < outsz ? outsz - off : 0, "%s\\Recent", off ? " " : "");
}

void view_announce_flags(struct imap_session *s)
{
    struct view *v = s->view;
    char kw[DB_KEYWORDS_MAX * (DB_KEYWORD_LEN + 1) + 1] = "";
    size_t off = 0, count = 0;

    for (unsigned i = 0; i < DB_KEYWORDS_MAX; i++)
        if (v->keywords_used & (1ull << i)) {
            off += (size_t)snprintf(kw + off, sizeof kw - off, " %s", v->keywords[i]);
            count++;
        }
    v->announced_keywords = count;
    imap_untagged(s, "FLAGS (\\Answered \\Flagged \\Deleted \\Seen \\Draft%s)", kw);
    if (v->readonly)
        imap_untagged(s, "OK [PERMANENTFLAGS ()] Read-only mailbox.");
    else
        imap_untagged(s, "OK [PERMANENTFLAGS (\\Answered \\Flagged \\Deleted \\Seen \\Draft%s%s)] "
                         "Flags permitted.", kw, count < DB_KEYWORDS_MAX ? " \\*" : "");
}

static void announce_fetch(struct imap_session *s, size_t seq, const struct view_msg *m)
{
    char flags[DB_KEYWORDS_MAX * (DB_KEYWORD_LEN + 1) + 64];

    if (s->condstore) {
        condstore_fetch_line(s, seq, m, 1);     /* with MODSEQ (RFC 7162 3.1) */
        return;
    }
    view_flags_text(s->view, m, flags, sizeof flags);
    imap_untagged(s, "%zu FETCH (UID %u FLAGS (%s))", seq, m->uid, flags);
}

/* Did message m change since the view last looked?  A woken view does not
 * know its flags: its modseq says. */
static int flags_changed(const struct view *v, const struct view_msg *old,
                         const struct view_msg *now)
{
    if (old->flags == FLAGS_UNKNOWN)
        return now->modseq > v->highestmodseq;
    return now->flags != old->flags || now->keywords != old->keywords;
}

/* view_sync; wake: a sleeping view is read whatever changed and stays awake. */
static int sync_view(struct imap_session *s, int allow_expunge, int wake)
{
    struct view *v = s->view;
    int was_asleep = v->asleep;
    struct load l = {.mailbox_id = v->mailbox_id,
                     .seen_modseq = was_asleep && wake ? UINT64_MAX : v->highestmodseq,
                     .seen_uidnext = v->uidnext};
    char keywords[DB_KEYWORDS_MAX][DB_KEYWORD_LEN + 1];
    char err[256];
    size_t i = 0, j = 0, out = 0, added = 0, recent = 0;
    struct view_msg *merged;

    l.keywords = keywords;
    if (db_read(s->srv->svc->db, tx_load, &l, err, sizeof err) != 0) {
        free(l.msgs);
        imap_session_close(s, "Mailbox has been deleted");
        return -1;
    }
    if (!l.changed)
        return 0;
    if (was_asleep && thaw(v) != 0) {
        free(l.msgs);
        imap_session_close(s, "Out of memory");
        return -1;
    }
    if (!v->readonly && l.mb.uidnext != v->uidnext) {
        /* New mail: read again, claiming its \Recent, in one transaction. */
        free(l.msgs);
        l.msgs = NULL;
        l.n = l.cap = 0;
        l.claim = 1;
        if (db_write_lazy(s->srv->svc->db, tx_load, &l, err, sizeof err) != 0) {
            free(l.msgs);
            imap_session_close(s, "Mailbox has been deleted");
            return -1;
        }
    }
    if (l.used != v->keywords_used || was_asleep)
        memcpy(v->keywords, keywords, sizeof keywords);
    if (l.used != v->keywords_used) {
        v->keywords_used = l.used;
        view_announce_flags(s);
    }
    /* Merge: the old view's order with expunged entries kept when they may
     * not be announced yet, new messages appended. */
    merged = malloc((v->n + l.n + 1) * sizeof *merged);
    if (merged == NULL) {
        free(l.msgs);
        if (!was_asleep)
            return 0;                   /* the next sync tries again */
        imap_session_close(s, "Out of memory");   /* woken: flags unknown */
        return -1;
    }
    if (allow_expunge && s->qresync)    /* VANISHED replaces EXPUNGE (RFC 7162 3.2.10) */
        condstore_vanished(s, v->msgs, v->n, l.msgs, l.n);
    while (i < v->n) {
        if (j < l.n && l.msgs[j].uid == v->msgs[i].uid) {
            l.msgs[j].recent = v->msgs[i].recent;   /* stays what it was */
            if (flags_changed(v, &v->msgs[i], &l.msgs[j]))
                announce_fetch(s, out + 1, &l.msgs[j]);
            merged[out++] = l.msgs[j++];
            i++;
        } else if (j < l.n && l.msgs[j].uid < v->msgs[i].uid) {
            j++;                                /* cannot happen: uids only grow */
        } else if (allow_expunge) {
            if (!s->qresync)
                imap_untagged(s, "%zu EXPUNGE", out + 1);
            i++;
        } else {
            merged[out++] = v->msgs[i++];       /* announce later */
        }
    }
    /* What is left is new: uids only grow. */
    for (; j < l.n; j++) {
        merged[out++] = l.msgs[j];
        added++;
        recent += view_is_recent(v, &l.msgs[j]);
    }
    free(v->msgs);
    free(l.msgs);
    v->msgs = merged;
    v->n = out;
    v->cap = out + 1;
    if (added) {
        imap_untagged(s, "%zu EXISTS", v->n);
        if (recent && !v->rev2) {
            size_t total = 0;
            for (size_t k = 0; k < v->n; k++)
                total += view_is_recent(v, &v->msgs[k]);
            imap_untagged(s, "%zu RECENT", total);
        }
    }
    /* Until pending expunges are announced, keep the old watermarks so the
     * next sync looks again. */
    if (allow_expunge || out == l.n) {
        v->highestmodseq = l.mb.highestmodseq;
        v->uidnext = l.mb.uidnext;
    }
    if (was_asleep && !wake)
        view_sleep(v);
    return 0;
}

int view_sync(struct imap_session *s, int allow_expunge)
{
    return sync_view(s, allow_expunge, 0);
}

int view_wake(struct imap_session *s)
{
    return s->view->asleep ? sync_view(s, 1, 1) : 0;
}

size_t view_first_at(const struct view *v, uint32_t uid)
{
    size_t lo = 0, hi = v->n;

    while (lo < hi) {
        size_t mid = (lo + hi) / 2;
        if (v->msgs[mid].uid < uid)
            lo = mid + 1;
        else
            hi = mid;
    }
    return lo;
}

uint32_t view_seq_of_uid(const struct view *v, uint32_t uid)
{
    size_t i = view_first_at(v, uid);

    return i < v->n && v->msgs[i].uid == uid ? (uint32_t)(i + 1) : 0;
}

int view_seqset_valid(const struct view *v, const struct imap_seqset *set)
{
    for (size_t i = 0; i < set->n; i++)
        if ((set->r[i].hi != UINT32_MAX && set->r[i].hi > v->n) ||
            (set->r[i].lo != UINT32_MAX && set->r[i].lo > v->n))
            return 0;
    return 1;
}

size_t *view_resolve(const struct view *v, const struct imap_seqset *set, int uid, size_t *n)
{
    size_t *idx = malloc((v->n ? v->n : 1) * sizeof *idx);
    uint32_t max;

    *n = 0;
    if (idx == NULL || v->n == 0)
        return idx;
    max = uid ? v->msgs[v->n - 1].uid : (uint32_t)v->n;
    for (size_t i = 0; i < v->n; i++) {
        uint32_t key = uid ? v->msgs[i].uid : (uint32_t)(i + 1);
        if (imap_seqset_contains(set, key, max))
            idx[(*n)++] = i;
    }
    return idx;
}

uint32_t view_db_flags(unsigned imap)
{
    return (imap & IMAP_FLAG_SEEN ? DB_FLAG_SEEN : 0) |
           (imap & IMAP_FLAG_ANSWERED ? DB_FLAG_ANSWERED : 0) |
           (imap & IMAP_FLAG_FLAGGED ? DB_FLAG_FLAGGED : 0) |
           (imap & IMAP_FLAG_DELETED ? DB_FLAG_DELETED : 0) |
           (imap & IMAP_FLAG_DRAFT ? DB_FLAG_DRAFT : 0);
}
