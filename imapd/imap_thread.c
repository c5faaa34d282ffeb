/*
 * imap_thread.c - THREAD=ORDEREDSUBJECT and THREAD=REFERENCES (RFC 5256
 * section 4) over messages added in sequence order.  See imap_sort.h.
 *
 * One node per message and per message id that some References names
 * (a "dummy" until its message turns up), in an array; links are indexes
 * (parent, first child, next sibling).  Message ids are interned in an
 * open-addressing hash table.  REFERENCES step 1 runs as each message is
 * added (so only the ids of the last IMAP_THREAD_REFS_MAX references of a
 * message are ever held); steps 2-6 run in imap_thread_result().
 *
 * Nothing recurses over the tree: a reply chain as long as the mailbox
 * (hostile References) cannot exhaust the stack.  Pruning walks the tree
 * once in post-order (computed up front), sorting sorts every sibling set
 * with qsort, and output keeps its own stack of open lists.
 *
 * Sent dates order siblings; equal dates go by sequence number (the order
 * of imap_thread_add calls).  A dummy sorts as its first child.
 */
#include <stdlib.h>
#include <string.h>

#include "imap_sort.h"

#define MSGID_MAX 255 /* longer ids are ignored (RFC 5322 lines are 998) */

struct node {
    char *id; /* normalised msg-id; NULL: a message without one */
    uint32_t hash;
    int32_t parent, child, next;
    int32_t msg; /* index into msgs; -1: dummy */
};

struct tmsg {
    uint32_t id;
    int64_t date;
    char *subject; /* base subject, folded */
    int reply;
};

struct imap_thread {
    enum imap_thread_alg alg;
    struct node *nodes;
    size_t n, cap;
    struct tmsg *msgs;
    size_t nmsgs, msgcap;
    int32_t *table; /* node indexes by id hash; -1 empty */
    size_t tcap;
    size_t nids;
};

struct imap_thread *imap_thread_new(enum imap_thread_alg alg)
{
    struct imap_thread *t = calloc(1, sizeof *t);

    if (t)
        t->alg = alg;
    return t;
}

void imap_thread_free(struct imap_thread *t)
{
    if (t == NULL)
        return;
    for (size_t i = 0; i < t->n; i++)
        free(t->nodes[i].id);
    for (size_t i = 0; i < t->nmsgs; i++)
        free(t->msgs[i].subject);
    free(t->nodes);
    free(t->msgs);
    free(t->table);
    free(t);
}

static uint32_t fnv(const char *s, size_t len)
{
    uint32_t h = 2166136261u;

    for (size_t i = 0; i < len; i++)
        h = (h ^ (unsigned char)s[i]) * 16777619u;
    return h;
}

static int32_t node_new(struct imap_thread *t, int32_t msg)
{
    if (t->n == t->cap) {
        size_t ncap = t->cap ? t->cap * 2 : 64;
        struct node *p;

        if (ncap > INT32_MAX || (p = realloc(t->nodes, ncap * sizeof *p)) == NULL)
            return -1;
        t->nodes = p;
        t->cap = ncap;
    }
    t->nodes[t->n] = (struct node){NULL, 0, -1, -1, -1, msg};
    return (int32_t)t->n++;
}

static int table_grow(struct imap_thread *t)
{
    size_t ncap = t->tcap ? t->tcap * 2 : 256;
    int32_t *tab = malloc(ncap * sizeof *tab);

    if (tab == NULL)
        return -1;
    for (size_t i = 0; i < ncap; i++)
        tab[i] = -1;
    for (size_t i = 0; i < t->tcap; i++) {
        if (t->table[i] < 0)
            continue;
        size_t k = t->nodes[t->table[i]].hash & (ncap - 1);
        while (tab[k] >= 0)
            k = (k + 1) & (ncap - 1);
        tab[k] = t->table[i];
    }
    free(t->table);
    t->table = tab;
    t->tcap = ncap;
    return 0;
}

/* The node of id, made (a dummy) when create and there is none.  -1 when
 * absent (!create) or out of memory. */
static int32_t id_node(struct imap_thread *t, const char *id, size_t len, int create)
{
    uint32_t h = fnv(id, len);
    size_t k;
    int32_t ni;

    if (t->tcap) {
        for (k = h & (t->tcap - 1); t->table[k] >= 0; k = (k + 1) & (t->tcap - 1)) {
            const struct node *nd = &t->nodes[t->table[k]];
            if (nd->hash == h && strlen(nd->id) == len && memcmp(nd->id, id, len) == 0)
                return t->table[k];
        }
    }
    if (!create)
        return -1;
    if ((t->nids + 1) * 2 > t->tcap && table_grow(t) < 0)
        return -1;
    if ((ni = node_new(t, -1)) < 0)
        return -1;
    if ((t->nodes[ni].id = malloc(len + 1)) == NULL)
        return -1;
    memcpy(t->nodes[ni].id, id, len);
    t->nodes[ni].id[len] = '\0';
    t->nodes[ni].hash = h;
    for (k = h & (t->tcap - 1); t->table[k] >= 0; k = (k + 1) & (t->tcap - 1))
        ;
    t->table[k] = ni;
    t->nids++;
    return ni;
}

/* --- links ---------------------------------------------------------------- */

static void link_child(struct imap_thread *t, int32_t parent, int32_t child)
{
    t->nodes[child].parent = parent;
    t->nodes[child].next = t->nodes[parent].child;
    t->nodes[parent].child = child;
}

static void unlink_child(struct imap_thread *t, int32_t child)
{
    int32_t p = t->nodes[child].parent, *pp;

    if (p < 0)
        return;
    for (pp = &t->nodes[p].child; *pp != child; pp = &t->nodes[*pp].next)
        ;
    *pp = t->nodes[child].next;
    t->nodes[child].parent = t->nodes[child].next = -1;
}

/* Is a the same as b or below it? */
static int below(const struct imap_thread *t, int32_t a, int32_t b)
{
    if (a != b && t->nodes[b].child < 0)
        return 0;
    for (; a >= 0; a = t->nodes[a].parent)
        if (a == b)
            return 1;
    return 0;
}

/* --- adding messages (REFERENCES step 1) -------------------------------------- */

static size_t count_ids(const char *s, size_t len, struct mime_buf *id)
{
    size_t pos = 0, n = 0;

    while (imap_msgid_next(s, len, &pos, id) == 1)
        if (id->len <= MSGID_MAX)
            n++;
    return n;
}

static int add_references(struct imap_thread *t, int32_t self, const char *refs, size_t refs_len,
                          const char *irt, size_t irt_len)
{
    struct mime_buf id;
    size_t pos = 0, n, skip, k = 0;
    int32_t prev = -1;
    int rc = 0;

    mime_buf_init(&id, 64 * 1024);
    n = count_ids(refs, refs_len, &id);
    if (n == 0) { /* no valid References: the first id of In-Reply-To */
        refs = irt;
        refs_len = irt_len;
        n = count_ids(refs, refs_len, &id) ? 1 : 0;
    }
    skip = n > IMAP_THREAD_REFS_MAX ? n - IMAP_THREAD_REFS_MAX : 0;
    while (k < n && imap_msgid_next(refs, refs_len, &pos, &id) == 1) {
        int32_t cur;

        if (id.len > MSGID_MAX)
            continue;
        if (k++ < skip)
            continue;
        if ((cur = id_node(t, id.p, id.len, 1)) < 0) {
            rc = -1;
            break;
        }
        /* (1)(A): link the references in a chain, never over an existing
         * parent, never into a loop. */
        if (prev >= 0 && t->nodes[cur].parent < 0 && !below(t, prev, cur))
            link_child(t, prev, cur);
        prev = cur;
    }
    /* (1)(B): the message goes under its last reference, whatever parent
     * an earlier message's References gave it (or none, without any). */
    if (rc == 0) {
        unlink_child(t, self);
        if (prev >= 0 && !below(t, prev, self))
            link_child(t, prev, self);
    }
    mime_buf_free(&id);
    return rc;
}

int imap_thread_add(struct imap_thread *t, uint32_t id, int64_t date, const char *subject,
                    size_t subject_len, const char *msgid, size_t msgid_len, const char *references,
                    size_t references_len, const char *in_reply_to, size_t in_reply_to_len)
{
    struct mime_buf b;
    struct tmsg *m;
    int32_t self = -1;
    int32_t mi;

    if (t->nmsgs == t->msgcap) {
        size_t ncap = t->msgcap ? t->msgcap * 2 : 64;
        struct tmsg *p;

        if (ncap > INT32_MAX || (p = realloc(t->msgs, ncap * sizeof *p)) == NULL)
            return -1;
        t->msgs = p;
        t->msgcap = ncap;
    }
    mi = (int32_t)t->nmsgs;
    m = &t->msgs[mi];
    *m = (struct tmsg){id, date, NULL, 0};
    mime_buf_init(&b, 64 * 1024);
    if (imap_base_subject(subject, subject_len, &b, &m->reply) < 0) {
        mime_buf_free(&b);
        return -1;
    }
    if (b.len > IMAP_SORT_KEY_MAX)
        b.p[b.len = IMAP_SORT_KEY_MAX] = '\0';
    m->subject = b.p; /* the buffer is the message's now */
    t->nmsgs++;
    if (t->alg == IMAP_THREAD_REFERENCES) {
        size_t pos = 0;

        /* (1): the message's own id; none, or one seen already: unique. */
        mime_buf_init(&b, 64 * 1024);
        if (imap_msgid_next(msgid, msgid_len, &pos, &b) == 1 && b.len <= MSGID_MAX &&
            (self = id_node(t, b.p, b.len, 1)) >= 0 && t->nodes[self].msg >= 0)
            self = -1;
        mime_buf_free(&b);
    }
    if (self < 0 && (self = node_new(t, -1)) < 0)
        return -1;
    t->nodes[self].msg = mi;
    if (t->alg == IMAP_THREAD_REFERENCES)
        return add_references(t, self, references, references_len, in_reply_to, in_reply_to_len);
    return 0;
}

/* --- steps 2-6 -------------------------------------------------------------------- */

/* The message a node sorts by: itself, or a dummy's first child. */
static int32_t sort_msg(const struct imap_thread *t, int32_t ni)
{
    while (ni >= 0 && t->nodes[ni].msg < 0)
        ni = t->nodes[ni].child;
    return ni >= 0 ? t->nodes[ni].msg : -1;
}

struct sort_ent {
    int32_t node;
    int64_t date;
    int32_t msg;
};

static int by_date(const void *a, const void *b)
{
    const struct sort_ent *x = a, *y = b;

    if (x->date != y->date)
        return x->date < y->date ? -1 : 1;
    return x->msg < y->msg ? -1 : x->msg > y->msg;
}

/* Sort ni's children by sent date; tmp holds at least as many entries. */
static void sort_children(struct imap_thread *t, int32_t ni, struct sort_ent *tmp)
{
    size_t n = 0;

    for (int32_t c = t->nodes[ni].child; c >= 0; c = t->nodes[c].next) {
        int32_t m = sort_msg(t, c);
        tmp[n++] = (struct sort_ent){c, m >= 0 ? t->msgs[m].date : 0, m};
    }
    if (n < 2)
        return;
    qsort(tmp, n, sizeof *tmp, by_date);
    t->nodes[ni].child = tmp[0].node;
    for (size_t i = 0; i < n; i++)
        t->nodes[tmp[i].node].next = i + 1 < n ? tmp[i + 1].node : -1;
}

/* Every sibling set, the root's last (its dummies sort by their children). */
static void sort_all(struct imap_thread *t, int32_t root, struct sort_ent *tmp)
{
    for (size_t i = 0; i < t->n; i++)
        if ((int32_t)i != root && t->nodes[i].child >= 0)
            sort_children(t, (int32_t)i, tmp);
    sort_children(t, root, tmp);
}

static size_t nchildren(const struct imap_thread *t, int32_t ni)
{
    size_t n = 0;

    for (int32_t c = t->nodes[ni].child; c >= 0 && n < 2; c = t->nodes[c].next)
        n++;
    return n;
}

/* (3): replace dummy d in its parent's children by its own children. */
static void splice(struct imap_thread *t, int32_t d)
{
    int32_t p = t->nodes[d].parent, *pp, last = -1;

    for (int32_t c = t->nodes[d].child; c >= 0; c = t->nodes[c].next) {
        t->nodes[c].parent = p;
        last = c;
    }
    for (pp = &t->nodes[p].child; *pp != d; pp = &t->nodes[*pp].next)
        ;
    if (last >= 0) {
        t->nodes[last].next = t->nodes[d].next;
        *pp = t->nodes[d].child;
    } else {
        *pp = t->nodes[d].next;
    }
    t->nodes[d].parent = t->nodes[d].next = t->nodes[d].child = -1;
}

/* (3): prune dummies, bottom-up (post-order over the whole tree). */
static int prune(struct imap_thread *t, int32_t root)
{
    int32_t *order = malloc(t->n * sizeof *order), cur = root;
    size_t k = 0;

    if (order == NULL)
        return -1;
    while (t->nodes[cur].child >= 0)
        cur = t->nodes[cur].child;
    for (;;) {
        order[k++] = cur;
        if (cur == root)
            break;
        if (t->nodes[cur].next >= 0) {
            cur = t->nodes[cur].next;
            while (t->nodes[cur].child >= 0)
                cur = t->nodes[cur].child;
        } else {
            cur = t->nodes[cur].parent;
        }
    }
    for (size_t i = 0; i + 1 < k; i++) {
        int32_t d = order[i];

        if (t->nodes[d].msg >= 0)
            continue;
        /* Children go up a level, but not to the top unless there is one. */
        if (t->nodes[d].child < 0 || t->nodes[d].parent != root || nchildren(t, d) == 1)
            splice(t, d);
    }
    free(order);
    return 0;
}

static const char *thread_subject(const struct imap_thread *t, int32_t ni)
{
    int32_t m = t->nodes[ni].msg >= 0 ? t->nodes[ni].msg : t->nodes[t->nodes[ni].child].msg;

    return m >= 0 ? t->msgs[m].subject : "";
}

/* (5): threads at the top with the same base subject come together.  The
 * subject table keeps each entry's subject as it was when entered: merging
 * may change which child comes first under a dummy. */
static int merge_subjects(struct imap_thread *t, int32_t root)
{
    size_t n = 0, cap = 16, i, k;
    int32_t *roots, *tab, c;
    const char **tsubj;
    int rc = -1;

    for (c = t->nodes[root].child; c >= 0; c = t->nodes[c].next)
        n++;
    while (cap < n * 2)
        cap *= 2;
    roots = malloc((n ? n : 1) * sizeof *roots);
    tab = malloc(cap * sizeof *tab);
    tsubj = malloc(cap * sizeof *tsubj);
    if (roots == NULL || tab == NULL || tsubj == NULL)
        goto out;
    for (i = 0; i < cap; i++)
        tab[i] = -1;
    n = 0;
    for (c = t->nodes[root].child; c >= 0; c = t->nodes[c].next)
        roots[n++] = c;
    /* (B) one message per subject: a dummy wins, then a non-reply. */
    for (i = 0; i < n; i++) {
        const char *s = thread_subject(t, roots[i]);

        if (*s == '\0')
            continue;
        for (k = fnv(s, strlen(s)) & (cap - 1); tab[k] >= 0; k = (k + 1) & (cap - 1))
            if (strcmp(tsubj[k], s) == 0)
                break;
        if (tab[k] < 0) {
            tab[k] = roots[i];
            tsubj[k] = s;
        } else {
            const struct node *old = &t->nodes[tab[k]], *cur = &t->nodes[roots[i]];
            if (old->msg >= 0 &&
                (cur->msg < 0 || (t->msgs[old->msg].reply && !t->msgs[cur->msg].reply)))
                tab[k] = roots[i];
        }
    }
    /* (C) merge each thread with the subject's one. */
    for (i = 0; i < n; i++) {
        int32_t cur = roots[i], old;
        const char *s;

        if (t->nodes[cur].parent != root)
            continue; /* moved under a new dummy already */
        s = thread_subject(t, cur);
        if (*s == '\0')
            continue;
        for (k = fnv(s, strlen(s)) & (cap - 1); tab[k] >= 0 && strcmp(tsubj[k], s) != 0;
             k = (k + 1) & (cap - 1))
            ;
        old = tab[k];
        if (old < 0 || old == cur)
            continue;
        if (t->nodes[old].msg < 0 && t->nodes[cur].msg < 0) {
            while ((c = t->nodes[cur].child) >= 0) {
                unlink_child(t, c);
                link_child(t, old, c);
            }
            unlink_child(t, cur);
        } else if (t->nodes[old].msg < 0 ||
                   (t->msgs[t->nodes[cur].msg].reply && !t->msgs[t->nodes[old].msg].reply)) {
            unlink_child(t, cur);
            link_child(t, old, cur);
        } else {
            int32_t d = node_new(t, -1);

            if (d < 0)
                goto out;
            unlink_child(t, cur);
            unlink_child(t, old);
            link_child(t, root, d);
            link_child(t, d, old);
            link_child(t, d, cur);
            tab[k] = d;
        }
    }
    rc = 0;
out:
    free(roots);
    free(tab);
    free(tsubj);
    return rc;
}

/* ORDEREDSUBJECT: by base subject, then date; the first of each subject is
 * the root of its thread, the others its children. */
struct subj_ent {
    const struct tmsg *m;
    int32_t msg;
};

static int by_subject(const void *a, const void *b)
{
    const struct subj_ent *x = a, *y = b;
    int c = strcmp(x->m->subject, y->m->subject);

    if (c)
        return c;
    if (x->m->date != y->m->date)
        return x->m->date < y->m->date ? -1 : 1;
    return x->msg < y->msg ? -1 : x->msg > y->msg;
}

static int ordered_subject(struct imap_thread *t, int32_t root)
{
    struct subj_ent *e = malloc((t->nmsgs ? t->nmsgs : 1) * sizeof *e);
    int32_t head = -1;

    if (e == NULL)
        return -1;
    /* Nodes 0..nmsgs-1 are the messages, in order (no dummies here). */
    for (size_t i = 0; i < t->nmsgs; i++)
        e[i] = (struct subj_ent){&t->msgs[i], (int32_t)i};
    qsort(e, t->nmsgs, sizeof *e, by_subject);
    for (size_t i = 0; i < t->nmsgs; i++) {
        if (i == 0 || strcmp(e[i].m->subject, e[i - 1].m->subject) != 0) {
            head = e[i].msg;
            link_child(t, root, head);
        } else {
            link_child(t, head, e[i].msg);
        }
    }
    free(e);
    return 0;
}

/* --- output --------------------------------------------------------------------- */

static int emit(const struct imap_thread *t, int32_t top, int32_t *stack, struct mime_buf *out)
{
    size_t depth = 0;
    int32_t cur = top;
    int first = 1;

    mime_buf_addc(out, '(');
    stack[depth++] = top;
    for (;;) {
        for (;;) { /* a chain of only children: "1 2 3" */
            if (t->nodes[cur].msg >= 0) {
                if (!first)
                    mime_buf_addc(out, ' ');
                mime_buf_addu(out, t->msgs[t->nodes[cur].msg].id);
                first = 0;
            }
            if (nchildren(t, cur) != 1)
                break;
            cur = t->nodes[cur].child;
        }
        if (t->nodes[cur].child >= 0) { /* two or more: "(...)(...)" */
            if (!first)
                mime_buf_addc(out, ' ');
            cur = t->nodes[cur].child;
            mime_buf_addc(out, '(');
            stack[depth++] = cur;
            first = 1;
            continue;
        }
        for (;;) { /* a leaf: close lists until a sibling is next */
            int32_t head = stack[--depth];

            mime_buf_addc(out, ')');
            if (depth == 0)
                return out->failed ? -1 : 0;
            if (t->nodes[head].next >= 0) {
                cur = t->nodes[head].next;
                mime_buf_addc(out, '(');
                stack[depth++] = cur;
                first = 1;
                break;
            }
        }
    }
}

int imap_thread_result(struct imap_thread *t, struct mime_buf *out)
{
    struct sort_ent *tmp = NULL;
    int32_t *stack = NULL;
    int32_t root;
    int rc = -1;

    if ((root = node_new(t, -1)) < 0)
        return -1;
    if (t->alg == IMAP_THREAD_ORDEREDSUBJECT) {
        if (ordered_subject(t, root) < 0)
            return -1;
    } else {
        /* (2) the messages without parents are the threads so far. */
        for (int32_t i = 0; i < root; i++)
            if (t->nodes[i].parent < 0)
                link_child(t, root, i);
        if (prune(t, root) < 0)
            return -1;
    }
    /* One more node may come (a dummy of step 5), hence n + 1. */
    if ((tmp = malloc((t->n + 1) * sizeof *tmp)) == NULL ||
        (stack = malloc((t->n + 1) * sizeof *stack)) == NULL)
        goto out;
    if (t->alg == IMAP_THREAD_REFERENCES) {
        /* (4) the threads by date, so that (5) meets them in that order. */
        for (int32_t c = t->nodes[root].child; c >= 0; c = t->nodes[c].next)
            if (t->nodes[c].msg < 0)
                sort_children(t, c, tmp);
        sort_children(t, root, tmp);
        if (merge_subjects(t, root) < 0)
            goto out;
        /* merge_subjects() may have added dummies: make room for them. */
        free(tmp);
        free(stack);
        stack = NULL;
        if ((tmp = malloc(t->n * sizeof *tmp)) == NULL ||
            (stack = malloc(t->n * sizeof *stack)) == NULL)
            goto out;
    }
    /* (6) every set of siblings by date. */
    sort_all(t, root, tmp);
    for (int32_t c = t->nodes[root].child; c >= 0; c = t->nodes[c].next)
        if (emit(t, c, stack, out) < 0)
            goto out;
    rc = 0;
out:
    free(tmp);
    free(stack);
    return rc;
}
