/* C reference: XDP_DROP receiver. Loads a hand-assembled eBPF program with bpf(2) that adds 1 to a
 * one-slot array map (atomic add) and returns XDP_DROP, attaches it in native (driver) mode with
 * BPF_LINK_CREATE (the link detaches when its fd closes, so nothing can leak), then polls the map
 * every 0.5 ms until --count drops were counted, --quiet s pass without a new drop, or --timeout.
 * Prints {"role":"rx","impl":"c-xdpdrop","dropped":N,"t_first_ns":...,"t_last_ns":...}. */
#include "common.h"
#include <linux/bpf.h>
#include <sys/syscall.h>

#ifndef XDP_FLAGS_DRV_MODE
#define XDP_FLAGS_DRV_MODE (1U << 2)
#endif

static int sys_bpf(int cmd, union bpf_attr *attr)
{
    return (int)syscall(__NR_bpf, cmd, attr, sizeof(*attr));
}

#define INSN(c, d, s, o, i) ((struct bpf_insn){.code = (c), .dst_reg = (d), .src_reg = (s), .off = (o), .imm = (i)})

int main(int argc, char **argv)
{
    struct ref_opts o;
    ref_parse(argc, argv, &o);
    int ifindex = ref_setup(&o);

    union bpf_attr attr;
    memset(&attr, 0, sizeof(attr));
    attr.map_type = BPF_MAP_TYPE_ARRAY;
    attr.key_size = 4;
    attr.value_size = 8;
    attr.max_entries = 1;
    int map = sys_bpf(BPF_MAP_CREATE, &attr);
    if (map < 0) die("bpf(BPF_MAP_CREATE)");

    struct bpf_insn prog[] = {
        INSN(BPF_ALU64 | BPF_MOV | BPF_K, 1, 0, 0, 0),          /* r1 = 0 */
        INSN(BPF_STX | BPF_MEM | BPF_W, 10, 1, -4, 0),          /* *(u32 *)(r10 - 4) = r1 */
        INSN(BPF_ALU64 | BPF_MOV | BPF_X, 2, 10, 0, 0),         /* r2 = r10 */
        INSN(BPF_ALU64 | BPF_ADD | BPF_K, 2, 0, 0, -4),         /* r2 += -4 */
        INSN(BPF_LD | BPF_DW | BPF_IMM, 1, BPF_PSEUDO_MAP_FD, 0, map), /* r1 = map (ld_imm64) */
        INSN(0, 0, 0, 0, 0),
        INSN(BPF_JMP | BPF_CALL, 0, 0, 0, BPF_FUNC_map_lookup_elem),
        INSN(BPF_JMP | BPF_JEQ | BPF_K, 0, 0, 2, 0),            /* if r0 == 0 goto +2 */
        INSN(BPF_ALU64 | BPF_MOV | BPF_K, 1, 0, 0, 1),          /* r1 = 1 */
        INSN(BPF_STX | BPF_ATOMIC | BPF_DW, 0, 1, 0, BPF_ADD),  /* lock *(u64 *)(r0 + 0) += r1 */
        INSN(BPF_ALU64 | BPF_MOV | BPF_K, 0, 0, 0, XDP_DROP),   /* r0 = XDP_DROP */
        INSN(BPF_JMP | BPF_EXIT, 0, 0, 0, 0),
    };
    static char log[65536];
    memset(&attr, 0, sizeof(attr));
    attr.prog_type = BPF_PROG_TYPE_XDP;
    attr.insn_cnt = sizeof(prog) / sizeof(prog[0]);
    attr.insns = (uint64_t)(uintptr_t)prog;
    attr.license = (uint64_t)(uintptr_t)"GPL";
    attr.log_buf = (uint64_t)(uintptr_t)log;
    attr.log_size = sizeof(log);
    attr.log_level = 1;
    attr.expected_attach_type = BPF_XDP;
    strncpy(attr.prog_name, "ref_xdpdrop", sizeof(attr.prog_name) - 1);
    int pfd = sys_bpf(BPF_PROG_LOAD, &attr);
    if (pfd < 0) {
        fprintf(stderr, "verifier log:\n%s\n", log);
        die("bpf(BPF_PROG_LOAD)");
    }
    memset(&attr, 0, sizeof(attr));
    attr.link_create.prog_fd = pfd;
    attr.link_create.target_ifindex = ifindex;
    attr.link_create.attach_type = BPF_XDP;
    attr.link_create.flags = XDP_FLAGS_DRV_MODE;
    int link = sys_bpf(BPF_LINK_CREATE, &attr);
    if (link < 0) die("bpf(BPF_LINK_CREATE, XDP native)");
    ref_ready(&o);

    uint32_t key = 0;
    uint64_t val = 0, prev = 0;
    int64_t start = now_ns(), deadline = start + (int64_t)(o.timeout * 1e9);
    int64_t quiet = (int64_t)(o.quiet * 1e9), t_first = 0, t_last = 0;
    int timed_out = 0;
    struct timespec nap = {0, 500000};
    for (;;) {
        memset(&attr, 0, sizeof(attr));
        attr.map_fd = map;
        attr.key = (uint64_t)(uintptr_t)&key;
        attr.value = (uint64_t)(uintptr_t)&val;
        if (sys_bpf(BPF_MAP_LOOKUP_ELEM, &attr) < 0) die("bpf(BPF_MAP_LOOKUP_ELEM)");
        int64_t now = now_ns();
        if (val != prev) {
            if (!t_first) t_first = now;
            t_last = now;
            prev = val;
        }
        if (val >= (uint64_t)o.count) break;
        if (now > deadline) { timed_out = 1; break; }
        if (t_last && now - t_last > quiet) break;
        nanosleep(&nap, NULL);
    }
    close(link); /* detaches the program */
    close(pfd);
    close(map);
    printf("{\"role\":\"rx\",\"impl\":\"c-xdpdrop\",\"expected\":%lld,\"dropped\":%llu,\"t_first_ns\":%lld,"
           "\"t_last_ns\":%lld,\"timed_out\":%s}\n",
           o.count, (unsigned long long)val, (long long)t_first, (long long)t_last, timed_out ? "true" : "false");
    return 0;
}
