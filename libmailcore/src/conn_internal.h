/*
 * conn_internal.h - what the unit tests may look at inside a conn, and
 * nothing else uses.
 */
#ifndef MAILCORE_CONN_INTERNAL_H
#define MAILCORE_CONN_INTERNAL_H

#include <stddef.h>

struct conn;

/* Bytes currently allocated for the input and the output buffer (0 when a
 * buffer is released), so that tests can prove the memory bounds. */
size_t conn_in_alloc(const struct conn *c);
size_t conn_out_alloc(const struct conn *c);
/* Bytes held by compression: zlib's states and windows, its buffers. */
size_t conn_deflate_alloc(const struct conn *c);

#endif
