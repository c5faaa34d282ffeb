/*
 * smtp_client - the blocking SMTP client that talks to the relay
 * (mailserver_host:mailserver_port): relayq's delivery workers use it, one
 * session for several messages, and `mailctl relay test` shows what it
 * learns.  No event loop: each step blocks, bounded by a timeout.
 *
 *	struct smtp_client_error err, rerr[2];
 *	struct smtp_client *c = smtp_client_open(&cfg, &err);
 *	if (c == NULL)                      defer the messages: err.text
 *	smtp_client_send(c, sender, rcpts, 2, fd, size, rerr, &err);  ... again
 *	smtp_client_close(c);
 *
 * Session (smtp_client_open): connect to each address of the host in
 * getaddrinfo()'s order (IPv4 and IPv6) until one answers, the greeting,
 * EHLO (HELO when EHLO is refused), STARTTLS when offered unless
 * disable_starttls, EHLO again, AUTH PLAIN (else LOGIN) when cfg.user is set.
 * implicit_tls (force_ssl) starts TLS before the greeting instead.
 *
 * TLS policy (SPEC 5): the peer's chain is verified against ca_file or the
 * system store and its name against cfg.host (DNS name, or IP address for
 * an address literal); any failure ends the session: the client never goes
 * on in clear after a refused or failed STARTTLS.  Credentials are sent only
 * over TLS, unless disable_starttls (the administrator's choice for a trusted
 * network).  Input the relay sent after its STARTTLS reply, before the
 * handshake, is discarded unread (response injection).
 *
 * Status: TEMP for 4xx replies, connection, timeout and TLS failures, and
 * for every failure while setting up the session, even a 5xx to the
 * greeting, EHLO or AUTH: those say nothing about a message, and bouncing
 * the queue for a wrong password would lose mail that fixing the
 * configuration delivers (err.code still holds the 5xx).  PERM for 5xx to
 * MAIL, RCPT, DATA and the final dot, and for a message the relay cannot
 * take (its SIZE limit, no 8BITMIME for an 8-bit message, no SMTPUTF8 for an
 * 8-bit address).
 *
 * Timeouts: timeout_ms bounds each step: connecting to one address, the TLS
 * handshake, reading one whole reply (all its lines), writing one chunk.  The
 * reply to the final dot has data_timeout_ms (RFC 5321 4.5.3.2.6 asks for
 * 10 minutes: a relay that scans the message must not make us send it
 * twice).  getaddrinfo() has the resolver's own timeouts.
 *
 * Bounds: a reply line is at most SMTP_CLIENT_LINE_MAX bytes with its CRLF,
 * a reply at most SMTP_CLIENT_REPLY_LINES lines; more ends the session with
 * a protocol error.  The message is streamed: 16 KiB preads from fd, writes
 * of at most 64 KiB; nothing grows with the message or the recipient list.
 *
 * SIGPIPE is never raised: plain writes use send(MSG_NOSIGNAL), and TLS
 * runs over our own socket BIO that does the same, so the process need not
 * ignore SIGPIPE (relayq and mailctl may still do so).
 *
 * Transcript: cfg.trace sees every line sent ("->") and received ("<-"),
 * received text sanitised, and events ("**": connecting, TLS established,
 * message size).  It never sees a secret: AUTH PLAIN is shown as "AUTH
 * PLAIN (credentials hidden)", AUTH LOGIN's answers as "(credentials
 * hidden)"; the message body is not traced.
 */
#ifndef MAILCORE_SMTP_CLIENT_H
#define MAILCORE_SMTP_CLIENT_H

#include <stddef.h>

#define SMTP_CLIENT_LINE_MAX 4096   /* reply line, CRLF included */
#define SMTP_CLIENT_REPLY_LINES 100 /* lines in one reply */
#define SMTP_CLIENT_ADDR_MAX 254    /* an address without its <> (RFC 5321 path: 256) */
#define SMTP_CLIENT_CRED_MAX 255    /* user name, password */

struct smtp_client_cfg {
    const char *host;            /* mailserver_host: name or address literal */
    int port;                    /* mailserver_port */
    int implicit_tls;            /* force_ssl: TLS from the first byte */
    int disable_starttls;        /* never STARTTLS (and then AUTH may go in clear) */
    const char *ca_file;         /* relay_ca_file; NULL or "": the system store */
    const char *user, *password; /* AUTH when user is non-empty */
    const char *helo;            /* our name for EHLO; NULL or "": gethostname() */
    unsigned timeout_ms;         /* per step (see above); 0: 30000 */
    unsigned data_timeout_ms;    /* for the reply to the final dot; 0: 600000 */
    /* The transcript (see above); line is a C string without CRLF.  NULL: none. */
    void (*trace)(void *arg, const char *dir, const char *line);
    void *trace_arg;
};

enum smtp_client_status {
    SMTP_CLIENT_OK,
    SMTP_CLIENT_TEMP, /* retry later */
    SMTP_CLIENT_PERM, /* bounce */
};

/* Where a failure happened (for "in reply to" and for a diagnosis). */
enum smtp_client_step {
    SMTP_CLIENT_STEP_CONNECT, /* resolving, connecting */
    SMTP_CLIENT_STEP_GREETING,
    SMTP_CLIENT_STEP_EHLO,     /* EHLO or HELO */
    SMTP_CLIENT_STEP_STARTTLS, /* the command */
    SMTP_CLIENT_STEP_TLS,      /* the handshake and verification */
    SMTP_CLIENT_STEP_AUTH,
    SMTP_CLIENT_STEP_MAIL, /* also the checks before MAIL FROM */
    SMTP_CLIENT_STEP_RCPT,
    SMTP_CLIENT_STEP_DATA, /* the DATA command and the message */
    SMTP_CLIENT_STEP_DOT,  /* the reply to the final dot */
    SMTP_CLIENT_STEP_RSET,
    SMTP_CLIENT_STEP_QUIT,
};

struct smtp_client_error {
    enum smtp_client_status status;
    enum smtp_client_step step;
    int code;            /* the relay's reply code; 0 when it did not answer */
    char enhanced[16];   /* RFC 3463: the relay's, else derived from the code
                            ("4.0.0"), else ours ("4.4.1" connect, "4.4.2"
                            lost connection or timeout, "4.7.5" TLS, "5.3.4"
                            too big, "5.6.3" no 8BITMIME, "5.6.7" no SMTPUTF8) */
    char reply[512];     /* the relay's reply, lines joined with " ", sanitised
                            (a DSN's Diagnostic-Code); "" when there was none */
    char text[512];      /* the reason, for a person: "relay h[a]:25 said: 550
                            5.1.1 <x@y>: user unknown (in reply to RCPT TO)",
                            "TLS certificate verification failed: unable to get
                            local issuer certificate (h:25)", ... */
    const char *setting; /* the setting most likely to fix it, e.g.
                            "relay_ca_file", or NULL (a static string) */
};

struct smtp_client;

/*
 * Set up a session (see above).  NULL with *err filled (status TEMP) when
 * that failed; the session is then closed.
 */
struct smtp_client *smtp_client_open(const struct smtp_client_cfg *cfg,
                                     struct smtp_client_error *err);

/*
 * Like smtp_client_open(), but the session is returned also when setting it
 * up failed (NULL only when out of memory), with *err filled and
 * smtp_client_alive() 0, so that `mailctl relay test` can still show what
 * was learnt: the peer, the certificate chain that failed verification.
 * Returns with err->status OK on success.
 */
struct smtp_client *smtp_client_probe(const struct smtp_client_cfg *cfg,
                                      struct smtp_client_error *err);

/*
 * Relay one message: the bytes of fd from offset 0, size bytes (pread, so
 * the file offset is left alone), to the n recipients rcpts, from sender
 * ("" for the null sender <>).  Bare LF and bare CR become CRLF, lines that
 * start with "." are doubled, an unterminated last line is ended.
 *
 * MAIL FROM carries SIZE= (the size as sent) when the relay offers SIZE,
 * BODY=8BITMIME when the message has 8-bit bytes, SMTPUTF8 when an address
 * has.  With PIPELINING, MAIL, the RCPTs and DATA leave in one write (at
 * most 100 commands at a time).
 *
 * rcpt_err[i] (n of them) tells each recipient's fate: status OK means the
 * relay took the message for it (code and text then are the final reply);
 * otherwise why not: its RCPT reply, or the failure of the transaction
 * (MAIL, DATA, the final dot, the connection) that it shared.  *err is the
 * overall result.  Returns 0 when the relay accepted the message for at
 * least one recipient (those with status OK), -1 otherwise.
 *
 * After a failed transaction the session is reset (RSET) and stays usable
 * while the connection lives; smtp_client_alive() says whether it does.
 */
int smtp_client_send(struct smtp_client *c, const char *sender, const char *const *rcpts, size_t n,
                     int fd, size_t size, struct smtp_client_error *rcpt_err,
                     struct smtp_client_error *err);

/* QUIT (best effort, without waiting long), close, free; wipes the password.
 * NULL is fine. */
void smtp_client_close(struct smtp_client *c);

/* 1 while the session can carry another message. */
int smtp_client_alive(const struct smtp_client *c);

/* What the session learnt, for mailctl relay test. */
const char *smtp_client_peer(const struct smtp_client *c); /* "host[addr]:port", "" before */
int smtp_client_tls(const struct smtp_client *c);          /* 1 when encrypted */
/* "TLSv1.3 with cipher TLS_AES_256_GCM_SHA384 (256/256 bits)", "" without TLS. */
const char *smtp_client_tls_summary(const struct smtp_client *c);
/* The certificate chain, one call per certificate, leaf first:
 * "depth 0: subject=CN=relay.example.com issuer=C=US, O=Let's Encrypt, CN=R3
 * notAfter=2025-03-01 12:00:00Z".  The verified chain (up to the trust
 * anchor) when verification succeeded, else the chain the relay sent.
 * Nothing without a handshake. */
void smtp_client_chain(const struct smtp_client *c, void (*cb)(void *arg, const char *line),
                       void *arg);
/* "ok", OpenSSL's reason ("unable to get local issuer certificate",
 * "hostname mismatch"), or "" when no handshake was attempted. */
const char *smtp_client_verify_result(const struct smtp_client *c);
/* "PLAIN" or "LOGIN" once AUTH succeeded, else NULL. */
const char *smtp_client_auth_mech(const struct smtp_client *c);

/* "MAIL FROM", "end of DATA", ... for messages. */
const char *smtp_client_step_name(enum smtp_client_step step);

#endif
