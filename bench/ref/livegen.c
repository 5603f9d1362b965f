/* C reference: in-kernel live-frames generator (BPF_PROG_RUN with BPF_F_TEST_XDP_LIVE_FRAMES, 5.18+).
 *
 * Loads a hand-assembled XDP program that, per frame, takes the next seq from a one-slot array map
 * (atomic fetch-and-add, so the map also counts the frames run), writes it into the stamp at the end
 * of the frame, recomputes the stamp's check — H(H(payload hash, stamp word 0), seq word), folded to
 * 32 bits, with the constant part H(payload hash, word 0) precomputed here and baked in as an
 * immediate — and returns XDP_TX. The kernel runs it over pages initialised from the bench template
 * (common.h: the same bytes as every other sender) in batches of --batch (default 64 here, kernel
 * limit 256) and transmits each XDP_TX'd frame out of --ifname. No socket, no skb on the sender.
 *
 * The repeat count is bounded: at most CHUNK frames per PROG_RUN call (--frame-count N: N; the
 * bench's profile uses it to measure the fixed cost of one call), --timeout checked between calls. A veth end delivers these frames only if its peer runs a native XDP program (the receivers
 * here attach one). Prints {"role":"tx","impl":"c-livegen","sent":N,"t_start_ns":...,"t_end_ns":...}
 * where sent is the program's own counter (frames it returned XDP_TX for). */
#include "bpfref.h"

#define CHUNK (1u << 22)      /* default frames per PROG_RUN call (~0.4 s at 10 Mpps); --frame-count N sets it */
#define MAX_LIVE_SIZE 3408    /* a page less headroom, the kernel's per-page state and skb_shared_info */

int main(int argc, char **argv)
{
    struct ref_opts o;
    int batch_given = 0, chunk_given = 0;
    for (int i = 1; i < argc; i++) {
        if (!strncmp(argv[i], "--batch", 7)) batch_given = 1;
        if (!strncmp(argv[i], "--frame-count", 13)) chunk_given = 1;
    }
    ref_parse(argc, argv, &o);
    if (!batch_given) o.batch = 64;
    const uint32_t chunk = chunk_given && o.frame_count > 0 ? (uint32_t)o.frame_count : CHUNK;
    if (o.batch > 256) die_msg("--batch must be <= 256 for live frames (TEST_XDP_MAX_BATCH)");
    if (o.size > MAX_LIVE_SIZE) die_msg("--size too large for a live-frames page (max 3408 B)");
    int ifindex = ref_setup(&o);

    uint8_t tmpl[MAX_LIVE_SIZE];
    uint64_t phash = build_template(tmpl, o.size);
    stamp_frame(tmpl, o.size, phash, o.stream_id, 0);
    uint64_t w0;
    memcpy(&w0, tmpl + o.size - STAMP_LEN, 8); /* magic, stream id, plen: constant per stream */
    uint64_t h1 = (phash ^ w0) * FNV_PRIME;

    int map = ref_map_create(BPF_MAP_TYPE_ARRAY, 4, 8, 1);
    const int16_t seq_off = (int16_t)(o.size - STAMP_LEN + 8), chk_off = (int16_t)(o.size - 4);
    struct bpf_insn prog[] = {
        INSN(BPF_ALU64 | BPF_MOV | BPF_X, 6, 1, 0, 0),              /* r6 = ctx */
        INSN(BPF_LDX | BPF_MEM | BPF_W, 7, 6, 0, 0),                /* r7 = ctx->data */
        INSN(BPF_LDX | BPF_MEM | BPF_W, 8, 6, 4, 0),                /* r8 = ctx->data_end */
        INSN(BPF_ALU64 | BPF_MOV | BPF_X, 2, 7, 0, 0),              /* r2 = r7 */
        INSN(BPF_ALU64 | BPF_ADD | BPF_K, 2, 0, 0, o.size),         /* r2 += size */
        INSN(BPF_JMP | BPF_JGT | BPF_X, 2, 8, 24, 0),               /* if r2 > r8 goto abort (bounds before the call) */
        INSN(BPF_ST | BPF_MEM | BPF_W, 10, 0, -4, 0),               /* *(u32 *)(r10 - 4) = 0: key */
        INSN(BPF_ALU64 | BPF_MOV | BPF_X, 2, 10, 0, 0),             /* r2 = r10 */
        INSN(BPF_ALU64 | BPF_ADD | BPF_K, 2, 0, 0, -4),             /* r2 += -4 */
        LD_MAP_FD(1, map),                                          /* r1 = map */
        INSN(BPF_JMP | BPF_CALL, 0, 0, 0, BPF_FUNC_map_lookup_elem),
        INSN(BPF_JMP | BPF_JEQ | BPF_K, 0, 0, 17, 0),               /* if r0 == 0 goto abort */
        INSN(BPF_ALU64 | BPF_MOV | BPF_K, 1, 0, 0, 1),              /* r1 = 1 */
        INSN(BPF_STX | BPF_ATOMIC | BPF_DW, 0, 1, 0, BPF_ADD | BPF_FETCH), /* r1 = fetch_add(*r0, r1): seq */
        INSN(BPF_ALU | BPF_END | BPF_TO_BE, 1, 0, 0, 64),           /* r1 = htobe64(seq) = the LE seq word */
        INSN(BPF_STX | BPF_MEM | BPF_DW, 7, 1, seq_off, 0),         /* stamp.seq = r1 */
        LD_IMM64(2, h1),                                            /* r2 = H(phash, word 0) */
        INSN(BPF_ALU64 | BPF_XOR | BPF_X, 2, 1, 0, 0),              /* r2 ^= seq word */
        LD_IMM64(3, FNV_PRIME),                                     /* r3 = FNV prime */
        INSN(BPF_ALU64 | BPF_MUL | BPF_X, 2, 3, 0, 0),              /* r2 *= r3 */
        INSN(BPF_ALU64 | BPF_MOV | BPF_X, 3, 2, 0, 0),              /* r3 = r2 */
        INSN(BPF_ALU64 | BPF_RSH | BPF_K, 3, 0, 0, 32),             /* r3 >>= 32 */
        INSN(BPF_ALU64 | BPF_XOR | BPF_X, 2, 3, 0, 0),              /* r2 ^= r3: fold */
        INSN(BPF_ALU | BPF_END | BPF_TO_BE, 2, 0, 0, 32),           /* r2 = htobe32(r2) */
        INSN(BPF_STX | BPF_MEM | BPF_W, 7, 2, chk_off, 0),          /* stamp.check = r2 */
        INSN(BPF_ALU64 | BPF_MOV | BPF_K, 0, 0, 0, XDP_TX),
        INSN(BPF_JMP | BPF_EXIT, 0, 0, 0, 0),
        INSN(BPF_ALU64 | BPF_MOV | BPF_K, 0, 0, 0, XDP_ABORTED),    /* abort: */
        INSN(BPF_JMP | BPF_EXIT, 0, 0, 0, 0),
    };
    int pfd = ref_prog_load(prog, sizeof(prog) / sizeof(prog[0]), "ref_livegen");

    struct xdp_md ctx;
    memset(&ctx, 0, sizeof(ctx));
    ctx.data_end = (uint32_t)o.size;
    ctx.ingress_ifindex = (uint32_t)ifindex;
    int64_t t0 = now_ns(), deadline = t0 + (int64_t)(o.timeout * 1e9);
    uint64_t sent = 0;
    long long calls = 0, eintr = 0;
    while (sent < (uint64_t)o.count && now_ns() < deadline) {
        uint64_t left = (uint64_t)o.count - sent;
        union bpf_attr attr;
        memset(&attr, 0, sizeof(attr));
        attr.test.prog_fd = pfd;
        attr.test.data_in = (uint64_t)(uintptr_t)tmpl;
        attr.test.data_size_in = (uint32_t)o.size;
        attr.test.ctx_in = (uint64_t)(uintptr_t)&ctx;
        attr.test.ctx_size_in = sizeof(ctx);
        attr.test.repeat = left < chunk ? (uint32_t)left : chunk;
        attr.test.flags = BPF_F_TEST_XDP_LIVE_FRAMES;
        attr.test.batch_size = (uint32_t)o.batch;
        calls++;
        if (sys_bpf(BPF_PROG_TEST_RUN, &attr) < 0) {
            if (errno != EINTR) die("bpf(BPF_PROG_TEST_RUN, live frames)");
            eintr++;
        }
        uint64_t now_sent = ref_map_u64(map, 0);
        if (now_sent == sent) die_msg("live-frames run made no progress");
        sent = now_sent;
    }
    int64_t t1 = now_ns();
    close(pfd);
    close(map);
    printf("{\"role\":\"tx\",\"impl\":\"c-livegen\",\"sent\":%llu,\"t_start_ns\":%lld,\"t_end_ns\":%lld,"
           "\"calls\":%lld,\"eintr\":%lld,\"batch\":%d,\"timed_out\":%s}\n",
           (unsigned long long)sent, (long long)t0, (long long)t1, calls, eintr, o.batch,
           sent < (uint64_t)o.count ? "true" : "false");
    return 0;
}
