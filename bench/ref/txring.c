/* C reference: TPACKET_V2 TX-ring sender. Fills ring slots with stamped frames (O(1) stamp per frame
 * from a precomputed payload hash), kicks the kernel with send() every --batch frames.
 * Prints {"role":"tx","impl":"c-txring","sent":N,"t_start_ns":...,"t_end_ns":...,"wrong_format":...}. */
#include "common.h"
#include <arpa/inet.h>
#include <linux/if_ether.h>
#include <linux/if_packet.h>
#include <poll.h>
#include <sys/mman.h>
#include <sys/socket.h>

int main(int argc, char **argv)
{
    struct ref_opts o;
    ref_parse(argc, argv, &o);
    int ifindex = ref_setup(&o);

    int fd = socket(AF_PACKET, SOCK_RAW, 0); /* protocol 0: this socket receives nothing */
    if (fd < 0) die("socket(AF_PACKET)");
    int ver = TPACKET_V2;
    if (setsockopt(fd, SOL_PACKET, PACKET_VERSION, &ver, sizeof(ver)) < 0) die("PACKET_VERSION");
    const unsigned frame_size = 2048;
    if (o.size + TPACKET2_HDRLEN > (int)frame_size) die_msg("--size too large for 2048 B TX slots");
    struct tpacket_req req = {0};
    req.tp_frame_size = frame_size;
    req.tp_block_size = 1 << 16;
    req.tp_frame_nr = (unsigned)o.frame_count;
    req.tp_block_nr = req.tp_frame_nr * frame_size / req.tp_block_size;
    if (req.tp_block_nr == 0) die_msg("--frame-count too small (need >= 32)");
    req.tp_frame_nr = req.tp_block_nr * (req.tp_block_size / frame_size);
    if (setsockopt(fd, SOL_PACKET, PACKET_TX_RING, &req, sizeof(req)) < 0) die("PACKET_TX_RING");
    size_t ring_len = (size_t)req.tp_block_size * req.tp_block_nr;
    uint8_t *ring = mmap(NULL, ring_len, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);
    if (ring == MAP_FAILED) die("mmap");
    struct sockaddr_ll sll = {0};
    sll.sll_family = AF_PACKET;
    sll.sll_ifindex = ifindex;
    sll.sll_protocol = 0;
    if (bind(fd, (struct sockaddr *)&sll, sizeof(sll)) < 0) die("bind");

    /* Pre-fill every slot with the template; per frame only the stamp is rewritten. */
    const size_t data_off = TPACKET2_HDRLEN - sizeof(struct sockaddr_ll);
    uint8_t tmpl[9000];
    uint64_t phash = build_template(tmpl, o.size);
    for (unsigned i = 0; i < req.tp_frame_nr; i++)
        memcpy(ring + (size_t)i * frame_size + data_off, tmpl, o.size);

    int64_t deadline = now_ns() + (int64_t)(o.timeout * 1e9);
    long long sent = 0, wrong = 0, since_kick = 0;
    unsigned slot = 0;
    int64_t t0 = now_ns();
    while (sent < o.count) {
        struct tpacket2_hdr *h = (struct tpacket2_hdr *)(ring + (size_t)slot * frame_size);
        unsigned st = LOAD_ACQ(&h->tp_status);
        if (st & TP_STATUS_WRONG_FORMAT) {
            wrong++;
        } else if (st != TP_STATUS_AVAILABLE) {
            /* ring full: kick what is queued, then wait for the kernel to free slots */
            if (send(fd, NULL, 0, 0) < 0 && errno != EAGAIN && errno != ENOBUFS) die("send(kick)");
            since_kick = 0;
            if (LOAD_ACQ(&h->tp_status) != TP_STATUS_AVAILABLE) {
                struct pollfd p = {fd, POLLOUT, 0};
                poll(&p, 1, 1);
            }
            if (now_ns() > deadline) break;
            continue;
        }
        uint8_t *f = (uint8_t *)h + data_off;
        stamp_frame(f, o.size, phash, o.stream_id, (uint64_t)(sent % o.pool));
        h->tp_len = o.size;
        STORE_REL(&h->tp_status, TP_STATUS_SEND_REQUEST);
        sent++;
        slot = (slot + 1) % req.tp_frame_nr;
        if (++since_kick >= o.batch) {
            if (send(fd, NULL, 0, MSG_DONTWAIT) < 0 && errno != EAGAIN && errno != ENOBUFS) die("send(kick)");
            since_kick = 0;
        }
    }
    /* Final kick, blocking: returns once the kernel has taken every queued frame. */
    if (send(fd, NULL, 0, 0) < 0 && errno != EAGAIN && errno != ENOBUFS) die("send(final kick)");
    int64_t t1 = now_ns();
    printf("{\"role\":\"tx\",\"impl\":\"c-txring\",\"sent\":%lld,\"t_start_ns\":%lld,\"t_end_ns\":%lld,"
           "\"wrong_format\":%lld,\"timed_out\":%s}\n",
           sent, (long long)t0, (long long)t1, wrong, sent < o.count ? "true" : "false");
    munmap(ring, ring_len); /* unmap before close */
    close(fd);
    return 0;
}
