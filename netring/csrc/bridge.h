/* bridge: forward frames from a TPACKET_V3 RX ring into a TPACKET_V2 TX ring, with seeded
 * impairment (loss, duplication, reordering, corruption, delay with jitter). One direction per
 * struct nr_br_dir; one C call forwards until a time slice ends or a wake fd fires, so no Python
 * runs per packet. Prefix nr_br_. Every function returns >= 0 or -errno. */
#ifndef NETRING_BRIDGE_H
#define NETRING_BRIDGE_H
#include <stdint.h>
#include "common.h"
#include "rx.h"
#include "tx.h"

/* Decision bits of one input frame (nr_br_decide's output; the live loop takes the same ones). */
#define NR_BR_LOSS 1u
#define NR_BR_CORRUPT 2u
#define NR_BR_DUPLICATE 4u
#define NR_BR_REORDER 8u

/* nr_br_run's result: why it returned (>= 0), or -errno */
#define NR_BR_SLICE 0
#define NR_BR_WOKEN 1

/* Impairment of one direction. Probabilities are thresholds out of 2^32 (p * 2^32, saturating:
 * 0 never, 0xffffffff always but for one draw in 2^32). */
struct nr_br_imp {
    uint32_t loss;
    uint32_t duplicate;
    uint32_t reorder;
    uint32_t corrupt;
    uint64_t delay_ns;
    uint64_t jitter_ns;      /* the delay of each frame is uniform in [delay - jitter, delay + jitter] */
    uint64_t hold_ns;        /* a frame held back for reordering goes out alone after this long */
    uint64_t seed;
};

/* Counters of one direction (monotonic). */
struct nr_br_stats {
    uint64_t received;       /* frames read from the RX ring */
    uint64_t forwarded;      /* frames handed to the TX ring (duplicates included) */
    uint64_t dropped;        /* frames the `loss` decision dropped */
    uint64_t duplicated;     /* extra copies sent */
    uint64_t reordered;      /* frames sent after the frame that followed them */
    uint64_t corrupted;      /* frames with one bit flipped */
    uint64_t delayed;        /* frames that went through the delay queue */
    uint64_t queue_full;     /* frames dropped because the delay queue was full */
    uint64_t tx_dropped;     /* frames dropped because the TX ring stayed full (or was refused) */
    uint64_t too_long;       /* frames longer than the TX ring or queue slot takes (dropped) */
};

/* The queue of frames waiting to go out (delay, and the one reorder hold): a ring of `qcap` slots of
 * `qslot` bytes each in `qbuf`, with each frame's length and due time (CLOCK_MONOTONIC ns). */
struct nr_br_dir {
    /* RX side: the mapped V3 ring (read-only for us but for the block status word) */
    uint8_t *rx_base;
    uint32_t block_size;
    uint32_t block_nr;
    uint32_t rx_idx;         /* next block to look at */
    int rx_fd;
    struct nr_tx_ring *tx;   /* TX side (tx.h) */
    struct nr_br_imp imp;
    uint64_t rng;            /* PRNG state (splitmix64), from imp.seed at nr_br_init */
    uint8_t *qbuf;
    uint32_t qslot;
    uint32_t qcap;
    uint32_t *qlen;
    uint64_t *qdue;
    uint32_t qhead;          /* oldest queued frame */
    uint32_t qcount;
    uint8_t *hold;           /* qslot bytes: the frame held back for reordering */
    uint32_t hold_len;       /* 0: nothing held */
    uint32_t hold_dup;       /* the held frame was also chosen for duplication: it goes out twice */
    int32_t tx_err;          /* -errno of the last failed kick (other than EAGAIN/ENOBUFS), 0 if none */
    uint64_t hold_since;
    uint64_t last_due;       /* due time of the newest queued frame: the queue is FIFO */
    struct nr_br_stats st;
};

void nr_br_init(struct nr_br_dir *d);
uint32_t nr_br_decide(struct nr_br_dir *d, uint64_t *r_bit, int64_t *jitter_ns);
uint32_t nr_br_decisions(const struct nr_br_imp *imp, uint32_t n, uint32_t *out_flags);
int nr_br_process(struct nr_br_dir *d, const uint8_t *frame, uint32_t len);
int nr_br_run(struct nr_br_dir *d, int wake_fd, uint32_t slice_ms);
int nr_br_flush(struct nr_br_dir *d, int all);
uint32_t nr_br_corrupt_bit(const uint8_t *f, uint32_t len, uint64_t r);

#endif
