/*
 * tls - OpenSSL contexts for our listeners and for the relay client.
 *
 * Server contexts load the certificate chain and key once (as root, before
 * privileges are dropped).  Client contexts verify the peer's chain against
 * a CA file or the system store and, with conn_starttls_client(), its host
 * name.  Errors carry OpenSSL's reason text.
 */
#ifndef MAILCORE_TLS_H
#define MAILCORE_TLS_H

#include <stddef.h>
#include <openssl/ssl.h>

/* TLS 1.2 or later.  NULL with err "tls_cert_file FILE: reason" (or
 * tls_key_file; also when the key does not match the certificate). */
SSL_CTX *tls_server_ctx(const char *cert_file, const char *key_file, char *err, size_t errlen);

/* ca_file NULL or "": the system trust store.  verify 0: no verification
 * (the trust anchors are still loaded, so that SSL_get_verify_result()
 * tells what a check would have found).  NULL with err
 * "relay_ca_file FILE: reason" on failure. */
SSL_CTX *tls_client_ctx(const char *ca_file, int verify, char *err, size_t errlen);

/* The reason of the OpenSSL error queue's first (root-cause) entry, e.g.
 * "no start line"; the queue is cleared. */
const char *tls_error_text(char *buf, size_t len);

#endif
