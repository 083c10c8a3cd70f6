/* util_port_busy: a bind probe of a TCP port on every address a client could reach. */
#include <arpa/inet.h>
#include <errno.h>
#include <stdlib.h>
#include <netinet/in.h>
#include <stdio.h>
#include <sys/socket.h>
#include <unistd.h>

#include "util/util.h"

static bool bind_fails(int family, const char *addr, int port)
{
    int fd = socket(family, SOCK_STREAM | SOCK_CLOEXEC, 0);
    if (fd < 0)
        return false; /* no such family here: nothing can hold it */
    int one = 1;      /* as PostgreSQL binds: a port left in TIME_WAIT is free */
    setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
    int rc;
    if (family == AF_INET) {
        struct sockaddr_in sa = {.sin_family = AF_INET, .sin_port = htons((uint16_t)port)};
        inet_pton(AF_INET, addr, &sa.sin_addr);
        rc = bind(fd, (struct sockaddr *)&sa, sizeof sa);
    } else {
        setsockopt(fd, IPPROTO_IPV6, IPV6_V6ONLY, &one, sizeof one);
        struct sockaddr_in6 sa = {.sin6_family = AF_INET6, .sin6_port = htons((uint16_t)port)};
        inet_pton(AF_INET6, addr, &sa.sin6_addr);
        rc = bind(fd, (struct sockaddr *)&sa, sizeof sa);
    }
    bool busy = rc < 0 && errno == EADDRINUSE;
    close(fd);
    return busy;
}

bool util_port_busy(int port)
{
    if (port < 1 || port > 65535)
        return true;
    return bind_fails(AF_INET, "127.0.0.1", port) || bind_fails(AF_INET, "0.0.0.0", port) ||
           bind_fails(AF_INET6, "::1", port) || bind_fails(AF_INET6, "::", port);
}

bool util_ephemeral_range(int *lo, int *hi)
{
    FILE *f = fopen("/proc/sys/net/ipv4/ip_local_port_range", "re");
    if (!f)
        return false;
    char line[64];
    bool ok = fgets(line, sizeof line, f) != NULL;
    fclose(f);
    if (!ok)
        return false;
    char *end = NULL;
    long a = strtol(line, &end, 10);
    long b = strtol(end, &end, 10);
    if (a < 1 || b > 65535 || a > b)
        return false;
    *lo = (int)a;
    *hi = (int)b;
    return true;
}
