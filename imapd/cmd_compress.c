/*
 * cmd_compress.c - COMPRESS DEFLATE (RFC 4978): from the tagged OK on, both
 * directions of the session are raw DEFLATE streams (conn_compress() does
 * the work below the session, which sees plain IMAP as before).
 *
 * Only in the authenticated and selected states (RFC 4978 adds COMPRESS to
 * command-auth): credentials never go through the compressor, so the
 * CRIME-style attack on compression under TLS (guessing a secret from the
 * compressed length of attacker-chosen text sent beside it) cannot aim at
 * the password.  Mail an attacker sends to the user is compressed in the
 * same stream as other mail, as with every COMPRESS server; a client that
 * minds uses no COMPRESS.
 */
#include <strings.h>

#include "imapd.h"
#include "mailcore/conn.h"

void cmd_compress(struct imap_session *s, int uid, const struct imap_arg *args, size_t nargs)
{
    (void)uid;
    if (nargs != 1 || args[0].type != IMAP_ARG_ATOM) {
        imap_tagged(s, "BAD", "COMPRESS needs one mechanism");
    } else if (strcasecmp(args[0].s, "DEFLATE") != 0) {
        imap_tagged(s, "BAD", "Unknown compression mechanism");
    } else if (conn_compressed(s->conn)) {
        imap_tagged(s, "NO", "[COMPRESSIONACTIVE] DEFLATE is active already");
    } else {
        imap_tagged(s, "OK", "DEFLATE active");
        if (conn_compress(s->conn, CONN_COMPRESS_IN | CONN_COMPRESS_OUT) < 0) {
            log_warn("COMPRESS for unknown[%s]: %s", s->addr, conn_error(s->conn));
            imap_session_close(s, NULL);
            return;
        }
    }
    imap_command_done(s);
}
