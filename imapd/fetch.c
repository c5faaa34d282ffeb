/*
 * fetch.c - FETCH and UID FETCH, streamed.
 *
 * For each message the response is assembled as segments: text built in a
 * buffer, and literals that point into the mmapped message file.  Segments
 * go to the connection while its output buffer is below a high-water mark;
 * the job resumes when the output drains (fetch_continue), so a client
 * fetching a 50 MB message costs a bounded amount of memory here.
 *
 * ENVELOPE, BODYSTRUCTURE and BODY come from the LMDB cache of the message
 * file, filled (once per file) by the first FETCH that needs them.  A
 * non-PEEK body fetch sets \Seen first (not in EXAMINE), and that message's
 * response then carries FLAGS.
 */
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
    /* The message being sent. */
    int active;
    const char *map;
    size_t maplen;
    struct mime_buf text;
    struct segment seg[SEGMENTS_MAX];
    size_t nseg, cur, cur_off;
    size_t text_mark;                   /* text before it is in segments */
};

void fetch_job_free(struct fetch_job *job)
{
    if (job == NULL)
        return;
    if (job->map && job->maplen)
        munmap((void *)job->map, job->maplen);
    mime_buf_free(&job->text);
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

struct msg_get {
    uint32_t mbox, uid;
    struct db_message *m;
};

static int tx_msg_get(struct db_txn *txn, void *arg)
{
    struct msg_get *g = arg;

    return db_message_get(txn, g->mbox, g->uid, g->m);
}

static int db_read_message(struct imap_session *s, uint32_t uid, struct db_message *m)
{
    struct msg_get g = {s->view->mailbox_id, uid, m};
    char err[256];

    return db_read(s->srv->svc->db, tx_msg_get, &g, err, sizeof err);
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

static void literal_buf(struct fetch_job *j, const char *p, size_t len)
{
    char hdr[32];

    snprintf(hdr, sizeof hdr, "{%zu}\r\n", len);
    mime_buf_adds(&j->text, hdr);
    mime_buf_add(&j->text, p, len);
}

static int open_message(struct imap_session *s, uint64_t file_id, const char **map,
                        size_t *len)
{
    int fd = store_file_open(s->srv->svc->store, file_id);
    struct stat st;

    *map = NULL;
    *len = 0;
    if (fd < 0)
        return -1;
    if (fstat(fd, &st) == 0 && st.st_size > 0) {
        void *p = mmap(NULL, (size_t)st.st_size, PROT_READ, MAP_PRIVATE, fd, 0);
        if (p != MAP_FAILED) {
            *map = p;
            *len = (size_t)st.st_size;
        }
    }
    close(fd);
    return *map || st.st_size == 0 ? 0 : -1;
}

/* Cached structure of a file; computed and stored when missing. */
struct cache_io {
    uint64_t file_id;
    struct db_cache c;
    struct mime_buf env, bs, body;
    int found;
};

static int tx_cache_get(struct db_txn *txn, void *arg)
{
    struct cache_io *io = arg;
    int rc = db_cache_get(txn, io->file_id, &io->c);

    if (rc == DB_NOTFOUND)
        return 0;
    if (rc != 0)
        return rc;
    io->found = 1;
    mime_buf_add(&io->env, io->c.envelope, io->c.envelope_len);
    mime_buf_add(&io->bs, io->c.bodystructure, io->c.bodystructure_len);
    mime_buf_add(&io->body, io->c.body, io->c.body_len);
    return 0;
}

static int tx_cache_put(struct db_txn *txn, void *arg)
{
    struct cache_io *io = arg;
    struct db_cache c = {io->env.p, io->bs.p, io->body.p, io->env.len, io->bs.len, io->body.len};

    return db_cache_put(txn, io->file_id, &c);
}

static void structure(struct imap_session *s, struct fetch_job *j, uint64_t file_id,
                      struct mime_msg *mime, struct cache_io *io)
{
    char err[256];

    if (io->found || io->env.len)
        return;
    io->file_id = file_id;
    db_read(s->srv->svc->db, tx_cache_get, io, err, sizeof err);
    if (io->found)
        return;
    (void)j;
    if (mime == NULL)
        return;
    mime_imap_envelope(mime->root, &io->env);
    mime_imap_bodystructure(mime, 1, &io->bs);
    mime_imap_bodystructure(mime, 0, &io->body);
    if (!io->env.failed && !io->bs.failed && !io->body.failed)
        db_write_lazy(s->srv->svc->db, tx_cache_put, io, err, sizeof err);
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

/* Build the segments of message i of the job. */
static int prepare(struct imap_session *s, struct fetch_job *j)
{
    const struct view_msg *vm = &s->view->msgs[j->idx[j->pos]];
    struct db_message dm;
    struct mime_msg *mime = NULL;
    struct cache_io io = {0};
    char buf[DB_KEYWORDS_MAX * (DB_KEYWORD_LEN + 1) + 64];
    int first = 1, need_file = 0;

    mime_buf_reset(&j->text);
    j->nseg = j->cur = j->cur_off = 0;
    j->text_mark = 0;
    if (db_read_message(s, vm->uid, &dm) != 0)
        return -1;                      /* expunged meanwhile: skip it */
    for (size_t k = 0; k < j->atts.n; k++) {
        enum imap_fetch_kind kd = j->atts.a[k].kind;
        if (kd == IMAP_FETCH_BODY_SECTION || kd == IMAP_FETCH_BINARY_SECTION ||
            kd == IMAP_FETCH_BINARY_SIZE || kd == IMAP_FETCH_RFC822 ||
            kd == IMAP_FETCH_RFC822_HEADER || kd == IMAP_FETCH_RFC822_TEXT ||
            kd == IMAP_FETCH_ENVELOPE || kd == IMAP_FETCH_BODYSTRUCTURE ||
            kd == IMAP_FETCH_BODY_STRUCT)
            need_file = 1;
    }
    mime_buf_init(&io.env, 0);
    mime_buf_init(&io.bs, 0);
    mime_buf_init(&io.body, 0);
    if (need_file && open_message(s, dm.file_id, &j->map, &j->maplen) == 0)
        mime = mime_parse(j->map ? j->map : "", j->maplen);
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
            internaldate(buf, sizeof buf, dm.internaldate);
            mime_buf_adds(&j->text, "INTERNALDATE ");
            mime_buf_adds(&j->text, buf);
            break;
        case IMAP_FETCH_RFC822_SIZE:
            SEP();
            snprintf(buf, sizeof buf, "RFC822.SIZE %llu", (unsigned long long)dm.size);
            mime_buf_adds(&j->text, buf);
            break;
        case IMAP_FETCH_MODSEQ:
            SEP();
            snprintf(buf, sizeof buf, "MODSEQ (%llu)", (unsigned long long)dm.modseq);
            mime_buf_adds(&j->text, buf);
            break;
        case IMAP_FETCH_ENVELOPE:
        case IMAP_FETCH_BODYSTRUCTURE:
        case IMAP_FETCH_BODY_STRUCT:
            structure(s, j, dm.file_id, mime, &io);
            SEP();
            mime_buf_adds(&j->text, a->kind == IMAP_FETCH_ENVELOPE ? "ENVELOPE "
                                    : a->kind == IMAP_FETCH_BODYSTRUCTURE ? "BODYSTRUCTURE "
                                                                          : "BODY ");
            {
                struct mime_buf *b = a->kind == IMAP_FETCH_ENVELOPE ? &io.env
                                   : a->kind == IMAP_FETCH_BODYSTRUCTURE ? &io.bs : &io.body;
                if (b->len)
                    mime_buf_add(&j->text, b->p, b->len);
                else
                    mime_buf_adds(&j->text, "NIL");
            }
            break;
        case IMAP_FETCH_RFC822:
            SEP();
            mime_buf_adds(&j->text, "RFC822 ");
            literal_map(j, 0, j->maplen);
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
    if (j->with_flags) {
        int has = 0;
        for (size_t k = 0; k < j->atts.n; k++)
            has |= j->atts.a[k].kind == IMAP_FETCH_FLAGS;
        if (!has) {
            SEP();
            mime_buf_adds(&j->text, "FLAGS (");
            view_flags_text(s->view, vm, buf, sizeof buf);
            mime_buf_adds(&j->text, buf);
            mime_buf_addc(&j->text, ')');
        }
    }
#undef SEP
    mime_buf_adds(&j->text, ")\r\n");
    flush_text(j);
    mime_free(mime);
    mime_buf_free(&io.env);
    mime_buf_free(&io.bs);
    mime_buf_free(&io.body);
    return j->text.failed ? -1 : 0;
}

/* Send what fits; 1 when the current message is all out. */
static int send_segments(struct imap_session *s, struct fetch_job *j)
{
    while (j->cur < j->nseg) {
        const struct segment *g = &j->seg[j->cur];
        const char *base = g->from_map ? j->map : j->text.p;
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
                if (j->map && j->maplen)
                    munmap((void *)j->map, j->maplen);
                j->map = NULL;
                j->maplen = 0;
                continue;
            }
            j->active = 1;
        }
        if (!send_segments(s, j)) {
            imap_stall_arm(s);
            return;                     /* CONN_EV_DRAINED brings us back */
        }
        if (j->map && j->maplen)
            munmap((void *)j->map, j->maplen);
        j->map = NULL;
        j->maplen = 0;
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
        int rc;
        if (m->flags & DB_FLAG_SEEN)
            continue;
        rc = db_message_update(txn, o->v->mailbox_id, m->uid, m->flags | DB_FLAG_SEEN,
                               m->keywords, NULL);
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

void cmd_fetch(struct imap_session *s, int uid, const struct imap_arg *args, size_t nargs)
{
    struct fetch_job *j;
    struct imap_seqset set;
    const char *why = "Invalid fetch attributes";
    char err[256];

    /* No FETCH modifiers (CONDSTORE's CHANGEDSINCE) yet: a third argument
     * is a syntax error. */
    if (nargs != 2 || args[0].type != IMAP_ARG_ATOM ||
        imap_seqset_parse(args[0].s, args[0].len, &set) < 0) {
        imap_tagged(s, "BAD", "Syntax: FETCH set attributes");
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
    mime_buf_init(&j->text, 0);
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
