/*
 * cmd_search.c - SEARCH and UID SEARCH (RFC 3501 6.4.4), with ESEARCH's
 * RETURN (MIN MAX COUNT ALL) for IMAP4rev2 (RFC 9051, RFC 4731) and SAVE
 * with "$" (RFC 5182, searchres.c).
 *
 * Flags, sequence numbers and uids come from the session's view; size,
 * dates and modseq from the index.  SUBJECT, FROM, TO, CC and BCC read the
 * message's cached ENVELOPE (imap_msginfo.c), as a client's most common searches
 * must not open every file of the mailbox; other header keys read the file's
 * header section, BODY and TEXT the whole file (msgfile.c).  Matching is a
 * case-insensitive substring match on the raw and the RFC 2047-decoded text,
 * as Dovecot does.  The whole search runs in one LMDB read transaction: it
 * never waits for the network.
 *
 * search_run() and search_report() serve SORT and THREAD too (cmd_sort.c):
 * they select with the same keys and ESORT answers like ESEARCH.
 */
#include <ctype.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>

#include "imap_sort.h"
#include "imapd.h"
#include "mailcore/conn.h"
#include "mailcore/service.h"
#include "mailcore/store.h"

enum load { LOAD_NONE, LOAD_HEADER, LOAD_ALL };

struct candidate {
    size_t seq;                     /* 1-based */
    const struct view_msg *vm;
    struct db_message dm;
    int loaded;                     /* enum load */
    struct mime_msg *mime;
    int env_tried;
    struct db_cache cache;          /* cache.envelope: NULL when not cached */
};

struct search_ctx {
    struct imap_session *s;
    struct db_txn *txn;
    uint32_t max_uid;
    const struct imap_search_key *root;
    size_t *hits;                   /* view indexes */
    size_t nhits;
    struct msgfile file;            /* the candidate being tested */
    struct mime_buf field;          /* a field read from the envelope */
};

static int ci_find(const char *hay, size_t hlen, const char *needle, size_t nlen)
{
    if (nlen == 0)
        return 1;
    for (size_t i = 0; i + nlen <= hlen; i++)
        if (strncasecmp(hay + i, needle, nlen) == 0)
            return 1;
    return 0;
}

/* The candidate's file, parsed: its header section or all of it. */
static void load(struct search_ctx *c, struct candidate *m, enum load level)
{
    size_t len;

    if (m->loaded >= (int)level)
        return;
    mime_free(m->mime);
    m->mime = NULL;
    m->loaded = level;
    if (msgfile_load(&c->file, c->s->srv->svc->store, m->dm.file_id, level == LOAD_HEADER) != 0)
        return;
    len = level == LOAD_HEADER ? msgfile_header_len(&c->file) : c->file.len;
    m->mime = mime_parse(c->file.p ? c->file.p : "", len);
}

static time_t day_of(time_t t)
{
    struct tm tm;

    gmtime_r(&t, &tm);
    tm.tm_hour = tm.tm_min = tm.tm_sec = 0;
    return timegm(&tm);
}

/* A header value as a reader sees it: unfolded, RFC 2047 words decoded. */
static int header_text_match(const char *raw, size_t len, const char *value, size_t vlen)
{
    struct mime_buf unfolded, decoded;
    int hit;

    if (ci_find(raw, len, value, vlen))
        return 1;
    mime_buf_init(&unfolded, 1 << 20);
    mime_buf_init(&decoded, 1 << 20);
    hit = mime_header_unfold(raw, len, &unfolded) == 0 &&
          mime_param_decode(unfolded.p ? unfolded.p : "", unfolded.len, 0, &decoded) >= 0 &&
          decoded.p && ci_find(decoded.p, decoded.len, value, vlen);
    mime_buf_free(&unfolded);
    mime_buf_free(&decoded);
    return hit;
}

/* A Subject or address key answered from the cached ENVELOPE: 1 when it
 * could be (*hit set), 0 when the file must be read. */
static int envelope_match(struct search_ctx *c, struct candidate *m, const char *name,
                          const char *value, size_t vlen, int *hit)
{
    static const struct {
        const char *name;
        enum imap_env_field f;
    } fields[] = {{"Subject", IMAP_ENV_SUBJECT}, {"From", IMAP_ENV_FROM}, {"To", IMAP_ENV_TO},
                  {"Cc", IMAP_ENV_CC}, {"Bcc", IMAP_ENV_BCC}};
    size_t i;
    int rc;

    for (i = 0; i < sizeof fields / sizeof fields[0]; i++)
        if (strcasecmp(name, fields[i].name) == 0)
            break;
    /* An empty value asks whether the header exists: only the file knows. */
    if (i == sizeof fields / sizeof fields[0] || vlen == 0)
        return 0;
    if (!m->env_tried) {
        m->env_tried = 1;
        if (db_cache_get(c->txn, m->dm.file_id, &m->cache) != 0)
            m->cache.envelope = NULL;
    }
    if (m->cache.envelope == NULL)
        return 0;
    mime_buf_reset(&c->field);
    rc = imap_env_field_text(m->cache.envelope, m->cache.envelope_len, fields[i].f, &c->field);
    if (rc != 0 || c->field.failed)
        return 0;
    *hit = header_text_match(c->field.p ? c->field.p : "", c->field.len, value, vlen);
    return 1;
}

static int header_match(struct candidate *m, const char *name, const char *value, size_t vlen)
{
    struct mime_header h;
    size_t pos = 0;

    if (m->mime == NULL)
        return 0;
    while (mime_header_next(m->mime->root, &pos, &h))
        if (h.value && strlen(name) == h.name_len && strncasecmp(h.name, name, h.name_len) == 0 &&
            header_text_match(h.value, h.value_len, value, vlen))
            return 1;
    return 0;
}

/* BODY: the text of every leaf, its transfer encoding undone. */
static int body_match(struct candidate *m, const char *value, size_t vlen)
{
    struct mime_buf b;
    int hit = 0;

    for (size_t i = 0; i < m->mime->nparts && !hit; i++) {
        const struct mime_part *p = &m->mime->parts[i];
        if (p->kind != MIME_LEAF)
            continue;
        mime_buf_init(&b, 64u << 20);
        if (mime_decode_body(p, &b, NULL) == 0 && b.p)
            hit = ci_find(b.p, b.len, value, vlen);
        else
            hit = ci_find(m->mime->buf + p->body_off, p->body_len, value, vlen);
        mime_buf_free(&b);
    }
    return hit;
}

static time_t sent_date(struct candidate *m)
{
    struct mime_header h;
    struct tm tm;
    char buf[128];
    const char *p;

    if (m->mime == NULL || !mime_header_find(m->mime->root, "Date", &h) || h.value == NULL)
        return (time_t)m->dm.internaldate;
    snprintf(buf, sizeof buf, "%.*s", (int)(h.value_len < 127 ? h.value_len : 127), h.value);
    memset(&tm, 0, sizeof tm);
    p = strchr(buf, ',');
    p = p ? p + 1 : buf;
    while (*p == ' ')
        p++;
    if (strptime(p, "%d %b %Y", &tm) == NULL)
        return (time_t)m->dm.internaldate;
    return timegm(&tm);
}

static int eval(struct search_ctx *c, const struct imap_search_key *k, struct candidate *m)
{
    struct view *v = c->s->view;
    unsigned bit;

    switch (k->kind) {
    case IMAP_SK_ALL:
        return 1;
    case IMAP_SK_AND:
        for (size_t i = 0; i < k->nsub; i++)
            if (!eval(c, &k->sub[i], m))
                return 0;
        return 1;
    case IMAP_SK_OR:
        return eval(c, &k->sub[0], m) || eval(c, &k->sub[1], m);
    case IMAP_SK_NOT:
        return !eval(c, &k->sub[0], m);
    case IMAP_SK_SEQSET:
        if (k->set.saved)
            return searchres_has(v, m->vm->uid);
        return imap_seqset_contains(&k->set, (uint32_t)m->seq, (uint32_t)v->n);
    case IMAP_SK_UID:
        if (k->set.saved)
            return searchres_has(v, m->vm->uid);
        return imap_seqset_contains(&k->set, m->vm->uid, c->max_uid);
    case IMAP_SK_FLAG:
    case IMAP_SK_UNFLAG: {
        int has = k->flag == IMAP_FLAG_RECENT ? view_is_recent(v, m->vm)
                : (m->vm->flags & (k->flag == IMAP_FLAG_SEEN ? DB_FLAG_SEEN
                                   : k->flag == IMAP_FLAG_ANSWERED ? DB_FLAG_ANSWERED
                                   : k->flag == IMAP_FLAG_FLAGGED ? DB_FLAG_FLAGGED
                                   : k->flag == IMAP_FLAG_DELETED ? DB_FLAG_DELETED
                                                                  : DB_FLAG_DRAFT)) != 0;
        return k->kind == IMAP_SK_FLAG ? has : !has;
    }
    case IMAP_SK_KEYWORD:
    case IMAP_SK_UNKEYWORD: {
        int has = 0;
        for (bit = 0; bit < DB_KEYWORDS_MAX; bit++)
            if ((v->keywords_used & (1ull << bit)) && strcasecmp(v->keywords[bit], k->name) == 0)
                has = (m->vm->keywords & (1ull << bit)) != 0;
        return k->kind == IMAP_SK_KEYWORD ? has : !has;
    }
    case IMAP_SK_BEFORE:
        return day_of((time_t)m->dm.internaldate) < k->date;
    case IMAP_SK_ON:
        return day_of((time_t)m->dm.internaldate) == k->date;
    case IMAP_SK_SINCE:
        return day_of((time_t)m->dm.internaldate) >= k->date;
    case IMAP_SK_SENTBEFORE:
    case IMAP_SK_SENTON:
    case IMAP_SK_SENTSINCE: {
        time_t d;
        load(c, m, LOAD_HEADER);
        d = day_of(sent_date(m));
        return k->kind == IMAP_SK_SENTBEFORE ? d < k->date
             : k->kind == IMAP_SK_SENTON     ? d == k->date
                                             : d >= k->date;
    }
    case IMAP_SK_LARGER:
        return m->dm.size > k->number;
    case IMAP_SK_SMALLER:
        return m->dm.size < k->number;
    case IMAP_SK_MODSEQ:
        return m->vm->modseq >= k->number;
    case IMAP_SK_HEADER: {
        int hit;
        if (envelope_match(c, m, k->name, k->value, k->value_len, &hit))
            return hit;
        load(c, m, LOAD_HEADER);
        return header_match(m, k->name, k->value, k->value_len);
    }
    case IMAP_SK_BODY:
    case IMAP_SK_TEXT:
        load(c, m, LOAD_ALL);
        if (c->file.p == NULL)
            return k->value_len == 0;
        if (m->mime == NULL)
            return ci_find(c->file.p, c->file.len, k->value, k->value_len);
        if (k->kind == IMAP_SK_TEXT) {
            struct mime_header h;
            size_t pos = 0;
            while (mime_header_next(m->mime->root, &pos, &h))
                if (h.value && header_text_match(h.field, h.field_len, k->value, k->value_len))
                    return 1;
        }
        return body_match(m, k->value, k->value_len);
    }
    return 0;
}

/* Every message of the view tested, in one read transaction. */
static int tx_search(struct db_txn *txn, void *arg)
{
    struct search_ctx *c = arg;
    struct view *v = c->s->view;

    c->txn = txn;
    c->nhits = 0;
    for (size_t k = 0; k < v->n; k++) {
        struct candidate m = {.seq = k + 1, .vm = &v->msgs[k]};
        if (db_message_get(txn, v->mailbox_id, m.vm->uid, &m.dm) != 0)
            continue;                   /* expunged by another session */
        if (eval(c, c->root, &m))
            c->hits[c->nhits++] = k;
        mime_free(m.mime);
        msgfile_release(&c->file);
    }
    return 0;
}

int search_return_options(const struct imap_arg *list, unsigned *ret)
{
    static const struct {
        const char *name;
        unsigned bit;
    } options[] = {{"MIN", SEARCH_RET_MIN}, {"MAX", SEARCH_RET_MAX},
                   {"COUNT", SEARCH_RET_COUNT}, {"ALL", SEARCH_RET_ALL},
                   {"SAVE", SEARCH_RET_SAVE}};

    *ret = 0;
    if (list->type != IMAP_ARG_LIST)
        return -1;
    for (size_t i = 0; i < list->nlist; i++) {
        size_t k;

        for (k = 0; k < sizeof options / sizeof options[0]; k++)
            if (list->list[i].type == IMAP_ARG_ATOM &&
                strcasecmp(list->list[i].s, options[k].name) == 0)
                break;
        if (k == sizeof options / sizeof options[0])
            return -1;
        *ret |= options[k].bit;
    }
    return 0;
}

void search_report(struct imap_session *s, const char *word, int uid, const uint32_t *hits,
                   size_t n, unsigned ret, int esearch, uint64_t modseq)
{
    enum { R_MIN = SEARCH_RET_MIN, R_MAX = SEARCH_RET_MAX, R_COUNT = SEARCH_RET_COUNT,
           R_ALL = SEARCH_RET_ALL };

    if (esearch && ret == SEARCH_RET_SAVE)
        return;                         /* RFC 5182 2.4: SAVE alone answers nothing */
    if (!esearch) {
        conn_printf(s->conn, "* %s", word);
        for (size_t i = 0; i < n; i++)
            conn_printf(s->conn, " %u", hits[i]);
        if (n && modseq)
            conn_printf(s->conn, " (MODSEQ %llu)", (unsigned long long)modseq);
        conn_printf(s->conn, "\r\n");
        return;
    }
    conn_printf(s->conn, "* ESEARCH (TAG \"%s\")%s", s->tag, uid ? " UID" : "");
    if (ret == 0)
        ret = R_ALL;
    if (n && (ret & R_MIN))
        conn_printf(s->conn, " MIN %u", hits[0]);
    if (n && (ret & R_MAX))
        conn_printf(s->conn, " MAX %u", hits[n - 1]);
    if (ret & R_COUNT)
        conn_printf(s->conn, " COUNT %zu", n);
    if (n && (ret & R_ALL)) {
        conn_printf(s->conn, " ALL ");
        for (size_t i = 0; i < n; i++) {
            size_t j = i;
            while (j + 1 < n && hits[j + 1] == hits[j] + 1)
                j++;
            conn_printf(s->conn, "%s%u", i ? "," : "", hits[i]);
            if (j > i)
                conn_printf(s->conn, ":%u", hits[j]);
            i = j;
        }
    }
    if (n && modseq)
        conn_printf(s->conn, " MODSEQ %llu", (unsigned long long)modseq);
    conn_printf(s->conn, "\r\n");
}

size_t *search_run(struct imap_session *s, const struct imap_search_key *root, size_t *n)
{
    struct view *v = s->view;
    struct search_ctx c = {.s = s, .max_uid = v->n ? v->msgs[v->n - 1].uid : 0, .root = root};
    char err[256];
    int rc;

    *n = 0;
    if ((c.hits = calloc(v->n ? v->n : 1, sizeof *c.hits)) == NULL)
        return NULL;
    mime_buf_init(&c.field, 0);
    rc = db_read(s->srv->svc->db, tx_search, &c, err, sizeof err);
    msgfile_free(&c.file);
    mime_buf_free(&c.field);
    if (rc != 0) {
        log_warn("search in %s: %s", v->name, err);
        free(c.hits);
        return NULL;
    }
    *n = c.nhits;
    return c.hits;
}

/* A SEARCH that fails: with SAVE, "$" is then empty (RFC 5182 2.1). */
static void search_fail(struct imap_session *s, unsigned ret, const char *status,
                        const char *text)
{
    if (ret & SEARCH_RET_SAVE)
        searchres_clear(s->view);
    imap_tagged(s, status, "%s", text);
    imap_command_done(s);
}

void cmd_search(struct imap_session *s, int uid, const struct imap_arg *args, size_t nargs)
{
    struct view *v = s->view;
    struct imap_search_key *root;
    size_t *idx, nhits = 0, i = 0;
    uint32_t *hits;
    unsigned ret = 0;
    int esearch = 0;
    uint64_t modseq;
    const char *why = "Invalid search";

    if (i + 1 < nargs && args[i].type == IMAP_ARG_ATOM && strcasecmp(args[i].s, "RETURN") == 0) {
        if (search_return_options(&args[i + 1], &ret) < 0) {
            search_fail(s, 0, "BAD", "Invalid RETURN options");
            return;
        }
        esearch = 1;
        i += 2;
    }
    if (i + 1 < nargs && args[i].type == IMAP_ARG_ATOM && strcasecmp(args[i].s, "CHARSET") == 0) {
        char cs[32];
        if (imap_astring(&args[i + 1], cs, sizeof cs) < 0 ||
            (strcasecmp(cs, "UTF-8") != 0 && strcasecmp(cs, "US-ASCII") != 0)) {
            search_fail(s, ret, "NO", "[BADCHARSET (US-ASCII UTF-8)] Unsupported charset");
            return;
        }
        i += 2;
    }
    if (s->rev2)
        esearch = 1;
    root = imap_search_parse(args + i, nargs - i, &why);
    if (root == NULL) {
        search_fail(s, ret, "BAD", why);
        return;
    }
    idx = search_run(s, root, &nhits);
    hits = calloc(nhits ? nhits : 1, sizeof *hits);
    modseq = idx ? condstore_search_modseq(s, root, idx, nhits) : 0;
    imap_search_free(root);
    if (idx == NULL || hits == NULL) {
        free(idx), free(hits);
        search_fail(s, ret, "NO", "[UNAVAILABLE] Search failed, try again");
        return;
    }
    for (size_t k = 0; k < nhits; k++)
        hits[k] = uid ? v->msgs[idx[k]].uid : (uint32_t)(idx[k] + 1);
    free(idx);
    if ((ret & SEARCH_RET_SAVE) && searchres_save(v, hits, nhits, uid, ret) < 0) {
        free(hits);
        search_fail(s, ret, "NO", "[SERVERBUG] Out of memory");
        return;
    }
    search_report(s, "SEARCH", uid, hits, nhits, ret, esearch, modseq);
    free(hits);
    if (view_sync(s, uid) < 0)
        return;
    imap_tagged(s, "OK", "Search completed");
    imap_command_done(s);
}
