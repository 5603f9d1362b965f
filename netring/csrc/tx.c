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
