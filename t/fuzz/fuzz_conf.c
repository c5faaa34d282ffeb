/*
 * fuzz_conf.c - libFuzzer target for the configuration parser.
 *
 * Feeds arbitrary bytes (NUL bytes, overlong lines, broken continuations)
 * to conf_load_buf().  Beyond the sanitizers' findings it checks the
 * parser's contract: a failure always says why, and the error text is a
 * terminated string within its buffer.  A config that loads is printed
 * too, so the printer sees every value the parser can produce.
 *
 *	cmake -DMAILCORE_FUZZ=ON -DCMAKE_C_COMPILER=clang -S . -B build-fuzz
 *	build-fuzz/fuzz/fuzz_conf t/fuzz/corpus/conf
 */
#include "mailcore/conf.h"

#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static FILE *devnull;

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    char err[512];
    struct conf *c;
    int rc;

    if (devnull == NULL && (devnull = fopen("/dev/null", "w")) == NULL)
        abort();
    if ((c = conf_new()) == NULL)
        abort();
    err[0] = '\0';
    memset(err + 1, 'X', sizeof err - 1);
    rc = conf_load_buf(c, "fuzz", (const char *)data, size, err, sizeof err);
    if (rc < 0 && (err[0] == '\0' || memchr(err, '\0', sizeof err) == NULL))
        abort(); /* a failure must come with a reason */
    if (rc == 0 && conf_print(c, devnull, 0, NULL, err, sizeof err) < 0)
        abort(); /* what parsed must print */
    conf_free(c);
    return 0;
}
