/* A user XDP program for the expect.maps tests: counts frames in an array map and a per-CPU
 * array map, passes everything.
 *   pkts[0]        IPv4/UDP frames (the scenario's streams, exactly)
 *   pkts[1]        every frame (ARP and the like included)
 *   percpu_udp[0]  IPv4/UDP frames again, per CPU (the reader sums the CPUs)
 *   small[0]       IPv4/UDP frames in a 16-bit value (not atomic: BPF has no 16-bit atomics, so
 *                  concurrent CPUs may lose an increment; tests bound it, never expect it exact)
 *   wide           a hash map with 16-byte values (too wide for expect.maps)
 * Built at test time with: clang -O2 -g -target bpf -c xdp_maps.c -o xdp_maps.o
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
} pkts SEC(".maps");

struct {
    __uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
    __uint(max_entries, 1);
    __type(key, __u32);
    __type(value, __u32);
} percpu_udp SEC(".maps");

struct {
    __uint(type, BPF_MAP_TYPE_ARRAY);
    __uint(max_entries, 1);
    __uint(key_size, 4);
    __uint(value_size, 2);
} small SEC(".maps");

struct {
    __uint(type, BPF_MAP_TYPE_HASH);
    __uint(max_entries, 8);
    __type(key, __u32);
    __type(value, unsigned char[16]);
} wide SEC(".maps");

static void count(void *map, __u32 key)
{
    __u64 *v = bpf_map_lookup_elem(map, &key);

    if (v)
        __sync_fetch_and_add(v, 1);
}

SEC("xdp")
int xdp_maps(struct xdp_md *ctx)
{
    unsigned char *data = (unsigned char *)(long)ctx->data;
    unsigned char *end = (unsigned char *)(long)ctx->data_end;
    __u32 zero = 0, *c32;
    __u16 *c16;

    count(&pkts, 1);
    if (data + 34 > end)
        return XDP_PASS;
    if (data[12] != 0x08 || data[13] != 0x00 || data[23] != 17)  /* IPv4, protocol UDP */
        return XDP_PASS;
    count(&pkts, 0);
    c32 = bpf_map_lookup_elem(&percpu_udp, &zero);
    if (c32)
        *c32 += 1;  /* per CPU: no other CPU writes this slot */
    c16 = bpf_map_lookup_elem(&small, &zero);
    if (c16)
        *c16 += 1;
    return XDP_PASS;
}

char LICENSE[] SEC("license") = "GPL";
