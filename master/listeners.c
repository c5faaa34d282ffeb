/*
 * listeners.c - binding the listening sockets, as root, before any daemon
 * starts.  On reload, a socket whose address and port stay is kept (so no
 * connection attempt is refused), new ones are bound and dropped ones closed.
 */
#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <stdio.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "mailcore/conf.h"
#include "master.h"

#define LISTEN_BACKLOG 1024

/* -1 with err; -2 when the address family is not available (skip it). */
static int bind_one(const char *addr, int port, const char *key, char *err, size_t errlen)
{
    struct sockaddr_storage ss = {0};
    socklen_t sl;
    int fd, on = 1, family;

    if (strchr(addr, ':')) {
        struct sockaddr_in6 *s6 = (struct sockaddr_in6 *)&ss;
        family = AF_INET6;
        s6->sin6_family = AF_INET6;
        s6->sin6_port = htons((uint16_t)port);
        inet_pton(AF_INET6, addr, &s6->sin6_addr);
        sl = sizeof *s6;
    } else {
        struct sockaddr_in *s4 = (struct sockaddr_in *)&ss;
        family = AF_INET;
        s4->sin_family = AF_INET;
        s4->sin_port = htons((uint16_t)port);
        inet_pton(AF_INET, addr, &s4->sin_addr);
        sl = sizeof *s4;
    }
    fd = socket(family, SOCK_STREAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0);
    if (fd < 0) {
        if (errno == EAFNOSUPPORT)
            return -2;
        snprintf(err, errlen, "socket for %s port %d (%s): %s", addr, port, key, strerror(errno));
        return -1;
    }
    setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &on, sizeof on);
    if (family == AF_INET6)
        setsockopt(fd, IPPROTO_IPV6, IPV6_V6ONLY, &on, sizeof on);
    if (bind(fd, (struct sockaddr *)&ss, sl) < 0 || listen(fd, LISTEN_BACKLOG) < 0) {
        int e = errno;
        close(fd);
        if (family == AF_INET6 && (e == EADDRNOTAVAIL || e == EAFNOSUPPORT))
            return -2;
        snprintf(err, errlen, "cannot listen on %s%s%s port %d (%s): %s",
                 family == AF_INET6 ? "[" : "", addr, family == AF_INET6 ? "]" : "", port, key,
                 strerror(e));
        return -1;
    }
    return fd;
}

/* Undo take_old() for a failed reload: fds return to old, new ones close. */
static void give_back(struct listener *old, size_t nold, struct listener *l, size_t n)
{
    for (size_t i = 0; i < n; i++) {
        size_t j;
        for (j = 0; j < nold; j++)
            if (old[j].fd < 0 && old[j].port == l[i].port && strcmp(old[j].addr, l[i].addr) == 0)
                break;
        if (j < nold)
            old[j].fd = l[i].fd;
        else
            close(l[i].fd);
    }
}

static int take_old(struct listener *old, size_t nold, const char *addr, int port)
{
    for (size_t i = 0; i < nold; i++)
        if (old[i].fd >= 0 && old[i].port == port && strcmp(old[i].addr, addr) == 0) {
            int fd = old[i].fd;
            old[i].fd = -1;
            return fd;
        }
    return -1;
}

int listeners_bind(const struct conf *c, struct listener *old, size_t nold,
                   struct listener *out, size_t *nout, char *err, size_t errlen)
{
    size_t n = 0;

    for (size_t s = 0; s < service_ndefs; s++) {
        for (size_t p = 0; p < 2; p++) {
            const char *key = service_defs[s].port_keys[p];
            int port = key ? conf_port(c, key) : 0;
            if (port == 0)
                continue;
            for (size_t a = 0; conf_list_item(c, "listen_address", a); a++) {
                const char *addr = conf_list_item(c, "listen_address", a);
                int fd = take_old(old, nold, addr, port);
                if (fd < 0)
                    fd = bind_one(addr, port, key, err, errlen);
                if (fd == -2)
                    continue;
                if (fd < 0 || n == MASTER_LISTEN_MAX) {
                    if (fd >= 0) {
                        close(fd);
                        snprintf(err, errlen, "more than %d listeners: use fewer "
                                 "listen_address entries", MASTER_LISTEN_MAX);
                    }
                    give_back(old, nold, out, n);
                    return -1;
                }
                out[n] = (struct listener){.fd = fd, .service = s, .port = port,
                                           .fd_name = service_defs[s].fd_names[p]};
                snprintf(out[n].addr, sizeof out[n].addr, "%s", addr);
                n++;
            }
        }
    }
    *nout = n;
    return 0;
}

void listeners_close(struct listener *l, size_t n)
{
    for (size_t i = 0; i < n; i++)
        if (l[i].fd >= 0) {
            close(l[i].fd);
            l[i].fd = -1;
        }
}
