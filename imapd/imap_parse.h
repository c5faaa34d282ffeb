/*
 * imap_parse - the IMAP command parser: a command's bytes into a tree of
 * arguments, then the typed pieces commands need (sequence sets, fetch
 * attributes, search keys, flag lists, dates).
 *
 * Reading a command (RFC 3501 / RFC 9051 + LITERAL+, RFC 7888):
 *	struct imap_parser *p = imap_parser_new(&limits);
 *	for each line the connection delivers (CRLF included):
 *	    r = imap_parser_line(p, line, len);
 *	    IMAP_PARSE_LITERAL: the line ended in {n} or {n+} (or ~{n}, ~{n+});
 *	        imap_parser_literal_size() says n and imap_parser_literal_sync()
 *	        whether the client waits for "+ ";
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
 * Every literal whose size fits 64 bits is announced with
 * IMAP_PARSE_LITERAL, whatever its size, so that the session decides:
 * imap_parser_literal_fits() is 0 when it does not fit in memory
 * (literal_max, or command_max with what came before).  Then the session
 * either takes it over (imap_parser_literal_external(), APPEND) or refuses
 * it before reading any of it: for a synchronizing literal by not sending
 * "+ " and replying at once (NO [TOOBIG]); a non-synchronizing one is on
 * its way and must be skipped (or the connection closed).  Should the
 * session feed a literal that does not fit anyway, imap_parser_literal()
 * takes the bytes without keeping them and the command fails with the last
 * one ("literal too large" / "command too long"): never any memory for it,
 * and the connection stays in step.  While a literal is pending,
 * imap_parser_args() gives the top-level arguments before it and
 * imap_parser_depth() the lists open around it, so the session can tell
 * APPEND's mailbox from its message.
 *
 * A literal {0} is returned as IMAP_PARSE_LITERAL too (a synchronizing one
 * still needs its "+ "); it needs no bytes, the next line goes on.
 *
 * After IMAP_PARSE_ERROR, imap_parser_literal_size() is non-zero when the
 * failed line ended in a literal announcement: if !imap_parser_literal_sync()
 * the client is sending those bytes anyway (RFC 7888 section 4), so the
 * session should skip them or close the connection.  An announcement whose
 * size does not fit 64 bits reads as UINT64_MAX.
 *
 * Bounds (struct imap_limits): bytes per command (lines and literals
 * together; external literals are the session's and do not count), literal
 * size, argument count (lists count as one each, plus their elements), list
 * nesting depth.  Every violation is a clean error, never a crash or
 * unbounded memory: the parser holds at most about twice command_max bytes
 * plus 2 * args_max struct imap_arg.
 * Strings are pointer + length (they may hold NUL only in literals).
 *
 * Lines: a trailing LF or CRLF is removed; NUL, CR or LF elsewhere is an
 * error.  Tokens are separated by one or more SP (RFC 3501 says one; extra
 * spaces are tolerated, as Dovecot does).  Quoted strings allow the escapes
 * \" and \\ only, any other byte of %x01-7F but CR/LF, and UTF-8 (RFC 9051
 * utf8-quoted); invalid UTF-8 is an error.  Tags are ASTRING-CHARs except
 * "+" (so "*" and "+" are refused); command names are letters, digits and
 * "-", "_", "." and come upper-cased.  Literals inside brackets (a header
 * field name of BODY[HEADER.FIELDS ...] sent as a literal) are not
 * supported.
 */
#ifndef IMAP_PARSE_H
#define IMAP_PARSE_H

#include <stddef.h>
#include <stdint.h>
#include <time.h>

/* imap_parser_new(NULL) uses these. */
#define IMAP_COMMAND_MAX_DEFAULT (64 * 1024)
#define IMAP_LITERAL_MAX_DEFAULT (64 * 1024)
#define IMAP_ARGS_MAX_DEFAULT 10000
#define IMAP_DEPTH_MAX_DEFAULT 32

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
    const char *s;              /* ATOM, STRING, LITERAL: bytes (NUL-terminated copy);
                                 * NIL: "NIL" as the client spelled it (an astring may
                                 * be the atom NIL); LITERAL_EXTERNAL: "" */
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
/* While a literal is pending: its size and whether it is synchronizing
 * (after an error: see above; otherwise 0). */
uint64_t imap_parser_literal_size(const struct imap_parser *p);
int imap_parser_literal_sync(const struct imap_parser *p);
/* 1 when the pending literal is a literal8, ~{n} or ~{n+} (RFC 3516,
 * RFC 9051): only APPEND's message may be one (taken over by the session);
 * read as an argument, it fails the command once its bytes are in. */
int imap_parser_literal_binary(const struct imap_parser *p);
/* 1 when the pending literal may be read into memory (within literal_max
 * and what is left of command_max), 0 when it must be taken over or
 * refused (see above).  Use it, not literal_max alone, to decide. */
int imap_parser_literal_fits(const struct imap_parser *p);
/* Feed literal bytes; returns how many were taken (at most what remains;
 * 0 when no literal is pending).  When the last byte is taken the literal is
 * an argument and the next imap_parser_line() continues the command -- or,
 * for a literal that does not fit, the parser is in error (see above). */
size_t imap_parser_literal(struct imap_parser *p, const char *data, size_t len);
/* The session consumes the pending literal itself (before feeding any of
 * it; later it is an error).  The next bytes on the connection after the
 * literal's n are a line for imap_parser_line(). */
void imap_parser_literal_external(struct imap_parser *p);
/* How many bytes of the pending literal are still expected (0 after
 * imap_parser_literal_external()). */
uint64_t imap_parser_literal_left(const struct imap_parser *p);
/* Lists open around the pending literal (0: it is a top-level argument). */
unsigned imap_parser_depth(const struct imap_parser *p);

/* After DONE: tag and command name (upper-cased copy), arguments after them.
 * "UID FETCH" comes as name "UID" with args[0] = FETCH...: the session
 * handles the UID prefix.  Tag and name are known from the first line on;
 * the arguments while a literal is pending (see above: that array may move
 * when the command goes on, so look at it before the next call).  After
 * DONE everything stays valid until imap_parser_reset() or
 * imap_parser_free(). */
const char *imap_parser_tag(const struct imap_parser *p);    /* NULL if none parsed */
const char *imap_parser_name(const struct imap_parser *p);   /* NULL if none parsed */
const struct imap_arg *imap_parser_args(const struct imap_parser *p, size_t *nargs);
const char *imap_parser_error(const struct imap_parser *p);  /* NULL unless ERROR */

/*
 * Atoms: IMAP's fetch attributes contain brackets and spaces
 * ("BODY[HEADER.FIELDS (DATE FROM)]<0.2048>"): when an atom contains '[',
 * the parser takes everything up to the matching ']' (and an optional
 * "<a.b>" after it) as part of the same atom.  An atom never contains
 * CTL, 8-bit bytes, SP outside brackets, '(' ')' '{' '%' '*' '"' '\'
 * outside brackets, except that LIST patterns may contain '%' and '*'
 * (list-wildcards) and sequence sets '*': the parser accepts them in atoms
 * and leaves the checks to the commands.  A '\' may begin an atom (flags:
 * "\Seen").  ']' is accepted (ASTRING-CHAR).  Inside brackets any printable
 * US-ASCII is kept up to the first ']' (quoted header names work, but
 * cannot hold a ']').  A '[' with no ']' after it on the line (before a
 * control or 8-bit byte) is an ordinary atom character (a mailbox called
 * "[x").  The look-ahead is linear per line, however many '[' it holds.
 */

/* --- typed pieces ------------------------------------------------------ */

/* Sequence sets: "1:5,7,9:*".  '*' is stored as UINT32_MAX; ranges are
 * normalised (low <= high).  "$" (RFC 5182 SEARCHRES) is recognised, alone
 * only: saved = 1, n = 0, and the session substitutes the saved result.
 * Numbers are nz-number (no 0, no leading zero, at most 4294967295, which
 * reads the same as '*'); at most IMAP_SEQSET_MAX ranges; no spaces. */
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
/* Is v in the set, with '*' meaning max (the largest seq/uid in use)?
 * "n:*" with n > max is "max:n" (RFC 3501 6.4.8).  0 for "$" and for v 0. */
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
/* One arg (LIST or ATOM).  -1 for an unknown \System flag (\Recent too:
 * clients may not set it, RFC 3501 flag), a bad keyword (atom-specials),
 * too many or too long, a nested list or a string.  System flags are
 * case-insensitive; keywords keep their spelling, duplicates (ignoring
 * case) are dropped. */
int imap_flags_parse(const struct imap_arg *arg, struct imap_flags *out);
/* STORE's flags: one flag-list, or flags without parentheses (RFC 3501
 * store-att-flags: "flag-list / (flag *(SP flag))"). */
int imap_store_flags_parse(const struct imap_arg *args, size_t n, struct imap_flags *out);

/* "01-Jan-2026 12:00:00 +0100" (date-time) and "1-Jan-2026" (date), without
 * their DQUOTEs (the parser took them off).  The date-time day may be " 1",
 * "01" or "1"; months are case-insensitive; days, times and zones are
 * range-checked (second 60 is allowed).  0 / -1. */
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
    int peek;                                   /* does not set \Seen: 0 only for
                                                 * BODY[..], BINARY[..], RFC822 and
                                                 * RFC822.TEXT (RFC 3501 6.4.5) */
    unsigned part[IMAP_SECTION_DEPTH];          /* "1.2.3" */
    size_t nparts;
    enum imap_section_text text;
    char *fields[IMAP_HEADER_FIELDS_MAX];       /* upper-cased, for HEADER.FIELDS */
    size_t nfields;
    int partial;                                /* <offset.count> given */
    uint64_t offset, count;
    char *name;                                 /* as the reply must echo it, e.g. "BODY[HEADER]<0>" */
};
/* RFC822, RFC822.HEADER and RFC822.TEXT also get text ALL, HEADER and TEXT
 * (they are BODY[], BODY.PEEK[HEADER], BODY[TEXT] under another name).
 * BINARY[..] and BINARY.SIZE[..] take part numbers only (RFC 3516);
 * BINARY.SIZE has no partial.  In name, header field names are upper-cased
 * and written as atoms, or quoted when they are not atoms (as Dovecot). */
struct imap_fetch_atts {
    struct imap_fetch_att *a;
    size_t n;
};
/* FETCH's argument: a macro (ALL, FAST, FULL), one attribute, or a
 * non-empty list of attributes (no macros inside).  0, or -1 with *why set
 * and *out empty.  Free with imap_fetch_atts_free() after success. */
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
 * with *why set.  NEW is an AND of FLAG RECENT and UNFLAG SEEN; OLD is
 * UNFLAG RECENT; ALL is IMAP_SK_ALL.  Keys are atoms (case-insensitive);
 * string arguments are astrings (atom, NIL, quoted, literal); dates are
 * date (atom or quoted).  MODSEQ's optional entry-name and entry-type are
 * checked for form and dropped; its value is at most 2^63-1.  Depth (NOT,
 * OR, parentheses) at most IMAP_SEARCH_DEPTH, nodes at most
 * IMAP_SEARCH_KEYS_MAX.  A "$" sequence set comes as SEQSET or UID with
 * set.saved.
 */
struct imap_search_key *imap_search_parse(const struct imap_arg *args, size_t nargs,
                                          const char **why);
void imap_search_free(struct imap_search_key *k);

/* Mailbox names: "INBOX" case-insensitive; modified UTF-7 (RFC 3501 5.1.3)
 * must be valid unless UTF8=ACCEPT is enabled.  0 valid, -1 not.
 * 1-IMAP_MAILBOX_NAME_MAX bytes (DB_MBOX_NAME_MAX), no control characters,
 * no list-wildcards '%' '*'.  Without utf8: US-ASCII only, every '&' starts
 * "&-" or a shift of modified BASE64 that ends in '-', decodes to whole
 * UTF-16 units with zero padding bits, valid surrogate pairs, no printable
 * US-ASCII, and does not follow another shift directly ("-&" null shift).
 * With utf8: valid UTF-8 and '&' is an ordinary character.  Hierarchy
 * rules (delimiter, empty levels) are the session's. */
#define IMAP_MAILBOX_NAME_MAX 255
int imap_mailbox_name_valid(const char *s, size_t len, int utf8);

/* Mailbox names between modified UTF-7 (RFC 3501 5.1.3: how they are
 * stored, and what IMAP4rev1 sessions use) and UTF-8 (what IMAP4rev2
 * sessions use, RFC 9051 5.1, where '&' is an ordinary character).  Both
 * write a NUL-terminated result into out (outsz bytes, the NUL included)
 * and return 0, or -1 with out empty when the input is invalid or the
 * result does not fit.
 * imap_mutf7_to_utf8: s is printable US-ASCII; every '&' starts "&-" (an
 * '&') or a shift of modified BASE64 with the rules of
 * imap_mailbox_name_valid() above (whole UTF-16 units, zero padding bits,
 * pairs of surrogates, no US-ASCII inside, no shift right after another).
 * Its name rules (length, '%', '*') are not checked.  The UTF-8 form of a
 * name of IMAP_MAILBOX_NAME_MAX bytes fits IMAP_MAILBOX_UTF8_MAX bytes: a
 * BASE64 character carries 6 bits, and 16 bits give at most 3 bytes of
 * UTF-8, so the UTF-8 form is at most 9/8 of the modified UTF-7 one.
 * imap_utf8_to_mutf7: s is well-formed UTF-8 without control characters
 * (U+0000-U+001F, U+007F: modified UTF-7 takes none back); the result is
 * the shortest form (one shift per run of non-ASCII characters, '&' as
 * "&-") and at most IMAP_MAILBOX_NAME_MAX bytes whatever outsz is.
 * For every x that one accepts, the other gives x back from its result. */
#define IMAP_MAILBOX_UTF8_MAX (IMAP_MAILBOX_NAME_MAX * 9 / 8)
int imap_mutf7_to_utf8(const char *s, size_t len, char *out, size_t outsz);
int imap_utf8_to_mutf7(const char *s, size_t len, char *out, size_t outsz);

/* 0 when s is well-formed UTF-8 (no overlong forms, surrogates or code
 * points above U+10FFFF), -1 otherwise.  US-ASCII is UTF-8. */
int imap_utf8_valid(const char *s, size_t len);

/* Quote s for a response: a quoted string when possible, else a literal
 * "{n}\r\n..." (CR, LF, NUL, longer than IMAP_QUOTE_MAX, or 8-bit: unless
 * utf8, for an IMAP4rev2 session, whose quoted strings may hold well-formed
 * UTF-8, RFC 9051 QUOTED-CHAR).  Writes into out (cap bytes), returns the
 * length it needs (may be > cap: then call again bigger).  Like snprintf, a
 * NUL follows when it fits (cap > the length); the length does not count
 * it. */
#define IMAP_QUOTE_MAX 1024
size_t imap_quote(char *out, size_t cap, const char *s, size_t len, int utf8);

#endif
