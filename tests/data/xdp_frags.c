/* Two pass programs for the jumbo-frame tests: one single-buffer (SEC("xdp")), one multi-buffer
 * aware (SEC("xdp.frags"): libbpf loads it with BPF_F_XDP_HAS_FRAGS).
 * Built at test time with: clang -O2 -g -target bpf -c xdp_frags.c -o xdp_frags.o */
#include <linux/bpf.h>

#define SEC(name) __attribute__((section(name), used))

SEC("xdp")
int xdp_single(struct xdp_md *ctx)
{
    return XDP_PASS;
}

SEC("xdp.frags")
int xdp_multi(struct xdp_md *ctx)
{
    return XDP_PASS;
}

char LICENSE[] SEC("license") = "GPL";
