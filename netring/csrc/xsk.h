/* xsk: AF_XDP sockets — UMEM registration, the four rings (fill, completion, RX, TX), the
 * producer/consumer protocol and the UMEM frame allocator. Prefix nr_xsk_.
 *
 * Frame ownership: the UMEM is cut into `frame_count` frames of `frame_size` bytes. Frames
 * [0, rx_frames) are RX frames, [rx_frames, frame_count) TX frames; the two sets never mix.
 * Each frame has one state (`state[]`), and every hand-over checks and moves it, so a frame is
 * never handed out twice:
 *   RX: FREE (our stack) -> FILL (fill ring, the kernel's) -> HELD (came back in an RX
 *       descriptor, lent to a batch) -> FREE on release.
 *   TX: FREE (our stack) -> INFLIGHT (TX ring / being sent) -> FREE when the completion ring
 *       returns it.
 * Every descriptor the kernel returns (RX ring, completion ring) is bounds-checked before it is
 * read: address and length inside the UMEM, inside one frame, and the frame in the state we
 * handed it out in. A descriptor that fails is refused — counted in `bad_descs`, never read. */
#ifndef NETRING_XSK_H
#define NETRING_XSK_H
#include <stdint.h>
#include <sys/socket.h>
#include <linux/if_xdp.h>
#include "common.h"
#include "stampc.h"

#ifndef AF_XDP
#define AF_XDP 44
#endif
#ifndef SOL_XDP
#define SOL_XDP 283
#endif
/* Busy-poll knobs: SO_PREFER_BUSY_POLL / SO_BUSY_POLL_BUDGET came with Linux 5.11. */
#ifndef SO_PREFER_BUSY_POLL
#define SO_PREFER_BUSY_POLL 69
#endif
#ifndef SO_BUSY_POLL_BUDGET
#define SO_BUSY_POLL_BUDGET 70
#endif
#ifndef SO_BUSY_POLL
#define SO_BUSY_POLL 46
#endif

#define NR_XSK_AF_XDP AF_XDP
#define NR_XSK_SOL_XDP SOL_XDP
#define NR_XSK_SO_PREFER_BUSY_POLL SO_PREFER_BUSY_POLL
#define NR_XSK_SO_BUSY_POLL SO_BUSY_POLL
#define NR_XSK_SO_BUSY_POLL_BUDGET SO_BUSY_POLL_BUDGET
#define NR_XSK_XDP_COPY XDP_COPY
#define NR_XSK_XDP_ZEROCOPY XDP_ZEROCOPY
#define NR_XSK_XDP_USE_NEED_WAKEUP XDP_USE_NEED_WAKEUP
#define NR_XSK_PGOFF_RX_RING XDP_PGOFF_RX_RING
#define NR_XSK_PGOFF_TX_RING XDP_PGOFF_TX_RING
#define NR_XSK_UMEM_PGOFF_FILL_RING XDP_UMEM_PGOFF_FILL_RING
#define NR_XSK_UMEM_PGOFF_COMPLETION_RING XDP_UMEM_PGOFF_COMPLETION_RING
/* What a copy-mode (and every aligned-mode) RX frame keeps in front of the packet. */
#define NR_XSK_XDP_PACKET_HEADROOM 256

/* frame states */
#define NR_XSK_FREE 0
#define NR_XSK_FILL 1
#define NR_XSK_HELD 2
#define NR_XSK_INFLIGHT 3

/* which ring of a socket (nr_xsk_ring_layout / the test helpers) */
#define NR_XSK_RING_FILL 0
#define NR_XSK_RING_COMP 1
#define NR_XSK_RING_RX 2
#define NR_XSK_RING_TX 3

/* what nr_xsk_busy_note learns from (see nr_xsk_rx_spin) */
#define NR_XSK_BUSY_SELF 0       /* frames arrived while we spun without a syscall */
#define NR_XSK_BUSY_KICK_FED 1   /* a recvfrom() and the RX ring had frames right after */
#define NR_XSK_BUSY_KICK_DRY 2   /* a recvfrom() and the RX ring still empty */

/* Busy-poll kick rule (nr_xsk_rx_spin): the RX ring must have been empty for kick_after_ns before a
 * recvfrom() busy-polls the device; kick_after_ns adapts between 0 and NR_XSK_KICK_AFTER_MAX_NS
 * (halved when a recvfrom brought frames, doubled — from at least NR_XSK_KICK_AFTER_MIN_NS — when
 * frames arrived without one or a recvfrom brought none). */
#define NR_XSK_KICK_AFTER_MIN_NS 500
#define NR_XSK_KICK_AFTER_MAX_NS 64000

/* One ring as mapped: the kernel's producer/consumer/flags words and its entries (u64 addresses
 * for fill/completion, struct xdp_desc for RX/TX). `size` is a power of two. `cached_prod` /
 * `cached_cons` are our copies: the side we own is exact, the other side refreshed with an
 * acquire load when we run out. */
struct nr_xsk_ring {
    uint32_t *producer;
    uint32_t *consumer;
    uint32_t *flags;
    void *ring;
    uint32_t size;
    uint32_t mask;
    uint32_t cached_prod;
    uint32_t cached_cons;
};

/* Offsets of one ring inside its mapping (from XDP_MMAP_OFFSETS). */
struct nr_xsk_offs {
    uint64_t producer;
    uint64_t consumer;
    uint64_t desc;
    uint64_t flags;
};

/* One received frame: UMEM address and length (checked), and the kernel's options word. */
struct nr_xsk_pkt {
    uint64_t addr;
    uint32_t len;
    uint32_t options;
};

struct nr_xsk {
    int fd;
    uint32_t frame_size;   /* power of two (aligned chunk mode) */
    uint32_t frame_shift;  /* log2(frame_size) */
    uint32_t frame_count;
    uint32_t rx_frames;    /* frames [0, rx_frames) are RX frames, the rest TX frames */
    uint32_t headroom;     /* UMEM headroom (XDP_UMEM_REG) */
    uint32_t need_wakeup;  /* bound with XDP_USE_NEED_WAKEUP: kick only when a ring's flag asks */
    uint32_t busy_poll;    /* 1: busy-poll mode: waits spin on the RX ring, kicking by nr_xsk_rx_spin's rule */
    uint32_t kick_after_ns; /* busy poll: how long the RX ring must stay empty before a recvfrom (adaptive) */
    uint64_t rx_empty_since_ns; /* busy poll: when the current empty stretch began (or the last kick); 0: none */
    uint8_t *umem;
    uint64_t umem_size;
    struct nr_xsk_ring fill, comp, rx, tx;
    uint8_t *state;        /* frame_count entries, NR_XSK_FREE.. */
    uint64_t *rx_free;     /* stack of free RX frame addresses (rx_frames entries) */
    uint32_t rx_free_n;
    uint64_t *tx_free;     /* stack of free TX frame addresses (frame_count - rx_frames entries) */
    uint32_t tx_free_n;
    uint32_t tx_inflight;  /* TX frames produced and not yet completed */
    uint32_t tx_pending;   /* TX descriptors produced since the kernel last drained the TX ring */
    uint64_t bad_descs;    /* descriptors refused by the bounds/state check (never read) */
    uint64_t rx_packets;
    uint64_t tx_packets;
    uint64_t kicks;        /* sendto/recvfrom wake-ups issued */
    uint64_t rx_kicks;     /* ... of which recvfrom() from the receive path (refill wake-ups, busy polls) */
    uint64_t rx_kicks_fruitful; /* busy-poll recvfrom()s after which the RX ring had frames */
    uint64_t rx_empty_checks; /* busy-poll checks that found the RX ring empty */
    int32_t last_err;      /* -errno of the last failed kick that was not a "try again" */
};

int nr_xsk_umem_reg(int fd, uint8_t *umem, uint64_t len, uint32_t frame_size, uint32_t headroom);
int nr_xsk_set_ring(int fd, int which, uint32_t entries);
int nr_xsk_offsets(int fd, struct nr_xsk_offs *out4);
int nr_xsk_bind(int fd, int ifindex, uint32_t queue, uint32_t flags);
int nr_xsk_options(int fd);
int nr_xsk_stats(int fd, uint64_t *out6);
void nr_xsk_ring_layout(struct nr_xsk_ring *r, uint8_t *map, const struct nr_xsk_offs *o, uint32_t size);
int nr_xsk_init(struct nr_xsk *x);
uint32_t nr_xsk_refill(struct nr_xsk *x);
int nr_xsk_rx_ready(struct nr_xsk *x);
uint32_t nr_xsk_rx_take(struct nr_xsk *x, struct nr_xsk_pkt *out, uint32_t max);
int nr_xsk_rx_release(struct nr_xsk *x, const struct nr_xsk_pkt *pkts, uint32_t n);
int nr_xsk_rx_kick(struct nr_xsk *x);
int nr_xsk_rx_spin(struct nr_xsk *x, uint64_t max_ns);
void nr_xsk_busy_note(struct nr_xsk *x, int outcome);
int64_t nr_xsk_drain(struct nr_xsk *x, struct nr_st_checker *c, struct nr_xsk_pkt *scratch, uint32_t batch,
                     uint64_t until_ns, uint64_t *last_ns);
uint32_t nr_xsk_reap(struct nr_xsk *x);
int nr_xsk_kick(struct nr_xsk *x);
int64_t nr_xsk_tx_send(struct nr_xsk *x, const uint8_t *buf, const uint32_t *lens, uint32_t n);
uint32_t nr_xsk_tx_room(struct nr_xsk *x);
int64_t nr_xsk_send_stream(struct nr_xsk *x, struct nr_st_job *j);
void nr_xsk_check_pkts(struct nr_st_checker *c, const uint8_t *umem, const struct nr_xsk_pkt *pkts, uint32_t n);
uint32_t nr_xsk_drain_step(struct nr_xsk *x, struct nr_st_checker *c, struct nr_xsk_pkt *scratch, uint32_t max);
/* test helpers: play the kernel on rings laid out in ordinary memory */
int nr_xsk_test_produce(struct nr_xsk *x, int which, uint64_t addr, uint32_t len);
int nr_xsk_test_consume(struct nr_xsk *x, int which, uint64_t *addr_out);

#endif
