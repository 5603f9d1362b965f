/* tx: TPACKET_V2 transmit ring — frame fill, kick, slot accounting. Prefix nr_tx_. */
#ifndef NETRING_TX_H
#define NETRING_TX_H
#include <stdint.h>
#include <sys/socket.h>
#include <linux/if_packet.h>
#include "common.h"

#define NR_TX_TP_STATUS_AVAILABLE TP_STATUS_AVAILABLE
#define NR_TX_TP_STATUS_SEND_REQUEST TP_STATUS_SEND_REQUEST
#define NR_TX_TP_STATUS_SENDING TP_STATUS_SENDING
#define NR_TX_TP_STATUS_WRONG_FORMAT TP_STATUS_WRONG_FORMAT
#define NR_TX_PACKET_QDISC_BYPASS PACKET_QDISC_BYPASS
#define NR_TX_TPACKET_ALIGNMENT TPACKET_ALIGNMENT
/* Where frame data starts in a TX slot (no PACKET_TX_HAS_OFF): right after the aligned V2 header. */
#define NR_TX_DATA_OFF TPACKET_ALIGN(sizeof(struct tpacket2_hdr))

/* The ring as both Python and C see it. Python fills the geometry once; `head` is the next slot
 * we (the producer) fill; the kernel consumes slots in the same order. */
struct nr_tx_ring {
    uint8_t *base;
    uint32_t frame_size;
    uint32_t block_size;
    uint32_t frames_per_block;
    uint32_t frame_nr;
    uint32_t head;
    uint32_t capacity;  /* largest frame accepted (bytes): a tagged one, at most MTU + 18 */
    int fd;
    uint32_t queued;    /* slots committed since the last kick */
    uint32_t gen;       /* send_stream generation: names the templates in `tags` (Python bumps it per call) */
    uint64_t *tags;     /* per slot: (gen << 32 | template index + 1) of the template whose bytes the slot
                         * still holds, 0 if unknown; NULL disables the template-reuse shortcut */
    uint32_t link_max;  /* largest untagged frame the link carries: MTU + 14. Longer ones, up to
                         * `capacity`, only with an 802.1Q tag (the kernel's packet_extra_vlan_len_allowed) */
};

int nr_tx_setup(int fd, uint32_t block_size, uint32_t block_nr, uint32_t frame_size, uint32_t frame_nr);
uint32_t nr_tx_slot_offset(const struct nr_tx_ring *r, uint32_t idx);
uint32_t nr_tx_status(const struct nr_tx_ring *r, uint32_t idx);
void nr_tx_commit(struct nr_tx_ring *r, uint32_t len);
int nr_tx_kick(struct nr_tx_ring *r);
int64_t nr_tx_send(struct nr_tx_ring *r, const uint8_t *buf, uint64_t buflen, const uint32_t *lens, uint32_t n,
                   uint32_t min_len, int validate, uint32_t kick_every, int32_t *out_err, uint32_t *out_bad);
void nr_tx_counts(const struct nr_tx_ring *r, uint32_t *out4);
int nr_tx_frame_fits(const struct nr_tx_ring *r, const uint8_t *frame, uint32_t len);
int nr_tx_recover(struct nr_tx_ring *r, uint32_t *out3, int apply);

static inline uint8_t *nr_tx__slot(const struct nr_tx_ring *r, uint32_t idx)
{
    return r->base + (size_t)(idx / r->frames_per_block) * r->block_size
        + (size_t)(idx % r->frames_per_block) * r->frame_size;
}

/* Acquire: the kernel is done reading a slot it handed back as AVAILABLE before we overwrite it. */
static inline uint32_t nr_tx__status(const uint8_t *slot)
{
    return NR_LOAD_ACQ(&((const struct tpacket2_hdr *)slot)->tp_status);
}

/* Set the length and hand the slot to the kernel, recording which template it now holds (`tag`,
 * 0: none known). Release: the frame bytes and tp_len are visible before the kernel sees
 * TP_STATUS_SEND_REQUEST. */
static inline void nr_tx__submit_tag(struct nr_tx_ring *r, uint8_t *slot, uint32_t len, uint64_t tag)
{
    struct tpacket2_hdr *h = (struct tpacket2_hdr *)slot;
    h->tp_len = len;
    h->tp_snaplen = len;
    if (r->tags != NULL)
        r->tags[r->head] = tag;
    NR_STORE_REL(&h->tp_status, TP_STATUS_SEND_REQUEST);
    r->head = (r->head + 1 == r->frame_nr) ? 0 : r->head + 1;
    r->queued++;
}

/* Generic writers (send_batch, allocate): the slot's bytes are no longer a known template. */
static inline void nr_tx__submit(struct nr_tx_ring *r, uint8_t *slot, uint32_t len)
{
    nr_tx__submit_tag(r, slot, len, 0);
}

/* True if the slot at `idx` still holds, byte for byte, the template named `tag` (the kernel only
 * reads TX slot data, so bytes written by an earlier send of the same template are still there). */
static inline int nr_tx__holds(const struct nr_tx_ring *r, uint32_t idx, uint64_t tag)
{
    return r->tags != NULL && r->tags[idx] == tag;
}

#endif
