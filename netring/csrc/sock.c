#include <errno.h>
#include <poll.h>
#include <string.h>
#include <sys/socket.h>
#include <arpa/inet.h>
/* linux/if_packet.h, not glibc's netpacket/packet.h: rx.h/tx.h use it and the two clash */
#include <linux/if_packet.h>
#include "sock.h"

/* Wait for `events` on `fd` or for `wake_fd` (an eventfd that close() writes) to become readable,
 * at most `timeout_ms`. Returns fd's revents, with NR_SOCK_WOKEN or'ed in when wake_fd fired; 0 on
 * timeout; -errno (-EINTR so Python runs signal handlers and retries with the time left). */
int nr_sock_wait(int fd, int events, int wake_fd, int timeout_ms)
{
    struct pollfd p[2] = {
        { .fd = fd, .events = (short)events, .revents = 0 },
        { .fd = wake_fd, .events = POLLIN, .revents = 0 },
    };
    int rc = poll(p, 2, timeout_ms);
    if (rc < 0)
        return -errno;
    if (rc == 0)
        return 0;
    return p[0].revents | (p[1].revents ? NR_SOCK_WOKEN : 0);
}

/* Bind an AF_PACKET socket to `ifindex` for ethertype `proto_host_order` (0: transmit only, the
 * socket receives nothing). 0 or -errno. */
int nr_sock_bind_packet(int fd, int ifindex, int proto_host_order)
{
    struct sockaddr_ll sll;
    memset(&sll, 0, sizeof sll);
    sll.sll_family = AF_PACKET;
    sll.sll_protocol = htons((uint16_t)proto_host_order);
    sll.sll_ifindex = ifindex;
    if (bind(fd, (struct sockaddr *)&sll, sizeof sll) < 0)
        return -errno;
    return 0;
}
