/*
 * mime_attach.c - what a part is for a mail policy: its type, its
 * disposition, its file name, whether it is an attachment (SPEC 4), and a
 * walk over all parts for submitd's allowed_attachment_types.  See mime.h.
 *
 * These answers are meant for decisions, so doubt goes to the strict side:
 * a Content-Type that cannot be parsed is application/octet-stream (never a
 * text type that a policy may allow), and submitd should parse with
 * MIME_PARSE_LENIENT so that broken syntax cannot hide a part or a name
 * that a mail client would still show.
 */
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "mime_internal.h"

static void lower_into(char *out, size_t outsz, size_t *n, const char *s, size_t len)
{
    for (size_t i = 0; i < len && *n + 1 < outsz; i++) {
        char c = s[i];
        out[(*n)++] = (char)(c >= 'A' && c <= 'Z' ? c - 'A' + 'a' : c);
    }
}

static void type_of(const struct mime_part *part, const struct mime_info *in, char *out,
                    size_t outsz)
{
    const char *t = NULL;
    size_t n = 0;

    if (outsz == 0)
        return;
    if (!in->type.set)
        t = part->kind == MIME_MESSAGE ? "message/rfc822" : "text/plain";
    else if (!in->ct_ok || !in->subtype.set)
        t = "application/octet-stream";
    if (t != NULL) {
        lower_into(out, outsz, &n, t, strlen(t));
    } else {
        lower_into(out, outsz, &n, mime_str_ptr(&in->store, in->type), in->type.len);
        lower_into(out, outsz, &n, "/", 1);
        lower_into(out, outsz, &n, mime_str_ptr(&in->store, in->subtype), in->subtype.len);
    }
    out[n] = '\0';
}

static enum mime_disposition disposition_of(const struct mime_info *in)
{
    const char *d = mime_str_ptr(&in->store, in->disp);

    if (!in->disp.set)
        return MIME_DISP_NONE;
    if (in->disp.len == 6 && strncasecmp(d, "inline", 6) == 0)
        return MIME_DISP_INLINE;
    if (in->disp.len == 10 && strncasecmp(d, "attachment", 10) == 0)
        return MIME_DISP_ATTACHMENT;
    return MIME_DISP_OTHER;
}

/* 1 and the decoded name in out, 0 when there is none, -1 when out is full. */
static int filename_of(const struct mime_info *in, struct mime_buf *out)
{
    static const struct {
        int disposition;
        const char *name;
        int extended;
    } order[] = {
        {1, "filename*", 1},
        {1, "filename", 0},
        {0, "name*", 1},
        {0, "name", 0},
    };

    for (size_t i = 0; i < sizeof order / sizeof order[0]; i++) {
        const struct mime_params *ps = order[i].disposition ? &in->dispp : &in->ctp;
        const struct mime_param *p = mime_params_get(ps, &in->store, order[i].name);

        if (p != NULL && p->value.len > 0) {
            if (mime_param_decode(mime_str_ptr(&in->store, p->value), p->value.len,
                                  order[i].extended, out) < 0)
                return -1;
            return 1;
        }
    }
    return 0;
}

void mime_part_type(const struct mime_part *part, char *out, size_t outsz)
{
    struct mime_info *in = malloc(sizeof *in);

    if (in == NULL || mime_info_load(part, in) < 0) {
        if (outsz > 0) {
            size_t n = 0;
            lower_into(out, outsz, &n, "application/octet-stream", 24);
            out[n] = '\0';
        }
    } else {
        type_of(part, in, out, outsz);
    }
    if (in != NULL)
        mime_info_free(in);
    free(in);
}

enum mime_disposition mime_part_disposition(const struct mime_part *part)
{
    struct mime_info *in = malloc(sizeof *in);
    enum mime_disposition d = MIME_DISP_NONE;

    if (in != NULL && mime_info_load(part, in) == 0)
        d = disposition_of(in);
    if (in != NULL)
        mime_info_free(in);
    free(in);
    return d;
}

int mime_part_filename(const struct mime_part *part, struct mime_buf *out)
{
    struct mime_info *in = malloc(sizeof *in);
    int ret = -1;

    if (in != NULL && mime_info_load(part, in) == 0)
        ret = filename_of(in, out);
    if (in != NULL)
        mime_info_free(in);
    free(in);
    return ret;
}

const struct mime_part *mime_main_body(const struct mime_msg *msg)
{
    const struct mime_part *p = msg->root;
    char type[8];

    while (p != NULL && p->kind == MIME_MULTIPART && !(p->flags & MIME_PART_LIMITED))
        p = p->child;
    if (p == NULL || p->kind != MIME_LEAF)
        return NULL;
    mime_part_type(p, type, sizeof type);
    return strncmp(type, "text/", 5) == 0 ? p : NULL;
}

/* SPEC 4, given what the walk already knows. */
static int attachment(const struct mime_part *part, const struct mime_part *main_body,
                      const char *type, enum mime_disposition disp, int has_name)
{
    if (part == main_body)
        return 0;
    if (part->kind == MIME_MULTIPART && !(part->flags & MIME_PART_LIMITED))
        return 0;
    if (disp == MIME_DISP_ATTACHMENT)
        return 1;
    return has_name && strncmp(type, "text/", 5) != 0;
}

int mime_is_attachment(const struct mime_part *part)
{
    struct mime_info *in = malloc(sizeof *in);
    struct mime_buf name;
    char type[256];
    int ret = 0, has;

    if (in == NULL)
        return 0;
    if (mime_info_load(part, in) == 0) {
        mime_buf_init(&name, MIME_STORE_MAX);
        type_of(part, in, type, sizeof type);
        has = filename_of(in, &name) != 0;
        ret = attachment(part, mime_main_body(part->msg), type, disposition_of(in), has);
        mime_buf_free(&name);
    }
    mime_info_free(in);
    free(in);
    return ret;
}

int mime_walk(const struct mime_msg *msg, mime_walk_cb *cb, void *arg)
{
    const struct mime_part *main_body = mime_main_body(msg);
    struct mime_info *in = malloc(sizeof *in);
    struct mime_buf name;
    char type[256];
    int ret = 0;

    if (in == NULL)
        return -1;
    mime_buf_init(&name, MIME_STORE_MAX);
    for (size_t i = 0; i < msg->nparts && ret == 0; i++) {
        const struct mime_part *p = &msg->parts[i];
        struct mime_walk_info w;
        int has;

        if (mime_info_load(p, in) < 0) {
            mime_info_free(in);
            ret = -1;
            break;
        }
        mime_buf_reset(&name);
        type_of(p, in, type, sizeof type);
        has = filename_of(in, &name);
        if (has < 0 || mime_buf_cstr(&name) < 0) {
            mime_info_free(in);
            ret = -1;
            break;
        }
        w.part = p;
        w.type = type;
        w.disposition = disposition_of(in);
        w.filename = has ? name.p : NULL;
        w.attachment = attachment(p, main_body, type, w.disposition, has);
        mime_info_free(in);
        ret = cb(&w, arg);
    }
    mime_buf_free(&name);
    free(in);
    return ret;
}
