/*
 * ipc - small messages over Unix-domain sockets.
 *
 * Two shapes:
 *  - request/reply over SOCK_SEQPACKET (mailctl <-> master): the client
 *    sends one request, the server answers with one or more messages and
 *    closes.  ipc_request() does the client side with a timeout.
 *  - fire-and-forget datagrams (SOCK_DGRAM) to a named socket: wake relayq,
 *    tell imapd that a mailbox changed.  ipc_notify() never blocks; a full
 *    receiver loses the datagram (receivers re-check on a slow timer).
 *
 * Messages are text, at most IPC_MSG_MAX bytes: a verb and arguments
 * separated by spaces ("status", "mailbox 42").
 */
#ifndef MAILCORE_IPC_H
#define MAILCORE_IPC_H

#include <stddef.h>
#include <sys/types.h>

#define IPC_MSG_MAX 4096

/* Bind and (for SEQPACKET) listen on path, replacing a stale socket;
 * non-blocking, close-on-exec, chmod mode.  fd or -1 (err).  Refuses a
 * path too long for sun_path, a path that is not a socket (never unlinked)
 * and a socket that still answers (another process is using it).  Sets the
 * umask around bind(): call it from a single-threaded process. */
int ipc_listen(const char *path, int type, mode_t mode, char *err, size_t errlen);

/* Send one whole message; 0 or -1 (errno): EMSGSIZE over IPC_MSG_MAX,
 * EINVAL for an empty one (it would read as end-of-stream), EAGAIN when a
 * non-blocking socket is full. */
int ipc_send(int fd, const void *msg, size_t len);
/* Receive one message into buf; its length, 0 on EOF, -1 (errno); a
 * message longer than len is an error (EMSGSIZE). */
ssize_t ipc_recv(int fd, void *buf, size_t len);

/*
 * Connect to a SEQPACKET server at path, send req and collect the reply
 * messages, concatenated, into reply (NUL-terminated) until the server
 * closes; timeout_ms bounds the whole exchange (negative: no bound).
 * 0, or -1 with err ("cannot connect to PATH: reason" when nobody
 * listens, "timed out waiting for PATH", "reply from PATH is too long"
 * when it does not fit replylen - 1 bytes).
 */
int ipc_request(const char *path, const char *req, char *reply, size_t replylen,
                int timeout_ms, char *err, size_t errlen);

/* One datagram to path, never blocking.  0 or -1 (errno): EAGAIN when the
 * receiver's queue is full (the datagram is dropped), ENOENT or
 * ECONNREFUSED when nobody is bound, EMSGSIZE over IPC_MSG_MAX. */
int ipc_notify(const char *path, const void *msg, size_t len);
/* The same from a datagram socket the caller keeps (ipc_datagram_socket(),
 * non-blocking, close-on-exec): for a sender that notifies often. */
int ipc_datagram_socket(void);
int ipc_notify_from(int fd, const char *path, const void *msg, size_t len);

#endif
