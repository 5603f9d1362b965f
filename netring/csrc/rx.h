/* rx: TPACKET_V3 receive ring — socket set-up and the one-call block walk. Prefix nr_rx_. */
#ifndef NETRING_RX_H
#define NETRING_RX_H
#include <stdint.h>
#include <sys/socket.h>
/* linux/if_packet.h (not glibc's netpacket/packet.h: it lacks the TPACKET structs; the two
 * must never be included together) */
#include <linux/if_packet.h>
#include <linux/if_ether.h>
#include <linux/filter.h>
#include "common.h"

#ifndef PACKET_IGNORE_OUTGOING
#define PACKET_IGNORE_OUTGOING 23 /* Linux 4.20 */
#endif
#ifndef PACKET_FANOUT_FLAG_IGNORE_OUTGOING
#define PACKET_FANOUT_FLAG_IGNORE_OUTGOING 0x4000 /* added after Linux 6.1 (absent from linux-libc-dev 6.1); older kernels reject it with EINVAL */
#endif
#ifndef SO_BUSY_POLL
#define SO_BUSY_POLL 46
#endif

/* Kernel constants re-exported under our prefix, so cdefs of other components never collide. */
#define NR_RX_PACKET_IGNORE_OUTGOING PACKET_IGNORE_OUTGOING
#define NR_RX_PACKET_FANOUT PACKET_FANOUT
#define NR_RX_PACKET_FANOUT_HASH PACKET_FANOUT_HASH
#define NR_RX_PACKET_FANOUT_LB PACKET_FANOUT_LB
#define NR_RX_PACKET_FANOUT_CPU PACKET_FANOUT_CPU
#define NR_RX_PACKET_FANOUT_ROLLOVER PACKET_FANOUT_ROLLOVER
#define NR_RX_PACKET_FANOUT_RND PACKET_FANOUT_RND
#define NR_RX_PACKET_FANOUT_QM PACKET_FANOUT_QM
#define NR_RX_PACKET_FANOUT_FLAG_ROLLOVER PACKET_FANOUT_FLAG_ROLLOVER
#define NR_RX_PACKET_FANOUT_FLAG_UNIQUEID PACKET_FANOUT_FLAG_UNIQUEID
#define NR_RX_PACKET_FANOUT_FLAG_IGNORE_OUTGOING PACKET_FANOUT_FLAG_IGNORE_OUTGOING
#define NR_RX_PACKET_FANOUT_FLAG_DEFRAG PACKET_FANOUT_FLAG_DEFRAG
#define NR_RX_SO_BUSY_POLL SO_BUSY_POLL
#define NR_RX_ETH_P_ALL ETH_P_ALL
#define NR_RX_TP_STATUS_USER TP_STATUS_USER
#define NR_RX_TP_STATUS_COPY TP_STATUS_COPY
#define NR_RX_TP_STATUS_LOSING TP_STATUS_LOSING
#define NR_RX_TP_STATUS_BLK_TMO TP_STATUS_BLK_TMO
#define NR_RX_TP_STATUS_VLAN_VALID TP_STATUS_VLAN_VALID
#define NR_RX_TP_STATUS_VLAN_TPID_VALID TP_STATUS_VLAN_TPID_VALID
#define NR_RX_TPACKET_ALIGNMENT TPACKET_ALIGNMENT
#define NR_RX_BPF_MAXINSNS BPF_MAXINSNS
#define NR_RX_TPACKET3_HDRLEN TPACKET3_HDRLEN
#define NR_RX_PACKET_HOST PACKET_HOST
#define NR_RX_PACKET_BROADCAST PACKET_BROADCAST
#define NR_RX_PACKET_MULTICAST PACKET_MULTICAST
#define NR_RX_PACKET_OTHERHOST PACKET_OTHERHOST
#define NR_RX_PACKET_OUTGOING PACKET_OUTGOING

/* One packet of a retired block, as the walk reports it. `off` is relative to the block start. */
struct nr_rx_pkt {
    uint64_t ts_ns;
    uint32_t off;
    uint32_t snaplen;
    uint32_t wirelen;
    uint32_t status;
    uint16_t vlan_tci;
    uint16_t vlan_tpid;
    uint8_t pkttype;
    uint8_t pad[3];
};

int nr_rx_setup(int fd, uint32_t block_size, uint32_t block_nr, uint32_t frame_size, uint32_t tov_ms);
int nr_rx_promisc(int fd, int ifindex);
int nr_rx_attach_filter(int fd, const uint32_t *insns, uint32_t n);
int nr_rx_stats(int fd, uint32_t *out3);
uint32_t nr_rx_block_status(const uint8_t *block);
void nr_rx_block_release(uint8_t *block);
uint32_t nr_rx_block_num_pkts(const uint8_t *block);
uint64_t nr_rx_block_seq(const uint8_t *block);
uint32_t nr_rx_walk(const uint8_t *block, uint32_t block_size, struct nr_rx_pkt *out, uint32_t max);

/* Iterate the packets of a retired V3 block: used by the walk above and by the stamp checker
 * (stampc.c). The caller has already done the acquire load of block_status that makes the block's
 * contents visible. Every offset comes from the kernel-written block, so each header (with the
 * sockaddr_ll after it) and each frame is bounds-checked in 64-bit arithmetic BEFORE it is read. */
#define NR_RX__HDR_SPAN (TPACKET_ALIGN(sizeof(struct tpacket3_hdr)) + sizeof(struct sockaddr_ll))

struct nr_rx__it {
    const uint8_t *block;
    uint64_t size;
    uint64_t pos;  /* offset of the next header */
    uint32_t left; /* packets still to visit */
};

static inline void nr_rx__begin(struct nr_rx__it *it, const uint8_t *block, uint32_t block_size)
{
    const struct tpacket_block_desc *bd = (const struct tpacket_block_desc *)block;
    it->block = block;
    it->size = block_size;
    it->pos = bd->hdr.bh1.offset_to_first_pkt;
    it->left = bd->hdr.bh1.num_pkts;
}

/* The next packet's header, with its frame at [*off, *off + tp_snaplen) inside the block; NULL when
 * the walk ends (all visited, or an offset that would leave the block). */
static inline const struct tpacket3_hdr *nr_rx__next(struct nr_rx__it *it, uint32_t *off)
{
    if (it->left == 0 || it->pos + NR_RX__HDR_SPAN > it->size)
        return NULL;
    const struct tpacket3_hdr *h = (const struct tpacket3_hdr *)(it->block + it->pos);
    uint64_t data = it->pos + h->tp_mac;
    if (data > it->size || h->tp_snaplen > it->size - data)
        return NULL;
    *off = (uint32_t)data;
    it->left--;
    if (h->tp_next_offset < NR_RX__HDR_SPAN)
        it->left = 0; /* 0 marks the last packet; anything shorter could not hold a header */
    else
        it->pos += h->tp_next_offset;
    return h;
}

static inline uint8_t nr_rx__pkttype(const struct tpacket3_hdr *h)
{
    const struct sockaddr_ll *sll = (const struct sockaddr_ll *)((const uint8_t *)h + TPACKET_ALIGN(sizeof(struct tpacket3_hdr)));
    return sll->sll_pkttype;
}

#endif
