/*
 * imap_search.c - SEARCH keys (RFC 3501 6.4.4 and 9 search-key, RFC 9051,
 * RFC 7162 MODSEQ) from the parser's arguments into a tree.  See
 * imap_parse.h.
 *
 * Recursive descent over the argument array; the recursion is bounded by
 * IMAP_SEARCH_DEPTH (NOT, OR and parentheses each go one level down) and
 * the tree by IMAP_SEARCH_KEYS_MAX nodes, so "NOT NOT NOT ..." or a wide
 * OR tree costs at most those.  On failure everything built so far is
 * freed and the reason is a fixed string for the BAD reply.
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "imap_parse.h"

struct sk_ctx {
    size_t nkeys;
    const char *why;
};

enum sk_arg {
    SK_NONE,
    SK_ASTRING,
    SK_DATE,
    SK_NUMBER,
    SK_SEQSET,
    SK_KEYWORD,
    SK_HEADER,
    SK_KEY,
    SK_2KEYS,
    SK_MODSEQ
};

static const struct {
    const char *name;
    enum imap_search_kind kind;
    enum sk_arg arg;
    unsigned flag;
    const char *header; /* BCC CC FROM SUBJECT TO: HEADER with this name */
} sk_keys[] = {
    {"ALL", IMAP_SK_ALL, SK_NONE, 0, NULL},
    {"ANSWERED", IMAP_SK_FLAG, SK_NONE, IMAP_FLAG_ANSWERED, NULL},
    {"DELETED", IMAP_SK_FLAG, SK_NONE, IMAP_FLAG_DELETED, NULL},
    {"DRAFT", IMAP_SK_FLAG, SK_NONE, IMAP_FLAG_DRAFT, NULL},
    {"FLAGGED", IMAP_SK_FLAG, SK_NONE, IMAP_FLAG_FLAGGED, NULL},
    {"SEEN", IMAP_SK_FLAG, SK_NONE, IMAP_FLAG_SEEN, NULL},
    {"RECENT", IMAP_SK_FLAG, SK_NONE, IMAP_FLAG_RECENT, NULL},
    {"UNANSWERED", IMAP_SK_UNFLAG, SK_NONE, IMAP_FLAG_ANSWERED, NULL},
    {"UNDELETED", IMAP_SK_UNFLAG, SK_NONE, IMAP_FLAG_DELETED, NULL},
    {"UNDRAFT", IMAP_SK_UNFLAG, SK_NONE, IMAP_FLAG_DRAFT, NULL},
    {"UNFLAGGED", IMAP_SK_UNFLAG, SK_NONE, IMAP_FLAG_FLAGGED, NULL},
    {"UNSEEN", IMAP_SK_UNFLAG, SK_NONE, IMAP_FLAG_SEEN, NULL},
    {"OLD", IMAP_SK_UNFLAG, SK_NONE, IMAP_FLAG_RECENT, NULL},
    {"NEW", IMAP_SK_AND, SK_NONE, 0, NULL}, /* RECENT UNSEEN, built below */
    {"KEYWORD", IMAP_SK_KEYWORD, SK_KEYWORD, 0, NULL},
    {"UNKEYWORD", IMAP_SK_UNKEYWORD, SK_KEYWORD, 0, NULL},
    {"BEFORE", IMAP_SK_BEFORE, SK_DATE, 0, NULL},
    {"ON", IMAP_SK_ON, SK_DATE, 0, NULL},
    {"SINCE", IMAP_SK_SINCE, SK_DATE, 0, NULL},
    {"SENTBEFORE", IMAP_SK_SENTBEFORE, SK_DATE, 0, NULL},
    {"SENTON", IMAP_SK_SENTON, SK_DATE, 0, NULL},
    {"SENTSINCE", IMAP_SK_SENTSINCE, SK_DATE, 0, NULL},
    {"LARGER", IMAP_SK_LARGER, SK_NUMBER, 0, NULL},
    {"SMALLER", IMAP_SK_SMALLER, SK_NUMBER, 0, NULL},
    {"BCC", IMAP_SK_HEADER, SK_ASTRING, 0, "BCC"},
    {"CC", IMAP_SK_HEADER, SK_ASTRING, 0, "CC"},
    {"FROM", IMAP_SK_HEADER, SK_ASTRING, 0, "FROM"},
    {"SUBJECT", IMAP_SK_HEADER, SK_ASTRING, 0, "SUBJECT"},
    {"TO", IMAP_SK_HEADER, SK_ASTRING, 0, "TO"},
    {"HEADER", IMAP_SK_HEADER, SK_HEADER, 0, NULL},
    {"BODY", IMAP_SK_BODY, SK_ASTRING, 0, NULL},
    {"TEXT", IMAP_SK_TEXT, SK_ASTRING, 0, NULL},
    {"UID", IMAP_SK_UID, SK_SEQSET, 0, NULL},
    {"NOT", IMAP_SK_NOT, SK_KEY, 0, NULL},
    {"OR", IMAP_SK_OR, SK_2KEYS, 0, NULL},
    {"MODSEQ", IMAP_SK_MODSEQ, SK_MODSEQ, 0, NULL},
};

static int sk_key(struct sk_ctx *c, const struct imap_arg *args, size_t nargs, size_t *i,
                  unsigned depth, struct imap_search_key *k);

static void sk_clear(struct imap_search_key *k)
{
    for (size_t j = 0; j < k->nsub; j++)
        sk_clear(&k->sub[j]);
    free(k->sub);
    imap_seqset_free(&k->set);
    free(k->name);
    free(k->value);
    memset(k, 0, sizeof *k);
}

void imap_search_free(struct imap_search_key *k)
{
    if (k == NULL)
        return;
    sk_clear(k);
    free(k);
}

static int sk_fail(struct sk_ctx *c, const char *why)
{
    if (c->why == NULL)
        c->why = why;
    return -1;
}

static char *sk_dup(const char *s, size_t len, int upper)
{
    char *d = malloc(len + 1);

    if (d == NULL)
        return NULL;
    for (size_t j = 0; j < len; j++)
        d[j] = upper && s[j] >= 'a' && s[j] <= 'z' ? (char)(s[j] - 'a' + 'A') : s[j];
    d[len] = '\0';
    return d;
}

/* astring: atom (NIL too), quoted string or literal. */
static int sk_astring(const struct imap_arg *a)
{
    return a->type == IMAP_ARG_ATOM || a->type == IMAP_ARG_NIL || a->type == IMAP_ARG_STRING ||
           a->type == IMAP_ARG_LITERAL;
}

static int sk_atom_char(unsigned char ch)
{
    return ch > 0x20 && ch < 0x7f && strchr("(){%*\"\\]", ch) == NULL;
}

/* 1*DIGIT at most 2^63-1 (number64, mod-sequence-valzer). */
static int sk_number(const struct imap_arg *a, uint64_t *out)
{
    uint64_t v = 0;

    if (a->type != IMAP_ARG_ATOM || a->len == 0)
        return -1;
    for (size_t j = 0; j < a->len; j++) {
        unsigned d = (unsigned)(a->s[j] - '0');
        if (a->s[j] < '0' || a->s[j] > '9' || v > ((uint64_t)INT64_MAX - d) / 10)
            return -1;
        v = v * 10 + d;
    }
    *out = v;
    return 0;
}

/* MODSEQ [entry-name SP entry-type-req] SP mod-sequence-valzer. */
static int sk_modseq(struct sk_ctx *c, const struct imap_arg *args, size_t nargs, size_t *i,
                     struct imap_search_key *k)
{
    const struct imap_arg *a = &args[*i];

    if (a->type == IMAP_ARG_STRING) {
        const struct imap_arg *t;

        if (a->len <= 7 || strncasecmp(a->s, "/flags/", 7) != 0)
            return sk_fail(c, "invalid MODSEQ entry name");
        if (++*i == nargs)
            return sk_fail(c, "missing MODSEQ entry type");
        t = &args[*i];
        if (t->type != IMAP_ARG_ATOM ||
            (strcasecmp(t->s, "priv") != 0 && strcasecmp(t->s, "shared") != 0 &&
             strcasecmp(t->s, "all") != 0))
            return sk_fail(c, "invalid MODSEQ entry type");
        if (++*i == nargs)
            return sk_fail(c, "missing MODSEQ value");
        a = &args[*i];
    }
    if (sk_number(a, &k->number) < 0)
        return sk_fail(c, "invalid MODSEQ value");
    (*i)++;
    return 0;
}

/* NEW: RECENT and UNSEEN. */
static int sk_new_key(struct sk_ctx *c, struct imap_search_key *k)
{
    if ((k->sub = calloc(2, sizeof *k->sub)) == NULL)
        return sk_fail(c, "out of memory");
    k->nsub = 2;
    k->sub[0].kind = IMAP_SK_FLAG;
    k->sub[0].flag = IMAP_FLAG_RECENT;
    k->sub[1].kind = IMAP_SK_UNFLAG;
    k->sub[1].flag = IMAP_FLAG_SEEN;
    c->nkeys += 2;
    return c->nkeys > IMAP_SEARCH_KEYS_MAX ? sk_fail(c, "too many search keys") : 0;
}

/* The key's argument(s) after its name, at args[*i]. */
static int sk_key_args(struct sk_ctx *c, const struct imap_arg *args, size_t nargs, size_t *i,
                       unsigned depth, size_t t, struct imap_search_key *k)
{
    const struct imap_arg *a;

    if (sk_keys[t].arg == SK_NONE)
        return sk_keys[t].kind == IMAP_SK_AND ? sk_new_key(c, k) : 0;
    if (*i == nargs)
        return sk_fail(c, "missing search key argument");
    a = &args[*i];
    switch (sk_keys[t].arg) {
    case SK_ASTRING:
        if (!sk_astring(a))
            return sk_fail(c, "search key needs a string");
        if (sk_keys[t].header &&
            (k->name = sk_dup(sk_keys[t].header, strlen(sk_keys[t].header), 0)) == NULL)
            return sk_fail(c, "out of memory");
        break;
    case SK_HEADER:
        if (!sk_astring(a) || a->len == 0)
            return sk_fail(c, "HEADER needs a field name");
        for (size_t j = 0; j < a->len; j++)
            if ((unsigned char)a->s[j] <= 0x20 || (unsigned char)a->s[j] >= 0x7f || a->s[j] == ':')
                return sk_fail(c, "invalid header field name");
        if ((k->name = sk_dup(a->s, a->len, 1)) == NULL)
            return sk_fail(c, "out of memory");
        if (++*i == nargs || !sk_astring(&args[*i]))
            return sk_fail(c, "HEADER needs a string");
        a = &args[*i];
        break;
    case SK_KEYWORD:
        if (a->type != IMAP_ARG_ATOM && a->type != IMAP_ARG_NIL)
            return sk_fail(c, "invalid keyword");
        for (size_t j = 0; j < a->len; j++)
            if (!sk_atom_char((unsigned char)a->s[j]))
                return sk_fail(c, "invalid keyword");
        if ((k->name = sk_dup(a->s, a->len, 0)) == NULL)
            return sk_fail(c, "out of memory");
        (*i)++;
        return 0;
    case SK_DATE:
        if ((a->type != IMAP_ARG_ATOM && a->type != IMAP_ARG_STRING) ||
            imap_date_parse(a->s, a->len, &k->date) < 0)
            return sk_fail(c, "invalid date");
        (*i)++;
        return 0;
    case SK_NUMBER:
        if (sk_number(a, &k->number) < 0)
            return sk_fail(c, "invalid number");
        (*i)++;
        return 0;
    case SK_SEQSET:
        if (a->type != IMAP_ARG_ATOM || imap_seqset_parse(a->s, a->len, &k->set) < 0)
            return sk_fail(c, "invalid sequence set");
        (*i)++;
        return 0;
    case SK_MODSEQ:
        return sk_modseq(c, args, nargs, i, k);
    case SK_KEY:
    case SK_2KEYS:
        if ((k->sub = calloc(sk_keys[t].arg == SK_2KEYS ? 2 : 1, sizeof *k->sub)) == NULL)
            return sk_fail(c, "out of memory");
        if (sk_key(c, args, nargs, i, depth + 1, &k->sub[k->nsub++]) < 0)
            return -1;
        if (sk_keys[t].arg == SK_2KEYS &&
            sk_key(c, args, nargs, i, depth + 1, &k->sub[k->nsub++]) < 0)
            return -1;
        return 0;
    default:
        return sk_fail(c, "invalid search key");
    }
    /* The string of SK_ASTRING and SK_HEADER. */
    if ((k->value = sk_dup(a->s, a->len, 0)) == NULL)
        return sk_fail(c, "out of memory");
    k->value_len = a->len;
    (*i)++;
    return 0;
}

/* Every key of args into k as an AND (the top level or a parenthesised
 * list); an empty one is an error. */
static int sk_and(struct sk_ctx *c, const struct imap_arg *args, size_t nargs, unsigned depth,
                  struct imap_search_key *k)
{
    size_t i = 0, cap = 0;

    k->kind = IMAP_SK_AND;
    if (nargs == 0)
        return sk_fail(c, "missing search key");
    while (i < nargs) {
        if (k->nsub == cap) {
            size_t ncap = cap ? cap * 2 : 4;
            struct imap_search_key *sub;

            if (ncap > nargs)
                ncap = nargs;
            if ((sub = realloc(k->sub, ncap * sizeof *sub)) == NULL)
                return sk_fail(c, "out of memory");
            k->sub = sub;
            cap = ncap;
        }
        memset(&k->sub[k->nsub], 0, sizeof k->sub[0]);
        k->nsub++;
        if (sk_key(c, args, nargs, &i, depth, &k->sub[k->nsub - 1]) < 0)
            return -1;
    }
    return 0;
}

static int sk_key(struct sk_ctx *c, const struct imap_arg *args, size_t nargs, size_t *i,
                  unsigned depth, struct imap_search_key *k)
{
    const struct imap_arg *a;

    if (depth > IMAP_SEARCH_DEPTH)
        return sk_fail(c, "search keys nested too deeply");
    if (++c->nkeys > IMAP_SEARCH_KEYS_MAX)
        return sk_fail(c, "too many search keys");
    if (*i == nargs)
        return sk_fail(c, "missing search key");
    a = &args[(*i)++];
    if (a->type == IMAP_ARG_LIST)
        return sk_and(c, a->list, a->nlist, depth + 1, k);
    if (a->type != IMAP_ARG_ATOM || a->len == 0)
        return sk_fail(c, "invalid search key");
    if ((a->s[0] >= '0' && a->s[0] <= '9') || a->s[0] == '*' || a->s[0] == '$') {
        k->kind = IMAP_SK_SEQSET;
        if (imap_seqset_parse(a->s, a->len, &k->set) < 0)
            return sk_fail(c, "invalid sequence set");
        return 0;
    }
    for (size_t t = 0; t < sizeof sk_keys / sizeof sk_keys[0]; t++) {
        if (strlen(sk_keys[t].name) == a->len && strncasecmp(sk_keys[t].name, a->s, a->len) == 0) {
            k->kind = sk_keys[t].kind;
            k->flag = sk_keys[t].flag;
            return sk_key_args(c, args, nargs, i, depth, t, k);
        }
    }
    return sk_fail(c, "unknown search key");
}

struct imap_search_key *imap_search_parse(const struct imap_arg *args, size_t nargs,
                                          const char **why)
{
    struct sk_ctx c = {0};
    struct imap_search_key *root = calloc(1, sizeof *root);

    if (root == NULL) {
        *why = "out of memory";
        return NULL;
    }
    c.nkeys = 1;
    if (sk_and(&c, args, nargs, 0, root) < 0) {
        imap_search_free(root);
        *why = c.why;
        return NULL;
    }
    *why = NULL;
    return root;
}
