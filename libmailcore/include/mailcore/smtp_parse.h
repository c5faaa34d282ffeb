/*
 * smtp_parse - the pure parts of the SMTP server: command lines, paths and
 * parameters, and the DATA/BDAT byte streams.  No I/O, no allocation, so
 * that they can be tested by tables and fuzzed.
 *
 * Command lines are pointer + length (a NUL byte must not cut them short)
 * and come without their CRLF.  Paths are bounded by SMTP_PATH_MAX.
 *
 * DATA framing (smtp_data_*): the end of a message is only
 * <CR><LF>.<CR><LF>.  A bare LF, a bare CR or a NUL anywhere in the content
 * never ends or splits a message; it is flagged, and the session refuses
 * the whole message once its real end has been read.  So "<LF>.<LF>",
 * "<CR>.<CR>" and "<LF>.<CR><LF>" cannot smuggle a second message.  The
 * same content rules apply to BDAT chunks (smtp_content_*).
 */
#ifndef MAILCORE_SMTP_PARSE_H
#define MAILCORE_SMTP_PARSE_H

#include <stddef.h>
#include <stdint.h>

#define SMTP_CMD_LINE_MAX 512       /* RFC 5321 4.5.3.1.4, CRLF included */
#define SMTP_PARAM_LINE_MAX 2048    /* MAIL/RCPT with ESMTP parameters */
#define SMTP_AUTH_LINE_MAX 12290    /* AUTH and its responses, RFC 4954 4 */
#define SMTP_PATH_MAX 256           /* RFC 5321 4.5.3.1.3, brackets included */
#define SMTP_DOMAIN_MAX 255

enum smtp_verb {
    SMTP_UNKNOWN,
    SMTP_HELO,
    SMTP_EHLO,
    SMTP_MAIL,
    SMTP_RCPT,
    SMTP_DATA,
    SMTP_BDAT,
    SMTP_RSET,
    SMTP_NOOP,
    SMTP_QUIT,
    SMTP_VRFY,
    SMTP_EXPN,
    SMTP_HELP,
    SMTP_STARTTLS,
    SMTP_AUTH,
};

struct smtp_cmd {
    enum smtp_verb verb;
    const char *arg;        /* after the verb and its space; "" when none */
    size_t arglen;
};

/* Split a line into verb and argument.  0, or -1 when the line holds a NUL,
 * a control character or 8-bit bytes outside an argument. */
int smtp_parse_command(const char *line, size_t len, struct smtp_cmd *cmd);
const char *smtp_verb_name(enum smtp_verb v);

struct smtp_path {
    char addr[SMTP_PATH_MAX + 1];   /* without brackets; "" for <> */
    size_t len;
    int source_route;               /* <@a,@b:user@d>: route dropped, flagged */
    int quoted;                     /* local part was a quoted string */
    int utf8;                       /* 8-bit bytes in the address */
};

enum smtp_body { SMTP_BODY_7BIT, SMTP_BODY_8BITMIME };

struct smtp_mail_params {
    uint64_t size;                  /* SIZE=, 0 when absent */
    enum smtp_body body;
    int smtputf8;
};

/* Why a parse failed: reply code and text come from smtp_reply. */
enum smtp_parse_error {
    SMTP_PARSE_OK = 0,
    SMTP_PARSE_SYNTAX,          /* 501 5.5.4 */
    SMTP_PARSE_BAD_SENDER,      /* 501 5.1.7 */
    SMTP_PARSE_BAD_RECIPIENT,   /* 501 5.1.3 */
    SMTP_PARSE_BAD_PARAM,       /* 555 5.5.4 */
    SMTP_PARSE_TOO_LONG,        /* 501 5.5.4 path too long */
};

/* "FROM:<a@b> SIZE=n BODY=8BITMIME SMTPUTF8" */
enum smtp_parse_error smtp_parse_mail(const char *arg, size_t len, struct smtp_path *path,
                                      struct smtp_mail_params *params);
/* "TO:<a@b>" (no parameters are supported) */
enum smtp_parse_error smtp_parse_rcpt(const char *arg, size_t len, struct smtp_path *path);
/* "n" or "n LAST" */
enum smtp_parse_error smtp_parse_bdat(const char *arg, size_t len, uint64_t *size, int *last);
/* A HELO/EHLO argument: a domain or an address literal, printable ASCII. */
enum smtp_parse_error smtp_parse_helo(const char *arg, size_t len);

/* Content flags, for DATA and BDAT alike. */
enum smtp_content_flag {
    SMTP_BARE_LF = 1 << 0,
    SMTP_BARE_CR = 1 << 1,
    SMTP_NUL = 1 << 2,
};

/* DATA: dot-unstuffing and end detection. */
struct smtp_data {
    int state;
    unsigned flags;                 /* smtp_content_flag */
    uint64_t size;                  /* content bytes produced so far */
    int done;                       /* <CRLF>.<CRLF> consumed */
};

void smtp_data_init(struct smtp_data *d);
/*
 * Consume input up to and including the end of data (bytes after it are
 * left for the command reader).  Content goes to out, which must hold
 * len + 2 bytes; *outlen says how much.  Returns the input bytes consumed.
 */
size_t smtp_data_feed(struct smtp_data *d, const char *in, size_t len, char *out,
                      size_t *outlen);

/* BDAT chunks: the same content rules over raw bytes. */
struct smtp_content {
    int prev_cr;
    unsigned flags;
};
void smtp_content_init(struct smtp_content *c);
void smtp_content_feed(struct smtp_content *c, const char *in, size_t len);
/* At the end of the last chunk: a trailing CR is bare. */
void smtp_content_end(struct smtp_content *c);

#endif
