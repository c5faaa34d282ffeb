/*
 * mime_internal.h - what the mime_*.c files share and nothing else uses.
 *
 *	mime.c		buffers, the structure parser, header fields, sections
 *	mime_lex.c	RFC 5322 / RFC 2045 lexical parts: comments, atoms,
 *			tokens, quoted strings, content types, parameters
 *			(with RFC 2231 continuations), a part's Content-* data
 *	mime_addr.c	address lists into (name route mailbox host)
 *	mime_imap.c	IMAP strings, ENVELOPE, BODY and BODYSTRUCTURE
 *	mime_decode.c	base64, quoted-printable, RFC 2047 words, RFC 2231
 *			values, charsets to UTF-8
 *	mime_attach.c	content types, file names, the attachment walk
 *
 * Strings made while parsing go to a mime_buf "store" and are named by
 * offset (struct mime_str), since the store moves as it grows.
 */
#ifndef MAILCORE_MIME_INTERNAL_H
#define MAILCORE_MIME_INTERNAL_H

#include <stddef.h>

#include "mailcore/mime.h"

/* A NUL byte in a header string becomes U+FFFD, as Dovecot does. */
#define MIME_NUL_REPL "\xef\xbf\xbd"
#define MIME_NUL_REPL_LEN 3

/* Scratch stores are bounded by what the input can expand to; this is only
 * a backstop. */
#define MIME_STORE_MAX ((size_t)1 << 31)

struct mime_str {
    size_t off, len;
    int set;
};

static inline const char *mime_str_ptr(const struct mime_buf *store, struct mime_str s)
{
    return store->p ? store->p + s.off : "";
}

/* Append b's own bytes [off, off+len) to b (safe when b moves). */
int mime_buf_append_self(struct mime_buf *b, size_t off, size_t len);

/* ---- header fields (mime.c) ------------------------------------------- */

/* Read the field at pos, within [pos, lim).  0 at an empty line or at lim,
 * else 1 with h filled and *next after the field. */
int mime_field_read(const char *buf, size_t pos, size_t lim, struct mime_header *h, size_t *next);
int mime_field_is(const struct mime_header *h, const char *name);

/* ---- lexer (mime_lex.c) ----------------------------------------------- */

/*
 * Each function returns as Dovecot's rfc822-parser does: 1 when more input
 * follows (blanks and comments after the item skipped), 0 at the end, -1 on
 * a syntax error.  Text goes to out; NUL bytes in quoted strings, comments
 * and domain literals become U+FFFD.
 */
struct mime_lex {
    const unsigned char *p, *end;
    struct mime_buf *comment; /* gets the text of the last comment, or NULL */
};

void mime_lex_init(struct mime_lex *lx, const char *s, size_t len, struct mime_buf *comment);
int mime_lex_is_atext(unsigned char c);
int mime_lex_skip_lwsp(struct mime_lex *lx);
int mime_lex_atom(struct mime_lex *lx, struct mime_buf *out);
int mime_lex_dot_atom(struct mime_lex *lx, struct mime_buf *out);
int mime_lex_token(struct mime_lex *lx, struct mime_buf *out);
int mime_lex_quoted(struct mime_lex *lx, struct mime_buf *out);
int mime_lex_phrase(struct mime_lex *lx, struct mime_buf *out);
int mime_lex_domain(struct mime_lex *lx, struct mime_buf *out);
/* "type/subtype" into out; on failure out holds what Dovecot keeps ("" or
 * a lone type).  lenient: junk after the subtype is skipped up to ';'. */
int mime_lex_content_type(struct mime_lex *lx, struct mime_buf *out, int lenient);

struct mime_param {
    struct mime_str name, value;
};

struct mime_params {
    struct mime_param v[MIME_PARAMS_MAX];
    size_t n;
};

/*
 * ";name=value" parameters into store, RFC 2231 continuations merged as
 * Dovecot does: plain parameters first in their order, then the merged
 * ones sorted by name ("name*" when any piece was extended, the value then
 * in charset'lang'%XX form).  A broken parameter is skipped: by one byte as
 * Dovecot (losing the parameters after it, and counting each byte as one of
 * the MIME_PARAMS_MAX attempts), or, lenient, to the next ';'.
 */
int mime_params_parse(struct mime_lex *lx, int lenient, struct mime_params *out,
                      struct mime_buf *store);
/* The first parameter of that name (case-insensitive), or NULL. */
const struct mime_param *mime_params_get(const struct mime_params *ps, const struct mime_buf *store,
                                         const char *name);

/* A part's Content-* data, with Dovecot's rules for repeated fields and for
 * parts that are not MIME (their Content-* fields are ignored). */
struct mime_info {
    int ct_ok;                     /* Content-Type parsed */
    struct mime_str type, subtype; /* set when the field exists (subtype maybe not) */
    struct mime_params ctp;        /* parameters when ct_ok */
    struct mime_str cte, id, desc, md5, loc;
    struct mime_str disp;
    struct mime_params dispp;
    struct mime_str lang[MIME_PARAMS_MAX];
    size_t nlang;
    struct mime_buf store;
};

/* 0, or -1 when memory runs out.  Free with mime_info_free. */
int mime_info_load(const struct mime_part *part, struct mime_info *info);
void mime_info_free(struct mime_info *info);

/* ---- addresses (mime_addr.c) ------------------------------------------ */

/* One (name route mailbox host) of ENVELOPE: a group start is
 * (NIL NIL name NIL), a group end all NIL. */
struct mime_addr {
    struct mime_str name, route, mailbox, domain;
};

struct mime_addrs {
    struct mime_addr *v;
    size_t n, cap;
    struct mime_buf store;
};

/* Parse an address-list field value as Dovecot does for ENVELOPE (missing
 * parts filled with MISSING_MAILBOX, MISSING_DOMAIN, SYNTAX_ERROR...),
 * appending to out (repeated fields add up), at most MIME_ADDR_MAX
 * entries.  0, or -1 when memory runs out. */
void mime_addrs_init(struct mime_addrs *a);
int mime_addrs_parse(const char *value, size_t len, struct mime_addrs *out);
void mime_addrs_free(struct mime_addrs *a);

/* ---- decoding (mime_decode.c) ----------------------------------------- */

/* Append src in charset to out as UTF-8 (invalid bytes become U+FFFD). */
int mime_charset_to_utf8(const char *charset, size_t cslen, const char *src, size_t len,
                         struct mime_buf *out);
/* Decode RFC 2047 encoded-words in a plain string to UTF-8. */
int mime_decode_words(const char *s, size_t len, struct mime_buf *out);

#endif
