#include <errno.h>
#include <string.h>
#include <sys/socket.h>
#include <linux/if_packet.h>
#include <linux/filter.h>
#include "rx.h"

int nr_rx_setup(int fd, uint32_t block_size, uint32_t block_nr, uint32_t frame_size, uint32_t tov_ms)
{
    int v = TPACKET_V3;
    if (setsockopt(fd, SOL_PACKET, PACKET_VERSION, &v, sizeof v) < 0)
        return -errno;
    struct tpacket_req3 req;
    memset(&req, 0, sizeof req);
    req.tp_block_size = block_size;
    req.tp_block_nr = block_nr;
    req.tp_frame_size = frame_size;
    req.tp_frame_nr = (uint32_t)(((uint64_t)block_size / frame_size) * block_nr);
    req.tp_retire_blk_tov = tov_ms;
    if (setsockopt(fd, SOL_PACKET, PACKET_RX_RING, &req, sizeof req) < 0)
        return -errno;
    return 0;
}

int nr_rx_promisc(int fd, int ifindex)
{
    struct packet_mreq mr;
    memset(&mr, 0, sizeof mr);
    mr.mr_ifindex = ifindex;
    mr.mr_type = PACKET_MR_PROMISC;
    /* A membership is dropped by the kernel when the socket closes: nothing to undo by hand. */
    if (setsockopt(fd, SOL_PACKET, PACKET_ADD_MEMBERSHIP, &mr, sizeof mr) < 0)
        return -errno;
    return 0;
}

int nr_rx_attach_filter(int fd, const uint32_t *insns, uint32_t n)
{
    struct sock_filter prog[BPF_MAXINSNS];
    if (n == 0 || n > BPF_MAXINSNS)
        return -EINVAL;
    for (uint32_t i = 0; i < n; i++) {
        prog[i].code = (uint16_t)insns[4 * i];
        prog[i].jt = (uint8_t)insns[4 * i + 1];
        prog[i].jf = (uint8_t)insns[4 * i + 2];
        prog[i].k = insns[4 * i + 3];
    }
    struct sock_fprog fp = { .len = (unsigned short)n, .filter = prog };
    if (setsockopt(fd, SOL_SOCKET, SO_ATTACH_FILTER, &fp, sizeof fp) < 0)
        return -errno;
    return 0;
}

int nr_rx_stats(int fd, uint32_t *out3)
{
    struct tpacket_stats_v3 st;
    socklen_t len = sizeof st;
    memset(&st, 0, sizeof st);
    if (getsockopt(fd, SOL_PACKET, PACKET_STATISTICS, &st, &len) < 0)
        return -errno;
    out3[0] = st.tp_packets;
    out3[1] = st.tp_drops;
    out3[2] = st.tp_freeze_q_cnt;
    return 0;
}

uint32_t nr_rx_block_status(const uint8_t *block)
{
    const struct tpacket_block_desc *bd = (const struct tpacket_block_desc *)block;
    /* acquire: the block's packets (written by the kernel before it set TP_STATUS_USER) are
     * visible to every read that follows this load. */
    return NR_LOAD_ACQ(&bd->hdr.bh1.block_status);
}

void nr_rx_block_release(uint8_t *block)
{
    struct tpacket_block_desc *bd = (struct tpacket_block_desc *)block;
    /* release: all our reads of the block happen before the kernel may refill it. */
    NR_STORE_REL(&bd->hdr.bh1.block_status, TP_STATUS_KERNEL);
}

uint32_t nr_rx_block_num_pkts(const uint8_t *block)
{
    return ((const struct tpacket_block_desc *)block)->hdr.bh1.num_pkts;
}

uint64_t nr_rx_block_seq(const uint8_t *block)
{
    return ((const struct tpacket_block_desc *)block)->hdr.bh1.seq_num;
}

uint32_t nr_rx_walk(const uint8_t *block, uint32_t block_size, struct nr_rx_pkt *out, uint32_t max)
{
    struct nr_rx__it it;
    const struct tpacket3_hdr *h;
    uint32_t i = 0, off;
    nr_rx__begin(&it, block, block_size);
    while (i < max && (h = nr_rx__next(&it, &off)) != NULL) {
        out[i].off = off;
        out[i].snaplen = h->tp_snaplen;
        out[i].wirelen = h->tp_len;
        out[i].status = h->tp_status;
        out[i].ts_ns = (uint64_t)h->tp_sec * 1000000000ull + h->tp_nsec;
        out[i].vlan_tci = (h->tp_status & TP_STATUS_VLAN_VALID) ? h->hv1.tp_vlan_tci : 0;
        out[i].vlan_tpid = (h->tp_status & TP_STATUS_VLAN_TPID_VALID) ? h->hv1.tp_vlan_tpid : 0;
        out[i].pkttype = nr_rx__pkttype(h);
        i++;
    }
    return i;
}
