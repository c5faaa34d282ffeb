/*
 * imap_seqset.c - IMAP sequence sets (RFC 3501 sequence-set, RFC 5182 "$"):
 * parsing into ranges and membership.  See imap_parse.h.
 *
 * The set is parsed in one pass into an array sized from the number of
 * commas, so a hostile set costs at most IMAP_SEQSET_MAX ranges.  '*' is
 * UINT32_MAX and stays symbolic until imap_seqset_contains() knows the
 * largest number in use.
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "imap_parse.h"

/* seq-number at s[*i]: nz-number or '*'. */
static int ss_number(const char *s, size_t len, size_t *i, uint32_t *out)
{
    uint64_t v = 0;

    if (*i < len && s[*i] == '*') {
        (*i)++;
        *out = UINT32_MAX;
        return 0;
    }
    if (*i == len || s[*i] < '1' || s[*i] > '9')
        return -1; /* no digit, 0, or a leading zero */
    while (*i < len && s[*i] >= '0' && s[*i] <= '9') {
        v = v * 10 + (uint64_t)(s[*i] - '0');
        if (v > UINT32_MAX)
            return -1; /* stops at the 11th digit at the latest */
        (*i)++;
    }
    *out = (uint32_t)v;
    return 0;
}

int imap_seqset_parse(const char *s, size_t len, struct imap_seqset *out)
{
    size_t n = 1, i = 0;

    memset(out, 0, sizeof *out);
    if (len == 1 && s[0] == '$') {
        out->saved = 1;
        return 0;
    }
    if (len == 0)
        return -1;
    for (size_t k = 0; k < len; k++)
        if (s[k] == ',' && ++n > IMAP_SEQSET_MAX)
            return -1;
    if ((out->r = malloc(n * sizeof *out->r)) == NULL)
        return -1;
    for (;;) {
        struct imap_seq_range *r = &out->r[out->n];

        if (ss_number(s, len, &i, &r->lo) < 0)
            break;
        r->hi = r->lo;
        if (i < len && s[i] == ':') {
            i++;
            if (ss_number(s, len, &i, &r->hi) < 0)
                break;
            if (r->lo > r->hi) {
                uint32_t t = r->lo;
                r->lo = r->hi;
                r->hi = t;
            }
        }
        out->n++;
        if (i == len)
            return 0;
        if (s[i] != ',' || out->n == n)
            break;
        i++;
    }
    imap_seqset_free(out);
    return -1;
}

void imap_seqset_free(struct imap_seqset *set)
{
    free(set->r);
    memset(set, 0, sizeof *set);
}

int imap_seqset_contains(const struct imap_seqset *set, uint32_t v, uint32_t max)
{
    if (v == 0)
        return 0;
    for (size_t i = 0; i < set->n; i++) {
        uint32_t lo = set->r[i].lo == UINT32_MAX ? max : set->r[i].lo;
        uint32_t hi = set->r[i].hi == UINT32_MAX ? max : set->r[i].hi;

        if (lo > hi) {
            uint32_t t = lo;
            lo = hi;
            hi = t;
        }
        if (v >= lo && v <= hi)
            return 1;
    }
    return 0;
}
