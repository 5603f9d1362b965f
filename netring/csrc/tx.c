#include <errno.h>
#include <string.h>
#include <sys/socket.h>
#include "tx.h"

int nr_tx_setup(int fd, uint32_t block_size, uint32_t block_nr, uint32_t frame_size, uint32_t frame_nr)
{
    int v = TPACKET_V2;
    if (setsockopt(fd, SOL_PACKET, PACKET_VERSION, &v, sizeof v) < 0)
        return -errno;
    struct tpacket_req req;
    memset(&req, 0, sizeof req);
    req.tp_block_size = block_size;
    req.tp_block_nr = block_nr;
    req.tp_frame_size = frame_size;
    req.tp_frame_nr = frame_nr;
    if (setsockopt(fd, SOL_PACKET, PACKET_TX_RING, &req, sizeof req) < 0)
        return -errno;
    return 0;
}

uint32_t nr_tx_slot_offset(const struct nr_tx_ring *r, uint32_t idx)
{
    return (uint32_t)(nr_tx__slot(r, idx) - r->base);
}

uint32_t nr_tx_status(const struct nr_tx_ring *r, uint32_t idx)
{
    return nr_tx__status(nr_tx__slot(r, idx));
}

void nr_tx_commit(struct nr_tx_ring *r, uint32_t len)
{
    nr_tx__submit(r, nr_tx__slot(r, r->head), len);
}

int nr_tx_kick(struct nr_tx_ring *r)
{
    /* With a TX ring, sendto() with no buffer asks the kernel to transmit every SEND_REQUEST
     * slot from its head on; MSG_DONTWAIT: queue them and return, never wait for completion. */
    ssize_t rc = sendto(r->fd, NULL, 0, MSG_DONTWAIT, NULL, 0);
    if (rc < 0)
        return -errno; /* `queued` stays: those slots are still requested and the next kick retries */
    r->queued = 0;
    return (int)(rc > 0x7fffffff ? 0x7fffffff : rc);
}

/* send_batch in one call: `n` frames laid end to end in `buf` (lengths in `lens`). With `validate`,
 * first check every length against [min_len, capacity] and that they add up to `buflen`, so a bad
 * frame raises before anything is sent. Then fill slots in ring order, kicking every `kick_every`
 * frames (0: only at the end) so the kernel transmits while we fill, and once more when the ring is
 * full (the kick frees slots as the kernel consumes them). Returns the frames queued (all of them
 * kicked), stopping early only when the ring stays full after a kick, and *out_err = -errno if a kick
 * failed with anything but EAGAIN/ENOBUFS (those slots stay requested and the next kick retries them).
 * Validation failures send nothing and return -errno, like every function of the core:
 * -EMSGSIZE when lens[*out_bad] is outside [min_len, capacity], -EINVAL when sum(lens) != buflen
 * (a frame whose len() is not its byte count). */
int64_t nr_tx_send(struct nr_tx_ring *r, const uint8_t *buf, uint64_t buflen, const uint32_t *lens, uint32_t n,
                   uint32_t min_len, int validate, uint32_t kick_every, int32_t *out_err, uint32_t *out_bad)
{
    uint32_t i;
    *out_err = 0;
    if (validate) {
        uint64_t sum = 0;
        for (i = 0; i < n; i++) {
            if (lens[i] < min_len || lens[i] > r->capacity) {
                *out_bad = i;
                return -EMSGSIZE;
            }
            /* Bounds first (64-bit): the frame must lie inside buf before its bytes are read. */
            if (sum + lens[i] > buflen)
                return -EINVAL;
            if (!nr_tx_frame_fits(r, buf + sum, lens[i])) {
                *out_bad = i;
                return -EMSGSIZE;
            }
            sum += lens[i];
        }
        if (sum != buflen)
            return -EINVAL;
    }
    for (i = 0; i < n; i++) {
        uint8_t *slot = nr_tx__slot(r, r->head);
        if (nr_tx__status(slot) != TP_STATUS_AVAILABLE) {
            if (r->queued == 0)
                break;
            int rc = nr_tx_kick(r);
            if (rc < 0 && rc != -EAGAIN && rc != -ENOBUFS) {
                *out_err = rc;
                return i;
            }
            if (nr_tx__status(slot) != TP_STATUS_AVAILABLE)
                break; /* still the kernel's: the caller waits for POLLOUT */
        }
        memcpy(slot + NR_TX_DATA_OFF, buf, lens[i]);
        nr_tx__submit(r, slot, lens[i]);
        buf += lens[i];
        if (kick_every && r->queued >= kick_every) {
            int rc = nr_tx_kick(r);
            if (rc < 0 && rc != -EAGAIN && rc != -ENOBUFS) {
                *out_err = rc;
                return i + 1;
            }
        }
    }
    if (r->queued) {
        int rc = nr_tx_kick(r);
        if (rc < 0 && rc != -EAGAIN && rc != -ENOBUFS)
            *out_err = rc;
    }
    return i;
}

void nr_tx_counts(const struct nr_tx_ring *r, uint32_t *out4)
{
    out4[0] = out4[1] = out4[2] = out4[3] = 0;
    for (uint32_t i = 0; i < r->frame_nr; i++) {
        uint32_t s = nr_tx__status(nr_tx__slot(r, i));
        if (s == TP_STATUS_AVAILABLE)
            out4[0]++;
        else if (s & TP_STATUS_WRONG_FORMAT)
            out4[2]++;
        else if (s & (TP_STATUS_SEND_REQUEST | TP_STATUS_SENDING))
            out4[1]++;
        else
            out4[3]++;
    }
}

/* 1 if the kernel will transmit this `len`-byte frame on the ring's link, 0 if it refuses it
 * (EMSGSIZE): at most `capacity`, and beyond MTU + 14 (`link_max`) only when it carries an 802.1Q
 * tag — the kernel's packet_extra_vlan_len_allowed looks at the outer ethertype and accepts 0x8100
 * alone (not 0x88a8). `frame` holds `len` readable bytes. */
int nr_tx_frame_fits(const struct nr_tx_ring *r, const uint8_t *frame, uint32_t len)
{
    if (len > r->capacity)
        return 0;
    if (len <= r->link_max)
        return 1;
    return len >= 14 && frame[12] == 0x81 && frame[13] == 0x00;
}

/* The kernel refused a requested slot (TP_STATUS_WRONG_FORMAT: e.g. EMSGSIZE after the MTU dropped)
 * and stopped its TX walk there: its head stays on that slot, so every later slot stays requested and
 * is never sent — resetting the slot to AVAILABLE alone does not help, the kernel waits for *that* slot
 * to be requested again. Recover by closing the gap: the requested slots behind it (k+1 .. head-1,
 * which the kernel has not read: it stops at k) move down by one, the last one becomes AVAILABLE and
 * `head` steps back, so the kernel resumes at k with the frame that followed the refused one, in order.
 * Call with no allocate() slot open and no kick in flight (the caller holds the ring). Returns 0 and
 * out3 = {refused slot, its tp_len, requested slots behind it}, or -ENOENT if no slot was refused;
 * with `apply` 0 it only finds the slot and changes nothing. */
int nr_tx_recover(struct nr_tx_ring *r, uint32_t *out3, int apply)
{
    uint32_t n = r->frame_nr, k = r->head, steps;
    /* Walk back over the requested slots to the refused one (at most the whole ring). */
    for (steps = 0; steps < n; steps++) {
        k = k == 0 ? n - 1 : k - 1;
        uint32_t s = nr_tx__status(nr_tx__slot(r, k));
        if (s & TP_STATUS_WRONG_FORMAT)
            break;
        if (s != TP_STATUS_SEND_REQUEST)
            return -ENOENT;
    }
    if (steps == n)
        return -ENOENT;
    struct tpacket2_hdr *bad = (struct tpacket2_hdr *)nr_tx__slot(r, k);
    out3[0] = k;
    out3[1] = bad->tp_len;
    out3[2] = steps;
    if (!apply)
        return 0;
    /* Slot k keeps TP_STATUS_WRONG_FORMAT while we copy, so the kernel reads none of these slots. */
    uint32_t dst = k;
    for (uint32_t m = 0; m < steps; m++) {
        uint32_t src = dst + 1 == n ? 0 : dst + 1;
        uint8_t *d = nr_tx__slot(r, dst), *sp = nr_tx__slot(r, src);
        struct tpacket2_hdr *dh = (struct tpacket2_hdr *)d, *sh = (struct tpacket2_hdr *)sp;
        uint32_t len = sh->tp_len;
        if (len > r->frame_size - NR_TX_DATA_OFF)  /* we wrote it, but never copy past a slot */
            len = r->frame_size - NR_TX_DATA_OFF;
        memcpy(d + NR_TX_DATA_OFF, sp + NR_TX_DATA_OFF, len);
        dh->tp_len = len;
        dh->tp_snaplen = len;
        if (r->tags != NULL)
            r->tags[dst] = r->tags[src];
        dst = src;
    }
    /* dst is now the last requested slot (or k itself if the refused frame was the last one). */
    if (r->tags != NULL)
        r->tags[dst] = 0;
    r->head = dst;
    if (dst != k) {
        /* Release: the kernel sees the last slot free, and slot k requested only after its bytes. */
        NR_STORE_REL(&((struct tpacket2_hdr *)nr_tx__slot(r, dst))->tp_status, TP_STATUS_AVAILABLE);
        NR_STORE_REL(&bad->tp_status, TP_STATUS_SEND_REQUEST);
        r->queued = steps;  /* requested, to be kicked */
    } else {
        NR_STORE_REL(&bad->tp_status, TP_STATUS_AVAILABLE);
        r->queued = 0;
    }
    return 0;
}
