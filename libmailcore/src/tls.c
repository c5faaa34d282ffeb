/*
 * tls.c - OpenSSL contexts for our listeners and for the relay client.
 * See tls.h.
 *
 * Both sides: TLS 1.2 at least, no compression, no renegotiation, and a
 * peer that closes without close_notify is an ordinary end of input (mail
 * protocols have their own end markers).  Files are opened once by us
 * before OpenSSL sees them, so that a missing or unreadable file is
 * reported with errno's words rather than OpenSSL's "system lib".
 */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

#include <openssl/err.h>
#include <openssl/ssl.h>
#include <openssl/x509.h>

#include "mailcore/tls.h"

const char *tls_error_text(char *buf, size_t len)
{
    const char *reason = NULL, *data = NULL;
    int flags = 0;
    /* The first error is the cause; later ones are callers giving up. */
    unsigned long e = ERR_peek_error_data(&data, &flags);

    if (len == 0 || e == 0) {
        ERR_clear_error();
        if (len > 0)
            snprintf(buf, len, "unknown TLS error");
        return buf;
    }
#ifdef ERR_SYSTEM_ERROR
    if (ERR_SYSTEM_ERROR(e))
        reason = strerror((int)ERR_GET_REASON(e));
#endif
    if (reason == NULL) {
        reason = ERR_reason_error_string(e);
        /* e.g. "unsupported (No supported data to decode. Input type: PEM)" */
        if (!(flags & ERR_TXT_STRING) || data == NULL)
            data = "";
    } else {
        data = ""; /* "calling fopen(...)": the caller names the file */
    }
    if (reason != NULL)
        snprintf(buf, len, "%s%s%s%s", reason, data[0] ? " (" : "", data, data[0] ? ")" : "");
    else
        ERR_error_string_n(e, buf, len);
    ERR_clear_error();
    return buf;
}

/* 0 if path can be opened for reading, else -1 with "KEY PATH: reason". */
static int check_file(const char *key, const char *path, char *err, size_t errlen)
{
    int fd;

    if (path == NULL || path[0] == '\0') {
        snprintf(err, errlen, "%s: not set", key);
        return -1;
    }
    fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0) {
        snprintf(err, errlen, "%s %s: %s", key, path, strerror(errno));
        return -1;
    }
    /* Read-only, nothing written: a failed close loses nothing. */
    (void)close(fd);
    return 0;
}

static SSL_CTX *new_ctx(const SSL_METHOD *method, char *err, size_t errlen)
{
    char why[200];
    SSL_CTX *ctx;

    ERR_clear_error();
    ctx = SSL_CTX_new(method);
    if (ctx == NULL) {
        snprintf(err, errlen, "TLS: %s", tls_error_text(why, sizeof why));
        return NULL;
    }
    if (SSL_CTX_set_min_proto_version(ctx, TLS1_2_VERSION) != 1) {
        snprintf(err, errlen, "TLS: %s", tls_error_text(why, sizeof why));
        SSL_CTX_free(ctx);
        return NULL;
    }
    SSL_CTX_set_options(ctx, SSL_OP_NO_COMPRESSION | SSL_OP_NO_RENEGOTIATION);
#ifdef SSL_OP_IGNORE_UNEXPECTED_EOF
    SSL_CTX_set_options(ctx, SSL_OP_IGNORE_UNEXPECTED_EOF);
#endif
    SSL_CTX_set_mode(ctx, SSL_MODE_RELEASE_BUFFERS);
    return ctx;
}

static int key_mismatch(unsigned long e)
{
    return ERR_GET_LIB(e) == ERR_LIB_X509 && (ERR_GET_REASON(e) == X509_R_KEY_VALUES_MISMATCH ||
                                              ERR_GET_REASON(e) == X509_R_KEY_TYPE_MISMATCH);
}

SSL_CTX *tls_server_ctx(const char *cert_file, const char *key_file, char *err, size_t errlen)
{
    static const unsigned char sid_ctx[] = "mailcore";
    char why[200];
    SSL_CTX *ctx;

    if (check_file("tls_cert_file", cert_file, err, errlen) < 0 ||
        check_file("tls_key_file", key_file, err, errlen) < 0)
        return NULL;
    ctx = new_ctx(TLS_server_method(), err, errlen);
    if (ctx == NULL)
        return NULL;
    SSL_CTX_set_options(ctx, SSL_OP_CIPHER_SERVER_PREFERENCE);
    SSL_CTX_set_session_id_context(ctx, sid_ctx, sizeof sid_ctx - 1);
    ERR_clear_error();
    if (SSL_CTX_use_certificate_chain_file(ctx, cert_file) != 1) {
        snprintf(err, errlen, "tls_cert_file %s: %s", cert_file, tls_error_text(why, sizeof why));
        goto fail;
    }
    /* OpenSSL checks the key against the certificate here already. */
    if (SSL_CTX_use_PrivateKey_file(ctx, key_file, SSL_FILETYPE_PEM) != 1) {
        int mismatch = key_mismatch(ERR_peek_error());

        tls_error_text(why, sizeof why);
        if (mismatch)
            snprintf(err, errlen, "tls_key_file %s: does not match tls_cert_file %s: %s", key_file,
                     cert_file, why);
        else
            snprintf(err, errlen, "tls_key_file %s: %s", key_file, why);
        goto fail;
    }
    if (SSL_CTX_check_private_key(ctx) != 1) {
        snprintf(err, errlen, "tls_key_file %s: does not match tls_cert_file %s: %s", key_file,
                 cert_file, tls_error_text(why, sizeof why));
        goto fail;
    }
    return ctx;
fail:
    SSL_CTX_free(ctx);
    return NULL;
}

SSL_CTX *tls_client_ctx(const char *ca_file, int verify, char *err, size_t errlen)
{
    char why[200];
    SSL_CTX *ctx;

    if (ca_file != NULL && ca_file[0] != '\0' &&
        check_file("relay_ca_file", ca_file, err, errlen) < 0)
        return NULL;
    ctx = new_ctx(TLS_client_method(), err, errlen);
    if (ctx == NULL)
        return NULL;
    /* Trust anchors are loaded even without verification, so that
     * SSL_get_verify_result() can still say what a check would have found. */
    ERR_clear_error();
    if (ca_file != NULL && ca_file[0] != '\0') {
        if (SSL_CTX_load_verify_locations(ctx, ca_file, NULL) != 1) {
            snprintf(err, errlen, "relay_ca_file %s: %s", ca_file, tls_error_text(why, sizeof why));
            SSL_CTX_free(ctx);
            return NULL;
        }
    } else if (SSL_CTX_set_default_verify_paths(ctx) != 1) {
        snprintf(err, errlen, "system trust store: %s", tls_error_text(why, sizeof why));
        SSL_CTX_free(ctx);
        return NULL;
    }
    SSL_CTX_set_verify(ctx, verify ? SSL_VERIFY_PEER : SSL_VERIFY_NONE, NULL);
    return ctx;
}
