/* stampc: the frame stamp in C (see netring/stamp.py, the normative reference) — per-frame
 * stamping of TX templates with incremental L4 checksum update, paced stream sending into the
 * TX ring, and the RX sequence checker that walks a whole V3 block in one call. Prefix nr_st_. */
#ifndef NETRING_STAMPC_H
#define NETRING_STAMPC_H
#include <stdint.h>
#include "common.h"
#include "rx.h"
#include "tx.h"

/* Layout (big-endian): +0 u32 magic, +4 u16 stream_id, +6 u16 plen, +8 u64 seq, +16 u32 check */
#define NR_ST_STAMP_LEN 20
#define NR_ST_HDR_LEN 16 /* the stamp bytes the check covers: magic .. seq */
#define NR_ST_MAGIC 0x4E525453u

/* A template frame that already carries a valid stamp (written by netring.stamp.write). */
struct nr_st_tmpl {
    const uint8_t *data;
    uint64_t phash;     /* H(seed, plen payload bytes before the stamp), precomputed once */
    uint32_t len;
    uint32_t stamp_off;
    int32_t csum_off;   /* byte offset of the L4 checksum to patch, or -1 */
    uint32_t udp;       /* 1: UDP rules (0 = no checksum, stays 0; computed 0 is sent as 0xffff) */
};

/* One send_stream run; `done` advances across calls. */
struct nr_st_job {
    const struct nr_st_tmpl *tmpls;
    uint32_t ntmpl;
    uint32_t stream_id;    /* 0..65535 (written as a u16) */
    uint64_t first_seq;
    uint64_t count;
    uint64_t done;
    double rate_pps;       /* <= 0: as fast as the ring allows */
    uint64_t t0_ns;        /* CLOCK_MONOTONIC time frame 0 is due */
    uint64_t deadline_ns;  /* CLOCK_MONOTONIC; 0: none */
    uint64_t slice_ns;     /* return to the caller after at most this long (signals, Ctrl-C) */
    int32_t last_err;      /* -errno of the last failed kick, 0 if none */
    uint32_t ring_full;    /* 1 when the last call stopped because the ring was full */
};

struct nr_st_stream {
    uint64_t count;
    uint64_t *bitmap;      /* count bits */
    uint64_t delivered;
    uint64_t duplicated;
    uint64_t reordered;
    uint64_t corrupted;
    int64_t highest;       /* highest seq seen, -1 before the first */
    uint32_t id;
    uint32_t pad;
};

struct nr_st_checker {
    struct nr_st_stream *streams;  /* sorted by id */
    uint32_t nstreams;
    uint32_t keep_max;
    uint32_t keep_snap;
    uint32_t kept;
    uint8_t *keep_buf;             /* keep_max * keep_snap bytes */
    uint32_t *keep_len;            /* copied length of each kept frame */
    uint32_t *keep_wire;           /* original length of each kept frame */
    uint64_t unexpected;
    uint64_t frames;               /* frames examined (not counting skipped outgoing ones) */
    uint64_t outgoing;             /* PACKET_OUTGOING frames skipped */
};

int32_t nr_st_locate(const uint8_t *f, uint32_t len); /* stamp offset, or -ENOENT */
uint64_t nr_st_payload_hash(const uint8_t *p, uint32_t len);
uint32_t nr_st_check_value(uint64_t phash, const uint8_t *stamp16);
void nr_st_stamp(uint8_t *f, const struct nr_st_tmpl *t, uint32_t stream_id, uint64_t seq);
int64_t nr_st_send(struct nr_tx_ring *r, struct nr_st_job *j);
uint64_t nr_st_now_ns(void);
int nr_st_wait_until(uint64_t t);
void nr_st_check_frame(struct nr_st_checker *c, const uint8_t *f, uint32_t len);
uint32_t nr_st_check_block(struct nr_st_checker *c, const uint8_t *block, uint32_t block_size);

#endif
