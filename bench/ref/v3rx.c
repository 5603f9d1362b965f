/* C reference: TPACKET_V3 RX-ring receiver with exact sequence accounting of one stream.
 *
 * Walks each retired block in place; per frame: skip PACKET_OUTGOING, then account() (common.h):
 * locate the stamp, recompute the full check, account the seq in a seen-bitmap sized by --pool.
 * --xdp-pass first attaches a native XDP_PASS program (BPF_LINK_CREATE; detached at exit): a veth
 * end receives frames its peer XDP_TX'd (the live-frames generator) only while it runs one.
 * Stops when every one of --count stamped frames arrived (received counts duplicates, so a sender
 * cycling a pool of --pool seqs is measured too), after --quiet s without a frame, or at --timeout.
 * Prints {"role":"rx","impl":"c-v3",...,"t_first_ns":...,"t_last_ns":...}. */
#include "common.h"
#include "bpfref.h"
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

    int fd = socket(AF_PACKET, SOCK_RAW, htons(ETH_P_ALL));
    if (fd < 0) die("socket(AF_PACKET)");
    int ver = TPACKET_V3;
    if (setsockopt(fd, SOL_PACKET, PACKET_VERSION, &ver, sizeof(ver)) < 0) die("PACKET_VERSION");
    struct tpacket_req3 req = {0};
    req.tp_block_size = (unsigned)o.block_size;
    req.tp_block_nr = (unsigned)o.block_count;
    req.tp_frame_size = 2048;
    req.tp_frame_nr = req.tp_block_size / req.tp_frame_size * req.tp_block_nr;
    req.tp_retire_blk_tov = (unsigned)o.block_timeout_ms;
    if (setsockopt(fd, SOL_PACKET, PACKET_RX_RING, &req, sizeof(req)) < 0) die("PACKET_RX_RING");
    size_t ring_len = (size_t)req.tp_block_size * req.tp_block_nr;
    uint8_t *ring = mmap(NULL, ring_len, PROT_READ | PROT_WRITE, MAP_SHARED | MAP_POPULATE, fd, 0);
    if (ring == MAP_FAILED) die("mmap");
    struct sockaddr_ll sll = {0};
    sll.sll_family = AF_PACKET;
    sll.sll_protocol = htons(ETH_P_ALL);
    sll.sll_ifindex = ifindex;
    if (bind(fd, (struct sockaddr *)&sll, sizeof(sll)) < 0) die("bind");

    int pass_prog = -1, pass_link = -1;
    if (o.xdp_pass) pass_link = ref_attach_pass(ifindex, &pass_prog);

    struct acct a = {0};
    a.pool = o.pool;
    a.seen = calloc((size_t)(o.pool + 7) / 8, 1);
    if (!a.seen) die("calloc");
    ref_ready(&o);

    int64_t start = now_ns(), deadline = start + (int64_t)(o.timeout * 1e9);
    int64_t quiet = (int64_t)(o.quiet * 1e9), t_first = 0, t_last = 0;
    long long blocks = 0;
    unsigned blk = 0;
    int timed_out = 0;
    while (a.received < o.count) {
        struct tpacket_block_desc *bd = (struct tpacket_block_desc *)(ring + (size_t)blk * req.tp_block_size);
        if (!(LOAD_ACQ(&bd->hdr.bh1.block_status) & TP_STATUS_USER)) {
            int64_t now = now_ns();
            if (now > deadline) { timed_out = 1; break; }
            if (t_last && now - t_last > quiet) break;
            struct pollfd p = {fd, POLLIN | POLLERR, 0};
            poll(&p, 1, 10);
            continue;
        }
        unsigned n = bd->hdr.bh1.num_pkts;
        struct tpacket3_hdr *h = (struct tpacket3_hdr *)((uint8_t *)bd + bd->hdr.bh1.offset_to_first_pkt);
        long long before = a.received;
        for (unsigned i = 0; i < n; i++) {
            struct sockaddr_ll *l = (struct sockaddr_ll *)((uint8_t *)h + TPACKET_ALIGN(sizeof(*h)));
            if (l->sll_pkttype == PACKET_OUTGOING)
                a.outgoing++;
            else
                account(&a, (uint8_t *)h + h->tp_mac, h->tp_snaplen, o.stream_id);
            h = (struct tpacket3_hdr *)((uint8_t *)h + h->tp_next_offset);
        }
        STORE_REL(&bd->hdr.bh1.block_status, TP_STATUS_KERNEL); /* hand the block back */
        blocks++;
        blk = (blk + 1) % req.tp_block_nr;
        if (a.received > before) {
            t_last = now_ns();
            if (!t_first) t_first = t_last;
        }
    }
    struct tpacket_stats_v3 st = {0};
    socklen_t sl = sizeof(st);
    getsockopt(fd, SOL_PACKET, PACKET_STATISTICS, &st, &sl);
    long long lost = o.pool - a.delivered;
    printf("{\"role\":\"rx\",\"impl\":\"c-v3\",\"expected\":%lld,\"pool\":%lld,\"received\":%lld,"
           "\"delivered\":%lld,\"lost\":%lld,\"duplicated\":%lld,\"reordered\":%lld,\"corrupted\":%lld,"
           "\"unexpected\":%lld,\"outgoing\":%lld,\"blocks\":%lld,\"kernel_packets\":%u,\"kernel_drops\":%u,"
           "\"freezes\":%u,\"t_first_ns\":%lld,\"t_last_ns\":%lld,\"timed_out\":%s}\n",
           o.count, o.pool, a.received, a.delivered, lost, a.duplicated, a.reordered, a.corrupted,
           a.unexpected, a.outgoing, blocks, st.tp_packets, st.tp_drops, st.tp_freeze_q_cnt,
           (long long)t_first, (long long)t_last, timed_out ? "true" : "false");
    munmap(ring, ring_len); /* unmap before close */
    close(fd);
    if (pass_link >= 0) { close(pass_link); close(pass_prog); }
    return 0;
}
