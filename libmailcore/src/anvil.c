/*
 * anvil.c - connection counts in shared memory.  See anvil.h.
 *
 * Layout of the memfd: ANVIL_REGIONS regions, each a header (the service
 * tag) and ANVIL_SLOTS slots {key, count} in open addressing.  Only the
 * region's own process writes it; counts and tags are atomics so that
 * other processes read whole values.  A slot whose count fell to 0 keeps
 * its key and is reused by that key; the table is cleared when the region
 * changes hands.
 */
#include <arpa/inet.h>
#include <errno.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

#include "mailcore/anvil.h"

struct anvil_slot {
    uint8_t key[16];
    _Atomic uint32_t used;          /* key is set */
    _Atomic uint32_t count;
};

struct anvil_region {
    _Atomic uint32_t tag;           /* service, 0 when free */
    uint32_t pad;
    struct anvil_slot slots[ANVIL_SLOTS];
};

struct anvil {
    struct anvil_region *regions;
    size_t size;
    int own;                        /* region this process writes, -1: none */
};

#define ANVIL_SIZE (sizeof(struct anvil_region) * ANVIL_REGIONS)

int anvil_create(char *err, size_t errlen)
{
    int fd = memfd_create("mailcore-anvil", MFD_CLOEXEC);

    if (fd < 0 || ftruncate(fd, (off_t)ANVIL_SIZE) < 0) {
        snprintf(err, errlen, "connection counter memory: %s", strerror(errno));
        if (fd >= 0)
            close(fd);
        return -1;
    }
    return fd;
}

struct anvil *anvil_map(int fd, char *err, size_t errlen)
{
    struct anvil *a = calloc(1, sizeof *a);

    if (a == NULL) {
        snprintf(err, errlen, "out of memory");
        return NULL;
    }
    a->size = ANVIL_SIZE;
    a->regions = mmap(NULL, a->size, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);
    if (a->regions == MAP_FAILED) {
        snprintf(err, errlen, "connection counter memory: %s", strerror(errno));
        free(a);
        return NULL;
    }
    a->own = -1;
    return a;
}

void anvil_unmap(struct anvil *a)
{
    if (a == NULL)
        return;
    munmap(a->regions, a->size);
    free(a);
}

void anvil_region_assign(struct anvil *a, unsigned region, unsigned tag)
{
    struct anvil_region *r = &a->regions[region % ANVIL_REGIONS];

    atomic_store(&r->tag, 0);
    for (size_t i = 0; i < ANVIL_SLOTS; i++) {
        atomic_store(&r->slots[i].used, 0);
        atomic_store(&r->slots[i].count, 0);
    }
    atomic_store(&r->tag, tag);
}

void anvil_region_release(struct anvil *a, unsigned region)
{
    anvil_region_assign(a, region, 0);
}

void anvil_use_region(struct anvil *a, unsigned region)
{
    a->own = (int)(region % ANVIL_REGIONS);
}

static size_t slot_of(const struct anvil_key *k)
{
    uint64_t h = 1469598103934665603ull;   /* FNV-1a */

    for (size_t i = 0; i < 16; i++)
        h = (h ^ k->b[i]) * 1099511628211ull;
    return (size_t)(h % ANVIL_SLOTS);
}

/*
 * The slot of k in r, or NULL.  With create, a missing key takes the first
 * slot on its probe path whose count is 0 (so that a long-lived process
 * never fills its table with addresses seen once), else the free slot that
 * ends the path.
 */
static struct anvil_slot *find(struct anvil_region *r, const struct anvil_key *k, int create)
{
    size_t start = slot_of(k);
    struct anvil_slot *reuse = NULL;

    for (size_t i = 0; i < ANVIL_SLOTS; i++) {
        struct anvil_slot *s = &r->slots[(start + i) % ANVIL_SLOTS];
        if (!atomic_load(&s->used)) {
            if (!create)
                return NULL;
            if (reuse == NULL) {
                memcpy(s->key, k->b, sizeof s->key);
                atomic_store(&s->used, 1);
                return s;
            }
            break;
        }
        if (memcmp(s->key, k->b, sizeof s->key) == 0)
            return s;
        if (create && reuse == NULL && atomic_load(&s->count) == 0)
            reuse = s;
    }
    if (reuse != NULL)
        memcpy(reuse->key, k->b, sizeof reuse->key);
    return reuse;
}

unsigned anvil_count(const struct anvil *a, const struct anvil_key *k)
{
    unsigned tag, total = 0;

    if (a->own < 0)
        return 0;
    tag = atomic_load(&a->regions[a->own].tag);
    for (size_t i = 0; i < ANVIL_REGIONS; i++) {
        struct anvil_slot *s;
        if (atomic_load(&a->regions[i].tag) != tag)
            continue;
        s = find(&a->regions[i], k, 0);
        if (s)
            total += atomic_load(&s->count);
    }
    return total;
}

unsigned anvil_inc(struct anvil *a, const struct anvil_key *k)
{
    struct anvil_slot *s;

    if (a->own < 0 || (s = find(&a->regions[a->own], k, 1)) == NULL)
        return 0;
    atomic_fetch_add(&s->count, 1);
    return anvil_count(a, k);
}

void anvil_dec(struct anvil *a, const struct anvil_key *k)
{
    struct anvil_slot *s;

    if (a->own < 0 || (s = find(&a->regions[a->own], k, 0)) == NULL)
        return;
    if (atomic_load(&s->count) > 0)
        atomic_fetch_sub(&s->count, 1);
}

void anvil_key_total(struct anvil_key *k)
{
    memset(k, 0, sizeof *k);
}

int anvil_key_addr(struct anvil_key *k, const char *addr)
{
    memset(k, 0, sizeof *k);
    if (inet_pton(AF_INET6, addr, k->b) == 1)
        return 0;
    if (inet_pton(AF_INET, addr, k->b + 12) == 1) {
        k->b[10] = k->b[11] = 0xff;
        return 0;
    }
    return -1;
}

void anvil_key_name(struct anvil_key *k, const char *name)
{
    uint64_t h1 = 1469598103934665603ull, h2 = 0x9E3779B97F4A7C15ull;

    /* Two independent 64-bit hashes; a collision only shares a limit. */
    for (const unsigned char *p = (const unsigned char *)name; *p; p++) {
        h1 = (h1 ^ *p) * 1099511628211ull;
        h2 = (h2 ^ *p) * 0x100000001B3ull + (h2 >> 29);
    }
    memcpy(k->b, &h1, 8);
    memcpy(k->b + 8, &h2, 8);
    k->b[0] |= 1;       /* never the all-zero total key */
}
