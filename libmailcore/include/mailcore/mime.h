/*
 * mime - the structure of a message held in memory (RFC 5322, RFC 2045-2049),
 * and what IMAP and submission need from it.
 *
 * mime_parse() reads a whole message (the caller mmaps the stored file) and
 * records, per part, where its header and body are: offsets into the
 * caller's buffer, which must outlive the msg.  Nothing of the body is
 * copied.  Header fields are read again when asked for, so a part costs a
 * fixed few words whatever its headers hold.
 *
 * Parsing never fails on content.  Malformed input yields a best-effort
 * structure, the same one Dovecot builds (imapd's answers are compared with
 * Dovecot's): a missing close-delimiter ends the multipart at the end of the
 * message, a part without Content-Type is text/plain (message/rfc822 inside
 * multipart/digest), a boundary line only has to begin with "--boundary", a
 * boundary line inside a header block ends that header.  Line ends are LF or
 * CRLF for parsing; sizes, line counts and offsets are the actual bytes.
 * One deliberate difference: message/global is an embedded message, like
 * message/rfc822 (RFC 9051 body-type-msg); Dovecot 2.3 shows it as a leaf.
 *
 * Every dimension is bounded by the constants below; past a bound the parse
 * goes on with less structure (MIME_MSG_* flags say which bound was hit).
 * mime_parse() returns NULL only when memory runs out.
 *
 * IMAP output (mime_imap_*) goes to a struct mime_buf, whose max bounds it.
 */
#ifndef MAILCORE_MIME_H
#define MAILCORE_MIME_H

#include <stddef.h>
#include <stdint.h>

#define MIME_DEPTH_MAX 30     /* levels of parts, the message being level 1 */
#define MIME_PARTS_MAX 2000   /* parts in a message, the message included */
#define MIME_HEADERS_MAX 5000 /* header fields interpreted per part; more are skipped */
#define MIME_BOUNDARY_MAX 80  /* RFC 2046 allows 70; longer ones are cut (as Dovecot) */
#define MIME_ADDR_MAX 5000    /* entries per ENVELOPE address list (all its fields) */
#define MIME_PARAMS_MAX 128   /* parameters per Content-Type / -Disposition (as Dovecot) */
#define MIME_BUF_MAX_DEFAULT (64u * 1024 * 1024)

/* A growable output buffer that refuses to grow past max. */
struct mime_buf {
    char *p;
    size_t len, cap;
    size_t max; /* 0 means MIME_BUF_MAX_DEFAULT */
    int failed; /* sticky: an append hit max or ran out of memory */
};

void mime_buf_init(struct mime_buf *b, size_t max);
void mime_buf_reset(struct mime_buf *b); /* empty it, clear failed */
void mime_buf_free(struct mime_buf *b);
/* 0, or -1 (and failed set) when max would be passed or malloc failed. */
int mime_buf_add(struct mime_buf *b, const void *p, size_t n);
int mime_buf_adds(struct mime_buf *b, const char *s);
int mime_buf_addc(struct mime_buf *b, char c);
int mime_buf_addu(struct mime_buf *b, uint64_t n);
/* NUL-terminate without counting the NUL in len (for C-string callers). */
int mime_buf_cstr(struct mime_buf *b);

enum mime_kind {
    MIME_LEAF,      /* a body, or a multipart/message part past a bound */
    MIME_MULTIPART, /* children are the body parts */
    MIME_MESSAGE,   /* message/rfc822 or message/global: one child, the message */
};

enum mime_part_flag {
    MIME_PART_TEXT = 1 << 0,    /* text/..., or no Content-Type */
    MIME_PART_MIME = 1 << 1,    /* MIME-Version or Content-Type seen, or in a multipart */
    MIME_PART_DIGEST = 1 << 2,  /* multipart/digest */
    MIME_PART_NO_EOH = 1 << 3,  /* header not ended by an empty line */
    MIME_PART_LIMITED = 1 << 4, /* multipart/message whose inside was not parsed (bounds) */
    MIME_PART_NUL = 1 << 5,     /* NUL bytes in header or body */
};

struct mime_msg;

struct mime_part {
    const struct mime_msg *msg;
    struct mime_part *parent, *child, *next;
    unsigned depth; /* 0 for the message itself */
    enum mime_kind kind;
    unsigned flags;          /* enum mime_part_flag */
    size_t hdr_off, hdr_len; /* header, with the empty line that ends it */
    size_t body_off, body_len;
    size_t body_lines; /* LF characters in the body */
};

enum mime_msg_flag {
    MIME_MSG_DEPTH_LIMIT = 1 << 0,
    MIME_MSG_PARTS_LIMIT = 1 << 1,
    MIME_MSG_GLOBAL = 1 << 2,       /* it has a message/global part */
};

struct mime_msg {
    const char *buf;
    size_t len;
    struct mime_part *root;  /* parts[0] */
    struct mime_part *parts; /* in order of appearance (section order) */
    size_t nparts;
    unsigned flags; /* enum mime_msg_flag */
    int lenient;
};

/*
 * MIME_PARSE_LENIENT recovers what any mail client might see, for policy
 * checks (submitd): a broken parameter does not hide the ones after it, and
 * junk after "type/subtype" does not void the Content-Type.  Without it the
 * structure is exactly what Dovecot (and so imapd) reports.
 */
enum mime_parse_flag { MIME_PARSE_LENIENT = 1 << 0 };

struct mime_msg *mime_parse(const char *buf, size_t len);
struct mime_msg *mime_parse_flags(const char *buf, size_t len, unsigned flags);
void mime_free(struct mime_msg *msg);

/* ---- header fields --------------------------------------------------- */

struct mime_header {
    const char *name; /* as written, blanks before ':' dropped */
    size_t name_len;
    const char *value; /* raw: blanks after ':' skipped, folding (CRLF) kept; */
    size_t value_len;  /* NULL when the line has no ':' */
    const char *field; /* the whole field, continuation lines and final newline included */
    size_t field_len;
};

/* Walk a part's header fields: *pos starts at 0.  1 with a field, 0 at the
 * end.  (The lookups below and the parser look at MIME_HEADERS_MAX fields.) */
int mime_header_next(const struct mime_part *part, size_t *pos, struct mime_header *h);
/* The first field of that name (case-insensitive; a line without ':' is
 * no field): 1, or 0 when absent. */
int mime_header_find(const struct mime_part *part, const char *name, struct mime_header *h);
/* Unfold a raw value: every CR and LF removed (RFC 5322 2.2.3). */
int mime_header_unfold(const char *value, size_t len, struct mime_buf *out);

/* ---- IMAP ------------------------------------------------------------- */

/*
 * ENVELOPE from msgpart's header: msg->root for FETCH ENVELOPE, or the child
 * of a MIME_MESSAGE part.  Writes "(date subject from ...)".  Strings are
 * raw (no RFC 2047 decoding), as RFC 3501 requires.  0 or -1 (out full).
 */
int mime_imap_envelope(const struct mime_part *msgpart, struct mime_buf *out);
/* BODYSTRUCTURE (MIME_IMAP_EXTENDED) or BODY (not): writes "(...)".  With
 * MIME_IMAP_GLOBAL_BASIC a message/global part is a basic part, as an
 * IMAP4rev1 client must see it (the parse has MIME_MSG_GLOBAL).  0 or -1. */
enum { MIME_IMAP_EXTENDED = 1, MIME_IMAP_GLOBAL_BASIC = 2 };
int mime_imap_bodystructure(const struct mime_msg *msg, unsigned flags, struct mime_buf *out);
/* IMAP string: NIL (s == NULL), "quoted" when it can be, else a {n} literal. */
int mime_imap_nstring(struct mime_buf *out, const char *s, size_t len);

/* ---- sections (FETCH BODY[...]) --------------------------------------- */

struct mime_range {
    size_t off, len;
};

struct mime_section {
    const struct mime_part *part; /* what the numbers name; the root for "" */
    struct mime_range body;       /* BODY[n]; BODY[] (the whole message) for "" */
    struct mime_range mime;       /* BODY[n.MIME]: the part's own header */
    struct mime_range header;     /* BODY[n.HEADER] when has_message */
    struct mime_range text;       /* BODY[n.TEXT] when has_message */
    int has_mime;                 /* n is not "" */
    int has_message;              /* "" or a message/rfc822 part: HEADER and TEXT exist */
};

/*
 * Resolve "1.2.3" (len bytes, "" for the message) with RFC 3501 6.4.5:
 * part 1 of a non-multipart message is its body; numbers go inside a
 * message/rfc822 part to its message's parts.  0, or -1 when no such part
 * (Dovecot then answers an empty string).
 */
int mime_section(const struct mime_msg *msg, const char *nums, size_t len,
                 struct mime_section *out);
/*
 * HEADER.FIELDS / HEADER.FIELDS.NOT over a header range: the fields whose
 * names are (not, when not != 0) in names, raw, then the empty line.
 */
int mime_header_fields(const struct mime_msg *msg, struct mime_range hdr, const char *const *names,
                       size_t nnames, int not, struct mime_buf *out);
/*
 * The part's body with its Content-Transfer-Encoding undone (BINARY[n]):
 * 0, or -1 for an unknown encoding (UNKNOWN-CTE) or out full.  out may be
 * NULL to count only: *size gets the decoded size (BINARY.SIZE).
 */
int mime_decode_body(const struct mime_part *part, struct mime_buf *out, size_t *size);

/* ---- content information and attachments ----------------------------- */

enum mime_disposition { MIME_DISP_NONE, MIME_DISP_INLINE, MIME_DISP_ATTACHMENT, MIME_DISP_OTHER };

/*
 * "type/subtype" in lower case into out (NUL-terminated, cut to outsz):
 * text/plain when there is no Content-Type (message/rfc822 in a digest),
 * application/octet-stream when it cannot be parsed, so that a policy never
 * takes a broken type for an allowed one.
 */
void mime_part_type(const struct mime_part *part, char *out, size_t outsz);
enum mime_disposition mime_part_disposition(const struct mime_part *part);
/*
 * The file name: Content-Disposition filename*= / filename=, else
 * Content-Type name*= / name=, decoded to UTF-8 (RFC 2231 charset'lang'%XX
 * and continuations, RFC 2047 encoded-words in plain values).  1 when there
 * is one, 0 when not, -1 when out is full.
 */
int mime_part_filename(const struct mime_part *part, struct mime_buf *out);
/* Decode one parameter value as above; extended: the name ended in '*'. */
int mime_param_decode(const char *value, size_t len, int extended, struct mime_buf *out);

/* The message's main text: the first text leaf down the first children of
 * multiparts from the root; NULL when there is none. */
const struct mime_part *mime_main_body(const struct mime_msg *msg);
/*
 * SPEC 4: an attachment is a part, at any depth, with Content-Disposition:
 * attachment, or a non-text leaf with a file name (filename or name
 * parameter).  The message's main text body never counts; multipart
 * containers never do.
 */
int mime_is_attachment(const struct mime_part *part);

struct mime_walk_info {
    const struct mime_part *part;
    const char *type; /* as mime_part_type() */
    enum mime_disposition disposition;
    const char *filename; /* decoded UTF-8, NULL when none */
    int attachment;       /* mime_is_attachment() */
};
/* Call cb for every part at any depth, in section order; a non-zero return
 * stops the walk and is returned.  -1 when memory runs out. */
typedef int mime_walk_cb(const struct mime_walk_info *info, void *arg);
int mime_walk(const struct mime_msg *msg, mime_walk_cb *cb, void *arg);

#endif
