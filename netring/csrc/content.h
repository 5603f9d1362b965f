/* content: counting frames by their exact bytes (a replayed trace sent untouched, `stamp: false`).
 * A hash table of the distinct frame contents a stream sends, each with how many copies are
 * expected and at which trace positions it occurs; one call walks a retired V3 block, counts the
 * frames that are trace frames and hands every other frame to a stamp checker (stampc.c), which
 * counts it or calls it unexpected. Prefix nr_ct_. */
#ifndef NETRING_CONTENT_H
#define NETRING_CONTENT_H
#include <stdint.h>
#include "common.h"
#include "rx.h"
#include "stampc.h"

/* One distinct frame content of one stream. The stream sends trace frame i % trace_len as its
 * frame i; this content sits at trace positions pos[0..npos-1] (ascending), so its k-th copy
 * (k counted from 0) is frame (k / npos) * trace_len + pos[k % npos] of the stream.
 *
 * Which copy an arriving frame is: the unmatched copy nearest to the highest send index matched so
 * far in its stream (on a tie the earlier one), looked for within half a trace cycle of it — except
 * that the first copy after it is taken however far ahead when the copy before it never arrived.
 * None there: a duplicate. So a duplicate is not taken for the next cycle's copy, a lost copy does
 * not shift the later copies of its content into reorders, and a frame held back by less than half
 * a cycle is matched to its own send (a later one is counted lost and duplicated). */
struct nr_ct_entry {
    const uint8_t *data;   /* the frame's bytes (owned by the Python object) */
    uint64_t hash;         /* filled by nr_ct_index */
    uint64_t expected;     /* copies the stream sends */
    uint64_t received;     /* copies that arrived (duplicates included) */
    uint64_t matched;      /* copies matched to a send (at most `expected`) */
    uint64_t bit0;         /* bit of copy 0 in the checker's bitmap (bit bit0 + k: copy k matched) */
    const uint32_t *pos;
    uint32_t npos;
    uint32_t len;
    uint32_t stream;       /* index into the checker's streams */
    uint32_t pad;
};

struct nr_ct_stream {
    uint64_t count;        /* frames the stream sends */
    uint64_t trace_len;
    uint64_t delivered;    /* copies matched to a send (at most `expected` per content) */
    uint64_t duplicated;   /* copies beyond what was sent */
    uint64_t reordered;    /* matched copies whose send index is below the highest matched so far */
    int64_t highest;
};

struct nr_ct_checker {
    struct nr_ct_entry *entries;
    uint32_t nentries;
    uint32_t mask;         /* slots - 1 (a power of two, at least 2 * nentries) */
    uint32_t *slots;       /* open addressing: entry index + 1, 0 = empty */
    struct nr_ct_stream *streams;
    uint32_t nstreams;
    uint32_t scratch_len;  /* at least the largest entry + 4 (a VLAN tag put back) */
    uint8_t *scratch;
    uint64_t *bitmap;      /* one bit per frame sent, entry by entry (see nr_ct_entry.bit0) */
    struct nr_st_checker *fallback; /* counts every frame that is no trace frame */
    uint64_t frames;       /* frames examined (outgoing skipped not included) */
    uint64_t matched;      /* frames that were trace frames */
    uint64_t outgoing;
};

uint64_t nr_ct_hash(const uint8_t *p, uint32_t len);
int nr_ct_index(struct nr_ct_checker *c);
void nr_ct_check_frame(struct nr_ct_checker *c, const uint8_t *f, uint32_t len);
uint32_t nr_ct_check_block(struct nr_ct_checker *c, const uint8_t *block, uint32_t block_size);
#endif
