/* C reference: AF_XDP receiver in copy mode (UMEM + fill ring + RX ring), exact accounting like v3rx.
 *
 * Registers a UMEM of --frame-count frames of 4096 B (default 16384 frames, 64 MiB), creates the fill
 * ring (as many entries as frames), a completion ring (the kernel wants one) and an RX ring of
 * --ring-size entries (default 8192: at ~10 Mpps that is 0.8 ms of slack for a receiver that loses
 * its CPU for a moment on a shared machine), binds to queue 0 of --ifname with XDP_COPY | XDP_USE_NEED_WAKEUP, puts the socket
 * into a one-slot XSKMAP and attaches (native, BPF_LINK_CREATE: detached when the fd closes) a
 * hand-assembled program that redirects every frame of its queue into the map (XDP_PASS if no
 * socket is there). All frames start in the fill ring.
 *
 * Per batch: read the RX producer (acquire), check each descriptor lies inside the UMEM (address and
 * length; a bad one is counted and never read), account() every frame (common.h: stamp, full check,
 * seen-bitmap), return the frames to the fill ring, then publish fill producer and RX consumer
 * (release). The fill ring has room for every frame, so it never overflows.
 *   default  poll(POLLIN) for 10 ms whenever the RX ring is empty;
 *   --busy   busy-spin on the ring (no syscall while it is empty), with SO_PREFER_BUSY_POLL /
 *            SO_BUSY_POLL / SO_BUSY_POLL_BUDGET set as the kernel's AF_XDP self-test does, and a
 *            non-blocking recvfrom() only when the kernel asks for a wakeup on the fill ring (copy
 *            mode never does here). Calling recvfrom() on every empty check, to busy-poll the veth
 *            NAPI from this core, was slower on veth: the veth NAPI is scheduled on the sender's core.
 * Stops like v3rx. Prints {"role":"rx","impl":"c-xsk",...} with the XDP_STATISTICS counters. */
#include "bpfref.h"
#include <linux/if_xdp.h>
#include <poll.h>
#include <sys/mman.h>
#include <sys/socket.h>

#ifndef AF_XDP
#define AF_XDP 44
#endif
#ifndef SOL_XDP
#define SOL_XDP 283
#endif
#ifndef SO_BUSY_POLL
#define SO_BUSY_POLL 46
#endif
#ifndef SO_PREFER_BUSY_POLL
#define SO_PREFER_BUSY_POLL 69
#endif
#ifndef SO_BUSY_POLL_BUDGET
#define SO_BUSY_POLL_BUDGET 70
#endif
#ifndef XDP_USE_NEED_WAKEUP
#define XDP_USE_NEED_WAKEUP (1 << 3)
#endif
#ifndef XDP_RING_NEED_WAKEUP
#define XDP_RING_NEED_WAKEUP (1 << 0)
#endif

#define FRAME_SIZE 4096u
#define CQ_RING 64u

struct ring {
    uint32_t *producer, *consumer, *flags;
    void *desc;
    uint32_t mask;
    void *map;
    size_t map_len;
};

static void map_ring(int fd, struct ring *r, const struct xdp_ring_offset *off, uint32_t n, size_t esz, off_t pgoff)
{
    r->map_len = off->desc + n * esz;
    r->map = mmap(NULL, r->map_len, PROT_READ | PROT_WRITE, MAP_SHARED | MAP_POPULATE, fd, pgoff);
    if (r->map == MAP_FAILED) die("mmap(AF_XDP ring)");
    r->producer = (uint32_t *)((uint8_t *)r->map + off->producer);
    r->consumer = (uint32_t *)((uint8_t *)r->map + off->consumer);
    r->flags = (uint32_t *)((uint8_t *)r->map + off->flags);
    r->desc = (uint8_t *)r->map + off->desc;
    r->mask = n - 1;
}

static void setint(int fd, int level, int opt, int v, const char *what)
{
    if (setsockopt(fd, level, opt, &v, sizeof(v)) < 0) die(what);
}

int main(int argc, char **argv)
{
    struct ref_opts o;
    int fc_given = 0;
    for (int i = 1; i < argc; i++)
        if (!strncmp(argv[i], "--frame-count", 13)) fc_given = 1;
    ref_parse(argc, argv, &o);
    if (!fc_given) o.frame_count = 16384;
    if (o.frame_count < 64 || o.frame_count > (1 << 18) || (o.frame_count & (o.frame_count - 1)))
        die_msg("--frame-count must be a power of two, 64..262144");
    if (o.ring_size < 64 || o.ring_size > o.frame_count || (o.ring_size & (o.ring_size - 1)))
        die_msg("--ring-size must be a power of two, 64..--frame-count");
    const uint32_t RX_RING = (uint32_t)o.ring_size;
    if (o.size > (int)FRAME_SIZE) die_msg("--size larger than a UMEM frame (4096 B)");
    int ifindex = ref_setup(&o);
    const uint32_t nframes = (uint32_t)o.frame_count;

    int fd = socket(AF_XDP, SOCK_RAW, 0);
    if (fd < 0) die("socket(AF_XDP)");
    size_t umem_len = (size_t)nframes * FRAME_SIZE;
    uint8_t *umem = mmap(NULL, umem_len, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS | MAP_POPULATE, -1, 0);
    if (umem == MAP_FAILED) die("mmap(UMEM)");
    struct xdp_umem_reg ur;
    memset(&ur, 0, sizeof(ur));
    ur.addr = (uint64_t)(uintptr_t)umem;
    ur.len = umem_len;
    ur.chunk_size = FRAME_SIZE;
    ur.headroom = 0;
    if (setsockopt(fd, SOL_XDP, XDP_UMEM_REG, &ur, sizeof(ur)) < 0) die("XDP_UMEM_REG");
    setint(fd, SOL_XDP, XDP_UMEM_FILL_RING, (int)nframes, "XDP_UMEM_FILL_RING");
    setint(fd, SOL_XDP, XDP_UMEM_COMPLETION_RING, CQ_RING, "XDP_UMEM_COMPLETION_RING");
    setint(fd, SOL_XDP, XDP_RX_RING, RX_RING, "XDP_RX_RING");
    struct xdp_mmap_offsets off;
    socklen_t ol = sizeof(off);
    if (getsockopt(fd, SOL_XDP, XDP_MMAP_OFFSETS, &off, &ol) < 0) die("XDP_MMAP_OFFSETS");
    struct ring fq, rx;
    map_ring(fd, &fq, &off.fr, nframes, sizeof(uint64_t), XDP_UMEM_PGOFF_FILL_RING);
    map_ring(fd, &rx, &off.rx, RX_RING, sizeof(struct xdp_desc), XDP_PGOFF_RX_RING);

    /* every frame into the fill ring before the bind */
    uint64_t *fdesc = fq.desc;
    uint32_t fprod = *fq.producer;
    for (uint32_t i = 0; i < nframes; i++) fdesc[(fprod + i) & fq.mask] = (uint64_t)i * FRAME_SIZE;
    fprod += nframes;
    STORE_REL(fq.producer, fprod);

    if (o.busy) {
        setint(fd, SOL_SOCKET, SO_PREFER_BUSY_POLL, 1, "SO_PREFER_BUSY_POLL");
        setint(fd, SOL_SOCKET, SO_BUSY_POLL, 20, "SO_BUSY_POLL");
        setint(fd, SOL_SOCKET, SO_BUSY_POLL_BUDGET, 64, "SO_BUSY_POLL_BUDGET");
    }
    struct sockaddr_xdp sx;
    memset(&sx, 0, sizeof(sx));
    sx.sxdp_family = AF_XDP;
    sx.sxdp_ifindex = (uint32_t)ifindex;
    sx.sxdp_queue_id = 0;
    sx.sxdp_flags = XDP_COPY | XDP_USE_NEED_WAKEUP;
    /* The previous socket on this queue is released asynchronously after its close: EBUSY for a moment. */
    for (int tries = 0; bind(fd, (struct sockaddr *)&sx, sizeof(sx)) < 0; tries++) {
        if (errno != EBUSY || tries >= 150) die("bind(AF_XDP, copy mode, queue 0)");
        struct timespec w = {0, 20000000};
        nanosleep(&w, NULL);
    }

    int xskmap = ref_map_create(BPF_MAP_TYPE_XSKMAP, 4, 4, 1);
    ref_map_update(xskmap, 0, &fd);
    struct bpf_insn prog[] = {
        INSN(BPF_LDX | BPF_MEM | BPF_W, 2, 1, 16, 0),               /* r2 = ctx->rx_queue_index */
        LD_MAP_FD(1, xskmap),                                       /* r1 = xskmap */
        INSN(BPF_ALU64 | BPF_MOV | BPF_K, 3, 0, 0, XDP_PASS),       /* r3 = XDP_PASS (no socket there) */
        INSN(BPF_JMP | BPF_CALL, 0, 0, 0, BPF_FUNC_redirect_map),
        INSN(BPF_JMP | BPF_EXIT, 0, 0, 0, 0),
    };
    int pfd = ref_prog_load(prog, sizeof(prog) / sizeof(prog[0]), "ref_xsk");
    int link = ref_attach_native(pfd, ifindex);

    struct acct a = {0};
    a.pool = o.pool;
    a.seen = calloc((size_t)(o.pool + 7) / 8, 1);
    if (!a.seen) die("calloc");
    ref_ready(&o);

    int64_t start = now_ns(), deadline = start + (int64_t)(o.timeout * 1e9);
    int64_t quiet = (int64_t)(o.quiet * 1e9), t_first = 0, t_last = 0;
    long long batches = 0, bad_desc = 0, polls = 0, kicks = 0;
    uint32_t rcons = *rx.consumer;
    int timed_out = 0;
    const struct xdp_desc *rdesc = rx.desc;
    while (a.received < o.count) {
        uint32_t n = LOAD_ACQ(rx.producer) - rcons;
        if (n == 0) {
            int64_t now = now_ns();
            if (now > deadline) { timed_out = 1; break; }
            if (t_last && now - t_last > quiet) break;
            if (o.busy) {
                polls++;
                if (!(LOAD_ACQ(fq.flags) & XDP_RING_NEED_WAKEUP)) continue;
                recvfrom(fd, NULL, 0, MSG_DONTWAIT, NULL, NULL); /* the kernel asked for a wakeup */
                kicks++;
            } else {
                struct pollfd p = {fd, POLLIN, 0};
                poll(&p, 1, 10);
                polls++;
            }
            continue;
        }
        long long before = a.received;
        for (uint32_t i = 0; i < n; i++) {
            const struct xdp_desc *d = &rdesc[(rcons + i) & rx.mask];
            uint64_t addr = d->addr;
            uint32_t len = d->len;
            if (addr >= umem_len || len > FRAME_SIZE || addr + len > umem_len ||
                (addr % FRAME_SIZE) + len > FRAME_SIZE) {
                bad_desc++; /* never read outside the UMEM; the frame is lost to this run */
                continue;
            }
            account(&a, umem + addr, len, o.stream_id);
            fdesc[fprod++ & fq.mask] = addr - addr % FRAME_SIZE;
        }
        STORE_REL(fq.producer, fprod);
        rcons += n;
        STORE_REL(rx.consumer, rcons);
        batches++;
        if (a.received > before) {
            t_last = now_ns();
            if (!t_first) t_first = t_last;
        }
    }
    struct xdp_statistics st;
    memset(&st, 0, sizeof(st));
    socklen_t sl = sizeof(st);
    getsockopt(fd, SOL_XDP, XDP_STATISTICS, &st, &sl);
    close(link); /* detaches the program */
    close(pfd);
    close(xskmap);
    long long lost = o.pool - a.delivered;
    printf("{\"role\":\"rx\",\"impl\":\"c-xsk%s\",\"expected\":%lld,\"pool\":%lld,\"received\":%lld,"
           "\"delivered\":%lld,\"lost\":%lld,\"duplicated\":%lld,\"reordered\":%lld,\"corrupted\":%lld,"
           "\"unexpected\":%lld,\"bad_desc\":%lld,\"batches\":%lld,\"polls\":%lld,\"kicks\":%lld,"
           "\"rx_dropped\":%llu,\"rx_invalid_descs\":%llu,\"rx_ring_full\":%llu,\"rx_fill_ring_empty_descs\":%llu,"
           "\"t_first_ns\":%lld,\"t_last_ns\":%lld,\"timed_out\":%s}\n",
           o.busy ? "-busy" : "", o.count, o.pool, a.received, a.delivered, lost, a.duplicated, a.reordered,
           a.corrupted, a.unexpected, bad_desc, batches, polls, kicks,
           (unsigned long long)st.rx_dropped, (unsigned long long)st.rx_invalid_descs,
           (unsigned long long)st.rx_ring_full, (unsigned long long)st.rx_fill_ring_empty_descs,
           (long long)t_first, (long long)t_last, timed_out ? "true" : "false");
    munmap(rx.map, rx.map_len);
    munmap(fq.map, fq.map_len);
    close(fd);
    munmap(umem, umem_len);
    return 0;
}
