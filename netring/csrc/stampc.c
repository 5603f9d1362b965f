#include <string.h>
#include <time.h>
#include "stampc.h"

#define NR_ST_SEED 0xCBF29CE484222325ull
#define NR_ST_PRIME 0x100000001B3ull

static inline uint32_t be16(const uint8_t *p) { return ((uint32_t)p[0] << 8) | p[1]; }
static inline uint32_t be32(const uint8_t *p)
{
    return ((uint32_t)p[0] << 24) | ((uint32_t)p[1] << 16) | ((uint32_t)p[2] << 8) | p[3];
}
static inline uint64_t be64(const uint8_t *p) { return ((uint64_t)be32(p) << 32) | be32(p + 4); }
static inline void put_be16(uint8_t *p, uint32_t v) { p[0] = (uint8_t)(v >> 8); p[1] = (uint8_t)v; }
static inline void put_be32(uint8_t *p, uint32_t v)
{
    p[0] = (uint8_t)(v >> 24); p[1] = (uint8_t)(v >> 16); p[2] = (uint8_t)(v >> 8); p[3] = (uint8_t)v;
}
static inline void put_be64(uint8_t *p, uint64_t v) { put_be32(p, (uint32_t)(v >> 32)); put_be32(p + 4, (uint32_t)v); }

static inline uint64_t nr_st__hash(uint64_t h, const uint8_t *p, uint32_t len)
{
    uint32_t i = 0;
    uint64_t w;
    for (; i + 8 <= len; i += 8) {
        memcpy(&w, p + i, 8);
#if __BYTE_ORDER__ == __ORDER_BIG_ENDIAN__
        w = __builtin_bswap64(w);
#endif
        h = (h ^ w) * NR_ST_PRIME;
    }
    if (i < len) {
        w = 0;
        for (uint32_t k = 0; i + k < len; k++)
            w |= (uint64_t)p[i + k] << (8 * k);
        h = (h ^ w) * NR_ST_PRIME;
    }
    return h;
}

uint64_t nr_st_payload_hash(const uint8_t *p, uint32_t len) { return nr_st__hash(NR_ST_SEED, p, len); }

uint32_t nr_st_check_value(uint64_t phash, const uint8_t *stamp16)
{
    uint64_t h = nr_st__hash(phash, stamp16, NR_ST_HDR_LEN); /* exactly two words, no padding */
    return (uint32_t)(h ^ (h >> 32));
}

/* Offset of the stamp per netring/stamp.py's rule, or -ENOENT when the frame cannot hold one. */
int32_t nr_st_locate(const uint8_t *f, uint32_t n)
{
    uint32_t off = 12, l3 = 0, etype = 0, end = n;
    int k;
    for (k = 0; k < 3; k++) {
        if (n < off + 2)
            return -ENOENT;
        etype = be16(f + off);
        if (etype == 0x8100 || etype == 0x88A8) {
            off += 4;
            continue;
        }
        l3 = off + 2;
        break;
    }
    if (k == 3)
        return -1;
    if (etype == 0x0800 && n >= l3 + 20)
        end = l3 + be16(f + l3 + 2);
    else if (etype == 0x86DD && n >= l3 + 40)
        end = l3 + 40 + be16(f + l3 + 4);
    if (end > n || end < l3 + NR_ST_STAMP_LEN)
        return -1;
    return (int32_t)(end - NR_ST_STAMP_LEN);
}

/* One's complement sum of bytes [p, p+len) that sit at frame offset `pos`, weighted by their
 * position in 16-bit words counted from `anchor` (an even distance from the L4 header start). */
static inline uint32_t nr_st__csum_part(const uint8_t *p, uint32_t len, uint32_t pos, uint32_t anchor)
{
    uint32_t s = 0;
    for (uint32_t i = 0; i < len; i++)
        s += ((pos + i - anchor) & 1) ? p[i] : ((uint32_t)p[i] << 8);
    return s;
}

static inline uint32_t nr_st__fold(uint32_t s)
{
    s = (s & 0xffff) + (s >> 16);
    s = (s & 0xffff) + (s >> 16);
    return s;
}

void nr_st_stamp(uint8_t *f, const struct nr_st_tmpl *t, uint32_t stream_id, uint64_t seq)
{
    uint8_t *s = f + t->stamp_off;
    uint8_t old[NR_ST_STAMP_LEN];
    int patch = t->csum_off >= 0;
    if (patch)
        memcpy(old, s, NR_ST_STAMP_LEN);
    /* magic and plen stay as in the template; stream id, seq and check change */
    put_be16(s + 4, stream_id);
    put_be64(s + 8, seq);
    put_be32(s + 16, nr_st_check_value(t->phash, s));
    if (patch) {
        uint8_t *c = f + t->csum_off;
        uint32_t hc = be16(c);
        if (t->udp && hc == 0)
            return; /* UDP checksum 0: "no checksum", leave it so */
        /* RFC 1624 eqn. 3: HC' = ~(~HC + ~m + m'), m/m' the sums over the old/new stamp bytes */
        uint32_t m = nr_st__fold(nr_st__csum_part(old, NR_ST_STAMP_LEN, t->stamp_off, (uint32_t)t->csum_off));
        uint32_t m2 = nr_st__fold(nr_st__csum_part(s, NR_ST_STAMP_LEN, t->stamp_off, (uint32_t)t->csum_off));
        uint32_t acc = (~hc & 0xffff) + (~m & 0xffff) + m2;
        uint32_t nhc = ~nr_st__fold(acc) & 0xffff;
        if (t->udp && nhc == 0)
            nhc = 0xffff;
        c[0] = (uint8_t)(nhc >> 8);
        c[1] = (uint8_t)nhc;
    }
}

uint64_t nr_st_now_ns(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000000000ull + (uint64_t)ts.tv_nsec;
}

/* Sleep until `t` (CLOCK_MONOTONIC ns): nanosleep for the bulk, spin the last ~60 µs for
 * precision. Returns -EINTR if a signal arrived (so Python can run its handlers). */
/* Wait until CLOCK_MONOTONIC time t (ns): sleep to ~60 us before it, then spin; -EINTR if a signal
 * cut the sleep short. Shared by the paced senders (Injector and XdpSocket send_stream). */
int nr_st_wait_until(uint64_t t)
{
    uint64_t now = nr_st_now_ns();
    if (t > now + 100000) {
        uint64_t wake = t - 60000;
        struct timespec ts = { .tv_sec = (time_t)(wake / 1000000000ull), .tv_nsec = (long)(wake % 1000000000ull) };
        int rc = clock_nanosleep(CLOCK_MONOTONIC, TIMER_ABSTIME, &ts, NULL);
        if (rc == EINTR)
            return -EINTR;
    }
    while (nr_st_now_ns() < t) {
#if defined(__x86_64__) || defined(__i386__)
        __builtin_ia32_pause();
#endif
    }
    return 0;
}

static inline int nr_st__kick(struct nr_tx_ring *r, struct nr_st_job *j)
{
    if (r->queued == 0)
        return 0;
    int rc = nr_tx_kick(r);
    if (rc < 0 && rc != -EAGAIN && rc != -ENOBUFS) {
        j->last_err = rc;
        return rc;
    }
    return 0;
}

int64_t nr_st_send(struct nr_tx_ring *r, struct nr_st_job *j)
{
    uint64_t start = nr_st_now_ns(), now = start, n0 = j->done;
    uint64_t end = j->slice_ns ? start + j->slice_ns : UINT64_MAX;
    int paced = j->rate_pps > 0;
    j->ring_full = 0;
    j->last_err = 0;
    if (j->deadline_ns && j->deadline_ns < end)
        end = j->deadline_ns;
    while (j->done < j->count) {
        if (paced) {
            uint64_t due = j->t0_ns + (uint64_t)((double)j->done * 1e9 / j->rate_pps);
            if (due > now) {
                if (nr_st__kick(r, j) < 0)
                    break;
                if (due > end) {
                    if (end > now && nr_st_wait_until(end) < 0)
                        break;
                    break; /* the slice (or the deadline) is over; the caller decides what next */
                }
                if (nr_st_wait_until(due) < 0)
                    break;
            }
        } else if (((j->done - n0) & 63) == 63 && nr_st_now_ns() >= end) {
            break;
        }
        uint8_t *slot = nr_tx__slot(r, r->head);
        if (nr_tx__status(slot) != TP_STATUS_AVAILABLE) {
            j->ring_full = 1;
            break;
        }
        uint32_t ti = (uint32_t)(j->done % j->ntmpl);
        const struct nr_st_tmpl *t = &j->tmpls[ti];
        uint8_t *f = slot + NR_TX_DATA_OFF;
        uint64_t tag = ((uint64_t)r->gen << 32) | (ti + 1u);
        if (r->gen != 0 && nr_tx__holds(r, r->head, tag)) {
            /* The slot still holds this template from an earlier lap (the kernel only reads TX
             * data): restore just the bytes the stamp rewrote, as the C reference does. */
            memcpy(f + t->stamp_off, t->data + t->stamp_off, NR_ST_STAMP_LEN);
            if (t->csum_off >= 0)
                memcpy(f + t->csum_off, t->data + t->csum_off, 2);
        } else {
            memcpy(f, t->data, t->len);
        }
        nr_st_stamp(f, t, j->stream_id, j->first_seq + j->done);
        nr_tx__submit_tag(r, slot, t->len, r->gen != 0 ? tag : 0);
        j->done++;
        if (paced) {
            now = nr_st_now_ns();
            /* keep the wire busy while catching up: kick every 64 back-to-back frames */
            if (r->queued >= 64 && nr_st__kick(r, j) < 0)
                break;
        }
    }
    nr_st__kick(r, j);
    return (int64_t)(j->done - n0);
}

static struct nr_st_stream *nr_st__find(struct nr_st_checker *c, uint32_t id)
{
    uint32_t lo = 0, hi = c->nstreams;
    while (lo < hi) {
        uint32_t mid = (lo + hi) / 2;
        if (c->streams[mid].id == id)
            return &c->streams[mid];
        if (c->streams[mid].id < id)
            lo = mid + 1;
        else
            hi = mid;
    }
    return NULL;
}

static void nr_st__unexpected(struct nr_st_checker *c, const uint8_t *f, uint32_t len)
{
    c->unexpected++;
    if (c->kept < c->keep_max) {
        uint32_t n = len < c->keep_snap ? len : c->keep_snap;
        memcpy(c->keep_buf + (size_t)c->kept * c->keep_snap, f, n);
        c->keep_len[c->kept] = n;
        c->keep_wire[c->kept] = len;
        c->kept++;
    }
}

void nr_st_check_frame(struct nr_st_checker *c, const uint8_t *f, uint32_t len)
{
    c->frames++;
    int32_t off = nr_st_locate(f, len);
    if (off < 0 || be32(f + off) != NR_ST_MAGIC) {
        nr_st__unexpected(c, f, len);
        return;
    }
    const uint8_t *s = f + off;
    uint32_t sid = be16(s + 4);
    uint32_t plen = be16(s + 6);
    uint64_t seq = be64(s + 8);
    int ok = plen <= (uint32_t)off
        && nr_st_check_value(nr_st__hash(NR_ST_SEED, s - plen, plen), s) == be32(s + 16);
    struct nr_st_stream *st = nr_st__find(c, sid);
    if (st == NULL) {
        nr_st__unexpected(c, f, len);
        return;
    }
    if (!ok) {
        st->corrupted++;
        return;
    }
    if (seq >= st->count) {
        nr_st__unexpected(c, f, len);
        return;
    }
    uint64_t bit = 1ull << (seq & 63);
    if (st->bitmap[seq >> 6] & bit) {
        st->duplicated++;
        return;
    }
    st->bitmap[seq >> 6] |= bit;
    st->delivered++;
    if ((int64_t)seq < st->highest)
        st->reordered++;
    else
        st->highest = (int64_t)seq;
}

uint32_t nr_st_check_block(struct nr_st_checker *c, const uint8_t *block, uint32_t block_size)
{
    struct nr_rx__it it;
    const struct tpacket3_hdr *h;
    uint32_t i = 0, off;
    nr_rx__begin(&it, block, block_size);
    while ((h = nr_rx__next(&it, &off)) != NULL) {
        if (nr_rx__pkttype(h) == PACKET_OUTGOING)
            c->outgoing++; /* the sender's own frame seen on the same link */
        else
            nr_st_check_frame(c, block + off, h->tp_snaplen);
        i++;
    }
    return i;
}
