/*
 * msgfile.c - a message file's bytes for one use (a FETCH of one message,
 * a SEARCH test of one candidate).
 *
 * Most messages are small: for them read() into a buffer that the caller
 * keeps from message to message is much cheaper than mmap and munmap (no
 * page faults, no TLB shootdown, no allocation).  A large file is mmapped
 * so that it never sits in memory whole.  A caller that only needs the
 * header section asks for it, and reading stops at the blank line.
 */
#include <errno.h>
#include <fcntl.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include "imapd.h"
#include "mailcore/store.h"

#define MSGFILE_READ_MAX (256 * 1024)   /* larger files are mmapped */
#define MSGFILE_STEP 8192               /* header-only reads grow by this */

void msgfile_release(struct msgfile *f)
{
    if (f->map != NULL)
        munmap(f->map, f->maplen);
    f->map = NULL;
    f->maplen = 0;
    f->p = NULL;
    f->len = 0;
}

void msgfile_free(struct msgfile *f)
{
    msgfile_release(f);
    free(f->buf);
    f->buf = NULL;
    f->cap = 0;
}

static int grow(struct msgfile *f, size_t want)
{
    char *p;

    if (want <= f->cap)
        return 0;
    if ((p = realloc(f->buf, want)) == NULL)
        return -1;
    f->buf = p;
    f->cap = want;
    return 0;
}

/* Length of the header section including its empty line; 0 when the bytes
 * hold no empty line (yet). */
static size_t header_end(const char *p, size_t len)
{
    if (len >= 2 && memcmp(p, "\r\n", 2) == 0)
        return 2;
    if (len >= 1 && p[0] == '\n')
        return 1;
    for (const char *q = p, *end = p + len; (q = memchr(q, '\n', (size_t)(end - q))); q++) {
        if (q + 1 < end && q[1] == '\n')
            return (size_t)(q + 2 - p);
        if (q + 2 < end && q[1] == '\r' && q[2] == '\n')
            return (size_t)(q + 3 - p);
    }
    return 0;
}

static int header_complete(const char *p, size_t len)
{
    return header_end(p, len) != 0;
}

size_t msgfile_header_len(const struct msgfile *f)
{
    size_t n = header_end(f->p, f->len);

    return n ? n : f->len;
}

/* read() up to limit bytes (or to the end of the header) into f->buf. */
static int read_into(struct msgfile *f, int fd, size_t limit, int header_only)
{
    size_t want = header_only && limit > MSGFILE_STEP ? MSGFILE_STEP : limit, got = 0;

    for (;;) {
        if (grow(f, want ? want : 1) != 0)
            return -1;
        while (got < want) {
            ssize_t n = read(fd, f->buf + got, want - got);
            if (n < 0 && errno == EINTR)
                continue;
            if (n <= 0)
                break;                  /* shorter than fstat said: take what is there */
            got += (size_t)n;
        }
        if (got < want || want == limit || header_complete(f->buf, got))
            break;
        want = want * 2 < limit ? want * 2 : limit;
    }
    f->p = f->buf;
    f->len = got;
    return 0;
}

static int map_whole(struct msgfile *f, int fd, size_t size)
{
    void *p = mmap(NULL, size, PROT_READ, MAP_PRIVATE, fd, 0);

    if (p == MAP_FAILED)
        return -1;
    f->map = p;
    f->maplen = size;
    f->p = p;
    f->len = size;
    return 0;
}

int msgfile_load(struct msgfile *f, struct store *st, uint64_t file_id, int header_only)
{
    struct stat sb;
    size_t size;
    int fd, rc = -1;

    msgfile_release(f);
    if ((fd = store_file_open(st, file_id)) < 0)
        return -1;
    if (fstat(fd, &sb) != 0)
        goto out;
    size = (size_t)sb.st_size;
    if (size <= MSGFILE_READ_MAX || header_only) {
        rc = read_into(f, fd, size < MSGFILE_READ_MAX ? size : MSGFILE_READ_MAX, header_only);
        /* A header longer than the buffer: the whole file, mapped. */
        if (rc == 0 && f->len < size && !header_complete(f->p, f->len))
            rc = map_whole(f, fd, size);
    } else {
        rc = map_whole(f, fd, size);
    }
out:
    close(fd);
    return rc;
}
