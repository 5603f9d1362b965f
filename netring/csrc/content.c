/* content.c — see content.h. */
#include <string.h>
#include "content.h"

/* 64-bit multiply-xorshift over 8-byte words (memcpy loads: frames are not aligned), length mixed
 * in; only a bucket index and a first filter: a match is always confirmed by memcmp. */
uint64_t nr_ct_hash(const uint8_t *p, uint32_t len)
{
    const uint64_t m = 0x9E3779B97F4A7C15ull;
    uint64_t h = 0x4E52435400000000ull ^ (len * m);
    uint32_t i = 0;
    for (; i + 8 <= len; i += 8) {
        uint64_t w;
        memcpy(&w, p + i, 8);
        h = (h ^ w) * m;
        h ^= h >> 29;
    }
    if (i < len) {
        uint64_t w = 0;
        memcpy(&w, p + i, len - i);
        h = (h ^ w) * m;
        h ^= h >> 29;
    }
    h ^= h >> 32;
    return h;
}

/* Hash every entry and place it; -EEXIST (index in c->nentries) if two entries hold the same
 * bytes (the Python side groups equal frames, so that is a caller bug), -EINVAL if the table is
 * too small. */
int nr_ct_index(struct nr_ct_checker *c)
{
    if (c->nentries > c->mask)
        return -EINVAL;
    memset(c->slots, 0, (size_t)(c->mask + 1) * sizeof(uint32_t));
    for (uint32_t i = 0; i < c->nentries; i++) {
        struct nr_ct_entry *e = &c->entries[i];
        e->hash = nr_ct_hash(e->data, e->len);
        uint32_t s = (uint32_t)e->hash & c->mask;
        while (c->slots[s]) {
            const struct nr_ct_entry *o = &c->entries[c->slots[s] - 1];
            if (o->hash == e->hash && o->len == e->len && memcmp(o->data, e->data, e->len) == 0)
                return -EEXIST;
            s = (s + 1) & c->mask;
        }
        c->slots[s] = i + 1;
    }
    return 0;
}

static struct nr_ct_entry *nr_ct__find(struct nr_ct_checker *c, const uint8_t *f, uint32_t len)
{
    uint64_t h = nr_ct_hash(f, len);
    uint32_t s = (uint32_t)h & c->mask;
    while (c->slots[s]) { /* terminates: at least half the slots are empty */
        struct nr_ct_entry *e = &c->entries[c->slots[s] - 1];
        if (e->hash == h && e->len == len && memcmp(e->data, f, len) == 0)
            return e;
        s = (s + 1) & c->mask;
    }
    return NULL;
}

static inline uint64_t nr_ct__index(const struct nr_ct_entry *e, const struct nr_ct_stream *st, uint64_t k)
{
    return (k / e->npos) * st->trace_len + e->pos[k % e->npos];
}

static inline int nr_ct__taken(const struct nr_ct_checker *c, const struct nr_ct_entry *e, uint64_t k)
{
    uint64_t b = e->bit0 + k;
    return (c->bitmap[b >> 6] >> (b & 63)) & 1;
}

/* Count one frame; 0 if it is no trace frame. The copy it is matched to: see content.h. */
static int nr_ct__count(struct nr_ct_checker *c, const uint8_t *f, uint32_t len)
{
    struct nr_ct_entry *e = nr_ct__find(c, f, len);
    if (e == NULL)
        return 0;
    struct nr_ct_stream *st = &c->streams[e->stream];
    e->received++;
    c->matched++;
    if (e->matched >= e->expected) {
        st->duplicated++;
        return 1;
    }
    /* Copies after the highest matched send index are all unmatched (highest is the largest matched
     * index): the first of them is copy k0. */
    uint64_t k0 = 0;
    if (st->highest >= 0) {
        uint64_t h = (uint64_t)st->highest, r = h % st->trace_len;
        uint32_t lo = 0, hi = e->npos; /* first position > r */
        while (lo < hi) {
            uint32_t mid = lo + (hi - lo) / 2;
            if (e->pos[mid] <= r)
                lo = mid + 1;
            else
                hi = mid;
        }
        k0 = (h / st->trace_len) * e->npos + lo;
    }
    /* A copy is looked for within half a cycle of the highest matched send index (w), except that the
     * next copy of a content whose previous copy never arrived is taken however far ahead (losses at
     * the start, or of that content). */
    uint64_t w = st->trace_len / 2 > 0 ? st->trace_len / 2 : 1;
    uint64_t ahead = UINT64_MAX, behind = UINT64_MAX, a = UINT64_MAX;
    if (k0 < e->expected) {
        uint64_t d = nr_ct__index(e, st, k0) - (uint64_t)(st->highest + 1) + 1; /* highest -1: d = index + 1 */
        if (d <= w || k0 == 0 || !nr_ct__taken(c, e, k0 - 1))
            ahead = d;
    }
    /* The last unmatched copy before k0 (all of them have an index <= highest), within w. */
    for (uint64_t k = k0 < e->expected ? k0 : e->expected; k > 0;) {
        k--;
        uint64_t back = (uint64_t)st->highest - nr_ct__index(e, st, k);
        if (back > w)
            break;
        if (!nr_ct__taken(c, e, k)) {
            a = k;
            behind = back;
            break;
        }
    }
    uint64_t pick;
    if (a != UINT64_MAX && behind <= ahead)
        pick = a;             /* nearer (or as near) behind: a late frame */
    else if (ahead != UINT64_MAX)
        pick = k0;
    else {
        st->duplicated++;     /* every copy near the stream's position has arrived already */
        return 1;
    }
    uint64_t b = e->bit0 + pick;
    c->bitmap[b >> 6] |= 1ull << (b & 63);
    e->matched++;
    st->delivered++;
    int64_t idx = (int64_t)nr_ct__index(e, st, pick);
    if (idx < st->highest)
        st->reordered++;
    else
        st->highest = idx;
    return 1;
}

void nr_ct_check_frame(struct nr_ct_checker *c, const uint8_t *f, uint32_t len)
{
    c->frames++;
    if (!nr_ct__count(c, f, len) && c->fallback != NULL)
        nr_st_check_frame(c->fallback, f, len);
}

uint32_t nr_ct_check_block(struct nr_ct_checker *c, const uint8_t *block, uint32_t block_size)
{
    struct nr_rx__it it;
    const struct tpacket3_hdr *h;
    uint32_t i = 0, off;
    nr_rx__begin(&it, block, block_size);
    while ((h = nr_rx__next(&it, &off)) != NULL) {
        i++;
        if (nr_rx__pkttype(h) == PACKET_OUTGOING) {
            c->outgoing++; /* the sender's own frame seen on the same link */
            if (c->fallback != NULL)
                c->fallback->outgoing++;
            continue;
        }
        const uint8_t *f = block + off;
        uint32_t len = h->tp_snaplen;
        c->frames++;
        /* The device took an 802.1Q tag off (veth does): put it back before the lookup, as the trace
         * holds it. Only frames that can be an entry are copied (scratch holds the largest + 4). */
        if ((h->tp_status & TP_STATUS_VLAN_VALID) && len >= 12 && len + 4 <= c->scratch_len) {
            uint16_t tpid = (h->tp_status & TP_STATUS_VLAN_TPID_VALID) ? h->hv1.tp_vlan_tpid : 0x8100;
            uint16_t tci = h->hv1.tp_vlan_tci;
            memcpy(c->scratch, f, 12);
            c->scratch[12] = (uint8_t)(tpid >> 8);
            c->scratch[13] = (uint8_t)tpid;
            c->scratch[14] = (uint8_t)(tci >> 8);
            c->scratch[15] = (uint8_t)tci;
            memcpy(c->scratch + 16, f + 12, len - 12);
            if (nr_ct__count(c, c->scratch, len + 4))
                continue;
        } else if (nr_ct__count(c, f, len)) {
            continue;
        }
        if (c->fallback != NULL)
            nr_st_check_frame(c->fallback, f, len);
    }
    return i;
}
