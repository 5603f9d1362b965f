/* Rejected by the verifier on purpose: reads packet data without a bounds check. */
#include <linux/bpf.h>
#define SEC(name) __attribute__((section(name), used))

SEC("xdp")
int xdp_unchecked(struct xdp_md *ctx)
{
    unsigned char *data = (unsigned char *)(long)ctx->data;
    return data[12] == 0x08 ? XDP_DROP : XDP_PASS;
}

char LICENSE[] SEC("license") = "GPL";
