/* C reference: sendmmsg() sender on a plain AF_PACKET socket, --batch frames per call, each frame
 * in its own buffer stamped in O(1). Prints {"role":"tx","impl":"c-sendmmsg",...}. */
#include "common.h"
#include <linux/if_packet.h>
#include <sys/socket.h>
#include <sys/uio.h>

int main(int argc, char **argv)
{
    struct ref_opts o;
    ref_parse(argc, argv, &o);
    int ifindex = ref_setup(&o);
    int fd = socket(AF_PACKET, SOCK_RAW, 0);
    if (fd < 0) die("socket(AF_PACKET)");
    struct sockaddr_ll sll = {0};
    sll.sll_family = AF_PACKET;
    sll.sll_ifindex = ifindex;
    if (bind(fd, (struct sockaddr *)&sll, sizeof(sll)) < 0) die("bind");

    int nb = o.batch;
    uint8_t *bufs = malloc((size_t)nb * o.size);
    struct mmsghdr *msgs = calloc(nb, sizeof(*msgs));
    struct iovec *iov = calloc(nb, sizeof(*iov));
    if (!bufs || !msgs || !iov) die("malloc");
    uint64_t phash = build_template(bufs, o.size);
    for (int i = 0; i < nb; i++) {
        memcpy(bufs + (size_t)i * o.size, bufs, o.size);
        iov[i].iov_base = bufs + (size_t)i * o.size;
        iov[i].iov_len = o.size;
        msgs[i].msg_hdr.msg_iov = &iov[i];
        msgs[i].msg_hdr.msg_iovlen = 1;
    }
    int64_t deadline = now_ns() + (int64_t)(o.timeout * 1e9);
    long long sent = 0, enobufs = 0;
    int64_t t0 = now_ns();
    while (sent < o.count && now_ns() < deadline) {
        int n = (int)(o.count - sent < nb ? o.count - sent : nb);
        for (int i = 0; i < n; i++)
            stamp_frame(bufs + (size_t)i * o.size, o.size, phash, o.stream_id, (uint64_t)((sent + i) % o.pool));
        int r = sendmmsg(fd, msgs, n, 0);
        if (r < 0) {
            if (errno == ENOBUFS || errno == EAGAIN || errno == EINTR) { enobufs++; continue; }
            die("sendmmsg");
        }
        sent += r; /* a short count re-stamps the unsent tail with the right seqs next round */
    }
    int64_t t1 = now_ns();
    printf("{\"role\":\"tx\",\"impl\":\"c-sendmmsg\",\"sent\":%lld,\"t_start_ns\":%lld,\"t_end_ns\":%lld,"
           "\"retries\":%lld,\"timed_out\":%s}\n",
           sent, (long long)t0, (long long)t1, enobufs, sent < o.count ? "true" : "false");
    close(fd);
    return 0;
}
