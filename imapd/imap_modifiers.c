/*
 * imap_modifiers.c - RFC 7162's SELECT parameters and FETCH and STORE
 * modifiers, parsed from argument lists.  See imap_modifiers.h.
 *
 * Every parser fills a zeroed result and frees what it allocated before
 * it fails, so a caller frees only after success.
 */
#include <stdint.h>
#include <string.h>
#include <strings.h>

#include "imap_modifiers.h"

static int is_atom(const struct imap_arg *a, const char *word)
{
    return a->type == IMAP_ARG_ATOM && strcasecmp(a->s, word) == 0;
}

static int fail(const char **why, const char *text)
{
    *why = text;
    return -1;
}

int imap_modseq_parse(const struct imap_arg *a, int zero_ok, uint64_t *out)
{
    uint64_t v = 0;

    if (a->type != IMAP_ARG_ATOM || a->len == 0 || a->len > 19 ||
        (a->len > 1 && a->s[0] == '0'))
        return -1;
    for (size_t i = 0; i < a->len; i++) {
        unsigned d = (unsigned)(a->s[i] - '0');
        if (a->s[i] < '0' || a->s[i] > '9' || v > ((uint64_t)INT64_MAX - d) / 10)
            return -1;
        v = v * 10 + d;
    }
    if (v == 0 && !zero_ok)
        return -1;
    *out = v;
    return 0;
}

static int nz_number32(const struct imap_arg *a, uint32_t *out)
{
    uint64_t v;

    if (imap_modseq_parse(a, 0, &v) < 0 || v > UINT32_MAX)
        return -1;
    *out = (uint32_t)v;
    return 0;
}

/* A sequence set of plain numbers: no '*', no "$". */
static int plain_set(const struct imap_arg *a, struct imap_seqset *out)
{
    if (a->type != IMAP_ARG_ATOM || memchr(a->s, '*', a->len) != NULL ||
        imap_seqset_parse(a->s, a->len, out) < 0)
        return -1;
    if (out->saved) {
        imap_seqset_free(out);
        return -1;
    }
    return 0;
}

static uint64_t set_count(const struct imap_seqset *set)
{
    uint64_t n = 0;

    for (size_t i = 0; i < set->n; i++)
        n += (uint64_t)set->r[i].hi - set->r[i].lo + 1;
    return n;
}

/* (known-sequence-set known-uid-set) */
static int match_data(const struct imap_arg *a, struct imap_select_params *p, const char **why)
{
    if (a->nlist != 2 || plain_set(&a->list[0], &p->match_seqs) < 0)
        return fail(why, "Invalid QRESYNC sequence match data");
    if (plain_set(&a->list[1], &p->match_uids) < 0) {
        imap_seqset_free(&p->match_seqs);
        return fail(why, "Invalid QRESYNC sequence match data");
    }
    if (set_count(&p->match_seqs) != set_count(&p->match_uids)) {
        imap_seqset_free(&p->match_seqs);
        imap_seqset_free(&p->match_uids);
        return fail(why, "QRESYNC sequence match data of unequal sizes");
    }
    return 0;
}

/* QRESYNC's list: uidvalidity modseq [known-uids] [seq-match-data]. */
static int qresync_param(const struct imap_arg *a, struct imap_select_params *p,
                         const char **why)
{
    size_t i = 2;

    if (a->type != IMAP_ARG_LIST || a->nlist < 2 || a->nlist > 4)
        return fail(why, "Syntax: QRESYNC (uidvalidity modseq [known-uids [seq-match-data]])");
    if (nz_number32(&a->list[0], &p->uidvalidity) < 0)
        return fail(why, "Invalid QRESYNC UIDVALIDITY");
    if (imap_modseq_parse(&a->list[1], 0, &p->modseq) < 0)
        return fail(why, "Invalid QRESYNC mod-sequence");
    if (i < a->nlist && a->list[i].type == IMAP_ARG_ATOM) {
        if (plain_set(&a->list[i], &p->known_uids) < 0)
            return fail(why, "Invalid QRESYNC known UIDs");
        i++;
    }
    if (i < a->nlist && a->list[i].type == IMAP_ARG_LIST) {
        if (match_data(&a->list[i], p, why) < 0) {
            imap_seqset_free(&p->known_uids);
            return -1;
        }
        i++;
    }
    if (i != a->nlist) {
        imap_seqset_free(&p->known_uids);
        imap_seqset_free(&p->match_seqs);
        imap_seqset_free(&p->match_uids);
        return fail(why, "Invalid QRESYNC parameter");
    }
    p->qresync = 1;
    return 0;
}

int imap_select_params_parse(const struct imap_arg *arg, struct imap_select_params *out,
                             const char **why)
{
    memset(out, 0, sizeof *out);
    if (arg->type != IMAP_ARG_LIST || arg->nlist == 0)
        return fail(why, "Invalid SELECT parameters");
    for (size_t i = 0; i < arg->nlist; i++) {
        const struct imap_arg *a = &arg->list[i];
        if (is_atom(a, "CONDSTORE") && !out->condstore) {
            out->condstore = 1;
        } else if (is_atom(a, "QRESYNC") && !out->qresync && i + 1 < arg->nlist) {
            if (qresync_param(&arg->list[++i], out, why) < 0) {
                imap_select_params_free(out);
                return -1;
            }
        } else {
            imap_select_params_free(out);
            return fail(why, "Invalid SELECT parameter");
        }
    }
    return 0;
}

void imap_select_params_free(struct imap_select_params *p)
{
    imap_seqset_free(&p->known_uids);
    imap_seqset_free(&p->match_seqs);
    imap_seqset_free(&p->match_uids);
    memset(p, 0, sizeof *p);
}

int imap_fetch_mods_parse(const struct imap_arg *arg, struct imap_fetch_mods *out,
                          const char **why)
{
    memset(out, 0, sizeof *out);
    if (arg->type != IMAP_ARG_LIST || arg->nlist == 0)
        return fail(why, "Invalid FETCH modifiers");
    for (size_t i = 0; i < arg->nlist; i++) {
        const struct imap_arg *a = &arg->list[i];
        if (is_atom(a, "CHANGEDSINCE") && !out->changedsince) {
            if (i + 1 == arg->nlist || imap_modseq_parse(&arg->list[++i], 0, &out->modseq) < 0)
                return fail(why, "Invalid CHANGEDSINCE mod-sequence");
            out->changedsince = 1;
        } else if (is_atom(a, "VANISHED") && !out->vanished) {
            out->vanished = 1;
        } else {
            return fail(why, "Invalid FETCH modifier");
        }
    }
    return 0;
}

int imap_store_mods_parse(const struct imap_arg *arg, uint64_t *unchangedsince,
                          const char **why)
{
    if (arg->type != IMAP_ARG_LIST || arg->nlist != 2 || !is_atom(&arg->list[0], "UNCHANGEDSINCE"))
        return fail(why, "Invalid STORE modifier");
    if (imap_modseq_parse(&arg->list[1], 1, unchangedsince) < 0)
        return fail(why, "Invalid UNCHANGEDSINCE mod-sequence");
    return 0;
}
