/* Shared bpf(2) helpers of the XDP reference programs in bench/ref/ (header-only, no libbpf):
 * raw syscall, instruction macro, array/XSKMAP creation, program load with the verifier log on
 * failure, native attach through BPF_LINK_CREATE (the link detaches when its fd closes, so a killed
 * program leaks nothing). uapi constants missing from older headers (linux-libc-dev 6.1) are guarded. */
#ifndef BENCH_REF_BPFREF_H
#define BENCH_REF_BPFREF_H

#include "common.h"
#include <linux/bpf.h>
#include <sys/syscall.h>

#ifndef XDP_FLAGS_DRV_MODE
#define XDP_FLAGS_DRV_MODE (1U << 2)
#endif
#ifndef BPF_F_TEST_XDP_LIVE_FRAMES
#define BPF_F_TEST_XDP_LIVE_FRAMES (1U << 1)
#endif
#ifndef BPF_FETCH
#define BPF_FETCH 0x01
#endif

#define INSN(c, d, s, o, i) ((struct bpf_insn){.code = (c), .dst_reg = (d), .src_reg = (s), .off = (o), .imm = (i)})
/* ld_imm64 takes two instruction slots: the low 32 bits, then the high 32 bits */
#define LD_IMM64(d, v) INSN(BPF_LD | BPF_DW | BPF_IMM, d, 0, 0, (int32_t)(uint32_t)(uint64_t)(v)), \
                       INSN(0, 0, 0, 0, (int32_t)(uint32_t)((uint64_t)(v) >> 32))
#define LD_MAP_FD(d, fd) INSN(BPF_LD | BPF_DW | BPF_IMM, d, BPF_PSEUDO_MAP_FD, 0, fd), INSN(0, 0, 0, 0, 0)

static int sys_bpf(int cmd, union bpf_attr *attr)
{
    return (int)syscall(__NR_bpf, cmd, attr, sizeof(*attr));
}

__attribute__((unused)) static int ref_map_create(unsigned type, unsigned key_size, unsigned value_size, unsigned n)
{
    union bpf_attr attr;
    memset(&attr, 0, sizeof(attr));
    attr.map_type = type;
    attr.key_size = key_size;
    attr.value_size = value_size;
    attr.max_entries = n;
    int fd = sys_bpf(BPF_MAP_CREATE, &attr);
    if (fd < 0) die("bpf(BPF_MAP_CREATE)");
    return fd;
}

__attribute__((unused)) static void ref_map_update(int map, uint32_t key, const void *val)
{
    union bpf_attr attr;
    memset(&attr, 0, sizeof(attr));
    attr.map_fd = map;
    attr.key = (uint64_t)(uintptr_t)&key;
    attr.value = (uint64_t)(uintptr_t)val;
    if (sys_bpf(BPF_MAP_UPDATE_ELEM, &attr) < 0) die("bpf(BPF_MAP_UPDATE_ELEM)");
}

__attribute__((unused)) static uint64_t ref_map_u64(int map, uint32_t key)
{
    union bpf_attr attr;
    uint64_t val = 0;
    memset(&attr, 0, sizeof(attr));
    attr.map_fd = map;
    attr.key = (uint64_t)(uintptr_t)&key;
    attr.value = (uint64_t)(uintptr_t)&val;
    if (sys_bpf(BPF_MAP_LOOKUP_ELEM, &attr) < 0) die("bpf(BPF_MAP_LOOKUP_ELEM)");
    return val;
}

static int ref_prog_load(const struct bpf_insn *insns, unsigned n, const char *name)
{
    static char log[65536];
    union bpf_attr attr;
    memset(&attr, 0, sizeof(attr));
    attr.prog_type = BPF_PROG_TYPE_XDP;
    attr.insn_cnt = n;
    attr.insns = (uint64_t)(uintptr_t)insns;
    attr.license = (uint64_t)(uintptr_t)"GPL";
    attr.log_buf = (uint64_t)(uintptr_t)log;
    attr.log_size = sizeof(log);
    attr.log_level = 1;
    attr.expected_attach_type = BPF_XDP;
    strncpy(attr.prog_name, name, sizeof(attr.prog_name) - 1);
    int fd = sys_bpf(BPF_PROG_LOAD, &attr);
    if (fd < 0) {
        int e = errno;
        fprintf(stderr, "verifier log:\n%s\n", log);
        errno = e;
        die("bpf(BPF_PROG_LOAD)");
    }
    return fd;
}

/* Attach natively (driver mode) with BPF_LINK_CREATE; returns the link fd. */
static int ref_attach_native(int prog_fd, int ifindex)
{
    union bpf_attr attr;
    memset(&attr, 0, sizeof(attr));
    attr.link_create.prog_fd = prog_fd;
    attr.link_create.target_ifindex = ifindex;
    attr.link_create.attach_type = BPF_XDP;
    attr.link_create.flags = XDP_FLAGS_DRV_MODE;
    int link = sys_bpf(BPF_LINK_CREATE, &attr);
    if (link < 0) die("bpf(BPF_LINK_CREATE, XDP native)");
    return link;
}

/* A native XDP_PASS program on ifindex (what a veth end needs to receive XDP_TX'd frames from its
 * peer). Returns the link fd; closing it detaches. *prog_fd receives the program fd. */
__attribute__((unused)) static int ref_attach_pass(int ifindex, int *prog_fd)
{
    static const struct bpf_insn pass[] = {
        INSN(BPF_ALU64 | BPF_MOV | BPF_K, 0, 0, 0, XDP_PASS),
        INSN(BPF_JMP | BPF_EXIT, 0, 0, 0, 0),
    };
    *prog_fd = ref_prog_load(pass, 2, "ref_pass");
    return ref_attach_native(*prog_fd, ifindex);
}

#endif
