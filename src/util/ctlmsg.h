/* ctlmsg: one text message (and at most one descriptor, SCM_RIGHTS) per datagram of a
 * SOCK_SEQPACKET Unix socket: the control channel between serve and the data path. */
#ifndef PF_UTIL_CTLMSG_H
#define PF_UTIL_CTLMSG_H

#include <stdbool.h>
#include <stddef.h>
#include <sys/types.h>

#define CTLMSG_MAX 1024
/* The data path's files: HOME/run/dp/ctl (this channel) and HOME/run/dp/.s.PGSQL.<n>, the
 * socket PgBouncer reaches every database through (routed by the startup's database). */
#define CTLMSG_DIR "run/dp"
#define CTLMSG_ROUTE_PORT 5432

/* Sends text (at most CTLMSG_MAX - 1 bytes) with fd attached when fd >= 0. 0, or -1 with
 * errno (EAGAIN on a full non-blocking socket). */
int ctlmsg_send(int sock, const char *text, int fd);

/* Receives one message into buf (NUL-terminated); *fd is the attached descriptor (close-on-
 * exec) or -1. nowait: EAGAIN instead of waiting. The length, 0 at end of stream, -1 with
 * errno. */
ssize_t ctlmsg_recv(int sock, char *buf, size_t n, int *fd, bool nowait);

/* A SOCK_SEQPACKET listening socket at path (an old socket file is replaced), mode 0600. */
int ctlmsg_listen(const char *path);

/* Connects to the listening socket at path; -1 with errno. */
int ctlmsg_connect(const char *path);

#endif
