/*
 * searchres.c - the saved search result of RFC 5182 (SEARCHRES, part of
 * IMAP4rev2): SEARCH/SORT RETURN (SAVE ...) keeps the messages it found,
 * and "$" in a later command's sequence set names them.
 *
 * The result belongs to the selected mailbox's view (struct view: saved,
 * nsaved), so SELECT, EXAMINE, CLOSE and UNSELECT start it empty, and it is
 * kept as uid ranges: a message expunged meanwhile simply is no longer in
 * the view when "$" is resolved (RFC 5182 2.1).  It never holds more ranges
 * than the view has messages.
 */
#include <stdlib.h>
#include <string.h>

#include "imapd.h"

static int cmp_u32(const void *a, const void *b)
{
    uint32_t x = *(const uint32_t *)a, y = *(const uint32_t *)b;

    return x < y ? -1 : x > y;
}

/* The view's saved result replaced by uids (any order; n 0: empty). */
static int save_uids(struct view *v, uint32_t *uids, size_t n)
{
    struct uid_range *r = NULL;
    size_t k = 0;

    qsort(uids, n, sizeof *uids, cmp_u32);
    if (n && (r = malloc(n * sizeof *r)) == NULL)
        return -1;
    for (size_t i = 0; i < n; i++) {
        if (k && (uids[i] == r[k - 1].hi || uids[i] == r[k - 1].hi + 1))
            r[k - 1].hi = uids[i];
        else
            r[k++] = (struct uid_range){uids[i], uids[i]};
    }
    free(v->saved);
    v->saved = r;
    v->nsaved = k;
    return 0;
}

int searchres_save(struct view *v, const uint32_t *nums, size_t n, int uid, unsigned ret)
{
    uint32_t *uids;
    size_t k = 0;

    if (ret & (SEARCH_RET_MIN | SEARCH_RET_MAX)) {
        /* RFC 5182 2.4: with MIN or MAX, only what they return is saved. */
        uint32_t pick[2];
        if (n && (ret & SEARCH_RET_MIN))
            pick[k++] = nums[0];
        if (n && (ret & SEARCH_RET_MAX))
            pick[k++] = nums[n - 1];
        return searchres_save(v, pick, k, uid, 0);
    }
    if ((uids = malloc((n ? n : 1) * sizeof *uids)) == NULL) {
        searchres_clear(v);
        return -1;
    }
    for (size_t i = 0; i < n; i++)
        if (uid)
            uids[k++] = nums[i];
        else if (nums[i] >= 1 && nums[i] <= v->n)
            uids[k++] = v->msgs[nums[i] - 1].uid;
    if (save_uids(v, uids, k) < 0) {
        free(uids);
        searchres_clear(v);
        return -1;
    }
    free(uids);
    return 0;
}

void searchres_clear(struct view *v)
{
    free(v->saved);
    v->saved = NULL;
    v->nsaved = 0;
}

int searchres_has(const struct view *v, uint32_t uid)
{
    size_t lo = 0, hi = v->nsaved;

    while (lo < hi) {
        size_t mid = lo + (hi - lo) / 2;
        if (v->saved[mid].hi < uid)
            lo = mid + 1;
        else
            hi = mid;
    }
    return lo < v->nsaved && v->saved[lo].lo <= uid;
}

int searchres_expand(const struct view *v, struct imap_seqset *set, int uid)
{
    struct imap_seq_range *r;
    size_t k = 0;

    if (!set->saved)
        return 0;
    if ((r = malloc((v->n ? v->n : 1) * sizeof *r)) == NULL)
        return -1;
    for (size_t i = 0; i < v->n; i++) {
        uint32_t num = uid ? v->msgs[i].uid : (uint32_t)(i + 1);
        if (!searchres_has(v, v->msgs[i].uid))
            continue;
        if (k && r[k - 1].hi + 1 == num)
            r[k - 1].hi = num;
        else
            r[k++] = (struct imap_seq_range){num, num};
    }
    free(set->r);
    set->r = r;
    set->n = k;
    set->saved = 0;
    return 0;
}
