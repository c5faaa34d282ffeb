/*
 * fuzz_smtp_command.c - libFuzzer target for the SMTP command parsers.
 *
 * The input is one command line without its CRLF.  It goes through
 * smtp_parse_command() and, as the session would, the argument of MAIL,
 * RCPT, BDAT, HELO and EHLO through its parser.  Each parser also gets the
 * raw input directly, NUL bytes and all, so that its own checks are fuzzed
 * and not only what smtp_parse_command() lets through.  Arguments are copied
 * into buffers of their exact size so that ASan sees any read past them.
 * Beyond the sanitizers' findings the parsers' contracts are checked: a
 * parsed path is a terminated string of its length without controls, 8-bit
 * addresses need SMTPUTF8 on MAIL, results are in their enums.
 *
 *	cmake -DMAILCORE_FUZZ=ON -DMAILCORE_ASAN=OFF -DCMAKE_C_COMPILER=clang -S . -B build-fuzz
 *	build-fuzz/fuzz/fuzz_smtp_command t/fuzz/corpus/smtp_command
 */
#include "mailcore/smtp_parse.h"

#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static void check_result(enum smtp_parse_error r)
{
    if ((unsigned)r > SMTP_PARSE_TOO_LONG)
        abort();
}

static void check_path(const struct smtp_path *p)
{
    int eight = 0;

    if (p->len > SMTP_PATH_MAX - 2 || p->addr[p->len] != '\0' || strlen(p->addr) != p->len)
        abort(); /* bounded, terminated, no NUL inside */
    for (size_t i = 0; i < p->len; i++) {
        unsigned char ch = (unsigned char)p->addr[i];
        if (ch < 0x20 || ch == 0x7f)
            abort(); /* no control character ever reaches an address */
        if (ch == ' ' && !p->quoted)
            abort();
        if (ch >= 0x80)
            eight = 1;
    }
    if (eight != !!p->utf8)
        abort();
    if (p->len > 0 && p->addr[0] == '@')
        abort(); /* a source route is dropped */
}

static void check_mail(const char *arg, size_t len)
{
    struct smtp_path path;
    struct smtp_mail_params params;
    enum smtp_parse_error r = smtp_parse_mail(arg, len, &path, &params);

    check_result(r);
    if (r != SMTP_PARSE_OK)
        return;
    check_path(&path);
    if (path.utf8 && !params.smtputf8)
        abort();
    if (params.body != SMTP_BODY_7BIT && params.body != SMTP_BODY_8BITMIME)
        abort();
}

static void check_rcpt(const char *arg, size_t len)
{
    struct smtp_path path;
    enum smtp_parse_error r = smtp_parse_rcpt(arg, len, &path);

    check_result(r);
    if (r != SMTP_PARSE_OK)
        return;
    check_path(&path);
    if (path.len == 0)
        abort(); /* RCPT TO:<> is never valid */
    if (memchr(path.addr, '@', path.len) == NULL && strcasecmp(path.addr, "postmaster") != 0)
        abort(); /* only <Postmaster> may go without a domain */
}

static void check_bdat(const char *arg, size_t len)
{
    uint64_t n;
    int last = -1;
    enum smtp_parse_error r = smtp_parse_bdat(arg, len, &n, &last);

    check_result(r);
    if (r == SMTP_PARSE_OK && last != 0 && last != 1)
        abort();
}

static void check_helo(const char *arg, size_t len)
{
    enum smtp_parse_error r = smtp_parse_helo(arg, len);

    check_result(r);
    if (r != SMTP_PARSE_OK)
        return;
    if (len == 0 || len > SMTP_DOMAIN_MAX)
        abort();
    for (size_t i = 0; i < len; i++)
        if ((unsigned char)arg[i] <= 0x20 || (unsigned char)arg[i] >= 0x7f)
            abort();
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    const char *line = (const char *)data;
    struct smtp_cmd cmd;
    char *arg;

    if (smtp_parse_command(line, size, &cmd) == 0) {
        if (cmd.arg == NULL || cmd.arglen > size ||
            (cmd.arglen > 0 && (cmd.arg < line || cmd.arg + cmd.arglen > line + size)))
            abort();
        if (smtp_verb_name(cmd.verb) == NULL)
            abort();
        for (size_t i = 0; i < size; i++)
            if (data[i] == 0 || (data[i] < 0x20 && data[i] != '\t') || data[i] == 0x7f)
                abort(); /* a line with a control character was accepted */
        if ((arg = malloc(cmd.arglen ? cmd.arglen : 1)) == NULL)
            abort();
        memcpy(arg, cmd.arg, cmd.arglen);
        switch (cmd.verb) {
        case SMTP_MAIL:
            check_mail(arg, cmd.arglen);
            break;
        case SMTP_RCPT:
            check_rcpt(arg, cmd.arglen);
            break;
        case SMTP_BDAT:
            check_bdat(arg, cmd.arglen);
            break;
        case SMTP_HELO:
        case SMTP_EHLO:
            check_helo(arg, cmd.arglen);
            break;
        default:
            break;
        }
        free(arg);
    }
    check_mail(line, size);
    check_rcpt(line, size);
    check_bdat(line, size);
    check_helo(line, size);
    return 0;
}
