/*
 * cmd_search.c - SEARCH and UID SEARCH (RFC 3501 6.4.4), with ESEARCH's
 * RETURN (MIN MAX COUNT ALL) for IMAP4rev2 (RFC 9051, RFC 4731).
 *
 * Flags, sequence numbers and uids come from the session's view; size,
 * dates and modseq from the index; header and text keys read the message
 * file (mmapped, case-insensitive substring match on the raw bytes, as
 * Dovecot does for US-ASCII).
 *
 * search_run() and search_report() serve SORT and THREAD too (cmd_sort.c):
 * they select with the same keys and ESORT answers like ESEARCH.
 */
#include <ctype.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "imapd.h"
#include "mailcore/conn.h"
#include "mailcore/service.h"
#include "mailcore/store.h"

struct candidate {
    size_t seq;                     /* 1-based */
    const struct view_msg *vm;
    struct db_message dm;
    int have_dm;
    const char *map;
    size_t maplen;
    struct mime_msg *mime;
    int mapped;
};

struct search_ctx {
    struct imap_session *s;
    uint32_t max_uid;
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

static void map_message(struct search_ctx *c, struct candidate *m)
{
    struct stat st;
    int fd;

    if (m->mapped)
        return;
    m->mapped = 1;
    fd = store_file_open(c->s->srv->svc->store, m->dm.file_id);
    if (fd < 0)
        return;
    if (fstat(fd, &st) == 0 && st.st_size > 0) {
        void *p = mmap(NULL, (size_t)st.st_size, PROT_READ, MAP_PRIVATE, fd, 0);
        if (p != MAP_FAILED) {
            m->map = p;
            m->maplen = (size_t)st.st_size;
        }
    }
    close(fd);
    m->mime = mime_parse(m->map ? m->map : "", m->maplen);
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
            hit = ci_find(m->map + p->body_off, p->body_len, value, vlen);
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
        return imap_seqset_contains(&k->set, (uint32_t)m->seq, (uint32_t)v->n);
    case IMAP_SK_UID:
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
        map_message(c, m);
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
    case IMAP_SK_HEADER:
        map_message(c, m);
        return header_match(m, k->name, k->value, k->value_len);
    case IMAP_SK_BODY:
    case IMAP_SK_TEXT:
        map_message(c, m);
        if (m->map == NULL)
            return k->value_len == 0;
        if (m->mime == NULL)
            return ci_find(m->map, m->maplen, k->value, k->value_len);
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

struct dm_all {
    uint32_t mbox;
    struct candidate *c;
    size_t n;
};

static int tx_dms(struct db_txn *txn, void *arg)
{
    struct dm_all *a = arg;

    for (size_t i = 0; i < a->n; i++)
        a->c[i].have_dm = db_message_get(txn, a->mbox, a->c[i].vm->uid, &a->c[i].dm) == 0;
    return 0;
}

void search_report(struct imap_session *s, int uid, const uint32_t *hits, size_t n,
                   unsigned ret, int esearch)
{
    enum { R_MIN = 1, R_MAX = 2, R_COUNT = 4, R_ALL = 8 };

    if (!esearch) {
        conn_printf(s->conn, "* SEARCH");
        for (size_t i = 0; i < n; i++)
            conn_printf(s->conn, " %u", hits[i]);
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
    conn_printf(s->conn, "\r\n");
}

size_t *search_run(struct imap_session *s, const struct imap_search_key *root, size_t *n)
{
    struct view *v = s->view;
    struct search_ctx c = {s, v->n ? v->msgs[v->n - 1].uid : 0};
    struct candidate *cand;
    struct dm_all all;
    size_t *hits;
    char err[256];

    *n = 0;
    cand = calloc(v->n ? v->n : 1, sizeof *cand);
    hits = calloc(v->n ? v->n : 1, sizeof *hits);
    if (cand == NULL || hits == NULL) {
        free(cand), free(hits);
        return NULL;
    }
    for (size_t k = 0; k < v->n; k++)
        cand[k] = (struct candidate){.seq = k + 1, .vm = &v->msgs[k]};
    all = (struct dm_all){v->mailbox_id, cand, v->n};
    db_read(s->srv->svc->db, tx_dms, &all, err, sizeof err);
    for (size_t k = 0; k < v->n; k++) {
        if (cand[k].have_dm && eval(&c, root, &cand[k]))
            hits[(*n)++] = k;
        mime_free(cand[k].mime);
        if (cand[k].map)
            munmap((void *)cand[k].map, cand[k].maplen);
    }
    free(cand);
    return hits;
}

void cmd_search(struct imap_session *s, int uid, const struct imap_arg *args, size_t nargs)
{
    struct view *v = s->view;
    struct imap_search_key *root;
    size_t *idx;
    uint32_t *hits;
    size_t nhits = 0, i = 0;
    unsigned ret = 0;
    int esearch = 0;
    const char *why = "Invalid search";

    if (i + 1 < nargs && args[i].type == IMAP_ARG_ATOM && strcasecmp(args[i].s, "RETURN") == 0 &&
        args[i + 1].type == IMAP_ARG_LIST) {
        esearch = 1;
        for (size_t k = 0; k < args[i + 1].nlist; k++) {
            const char *w = args[i + 1].list[k].s ? args[i + 1].list[k].s : "";
            ret |= strcasecmp(w, "MIN") == 0 ? 1 : strcasecmp(w, "MAX") == 0 ? 2
                 : strcasecmp(w, "COUNT") == 0 ? 4 : strcasecmp(w, "ALL") == 0 ? 8 : 0;
        }
        i += 2;
    }
    if (i + 1 < nargs && args[i].type == IMAP_ARG_ATOM && strcasecmp(args[i].s, "CHARSET") == 0) {
        char cs[32];
        if (imap_astring(&args[i + 1], cs, sizeof cs) < 0 ||
            (strcasecmp(cs, "UTF-8") != 0 && strcasecmp(cs, "US-ASCII") != 0)) {
            imap_tagged(s, "NO", "[BADCHARSET (US-ASCII UTF-8)] Unsupported charset");
            imap_command_done(s);
            return;
        }
        i += 2;
    }
    if (s->rev2)
        esearch = 1;
    root = imap_search_parse(args + i, nargs - i, &why);
    if (root == NULL) {
        imap_tagged(s, "BAD", "%s", why);
        imap_command_done(s);
        return;
    }
    idx = search_run(s, root, &nhits);
    hits = calloc(nhits ? nhits : 1, sizeof *hits);
    if (idx == NULL || hits == NULL) {
        free(idx), free(hits);
        imap_search_free(root);
        imap_tagged(s, "NO", "[SERVERBUG] Out of memory");
        imap_command_done(s);
        return;
    }
    for (size_t k = 0; k < nhits; k++)
        hits[k] = uid ? v->msgs[idx[k]].uid : (uint32_t)(idx[k] + 1);
    search_report(s, uid, hits, nhits, ret, esearch);
    free(idx);
    free(hits);
    imap_search_free(root);
    if (view_sync(s, uid) < 0)
        return;
    imap_tagged(s, "OK", "Search completed");
    imap_command_done(s);
}
