/*
 * cmd_sort.c - SORT and UID SORT (RFC 5256; DISPLAYFROM and DISPLAYTO of
 * RFC 5957; ESORT's RETURN (MIN MAX COUNT ALL) of RFC 5267, and SAVE of
 * RFC 5182), THREAD and UID THREAD (ORDEREDSUBJECT, REFERENCES).
 *
 * The messages are the ones SEARCH would find (search_run, the same keys).
 * What the sort keys need comes from the index: size and internal date
 * from the message record, the rest from the cached ENVELOPE (the store
 * caches it at delivery).  A message without a cached ENVELOPE (its parse
 * failed then; FETCH fills it later), and every message for
 * THREAD=REFERENCES (References is not part of ENVELOPE), has its header
 * read from the file instead (msgfile.c, header only) and parsed up to
 * SORT_HEADER_MAX bytes, never the body.  The cache is left as it is (its
 * record holds BODYSTRUCTURE too).
 *
 * Memory: one record per selected message with the keys asked for, each
 * cut to IMAP_SORT_KEY_MAX bytes; messages are read SORT_BATCH at a time,
 * one short read transaction per batch, files read between transactions.
 * Equal keys go by sequence number, also under REVERSE (RFC 5256 BASE.6.4.SORT).
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "imap_sort.h"
#include "imapd.h"
#include "mailcore/conn.h"
#include "mailcore/service.h"
#include "mailcore/store.h"

#define SORT_HEADER_MAX (64 * 1024) /* bytes of a file's header parsed */
#define SORT_BATCH 256              /* messages per read transaction */
#define SORT_CRITERIA_MAX 16

enum sort_key {
    SORT_ARRIVAL,
    SORT_DATE,
    SORT_SIZE,
    /* string keys: their slot in struct sort_rec is key - SORT_CC */
    SORT_CC,
    SORT_FROM,
    SORT_SUBJECT,
    SORT_TO,
    SORT_DISPLAYFROM,
    SORT_DISPLAYTO,
};
#define SORT_STRINGS 6

static const struct {
    const char *name;
    enum sort_key key;
} sort_keys[] = {
    {"ARRIVAL", SORT_ARRIVAL},
    {"CC", SORT_CC},
    {"DATE", SORT_DATE},
    {"FROM", SORT_FROM},
    {"SIZE", SORT_SIZE},
    {"SUBJECT", SORT_SUBJECT},
    {"TO", SORT_TO},
    {"DISPLAYFROM", SORT_DISPLAYFROM},
    {"DISPLAYTO", SORT_DISPLAYTO},
};

struct sort_crit {
    enum sort_key key;
    int reverse;
};

struct sort_spec {
    struct sort_crit c[SORT_CRITERIA_MAX];
    size_t n;
};

struct sort_rec {
    uint32_t seq, out; /* out: what the answer shows (seq or uid) */
    int64_t arrival, date;
    uint64_t size;
    char *str[SORT_STRINGS];
};

/* What one message of a batch gives. */
struct msg_info {
    size_t idx; /* view index */
    struct db_message dm;
    int have_dm, have_env;
    struct imap_env env;
    struct mime_buf refs; /* References (THREAD=REFERENCES) */
};

/* A SORT or THREAD under way. */
struct gather {
    struct imap_session *s;
    const size_t *idx; /* selected view indexes, ascending */
    size_t n;
    int need_env, need_refs;
    struct msg_info *batch;
    size_t from, count; /* the batch: idx[from .. from + count) */
    struct msgfile file; /* the header being read */
    struct mime_buf envtext;
};

/* --- reading ---------------------------------------------------------------- */

static int tx_batch(struct db_txn *txn, void *arg)
{
    struct gather *g = arg;
    uint32_t mbox = g->s->view->mailbox_id;

    for (size_t i = 0; i < g->count; i++) {
        struct msg_info *m = &g->batch[i];
        struct db_cache c;

        m->have_dm = db_message_get(txn, mbox, g->s->view->msgs[m->idx].uid, &m->dm) == 0;
        m->have_env = 0;
        if (!m->have_dm || !g->need_env || g->need_refs)
            continue;
        if (db_cache_get(txn, m->dm.file_id, &c) == 0)
            m->have_env = imap_env_parse(c.envelope, c.envelope_len, &m->env) == 0;
    }
    return 0;
}

/* ENVELOPE (and References) of m from its file's header. */
static void header_info(struct gather *g, struct msg_info *m)
{
    struct mime_msg *msg = NULL;
    struct mime_header h;
    size_t len;

    mime_buf_reset(&m->refs);
    if (msgfile_load(&g->file, g->s->srv->svc->store, m->dm.file_id, 1) == 0) {
        len = msgfile_header_len(&g->file);
        msg = mime_parse(g->file.p ? g->file.p : "", len < SORT_HEADER_MAX ? len : SORT_HEADER_MAX);
    }
    if (msg != NULL) {
        mime_buf_reset(&g->envtext);
        if (mime_imap_envelope(msg->root, &g->envtext) == 0)
            m->have_env = imap_env_parse(g->envtext.p, g->envtext.len, &m->env) == 0;
        if (g->need_refs && mime_header_find(msg->root, "References", &h) && h.value)
            mime_buf_add(&m->refs, h.value, h.value_len);
        mime_free(msg);
    }
    msgfile_release(&g->file);
}

/* RFC 5256 2.2: the Date field, else the internal date. */
static int64_t sent_date(const struct msg_info *m)
{
    int64_t t;

    if (m->have_env && imap_rfc5322_date(m->env.date.p, m->env.date.len, &t) == 0)
        return t;
    return m->dm.internaldate;
}

/* Call each() for every selected message, in order, with what is known of
 * it.  -1 when each() fails or memory runs out. */
static int gather_all(struct gather *g, int (*each)(struct gather *, struct msg_info *, void *),
                      void *arg)
{
    char err[256];
    int rc = 0;

    g->batch = calloc(SORT_BATCH, sizeof *g->batch);
    if (g->batch == NULL)
        return -1;
    for (size_t i = 0; i < SORT_BATCH; i++) {
        imap_env_init(&g->batch[i].env);
        mime_buf_init(&g->batch[i].refs, SORT_HEADER_MAX);
    }
    mime_buf_init(&g->envtext, 0);
    for (g->from = 0; g->from < g->n && rc == 0; g->from += g->count) {
        g->count = g->n - g->from < SORT_BATCH ? g->n - g->from : SORT_BATCH;
        for (size_t i = 0; i < g->count; i++)
            g->batch[i].idx = g->idx[g->from + i];
        db_read(g->s->srv->svc->db, tx_batch, g, err, sizeof err);
        for (size_t i = 0; i < g->count && rc == 0; i++) {
            struct msg_info *m = &g->batch[i];

            if (!m->have_dm)
                memset(&m->dm, 0, sizeof m->dm); /* gone meanwhile: sorts as empty */
            else if (g->need_env && !m->have_env)
                header_info(g, m);
            rc = each(g, m, arg);
        }
    }
    for (size_t i = 0; i < SORT_BATCH; i++) {
        imap_env_free(&g->batch[i].env);
        mime_buf_free(&g->batch[i].refs);
    }
    free(g->batch);
    msgfile_free(&g->file);
    mime_buf_free(&g->envtext);
    return rc;
}

/* --- SORT -------------------------------------------------------------------- */

struct sort_run {
    const struct sort_spec *spec;
    struct sort_rec *recs;
    size_t n;
    int uid;
};

static char *key_dup(const struct mime_buf *b)
{
    size_t len = b->len < IMAP_SORT_KEY_MAX ? b->len : IMAP_SORT_KEY_MAX;
    char *p = malloc(len + 1);

    if (p) {
        memcpy(p, b->p ? b->p : "", len);
        p[len] = '\0';
    }
    return p;
}

static int sort_each(struct gather *g, struct msg_info *m, void *arg)
{
    struct sort_run *r = arg;
    struct sort_rec *rec = &r->recs[r->n++];
    struct mime_buf b;
    int rc = 0;

    rec->seq = (uint32_t)m->idx + 1;
    rec->out = r->uid ? g->s->view->msgs[m->idx].uid : rec->seq;
    rec->arrival = m->dm.internaldate;
    rec->size = m->dm.size;
    rec->date = sent_date(m);
    mime_buf_init(&b, 64 * 1024);
    for (size_t k = 0; k < r->spec->n && rc == 0; k++) {
        enum sort_key key = r->spec->c[k].key;
        const struct imap_env *e = &m->env;
        struct imap_env_addr none = {0};

        if (key < SORT_CC || rec->str[key - SORT_CC])
            continue;
        mime_buf_reset(&b);
        if (key == SORT_SUBJECT) {
            rc = imap_base_subject(m->have_env ? e->subject.p : NULL, e->subject.len, &b, NULL);
        } else {
            const struct imap_env_addr *a = !m->have_env                              ? &none
                                            : key == SORT_CC                          ? &e->cc
                                            : key == SORT_TO || key == SORT_DISPLAYTO ? &e->to
                                                                                      : &e->from;
            rc = imap_sort_addr_key(a, key == SORT_DISPLAYFROM || key == SORT_DISPLAYTO, &b);
        }
        if (rc == 0 && (rec->str[key - SORT_CC] = key_dup(&b)) == NULL)
            rc = -1;
    }
    mime_buf_free(&b);
    return rc;
}

static int sort_cmp(const void *a, const void *b, void *arg)
{
    const struct sort_rec *x = a, *y = b;
    const struct sort_spec *spec = arg;

    for (size_t k = 0; k < spec->n; k++) {
        enum sort_key key = spec->c[k].key;
        int c;

        switch (key) {
        case SORT_ARRIVAL:
            c = x->arrival < y->arrival ? -1 : x->arrival > y->arrival;
            break;
        case SORT_DATE:
            c = x->date < y->date ? -1 : x->date > y->date;
            break;
        case SORT_SIZE:
            c = x->size < y->size ? -1 : x->size > y->size;
            break;
        default:
            c = strcmp(x->str[key - SORT_CC], y->str[key - SORT_CC]);
            break;
        }
        if (c)
            return spec->c[k].reverse ? -c : c;
    }
    return x->seq < y->seq ? -1 : x->seq > y->seq;
}

/* "(REVERSE SUBJECT DATE)" into spec; -1 when malformed. */
static int sort_criteria(const struct imap_arg *a, struct sort_spec *spec)
{
    int reverse = 0;

    if (a->type != IMAP_ARG_LIST || a->nlist == 0)
        return -1;
    spec->n = 0;
    for (size_t i = 0; i < a->nlist; i++) {
        const struct imap_arg *w = &a->list[i];
        size_t k;

        if (w->type != IMAP_ARG_ATOM)
            return -1;
        if (strcasecmp(w->s, "REVERSE") == 0) {
            if (reverse)
                return -1;
            reverse = 1;
            continue;
        }
        for (k = 0; k < sizeof sort_keys / sizeof sort_keys[0]; k++)
            if (strcasecmp(w->s, sort_keys[k].name) == 0)
                break;
        if (k == sizeof sort_keys / sizeof sort_keys[0] || spec->n == SORT_CRITERIA_MAX)
            return -1;
        spec->c[spec->n++] = (struct sort_crit){sort_keys[k].key, reverse};
        reverse = 0;
    }
    return reverse ? -1 : 0;
}

/* CHARSET of SORT and THREAD (required): 0, or -1 after answering NO. */
static int charset_ok(struct imap_session *s, const struct imap_arg *a)
{
    char cs[32];

    if (imap_astring(a, cs, sizeof cs) == 0 &&
        (strcasecmp(cs, "UTF-8") == 0 || strcasecmp(cs, "US-ASCII") == 0))
        return 0;
    imap_tagged(s, "NO", "[BADCHARSET (UTF-8 US-ASCII)] Unsupported charset");
    imap_command_done(s);
    return -1;
}

static void finish(struct imap_session *s, int uid, const char *what)
{
    if (view_sync(s, uid) < 0)
        return;
    imap_tagged(s, "OK", "%s completed", what);
    imap_command_done(s);
}

static void fail(struct imap_session *s, const char *status, const char *text)
{
    imap_tagged(s, status, "%s", text);
    imap_command_done(s);
}

/* A SORT with SAVE that fails leaves "$" empty (RFC 5182 2.1). */
static void forget_saved(struct imap_session *s, unsigned ret)
{
    if (ret & SEARCH_RET_SAVE)
        searchres_clear(s->view);
}

/* The selection of args (search keys); NULL after answering.  modseq (if
 * not NULL): RFC 7162 3.1.5's MODSEQ for a search with a MODSEQ key. */
static size_t *select_messages(struct imap_session *s, const struct imap_arg *args, size_t nargs,
                               size_t *n, uint64_t *modseq)
{
    const char *why = "Invalid search";
    struct imap_search_key *root = imap_search_parse(args, nargs, &why);
    size_t *idx;

    if (root == NULL) {
        fail(s, "BAD", why);
        return NULL;
    }
    idx = search_run(s, root, n);
    if (idx && modseq)
        *modseq = condstore_search_modseq(s, root, idx, *n);
    imap_search_free(root);
    if (idx == NULL)
        fail(s, "NO", "[SERVERBUG] Out of memory");
    return idx;
}

void cmd_sort(struct imap_session *s, int uid, const struct imap_arg *args, size_t nargs)
{
    struct sort_spec spec;
    struct sort_run run = {&spec, NULL, 0, uid};
    struct gather g = {0};
    uint32_t *out = NULL;
    unsigned ret = 0;
    int esort = 0, rc;
    size_t i = 0;
    uint64_t modseq = 0;

    if (nargs >= 2 && args[0].type == IMAP_ARG_ATOM && strcasecmp(args[0].s, "RETURN") == 0) {
        if (search_return_options(&args[1], &ret) < 0) {
            fail(s, "BAD", "Invalid RETURN options");
            return;
        }
        esort = 1;
        i = 2;
    }
    /* Its own keys still see the old "$"; forget_saved() on failure. */
    if (nargs < i + 3 || sort_criteria(&args[i], &spec) < 0) {
        forget_saved(s, ret);
        fail(s, "BAD", "Invalid sort criteria");
        return;
    }
    if (charset_ok(s, &args[i + 1]) < 0) {
        forget_saved(s, ret);
        return;
    }
    g.s = s;
    g.need_env = 0;
    for (size_t k = 0; k < spec.n; k++)
        g.need_env |= spec.c[k].key != SORT_ARRIVAL && spec.c[k].key != SORT_SIZE;
    if ((g.idx = select_messages(s, args + i + 2, nargs - i - 2, &g.n, &modseq)) == NULL) {
        forget_saved(s, ret);
        return;
    }
    run.recs = calloc(g.n ? g.n : 1, sizeof *run.recs);
    out = calloc(g.n ? g.n : 1, sizeof *out);
    rc = run.recs && out ? gather_all(&g, sort_each, &run) : -1;
    if (rc == 0) {
        qsort_r(run.recs, run.n, sizeof *run.recs, sort_cmp, &spec);
        for (size_t k = 0; k < run.n; k++)
            out[k] = run.recs[k].out;
        if ((ret & SEARCH_RET_SAVE) && searchres_save(s->view, out, run.n, uid, ret) < 0)
            rc = -1;
        else
            search_report(s, "SORT", uid, out, run.n, ret, esort, modseq);
    }
    for (size_t k = 0; run.recs && k < run.n; k++)
        for (size_t j = 0; j < SORT_STRINGS; j++)
            free(run.recs[k].str[j]);
    free(run.recs);
    free(out);
    free((void *)g.idx);
    if (rc < 0) {
        forget_saved(s, ret);
        fail(s, "NO", "[SERVERBUG] Out of memory");
        return;
    }
    finish(s, uid, "Sort");
}

/* --- THREAD -------------------------------------------------------------------- */

struct thread_run {
    struct imap_thread *t;
    int uid;
};

static int thread_each(struct gather *g, struct msg_info *m, void *arg)
{
    struct thread_run *r = arg;
    const struct imap_env *e = &m->env;
    int env = m->have_env;

    return imap_thread_add(r->t, r->uid ? g->s->view->msgs[m->idx].uid : (uint32_t)m->idx + 1,
                           sent_date(m), env ? e->subject.p : NULL, env ? e->subject.len : 0,
                           env ? e->message_id.p : NULL, env ? e->message_id.len : 0, m->refs.p,
                           env ? m->refs.len : 0, env ? e->in_reply_to.p : NULL,
                           env ? e->in_reply_to.len : 0);
}

void cmd_thread(struct imap_session *s, int uid, const struct imap_arg *args, size_t nargs)
{
    struct thread_run run = {NULL, uid};
    struct gather g = {0};
    struct mime_buf text;
    enum imap_thread_alg alg;
    int rc;

    if (nargs < 3 || args[0].type != IMAP_ARG_ATOM) {
        fail(s, "BAD", "THREAD needs an algorithm, a charset and search keys");
        return;
    }
    if (strcasecmp(args[0].s, "ORDEREDSUBJECT") == 0)
        alg = IMAP_THREAD_ORDEREDSUBJECT;
    else if (strcasecmp(args[0].s, "REFERENCES") == 0)
        alg = IMAP_THREAD_REFERENCES;
    else {
        fail(s, "BAD", "Unknown thread algorithm");
        return;
    }
    if (charset_ok(s, &args[1]) < 0)
        return;
    g.s = s;
    g.need_env = 1;
    g.need_refs = alg == IMAP_THREAD_REFERENCES;
    if ((g.idx = select_messages(s, args + 2, nargs - 2, &g.n, NULL)) == NULL)
        return;
    mime_buf_init(&text, CONN_OUT_MAX);
    run.t = imap_thread_new(alg);
    rc = run.t ? gather_all(&g, thread_each, &run) : -1;
    if (rc == 0 && imap_thread_result(run.t, &text) == 0) {
        imap_write(s, "* THREAD", 8);
        if (text.len) {
            imap_write(s, " ", 1);
            imap_write(s, text.p, text.len);
        }
        imap_write(s, "\r\n", 2);
    } else {
        rc = -1;
    }
    imap_thread_free(run.t);
    mime_buf_free(&text);
    free((void *)g.idx);
    if (rc < 0) {
        fail(s, "NO", "[SERVERBUG] Out of memory");
        return;
    }
    finish(s, uid, "Thread");
}
