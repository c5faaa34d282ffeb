/*
 * fuzz_mime.c - libFuzzer target for the MIME parser and its IMAP output.
 *
 * Input: a whole message.  It is parsed both ways (as Dovecot, and
 * lenient), and for each result:
 *   - every part lies inside the buffer, inside its parent's body, after
 *     its previous sibling; depth and count stay within their bounds; a
 *     part's line count is the LFs of its body;
 *   - ENVELOPE, BODY and BODYSTRUCTURE are well-formed IMAP (balanced
 *     lists, valid quoted strings, exact literals, no NUL);
 *   - every addressable part is found again by mime_section() from its own
 *     section number, and a few sections from the input resolve inside the
 *     buffer;
 *   - the attachment walk, header access and transfer decoding run.
 * When the input has no CR, the same message with CRLF line ends must give
 * the same parts, kinds and line counts, at offsets shifted by one per LF.
 *
 *	cmake -DMAILCORE_FUZZ=ON -DMAILCORE_ASAN=OFF -DCMAKE_C_COMPILER=clang -S . -B build-fuzz
 *	build-fuzz/fuzz/fuzz_mime t/fuzz/corpus/mime
 */
#include "mailcore/mime.h"

#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

#define OUT_MAX (32u << 20)

/* ---- IMAP syntax ------------------------------------------------------ */

static size_t imap_value(const char *s, size_t len, size_t i, int depth);

static size_t imap_list(const char *s, size_t len, size_t i, int depth)
{
    if (depth > 200)
        abort();
    i++; /* '(' */
    for (int first = 1;; first = 0) {
        if (i >= len)
            abort();
        if (s[i] == ')')
            return i + 1;
        if (!first) {
            if (s[i] != ' ' && s[i - 1] != ')')
                abort();
            if (s[i] == ' ')
                i++;
        }
        i = imap_value(s, len, i, depth + 1);
    }
}

static size_t imap_value(const char *s, size_t len, size_t i, int depth)
{
    if (i >= len)
        abort();
    if (s[i] == '(')
        return imap_list(s, len, i, depth);
    if (s[i] == '"') {
        for (i++; i < len && s[i] != '"'; i++) {
            unsigned char c = (unsigned char)s[i];

            if (c == '\r' || c == '\n' || c == 0 || c >= 0x80)
                abort();
            if (c == '\\') {
                if (i + 1 >= len || (s[i + 1] != '"' && s[i + 1] != '\\'))
                    abort();
                i++;
            }
        }
        if (i >= len)
            abort();
        return i + 1;
    }
    if (s[i] == '{') {
        size_t n = 0, j = i + 1;

        while (j < len && s[j] >= '0' && s[j] <= '9')
            n = n * 10 + (size_t)(s[j++] - '0');
        if (j + 3 > len || s[j] != '}' || s[j + 1] != '\r' || s[j + 2] != '\n' || n > len - j - 3)
            abort();
        if (memchr(s + j + 3, '\0', n) != NULL)
            abort();
        return j + 3 + n;
    }
    if (len - i >= 3 && memcmp(s + i, "NIL", 3) == 0)
        return i + 3;
    if (s[i] < '0' || s[i] > '9')
        abort();
    while (i < len && s[i] >= '0' && s[i] <= '9')
        i++;
    return i;
}

/* The whole buffer is one parenthesized list. */
static void check_imap(const struct mime_buf *b, int ok)
{
    if (!ok) {
        if (!b->failed)
            abort(); /* failing must say why */
        return;
    }
    if (b->len == 0 || b->p[0] != '(' || imap_value(b->p, b->len, 0, 0) != b->len)
        abort();
}

/* ---- structure -------------------------------------------------------- */

static size_t count_lf(const char *s, size_t n)
{
    size_t c = 0;

    for (size_t i = 0; i < n; i++)
        c += s[i] == '\n';
    return c;
}

static void check_parts(const struct mime_msg *m, size_t len)
{
    if (m->nparts == 0 || m->nparts > MIME_PARTS_MAX || m->root != &m->parts[0])
        abort();
    for (size_t i = 0; i < m->nparts; i++) {
        const struct mime_part *p = &m->parts[i], *c, *prev = NULL;

        if (p->msg != m || p->depth >= MIME_DEPTH_MAX)
            abort();
        if (p->hdr_off > len || p->hdr_len > len - p->hdr_off ||
            p->hdr_off + p->hdr_len != p->body_off || p->body_len > len - p->body_off)
            abort();
        if (p->body_lines != count_lf(m->buf + p->body_off, p->body_len))
            abort();
        if ((p->parent == NULL) != (i == 0))
            abort();
        if (p->kind == MIME_MESSAGE && p->child != NULL && p->child->next != NULL)
            abort();
        if (p->kind == MIME_LEAF && p->child != NULL)
            abort();
        for (c = p->child; c != NULL; prev = c, c = c->next) {
            if (c->parent != p || c->depth != p->depth + 1 || c < p)
                abort();
            if (c->hdr_off < p->body_off || c->body_off + c->body_len > p->body_off + p->body_len)
                abort();
            if (prev != NULL && c->hdr_off < prev->body_off + prev->body_len)
                abort();
        }
    }
}

/* The section number of p into out; 0 when p has none of its own. */
static int part_path(const struct mime_part *p, char *out, size_t outsz)
{
    const struct mime_part *parent = p->parent;
    char pre[4096];
    size_t idx = 1;

    if (parent == NULL) {
        if (p->kind == MIME_MULTIPART)
            return 0;
        snprintf(out, outsz, "1");
        return 1;
    }
    if (parent->kind == MIME_MESSAGE) {
        if (p->kind == MIME_MULTIPART || !part_path(parent, pre, sizeof pre))
            return 0;
        snprintf(out, outsz, "%s.1", pre);
        return strlen(out) < outsz - 1;
    }
    for (const struct mime_part *s = parent->child; s != p; s = s->next)
        idx++;
    /* The prefix: the multipart's own number, or its message's. */
    if (parent->parent == NULL) {
        snprintf(out, outsz, "%zu", idx);
        return 1;
    }
    if (parent->parent->kind == MIME_MESSAGE) {
        if (!part_path(parent->parent, pre, sizeof pre))
            return 0;
    } else if (!part_path(parent, pre, sizeof pre)) {
        return 0;
    }
    snprintf(out, outsz, "%s.%zu", pre, idx);
    return strlen(out) < outsz - 1;
}

static void check_sections(const struct mime_msg *m, const uint8_t *data, size_t size)
{
    struct mime_section s;
    char path[4096];

    for (size_t i = 0; i < m->nparts; i++) {
        const struct mime_part *p = &m->parts[i];

        if (!part_path(p, path, sizeof path))
            continue;
        if (mime_section(m, path, strlen(path), &s) != 0 || s.part != p)
            abort();
    }
    if (mime_section(m, "", 0, &s) != 0 || s.part != m->root || s.body.len != m->len)
        abort();
    /* A few section specs taken from the input itself. */
    for (size_t i = 0; i + 1 < size && i < 64; i += 8) {
        size_t n = (data[i] % 12) + 1;

        if (i + 1 + n > size)
            break;
        if (mime_section(m, (const char *)data + i + 1, n, &s) == 0) {
            const struct mime_range *r[4] = {&s.body, &s.mime, &s.header, &s.text};

            for (int k = 0; k < 4; k++)
                if (r[k]->off > m->len || r[k]->len > m->len - r[k]->off)
                    abort();
        }
    }
}

static int walked(const struct mime_walk_info *w, void *arg)
{
    size_t *n = arg;

    if (w->type == NULL || strchr(w->type, '/') == NULL)
        abort();
    if (w->filename != NULL)
        (void)strlen(w->filename);
    (*n)++;
    return 0;
}

static void check_msg(const struct mime_msg *m, const uint8_t *data, size_t size)
{
    struct mime_buf b;
    struct mime_header h;
    size_t pos = 0, n = 0, dsize;
    static const char *const names[] = {"subject", "content-type"};

    check_parts(m, size);
    mime_buf_init(&b, OUT_MAX);
    check_imap(&b, mime_imap_envelope(m->root, &b) == 0);
    mime_buf_reset(&b);
    check_imap(&b, mime_imap_bodystructure(m, 1, &b) == 0);
    mime_buf_reset(&b);
    check_imap(&b, mime_imap_bodystructure(m, 0, &b) == 0);
    for (size_t i = 0; i < m->nparts; i++) {
        const struct mime_part *p = &m->parts[i];

        if (p->kind == MIME_MESSAGE && p->child != NULL) {
            mime_buf_reset(&b);
            check_imap(&b, mime_imap_envelope(p->child, &b) == 0);
        }
        if (mime_decode_body(p, NULL, &dsize) == 0 && dsize > p->body_len)
            abort();
    }
    check_sections(m, data, size);
    if (mime_walk(m, walked, &n) != 0 || n != m->nparts)
        abort();
    while (mime_header_next(m->root, &pos, &h))
        if (h.field < m->buf || h.field + h.field_len > m->buf + m->len)
            abort();
    mime_buf_reset(&b);
    mime_header_fields(m, (struct mime_range){m->root->hdr_off, m->root->hdr_len}, names, 2, 0, &b);
    mime_buf_free(&b);
}

/* The CRLF twin: same structure, offsets moved by the LFs before them. */
static void check_crlf(const struct mime_msg *lf, const char *in, size_t size)
{
    char *twin = malloc(2 * size + 1);
    size_t *shift = malloc((size + 1) * sizeof *shift), n = 0;
    struct mime_msg *m;

    if (twin == NULL || shift == NULL)
        abort();
    for (size_t i = 0; i < size; i++) {
        shift[i] = n - i;
        if (in[i] == '\n')
            twin[n++] = '\r';
        twin[n++] = in[i];
    }
    shift[size] = n - size;
    m = mime_parse(twin, n);
    if (m == NULL || m->nparts != lf->nparts)
        abort();
    for (size_t i = 0; i < m->nparts; i++) {
        const struct mime_part *a = &lf->parts[i], *b = &m->parts[i];

        if (a->kind != b->kind || a->depth != b->depth || a->body_lines != b->body_lines ||
            a->body_off + shift[a->body_off] != b->body_off ||
            a->hdr_off + shift[a->hdr_off] != b->hdr_off ||
            a->body_len + a->body_lines != b->body_len)
            abort();
    }
    mime_free(m);
    free(twin);
    free(shift);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    /* A copy of exactly the input's size, so that ASan sees overreads. */
    char *buf = malloc(size ? size : 1);
    struct mime_msg *m;

    if (buf == NULL)
        return 0;
    memcpy(buf, data, size);
    m = mime_parse(buf, size);
    if (m == NULL)
        abort();
    check_msg(m, data, size);
    if (memchr(buf, '\r', size) == NULL)
        check_crlf(m, buf, size);
    mime_free(m);
    m = mime_parse_flags(buf, size, MIME_PARSE_LENIENT);
    if (m == NULL)
        abort();
    check_msg(m, data, size);
    mime_free(m);
    free(buf);
    return 0;
}
