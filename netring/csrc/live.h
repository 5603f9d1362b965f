/* live: a live-frames run (nr_bpf_xdp_live_run, bpf.h) made by the calling thread inside another
 * network namespace, so that a signal for that thread (Ctrl-C reaching Python's main thread) cuts
 * the run short in the kernel instead of leaving it running on a helper thread. Prefix nr_live_.
 * Every function returns >= 0 or -errno. */
#ifndef NETRING_LIVE_H
#define NETRING_LIVE_H
#include <stdint.h>

/* nr_live_run_in: setns(netns_fd) on the calling thread, the run (the kernel resolves
 * ingress_ifindex in the caller's namespace), setns back to the thread's own namespace. Returns
 * the run's 0 / -errno (-EINTR: a signal cut it short), or the -errno of the first setns (nothing
 * ran). *stuck is set to the errno of a failed setns back (the thread is left in netns_fd), else 0. */
int nr_live_run_in(int netns_fd, int prog_fd, const void *data, uint32_t size, uint32_t ingress_ifindex,
                   uint32_t repeat, uint32_t batch_size, int *stuck);

#endif
