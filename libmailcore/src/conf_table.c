/*
 * conf_table.c - every configuration key mailcore knows: the one source of
 * truth for the parser, `mailctl config`, `mailctl check` and the README's
 * table (`mailctl config --doc` prints it; a test keeps README in step).
 *
 * Keys are in the order an administrator reads them: listeners, TLS, paths
 * and accounts, mail policy, the external relay, then tuning.
 */
#include "mailcore/conf.h"

#define KIB 1024ull
#define MIB (1024ull * 1024)
#define GIB (1024ull * 1024 * 1024)
#define DAY (24ull * 3600)

const struct conf_key conf_keys[] = {
    {"listen_address", CONF_LIST, "0.0.0.0 ::", 0, 0, 0,
     "addresses the listeners bind (:: is skipped where IPv6 is not available)"},
    {"smtpd_port", CONF_PORT, "25", 0, 0, 0, "inbound SMTP; 0 disables"},
    {"submission_port", CONF_PORT, "2501", 0, 0, 0,
     "submission, plain with STARTTLS (seed: Port); 0 disables"},
    {"submission_ssl_port", CONF_PORT, "465", 0, 0, 0,
     "submission, implicit TLS (seed: SSLPort); 0 disables"},
    {"imap_port", CONF_PORT, "143", 0, 0, 0, "IMAP with STARTTLS; 0 disables"},
    {"imaps_port", CONF_PORT, "993", 0, 0, 0, "IMAP, implicit TLS; 0 disables"},
    {"tls_cert_file", CONF_PATH, "", CONF_FILE_MUST_EXIST, 0, 0,
     "PEM certificate chain for our listeners; TLS ports need it"},
    {"tls_key_file", CONF_PATH, "", CONF_FILE_MUST_EXIST, 0, 0,
     "PEM private key for tls_cert_file; may be readable by root only"},
    {"data_directory", CONF_PATH, "/var/lib/mailcore", 0, 0, 0,
     "the LMDB environment and the message store"},
    {"queue_directory", CONF_PATH, "/var/spool/mailcore", 0, 0, 0, "the outbound queue"},
    {"run_directory", CONF_PATH, "/run/mailcore", 0, 0, 0, "Unix sockets and the pid file"},
    {"daemon_directory", CONF_PATH, "/usr/libexec/mailcore", 0, 0, 0,
     "where master finds smtpd, submitd, imapd and relayq"},
    {"myhostname", CONF_STR, "", 0, 0, 0,
     "our host name in greetings and Received: headers; empty: the host's name"},
    {"mail_creator", CONF_STR, "mailcore", 0, 0, 0,
     "the system account that owns the store and runs the daemons (seed: MailCreator)"},
    {"email_domain", CONF_STR, "", 0, 0, 0,
     "default domain for new users; empty: the host's domain, localdomain when its name has "
     "no dot (seed: EmailDomain)"},
    {"relay_acl", CONF_STR, "published", 0, 0, 0,
     "who may send through submitd: published (every user) or a group name (seed: RelayAcl)"},
    {"allowed_attachment_types", CONF_LIST, "*", 0, 0, 0,
     "MIME types allowed as attachments, wildcards allowed (seed: AllowedMailAttachmentObjects)"},
    {"message_size_limit", CONF_SIZE, "52428800", 0, 1 * KIB, 4 * GIB,
     "largest message in bytes; advertised as SIZE, larger mail gets 552 5.3.4"},
    {"user_quota", CONF_SIZE, "0", 0, 0, 0,
     "default storage limit per user (sum of all mailboxes; 0: unlimited); "
     "mailctl user quota sets one user's own"},
    {"mailserver_host", CONF_STR, "", 0, 0, 0,
     "the external relay (seed: MailserverHostaddress); empty: remote mail stays queued"},
    {"mailserver_port", CONF_PORT, "25", 0, 0, 0, "the relay's port (seed: MailserverPort)"},
    {"mailserver_user", CONF_STR, "", 0, 0, 0,
     "user name for AUTH at the relay; empty: no AUTH (seed: MailserverUser)"},
    {"mailserver_password", CONF_STR, "", CONF_SECRET, 0, 0,
     "password for AUTH at the relay (seed: MailserverPassword)"},
    {"mailserver_password_file", CONF_PATH, "", CONF_FILE_MUST_EXIST, 0, 0,
     "file holding the relay password instead of mailserver_password"},
    {"disable_starttls", CONF_BOOL, "no", 0, 0, 0,
     "never use STARTTLS towards the relay (seed: DisableSTARTTLS)"},
    {"force_ssl", CONF_BOOL, "no", 0, 0, 0,
     "connect to the relay with implicit TLS (seed: ForceSSL)"},
    {"relay_ca_file", CONF_PATH, "", CONF_FILE_MUST_EXIST, 0, 0,
     "CA bundle that verifies the relay's certificate; empty: the system trust store"},
    {"max_queue_lifetime", CONF_DURATION, "5d", 0, 1, 365 * DAY,
     "after this a message that could not be relayed is bounced to its sender"},
    {"imap_allow_plaintext_auth", CONF_BOOL, "no", 0, 0, 0,
     "allow IMAP passwords before TLS (loopback is always allowed)"},
    {"submission_allow_plaintext_auth", CONF_BOOL, "no", 0, 0, 0,
     "allow submission passwords before TLS (loopback is always allowed)"},
    {"smtpd_recipient_limit", CONF_UINT, "1000", 0, 1, 100000,
     "recipients per message (smtpd, submitd); more get 452 4.5.3"},
    {"smtpd_hard_error_limit", CONF_UINT, "20", 0, 1, 1000,
     "error replies in one SMTP session before it is closed with 421"},
    {"smtpd_junk_command_limit", CONF_UINT, "100", 0, 1, 100000,
     "NOOP, RSET, VRFY, HELP in one SMTP session before each counts as an error"},
    {"smtpd_timeout", CONF_DURATION, "300s", 0, 1, 3600,
     "how long an SMTP client may stay silent (RFC 5321: 5 minutes)"},
    {"smtpd_session_timeout", CONF_DURATION, "1h", 0, 10, 86400,
     "longest SMTP session, however busy"},
    {"smtpd_client_connection_limit", CONF_UINT, "50", 0, 1, 100000,
     "concurrent SMTP connections from one client address"},
    {"smtpd_connection_limit", CONF_UINT, "1000", 0, 1, 1000000,
     "concurrent SMTP connections in total, per service"},
    {"imap_client_connection_limit", CONF_UINT, "1000", 0, 1, 1000000,
     "concurrent IMAP connections from one client address"},
    {"imap_user_connection_limit", CONF_UINT, "50", 0, 1, 100000,
     "concurrent IMAP connections of one user from one address (Dovecot: 10)"},
    {"worker_processes", CONF_UINT, "0", 0, 0, 64,
     "processes per network service; 0: one per CPU core"},
    {"shutdown_timeout", CONF_DURATION, "10s", 0, 1, 3600,
     "on stop, how long sessions may finish before their daemons are killed; on reload, "
     "how long the old daemons serve their open sessions"},
};

const size_t conf_nkeys = sizeof conf_keys / sizeof conf_keys[0];
