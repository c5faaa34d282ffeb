/*
 * condstore.c - CONDSTORE and QRESYNC (RFC 7162) on the session side:
 * ENABLE, SELECT's parameters and QRESYNC's resync responses, VANISHED
 * and VANISHED (EARLIER), and UID sets written straight to the client.
 *
 * Every message record carries a modseq and every mailbox a highestmodseq
 * (db.c); the view keeps each message's modseq, so CONDSTORE needs no
 * state of its own here beyond the session's condstore and qresync flags.
 *
 * Expunged UIDs are not remembered: VANISHED (EARLIER) names every UID of
 * the client's set (QRESYNC's known UIDs, 1:UIDNEXT-1 when it gave none;
 * UID FETCH's set) below UIDNEXT that no message has now.  RFC 7162 3.2.5
 * and 3.2.6 allow this: the set may include UIDs expunged before the
 * client's modseq, which a client ignores.  So QRESYNC's sequence match
 * data is checked for form and not needed.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "imap_modifiers.h"
#include "imapd.h"
#include "mailcore/conn.h"

/* A UID set written as it grows: ascending ranges, adjacent ones merged. */
struct setout {
    struct conn *conn;
    const char *prefix;
    uint32_t lo, hi;
    int open, any;
};

static void setout_flush(struct setout *o)
{
    if (!o->open)
        return;
    conn_printf(o->conn, "%s%u", o->any ? "," : o->prefix, o->lo);
    if (o->hi != o->lo)
        conn_printf(o->conn, ":%u", o->hi);
    o->any = 1;
    o->open = 0;
}

static void setout_add(struct setout *o, uint32_t lo, uint32_t hi)
{
    if (o->open && lo == o->hi + 1) {
        o->hi = hi;
        return;
    }
    setout_flush(o);
    o->lo = lo;
    o->hi = hi;
    o->open = 1;
}

/* Ends the line with suffix; 1 when something was written. */
static int setout_end(struct setout *o, const char *suffix)
{
    setout_flush(o);
    if (o->any)
        conn_printf(o->conn, "%s\r\n", suffix);
    return o->any;
}

const char *condstore_enable(struct imap_session *s, const char *name)
{
    if (strcasecmp(name, "CONDSTORE") == 0 && !s->condstore) {
        s->condstore = 1;
        return "CONDSTORE";
    }
    if (strcasecmp(name, "QRESYNC") == 0 && !s->qresync) {
        s->condstore = s->qresync = 1;
        return "QRESYNC";
    }
    return NULL;
}

static int bad(struct imap_session *s, const char *why)
{
    imap_tagged(s, "BAD", "%s", why);
    imap_command_done(s);
    return -1;
}

int condstore_select_params(struct imap_session *s, const struct imap_arg *arg,
                            struct imap_select_params *p)
{
    const char *why = "Invalid SELECT parameters";

    memset(p, 0, sizeof *p);
    if (arg == NULL)
        return 0;
    if (imap_select_params_parse(arg, p, &why) < 0)
        return bad(s, why);
    if (p->qresync && !s->qresync) {
        imap_select_params_free(p);
        return bad(s, "QRESYNC is not enabled");
    }
    s->condstore |= p->condstore || p->qresync;
    return 0;
}

static int range_cmp(const void *a, const void *b)
{
    const struct imap_seq_range *x = a, *y = b;

    return x->lo < y->lo ? -1 : x->lo > y->lo;
}

/* The set as ascending, disjoint ranges within 1..limit, '*' meaning
 * limit (UIDNEXT - 1: a uid expunged after the last one counts); NULL (n 0)
 * when empty or out of memory. */
static struct imap_seq_range *sorted_ranges(const struct imap_seqset *set, uint32_t limit,
                                            size_t *n)
{
    struct imap_seq_range *r = malloc((set->n ? set->n : 1) * sizeof *r);
    size_t k = 0;

    *n = 0;
    if (r == NULL)
        return NULL;
    for (size_t i = 0; i < set->n; i++) {
        uint32_t lo = set->r[i].lo, hi = set->r[i].hi;    /* lo <= hi, '*' the largest */
        if (hi > limit)
            hi = limit;
        if (lo >= 1 && lo <= hi)
            r[k++] = (struct imap_seq_range){lo, hi};
    }
    qsort(r, k, sizeof *r, range_cmp);
    for (size_t i = 0; i < k; i++) {
        if (*n > 0 && r[i].lo <= r[*n - 1].hi + 1) {
            if (r[i].hi > r[*n - 1].hi)
                r[*n - 1].hi = r[i].hi;
        } else {
            r[(*n)++] = r[i];
        }
    }
    return r;
}

/* "* VANISHED (EARLIER)": the uids of r (sorted ranges) the view lacks. */
static void vanished_earlier(struct imap_session *s, const struct imap_seq_range *r, size_t n)
{
    const struct view *v = s->view;
    struct setout o = {.conn = s->conn, .prefix = "* VANISHED (EARLIER) "};

    for (size_t i = 0; i < n; i++) {
        uint64_t next = r[i].lo;
        for (size_t k = view_first_at(v, r[i].lo); k < v->n && v->msgs[k].uid <= r[i].hi; k++) {
            if (v->msgs[k].uid > next)
                setout_add(&o, (uint32_t)next, v->msgs[k].uid - 1);
            next = (uint64_t)v->msgs[k].uid + 1;
        }
        if (next <= r[i].hi)
            setout_add(&o, (uint32_t)next, r[i].hi);
    }
    setout_end(&o, "");
}

void condstore_vanished_earlier(struct imap_session *s, const struct imap_seqset *uids)
{
    size_t n;
    struct imap_seq_range *r = sorted_ranges(uids, s->view->uidnext - 1, &n);

    vanished_earlier(s, r, n);
    free(r);
}

void condstore_vanished(struct imap_session *s, const struct view_msg *old, size_t nold,
                        const struct view_msg *now, size_t nnow)
{
    struct setout o = {.conn = s->conn, .prefix = "* VANISHED "};
    size_t j = 0;

    for (size_t i = 0; i < nold; i++) {
        while (j < nnow && now[j].uid < old[i].uid)
            j++;
        if (j == nnow || now[j].uid != old[i].uid)
            setout_add(&o, old[i].uid, old[i].uid);
    }
    setout_end(&o, "");
}

void condstore_fetch_line(struct imap_session *s, size_t seq, const struct view_msg *m,
                          int flags)
{
    char text[DB_KEYWORDS_MAX * (DB_KEYWORD_LEN + 1) + 64];

    if (!flags) {
        imap_untagged(s, "%zu FETCH (UID %u MODSEQ (%llu))", seq, m->uid,
                      (unsigned long long)m->modseq);
        return;
    }
    view_flags_text(s->view, m, text, sizeof text);
    imap_untagged(s, "%zu FETCH (UID %u FLAGS (%s) MODSEQ (%llu))", seq, m->uid, text,
                  (unsigned long long)m->modseq);
}

/* QRESYNC's FETCHes: the known messages changed since the client's modseq. */
static void changed_since(struct imap_session *s, const struct imap_seq_range *r, size_t n,
                          uint64_t modseq)
{
    const struct view *v = s->view;

    for (size_t i = 0; i < n; i++)
        for (size_t k = view_first_at(v, r[i].lo); k < v->n && v->msgs[k].uid <= r[i].hi; k++)
            if (v->msgs[k].modseq > modseq)
                condstore_fetch_line(s, k + 1, &v->msgs[k], 1);
}

void condstore_select_done(struct imap_session *s, struct imap_select_params *p)
{
    const struct view *v = s->view;
    struct imap_seq_range all = {1, v->uidnext - 1}, *r = &all;
    size_t n = v->uidnext > 1;

    if (p->qresync && p->uidvalidity == v->uidvalidity) {
        if (p->known_uids.n)
            r = sorted_ranges(&p->known_uids, v->uidnext - 1, &n);
        vanished_earlier(s, r, n);
        changed_since(s, r, n, p->modseq);
        if (r != &all)
            free(r);
    }
    imap_select_params_free(p);
}

/* The STORE UNCHANGEDSINCE answer: "OK [MODIFIED set]" when some failed. */
void condstore_store_done(struct imap_session *s, const uint32_t *failed, size_t n)
{
    struct setout o = {.conn = s->conn};
    char prefix[IMAP_TAG_MAX + 32];

    snprintf(prefix, sizeof prefix, "%s OK [MODIFIED ", s->tag);
    o.prefix = prefix;
    for (size_t i = 0; i < n; i++)
        setout_add(&o, failed[i], failed[i]);
    if (!setout_end(&o, "] Conditional STORE failed"))
        imap_tagged(s, "OK", "Store completed");
}

static int has_modseq(const struct imap_search_key *k)
{
    if (k->kind == IMAP_SK_MODSEQ)
        return 1;
    for (size_t i = 0; i < k->nsub; i++)
        if (has_modseq(&k->sub[i]))
            return 1;
    return 0;
}

uint64_t condstore_search_modseq(struct imap_session *s, const struct imap_search_key *root,
                                 const size_t *idx, size_t n)
{
    uint64_t max = 0;

    if (!has_modseq(root))
        return 0;
    s->condstore = 1;
    for (size_t i = 0; i < n; i++)
        if (s->view->msgs[idx[i]].modseq > max)
            max = s->view->msgs[idx[i]].modseq;
    return max;
}
