/*
 * fuzz_smtp_data.c - libFuzzer target for DATA framing (smtp_data_feed) and
 * the BDAT content rules (smtp_content_*).
 *
 * Input: byte 0 says how many chunk sizes follow ((byte0 & 7) + 1), each one
 * byte (0-255, cycled); the rest is what a client sends after DATA, possibly
 * several messages and commands back to back.  The stream is fed as a
 * session would (after the end of a message, the next one starts at the
 * first unconsumed byte) three ways: at once, in the chunks the input asks
 * for, and through a reference model written from RFC 5321 4.1.1.4 and the
 * header.  All three must agree on every message: output, bytes consumed,
 * end seen, flags.  Per call: output <= len + 2 (each call writes into a
 * heap buffer of exactly len + 2 bytes, so ASan sees more), consumed <= len,
 * everything consumed unless done, and nothing consumed once done.
 *
 *	cmake -DMAILCORE_FUZZ=ON -DMAILCORE_ASAN=OFF -DCMAKE_C_COMPILER=clang -S . -B build-fuzz
 *	build-fuzz/fuzz/fuzz_smtp_data t/fuzz/corpus/smtp_data
 */
#include "mailcore/smtp_parse.h"

#include <stdint.h>
#include <stdlib.h>
#include <string.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

/* What a stream produced: all output, and per message its end and flags. */
struct trace {
    char *out;
    size_t outlen;
    size_t nmsg;
    size_t *ends; /* offset after each message (or after the input) */
    unsigned *flags;
    int *done;
};

static void trace_init(struct trace *t, size_t len)
{
    t->out = malloc(len + 3);
    t->ends = malloc((len / 3 + 2) * sizeof *t->ends);
    t->flags = malloc((len / 3 + 2) * sizeof *t->flags);
    t->done = malloc((len / 3 + 2) * sizeof *t->done);
    if (!t->out || !t->ends || !t->flags || !t->done)
        abort();
    t->outlen = t->nmsg = 0;
}

static void trace_free(struct trace *t)
{
    free(t->out);
    free(t->ends);
    free(t->flags);
    free(t->done);
}

static int line_start(const char *in, size_t i)
{
    return i == 0 || (i >= 2 && in[i - 2] == '\r' && in[i - 1] == '\n');
}

/*
 * The model, one message: it ends after the first ".\r\n" that starts a line
 * (offset 0, or after CRLF); a '.' starting a line is dropped; a CR at the
 * end of the input is held back.  Returns the bytes consumed.
 */
static size_t model_message(const char *in, size_t len, struct trace *t)
{
    size_t end = len, content;
    unsigned flags = 0;
    int done = 0;

    for (size_t i = 0; i + 3 <= len; i++)
        if (in[i] == '.' && in[i + 1] == '\r' && in[i + 2] == '\n' && line_start(in, i)) {
            end = i + 3;
            done = 1;
            break;
        }
    content = done ? end - 3 : len;
    for (size_t i = 0; i < content; i++) {
        if (in[i] == '\n' && (i == 0 || in[i - 1] != '\r'))
            flags |= SMTP_BARE_LF;
        if (in[i] == '\r' && i + 1 < len && in[i + 1] != '\n')
            flags |= SMTP_BARE_CR;
        if (in[i] == '\0')
            flags |= SMTP_NUL;
        if (!(in[i] == '.' && line_start(in, i)))
            t->out[t->outlen++] = in[i];
    }
    if (!done && len > 0 && in[len - 1] == '\r')
        t->outlen--;
    t->flags[t->nmsg] = flags;
    t->done[t->nmsg] = done;
    return end;
}

/* One message through smtp_data_feed in the given chunk sizes (cycled). */
static size_t feed_message(const char *in, size_t len, const uint8_t *sizes, size_t nsizes,
                           struct trace *t)
{
    struct smtp_data d;
    size_t pos = 0, j = 0, start = t->outlen;

    smtp_data_init(&d);
    while (pos < len && !d.done) {
        size_t want = sizes ? sizes[j++ % nsizes] : len;
        size_t chunk = want < len - pos ? want : len - pos, outlen = (size_t)-1, used;
        char *out = malloc(chunk + 2);

        if (out == NULL)
            abort();
        used = smtp_data_feed(&d, in + pos, chunk, out, &outlen);
        if (outlen > chunk + 2 || used > chunk || (!d.done && used != chunk))
            abort();
        memcpy(t->out + t->outlen, out, outlen);
        t->outlen += outlen;
        pos += used;
        free(out);
    }
    if (d.done) {
        char out[3];
        size_t outlen = 99;

        if (smtp_data_feed(&d, pos < len ? in + pos : "x", 1, out, &outlen) != 0 || outlen != 0)
            abort(); /* nothing more once done */
    }
    if (d.size != t->outlen - start)
        abort();
    t->flags[t->nmsg] = d.flags;
    t->done[t->nmsg] = d.done;
    return pos;
}

/* The whole stream, message after message; model or feed. */
static void run(const char *in, size_t len, const uint8_t *sizes, size_t nsizes, int model,
                struct trace *t)
{
    size_t pos = 0;

    trace_init(t, len);
    do {
        size_t used = model ? model_message(in + pos, len - pos, t)
                            : feed_message(in + pos, len - pos, sizes, nsizes, t);
        pos += used;
        t->ends[t->nmsg] = pos;
        t->nmsg++;
        if (!t->done[t->nmsg - 1] || used == 0)
            break;
    } while (pos < len);
}

static void same(const struct trace *a, const struct trace *b)
{
    if (a->outlen != b->outlen || memcmp(a->out, b->out, a->outlen) != 0 || a->nmsg != b->nmsg ||
        memcmp(a->ends, b->ends, a->nmsg * sizeof *a->ends) != 0 ||
        memcmp(a->flags, b->flags, a->nmsg * sizeof *a->flags) != 0 ||
        memcmp(a->done, b->done, a->nmsg * sizeof *a->done) != 0)
        abort();
}

/* BDAT: the same flags whatever the chunking, and the model's. */
static void check_content(const char *in, size_t len, const uint8_t *sizes, size_t nsizes)
{
    struct smtp_content whole, chunked;
    unsigned flags = 0;
    size_t pos = 0, j = 0;

    smtp_content_init(&whole);
    smtp_content_feed(&whole, in, len);
    smtp_content_init(&chunked);
    while (pos < len) {
        size_t chunk = sizes[j++ % nsizes];
        if (chunk > len - pos)
            chunk = len - pos;
        smtp_content_feed(&chunked, in + pos, chunk);
        pos += chunk;
    }
    for (size_t i = 0; i < len; i++) {
        if (in[i] == '\n' && (i == 0 || in[i - 1] != '\r'))
            flags |= SMTP_BARE_LF;
        if (in[i] == '\r' && i + 1 < len && in[i + 1] != '\n')
            flags |= SMTP_BARE_CR;
        if (in[i] == '\0')
            flags |= SMTP_NUL;
    }
    if (whole.flags != flags || chunked.flags != flags)
        abort();
    smtp_content_end(&whole);
    smtp_content_end(&chunked);
    if (len > 0 && in[len - 1] == '\r')
        flags |= SMTP_BARE_CR;
    if (whole.flags != flags || chunked.flags != flags)
        abort();
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    struct trace model, whole, chunked;
    uint8_t sizes[8];
    size_t nsizes, nonzero = 0;
    const char *in;
    size_t len;

    if (size < 1)
        return 0;
    nsizes = (size_t)(data[0] & 7) + 1;
    if (size < 1 + nsizes)
        return 0;
    for (size_t i = 0; i < nsizes; i++)
        nonzero += (sizes[i] = data[1 + i]) != 0;
    if (nonzero == 0)
        sizes[0] = 1; /* all-empty chunks would never progress */
    in = (const char *)data + 1 + nsizes;
    len = size - 1 - nsizes;

    run(in, len, NULL, 0, 1, &model);
    run(in, len, NULL, 0, 0, &whole);
    run(in, len, sizes, nsizes, 0, &chunked);
    same(&model, &whole);
    same(&whole, &chunked);
    trace_free(&model);
    trace_free(&whole);
    trace_free(&chunked);
    check_content(in, len, sizes, nsizes);
    return 0;
}
