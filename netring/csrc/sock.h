/* sock: what every ring socket does with its fd, whatever its ring (TPACKET RX/TX today, AF_XDP
 * next) — the EINTR-aware wait next to a wake eventfd, and binding an AF_PACKET socket to an
 * interface. Prefix nr_sock_. Every function returns >= 0 or -errno. */
#ifndef NETRING_SOCK_H
#define NETRING_SOCK_H
#include <stdint.h>
#include <poll.h>
#include <sys/socket.h>
#include "common.h"

/* Socket-option levels the Python side passes to setsockopt(). */
#define NR_SOCK_SOL_PACKET SOL_PACKET
#define NR_SOCK_SOL_SOCKET SOL_SOCKET

/* or'ed into nr_sock_wait's result when the wake fd fired (above every poll revents bit) */
#define NR_SOCK_WOKEN 0x10000
int nr_sock_wait(int fd, int events, int wake_fd, int timeout_ms);
int nr_sock_bind_packet(int fd, int ifindex, int proto_host_order);

#endif
