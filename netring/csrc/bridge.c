#include <errno.h>
#include <poll.h>
#include <string.h>
#include <time.h>
#include <sys/socket.h>
#include "bridge.h"
#include "stampc.h"

#define NR_BR_NO_BIT 0xffffffffu
#define NR_BR_KICK_EVERY 256   /* kick the TX ring while filling, as send_batch does */
#define NR_BR_TX_WAIT_MS 100   /* a TX ring that stays full this long drops the frame */

static inline uint64_t nr_br__now(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000000000ull + (uint64_t)ts.tv_nsec;
}

/* splitmix64: one 64-bit state, every output a bijective mix of it — small, fast and reproducible. */
static inline uint64_t nr_br__next(uint64_t *s)
{
    uint64_t z = (*s += 0x9E3779B97F4A7C15ull);
    z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
    z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
    return z ^ (z >> 31);
}

static inline int nr_br__hit(uint64_t r, uint32_t thresh)
{
    return thresh != 0 && (uint32_t)(r >> 32) < thresh;
}

void nr_br_init(struct nr_br_dir *d)
{
    d->rng = d->imp.seed;
    d->qhead = d->qcount = 0;
    d->hold_len = d->hold_dup = 0;
    d->last_due = 0;
    d->tx_err = 0;
    memset(&d->st, 0, sizeof d->st);
}

/* The decisions for the next input frame. Always six draws, in this order, whatever is decided, so
 * frame k's decisions depend only on the seed and k (never on what earlier frames were). */
uint32_t nr_br_decide(struct nr_br_dir *d, uint64_t *r_bit, int64_t *jitter_ns)
{
    const struct nr_br_imp *m = &d->imp;
    uint32_t f = 0;
    if (nr_br__hit(nr_br__next(&d->rng), m->loss))
        f |= NR_BR_LOSS;
    if (nr_br__hit(nr_br__next(&d->rng), m->corrupt))
        f |= NR_BR_CORRUPT;
    if (nr_br__hit(nr_br__next(&d->rng), m->duplicate))
        f |= NR_BR_DUPLICATE;
    if (nr_br__hit(nr_br__next(&d->rng), m->reorder))
        f |= NR_BR_REORDER;
    *r_bit = nr_br__next(&d->rng);
    uint64_t rj = nr_br__next(&d->rng);
    *jitter_ns = m->jitter_ns ? (int64_t)(rj % (2 * m->jitter_ns + 1)) - (int64_t)m->jitter_ns : 0;
    return f;
}

/* The decision bits of `n` input frames under `imp` (a fresh state from imp->seed): what the live
 * loop decides for frames 0..n-1, for tests and for reproducing a run. */
uint32_t nr_br_decisions(const struct nr_br_imp *imp, uint32_t n, uint32_t *out_flags)
{
    struct nr_br_dir d;
    uint64_t rb;
    int64_t j;
    memset(&d, 0, sizeof d);
    d.imp = *imp;
    nr_br_init(&d);
    for (uint32_t i = 0; i < n; i++)
        out_flags[i] = nr_br_decide(&d, &rb, &j);
    return n;
}

static inline uint32_t nr_br__be32(const uint8_t *p)
{
    return ((uint32_t)p[0] << 24) | ((uint32_t)p[1] << 16) | ((uint32_t)p[2] << 8) | p[3];
}

/* The bit to flip (byte * 8 + bit) in a `len`-byte frame, from the random word `r`. A stamped frame
 * (netring/stamp.py) gets it in the `plen` payload bytes the check covers or in the check word —
 * never in the magic, stream id, plen or seq — so the checker still finds the frame's stream and
 * counts it corrupt. Any other frame gets it after the Ethernet header. NR_BR_NO_BIT if the frame
 * has no such byte. */
uint32_t nr_br_corrupt_bit(const uint8_t *f, uint32_t len, uint64_t r)
{
    int32_t off = nr_st_locate(f, len);
    if (off >= 0 && (uint32_t)off + NR_ST_STAMP_LEN <= len && nr_br__be32(f + off) == NR_ST_MAGIC) {
        uint32_t plen = ((uint32_t)f[off + 6] << 8) | f[off + 7];
        if (plen > (uint32_t)off)
            plen = 0; /* a bad plen: the check fails anyway; use the check word */
        uint64_t bits = (uint64_t)plen * 8 + 32;
        uint64_t k = r % bits;
        if (k < (uint64_t)plen * 8)
            return (uint32_t)(((uint32_t)off - plen) * 8 + k);
        return (uint32_t)(((uint32_t)off + 16) * 8 + (k - (uint64_t)plen * 8));
    }
    if (len <= 14)
        return NR_BR_NO_BIT;
    return (uint32_t)(14 * 8 + r % ((uint64_t)(len - 14) * 8));
}

static inline void nr_br__flip(uint8_t *p, uint32_t bit)
{
    if (bit != NR_BR_NO_BIT)
        p[bit >> 3] ^= (uint8_t)(1u << (bit & 7));
}

static inline void nr_br__kick(struct nr_br_dir *d)
{
    int rc = nr_tx_kick(d->tx);
    if (rc < 0 && rc != -EAGAIN && rc != -ENOBUFS)
        d->tx_err = rc;
}

/* The next TX slot, or NULL when the ring is full (after a kick). With `wait`, wait up to
 * NR_BR_TX_WAIT_MS for the kernel to free one. A slot the kernel refused (WRONG_FORMAT: the MTU
 * shrank under us) is recovered the way Injector does it, and costs that one frame. */
static uint8_t *nr_br__tx_slot(struct nr_br_dir *d, int wait)
{
    struct nr_tx_ring *r = d->tx;
    for (int tries = 0;; tries++) {
        uint8_t *slot = nr_tx__slot(r, r->head);
        uint32_t s = nr_tx__status(slot);
        if (s == TP_STATUS_AVAILABLE)
            return slot;
        if (s & TP_STATUS_WRONG_FORMAT) {
            uint32_t out3[3];
            if (nr_tx_recover(r, out3, 1) == 0)
                d->st.tx_dropped++;
            continue;
        }
        if (r->queued)
            nr_br__kick(d);
        if (nr_tx__status(slot) == TP_STATUS_AVAILABLE)
            return slot;
        if (!wait || tries >= NR_BR_TX_WAIT_MS)
            return NULL;
        struct pollfd p = { .fd = r->fd, .events = POLLOUT, .revents = 0 };
        poll(&p, 1, 1);
    }
}

static void nr_br__tx(struct nr_br_dir *d, uint8_t *slot, const uint8_t *src, uint32_t len, uint32_t bit)
{
    memcpy(slot + NR_TX_DATA_OFF, src, len);
    nr_br__flip(slot + NR_TX_DATA_OFF, bit);
    nr_tx__submit(d->tx, slot, len);
    d->st.forwarded++;
    if (d->tx->queued >= NR_BR_KICK_EVERY)
        nr_br__kick(d);
}

/* Send one frame now (no delay configured) or queue it with its due time. */
static void nr_br__emit(struct nr_br_dir *d, const uint8_t *src, uint32_t len, uint32_t bit, int64_t jitter,
                        uint64_t now)
{
    if (d->imp.delay_ns == 0 && d->imp.jitter_ns == 0) {
        uint8_t *slot = nr_br__tx_slot(d, 1);
        if (slot == NULL)
            d->st.tx_dropped++;
        else
            nr_br__tx(d, slot, src, len, bit);
        return;
    }
    if (d->qcount == d->qcap) {
        d->st.queue_full++;
        return;
    }
    uint32_t i = d->qhead + d->qcount;
    if (i >= d->qcap)
        i -= d->qcap;
    uint8_t *q = d->qbuf + (size_t)i * d->qslot;
    memcpy(q, src, len);
    nr_br__flip(q, bit);
    int64_t delay = (int64_t)d->imp.delay_ns + jitter;
    uint64_t due = now + (uint64_t)(delay > 0 ? delay : 0);
    if (due < d->last_due)
        due = d->last_due; /* FIFO: jitter spreads the delay but never reorders (reorder does that) */
    d->last_due = due;
    d->qlen[i] = len;
    d->qdue[i] = due;
    d->qcount++;
    d->st.delayed++;
}

/* Send the held frame (twice if it was chosen for duplication too) and empty the hold. */
static void nr_br__release_hold(struct nr_br_dir *d, int64_t jitter, uint64_t now)
{
    nr_br__emit(d, d->hold, d->hold_len, NR_BR_NO_BIT, jitter, now);
    if (d->hold_dup) {
        nr_br__emit(d, d->hold, d->hold_len, NR_BR_NO_BIT, jitter, now);
        d->st.duplicated++;
    }
    d->hold_len = d->hold_dup = 0;
}

/* One input frame through the pipeline: loss, corruption, reorder hold, duplication, delay. */
int nr_br_process(struct nr_br_dir *d, const uint8_t *frame, uint32_t len)
{
    uint64_t rbit, now = 0;
    int64_t jit;
    d->st.received++;
    uint32_t f = nr_br_decide(d, &rbit, &jit); /* first: frame k always takes decisions k */
    if (len > d->qslot || !nr_tx_frame_fits(d->tx, frame, len)) {
        d->st.too_long++;
        return 0;
    }
    if (f & NR_BR_LOSS) {
        d->st.dropped++;
        return 0;
    }
    uint32_t bit = NR_BR_NO_BIT;
    if (f & NR_BR_CORRUPT) {
        bit = nr_br_corrupt_bit(frame, len, rbit);
        if (bit != NR_BR_NO_BIT)
            d->st.corrupted++;
    }
    if (d->imp.delay_ns || d->imp.jitter_ns || (f & NR_BR_REORDER) || d->hold_len)
        now = nr_br__now();
    if ((f & NR_BR_REORDER) && d->hold_len == 0) {
        memcpy(d->hold, frame, len);
        nr_br__flip(d->hold, bit);
        d->hold_len = len;
        d->hold_dup = (f & NR_BR_DUPLICATE) != 0; /* keeps its duplicate decision: the rate holds */
        d->hold_since = now;
        return 0; /* it goes out right after the next frame (or alone after hold_ns) */
    }
    nr_br__emit(d, frame, len, bit, jit, now);
    if (f & NR_BR_DUPLICATE) {
        nr_br__emit(d, frame, len, bit, jit, now);
        d->st.duplicated++;
    }
    if (d->hold_len) {
        nr_br__release_hold(d, jit, now);
        d->st.reordered++;
    }
    return 0;
}

/* Send the queued frames that are due (all of them with `all`), the held frame if it waited hold_ns
 * (or with `all`), and kick. Returns the frames still queued. */
int nr_br_flush(struct nr_br_dir *d, int all)
{
    uint64_t now = nr_br__now();
    if (d->hold_len && (all || now - d->hold_since >= d->imp.hold_ns))
        nr_br__release_hold(d, 0, now);
    while (d->qcount && (all || d->qdue[d->qhead] <= now)) {
        uint8_t *slot = nr_br__tx_slot(d, all);
        if (slot == NULL) {
            if (!all)
                break; /* the ring is full: the rest waits for the next flush */
            d->st.tx_dropped++;
        } else {
            nr_br__tx(d, slot, d->qbuf + (size_t)d->qhead * d->qslot, d->qlen[d->qhead], NR_BR_NO_BIT);
        }
        d->qhead = d->qhead + 1 == d->qcap ? 0 : d->qhead + 1;
        d->qcount--;
    }
    if (d->tx->queued)
        nr_br__kick(d);
    return (int)d->qcount;
}

/* Forward every frame of one retired block and hand the block back. */
static void nr_br__block(struct nr_br_dir *d, uint8_t *blk)
{
    struct nr_rx__it it;
    const struct tpacket3_hdr *h;
    uint32_t off;
    nr_rx__begin(&it, blk, d->block_size);
    while ((h = nr_rx__next(&it, &off)) != NULL) {
        if (nr_rx__pkttype(h) == PACKET_OUTGOING)
            continue; /* our own TX seen on this link (PACKET_IGNORE_OUTGOING should keep them out) */
        if (h->tp_snaplen < h->tp_len) {
            d->st.received++;
            d->st.too_long++; /* truncated by the ring: never forward a partial frame */
            continue;
        }
        nr_br_process(d, blk + off, h->tp_snaplen);
    }
    nr_rx_block_release(blk);
}

/* Forward for up to `slice_ms`: walk retired RX blocks, send due frames, wait (ppoll) for the next
 * block, the next due time or the wake fd. NR_BR_WOKEN when wake_fd fired, NR_BR_SLICE when the
 * slice ended, -EINTR on a signal (Python runs its handlers and calls again), other -errno on a
 * socket error. */
int nr_br_run(struct nr_br_dir *d, int wake_fd, uint32_t slice_ms)
{
    uint64_t end = nr_br__now() + (uint64_t)slice_ms * 1000000ull;
    for (;;) {
        uint8_t *blk = d->rx_base + (size_t)d->rx_idx * d->block_size;
        if (nr_rx_block_status(blk) & TP_STATUS_USER) {
            nr_br__block(d, blk);
            d->rx_idx = d->rx_idx + 1 == d->block_nr ? 0 : d->rx_idx + 1;
            nr_br_flush(d, 0);
            if (nr_br__now() >= end)
                return NR_BR_SLICE;
            continue;
        }
        nr_br_flush(d, 0);
        uint64_t now = nr_br__now();
        if (now >= end)
            return NR_BR_SLICE;
        uint64_t wait = end - now;
        if (d->qcount) {
            uint64_t due = d->qdue[d->qhead];
            wait = due <= now ? 100000 : (due - now < wait ? due - now : wait); /* due but TX full: 100 us */
        }
        if (d->hold_len) {
            uint64_t at = d->hold_since + d->imp.hold_ns;
            uint64_t w = at <= now ? 0 : at - now;
            if (w < wait)
                wait = w;
        }
        struct timespec ts = { .tv_sec = (time_t)(wait / 1000000000ull), .tv_nsec = (long)(wait % 1000000000ull) };
        struct pollfd p[2] = {
            { .fd = d->rx_fd, .events = POLLIN, .revents = 0 },
            { .fd = wake_fd, .events = POLLIN, .revents = 0 },
        };
        int rc = ppoll(p, 2, &ts, NULL);
        if (rc < 0)
            return -errno;
        if (p[1].revents)
            return NR_BR_WOKEN;
        if (p[0].revents & POLLNVAL)
            return -EBADF;
        if (p[0].revents & POLLERR) {
            int err = 0;
            socklen_t l = sizeof err;
            if (getsockopt(d->rx_fd, SOL_SOCKET, SO_ERROR, &err, &l) == 0 && err != 0)
                return -err;
        }
        if ((p[0].revents & POLLIN) && !(nr_rx_block_status(blk) & TP_STATUS_USER)) {
            /* V3 poll reports the kernel's previous block; readable while ours is not ready would
             * spin: back off briefly instead. */
            struct timespec nap = { .tv_sec = 0, .tv_nsec = 50000 };
            nanosleep(&nap, NULL);
        }
    }
}
