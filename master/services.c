/*
 * services.c - how many processes each enabled service gets.
 */
#include <unistd.h>

#include "mailcore/conf.h"
#include "mailcore/service.h"
#include "master.h"

int services_configure(struct master *m, const struct conf *c, char *err, size_t errlen)
{
    long cores = sysconf(_SC_NPROCESSORS_ONLN);
    unsigned workers = (unsigned)conf_uint(c, "worker_processes");

    if (workers == 0)
        workers = cores > 0 ? (unsigned)cores : 1;
    if (workers > 64)
        workers = 64;
    for (size_t i = 0; i < service_ndefs; i++) {
        struct service_state *s = &m->services[i];
        s->enabled = service_enabled(c, i);
        s->workers = service_defs[i].per_core ? workers : 1;
    }
    (void)err;
    (void)errlen;
    return 0;
}

