/*
 * fuzz_imap_command.c - libFuzzer target for imapd's command parser and the
 * typed parsers built on it (imapd/imap_parse.h).
 *
 * The first byte chooses the parser's limits (default, tiny, small, tiny
 * literals), how literal bytes are fed (all at once or in pieces of 1-64
 * bytes) and when the session takes a literal over itself: when it does not
 * fit, for APPEND's message, always, or never (then the parser must swallow
 * a literal that does not fit).  The rest is a client's stream: lines up to
 * LF, literal bytes when the parser asks, commands one after the other as
 * a session would run them.  On DONE every argument goes through
 * imap_seqset_parse, imap_fetch_atts_parse, imap_flags_parse, the date
 * parsers, imap_mailbox_name_valid, the mailbox name conversions (modified
 * UTF-7 <-> UTF-8), imap_quote and RFC 7162's parameter
 * parsers (imap_modifiers.h), and the arguments
 * through imap_search_parse.  Beyond the sanitizers' findings the contracts
 * are checked: the tree keeps its bounds, strings are terminated copies,
 * atoms hold no SP outside brackets or 8-bit bytes, quoted strings are
 * UTF-8, sets are normalised, name conversions and imap_quote round-trip.
 *
 * imapd's parser lives in imapd/ and the fuzz build links libmailcore
 * only, so the parser's sources are compiled in here.
 *
 *	cmake -DMAILCORE_FUZZ=ON -DMAILCORE_ASAN=OFF -DCMAKE_C_COMPILER=clang -S . -B build-fuzz
 *	build-fuzz/fuzz/fuzz_imap_command t/fuzz/corpus/imap_command
 */
#include "../../imapd/imap_parse.c"
#include "../../imapd/imap_seqset.c"
#include "../../imapd/imap_fetchatt.c"
#include "../../imapd/imap_search.c"
#include "../../imapd/imap_util.c"
#include "../../imapd/imap_modifiers.c"

#include <stdint.h>
#include <stdlib.h>
#include <string.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static const struct imap_limits fz_limits[4] = {
    {64 * 1024, 64 * 1024, 10000, 32},
    {256, 16, 8, 2},
    {4096, 1024, 100, 8},
    {64 * 1024, 4, 10000, 32},
};

enum { FZ_EXT_NOFIT, FZ_EXT_APPEND, FZ_EXT_ALWAYS, FZ_EXT_NEVER };

static size_t fz_nargs, fz_bytes;

/* The tree's contract: bounds, terminated copies, clean atoms. */
static void fz_check_args(const struct imap_arg *a, size_t n, unsigned depth,
                          const struct imap_limits *lim)
{
    if (depth > lim->depth_max)
        abort();
    fz_nargs += n;
    if (fz_nargs > lim->args_max)
        abort();
    for (size_t i = 0; i < n; i++) {
        switch (a[i].type) {
        case IMAP_ARG_ATOM: {
            int brackets = 0;

            if (a[i].len == 0)
                abort();
            for (size_t k = 0; k < a[i].len; k++) {
                unsigned char ch = (unsigned char)a[i].s[k];
                if (ch < 0x20 || ch >= 0x7f)
                    abort();
                if (ch == '[')
                    brackets = 1;
                if (!brackets && (ch == ' ' || ch == '(' || ch == ')' || ch == '{' || ch == '"'))
                    abort();
            }
        }
            /* fall through */
        case IMAP_ARG_NIL:
        case IMAP_ARG_STRING:
        case IMAP_ARG_LITERAL:
            if (a[i].s == NULL || a[i].s[a[i].len] != '\0')
                abort();
            if (a[i].type == IMAP_ARG_STRING &&
                (memchr(a[i].s, '\0', a[i].len) || memchr(a[i].s, '\r', a[i].len) ||
                 memchr(a[i].s, '\n', a[i].len) || imap_utf8_valid(a[i].s, a[i].len) < 0))
                abort();
            if (a[i].type == IMAP_ARG_NIL && (a[i].len != 3 || strncasecmp(a[i].s, "NIL", 3)))
                abort();
            if (a[i].type != IMAP_ARG_NIL)
                fz_bytes += a[i].len;
            break;
        case IMAP_ARG_LITERAL_EXTERNAL:
            break;
        case IMAP_ARG_LIST:
            if (a[i].nlist > 0 && a[i].list == NULL)
                abort();
            fz_check_args(a[i].list, a[i].nlist, depth + 1, lim);
            break;
        default:
            abort();
        }
    }
}

static void fz_seqset(const char *s, size_t len)
{
    struct imap_seqset set;

    if (imap_seqset_parse(s, len, &set) < 0) {
        if (set.r != NULL || set.n != 0 || set.saved)
            abort();
        return;
    }
    if (set.saved != (len == 1 && s[0] == '$') || set.n > IMAP_SEQSET_MAX ||
        (set.n > 0) != (set.r != NULL))
        abort();
    for (size_t i = 0; i < set.n; i++) {
        if (set.r[i].lo == 0 || set.r[i].lo > set.r[i].hi)
            abort();
        if (!imap_seqset_contains(&set, set.r[i].lo, 100) && set.r[i].lo <= 100)
            abort();
    }
    if (imap_seqset_contains(&set, 0, 100))
        abort();
    imap_seqset_free(&set);
}

static void fz_fetch(const struct imap_arg *a)
{
    struct imap_fetch_atts f;
    const char *why = NULL;

    if (imap_fetch_atts_parse(a, &f, &why) < 0) {
        if (why == NULL || f.a != NULL || f.n != 0)
            abort();
        return;
    }
    for (size_t i = 0; i < f.n; i++) {
        const struct imap_fetch_att *t = &f.a[i];

        if (t->name == NULL || t->nparts > IMAP_SECTION_DEPTH ||
            t->nfields > IMAP_HEADER_FIELDS_MAX || (unsigned)t->kind > IMAP_FETCH_MODSEQ)
            abort();
        if (t->kind == IMAP_FETCH_BODY_SECTION && strncmp(t->name, "BODY[", 5) != 0)
            abort(); /* BODY.PEEK is answered as BODY */
        if (t->partial && (t->count == 0 || t->name[strlen(t->name) - 1] != '>'))
            abort(); /* "<offset>" only in the reply */
        if (t->text == IMAP_SECTION_MIME && t->nparts == 0)
            abort();
        for (size_t k = 0; k < t->nfields; k++)
            for (const char *c = t->fields[k]; *c; c++)
                if (*c >= 'a' && *c <= 'z')
                    abort(); /* upper-cased */
    }
    imap_fetch_atts_free(&f);
}

static size_t fz_search_count(const struct imap_search_key *k, unsigned depth)
{
    size_t n = 1;

    if (depth > IMAP_SEARCH_DEPTH + 2)
        abort();
    if ((k->kind == IMAP_SK_HEADER || k->kind == IMAP_SK_BODY || k->kind == IMAP_SK_TEXT) &&
        (k->value == NULL || k->value[k->value_len] != '\0'))
        abort();
    if ((k->kind == IMAP_SK_OR && k->nsub != 2) || (k->kind == IMAP_SK_NOT && k->nsub != 1))
        abort();
    for (size_t i = 0; i < k->nsub; i++)
        n += fz_search_count(&k->sub[i], depth + 1);
    return n;
}

static void fz_search(const struct imap_arg *a, size_t n)
{
    const char *why = NULL;
    struct imap_search_key *k = imap_search_parse(a, n, &why);

    if (k == NULL) {
        if (why == NULL)
            abort();
        return;
    }
    if (k->kind != IMAP_SK_AND || fz_search_count(k, 0) > IMAP_SEARCH_KEYS_MAX)
        abort();
    imap_search_free(k);
}

static void fz_flags(const struct imap_arg *a)
{
    struct imap_flags f;

    if (imap_flags_parse(a, &f) < 0)
        return;
    if (f.nkeywords > IMAP_KEYWORDS_MAX || (f.system & IMAP_FLAG_RECENT) || f.system > 0x1f)
        abort();
    for (size_t i = 0; i < f.nkeywords; i++)
        if (strlen(f.keywords[i]) == 0 || strlen(f.keywords[i]) > IMAP_KEYWORD_LEN)
            abort();
}

/* RFC 7162's parameters: a success is well-formed, a failure has a reason. */
static void fz_modifiers(const struct imap_arg *a)
{
    struct imap_select_params sp;
    struct imap_fetch_mods fm;
    uint64_t since;
    const char *why = NULL;

    if (imap_select_params_parse(a, &sp, &why) == 0) {
        if ((sp.qresync && (sp.uidvalidity == 0 || sp.modseq == 0 || sp.modseq > INT64_MAX)) ||
            (sp.match_seqs.n != 0) != (sp.match_uids.n != 0))
            abort();
        imap_select_params_free(&sp);
    } else if (why == NULL) {
        abort();
    }
    why = NULL;
    if (imap_fetch_mods_parse(a, &fm, &why) == 0 ? fm.changedsince && fm.modseq == 0
                                                 : why == NULL)
        abort();
    why = NULL;
    if (imap_store_mods_parse(a, &since, &why) == 0 ? since > INT64_MAX : why == NULL)
        abort();
}

/* imap_quote: the length is stable, and a quoted string unquotes back. */
static void fz_quote(const char *s, size_t len, int utf8)
{
    size_t need = imap_quote(NULL, 0, s, len, utf8), n = 0;
    char *out = malloc(need ? need : 1);

    if (out == NULL)
        return;
    if (imap_quote(out, need, s, len, utf8) != need)
        abort();
    if (out[0] == '"') {
        for (size_t i = 1; i + 1 < need; i++, n++) {
            if (out[i] == '\\')
                i++;
            if (n >= len || out[i] != s[n])
                abort();
        }
        if (n != len || out[need - 1] != '"')
            abort();
    } else if (need < len || memcmp(out + need - len, s, len) != 0) {
        abort();
    }
    free(out);
}

/* Mailbox names: each conversion that succeeds is undone by the other,
 * and a valid name's UTF-8 form fits IMAP_MAILBOX_UTF8_MAX. */
static void fz_names(const char *s, size_t len)
{
    char a[IMAP_MAILBOX_UTF8_MAX + 1], b[IMAP_MAILBOX_NAME_MAX + 1];

    if (imap_mailbox_name_valid(s, len, 0) == 0 && imap_mutf7_to_utf8(s, len, a, sizeof a) < 0)
        abort();
    if (imap_mutf7_to_utf8(s, len, a, sizeof a) == 0 &&
        (imap_utf8_to_mutf7(a, strlen(a), b, sizeof b) < 0 || strlen(b) != len ||
         memcmp(b, s, len) != 0))
        abort();
    if (imap_utf8_to_mutf7(s, len, b, sizeof b) == 0 &&
        (imap_mutf7_to_utf8(b, strlen(b), a, sizeof a) < 0 || strlen(a) != len ||
         memcmp(a, s, len) != 0))
        abort();
}

static void fz_values(const struct imap_arg *a)
{
    time_t t;

    if (a->type == IMAP_ARG_ATOM)
        fz_seqset(a->s, a->len);
    if (a->type == IMAP_ARG_ATOM || a->type == IMAP_ARG_STRING) {
        (void)imap_date_parse(a->s, a->len, &t);
        (void)imap_datetime_parse(a->s, a->len, &t);
    }
    if (a->type == IMAP_ARG_ATOM || a->type == IMAP_ARG_STRING || a->type == IMAP_ARG_LITERAL) {
        if (imap_mailbox_name_valid(a->s, a->len, 0) == 0 &&
            imap_mailbox_name_valid(a->s, a->len, 1) < 0)
            abort(); /* valid without UTF8=ACCEPT is valid with it */
        fz_names(a->s, a->len);
        fz_quote(a->s, a->len, 0);
        fz_quote(a->s, a->len, 1);
    }
    fz_fetch(a);
    fz_flags(a);
    fz_modifiers(a);
}

static void fz_done(struct imap_parser *p, const struct imap_limits *lim)
{
    size_t n;
    const struct imap_arg *a = imap_parser_args(p, &n);
    const char *name = imap_parser_name(p);

    if (imap_parser_tag(p) == NULL || name == NULL || *name == '\0')
        abort();
    for (const char *c = name; *c; c++)
        if (*c >= 'a' && *c <= 'z')
            abort();
    fz_nargs = fz_bytes = 0;
    fz_check_args(a, n, 0, lim);
    if (fz_bytes > lim->command_max)
        abort();
    for (size_t i = 0; i < n; i++)
        fz_values(&a[i]);
    for (size_t i = 0; i < n && i < 3; i++)
        fz_search(a + i, n - i);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    const char *in = (const char *)data;
    const struct imap_limits *lim;
    struct imap_parser *p;
    size_t i = 1, piece;
    int policy;

    if (size == 0)
        return 0;
    lim = &fz_limits[data[0] & 3];
    piece = (data[0] >> 2) & 7;
    piece = piece ? (size_t)1 << (piece - 1) : SIZE_MAX;
    policy = (data[0] >> 5) & 3;
    if ((p = imap_parser_new(lim)) == NULL)
        return 0;
    while (i < size) {
        const char *lf = memchr(in + i, '\n', size - i);
        size_t n = lf ? (size_t)(lf - (in + i)) + 1 : size - i;
        enum imap_parse_result r = imap_parser_line(p, in + i, n);

        i += n;
        while (r == IMAP_PARSE_LITERAL) {
            uint64_t left = imap_parser_literal_left(p), total = imap_parser_literal_size(p);
            size_t nargs;
            int ext;

            if (left != total)
                abort();
            (void)imap_parser_args(p, &nargs);
            ext = policy == FZ_EXT_ALWAYS ||
                  (policy != FZ_EXT_NEVER && !imap_parser_literal_fits(p)) ||
                  (policy == FZ_EXT_APPEND && strcmp(imap_parser_name(p), "APPEND") == 0 &&
                   imap_parser_depth(p) == 0 && nargs > 0);
            if (ext) {
                imap_parser_literal_external(p);
                if (imap_parser_literal_left(p) != 0)
                    abort();
                i += left < size - i ? (size_t)left : size - i; /* the session's bytes */
                r = IMAP_PARSE_MORE;
                break;
            }
            while (left > 0 && i < size) {
                size_t want = left < size - i ? (size_t)left : size - i;
                size_t got = imap_parser_literal(p, in + i, want < piece ? want : piece);

                if (got == 0 || got > want || got > piece)
                    abort();
                i += got;
                left -= got;
                if (imap_parser_literal_left(p) != left && imap_parser_error(p) == NULL)
                    abort();
            }
            r = imap_parser_error(p) != NULL ? IMAP_PARSE_ERROR : IMAP_PARSE_MORE;
            if (left > 0)
                break; /* the input ends inside the literal */
        }
        if (r == IMAP_PARSE_DONE) {
            fz_done(p, lim);
            imap_parser_reset(p);
        } else if (r == IMAP_PARSE_ERROR) {
            if (imap_parser_error(p) == NULL)
                abort();
            /* A non-synchronizing literal of a failed line is on its way. */
            if (imap_parser_literal_size(p) > 0 && !imap_parser_literal_sync(p)) {
                uint64_t skip = imap_parser_literal_size(p);
                i += skip < size - i ? (size_t)skip : size - i;
            }
            imap_parser_reset(p);
        }
    }
    imap_parser_free(p);
    return 0;
}
