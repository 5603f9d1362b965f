/* Shared code of the C reference programs in bench/ref/ (header-only; each program is one .c file).
 *
 * Every program takes the same options (see ref_parse), enters the network namespace it is given
 * (--netns PATH, e.g. /proc/self/fd/N for an fd the runner passed down), pins itself to --cpu,
 * does its job, and prints exactly ONE JSON line on stdout. Errors go to stderr with exit code 2.
 *
 * Frames: Ethernet to a non-local unicast MAC (02:4e:52:00:00:99, not the receiver's address, so the
 * receiving kernel drops them right after the packet taps — see FIELD-NOTES: frames to the receiver's
 * own MAC cost ~1.7x more), ethertype 0x88B5 (IEEE 802 local experimental), payload = zero bytes
 * followed by netring's normative 20-byte stamp (netring/stamp.py: "NRTS", u16 stream id, u16 plen,
 * u64 seq, u32 check) at the end of the frame; plen covers every byte between the ethertype and the
 * stamp. The non-IP ethertype keeps the frames off every IP path and spares the senders an L4
 * checksum, so the rows measure the rings alone (the engine row uses real Ethernet/IPv4/UDP).
 * The netring cases send byte-identical frames, so C and netring do the same work per frame.
 */
#ifndef BENCH_REF_COMMON_H
#define BENCH_REF_COMMON_H

#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <net/if.h>
#include <sched.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

/* Shared-memory status words: acquire orders the reads of the slot/block after the status read;
 * release orders our writes to the slot/block before handing it to the kernel. */
#define LOAD_ACQ(p) __atomic_load_n((p), __ATOMIC_ACQUIRE)
#define STORE_REL(p, v) __atomic_store_n((p), (v), __ATOMIC_RELEASE)

#define STAMP_LEN 20
#define STAMP_HDR_LEN 16 /* magic..seq: the stamp bytes the check covers */
#define STAMP_MAGIC 0x4E525453u
#define BENCH_ETHERTYPE 0x88B5
#define FNV_SEED 0xcbf29ce484222325ull
#define FNV_PRIME 0x100000001b3ull

struct ref_opts {
    const char *ifname;
    const char *netns;
    long long count;       /* frames to send / expect */
    long long pool;        /* receiver: distinct seqs the sender cycles through (default count) */
    int size;              /* frame length in bytes (no FCS) */
    int cpu;               /* -1: do not pin */
    int ready_fd;          /* receiver: write one byte here once ready (-1: none) */
    unsigned stream_id;
    double timeout;        /* overall bound, seconds */
    double quiet;          /* receiver: stop this long after the last frame */
    int batch;             /* sender: frames per kick / per sendmmsg */
    int block_size, block_count, block_timeout_ms;   /* V3 RX ring geometry */
    int frame_count;       /* TX ring slots; AF_XDP receiver: UMEM frames */
    int ring_size;         /* AF_XDP receiver: RX ring entries (power of two) */
    int xdp_pass;          /* V3 receiver: attach a native XDP_PASS program first (--xdp-pass) */
    int busy;              /* AF_XDP receiver: busy-spin + busy-poll instead of poll() (--busy) */
};

static void die(const char *what)
{
    fprintf(stderr, "%s: %s\n", what, strerror(errno));
    exit(2);
}

static void die_msg(const char *msg)
{
    fprintf(stderr, "%s\n", msg);
    exit(2);
}

static inline int64_t now_ns(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts); /* same clock as Python's time.monotonic_ns() */
    return (int64_t)ts.tv_sec * 1000000000LL + ts.tv_nsec;
}

static void ref_parse(int argc, char **argv, struct ref_opts *o)
{
    static const struct option lo[] = {
        {"ifname", 1, 0, 'i'}, {"netns", 1, 0, 'n'}, {"count", 1, 0, 'c'}, {"size", 1, 0, 's'},
        {"cpu", 1, 0, 'C'}, {"ready-fd", 1, 0, 'r'}, {"stream-id", 1, 0, 'S'}, {"timeout", 1, 0, 't'},
        {"quiet", 1, 0, 'q'}, {"batch", 1, 0, 'b'}, {"pool", 1, 0, 'p'}, {"block-size", 1, 0, 'B'},
        {"block-count", 1, 0, 'N'}, {"block-timeout-ms", 1, 0, 'T'}, {"frame-count", 1, 0, 'F'},
        {"xdp-pass", 0, 0, 'P'}, {"ring-size", 1, 0, 'R'}, {"busy", 0, 0, 'Y'}, {0, 0, 0, 0}};
    memset(o, 0, sizeof(*o));
    o->count = 1000; o->size = 64; o->cpu = -1; o->ready_fd = -1; o->stream_id = 1;
    o->timeout = 30; o->quiet = 0.5; o->batch = 256; o->pool = 0;
    o->block_size = 1 << 20; o->block_count = 8; o->block_timeout_ms = 10; o->frame_count = 1024; o->ring_size = 8192;
    int c;
    while ((c = getopt_long(argc, argv, "", lo, NULL)) != -1) {
        switch (c) {
        case 'i': o->ifname = optarg; break;
        case 'n': o->netns = optarg; break;
        case 'c': o->count = atoll(optarg); break;
        case 's': o->size = atoi(optarg); break;
        case 'C': o->cpu = atoi(optarg); break;
        case 'r': o->ready_fd = atoi(optarg); break;
        case 'S': o->stream_id = (unsigned)strtoul(optarg, NULL, 0); break;
        case 't': o->timeout = atof(optarg); break;
        case 'q': o->quiet = atof(optarg); break;
        case 'b': o->batch = atoi(optarg); break;
        case 'p': o->pool = atoll(optarg); break;
        case 'B': o->block_size = atoi(optarg); break;
        case 'N': o->block_count = atoi(optarg); break;
        case 'T': o->block_timeout_ms = atoi(optarg); break;
        case 'F': o->frame_count = atoi(optarg); break;
        case 'P': o->xdp_pass = 1; break;
        case 'R': o->ring_size = atoi(optarg); break;
        case 'Y': o->busy = 1; break;
        default: die_msg("usage: PROG --ifname IF [--netns PATH] [--count N] [--size B] [--cpu N] ...");
        }
    }
    if (!o->ifname) die_msg("--ifname is required");
    if (o->count <= 0) die_msg("--count must be > 0");
    if (o->size < 14 + 2 + STAMP_LEN || o->size > 9000) die_msg("--size must be 36..9000");
    if (o->batch < 1 || o->batch > 1024) die_msg("--batch must be 1..1024");
    if (o->stream_id > 0xffff) die_msg("--stream-id must be 0..65535 (the stamp holds 16 bits)");
    if (o->pool <= 0 || o->pool > o->count) o->pool = o->count;
}

/* Enter the namespace and pin the thread; resolve ifname there. */
static int ref_setup(const struct ref_opts *o)
{
    if (o->netns) {
        int fd = open(o->netns, O_RDONLY | O_CLOEXEC);
        if (fd < 0) die("open --netns");
        if (setns(fd, CLONE_NEWNET) < 0) die("setns");
        close(fd);
    }
    if (o->cpu >= 0) {
        cpu_set_t set;
        CPU_ZERO(&set);
        CPU_SET(o->cpu, &set);
        if (sched_setaffinity(0, sizeof(set), &set) < 0) die("sched_setaffinity");
    }
    int ifindex = (int)if_nametoindex(o->ifname);
    if (!ifindex) die("if_nametoindex");
    return ifindex;
}

__attribute__((unused)) static void ref_ready(const struct ref_opts *o)
{
    if (o->ready_fd >= 0) {
        char b = 'R';
        if (write(o->ready_fd, &b, 1) != 1) die("write --ready-fd");
        close(o->ready_fd);
    }
}

/* netring stamp check: FNV-style hash over 8-byte little-endian words, last one zero-padded. */
static inline uint64_t fnv_words(uint64_t h, const uint8_t *p, size_t n)
{
    size_t i = 0;
    for (; i + 8 <= n; i += 8) {
        uint64_t w;
        memcpy(&w, p + i, 8); /* x86-64 is little-endian, which is what the stamp specifies */
        h = (h ^ w) * FNV_PRIME;
    }
    if (i < n) {
        uint64_t w = 0;
        memcpy(&w, p + i, n - i);
        h = (h ^ w) * FNV_PRIME;
    }
    return h;
}

static inline void put_be16(uint8_t *p, uint32_t v) { p[0] = v >> 8; p[1] = v; }
static inline uint32_t get_be16(const uint8_t *p) { return (uint32_t)p[0] << 8 | p[1]; }
static inline void put_be32(uint8_t *p, uint32_t v) { p[0] = v >> 24; p[1] = v >> 16; p[2] = v >> 8; p[3] = v; }
static inline uint32_t get_be32(const uint8_t *p) { return (uint32_t)p[0] << 24 | p[1] << 16 | p[2] << 8 | p[3]; }
static inline void put_be64(uint8_t *p, uint64_t v) { put_be32(p, v >> 32); put_be32(p + 4, (uint32_t)v); }
static inline uint64_t get_be64(const uint8_t *p) { return (uint64_t)get_be32(p) << 32 | get_be32(p + 4); }

/* Frame template (see top of file). Returns the payload hash H(seed, payload) for O(1) stamping. */
__attribute__((unused)) static uint64_t build_template(uint8_t *f, int size)
{
    static const uint8_t dst[6] = {0x02, 0x4e, 0x52, 0x00, 0x00, 0x99};
    static const uint8_t src[6] = {0x02, 0x4e, 0x52, 0x00, 0x00, 0x01};
    memset(f, 0, size);
    memcpy(f, dst, 6);
    memcpy(f + 6, src, 6);
    f[12] = BENCH_ETHERTYPE >> 8;
    f[13] = BENCH_ETHERTYPE & 0xff;
    int off = size - STAMP_LEN;
    return fnv_words(FNV_SEED, f + 14, off - 14);
}

/* Write the stamp of (stream_id, seq) at the end of frame f, given the template's payload hash.
 * Layout (big-endian): +0 magic u32, +4 stream id u16, +6 plen u16, +8 seq u64, +16 check u32. */
static inline void stamp_frame(uint8_t *f, int size, uint64_t phash, uint32_t sid, uint64_t seq)
{
    uint8_t *s = f + size - STAMP_LEN;
    put_be32(s, STAMP_MAGIC);
    put_be16(s + 4, sid);
    put_be16(s + 6, (uint32_t)(size - STAMP_LEN - 14));
    put_be64(s + 8, seq);
    uint64_t h = fnv_words(phash, s, STAMP_HDR_LEN);
    put_be32(s + 16, (uint32_t)(h ^ (h >> 32)));
}

/* Exact sequence accounting of one stream (shared by the V3 and AF_XDP receivers): locate the stamp
 * (last 20 B of the frame for the bench's non-IP ethertype — the same rule as netring.stamp.locate),
 * recompute the full check (payload + stamp), and account the seq in a seen-bitmap sized by --pool:
 * delivered (first sighting), duplicated, reordered (first sighting below the highest seq seen),
 * corrupted (magic OK, check wrong), unexpected (no stamp / other stream / seq >= pool). */
struct acct {
    uint8_t *seen;
    long long pool, received, delivered, duplicated, reordered, corrupted, unexpected, outgoing;
    uint64_t max_seq;
    int any;
};

__attribute__((unused)) static inline void account(struct acct *a, const uint8_t *f, unsigned len, uint32_t sid)
{
    if (len < 14 + STAMP_LEN) { a->unexpected++; return; }
    /* locate per netring.stamp: this receiver only expects the bench ethertype (no VLAN, no IP) */
    unsigned etype = (unsigned)f[12] << 8 | f[13];
    if (etype != BENCH_ETHERTYPE) { a->unexpected++; return; }
    unsigned off = len - STAMP_LEN;
    const uint8_t *s = f + off;
    if (get_be32(s) != STAMP_MAGIC || get_be16(s + 4) != sid) { a->unexpected++; return; }
    uint32_t plen = get_be16(s + 6);
    uint64_t seq = get_be64(s + 8);
    if (plen > off) { a->corrupted++; a->received++; return; }
    uint64_t h = fnv_words(fnv_words(FNV_SEED, s - plen, plen), s, STAMP_HDR_LEN);
    if ((uint32_t)(h ^ (h >> 32)) != get_be32(s + 16)) { a->corrupted++; a->received++; return; }
    if (seq >= (uint64_t)a->pool) { a->unexpected++; return; }
    a->received++;
    uint8_t bit = (uint8_t)(1u << (seq & 7));
    if (a->seen[seq >> 3] & bit) { a->duplicated++; return; }
    a->seen[seq >> 3] |= bit;
    a->delivered++;
    if (a->any && seq < a->max_seq) a->reordered++;
    if (!a->any || seq > a->max_seq) a->max_seq = seq;
    a->any = 1;
}

#endif
