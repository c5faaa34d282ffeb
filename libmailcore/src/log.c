/*
 * log.c - Postfix-style log lines on stderr.  See log.h.
 */
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/time.h>
#include <time.h>
#include <unistd.h>

#include "mailcore/log.h"

static char progname[64] = "mailcore";
static char hostname[128];
static int journald;
static int verbose;

void log_init(const char *name)
{
    char *dot;

    snprintf(progname, sizeof progname, "%s", name);
    journald = getenv("JOURNAL_STREAM") != NULL;
    if (gethostname(hostname, sizeof hostname) < 0)
        snprintf(hostname, sizeof hostname, "localhost");
    hostname[sizeof hostname - 1] = '\0';
    if ((dot = strchr(hostname, '.')) != NULL)
        *dot = '\0';
}

const char *log_progname(void)
{
    return progname;
}

void log_set_verbose(int on)
{
    verbose = on;
}

static void vlog(const char *severity, const char *fmt, va_list ap)
{
    char line[LOG_LINE_MAX];
    size_t n = 0;
    int r;

    if (!journald) {
        time_t now = time(NULL);
        struct tm tm;
        localtime_r(&now, &tm);
        n = strftime(line, sizeof line, "%b %e %H:%M:%S ", &tm);
        r = snprintf(line + n, sizeof line - n, "%s ", hostname[0] ? hostname : "localhost");
        if (r > 0)
            n += (size_t)r;
    }
    r = snprintf(line + n, sizeof line - n, "mailcore/%s[%ld]: %s", progname, (long)getpid(),
                 severity);
    if (r > 0)
        n += (size_t)r;
    if (n < sizeof line) {
        r = vsnprintf(line + n, sizeof line - n, fmt, ap);
        if (r > 0)
            n += (size_t)r;
    }
    if (n > sizeof line - 2)
        n = sizeof line - 2;   /* truncated: still one line */
    line[n++] = '\n';
    /* One write so that lines of several processes never interleave. */
    if (write(STDERR_FILENO, line, n) < 0) {
        /* Nowhere left to report it. */
    }
}

void log_info(const char *fmt, ...)
{
    va_list ap;

    va_start(ap, fmt);
    vlog("", fmt, ap);
    va_end(ap);
}

void log_debug(const char *fmt, ...)
{
    va_list ap;

    if (!verbose)
        return;
    va_start(ap, fmt);
    vlog("", fmt, ap);
    va_end(ap);
}

void log_warn(const char *fmt, ...)
{
    va_list ap;

    va_start(ap, fmt);
    vlog("warning: ", fmt, ap);
    va_end(ap);
}

void log_error(const char *fmt, ...)
{
    va_list ap;

    va_start(ap, fmt);
    vlog("error: ", fmt, ap);
    va_end(ap);
}

void log_fatal(const char *fmt, ...)
{
    va_list ap;

    va_start(ap, fmt);
    vlog("fatal: ", fmt, ap);
    va_end(ap);
    exit(1);
}

void log_queue_id(char out[LOG_QUEUE_ID_LEN + 1])
{
    static unsigned counter;
    struct timeval tv;
    uint64_t v;

    /* 20 bits of microseconds, 16 bits of seconds, pid and a counter mixed
     * in: unique across processes for all practical purposes, and short. */
    gettimeofday(&tv, NULL);
    v = ((uint64_t)(tv.tv_sec & 0xffff) << 32) | ((uint64_t)tv.tv_usec << 12);
    v ^= (uint64_t)getpid() * 0x9E3779B1u;
    v += (uint64_t)(counter++ & 0xfff);
    snprintf(out, LOG_QUEUE_ID_LEN + 1, "%012llX",
             (unsigned long long)(v & 0xFFFFFFFFFFFFull));
}

void log_sanitize(char *out, size_t outlen, const char *in, size_t n)
{
    size_t o = 0;

    if (outlen == 0)
        return;
    for (size_t i = 0; i < n; i++) {
        unsigned char ch = (unsigned char)in[i];
        if (ch >= 0x20 && ch < 0x7f && ch != '\\') {
            if (o + 1 >= outlen)
                break;
            out[o++] = (char)ch;
        } else {
            if (o + 4 >= outlen)
                break;
            snprintf(out + o, outlen - o, "\\%03o", ch);
            o += 4;
        }
    }
    out[o] = '\0';
}
