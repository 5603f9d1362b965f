#include <errno.h>
#include <string.h>
#include <time.h>
#include <sys/socket.h>
#include <linux/if_xdp.h>
#include "xsk.h"

/* ---- set-up: thin wrappers over the socket options, 0 or -errno ---------------------------- */

int nr_xsk_umem_reg(int fd, uint8_t *umem, uint64_t len, uint32_t frame_size, uint32_t headroom)
{
    struct xdp_umem_reg mr;
    memset(&mr, 0, sizeof mr);
    mr.addr = (uint64_t)(uintptr_t)umem;
    mr.len = len;
    mr.chunk_size = frame_size;
    mr.headroom = headroom;
    mr.flags = 0; /* aligned chunks: the kernel masks fill addresses to the frame start */
    if (setsockopt(fd, SOL_XDP, XDP_UMEM_REG, &mr, sizeof mr) < 0)
        return -errno;
    return 0;
}

int nr_xsk_set_ring(int fd, int which, uint32_t entries)
{
    static const int opt[4] = { XDP_UMEM_FILL_RING, XDP_UMEM_COMPLETION_RING, XDP_RX_RING, XDP_TX_RING };
    if (which < 0 || which > 3)
        return -EINVAL;
    if (setsockopt(fd, SOL_XDP, opt[which], &entries, sizeof entries) < 0)
        return -errno;
    return 0;
}

static void nr_xsk__offs(struct nr_xsk_offs *o, const struct xdp_ring_offset *k)
{
    o->producer = k->producer;
    o->consumer = k->consumer;
    o->desc = k->desc;
    o->flags = k->flags;
}

/* out4: fill, completion, RX, TX (the NR_XSK_RING_* order) */
int nr_xsk_offsets(int fd, struct nr_xsk_offs *out4)
{
    struct xdp_mmap_offsets off;
    socklen_t len = sizeof off;
    memset(&off, 0, sizeof off);
    if (getsockopt(fd, SOL_XDP, XDP_MMAP_OFFSETS, &off, &len) < 0)
        return -errno;
    if (len != sizeof off)
        return -EPROTO; /* a pre-5.4 layout without the flags word: need_wakeup unsupported */
    nr_xsk__offs(&out4[NR_XSK_RING_FILL], &off.fr);
    nr_xsk__offs(&out4[NR_XSK_RING_COMP], &off.cr);
    nr_xsk__offs(&out4[NR_XSK_RING_RX], &off.rx);
    nr_xsk__offs(&out4[NR_XSK_RING_TX], &off.tx);
    return 0;
}

int nr_xsk_bind(int fd, int ifindex, uint32_t queue, uint32_t flags)
{
    struct sockaddr_xdp sxdp;
    memset(&sxdp, 0, sizeof sxdp);
    sxdp.sxdp_family = AF_XDP;
    sxdp.sxdp_ifindex = (uint32_t)ifindex;
    sxdp.sxdp_queue_id = queue;
    sxdp.sxdp_flags = (uint16_t)flags;
    if (bind(fd, (struct sockaddr *)&sxdp, sizeof sxdp) < 0)
        return -errno;
    return 0;
}

/* XDP_OPTIONS: 1 if the bind got zero-copy, 0 for copy mode, or -errno. */
int nr_xsk_options(int fd)
{
    struct xdp_options o;
    socklen_t len = sizeof o;
    if (getsockopt(fd, SOL_XDP, XDP_OPTIONS, &o, &len) < 0)
        return -errno;
    return (o.flags & XDP_OPTIONS_ZEROCOPY) ? 1 : 0;
}

/* out6: rx_dropped, rx_invalid_descs, tx_invalid_descs, rx_ring_full, rx_fill_ring_empty_descs,
 * tx_ring_empty_descs (0 where an older kernel returns the short struct). */
int nr_xsk_stats(int fd, uint64_t *out6)
{
    struct xdp_statistics s;
    socklen_t len = sizeof s;
    memset(&s, 0, sizeof s);
    if (getsockopt(fd, SOL_XDP, XDP_STATISTICS, &s, &len) < 0)
        return -errno;
    out6[0] = s.rx_dropped;
    out6[1] = s.rx_invalid_descs;
    out6[2] = s.tx_invalid_descs;
    out6[3] = s.rx_ring_full;
    out6[4] = s.rx_fill_ring_empty_descs;
    out6[5] = s.tx_ring_empty_descs;
    return 0;
}

void nr_xsk_ring_layout(struct nr_xsk_ring *r, uint8_t *map, const struct nr_xsk_offs *o, uint32_t size)
{
    r->producer = (uint32_t *)(map + o->producer);
    r->consumer = (uint32_t *)(map + o->consumer);
    r->flags = (uint32_t *)(map + o->flags);
    r->ring = map + o->desc;
    r->size = size;
    r->mask = size - 1;
    /* The words may hold values from before a re-map (same kernel memory): read them, never assume 0. */
    r->cached_prod = NR_LOAD_ACQ(r->producer);
    r->cached_cons = NR_LOAD_ACQ(r->consumer);
}

/* Geometry check and the initial free lists (every frame free, RX and TX apart). */
int nr_xsk_init(struct nr_xsk *x)
{
    uint32_t i, fs = x->frame_size;
    if (fs == 0 || (fs & (fs - 1)) || x->rx_frames == 0 || x->rx_frames >= x->frame_count
        || (uint64_t)x->frame_count * fs > x->umem_size || x->headroom >= fs)
        return -EINVAL;
    x->frame_shift = (uint32_t)__builtin_ctz(fs);
    for (i = 0; i < x->frame_count; i++)
        x->state[i] = NR_XSK_FREE;
    /* pushed high to low so frames go out in address order (pops take the top) */
    x->rx_free_n = 0;
    for (i = x->rx_frames; i-- > 0;)
        x->rx_free[x->rx_free_n++] = (uint64_t)i << x->frame_shift;
    x->tx_free_n = 0;
    for (i = x->frame_count; i-- > x->rx_frames;)
        x->tx_free[x->tx_free_n++] = (uint64_t)i << x->frame_shift;
    x->tx_inflight = x->tx_pending = 0;
    x->bad_descs = x->rx_packets = x->tx_packets = x->kicks = 0;
    x->rx_kicks = x->rx_kicks_fruitful = x->rx_empty_checks = 0;
    x->kick_after_ns = 0; /* busy poll starts by kicking on every empty check, then adapts */
    x->rx_empty_since_ns = 0;
    x->last_err = 0;
    return 0;
}

/* ---- ring primitives ------------------------------------------------------------------------- */

/* Free entries of a ring we produce into (fill, TX). Acquire: the kernel has finished reading the
 * entries it consumed before we overwrite them. */
static inline uint32_t nr_xsk__prod_free(struct nr_xsk_ring *r, uint32_t want)
{
    uint32_t free_ = r->size - (r->cached_prod - r->cached_cons);
    if (free_ >= want)
        return free_;
    r->cached_cons = NR_LOAD_ACQ(r->consumer);
    return r->size - (r->cached_prod - r->cached_cons);
}

/* Entries ready in a ring we consume from (RX, completion). Acquire: the entries' contents are read
 * only after the producer index that published them. */
static inline uint32_t nr_xsk__cons_avail(struct nr_xsk_ring *r)
{
    uint32_t avail = r->cached_prod - r->cached_cons;
    if (avail)
        return avail;
    r->cached_prod = NR_LOAD_ACQ(r->producer);
    return r->cached_prod - r->cached_cons;
}

static inline int nr_xsk__wants_wakeup(const struct nr_xsk *x, const struct nr_xsk_ring *r)
{
    return !x->need_wakeup || (__atomic_load_n(r->flags, __ATOMIC_ACQUIRE) & XDP_RING_NEED_WAKEUP);
}

static inline int nr_xsk__retryable(int e)
{
    return e == EAGAIN || e == EBUSY || e == ENOBUFS || e == ENETDOWN || e == EINTR;
}

/* ---- RX ------------------------------------------------------------------------------------------ */

int nr_xsk_rx_kick(struct nr_xsk *x)
{
    x->kicks++;
    x->rx_kicks++;
    if (recvfrom(x->fd, NULL, 0, MSG_DONTWAIT, NULL, NULL) < 0 && !nr_xsk__retryable(errno))
        return -errno;
    return 0;
}

/* What the busy-poll kick rule learns: a recvfrom() that brought frames means this device's NAPI runs
 * when we poll it (SO_PREFER_BUSY_POLL on a NIC with deferred interrupts): kick sooner. Frames that came
 * without one (veth in copy mode: the sender's core runs the NAPI), or a recvfrom() that brought none:
 * kick later. Halving/doubling keeps kick_after_ns in {0} ∪ [MIN, MAX]. */
void nr_xsk_busy_note(struct nr_xsk *x, int outcome)
{
    uint32_t k = x->kick_after_ns;
    if (outcome == NR_XSK_BUSY_KICK_FED) {
        k /= 2;
        if (k < NR_XSK_KICK_AFTER_MIN_NS)
            k = 0;
    } else {
        k = k < NR_XSK_KICK_AFTER_MIN_NS ? NR_XSK_KICK_AFTER_MIN_NS : k * 2;
        if (k > NR_XSK_KICK_AFTER_MAX_NS)
            k = NR_XSK_KICK_AFTER_MAX_NS;
    }
    x->kick_after_ns = k;
}

/* Busy-poll wait: spin on the RX ring for at most `max_ns` (GIL released: no Python per check).
 * 1 when the ring has frames, 0 when the time is up, -errno of a failed recvfrom.
 *
 * Kick rule — a non-blocking recvfrom() (which busy-polls the device's NAPI under SO_BUSY_POLL) only
 * when it can help:
 *   - at once when bound with need_wakeup and the fill ring's flag asks for a wake-up;
 *   - in busy-poll mode, when the ring has been empty for kick_after_ns (since it went empty, or since
 *     the last recvfrom that brought nothing). kick_after_ns adapts (nr_xsk_busy_note): a recvfrom
 *     followed by frames halves it, down to 0 — every empty check kicks, as a NIC whose NAPI only runs
 *     when polled needs; frames that arrived without one, or a dry recvfrom, double it up to 64 µs.
 * While frames keep coming on their own no syscall is made; an idle ring costs one recvfrom per 64 µs. */
int nr_xsk_rx_spin(struct nr_xsk *x, uint64_t max_ns)
{
    uint64_t now = nr_st_now_ns(), end = now + max_ns;
    for (;;) {
        if (nr_xsk__cons_avail(&x->rx)) {
            if (x->rx_empty_since_ns) {
                nr_xsk_busy_note(x, NR_XSK_BUSY_SELF);
                x->rx_empty_since_ns = 0;
            }
            return 1;
        }
        x->rx_empty_checks++;
        if (!x->rx_empty_since_ns)
            x->rx_empty_since_ns = now;
        int asked = x->need_wakeup && (__atomic_load_n(x->fill.flags, __ATOMIC_ACQUIRE) & XDP_RING_NEED_WAKEUP);
        int timed = x->busy_poll && now - x->rx_empty_since_ns >= x->kick_after_ns;
        if (asked || timed) {
            int rc = nr_xsk_rx_kick(x);
            if (rc < 0)
                return rc;
            now = nr_st_now_ns();
            if (nr_xsk__cons_avail(&x->rx)) {
                x->rx_kicks_fruitful++;
                if (timed)
                    nr_xsk_busy_note(x, NR_XSK_BUSY_KICK_FED);
                x->rx_empty_since_ns = 0;
                return 1;
            }
            if (timed)
                nr_xsk_busy_note(x, NR_XSK_BUSY_KICK_DRY);
            x->rx_empty_since_ns = now; /* the next timed kick after another kick_after_ns */
        }
        if (now >= end)
            return 0;
#if defined(__x86_64__) || defined(__i386__)
        __builtin_ia32_pause();
#endif
        now = nr_st_now_ns();
    }
}

/* Hand free RX frames to the kernel through the fill ring; returns how many. */
uint32_t nr_xsk_refill(struct nr_xsk *x)
{
    struct nr_xsk_ring *r = &x->fill;
    uint32_t n = x->rx_free_n, room, i;
    uint64_t *ring = (uint64_t *)r->ring;
    if (n == 0)
        return 0;
    room = nr_xsk__prod_free(r, n);
    if (n > room)
        n = room;
    for (i = 0; i < n; i++) {
        uint64_t a = x->rx_free[--x->rx_free_n];
        x->state[a >> x->frame_shift] = NR_XSK_FILL;
        ring[(r->cached_prod + i) & r->mask] = a;
    }
    r->cached_prod += n;
    /* Release: the addresses are visible before the kernel sees the new producer index. */
    NR_STORE_REL(r->producer, r->cached_prod);
    if (n && x->need_wakeup && (__atomic_load_n(r->flags, __ATOMIC_ACQUIRE) & XDP_RING_NEED_WAKEUP))
        nr_xsk_rx_kick(x);
    return n;
}

int nr_xsk_rx_ready(struct nr_xsk *x)
{
    return nr_xsk__cons_avail(&x->rx) != 0;
}

/* Is an RX descriptor safe to read? 64-bit arithmetic throughout, checked before anything is read
 * through it: inside the UMEM, inside one RX frame, and that frame in the fill ring (ours to lend
 * only once the kernel returns it). */
static inline int nr_xsk__rx_ok(const struct nr_xsk *x, uint64_t addr, uint32_t len)
{
    uint64_t idx, end;
    if (len == 0 || addr >= x->umem_size || (uint64_t)len > x->umem_size - addr)
        return 0;
    idx = addr >> x->frame_shift;
    end = addr + len;
    if (idx >= x->rx_frames || end > ((idx + 1) << x->frame_shift))
        return 0;
    return x->state[idx] == NR_XSK_FILL;
}

/* Take up to `max` received frames: checked descriptors into `out` (frames now HELD), RX ring
 * entries handed back at once (the descriptors are copied; the frames stay ours until released).
 * Returns how many went into `out`; refused ones are counted in bad_descs. */
uint32_t nr_xsk_rx_take(struct nr_xsk *x, struct nr_xsk_pkt *out, uint32_t max)
{
    struct nr_xsk_ring *r = &x->rx;
    const struct xdp_desc *ring = (const struct xdp_desc *)r->ring;
    uint32_t avail, i, k = 0;
    if (x->rx_free_n)
        nr_xsk_refill(x); /* frames a release could not fit into the fill ring earlier */
    /* No recvfrom here, also in busy-poll mode: a wait kicks by nr_xsk_rx_spin's rule, a take only reads. */
    avail = nr_xsk__cons_avail(r);
    if (avail > max)
        avail = max;
    for (i = 0; i < avail; i++) {
        const struct xdp_desc *d = &ring[(r->cached_cons + i) & r->mask];
        uint64_t addr = d->addr;
        uint32_t len = d->len;
        if (!nr_xsk__rx_ok(x, addr, len)) {
            x->bad_descs++;
            continue;
        }
        x->state[addr >> x->frame_shift] = NR_XSK_HELD;
        out[k].addr = addr;
        out[k].len = len;
        out[k].options = d->options;
        k++;
    }
    r->cached_cons += avail;
    /* Release: our reads of these descriptors are done before the kernel may reuse the entries. */
    if (avail) {
        NR_STORE_REL(r->consumer, r->cached_cons);
        x->rx_empty_since_ns = 0; /* an empty stretch the busy-poll rule timed is over */
    }
    x->rx_packets += k;
    return k;
}

/* Return frames a batch held; then refill. -EINVAL (after returning the valid ones) if an entry
 * was not a held RX frame — a second release can never put a frame into the fill ring twice. */
int nr_xsk_rx_release(struct nr_xsk *x, const struct nr_xsk_pkt *pkts, uint32_t n)
{
    uint32_t i;
    int bad = 0;
    for (i = 0; i < n; i++) {
        uint64_t idx = pkts[i].addr >> x->frame_shift;
        if (pkts[i].addr >= x->umem_size || idx >= x->rx_frames || x->state[idx] != NR_XSK_HELD) {
            bad = 1;
            continue;
        }
        x->state[idx] = NR_XSK_FREE;
        x->rx_free[x->rx_free_n++] = idx << x->frame_shift;
    }
    nr_xsk_refill(x);
    return bad ? -EINVAL : 0;
}

/* ---- TX ------------------------------------------------------------------------------------------ */

/* Reap the completion ring: each completed TX frame goes back to the TX free list. A completion
 * that does not name an in-flight TX frame is refused (counted, not used). */
uint32_t nr_xsk_reap(struct nr_xsk *x)
{
    struct nr_xsk_ring *r = &x->comp;
    const uint64_t *ring = (const uint64_t *)r->ring;
    uint32_t avail = nr_xsk__cons_avail(r), i, k = 0;
    for (i = 0; i < avail; i++) {
        uint64_t addr = ring[(r->cached_cons + i) & r->mask];
        uint64_t idx = addr >> x->frame_shift;
        if (addr >= x->umem_size || idx < x->rx_frames || idx >= x->frame_count
            || x->state[idx] != NR_XSK_INFLIGHT) {
            x->bad_descs++;
            continue;
        }
        x->state[idx] = NR_XSK_FREE;
        x->tx_free[x->tx_free_n++] = idx << x->frame_shift;
        k++;
    }
    r->cached_cons += avail;
    if (avail)
        NR_STORE_REL(r->consumer, r->cached_cons); /* release: entries read before the kernel reuses them */
    x->tx_inflight -= k;
    return k;
}

/* Make the kernel transmit what the TX ring holds. In copy mode each sendto() sends a bounded
 * batch (and says EAGAIN while more is left): repeat while it makes progress. With need_wakeup
 * the kernel is woken only when the ring's flag asks. 0, or -errno of a real failure. */
int nr_xsk_kick(struct nr_xsk *x)
{
    struct nr_xsk_ring *r = &x->tx;
    uint32_t cons = NR_LOAD_ACQ(r->consumer), stuck = 0;
    r->cached_cons = cons;
    while (cons != r->cached_prod) {
        if (!nr_xsk__wants_wakeup(x, r))
            break;
        x->kicks++;
        if (sendto(x->fd, NULL, 0, MSG_DONTWAIT, NULL, 0) < 0 && !nr_xsk__retryable(errno)) {
            x->last_err = -errno;
            return -errno;
        }
        uint32_t now = NR_LOAD_ACQ(r->consumer);
        if (now == cons && ++stuck >= 2)
            break; /* no room downstream (completion ring, device): the caller waits and retries */
        if (now != cons)
            stuck = 0;
        cons = now;
    }
    r->cached_cons = cons;
    x->tx_pending = r->cached_prod - cons;
    return 0;
}

/* Frames that can be queued now: free TX frames and TX ring entries (after reaping completions). */
uint32_t nr_xsk_tx_room(struct nr_xsk *x)
{
    nr_xsk_reap(x);
    uint32_t ring = nr_xsk__prod_free(&x->tx, x->tx.size);
    return ring < x->tx_free_n ? ring : x->tx_free_n;
}

/* Put one frame's descriptor in the TX ring (not yet published). */
static inline uint8_t *nr_xsk__tx_slot(struct nr_xsk *x, uint32_t len)
{
    uint64_t a = x->tx_free[--x->tx_free_n];
    struct xdp_desc *d = &((struct xdp_desc *)x->tx.ring)[x->tx.cached_prod & x->tx.mask];
    x->state[a >> x->frame_shift] = NR_XSK_INFLIGHT;
    d->addr = a + x->headroom;
    d->len = len;
    d->options = 0;
    x->tx.cached_prod++;
    return x->umem + a + x->headroom;
}

static inline void nr_xsk__tx_publish(struct nr_xsk *x, uint32_t n)
{
    /* Release: frame bytes and descriptors are visible before the kernel sees the producer index. */
    NR_STORE_REL(x->tx.producer, x->tx.cached_prod);
    x->tx_inflight += n;
    x->tx_pending += n;
    x->tx_packets += n;
}

/* Copy `n` frames (concatenated in `buf`, lengths in `lens`) into free TX frames, produce their
 * descriptors, kick. Returns how many were queued (fewer when frames or ring entries ran out), or
 * -EMSGSIZE (nothing queued) if a length is 0 or exceeds frame_size - headroom. */
int64_t nr_xsk_tx_send(struct nr_xsk *x, const uint8_t *buf, const uint32_t *lens, uint32_t n)
{
    uint32_t cap = x->frame_size - x->headroom, i, room;
    uint64_t off = 0;
    for (i = 0; i < n; i++)
        if (lens[i] == 0 || lens[i] > cap)
            return -EMSGSIZE;
    room = nr_xsk_tx_room(x);
    if (n > room)
        n = room;
    for (i = 0; i < n; i++) {
        memcpy(nr_xsk__tx_slot(x, lens[i]), buf + off, lens[i]);
        off += lens[i];
    }
    if (n)
        nr_xsk__tx_publish(x, n);
    int rc = nr_xsk_kick(x);
    if (rc < 0 && n == 0)
        return rc;
    return n;
}

/* ---- stamped streams (Injector.send_stream's meaning, from TX UMEM frames) ----------------------- */

/* Send frames j->done.. of the stream: per frame copy the template into a free TX frame, stamp it
 * (nr_st_stamp: the exact code Injector.send_stream runs), produce its descriptor; publish and kick
 * every 64 frames. Returns after the stream, the deadline, a time slice, or when no TX frame is free
 * (ring_full = 1). last_err: a kick's -errno. Returns the frames queued in this call. */
int64_t nr_xsk_send_stream(struct nr_xsk *x, struct nr_st_job *j)
{
    uint64_t start = nr_st_now_ns(), now = start, n0 = j->done;
    uint64_t end = j->slice_ns ? start + j->slice_ns : UINT64_MAX;
    uint32_t cap = x->frame_size - x->headroom, batch = 0, room = 0;
    int paced = j->rate_pps > 0, rc;
    j->ring_full = 0;
    j->last_err = 0;
    if (j->deadline_ns && j->deadline_ns < end)
        end = j->deadline_ns;
    for (uint32_t t = 0; t < j->ntmpl; t++)
        if (j->tmpls[t].len == 0 || j->tmpls[t].len > cap)
            return -EMSGSIZE;
    while (j->done < j->count) {
        if (paced) {
            uint64_t due = j->t0_ns + (uint64_t)((double)j->done * 1e9 / j->rate_pps);
            if (due > now) {
                if (batch) {
                    nr_xsk__tx_publish(x, batch);
                    batch = 0;
                }
                if ((rc = nr_xsk_kick(x)) < 0) {
                    j->last_err = rc;
                    break;
                }
                if (due > end) {
                    if (end > now)
                        nr_st_wait_until(end);
                    break;
                }
                if (nr_st_wait_until(due) < 0)
                    break;
            }
        } else if (((j->done - n0) & 63) == 63 && nr_st_now_ns() >= end) {
            break;
        }
        if (room == 0) {
            if (batch) {
                nr_xsk__tx_publish(x, batch);
                batch = 0;
                if ((rc = nr_xsk_kick(x)) < 0) {
                    j->last_err = rc;
                    break;
                }
            }
            room = nr_xsk_tx_room(x);
            if (room == 0) {
                j->ring_full = 1;
                break;
            }
        }
        const struct nr_st_tmpl *t = &j->tmpls[j->done % j->ntmpl];
        uint8_t *f = nr_xsk__tx_slot(x, t->len);
        memcpy(f, t->data, t->len);
        nr_st_stamp(f, t, j->stream_id, j->first_seq + j->done);
        j->done++;
        room--;
        if (++batch == 64) {
            nr_xsk__tx_publish(x, batch);
            batch = 0;
            if ((rc = nr_xsk_kick(x)) < 0) {
                j->last_err = rc;
                break;
            }
        }
        if (paced)
            now = nr_st_now_ns();
    }
    if (batch)
        nr_xsk__tx_publish(x, batch);
    if ((rc = nr_xsk_kick(x)) < 0 && !j->last_err)
        j->last_err = rc;
    return (int64_t)(j->done - n0);
}

/* ---- sequence checking over descriptors ---------------------------------------------------------- */

/* The kernel wrote each frame on another core: its lines miss in this core's cache. Prefetching a few
 * frames ahead overlaps those misses with the checking of the current one. */
#define NR_XSK_PREFETCH_AHEAD 8

void nr_xsk_check_pkts(struct nr_st_checker *c, const uint8_t *umem, const struct nr_xsk_pkt *pkts, uint32_t n)
{
    for (uint32_t i = 0; i < n && i < NR_XSK_PREFETCH_AHEAD; i++)
        __builtin_prefetch(umem + pkts[i].addr);
    for (uint32_t i = 0; i < n; i++) {
        if (i + NR_XSK_PREFETCH_AHEAD < n) {
            const uint8_t *f = umem + pkts[i + NR_XSK_PREFETCH_AHEAD].addr;
            __builtin_prefetch(f);
            __builtin_prefetch(f + pkts[i + NR_XSK_PREFETCH_AHEAD].len - 1); /* the stamp is at the end */
        }
        nr_st_check_frame(c, umem + pkts[i].addr, pkts[i].len);
    }
}

/* One drain step: take up to `max` frames, check them, hand them back. Returns the frames checked. */
uint32_t nr_xsk_drain_step(struct nr_xsk *x, struct nr_st_checker *c, struct nr_xsk_pkt *scratch, uint32_t max)
{
    uint32_t n = nr_xsk_rx_take(x, scratch, max);
    if (n) {
        nr_xsk_check_pkts(c, x->umem, scratch, n);
        nr_xsk_rx_release(x, scratch, n);
    }
    return n;
}

/* Has the checker every frame it expects? (what SeqChecker.done computes) */
static int nr_xsk__checker_full(const struct nr_st_checker *c)
{
    uint64_t want = 0, got = 0;
    for (uint32_t i = 0; i < c->nstreams; i++) {
        want += c->streams[i].count;
        got += c->streams[i].delivered;
    }
    return got >= want;
}

/* XdpSocket.drain in one C call: take, check and hand back batches of up to `batch` frames (each batch's
 * frames go back to the fill ring in the same step, so it stays full) until the checker has every
 * frame it expects, `until_ns` (CLOCK_MONOTONIC) passes, or the RX ring is empty — in busy-poll mode
 * an empty ring is spun on instead (nr_xsk_rx_spin's kick rule) until `until_ns`. *last_ns is set to
 * the time of the last batch with frames. Returns the frames checked, or -errno of a failed recvfrom
 * when none were. */
int64_t nr_xsk_drain(struct nr_xsk *x, struct nr_st_checker *c, struct nr_xsk_pkt *scratch, uint32_t batch,
                     uint64_t until_ns, uint64_t *last_ns)
{
    int64_t total = 0;
    for (;;) {
        uint32_t n = nr_xsk_drain_step(x, c, scratch, batch);
        uint64_t now = nr_st_now_ns();
        if (n) {
            total += n;
            *last_ns = now;
            if (nr_xsk__checker_full(c) || now >= until_ns)
                return total;
            continue;
        }
        if (now >= until_ns)
            return total;
        if (nr_xsk__cons_avail(&x->rx))
            continue; /* only refused descriptors in that batch: more may follow */
        if (!x->busy_poll)
            return total;
        int rc = nr_xsk_rx_spin(x, until_ns - now);
        if (rc < 0)
            return total ? total : rc;
        if (rc == 0)
            return total;
    }
}

/* ---- test helpers: the kernel's side of a ring laid out in ordinary memory ----------------------- */

static struct nr_xsk_ring *nr_xsk__ring(struct nr_xsk *x, int which)
{
    switch (which) {
    case NR_XSK_RING_FILL: return &x->fill;
    case NR_XSK_RING_COMP: return &x->comp;
    case NR_XSK_RING_RX: return &x->rx;
    case NR_XSK_RING_TX: return &x->tx;
    }
    return NULL;
}

/* As the kernel would: append one entry to the RX (a descriptor) or completion (an address) ring. */
int nr_xsk_test_produce(struct nr_xsk *x, int which, uint64_t addr, uint32_t len)
{
    struct nr_xsk_ring *r = nr_xsk__ring(x, which);
    if (r == NULL || (which != NR_XSK_RING_RX && which != NR_XSK_RING_COMP))
        return -EINVAL;
    uint32_t prod = *r->producer, cons = NR_LOAD_ACQ(r->consumer);
    if (prod - cons >= r->size)
        return -ENOSPC;
    if (which == NR_XSK_RING_RX) {
        struct xdp_desc *d = &((struct xdp_desc *)r->ring)[prod & r->mask];
        d->addr = addr;
        d->len = len;
        d->options = 0;
    } else {
        ((uint64_t *)r->ring)[prod & r->mask] = addr;
    }
    NR_STORE_REL(r->producer, prod + 1);
    return 0;
}

/* As the kernel would: take one entry from the fill or TX ring. 1 (address in *addr_out), 0 if empty. */
int nr_xsk_test_consume(struct nr_xsk *x, int which, uint64_t *addr_out)
{
    struct nr_xsk_ring *r = nr_xsk__ring(x, which);
    if (r == NULL || (which != NR_XSK_RING_FILL && which != NR_XSK_RING_TX))
        return -EINVAL;
    uint32_t cons = *r->consumer, prod = NR_LOAD_ACQ(r->producer);
    if (cons == prod)
        return 0;
    if (which == NR_XSK_RING_TX)
        *addr_out = ((struct xdp_desc *)r->ring)[cons & r->mask].addr;
    else
        *addr_out = ((uint64_t *)r->ring)[cons & r->mask];
    NR_STORE_REL(r->consumer, cons + 1);
    return 1;
}
