/*
 * fetch.c - FETCH and UID FETCH, streamed.
 *
 * For each message the response is assembled as segments: text built in a
 * buffer, and literals that point into the message file's bytes (msgfile.c:
 * read into a buffer the job reuses, or mmapped when large).  Segments
 * go to the connection while its output buffer is below a high-water mark;
 * the job resumes when the output drains (fetch_continue), so a client
 * fetching a 50 MB message costs a bounded amount of memory here.
 *
 * The index record and the cached ENVELOPE, BODYSTRUCTURE and BODY of a
 * message are read in one transaction; the file is opened only for items
 * that need its bytes, or to fill the cache (once per file) when a message
 * has no entry yet.  A
 * non-PEEK body fetch sets \Seen first (not in EXAMINE), and that message's
 * response then carries FLAGS.  CONDSTORE's (CHANGEDSINCE n) skips the
 * messages whose modseq in the index is not above n; QRESYNC's VANISHED
 * modifier sends VANISHED (EARLIER) first (condstore.c).
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>

#include "imap_modifiers.h"
#include "imapd.h"
#include "mailcore/conn.h"
#include "mailcore/service.h"
#include "mailcore/store.h"

#define FETCH_HIGH_WATER (512 * 1024)
#define FETCH_CHUNK (256 * 1024)
#define SEGMENTS_MAX 64

struct segment {
    int from_map;
    size_t off, len;
};

struct fetch_job {
    size_t *idx, n, pos;
    struct imap_fetch_atts atts;
    int uid;
    int with_flags;                     /* \Seen set by this FETCH: show FLAGS */
    uint64_t changedsince;              /* CHANGEDSINCE (RFC 7162): only newer, 0: all */
    /* The message being sent. */
    int active;
    struct msgfile file;
    struct mime_buf text;
    struct mime_buf env, bs, body;      /* its cached structure */
    struct segment seg[SEGMENTS_MAX];
    size_t nseg, cur, cur_off;
    size_t text_mark;                   /* text before it is in segments */
};

void fetch_job_free(struct fetch_job *job)
{
    if (job == NULL)
        return;
    msgfile_free(&job->file);
    mime_buf_free(&job->text);
    mime_buf_free(&job->env);
    mime_buf_free(&job->bs);
    mime_buf_free(&job->body);
    imap_fetch_atts_free(&job->atts);
    free(job->idx);
    free(job);
}

static void seg_text(struct fetch_job *j, size_t start)
{
    if (j->nseg < SEGMENTS_MAX && j->text.len > start)
        j->seg[j->nseg++] = (struct segment){0, start, j->text.len - start};
}

/* Text since the last segment becomes a segment. */
static void flush_text(struct fetch_job *j)
{
    seg_text(j, j->text_mark);
    j->text_mark = j->text.len;
}

static void literal_map(struct fetch_job *j, size_t off, size_t len)
{
    char hdr[32];

    snprintf(hdr, sizeof hdr, "{%zu}\r\n", len);
    mime_buf_adds(&j->text, hdr);
    flush_text(j);
    if (len && j->nseg < SEGMENTS_MAX)
        j->seg[j->nseg++] = (struct segment){1, off, len};
}

/* Bytes from memory: a literal8 when they hold a NUL (a BINARY[] section
 * whose decoding gave one, RFC 3516 4.2); no stored message has one. */
static void literal_buf(struct fetch_job *j, const char *p, size_t len)
{
    char hdr[32];

    snprintf(hdr, sizeof hdr, "%s{%zu}\r\n", len && memchr(p, '\0', len) ? "~" : "", len);
    mime_buf_adds(&j->text, hdr);
    mime_buf_add(&j->text, p, len);
}

/* What one message needs from the index, read in one transaction. */
struct msg_read {
    uint32_t mbox, uid;
    int want_cache;
    uint64_t changedsince;
    struct db_message dm;
    struct fetch_job *j;
    int cached;
    int rev1;                           /* an IMAP4rev1 session (message/global) */
};

/* The cache holds the IMAP4rev2 form: a message/global part as
 * body-type-msg, which an IMAP4rev1 session must not see. */
static const char global_msg[] = "\"message\" \"global\"";

static int tx_msg_read(struct db_txn *txn, void *arg)
{
    struct msg_read *r = arg;
    struct db_cache c;
    int rc;

    if ((rc = db_message_get(txn, r->mbox, r->uid, &r->dm)) != 0)
        return rc;
    if (r->changedsince && r->dm.modseq <= r->changedsince)
        return DB_NOTFOUND;             /* unchanged: not sent */
    if (!r->want_cache)
        return 0;
    rc = db_cache_get(txn, r->dm.file_id, &c);
    if (rc == DB_NOTFOUND)
        return 0;
    if (rc != 0)
        return rc;
    if (r->rev1 && memmem(c.bodystructure, c.bodystructure_len, global_msg,
                          sizeof global_msg - 1) != NULL)
        return 0;                       /* computed for this session instead */
    r->cached = 1;
    mime_buf_add(&r->j->env, c.envelope, c.envelope_len);
    mime_buf_add(&r->j->bs, c.bodystructure, c.bodystructure_len);
    mime_buf_add(&r->j->body, c.body, c.body_len);
    return 0;
}

static int tx_cache_put(struct db_txn *txn, void *arg)
{
    struct msg_read *r = arg;
    struct fetch_job *j = r->j;
    struct db_cache c = {j->env.p, j->bs.p, j->body.p, j->env.len, j->bs.len, j->body.len};

    return db_cache_put(txn, r->dm.file_id, &c);
}

/* The structure of a message the cache did not have: computed, then kept
 * (not the IMAP4rev1 form of a message with a message/global part). */
static void fill_structure(struct imap_session *s, struct msg_read *r, struct mime_msg *mime)
{
    struct fetch_job *j = r->j;
    unsigned basic;
    char err[256];

    if (mime == NULL)
        return;
    basic = r->rev1 && (mime->flags & MIME_MSG_GLOBAL) ? MIME_IMAP_GLOBAL_BASIC : 0;
    mime_imap_envelope(mime->root, &j->env);
    mime_imap_bodystructure(mime, MIME_IMAP_EXTENDED | basic, &j->bs);
    mime_imap_bodystructure(mime, basic, &j->body);
    if (!basic && !j->env.failed && !j->bs.failed && !j->body.failed)
        db_write_lazy(s->srv->svc->db, tx_cache_put, r, err, sizeof err);
}

static void internaldate(char *out, size_t len, int64_t when)
{
    time_t t = (time_t)when;
    struct tm tm;

    localtime_r(&t, &tm);
    strftime(out, len, "\"%d-%b-%Y %H:%M:%S %z\"", &tm);
}

/* A BODY[...] / BINARY[...] item. */
static void body_item(struct fetch_job *j, const struct imap_fetch_att *a, struct mime_msg *mime)
{
    struct mime_section sec;
    struct mime_range r = {0, 0};
    struct mime_buf tmp;
    int from_buf = 0, ok;
    char nums[IMAP_SECTION_DEPTH * 11] = "";
    size_t off = 0;

    for (size_t i = 0; i < a->nparts; i++)
        off += (size_t)snprintf(nums + off, sizeof nums - off, "%s%u", i ? "." : "", a->part[i]);
    mime_buf_init(&tmp, 0);
    ok = mime != NULL && mime_section(mime, nums, strlen(nums), &sec) == 0;
    if (ok) {
        switch (a->text) {
        case IMAP_SECTION_ALL: r = sec.body; break;
        case IMAP_SECTION_MIME: r = sec.mime; ok = sec.has_mime; break;
        case IMAP_SECTION_HEADER: r = sec.header; ok = sec.has_message; break;
        case IMAP_SECTION_TEXT: r = sec.text; ok = sec.has_message; break;
        case IMAP_SECTION_HEADER_FIELDS:
        case IMAP_SECTION_HEADER_FIELDS_NOT:
            ok = sec.has_message &&
                 mime_header_fields(mime, sec.header, (const char *const *)a->fields, a->nfields,
                                    a->text == IMAP_SECTION_HEADER_FIELDS_NOT, &tmp) == 0;
            from_buf = 1;
            break;
        }
        if (ok && a->kind == IMAP_FETCH_BINARY_SECTION) {
            ok = mime_decode_body(sec.part, &tmp, NULL) == 0;
            from_buf = 1;
        }
    }
    if (!ok) {
        /* A part that does not exist reads as empty (as Dovecot answers). */
        r.off = r.len = 0;
        from_buf = 0;
    }
    size_t len = from_buf ? tmp.len : r.len, start = 0;
    if (a->partial) {
        start = a->offset < len ? (size_t)a->offset : len;
        if (len - start > a->count)
            len = start + (size_t)a->count;
        len -= start;
    }
    mime_buf_adds(&j->text, a->name);
    mime_buf_addc(&j->text, ' ');
    if (from_buf)
        literal_buf(j, tmp.p + start, len);
    else if (!ok)
        mime_buf_adds(&j->text, "\"\"");
    else
        literal_map(j, r.off + start, len);
    mime_buf_free(&tmp);
}

static int needs_bytes(enum imap_fetch_kind kd)
{
    return kd == IMAP_FETCH_BODY_SECTION || kd == IMAP_FETCH_BINARY_SECTION ||
           kd == IMAP_FETCH_BINARY_SIZE || kd == IMAP_FETCH_RFC822 ||
           kd == IMAP_FETCH_RFC822_HEADER || kd == IMAP_FETCH_RFC822_TEXT;
}

static int needs_structure(enum imap_fetch_kind kd)
{
    return kd == IMAP_FETCH_ENVELOPE || kd == IMAP_FETCH_BODYSTRUCTURE ||
           kd == IMAP_FETCH_BODY_STRUCT;
}

/* The index record, the cached structure and (when needed) the parsed file
 * of the job's current message; -1 when it is gone. */
static int load_message(struct imap_session *s, struct fetch_job *j, struct msg_read *r,
                        struct mime_msg **mime)
{
    int want_bytes = 0;
    char err[256];

    *r = (struct msg_read){.mbox = s->view->mailbox_id,
                           .uid = s->view->msgs[j->idx[j->pos]].uid, .j = j,
                           .changedsince = j->changedsince, .rev1 = !s->rev2};
    for (size_t k = 0; k < j->atts.n; k++) {
        want_bytes |= needs_bytes(j->atts.a[k].kind);
        r->want_cache |= needs_structure(j->atts.a[k].kind);
    }
    mime_buf_reset(&j->env);
    mime_buf_reset(&j->bs);
    mime_buf_reset(&j->body);
    if (db_read(s->srv->svc->db, tx_msg_read, r, err, sizeof err) != 0)
        return -1;                      /* expunged meanwhile, or unchanged: skip it */
    *mime = NULL;
    if ((want_bytes || (r->want_cache && !r->cached)) &&
        msgfile_load(&j->file, s->srv->svc->store, r->dm.file_id, 0) == 0)
        *mime = mime_parse(j->file.p ? j->file.p : "", j->file.len);
    if (r->want_cache && !r->cached)
        fill_structure(s, r, *mime);
    return 0;
}

/* Items the client did not name: FLAGS after an implicit \Seen, with
 * CONDSTORE also UID and MODSEQ then (RFC 7162 3.1), and MODSEQ for
 * CHANGEDSINCE (3.1.4.1). */
static void implied_items(struct imap_session *s, struct fetch_job *j, const struct view_msg *vm,
                          uint64_t modseq, int first)
{
    int flags = j->with_flags, uid = j->with_flags && s->condstore && !j->uid;
    int mod = j->changedsince || (j->with_flags && s->condstore);
    char buf[DB_KEYWORDS_MAX * (DB_KEYWORD_LEN + 1) + 64];

    for (size_t k = 0; k < j->atts.n; k++) {
        flags &= j->atts.a[k].kind != IMAP_FETCH_FLAGS;
        uid &= j->atts.a[k].kind != IMAP_FETCH_UID;
        mod &= j->atts.a[k].kind != IMAP_FETCH_MODSEQ;
    }
    if (uid) {
        snprintf(buf, sizeof buf, "%sUID %u", first ? "" : " ", vm->uid);
        mime_buf_adds(&j->text, buf);
        first = 0;
    }
    if (flags) {
        mime_buf_adds(&j->text, first ? "FLAGS (" : " FLAGS (");
        view_flags_text(s->view, vm, buf, sizeof buf);
        mime_buf_adds(&j->text, buf);
        mime_buf_addc(&j->text, ')');
        first = 0;
    }
    if (mod) {
        snprintf(buf, sizeof buf, "%sMODSEQ (%llu)", first ? "" : " ", (unsigned long long)modseq);
        mime_buf_adds(&j->text, buf);
    }
}

/* Build the segments of the job's current message. */
static int prepare(struct imap_session *s, struct fetch_job *j)
{
    const struct view_msg *vm = &s->view->msgs[j->idx[j->pos]];
    struct msg_read rd;
    struct mime_msg *mime;
    char buf[DB_KEYWORDS_MAX * (DB_KEYWORD_LEN + 1) + 64];
    int first = 1;

    mime_buf_reset(&j->text);
    j->nseg = j->cur = j->cur_off = 0;
    j->text_mark = 0;
    if (load_message(s, j, &rd, &mime) != 0)
        return -1;
    snprintf(buf, sizeof buf, "* %zu FETCH (", j->idx[j->pos] + 1);
    mime_buf_adds(&j->text, buf);
#define SEP() (first ? (void)(first = 0) : (void)mime_buf_addc(&j->text, ' '))
    if (j->uid) {
        SEP();
        snprintf(buf, sizeof buf, "UID %u", vm->uid);
        mime_buf_adds(&j->text, buf);
    }
    for (size_t k = 0; k < j->atts.n; k++) {
        const struct imap_fetch_att *a = &j->atts.a[k];
        switch (a->kind) {
        case IMAP_FETCH_UID:
            if (j->uid)
                break;
            SEP();
            snprintf(buf, sizeof buf, "UID %u", vm->uid);
            mime_buf_adds(&j->text, buf);
            break;
        case IMAP_FETCH_FLAGS:
            SEP();
            mime_buf_adds(&j->text, "FLAGS (");
            view_flags_text(s->view, vm, buf, sizeof buf);
            mime_buf_adds(&j->text, buf);
            mime_buf_addc(&j->text, ')');
            break;
        case IMAP_FETCH_INTERNALDATE:
            SEP();
            internaldate(buf, sizeof buf, rd.dm.internaldate);
            mime_buf_adds(&j->text, "INTERNALDATE ");
            mime_buf_adds(&j->text, buf);
            break;
        case IMAP_FETCH_RFC822_SIZE:
            SEP();
            snprintf(buf, sizeof buf, "RFC822.SIZE %llu", (unsigned long long)rd.dm.size);
            mime_buf_adds(&j->text, buf);
            break;
        case IMAP_FETCH_MODSEQ:
            SEP();
            snprintf(buf, sizeof buf, "MODSEQ (%llu)", (unsigned long long)rd.dm.modseq);
            mime_buf_adds(&j->text, buf);
            break;
        case IMAP_FETCH_ENVELOPE:
        case IMAP_FETCH_BODYSTRUCTURE:
        case IMAP_FETCH_BODY_STRUCT:
            SEP();
            mime_buf_adds(&j->text, a->kind == IMAP_FETCH_ENVELOPE ? "ENVELOPE "
                                    : a->kind == IMAP_FETCH_BODYSTRUCTURE ? "BODYSTRUCTURE "
                                                                          : "BODY ");
            {
                struct mime_buf *b = a->kind == IMAP_FETCH_ENVELOPE ? &j->env
                                   : a->kind == IMAP_FETCH_BODYSTRUCTURE ? &j->bs : &j->body;
                if (b->len)
                    mime_buf_add(&j->text, b->p, b->len);
                else
                    mime_buf_adds(&j->text, "NIL");
            }
            break;
        case IMAP_FETCH_RFC822:
            SEP();
            mime_buf_adds(&j->text, "RFC822 ");
            literal_map(j, 0, j->file.len);
            break;
        case IMAP_FETCH_RFC822_HEADER:
        case IMAP_FETCH_RFC822_TEXT: {
            struct mime_section sec;
            int ok = mime && mime_section(mime, "", 0, &sec) == 0;
            struct mime_range r = ok ? (a->kind == IMAP_FETCH_RFC822_HEADER ? sec.header : sec.text)
                                     : (struct mime_range){0, 0};
            SEP();
            mime_buf_adds(&j->text, a->kind == IMAP_FETCH_RFC822_HEADER ? "RFC822.HEADER "
                                                                        : "RFC822.TEXT ");
            literal_map(j, r.off, r.len);
            break;
        }
        case IMAP_FETCH_BINARY_SIZE: {
            struct mime_section sec;
            size_t size = 0;
            char nums[IMAP_SECTION_DEPTH * 11] = "";
            size_t off = 0;
            for (size_t i = 0; i < a->nparts; i++)
                off += (size_t)snprintf(nums + off, sizeof nums - off, "%s%u", i ? "." : "",
                                        a->part[i]);
            if (mime && mime_section(mime, nums, strlen(nums), &sec) == 0)
                mime_decode_body(sec.part, NULL, &size);
            SEP();
            snprintf(buf, sizeof buf, "%s %zu", a->name, size);
            mime_buf_adds(&j->text, buf);
            break;
        }
        case IMAP_FETCH_BODY_SECTION:
        case IMAP_FETCH_BINARY_SECTION:
            SEP();
            body_item(j, a, mime);
            break;
        }
    }
#undef SEP
    implied_items(s, j, vm, rd.dm.modseq, first);
    mime_buf_adds(&j->text, ")\r\n");
    flush_text(j);
    mime_free(mime);
    return j->text.failed ? -1 : 0;
}

/* Send what fits; 1 when the current message is all out. */
static int send_segments(struct imap_session *s, struct fetch_job *j)
{
    while (j->cur < j->nseg) {
        const struct segment *g = &j->seg[j->cur];
        const char *base = g->from_map ? j->file.p : j->text.p;
        size_t left = g->len - j->cur_off, n = left > FETCH_CHUNK ? FETCH_CHUNK : left;

        if (conn_out_pending(s->conn) > FETCH_HIGH_WATER)
            return 0;
        imap_write(s, base + g->off + j->cur_off, n);
        j->cur_off += n;
        if (j->cur_off == g->len) {
            j->cur++;
            j->cur_off = 0;
        }
    }
    return 1;
}

static void finish(struct imap_session *s)
{
    struct fetch_job *j = s->fetch;
    int uid = j->uid;

    s->fetch = NULL;
    fetch_job_free(j);
    /* UID FETCH may announce expunges; FETCH may not (RFC 3501 7.4.1). */
    if (view_sync(s, uid) < 0)
        return;
    imap_tagged(s, "OK", "Fetch completed");
    imap_command_done(s);
}

void fetch_continue(struct imap_session *s)
{
    struct fetch_job *j = s->fetch;

    while (j->pos < j->n) {
        if (!j->active) {
            if (prepare(s, j) != 0) {
                j->pos++;
                msgfile_release(&j->file);
                continue;
            }
            j->active = 1;
        }
        if (!send_segments(s, j)) {
            imap_stall_arm(s);
            return;                     /* CONN_EV_DRAINED brings us back */
        }
        msgfile_release(&j->file);
        j->active = 0;
        j->pos++;
    }
    finish(s);
}

/* Implicit \Seen of a non-PEEK body fetch, in one transaction. */
struct seen_op {
    struct view *v;
    size_t *idx, n;
};

static int tx_seen(struct db_txn *txn, void *arg)
{
    struct seen_op *o = arg;

    for (size_t i = 0; i < o->n; i++) {
        struct view_msg *m = &o->v->msgs[o->idx[i]];
        struct db_message now;          /* as the index has it: keep others' changes */
        int rc;
        if (m->flags & DB_FLAG_SEEN)
            continue;
        rc = db_message_get(txn, o->v->mailbox_id, m->uid, &now);
        if (rc == 0 && !(now.flags & DB_FLAG_SEEN))
            rc = db_message_update(txn, o->v->mailbox_id, m->uid, now.flags | DB_FLAG_SEEN,
                                   now.keywords, NULL);
        if (rc != 0 && rc != DB_NOTFOUND)
            return rc;
    }
    return 0;
}

static int sets_seen(const struct imap_fetch_atts *atts)
{
    for (size_t i = 0; i < atts->n; i++) {
        enum imap_fetch_kind k = atts->a[i].kind;
        if (((k == IMAP_FETCH_BODY_SECTION || k == IMAP_FETCH_BINARY_SECTION) &&
             !atts->a[i].peek) ||
            k == IMAP_FETCH_RFC822 || k == IMAP_FETCH_RFC822_TEXT)
            return 1;
    }
    return 0;
}

/* (CHANGEDSINCE n [VANISHED]): VANISHED only in UID FETCH with QRESYNC
 * enabled and CHANGEDSINCE (RFC 7162 3.2.6).  -1 after a BAD reply. */
static int fetch_mods(struct imap_session *s, int uid, const struct imap_arg *arg,
                      struct imap_fetch_mods *mods)
{
    const char *why = "Invalid FETCH modifiers";

    if (imap_fetch_mods_parse(arg, mods, &why) == 0) {
        if (!mods->vanished || (uid && s->qresync && mods->changedsince)) {
            s->condstore |= mods->changedsince;
            return 0;
        }
        why = "VANISHED needs UID FETCH, QRESYNC enabled and CHANGEDSINCE";
    }
    imap_tagged(s, "BAD", "%s", why);
    imap_command_done(s);
    return -1;
}

void cmd_fetch(struct imap_session *s, int uid, const struct imap_arg *args, size_t nargs)
{
    struct fetch_job *j;
    struct imap_seqset set;
    const char *why = "Invalid fetch attributes";
    char err[256];
    struct imap_fetch_mods mods = {0};

    if (nargs < 2 || nargs > 3 || args[0].type != IMAP_ARG_ATOM ||
        imap_seqset_parse(args[0].s, args[0].len, &set) < 0) {
        imap_tagged(s, "BAD", "Syntax: FETCH set attributes [(modifiers)]");
        imap_command_done(s);
        return;
    }
    if (nargs == 3 && fetch_mods(s, uid, &args[2], &mods) < 0) {
        imap_seqset_free(&set);
        return;
    }
    if (searchres_expand(s->view, &set, uid) < 0) {
        imap_seqset_free(&set);
        imap_tagged(s, "NO", "[SERVERBUG] Out of memory");
        imap_command_done(s);
        return;
    }
    if (!uid && !view_seqset_valid(s->view, &set)) {
        imap_seqset_free(&set);
        imap_tagged(s, "BAD", "Invalid messageset");
        imap_command_done(s);
        return;
    }
    j = calloc(1, sizeof *j);
    if (j == NULL || imap_fetch_atts_parse(&args[1], &j->atts, &why) < 0) {
        imap_seqset_free(&set);
        if (j)
            free(j);
        imap_tagged(s, "BAD", "%s", why);
        imap_command_done(s);
        return;
    }
    j->uid = uid;
    j->changedsince = mods.modseq;
    for (size_t i = 0; i < j->atts.n; i++)
        s->condstore |= j->atts.a[i].kind == IMAP_FETCH_MODSEQ;   /* RFC 7162 3.1 */
    if (mods.vanished)
        condstore_vanished_earlier(s, &set);
    mime_buf_init(&j->text, 0);
    mime_buf_init(&j->env, 0);
    mime_buf_init(&j->bs, 0);
    mime_buf_init(&j->body, 0);
    j->idx = view_resolve(s->view, &set, uid, &j->n);
    imap_seqset_free(&set);
    if (sets_seen(&j->atts) && !s->view->readonly) {
        j->with_flags = 1;
        struct seen_op o = {s->view, j->idx, j->n};
        if (db_write_lazy(s->srv->svc->db, tx_seen, &o, err, sizeof err) == 0) {
            notify_mailbox(s->srv, s->view->mailbox_id);
            for (size_t i = 0; i < j->n; i++)
                s->view->msgs[j->idx[i]].flags |= DB_FLAG_SEEN;
        }
    }
    s->fetch = j;
    fetch_continue(s);
}
