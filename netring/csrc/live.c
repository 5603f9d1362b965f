#include <errno.h>
#include <fcntl.h>
#include <sched.h>
#include <unistd.h>
#include "bpf.h"
#include "live.h"

int nr_live_run_in(int netns_fd, int prog_fd, const void *data, uint32_t size, uint32_t ingress_ifindex,
                   uint32_t repeat, uint32_t batch_size, int *stuck)
{
    *stuck = 0;
    /* the thread's own namespace, to return to (this thread's, not the process's: it may differ) */
    int home = open("/proc/thread-self/ns/net", O_RDONLY | O_CLOEXEC);
    if (home < 0)
        return -errno;
    if (setns(netns_fd, CLONE_NEWNET) < 0) {
        int e = errno;
        close(home);
        return -e;
    }
    int rc = nr_bpf_xdp_live_run(prog_fd, data, size, ingress_ifindex, repeat, batch_size);
    if (setns(home, CLONE_NEWNET) < 0)
        *stuck = errno;
    close(home);
    return rc;
}
