/*
 * anvil - connection counts shared by all the processes of a service, so
 * that limits such as "50 connections per client address" hold for the
 * service as a whole, not per worker.  (Postfix has an anvil server for
 * this; mailcore uses shared memory instead of a round trip per connect.)
 *
 * master creates one memfd (anvil_create) and hands it to every daemon with
 * a region of its own (MAILCORE_ANVIL_FD, MAILCORE_ANVIL_REGION).  A daemon
 * writes only its own region: key -> count, single writer, no locks.  A
 * count is the sum over every region of the same service.  When a daemon
 * dies, master clears its region before the region is used again, so a
 * killed process never leaves counts behind.  Readers may see a count that
 * is a moment old; limits are advisory, never a correctness matter.
 *
 * Keys are 16 bytes: an IP address (IPv4 as v4-mapped IPv6), or a hash of
 * a name (user names for imapd).  The all-zero key counts every connection.
 */
#ifndef MAILCORE_ANVIL_H
#define MAILCORE_ANVIL_H

#include <stddef.h>
#include <stdint.h>

#define ANVIL_REGIONS 256       /* daemon processes at once (MASTER_CHILD_MAX) */
#define ANVIL_SLOTS 1024        /* distinct keys per process */

struct anvil;

struct anvil_key {
    uint8_t b[16];
};

/* master: a new, zeroed memfd for ANVIL_REGIONS regions.  fd or -1. */
int anvil_create(char *err, size_t errlen);

struct anvil *anvil_map(int fd, char *err, size_t errlen);
void anvil_unmap(struct anvil *a);

/* master: give region to a new process of service (tag > 0), clearing it. */
void anvil_region_assign(struct anvil *a, unsigned region, unsigned tag);
/* master: the process of region is gone. */
void anvil_region_release(struct anvil *a, unsigned region);

/* daemon: from now on, anvil_inc/anvil_dec write this region. */
void anvil_use_region(struct anvil *a, unsigned region);

/* Count one more connection for key; returns the service-wide count after
 * it, or 0 when this process's table is full (the caller may refuse). */
unsigned anvil_inc(struct anvil *a, const struct anvil_key *k);
void anvil_dec(struct anvil *a, const struct anvil_key *k);
unsigned anvil_count(const struct anvil *a, const struct anvil_key *k);

void anvil_key_total(struct anvil_key *k);
/* An IPv4 or IPv6 address in text form; -1 if it is neither. */
int anvil_key_addr(struct anvil_key *k, const char *addr);
void anvil_key_name(struct anvil_key *k, const char *name);

#endif
