/*
 * imap_parse - the IMAP command parser: a command's bytes into a tree of
 * arguments, then the typed pieces commands need (sequence sets, fetch
 * attributes, search keys, flag lists, dates).
 *
 * Reading a command (RFC 3501 / RFC 9051 + LITERAL+, RFC 7888):
 *	struct imap_parser *p = imap_parser_new(&limits);
 *	for each line the connection delivers (CRLF included):
 *	    r = imap_parser_line(p, line, len);
 *	    IMAP_PARSE_LITERAL: the line ended in {n} or {n+}; p->literal_size
 *	        says n and p->literal_sync whether the client waits for "+ ";
 *	        feed exactly n bytes with imap_parser_literal() (in pieces),
 *	        then the next line continues the command;
 *	    IMAP_PARSE_DONE: imap_parser_command() has tag, name and args;
 *	    IMAP_PARSE_ERROR: imap_parser_error() says why (for "BAD");
 *	        imap_parser_tag() may still give the tag for the reply.
 *	imap_parser_reset(p) before the next command.
 * A literal larger than limits.literal_max is an error before any of it is
 * read -- except when the session takes it over (APPEND's message):
 * imap_parser_literal_external(p) records an IMAP_ARG_LITERAL_EXTERNAL
 * argument of that size, the session consumes the n bytes itself (into the
 * store's temp file), then goes on feeding lines.
 *
 * Bounds (struct imap_limits): bytes per command (lines and literals
 * together), literal size, argument count, list nesting depth.  Every
 * violation is a clean error, never a crash or unbounded memory.
 * Strings are pointer + length (they may hold NUL only in literals).
 */
#ifndef IMAP_PARSE_H
#define IMAP_PARSE_H

#include <stddef.h>
#include <stdint.h>
#include <time.h>

struct imap_limits {
    size_t command_max;     /* bytes of one command, literals included (e.g. 64 KiB) */
    size_t literal_max;     /* largest literal kept in memory (e.g. 64 KiB) */
    size_t args_max;        /* arguments in all lists together (e.g. 10000) */
    unsigned depth_max;     /* list nesting (e.g. 32) */
};

enum imap_arg_type {
    IMAP_ARG_ATOM,              /* includes "BODY[HEADER.FIELDS (A B)]<0.10>" as one atom, see below */
    IMAP_ARG_STRING,            /* quoted string, unescaped */
    IMAP_ARG_LITERAL,           /* {n} literal, in memory */
    IMAP_ARG_LITERAL_EXTERNAL,  /* {n} literal the session consumed itself */
    IMAP_ARG_NIL,
    IMAP_ARG_LIST,              /* ( ... ) */
};

struct imap_arg {
    enum imap_arg_type type;
    const char *s;              /* ATOM, STRING, LITERAL: bytes (NUL-terminated copy) */
    size_t len;                 /* bytes; for LITERAL_EXTERNAL the literal's size */
    struct imap_arg *list;      /* LIST: its elements */
    size_t nlist;
};

enum imap_parse_result {
    IMAP_PARSE_MORE,            /* (internal) */
    IMAP_PARSE_LITERAL,
    IMAP_PARSE_DONE,
    IMAP_PARSE_ERROR,
};

struct imap_parser;

struct imap_parser *imap_parser_new(const struct imap_limits *limits);
void imap_parser_free(struct imap_parser *p);
void imap_parser_reset(struct imap_parser *p);

enum imap_parse_result imap_parser_line(struct imap_parser *p, const char *line, size_t len);
/* While a literal is pending: its size and whether it is synchronizing. */
uint64_t imap_parser_literal_size(const struct imap_parser *p);
int imap_parser_literal_sync(const struct imap_parser *p);
/* Feed literal bytes; returns how many were taken (at most what remains). */
size_t imap_parser_literal(struct imap_parser *p, const char *data, size_t len);
/* The session consumes the pending literal itself. */
void imap_parser_literal_external(struct imap_parser *p);
/* How many bytes of the pending literal are still expected. */
uint64_t imap_parser_literal_left(const struct imap_parser *p);

/* After DONE: tag and command name (upper-cased copy), arguments after them.
 * "UID FETCH" comes as name "UID" with args[0] = FETCH...: the session
 * handles the UID prefix. */
const char *imap_parser_tag(const struct imap_parser *p);    /* NULL if none parsed */
const char *imap_parser_name(const struct imap_parser *p);
const struct imap_arg *imap_parser_args(const struct imap_parser *p, size_t *nargs);
const char *imap_parser_error(const struct imap_parser *p);

/*
 * Atoms: IMAP's fetch attributes contain brackets and spaces
 * ("BODY[HEADER.FIELDS (DATE FROM)]<0.2048>"): when an atom contains '[',
 * the parser takes everything up to the matching ']' (and an optional
 * "<a.b>" after it) as part of the same atom.  An atom never contains
 * CTL, SP outside brackets, '(' ')' '{' '%' '*' '"' '\' outside brackets,
 * except that LIST patterns may contain '%' and '*' (list-wildcards): the
 * parser accepts them in atoms and leaves the checks to the commands.
 */

/* --- typed pieces ------------------------------------------------------ */

/* Sequence sets: "1:5,7,9:*".  '*' is stored as UINT32_MAX; ranges are
 * normalised (low <= high).  "$" (RFC 5182 SEARCHRES) is recognised. */
struct imap_seq_range {
    uint32_t lo, hi;
};
struct imap_seqset {
    struct imap_seq_range *r;
    size_t n;
    int saved;                  /* "$" */
};
#define IMAP_SEQSET_MAX 10000   /* ranges */
int imap_seqset_parse(const char *s, size_t len, struct imap_seqset *out);  /* 0/-1 */
void imap_seqset_free(struct imap_seqset *set);
/* Is v in the set, with '*' meaning max (the largest seq/uid in use)? */
int imap_seqset_contains(const struct imap_seqset *set, uint32_t v, uint32_t max);

/* Flag lists for STORE, APPEND: "(\Seen $Label)" or a single flag. */
#define IMAP_FLAG_SEEN 0x01
#define IMAP_FLAG_ANSWERED 0x02
#define IMAP_FLAG_FLAGGED 0x04
#define IMAP_FLAG_DELETED 0x08
#define IMAP_FLAG_DRAFT 0x10
#define IMAP_FLAG_RECENT 0x20           /* may not be set by clients */
#define IMAP_KEYWORDS_MAX 64
#define IMAP_KEYWORD_LEN 64
struct imap_flags {
    unsigned system;                    /* IMAP_FLAG_* */
    char keywords[IMAP_KEYWORDS_MAX][IMAP_KEYWORD_LEN + 1];
    size_t nkeywords;
};
/* One arg (LIST or ATOM).  -1 for an unknown \System flag, a bad keyword
 * (atom-specials), too many or too long. */
int imap_flags_parse(const struct imap_arg *arg, struct imap_flags *out);

/* "01-Jan-2026 12:00:00 +0100" (date-time) and "1-Jan-2026" (date). */
int imap_datetime_parse(const char *s, size_t len, time_t *out);
int imap_date_parse(const char *s, size_t len, time_t *out);   /* midnight UTC of that day */

/* FETCH attributes. */
enum imap_fetch_kind {
    IMAP_FETCH_UID, IMAP_FETCH_FLAGS, IMAP_FETCH_INTERNALDATE, IMAP_FETCH_RFC822_SIZE,
    IMAP_FETCH_ENVELOPE, IMAP_FETCH_BODYSTRUCTURE, IMAP_FETCH_BODY_STRUCT /* BODY */,
    IMAP_FETCH_RFC822, IMAP_FETCH_RFC822_HEADER, IMAP_FETCH_RFC822_TEXT,
    IMAP_FETCH_BODY_SECTION /* BODY[...] / BODY.PEEK[...] */,
    IMAP_FETCH_BINARY_SECTION, IMAP_FETCH_BINARY_SIZE, IMAP_FETCH_MODSEQ,
};
enum imap_section_text {
    IMAP_SECTION_ALL,           /* BODY[] or BODY[1.2] */
    IMAP_SECTION_HEADER,
    IMAP_SECTION_HEADER_FIELDS,
    IMAP_SECTION_HEADER_FIELDS_NOT,
    IMAP_SECTION_TEXT,
    IMAP_SECTION_MIME,
};
#define IMAP_SECTION_DEPTH 16
#define IMAP_HEADER_FIELDS_MAX 64
struct imap_fetch_att {
    enum imap_fetch_kind kind;
    int peek;                                   /* .PEEK: do not set \Seen */
    unsigned part[IMAP_SECTION_DEPTH];          /* "1.2.3" */
    size_t nparts;
    enum imap_section_text text;
    char *fields[IMAP_HEADER_FIELDS_MAX];       /* upper-cased, for HEADER.FIELDS */
    size_t nfields;
    int partial;                                /* <offset.count> given */
    uint64_t offset, count;
    char *name;                                 /* as the reply must echo it, e.g. "BODY[HEADER]<0>" */
};
struct imap_fetch_atts {
    struct imap_fetch_att *a;
    size_t n;
};
/* FETCH's argument: a macro (ALL, FAST, FULL), one attribute, or a list. */
int imap_fetch_atts_parse(const struct imap_arg *arg, struct imap_fetch_atts *out, const char **why);
void imap_fetch_atts_free(struct imap_fetch_atts *atts);

/* SEARCH keys (RFC 3501 6.4.4 + RFC 9051), as a tree. */
enum imap_search_kind {
    IMAP_SK_ALL, IMAP_SK_AND /* a parenthesised list or the implicit top level */, IMAP_SK_OR,
    IMAP_SK_NOT, IMAP_SK_SEQSET, IMAP_SK_UID,
    IMAP_SK_FLAG /* ANSWERED DELETED DRAFT FLAGGED SEEN RECENT (flag in .flag) */,
    IMAP_SK_UNFLAG /* UNANSWERED ... (and OLD = UNRECENT, NEW = RECENT UNSEEN) */,
    IMAP_SK_KEYWORD, IMAP_SK_UNKEYWORD,
    IMAP_SK_BEFORE, IMAP_SK_ON, IMAP_SK_SINCE,
    IMAP_SK_SENTBEFORE, IMAP_SK_SENTON, IMAP_SK_SENTSINCE,
    IMAP_SK_LARGER, IMAP_SK_SMALLER,
    IMAP_SK_HEADER /* HEADER name value; BCC CC FROM SUBJECT TO map here */,
    IMAP_SK_BODY, IMAP_SK_TEXT,
    IMAP_SK_MODSEQ,
};
struct imap_search_key {
    enum imap_search_kind kind;
    struct imap_search_key *sub;    /* AND: children; OR: two; NOT: one */
    size_t nsub;
    unsigned flag;                  /* IMAP_FLAG_* for FLAG/UNFLAG */
    struct imap_seqset set;         /* SEQSET, UID */
    time_t date;                    /* BEFORE ... SENTSINCE */
    uint64_t number;                /* LARGER, SMALLER, MODSEQ */
    char *name;                     /* HEADER field name, KEYWORD */
    char *value;                    /* HEADER, BODY, TEXT string (UTF-8 or US-ASCII) */
    size_t value_len;
};
#define IMAP_SEARCH_DEPTH 32
#define IMAP_SEARCH_KEYS_MAX 1000
/*
 * args: everything after SEARCH (and after "CHARSET x" / "RETURN (...)",
 * which the session takes off first).  Returns the root (an AND), or NULL
 * with *why set.
 */
struct imap_search_key *imap_search_parse(const struct imap_arg *args, size_t nargs,
                                          const char **why);
void imap_search_free(struct imap_search_key *k);

/* Mailbox names: "INBOX" case-insensitive; modified UTF-7 (RFC 3501 5.1.3)
 * must be valid unless UTF8=ACCEPT is enabled.  0 valid, -1 not. */
int imap_mailbox_name_valid(const char *s, size_t len, int utf8);

/* Quote s for a response: a quoted string when possible, else a literal
 * "{n}\r\n..." (8-bit, CR, LF, NUL, or long).  Writes into out (cap bytes),
 * returns the length it needs (may be > cap: then call again bigger). */
size_t imap_quote(char *out, size_t cap, const char *s, size_t len);

#endif
