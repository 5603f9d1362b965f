/* A user XDP program for the libbpf tests: counts IPv4 frames and their bytes, passes everything.
 * Built at test time with: clang -O2 -g -target bpf -c xdp_count.c -o xdp_count.o
 * Self-contained (no libbpf-dev headers needed): the few helpers and macros are defined here. */
#include <linux/bpf.h>

#define SEC(name) __attribute__((section(name), used))
#define __uint(name, val) int (*name)[val]
#define __type(name, val) __typeof__(val) *name

static void *(*bpf_map_lookup_elem)(void *map, const void *key) = (void *)1;

struct {
    __uint(type, BPF_MAP_TYPE_ARRAY);
    __uint(max_entries, 2);
    __type(key, __u32);
    __type(value, __u64);
} ipv4_stats SEC(".maps");

SEC("xdp")
int xdp_count(struct xdp_md *ctx)
{
    unsigned char *data = (unsigned char *)(long)ctx->data;
    unsigned char *end = (unsigned char *)(long)ctx->data_end;
    __u32 k_pkts = 0, k_bytes = 1;
    __u64 *v;

    if (data + 14 > end)
        return XDP_PASS;
    if (data[12] != 0x08 || data[13] != 0x00)
        return XDP_PASS;
    v = bpf_map_lookup_elem(&ipv4_stats, &k_pkts);
    if (v)
        __sync_fetch_and_add(v, 1);
    v = bpf_map_lookup_elem(&ipv4_stats, &k_bytes);
    if (v)
        __sync_fetch_and_add(v, end - data);
    return XDP_PASS;
}

SEC("xdp")
int xdp_drop_all(struct xdp_md *ctx)
{
    return XDP_DROP;
}

char LICENSE[] SEC("license") = "GPL";
