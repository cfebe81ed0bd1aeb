/*
 * A user-land rootkit in miniature, for the hidden-socket tests (tests/test_hidden.py).
 *
 * Loaded with LD_PRELOAD (as /etc/ld.so.preload rootkits such as Jynx2 or Azazel are), it hides
 * one local port from the process it is loaded into, the way those rootkits hide a backdoor
 * from netstat and ss:
 *   HIDE_PORT=N       the local port to hide (TCP and UDP, IPv4 and IPv6)
 *   HIDE_FROM=proc    filter the lines of /proc/.../net/{tcp,tcp6,udp,udp6} (netstat, lsof)
 *   HIDE_FROM=diag    drop the sock_diag netlink messages that describe it (ss)
 *   HIDE_FROM=proc,diag  both
 * Everything else passes through untouched. The kernel is not changed: other processes, and
 * the bind() the port is held by, see the truth.
 */
#define _GNU_SOURCE
#include <dlfcn.h>
#include <fcntl.h>
#include <linux/netlink.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/socket.h>
#include <unistd.h>

#define SOCK_DIAG_BY_FAMILY 20
#define NETLINK_SOCK_DIAG 4

static int hide_port(void) {
    const char *p = getenv("HIDE_PORT");
    return p ? atoi(p) : -1;
}

static int hiding(const char *what) {
    const char *f = getenv("HIDE_FROM");
    return f && strstr(f, what) != NULL;
}

static int is_table(const char *path) {
    const char *net = path ? strstr(path, "/net/") : NULL;
    if (!net || strncmp(path, "/proc/", 6) != 0)
        return 0;
    net += 5;
    return !strcmp(net, "tcp") || !strcmp(net, "tcp6") || !strcmp(net, "udp") ||
           !strcmp(net, "udp6");
}

/* A memfd holding the table without the lines whose local port is the hidden one. */
static int filtered(int real) {
    char want[8];
    snprintf(want, sizeof want, ":%04X ", hide_port());
    size_t cap = 1 << 16, len = 0;
    char *buf = malloc(cap);
    ssize_t n;
    while ((n = read(real, buf + len, cap - len)) > 0) {
        len += n;
        if (len == cap)
            buf = realloc(buf, cap *= 2);
    }
    close(real);
    int out = memfd_create("net-table", 0);
    char *line = buf, *end = buf + len;
    int first = 1;
    while (line < end) {
        char *nl = memchr(line, '\n', end - line);
        char *stop = nl ? nl + 1 : end;
        /* the local address is the second field: "  sl  local_address ..." -> "0: HEX:PORT " */
        char *colon = memchr(line, ':', stop - line);            /* after the slot number */
        char *local = colon ? memchr(colon + 1, ':', stop - colon - 1) : NULL;
        int hide = !first && local && strncmp(local, want, 6) == 0;
        if (!hide)
            write(out, line, stop - line);
        first = 0;
        line = stop;
    }
    free(buf);
    lseek(out, 0, SEEK_SET);
    return out;
}

static int wrap_open(int fd, const char *path) {
    if (fd >= 0 && hiding("proc") && hide_port() >= 0 && is_table(path))
        return filtered(fd);
    return fd;
}

/* open, open64, openat, openat64: the real call, then the table filtered when it is one. */
#define OPEN_WRAPPER(NAME, PARAMS, TYPES, ARGS)                            \
    int NAME PARAMS {                                                      \
        static int (*real) TYPES;                                          \
        if (!real)                                                         \
            real = dlsym(RTLD_NEXT, #NAME);                                \
        va_list ap;                                                        \
        va_start(ap, flags);                                               \
        mode_t mode = va_arg(ap, mode_t);                                  \
        va_end(ap);                                                        \
        return wrap_open(real ARGS, path);                                 \
    }
OPEN_WRAPPER(open, (const char *path, int flags, ...), (const char *, int, ...),
             (path, flags, mode))
OPEN_WRAPPER(open64, (const char *path, int flags, ...), (const char *, int, ...),
             (path, flags, mode))
OPEN_WRAPPER(openat, (int dirfd, const char *path, int flags, ...), (int, const char *, int, ...),
             (dirfd, path, flags, mode))
OPEN_WRAPPER(openat64, (int dirfd, const char *path, int flags, ...),
             (int, const char *, int, ...), (dirfd, path, flags, mode))

static int is_diag(int fd) {
    int domain = 0, proto = 0;
    socklen_t l = sizeof domain;
    if (getsockopt(fd, SOL_SOCKET, SO_DOMAIN, &domain, &l) || domain != AF_NETLINK)
        return 0;
    l = sizeof proto;
    return !getsockopt(fd, SOL_SOCKET, SO_PROTOCOL, &proto, &l) && proto == NETLINK_SOCK_DIAG;
}

/* Drop the inet_diag messages whose source port is the hidden one; the rest close up. */
static ssize_t scrub(int fd, char *buf, ssize_t n) {
    if (n <= 0 || !hiding("diag") || hide_port() < 0 || !is_diag(fd))
        return n;
    int port = hide_port();
    ssize_t off = 0;
    while (off + (ssize_t)sizeof(struct nlmsghdr) <= n) {
        struct nlmsghdr *h = (struct nlmsghdr *)(buf + off);
        ssize_t size = NLMSG_ALIGN(h->nlmsg_len);
        if (h->nlmsg_len < sizeof *h || off + size > n)
            break;
        unsigned char *payload = (unsigned char *)NLMSG_DATA(h);
        /* inet_diag_msg: family, state, timer, retrans, then sport (big-endian) */
        if (h->nlmsg_type == SOCK_DIAG_BY_FAMILY && h->nlmsg_len >= sizeof *h + 6 &&
            ((payload[4] << 8) | payload[5]) == port) {
            memmove(buf + off, buf + off + size, n - off - size);
            n -= size;
            continue;
        }
        off += size;
    }
    return n;
}

ssize_t recv(int fd, void *buf, size_t len, int flags) {
    static ssize_t (*real)(int, void *, size_t, int);
    if (!real)
        real = dlsym(RTLD_NEXT, "recv");
    return scrub(fd, buf, real(fd, buf, len, flags));
}

ssize_t recvfrom(int fd, void *buf, size_t len, int flags, struct sockaddr *a, socklen_t *al) {
    static ssize_t (*real)(int, void *, size_t, int, struct sockaddr *, socklen_t *);
    if (!real)
        real = dlsym(RTLD_NEXT, "recvfrom");
    return scrub(fd, buf, real(fd, buf, len, flags, a, al));
}
