/*
 * err - the error text a function leaves for its caller.
 *
 * Functions that can fail take "char *err, size_t errlen" and fill it with
 * one line saying what failed and why; err_set() is how they do it:
 *	return err_set(err, errlen, "%s: %s", path, strerror(errno));
 */
#ifndef MAILCORE_ERR_H
#define MAILCORE_ERR_H

#include <stddef.h>

/* Format into err (when err is not NULL and errlen > 0); returns -1. */
int err_set(char *err, size_t errlen, const char *fmt, ...) __attribute__((format(printf, 3, 4)));

#endif
