/* bpf(2) for netring: program load, maps, object info, XDP links, test runs.
 * Thin wrappers around the syscall: each returns an fd / 0 on success or -errno, so the
 * Python side turns errors into typed exceptions. No libbpf needed. */
#ifndef NETRING_BPF_H
#define NETRING_BPF_H
#include <stdint.h>
#include <linux/bpf.h>
#include <linux/if_link.h>
#include "common.h"

/* An XDP program that handles multi-buffer (fragmented) frames: kernel 5.18 (libbpf: SEC("xdp.frags")). */
#ifndef BPF_F_XDP_HAS_FRAGS
#define BPF_F_XDP_HAS_FRAGS (1U << 5)
#endif

/* BPF_PROG_TEST_RUN of an XDP program on live frames: XDP_TX/REDIRECT really transmit (kernel 5.18). */
#ifndef BPF_F_TEST_XDP_LIVE_FRAMES
#define BPF_F_TEST_XDP_LIVE_FRAMES (1U << 1)
#endif

/* nr_bpf_prog_load: prog_ifindex != 0 loads the program bound to that device for hardware offload
 * (the kernel resolves it in the calling thread's network namespace, and translates the program for
 * the device's own processor; a device without BPF offload refuses with EINVAL or EOPNOTSUPP). */

/* Kinds for nr_bpf_get_fd_by_id / nr_bpf_next_id. */
#define NR_BPF_KIND_PROG 0
#define NR_BPF_KIND_MAP 1
#define NR_BPF_KIND_LINK 2

int nr_bpf_prog_load(uint32_t prog_type, const void *insns, uint32_t insn_cnt,
                     const char *license, const char *name, uint32_t expected_attach_type,
                     uint32_t prog_flags, uint32_t prog_ifindex,
                     char *log_buf, uint32_t log_size, uint32_t log_level);
int nr_bpf_map_create(uint32_t map_type, uint32_t key_size, uint32_t value_size,
                      uint32_t max_entries, uint32_t map_flags, const char *name);
int nr_bpf_map_lookup(int fd, const void *key, void *value, uint64_t flags);
int nr_bpf_map_update(int fd, const void *key, const void *value, uint64_t flags);
int nr_bpf_map_delete(int fd, const void *key);
int nr_bpf_map_next_key(int fd, const void *key, void *next_key);
int nr_bpf_prog_info(int fd, struct bpf_prog_info *info);
int nr_bpf_map_info(int fd, struct bpf_map_info *info);
int nr_bpf_link_info(int fd, uint32_t *type, uint32_t *id, uint32_t *prog_id, uint32_t *ifindex);
int nr_bpf_get_fd_by_id(int kind, uint32_t id);
int nr_bpf_next_id(int kind, uint32_t start, uint32_t *next);
int nr_bpf_link_create_xdp(int prog_fd, int ifindex, uint32_t flags);
int nr_bpf_link_update(int link_fd, int new_prog_fd);
int nr_bpf_link_detach(int link_fd);
int nr_bpf_prog_test_run(int prog_fd, const void *data_in, uint32_t size_in, void *data_out,
                         uint32_t *size_out, uint32_t repeat, uint32_t *retval);
int nr_bpf_xdp_live_run(int prog_fd, const void *data, uint32_t size, uint32_t ingress_ifindex,
                        uint32_t repeat, uint32_t batch_size);

#endif
